// The header reader: one pass over the lines of the block, each line a new
// field, a fold, the blank line, or the first line of a body that came
// without its blank line. See header_block.hpp for the promises.
#include "mailgate/mail/header_block.hpp"

#include <algorithm>

#include "mailgate/text/ascii.hpp"

namespace mailgate::mail {
namespace {

// [begin, end) of the line starting at `pos` (without its CR LF or LF), and
// where the next one starts.
struct Line {
  std::size_t begin, end, next;
};

Line line_at(std::string_view s, std::size_t pos) {
  const std::size_t nl = s.find('\n', pos);
  const std::size_t next = nl == std::string_view::npos ? s.size() : nl + 1;
  std::size_t end = nl == std::string_view::npos ? s.size() : nl;
  if (end > pos && s[end - 1] == '\r') --end;
  return {pos, end, next};
}

// RFC 5322 §3.6.8: printable US-ASCII except the colon (a name may not hold
// white space; 76 is what fits a line with its colon and a value).
bool valid_field_name(std::string_view name) {
  if (name.empty() || name.size() > 76) return false;
  return std::none_of(name.begin(), name.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 32 || u >= 127;
  });
}

class BlockReader {
 public:
  BlockReader(const HeaderLimits& limits, HeaderBlock& block) : limits_(limits), block_(block) {}

  // Takes one non-blank line; false when it is not part of the header.
  bool take(std::string_view text) {
    if (text[0] == ' ' || text[0] == '\t') {
      continue_field(text);
    } else if (!start_field(text)) {
      return false;
    }
    if (kept_bytes_ > limits_.max_block_bytes) block_.over_limit = true;
    return true;
  }

 private:
  void continue_field(std::string_view text) {
    if (block_.fields.empty() || block_.over_limit) return;  // a fold before any field: nothing to continue
    std::string& value = block_.fields.back().value;
    if (value.size() + text.size() + 2 > limits_.max_field_bytes) {
      block_.long_field = true;
      return;
    }
    value.append("\r\n").append(text);
    kept_bytes_ += text.size();
  }

  bool start_field(std::string_view text) {
    const std::size_t colon = text.find(':');
    const std::string_view name = colon == std::string_view::npos ? std::string_view() : text::trim(text.substr(0, colon));
    if (!valid_field_name(name)) return false;
    if (block_.fields.size() >= limits_.max_fields) block_.over_limit = true;
    if (block_.over_limit) return true;
    std::string_view value = text.substr(colon + 1);
    if (!value.empty() && (value[0] == ' ' || value[0] == '\t')) value.remove_prefix(1);
    if (value.size() > limits_.max_field_bytes) {
      value = value.substr(0, limits_.max_field_bytes);
      block_.long_field = true;
    }
    block_.fields.push_back({std::string(name), std::string(value)});
    kept_bytes_ += name.size() + value.size();
    return true;
  }

  const HeaderLimits& limits_;
  HeaderBlock& block_;
  std::size_t kept_bytes_ = 0;
};

}  // namespace

const HeaderField* HeaderBlock::find(std::string_view name) const {
  for (const auto& f : fields)
    if (text::iequals(f.name, name)) return &f;
  return nullptr;
}

std::string_view HeaderBlock::first(std::string_view name) const {
  const HeaderField* f = find(name);
  return f ? std::string_view(f->value) : std::string_view();
}

std::vector<std::string_view> HeaderBlock::all(std::string_view name, std::size_t max_values) const {
  std::vector<std::string_view> out;
  for (const auto& f : fields) {
    if (out.size() >= max_values) break;
    if (text::iequals(f.name, name)) out.push_back(f.value);
  }
  return out;
}

HeaderBlock read_header_block(std::string_view raw, const HeaderLimits& limits) {
  HeaderBlock block;
  BlockReader reader(limits, block);
  std::size_t pos = 0;
  if (raw.substr(0, 5) == "From ") pos = line_at(raw, 0).next;  // an mbox separator, not a field
  block.body_offset = raw.size();
  while (pos < raw.size()) {
    const Line line = line_at(raw, pos);
    const std::string_view text = raw.substr(line.begin, line.end - line.begin);
    if (text.empty()) {  // the blank line: the body follows it
      block.body_offset = line.next;
      break;
    }
    if (!reader.take(text)) {  // the header ended without its blank line: this line is body
      block.body_offset = line.begin;
      break;
    }
    pos = line.next;
  }
  return block;
}

std::string unfold(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value)
    if (c != '\r' && c != '\n') out.push_back(c);
  return out;
}

std::vector<std::string> scan_head(std::string_view head, std::string_view name, std::size_t max_values) {
  head = head.substr(0, kMailHeadBytes);
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < head.size() && out.size() < max_values) {
    const std::size_t eol = std::min(head.find('\n', pos), head.size());
    const std::string_view line = head.substr(pos, eol - pos);
    if (line.empty() || line == "\r") break;  // the end of the header
    std::size_t next = eol + 1;
    // "> name + 1": a field's first line holds more than its colon (the seen
    // set's rule since the first spool; with CRLF the CR is enough).
    if (line.size() > name.size() + 1 && line[name.size()] == ':' &&
        text::iequals(line.substr(0, name.size()), name)) {
      std::string value(line.substr(name.size() + 1));
      while (next < head.size() && (head[next] == ' ' || head[next] == '\t')) {
        const std::size_t e = std::min(head.find('\n', next), head.size());
        value.append(head.substr(next, e - next));
        next = e + 1;
      }
      out.push_back(std::move(value));
    }
    pos = next;
  }
  return out;
}

std::string message_id(std::string_view head) {
  const std::vector<std::string> values = scan_head(head, "Message-ID", 1);
  std::string id;
  for (char c : values.empty() ? std::string() : values.front())
    if (c != '<' && c != '>' && c != ' ' && c != '\t' && c != '\r' && c != '\n') id.push_back(c);
  return id;
}

std::vector<std::string> angle_ids(std::string_view value, std::size_t max_ids, std::size_t max_id_bytes) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (out.size() < max_ids) {
    const std::size_t open = value.find('<', pos);
    if (open == std::string_view::npos) break;
    const std::size_t close = value.find('>', open + 1);
    if (close == std::string_view::npos) break;
    std::string id;
    for (char c : value.substr(open + 1, close - open - 1))  // a fold may have put white space inside
      if (c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '\v' && c != '\f') id.push_back(c);
    if (!id.empty() && id.size() <= max_id_bytes) out.push_back(std::move(id));
    pos = close + 1;
  }
  return out;
}

MailVerdict classify_mail(std::string_view head) {
  head = head.substr(0, kMailHeadBytes);
  if (text::trim(head).empty()) return MailVerdict::Empty;
  static constexpr std::string_view kMailFields[] = {"From", "Sender", "To", "Subject", "Date", "Message-ID",
                                                     "Received", "Return-Path", "MIME-Version", "Reply-To"};
  const HeaderBlock block = read_header_block(head);
  const bool has_mail_field = std::any_of(std::begin(kMailFields), std::end(kMailFields),
                                          [&](std::string_view name) { return block.find(name) != nullptr; });
  return has_mail_field ? MailVerdict::Mail : MailVerdict::NoHeaderFields;
}

std::string_view to_string(MailVerdict verdict) {
  switch (verdict) {
    case MailVerdict::Mail: return "";
    case MailVerdict::Empty: return "not an email message: the input is empty";
    case MailVerdict::NoHeaderFields:
      return "not an email message: no RFC 5322 header fields (From, To, Subject, Date, ...) found";
  }
  return "";
}

}  // namespace mailgate::mail
