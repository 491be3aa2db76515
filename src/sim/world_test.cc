#include "sim/world.h"

#include <gtest/gtest.h>

#include <functional>

namespace quarry::sim {
namespace {

using nlohmann::json;

std::string ErrorOf(const json& doc) {
  auto world = ParseWorldConfig(doc.dump());
  return world.ok() ? std::string("(parsed)") : world.status().message();
}

json Minimal() {
  return json::parse(R"({
    "accounts": [{"id": "123456789012", "users": [{"name": "u", "access_keys": [{"id": "AKIAAAAAAAAAAAAAAAAA", "secret": "s"}]}],
                  "model_access": ["*"]}],
    "regions": [{"name": "us-east-1", "models": [{"id": "anthropic.claude-3-haiku-20240307-v1:0", "name": "Claude 3 Haiku", "provider": "Anthropic"}]}]
  })");
}

TEST(WorldTest, DemoWorldIsValidAndHasTheTroubleshootingCases) {
  WorldConfig world = DemoWorld();
  const AccountSpec* account = world.FindAccount(kDemoAccount);
  ASSERT_NE(account, nullptr);
  EXPECT_NE(account->FindUser("quarry-demo"), nullptr);
  EXPECT_NE(account->FindUser("quarry-readonly"), nullptr);
  EXPECT_FALSE(account->HasModelAccess("anthropic.claude-3-opus-20240229-v1:0"));
  const RegionSpec* east = world.FindRegion("us-east-1");
  ASSERT_NE(east, nullptr);
  ASSERT_NE(world.FindRegion("us-west-2"), nullptr);
  EXPECT_FALSE(east->FindModel("anthropic.claude-3-7-sonnet-20250219-v1:0")->OnDemand());
  EXPECT_TRUE(east->FindModel("anthropic.claude-3-haiku-20240307-v1:0")->OnDemand());
  EXPECT_NE(east->FindProfile("us.anthropic.claude-sonnet-4-20250514-v1:0"), nullptr);
  const AgentSpec* agent = world.FindAgent("us-east-1", kDemoAgentId);
  ASSERT_NE(agent, nullptr);
  EXPECT_EQ(agent->name, "it-helpdesk");
  ASSERT_TRUE(agent->FindAlias(kDemoUnboundAliasId).has_value());
  EXPECT_TRUE(agent->FindAlias(kDemoUnboundAliasId)->agent_version.empty());
  EXPECT_TRUE(agent->FindAlias("TSTALIASID").has_value());
  EXPECT_EQ(world.knowledge_bases.at(0).documents.size(), 4u);
}

TEST(WorldTest, ApiSchemaActionsAndTheCodeInterpreterAreReadAndChecked) {
  WorldConfig world = DemoWorld();
  const AgentVersionSpec* v1 = world.FindAgent("us-east-1", kDemoAgentId)->FindVersion("1");
  ASSERT_NE(v1, nullptr);
  EXPECT_TRUE(v1->code_interpreter);
  ASSERT_EQ(v1->actions.size(), 2u);
  EXPECT_FALSE(v1->actions[0].is_api());
  EXPECT_TRUE(v1->actions[1].is_api());
  EXPECT_EQ(v1->actions[1].http_method, "POST");
  EXPECT_EQ(v1->actions[1].api_path, "/assets/{assetId}/repairs");
  EXPECT_EQ(v1->actions[1].request_body.size(), 2u);

  json doc = json::parse(DemoWorldConfigText());
  json& action = doc["agents"][0]["versions"][0]["actions"][1];
  auto with = [&](const std::function<void(json&)>& change) {
    json copy = doc;
    change(copy["agents"][0]["versions"][0]["actions"][1]);
    return ErrorOf(copy);
  };
  ASSERT_TRUE(action.contains("api_path"));
  EXPECT_NE(with([](json& a) { a["function"] = "repair"; }).find("either \"function\""), std::string::npos);
  EXPECT_NE(with([](json& a) { a.erase("http_method"); }).find("http_method is missing"), std::string::npos);
  EXPECT_NE(with([](json& a) { a["http_method"] = "FETCH"; }).find("must be one of GET"), std::string::npos);
  EXPECT_NE(with([](json& a) { a["api_path"] = "assets"; }).find("must start with '/'"), std::string::npos);
  EXPECT_NE(with([](json& a) { a["api_path"] = "/assets/{tag}"; }).find("uses {tag}, which is not in"),
            std::string::npos);
  EXPECT_NE(with([](json& a) {
              a.erase("api_path");
              a.erase("http_method");
              a["function"] = "repair";
            }).find("request_body only goes with api_path"),
            std::string::npos);
}

TEST(WorldTest, PrintedConfigHasCommentsAndParses) {
  json doc = json::parse(DemoWorldConfigText());
  EXPECT_TRUE(doc.contains("_comment"));
  EXPECT_TRUE(doc["accounts"][0].contains("_comment"));
  EXPECT_TRUE(ParseWorldConfig(DemoWorldConfigText()).ok());
}

TEST(WorldTest, MinimalConfigParsesWithDefaults) {
  auto world = ParseWorldConfig(Minimal().dump());
  ASSERT_TRUE(world.ok()) << world.status().ToString();
  const ModelSpec* m = world.value().regions[0].FindModel("anthropic.claude-3-haiku-20240307-v1:0");
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(m->OnDemand());
  EXPECT_EQ(m->output_modalities, std::vector<std::string>{"TEXT"});
}

TEST(WorldTest, ErrorsNameTheJsonPathAndTheFix) {
  json doc = Minimal();
  doc["accounts"][0]["id"] = "12345";
  EXPECT_NE(ErrorOf(doc).find("$.accounts[0].id"), std::string::npos) << ErrorOf(doc);
  EXPECT_NE(ErrorOf(doc).find("12 digits"), std::string::npos);

  doc = Minimal();
  doc["regions"][0]["models"][0]["inference_types"] = {"ON_DEMAND", "SOMETIMES"};
  EXPECT_NE(ErrorOf(doc).find("$.regions[0].models[0].inference_types[1]"), std::string::npos) << ErrorOf(doc);

  doc = Minimal();
  doc["regions"][0]["modles"] = json::array();
  EXPECT_NE(ErrorOf(doc).find("$.regions[0].modles is not a known member"), std::string::npos) << ErrorOf(doc);

  doc = Minimal();
  doc["accounts"][0]["model_access"] = {"anthropic.claude-nope-v1:0"};
  EXPECT_NE(ErrorOf(doc).find("$.accounts[0].model_access[0]"), std::string::npos) << ErrorOf(doc);

  doc = Minimal();
  doc["accounts"][0]["api_keys"] = {{{"token", "t"}, {"user", "ghost"}}};
  EXPECT_NE(ErrorOf(doc).find("$.accounts[0].api_keys[0].user"), std::string::npos) << ErrorOf(doc);

  doc = Minimal();
  doc["regions"][0]["system_profiles"] = {{{"id", "us.anthropic.claude-other-v1:0"}, {"name", "x"}}};
  EXPECT_NE(ErrorOf(doc).find("$.regions[0].system_profiles[0].id"), std::string::npos) << ErrorOf(doc);

  EXPECT_NE(ParseWorldConfig("{").status().message().find("not valid JSON"), std::string::npos);
}

TEST(WorldTest, FaultRulesValidateKindsAndRates) {
  EXPECT_TRUE(ParseFaultRule({{"kind", "throttle"}, {"count", 2}}, "$.f").ok());
  EXPECT_FALSE(ParseFaultRule({{"kind", "explode"}}, "$.f").ok());
  EXPECT_FALSE(ParseFaultRule({{"kind", "throttle"}, {"rate", 1.5}}, "$.f").ok());
  EXPECT_FALSE(ParseFaultRule({{"kind", "throttle"}, {"rate", 0.5}, {"count", 1}}, "$.f").ok());
  EXPECT_FALSE(ParseFaultRule({{"kind", "latency"}}, "$.f").ok());
  EXPECT_FALSE(ParseFaultRule({{"kind", "latency"}, {"median_ms", 100}}, "$.f").ok());
  auto rule = ParseFaultRule({{"kind", "latency"}, {"median_ms", 100}, {"p99_ms", 2000}}, "$.f");
  ASSERT_TRUE(rule.ok());
  EXPECT_EQ(rule.value().rate, 1.0);
}

}  // namespace
}  // namespace quarry::sim
