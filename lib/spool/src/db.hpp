// Internal to lib/spool: the SQLite wrapper every spool source file uses, and
// the messages row ↔ MessageRecord mapping.
//
// Connections and threads. A Spool has two connections to state.sqlite:
// - Spool::db_ serves every Spool method but commit_async. In `serve` two
//   threads use it: the main io_context (capacity, IMAP marks, stats,
//   expiry) and the processing thread (the processor's records). It is
//   opened SQLITE_OPEN_FULLMUTEX, which makes each SQLite call safe from any
//   thread; `in_use` below keeps one thread's statements out of another
//   thread's transaction (a statement and a Transaction hold it while alive).
// - The committer thread opens its own (Spool::Committer::db) and nobody
//   else touches it.
// Other processes (`deliver`, `queue`) open their own connections: WAL lets
// readers run beside the one writer, and the busy handler waits for the
// write lock.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <ctime>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "mailgate/spool/spool.hpp"

namespace mailgate::spool {

using detail::Db;

inline std::int64_t now_unix() { return static_cast<std::int64_t>(std::time(nullptr)); }

State state_from(std::string_view s);

// Recipients are one column, one address a line (addresses never hold a
// line break: the spool drops any that do).
std::string join_lines(const std::vector<std::string>& items);
std::vector<std::string> split_lines(std::string_view text);

namespace detail {

struct Db {
  sqlite3* db = nullptr;
  // Recursive: a method may hold a statement while it prepares another.
  std::recursive_mutex in_use;

  // Opens (creating if need be) the database of the spool in `dir` and
  // brings its schema up to date (db.cpp).
  static std::unique_ptr<Db> open(const std::string& dir);
  ~Db() {
    if (db) sqlite3_close(db);
  }

  void exec(const char* sql) {
    std::lock_guard lock(in_use);
    char* err = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "unknown";
      sqlite3_free(err);
      throw std::runtime_error(std::string("spool database: ") + msg + " in: " + sql);
    }
  }

  struct Stmt {
    std::unique_lock<std::recursive_mutex> lock;  // first: taken before prepare, released after finalize
    sqlite3_stmt* s = nullptr;
    sqlite3* db;
    Stmt(Db& d, const char* sql) : lock(d.in_use), db(d.db) {
      if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK)
        throw std::runtime_error(std::string("spool database: ") + sqlite3_errmsg(db));
    }
    ~Stmt() { sqlite3_finalize(s); }
    Stmt& bind(int i, const std::string& v) {
      sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
      return *this;
    }
    Stmt& bind(int i, std::int64_t v) {
      sqlite3_bind_int64(s, i, v);
      return *this;
    }
    bool step() {
      int r = sqlite3_step(s);
      if (r == SQLITE_ROW) return true;
      if (r == SQLITE_DONE) return false;
      throw std::runtime_error(std::string("spool database: ") + sqlite3_errmsg(db));
    }
    // Runs the statement once more with new bindings.
    void reset() { sqlite3_reset(s); }
    // Rows the last step changed (valid while this statement holds the connection).
    int changes() const { return sqlite3_changes(db); }
    std::string text(int col) {
      auto p = sqlite3_column_text(s, col);
      return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(s, col))) : "";
    }
    std::int64_t integer(int col) { return sqlite3_column_int64(s, col); }
  };
  Stmt prepare(const char* sql) { return Stmt(*this, sql); }

  // BEGIN IMMEDIATE … commit(); rolled back when left without commit()
  // (an exception). Holds the connection for its whole life.
  class Transaction {
   public:
    explicit Transaction(Db& db) : lock_(db.in_use), db_(db) { db_.exec("BEGIN IMMEDIATE"); }
    ~Transaction() {
      if (!committed_) sqlite3_exec(db_.db, "ROLLBACK", nullptr, nullptr, nullptr);
    }
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    void commit() {
      db_.exec("COMMIT");
      committed_ = true;
    }

   private:
    std::unique_lock<std::recursive_mutex> lock_;
    Db& db_;
    bool committed_ = false;
  };

  static constexpr const char* kColumns =
      "id, state, source, message_id, size, received_at, next_attempt_at, attempts, last_error, user_uuid, "
      "ticket_id, ticket_post_started, outcome, ticket_post_started_at, ticket_full_uuid, "
      "mail_from, recipients, decision, decision_route, decision_reason, decision_kind, decision_from, "
      "decision_subject, decision_fields, decided_at, person_decided, envelope_kept, "
      "joined_ticket, thread_by, reply_id, reply_post_started_at";
  static MessageRecord row(Stmt& st) {
    MessageRecord r;
    r.id = st.text(0);
    r.state = state_from(st.text(1));
    r.source = st.text(2);
    r.message_id = st.text(3);
    r.size = static_cast<std::uint64_t>(st.integer(4));
    r.received_at = st.integer(5);
    r.next_attempt_at = st.integer(6);
    r.attempts = static_cast<int>(st.integer(7));
    r.last_error = st.text(8);
    r.user_uuid = st.text(9);
    r.ticket_id = st.text(10);
    r.ticket_post_started = st.integer(11) != 0;
    r.outcome = st.text(12);
    r.ticket_post_started_at = st.integer(13);
    r.ticket_full_uuid = st.text(14);
    r.mail_from = st.text(15);
    r.recipients = split_lines(st.text(16));
    r.decision = {st.text(17), st.text(18), st.text(19), st.text(20), st.text(21), st.text(22), st.text(23)};
    r.decided_at = st.integer(24);
    r.person_decided = st.integer(25) != 0;
    r.envelope_kept = st.integer(26) != 0;
    r.joined_ticket = st.text(27);
    r.thread_by = st.text(28);
    r.reply_id = st.text(29);
    r.reply_post_started_at = st.integer(30);
    return r;
  }
};

}  // namespace detail

// Runs a statement that takes one text parameter (an id) and returns nothing.
inline void run_with_id(Db& db, const char* sql, const std::string& id) {
  auto st = db.prepare(sql);
  st.bind(1, id);
  st.step();
}

// Bytes of every queued message (the queue.max_size limit; intake.cpp).
std::uint64_t queued_bytes(Db& db);

// The thread index's tables (thread_index.cpp), created by Db::open.
void create_thread_index(Db& db);

}  // namespace mailgate::spool
