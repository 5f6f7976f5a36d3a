// The SMTP/LMTP session as the RFCs read: order of commands (RFC 5321
// §4.1.4), pipelining (RFC 2920), every limit, LMTP's reply per recipient
// (RFC 2033 §4.2), BDAT (RFC 3030), the spool's verdict as a reply code, and
// no mail smuggled inside another (CVE-2023-51764). The client is a script
// over an in-memory stream; the spool is real, in a temporary directory.
#include "mailgate/smtp/smtp_server.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include "mailgate/metrics/metrics.hpp"
#include "memory_stream.hpp"

namespace fs = std::filesystem;
namespace asio = mailgate::net::asio;
using mailgate::smtp::SmtpServer;
using mailgate::smtp::SmtpSettings;
using mailgate::spool::Spool;
using mailgate::spool::SpoolLimits;

namespace {

const std::string kMail = "From: a@example.org\r\nSubject: s\r\nMessage-ID: <m1@test>\r\n\r\nhello\r\n";

class SmtpSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : name) c = c == '/' ? '_' : c;  // parameterised: "Name/3"
    dir = fs::temp_directory_path() / ("mailgate-smtp-test-" + std::to_string(::getpid()) + "-" + name);
    fs::remove_all(dir);
    settings.hostname = "mx.test";
    settings.accept = {"support@example.com", "@help.example.com"};
    settings.max_message_size = 10'000;
  }
  void TearDown() override {
    spool.reset();
    fs::remove_all(dir);
  }

  Spool& the_spool() {
    if (!spool) spool = Spool::open(dir.string(), spool_limits);
    return *spool;
  }

  // Runs one session over the script; returns what the server wrote.
  std::string converse(std::vector<std::string> pieces, bool hang = false) {
    asio::io_context io;
    SmtpServer server(io.get_executor(), settings, the_spool(),
                      [this](const std::string& id) { accepted.push_back(id); });
    mailgate::test::MemoryStream stream(io.get_executor(), std::move(pieces), hang);
    bool done = false;
    auto work = asio::make_work_guard(io);  // the spool's committer posts back from its thread
    asio::co_spawn(io, server.converse(stream, "192.0.2.1"), [&](std::exception_ptr e) {
      done = true;
      work.reset();
      if (e) std::rethrow_exception(e);
    });
    io.run_for(std::chrono::seconds(30));
    EXPECT_TRUE(done) << "the session did not end";
    return stream.output;
  }
  std::string converse(const std::string& script, bool hang = false) {
    return converse(std::vector<std::string>{script}, hang);
  }

  std::vector<std::string> queued() {
    std::vector<std::string> ids;
    for (const auto& r : the_spool().list()) ids.push_back(r.id);
    return ids;
  }
  bool nothing_half_written() { return fs::is_empty(dir / "tmp"); }

  fs::path dir;
  SpoolLimits spool_limits{0, 0};
  std::unique_ptr<Spool> spool;
  SmtpSettings settings;
  std::vector<std::string> accepted;
};

// The code of every reply, in order (a multi-line reply counts once).
std::vector<int> codes(const std::string& output) {
  std::vector<int> out;
  std::size_t pos = 0;
  while (pos < output.size()) {
    std::size_t end = output.find("\r\n", pos);
    if (end == std::string::npos) end = output.size();
    std::string line = output.substr(pos, end - pos);
    pos = end + 2;
    if (line.size() >= 4 && line[3] == '-') continue;
    out.push_back(std::stoi(line.substr(0, 3)));
  }
  return out;
}

std::string envelope(const std::string& helo = "EHLO client.test") {
  return helo + "\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<support@example.com>\r\n";
}

// ---- RFC 5321 §4.1.4: the order of commands ----

TEST_F(SmtpSessionTest, CommandsOutOfOrderAreRefusedAndTheSessionGoesOn) {
  std::string out = converse(
      "MAIL FROM:<a@example.org>\r\n"      // 503: no EHLO yet
      "RCPT TO:<support@example.com>\r\n"  // 503
      "DATA\r\n"                           // 503
      "EHLO client.test\r\n"               // 250
      "DATA\r\n"                           // 503: no MAIL
      "MAIL FROM:<a@example.org>\r\n"      // 250
      "MAIL FROM:<b@example.org>\r\n"      // 503: nested
      "DATA\r\n"                           // 554: no valid recipients
      "RCPT TO:<support@example.com>\r\n"  // 250
      "DATA\r\n" + kMail + ".\r\n"         // 354, 250
      "RCPT TO:<support@example.com>\r\n"  // 503: the message ended the transaction
      "RSET\r\nVRFY x\r\nHELP\r\nNOOP\r\nQUIT\r\n");
  EXPECT_EQ(codes(out), (std::vector<int>{220, 503, 503, 503, 250, 503, 250, 503, 554, 250, 354, 250, 503, 250, 252,
                                          214, 250, 221}));
  EXPECT_EQ(queued().size(), 1u);
  EXPECT_EQ(accepted.size(), 1u);
}

TEST_F(SmtpSessionTest, AMessageIsStoredWithOurReceivedHeaderAndNothingElseAdded) {
  std::string out = converse(envelope() + "DATA\r\n" + kMail + "..stuffed\r\n.\r\nQUIT\r\n");
  ASSERT_EQ(codes(out), (std::vector<int>{220, 250, 250, 250, 354, 250, 221}));
  ASSERT_EQ(accepted.size(), 1u);
  EXPECT_NE(out.find("queued as " + accepted[0]), std::string::npos);
  std::string raw = the_spool().read_raw(accepted[0]);
  EXPECT_EQ(raw.rfind("Received: from client.test ([192.0.2.1])", 0), 0u) << raw;
  EXPECT_NE(raw.find("\r\n\tfor <support@example.com>;"), std::string::npos);
  EXPECT_EQ(raw.substr(raw.find("From: a@example.org")), kMail + ".stuffed\r\n");
}

TEST_F(SmtpSessionTest, HeloAnswersBrieflyEhloListsTheExtensions) {
  std::string out = converse("HELO old.test\r\nEHLO new.test\r\nQUIT\r\n");
  EXPECT_NE(out.find("250 mx.test\r\n"), std::string::npos) << out;
  for (std::string ext : {"PIPELINING", "SIZE 10000", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING"})
    EXPECT_NE(out.find(ext), std::string::npos) << ext;
  EXPECT_EQ(out.find("STARTTLS"), std::string::npos);  // no certificate configured
  EXPECT_EQ(codes(converse("STARTTLS\r\nQUIT\r\n")), (std::vector<int>{220, 502, 221}));
}

TEST_F(SmtpSessionTest, NoOpenRelay) {
  std::string out = converse(
      "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<victim@gmail.com>\r\n"
      "RCPT TO:<support@example.com.evil.test>\r\nRCPT TO:<support@sub.help.example.com>\r\nRCPT TO:<@x>\r\n"
      "RCPT TO:<Support@Example.COM>\r\nRCPT TO:<anyone@help.example.com>\r\n");
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 250, 550, 550, 550, 550, 250, 250}));
}

// ---- RFC 2920: pipelining, wherever the reads split the commands ----

TEST_F(SmtpSessionTest, PipelinedCommandsGetTheSameRepliesHoweverTheBytesArrive) {
  const std::string script = envelope() + "RCPT TO:<x@elsewhere.test>\r\nDATA\r\n" + kMail + ".\r\nNOOP\r\nQUIT\r\n";
  const std::vector<int> expected{220, 250, 250, 250, 550, 354, 250, 250, 221};
  for (std::size_t piece : {script.size(), std::size_t{1}, std::size_t{2}, std::size_t{7}}) {
    std::vector<std::string> pieces;
    for (std::size_t i = 0; i < script.size(); i += piece) pieces.push_back(script.substr(i, piece));
    EXPECT_EQ(codes(converse(pieces)), expected) << "pieces of " << piece;
  }
  // The same Message-ID each time: stored once, the others are duplicates.
  EXPECT_EQ(queued().size(), 1u);
}

// ---- limits ----

TEST_F(SmtpSessionTest, RecipientsBeyondTheLimitGet452) {
  settings.limits.max_recipients = 3;
  std::string script = "EHLO c\r\nMAIL FROM:<a@example.org>\r\n";
  for (int i = 0; i < 5; ++i) script += "RCPT TO:<u" + std::to_string(i) + "@help.example.com>\r\n";
  EXPECT_EQ(codes(converse(script)), (std::vector<int>{220, 250, 250, 250, 250, 250, 452, 452}));
}

TEST_F(SmtpSessionTest, TooManyErrorsEndWith421) {
  settings.limits.max_errors = 3;
  std::string out = converse("GARBAGE\r\nMAIL FROM:<a@example.org>\r\nEHLO\r\nGARBAGE\r\nNOOP\r\n");
  // The 503 (out of order) is no syntax error; the unknown verb and the
  // EHLO without a name are.
  EXPECT_EQ(codes(out), (std::vector<int>{220, 500, 503, 501, 421}));
  EXPECT_NE(out.find("too many errors"), std::string::npos);
}

TEST_F(SmtpSessionTest, TooManyCommandsEndWith421) {
  settings.limits.max_commands = 3;
  EXPECT_EQ(codes(converse("NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\n")), (std::vector<int>{220, 250, 250, 250, 421}));
}

TEST_F(SmtpSessionTest, AnOverlongCommandLineEndsTheSession) {
  settings.limits.max_command_line = 100;
  // Within one read, with its line ending already there: still too long.
  EXPECT_EQ(codes(converse("EHLO " + std::string(200, 'x') + "\r\nNOOP\r\n")), (std::vector<int>{220, 500}));
  EXPECT_EQ(codes(converse("EHLO " + std::string(90, 'x') + "\r\nNOOP\r\n")), (std::vector<int>{220, 250, 250}));
}

TEST_F(SmtpSessionTest, AnOverlongDataLineLeavesNothing) {
  settings.limits.max_data_line = 100;
  std::string out = converse(envelope() + "DATA\r\n" + std::string(200, 'y') + "\r\n.\r\n");
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 250, 250, 354, 500}));
  EXPECT_TRUE(queued().empty());
  EXPECT_TRUE(nothing_half_written());
}

TEST_F(SmtpSessionTest, MessageSizeLimits) {
  settings.max_message_size = 1000;
  std::string big;
  for (int i = 0; i < 30; ++i) big += std::string(98, 'z') + "\r\n";
  std::string out = converse(
      "EHLO c\r\nMAIL FROM:<a@example.org> SIZE=2000\r\n"             // 552: announced too big
      "MAIL FROM:<a@example.org> SIZE=x\r\n"                          // 501
      "MAIL FROM:<a@example.org> SIZE=900 BODY=8BITMIME SMTPUTF8\r\n"  // 250
      "RCPT TO:<support@example.com>\r\nDATA\r\n" + big + ".\r\nNOOP\r\n");
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 552, 501, 250, 250, 354, 552, 250}));
  EXPECT_TRUE(queued().empty());
  EXPECT_TRUE(nothing_half_written());
}

TEST_F(SmtpSessionTest, AnIdleClientGets421Timeout) {
  settings.limits.command_timeout = std::chrono::milliseconds(100);
  auto start = std::chrono::steady_clock::now();
  std::string out = converse("EHLO c\r\nNO", /*hang=*/true);
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 421}));
  EXPECT_NE(out.find("421 4.4.2 mx.test Error: timeout exceeded"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(SmtpSessionTest, AClientSilentInsideDataGets421AndLeavesNothing) {
  settings.limits.data_timeout = std::chrono::milliseconds(100);
  std::string out = converse(envelope() + "DATA\r\nSubject: half\r\n", /*hang=*/true);
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 250, 250, 354, 421}));
  EXPECT_TRUE(queued().empty());
  EXPECT_TRUE(nothing_half_written());
}

TEST_F(SmtpSessionTest, ADisconnectInsideDataLeavesNothing) {
  std::string out = converse(envelope() + "DATA\r\nSubject: half\r\npartial");
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 250, 250, 354}));
  EXPECT_TRUE(queued().empty());
  EXPECT_TRUE(nothing_half_written());
}

// ---- the spool's verdict decides the code ----

TEST_F(SmtpSessionTest, AFullQueueIs452) {
  spool_limits.max_queue_bytes = 10;  // any message exceeds it at commit
  std::string out = converse(envelope() + "DATA\r\n" + kMail + ".\r\n");
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 250, 250, 354, 452}));
  EXPECT_NE(out.find("452 4.3.1 Insufficient system storage: spool queue full"), std::string::npos) << out;
}

TEST_F(SmtpSessionTest, ANearlyFullDiskIs452AtMail) {
  spool_limits.min_free_bytes = std::uint64_t{1} << 62;
  std::string out = converse("EHLO c\r\nMAIL FROM:<a@example.org>\r\n");
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 452}));
  EXPECT_NE(out.find("spool disk nearly full"), std::string::npos);
}

TEST_F(SmtpSessionTest, AnyOtherSpoolFailureIs451) {
  the_spool();
  fs::remove_all(dir / "queue");  // the rename into queue/ fails
  std::string out = converse(envelope() + "DATA\r\n" + kMail + ".\r\n");
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 250, 250, 354, 451}));
  EXPECT_NE(out.find("451 4.3.0 Error: spool rename failed"), std::string::npos) << out;
  EXPECT_TRUE(accepted.empty());
}

TEST_F(SmtpSessionTest, ADuplicateIsAcknowledgedAsTheEarlierMessage) {
  std::string out = converse(envelope() + "DATA\r\n" + kMail + ".\r\nMAIL FROM:<a@example.org>\r\n"
                             "RCPT TO:<support@example.com>\r\nDATA\r\n" + kMail + ".\r\n");
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 250, 250, 354, 250, 250, 250, 354, 250}));
  ASSERT_EQ(accepted.size(), 1u);
  EXPECT_NE(out.find("250 2.0.0 Ok: already received as " + accepted[0]), std::string::npos) << out;
}

// ---- LMTP: one reply per recipient at the end of the message ----

TEST_F(SmtpSessionTest, LmtpRepliesOncePerAcceptedRecipient) {
  settings.lmtp = true;
  settings.max_message_size = 1000;
  std::string big;
  for (int i = 0; i < 30; ++i) big += std::string(98, 'z') + "\r\n";
  const std::string rcpts = "MAIL FROM:<a@example.org>\r\nRCPT TO:<support@example.com>\r\n"
                            "RCPT TO:<other@help.example.com>\r\nRCPT TO:<nope@elsewhere.test>\r\n";
  std::string out = converse("EHLO x\r\nLHLO x\r\n" + rcpts + "DATA\r\n" + kMail + ".\r\n" +  //
                             rcpts + "DATA\r\n" + big + ".\r\nNOOP\r\n");
  EXPECT_EQ(codes(out), (std::vector<int>{220, 500, 250,                     //
                                          250, 250, 250, 550, 354, 250, 250,  // two recipients: two 250
                                          250, 250, 250, 550, 354, 552, 552,  // a refusal too
                                          250}));
  EXPECT_NE(out.find("220 mx.test LMTP"), std::string::npos);
  EXPECT_EQ(queued().size(), 1u);
}

TEST_F(SmtpSessionTest, LmtpStorageRefusalIsPerRecipientToo) {
  settings.lmtp = true;
  spool_limits.max_queue_bytes = 10;
  std::string out = converse("LHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<support@example.com>\r\n"
                             "RCPT TO:<other@help.example.com>\r\nDATA\r\n" + kMail + ".\r\n");
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 250, 250, 250, 354, 452, 452}));
}

// ---- BDAT (RFC 3030) ----

TEST_F(SmtpSessionTest, BdatChunksMakeOneMessage) {
  const std::string part1 = "From: a@example.org\r\nSubject: chunked\r\n\r\n";
  const std::string part2 = "body in a second chunk\r\n.\r\n";  // a dot is just a byte here
  std::string out = converse(envelope() + "BDAT " + std::to_string(part1.size()) + "\r\n" + part1 +  //
                             "BDAT " + std::to_string(part2.size()) + " LAST\r\n" + part2 + "QUIT\r\n");
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 250, 250, 250, 250, 221}));
  ASSERT_EQ(accepted.size(), 1u);
  std::string raw = the_spool().read_raw(accepted[0]);
  EXPECT_EQ(raw.substr(raw.find("From: a@example.org")), part1 + part2);
}

TEST_F(SmtpSessionTest, BdatOutOfPlaceIsRefusedAndItsChunkIsNotReadAsCommands) {
  std::string out = converse("EHLO c\r\nBDAT 6 LAST\r\nQUIT\r\nNOOP\r\n");
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 503, 250}));  // "QUIT\r\n" was the chunk
  // A refused chunk outside a transaction does not spoil the next one.
  out = converse("EHLO c\r\nBDAT 3\r\nabcMAIL FROM:<a@example.org>\r\nRCPT TO:<support@example.com>\r\nBDAT " +
                 std::to_string(kMail.size()) + " LAST\r\n" + kMail);
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 503, 250, 250, 250}));
  EXPECT_EQ(queued().size(), 1u);
}

TEST_F(SmtpSessionTest, OnlyBdatMayFollowBdat) {
  // The chunks make a mail ("To: x!\n"): a text without a header would be refused (NotAMailIs554).
  std::string out = converse(envelope() + "BDAT 5\r\nTo: xDATA\r\nRCPT TO:<support@example.com>\r\n"
                             "MAIL FROM:<a@example.org>\r\nBDAT 2 LAST\r\n!\n");
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 250, 250, 250, 503, 503, 503, 250}));
  EXPECT_EQ(queued().size(), 1u);
}

TEST_F(SmtpSessionTest, AnOversizedBdatMessageIsRefusedAndTheSessionGoesOn) {
  settings.max_message_size = 1000;
  const std::string chunk(600, 'b');
  std::string out = converse(envelope() + "BDAT 600\r\n" + chunk + "BDAT 600\r\n" + chunk + "BDAT 600 LAST\r\n" +
                             chunk + "NOOP\r\n" + envelope("RSET") + "BDAT 5 LAST\r\nTo: x");  // a small mail
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 250, 250, 250, 552, 554, 250, 250, 250, 250, 250}));
  EXPECT_EQ(queued().size(), 1u);
  EXPECT_TRUE(nothing_half_written());
}

TEST_F(SmtpSessionTest, ABdatSizeThatCannotBeReadEndsTheSession) {
  EXPECT_EQ(codes(converse(envelope() + "BDAT lots\r\nNOOP\r\n")), (std::vector<int>{220, 250, 250, 250, 501}));
}

// ---- SMTP smuggling (CVE-2023-51764 class) ----
// A relay passes its sender's "\n.\n" (and the like) on as text and ends the
// message with its own <CRLF>.<CRLF>. If that sequence ended DATA here, the
// rest would be read as commands: a second mail with a forged sender. It is
// text of the first mail instead: one mail per connection.

const std::string kSmuggled =
    "MAIL FROM:<ceo@example.com>\r\nRCPT TO:<support@example.com>\r\nDATA\r\n"
    "From: ceo@example.com\r\nSubject: smuggled\r\n\r\npay the invoice\r\n";

class Smuggling : public SmtpSessionTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(Smuggling, OneConnectionOneMailTheSecondIsText) {
  const std::string sequence = GetParam();
  std::string out = converse(envelope() + "DATA\r\nFrom: a@example.org\r\nSubject: first\r\n\r\nbody" + sequence +
                             kSmuggled + ".\r\nQUIT\r\n");
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 250, 250, 354, 250, 221})) << out;
  ASSERT_EQ(accepted.size(), 1u);
  EXPECT_EQ(queued().size(), 1u);
  std::string raw = the_spool().read_raw(accepted[0]);
  EXPECT_NE(raw.find("MAIL FROM:<ceo@example.com>\r\n"), std::string::npos) << raw;
  EXPECT_NE(raw.find("Subject: smuggled"), std::string::npos);
}

TEST_P(Smuggling, LmtpTooOneMail) {
  settings.lmtp = true;
  const std::string sequence = GetParam();
  std::string out = converse(envelope("LHLO c") + "RCPT TO:<other@help.example.com>\r\nDATA\r\n"
                             "Subject: first\r\n\r\nbody" + sequence + kSmuggled + ".\r\nQUIT\r\n");
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 250, 250, 250, 354, 250, 250, 221})) << out;
  EXPECT_EQ(queued().size(), 1u);
}

TEST_P(Smuggling, BdatCarriesTheSequenceAsBytes) {
  const std::string chunk = "Subject: first\r\n\r\nbody" + std::string(GetParam()) + kSmuggled;
  std::string out = converse(envelope() + "BDAT " + std::to_string(chunk.size()) + " LAST\r\n" + chunk + "QUIT\r\n");
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 250, 250, 250, 221})) << out;
  ASSERT_EQ(accepted.size(), 1u);
  EXPECT_NE(the_spool().read_raw(accepted[0]).find(chunk), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Sequences, Smuggling,
                         ::testing::Values("\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r\n", "\r\n.\r", "\r\n.\r\r\n",
                                           "\n.\r\r\n"));

// A client that speaks bare LF itself (it sent "DATA\n") is no relay for
// anyone: its lines are stored as CRLF and its "\n.\n" ends the message.
TEST_F(SmtpSessionTest, ABareLfClientIsUnderstoodAndStoredAsCrlf) {
  std::string out = converse(
      "EHLO lf.test\nMAIL FROM:<a@example.org>\nRCPT TO:<support@example.com>\nDATA\n"
      "From: a@example.org\nSubject: bare lf\n\n..dot-stuffed\nline\n.\nQUIT\n");
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 250, 250, 354, 250, 221}));
  ASSERT_EQ(accepted.size(), 1u);
  std::string raw = the_spool().read_raw(accepted[0]);
  EXPECT_NE(raw.find("Subject: bare lf\r\n\r\n.dot-stuffed\r\nline\r\n"), std::string::npos) << raw;
}

// A CRLF client's lone "." next to a bare LF is text, stored as it came.
TEST_F(SmtpSessionTest, ALoneDotNextToABareLfIsKeptAsText) {
  std::string out = converse(envelope() + "DATA\r\nSubject: s\r\n\r\na\n.\nb\r\n.\r\n");
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 250, 250, 354, 250}));
  ASSERT_EQ(accepted.size(), 1u);
  std::string raw = the_spool().read_raw(accepted[0]);
  EXPECT_EQ(raw.substr(raw.find("Subject: s")), "Subject: s\r\n\r\na\r\n.\r\nb\r\n");
}

}  // namespace

// ---- /metrics ----

TEST_F(SmtpSessionTest, RepliesAreCountedByCodeAndSessionsByProtocol) {
  auto& registry = mailgate::metrics::Registry::global();
  auto value = [&](std::string_view name, const mailgate::metrics::Labels& labels) {
    return registry.value(name, labels).value_or(0);
  };
  const double sessions = value("mailgate_smtp_sessions_total", {{"protocol", "smtp"}});
  const double ok = value("mailgate_smtp_replies_total", {{"code", "250"}});
  const double refused = value("mailgate_smtp_replies_total", {{"code", "550"}});
  converse("EHLO client.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<stranger@elsewhere.test>\r\nQUIT\r\n");
  EXPECT_EQ(value("mailgate_smtp_sessions_total", {{"protocol", "smtp"}}), sessions + 1);
  EXPECT_EQ(value("mailgate_smtp_replies_total", {{"code", "250"}}), ok + 2);  // EHLO (multi-line: once), MAIL
  EXPECT_EQ(value("mailgate_smtp_replies_total", {{"code", "550"}}), refused + 1);  // not one of our addresses
}

// ---- "is this a mail": the rule deliver and the pipeline apply (mail::classify_mail) ----

TEST_F(SmtpSessionTest, NotAMailIs554AndLeavesNothing) {
  std::string out = converse(envelope() + "DATA\r\njust some text\r\nwithout a header\r\n.\r\n" +  //
                             "MAIL FROM:<a@example.org>\r\nRCPT TO:<support@example.com>\r\nDATA\r\n" + kMail +
                             ".\r\nQUIT\r\n");
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 250, 250, 354, 554, 250, 250, 354, 250, 221}));
  EXPECT_NE(out.find("554 5.6.0 Error: not an email message: no RFC 5322 header fields"), std::string::npos) << out;
  EXPECT_EQ(queued().size(), 1u);  // the mail after it, not the text
  EXPECT_TRUE(nothing_half_written());
}

TEST_F(SmtpSessionTest, AnEmptyMessageIs554) {
  std::string out = converse(envelope() + "DATA\r\n.\r\nQUIT\r\n");
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 250, 250, 354, 554, 221}));
  EXPECT_NE(out.find("554 5.6.0 Error: not an email message: the input is empty"), std::string::npos) << out;
  EXPECT_TRUE(queued().empty());
}

TEST_F(SmtpSessionTest, BdatIsJudgedOnAllItsChunks) {
  // The header is split across chunks: a mail.
  std::string out = converse(envelope() + "BDAT 4\r\nSubjBDAT 13 LAST\r\nect: s\r\n\r\nb\r\n");
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 250, 250, 250, 250}));
  EXPECT_EQ(queued().size(), 1u);
  // Chunks of text: refused at LAST, and nothing stays.
  out = converse(envelope() + "BDAT 5\r\nhelloBDAT 2 LAST\r\n!\nNOOP\r\n");
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 250, 250, 250, 554, 250}));
  EXPECT_EQ(queued().size(), 1u);
  EXPECT_TRUE(nothing_half_written());
}

TEST_F(SmtpSessionTest, LmtpRefusesNotAMailOncePerRecipient) {
  settings.lmtp = true;
  std::string out = converse("LHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<support@example.com>\r\n"
                             "RCPT TO:<other@help.example.com>\r\nDATA\r\n\x89PNG\r\n.\r\n");
  EXPECT_EQ(codes(out), (std::vector<int>{220, 250, 250, 250, 250, 354, 554, 554}));
  EXPECT_TRUE(queued().empty());
}
