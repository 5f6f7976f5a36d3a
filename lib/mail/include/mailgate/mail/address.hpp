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

// "local@domain" lower-cased in the domain only would be RFC-correct, but
// users expect jane@x and Jane@X to be one person (design.md): fully lower.
std::string normalize_address(std::string_view address);

}  // namespace mailgate::mail
