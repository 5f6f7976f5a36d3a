// Threading decisions: reading thread ids from the header, the matching
// order, the allow rule. See threading.hpp for the promises.
#include "mailgate/pipeline/threading.hpp"

#include <re2/re2.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "mailgate/mail/header_block.hpp"
#include "mailgate/mail/text_util.hpp"

namespace mailgate::pipeline {
namespace {

using mail::ascii_lower;

}  // namespace

ThreadHeaders read_thread_headers(std::string_view raw) {
  const std::string_view head = raw.substr(0, std::min(raw.size(), kMaxThreadHeaderBytes));
  auto first = [&](std::string_view name) {
    auto values = mail::scan_head(head, name, 1);
    return values.empty() ? std::string() : std::move(values.front());
  };
  ThreadHeaders out;
  out.in_reply_to = mail::angle_ids(first("In-Reply-To"), kMaxThreadIds, kMaxMessageIdLength);
  // References newest last: when there are too many, keep the newest.
  std::vector<std::string> refs = mail::angle_ids(first("References"), SIZE_MAX, kMaxMessageIdLength);
  const std::size_t keep = std::min(refs.size(), kMaxThreadIds - out.in_reply_to.size());
  out.references.assign(std::make_move_iterator(refs.end() - static_cast<std::ptrdiff_t>(keep)),
                        std::make_move_iterator(refs.end()));
  return out;
}

std::vector<std::string> thread_candidates(const ThreadHeaders& headers) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  auto add = [&](const std::string& id) {
    if (seen.insert(ascii_lower(id)).second) out.push_back(id);
  };
  for (const auto& id : headers.in_reply_to) add(id);
  for (auto it = headers.references.rbegin(); it != headers.references.rend(); ++it) add(*it);
  return out;
}

std::string_view to_string(ThreadBy by) { return by == ThreadBy::Subject ? "subject" : "references"; }

struct ThreadMatcher::Impl {
  std::vector<std::unique_ptr<RE2>> patterns;
};

ThreadMatcher::~ThreadMatcher() = default;

std::unique_ptr<ThreadMatcher> ThreadMatcher::build(const config::ThreadingConfig& config, std::string* error) {
  std::unique_ptr<ThreadMatcher> m(new ThreadMatcher());
  m->impl_ = std::make_unique<Impl>();
  for (const auto& pattern : config.subject_patterns) {
    auto re = std::make_unique<RE2>(pattern, RE2::Quiet);
    std::string why;
    if (!re->ok()) why = re->error();
    else if (re->NumberOfCapturingGroups() < 1) why = "no capture group (the first one is the ticket id)";
    if (!why.empty()) {
      if (error) *error = "threading.subject_patterns: '" + pattern + "': " + why;
      return nullptr;
    }
    m->impl_->patterns.push_back(std::move(re));
  }
  return m;
}

std::optional<std::string> ThreadMatcher::ticket_in_subject(std::string_view subject) const {
  const re2::StringPiece text(subject.data(), std::min(subject.size(), kMaxSubjectScan));
  for (const auto& re : impl_->patterns) {
    re2::StringPiece group;
    if (!RE2::PartialMatch(text, *re, &group)) continue;
    if (group.empty() || group.size() > kMaxTicketIdLength) continue;
    return std::string(group.data(), group.size());
  }
  return std::nullopt;
}

std::optional<ThreadMatch> ThreadMatcher::match(const ThreadHeaders& headers, std::string_view subject,
                                                const IndexLookup& lookup) const {
  for (const auto& id : thread_candidates(headers))
    if (auto entry = lookup(id)) return ThreadMatch{entry->ticket_id, ThreadBy::References, std::move(entry)};
  if (auto ticket = ticket_in_subject(subject)) return ThreadMatch{*ticket, ThreadBy::Subject, std::nullopt};
  return std::nullopt;
}

std::string_view to_string(JoinVerdict v) {
  switch (v) {
    case JoinVerdict::Join: return "join";
    case JoinVerdict::NotCreator: return "sender not the ticket's creator";
    case JoinVerdict::CreatorUnknown: return "the ticket's creator cannot be told";
  }
  return "join";
}

JoinVerdict may_join(config::ThreadAllow allow, std::string_view sender_address, std::string_view sender_user,
                     std::string_view creator_address, std::string_view creator_user) {
  if (allow == config::ThreadAllow::Any) return JoinVerdict::Join;
  if (!creator_address.empty() && !sender_address.empty())
    return ascii_lower(creator_address) == ascii_lower(sender_address) ? JoinVerdict::Join : JoinVerdict::NotCreator;
  if (!creator_user.empty() && !sender_user.empty())
    return creator_user == sender_user ? JoinVerdict::Join : JoinVerdict::NotCreator;
  return JoinVerdict::CreatorUnknown;
}

std::optional<ThreadMatch> offline_thread(const ThreadMatcher& matcher, const config::ThreadingConfig& config,
                                          const ThreadHeaders& headers, std::string_view subject,
                                          std::string_view sender_address, const ThreadMatcher::IndexLookup& by_message,
                                          const ThreadMatcher::IndexLookup& by_ticket) {
  auto match = matcher.match(headers, subject, by_message);
  if (!match) return std::nullopt;
  if (!match->entry) match->entry = by_ticket(match->ticket_id);
  if (!match->entry) return match;
  if (may_join(config.allow, sender_address, "", match->entry->creator_address, "") != JoinVerdict::Join)
    return std::nullopt;
  return match;
}

bool is_closed(std::string_view status, const std::vector<std::string>& closed_statuses) {
  const std::string s = ascii_lower(status);
  return std::any_of(closed_statuses.begin(), closed_statuses.end(), [&](const std::string& c) { return ascii_lower(c) == s; });
}

std::string follow_up_note(std::string_view closed_ticket_reference) {
  std::string escaped;  // the API's text goes into HTML
  for (char c : closed_ticket_reference.substr(0, kMaxTicketIdLength)) {
    if (c == '&') escaped += "&amp;";
    else if (c == '<') escaped += "&lt;";
    else if (c == '>') escaped += "&gt;";
    else if (c == '"') escaped += "&quot;";
    else escaped.push_back(c);
  }
  return "<p>Follow-up to closed ticket #" + escaped + "</p>";
}

}  // namespace mailgate::pipeline
