// What reaches an agent's browser: no scripts, no remote loads, inline
// images as the API's att: form.
#include "mailgate/mail/html.hpp"

#include <gtest/gtest.h>

using namespace mailgate::mail;

namespace {
std::string clean(std::string_view html) {
  return sanitize_html(html, [](std::string_view src) -> std::optional<std::string> {
    if (src == "cid:logo@x") return "att:media-1";
    return std::nullopt;
  });
}
}  // namespace

TEST(SanitizeHtml, KeepsOrdinaryMarkup) {
  EXPECT_EQ(clean("<p>Hello <b>world</b> &amp; <a href=\"https://example.com/x?a=1\">link</a></p>"),
            "<p>Hello <b>world</b> &amp; <a href=\"https://example.com/x?a=1\">link</a></p>");
}

TEST(SanitizeHtml, TakesTheBodyOfAFullDocument) {
  EXPECT_EQ(clean("<!DOCTYPE html><html><head><title>t</title><style>p{color:red}</style></head>"
                  "<body bgcolor=white><p>Hi</p></body></html>"),
            "<p>Hi</p>");
  // An unclosed <head> ends where <body> begins.
  EXPECT_EQ(clean("<html><head><meta charset=utf-8><body><p>Hi</p>"), "<p>Hi</p>");
}

TEST(SanitizeHtml, RemovesScriptsAndEventHandlers) {
  EXPECT_EQ(clean("<p onclick=\"steal()\" class=x>a</p><script>alert(1)</script><SCRIPT src=x></SCRIPT>b"),
            "<p class=\"x\">a</p>b");
  EXPECT_EQ(clean("<a href=\"javascript:alert(1)\">x</a>"), "<a>x</a>");
  EXPECT_EQ(clean("<a href=\" JaVa\tScript:alert(1)\">x</a>"), "<a>x</a>");
  EXPECT_EQ(clean("<a href=\"&#106;avascript:alert(1)\">x</a>"), "<a>x</a>");
  EXPECT_EQ(clean("<svg><script>x</script></svg>ok"), "ok");
  EXPECT_EQ(clean("<iframe src=\"https://evil\"></iframe>ok"), "ok");
  EXPECT_EQ(clean("<object data=x><embed src=y></object>ok"), "ok");
}

TEST(SanitizeHtml, RemovesRemoteLoads) {
  EXPECT_EQ(clean("<img src=\"https://tracker.example/p.gif\" width=1>text"), "text");
  EXPECT_EQ(clean("<td background=\"http://x/bg.png\">c</td>"), "<td>c</td>");
  EXPECT_EQ(clean("<div style=\"background:url(http://x/y)\">c</div>"), "<div>c</div>");
  EXPECT_EQ(clean("<div style=\"color: red\">c</div>"), "<div style=\"color: red\">c</div>");
  EXPECT_EQ(clean("<link rel=stylesheet href=http://x/s.css>c"), "c");
}

TEST(SanitizeHtml, InlineImagesBecomeTheApiForm) {
  EXPECT_EQ(clean("<p>See <img src=\"cid:logo@x\" alt=\"Logo\" width=\"20\"></p>"),
            "<p>See <img src=\"att:media-1\"/></p>");
  EXPECT_EQ(clean("<img src='cid:missing@x'>gone"), "gone");
  EXPECT_EQ(clean("<img src=\"att:forged\">x"), "x");
}

TEST(SanitizeHtml, CommentsAndOutlookConditionalsGo) {
  EXPECT_EQ(clean("a<!--[if gte mso 9]><xml><o:OfficeDocumentSettings/></xml><![endif]-->b<!-- c -->d"), "abd");
  EXPECT_EQ(clean("a<!-- never closed"), "a");
}

TEST(SanitizeHtml, ToleratesBrokenMarkup) {
  EXPECT_EQ(clean("a < b and c > d"), "a &lt; b and c > d");
  EXPECT_EQ(clean("<p title=\"x>y\">z</p>"), "<p title=\"x>y\">z</p>");
  EXPECT_EQ(clean("<p class=\"unterminated"), "<p class=\"unterminated\">");
  EXPECT_EQ(clean("<script>never closed"), "");
}

TEST(TextToHtml, EscapesAndKeepsLineBreaks) {
  EXPECT_EQ(text_to_html("a < b\r\nline 2\r\n\r\npara 2\r\n"), "<p>a &lt; b<br/>\nline 2</p>\n<p>para 2</p>");
  EXPECT_EQ(text_to_html(""), "");
}

TEST(TextToHtml, FormatFlowed) {
  // RFC 3676: trailing space = soft break; leading space = stuffing.
  EXPECT_EQ(text_to_html("This is a \r\nflowed line.\r\n From stuffed\r\n", true), "<p>This is a flowed line.<br/>\nFrom stuffed</p>");
  EXPECT_EQ(text_to_html("Del \r\nSp\r\n", true, true), "<p>DelSp</p>");
  EXPECT_EQ(text_to_html("> quoted \r\n> more\r\nown\r\n", true), "<p>&gt; quoted more<br/>\nown</p>");
}

TEST(SniffHtmlCharset, FromMeta) {
  EXPECT_EQ(sniff_html_charset("<html><head><meta charset=\"windows-1251\"></head>"), "windows-1251");
  EXPECT_EQ(sniff_html_charset("<META HTTP-EQUIV=\"Content-Type\" CONTENT=\"text/html; charset=iso-8859-2\">"), "iso-8859-2");
  EXPECT_EQ(sniff_html_charset("<p>none</p>"), "");
}
