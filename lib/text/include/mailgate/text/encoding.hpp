// Byte encodings mailgate writes: base64 (IMAP AUTHENTICATE PLAIN, HTTP Basic
// credentials) and SHA-256 as lower-case hex (the seen-set's content key,
// attachment dedup).
#pragma once

#include <string>
#include <string_view>

namespace mailgate::text {

// RFC 4648 base64 with padding, no line breaks.
std::string base64_encode(std::string_view bytes);
// Lower-case hex of the bytes ("\x01\xab" → "01ab").
std::string hex_lower(std::string_view bytes);
// SHA-256 of the bytes, 64 lower-case hex digits.
std::string sha256_hex(std::string_view bytes);

}  // namespace mailgate::text
