// Name resolution with a deadline. getaddrinfo has no timeout of its own (a
// dead DNS server holds it for resolv.conf's timeout × attempts × servers);
// here the caller's deadline cancels the lookup and the answer is a value
// that says "timeout". Asio runs getaddrinfo on a private thread, which may
// still finish after the deadline; its answer is then dropped.
//
// For every outbound connection (the HTTP client, IMAP): `resolve(host,
// port, timeout)` in place of a bare tcp::resolver::async_resolve.
//
// Threads: call from a coroutine; `resolver` belongs to its executor.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "mailgate/net/asio.hpp"

namespace mailgate::net {

struct Resolved {
  tcp::resolver::results_type endpoints;  // empty on failure
  bool timed_out = false;
  std::string error;  // "" on success
};

// Any resolver with Asio's async_resolve(host, service, token) and cancel():
// tcp::resolver in the daemon, a scripted one in tests.
template <class Resolver>
asio::awaitable<Resolved> resolve_within(Resolver& resolver, const std::string& host, const std::string& service,
                                         std::chrono::milliseconds timeout) {
  struct Watch {
    bool waiting = true;
    bool expired = false;
    Resolver* resolver = nullptr;
  };
  auto watch = std::make_shared<Watch>();
  watch->resolver = &resolver;
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_after(timeout);
  timer.async_wait([watch](const boost::system::error_code& ec) {
    if (!ec && watch->waiting && watch->resolver) {
      watch->expired = true;
      watch->resolver->cancel();
    }
  });
  boost::system::error_code ec;
  Resolved out;
  out.endpoints = co_await resolver.async_resolve(host, service, asio::redirect_error(asio::use_awaitable, ec));
  watch->waiting = false;
  watch->resolver = nullptr;  // the timer's handler may still be queued
  timer.cancel();
  if (watch->expired) {
    out = Resolved{};
    out.timed_out = true;
    out.error = "cannot resolve " + host + ": no answer within " + std::to_string(timeout.count()) + " ms";
  } else if (ec) {
    out = Resolved{};
    out.error = "cannot resolve " + host + ": " + ec.message();
  }
  co_return out;
}

// tcp::resolver on the calling coroutine's executor.
asio::awaitable<Resolved> resolve(const std::string& host, const std::string& service,
                                  std::chrono::milliseconds timeout);

}  // namespace mailgate::net
