#include "common/metrics.h"

#include <gtest/gtest.h>

#include <string>

namespace quarry {
namespace {

TEST(MetricsRegistryTest, CountersRenderWithHelpTypeAndEscapedLabels) {
  MetricsRegistry registry;
  registry.DeclareCounter("quarry_test_total", "Things counted.");
  registry.Add("quarry_test_total", {{"route", "/a\"b\\c\nd"}, {"status", "200"}});
  registry.Add("quarry_test_total", {{"route", "/a\"b\\c\nd"}, {"status", "200"}}, 2);
  const std::string text = registry.RenderPrometheus();
  EXPECT_NE(text.find("# HELP quarry_test_total Things counted.\n"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE quarry_test_total counter\n"), std::string::npos) << text;
  EXPECT_NE(text.find("quarry_test_total{route=\"/a\\\"b\\\\c\\nd\",status=\"200\"} 3\n"), std::string::npos)
      << text;
  EXPECT_EQ(registry.Value("quarry_test_total", {{"route", "/a\"b\\c\nd"}, {"status", "200"}}), 3);
  EXPECT_EQ(registry.Value("quarry_absent", {}), 0);
}

TEST(MetricsRegistryTest, HistogramBucketsAreCumulative) {
  MetricsRegistry registry;
  registry.DeclareHistogram("quarry_latency_seconds", "Latency.", {0.1, 1});
  registry.Observe("quarry_latency_seconds", {{"op", "x"}}, 0.05);
  registry.Observe("quarry_latency_seconds", {{"op", "x"}}, 0.5);
  registry.Observe("quarry_latency_seconds", {{"op", "x"}}, 5);
  const std::string text = registry.RenderPrometheus();
  EXPECT_NE(text.find("quarry_latency_seconds_bucket{op=\"x\",le=\"0.1\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("quarry_latency_seconds_bucket{op=\"x\",le=\"1\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("quarry_latency_seconds_bucket{op=\"x\",le=\"+Inf\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("quarry_latency_seconds_sum{op=\"x\"} 5.55\n"), std::string::npos) << text;
  EXPECT_NE(text.find("quarry_latency_seconds_count{op=\"x\"} 3\n"), std::string::npos) << text;
}

TEST(MetricsRegistryTest, SeriesPastTheBoundFoldIntoOther) {
  MetricsRegistry registry(/*max_series=*/2);
  registry.Add("quarry_paths_total", {{"path", "/1"}});
  registry.Add("quarry_paths_total", {{"path", "/2"}});
  registry.Add("quarry_paths_total", {{"path", "/3"}});
  registry.Add("quarry_paths_total", {{"path", "/4"}});
  EXPECT_EQ(registry.Value("quarry_paths_total", {{"path", "other"}}), 2);
  EXPECT_EQ(registry.Value("quarry_paths_total", {{"path", "/3"}}), 0);
  registry.Set("quarry_gauge", {}, 7.5);
  EXPECT_EQ(registry.Value("quarry_gauge", {}), 7.5);
  EXPECT_NE(registry.RenderPrometheus().find("quarry_gauge 7.5\n"), std::string::npos);
}

}  // namespace
}  // namespace quarry
