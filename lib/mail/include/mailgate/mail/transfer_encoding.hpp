// Content-Transfer-Encoding decoders (RFC 2045 §6), lenient like the mail
// clients people use: junk is skipped, never fatal, and output is best effort.
#pragma once

#include <string>
#include <string_view>

namespace mailgate::mail {

// Base64 that skips every byte outside the alphabet (line breaks, spaces,
// stray punctuation) and treats '=' as "this quantum ended" rather than
// "the data ended", so concatenated padded blocks decode fully.
std::string decode_base64(std::string_view encoded);

// Standard base64 with padding and no line breaks (for API payloads).
std::string encode_base64(std::string_view bytes);

// Quoted-printable: "=XX" (either case), soft line breaks "=\r\n" and "=\n",
// trailing whitespace on a line dropped (RFC 2045 §6.7 rule 3); an "=" not
// followed by two hex digits is kept literally.
std::string decode_quoted_printable(std::string_view encoded);

// Decodes a body by its Content-Transfer-Encoding value; unknown or identity
// encodings (7bit, 8bit, binary, x-anything) return the bytes unchanged.
std::string decode_transfer_encoding(std::string_view body, std::string_view encoding);

}  // namespace mailgate::mail
