#pragma once
// The AWS "standard" retry mode: attempt budget, exponential backoff with full
// jitter, the retry-quota token bucket, `x-amz-retry-after`, and an overall
// deadline. It returns delays and never sleeps, so an asynchronous client can
// arm a timer instead of blocking a thread.
//
// Spec: aws-protocol.md §9; https://docs.aws.amazon.com/sdkref/latest/guide/
// feature-retry-behavior.html; botocore retries/standard.py and quota.py;
// the AWS blog "Announcing updated retry behavior for AWS SDKs and Tools".
//
// Two behaviours:
//  - RetryBehavior::k2026 (the default; AWS SDKs default to it from November
//    2026, and it is November 2026): delay = rand[0,1) x min(base x 2^(n-1),
//    20 s) for the n-th retry, base 1 s for throttling and 50 ms for other
//    transient errors; a retry costs 5 quota tokens after throttling and 14
//    otherwise; `x-amz-retry-after` (ms) is honoured, clamped to
//    [delay, delay + 5 s].
//  - RetryBehavior::kClassic (pre-2026 standard mode): base 1 s for every
//    error; cost 5, or 10 after a timeout; `x-amz-retry-after` is ignored.
// Both: 3 attempts in total by default; the quota starts at 500 tokens; a
// success refunds the cost of the retry that led to it, or 1 token when it
// needed no retry, capped at the initial 500; with too few tokens a retry is
// refused at once.
//
// Beyond the SDKs: an overall deadline for the chain (a retry whose delay would
// end at or past the deadline is not attempted), and no retry once response
// stream events reached the caller (the caller would see them twice).
//
// Example (asynchronous client):
//   RetryToken token = strategy.AcquireInitialToken(deadline);
//   for (;;) {
//     AttemptResult r = co_await Send(request, token.attempt);
//     if (r.ok()) { strategy.RecordSuccess(token); co_return r; }
//     Result<std::chrono::milliseconds> delay = strategy.RefreshTokenForRetry(
//         token, {.error = r.error(), .stream_events_delivered = r.streamed});
//     if (!delay.ok()) co_return delay.status();   // give up, with the reason
//     co_await Sleep(*delay);
//   }
//
// Thread safety: RetryQuota is thread-safe and meant to be shared by all calls
// of one client (std::shared_ptr). A RetryStrategy may be used from many
// threads at once if its RandomSource may; the default one is. A RetryToken
// belongs to one call chain.

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>

#include "aws/aws_error.h"
#include "common/clock.h"
#include "common/status.h"

namespace quarry::aws {

enum class RetryBehavior { k2026, kClassic };

struct RetryConfig {
  int max_attempts = 3;  // total attempts including the first; >= 1
  RetryBehavior behavior = RetryBehavior::k2026;
};

// Backoff base for an error class: 1 s throttling, 50 ms transient (2026);
// 1 s for both (classic).
std::chrono::milliseconds BackoffBase(RetryBehavior behavior, RetryClass retry_class);
// Quota cost of a retry after `error`.
int RetryCost(RetryBehavior behavior, const AwsError& error);

inline constexpr std::chrono::milliseconds kMaxBackoff{20'000};
inline constexpr std::chrono::milliseconds kMaxRetryAfterExtra{5'000};
inline constexpr int kInitialRetryQuota = 500;
inline constexpr int kNoRetryIncrement = 1;

// The retry-quota token bucket. Thread-safe.
class RetryQuota {
 public:
  explicit RetryQuota(int capacity = kInitialRetryQuota);
  // Takes `cost` tokens if that many are available.
  bool TryAcquire(int cost);
  // Returns `amount` tokens, capped at the capacity.
  void Release(int amount);
  int available() const;
  int capacity() const { return capacity_; }

 private:
  const int capacity_;
  mutable std::mutex mutex_;
  int available_;
};

// Returns a uniformly distributed double in [0, 1).
using RandomSource = std::function<double()>;
// A thread-safe RandomSource (a thread-local generator seeded per thread).
RandomSource DefaultRandomSource();

// The state of one call chain.
struct RetryToken {
  int attempt = 1;            // the attempt number in flight (1 = first)
  MonotonicTime deadline = MonotonicTime::max();
  int last_retry_cost = 0;    // tokens taken for the retry now in flight
};

// What happened to the attempt that just failed.
struct AttemptOutcome {
  AwsError error;                        // parsed error (retry_class, retry_after, timeout)
  bool stream_events_delivered = false;  // part of the response reached the caller
};

class RetryStrategy {
 public:
  // `quota` must not be null; `clock` must outlive the strategy.
  RetryStrategy(RetryConfig config, std::shared_ptr<RetryQuota> quota,
                const Clock& clock = SystemClock::Get(),
                RandomSource random = DefaultRandomSource());

  // Starts a call chain that must finish by `deadline` (MonotonicTime::max()
  // for none).
  RetryToken AcquireInitialToken(MonotonicTime deadline = MonotonicTime::max()) const;

  // Decides whether to retry after a failed attempt. On yes, takes the quota
  // cost, advances `token` to the next attempt and returns the delay to wait
  // before sending it. On no, returns why, as a Status whose code is the
  // error's (AwsError::ToStatus) or kDeadlineExceeded, with a message naming
  // the cause and the number of attempts made: not retryable, stream already
  // delivered, attempts exhausted, retry quota exhausted, deadline reached.
  Result<std::chrono::milliseconds> RefreshTokenForRetry(RetryToken& token,
                                                         const AttemptOutcome& outcome);

  // Records the chain's success: refunds the last retry's cost, or 1 token.
  void RecordSuccess(const RetryToken& token);

  const RetryConfig& config() const { return config_; }
  RetryQuota& quota() const { return *quota_; }

 private:
  RetryConfig config_;
  std::shared_ptr<RetryQuota> quota_;
  const Clock& clock_;
  RandomSource random_;
};

}  // namespace quarry::aws
