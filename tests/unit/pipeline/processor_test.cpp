// The processor's own rules: placeholders become exactly the uploaded ids,
// and a broken spool never loses a message or stops silently.
#include "mailgate/pipeline/processor.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>

namespace fs = std::filesystem;
using namespace mailgate;

TEST(Processor, PlaceholdersAreReplacedWholly) {
  std::map<std::string, std::string> ids = {{"media-1", "uuid-one"}, {"media-10", "uuid-ten"}};
  EXPECT_EQ(pipeline::resolve_placeholders(R"(<img src="att:media-10"/><img src="att:media-1"/>)", ids),
            R"(<img src="att:uuid-ten"/><img src="att:uuid-one"/>)");
}

TEST(Processor, ASpoolErrorKeepsTheMessageQueuedWithTheReason) {
  const fs::path dir = fs::temp_directory_path() / ("mailgate-processor-test-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto spool = spool::Spool::open(dir.string(), {0, 0});
  auto id = spool->accept("From: Jane <jane@example.com>\r\nSubject: hi\r\n\r\nbody\r\n", "smtp").id;
  // Break the database under the processor: the user cache disappears.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "state.sqlite").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "DROP TABLE users", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);

  net::asio::io_context io;
  messenger::MessengerSettings unreachable;
  unreachable.auth_url = "https://127.0.0.1:1/v1";  // never called: the error comes first
  messenger::MessengerClient client(io.get_executor(), unreachable);
  pipeline::Processor processor(io.get_executor(), *spool, &client, {});
  std::exception_ptr escaped;
  net::asio::co_spawn(io, processor.process(*spool->get(id)), [&](std::exception_ptr e) { escaped = e; });
  io.run();

  EXPECT_FALSE(escaped) << "the error escaped the processor";
  auto rec = spool->get(id);
  EXPECT_EQ(rec->state, spool::State::Queued);
  EXPECT_NE(rec->last_error.find("spool error"), std::string::npos) << rec->last_error;
  EXPECT_GT(rec->next_attempt_at, rec->received_at);
  EXPECT_EQ(processor.in_flight(), 0u);
  fs::remove_all(dir);
}
