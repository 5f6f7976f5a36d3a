// Runs a test's coroutine on a fresh io_context until it ends (or `limit`
// passes, which fails the test): protocol tests over in-memory streams.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <exception>

#include "mailgate/net/asio.hpp"

namespace mailgate::test {

// `body(executor)` returns the awaitable to run.
template <class F>
void run_coroutine(F body, std::chrono::seconds limit = std::chrono::seconds(20)) {
  net::asio::io_context io;
  bool done = false;
  net::asio::co_spawn(io, body(io.get_executor()), [&](std::exception_ptr e) {
    done = true;
    if (e) std::rethrow_exception(e);
  });
  io.run_for(limit);
  EXPECT_TRUE(done);
}

}  // namespace mailgate::test
