// MessengerClient: sessions (token + discovered base URL) shared by all
// callers, every call under one failure policy, nothing secret in the log.
#include "mailgate/messenger/messenger_client.hpp"

#include <algorithm>
#include <cmath>
#include <cctype>
#include <ctime>
#include <strings.h>

#include "mailgate/log/log.hpp"
#include "mailgate/metrics/metrics.hpp"
#include "mailgate/text/ascii.hpp"
#include "mailgate/text/encoding.hpp"

namespace mailgate::messenger {

using net::asio::awaitable;
using net::asio::use_awaitable;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {


std::string url_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '@') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

std::string ms_string(milliseconds d) { return std::to_string(d.count()); }

// Request bodies are built outside the coroutines. House rule for every
// coroutine in mailgate: no non-trivial temporaries inside a co_await
// expression (braced lists, std::string from literals, ...). g++ 12 rejects
// some and, with optimisation, destroys others twice. Use named locals.
std::string secret_body(const std::string& secret) { return dump({{"secret", secret}}); }
std::string user_body(const std::string& name, const std::string& address) {
  return dump({{"name", name}, {"address", address}});
}
nlohmann::json id_list(const std::vector<std::string>& ids) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& id : ids) a.push_back(id_json(id));
  return a;
}
std::string ticket_body(const NewTicket& t) {
  nlohmann::json j = t.extra.is_object() ? t.extra : nlohmann::json::object();
  j["title"] = t.title;
  j["message"] = t.message;
  j["creator"] = id_json(t.creator);  // a JSON number for the API's integer ids
  j["attachments"] = id_list(t.attachments);
  if (!t.external_id.empty()) j["external_id"] = t.external_id;
  return dump(j);
}
std::string reply_body(const NewReply& r) {
  return dump({{"message", r.message}, {"creator", id_json(r.creator)}, {"attachments", id_list(r.attachments)}});
}
// reply_path ("/tickets/{id}/replies") for this ticket: POST adds a reply, GET lists them.
std::string replies_path(std::string path, const std::string& ticket_id) {
  if (auto pos = path.find("{id}"); pos != std::string::npos) path.replace(pos, 4, url_encode(id_text(ticket_id)));
  return path;
}
std::string status_body(const std::string& status) { return dump({{"status", status}}); }
std::vector<std::pair<std::string, std::string>> auth_headers(const std::string& key, const std::string& token) {
  std::vector<std::pair<std::string, std::string>> h;
  h.emplace_back("x-inbenta-key", key);
  if (!token.empty()) h.emplace_back("Authorization", "Bearer " + token);
  return h;
}

// The id an object carries, in stored form. The one place for the order
// in which answers are read (messenger-api.md "Identifiers"): uuid, then id,
// then (media) full_uuid.
std::optional<std::string> id_of(const nlohmann::json& j) {
  if (!j.is_object()) return std::nullopt;
  for (const char* key : {"uuid", "id", "full_uuid"}) {
    if (!j.contains(key)) continue;
    if (auto id = stored_id(j[key]); !id.empty()) return id;
  }
  return std::nullopt;
}

std::string text_of(const nlohmann::json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return {};
  if (j[key].is_string()) return j[key].get<std::string>();
  if (j[key].is_number_integer()) return std::to_string(j[key].get<long long>());
  return {};
}

// The objects of an answer: {"data": [...]}, {"data": {...}}, [...] or {...}.
std::vector<nlohmann::json> items_of(const nlohmann::json& j) {
  const nlohmann::json* list = &j;
  if (j.is_object() && j.contains("data")) list = &j["data"];
  if (list->is_array()) return std::vector<nlohmann::json>(list->begin(), list->end());
  if (list->is_object() && list != &j) return {*list};
  return {};
}

std::string header(const net::HttpResponse& r, const char* name) {
  auto it = r.headers.find(name);
  return it == r.headers.end() ? std::string() : it->second;
}

std::optional<double> percent(std::string_view v) {
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  if (v.empty()) return std::nullopt;
  try {
    std::size_t used = 0;
    double d = std::stod(std::string(v), &used);
    return d;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

constexpr std::uint64_t kLatestUnixSeconds = 1ULL << 40;  // year ~36800

// A reply's text as the exactly-once lookup compares it: whitespace folded
// (HTML collapses runs of it, and an API may re-wrap or trim what it keeps;
// a message is recognised in the form the API lists it, and two messages
// that differ in anything visible stay apart),
// and each inline image's media id ("att:ID") blanked — media older than
// the API's hour is uploaded again before a retry, so the same reply then
// names new ids (its attachments differ the same way and are not compared).
std::string comparable_reply_text(std::string_view text) {
  std::string out = text::fold_whitespace(text);
  constexpr std::string_view kAtt = "\"att:";
  for (std::size_t p = out.find(kAtt); p != std::string::npos; p = out.find(kAtt, p + kAtt.size())) {
    const std::size_t id_begin = p + kAtt.size();
    const std::size_t end = out.find('"', id_begin);
    if (end == std::string::npos) break;
    out.erase(id_begin, end - id_begin);
  }
  return out;
}

// A date in UNIX seconds; nullopt when absent, not a number, or beyond any
// real date (a double out of range must not reach an integer cast).
std::optional<std::int64_t> unix_seconds_of(const nlohmann::json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return std::nullopt;
  const auto& v = j[key];
  if (v.is_number_integer() && !v.is_number_unsigned()) return v.get<std::int64_t>();
  if (v.is_number_unsigned() && v.get<std::uint64_t>() <= kLatestUnixSeconds) return v.get<std::int64_t>();
  if (v.is_number_float() && std::isfinite(v.get<double>()) && std::fabs(v.get<double>()) <= kLatestUnixSeconds)
    return static_cast<std::int64_t>(v.get<double>());
  return std::nullopt;
}

FoundTicket found_ticket_of(const nlohmann::json& item) {
  FoundTicket t;
  if (auto id = id_of(item)) t.ref.id = *id;
  t.ref.full_uuid = text_of(item, "full_uuid");
  t.title = text_of(item, "title");
  if (item.contains("creator")) t.creator = stored_id(item["creator"]);
  t.creation_date = unix_seconds_of(item, "creation_date");
  if (item.contains("status") && item["status"].is_string()) t.status = item["status"].get<std::string>();
  return t;
}

FoundReply found_reply_of(const nlohmann::json& item) {
  FoundReply r;
  if (auto id = id_of(item)) r.id = *id;
  if (item.contains("creator")) r.creator = stored_id(item["creator"]);
  if (item.contains("message") && item["message"].is_string()) r.message = item["message"].get<std::string>();
  if (item.contains("type") && item["type"].is_string()) r.type = item["type"].get<std::string>();
  r.creation_date = unix_seconds_of(item, "creation_date");
  return r;
}

// A token answer's lifetime in seconds, at least one: expires_in (seconds)
// or expiration (UNIX seconds); else `fallback`.
long long token_lifetime_s(const nlohmann::json& token_answer, std::chrono::seconds fallback) {
  long long lifetime = fallback.count();
  if (token_answer.contains("expires_in") && token_answer["expires_in"].is_number()) {
    lifetime = token_answer["expires_in"].get<long long>();
  } else if (token_answer.contains("expiration") && token_answer["expiration"].is_number()) {
    lifetime = token_answer["expiration"].get<long long>() - static_cast<long long>(std::time(nullptr));
  }
  return std::max(lifetime, 1LL);
}

// How long before expiry a token is refreshed: a quarter of its life, at most `max`.
milliseconds refresh_margin(long long lifetime_s, milliseconds max) {
  return std::min<milliseconds>(milliseconds(lifetime_s * 1000 / 4), max);
}

// apis.ticketing of an /auth or /apis answer, as it is written there.
std::optional<std::string> ticketing_of(const nlohmann::json& answer) {
  if (!answer.is_object() || !answer.contains("apis")) return std::nullopt;
  const auto& apis = answer["apis"];
  if (!apis.is_object() || !apis.contains("ticketing") || !apis["ticketing"].is_string()) return std::nullopt;
  return apis["ticketing"].get<std::string>();
}

// The ticketing API's URL with the version the client speaks.
std::string versioned(std::string ticketing) {
  while (!ticketing.empty() && ticketing.back() == '/') ticketing.pop_back();
  return ticketing + "/v1";
}

metrics::Registry& registry() { return metrics::Registry::global(); }
constexpr const char* kRequestsHelp = "Messenger API requests by endpoint and HTTP status (\"error\": no answer).";
constexpr const char* kDurationHelp = "Messenger API request latency in seconds, by endpoint.";
constexpr const char* kUsageHelp = "The API's last reported rate-limit usage (0..1), by kind.";
constexpr const char* kPausedHelp = "1 while posting is paused (credentials refused, or endpoint turned off).";

}  // namespace

std::string_view to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Temporary: return "temporary";
    case ErrorKind::Permanent: return "permanent";
    case ErrorKind::Forbidden: return "forbidden";
  }
  return "unknown";
}

std::string stored_id(const nlohmann::json& v) {
  if (v.is_number_integer()) return v.dump();
  if (v.is_string() && !v.get<std::string>().empty()) return v.dump();
  return {};
}

nlohmann::json id_json(std::string_view stored) {
  auto j = nlohmann::json::parse(stored, nullptr, false);
  if (!j.is_discarded() && (j.is_number_integer() || j.is_string())) return j;
  return std::string(stored);  // not JSON: a string id from an older spool
}

std::string id_text(std::string_view stored) {
  auto j = id_json(stored);
  return j.is_string() ? j.get<std::string>() : j.dump();
}

std::string iql_creator_and_title(std::string_view creator, std::string_view title) {
  auto quoted = [](std::string_view text) {
    std::string q = "\"";
    for (char c : text) {
      if (c == '"' || c == '\\') q.push_back('\\');
      q.push_back(c);
    }
    return q + "\"";
  };
  auto c = id_json(creator);
  std::string operand = c.is_string() ? quoted(c.get<std::string>()) : c.dump();
  return "creator IS " + operand + " AND title IS " + quoted(title);
}

std::optional<std::string> extract_id(std::string_view body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  if (auto id = id_of(j)) return id;
  for (const auto& item : items_of(j))
    if (auto id = id_of(item)) return id;
  return std::nullopt;
}

std::optional<std::chrono::seconds> parse_reset(std::string_view value, std::int64_t now_unix) {
  auto v = percent(value);  // a plain number
  if (!v || *v < 0) return std::nullopt;
  double seconds = *v > 1e9 ? *v - static_cast<double>(now_unix) : *v;
  if (seconds < 0) seconds = 0;
  return std::chrono::seconds(static_cast<long long>(std::ceil(seconds)));
}

MessengerClient::MessengerClient(net::asio::any_io_executor executor, MessengerSettings settings)
    : executor_(executor),
      settings_(std::move(settings)),
      http_(executor, settings_.tls, settings_.http, settings_.allow_plain_http),
      in_flight_(executor, settings_.max_in_flight) {
  if (settings_.allow_plain_http)
    log::warn("messenger.plain_http_allowed", {{"note", "allow_plain_http is on: for loopback tests only"}});
}

std::size_t MessengerClient::max_media_bytes(std::string_view name) {
  // {"name":"…","content":"…"} around the base64; names are JSON-escaped,
  // so count them at worst case (\u00XX for every byte).
  std::size_t overhead = 32 + 6 * name.size();
  if (overhead >= kMaxRequestBytes) return 0;
  return std::min(kMaxFileBytes, (kMaxRequestBytes - overhead) / 4 * 3);
}

// Every request, auth included, counts against max_in_flight.
awaitable<net::HttpResponse> MessengerClient::send_bounded(net::HttpRequest request, std::string endpoint) {
  co_await in_flight_.acquire();
  SemaphoreGuard slot(in_flight_);
  const auto sent = steady_clock::now();
  net::HttpResponse resp = co_await http_.send(std::move(request));
  const double seconds = std::chrono::duration<double>(steady_clock::now() - sent).count();
  const std::string status = resp.error == net::TransportError::None ? std::to_string(resp.status) : "error";
  registry().add("mailgate_api_requests_total", kRequestsHelp, {{"endpoint", endpoint}, {"status", status}});
  registry().observe("mailgate_api_request_duration_seconds", kDurationHelp, {{"endpoint", endpoint}}, seconds);
  co_return resp;
}

awaitable<void> MessengerClient::sleep(milliseconds d) {
  net::asio::steady_timer timer(executor_, d);
  boost::system::error_code ec;
  co_await timer.async_wait(net::asio::redirect_error(use_awaitable, ec));
}

// ---- sessions ----------------------------------------------------------------

steady_clock::time_point MessengerClient::session_clock() const {
  return settings_.session_clock ? settings_.session_clock() : steady_clock::now();
}

awaitable<Result<MessengerClient::Session>> MessengerClient::session(const CallContext& ctx) {
  if (session_ && session_clock() < session_->refresh_at) co_return *session_;
  // One fetch at a time: callers that queued here find the fresh session.
  co_await token_lock_.acquire();
  SemaphoreGuard guard(token_lock_);
  auto now = session_clock();
  if (session_ && now < session_->refresh_at) co_return *session_;
  if (session_ && now < session_->expires) {
    auto refreshed = co_await refresh(*session_, ctx);
    if (refreshed) co_return refreshed;
    log::warn("api.refresh_failed", {{"spool_id", ctx.spool_id}, {"reason", refreshed.error().message},
                                     {"next", "authenticating with the secret"}});
  }
  co_return co_await authenticate(ctx);
}

awaitable<Result<MessengerClient::Session>> MessengerClient::authenticate(const CallContext& ctx) {
  net::HttpRequest req;
  req.method = net::http::verb::post;
  req.url = settings_.auth_url + "/auth";
  req.headers = auth_headers(settings_.api_key, "");
  req.body = secret_body(settings_.secret);
  net::HttpResponse resp = co_await send_bounded(std::move(req), "auth");
  if (resp.error == net::TransportError::PlainHttpRefused || resp.error == net::TransportError::BadUrl)
    co_return ApiError{ErrorKind::Forbidden, 0, "messenger.auth_url: " + resp.error_text};  // configuration
  if (resp.error != net::TransportError::None)
    co_return ApiError{ErrorKind::Temporary, 0, "auth: " + resp.error_text};
  Verdict v = classify_status(resp.status);
  if (v == Verdict::RetryLater)
    co_return ApiError{ErrorKind::Temporary, resp.status, "auth: HTTP " + std::to_string(resp.status) + ": " +
                                                              api_error_message(resp.body)};
  if (v != Verdict::Success) {
    // A wrong key (the gateway's 403) or secret (the API's 400): no new
    // token will help; the gateway may keep answering so for 5 minutes.
    log::error("api.auth_rejected", {{"spool_id", ctx.spool_id}, {"status", std::to_string(resp.status)},
                                     {"message", api_error_message(resp.body)}});
    set_paused(true);
    co_return ApiError{ErrorKind::Forbidden, resp.status,
                       "authentication rejected (check api_key and secret): " + api_error_message(resp.body)};
  }
  log::info("api.authenticated", {{"spool_id", ctx.spool_id}});
  co_return co_await finish_session(resp.body, std::string(), ctx);
}

awaitable<Result<MessengerClient::Session>> MessengerClient::refresh(const Session& current, const CallContext& ctx) {
  net::HttpRequest req;
  req.method = net::http::verb::post;
  req.url = settings_.auth_url + "/refreshToken";
  req.headers = auth_headers(settings_.api_key, current.token);
  const std::string keep_base = current.ticketing_base;
  net::HttpResponse resp = co_await send_bounded(std::move(req), "refresh");
  if (resp.error != net::TransportError::None) co_return ApiError{ErrorKind::Temporary, 0, resp.error_text};
  if (classify_status(resp.status) != Verdict::Success)
    co_return ApiError{ErrorKind::Temporary, resp.status, "HTTP " + std::to_string(resp.status)};
  log::info("api.token_refreshed", {{"spool_id", ctx.spool_id}});
  co_return co_await finish_session(resp.body, keep_base, ctx);
}

awaitable<Result<MessengerClient::Session>> MessengerClient::finish_session(std::string_view token_body,
                                                                            std::string keep_base,
                                                                            const CallContext& ctx) {
  auto j = nlohmann::json::parse(token_body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("accessToken") || !j["accessToken"].is_string())
    co_return ApiError{ErrorKind::Temporary, 0, "auth: response carries no accessToken"};
  Session s;
  s.token = j["accessToken"].get<std::string>();
  const long long lifetime = token_lifetime_s(j, settings_.default_token_lifetime);
  s.expires = session_clock() + std::chrono::seconds(lifetime);
  s.refresh_at = s.expires - refresh_margin(lifetime, settings_.max_refresh_margin);
  auto base = co_await ticketing_base(j, std::move(keep_base), s.token);
  if (!base) co_return base.error();
  auto url = net::parse_url(base.value());
  if (!url || (!url->https && !settings_.allow_plain_http))
    co_return ApiError{ErrorKind::Forbidden, 0, "apis: ticketing URL is not https: " + base.value()};
  s.ticketing_base = base.value();
  s.generation = ++generations_;
  session_ = s;
  log::info("api.session_ready", {{"spool_id", ctx.spool_id}, {"ticketing", s.ticketing_base},
                                  {"token_lifetime_s", std::to_string(lifetime)}});
  co_return s;
}

// The base URL, never persisted (messenger-api.md "Authorization"): a
// refresh keeps the session's (its answer has no apis); /auth's answer
// names it in apis.ticketing; only when it does not, GET /apis — which
// counts against the auth rate limit, so once per new session at most.
awaitable<Result<std::string>> MessengerClient::ticketing_base(const nlohmann::json& token_answer,
                                                               std::string keep_base, const std::string& token) {
  if (!keep_base.empty()) co_return keep_base;
  if (auto named = ticketing_of(token_answer); named && !named->empty()) co_return versioned(*named);
  co_return co_await discover_ticketing_base(token);
}

awaitable<Result<std::string>> MessengerClient::discover_ticketing_base(const std::string& token) {
  net::HttpRequest req;
  req.url = settings_.auth_url + "/apis";
  req.headers = auth_headers(settings_.api_key, token);
  net::HttpResponse resp = co_await send_bounded(std::move(req), "apis");
  if (resp.error != net::TransportError::None) co_return ApiError{ErrorKind::Temporary, 0, "apis: " + resp.error_text};
  Verdict v = classify_status(resp.status);
  if (v == Verdict::Forbidden)
    co_return ApiError{ErrorKind::Forbidden, resp.status, "apis: " + api_error_message(resp.body)};
  if (v != Verdict::Success)
    co_return ApiError{ErrorKind::Temporary, resp.status, "apis: HTTP " + std::to_string(resp.status)};
  auto named = ticketing_of(nlohmann::json::parse(resp.body, nullptr, false));
  if (!named) co_return ApiError{ErrorKind::Temporary, 0, "apis: response names no ticketing API"};
  co_return versioned(*named);
}

// ---- rate limits -----------------------------------------------------------------

void MessengerClient::note_limits(const net::HttpResponse& resp) {
  const auto now = steady_clock::now();
  const auto now_unix = static_cast<std::int64_t>(std::time(nullptr));
  auto note = [&](Limit& limit, const char* usage_header, const char* reset_header, const char* kind) {
    auto usage = percent(header(resp, usage_header));
    if (!usage) return;
    limit.usage = *usage;
    limit.reset_at.reset();
    if (auto reset = parse_reset(header(resp, reset_header), now_unix)) limit.reset_at = now + *reset;
    registry().set("mailgate_api_rate_limit_usage_ratio", kUsageHelp, {{"kind", kind}}, *usage / 100.0);
  };
  note(limits_.throttle, "x-throttle-usage", "x-throttle-reset", "throttle");
  note(limits_.quota, "x-quota-usage", "x-quota-reset", "quota");
}

// A 429: Retry-After if ever sent, else the reset of the limit that is
// spent (the hourly quota first: it can mean most of an hour), else of
// either. Not capped by the backoff cap; by max_retry_after only.
std::optional<milliseconds> MessengerClient::limit_wait(const net::HttpResponse& resp) const {
  const auto now_unix = static_cast<std::int64_t>(std::time(nullptr));
  if (auto d = parse_retry_after(resp.retry_after, now_unix, settings_.backoff)) return d;
  auto quota_usage = percent(header(resp, "x-quota-usage"));
  auto throttle_usage = percent(header(resp, "x-throttle-usage"));
  auto quota_reset = parse_reset(header(resp, "x-quota-reset"), now_unix);
  auto throttle_reset = parse_reset(header(resp, "x-throttle-reset"), now_unix);
  std::optional<std::chrono::seconds> wait;
  if (quota_usage && *quota_usage >= 100 && quota_reset) wait = quota_reset;
  else if (throttle_usage && *throttle_usage >= 100 && throttle_reset) wait = throttle_reset;
  else if (throttle_reset) wait = throttle_reset;
  else if (quota_reset) wait = quota_reset;
  if (!wait) return std::nullopt;
  // At least a moment: a reset rounded down to 0 must not become a busy loop.
  milliseconds ms = std::max<milliseconds>(*wait, kMinLimitWait);
  return std::min(ms, settings_.backoff.max_retry_after);
}

// Above kSlowDownAbovePercent of a limit, each call waits the time left
// until its reset divided by the percentage points left (plus one): the
// closer to the limit, the slower, and never a wait beyond the reset.
milliseconds MessengerClient::pacing_delay() const {
  const auto now = steady_clock::now();
  milliseconds delay{0};
  for (const Limit* l : {&limits_.throttle, &limits_.quota}) {
    if (l->usage < kSlowDownAbovePercent || !l->reset_at || *l->reset_at <= now) continue;
    const double left = std::max(0.0, 100.0 - l->usage) + 1.0;
    auto until = std::chrono::duration_cast<milliseconds>(*l->reset_at - now);
    delay = std::max(delay, milliseconds(static_cast<long long>(static_cast<double>(until.count()) / left)));
  }
  return std::min(delay, settings_.backoff.max_retry_after);
}

void MessengerClient::set_paused(bool paused) { registry().set("mailgate_api_paused", kPausedHelp, {}, paused ? 1 : 0); }

// ---- the failure policy ----------------------------------------------------------

// A call as `call` was given it, and the time its retries must end by.
struct MessengerClient::CallSpec {
  std::string name;
  net::http::verb method;
  std::string path;
  std::string body;
  const CallContext& ctx;
  bool repeatable;
  steady_clock::time_point deadline;
};

// What one attempt came to: the call's result (an answer, or an error that
// no retry changes), a token the API refused, or a problem worth a retry.
struct MessengerClient::Attempt {
  static Attempt done(Result<Answer> result) {
    Attempt a;
    a.result = std::move(result);
    return a;
  }
  static Attempt refused_token(int status, std::string message) {
    Attempt a;
    a.token_refused = true;
    a.status = status;
    a.message = std::move(message);
    return a;
  }
  static Attempt retry(std::string problem, std::optional<milliseconds> limit = std::nullopt) {
    Attempt a;
    a.problem = std::move(problem);
    a.limit = limit;
    return a;
  }

  std::optional<Result<Answer>> result;  // set: the call ends with it
  bool token_refused = false;            // 401, or the gateway's 403: a new session may help, once
  int status = 0;                        // of the refusing answer
  std::string message;                   // the API's, with the refusal
  std::string problem;                   // why a retry is needed
  std::optional<milliseconds> limit;     // the wait a 429 or 503 named, instead of the backoff
};

awaitable<Result<MessengerClient::Answer>> MessengerClient::call(std::string_view name, net::http::verb method,
                                                                 std::string path, std::string body,
                                                                 const CallContext& ctx, bool repeatable) {
  const CallSpec spec{std::string(name), method,     std::move(path), std::move(body),
                      ctx,               repeatable, steady_clock::now() + settings_.retry_for};
  bool reauthenticated = false;
  for (int attempt = 0;; ++attempt) {
    Attempt tried = co_await attempt_call(spec, attempt);
    if (tried.result) co_return std::move(*tried.result);
    if (tried.token_refused) {
      if (reauthenticated) co_return refuse(spec, Verdict::Forbidden, tried.status, tried.message);
      reauthenticated = true;
      log::info("api.reauthenticate", {{"call", spec.name}, {"spool_id", ctx.spool_id},
                                       {"status", std::to_string(tried.status)}, {"message", tried.message}});
      --attempt;  // not a failed attempt: the token had expired or been revoked
      continue;
    }
    milliseconds delay = tried.limit ? *tried.limit : backoff_delay(settings_.backoff, attempt, rng_);
    if (steady_clock::now() + delay > spec.deadline) {
      log::warn("api.gave_up", {{"call", spec.name}, {"spool_id", ctx.spool_id},
                                {"attempts", std::to_string(attempt + 1)}, {"reason", tried.problem}});
      ApiError e{ErrorKind::Temporary, 0, tried.problem};
      if (tried.limit) e.retry_after = std::chrono::ceil<std::chrono::seconds>(*tried.limit);
      co_return e;
    }
    log::info("api.retry", {{"call", spec.name}, {"spool_id", ctx.spool_id}, {"attempt", std::to_string(attempt + 1)},
                            {"delay_ms", ms_string(delay)}, {"reason", tried.problem}});
    co_await sleep(delay);
  }
}

// One attempt: a session, the pace the rate limits ask for, the request,
// and what its answer means.
awaitable<MessengerClient::Attempt> MessengerClient::attempt_call(const CallSpec& spec, int attempt) {
  auto s = co_await session(spec.ctx);
  if (!s) {
    if (s.error().kind != ErrorKind::Temporary) co_return Attempt::done(s.error());
    co_return Attempt::retry(s.error().message);
  }
  if (auto spent = co_await pace(spec)) co_return Attempt::done(*spent);
  net::HttpRequest req;
  req.method = spec.method;
  req.url = s.value().ticketing_base + spec.path;
  req.headers = auth_headers(settings_.api_key, s.value().token);
  req.body = spec.body;
  req.idempotent = spec.repeatable;
  const auto sent = steady_clock::now();
  net::HttpResponse resp = co_await send_bounded(std::move(req), spec.name);
  const auto took = std::chrono::duration_cast<milliseconds>(steady_clock::now() - sent);
  if (resp.error != net::TransportError::None) co_return unanswered(spec, resp);
  co_return judge_answer(spec, s.value().generation, std::move(resp), attempt, took);
}

// Near a rate limit, calls are spread out until its reset. A wait past the
// call's deadline (an hourly quota) is the caller's: the error names it and
// the message stays queued until then.
awaitable<std::optional<ApiError>> MessengerClient::pace(const CallSpec& spec) {
  const milliseconds delay = pacing_delay();
  if (delay.count() <= 0) co_return std::nullopt;
  if (steady_clock::now() + delay > spec.deadline) {
    ApiError e{ErrorKind::Temporary, 0, "rate limit nearly spent; waiting for its reset"};
    e.retry_after = std::chrono::ceil<std::chrono::seconds>(delay);
    log::warn("api.rate_limited", {{"call", spec.name}, {"spool_id", spec.ctx.spool_id},
                                   {"wait_s", std::to_string(e.retry_after->count())}});
    co_return e;
  }
  log::info("api.slow_down", {{"call", spec.name}, {"spool_id", spec.ctx.spool_id}, {"delay_ms", ms_string(delay)},
                              {"throttle_usage", std::to_string(limits_.throttle.usage)},
                              {"quota_usage", std::to_string(limits_.quota.usage)}});
  co_await sleep(delay);
  co_return std::nullopt;
}

// No answer. A request that may have reached the API is not sent again when
// it creates something (a second ticket could come of it): the caller looks first.
MessengerClient::Attempt MessengerClient::unanswered(const CallSpec& spec, const net::HttpResponse& resp) {
  const std::string problem = std::string(net::to_string(resp.error)) + ": " + resp.error_text;
  if (!resp.maybe_processed) return Attempt::retry(problem);
  const std::string maybe_processed = problem + " (the request was sent; the API may have acted on it)";
  if (spec.repeatable) return Attempt::retry(maybe_processed);
  log::warn("api.answer_lost", {{"call", spec.name}, {"spool_id", spec.ctx.spool_id}, {"reason", problem}});
  ApiError lost{ErrorKind::Temporary, 0, maybe_processed};
  lost.maybe_processed = true;
  return Attempt::done(lost);
}

// What an answer means (retry_policy.hpp): the call's result, a refused
// token, or a retry — after the wait a 429 or 503 names, when it names one.
MessengerClient::Attempt MessengerClient::judge_answer(const CallSpec& spec, std::uint64_t generation,
                                                       net::HttpResponse resp, int attempt, milliseconds took) {
  note_limits(resp);
  const std::string status = std::to_string(resp.status);
  const Verdict v = classify(resp.status, resp.body);
  if (v == Verdict::Success) {
    log::info("api.call", {{"call", spec.name}, {"spool_id", spec.ctx.spool_id}, {"status", status},
                           {"attempt", std::to_string(attempt + 1)}, {"ms", ms_string(took)}});
    set_paused(false);
    return Attempt::done(Answer{resp.status, std::move(resp.body)});
  }
  const std::string message = api_error_message(resp.body);
  if (v == Verdict::ReauthenticateOnce) {
    // 401, or the gateway's 403 that an expired or invalid token gets: the
    // next session is a new one (/auth, not a refresh of the refused token).
    if (session_ && session_->generation == generation) session_.reset();
    return Attempt::refused_token(resp.status, message);
  }
  if (v == Verdict::Forbidden || v == Verdict::Outage || v == Verdict::Permanent)
    return Attempt::done(refuse(spec, v, resp.status, message));
  std::optional<milliseconds> limit;
  if (resp.status == 429 || resp.status == 503) limit = limit_wait(resp);
  return Attempt::retry("HTTP " + status + ": " + message, limit);
}

// An answer that no retry changes. Forbidden (a fresh token refused too)
// and Outage stop all posting; Permanent fails this message alone.
ApiError MessengerClient::refuse(const CallSpec& spec, Verdict verdict, int status, const std::string& message) {
  const std::string status_text = std::to_string(status);
  if (verdict == Verdict::Permanent) {
    log::warn("api.rejected", {{"call", spec.name}, {"spool_id", spec.ctx.spool_id}, {"status", status_text},
                               {"message", message}});
    return ApiError{ErrorKind::Permanent, status, message};
  }
  if (verdict == Verdict::Outage) {
    log::error("api.endpoint_gone", {{"call", spec.name}, {"spool_id", spec.ctx.spool_id}, {"status", status_text},
                                     {"message", message},
                                     {"note", "the API turned this endpoint off; mail stays queued"}});
    set_paused(true);
    return ApiError{ErrorKind::Forbidden, status, "endpoint turned off (HTTP 410): " + message};
  }
  log::error("api.forbidden", {{"call", spec.name}, {"spool_id", spec.ctx.spool_id}, {"status", status_text},
                               {"message", message},
                               {"note", "a fresh token was refused too: check api_key and secret; the "
                                        "gateway may repeat this answer for 5 minutes"}});
  set_paused(true);
  return ApiError{ErrorKind::Forbidden, status, "credentials refused: " + message};
}

// ---- the calls ------------------------------------------------------------------

awaitable<Result<std::optional<std::string>>> MessengerClient::find_user(std::string address, CallContext ctx) {
  std::string lookup = "/users?address=" + url_encode(address), no_body;
  auto found = co_await call("find_user", net::http::verb::get, std::move(lookup), std::move(no_body), ctx);
  if (!found) co_return found.error();
  auto j = nlohmann::json::parse(found.value().body, nullptr, false);
  if (j.is_discarded()) co_return ApiError{ErrorKind::Temporary, found.value().status, "find_user: not JSON"};
  std::optional<std::string> first;
  for (const auto& u : items_of(j)) {
    auto id = id_of(u);
    if (!id) continue;
    const std::string a = text_of(u, "address");
    if (!a.empty() && strcasecmp(a.c_str(), address.c_str()) == 0) co_return std::optional<std::string>(id);
    if (a.empty() && !first) first = id;  // an answer without addresses: the API filtered for us
  }
  co_return first;
}

awaitable<Result<std::string>> MessengerClient::create_user(std::string name, std::string address, CallContext ctx) {
  // Look up first: POST /users refuses an address that exists.
  std::string a1 = address;
  auto known = co_await find_user(std::move(a1), ctx);
  if (!known) co_return known.error();
  if (known.value()) co_return *known.value();
  std::string path = "/users", body = user_body(name, address);
  auto r = co_await call("create_user", net::http::verb::post, std::move(path), std::move(body), ctx);
  if (r) {
    if (auto id = extract_id(r.value().body)) co_return *id;
  } else if (r.error().kind != ErrorKind::Permanent) {
    co_return r.error();
  }
  // Refused (someone created it meanwhile), or created without an id in
  // the answer: it exists now, so look it up again.
  std::string a2 = address;
  auto again = co_await find_user(std::move(a2), ctx);
  if (!again) co_return again.error();
  if (again.value()) {
    if (!r) log::info("api.user_created_meanwhile", {{"spool_id", ctx.spool_id}, {"refusal", r.error().message}});
    co_return *again.value();
  }
  if (!r) co_return r.error();
  co_return ApiError{ErrorKind::Temporary, r.value().status, "user " + address + " was created but is not found"};
}

awaitable<Result<std::string>> MessengerClient::upload_media(std::string name, std::string_view bytes, CallContext ctx) {
  if (bytes.size() > max_media_bytes(name)) {
    log::warn("api.media_too_large", {{"spool_id", ctx.spool_id}, {"bytes", std::to_string(bytes.size())}});
    co_return ApiError{ErrorKind::Permanent, 0,
                       "attachment of " + std::to_string(bytes.size()) + " bytes exceeds the API's " +
                           std::to_string(kMaxFileBytes / (1024 * 1024)) + " MB per-file limit"};
  }
  std::string body = "{\"name\":" + dump(name) + ",\"content\":\"" + text::base64_encode(bytes) + "\"}";
  std::string path = "/media";
  auto r = co_await call("upload_media", net::http::verb::post, std::move(path), std::move(body), ctx);
  if (!r) co_return r.error();
  if (auto id = extract_id(r.value().body)) co_return *id;
  co_return ApiError{ErrorKind::Temporary, r.value().status, "upload_media: the answer carries no id"};
}

awaitable<Result<TicketRef>> MessengerClient::create_ticket(NewTicket t, CallContext ctx,
                                                          std::function<bool(const std::string& id)> taken) {
  const std::int64_t started = static_cast<std::int64_t>(std::time(nullptr));
  for (int lost = 0;; ++lost) {
    std::string path = "/tickets", body = ticket_body(t);
    auto r = co_await call("create_ticket", net::http::verb::post, std::move(path), std::move(body), ctx,
                           /*repeatable=*/false);
    if (r) {
      auto j = nlohmann::json::parse(r.value().body, nullptr, false);
      TicketRef ref;
      if (auto id = extract_id(r.value().body)) ref.id = *id;
      ref.full_uuid = text_of(j, "full_uuid");
      for (const auto& item : items_of(j))
        if (ref.full_uuid.empty()) ref.full_uuid = text_of(item, "full_uuid");
      // The ticket exists but we cannot name it: retrying would duplicate it.
      if (ref.id.empty())
        co_return ApiError{ErrorKind::Permanent, r.value().status, "create_ticket: created, but the answer carries no id"};
      co_return ref;
    }
    if (!r.error().maybe_processed || lost + 1 >= kMaxLostAnswers) co_return r.error();
    // The answer was lost: the ticket may exist. Look before posting again.
    TicketLookup lookup{t.external_id, t.creator, t.title};
    TicketLookup query = lookup;
    auto found = co_await find_tickets(std::move(query), ctx);
    if (!found) {
      ApiError e = found.error();
      e.maybe_processed = true;  // still unknown: the caller must look before posting
      co_return e;
    }
    if (auto mine = choose_ticket(found.value(), lookup, started, taken)) {
      log::warn("api.ticket_adopted", {{"spool_id", ctx.spool_id}, {"ticket", id_text(mine->id)},
                                       {"note", "the answer to POST /tickets was lost; the ticket exists"}});
      co_return *mine;
    }
    log::warn("api.ticket_reposted", {{"spool_id", ctx.spool_id},
                                      {"note", "the answer to POST /tickets was lost and no ticket was found"}});
  }
}

std::optional<TicketRef> choose_ticket(std::vector<FoundTicket> found, const TicketLookup& lookup,
                                       std::int64_t since_unix,
                                       const std::function<bool(const std::string& id)>& taken) {
  std::stable_sort(found.begin(), found.end(), [](const FoundTicket& a, const FoundTicket& b) {
    return a.creation_date.value_or(0) < b.creation_date.value_or(0);
  });
  for (const auto& t : found) {
    if (lookup.external_id.empty()) {
      // An IQL answer is a search: check what it matched.
      if (!t.title.empty() && t.title != lookup.title) continue;
      if (!t.creator.empty() && id_text(t.creator) != id_text(lookup.creator)) continue;
      // Created before our first attempt began: another mail's ticket.
      if (since_unix > 0 && t.creation_date && *t.creation_date < since_unix - kCreationClockSkew) continue;
    }
    if (taken && taken(t.ref.id)) continue;  // recorded for another message
    return t.ref;
  }
  return std::nullopt;
}

awaitable<Result<std::vector<FoundTicket>>> MessengerClient::find_tickets(TicketLookup lookup, CallContext ctx) {
  std::string path = lookup.external_id.empty()
                         ? "/tickets?iql=" + url_encode(iql_creator_and_title(lookup.creator, lookup.title))
                         : "/tickets?external_id=" + url_encode(lookup.external_id);
  std::string no_body;
  auto r = co_await call("find_ticket", net::http::verb::get, std::move(path), std::move(no_body), ctx);
  if (!r) co_return r.error();
  auto j = nlohmann::json::parse(r.value().body, nullptr, false);
  if (j.is_discarded()) co_return ApiError{ErrorKind::Temporary, r.value().status, "find_ticket: not JSON"};
  std::vector<FoundTicket> out;
  for (const auto& item : items_of(j))
    if (auto t = found_ticket_of(item); !t.ref.id.empty()) out.push_back(std::move(t));
  co_return out;
}

// ---- replies and ticket state (threading) ------------------------------------------

awaitable<Result<std::string>> MessengerClient::add_reply(std::string ticket_id, NewReply reply, CallContext ctx,
                                                          std::function<bool(const std::string& id)> taken) {
  const std::int64_t started = static_cast<std::int64_t>(std::time(nullptr));
  for (int lost = 0;; ++lost) {
    std::string path = replies_path(settings_.reply_path, ticket_id), body = reply_body(reply);
    auto r = co_await call("add_reply", net::http::verb::post, std::move(path), std::move(body), ctx,
                           /*repeatable=*/false);
    if (r) {
      if (auto id = extract_id(r.value().body)) co_return *id;
      // The reply exists but we cannot name it: retrying would duplicate it.
      co_return ApiError{ErrorKind::Permanent, r.value().status, "add_reply: created, but the answer carries no id"};
    }
    if (!r.error().maybe_processed || lost + 1 >= kMaxLostAnswers) co_return r.error();
    // The answer was lost: the reply may exist. Look before posting again.
    std::string ticket = ticket_id;
    auto found = co_await find_replies(std::move(ticket), ctx);
    if (!found) {
      ApiError e = found.error();
      e.maybe_processed = true;  // still unknown: the caller must look before posting
      co_return e;
    }
    if (auto mine = choose_reply(found.value(), reply, started, taken)) {
      log::warn("api.reply_adopted", {{"spool_id", ctx.spool_id}, {"ticket", id_text(ticket_id)}, {"reply", id_text(*mine)},
                                      {"note", "the answer to POST replies was lost; the reply exists"}});
      co_return *mine;
    }
    log::warn("api.reply_reposted", {{"spool_id", ctx.spool_id}, {"ticket", id_text(ticket_id)},
                                     {"note", "the answer to POST replies was lost and no reply was found"}});
  }
}

std::optional<std::string> choose_reply(const std::vector<FoundReply>& found, const NewReply& reply,
                                        std::int64_t since_unix,
                                        const std::function<bool(const std::string& id)>& taken) {
  std::vector<const FoundReply*> candidates;
  const std::string message = comparable_reply_text(reply.message);
  for (const auto& r : found) {
    if (r.id.empty() || r.type != "reply") continue;  // an agent's answer is never ours
    // Ids compared as the API means them: 12 and "12" are one user.
    if (r.creator.empty() || id_text(r.creator) != id_text(reply.creator)) continue;
    if (comparable_reply_text(r.message) != message) continue;
    // Created before our first attempt began: an earlier mail's reply.
    if (since_unix > 0 && r.creation_date && *r.creation_date < since_unix - kCreationClockSkew) continue;
    if (taken && taken(r.id)) continue;  // recorded for another message
    candidates.push_back(&r);
  }
  if (candidates.empty()) return std::nullopt;
  auto earliest = std::min_element(candidates.begin(), candidates.end(), [](const FoundReply* a, const FoundReply* b) {
    return a->creation_date.value_or(0) < b->creation_date.value_or(0);
  });
  return (*earliest)->id;
}

awaitable<Result<std::vector<FoundReply>>> MessengerClient::find_replies(std::string ticket_id, CallContext ctx) {
  std::string path = replies_path(settings_.reply_path, ticket_id), no_body;
  auto r = co_await call("find_replies", net::http::verb::get, std::move(path), std::move(no_body), ctx);
  if (!r) co_return r.error();
  auto j = nlohmann::json::parse(r.value().body, nullptr, false);
  if (j.is_discarded()) co_return ApiError{ErrorKind::Temporary, r.value().status, "find_replies: not JSON"};
  std::vector<FoundReply> out;
  for (const auto& item : items_of(j))
    if (auto reply = found_reply_of(item); !reply.id.empty()) out.push_back(std::move(reply));
  co_return out;
}

awaitable<Result<std::optional<FoundTicket>>> MessengerClient::get_ticket(std::string ticket_id, CallContext ctx) {
  std::string path = "/tickets/" + url_encode(id_text(ticket_id)), no_body;
  auto r = co_await call("get_ticket", net::http::verb::get, std::move(path), std::move(no_body), ctx);
  if (!r) {
    if (r.error().kind == ErrorKind::Permanent && r.error().status == 404) co_return std::optional<FoundTicket>();
    co_return r.error();
  }
  auto j = nlohmann::json::parse(r.value().body, nullptr, false);
  // The ticket itself, or wrapped as {"data": {…}} or {"data": [{…}]}.
  auto items = j.is_discarded() ? std::vector<nlohmann::json>() : items_of(j);
  if (items.empty() && j.is_object() && !j.contains("data")) items.push_back(j);
  if (items.empty()) co_return ApiError{ErrorKind::Temporary, r.value().status, "get_ticket: the answer is no ticket"};
  FoundTicket t = found_ticket_of(items.front());
  if (t.ref.id.empty()) t.ref.id = ticket_id;  // the ticket we asked for, whatever the answer omits
  co_return std::optional<FoundTicket>(std::move(t));
}

awaitable<Result<bool>> MessengerClient::set_ticket_status(std::string ticket_id, std::string status, CallContext ctx) {
  // Setting a status twice leaves it set: a PUT may be repeated after a lost answer.
  std::string path = "/tickets/" + url_encode(id_text(ticket_id)), body = status_body(status);
  auto r = co_await call("set_ticket_status", net::http::verb::put, std::move(path), std::move(body), ctx);
  if (!r) co_return r.error();
  co_return true;
}

void MessengerClient::set_credentials(std::string api_key, std::string secret, std::string auth_url) {
  settings_.api_key = std::move(api_key);
  settings_.secret = std::move(secret);
  settings_.auth_url = std::move(auth_url);
  session_.reset();
}

}  // namespace mailgate::messenger
