#include "engine/work_queue.h"

#include <utility>

namespace quarry::engine {

WorkPool::WorkPool(int threads) {
  if (threads < 1) threads = 1;
  threads_.reserve(static_cast<size_t>(threads));
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
}

WorkPool::~WorkPool() { Stop(); }

void WorkPool::Post(std::function<void()> work) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    work_.push_back(std::move(work));
  }
  wake_.notify_one();
}

void WorkPool::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
    work_.clear();
  }
  wake_.notify_all();
  for (std::thread& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  threads_.clear();
}

size_t WorkPool::queued() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return work_.size();
}

void WorkPool::Loop() {
  for (;;) {
    std::function<void()> work;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !work_.empty(); });
      if (stopping_) return;
      work = std::move(work_.front());
      work_.pop_front();
    }
    work();
  }
}

DelayTimer::DelayTimer() : thread_([this] { Loop(); }) {}

DelayTimer::~DelayTimer() { Stop(); }

void DelayTimer::After(std::chrono::milliseconds delay, std::function<void()> work) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    items_.push(Item{std::chrono::steady_clock::now() + delay, next_sequence_++, std::move(work)});
  }
  wake_.notify_one();
}

void DelayTimer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    while (!items_.empty()) items_.pop();
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void DelayTimer::Loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    if (items_.empty()) {
      wake_.wait(lock);
      continue;
    }
    const auto due = items_.top().due;
    if (std::chrono::steady_clock::now() < due) {
      wake_.wait_until(lock, due);
      continue;
    }
    std::function<void()> work = std::move(const_cast<Item&>(items_.top()).work);
    items_.pop();
    lock.unlock();
    work();
    lock.lock();
  }
}

}  // namespace quarry::engine
