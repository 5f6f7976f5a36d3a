// A forgiving tag-level HTML filter. It does not build a DOM: it copies text
// through and rewrites or drops tags, which is enough to make mail HTML safe
// and keeps its markup otherwise as the sender wrote it.
#include "mailgate/mail/html.hpp"

#include <algorithm>
#include <array>
#include <vector>

#include "mailgate/mail/text_util.hpp"

namespace mailgate::mail {
namespace {

// Elements removed together with everything inside them.
constexpr std::array kDropWithContent = {"script", "style",   "iframe", "frame",    "frameset", "object",
                                         "applet", "noscript", "template", "head",   "title",    "svg",
                                         "math",   "xml",      "noembed", "noframes"};
// Elements whose tags are removed but whose content stays.
constexpr std::array kDropTagOnly = {"html",  "body",  "link",   "meta",  "base",   "embed", "form",
                                     "input", "button", "select", "option", "textarea", "video", "audio",
                                     "source", "track", "picture", "portal", "bgsound", "!doctype"};
// Attributes that make the browser fetch something.
constexpr std::array kLoadingAttributes = {"src",   "srcset", "background", "poster", "lowsrc", "dynsrc",
                                           "data",  "action", "formaction", "ping",   "codebase", "archive",
                                           "longdesc", "manifest", "xlink:href"};

template <std::size_t N>
bool contains(const std::array<const char*, N>& set, std::string_view name) {
  return std::any_of(set.begin(), set.end(), [&](const char* s) { return name == s; });
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == ':' ||
         c == '_' || c == '!' || c == '.';
}

struct Attribute {
  std::string name;  // lower-case
  std::string value;
  bool has_value = false;
};

struct Tag {
  std::string name;  // lower-case
  bool closing = false;
  bool self_closing = false;
  std::vector<Attribute> attributes;
  std::size_t end = 0;  // index just past '>'
};

// Parses the tag starting at s[pos] == '<'. Quoted attribute values may
// contain '>'. An unterminated tag runs to the end of the input.
Tag parse_tag(std::string_view s, std::size_t pos) {
  Tag tag;
  std::size_t i = pos + 1;
  if (i < s.size() && s[i] == '/') {
    tag.closing = true;
    ++i;
  }
  std::size_t nb = i;
  while (i < s.size() && is_name_char(s[i])) ++i;
  tag.name = ascii_lower(s.substr(nb, i - nb));
  while (i < s.size() && s[i] != '>') {
    char c = s[i];
    if (c == '/' ) {
      tag.self_closing = true;
      ++i;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '"' || c == '\'' || c == '=') {
      ++i;
      continue;
    }
    Attribute a;
    std::size_t ab = i;
    while (i < s.size() && s[i] != '=' && s[i] != '>' && s[i] != ' ' && s[i] != '\t' && s[i] != '\r' &&
           s[i] != '\n' && s[i] != '/')
      ++i;
    a.name = ascii_lower(s.substr(ab, i - ab));
    std::size_t j = i;
    while (j < s.size() && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r' || s[j] == '\n')) ++j;
    if (j < s.size() && s[j] == '=') {
      tag.self_closing = false;
      ++j;
      while (j < s.size() && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r' || s[j] == '\n')) ++j;
      a.has_value = true;
      if (j < s.size() && (s[j] == '"' || s[j] == '\'')) {
        char q = s[j];
        std::size_t close = s.find(q, j + 1);
        if (close == std::string_view::npos) close = s.size();
        a.value = std::string(s.substr(j + 1, close - j - 1));
        i = std::min(close + 1, s.size());
      } else {
        std::size_t vb = j;
        while (j < s.size() && s[j] != '>' && s[j] != ' ' && s[j] != '\t' && s[j] != '\r' && s[j] != '\n') ++j;
        a.value = std::string(s.substr(vb, j - vb));
        i = j;
      }
    }
    if (!a.name.empty()) tag.attributes.push_back(std::move(a));
  }
  tag.end = std::min(i + 1, s.size());
  return tag;
}

// Lower-cased, with white space, control characters and backslashes
// removed: how a browser would see a URL scheme or a CSS function.
std::string squeeze_for_check(std::string_view v) {
  std::string out;
  for (char c : v) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 32 || c == '\\') continue;
    out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
  }
  return out;
}

bool is_dangerous_url(std::string_view value) {
  std::string v = squeeze_for_check(value);
  // Entity-encoded schemes ("&#106;avascript:") are treated as dangerous too.
  return v.rfind("javascript:", 0) == 0 || v.rfind("vbscript:", 0) == 0 || v.rfind("data:", 0) == 0 ||
         v.rfind("&#", 0) == 0;
}

bool is_dangerous_style(std::string_view value) {
  std::string v = squeeze_for_check(value);
  return v.find("url(") != std::string::npos || v.find("expression(") != std::string::npos ||
         v.find("@import") != std::string::npos || v.find("behavior:") != std::string::npos ||
         v.find("-moz-binding") != std::string::npos;
}

std::string attribute_text(const Attribute& a) {
  if (!a.has_value) return " " + a.name;
  std::string v;
  for (char c : a.value) {
    if (c == '"') v += "&quot;";
    else if (c == '<') v += "&lt;";
    else v.push_back(c);
  }
  return " " + a.name + "=\"" + v + "\"";
}

// Case-insensitive find of an ASCII needle, without copying the haystack.
std::size_t ifind(std::string_view s, std::string_view needle, std::size_t from) {
  for (std::size_t p = s.find('<', from); p != std::string_view::npos; p = s.find('<', p + 1))
    if (istarts_with(s.substr(p), needle)) return p;
  return std::string_view::npos;
}

// Where the dropped element `name` ends, searching from `from`.
std::size_t end_of_dropped(std::string_view s, std::size_t from, const std::string& name) {
  std::size_t close = ifind(s, "</" + name, from);
  if (name == "head") {
    // A <head> left open ends where <body> starts, or the body would vanish.
    std::size_t body = ifind(s, "<body", from);
    if (body != std::string_view::npos && (close == std::string_view::npos || body < close)) return body;
  }
  if (close == std::string_view::npos) return s.size();
  std::size_t gt = s.find('>', close);
  return gt == std::string_view::npos ? s.size() : gt + 1;
}

void emit_tag(std::string& out, const Tag& tag, const InlineImageResolver& resolve) {
  if (tag.closing) {
    out += "</" + tag.name + ">";
    return;
  }
  if (tag.name == "img") {
    for (const auto& a : tag.attributes) {
      if (a.name != "src") continue;
      if (auto placeholder = resolve ? resolve(trim(a.value)) : std::nullopt)
        out += "<img src=\"" + *placeholder + "\"/>";
    }
    return;  // remote or unresolvable images are dropped (tracking pixels)
  }
  out += "<" + tag.name;
  for (const auto& a : tag.attributes) {
    if (a.name.rfind("on", 0) == 0) continue;  // event handlers
    if (contains(kLoadingAttributes, a.name)) continue;
    if (a.name == "style" && is_dangerous_style(a.value)) continue;
    if (a.name == "href" && is_dangerous_url(a.value)) continue;
    out += attribute_text(a);
  }
  out += tag.self_closing ? "/>" : ">";
}

}  // namespace

std::string sanitize_html(std::string_view s, const InlineImageResolver& resolve) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t lt = s.find('<', i);
    out.append(s.substr(i, (lt == std::string_view::npos ? s.size() : lt) - i));
    if (lt == std::string_view::npos) break;
    i = lt;
    if (s.substr(i, 4) == "<!--") {
      std::size_t end = s.find("-->", i + 4);
      i = end == std::string_view::npos ? s.size() : end + 3;
      continue;
    }
    char next = i + 1 < s.size() ? s[i + 1] : '\0';
    bool tag_like = (next >= 'a' && next <= 'z') || (next >= 'A' && next <= 'Z') || next == '/' || next == '!' ||
                    next == '?';
    if (!tag_like) {
      out += "&lt;";
      ++i;
      continue;
    }
    if (next == '?') {  // <?xml ...?> processing instructions
      std::size_t gt = s.find('>', i);
      i = gt == std::string_view::npos ? s.size() : gt + 1;
      continue;
    }
    Tag tag = parse_tag(s, i);
    i = tag.end;
    if (tag.name.empty()) continue;
    if (contains(kDropWithContent, tag.name)) {
      if (!tag.closing && !tag.self_closing) i = end_of_dropped(s, i, tag.name);
      continue;
    }
    if (contains(kDropTagOnly, tag.name) || tag.name[0] == '!') continue;
    emit_tag(out, tag, resolve);
  }
  return std::string(trim(out));
}

namespace {

// RFC 3676 §4.2: a line ending in a space is soft-broken and joins the next;
// a leading space is stuffing. Quoted lines join only at equal depth.
std::vector<std::string> unflow(const std::vector<std::string>& lines, bool delsp) {
  std::vector<std::string> out;
  bool joining = false;
  std::size_t joining_depth = 0;
  for (std::string line : lines) {
    std::size_t depth = 0;
    while (depth < line.size() && line[depth] == '>') ++depth;
    std::string content = line.substr(depth);
    if (!content.empty() && content[0] == ' ') content.erase(0, 1);
    bool soft = !content.empty() && content.back() == ' ' && content != "-- ";
    if (soft && delsp) content.pop_back();
    std::string rebuilt = std::string(depth, '>') + (depth > 0 ? " " : "") + content;
    if (joining && depth == joining_depth) {
      out.back() += content;
    } else {
      out.push_back(rebuilt);
    }
    joining = soft;
    joining_depth = depth;
  }
  return out;
}

}  // namespace

std::string text_to_html(std::string_view text, bool flowed, bool delsp) {
  std::vector<std::string> lines;
  std::size_t i = 0;
  while (i <= text.size()) {
    std::size_t nl = text.find('\n', i);
    std::size_t end = nl == std::string_view::npos ? text.size() : nl;
    std::string_view line = text.substr(i, end - i);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.emplace_back(line);
    if (nl == std::string_view::npos) break;
    i = nl + 1;
  }
  while (!lines.empty() && trim(lines.back()).empty()) lines.pop_back();
  if (flowed) lines = unflow(lines, delsp);

  std::string out;
  bool in_paragraph = false;
  for (const auto& line : lines) {
    if (trim(line).empty()) {
      if (in_paragraph) out += "</p>\n";
      in_paragraph = false;
      continue;
    }
    out += in_paragraph ? "<br/>\n" : "<p>";
    in_paragraph = true;
    out += html_escape(line);
  }
  if (in_paragraph) out += "</p>";
  return out;
}

std::string sniff_html_charset(std::string_view html) {
  std::string head = ascii_lower(html.substr(0, 4096));
  std::size_t pos = 0;
  while ((pos = head.find("<meta", pos)) != std::string::npos) {
    std::size_t end = head.find('>', pos);
    if (end == std::string::npos) break;
    std::string_view tag = std::string_view(head).substr(pos, end - pos);
    if (std::size_t cs = tag.find("charset="); cs != std::string_view::npos) {
      std::size_t b = cs + 8;
      while (b < tag.size() && (tag[b] == '"' || tag[b] == '\'' || tag[b] == ' ')) ++b;
      std::size_t e = b;
      while (e < tag.size() && tag[e] != '"' && tag[e] != '\'' && tag[e] != ' ' && tag[e] != ';' && tag[e] != '/')
        ++e;
      if (e > b) return std::string(tag.substr(b, e - b));
    }
    pos = end;
  }
  return "";
}

}  // namespace mailgate::mail
