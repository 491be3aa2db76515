#pragma once
// One model catalogue for a region, merged from ListFoundationModels and
// ListInferenceProfiles (system and application profiles): which Claude
// models exist, which can be called on demand, which need an inference profile
// and which profile id works in this region, and which the account cannot use.
// So a user who picks "Claude Sonnet 4" gets `us.anthropic.claude-sonnet-4-…`
// in us-east-1, and a model their account cannot use is marked, not offered
// blindly.
//
// Thread safety: pure functions over values.

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace quarry::bedrock {

enum class TargetKind { kFoundationModel, kSystemProfile, kApplicationProfile };
std::string_view TargetKindName(TargetKind kind);  // "foundation-model", "system-profile", "application-profile"

// One thing a user can pass as modelId.
struct CatalogueTarget {
  TargetKind kind = TargetKind::kFoundationModel;
  std::string id{};    // model id, profile id, or application profile ARN
  std::string arn{};
  std::string name{};  // "Claude 3.5 Sonnet", profile name
  std::string provider{};               // "Anthropic"
  std::vector<std::string> model_ids{};  // the foundation models behind it
  bool on_demand = false;               // a foundation model callable by its bare id
  bool requires_profile = false;        // a foundation model that must be called through a profile
  std::string recommended_profile_id{};  // for requires_profile: the profile for this region
  bool streaming = false;
  bool active = true;                   // lifecycle ACTIVE (LEGACY is false)
  bool usable = true;                   // false when the account is known not to have access
  std::string unusable_reason{};
};

struct ModelCatalogue {
  std::string region{};
  std::vector<CatalogueTarget> targets{};

  // The target with this id or ARN, or nullptr.
  const CatalogueTarget* Find(std::string_view id_or_arn) const;
  // What to call for this model id in this region: the model itself when it
  // runs on demand, else the recommended profile. NotFound naming what exists.
  Result<std::string> InvocationTargetFor(std::string_view model_id) const;
  nlohmann::json ToJson() const;
};

// Merges the bodies of ListFoundationModels and of every ListInferenceProfiles
// page (both types). `unusable_model_ids` are models the caller found it
// cannot use (for example from an AccessDenied during a test call).
// Errors: InvalidArgument when a body is not the documented shape.
Result<ModelCatalogue> MergeCatalogue(std::string_view region, const nlohmann::json& foundation_models,
                                      const std::vector<nlohmann::json>& inference_profile_pages,
                                      const std::vector<std::string>& unusable_model_ids = {});

}  // namespace quarry::bedrock
