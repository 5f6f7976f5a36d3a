// strip_quoted_html (a reply shows what is new, design.md "Threading") and
// the draft's reply fields: References, reply_message. The replies corpus
// (tests/corpus/replies) runs whole client-shaped mails through
// build_draft and compares reply_message with NAME.reply.html.
#include "mailgate/mail/quote_strip.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "mailgate/mail/html.hpp"
#include "mailgate/mail/ticket_draft.hpp"

using namespace mailgate::mail;
namespace fs = std::filesystem;

namespace {

// As the draft does it: the mail's HTML is sanitised first, then stripped.
std::string strip_html(std::string_view mail_html) {
  auto resolve = [](std::string_view src) -> std::optional<std::string> {
    if (src.rfind("cid:", 0) == 0) return "att:media-1";
    return std::nullopt;
  };
  return strip_quoted_html(sanitize_html(mail_html, resolve));
}
std::string strip_text(std::string_view text) { return strip_quoted_html(text_to_html(text)); }

}  // namespace

// ---- nothing to strip ---------------------------------------------------------

TEST(QuoteStrip, NoQuoteIsUnchanged) {
  const std::string html = "<div dir=\"ltr\">Hello,<div><br/></div><div>the printer is <b>broken</b>.</div></div>";
  EXPECT_EQ(strip_quoted_html(html), html);
  const std::string text = text_to_html("Hello\n\nIt says: > 3 pages\nThanks");
  EXPECT_EQ(strip_quoted_html(text), text);
  EXPECT_EQ(strip_quoted_html(""), "");
}

TEST(QuoteStrip, OnlyQuotedHistoryKeepsTheWholeText) {
  const std::string gmail =
      "<div class=\"gmail_quote\"><div dir=\"ltr\" class=\"gmail_attr\">On Mon, 1 Dec 2026 at 10:00, Support "
      "&lt;support@example.com&gt; wrote:<br/></div><blockquote class=\"gmail_quote\">Your ticket #42</blockquote></div>";
  EXPECT_EQ(strip_quoted_html(gmail), gmail);
  const std::string text = text_to_html("On Mon, 1 Dec 2026 at 10:00, Support wrote:\n> Your ticket #42\n");
  EXPECT_EQ(strip_quoted_html(text), text);
}

TEST(QuoteStrip, QuoteFollowedByNewTextIsKept) {
  // An inline reply: the quote gives the answer after it its meaning.
  const std::string html =
      "<div>Answers below.</div><blockquote type=\"cite\">Which model?</blockquote><div>An LX-200.</div>";
  EXPECT_EQ(strip_quoted_html(html), html);
}

// ---- what is removed ---------------------------------------------------------

TEST(QuoteStrip, GmailQuoteAndEverythingAfterItGo) {
  EXPECT_EQ(strip_html("<div dir=\"ltr\">Thanks, it works now.</div><br><div class=\"gmail_quote gmail_quote_container\">"
                       "<div dir=\"ltr\" class=\"gmail_attr\">On Mon, Dec 1, 2026 at 10:00\u202fAM Support &lt;<a "
                       "href=\"mailto:support@example.com\">support@example.com</a>&gt; wrote:<br></div>"
                       "<blockquote class=\"gmail_quote\" style=\"margin:0px 0px 0px 0.8ex\">Please restart it."
                       "</blockquote></div>"),
            "<div dir=\"ltr\">Thanks, it works now.</div>");
}

TEST(QuoteStrip, InlineReplyKeepsQuotesWithNewTextAfterThemAndDropsTheTrailingOne) {
  EXPECT_EQ(strip_html("<div class=\"moz-cite-prefix\">On 01/12/2026 10:00, Support wrote:<br></div>"
                       "<blockquote type=\"cite\">Which model?</blockquote>LX-200<br>"
                       "<blockquote type=\"cite\">Which firmware?</blockquote>2.1<br>"
                       "<blockquote type=\"cite\">Regards, Support</blockquote><br>"),
            "<div class=\"moz-cite-prefix\">On 01/12/2026 10:00, Support wrote:<br/></div>"
            "<blockquote type=\"cite\">Which model?</blockquote>LX-200<br/>"
            "<blockquote type=\"cite\">Which firmware?</blockquote>2.1");
}

TEST(QuoteStrip, NestedQuotesGoAsOne) {
  EXPECT_EQ(strip_html("<p>Still broken.</p><blockquote type=\"cite\"><div>On Dec 1, 2026, at 10:00, Support wrote:"
                       "</div><div>Try again.</div><blockquote type=\"cite\"><div>It is broken.</div></blockquote>"
                       "</blockquote>"),
            "<p>Still broken.</p>");
  // Inside a kept quote, a nested quote with text after it is kept as well.
  const std::string kept = "<blockquote type=\"cite\"><blockquote type=\"cite\">a</blockquote>b</blockquote>c";
  EXPECT_EQ(strip_quoted_html(kept), kept);
}

TEST(QuoteStrip, CutInsideAnElementClosesWhatIsOpen) {
  EXPECT_EQ(strip_html("<div><table><tr><td><p>New <b>text</b><br>On Mon, X wrote:<br>&gt; old</p></td></tr></table>"
                       "<blockquote type=\"cite\">older</blockquote></div>"),
            "<div><table><tbody><tr><td><p>New <b>text</b></p></td></tr></tbody></table></div>");
}

TEST(QuoteStrip, PlainTextQuoteRunWithItsAttribution) {
  EXPECT_EQ(strip_text("Thanks!\n\nOn Mon, 1 Dec 2026 at 10:00, Support <support@example.com> wrote:\n\n> Hello\n"
                       ">> older\n> bye\n"),
            "<p>Thanks!</p>");
  // Gmail wraps a long attribution over two lines.
  EXPECT_EQ(strip_text("Thanks!\n\nOn Mon, Dec 1, 2026 at 10:00 AM Support Team at Example Corporation <\n"
                       "support@example.com> wrote:\n\n> Hello\n"),
            "<p>Thanks!</p>");
  // A '>' line with new text after it is an inline reply.
  const std::string inline_reply = text_to_html("> Which model?\nLX-200\n> Firmware?\n2.1\n");
  EXPECT_EQ(strip_quoted_html(inline_reply), inline_reply);
}

struct Attribution {
  const char* language;
  const char* line;
};
class QuoteStripAttribution : public ::testing::TestWithParam<Attribution> {};

TEST_P(QuoteStripAttribution, IsRemovedWithTheQuote) {
  EXPECT_EQ(strip_text(std::string("New text.\n\n") + GetParam().line + "\n> old text\n"), "<p>New text.</p>");
  EXPECT_EQ(strip_html(std::string("<div>New text.</div><div class=\"x\">") + GetParam().line +
                       "<br></div><blockquote type=\"cite\">old text</blockquote>"),
            "<div>New text.</div>");
}

INSTANTIATE_TEST_SUITE_P(
    Languages, QuoteStripAttribution,
    ::testing::Values(
        Attribution{"en", "On Mon, 1 Dec 2026 at 10:00, Support <support@example.com> wrote:"},
        Attribution{"en_apple", "On 1 Dec 2026, at 10:00, Support <support@example.com> wrote:"},
        Attribution{"es", "El lun, 1 dic 2026 a las 10:00, Support (<support@example.com>) escribió:"},
        Attribution{"fr", "Le lun. 1 déc. 2026 à 10:00, Support <support@example.com> a écrit\u00a0:"},
        Attribution{"de", "Am Mo., 1. Dez. 2026 um 10:00 Uhr schrieb Support <support@example.com>:"},
        Attribution{"pt", "Em seg., 1 de dez. de 2026 às 10:00, Support <support@example.com> escreveu:"},
        Attribution{"it", "Il giorno lun 1 dic 2026 alle ore 10:00 Support <support@example.com> ha scritto:"},
        Attribution{"ca", "El dl., 1 de des. 2026, a les 10:00, Support (<support@example.com>) va escriure:"},
        Attribution{"short", "Support <support@example.com> wrote:"}),
    [](const auto& info) { return std::string(info.param.language); });

TEST(QuoteStrip, NewTextThatOnlyLooksLikeAnAttributionStays) {
  // Not "On … wrote:" as a whole line: the line before it is new text.
  EXPECT_EQ(strip_text("Thanks.\nThis is what I wrote:\n> old\n"), "<p>Thanks.</p>");
  EXPECT_EQ(strip_text("On second thought, never mind.\n> old\n"), "<p>On second thought, never mind.</p>");
}

struct OutlookHeader {
  const char* language;
  const char* from;
  const char* sent;
};
class QuoteStripOutlook : public ::testing::TestWithParam<OutlookHeader> {};

TEST_P(QuoteStripOutlook, HeaderBlockAndEverythingAfterItGo) {
  const OutlookHeader& h = GetParam();
  std::string desktop = std::string("<div class=\"WordSection1\"><p class=\"MsoNormal\">New text.</p>"
                                    "<p class=\"MsoNormal\">&nbsp;</p><div><div style=\"border:none;border-top:solid "
                                    "#E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm\"><p class=\"MsoNormal\"><b>") +
                        h.from + "</b> Support &lt;support@example.com&gt;<br><b>" + h.sent +
                        "</b> Monday, 1 December 2026 10:00<br><b>To:</b> Jane<br><b>Subject:</b> Ticket</p></div>"
                        "</div><p class=\"MsoNormal\">Old text.</p></div>";
  EXPECT_EQ(strip_html(desktop), "<div class=\"WordSection1\"><p class=\"MsoNormal\">New text.</p></div>");
  std::string text = std::string("New text.\n\n________________________________\n") + h.from +
                     " Support <support@example.com>\n" + h.sent + " Monday, 1 December 2026 10:00\nOld text.\n";
  EXPECT_EQ(strip_text(text), "<p>New text.</p>");
}

INSTANTIATE_TEST_SUITE_P(Languages, QuoteStripOutlook,
                         ::testing::Values(OutlookHeader{"en", "From:", "Sent:"},
                                           OutlookHeader{"es", "De:", "Enviado el:"},
                                           OutlookHeader{"fr", "De\u00a0:", "Envoyé\u00a0:"},
                                           OutlookHeader{"de", "Von:", "Gesendet:"},
                                           OutlookHeader{"pt", "De:", "Enviado:"},
                                           OutlookHeader{"it", "Da:", "Inviato:"},
                                           OutlookHeader{"ca", "De:", "Enviat:"}),
                         [](const auto& info) { return std::string(info.param.language); });

TEST(QuoteStrip, OriginalMessageSeparator) {
  EXPECT_EQ(strip_text("Done.\n\n-----Original Message-----\nFrom: Support\nDate: Monday\n\nOld\n"), "<p>Done.</p>");
  EXPECT_EQ(strip_text("Hecho.\n\n-----Mensaje original-----\nOld\n"), "<p>Hecho.</p>");
}

TEST(QuoteStrip, ForwardedMessageIsNotHistory) {
  const std::string gmail_forward =
      "<div dir=\"ltr\">See below.</div><div class=\"gmail_quote\"><div dir=\"ltr\" class=\"gmail_attr\">"
      "---------- Forwarded message ---------<br/>From: <b>Bank</b><br/>Date: Mon, 1 Dec 2026<br/></div>"
      "<div>Your card was blocked.</div></div>";
  EXPECT_EQ(strip_quoted_html(gmail_forward), gmail_forward);
  // Apple Mail forwards inside blockquote type="cite".
  const std::string apple_forward =
      "<div>See below.</div><div><br/><blockquote type=\"cite\"><div>Begin forwarded message:</div><br/>"
      "<div><b>From: </b>Bank</div><div><b>Subject: </b>Card</div><div><b>Date: </b>1 December 2026</div><br/>"
      "<div>Your card was blocked.</div></blockquote></div>";
  EXPECT_EQ(strip_quoted_html(apple_forward), apple_forward);
  const std::string text = text_to_html("See below.\n\n---------- Forwarded message ---------\nFrom: Bank\n"
                                        "Date: Mon, 1 Dec 2026\n\nYour card was blocked.\n");
  EXPECT_EQ(strip_quoted_html(text), text);
}

TEST(QuoteStrip, ImagesCountAsNewContent) {
  // A reply that is only a screenshot keeps it and loses the quote.
  EXPECT_EQ(strip_html("<div><img src=\"cid:shot\"></div><br><blockquote type=\"cite\">old</blockquote>"),
            "<div><img src=\"att:media-1\"/></div>");
  // An image inside the quote is history like its text.
  EXPECT_EQ(strip_html("<p>New</p><blockquote type=\"cite\"><img src=\"cid:logo\"></blockquote>"), "<p>New</p>");
}

TEST(QuoteStrip, HugeInputIsHandledInOnePass) {
  // 2 MB of alternating quotes and answers (all kept: each has an answer
  // after it), then a trailing quote; and 50 000 nested blockquotes, which
  // the sanitiser bounds before the stripper sees them.
  std::string html;
  while (html.size() < 2 * 1024 * 1024) html += "<blockquote type=\"cite\">q</blockquote><p>a</p>";
  const std::string sanitized = sanitize_html(html, nullptr);
  std::string stripped = strip_quoted_html(sanitized + "<blockquote type=\"cite\">last</blockquote>");
  EXPECT_EQ(stripped, sanitized);

  std::string deep;
  for (int i = 0; i < 50'000; ++i) deep += "<blockquote type=\"cite\">";
  EXPECT_EQ(strip_html("<p>new</p>" + deep + "old"), "<p>new</p>");

  std::string lines = "New\n\nOn Mon, X wrote:\n";
  for (int i = 0; i < 100'000; ++i) lines += "> quoted line\n";
  EXPECT_EQ(strip_text(lines), "<p>New</p>");
}

TEST(QuoteStrip, BudgetStopsTheParse) {
  std::string html = "<p>new</p>";
  for (int i = 0; i < 20'000; ++i) html += "<blockquote type=\"cite\"><p>old</p></blockquote>";
  HtmlBudget past;
  past.deadline = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  SanitizedHtml late = strip_quoted_html(html, past);
  EXPECT_EQ(late.failure, HtmlFailure::OverTime);
  EXPECT_EQ(late.html, "");
  EXPECT_NE(late.error, "");

  std::atomic<bool> stop{true};
  HtmlBudget cancelled;
  cancelled.cancel = &stop;
  EXPECT_EQ(strip_quoted_html(html, cancelled).failure, HtmlFailure::Cancelled);

  HtmlBudget small;
  small.max_parser_memory = 64 * 1024;
  EXPECT_EQ(strip_quoted_html(html, small).failure, HtmlFailure::OverMemory);

  SanitizedHtml in_budget = strip_quoted_html(html, HtmlBudget{});
  EXPECT_EQ(in_budget.failure, HtmlFailure::None);
  EXPECT_EQ(in_budget.html, "<p>new</p>");
}

// ---- the draft ---------------------------------------------------------------

namespace {
TicketDraft draft_of(const std::string& raw, const DraftOptions& options = {}) {
  auto r = build_draft(raw, options);
  EXPECT_TRUE(r.draft) << r.error;
  return r.draft ? *r.draft : TicketDraft{};
}
const std::string kReply =
    "From: Jane <jane@example.com>\r\nTo: support@example.com\r\nSubject: Re: Help [#42]\r\n"
    "In-Reply-To: <b@example.com>\r\nReferences: <root@example.com>\r\n <a@example.com>\t<b@\r\n example.com>\r\n\r\n"
    "Thanks!\r\n\r\nOn Mon, 1 Dec 2026, Support wrote:\r\n> Restart it.\r\n";
}  // namespace

TEST(DraftReply, ReferencesInHeaderOrderWithoutBrackets) {
  auto d = draft_of(kReply);
  EXPECT_EQ(d.in_reply_to, "b@example.com");
  EXPECT_EQ(d.references, (std::vector<std::string>{"root@example.com", "a@example.com", "b@example.com"}));
  EXPECT_TRUE(draft_of("From: a@b.c\r\n\r\nx").references.empty());
  // Bare ids separated by spaces (no brackets at all).
  EXPECT_EQ(draft_of("From: a@b.c\r\nReferences: x@y z@w junk\r\n\r\nx").references,
            (std::vector<std::string>{"x@y", "z@w"}));
}

TEST(DraftReply, ReferencesAreBoundedKeepingTheRootAndTheNewest) {
  std::string refs;
  for (int i = 0; i < 1000; ++i) refs += "<id" + std::to_string(i) + "@example.com> ";
  auto d = draft_of("From: a@b.c\r\nReferences: " + refs + "\r\n\r\nx");
  ASSERT_EQ(d.references.size(), kMaxReferences);
  EXPECT_EQ(d.references.front(), "id0@example.com");
  EXPECT_EQ(d.references[1], "id901@example.com");
  EXPECT_EQ(d.references.back(), "id999@example.com");
}

TEST(DraftReply, ReplyMessageIsStrippedTicketMessageIsWhole) {
  auto d = draft_of(kReply);
  EXPECT_EQ(d.reply_message, "<p>Thanks!</p>");
  EXPECT_EQ(d.message, "<p>Thanks!</p>\n<p>On Mon, 1 Dec 2026, Support wrote:<br/>\n&gt; Restart it.</p>");
  DraftOptions keep;
  keep.strip_quoted = false;
  auto whole = draft_of(kReply, keep);
  EXPECT_EQ(whole.reply_message, whole.message);
}

TEST(DraftReply, ReplyMessageCarriesTheSkippedNote) {
  DraftOptions o;
  o.max_media = 0;
  auto d = draft_of(
      "From: a@b.c\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
      "New\r\n> old\r\n--b\r\nContent-Type: application/pdf; name=x.pdf\r\n\r\n%PDF\r\n--b--\r\n",
      o);
  EXPECT_EQ(d.reply_message, "<p>New</p>\n<p><em>Not imported by mailgate:</em></p>\n<ul><li>x.pdf: over the limit of 0 "
                             "uploads per mail (mail.max_media)</li></ul>");
}

// ---- the replies corpus --------------------------------------------------------

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const fs::path kRepliesDir = fs::path(MAILGATE_SOURCE_DIR) / "tests/corpus/replies";

std::vector<std::string> reply_corpus() {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(kRepliesDir))
    if (entry.path().extension() == ".eml") names.push_back(entry.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

class RepliesCorpus : public ::testing::TestWithParam<std::string> {};

// NAME.reply.html is exactly the draft's reply_message (with a final
// newline, for diffs). After an intended change:
//   MAILGATE_UPDATE_GOLDEN=1 build/bin/mailgate_unit_tests --gtest_filter='Corpus/RepliesCorpus.*'
// rewrites them (and fails that run, as the preview goldens do).
TEST_P(RepliesCorpus, ReplyMessageMatchesGolden) {
  const fs::path eml = kRepliesDir / (GetParam() + ".eml");
  const fs::path golden = kRepliesDir / (GetParam() + ".reply.html");
  auto r = build_draft(read_file(eml));
  ASSERT_TRUE(r.draft) << r.error;
  const std::string actual = r.draft->reply_message + "\n";
  if (std::getenv("MAILGATE_UPDATE_GOLDEN") && (!fs::exists(golden) || read_file(golden) != actual)) {
    std::ofstream(golden, std::ios::binary) << actual;
    FAIL() << "golden file rewritten: " << golden << "; review its diff, then run again without MAILGATE_UPDATE_GOLDEN";
  }
  ASSERT_TRUE(fs::exists(golden)) << "no golden file " << golden << "; create it with MAILGATE_UPDATE_GOLDEN=1";
  EXPECT_EQ(actual, read_file(golden)) << "reply_message of " << eml.filename() << " differs from its golden";
  // Stripping never adds text: the reply is at most the whole message.
  EXPECT_LE(r.draft->reply_message.size(), r.draft->message.size());
}

TEST(DraftReply, ImagesOfTheStrippedQuoteAreStillUploaded) {
  auto r = build_draft(read_file(kRepliesDir / "outlook-365-divrplyfwdmsg-en.eml"));
  ASSERT_TRUE(r.draft) << r.error;
  ASSERT_EQ(r.draft->media.size(), 2u);
  EXPECT_EQ(r.draft->media[1].name, "logo.png");  // shown only in the quoted part
  EXPECT_TRUE(r.draft->media[1].inline_image);
  EXPECT_NE(r.draft->message.find("att:media-2"), std::string::npos);
  EXPECT_EQ(r.draft->reply_message.find("att:media-2"), std::string::npos);
  EXPECT_NE(r.draft->reply_message.find("att:media-1"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Corpus, RepliesCorpus, ::testing::ValuesIn(reply_corpus()), [](const auto& info) {
  std::string name = info.param;
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return name;
});
