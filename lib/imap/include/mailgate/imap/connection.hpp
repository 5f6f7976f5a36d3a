// One IMAP client connection on Asio coroutines: TCP, implicit TLS or
// STARTTLS, tagged commands, untagged data at any moment, and message
// literals streamed to a sink instead of memory. Every wait is bounded:
// connecting and the TLS handshake by the stream's expiry, every read and
// write by net::LineReader's deadline (responses: ResponseReader).
// Failures throw ImapError; the caller (the fetcher) reconnects, and never
// uses a connection again after a timeout.
//
// Threads: one coroutine on one executor; close() from the same executor.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "mailgate/config/choices.hpp"
#include "mailgate/imap/response.hpp"
#include "mailgate/net/asio.hpp"
#include "mailgate/net/line_reader.hpp"

namespace mailgate::imap {

struct ImapError : std::runtime_error {
  enum class Kind { Network, Tls, Auth, Protocol, Refused } kind;
  ImapError(Kind k, const std::string& what) : std::runtime_error(what), kind(k) {}
};

// The configuration's choice itself (declared once in choices.hpp), under
// the name the protocol code reads best with.
using Security = config::ImapSecurity;

struct ConnectionLimits {
  std::chrono::seconds connect_timeout{30};
  // A response line must arrive whole within it; each wait for literal bytes
  // and each write gets as long.
  std::chrono::seconds command_timeout{120};
  std::size_t max_line = 8 * 1024 * 1024;     // one line of a response (SEARCH of a huge mailbox)
  std::size_t max_inline_literal = 1024 * 1024;
  std::uint64_t max_streamed_literal = 256ull * 1024 * 1024;
  // Per command: a server that keeps sending untagged data (a SEARCH that
  // never ends, bodies nobody asked for) ends the session instead of the
  // process's memory. Bytes count everything but the literals a sink kept.
  std::size_t max_untagged_responses = 100'000;
  std::uint64_t max_untagged_bytes = 64ull * 1024 * 1024;
};

// Receives a message literal (BODY[]) piece by piece.
struct LiteralSink {
  enum class Take {
    Stream,   // write() gets the bytes
    Discard,  // read and dropped (counted against max_untagged_bytes)
    Inline,   // kept in the response, as without a sink
  };
  virtual ~LiteralSink() = default;
  // `line` is the response so far, up to the literal of `size` bytes.
  virtual Take begin(std::string_view line, std::uint64_t size) = 0;
  virtual void write(std::string_view bytes) = 0;
};

using SearchNumbers = std::function<void(std::uint64_t)>;

class ResponseReader;

struct Tagged {
  std::string status;  // OK NO BAD
  Response response;
  bool ok() const { return status == "OK"; }
};

class Connection {
 public:
  Connection(net::asio::any_io_executor ex, net::ssl::context& tls, ConnectionLimits limits = {});
  ~Connection();

  // Connects, reads the greeting, secures the connection and learns the
  // capabilities. PREAUTH is accepted (authenticated() then says so).
  net::asio::awaitable<void> open(const std::string& host, std::uint16_t port, Security security);
  // Sends one command (without tag and CRLF) and returns its tagged reply;
  // untagged responses on the way go to `on_untagged`, streamable literals
  // to `sink`. A BYE or a broken connection throws.
  // `search`: "* SEARCH" numbers one by one (scan_search) instead of as a
  // Response of values.
  net::asio::awaitable<Tagged> command(std::string_view text, const std::function<void(const Response&)>& on_untagged,
                                       LiteralSink* sink = nullptr, const SearchNumbers* search = nullptr);
  net::asio::awaitable<Tagged> command(std::string_view text);
  // The same, one response at a time, for a caller that must wait between
  // them (the fetcher commits each body before reading the next): send(),
  // then next() until it returns the tagged reply (Response::Kind::Tagged).
  // next() throws on BYE and when the untagged limits are exceeded.
  net::asio::awaitable<void> send(std::string_view text);
  net::asio::awaitable<Response> next(LiteralSink* sink = nullptr, const SearchNumbers* search = nullptr);
  // AUTHENTICATE with an initial response (SASL-IR, or sent after "+").
  net::asio::awaitable<Tagged> authenticate(std::string_view mechanism, std::string_view initial_response_base64);

  // IDLE until an untagged EXISTS or RECENT arrives, then DONE: Changed.
  // Nothing for `max_wait`: the connection is closed, Expired (reconnecting
  // is how mailgate restarts an IDLE before the server's 30-minute limit).
  enum class IdleResult { Changed, Expired };
  net::asio::awaitable<IdleResult> idle(std::chrono::seconds max_wait);

  bool has(std::string_view capability) const { return caps_.count(std::string(capability)) > 0; }
  bool authenticated() const { return preauth_; }
  void refresh_capabilities(const Response& r);
  net::asio::awaitable<void> load_capabilities();
  void close();

 private:
  using TlsStream = net::ssl::stream<net::beast::tcp_stream&>;
  net::asio::awaitable<void> connect(const std::string& host, std::uint16_t port);
  net::asio::awaitable<void> read_greeting();
  net::asio::awaitable<void> upgrade_to_tls(const std::string& host);
  net::asio::awaitable<void> write_all(std::string_view bytes);
  // Responses from the reader under the connection's limits.
  ResponseReader responses();
  // `counted`: bytes that count against max_untagged_bytes (all but kept literals).
  net::asio::awaitable<Response> read_response(LiteralSink* sink, const SearchNumbers* search = nullptr,
                                               std::uint64_t* counted = nullptr);
  // IDLE is a command too: its untagged data has the same bounds.
  struct IdleBudget {
    std::size_t responses = 0;
    std::uint64_t bytes = 0;
  };
  void charge(IdleBudget& budget) const;
  // Until the server's "+ idling"; true when news came on the way.
  net::asio::awaitable<bool> idle_begin(const std::string& tag, IdleBudget& budget);
  // True: news (EXISTS or RECENT); false: nothing by `until`.
  net::asio::awaitable<bool> idle_wait(std::chrono::steady_clock::time_point until, IdleBudget& budget);
  net::asio::awaitable<void> idle_done(const std::string& tag);
  net::asio::awaitable<void> start_tls(const std::string& host);
  std::string next_tag();

  net::asio::any_io_executor ex_;
  net::ssl::context& tls_context_;
  ConnectionLimits limits_;
  net::beast::tcp_stream tcp_;
  std::unique_ptr<TlsStream> tls_;
  net::AsioByteStream<net::beast::tcp_stream> plain_bytes_{tcp_};
  std::unique_ptr<net::AsioByteStream<TlsStream>> tls_bytes_;
  net::LineReader reader_;  // after plain_bytes_: reads it until TLS starts
  std::set<std::string> caps_;
  bool preauth_ = false;
  unsigned tag_counter_ = 0;
  std::string out_;
  std::string tag_;  // of the command in progress (send/next)
  std::size_t untagged_count_ = 0;
  std::uint64_t untagged_bytes_ = 0;
};

}  // namespace mailgate::imap
