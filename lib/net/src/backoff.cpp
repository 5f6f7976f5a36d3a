#include "mailgate/net/backoff.hpp"

#include <algorithm>

namespace mailgate::net {

std::chrono::milliseconds backoff(std::chrono::milliseconds base, std::chrono::milliseconds cap, int attempt,
                                  double jitter, std::mt19937_64& rng) {
  const double limit = static_cast<double>(std::max(cap, base).count());
  double ceiling = static_cast<double>(base.count());
  // Doubling stops at the cap, so a huge attempt count cannot overflow.
  for (int i = 0; i < attempt && ceiling < limit; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, limit);
  jitter = std::clamp(jitter, 0.0, 1.0);
  std::uniform_real_distribution<double> dist(ceiling * (1.0 - jitter), ceiling);
  return std::chrono::milliseconds(static_cast<long long>(dist(rng)));
}

}  // namespace mailgate::net
