// Fuzz target for the HTML sanitiser, judged the way a browser would judge
// its output: the output is parsed again with the same HTML5 parser (gumbo)
// and the run fails (trap) on anything active or loading that survived:
// an event-handler attribute; a script, iframe, frame, object, embed,
// applet, base, meta, link, form, style, svg or math element; a URL
// attribute with a scheme other than http/https/mailto; an <img> whose
// source is not one of the att: placeholders mailgate created for this
// input; CSS with url(), image-set(), expression() or an escape.
// The sanitiser's output then goes through strip_quoted_html (what a reply
// carries): its result must be the same output or a prefix of it followed
// only by end tags, and is checked the same way.
#include <gumbo.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "mailgate/mail/html.hpp"
#include "mailgate/mail/quote_strip.hpp"

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// As the URL parser sees it: C0/space trimmed, tab/CR/LF removed.
std::string url_of(std::string_view v) {
  while (!v.empty() && static_cast<unsigned char>(v.front()) <= 0x20) v.remove_prefix(1);
  std::string out;
  for (char c : v)
    if (c != '\t' && c != '\n' && c != '\r') out.push_back(c);
  return lower(out);
}

[[noreturn]] void found(const char* what) {
  // The message names the rule; the input is saved by libFuzzer.
  fprintf(stderr, "fuzz_sanitize_html: unsafe output: %s\n", what);
  __builtin_trap();
}

void check_element(const GumboElement& el, const std::set<std::string>& ours) {
  switch (el.tag) {
    case GUMBO_TAG_SCRIPT: case GUMBO_TAG_IFRAME: case GUMBO_TAG_FRAME: case GUMBO_TAG_FRAMESET:
    case GUMBO_TAG_OBJECT: case GUMBO_TAG_EMBED: case GUMBO_TAG_APPLET: case GUMBO_TAG_BASE:
    case GUMBO_TAG_META: case GUMBO_TAG_LINK: case GUMBO_TAG_FORM: case GUMBO_TAG_STYLE:
    case GUMBO_TAG_SVG: case GUMBO_TAG_MATH: case GUMBO_TAG_INPUT: case GUMBO_TAG_BUTTON:
    case GUMBO_TAG_TEXTAREA: case GUMBO_TAG_VIDEO: case GUMBO_TAG_AUDIO: case GUMBO_TAG_SOURCE:
      if (el.tag_namespace == GUMBO_NAMESPACE_HTML || el.tag == GUMBO_TAG_SVG || el.tag == GUMBO_TAG_MATH)
        found("active element");
      break;
    default:
      break;
  }
  if (el.tag_namespace != GUMBO_NAMESPACE_HTML) found("foreign (SVG/MathML) content");
  for (unsigned i = 0; i < el.attributes.length; ++i) {
    const auto* a = static_cast<const GumboAttribute*>(el.attributes.data[i]);
    std::string name = lower(a->name);
    if (name.rfind("on", 0) == 0) found("event-handler attribute");
    if (name == "src" || name == "srcset" || name == "background" || name == "poster" || name == "lowsrc" ||
        name == "dynsrc" || name == "data" || name == "action" || name == "formaction" || name == "xlink:href" ||
        name == "ping" || name == "codebase") {
      if (!(el.tag == GUMBO_TAG_IMG && name == "src" && ours.count(a->value))) found("loading attribute");
    }
    if (name == "href") {
      std::string url = url_of(a->value);
      if (url.rfind("http:", 0) != 0 && url.rfind("https:", 0) != 0 && url.rfind("mailto:", 0) != 0)
        found("link with a dangerous or relative scheme");
    }
    if (name == "style") {
      std::string css = lower(a->value);
      if (css.find("url") != std::string::npos || css.find("image-set") != std::string::npos ||
          css.find("expression") != std::string::npos || css.find('\\') != std::string::npos ||
          css.find("@import") != std::string::npos || css.find("binding") != std::string::npos)
        found("CSS that loads or runs");
    }
  }
}

// Whether `stripped` is a prefix of `out` followed by end tags only.
bool is_prefix_plus_end_tags(std::string_view stripped, std::string_view out) {
  while (out.substr(0, stripped.size()) != stripped) {
    if (stripped.empty() || stripped.back() != '>') return false;
    std::size_t lt = stripped.rfind("</");
    if (lt == std::string_view::npos) return false;
    for (char c : stripped.substr(lt + 2, stripped.size() - lt - 3))
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
    stripped = stripped.substr(0, lt);
  }
  return true;
}

void check_output(const std::string& out, const std::set<std::string>& ours) {
  GumboOutput* parsed = gumbo_parse_with_options(&kGumboDefaultOptions, out.data(), out.size());
  std::vector<const GumboNode*> stack = {parsed->root};
  while (!stack.empty()) {
    const GumboNode* n = stack.back();
    stack.pop_back();
    if (n->type != GUMBO_NODE_ELEMENT && n->type != GUMBO_NODE_TEMPLATE) continue;
    if (n->v.element.tag == GUMBO_TAG_TEMPLATE) found("template element");
    // html/head/body too: a <body onload> in the output would add its
    // attributes to the parser's own body element.
    check_element(n->v.element, ours);
    for (unsigned i = 0; i < n->v.element.children.length; ++i)
      stack.push_back(static_cast<const GumboNode*>(n->v.element.children.data[i]));
  }
  gumbo_destroy_output(&kGumboDefaultOptions, parsed);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view html(reinterpret_cast<const char*>(data), size);
  // Like the draft: cid: and data:image/ sources become placeholders we
  // record; everything else (remote, att: forged by the sender) is refused.
  std::set<std::string> ours;
  auto resolve = [&](std::string_view src) -> std::optional<std::string> {
    std::string s = lower(src.substr(0, 11));
    if (s.rfind("cid:", 0) != 0 && s.rfind("data:image/", 0) != 0) return std::nullopt;
    std::string placeholder = "att:media-" + std::to_string(ours.size() + 1);
    ours.insert(placeholder);
    return placeholder;
  };
  std::string out = mailgate::mail::sanitize_html(html, resolve);

  check_output(out, ours);

  std::string stripped = mailgate::mail::strip_quoted_html(out);
  if (stripped != out) {
    if (!is_prefix_plus_end_tags(stripped, out)) found("stripped reply is not a prefix of the output plus end tags");
    check_output(stripped, ours);
  }
  return 0;
}
