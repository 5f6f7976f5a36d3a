// A literal is read in pieces through the LineReader; the parser sees the
// response with kept literals in place and the others as "{0}".
#include "mailgate/imap/response_reader.hpp"

#include <algorithm>

namespace mailgate::imap {

using namespace mailgate::net;
using asio::awaitable;

void ResponseReader::fail(ReadError why) const {
  switch (why) {
    case ReadError::Timeout:
      throw ImapError(ImapError::Kind::Network, "server stopped answering (timeout)");
    case ReadError::TooLong:
      throw ImapError(ImapError::Kind::Protocol, "response line too long");
    case ReadError::None:
    case ReadError::Eof:
      break;
  }
  const auto& ec = in_.last_error();
  throw ImapError(ImapError::Kind::Network,
                  ec == asio::error::eof ? "server closed the connection" : "connection lost: " + ec.message());
}

awaitable<bool> ResponseReader::read_line(Wire& wire, Clock::time_point deadline, bool quiet) {
  ReadError why = ReadError::None;
  auto line = co_await in_.read_line(limits_.max_line, deadline, why);
  if (!line) {
    if (quiet && why == ReadError::Timeout) co_return false;
    fail(why);
  }
  wire.last_line_at = wire.text.size();
  wire.last_line_bare = line->text.size();
  wire.text += line->text;
  wire.text += line->end == LineEnd::CrLf ? "\r\n" : "\n";
  if (wire.text.size() > limits_.max_line) throw ImapError(ImapError::Kind::Protocol, "response too long");
  co_return true;
}

awaitable<void> ResponseReader::pass_literal(std::uint64_t size, const Piece& to) {
  for (std::uint64_t left = size; left > 0;) {
    ReadError why = ReadError::None;
    const auto ask = static_cast<std::size_t>(std::min<std::uint64_t>(left, kReadChunk));
    std::string_view got = co_await in_.read_some(ask, limits_.command_timeout, why);
    if (got.empty()) fail(why);
    if (to) to(got);
    left -= got.size();
  }
}

awaitable<void> ResponseReader::read_literal(Wire& wire, std::uint64_t size, LiteralSink* sink,
                                             const std::uint64_t* counted) {
  wire.had_literal = true;
  const auto take = sink ? sink->begin(wire.text, size) : LiteralSink::Take::Inline;
  if (take == LiteralSink::Take::Inline) {
    if (size > limits_.max_inline_literal) throw ImapError(ImapError::Kind::Protocol, "literal too large");
    const Piece keep = [&wire](std::string_view bytes) { wire.text += bytes; };
    co_await pass_literal(size, keep);
    co_return;
  }
  if (take == LiteralSink::Take::Stream && size > limits_.max_streamed_literal)
    throw ImapError(ImapError::Kind::Protocol, "literal too large");
  if (take == LiteralSink::Take::Discard) {
    wire.discarded += size;
    if (counted && *counted + wire.text.size() + wire.discarded > limits_.max_untagged_bytes)
      throw ImapError(ImapError::Kind::Protocol, "more than " + std::to_string(limits_.max_untagged_bytes) +
                                                     " bytes of untagged data for one command");
  }
  // The parser sees an empty literal in its place.
  const std::string_view bare = wire.last_line();
  std::string head(bare.substr(0, bare.rfind('{')));
  wire.text.erase(wire.last_line_at);
  wire.text += head + "{0}\r\n";
  Piece to;
  if (take == LiteralSink::Take::Stream) to = [sink](std::string_view bytes) { sink->write(bytes); };
  co_await pass_literal(size, to);
}

awaitable<Response> ResponseReader::finish(Wire& wire, LiteralSink* sink, const SearchNumbers* search,
                                           std::uint64_t* counted) {
  while (auto size = literal_size_at_end(wire.last_line())) {
    co_await read_literal(wire, *size, sink, counted);
    co_await read_line(wire, Clock::now() + limits_.command_timeout, false);
  }
  if (counted) *counted += wire.text.size() + wire.discarded;
  if (search && !wire.had_literal && scan_search(wire.text, *search)) {
    Response r;
    r.name = "SEARCH";  // its numbers went to `search`
    co_return r;
  }
  try {
    co_return parse_response(wire.text);
  } catch (const ResponseError& e) {
    throw ImapError(ImapError::Kind::Protocol, e.what());
  }
}

awaitable<Response> ResponseReader::read(LiteralSink* sink, const SearchNumbers* search, std::uint64_t* counted) {
  Wire wire;
  co_await read_line(wire, Clock::now() + limits_.command_timeout, false);
  co_return co_await finish(wire, sink, search, counted);
}

awaitable<std::optional<Response>> ResponseReader::read_by(Clock::time_point first_line_by, std::uint64_t* counted) {
  Wire wire;
  const bool arrived = co_await read_line(wire, first_line_by, true);
  if (!arrived) co_return std::nullopt;
  co_return co_await finish(wire, nullptr, nullptr, counted);
}

}  // namespace mailgate::imap
