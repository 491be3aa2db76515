// The cost of serving a Bedrock call from the call cache: a warm cache of
// 10,000 entries, keys from CallCacheKey over a ~2 KB rendered input (a
// task prompt with a record's fields filled in) plus the target and the
// settings. Key computation and lookup are measured separately, and
// together as the executor does them; the target is a hit in <= 100 us.
// Build: -DQUARRY_BENCHMARKS=ON, Release.

#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "engine/call_cache.h"

namespace quarry::engine {
namespace {

constexpr int kEntries = 10'000;
constexpr char kTarget[] =
    "arn:aws:bedrock:us-east-1:123456789012:agent-alias/ABCD1234EF/GHIJ5678KL";
constexpr char kSettings[] = R"({"max_tokens":1024,"temperature":0,"output":"json"})";

// A rendered task of about 2 KB, distinct per record.
std::string RenderedInput(int record) {
  std::string input =
      "Classify the support ticket below into one of: billing, outage, account, feature_request, "
      "other. "
      "Answer with JSON {\"category\":..., \"urgency\": 1-5, \"summary\": one sentence}.\n\n";
  input += "Ticket #" + std::to_string(100'000 + record) + "\nCustomer: Example Customer " +
           std::to_string(record) +
           "\nSubject: Invoices for the last quarter do not match the usage report\nBody:\n";
  while (input.size() < 2'000) {
    input +=
        "Our finance team compared the invoice with the usage export and found a difference in the "
        "number "
        "of seats billed for the month; please check and correct it before the next billing run. ";
  }
  input.resize(2'000);
  return input;
}

// One warm cache shared by the benchmarks (built once).
struct WarmCache {
  WarmCache() : cache(SystemClock::Get()) {
    inputs.reserve(kEntries);
    keys.reserve(kEntries);
    for (int i = 0; i < kEntries; ++i) {
      inputs.push_back(RenderedInput(i));
      keys.push_back(CallCacheKey(kTarget, inputs.back(), kSettings));
      std::shared_ptr<const CachedCall> hit;
      cache.Begin(keys.back(), nullptr, &hit);
      auto call = std::make_shared<CachedCall>();
      call->value = {
          {"text", R"({"category":"billing","urgency":3,"summary":"Invoice and usage differ."})"},
          {"outputs", {{"category", "billing"}, {"urgency", 3}}},
          {"usage", {{"input_tokens", 512}, {"output_tokens", 40}}},
          {"request_id", "c0ffee00-0000-4000-8000-" + std::to_string(100'000'000'000 + i)}};
      call->input_tokens = 512;
      call->output_tokens = 40;
      cache.Complete(keys.back(), CacheOutcome{Status::Ok(), call}, std::chrono::hours(1));
    }
  }
  CallCache cache;
  std::vector<std::string> inputs;
  std::vector<std::string> keys;
};

WarmCache& Warm() {
  static WarmCache* warm = new WarmCache();
  return *warm;
}

void BM_KeyComputation(benchmark::State& state) {
  WarmCache& warm = Warm();
  size_t i = 0;
  for (auto _ : state) {
    std::string key = CallCacheKey(kTarget, warm.inputs[i], kSettings);
    benchmark::DoNotOptimize(key.data());
    i = (i + 1) % warm.inputs.size();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * 2'000);
}

void BM_GetHit(benchmark::State& state) {
  WarmCache& warm = Warm();
  size_t i = 0;
  for (auto _ : state) {
    auto call = warm.cache.Get(warm.keys[i]);
    benchmark::DoNotOptimize(call.get());
    i = (i + 7919) % warm.keys.size();  // stride over the table: no locality
  }
  if (warm.cache.stats().entries != static_cast<size_t>(kEntries))
    state.SkipWithError("cache is not warm");
}

void BM_BeginHit(benchmark::State& state) {
  WarmCache& warm = Warm();
  size_t i = 0;
  for (auto _ : state) {
    std::shared_ptr<const CachedCall> hit;
    const auto lookup = warm.cache.Begin(warm.keys[i], nullptr, &hit);
    if (lookup != CallCache::Lookup::kHit) {
      state.SkipWithError("expected a hit");
      break;
    }
    benchmark::DoNotOptimize(hit.get());
    i = (i + 7919) % warm.keys.size();
  }
}

// What the executor pays per cached step: the key, then the lookup.
void BM_KeyAndBeginHit(benchmark::State& state) {
  WarmCache& warm = Warm();
  size_t i = 0;
  for (auto _ : state) {
    const std::string key = CallCacheKey(kTarget, warm.inputs[i], kSettings);
    std::shared_ptr<const CachedCall> hit;
    const auto lookup = warm.cache.Begin(key, nullptr, &hit);
    if (lookup != CallCache::Lookup::kHit) {
      state.SkipWithError("expected a hit");
      break;
    }
    benchmark::DoNotOptimize(hit.get());
    i = (i + 7919) % warm.keys.size();
  }
}

BENCHMARK(BM_KeyComputation);
BENCHMARK(BM_GetHit);
BENCHMARK(BM_BeginHit);
BENCHMARK(BM_BeginHit)->Threads(2)->Name("BM_BeginHit/contended");
BENCHMARK(BM_KeyAndBeginHit);

}  // namespace
}  // namespace quarry::engine

BENCHMARK_MAIN();
