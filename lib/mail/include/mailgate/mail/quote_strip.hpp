// A reply as a ticket reply should show it (design.md "Threading",
// strip_quoted): what the customer wrote, without the quoted history their
// mail client appended under it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "mailgate/mail/html.hpp"

namespace mailgate::mail {

// Text runs (and images) the stripper looks at in one message; past this
// the message is returned unchanged rather than judged on a part of it.
inline constexpr std::size_t kMaxQuoteStripItems = 1'000'000;

// Removes the trailing quoted history from ticket HTML: the output of
// sanitize_html or text_to_html (or pieces of them joined), never raw mail
// HTML — the result is a prefix of `html` plus the end tags it needs, so it
// is as safe as its input. Quoted history is Gmail's div.gmail_quote,
// Apple Mail / Thunderbird blockquote type="cite" and div.moz-cite-prefix,
// Outlook's "From: … Sent: …" header block (any of its languages) or
// "-----Original Message-----" and everything after it, and plain-text
// lines starting with '>', each with the attribution line before it ("On …
// wrote:", "El … escribió:", "Le … a écrit :", "Am … schrieb …:", "Em …
// escreveu:", "Il … ha scritto:", "El … va escriure:"). A quote followed by
// new text (an inline reply) is kept; a forwarded message is not a quote.
// If nothing visible (no text, no image) would be left, or there is no
// trailing quote, `html` is returned unchanged. Linear in the input; the
// parse has no deadline and the sanitiser's memory bound, over which the
// input is returned unchanged.
std::string strip_quoted_html(std::string_view html);

// As above within `budget` (the draft's deadline, cancel flag and parser
// memory): over it, `failure` says why and `html` is "".
SanitizedHtml strip_quoted_html(std::string_view html, const HtmlBudget& budget);

}  // namespace mailgate::mail
