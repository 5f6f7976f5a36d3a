// `mailgate serve`: wires spool, processor, Messenger client and SMTP
// listener together; handles signals and systemd notification.
//
// Threads: the SMTP listener, IMAP fetchers, signals and systemd run on the
// main thread's io_context (`io`); the processor and the Messenger client on
// a second one (`processing_io`), so a session never waits behind the
// processor's database commits; the spool's committer thread makes received
// mail durable in batches. A reload runs on the main thread and posts what
// belongs to the processing thread to it.
#include <algorithm>
#include <csignal>
#include <iostream>
#include <memory>
#include <thread>

#include "cli.hpp"
#include "metrics_server.hpp"
#include "mailgate/config/config.hpp"
#include "mailgate/imap/fetcher.hpp"
#include "mailgate/log/log.hpp"
#include "mailgate/messenger/messenger_client.hpp"
#include "mailgate/pipeline/processor.hpp"
#include "mailgate/pipeline/spool_ledger.hpp"
#include "mailgate/routing/router.hpp"
#include "mailgate/smtp/smtp_server.hpp"
#include "mailgate/spool/spool.hpp"
#include "sd_notify.hpp"
#include "settings.hpp"

namespace mailgate::cli {

using net::asio::awaitable;
using net::asio::use_awaitable;

namespace {

constexpr std::chrono::seconds kDrainTimeout{30};  // SIGTERM: time for sessions and steps to finish
constexpr std::chrono::microseconds kHeartbeatWithoutWatchdog{60'000'000};

bool threading_changed(const config::ThreadingConfig& a, const config::ThreadingConfig& b) {
  return a.enabled != b.enabled || a.subject_patterns != b.subject_patterns || a.allow != b.allow ||
         a.closed != b.closed || a.closed_statuses != b.closed_statuses || a.reopen_status != b.reopen_status ||
         a.strip_quoted != b.strip_quoted || a.remember != b.remember;
}

// The routes and policy of `c`; null, with the errors (FILE:LINE:COL:
// message) filled in, when the Router refuses a pattern.
std::shared_ptr<const routing::Router> build_router(const config::Config& c, std::vector<std::string>& errors) {
  std::shared_ptr<const routing::Router> router = routing::Router::build(c, &errors);
  if (!errors.empty()) return nullptr;
  if (!router) errors.push_back(c.file + ": the routes cannot be used");
  return router;
}

// Waits until nothing is busy or the deadline passes, then stops the loop.
awaitable<void> drain_then_stop(net::asio::io_context& ctx, std::chrono::steady_clock::time_point deadline,
                                std::function<bool()> busy) {
  while (std::chrono::steady_clock::now() < deadline && busy()) {
    net::asio::steady_timer t(ctx, std::chrono::milliseconds(50));
    co_await t.async_wait(use_awaitable);
  }
  ctx.stop();
}

// SIGHUP. What can change without dropping a connection is applied; what
// cannot (sockets bound, the spool opened, the HTTP client's trust store,
// dry-run or live) is named as needing a restart and kept as running, so a
// later reload still names it. Keys are compared by value: a changed secret
// (the file or variable it comes from rewritten) counts.
struct ReloadDiff {
  std::vector<std::string> changed;        // applied
  std::vector<std::string> needs_restart;  // not applied
  void note(bool differs, std::vector<std::string>& into, const std::string& key) {
    if (differs) into.push_back(key);
  }
  void live(bool differs, const std::string& key) { note(differs, changed, key); }
  void restart(bool differs, const std::string& key) { note(differs, needs_restart, key); }
};

bool same_listen(const std::vector<config::ListenAddress>& a, const std::vector<config::ListenAddress>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].host != b[i].host || a[i].port != b[i].port) return false;
  return true;
}

bool same_metrics(const std::optional<config::MetricsConfig>& a, const std::optional<config::MetricsConfig>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || (a->listen.host == b->listen.host && a->listen.port == b->listen.port);
}

bool same_tls(const std::optional<config::TlsFiles>& a, const std::optional<config::TlsFiles>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || (a->cert_file == b->cert_file && a->key_file == b->key_file);
}

bool same_mailbox(const config::ImapMailboxConfig& a, const config::ImapMailboxConfig& b) {
  return a.name == b.name && a.host == b.host && a.port == b.port && a.security == b.security &&
         a.ca_file == b.ca_file && a.username == b.username && a.auth == b.auth &&
         a.password.value == b.password.value && a.token_file == b.token_file &&
         a.token_command == b.token_command && a.folder == b.folder && a.after_import == b.after_import &&
         a.move_to == b.move_to && a.idle == b.idle && a.poll_interval == b.poll_interval &&
         a.max_message_size == b.max_message_size && a.oversized_folder == b.oversized_folder;
}

std::string join(const std::vector<std::string>& keys) {
  std::string out;
  for (const auto& k : keys) out += (out.empty() ? "" : ",") + k;
  return out.empty() ? "none" : out;
}


void log_reload_failed(const std::string& file, const std::string& error) {
  log::error("serve.reload_failed", {{"config", file}, {"error", error}, {"note", "the running configuration stays"}});
}

// IMAP fetchers a reload prepared (constructed, not started) before it
// changes anything: entry i serves next.imap[i]; null where the running
// fetcher is kept.
struct NextFetchers {
  std::vector<std::unique_ptr<imap::Fetcher>> fetchers;
  std::vector<bool> fresh;  // fetchers[i] is new: start it
};

// The daemon: each step of serve() is a method; the members live as long
// as serve() runs, declared in the order they must be built (and the
// reverse of the order they are torn down).
class Daemon {
 public:
  Daemon(std::string file, config::Config cfg) : file_(std::move(file)), cfg_(std::move(cfg)) {}

  // Each returns the exit code to stop with, or nullopt to go on.
  std::optional<int> open_spool();
  std::optional<int> start_processing(std::shared_ptr<const routing::Router> router);
  std::optional<int> start_ingest();
  std::optional<int> start_metrics();
  // Runs until SIGTERM/SIGINT has drained both threads; kExitOk.
  int run();

 private:
  void wake_processor();
  std::unique_ptr<imap::Fetcher> make_fetcher(const config::ImapMailboxConfig& box);
  void start_fetcher(imap::Fetcher& f);
  void wait_signal();
  void drain(int sig);
  void beat();
  void log_ready();

  void reload();
  void keep_restart_only(config::Config& next, ReloadDiff& d) const;
  bool prepare_fetchers(const config::Config& next, ReloadDiff& d, NextFetchers& prepared);
  bool reconfigure_smtp(const config::Config& next, ReloadDiff& d);
  void swap_fetchers(const config::Config& next, NextFetchers prepared, ReloadDiff& d);
  void apply_messenger(const config::Config& next, ReloadDiff& d);
  void apply_processing(const config::Config& next, std::shared_ptr<const routing::Router> router, ReloadDiff& d);

  const std::string file_;
  config::Config cfg_;  // as running: a reload replaces what it applies
  std::unique_ptr<spool::Spool> spool;
  net::asio::io_context io;             // SMTP, IMAP, signals, systemd
  net::asio::io_context processing_io;  // processor and Messenger client
  std::unique_ptr<messenger::MessengerClient> client;
  std::unique_ptr<pipeline::Ledger> ledger;  // the processor's records, in the spool
  std::unique_ptr<pipeline::Processor> processor;
  std::unique_ptr<smtp::SmtpServer> smtp_server;
  // fetchers[i] serves cfg_.imap[i]. A fetcher a reload stopped is kept in
  // `retired` until its run() has returned (its coroutine uses it until then).
  std::vector<std::unique_ptr<imap::Fetcher>> fetchers;
  std::vector<std::unique_ptr<imap::Fetcher>> retired;
  std::unique_ptr<MetricsServer> metrics;
  bool stopping_ = false;
  // Caught from construction, before the first listener opens: a SIGHUP or
  // SIGTERM sent as soon as the port answers waits for run() instead of
  // killing the daemon (SIGHUP's default action). Only config loading, which
  // has nothing to lose, is still ended by them.
  net::asio::signal_set signals_{io, SIGTERM, SIGINT, SIGHUP};
  net::asio::steady_timer heartbeat_{io};
  std::chrono::microseconds heartbeat_interval_ = kHeartbeatWithoutWatchdog;
};

std::optional<int> Daemon::open_spool() {
  try {
    spool = spool::Spool::open(cfg_.spool_dir, spool_limits(cfg_));
  } catch (const std::exception& e) {
    log::error("serve.spool_unusable", {{"dir", cfg_.spool_dir}, {"error", e.what()}});
    return kExitTempFail;
  }
  return std::nullopt;
}

// The Messenger client (live mode only) and the processor, on processing_io.
std::optional<int> Daemon::start_processing(std::shared_ptr<const routing::Router> router) {
  try {
    if (!dry_run(cfg_.messenger.mode))
      client = std::make_unique<messenger::MessengerClient>(processing_io.get_executor(), messenger_settings(cfg_));
  } catch (const std::exception& e) {
    log::error("serve.messenger_setup_failed", {{"error", e.what()}});
    return kExitConfig;
  }
  ledger = pipeline::make_spool_ledger(*spool);
  processor = std::make_unique<pipeline::Processor>(processing_io.get_executor(), *ledger, client.get(), processor_settings(cfg_, router));
  return std::nullopt;
}

void Daemon::wake_processor() {
  net::asio::post(processing_io, [this] { processor->wake(); });
}

// SMTP and IMAP mailboxes: one fetcher each, on the ingest thread; one
// failing mailbox only ever waits on its own backoff.
std::optional<int> Daemon::start_ingest() {
  if (cfg_.smtp) {
    smtp_server = std::make_unique<smtp::SmtpServer>(io.get_executor(), smtp_settings(*cfg_.smtp), *spool,
                                                     [this](const std::string&) { wake_processor(); });
    try {
      smtp_server->start();
    } catch (const std::exception& e) {
      log::error("serve.listen_failed", {{"error", e.what()}});
      return kExitTempFail;
    }
  }
  try {
    for (const auto& box : cfg_.imap) {
      fetchers.push_back(make_fetcher(box));
      start_fetcher(*fetchers.back());
    }
  } catch (const std::exception& e) {
    log::error("serve.imap_setup_failed", {{"error", e.what()}});
    return kExitConfig;
  }
  return std::nullopt;
}

std::unique_ptr<imap::Fetcher> Daemon::make_fetcher(const config::ImapMailboxConfig& box) {
  auto f = std::make_unique<imap::Fetcher>(io.get_executor(), *spool, std::make_unique<imap::SpoolMarkStore>(*spool),
                                           mailbox_settings(box));
  f->on_accepted = [this](const std::string&) { wake_processor(); };
  return f;
}

void Daemon::start_fetcher(imap::Fetcher& f) {
  net::asio::co_spawn(io, f.run(), [this, done = &f](std::exception_ptr) {
    std::erase_if(retired, [done](const auto& r) { return r.get() == done; });
  });
}

std::optional<int> Daemon::start_metrics() {
  if (!cfg_.metrics) return std::nullopt;
  try {
    metrics = std::make_unique<MetricsServer>(io.get_executor(), *spool, cfg_.metrics->listen.host,
                                              cfg_.metrics->listen.port);
    metrics->start();
  } catch (const std::exception& e) {
    log::error("serve.listen_failed", {{"what", "metrics"}, {"error", e.what()}});
    return kExitTempFail;
  }
  return std::nullopt;
}

int Daemon::run() {
  net::asio::co_spawn(processing_io, processor->run(), net::asio::detached);
  auto processing_guard = net::asio::make_work_guard(processing_io);
  std::thread processing([this] { processing_io.run(); });
  wait_signal();
  if (const auto watchdog = daemon::watchdog_interval_usec()) heartbeat_interval_ = std::chrono::microseconds(watchdog);
  beat();
  log_ready();
  daemon::sd_notify("READY=1\nSTATUS=accepting mail");
  io.run();
  processing_guard.reset();
  processing.join();
  // Messages still in the committer's hands are settled while `io` can
  // still take their completions (the sessions they belong to are gone).
  spool->stop_committer();
  log::info("serve.stopped", {});
  return kExitOk;
}

void Daemon::log_ready() {
  std::string ports;
  if (smtp_server)
    for (auto p : smtp_server->bound_ports()) ports += (ports.empty() ? "" : ",") + std::to_string(p);
  log::info("serve.ready", {{"config", file_}, {"spool", cfg_.spool_dir},
                            {"mode", dry_run(cfg_.messenger.mode) ? "dry-run" : "live"},
                            {"smtp_ports", ports.empty() ? "none" : ports},
                            {"imap_mailboxes", std::to_string(fetchers.size())}});
}

// Signals: TERM/INT drain and exit 0; HUP reloads what can change live.
void Daemon::wait_signal() {
  signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    if (sig != SIGHUP) {
      drain(sig);
      return;
    }
    if (!stopping_) reload();
    wait_signal();
  });
}

// Stops accepting, then waits (bounded) for sessions and in-flight steps,
// each on its own thread, and stops that thread's loop.
void Daemon::drain(int sig) {
  log::info("serve.stopping", {{"signal", sig == SIGTERM ? "TERM" : "INT"}});
  daemon::sd_notify("STOPPING=1");
  stopping_ = true;
  if (smtp_server) smtp_server->stop();
  for (auto& f : fetchers) f->stop();
  if (metrics) metrics->stop();
  const auto deadline = std::chrono::steady_clock::now() + kDrainTimeout;
  net::asio::post(processing_io, [this, deadline] {
    processor->stop();
    net::asio::co_spawn(processing_io,
                        drain_then_stop(processing_io, deadline, [this] { return processor->in_flight() > 0; }),
                        net::asio::detached);
  });
  net::asio::co_spawn(io, drain_then_stop(io, deadline, [this] { return smtp_server && smtp_server->sessions() > 0; }),
                      net::asio::detached);
}

// systemd's watchdog and status; the spool's retention on the same beat.
void Daemon::beat() {
  if (stopping_) return;
  daemon::sd_notify("WATCHDOG=1");
  heartbeat_.expires_after(heartbeat_interval_);
  heartbeat_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    spool->expire_done(now, cfg_.queue.done_retention.count());
    spool->expire_ignored(now, cfg_.policy.ignored_retention.count());
    spool->forget_threads_before(now - cfg_.threading.remember.count());
    beat();
  });
}

// SIGHUP: validate the whole file first (and load what can fail: the TLS
// certificate, the mailboxes' trust anchors); on any error nothing
// changes. Then apply what can change live, each part on its own thread.
void Daemon::reload() {
  auto again = config::load_config_file(file_);
  if (!again.config) {
    for (const auto& e : again.errors) log_reload_failed(file_, e.to_string());
    return;
  }
  config::Config next = std::move(*again.config);
  std::vector<std::string> route_errors;
  auto next_router = build_router(next, route_errors);
  if (!next_router) {
    for (const auto& e : route_errors) log_reload_failed(file_, e);
    return;
  }
  ReloadDiff d;
  keep_restart_only(next, d);
  NextFetchers prepared;
  if (!prepare_fetchers(next, d, prepared) || !reconfigure_smtp(next, d)) return;
  // Nothing below can fail.
  swap_fetchers(next, std::move(prepared), d);
  apply_messenger(next, d);
  apply_processing(next, std::move(next_router), d);
  d.live(next.log.format != cfg_.log.format, "log.format");
  log::set_format(log_format(next.log.format));
  cfg_ = std::move(next);
  log::info("serve.reloaded", {{"config", file_}, {"changed", join(d.changed)}});
  if (!d.needs_restart.empty())
    log::warn("serve.reload_needs_restart", {{"config", file_}, {"keys", join(d.needs_restart)},
                                             {"note", "not applied; restart mailgate for these"}});
}

// Bound at start, or fixed by what was built: named, and kept as running.
void Daemon::keep_restart_only(config::Config& next, ReloadDiff& d) const {
  d.restart(next.spool_dir != cfg_.spool_dir, "spool_dir");
  next.spool_dir = cfg_.spool_dir;
  d.restart(next.queue.max_size != cfg_.queue.max_size, "queue.max_size");
  d.restart(next.queue.min_free_space != cfg_.queue.min_free_space, "queue.min_free_space");
  next.queue.max_size = cfg_.queue.max_size;
  next.queue.min_free_space = cfg_.queue.min_free_space;
  d.restart(!same_metrics(next.metrics, cfg_.metrics), "metrics.listen");
  next.metrics = cfg_.metrics;
  d.restart(next.messenger.mode != cfg_.messenger.mode, "messenger.mode");
  d.restart(next.messenger.ca_file != cfg_.messenger.ca_file, "messenger.ca_file");
  d.restart(next.messenger.allow_plain_http != cfg_.messenger.allow_plain_http, "messenger.allow_plain_http");
  d.restart(next.messenger.max_in_flight != cfg_.messenger.max_in_flight, "messenger.max_in_flight");
  next.messenger.mode = cfg_.messenger.mode;
  next.messenger.ca_file = cfg_.messenger.ca_file;
  next.messenger.allow_plain_http = cfg_.messenger.allow_plain_http;
  next.messenger.max_in_flight = cfg_.messenger.max_in_flight;
  if (next.smtp.has_value() != cfg_.smtp.has_value()) {
    d.restart(true, "smtp");
    next.smtp = cfg_.smtp;
  } else if (next.smtp) {
    d.restart(!same_listen(next.smtp->listen, cfg_.smtp->listen), "smtp.listen");
    d.restart(next.smtp->protocol != cfg_.smtp->protocol, "smtp.protocol");
    next.smtp->listen = cfg_.smtp->listen;
    next.smtp->protocol = cfg_.smtp->protocol;
  }
}

// New or changed mailboxes get a fetcher, constructed but not started.
bool Daemon::prepare_fetchers(const config::Config& next, ReloadDiff& d, NextFetchers& prepared) {
  try {
    for (const auto& box : next.imap) {
      auto old = std::find_if(cfg_.imap.begin(), cfg_.imap.end(), [&](const auto& b) { return b.name == box.name; });
      if (old != cfg_.imap.end() && same_mailbox(*old, box)) {
        prepared.fetchers.push_back(nullptr);  // kept: moved over by swap_fetchers
        prepared.fresh.push_back(false);
      } else {
        prepared.fetchers.push_back(make_fetcher(box));
        prepared.fresh.push_back(true);
        d.live(true, "imap." + box.name + (old == cfg_.imap.end() ? "(added)" : "(changed)"));
      }
    }
  } catch (const std::exception& e) {
    log_reload_failed(file_, std::string("imap: ") + e.what());
    return false;
  }
  return true;
}

bool Daemon::reconfigure_smtp(const config::Config& next, ReloadDiff& d) {
  if (!cfg_.smtp || !smtp_server) return true;
  const auto& o = *cfg_.smtp;
  const auto& n = *next.smtp;
  try {
    smtp_server->reconfigure(smtp_settings(n));  // loads the certificate first; throws changing nothing
  } catch (const std::exception& e) {
    log_reload_failed(file_, e.what());
    return false;
  }
  d.live(n.accept != o.accept, "smtp.accept");
  d.live(n.hostname != o.hostname, "smtp.hostname");
  d.live(n.max_message_size != o.max_message_size, "smtp.max_message_size");
  d.live(n.timeout != o.timeout, "smtp.timeout");
  d.live(n.data_timeout != o.data_timeout, "smtp.data_timeout");
  d.live(n.max_connections != o.max_connections, "smtp.max_connections");
  d.live(n.max_connections_per_ip != o.max_connections_per_ip, "smtp.max_connections_per_ip");
  d.live(!same_tls(n.tls, o.tls), "smtp.tls");
  return true;
}

// Kept fetchers move to their new place; removed and changed ones stop
// (retired until their run() returns); new ones start.
void Daemon::swap_fetchers(const config::Config& next, NextFetchers prepared, ReloadDiff& d) {
  for (std::size_t i = 0; i < cfg_.imap.size(); ++i) {
    auto kept = std::find_if(next.imap.begin(), next.imap.end(), [&](const auto& b) { return b.name == cfg_.imap[i].name; });
    const std::size_t at = static_cast<std::size_t>(kept - next.imap.begin());
    if (kept != next.imap.end() && !prepared.fresh[at]) {
      prepared.fetchers[at] = std::move(fetchers[i]);
      continue;
    }
    if (kept == next.imap.end()) d.live(true, "imap." + cfg_.imap[i].name + "(removed)");
    fetchers[i]->stop();
    retired.push_back(std::move(fetchers[i]));
  }
  fetchers = std::move(prepared.fetchers);
  for (std::size_t i = 0; i < fetchers.size(); ++i)
    if (prepared.fresh[i]) start_fetcher(*fetchers[i]);
}

// New credentials: the client's next call authenticates with them.
void Daemon::apply_messenger(const config::Config& next, ReloadDiff& d) {
  const auto& om = cfg_.messenger;
  const auto& nm = next.messenger;
  const bool credentials = nm.api_key != om.api_key || nm.secret.value != om.secret.value || nm.auth_url != om.auth_url;
  d.live(nm.api_key != om.api_key, "messenger.api_key");
  d.live(nm.secret.value != om.secret.value, "messenger.secret");
  d.live(nm.auth_url != om.auth_url, "messenger.auth_url");
  if (credentials && client)
    net::asio::post(processing_io, [this, key = nm.api_key, secret = nm.secret.value, url = nm.auth_url] {
      client->set_credentials(key, secret, url);
    });
}

void Daemon::apply_processing(const config::Config& next, std::shared_ptr<const routing::Router> router, ReloadDiff& d) {
  d.live(next.messenger.external_id != cfg_.messenger.external_id, "messenger.external_id");
  d.live(next.queue.concurrency != cfg_.queue.concurrency, "queue.concurrency");
  d.live(next.queue.give_up_after != cfg_.queue.give_up_after, "queue.give_up_after");
  d.live(next.queue.done_retention != cfg_.queue.done_retention, "queue.done_retention");  // the heartbeat reads cfg_
  d.live(next.mail.sender != cfg_.mail.sender, "mail.sender");
  d.live(next.mail.max_attachment_size != cfg_.mail.max_attachment_size, "mail.max_attachment_size");
  d.live(next.mail.loop_id != cfg_.mail.loop_id, "mail.loop_id");
  d.live(next.mail.max_media != cfg_.mail.max_media, "mail.max_media");
  d.live(next.mail.max_processing_time != cfg_.mail.max_processing_time, "mail.max_processing_time");
  d.live(next.ticket_defaults != cfg_.ticket_defaults, "tickets.defaults");
  d.live(threading_changed(next.threading, cfg_.threading), "threading");
  d.live(next.policy.ignored_retention != cfg_.policy.ignored_retention, "policy.ignored_retention");
  net::asio::post(processing_io, [this, settings = processor_settings(next, std::move(router))]() mutable {
    processor->reconfigure(std::move(settings));
  });
}

}  // namespace

int serve(const std::vector<std::string>& in) {
  std::vector<std::string> args = in;
  std::string file;
  if (!take_option(args, "--config", file) || !args.empty()) {
    std::cerr << "usage: mailgate serve --config FILE\n";
    return kExitUsage;
  }
  auto loaded = load_config_or_report(file);
  if (!loaded) return kExitConfig;
  log::set_format(log_format(loaded->log.format));
  std::vector<std::string> router_errors;
  auto router = build_router(*loaded, router_errors);
  if (!router) {
    for (const auto& e : router_errors) std::cerr << e << "\n";
    return kExitConfig;
  }
  Daemon daemon(file, std::move(*loaded));
  if (auto failed = daemon.open_spool()) return *failed;
  if (auto failed = daemon.start_processing(router)) return *failed;
  if (auto failed = daemon.start_ingest()) return *failed;
  if (auto failed = daemon.start_metrics()) return *failed;
  return daemon.run();
}

}  // namespace mailgate::cli
