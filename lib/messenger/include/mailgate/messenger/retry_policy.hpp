// The one place that decides what a Messenger API answer means for the
// message (messenger-api.md "Errors"): retry now, retry later, stop.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>

namespace mailgate::messenger {

enum class Verdict {
  Success,
  ReauthenticateOnce,  // 401, or the gateway's 403: the token expired or is invalid
  RetryLater,          // 5xx, 408, 429, network trouble: temporary
  Forbidden,           // 403 by status alone; see classify() for the body's say
  Permanent,           // other 4xx, or 403 with an API error body: this message can never succeed as sent
  Outage,              // 410: the endpoint was turned off; not this message's fault, keep it queued
};

// By status alone.
Verdict classify_status(int status);
// By status and body, as messenger-api.md "Errors" says: a 403 from the
// gateway ({"Message": ...}, or anything but an API error body) is what an
// expired or invalid token gets, so it asks for a new session; a 403 with
// an API error body ({"error": ...} / {"errors": [...]}) refuses this
// request for good.
Verdict classify(int status, std::string_view body);
// True when the body has the API's own error shape ({"error"} or {"errors"}),
// false for the gateway's {"Message"} and anything else.
bool is_api_error_body(std::string_view body);

struct BackoffSettings {
  std::chrono::milliseconds base{500};
  std::chrono::milliseconds cap{60'000};
  std::chrono::milliseconds max_retry_after{3'600'000};  // distrust longer Retry-After
};

// Exponential backoff with full jitter (AWS architecture blog, "Exponential
// Backoff And Jitter"): uniform in [0, min(cap, base * 2^attempt)].
std::chrono::milliseconds backoff_delay(const BackoffSettings& s, int attempt, std::mt19937_64& rng);

// Retry-After as delta-seconds or HTTP-date (RFC 9110 §10.2.3), relative to
// `now` (UNIX seconds). nullopt when absent or unreadable; capped.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value, std::int64_t now_unix,
                                                           const BackoffSettings& s);

// The API's error text from a JSON error body ({"error":{"code","message"}},
// {"errors":[{"message","code"}]}, the gateway's {"Message"}, {"message"},
// {"error": "..."}), else the start of the body.
std::string api_error_message(std::string_view body);

}  // namespace mailgate::messenger
