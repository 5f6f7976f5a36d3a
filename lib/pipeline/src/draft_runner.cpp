#include "mailgate/pipeline/draft_runner.hpp"

#include <boost/asio/thread_pool.hpp>

namespace mailgate::pipeline {
namespace {

// One pool for the process; destroyed (joined) at exit, which a running
// draft delays by at most its budget, or milliseconds once cancelled.
net::asio::thread_pool& draft_pool() {
  static net::asio::thread_pool pool(kDraftThreads);
  return pool;
}

struct Job {
  std::string raw;
  mail::DraftOptions options;
};

// A plain function posted to the pool (not a coroutine: an Asio awaitable
// frame must not be created on one thread and destroyed on another), whose
// result is dispatched back to the caller's executor. The work guard keeps
// the caller's io_context running meanwhile; the job is shared so neither
// side's lifetime matters to the other.
template <typename Token>
auto async_build_draft(std::shared_ptr<Job> job, Token&& token) {
  return net::asio::async_initiate<Token, void(mail::DraftResult)>(
      [](auto handler, std::shared_ptr<Job> job) {
        auto work = net::asio::make_work_guard(net::asio::get_associated_executor(handler));
        net::asio::post(draft_pool(), [handler = std::move(handler), work = std::move(work), job]() mutable {
          auto result = std::make_shared<mail::DraftResult>(mail::build_draft(job->raw, job->options));
          auto executor = work.get_executor();
          net::asio::dispatch(executor, [handler = std::move(handler), work = std::move(work), result]() mutable {
            std::move(handler)(std::move(*result));
          });
        });
      },
      token, std::move(job));
}

}  // namespace

net::asio::awaitable<mail::DraftResult> build_draft_off_loop(std::string raw, mail::DraftOptions options) {
  auto job = std::make_shared<Job>(Job{std::move(raw), std::move(options)});
  co_return co_await async_build_draft(job, net::asio::use_awaitable);
}

}  // namespace mailgate::pipeline
