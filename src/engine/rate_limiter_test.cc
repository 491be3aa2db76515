#include "engine/rate_limiter.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace quarry::engine {
namespace {

using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

// Admission callbacks record (id, admitted) in the order they ran; tests wait
// for a count with a generous bound (never for a duration).
class Recorder {
 public:
  std::function<void(bool)> Callback(int id) {
    return [this, id](bool admitted) {
      std::lock_guard<std::mutex> lock(mutex_);
      events_.emplace_back(id, admitted);
      cv_.notify_all();
    };
  }
  bool WaitFor(size_t count) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cv_.wait_for(lock, seconds(20), [&] { return events_.size() >= count; });
  }
  std::vector<std::pair<int, bool>> events() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return events_;
  }
  size_t size() const { return events().size(); }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::pair<int, bool>> events_;
};

using Events = std::vector<std::pair<int, bool>>;

TEST(RateLimiterTest, UnlimitedAdmitsAtOnceOnTheCallersThread) {
  FakeClock clock;
  Recorder recorder;
  RateLimiter limiter(clock);
  for (int i = 0; i < 50; ++i)
    EXPECT_EQ(limiter.Acquire("p/m", 1'000'000, recorder.Callback(i)), 0u);
  EXPECT_EQ(recorder.size(), 50u);  // before Acquire returned
  EXPECT_EQ(limiter.queued(), 0u);
  const auto state = limiter.State("p/m");
  EXPECT_EQ(state.effective_rpm, 0);
  EXPECT_EQ(state.effective_tpm, 0);
}

TEST(RateLimiterTest, BurstThenQueueFifoUntilRefill) {
  FakeClock clock;
  // 600 requests per minute: a burst of 100 (ten seconds' worth), then 10/s.
  Recorder burst, waiting;
  RateLimiter limiter(clock, RateBudget{.requests_per_minute = 600});
  for (int i = 0; i < 100; ++i) ASSERT_EQ(limiter.Acquire("p/m", 0, burst.Callback(i)), 0u);
  EXPECT_EQ(burst.size(), 100u);

  std::vector<RateLimiter::Ticket> tickets;
  for (int i = 1; i <= 3; ++i) tickets.push_back(limiter.Acquire("p/m", 0, waiting.Callback(i)));
  for (auto ticket : tickets) EXPECT_NE(ticket, 0u);
  EXPECT_EQ(waiting.size(), 0u);
  EXPECT_EQ(limiter.queued(), 3u);
  EXPECT_EQ(limiter.State("p/m").queued, 3u);

  // Time does not pass on its own: nothing more is admitted until it does.
  clock.Advance(milliseconds(100));  // one request's worth
  limiter.Wake();
  ASSERT_TRUE(waiting.WaitFor(1));
  EXPECT_EQ(waiting.events(), (Events{{1, true}}));
  EXPECT_EQ(limiter.queued(), 2u);

  clock.Advance(milliseconds(200));
  limiter.Wake();
  ASSERT_TRUE(waiting.WaitFor(3));
  EXPECT_EQ(waiting.events(), (Events{{1, true}, {2, true}, {3, true}}));
  EXPECT_EQ(limiter.queued(), 0u);
}

TEST(RateLimiterTest, KeysHaveIndependentBudgetsAndQueues) {
  FakeClock clock;
  Recorder recorder;
  RateLimiter limiter(clock);
  limiter.SetBudget("p/slow", RateBudget{.requests_per_minute = 6});  // a burst of 1
  EXPECT_EQ(limiter.Acquire("p/slow", 0, recorder.Callback(1)), 0u);
  EXPECT_NE(limiter.Acquire("p/slow", 0, recorder.Callback(2)), 0u);
  EXPECT_EQ(limiter.Acquire("p/fast", 0, recorder.Callback(3)), 0u);  // unlimited default
  EXPECT_EQ(recorder.events(), (Events{{1, true}, {3, true}}));
  EXPECT_EQ(limiter.State("p/slow").effective_rpm, 6);
  clock.Advance(seconds(10));
  limiter.Wake();
  ASSERT_TRUE(recorder.WaitFor(3));
  EXPECT_EQ(recorder.events().back(), (std::pair<int, bool>{2, true}));
}

TEST(RateLimiterTest, TokensBudgetAdmitsInOrderWithoutOvertaking) {
  FakeClock clock;
  // 60,000 tokens per minute: a bucket of 10,000, refilled at 1,000/s.
  Recorder recorder;
  RateLimiter limiter(clock, RateBudget{.tokens_per_minute = 60'000});
  EXPECT_EQ(limiter.Acquire("p/m", 10'000, recorder.Callback(1)), 0u);
  EXPECT_NE(limiter.Acquire("p/m", 500, recorder.Callback(2)), 0u);
  // Fits nothing yet either, and must not overtake #2 once it would.
  EXPECT_NE(limiter.Acquire("p/m", 1, recorder.Callback(3)), 0u);
  clock.Advance(milliseconds(250));
  limiter.Wake();
  EXPECT_EQ(recorder.size(), 1u);  // 250 tokens: neither fits... and #3 waits behind #2
  clock.Advance(milliseconds(251));
  limiter.Wake();
  ASSERT_TRUE(recorder.WaitFor(3));
  EXPECT_EQ(recorder.events(), (Events{{1, true}, {2, true}, {3, true}}));
}

TEST(RateLimiterTest, OversizedRequestGoesWhenFullAndLeavesDebt) {
  FakeClock clock;
  Recorder recorder;
  RateLimiter limiter(clock, RateBudget{.tokens_per_minute = 6'000});  // bucket 1,000, 100/s
  EXPECT_EQ(limiter.Acquire("p/m", 3'000, recorder.Callback(1)), 0u);  // full bucket: goes
  EXPECT_NE(limiter.Acquire("p/m", 1, recorder.Callback(2)), 0u);
  clock.Advance(seconds(19));  // debt of 2,000 tokens not yet repaid
  EXPECT_EQ(limiter.State("p/m").queued, 1u);
  clock.Advance(seconds(2));
  limiter.Wake();
  ASSERT_TRUE(recorder.WaitFor(2));
}

TEST(RateLimiterTest, SettleReturnsOverestimatedTokens) {
  FakeClock clock;
  Recorder recorder;
  RateLimiter limiter(clock, RateBudget{.tokens_per_minute = 6'000});  // bucket 1,000
  EXPECT_EQ(limiter.Acquire("p/m", 600, recorder.Callback(1)), 0u);
  EXPECT_NE(limiter.Acquire("p/m", 600, recorder.Callback(2)), 0u);  // 400 left
  // The first call used 100 tokens: 500 come back and #2 fits, with no time passing.
  limiter.Settle("p/m", 600, 100);
  ASSERT_TRUE(recorder.WaitFor(2));

  // An underestimate is charged: the bucket goes into debt.
  limiter.Settle("p/m", 600, 2'000);  // 300 - 1,400 = -1,100
  EXPECT_NE(limiter.Acquire("p/m", 1, recorder.Callback(3)), 0u);
  clock.Advance(seconds(10));
  limiter.Wake();
  EXPECT_EQ(limiter.queued(), 1u);
  clock.Advance(seconds(2));
  limiter.Wake();
  ASSERT_TRUE(recorder.WaitFor(3));
  limiter.Settle("unknown/key", 10, 1);  // no effect, no crash
}

TEST(RateLimiterTest, CancelRunsTheCallbackWithFalseOnce) {
  FakeClock clock;
  Recorder recorder;
  RateLimiter limiter(clock, RateBudget{.requests_per_minute = 6});
  EXPECT_EQ(limiter.Acquire("p/m", 0, recorder.Callback(1)), 0u);
  const auto second = limiter.Acquire("p/m", 0, recorder.Callback(2));
  const auto third = limiter.Acquire("p/m", 0, recorder.Callback(3));
  ASSERT_NE(second, 0u);
  limiter.Cancel(second);
  EXPECT_EQ(recorder.events(),
            (Events{{1, true}, {2, false}}));  // on this thread, before Cancel returned
  limiter.Cancel(second);                      // again: nothing
  limiter.Cancel(0);
  limiter.Cancel(987654);
  EXPECT_EQ(limiter.queued(), 1u);
  clock.Advance(seconds(10));
  limiter.Wake();
  ASSERT_TRUE(recorder.WaitFor(3));
  EXPECT_EQ(recorder.events().back(), (std::pair<int, bool>{3, true}));
  limiter.Cancel(third);  // already admitted: nothing
  EXPECT_EQ(recorder.size(), 3u);
}

TEST(RateLimiterTest, ThrottlesTightenThenRecoverEveryQuietMinute) {
  FakeClock clock;
  RateLimiter limiter(clock,
                      RateBudget{.requests_per_minute = 1'000, .tokens_per_minute = 100'000});
  limiter.OnThrottled("p/m");
  auto state = limiter.State("p/m");
  EXPECT_NEAR(state.effective_rpm, 700, 1e-6);
  EXPECT_NEAR(state.effective_tpm, 70'000, 1e-6);
  EXPECT_EQ(state.throttles, 1);
  limiter.OnThrottled("p/m");
  EXPECT_NEAR(limiter.State("p/m").effective_rpm, 490, 1e-6);
  for (int i = 0; i < 20; ++i) limiter.OnThrottled("p/m");
  state = limiter.State("p/m");
  EXPECT_NEAR(state.effective_rpm, 50, 1e-6);  // floor: 5% of the quota
  EXPECT_EQ(state.throttles, 22);

  clock.Advance(seconds(59));
  EXPECT_NEAR(limiter.State("p/m").effective_rpm, 50, 1e-6);
  clock.Advance(seconds(1));
  EXPECT_NEAR(limiter.State("p/m").effective_rpm, 150, 1e-6);  // +10% of the quota
  clock.Advance(minutes(3));
  EXPECT_NEAR(limiter.State("p/m").effective_rpm, 450, 1e-6);
  limiter.OnThrottled("p/m");  // a new 429 restarts the quiet minute
  EXPECT_NEAR(limiter.State("p/m").effective_rpm, 315, 1e-6);
  clock.Advance(minutes(30));
  state = limiter.State("p/m");
  EXPECT_NEAR(state.effective_rpm, 1'000, 1e-6);  // never above the quota
  EXPECT_NEAR(state.effective_tpm, 100'000, 1e-6);

  const nlohmann::json json = limiter.ToJson();
  ASSERT_TRUE(json.contains("p/m"));
  EXPECT_EQ(json["p/m"]["throttles"], 23);
  EXPECT_EQ(json["p/m"]["queued"], 0);
  EXPECT_DOUBLE_EQ(json["p/m"]["effective_rpm"].get<double>(), 1'000);
}

TEST(RateLimiterTest, ThrottlingSlowsAdmission) {
  FakeClock clock;
  Recorder recorder;
  RateLimiter limiter(clock, RateBudget{.requests_per_minute = 60});  // burst 10, 1/s
  limiter.OnThrottled("p/m");                                         // 42/min: burst 7
  int immediate = 0;
  for (int i = 0; i < 10; ++i)
    immediate += limiter.Acquire("p/m", 0, recorder.Callback(i)) == 0 ? 1 : 0;
  EXPECT_EQ(immediate, 7);
  EXPECT_EQ(limiter.queued(), 3u);
}

TEST(RateLimiterTest, CallbacksMayReenterTheLimiter) {
  FakeClock clock;
  Recorder recorder;
  RateLimiter limiter(clock, RateBudget{.requests_per_minute = 6});
  EXPECT_EQ(limiter.Acquire("p/m", 0, recorder.Callback(1)), 0u);
  auto inner = recorder.Callback(3);
  limiter.Acquire("p/m", 0, [&, inner](bool admitted) {
    recorder.Callback(2)(admitted);
    limiter.Acquire("p/other", 0, inner);  // from the timer thread
    (void)limiter.ToJson();
  });
  clock.Advance(seconds(10));
  limiter.Wake();
  ASSERT_TRUE(recorder.WaitFor(3));
  EXPECT_EQ(recorder.events(), (Events{{1, true}, {2, true}, {3, true}}));
}

TEST(RateLimiterTest, DestructorCancelsQueuedRequests) {
  FakeClock clock;
  Recorder recorder;
  {
    RateLimiter limiter(clock, RateBudget{.requests_per_minute = 6});
    EXPECT_EQ(limiter.Acquire("p/m", 0, recorder.Callback(1)), 0u);
    EXPECT_NE(limiter.Acquire("p/m", 0, recorder.Callback(2)), 0u);
    EXPECT_EQ(limiter.Acquire("q/m", 0, recorder.Callback(3)), 0u);
    EXPECT_NE(limiter.Acquire("q/m", 0, recorder.Callback(4)), 0u);
    EXPECT_EQ(limiter.queued(), 2u);
  }
  const auto events = recorder.events();
  ASSERT_EQ(events.size(), 4u);
  int cancelled = 0;
  for (const auto& [id, admitted] : events) cancelled += admitted ? 0 : 1;
  EXPECT_EQ(cancelled, 2);
  EXPECT_EQ(events[2], (std::pair<int, bool>{2, false}));
}

TEST(RateLimiterTest, ManyWaitersAcrossKeysAllAdmitted) {
  FakeClock clock;
  Recorder recorder;
  RateLimiter limiter(clock, RateBudget{.requests_per_minute = 60});  // burst 10 per key
  constexpr int kKeys = 5, kPerKey = 40;
  for (int k = 0; k < kKeys; ++k) {
    for (int i = 0; i < kPerKey; ++i)
      limiter.Acquire("p/" + std::to_string(k), 0, recorder.Callback(k * 1000 + i));
  }
  EXPECT_EQ(limiter.queued(), static_cast<size_t>(kKeys * (kPerKey - 10)));
  // A bucket holds at most ten seconds' worth, so time is given in steps.
  for (int step = 1; step <= 3; ++step) {
    clock.Advance(seconds(10));
    limiter.Wake();
    ASSERT_TRUE(recorder.WaitFor(static_cast<size_t>(kKeys * (10 + 10 * step))));
  }
  EXPECT_EQ(limiter.queued(), 0u);
  // FIFO within each key.
  std::vector<int> last(kKeys, -1);
  for (const auto& [id, admitted] : recorder.events()) {
    EXPECT_TRUE(admitted);
    EXPECT_GT(id % 1000, last[id / 1000]);
    last[id / 1000] = id % 1000;
  }
}

}  // namespace
}  // namespace quarry::engine
