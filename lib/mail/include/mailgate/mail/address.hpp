// RFC 5322 address lists as mail clients really write them: quoted display
// names with commas, comments, groups, bare addresses, old "addr (Name)".
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mailgate::mail {

struct Mailbox {
  std::string name;     // decoded display name (UTF-8), may be empty
  std::string address;  // local@domain as written (case kept)
};

// Parses an address-list header value. Group names are dropped, their
// members kept. Entries without any address are skipped. Never fails.
std::vector<Mailbox> parse_address_list(std::string_view raw);

}  // namespace mailgate::mail
