// Exponential backoff with jitter: the one formula every retry loop uses
// (API calls, a message's attempts, an IMAP mailbox's reconnects).
//
// ceiling = min(cap, base · 2^attempt); the wait is drawn uniformly from
// [ceiling · (1 − jitter), ceiling].
//   jitter 1.0 — "full jitter" (AWS architecture blog, "Exponential Backoff
//                And Jitter"): many callers share one endpoint, spreading
//                them matters most (API calls).
//   jitter 0.5 — at least half the ceiling: one message or one mailbox
//                retrying on its own, where waiting too little hammers a
//                server that is down or refuses a password.
#pragma once

#include <chrono>
#include <random>

namespace mailgate::net {

inline constexpr double kFullJitter = 1.0;
inline constexpr double kHalfJitter = 0.5;

std::chrono::milliseconds backoff(std::chrono::milliseconds base, std::chrono::milliseconds cap, int attempt,
                                  double jitter, std::mt19937_64& rng);

}  // namespace mailgate::net
