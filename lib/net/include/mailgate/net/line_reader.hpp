// Line-oriented protocols (SMTP, LMTP, later IMAP) read through one reader:
// lines with a length bound, exact byte counts (BDAT chunks, IMAP literals),
// and a deadline on every wait. A timeout cancels the pending operation
// instead of closing the connection, so the protocol can still say goodbye
// (SMTP's "421 timeout"). The reader sees the connection as a ByteStream, so
// a session runs the same over TCP, TLS or an in-memory stream in a test.
//
// IMAP reads through it too (imap::ResponseReader): response lines with
// read_line under an absolute deadline (a whole line must arrive by then, so a
// server dribbling one byte at a time cannot hold a session), each {n}
// literal with read_some until n bytes have come.
//
// Threads: a reader and its stream belong to one coroutine on one executor.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "mailgate/net/asio.hpp"

namespace mailgate::net {

// The connection as the protocol code sees it.
class ByteStream {
 public:
  virtual ~ByteStream() = default;
  // At least one byte, or 0 with `ec` set (EOF, error, cancelled).
  virtual asio::awaitable<std::size_t> read_some(asio::mutable_buffer into, boost::system::error_code& ec) = 0;
  // All of `data`, or `ec` set.
  virtual asio::awaitable<void> write(asio::const_buffer data, boost::system::error_code& ec) = 0;
  // Cancels the pending read or write (called by a deadline's timer); the
  // connection stays open.
  virtual void cancel() = 0;
  virtual asio::any_io_executor executor() = 0;
};

// Any Asio stream whose lowest layer is a beast::tcp_stream or a TCP socket
// (tcp_stream, ssl::stream<tcp_stream&>, ...). Holds a reference.
template <class Stream>
class AsioByteStream final : public ByteStream {
 public:
  explicit AsioByteStream(Stream& s) : s_(s) {}
  asio::awaitable<std::size_t> read_some(asio::mutable_buffer into, boost::system::error_code& ec) override {
    co_return co_await s_.async_read_some(into, asio::redirect_error(asio::use_awaitable, ec));
  }
  asio::awaitable<void> write(asio::const_buffer data, boost::system::error_code& ec) override {
    co_await asio::async_write(s_, data, asio::redirect_error(asio::use_awaitable, ec));
  }
  void cancel() override { cancel_lowest(beast::get_lowest_layer(s_)); }
  asio::any_io_executor executor() override { return s_.get_executor(); }

 private:
  static void cancel_lowest(beast::tcp_stream& t) { t.cancel(); }
  static void cancel_lowest(tcp::socket& s) {
    boost::system::error_code ignored;
    s.cancel(ignored);
  }
  Stream& s_;
};

// Why a read ended without its data.
enum class ReadError { None, Eof, Timeout, TooLong };
std::string_view to_string(ReadError e);

// How a line ended: the difference decides whether ".\n" ends SMTP DATA.
enum class LineEnd { CrLf, BareLf };

struct Line {
  std::string_view text;  // without the line ending; valid until the next read
  LineEnd end = LineEnd::CrLf;
};

class LineReader {
 public:
  using Clock = std::chrono::steady_clock;

  // `chunk`: how much one socket read may bring in (the buffer grows by it).
  LineReader(ByteStream& stream, std::size_t chunk);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line, split at LF (CRLF or a bare LF; a bare CR is text).
  // `max`: the longest line without its ending; longer is TooLong and the
  // stream is no longer in sync. `timeout` bounds each wait for bytes.
  asio::awaitable<std::optional<Line>> read_line(std::size_t max, std::chrono::milliseconds timeout, ReadError& why);
  // The same, with every wait ending at `deadline`: the whole line must have
  // come by then.
  asio::awaitable<std::optional<Line>> read_line(std::size_t max, Clock::time_point deadline, ReadError& why);
  // Up to `max` bytes of what follows: what is buffered, else one read of at
  // most `max` (so `max` also sizes the read). For counted data (BDAT, IMAP
  // literals) without copying it into a line.
  asio::awaitable<std::string_view> read_some(std::size_t max, std::chrono::milliseconds timeout, ReadError& why);
  // Writes all of `data` within `timeout`; false on error or timeout.
  asio::awaitable<bool> write(std::string_view data, std::chrono::milliseconds timeout);
  // Why the last failed read or write failed (eof, reset, operation_aborted
  // for a timeout): for the protocol's error message.
  const boost::system::error_code& last_error() const { return last_error_; }

  // Bytes received and not yet consumed (pipelined commands).
  std::size_t buffered() const { return in_.size() - pos_; }
  // Drops them: after STARTTLS nothing sent in the clear may be used (RFC 3207 §5).
  void discard_buffered();
  // Continues on another stream (the TLS stream over the same socket).
  void switch_to(ByteStream& stream);

 private:
  // How long a read may wait: `each` per wait for bytes, or everything
  // until `until` when set.
  struct Patience {
    std::chrono::milliseconds each{0};
    std::optional<Clock::time_point> until;
    Clock::time_point next_deadline() const { return until ? *until : Clock::now() + each; }
  };
  asio::awaitable<std::optional<Line>> read_line_within(std::size_t max, Patience patience, ReadError& why);
  asio::awaitable<std::size_t> fill(std::size_t max, Clock::time_point deadline, ReadError& why);
  void arm(Clock::time_point deadline);
  bool disarm();  // true: the deadline had passed

  ByteStream* stream_;
  std::size_t chunk_;
  std::string in_;
  std::size_t pos_ = 0;
  boost::system::error_code last_error_;
  // What the timer's handler needs; shared because the handler may run
  // after the reader is gone.
  struct Watch {
    bool waiting = false;
    bool expired = false;
    ByteStream* stream = nullptr;
  };
  std::shared_ptr<Watch> watch_;
  asio::steady_timer timer_;
};

}  // namespace mailgate::net
