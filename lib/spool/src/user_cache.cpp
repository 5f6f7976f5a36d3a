// The user cache: a sender's address (lower-case) → the API's user id, so a
// second mail from one sender does not look the user up again. Forgotten
// when the API no longer knows the user.
//
// Threads: the processor's, on db_.
#include "mailgate/spool/spool.hpp"

#include "db.hpp"
#include "mailgate/text/ascii.hpp"

namespace mailgate::spool {

std::optional<std::string> Spool::cached_user(const std::string& address) {
  auto st = db_->prepare("SELECT uuid FROM users WHERE address=?");
  st.bind(1, text::ascii_lower(address));
  if (!st.step()) return std::nullopt;
  return st.text(0);
}

void Spool::cache_user(const std::string& address, const std::string& uuid) {
  auto st = db_->prepare("INSERT OR REPLACE INTO users(address, uuid, at) VALUES(?, ?, ?)");
  st.bind(1, text::ascii_lower(address)).bind(2, uuid).bind(3, now_unix());
  st.step();
}

void Spool::forget_user(const std::string& address) {
  auto st = db_->prepare("DELETE FROM users WHERE address=?");
  st.bind(1, text::ascii_lower(address));
  st.step();
}

}  // namespace mailgate::spool
