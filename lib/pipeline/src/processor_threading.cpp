// The processor's threading step and reply path (design.md "Threading"):
// which ticket a message joins, whether it may, what a closed ticket means,
// and the reply POST exactly once. Kept apart from processor.cpp so the
// ticket path reads as before; the decisions themselves are in threading.cpp.
//
// Exactly once for replies, as for tickets: the ticket joined is recorded
// (joined_ticket, thread_by) before any call for it, the reply POST is marked
// (reply_post_started_at) before it is sent, and a message found marked with
// no reply id looks its reply up (find_replies, choose_reply) before posting
// again. A reply another message recorded is never taken for this one.
#include <ctime>

#include "mailgate/log/log.hpp"
#include "mailgate/metrics/metrics.hpp"
#include "mailgate/pipeline/processor.hpp"

namespace mailgate::pipeline {

using net::asio::awaitable;

namespace {
std::int64_t now_unix() { return static_cast<std::int64_t>(std::time(nullptr)); }
constexpr const char* kRepliesHelp = "Replies posted to existing tickets for mail (threading).";
}  // namespace

// Named values, not braced temporaries, in co_return and co_await
// expressions (the g++ 12 rule, see messenger_client.cpp).
Processor::ThreadStep Processor::new_ticket_step(std::string why_new, std::string note) {
  ThreadStep step;
  step.why_new = std::move(why_new);
  step.ticket_note = std::move(note);
  return step;
}
Processor::ThreadStep Processor::stop_step() {
  ThreadStep step;
  step.kind = ThreadStep::Kind::Stop;
  return step;
}
Processor::ThreadStep Processor::reply_step(std::string ticket, std::string by, spool::ThreadEntry creator) {
  ThreadStep step;
  step.kind = ThreadStep::Kind::Reply;
  step.ticket = std::move(ticket);
  step.by = std::move(by);
  step.creator = std::move(creator);
  return step;
}

void Processor::rebuild_thread_matcher() {
  thread_matcher_.reset();
  if (!settings_.threading.enabled) return;
  std::string error;
  thread_matcher_ = ThreadMatcher::build(settings_.threading, &error);
  // The config loader refuses such patterns first; this is a programmer's error.
  if (!thread_matcher_) log::error("pipeline.threading_off", {{"reason", error}});
}

bool Processor::wait_for_thread_parent(const spool::MessageRecord& record, const ThreadHeaders& headers) {
  if (!thread_matcher_ || !record.joined_ticket.empty() || record.ticket_post_started) return false;
  const auto parent_id = ledger_.queued_parent(thread_candidates(headers), record.id);
  if (!parent_id) return false;
  // Look again once the parent has had its next attempt, not before.
  std::int64_t next = now_unix() + kThreadWaitRecheck;
  if (auto parent = ledger_.message(*parent_id)) next = std::max(next, parent->next_attempt_at + kThreadWaitRecheck);
  ledger_.postpone(record.id, next, "waiting for " + *parent_id + " (earlier in its thread)");
  log::info("pipeline.thread_wait", {{"spool_id", record.id}, {"parent", *parent_id},
                                     {"retry_in_s", std::to_string(next - now_unix())}});
  return true;
}

awaitable<Processor::ThreadStep> Processor::choose_thread(const spool::MessageRecord& record,
                                                          const mail::TicketDraft& draft,
                                                          const ThreadHeaders& headers, const std::string& user) {
  if (!record.joined_ticket.empty()) {
    // Chosen before a restart: keep to it (allow was checked then).
    ThreadMatch recorded{record.joined_ticket, record.thread_by == "subject" ? ThreadBy::Subject : ThreadBy::References,
                         ledger_.thread_of_ticket(record.joined_ticket)};
    if (record.reply_post_started_at != 0) {
      const spool::ThreadEntry sender{recorded.ticket_id, "", draft.user.address, user, 0};
      ThreadStep step = reply_step(recorded.ticket_id, record.thread_by, recorded.entry.value_or(sender));
      co_return step;
    }
    ThreadStep step = co_await check_thread(record, draft, user, std::move(recorded));
    co_return step;
  }
  if (!thread_matcher_) co_return new_ticket_step();
  auto lookup = [this](const std::string& message_id) { return ledger_.thread_of(message_id); };
  auto match = thread_matcher_->match(headers, draft.title, lookup);
  if (!match) co_return new_ticket_step();
  if (!match->entry) match->entry = ledger_.thread_of_ticket(match->ticket_id);
  ThreadStep step = co_await check_thread(record, draft, user, std::move(*match));
  co_return step;
}

awaitable<Processor::ThreadStep> Processor::check_thread(const spool::MessageRecord& record,
                                                         const mail::TicketDraft& draft, const std::string& user,
                                                         ThreadMatch match) {
  const std::string& id = record.id;
  const std::string ticket_text = messenger::id_text(match.ticket_id);
  messenger::CallContext ctx{id};
  std::string ticket_id = match.ticket_id;
  auto found = co_await client_->get_ticket(std::move(ticket_id), ctx);
  if (!found) {
    handle_error(record, found.error(), "get_ticket " + ticket_text);
    co_return stop_step();
  }
  if (!found.value()) {
    log::info("pipeline.thread_new_ticket", {{"spool_id", id}, {"ticket", ticket_text},
                                             {"reason", "the API does not know the ticket"}});
    if (!record.joined_ticket.empty()) ledger_.leave_thread(id);
    co_return new_ticket_step("new ticket: ticket " + ticket_text + " unknown to the API");
  }
  const messenger::FoundTicket& ticket = *found.value();
  spool::ThreadEntry creator = match.entry.value_or(
      spool::ThreadEntry{match.ticket_id, ticket.ref.full_uuid, "", ticket.creator, 0});
  if (creator.ticket_full_uuid.empty()) creator.ticket_full_uuid = ticket.ref.full_uuid;
  if (auto refused = refuse_join(record, draft, user, creator, ticket_text)) {
    ThreadStep step = std::move(*refused);
    co_return step;
  }
  if (is_closed(ticket.status, settings_.threading.closed_statuses)) {
    std::optional<ThreadStep> instead = co_await on_closed_ticket(record, match, ticket, ticket_text);
    if (instead) {
      ThreadStep step = std::move(*instead);
      co_return step;
    }
  }
  ledger_.join_thread(id, match.ticket_id, std::string(to_string(match.by)));
  ThreadStep step = reply_step(match.ticket_id, std::string(to_string(match.by)), std::move(creator));
  co_return step;
}

// threading.allow, for a message not already joined: a new ticket when the
// sender may not join, nullopt when it may.
std::optional<Processor::ThreadStep> Processor::refuse_join(const spool::MessageRecord& record,
                                                            const mail::TicketDraft& draft, const std::string& user,
                                                            const spool::ThreadEntry& creator,
                                                            const std::string& ticket_text) {
  if (!record.joined_ticket.empty()) return std::nullopt;  // allowed when it joined
  const JoinVerdict verdict =
      may_join(settings_.threading.allow, draft.user.address, user, creator.creator_address, creator.creator_user);
  if (verdict == JoinVerdict::Join) return std::nullopt;
  log::info("pipeline.thread_new_ticket", {{"spool_id", record.id}, {"ticket", ticket_text},
                                           {"reason", std::string(to_string(verdict))}});
  return new_ticket_step("new ticket: " + std::string(to_string(verdict)) + " (ticket " + ticket_text + ")");
}

// threading.closed for a closed ticket: a new ticket (with a follow-up
// note), or reopened first, or replied to as it is. nullopt: join it; a
// stop step when the reopen failed (handled: deferred or failed).
awaitable<std::optional<Processor::ThreadStep>> Processor::on_closed_ticket(const spool::MessageRecord& record,
                                                                          const ThreadMatch& match,
                                                                          const messenger::FoundTicket& ticket,
                                                                          const std::string& ticket_text) {
  const std::string& id = record.id;
  switch (settings_.threading.closed) {
    case config::ClosedTicket::NewTicket: {
      log::info("pipeline.thread_new_ticket", {{"spool_id", id}, {"ticket", ticket_text},
                                               {"reason", "the ticket is " + ticket.status}});
      if (!record.joined_ticket.empty()) ledger_.leave_thread(id);
      std::optional<ThreadStep> step =
          new_ticket_step("new ticket: ticket " + ticket_text + " is " + ticket.status,
                          follow_up_note(ticket.ref.full_uuid.empty() ? ticket_text : ticket.ref.full_uuid));
      co_return step;
    }
    case config::ClosedTicket::Reopen: {
      // Recorded first: a crash after the PUT resumes with this ticket.
      ledger_.join_thread(id, match.ticket_id, std::string(to_string(match.by)));
      std::string reopen_id = match.ticket_id, status = settings_.threading.reopen_status;
      messenger::CallContext ctx{id};
      auto put = co_await client_->set_ticket_status(std::move(reopen_id), std::move(status), ctx);
      if (!put) {
        handle_error(record, put.error(), "reopen ticket " + ticket_text);
        std::optional<ThreadStep> step = stop_step();
        co_return step;
      }
      log::info("pipeline.ticket_reopened", {{"spool_id", id}, {"ticket", ticket_text}, {"was", ticket.status},
                                             {"status", settings_.threading.reopen_status}});
      break;
    }
    case config::ClosedTicket::Reply: break;
  }
  co_return std::nullopt;
}

awaitable<void> Processor::post_reply(const spool::MessageRecord& record, const mail::TicketDraft& draft,
                                      const ThreadStep& step, messenger::NewReply reply, bool fresh_user) {
  const std::string id = record.id;
  messenger::CallContext ctx{id};
  auto taken = [this, id](const std::string& reply_id) {
    auto owner = ledger_.message_with_reply(reply_id);
    return owner && *owner != id;
  };
  if (record.reply_post_started_at != 0 && record.joined_ticket == step.ticket) {
    std::string ticket_id = step.ticket;
    auto found = co_await client_->find_replies(std::move(ticket_id), ctx);
    if (!found) {
      // Without an answer we cannot know: never post blind; try later.
      handle_error(record, found.error(), "find_replies");
      co_return;
    }
    if (auto mine = messenger::choose_reply(found.value(), reply, record.reply_post_started_at, taken)) {
      finish_reply(record, draft, step, *mine, /*adopted=*/true);
      co_return;
    }
    log::warn("pipeline.reply_reposted",
              {{"spool_id", id}, {"note", "a reply POST before the restart left no reply (lookup found none); posting again"}});
  }
  ledger_.mark_reply_post_started(id);
  std::string ticket_id = step.ticket;
  auto r = co_await client_->add_reply(std::move(ticket_id), std::move(reply), ctx, taken);
  if (!r) {
    // A remembered user an admin deleted: forget it and go again at once,
    // as the ticket path does (only a user taken from memory is suspected).
    if (!retry_without_stale_reference(record, draft, r.error(), fresh_user, /*all_media_fresh=*/true, "add_reply"))
      handle_error(record, r.error(), "add_reply");
    co_return;
  }
  finish_reply(record, draft, step, r.value(), /*adopted=*/false);
}

void Processor::finish_reply(const spool::MessageRecord& record, const mail::TicketDraft& draft,
                             const ThreadStep& step, const std::string& reply_id, bool adopted) {
  ledger_.record_reply(record.id, reply_id, draft.message_id, step.creator);  // before anything else
  metrics::Registry::global().add("mailgate_replies_total", kRepliesHelp, {});
  const std::string ticket_text = messenger::id_text(step.ticket);
  if (adopted)
    log::warn("pipeline.reply_adopted", {{"spool_id", record.id}, {"ticket", ticket_text},
                                         {"reply", messenger::id_text(reply_id)},
                                         {"note", "a POST before the restart had created it; not posted again"}});
  else
    log::info("pipeline.reply_posted", {{"spool_id", record.id}, {"ticket", ticket_text},
                                        {"reply", messenger::id_text(reply_id)}, {"by", step.by},
                                        {"media", std::to_string(draft.media.size())}});
}

std::optional<mail::ThreadPreview> Processor::dry_run_thread(const mail::TicketDraft& draft,
                                                           const ThreadHeaders& headers) {
  auto by_message = [this](const std::string& id) { return ledger_.thread_of(id); };
  auto by_ticket = [this](const std::string& id) { return ledger_.thread_of_ticket(id); };
  auto match = offline_thread(*thread_matcher_, settings_.threading, headers, draft.title, draft.user.address,
                              by_message, by_ticket);
  if (!match) return std::nullopt;
  return mail::ThreadPreview{std::string(to_string(match->by)), messenger::id_text(match->ticket_id)};
}

void Processor::record_ticket(const std::string& id, const mail::TicketDraft& draft, const std::string& user,
                              const messenger::TicketRef& ticket, const std::string& why_new) {
  ledger_.remember_thread(draft.message_id, {ticket.id, ticket.full_uuid, draft.user.address, user, 0});
  ledger_.record_ticket(id, ticket.id, ticket.full_uuid);
  if (!why_new.empty()) ledger_.note_outcome(id, why_new);
}

}  // namespace mailgate::pipeline
