// Internal to lib/spool: the SQLite wrapper every spool source file uses.
// Spool methods that keep records for one room (the thread index, the
// envelope, …) live in their own source files and reach the database
// through this. The connection is opened SQLITE_OPEN_FULLMUTEX: the
// committer thread and the caller's thread both use it.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "mailgate/spool/spool.hpp"

namespace mailgate::spool {

State state_from(std::string_view s);

// Recipients are one column, one address a line (addresses never hold a
// line break: the spool drops any that do).
std::string join_lines(const std::vector<std::string>& items);
std::vector<std::string> split_lines(std::string_view text);

struct Spool::Db {
  sqlite3* db = nullptr;
  ~Db() {
    if (db) sqlite3_close(db);
  }
  void exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "unknown";
      sqlite3_free(err);
      throw std::runtime_error(std::string("spool database: ") + msg + " in: " + sql);
    }
  }
  struct Stmt {
    sqlite3_stmt* s = nullptr;
    sqlite3* db;
    Stmt(sqlite3* d, const char* sql) : db(d) {
      if (sqlite3_prepare_v2(d, sql, -1, &s, nullptr) != SQLITE_OK)
        throw std::runtime_error(std::string("spool database: ") + sqlite3_errmsg(d));
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
    std::string text(int col) {
      auto p = sqlite3_column_text(s, col);
      return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(s, col))) : "";
    }
    std::int64_t integer(int col) { return sqlite3_column_int64(s, col); }
  };
  Stmt prepare(const char* sql) { return Stmt(db, sql); }

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

}  // namespace mailgate::spool
