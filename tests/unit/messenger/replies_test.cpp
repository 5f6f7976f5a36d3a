// Replies and ticket state (design.md "Threading"): a customer's reply is
// posted exactly once even when its answer is lost, another message's reply
// or an agent's answer with the same text is never adopted, and a ticket's
// status is read and set. Against the in-process fake over TLS.
#include <gtest/gtest.h>

#include "mailgate/messenger/messenger_client.hpp"

#include "client_test_support.hpp"
#include "fake_messenger.hpp"

using namespace mailgate;
using namespace mailgate::messenger;
using namespace mailgate::messenger_test;
using mailgate::testing::Fault;
using mailgate::testing::kFakeAgentId;

namespace {

// A client with one user (id 1) and one ticket of theirs.
class RepliesTest : public MessengerClientTest {
 protected:
  void SetUp() override {
    auto created = run(io, client.create_user("Jane", "jane@example.com", kCtx));
    ASSERT_TRUE(created) << created.error().message;
    user = created.value();
    auto t = run(io, client.create_ticket(NewTicket{"Printer on fire", "<p>help</p>", user, {}, {}, ""}, kCtx));
    ASSERT_TRUE(t) << t.error().message;
    ticket = t.value().id;
  }
  std::vector<mailgate::testing::FakeReply> replies_in_fake() const { return fake.tickets().at(0).replies; }
  std::size_t posts_of_replies() const {
    std::size_t n = 0;
    for (const auto& r : fake.requests()) n += r.call == "replies";  // answered or not
    return n;
  }

  FakeMessenger fake{tls_fake_options()};
  MessengerClient client{io.get_executor(), settings_for(fake)};
  std::string user, ticket;
};

FoundReply found(std::string id, std::string type, std::string creator, std::string message,
                 std::optional<std::int64_t> created) {
  return FoundReply{std::move(id), std::move(creator), std::move(message), std::move(type), created};
}

}  // namespace

TEST_F(RepliesTest, AReplyIsPostedWithAnIntegerCreatorAndKeptAsTheCustomersReply) {
  auto reply = run(io, client.add_reply(ticket, NewReply{"<p>It is still burning</p>", user, {}}, kCtx));
  ASSERT_TRUE(reply) << reply.error().message;
  auto kept = replies_in_fake();
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(reply.value(), kept[0].id);  // an integer id keeps its JSON type: 5000, not "5000"
  EXPECT_EQ(kept[0].type, "reply");
  EXPECT_EQ(kept[0].creator, id_text(user));
  EXPECT_EQ(kept[0].message, "<p>It is still burning</p>");
  for (const auto& r : fake.requests()) {
    if (r.call == "replies") { EXPECT_TRUE(r.body["creator"].is_number_integer()) << r.body; }
  }
}

TEST_F(RepliesTest, AReplyWithAnAttachmentNamesUploadedMedia) {
  auto media = run(io, client.upload_media("log.txt", "smoke", kCtx));
  ASSERT_TRUE(media) << media.error().message;
  NewReply r{"<p>see <img src=\"att:" + id_text(media.value()) + "\"/></p>", user, {media.value()}};
  ASSERT_TRUE(run(io, client.add_reply(ticket, r, kCtx)));
  EXPECT_EQ(replies_in_fake().at(0).attachments, std::vector<std::string>{id_text(media.value())});
  // The fake is strict: unknown media, or an inline image not listed, is refused.
  auto unknown = run(io, client.add_reply(ticket, NewReply{"<p>x</p>", user, {"\"no-such-media\""}}, kCtx));
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().kind, ErrorKind::Permanent);
  auto unlisted = run(io, client.add_reply(ticket, NewReply{r.message, user, {}}, kCtx));
  ASSERT_FALSE(unlisted);
  EXPECT_EQ(replies_in_fake().size(), 1u);
}

TEST_F(RepliesTest, AProcessedReplyWhoseAnswerWasLostIsFoundAndAdopted) {
  fake.script_faults("replies", {Fault::DropAfterProcessing});
  auto reply = run(io, client.add_reply(ticket, NewReply{"<p>more</p>", user, {}}, kCtx));
  ASSERT_TRUE(reply) << reply.error().message;
  ASSERT_EQ(replies_in_fake().size(), 1u);
  EXPECT_EQ(reply.value(), replies_in_fake()[0].id);
  EXPECT_EQ(fake.count("find_replies"), 1u);
  EXPECT_EQ(posts_of_replies(), 1u);
}

class ALostReplyThatNeverArrived : public RepliesTest, public ::testing::WithParamInterface<Fault> {};

TEST_P(ALostReplyThatNeverArrived, IsPostedAgainOnce) {
  fake.set_slow_delay(milliseconds(100));  // Hang: held this long, then closed unprocessed
  fake.script_faults("replies", {GetParam()});
  auto reply = run(io, client.add_reply(ticket, NewReply{"<p>more</p>", user, {}}, kCtx));
  ASSERT_TRUE(reply) << reply.error().message;
  ASSERT_EQ(replies_in_fake().size(), 1u);
  EXPECT_EQ(reply.value(), replies_in_fake()[0].id);
  EXPECT_EQ(fake.count("find_replies"), 1u);  // looked up before posting again
  EXPECT_EQ(posts_of_replies(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Faults, ALostReplyThatNeverArrived, ::testing::Values(Fault::DropBeforeResponse, Fault::Hang),
                         [](const ::testing::TestParamInfo<Fault>& info) {
                           return std::string(info.param == Fault::Hang ? "Hang" : "DropBeforeResponse");
                         });

TEST_F(RepliesTest, AnotherMessagesReplyWithTheSameTextIsNotAdopted) {
  auto first = run(io, client.add_reply(ticket, NewReply{"<p>Thanks!</p>", user, {}}, kCtx));
  ASSERT_TRUE(first) << first.error().message;
  // A second mail with the same text: its POST dies unprocessed.
  fake.script_faults("replies", {Fault::DropBeforeResponse});
  auto taken = [&](const std::string& id) { return id == first.value(); };
  auto second = run(io, client.add_reply(ticket, NewReply{"<p>Thanks!</p>", user, {}}, kCtx, taken));
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_NE(second.value(), first.value());
  ASSERT_EQ(replies_in_fake().size(), 2u);
  EXPECT_EQ(second.value(), replies_in_fake()[1].id);
}

TEST_F(RepliesTest, AnAgentsAnswerWithTheSameTextIsNotAdopted) {
  // Agents are numbered apart from users: agent 1 is not user 1, though
  // both answers say creator 1. Only the type tells them apart.
  ASSERT_EQ(id_text(user), std::to_string(kFakeAgentId));
  const std::string answer = fake.add_agent_answer(id_text(ticket), "<p>OK</p>");
  ASSERT_FALSE(answer.empty());
  fake.script_faults("replies", {Fault::DropBeforeResponse});
  auto reply = run(io, client.add_reply(ticket, NewReply{"<p>OK</p>", user, {}}, kCtx));
  ASSERT_TRUE(reply) << reply.error().message;
  auto kept = replies_in_fake();
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[0].type, "answer");
  EXPECT_EQ(kept[1].type, "reply");
  EXPECT_EQ(reply.value(), kept[1].id);
  EXPECT_NE(id_text(reply.value()), answer);
}

TEST_F(RepliesTest, WhenTheLookupFailsTooTheErrorSaysMaybeProcessed) {
  fake.script_faults("replies", {Fault::DropAfterProcessing});
  fake.script_faults("find_replies", {Fault::ApiForbidden});  // refused for good: no retry
  auto reply = run(io, client.add_reply(ticket, NewReply{"<p>more</p>", user, {}}, kCtx));
  ASSERT_FALSE(reply);
  EXPECT_TRUE(reply.error().maybe_processed);
  EXPECT_EQ(posts_of_replies(), 1u);  // never posted blindly
}

TEST_F(RepliesTest, LostAnswersAreBoundedAndEndMaybeProcessed) {
  fake.script_faults("replies", {Fault::DropBeforeResponse, Fault::DropBeforeResponse, Fault::DropBeforeResponse,
                                 Fault::DropBeforeResponse});
  auto reply = run(io, client.add_reply(ticket, NewReply{"<p>more</p>", user, {}}, kCtx));
  ASSERT_FALSE(reply);
  EXPECT_TRUE(reply.error().maybe_processed);
  EXPECT_EQ(posts_of_replies(), 3u);  // kMaxLostAnswers
  EXPECT_EQ(fake.count("find_replies"), 2u);
  EXPECT_TRUE(replies_in_fake().empty());
}

TEST_F(RepliesTest, AReplyToAnUnknownTicketIsPermanentWithTheApisMessage) {
  auto reply = run(io, client.add_reply("424242", NewReply{"<p>more</p>", user, {}}, kCtx));
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().kind, ErrorKind::Permanent);
  EXPECT_EQ(reply.error().status, 404);
  EXPECT_FALSE(reply.error().maybe_processed);
  EXPECT_NE(reply.error().message.find("no ticket 424242"), std::string::npos) << reply.error().message;
}

TEST_F(RepliesTest, FindRepliesListsRepliesAndAnswersWithTheirFields) {
  ASSERT_TRUE(run(io, client.add_reply(ticket, NewReply{"<p>1</p>", user, {}}, kCtx)));
  fake.add_agent_answer(id_text(ticket), "<p>2</p>");
  auto list = run(io, client.find_replies(ticket, kCtx));
  ASSERT_TRUE(list) << list.error().message;
  ASSERT_EQ(list.value().size(), 2u);
  const auto& r = list.value()[0];
  EXPECT_EQ(r.type, "reply");
  EXPECT_EQ(r.creator, user);  // stored form, integer kept
  EXPECT_EQ(r.message, "<p>1</p>");
  EXPECT_TRUE(r.creation_date.has_value());
  EXPECT_EQ(list.value()[1].type, "answer");
  EXPECT_EQ(list.value()[1].message, "<p>2</p>");
}

TEST_F(RepliesTest, GetTicketReadsTheTicketAndAnUnknownOneIsNullopt) {
  auto missing = run(io, client.get_ticket("424242", kCtx));
  ASSERT_TRUE(missing) << missing.error().message;
  EXPECT_FALSE(missing.value().has_value());
  auto t = run(io, client.get_ticket(ticket, kCtx));
  ASSERT_TRUE(t) << t.error().message;
  ASSERT_TRUE(t.value().has_value());
  EXPECT_EQ(t.value()->ref.id, ticket);
  EXPECT_EQ(t.value()->ref.full_uuid, fake.tickets()[0].full_uuid);
  EXPECT_EQ(t.value()->title, "Printer on fire");
  EXPECT_EQ(t.value()->creator, user);
  EXPECT_EQ(t.value()->status, "open");
  EXPECT_TRUE(t.value()->creation_date.has_value());
}

TEST_F(RepliesTest, SetTicketStatusChangesTheStatusAndGetTicketSeesIt) {
  ASSERT_TRUE(fake.set_ticket_status(id_text(ticket), "closed"));  // an agent closed it
  auto closed = run(io, client.get_ticket(ticket, kCtx));
  ASSERT_TRUE(closed && closed.value());
  EXPECT_EQ(closed.value()->status, "closed");
  auto reopened = run(io, client.set_ticket_status(ticket, "open", kCtx));
  ASSERT_TRUE(reopened) << reopened.error().message;
  EXPECT_EQ(fake.tickets()[0].status, "open");
  EXPECT_EQ(fake.count("update_ticket"), 1u);
  for (const auto& r : fake.requests()) {
    if (r.call == "update_ticket") { EXPECT_EQ(r.method, "PUT"); }
  }
  auto unknown = run(io, client.set_ticket_status("424242", "open", kCtx));
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().kind, ErrorKind::Permanent);
}

TEST_F(RepliesTest, RepeatableCallsAreRetriedAfterALostAnswer) {
  // GET and PUT of a status may be sent again: no lookup, just a retry.
  fake.script_faults("update_ticket", {Fault::DropAfterProcessing});
  fake.script_faults("get_ticket", {Fault::DropBeforeResponse});
  fake.script_faults("find_replies", {Fault::Status503});
  ASSERT_TRUE(run(io, client.set_ticket_status(ticket, "solved", kCtx)));
  EXPECT_EQ(fake.tickets()[0].status, "solved");
  auto t = run(io, client.get_ticket(ticket, kCtx));
  ASSERT_TRUE(t && t.value());
  EXPECT_EQ(t.value()->status, "solved");
  ASSERT_TRUE(run(io, client.find_replies(ticket, kCtx)));
}

TEST_F(RepliesTest, TheGatewaysForbiddenOnTheseCallsCostsOneReauthentication) {
  for (const char* call : {"replies", "find_replies", "get_ticket", "update_ticket"}) {
    SCOPED_TRACE(call);
    fake.script_faults(call, {Fault::Gateway403});
    const std::size_t auths = fake.count("auth");
    const std::string name = call;
    bool ok = false;
    if (name == "replies") ok = run(io, client.add_reply(ticket, NewReply{"<p>r</p>", user, {}}, kCtx)).ok();
    if (name == "find_replies") ok = run(io, client.find_replies(ticket, kCtx)).ok();
    if (name == "get_ticket") ok = run(io, client.get_ticket(ticket, kCtx)).ok();
    if (name == "update_ticket") ok = run(io, client.set_ticket_status(ticket, "open", kCtx)).ok();
    EXPECT_TRUE(ok);
    EXPECT_EQ(fake.count("auth"), auths + 1);
  }
  EXPECT_EQ(replies_in_fake().size(), 1u);
}

TEST_F(RepliesTest, TheFakeRefusesACreatorSentAsText) {
  auto reply = run(io, client.add_reply(ticket, NewReply{"<p>x</p>", "\"1\"", {}}, kCtx));  // "1", not 1
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().status, 400);
  EXPECT_TRUE(replies_in_fake().empty());
}

// What e2e tests (harness.py FakeMessenger.set_ticket_status,
// add_agent_answer) send to the fake-messenger process.
TEST_F(RepliesTest, TheFakesControlEndpointSetsStatusesAndAddsAgentAnswers) {
  net::HttpClient http(io.get_executor(), net::TlsSettings{pki().ca, false}, net::HttpLimits{}, false);
  auto control = [&](std::string body) {
    net::HttpRequest req;
    req.method = net::http::verb::post;
    req.url = "https://localhost:" + std::to_string(fake.port()) + "/_fake/config";
    req.body = std::move(body);
    return run(io, http.send(std::move(req)));
  };
  const std::string id = id_text(ticket);
  EXPECT_EQ(control(R"({"ticket_status": {"id": ")" + id + R"(", "status": "closed"}})").status, 200);
  EXPECT_EQ(fake.tickets()[0].status, "closed");
  EXPECT_EQ(control(R"({"ticket_status": {"id": )" + id + R"(, "status": "solved"}})").status, 200);  // a number too
  EXPECT_EQ(fake.tickets()[0].status, "solved");
  EXPECT_EQ(control(R"({"ticket_status": {"id": "424242", "status": "closed"}})").status, 404);
  auto answered = control(R"({"agent_answer": {"ticket_id": ")" + id + R"(", "message": "<p>Hi</p>"}})");
  EXPECT_EQ(answered.status, 200);
  ASSERT_EQ(replies_in_fake().size(), 1u);
  EXPECT_EQ(replies_in_fake()[0].type, "answer");
  EXPECT_EQ(nlohmann::json::parse(answered.body)["answer_id"].dump(), replies_in_fake()[0].id);
  auto state = fake.state_json();
  EXPECT_EQ(state["tickets"][0]["status"], "solved");
  EXPECT_EQ(state["tickets"][0]["replies"][0]["message"], "<p>Hi</p>");
}

// ---- choose_reply ------------------------------------------------------------------

TEST(ChooseReply, TheSameCustomerTextAndTypeIsOurs) {
  NewReply mine{"<p>Thanks</p>", "12", {}};
  EXPECT_EQ(choose_reply({found("7", "reply", "12", "<p>Thanks</p>", 1000)}, mine, 1000, {}), "7");
}

TEST(ChooseReply, AnAgentsAnswerIsNeverOurs) {
  NewReply mine{"<p>Thanks</p>", "12", {}};
  EXPECT_EQ(choose_reply({found("7", "answer", "12", "<p>Thanks</p>", 1000)}, mine, 1000, {}), std::nullopt);
  EXPECT_EQ(choose_reply({found("7", "", "12", "<p>Thanks</p>", 1000)}, mine, 1000, {}), std::nullopt);
}

TEST(ChooseReply, AnotherCreatorIsNotOursButAnIdsJsonTypeDoesNotMatter) {
  NewReply mine{"<p>Thanks</p>", "12", {}};
  EXPECT_EQ(choose_reply({found("7", "reply", "13", "<p>Thanks</p>", 1000)}, mine, 1000, {}), std::nullopt);
  EXPECT_EQ(choose_reply({found("7", "reply", "", "<p>Thanks</p>", 1000)}, mine, 1000, {}), std::nullopt);
  EXPECT_EQ(choose_reply({found("7", "reply", "\"12\"", "<p>Thanks</p>", 1000)}, mine, 1000, {}), "7");
}

TEST(ChooseReply, MessagesAreComparedWithWhitespaceRunsAsOneSpace) {
  NewReply mine{"<p>Thanks,\r\n  Jane</p>\n", "12", {}};
  EXPECT_EQ(choose_reply({found("7", "reply", "12", "  <p>Thanks, Jane</p>", 1000)}, mine, 1000, {}), "7");
  EXPECT_EQ(choose_reply({found("7", "reply", "12", "<p>Thanks,Jane</p>", 1000)}, mine, 1000, {}), std::nullopt);
  EXPECT_EQ(choose_reply({found("7", "reply", "12", "<p>thanks, Jane</p>", 1000)}, mine, 1000, {}), std::nullopt);
}

// Media older than the API's hour is uploaded again before a retry, so the
// reply posted before a long outage names other inline-image ids than the
// retry would: still ours (else it would be posted twice). The text around
// the images must still be the same.
TEST(ChooseReply, InlineImageIdsDoNotTellRepliesApart) {
  NewReply mine{R"(<p>See <img src="att:9001"/></p>)", "12", {"9001"}};
  EXPECT_EQ(choose_reply({found("7", "reply", "12", R"(<p>See <img src="att:4711"/></p>)", 1000)}, mine, 1000, {}),
            "7");
  EXPECT_EQ(choose_reply({found("7", "reply", "12", R"(<p>Look <img src="att:4711"/></p>)", 1000)}, mine, 1000, {}),
            std::nullopt);
}

TEST(ChooseReply, AReplyCreatedBeforeOurFirstAttemptIsAnEarlierMails) {
  NewReply mine{"m", "12", {}};
  const std::int64_t since = 10'000;
  EXPECT_EQ(choose_reply({found("7", "reply", "12", "m", since - kCreationClockSkew - 1)}, mine, since, {}), std::nullopt);
  EXPECT_EQ(choose_reply({found("7", "reply", "12", "m", since - kCreationClockSkew)}, mine, since, {}), "7");
  // Unknown dates filter nothing.
  EXPECT_EQ(choose_reply({found("7", "reply", "12", "m", std::nullopt)}, mine, since, {}), "7");
  EXPECT_EQ(choose_reply({found("7", "reply", "12", "m", 1)}, mine, 0, {}), "7");
}

TEST(ChooseReply, ATakenReplyIsSkippedAndTheEarliestOfTheRestWins) {
  NewReply mine{"m", "12", {}};
  std::vector<FoundReply> list = {found("9", "reply", "12", "m", 1003), found("8", "reply", "12", "m", 1002),
                                  found("7", "reply", "12", "m", 1001)};
  EXPECT_EQ(choose_reply(list, mine, 1000, {}), "7");
  auto taken = [](const std::string& id) { return id == "7"; };
  EXPECT_EQ(choose_reply(list, mine, 1000, taken), "8");
  EXPECT_EQ(choose_reply({}, mine, 1000, taken), std::nullopt);
}
