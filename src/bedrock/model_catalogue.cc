#include "bedrock/model_catalogue.h"

#include <algorithm>
#include <utility>

#include "aws/arn.h"
#include "aws/region.h"

namespace quarry::bedrock {
namespace {

using nlohmann::json;

// Bounds what a NotFound message lists, so a large catalogue does not produce
// a wall of text.
constexpr size_t kMaxListedIds = 25;

Status Malformed(const std::string& path, std::string_view what) {
  return InvalidArgumentError("catalogue body: " + path + " " + std::string(what) +
                              "; pass the JSON body exactly as ListFoundationModels / ListInferenceProfiles "
                              "returned it");
}

// A required string member.
Result<std::string> RequiredString(const json& object, const char* key, const std::string& path) {
  auto it = object.find(key);
  if (it == object.end()) return Malformed(path + "." + key, "is missing");
  if (!it->is_string()) return Malformed(path + "." + key, "is not a string");
  return it->get<std::string>();
}

// An optional string member: "" when absent; an error when of another type.
Result<std::string> OptionalString(const json& object, const char* key, const std::string& path) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::string();
  if (!it->is_string()) return Malformed(path + "." + key, "is not a string");
  return it->get<std::string>();
}

// An optional array of strings.
Result<std::vector<std::string>> OptionalStrings(const json& object, const char* key, const std::string& path) {
  std::vector<std::string> out;
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return out;
  if (!it->is_array()) return Malformed(path + "." + key, "is not an array");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& v = (*it)[i];
    if (!v.is_string()) return Malformed(path + "." + key + "[" + std::to_string(i) + "]", "is not a string");
    out.push_back(v.get<std::string>());
  }
  return out;
}

bool Contains(const std::vector<std::string>& values, std::string_view value) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

// The foundation model id of a foundation-model ARN (the resource part after
// "foundation-model/"); the text itself when it is not such an ARN.
std::string ModelIdFromArn(std::string_view arn) {
  constexpr std::string_view kMarker = "foundation-model/";
  size_t pos = arn.find(kMarker);
  if (pos == std::string_view::npos) return std::string(arn);
  return std::string(arn.substr(pos + kMarker.size()));
}

struct ParsedProfile {
  CatalogueTarget target;
  bool system = false;
};

Result<std::vector<ParsedProfile>> ParseProfilePage(const json& page, size_t page_index) {
  const std::string page_path = "inferenceProfilePages[" + std::to_string(page_index) + "]";
  if (!page.is_object()) return Malformed(page_path, "is not a JSON object");
  auto list = page.find("inferenceProfileSummaries");
  if (list == page.end()) return Malformed(page_path + ".inferenceProfileSummaries", "is missing");
  if (!list->is_array()) return Malformed(page_path + ".inferenceProfileSummaries", "is not an array");
  std::vector<ParsedProfile> out;
  for (size_t i = 0; i < list->size(); ++i) {
    const json& s = (*list)[i];
    const std::string path = page_path + ".inferenceProfileSummaries[" + std::to_string(i) + "]";
    if (!s.is_object()) return Malformed(path, "is not a JSON object");
    ParsedProfile p;
    QUARRY_ASSIGN_OR_RETURN(std::string id, RequiredString(s, "inferenceProfileId", path));
    QUARRY_ASSIGN_OR_RETURN(std::string arn, RequiredString(s, "inferenceProfileArn", path));
    QUARRY_ASSIGN_OR_RETURN(std::string name, OptionalString(s, "inferenceProfileName", path));
    QUARRY_ASSIGN_OR_RETURN(std::string status, OptionalString(s, "status", path));
    QUARRY_ASSIGN_OR_RETURN(std::string type, RequiredString(s, "type", path));
    if (type == "SYSTEM_DEFINED") {
      p.system = true;
      p.target.kind = TargetKind::kSystemProfile;
      p.target.id = id;
    } else if (type == "APPLICATION") {
      p.target.kind = TargetKind::kApplicationProfile;
      // An application profile is called by its ARN (its short id is not
      // accepted as a modelId).
      p.target.id = arn;
    } else {
      return Malformed(path + ".type", "is neither SYSTEM_DEFINED nor APPLICATION");
    }
    p.target.arn = arn;
    p.target.name = name;
    p.target.active = status.empty() || status == "ACTIVE";
    auto models = s.find("models");
    if (models == s.end()) return Malformed(path + ".models", "is missing");
    if (!models->is_array()) return Malformed(path + ".models", "is not an array");
    for (size_t m = 0; m < models->size(); ++m) {
      const std::string mpath = path + ".models[" + std::to_string(m) + "]";
      if (!(*models)[m].is_object()) return Malformed(mpath, "is not a JSON object");
      QUARRY_ASSIGN_OR_RETURN(std::string model_arn, RequiredString((*models)[m], "modelArn", mpath));
      std::string model_id = ModelIdFromArn(model_arn);
      // A cross-Region profile lists the same model once per destination.
      if (!Contains(p.target.model_ids, model_id)) p.target.model_ids.push_back(std::move(model_id));
    }
    out.push_back(std::move(p));
  }
  return out;
}

std::string JoinIds(const std::vector<std::string>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size() && i < kMaxListedIds; ++i) {
    if (i > 0) out += ", ";
    out += ids[i];
  }
  if (ids.size() > kMaxListedIds) out += ", … (" + std::to_string(ids.size() - kMaxListedIds) + " more)";
  if (out.empty()) out = "(none)";
  return out;
}

}  // namespace

std::string_view TargetKindName(TargetKind kind) {
  switch (kind) {
    case TargetKind::kFoundationModel:
      return "foundation-model";
    case TargetKind::kSystemProfile:
      return "system-profile";
    case TargetKind::kApplicationProfile:
      return "application-profile";
  }
  return "foundation-model";
}

const CatalogueTarget* ModelCatalogue::Find(std::string_view id_or_arn) const {
  for (const CatalogueTarget& t : targets) {
    if (t.id == id_or_arn || (!t.arn.empty() && t.arn == id_or_arn)) return &t;
  }
  // An application profile's short id (the last part of its ARN).
  for (const CatalogueTarget& t : targets) {
    if (t.kind != TargetKind::kApplicationProfile || id_or_arn.empty()) continue;
    size_t slash = t.arn.rfind('/');
    if (slash != std::string::npos && std::string_view(t.arn).substr(slash + 1) == id_or_arn) return &t;
  }
  return nullptr;
}

Result<std::string> ModelCatalogue::InvocationTargetFor(std::string_view model_id) const {
  const CatalogueTarget* target = Find(model_id);
  if (target == nullptr) {
    std::vector<std::string> ids;
    for (const CatalogueTarget& t : targets) ids.push_back(t.id);
    return NotFoundError("model " + std::string(model_id) + " is not in the catalogue of " + region +
                         "; choose one of: " + JoinIds(ids));
  }
  if (!target->usable) {
    return FailedPreconditionError("model " + target->id + " cannot be used by this account in " + region + ": " +
                                   target->unusable_reason);
  }
  if (target->kind != TargetKind::kFoundationModel || target->on_demand) return target->id;
  if (!target->recommended_profile_id.empty()) return target->recommended_profile_id;
  std::vector<std::string> profiles;
  for (const CatalogueTarget& t : targets) {
    if (t.kind != TargetKind::kFoundationModel) profiles.push_back(t.id);
  }
  return FailedPreconditionError("model " + target->id + " cannot be called on demand in " + region +
                                 " and no inference profile in this region contains it; the profiles that exist are: " +
                                 JoinIds(profiles) + ". Create an application inference profile for it, or pick "
                                 "another model");
}

nlohmann::json ModelCatalogue::ToJson() const {
  json list = json::array();
  for (const CatalogueTarget& t : targets) {
    list.push_back({{"kind", TargetKindName(t.kind)},
                    {"id", t.id},
                    {"arn", t.arn},
                    {"name", t.name},
                    {"provider", t.provider},
                    {"model_ids", t.model_ids},
                    {"on_demand", t.on_demand},
                    {"requires_profile", t.requires_profile},
                    {"recommended_profile_id", t.recommended_profile_id},
                    {"streaming", t.streaming},
                    {"active", t.active},
                    {"usable", t.usable},
                    {"unusable_reason", t.unusable_reason}});
  }
  return {{"region", region}, {"targets", std::move(list)}};
}

Result<ModelCatalogue> MergeCatalogue(std::string_view region, const nlohmann::json& foundation_models,
                                      const std::vector<nlohmann::json>& inference_profile_pages,
                                      const std::vector<std::string>& unusable_model_ids) {
  ModelCatalogue catalogue;
  catalogue.region = std::string(region);

  // --- Foundation models.
  if (!foundation_models.is_object()) return Malformed("foundationModels", "is not a JSON object");
  auto summaries = foundation_models.find("modelSummaries");
  if (summaries == foundation_models.end()) return Malformed("foundationModels.modelSummaries", "is missing");
  if (!summaries->is_array()) return Malformed("foundationModels.modelSummaries", "is not an array");
  std::vector<CatalogueTarget> models;
  for (size_t i = 0; i < summaries->size(); ++i) {
    const json& s = (*summaries)[i];
    const std::string path = "foundationModels.modelSummaries[" + std::to_string(i) + "]";
    if (!s.is_object()) return Malformed(path, "is not a JSON object");
    CatalogueTarget t;
    t.kind = TargetKind::kFoundationModel;
    QUARRY_ASSIGN_OR_RETURN(t.id, RequiredString(s, "modelId", path));
    QUARRY_ASSIGN_OR_RETURN(t.arn, OptionalString(s, "modelArn", path));
    QUARRY_ASSIGN_OR_RETURN(t.name, OptionalString(s, "modelName", path));
    QUARRY_ASSIGN_OR_RETURN(t.provider, OptionalString(s, "providerName", path));
    QUARRY_ASSIGN_OR_RETURN(std::vector<std::string> types, OptionalStrings(s, "inferenceTypesSupported", path));
    t.model_ids = {t.id};
    t.on_demand = Contains(types, "ON_DEMAND");
    // Without ON_DEMAND the bare model id is refused ("on-demand throughput
    // isn't supported"); a profile is the way in.
    t.requires_profile = !t.on_demand;
    auto streaming = s.find("responseStreamingSupported");
    if (streaming != s.end() && !streaming->is_null()) {
      if (!streaming->is_boolean()) return Malformed(path + ".responseStreamingSupported", "is not a boolean");
      t.streaming = streaming->get<bool>();
    }
    auto lifecycle = s.find("modelLifecycle");
    if (lifecycle != s.end() && !lifecycle->is_null()) {
      if (!lifecycle->is_object()) return Malformed(path + ".modelLifecycle", "is not a JSON object");
      QUARRY_ASSIGN_OR_RETURN(std::string status, OptionalString(*lifecycle, "status", path + ".modelLifecycle"));
      t.active = status.empty() || status == "ACTIVE";
    }
    models.push_back(std::move(t));
  }

  // --- Inference profiles, all pages.
  std::vector<CatalogueTarget> system_profiles;
  std::vector<CatalogueTarget> application_profiles;
  for (size_t p = 0; p < inference_profile_pages.size(); ++p) {
    QUARRY_ASSIGN_OR_RETURN(std::vector<ParsedProfile> parsed, ParseProfilePage(inference_profile_pages[p], p));
    for (ParsedProfile& pp : parsed) {
      // Pages may overlap when a caller retries a page; keep the first.
      auto& list = pp.system ? system_profiles : application_profiles;
      bool seen = std::any_of(list.begin(), list.end(), [&](const CatalogueTarget& t) { return t.id == pp.target.id; });
      if (!seen) list.push_back(std::move(pp.target));
    }
  }

  // Profiles inherit provider and streaming from the models behind them.
  auto find_model = [&](std::string_view id) -> const CatalogueTarget* {
    for (const CatalogueTarget& m : models) {
      if (m.id == id) return &m;
    }
    return nullptr;
  };
  for (auto* list : {&system_profiles, &application_profiles}) {
    for (CatalogueTarget& profile : *list) {
      for (const std::string& id : profile.model_ids) {
        const CatalogueTarget* m = find_model(id);
        if (m == nullptr) continue;
        if (profile.provider.empty()) profile.provider = m->provider;
        profile.streaming = profile.streaming || m->streaming;
      }
    }
  }

  // --- Recommended profile per model: the region's geography, else global,
  // else any system profile containing it.
  Result<aws::Region> parsed_region = aws::ParseRegion(region);
  for (CatalogueTarget& m : models) {
    if (!m.requires_profile) continue;
    std::string geo_id;
    if (parsed_region.ok()) {
      Result<std::string> expected = aws::SystemProfileIdForRegion(m.id, parsed_region.value());
      if (expected.ok()) geo_id = expected.value();
    }
    const CatalogueTarget* geo = nullptr;
    const CatalogueTarget* global = nullptr;
    const CatalogueTarget* any = nullptr;
    for (const CatalogueTarget& profile : system_profiles) {
      if (!Contains(profile.model_ids, m.id)) continue;
      if (!geo_id.empty() && profile.id == geo_id) geo = &profile;
      if (global == nullptr && profile.id.rfind("global.", 0) == 0) global = &profile;
      if (any == nullptr) any = &profile;
    }
    const CatalogueTarget* chosen = geo != nullptr ? geo : (global != nullptr ? global : any);
    if (chosen != nullptr) m.recommended_profile_id = chosen->id;
  }

  // --- What the account cannot use.
  for (CatalogueTarget& m : models) {
    if (Contains(unusable_model_ids, m.id) || (!m.arn.empty() && Contains(unusable_model_ids, m.arn))) {
      m.usable = false;
      m.unusable_reason = "this account has no access to " + m.id + " in " + catalogue.region +
                          " (enable it under Model access in the Bedrock console, or check the IAM policy)";
    }
  }
  for (auto* list : {&system_profiles, &application_profiles}) {
    for (CatalogueTarget& profile : *list) {
      if (Contains(unusable_model_ids, profile.id) || Contains(unusable_model_ids, profile.arn)) {
        profile.usable = false;
        profile.unusable_reason = "this account cannot use the inference profile " + profile.id + " in " +
                                  catalogue.region + " (check model access and the IAM policy)";
        continue;
      }
      if (profile.model_ids.empty()) continue;
      bool all_unusable = std::all_of(profile.model_ids.begin(), profile.model_ids.end(),
                                      [&](const std::string& id) { return Contains(unusable_model_ids, id); });
      if (all_unusable) {
        profile.usable = false;
        profile.unusable_reason = "every model behind this profile is unusable by this account: " +
                                  JoinIds(profile.model_ids);
      }
    }
  }

  catalogue.targets = std::move(models);
  for (auto& t : system_profiles) catalogue.targets.push_back(std::move(t));
  for (auto& t : application_profiles) catalogue.targets.push_back(std::move(t));
  return catalogue;
}

}  // namespace quarry::bedrock
