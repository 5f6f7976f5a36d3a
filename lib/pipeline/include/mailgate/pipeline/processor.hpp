// The processor: queued message → parse → draft → user → media → ticket,
// persisting each remote result before the next step, so a crash at any
// instant resumes at the step it reached (design.md "Spool").
//
// The one window in which a crash can duplicate a ticket: after the API has
// created the ticket and before Spool::set_ticket has committed its id. That
// is the rest of the API's response time (the ticket exists before its
// answer reaches us), then, from the answer's arrival, one SQLite
// transaction with no co_await in between (about a millisecond: one fsync,
// plus any wait for the spool's committer thread, which holds the write lock
// for one batch commit). The API offers no idempotency key or ticket lookup
// to close it.
// A message found with ticket_post_started set and no ticket id was inside
// that window (or its POST never arrived); it is posted again and the log
// says so (event pipeline.recovering_ticket_post).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <random>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "mailgate/mail/ticket_draft.hpp"
#include "mailgate/messenger/messenger_client.hpp"
#include "mailgate/net/asio.hpp"
#include "mailgate/spool/spool.hpp"

namespace mailgate::pipeline {

struct ProcessorSettings {
  std::size_t concurrency = 4;                   // messages processed at once
  mail::DraftOptions draft;
  nlohmann::json ticket_defaults = nlohmann::json::object();
  bool dry_run = false;                          // write requests under spool/dry-run, call nothing
  std::chrono::seconds media_max_age{50 * 60};   // re-upload older media (the API deletes it after 1 h)
  std::chrono::seconds retry_base{30};           // backoff between attempts of one message
  std::chrono::seconds retry_cap{3600};
  std::chrono::seconds give_up_after{5 * 24 * 3600};  // then failed/ (Postfix: maximal_queue_lifetime)
  std::chrono::seconds forbidden_pause{300};     // after a 403, no posting for this long
  std::chrono::milliseconds poll_interval{1000}; // other processes (deliver) add mail too
};

class Processor {
 public:
  // `client` may be null in dry-run mode.
  Processor(net::asio::any_io_executor executor, spool::Spool& spool, messenger::MessengerClient* client,
            ProcessorSettings settings);

  // Runs until stop(): picks due messages, at most `concurrency` at once.
  net::asio::awaitable<void> run();
  // New mail arrived: look now rather than at the next poll.
  void wake();
  // No new messages are started; run() returns when the current ones have
  // reached a safe point (their current step finished and was recorded).
  void stop();
  std::size_t in_flight() const { return active_.size(); }

  // One message, start to finish. A spool error (disk, database) is logged
  // and the message retried later: it stays queued, nothing is lost.
  net::asio::awaitable<void> process(spool::MessageRecord record);

 private:
  net::asio::awaitable<void> process_steps(spool::MessageRecord record);
  net::asio::awaitable<void> post_to_api(const spool::MessageRecord& record, const mail::TicketDraft& draft);
  void write_dry_run(const spool::MessageRecord& record, const mail::TicketDraft& draft);
  void handle_error(const spool::MessageRecord& record, const messenger::ApiError& error, std::string_view step);
  static std::optional<std::string> stale_reference(const messenger::ApiError& error, bool fresh_user,
                                                    bool all_media_fresh);

  net::asio::any_io_executor executor_;
  spool::Spool& spool_;
  messenger::MessengerClient* client_;
  ProcessorSettings settings_;
  net::asio::steady_timer wake_timer_;
  std::set<std::string> active_;
  bool stopping_ = false;
  std::int64_t paused_until_ = 0;
  static constexpr std::int64_t kSpoolErrorRetry = 60;  // seconds after a spool error
  std::mt19937_64 rng_{std::random_device{}()};
};

// Replaces the draft's att:media-N placeholders with the uploaded UUIDs.
std::string resolve_placeholders(std::string message, const std::map<std::string, std::string>& uuid_by_ref);

}  // namespace mailgate::pipeline
