// A faithful fake of the Inbenta Messenger API (messenger-api.md), strict
// about the contract, able to inject faults, recording every request.
// Runs on its own thread; every public method is thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace mailgate::testing {

enum class Fault {
  Status500,
  Status503,
  Status429,           // x-throttle-usage 100, x-throttle-reset (set_fault_reset); Retry-After if set_retry_after
  DropBeforeResponse,  // request read, connection closed, nothing processed
  DropAfterResponse,   // processed and answered, then the connection closed
  Slow,                // processed after set_slow_delay
  Status502,           // the gateway's bad gateway
  Status504,           // the gateway's timeout
  Gateway403,          // the gateway's 403, as an expired token gets
  ApiForbidden,        // 403 with the API's error body: this request is refused
  DropAfterProcessing, // processed (a ticket is created), then closed without an answer
  Hang,                // held for set_slow_delay, then closed unprocessed (a POST that never arrived)
  SlowAnswer,          // processed at once (a ticket exists), answered after set_slow_delay
};

// How POST /users answers for an address that already exists: refused
// (messenger-api.md, the default), or, as other deployments might, 409 or
// 200 with the existing id.
enum class ExistingUserStyle { Refused, ConflictWithId, OkWithId };

struct FakeMessengerOptions {
  std::string api_key = "test-api-key";
  std::string secret = "test-secret";
  std::string cert_file;  // PEM; empty: plain http
  std::string key_file;
  std::string host = "localhost";  // the name clients use; in the /apis URL
  std::uint16_t port = 0;          // 0: any free port on 127.0.0.1
  std::chrono::seconds token_lifetime{20 * 60};
  int threads = 1;  // server threads; state is mutex-guarded, connections independent
};

struct RecordedRequest {
  std::string method;
  std::string target;
  // auth, refresh, apis, users, find_user, media, tickets, find_ticket,
  // get_ticket, update_ticket, replies (POST), find_replies (GET), other
  std::string call;
  double at = 0;     // seconds since the fake started (steady clock)
  int status = 0;    // 0 when the connection was dropped without an answer
  std::optional<std::string> fault;
  nlohmann::json body;  // parsed JSON; media "content" replaced by its size
};

struct FakeUser {
  std::string id, name, address;  // id: an integer as decimal text
};
struct FakeMedia {
  std::string id, name, content;  // content decoded
  double created_at = 0;          // fake clock, seconds
};
// A reply on a ticket: "reply" from the customer (POST /tickets/{id}/replies)
// or "answer" from an agent (add_agent_answer). Agents are numbered apart
// from users, as in Inbenta: agent 1 and user 1 are different people.
struct FakeReply {
  std::string id, type, creator, message;  // id and creator: integers as decimal text
  std::vector<std::string> attachments;
  long long creation_date = 0;  // UNIX seconds (fake clock)
};
struct FakeTicket {
  std::string id, title, message, creator;  // id and creator: integers as decimal text
  std::vector<std::string> attachments;
  nlohmann::json request;
  std::string full_uuid, external_id;
  long long creation_date = 0;  // UNIX seconds (fake clock)
  std::string status = "open";  // set by PUT /tickets/{id} or set_ticket_status
  std::vector<FakeReply> replies;  // oldest first
};

// The agent add_agent_answer writes as.
inline constexpr long kFakeAgentId = 1;

class FakeMessenger {
 public:
  explicit FakeMessenger(FakeMessengerOptions options = {});
  ~FakeMessenger();
  FakeMessenger(const FakeMessenger&) = delete;
  FakeMessenger& operator=(const FakeMessenger&) = delete;

  std::uint16_t port() const { return port_; }
  std::string auth_url() const;  // what messenger.auth_url must be

  // ---- faults ----
  // Each ticketing or auth request fails with probability `rate`, with a
  // kind drawn from `kinds`.
  void set_fault_rate(double rate, std::vector<Fault> kinds, std::uint64_t seed = 1);
  // The next requests to `call` ("any" for any) fail in this order.
  void script_faults(const std::string& call, std::vector<Fault> faults);
  void set_retry_after(std::string value);
  void set_slow_delay(std::chrono::milliseconds delay);
  void set_token_lifetime(std::chrono::seconds lifetime);  // tokens expire by the fake clock (advance_clock)
  void revoke_all_tokens();
  void set_refresh_fails(bool fails);
  void set_forbidden(bool forbidden);  // every ticketing call answers 403
  void set_existing_user_style(ExistingUserStyle style);
  void advance_clock(std::chrono::seconds by);  // ages media and tokens
  void delete_all_users();                       // as an admin cleaning up would
  void set_auth_includes_apis(bool includes);    // /auth names apis.ticketing (default) or not
  void set_lookup_misses(int n);                 // the next n GET /users find nothing
  void set_gone(const std::string& call, bool gone);  // that call answers 410
  void set_rate_limits(long per_minute, long per_hour);  // ticketing requests; then 429
  void set_fault_reset(std::string seconds);     // x-throttle-reset of an injected 429
  void set_throttle_window(std::chrono::seconds length);  // 60 s unless a test needs it short
  void forget_ticket(const std::string& id);     // as if that POST had never arrived
  // As an agent in the Messenger back office would: false (nothing done)
  // for an unknown ticket.
  bool set_ticket_status(const std::string& ticket_id, const std::string& status);
  // An agent's answer (type "answer", creator kFakeAgentId); its id, "" for an unknown ticket.
  std::string add_agent_answer(const std::string& ticket_id, const std::string& message);

  // ---- inspection ----
  std::vector<RecordedRequest> requests() const;
  std::size_t count(const std::string& call) const;  // answered requests of that call
  std::vector<FakeUser> users() const;
  std::vector<FakeMedia> media() const;
  std::vector<FakeTicket> tickets() const;
  nlohmann::json state_json() const;  // for the control endpoint and logs

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  std::uint16_t port_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace mailgate::testing
