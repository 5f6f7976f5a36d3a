// `mailgate check-config --connect`: what `postfix check` and `doveadm auth
// test` give admins. Before mail is switched over, every outside thing the
// configuration names is tried with the code serve uses: the spool directory
// (write and fsync), the TLS files, the Messenger API (authentication, base
// URL discovery and one read-only ticketing call), and each IMAP mailbox
// (login and a read-only SELECT of its folder). One line per check on
// stdout: "✓ name" or "✗ name: reason — fix".
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

#include "cli.hpp"
#include "settings.hpp"
#include "mailgate/imap/connection.hpp"
#include "mailgate/imap/fetcher.hpp"
#include "mailgate/log/log.hpp"
#include "mailgate/messenger/messenger_client.hpp"
#include "mailgate/net/asio.hpp"

namespace mailgate::cli {

using net::asio::awaitable;

namespace {

// A check waits this long at most: an unreachable API or server is a
// failed check, not a hung command. The API's own retries (for a 5xx, a
// 429) fit inside kApiCheckTime.
constexpr std::chrono::seconds kApiCheckTime{20};
constexpr std::chrono::seconds kImapConnectTimeout{10};
constexpr std::chrono::seconds kImapCommandTimeout{30};
// The read-only ticketing call: an IQL search no real ticket matches
// (creator 0 does not exist), so nothing is created or changed.
constexpr const char* kProbeCreator = "0";
constexpr const char* kProbeTitle = "mailgate check-config --connect";

class Report {
 public:
  void pass(const std::string& name, const std::string& detail = {}) {
    std::cout << "\u2713 " << name << (detail.empty() ? "" : " (" + detail + ")") << "\n" << std::flush;
  }
  void fail(const std::string& name, const std::string& reason, const std::string& fix) {
    ++failures_;
    std::cout << "\u2717 " << name << ": " << reason << " \u2014 " << fix << "\n" << std::flush;
  }
  void skip(const std::string& name, const std::string& why) {
    std::cout << "- " << name << ": skipped, " << why << "\n" << std::flush;
  }
  int failures() const { return failures_; }

 private:
  int failures_ = 0;
};

std::string errno_text(int e) { return std::strerror(e); }

// What the spool needs from its directory: a file can be created, written,
// fsync'd and removed, and the directory itself fsync'd (the rename into
// the queue is made durable that way).
void check_spool(const config::Config& c, Report& report) {
  const std::string name = "spool_dir " + c.spool_dir;
  const std::string fix_owner = "create it, writable by the user mailgate runs as (the unit's StateDirectory= does so)";
  std::error_code ec;
  if (!std::filesystem::is_directory(c.spool_dir, ec)) {
    report.fail(name, "not a directory", fix_owner);
    return;
  }
  const std::string path = c.spool_dir + "/.check-connect." + std::to_string(::getpid());
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    report.fail(name, "cannot create a file: " + errno_text(errno), fix_owner);
    return;
  }
  static constexpr char kProbe[] = "mailgate check-config --connect\n";
  std::string problem;
  if (::write(fd, kProbe, sizeof kProbe - 1) != static_cast<ssize_t>(sizeof kProbe - 1))
    problem = "cannot write: " + errno_text(errno);
  else if (::fsync(fd) != 0)
    problem = "fsync failed: " + errno_text(errno);
  ::close(fd);
  if (::unlink(path.c_str()) != 0 && problem.empty()) problem = "cannot remove a file: " + errno_text(errno);
  if (problem.empty()) {
    int dir = ::open(c.spool_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0 || ::fsync(dir) != 0) problem = "fsync of the directory failed: " + errno_text(errno);
    if (dir >= 0) ::close(dir);
  }
  if (!problem.empty()) {
    report.fail(name, problem,
                "use a local file system that supports fsync, with free space, writable by mailgate's user");
    return;
  }
  report.pass(name, "writable, fsync works");
}

void check_smtp_tls(const config::TlsFiles& t, Report& report) {
  const std::string name = "smtp.tls " + t.cert_file;
  boost::system::error_code ec;
  // The key alone first: a key that loads but is refused next to the
  // certificate belongs to another one.
  net::ssl::context key_only(net::ssl::context::tls_server);
  key_only.use_private_key_file(t.key_file, net::ssl::context::pem, ec);
  if (ec) {
    report.fail(name, "cannot load the key " + t.key_file + ": " + ec.message(),
                "point smtp.tls.key_file at a PEM private key readable by mailgate's user");
    return;
  }
  net::ssl::context ctx(net::ssl::context::tls_server);
  ctx.use_certificate_chain_file(t.cert_file, ec);
  if (ec) {
    report.fail(name, "cannot load the certificate: " + ec.message(),
                "point smtp.tls.cert_file at a PEM chain file (the certificate first) readable by mailgate's user");
    return;
  }
  ctx.use_private_key_file(t.key_file, net::ssl::context::pem, ec);
  if (ec || SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
    report.fail(name, "the key " + t.key_file + " does not belong to the certificate",
                "set smtp.tls.key_file to the certificate's private key");
    return;
  }
  report.pass(name, "certificate and key load and match");
}

void check_tls_files(const config::Config& c, Report& report) {
  if (c.smtp && c.smtp->tls) check_smtp_tls(*c.smtp->tls, report);
  auto check_ca = [&](const std::string& key, const std::string& file) {
    if (file.empty()) return;
    net::ssl::context ctx(net::ssl::context::tls_client);
    boost::system::error_code ec;
    ctx.load_verify_file(file, ec);
    if (ec)
      report.fail(key + " " + file, "cannot load: " + ec.message(), "give a PEM file of CA certificates");
    else
      report.pass(key + " " + file, "CA certificates load");
  };
  check_ca("messenger.ca_file", c.messenger.ca_file);
  for (const auto& m : c.imap) check_ca("imap " + m.name + " ca_file", m.ca_file);
}

std::string api_fix(const messenger::ApiError& e) {
  if (e.status == 400 || e.status == 401 || e.status == 403)
    return "check messenger.api_key and the secret (secret_file or secret_env) of this Messenger instance";
  if (e.status == 0)
    return "check messenger.auth_url, that the API is reachable from here, and messenger.ca_file for a private CA";
  if (e.status == 429) return "the API rate limit is spent: try again after its reset";
  return "the API answered an error: try again later; if it persists, see the API's status";
}

awaitable<void> check_messenger(const config::Config& c, Report& report) {
  const bool dry_run = c.messenger.mode == config::MessengerMode::DryRun;
  const bool credentials = !c.messenger.api_key.empty() && c.messenger.secret.is_set();
  const std::string name = "messenger " + c.messenger.auth_url;
  // Dry-run never calls the API; credentials set there are checked anyway,
  // so that switching to live is safe.
  if (dry_run && !credentials) {
    report.skip("messenger", "dry-run mode without api_key and secret");
    co_return;
  }
  messenger::MessengerSettings s = messenger_settings(c);
  s.retry_for = kApiCheckTime;
  std::optional<messenger::MessengerClient> client;
  try {
    client.emplace(co_await net::asio::this_coro::executor, s);
  } catch (const std::exception& e) {
    report.fail(name, e.what(), "check messenger.ca_file and messenger.auth_url");
    co_return;
  }
  // Named, not braced temporaries: g++ 12 frees a braced aggregate argument
  // of a coroutine twice (its SSO buffer, as ASan shows).
  messenger::TicketLookup probe;
  probe.creator = kProbeCreator;
  probe.title = kProbeTitle;
  messenger::CallContext context;
  context.spool_id = "check-config";
  auto found = co_await client->find_tickets(std::move(probe), std::move(context));
  if (!found) {
    const auto& e = found.error();
    report.fail(name,
                std::string(messenger::to_string(e.kind)) + (e.status ? " (HTTP " + std::to_string(e.status) + ")" : "") +
                    ": " + e.message,
                api_fix(e));
    co_return;
  }
  report.pass(name, std::string(dry_run ? "dry-run, " : "") + "authenticated, ticketing API found and answering");
}

std::string imap_fix(imap::ImapError::Kind kind) {
  switch (kind) {
    case imap::ImapError::Kind::Auth:
      return "check username and password_file/password_env (or the XOAUTH2 token) and auth";
    case imap::ImapError::Kind::Network:
      return "check host and port, and that the server is reachable from here";
    case imap::ImapError::Kind::Tls:
      return "check security (tls, starttls, none) and ca_file for a private CA";
    case imap::ImapError::Kind::Protocol:
      return "check folder (names are case-sensitive; the server's LIST shows them)";
    case imap::ImapError::Kind::Refused:
      return "the server refused the session: see its log";
  }
  return "";
}

awaitable<void> check_imap(const config::Config& c, Report& report) {
  for (const auto& m : c.imap) {
    imap::MailboxSettings s = mailbox_settings(m);
    s.limits.connect_timeout = kImapConnectTimeout;
    s.limits.command_timeout = kImapCommandTimeout;
    const std::string name =
        "imap " + m.name + " " + m.username + "@" + m.host + ":" + std::to_string(m.port) + " folder " + m.folder;
    std::string error;
    imap::ImapError::Kind kind = imap::ImapError::Kind::Network;
    std::uint64_t exists = 0;
    try {
      exists = co_await imap::probe_mailbox(co_await net::asio::this_coro::executor, s);
    } catch (const imap::ImapError& e) {
      error = e.what();
      kind = e.kind;
    } catch (const std::exception& e) {
      error = e.what();  // a TLS context that cannot be built (ca_file)
      kind = imap::ImapError::Kind::Tls;
    }
    if (!error.empty())
      report.fail(name, error, imap_fix(kind));
    else
      report.pass(name, "logged in, " + std::to_string(exists) + " messages in the folder");
  }
}

}  // namespace

int check_connect(const config::Config& c) {
  // Only warnings and errors of the libraries reach stderr; the report is stdout.
  log::set_min_level(log::Level::Warn);
  Report report;
  std::cout << "\u2713 configuration " << c.file << "\n";
  check_spool(c, report);
  check_tls_files(c, report);
  net::asio::io_context io;
  net::asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        co_await check_messenger(c, report);
        co_await check_imap(c, report);
      },
      [&](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {  // the checks catch what they expect: a bug
          report.fail("check-config --connect", x.what(), "report this as a bug");
        }
      });
  io.run();
  if (report.failures() > 0) {
    std::cout << report.failures() << " check" << (report.failures() == 1 ? "" : "s")
              << " failed; fix them before mail is switched to mailgate\n";
    return kExitUnavailable;
  }
  return kExitOk;
}

}  // namespace mailgate::cli
