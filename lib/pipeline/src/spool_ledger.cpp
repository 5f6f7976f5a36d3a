// SpoolLedger: the processor's words → the spool's calls, nothing more.
#include "mailgate/pipeline/spool_ledger.hpp"

#include <cstdio>
#include <fstream>

namespace mailgate::pipeline {
namespace {

using spool::MediaRecord;
using spool::MessageRecord;
using spool::RecordedDecision;
using spool::ThreadEntry;
using Id = const std::string&;

class SpoolLedger final : public Ledger {
 public:
  explicit SpoolLedger(spool::Spool& spool) : spool_(spool) {}

  std::vector<MessageRecord> due_messages(std::int64_t now, std::size_t limit) override { return spool_.due(now, limit); }
  std::optional<MessageRecord> message(Id id) override { return spool_.get(id); }
  std::string raw_mail(Id id) override { return spool_.read_raw(id); }

  void record_decision(Id id, const RecordedDecision& decision) override { spool_.record_decision(id, decision); }
  int count_ticket_decisions(const std::string& address, std::int64_t since, Id except_id) override {
    return spool_.count_ticket_decisions(address, since, except_id);
  }

  void record_user(Id id, const std::string& user) override { spool_.set_user(id, user); }
  std::optional<std::string> cached_user(const std::string& address) override { return spool_.cached_user(address); }
  void cache_user(const std::string& address, const std::string& user) override { spool_.cache_user(address, user); }
  void forget_user(const std::string& address) override { spool_.forget_user(address); }
  std::vector<MediaRecord> uploaded_media(Id id) override { return spool_.media(id); }
  void record_media(Id id, const MediaRecord& media) override { spool_.set_media(id, media); }
  void forget_references(Id id, bool user, bool media) override { spool_.forget_references(id, user, media); }

  void mark_ticket_post_started(Id id) override { spool_.mark_ticket_post_started(id); }
  void record_ticket(Id id, const std::string& ticket, const std::string& full_uuid) override {
    spool_.set_ticket(id, ticket, full_uuid);
  }
  std::optional<std::string> message_with_ticket(const std::string& ticket) override {
    return spool_.message_with_ticket(ticket);
  }
  void note_outcome(Id id, const std::string& why) override { spool_.note_outcome(id, why); }
  // Written to the spool's dry-run directory (a tmp file, then renamed).
  std::string record_dry_run(Id id, const std::string& ticket_request) override {
    const std::string path = spool_.dry_run_path(id);
    std::ofstream(path + ".tmp") << ticket_request;
    std::rename((path + ".tmp").c_str(), path.c_str());
    spool_.finish(id, "dry-run: " + path);
    return path;
  }

  void defer(Id id, std::int64_t at, const std::string& error) override { spool_.defer(id, at, error); }
  void postpone(Id id, std::int64_t at, const std::string& why) override { spool_.postpone(id, at, why); }
  void fail(Id id, const std::string& reason) override { spool_.fail(id, reason); }

  void remember_thread(const std::string& message_id, const ThreadEntry& entry) override {
    spool_.remember_thread(message_id, entry);
  }
  std::optional<ThreadEntry> thread_of(const std::string& message_id) override { return spool_.thread_of(message_id); }
  std::optional<ThreadEntry> thread_of_ticket(const std::string& ticket) override {
    return spool_.thread_of_ticket(ticket);
  }
  std::optional<std::string> queued_parent(const std::vector<std::string>& message_ids, Id id) override {
    return spool_.queued_parent(message_ids, id);
  }
  void join_thread(Id id, const std::string& ticket, const std::string& by) override { spool_.set_thread(id, ticket, by); }
  void leave_thread(Id id) override { spool_.clear_thread(id); }
  void mark_reply_post_started(Id id) override { spool_.mark_reply_post_started(id); }
  void record_reply(Id id, const std::string& reply, const std::string& message_id, const ThreadEntry& entry) override {
    spool_.set_reply(id, reply, message_id, entry);
  }
  std::optional<std::string> message_with_reply(const std::string& reply) override {
    return spool_.message_with_reply(reply);
  }

 private:
  spool::Spool& spool_;
};

}  // namespace

std::unique_ptr<Ledger> make_spool_ledger(spool::Spool& spool) { return std::make_unique<SpoolLedger>(spool); }

}  // namespace mailgate::pipeline
