// The daemon's resolver: Asio's tcp::resolver under resolve_within's deadline.
#include "mailgate/net/resolver.hpp"

namespace mailgate::net {

asio::awaitable<Resolved> resolve(const std::string& host, const std::string& service,
                                  std::chrono::milliseconds timeout) {
  tcp::resolver resolver(co_await asio::this_coro::executor);
  co_return co_await resolve_within(resolver, host, service, timeout);
}

}  // namespace mailgate::net
