// MessengerClient: the Inbenta Messenger API as mailgate uses it
// (messenger-api.md): auth and token refresh, base-URL discovery, users,
// media, tickets and replies, with the failure policy of retry_policy.hpp.
// Knows nothing about mail. Runs on one single-threaded executor.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "mailgate/messenger/async_semaphore.hpp"
#include "mailgate/messenger/retry_policy.hpp"
#include "mailgate/net/http_client.hpp"

namespace mailgate::messenger {

// The API's documented request limit, and so the largest upload we send.
inline constexpr std::size_t kMaxRequestBytes = 10'000'000;

enum class ErrorKind {
  Temporary,  // retried until retry_for ran out: try again later, keep the mail queued
  Permanent,  // the API refused this request for good: failed/ with the message
  Forbidden,  // credentials wrong or lacking permission: stop posting, keep mail queued
};
std::string_view to_string(ErrorKind kind);

struct ApiError {
  ErrorKind kind;
  int status = 0;       // HTTP status, 0 for transport errors and local refusals
  std::string message;  // for the operator: the API's text or what went wrong
};

// A value or an ApiError; never thrown.
template <class T>
class Result {
 public:
  // Asio's co_spawn needs a default; an empty result is a temporary error.
  Result() : v_(ApiError{ErrorKind::Temporary, 0, "no result"}) {}
  Result(T value) : v_(std::move(value)) {}
  Result(ApiError error) : v_(std::move(error)) {}
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  const T& value() const { return std::get<0>(v_); }
  const ApiError& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, ApiError> v_;
};

struct MessengerSettings {
  std::string api_key;
  std::string secret;
  std::string auth_url = "https://api.inbenta.io/v1";
  net::TlsSettings tls;
  bool allow_plain_http = false;
  std::size_t max_in_flight = 8;
  std::chrono::milliseconds retry_for{10 * 60 * 1000};  // then a temporary error is returned
  BackoffSettings backoff;
  std::chrono::seconds default_token_lifetime{20 * 60};  // when the API states none
  std::chrono::seconds max_refresh_margin{5 * 60};       // refresh this long before expiry at most
  std::string reply_path = "/tickets/{id}/replies";      // assumed; see messenger-api.md
  net::HttpLimits http;
};

// Who a call serves, for the log lines.
struct CallContext {
  std::string spool_id;
};

struct NewTicket {
  std::string title;
  std::string message;  // HTML, <img src="att:UUID"/> for inline images
  std::string creator;  // user UUID
  std::vector<std::string> attachments;
  nlohmann::json extra = nlohmann::json::object();  // config tickets.defaults
};

struct NewReply {
  std::string message;
  std::string creator;
  std::vector<std::string> attachments;
};

class MessengerClient {
 public:
  MessengerClient(net::asio::any_io_executor executor, MessengerSettings settings);

  // The UUID of the user with this address, creating it if needed.
  net::asio::awaitable<Result<std::string>> create_user(std::string name, std::string address, CallContext ctx);
  // The UUID of the uploaded media. Refused locally, without a request,
  // when the request would exceed kMaxRequestBytes.
  net::asio::awaitable<Result<std::string>> upload_media(std::string name, std::string_view bytes, CallContext ctx);
  // The new ticket's id.
  net::asio::awaitable<Result<std::string>> create_ticket(NewTicket ticket, CallContext ctx);
  // The new reply's id.
  net::asio::awaitable<Result<std::string>> add_reply(std::string ticket_id, NewReply reply, CallContext ctx);

  // Largest file upload_media accepts (bytes before base64) for this name.
  static std::size_t max_media_bytes(std::string_view name);

  const net::HttpClient& http() const { return http_; }

 private:
  struct Session {
    std::string token;
    std::string ticketing_base;  // "<ticketing>/v1", discovered, never stored
    std::chrono::steady_clock::time_point expires;
    std::chrono::steady_clock::time_point refresh_at;
    std::uint64_t generation = 0;
  };
  struct Answer {
    int status;
    std::string body;
  };

  net::asio::awaitable<Result<Session>> session(const CallContext& ctx);
  net::asio::awaitable<Result<Session>> authenticate(const CallContext& ctx);
  net::asio::awaitable<Result<Session>> refresh(const Session& current, const CallContext& ctx);
  net::asio::awaitable<Result<Session>> finish_session(std::string_view token_body, const CallContext& ctx);
  // One API call under the failure policy. A status equal to `also_ok` is
  // returned as an answer rather than an error (409 for create_user).
  // (Not an initializer_list: g++ 12 miscompiles those in coroutine frames.)
  net::asio::awaitable<Result<Answer>> call(std::string_view name, net::http::verb method, std::string path,
                                            std::string body, const CallContext& ctx, int also_ok = 0);
  net::asio::awaitable<net::HttpResponse> send_bounded(net::HttpRequest request);
  net::asio::awaitable<void> sleep(std::chrono::milliseconds d);

  net::asio::any_io_executor executor_;
  MessengerSettings settings_;
  net::HttpClient http_;
  AsyncSemaphore in_flight_;
  AsyncSemaphore token_lock_{executor_, 1};
  std::optional<Session> session_;
  std::uint64_t generations_ = 0;
  std::mt19937_64 rng_{std::random_device{}()};
};

// The id in a response: {"id"}, {"uuid"} or {"data": {"id"|"uuid"}}; numbers
// become strings. nullopt when none is there.
std::optional<std::string> extract_id(std::string_view body);

}  // namespace mailgate::messenger
