// The IMAP response parser: every form of string, nesting, response codes,
// and clear errors (never crashes) on broken input.
#include "mailgate/imap/response.hpp"

#include <gtest/gtest.h>

#include "mailgate/imap/fetcher.hpp"

using namespace mailgate::imap;

TEST(ImapResponse, GreetingWithCapabilityCode) {
  auto r = parse_response("* OK [CAPABILITY IMAP4rev1 SASL-IR IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot ready.\r\n");
  EXPECT_EQ(r.kind, Response::Kind::Untagged);
  EXPECT_EQ(r.name, "OK");
  EXPECT_EQ(r.text, "Dovecot ready.");
  auto caps = capabilities_of(r);
  ASSERT_EQ(caps.size(), 6u);
  EXPECT_EQ(caps[0], "IMAP4REV1");
  EXPECT_EQ(caps[5], "AUTH=PLAIN");
}

TEST(ImapResponse, TaggedStatusWithFreeText) {
  auto r = parse_response("a7 NO [TRYCREATE] Mailbox doesn't exist: Archive (0.001 + 0.000 secs)\r\n");
  EXPECT_EQ(r.kind, Response::Kind::Tagged);
  EXPECT_EQ(r.tag, "a7");
  EXPECT_EQ(r.name, "NO");
  ASSERT_TRUE(r.code);
  EXPECT_TRUE(r.code->items[0].is_atom("TRYCREATE"));
  EXPECT_EQ(r.text, "Mailbox doesn't exist: Archive (0.001 + 0.000 secs)");  // unbalanced text is fine
}

TEST(ImapResponse, NumberedDataAndUidValidity) {
  auto e = parse_response("* 172 EXISTS\r\n");
  EXPECT_EQ(e.name, "EXISTS");
  EXPECT_EQ(e.number.value(), 172u);
  auto v = parse_response("* OK [UIDVALIDITY 3857529045] UIDs valid\r\n");
  ASSERT_TRUE(v.code);
  EXPECT_EQ(v.code->items[1].number().value(), 3857529045u);
  auto f = parse_response("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)\r\n");
  ASSERT_EQ(f.data.size(), 1u);
  EXPECT_EQ(f.data[0].items.size(), 6u);
  EXPECT_EQ(f.data[0].items[0].text, "\\Answered");
  auto p = parse_response("* OK [PERMANENTFLAGS (\\Answered \\*)] Flags permitted.\r\n");
  EXPECT_EQ(p.code->items[1].items[1].text, "\\*");
}

TEST(ImapResponse, FetchWithLiteralQuotedNilAndSection) {
  std::string body = "Subject: x\r\n\r\n(unbalanced\r\n";
  std::string wire = "* 12 FETCH (UID 45 FLAGS (\\Seen) INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" "
                     "BODY[HEADER.FIELDS (FROM TO)] NIL BODY[] {" + std::to_string(body.size()) + "}\r\n" + body +
                     " X \"a \\\"q\\\" \\\\ b\")\r\n";
  auto r = parse_response(wire);
  EXPECT_EQ(r.name, "FETCH");
  EXPECT_EQ(r.number.value(), 12u);
  const auto& items = r.data.at(0).items;
  ASSERT_EQ(items.size(), 12u);
  EXPECT_EQ(items[1].number().value(), 45u);
  EXPECT_EQ(items[5].text, "17-Jul-1996 02:44:25 -0700");
  EXPECT_EQ(items[6].text, "BODY[HEADER.FIELDS (FROM TO)]");
  EXPECT_EQ(items[7].kind, Value::Kind::Nil);
  EXPECT_TRUE(items[8].is_atom("BODY[]"));
  EXPECT_EQ(items[9].text, body);  // bytes kept exactly, CRLFs and parentheses included
  EXPECT_EQ(items[11].text, "a \"q\" \\ b");
}

TEST(ImapResponse, LiteralForms) {
  EXPECT_EQ(parse_response("* 1 FETCH (BODY[] {3+}\r\nabc)\r\n").data[0].items[1].text, "abc");
  using namespace std::string_view_literals;
  EXPECT_EQ(parse_response("* 1 FETCH (BINARY[] ~{2}\r\n\0\1)\r\n"sv).data[0].items[1].text, "\0\1"sv);
  EXPECT_EQ(literal_size_at_end("* 1 FETCH (BODY[] {123}").value(), 123u);
  EXPECT_EQ(literal_size_at_end("* 1 FETCH (BODY[] {12+}").value(), 12u);
  EXPECT_FALSE(literal_size_at_end("* OK done {not}"));
  EXPECT_FALSE(literal_size_at_end("* OK done"));
}

TEST(ImapResponse, ContinuationAndSearch) {
  auto c = parse_response("+ idling\r\n");
  EXPECT_EQ(c.kind, Response::Kind::Continuation);
  EXPECT_EQ(c.text, "idling");
  auto s = parse_response("* SEARCH 2 84 882\r\n");
  ASSERT_EQ(s.data.size(), 3u);
  EXPECT_EQ(s.data[2].number().value(), 882u);
  EXPECT_TRUE(parse_response("* SEARCH\r\n").data.empty());
}

TEST(ImapResponse, BrokenInputIsAnErrorNotACrash) {
  for (const char* bad : {"", "*", "* 1 FETCH (UID 1\r\n", "* 1 FETCH (BODY[] {99}\r\nshort)\r\n",
                          "* 1 FETCH (BODY[] {1x}\r\na)\r\n", "* 1 FETCH \"unterminated\r\n", "a1 FETCH (x)\r\n",
                          "* 1 FETCH (BODY[ {1}\r\n", "* 1 FETCH )\r\n", "a1\r\n",
                          "* 7 {22134221341156452452}\r\n" /* found by the fuzzer: overflow */}) {
    EXPECT_THROW(parse_response(bad), ResponseError) << bad;
  }
  std::string deep = "* X " + std::string(1000, '(') + std::string(1000, ')') + "\r\n";
  EXPECT_THROW(parse_response(deep), ResponseError);
}

TEST(ImapResponse, QuotingForCommands) {
  EXPECT_EQ(quote("Sent Items").value(), "\"Sent Items\"");
  EXPECT_EQ(quote("a\"b\\c").value(), "\"a\\\"b\\\\c\"");
  EXPECT_FALSE(quote("evil\r\nA1 DELETE INBOX"));
}

TEST(ImapUidSet, CompressesRuns) {
  EXPECT_EQ(uid_set({1, 2, 3, 5, 7, 8}), "1:3,5,7:8");
  EXPECT_EQ(uid_set({42}), "42");
}

// Streamed SEARCH: numbers one by one, never a list of values; anything that
// is not a plain SEARCH is left to the full parser.
TEST(ImapSearchScan, NumbersAreReportedOneByOne) {
  std::vector<std::uint64_t> got;
  EXPECT_TRUE(scan_search("* SEARCH 2 84 882\r\n", [&](std::uint64_t n) { got.push_back(n); }));
  EXPECT_EQ(got, (std::vector<std::uint64_t>{2, 84, 882}));
  got.clear();
  EXPECT_TRUE(scan_search("* search\r\n", [&](std::uint64_t n) { got.push_back(n); }));  // nothing found
  EXPECT_TRUE(got.empty());
  EXPECT_TRUE(scan_search("* SEARCH 5 6 (MODSEQ 917162500)\r\n", [&](std::uint64_t n) { got.push_back(n); }));
  EXPECT_EQ(got, (std::vector<std::uint64_t>{5, 6}));
}

TEST(ImapSearchScan, NumbersBeyond64BitsAreReportedOutOfRange) {
  std::vector<std::uint64_t> got;
  EXPECT_TRUE(scan_search("* SEARCH 18446744073709551615 99999999999999999999999\r\n",
                          [&](std::uint64_t n) { got.push_back(n); }));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_GT(got[0], kMaxUid);
  EXPECT_GT(got[1], kMaxUid);
}

TEST(ImapSearchScan, OtherResponsesAreNotSearches) {
  int calls = 0;
  auto count = [&](std::uint64_t) { ++calls; };
  EXPECT_FALSE(scan_search("* SEARCHING 1 2\r\n", count));
  EXPECT_FALSE(scan_search("* 3 EXISTS\r\n", count));
  EXPECT_FALSE(scan_search("* SEARCH 1 two 3\r\n", count));  // the parser's job (and error)
  EXPECT_EQ(calls, 0);
}

TEST(ImapFetchPrefix, UidBeforeTheLiteralIsFound) {
  EXPECT_EQ(fetch_uid_before_literal("* 3 FETCH (UID 7 BODY[] {120}\r\n"), 7u);
  EXPECT_EQ(fetch_uid_before_literal("* 3 FETCH (RFC822.SIZE 88 uid 9 BODY[] {88}\r\n"), 9u);
  EXPECT_EQ(fetch_uid_before_literal("* 3 FETCH (BODY[] {120}\r\n"), std::nullopt);  // UID after the body
  EXPECT_EQ(fetch_uid_before_literal("* 3 FETCH (FLAGS (\\Seen) UID 4 BODY[] {1}\r\n"), std::nullopt);
  EXPECT_EQ(fetch_uid_before_literal("* 3 FETCH (UID 18446744073709551616 BODY[] {1}\r\n"), std::nullopt);
}
