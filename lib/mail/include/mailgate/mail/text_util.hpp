// Small ASCII/UTF-8 string helpers shared by the mail decoders.
#pragma once

#include <string>
#include <string_view>

#include "mailgate/text/ascii.hpp"

namespace mailgate::mail {

// Case and trimming are every room's (lib/text); the decoders name them here.
using text::ascii_lower;
using text::fold_whitespace;
using text::iequals;
using text::istarts_with;
using text::trim;


bool is_valid_utf8(std::string_view s);
// Length of the longest prefix of `s` that is valid UTF-8.
std::size_t utf8_valid_prefix(std::string_view s);
bool is_ascii(std::string_view s);

// Replaces each invalid UTF-8 sequence with U+FFFD so the result is always
// safe to put into JSON; valid input is returned unchanged.
std::string sanitize_utf8(std::string_view s);

// 0-15 for a hex digit, else -1.
int hex_value(char c);

// "%XX" sequences decoded (RFC 2231 values, cid: URLs); a "%" not followed
// by two hex digits is kept.
std::string percent_decode(std::string_view s);

// Escapes &, <, >, " for HTML text and attribute values.
std::string html_escape(std::string_view s);

}  // namespace mailgate::mail
