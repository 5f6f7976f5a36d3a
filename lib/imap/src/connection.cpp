// Connecting and the TLS handshake are bounded by the tcp_stream's expiry
// (as in the HTTP client); every read and write afterwards by the
// LineReader's deadline, which cancels the pending operation. A connection
// whose deadline passed is never used again (a TLS stream cancelled midway
// is not safe to continue): the fetcher reconnects. An IDLE that hears
// nothing until its restart time ends the same way, quietly.
#include "mailgate/imap/connection.hpp"

#include <openssl/err.h>

#include "mailgate/imap/response_reader.hpp"
#include "mailgate/net/resolver.hpp"
#include "mailgate/net/tls.hpp"

namespace mailgate::imap {

using namespace mailgate::net;
using asio::awaitable;
using asio::use_awaitable;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

Connection::Connection(asio::any_io_executor ex, ssl::context& tls, ConnectionLimits limits)
    : ex_(ex), tls_context_(tls), limits_(limits), tcp_(ex), reader_(plain_bytes_, ResponseReader::kReadChunk) {}

Connection::~Connection() { close(); }

void Connection::close() {
  error_code ignored;
  tcp_.socket().close(ignored);
}

std::string Connection::next_tag() { return "m" + std::to_string(++tag_counter_); }

ResponseReader Connection::responses() { return ResponseReader(reader_, limits_); }

awaitable<void> Connection::open(const std::string& host, std::uint16_t port, Security security) {
  co_await connect(host, port);
  if (security == Security::Tls) co_await start_tls(host);
  co_await read_greeting();
  if (caps_.empty()) co_await load_capabilities();
  if (security == Security::StartTls) co_await upgrade_to_tls(host);
}

awaitable<void> Connection::connect(const std::string& host, std::uint16_t port) {
  const std::string service = std::to_string(port);
  // Bounded like the connect: a dead DNS server must not stall the mailbox.
  net::Resolved resolved = co_await net::resolve(host, service, limits_.connect_timeout);
  if (!resolved.error.empty()) throw ImapError(ImapError::Kind::Network, resolved.error);
  error_code ec;
  tcp_.expires_after(limits_.connect_timeout);
  co_await tcp_.async_connect(resolved.endpoints, asio::redirect_error(use_awaitable, ec));
  tcp_.expires_never();  // from here on the LineReader's deadlines
  if (ec)
    throw ImapError(ImapError::Kind::Network, "cannot connect to " + host + ":" + service + ": " +
                                                  (ec == beast::error::timeout ? std::string("timed out") : ec.message()));
}

awaitable<void> Connection::read_greeting() {
  Response greeting = co_await read_response(nullptr);
  if (greeting.name == "BYE") throw ImapError(ImapError::Kind::Refused, "server refused the connection: " + greeting.text);
  if (greeting.name != "OK" && greeting.name != "PREAUTH")
    throw ImapError(ImapError::Kind::Protocol, "unexpected greeting: " + greeting.name);
  preauth_ = greeting.name == "PREAUTH";
  refresh_capabilities(greeting);
}

awaitable<void> Connection::upgrade_to_tls(const std::string& host) {
  if (!has("STARTTLS")) throw ImapError(ImapError::Kind::Tls, host + " does not offer STARTTLS");
  Tagged r = co_await command("STARTTLS");
  if (!r.ok()) throw ImapError(ImapError::Kind::Tls, "STARTTLS refused: " + r.response.text);
  if (reader_.buffered() > 0) throw ImapError(ImapError::Kind::Protocol, "data injected before the TLS handshake");
  co_await start_tls(host);
  caps_.clear();  // RFC 3501 §6.2.1: forget what was learnt in the clear
  co_await load_capabilities();
}

awaitable<void> Connection::start_tls(const std::string& host) {
  tls_ = std::make_unique<TlsStream>(tcp_, tls_context_);
  expect_peer(tls_->native_handle(), host);
  error_code ec;
  tcp_.expires_after(limits_.connect_timeout);
  co_await tls_->async_handshake(ssl::stream_base::client, asio::redirect_error(use_awaitable, ec));
  tcp_.expires_never();
  if (ec) {
    long verify = SSL_get_verify_result(tls_->native_handle());
    throw ImapError(ImapError::Kind::Tls, "TLS handshake with " + host + " failed: " +
                                              (verify != X509_V_OK ? std::string(X509_verify_cert_error_string(verify))
                                                                   : ec.message()));
  }
  tls_bytes_ = std::make_unique<AsioByteStream<TlsStream>>(*tls_);
  reader_.switch_to(*tls_bytes_);
}

awaitable<void> Connection::load_capabilities() {
  Tagged r = co_await command("CAPABILITY");
  if (!r.ok()) throw ImapError(ImapError::Kind::Protocol, "CAPABILITY failed: " + r.response.text);
}

void Connection::refresh_capabilities(const Response& r) {
  auto caps = capabilities_of(r);
  if (caps.empty()) return;
  caps_.clear();
  caps_.insert(caps.begin(), caps.end());
}

awaitable<void> Connection::write_all(std::string_view bytes) {
  const bool sent = co_await reader_.write(bytes, limits_.command_timeout);
  if (!sent)
    throw ImapError(ImapError::Kind::Network, "connection lost while sending: " + reader_.last_error().message());
}

awaitable<Response> Connection::read_response(LiteralSink* sink, const SearchNumbers* search,
                                              std::uint64_t* counted) {
  co_return co_await responses().read(sink, search, counted);
}

awaitable<void> Connection::send(std::string_view text) {
  tag_ = next_tag();
  untagged_count_ = 0;
  untagged_bytes_ = 0;
  out_ = tag_ + " " + std::string(text) + "\r\n";
  co_await write_all(out_);
}

awaitable<Response> Connection::next(LiteralSink* sink, const SearchNumbers* search) {
  for (;;) {
    std::uint64_t bytes = untagged_bytes_;
    Response r = co_await read_response(sink, search, &bytes);
    if (r.kind == Response::Kind::Tagged && r.tag == tag_) {
      refresh_capabilities(r);
      co_return r;
    }
    untagged_bytes_ = bytes;
    if (++untagged_count_ > limits_.max_untagged_responses)
      throw ImapError(ImapError::Kind::Protocol, "more than " + std::to_string(limits_.max_untagged_responses) +
                                                     " untagged responses for one command");
    if (untagged_bytes_ > limits_.max_untagged_bytes)
      throw ImapError(ImapError::Kind::Protocol, "more than " + std::to_string(limits_.max_untagged_bytes) +
                                                     " bytes of untagged data for one command");
    if (r.kind == Response::Kind::Untagged) {
      if (r.name == "BYE") throw ImapError(ImapError::Kind::Refused, "server said BYE: " + r.text);
      refresh_capabilities(r);
      co_return r;
    }
    // A continuation we did not ask for, or a stray tag: ignore (but counted).
  }
}

awaitable<Tagged> Connection::command(std::string_view text, const std::function<void(const Response&)>& on_untagged,
                                      LiteralSink* sink, const SearchNumbers* search) {
  co_await send(text);
  for (;;) {
    Response r = co_await next(sink, search);
    if (r.kind == Response::Kind::Tagged) co_return Tagged{r.name, std::move(r)};
    if (on_untagged) on_untagged(r);
  }
}

awaitable<Tagged> Connection::command(std::string_view text) {
  std::function<void(const Response&)> none;
  co_return co_await command(text, none, nullptr, nullptr);
}

awaitable<Tagged> Connection::authenticate(std::string_view mechanism, std::string_view initial) {
  const std::string tag = next_tag();
  const bool sasl_ir = has("SASL-IR");
  out_ = tag + " AUTHENTICATE " + std::string(mechanism) + (sasl_ir ? " " + std::string(initial) : "") + "\r\n";
  co_await write_all(out_);
  bool sent = sasl_ir;
  for (;;) {
    Response r = co_await read_response(nullptr);
    if (r.kind == Response::Kind::Continuation) {
      // First "+": our initial response. A second one (XOAUTH2's error
      // details): an empty answer, after which the server fails the command.
      out_ = sent ? std::string("\r\n") : std::string(initial) + "\r\n";
      sent = true;
      co_await write_all(out_);
      continue;
    }
    if (r.kind == Response::Kind::Tagged && r.tag == tag) {
      refresh_capabilities(r);
      co_return Tagged{r.name, std::move(r)};
    }
    if (r.kind == Response::Kind::Untagged && r.name == "BYE")
      throw ImapError(ImapError::Kind::Refused, "server said BYE: " + r.text);
  }
}

namespace {

bool is_news(const Response& r) {
  return r.kind == Response::Kind::Untagged && (r.name == "EXISTS" || r.name == "RECENT");
}

}  // namespace

// IDLE until news; nothing until `max_wait`: Expired, and the connection is
// closed (the restart is a new session).
awaitable<Connection::IdleResult> Connection::idle(std::chrono::seconds max_wait) {
  const std::string tag = next_tag();
  out_ = tag + " IDLE\r\n";
  co_await write_all(out_);
  IdleBudget budget;
  bool changed = co_await idle_begin(tag, budget);
  if (!changed) changed = co_await idle_wait(Clock::now() + max_wait, budget);
  if (!changed) {
    close();
    co_return IdleResult::Expired;
  }
  out_ = "DONE\r\n";
  co_await write_all(out_);
  co_await idle_done(tag);
  co_return IdleResult::Changed;
}

void Connection::charge(IdleBudget& budget) const {
  if (++budget.responses > limits_.max_untagged_responses || budget.bytes > limits_.max_untagged_bytes)
    throw ImapError(ImapError::Kind::Protocol, "more untagged data during IDLE than one command may send");
}

awaitable<bool> Connection::idle_begin(const std::string& tag, IdleBudget& budget) {
  bool changed = false;
  for (;;) {
    Response r = co_await read_response(nullptr, nullptr, &budget.bytes);
    charge(budget);
    if (r.kind == Response::Kind::Continuation) co_return changed;
    if (r.kind == Response::Kind::Tagged && r.tag == tag)
      throw ImapError(ImapError::Kind::Protocol, "IDLE refused: " + r.text);
    changed = changed || is_news(r);
  }
}

awaitable<bool> Connection::idle_wait(Clock::time_point until, IdleBudget& budget) {
  for (;;) {
    std::optional<Response> r = co_await responses().read_by(until, &budget.bytes);
    if (!r) co_return false;
    charge(budget);
    if (r->kind == Response::Kind::Untagged && r->name == "BYE")
      throw ImapError(ImapError::Kind::Refused, "server said BYE: " + r->text);
    if (is_news(*r)) co_return true;
  }
}

awaitable<void> Connection::idle_done(const std::string& tag) {
  for (;;) {
    Response r = co_await read_response(nullptr);
    if (r.kind == Response::Kind::Tagged && r.tag == tag) co_return;
    if (r.kind == Response::Kind::Untagged && r.name == "BYE")
      throw ImapError(ImapError::Kind::Refused, "server said BYE: " + r.text);
  }
}

}  // namespace mailgate::imap
