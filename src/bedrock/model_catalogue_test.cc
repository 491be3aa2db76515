#include "bedrock/model_catalogue.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace quarry::bedrock {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

constexpr const char* kHaiku = "anthropic.claude-3-haiku-20240307-v1:0";
constexpr const char* kSonnet4 = "anthropic.claude-sonnet-4-20250514-v1:0";
constexpr const char* kOpus = "anthropic.claude-3-opus-20240229-v1:0";
constexpr const char* kAccount = "111122223333";

json ModelSummary(const std::string& region, const std::string& id, const std::string& name,
                  std::vector<std::string> types, const std::string& lifecycle) {
  return {{"modelArn", "arn:aws:bedrock:" + region + "::foundation-model/" + id},
          {"modelId", id},
          {"modelName", name},
          {"providerName", "Anthropic"},
          {"inputModalities", {"TEXT", "IMAGE"}},
          {"outputModalities", {"TEXT"}},
          {"responseStreamingSupported", true},
          {"customizationsSupported", json::array()},
          {"inferenceTypesSupported", types},
          {"modelLifecycle", {{"status", lifecycle}}}};
}

// ListFoundationModels as Bedrock returns it for `region` (the emulator's demo
// world: Haiku on demand, Sonnet 4 only through profiles, Opus LEGACY).
json FoundationModels(const std::string& region) {
  return {{"modelSummaries",
           {ModelSummary(region, kHaiku, "Claude 3 Haiku", {"ON_DEMAND", "INFERENCE_PROFILE"}, "ACTIVE"),
            ModelSummary(region, kSonnet4, "Claude Sonnet 4", {"INFERENCE_PROFILE"}, "ACTIVE"),
            ModelSummary(region, kOpus, "Claude 3 Opus", {"ON_DEMAND"}, "LEGACY")}}};
}

json SystemProfile(const std::string& region, const std::string& prefix, const std::string& model,
                   const std::vector<std::string>& destinations) {
  json models = json::array();
  for (const std::string& d : destinations) {
    models.push_back({{"modelArn", "arn:aws:bedrock:" + d + "::foundation-model/" + model}});
  }
  return {{"inferenceProfileName", prefix + " " + model},
          {"inferenceProfileArn",
           "arn:aws:bedrock:" + region + ":" + kAccount + ":inference-profile/" + prefix + "." + model},
          {"inferenceProfileId", prefix + "." + model},
          {"models", models},
          {"status", "ACTIVE"},
          {"type", "SYSTEM_DEFINED"}};
}

json ApplicationProfile(const std::string& region) {
  return {{"inferenceProfileName", "quarry-helpdesk-haiku"},
          {"inferenceProfileArn",
           "arn:aws:bedrock:" + region + ":" + kAccount + ":application-inference-profile/quarrydemo01"},
          {"inferenceProfileId", "quarrydemo01"},
          {"models", {{{"modelArn", "arn:aws:bedrock:" + region + "::foundation-model/" + std::string(kHaiku)}}}},
          {"status", "ACTIVE"},
          {"type", "APPLICATION"}};
}

// Two ListInferenceProfiles pages: the system profiles of every geography
// (Bedrock lists only the source region's, but the merge must pick by
// region anyway), then the application profile.
std::vector<json> ProfilePages(const std::string& region) {
  json page1 = {{"inferenceProfileSummaries",
                 {SystemProfile(region, "us", kHaiku, {"us-east-1", "us-west-2"}),
                  SystemProfile(region, "global", kSonnet4, {"us-east-1", "eu-west-1", "ap-southeast-2"}),
                  SystemProfile(region, "us", kSonnet4, {"us-east-1", "us-east-2", "us-west-2"}),
                  SystemProfile(region, "eu", kSonnet4, {"eu-west-1", "eu-central-1"}),
                  SystemProfile(region, "apac", kSonnet4, {"ap-southeast-2", "ap-northeast-1"})}},
                {"nextToken", "b2Zmc2V0OjU="}};
  json page2 = {{"inferenceProfileSummaries", {ApplicationProfile(region)}}};
  return {page1, page2};
}

TEST(MergeCatalogueTest, MergesModelsSystemAndApplicationProfiles) {
  Result<ModelCatalogue> merged = MergeCatalogue("us-east-1", FoundationModels("us-east-1"), ProfilePages("us-east-1"));
  ASSERT_TRUE(merged.ok()) << merged.status().message();
  const ModelCatalogue& c = merged.value();
  EXPECT_EQ(c.region, "us-east-1");
  EXPECT_EQ(c.targets.size(), 3u + 5u + 1u);

  const CatalogueTarget* haiku = c.Find(kHaiku);
  ASSERT_NE(haiku, nullptr);
  EXPECT_EQ(haiku->kind, TargetKind::kFoundationModel);
  EXPECT_TRUE(haiku->on_demand);
  EXPECT_FALSE(haiku->requires_profile);
  EXPECT_TRUE(haiku->streaming);
  EXPECT_EQ(haiku->name, "Claude 3 Haiku");
  EXPECT_EQ(haiku->provider, "Anthropic");

  const CatalogueTarget* sonnet = c.Find(kSonnet4);
  ASSERT_NE(sonnet, nullptr);
  EXPECT_FALSE(sonnet->on_demand);
  EXPECT_TRUE(sonnet->requires_profile);
  EXPECT_EQ(sonnet->recommended_profile_id, std::string("us.") + kSonnet4);

  const CatalogueTarget* opus = c.Find(kOpus);
  ASSERT_NE(opus, nullptr);
  EXPECT_FALSE(opus->active);
  EXPECT_TRUE(opus->on_demand);

  const CatalogueTarget* us_sonnet = c.Find(std::string("us.") + kSonnet4);
  ASSERT_NE(us_sonnet, nullptr);
  EXPECT_EQ(us_sonnet->kind, TargetKind::kSystemProfile);
  EXPECT_EQ(us_sonnet->model_ids, std::vector<std::string>{kSonnet4});  // one per destination, deduplicated
  EXPECT_EQ(us_sonnet->provider, "Anthropic");

  const std::string app_arn = "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/quarrydemo01";
  const CatalogueTarget* app = c.Find(app_arn);
  ASSERT_NE(app, nullptr);
  EXPECT_EQ(app->kind, TargetKind::kApplicationProfile);
  EXPECT_EQ(app->id, app_arn);
  EXPECT_EQ(app->name, "quarry-helpdesk-haiku");
  EXPECT_EQ(app->model_ids, std::vector<std::string>{kHaiku});
  EXPECT_EQ(c.Find("quarrydemo01"), app);
}

TEST(MergeCatalogueTest, RecommendsTheProfileOfTheRegionsGeography) {
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"us-east-1", "us."}, {"eu-west-1", "eu."}, {"ap-southeast-2", "apac."}, {"sa-east-1", "global."}};
  for (const auto& [region, prefix] : expected) {
    SCOPED_TRACE(region);
    Result<ModelCatalogue> c = MergeCatalogue(region, FoundationModels(region), ProfilePages(region));
    ASSERT_TRUE(c.ok()) << c.status().message();
    Result<std::string> target = c.value().InvocationTargetFor(kSonnet4);
    ASSERT_TRUE(target.ok()) << target.status().message();
    EXPECT_EQ(target.value(), prefix + kSonnet4);
    // An on-demand model is called by its own id.
    EXPECT_EQ(c.value().InvocationTargetFor(kHaiku).value(), kHaiku);
  }
}

TEST(MergeCatalogueTest, FallsBackToAnyProfileWithoutGeographyOrGlobal) {
  json page = {{"inferenceProfileSummaries", {SystemProfile("eu-west-1", "apac", kSonnet4, {"ap-southeast-2"})}}};
  Result<ModelCatalogue> c = MergeCatalogue("eu-west-1", FoundationModels("eu-west-1"), {page});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c.value().Find(kSonnet4)->recommended_profile_id, std::string("apac.") + kSonnet4);
}

TEST(MergeCatalogueTest, ProfileOnlyModelWithoutAnyProfileIsAFailedPreconditionListingProfiles) {
  json page = {{"inferenceProfileSummaries", {SystemProfile("us-east-1", "us", kHaiku, {"us-east-1"})}}};
  Result<ModelCatalogue> c = MergeCatalogue("us-east-1", FoundationModels("us-east-1"), {page});
  ASSERT_TRUE(c.ok());
  Result<std::string> target = c.value().InvocationTargetFor(kSonnet4);
  ASSERT_FALSE(target.ok());
  EXPECT_EQ(target.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(target.status().message(), HasSubstr(std::string("us.") + kHaiku));
}

TEST(MergeCatalogueTest, UnknownModelIsNotFoundNamingWhatExists) {
  Result<ModelCatalogue> c = MergeCatalogue("us-east-1", FoundationModels("us-east-1"), ProfilePages("us-east-1"));
  ASSERT_TRUE(c.ok());
  Result<std::string> target = c.value().InvocationTargetFor("anthropic.claude-2-v1");
  ASSERT_FALSE(target.ok());
  EXPECT_EQ(target.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(target.status().message(), HasSubstr(kHaiku));
  EXPECT_THAT(target.status().message(), HasSubstr("anthropic.claude-2-v1"));
}

TEST(MergeCatalogueTest, MarksUnusableModelsAndProfilesWhoseEveryModelIsUnusable) {
  Result<ModelCatalogue> merged =
      MergeCatalogue("us-east-1", FoundationModels("us-east-1"), ProfilePages("us-east-1"), {kSonnet4});
  ASSERT_TRUE(merged.ok());
  const ModelCatalogue& c = merged.value();
  EXPECT_FALSE(c.Find(kSonnet4)->usable);
  EXPECT_THAT(c.Find(kSonnet4)->unusable_reason, HasSubstr("us-east-1"));
  for (const char* prefix : {"us.", "eu.", "apac.", "global."}) {
    const CatalogueTarget* p = c.Find(std::string(prefix) + kSonnet4);
    ASSERT_NE(p, nullptr);
    EXPECT_FALSE(p->usable) << prefix;
    EXPECT_FALSE(p->unusable_reason.empty());
  }
  EXPECT_TRUE(c.Find(kHaiku)->usable);
  EXPECT_TRUE(c.Find(std::string("us.") + kHaiku)->usable);
  Result<std::string> target = c.InvocationTargetFor(kSonnet4);
  ASSERT_FALSE(target.ok());
  EXPECT_EQ(target.status().code(), StatusCode::kFailedPrecondition);
}

TEST(MergeCatalogueTest, ProfilesAreInvokedByTheirOwnIdAndApplicationProfilesByArn) {
  Result<ModelCatalogue> c = MergeCatalogue("us-east-1", FoundationModels("us-east-1"), ProfilePages("us-east-1"));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c.value().InvocationTargetFor(std::string("eu.") + kSonnet4).value(), std::string("eu.") + kSonnet4);
  EXPECT_EQ(c.value().InvocationTargetFor("quarrydemo01").value(),
            "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/quarrydemo01");
  // A foundation model ARN finds the model.
  EXPECT_EQ(c.value().InvocationTargetFor(std::string("arn:aws:bedrock:us-east-1::foundation-model/") + kHaiku).value(),
            kHaiku);
}

TEST(MergeCatalogueTest, MalformedBodiesNameThePath) {
  struct Bad {
    json models;
    std::vector<json> pages;
    std::string path;
  };
  json missing_id = FoundationModels("us-east-1");
  missing_id["modelSummaries"][1].erase("modelId");
  json bad_types = FoundationModels("us-east-1");
  bad_types["modelSummaries"][0]["inferenceTypesSupported"] = "ON_DEMAND";
  std::vector<json> bad_type_pages = ProfilePages("us-east-1");
  bad_type_pages[1]["inferenceProfileSummaries"][0]["type"] = "SOMETHING";
  std::vector<json> bad_arn_pages = ProfilePages("us-east-1");
  bad_arn_pages[0]["inferenceProfileSummaries"][2]["models"][1]["modelArn"] = 7;
  const std::vector<Bad> cases = {
      {json::array(), {}, "foundationModels"},
      {json{{"models", json::array()}}, {}, "foundationModels.modelSummaries"},
      {missing_id, {}, "foundationModels.modelSummaries[1].modelId"},
      {bad_types, {}, "foundationModels.modelSummaries[0].inferenceTypesSupported"},
      {FoundationModels("us-east-1"), {json{{"nextToken", "x"}}}, "inferenceProfilePages[0].inferenceProfileSummaries"},
      {FoundationModels("us-east-1"), bad_type_pages, "inferenceProfilePages[1].inferenceProfileSummaries[0].type"},
      {FoundationModels("us-east-1"), bad_arn_pages,
       "inferenceProfilePages[0].inferenceProfileSummaries[2].models[1].modelArn"},
  };
  for (const Bad& b : cases) {
    SCOPED_TRACE(b.path);
    Result<ModelCatalogue> c = MergeCatalogue("us-east-1", b.models, b.pages);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(c.status().message(), HasSubstr(b.path + " "));
  }
}

TEST(ModelCatalogueTest, ToJsonListsEveryTargetWithItsKind) {
  Result<ModelCatalogue> c = MergeCatalogue("us-east-1", FoundationModels("us-east-1"), ProfilePages("us-east-1"));
  ASSERT_TRUE(c.ok());
  json j = c.value().ToJson();
  EXPECT_EQ(j["region"], "us-east-1");
  ASSERT_EQ(j["targets"].size(), c.value().targets.size());
  EXPECT_EQ(j["targets"][0]["kind"], "foundation-model");
  EXPECT_EQ(j["targets"][1]["requires_profile"], true);
  EXPECT_EQ(j["targets"][1]["recommended_profile_id"], std::string("us.") + kSonnet4);
  EXPECT_EQ(j["targets"].back()["kind"], "application-profile");
  EXPECT_EQ(TargetKindName(TargetKind::kSystemProfile), "system-profile");
}

}  // namespace
}  // namespace quarry::bedrock
