// The ledger: where the processor keeps each message's progress, so a crash
// at any instant resumes at the step it reached (design.md "Spool"). The
// processor owns this interface; SpoolLedger keeps it in the spool's SQLite
// database, MemoryLedger (tests/support) in memory for unit tests.
//
// Every write is durable before it returns (SpoolLedger: one SQLite
// transaction) and names the state it moves the message to, if any. A
// failure throws (std::exception) and changes nothing: the processor logs it
// and retries the message later.
//
// Threads: every method is called on the processor's executor only (the
// processing io_context in `mailgate serve`). An implementation need not be
// safe to call from two threads at once through this interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mailgate/spool/spool.hpp"

namespace mailgate::pipeline {

class Ledger {
 public:
  virtual ~Ledger() = default;

  // ---- which messages, and their bytes ----
  // Queued messages whose next_attempt_at <= now, earliest first (ties by
  // id), at most `limit`.
  virtual std::vector<spool::MessageRecord> due_messages(std::int64_t now, std::size_t limit) = 0;
  virtual std::optional<spool::MessageRecord> message(const std::string& id) = 0;
  // The mail as received. Throws when its bytes are gone.
  virtual std::string raw_mail(const std::string& id) = 0;

  // ---- the decision (design.md "Order of decisions") ----
  // Recorded before anything is posted, dated now; from_address kept
  // lower-case. hold → Held, ignore → Ignored (outcome "held: REASON" /
  // "ignored: REASON"), ticket stays Queued. person_decided is kept.
  virtual void record_decision(const std::string& id, const spool::RecordedDecision& decision) = 0;
  // Messages decided "ticket" for this address (any case) at or after
  // `since`, other than `except_id` (in-flight ones count: policy.flood).
  virtual int count_ticket_decisions(const std::string& from_address, std::int64_t since,
                                     const std::string& except_id) = 0;

  // ---- the user and media (state unchanged) ----
  virtual void record_user(const std::string& id, const std::string& user_uuid) = 0;
  // The address → user cache; addresses compared case-insensitively.
  virtual std::optional<std::string> cached_user(const std::string& address) = 0;
  virtual void cache_user(const std::string& address, const std::string& user_uuid) = 0;
  virtual void forget_user(const std::string& address) = 0;
  virtual std::vector<spool::MediaRecord> uploaded_media(const std::string& id) = 0;
  // Replaces an earlier upload of the same ref.
  virtual void record_media(const std::string& id, const spool::MediaRecord& media) = 0;
  // The API no longer knows what this message recorded: the user (when
  // `user`), every media upload (when `media`), and always the unanswered
  // ticket-POST flag (the API refused that POST).
  virtual void forget_references(const std::string& id, bool user, bool media) = 0;

  // ---- the ticket, exactly once ----
  // Sets ticket_post_started; ticket_post_started_at only the first time.
  virtual void mark_ticket_post_started(const std::string& id) = 0;
  // → Done with outcome "ticket ID[ FULL_UUID]"; clears the POST flag and last_error.
  virtual void record_ticket(const std::string& id, const std::string& ticket_id, const std::string& full_uuid) = 0;
  // The message that recorded this ticket id, if any.
  virtual std::optional<std::string> message_with_ticket(const std::string& ticket_id) = 0;
  // Adds why to a finished message's outcome: "OUTCOME (WHY)".
  virtual void note_outcome(const std::string& id, const std::string& why) = 0;
  // Dry run: keeps the ticket request (JSON text) where the spool keeps dry
  // runs and → Done with outcome "dry-run: WHERE". Returns WHERE.
  virtual std::string record_dry_run(const std::string& id, const std::string& ticket_request) = 0;

  // ---- not now ----
  // Next attempt at `next_attempt_at`, one more attempt counted, the error kept.
  virtual void defer(const std::string& id, std::int64_t next_attempt_at, const std::string& error) = 0;
  // The same without counting an attempt (waiting for a parent is not a failure).
  virtual void postpone(const std::string& id, std::int64_t next_attempt_at, const std::string& why) = 0;
  // → Failed: outcome "failed: REASON", one more attempt counted.
  virtual void fail(const std::string& id, const std::string& reason) = 0;

  // ---- threading (design.md "Threading") ----
  // Message-ID (without <>, any case; "" is never kept) → its ticket. The
  // creator's address is kept lower-case; entry.at 0 means now.
  virtual void remember_thread(const std::string& message_id, const spool::ThreadEntry& entry) = 0;
  virtual std::optional<spool::ThreadEntry> thread_of(const std::string& message_id) = 0;
  // The ticket's oldest index row (its creator, for a subject match).
  virtual std::optional<spool::ThreadEntry> thread_of_ticket(const std::string& ticket_id) = 0;
  // The first of `message_ids` naming a Queued message received before
  // `id` (two messages naming each other never wait for each other).
  virtual std::optional<std::string> queued_parent(const std::vector<std::string>& message_ids,
                                                   const std::string& id) = 0;
  // The message joins `ticket_id` as a reply (by "references" or "subject"):
  // recorded before any call for it.
  virtual void join_thread(const std::string& id, const std::string& ticket_id, const std::string& by) = 0;
  // It will not join after all: back to a ticket; the reply POST mark goes too.
  virtual void leave_thread(const std::string& id) = 0;
  // Sets reply_post_started_at, only the first time.
  virtual void mark_reply_post_started(const std::string& id) = 0;
  // One commit: the reply id, → Done with outcome "reply R on ticket T (by
  // BY)", and the index row for `message_id` (remember_thread's rules).
  virtual void record_reply(const std::string& id, const std::string& reply_id, const std::string& message_id,
                            const spool::ThreadEntry& entry) = 0;
  // The message that recorded this reply id, if any.
  virtual std::optional<std::string> message_with_reply(const std::string& reply_id) = 0;
};

}  // namespace mailgate::pipeline
