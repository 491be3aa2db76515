#include "engine/pricing.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace quarry::engine {
namespace {

using ::testing::HasSubstr;

void ExpectPrice(const Price& price, double in, double out) {
  EXPECT_DOUBLE_EQ(price.input_per_1k, in);
  EXPECT_DOUBLE_EQ(price.output_per_1k, out);
}

TEST(PriceTableTest, BuiltInClaudeListPrices) {
  const PriceTable table = PriceTable::BuiltIn();
  ExpectPrice(table.Lookup("anthropic.claude-3-haiku-20240307-v1:0", "us-east-1"), 0.00025,
              0.00125);
  ExpectPrice(table.Lookup("anthropic.claude-3-5-haiku-20241022-v1:0", "us-west-2"), 0.0008, 0.004);
  ExpectPrice(table.Lookup("anthropic.claude-3-sonnet-20240229-v1:0", ""), 0.003, 0.015);
  ExpectPrice(table.Lookup("anthropic.claude-3-5-sonnet-20240620-v1:0", ""), 0.003, 0.015);
  ExpectPrice(table.Lookup("anthropic.claude-3-5-sonnet-20241022-v2:0", ""), 0.003, 0.015);
  ExpectPrice(table.Lookup("anthropic.claude-3-7-sonnet-20250219-v1:0", ""), 0.003, 0.015);
  ExpectPrice(table.Lookup("anthropic.claude-sonnet-4-20250514-v1:0", ""), 0.003, 0.015);
  ExpectPrice(table.Lookup("anthropic.claude-3-opus-20240229-v1:0", ""), 0.015, 0.075);
  ExpectPrice(table.Lookup("anthropic.claude-opus-4-20250514-v1:0", ""), 0.015, 0.075);
  ExpectPrice(table.Lookup("anthropic.claude-opus-4-1-20250805-v1:0", ""), 0.015, 0.075);
  // Unknown models and agents: the default (Sonnet pricing).
  ExpectPrice(table.Lookup("", ""), 0.003, 0.015);
  ExpectPrice(table.Lookup("acme.unknown-model-v1:0", "us-east-1"), 0.003, 0.015);
}

TEST(PriceTableTest, ProfileIdsAndArnsMapToTheirModel) {
  const PriceTable table = PriceTable::BuiltIn();
  ExpectPrice(table.Lookup("us.anthropic.claude-3-haiku-20240307-v1:0", "us-east-1"), 0.00025,
              0.00125);
  ExpectPrice(table.Lookup("eu.anthropic.claude-3-5-haiku-20241022-v1:0", "eu-west-1"), 0.0008,
              0.004);
  ExpectPrice(table.Lookup("apac.anthropic.claude-3-opus-20240229-v1:0", ""), 0.015, 0.075);
  ExpectPrice(table.Lookup("global.anthropic.claude-sonnet-4-20250514-v1:0", ""), 0.003, 0.015);
  ExpectPrice(
      table.Lookup(
          "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0", ""),
      0.00025, 0.00125);
  ExpectPrice(table.Lookup("arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
                           "us.anthropic.claude-3-opus-20240229-v1:0",
                           ""),
              0.015, 0.075);
  // An application profile does not name its model: the default applies.
  ExpectPrice(
      table.Lookup(
          "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abcdef123456", ""),
      0.003, 0.015);
}

TEST(PriceTableTest, ProfileTypeComesFromThePrefix) {
  const PriceTable table = PriceTable::BuiltIn();
  // From the 4.5 generation the global profile is list price and regional
  // endpoints are 10% more.
  ExpectPrice(table.Lookup("global.anthropic.claude-sonnet-4-5-20250929-v1:0", ""), 0.003, 0.015);
  ExpectPrice(table.Lookup("us.anthropic.claude-sonnet-4-5-20250929-v1:0", ""), 0.0033, 0.0165);
  ExpectPrice(table.Lookup("anthropic.claude-sonnet-4-5-20250929-v1:0", "us-east-1"), 0.0033,
              0.0165);

  auto custom = PriceTable::FromJson(nlohmann::json::parse(R"([
    {"model": "anthropic.claude-3-haiku", "profile_type": "on_demand", "input_per_1k": 1, "output_per_1k": 1},
    {"model": "anthropic.claude-3-haiku", "profile_type": "cross_region", "input_per_1k": 2, "output_per_1k": 2},
    {"model": "anthropic.claude-3-haiku", "profile_type": "global", "input_per_1k": 3, "output_per_1k": 3}
  ])"));
  ASSERT_TRUE(custom.ok()) << custom.status().ToString();
  const std::string model = "anthropic.claude-3-haiku-20240307-v1:0";
  ExpectPrice(custom->Lookup(model, ""), 1, 1);
  ExpectPrice(custom->Lookup("eu." + model, ""), 2, 2);
  ExpectPrice(custom->Lookup("us-gov." + model, ""), 2, 2);
  ExpectPrice(custom->Lookup("global." + model, ""), 3, 3);
  ExpectPrice(
      custom->Lookup("arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu." + model, ""), 2,
      2);
}

TEST(PriceTableTest, LookupOrderFromMostSpecific) {
  PriceTable table = PriceTable::BuiltIn();
  auto overrides = PriceTable::FromJson(nlohmann::json::parse(R"([
    {"model": "anthropic.claude-3-haiku", "input_per_1k": 1, "output_per_1k": 10},
    {"model": "anthropic.claude-3-haiku-20240307-v1:0", "input_per_1k": 2, "output_per_1k": 20},
    {"model": "anthropic.claude-3-haiku-20240307-v1:0", "profile_type": "cross_region",
     "input_per_1k": 3, "output_per_1k": 30},
    {"model": "anthropic.claude-3-haiku-20240307-v1:0", "region": "eu-west-1",
     "input_per_1k": 4, "output_per_1k": 40},
    {"model": "anthropic.claude-3-haiku-20240307-v1:0", "region": "eu-west-1", "profile_type": "cross_region",
     "input_per_1k": 5, "output_per_1k": 50},
    {"model": "anthropic.claude-3-haiku-20240229-v1:0", "region": "ap-south-1",
     "input_per_1k": 6, "output_per_1k": 60},
    {"model": "default", "input_per_1k": 0.5, "output_per_1k": 0.5}
  ])"));
  ASSERT_TRUE(overrides.ok()) << overrides.status().ToString();
  table.Merge(*overrides);
  const std::string model = "anthropic.claude-3-haiku-20240307-v1:0";
  ExpectPrice(table.Lookup("eu." + model, "eu-west-1"), 5, 50);  // model + region + type
  ExpectPrice(table.Lookup(model, "eu-west-1"), 4, 40);          // model + region
  ExpectPrice(table.Lookup("us." + model, "us-east-1"), 3, 30);  // model + type
  ExpectPrice(table.Lookup(model, "us-east-1"), 2, 20);          // model
  // Another version: its exact entry is for another region, so the family.
  ExpectPrice(table.Lookup("anthropic.claude-3-haiku-20240229-v1:0", "us-east-1"), 1, 10);
  ExpectPrice(table.Lookup("anthropic.claude-3-haiku-20240229-v1:0", "ap-south-1"), 6, 60);
  ExpectPrice(table.Lookup("agent", ""), 0.5, 0.5);  // the overridden default
  // The region of an ARN is used when none is given.
  ExpectPrice(table.Lookup("arn:aws:bedrock:eu-west-1::foundation-model/" + model, ""), 4, 40);
}

TEST(PriceTableTest, MergeLaterEntriesWin) {
  PriceTable table = PriceTable::BuiltIn();
  const size_t built_in = table.entries().size();
  auto first = PriceTable::FromJson(nlohmann::json::parse(
      R"([{"model": "anthropic.claude-3-haiku", "input_per_1k": 1, "output_per_1k": 1}])"));
  auto second = PriceTable::FromJson(nlohmann::json::parse(
      R"([{"model": "anthropic.claude-3-haiku", "input_per_1k": 2, "output_per_1k": 2},
          {"model": "anthropic.claude-3-haiku", "input_per_1k": 3, "output_per_1k": 3}])"));
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->entries().size(), 1u);  // the same key twice: the later one
  table.Merge(*first);
  table.Merge(*second);
  EXPECT_EQ(table.entries().size(), built_in);  // replaced, not added
  ExpectPrice(table.Lookup("anthropic.claude-3-haiku-20240307-v1:0", ""), 3, 3);
}

TEST(PriceTableTest, Cost) {
  const PriceTable table = PriceTable::BuiltIn();
  EXPECT_DOUBLE_EQ(table.Cost("anthropic.claude-3-haiku-20240307-v1:0", "us-east-1", 2'000, 1'000),
                   2 * 0.00025 + 0.00125);
  EXPECT_DOUBLE_EQ(table.Cost("us.anthropic.claude-sonnet-4-20250514-v1:0", "", 1'000'000, 100'000),
                   3.0 + 1.5);
  EXPECT_DOUBLE_EQ(table.Cost("anthropic.claude-3-opus-20240229-v1:0", "", 0, 0), 0);
  // An empty table prices nothing.
  auto empty = PriceTable::FromJson(nlohmann::json::array());
  ASSERT_TRUE(empty.ok());
  EXPECT_DOUBLE_EQ(empty->Cost("anything", "", 1000, 1000), 0);
}

TEST(PriceTableTest, FromJsonRejectsBadEntriesNamingThem) {
  struct Case {
    const char* json;
    const char* message;
  };
  const Case cases[] = {
      {R"({"model": "x"})", "JSON array"},
      {R"([1])", "price entry 0 must be an object"},
      {R"([{"input_per_1k": 1, "output_per_1k": 1}])", "\"model\" must be a non-empty string"},
      {R"([{"model": "", "input_per_1k": 1, "output_per_1k": 1}])", "price entry 0"},
      {R"([{"model": "a", "input_per_1k": 1, "output_per_1k": 1},
           {"model": "m", "output_per_1k": 1}])",
       "price entry 1 (model \"m\"): \"input_per_1k\" is missing"},
      {R"([{"model": "m", "input_per_1k": -1, "output_per_1k": 1}])", "must be a number >= 0"},
      {R"([{"model": "m", "input_per_1k": "3", "output_per_1k": 1}])",
       "\"input_per_1k\" must be a number"},
      {R"([{"model": "m", "input_per_1k": 1, "output_per_1k": 1, "profile_type": "spot"}])",
       "\"profile_type\" is \"spot\""},
      {R"([{"model": "m", "input_per_1k": 1, "output_per_1k": 1, "region": 5}])",
       "\"region\" must be a string"},
      {R"([{"model": "m", "input_per_1k": 1, "output_per_1k": 1, "ouput": 1}])",
       "unknown field \"ouput\""},
  };
  for (const Case& c : cases) {
    auto table = PriceTable::FromJson(nlohmann::json::parse(c.json));
    ASSERT_FALSE(table.ok()) << c.json;
    EXPECT_EQ(table.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(table.status().message(), HasSubstr(c.message)) << c.json;
  }
}

}  // namespace
}  // namespace quarry::engine
