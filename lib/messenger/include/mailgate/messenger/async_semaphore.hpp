// A counting semaphore for coroutines on one single-threaded executor:
// bounds requests in flight and serialises token fetches.
#pragma once

#include <chrono>
#include <cstddef>
#include <list>

#include "mailgate/net/asio.hpp"

namespace mailgate::messenger {

class AsyncSemaphore {
 public:
  AsyncSemaphore(net::asio::any_io_executor executor, std::size_t count) : executor_(executor), count_(count) {}

  net::asio::awaitable<void> acquire() {
    while (count_ == 0) {
      net::asio::steady_timer timer(executor_, std::chrono::steady_clock::time_point::max());
      auto self = waiters_.insert(waiters_.end(), Waiter{&timer});
      boost::system::error_code ec;
      co_await timer.async_wait(net::asio::redirect_error(net::asio::use_awaitable, ec));
      waiters_.erase(self);
    }
    --count_;
  }

  // Wakes the longest waiter, which re-checks the count when it runs.
  void release() {
    ++count_;
    for (auto& w : waiters_) {
      if (w.woken) continue;
      w.woken = true;
      w.timer->cancel();
      break;
    }
  }

  std::size_t available() const { return count_; }

 private:
  net::asio::any_io_executor executor_;
  std::size_t count_;
  struct Waiter {
    net::asio::steady_timer* timer;
    bool woken = false;
  };
  std::list<Waiter> waiters_;
};

// Releases on scope exit.
class SemaphoreGuard {
 public:
  explicit SemaphoreGuard(AsyncSemaphore& s) : s_(&s) {}
  ~SemaphoreGuard() { release(); }
  SemaphoreGuard(const SemaphoreGuard&) = delete;
  SemaphoreGuard& operator=(const SemaphoreGuard&) = delete;
  void release() {
    if (s_) s_->release();
    s_ = nullptr;
  }

 private:
  AsyncSemaphore* s_;
};

}  // namespace mailgate::messenger
