// The commit bridge: a coroutine hands messages to the spool's committer
// thread and resumes on its own executor with the answers, in order.
#include "mailgate/spool/async_commit.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

namespace fs = std::filesystem;
namespace asio = mailgate::net::asio;
using namespace mailgate::spool;

namespace {

class AsyncCommitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("mailgate-async-commit-test-" + std::to_string(::getpid()) + "-" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    spool = Spool::open(dir.string(), SpoolLimits{0, 0});
  }
  void TearDown() override {
    spool.reset();
    fs::remove_all(dir);
  }
  Incoming message(const std::string& message_id) {
    Incoming in = spool->begin();
    in.write("Message-ID: <" + message_id + ">\r\nSubject: s\r\n\r\nbody\r\n");
    return in;
  }
  // Runs `body` on a fresh io_context; true when it ran to the end on the
  // io_context's own thread.
  template <class F>
  bool run(F body) {
    asio::io_context io;
    bool done = false;
    auto work = asio::make_work_guard(io);
    asio::co_spawn(io, body(std::this_thread::get_id()), [&](std::exception_ptr e) {
      done = true;
      work.reset();
      if (e) std::rethrow_exception(e);
    });
    io.run_for(std::chrono::seconds(30));
    return done;
  }
  fs::path dir;
  std::unique_ptr<Spool> spool;
};

TEST_F(AsyncCommitTest, OneMessageResumesOnTheCallersThread) {
  AcceptResult r{AcceptResult::Kind::TemporaryFailure, "", "", Refusal::Temporary};
  bool same_thread = false;
  ASSERT_TRUE(run([&](std::thread::id caller) -> asio::awaitable<void> {
    Incoming in = message("one@test");
    std::string source = "smtp";
    r = co_await async_commit(*spool, std::move(in), std::move(source), asio::use_awaitable);
    same_thread = std::this_thread::get_id() == caller;
  }));
  EXPECT_EQ(r.kind, AcceptResult::Kind::Accepted);
  EXPECT_TRUE(same_thread);
  EXPECT_EQ(spool->get(r.id)->source, "smtp");
}

TEST_F(AsyncCommitTest, ManyMessagesAnswerInTheirOrder) {
  std::vector<AcceptResult> results;
  bool same_thread = false;
  ASSERT_TRUE(run([&](std::thread::id caller) -> asio::awaitable<void> {
    std::vector<Incoming> batch;
    batch.push_back(message("a@test"));
    batch.push_back(message("b@test"));
    batch.push_back(message("a@test"));  // a duplicate of the first
    std::vector<std::string> ids;
    for (const auto& m : batch) ids.push_back(m.id());
    std::string source = "imap:box";
    results = co_await async_commit_all(*spool, std::move(batch), std::move(source), asio::use_awaitable);
    same_thread = std::this_thread::get_id() == caller;
    EXPECT_TRUE(batch.empty());
    if (results.size() == 3) {
      EXPECT_EQ(results[0].id, ids[0]);
      EXPECT_EQ(results[1].id, ids[1]);
    }
  }));
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].kind, AcceptResult::Kind::Accepted);
  EXPECT_EQ(results[1].kind, AcceptResult::Kind::Accepted);
  EXPECT_EQ(results[2].kind, AcceptResult::Kind::Duplicate);
  EXPECT_EQ(results[2].id, results[0].id);
  EXPECT_TRUE(same_thread);
}

TEST_F(AsyncCommitTest, NoMessagesIsNoWait) {
  std::vector<AcceptResult> results{AcceptResult{AcceptResult::Kind::Accepted, "x", "", Refusal::None}};
  ASSERT_TRUE(run([&](std::thread::id) -> asio::awaitable<void> {
    std::vector<Incoming> none;
    std::string source = "imap:box";
    results = co_await async_commit_all(*spool, std::move(none), std::move(source), asio::use_awaitable);
  }));
  EXPECT_TRUE(results.empty());
}

TEST_F(AsyncCommitTest, AFullQueueIsATypedRefusal) {
  spool.reset();
  spool = Spool::open(dir.string(), SpoolLimits{10, 0});
  AcceptResult r{AcceptResult::Kind::Accepted, "", "", Refusal::None};
  ASSERT_TRUE(run([&](std::thread::id) -> asio::awaitable<void> {
    Incoming in = message("big@test");
    std::string source = "smtp";
    r = co_await async_commit(*spool, std::move(in), std::move(source), asio::use_awaitable);
  }));
  EXPECT_EQ(r.kind, AcceptResult::Kind::TemporaryFailure);
  EXPECT_EQ(r.refusal, Refusal::QueueFull);
}

}  // namespace
