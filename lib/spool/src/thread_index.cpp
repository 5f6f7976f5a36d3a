// The thread index and the reply records (design.md "Threading"): which
// ticket a Message-ID created or joined, kept for threading.remember (longer
// than done/ keeps raw mail), and a reply's progress recorded step by step so
// that a crash never posts it twice. The index survives restarts: it is a
// table of the spool's database, written in the same transaction as the
// reply that adds a row.
#include "mailgate/spool/spool.hpp"
#include "mailgate/text/ascii.hpp"

#include "db.hpp"


namespace mailgate::spool {
namespace {

// Message-IDs are compared as the seen-set compares them: case-insensitively.
std::string index_key(std::string_view message_id) { return text::ascii_lower(message_id); }

constexpr const char* kEntryColumns = "ticket_id, ticket_full_uuid, creator_address, creator_user, at";

ThreadEntry entry_row(Db::Stmt& st) {
  return {st.text(0), st.text(1), st.text(2), st.text(3), st.integer(4)};
}

}  // namespace

void create_thread_index(Db& db) {
  db.exec(
      "CREATE TABLE IF NOT EXISTS thread_index(message_id TEXT PRIMARY KEY, ticket_id TEXT NOT NULL, "
      "ticket_full_uuid TEXT DEFAULT '', creator_address TEXT DEFAULT '', creator_user TEXT DEFAULT '', "
      "at INTEGER NOT NULL);"
      "CREATE INDEX IF NOT EXISTS thread_index_ticket ON thread_index(ticket_id);"
      "CREATE INDEX IF NOT EXISTS thread_index_at ON thread_index(at);"
      "CREATE INDEX IF NOT EXISTS messages_message_id ON messages(message_id COLLATE NOCASE);"
      "CREATE INDEX IF NOT EXISTS messages_reply_id ON messages(reply_id);");
}

void Spool::remember_thread(const std::string& message_id, const ThreadEntry& entry) {
  if (message_id.empty()) return;  // nothing can ever name it
  auto st = db_->prepare(
      "INSERT OR REPLACE INTO thread_index(message_id, ticket_id, ticket_full_uuid, creator_address, creator_user, at) "
      "VALUES(?, ?, ?, ?, ?, ?)");
  st.bind(1, index_key(message_id)).bind(2, entry.ticket_id).bind(3, entry.ticket_full_uuid);
  st.bind(4, index_key(entry.creator_address)).bind(5, entry.creator_user).bind(6, entry.at ? entry.at : now_unix());
  st.step();
}

std::optional<ThreadEntry> Spool::thread_of(const std::string& message_id) {
  const std::string sql = std::string("SELECT ") + kEntryColumns + " FROM thread_index WHERE message_id=?";
  auto st = db_->prepare(sql.c_str());
  st.bind(1, index_key(message_id));
  if (!st.step()) return std::nullopt;
  return entry_row(st);
}

std::optional<ThreadEntry> Spool::thread_of_ticket(const std::string& ticket_id) {
  // The oldest row: the message that created the ticket, when it is still there.
  const std::string sql = std::string("SELECT ") + kEntryColumns + " FROM thread_index WHERE ticket_id=? ORDER BY at LIMIT 1";
  auto st = db_->prepare(sql.c_str());
  st.bind(1, ticket_id);
  if (!st.step()) return std::nullopt;
  return entry_row(st);
}

std::size_t Spool::forget_threads_before(std::int64_t cutoff) {
  auto st = db_->prepare("DELETE FROM thread_index WHERE at<?");
  st.bind(1, cutoff);
  st.step();
  return static_cast<std::size_t>(st.changes());
}

std::optional<std::string> Spool::queued_parent(const std::vector<std::string>& message_ids, const std::string& spool_id) {
  // Only messages committed earlier (rowid order: spool ids sort by the
  // second only) can block: two messages naming each other never wait for
  // each other.
  auto st = db_->prepare(
      "SELECT id FROM messages WHERE message_id=? COLLATE NOCASE AND state='queued' "
      "AND rowid<(SELECT rowid FROM messages WHERE id=?) LIMIT 1");
  for (const auto& mid : message_ids) {
    if (mid.empty()) continue;
    st.reset();
    st.bind(1, mid).bind(2, spool_id);
    if (st.step()) return st.text(0);
  }
  return std::nullopt;
}

void Spool::set_thread(const std::string& id, const std::string& ticket_id, const std::string& by) {
  auto st = db_->prepare("UPDATE messages SET joined_ticket=?, thread_by=? WHERE id=?");
  st.bind(1, ticket_id).bind(2, by).bind(3, id);
  st.step();
}

void Spool::clear_thread(const std::string& id) {
  auto st = db_->prepare("UPDATE messages SET joined_ticket='', thread_by='', reply_post_started_at=0 WHERE id=?");
  st.bind(1, id);
  st.step();
}

void Spool::mark_reply_post_started(const std::string& id) {
  auto st = db_->prepare(
      "UPDATE messages SET reply_post_started_at=CASE WHEN reply_post_started_at=0 THEN ? ELSE reply_post_started_at "
      "END WHERE id=?");
  st.bind(1, now_unix()).bind(2, id);
  st.step();
}

void Spool::set_reply(const std::string& id, const std::string& reply_id, const std::string& message_id,
                      const ThreadEntry& entry) {
  auto rec = get(id);
  if (!rec) return;
  const std::string outcome = "reply " + reply_id + " on ticket " + rec->joined_ticket +
                              (rec->thread_by.empty() ? "" : " (by " + rec->thread_by + ")");
  // The reply id and the index row in one transaction: once durable, a crash
  // can no longer post the reply again, and its Message-ID finds the ticket.
  {
    Db::Transaction transaction(*db_);
    auto st = db_->prepare(
        "UPDATE messages SET reply_id=?, state='done', outcome=?, finished_at=?, last_error='' WHERE id=?");
    st.bind(1, reply_id).bind(2, outcome).bind(3, now_unix()).bind(4, id);
    st.step();
    remember_thread(message_id, entry);
    transaction.commit();
  }
  move_file(id, State::Queued, State::Done);
}

void Spool::note_outcome(const std::string& id, const std::string& why) {
  auto st = db_->prepare("UPDATE messages SET outcome=outcome || ' (' || ? || ')' WHERE id=?");
  st.bind(1, why).bind(2, id);
  st.step();
}

std::optional<std::string> Spool::message_with_reply(const std::string& reply_id) {
  auto st = db_->prepare("SELECT id FROM messages WHERE reply_id=? LIMIT 1");
  st.bind(1, reply_id);
  if (!st.step()) return std::nullopt;
  return st.text(0);
}

struct ThreadIndexReader::Impl {
  sqlite3* db = nullptr;
  ~Impl() {
    if (db) sqlite3_close(db);
  }
  std::optional<ThreadEntry> one(const std::string& sql, const std::string& key) const {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) return std::nullopt;  // an older spool
    sqlite3_bind_text(st, 1, key.data(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
    std::optional<ThreadEntry> out;
    if (sqlite3_step(st) == SQLITE_ROW) {
      auto text = [&](int col) {
        auto p = sqlite3_column_text(st, col);
        return p ? std::string(reinterpret_cast<const char*>(p)) : std::string();
      };
      out = ThreadEntry{text(0), text(1), text(2), text(3), sqlite3_column_int64(st, 4)};
    }
    sqlite3_finalize(st);
    return out;
  }
};

std::unique_ptr<ThreadIndexReader> ThreadIndexReader::open(const std::string& spool_dir) {
  const std::string path = spool_dir + "/state.sqlite";
  std::unique_ptr<ThreadIndexReader> r(new ThreadIndexReader());
  r->impl_ = std::make_unique<Impl>();
  if (sqlite3_open_v2(path.c_str(), &r->impl_->db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) return nullptr;
  sqlite3_busy_timeout(r->impl_->db, 2000);
  return r;
}

ThreadIndexReader::~ThreadIndexReader() = default;

std::optional<ThreadEntry> ThreadIndexReader::thread_of(const std::string& message_id) const {
  return impl_->one(std::string("SELECT ") + kEntryColumns + " FROM thread_index WHERE message_id=?",
                    index_key(message_id));
}

std::optional<ThreadEntry> ThreadIndexReader::thread_of_ticket(const std::string& ticket_id) const {
  return impl_->one(std::string("SELECT ") + kEntryColumns + " FROM thread_index WHERE ticket_id=? ORDER BY at LIMIT 1",
                    ticket_id);
}

}  // namespace mailgate::spool
