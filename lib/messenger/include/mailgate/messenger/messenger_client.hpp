// MessengerClient: the Inbenta Messenger API as mailgate uses it
// (messenger-api.md): auth and token refresh, base-URL discovery, users,
// media, tickets and replies, with the failure policy of retry_policy.hpp.
// Knows nothing about mail. Runs on one single-threaded executor.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
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

// The API's documented request limit: no request we send is larger.
inline constexpr std::size_t kMaxRequestBytes = 10'000'000;
// The documented ceiling per file (base64 grows it by about 40 %, in
// Inbenta's words): 7 MB, checked before anything is sent.
inline constexpr std::size_t kMaxFileBytes = 7 * 1024 * 1024;
// Above this share of a rate limit (x-throttle-usage, x-quota-usage), calls
// are spread out until the reset, so that the 429 does not come.
inline constexpr double kSlowDownAbovePercent = 90;

enum class ErrorKind {
  Temporary,  // retried until retry_for ran out: try again later, keep the mail queued
  Permanent,  // the API refused this request for good: failed/ with the message
  Forbidden,  // posting must stop, mail stays queued: a fresh token was refused too
              // (credentials), or the endpoint was turned off (410)
};
std::string_view to_string(ErrorKind kind);

struct ApiError {
  ApiError(ErrorKind k, int s = 0, std::string m = {}) : kind(k), status(s), message(std::move(m)) {}
  ErrorKind kind;
  int status = 0;       // HTTP status, 0 for transport errors and local refusals
  std::string message;  // for the operator: the API's text or what went wrong
  // A rate limit: no request is worth sending before this long has passed
  // (the x-*-reset or Retry-After of the last 429).
  std::optional<std::chrono::seconds> retry_after;
  // A non-idempotent request (a ticket, a reply) was sent and its answer
  // lost: the API may have acted on it. Never sent again blindly; look it up.
  bool maybe_processed = false;
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
  // Token expiry is judged by this clock (tests simulate a day with it);
  // empty: the steady clock.
  std::function<std::chrono::steady_clock::time_point()> session_clock;
};

// Ids as the API gave them. The API's user and ticket ids are integers, but
// answers may carry strings; mailgate keeps the JSON type an answer used, so
// an id is held (and stored in the spool) as its JSON text: 1234 or "a-b".
// Text that is not JSON (spools written before) is a string id.
std::string stored_id(const nlohmann::json& value);      // "" unless a number or a non-empty string
nlohmann::json id_json(std::string_view stored);        // what to send: 1234 or "a-b"
std::string id_text(std::string_view stored);           // for paths, att: and people: 1234 or a-b

// A created ticket: the integer id (for paths such as /tickets/{id}/replies)
// and full_uuid (the reference people see), both as the API gave them.
struct TicketRef {
  std::string id;         // stored form, see stored_id()
  std::string full_uuid;  // plain text, "" when the answer had none
};

// A ticket found by find_tickets.
struct FoundTicket {
  TicketRef ref;
  std::string title;
  std::string creator;  // stored form
  std::optional<std::int64_t> creation_date;  // UNIX seconds, when the answer says
  std::string status;   // "open", "closed", "solved", …: deployment-specific; "" when absent
};

// How to look for a ticket that a crash may have left unrecorded:
// by external_id when set, else by creator and title (IQL).
struct TicketLookup {
  std::string external_id;
  std::string creator;  // stored form
  std::string title;
};

// Seconds a ticket's creation_date may precede the start of our first POST
// and still be ours: the API's clock and ours differ a little.
inline constexpr std::int64_t kCreationClockSkew = 60;

// Which found ticket a POST of ours created, if any (messenger-api.md
// "Exactly once"): by external_id, any match; by IQL, one with the same
// creator and title, created since `since_unix` (less kCreationClockSkew;
// 0: unknown, no date filter), that `taken` (another message recorded it)
// does not exclude. The earliest created wins.
std::optional<TicketRef> choose_ticket(std::vector<FoundTicket> found, const TicketLookup& lookup,
                                       std::int64_t since_unix,
                                       const std::function<bool(const std::string& id)>& taken);

// The IQL query for creator and title: text operands double-quoted, `"` and
// `\` inside escaped with a backslash (messenger-api.md "Exactly once").
std::string iql_creator_and_title(std::string_view creator, std::string_view title);

// Who a call serves, for the log lines.
struct CallContext {
  std::string spool_id;
};

struct NewTicket {
  std::string title;
  std::string message;  // HTML, <img src="att:ID"/> for inline images (id_text of the media id)
  std::string creator;  // user id, stored form
  std::vector<std::string> attachments;  // media ids, stored form
  nlohmann::json extra = nlohmann::json::object();  // config tickets.defaults, JSON types kept
  std::string external_id;  // sent as external_id when not empty (messenger.external_id)
};

struct NewReply {
  std::string message;
  std::string creator;  // stored form
  std::vector<std::string> attachments;  // stored form
};

// A reply as GET /tickets/{id}/replies lists it.
struct FoundReply {
  std::string id;       // stored form
  std::string creator;  // stored form
  std::string message;  // HTML as the API keeps it
  std::string type;     // "reply" (customer → agent) or "answer" (agent → customer)
  std::optional<std::int64_t> creation_date;  // UNIX seconds, when the answer says
};

// Which found reply a POST of ours created, if any: type "reply", the same
// creator (12 and "12" are one id) and the same message (compared with runs
// of whitespace as one space and none at the ends: HTML shows them alike and
// an API may re-wrap what it keeps), created since `since_unix` (less
// kCreationClockSkew; 0, or a reply without a date: no date filter), not
// excluded by `taken` (another message recorded it). The earliest wins.
std::optional<std::string> choose_reply(const std::vector<FoundReply>& found, const NewReply& reply,
                                        std::int64_t since_unix,
                                        const std::function<bool(const std::string& id)>& taken);

class MessengerClient {
 public:
  MessengerClient(net::asio::any_io_executor executor, MessengerSettings settings);

  // The id (stored form) of the user with this address: looked up first
  // (GET /users?address=), created only when unknown; a refused create
  // (someone created it meanwhile) looks up again.
  net::asio::awaitable<Result<std::string>> create_user(std::string name, std::string address, CallContext ctx);
  // The id (stored form) of the uploaded media: the answer's uuid, else
  // full_uuid. Refused locally, without a request, above max_media_bytes.
  net::asio::awaitable<Result<std::string>> upload_media(std::string name, std::string_view bytes, CallContext ctx);
  // The new ticket. POST /tickets is not idempotent: when an answer is
  // lost the ticket is looked up (find_tickets, choose_ticket with `taken`)
  // and adopted if found, posted again only if not. If the lookup fails too,
  // the error says maybe_processed: the caller must look up before posting.
  net::asio::awaitable<Result<TicketRef>> create_ticket(NewTicket ticket, CallContext ctx,
                                                        std::function<bool(const std::string& id)> taken = {});
  // Tickets matching the lookup (GET /tickets?external_id= or ?iql=).
  net::asio::awaitable<Result<std::vector<FoundTicket>>> find_tickets(TicketLookup lookup, CallContext ctx);
  // The new reply's id (POST /tickets/{id}/replies). Not repeated blindly
  // when its answer is lost: looked up (find_replies, choose_reply with
  // `taken`) like create_ticket; maybe_processed when the lookup fails too.
  net::asio::awaitable<Result<std::string>> add_reply(std::string ticket_id, NewReply reply, CallContext ctx,
                                                      std::function<bool(const std::string& id)> taken = {});
  // GET /tickets/{id}/replies.
  net::asio::awaitable<Result<std::vector<FoundReply>>> find_replies(std::string ticket_id, CallContext ctx);
  // GET /tickets/{id}; nullopt inside the result when the API answers 404
  // (no such ticket: the caller opens a new one).
  net::asio::awaitable<Result<std::optional<FoundTicket>>> get_ticket(std::string ticket_id, CallContext ctx);
  // PUT /tickets/{id} {"status": status} (threading.closed: reopen).
  net::asio::awaitable<Result<bool>> set_ticket_status(std::string ticket_id, std::string status, CallContext ctx);

  // Largest file upload_media accepts (bytes before base64) for this name:
  // kMaxFileBytes, less when the name would push the request past kMaxRequestBytes.
  static std::size_t max_media_bytes(std::string_view name);

  const net::HttpClient& http() const { return http_; }
  // The last rate-limit figures the API reported, in percent (-1: none yet).
  double throttle_usage() const { return limits_.throttle.usage; }
  double quota_usage() const { return limits_.quota.usage; }

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
  // One of the API's two rate limits, as its headers last described it.
  struct Limit {
    double usage = -1;  // percent used
    std::optional<std::chrono::steady_clock::time_point> reset_at;
  };
  struct Limits {
    Limit throttle, quota;
  };

  net::asio::awaitable<Result<Session>> session(const CallContext& ctx);
  net::asio::awaitable<Result<Session>> authenticate(const CallContext& ctx);
  net::asio::awaitable<Result<Session>> refresh(const Session& current, const CallContext& ctx);
  // A new session from a token answer. `keep_base` (a refresh: its answer
  // has no apis) is the ticketing base to keep; else apis.ticketing of the
  // answer, else GET /apis.
  net::asio::awaitable<Result<Session>> finish_session(std::string_view token_body, std::string keep_base,
                                                       const CallContext& ctx);
  // The steps of finish_session (defined with it).
  net::asio::awaitable<Result<std::string>> ticketing_base(const nlohmann::json& token_answer, std::string keep_base,
                                                           const std::string& token);
  net::asio::awaitable<Result<std::string>> discover_ticketing_base(const std::string& token);
  // One API call under the failure policy. `repeatable`: the request may be
  // sent again after a lost answer (false for creating tickets and replies).
  net::asio::awaitable<Result<Answer>> call(std::string_view name, net::http::verb method, std::string path,
                                            std::string body, const CallContext& ctx, bool repeatable = true);
  // The steps of `call` (defined with it).
  struct CallSpec;
  struct Attempt;
  net::asio::awaitable<Attempt> attempt_call(const CallSpec& spec, int attempt);
  net::asio::awaitable<std::optional<ApiError>> pace(const CallSpec& spec);
  static Attempt unanswered(const CallSpec& spec, const net::HttpResponse& resp);
  Attempt judge_answer(const CallSpec& spec, std::uint64_t generation, net::HttpResponse resp, int attempt,
                       std::chrono::milliseconds took);
  ApiError refuse(const CallSpec& spec, Verdict verdict, int status, const std::string& message);
  // Rate-limit bookkeeping from an answer's headers; the wait a 429 asks for.
  void note_limits(const net::HttpResponse& resp);
  std::optional<std::chrono::milliseconds> limit_wait(const net::HttpResponse& resp) const;
  // How long to hold a call back because a limit is above kSlowDownAbovePercent.
  std::chrono::milliseconds pacing_delay() const;
  void set_paused(bool paused);
  // Every request, with its metrics (endpoint: auth, refresh, apis or the call's name).
  net::asio::awaitable<net::HttpResponse> send_bounded(net::HttpRequest request, std::string endpoint);
  net::asio::awaitable<Result<std::optional<std::string>>> find_user(std::string address, CallContext ctx);
  std::chrono::steady_clock::time_point session_clock() const;
  static constexpr std::chrono::milliseconds kMinLimitWait{100};
  static constexpr int kMaxLostAnswers = 3;  // lookups and re-posts within one create_ticket or add_reply
  net::asio::awaitable<void> sleep(std::chrono::milliseconds d);

  net::asio::any_io_executor executor_;
  MessengerSettings settings_;
  net::HttpClient http_;
  AsyncSemaphore in_flight_;
  AsyncSemaphore token_lock_{executor_, 1};
  std::optional<Session> session_;
  std::uint64_t generations_ = 0;
  Limits limits_;
  std::mt19937_64 rng_{std::random_device{}()};

 public:
  // SIGHUP: the key, secret and auth URL the next /auth uses. The current
  // token is dropped, so the next call authenticates with them (a call
  // under way keeps the token it holds). Call on the client's executor.
  void set_credentials(std::string api_key, std::string secret, std::string auth_url);
};

// The id in a response, in stored form: {"uuid"}, {"id"}, {"data": {…}} or
// {"data": [{…}]} (the first). nullopt when none is there.
std::optional<std::string> extract_id(std::string_view body);

// A rate-limit reset header (x-throttle-reset, x-quota-reset) as a wait from
// `now_unix`. [assumed] The documentation says "when it resets" without a
// unit: a value above 10^9 is read as UNIX seconds, else as seconds from now.
std::optional<std::chrono::seconds> parse_reset(std::string_view value, std::int64_t now_unix);

}  // namespace mailgate::messenger
