// IMAP responses read through net::LineReader: literals that TCP splits
// anywhere, kept, streamed or dropped; every line and literal within its
// limit; a deadline that ends a wait mid-literal; IDLE's quiet expiry.
#include "mailgate/imap/response_reader.hpp"

#include <gtest/gtest.h>

#include "memory_stream.hpp"
#include "run_coroutine.hpp"

namespace asio = mailgate::net::asio;
using mailgate::net::LineReader;
using mailgate::test::MemoryStream;
using namespace mailgate::imap;
using namespace std::chrono_literals;

namespace {

template <class F>
void run(F body) {
  mailgate::test::run_coroutine(body, 20s);
}

// Reads one response from `pieces` (one read each); the error, if any, in `error`.
struct Outcome {
  std::optional<Response> response;
  std::optional<ImapError> error;
  std::uint64_t counted = 0;
};

Outcome read_one(std::vector<std::string> pieces, const ConnectionLimits& limits, LiteralSink* sink = nullptr,
                 bool hang = false) {
  Outcome out;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    MemoryStream s(ex, pieces, hang);
    LineReader in(s, ResponseReader::kReadChunk);
    ResponseReader reader(in, limits);
    try {
      out.response = co_await reader.read(sink, nullptr, &out.counted);
    } catch (const ImapError& e) {
      out.error = e;
    }
  });
  return out;
}

struct CollectingSink : LiteralSink {
  Take take = Take::Stream;
  std::string announced;  // the response up to the literal, as begin() saw it
  std::uint64_t size = 0;
  std::string bytes;
  std::size_t writes = 0;
  Take begin(std::string_view line, std::uint64_t n) override {
    announced = std::string(line);
    size = n;
    return take;
  }
  void write(std::string_view b) override {
    bytes += b;
    ++writes;
  }
};

const Value* body_of(const Response& r) {
  const auto& items = r.data.at(0).items;
  for (std::size_t i = 0; i + 1 < items.size(); i += 2)
    if (items[i].is_atom("BODY[]")) return &items[i + 1];
  return nullptr;
}

const std::vector<std::string> kSplitFetch = {"* 1 FETCH (UID 5 BODY[] {11}\r", "\nhel", "lo w", "orld UID", " 5)\r\n"};

TEST(ImapResponseReader, AnInlineLiteralSplitAcrossReadsIsReadWhole) {
  Outcome got = read_one(kSplitFetch, ConnectionLimits{});
  ASSERT_FALSE(got.error) << got.error->what();
  ASSERT_TRUE(got.response);
  EXPECT_EQ(got.response->name, "FETCH");
  const Value* body = body_of(*got.response);
  ASSERT_TRUE(body);
  EXPECT_EQ(body->text, "hello world");
  // Every byte of the response counts, the literal's too (it was kept).
  EXPECT_EQ(got.counted, std::string("* 1 FETCH (UID 5 BODY[] {11}\r\nhello world UID 5)\r\n").size());
}

TEST(ImapResponseReader, AStreamedLiteralGoesToTheSinkAndTheParserSeesAnEmptyOne) {
  CollectingSink sink;
  Outcome got = read_one(kSplitFetch, ConnectionLimits{}, &sink);
  ASSERT_FALSE(got.error) << got.error->what();
  EXPECT_EQ(sink.announced, "* 1 FETCH (UID 5 BODY[] {11}\r\n");
  EXPECT_EQ(sink.size, 11u);
  EXPECT_EQ(sink.bytes, "hello world");
  EXPECT_GE(sink.writes, 2u);  // piece by piece, as the reads brought them
  const Value* body = body_of(*got.response);
  ASSERT_TRUE(body);
  EXPECT_EQ(body->text, "");
  // A literal the sink kept is not untagged data.
  EXPECT_EQ(got.counted, std::string("* 1 FETCH (UID 5 BODY[] {0}\r\n UID 5)\r\n").size());
}

TEST(ImapResponseReader, ADiscardedLiteralIsReadAndCountedButKeptNowhere) {
  CollectingSink sink;
  sink.take = LiteralSink::Take::Discard;
  Outcome got = read_one(kSplitFetch, ConnectionLimits{}, &sink);
  ASSERT_FALSE(got.error) << got.error->what();
  EXPECT_EQ(sink.bytes, "");
  EXPECT_EQ(body_of(*got.response)->text, "");
  EXPECT_EQ(got.counted, std::string("* 1 FETCH (UID 5 BODY[] {0}\r\n UID 5)\r\n").size() + 11);
}

TEST(ImapResponseReader, ALineOverTheLimitIsAProtocolError) {
  ConnectionLimits limits;
  limits.max_line = 32;
  const std::string at_limit = "* OK " + std::string(25, 'x') + "\r\n";  // 30 bytes + CRLF
  Outcome fine = read_one({at_limit}, limits);
  ASSERT_FALSE(fine.error) << fine.error->what();
  EXPECT_EQ(fine.response->name, "OK");

  const std::string over = "* OK " + std::string(40, 'x') + "\r\n";
  for (std::size_t cut : {std::size_t{3}, std::size_t{20}, over.size()}) {  // wherever the reads split it
    Outcome got = read_one({over.substr(0, cut), over.substr(cut)}, limits);
    ASSERT_TRUE(got.error) << cut;
    EXPECT_EQ(got.error->kind, ImapError::Kind::Protocol);
    EXPECT_STREQ(got.error->what(), "response line too long");
  }
}

TEST(ImapResponseReader, ResponseLinesJoinedByLiteralsShareTheLineLimit) {
  ConnectionLimits limits;
  limits.max_line = 48;
  Outcome got = read_one({"* 1 FETCH (BODY[1] {4}\r\nabcd BODY[2] {4}\r\nefgh BODY[3] {4}\r\nijkl)\r\n"}, limits);
  ASSERT_TRUE(got.error);
  EXPECT_EQ(got.error->kind, ImapError::Kind::Protocol);
  EXPECT_STREQ(got.error->what(), "response too long");
}

TEST(ImapResponseReader, LiteralsOverTheirLimitsAreRefusedBeforeTheyAreRead) {
  ConnectionLimits limits;
  limits.max_inline_literal = 10;
  limits.max_streamed_literal = 10;
  Outcome inline_literal = read_one(kSplitFetch, limits);
  ASSERT_TRUE(inline_literal.error);
  EXPECT_STREQ(inline_literal.error->what(), "literal too large");
  CollectingSink sink;
  Outcome streamed = read_one(kSplitFetch, limits, &sink);
  ASSERT_TRUE(streamed.error);
  EXPECT_STREQ(streamed.error->what(), "literal too large");
  EXPECT_EQ(sink.bytes, "");
}

TEST(ImapResponseReader, ADeadlineExpiringMidLiteralIsATimeout) {
  ConnectionLimits limits;
  limits.command_timeout = 1s;
  CollectingSink sink;
  // 11 bytes announced, 3 sent, then silence.
  Outcome got = read_one({"* 1 FETCH (UID 5 BODY[] {11}\r\nhel"}, limits, &sink, /*hang=*/true);
  ASSERT_TRUE(got.error);
  EXPECT_EQ(got.error->kind, ImapError::Kind::Network);
  EXPECT_STREQ(got.error->what(), "server stopped answering (timeout)");
  EXPECT_EQ(sink.bytes, "hel");
}

TEST(ImapResponseReader, AConnectionClosedMidLiteralSaysSo) {
  Outcome got = read_one({"* 1 FETCH (UID 5 BODY[] {11}\r\nhel"}, ConnectionLimits{});
  ASSERT_TRUE(got.error);
  EXPECT_EQ(got.error->kind, ImapError::Kind::Network);
  EXPECT_STREQ(got.error->what(), "server closed the connection");
}

TEST(ImapResponseReader, IdleExpiresQuietlyWhenNothingComesAndReadsWhatDoes) {
  std::optional<Response> news;
  bool expired = false;
  ConnectionLimits limits;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    MemoryStream s(ex, {"* 3 EXI", "STS\r\n"}, /*hang=*/true);
    LineReader in(s, ResponseReader::kReadChunk);
    ResponseReader reader(in, limits);
    std::uint64_t counted = 0;
    news = co_await reader.read_by(std::chrono::steady_clock::now() + 200ms, &counted);
    auto nothing = co_await reader.read_by(std::chrono::steady_clock::now() + 200ms, &counted);
    expired = !nothing;
  });
  ASSERT_TRUE(news);
  EXPECT_EQ(news->name, "EXISTS");
  EXPECT_TRUE(expired);
}

TEST(ImapResponseReader, SearchNumbersAreStreamedNotParsed) {
  std::vector<std::uint64_t> numbers;
  Response r;
  run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    MemoryStream s(ex, {"* SEARCH 3 4", "2 7\r\n"}, false);
    LineReader in(s, ResponseReader::kReadChunk);
    ConnectionLimits limits;
    ResponseReader reader(in, limits);
    SearchNumbers on_number = [&](std::uint64_t n) { numbers.push_back(n); };
    r = co_await reader.read(nullptr, &on_number);
  });
  EXPECT_EQ(r.name, "SEARCH");
  EXPECT_TRUE(r.data.empty());
  EXPECT_EQ(numbers, (std::vector<std::uint64_t>{3, 42, 7}));
}

}  // namespace
