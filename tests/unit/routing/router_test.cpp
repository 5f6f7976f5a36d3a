// Routes, policy kinds and flood (design.md "Routing", "Senders and policy"):
// real drafts from raw mail, a config from YAML, one rule per test.
#include "mailgate/routing/router.hpp"

#include <gtest/gtest.h>

#include "mailgate/mail/ticket_draft.hpp"

using namespace mailgate;
using routing::Action;
using routing::Decision;
using routing::Envelope;
using routing::Router;

namespace {

const std::string kBase = R"(messenger:
  mode: dry-run
smtp:
  listen: ["127.0.0.1:2525"]
  accept: ["support@example.com", "@help.example.com"]
imap:
  - name: support
    host: imap.example.com
    username: inbox@example.com
    password_env: PATH   # any variable that is set: the test never logs in
tickets:
  defaults: {source: 5, queue: 1, tags: [mail]}
)";

config::Config config_of(const std::string& extra) {
  auto r = config::load_config_text(kBase + extra, "r.yaml");
  for (const auto& e : r.errors) ADD_FAILURE() << e.to_string();
  return r.config ? *r.config : config::Config{};
}

std::unique_ptr<Router> router_of(const std::string& extra) {
  std::vector<std::string> errors;
  auto router = Router::build(config_of(extra), &errors);
  for (const auto& e : errors) ADD_FAILURE() << e;
  return router;
}

mail::TicketDraft draft_of(const std::string& raw, const mail::DraftOptions& options = {}) {
  auto r = mail::build_draft(raw, options);
  EXPECT_TRUE(r.draft) << r.error;
  return r.draft ? *r.draft : mail::TicketDraft{};
}

// A plain customer mail with `headers` added on top.
mail::TicketDraft mail_with(const std::string& headers = "", const std::string& subject = "Printer on fire",
                            const std::string& from = "Jane <jane@customer.example>") {
  return draft_of(headers + "From: " + from + "\r\nTo: support@example.com\r\nSubject: " + subject + "\r\n\r\nHello\r\n");
}

Envelope to(std::vector<std::string> recipients, std::string source = "smtp", std::string mail_from = "jane@customer.example") {
  return Envelope{std::move(mail_from), std::move(recipients), std::move(source)};
}

const Envelope kSupport = to({"support@example.com"});

std::string route(const std::string& match, const std::string& action = "ticket") {
  return "routes:\n  - name: r\n    match: " + match + "\n    action: " + action + "\n    ticket: {queue: 3}\n";
}

// Does a route with this match: select the mail?
bool matches(const std::string& match, const mail::TicketDraft& draft, const Envelope& envelope = kSupport) {
  auto router = router_of(route(match));
  return router && router->decide(draft, envelope).route == "r";
}

}  // namespace

// ---- matchers -------------------------------------------------------------

TEST(RouteMatch, RecipientExactAndDomainCaseInsensitive) {
  auto d = mail_with();
  EXPECT_TRUE(matches(R"({recipient: ["Support@Example.COM"]})", d, to({"support@example.com"})));
  EXPECT_TRUE(matches(R"({recipient: ["@help.example.com"]})", d, to({"billing@help.example.com"})));
  EXPECT_FALSE(matches(R"({recipient: ["@help.example.com"]})", d, to({"billing@sub.help.example.com"})));
  EXPECT_FALSE(matches(R"({recipient: ["@help.example.com"]})", d, to({"help.example.com@evil.example"})));
  EXPECT_FALSE(matches(R"({recipient: ["billing@example.com"]})", d, to({"support@example.com"})));
}

TEST(RouteMatch, AnyRecipientMatchingAnyEntryIsEnough) {
  auto d = mail_with();
  EXPECT_TRUE(matches(R"({recipient: ["billing@example.com", "sales@example.com"]})", d,
                      to({"support@example.com", "sales@example.com"})));
  EXPECT_FALSE(matches(R"({recipient: ["billing@example.com"]})", d, to({})));
}

TEST(RouteMatch, FromIsTheTicketsUser) {
  auto d = mail_with("", "s", "Boss <Boss@BigCustomer.example>");
  EXPECT_TRUE(matches(R"({from: ["@bigcustomer.example"]})", d));
  EXPECT_TRUE(matches(R"({from: ["boss@bigcustomer.example"]})", d));
  EXPECT_FALSE(matches(R"({from: ["@customer.example"]})", d));
  // MAIL FROM is not the ticket's user.
  EXPECT_FALSE(matches(R"({from: ["@bigcustomer.example"]})", mail_with(), to({"support@example.com"}, "smtp", "x@bigcustomer.example")));
}

TEST(RouteMatch, SubjectIsAnRe2SearchOnTheDecodedSubject) {
  EXPECT_TRUE(matches(R"({subject: "(?i)invoice"})", mail_with("", "Your INVOICE 42")));
  EXPECT_TRUE(matches(R"({subject: "Rechnung über"})", mail_with("", "=?UTF-8?Q?Rechnung_=C3=BCber_42?=")));
  EXPECT_FALSE(matches(R"({subject: "^invoice"})", mail_with("", "Re: invoice")));
  EXPECT_FALSE(matches(R"({subject: "invoice"})", mail_with("", "Printer")));
}

TEST(RouteMatch, HeaderMatchesAnyFieldOfThatNameDecoded) {
  EXPECT_TRUE(matches(R"({header: {X-Priority: "^1"}})", mail_with("X-Priority: 1 (Highest)\r\n")));
  EXPECT_TRUE(matches(R"({header: {x-priority: "^1"}})", mail_with("X-Priority: 3\r\nX-PRIORITY: 1\r\n")));
  EXPECT_TRUE(matches(R"({header: {X-Team: "^Zürich$"}})", mail_with("X-Team: =?UTF-8?B?WsO8cmljaA==?=\r\n")));
  EXPECT_FALSE(matches(R"({header: {X-Priority: "^1"}})", mail_with("X-Priority: 3\r\n")));
  EXPECT_FALSE(matches(R"({header: {X-Priority: ".*"}})", mail_with()));  // absent never matches
}

TEST(RouteMatch, Source) {
  auto d = mail_with();
  EXPECT_TRUE(matches(R"({source: ["smtp", "imap:support"]})", d, to({}, "imap:support")));
  EXPECT_FALSE(matches(R"({source: ["imap:support"]})", d, to({}, "smtp")));
}

TEST(RouteMatch, EveryGivenKeyMustMatch) {
  const std::string both = R"({recipient: ["@example.com"], subject: "invoice"})";
  EXPECT_TRUE(matches(both, mail_with("", "invoice 1")));
  EXPECT_FALSE(matches(both, mail_with("", "invoice 1"), to({"a@other.example"})));
  EXPECT_FALSE(matches(both, mail_with("", "printer")));
}

TEST(RouteMatch, NoMatchKeysMatchesEverything) {
  auto router = router_of("routes:\n  - {name: all, action: ticket}\n");
  EXPECT_EQ(router->decide(mail_with(), kSupport).route, "all");
}

// ---- order and fields -----------------------------------------------------

TEST(Routes, FirstMatchWins) {
  auto router = router_of(R"(routes:
  - {name: billing, match: {subject: invoice}, ticket: {queue: 3}}
  - {name: any-support, match: {recipient: ["support@example.com"]}, ticket: {queue: 4}}
)");
  Decision billing = router->decide(mail_with("", "invoice"), kSupport);
  EXPECT_EQ(billing.route, "billing");
  EXPECT_EQ(billing.ticket_fields["queue"], 3);
  Decision other = router->decide(mail_with("", "printer"), kSupport);
  EXPECT_EQ(other.route, "any-support");
  EXPECT_EQ(other.ticket_fields["queue"], 4);
  EXPECT_FALSE(router->decide(mail_with("", "printer"), to({"x@help.example.com"})).route);
}

TEST(Routes, TicketFieldsMergeOverDefaultsKeepingTypes) {
  auto router = router_of(R"(routes:
  - name: vip
    match: {from: ["@customer.example"]}
    ticket: {queue: 3, priority: "2", urgent: true, tags: [vip], extra: {a: 1.5}}
)");
  Decision d = router->decide(mail_with(), kSupport);
  EXPECT_EQ(d.action, Action::Ticket);
  EXPECT_EQ(d.reason, "route vip");
  const auto& f = d.ticket_fields;
  EXPECT_EQ(f["source"], 5);            // from tickets.defaults, untouched
  EXPECT_TRUE(f["queue"].is_number_integer());
  EXPECT_EQ(f["queue"], 3);             // the route's value wins
  EXPECT_TRUE(f["priority"].is_string());  // quoted stays a string
  EXPECT_EQ(f["urgent"], true);
  EXPECT_EQ(f["tags"], nlohmann::json::array({"vip"}));
  EXPECT_EQ(f["extra"]["a"], 1.5);
}

TEST(Routes, NoRouteGivesTheDefaultsAndNoReason) {
  Decision d = router_of("")->decide(mail_with(), kSupport);
  EXPECT_EQ(d.action, Action::Ticket);
  EXPECT_FALSE(d.route);
  EXPECT_EQ(d.reason, "");
  EXPECT_EQ(d.ticket_fields, (nlohmann::json{{"source", 5}, {"queue", 1}, {"tags", {"mail"}}}));
}

TEST(Routes, IgnoreAndHoldRoutesDecideBeforePolicy) {
  auto spam = mail_with("Precedence: bulk\r\n", "WIN BIG");
  Decision ignored = router_of(route(R"({subject: "WIN"})", "ignore"))->decide(spam, kSupport);
  EXPECT_EQ(ignored.action, Action::Ignore);
  EXPECT_EQ(ignored.kind, "route");
  EXPECT_EQ(ignored.reason, "route r");
  Decision held = router_of(route(R"({subject: "WIN"})", "hold"))->decide(mail_with("", "WIN"), kSupport);
  EXPECT_EQ(held.action, Action::Hold);
  EXPECT_EQ(held.kind, "route");
}

TEST(Routes, ATicketRouteSetsFieldsButDoesNotOverridePolicy) {
  auto router = router_of(route(R"({recipient: ["support@example.com"]})", "ticket"));
  Decision d = router->decide(mail_with("Auto-Submitted: auto-replied\r\n"), kSupport);
  EXPECT_EQ(d.action, Action::Ignore);
  EXPECT_EQ(d.kind, "auto_reply");
  EXPECT_EQ(d.route, "r");
  EXPECT_EQ(d.ticket_fields["queue"], 3);
}

TEST(Routes, BadRegexIsRefusedWithItsPosition) {
  auto cfg = config_of(R"(routes:
  - name: bad
    match:
      subject: "(unclosed"
  - name: bad-header
    match: {header: {X-A: "ok", X-B: "[z-a]"}}
)");
  std::vector<std::string> errors;
  EXPECT_FALSE(Router::build(cfg, &errors));
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].rfind("r.yaml:16:16: route 'bad': match.subject is not a valid regular expression: ", 0), 0u)
      << errors[0];
  EXPECT_EQ(errors[1].rfind("r.yaml:18:38: route 'bad-header': match.header.X-B is not a valid regular expression", 0), 0u)
      << errors[1];
}

// ---- policy kinds -----------------------------------------------------------

struct KindCase {
  const char* name;
  std::string headers;
  std::string from;
  const char* kind;
  const char* policy_key;  // policy.<key>: hold|ticket changes the outcome
};

class PolicyKind : public testing::TestWithParam<KindCase> {};

TEST_P(PolicyKind, DefaultIsIgnoreOrHoldAndTheConfiguredActionApplies) {
  const KindCase& c = GetParam();
  auto draft = mail_with(c.headers, "Re: something", c.from);
  Decision d = router_of("")->decide(draft, kSupport);
  EXPECT_EQ(d.kind, c.kind);
  EXPECT_NE(d.action, Action::Ticket);
  EXPECT_FALSE(d.reason.empty());
  EXPECT_EQ(router_of(std::string("policy: {") + c.policy_key + ": hold}\n")->decide(draft, kSupport).action, Action::Hold);
  EXPECT_EQ(router_of(std::string("policy: {") + c.policy_key + ": ignore}\n")->decide(draft, kSupport).action, Action::Ignore);
  Decision ticket = router_of(std::string("policy: {") + c.policy_key + ": ticket}\n")->decide(draft, kSupport);
  EXPECT_EQ(ticket.action, Action::Ticket);
  EXPECT_EQ(ticket.kind, "");
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, PolicyKind,
    testing::Values(
        KindCase{"own_address", "", "Support <Support@example.com>", "own_address", "own_address"},
        KindCase{"imap_username", "", "inbox@example.com", "own_address", "own_address"},
        KindCase{"loop", "X-Loop: mailgate\r\n", "jane@customer.example", "loop", "own_address"},
        KindCase{"null_return_path", "Return-Path: <>\r\n", "jane@customer.example", "bounce", "bounce"},
        KindCase{"mailer_daemon", "", "MAILER-DAEMON@mx.example.net", "bounce", "bounce"},
        KindCase{"auto_submitted", "Auto-Submitted: auto-replied\r\n", "jane@customer.example", "auto_reply", "auto_reply"},
        KindCase{"x_autoreply", "X-Autoreply: yes\r\n", "jane@customer.example", "auto_reply", "auto_reply"},
        KindCase{"x_auto_response_suppress", "X-Auto-Response-Suppress: All\r\n", "jane@customer.example", "auto_reply",
                 "auto_reply"},
        KindCase{"precedence_auto_reply", "Precedence: auto_reply\r\n", "jane@customer.example", "auto_reply",
                 "auto_reply"},
        KindCase{"precedence_bulk", "Precedence: bulk\r\n", "jane@customer.example", "bulk", "bulk"},
        KindCase{"list_id_only", "List-Id: News <news.example.org>\r\n", "jane@customer.example", "bulk", "bulk"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Policy, DefaultsIgnoreAutoRepliesBouncesLoopsAndHoldBulk) {
  auto router = router_of("");
  EXPECT_EQ(router->decide(mail_with("Precedence: list\r\n"), kSupport).action, Action::Hold);
  EXPECT_EQ(router->decide(mail_with("X-Autoreply: yes\r\n"), kSupport).action, Action::Ignore);
  EXPECT_EQ(router->decide(mail_with("X-Loop: mailgate\r\n"), kSupport).action, Action::Ignore);
  EXPECT_EQ(router->decide(mail_with(), kSupport).action, Action::Ticket);
}

TEST(Policy, OwnAddressIsOnlyTheFullAcceptAddressesNotTheirDomains) {
  auto router = router_of("");
  // @help.example.com is accepted mail for a domain, not our own sender.
  EXPECT_EQ(router->decide(mail_with("", "s", "colleague@help.example.com"), kSupport).action, Action::Ticket);
  Decision own = router->decide(mail_with("", "s", "support@example.com"), kSupport);
  EXPECT_EQ(own.reason, "our own address (From: support@example.com)");
}

TEST(Policy, NullMailFromIsABounceOnlyWhereTheEnvelopeIsKnown) {
  auto router = router_of("");
  Decision smtp = router->decide(mail_with(), to({"support@example.com"}, "smtp", ""));
  EXPECT_EQ(smtp.kind, "bounce");
  EXPECT_EQ(smtp.reason, "bounce (null sender, MAIL FROM:<>)");
  EXPECT_EQ(router->decide(mail_with(), to({"support@example.com"}, "lmtp", "")).kind, "bounce");
  EXPECT_EQ(router->decide(mail_with(), to({"support@example.com"}, "imap:support", "")).action, Action::Ticket);
  EXPECT_EQ(router->decide(mail_with(), to({"support@example.com"}, "deliver", "")).action, Action::Ticket);
}

TEST(Policy, KindsAreWeighedInDesignOrder) {
  // A DSN that also says Auto-Submitted is a bounce: bounce comes before auto-reply.
  auto router = router_of("policy: {bounce: hold}\n");
  Decision d = router->decide(mail_with("Return-Path: <>\r\nAuto-Submitted: auto-replied\r\nPrecedence: bulk\r\n"), kSupport);
  EXPECT_EQ(d.kind, "bounce");
  EXPECT_EQ(d.action, Action::Hold);
  // With bounces ticketed, the next kind that is not a ticket decides.
  d = router_of("policy: {bounce: ticket}\n")
          ->decide(mail_with("Return-Path: <>\r\nAuto-Submitted: auto-replied\r\n"), kSupport);
  EXPECT_EQ(d.kind, "auto_reply");
  EXPECT_EQ(d.action, Action::Ignore);
  // Our own X-Loop comes before the envelope's null sender.
  d = router_of("policy: {own_address: hold}\n")
          ->decide(mail_with("X-Loop: mailgate\r\n"), to({"support@example.com"}, "smtp", ""));
  EXPECT_EQ(d.kind, "loop");
  EXPECT_EQ(d.action, Action::Hold);
}

TEST(Policy, NoSenderIsAlwaysIgnoredEvenByAPerson) {
  auto router = router_of("");
  auto d = draft_of("To: support@example.com\r\nSubject: who\r\n\r\nx");
  EXPECT_EQ(router->decide(d, kSupport).kind, "no_sender");
  EXPECT_EQ(router->decide(d, kSupport, /*person_decided=*/true).action, Action::Ignore);
}

TEST(Policy, PersonDecidedSkipsPolicyAndRouteActionsButKeepsRouteFields) {
  auto router = router_of(route(R"({subject: "WIN"})", "hold"));
  Decision held_by_route = router->decide(mail_with("", "WIN"), kSupport, true);
  EXPECT_EQ(held_by_route.action, Action::Ticket);
  EXPECT_EQ(held_by_route.route, "r");
  EXPECT_EQ(held_by_route.ticket_fields["queue"], 3);
  Decision bulk = router->decide(mail_with("Precedence: bulk\r\n", "WIN"), kSupport, true);
  EXPECT_EQ(bulk.action, Action::Ticket);
  EXPECT_EQ(bulk.ticket_fields["queue"], 3);
  EXPECT_EQ(router_of("")->decide(mail_with("X-Autoreply: yes\r\n"), kSupport, true).action, Action::Ticket);
}

// ---- flood ------------------------------------------------------------------

TEST(Flood, OverTheLimitTakesTheFloodAction) {
  auto router = router_of("policy: {flood: {max: 20, per: 1h, action: hold}}\n");
  Decision ticket = router->decide(mail_with(), kSupport);
  Decision at_limit = router->flood(ticket, "a@b", 19);  // this is the 20th: allowed
  EXPECT_EQ(at_limit.action, Action::Ticket);
  EXPECT_EQ(at_limit.kind, "");
  Decision over = router->flood(ticket, "a@b", 20);
  EXPECT_EQ(over.action, Action::Hold);
  EXPECT_EQ(over.kind, "flood");
  EXPECT_EQ(over.reason, "flood: 21 tickets from a@b within 1h (limit 20)");
  EXPECT_EQ(router_of("policy: {flood: {max: 2, per: 30m, action: ignore}}\n")->flood(ticket, "x@y", 5).reason,
            "flood: 6 tickets from x@y within 30m (limit 2)");
}

TEST(Flood, KeepsRouteFieldsAndLeavesNonTicketsAlone) {
  auto router = router_of(route(R"({subject: "WIN"})", "ticket") + "policy: {flood: {max: 1, action: ignore}}\n");
  Decision over = router->flood(router->decide(mail_with("", "WIN"), kSupport), "a@b", 3);
  EXPECT_EQ(over.action, Action::Ignore);
  EXPECT_EQ(over.route, "r");
  EXPECT_EQ(over.ticket_fields["queue"], 3);
  Decision held = router->decide(mail_with("Precedence: bulk\r\n"), kSupport);
  EXPECT_EQ(router->flood(held, "a@b", 100).kind, "bulk");
}

TEST(Flood, ZeroMaxMeansNoLimit) {
  auto router = router_of("policy: {flood: {max: 0}}\n");
  EXPECT_EQ(router->flood(router->decide(mail_with(), kSupport), "a@b", 100000).action, Action::Ticket);
}
