// The spool's promises: durable before "accepted", one message per
// Message-ID (or per byte content), recovery after a crash, nothing lost
// when a message fails.
#include "mailgate/spool/spool.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/statvfs.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

namespace fs = std::filesystem;
using namespace mailgate::spool;

namespace {

class SpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("mailgate-spool-test-" + std::to_string(::getpid()) + "-" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  std::unique_ptr<Spool> open(SpoolLimits limits = {0, 0}) { return Spool::open(dir.string(), limits); }
  fs::path dir;
};

// What statvfs says is free for an unprivileged writer under `dir` — the
// figure the spool compares with queue.min_free_space.
std::uint64_t free_bytes_under(const fs::path& dir) {
  struct statvfs v {};
  if (::statvfs(dir.c_str(), &v) != 0) return 0;
  return static_cast<std::uint64_t>(v.f_bavail) * v.f_frsize;
}

constexpr std::uint64_t kTiB = 1024ull * 1024 * 1024 * 1024;

std::string mail(const std::string& message_id, const std::string& body = "hello") {
  std::string m = "From: a@example.org\r\nSubject: s\r\n";
  if (!message_id.empty()) m += "Message-ID: <" + message_id + ">\r\n";
  return m + "\r\n" + body + "\r\n";
}

}  // namespace

TEST_F(SpoolTest, AcceptedMailIsAFileInQueueAndARecord) {
  auto s = open();
  auto r = s->accept(mail("a@x"), "smtp");
  ASSERT_EQ(r.kind, AcceptResult::Kind::Accepted);
  EXPECT_TRUE(fs::exists(s->path_of(r.id, State::Queued)));
  EXPECT_EQ(s->read_raw(r.id), mail("a@x"));
  auto rec = s->get(r.id);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->message_id, "a@x");
  EXPECT_EQ(rec->state, State::Queued);
  EXPECT_EQ(s->due(rec->received_at, 10).size(), 1u);
  EXPECT_TRUE(fs::is_empty(dir / "tmp"));
}

TEST_F(SpoolTest, SameMessageIdIsADuplicateEvenAfterRestart) {
  std::string first;
  {
    auto s = open();
    first = s->accept(mail("dup@x"), "smtp").id;
    EXPECT_EQ(s->accept(mail("DUP@x", "other body"), "imap:box").kind, AcceptResult::Kind::Duplicate);
  }
  auto s = open();
  auto again = s->accept(mail("dup@x"), "smtp");
  EXPECT_EQ(again.kind, AcceptResult::Kind::Duplicate);
  EXPECT_EQ(again.id, first);
  EXPECT_EQ(s->list().size(), 1u);
}

TEST_F(SpoolTest, WithoutMessageIdTheBytesDecide) {
  auto s = open();
  EXPECT_EQ(s->accept(mail("", "one"), "smtp").kind, AcceptResult::Kind::Accepted);
  EXPECT_EQ(s->accept(mail("", "one"), "smtp").kind, AcceptResult::Kind::Duplicate);
  EXPECT_EQ(s->accept(mail("", "two"), "smtp").kind, AcceptResult::Kind::Accepted);
}

TEST_F(SpoolTest, ProgressSurvivesAndFinishedMailMovesToDone) {
  std::string id;
  {
    auto s = open();
    id = s->accept(mail("p@x"), "smtp").id;
    s->set_user(id, "user-uuid");
    s->set_media(id, {"media-1", "media-uuid", 1000});
    s->mark_ticket_post_started(id);
  }
  auto s = open();
  auto rec = s->get(id);
  EXPECT_EQ(rec->user_uuid, "user-uuid");
  EXPECT_TRUE(rec->ticket_post_started);
  ASSERT_EQ(s->media(id).size(), 1u);
  EXPECT_EQ(s->media(id)[0].uuid, "media-uuid");
  s->set_ticket(id, "1234");
  rec = s->get(id);
  EXPECT_EQ(rec->state, State::Done);
  EXPECT_EQ(rec->ticket_id, "1234");
  EXPECT_FALSE(rec->ticket_post_started);
  EXPECT_TRUE(fs::exists(s->path_of(id, State::Done)));
  EXPECT_FALSE(fs::exists(s->path_of(id, State::Queued)));
}

TEST_F(SpoolTest, FailedMailKeepsItsReasonAndCanBeRetried) {
  auto s = open();
  auto id = s->accept(mail("f@x"), "smtp").id;
  s->fail(id, "400 unknown creator");
  EXPECT_EQ(s->get(id)->state, State::Failed);
  std::ifstream reason(dir / "failed" / (id + ".reason"));
  std::string text;
  std::getline(reason, text);
  EXPECT_EQ(text, "400 unknown creator");
  EXPECT_TRUE(s->retry(id));
  EXPECT_EQ(s->get(id)->state, State::Queued);
  EXPECT_TRUE(fs::exists(s->path_of(id, State::Queued)));
  EXPECT_TRUE(s->drop(id));
  EXPECT_FALSE(s->get(id));
}

TEST_F(SpoolTest, DeferredMailWaitsForItsTime) {
  auto s = open();
  auto id = s->accept(mail("d@x"), "smtp").id;
  auto now = s->get(id)->received_at;
  s->defer(id, now + 60, "HTTP 503");
  EXPECT_TRUE(s->due(now, 10).empty());
  EXPECT_EQ(s->due(now + 60, 10).size(), 1u);
  EXPECT_EQ(s->get(id)->attempts, 1);
}

TEST_F(SpoolTest, AFileLeftBetweenRenameAndCommitIsAdopted) {
  { open(); }
  std::ofstream(dir / "queue" / "20260101000000-orphan.eml") << mail("orphan@x");
  std::ofstream(dir / "tmp" / "20260101000000-partial.tmp") << "half a mess";
  auto s = open();
  auto rec = s->get("20260101000000-orphan");
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->state, State::Queued);
  EXPECT_EQ(rec->source, "recovered");
  EXPECT_TRUE(fs::is_empty(dir / "tmp"));  // never acknowledged: removed
  EXPECT_EQ(s->accept(mail("orphan@x"), "smtp").kind, AcceptResult::Kind::Duplicate);
}

TEST_F(SpoolTest, AFullQueueRefusesWithoutLosingAnything) {
  auto s = open({200, 0});  // room for one ~117-byte mail, not two
  EXPECT_EQ(s->accept(mail("1@x", std::string(60, 'a')), "smtp").kind, AcceptResult::Kind::Accepted);
  auto r = s->accept(mail("2@x", std::string(60, 'b')), "smtp");
  EXPECT_EQ(r.kind, AcceptResult::Kind::TemporaryFailure);
  EXPECT_NE(r.reason.find("full"), std::string::npos);
  EXPECT_EQ(s->list().size(), 1u);
  EXPECT_TRUE(fs::is_empty(dir / "tmp"));
}

TEST_F(SpoolTest, AnAbandonedIncomingMessageLeavesNoFile) {
  auto s = open();
  {
    Incoming in = s->begin();
    in.write("From: a@x\r\n\r\npartial");
  }
  EXPECT_TRUE(fs::is_empty(dir / "tmp"));
  EXPECT_TRUE(s->list().empty());
}

// Group commit: messages handed in together are synced together, and each
// still gets its own answer — including the second of two copies of one
// Message-ID that land in the same batch, and a message over the queue limit.
TEST_F(SpoolTest, GroupCommitAnswersEveryMessageOfABatch) {
  auto s = open({20 * 70, 0});  // room for about twenty of these ~66-byte mails
  std::mutex m;
  std::vector<AcceptResult> results;
  auto record = [&](AcceptResult r) {
    std::lock_guard lock(m);
    results.push_back(std::move(r));
  };
  for (int i = 0; i < 30; ++i) {
    Incoming in = s->begin();
    in.write(mail(i == 29 ? "0@batch" : std::to_string(i) + "@batch"));  // the last repeats the first
    s->commit_async(std::move(in), "smtp", record);
  }
  s->stop_committer();  // settles all of them
  ASSERT_EQ(results.size(), 30u);
  std::size_t accepted = 0, duplicate = 0, full = 0;
  for (const auto& r : results) {
    accepted += r.kind == AcceptResult::Kind::Accepted;
    duplicate += r.kind == AcceptResult::Kind::Duplicate;
    full += r.kind == AcceptResult::Kind::TemporaryFailure && r.reason == "spool queue full";
  }
  EXPECT_EQ(accepted + duplicate + full, 30u);
  EXPECT_EQ(duplicate, 1u);
  EXPECT_GE(full, 8u);
  EXPECT_EQ(s->list(State::Queued).size(), accepted);
  for (const auto& r : results) {
    if (r.kind == AcceptResult::Kind::Accepted) {
      EXPECT_TRUE(fs::exists(s->path_of(r.id, State::Queued)));
    }
  }
  EXPECT_TRUE(fs::is_empty(dir / "tmp"));  // refused ones leave nothing behind
}

TEST_F(SpoolTest, GroupCommitRestartsAfterStopAndSeesEarlierMessages) {
  auto s = open();
  AcceptResult first{AcceptResult::Kind::TemporaryFailure, "", ""};
  Incoming a = s->begin();
  a.write(mail("once@x"));
  s->commit_async(std::move(a), "smtp", [&](AcceptResult r) { first = r; });
  s->stop_committer();
  ASSERT_EQ(first.kind, AcceptResult::Kind::Accepted);
  AcceptResult second{AcceptResult::Kind::TemporaryFailure, "", ""};
  Incoming b = s->begin();
  b.write(mail("once@x"));
  s->commit_async(std::move(b), "lmtp", [&](AcceptResult r) { second = r; });
  s->stop_committer();
  EXPECT_EQ(second.kind, AcceptResult::Kind::Duplicate);
  EXPECT_EQ(second.id, first.id);
}

// queue.min_free_space with the real disk: the other tests switch the check
// off ({0, 0}); these set the limit around what statvfs reports, so a spool
// that stopped looking at the disk fails them.
TEST_F(SpoolTest, ALimitAboveTheDisksFreeSpaceRefusesMail) {
  { open(); }  // creates the directories, so statvfs sees the spool's file system
  const std::uint64_t free_now = free_bytes_under(dir);
  ASSERT_GT(free_now, 0u);
  auto s = open({0, free_now + kTiB});
  auto why = s->check_capacity();
  ASSERT_TRUE(why.has_value()) << "a disk with less free space than min_free_space must refuse mail";
  EXPECT_EQ(*why, "spool disk nearly full");
  auto r = s->accept(mail("nofree@x"), "smtp");
  EXPECT_EQ(r.kind, AcceptResult::Kind::TemporaryFailure);
  EXPECT_EQ(r.reason, "spool disk nearly full");
  EXPECT_TRUE(s->list().empty());
  EXPECT_TRUE(fs::is_empty(dir / "tmp"));
  EXPECT_TRUE(fs::is_empty(dir / "queue"));
}

TEST_F(SpoolTest, ALimitBelowTheDisksFreeSpaceAcceptsMailThatFits) {
  { open(); }
  const std::uint64_t free_now = free_bytes_under(dir);
  ASSERT_GT(free_now, 0u);
  auto s = open({0, free_now / 4});  // leaves three quarters of the disk for the test's own writes
  EXPECT_FALSE(s->check_capacity().has_value());
  EXPECT_EQ(s->accept(mail("roomy@x"), "smtp").kind, AcceptResult::Kind::Accepted);
  // A message announced (SMTP SIZE) larger than what the limit leaves is
  // refused before a byte of it is written.
  auto why = s->check_capacity(free_now);
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(*why, "spool disk nearly full");
}

// ---- envelope, held and ignored mail (design.md "A support mailbox") ----

namespace {

std::string commit_with(Spool& s, const std::string& raw, const std::string& source, Envelope envelope = {}) {
  Incoming in = s.begin();
  in.write(raw);
  in.set_envelope(std::move(envelope));
  auto r = s.commit(std::move(in), source);
  EXPECT_EQ(r.kind, AcceptResult::Kind::Accepted);
  return r.id;
}

MessageRecord s_get_without_envelope(const std::string& dir) {
  auto s = Spool::open(dir, {0, 0});
  return *s->get(s->accept(mail("bare@x"), "smtp").id);
}

RecordedDecision decided(const std::string& action, const std::string& kind = "", const std::string& from = "a@example.org") {
  return {action, "", action == "ticket" ? "" : "because " + kind, kind, from, "s", R"({"queue":3})"};
}

}  // namespace

TEST_F(SpoolTest, TheEnvelopeIsKeptWithTheMessage) {
  std::string id;
  {
    auto s = open();
    id = commit_with(*s, mail("env@x"), "lmtp", {"bounce@sender.example", {"billing@example.com", "Support@Example.com"}});
  }
  auto rec = open()->get(id);  // durable: a new process sees it
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->source, "lmtp");
  EXPECT_EQ(rec->mail_from, "bounce@sender.example");
  EXPECT_TRUE(rec->envelope_kept);
  EXPECT_FALSE(s_get_without_envelope(dir.string()).envelope_kept) << "bare bytes have no envelope, not a null sender";
  EXPECT_EQ(rec->recipients, (std::vector<std::string>{"billing@example.com", "Support@Example.com"}));
}

TEST_F(SpoolTest, AnEnvelopeAddressWithALineBreakIsNotKept) {
  auto s = open();
  auto id = commit_with(*s, mail("crlf@x"), "deliver", {"a@x\nb", {"ok@example.com", "evil@x\r\nqueue: 1"}});
  auto rec = s->get(id);
  EXPECT_EQ(rec->mail_from, "");
  EXPECT_EQ(rec->recipients, std::vector<std::string>{"ok@example.com"});
}

TEST_F(SpoolTest, ImapMailTakesItsRecipientsFromTheHeader) {
  auto s = open();
  const std::string tail = "From: a@example.org\r\nSubject: s\r\nMessage-ID: <";
  // Delivered-To first (every one of them), then X-Original-To, then To and Cc.
  auto delivered = commit_with(*s,
                               "Delivered-To: Billing@Example.com\r\nDelivered-To: support@example.com\r\n"
                               "X-Original-To: other@example.com\r\nTo: to@example.com\r\n" + tail + "1@x>\r\n\r\nb\r\n",
                               "imap:support");
  auto original = commit_with(*s, "X-Original-To: billing@example.com\r\nTo: to@example.com\r\n" + tail + "2@x>\r\n\r\nb\r\n",
                              "imap:support");
  auto to_cc = commit_with(*s,
                           "To: \"Doe, Jane\" <jane@example.com>, bob@example.com (Bob, B.)\r\n"
                           "Cc: undisclosed-recipients:;, Team: carol@example.com;\r\n"
                           " , <dave@example.com>\r\n" + tail + "3@x>\r\n\r\nb\r\n",
                           "imap:support");
  auto smtp = commit_with(*s, "To: to@example.com\r\n" + tail + "4@x>\r\n\r\nb\r\n", "smtp");
  EXPECT_EQ(s->get(delivered)->recipients, (std::vector<std::string>{"billing@example.com", "support@example.com"}));
  EXPECT_EQ(s->get(original)->recipients, std::vector<std::string>{"billing@example.com"});
  EXPECT_EQ(s->get(to_cc)->recipients,
            (std::vector<std::string>{"jane@example.com", "bob@example.com", "carol@example.com", "dave@example.com"}));
  EXPECT_TRUE(s->get(smtp)->recipients.empty()) << "an SMTP envelope is never guessed from the header";
}

TEST_F(SpoolTest, HeldMailIsKeptUntilAPersonReleasesIt) {
  auto s = open();
  auto id = s->accept(mail("held@x"), "smtp").id;
  s->record_decision(id, decided("hold", "bulk"));
  auto rec = s->get(id);
  EXPECT_EQ(rec->state, State::Held);
  EXPECT_EQ(rec->decision.reason, "because bulk");
  EXPECT_EQ(rec->decision.kind, "bulk");
  EXPECT_TRUE(fs::exists(dir / "held" / (id + ".eml")));
  EXPECT_TRUE(s->due(rec->received_at + 1, 10).empty()) << "held mail is not processed";
  ASSERT_EQ(s->list(State::Held).size(), 1u);
  EXPECT_TRUE(s->list(State::Queued).empty());
  auto st = s->stats();
  ASSERT_EQ(st.held_by_kind.size(), 1u);
  EXPECT_EQ(st.held_by_kind[0], (std::pair<std::string, std::uint64_t>{"bulk", 1}));

  EXPECT_FALSE(s->retry(id)) << "retry is for failed and ignored mail";
  ASSERT_TRUE(s->release(id));
  rec = s->get(id);
  EXPECT_EQ(rec->state, State::Queued);
  EXPECT_TRUE(rec->person_decided);
  EXPECT_EQ(rec->decision.action, "") << "decided again, by the person's mark";
  EXPECT_EQ(s->read_raw(id), mail("held@x"));
  EXPECT_TRUE(fs::exists(s->path_of(id, State::Queued)));
  EXPECT_EQ(s->due(rec->next_attempt_at, 10).size(), 1u);
  EXPECT_FALSE(s->release(id)) << "only held mail is released";
  EXPECT_TRUE(s->stats().held_by_kind.empty());
}

TEST_F(SpoolTest, IgnoredMailIsKeptInDoneAndCanBeRetriedAsAPersonsDecision) {
  auto s = open();
  auto id = s->accept(mail("ign@x"), "smtp").id;
  s->record_decision(id, decided("ignore", "auto_reply"));
  auto rec = s->get(id);
  EXPECT_EQ(rec->state, State::Ignored);
  EXPECT_EQ(to_string(rec->state), "ignored");
  EXPECT_EQ(rec->outcome, "ignored: because auto_reply");
  EXPECT_TRUE(fs::exists(dir / "done" / (id + ".eml")));
  EXPECT_EQ(s->list(State::Ignored).size(), 1u);
  EXPECT_TRUE(s->list(State::Done).empty());
  EXPECT_FALSE(s->release(id)) << "release is for held mail";
  ASSERT_TRUE(s->retry(id));
  rec = s->get(id);
  EXPECT_EQ(rec->state, State::Queued);
  EXPECT_TRUE(rec->person_decided);
  EXPECT_EQ(rec->decision.action, "");
  EXPECT_TRUE(fs::exists(s->path_of(id, State::Queued)));
}

TEST_F(SpoolTest, DoneMailIsNeitherRetriedNorReleased) {
  auto s = open();
  auto id = s->accept(mail("done@x"), "smtp").id;
  s->set_ticket(id, "12");
  EXPECT_FALSE(s->retry(id));
  EXPECT_FALSE(s->release(id));
  EXPECT_EQ(s->get(id)->state, State::Done);
}

TEST_F(SpoolTest, ATicketDecisionStaysQueuedWithItsFields) {
  std::string id;
  {
    auto s = open();
    id = s->accept(mail("t@x"), "smtp").id;
    s->record_decision(id, {"ticket", "billing", "", "", "Jane@Example.com", "Invoice", R"({"queue":3})"});
  }
  auto rec = open()->get(id);
  EXPECT_EQ(rec->state, State::Queued);
  EXPECT_EQ(rec->decision.action, "ticket");
  EXPECT_EQ(rec->decision.route, "billing");
  EXPECT_EQ(rec->decision.from_address, "jane@example.com");
  EXPECT_EQ(rec->decision.subject, "Invoice");
  EXPECT_EQ(rec->decision.ticket_fields, R"({"queue":3})");
  EXPECT_GT(rec->decided_at, 0);
  EXPECT_FALSE(rec->person_decided);
}

TEST_F(SpoolTest, FloodCountsTicketDecisionsOfOneSenderInTheWindow) {
  auto s = open();
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(s->accept(mail("f" + std::to_string(i) + "@x"), "smtp").id);
  const std::int64_t now = s->get(ids[0])->received_at;
  s->record_decision(ids[0], decided("ticket", "", "jane@example.com"));
  s->record_decision(ids[1], decided("ticket", "", "JANE@example.com"));  // addresses compare without case
  s->record_decision(ids[2], decided("hold", "flood", "jane@example.com"));  // not a ticket
  s->record_decision(ids[3], decided("ticket", "", "bob@example.com"));
  EXPECT_EQ(s->count_ticket_decisions("jane@example.com", now - 3600, "other"), 2);
  EXPECT_EQ(s->count_ticket_decisions("Jane@Example.com", now - 3600, ids[0]), 1) << "the message itself is not counted";
  EXPECT_EQ(s->count_ticket_decisions("jane@example.com", now + 3600, "other"), 0) << "outside the window";
  EXPECT_EQ(s->count_ticket_decisions("bob@example.com", now - 3600, "other"), 1);
}

TEST_F(SpoolTest, IgnoredMailExpiresByItsOwnRetention) {
  auto s = open();
  auto ignored = s->accept(mail("i@x"), "smtp").id;
  auto done = s->accept(mail("d@x"), "smtp").id;
  s->record_decision(ignored, decided("ignore", "bounce"));
  s->set_ticket(done, "7");
  const std::int64_t now = s->get(done)->received_at;
  EXPECT_EQ(s->expire_done(now + 100, 10), 1u) << "done_retention: tickets only";
  EXPECT_TRUE(fs::exists(s->path_of(ignored, State::Ignored)));
  EXPECT_EQ(s->expire_ignored(now + 100, 1000), 0u) << "inside ignored_retention";
  EXPECT_TRUE(fs::exists(s->path_of(ignored, State::Ignored)));
  EXPECT_EQ(s->expire_ignored(now + 100, 10), 1u);
  EXPECT_FALSE(fs::exists(s->path_of(ignored, State::Ignored)));
  EXPECT_EQ(s->get(ignored)->state, State::Ignored) << "the record stays";
}

TEST_F(SpoolTest, IgnoredMailPastItsRetentionCannotBeRetried) {
  auto s = open();
  auto id = s->accept(mail("gone@x"), "smtp").id;
  s->record_decision(id, decided("ignore", "bounce"));
  const std::int64_t now = s->get(id)->received_at;
  ASSERT_EQ(s->expire_ignored(now + 100, 10), 1u);
  EXPECT_FALSE(s->retry(id)) << "no file left to post: queued would only fail";
  EXPECT_EQ(s->get(id)->state, State::Ignored);
}

TEST_F(SpoolTest, RetryingFailedMailIsAPersonsDecision) {
  auto s = open();
  auto id = s->accept(mail("failed@x"), "smtp").id;
  s->record_decision(id, decided("ticket", ""));
  s->fail(id, "gave up");
  ASSERT_TRUE(s->retry(id));
  auto rec = s->get(id);
  EXPECT_EQ(rec->state, State::Queued);
  EXPECT_TRUE(rec->person_decided) << "design.md: queue retry skips policy and flood";
  EXPECT_EQ(rec->decision.action, "ticket") << "the recorded decision stays";
}

TEST_F(SpoolTest, ASpoolFromBeforeTheEnvelopeIsMigrated) {
  // The first schema, as mailgate 0.1 created it, with one queued message.
  fs::create_directories(dir / "queue");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "state.sqlite").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE TABLE messages(id TEXT PRIMARY KEY, state TEXT NOT NULL, seen_key TEXT NOT NULL, "
                         "source TEXT, message_id TEXT, size INTEGER, received_at INTEGER, next_attempt_at INTEGER, "
                         "attempts INTEGER DEFAULT 0, last_error TEXT DEFAULT '', user_uuid TEXT DEFAULT '', "
                         "ticket_id TEXT DEFAULT '', ticket_post_started INTEGER DEFAULT 0, outcome TEXT DEFAULT '', "
                         "finished_at INTEGER DEFAULT 0);"
                         "INSERT INTO messages(id, state, seen_key, source, message_id, size, received_at, "
                         "next_attempt_at) VALUES('old-1', 'queued', 'mid:old@x', 'smtp', 'old@x', 5, 1, 1);",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  { std::ofstream(dir / "queue" / "old-1.eml") << mail("old@x"); }
  auto s = open();
  auto rec = s->get("old-1");
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->mail_from, "");
  EXPECT_TRUE(rec->recipients.empty());
  EXPECT_EQ(rec->decision.action, "");
  EXPECT_FALSE(rec->person_decided);
  EXPECT_FALSE(rec->envelope_kept) << "its empty MAIL FROM is unknown, not <>";
  s->record_decision("old-1", decided("hold", "bulk"));
  EXPECT_EQ(s->get("old-1")->state, State::Held);
  ASSERT_TRUE(s->release("old-1"));
  EXPECT_EQ(s->read_raw("old-1"), mail("old@x"));
}

// Recovery hashes the whole file, commit hashes the bytes as they arrive:
// both must name a message without Message-ID by the same key.
TEST_F(SpoolTest, AnOrphanWithTheBytesOfAnAcceptedMailIsADuplicate) {
  {
    auto s = open();
    ASSERT_EQ(s->accept(mail("", "same"), "smtp").kind, AcceptResult::Kind::Accepted);
  }
  std::ofstream(dir / "queue" / "20260101000000-copy.eml") << mail("", "same");
  std::ofstream(dir / "queue" / "20260101000000-other.eml") << mail("", "other");
  auto s = open();
  EXPECT_FALSE(s->get("20260101000000-copy"));
  EXPECT_FALSE(fs::exists(dir / "queue" / "20260101000000-copy.eml"));
  ASSERT_TRUE(s->get("20260101000000-other"));
  EXPECT_EQ(s->accept(mail("", "other"), "smtp").kind, AcceptResult::Kind::Duplicate);
}

// Two threads committing on the caller's connection at once (each commit is
// one transaction): every message is accepted, none is refused because the
// other thread's BEGIN, COMMIT or ROLLBACK landed in its transaction.
TEST_F(SpoolTest, TwoThreadsCommittingAtOnceAreEachAccepted) {
  auto s = open();
  constexpr int kPerThread = 150;
  std::vector<AcceptResult> results[2];
  auto commit_many = [&](int thread) {
    for (int i = 0; i < kPerThread; ++i)
      results[thread].push_back(
          s->accept(mail("", std::to_string(thread) + "-" + std::to_string(i)), "deliver"));
  };
  std::thread other(commit_many, 1);
  commit_many(0);
  other.join();
  for (const auto& per_thread : results)
    for (const auto& r : per_thread) EXPECT_EQ(r.kind, AcceptResult::Kind::Accepted) << r.reason;
  EXPECT_EQ(s->list(State::Queued).size(), 2u * kPerThread);
}
