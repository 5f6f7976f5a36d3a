// The one header reader: line ends, folds, broken headers, hostile bytes,
// every bound; the seen-set's Message-ID (equal to the spool's old scan on
// the whole corpus); the thread ids; and the one "is this a mail" rule as a
// table of cases. Linked against mailgate::header_block alone: the spool and
// SMTP use it without the MIME stack.
#include "mailgate/mail/header_block.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include "mailgate/text/ascii.hpp"
#include "mailgate/text/file.hpp"

using namespace mailgate::mail;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> names_of(const HeaderBlock& b) {
  std::vector<std::string> out;
  for (const auto& f : b.fields) out.push_back(f.name);
  return out;
}

std::vector<fs::path> corpus_messages() {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(fs::path(MAILGATE_SOURCE_DIR) / "tests" / "corpus"))
    if (e.path().extension() == ".eml") out.push_back(e.path());
  return out;
}

// lib/spool/src/spool.cpp's find_message_id as it was before the header
// reader (commit 900316a), copied here only to show that message_id() gives
// the seen-set the same keys: a mail seen before the change is still seen.
std::string old_find_message_id(std::string_view head) {
  std::size_t pos = 0;
  while (pos < head.size()) {
    std::size_t eol = head.find('\n', pos);
    std::string_view line = head.substr(pos, eol == std::string_view::npos ? head.size() - pos : eol - pos);
    if (line.empty() || line == "\r") break;  // end of header
    if (line.size() > 11 && mailgate::text::ascii_lower(std::string(line.substr(0, 11))) == "message-id:") {
      std::string value(line.substr(11));
      // folded continuation lines
      std::size_t next = eol == std::string_view::npos ? head.size() : eol + 1;
      while (next < head.size() && (head[next] == ' ' || head[next] == '\t')) {
        std::size_t e = head.find('\n', next);
        value += std::string(head.substr(next, (e == std::string_view::npos ? head.size() : e) - next));
        next = e == std::string_view::npos ? head.size() : e + 1;
      }
      std::string id;
      for (char c : value)
        if (c != '<' && c != '>' && c != ' ' && c != '\t' && c != '\r' && c != '\n') id.push_back(c);
      return id;
    }
    if (eol == std::string_view::npos) break;
    pos = eol + 1;
  }
  return "";
}

}  // namespace

TEST(HeaderBlock, FieldsFoldsAndWhereTheBodyStarts) {
  const std::string raw = "Subject: one\r\n two\r\n\tthree\r\nX-Empty:\r\nFrom:a@b\r\n\r\nbody\r\n";
  const HeaderBlock b = read_header_block(raw);
  EXPECT_EQ(names_of(b), (std::vector<std::string>{"Subject", "X-Empty", "From"}));
  EXPECT_EQ(b.first("subject"), "one\r\n two\r\n\tthree");
  EXPECT_EQ(unfold(b.first("SUBJECT")), "one two\tthree");
  EXPECT_EQ(b.first("x-empty"), "");
  EXPECT_EQ(b.first("from"), "a@b");  // no space after the colon
  EXPECT_EQ(b.find("Missing"), nullptr);
  EXPECT_EQ(raw.substr(b.body_offset), "body\r\n");
  EXPECT_FALSE(b.over_limit);
  EXPECT_FALSE(b.long_field);
}

TEST(HeaderBlock, BareLineFeedsReadLikeCrlf) {
  const HeaderBlock crlf = read_header_block("A: 1\r\n 2\r\nB: 3\r\n\r\nx");
  const HeaderBlock lf = read_header_block("A: 1\n 2\nB: 3\n\nx");
  EXPECT_EQ(lf.first("A"), crlf.first("A"));
  EXPECT_EQ(lf.first("B"), "3");
  EXPECT_EQ(lf.body_offset, 14u);
}

TEST(HeaderBlock, ObsoleteFoldsAndNamesWithSpaceBeforeTheColon) {
  // RFC 5322 §4.2: a fold line of only white space; white space before the colon.
  const HeaderBlock b = read_header_block("Subject : a\r\n \r\n b\r\nTo: x@y\r\n\r\n");
  EXPECT_EQ(names_of(b), (std::vector<std::string>{"Subject", "To"}));
  EXPECT_EQ(unfold(b.first("Subject")), "a  b");
}

TEST(HeaderBlock, ALineThatIsNotAFieldStartsTheBody) {
  const std::string raw = "From: a@b\r\nThis line is the body.\r\nTo: c@d\r\n";
  const HeaderBlock b = read_header_block(raw);
  EXPECT_EQ(names_of(b), (std::vector<std::string>{"From"}));
  EXPECT_EQ(raw.substr(b.body_offset), "This line is the body.\r\nTo: c@d\r\n");
  // A name with a space, a control byte or NUL is no name.
  for (const std::string& bad : std::vector<std::string>{"Two words: x\r\n", std::string("N\0ul: x\r\n", 9), "Bell\a: x\r\n", ": no name\r\n"}) {
    const HeaderBlock c = read_header_block("From: a@b\r\n" + bad);
    EXPECT_EQ(c.fields.size(), 1u) << bad;
    EXPECT_EQ(c.body_offset, 11u) << bad;
  }
}

TEST(HeaderBlock, EightBitBytesAndNulInValuesAreKept) {
  const std::string raw = std::string("Subject: caf\xc3\xa9 \xff\0end\r\n\r\n", 21);
  const HeaderBlock b = read_header_block(raw);
  ASSERT_EQ(b.fields.size(), 1u);
  EXPECT_EQ(b.first("Subject"), std::string("caf\xc3\xa9 \xff\0end", 11));
}

TEST(HeaderBlock, MboxSeparatorLeadingBlankLineAndNoBody) {
  const HeaderBlock mbox = read_header_block("From someone@x Mon Jan  1 00:00:00 2024\nFrom: a@b\n\nhi");
  EXPECT_EQ(names_of(mbox), (std::vector<std::string>{"From"}));
  const HeaderBlock blank = read_header_block("\r\nFrom: a@b\r\n");
  EXPECT_TRUE(blank.fields.empty());
  EXPECT_EQ(blank.body_offset, 2u);
  const std::string only_header = "From: a@b\r\nTo: c@d";  // no blank line, no final line end
  const HeaderBlock h = read_header_block(only_header);
  EXPECT_EQ(h.first("To"), "c@d");
  EXPECT_EQ(h.body_offset, only_header.size());
  EXPECT_TRUE(read_header_block("").fields.empty());
}

TEST(HeaderBlock, AllValuesOfANameBounded) {
  const HeaderBlock b = read_header_block("To: a\r\nCc: b\r\nto: c\r\nTO: d\r\n\r\n");
  EXPECT_EQ(b.all("To", 10), (std::vector<std::string_view>{"a", "c", "d"}));
  EXPECT_EQ(b.all("To", 2), (std::vector<std::string_view>{"a", "c"}));
  EXPECT_TRUE(b.all("Bcc", 10).empty());
}

TEST(HeaderBlock, FieldCountBound) {
  std::string raw;
  for (int i = 0; i < 20; ++i) raw += "X-" + std::to_string(i) + ": v\r\n";
  const HeaderBlock b = read_header_block(raw + "\r\nbody", {kMaxHeaderBlockBytes, 10, kMaxHeaderFieldBytes});
  EXPECT_EQ(b.fields.size(), 10u);
  EXPECT_TRUE(b.over_limit);
  EXPECT_EQ(b.body_offset, raw.size() + 2);  // the body is still found
}

TEST(HeaderBlock, BlockBytesBound) {
  std::string raw;
  for (int i = 0; i < 10; ++i) raw += "X-" + std::to_string(i) + ": " + std::string(50, 'v') + "\r\n";
  const HeaderBlock b = read_header_block(raw, {200, kMaxHeaderFields, kMaxHeaderFieldBytes});
  EXPECT_EQ(b.fields.size(), 4u);  // 53 bytes each: the fourth passes 200, the rest are dropped
  EXPECT_TRUE(b.over_limit);
}

TEST(HeaderBlock, FieldLengthBound) {
  const HeaderBlock b = read_header_block("Subject: " + std::string(150, 's') + "\r\n folded on\r\nTo: x\r\n\r\n",
                                          {kMaxHeaderBlockBytes, kMaxHeaderFields, 100});
  EXPECT_EQ(b.first("Subject"), std::string(100, 's'));
  EXPECT_EQ(b.first("To"), "x");
  EXPECT_TRUE(b.long_field);
  EXPECT_FALSE(b.over_limit);
  const HeaderBlock folds = read_header_block("Subject: a\r\n" + std::string(" 123456789\r\n") + std::string(" 123456789\r\n"),
                                              {kMaxHeaderBlockBytes, kMaxHeaderFields, 20});
  EXPECT_EQ(folds.first("Subject"), "a\r\n 123456789");  // the second fold would pass 20
  EXPECT_TRUE(folds.long_field);
}

TEST(HeaderBlock, HugeHeaderIsReadInBoundedMemory) {
  std::string raw;
  while (raw.size() < 4 * 1024 * 1024) raw += "X-Flood: " + std::string(100, 'f') + "\r\n";
  const HeaderBlock b = read_header_block(raw);
  EXPECT_LE(b.fields.size(), kMaxHeaderFields);
  EXPECT_TRUE(b.over_limit);
}

TEST(MessageId, TheSeenSetsRule) {
  EXPECT_EQ(message_id("Message-ID: <a@b>\r\n\r\n"), "a@b");
  EXPECT_EQ(message_id("message-id:<a@b>\r\n\r\n"), "a@b");
  EXPECT_EQ(message_id("Message-ID:\r\n <long.id@\r\n example.org>\r\n\r\n"), "long.id@example.org");
  EXPECT_EQ(message_id("Message-ID: <a@b> (comment)\r\n"), "a@b(comment)");  // only <, > and white space go
  EXPECT_EQ(message_id("Message-ID: <first@x>\r\nMessage-ID: <second@x>\r\n"), "first@x");
  EXPECT_EQ(message_id("Message-ID:\r\nMessage-ID: <second@x>\r\n"), "");  // the first field counts, empty or not
  EXPECT_EQ(message_id("From: a@b\r\n\r\nMessage-ID: <in-body@x>\r\n"), "");
  EXPECT_EQ(message_id("From: a@b\r\n"), "");
}

TEST(MessageId, SameAsTheSpoolsOldScanOnEveryCorpusFile) {
  std::size_t with_id = 0;
  for (const auto& path : corpus_messages()) {
    const std::string raw = mailgate::text::read_file(path.string()).value();
    const std::string head = raw.substr(0, kMailHeadBytes);  // what the spool keeps
    EXPECT_EQ(message_id(head), old_find_message_id(head)) << path;
    with_id += !message_id(head).empty();
  }
  EXPECT_GT(with_id, 40u);  // the comparison was not between empty strings
}

TEST(MessageId, SameAsTheOldScanOnHostileShapes) {
  const std::vector<std::string> heads = {
      "Message-ID: <a@b>\n\n",
      "Message-ID: <a@b>",                                  // cut: no line end
      "From x Mon Jan  1 00:00:00 2024\r\nMessage-ID: <m@x>\r\n",
      "Message-ID: <caf\xc3\xa9@x>\r\n",
      std::string("Message-ID: <n\0ul@x>\r\n", 21),
      "Message-ID: <a@b\r\n\t>\r\n",
      "X: y\r\n \r\nMessage-ID: <after-obs-fold@x>\r\n",
      "\r\nMessage-ID: <after-blank@x>\r\n",
      "",
  };
  for (const auto& head : heads) EXPECT_EQ(message_id(head), old_find_message_id(head)) << head;
}

TEST(MessageId, ABrokenLineAboveItDoesNotChangeTheSeenKey) {
  // The seen key of a mail must not change (a resent copy, or one fetched
  // again after an upgrade, would become a second ticket): like the old scan,
  // message_id() reads past a line that is no field (a badly folded Subject)
  // and does not take "Message-ID :" with a space before the colon.
  const std::string broken = "From: a@b\r\nSubject: =?utf-8?q?x?=\r\n=?utf-8?q?unfolded?=\r\nMessage-ID: <later@x>\r\n\r\n";
  EXPECT_EQ(old_find_message_id(broken), "later@x");
  EXPECT_EQ(message_id(broken), "later@x");
  EXPECT_EQ(old_find_message_id("Message-ID :<sp@x>\r\n"), "");
  EXPECT_EQ(message_id("Message-ID :<sp@x>\r\n"), "");
  EXPECT_EQ(message_id("Message-ID:\n <lf-fold@x>\n"), old_find_message_id("Message-ID:\n <lf-fold@x>\n"));
}

TEST(ScanHead, ReadsEveryFieldLineUpToTheBlankLine) {
  const std::string head = "Delivered-To: a@x\r\nnot a field\r\nDelivered-To: b@x\r\n\r\nDelivered-To: body@x\r\n";
  EXPECT_EQ(scan_head(head, "delivered-to", 10), (std::vector<std::string>{" a@x\r", " b@x\r"}));
  EXPECT_EQ(scan_head(head, "Delivered-To", 1), (std::vector<std::string>{" a@x\r"}));
  EXPECT_EQ(scan_head("References: <a@x>\r\n <b@x>\r\n", "References", 5),
            (std::vector<std::string>{" <a@x>\r <b@x>\r"}));
}

TEST(AngleIds, BoundedInNumberAndLength) {
  EXPECT_EQ(angle_ids("<a@b> <c@d>\r\n <e\r\n @f>", 10, 998), (std::vector<std::string>{"a@b", "c@d", "e@f"}));
  EXPECT_EQ(angle_ids("<a@b> <c@d> <e@f>", 2, 998), (std::vector<std::string>{"a@b", "c@d"}));
  EXPECT_EQ(angle_ids("<> <" + std::string(20, 'x') + "> <ok@x>", 10, 10), (std::vector<std::string>{"ok@x"}));
  EXPECT_TRUE(angle_ids("bare@id no brackets", 10, 998).empty());
  EXPECT_TRUE(angle_ids("<unclosed@x", 10, 998).empty());
}

// The one "is this a mail" rule: deliver exits 65 with the reason, SMTP
// answers 554 5.6.0 with it, the pipeline fails the mail with it.
struct MailCase {
  const char* what;
  std::string input;
  MailVerdict verdict;
};

void PrintTo(const MailCase& c, std::ostream* os) { *os << c.what; }

class ClassifyMail : public ::testing::TestWithParam<MailCase> {};

TEST_P(ClassifyMail, Verdict) {
  EXPECT_EQ(classify_mail(GetParam().input), GetParam().verdict) << GetParam().what;
}

std::string huge_header_then(const std::string& field) {
  std::string raw;
  while (raw.size() < kMailHeadBytes) raw += "X-Padding: " + std::string(100, 'p') + "\r\n";
  return raw + field + "\r\n\r\nbody\r\n";
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ClassifyMail,
    ::testing::Values(
        MailCase{"empty", "", MailVerdict::Empty},
        MailCase{"only white space", " \r\n\t\r\n\r\n", MailVerdict::Empty},
        MailCase{"only a body", "hello, this is just text\r\nand more\r\n", MailVerdict::NoHeaderFields},
        MailCase{"binary", std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16), MailVerdict::NoHeaderFields},
        MailCase{"header line without a colon first", "Subject x\r\nFrom: a@b\r\n\r\n", MailVerdict::NoHeaderFields},
        MailCase{"a line without a colon before the fields", "garbage\r\nFrom: a@b\r\n\r\n", MailVerdict::NoHeaderFields},
        MailCase{"only fields no mail system writes", "X-Foo: bar\r\nFoo: baz\r\n\r\nbody", MailVerdict::NoHeaderFields},
        MailCase{"mbox From line first", "From a@b Mon Jan  1 00:00:00 2024\nFrom: a@b\n\nx", MailVerdict::Mail},
        MailCase{"leading blank line", "\r\nFrom: a@b\r\nSubject: s\r\n\r\nbody", MailVerdict::NoHeaderFields},
        MailCase{"CRLF", "From: a@b\r\nSubject: s\r\n\r\nbody\r\n", MailVerdict::Mail},
        MailCase{"bare LF", "From: a@b\nSubject: s\n\nbody\n", MailVerdict::Mail},
        MailCase{"header only, no body", "Subject: s", MailVerdict::Mail},
        MailCase{"case of the name", "SUBJECT: s\r\n\r\n", MailVerdict::Mail},
        MailCase{"only Received (a relay's)", "Received: from x by y\r\n\r\n", MailVerdict::Mail},
        MailCase{"8-bit and NUL in a value", std::string("Subject: \xff\0\r\n\r\n", 14), MailVerdict::Mail},
        MailCase{"mail field within the head", huge_header_then("From: a@b").substr(0, 100) + "\r\nFrom: a@b\r\n",
                 MailVerdict::Mail},
        MailCase{"huge header, first mail field past the head", huge_header_then("From: a@b"),
                 MailVerdict::NoHeaderFields}),
    [](const auto& info) {
      std::string name;
      for (const char* p = info.param.what; *p; ++p) name += std::isalnum(static_cast<unsigned char>(*p)) ? *p : '_';
      return name;
    });

TEST(ClassifyMailReasons, SayWhyForPeople) {
  EXPECT_EQ(to_string(MailVerdict::Mail), "");
  EXPECT_EQ(to_string(MailVerdict::Empty), "not an email message: the input is empty");
  EXPECT_EQ(to_string(MailVerdict::NoHeaderFields),
            "not an email message: no RFC 5322 header fields (From, To, Subject, Date, ...) found");
}

TEST(ClassifyMailCorpus, EveryCorpusMessageIsAMail) {
  const auto paths = corpus_messages();
  ASSERT_GT(paths.size(), 60u);
  for (const auto& path : paths)
    EXPECT_EQ(classify_mail(mailgate::text::read_file(path.string()).value()), MailVerdict::Mail) << path;
}
