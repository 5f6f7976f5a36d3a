// Log lines: one line of printable text per event whatever the values hold
// (a hostile Message-ID, a server's error text), as key=value or JSON.
#include "mailgate/log/log.hpp"

#include <gtest/gtest.h>

using namespace mailgate::log;

TEST(LogText, PlainValuesStayReadable) {
  EXPECT_EQ(format_line(Level::Info, "imap.message", {{"mailbox", "support"}, {"uid", "7"}}),
            "info imap.message mailbox=support uid=7");
  EXPECT_EQ(format_line(Level::Warn, "x", {{"error", "no such user"}, {"empty", ""}}),
            "warn x error=\"no such user\" empty=\"\"");
  EXPECT_EQ(format_line(Level::Info, "x", {{"subject", "Grüße"}}), "info x subject=Grüße");  // UTF-8 as is
}

TEST(LogText, TerminalEscapesAndLineBreaksAreEscaped) {
  const std::string hostile = "<a\x1b]0;pwned\x07\x1b[2J@x>\r\ninfo forged.event ok=1";
  const std::string line = format_line(Level::Info, "smtp.accepted", {{"message_id", hostile}});
  EXPECT_EQ(line.find('\x1b'), std::string::npos);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line.find('\r'), std::string::npos);
  EXPECT_EQ(line, "info smtp.accepted message_id=\"<a\\x1b]0;pwned\\x07\\x1b[2J@x>\\x0d\\x0ainfo forged.event ok=1\"");
}

TEST(LogText, C1ControlsBidiOverridesAndInvalidUtf8AreEscaped) {
  // U+009B (CSI on some terminals), U+202E (right-to-left override), a lone 0x9b byte.
  const std::string line = format_line(Level::Info, "x", {{"v", "a\xc2\x9b" "b\xe2\x80\xae" "c\x9b" "d\x7f"}});
  EXPECT_EQ(line, "info x v=\"a\\u009Bb\\u202Ec\\x9bd\\x7f\"");
}

TEST(LogText, EscapesCannotBeForged) {
  // A literal backslash is doubled: "\x1b" typed by an attacker is not ESC.
  EXPECT_EQ(escape_controls("a\\x1b"), "a\\\\x1b");
  EXPECT_EQ(format_line(Level::Info, "x", {{"v", "a\\x1b"}}), "info x v=\"a\\\\x1b\"");
}

TEST(LogJson, OneObjectPerLineWithEveryFieldAsAString) {
  EXPECT_EQ(format_line(Format::Json, Level::Warn, "imap.error", {{"mailbox", "support"}, {"error", "said \"no\""}}),
            "{\"level\":\"warn\",\"event\":\"imap.error\",\"mailbox\":\"support\",\"error\":\"said \\\"no\\\"\"}");
}

TEST(LogJson, ControlsAreJsonEscapesAndInvalidBytesStayValidUtf8) {
  const std::string line =
      format_line(Format::Json, Level::Info, "x", {{"v", "a\x1b[2J\nb\xe2\x80\xae" "c\xff" "d\\ Grüße"}});
  EXPECT_EQ(line, "{\"level\":\"info\",\"event\":\"x\",\"v\":\"a\\u001b[2J\\nb\\u202ec\\\\xffd\\\\ Grüße\"}");
}
