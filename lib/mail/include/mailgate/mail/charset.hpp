// Conversion of any declared charset to UTF-8 through glibc iconv.
// A wrong or unknown label never garbles the text around it: invalid
// sequences become U+FFFD one by one, and mislabelled UTF-8 is recognised.
#pragma once

#include <string>
#include <string_view>

namespace mailgate::mail {

// Converts `bytes` declared as `charset` (any case, quotes allowed, empty =
// unknown) to valid UTF-8. Never fails.
std::string to_utf8(std::string_view bytes, std::string_view charset);

// For text with no declared charset (8-bit header bytes, filenames): UTF-8
// when it is valid UTF-8, else windows-1252, the de-facto default of the web
// and of Outlook.
std::string undeclared_to_utf8(std::string_view bytes);

}  // namespace mailgate::mail
