#include "aws/retry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace quarry::aws {
namespace {

using ::testing::HasSubstr;
using std::chrono::milliseconds;

AwsError Throttled() {
  return ParseRestJsonError("bedrock-runtime", 429, {{"x-amzn-ErrorType", "ThrottlingException"}},
                            R"({"message":"Too many requests"})");
}
AwsError ServerError() {
  return ParseRestJsonError("bedrock-runtime", 500, {{"x-amzn-ErrorType", "InternalServerException"}},
                            R"({"message":"oops"})");
}

class RetryTest : public ::testing::Test {
 protected:
  RetryStrategy Make(RetryConfig config, double random_value, int quota = kInitialRetryQuota) {
    quota_ = std::make_shared<RetryQuota>(quota);
    return RetryStrategy(config, quota_, clock_, [random_value] { return random_value; });
  }

  FakeClock clock_;
  std::shared_ptr<RetryQuota> quota_;
};

TEST_F(RetryTest, BacksOffWithFullJitterFromOneSecondForThrottlingIn2026Mode) {
  RetryStrategy s = Make({.max_attempts = 10}, 0.5);
  RetryToken token = s.AcquireInitialToken();
  const int64_t expected[] = {500, 1000, 2000, 4000, 8000, 10000, 10000, 10000, 10000};
  for (int64_t want : expected) {
    Result<milliseconds> d = s.RefreshTokenForRetry(token, {.error = Throttled()});
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_EQ(d->count(), want) << "attempt " << token.attempt;
  }
}

TEST_F(RetryTest, BacksOffFromFiftyMillisecondsForTransientErrorsIn2026Mode) {
  RetryStrategy s = Make({.max_attempts = 4}, 0.5);
  RetryToken token = s.AcquireInitialToken();
  EXPECT_EQ(s.RefreshTokenForRetry(token, {.error = ServerError()})->count(), 25);
  EXPECT_EQ(s.RefreshTokenForRetry(token, {.error = ServerError()})->count(), 50);
  EXPECT_EQ(s.RefreshTokenForRetry(token, {.error = ServerError()})->count(), 100);
}

TEST_F(RetryTest, ClassicModeUsesOneSecondForEveryError) {
  RetryStrategy s = Make({.max_attempts = 3, .behavior = RetryBehavior::kClassic}, 0.5);
  RetryToken token = s.AcquireInitialToken();
  EXPECT_EQ(s.RefreshTokenForRetry(token, {.error = ServerError()})->count(), 500);
  EXPECT_EQ(s.RefreshTokenForRetry(token, {.error = Throttled()})->count(), 1000);
}

TEST_F(RetryTest, DelayStaysBelowTheCapForTheLargestRandomValue) {
  RetryStrategy s = Make({.max_attempts = 40}, 0.999999);
  RetryToken token = s.AcquireInitialToken();
  milliseconds previous{0};
  for (int i = 0; i < 39; ++i) {
    Result<milliseconds> d = s.RefreshTokenForRetry(token, {.error = Throttled()});
    ASSERT_TRUE(d.ok());
    EXPECT_LT(*d, kMaxBackoff);
    EXPECT_GE(*d, previous);
    previous = *d;
  }
  EXPECT_GE(previous, milliseconds(19'900));
  // Zero and out-of-range random values are clamped into [0, 1).
  RetryStrategy zero = Make({}, 0.0);
  RetryToken t0 = zero.AcquireInitialToken();
  EXPECT_EQ(zero.RefreshTokenForRetry(t0, {.error = Throttled()})->count(), 0);
  RetryStrategy big = Make({}, 7.0);
  RetryToken t1 = big.AcquireInitialToken();
  EXPECT_EQ(big.RefreshTokenForRetry(t1, {.error = Throttled()})->count(), 999);
}

TEST_F(RetryTest, GivesUpAfterMaxAttemptsSayingHowMany) {
  RetryStrategy s = Make({}, 0.5);
  RetryToken token = s.AcquireInitialToken();
  ASSERT_TRUE(s.RefreshTokenForRetry(token, {.error = Throttled()}).ok());
  ASSERT_TRUE(s.RefreshTokenForRetry(token, {.error = Throttled()}).ok());
  EXPECT_EQ(token.attempt, 3);
  Result<milliseconds> third = s.RefreshTokenForRetry(token, {.error = Throttled()});
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.status().code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(third.status().message(), HasSubstr("gave up after 3 attempts (the maximum is 3)"));
  EXPECT_THAT(third.status().message(), HasSubstr("ThrottlingException"));
}

TEST_F(RetryTest, DoesNotRetryErrorsThatAreNotRetryable) {
  RetryStrategy s = Make({}, 0.5);
  RetryToken token = s.AcquireInitialToken();
  const AwsError denied = ParseRestJsonError(
      "bedrock-agent-runtime", 403, {{"x-amzn-ErrorType", "AccessDeniedException"}},
      R"({"message":"not authorized to perform bedrock:InvokeAgent"})");
  Result<milliseconds> d = s.RefreshTokenForRetry(token, {.error = denied});
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kPermissionDenied);
  EXPECT_THAT(d.status().message(), HasSubstr("bedrock:InvokeAgent"));
  EXPECT_EQ(quota_->available(), kInitialRetryQuota);
  const AwsError not_ready = ParseRestJsonError(
      "bedrock-agent-runtime", 424, {{"x-amzn-ErrorType", "ModelNotReadyException"}}, "{}");
  EXPECT_FALSE(s.RefreshTokenForRetry(token, {.error = not_ready}).ok());
  const AwsError runtime_not_ready = ParseRestJsonError(
      "bedrock-runtime", 429, {{"x-amzn-ErrorType", "ModelNotReadyException"}}, "{}");
  EXPECT_EQ(s.RefreshTokenForRetry(token, {.error = runtime_not_ready})->count(), 25);
}

TEST_F(RetryTest, ChargesTheQuotaAndRefusesWhenItIsExhausted) {
  RetryStrategy s = Make({.max_attempts = 10}, 0.5, /*quota=*/20);
  RetryToken token = s.AcquireInitialToken();
  ASSERT_TRUE(s.RefreshTokenForRetry(token, {.error = ServerError()}).ok());  // costs 14
  EXPECT_EQ(quota_->available(), 6);
  ASSERT_TRUE(s.RefreshTokenForRetry(token, {.error = Throttled()}).ok());  // costs 5
  EXPECT_EQ(quota_->available(), 1);
  Result<milliseconds> refused = s.RefreshTokenForRetry(token, {.error = Throttled()});
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(),
              HasSubstr("retry quota is exhausted (1 tokens left, a retry costs 5"));
  EXPECT_THAT(refused.status().message(), HasSubstr("after 3 attempts"));
  EXPECT_EQ(quota_->available(), 1);
}

TEST_F(RetryTest, RefundsTheLastRetryOnSuccessAndOneTokenWithoutRetry) {
  RetryStrategy s = Make({}, 0.5, /*quota=*/100);
  RetryToken token = s.AcquireInitialToken();
  ASSERT_TRUE(s.RefreshTokenForRetry(token, {.error = ServerError()}).ok());
  EXPECT_EQ(quota_->available(), 86);
  s.RecordSuccess(token);
  EXPECT_EQ(quota_->available(), 100);
  s.RecordSuccess(s.AcquireInitialToken());  // capped at the capacity
  EXPECT_EQ(quota_->available(), 100);
  ASSERT_TRUE(quota_->TryAcquire(10));
  s.RecordSuccess(s.AcquireInitialToken());
  EXPECT_EQ(quota_->available(), 91);
}

TEST_F(RetryTest, ClassicModeChargesFiveOrTenForTimeouts) {
  RetryStrategy s = Make({.max_attempts = 5, .behavior = RetryBehavior::kClassic}, 0.5, 100);
  RetryToken token = s.AcquireInitialToken();
  ASSERT_TRUE(s.RefreshTokenForRetry(token, {.error = ServerError()}).ok());
  EXPECT_EQ(quota_->available(), 95);
  ASSERT_TRUE(
      s.RefreshTokenForRetry(token, {.error = MakeConnectionError("bedrock-runtime", "timed out", true)}).ok());
  EXPECT_EQ(quota_->available(), 85);
  EXPECT_EQ(RetryCost(RetryBehavior::k2026, MakeConnectionError("x", "timed out", true)), 14);
}

TEST_F(RetryTest, ClampsRetryAfterBetweenTheDelayAndFiveSecondsMore) {
  RetryStrategy s = Make({.max_attempts = 10}, 0.5);
  auto delay_with = [&](int64_t retry_after_ms) {
    AwsError e = ServerError();  // computed delay 25 ms on the first retry
    e.retry_after = milliseconds(retry_after_ms);
    RetryToken token = s.AcquireInitialToken();
    return s.RefreshTokenForRetry(token, {.error = e})->count();
  };
  EXPECT_EQ(delay_with(1000), 1000);
  EXPECT_EQ(delay_with(0), 25);
  EXPECT_EQ(delay_with(60'000), 5025);
  // Classic mode ignores the header.
  RetryStrategy classic = Make({.behavior = RetryBehavior::kClassic}, 0.5);
  AwsError e = ServerError();
  e.retry_after = milliseconds(3000);
  RetryToken token = classic.AcquireInitialToken();
  EXPECT_EQ(classic.RefreshTokenForRetry(token, {.error = e})->count(), 500);
}

TEST_F(RetryTest, ReadsRetryAfterFromTheResponseHeader) {
  RetryStrategy s = Make({}, 0.5);
  RetryToken token = s.AcquireInitialToken();
  const AwsError e = ParseRestJsonError(
      "bedrock-runtime", 503, {{"x-amzn-ErrorType", "ServiceUnavailableException"}, {"x-amz-retry-after", "700"}},
      "{}");
  EXPECT_EQ(s.RefreshTokenForRetry(token, {.error = e})->count(), 700);
}

TEST_F(RetryTest, StopsWhenTheDelayWouldPassTheDeadline) {
  RetryStrategy s = Make({.max_attempts = 5}, 0.5);
  RetryToken token = s.AcquireInitialToken(clock_.MonotonicNow() + milliseconds(1200));
  Result<milliseconds> first = s.RefreshTokenForRetry(token, {.error = Throttled()});
  ASSERT_TRUE(first.ok());
  clock_.Advance(*first + milliseconds(100));  // 600 ms used
  // The next delay is 1000 ms, which would end at 1600 ms > 1200 ms.
  Result<milliseconds> second = s.RefreshTokenForRetry(token, {.error = Throttled()});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_THAT(second.status().message(), HasSubstr("deadline for this call was reached after 2 attempts"));
  EXPECT_THAT(second.status().message(), HasSubstr("ThrottlingException"));
  EXPECT_EQ(quota_->available(), kInitialRetryQuota - 5);  // the refused retry took nothing
}

TEST_F(RetryTest, DoesNotRetryOnceStreamEventsReachedTheCaller) {
  RetryStrategy s = Make({}, 0.5);
  RetryToken token = s.AcquireInitialToken();
  const AwsError in_stream = ParseStreamException("bedrock-runtime", "throttlingException",
                                                  R"({"message":"slow down"})");
  Result<milliseconds> d =
      s.RefreshTokenForRetry(token, {.error = in_stream, .stream_events_delivered = true});
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("part of the response stream had already been delivered"));
  EXPECT_EQ(quota_->available(), kInitialRetryQuota);
  // Before any event was delivered the same exception is retried as throttling.
  Result<milliseconds> early = s.RefreshTokenForRetry(token, {.error = in_stream});
  ASSERT_TRUE(early.ok());
  EXPECT_EQ(early->count(), 500);
  EXPECT_EQ(quota_->available(), kInitialRetryQuota - 5);
}

TEST(RetryQuotaTest, StaysConsistentUnderConcurrentUse) {
  RetryQuota quota(500);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&quota] {
      for (int i = 0; i < 10'000; ++i) {
        if (quota.TryAcquire(5)) quota.Release(5);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(quota.available(), 500);
}

TEST(RetryQuotaTest, DefaultRandomSourceStaysInRange) {
  RandomSource random = DefaultRandomSource();
  for (int i = 0; i < 1000; ++i) {
    const double r = random();
    ASSERT_GE(r, 0.0);
    ASSERT_LT(r, 1.0);
  }
}

}  // namespace
}  // namespace quarry::aws
