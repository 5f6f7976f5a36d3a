// MessengerClient: sessions (token + discovered base URL) shared by all
// callers, every call under one failure policy, nothing secret in the log.
#include "mailgate/messenger/messenger_client.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <strings.h>

#include "mailgate/log/log.hpp"

namespace mailgate::messenger {

using net::asio::awaitable;
using net::asio::use_awaitable;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

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
std::string ticket_body(const NewTicket& t) {
  nlohmann::json j = t.extra.is_object() ? t.extra : nlohmann::json::object();
  j["title"] = t.title;
  j["message"] = t.message;
  j["creator"] = t.creator;
  j["attachments"] = t.attachments;
  return dump(j);
}
std::string reply_body(const NewReply& r) {
  return dump({{"message", r.message}, {"creator", r.creator}, {"attachments", r.attachments}});
}
std::vector<std::pair<std::string, std::string>> auth_headers(const std::string& key, const std::string& token) {
  std::vector<std::pair<std::string, std::string>> h;
  h.emplace_back("x-inbenta-key", key);
  if (!token.empty()) h.emplace_back("Authorization", "Bearer " + token);
  return h;
}

std::optional<std::string> id_of(const nlohmann::json& j) {
  if (!j.is_object()) return std::nullopt;
  for (const char* key : {"id", "uuid"}) {
    if (!j.contains(key)) continue;
    const auto& v = j[key];
    if (v.is_string() && !v.get<std::string>().empty()) return v.get<std::string>();
    if (v.is_number_integer()) return std::to_string(v.get<long long>());
  }
  return std::nullopt;
}

}  // namespace

std::string_view to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Temporary: return "temporary";
    case ErrorKind::Permanent: return "permanent";
    case ErrorKind::Forbidden: return "forbidden";
  }
  return "unknown";
}

std::optional<std::string> extract_id(std::string_view body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  if (auto id = id_of(j)) return id;
  if (j.is_object() && j.contains("data")) return id_of(j["data"]);
  return std::nullopt;
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
  return (kMaxRequestBytes - overhead) / 4 * 3;
}

// Every request, auth included, counts against max_in_flight.
awaitable<net::HttpResponse> MessengerClient::send_bounded(net::HttpRequest request) {
  co_await in_flight_.acquire();
  SemaphoreGuard slot(in_flight_);
  co_return co_await http_.send(std::move(request));
}

awaitable<void> MessengerClient::sleep(milliseconds d) {
  net::asio::steady_timer timer(executor_, d);
  boost::system::error_code ec;
  co_await timer.async_wait(net::asio::redirect_error(use_awaitable, ec));
}

// ---- sessions ----------------------------------------------------------------

awaitable<Result<MessengerClient::Session>> MessengerClient::session(const CallContext& ctx) {
  if (session_ && steady_clock::now() < session_->refresh_at) co_return *session_;
  // One fetch at a time: callers that queued here find the fresh session.
  co_await token_lock_.acquire();
  SemaphoreGuard guard(token_lock_);
  auto now = steady_clock::now();
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
  net::HttpResponse resp = co_await send_bounded(std::move(req));
  if (resp.error == net::TransportError::PlainHttpRefused || resp.error == net::TransportError::BadUrl)
    co_return ApiError{ErrorKind::Forbidden, 0, "messenger.auth_url: " + resp.error_text};  // configuration
  if (resp.error != net::TransportError::None)
    co_return ApiError{ErrorKind::Temporary, 0, "auth: " + resp.error_text};
  Verdict v = classify_status(resp.status);
  if (v == Verdict::RetryLater)
    co_return ApiError{ErrorKind::Temporary, resp.status, "auth: HTTP " + std::to_string(resp.status) + ": " +
                                                              api_error_message(resp.body)};
  if (v != Verdict::Success) {
    log::error("api.auth_rejected", {{"spool_id", ctx.spool_id}, {"status", std::to_string(resp.status)},
                                     {"message", api_error_message(resp.body)}});
    co_return ApiError{ErrorKind::Forbidden, resp.status,
                       "authentication rejected (check api_key and secret): " + api_error_message(resp.body)};
  }
  log::info("api.authenticated", {{"spool_id", ctx.spool_id}});
  co_return co_await finish_session(resp.body, ctx);
}

awaitable<Result<MessengerClient::Session>> MessengerClient::refresh(const Session& current, const CallContext& ctx) {
  net::HttpRequest req;
  req.method = net::http::verb::post;
  req.url = settings_.auth_url + "/refreshToken";
  req.headers = auth_headers(settings_.api_key, current.token);
  net::HttpResponse resp = co_await send_bounded(std::move(req));
  if (resp.error != net::TransportError::None) co_return ApiError{ErrorKind::Temporary, 0, resp.error_text};
  if (classify_status(resp.status) != Verdict::Success)
    co_return ApiError{ErrorKind::Temporary, resp.status, "HTTP " + std::to_string(resp.status)};
  log::info("api.token_refreshed", {{"spool_id", ctx.spool_id}});
  co_return co_await finish_session(resp.body, ctx);
}

awaitable<Result<MessengerClient::Session>> MessengerClient::finish_session(std::string_view token_body,
                                                                            const CallContext& ctx) {
  auto j = nlohmann::json::parse(token_body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("accessToken") || !j["accessToken"].is_string())
    co_return ApiError{ErrorKind::Temporary, 0, "auth: response carries no accessToken"};
  Session s;
  s.token = j["accessToken"].get<std::string>();
  // Lifetime: expires_in (seconds) or expiration (UNIX seconds); else 20 min.
  long long lifetime = settings_.default_token_lifetime.count();
  if (j.contains("expires_in") && j["expires_in"].is_number()) {
    lifetime = j["expires_in"].get<long long>();
  } else if (j.contains("expiration") && j["expiration"].is_number()) {
    lifetime = j["expiration"].get<long long>() - static_cast<long long>(std::time(nullptr));
  }
  if (lifetime < 1) lifetime = 1;
  auto now = steady_clock::now();
  s.expires = now + std::chrono::seconds(lifetime);
  auto margin = std::min<milliseconds>(milliseconds(lifetime * 1000 / 4), settings_.max_refresh_margin);
  s.refresh_at = s.expires - margin;

  // Discovery after each new token, never persisted (messenger-api.md).
  net::HttpRequest req;
  req.url = settings_.auth_url + "/apis";
  req.headers = auth_headers(settings_.api_key, s.token);
  net::HttpResponse resp = co_await send_bounded(std::move(req));
  if (resp.error != net::TransportError::None)
    co_return ApiError{ErrorKind::Temporary, 0, "apis: " + resp.error_text};
  Verdict v = classify_status(resp.status);
  if (v == Verdict::Forbidden)
    co_return ApiError{ErrorKind::Forbidden, resp.status, "apis: " + api_error_message(resp.body)};
  if (v != Verdict::Success)
    co_return ApiError{ErrorKind::Temporary, resp.status, "apis: HTTP " + std::to_string(resp.status)};
  auto apis = nlohmann::json::parse(resp.body, nullptr, false);
  if (apis.is_discarded() || !apis.is_object() || !apis.contains("apis") || !apis["apis"].is_object() ||
      !apis["apis"].contains("ticketing") || !apis["apis"]["ticketing"].is_string())
    co_return ApiError{ErrorKind::Temporary, 0, "apis: response names no ticketing API"};
  std::string base = apis["apis"]["ticketing"].get<std::string>();
  while (!base.empty() && base.back() == '/') base.pop_back();
  auto url = net::parse_url(base);
  if (!url || (!url->https && !settings_.allow_plain_http))
    co_return ApiError{ErrorKind::Forbidden, 0, "apis: ticketing URL is not https: " + base};
  s.ticketing_base = base + "/v1";
  s.generation = ++generations_;
  session_ = s;
  log::info("api.session_ready", {{"spool_id", ctx.spool_id}, {"ticketing", s.ticketing_base},
                                  {"token_lifetime_s", std::to_string(lifetime)}});
  co_return s;
}

// ---- the failure policy ----------------------------------------------------------

awaitable<Result<MessengerClient::Answer>> MessengerClient::call(std::string_view name, net::http::verb method,
                                                                 std::string path, std::string body,
                                                                 const CallContext& ctx, int also_ok) {
  const std::string call_name(name);
  const auto started = steady_clock::now();
  const auto deadline = started + settings_.retry_for;
  bool reauthenticated = false;
  std::string problem;
  for (int attempt = 0;; ++attempt) {
    std::optional<milliseconds> retry_after;
    auto s = co_await session(ctx);
    if (!s) {
      if (s.error().kind != ErrorKind::Temporary) co_return s.error();
      problem = s.error().message;
    } else {
      net::HttpRequest req;
      req.method = method;
      req.url = s.value().ticketing_base + path;
      req.headers = auth_headers(settings_.api_key, s.value().token);
      req.body = body;
      const auto sent = steady_clock::now();
      net::HttpResponse resp = co_await send_bounded(std::move(req));
      const auto took = std::chrono::duration_cast<milliseconds>(steady_clock::now() - sent);
      if (resp.error != net::TransportError::None) {
        problem = std::string(net::to_string(resp.error)) + ": " + resp.error_text;
        if (resp.maybe_processed)
          problem += " (the request was sent; the API may have acted on it)";
      } else {
        const std::string status = std::to_string(resp.status);
        Verdict v = classify_status(resp.status);
        bool accepted = also_ok != 0 && resp.status == also_ok;
        if (v == Verdict::Success || accepted) {
          log::info("api.call", {{"call", call_name}, {"spool_id", ctx.spool_id}, {"status", status},
                                 {"attempt", std::to_string(attempt + 1)}, {"ms", ms_string(took)}});
          co_return Answer{resp.status, std::move(resp.body)};
        }
        const std::string message = api_error_message(resp.body);
        if (v == Verdict::ReauthenticateOnce) {
          if (session_ && session_->generation == s.value().generation) session_.reset();
          if (!reauthenticated) {
            reauthenticated = true;
            log::info("api.reauthenticate", {{"call", call_name}, {"spool_id", ctx.spool_id}, {"status", status}});
            --attempt;  // not a failed attempt: the token had expired or been revoked
            continue;
          }
          v = Verdict::Forbidden;
        }
        if (v == Verdict::Forbidden) {
          log::error("api.forbidden", {{"call", call_name}, {"spool_id", ctx.spool_id}, {"status", status},
                                       {"message", message}});
          co_return ApiError{ErrorKind::Forbidden, resp.status, "credentials lack permission: " + message};
        }
        if (v == Verdict::Permanent) {
          log::warn("api.rejected", {{"call", call_name}, {"spool_id", ctx.spool_id}, {"status", status},
                                     {"message", message}});
          co_return ApiError{ErrorKind::Permanent, resp.status, message};
        }
        problem = "HTTP " + status + ": " + message;
        if (resp.status == 429 || resp.status == 503)
          retry_after = parse_retry_after(resp.retry_after, std::time(nullptr), settings_.backoff);
      }
    }
    milliseconds delay = retry_after ? *retry_after : backoff_delay(settings_.backoff, attempt, rng_);
    if (steady_clock::now() + delay > deadline) {
      log::warn("api.gave_up", {{"call", call_name}, {"spool_id", ctx.spool_id},
                                {"attempts", std::to_string(attempt + 1)}, {"reason", problem}});
      co_return ApiError{ErrorKind::Temporary, 0, problem};
    }
    log::info("api.retry", {{"call", call_name}, {"spool_id", ctx.spool_id}, {"attempt", std::to_string(attempt + 1)},
                            {"delay_ms", ms_string(delay)}, {"reason", problem}});
    co_await sleep(delay);
  }
}

// ---- the calls ------------------------------------------------------------------

awaitable<Result<std::string>> MessengerClient::create_user(std::string name, std::string address, CallContext ctx) {
  std::string path = "/users", body = user_body(name, address);
  auto r = co_await call("create_user", net::http::verb::post, std::move(path), std::move(body), ctx, /*also_ok=*/409);
  if (!r) co_return r.error();
  if (auto id = extract_id(r.value().body)) co_return *id;
  // An existing address without its id in the answer: look it up.
  std::string lookup = "/users?address=" + url_encode(address), no_body;
  auto found = co_await call("find_user", net::http::verb::get, std::move(lookup), std::move(no_body), ctx);
  if (!found) co_return found.error();
  auto j = nlohmann::json::parse(found.value().body, nullptr, false);
  const nlohmann::json* list = &j;
  if (j.is_object() && j.contains("data")) list = &j["data"];
  if (list->is_array()) {
    for (const auto& u : *list) {
      bool same = u.is_object() && u.contains("address") && u["address"].is_string() &&
                  strcasecmp(u["address"].get<std::string>().c_str(), address.c_str()) == 0;
      if (same)
        if (auto id = id_of(u)) co_return *id;
    }
  } else if (auto id = id_of(*list)) {
    co_return *id;
  }
  co_return ApiError{ErrorKind::Permanent, r.value().status, "user " + address + " exists but its id was not found"};
}

awaitable<Result<std::string>> MessengerClient::upload_media(std::string name, std::string_view bytes, CallContext ctx) {
  if (bytes.size() > max_media_bytes(name)) {
    log::warn("api.media_too_large", {{"spool_id", ctx.spool_id}, {"bytes", std::to_string(bytes.size())}});
    co_return ApiError{ErrorKind::Permanent, 0,
                       "attachment of " + std::to_string(bytes.size()) + " bytes exceeds the API's 10 MB request limit"};
  }
  std::string body = "{\"name\":" + dump(name) + ",\"content\":\"" + base64(bytes) + "\"}";
  std::string path = "/media";
  auto r = co_await call("upload_media", net::http::verb::post, std::move(path), std::move(body), ctx);
  if (!r) co_return r.error();
  if (auto id = extract_id(r.value().body)) co_return *id;
  co_return ApiError{ErrorKind::Temporary, r.value().status, "upload_media: the answer carries no id"};
}

awaitable<Result<std::string>> MessengerClient::create_ticket(NewTicket t, CallContext ctx) {
  std::string path = "/tickets", body = ticket_body(t);
  auto r = co_await call("create_ticket", net::http::verb::post, std::move(path), std::move(body), ctx);
  if (!r) co_return r.error();
  if (auto id = extract_id(r.value().body)) co_return *id;
  // The ticket exists but we cannot name it: retrying would duplicate it.
  co_return ApiError{ErrorKind::Permanent, r.value().status, "create_ticket: created, but the answer carries no id"};
}

awaitable<Result<std::string>> MessengerClient::add_reply(std::string ticket_id, NewReply reply, CallContext ctx) {
  std::string path = settings_.reply_path;
  if (auto pos = path.find("{id}"); pos != std::string::npos) path.replace(pos, 4, url_encode(ticket_id));
  std::string body = reply_body(reply);
  auto r = co_await call("add_reply", net::http::verb::post, std::move(path), std::move(body), ctx);
  if (!r) co_return r.error();
  if (auto id = extract_id(r.value().body)) co_return *id;
  co_return ApiError{ErrorKind::Permanent, r.value().status, "add_reply: created, but the answer carries no id"};
}

}  // namespace mailgate::messenger
