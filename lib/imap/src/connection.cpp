// Every read and write has a deadline; one that passes closes the socket
// (cancelling a TLS read midway is not safe) and the fetcher reconnects. An
// IDLE that hears nothing until its restart time ends the same way, quietly.
#include "mailgate/imap/connection.hpp"

#include <openssl/err.h>

#include "mailgate/net/resolver.hpp"
#include "mailgate/net/tls.hpp"

namespace mailgate::imap {

using namespace mailgate::net;
using asio::awaitable;
using asio::use_awaitable;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

namespace {

// Closes (or only cancels) the socket if the guarded operation outlives its deadline.
class Deadline {
 public:
  Deadline(tcp::socket& socket, Clock::time_point at, bool close_on_expiry)
      : timer_(socket.get_executor()), state_(std::make_shared<State>()) {
    state_->socket = &socket;
    timer_.expires_at(at);
    timer_.async_wait([s = state_, close_on_expiry](const error_code& ec) {
      if (ec || !s->socket) return;
      s->expired = true;
      error_code ignored;
      if (close_on_expiry) s->socket->close(ignored);
      else s->socket->cancel(ignored);
    });
  }
  ~Deadline() {
    state_->socket = nullptr;
    timer_.cancel();
  }
  bool expired() const { return state_->expired; }

 private:
  struct State {
    tcp::socket* socket = nullptr;
    bool expired = false;
  };
  asio::steady_timer timer_;
  std::shared_ptr<State> state_;
};

}  // namespace

Connection::Connection(asio::any_io_executor ex, ssl::context& tls, ConnectionLimits limits)
    : ex_(ex), tls_context_(tls), limits_(limits), socket_(ex) {}

Connection::~Connection() { close(); }

void Connection::close() {
  error_code ignored;
  socket_.close(ignored);
}

std::string Connection::next_tag() { return "m" + std::to_string(++tag_counter_); }

awaitable<void> Connection::open(const std::string& host, std::uint16_t port, Security security) {
  error_code ec;
  const std::string service = std::to_string(port);
  // Bounded like the connect: a dead DNS server must not stall the mailbox.
  net::Resolved resolved = co_await net::resolve(host, service, limits_.connect_timeout);
  if (!resolved.error.empty()) throw ImapError(ImapError::Kind::Network, resolved.error);
  const auto& endpoints = resolved.endpoints;
  {
    Deadline d(socket_, Clock::now() + limits_.connect_timeout, true);
    co_await asio::async_connect(socket_, endpoints, asio::redirect_error(use_awaitable, ec));
    if (ec)
      throw ImapError(ImapError::Kind::Network, "cannot connect to " + host + ":" + service + ": " +
                                                    (d.expired() ? std::string("timed out") : ec.message()));
  }
  if (security == Security::Tls) co_await start_tls(host);
  Response greeting = co_await read_response(nullptr);
  if (greeting.name == "BYE") throw ImapError(ImapError::Kind::Refused, "server refused the connection: " + greeting.text);
  if (greeting.name != "OK" && greeting.name != "PREAUTH")
    throw ImapError(ImapError::Kind::Protocol, "unexpected greeting: " + greeting.name);
  preauth_ = greeting.name == "PREAUTH";
  refresh_capabilities(greeting);
  if (caps_.empty()) co_await load_capabilities();
  if (security == Security::StartTls) {
    if (!has("STARTTLS")) throw ImapError(ImapError::Kind::Tls, host + " does not offer STARTTLS");
    Tagged r = co_await command("STARTTLS");
    if (!r.ok()) throw ImapError(ImapError::Kind::Tls, "STARTTLS refused: " + r.response.text);
    if (!buffer_.empty()) throw ImapError(ImapError::Kind::Protocol, "data injected before the TLS handshake");
    co_await start_tls(host);
    caps_.clear();  // RFC 3501 §6.2.1: forget what was learnt in the clear
    co_await load_capabilities();
  }
}

awaitable<void> Connection::start_tls(const std::string& host) {
  tls_ = std::make_unique<ssl::stream<tcp::socket&>>(socket_, tls_context_);
  expect_peer(tls_->native_handle(), host);
  error_code ec;
  Deadline d(socket_, Clock::now() + limits_.connect_timeout, true);
  co_await tls_->async_handshake(ssl::stream_base::client, asio::redirect_error(use_awaitable, ec));
  if (ec) {
    long verify = SSL_get_verify_result(tls_->native_handle());
    throw ImapError(ImapError::Kind::Tls, "TLS handshake with " + host + " failed: " +
                                              (verify != X509_V_OK ? std::string(X509_verify_cert_error_string(verify))
                                                                   : ec.message()));
  }
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
  error_code ec;
  Deadline d(socket_, Clock::now() + limits_.command_timeout, true);
  if (tls_) co_await asio::async_write(*tls_, asio::buffer(bytes), asio::redirect_error(use_awaitable, ec));
  else co_await asio::async_write(socket_, asio::buffer(bytes), asio::redirect_error(use_awaitable, ec));
  if (ec) throw ImapError(ImapError::Kind::Network, "connection lost while sending: " + ec.message());
}

awaitable<bool> Connection::fill(Clock::time_point deadline, bool quiet_expiry) {
  char chunk[64 * 1024];
  error_code ec;
  std::size_t n = 0;
  Deadline d(socket_, deadline, true);
  if (tls_) n = co_await tls_->async_read_some(asio::buffer(chunk), asio::redirect_error(use_awaitable, ec));
  else n = co_await socket_.async_read_some(asio::buffer(chunk), asio::redirect_error(use_awaitable, ec));
  if (d.expired() && quiet_expiry) co_return false;
  if (d.expired()) throw ImapError(ImapError::Kind::Network, "server stopped answering (timeout)");
  if (ec || n == 0)
    throw ImapError(ImapError::Kind::Network,
                    ec == asio::error::eof ? "server closed the connection" : "connection lost: " + ec.message());
  buffer_.append(chunk, n);
  co_return true;
}

awaitable<std::string> Connection::read_line(Clock::time_point deadline) {
  std::size_t scanned = 0;
  for (;;) {
    std::size_t eol = buffer_.find('\n', scanned);
    if (eol != std::string::npos) {
      std::string line = buffer_.substr(0, eol + 1);
      buffer_.erase(0, eol + 1);
      co_return line;
    }
    scanned = buffer_.size();
    if (buffer_.size() > limits_.max_line) throw ImapError(ImapError::Kind::Protocol, "response line too long");
    co_await fill(deadline, false);
  }
}

// A response: a line; while it ends in a literal announcement, the literal
// (in memory, streamed to `sink`, or dropped) and the next line.
awaitable<Response> Connection::read_response(LiteralSink* sink, const SearchNumbers* search,
                                              std::uint64_t* counted) {
  std::string wire;
  bool had_literal = false;
  std::uint64_t extra = 0;  // discarded literal bytes
  for (;;) {
    std::string line = co_await read_line(Clock::now() + limits_.command_timeout);
    std::string_view bare = line;
    while (!bare.empty() && (bare.back() == '\n' || bare.back() == '\r')) bare.remove_suffix(1);
    auto size = literal_size_at_end(bare);
    wire += line;
    if (wire.size() > limits_.max_line) throw ImapError(ImapError::Kind::Protocol, "response too long");
    if (!size) break;
    had_literal = true;
    const auto take = sink ? sink->begin(wire, *size) : LiteralSink::Take::Inline;
    if (take == LiteralSink::Take::Stream || take == LiteralSink::Take::Discard) {
      if (take == LiteralSink::Take::Stream && *size > limits_.max_streamed_literal)
        throw ImapError(ImapError::Kind::Protocol, "literal too large");
      if (take == LiteralSink::Take::Discard) {
        extra += *size;
        if (counted && *counted + wire.size() + extra > limits_.max_untagged_bytes)
          throw ImapError(ImapError::Kind::Protocol, "more than " + std::to_string(limits_.max_untagged_bytes) +
                                                         " bytes of untagged data for one command");
      }
      // The parser sees an empty literal in its place.
      wire.erase(wire.size() - line.size());
      std::string head(bare.substr(0, bare.rfind('{')));
      wire += head + "{0}\r\n";
      std::uint64_t left = *size;
      while (left > 0) {
        if (buffer_.empty()) co_await fill(Clock::now() + limits_.command_timeout, false);
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, buffer_.size()));
        if (take == LiteralSink::Take::Stream) sink->write(std::string_view(buffer_).substr(0, n));
        buffer_.erase(0, n);
        left -= n;
      }
      continue;
    }
    if (*size > limits_.max_inline_literal) throw ImapError(ImapError::Kind::Protocol, "literal too large");
    while (buffer_.size() < *size) co_await fill(Clock::now() + limits_.command_timeout, false);
    wire.append(buffer_, 0, static_cast<std::size_t>(*size));
    buffer_.erase(0, static_cast<std::size_t>(*size));
  }
  if (counted) *counted += wire.size() + extra;
  if (search && !had_literal && scan_search(wire, *search)) {
    Response r;
    r.name = "SEARCH";  // its numbers went to `search`
    co_return r;
  }
  try {
    co_return parse_response(wire);
  } catch (const ResponseError& e) {
    throw ImapError(ImapError::Kind::Protocol, e.what());
  }
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

awaitable<Connection::IdleResult> Connection::idle(std::chrono::seconds max_wait) {
  const std::string tag = next_tag();
  out_ = tag + " IDLE\r\n";
  co_await write_all(out_);
  bool changed = false;
  // IDLE is a command too: its untagged data has the same bounds.
  std::size_t count = 0;
  std::uint64_t bytes = 0;
  auto read_counted = [&]() -> awaitable<Response> {
    Response r = co_await read_response(nullptr, nullptr, &bytes);
    if (++count > limits_.max_untagged_responses || bytes > limits_.max_untagged_bytes)
      throw ImapError(ImapError::Kind::Protocol, "more untagged data during IDLE than one command may send");
    co_return r;
  };
  // Until "+ idling", then wait for news.
  for (;;) {
    Response r = co_await read_counted();
    if (r.kind == Response::Kind::Continuation) break;
    if (r.kind == Response::Kind::Tagged && r.tag == tag)
      throw ImapError(ImapError::Kind::Protocol, "IDLE refused: " + r.text);
    if (r.kind == Response::Kind::Untagged && (r.name == "EXISTS" || r.name == "RECENT")) changed = true;
  }
  const auto until = Clock::now() + max_wait;
  while (!changed) {
    if (buffer_.find('\n') == std::string::npos) {
      if (!co_await fill(until, true)) co_return IdleResult::Expired;  // the socket is closed
      continue;
    }
    Response r = co_await read_counted();
    if (r.kind == Response::Kind::Untagged && r.name == "BYE")
      throw ImapError(ImapError::Kind::Refused, "server said BYE: " + r.text);
    if (r.kind == Response::Kind::Untagged && (r.name == "EXISTS" || r.name == "RECENT")) changed = true;
  }
  out_ = "DONE\r\n";
  co_await write_all(out_);
  for (;;) {
    Response r = co_await read_response(nullptr);
    if (r.kind == Response::Kind::Tagged && r.tag == tag) break;
    if (r.kind == Response::Kind::Untagged && r.name == "BYE")
      throw ImapError(ImapError::Kind::Refused, "server said BYE: " + r.text);
  }
  co_return IdleResult::Changed;
}

}  // namespace mailgate::imap
