// The thread index and reply records (thread_index.cpp): a Message-ID finds
// its ticket after a restart, rows outlive done/ until threading.remember,
// a reply is recorded with its index row, and only an earlier message still
// queued makes a reply wait.
#include "mailgate/spool/spool.hpp"

#include <gtest/gtest.h>

#include <ctime>
#include <filesystem>

namespace fs = std::filesystem;
using namespace mailgate::spool;

namespace {

class ThreadIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("mailgate-thread-index-" + std::to_string(::getpid()) + "-" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  std::unique_ptr<Spool> open() { return Spool::open(dir.string(), {0, 0}); }
  static std::string mail(const std::string& message_id) {
    return "From: jane@example.com\r\nMessage-ID: <" + message_id + ">\r\nSubject: s\r\n\r\nbody\r\n";
  }
  fs::path dir;
};

std::int64_t now() { return static_cast<std::int64_t>(std::time(nullptr)); }

}  // namespace

TEST_F(ThreadIndexTest, AMessageIdFindsItsTicketAfterARestart) {
  {
    auto spool = open();
    spool->remember_thread("Root@Example.COM", {"7", "T-0007", "Jane@Example.com", "12", 0});
  }
  auto spool = open();
  auto entry = spool->thread_of("root@example.com");  // Message-IDs compare case-insensitively
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->ticket_id, "7");
  EXPECT_EQ(entry->ticket_full_uuid, "T-0007");
  EXPECT_EQ(entry->creator_address, "jane@example.com");
  EXPECT_EQ(entry->creator_user, "12");
  EXPECT_GE(entry->at, now() - 5);
  EXPECT_FALSE(spool->thread_of("other@example.com"));
  EXPECT_EQ(spool->thread_of_ticket("7")->creator_user, "12");
  EXPECT_FALSE(spool->thread_of_ticket("8"));
  spool->remember_thread("", {"9", "", "", "", 0});  // no Message-ID: nothing can name it
  EXPECT_FALSE(spool->thread_of_ticket("9"));
}

TEST_F(ThreadIndexTest, RowsOlderThanRememberArePrunedOthersKept) {
  auto spool = open();
  spool->remember_thread("old@x", {"1", "", "a@x", "1", now() - 400 * 86400});
  spool->remember_thread("new@x", {"2", "", "a@x", "1", now() - 10});
  EXPECT_EQ(spool->forget_threads_before(now() - 365 * 86400), 1u);
  EXPECT_FALSE(spool->thread_of("old@x"));
  EXPECT_TRUE(spool->thread_of("new@x"));
}

TEST_F(ThreadIndexTest, TheIndexOutlivesDoneRetention) {
  auto spool = open();
  auto id = spool->accept(mail("root@x"), "smtp").id;
  spool->remember_thread("root@x", {"7", "", "jane@example.com", "12", 0});
  spool->set_ticket(id, "7");
  spool->expire_done(now() + 30 * 86400, 7 * 86400);  // done/ emptied a month later
  EXPECT_TRUE(spool->thread_of("root@x"));
}

TEST_F(ThreadIndexTest, AReplyIsRecordedWithItsIndexRowAndJoinedTicketIsNotTicketId) {
  auto spool = open();
  auto id = spool->accept(mail("reply@x"), "imap:support").id;
  spool->set_thread(id, "7", "references");
  spool->mark_reply_post_started(id);
  auto marked = spool->get(id);
  EXPECT_EQ(marked->joined_ticket, "7");
  EXPECT_EQ(marked->thread_by, "references");
  EXPECT_GT(marked->reply_post_started_at, 0);
  EXPECT_EQ(marked->state, State::Queued);
  spool->set_reply(id, "55", "reply@x", {"7", "T-0007", "jane@example.com", "12", 0});
  auto rec = spool->get(id);
  EXPECT_EQ(rec->state, State::Done);
  EXPECT_EQ(rec->reply_id, "55");
  EXPECT_EQ(rec->outcome, "reply 55 on ticket 7 (by references)");
  EXPECT_EQ(rec->ticket_id, "");  // joining 7 does not make 7 this message's ticket
  EXPECT_FALSE(spool->message_with_ticket("7"));
  EXPECT_EQ(spool->message_with_reply("55"), id);
  EXPECT_FALSE(spool->message_with_reply("56"));
  EXPECT_EQ(spool->thread_of("reply@x")->ticket_id, "7");
  EXPECT_TRUE(fs::exists(dir / "done" / (id + ".eml")));
}

TEST_F(ThreadIndexTest, TheFirstReplyPostTimeIsKeptAndClearThreadForgetsTheChoice) {
  auto spool = open();
  auto id = spool->accept(mail("r@x"), "smtp").id;
  spool->set_thread(id, "7", "subject");
  spool->mark_reply_post_started(id);
  const auto first = spool->get(id)->reply_post_started_at;
  spool->mark_reply_post_started(id);
  EXPECT_EQ(spool->get(id)->reply_post_started_at, first);
  spool->clear_thread(id);
  auto rec = spool->get(id);
  EXPECT_EQ(rec->joined_ticket, "");
  EXPECT_EQ(rec->thread_by, "");
  EXPECT_EQ(rec->reply_post_started_at, 0);
}

TEST_F(ThreadIndexTest, OnlyAnEarlierQueuedMessageMakesAReplyWait) {
  auto spool = open();
  auto parent = spool->accept(mail("Parent@x"), "imap:support").id;
  auto failed = spool->accept(mail("failed@x"), "imap:support").id;
  auto ignored = spool->accept(mail("ignored@x"), "imap:support").id;
  auto child = spool->accept(mail("child@x"), "imap:support").id;
  spool->fail(failed, "broken");
  spool->finish(ignored, "ignored: auto-reply");
  EXPECT_EQ(spool->queued_parent({"unknown@x", "parent@X"}, child), parent);
  EXPECT_FALSE(spool->queued_parent({"failed@x", "ignored@x", "unknown@x"}, child));
  // A later message never blocks an earlier one: two mails naming each other do not deadlock.
  EXPECT_FALSE(spool->queued_parent({"child@x"}, parent));
  spool->set_ticket(parent, "7");
  EXPECT_FALSE(spool->queued_parent({"parent@x"}, child));
}

TEST_F(ThreadIndexTest, PostponeCountsNoAttempt) {
  auto spool = open();
  auto id = spool->accept(mail("w@x"), "smtp").id;
  spool->postpone(id, now() + 5, "waiting for X");
  auto rec = spool->get(id);
  EXPECT_EQ(rec->attempts, 0);
  EXPECT_EQ(rec->last_error, "waiting for X");
  EXPECT_TRUE(spool->due(now(), 10).empty());
  EXPECT_EQ(spool->due(now() + 6, 10).size(), 1u);
}

TEST_F(ThreadIndexTest, TheReadOnlyReaderNeverCreatesASpoolAndSeesTheIndex) {
  fs::create_directories(dir);
  EXPECT_FALSE(ThreadIndexReader::open(dir.string()));
  EXPECT_FALSE(fs::exists(dir / "state.sqlite"));
  {
    auto spool = open();
    spool->remember_thread("root@x", {"7", "T-7", "jane@example.com", "12", 0});
  }
  auto reader = ThreadIndexReader::open(dir.string());
  ASSERT_TRUE(reader);
  EXPECT_EQ(reader->thread_of("ROOT@x")->ticket_id, "7");
  EXPECT_EQ(reader->thread_of_ticket("7")->creator_address, "jane@example.com");
  EXPECT_FALSE(reader->thread_of("other@x"));
}
