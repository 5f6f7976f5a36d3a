// Processor: the exactly-once discipline lives here. Before each remote call
// we know from the ledger what was already done; after it we record the
// result before doing anything else.
#include "mailgate/pipeline/processor.hpp"

#include <ctime>
#include <functional>
#include <map>

#include "mailgate/log/log.hpp"
#include "mailgate/mail/preview.hpp"
#include "mailgate/metrics/metrics.hpp"
#include "mailgate/net/backoff.hpp"
#include "mailgate/pipeline/draft_runner.hpp"

namespace mailgate::pipeline {

using net::asio::awaitable;
using net::asio::use_awaitable;

namespace {
std::int64_t now_unix() { return static_cast<std::int64_t>(std::time(nullptr)); }
constexpr const char* kTicketsHelp = "Tickets created (or adopted after a crash) for mail.";
}  // namespace

std::string resolve_placeholders(std::string message, const std::map<std::string, std::string>& uuid_by_ref) {
  // The draft emits exactly src="att:media-N"; match with the closing quote
  // so media-1 never matches inside media-10.
  for (const auto& [ref, uuid] : uuid_by_ref) {
    const std::string from = "\"att:" + ref + "\"", to = "\"att:" + uuid + "\"";
    for (std::size_t p = message.find(from); p != std::string::npos; p = message.find(from, p + to.size()))
      message.replace(p, from.size(), to);
  }
  return message;
}

Processor::Processor(net::asio::any_io_executor executor, Ledger& ledger, messenger::MessengerClient* client,
                     ProcessorSettings settings)
    : executor_(executor), ledger_(ledger), client_(client), settings_(std::move(settings)), wake_timer_(executor) {
  rebuild_thread_matcher();
}

void Processor::wake() { wake_timer_.cancel(); }

void Processor::stop() {
  stopping_ = true;
  if (settings_.draft.cancel) settings_.draft.cancel->store(true);  // a draft in progress gives up
  wake_timer_.cancel();
}

awaitable<void> Processor::run() {
  while (!stopping_) {
    const std::size_t free_slots = settings_.concurrency - std::min(settings_.concurrency, active_.size());
    std::vector<spool::MessageRecord> due;
    if (free_slots > 0 && now_unix() >= paused_until_) {
      try {
        due = ledger_.due_messages(now_unix(), free_slots + active_.size());
      } catch (const std::exception& e) {
        // A busy or broken database must not stop the processor for good.
        log::error("pipeline.spool_error", {{"error", e.what()}});
      }
    }
    for (auto& record : due) {
      if (active_.count(record.id) || active_.size() >= settings_.concurrency) continue;
      active_.insert(record.id);
      net::asio::co_spawn(executor_, process(std::move(record)), net::asio::detached);
    }
    wake_timer_.expires_after(settings_.poll_interval);
    boost::system::error_code ec;
    co_await wake_timer_.async_wait(net::asio::redirect_error(use_awaitable, ec));
  }
  // Let in-flight messages reach their next recorded step.
  while (!active_.empty()) {
    net::asio::steady_timer t(executor_, std::chrono::milliseconds(20));
    boost::system::error_code ec;
    co_await t.async_wait(net::asio::redirect_error(use_awaitable, ec));
  }
}

awaitable<void> Processor::process(spool::MessageRecord record) {
  const std::string id = record.id;
  try {
    co_await process_steps(std::move(record));
  } catch (const std::exception& e) {
    // Without this, co_spawn(detached) would drop the error silently.
    log::error("pipeline.spool_error", {{"spool_id", id}, {"error", e.what()}});
    try {
      ledger_.defer(id, now_unix() + kSpoolErrorRetry, std::string("spool error: ") + e.what());
    } catch (const std::exception&) {
      // Still queued; the next poll finds it.
    }
  }
}

awaitable<void> Processor::process_steps(spool::MessageRecord record) {
  const std::string id = record.id;
  struct Done {
    Processor* p;
    std::string id;
    ~Done() {
      p->active_.erase(id);
      p->wake();  // a slot is free
    }
  } done{this, id};

  std::string raw;
  try {
    raw = ledger_.raw_mail(id);
  } catch (const std::exception& e) {
    log::error("pipeline.missing_file", {{"spool_id", id}, {"error", e.what()}});
    ledger_.fail(id, e.what());
    co_return;
  }
  const ThreadHeaders thread_headers = read_thread_headers(raw);
  if (wait_for_thread_parent(record, thread_headers)) co_return;
  // Off the event loop, within mail.max_processing_time (draft_runner.hpp).
  auto result = co_await build_draft_off_loop(std::move(raw), settings_.draft);
  if (result.failure == mail::DraftFailure::Cancelled) {
    log::info("pipeline.draft_cancelled", {{"spool_id", id}, {"note", "shutting down; the mail stays queued"}});
    co_return;
  }
  if (!result.draft) {
    const bool over = result.failure == mail::DraftFailure::OverBudget;
    log::warn(over ? "pipeline.over_budget" : "pipeline.not_a_mail", {{"spool_id", id}, {"reason", result.error}});
    ledger_.fail(id, result.error);
    co_return;
  }
  const mail::TicketDraft& draft = *result.draft;
  auto ticket_fields = decide_and_record(record, draft);
  if (!ticket_fields) co_return;  // held or ignored, and recorded
  if (settings_.dry_run || !client_) {
    write_dry_run(record, draft, thread_headers, *ticket_fields);
    co_return;
  }
  co_await post_to_api(record, draft, thread_headers, std::move(*ticket_fields));
}

std::optional<nlohmann::json> Processor::decide_and_record(const spool::MessageRecord& record,
                                                           const mail::TicketDraft& draft) {
  // Decided before a restart: deciding again would count this sender's
  // flood anew (and a reload may have changed the routes since).
  if (record.decision.action == "ticket") return recorded_fields(record);
  routing::Decision d = decide(record, draft);
  const std::string action(routing::to_string(d.action));
  ledger_.record_decision(record.id, {action, d.route.value_or(""), d.reason, d.kind, draft.user.address, draft.title,
                                     d.ticket_fields.dump()});
  if (d.action == routing::Action::Ticket) return std::move(d.ticket_fields);
  log::info(d.action == routing::Action::Hold ? "pipeline.held" : "pipeline.ignored",
            {{"spool_id", record.id}, {"reason", d.reason}, {"kind", d.kind}, {"route", d.route.value_or("")}});
  // By kind only ("bounce", "flood", …): reasons name header values, too
  // many label values for a time series. Held mail is a gauge from the spool.
  if (d.action == routing::Action::Ignore)
    metrics::Registry::global().add("mailgate_ignored_total", "Messages not turned into tickets, by kind.",
                                    {{"reason", d.kind}});
  return std::nullopt;
}

// Routes and policy, then flood (a ticket only, and not for a message a
// person released: they skip policy and flood).
routing::Decision Processor::decide(const spool::MessageRecord& record, const mail::TicketDraft& draft) {
  if (!settings_.router) return decide_without_router(draft, record.person_decided);
  // Without a kept SMTP envelope (spooled before envelopes were kept) an
  // empty MAIL FROM is unknown, not the null sender of a bounce: no source.
  const bool smtp_envelope_unknown = !record.envelope_kept && (record.source == "smtp" || record.source == "lmtp");
  routing::Envelope envelope{record.mail_from, {}, smtp_envelope_unknown ? std::string() : record.source};
  for (std::string r : record.recipients) {
    for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    envelope.recipients.push_back(std::move(r));
  }
  routing::Decision d = settings_.router->decide(draft, envelope, record.person_decided);
  const auto& flood = settings_.router->flood_policy();
  if (d.action != routing::Action::Ticket || record.person_decided || flood.max <= 0 || draft.user.address.empty())
    return d;
  const int recent = ledger_.count_ticket_decisions(draft.user.address, now_unix() - flood.per.count(), record.id);
  return settings_.router->flood(std::move(d), draft.user.address, recent);
}

// Without a router (tests, tools): what mailgate did before routes existed.
routing::Decision Processor::decide_without_router(const mail::TicketDraft& draft, bool person_decided) const {
  routing::Decision d;
  d.ticket_fields = settings_.ticket_defaults;
  if (draft.ignored && !person_decided) {
    d.action = routing::Action::Ignore;
    d.reason = *draft.ignored;
    d.kind = draft.ignored->substr(0, draft.ignored->find(" ("));
  }
  return d;
}

nlohmann::json Processor::recorded_fields(const spool::MessageRecord& record) const {
  auto fields = nlohmann::json::parse(record.decision.ticket_fields, nullptr, /*allow_exceptions=*/false);
  if (fields.is_object()) return fields;
  log::warn("pipeline.decision_fields_unreadable",
            {{"spool_id", record.id}, {"note", "posting with tickets.defaults instead"}});
  return settings_.ticket_defaults;
}

void Processor::write_dry_run(const spool::MessageRecord& record, const mail::TicketDraft& draft,
                              const ThreadHeaders& thread_headers, const nlohmann::json& ticket_fields) {
  // Only a ticket decision gets here (decide_and_record): say so, rather
  // than read the draft's policy signals again — a released auto-reply
  // is a ticket, not "ignore".
  mail::PreviewDecision decision;
  decision.ticket_fields = ticket_fields;
  auto json = mail::preview_json(draft, decision);
  if (thread_matcher_) mail::add_thread_preview(json, draft, dry_run_thread(draft, thread_headers));
  const std::string where = ledger_.record_dry_run(record.id, mail::dump_json(json) + "\n");
  log::info("pipeline.dry_run", {{"spool_id", record.id}, {"file", where}, {"title", draft.title}});
}

awaitable<void> Processor::post_to_api(const spool::MessageRecord& record, const mail::TicketDraft& draft,
                                       const ThreadHeaders& thread_headers, nlohmann::json ticket_fields) {
  Posting posting;
  if (!co_await ensure_user(record, draft, posting)) co_return;
  if (!co_await ensure_media(record, draft, posting)) co_return;
  // 3. A reply joins its ticket instead (threading.hpp); a message whose
  // ticket POST was sent is past that choice.
  ThreadStep step = new_ticket_step();
  if (!record.ticket_post_started) {
    step = co_await choose_thread(record, draft, thread_headers, posting.user);
    if (step.kind == ThreadStep::Kind::Stop) co_return;
    if (step.kind == ThreadStep::Kind::Reply) {
      messenger::NewReply reply{resolve_placeholders(draft.reply_message, posting.att_by_ref), posting.user,
                                posting.attachments};
      co_await post_reply(record, draft, step, std::move(reply), posting.fresh_user);
      co_return;
    }
  }
  co_await post_ticket(record, draft, std::move(posting), std::move(step), std::move(ticket_fields));
}

// 1. The user: recorded on the message, else the address cache, else the API.
awaitable<bool> Processor::ensure_user(const spool::MessageRecord& record, const mail::TicketDraft& draft,
                                       Posting& posting) {
  std::string user = record.user_uuid;
  if (user.empty()) user = ledger_.cached_user(draft.user.address).value_or("");
  posting.fresh_user = user.empty();
  if (user.empty()) {
    std::string name = draft.user.name, address = draft.user.address;
    const messenger::CallContext ctx{record.id};
    auto r = co_await client_->create_user(std::move(name), std::move(address), ctx);
    if (!r) {
      handle_error(record, r.error(), "create_user");
      co_return false;
    }
    user = r.value();
    ledger_.cache_user(draft.user.address, user);
  }
  if (record.user_uuid != user) ledger_.record_user(record.id, user);
  posting.user = std::move(user);
  co_return true;
}

// 2. Media: reuse what was uploaded less than media_max_age ago.
awaitable<bool> Processor::ensure_media(const spool::MessageRecord& record, const mail::TicketDraft& draft,
                                        Posting& posting) {
  const std::string& id = record.id;
  const messenger::CallContext ctx{id};
  std::map<std::string, spool::MediaRecord> uploaded;
  for (auto& m : ledger_.uploaded_media(id)) uploaded[m.ref] = m;
  std::map<std::string, std::string> uuid_by_ref;
  for (const auto& m : draft.media) {
    auto it = uploaded.find(m.ref);
    if (it != uploaded.end() && now_unix() - it->second.uploaded_at < settings_.media_max_age.count()) {
      uuid_by_ref[m.ref] = it->second.uuid;
      posting.all_media_fresh = false;
    } else {
      if (it != uploaded.end()) log::info("pipeline.reupload_media", {{"spool_id", id}, {"ref", m.ref}});
      std::string name = m.name;
      auto r = co_await client_->upload_media(std::move(name), m.bytes, ctx);
      if (!r) {
        handle_error(record, r.error(), "upload_media " + m.name);
        co_return false;
      }
      ledger_.record_media(id, {m.ref, r.value(), now_unix()});
      metrics::Registry::global().add("mailgate_media_uploaded_bytes_total", "Bytes of attachments uploaded to the API.",
                                      {}, static_cast<double>(m.bytes.size()));
      uuid_by_ref[m.ref] = r.value();
    }
    posting.attachments.push_back(uuid_by_ref[m.ref]);
  }
  // att:ID takes the id's text: 1234, or a-b without quotes.
  for (const auto& [ref, media_id] : uuid_by_ref) posting.att_by_ref[ref] = messenger::id_text(media_id);
  co_return true;
}

// 4. The ticket, exactly once (see the header).
awaitable<void> Processor::post_ticket(const spool::MessageRecord& record, const mail::TicketDraft& draft,
                                       Posting posting, ThreadStep step, nlohmann::json ticket_fields) {
  const std::string& id = record.id;
  if (record.ticket_post_started && co_await adopt_posted_ticket(record, draft, posting.user)) co_return;
  messenger::NewTicket ticket{draft.title, step.ticket_note + resolve_placeholders(draft.message, posting.att_by_ref),
                              posting.user, std::move(posting.attachments), std::move(ticket_fields),
                              settings_.external_id ? id : std::string()};
  ledger_.mark_ticket_post_started(id);
  const messenger::CallContext ctx{id};
  auto taken = ticket_taken_by_another(id);
  auto r = co_await client_->create_ticket(std::move(ticket), ctx, std::move(taken));
  if (!r) {
    if (!retry_without_stale_reference(record, draft, r.error(), posting.fresh_user, posting.all_media_fresh,
                                       "create_ticket"))
      handle_error(record, r.error(), "create_ticket");
    co_return;
  }
  record_ticket(id, draft, posting.user, r.value(), step.why_new);  // no co_await between the answer and this commit
  metrics::Registry::global().add("mailgate_tickets_created_total", kTicketsHelp, {});
  log::info("pipeline.ticket_created", {{"spool_id", id}, {"ticket", messenger::id_text(r.value().id)},
                                        {"full_uuid", r.value().full_uuid},
                                        {"media", std::to_string(draft.media.size())}});
}

// A message marked as posting its ticket: the ticket an earlier POST created
// is adopted. True when the message needs nothing more now (adopted, or the
// lookup failed and it is deferred); false: post again.
awaitable<bool> Processor::adopt_posted_ticket(const spool::MessageRecord& record, const mail::TicketDraft& draft,
                                               const std::string& user) {
  const std::string& id = record.id;
  auto found = co_await find_posted_ticket(record, draft.title, user);
  if (!found) {
    // Without an answer we cannot know: never post blind; try later.
    handle_error(record, found.error(), "find_ticket");
    co_return true;
  }
  if (!found.value()) {
    log::warn("pipeline.ticket_reposted",
              {{"spool_id", id}, {"note", "a POST before the restart left no ticket (lookup found none); posting again"}});
    co_return false;
  }
  const messenger::TicketRef& t = *found.value();
  record_ticket(id, draft, user, t);  // no co_await between the lookup's answer and this commit
  metrics::Registry::global().add("mailgate_tickets_created_total", kTicketsHelp, {});
  log::warn("pipeline.ticket_adopted", {{"spool_id", id}, {"ticket", messenger::id_text(t.id)},
                                        {"full_uuid", t.full_uuid},
                                        {"note", "a POST before the restart had created it; not posted again"}});
  co_return true;
}

// A ticket another message recorded is never adopted for this one.
std::function<bool(const std::string&)> Processor::ticket_taken_by_another(const std::string& id) {
  return [this, id](const std::string& ticket_id) {
    auto owner = ledger_.message_with_ticket(ticket_id);
    return owner && *owner != id;
  };
}

awaitable<messenger::Result<std::optional<messenger::TicketRef>>> Processor::find_posted_ticket(
    const spool::MessageRecord& record, const std::string& title, const std::string& user) {
  messenger::CallContext ctx{record.id};
  messenger::TicketLookup lookup{settings_.external_id ? record.id : std::string(), user, title};
  messenger::TicketLookup query = lookup;
  auto found = co_await client_->find_tickets(std::move(query), ctx);
  if (!found) co_return found.error();
  co_return messenger::choose_ticket(found.value(), lookup, record.ticket_post_started_at,
                                     ticket_taken_by_another(record.id));
}

// A user deleted by an admin, or media the API expired early: forget what we
// remembered and go again at once. Only references taken from memory are
// suspected, so this cannot loop. False: the error is not about them.
bool Processor::retry_without_stale_reference(const spool::MessageRecord& record, const mail::TicketDraft& draft,
                                              const messenger::ApiError& error, bool fresh_user, bool all_media_fresh,
                                              std::string_view step) {
  const auto stale = stale_reference(error, fresh_user, all_media_fresh);
  if (!stale) return false;
  log::warn("pipeline.stale_reference", {{"spool_id", record.id}, {"what", *stale}, {"api", error.message}});
  if (*stale == "user") ledger_.forget_user(draft.user.address);
  ledger_.forget_references(record.id, *stale == "user", *stale == "media");
  ledger_.defer(record.id, now_unix(), std::string(step) + ": " + error.message);
  return true;
}

// Which remembered reference a refused POST /tickets blames: "user",
// "media" or none. The API documents no error codes for this, so the
// message text decides (the fake says "unknown creator …", "unknown media …",
// "media … expired"); only a 4xx, and only for what was not just created.
std::optional<std::string> Processor::stale_reference(const messenger::ApiError& error, bool fresh_user,
                                                      bool all_media_fresh) {
  if (error.kind != messenger::ErrorKind::Permanent || error.status < 400 || error.status >= 500) return std::nullopt;
  std::string text = error.message;
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!fresh_user && (text.find("creator") != std::string::npos || text.find("user") != std::string::npos))
    return "user";
  if (!all_media_fresh && (text.find("media") != std::string::npos || text.find("attachment") != std::string::npos))
    return "media";
  return std::nullopt;
}

// When give_up_after starts counting: at arrival, or at a person's release
// or retry (mail held for a week must not fail on its first 503 after the
// release). The decision is recorded after `record` was read: read it again.
std::int64_t Processor::give_up_clock(const spool::MessageRecord& record) {
  if (!record.person_decided) return record.received_at;
  const auto now = ledger_.message(record.id);
  return std::max(record.received_at, now ? now->decided_at : record.decided_at);
}

void Processor::handle_error(const spool::MessageRecord& record, const messenger::ApiError& error,
                             std::string_view step) {
  const std::string what = std::string(step) + ": " + error.message;
  if (error.kind == messenger::ErrorKind::Permanent) {
    log::warn("pipeline.failed", {{"spool_id", record.id}, {"reason", what}});
    ledger_.fail(record.id, what);
    return;
  }
  if (now_unix() - give_up_clock(record) > settings_.give_up_after.count()) {
    log::error("pipeline.gave_up", {{"spool_id", record.id}, {"reason", what}});
    ledger_.fail(record.id, "gave up after " + std::to_string(settings_.give_up_after.count() / 3600) + " h: " + what);
    return;
  }
  if (error.kind == messenger::ErrorKind::Forbidden) {
    paused_until_ = now_unix() + settings_.forbidden_pause.count();
    log::error("pipeline.paused", {{"spool_id", record.id}, {"reason", what},
                                   {"seconds", std::to_string(settings_.forbidden_pause.count())}});
  }
  // Backoff by attempt count with jitter, so a long outage does not end in
  // a thundering herd of retries.
  const auto wait = net::backoff(settings_.retry_base, settings_.retry_cap, record.attempts, net::kHalfJitter, rng_);
  std::int64_t next = now_unix() + std::chrono::duration_cast<std::chrono::seconds>(wait).count();
  if (error.kind == messenger::ErrorKind::Forbidden) next = std::max(next, paused_until_);
  if (error.retry_after) {
    // A spent rate limit is the API key's, not this message's: nothing is
    // worth posting before it resets (an hourly quota: maybe most of an hour).
    next = std::max(next, now_unix() + error.retry_after->count());
    paused_until_ = std::max(paused_until_, now_unix() + error.retry_after->count());
    log::warn("pipeline.rate_limited", {{"spool_id", record.id}, {"seconds", std::to_string(error.retry_after->count())}});
  }
  log::info("pipeline.deferred", {{"spool_id", record.id}, {"reason", what}, {"retry_in_s", std::to_string(next - now_unix())}});
  ledger_.defer(record.id, next, what);
}

void Processor::reconfigure(ProcessorSettings settings) {
  settings.dry_run = settings_.dry_run;
  settings.draft.cancel = settings_.draft.cancel;
  settings_ = std::move(settings);
  rebuild_thread_matcher();
  wake();  // a higher concurrency takes effect now, not at the next poll
}

}  // namespace mailgate::pipeline
