// What each API answer means, backoff bounds, Retry-After forms.
#include "mailgate/messenger/retry_policy.hpp"

#include <gtest/gtest.h>

using namespace mailgate::messenger;
using std::chrono::milliseconds;

TEST(RetryPolicy, ClassifiesStatusesAsTheContractSays) {
  EXPECT_EQ(classify_status(200), Verdict::Success);
  EXPECT_EQ(classify_status(201), Verdict::Success);
  EXPECT_EQ(classify_status(401), Verdict::ReauthenticateOnce);
  EXPECT_EQ(classify_status(403), Verdict::Forbidden);
  EXPECT_EQ(classify_status(429), Verdict::RetryLater);
  EXPECT_EQ(classify_status(408), Verdict::RetryLater);
  EXPECT_EQ(classify_status(500), Verdict::RetryLater);
  EXPECT_EQ(classify_status(503), Verdict::RetryLater);
  for (int s : {400, 404, 409, 413, 422}) EXPECT_EQ(classify_status(s), Verdict::Permanent) << s;
}

TEST(RetryPolicy, FullJitterStaysWithinTheExponentialCeiling) {
  BackoffSettings s{milliseconds(100), milliseconds(1000), milliseconds(5000)};
  std::mt19937_64 rng(7);
  for (int attempt = 0; attempt < 12; ++attempt) {
    milliseconds ceiling = std::min(milliseconds(100 << std::min(attempt, 10)), milliseconds(1000));
    for (int i = 0; i < 200; ++i) {
      auto d = backoff_delay(s, attempt, rng);
      EXPECT_GE(d.count(), 0);
      EXPECT_LE(d, ceiling) << "attempt " << attempt;
    }
  }
}

TEST(RetryPolicy, RetryAfterSecondsAndHttpDate) {
  BackoffSettings s;
  EXPECT_EQ(parse_retry_after("120", 0, s), milliseconds(120'000));
  EXPECT_EQ(parse_retry_after(" 0 ", 0, s), milliseconds(0));
  // RFC 9110's example date; now is 30 s before it.
  const std::int64_t date = 1445412480;  // Wed, 21 Oct 2015 07:28:00 GMT
  EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", date - 30, s), milliseconds(30'000));
  EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", date + 30, s), milliseconds(0));  // past
  EXPECT_FALSE(parse_retry_after("", 0, s));
  EXPECT_FALSE(parse_retry_after("soon", 0, s));
  EXPECT_EQ(parse_retry_after("999999999999", 0, s), s.max_retry_after);  // distrust absurd values
}

TEST(RetryPolicy, ApiErrorMessages) {
  EXPECT_EQ(api_error_message(R"({"error":{"code":400,"message":"unknown creator"}})"), "unknown creator");
  EXPECT_EQ(api_error_message(R"({"message":"nope"})"), "nope");
  EXPECT_EQ(api_error_message(R"({"error":"bad"})"), "bad");
  EXPECT_EQ(api_error_message("<html>Bad Gateway</html>"), "<html>Bad Gateway</html>");
  EXPECT_EQ(api_error_message(""), "(empty response body)");
}

// issue 15: gateway and timeout statuses are temporary; a test that fails
// if 502 or 504 were ever classified permanent.
TEST(RetryPolicy, GatewayErrorsAndTimeoutsAreTemporary) {
  for (int s : {500, 502, 503, 504, 599}) {
    EXPECT_EQ(classify_status(s), Verdict::RetryLater) << s;
    EXPECT_EQ(classify(s, R"({"Message":"Endpoint request timed out"})"), Verdict::RetryLater) << s;
  }
}

TEST(RetryPolicy, A403IsTheGatewaysOrTheApis) {
  EXPECT_EQ(classify(403, R"({"Message":"User is not authorized to access this resource with an explicit deny"})"),
            Verdict::ReauthenticateOnce);
  EXPECT_EQ(classify(403, "<html>Forbidden</html>"), Verdict::ReauthenticateOnce);
  EXPECT_EQ(classify(403, R"({"error":{"code":403,"message":"not for this queue"}})"), Verdict::Permanent);
  EXPECT_EQ(classify(403, R"({"errors":[{"message":"no","code":7}]})"), Verdict::Permanent);
  EXPECT_EQ(classify(410, R"({"error":{"code":410,"message":"gone"}})"), Verdict::Outage);
  EXPECT_EQ(classify(401, ""), Verdict::ReauthenticateOnce);
}

TEST(RetryPolicy, EveryErrorBodyShapeGivesTheOperatorTheReason) {
  EXPECT_EQ(api_error_message(R"({"errors":[{"message":"A user with this address already exists","code":4001}]})"),
            "A user with this address already exists");
  EXPECT_EQ(api_error_message(R"({"errors":[{"message":"a"},{"message":"b"}]})"), "a; b");
  EXPECT_EQ(api_error_message(R"({"Message":"User is not authorized"})"), "User is not authorized");
}
