// The fake's server: one coroutine per connection on a private io_context.
// Strictness mirrors messenger-api.md: keys, token expiry and revocation,
// the 10 MB request limit, creators and media that must exist, att: tags
// that must be listed, media older than an hour refused, replies only on
// tickets that exist.
#include "fake_messenger.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <map>
#include <set>
#include <variant>

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
    case Fault::Status502: return "502";
    case Fault::Status504: return "504";
    case Fault::Gateway403: return "gateway-403";
    case Fault::ApiForbidden: return "api-403";
    case Fault::DropAfterProcessing: return "drop-after-processing";
    case Fault::Hang: return "hang";
    case Fault::SlowAnswer: return "slow-answer";
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
  std::string retry_after;  // Retry-After on an injected 429; "" for none (the API documents none)
  std::chrono::milliseconds slow_delay{200};
  bool refresh_fails = false;
  bool forbidden = false;
  bool auth_includes_apis = true;
  int lookup_misses = 0;              // next GET /users answers empty (someone creates it meanwhile)
  std::set<std::string> gone_calls;   // answered 410
  ExistingUserStyle existing_user_style = ExistingUserStyle::Refused;
  long next_ticket = 1000;
  long next_user = 1;
  long next_reply = 5000;
  // Rate limits over the ticketing calls: a per-minute throttle and an hourly quota.
  struct Window {
    long limit;
    double length;  // seconds
    double start = 0;
    long used = 0;
  };
  Window throttle{1'000'000, 60}, quota{10'000'000, 3600};
  std::string fault_reset = "1";  // x-throttle-reset of an injected 429

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
  // "/prod/ticketing/v1/tickets/ID" → "ID", else "".
  static std::string ticket_path_id(const std::string& path) {
    const std::string prefix = "/prod/ticketing/v1/tickets/";
    if (path.size() <= prefix.size() || path.rfind(prefix, 0) != 0) return {};
    std::string id = path.substr(prefix.size());
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
    if (path == "/prod/ticketing/v1/tickets") return method == "GET" ? "find_ticket" : "tickets";
    if (!reply_ticket_id(path).empty()) return method == "GET" ? "find_replies" : method == "POST" ? "replies" : "other";
    if (!ticket_path_id(path).empty()) return method == "GET" ? "get_ticket" : method == "PUT" ? "update_ticket" : "other";
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
  // The API's own error body.
  static Response error(int status, const std::string& message) {
    return json_response(status, {{"error", {{"code", status}, {"message", message}}}});
  }
  // The gateway's: a wrong key, a malformed Authorization, an expired or
  // invalid token all get this 403 (messenger-api.md "Errors").
  static Response gateway_403() {
    return json_response(403, {{"Message", "User is not authorized to access this resource with an explicit deny"}});
  }

  // Under mu. True if the bearer token is valid.
  bool token_ok(const http::request<http::string_body>& req) {
    auto auth = req[http::field::authorization];
    if (auth.substr(0, 7) != "Bearer ") return false;
    auto it = tokens.find(std::string(auth.substr(7)));
    return it != tokens.end() && !it->second.revoked && it->second.expires_at > fake_clock();
  }

  nlohmann::json issue_token(bool with_apis) {
    std::string token = random_hex(rng, 40);
    tokens[token] = Token{fake_clock() + static_cast<double>(token_lifetime.count())};
    auto lifetime = token_lifetime.count();
    nlohmann::json j = {{"accessToken", token},
                        {"expiration", static_cast<long long>(std::time(nullptr)) + lifetime},
                        {"expires_in", lifetime}};
    if (with_apis) j["apis"] = {{"ticketing", ticketing_base()}, {"chatbot", "https://example.invalid/chatbot"}};
    return j;
  }

  static long long unix_now(double offset) { return static_cast<long long>(std::time(nullptr) + offset); }

  nlohmann::json ticket_json(const FakeTicket& t) const {
    return {{"id", std::stol(t.id)}, {"uuid", std::stol(t.id)}, {"full_uuid", t.full_uuid}, {"title", t.title},
            {"creator", std::stol(t.creator)}, {"status", t.status}, {"creation_date", t.creation_date}};
  }
  static nlohmann::json reply_json(const FakeReply& r) {
    return {{"id", std::stol(r.id)},           {"uuid", std::stol(r.id)},      {"type", r.type},
            {"creator", std::stol(r.creator)}, {"message", r.message},         {"attachments", r.attachments},
            {"creation_date", r.creation_date}};
  }
  // Under mu. The ticket with this id (as a path or a control request names it), or null.
  FakeTicket* find_ticket(const std::string& id) {
    auto it = std::find_if(tickets.begin(), tickets.end(), [&](const FakeTicket& t) { return t.id == id; });
    return it == tickets.end() ? nullptr : &*it;
  }
  // Under mu. Adds a reply to `t`; its id.
  std::string add_reply(FakeTicket& t, std::string type, std::string creator, std::string message,
                        std::vector<std::string> attachments) {
    FakeReply r{std::to_string(next_reply++), std::move(type), std::move(creator), std::move(message),
                std::move(attachments), unix_now(clock_offset)};
    t.replies.push_back(std::move(r));
    return t.replies.back().id;
  }
  // Under mu. The media ids of a POST's "attachments" (each uploaded, at
  // most an hour old), and every inline att: of its message listed there;
  // else the API's 400.
  std::variant<std::vector<std::string>, Response> checked_attachments(const nlohmann::json& body,
                                                                       const std::string& message) {
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
    for (const auto& ref : inline_refs(message))
      if (std::find(attachments.begin(), attachments.end(), ref) == attachments.end())
        return error(400, "inline image att:" + ref + " is not in attachments");
    return attachments;
  }

  static std::string url_decode(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
          std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
        out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
        i += 2;
      } else {
        out.push_back(s[i] == '+' ? ' ' : s[i]);
      }
    }
    return out;
  }
  static std::map<std::string, std::string> query_params(const std::string& query) {
    std::map<std::string, std::string> out;
    std::size_t p = 0;
    while (p <= query.size()) {
      std::size_t amp = query.find('&', p);
      std::string part = query.substr(p, amp == std::string::npos ? std::string::npos : amp - p);
      std::size_t eq = part.find('=');
      if (!part.empty()) out[part.substr(0, eq)] = eq == std::string::npos ? "" : url_decode(part.substr(eq + 1));
      if (amp == std::string::npos) break;
      p = amp + 1;
    }
    return out;
  }

  // The IQL subset mailgate uses: `FIELD IS VALUE [AND FIELD IS VALUE]...`,
  // FIELD creator or title, VALUE an integer or a double-quoted string with
  // \" and \\ escapes. nullopt: not understood (the API answers 400).
  static std::optional<std::vector<std::pair<std::string, nlohmann::json>>> parse_iql(const std::string& q) {
    std::vector<std::pair<std::string, nlohmann::json>> terms;
    std::size_t p = 0;
    auto skip = [&] { while (p < q.size() && q[p] == ' ') ++p; };
    auto word = [&] {
      skip();
      std::size_t b = p;
      while (p < q.size() && (std::isalnum(static_cast<unsigned char>(q[p])) || q[p] == '_')) ++p;
      return q.substr(b, p - b);
    };
    for (;;) {
      std::string field = word();
      if (field != "creator" && field != "title") return std::nullopt;
      if (word() != "IS") return std::nullopt;
      skip();
      if (p < q.size() && q[p] == '"') {
        std::string v;
        ++p;
        for (; p < q.size() && q[p] != '"'; ++p) {
          if (q[p] == '\\' && p + 1 < q.size()) ++p;
          v.push_back(q[p]);
        }
        if (p >= q.size()) return std::nullopt;
        ++p;
        terms.emplace_back(field, v);
      } else {
        std::string n = word();
        if (n.empty() || !std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; }))
          return std::nullopt;
        terms.emplace_back(field, std::stol(n));
      }
      skip();
      if (p == q.size()) return terms;
      if (word() != "AND") return std::nullopt;
    }
  }

  // Under mu: counts a ticketing request; the headers every answer carries;
  // true when a limit is spent (then the answer is 429).
  bool count_request(Response& headers_out, bool& limited) {
    const double t = now();
    limited = false;
    for (Window* w : {&throttle, &quota}) {
      if (t - w->start >= w->length) {
        w->start = t - std::fmod(t - w->start, w->length);
        w->used = 0;
      }
      if (w->used >= w->limit) limited = true;
    }
    if (!limited)
      for (Window* w : {&throttle, &quota}) ++w->used;
    auto set = [&](const char* usage, const char* reset, const Window& w) {
      long pct = w.limit > 0 ? std::min<long>(100, w.used * 100 / w.limit) : 0;
      headers_out.set(usage, std::to_string(pct));
      headers_out.set(reset, std::to_string(static_cast<long>(std::ceil(w.start + w.length - t))));
    };
    set("x-throttle-usage", "x-throttle-reset", throttle);
    set("x-quota-usage", "x-quota-reset", quota);
    return limited;
  }

  // Under mu: the contract itself.
  Response handle(const http::request<http::string_body>& req, const std::string& call, const std::string& path,
                  const std::string& query, nlohmann::json& recorded_body) {
    const std::string method(req.method_string());
    if (req[std::string("x-inbenta-key")] != options.api_key) return gateway_403();
    nlohmann::json body;
    if (method == "POST" || method == "PUT") {
      body = nlohmann::json::parse(req.body(), nullptr, false);
      if (call != "refresh" && (body.is_discarded() || !body.is_object())) return error(400, "body is not a JSON object");
      recorded_body = body;
      if (call == "media" && body.contains("content") && body["content"].is_string())
        recorded_body["content"] = "(" + std::to_string(body["content"].get<std::string>().size()) + " base64 chars)";
      if (call == "auth" && recorded_body.contains("secret")) recorded_body["secret"] = "(secret)";
    }

    if (call == "auth") {
      if (method != "POST") return error(405, "POST only");
      if (!body.contains("secret") || body["secret"] != options.secret) return error(400, "invalid secret: Secret token not valid");
      return json_response(200, issue_token(auth_includes_apis));
    }
    if (call == "refresh") {
      if (!token_ok(req)) return gateway_403();
      if (refresh_fails) return error(500, "refresh is broken today");
      return json_response(200, issue_token(false));  // a refresh names no apis
    }
    if (!token_ok(req)) return gateway_403();
    if (call == "apis") return json_response(200, {{"apis", {{"ticketing", ticketing_base()}, {"chatbot", "https://example.invalid/chatbot"}}}});
    if (forbidden) return gateway_403();  // the key may not use the ticketing API: a fresh token does not help
    if (gone_calls.count(call)) return error(410, "this endpoint has been turned off");

    auto str = [&](const char* k) -> std::optional<std::string> {
      if (!body.contains(k) || !body[k].is_string() || body[k].get<std::string>().empty()) return std::nullopt;
      return body[k].get<std::string>();
    };
    // Ids are integers and must be sent as JSON numbers.
    auto integer = [&](const char* k) -> std::optional<long> {
      if (!body.contains(k) || !body[k].is_number_integer()) return std::nullopt;
      return body[k].get<long>();
    };
    auto user_exists = [&](long id) {
      return std::any_of(users.begin(), users.end(), [&](const FakeUser& u) { return u.id == std::to_string(id); });
    };
    if (call == "users") {
      auto name = str("name");
      auto address = str("address");
      if (!name || !address || address->find('@') == std::string::npos) return error(400, "name and address are required");
      for (const auto& u : users) {
        if (lower(u.address) != lower(*address)) continue;
        switch (existing_user_style) {
          case ExistingUserStyle::Refused:
            return json_response(400, {{"errors", {{{"message", "A user with this address already exists"}, {"code", 4001}}}}});
          case ExistingUserStyle::ConflictWithId:
            return json_response(409, {{"error", {{"message", "user exists"}}}, {"id", std::stol(u.id)}});
          case ExistingUserStyle::OkWithId: return json_response(200, {{"uuid", std::stol(u.id)}});
        }
      }
      users.push_back({std::to_string(next_user++), *name, *address});
      return json_response(201, {{"uuid", std::stol(users.back().id)}, {"hash_uuid", random_hex(rng, 32)}});
    }
    if (call == "find_user") {
      auto params = query_params(query);
      if (!params.count("address")) return error(400, "address is required");
      nlohmann::json data = nlohmann::json::array();
      if (lookup_misses > 0) {
        --lookup_misses;
      } else {
        for (const auto& u : users)
          if (lower(u.address) == lower(params["address"]))
            data.push_back({{"id", std::stol(u.id)}, {"name", u.name}, {"address", u.address}});
      }
      return json_response(200, {{"data", data}});
    }
    if (call == "find_ticket") {
      auto params = query_params(query);
      nlohmann::json data = nlohmann::json::array();
      if (params.count("external_id")) {
        for (const auto& t : tickets)
          if (!t.external_id.empty() && t.external_id == params["external_id"]) data.push_back(ticket_json(t));
      } else if (params.count("iql")) {
        auto terms = parse_iql(params["iql"]);
        if (!terms) return error(400, "IQL query not understood");
        for (const auto& t : tickets) {
          bool all = true;
          for (const auto& [field, value] : *terms) {
            if (field == "title") all &= value.is_string() && value.get<std::string>() == t.title;
            if (field == "creator") all &= value.is_number_integer() && std::to_string(value.get<long>()) == t.creator;
          }
          if (all) data.push_back(ticket_json(t));
        }
      } else {
        return error(400, "external_id or iql is required");
      }
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
      if (!title || !message || !body.contains("creator")) return error(400, "title, message and creator are required");
      auto creator = integer("creator");
      if (!creator) return error(400, "creator must be an integer user id, not " + body["creator"].dump());
      if (!user_exists(*creator)) return error(400, "unknown creator " + std::to_string(*creator));
      for (const char* k : {"source", "queue"})
        if (body.contains(k) && !body[k].is_number_integer()) return error(400, std::string(k) + " must be an integer");
      auto checked = checked_attachments(body, *message);
      if (auto* refused = std::get_if<Response>(&checked)) return std::move(*refused);
      auto& attachments = std::get<std::vector<std::string>>(checked);
      FakeTicket t;
      t.id = std::to_string(next_ticket++);
      t.full_uuid = "TCK-" + t.id + "-" + random_hex(rng, 6);
      t.title = *title;
      t.message = *message;
      t.creator = std::to_string(*creator);
      t.attachments = attachments;
      t.request = body;
      t.external_id = str("external_id").value_or("");
      t.creation_date = unix_now(clock_offset);
      tickets.push_back(std::move(t));
      return json_response(201, {{"uuid", std::stol(tickets.back().id)}, {"full_uuid", tickets.back().full_uuid}});
    }
    if (call == "replies") {
      FakeTicket* t = find_ticket(reply_ticket_id(path));
      if (!t) return error(404, "no ticket " + reply_ticket_id(path));
      auto message = str("message");
      if (!message || !body.contains("creator")) return error(400, "message and creator are required");
      auto creator = integer("creator");
      if (!creator) return error(400, "creator must be an integer user id, not " + body["creator"].dump());
      if (!user_exists(*creator)) return error(400, "unknown creator " + std::to_string(*creator));
      auto checked = checked_attachments(body, *message);
      if (auto* refused = std::get_if<Response>(&checked)) return std::move(*refused);
      std::string id = add_reply(*t, "reply", std::to_string(*creator), *message,
                                 std::move(std::get<std::vector<std::string>>(checked)));
      return json_response(201, {{"uuid", std::stol(id)}});
    }
    if (call == "find_replies") {
      FakeTicket* t = find_ticket(reply_ticket_id(path));
      if (!t) return error(404, "no ticket " + reply_ticket_id(path));
      nlohmann::json data = nlohmann::json::array();
      for (const auto& r : t->replies) data.push_back(reply_json(r));
      return json_response(200, {{"data", data}});
    }
    if (call == "get_ticket") {
      FakeTicket* t = find_ticket(ticket_path_id(path));
      if (!t) return error(404, "no ticket " + ticket_path_id(path));
      return json_response(200, ticket_json(*t));
    }
    if (call == "update_ticket") {
      FakeTicket* t = find_ticket(ticket_path_id(path));
      if (!t) return error(404, "no ticket " + ticket_path_id(path));
      if (body.contains("status")) {
        if (!body["status"].is_string() || body["status"].get<std::string>().empty())
          return error(400, "status must be a non-empty string, not " + body["status"].dump());
        t->status = body["status"].get<std::string>();
      }
      return json_response(200, ticket_json(*t));
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
  //                        "delete_users": true,       (an admin deleted every user)
  //                        "throttle_limit": 60, "quota_limit": 1000,  (requests per minute / hour)
  //                        "fault_reset": "30",        (x-throttle-reset of an injected 429)
  //                        "gone_calls": ["tickets"],  (answered 410)
  //                        "forbidden": true,          (the gateway refuses every token)
  //                        "auth_includes_apis": false,  (discovery needs GET /apis)
  //                        "ticket_status": {"id": "7", "status": "closed"},  (an agent closed it)
  //                        "agent_answer": {"ticket_id": "7", "message": "<p>Hi</p>"}}  (an agent answered)
  //                       a ticket_status or agent_answer naming an unknown ticket: 404
  // The ticketing endpoints (paths under /prod/ticketing/v1): GET/POST /users,
  // POST /media, GET/POST /tickets, GET/PUT /tickets/{id}, GET/POST
  // /tickets/{id}/replies; RecordedRequest::call names each.
  FakeMessenger* owner = nullptr;
  // A ticket id in a control request, as a number (7) or text ("7").
  static std::string control_id(const nlohmann::json& request, const char* key) {
    if (!request.contains(key)) return {};
    const auto& v = request[key];
    return v.is_string() ? v.get<std::string>() : v.is_number_integer() ? v.dump() : std::string();
  }
  Response control(const std::string& method, const std::string& path, const std::string& body) {
    if (path == "/_fake/state" && method == "GET") return json_response(200, owner->state_json());
    if (path != "/_fake/config" || method != "POST") return error(404, "unknown control endpoint");
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return error(400, "config must be a JSON object");
    std::vector<Fault> kinds;
    static const std::map<std::string, Fault> kNames = {
        {"500", Fault::Status500}, {"503", Fault::Status503}, {"429", Fault::Status429},
        {"drop-before-response", Fault::DropBeforeResponse}, {"drop-after-response", Fault::DropAfterResponse},
        {"slow", Fault::Slow}, {"502", Fault::Status502}, {"504", Fault::Status504},
        {"gateway-403", Fault::Gateway403}, {"api-403", Fault::ApiForbidden},
        {"drop-after-processing", Fault::DropAfterProcessing}, {"hang", Fault::Hang},
        {"slow-answer", Fault::SlowAnswer}};
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
    if (j.contains("throttle_limit") || j.contains("quota_limit"))
      owner->set_rate_limits(j.value("throttle_limit", 1'000'000L), j.value("quota_limit", 10'000'000L));
    if (j.contains("fault_reset")) {
      std::lock_guard lock(mu);
      fault_reset = j["fault_reset"].get<std::string>();
    }
    if (j.contains("gone_calls")) {
      std::lock_guard lock(mu);
      gone_calls.clear();
      for (const auto& c : j["gone_calls"]) gone_calls.insert(c.get<std::string>());
    }
    if (j.contains("forbidden")) owner->set_forbidden(j["forbidden"].get<bool>());
    if (j.contains("auth_includes_apis")) owner->set_auth_includes_apis(j["auth_includes_apis"].get<bool>());
    nlohmann::json answer = {{"ok", true}};
    if (j.contains("ticket_status")) {
      const auto& c = j["ticket_status"];
      if (!c.is_object() || !c.contains("status") || !c["status"].is_string())
        return error(400, "ticket_status needs id and status");
      if (!owner->set_ticket_status(control_id(c, "id"), c["status"].get<std::string>()))
        return error(404, "no ticket " + control_id(c, "id"));
    }
    if (j.contains("agent_answer")) {
      const auto& c = j["agent_answer"];
      if (!c.is_object() || !c.contains("message") || !c["message"].is_string())
        return error(400, "agent_answer needs ticket_id and message");
      std::string id = owner->add_agent_answer(control_id(c, "ticket_id"), c["message"].get<std::string>());
      if (id.empty()) return error(404, "no ticket " + control_id(c, "ticket_id"));
      answer["answer_id"] = std::stol(id);
    }
    return json_response(200, answer);
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
      if (fault == Fault::Hang) {
        asio::steady_timer t(io, slow_delay);
        co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
        std::lock_guard lock(mu);
        log.push_back(std::move(rec));
        co_return;  // closes without processing
      }
      if (fault == Fault::Slow) {
        asio::steady_timer t(io, slow_delay);
        co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
      }
      Response res;
      if (fault == Fault::Status500 || fault == Fault::Status503 || fault == Fault::Status429 ||
          fault == Fault::Status502 || fault == Fault::Status504) {
        int status = *fault == Fault::Status500   ? 500
                     : *fault == Fault::Status503 ? 503
                     : *fault == Fault::Status502 ? 502
                     : *fault == Fault::Status504 ? 504
                                                  : 429;
        res = status == 502 || status == 504 ? json_response(status, {{"Message", "Endpoint request timed out"}})
                                             : error(status, status == 429 ? "slow down" : "temporarily unavailable");
        std::lock_guard lock(mu);
        if (status == 429) {
          // A spent per-minute limit: the documented headers; Retry-After
          // only when a test asks for it (the API documents none).
          res.set("x-throttle-usage", "100");
          res.set("x-throttle-reset", fault_reset);
          res.set("x-quota-usage", "1");
          res.set("x-quota-reset", "3600");
          if (!retry_after.empty()) res.set(http::field::retry_after, retry_after);
        }
      } else if (fault == Fault::Gateway403) {
        res = gateway_403();
      } else if (fault == Fault::ApiForbidden) {
        res = error(403, "this key may not write to that queue");
      } else {
        std::lock_guard lock(mu);
        bool limited = false;
        const bool ticketing = call != "auth" && call != "refresh" && call != "apis";
        if (ticketing && count_request(res, limited) && limited) {
          Response r429 = error(429, "rate limit exceeded");
          for (const auto& f : res) r429.set(f.name_string(), f.value());
          res = std::move(r429);
        } else {
          Response answer = handle(req, call, path, query, rec.body);
          if (ticketing)
            for (const auto& f : res) answer.set(f.name_string(), f.value());
          res = std::move(answer);
        }
      }
      if (fault == Fault::DropAfterProcessing) {
        std::lock_guard lock(mu);
        log.push_back(std::move(rec));  // status 0: no answer left the fake
        co_return;
      }
      if (fault == Fault::SlowAnswer) {  // the API has done the work; its answer is late
        asio::steady_timer t(io, slow_delay);
        co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
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
void FakeMessenger::set_auth_includes_apis(bool includes) {
  std::lock_guard lock(impl_->mu);
  impl_->auth_includes_apis = includes;
}
void FakeMessenger::set_lookup_misses(int n) {
  std::lock_guard lock(impl_->mu);
  impl_->lookup_misses = n;
}
void FakeMessenger::set_gone(const std::string& call, bool gone) {
  std::lock_guard lock(impl_->mu);
  if (gone) impl_->gone_calls.insert(call);
  else impl_->gone_calls.erase(call);
}
void FakeMessenger::set_rate_limits(long per_minute, long per_hour) {
  std::lock_guard lock(impl_->mu);
  impl_->throttle.limit = per_minute;
  impl_->quota.limit = per_hour;
}
void FakeMessenger::set_fault_reset(std::string seconds) {
  std::lock_guard lock(impl_->mu);
  impl_->fault_reset = std::move(seconds);
}
void FakeMessenger::set_throttle_window(std::chrono::seconds length) {
  std::lock_guard lock(impl_->mu);
  impl_->throttle.length = static_cast<double>(length.count());
}
void FakeMessenger::forget_ticket(const std::string& id) {
  std::lock_guard lock(impl_->mu);
  auto& t = impl_->tickets;
  t.erase(std::remove_if(t.begin(), t.end(), [&](const FakeTicket& x) { return x.id == id; }), t.end());
}
bool FakeMessenger::set_ticket_status(const std::string& ticket_id, const std::string& status) {
  std::lock_guard lock(impl_->mu);
  FakeTicket* t = impl_->find_ticket(ticket_id);
  if (t) t->status = status;
  return t != nullptr;
}
std::string FakeMessenger::add_agent_answer(const std::string& ticket_id, const std::string& message) {
  std::lock_guard lock(impl_->mu);
  FakeTicket* t = impl_->find_ticket(ticket_id);
  return t ? impl_->add_reply(*t, "answer", std::to_string(kFakeAgentId), message, {}) : std::string();
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
  for (const auto& u : impl_->users)
    j["users"].push_back({{"id", std::stol(u.id)}, {"name", u.name}, {"address", u.address}});  // integers, as the API
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
  for (std::size_t i = 0; i < impl_->tickets.size(); ++i) {
    j["tickets"][i]["id"] = std::stol(impl_->tickets[i].id);
    j["tickets"][i]["full_uuid"] = impl_->tickets[i].full_uuid;
    j["tickets"][i]["status"] = impl_->tickets[i].status;
    j["tickets"][i]["replies"] = nlohmann::json::array();
    for (const auto& r : impl_->tickets[i].replies) j["tickets"][i]["replies"].push_back(Impl::reply_json(r));
  }
  j["requests"] = impl_->log.size();
  return j;
}

}  // namespace mailgate::testing
