// The one backoff formula: doubling per attempt up to the cap, the wait
// within [ceiling·(1−jitter), ceiling].
#include "mailgate/net/backoff.hpp"

#include <gtest/gtest.h>

namespace mailgate::net {
namespace {

using std::chrono::milliseconds;

struct Range {
  long long low = 1LL << 62, high = -1;
};

Range observe(int attempt, double jitter, milliseconds base = milliseconds(1000),
              milliseconds cap = milliseconds(60'000)) {
  std::mt19937_64 rng(42);
  Range r;
  for (int i = 0; i < 2000; ++i) {
    long long w = backoff(base, cap, attempt, jitter, rng).count();
    r.low = std::min(r.low, w);
    r.high = std::max(r.high, w);
  }
  return r;
}

TEST(Backoff, CeilingDoublesPerAttempt) {
  EXPECT_LE(observe(0, kFullJitter).high, 1000);
  EXPECT_GT(observe(0, kFullJitter).high, 900);
  EXPECT_LE(observe(3, kFullJitter).high, 8000);
  EXPECT_GT(observe(3, kFullJitter).high, 7000);
}

TEST(Backoff, NeverAboveTheCapEvenAfterManyAttempts) {
  Range r = observe(10'000, kHalfJitter);
  EXPECT_LE(r.high, 60'000);
  EXPECT_GE(r.low, 30'000);
}

TEST(Backoff, FullJitterSpreadsFromZero) {
  EXPECT_LT(observe(2, kFullJitter).low, 400);  // ceiling 4000: draws reach near 0
}

TEST(Backoff, HalfJitterWaitsAtLeastHalfTheCeiling) {
  Range r = observe(2, kHalfJitter);
  EXPECT_GE(r.low, 2000);
  EXPECT_LE(r.high, 4000);
  EXPECT_LT(r.low, 2400);  // and does spread
}

TEST(Backoff, ACapBelowTheBaseStillWaitsTheBase) {
  // A config with base above cap must not produce a zero or negative range.
  Range r = observe(5, kHalfJitter, milliseconds(5000), milliseconds(1000));
  EXPECT_GE(r.low, 2500);
  EXPECT_LE(r.high, 5000);
}

}  // namespace
}  // namespace mailgate::net
