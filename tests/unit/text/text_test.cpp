// lib/text: the helpers every room shares.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "mailgate/text/ascii.hpp"
#include "mailgate/text/encoding.hpp"
#include "mailgate/text/file.hpp"

using namespace mailgate::text;

TEST(Ascii, TrimDropsSpaceTabCrLfAtBothEndsOnly) {
  EXPECT_EQ(trim(" \t\r\nfoo bar\r\n "), "foo bar");
  EXPECT_EQ(trim(""), "");
  EXPECT_EQ(trim(" \t "), "");
  EXPECT_EQ(trim("\vx\v"), "\vx\v");  // only the four mail white-space bytes
}

TEST(Ascii, LowerAndCompareIgnoreCaseInAsciiOnly) {
  EXPECT_EQ(ascii_lower("Message-ID: <A@B>"), "message-id: <a@b>");
  EXPECT_EQ(ascii_lower("\xC3\x89t\xC3\xA9"), "\xC3\x89t\xC3\xA9");  // É stays: UTF-8 bytes untouched
  EXPECT_TRUE(iequals("DATA", "data"));
  EXPECT_FALSE(iequals("DATA", "dat"));
  EXPECT_FALSE(iequals("[", "{"));  // '[' + 32 is '{': only A-Z fold
  EXPECT_TRUE(istarts_with("Content-Type: text/plain", "content-type:"));
  EXPECT_FALSE(istarts_with("Content", "content-type"));
}

TEST(Ascii, FoldWhitespaceMakesOneLineOfRunsOfSpaceAndControls) {
  EXPECT_EQ(fold_whitespace("  Re:\r\n\t hello   world \n"), "Re: hello world");
  EXPECT_EQ(fold_whitespace(std::string("a\0b\x7f" "c", 5)), "a b c");  // NUL and DEL too
  EXPECT_EQ(fold_whitespace("\xC2\xA0x"), "\xC2\xA0x");               // UTF-8 (a no-break space) untouched
  EXPECT_EQ(fold_whitespace(" \r\n "), "");
}

TEST(Encoding, Base64MatchesRfc4648Vectors) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode(std::string("\0user\0pass", 10)), "AHVzZXIAcGFzcw==");
}

TEST(Encoding, Sha256HexOfKnownInputs) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex_lower(std::string("\x01\xab\xff", 3)), "01abff");
}

TEST(File, ReadsEveryByteAndSaysWhenItCannot) {
  char path[] = "/tmp/mailgate-text-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  const std::string bytes("line1\r\n\0binary\xff", 15);
  std::ofstream(path, std::ios::binary) << bytes;
  EXPECT_EQ(read_file(path), bytes);
  std::remove(path);
  EXPECT_EQ(read_file(path), std::nullopt);
  std::istringstream in("from a stream");
  EXPECT_EQ(read_stream(in), "from a stream");
}
