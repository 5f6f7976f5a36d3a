// The processor's own rules: placeholders become exactly the uploaded ids,
// and a broken ledger (spool) never loses a message or stops silently.
#include "mailgate/metrics/metrics.hpp"
#include "mailgate/pipeline/processor.hpp"
#include "mailgate/pipeline/spool_ledger.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "fake_client_settings.hpp"
#include "fake_messenger.hpp"
#include "memory_ledger.hpp"

namespace fs = std::filesystem;
using namespace mailgate;

TEST(Processor, PlaceholdersAreReplacedWholly) {
  std::map<std::string, std::string> ids = {{"media-1", "uuid-one"}, {"media-10", "uuid-ten"}};
  EXPECT_EQ(pipeline::resolve_placeholders(R"(<img src="att:media-10"/><img src="att:media-1"/>)", ids),
            R"(<img src="att:uuid-ten"/><img src="att:uuid-one"/>)");
}

// ---- a broken ledger (disk, database): MemoryLedger told to fail, no SQLite ----
namespace {

struct FaultRig {
  pipeline::MemoryLedger ledger;
  net::asio::io_context io;
  messenger::MessengerClient client{io.get_executor(), [] {
                                      messenger::MessengerSettings unreachable;
                                      unreachable.auth_url = "https://127.0.0.1:1/v1";  // never called: the error comes first
                                      // Were it called (a switch that failed nothing), it fails at once.
                                      unreachable.retry_for = std::chrono::milliseconds(0);
                                      return unreachable;
                                    }()};
  pipeline::Processor processor{io.get_executor(), ledger, &client, {}};
  std::exception_ptr escaped;

  // One mail processed while the ledger fails `operations`; the record after.
  spool::MessageRecord process_failing(std::initializer_list<const char*> operations) {
    spool::MessageRecord added;
    added.source = "smtp";
    added.message_id = "hi@x";
    const std::string id =
        ledger.add("From: Jane <jane@example.com>\r\nSubject: hi\r\nMessage-ID: <hi@x>\r\n\r\nbody\r\n", added);
    for (const char* operation : operations) ledger.fail_operation(operation);
    net::asio::co_spawn(io, processor.process(*ledger.message(id)), [&](std::exception_ptr e) { escaped = e; });
    io.run();
    EXPECT_FALSE(escaped) << "the error escaped the processor";
    EXPECT_EQ(processor.in_flight(), 0u);
    return *ledger.message(id);
  }
};

}  // namespace

// Break the ledger under the processor: the user cache cannot be read.
TEST(Processor, ASpoolErrorKeepsTheMessageQueuedWithTheReason) {
  FaultRig rig;
  auto rec = rig.process_failing({"cached_user"});
  EXPECT_EQ(rec.state, spool::State::Queued);
  EXPECT_NE(rec.last_error.find("spool error"), std::string::npos) << rec.last_error;
  EXPECT_GT(rec.next_attempt_at, rec.received_at);
}

// Nothing is posted before the decision is recorded: when it cannot be,
// the message waits, undecided.
TEST(Processor, ADecisionThatCannotBeRecordedLeavesTheMessageUndecidedAndQueued) {
  FaultRig rig;
  auto rec = rig.process_failing({"record_decision"});
  EXPECT_EQ(rec.state, spool::State::Queued);
  EXPECT_EQ(rec.decision.action, "");
  EXPECT_NE(rec.last_error.find("record_decision"), std::string::npos) << rec.last_error;
}

// Even when the error cannot be recorded either, the message stays queued:
// the next poll finds it.
TEST(Processor, ALedgerThatCannotRecordTheErrorStillLosesNothing) {
  FaultRig rig;
  auto rec = rig.process_failing({"cached_user", "defer"});
  EXPECT_EQ(rec.state, spool::State::Queued);
  EXPECT_EQ(rec.attempts, 0);
}

// Bytes that cannot be read are not retried for ever: the message fails with why.
TEST(Processor, AMailWhoseBytesAreGoneFails) {
  FaultRig rig;
  auto rec = rig.process_failing({"raw_mail"});
  EXPECT_EQ(rec.state, spool::State::Failed);
  EXPECT_NE(rec.last_error.find("raw_mail"), std::string::npos) << rec.last_error;
}

// ---- exactly once across a crash (issue 10) ----
// A message found with ticket_post_started and no ticket id was killed
// inside a ticket POST. Against the fake: it is looked up, adopted when the
// POST had arrived, posted again when not — and another mail's ticket with
// the same sender and subject is never taken for it.
namespace {

struct CrashRig {
  fs::path dir = fs::temp_directory_path() / ("mailgate-processor-crash-" + std::to_string(::getpid()));
  std::unique_ptr<spool::Spool> spool;
  std::unique_ptr<pipeline::Ledger> ledger;
  mailgate::testing::FakeMessenger fake;
  net::asio::io_context io;
  std::unique_ptr<messenger::MessengerClient> client;
  std::unique_ptr<pipeline::Processor> processor;

  explicit CrashRig(bool external_id = false) {
    fs::remove_all(dir);
    spool = spool::Spool::open(dir.string(), {0, 0});
    ledger = pipeline::make_spool_ledger(*spool);
    client = std::make_unique<messenger::MessengerClient>(io.get_executor(),
                                                          mailgate::pipeline::test::fake_client_settings(fake));
    pipeline::ProcessorSettings p;
    p.external_id = external_id;
    processor = std::make_unique<pipeline::Processor>(io.get_executor(), *ledger, client.get(), p);
  }
  ~CrashRig() { fs::remove_all(dir); }

  std::string accept(const std::string& subject, int n) {
    return spool->accept("From: Jane <jane@example.com>\r\nSubject: " + subject + "\r\nMessage-ID: <m" +
                             std::to_string(n) + "@x>\r\n\r\nbody " + std::to_string(n) + "\r\n",
                         "smtp")
        .id;
  }
  void process(const std::string& id) {
    net::asio::co_spawn(io, processor->process(*spool->get(id)), net::asio::detached);
    io.restart();
    io.run();
  }
  template <class T>
  T run(net::asio::awaitable<T> task) {
    std::optional<T> out;
    net::asio::co_spawn(io, std::move(task), [&](std::exception_ptr, T v) { out.emplace(std::move(v)); });
    io.restart();
    io.run();
    return std::move(*out);
  }
  // What the killed process had done: the user recorded, the POST marked;
  // `arrived`: the API created the ticket before the kill.
  void killed_mid_post(const std::string& id, const std::string& title, bool arrived) {
    auto user = run(client->create_user("Jane", "jane@example.com", messenger::CallContext{id}));
    ASSERT_TRUE(user);
    spool->set_user(id, user.value());
    spool->cache_user("jane@example.com", user.value());
    spool->mark_ticket_post_started(id);
    if (!arrived) return;
    messenger::NewTicket t{title, "<p>body</p>", user.value(), {}, {},
                           processor_uses_external_id ? id : std::string()};
    ASSERT_TRUE(run(client->create_ticket(t, messenger::CallContext{id})));
  }
  bool processor_uses_external_id = false;
};

}  // namespace

TEST(ProcessorCrashRecovery, ATicketWhosePostArrivedIsAdoptedNotPostedAgain) {
  for (bool external_id : {false, true}) {
    CrashRig rig(external_id);
    rig.processor_uses_external_id = external_id;
    auto id = rig.accept("Printer on fire", 1);
    rig.killed_mid_post(id, "Printer on fire", /*arrived=*/true);
    ::testing::internal::CaptureStderr();
    rig.process(id);
    std::string log = ::testing::internal::GetCapturedStderr();
    ASSERT_EQ(rig.fake.tickets().size(), 1u) << log;
    auto rec = rig.spool->get(id);
    EXPECT_EQ(rec->state, spool::State::Done) << rec->last_error;
    EXPECT_EQ(messenger::id_text(rec->ticket_id), rig.fake.tickets()[0].id);
    EXPECT_EQ(rec->ticket_full_uuid, rig.fake.tickets()[0].full_uuid);
    EXPECT_NE(log.find("pipeline.ticket_adopted"), std::string::npos) << log;
    EXPECT_EQ(rig.fake.count("find_ticket"), 1u);
    bool by_external_id = false;
    for (const auto& r : rig.fake.requests()) by_external_id |= r.target.find("external_id=") != std::string::npos;
    EXPECT_EQ(by_external_id, external_id);
  }
}

TEST(ProcessorCrashRecovery, TwoMailsWithOneSubjectFromOneSenderStayTwoTickets) {
  CrashRig rig;
  auto first = rig.accept("Same subject", 1);
  auto second = rig.accept("Same subject", 2);
  rig.process(first);
  ASSERT_EQ(rig.fake.tickets().size(), 1u);
  // The second is killed mid-POST before the request reached the API: the
  // lookup finds the first mail's ticket, which is not the second's.
  rig.killed_mid_post(second, "Same subject", /*arrived=*/false);
  ::testing::internal::CaptureStderr();
  rig.process(second);
  std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_EQ(rig.fake.tickets().size(), 2u) << log;
  EXPECT_NE(log.find("pipeline.ticket_reposted"), std::string::npos) << log;
  auto a = rig.spool->get(first), b = rig.spool->get(second);
  EXPECT_EQ(b->state, spool::State::Done) << b->last_error;
  EXPECT_NE(a->ticket_id, b->ticket_id);
  // A third, killed after its POST arrived: adopts its own ticket, not either earlier one.
  auto third = rig.accept("Same subject", 3);
  rig.killed_mid_post(third, "Same subject", /*arrived=*/true);
  rig.process(third);
  ASSERT_EQ(rig.fake.tickets().size(), 3u);
  EXPECT_EQ(messenger::id_text(rig.spool->get(third)->ticket_id), rig.fake.tickets()[2].id);
}

// A spent hourly quota is the API key's, not the message's: the message
// waits for the quota's reset (most of an hour), not the usual 30 s backoff.
TEST(ProcessorRateLimits, ASpentQuotaDefersUntilItsReset) {
  CrashRig rig;
  rig.fake.set_rate_limits(1'000'000, 2);  // two requests an hour: the user lookup and its creation
  auto id = rig.accept("Quota", 1);
  const auto before = static_cast<std::int64_t>(std::time(nullptr));
  rig.process(id);
  auto rec = rig.spool->get(id);
  EXPECT_EQ(rec->state, spool::State::Queued);
  EXPECT_GE(rec->next_attempt_at, before + 3000) << rec->last_error;
  EXPECT_TRUE(rig.fake.tickets().empty());
}

TEST(ProcessorMetrics, IgnoredMailIsCountedByKindNotByHeaderValue) {
  CrashRig rig;
  auto& registry = mailgate::metrics::Registry::global();
  const double before = registry.value("mailgate_ignored_total", {{"reason", "auto-reply"}}).value_or(0);
  auto id = rig.spool->accept(
                    "From: Jane <jane@example.com>\r\nSubject: Out of office\r\nX-Autoreply: yes\r\n"
                    "Message-ID: <ooo@x>\r\n\r\naway\r\n",
                    "smtp")
                .id;
  rig.process(id);
  EXPECT_EQ(rig.spool->get(id)->state, spool::State::Ignored);
  EXPECT_TRUE(rig.fake.tickets().empty());
  EXPECT_EQ(registry.value("mailgate_ignored_total", {{"reason", "auto-reply"}}).value_or(0), before + 1);
}

// ---- the decision step (design.md "Order of decisions") ----

namespace {
const std::string kAutoReply =
    "From: Jane <jane@example.com>\r\nSubject: Out of office\r\nX-Autoreply: yes\r\n"
    "Message-ID: <away@x>\r\n\r\naway\r\n";
}  // namespace

TEST(ProcessorDecision, TheDecisionIsRecordedBeforeAnythingIsPosted) {
  CrashRig rig;
  rig.fake.set_rate_limits(1'000'000, 2);  // the user lookup and creation pass, the ticket POST cannot
  auto id = rig.accept("Printer on fire", 1);
  rig.process(id);
  ASSERT_TRUE(rig.fake.tickets().empty());
  auto rec = rig.spool->get(id);
  EXPECT_EQ(rec->state, spool::State::Queued);
  EXPECT_EQ(rec->decision.action, "ticket");
  EXPECT_EQ(rec->decision.from_address, "jane@example.com");
  EXPECT_EQ(rec->decision.subject, "Printer on fire");
  EXPECT_EQ(rec->decision.ticket_fields, "{}");
}

TEST(ProcessorDecision, IgnoredMailKeepsItsReasonAndKind) {
  CrashRig rig;
  auto id = rig.spool->accept(kAutoReply, "smtp").id;
  rig.process(id);
  auto rec = rig.spool->get(id);
  EXPECT_EQ(rec->state, spool::State::Ignored);
  EXPECT_EQ(rec->decision.action, "ignore");
  EXPECT_FALSE(rec->decision.reason.empty());
  EXPECT_EQ(rec->decision.kind, rec->decision.reason.substr(0, rec->decision.reason.find(" (")));
  EXPECT_TRUE(rig.fake.tickets().empty());
}

// After a restart the recorded decision stands: the mail is not decided
// again (an auto-reply a person released stays a ticket, with the fields
// recorded then, whatever tickets.defaults says now).
TEST(ProcessorDecision, ARecordedDecisionIsNotTakenAgain) {
  CrashRig rig;
  auto id = rig.spool->accept(kAutoReply, "smtp").id;
  rig.spool->record_decision(id, {"ticket", "billing", "", "", "jane@example.com", "Out of office", R"({"queue":7})"});
  rig.process(id);
  ASSERT_EQ(rig.fake.tickets().size(), 1u);
  EXPECT_EQ(rig.fake.tickets()[0].request.value("queue", nlohmann::json()), nlohmann::json(7));
  EXPECT_EQ(rig.spool->get(id)->state, spool::State::Done);
}

TEST(ProcessorDecision, IgnoredMailRetriedByAPersonBecomesATicket) {
  CrashRig rig;
  auto id = rig.spool->accept(kAutoReply, "smtp").id;
  rig.process(id);
  ASSERT_EQ(rig.spool->get(id)->state, spool::State::Ignored);
  ASSERT_TRUE(rig.spool->retry(id));
  rig.process(id);
  ASSERT_EQ(rig.fake.tickets().size(), 1u);
  auto rec = rig.spool->get(id);
  EXPECT_EQ(rec->state, spool::State::Done);
  EXPECT_EQ(rec->decision.action, "ticket");
  EXPECT_TRUE(rec->person_decided);
}

// A dry run writes what the recorded decision posts: an auto-reply a person
// retried is a ticket there too, not "ignore" read again from its headers.
TEST(ProcessorDecision, ADryRunOfRetriedIgnoredMailShowsTheTicket) {
  CrashRig rig;
  pipeline::ProcessorSettings settings;
  settings.dry_run = true;
  rig.processor = std::make_unique<pipeline::Processor>(rig.io.get_executor(), *rig.ledger, nullptr, settings);
  auto id = rig.spool->accept(kAutoReply, "smtp").id;
  rig.process(id);
  ASSERT_EQ(rig.spool->get(id)->state, spool::State::Ignored);
  ASSERT_TRUE(rig.spool->retry(id));
  rig.process(id);
  std::ifstream in(rig.spool->dry_run_path(id));
  ASSERT_TRUE(in);
  auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["action"], "ticket");
  EXPECT_TRUE(j["ignored"].is_null());
  EXPECT_TRUE(rig.fake.tickets().empty()) << "a dry run posts nothing";
}

// MAIL FROM:<> over SMTP is a bounce; a message with no kept envelope
// (spooled before envelopes were kept) is not one for its empty MAIL FROM.
TEST(ProcessorDecision, OnlyAKeptNullSenderIsABounce) {
  CrashRig rig;
  pipeline::ProcessorSettings settings;
  settings.router = routing::Router::build(config::Config{});
  rig.processor = std::make_unique<pipeline::Processor>(rig.io.get_executor(), *rig.ledger, rig.client.get(), settings);
  spool::Incoming in = rig.spool->begin();
  in.write("From: Jane <jane@example.com>\r\nSubject: null sender\r\nMessage-ID: <null@x>\r\n\r\nbody\r\n");
  in.set_envelope(spool::Envelope{"", {"support@example.com"}});
  auto bounce = rig.spool->commit(std::move(in), "smtp").id;
  auto old = rig.accept("spooled before envelopes", 1);
  rig.process(bounce);
  rig.process(old);
  EXPECT_EQ(rig.spool->get(bounce)->state, spool::State::Ignored);
  EXPECT_EQ(rig.spool->get(bounce)->decision.kind, "bounce");
  EXPECT_EQ(rig.spool->get(old)->state, spool::State::Done) << rig.spool->get(old)->decision.reason;
}

// The Router's ticket fields, not the processor's tickets.defaults, go to the API.
TEST(ProcessorDecision, TheTicketIsPostedWithTheRoutersFields) {
  CrashRig rig;
  config::Config cfg;
  cfg.ticket_defaults = {{"queue", 5}, {"priority", "high"}};
  pipeline::ProcessorSettings p;
  p.router = routing::Router::build(cfg);
  rig.processor = std::make_unique<pipeline::Processor>(rig.io.get_executor(), *rig.ledger, rig.client.get(), p);
  auto id = rig.accept("Routed", 1);
  rig.process(id);
  ASSERT_EQ(rig.fake.tickets().size(), 1u);
  EXPECT_EQ(rig.fake.tickets()[0].request.value("queue", nlohmann::json()), nlohmann::json(5));
  EXPECT_EQ(rig.spool->get(id)->decision.ticket_fields, cfg.ticket_defaults.dump());
}
