// Top-down MIME splitting: each multipart body is cut at its own boundary
// lines first, so a child with a missing closing boundary ends where its
// parent's next boundary starts, and nothing after it is lost.
#include "mailgate/mail/mime_parser.hpp"

#include <cstring>
#include <iterator>

#include "mailgate/mail/text_util.hpp"

namespace mailgate::mail {

const HeaderField* MimePart::find(std::string_view name) const {
  for (const auto& f : headers)
    if (iequals(f.name, name)) return &f;
  return nullptr;
}

std::string_view MimePart::header(std::string_view name) const {
  const HeaderField* f = find(name);
  return f ? std::string_view(f->value) : std::string_view();
}

namespace {

// [begin, end) of the line starting at `pos`, and where the next one starts.
struct Line {
  std::size_t begin, end, next;
};

Line line_at(std::string_view s, std::size_t pos) {
  std::size_t nl = s.find('\n', pos);
  std::size_t next = nl == std::string_view::npos ? s.size() : nl + 1;
  std::size_t end = nl == std::string_view::npos ? s.size() : nl;
  if (end > pos && s[end - 1] == '\r') --end;
  return {pos, end, next};
}

void apply_content_type(MimePart& part, bool parent_is_digest) {
  std::string_view ct = part.header("Content-Type");
  if (ct.empty()) {
    part.content_type.value = parent_is_digest ? "message/rfc822" : "text/plain";
    return;
  }
  part.content_type = parse_header_params(ct);
  // RFC 2045 §5.2: a syntactically invalid type means text/plain.
  auto slash = part.content_type.value.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == part.content_type.value.size())
    part.content_type.value = "text/plain";
}

struct BoundaryHit {
  std::size_t line_begin;  // where the delimiter line starts
  std::size_t after;       // first byte after the delimiter line
  bool closing;
};

// Finds the next delimiter line "--boundary[--]" at or after `from`.
bool find_boundary(std::string_view body, std::string_view delimiter, std::size_t from, BoundaryHit& hit) {
  std::size_t pos = from;
  while (pos < body.size()) {
    const void* found = memmem(body.data() + pos, body.size() - pos, delimiter.data(), delimiter.size());
    if (!found) return false;
    std::size_t p = static_cast<std::size_t>(static_cast<const char*>(found) - body.data());
    pos = p + 1;
    if (p != 0 && body[p - 1] != '\n') continue;  // must start a line
    std::size_t q = p + delimiter.size();
    bool closing = body.substr(q, 2) == "--";
    if (closing) q += 2;
    // Only white space may follow; anything else means a longer boundary
    // that merely starts with ours ("--abc" vs "--abcdef").
    Line rest = line_at(body, q);
    std::string_view tail = body.substr(q, rest.end - q);
    if (!trim(tail).empty()) continue;
    hit = {p, rest.next, closing};
    return true;
  }
  return false;
}

// The content between two delimiters excludes the line break that precedes
// the next delimiter (RFC 2046 §5.1.1: it belongs to the delimiter).
std::string_view part_content(std::string_view body, std::size_t begin, std::size_t delimiter_line) {
  std::size_t end = delimiter_line;
  if (end > begin && body[end - 1] == '\n') --end;
  if (end > begin && body[end - 1] == '\r') --end;
  return body.substr(begin, end - begin);
}

class Parser {
 public:
  Parser(const MimeLimits& limits, std::vector<std::string>& truncations)
      : limits_(limits), truncations_(truncations) {}

  void parse_entity(std::string_view raw, MimePart& part, std::size_t depth, bool parent_is_digest) {
    std::size_t body_at = parse_header_block(raw, part, limits_, &truncations_);
    apply_content_type(part, parent_is_digest);
    if (std::string_view d = part.header("Content-Disposition"); !d.empty()) part.disposition = parse_header_params(d);
    part.body = raw.substr(body_at);
    if (!part.is_multipart()) return;

    const std::string& boundary = part.content_type.param("boundary");
    if (boundary.empty()) {
      part.content_type.value = "text/plain";  // unusable multipart: keep the text
      return;
    }
    if (depth >= limits_.max_depth) {
      note_once(depth_noted_, "MIME nesting deeper than " + std::to_string(limits_.max_depth) +
                                  " levels; the deeper parts were not imported");
      return;  // stays a leaf; the draft reports it
    }
    split(part, boundary, depth);
  }

 private:
  void split(MimePart& part, const std::string& boundary, std::size_t depth) {
    const std::string delimiter = "--" + boundary;
    std::string_view body = part.body;
    BoundaryHit hit;
    if (!find_boundary(body, delimiter, 0, hit)) {
      // No delimiter at all: a mislabelled single part. Keep the text.
      part.content_type.value = "text/plain";
      return;
    }
    const bool digest = part.content_type.value == "multipart/digest";
    while (!hit.closing) {
      std::size_t content_begin = hit.after;
      BoundaryHit next;
      bool more = find_boundary(body, delimiter, content_begin, next);
      std::string_view content = more ? part_content(body, content_begin, next.line_begin)
                                      : body.substr(content_begin);  // no closing delimiter
      if (++parts_ > limits_.max_parts) {
        note_once(parts_noted_, "more than " + std::to_string(limits_.max_parts) +
                                    " MIME parts; the rest were not imported");
        break;
      }
      part.children.emplace_back();
      parse_entity(content, part.children.back(), depth + 1, digest);
      if (!more) break;
      hit = next;
    }
    part.body = {};  // a multipart's own body is only preamble and epilogue
  }

  void note_once(bool& flag, std::string text) {
    if (!flag) truncations_.push_back(std::move(text));
    flag = true;
  }

  const MimeLimits& limits_;
  std::vector<std::string>& truncations_;
  std::size_t parts_ = 1;
  bool depth_noted_ = false;
  bool parts_noted_ = false;
};

}  // namespace

std::size_t parse_header_block(std::string_view raw, MimePart& part, const MimeLimits& limits,
                               std::vector<std::string>* truncations) {
  HeaderBlock block = read_header_block(raw, {limits.max_header_bytes, limits.max_header_fields, limits.max_field_bytes});
  std::move(block.fields.begin(), block.fields.end(), std::back_inserter(part.headers));
  if (block.over_limit && truncations)
    truncations->push_back("header block larger than the limit (" + std::to_string(limits.max_header_bytes) +
                           " bytes or " + std::to_string(limits.max_header_fields) +
                           " fields); the excess fields were ignored");
  if (block.long_field && truncations)
    truncations->push_back("a header field longer than " + std::to_string(limits.max_field_bytes) +
                           " bytes was cut short");
  return block.body_offset;
}

ParsedMessage parse_mime(std::string_view raw, const MimeLimits& limits) {
  ParsedMessage msg;
  Parser parser(limits, msg.truncations);
  parser.parse_entity(raw, msg.root, 0, false);
  return msg;
}

}  // namespace mailgate::mail
