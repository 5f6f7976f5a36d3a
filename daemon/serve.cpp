// `mailgate serve`: wires spool, processor, Messenger client and SMTP
// listener together; handles signals and systemd notification.
//
// Threads: the SMTP listener, signals and systemd run on the main thread's
// io_context; the processor and the Messenger client on a second one, so a
// session never waits behind the processor's database commits; the spool's
// committer thread makes received mail durable in batches.
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

namespace mailgate::cli {

using net::asio::awaitable;
using net::asio::use_awaitable;

namespace {

constexpr std::chrono::seconds kDrainTimeout{30};  // SIGTERM: time for sessions and steps to finish

}  // namespace

// Shared with check-config --connect (cli.hpp): it checks what serve uses.
messenger::MessengerSettings messenger_settings(const config::Config& c) {
  messenger::MessengerSettings s;
  s.api_key = c.messenger.api_key;
  s.secret = c.messenger.secret.value;
  s.auth_url = c.messenger.auth_url;
  s.tls.ca_file = c.messenger.ca_file;
  s.allow_plain_http = c.messenger.allow_plain_http;
  s.max_in_flight = static_cast<std::size_t>(c.messenger.max_in_flight);
  return s;
}

namespace {

smtp::SmtpSettings smtp_settings(const config::SmtpConfig& c) {
  smtp::SmtpSettings s;
  for (const auto& l : c.listen) s.listen.emplace_back(l.host, l.port);
  s.lmtp = c.protocol == config::SmtpProtocol::Lmtp;
  s.hostname = c.hostname;
  s.max_message_size = c.max_message_size;
  s.accept = c.accept;
  s.limits.command_timeout = c.timeout;
  s.limits.data_timeout = c.timeout * smtp::SmtpLimits::kDataTimeoutFactor;
  s.limits.max_connections = static_cast<std::size_t>(c.max_connections);
  s.limits.max_connections_per_ip = static_cast<std::size_t>(c.max_connections_per_ip);
  if (c.tls) {
    s.tls_cert_file = c.tls->cert_file;
    s.tls_key_file = c.tls->key_file;
  }
  return s;
}

}  // namespace

imap::MailboxSettings mailbox_settings(const config::ImapMailboxConfig& m) {
  imap::MailboxSettings s;
  s.name = m.name;
  s.host = m.host;
  s.port = m.port;
  s.security = m.security == config::ImapSecurity::Tls        ? imap::Security::Tls
               : m.security == config::ImapSecurity::StartTls ? imap::Security::StartTls
                                                              : imap::Security::None;
  s.ca_file = m.ca_file;
  s.username = m.username;
  s.password = m.password.value;
  s.auth = m.auth == config::ImapAuth::Login     ? imap::AuthMethod::Login
           : m.auth == config::ImapAuth::Plain   ? imap::AuthMethod::Plain
           : m.auth == config::ImapAuth::XOAuth2 ? imap::AuthMethod::XOAuth2
                                                 : imap::AuthMethod::Auto;
  s.token_file = m.token_file;
  s.token_command = m.token_command;
  s.folder = m.folder;
  s.after_import = m.after_import == config::AfterImport::Seen     ? imap::AfterImport::Seen
                   : m.after_import == config::AfterImport::Delete ? imap::AfterImport::Delete
                                                                   : imap::AfterImport::Move;
  s.move_to = m.move_to;
  s.idle = m.idle;
  s.poll_interval = m.poll_interval;
  s.max_message_size = m.max_message_size;
  s.oversized_folder = m.oversized_folder;
  s.progress_interval = m.progress_interval;
  return s;
}

namespace {

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

pipeline::ProcessorSettings processor_settings(const config::Config& c, std::shared_ptr<const routing::Router> router) {
  pipeline::ProcessorSettings p;
  p.router = std::move(router);
  p.concurrency = static_cast<std::size_t>(c.queue.concurrency);
  p.draft = draft_options(c);
  p.ticket_defaults = c.ticket_defaults;
  p.dry_run = c.messenger.mode == config::MessengerMode::DryRun;
  p.give_up_after = c.queue.give_up_after;
  p.external_id = c.messenger.external_id;
  p.threading = c.threading;
  return p;
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
  config::Config cfg = std::move(*loaded);  // as running: a reload replaces what it applies
  log::set_format(cfg.log.format == config::LogFormat::Json ? log::Format::Json : log::Format::Text);
  std::vector<std::string> router_errors;
  auto router = build_router(cfg, router_errors);
  if (!router) {
    for (const auto& e : router_errors) std::cerr << e << "\n";
    return kExitConfig;
  }

  std::unique_ptr<spool::Spool> spool;
  try {
    spool = spool::Spool::open(cfg.spool_dir, {cfg.queue.max_size, cfg.queue.min_free_space});
  } catch (const std::exception& e) {
    log::error("serve.spool_unusable", {{"dir", cfg.spool_dir}, {"error", e.what()}});
    return kExitTempFail;
  }

  net::asio::io_context io;             // SMTP, signals, systemd
  net::asio::io_context processing_io;  // processor and Messenger client
  std::unique_ptr<messenger::MessengerClient> client;
  const bool dry_run = cfg.messenger.mode == config::MessengerMode::DryRun;
  try {
    if (!dry_run)
      client = std::make_unique<messenger::MessengerClient>(processing_io.get_executor(), messenger_settings(cfg));
  } catch (const std::exception& e) {
    log::error("serve.messenger_setup_failed", {{"error", e.what()}});
    return kExitConfig;
  }
  auto ledger = pipeline::make_spool_ledger(*spool);
  pipeline::Processor processor(processing_io.get_executor(), *ledger, client.get(), processor_settings(cfg, router));
  std::unique_ptr<smtp::SmtpServer> smtp_server;
  if (cfg.smtp) {
    smtp_server = std::make_unique<smtp::SmtpServer>(io.get_executor(), smtp_settings(*cfg.smtp), *spool,
                                                     [&](const std::string&) { net::asio::post(processing_io, [&] { processor.wake(); }); });
    try {
      smtp_server->start();
    } catch (const std::exception& e) {
      log::error("serve.listen_failed", {{"error", e.what()}});
      return kExitTempFail;
    }
  }

  // IMAP mailboxes: one fetcher each, on the ingest thread; one failing
  // mailbox only ever waits on its own backoff. fetchers[i] serves
  // cfg.imap[i]. A fetcher a reload stopped is kept in `retired` until its
  // run() has returned (its coroutine uses it until then).
  std::vector<std::unique_ptr<imap::Fetcher>> fetchers;
  std::vector<std::unique_ptr<imap::Fetcher>> retired;
  auto make_fetcher = [&](const config::ImapMailboxConfig& box) {
    auto f = std::make_unique<imap::Fetcher>(io.get_executor(), *spool, std::make_unique<imap::SpoolMarkStore>(*spool),
                                             mailbox_settings(box));
    f->on_accepted = [&](const std::string&) { net::asio::post(processing_io, [&] { processor.wake(); }); };
    return f;
  };
  auto start_fetcher = [&](imap::Fetcher& f) {
    net::asio::co_spawn(io, f.run(), [&retired, done = &f](std::exception_ptr) {
      std::erase_if(retired, [done](const auto& r) { return r.get() == done; });
    });
  };
  try {
    for (const auto& box : cfg.imap) {
      fetchers.push_back(make_fetcher(box));
      start_fetcher(*fetchers.back());
    }
  } catch (const std::exception& e) {
    log::error("serve.imap_setup_failed", {{"error", e.what()}});
    return kExitConfig;
  }

  std::unique_ptr<MetricsServer> metrics;
  if (cfg.metrics) {
    try {
      metrics = std::make_unique<MetricsServer>(io.get_executor(), *spool, cfg.metrics->listen.host,
                                                cfg.metrics->listen.port);
      metrics->start();
    } catch (const std::exception& e) {
      log::error("serve.listen_failed", {{"what", "metrics"}, {"error", e.what()}});
      return kExitTempFail;
    }
  }

  bool stopping = false;
  net::asio::co_spawn(processing_io, processor.run(), net::asio::detached);
  auto processing_guard = net::asio::make_work_guard(processing_io);
  std::thread processing([&] { processing_io.run(); });

  // SIGHUP: validate the whole file first (and load what can fail: the TLS
  // certificate, the mailboxes' trust anchors); on any error nothing
  // changes. Then apply what can change live, each part on its own thread.
  std::function<void()> reload = [&] {
    auto again = config::load_config_file(file);
    if (!again.config) {
      for (const auto& e : again.errors)
        log::error("serve.reload_failed", {{"config", file}, {"error", e.to_string()},
                                           {"note", "the running configuration stays"}});
      return;
    }
    config::Config next = std::move(*again.config);
    std::vector<std::string> route_errors;
    auto next_router = build_router(next, route_errors);
    if (!next_router) {
      for (const auto& e : route_errors)
        log::error("serve.reload_failed", {{"config", file}, {"error", e}, {"note", "the running configuration stays"}});
      return;
    }
    ReloadDiff d;

    // Bound at start, or fixed by what was built: kept as running.
    d.restart(next.spool_dir != cfg.spool_dir, "spool_dir");
    next.spool_dir = cfg.spool_dir;
    d.restart(next.queue.max_size != cfg.queue.max_size, "queue.max_size");
    d.restart(next.queue.min_free_space != cfg.queue.min_free_space, "queue.min_free_space");
    next.queue.max_size = cfg.queue.max_size;
    next.queue.min_free_space = cfg.queue.min_free_space;
    const bool metrics_same = next.metrics.has_value() == cfg.metrics.has_value() &&
                              (!cfg.metrics || (next.metrics->listen.host == cfg.metrics->listen.host &&
                                                next.metrics->listen.port == cfg.metrics->listen.port));
    d.restart(!metrics_same, "metrics.listen");
    next.metrics = cfg.metrics;
    d.restart(next.messenger.mode != cfg.messenger.mode, "messenger.mode");
    d.restart(next.messenger.ca_file != cfg.messenger.ca_file, "messenger.ca_file");
    d.restart(next.messenger.allow_plain_http != cfg.messenger.allow_plain_http, "messenger.allow_plain_http");
    d.restart(next.messenger.max_in_flight != cfg.messenger.max_in_flight, "messenger.max_in_flight");
    next.messenger.mode = cfg.messenger.mode;
    next.messenger.ca_file = cfg.messenger.ca_file;
    next.messenger.allow_plain_http = cfg.messenger.allow_plain_http;
    next.messenger.max_in_flight = cfg.messenger.max_in_flight;
    if (next.smtp.has_value() != cfg.smtp.has_value()) {
      d.restart(true, "smtp");
      next.smtp = cfg.smtp;
    } else if (next.smtp) {
      d.restart(!same_listen(next.smtp->listen, cfg.smtp->listen), "smtp.listen");
      d.restart(next.smtp->protocol != cfg.smtp->protocol, "smtp.protocol");
      next.smtp->listen = cfg.smtp->listen;
      next.smtp->protocol = cfg.smtp->protocol;
    }

    // IMAP: prepared (constructed, not started) before anything changes.
    std::vector<std::unique_ptr<imap::Fetcher>> next_fetchers;
    std::vector<bool> fresh;  // next_fetchers[i] is new: start it
    try {
      for (const auto& box : next.imap) {
        auto old = std::find_if(cfg.imap.begin(), cfg.imap.end(), [&](const auto& b) { return b.name == box.name; });
        if (old != cfg.imap.end() && same_mailbox(*old, box)) {
          next_fetchers.push_back(nullptr);  // kept: moved over below
          fresh.push_back(false);
        } else {
          next_fetchers.push_back(make_fetcher(box));
          fresh.push_back(true);
          d.live(true, "imap." + box.name + (old == cfg.imap.end() ? "(added)" : "(changed)"));
        }
      }
    } catch (const std::exception& e) {
      log::error("serve.reload_failed", {{"config", file}, {"error", std::string("imap: ") + e.what()},
                                         {"note", "the running configuration stays"}});
      return;
    }
    if (cfg.smtp && smtp_server) {
      const auto& o = *cfg.smtp;
      const auto& n = *next.smtp;
      try {
        smtp_server->reconfigure(smtp_settings(n));  // loads the certificate first; throws changing nothing
      } catch (const std::exception& e) {
        log::error("serve.reload_failed", {{"config", file}, {"error", e.what()},
                                           {"note", "the running configuration stays"}});
        return;
      }
      d.live(n.accept != o.accept, "smtp.accept");
      d.live(n.hostname != o.hostname, "smtp.hostname");
      d.live(n.max_message_size != o.max_message_size, "smtp.max_message_size");
      d.live(n.timeout != o.timeout, "smtp.timeout");
      d.live(n.max_connections != o.max_connections, "smtp.max_connections");
      d.live(n.max_connections_per_ip != o.max_connections_per_ip, "smtp.max_connections_per_ip");
      d.live(!same_tls(n.tls, o.tls), "smtp.tls");
    }

    // Nothing below can fail.
    for (std::size_t i = 0; i < cfg.imap.size(); ++i) {
      auto kept = std::find_if(next.imap.begin(), next.imap.end(), [&](const auto& b) { return b.name == cfg.imap[i].name; });
      const std::size_t at = static_cast<std::size_t>(kept - next.imap.begin());
      if (kept != next.imap.end() && !fresh[at]) {
        next_fetchers[at] = std::move(fetchers[i]);
        continue;
      }
      if (kept == next.imap.end()) d.live(true, "imap." + cfg.imap[i].name + "(removed)");
      fetchers[i]->stop();
      retired.push_back(std::move(fetchers[i]));
    }
    fetchers = std::move(next_fetchers);
    for (std::size_t i = 0; i < fetchers.size(); ++i)
      if (fresh[i]) start_fetcher(*fetchers[i]);

    const auto& om = cfg.messenger;
    const auto& nm = next.messenger;
    const bool credentials = nm.api_key != om.api_key || nm.secret.value != om.secret.value || nm.auth_url != om.auth_url;
    d.live(nm.api_key != om.api_key, "messenger.api_key");
    d.live(nm.secret.value != om.secret.value, "messenger.secret");
    d.live(nm.auth_url != om.auth_url, "messenger.auth_url");
    if (credentials && client)
      net::asio::post(processing_io, [&, key = nm.api_key, secret = nm.secret.value, url = nm.auth_url] {
        client->set_credentials(key, secret, url);
      });

    d.live(nm.external_id != om.external_id, "messenger.external_id");
    d.live(next.queue.concurrency != cfg.queue.concurrency, "queue.concurrency");
    d.live(next.queue.give_up_after != cfg.queue.give_up_after, "queue.give_up_after");
    d.live(next.queue.done_retention != cfg.queue.done_retention, "queue.done_retention");  // the heartbeat reads cfg
    d.live(next.mail.sender != cfg.mail.sender, "mail.sender");
    d.live(next.mail.max_attachment_size != cfg.mail.max_attachment_size, "mail.max_attachment_size");
    d.live(next.mail.loop_id != cfg.mail.loop_id, "mail.loop_id");
    d.live(next.mail.max_media != cfg.mail.max_media, "mail.max_media");
    d.live(next.mail.max_processing_time != cfg.mail.max_processing_time, "mail.max_processing_time");
    d.live(next.ticket_defaults != cfg.ticket_defaults, "tickets.defaults");
    d.live(threading_changed(next.threading, cfg.threading), "threading");
    d.live(next.policy.ignored_retention != cfg.policy.ignored_retention, "policy.ignored_retention");
    net::asio::post(processing_io, [&, settings = processor_settings(next, next_router)]() mutable {
      processor.reconfigure(std::move(settings));
    });

    d.live(next.log.format != cfg.log.format, "log.format");
    log::set_format(next.log.format == config::LogFormat::Json ? log::Format::Json : log::Format::Text);

    cfg = std::move(next);
    log::info("serve.reloaded", {{"config", file}, {"changed", join(d.changed)}});
    if (!d.needs_restart.empty())
      log::warn("serve.reload_needs_restart", {{"config", file}, {"keys", join(d.needs_restart)},
                                               {"note", "not applied; restart mailgate for these"}});
  };

  // Signals: TERM/INT drain and exit 0; HUP reloads what can change live.
  net::asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
  std::function<void()> wait_signal = [&] {
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        if (!stopping) reload();
        wait_signal();
        return;
      }
      log::info("serve.stopping", {{"signal", sig == SIGTERM ? "TERM" : "INT"}});
      daemon::sd_notify("STOPPING=1");
      stopping = true;
      if (smtp_server) smtp_server->stop();
      for (auto& f : fetchers) f->stop();
      if (metrics) metrics->stop();
      // Wait (bounded) for sessions and in-flight steps, each on its own
      // thread, then stop that thread's loop.
      const auto deadline = std::chrono::steady_clock::now() + kDrainTimeout;
      net::asio::post(processing_io, [&, deadline] {
        processor.stop();
        net::asio::co_spawn(processing_io,
                            drain_then_stop(processing_io, deadline, [&] { return processor.in_flight() > 0; }),
                            net::asio::detached);
      });
      net::asio::co_spawn(
          io, drain_then_stop(io, deadline, [&] { return smtp_server && smtp_server->sessions() > 0; }),
          net::asio::detached);
    });
  };
  wait_signal();

  // systemd: watchdog and status.
  net::asio::steady_timer heartbeat(io);
  const auto watchdog = daemon::watchdog_interval_usec();
  std::function<void()> beat = [&] {
    if (stopping) return;
    daemon::sd_notify("WATCHDOG=1");
    heartbeat.expires_after(std::chrono::microseconds(watchdog ? watchdog : 60'000'000ull));
    heartbeat.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      const auto now = static_cast<std::int64_t>(std::time(nullptr));
      spool->expire_done(now, cfg.queue.done_retention.count());
      spool->expire_ignored(now, cfg.policy.ignored_retention.count());
      spool->forget_threads_before(now - cfg.threading.remember.count());
      beat();
    });
  };
  beat();

  std::string ports;
  if (smtp_server)
    for (auto p : smtp_server->bound_ports()) ports += (ports.empty() ? "" : ",") + std::to_string(p);
  log::info("serve.ready", {{"config", file}, {"spool", cfg.spool_dir}, {"mode", dry_run ? "dry-run" : "live"},
                            {"smtp_ports", ports.empty() ? "none" : ports},
                            {"imap_mailboxes", std::to_string(fetchers.size())}});
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

}  // namespace mailgate::cli
