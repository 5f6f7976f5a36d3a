// The spool database: opening a connection, the schema and its migrations,
// and the column encodings of db.hpp.
#include "db.hpp"

#include <unistd.h>

#include <algorithm>

namespace mailgate::spool {
namespace {

// The committer thread, the processor and other mailgate processes share
// the database. SQLite's own busy timeout sleeps in steps of up to 100 ms;
// a write lock here is held for about one fsync, so poll finely instead.
int wait_for_lock(void*, int tries) {
  constexpr int kMaxTries = 20'000;  // ~10 s at 0.5 ms
  if (tries >= kMaxTries) return 0;
  ::usleep(tries < 100 ? 100 : 500);
  return 1;
}

void create_tables(Db& db) {
  db.exec(
      "CREATE TABLE IF NOT EXISTS messages(id TEXT PRIMARY KEY, state TEXT NOT NULL, seen_key TEXT NOT NULL, "
      "source TEXT, message_id TEXT, size INTEGER, received_at INTEGER, next_attempt_at INTEGER, "
      "attempts INTEGER DEFAULT 0, last_error TEXT DEFAULT '', user_uuid TEXT DEFAULT '', ticket_id TEXT DEFAULT '', "
      "ticket_post_started INTEGER DEFAULT 0, outcome TEXT DEFAULT '', finished_at INTEGER DEFAULT 0);"
      "CREATE INDEX IF NOT EXISTS messages_due ON messages(state, next_attempt_at);"
      "CREATE TABLE IF NOT EXISTS seen(key TEXT PRIMARY KEY, message TEXT NOT NULL, at INTEGER);"
      "CREATE TABLE IF NOT EXISTS media(message TEXT, ref TEXT, uuid TEXT, uploaded_at INTEGER, PRIMARY KEY(message, ref));"
      "CREATE TABLE IF NOT EXISTS users(address TEXT PRIMARY KEY, uuid TEXT, at INTEGER);"
      "CREATE TABLE IF NOT EXISTS imap_marks(mailbox TEXT PRIMARY KEY, uidvalidity INTEGER, last_uid INTEGER);"
      "CREATE TABLE IF NOT EXISTS imap_skipped(mailbox TEXT, uidvalidity INTEGER, uid INTEGER, size INTEGER, "
      "reason TEXT, at INTEGER, PRIMARY KEY(mailbox, uidvalidity, uid));");
}

// Columns added since the first schema: spools made before get them here.
void add_missing_columns(Db& db) {
  for (const char* column : {"ticket_post_started_at INTEGER DEFAULT 0", "ticket_full_uuid TEXT DEFAULT ''",
                             "mail_from TEXT DEFAULT ''", "recipients TEXT DEFAULT ''", "decision TEXT DEFAULT ''",
                             "decision_route TEXT DEFAULT ''", "decision_reason TEXT DEFAULT ''",
                             "decision_kind TEXT DEFAULT ''", "decision_from TEXT DEFAULT ''",
                             "decision_subject TEXT DEFAULT ''", "decision_fields TEXT DEFAULT ''",
                             "decided_at INTEGER DEFAULT 0", "person_decided INTEGER DEFAULT 0",
                             "envelope_kept INTEGER DEFAULT 0",
                             "joined_ticket TEXT DEFAULT ''", "thread_by TEXT DEFAULT ''", "reply_id TEXT DEFAULT ''",
                             "reply_post_started_at INTEGER DEFAULT 0"}) {
    const std::string name = std::string(column).substr(0, std::string(column).find(' '));
    auto info = db.prepare("SELECT 1 FROM pragma_table_info('messages') WHERE name=?");
    info.bind(1, name);
    if (!info.step()) db.exec(("ALTER TABLE messages ADD COLUMN " + std::string(column)).c_str());
  }
}

}  // namespace

std::unique_ptr<detail::Db> detail::Db::open(const std::string& dir) {
  auto db = std::make_unique<Db>();
  if (sqlite3_open_v2((dir + "/state.sqlite").c_str(), &db->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK)
    throw std::runtime_error("cannot open the spool database in " + dir);
  sqlite3_busy_handler(db->db, wait_for_lock, nullptr);
  db->exec("PRAGMA journal_mode=WAL");
  db->exec("PRAGMA synchronous=FULL");
  create_tables(*db);
  add_missing_columns(*db);
  // Rooms that keep their own records create their tables in their own
  // source file, called from here.
  create_thread_index(*db);
  // policy.flood counts a sender's recent ticket decisions.
  db->exec("CREATE INDEX IF NOT EXISTS messages_decided_from ON messages(decision_from, decided_at)");
  return db;
}

State state_from(std::string_view s) { return state_named(s).value_or(State::Queued); }

std::string join_lines(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : "\n") + i;
  return out;
}

std::vector<std::string> split_lines(std::string_view text) {
  std::vector<std::string> out;
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t eol = std::min(text.find('\n', pos), text.size());
    out.emplace_back(text.substr(pos, eol - pos));
    pos = eol + 1;
  }
  return out;
}

}  // namespace mailgate::spool
