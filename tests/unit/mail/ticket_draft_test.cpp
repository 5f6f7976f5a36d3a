// The mail → ticket rules of design.md, one behaviour per test. The corpus
// (tests/corpus) covers whole real-world messages; these pin the rules.
#include "mailgate/mail/ticket_draft.hpp"

#include <gtest/gtest.h>

using namespace mailgate::mail;

namespace {
TicketDraft draft_of(const std::string& raw, const DraftOptions& options = {}) {
  auto r = build_draft(raw, options);
  EXPECT_TRUE(r.draft) << r.error;
  return r.draft ? *r.draft : TicketDraft{};
}
const std::string kHead = "From: \"Doe, Jane\" <Jane@Example.com>\r\nTo: support@example.com\r\nSubject: Help\r\n";
}  // namespace

TEST(TicketDraft, UserTitleAndTextBody) {
  auto d = draft_of(kHead + "\r\nHello <team>\r\n");
  EXPECT_EQ(d.user.name, "Doe, Jane");
  EXPECT_EQ(d.user.address, "Jane@Example.com");
  EXPECT_EQ(d.title, "Help");
  EXPECT_EQ(d.message, "<p>Hello &lt;team&gt;</p>");
  EXPECT_FALSE(d.ignored);
}

TEST(TicketDraft, NameFallsBackToLocalPartAndTitleToNoSubject) {
  auto d = draft_of("From: bob@example.com\r\nSubject:   \r\n\r\nx");
  EXPECT_EQ(d.user.name, "bob");
  EXPECT_EQ(d.title, "(no subject)");
  EXPECT_EQ(draft_of("From: bob@example.com\r\nSubject: a\r\n\tb   c\r\n\r\nx").title, "a b c");
}

TEST(TicketDraft, ReplyToFirstWhenConfigured) {
  std::string raw = "From: list@example.org\r\nReply-To: Real Person <real@example.com>\r\n\r\nx";
  EXPECT_EQ(draft_of(raw).user.address, "list@example.org");
  DraftOptions o;
  o.sender = SenderPreference::ReplyTo;
  EXPECT_EQ(draft_of(raw, o).user.address, "real@example.com");
}

TEST(TicketDraft, HtmlAlternativeIsPreferred) {
  auto d = draft_of(kHead + "Content-Type: multipart/alternative; boundary=a\r\n\r\n"
                    "--a\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
                    "--a\r\nContent-Type: text/html\r\n\r\n<p>rich</p>\r\n--a--\r\n");
  EXPECT_EQ(d.message, "<p>rich</p>");
  EXPECT_TRUE(d.media.empty());
}

TEST(TicketDraft, RelatedImagesBecomeInlineAttachments) {
  auto d = draft_of(kHead + "Content-Type: multipart/related; boundary=r\r\n\r\n"
                    "--r\r\nContent-Type: text/html\r\n\r\n<p>logo: <img src=\"cid:logo@x\"></p>\r\n"
                    "--r\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                    "iVBORw0KGgo=\r\n--r--\r\n");
  EXPECT_EQ(d.message, "<p>logo: <img src=\"att:media-1\"/></p>");
  ASSERT_EQ(d.media.size(), 1u);
  EXPECT_TRUE(d.media[0].inline_image);
  EXPECT_EQ(d.media[0].content_id, "logo@x");
  EXPECT_EQ(d.media[0].name, "image-1.png");
  EXPECT_EQ(d.media[0].bytes, std::string("\x89PNG\r\n\x1a\n"));
}

TEST(TicketDraft, MixedKeepsEveryBodyPartInOrder) {
  // Apple Mail: text, inline image, text.
  auto d = draft_of(kHead + "Content-Type: multipart/mixed; boundary=m\r\n\r\n"
                    "--m\r\nContent-Type: text/plain\r\n\r\nbefore\r\n"
                    "--m\r\nContent-Type: image/jpeg; name=a.jpg\r\nContent-Disposition: inline; filename=a.jpg\r\n\r\nJPG\r\n"
                    "--m\r\nContent-Type: text/plain\r\n\r\nafter\r\n--m--\r\n");
  EXPECT_EQ(d.message, "<p>before</p>\n<p><img src=\"att:media-1\"/></p>\n<p>after</p>");
  ASSERT_EQ(d.media.size(), 1u);
  EXPECT_EQ(d.media[0].name, "a.jpg");
  EXPECT_TRUE(d.media[0].inline_image);
}

TEST(TicketDraft, AttachmentsNamedOrGiven) {
  auto d = draft_of(kHead + "Content-Type: multipart/mixed; boundary=m\r\n\r\n"
                    "--m\r\n\r\nbody\r\n"
                    "--m\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf\r\n\r\nPDF\r\n"
                    "--m\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VCALENDAR\r\n"
                    "--m\r\nContent-Type: application/ms-tnef\r\n\r\nTNEF\r\n"
                    "--m\r\nContent-Type: message/rfc822\r\n\r\nSubject: Fwd: inner / thing\r\n\r\ninner\r\n"
                    "--m\r\nContent-Type: text/plain; name=\"C:\\\\temp\\\\log.txt\"\r\n\r\nlog\r\n--m--\r\n");
  ASSERT_EQ(d.media.size(), 5u);
  EXPECT_EQ(d.media[0].name, "r\u00e9sum\u00e9.pdf");
  EXPECT_EQ(d.media[1].name, "attachment-2.ics");
  EXPECT_EQ(d.media[2].name, "winmail.dat");
  EXPECT_EQ(d.media[3].name, "Fwd: inner - thing.eml");
  EXPECT_EQ(d.media[4].name, "log.txt");
  EXPECT_EQ(d.message, "<p>body</p>");
}

TEST(TicketDraft, OversizedPartsAreSkippedAndNamedInTheMessage) {
  DraftOptions o;
  o.max_media_bytes = 10;
  auto d = draft_of(kHead + "Content-Type: multipart/mixed; boundary=m\r\n\r\n"
                    "--m\r\n\r\nbody\r\n"
                    "--m\r\nContent-Type: application/octet-stream; name=huge.iso\r\n\r\n0123456789ABCDEF\r\n--m--\r\n", o);
  EXPECT_TRUE(d.media.empty());
  ASSERT_EQ(d.skipped.size(), 1u);
  EXPECT_EQ(d.skipped[0].name, "huge.iso");
  EXPECT_NE(d.message.find("huge.iso"), std::string::npos);
}

TEST(TicketDraft, AutoRepliesBouncesAndBulkAreIgnored) {
  auto ignored = [](const std::string& headers) { return draft_of(headers + "\r\nbody").ignored; };
  EXPECT_FALSE(ignored(kHead + "Auto-Submitted: no\r\n"));
  EXPECT_TRUE(ignored(kHead + "Auto-Submitted: auto-replied\r\n"));
  EXPECT_TRUE(ignored(kHead + "Precedence: bulk\r\n"));
  EXPECT_TRUE(ignored(kHead + "X-Autoreply: yes\r\n"));
  EXPECT_TRUE(ignored(kHead + "X-Loop: mailgate\r\n"));
  EXPECT_TRUE(ignored("Return-Path: <>\r\n" + kHead));
  EXPECT_TRUE(ignored("From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\nSubject: x\r\n"));
  EXPECT_TRUE(ignored("To: a@b\r\nSubject: no sender\r\n"));
}

TEST(TicketDraft, MessageIdIsKeptForDeduplication) {
  EXPECT_EQ(draft_of(kHead + "Message-ID: <abc@host>\r\n\r\nx").message_id, "abc@host");
}

TEST(TicketDraft, NotAMailIsAnError) {
  EXPECT_FALSE(build_draft("").draft);
  EXPECT_FALSE(build_draft("\x89PNG\r\n\x1a\n binary").draft);
  EXPECT_FALSE(build_draft("just some text\nwithout headers\n").draft);
}

TEST(TicketDraft, ListRewrittenFromUsesTheOriginalAuthorOfATrustedList) {
  // Google Groups rewrites From for DMARC; the list address must not become
  // the user — but only a trusted list may say who the author is.
  const std::string post = "From: 'Carla Rossi' via Support <support@example.com>\r\n"
                           "List-Id: <support.example.com>\r\n"
                           "X-Original-Sender: carla.rossi@example.it\r\nSubject: s\r\n\r\nx";
  DraftOptions trusted;
  trusted.trusted_lists = {"support.example.com"};
  auto d = draft_of(post, trusted);
  EXPECT_EQ(d.user.address, "carla.rossi@example.it");
  EXPECT_EQ(d.user.name, "Carla Rossi");
  EXPECT_EQ(draft_of(post).user.address, "support@example.com");
}

TEST(TicketDraft, DataUriImagesAreUploadedInline) {
  auto d = draft_of(kHead + "Content-Type: text/html\r\n\r\n<img src=\"data:image/png;base64,iVBORw0KGgo=\">");
  EXPECT_EQ(d.message, "<img src=\"att:media-1\"/>");
  ASSERT_EQ(d.media.size(), 1u);
  EXPECT_EQ(d.media[0].name, "image-1.png");
  EXPECT_TRUE(d.media[0].inline_image);
}

// ---- issue 13: budgets per mail, file names, SVG ----------------------------

namespace {
// A one-pixel PNG: `variant` changes one byte so images differ.
std::string png_data_uri(int variant) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string b64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk";
  b64 += kHex[variant % 16];
  b64 += kHex[(variant / 16) % 16];
  b64 += kHex[(variant / 256) % 16];
  b64 += "AAAAAElFTkSuQmCC";
  return "data:image/png;base64," + b64;
}
std::string html_mail(const std::string& html) {
  return kHead + "Content-Type: text/html; charset=utf-8\r\n\r\n" + html + "\r\n";
}
}  // namespace

TEST(TicketDraftBudgets, DefaultsAreOneHundredUploadsThirtySecondsAndSevenMegabytes) {
  DraftOptions o;
  EXPECT_EQ(o.max_media, 100u);
  EXPECT_EQ(o.max_processing_time, std::chrono::seconds(30));
  // issue 15: the API takes 10 MB requests; base64 grows by 4/3.
  EXPECT_EQ(o.max_media_bytes, 7u * 1024 * 1024);
}

TEST(TicketDraftBudgets, UploadsPastMaxMediaAreSkippedAndNamed) {
  std::string html;
  for (int i = 0; i < 130; ++i) html += "<img src=\"" + png_data_uri(i) + "\">";
  auto d = draft_of(html_mail(html));
  EXPECT_EQ(d.media.size(), 100u);
  // 30 skipped: the ticket names them (one line per skip up to a bound).
  ASSERT_EQ(d.skipped.size(), 30u);
  EXPECT_NE(d.skipped[0].reason.find("mail.max_media"), std::string::npos);
  EXPECT_NE(d.message.find("over the limit of 100 uploads per mail"), std::string::npos);
  std::size_t images = 0;
  for (std::size_t p = d.message.find("<img"); p != std::string::npos; p = d.message.find("<img", p + 1)) ++images;
  EXPECT_EQ(images, 100u);

  DraftOptions three;
  three.max_media = 3;
  EXPECT_EQ(draft_of(html_mail(html), three).media.size(), 3u);
}

TEST(TicketDraftBudgets, ThousandsOfSkipsAreCountedNotListed) {
  std::string html;
  for (int i = 0; i < 2000; ++i) html += "<img src=\"" + png_data_uri(i) + "\">";
  DraftOptions o;
  o.max_media = 10;
  auto d = draft_of(html_mail(html), o);
  EXPECT_EQ(d.media.size(), 10u);
  ASSERT_EQ(d.skipped.size(), kMaxNamedSkips + 1);
  EXPECT_EQ(d.skipped.back().name, "(" + std::to_string(2000 - 10 - kMaxNamedSkips) + " more)");
  EXPECT_LT(d.message.size(), 40'000u);
}

TEST(TicketDraftBudgets, IdenticalInlineDataIsUploadedOnce) {
  std::string html;
  for (int i = 0; i < 20000; ++i) html += "<img src=\"" + png_data_uri(7) + "\">";
  html += "<img src=\"" + png_data_uri(8) + "\">";
  auto d = draft_of(html_mail(html));
  ASSERT_EQ(d.media.size(), 2u);
  EXPECT_TRUE(d.skipped.empty());
  EXPECT_EQ(d.message.find("att:media-3"), std::string::npos);
  EXPECT_NE(d.message.find("<img src=\"att:media-1\"/><img src=\"att:media-1\"/>"), std::string::npos);
}

TEST(TicketDraftBudgets, SvgIsNeverInline) {
  auto d = draft_of(html_mail("<p>x<img src=\"data:image/svg+xml;base64,PHN2Zy8+\"></p>"));
  EXPECT_TRUE(d.media.empty());
  EXPECT_EQ(d.message.find("<img"), std::string::npos);
  ASSERT_EQ(d.skipped.size(), 1u);
  EXPECT_NE(d.skipped[0].reason.find("SVG"), std::string::npos);

  // A cid: SVG is not shown either; it stays an ordinary attachment.
  d = draft_of(kHead + "Content-Type: multipart/related; boundary=r\r\n\r\n"
               "--r\r\nContent-Type: text/html\r\n\r\n<p>logo: <img src=\"cid:logo@x\"></p>\r\n"
               "--r\r\nContent-Type: image/svg+xml; name=logo.svg\r\nContent-ID: <logo@x>\r\n\r\n<svg/>\r\n--r--\r\n");
  EXPECT_EQ(d.message, "<p>logo: </p>");
  ASSERT_EQ(d.media.size(), 1u);
  EXPECT_FALSE(d.media[0].inline_image);
  EXPECT_EQ(d.media[0].name, "logo.svg");

  // Nor an SVG part marked inline in multipart/mixed.
  d = draft_of(kHead + "Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\nt\r\n"
               "--m\r\nContent-Type: image/svg+xml; name=a.svg\r\nContent-Disposition: inline\r\n\r\n<svg/>\r\n--m--\r\n");
  EXPECT_EQ(d.message, "<p>t</p>");
  ASSERT_EQ(d.media.size(), 1u);
  EXPECT_FALSE(d.media[0].inline_image);
}

TEST(TicketDraftBudgets, OverTheTimeBudgetIsAFailureWithThatReason) {
  std::string html;
  for (int i = 0; i < 20000; ++i) html += "<div>";
  DraftOptions o;
  o.max_processing_time = std::chrono::milliseconds(0);
  auto r = build_draft(html_mail(html), o);
  EXPECT_FALSE(r.draft);
  EXPECT_EQ(r.failure, DraftFailure::OverBudget);
  EXPECT_NE(r.error.find("mail.max_processing_time"), std::string::npos) << r.error;

  o.max_processing_time = std::chrono::seconds(30);
  o.cancel = std::make_shared<std::atomic<bool>>(true);
  r = build_draft(html_mail(html), o);
  EXPECT_FALSE(r.draft);
  EXPECT_EQ(r.failure, DraftFailure::Cancelled);

  EXPECT_EQ(build_draft("just some text\nwithout headers\n").failure, DraftFailure::NotMail);
}

TEST(TicketDraftFileNames, BidiControlsGoAndLookAlikeSlashesBecomeUnderscores) {
  auto name_of = [](const std::string& filename) {
    auto d = draft_of(kHead + "Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\n\r\nbody\r\n"
                      "--m\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; "
                      "filename*=utf-8''" + filename + "\r\n\r\nDATA\r\n--m--\r\n");
    return d.media.empty() ? std::string("(none)") : d.media[0].name;
  };
  EXPECT_EQ(name_of("invoice%E2%80%AEfdp.exe"), "invoicefdp.exe");                  // U+202E RLO
  EXPECT_EQ(name_of("a%E2%81%A6b%E2%81%A9%E2%80%8F.txt"), "ab.txt");                // LRI, PDI, RLM
  EXPECT_EQ(name_of("etc%E2%88%95passwd"), "etc_passwd");                           // U+2215
  EXPECT_EQ(name_of("a%EF%BC%8Fb%E2%81%84c%EF%BC%BCd.pdf"), "a_b_c_d.pdf");         // U+FF0F, U+2044, U+FF3C
  EXPECT_EQ(name_of("r%C3%A9sum%C3%A9.pdf"), "r\u00e9sum\u00e9.pdf");             // ordinary UTF-8 stays
}
