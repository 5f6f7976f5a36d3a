// Threading (design.md "Threading"): which ticket a customer's reply joins.
// Pure decisions, no I/O: the processor supplies the thread index lookup and
// the ticket's creator, and does the posting (processor.cpp).
//
// Matching, in order: In-Reply-To, then each References id newest first (the
// last in the header), the first one the index knows; else the first subject
// pattern that matches (its first capture group is the ticket id); else no
// thread: a new ticket. Headers and subjects are hostile input: the ids read
// are bounded in number and length, the subject searched is bounded, and the
// patterns run on RE2 (linear time), compiled once.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailgate/config/config.hpp"
#include "mailgate/mail/header_block.hpp"
#include "mailgate/spool/spool.hpp"

namespace mailgate::pipeline {

inline constexpr std::size_t kMaxThreadIds = 100;          // ids read from In-Reply-To and References together
inline constexpr std::size_t kMaxMessageIdLength = 998;    // RFC 5322 line length; longer ids are skipped
inline constexpr std::size_t kMaxThreadHeaderBytes = mail::kMailHeadBytes;  // header block read for them
inline constexpr std::size_t kMaxSubjectScan = 4096;       // bytes of Subject a pattern sees
inline constexpr std::size_t kMaxTicketIdLength = 64;      // a longer capture is not a ticket id

// What a message says about its thread, read from its raw header.
struct ThreadHeaders {
  std::vector<std::string> in_reply_to;  // ids without <>, in header order
  std::vector<std::string> references;   // ids without <>, in header order (oldest first)
};

// In-Reply-To and References of a raw message (the first of each field of
// its header block, mail::read_header_block; folded lines joined). Never
// fails; at most kMaxThreadIds ids in all.
ThreadHeaders read_thread_headers(std::string_view raw);

// The ids to look up, in matching order: In-Reply-To first, then References
// newest first; each once.
std::vector<std::string> thread_candidates(const ThreadHeaders& headers);

enum class ThreadBy { References, Subject };
std::string_view to_string(ThreadBy by);  // "references", "subject"

struct ThreadMatch {
  std::string ticket_id;                 // stored form
  ThreadBy by = ThreadBy::References;
  std::optional<spool::ThreadEntry> entry;  // the index row that matched (references), or the ticket's (subject)
};

class ThreadMatcher {
 public:
  // Compiles config.subject_patterns. A pattern RE2 refuses, or one without
  // a capture group, is reported in `error` and the matcher is null (the
  // config loader refuses them first).
  static std::unique_ptr<ThreadMatcher> build(const config::ThreadingConfig& config, std::string* error = nullptr);
  ~ThreadMatcher();

  // The ticket id a subject names (first matching pattern, its first group),
  // searching only the first kMaxSubjectScan bytes.
  std::optional<std::string> ticket_in_subject(std::string_view subject) const;

  using IndexLookup = std::function<std::optional<spool::ThreadEntry>(const std::string& message_id)>;
  // The thread this message joins, or nullopt (a new ticket). For a subject
  // match, `entry` is not filled: the caller looks the ticket's creator up.
  std::optional<ThreadMatch> match(const ThreadHeaders& headers, std::string_view subject,
                                   const IndexLookup& lookup) const;

 private:
  ThreadMatcher() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// threading.allow for one sender against the ticket's creator.
enum class JoinVerdict {
  Join,
  NotCreator,      // allow: creator, and the sender is someone else
  CreatorUnknown,  // allow: creator, and the ticket's creator cannot be told
};
std::string_view to_string(JoinVerdict v);

// The sender is the creator when the addresses are equal (case-insensitive)
// or, when an address is unknown, the user ids are.
JoinVerdict may_join(config::ThreadAllow allow, std::string_view sender_address, std::string_view sender_user,
                     std::string_view creator_address, std::string_view creator_user);

// The thread a message would join as far as can be told without the API
// (`preview`, dry-run): matched as above, then allow checked against the
// creator's address the index remembers. A subject match whose ticket the
// index does not know is reported as is (only the API could tell its creator).
std::optional<ThreadMatch> offline_thread(const ThreadMatcher& matcher, const config::ThreadingConfig& config,
                                          const ThreadHeaders& headers, std::string_view subject,
                                          std::string_view sender_address, const ThreadMatcher::IndexLookup& by_message,
                                          const ThreadMatcher::IndexLookup& by_ticket);

// A ticket status that threading.closed_statuses names (case-insensitive).
bool is_closed(std::string_view status, const std::vector<std::string>& closed_statuses);

// The first paragraph of a ticket that follows up a closed one.
std::string follow_up_note(std::string_view closed_ticket_reference);

}  // namespace mailgate::pipeline
