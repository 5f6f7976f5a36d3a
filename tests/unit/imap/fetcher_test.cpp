// The fetcher's marks, against an in-memory MarkStore and a scripted IMAP
// server on 127.0.0.1: the first visit starts from UIDVALIDITY's mark 0,
// the mark moves past imported and skipped messages only after the
// acknowledgement, a stored mark decides where the search starts, and a
// mark no UID can follow (an old version's) is repaired.
#include "mailgate/imap/fetcher.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "mailgate/spool/spool.hpp"

namespace fs = std::filesystem;
namespace asio = mailgate::net::asio;
using mailgate::net::tcp;
using namespace mailgate::imap;
using namespace std::chrono_literals;

namespace {

// Answers each command with the untagged lines `answer` gives for it (a
// tagged OK follows), from one connection at a time. Every command is kept.
struct ScriptedServer {
  explicit ScriptedServer(asio::any_io_executor ex) : acceptor(ex, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {}
  std::uint16_t port() const { return acceptor.local_endpoint().port(); }

  asio::awaitable<void> serve() {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket s = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      co_await session(s);
    }
  }

  asio::awaitable<void> session(tcp::socket& s) {
    boost::system::error_code ec;
    std::string in;
    co_await send(s, "* OK [CAPABILITY IMAP4rev1] scripted\r\n");
    for (;;) {
      std::size_t n = co_await asio::async_read_until(s, asio::dynamic_buffer(in), "\r\n",
                                                      asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      const std::string line = in.substr(0, n - 2);
      in.erase(0, n);
      const std::string tag = line.substr(0, line.find(' '));
      const std::string command = line.substr(tag.size() + 1);
      commands.push_back(command);
      co_await send(s, answer(command) + tag + " OK done\r\n");
    }
  }

  static asio::awaitable<void> send(tcp::socket& s, const std::string& bytes) {
    boost::system::error_code ec;
    co_await asio::async_write(s, asio::buffer(bytes), asio::redirect_error(asio::use_awaitable, ec));
  }

  tcp::acceptor acceptor;
  std::function<std::string(const std::string&)> answer;
  std::vector<std::string> commands;
};

// The in-memory store, noting what the server had been sent when each mark was set.
struct WatchedMarks final : MarkStore {
  WatchedMarks(MemoryMarkStore& m, const std::vector<std::string>& c) : memory(m), commands(c) {}
  Mark mark(const std::string& mailbox) override { return memory.mark(mailbox); }
  void set_mark(const std::string& mailbox, const Mark& mark) override {
    memory.set_mark(mailbox, mark);
    last_command_at_set.push_back(commands.empty() ? "" : commands.back());
  }
  void record_skip(const std::string& mailbox, const Skip& skip) override { memory.record_skip(mailbox, skip); }
  MemoryMarkStore& memory;
  const std::vector<std::string>& commands;
  std::vector<std::string> last_command_at_set;
};

std::string message(int n) {
  return "Message-ID: <m" + std::to_string(n) + "@example.com>\r\nTo: support@example.com\r\nSubject: " +
         std::to_string(n) + "\r\n\r\nbody\r\n";
}

std::string fetched_body(int uid) {
  const std::string m = message(uid);
  return "* " + std::to_string(uid) + " FETCH (UID " + std::to_string(uid) + " BODY[] {" + std::to_string(m.size()) +
         "}\r\n" + m + ")\r\n";
}

class FetcherMarks : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("mailgate-fetcher-test-" + std::to_string(::getpid()) + "-" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    spool = mailgate::spool::Spool::open(dir.string(), mailgate::spool::SpoolLimits{0, 0});
  }
  void TearDown() override {
    spool.reset();
    fs::remove_all(dir);
  }

  // Runs a fetcher for mailbox "box" until the server's script calls stop (`stop_at` command).
  void run_fetcher(const std::map<std::string, std::string>& script, const std::string& stop_at) {
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    auto server = std::make_unique<ScriptedServer>(io.get_executor());
    MailboxSettings s;
    s.name = "box";
    s.host = "127.0.0.1";
    s.port = server->port();
    s.security = Security::None;
    s.username = "u";
    s.password = "p";
    s.idle = false;
    s.poll_interval = 0s;
    s.max_message_size = 1000;
    s.backoff_base = 1ms;
    s.backoff_cap = 1ms;
    auto owned = std::make_unique<WatchedMarks>(*marks, server->commands);
    WatchedMarks* store = owned.get();
    Fetcher fetcher(io.get_executor(), *spool, std::move(owned), s);
    fetcher.on_accepted = [&](const std::string& id) { accepted.push_back(id); };
    server->answer = [&](const std::string& command) -> std::string {
      if (command == stop_at) fetcher.stop();
      auto it = script.find(command);
      return it == script.end() ? "" : it->second;
    };
    asio::co_spawn(io, server->serve(), asio::detached);
    bool ended = false;
    asio::co_spawn(io, fetcher.run(), [&](std::exception_ptr) {
      ended = true;
      work.reset();
      io.stop();
    });
    io.run_for(30s);
    EXPECT_TRUE(ended);
    commands = server->commands;
    command_at_mark = store->last_command_at_set;
  }

  fs::path dir;
  std::unique_ptr<mailgate::spool::Spool> spool;
  std::vector<std::string> commands;         // what the server was sent
  std::vector<std::string> command_at_mark;  // the last of them when each mark was set
  std::unique_ptr<MemoryMarkStore> marks = std::make_unique<MemoryMarkStore>();
  std::vector<std::string> accepted;
};

const std::string kSelected = "* 3 EXISTS\r\n* OK [UIDVALIDITY 7] UIDs valid\r\n";

TEST_F(FetcherMarks, AFirstVisitImportsSkipsTheOversizedAndMovesTheMarkAfterTheAcknowledgement) {
  run_fetcher({{"SELECT \"INBOX\"", kSelected},
               {"UID SEARCH UID 1:*", "* SEARCH 1 2 3\r\n"},
               {"UID FETCH 1:3 (UID RFC822.SIZE)",
                "* 1 FETCH (UID 1 RFC822.SIZE 90)\r\n* 2 FETCH (UID 2 RFC822.SIZE 5000)\r\n"
                "* 3 FETCH (UID 3 RFC822.SIZE 90)\r\n"},
               {"UID FETCH 1,3 (UID BODY.PEEK[])", fetched_body(1) + fetched_body(3)}},
              "UID SEARCH UID 4:*");
  EXPECT_EQ(accepted.size(), 2u);
  EXPECT_EQ(marks->history["box"], (std::vector<Mark>{{7, 0}, {7, 3}}));
  EXPECT_EQ(marks->skips["box"], (std::vector<Skip>{{7, 2, 5000, "larger than max_message_size"}}));
  // The mark moved only once the server had the \Seen.
  EXPECT_EQ(command_at_mark, (std::vector<std::string>{"SELECT \"INBOX\"", "UID STORE 1,3 +FLAGS.SILENT (\\Seen)"}));
  EXPECT_EQ(commands.back(), "UID SEARCH UID 4:*");
}

TEST_F(FetcherMarks, TheStoredMarkDecidesWhereTheSearchStarts) {
  marks->marks["box"] = {7, 3};
  run_fetcher({{"SELECT \"INBOX\"", kSelected}}, "UID SEARCH UID 4:*");
  EXPECT_TRUE(marks->history["box"].empty());  // nothing imported: the mark stays as it was
  EXPECT_EQ(commands.back(), "UID SEARCH UID 4:*");
  EXPECT_EQ(marks->marks["box"], (Mark{7, 3}));
}

TEST_F(FetcherMarks, ANewUidValidityStartsTheMarkAgain) {
  marks->marks["box"] = {6, 40};
  run_fetcher({{"SELECT \"INBOX\"", kSelected}}, "UID SEARCH UID 1:*");
  EXPECT_EQ(marks->history["box"], (std::vector<Mark>{{7, 0}}));
  EXPECT_EQ(commands.back(), "UID SEARCH UID 1:*");
}

TEST_F(FetcherMarks, AMarkNoUidCanFollowIsRepaired) {
  marks->marks["box"] = {7, UINT64_MAX};
  run_fetcher({{"SELECT \"INBOX\"", kSelected}}, "UID SEARCH UID 1:*");
  EXPECT_EQ(marks->history["box"], (std::vector<Mark>{{7, 0}}));
  EXPECT_EQ(commands.back(), "UID SEARCH UID 1:*");
}

}  // namespace
