// The processor: queued message → parse → draft → user → media → ticket,
// persisting each remote result before the next step, so a crash at any
// instant resumes at the step it reached (design.md "Spool").
//
// Exactly once. The ticket POST is the one step that cannot simply be
// repeated: a crash after the API created the ticket and before
// Ledger::record_ticket committed its id, or an answer lost on the way, leaves
// mailgate not knowing whether the ticket exists. So the POST is marked
// (ticket_post_started, with the time the first attempt began) before it is
// sent, and a message found marked with no ticket id is never posted blind:
// it is looked up first (messenger-api.md "Exactly once") — by external_id
// (our spool id) when messenger.external_id is on, else by IQL on creator
// and title — and a ticket found is adopted when it was created since the
// first attempt began and no other message recorded it (two mails with the
// same subject from one sender stay two tickets). Only when nothing is
// found is it posted again. Either way the log says which
// (pipeline.ticket_adopted / pipeline.ticket_reposted). An answer lost
// while mailgate runs is handled the same way inside
// MessengerClient::create_ticket (api.ticket_adopted / api.ticket_reposted).
// What the lookup cannot see it cannot adopt: a search index that lags
// behind a create would let a re-post through; the API documents no such lag.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "mailgate/config/config.hpp"
#include "mailgate/mail/preview.hpp"
#include "mailgate/mail/ticket_draft.hpp"
#include "mailgate/messenger/messenger_client.hpp"
#include "mailgate/net/asio.hpp"
#include "mailgate/pipeline/ledger.hpp"
#include "mailgate/pipeline/threading.hpp"
#include "mailgate/routing/router.hpp"

namespace mailgate::pipeline {

struct ProcessorSettings {
  std::size_t concurrency = 4;                   // messages processed at once
  mail::DraftOptions draft;
  nlohmann::json ticket_defaults = nlohmann::json::object();
  // Routes and policy (serve builds it from the config, SIGHUP rebuilds it).
  // Null: the draft's own ignore reason and ticket_defaults, nothing held.
  std::shared_ptr<const routing::Router> router;
  bool dry_run = false;                          // write requests under spool/dry-run, call nothing
  std::chrono::seconds media_max_age{50 * 60};   // re-upload older media (the API deletes it after 1 h)
  std::chrono::seconds retry_base{30};           // backoff between attempts of one message
  std::chrono::seconds retry_cap{3600};
  std::chrono::seconds give_up_after{5 * 24 * 3600};  // then failed/ (Postfix: maximal_queue_lifetime)
  std::chrono::seconds forbidden_pause{300};     // after refused credentials or a 410, no posting for this long
  bool external_id = false;                      // send the spool id as external_id; look tickets up by it
  std::chrono::milliseconds poll_interval{1000}; // other processes (deliver) add mail too
  config::ThreadingConfig threading;             // replies join their ticket (threading.hpp)
};

class Processor {
 public:
  // `client` may be null in dry-run mode. `ledger` keeps each message's
  // progress (ledger.hpp; SpoolLedger in the daemon) and outlives the processor.
  Processor(net::asio::any_io_executor executor, Ledger& ledger, messenger::MessengerClient* client,
            ProcessorSettings settings);

  // Runs until stop(): picks due messages, at most `concurrency` at once.
  net::asio::awaitable<void> run();
  // New mail arrived: look now rather than at the next poll.
  void wake();
  // No new messages are started; run() returns when the current ones have
  // reached a safe point (their current step finished and was recorded).
  void stop();
  std::size_t in_flight() const { return active_.size(); }
  // SIGHUP: the settings the next messages and steps use (concurrency,
  // draft options, ticket defaults, give_up_after, external_id). dry_run
  // stays as started (the Messenger client exists or not), and so does the
  // shutdown cancel flag, which drafts in progress hold. Call on the
  // processor's executor.
  void reconfigure(ProcessorSettings settings);

  // One message, start to finish. A spool error (disk, database) is logged
  // and the message retried later: it stays queued, nothing is lost.
  net::asio::awaitable<void> process(spool::MessageRecord record);

 private:
  net::asio::awaitable<void> process_steps(spool::MessageRecord record);
  // The decision step (design.md "Order of decisions"): routes and policy,
  // then flood, recorded in the ledger before anything is posted. A message
  // decided before a restart keeps its decision. Returns the fields to post
  // the ticket with, or nullopt when the message is now held or ignored.
  std::optional<nlohmann::json> decide_and_record(const spool::MessageRecord& record, const mail::TicketDraft& draft);
  routing::Decision decide(const spool::MessageRecord& record, const mail::TicketDraft& draft);
  routing::Decision decide_without_router(const mail::TicketDraft& draft, bool person_decided) const;
  nlohmann::json recorded_fields(const spool::MessageRecord& record) const;

  // ---- threading (design.md "Threading"; the reply path) ----
  // Where a message goes after its user and media: a new ticket (with an
  // optional first paragraph), a reply to `ticket`, or nowhere now (an API
  // error was handled: deferred or failed).
  struct ThreadStep {
    enum class Kind { Ticket, Reply, Stop } kind = Kind::Ticket;
    std::string ticket;            // Reply: stored form
    std::string by;                // Reply: "references" or "subject"
    spool::ThreadEntry creator;    // Reply: the ticket's row for the index
    std::string ticket_note;       // Ticket: HTML put before the message (a closed ticket's follow-up)
    std::string why_new;           // Ticket: why a matched thread was not joined, for the outcome
  };

  // ---- posting ----
  // What the user and media steps leave for the POST that follows.
  struct Posting {
    std::string user;                               // stored form
    bool fresh_user = false;                        // created now, not taken from the message or the cache
    std::vector<std::string> attachments;           // media ids, in the draft's order
    std::map<std::string, std::string> att_by_ref;  // media-N → the id's text for att:ID
    bool all_media_fresh = true;                    // no upload was reused
  };
  // The user, the media, then a reply or the ticket.
  net::asio::awaitable<void> post_to_api(const spool::MessageRecord& record, const mail::TicketDraft& draft,
                                         const ThreadHeaders& thread_headers, nlohmann::json ticket_fields);
  // Each step returns false when an API error was handled (deferred or failed).
  net::asio::awaitable<bool> ensure_user(const spool::MessageRecord& record, const mail::TicketDraft& draft,
                                         Posting& posting);
  net::asio::awaitable<bool> ensure_media(const spool::MessageRecord& record, const mail::TicketDraft& draft,
                                          Posting& posting);
  net::asio::awaitable<void> post_ticket(const spool::MessageRecord& record, const mail::TicketDraft& draft,
                                         Posting posting, ThreadStep step, nlohmann::json ticket_fields);
  net::asio::awaitable<bool> adopt_posted_ticket(const spool::MessageRecord& record, const mail::TicketDraft& draft,
                                                 const std::string& user);
  std::function<bool(const std::string&)> ticket_taken_by_another(const std::string& id);
  bool retry_without_stale_reference(const spool::MessageRecord& record, const mail::TicketDraft& draft,
                                     const messenger::ApiError& error, bool fresh_user, bool all_media_fresh,
                                     std::string_view step);
  void write_dry_run(const spool::MessageRecord& record, const mail::TicketDraft& draft,
                     const ThreadHeaders& thread_headers, const nlohmann::json& ticket_fields);
  std::int64_t give_up_clock(const spool::MessageRecord& record);
  void handle_error(const spool::MessageRecord& record, const messenger::ApiError& error, std::string_view step);
  static std::optional<std::string> stale_reference(const messenger::ApiError& error, bool fresh_user,
                                                    bool all_media_fresh);
  // A ticket an earlier POST of this message may have created: looked up and
  // filtered as the header says. nullopt inside the result: nothing to adopt.
  net::asio::awaitable<messenger::Result<std::optional<messenger::TicketRef>>> find_posted_ticket(
      const spool::MessageRecord& record, const std::string& title, const std::string& user);

  // A message naming a still-queued earlier message waits for its outcome:
  // postponed (no attempt counted) and true.
  bool wait_for_thread_parent(const spool::MessageRecord& record, const ThreadHeaders& headers);
  net::asio::awaitable<ThreadStep> choose_thread(const spool::MessageRecord& record, const mail::TicketDraft& draft,
                                                 const ThreadHeaders& headers, const std::string& user);
  // allow and closed for a matched ticket; GET /tickets/{id}, PUT to reopen.
  net::asio::awaitable<ThreadStep> check_thread(const spool::MessageRecord& record, const mail::TicketDraft& draft,
                                                const std::string& user, ThreadMatch match);
  std::optional<ThreadStep> refuse_join(const spool::MessageRecord& record, const mail::TicketDraft& draft,
                                        const std::string& user, const spool::ThreadEntry& creator,
                                        const std::string& ticket_text);
  net::asio::awaitable<std::optional<ThreadStep>> on_closed_ticket(const spool::MessageRecord& record,
                                                                   const ThreadMatch& match,
                                                                   const messenger::FoundTicket& ticket,
                                                                   const std::string& ticket_text);
  // POST /tickets/{id}/replies exactly once (marked before, looked up after a crash).
  // `fresh_user`: the user was just looked up or created, not taken from
  // memory (only a remembered user is suspected when the API refuses it).
  net::asio::awaitable<void> post_reply(const spool::MessageRecord& record, const mail::TicketDraft& draft,
                                        const ThreadStep& step, messenger::NewReply reply, bool fresh_user);
  void finish_reply(const spool::MessageRecord& record, const mail::TicketDraft& draft, const ThreadStep& step,
                    const std::string& reply_id, bool adopted);
  // The index row, then the ticket: a crash between them re-adopts the same ticket.
  void record_ticket(const std::string& id, const mail::TicketDraft& draft, const std::string& user,
                     const messenger::TicketRef& ticket, const std::string& why_new = {});
  void rebuild_thread_matcher();
  // The reply a dry run would post: matched offline (no API to ask).
  std::optional<mail::ThreadPreview> dry_run_thread(const mail::TicketDraft& draft, const ThreadHeaders& headers);
  static ThreadStep new_ticket_step(std::string why_new = {}, std::string note = {});
  static ThreadStep stop_step();
  static ThreadStep reply_step(std::string ticket, std::string by, spool::ThreadEntry creator);


  net::asio::any_io_executor executor_;
  Ledger& ledger_;
  messenger::MessengerClient* client_;
  ProcessorSettings settings_;
  net::asio::steady_timer wake_timer_;
  std::set<std::string> active_;
  bool stopping_ = false;
  std::int64_t paused_until_ = 0;
  static constexpr std::int64_t kSpoolErrorRetry = 60;  // seconds after a spool error
  std::mt19937_64 rng_{std::random_device{}()};
  std::shared_ptr<const ThreadMatcher> thread_matcher_;  // null: threading off (or its patterns refused)
  static constexpr std::int64_t kThreadWaitRecheck = 1;  // seconds between looks at a queued parent
};

// Replaces the draft's att:media-N placeholders with the uploaded UUIDs.
std::string resolve_placeholders(std::string message, const std::map<std::string, std::string>& uuid_by_ref);

}  // namespace mailgate::pipeline
