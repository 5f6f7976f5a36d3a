// A recursive-descent reader over one assembled response. Lenient where real
// servers are sloppy (extra spaces, lower-case names, free text after status
// codes), strict where the framing is at stake (literal sizes, quoting).
#include "mailgate/imap/response.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace mailgate::imap {
namespace {

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// A decimal number (RFC 3501 number64); nullopt for anything else, including overflow.
std::optional<std::uint64_t> number_of(std::string_view digits) {
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  std::uint64_t n = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return n;
}

bool is_atom_char(char c) {
  return c != ' ' && c != '(' && c != ')' && c != '[' && c != ']' && c != '{' && c != '"' && c != '\r' && c != '\n' &&
         static_cast<unsigned char>(c) >= 0x20 && c != 0x7f;
}

class Reader {
 public:
  Reader(std::string_view in, const ParserLimits& limits) : in_(in), limits_(limits) {}

  bool at_end() const { return pos_ >= in_.size() || at_crlf(); }
  bool at_crlf() const { return in_.substr(pos_, 2) == "\r\n" || (pos_ < in_.size() && in_[pos_] == '\n'); }
  char peek() const { return pos_ < in_.size() ? in_[pos_] : '\0'; }
  void skip_spaces() {
    while (pos_ < in_.size() && in_[pos_] == ' ') ++pos_;
  }

  std::string atom() {
    std::size_t start = pos_;
    while (pos_ < in_.size() && is_atom_char(in_[pos_])) ++pos_;
    if (pos_ == start) fail("expected an atom");
    // BODY[HEADER.FIELDS (A B)]<0> is one token in FETCH data.
    if (peek() == '[') {
      int depth = 0;
      while (pos_ < in_.size()) {
        char c = in_[pos_++];
        if (c == '[') ++depth;
        else if (c == ']' && --depth == 0) break;
        else if (c == '\r' || c == '\n') fail("unterminated section");
      }
      if (depth != 0) fail("unterminated section");
      if (peek() == '<') {
        std::size_t close = in_.find('>', pos_);
        if (close == std::string_view::npos) fail("unterminated partial");
        pos_ = close + 1;
      }
    }
    return std::string(in_.substr(start, pos_ - start));
  }

  // The rest of the line, as free text.
  std::string rest_of_line() {
    std::size_t end = in_.find('\n', pos_);
    if (end == std::string_view::npos) end = in_.size();
    std::string_view t = in_.substr(pos_, end - pos_);
    if (!t.empty() && t.back() == '\r') t.remove_suffix(1);
    pos_ = end;
    return std::string(t);
  }

  Value value(std::size_t depth) {
    if (depth > limits_.max_depth) fail("nesting too deep");
    if (++values_ > limits_.max_values) fail("too many values");
    Value v;
    char c = peek();
    if (c == '(' || c == '[') {
      v.kind = c == '(' ? Value::Kind::List : Value::Kind::Section;
      const char close = c == '(' ? ')' : ']';
      ++pos_;
      for (;;) {
        skip_spaces();
        if (pos_ >= in_.size() || at_crlf()) {
          // A literal inside a list continues after its CRLF: handled in string().
          fail("unterminated list");
        }
        if (peek() == close) {
          ++pos_;
          break;
        }
        v.items.push_back(value(depth + 1));
      }
      return v;
    }
    if (c == '"') {
      v.kind = Value::Kind::String;
      v.text = quoted();
      return v;
    }
    if (c == '{' || (c == '~' && pos_ + 1 < in_.size() && in_[pos_ + 1] == '{')) {
      v.kind = Value::Kind::String;
      v.text = literal();
      return v;
    }
    if (c == ')' || c == ']') fail("unexpected close bracket");
    v.text = atom();
    if (upper(v.text) == "NIL") v.kind = Value::Kind::Nil;
    return v;
  }

  std::string quoted() {
    ++pos_;  // "
    std::string out;
    while (pos_ < in_.size()) {
      char c = in_[pos_++];
      if (c == '"') return out;
      if (c == '\\') {
        if (pos_ >= in_.size()) break;
        c = in_[pos_++];
      } else if (c == '\r' || c == '\n') {
        fail("line break in a quoted string");
      }
      out.push_back(c);
    }
    fail("unterminated quoted string");
  }

  std::string literal() {
    if (peek() == '~') ++pos_;
    ++pos_;  // {
    std::size_t close = in_.find('}', pos_);
    if (close == std::string_view::npos) fail("bad literal size");
    std::string_view digits = in_.substr(pos_, close - pos_);
    if (!digits.empty() && digits.back() == '+') digits.remove_suffix(1);
    auto size = number_of(digits);
    if (!size) fail("bad literal size");
    const std::uint64_t n = *size;
    pos_ = close + 1;
    if (in_.substr(pos_, 2) == "\r\n") pos_ += 2;
    else if (peek() == '\n') pos_ += 1;
    else fail("literal size not followed by CRLF");
    if (n > in_.size() - pos_) fail("literal longer than the response");
    std::string out(in_.substr(pos_, static_cast<std::size_t>(n)));
    pos_ += static_cast<std::size_t>(n);
    return out;
  }

  [[noreturn]] void fail(const std::string& why) const {
    throw ResponseError("imap response: " + why + " at offset " + std::to_string(pos_));
  }

  std::size_t pos_ = 0;

 private:
  std::string_view in_;
  const ParserLimits& limits_;
  std::size_t values_ = 0;
};

bool is_status_name(std::string_view n) {
  return n == "OK" || n == "NO" || n == "BAD" || n == "BYE" || n == "PREAUTH";
}

void status_tail(Reader& r, Response& out) {
  r.skip_spaces();
  if (r.peek() == '[') {
    out.code = r.value(0);
    r.skip_spaces();
  }
  out.text = r.rest_of_line();
}

}  // namespace

bool Value::is_atom(std::string_view upper_name) const {
  return kind == Kind::Atom && upper(text) == upper_name;
}

std::optional<std::uint64_t> Value::number() const {
  if (kind != Kind::Atom) return std::nullopt;
  return number_of(text);
}

bool Response::is_status() const { return is_status_name(name); }

Response parse_response(std::string_view wire, const ParserLimits& limits) {
  Reader r(wire, limits);
  Response out;
  if (r.peek() == '+') {
    out.kind = Response::Kind::Continuation;
    ++r.pos_;
    r.skip_spaces();
    out.text = r.rest_of_line();
    return out;
  }
  if (r.peek() == '*') {
    out.kind = Response::Kind::Untagged;
    ++r.pos_;
  } else {
    out.kind = Response::Kind::Tagged;
    out.tag = r.atom();
  }
  if (r.peek() != ' ') r.fail("expected a space after the tag");
  r.skip_spaces();
  std::string first = r.atom();
  if (out.kind == Response::Kind::Untagged && number_of(first)) {
    out.number = number_of(first);
    r.skip_spaces();
    first = r.atom();
  }
  out.name = upper(first);
  if (out.is_status()) {
    status_tail(r, out);
    return out;
  }
  if (out.kind == Response::Kind::Tagged) r.fail("a tagged response must be OK, NO or BAD");
  for (;;) {
    r.skip_spaces();
    if (r.at_end()) break;
    out.data.push_back(r.value(0));
  }
  return out;
}

std::vector<std::string> capabilities_of(const Response& r) {
  std::vector<std::string> caps;
  auto take = [&](const std::vector<Value>& items, std::size_t from) {
    for (std::size_t i = from; i < items.size(); ++i)
      if (items[i].kind == Value::Kind::Atom) caps.push_back(upper(items[i].text));
  };
  if (r.name == "CAPABILITY") take(r.data, 0);
  else if (r.code && !r.code->items.empty() && r.code->items[0].is_atom("CAPABILITY")) take(r.code->items, 1);
  return caps;
}

std::optional<std::string> quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') return std::nullopt;
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::optional<std::uint64_t> literal_size_at_end(std::string_view line) {
  if (line.empty() || line.back() != '}') return std::nullopt;
  std::size_t open = line.rfind('{');
  if (open == std::string_view::npos) return std::nullopt;
  std::string_view digits = line.substr(open + 1, line.size() - open - 2);
  if (!digits.empty() && digits.back() == '+') digits.remove_suffix(1);
  return number_of(digits);
}

namespace {

bool iequals_prefix(std::string_view s, std::string_view upper_prefix) {
  if (s.size() < upper_prefix.size()) return false;
  for (std::size_t i = 0; i < upper_prefix.size(); ++i)
    if (std::toupper(static_cast<unsigned char>(s[i])) != upper_prefix[i]) return false;
  return true;
}

}  // namespace

bool scan_search(std::string_view wire, const std::function<void(std::uint64_t)>& on_number) {
  if (!iequals_prefix(wire, "* SEARCH")) return false;
  std::string_view rest = wire.substr(8);
  while (!rest.empty() && (rest.back() == '\n' || rest.back() == '\r')) rest.remove_suffix(1);
  if (!rest.empty() && rest.front() != ' ') return false;  // "* SEARCHING": another response
  if (rest.find_first_of("\r\n") != std::string_view::npos) return false;  // literals: not a plain SEARCH
  // A CONDSTORE "(MODSEQ n)" ends the numbers; anything else that is not a
  // digit or a space is for the full parser (and its error).
  std::string_view numbers = rest.substr(0, rest.find('('));
  if (numbers.find_first_not_of("0123456789 ") != std::string_view::npos) return false;
  std::size_t i = 0;
  while (i < numbers.size()) {
    while (i < numbers.size() && numbers[i] == ' ') ++i;
    std::size_t start = i;
    while (i < numbers.size() && numbers[i] != ' ') ++i;
    if (i > start) on_number(number_of(numbers.substr(start, i - start)).value_or(UINT64_MAX));
  }
  return true;
}

std::optional<std::uint64_t> fetch_uid_before_literal(std::string_view line) {
  std::size_t open = line.find('(');
  if (open == std::string_view::npos) return std::nullopt;
  // Item names and values alternate after "(": only a top-level "UID n" pair counts.
  std::size_t i = open + 1;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    std::size_t start = i;
    while (i < line.size() && is_atom_char(line[i])) ++i;
    std::string_view name = line.substr(start, i - start);
    if (name.empty() || i >= line.size() || line[i] != ' ') return std::nullopt;  // a section, a list, a literal
    ++i;
    std::size_t vstart = i;
    while (i < line.size() && line[i] >= '0' && line[i] <= '9') ++i;
    if (upper(name) == "UID") return i > vstart ? number_of(line.substr(vstart, i - vstart)) : std::nullopt;
    if (i == vstart || (i < line.size() && line[i] != ' ')) return std::nullopt;  // a non-numeric value: stop
  }
  return std::nullopt;
}

}  // namespace mailgate::imap
