// MessengerClient against the fake Messenger over real TLS on 127.0.0.1:
// the contract, each fault alone, a fault storm, certificate checks.
#include "mailgate/messenger/messenger_client.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "mailgate/metrics/metrics.hpp"

#include "client_test_support.hpp"
#include "fake_messenger.hpp"

namespace fs = std::filesystem;
using namespace mailgate;
using namespace mailgate::messenger;
using mailgate::testing::ExistingUserStyle;
using mailgate::testing::FakeMessenger;
using mailgate::testing::FakeMessengerOptions;
using mailgate::testing::Fault;
using std::chrono::milliseconds;

using namespace mailgate::messenger_test;

TEST_F(MessengerClientTest, HappyPathUserMediaTicketOverTlsOnOneConnection) {
  FakeMessenger fake(tls_fake_options());
  MessengerClient client(io.get_executor(), settings_for(fake));
  const std::string png = bytes_of(5000, 1);
  auto user = run(io, client.create_user("Jane Doe", "jane@example.com", kCtx));
  ASSERT_TRUE(user) << user.error().message;
  auto media = run(io, client.upload_media("logo.png", png, kCtx));
  ASSERT_TRUE(media) << media.error().message;
  // Typed values from config (tickets.defaults) reach the API as numbers.
  NewTicket t{"Printer on fire", "<p>See <img src=\"att:" + id_text(media.value()) + "\"/></p>", user.value(),
              {media.value()}, {{"source", 5}, {"queue", 3}}, ""};
  auto ticket = run(io, client.create_ticket(t, kCtx));
  ASSERT_TRUE(ticket) << ticket.error().message;
  auto reply = run(io, client.add_reply(ticket.value().id, NewReply{"<p>more</p>", user.value(), {}}, kCtx));
  ASSERT_TRUE(reply) << reply.error().message;

  auto tickets = fake.tickets();
  ASSERT_EQ(tickets.size(), 1u);
  EXPECT_EQ(tickets[0].id, id_text(ticket.value().id));
  EXPECT_EQ(ticket.value().id, tickets[0].id);  // an integer id keeps its type: 1000, not "1000"
  EXPECT_EQ(ticket.value().full_uuid, tickets[0].full_uuid);
  EXPECT_FALSE(ticket.value().full_uuid.empty());
  EXPECT_EQ(tickets[0].title, "Printer on fire");
  EXPECT_EQ(tickets[0].creator, id_text(user.value()));
  EXPECT_TRUE(tickets[0].request["creator"].is_number_integer()) << tickets[0].request["creator"];
  EXPECT_EQ(tickets[0].attachments, std::vector<std::string>{id_text(media.value())});
  EXPECT_EQ(tickets[0].request["source"], 5);
  EXPECT_EQ(tickets[0].request["queue"], 3);
  ASSERT_EQ(fake.media().size(), 1u);
  EXPECT_EQ(fake.media()[0].content, png);  // byte for byte
  EXPECT_EQ(fake.users()[0].address, "jane@example.com");
  // Auth (its answer names the ticketing URL: no /apis), the user looked up
  // before it was created, then the calls; all on one kept-alive connection.
  EXPECT_EQ(fake.count("auth"), 1u);
  EXPECT_EQ(fake.count("apis"), 0u);
  EXPECT_EQ(fake.count("find_user"), 1u);
  EXPECT_EQ(fake.count("users"), 1u);
  EXPECT_EQ(client.http().connections_opened(), 1u);
}

TEST_F(MessengerClientTest, ExistingUsersAreLookedUpNotCreatedAgain) {
  for (auto style : {ExistingUserStyle::Refused, ExistingUserStyle::ConflictWithId, ExistingUserStyle::OkWithId}) {
    FakeMessenger fake(tls_fake_options());
    fake.set_existing_user_style(style);
    MessengerClient client(io.get_executor(), settings_for(fake));
    auto first = run(io, client.create_user("Jane", "jane@example.com", kCtx));
    auto again = run(io, client.create_user("Jane D.", "JANE@example.com", kCtx));
    ASSERT_TRUE(first && again) << (again ? first.error().message : again.error().message);
    EXPECT_EQ(first.value(), again.value());
    EXPECT_EQ(first.value(), "1");  // a JSON number, kept as one
    EXPECT_EQ(fake.users().size(), 1u);
    EXPECT_EQ(fake.count("find_user"), 2u);
    EXPECT_EQ(fake.count("users"), 1u);  // POST only for the unknown address
  }
}

TEST_F(MessengerClientTest, AUserCreatedMeanwhileIsLookedUpAfterTheRefusal) {
  FakeMessenger fake(tls_fake_options());
  MessengerClient client(io.get_executor(), settings_for(fake));
  auto first = run(io, client.create_user("Jane", "jane@example.com", kCtx));
  ASSERT_TRUE(first);
  fake.set_lookup_misses(1);  // our lookup misses it; the POST is refused: "already exists"
  auto again = run(io, client.create_user("Jane", "jane@example.com", kCtx));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again.value(), first.value());
  EXPECT_EQ(fake.count("users"), 2u);      // created, then refused
  EXPECT_EQ(fake.count("find_user"), 3u);  // before each POST, and after the refusal
  EXPECT_EQ(fake.users().size(), 1u);
}

class EachFaultAlone : public MessengerClientTest, public ::testing::WithParamInterface<Fault> {};

TEST_P(EachFaultAlone, TicketArrivesExactlyOnce) {
  FakeMessenger fake(tls_fake_options());
  fake.set_retry_after("0");
  fake.set_slow_delay(milliseconds(100));
  MessengerClient client(io.get_executor(), settings_for(fake));
  auto user = run(io, client.create_user("Jane", "jane@example.com", kCtx));
  ASSERT_TRUE(user);
  fake.script_faults("tickets", {GetParam()});
  auto ticket = run(io, client.create_ticket(NewTicket{"t", "<p>m</p>", user.value(), {}, {}, ""}, kCtx));
  ASSERT_TRUE(ticket) << ticket.error().message;
  EXPECT_EQ(fake.tickets().size(), 1u);
  // A request that was sent and got no answer is looked up before it is sent again.
  const bool lost = GetParam() == Fault::DropBeforeResponse || GetParam() == Fault::DropAfterProcessing;
  EXPECT_EQ(fake.count("find_ticket"), lost ? 1u : 0u);
  const bool answered_first_time = GetParam() == Fault::Slow || GetParam() == Fault::DropAfterResponse ||
                                   GetParam() == Fault::DropAfterProcessing;  // found by the lookup, adopted
  std::size_t attempts = 0;
  for (const auto& r : fake.requests()) attempts += r.call == "tickets";
  EXPECT_EQ(attempts, answered_first_time ? 1u : 2u);
  // After a dropped connection the next call reconnects and succeeds.
  auto second = run(io, client.create_user("Bob", "bob@example.com", kCtx));
  EXPECT_TRUE(second);
}

std::string fault_test_name(const ::testing::TestParamInfo<Fault>& info) {
  static const char* const kNames[] = {"Status500", "Status503", "Status429", "DropBeforeResponse",
                                       "DropAfterResponse", "Slow", "Status502", "Status504", "Gateway403", "ApiForbidden",
                                       "DropAfterProcessing"};
  return kNames[static_cast<int>(info.param)];
}

INSTANTIATE_TEST_SUITE_P(Faults, EachFaultAlone,
                         ::testing::Values(Fault::Status500, Fault::Status503, Fault::Status429,
                                           Fault::DropBeforeResponse, Fault::DropAfterResponse, Fault::Slow,
                                           Fault::Status502, Fault::Status504, Fault::Gateway403,
                                           Fault::DropAfterProcessing),
                         fault_test_name);

TEST_F(MessengerClientTest, FaultsDuringAuthAndDiscoveryAreRetried) {
  FakeMessenger fake(tls_fake_options());
  fake.set_auth_includes_apis(false);  // so that discovery needs GET /apis
  fake.script_faults("auth", {Fault::Status503, Fault::DropBeforeResponse});
  fake.script_faults("apis", {Fault::Status500});
  MessengerClient client(io.get_executor(), settings_for(fake));
  auto user = run(io, client.create_user("Jane", "jane@example.com", kCtx));
  ASSERT_TRUE(user) << user.error().message;
  EXPECT_EQ(fake.users().size(), 1u);
}

TEST_F(MessengerClientTest, ASlowAnswerPastTheTimeoutIsRetried) {
  FakeMessenger fake(tls_fake_options());
  fake.set_slow_delay(milliseconds(1500));
  fake.script_faults("users", {Fault::Slow});
  auto settings = settings_for(fake);
  settings.http.read_timeout = milliseconds(300);
  MessengerClient client(io.get_executor(), settings);
  auto user = run(io, client.create_user("Jane", "jane@example.com", kCtx));
  ASSERT_TRUE(user) << user.error().message;
  std::this_thread::sleep_for(milliseconds(1500));  // let the slow request land too
  // Both requests reached the API; creating a user is idempotent by
  // address, so there is one user either way.
  EXPECT_EQ(fake.count("users"), 2u);
  EXPECT_EQ(fake.users().size(), 1u);
}

// A ticket POST answered 429 once, then retried: the seconds between the
// two POSTs (-1 when the retry did not happen or the ticket failed).
static double seconds_before_the_retry_of_a_429(FakeMessenger& fake, MessengerClient& client, net::asio::io_context& io) {
  auto user = run(io, client.create_user("Jane", "jane@example.com", kCtx));
  if (!user) return -1;
  fake.script_faults("tickets", {Fault::Status429});
  auto ticket = run(io, client.create_ticket(NewTicket{"t", "<p>m</p>", user.value(), {}, {}, ""}, kCtx));
  EXPECT_TRUE(ticket) << ticket.error().message;
  std::vector<double> at;
  for (const auto& r : fake.requests())
    if (r.call == "tickets") at.push_back(r.at);
  EXPECT_EQ(at.size(), 2u);
  return ticket && at.size() == 2 ? at[1] - at[0] : -1;
}

TEST_F(MessengerClientTest, RetryAfterIsRespected) {
  FakeMessenger fake(tls_fake_options());
  fake.set_retry_after("1");
  MessengerClient client(io.get_executor(), settings_for(fake));
  const double waited = seconds_before_the_retry_of_a_429(fake, client, io);
  EXPECT_GE(waited, 0.95) << "retried after " << waited << " s, Retry-After said 1 s";
}

TEST_F(MessengerClientTest, ARevokedTokenIsReplacedOnceAndTheCallRetried) {
  FakeMessenger fake(tls_fake_options());
  MessengerClient client(io.get_executor(), settings_for(fake));
  ASSERT_TRUE(run(io, client.create_user("Jane", "jane@example.com", kCtx)));
  fake.revoke_all_tokens();
  auto bob = run(io, client.create_user("Bob", "bob@example.com", kCtx));
  ASSERT_TRUE(bob) << bob.error().message;
  EXPECT_EQ(fake.count("auth"), 2u);
  EXPECT_EQ(fake.count("apis"), 0u);  // each /auth answer names the ticketing URL
}

TEST_F(MessengerClientTest, TokensAreRefreshedAheadOfExpiryAndReplacedWhenRefreshFails) {
  FakeMessengerOptions o = tls_fake_options();
  o.token_lifetime = std::chrono::seconds(2);
  FakeMessenger fake(o);
  MessengerClient client(io.get_executor(), settings_for(fake));
  ASSERT_TRUE(run(io, client.create_user("A", "a@example.com", kCtx)));
  std::this_thread::sleep_for(milliseconds(1600));  // inside the last quarter of the lifetime
  ASSERT_TRUE(run(io, client.create_user("B", "b@example.com", kCtx)));
  EXPECT_EQ(fake.count("refresh"), 1u);
  EXPECT_EQ(fake.count("auth"), 1u);
  fake.set_refresh_fails(true);
  std::this_thread::sleep_for(milliseconds(1600));
  ASSERT_TRUE(run(io, client.create_user("C", "c@example.com", kCtx)));
  EXPECT_EQ(fake.count("auth"), 2u);  // refresh failed: authenticated with the secret again
}

TEST_F(MessengerClientTest, ConcurrentCallsShareOneTokenFetch) {
  FakeMessenger fake(tls_fake_options());
  fake.set_auth_includes_apis(false);  // and one discovery
  MessengerClient client(io.get_executor(), settings_for(fake));
  int done = 0;
  for (int i = 0; i < 20; ++i)
    net::asio::co_spawn(io, client.create_user("U", "u" + std::to_string(i) + "@example.com", kCtx),
                        [&](std::exception_ptr, Result<std::string> r) { done += r.ok(); });
  io.run();
  EXPECT_EQ(done, 20);
  EXPECT_EQ(fake.count("auth"), 1u);
  EXPECT_EQ(fake.count("apis"), 1u);
  EXPECT_EQ(fake.users().size(), 20u);
}

TEST_F(MessengerClientTest, ForbiddenStopsWithoutRetrying) {
  FakeMessenger fake(tls_fake_options());
  fake.set_forbidden(true);
  MessengerClient client(io.get_executor(), settings_for(fake));
  auto r = run(io, client.create_user("Jane", "jane@example.com", kCtx));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::Forbidden);
  EXPECT_EQ(r.error().status, 403);
  // The gateway's 403 may be an expired token: one new session, one retry,
  // then it is the credentials, and nothing more is sent.
  EXPECT_EQ(fake.count("find_user"), 2u);
  EXPECT_EQ(fake.count("auth"), 2u);
  EXPECT_EQ(fake.count("users"), 0u);
}

TEST_F(MessengerClientTest, WrongCredentialsAreForbiddenNotRetriedForever) {
  FakeMessenger fake(tls_fake_options());
  auto settings = settings_for(fake);
  settings.secret = "wrong";
  MessengerClient client(io.get_executor(), settings);
  auto r = run(io, client.create_user("Jane", "jane@example.com", kCtx));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::Forbidden);
  EXPECT_NE(r.error().message.find("invalid secret"), std::string::npos);
}

TEST_F(MessengerClientTest, PermanentErrorsCarryTheApiMessage) {
  FakeMessenger fake(tls_fake_options());
  MessengerClient client(io.get_executor(), settings_for(fake));
  auto r = run(io, client.create_ticket(NewTicket{"t", "<p>m</p>", "999", {}, {}, ""}, kCtx));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::Permanent);
  EXPECT_EQ(r.error().status, 400);
  EXPECT_EQ(r.error().message, "unknown creator 999");
  EXPECT_EQ(fake.count("tickets"), 1u);
  auto reply = run(io, client.add_reply("999999", NewReply{"<p>x</p>", "u", {}}, kCtx));
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().status, 404);
}

TEST_F(MessengerClientTest, TheFakeHoldsTheContract) {
  FakeMessenger fake(tls_fake_options());
  MessengerClient client(io.get_executor(), settings_for(fake));
  auto user = run(io, client.create_user("Jane", "jane@example.com", kCtx)).value();
  auto media = run(io, client.upload_media("a.png", "PNG", kCtx)).value();
  // att: not listed in attachments
  auto r = run(io, client.create_ticket(NewTicket{"t", "<img src=\"att:" + id_text(media) + "\"/>", user, {}, {}, ""}, kCtx));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("is not in attachments"), std::string::npos);
  // media older than an hour
  fake.advance_clock(std::chrono::seconds(3601));
  r = run(io, client.create_ticket(NewTicket{"t", "<p>m</p>", user, {media}, {}, ""}, kCtx));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("expired"), std::string::npos);
  EXPECT_TRUE(fake.tickets().empty());
}

TEST_F(MessengerClientTest, SevenMegabytesUploadEightAreRefusedLocally) {
  FakeMessenger fake(tls_fake_options());
  MessengerClient client(io.get_executor(), settings_for(fake));
  const std::string seven = bytes_of(7 * 1024 * 1024, 7);
  auto ok = run(io, client.upload_media("seven.bin", seven, kCtx));
  ASSERT_TRUE(ok) << ok.error().message;
  ASSERT_EQ(fake.media().size(), 1u);
  EXPECT_EQ(fake.media()[0].content, seven);
  auto refused = run(io, client.upload_media("eight.bin", bytes_of(8 * 1024 * 1024, 8), kCtx));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, ErrorKind::Permanent);
  EXPECT_EQ(fake.count("media"), 1u);  // the 8 MB request was never sent
  // 7 MB is the documented ceiling per file, though 7.5 MB would fit in 10 MB.
  auto above = run(io, client.upload_media("seven-and-a-half.bin", bytes_of(7'500'000, 9), kCtx));
  ASSERT_FALSE(above);
  EXPECT_EQ(above.error().kind, ErrorKind::Permanent);
  EXPECT_NE(above.error().message.find("7 MB"), std::string::npos) << above.error().message;
  EXPECT_EQ(fake.count("media"), 1u);
  EXPECT_EQ(MessengerClient::max_media_bytes("a.pdf"), kMaxFileBytes);
}

TEST_F(MessengerClientTest, TheFakeAnswers413AboveTenMegabytes) {
  FakeMessenger fake(tls_fake_options());
  net::HttpClient http(io.get_executor(), net::TlsSettings{pki().ca, false}, net::HttpLimits{}, false);
  net::HttpRequest req;
  req.method = net::http::verb::post;
  req.url = "https://localhost:" + std::to_string(fake.port()) + "/prod/ticketing/v1/media";
  req.body = std::string(10'000'001, 'A');
  auto resp = run(io, http.send(req));
  EXPECT_EQ(resp.status, 413);
}

TEST_F(MessengerClientTest, AWrongHostNameFailsVerificationBeforeAnyRequest) {
  FakeMessengerOptions o;
  o.cert_file = pki().wrong_host_cert;
  o.key_file = pki().wrong_host_key;
  FakeMessenger fake(o);
  auto settings = settings_for(fake);
  settings.retry_for = milliseconds(300);
  MessengerClient client(io.get_executor(), settings);
  auto r = run(io, client.create_user("Jane", "jane@example.com", kCtx));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::Temporary);
  EXPECT_NE(r.error().message.find("TLS handshake"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("hostname mismatch"), std::string::npos) << r.error().message;
  for (const auto& req : fake.requests()) EXPECT_EQ(req.call, "tls-handshake-failed");
  EXPECT_EQ(fake.count("auth"), 0u);
}

TEST_F(MessengerClientTest, AnUntrustedCaFailsVerificationBeforeAnyRequest) {
  FakeMessenger fake(tls_fake_options());
  auto settings = settings_for(fake);
  settings.tls.ca_file = pki().other_ca;  // plus the system store, which does not know our CA
  settings.retry_for = milliseconds(300);
  MessengerClient client(io.get_executor(), settings);
  auto r = run(io, client.create_user("Jane", "jane@example.com", kCtx));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("certificate"), std::string::npos) << r.error().message;
  for (const auto& req : fake.requests()) EXPECT_EQ(req.call, "tls-handshake-failed");
}

TEST_F(MessengerClientTest, PlainHttpOnlyWhenExplicitlyAllowed) {
  FakeMessenger fake;  // no certificate: plain http
  auto settings = settings_for(fake);
  MessengerClient refusing(io.get_executor(), settings);
  auto r = run(io, refusing.create_user("Jane", "jane@example.com", kCtx));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::Forbidden);
  EXPECT_TRUE(fake.requests().empty());
  settings.allow_plain_http = true;
  MessengerClient allowing(io.get_executor(), settings);
  EXPECT_TRUE(run(io, allowing.create_user("Jane", "jane@example.com", kCtx)));
}

TEST_F(MessengerClientTest, TheLogNamesCallsAndSpoolIdsButNoSecrets) {
  FakeMessenger fake(tls_fake_options());
  MessengerClient client(io.get_executor(), settings_for(fake));
  ::testing::internal::CaptureStderr();
  auto user = run(io, client.create_user("Jane", "jane@example.com", kCtx));
  fake.revoke_all_tokens();
  run(io, client.upload_media("secret-document.pdf", "TOP SECRET BODY", kCtx));
  std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(user);
  EXPECT_NE(log.find("call=create_user spool_id=test-spool-id"), std::string::npos) << log;
  EXPECT_NE(log.find("call=upload_media"), std::string::npos) << log;
  EXPECT_EQ(log.find("test-secret"), std::string::npos);
  EXPECT_EQ(log.find("Bearer"), std::string::npos);
  EXPECT_EQ(log.find("TOP SECRET BODY"), std::string::npos);
}

// The storm: 20 % of requests fail in every way, tokens live two
// seconds, and 200 tickets with attachments must each arrive exactly once.
TEST_F(MessengerClientTest, StormOfFaultsEveryTicketExactlyOnce) {
  FakeMessengerOptions o = tls_fake_options();
  o.token_lifetime = std::chrono::seconds(2);
  FakeMessenger fake(o);
  fake.set_retry_after("1");  // with 2 s tokens, the storm outlives several of them
  fake.set_slow_delay(milliseconds(300));
  fake.set_fault_rate(0.2,
                      {Fault::Status500, Fault::Status503, Fault::Status429, Fault::DropBeforeResponse,
                       Fault::DropAfterResponse, Fault::Slow},
                      2026);
  auto settings = settings_for(fake);
  settings.retry_for = milliseconds(60'000);
  MessengerClient client(io.get_executor(), settings);

  constexpr int kTickets = 200;
  int succeeded = 0;
  std::vector<std::string> failures;
  auto flow = [&](int i) -> net::asio::awaitable<void> {
    // Named locals only: no temporaries inside co_await (see messenger_client.cpp).
    CallContext ctx{"storm-" + std::to_string(i)};
    std::string name = "User " + std::to_string(i % 20), address = "user" + std::to_string(i % 20) + "@example.com";
    auto user = co_await client.create_user(std::move(name), std::move(address), ctx);
    if (!user) { failures.push_back(user.error().message); co_return; }
    std::string file = "file-" + std::to_string(i) + ".bin", content = bytes_of(2000 + i, i);
    auto media = co_await client.upload_media(std::move(file), content, ctx);
    if (!media) { failures.push_back(media.error().message); co_return; }
    NewTicket t{"ticket " + std::to_string(i), "<p><img src=\"att:" + id_text(media.value()) + "\"/></p>", user.value(),
                {media.value()}, {}, ""};
    auto ticket = co_await client.create_ticket(std::move(t), ctx);
    if (!ticket) { failures.push_back(ticket.error().message); co_return; }
    ++succeeded;
  };
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kTickets; ++i) net::asio::co_spawn(io, flow(i), net::asio::detached);
  io.run();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  for (const auto& f : failures) ADD_FAILURE() << f;
  EXPECT_EQ(succeeded, kTickets);
  std::map<std::string, int> per_title;
  auto media = fake.media();
  for (const auto& t : fake.tickets()) {
    ++per_title[t.title];
    int i = std::stoi(t.title.substr(7));
    ASSERT_EQ(t.attachments.size(), 1u);
    auto m = std::find_if(media.begin(), media.end(), [&](const auto& x) { return x.id == t.attachments[0]; });
    ASSERT_NE(m, media.end());
    EXPECT_EQ(m->content, bytes_of(2000 + i, i)) << t.title;
  }
  int duplicates = 0;
  for (const auto& [title, n] : per_title) duplicates += n - 1;
  EXPECT_EQ(per_title.size(), static_cast<std::size_t>(kTickets));
  EXPECT_EQ(duplicates, 0);
  std::size_t faults = 0;
  for (const auto& r : fake.requests()) faults += r.fault.has_value();
  std::cout << "storm: " << kTickets << " tickets, " << fake.requests().size() << " requests, " << faults
            << " faults injected, " << fake.count("auth") + fake.count("refresh") << " token fetches, " << duplicates
            << " duplicates, " << seconds << " s\n";
  EXPECT_GT(faults, 50u);
  EXPECT_GE(fake.count("auth") + fake.count("refresh"), 2u);  // tokens did expire under it
}

// ---- messenger-api.md as rewritten (issue 10) ----

// An expired token gets the gateway's 403, never a 401: one new session,
// and the call goes through.
TEST_F(MessengerClientTest, TheGatewaysForbiddenOnAnExpiredTokenStartsANewSession) {
  FakeMessenger fake(tls_fake_options());
  MessengerClient client(io.get_executor(), settings_for(fake));
  ASSERT_TRUE(run(io, client.create_user("Jane", "jane@example.com", kCtx)));
  fake.advance_clock(std::chrono::seconds(21 * 60));  // the fake's tokens expired; our clock did not move
  auto bob = run(io, client.create_user("Bob", "bob@example.com", kCtx));
  ASSERT_TRUE(bob) << bob.error().message;
  EXPECT_EQ(fake.count("auth"), 2u);
  std::size_t forbidden = 0;
  for (const auto& r : fake.requests()) forbidden += r.status == 403;
  EXPECT_EQ(forbidden, 1u);
  for (const auto& r : fake.requests()) EXPECT_NE(r.status, 401) << r.target;
}

TEST_F(MessengerClientTest, AForbiddenWithAnApiErrorBodyIsPermanentForThatMessage) {
  FakeMessenger fake(tls_fake_options());
  MessengerClient client(io.get_executor(), settings_for(fake));
  auto user = run(io, client.create_user("Jane", "jane@example.com", kCtx));
  ASSERT_TRUE(user);
  fake.script_faults("tickets", {Fault::ApiForbidden});
  auto r = run(io, client.create_ticket(NewTicket{"t", "<p>m</p>", user.value(), {}, {}, ""}, kCtx));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::Permanent);
  EXPECT_EQ(r.error().message, "this key may not write to that queue");
  EXPECT_EQ(fake.count("auth"), 1u);  // no new session for an API refusal
}

TEST_F(MessengerClientTest, AnEndpointTurnedOffStopsPostingWithoutBlamingTheMessage) {
  FakeMessenger fake(tls_fake_options());
  MessengerClient client(io.get_executor(), settings_for(fake));
  auto user = run(io, client.create_user("Jane", "jane@example.com", kCtx));
  ASSERT_TRUE(user);
  fake.set_gone("tickets", true);
  auto r = run(io, client.create_ticket(NewTicket{"t", "<p>m</p>", user.value(), {}, {}, ""}, kCtx));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::Forbidden);  // keep queued, pause, log loudly
  EXPECT_EQ(r.error().status, 410);
  EXPECT_NE(r.error().message.find("turned off"), std::string::npos) << r.error().message;
  EXPECT_EQ(fake.count("tickets"), 1u);
  EXPECT_EQ(metrics::Registry::global().value("mailgate_api_paused", {}), 1.0);
  fake.set_gone("tickets", false);
  ASSERT_TRUE(run(io, client.create_ticket(NewTicket{"t", "<p>m</p>", user.value(), {}, {}, ""}, kCtx)));
  EXPECT_EQ(metrics::Registry::global().value("mailgate_api_paused", {}), 0.0);
}

// Over a simulated day of 20-minute tokens: one /auth (its answer names the
// ticketing URL), refreshes that keep the URL, no /apis at all; and when
// /auth does not name it, exactly one /apis.
TEST_F(MessengerClientTest, ADayOfTwentyMinuteTokensNeedsOneAuthAndAtMostOneDiscovery) {
  for (bool auth_names_apis : {true, false}) {
    FakeMessenger fake(tls_fake_options());
    fake.set_auth_includes_apis(auth_names_apis);
    auto settings = settings_for(fake);
    auto offset = std::make_shared<std::chrono::seconds>(0);
    settings.session_clock = [offset] { return std::chrono::steady_clock::now() + *offset; };
    MessengerClient client(io.get_executor(), settings);
    const auto step = std::chrono::minutes(5);
    for (int i = 0; i < 24 * 12; ++i) {
      ASSERT_TRUE(run(io, client.create_user("U", "u@example.com", kCtx))) << "step " << i;
      *offset += step;
      fake.advance_clock(step);
    }
    EXPECT_EQ(fake.count("auth"), 1u);
    EXPECT_EQ(fake.count("apis"), auth_names_apis ? 0u : 1u);
    // Refreshed every 15 minutes (5 before expiry): 96 a day, give or take one.
    EXPECT_GE(fake.count("refresh"), 95u);
    EXPECT_LE(fake.count("refresh"), 97u);
    std::size_t forbidden = 0;
    for (const auto& r : fake.requests()) forbidden += r.status == 403;
    EXPECT_EQ(forbidden, 0u);  // never a call on an expired token
  }
}

TEST_F(MessengerClientTest, A429WaitsForTheThrottleReset) {
  FakeMessenger fake(tls_fake_options());
  fake.set_fault_reset("2");  // no Retry-After: the API documents none
  MessengerClient client(io.get_executor(), settings_for(fake));
  EXPECT_GE(seconds_before_the_retry_of_a_429(fake, client, io), 1.95) << "x-throttle-reset said 2 s";
}

// An hourly quota spent: the wait is the quota's reset, most of an hour —
// not the 60 s backoff cap — handed to the caller. The usage figures said
// so before any 429, so none is provoked.
TEST_F(MessengerClientTest, ASpentHourlyQuotaAsksToWaitForItsResetNotTheBackoffCap) {
  FakeMessenger fake(tls_fake_options());
  fake.set_rate_limits(1'000'000, 2);
  auto settings = settings_for(fake);
  settings.backoff.cap = milliseconds(60'000);
  MessengerClient client(io.get_executor(), settings);
  ASSERT_TRUE(run(io, client.create_user("Jane", "jane@example.com", kCtx)));  // lookup + create: 2 requests
  auto r = run(io, client.create_user("Bob", "bob@example.com", kCtx));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::Temporary);
  ASSERT_TRUE(r.error().retry_after);
  EXPECT_GT(r.error().retry_after->count(), 3000) << r.error().retry_after->count();
  std::size_t limited = 0;
  for (const auto& q : fake.requests()) limited += q.status == 429;
  EXPECT_EQ(limited, 0u);
  EXPECT_NEAR(*metrics::Registry::global().value("mailgate_api_rate_limit_usage_ratio", {{"kind", "quota"}}), 1.0, 1e-9);
}

// Above 90 % of the per-minute throttle the client spreads its calls until
// the reset, so that no 429 comes at all.
TEST_F(MessengerClientTest, NearTheThrottleLimitCallsSlowDownBeforeThe429) {
  FakeMessenger fake(tls_fake_options());
  fake.set_throttle_window(std::chrono::seconds(2));
  fake.set_rate_limits(10, 1'000'000);
  MessengerClient client(io.get_executor(), settings_for(fake));
  ::testing::internal::CaptureStderr();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 25; ++i) ASSERT_TRUE(run(io, client.create_user("U", "u@example.com", kCtx))) << i;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string log = ::testing::internal::GetCapturedStderr();
  std::size_t limited = 0;
  for (const auto& q : fake.requests()) limited += q.status == 429;
  EXPECT_EQ(limited, 0u);
  EXPECT_NE(log.find("api.slow_down"), std::string::npos);
  EXPECT_GE(seconds, 3.0);  // 25 lookups at 10 per 2 s
  auto usage = metrics::Registry::global().value("mailgate_api_rate_limit_usage_ratio", {{"kind", "throttle"}});
  ASSERT_TRUE(usage);
  EXPECT_GT(*usage, 0.0);
  EXPECT_LE(*usage, 1.0);
}

// A lost answer to POST /tickets: the ticket is looked up (IQL on creator
// and title) and adopted, not posted twice; but another message's ticket
// with the same title and creator is never taken for ours.
TEST_F(MessengerClientTest, ALostTicketAnswerIsLookedUpAndAnotherMessagesTicketIsNotAdopted) {
  FakeMessenger fake(tls_fake_options());
  MessengerClient client(io.get_executor(), settings_for(fake));
  auto user = run(io, client.create_user("Jane", "jane@example.com", kCtx));
  ASSERT_TRUE(user);
  auto first = run(io, client.create_ticket(NewTicket{"Same \"subject\"", "<p>1</p>", user.value(), {}, {}, ""}, kCtx));
  ASSERT_TRUE(first);
  // The second mail, same sender and subject: its POST dies unprocessed.
  fake.script_faults("tickets", {Fault::DropBeforeResponse});
  auto taken = [&](const std::string& id) { return id == first.value().id; };
  auto second = run(io, client.create_ticket(NewTicket{"Same \"subject\"", "<p>2</p>", user.value(), {}, {}, ""}, kCtx, taken));
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_NE(second.value().id, first.value().id);
  EXPECT_EQ(fake.tickets().size(), 2u);
  EXPECT_EQ(fake.count("find_ticket"), 1u);
  bool iql_seen = false;
  for (const auto& r : fake.requests())
    if (r.call == "find_ticket") iql_seen = r.target.find("iql=creator%20IS%201%20AND%20title%20IS%20%22Same%20%5C%22subject%5C%22%22") != std::string::npos;
  EXPECT_TRUE(iql_seen);
  // The third: processed, answer lost; found and adopted.
  fake.script_faults("tickets", {Fault::DropAfterProcessing});
  auto third = run(io, client.create_ticket(NewTicket{"Other", "<p>3</p>", user.value(), {}, {}, ""}, kCtx, taken));
  ASSERT_TRUE(third) << third.error().message;
  EXPECT_EQ(fake.tickets().size(), 3u);
  EXPECT_EQ(third.value().id, fake.tickets().back().id);
  EXPECT_EQ(third.value().full_uuid, fake.tickets().back().full_uuid);
}

TEST_F(MessengerClientTest, TicketsAreFoundByExternalIdWhenTheDeploymentTakesOne) {
  FakeMessenger fake(tls_fake_options());
  MessengerClient client(io.get_executor(), settings_for(fake));
  auto user = run(io, client.create_user("Jane", "jane@example.com", kCtx));
  ASSERT_TRUE(user);
  fake.script_faults("tickets", {Fault::DropAfterProcessing});
  NewTicket t{"t", "<p>m</p>", user.value(), {}, {}, "spool-42"};
  auto r = run(io, client.create_ticket(t, kCtx));
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(fake.tickets().size(), 1u);
  EXPECT_EQ(fake.tickets()[0].external_id, "spool-42");
  bool by_external_id = false;
  for (const auto& q : fake.requests()) by_external_id |= q.target.find("?external_id=spool-42") != std::string::npos;
  EXPECT_TRUE(by_external_id);
  auto found = run(io, client.find_tickets(TicketLookup{"spool-42", "", ""}, kCtx));
  ASSERT_TRUE(found);
  ASSERT_EQ(found.value().size(), 1u);
  EXPECT_EQ(found.value()[0].ref.id, r.value().id);
}

TEST_F(MessengerClientTest, RequestsAreCountedAndTimedPerEndpoint) {
  FakeMessenger fake(tls_fake_options());
  MessengerClient client(io.get_executor(), settings_for(fake));
  auto& m = metrics::Registry::global();
  const double before = m.value("mailgate_api_requests_total", {{"endpoint", "find_user"}, {"status", "200"}}).value_or(0);
  const double timed = m.value("mailgate_api_request_duration_seconds", {{"endpoint", "find_user"}}).value_or(0);
  ASSERT_TRUE(run(io, client.create_user("Jane", "jane@example.com", kCtx)));
  EXPECT_EQ(m.value("mailgate_api_requests_total", {{"endpoint", "find_user"}, {"status", "200"}}).value_or(0), before + 1);
  EXPECT_EQ(m.value("mailgate_api_request_duration_seconds", {{"endpoint", "find_user"}}).value_or(0), timed + 1);
  EXPECT_NE(m.render().find("mailgate_api_request_duration_seconds_bucket{endpoint=\"create_user\",le=\"+Inf\"}"),
            std::string::npos);
}
