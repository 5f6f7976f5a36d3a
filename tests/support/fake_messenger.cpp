// The fake's server: one coroutine per connection on a private io_context.
// Strictness mirrors messenger-api.md: keys, token expiry and revocation,
// the 10 MB request limit, creators and media that must exist, att: tags
// that must be listed, media older than an hour refused.
#include "fake_messenger.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <set>

#include "mailgate/net/asio.hpp"

namespace mailgate::testing {

using namespace mailgate::net;
using asio::awaitable;
using asio::use_awaitable;
using boost::system::error_code;

namespace {

constexpr std::size_t kMaxRequestBytes = 10'000'000;  // messenger-api.md

std::string random_hex(std::mt19937_64& rng, int n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < n; ++i) s.push_back(kHex[rng() & 15]);
  return s;
}

std::string uuid(std::mt19937_64& rng) {
  std::string h = random_hex(rng, 32);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-4" + h.substr(13, 3) + "-a" + h.substr(17, 3) + "-" + h.substr(20, 12);
}

std::optional<std::string> strict_base64_decode(const std::string& in) {
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out(in.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  if (n < 0) return std::nullopt;
  std::size_t pad = 0;
  if (!in.empty() && in.back() == '=') ++pad;
  if (in.size() > 1 && in[in.size() - 2] == '=') ++pad;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

const char* fault_name(Fault f) {
  switch (f) {
    case Fault::Status500: return "500";
    case Fault::Status503: return "503";
    case Fault::Status429: return "429";
    case Fault::DropBeforeResponse: return "drop-before-response";
    case Fault::DropAfterResponse: return "drop-after-response";
    case Fault::Slow: return "slow";
  }
  return "?";
}

}  // namespace

struct FakeMessenger::Impl {
  FakeMessengerOptions options;
  asio::io_context io;
  std::optional<ssl::context> tls;
  tcp::acceptor acceptor{io};
  const std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();

  mutable std::mutex mu;  // guards everything below
  std::mt19937_64 rng{42};
  std::vector<RecordedRequest> log;
  std::vector<FakeUser> users;
  std::vector<FakeMedia> media;
  std::vector<FakeTicket> tickets;
  struct Token {
    double expires_at;
    bool revoked = false;
  };
  std::map<std::string, Token> tokens;
  std::chrono::seconds token_lifetime;
  double clock_offset = 0;
  double fault_rate = 0;
  std::vector<Fault> fault_kinds;
  std::set<std::string> fault_calls;  // random faults only for these calls; empty: all
  std::mt19937_64 fault_rng{1};
  std::map<std::string, std::deque<Fault>> scripted;
  std::string retry_after = "1";
  std::chrono::milliseconds slow_delay{200};
  bool refresh_fails = false;
  bool forbidden = false;
  ExistingUserStyle existing_user_style = ExistingUserStyle::ConflictWithId;
  long next_ticket = 1000;

  double now() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(); }
  double fake_clock() const { return now() + clock_offset; }

  std::string ticketing_base() const {
    return std::string(tls ? "https" : "http") + "://" + options.host + ":" + std::to_string(acceptor.local_endpoint().port()) +
           "/prod/ticketing";
  }

  // "/prod/ticketing/v1/tickets/ID/replies" → "ID", else "".
  static std::string reply_ticket_id(const std::string& path) {
    const std::string prefix = "/prod/ticketing/v1/tickets/", suffix = "/replies";
    if (path.size() <= prefix.size() + suffix.size() || path.rfind(prefix, 0) != 0 ||
        path.compare(path.size() - suffix.size(), suffix.size(), suffix) != 0)
      return {};
    std::string id = path.substr(prefix.size(), path.size() - prefix.size() - suffix.size());
    return id.find('/') == std::string::npos ? id : std::string();
  }

  // The UUIDs of every "att:UUID" in an HTML message.
  static std::vector<std::string> inline_refs(const std::string& message) {
    std::vector<std::string> refs;
    for (std::size_t p = message.find("att:"); p != std::string::npos; p = message.find("att:", p + 4)) {
      std::size_t e = p + 4;
      while (e < message.size() && (std::isxdigit(static_cast<unsigned char>(message[e])) || message[e] == '-')) ++e;
      if (e > p + 4) refs.push_back(message.substr(p + 4, e - p - 4));
    }
    return refs;
  }

  static std::string call_of(const std::string& method, const std::string& path) {
    if (path == "/v1/auth") return "auth";
    if (path == "/v1/refreshToken") return "refresh";
    if (path == "/v1/apis") return "apis";
    if (path == "/prod/ticketing/v1/users") return method == "GET" ? "find_user" : "users";
    if (path == "/prod/ticketing/v1/media") return "media";
    if (path == "/prod/ticketing/v1/tickets") return "tickets";
    if (!reply_ticket_id(path).empty()) return "replies";
    if (path.rfind("/_fake/", 0) == 0) return "control";
    return "other";
  }

  // Under mu.
  std::optional<Fault> choose_fault(const std::string& call) {
    for (const std::string& key : {call, std::string("any")}) {
      auto it = scripted.find(key);
      if (it != scripted.end() && !it->second.empty()) {
        Fault f = it->second.front();
        it->second.pop_front();
        return f;
      }
    }
    if (fault_rate > 0 && !fault_kinds.empty() && call != "other" && (fault_calls.empty() || fault_calls.count(call))) {
      std::uniform_real_distribution<double> d(0, 1);
      if (d(fault_rng) < fault_rate) return fault_kinds[fault_rng() % fault_kinds.size()];
    }
    return std::nullopt;
  }

  using Response = http::response<http::string_body>;

  static Response json_response(int status, const nlohmann::json& body) {
    Response r{static_cast<http::status>(status), 11};
    r.set(http::field::content_type, "application/json");
    r.body() = body.dump();
    r.prepare_payload();
    return r;
  }
  static Response error(int status, const std::string& message) {
    return json_response(status, {{"error", {{"code", status}, {"message", message}}}});
  }

  // Under mu. 0 if the bearer token is valid, else the status to answer.
  int check_token(const http::request<http::string_body>& req) {
    auto auth = req[http::field::authorization];
    if (auth.substr(0, 7) != "Bearer ") return 401;
    auto it = tokens.find(std::string(auth.substr(7)));
    if (it == tokens.end() || it->second.revoked || it->second.expires_at <= now()) return 401;
    return 0;
  }

  nlohmann::json issue_token() {
    std::string token = random_hex(rng, 40);
    tokens[token] = Token{now() + static_cast<double>(token_lifetime.count())};
    auto lifetime = token_lifetime.count();
    return {{"accessToken", token}, {"expiration", static_cast<long long>(std::time(nullptr)) + lifetime},
            {"expires_in", lifetime}};
  }

  // Under mu: the contract itself.
  Response handle(const http::request<http::string_body>& req, const std::string& call, const std::string& path,
                  const std::string& query, nlohmann::json& recorded_body) {
    const std::string method(req.method_string());
    if (req[std::string("x-inbenta-key")] != options.api_key) return error(401, "invalid x-inbenta-key");
    nlohmann::json body;
    if (method == "POST") {
      body = nlohmann::json::parse(req.body(), nullptr, false);
      if (call != "refresh" && (body.is_discarded() || !body.is_object())) return error(400, "body is not a JSON object");
      recorded_body = body;
      if (call == "media" && body.contains("content") && body["content"].is_string())
        recorded_body["content"] = "(" + std::to_string(body["content"].get<std::string>().size()) + " base64 chars)";
      if (call == "auth" && recorded_body.contains("secret")) recorded_body["secret"] = "(secret)";
    }

    if (call == "auth") {
      if (method != "POST") return error(405, "POST only");
      if (!body.contains("secret") || body["secret"] != options.secret) return error(401, "invalid secret");
      return json_response(200, issue_token());
    }
    if (call == "refresh") {
      if (int s = check_token(req)) return error(s, "invalid or expired token");
      if (refresh_fails) return error(500, "refresh is broken today");
      return json_response(200, issue_token());
    }
    if (int s = check_token(req)) return error(s, "invalid or expired token");
    if (call == "apis") return json_response(200, {{"apis", {{"ticketing", ticketing_base()}, {"chatbot", "https://example.invalid/chatbot"}}}});
    if (forbidden) return error(403, "this key may not use the ticketing API");

    auto str = [&](const char* k) -> std::optional<std::string> {
      if (!body.contains(k) || !body[k].is_string() || body[k].get<std::string>().empty()) return std::nullopt;
      return body[k].get<std::string>();
    };
    if (call == "users") {
      auto name = str("name");
      auto address = str("address");
      if (!name || !address || address->find('@') == std::string::npos) return error(400, "name and address are required");
      for (const auto& u : users) {
        if (lower(u.address) != lower(*address)) continue;
        switch (existing_user_style) {
          case ExistingUserStyle::ConflictWithId: return json_response(409, {{"error", {{"message", "user exists"}}}, {"id", u.id}});
          case ExistingUserStyle::ConflictWithoutId: return error(409, "user exists");
          case ExistingUserStyle::OkWithId: return json_response(200, {{"id", u.id}});
        }
      }
      users.push_back({uuid(rng), *name, *address});
      return json_response(201, {{"id", users.back().id}});
    }
    if (call == "find_user") {
      std::string address;
      if (query.rfind("address=", 0) == 0) address = query.substr(8);
      std::string decoded;
      for (std::size_t i = 0; i < address.size(); ++i) {
        if (address[i] == '%' && i + 2 < address.size()) {
          decoded.push_back(static_cast<char>(std::stoi(address.substr(i + 1, 2), nullptr, 16)));
          i += 2;
        } else {
          decoded.push_back(address[i]);
        }
      }
      nlohmann::json data = nlohmann::json::array();
      for (const auto& u : users)
        if (lower(u.address) == lower(decoded)) data.push_back({{"id", u.id}, {"name", u.name}, {"address", u.address}});
      return json_response(200, {{"data", data}});
    }
    if (call == "media") {
      auto name = str("name");
      auto content = str("content");
      if (!name || !content) return error(400, "name and content are required");
      auto bytes = strict_base64_decode(*content);
      if (!bytes) return error(400, "content is not valid base64");
      media.push_back({uuid(rng), *name, std::move(*bytes), fake_clock()});
      return json_response(201, {{"uuid", media.back().id}});
    }
    if (call == "tickets") {
      auto title = str("title");
      auto message = str("message");
      auto creator = str("creator");
      if (!title || !message || !creator) return error(400, "title, message and creator are required");
      if (std::none_of(users.begin(), users.end(), [&](const FakeUser& u) { return u.id == *creator; }))
        return error(400, "unknown creator " + *creator);
      std::vector<std::string> attachments;
      if (body.contains("attachments")) {
        if (!body["attachments"].is_array()) return error(400, "attachments must be an array");
        for (const auto& a : body["attachments"]) {
          if (!a.is_string()) return error(400, "attachments must be media UUIDs");
          auto m = std::find_if(media.begin(), media.end(), [&](const FakeMedia& x) { return x.id == a; });
          if (m == media.end()) return error(400, "unknown media " + a.get<std::string>());
          if (fake_clock() - m->created_at > 3600) return error(400, "media " + m->id + " expired (older than an hour)");
          attachments.push_back(a.get<std::string>());
        }
      }
      for (const auto& ref : inline_refs(*message))
        if (std::find(attachments.begin(), attachments.end(), ref) == attachments.end())
          return error(400, "inline image att:" + ref + " is not in attachments");
      tickets.push_back({std::to_string(next_ticket++), *title, *message, *creator, attachments, body});
      return json_response(201, {{"data", {{"id", std::stol(tickets.back().id)}}}});
    }
    if (call == "replies") {
      const std::string id = reply_ticket_id(path);
      if (std::none_of(tickets.begin(), tickets.end(), [&](const FakeTicket& t) { return t.id == id; }))
        return error(404, "no ticket " + id);
      if (!str("message") || !str("creator")) return error(400, "message and creator are required");
      return json_response(201, {{"id", uuid(rng)}});
    }
    return error(404, "no such endpoint");
  }

  // Out-of-process control for the fake-messenger executable:
  //   GET  /_fake/state   users, media (with sha256), tickets, request count
  //   POST /_fake/config  {"fault_rate": 0.2, "faults": ["500","429",...],
  //                        "token_lifetime": 2, "revoke_tokens": true,
  //                        "retry_after": "1", "slow_ms": 200,
  //                        "fault_calls": ["media"],   (random faults only there)
  //                        "advance_clock": 3700,      (ages media by that many seconds)
  //                        "delete_users": true}       (an admin deleted every user)
  FakeMessenger* owner = nullptr;
  Response control(const std::string& method, const std::string& path, const std::string& body) {
    if (path == "/_fake/state" && method == "GET") return json_response(200, owner->state_json());
    if (path != "/_fake/config" || method != "POST") return error(404, "unknown control endpoint");
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return error(400, "config must be a JSON object");
    std::vector<Fault> kinds;
    static const std::map<std::string, Fault> kNames = {
        {"500", Fault::Status500}, {"503", Fault::Status503}, {"429", Fault::Status429},
        {"drop-before-response", Fault::DropBeforeResponse}, {"drop-after-response", Fault::DropAfterResponse},
        {"slow", Fault::Slow}};
    if (j.contains("faults"))
      for (const auto& f : j["faults"])
        if (f.is_string() && kNames.count(f.get<std::string>())) kinds.push_back(kNames.at(f.get<std::string>()));
    if (j.contains("fault_rate")) owner->set_fault_rate(j["fault_rate"].get<double>(), kinds);
    if (j.contains("fault_calls")) {
      std::lock_guard lock(mu);
      fault_calls.clear();
      for (const auto& c : j["fault_calls"]) fault_calls.insert(c.get<std::string>());
    }
    if (j.contains("token_lifetime")) owner->set_token_lifetime(std::chrono::seconds(j["token_lifetime"].get<int>()));
    if (j.value("revoke_tokens", false)) owner->revoke_all_tokens();
    if (j.contains("retry_after")) owner->set_retry_after(j["retry_after"].get<std::string>());
    if (j.contains("slow_ms")) owner->set_slow_delay(std::chrono::milliseconds(j["slow_ms"].get<int>()));
    if (j.contains("advance_clock")) owner->advance_clock(std::chrono::seconds(j["advance_clock"].get<int>()));
    if (j.value("delete_users", false)) owner->delete_all_users();
    return json_response(200, {{"ok", true}});
  }

  template <class Stream>
  awaitable<void> serve_requests(Stream& stream, beast::tcp_stream& tcp) {
    beast::flat_buffer buffer;
    for (;;) {
      // Read bodies up to a hard bound, then answer 413 above the API's
      // limit: a server that closed mid-upload would leave the client with
      // a broken pipe instead of the answer.
      http::request_parser<http::string_body> parser;
      parser.body_limit(4 * kMaxRequestBytes);
      tcp.expires_after(std::chrono::seconds(60));
      error_code ec;
      co_await http::async_read(stream, buffer, parser, asio::redirect_error(use_awaitable, ec));
      if (!ec && parser.get().body().size() > kMaxRequestBytes) {
        auto r = error(413, "request larger than 10 MB");
        r.keep_alive(false);
        {
          std::lock_guard lock(mu);
          log.push_back({std::string(parser.get().method_string()), std::string(parser.get().target()), "too-large",
                         now(), 413, std::nullopt, nullptr});
        }
        co_await http::async_write(stream, r, asio::redirect_error(use_awaitable, ec));
        co_return;
      }
      if (ec) co_return;
      auto req = parser.release();
      std::string target(req.target());
      std::string path = target.substr(0, target.find('?'));
      std::string query = target.find('?') == std::string::npos ? "" : target.substr(target.find('?') + 1);
      const std::string call = call_of(std::string(req.method_string()), path);

      if (call == "control") {
        Response res = control(std::string(req.method_string()), path, req.body());
        res.keep_alive(req.keep_alive());
        co_await http::async_write(stream, res, asio::redirect_error(use_awaitable, ec));
        if (ec || !res.keep_alive()) co_return;
        continue;
      }
      std::optional<Fault> fault;
      {
        std::lock_guard lock(mu);
        fault = choose_fault(call);
      }
      RecordedRequest rec{std::string(req.method_string()), target, call, now(), 0,
                          fault ? std::optional<std::string>(fault_name(*fault)) : std::nullopt, nullptr};
      if (fault == Fault::DropBeforeResponse) {
        std::lock_guard lock(mu);
        log.push_back(std::move(rec));
        co_return;  // closes without processing
      }
      if (fault == Fault::Slow) {
        asio::steady_timer t(io, slow_delay);
        co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
      }
      Response res;
      if (fault == Fault::Status500 || fault == Fault::Status503 || fault == Fault::Status429) {
        int status = *fault == Fault::Status500 ? 500 : *fault == Fault::Status503 ? 503 : 429;
        res = error(status, status == 429 ? "slow down" : "temporarily unavailable");
        std::lock_guard lock(mu);
        if (status == 429) res.set(http::field::retry_after, retry_after);
      } else {
        std::lock_guard lock(mu);
        res = handle(req, call, path, query, rec.body);
      }
      res.keep_alive(req.keep_alive() && fault != Fault::DropAfterResponse);
      rec.status = static_cast<int>(res.result_int());
      {
        std::lock_guard lock(mu);
        log.push_back(std::move(rec));
      }
      co_await http::async_write(stream, res, asio::redirect_error(use_awaitable, ec));
      if (ec || !res.keep_alive()) co_return;
    }
  }

  awaitable<void> session(tcp::socket socket) {
    beast::tcp_stream tcp(std::move(socket));
    if (!tls) {
      co_await serve_requests(tcp, tcp);
      co_return;
    }
    beast::ssl_stream<beast::tcp_stream> stream(std::move(tcp), *tls);
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(10));
    error_code ec;
    co_await stream.async_handshake(ssl::stream_base::server, asio::redirect_error(use_awaitable, ec));
    if (ec) {
      std::lock_guard lock(mu);
      log.push_back({"", "", "tls-handshake-failed", now(), 0, std::nullopt, nullptr});
      co_return;
    }
    co_await serve_requests(stream, beast::get_lowest_layer(stream));
  }

  awaitable<void> accept_loop() {
    for (;;) {
      error_code ec;
      tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
      if (ec) co_return;
      asio::co_spawn(io, session(std::move(socket)), asio::detached);
    }
  }
};

FakeMessenger::FakeMessenger(FakeMessengerOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->owner = this;
  impl_->options = std::move(options);
  impl_->token_lifetime = impl_->options.token_lifetime;
  if (!impl_->options.cert_file.empty()) {
    impl_->tls.emplace(ssl::context::tls_server);
    impl_->tls->use_certificate_chain_file(impl_->options.cert_file);
    impl_->tls->use_private_key_file(impl_->options.key_file, ssl::context::pem);
  }
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), impl_->options.port);
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  impl_->acceptor.bind(ep);
  impl_->acceptor.listen();
  port_ = impl_->acceptor.local_endpoint().port();
  asio::co_spawn(impl_->io, impl_->accept_loop(), asio::detached);
  for (int i = 0; i < std::max(1, impl_->options.threads); ++i) threads_.emplace_back([this] { impl_->io.run(); });
}

FakeMessenger::~FakeMessenger() {
  impl_->io.stop();
  for (auto& t : threads_) t.join();
}

std::string FakeMessenger::auth_url() const {
  return std::string(impl_->tls ? "https" : "http") + "://" + impl_->options.host + ":" + std::to_string(port_) + "/v1";
}

void FakeMessenger::set_fault_rate(double rate, std::vector<Fault> kinds, std::uint64_t seed) {
  std::lock_guard lock(impl_->mu);
  impl_->fault_rate = rate;
  impl_->fault_kinds = std::move(kinds);
  impl_->fault_rng.seed(seed);
}
void FakeMessenger::script_faults(const std::string& call, std::vector<Fault> faults) {
  std::lock_guard lock(impl_->mu);
  for (Fault f : faults) impl_->scripted[call].push_back(f);
}
void FakeMessenger::set_retry_after(std::string value) {
  std::lock_guard lock(impl_->mu);
  impl_->retry_after = std::move(value);
}
void FakeMessenger::set_slow_delay(std::chrono::milliseconds delay) {
  std::lock_guard lock(impl_->mu);
  impl_->slow_delay = delay;
}
void FakeMessenger::set_token_lifetime(std::chrono::seconds lifetime) {
  std::lock_guard lock(impl_->mu);
  impl_->token_lifetime = lifetime;
}
void FakeMessenger::revoke_all_tokens() {
  std::lock_guard lock(impl_->mu);
  for (auto& [token, t] : impl_->tokens) t.revoked = true;
}
void FakeMessenger::set_refresh_fails(bool fails) {
  std::lock_guard lock(impl_->mu);
  impl_->refresh_fails = fails;
}
void FakeMessenger::set_forbidden(bool forbidden) {
  std::lock_guard lock(impl_->mu);
  impl_->forbidden = forbidden;
}
void FakeMessenger::set_existing_user_style(ExistingUserStyle style) {
  std::lock_guard lock(impl_->mu);
  impl_->existing_user_style = style;
}
void FakeMessenger::delete_all_users() {
  std::lock_guard lock(impl_->mu);
  impl_->users.clear();
}

void FakeMessenger::advance_clock(std::chrono::seconds by) {
  std::lock_guard lock(impl_->mu);
  impl_->clock_offset += static_cast<double>(by.count());
}

std::vector<RecordedRequest> FakeMessenger::requests() const {
  std::lock_guard lock(impl_->mu);
  return impl_->log;
}
std::size_t FakeMessenger::count(const std::string& call) const {
  std::lock_guard lock(impl_->mu);
  return static_cast<std::size_t>(std::count_if(impl_->log.begin(), impl_->log.end(), [&](const RecordedRequest& r) {
    return r.call == call && r.status != 0;
  }));
}
std::vector<FakeUser> FakeMessenger::users() const {
  std::lock_guard lock(impl_->mu);
  return impl_->users;
}
std::vector<FakeMedia> FakeMessenger::media() const {
  std::lock_guard lock(impl_->mu);
  return impl_->media;
}
std::vector<FakeTicket> FakeMessenger::tickets() const {
  std::lock_guard lock(impl_->mu);
  return impl_->tickets;
}

nlohmann::json FakeMessenger::state_json() const {
  std::lock_guard lock(impl_->mu);
  nlohmann::json j;
  j["users"] = nlohmann::json::array();
  for (const auto& u : impl_->users) j["users"].push_back({{"id", u.id}, {"name", u.name}, {"address", u.address}});
  j["media"] = nlohmann::json::array();
  for (const auto& m : impl_->media) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(m.content.data(), m.content.size(), digest, &len, EVP_sha256(), nullptr);
    std::string hex;
    for (unsigned i = 0; i < len; ++i) {
      static constexpr char kHex[] = "0123456789abcdef";
      hex.push_back(kHex[digest[i] >> 4]);
      hex.push_back(kHex[digest[i] & 15]);
    }
    j["media"].push_back({{"id", m.id}, {"name", m.name}, {"size", m.content.size()}, {"sha256", hex}});
  }
  j["tickets"] = nlohmann::json::array();
  for (const auto& t : impl_->tickets) j["tickets"].push_back(t.request);
  for (std::size_t i = 0; i < impl_->tickets.size(); ++i) j["tickets"][i]["id"] = impl_->tickets[i].id;
  j["requests"] = impl_->log.size();
  return j;
}

}  // namespace mailgate::testing
