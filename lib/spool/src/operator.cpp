// What people and monitoring ask of the spool: `mailgate queue` (list,
// retry, release, drop), expiry of done and ignored mail, and the figures
// behind /metrics and /healthz.
//
// Threads: `queue` runs in its own process; expiry and stats run on
// `serve`'s main io_context; all on db_.
#include "mailgate/spool/spool.hpp"

#include "db.hpp"
#include "files.hpp"

#include <unistd.h>

namespace mailgate::spool {

Spool::Stats Spool::stats() {
  Stats out;
  auto st = db_->prepare("SELECT state, COALESCE(source, ''), COUNT(*) FROM messages GROUP BY state, source");
  while (st.step())
    out.counts.push_back({state_from(st.text(0)), st.text(1), static_cast<std::uint64_t>(st.integer(2))});
  auto q = db_->prepare(
      "SELECT COALESCE(SUM(size),0), COALESCE(SUM(attempts>0),0), COALESCE(MIN(received_at),0) FROM messages "
      "WHERE state='queued'");
  q.step();
  out.queued_bytes = static_cast<std::uint64_t>(q.integer(0));
  out.deferred = static_cast<std::uint64_t>(q.integer(1));
  out.oldest_queued_at = q.integer(2);
  auto held = db_->prepare("SELECT decision_kind, COUNT(*) FROM messages WHERE state='held' GROUP BY decision_kind");
  while (held.step()) out.held_by_kind.emplace_back(held.text(0), static_cast<std::uint64_t>(held.integer(1)));
  return out;
}

std::vector<MessageRecord> Spool::list(std::optional<State> state) {
  std::string sql = std::string("SELECT ") + Db::kColumns + " FROM messages" + (state ? " WHERE state=?" : "") +
                    " ORDER BY received_at, id";
  auto st = db_->prepare(sql.c_str());
  if (state) st.bind(1, std::string(to_string(*state)));
  std::vector<MessageRecord> out;
  while (st.step()) out.push_back(Db::row(st));
  return out;
}

bool Spool::retry(const std::string& id) {
  auto rec = get(id);
  if (!rec) return false;
  // Ignored mail past policy.ignored_retention has no file left to post.
  if (rec->state == State::Ignored)
    return ::access(existing_path(id, State::Ignored).c_str(), F_OK) == 0 &&
           requeue_decided_by_person(id, State::Ignored);
  if (rec->state != State::Failed && rec->state != State::Queued) return false;
  move_file(id, rec->state, State::Queued);
  ::unlink(reason_path(id).c_str());
  // A person's decision (design.md): policy and flood are skipped when it
  // is decided again; a recorded ticket decision stays as it was.
  // A recorded decision stays, dated now: give_up_after counts from here.
  auto st = db_->prepare(
      "UPDATE messages SET state='queued', next_attempt_at=?1, outcome='', person_decided=1, "
      "decided_at=CASE WHEN decision='' THEN 0 ELSE ?1 END WHERE id=?2");
  st.bind(1, now_unix()).bind(2, id);
  st.step();
  return true;
}

bool Spool::release(const std::string& id) {
  auto rec = get(id);
  if (!rec || rec->state != State::Held) return false;
  return requeue_decided_by_person(id, State::Held);
}

// Back to queued with the earlier decision forgotten and the mark that a
// person decided: the processor decides again, skipping policy and flood.
bool Spool::requeue_decided_by_person(const std::string& id, State from) {
  auto st = db_->prepare(
      "UPDATE messages SET state='queued', next_attempt_at=?, outcome='', finished_at=0, person_decided=1, "
      "decision='', decision_route='', decision_reason='', decision_kind='', decided_at=0 WHERE id=? AND state=?");
  st.bind(1, now_unix()).bind(2, id).bind(3, std::string(to_string(from)));
  st.step();
  if (st.changes() != 1) return false;
  move_file(id, from, State::Queued);
  return true;
}

bool Spool::drop(const std::string& id) {
  auto rec = get(id);
  if (!rec) return false;
  for (State st : kAllStates) ::unlink(path_of(id, st).c_str());
  ::unlink(reason_path(id).c_str());
  for (const char* sql : {"DELETE FROM media WHERE message=?", "DELETE FROM messages WHERE id=?"}) {
    auto st = db_->prepare(sql);
    st.bind(1, id);
    st.step();
  }
  return true;
}

std::size_t Spool::expire_done(std::int64_t now, std::int64_t retention_seconds) {
  return expire_files(State::Done, now, retention_seconds);
}

std::size_t Spool::expire_ignored(std::int64_t now, std::int64_t retention_seconds) {
  return expire_files(State::Ignored, now, retention_seconds);
}

// The raw file goes; the record stays (the seen-set, `queue list`).
std::size_t Spool::expire_files(State state, std::int64_t now, std::int64_t retention_seconds) {
  auto st = db_->prepare("SELECT id FROM messages WHERE state=? AND finished_at>0 AND finished_at<?");
  st.bind(1, std::string(to_string(state))).bind(2, now - retention_seconds);
  std::vector<std::string> expired;  // read first: no unlink while the statement holds the connection
  while (st.step()) expired.push_back(st.text(0));
  std::size_t n = 0;
  for (const auto& id : expired) n += ::unlink(existing_path(id, state).c_str()) == 0;
  return n;
}

}  // namespace mailgate::spool
