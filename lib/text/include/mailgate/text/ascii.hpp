// ASCII case and white space. Mail headers, SMTP verbs, config keywords and
// IMAP atoms are compared without case in ASCII only (RFC 5321 2.4, RFC 5322
// 1.2.2, RFC 3501 9): none of these helpers looks at a locale.
#pragma once

#include <string>
#include <string_view>

namespace mailgate::text {

// Without leading and trailing space, tab, CR and LF.
std::string_view trim(std::string_view s);
// A-Z → a-z; every other byte (UTF-8 too) unchanged.
std::string ascii_lower(std::string_view s);
bool iequals(std::string_view a, std::string_view b);
bool istarts_with(std::string_view s, std::string_view prefix);
// Every run of white space and control bytes (CR/LF, tab, NUL, DEL…) as one
// space, none at either end: a header value or a message compared or shown
// as one line.
std::string fold_whitespace(std::string_view s);

}  // namespace mailgate::text
