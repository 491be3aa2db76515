#pragma once
// A small Prometheus metrics registry: counters, gauges and histograms with
// labels, rendered in the text exposition format (version 0.0.4) for
// GET /metrics.
//
// Names follow Prometheus conventions (quarry_http_requests_total,
// quarry_bedrock_call_duration_seconds). Label values are escaped on output.
// Label sets are bounded per metric (max_series, default 10,000): past it,
// new series are folded into one with every label value "other", so a flood
// of distinct values (ids, paths) cannot exhaust memory.
//
// Thread safety: all methods are thread-safe; updates to an existing series
// take one short lock.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace quarry {

using Labels = std::vector<std::pair<std::string, std::string>>;

class MetricsRegistry {
 public:
  explicit MetricsRegistry(size_t max_series = 10'000);
  ~MetricsRegistry();

  // Declares a metric (idempotent; later calls with the same name return
  // without change). Updating an undeclared metric declares it with an empty
  // help text.
  void DeclareCounter(std::string name, std::string help);
  void DeclareGauge(std::string name, std::string help);
  // Upper bounds in ascending order (+Inf is implied).
  void DeclareHistogram(std::string name, std::string help, std::vector<double> bounds);

  void Add(std::string_view counter, const Labels& labels, double amount = 1.0);
  void Set(std::string_view gauge, const Labels& labels, double value);
  void Observe(std::string_view histogram, const Labels& labels, double value);

  // The whole registry in Prometheus text format.
  std::string RenderPrometheus() const;
  // A counter's or gauge's current value (tests); 0 when absent.
  double Value(std::string_view name, const Labels& labels) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Latency buckets in seconds for HTTP and Bedrock calls (1 ms .. 120 s).
std::vector<double> DefaultLatencyBuckets();

}  // namespace quarry
