// The fetcher's marks in the spool's database: a thin forwarding layer, so
// the fetcher speaks of marks and the spool keeps the tables.
#include "mailgate/imap/mark_store.hpp"

#include "mailgate/spool/spool.hpp"

namespace mailgate::imap {

Mark SpoolMarkStore::mark(const std::string& mailbox) {
  const auto m = spool_.imap_mark(mailbox);
  return {m.uidvalidity, m.last_uid};
}

void SpoolMarkStore::set_mark(const std::string& mailbox, const Mark& mark) {
  spool_.set_imap_mark(mailbox, {mark.uidvalidity, mark.last_uid});
}

void SpoolMarkStore::record_skip(const std::string& mailbox, const Skip& skip) {
  spool_.record_imap_skip(mailbox, skip.uidvalidity, skip.uid, skip.size, skip.reason);
}

}  // namespace mailgate::imap
