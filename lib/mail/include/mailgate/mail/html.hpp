// HTML for the ticket message: mail HTML made safe for an agent's browser,
// and plain text made into HTML.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace mailgate::mail {

// Maps an <img src> that points into the message ("cid:…" or "data:…") to
// the placeholder of its uploaded media ("att:media-3"); nullopt drops the
// image.
using InlineImageResolver = std::function<std::optional<std::string>(std::string_view src)>;

// Keeps the content of <body> (or the whole fragment), removing: scripts,
// styles, frames, objects, forms' remote actions, <head>, comments,
// event-handler attributes, javascript:/vbscript: URLs, and everything that
// loads from the network when displayed (remote <img>, background=, srcset,
// CSS url()). Images resolved by `resolve` become exactly
// <img src="att:…"/> as the Messenger API documents.
std::string sanitize_html(std::string_view html, const InlineImageResolver& resolve);

// Plain text → HTML: escaped, paragraphs at blank lines, <br/> at line
// breaks. `flowed` applies RFC 3676 format=flowed (joining soft breaks,
// removing space-stuffing); `delsp` is its DelSp=yes.
std::string text_to_html(std::string_view text, bool flowed = false, bool delsp = false);

// The charset an HTML document declares in <meta>, or "" (first 4 KiB only).
std::string sniff_html_charset(std::string_view html);

}  // namespace mailgate::mail
