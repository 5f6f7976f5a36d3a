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
  Status429,           // with Retry-After (set_retry_after)
  DropBeforeResponse,  // request read, connection closed, nothing processed
  DropAfterResponse,   // processed and answered, then the connection closed
  Slow,                // processed after set_slow_delay
};

// How POST /users answers for an address that already exists.
enum class ExistingUserStyle { ConflictWithId, ConflictWithoutId, OkWithId };

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
  std::string call;  // auth, refresh, apis, users, find_user, media, tickets, replies, other
  double at = 0;     // seconds since the fake started (steady clock)
  int status = 0;    // 0 when the connection was dropped without an answer
  std::optional<std::string> fault;
  nlohmann::json body;  // parsed JSON; media "content" replaced by its size
};

struct FakeUser {
  std::string id, name, address;
};
struct FakeMedia {
  std::string id, name, content;  // content decoded
  double created_at = 0;          // fake clock, seconds
};
struct FakeTicket {
  std::string id, title, message, creator;
  std::vector<std::string> attachments;
  nlohmann::json request;
};

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
  void set_token_lifetime(std::chrono::seconds lifetime);
  void revoke_all_tokens();
  void set_refresh_fails(bool fails);
  void set_forbidden(bool forbidden);  // every ticketing call answers 403
  void set_existing_user_style(ExistingUserStyle style);
  void advance_clock(std::chrono::seconds by);  // ages media
  void delete_all_users();                       // as an admin cleaning up would

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
