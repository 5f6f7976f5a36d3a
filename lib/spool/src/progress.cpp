// The processor's records of a message's progress (design.md "Processing"):
// what it needs next (due, get, read_raw), each step recorded before or
// after its call so a restart resumes without a second ticket (user, media,
// the POST flag, the ticket), the recorded decision, and the ends: done,
// deferred, postponed, failed. Threading's records are thread_index.cpp.
//
// Threads: the processor's (in `serve`: the processing thread), on db_.
#include "mailgate/spool/spool.hpp"

#include "db.hpp"
#include "mailgate/text/ascii.hpp"
#include "mailgate/text/file.hpp"

#include <fstream>

namespace mailgate::spool {

std::vector<MessageRecord> Spool::due(std::int64_t now, std::size_t limit) {
  std::string sql = std::string("SELECT ") + Db::kColumns +
                    " FROM messages WHERE state='queued' AND next_attempt_at<=? ORDER BY next_attempt_at, id LIMIT ?";
  auto st = db_->prepare(sql.c_str());
  st.bind(1, now).bind(2, static_cast<std::int64_t>(limit));
  std::vector<MessageRecord> out;
  while (st.step()) out.push_back(Db::row(st));
  return out;
}

std::optional<MessageRecord> Spool::get(const std::string& id) {
  std::string sql = std::string("SELECT ") + Db::kColumns + " FROM messages WHERE id=?";
  auto st = db_->prepare(sql.c_str());
  st.bind(1, id);
  if (!st.step()) return std::nullopt;
  return Db::row(st);
}

std::string Spool::read_raw(const std::string& id) {
  auto rec = get(id);
  auto raw = text::read_file(existing_path(id, rec ? rec->state : State::Queued));
  if (!raw) throw std::runtime_error("spool file of " + id + " is missing");
  return std::move(*raw);
}

void Spool::set_user(const std::string& id, const std::string& uuid) {
  auto st = db_->prepare("UPDATE messages SET user_uuid=? WHERE id=?");
  st.bind(1, uuid).bind(2, id);
  st.step();
}

std::vector<MediaRecord> Spool::media(const std::string& id) {
  auto st = db_->prepare("SELECT ref, uuid, uploaded_at FROM media WHERE message=?");
  st.bind(1, id);
  std::vector<MediaRecord> out;
  while (st.step()) out.push_back({st.text(0), st.text(1), st.integer(2)});
  return out;
}

void Spool::set_media(const std::string& id, const MediaRecord& m) {
  auto st = db_->prepare("INSERT OR REPLACE INTO media(message, ref, uuid, uploaded_at) VALUES(?, ?, ?, ?)");
  st.bind(1, id).bind(2, m.ref).bind(3, m.uuid).bind(4, m.uploaded_at);
  st.step();
}

void Spool::mark_ticket_post_started(const std::string& id) {
  auto st = db_->prepare(
      "UPDATE messages SET ticket_post_started=1, ticket_post_started_at=CASE WHEN ticket_post_started_at=0 "
      "THEN ? ELSE ticket_post_started_at END WHERE id=?");
  st.bind(1, now_unix()).bind(2, id);
  st.step();
}

void Spool::set_ticket(const std::string& id, const std::string& ticket_id, const std::string& full_uuid) {
  // The record of the ticket id comes first: once it is durable, a crash
  // can no longer cause the ticket to be posted again.
  auto st = db_->prepare(
      "UPDATE messages SET ticket_id=?, ticket_full_uuid=?, ticket_post_started=0, state='done', outcome=?, "
      "finished_at=?, last_error='' WHERE id=?");
  std::string outcome = "ticket " + ticket_id + (full_uuid.empty() ? "" : " " + full_uuid);
  st.bind(1, ticket_id).bind(2, full_uuid).bind(3, outcome).bind(4, now_unix()).bind(5, id);
  st.step();
  move_file(id, State::Queued, State::Done);
}

std::optional<std::string> Spool::message_with_ticket(const std::string& ticket_id) {
  auto st = db_->prepare("SELECT id FROM messages WHERE ticket_id=? LIMIT 1");
  st.bind(1, ticket_id);
  if (!st.step()) return std::nullopt;
  return st.text(0);
}

void Spool::finish(const std::string& id, const std::string& outcome) {
  auto st = db_->prepare("UPDATE messages SET state='done', outcome=?, finished_at=? WHERE id=?");
  st.bind(1, outcome).bind(2, now_unix()).bind(3, id);
  st.step();
  move_file(id, State::Queued, State::Done);
}

void Spool::defer(const std::string& id, std::int64_t next_attempt_at, const std::string& error) {
  auto st = db_->prepare("UPDATE messages SET next_attempt_at=?, attempts=attempts+1, last_error=? WHERE id=?");
  st.bind(1, next_attempt_at).bind(2, error).bind(3, id);
  st.step();
}

void Spool::fail(const std::string& id, const std::string& reason) {
  auto st = db_->prepare(
      "UPDATE messages SET state='failed', outcome=?, last_error=?, finished_at=?, attempts=attempts+1 WHERE id=?");
  st.bind(1, "failed: " + reason).bind(2, reason).bind(3, now_unix()).bind(4, id);
  st.step();
  move_file(id, State::Queued, State::Failed);
  std::ofstream(reason_path(id)) << reason << "\n";
}

void Spool::postpone(const std::string& id, std::int64_t next_attempt_at, const std::string& why) {
  auto st = db_->prepare("UPDATE messages SET next_attempt_at=?, last_error=? WHERE id=?");
  st.bind(1, next_attempt_at).bind(2, why).bind(3, id);
  st.step();
}

void Spool::forget_references(const std::string& id, bool user, bool media) {
  auto st = db_->prepare(user ? "UPDATE messages SET user_uuid='', ticket_post_started=0 WHERE id=?"
                              : "UPDATE messages SET ticket_post_started=0 WHERE id=?");
  st.bind(1, id);
  st.step();
  if (media) {
    auto del = db_->prepare("DELETE FROM media WHERE message=?");
    del.bind(1, id);
    del.step();
  }
}

void Spool::record_decision(const std::string& id, const RecordedDecision& d) {
  const State to = d.action == "hold" ? State::Held : d.action == "ignore" ? State::Ignored : State::Queued;
  const std::string outcome = to == State::Held ? "held: " + d.reason : to == State::Ignored ? "ignored: " + d.reason : "";
  auto st = db_->prepare(
      "UPDATE messages SET decision=?, decision_route=?, decision_reason=?, decision_kind=?, decision_from=?, "
      "decision_subject=?, decision_fields=?, decided_at=?, state=?, outcome=?, "
      "finished_at=CASE WHEN ?='ignored' THEN ? ELSE finished_at END WHERE id=?");
  const std::string state(to_string(to));
  const std::int64_t now = now_unix();
  st.bind(1, d.action).bind(2, d.route).bind(3, d.reason).bind(4, d.kind).bind(5, text::ascii_lower(d.from_address));
  st.bind(6, d.subject).bind(7, d.ticket_fields).bind(8, now).bind(9, state).bind(10, outcome);
  st.bind(11, state).bind(12, now).bind(13, id);
  st.step();
  move_file(id, State::Queued, to);
}

int Spool::count_ticket_decisions(const std::string& from_address, std::int64_t since, const std::string& except_id) {
  auto st = db_->prepare(
      "SELECT COUNT(*) FROM messages WHERE decision_from=? AND decided_at>=? AND decision='ticket' AND id<>?");
  st.bind(1, text::ascii_lower(from_address)).bind(2, since).bind(3, except_id);
  st.step();
  return static_cast<int>(st.integer(0));
}

}  // namespace mailgate::spool
