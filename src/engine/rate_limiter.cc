#include "engine/rate_limiter.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>
#include <vector>

namespace quarry::engine {
namespace {

using std::chrono::nanoseconds;

constexpr double kThrottleFactor = 0.7;  // multiplicative decrease per 429
constexpr double kMinimumFactor = 0.05;  // never below 5% of the quota
constexpr double kRecoveryStep = 0.1;    // additive increase per quiet minute
constexpr auto kRecoveryInterval = std::chrono::minutes(1);
constexpr double kBurstMinutes = 1.0 / 6.0;  // capacity: ten seconds' worth
// Refill arithmetic is in doubles; a level a rounding error short of what a
// request needs must still admit it once the computed wait has passed.
constexpr double kEpsilon = 1e-6;
// The timer never sleeps less (no busy loop on rounding) or longer (so
// recovery steps and clock jumps are noticed) than these.
constexpr auto kMinimumWait = std::chrono::milliseconds(1);
constexpr auto kMaximumWait = std::chrono::seconds(60);

}  // namespace

struct RateLimiter::Waiter {
  Ticket ticket = 0;
  int64_t tokens = 0;
  std::function<void(bool)> admitted;
};

struct RateLimiter::Bucket {
  RateBudget quota;
  double factor = 1.0;  // effective rate / quota (AIMD)
  double requests = 0;  // available now; may be negative only for tokens
  double tokens = 0;
  MonotonicTime refilled{};
  MonotonicTime last_adjust{};  // last 429 or recovery step
  std::deque<Waiter> queue;     // ascending tickets (appended in order)
  int64_t throttles = 0;

  double rpm() const { return static_cast<double>(quota.requests_per_minute) * factor; }
  double tpm() const { return static_cast<double>(quota.tokens_per_minute) * factor; }
  bool limits_requests() const { return quota.requests_per_minute > 0; }
  bool limits_tokens() const { return quota.tokens_per_minute > 0; }
  // At least one request / one token, so a tiny budget still admits.
  double request_capacity() const { return std::max(1.0, rpm() * kBurstMinutes); }
  double token_capacity() const { return std::max(1.0, tpm() * kBurstMinutes); }

  // A request costing more tokens than the bucket holds goes when the bucket
  // is full, leaving a debt that later requests wait out.
  double TokensNeeded(int64_t cost) const {
    return std::min(static_cast<double>(cost), token_capacity());
  }

  void ClampToCapacity() {
    requests = std::min(requests, request_capacity());
    tokens = std::min(tokens, token_capacity());
  }

  // Refills for the time since the last call, then applies any recovery
  // steps that have come due.
  void Advance(MonotonicTime now) {
    if (now > refilled) {
      const double minutes = std::chrono::duration<double, std::ratio<60>>(now - refilled).count();
      if (limits_requests()) requests = std::min(request_capacity(), requests + rpm() * minutes);
      if (limits_tokens()) tokens = std::min(token_capacity(), tokens + tpm() * minutes);
      refilled = now;
    }
    if (factor < 1.0 && now - last_adjust >= kRecoveryInterval) {
      const auto steps = (now - last_adjust) / kRecoveryInterval;
      factor = std::min(1.0, factor + kRecoveryStep * static_cast<double>(steps));
      last_adjust += steps * kRecoveryInterval;
    }
  }

  bool CanAdmit(int64_t cost) const {
    if (limits_requests() && requests < 1.0 - kEpsilon) return false;
    if (limits_tokens() && tokens < TokensNeeded(cost) - kEpsilon) return false;
    return true;
  }

  void Take(int64_t cost) {
    if (limits_requests()) requests -= 1.0;
    if (limits_tokens()) tokens -= static_cast<double>(cost);
  }

  // How long until CanAdmit(cost) at the current rates.
  nanoseconds TimeUntilAdmissible(int64_t cost) const {
    double minutes = 0;
    if (limits_requests() && requests < 1.0) minutes = std::max(minutes, (1.0 - requests) / rpm());
    if (limits_tokens()) {
      const double needed = TokensNeeded(cost);
      if (tokens < needed) minutes = std::max(minutes, (needed - tokens) / tpm());
    }
    return nanoseconds(static_cast<int64_t>(std::ceil(minutes * 60e9)));
  }
};

RateLimiter::RateLimiter(const Clock& clock, RateBudget default_budget)
    : clock_(clock), default_budget_(default_budget) {
  timer_ = std::thread([this] { TimerLoop(); });
}

RateLimiter::~RateLimiter() {
  std::vector<std::function<void(bool)>> cancelled;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    for (auto& [key, bucket] : buckets_) {
      for (Waiter& waiter : bucket->queue) cancelled.push_back(std::move(waiter.admitted));
      bucket->queue.clear();
    }
  }
  wake_.notify_all();
  if (timer_.joinable()) timer_.join();
  for (auto& callback : cancelled) {
    if (callback) callback(false);
  }
}

RateLimiter::Bucket& RateLimiter::BucketLocked(const std::string& key, const RateBudget& budget,
                                               MonotonicTime now) {
  auto it = buckets_.find(key);
  if (it != buckets_.end()) return *it->second;
  auto bucket = std::make_unique<Bucket>();
  bucket->quota = budget;
  bucket->requests = bucket->request_capacity();
  bucket->tokens = bucket->token_capacity();
  bucket->refilled = now;
  bucket->last_adjust = now;
  return *buckets_.emplace(key, std::move(bucket)).first->second;
}

void RateLimiter::SetBudget(const std::string& key, RateBudget budget) {
  const MonotonicTime now = clock_.MonotonicNow();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    Bucket& bucket = BucketLocked(key, budget, now);
    bucket.Advance(now);
    const bool had_requests = bucket.limits_requests();
    const bool had_tokens = bucket.limits_tokens();
    bucket.quota = budget;
    // A dimension that was unlimited starts with a full bucket.
    if (!had_requests) bucket.requests = bucket.request_capacity();
    if (!had_tokens) bucket.tokens = bucket.token_capacity();
    bucket.ClampToCapacity();
  }
  wake_.notify_one();
}

RateLimiter::Ticket RateLimiter::Acquire(const std::string& key, int64_t estimated_tokens,
                                         std::function<void(bool)> admitted) {
  const int64_t cost = std::max<int64_t>(0, estimated_tokens);
  const MonotonicTime now = clock_.MonotonicNow();
  std::unique_lock<std::mutex> lock(mutex_);
  if (stopping_) {
    lock.unlock();
    admitted(false);
    return 0;
  }
  Bucket& bucket = BucketLocked(key, default_budget_, now);
  bucket.Advance(now);
  // FIFO: a request may not overtake one already waiting on the same key.
  if (bucket.queue.empty() && bucket.CanAdmit(cost)) {
    bucket.Take(cost);
    lock.unlock();
    admitted(true);
    return 0;
  }
  const Ticket ticket = next_ticket_++;
  const bool first = bucket.queue.empty();
  bucket.queue.push_back(Waiter{ticket, cost, std::move(admitted)});
  lock.unlock();
  // Only a new head changes the earliest due time.
  if (first) wake_.notify_one();
  return ticket;
}

void RateLimiter::Cancel(Ticket ticket) {
  if (ticket == 0) return;
  std::function<void(bool)> callback;
  bool was_head = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [key, bucket] : buckets_) {
      auto& queue = bucket->queue;
      auto it = std::lower_bound(queue.begin(), queue.end(), ticket,
                                 [](const Waiter& waiter, Ticket t) { return waiter.ticket < t; });
      if (it == queue.end() || it->ticket != ticket) continue;
      was_head = it == queue.begin();
      callback = std::move(it->admitted);
      queue.erase(it);
      break;
    }
  }
  // The next waiter may need less than the cancelled head did.
  if (was_head) wake_.notify_one();
  if (callback) callback(false);
}

void RateLimiter::Settle(const std::string& key, int64_t estimated_tokens, int64_t actual_tokens) {
  const MonotonicTime now = clock_.MonotonicNow();
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = buckets_.find(key);
    if (it == buckets_.end()) return;
    Bucket& bucket = *it->second;
    if (!bucket.limits_tokens()) return;
    bucket.Advance(now);
    const double correction = static_cast<double>(std::max<int64_t>(0, estimated_tokens)) -
                              static_cast<double>(std::max<int64_t>(0, actual_tokens));
    bucket.tokens = std::min(bucket.token_capacity(), bucket.tokens + correction);
    wake = correction > 0 && !bucket.queue.empty();
  }
  if (wake) wake_.notify_one();
}

void RateLimiter::OnThrottled(const std::string& key) {
  const MonotonicTime now = clock_.MonotonicNow();
  std::lock_guard<std::mutex> lock(mutex_);
  Bucket& bucket = BucketLocked(key, default_budget_, now);
  bucket.Advance(now);
  ++bucket.throttles;
  bucket.factor = std::max(kMinimumFactor, bucket.factor * kThrottleFactor);
  bucket.last_adjust = now;
  bucket.ClampToCapacity();
  // Waiters now wait longer; the timer notices when it next wakes.
}

void RateLimiter::Wake() { wake_.notify_one(); }

RateLimiter::KeyState RateLimiter::State(const std::string& key) const {
  const MonotonicTime now = clock_.MonotonicNow();
  std::lock_guard<std::mutex> lock(mutex_);
  KeyState state;
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    state.effective_rpm = static_cast<double>(default_budget_.requests_per_minute);
    state.effective_tpm = static_cast<double>(default_budget_.tokens_per_minute);
    return state;
  }
  Bucket& bucket = *it->second;
  bucket.Advance(now);  // applies recovery steps that have come due
  state.effective_rpm = bucket.rpm();
  state.effective_tpm = bucket.tpm();
  state.queued = bucket.queue.size();
  state.throttles = bucket.throttles;
  return state;
}

nlohmann::json RateLimiter::ToJson() const {
  const MonotonicTime now = clock_.MonotonicNow();
  std::lock_guard<std::mutex> lock(mutex_);
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [key, bucket] : buckets_) {
    bucket->Advance(now);
    out[key] = {{"effective_rpm", bucket->rpm()},
                {"effective_tpm", bucket->tpm()},
                {"queued", bucket->queue.size()},
                {"throttles", bucket->throttles}};
  }
  return out;
}

size_t RateLimiter::queued() const {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t total = 0;
  for (const auto& [key, bucket] : buckets_) total += bucket->queue.size();
  return total;
}

void RateLimiter::TimerLoop() {
  std::unique_lock<std::mutex> lock(mutex_);
  std::vector<std::function<void(bool)>> ready;
  while (!stopping_) {
    const MonotonicTime now = clock_.MonotonicNow();
    std::optional<nanoseconds> earliest;
    for (auto& [key, bucket] : buckets_) {
      if (bucket->queue.empty()) continue;
      bucket->Advance(now);
      while (!bucket->queue.empty() && bucket->CanAdmit(bucket->queue.front().tokens)) {
        bucket->Take(bucket->queue.front().tokens);
        ready.push_back(std::move(bucket->queue.front().admitted));
        bucket->queue.pop_front();
      }
      if (!bucket->queue.empty()) {
        const nanoseconds due = bucket->TimeUntilAdmissible(bucket->queue.front().tokens);
        if (!earliest || due < *earliest) earliest = due;
      }
    }
    if (!ready.empty()) {
      lock.unlock();
      for (auto& callback : ready) {
        if (callback) callback(true);
      }
      ready.clear();
      lock.lock();
      continue;
    }
    if (!earliest) {
      wake_.wait(lock);
    } else {
      // The due time is in the injected clock's terms; the wait is real time.
      // With a real clock they agree; with a fake one the loop re-checks
      // after each wait and admits once the clock has been moved.
      const nanoseconds wait = std::clamp<nanoseconds>(*earliest, kMinimumWait, kMaximumWait);
      wake_.wait_for(lock, wait);
    }
  }
}

}  // namespace quarry::engine
