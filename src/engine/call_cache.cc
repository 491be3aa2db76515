#include "engine/call_cache.h"

#include <utility>

#include "common/crypto.h"

namespace quarry::engine {

std::string CallCacheKey(std::string_view target, std::string_view rendered_input,
                         std::string_view settings) {
  // Each part is preceded by its decimal length and a separator, so no two
  // different part lists hash the same bytes.
  Sha256Hasher hasher;
  for (const std::string_view part : {target, rendered_input, settings}) {
    const std::string length = std::to_string(part.size());
    hasher.Update(length);
    hasher.Update(":");
    hasher.Update(part);
  }
  return DigestHex(hasher.Finish());
}

struct CallCache::Entry {
  std::shared_ptr<const CachedCall> call;
  MonotonicTime expires;
  size_t bytes = 0;
  std::list<std::string>::iterator lru;
};

struct CallCache::Pending {
  std::vector<std::function<void(CacheOutcome)>> followers;
};

namespace {

// What an entry costs against max_bytes: the value's serialized size plus
// the key (held twice: map and LRU list) and a fixed allowance for the
// bookkeeping nodes. An estimate, but proportional to what is really held.
size_t EntryBytes(const std::string& key, const CachedCall& call) {
  constexpr size_t kOverhead = 160;
  return call.value.dump().size() + 2 * key.size() + kOverhead;
}

}  // namespace

CallCache::CallCache(const Clock& clock) : CallCache(clock, Options{}) {}

CallCache::CallCache(const Clock& clock, Options options) : clock_(clock), options_(options) {}

CallCache::Lookup CallCache::Begin(const std::string& key,
                                   std::function<void(CacheOutcome)> deliver,
                                   std::shared_ptr<const CachedCall>* hit) {
  const MonotonicTime now = clock_.MonotonicNow();
  std::lock_guard<std::mutex> lock(mutex_);
  if (auto it = entries_.find(key); it != entries_.end()) {
    Entry& entry = *it->second;
    if (now < entry.expires) {
      lru_.splice(lru_.begin(), lru_, entry.lru);
      if (hit != nullptr) *hit = entry.call;
      ++stats_.hits;
      return Lookup::kHit;
    }
    // Expired: dropped here, and this caller refreshes it as the leader.
    bytes_ -= entry.bytes;
    lru_.erase(entry.lru);
    entries_.erase(it);
  }
  if (auto it = pending_.find(key); it != pending_.end()) {
    it->second->followers.push_back(std::move(deliver));
    return Lookup::kFollower;
  }
  pending_.emplace(key, std::make_shared<Pending>());
  ++stats_.misses;
  return Lookup::kLeader;
}

std::shared_ptr<const CachedCall> CallCache::Get(const std::string& key) {
  const MonotonicTime now = clock_.MonotonicNow();
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end() || !(now < it->second->expires)) {
    ++stats_.misses;
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, it->second->lru);
  ++stats_.hits;
  return it->second->call;
}

void CallCache::Complete(const std::string& key, const CacheOutcome& outcome,
                         std::chrono::seconds ttl) {
  const bool store = outcome.status.ok() && outcome.call != nullptr && ttl.count() > 0;
  // Sized before taking the lock: serializing a large value is the one
  // expensive part of storing it.
  const size_t bytes = store ? EntryBytes(key, *outcome.call) : 0;
  const MonotonicTime now = clock_.MonotonicNow();

  std::shared_ptr<Pending> pending;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = pending_.find(key); it != pending_.end()) {
      pending = std::move(it->second);
      pending_.erase(it);
      if (outcome.status.ok()) stats_.shared += static_cast<int64_t>(pending->followers.size());
    }
    // A value larger than the whole byte budget is delivered but not kept.
    if (store && bytes <= options_.max_bytes && options_.max_entries > 0) {
      if (auto it = entries_.find(key); it != entries_.end()) {
        bytes_ -= it->second->bytes;
        lru_.erase(it->second->lru);
        entries_.erase(it);
      }
      auto entry = std::make_shared<Entry>();
      entry->call = outcome.call;
      entry->expires = now + ttl;
      entry->bytes = bytes;
      lru_.push_front(key);
      entry->lru = lru_.begin();
      entries_.emplace(key, std::move(entry));
      bytes_ += bytes;
      EvictLocked();
    }
  }
  if (pending == nullptr) return;
  for (auto& deliver : pending->followers) {
    if (deliver) deliver(outcome);
  }
}

void CallCache::EvictLocked() {
  while (!lru_.empty() && (entries_.size() > options_.max_entries || bytes_ > options_.max_bytes)) {
    auto it = entries_.find(lru_.back());
    bytes_ -= it->second->bytes;
    entries_.erase(it);
    lru_.pop_back();
  }
}

CallCache::Stats CallCache::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  Stats stats = stats_;
  stats.entries = entries_.size();
  stats.bytes = bytes_;
  return stats;
}

}  // namespace quarry::engine
