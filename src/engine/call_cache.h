#pragma once
// The cache and deduplication of identical Bedrock calls (the seed's "cache
// common responses"): key = target (agent alias ARN or model id) + rendered
// input + settings, computed by CallCacheKey. A fresh entry answers at once;
// concurrent identical calls share one in-flight call: the first caller is
// told to make it (kLeader), the others wait (kFollower) and receive the
// leader's result, so 100 identical runs at once reach Bedrock once.
//
// Failures are not cached: followers of a failed leader receive the failure
// (each run then applies its own retry policy). Entries expire after their
// TTL; the cache holds at most `max_entries` results and `max_bytes` of
// values (least recently used evicted first).
//
// Thread safety: thread-safe. Callbacks (the followers' `deliver`) run on the
// thread that calls Complete(), outside the cache's lock.

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/status.h"

namespace quarry::engine {

// SHA-256 hex of the parts, length-prefixed so ("ab","c") != ("a","bc").
std::string CallCacheKey(std::string_view target, std::string_view rendered_input, std::string_view settings);

// What a cached call produced: the step's outputs and accounting.
struct CachedCall {
  nlohmann::json value{};           // the executor's result JSON (text, outputs, usage, request id)
  int64_t input_tokens = 0, output_tokens = 0;
};

struct CacheOutcome {
  Status status;              // OK with `call`, or the leader's failure
  std::shared_ptr<const CachedCall> call{};
};

class CallCache {
 public:
  struct Options {
    size_t max_entries = 100'000;
    size_t max_bytes = 256 * 1024 * 1024;
  };
  explicit CallCache(const Clock& clock);
  CallCache(const Clock& clock, Options options);

  enum class Lookup {
    kHit,       // `hit` holds the cached call
    kLeader,    // make the call, then Complete(key, ...)
    kFollower,  // `deliver` will run when the leader completes
  };
  // `deliver` is kept only for kFollower.
  Lookup Begin(const std::string& key, std::function<void(CacheOutcome)> deliver,
               std::shared_ptr<const CachedCall>* hit);
  // Only a fresh entry (no leader/follower bookkeeping): for benchmarks and
  // callers that do not deduplicate.
  std::shared_ptr<const CachedCall> Get(const std::string& key);
  // The leader's result: stored with `ttl` when OK, and delivered to followers.
  void Complete(const std::string& key, const CacheOutcome& outcome, std::chrono::seconds ttl);

  struct Stats {
    // hits: fresh entries served; misses: lookups that became leaders (and
    // Get() misses); shared: followers served a leader's successful result.
    int64_t hits = 0, misses = 0, shared = 0;
    size_t entries = 0, bytes = 0;
  };
  Stats stats() const;

 private:
  struct Entry;
  struct Pending;
  void EvictLocked();

  const Clock& clock_;
  const Options options_;
  mutable std::mutex mutex_;
  std::list<std::string> lru_;  // front = most recent
  std::unordered_map<std::string, std::shared_ptr<Entry>> entries_;
  std::unordered_map<std::string, std::shared_ptr<Pending>> pending_;
  size_t bytes_ = 0;
  Stats stats_{};
};

}  // namespace quarry::engine
