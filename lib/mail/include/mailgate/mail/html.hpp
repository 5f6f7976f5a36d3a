// HTML for the ticket message: mail HTML made safe for an agent's browser,
// and plain text made into HTML.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace mailgate::mail {

// Maps an <img src> that points into the message ("cid:…" or "data:…") to
// the placeholder of its uploaded media ("att:media-3"); nullopt drops the
// image.
using InlineImageResolver = std::function<std::optional<std::string>(std::string_view src)>;

// Live memory the HTML5 parser may hold for one HTML part. Its tree costs
// roughly 100-200 bytes per element, so ordinary mail HTML (even a 5 MB
// newsletter) stays far below this; 25 MB of nested tags would not.
inline constexpr std::size_t kMaxHtmlParserMemory = 256 * 1024 * 1024;

// What one sanitisation may spend. The deadline and the cancel flag are
// checked inside the parser (on its allocations) and in the tree walk, so a
// hostile document stops within milliseconds of either.
struct HtmlBudget {
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  const std::atomic<bool>* cancel = nullptr;  // set: give up now (shutdown)
  std::size_t max_parser_memory = kMaxHtmlParserMemory;
};

enum class HtmlFailure { None, OverTime, OverMemory, Cancelled };

struct SanitizedHtml {
  std::string html;
  HtmlFailure failure = HtmlFailure::None;
  std::string error;  // why, when failure != None
};

// Parses `html` as a browser would (HTML5, gumbo), then serialises from the
// tree only what an allow-list keeps: the content of <body>, ordinary text
// markup, href with http:, https: or mailto: (checked after entity decoding
// and the browser's whitespace stripping), style reduced to a few
// properties with no CSS functions other than colours. Scripts, styles,
// frames, objects, forms, SVG/MathML, comments, event handlers and every
// attribute that loads from the network are dropped. Images resolved by
// `resolve` become exactly <img src="att:…"/> as the Messenger API
// documents; all other images are dropped. Linear in the input.
SanitizedHtml sanitize_html(std::string_view html, const InlineImageResolver& resolve, const HtmlBudget& budget);

// As above with no deadline; a document over the memory budget gives "".
std::string sanitize_html(std::string_view html, const InlineImageResolver& resolve);

// Plain text → HTML: escaped, paragraphs at blank lines, <br/> at line
// breaks. `flowed` applies RFC 3676 format=flowed (joining soft breaks,
// removing space-stuffing); `delsp` is its DelSp=yes.
std::string text_to_html(std::string_view text, bool flowed = false, bool delsp = false);

// The charset an HTML document declares in <meta>, or "" (first 4 KiB only).
std::string sniff_html_charset(std::string_view html);

}  // namespace mailgate::mail
