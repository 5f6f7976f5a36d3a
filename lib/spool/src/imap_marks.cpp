// IMAP marks: per mailbox, the UIDVALIDITY and the last UID imported, and
// the messages the fetcher skipped (table imap_skipped).
//
// Threads: the fetchers' (the main io_context), on db_.
#include "mailgate/spool/spool.hpp"

#include "db.hpp"

namespace mailgate::spool {

Spool::ImapMark Spool::imap_mark(const std::string& mailbox) {
  auto st = db_->prepare("SELECT uidvalidity, last_uid FROM imap_marks WHERE mailbox=?");
  st.bind(1, mailbox);
  if (!st.step()) return {};
  return {static_cast<std::uint64_t>(st.integer(0)), static_cast<std::uint64_t>(st.integer(1))};
}

void Spool::set_imap_mark(const std::string& mailbox, const ImapMark& mark) {
  auto st = db_->prepare("INSERT OR REPLACE INTO imap_marks(mailbox, uidvalidity, last_uid) VALUES(?, ?, ?)");
  st.bind(1, mailbox).bind(2, static_cast<std::int64_t>(mark.uidvalidity)).bind(3, static_cast<std::int64_t>(mark.last_uid));
  st.step();
}

void Spool::record_imap_skip(const std::string& mailbox, std::uint64_t uidvalidity, std::uint64_t uid,
                             std::uint64_t size, const std::string& reason) {
  auto st = db_->prepare(
      "INSERT OR REPLACE INTO imap_skipped(mailbox, uidvalidity, uid, size, reason, at) VALUES(?, ?, ?, ?, ?, ?)");
  st.bind(1, mailbox).bind(2, static_cast<std::int64_t>(uidvalidity)).bind(3, static_cast<std::int64_t>(uid));
  st.bind(4, static_cast<std::int64_t>(size)).bind(5, reason).bind(6, now_unix());
  st.step();
}

}  // namespace mailgate::spool
