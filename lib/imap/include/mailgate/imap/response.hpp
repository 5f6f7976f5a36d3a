// IMAP server responses (RFC 3501 §7, RFC 7888 literals, RFC 3516 ~{n}).
// A response is one line plus the literals it announces; the connection
// assembles it and this parser turns it into values. Bounded everywhere:
// a hostile server gets a ResponseError, never a crash or unbounded memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mailgate::imap {

struct ResponseError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Value {
  enum class Kind { Atom, String, Nil, List, Section };  // Section: [ ... ] (response codes)
  Kind kind = Kind::Atom;
  std::string text;          // Atom, String (decoded quoted string or literal)
  std::vector<Value> items;  // List, Section
  bool is_atom(std::string_view upper_name) const;  // case-insensitive
  std::optional<std::uint64_t> number() const;      // an atom made of digits
};

struct Response {
  enum class Kind { Tagged, Untagged, Continuation } kind = Kind::Untagged;
  std::string tag;                   // Tagged only
  std::optional<std::uint64_t> number;  // "* 12 EXISTS": 12
  std::string name;                  // upper case: OK NO BAD BYE PREAUTH EXISTS EXPUNGE FETCH SEARCH CAPABILITY FLAGS LIST …
  std::optional<Value> code;         // status responses: [UIDVALIDITY 5] as a Section
  std::string text;                  // status responses and continuations: the human-readable rest
  std::vector<Value> data;           // data responses: the values after the name
  bool is_status() const;            // OK NO BAD BYE PREAUTH
};

struct ParserLimits {
  std::size_t max_depth = 64;
  std::size_t max_values = 1'000'000;  // a SEARCH of every UID in a large mailbox
};

// Parses one complete response: its line(s) and literals, ending in CRLF.
// Literals are "{n}\r\n" + n bytes ({n+} and ~{n} are accepted too).
Response parse_response(std::string_view wire, const ParserLimits& limits = {});

// "* OK [CAPABILITY IMAP4rev1 IDLE]" and "* CAPABILITY …": the atoms, upper case.
std::vector<std::string> capabilities_of(const Response& r);

// Quotes a string for a command: an atom-safe quoted string, or nullopt when
// it has CR, LF or NUL (then a literal must be used).
std::optional<std::string> quote(std::string_view s);

// RFC 3501 §2.3.1.1: a UID is a 32-bit nz-number. Anything larger is a
// protocol error, never a mark: 2^64-1 would wrap "last UID + 1" to 0.
inline constexpr std::uint64_t kMaxUid = 4'294'967'295ull;

// "* SEARCH 1 2 3" (a CONDSTORE "(MODSEQ n)" at the end is ignored): each
// number goes to `on_number` as it is read, so a huge result never becomes a
// list of values. False, and nothing reported, when `wire` is not such a
// response (parse_response reads it then). A number too large for 64 bits is
// reported as UINT64_MAX: out of any UID's range.
bool scan_search(std::string_view wire, const std::function<void(std::uint64_t)>& on_number);

// The UID of a FETCH response from its text before a literal
// ("* 3 FETCH (UID 7 BODY[] {120}" gives 7), when "UID n" comes first.
std::optional<std::uint64_t> fetch_uid_before_literal(std::string_view line);

// "{123}", "{123+}" or "~{123}" at the end of a line (without CRLF): the size.
std::optional<std::uint64_t> literal_size_at_end(std::string_view line);

}  // namespace mailgate::imap
