// The sanitiser parses with gumbo, an HTML5-conformant parser, so what it
// checks is what a browser will build: entities decoded, form feeds and
// other whitespace split attributes, <image> is <img>, <head> ends where
// HTML5 says it does. It then serialises only what an allow-list keeps.
// Nothing from the input is copied through unparsed.
#include "mailgate/mail/html.hpp"

#include <gumbo.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <csetjmp>
#include <cstdlib>
#include <new>
#include <vector>

#include "gumbo_arena.hpp"
#include "mailgate/mail/text_util.hpp"

namespace mailgate::mail {
namespace {

using Clock = std::chrono::steady_clock;

// The bounded arena gumbo parses in: gumbo_arena.hpp.
using detail::Arena;
using detail::parse_in_arena;
using detail::arena_allocate;
using detail::arena_deallocate;

// ---- the allow-lists --------------------------------------------------------

// Elements removed together with everything inside them.
constexpr std::array kDropWithContent = {
    GUMBO_TAG_SCRIPT,   GUMBO_TAG_STYLE,    GUMBO_TAG_IFRAME, GUMBO_TAG_FRAME,  GUMBO_TAG_FRAMESET,
    GUMBO_TAG_OBJECT,   GUMBO_TAG_APPLET,   GUMBO_TAG_NOSCRIPT, GUMBO_TAG_TEMPLATE, GUMBO_TAG_HEAD,
    GUMBO_TAG_TITLE,    GUMBO_TAG_SVG,      GUMBO_TAG_MATH,   GUMBO_TAG_NOEMBED, GUMBO_TAG_NOFRAMES,
    GUMBO_TAG_TEXTAREA, GUMBO_TAG_SELECT,   GUMBO_TAG_EMBED,  GUMBO_TAG_VIDEO,  GUMBO_TAG_AUDIO,
    GUMBO_TAG_CANVAS,   GUMBO_TAG_DATALIST, GUMBO_TAG_BASE,   GUMBO_TAG_META,   GUMBO_TAG_LINK,
};

// Elements kept (with the allowed attributes). Anything else that is not
// dropped with its content is unwrapped: its children stay.
constexpr std::array kKeep = {
    GUMBO_TAG_A,       GUMBO_TAG_ABBR,    GUMBO_TAG_ADDRESS, GUMBO_TAG_ARTICLE, GUMBO_TAG_ASIDE,
    GUMBO_TAG_B,       GUMBO_TAG_BDI,     GUMBO_TAG_BDO,     GUMBO_TAG_BIG,     GUMBO_TAG_BLOCKQUOTE,
    GUMBO_TAG_BR,      GUMBO_TAG_CAPTION, GUMBO_TAG_CENTER,  GUMBO_TAG_CITE,    GUMBO_TAG_CODE,
    GUMBO_TAG_COL,     GUMBO_TAG_COLGROUP, GUMBO_TAG_DD,     GUMBO_TAG_DEL,     GUMBO_TAG_DFN,
    GUMBO_TAG_DIV,     GUMBO_TAG_DL,      GUMBO_TAG_DT,      GUMBO_TAG_EM,      GUMBO_TAG_FIGCAPTION,
    GUMBO_TAG_FIGURE,  GUMBO_TAG_FONT,    GUMBO_TAG_FOOTER,  GUMBO_TAG_H1,      GUMBO_TAG_H2,
    GUMBO_TAG_H3,      GUMBO_TAG_H4,      GUMBO_TAG_H5,      GUMBO_TAG_H6,      GUMBO_TAG_HEADER,
    GUMBO_TAG_HR,      GUMBO_TAG_I,       GUMBO_TAG_IMG,     GUMBO_TAG_INS,     GUMBO_TAG_KBD,
    GUMBO_TAG_LI,      GUMBO_TAG_MAIN,    GUMBO_TAG_MARK,    GUMBO_TAG_NAV,     GUMBO_TAG_OL,
    GUMBO_TAG_P,       GUMBO_TAG_PRE,     GUMBO_TAG_Q,       GUMBO_TAG_S,       GUMBO_TAG_SAMP,
    GUMBO_TAG_SECTION, GUMBO_TAG_SMALL,   GUMBO_TAG_SPAN,    GUMBO_TAG_STRIKE,  GUMBO_TAG_STRONG,
    GUMBO_TAG_SUB,     GUMBO_TAG_SUP,     GUMBO_TAG_TABLE,   GUMBO_TAG_TBODY,   GUMBO_TAG_TD,
    GUMBO_TAG_TFOOT,   GUMBO_TAG_TH,      GUMBO_TAG_THEAD,   GUMBO_TAG_TR,      GUMBO_TAG_TT,
    GUMBO_TAG_U,       GUMBO_TAG_UL,      GUMBO_TAG_VAR,     GUMBO_TAG_WBR,
};

// Attributes kept on kept elements: presentation only. No event handlers,
// nothing that loads (src, background, srcset, poster, ...), no id/name
// (they would clobber the page's DOM). href is kept on <a> only, checked.
constexpr std::array<std::string_view, 24> kKeepAttributes = {
    "align",  "valign", "bgcolor", "color",  "face",    "size",  "width", "height",
    "border", "cellpadding", "cellspacing", "colspan", "rowspan", "nowrap", "dir", "lang",
    "title",  "alt",    "start",   "type",   "value",   "span",  "class", "style",
};

// CSS properties kept in style="": text and box presentation. Nothing that
// positions over the page (position, z-index) or takes a URL (content,
// cursor, list-style-image, behavior...).
constexpr std::array<std::string_view, 52> kKeepCssProperties = {
    "color", "background-color", "background", "font", "font-family", "font-size", "font-weight",
    "font-style", "font-variant", "text-align", "text-decoration", "text-indent", "text-transform",
    "line-height", "letter-spacing", "word-spacing", "white-space", "vertical-align", "direction",
    "margin", "margin-top", "margin-right", "margin-bottom", "margin-left",
    "padding", "padding-top", "padding-right", "padding-bottom", "padding-left",
    "border", "border-top", "border-right", "border-bottom", "border-left", "border-color",
    "border-style", "border-width", "border-collapse", "border-spacing", "border-radius",
    "width", "height", "max-width", "min-width", "max-height", "min-height",
    "list-style-type", "table-layout", "text-align-last", "word-break", "word-wrap", "overflow-wrap",
};

// The only CSS functions a kept declaration may call: colours.
constexpr std::array<std::string_view, 4> kCssFunctions = {"rgb", "rgba", "hsl", "hsla"};

// Link schemes an agent may follow.
constexpr std::array<std::string_view, 3> kLinkSchemes = {"http", "https", "mailto"};

template <typename T, std::size_t N, typename V>
bool contains(const std::array<T, N>& set, const V& v) {
  return std::find(set.begin(), set.end(), v) != set.end();
}

bool is_void(GumboTag t) {
  return t == GUMBO_TAG_BR || t == GUMBO_TAG_HR || t == GUMBO_TAG_IMG || t == GUMBO_TAG_WBR || t == GUMBO_TAG_COL;
}

// A URL attribute as the URL parser sees it (WHATWG URL): leading and
// trailing C0 controls and spaces stripped, tabs and newlines removed
// anywhere. gumbo has already decoded the entities.
std::string url_as_browser_sees(std::string_view v) {
  auto c0_or_space = [](char c) { return static_cast<unsigned char>(c) <= 0x20; };
  while (!v.empty() && c0_or_space(v.front())) v.remove_prefix(1);
  while (!v.empty() && c0_or_space(v.back())) v.remove_suffix(1);
  std::string out;
  out.reserve(v.size());
  for (char c : v)
    if (c != '\t' && c != '\n' && c != '\r') out.push_back(c);
  return out;
}

// The scheme of `url`, lower-case, or "" for a relative URL.
std::string scheme_of(std::string_view url) {
  std::size_t i = 0;
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  if (url.empty() || !alpha(url[0])) return {};
  while (i < url.size() && (alpha(url[i]) || (url[i] >= '0' && url[i] <= '9') || url[i] == '+' || url[i] == '-' ||
                            url[i] == '.'))
    ++i;
  if (i == url.size() || url[i] != ':') return {};
  return ascii_lower(url.substr(0, i));
}

// Only absolute links with an allowed scheme: a relative link would resolve
// against the agents' own application.
bool is_allowed_link(const std::string& url) { return contains(kLinkSchemes, scheme_of(url)); }

// One declaration's value is kept only if every function it calls is a
// colour function and it holds no escapes, comments or at-rules that could
// hide one ("u\72 l(", "ur/**/l(").
bool is_safe_css_value(std::string_view v) {
  if (v.find_first_of("\\@<>{}") != std::string_view::npos) return false;
  if (v.find("/*") != std::string_view::npos) return false;
  // Not even the words: no value we keep needs them, and a checker (or a
  // future CSS feature) need not wonder what "url'..." means.
  std::string lower = ascii_lower(v);
  for (std::string_view word : {"url", "image", "expression", "binding", "behavior", "javascript"})
    if (lower.find(word) != std::string::npos) return false;
  for (std::size_t p = v.find('('); p != std::string_view::npos; p = v.find('(', p + 1)) {
    std::size_t b = p;
    while (b > 0 && (std::isalnum(static_cast<unsigned char>(v[b - 1])) || v[b - 1] == '-' || v[b - 1] == '_')) --b;
    if (!contains(kCssFunctions, ascii_lower(v.substr(b, p - b)))) return false;
  }
  return true;
}

// style="" reduced to the allowed declarations, each as written.
std::string filter_style(std::string_view style) {
  std::string out;
  std::size_t i = 0;
  while (i <= style.size()) {
    std::size_t semi = style.find(';', i);
    if (semi == std::string_view::npos) semi = style.size();
    std::string_view decl = trim(style.substr(i, semi - i));
    i = semi + 1;
    std::size_t colon = decl.find(':');
    if (colon == std::string_view::npos) continue;
    std::string property = ascii_lower(trim(decl.substr(0, colon)));
    std::string_view value = trim(decl.substr(colon + 1));
    if (!contains(kKeepCssProperties, property) || value.empty() || !is_safe_css_value(value)) continue;
    if (!out.empty()) out += "; ";
    out += property;
    out += ": ";
    out += value;
  }
  return out;
}

void append_escaped_text(std::string& out, std::string_view s) {
  for (char c : s) {
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '\0') continue;
    else out.push_back(c);
  }
}

void append_attribute(std::string& out, std::string_view name, std::string_view value) {
  out += ' ';
  out += name;
  out += "=\"";
  for (char c : value) {
    if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else if (c == '<') out += "&lt;";
    else if (c == '\0') continue;
    else out.push_back(c);
  }
  out += '"';
}

// ---- bounding the depth the parser builds -----------------------------------
// HTML5 tree construction checks "element in scope" by walking the stack of
// open elements, so 1 MB of "<div>" costs ~n² steps (half a minute). Before
// gumbo sees the input, this pass tokenises tags exactly as the HTML5
// tokenizer does (names, quoted attribute values, comments, RAWTEXT/RCDATA
// elements) and keeps an over-estimate of the open-element depth: a start
// tag pushes, an end tag pops only when it closes the innermost element
// (whatever the parser would do otherwise, it never closes more than that
// for free). A start tag that would nest deeper than kMaxHtmlNesting has its
// '<' written as "&lt;": the parser sees text, so the input can only lose
// markup, never gain any. Where the tokenizer's view is ambiguous to a
// scanner (script data holding "<!--", and script/RAWTEXT/CDATA once SVG or
// MathML may be open) the tag is written as text too.
constexpr std::size_t kMaxHtmlNesting = 256;

bool is_tag_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'; }
bool is_ascii_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Elements that never stay open (void), or that the parser closes itself
// before they could nest (p, li, table parts, ...): not counted.
bool is_uncounted(std::string_view n) {
  static constexpr std::string_view kNames[] = {
      "area", "base", "basefont", "bgsound", "br", "col", "embed", "hr", "img", "image", "input", "keygen",
      "link", "meta", "param", "source", "track", "wbr", "frame", "p", "li", "dd", "dt", "option", "optgroup",
      "tr", "td", "th", "tbody", "thead", "tfoot", "caption", "colgroup", "head", "body", "html"};
  return std::find(std::begin(kNames), std::end(kNames), n) != std::end(kNames);
}

bool is_raw_text(std::string_view n) {
  return n == "title" || n == "textarea" || n == "style" || n == "xmp" || n == "iframe" || n == "noembed" ||
         n == "noframes";
}

// From just past a tag name to just past its '>' (HTML5 tokenizer: tag
// name, attribute name/value states); npos when the input ends inside it.
std::size_t skip_tag(std::string_view s, std::size_t k) {
  const std::size_t n = s.size();
  while (true) {
    while (k < n && (is_tag_space(s[k]) || s[k] == '/')) ++k;
    if (k >= n) return std::string_view::npos;
    if (s[k] == '>') return k + 1;
    ++k;  // an attribute name's first character may be anything, '=' included
    while (k < n && !is_tag_space(s[k]) && s[k] != '/' && s[k] != '>' && s[k] != '=') ++k;
    while (k < n && is_tag_space(s[k])) ++k;
    if (k < n && s[k] == '=') {
      ++k;
      while (k < n && is_tag_space(s[k])) ++k;
      if (k >= n) return std::string_view::npos;
      if (s[k] == '"' || s[k] == '\'') {
        std::size_t close = s.find(s[k], k + 1);
        if (close == std::string_view::npos) return std::string_view::npos;
        k = close + 1;
      } else {
        while (k < n && !is_tag_space(s[k]) && s[k] != '>') ++k;
      }
    }
  }
}

std::size_t read_tag_name(std::string_view s, std::size_t k, std::string& name) {
  name.clear();
  while (k < s.size() && !is_tag_space(s[k]) && s[k] != '/' && s[k] != '>') {
    char c = s[k++];
    name.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  }
  return k;
}

// Just past a comment starting at s[lt] == "<!--" (HTML5 comment states).
std::size_t end_of_comment(std::string_view s, std::size_t lt) {
  std::size_t p = lt + 4;
  if (p < s.size() && s[p] == '>') return p + 1;                              // <!-->
  if (p + 1 < s.size() && s[p] == '-' && s[p + 1] == '>') return p + 2;       // <!--->
  // "-->" or "--!>", whichever comes first; one scan, so linear overall.
  for (std::size_t q = s.find("--", p); q != std::string_view::npos; q = s.find("--", q + 1)) {
    if (q + 2 < s.size() && s[q + 2] == '>') return q + 3;
    if (q + 3 < s.size() && s[q + 2] == '!' && s[q + 3] == '>') return q + 4;
  }
  return s.size();
}

// Where RAWTEXT/RCDATA content of `name` ends: at "</name" followed by
// space, '/' or '>' (case-insensitive); npos when it never does.
std::size_t end_of_raw_text(std::string_view s, std::size_t from, std::string_view name) {
  for (std::size_t p = s.find("</", from); p != std::string_view::npos; p = s.find("</", p + 2)) {
    std::size_t q = p + 2 + name.size();
    if (q < s.size() && istarts_with(s.substr(p + 2), name) && (is_tag_space(s[q]) || s[q] == '/' || s[q] == '>'))
      return p;
  }
  return std::string_view::npos;
}

std::string limit_nesting(std::string_view s, std::size_t max_depth) {
  std::string out;
  std::size_t copied = 0;  // s[0, copied) is in `out`
  auto as_text = [&](std::size_t lt) {
    out.append(s.substr(copied, lt - copied));
    out += "&lt;";
    copied = lt + 1;
  };
  std::vector<std::string> open;
  std::string name;
  bool foreign_seen = false;
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t lt = s.find('<', i);
    if (lt == std::string_view::npos || lt + 1 >= s.size()) break;
    const char c = s[lt + 1];
    if (c == '!') {
      if (s.substr(lt, 4) == "<!--") {
        i = end_of_comment(s, lt);
      } else if (foreign_seen && istarts_with(s.substr(lt), "<![cdata[")) {
        as_text(lt);  // CDATA in SVG/MathML, a bogus comment elsewhere: text either way now
        i = lt + 1;
      } else {
        std::size_t gt = s.find('>', lt + 2);
        i = gt == std::string_view::npos ? s.size() : gt + 1;
      }
      continue;
    }
    if (c == '?' || (c == '/' && lt + 2 < s.size() && !is_ascii_alpha(s[lt + 2]))) {
      if (c == '/' && s[lt + 2] == '>') {  // "</>" is dropped
        i = lt + 3;
        continue;
      }
      std::size_t gt = s.find('>', lt + 1);  // bogus comment
      i = gt == std::string_view::npos ? s.size() : gt + 1;
      continue;
    }
    if (c == '/') {
      if (lt + 2 >= s.size()) break;
      std::size_t end = skip_tag(s, read_tag_name(s, lt + 2, name));
      if (end == std::string_view::npos) break;
      if (!open.empty() && open.back() == name) open.pop_back();
      i = end;
      continue;
    }
    if (!is_ascii_alpha(c)) {
      i = lt + 1;
      continue;
    }
    std::size_t end = skip_tag(s, read_tag_name(s, lt + 1, name));
    if (end == std::string_view::npos) break;  // cut off by the end: the parser drops it
    if (name == "script" && !foreign_seen) {
      // Script data ends at the first "</script" unless "<!--" inside puts
      // the tokenizer in its escaped states; then it is text to us.
      std::size_t close = end_of_raw_text(s, end, name);
      std::string_view data = s.substr(end, close == std::string_view::npos ? std::string_view::npos : close - end);
      if (data.find("<!--") == std::string_view::npos) {
        if (close == std::string_view::npos) break;  // the rest is script
        i = close;
        continue;
      }
    }
    if (name == "script" || (foreign_seen && is_raw_text(name))) {
      as_text(lt);
      i = lt + 1;
      continue;
    }
    if (name == "plaintext") break;  // everything after it is text
    if (!is_uncounted(name)) {
      if (open.size() >= max_depth) {
        as_text(lt);
        i = lt + 1;  // its attributes are text now, scanned as such
        continue;
      }
      open.push_back(name);
      if (name == "svg" || name == "math") foreign_seen = true;
    }
    i = end;
    if (is_raw_text(name)) {
      std::size_t close = end_of_raw_text(s, end, name);
      if (close == std::string_view::npos) break;
      i = close;
    }
  }
  if (copied == 0) return std::string(s);
  out.append(s.substr(copied));
  return out;
}

// How often the tree walk reads the clock (nodes).
constexpr unsigned kWalkCheckInterval = 1024;

class Serializer {
 public:
  Serializer(const InlineImageResolver& resolve, const HtmlBudget& budget) : resolve_(resolve), budget_(budget) {}

  // Iterative: a hostile document may nest a million elements deep.
  HtmlFailure write_children(const GumboNode* parent, std::string& out) {
    struct Frame {
      const GumboNode* node;
      unsigned next_child;
      bool opened;  // its start tag was written: write the end tag too
    };
    std::vector<Frame> stack;
    stack.push_back({parent, 0, false});
    unsigned visited = 0;
    while (!stack.empty()) {
      Frame& f = stack.back();
      const GumboVector& children = f.node->v.element.children;
      if (f.next_child >= children.length) {
        if (f.opened) {
          out += "</";
          out += gumbo_normalized_tagname(f.node->v.element.tag);
          out += '>';
        }
        stack.pop_back();
        continue;
      }
      const auto* child = static_cast<const GumboNode*>(children.data[f.next_child++]);
      if (++visited % kWalkCheckInterval == 0) {
        if (budget_.cancel && budget_.cancel->load(std::memory_order_relaxed)) return HtmlFailure::Cancelled;
        if (Clock::now() > budget_.deadline) return HtmlFailure::OverTime;
      }
      switch (child->type) {
        case GUMBO_NODE_TEXT:
        case GUMBO_NODE_WHITESPACE:
        case GUMBO_NODE_CDATA:
          append_escaped_text(out, child->v.text.text);
          break;
        case GUMBO_NODE_ELEMENT:
        case GUMBO_NODE_TEMPLATE:
        {
          if (dropped(child)) break;
          bool opened = open_element(child, out);
          if (!is_void(child->v.element.tag)) stack.push_back({child, 0, opened});  // `f` is invalid from here
          break;
        }
        default:  // comments, the document
          break;
      }
    }
    return HtmlFailure::None;
  }

 private:
  // SVG and MathML (and anything in them) are active or loading content.
  static bool dropped(const GumboNode* e) {
    return e->v.element.tag_namespace != GUMBO_NAMESPACE_HTML || contains(kDropWithContent, e->v.element.tag);
  }

  // Writes the start tag if the element is kept; returns whether it did.
  bool open_element(const GumboNode* e, std::string& out) {
    const GumboElement& el = e->v.element;
    if (el.tag_namespace != GUMBO_NAMESPACE_HTML || !contains(kKeep, el.tag)) return false;
    if (el.tag == GUMBO_TAG_IMG) return write_image(el, out);
    out += '<';
    out += gumbo_normalized_tagname(el.tag);
    for (unsigned i = 0; i < el.attributes.length; ++i) {
      const auto* a = static_cast<const GumboAttribute*>(el.attributes.data[i]);
      std::string_view name = a->name;  // gumbo lower-cases attribute names
      if (name == "href" && el.tag == GUMBO_TAG_A) {
        std::string url = url_as_browser_sees(a->value);
        if (is_allowed_link(url)) append_attribute(out, name, url);
      } else if (name == "style") {
        if (std::string style = filter_style(a->value); !style.empty()) append_attribute(out, name, style);
      } else if (contains(kKeepAttributes, name)) {
        append_attribute(out, name, a->value);
      }
    }
    out += is_void(el.tag) ? "/>" : ">";
    // The parser drops one newline right after <pre>; keep a leading one.
    if (el.tag == GUMBO_TAG_PRE && el.children.length > 0) {
      const auto* first = static_cast<const GumboNode*>(el.children.data[0]);
      if ((first->type == GUMBO_NODE_TEXT || first->type == GUMBO_NODE_WHITESPACE) && first->v.text.text[0] == '\n')
        out += '\n';
    }
    return true;
  }

  // Only images the message carries, in exactly the API's form.
  bool write_image(const GumboElement& el, std::string& out) {
    const GumboAttribute* src = gumbo_get_attribute(&el.attributes, "src");
    if (!src || !resolve_) return false;
    std::string url = url_as_browser_sees(src->value);
    auto placeholder = resolve_(url);
    if (!placeholder) return false;  // remote or unresolvable (tracking pixels)
    out += "<img src=\"";
    out += *placeholder;
    out += "\"/>";
    return true;
  }

  const InlineImageResolver& resolve_;
  const HtmlBudget& budget_;
};

std::string describe(HtmlFailure f, std::size_t limit) {
  switch (f) {
    case HtmlFailure::OverTime: return "HTML sanitising ran over the processing time budget";
    case HtmlFailure::OverMemory:
      return "HTML too complex: parsing it needs more than " + std::to_string(limit / (1024 * 1024)) + " MB";
    case HtmlFailure::Cancelled: return "cancelled (shutting down)";
    case HtmlFailure::None: break;
  }
  return {};
}

}  // namespace

SanitizedHtml sanitize_html(std::string_view html, const InlineImageResolver& resolve, const HtmlBudget& budget) {
  SanitizedHtml result;
  Arena arena;
  arena.limit = budget.max_parser_memory;
  arena.deadline = budget.deadline;
  arena.cancel = budget.cancel;
  GumboOptions options = kGumboDefaultOptions;
  options.allocator = arena_allocate;
  options.deallocator = arena_deallocate;
  options.userdata = &arena;
  options.max_errors = 0;  // parse errors are not recorded: they would only cost memory
  const std::string bounded = limit_nesting(html, kMaxHtmlNesting);
  GumboOutput* output = parse_in_arena(arena, options, bounded.data(), bounded.size());
  if (!output) {
    result.failure = arena.failure;
  } else {
    const GumboNode* body = nullptr;
    const GumboVector& top = output->root->v.element.children;
    for (unsigned i = 0; i < top.length; ++i) {
      const auto* n = static_cast<const GumboNode*>(top.data[i]);
      if (n->type == GUMBO_NODE_ELEMENT && n->v.element.tag == GUMBO_TAG_BODY) body = n;
    }
    std::string out;
    out.reserve(html.size());
    if (body) result.failure = Serializer(resolve, budget).write_children(body, out);
    if (result.failure == HtmlFailure::None) result.html = std::string(trim(out));
  }
  // The tree is freed with the arena (never by gumbo_destroy_output).
  result.error = describe(result.failure, budget.max_parser_memory);
  return result;
}

std::string sanitize_html(std::string_view html, const InlineImageResolver& resolve) {
  return sanitize_html(html, resolve, HtmlBudget{}).html;
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
