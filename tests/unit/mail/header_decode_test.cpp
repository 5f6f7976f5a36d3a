// RFC 2047 encoded-words and RFC 2231 parameters, starting from the RFCs'
// own examples, then what real clients send.
#include "mailgate/mail/header_decode.hpp"

#include <gtest/gtest.h>

using mailgate::mail::decode_header_text;
using mailgate::mail::parse_header_params;

TEST(Rfc2047, Section8Examples) {
  EXPECT_EQ(decode_header_text("(=?ISO-8859-1?Q?a?=)"), "(a)");
  EXPECT_EQ(decode_header_text("(=?ISO-8859-1?Q?a?= b)"), "(a b)");
  EXPECT_EQ(decode_header_text("(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)"), "(ab)");
  EXPECT_EQ(decode_header_text("(=?ISO-8859-1?Q?a?=  =?ISO-8859-1?Q?b?=)"), "(ab)");
  EXPECT_EQ(decode_header_text("(=?ISO-8859-1?Q?a?=\r\n    =?ISO-8859-1?Q?b?=)"), "(ab)");
  EXPECT_EQ(decode_header_text("(=?ISO-8859-1?Q?a_b?=)"), "(a b)");
  EXPECT_EQ(decode_header_text("(=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=)"), "(a b)");
}

TEST(Rfc2047, Section8Headers) {
  EXPECT_EQ(decode_header_text("=?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>"), "Keith Moore <moore@cs.utk.edu>");
  EXPECT_EQ(decode_header_text("=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?="), "Keld J\u00f8rn Simonsen");
  EXPECT_EQ(decode_header_text("=?ISO-8859-1?Q?Andr=E9?= Pirard"), "Andr\u00e9 Pirard");
  EXPECT_EQ(decode_header_text("=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?=\r\n"
                               "    =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?="),
            "If you can read this you understand the example.");
}

TEST(Rfc2047, MultiByteCharacterSplitAcrossWordsSurvives) {
  // "é" is C3 A9 in UTF-8; Gmail splits long subjects between the two bytes.
  EXPECT_EQ(decode_header_text("=?UTF-8?Q?caf=C3?= =?UTF-8?Q?=A9?="), "caf\u00e9");
  EXPECT_EQ(decode_header_text("=?utf-8?B?w6k=?= =?utf-8?B?w6k=?="), "\u00e9\u00e9");
}

// issue 15: adjacent words in different charsets are decoded each in its
// own charset, then joined. Joining the bytes first (to mend a character
// split across words, above) would read é (0xE9) as UTF-8 and lose it.
TEST(Rfc2047, AdjacentWordsInDifferentCharsetsAreDecodedSeparately) {
  EXPECT_EQ(decode_header_text("=?ISO-8859-1?Q?caf=E9?= =?UTF-8?Q?_=C3=A9t=C3=A9?="), "caf\u00e9 \u00e9t\u00e9");
  EXPECT_EQ(decode_header_text("=?UTF-8?Q?=C3=A9t=C3=A9_?= =?ISO-8859-1?Q?caf=E9?="), "\u00e9t\u00e9 caf\u00e9");
  EXPECT_EQ(decode_header_text("=?ISO-8859-1?Q?=E9?= =?ISO-8859-2?Q?=E9?="), "\u00e9\u00e9");  // é, then é in Latin-2
}

TEST(Rfc2047, LenientForms) {
  EXPECT_EQ(decode_header_text("=?utf-8?q?lower_case_q?="), "lower case q");
  EXPECT_EQ(decode_header_text("=?UTF-8*en?Q?language_tag?="), "language tag");  // RFC 2231 §5
  EXPECT_EQ(decode_header_text("Re:=?UTF-8?Q?glued?="), "Re:glued");
  EXPECT_EQ(decode_header_text("price =? 5"), "price =? 5");  // not an encoded-word
  EXPECT_EQ(decode_header_text("=?UTF-8?X?bad-encoding?="), "=?UTF-8?X?bad-encoding?=");
  EXPECT_EQ(decode_header_text("=?UTF-8?B?unterminated"), "=?UTF-8?B?unterminated");
}

TEST(Rfc2047, UnknownCharsetStaysReadable) {
  EXPECT_EQ(decode_header_text("=?x-no-such-charset?Q?plain_text?="), "plain text");
  EXPECT_EQ(decode_header_text("=?x-no-such-charset?B?w6k=?="), "\u00e9");  // valid UTF-8 kept
}

TEST(Rfc2047, RawEightBitHeaders) {
  EXPECT_EQ(decode_header_text("Gr\xc3\xbc\xc3\x9f" "e"), "Gr\u00fc\u00dfe");  // raw UTF-8
  EXPECT_EQ(decode_header_text("Gr\xfc\xdf" "e"), "Gr\u00fc\u00dfe");          // raw Latin-1
}

TEST(Rfc2231, Section3Continuations) {
  auto p = parse_header_params(
      "message/external-body; access-type=URL;\r\n URL*0=\"ftp://\";\r\n URL*1=\"cs.utk.edu/pub/moore/bulk-mailer/bulk-mailer.tar\"");
  EXPECT_EQ(p.value, "message/external-body");
  EXPECT_EQ(p.param("access-type"), "URL");
  EXPECT_EQ(p.param("url"), "ftp://cs.utk.edu/pub/moore/bulk-mailer/bulk-mailer.tar");
}

TEST(Rfc2231, Section4CharsetAndLanguage) {
  auto p = parse_header_params("application/x-stuff;\r\n title*=us-ascii'en-us'This%20is%20%2A%2A%2Afun%2A%2A%2A");
  EXPECT_EQ(p.param("title"), "This is ***fun***");
}

TEST(Rfc2231, Section4_1MixedContinuations) {
  auto p = parse_header_params(
      "application/x-stuff;\r\n title*0*=us-ascii'en'This%20is%20even%20more%20;\r\n"
      " title*1*=%2A%2A%2Afun%2A%2A%2A%20;\r\n title*2=\"isn't it!\"");
  EXPECT_EQ(p.param("title"), "This is even more ***fun*** isn't it!");
}

TEST(Rfc2231, Utf8FileNamesAsClientsSendThem) {
  EXPECT_EQ(parse_header_params("attachment; filename*=utf-8''%E2%82%AC%20rates.pdf").param("filename"),
            "\u20ac rates.pdf");
  EXPECT_EQ(parse_header_params("attachment; filename*=UTF-8''na%C3%AFve.txt; filename=\"naive.txt\"").param("filename"),
            "na\u00efve.txt");  // the RFC 2231 form wins
  // Thunderbird splits long names over sections, each percent-encoded.
  EXPECT_EQ(parse_header_params("attachment; filename*0*=UTF-8''%C3%A4%C3%B6; filename*1*=%C3%BC.pdf").param("filename"),
            "\u00e4\u00f6\u00fc.pdf");
  // ISO-8859-1 declared in RFC 2231.
  EXPECT_EQ(parse_header_params("attachment; filename*=iso-8859-1'de'Gr%FC%DFe.txt").param("filename"),
            "Gr\u00fc\u00dfe.txt");
}

TEST(Rfc2231, EncodedWordsInQuotedNames) {
  // Outlook and Gmail violate RFC 2047 §5 this way; every client decodes it.
  EXPECT_EQ(parse_header_params("image/png; name=\"=?UTF-8?B?w6lsw6lwaGFudC5wbmc=?=\"").param("name"),
            "\u00e9l\u00e9phant.png");
}

TEST(HeaderParams, QuotingAndLeniency) {
  auto p = parse_header_params("Multipart/Mixed; BOUNDARY=\"a;b=c\"; charset=utf-8");
  EXPECT_EQ(p.value, "multipart/mixed");
  EXPECT_EQ(p.param("boundary"), "a;b=c");
  EXPECT_EQ(p.param("charset"), "utf-8");
  EXPECT_EQ(parse_header_params("text/plain; name=my report.txt").param("name"), "my report.txt");
  EXPECT_EQ(parse_header_params("text/plain; name=\"a \\\"quoted\\\" name\"").param("name"), "a \"quoted\" name");
  EXPECT_EQ(parse_header_params("attachment;; filename=x.pdf;").param("filename"), "x.pdf");
  EXPECT_EQ(parse_header_params("attachment; filename=\"unterminated.pdf").param("filename"), "unterminated.pdf");
  EXPECT_FALSE(parse_header_params("inline").has("filename"));
}
