// Every charset real mail uses converts to UTF-8; wrong labels degrade
// gracefully instead of garbling the whole text.
#include "mailgate/mail/charset.hpp"

#include <gtest/gtest.h>

using mailgate::mail::to_utf8;
using mailgate::mail::undeclared_to_utf8;

TEST(Charset, WesternSingleByte) {
  EXPECT_EQ(to_utf8("caf\xe9", "ISO-8859-1"), "caf\u00e9");
  EXPECT_EQ(to_utf8("\x80 5", "windows-1252"), "\u20ac 5");
  EXPECT_EQ(to_utf8("\x80 5", "iso-8859-1"), "\u20ac 5");  // as browsers do
  EXPECT_EQ(to_utf8("\xa4", "ISO-8859-15"), "\u20ac");
  EXPECT_EQ(to_utf8("\xb1\xea", "iso-8859-2"), "\u0105\u0119");
  EXPECT_EQ(to_utf8("\xd0\xd2\xc9\xd7\xc5\xd4", "KOI8-R"), "\u043f\u0440\u0438\u0432\u0435\u0442");
  EXPECT_EQ(to_utf8("\xcf\xf0\xe8\xe2\xe5\xf2", "windows-1251"), "\u041f\u0440\u0438\u0432\u0435\u0442");
}

TEST(Charset, EastAsian) {
  // 日本 in each Japanese encoding
  EXPECT_EQ(to_utf8("\x93\xfa\x96\x7b", "Shift_JIS"), "\u65e5\u672c");
  EXPECT_EQ(to_utf8("\xc6\xfc\xcb\xdc", "EUC-JP"), "\u65e5\u672c");
  EXPECT_EQ(to_utf8("\x1b$BF|K\\\x1b(B", "ISO-2022-JP"), "\u65e5\u672c");
  // 中文 in Chinese encodings
  EXPECT_EQ(to_utf8("\xd6\xd0\xce\xc4", "GB2312"), "\u4e2d\u6587");
  EXPECT_EQ(to_utf8("\xd6\xd0\xce\xc4", "GBK"), "\u4e2d\u6587");
  EXPECT_EQ(to_utf8("\xd6\xd0\xce\xc4", "GB18030"), "\u4e2d\u6587");
  EXPECT_EQ(to_utf8("\xa4\xa4\xa4\xe5", "Big5"), "\u4e2d\u6587");
  EXPECT_EQ(to_utf8("\xc7\xd1", "ks_c_5601-1987"), "\ud55c");
}

TEST(Charset, Utf16WithAndWithoutBom) {
  EXPECT_EQ(to_utf8(std::string("\xff\xfeh\0i\0", 6), "UTF-16"), "hi");
  EXPECT_EQ(to_utf8(std::string("\0h\0i", 4), "UTF-16BE"), "hi");
  EXPECT_EQ(to_utf8(std::string("h\0i\0", 4), "utf-16le"), "hi");
}

TEST(Charset, LabelsAreCaseAndQuoteInsensitive) {
  EXPECT_EQ(to_utf8("caf\xe9", "\"iso-8859-1\""), "caf\u00e9");
  EXPECT_EQ(to_utf8("caf\xe9", "Latin1"), "caf\u00e9");
  EXPECT_EQ(to_utf8("caf\xc3\xa9", "UTF8"), "caf\u00e9");
}

TEST(Charset, WrongLabelsFallBackWithoutGarbling) {
  // UTF-8 labelled as a Western single-byte charset (very common).
  EXPECT_EQ(to_utf8("caf\xc3\xa9", "us-ascii"), "caf\u00e9");
  EXPECT_EQ(to_utf8("caf\xc3\xa9", "iso-8859-1"), "caf\u00e9");
  // Latin-1 labelled as UTF-8: each stray byte read as windows-1252, the
  // valid UTF-8 around it kept.
  EXPECT_EQ(to_utf8("caf\xe9 \xe2\x82\xac", "utf-8"), "caf\u00e9 \u20ac");
  // An unknown label: valid UTF-8 kept, else windows-1252.
  EXPECT_EQ(to_utf8("caf\xc3\xa9", "x-unknown"), "caf\u00e9");
  EXPECT_EQ(to_utf8("caf\xe9", "no-such-charset"), "caf\u00e9");
  // A sequence invalid in the declared multi-byte charset costs one U+FFFD,
  // not the rest of the text.
  EXPECT_EQ(to_utf8("\x93\xfa\xff\x96\x7b ok", "Shift_JIS"), "\u65e5\ufffd\u672c ok");
}

TEST(Charset, UndeclaredBytes) {
  EXPECT_EQ(undeclared_to_utf8("plain"), "plain");
  EXPECT_EQ(undeclared_to_utf8("\xe2\x82\xac"), "\u20ac");
  EXPECT_EQ(undeclared_to_utf8("\x93quoted\x94"), "\u201cquoted\u201d");
}
