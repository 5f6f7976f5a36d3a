// `mailgate queue`: the operator's view of the spool (design.md "Command
// line" and "Senders and policy"): list (by state, as text or JSON), show,
// retry (failed, deferred or ignored mail), release (held mail), drop.
// Everything shown came from mail or a server: escaped for the terminal.
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "settings.hpp"
#include "mailgate/config/config.hpp"
#include "mailgate/log/log.hpp"
#include "mailgate/spool/spool.hpp"

namespace mailgate::cli {
namespace {

constexpr const char* kUsage =
    "usage: mailgate queue list [--held|--ignored|--failed|--queued|--done] [--json] --config FILE\n"
    "       mailgate queue show|retry|release|drop ID --config FILE\n";
constexpr std::size_t kOutcomeColumn = 100;  // characters of the outcome a list line shows

// Local time for people (list, show); UTC ISO 8601 for --json.
std::string format_time(std::int64_t t, bool utc, const char* format) {
  char buf[32];
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  if (utc) gmtime_r(&tt, &tm);
  else localtime_r(&tt, &tm);
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}
std::string when(std::int64_t t) { return format_time(t, false, "%Y-%m-%d %H:%M:%S"); }
std::string iso8601_utc(std::int64_t t) { return format_time(t, true, "%Y-%m-%dT%H:%M:%SZ"); }

// What the spool holds came from mail (Message-ID, errors quoting it): a
// hostile value must not reach the operator's terminal as escape sequences.
std::string safe(std::string_view s) { return log::escape_controls(s); }

using Json = nlohmann::ordered_json;  // the keys in design.md's order

Json text_or_null(const std::string& s) { return s.empty() ? Json(nullptr) : Json(s); }

// Ticket ids are the API's integers; anything else stays text.
Json ticket_json(const std::string& id) {
  if (id.empty()) return nullptr;
  if (id.size() <= 18 && id.find_first_not_of("0123456789") == std::string::npos) return std::stoll(id);
  return id;
}

// Why the message is where it is: the decision for held and ignored mail,
// the failure for failed mail, the last error of a deferred one.
std::string reason_of(const spool::MessageRecord& m) {
  switch (m.state) {
    case spool::State::Held:
    case spool::State::Ignored: return m.decision.reason;
    case spool::State::Failed:
    case spool::State::Queued: return m.last_error;
    case spool::State::Done: return "";
  }
  return "";
}

// Sources without an SMTP envelope have no MAIL FROM (null), unlike the
// null sender <> ("").
bool has_smtp_envelope(const std::string& source) { return source == "smtp" || source == "lmtp" || source == "deliver"; }

Json message_json(const spool::MessageRecord& m) {
  Json o;
  o["id"] = m.id;
  o["state"] = std::string(spool::to_string(m.state));
  o["received"] = iso8601_utc(m.received_at);
  o["source"] = m.source;
  o["mail_from"] = has_smtp_envelope(m.source) ? Json(m.mail_from) : Json(nullptr);
  o["recipients"] = m.recipients;
  o["from"] = text_or_null(m.decision.from_address);
  o["subject"] = m.decision.action.empty() ? Json(nullptr) : Json(m.decision.subject);
  o["reason"] = text_or_null(reason_of(m));
  // The ticket it created or, as a reply, joined (design.md: "created or joined").
  o["ticket"] = ticket_json(m.ticket_id.empty() ? m.joined_ticket : m.ticket_id);
  return o;
}

int list(spool::Spool& spool, std::optional<spool::State> state, bool json) {
  auto all = spool.list(state);
  if (json) {
    Json out = Json::array();
    for (const auto& m : all) out.push_back(message_json(m));
    // ASCII only: a hostile subject cannot reach the terminal as controls.
    std::cout << out.dump(2, ' ', true, Json::error_handler_t::replace) << "\n";
    return 0;
  }
  std::printf("%-25s %-7s %-19s %-8s %s\n", "ID", "STATE", "RECEIVED", "ATTEMPTS", "OUTCOME / LAST ERROR");
  for (const auto& m : all)
    std::printf("%-25s %-7s %-19s %-8d %s\n", safe(m.id).c_str(), std::string(spool::to_string(m.state)).c_str(),
                when(m.received_at).c_str(), m.attempts,
                safe((m.outcome.empty() ? m.last_error : m.outcome).substr(0, kOutcomeColumn)).c_str());
  std::printf("%zu message(s)\n", all.size());
  return 0;
}

void show(spool::Spool& spool, const spool::MessageRecord& m) {
  std::cout << "id: " << safe(m.id) << "\nstate: " << spool::to_string(m.state) << "\nsource: " << safe(m.source)
            << "\nmail_from: " << (has_smtp_envelope(m.source) ? "<" + safe(m.mail_from) + ">" : "")
            << "\nmessage_id: " << safe(m.message_id) << "\nsize: " << m.size;
  for (const auto& r : m.recipients) std::cout << "\nrecipient: " << safe(r);
  std::cout << "\nreceived: " << when(m.received_at) << "\nattempts: " << m.attempts
            << "\nnext_attempt: " << when(m.next_attempt_at) << "\nlast_error: " << safe(m.last_error);
  if (!m.decision.action.empty())
    std::cout << "\ndecision: " << safe(m.decision.action) << "\nroute: " << safe(m.decision.route)
              << "\nreason: " << safe(m.decision.reason) << "\nkind: " << safe(m.decision.kind)
              << "\nfrom: " << safe(m.decision.from_address) << "\nsubject: " << safe(m.decision.subject)
              << "\ndecided: " << when(m.decided_at);
  if (m.person_decided) std::cout << "\nperson_decided: yes (released or retried: policy and flood skipped)";
  std::cout << "\nuser: " << safe(m.user_uuid) << "\nticket: " << safe(m.ticket_id)
            << "\nticket_full_uuid: " << safe(m.ticket_full_uuid);
  if (!m.joined_ticket.empty())
    std::cout << "\njoined_ticket: " << safe(m.joined_ticket) << " (by " << safe(m.thread_by) << ")"
              << "\nreply: " << safe(m.reply_id)
              << (m.reply_post_started_at ? "\nreply_post_started: " + when(m.reply_post_started_at) : std::string());
  std::cout << "\noutcome: " << safe(m.outcome)
            << "\nfile: " << safe(spool.existing_path(m.id, m.state)) << "\n";
  for (const auto& media : spool.media(m.id))
    std::cout << "media: " << safe(media.ref) << " " << safe(media.uuid) << " uploaded " << when(media.uploaded_at)
              << "\n";
}

// retry and release: only from the states they apply to; anything else is
// refused with what the operator can do instead.
int retry(spool::Spool& spool, const spool::MessageRecord& m) {
  const std::string id = safe(m.id);
  if (m.state == spool::State::Held) {
    std::cerr << "mailgate queue: " << id << " is held, not failed or ignored; `mailgate queue release " << id
              << "` makes it a ticket\n";
    return 1;
  }
  if (m.state == spool::State::Done || !spool.retry(m.id)) {
    std::cerr << "mailgate queue: " << id << " is " << spool::to_string(m.state)
              << "; only failed, ignored or queued mail can be retried\n";
    return 1;
  }
  std::cout << id << (m.state == spool::State::Ignored ? " queued as a person's decision (policy and flood skipped)\n"
                                                       : " queued for another attempt\n");
  return 0;
}

int release(spool::Spool& spool, const spool::MessageRecord& m) {
  const std::string id = safe(m.id);
  if (m.state != spool::State::Held || !spool.release(m.id)) {
    std::cerr << "mailgate queue: " << id << " is " << spool::to_string(m.state) << ", not held"
              << (m.state == spool::State::Ignored || m.state == spool::State::Failed
                      ? "; `mailgate queue retry " + id + "` brings it back"
                      : std::string())
              << "\n";
    return 1;
  }
  std::cout << id << " released: queued as a person's decision (policy and flood skipped)\n";
  return 0;
}

// "--held" … "--done": at most one.
bool take_state_filter(std::vector<std::string>& args, std::optional<spool::State>& state) {
  for (auto it = args.begin(); it != args.end();) {
    auto named = it->rfind("--", 0) == 0 ? spool::state_named(it->substr(2)) : std::nullopt;
    if (!named) {
      ++it;
      continue;
    }
    if (state) return false;
    state = named;
    it = args.erase(it);
  }
  return true;
}

bool take_flag(std::vector<std::string>& args, const std::string& flag) {
  auto it = std::find(args.begin(), args.end(), flag);
  if (it == args.end()) return false;
  args.erase(it);
  return true;
}

}  // namespace

int queue(const std::vector<std::string>& in) {
  std::vector<std::string> args = in;
  std::string file;
  const bool have_config = take_option(args, "--config", file);
  std::optional<spool::State> state;
  const bool json = take_flag(args, "--json");
  const bool one_filter = take_state_filter(args, state);
  const bool is_list = !args.empty() && args[0] == "list";
  if (!have_config || !one_filter || args.empty() || (is_list ? args.size() != 1 : args.size() != 2) ||
      (!is_list && (json || state))) {
    std::cerr << kUsage;
    return kExitUsage;
  }
  auto cfg = load_config_or_report(file);
  if (!cfg) return kExitConfig;
  const std::unique_ptr<spool::Spool> spool = open_spool_or_report(*cfg, "queue");
  if (!spool) return 1;
  const std::string& what = args[0];
  if (is_list) return list(*spool, state, json);
  const std::string& id = args[1];
  auto m = spool->get(id);
  if (!m) {
    std::cerr << "mailgate queue: no message " << safe(id) << "\n";
    return 1;
  }
  if (what == "show") {
    show(*spool, *m);
    return 0;
  }
  if (what == "retry") return retry(*spool, *m);
  if (what == "release") return release(*spool, *m);
  if (what == "drop") {
    spool->drop(id);
    std::cout << safe(id) << " dropped\n";
    return 0;
  }
  std::cerr << kUsage;
  return kExitUsage;
}

}  // namespace mailgate::cli
