// The spool's group commit as an Asio operation, for the ingest coroutines
// (SMTP sessions, IMAP fetchers): the message joins the committer's next
// batch and the coroutine resumes on its own executor once the batch is
// durable, so no event loop waits on a disk sync. Header-only: lib/spool
// itself does not depend on Asio.
#pragma once

#include <memory>
#include <string>

#include "mailgate/net/asio.hpp"
#include "mailgate/spool/spool.hpp"

namespace mailgate::spool {

// References only: nothing non-trivial is created inside the caller's
// co_await expression (g++ 12 rule, see messenger_client.cpp).
template <class Token>
auto async_commit(Spool& spool, Incoming&& message, std::string&& source, Token&& token) {
  namespace asio = net::asio;
  return asio::async_initiate<Token, void(AcceptResult)>(
      [&spool, &message, source = std::move(source)](auto handler) mutable {
        auto ex = asio::get_associated_executor(handler);
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        spool.commit_async(std::move(message), std::move(source), [shared, ex](AcceptResult r) {
          asio::post(ex, [shared, r = std::move(r)]() mutable { (*shared)(std::move(r)); });
        });
      },
      token);
}

}  // namespace mailgate::spool
