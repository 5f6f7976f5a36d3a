// Structure parsing under malformed input and past every limit.
#include "mailgate/mail/mime_parser.hpp"

#include <gtest/gtest.h>

using namespace mailgate::mail;

TEST(MimeParser, HeadersFoldingAndBody) {
  std::string raw = "Subject: one\r\n two\r\nX-Empty:\r\nFrom: a@b\r\n\r\nbody\r\n";
  auto m = parse_mime(raw);
  EXPECT_EQ(m.root.header("subject"), "one\r\n two");
  EXPECT_TRUE(m.root.find("X-Empty"));
  EXPECT_EQ(m.root.content_type.value, "text/plain");
  EXPECT_EQ(m.root.body, "body\r\n");
}

TEST(MimeParser, BareLineFeeds) {
  std::string raw = "From: a@b\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\none\n--b\n\ntwo\n--b--\n";
  auto m = parse_mime(raw);
  ASSERT_EQ(m.root.children.size(), 2u);
  EXPECT_EQ(m.root.children[0].body, "one");
  EXPECT_EQ(m.root.children[1].body, "two");
}

TEST(MimeParser, MissingInnerClosingBoundaryLosesNothing) {
  std::string raw =
      "From: a@b\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
      "--outer\r\nContent-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n"
      "--inner\r\nContent-Type: text/plain\r\n\r\ntext\r\n"
      "--outer\r\nContent-Type: application/pdf\r\n\r\nPDF\r\n--outer--\r\n";
  auto m = parse_mime(raw);
  ASSERT_EQ(m.root.children.size(), 2u);
  ASSERT_EQ(m.root.children[0].children.size(), 1u);
  EXPECT_EQ(m.root.children[0].children[0].body, "text");
  EXPECT_EQ(m.root.children[1].content_type.value, "application/pdf");
  EXPECT_EQ(m.root.children[1].body, "PDF");
}

TEST(MimeParser, MissingOuterClosingBoundaryEndsAtEof) {
  std::string raw = "From: a@b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nonly part\r\n";
  auto m = parse_mime(raw);
  ASSERT_EQ(m.root.children.size(), 1u);
  EXPECT_EQ(m.root.children[0].body, "only part\r\n");
}

TEST(MimeParser, BoundaryMustStartALineAndMatchWhole) {
  std::string raw =
      "From: a@b\r\nContent-Type: multipart/mixed; boundary=abc\r\n\r\n--abc\r\n\r\nx --abc inside\r\n"
      "--abcdef is another boundary\r\n--abc--\r\n";
  auto m = parse_mime(raw);
  ASSERT_EQ(m.root.children.size(), 1u);
  EXPECT_EQ(m.root.children[0].body, "x --abc inside\r\n--abcdef is another boundary");
}

TEST(MimeParser, MultipartWithoutBoundaryIsKeptAsText) {
  auto m = parse_mime("From: a@b\r\nContent-Type: multipart/mixed\r\n\r\nhello\r\n");
  EXPECT_EQ(m.root.content_type.value, "text/plain");
  EXPECT_EQ(m.root.body, "hello\r\n");
  auto n = parse_mime("From: a@b\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\nno delimiter here\r\n");
  EXPECT_EQ(n.root.content_type.value, "text/plain");
}

TEST(MimeParser, InvalidContentTypeMeansTextPlain) {
  EXPECT_EQ(parse_mime("Content-Type: garbage\r\n\r\nx").root.content_type.value, "text/plain");
  EXPECT_EQ(parse_mime("Content-Type: image/\r\n\r\nx").root.content_type.value, "text/plain");
}

TEST(MimeParser, NestingDepthIsBounded) {
  std::string raw = "From: a@b\r\n";
  const int levels = 5000;
  for (int i = 0; i < levels; ++i)
    raw += "Content-Type: multipart/mixed; boundary=\"b" + std::to_string(i) + "\"\r\n\r\n--b" + std::to_string(i) + "\r\n";
  raw += "Content-Type: text/plain\r\n\r\ndeep\r\n";
  MimeLimits limits;
  limits.max_depth = 10;
  auto m = parse_mime(raw, limits);
  const MimePart* p = &m.root;
  int depth = 0;
  while (!p->children.empty()) {
    p = &p->children[0];
    ++depth;
  }
  EXPECT_EQ(depth, 10);
  ASSERT_EQ(m.truncations.size(), 1u);
  EXPECT_NE(m.truncations[0].find("nesting deeper than 10"), std::string::npos);
}

TEST(MimeParser, PartCountIsBounded) {
  std::string raw = "From: a@b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n";
  for (int i = 0; i < 100; ++i) raw += "--b\r\n\r\npart\r\n";
  raw += "--b--\r\n";
  MimeLimits limits;
  limits.max_parts = 20;
  auto m = parse_mime(raw, limits);
  EXPECT_EQ(m.root.children.size(), 19u);  // the root counts as one
  ASSERT_EQ(m.truncations.size(), 1u);
  EXPECT_NE(m.truncations[0].find("more than 20 MIME parts"), std::string::npos);
}

TEST(MimeParser, HeaderBlockIsBounded) {
  std::string raw = "From: a@b\r\n";
  for (int i = 0; i < 50; ++i) raw += "X-Filler-" + std::to_string(i) + ": " + std::string(100, 'x') + "\r\n";
  raw += "\r\nbody";
  MimeLimits limits;
  limits.max_header_fields = 10;
  auto m = parse_mime(raw, limits);
  EXPECT_EQ(m.root.headers.size(), 10u);
  EXPECT_EQ(m.root.body, "body");
  EXPECT_EQ(m.truncations.size(), 1u);
}

TEST(MimeParser, HeaderWithoutBlankLineEndsAtFirstNonHeaderLine) {
  auto m = parse_mime("From: a@b\r\nSubject: s\r\nthis is body text\r\nmore\r\n");
  EXPECT_EQ(m.root.headers.size(), 2u);
  EXPECT_EQ(m.root.body, "this is body text\r\nmore\r\n");
}

TEST(MimeParser, MboxFromLineIsSkipped) {
  auto m = parse_mime("From sender@example.com Mon Jan  1 00:00:00 2024\nFrom: a@b\n\nx");
  EXPECT_EQ(m.root.header("From"), "a@b");
}

TEST(MimeParser, DigestChildrenDefaultToMessage) {
  auto m = parse_mime("From: a@b\r\nContent-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nFrom: x@y\r\n\r\nhi\r\n--d--\r\n");
  ASSERT_EQ(m.root.children.size(), 1u);
  EXPECT_EQ(m.root.children[0].content_type.value, "message/rfc822");
}

TEST(MimeParser, OverlongHeaderLinesAreCut) {
  MimeLimits limits;
  limits.max_field_bytes = 100;
  std::string raw = "From: a@b\r\nSubject: " + std::string(10 * 1024 * 1024, 'x') + "\r\nX-Folded: a\r\n " +
                    std::string(200, 'y') + "\r\n\r\nbody";
  auto m = parse_mime(raw, limits);
  EXPECT_EQ(m.root.header("Subject").size(), 100u);
  EXPECT_EQ(m.root.header("X-Folded"), "a");
  EXPECT_EQ(m.root.body, "body");
  ASSERT_EQ(m.truncations.size(), 1u);
  EXPECT_NE(m.truncations[0].find("longer than 100 bytes"), std::string::npos);
}
