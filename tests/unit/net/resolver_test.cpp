// Name resolution ends within its deadline, whatever the DNS server does.
#include "mailgate/net/resolver.hpp"

#include <gtest/gtest.h>

namespace asio = mailgate::net::asio;
using mailgate::net::Resolved;
using mailgate::net::tcp;

namespace {

using namespace std::chrono_literals;

// A DNS server that never answers: the lookup completes only when cancelled.
struct SilentResolver {
  asio::steady_timer never;
  explicit SilentResolver(asio::any_io_executor ex) : never(ex, asio::steady_timer::time_point::max()) {}
  template <class Token>
  auto async_resolve(const std::string&, const std::string&, Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code, tcp::resolver::results_type)>(
        [this](auto handler) {
          never.async_wait([h = std::move(handler)](boost::system::error_code ec) mutable {
            std::move(h)(ec ? ec : asio::error::host_not_found, tcp::resolver::results_type{});
          });
        },
        token);
  }
  void cancel() { never.cancel(); }
};

template <class F>
Resolved run(F body) {
  asio::io_context io;
  Resolved out;
  out.error = "never ran";
  asio::co_spawn(io, body(), [&](std::exception_ptr e, Resolved r) {
    if (e) std::rethrow_exception(e);
    out = std::move(r);
  });
  io.run_for(20s);
  return out;
}

TEST(Resolver, ResolvesLocalNames) {
  Resolved r = run([]() -> asio::awaitable<Resolved> { co_return co_await mailgate::net::resolve("127.0.0.1", "993", 5s); });
  EXPECT_EQ(r.error, "");
  ASSERT_FALSE(r.endpoints.empty());
  EXPECT_EQ(r.endpoints.begin()->endpoint().port(), 993);
  r = run([]() -> asio::awaitable<Resolved> { co_return co_await mailgate::net::resolve("localhost", "25", 5s); });
  EXPECT_EQ(r.error, "");
  EXPECT_FALSE(r.endpoints.empty());
}

TEST(Resolver, ASilentServerIsATimeoutNotAHang) {
  auto start = std::chrono::steady_clock::now();
  Resolved r = run([]() -> asio::awaitable<Resolved> {
    SilentResolver silent(co_await asio::this_coro::executor);
    co_return co_await mailgate::net::resolve_within(silent, "mail.example.com", "993", 100ms);
  });
  EXPECT_TRUE(r.timed_out);
  EXPECT_TRUE(r.endpoints.empty());
  EXPECT_EQ(r.error, "cannot resolve mail.example.com: no answer within 100 ms");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(Resolver, AFailureIsAValueWithItsReason) {
  Resolved r = run([]() -> asio::awaitable<Resolved> {
    co_return co_await mailgate::net::resolve("name.invalid", "993", 10s);  // RFC 6761: never resolves
  });
  EXPECT_TRUE(r.endpoints.empty());
  EXPECT_EQ(r.error.rfind("cannot resolve name.invalid: ", 0), 0u) << r.error;
}

}  // namespace
