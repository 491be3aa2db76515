#include "engine/call_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace quarry::engine {
namespace {

using std::chrono::seconds;

std::shared_ptr<const CachedCall> Call(const std::string& text, int64_t in = 10, int64_t out = 5) {
  auto call = std::make_shared<CachedCall>();
  call->value = {{"text", text}};
  call->input_tokens = in;
  call->output_tokens = out;
  return call;
}

CacheOutcome Ok(const std::string& text) { return CacheOutcome{Status::Ok(), Call(text)}; }

// Runs Begin and, for a leader, completes with `text`.
void Fill(CallCache& cache, const std::string& key, const std::string& text,
          seconds ttl = seconds(60)) {
  std::shared_ptr<const CachedCall> hit;
  ASSERT_EQ(cache.Begin(key, nullptr, &hit), CallCache::Lookup::kLeader);
  cache.Complete(key, Ok(text), ttl);
}

TEST(CallCacheKeyTest, LengthPrefixedAndStable) {
  EXPECT_EQ(CallCacheKey("t", "ab", "c"), CallCacheKey("t", "ab", "c"));
  EXPECT_NE(CallCacheKey("t", "ab", "c"), CallCacheKey("t", "a", "bc"));
  EXPECT_NE(CallCacheKey("ta", "b", ""), CallCacheKey("t", "ab", ""));
  EXPECT_NE(CallCacheKey("t", "x", "{\"temperature\":0}"),
            CallCacheKey("t", "x", "{\"temperature\":1}"));
  EXPECT_EQ(CallCacheKey("t", "x", "s").size(), 64u);
}

TEST(CallCacheTest, MissThenHit) {
  FakeClock clock;
  CallCache cache(clock);
  EXPECT_EQ(cache.Get("k"), nullptr);
  Fill(cache, "k", "hello");
  std::shared_ptr<const CachedCall> hit;
  EXPECT_EQ(cache.Begin("k", nullptr, &hit), CallCache::Lookup::kHit);
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(hit->value["text"], "hello");
  EXPECT_EQ(hit->input_tokens, 10);
  ASSERT_NE(cache.Get("k"), nullptr);
  const auto stats = cache.stats();
  EXPECT_EQ(stats.hits, 2);
  EXPECT_EQ(stats.misses, 2);  // the first Get and the leader
  EXPECT_EQ(stats.entries, 1u);
  EXPECT_GT(stats.bytes, 0u);
}

TEST(CallCacheTest, EntriesExpireAfterTheirTtl) {
  FakeClock clock;
  CallCache cache(clock);
  Fill(cache, "k", "v", seconds(30));
  clock.Advance(seconds(29));
  EXPECT_NE(cache.Get("k"), nullptr);
  clock.Advance(seconds(1));
  EXPECT_EQ(cache.Get("k"), nullptr);
  std::shared_ptr<const CachedCall> hit;
  EXPECT_EQ(cache.Begin("k", nullptr, &hit), CallCache::Lookup::kLeader);  // refreshes it
  EXPECT_EQ(cache.stats().entries, 0u);
  cache.Complete("k", Ok("v2"), seconds(30));
  ASSERT_NE(cache.Get("k"), nullptr);
  EXPECT_EQ(cache.Get("k")->value["text"], "v2");
}

TEST(CallCacheTest, ZeroTtlDeliversWithoutStoring) {
  FakeClock clock;
  CallCache cache(clock);
  std::shared_ptr<const CachedCall> hit;
  ASSERT_EQ(cache.Begin("k", nullptr, &hit), CallCache::Lookup::kLeader);
  std::optional<CacheOutcome> got;
  ASSERT_EQ(cache.Begin(
                "k", [&](CacheOutcome o) { got = o; }, &hit),
            CallCache::Lookup::kFollower);
  cache.Complete("k", Ok("v"), seconds(0));
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(got->status.ok());
  EXPECT_EQ(cache.Get("k"), nullptr);
}

TEST(CallCacheTest, EvictsLeastRecentlyUsedOverMaxEntries) {
  FakeClock clock;
  CallCache cache(clock, {.max_entries = 2});
  Fill(cache, "a", "1");
  Fill(cache, "b", "2");
  ASSERT_NE(cache.Get("a"), nullptr);  // a is now more recent than b
  Fill(cache, "c", "3");
  EXPECT_NE(cache.Get("a"), nullptr);
  EXPECT_EQ(cache.Get("b"), nullptr);
  EXPECT_NE(cache.Get("c"), nullptr);
  EXPECT_EQ(cache.stats().entries, 2u);
}

TEST(CallCacheTest, EvictsOverMaxBytes) {
  FakeClock clock;
  const std::string big(1000, 'x');
  CallCache probe(clock);
  Fill(probe, "a", big);
  const size_t one = probe.stats().bytes;
  ASSERT_GT(one, 1000u);

  CallCache cache(clock, {.max_entries = 100, .max_bytes = one * 2 + one / 2});
  Fill(cache, "a", big);
  Fill(cache, "b", big);
  EXPECT_EQ(cache.stats().entries, 2u);
  Fill(cache, "c", big);
  const auto stats = cache.stats();
  EXPECT_EQ(stats.entries, 2u);
  EXPECT_LE(stats.bytes, one * 2 + one / 2);
  EXPECT_EQ(cache.Get("a"), nullptr);
  EXPECT_NE(cache.Get("c"), nullptr);

  // A value larger than the whole budget is delivered but never kept.
  Fill(cache, "huge", std::string(one * 3, 'y'));
  EXPECT_EQ(cache.Get("huge"), nullptr);
  EXPECT_NE(cache.Get("c"), nullptr);
}

TEST(CallCacheTest, FailuresAreSharedButNotCached) {
  FakeClock clock;
  CallCache cache(clock);
  std::shared_ptr<const CachedCall> hit;
  ASSERT_EQ(cache.Begin("k", nullptr, &hit), CallCache::Lookup::kLeader);
  std::vector<Status> delivered;
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(cache.Begin(
                  "k", [&](CacheOutcome o) { delivered.push_back(o.status); }, &hit),
              CallCache::Lookup::kFollower);
  }
  cache.Complete("k", CacheOutcome{UnavailableError("Bedrock throttled"), nullptr}, seconds(60));
  ASSERT_EQ(delivered.size(), 3u);
  for (const Status& s : delivered) EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(cache.Get("k"), nullptr);
  EXPECT_EQ(cache.stats().shared, 0);
  // The next caller leads a new attempt.
  EXPECT_EQ(cache.Begin("k", nullptr, &hit), CallCache::Lookup::kLeader);
}

TEST(CallCacheTest, FollowersMayReenterTheCacheFromDeliver) {
  // Delivery runs outside the lock: a follower may look up again at once.
  FakeClock clock;
  CallCache cache(clock);
  std::shared_ptr<const CachedCall> hit;
  ASSERT_EQ(cache.Begin("k", nullptr, &hit), CallCache::Lookup::kLeader);
  bool reentered = false;
  ASSERT_EQ(cache.Begin(
                "k",
                [&](CacheOutcome) {
                  reentered = cache.Get("k") != nullptr;
                  (void)cache.stats();
                },
                &hit),
            CallCache::Lookup::kFollower);
  cache.Complete("k", Ok("v"), seconds(60));
  EXPECT_TRUE(reentered);
}

TEST(CallCacheTest, HundredConcurrentIdenticalLookupsHaveOneLeader) {
  FakeClock clock;
  CallCache cache(clock);
  const std::string key =
      CallCacheKey("arn:aws:bedrock:us-east-1:123456789012:agent-alias/A/B", "input", "{}");
  constexpr int kThreads = 100;
  std::atomic<int> leaders{0}, followers{0}, hits{0};
  std::mutex mutex;
  std::condition_variable cv;
  int delivered = 0;
  int ok = 0;
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      std::shared_ptr<const CachedCall> hit;
      auto deliver = [&](CacheOutcome outcome) {
        std::lock_guard<std::mutex> lock(mutex);
        ++delivered;
        if (outcome.status.ok() && outcome.call && outcome.call->value["text"] == "shared") ++ok;
        cv.notify_all();
      };
      switch (cache.Begin(key, deliver, &hit)) {
        case CallCache::Lookup::kLeader:
          ++leaders;
          break;
        case CallCache::Lookup::kFollower:
          ++followers;
          break;
        case CallCache::Lookup::kHit:
          ++hits;
          break;
      }
    });
  }
  for (auto& t : threads) t.join();
  // Nobody completed yet, so everyone but the first joined the leader.
  EXPECT_EQ(leaders.load(), 1);
  EXPECT_EQ(followers.load(), kThreads - 1);
  EXPECT_EQ(hits.load(), 0);

  std::thread leader([&] { cache.Complete(key, Ok("shared"), seconds(60)); });
  {
    std::unique_lock<std::mutex> lock(mutex);
    ASSERT_TRUE(cv.wait_for(lock, seconds(10), [&] { return delivered == kThreads - 1; }));
  }
  leader.join();
  EXPECT_EQ(ok, kThreads - 1);
  const auto stats = cache.stats();
  EXPECT_EQ(stats.misses, 1);
  EXPECT_EQ(stats.shared, kThreads - 1);
  std::shared_ptr<const CachedCall> hit;
  EXPECT_EQ(cache.Begin(key, nullptr, &hit), CallCache::Lookup::kHit);
}

TEST(CallCacheTest, ConcurrentMixedKeysStayConsistent) {
  FakeClock clock;
  CallCache cache(clock, {.max_entries = 16});
  std::vector<std::thread> threads;
  std::atomic<int> completed{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const std::string key = "k" + std::to_string((i * 7 + t) % 40);
        std::shared_ptr<const CachedCall> hit;
        if (cache.Begin(
                key, [&](CacheOutcome) { ++completed; }, &hit) == CallCache::Lookup::kLeader) {
          cache.Complete(key, Ok(key), seconds(60));
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const auto stats = cache.stats();
  EXPECT_LE(stats.entries, 16u);
  EXPECT_EQ(stats.hits + stats.misses + completed.load(), 800);
}

}  // namespace
}  // namespace quarry::engine
