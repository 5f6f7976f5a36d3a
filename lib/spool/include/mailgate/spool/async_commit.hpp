// The spool's group commit as an Asio operation, for the ingest coroutines
// (SMTP sessions, IMAP fetchers): the messages join the committer's next
// batch and the coroutine resumes on its own executor once the batch is
// durable, so no event loop waits on a disk sync. One message (SMTP) or many
// at once (an IMAP FETCH): the bridge is the same. Header-only: lib/spool
// itself does not depend on Asio.
//
// Threads: the spool calls back on its committer thread; the handler runs on
// the executor associated with it (the calling coroutine's).
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

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

// Many messages from one source, committed together: completes once every
// one is settled, with the results in the order of `messages` (which is left
// empty). No message: completes at once with no results.
template <class Token>
auto async_commit_all(Spool& spool, std::vector<Incoming>&& messages, std::string&& source, Token&& token) {
  namespace asio = net::asio;
  return asio::async_initiate<Token, void(std::vector<AcceptResult>)>(
      [&spool, &messages, source = std::move(source)](auto handler) mutable {
        auto ex = asio::get_associated_executor(handler);
        using Handler = decltype(handler);
        // Results arrive on the committer thread, one by one.
        struct Wait {
          Wait(std::size_t n, Handler h) : left(n), handler(std::move(h)) {}
          std::mutex mutex;
          std::vector<AcceptResult> results;
          std::size_t left;
          Handler handler;
        };
        const std::size_t n = messages.size();
        auto wait = std::make_shared<Wait>(n, std::move(handler));
        wait->results.assign(n, AcceptResult{AcceptResult::Kind::TemporaryFailure, "", "not committed",
                                             Refusal::Temporary});
        if (n == 0) {
          asio::post(ex, [wait]() mutable { std::move(wait->handler)(std::vector<AcceptResult>{}); });
          return;
        }
        for (std::size_t i = 0; i < n; ++i) {
          spool.commit_async(std::move(messages[i]), std::string(source), [wait, i, ex](AcceptResult r) {
            std::lock_guard lock(wait->mutex);
            wait->results[i] = std::move(r);
            if (--wait->left > 0) return;
            asio::post(ex, [wait]() mutable { std::move(wait->handler)(std::move(wait->results)); });
          });
        }
        messages.clear();
      },
      token);
}

}  // namespace mailgate::spool
