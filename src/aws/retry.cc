#include "aws/retry.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace quarry::aws {
namespace {

using std::chrono::milliseconds;

std::string Attempts(int n) { return std::to_string(n) + (n == 1 ? " attempt" : " attempts"); }

// The error's own status with `reason` in front of its message.
Status GiveUp(const AwsError& error, const std::string& reason) {
  const Status status = error.ToStatus();
  return Status(status.code(), reason + ": " + status.message());
}

}  // namespace

std::chrono::milliseconds BackoffBase(RetryBehavior behavior, RetryClass retry_class) {
  if (behavior == RetryBehavior::k2026 && retry_class != RetryClass::kThrottling) {
    return milliseconds(50);
  }
  return milliseconds(1000);
}

int RetryCost(RetryBehavior behavior, const AwsError& error) {
  if (behavior == RetryBehavior::k2026) {
    return error.retry_class == RetryClass::kThrottling ? 5 : 14;
  }
  return error.timeout ? 10 : 5;
}

// ---------------------------------------------------------------- RetryQuota

RetryQuota::RetryQuota(int capacity) : capacity_(capacity), available_(capacity) {}

bool RetryQuota::TryAcquire(int cost) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (cost > available_) return false;
  available_ -= cost;
  return true;
}

void RetryQuota::Release(int amount) {
  std::lock_guard<std::mutex> lock(mutex_);
  available_ = std::min(capacity_, available_ + amount);
}

int RetryQuota::available() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return available_;
}

RandomSource DefaultRandomSource() {
  return [] {
    // One generator per thread: no locking, and no shared state to race on.
    thread_local std::mt19937_64 generator{std::random_device{}()};
    return std::uniform_real_distribution<double>(0.0, 1.0)(generator);
  };
}

// ---------------------------------------------------------------- RetryStrategy

RetryStrategy::RetryStrategy(RetryConfig config, std::shared_ptr<RetryQuota> quota,
                             const Clock& clock, RandomSource random)
    : config_(config), quota_(std::move(quota)), clock_(clock), random_(std::move(random)) {
  if (config_.max_attempts < 1) config_.max_attempts = 1;
}

RetryToken RetryStrategy::AcquireInitialToken(MonotonicTime deadline) const {
  RetryToken token;
  token.deadline = deadline;
  return token;
}

Result<std::chrono::milliseconds> RetryStrategy::RefreshTokenForRetry(
    RetryToken& token, const AttemptOutcome& outcome) {
  const AwsError& error = outcome.error;
  const int made = token.attempt;
  if (error.retry_class == RetryClass::kNotRetryable) {
    if (made == 1) return error.ToStatus();
    return GiveUp(error, "failed after " + Attempts(made));
  }
  if (outcome.stream_events_delivered) {
    return GiveUp(error, "not retried because part of the response stream had already been "
                         "delivered (after " + Attempts(made) + ")");
  }
  if (made >= config_.max_attempts) {
    return GiveUp(error, "gave up after " + Attempts(made) + " (the maximum is " +
                             std::to_string(config_.max_attempts) + ")");
  }

  // Full jitter over the capped exponential: rand x min(base x 2^(n-1), 20 s),
  // n = 1 for the first retry. The cap applies before the jitter (2026 spec).
  const int n = made;
  const double base_ms = static_cast<double>(BackoffBase(config_.behavior, error.retry_class).count());
  const double exp_ms = std::min(base_ms * std::ldexp(1.0, std::min(n - 1, 30)),
                                 static_cast<double>(kMaxBackoff.count()));
  double r = random_ ? random_() : 0.0;
  if (!(r >= 0.0)) r = 0.0;        // also catches NaN
  if (r >= 1.0) r = std::nextafter(1.0, 0.0);
  milliseconds delay(static_cast<int64_t>(r * exp_ms));
  if (config_.behavior == RetryBehavior::k2026 && error.retry_after) {
    delay = std::clamp(*error.retry_after, delay, delay + kMaxRetryAfterExtra);
  }

  const MonotonicTime now = clock_.MonotonicNow();
  if (token.deadline != MonotonicTime::max() && now + delay >= token.deadline) {
    const Status last = error.ToStatus();
    return DeadlineExceededError(
        "the deadline for this call was reached after " + Attempts(made) +
        " (the next retry would have waited " + std::to_string(delay.count()) +
        " ms); last error: " + last.message());
  }

  const int cost = RetryCost(config_.behavior, error);
  if (!quota_->TryAcquire(cost)) {
    return GiveUp(error, "not retried: the client's retry quota is exhausted (" +
                             std::to_string(quota_->available()) + " tokens left, a retry costs " +
                             std::to_string(cost) +
                             "; too many recent failures; it refills as calls succeed) after " +
                             Attempts(made));
  }
  token.last_retry_cost = cost;
  token.attempt = made + 1;
  return delay;
}

void RetryStrategy::RecordSuccess(const RetryToken& token) {
  quota_->Release(token.last_retry_cost > 0 ? token.last_retry_cost : kNoRetryIncrement);
}

}  // namespace quarry::aws
