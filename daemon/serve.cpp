// `mailgate serve`: wires spool, processor, Messenger client and SMTP
// listener together; handles signals and systemd notification.
//
// Threads: the SMTP listener, signals and systemd run on the main thread's
// io_context; the processor and the Messenger client on a second one, so a
// session never waits behind the processor's database commits; the spool's
// committer thread makes received mail durable in batches.
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

pipeline::ProcessorSettings processor_settings(const config::Config& c) {
  pipeline::ProcessorSettings p;
  p.concurrency = static_cast<std::size_t>(c.queue.concurrency);
  p.draft = draft_options(c);
  p.ticket_defaults = c.ticket_defaults;
  p.dry_run = c.messenger.mode == config::MessengerMode::DryRun;
  p.give_up_after = c.queue.give_up_after;
  p.external_id = c.messenger.external_id;
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
  const config::Config cfg = std::move(*loaded);
  log::set_format(cfg.log.format == config::LogFormat::Json ? log::Format::Json : log::Format::Text);

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
  pipeline::Processor processor(processing_io.get_executor(), *spool, client.get(), processor_settings(cfg));
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
  // mailbox only ever waits on its own backoff.
  std::vector<std::unique_ptr<imap::Fetcher>> fetchers;
  try {
    for (const auto& box : cfg.imap) {
      fetchers.push_back(std::make_unique<imap::Fetcher>(io.get_executor(), *spool, mailbox_settings(box)));
      fetchers.back()->on_accepted = [&](const std::string&) { net::asio::post(processing_io, [&] { processor.wake(); }); };
      net::asio::co_spawn(io, fetchers.back()->run(), net::asio::detached);
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

  // Signals: TERM/INT drain and exit 0; HUP reloads what can change live.
  net::asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
  std::function<void()> wait_signal = [&] {
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        auto again = config::load_config_file(file);
        if (!again.config) {
          for (const auto& e : again.errors) log::error("serve.reload_failed", {{"error", e.to_string()}});
        } else {
          if (smtp_server && again.config->smtp) smtp_server->set_accept(again.config->smtp->accept);
          log::info("serve.reloaded", {{"config", file},
                                       {"note", "smtp.accept reloaded; other changes need a restart"}});
        }
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
      spool->expire_done(static_cast<std::int64_t>(std::time(nullptr)), cfg.queue.done_retention.count());
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
