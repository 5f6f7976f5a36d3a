// Who a mail is from, and whether our MX vouched for it (design.md "Senders
// and policy"): rewrite headers only for trusted lists, only the topmost
// Authentication-Results with our authserv-id.
#include <gtest/gtest.h>

#include "mailgate/mail/ticket_draft.hpp"
#include "mailgate/routing/router.hpp"

using namespace mailgate;

namespace {

mail::TicketDraft draft_of(const std::string& raw, const mail::DraftOptions& options = {}) {
  auto r = mail::build_draft(raw, options);
  EXPECT_TRUE(r.draft) << r.error;
  return r.draft ? *r.draft : mail::TicketDraft{};
}

mail::DraftOptions trusting(std::vector<std::string> lists, std::string authserv_id = "") {
  mail::DraftOptions o;
  o.trusted_lists = std::move(lists);
  o.authserv_id = std::move(authserv_id);
  return o;
}

bool has_kind(const mail::TicketDraft& d, const std::string& kind) {
  for (const auto& s : d.signals)
    if (s.kind == kind) return true;
  return false;
}

// A Google Groups post: From rewritten to the list for DMARC.
const std::string kGroupsPost =
    "From: 'Carla Rossi' via Support <support@groups.example.com>\r\n"
    "X-Original-From: Carla Rossi <carla.rossi@example.it>\r\n"
    "X-Original-Sender: carla.rossi@example.it\r\n"
    "Reply-To: Carla Rossi <carla.rossi@example.it>\r\n"
    "Precedence: list\r\n"
    "Mailing-list: list support@groups.example.com\r\n"
    "List-Id: <Support.Groups.Example.com>\r\n"
    "Subject: Export broken\r\n\r\nThe export button does nothing.\r\n";

const std::string kBody = "To: support@example.com\r\nSubject: s\r\n\r\nx\r\n";

}  // namespace

TEST(SenderTrust, RewriteHeadersWithoutAListAreNotBelieved) {
  auto d = draft_of("From: mallory@evil.example\r\nX-Original-From: ceo@customer.example\r\n"
                    "X-Original-Sender: ceo@customer.example\r\n" + kBody,
                    trusting({"support.groups.example.com"}));
  EXPECT_EQ(d.user.address, "mallory@evil.example");
  EXPECT_EQ(d.user_field, "From");
}

TEST(SenderTrust, AnUntrustedListsRewriteIsNotBelievedAndItIsBulk) {
  auto d = draft_of(kGroupsPost, trusting({"other.example.com"}));
  EXPECT_EQ(d.user.address, "support@groups.example.com");
  EXPECT_EQ(d.list_id, "support.groups.example.com");
  EXPECT_FALSE(d.trusted_list);
  EXPECT_TRUE(has_kind(d, "bulk"));
}

TEST(SenderTrust, ATrustedListsPostIsDirectMailFromTheAuthor) {
  auto d = draft_of(kGroupsPost, trusting({"support.groups.example.com"}));
  EXPECT_TRUE(d.trusted_list);
  EXPECT_EQ(d.user.address, "carla.rossi@example.it");
  EXPECT_EQ(d.user.name, "Carla Rossi");
  EXPECT_EQ(d.user_field, "X-Original-From");
  EXPECT_TRUE(d.signals.empty()) << d.signals.front().reason;
}

TEST(SenderTrust, ATrustedListRewritingOnlyFromFallsBackToReplyTo) {
  auto d = draft_of("From: 'Carla Rossi' via Support <support@groups.example.com>\r\n"
                    "Reply-To: carla.rossi@example.it\r\nList-Id: support.groups.example.com\r\n" + kBody,
                    trusting({"support.groups.example.com"}));
  EXPECT_EQ(d.user.address, "carla.rossi@example.it");
  EXPECT_EQ(d.user_field, "Reply-To");
}

TEST(SenderTrust, ATrustedListThatKeepsFromKeepsFrom) {
  auto d = draft_of("From: carla.rossi@example.it\r\nReply-To: support@groups.example.com\r\n"
                    "List-Id: <support.groups.example.com>\r\n" + kBody,
                    trusting({"support.groups.example.com"}));
  EXPECT_EQ(d.user.address, "carla.rossi@example.it");
}

TEST(SenderTrust, ListPostsEndToEndThroughTheRouter) {
  auto trusted = config::load_config_text(R"(messenger: {mode: dry-run}
smtp: {listen: ["127.0.0.1:2525"], accept: ["support@example.com"]}
senders: {trusted_lists: ["<Support.Groups.Example.com>"]}
)", "t.yaml");
  ASSERT_TRUE(trusted.config);
  mail::DraftOptions options = trusting(trusted.config->senders.trusted_lists);
  auto router = routing::Router::build(*trusted.config);
  routing::Decision d = router->decide(draft_of(kGroupsPost, options), {"x@y", {"support@example.com"}, "smtp"});
  EXPECT_EQ(d.action, routing::Action::Ticket);
  routing::Decision untrusted = router->decide(draft_of(kGroupsPost), {"x@y", {"support@example.com"}, "smtp"});
  EXPECT_EQ(untrusted.action, routing::Action::Hold);
  EXPECT_EQ(untrusted.reason, "bulk mail (Precedence: list)");
}

// ---- Authentication-Results -------------------------------------------------

TEST(Authentication, NothingIsTrustedWithoutAnAuthservId) {
  auto d = draft_of("Authentication-Results: mx.example.com; dmarc=fail header.from=x\r\nFrom: a@b.example\r\n" + kBody);
  EXPECT_EQ(d.dmarc, "");
  EXPECT_FALSE(has_kind(d, "unauthenticated"));
}

TEST(Authentication, OurMxsDmarcFailIsUnauthenticated) {
  auto d = draft_of("Authentication-Results: MX.example.com (our MX) 1; spf=pass smtp.mailfrom=b.example;\r\n"
                    " dmarc=fail (p=reject dis=none) header.from=b.example\r\nFrom: a@b.example\r\n" + kBody,
                    trusting({}, "mx.example.com"));
  EXPECT_EQ(d.dmarc, "fail");
  EXPECT_TRUE(has_kind(d, "unauthenticated"));
}

TEST(Authentication, AForgedHeaderBelowOursDoesNotCount) {
  // The sender wrote "pass" with our id; our MX's own verdict sits on top.
  auto d = draft_of("Authentication-Results: mx.example.com; dmarc=fail header.from=b.example\r\n"
                    "Received: from evil by mx.example.com\r\n"
                    "Authentication-Results: mx.example.com; dmarc=pass header.from=b.example\r\n"
                    "From: a@b.example\r\n" + kBody,
                    trusting({}, "mx.example.com"));
  EXPECT_EQ(d.dmarc, "fail");
  // And the other way round: a forged "fail" below our "pass" does not hold good mail.
  auto good = draft_of("Authentication-Results: mx.example.com; dmarc=pass\r\n"
                       "Authentication-Results: mx.example.com; dmarc=fail\r\nFrom: a@b.example\r\n" + kBody,
                       trusting({}, "mx.example.com"));
  EXPECT_EQ(good.dmarc, "pass");
  EXPECT_FALSE(has_kind(good, "unauthenticated"));
}

TEST(Authentication, OtherServersVerdictsAndCommentsAreNotOurs) {
  auto d = draft_of("Authentication-Results: relay.example.net; dmarc=fail\r\n"
                    "Authentication-Results: mx.example.com.evil.example; dmarc=fail\r\n"
                    "Authentication-Results: mx.example.com; spf=pass (dmarc=fail in a comment) smtp.mailfrom=b\r\n"
                    "From: a@b.example\r\n" + kBody,
                    trusting({}, "mx.example.com"));
  EXPECT_EQ(d.dmarc, "none");
  EXPECT_FALSE(has_kind(d, "unauthenticated"));
}

TEST(Authentication, UnauthenticatedHoldOrAccept) {
  const std::string base = R"(messenger: {mode: dry-run}
smtp: {listen: ["127.0.0.1:2525"], accept: ["support@example.com"]}
)";
  auto failing = draft_of("Authentication-Results: mx.example.com; dmarc=fail\r\nFrom: a@b.example\r\n" + kBody,
                          trusting({}, "mx.example.com"));
  auto hold = config::load_config_text(base + "senders: {authserv_id: mx.example.com, unauthenticated: hold}\n", "t");
  auto accept = config::load_config_text(base + "senders: {authserv_id: mx.example.com}\n", "t");
  ASSERT_TRUE(hold.config && accept.config);
  routing::Decision held = routing::Router::build(*hold.config)->decide(failing, {});
  EXPECT_EQ(held.action, routing::Action::Hold);
  EXPECT_EQ(held.kind, "unauthenticated");
  EXPECT_EQ(held.reason, "unauthenticated sender (dmarc=fail in Authentication-Results of mx.example.com)");
  EXPECT_EQ(routing::Router::build(*accept.config)->decide(failing, {}).action, routing::Action::Ticket);
}
