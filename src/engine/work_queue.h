#pragma once
// The engine's two execution helpers: a fixed pool of threads for blocking
// work (database transactions, rendering) and a timer that posts delayed
// work (retry backoff) to such a pool. Nothing in the engine sleeps per run.
//
// Thread safety: thread-safe. Stop() runs nothing further; queued work is
// dropped (the engine drains before stopping).

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

namespace quarry::engine {

class WorkPool {
 public:
  explicit WorkPool(int threads);
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  void Post(std::function<void()> work);
  void Stop();
  size_t queued() const;

 private:
  void Loop();
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> work_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

class DelayTimer {
 public:
  DelayTimer();
  ~DelayTimer();
  DelayTimer(const DelayTimer&) = delete;
  DelayTimer& operator=(const DelayTimer&) = delete;

  // Runs `work` on the timer thread after `delay` (keep it short: post it on).
  void After(std::chrono::milliseconds delay, std::function<void()> work);
  void Stop();

 private:
  struct Item {
    std::chrono::steady_clock::time_point due;
    uint64_t sequence;
    std::function<void()> work;
    bool operator>(const Item& other) const {
      return due != other.due ? due > other.due : sequence > other.sequence;
    }
  };
  void Loop();
  std::mutex mutex_;
  std::condition_variable wake_;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> items_;
  uint64_t next_sequence_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace quarry::engine
