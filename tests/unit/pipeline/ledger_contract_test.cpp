// The ledger's contract (ledger.hpp), checked against both implementations:
// SpoolLedger over a real spool (SQLite and files) and MemoryLedger. The
// same checks passing on both is what lets processor tests use the memory
// one. Each check names the rule it holds the implementations to.
#include "mailgate/pipeline/spool_ledger.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "mailgate/text/file.hpp"
#include "memory_ledger.hpp"

namespace fs = std::filesystem;
using namespace mailgate;
using spool::State;

namespace {

std::string mail_with(const std::string& message_id, int n) {
  return (message_id.empty() ? std::string() : "Message-ID: <" + message_id + ">\r\n") +
         "From: Jane <jane@example.com>\r\nSubject: s\r\n\r\nbody " + std::to_string(n) + "\r\n";
}

class SpoolRig {
 public:
  SpoolRig() {
    fs::remove_all(dir_);
    spool_ = spool::Spool::open(dir_.string(), {0, 0});
    ledger_ = pipeline::make_spool_ledger(*spool_);
  }
  ~SpoolRig() { fs::remove_all(dir_); }
  pipeline::Ledger& ledger() { return *ledger_; }
  // A queued message with this Message-ID ("" for none), received now.
  std::string add(const std::string& message_id) {
    auto r = spool_->accept(mail_with(message_id, ++added_), "smtp");
    EXPECT_EQ(r.kind, spool::AcceptResult::Kind::Accepted) << r.reason;
    return r.id;
  }
  bool release(const std::string& id) { return spool_->release(id); }
  std::string dry_run_kept(const std::string& where) { return text::read_file(where).value_or("<no file>"); }

 private:
  fs::path dir_ = fs::temp_directory_path() / ("mailgate-ledger-contract-" + std::to_string(::getpid()) + "-" +
                                               ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::unique_ptr<spool::Spool> spool_;
  std::unique_ptr<pipeline::Ledger> ledger_;
  int added_ = 0;
};

class MemoryRig {
 public:
  pipeline::Ledger& ledger() { return memory_; }
  std::string add(const std::string& message_id) {
    spool::MessageRecord record;
    record.source = "smtp";
    record.message_id = message_id;
    return memory_.add(mail_with(message_id, ++added_), record);
  }
  bool release(const std::string& id) { return memory_.release(id); }
  std::string dry_run_kept(const std::string& where) {
    return memory_.dry_run_request(where.substr(where.find(':') + 1)).value_or("<nothing kept>");
  }

 private:
  pipeline::MemoryLedger memory_;
  int added_ = 0;
};

std::int64_t now_unix() { return static_cast<std::int64_t>(std::time(nullptr)); }

// First-only timestamps are seen only across a second boundary.
void wait_for_the_next_second() {
  const std::int64_t start = now_unix();
  while (now_unix() == start) std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

template <class Rig>
class LedgerContract : public ::testing::Test {
 protected:
  Rig rig;
  pipeline::Ledger& ledger = rig.ledger();
  spool::MessageRecord get(const std::string& id) {
    auto r = ledger.message(id);
    if (!r) ADD_FAILURE() << "no message " << id;
    return r.value_or(spool::MessageRecord{});
  }
  std::vector<std::string> due_ids(std::int64_t now, std::size_t limit) {
    std::vector<std::string> ids;
    for (const auto& r : ledger.due_messages(now, limit)) ids.push_back(r.id);
    return ids;
  }
};

using Implementations = ::testing::Types<SpoolRig, MemoryRig>;
class ImplementationNames {
 public:
  template <class T>
  static std::string GetName(int) {
    return std::is_same_v<T, SpoolRig> ? "SpoolLedger" : "MemoryLedger";
  }
};
TYPED_TEST_SUITE(LedgerContract, Implementations, ImplementationNames);

}  // namespace

TYPED_TEST(LedgerContract, DueIsQueuedMailEarliestFirstWithinTheLimit) {
  auto a = this->rig.add("a@x"), b = this->rig.add("b@x"), c = this->rig.add("c@x"), d = this->rig.add("d@x");
  const std::int64_t now = now_unix();
  this->ledger.postpone(a, now - 10, "w");
  this->ledger.postpone(b, now - 30, "w");
  this->ledger.postpone(c, now + 1000, "w");
  this->ledger.fail(d, "gone");
  EXPECT_EQ(this->due_ids(now, 10), (std::vector<std::string>{b, a}));
  EXPECT_EQ(this->due_ids(now, 1), (std::vector<std::string>{b}));
  EXPECT_EQ(this->due_ids(now + 1000, 10), (std::vector<std::string>{b, a, c}));
  EXPECT_EQ(this->get(a).last_error, "w");
}

TYPED_TEST(LedgerContract, DeferAndFailCountAttemptsPostponeDoesNot) {
  auto a = this->rig.add("a@x");
  const std::int64_t now = now_unix();
  this->ledger.defer(a, now + 30, "503");
  auto r = this->get(a);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(r.next_attempt_at, now + 30);
  EXPECT_EQ(r.last_error, "503");
  EXPECT_EQ(r.state, State::Queued);
  this->ledger.postpone(a, now + 60, "waiting for its parent");
  r = this->get(a);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(r.next_attempt_at, now + 60);
  EXPECT_EQ(r.last_error, "waiting for its parent");
  this->ledger.fail(a, "400 bad");
  r = this->get(a);
  EXPECT_EQ(r.state, State::Failed);
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(r.outcome, "failed: 400 bad");
  EXPECT_EQ(r.last_error, "400 bad");
}

TYPED_TEST(LedgerContract, TheDecisionMovesTheMessage) {
  auto held = this->rig.add("h@x"), ignored = this->rig.add("i@x"), ticket = this->rig.add("t@x");
  const std::int64_t before = now_unix();
  this->ledger.record_decision(held, {"hold", "vip", "route vip holds", "route", "Jane@Example.COM", "S", "{}"});
  this->ledger.record_decision(ignored, {"ignore", "", "auto-reply (X-Autoreply)", "auto-reply", "j@x", "S", "{}"});
  this->ledger.record_decision(ticket, {"ticket", "billing", "", "", "j@x", "Subject", R"({"queue":7})"});
  auto h = this->get(held), i = this->get(ignored), t = this->get(ticket);
  EXPECT_EQ(h.state, State::Held);
  EXPECT_EQ(h.outcome, "held: route vip holds");
  EXPECT_EQ(h.decision.from_address, "jane@example.com");
  EXPECT_EQ(h.decision.route, "vip");
  EXPECT_GE(h.decided_at, before);
  EXPECT_EQ(i.state, State::Ignored);
  EXPECT_EQ(i.outcome, "ignored: auto-reply (X-Autoreply)");
  EXPECT_EQ(i.decision.kind, "auto-reply");
  EXPECT_EQ(t.state, State::Queued);
  EXPECT_EQ(t.outcome, "");
  EXPECT_EQ(t.decision.action, "ticket");
  EXPECT_EQ(t.decision.subject, "Subject");
  EXPECT_EQ(t.decision.ticket_fields, R"({"queue":7})");
  EXPECT_EQ(this->due_ids(now_unix(), 10), (std::vector<std::string>{ticket}));
}

TYPED_TEST(LedgerContract, TicketDecisionsAreCountedPerAddressSinceAndExceptOne) {
  auto a = this->rig.add("a@x"), b = this->rig.add("b@x"), c = this->rig.add("c@x"), d = this->rig.add("d@x");
  this->ledger.record_decision(a, {"ticket", "", "", "", "Jane@X", "s", "{}"});
  this->ledger.record_decision(b, {"ticket", "", "", "", "jane@x", "s", "{}"});
  this->ledger.record_decision(c, {"ignore", "", "bulk", "bulk", "jane@x", "s", "{}"});
  this->ledger.record_decision(d, {"ticket", "", "", "", "bob@x", "s", "{}"});
  const std::int64_t now = now_unix();
  EXPECT_EQ(this->ledger.count_ticket_decisions("JANE@x", now - 60, ""), 2);
  EXPECT_EQ(this->ledger.count_ticket_decisions("jane@x", now - 60, a), 1);
  EXPECT_EQ(this->ledger.count_ticket_decisions("jane@x", now + 10, ""), 0);
  EXPECT_EQ(this->ledger.count_ticket_decisions("nobody@x", now - 60, ""), 0);
}

TYPED_TEST(LedgerContract, APersonsReleaseSurvivesTheNextDecision) {
  auto a = this->rig.add("a@x");
  this->ledger.record_decision(a, {"hold", "", "held for review", "route", "j@x", "s", "{}"});
  EXPECT_FALSE(this->get(a).person_decided);
  ASSERT_TRUE(this->rig.release(a));
  auto r = this->get(a);
  EXPECT_EQ(r.state, State::Queued);
  EXPECT_TRUE(r.person_decided);
  EXPECT_EQ(r.decision.action, "");
  this->ledger.record_decision(a, {"ticket", "", "", "", "j@x", "s", "{}"});
  r = this->get(a);
  EXPECT_TRUE(r.person_decided);
  EXPECT_EQ(r.state, State::Queued);
}

TYPED_TEST(LedgerContract, TheUserCacheIgnoresTheAddressCase) {
  auto a = this->rig.add("a@x");
  this->ledger.cache_user("Jane@Example.COM", "u1");
  EXPECT_EQ(this->ledger.cached_user("jane@example.com"), "u1");
  this->ledger.cache_user("jane@example.com", "u2");
  EXPECT_EQ(this->ledger.cached_user("JANE@EXAMPLE.COM"), "u2");
  this->ledger.forget_user("JANE@example.com");
  EXPECT_EQ(this->ledger.cached_user("jane@example.com"), std::nullopt);
  this->ledger.record_user(a, "u9");
  EXPECT_EQ(this->get(a).user_uuid, "u9");
}

TYPED_TEST(LedgerContract, MediaIsKeptPerMessageAndReplacedByRef) {
  auto a = this->rig.add("a@x"), b = this->rig.add("b@x");
  this->ledger.record_media(a, {"media-1", "m1", 10});
  this->ledger.record_media(a, {"media-1", "m2", 20});
  this->ledger.record_media(a, {"media-2", "m3", 30});
  auto media = this->ledger.uploaded_media(a);
  std::sort(media.begin(), media.end(), [](const auto& x, const auto& y) { return x.ref < y.ref; });
  ASSERT_EQ(media.size(), 2u);
  EXPECT_EQ(media[0].uuid, "m2");
  EXPECT_EQ(media[0].uploaded_at, 20);
  EXPECT_EQ(media[1].ref, "media-2");
  EXPECT_TRUE(this->ledger.uploaded_media(b).empty());
}

TYPED_TEST(LedgerContract, ForgettingReferencesDropsWhatItNamesAndThePostFlag) {
  auto a = this->rig.add("a@x");
  this->ledger.record_user(a, "u1");
  this->ledger.record_media(a, {"media-1", "m1", 10});
  this->ledger.mark_ticket_post_started(a);
  ASSERT_TRUE(this->get(a).ticket_post_started);
  this->ledger.forget_references(a, /*user=*/false, /*media=*/true);
  auto r = this->get(a);
  EXPECT_FALSE(r.ticket_post_started);
  EXPECT_NE(r.ticket_post_started_at, 0);
  EXPECT_EQ(r.user_uuid, "u1");
  EXPECT_TRUE(this->ledger.uploaded_media(a).empty());
  this->ledger.record_media(a, {"media-1", "m1", 10});
  this->ledger.forget_references(a, /*user=*/true, /*media=*/false);
  EXPECT_EQ(this->get(a).user_uuid, "");
  EXPECT_EQ(this->ledger.uploaded_media(a).size(), 1u);
}

TYPED_TEST(LedgerContract, PostMarksKeepTheirFirstTime) {
  auto a = this->rig.add("a@x");
  const std::int64_t before = now_unix();
  this->ledger.mark_ticket_post_started(a);
  this->ledger.mark_reply_post_started(a);
  const auto first = this->get(a);
  EXPECT_GE(first.ticket_post_started_at, before);
  EXPECT_GE(first.reply_post_started_at, before);
  wait_for_the_next_second();
  this->ledger.forget_references(a, false, false);
  this->ledger.mark_ticket_post_started(a);
  this->ledger.mark_reply_post_started(a);
  const auto again = this->get(a);
  EXPECT_TRUE(again.ticket_post_started);
  EXPECT_EQ(again.ticket_post_started_at, first.ticket_post_started_at);
  EXPECT_EQ(again.reply_post_started_at, first.reply_post_started_at);
}

TYPED_TEST(LedgerContract, ARecordedTicketFinishesTheMessageAndNamesIt) {
  auto a = this->rig.add("a@x"), b = this->rig.add("b@x");
  this->ledger.defer(a, now_unix(), "503");
  this->ledger.mark_ticket_post_started(a);
  this->ledger.record_ticket(a, "12", "F-12");
  this->ledger.record_ticket(b, "13", "");
  auto r = this->get(a);
  EXPECT_EQ(r.state, State::Done);
  EXPECT_EQ(r.ticket_id, "12");
  EXPECT_EQ(r.ticket_full_uuid, "F-12");
  EXPECT_FALSE(r.ticket_post_started);
  EXPECT_EQ(r.last_error, "");
  EXPECT_EQ(r.outcome, "ticket 12 F-12");
  EXPECT_EQ(this->get(b).outcome, "ticket 13");
  EXPECT_EQ(this->ledger.message_with_ticket("12"), a);
  EXPECT_EQ(this->ledger.message_with_ticket("14"), std::nullopt);
  this->ledger.note_outcome(a, "new ticket: sender not the ticket's creator");
  EXPECT_EQ(this->get(a).outcome, "ticket 12 F-12 (new ticket: sender not the ticket's creator)");
  EXPECT_TRUE(this->due_ids(now_unix(), 10).empty());
}

TYPED_TEST(LedgerContract, ADryRunKeepsTheRequestAndFinishesTheMessage) {
  auto a = this->rig.add("a@x");
  const std::string where = this->ledger.record_dry_run(a, "{\"title\":\"s\"}\n");
  auto r = this->get(a);
  EXPECT_EQ(r.state, State::Done);
  EXPECT_EQ(r.outcome, "dry-run: " + where);
  EXPECT_EQ(this->rig.dry_run_kept(where), "{\"title\":\"s\"}\n");
}

TYPED_TEST(LedgerContract, TheRawMailIsTheBytesReceived) {
  auto a = this->rig.add("a@x");
  EXPECT_EQ(this->ledger.raw_mail(a), mail_with("a@x", 1));
  EXPECT_EQ(this->get(a).size, mail_with("a@x", 1).size());
  EXPECT_THROW(this->ledger.raw_mail("no-such-message"), std::exception);
  EXPECT_EQ(this->ledger.message("no-such-message"), std::nullopt);
}

TYPED_TEST(LedgerContract, TheThreadIndexIgnoresCaseAndNeverKeepsAnEmptyId) {
  const std::int64_t before = now_unix();
  this->ledger.remember_thread("Root@X", {"7", "F-7", "Jane@X", "u1", 0});
  this->ledger.remember_thread("", {"8", "F-8", "bob@x", "u2", 0});
  auto row = this->ledger.thread_of("root@x");
  ASSERT_TRUE(row);
  EXPECT_EQ(row->ticket_id, "7");
  EXPECT_EQ(row->ticket_full_uuid, "F-7");
  EXPECT_EQ(row->creator_address, "jane@x");
  EXPECT_EQ(row->creator_user, "u1");
  EXPECT_GE(row->at, before);
  EXPECT_EQ(this->ledger.thread_of(""), std::nullopt);
  EXPECT_EQ(this->ledger.thread_of_ticket("8"), std::nullopt);
  EXPECT_EQ(this->ledger.thread_of("other@x"), std::nullopt);
}

TYPED_TEST(LedgerContract, ATicketsOldestIndexRowIsItsCreator) {
  this->ledger.remember_thread("late@x", {"7", "", "jane@x", "u1", 100});
  this->ledger.remember_thread("early@x", {"7", "", "bob@x", "u2", 50});
  this->ledger.remember_thread("other@x", {"8", "", "eve@x", "u3", 10});
  EXPECT_EQ(this->ledger.thread_of_ticket("7")->creator_address, "bob@x");
  // Written again for another ticket, the early row no longer speaks for 7.
  this->ledger.remember_thread("EARLY@x", {"9", "", "bob@x", "u2", 50});
  EXPECT_EQ(this->ledger.thread_of_ticket("7")->creator_address, "jane@x");
  EXPECT_EQ(this->ledger.thread_of_ticket("10"), std::nullopt);
}

TYPED_TEST(LedgerContract, OnlyAnEarlierQueuedMessageIsAParentFirstNamedFirst) {
  auto parent = this->rig.add("parent@x"), child = this->rig.add("child@x"), later = this->rig.add("later@x");
  EXPECT_EQ(this->ledger.queued_parent({"", "nobody@x", "PARENT@x"}, child), parent);
  EXPECT_EQ(this->ledger.queued_parent({"later@x"}, child), std::nullopt) << "a later message never blocks";
  EXPECT_EQ(this->ledger.queued_parent({"child@x", "parent@x"}, later), child);
  EXPECT_EQ(this->ledger.queued_parent({"parent@x", "child@x"}, later), parent);
  EXPECT_EQ(this->ledger.queued_parent({"parent@x"}, "no-such-message"), std::nullopt);
  this->ledger.fail(parent, "gone");
  EXPECT_EQ(this->ledger.queued_parent({"parent@x"}, child), std::nullopt) << "failed mail does not block";
  this->ledger.record_decision(child, {"ignore", "", "bulk", "bulk", "j@x", "s", "{}"});
  EXPECT_EQ(this->ledger.queued_parent({"child@x"}, later), std::nullopt) << "ignored mail does not block";
}

TYPED_TEST(LedgerContract, JoiningAThreadIsRecordedAndLeavingItForgetsTheReplyMark) {
  auto a = this->rig.add("a@x");
  this->ledger.join_thread(a, "7", "subject");
  this->ledger.mark_reply_post_started(a);
  auto r = this->get(a);
  EXPECT_EQ(r.joined_ticket, "7");
  EXPECT_EQ(r.thread_by, "subject");
  EXPECT_NE(r.reply_post_started_at, 0);
  EXPECT_EQ(r.ticket_id, "") << "joining is not creating";
  this->ledger.leave_thread(a);
  r = this->get(a);
  EXPECT_EQ(r.joined_ticket, "");
  EXPECT_EQ(r.thread_by, "");
  EXPECT_EQ(r.reply_post_started_at, 0);
  EXPECT_EQ(r.state, State::Queued);
}

TYPED_TEST(LedgerContract, ARecordedReplyFinishesTheMessageAndIndexesIt) {
  auto a = this->rig.add("r1@x");
  this->ledger.join_thread(a, "7", "references");
  this->ledger.defer(a, now_unix(), "503");
  this->ledger.record_reply(a, "55", "R1@x", {"7", "F-7", "Jane@x", "u1", 0});
  auto r = this->get(a);
  EXPECT_EQ(r.state, State::Done);
  EXPECT_EQ(r.reply_id, "55");
  EXPECT_EQ(r.outcome, "reply 55 on ticket 7 (by references)");
  EXPECT_EQ(r.last_error, "");
  EXPECT_EQ(r.ticket_id, "");
  ASSERT_TRUE(this->ledger.thread_of("r1@x"));
  EXPECT_EQ(this->ledger.thread_of("r1@x")->creator_address, "jane@x");
  EXPECT_EQ(this->ledger.message_with_reply("55"), a);
  EXPECT_EQ(this->ledger.message_with_reply("56"), std::nullopt);
}

// ---- MemoryLedger's failure switch (what the processor's fault tests use) ----

TEST(MemoryLedger, AnOperationToldToFailThrowsAndChangesNothingUntilHealed) {
  pipeline::MemoryLedger ledger;
  auto a = ledger.add("Subject: s\r\n\r\nbody\r\n");
  ledger.fail_operation("defer");
  EXPECT_THROW(ledger.defer(a, 1, "503"), std::runtime_error);
  EXPECT_EQ(ledger.message(a)->attempts, 0);
  EXPECT_EQ(ledger.message(a)->last_error, "");
  ledger.postpone(a, 1, "other operations still work");
  EXPECT_EQ(ledger.message(a)->last_error, "other operations still work");
  ledger.heal();
  ledger.defer(a, 1, "503");
  EXPECT_EQ(ledger.message(a)->attempts, 1);
}
