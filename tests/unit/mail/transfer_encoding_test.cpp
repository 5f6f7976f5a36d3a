// Base64 and quoted-printable decoding tolerate what broken mailers send.
#include "mailgate/mail/transfer_encoding.hpp"

#include <gtest/gtest.h>

using namespace mailgate::mail;

TEST(Base64, Rfc4648TestVectors) {
  EXPECT_EQ(decode_base64(""), "");
  EXPECT_EQ(decode_base64("Zg=="), "f");
  EXPECT_EQ(decode_base64("Zm8="), "fo");
  EXPECT_EQ(decode_base64("Zm9v"), "foo");
  EXPECT_EQ(decode_base64("Zm9vYg=="), "foob");
  EXPECT_EQ(decode_base64("Zm9vYmE="), "fooba");
  EXPECT_EQ(decode_base64("Zm9vYmFy"), "foobar");
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) EXPECT_EQ(decode_base64(encode_base64(s)), s);
  EXPECT_EQ(encode_base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(encode_base64("fo"), "Zm8=");
}

TEST(Base64, SkipsLineBreaksAndJunk) {
  EXPECT_EQ(decode_base64("Zm9v\r\nYmFy\r\n"), "foobar");
  EXPECT_EQ(decode_base64("Zm9v Ym\tFy!!*"), "foobar");
  EXPECT_EQ(decode_base64("Zm9vYmFy===="), "foobar");
}

TEST(Base64, MissingPaddingAndTruncation) {
  EXPECT_EQ(decode_base64("Zm9vYg"), "foob");
  EXPECT_EQ(decode_base64("Zm9vYmE"), "fooba");
  EXPECT_EQ(decode_base64("Zm9vY"), "foo");  // a lone trailing symbol carries no byte
}

TEST(Base64, ConcatenatedPaddedBlocksDecodeFully) {
  EXPECT_EQ(decode_base64("Zg==Zm8="), "ffo");
}

TEST(QuotedPrintable, Rfc2045Rules) {
  EXPECT_EQ(decode_quoted_printable("caf=C3=A9"), "caf\xc3\xa9");
  EXPECT_EQ(decode_quoted_printable("caf=c3=a9"), "caf\xc3\xa9");  // lower-case hex
  EXPECT_EQ(decode_quoted_printable("soft=\r\nbreak"), "softbreak");
  EXPECT_EQ(decode_quoted_printable("soft=\nbreak bare LF"), "softbreak bare LF");
  EXPECT_EQ(decode_quoted_printable("line one   \r\nline two"), "line one\r\nline two");  // rule 3
  EXPECT_EQ(decode_quoted_printable("a=3D=3Db"), "a==b");
}

TEST(QuotedPrintable, InvalidEscapesKeptLiterally) {
  EXPECT_EQ(decode_quoted_printable("100=%"), "100=%");
  EXPECT_EQ(decode_quoted_printable("x=G1y"), "x=G1y");
  EXPECT_EQ(decode_quoted_printable("end=A"), "end=A");
  EXPECT_EQ(decode_quoted_printable("soft with trailing space= \r\nnext"), "soft with trailing spacenext");
}

TEST(TransferEncoding, DispatchesByLabel) {
  EXPECT_EQ(decode_transfer_encoding("Zm9v", " Base64 "), "foo");
  EXPECT_EQ(decode_transfer_encoding("a=3Db", "Quoted-Printable"), "a=b");
  EXPECT_EQ(decode_transfer_encoding("raw \xff", "8bit"), "raw \xff");
  EXPECT_EQ(decode_transfer_encoding("raw", "x-unknown"), "raw");
}
