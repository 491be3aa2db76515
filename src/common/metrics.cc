#include "common/metrics.h"

#include <charconv>
#include <cmath>
#include <utility>

namespace quarry {
namespace {

enum class Kind { kCounter, kGauge, kHistogram };

struct Series {
  double value = 0;                     // counter / gauge
  std::vector<uint64_t> bucket_counts;  // histogram, one per bound (not cumulative)
  uint64_t count = 0;
  double sum = 0;
};

struct Metric {
  Kind kind = Kind::kCounter;
  std::string help;
  std::vector<double> bounds;
  std::map<Labels, Series> series;
};

// Prometheus wants Go-style floats; the shortest round-trip form is both
// exact and readable ("0.005", not "0.0050000000000000001").
std::string FormatNumber(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

void AppendEscapedLabelValue(std::string& out, std::string_view value) {
  for (const char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

void AppendHelp(std::string& out, std::string_view help) {
  for (const char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

// `{a="x",b="y"}` (with an optional extra label such as le), or "" for none.
std::string LabelText(const Labels& labels, std::string_view extra_name = {},
                      std::string_view extra_value = {}) {
  if (labels.empty() && extra_name.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out += ',';
    first = false;
    out += name;
    out += "=\"";
    AppendEscapedLabelValue(out, value);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
  return out;
}

std::string_view KindName(Kind kind) {
  switch (kind) {
    case Kind::kCounter: return "counter";
    case Kind::kGauge: return "gauge";
    case Kind::kHistogram: return "histogram";
  }
  return "untyped";
}

}  // namespace

struct MetricsRegistry::Impl {
  size_t max_series;
  mutable std::mutex mutex;
  std::map<std::string, Metric, std::less<>> metrics;

  Metric& Declare(std::string_view name, Kind kind) {
    auto it = metrics.find(name);
    if (it == metrics.end()) {
      Metric metric;
      metric.kind = kind;
      if (kind == Kind::kHistogram) metric.bounds = DefaultLatencyBuckets();
      it = metrics.emplace(std::string(name), std::move(metric)).first;
    }
    return it->second;
  }

  // The series for `labels`, folded into the all-"other" series once the
  // metric holds max_series distinct label sets.
  Series& SeriesFor(Metric& metric, const Labels& labels) {
    auto it = metric.series.find(labels);
    if (it != metric.series.end()) return it->second;
    if (metric.series.size() >= max_series) {
      Labels other = labels;
      for (auto& [name, value] : other) value = "other";
      it = metric.series.find(other);
      if (it != metric.series.end()) return it->second;
      it = metric.series.emplace(std::move(other), Series{}).first;
    } else {
      it = metric.series.emplace(labels, Series{}).first;
    }
    if (metric.kind == Kind::kHistogram) it->second.bucket_counts.assign(metric.bounds.size(), 0);
    return it->second;
  }
};

MetricsRegistry::MetricsRegistry(size_t max_series) : impl_(std::make_unique<Impl>()) {
  impl_->max_series = max_series == 0 ? 1 : max_series;
}

MetricsRegistry::~MetricsRegistry() = default;

void MetricsRegistry::DeclareCounter(std::string name, std::string help) {
  std::lock_guard lock(impl_->mutex);
  if (impl_->metrics.contains(name)) return;
  Metric& metric = impl_->Declare(name, Kind::kCounter);
  metric.help = std::move(help);
}

void MetricsRegistry::DeclareGauge(std::string name, std::string help) {
  std::lock_guard lock(impl_->mutex);
  if (impl_->metrics.contains(name)) return;
  Metric& metric = impl_->Declare(name, Kind::kGauge);
  metric.help = std::move(help);
}

void MetricsRegistry::DeclareHistogram(std::string name, std::string help, std::vector<double> bounds) {
  std::lock_guard lock(impl_->mutex);
  if (impl_->metrics.contains(name)) return;
  Metric& metric = impl_->Declare(name, Kind::kHistogram);
  metric.help = std::move(help);
  metric.bounds = std::move(bounds);
}

void MetricsRegistry::Add(std::string_view counter, const Labels& labels, double amount) {
  std::lock_guard lock(impl_->mutex);
  Metric& metric = impl_->Declare(counter, Kind::kCounter);
  if (metric.kind == Kind::kHistogram) return;  // wrong kind: a programming error, ignored
  impl_->SeriesFor(metric, labels).value += amount;
}

void MetricsRegistry::Set(std::string_view gauge, const Labels& labels, double value) {
  std::lock_guard lock(impl_->mutex);
  Metric& metric = impl_->Declare(gauge, Kind::kGauge);
  if (metric.kind == Kind::kHistogram) return;
  impl_->SeriesFor(metric, labels).value = value;
}

void MetricsRegistry::Observe(std::string_view histogram, const Labels& labels, double value) {
  std::lock_guard lock(impl_->mutex);
  Metric& metric = impl_->Declare(histogram, Kind::kHistogram);
  if (metric.kind != Kind::kHistogram) return;
  Series& series = impl_->SeriesFor(metric, labels);
  for (size_t i = 0; i < metric.bounds.size(); ++i) {
    if (value <= metric.bounds[i]) {
      ++series.bucket_counts[i];
      break;
    }
  }
  ++series.count;
  series.sum += value;
}

std::string MetricsRegistry::RenderPrometheus() const {
  std::lock_guard lock(impl_->mutex);
  std::string out;
  for (const auto& [name, metric] : impl_->metrics) {
    out += "# HELP ";
    out += name;
    out += ' ';
    AppendHelp(out, metric.help);
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += KindName(metric.kind);
    out += '\n';
    for (const auto& [labels, series] : metric.series) {
      if (metric.kind != Kind::kHistogram) {
        out += name + LabelText(labels) + ' ' + FormatNumber(series.value) + '\n';
        continue;
      }
      uint64_t cumulative = 0;
      for (size_t i = 0; i < metric.bounds.size(); ++i) {
        cumulative += series.bucket_counts[i];
        out += name + "_bucket" + LabelText(labels, "le", FormatNumber(metric.bounds[i])) + ' ' +
               std::to_string(cumulative) + '\n';
      }
      out += name + "_bucket" + LabelText(labels, "le", "+Inf") + ' ' + std::to_string(series.count) + '\n';
      out += name + "_sum" + LabelText(labels) + ' ' + FormatNumber(series.sum) + '\n';
      out += name + "_count" + LabelText(labels) + ' ' + std::to_string(series.count) + '\n';
    }
  }
  return out;
}

double MetricsRegistry::Value(std::string_view name, const Labels& labels) const {
  std::lock_guard lock(impl_->mutex);
  const auto metric = impl_->metrics.find(name);
  if (metric == impl_->metrics.end()) return 0;
  const auto series = metric->second.series.find(labels);
  if (series == metric->second.series.end()) return 0;
  if (metric->second.kind == Kind::kHistogram) return static_cast<double>(series->second.count);
  return series->second.value;
}

std::vector<double> DefaultLatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
}

}  // namespace quarry
