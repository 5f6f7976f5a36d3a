// The line reader's promises: lines split at LF with the ending reported
// (the SMTP DATA terminator depends on it), bounded lines, counted reads that
// take what is buffered first, and a deadline that ends a wait as "timeout".
#include "mailgate/net/line_reader.hpp"

#include <gtest/gtest.h>

#include "memory_stream.hpp"
#include "run_coroutine.hpp"

namespace asio = mailgate::net::asio;
using mailgate::net::LineEnd;
using mailgate::net::LineReader;
using mailgate::net::ReadError;
using mailgate::test::MemoryStream;

namespace {

using namespace std::chrono_literals;

template <class F>
void run(F body) {
  mailgate::test::run_coroutine(body, 10s);
}

struct Got {
  std::string text;
  LineEnd end;
};

TEST(LineReader, SplitsAtLfAndSaysHowTheLineEnded) {
  std::vector<Got> lines;
  ReadError last = ReadError::None;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    MemoryStream s(ex, {"one\r\ntwo\nthree\rstill three\r\n", "fo", "ur\r", "\nfive"}, false);
    LineReader r(s, 4);  // reads of 4 bytes: lines span reads
    for (;;) {
      auto line = co_await r.read_line(100, 1s, last);
      if (!line) break;
      lines.push_back({std::string(line->text), line->end});
    }
  });
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0].text, "one");
  EXPECT_EQ(lines[0].end, LineEnd::CrLf);
  EXPECT_EQ(lines[1].text, "two");
  EXPECT_EQ(lines[1].end, LineEnd::BareLf);
  EXPECT_EQ(lines[2].text, "three\rstill three");  // a bare CR is text
  EXPECT_EQ(lines[2].end, LineEnd::CrLf);
  EXPECT_EQ(lines[3].text, "four");  // CR and LF in different reads
  EXPECT_EQ(lines[3].end, LineEnd::CrLf);
  EXPECT_EQ(last, ReadError::Eof);  // "five" never ended
}

TEST(LineReader, ALineLongerThanTheLimitIsRefusedWhetherOrNotItsEndHasArrived) {
  for (std::size_t chunk : {std::size_t{1024}, std::size_t{3}}) {
    ReadError why = ReadError::None;
    std::optional<std::string> first;
    run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      MemoryStream s(ex, {"12345678\r\n"}, false);
      LineReader r(s, chunk);
      auto line = co_await r.read_line(8, 1s, why);
      if (line) first = std::string(line->text);
      line = co_await r.read_line(7, 1s, why);
      if (line) first = "unexpected";
    });
    EXPECT_EQ(first, "12345678") << chunk;  // exactly the limit is fine
    ReadError too_long = ReadError::None;
    run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      MemoryStream s(ex, {"123456789\r\n"}, false);
      LineReader r(s, chunk);
      auto line = co_await r.read_line(8, 1s, too_long);
      EXPECT_FALSE(line);
    });
    EXPECT_EQ(too_long, ReadError::TooLong) << chunk;
  }
}

TEST(LineReader, CountedReadsTakeTheBufferedBytesFirst) {
  std::string chunk, after;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    MemoryStream s(ex, {"BDAT 10\r\n0123", "456789NOOP\r\n"}, false);
    LineReader r(s, 1024);
    ReadError why = ReadError::None;
    auto line = co_await r.read_line(100, 1s, why);
    EXPECT_EQ(line->text, "BDAT 10");
    EXPECT_EQ(r.buffered(), 4u);
    while (chunk.size() < 10) {
      std::string_view got = co_await r.read_some(10 - chunk.size(), 1s, why);
      if (got.empty()) break;
      chunk += got;
    }
    line = co_await r.read_line(100, 1s, why);
    if (line) after = std::string(line->text);
  });
  EXPECT_EQ(chunk, "0123456789");
  EXPECT_EQ(after, "NOOP");
}

TEST(LineReader, ASilentPeerTimesOutAndTheStreamStaysUsable) {
  ReadError why = ReadError::None;
  bool wrote = false;
  auto start = std::chrono::steady_clock::now();
  std::string output;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    MemoryStream s(ex, {"partial"}, /*hang=*/true);
    LineReader r(s, 1024);
    auto line = co_await r.read_line(100, 50ms, why);
    EXPECT_FALSE(line);
    wrote = co_await r.write("421 timeout\r\n", 1s);  // the goodbye still goes out
    output = s.output;
  });
  EXPECT_EQ(why, ReadError::Timeout);
  EXPECT_TRUE(wrote);
  EXPECT_EQ(output, "421 timeout\r\n");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(LineReader, DiscardedBytesAreNeverRead) {
  std::vector<std::string> lines;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    MemoryStream s(ex, {"STARTTLS\r\nMAIL FROM:<injected>\r\n", "EHLO after\r\n"}, false);
    LineReader r(s, 1024);
    ReadError why = ReadError::None;
    auto line = co_await r.read_line(100, 1s, why);
    lines.push_back(std::string(line->text));
    r.discard_buffered();
    while ((line = co_await r.read_line(100, 1s, why))) lines.push_back(std::string(line->text));
  });
  EXPECT_EQ(lines, (std::vector<std::string>{"STARTTLS", "EHLO after"}));
}

// A peer that sends one byte per `gap`, forever: each wait is short, the
// line never ends.
class DribbleStream final : public mailgate::net::ByteStream {
 public:
  DribbleStream(asio::any_io_executor ex, std::chrono::milliseconds gap) : ex_(ex), gap_(gap), timer_(ex) {}
  asio::awaitable<std::size_t> read_some(asio::mutable_buffer into, boost::system::error_code& ec) override {
    timer_.expires_after(gap_);
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return 0;
    static_cast<char*>(into.data())[0] = 'x';
    ++sent;
    co_return 1;
  }
  asio::awaitable<void> write(asio::const_buffer, boost::system::error_code&) override { co_return; }
  void cancel() override { timer_.cancel(); }
  asio::any_io_executor executor() override { return ex_; }
  std::size_t sent = 0;

 private:
  asio::any_io_executor ex_;
  std::chrono::milliseconds gap_;
  asio::steady_timer timer_;
};

TEST(LineReader, WithADeadlineTheWholeLineMustArriveByThen) {
  ReadError per_wait = ReadError::None, whole_line = ReadError::None;
  std::size_t sent_per_wait = 0, sent_whole_line = 0;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    DribbleStream s(ex, 5ms);
    LineReader r(s, 1024);
    // Bounding each wait: the dribble goes on until the line limit.
    auto line = co_await r.read_line(40, 1s, per_wait);
    EXPECT_FALSE(line);
    sent_per_wait = s.sent;
  });
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    DribbleStream s(ex, 5ms);
    LineReader r(s, 1024);
    auto line = co_await r.read_line(1'000'000, std::chrono::steady_clock::now() + 100ms, whole_line);
    EXPECT_FALSE(line);
    sent_whole_line = s.sent;
  });
  EXPECT_EQ(per_wait, ReadError::TooLong);
  EXPECT_GT(sent_per_wait, 40u);
  EXPECT_EQ(whole_line, ReadError::Timeout);  // not TooLong: the line limit was far away
  EXPECT_LT(sent_whole_line, 1'000'000u);
}

TEST(LineReader, TheLastErrorSaysWhyAReadFailed) {
  boost::system::error_code after_eof;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    MemoryStream s(ex, {"no end"}, false);
    LineReader r(s, 1024);
    ReadError why = ReadError::None;
    auto line = co_await r.read_line(100, 1s, why);
    EXPECT_FALSE(line);
    EXPECT_EQ(why, ReadError::Eof);
    after_eof = r.last_error();
  });
  EXPECT_EQ(after_eof, asio::error::eof);
}

}  // namespace
