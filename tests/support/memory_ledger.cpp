// MemoryLedger: the spool's rules for the processor's records, kept in maps.
// Each rule here mirrors a statement in lib/spool (spool.cpp, thread_index.cpp);
// ledger_contract_test.cpp checks that they agree.
#include "memory_ledger.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <stdexcept>

#include "mailgate/text/ascii.hpp"

namespace mailgate::pipeline {
namespace {

std::int64_t now_unix() { return static_cast<std::int64_t>(std::time(nullptr)); }

void finish(spool::MessageRecord& r, spool::State state, std::string outcome) {
  r.state = state;
  r.outcome = std::move(outcome);
}

std::string numbered_id(std::uint64_t n) {
  char id[32];
  std::snprintf(id, sizeof id, "mem-%06llu", static_cast<unsigned long long>(n));
  return id;
}

}  // namespace

void MemoryLedger::check(std::string_view operation) const {
  if (failing_.count(operation))
    throw std::runtime_error("memory ledger: " + std::string(operation) + " failed (told to fail)");
}

MemoryLedger::Message* MemoryLedger::find(const std::string& id) {
  auto it = messages_.find(id);
  return it == messages_.end() ? nullptr : &it->second;
}

spool::MessageRecord* MemoryLedger::updating(std::string_view operation, const std::string& id) {
  check(operation);
  Message* m = find(id);
  return m ? &m->record : nullptr;
}

void MemoryLedger::fail_operation(std::string operation) { failing_.insert(std::move(operation)); }
void MemoryLedger::heal() { failing_.clear(); }

std::string MemoryLedger::add(std::string raw, spool::MessageRecord record) {
  const std::uint64_t order = ++next_order_;
  if (record.id.empty()) record.id = numbered_id(order);
  if (record.received_at == 0) record.received_at = now_unix();
  if (record.next_attempt_at == 0) record.next_attempt_at = record.received_at;
  record.size = raw.size();
  const std::string id = record.id;
  messages_[id] = Message{std::move(record), std::move(raw), order, {}, {}};
  return id;
}

bool MemoryLedger::release(const std::string& id) {
  Message* m = find(id);
  if (!m || m->record.state != spool::State::Held) return false;
  auto& r = m->record;
  r.state = spool::State::Queued;
  r.next_attempt_at = now_unix();
  r.outcome.clear();
  r.person_decided = true;
  const std::string from = r.decision.from_address, subject = r.decision.subject, fields = r.decision.ticket_fields;
  r.decision = {"", "", "", "", from, subject, fields};  // the spool clears action, route, reason, kind
  r.decided_at = 0;
  return true;
}

std::optional<std::string> MemoryLedger::dry_run_request(const std::string& id) const {
  auto it = messages_.find(id);
  return it == messages_.end() ? std::nullopt : it->second.dry_run;
}

std::vector<spool::MessageRecord> MemoryLedger::due_messages(std::int64_t now, std::size_t limit) {
  check("due_messages");
  std::vector<spool::MessageRecord> due;
  for (const auto& [id, m] : messages_)
    if (m.record.state == spool::State::Queued && m.record.next_attempt_at <= now) due.push_back(m.record);
  std::stable_sort(due.begin(), due.end(), [](const auto& a, const auto& b) {
    return a.next_attempt_at < b.next_attempt_at;  // ties stay in id order (the map's)
  });
  if (due.size() > limit) due.resize(limit);
  return due;
}

std::optional<spool::MessageRecord> MemoryLedger::message(const std::string& id) {
  check("message");
  const Message* m = find(id);
  return m ? std::optional(m->record) : std::nullopt;
}

std::string MemoryLedger::raw_mail(const std::string& id) {
  check("raw_mail");
  const Message* m = find(id);
  if (!m) throw std::runtime_error("spool file of " + id + " is missing");
  return m->raw;
}

void MemoryLedger::record_decision(const std::string& id, const spool::RecordedDecision& decision) {
  if (auto* r = updating("record_decision", id)) {
    const spool::State to = decision.action == "hold"     ? spool::State::Held
                            : decision.action == "ignore" ? spool::State::Ignored
                                                          : spool::State::Queued;
    r->decision = decision;
    r->decision.from_address = text::ascii_lower(decision.from_address);
    r->decided_at = now_unix();
    r->state = to;
    r->outcome = to == spool::State::Held      ? "held: " + decision.reason
                 : to == spool::State::Ignored ? "ignored: " + decision.reason
                                               : "";
  }
}

int MemoryLedger::count_ticket_decisions(const std::string& from_address, std::int64_t since,
                                         const std::string& except_id) {
  check("count_ticket_decisions");
  const std::string address = text::ascii_lower(from_address);
  int n = 0;
  for (const auto& [id, m] : messages_)
    n += id != except_id && m.record.decision.action == "ticket" && m.record.decision.from_address == address &&
         m.record.decided_at >= since;
  return n;
}

void MemoryLedger::record_user(const std::string& id, const std::string& user_uuid) {
  if (auto* r = updating("record_user", id)) r->user_uuid = user_uuid;
}

std::optional<std::string> MemoryLedger::cached_user(const std::string& address) {
  check("cached_user");
  auto it = users_.find(text::ascii_lower(address));
  return it == users_.end() ? std::nullopt : std::optional(it->second);
}

void MemoryLedger::cache_user(const std::string& address, const std::string& user_uuid) {
  check("cache_user");
  users_[text::ascii_lower(address)] = user_uuid;
}

void MemoryLedger::forget_user(const std::string& address) {
  check("forget_user");
  users_.erase(text::ascii_lower(address));
}

std::vector<spool::MediaRecord> MemoryLedger::uploaded_media(const std::string& id) {
  check("uploaded_media");
  std::vector<spool::MediaRecord> out;
  if (const Message* m = find(id))
    for (const auto& [ref, media] : m->media) out.push_back(media);
  return out;
}

void MemoryLedger::record_media(const std::string& id, const spool::MediaRecord& media) {
  check("record_media");
  // The spool's media table has no foreign key: a row for any id is kept.
  if (Message* m = find(id)) m->media[media.ref] = media;
}

void MemoryLedger::forget_references(const std::string& id, bool user, bool media) {
  if (auto* r = updating("forget_references", id)) {
    r->ticket_post_started = false;
    if (user) r->user_uuid.clear();
    if (media) messages_.at(id).media.clear();
  }
}

void MemoryLedger::mark_ticket_post_started(const std::string& id) {
  if (auto* r = updating("mark_ticket_post_started", id)) {
    r->ticket_post_started = true;
    if (r->ticket_post_started_at == 0) r->ticket_post_started_at = now_unix();
  }
}

void MemoryLedger::record_ticket(const std::string& id, const std::string& ticket_id, const std::string& full_uuid) {
  if (auto* r = updating("record_ticket", id)) {
    r->ticket_id = ticket_id;
    r->ticket_full_uuid = full_uuid;
    r->ticket_post_started = false;
    r->last_error.clear();
    finish(*r, spool::State::Done, "ticket " + ticket_id + (full_uuid.empty() ? "" : " " + full_uuid));
  }
}

std::optional<std::string> MemoryLedger::message_with_ticket(const std::string& ticket_id) {
  check("message_with_ticket");
  for (const auto& [id, m] : messages_)
    if (m.record.ticket_id == ticket_id) return id;
  return std::nullopt;
}

void MemoryLedger::note_outcome(const std::string& id, const std::string& why) {
  if (auto* r = updating("note_outcome", id)) r->outcome += " (" + why + ")";
}

std::string MemoryLedger::record_dry_run(const std::string& id, const std::string& ticket_request) {
  check("record_dry_run");
  const std::string where = "memory:" + id;
  if (Message* m = find(id)) {
    m->dry_run = ticket_request;
    finish(m->record, spool::State::Done, "dry-run: " + where);
  }
  return where;
}

void MemoryLedger::defer(const std::string& id, std::int64_t next_attempt_at, const std::string& error) {
  if (auto* r = updating("defer", id)) {
    r->next_attempt_at = next_attempt_at;
    r->attempts += 1;
    r->last_error = error;
  }
}

void MemoryLedger::postpone(const std::string& id, std::int64_t next_attempt_at, const std::string& why) {
  if (auto* r = updating("postpone", id)) {
    r->next_attempt_at = next_attempt_at;
    r->last_error = why;
  }
}

void MemoryLedger::fail(const std::string& id, const std::string& reason) {
  if (auto* r = updating("fail", id)) {
    r->last_error = reason;
    r->attempts += 1;
    finish(*r, spool::State::Failed, "failed: " + reason);
  }
}

void MemoryLedger::write_thread(const std::string& message_id, const spool::ThreadEntry& entry) {
  if (message_id.empty()) return;  // nothing can ever name it
  spool::ThreadEntry row = entry;
  row.creator_address = text::ascii_lower(entry.creator_address);
  if (row.at == 0) row.at = now_unix();
  threads_[text::ascii_lower(message_id)] = IndexRow{std::move(row), ++next_order_};
}

void MemoryLedger::remember_thread(const std::string& message_id, const spool::ThreadEntry& entry) {
  check("remember_thread");
  write_thread(message_id, entry);
}

std::optional<spool::ThreadEntry> MemoryLedger::thread_of(const std::string& message_id) {
  check("thread_of");
  auto it = threads_.find(text::ascii_lower(message_id));
  return it == threads_.end() ? std::nullopt : std::optional(it->second.entry);
}

std::optional<spool::ThreadEntry> MemoryLedger::thread_of_ticket(const std::string& ticket_id) {
  check("thread_of_ticket");
  const IndexRow* oldest = nullptr;
  for (const auto& [key, row] : threads_) {
    if (row.entry.ticket_id != ticket_id) continue;
    if (!oldest || std::pair(row.entry.at, row.order) < std::pair(oldest->entry.at, oldest->order)) oldest = &row;
  }
  return oldest ? std::optional(oldest->entry) : std::nullopt;
}

std::optional<std::string> MemoryLedger::queued_parent(const std::vector<std::string>& message_ids,
                                                       const std::string& id) {
  check("queued_parent");
  const Message* child = find(id);
  if (!child) return std::nullopt;
  for (const auto& mid : message_ids) {
    if (mid.empty()) continue;
    for (const auto& [other_id, m] : messages_)
      if (m.order < child->order && m.record.state == spool::State::Queued && text::iequals(m.record.message_id, mid))
        return other_id;
  }
  return std::nullopt;
}

void MemoryLedger::join_thread(const std::string& id, const std::string& ticket_id, const std::string& by) {
  if (auto* r = updating("join_thread", id)) {
    r->joined_ticket = ticket_id;
    r->thread_by = by;
  }
}

void MemoryLedger::leave_thread(const std::string& id) {
  if (auto* r = updating("leave_thread", id)) {
    r->joined_ticket.clear();
    r->thread_by.clear();
    r->reply_post_started_at = 0;
  }
}

void MemoryLedger::mark_reply_post_started(const std::string& id) {
  auto* r = updating("mark_reply_post_started", id);
  if (r && r->reply_post_started_at == 0) r->reply_post_started_at = now_unix();
}

void MemoryLedger::record_reply(const std::string& id, const std::string& reply_id, const std::string& message_id,
                                const spool::ThreadEntry& entry) {
  if (auto* r = updating("record_reply", id)) {
    r->reply_id = reply_id;
    r->last_error.clear();
    finish(*r, spool::State::Done, "reply " + reply_id + " on ticket " + r->joined_ticket +
                                       (r->thread_by.empty() ? "" : " (by " + r->thread_by + ")"));
    write_thread(message_id, entry);
  }
}

std::optional<std::string> MemoryLedger::message_with_reply(const std::string& reply_id) {
  check("message_with_reply");
  for (const auto& [id, m] : messages_)
    if (m.record.reply_id == reply_id) return id;
  return std::nullopt;
}

}  // namespace mailgate::pipeline
