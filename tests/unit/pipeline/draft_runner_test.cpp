// Drafting runs off the processor's event loop within a time budget: a
// hostile mail fails alone, late or never stalls nothing else, and a
// shutdown leaves it queued (issue 13, "Budgets per mail").
#include "mailgate/pipeline/draft_runner.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "mailgate/pipeline/processor.hpp"
#include "mailgate/pipeline/spool_ledger.hpp"

namespace fs = std::filesystem;
using namespace mailgate;

namespace {
// A mail whose HTML costs the parser ~256 steps per tag: 255 open <span>
// (under the sanitiser's nesting bound) and then `kilobytes` of "</x>" end
// tags, each of which HTML5 looks for through all of them. Linear, but slow
// enough (about a second per MB here) to be the mail the budget exists for.
std::string slow_mail(int kilobytes) {
  std::string html;
  for (int i = 0; i < 255; ++i) html += "<span>";
  for (int i = 0; i < kilobytes * 256; ++i) html += "</x>";
  return "From: Eve <eve@example.com>\r\nSubject: slow\r\nContent-Type: text/html\r\n\r\n" + html + "x\r\n";
}

struct TempSpool {
  fs::path dir;
  std::unique_ptr<spool::Spool> spool;
  explicit TempSpool(const std::string& name)
      : dir(fs::temp_directory_path() / ("mailgate-draft-runner-" + name + "-" + std::to_string(::getpid()))) {
    fs::remove_all(dir);
    spool = spool::Spool::open(dir.string(), {0, 0});
  }
  ~TempSpool() { fs::remove_all(dir); }
};
}  // namespace

TEST(DraftRunner, DraftsOnAWorkerWhileTheLoopKeepsRunning) {
  net::asio::io_context io;
  const auto loop_thread = std::this_thread::get_id();
  std::atomic<int> ticks{0};
  bool done = false;
  std::optional<mail::DraftResult> result;
  net::asio::co_spawn(
      io,
      [&]() -> net::asio::awaitable<void> {
        // Lvalues moved in: g++ 12 mishandles prvalue class arguments to a
        // coroutine inside co_await (the parameter aliases the temporary).
        std::string raw = slow_mail(1024);
        mail::DraftOptions options;
        auto r = co_await pipeline::build_draft_off_loop(std::move(raw), std::move(options));
        EXPECT_EQ(std::this_thread::get_id(), loop_thread) << "resumed off the caller's executor";
        result = std::move(r);
        done = true;
      },
      net::asio::detached);
  // A timer on the same loop: it keeps firing while the draft is built.
  net::asio::steady_timer timer(io);
  std::function<void()> tick = [&] {
    timer.expires_after(std::chrono::milliseconds(5));
    timer.async_wait([&](boost::system::error_code) {
      ++ticks;
      if (!done) tick();
    });
  };
  tick();
  io.run();
  ASSERT_TRUE(result && result->draft) << (result ? result->error : "no result");
  EXPECT_NE(result->draft->message.find('x'), std::string::npos);
  EXPECT_GT(ticks.load(), 3) << "the event loop was blocked while drafting";
}

TEST(DraftRunner, AMailOverItsTimeBudgetGoesToFailedWithThatReason) {
  TempSpool s("over");
  auto slow = s.spool->accept(slow_mail(1024), "smtp").id;
  pipeline::ProcessorSettings settings;
  settings.dry_run = true;
  settings.draft.max_processing_time = std::chrono::milliseconds(1);
  net::asio::io_context io;
  auto ledger = pipeline::make_spool_ledger(*s.spool);
  pipeline::Processor processor(io.get_executor(), *ledger, nullptr, settings);
  net::asio::co_spawn(io, processor.process(*s.spool->get(slow)), net::asio::detached);
  io.run();
  auto rec = s.spool->get(slow);
  EXPECT_EQ(rec->state, spool::State::Failed);
  EXPECT_NE(rec->last_error.find("mail.max_processing_time"), std::string::npos) << rec->last_error;
}

TEST(DraftRunner, StoppingCancelsADraftAndLeavesTheMailQueued) {
  TempSpool s("stop");
  auto id = s.spool->accept(slow_mail(1024), "smtp").id;
  pipeline::ProcessorSettings settings;
  settings.dry_run = true;
  settings.draft.cancel = std::make_shared<std::atomic<bool>>(false);
  net::asio::io_context io;
  auto ledger = pipeline::make_spool_ledger(*s.spool);
  pipeline::Processor processor(io.get_executor(), *ledger, nullptr, settings);
  processor.stop();
  EXPECT_TRUE(settings.draft.cancel->load()) << "stop() must reach a draft in progress";
  net::asio::co_spawn(io, processor.process(*s.spool->get(id)), net::asio::detached);
  io.run();
  EXPECT_EQ(s.spool->get(id)->state, spool::State::Queued);
}
