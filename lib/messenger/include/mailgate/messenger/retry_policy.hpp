// The one place that decides what a Messenger API answer means for the
// message (messenger-api.md "Errors"): retry now, retry later, stop.
#pragma once

#include <chrono>
#include <optional>
#include <random>
#include <string>
#include <string_view>

namespace mailgate::messenger {

enum class Verdict {
  Success,
  ReauthenticateOnce,  // 401: the token expired or was revoked
  RetryLater,          // 5xx, 408, 429, network trouble: temporary
  Forbidden,           // 403: the credentials lack permission; keep mail queued
  Permanent,           // other 4xx: this message can never succeed as sent
};

Verdict classify_status(int status);

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

// The API's error text from a JSON error body ({"error":{"message"}},
// {"message"}, {"error": "..."}), else the start of the body.
std::string api_error_message(std::string_view body);

}  // namespace mailgate::messenger
