// iconv-based charset conversion with the aliases real mail needs.
#include "mailgate/mail/charset.hpp"

#include <iconv.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "mailgate/mail/text_util.hpp"

namespace mailgate::mail {
namespace {

// Labels seen in mail mapped to the iconv name of a superset that decodes
// them at least as well (WHATWG Encoding Standard does the same).
std::string iconv_name(std::string_view label) {
  std::string l = ascii_lower(trim(label));
  if (l.size() >= 2 && (l.front() == '"' || l.front() == '\'')) l = l.substr(1, l.size() - 2);
  static constexpr std::pair<std::string_view, std::string_view> kAliases[] = {
      {"utf8", "UTF-8"},
      {"utf-8", "UTF-8"},
      {"us-ascii", "WINDOWS-1252"},
      {"ascii", "WINDOWS-1252"},
      {"iso-8859-1", "WINDOWS-1252"},
      {"iso8859-1", "WINDOWS-1252"},
      {"latin1", "WINDOWS-1252"},
      {"latin-1", "WINDOWS-1252"},
      {"cp1252", "WINDOWS-1252"},
      {"x-user-defined", "WINDOWS-1252"},
      {"gb2312", "GB18030"},
      {"gbk", "GB18030"},
      {"x-gbk", "GB18030"},
      {"cp936", "GB18030"},
      {"big5", "BIG5-HKSCS"},
      {"shift_jis", "CP932"},
      {"shift-jis", "CP932"},
      {"sjis", "CP932"},
      {"x-sjis", "CP932"},
      {"windows-31j", "CP932"},
      {"ks_c_5601-1987", "CP949"},
      {"euc-kr", "CP949"},
      {"tis-620", "CP874"},
      {"iso-8859-11", "CP874"},
      {"iso-8859-8-i", "ISO-8859-8"},
      {"unicode-1-1-utf-7", "UTF-7"},
  };
  for (auto [alias, name] : kAliases)
    if (l == alias) return std::string(name);
  // RFC 2231 §5 allows "charset*language"; iconv knows nothing of it.
  if (auto star = l.find('*'); star != std::string::npos) l.resize(star);
  return l;
}

// Single-byte labels that, in practice, are often slapped on UTF-8 text.
bool is_commonly_mislabelled(std::string_view iconv_charset) {
  return iconv_charset == "WINDOWS-1252";
}

class Iconv {
 public:
  explicit Iconv(const std::string& from) : cd_(iconv_open("UTF-8", from.c_str())) {}
  ~Iconv() {
    if (ok()) iconv_close(cd_);
  }
  Iconv(const Iconv&) = delete;
  Iconv& operator=(const Iconv&) = delete;
  bool ok() const { return cd_ != reinterpret_cast<iconv_t>(-1); }

  // Converts all of `in`; each undecodable byte becomes U+FFFD.
  std::string convert(std::string_view in) {
    std::string out;
    out.reserve(in.size() + in.size() / 2 + 16);
    char buf[8192];
    char* src = const_cast<char*>(in.data());
    std::size_t src_left = in.size();
    while (src_left > 0) {
      char* dst = buf;
      std::size_t dst_left = sizeof buf;
      std::size_t r = iconv(cd_, &src, &src_left, &dst, &dst_left);
      out.append(buf, static_cast<std::size_t>(dst - buf));
      if (r != static_cast<std::size_t>(-1)) continue;
      if (errno == E2BIG) continue;
      // EILSEQ or EINVAL (truncated sequence at the end): skip one byte.
      out += "\xEF\xBF\xBD";
      ++src;
      --src_left;
      iconv(cd_, nullptr, nullptr, nullptr, nullptr);  // reset shift state
    }
    // Flush the final shift state of stateful encodings (ISO-2022-JP).
    char* dst = buf;
    std::size_t dst_left = sizeof buf;
    iconv(cd_, nullptr, nullptr, &dst, &dst_left);
    out.append(buf, static_cast<std::size_t>(dst - buf));
    return out;
  }

 private:
  iconv_t cd_;
};

}  // namespace

std::string undeclared_to_utf8(std::string_view bytes) {
  // Valid UTF-8 sequences stay; every other byte is read as windows-1252.
  // Mostly-UTF-8 text with a stray Latin-1 byte and Latin-1 text mislabelled
  // as UTF-8 both come out readable this way.
  static constexpr char16_t kCp1252High[32] = {
      0x20AC, 0xFFFD, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
      0x2039, 0x0152, 0xFFFD, 0x017D, 0xFFFD, 0xFFFD, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
      0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0xFFFD, 0x017E, 0x0178};
  std::string out;
  out.reserve(bytes.size() + bytes.size() / 4);
  std::size_t i = 0;
  while (i < bytes.size()) {
    std::size_t valid = utf8_valid_prefix(bytes.substr(i));
    out.append(bytes.substr(i, valid));
    i += valid;
    if (i >= bytes.size()) break;
    auto b = static_cast<unsigned char>(bytes[i++]);
    char16_t cp = b < 0xA0 ? kCp1252High[b - 0x80] : static_cast<char16_t>(b);
    if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    } else {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    }
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return out;
}

std::string to_utf8(std::string_view bytes, std::string_view charset) {
  if (is_ascii(bytes)) {
    // ASCII is ASCII in every charset mail uses, except the 7-bit stateful
    // and wide ones, which must still go through iconv.
    std::string l = ascii_lower(charset);
    bool seven_bit_encoded = l.find("2022") != std::string::npos || l.find("utf-7") != std::string::npos ||
                             l.find("utf-16") != std::string::npos || l.find("utf-32") != std::string::npos ||
                             l.find("hz-gb") != std::string::npos;
    if (!seven_bit_encoded) return std::string(bytes);
  }
  std::string name = iconv_name(charset);
  if (name.empty()) return undeclared_to_utf8(bytes);
  if (name == "UTF-8") return undeclared_to_utf8(bytes);
  if (is_commonly_mislabelled(name) && is_valid_utf8(bytes)) return std::string(bytes);
  Iconv cd(name);
  if (!cd.ok()) return undeclared_to_utf8(bytes);  // unknown label: best guess
  // iconv output is UTF-8 by construction; sanitize guards against
  // converters that pass through invalid bytes.
  return sanitize_utf8(cd.convert(bytes));
}

}  // namespace mailgate::mail
