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

TEST(TicketDraft, ListRewrittenFromUsesTheOriginalAuthor) {
  // Google Groups rewrites From for DMARC; the list address must not become the user.
  auto d = draft_of("From: 'Carla Rossi' via Support <support@example.com>\r\n"
                    "X-Original-Sender: carla.rossi@example.it\r\nSubject: s\r\n\r\nx");
  EXPECT_EQ(d.user.address, "carla.rossi@example.it");
  EXPECT_EQ(d.user.name, "Carla Rossi");
}

TEST(TicketDraft, DataUriImagesAreUploadedInline) {
  auto d = draft_of(kHead + "Content-Type: text/html\r\n\r\n<img src=\"data:image/png;base64,iVBORw0KGgo=\">");
  EXPECT_EQ(d.message, "<img src=\"att:media-1\"/>");
  ASSERT_EQ(d.media.size(), 1u);
  EXPECT_EQ(d.media[0].name, "image-1.png");
  EXPECT_TRUE(d.media[0].inline_image);
}
