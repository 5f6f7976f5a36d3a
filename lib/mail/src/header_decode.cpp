// RFC 2047 and RFC 2231 decoding, lenient in the ways real mail requires.
#include "mailgate/mail/header_decode.hpp"

#include <algorithm>
#include <optional>
#include <vector>

#include "mailgate/mail/charset.hpp"
#include "mailgate/mail/header_block.hpp"  // unfold
#include "mailgate/mail/text_util.hpp"
#include "mailgate/mail/transfer_encoding.hpp"

namespace mailgate::mail {
namespace {

struct EncodedWord {
  std::size_t begin = 0, end = 0;  // span in the input, "=?" .. "?="
  std::string charset;
  std::string bytes;  // decoded, still in `charset`
};

std::string decode_q(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '_') {
      out.push_back(' ');
    } else if (c == '=' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 &&
               hex_value(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2])));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// Parses an encoded-word starting at s[pos] ("=?"); nullopt if it is not one.
std::optional<EncodedWord> parse_encoded_word(std::string_view s, std::size_t pos) {
  std::size_t q1 = s.find('?', pos + 2);
  if (q1 == std::string_view::npos || q1 + 3 > s.size() || s[q1 + 2] != '?') return std::nullopt;
  char enc = s[q1 + 1];
  if (enc != 'B' && enc != 'b' && enc != 'Q' && enc != 'q') return std::nullopt;
  std::size_t text_begin = q1 + 3;
  std::size_t close = s.find("?=", text_begin);
  if (close == std::string_view::npos) return std::nullopt;
  std::string_view charset = s.substr(pos + 2, q1 - pos - 2);
  std::string_view text = s.substr(text_begin, close - text_begin);
  // Encoded-words never contain white space; a "?=" found beyond some is a
  // false match (literal "=?" in a subject).
  if (charset.empty() || charset.find_first_of(" \t") != std::string_view::npos ||
      text.find_first_of(" \t") != std::string_view::npos)
    return std::nullopt;
  EncodedWord w;
  w.begin = pos;
  w.end = close + 2;
  w.charset = ascii_lower(charset);
  if (auto star = w.charset.find('*'); star != std::string::npos) w.charset.resize(star);  // RFC 2231 §5
  w.bytes = (enc == 'B' || enc == 'b') ? decode_base64(text) : decode_q(text);
  return w;
}

bool all_whitespace(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t'; });
}

}  // namespace

std::string decode_header_text(std::string_view raw_in) {
  std::string raw = unfold(raw_in);
  std::string_view s = raw;
  std::string out;
  out.reserve(s.size());

  std::size_t cursor = 0;        // start of input not yet emitted
  std::string run_charset;       // pending run of adjacent words
  std::string run_bytes;
  bool in_run = false;
  auto flush_run = [&] {
    if (in_run) out += to_utf8(run_bytes, run_charset);
    in_run = false;
    run_bytes.clear();
  };

  std::size_t pos = s.find("=?");
  while (pos != std::string_view::npos) {
    auto word = parse_encoded_word(s, pos);
    if (!word) {
      pos = s.find("=?", pos + 2);
      continue;
    }
    std::string_view between = s.substr(cursor, word->begin - cursor);
    bool adjacent = in_run && all_whitespace(between);
    if (adjacent && word->charset == run_charset) {
      run_bytes += word->bytes;
    } else {
      flush_run();
      if (!adjacent) out += undeclared_to_utf8(between);
      run_charset = word->charset;
      run_bytes = std::move(word->bytes);
      in_run = true;
    }
    cursor = word->end;
    pos = s.find("=?", cursor);
  }
  flush_run();
  out += undeclared_to_utf8(s.substr(cursor));
  return out;
}

const std::string& HeaderParams::param(const std::string& name) const {
  static const std::string kEmpty;
  auto it = params.find(name);
  return it == params.end() ? kEmpty : it->second;
}

namespace {

struct RawParam {
  std::string base;   // "filename" of "filename*1*"
  int section = -1;   // -1: not a continuation
  bool extended = false;
  std::string value;  // as written, quotes removed
};

RawParam split_param_name(std::string name, std::string value) {
  RawParam p;
  p.value = std::move(value);
  if (!name.empty() && name.back() == '*') {
    p.extended = true;
    name.pop_back();
  }
  if (auto star = name.find('*'); star != std::string::npos) {
    std::string_view digits = std::string_view(name).substr(star + 1);
    if (!digits.empty() && digits.size() <= 3 &&
        std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      p.section = std::stoi(std::string(digits));
      name.resize(star);
    }
  }
  p.base = std::move(name);
  return p;
}

// Value of a plain (non-RFC 2231) parameter: encoded-words are decoded
// because Outlook and Gmail send name="=?UTF-8?B?...?=".
std::string decode_plain_param(std::string_view v) {
  if (v.find("=?") != std::string_view::npos) return decode_header_text(v);
  return undeclared_to_utf8(v);
}

// Joins RFC 2231 sections of one parameter (already sorted by section).
std::string join_rfc2231(const std::vector<RawParam>& sections) {
  std::string charset, bytes;
  bool first = true;
  for (const auto& sec : sections) {
    std::string_view v = sec.value;
    if (sec.extended && first) {
      // charset'language'value
      std::size_t a = v.find('\'');
      std::size_t b = a == std::string_view::npos ? a : v.find('\'', a + 1);
      if (b != std::string_view::npos) {
        charset = std::string(v.substr(0, a));
        v = v.substr(b + 1);
      }
    }
    bytes += sec.extended ? percent_decode(v) : std::string(v);
    first = false;
  }
  if (charset.empty()) return decode_plain_param(bytes);
  return to_utf8(bytes, charset);
}

}  // namespace

HeaderParams parse_header_params(std::string_view raw_in) {
  std::string raw = unfold(raw_in);
  std::string_view s = raw;
  HeaderParams result;
  std::size_t semi = s.find(';');
  result.value = ascii_lower(trim(s.substr(0, semi)));
  // Comments like "text/plain (plain text)" are rare; drop a trailing one.
  if (auto paren = result.value.find('('); paren != std::string::npos)
    result.value = std::string(trim(std::string_view(result.value).substr(0, paren)));

  std::vector<RawParam> raw_params;
  std::size_t i = semi == std::string_view::npos ? s.size() : semi + 1;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == ';')) ++i;
    std::size_t name_begin = i;
    while (i < s.size() && s[i] != '=' && s[i] != ';') ++i;
    std::string name = ascii_lower(trim(s.substr(name_begin, i - name_begin)));
    if (i >= s.size() || s[i] == ';') continue;  // attribute without a value
    ++i;                                         // '='
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    std::string value;
    if (i < s.size() && s[i] == '"') {
      ++i;
      while (i < s.size() && s[i] != '"') {
        // A backslash escapes the next character, except before a closing
        // quote at the very end (Windows paths "C:\dir\").
        if (s[i] == '\\' && i + 1 < s.size()) ++i;
        value.push_back(s[i++]);
      }
      ++i;  // closing quote (or end)
      while (i < s.size() && s[i] != ';') ++i;
    } else {
      // Unquoted: up to ';'. Tolerates the spaces Outlook leaves unquoted.
      std::size_t vb = i;
      while (i < s.size() && s[i] != ';') ++i;
      value = std::string(trim(s.substr(vb, i - vb)));
    }
    if (!name.empty()) raw_params.push_back(split_param_name(std::move(name), std::move(value)));
  }

  // Group RFC 2231 sections by base name; plain params go straight in, but an
  // RFC 2231 form of the same name wins (it is the more precise one).
  std::map<std::string, std::vector<RawParam>> rfc2231;
  for (auto& p : raw_params) {
    if (p.section < 0 && !p.extended) {
      result.params.emplace(p.base, decode_plain_param(p.value));
    } else {
      rfc2231[p.base].push_back(std::move(p));
    }
  }
  for (auto& [base, sections] : rfc2231) {
    std::stable_sort(sections.begin(), sections.end(),
                     [](const RawParam& a, const RawParam& b) { return a.section < b.section; });
    result.params[base] = join_rfc2231(sections);
  }
  return result;
}

}  // namespace mailgate::mail
