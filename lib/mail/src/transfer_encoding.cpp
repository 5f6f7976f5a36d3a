// Lenient base64 / quoted-printable decoding; hot path for large attachments,
// so base64 runs table-driven over the whole buffer without per-line copies.
#include "mailgate/mail/transfer_encoding.hpp"

#include <array>
#include <cstdint>

#include "mailgate/mail/text_util.hpp"

namespace mailgate::mail {
namespace {

constexpr std::uint8_t kNotBase64 = 0xFF;

constexpr std::array<std::uint8_t, 256> make_base64_table() {
  std::array<std::uint8_t, 256> t{};
  for (auto& v : t) v = kNotBase64;
  constexpr std::string_view alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (std::size_t i = 0; i < alphabet.size(); ++i) t[static_cast<unsigned char>(alphabet[i])] = static_cast<std::uint8_t>(i);
  // URL-safe variants appear in the wild; accepting them costs nothing.
  t['-'] = 62;
  t['_'] = 63;
  return t;
}
constexpr auto kBase64 = make_base64_table();

}  // namespace

std::string decode_base64(std::string_view in) {
  std::string out;
  out.reserve(in.size() / 4 * 3 + 3);
  std::uint32_t acc = 0;
  int n = 0;
  auto flush_partial = [&] {
    // 2 symbols carry one byte, 3 carry two; a lone symbol carries nothing.
    if (n == 2) out.push_back(static_cast<char>(acc >> 4));
    if (n == 3) {
      out.push_back(static_cast<char>(acc >> 10));
      out.push_back(static_cast<char>((acc >> 2) & 0xFF));
    }
    acc = 0;
    n = 0;
  };
  for (char ch : in) {
    std::uint8_t v = kBase64[static_cast<unsigned char>(ch)];
    if (v == kNotBase64) {
      if (ch == '=') flush_partial();
      continue;
    }
    acc = (acc << 6) | v;
    if (++n == 4) {
      out.push_back(static_cast<char>(acc >> 16));
      out.push_back(static_cast<char>((acc >> 8) & 0xFF));
      out.push_back(static_cast<char>(acc & 0xFF));
      acc = 0;
      n = 0;
    }
  }
  flush_partial();
  return out;
}

std::string encode_base64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    std::uint32_t v = (std::uint32_t(std::uint8_t(in[i])) << 16) |
                      (std::uint32_t(std::uint8_t(in[i + 1])) << 8) | std::uint8_t(in[i + 2]);
    out.push_back(kAlphabet[v >> 18]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  if (std::size_t rest = in.size() - i; rest > 0) {
    std::uint32_t v = std::uint32_t(std::uint8_t(in[i])) << 16;
    if (rest == 2) v |= std::uint32_t(std::uint8_t(in[i + 1])) << 8;
    out.push_back(kAlphabet[v >> 18]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

std::string decode_quoted_printable(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  std::size_t i = 0;
  while (i < in.size()) {
    // Work line by line so trailing whitespace can be dropped.
    std::size_t eol = in.find('\n', i);
    std::size_t line_end = eol == std::string_view::npos ? in.size() : eol;
    std::size_t content_end = line_end;
    if (content_end > i && in[content_end - 1] == '\r') --content_end;
    while (content_end > i && (in[content_end - 1] == ' ' || in[content_end - 1] == '\t')) --content_end;
    bool soft_break = false;
    for (std::size_t j = i; j < content_end; ++j) {
      char c = in[j];
      if (c != '=') {
        out.push_back(c);
        continue;
      }
      if (j + 1 == content_end) {  // "=" at end of line: soft line break
        soft_break = true;
        break;
      }
      int hi = j + 2 < content_end ? hex_value(in[j + 1]) : -1;
      int lo = j + 2 < content_end ? hex_value(in[j + 2]) : -1;
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        j += 2;
      } else {
        out.push_back('=');  // not an escape: keep it, as Thunderbird does
      }
    }
    if (eol == std::string_view::npos) break;
    if (!soft_break) out += "\r\n";
    i = eol + 1;
  }
  return out;
}

std::string decode_transfer_encoding(std::string_view body, std::string_view encoding) {
  std::string enc = ascii_lower(trim(encoding));
  if (enc == "base64") return decode_base64(body);
  if (enc == "quoted-printable") return decode_quoted_printable(body);
  return std::string(body);
}

}  // namespace mailgate::mail
