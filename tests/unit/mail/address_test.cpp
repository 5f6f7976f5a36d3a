// RFC 5322 §3.4 and Appendix A address lists, and the forms clients produce.
#include "mailgate/mail/address.hpp"

#include <gtest/gtest.h>

using mailgate::mail::Mailbox;
using mailgate::mail::parse_address_list;

namespace {
std::string show(const std::vector<Mailbox>& v) {
  std::string s;
  for (const auto& m : v) s += "[" + m.name + "|" + m.address + "]";
  return s;
}
}  // namespace

TEST(Address, Rfc5322AppendixA) {
  EXPECT_EQ(show(parse_address_list("John Doe <jdoe@machine.example>")), "[John Doe|jdoe@machine.example]");
  EXPECT_EQ(show(parse_address_list("\"Joe Q. Public\" <john.q.public@example.com>")),
            "[Joe Q. Public|john.q.public@example.com]");
  EXPECT_EQ(show(parse_address_list("Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>")),
            "[Mary Smith|mary@x.test][|jdoe@example.org][Who?|one@y.test]");
  EXPECT_EQ(show(parse_address_list("<boss@nil.test>, \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>")),
            "[|boss@nil.test][Giant; \"Big\" Box|sysservices@example.net]");
  EXPECT_EQ(show(parse_address_list("A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;")),
            "[Ed Jones|c@a.test][|joe@where.test][John|jdoe@one.test]");
  EXPECT_EQ(show(parse_address_list("Undisclosed recipients:;")), "");
  EXPECT_EQ(show(parse_address_list("Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>")),
            "[Pete|pete@silly.test]");
  EXPECT_EQ(show(parse_address_list("John Q. Public <jpublic@example.com>")), "[John Q. Public|jpublic@example.com]");
}

TEST(Address, QuotedNamesWithCommas) {
  EXPECT_EQ(show(parse_address_list("\"Doe, Jane\" <jane@example.com>, bob@example.com")),
            "[Doe, Jane|jane@example.com][|bob@example.com]");
}

TEST(Address, OldStyleCommentName) {
  EXPECT_EQ(show(parse_address_list("jane@example.com (Jane Doe)")), "[Jane Doe|jane@example.com]");
}

TEST(Address, EncodedDisplayNames) {
  EXPECT_EQ(show(parse_address_list("=?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <jm@example.de>")),
            "[J\u00fcrgen M\u00fcller|jm@example.de]");
  // Outlook quotes the encoded-word; decode it anyway.
  EXPECT_EQ(show(parse_address_list("\"=?utf-8?B?QW5kcsOp?=\" <andre@example.fr>")), "[Andr\u00e9|andre@example.fr]");
  EXPECT_EQ(show(parse_address_list("Andr\xc3\xa9 <andre@example.fr>")), "[Andr\u00e9|andre@example.fr]");
}

TEST(Address, Malformed) {
  EXPECT_EQ(show(parse_address_list("Jane <jane@example.com")), "[Jane|jane@example.com]");
  EXPECT_EQ(show(parse_address_list("<@relay.test:route@example.com>")), "[|route@example.com]");
  EXPECT_EQ(show(parse_address_list("")), "");
  EXPECT_EQ(show(parse_address_list(",,,")), "");
  EXPECT_EQ(show(parse_address_list("'Jane Doe' <jane@example.com>")), "[Jane Doe|jane@example.com]");
  EXPECT_EQ(show(parse_address_list("MAILER-DAEMON")), "[|MAILER-DAEMON]");
}
