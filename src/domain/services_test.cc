#include "domain/services.h"

#include <gtest/gtest.h>

namespace quarry::domain {
namespace {

using nlohmann::json;

json Model(const std::string& id, const std::string& name, bool on_demand, const std::string& profile = "") {
  return {{"kind", "foundation-model"},
          {"id", id},
          {"arn", "arn:aws:bedrock:us-east-1::foundation-model/" + id},
          {"name", name},
          {"provider", id.rfind("anthropic.", 0) == 0 ? "Anthropic" : "Amazon"},
          {"model_ids", {id}},
          {"on_demand", on_demand},
          {"requires_profile", !on_demand},
          {"recommended_profile_id", profile},
          {"streaming", true},
          {"active", true},
          {"usable", true},
          {"unusable_reason", ""}};
}

json Profile(const std::string& id, const std::string& model) {
  return {{"kind", "system-profile"}, {"id", id}, {"arn", "arn:aws:bedrock:us-east-1:111122223333:inference-profile/" + id},
          {"name", "US " + model}, {"provider", "Anthropic"}, {"model_ids", {model}}, {"on_demand", false},
          {"requires_profile", false}, {"recommended_profile_id", ""}, {"streaming", true}, {"active", true},
          {"usable", true}, {"unusable_reason", ""}};
}

CachedCatalogue Catalogue() {
  CachedCatalogue c;
  c.region = "us-east-1";
  c.fetched_at = "2026-01-01T00:00:00.000Z";
  c.catalogue = {
      {"region", "us-east-1"},
      {"targets",
       {Model("anthropic.claude-3-haiku-20240307-v1:0", "Claude 3 Haiku", true),
        Model("anthropic.claude-3-7-sonnet-20250219-v1:0", "Claude 3.7 Sonnet", false,
              "us.anthropic.claude-3-7-sonnet-20250219-v1:0"),
        Model("anthropic.claude-3-opus-20240229-v1:0", "Claude 3 Opus", true),
        Model("anthropic.claude-orphan-v1:0", "Orphan", false),
        Model("amazon.titan-text-express-v1", "Titan Text", true),
        Profile("us.anthropic.claude-3-7-sonnet-20250219-v1:0", "anthropic.claude-3-7-sonnet-20250219-v1:0"),
        Profile("us.anthropic.claude-3-haiku-20240307-v1:0", "anthropic.claude-3-haiku-20240307-v1:0")}}};
  c.unusable = {"anthropic.claude-3-opus-20240229-v1:0"};
  return c;
}

TEST(ClaudeLimitsTest, KnowsTheFamilies) {
  EXPECT_EQ(ClaudeLimitsFor("anthropic.claude-3-haiku-20240307-v1:0").max_output_tokens, 4096);
  EXPECT_EQ(ClaudeLimitsFor("us.anthropic.claude-3-5-sonnet-20240620-v1:0").max_output_tokens, 8192);
  EXPECT_EQ(ClaudeLimitsFor("anthropic.claude-opus-4-1-20250805-v1:0").max_output_tokens, 32000);
  EXPECT_EQ(ClaudeLimitsFor("global.anthropic.claude-sonnet-4-5-20250929-v1:0").max_output_tokens, 64000);
  EXPECT_FALSE(ClaudeLimitsFor("amazon.titan-text-express-v1").known);
  EXPECT_TRUE(IsClaudeModelId("eu.anthropic.claude-3-haiku-20240307-v1:0"));
  EXPECT_FALSE(IsClaudeModelId("amazon.titan-text-express-v1"));
}

TEST(ModelsViewTest, ShowsClaudeWithProfilesAndUsability) {
  Provider p;
  p.id = "prv_x";
  p.config.region = "us-east-1";
  json view = ModelsView(p, Catalogue(), false);
  ASSERT_EQ(view["models"].size(), 4u);  // Titan left out
  for (const json& m : view["models"]) {
    if (m["model_id"] == "anthropic.claude-3-7-sonnet-20250219-v1:0") {
      EXPECT_TRUE(m["requires_profile"].get<bool>());
      EXPECT_EQ(m["invocation_target"], "us.anthropic.claude-3-7-sonnet-20250219-v1:0");
      EXPECT_EQ(m["profile_ids"].size(), 1u);
      EXPECT_TRUE(m["usable"].get<bool>());
    }
    if (m["model_id"] == "anthropic.claude-3-opus-20240229-v1:0") {
      EXPECT_FALSE(m["usable"].get<bool>());
    }
    if (m["model_id"] == "anthropic.claude-orphan-v1:0") {
      EXPECT_FALSE(m["usable"].get<bool>());
    }
    if (m["model_id"] == "anthropic.claude-3-haiku-20240307-v1:0") {
      EXPECT_EQ(m["capabilities"]["max_output_tokens"], 4096);
    }
  }
  EXPECT_EQ(ModelsView(p, Catalogue(), true)["models"].size(), 5u);
}

TEST(ResolveModelChoiceTest, StoresTheProfileForProfileOnlyModels) {
  ModelChoice choice;
  ASSERT_FALSE(ResolveModelChoice(Catalogue(), "us-east-1", "anthropic.claude-3-7-sonnet-20250219-v1:0", &choice));
  EXPECT_EQ(choice.invocation_target, "us.anthropic.claude-3-7-sonnet-20250219-v1:0");
  EXPECT_EQ(choice.target_kind, "system-profile");
  ASSERT_EQ(choice.notices.size(), 1u);
  EXPECT_NE(choice.notices[0].find("inference profile"), std::string::npos);

  ASSERT_FALSE(ResolveModelChoice(Catalogue(), "us-east-1", "us.anthropic.claude-3-haiku-20240307-v1:0", &choice));
  EXPECT_EQ(choice.foundation_model_id, "anthropic.claude-3-haiku-20240307-v1:0");

  ASSERT_FALSE(ResolveModelChoice(Catalogue(), "us-east-1", "anthropic.claude-3-haiku-20240307-v1:0", &choice));
  EXPECT_EQ(choice.invocation_target, "anthropic.claude-3-haiku-20240307-v1:0");
  EXPECT_TRUE(choice.notices.empty());
}

TEST(ResolveModelChoiceTest, RefusesWhatCannotWork) {
  ModelChoice choice;
  auto code = [&](const std::string& model) {
    std::optional<FieldError> e = ResolveModelChoice(Catalogue(), "us-east-1", model, &choice);
    return e ? e->code : std::string("ok");
  };
  EXPECT_EQ(code("anthropic.claude-9-nothing-v1:0"), "model_not_available");
  EXPECT_EQ(code("amazon.titan-text-express-v1"), "model_not_supported");
  EXPECT_EQ(code("anthropic.claude-3-opus-20240229-v1:0"), "model_not_usable");
  EXPECT_EQ(code("anthropic.claude-orphan-v1:0"), "model_needs_profile");
}

TEST(ServiceInputTest, ChecksRangesAndTheModelLimit) {
  auto field = [](const json& body) {
    ServiceInput input;
    std::optional<FieldError> e = ParseServiceInput(body, true, &input);
    return e ? e->field : std::string("ok");
  };
  json ok = {{"name", "Triage"}, {"provider_id", "prv_x"}, {"model", "m"}};
  EXPECT_EQ(field(ok), "ok");
  json b = ok;
  b["temperature"] = 1.5;
  EXPECT_EQ(field(b), "temperature");
  b = ok;
  b["top_p"] = -0.1;
  EXPECT_EQ(field(b), "top_p");
  b = ok;
  b["max_tokens"] = 0;
  EXPECT_EQ(field(b), "max_tokens");
  b = ok;
  b["max_tokens"] = "many";
  EXPECT_EQ(field(b), "max_tokens");
  b = ok;
  b["stop_sequences"] = {"END", " "};
  EXPECT_EQ(field(b), "stop_sequences[1]");
  b = ok;
  b["type"] = "embedding";
  EXPECT_EQ(field(b), "type");
  b = ok;
  b.erase("model");
  EXPECT_EQ(field(b), "model");

  ServiceInput input;
  ASSERT_FALSE(ParseServiceInput({{"name", "T"}, {"provider_id", "prv_x"}, {"model", "m"}, {"max_tokens", 5000}}, true,
                                 &input));
  ModelChoice choice;
  ASSERT_FALSE(ResolveModelChoice(Catalogue(), "us-east-1", "anthropic.claude-3-haiku-20240307-v1:0", &choice));
  Service service;
  std::optional<FieldError> e = ApplyServiceInput(nullptr, input, &choice, &service);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->code, "max_tokens_above_model_limit");
  EXPECT_NE(e->message.find("4096"), std::string::npos);

  input.max_tokens = 4096;
  ASSERT_FALSE(ApplyServiceInput(nullptr, input, &choice, &service));
  EXPECT_EQ(service.max_tokens, 4096);
  EXPECT_EQ(service.invocation_target, "anthropic.claude-3-haiku-20240307-v1:0");
}

}  // namespace
}  // namespace quarry::domain
