// Finds where the new text of a reply ends and the quoted history begins.
// The ticket HTML is parsed again (gumbo) into a flat list of what a reader
// sees — text runs and images, in document order — each marked quoted or
// not; the reply keeps the input up to the last unquoted one. Working on
// the sanitised HTML (not the raw part) keeps one sanitiser pass per mail
// and makes the result a prefix of already-safe HTML; the markers needed
// survive sanitising (class and type are kept), except Outlook's
// id="divRplyFwdMsg", which is why Outlook is found by its header block.
#include "mailgate/mail/quote_strip.hpp"

#include <gumbo.h>
#include <re2/re2.h>

#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "gumbo_arena.hpp"

namespace mailgate::mail {
namespace {

// Text runs joined to test an attribution line ("On … wrote:" may be split
// by a mailto link or wrapped over two lines), and their total bytes.
constexpr std::size_t kMaxAttributionItems = 6;
constexpr std::size_t kMaxAttributionBytes = 1000;
// Lines after "From:" in which Outlook's "Sent:" must appear.
constexpr std::size_t kHeaderBlockLookahead = 8;
// Bytes of a line the label patterns look at: a label is near its start.
constexpr std::size_t kLabelPrefixBytes = 120;

// Attribution lines in the languages the issue names (en, es, fr, de, pt,
// it, ca) and a few more: "On <date>, <who> wrote:" may wrap over two
// lines (Gmail's plain text does); "<who> wrote:" (no date) is one line.
const RE2& dated_attribution() {
  static const RE2 re(
      R"((?is)\s*(?:On|El|Le|Am|Em|Il|Op|Den|W dniu)\s.+?)"
      R"((?:wrote|escribió|a\s+écrit|schrieb.*?|escreveu|ha\s+scritto|va\s+escriure|geschreven|napisał|skrev)\s*:\s*)");
  return re;
}
const RE2& short_attribution() {
  static const RE2 re(
      R"((?i)\s*[^\n]{1,120}?\s(?:wrote|escribió|a\s+écrit|schrieb|escreveu|ha\s+scritto|va\s+escriure)\s*:\s*)");
  return re;
}
const RE2& outlook_from_label() {
  static const RE2 re(R"((?i)\s*(?:From|De|Von|Da|Van|Från|Fra|Od)[\s\x{00A0}]*:)");
  return re;
}
const RE2& outlook_sent_label() {
  static const RE2 re(
      R"((?i)\s*(?:Sent|Enviado(?:\s+el)?|Envoyé|Gesendet|Inviato|Enviat|Verzonden|Skickat|Sendt|Date|Fecha|Datum|Data)[\s\x{00A0}]*:)");
  return re;
}
const RE2& original_message_line() {
  static const RE2 re(
      R"((?i)\s*-{2,}\s*(?:Original Message|Mensaje original|Message d'origine|Ursprüngliche Nachricht|)"
      R"(Messaggio originale|Mensagem original|Missatge original|Oorspronkelijk bericht)\s*-{2,}\s*)");
  return re;
}
const RE2& underscore_line() {
  static const RE2 re(R"(\s*_{8,}\s*)");
  return re;
}
// A forwarded message is what the customer sends on purpose, not history.
const RE2& forward_line() {
  static const RE2 re(
      R"((?i)\s*(?:-{2,}\s*(?:Forwarded message|Mensaje reenviado|Message transféré|Weitergeleitete Nachricht|)"
      R"(Mensagem encaminhada|Messaggio inoltrato|Missatge reenviat|Doorgestuurd bericht)\s*-{2,}|)"
      R"(Begin forwarded message:|Inicio del mensaje reenviado:|Début du message réexpédié :|)"
      R"(Anfang der weitergeleiteten Nachricht:|Início da mensagem reencaminhada:|Inizio messaggio inoltrato:).*)");
  return re;
}

// Classes of an element holding quoted text or its attribution line.
// Gmail's div.gmail_quote is not one: it is a container the customer types
// an inline reply into, between its blockquote.gmail_quote elements.
constexpr std::array<std::string_view, 4> kQuoteClasses = {"gmail_attr", "moz-cite-prefix", "yahoo_quoted",
                                                           "protonmail_quote"};

// Elements that do not start a new line; everything else does.
constexpr std::array kInlineTags = {
    GUMBO_TAG_A,    GUMBO_TAG_ABBR, GUMBO_TAG_B,      GUMBO_TAG_BDI,  GUMBO_TAG_BDO,  GUMBO_TAG_BIG,
    GUMBO_TAG_CITE, GUMBO_TAG_CODE, GUMBO_TAG_DEL,    GUMBO_TAG_DFN,  GUMBO_TAG_EM,   GUMBO_TAG_FONT,
    GUMBO_TAG_I,    GUMBO_TAG_IMG,  GUMBO_TAG_INS,    GUMBO_TAG_KBD,  GUMBO_TAG_MARK, GUMBO_TAG_Q,
    GUMBO_TAG_S,    GUMBO_TAG_SAMP, GUMBO_TAG_SMALL,  GUMBO_TAG_SPAN, GUMBO_TAG_STRIKE, GUMBO_TAG_STRONG,
    GUMBO_TAG_SUB,  GUMBO_TAG_SUP,  GUMBO_TAG_TT,     GUMBO_TAG_U,    GUMBO_TAG_VAR,  GUMBO_TAG_WBR,
};

// What a reader sees: one text run or one image.
struct Item {
  std::string_view text;  // decoded; "" for an image
  std::size_t end = 0;    // offset in the input just past it
  bool line_start = false;
  bool quoted = false;
};

// A run of items [first, last] a quote marker covers.
struct Region {
  std::size_t first;
  std::size_t last;
};

// ASCII whitespace, NO-BREAK SPACE, zero-width space and BOM are not text.
std::size_t skip_blank(std::string_view s, std::size_t i) {
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') ++i;
    else if (s.substr(i, 2) == "\xC2\xA0") i += 2;
    else if (s.substr(i, 3) == "\xE2\x80\x8B" || s.substr(i, 3) == "\xEF\xBB\xBF") i += 3;
    else break;
  }
  return i;
}
bool is_blank(std::string_view s) { return skip_blank(s, 0) == s.size(); }

// Whether `text` starts with what `re` matches (looking at its start
// only). Every label and separator holds a ':' or "--": most lines are
// rejected without running the pattern.
bool starts_with_match(std::string_view text, const RE2& re) {
  std::string_view head = text.substr(0, kLabelPrefixBytes);
  if (head.find(':') == std::string_view::npos && head.find("--") == std::string_view::npos) return false;
  return re.Match(head, 0, head.size(), RE2::ANCHOR_START, nullptr, 0);
}

// Whether all of `text`, a short line, is what `re` matches.
bool is_whole_match(std::string_view text, const RE2& re) {
  if (text.size() > kLabelPrefixBytes) return false;
  if (text.find(':') == std::string_view::npos && text.find("--") == std::string_view::npos &&
      text.find("__") == std::string_view::npos)
    return false;
  return RE2::FullMatch(text, re);
}

// Every attribution line ends with ':' (before trailing blanks).
bool ends_with_colon(std::string_view s) {
  std::size_t end = s.find_last_not_of(" ");
  return end != std::string_view::npos && s[end] == ':';
}

template <std::size_t N>
bool has_class(const GumboElement& el, const std::array<std::string_view, N>& classes) {
  const GumboAttribute* cls = gumbo_get_attribute(&el.attributes, "class");
  if (!cls) return false;
  std::string_view v = cls->value;
  std::size_t i = 0;
  while (i < v.size()) {
    std::size_t end = v.find_first_of(" \t\n\r\f", i);
    if (end == std::string_view::npos) end = v.size();
    if (std::find(classes.begin(), classes.end(), v.substr(i, end - i)) != classes.end())
      return true;
    i = end + 1;
  }
  return false;
}

bool is_quote_element(const GumboElement& el) {
  if (el.tag == GUMBO_TAG_BLOCKQUOTE) {
    const GumboAttribute* type = gumbo_get_attribute(&el.attributes, "type");
    std::string_view t = type ? type->value : "";
    if (t.size() == 4 && (t[0] | 0x20) == 'c' && (t[1] | 0x20) == 'i' && (t[2] | 0x20) == 't' && (t[3] | 0x20) == 'e')
      return true;
    if (has_class(el, std::array<std::string_view, 1>{"gmail_quote"})) return true;
  }
  return has_class(el, kQuoteClasses);
}

bool is_inline(GumboTag tag) { return std::find(kInlineTags.begin(), kInlineTags.end(), tag) != kInlineTags.end(); }

// How often the tree walk reads the clock (nodes).
constexpr unsigned kWalkCheckInterval = 1024;

// One pass over the tree, iterative (the depth is the sanitiser's bound,
// but no recursion on mail). Collects the items and the outermost quote
// elements as regions.
class ItemCollector {
 public:
  explicit ItemCollector(const HtmlBudget& budget) : budget_(budget) {}

  // False when it gave up: over kMaxQuoteStripItems, or `failure` is set.
  bool collect(const GumboNode* body) {
    struct Frame {
      const GumboNode* node;
      unsigned next_child;
      bool quote;  // a region was opened for this element
    };
    std::vector<Frame> stack{{body, 0, false}};
    while (!stack.empty()) {
      Frame& f = stack.back();
      const GumboVector& children = f.node->v.element.children;
      if (f.next_child >= children.length) {
        leave(f.node, f.quote);
        stack.pop_back();
        continue;
      }
      const auto* child = static_cast<const GumboNode*>(children.data[f.next_child++]);
      if (items.size() >= kMaxQuoteStripItems || over_budget()) return false;
      if (child->type == GUMBO_NODE_TEXT || child->type == GUMBO_NODE_CDATA) {
        add_text(child->v.text);
      } else if (child->type == GUMBO_NODE_ELEMENT) {
        const GumboElement& el = child->v.element;
        if (el.tag == GUMBO_TAG_BR) {
          at_line_start_ = true;
        } else if (el.tag == GUMBO_TAG_IMG) {
          add_item({}, el.start_pos.offset + el.original_tag.length);
        } else {
          bool quote = is_quote_element(el);
          enter(child, quote);
          stack.push_back({child, 0, quote});  // `f` is invalid from here
        }
      }
    }
    return true;
  }

  std::vector<Item> items;
  std::vector<Region> regions;  // outermost quote elements, in order
  HtmlFailure failure = HtmlFailure::None;

 private:
  bool over_budget() {
    if (++visited_ % kWalkCheckInterval != 0) return false;
    if (budget_.cancel && budget_.cancel->load(std::memory_order_relaxed)) failure = HtmlFailure::Cancelled;
    else if (detail::Clock::now() > budget_.deadline) failure = HtmlFailure::OverTime;
    return failure != HtmlFailure::None;
  }

  void enter(const GumboNode* n, bool quote) {
    if (!is_inline(n->v.element.tag)) at_line_start_ = true;
    if (quote && quote_depth_++ == 0) open_region_ = items.size();
  }

  void leave(const GumboNode* n, bool quote) {
    if (n->type == GUMBO_NODE_ELEMENT && !is_inline(n->v.element.tag)) at_line_start_ = true;
    if (quote && --quote_depth_ == 0 && items.size() > open_region_) regions.push_back({open_region_, items.size() - 1});
  }

  void add_text(const GumboText& t) {
    std::string_view text = t.text;
    if (is_blank(text)) return;
    add_item(text, t.start_pos.offset + t.original_text.length);
  }

  void add_item(std::string_view text, std::size_t end) {
    items.push_back({text, end, at_line_start_, quote_depth_ > 0});
    at_line_start_ = false;
  }

  const HtmlBudget& budget_;
  unsigned visited_ = 0;
  bool at_line_start_ = true;
  unsigned quote_depth_ = 0;
  std::size_t open_region_ = 0;
};

// Lines starting with '>' (plain text rendered by text_to_html, or pasted
// into HTML), with the rest of their line.
void mark_plain_quotes(std::vector<Item>& items, std::vector<Region>& regions) {
  bool quoted_line = false;
  for (std::size_t i = 0; i < items.size(); ++i) {
    Item& it = items[i];
    if (it.quoted) {  // inside a quote element
      quoted_line = false;
      continue;
    }
    if (it.line_start) {
      bool was_quoted = quoted_line;
      std::size_t p = skip_blank(it.text, 0);
      quoted_line = p < it.text.size() && it.text[p] == '>';
      if (quoted_line && !was_quoted) regions.push_back({i, i});
    }
    if (quoted_line) {
      it.quoted = true;
      regions.back().last = i;
    }
  }
}

// A forwarded message that a client marks like a quote (Gmail puts its
// "Forwarded message" header in div.gmail_attr) stays: it is content the
// customer sends on purpose.
void unmark_forwards(std::vector<Item>& items, std::vector<Region>& regions) {
  std::vector<Region> kept;
  for (const Region& r : regions) {
    if (starts_with_match(items[r.first].text, forward_line())) {
      for (std::size_t i = r.first; i <= r.last; ++i) items[i].quoted = false;
    } else {
      kept.push_back(r);
    }
  }
  regions = std::move(kept);
}

// Outlook quotes nothing: under its header block ("From: …" then "Sent: …"
// within a few lines, or "-----Original Message-----") everything is the
// earlier message. Marks from the first such block to the end.
void mark_outlook_history(std::vector<Item>& items, std::vector<Region>& regions) {
  for (std::size_t i = 0; i < items.size(); ++i) {
    const Item& it = items[i];
    if (!it.line_start || it.quoted) continue;
    bool original = is_whole_match(it.text, original_message_line());
    bool header = !original && starts_with_match(it.text, outlook_from_label()) && [&] {
      std::size_t lines = 0;
      for (std::size_t j = i + 1; j < items.size() && lines < kHeaderBlockLookahead; ++j) {
        if (!items[j].line_start) continue;
        ++lines;
        if (starts_with_match(items[j].text, outlook_sent_label())) return true;
      }
      return false;
    }();
    if (!original && !header) continue;
    std::size_t start = i;
    if (i > 0 && items[i - 1].line_start) {
      std::string_view before = items[i - 1].text;
      if (starts_with_match(before, forward_line())) continue;  // a forward's header
      // OWA and Outlook plain text draw a line of underscores above it.
      if (header && (is_whole_match(before, original_message_line()) || is_whole_match(before, underscore_line())))
        start = i - 1;
    }
    for (std::size_t j = start; j < items.size(); ++j) items[j].quoted = true;
    regions.push_back({start, items.size() - 1});
    return;
  }
}

// One line of the attribution text as the patterns read it: every
// whitespace (NO-BREAK SPACE included: "a écrit\u00A0:") a plain space.
std::string attribution_text(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text.substr(i, 2) == "\xC2\xA0") {
      out += ' ';
      ++i;
    } else {
      char c = text[i];
      out += (c == '\n' || c == '\r' || c == '\t' || c == '\f') ? ' ' : c;
    }
  }
  return out;
}

// The attribution line before a quote belongs to it: the longest run of
// unquoted items just before it, starting a line, at most two lines, that
// reads "On … wrote:" (or one line "… wrote:").
void mark_attributions(std::vector<Item>& items, const std::vector<Region>& regions) {
  for (const Region& r : regions) {
    std::string joined;  // items[k, r.first), lines joined by '\n'
    std::size_t lines = 0;
    std::size_t attribution = r.first;
    for (std::size_t k = r.first; k-- > 0 && r.first - k <= kMaxAttributionItems && lines < 2;) {
      if (items[k].quoted || joined.size() + items[k].text.size() > kMaxAttributionBytes) break;
      if (k + 1 < r.first && items[k + 1].line_start) joined.insert(0, "\n");
      joined.insert(0, attribution_text(items[k].text));
      if (!items[k].line_start) continue;
      ++lines;
      if (ends_with_colon(joined) &&
          (RE2::FullMatch(joined, dated_attribution()) || RE2::FullMatch(joined, short_attribution())))
        attribution = k;
    }
    for (std::size_t j = attribution; j < r.first; ++j) items[j].quoted = true;
  }
}

// The end tags `kept` (a prefix of sanitiser output: every '<' starts a
// tag, attribute values are double-quoted) leaves open, innermost first.
std::string closing_tags(std::string_view kept) {
  std::vector<std::string_view> open;
  std::size_t pos = 0;
  while ((pos = kept.find('<', pos)) != std::string_view::npos) {
    std::size_t gt = pos + 1;
    for (bool in_quotes = false; gt < kept.size() && (in_quotes || kept[gt] != '>'); ++gt)
      if (kept[gt] == '"') in_quotes = !in_quotes;
    if (gt >= kept.size()) break;
    std::string_view tag = kept.substr(pos + 1, gt - pos - 1);
    pos = gt + 1;
    if (tag.empty() || tag.back() == '/') continue;  // void: <br/>, <img …/>
    if (tag.front() == '/') {
      if (!open.empty() && open.back() == tag.substr(1)) open.pop_back();
      continue;
    }
    open.push_back(tag.substr(0, tag.find_first_of(" \t\n")));
  }
  std::string out;
  for (auto it = open.rbegin(); it != open.rend(); ++it) out.append("</").append(*it).append(">");
  return out;
}

// The stripped text; failure set (and "" returned) when over budget.
std::string strip_parsed(std::string_view html, const GumboOutput* output, const HtmlBudget& budget,
                         HtmlFailure& failure) {
  const GumboNode* body = nullptr;
  const GumboVector& top = output->root->v.element.children;
  for (unsigned i = 0; i < top.length; ++i) {
    const auto* n = static_cast<const GumboNode*>(top.data[i]);
    if (n->type == GUMBO_NODE_ELEMENT && n->v.element.tag == GUMBO_TAG_BODY) body = n;
  }
  ItemCollector collector(budget);
  if (!body) return std::string(html);
  if (!collector.collect(body)) {
    failure = collector.failure;
    return failure == HtmlFailure::None ? std::string(html) : std::string();
  }
  std::vector<Item>& items = collector.items;
  std::vector<Region>& regions = collector.regions;
  unmark_forwards(items, regions);
  mark_plain_quotes(items, regions);
  mark_outlook_history(items, regions);
  mark_attributions(items, regions);

  auto last_new = std::find_if(items.rbegin(), items.rend(), [](const Item& it) { return !it.quoted; });
  if (last_new == items.rend() || last_new == items.rbegin()) return std::string(html);  // all quoted, or none after
  std::size_t end = std::min(last_new->end, html.size());
  std::string out(html.substr(0, end));
  out += closing_tags(out);
  return out;
}

}  // namespace

SanitizedHtml strip_quoted_html(std::string_view html, const HtmlBudget& budget) {
  SanitizedHtml result;
  detail::Arena arena;
  arena.limit = budget.max_parser_memory;
  arena.deadline = budget.deadline;
  arena.cancel = budget.cancel;
  const GumboOptions options = detail::arena_options(arena);
  // The input went through the sanitiser's nesting bound already; its tree
  // is freed with the arena, never node by node.
  if (const GumboOutput* output = detail::parse_in_arena(arena, options, html.data(), html.size()))
    result.html = strip_parsed(html, output, budget, result.failure);
  else
    result.failure = arena.failure;
  switch (result.failure) {
    case HtmlFailure::OverTime: result.error = "stripping the quoted history ran over the processing time budget"; break;
    case HtmlFailure::OverMemory:
      result.error = "HTML too complex to strip the quoted history: parsing it needs more than " +
                     std::to_string(budget.max_parser_memory / (1024 * 1024)) + " MB";
      break;
    case HtmlFailure::Cancelled: result.error = "cancelled (shutting down)"; break;
    case HtmlFailure::None: break;
  }
  return result;
}

std::string strip_quoted_html(std::string_view html) {
  SanitizedHtml r = strip_quoted_html(html, HtmlBudget{});
  return r.failure == HtmlFailure::None ? std::move(r.html) : std::string(html);
}

}  // namespace mailgate::mail
