// The reader behind SMTP's command and data loops and IMAP's responses. A wait
// is bounded by a timer that cancels the stream's pending operation; the
// operation then fails and the caller learns "timeout", not "disconnected".
#include "mailgate/net/line_reader.hpp"

namespace mailgate::net {

using boost::system::error_code;

std::string_view to_string(ReadError e) {
  switch (e) {
    case ReadError::None: return "none";
    case ReadError::Eof: return "disconnected";
    case ReadError::Timeout: return "timeout";
    case ReadError::TooLong: return "line too long";
  }
  return "unknown";
}

LineReader::LineReader(ByteStream& stream, std::size_t chunk)
    : stream_(&stream), chunk_(chunk), watch_(std::make_shared<Watch>()), timer_(stream.executor()) {
  watch_->stream = stream_;
}

LineReader::~LineReader() {
  watch_->stream = nullptr;
  timer_.cancel();
}

void LineReader::switch_to(ByteStream& stream) {
  stream_ = &stream;
  watch_->stream = stream_;
}

void LineReader::discard_buffered() {
  in_.clear();
  pos_ = 0;
}

void LineReader::arm(Clock::time_point deadline) {
  watch_->waiting = true;
  watch_->expired = false;
  timer_.expires_at(deadline);
  timer_.async_wait([w = watch_](const error_code& ec) {
    if (!ec && w->waiting && w->stream) {
      w->expired = true;
      w->stream->cancel();
    }
  });
}

bool LineReader::disarm() {
  watch_->waiting = false;
  timer_.cancel();
  return watch_->expired;
}

// Appends one read of at most `max` bytes to the buffer, after dropping what
// was consumed. Returns the number of new bytes; 0 sets `why`.
asio::awaitable<std::size_t> LineReader::fill(std::size_t max, Clock::time_point deadline, ReadError& why) {
  if (pos_ > 0) {
    in_.erase(0, pos_);
    pos_ = 0;
  }
  const std::size_t old = in_.size();
  in_.resize(old + max);
  error_code ec;
  arm(deadline);
  std::size_t n = co_await stream_->read_some(asio::buffer(in_.data() + old, max), ec);
  const bool expired = disarm();
  in_.resize(old + (ec ? 0 : n));
  if (ec || n == 0) {
    last_error_ = ec ? ec : asio::error::eof;
    why = expired ? ReadError::Timeout : ReadError::Eof;
    co_return 0;
  }
  co_return n;
}

asio::awaitable<std::optional<Line>> LineReader::read_line(std::size_t max, std::chrono::milliseconds timeout,
                                                           ReadError& why) {
  co_return co_await read_line_within(max, Patience{timeout, std::nullopt}, why);
}

asio::awaitable<std::optional<Line>> LineReader::read_line(std::size_t max, Clock::time_point deadline,
                                                           ReadError& why) {
  co_return co_await read_line_within(max, Patience{std::chrono::milliseconds(0), deadline}, why);
}

asio::awaitable<std::optional<Line>> LineReader::read_line_within(std::size_t max, Patience patience,
                                                                  ReadError& why) {
  std::size_t searched = pos_;  // bytes before it hold no LF
  for (;;) {
    const std::size_t nl = in_.find('\n', searched);
    if (nl != std::string::npos) {
      Line line;
      line.end = nl > pos_ && in_[nl - 1] == '\r' ? LineEnd::CrLf : LineEnd::BareLf;
      const std::size_t end = line.end == LineEnd::CrLf ? nl - 1 : nl;
      if (end - pos_ > max) {
        why = ReadError::TooLong;
        co_return std::nullopt;
      }
      line.text = std::string_view(in_).substr(pos_, end - pos_);
      pos_ = nl + 1;
      co_return line;
    }
    // +1: the CR of a CRLF whose LF has not arrived yet.
    if (in_.size() - pos_ > max + 1) {
      why = ReadError::TooLong;
      co_return std::nullopt;
    }
    searched = in_.size() - pos_;  // fill() moves the unread bytes to the front
    if (co_await fill(chunk_, patience.next_deadline(), why) == 0) co_return std::nullopt;
  }
}

asio::awaitable<std::string_view> LineReader::read_some(std::size_t max, std::chrono::milliseconds timeout,
                                                        ReadError& why) {
  if (buffered() == 0 && co_await fill(max, Clock::now() + timeout, why) == 0) co_return std::string_view();
  const std::size_t take = std::min(max, buffered());
  std::string_view out = std::string_view(in_).substr(pos_, take);
  pos_ += take;
  co_return out;
}

asio::awaitable<bool> LineReader::write(std::string_view data, std::chrono::milliseconds timeout) {
  error_code ec;
  arm(Clock::now() + timeout);
  co_await stream_->write(asio::buffer(data.data(), data.size()), ec);
  disarm();
  if (ec) last_error_ = ec;
  co_return !ec;
}

}  // namespace mailgate::net
