// Drafting off the processor's event loop: a hostile mail that takes its
// whole time budget (mail.max_processing_time) to parse must not hold up the
// API calls of every other message in flight.
#pragma once

#include <cstddef>
#include <string>

#include "mailgate/mail/ticket_draft.hpp"
#include "mailgate/net/asio.hpp"

namespace mailgate::pipeline {

// Drafts run on this many worker threads, shared by the whole process;
// further drafts wait their turn (each is bounded by its time budget).
inline constexpr std::size_t kDraftThreads = 2;

// mail::build_draft on a worker thread; the caller's coroutine resumes on
// its own executor with the result. The options' deadline and cancel flag
// bound the wait (DraftResult::failure says which ended it). Pass lvalues
// (std::move them): g++ 12 mishandles prvalue class arguments to a coroutine
// inside co_await.
net::asio::awaitable<mail::DraftResult> build_draft_off_loop(std::string raw, mail::DraftOptions options);

}  // namespace mailgate::pipeline
