// What the split of lib/spool promises beyond spool_test.cpp: the seen-set
// key is built one way for commit and for crash recovery, and the one
// connection shared by the caller's threads never lets one thread's
// statements run inside another thread's transaction.
#include "mailgate/spool/spool.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using namespace mailgate::spool;

namespace {

class SpoolThreadsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("mailgate-spool-threads-test-" + std::to_string(::getpid()) + "-" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  std::unique_ptr<Spool> open() { return Spool::open(dir.string(), {0, 0}); }
  fs::path dir;
};

std::string mail_without_message_id(const std::string& body) {
  return "From: a@example.org\r\nSubject: no id\r\n\r\n" + body + "\r\n";
}

}  // namespace

// Recovery hashes the whole file, commit hashes the bytes as they arrive:
// both must name a message without Message-ID by the same key.
TEST_F(SpoolThreadsTest, AnOrphanWithTheBytesOfAnAcceptedMailIsADuplicate) {
  {
    auto s = open();
    ASSERT_EQ(s->accept(mail_without_message_id("same"), "smtp").kind, AcceptResult::Kind::Accepted);
  }
  std::ofstream(dir / "queue" / "20260101000000-copy.eml") << mail_without_message_id("same");
  std::ofstream(dir / "queue" / "20260101000000-other.eml") << mail_without_message_id("other");
  auto s = open();
  EXPECT_FALSE(s->get("20260101000000-copy"));
  EXPECT_FALSE(fs::exists(dir / "queue" / "20260101000000-copy.eml"));
  ASSERT_TRUE(s->get("20260101000000-other"));
  EXPECT_EQ(s->accept(mail_without_message_id("other"), "smtp").kind, AcceptResult::Kind::Duplicate);
}

// Two threads committing on the caller's connection at once (each commit is
// one transaction): every message is accepted, none is refused because the
// other thread's BEGIN, COMMIT or ROLLBACK landed in its transaction.
TEST_F(SpoolThreadsTest, TwoThreadsCommittingAtOnceAreEachAccepted) {
  auto s = open();
  constexpr int kPerThread = 150;
  std::vector<AcceptResult> results[2];
  auto commit_many = [&](int thread) {
    for (int i = 0; i < kPerThread; ++i)
      results[thread].push_back(
          s->accept(mail_without_message_id(std::to_string(thread) + "-" + std::to_string(i)), "deliver"));
  };
  std::thread other(commit_many, 1);
  commit_many(0);
  other.join();
  for (const auto& per_thread : results)
    for (const auto& r : per_thread) EXPECT_EQ(r.kind, AcceptResult::Kind::Accepted) << r.reason;
  EXPECT_EQ(s->list(State::Queued).size(), 2u * kPerThread);
}
