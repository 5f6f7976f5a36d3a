// The processor's ledger in memory, for unit tests: the same promises as
// SpoolLedger (tests/unit/pipeline/ledger_contract_test.cpp runs the same
// checks against both), nothing durable, no SQLite, no files. It can be
// told to fail a named operation, as a broken disk or database would.
// Threads: one thread at a time (the processor's executor and the test's
// own code between runs), like any Ledger.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "mailgate/pipeline/ledger.hpp"

namespace mailgate::pipeline {

class MemoryLedger final : public Ledger {
 public:
  // A queued message with these bytes, received now (or at record.received_at),
  // due now (or at record.next_attempt_at). The record's other fields
  // (message_id, source, envelope, …) are kept as given; an empty id becomes
  // "mem-NNNNNN", ordered as added. Returns the id.
  std::string add(std::string raw, spool::MessageRecord record = {});
  // A person's release (Spool::release's rules): held → queued now, the
  // decision forgotten, person_decided set. False when not held.
  bool release(const std::string& id);
  // Every later call of `operation` (a Ledger method's name, such as
  // "cached_user") throws std::runtime_error and changes nothing, until heal().
  void fail_operation(std::string operation);
  void heal();
  // What record_dry_run kept for this message.
  std::optional<std::string> dry_run_request(const std::string& id) const;

  std::vector<spool::MessageRecord> due_messages(std::int64_t now, std::size_t limit) override;
  std::optional<spool::MessageRecord> message(const std::string& id) override;
  std::string raw_mail(const std::string& id) override;
  void record_decision(const std::string& id, const spool::RecordedDecision& decision) override;
  int count_ticket_decisions(const std::string& from_address, std::int64_t since,
                             const std::string& except_id) override;
  void record_user(const std::string& id, const std::string& user_uuid) override;
  std::optional<std::string> cached_user(const std::string& address) override;
  void cache_user(const std::string& address, const std::string& user_uuid) override;
  void forget_user(const std::string& address) override;
  std::vector<spool::MediaRecord> uploaded_media(const std::string& id) override;
  void record_media(const std::string& id, const spool::MediaRecord& media) override;
  void forget_references(const std::string& id, bool user, bool media) override;
  void mark_ticket_post_started(const std::string& id) override;
  void record_ticket(const std::string& id, const std::string& ticket_id, const std::string& full_uuid) override;
  std::optional<std::string> message_with_ticket(const std::string& ticket_id) override;
  void note_outcome(const std::string& id, const std::string& why) override;
  // Kept in memory (dry_run_request); WHERE is "memory:ID".
  std::string record_dry_run(const std::string& id, const std::string& ticket_request) override;
  void defer(const std::string& id, std::int64_t next_attempt_at, const std::string& error) override;
  void postpone(const std::string& id, std::int64_t next_attempt_at, const std::string& why) override;
  void fail(const std::string& id, const std::string& reason) override;
  void remember_thread(const std::string& message_id, const spool::ThreadEntry& entry) override;
  std::optional<spool::ThreadEntry> thread_of(const std::string& message_id) override;
  std::optional<spool::ThreadEntry> thread_of_ticket(const std::string& ticket_id) override;
  std::optional<std::string> queued_parent(const std::vector<std::string>& message_ids,
                                           const std::string& id) override;
  void join_thread(const std::string& id, const std::string& ticket_id, const std::string& by) override;
  void leave_thread(const std::string& id) override;
  void mark_reply_post_started(const std::string& id) override;
  void record_reply(const std::string& id, const std::string& reply_id, const std::string& message_id,
                    const spool::ThreadEntry& entry) override;
  std::optional<std::string> message_with_reply(const std::string& reply_id) override;

 private:
  struct Message {
    spool::MessageRecord record;
    std::string raw;
    std::uint64_t order = 0;                         // as added: the spool's rowid
    std::map<std::string, spool::MediaRecord> media;  // by ref
    std::optional<std::string> dry_run;
  };
  struct IndexRow {
    spool::ThreadEntry entry;
    std::uint64_t order = 0;  // as written
  };
  void check(std::string_view operation) const;  // throws when told to fail it
  Message* find(const std::string& id);
  // check(operation), then the record to change, or null: an update of an
  // unknown id changes nothing (as an SQL UPDATE).
  spool::MessageRecord* updating(std::string_view operation, const std::string& id);
  void write_thread(const std::string& message_id, const spool::ThreadEntry& entry);

  std::map<std::string, Message> messages_;
  std::map<std::string, std::string> users_;    // lower-case address → uuid
  std::map<std::string, IndexRow> threads_;     // lower-case Message-ID → row
  std::set<std::string, std::less<>> failing_;  // operations told to fail
  std::uint64_t next_order_ = 0;
};

}  // namespace mailgate::pipeline
