// Bytes from the server → one IMAP Response: a line, and while it ends in a
// literal announcement ({n} or ~{n}), the literal and the next line. Lines
// and literals come through net::LineReader (the plumbing SMTP uses), so
// every wait has a deadline and every line a bound. A literal is kept in the
// response (up to max_inline_literal), streamed to a LiteralSink (up to
// max_streamed_literal) or dropped; either way it is read in pieces of at
// most one read chunk, never n bytes at once.
//
// Threads: the connection's coroutine only (like the LineReader under it).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "mailgate/imap/connection.hpp"
#include "mailgate/net/line_reader.hpp"

namespace mailgate::imap {

class ResponseReader {
 public:
  using Clock = std::chrono::steady_clock;
  // How much one read may bring in (IMAP's read chunk).
  static constexpr std::size_t kReadChunk = 64 * 1024;

  ResponseReader(net::LineReader& in, const ConnectionLimits& limits) : in_(in), limits_(limits) {}

  // Each line within command_timeout. Throws ImapError: Network for a
  // timeout or a lost connection, Protocol for a line, response or literal
  // over its limit or a response that does not parse.
  // `counted`: bytes that count against max_untagged_bytes (all but the
  // literals a sink kept); added to.
  net::asio::awaitable<Response> read(LiteralSink* sink, const SearchNumbers* search = nullptr,
                                      std::uint64_t* counted = nullptr);
  // The same, but the first line may take until `first_line_by` (IDLE's
  // restart time): nullopt when nothing has come by then (the stream is
  // then cancelled; the connection is done).
  net::asio::awaitable<std::optional<Response>> read_by(Clock::time_point first_line_by, std::uint64_t* counted);

 private:
  struct Wire {
    std::string text;  // what the parser sees: lines, kept literals, "{0}" for the others
    std::size_t last_line_at = 0;    // where the last line begins in `text`
    std::size_t last_line_bare = 0;  // its length without the line ending
    bool had_literal = false;
    std::uint64_t discarded = 0;  // literal bytes dropped (they count as untagged data)
    // Without stray CRs before the ending, as a literal announcement is looked for.
    std::string_view last_line() const {
      std::string_view line = std::string_view(text).substr(last_line_at, last_line_bare);
      while (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      return line;
    }
  };
  // Appends one line with its ending; false when nothing came by `deadline`
  // and `quiet` (otherwise throws).
  net::asio::awaitable<bool> read_line(Wire& wire, Clock::time_point deadline, bool quiet);
  // The literal of `size` bytes announced at the end of `wire`'s last line.
  net::asio::awaitable<void> read_literal(Wire& wire, std::uint64_t size, LiteralSink* sink,
                                          const std::uint64_t* counted);
  // Reads `size` bytes, each piece to `to` (dropped when empty).
  using Piece = std::function<void(std::string_view)>;
  net::asio::awaitable<void> pass_literal(std::uint64_t size, const Piece& to);
  net::asio::awaitable<Response> finish(Wire& wire, LiteralSink* sink, const SearchNumbers* search,
                                        std::uint64_t* counted);
  [[noreturn]] void fail(net::ReadError why) const;

  net::LineReader& in_;
  const ConnectionLimits& limits_;
};

}  // namespace mailgate::imap
