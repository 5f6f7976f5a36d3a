// SMTP (RFC 5321) and LMTP (RFC 2033) listener: ingest only. A message is
// acknowledged with 250 only after the spool has fsync'd it; when it cannot,
// the client gets 452 (storage) or 451 (anything else) and keeps the message.
// Every input has a named limit. Only <CRLF>.<CRLF> ends DATA after a DATA
// command ended by CRLF, so no mail can be smuggled inside another
// (CVE-2023-51764 class). Knows nothing about tickets.
//
// Threads: everything runs on the executor given to the constructor; the
// spool's committer thread only posts results back to it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mailgate/net/asio.hpp"
#include "mailgate/net/line_reader.hpp"
#include "mailgate/spool/spool.hpp"

namespace mailgate::smtp {

// Every bound on what a client may send or make us wait for.
struct SmtpLimits {
  std::size_t max_command_line = 4096;          // RFC 5321 §4.5.3.1.4 says 512; be lenient
  std::size_t max_data_line = 1024 * 1024;      // RFC says 1000; a longer line is hostile
  std::size_t max_helo = 255;                   // kept of the HELO argument (a domain, RFC 5321 §4.5.3.1.2)
  std::size_t max_recipients = 100;             // per message (452 4.5.3 beyond)
  std::size_t max_errors = 10;                  // bad commands before 421
  std::size_t max_commands = 10'000;            // per connection
  std::size_t max_connections = 200;            // all clients
  std::size_t max_connections_per_ip = 20;
  std::size_t read_chunk = 64 * 1024;           // one socket read of commands and DATA lines
  std::size_t bdat_read_chunk = 256 * 1024;     // one socket read of a BDAT chunk
  std::chrono::milliseconds command_timeout = std::chrono::seconds(300);  // RFC 5321 §4.5.3.2.7
  // DATA lines and BDAT chunks (smtp.data_timeout): a relay streaming a
  // large message from a slow queue pauses longer between lines than between
  // commands (RFC 5321 §4.5.3.2.6 gives 10 minutes against 5).
  std::chrono::milliseconds data_timeout = std::chrono::seconds(600);
  std::chrono::milliseconds write_timeout = std::chrono::seconds(60);          // a client that never reads
  std::chrono::milliseconds refuse_timeout = std::chrono::seconds(5);          // the 421 to a connection over the limits
  std::chrono::milliseconds tls_handshake_timeout = std::chrono::seconds(30);
};

struct SmtpSettings {
  std::vector<std::pair<std::string, std::uint16_t>> listen;
  bool lmtp = false;
  std::string hostname = "localhost";
  std::uint64_t max_message_size = 25ull * 1024 * 1024;
  std::vector<std::string> accept;  // "user@domain" or "@domain", lower-case
  std::string tls_cert_file, tls_key_file;  // both set: STARTTLS offered
  SmtpLimits limits;
};

class SmtpServer {
 public:
  // `on_accepted` runs after each durable acceptance (wakes the processor).
  SmtpServer(net::asio::any_io_executor executor, SmtpSettings settings, spool::Spool& spool,
             std::function<void(const std::string& spool_id)> on_accepted);
  ~SmtpServer();

  // Binds every listen address; throws std::runtime_error when one fails.
  void start();
  // Stops accepting; open sessions finish their transaction and get 421.
  void stop();
  // Replaces the recipient list (SIGHUP).
  void set_accept(std::vector<std::string> accept);
  // SIGHUP: hostname, max_message_size, limits, the accept list and the TLS
  // certificate (re-read from its files, so a renewed one is taken). No
  // connection is dropped: open sessions see the new values from their next
  // command. Listen addresses and the protocol stay as started. Throws
  // std::runtime_error, changing nothing, when the certificate cannot be loaded.
  void reconfigure(SmtpSettings settings);
  std::size_t sessions() const { return sessions_; }
  std::vector<std::uint16_t> bound_ports() const;

  // One session from greeting to goodbye over a connection that is already
  // there, without the connection limits or STARTTLS: the unit tests drive
  // the protocol through it over an in-memory stream.
  net::asio::awaitable<void> converse(net::ByteStream& stream, std::string peer);

  class Session;

 private:
  net::asio::awaitable<void> accept_loop(net::tcp::acceptor& acceptor);
  net::asio::awaitable<void> serve(net::tcp::socket socket);

  net::asio::any_io_executor executor_;
  SmtpSettings settings_;
  spool::Spool& spool_;
  std::function<void(const std::string&)> on_accepted_;
  std::vector<std::unique_ptr<net::tcp::acceptor>> acceptors_;
  std::unique_ptr<net::ssl::context> tls_;
  std::size_t sessions_ = 0;
  std::map<std::string, std::size_t> per_ip_;
  bool stopping_ = false;
  // Contexts replaced by reconfigure(): kept until the server goes, so no
  // open TLS session outlives the context it was made from.
  std::vector<std::unique_ptr<net::ssl::context>> retired_tls_;
};

// "user@domain" accepted by the list? (exact address or "@domain", any case)
bool recipient_accepted(const std::vector<std::string>& accept, std::string_view address);

}  // namespace mailgate::smtp
