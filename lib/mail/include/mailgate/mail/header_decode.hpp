// Header-field decoders: RFC 2047 encoded-words, RFC 2045/2231 parameters.
// Every function returns valid UTF-8 and never fails; malformed input yields
// the most readable result we can give (what Thunderbird would show).
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace mailgate::mail {

// Decodes RFC 2047 encoded-words ("=?charset?B|Q?text?=") in an unstructured
// header value. Whitespace between adjacent encoded-words is dropped and
// adjacent words of one charset are joined before conversion, so a
// multi-byte character split across two words survives. Raw 8-bit bytes are
// taken as UTF-8 when valid, else windows-1252. Folding line breaks are
// unfolded.
std::string decode_header_text(std::string_view raw);

// A Content-Type or Content-Disposition value: the lower-cased main value
// ("text/plain", "attachment") and its parameters (names lower-cased,
// values decoded: RFC 2231 continuations and charsets, quoted strings,
// and the non-standard encoded-words Outlook and Gmail put in quotes).
struct HeaderParams {
  std::string value;
  std::map<std::string, std::string> params;

  // The parameter's value, or "" when absent.
  const std::string& param(const std::string& name) const;
  bool has(const std::string& name) const { return params.count(name) != 0; }
};

HeaderParams parse_header_params(std::string_view raw);

}  // namespace mailgate::mail
