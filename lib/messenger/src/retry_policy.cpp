// Status classification, backoff and Retry-After parsing.
#include "mailgate/messenger/retry_policy.hpp"

#include "mailgate/net/backoff.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <ctime>

namespace mailgate::messenger {

Verdict classify_status(int status) {
  if (status >= 200 && status < 300) return Verdict::Success;
  if (status == 401) return Verdict::ReauthenticateOnce;
  if (status == 403) return Verdict::Forbidden;
  if (status == 410) return Verdict::Outage;
  if (status == 408 || status == 425 || status == 429 || status >= 500) return Verdict::RetryLater;
  return Verdict::Permanent;
}

bool is_api_error_body(std::string_view body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  return !j.is_discarded() && j.is_object() && (j.contains("error") || j.contains("errors"));
}

Verdict classify(int status, std::string_view body) {
  if (status == 403) return is_api_error_body(body) ? Verdict::Permanent : Verdict::ReauthenticateOnce;
  return classify_status(status);
}

std::chrono::milliseconds backoff_delay(const BackoffSettings& s, int attempt, std::mt19937_64& rng) {
  return net::backoff(s.base, s.cap, attempt, net::kFullJitter, rng);
}

std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value, std::int64_t now_unix,
                                                           const BackoffSettings& s) {
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  std::int64_t seconds;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (value.size() > 9) return s.max_retry_after;
    seconds = std::stoll(std::string(value));
  } else {
    std::tm tm{};
    std::string text(value);
    const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end != '\0') return std::nullopt;
    seconds = static_cast<std::int64_t>(timegm(&tm)) - now_unix;
    if (seconds < 0) seconds = 0;
  }
  auto ms = std::chrono::milliseconds(seconds * 1000);
  return std::min(ms, s.max_retry_after);
}

std::string api_error_message(std::string_view body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object()) {
    auto text = [](const nlohmann::json& v) -> std::string {
      if (v.is_string()) return v.get<std::string>();
      if (v.is_object() && v.contains("message") && v["message"].is_string()) return v["message"].get<std::string>();
      return {};
    };
    if (j.contains("error")) {
      if (auto t = text(j["error"]); !t.empty()) return t;
    }
    if (j.contains("errors") && j["errors"].is_array()) {
      std::string all;
      for (const auto& e : j["errors"])
        if (auto t = text(e); !t.empty()) all += (all.empty() ? "" : "; ") + t;
      if (!all.empty()) return all;
    }
    if (j.contains("Message") && j["Message"].is_string()) return j["Message"].get<std::string>();  // the gateway
    if (auto t = text(j); !t.empty()) return t;
  }
  std::string s(body.substr(0, 200));
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 32) c = ' ';
  return s.empty() ? "(empty response body)" : s;
}

}  // namespace mailgate::messenger
