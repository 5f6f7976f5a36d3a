// The processor's reply path against the fake Messenger (design.md
// "Threading"): a reply joins its ticket, a stranger or an unknown ticket
// gets a new one, closed tickets follow threading.closed, a reply is posted
// exactly once across a crash, and a reply waits for its queued parent.
#include "mailgate/pipeline/processor.hpp"
#include "mailgate/pipeline/spool_ledger.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "fake_client_settings.hpp"
#include "fake_messenger.hpp"

namespace fs = std::filesystem;
using namespace mailgate;

namespace {

struct ReplyRig {
  fs::path dir = fs::temp_directory_path() / ("mailgate-reply-test-" + std::to_string(::getpid()) + "-" +
                                              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::unique_ptr<spool::Spool> spool;
  std::unique_ptr<pipeline::Ledger> ledger;
  mailgate::testing::FakeMessenger fake;
  net::asio::io_context io;
  std::unique_ptr<messenger::MessengerClient> client;
  std::unique_ptr<pipeline::Processor> processor;

  explicit ReplyRig(config::ThreadingConfig threading = {}) {
    fs::remove_all(dir);
    spool = spool::Spool::open(dir.string(), {0, 0});
    ledger = pipeline::make_spool_ledger(*spool);
    client = std::make_unique<messenger::MessengerClient>(io.get_executor(),
                                                          mailgate::pipeline::test::fake_client_settings(fake));
    pipeline::ProcessorSettings p;
    p.threading = std::move(threading);
    processor = std::make_unique<pipeline::Processor>(io.get_executor(), *ledger, client.get(), p);
  }
  ~ReplyRig() { fs::remove_all(dir); }

  std::string accept(const std::string& from, const std::string& subject, const std::string& message_id,
                     const std::string& thread_headers = "") {
    return spool->accept("From: " + from + "\r\nSubject: " + subject + "\r\nMessage-ID: <" + message_id + ">\r\n" +
                             thread_headers + "\r\n<p>new text " + message_id + "</p>\r\n",
                         "smtp")
        .id;
  }
  void process(const std::string& id) {
    net::asio::co_spawn(io, processor->process(*spool->get(id)), net::asio::detached);
    io.restart();
    io.run();
  }
  std::string first_ticket() {  // the root mail's ticket, as text
    auto root = accept("Jane <jane@example.com>", "Printer on fire", "root@x");
    process(root);
    EXPECT_EQ(fake.tickets().size(), 1u);
    return fake.tickets().at(0).id;
  }
  std::vector<mailgate::testing::FakeReply> replies(const std::string& ticket) {
    for (const auto& t : fake.tickets())
      if (t.id == ticket) return t.replies;
    return {};
  }
};

}  // namespace

TEST(Replies, AReplyByInReplyToJoinsTheTicketAndIsIndexedNotTakenAsItsTicket) {
  ReplyRig rig;
  const std::string ticket = rig.first_ticket();
  auto id = rig.accept("Jane <JANE@example.com>", "Re: Printer on fire", "r1@x", "In-Reply-To: <root@x>\r\n");
  rig.process(id);
  ASSERT_EQ(rig.fake.tickets().size(), 1u);
  auto replies = rig.replies(ticket);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].type, "reply");
  EXPECT_EQ(replies[0].creator, rig.fake.tickets()[0].creator);
  EXPECT_NE(replies[0].message.find("new text r1@x"), std::string::npos) << replies[0].message;
  auto rec = rig.spool->get(id);
  EXPECT_EQ(rec->state, spool::State::Done) << rec->last_error;
  EXPECT_EQ(rec->ticket_id, "");
  EXPECT_EQ(messenger::id_text(rec->joined_ticket), ticket);
  EXPECT_EQ(rec->thread_by, "references");
  EXPECT_EQ(messenger::id_text(rec->reply_id), replies[0].id);
  EXPECT_EQ(rec->outcome, "reply " + rec->reply_id + " on ticket " + rec->joined_ticket + " (by references)");
  EXPECT_NE(rig.spool->message_with_ticket(rec->joined_ticket), id);
  // A reply to the reply (References only) joins the same ticket.
  auto id2 = rig.accept("jane@example.com", "Re: Re: Printer", "r2@x", "References: <root@x> <r1@x>\r\n");
  rig.process(id2);
  EXPECT_EQ(rig.fake.tickets().size(), 1u);
  EXPECT_EQ(rig.replies(ticket).size(), 2u);
}

TEST(Replies, ByTheSubjectTagOnlyTheCreatorJoinsAStrangerGetsANewTicket) {
  ReplyRig rig;
  const std::string ticket = rig.first_ticket();
  auto mine = rig.accept("jane@example.com", "Re: [#" + ticket + "] Printer", "s1@x");
  rig.process(mine);
  EXPECT_EQ(rig.replies(ticket).size(), 1u);
  EXPECT_EQ(rig.spool->get(mine)->thread_by, "subject");
  auto stranger = rig.accept("Mallory <mallory@example.com>", "Re: [#" + ticket + "] Printer", "s2@x");
  rig.process(stranger);
  EXPECT_EQ(rig.replies(ticket).size(), 1u);
  ASSERT_EQ(rig.fake.tickets().size(), 2u);
  auto rec = rig.spool->get(stranger);
  EXPECT_EQ(rec->joined_ticket, "");
  EXPECT_NE(rec->outcome.find("new ticket: sender not the ticket's creator"), std::string::npos) << rec->outcome;
  // With allow: any, a colleague joins.
  config::ThreadingConfig any;
  any.allow = config::ThreadAllow::Any;
  rig.processor->reconfigure([&] {
    pipeline::ProcessorSettings p;
    p.threading = any;
    return p;
  }());
  auto colleague = rig.accept("bob@example.com", "Re: [#" + ticket + "] Printer", "s3@x");
  rig.process(colleague);
  EXPECT_EQ(rig.replies(ticket).size(), 2u);
}

TEST(Replies, ASubjectNamingATicketTheApiDoesNotKnowGivesANewTicket) {
  ReplyRig rig;
  auto id = rig.accept("jane@example.com", "Re: [#99999] lost", "u1@x");
  rig.process(id);
  ASSERT_EQ(rig.fake.tickets().size(), 1u);
  auto rec = rig.spool->get(id);
  EXPECT_EQ(rec->state, spool::State::Done) << rec->last_error;
  EXPECT_NE(rec->outcome.find("unknown to the API"), std::string::npos) << rec->outcome;
}

TEST(Replies, AClosedTicketIsReopenedAnsweredOrFollowedUpAsConfigured) {
  for (auto policy : {config::ClosedTicket::Reopen, config::ClosedTicket::Reply, config::ClosedTicket::NewTicket}) {
    config::ThreadingConfig t;
    t.closed = policy;
    ReplyRig rig(t);
    const std::string ticket = rig.first_ticket();
    ASSERT_TRUE(rig.fake.set_ticket_status(ticket, "Solved"));
    auto id = rig.accept("jane@example.com", "Re: Printer", "c1@x", "In-Reply-To: <root@x>\r\n");
    rig.process(id);
    const auto tickets = rig.fake.tickets();
    if (policy == config::ClosedTicket::NewTicket) {
      ASSERT_EQ(tickets.size(), 2u);
      EXPECT_TRUE(rig.replies(ticket).empty());
      EXPECT_EQ(tickets[0].status, "Solved");
      const std::string reference = tickets[0].full_uuid.empty() ? ticket : tickets[0].full_uuid;
      EXPECT_EQ(tickets[1].message.rfind("<p>Follow-up to closed ticket #" + reference + "</p>", 0), 0u)
          << tickets[1].message;
    } else {
      ASSERT_EQ(tickets.size(), 1u);
      EXPECT_EQ(rig.replies(ticket).size(), 1u);
      EXPECT_EQ(tickets[0].status, policy == config::ClosedTicket::Reopen ? "open" : "Solved");
    }
  }
}

// Killed inside the reply POST: the reply is looked up and adopted when the
// POST had arrived, posted again when not; exactly one reply either way.
TEST(Replies, AReplyWhosePostArrivedBeforeACrashIsAdoptedNotPostedAgain) {
  for (bool arrived : {true, false}) {
    ReplyRig rig;
    const std::string ticket = rig.first_ticket();
    auto id = rig.accept("jane@example.com", "Re: Printer", "k1@x", "In-Reply-To: <root@x>\r\n");
    // What the killed process had recorded: the ticket joined, the POST marked.
    const std::string user = rig.fake.tickets()[0].creator;
    rig.spool->set_user(id, user);
    rig.spool->set_thread(id, ticket, "references");
    rig.spool->mark_reply_post_started(id);
    if (arrived) {
      // The POST the killed process sent, exactly as the processor builds it.
      auto draft = mail::build_draft(rig.spool->read_raw(id)).draft;
      messenger::NewReply r{draft->reply_message, user, {}};
      std::optional<messenger::Result<std::string>> sent;
      net::asio::co_spawn(rig.io, rig.client->add_reply(ticket, r, messenger::CallContext{id}),
                          [&](std::exception_ptr, messenger::Result<std::string> v) { sent = std::move(v); });
      rig.io.restart();
      rig.io.run();
      ASSERT_TRUE(sent && *sent);
    }
    ::testing::internal::CaptureStderr();
    rig.process(id);
    const std::string log = ::testing::internal::GetCapturedStderr();
    ASSERT_EQ(rig.replies(ticket).size(), 1u) << log;
    auto rec = rig.spool->get(id);
    EXPECT_EQ(rec->state, spool::State::Done) << rec->last_error;
    EXPECT_EQ(messenger::id_text(rec->reply_id), rig.replies(ticket)[0].id);
    EXPECT_NE(log.find(arrived ? "pipeline.reply_adopted" : "pipeline.reply_reposted"), std::string::npos) << log;
  }
}

TEST(Replies, AReplyWaitsForItsQueuedParentWithoutCountingAnAttempt) {
  ReplyRig rig;
  auto parent = rig.accept("jane@example.com", "Printer", "p@x");
  auto child = rig.accept("jane@example.com", "Re: Printer", "c@x", "In-Reply-To: <p@x>\r\n");
  const auto before = static_cast<std::int64_t>(std::time(nullptr));
  rig.process(child);
  auto waiting = rig.spool->get(child);
  EXPECT_EQ(waiting->state, spool::State::Queued);
  EXPECT_EQ(waiting->attempts, 0);
  EXPECT_GT(waiting->next_attempt_at, before);
  EXPECT_NE(waiting->last_error.find(parent), std::string::npos) << waiting->last_error;
  EXPECT_TRUE(rig.fake.requests().empty());
  rig.process(parent);
  rig.process(child);
  ASSERT_EQ(rig.fake.tickets().size(), 1u);
  EXPECT_EQ(rig.replies(rig.fake.tickets()[0].id).size(), 1u);
}

TEST(Replies, ADryRunWritesTheReplyItWouldPost) {
  const fs::path dir = fs::temp_directory_path() / ("mailgate-reply-dry-run-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto spool = spool::Spool::open(dir.string(), {0, 0});
  auto id = spool->accept("From: jane@example.com\r\nSubject: Re: [#42] Printer\r\nMessage-ID: <d@x>\r\n\r\nhello\r\n",
                          "smtp")
                .id;
  net::asio::io_context io;
  pipeline::ProcessorSettings p;
  p.dry_run = true;
  auto ledger = pipeline::make_spool_ledger(*spool);
  pipeline::Processor processor(io.get_executor(), *ledger, nullptr, p);
  net::asio::co_spawn(io, processor.process(*spool->get(id)), net::asio::detached);
  io.run();
  std::ifstream in(dir / "dry-run" / (id + ".json"));
  ASSERT_TRUE(in);
  auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["action"], "reply");
  EXPECT_EQ(j["thread"], (nlohmann::json{{"by", "subject"}, {"ticket", 42}}));
  EXPECT_EQ(j["reply"]["ticket"], 42);
  EXPECT_NE(j["reply"]["message"].get<std::string>().find("hello"), std::string::npos);
  fs::remove_all(dir);
}
