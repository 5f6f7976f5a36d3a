// MIME structure parser (RFC 2045/2046/5322) with hard bounds, in the manner
// of Dovecot's lib-mail: nesting depth, part count, header size and field
// count are limited; past a limit the rest is reported, never a crash, a
// stack overflow or a hang. Bodies are views into the caller's buffer, so
// the message is held once in memory, not once per level.
//
// Why not mimetic's parser: on Debian 12's mimetic 0.9.8 a 200 000-level
// nesting bomb overflows the stack (SIGSEGV), and a multipart whose inner
// closing boundary is missing swallows the outer's following parts (an
// attachment silently lost). Both cases are in tests/corpus.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "mailgate/mail/header_block.hpp"
#include "mailgate/mail/header_decode.hpp"

namespace mailgate::mail {

struct MimeLimits {
  std::size_t max_depth = 50;                                 // nested multiparts
  std::size_t max_parts = 1000;                               // entities in one message
  std::size_t max_header_bytes = kMaxHeaderBlockBytes;        // one entity's header block
  std::size_t max_header_fields = kMaxHeaderFields;           // fields kept per entity
  std::size_t max_field_bytes = kMaxHeaderFieldBytes;         // one field, folded lines included
};

struct MimePart {
  std::vector<HeaderField> headers;
  HeaderParams content_type;  // value defaulted to "text/plain" per RFC 2045 §5.2
  HeaderParams disposition;   // Content-Disposition; value "" when absent
  std::string_view body;      // still transfer-encoded; view into the message
  std::vector<MimePart> children;

  // First field of that name (case-insensitive), or nullptr.
  const HeaderField* find(std::string_view name) const;
  // Its raw value, or "" when absent.
  std::string_view header(std::string_view name) const;
  bool is_multipart() const { return content_type.value.rfind("multipart/", 0) == 0; }
};

struct ParsedMessage {
  MimePart root;
  // What the limits cut off, in words an operator understands.
  std::vector<std::string> truncations;
};

// Parses the whole message; `raw` must outlive the result.
ParsedMessage parse_mime(std::string_view raw, const MimeLimits& limits = {});

// Parses only a header block (for message/rfc822 parts) with the header
// reader (header_block.hpp): fields appended to `part`, what the limits cut
// noted in `truncations`; returns the offset where the body starts.
std::size_t parse_header_block(std::string_view raw, MimePart& part, const MimeLimits& limits,
                               std::vector<std::string>* truncations = nullptr);

}  // namespace mailgate::mail
