#pragma once
// Throttling of Bedrock calls per (provider, model-or-agent) key: a
// requests-per-minute and a tokens-per-minute budget, each a token bucket
// refilled continuously (capacity = one minute's budget / 6, so bursts are
// bounded to ten seconds' worth). Budgets start at the configured quota and
// adapt: every 429 (ThrottlingException) from Bedrock multiplies the key's
// effective rate by 0.7 (not below 5% of the quota); every minute without
// one raises it by 10% of the quota, up to the quota (AIMD).
//
// Waiting is asynchronous: Acquire either admits at once (the callback runs
// on the caller's thread before Acquire returns) or queues the request,
// FIFO per key, and a timer thread admits it when the buckets allow. Nothing
// sleeps per request, so thousands of runs can wait here at no cost;
// a queued request can be cancelled (run shutdown, timeout).
//
// Token costs are estimates at admission (the rendered input's size / 4 plus
// the expected output); Settle() corrects the bucket with the real usage.
//
// Thread safety: thread-safe; callbacks run outside the limiter's lock.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/clock.h"

namespace quarry::engine {

struct RateBudget {
  int64_t requests_per_minute = 0;  // 0 = unlimited
  int64_t tokens_per_minute = 0;    // 0 = unlimited
};

class RateLimiter {
 public:
  // `clock` for refill arithmetic (monotonic); must outlive the limiter.
  explicit RateLimiter(const Clock& clock, RateBudget default_budget = {});
  ~RateLimiter();  // cancels queued requests (their callback runs with false)
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Budget for one key ("<provider_id>/<model or agent id>"); unset keys use
  // the default. Takes effect for the next admissions.
  void SetBudget(const std::string& key, RateBudget budget);

  using Ticket = uint64_t;  // 0 = admitted at once (nothing to cancel)
  // `admitted(true)` runs once the call may go; `admitted(false)` when
  // cancelled or the limiter shuts down.
  Ticket Acquire(const std::string& key, int64_t estimated_tokens, std::function<void(bool)> admitted);
  // Removes a queued request; its callback runs with false (on this thread).
  // No effect when already admitted.
  void Cancel(Ticket ticket);

  // The call's real token use (corrects the estimate).
  void Settle(const std::string& key, int64_t estimated_tokens, int64_t actual_tokens);
  // A 429 from Bedrock for this key: tighten.
  void OnThrottled(const std::string& key);
  // Makes the timer thread re-check the queues now. The timer sleeps (in real
  // time) until the earliest request is due by the clock's reading; call this
  // after moving an injected clock by hand (tests with a FakeClock).
  void Wake();

  struct KeyState {
    double effective_rpm = 0, effective_tpm = 0;  // 0 = unlimited
    size_t queued = 0;
    int64_t throttles = 0;
  };
  KeyState State(const std::string& key) const;
  // {"<key>": {"effective_rpm","effective_tpm","queued","throttles"}, ...}
  nlohmann::json ToJson() const;
  size_t queued() const;

 private:
  struct Bucket;
  struct Waiter;
  // The key's bucket, created with `budget` when new. Requires mutex_.
  Bucket& BucketLocked(const std::string& key, const RateBudget& budget, MonotonicTime now);
  void TimerLoop();

  const Clock& clock_;
  const RateBudget default_budget_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::map<std::string, std::unique_ptr<Bucket>> buckets_;
  Ticket next_ticket_ = 1;
  std::thread timer_;
};

}  // namespace quarry::engine
