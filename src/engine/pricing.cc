#include "engine/pricing.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <utility>

namespace quarry::engine {
namespace {

constexpr char kOnDemand[] = "on_demand";
constexpr char kCrossRegion[] = "cross_region";
constexpr char kGlobal[] = "global";
constexpr char kDefaultModel[] = "default";

// Geography prefixes of system-defined inference profiles ("us.anthropic...").
constexpr std::array<std::string_view, 8> kGeographyPrefixes = {"us",     "eu", "apac", "global",
                                                                "us-gov", "jp", "au",   "ca"};

// Anthropic Claude list prices on Bedrock, USD per 1,000 tokens (on-demand
// and batch-free, no prompt caching). Entries are model families so every
// dated version of a model matches. From the 4.5 generation on, Bedrock
// prices the global profile at list and regional endpoints (in-region and
// geography profiles) 10% higher.
struct BuiltInPrice {
  const char* model;
  const char* profile_type;
  double input_per_1k;
  double output_per_1k;
};
constexpr BuiltInPrice kBuiltInPrices[] = {
    {"default", "", 0.003, 0.015},  // Sonnet pricing: agents and unknown models
    {"anthropic.claude-3-haiku", "", 0.00025, 0.00125},
    {"anthropic.claude-3-5-haiku", "", 0.0008, 0.004},
    {"anthropic.claude-3-sonnet", "", 0.003, 0.015},
    {"anthropic.claude-3-5-sonnet", "", 0.003, 0.015},
    {"anthropic.claude-3-7-sonnet", "", 0.003, 0.015},
    {"anthropic.claude-sonnet-4", "", 0.003, 0.015},
    {"anthropic.claude-3-opus", "", 0.015, 0.075},
    {"anthropic.claude-opus-4", "", 0.015, 0.075},
    {"anthropic.claude-opus-4-1", "", 0.015, 0.075},
    {"anthropic.claude-haiku-4-5", "", 0.0011, 0.0055},
    {"anthropic.claude-haiku-4-5", kGlobal, 0.001, 0.005},
    {"anthropic.claude-sonnet-4-5", "", 0.0033, 0.0165},
    {"anthropic.claude-sonnet-4-5", kGlobal, 0.003, 0.015},
    {"anthropic.claude-opus-4-5", "", 0.0055, 0.0275},
    {"anthropic.claude-opus-4-5", kGlobal, 0.005, 0.025},
};

bool IsDigits(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "anthropic.claude-3-haiku-20240307-v1:0" -> "anthropic.claude-3-haiku":
// drops the ":n" suffixes, then a "-v<n>" version, then a "-YYYYMMDD" date.
std::string ModelFamily(std::string_view model) {
  model = model.substr(0, model.find(':'));
  if (const size_t dash = model.rfind("-v");
      dash != std::string_view::npos && IsDigits(model.substr(dash + 2))) {
    model = model.substr(0, dash);
  }
  if (const size_t dash = model.rfind('-'); dash != std::string_view::npos &&
                                            model.size() - dash - 1 == 8 &&
                                            IsDigits(model.substr(dash + 1))) {
    model = model.substr(0, dash);
  }
  return std::string(model);
}

// What a model id, profile id or ARN names, for price lookup.
struct PricedTarget {
  std::vector<std::string> names;  // most specific first
  std::string region;              // from an ARN, when it has one
  std::string profile_type;        // "" when unknown
};

// A system profile id ("us.anthropic.claude-...") or a model id.
void AddModelOrProfile(std::string_view id, PricedTarget* target) {
  std::string_view model = id;
  target->profile_type = kOnDemand;
  if (const size_t dot = id.find('.'); dot != std::string_view::npos) {
    const std::string_view prefix = id.substr(0, dot);
    const std::string_view rest = id.substr(dot + 1);
    // A profile id is "<geography>.<provider>.<model>": the rest still has a dot.
    if (rest.find('.') != std::string_view::npos &&
        std::find(kGeographyPrefixes.begin(), kGeographyPrefixes.end(), prefix) !=
            kGeographyPrefixes.end()) {
      target->profile_type = prefix == "global" ? kGlobal : kCrossRegion;
      target->names.emplace_back(id);  // a configured price for the profile itself wins
      model = rest;
    }
  }
  target->names.emplace_back(model);
  target->names.push_back(ModelFamily(model));
}

PricedTarget ParseTarget(std::string_view model_id) {
  PricedTarget target;
  if (model_id.rfind("arn:", 0) == 0) {
    // arn:partition:bedrock:region:account:type/id
    std::array<std::string_view, 5> parts{};
    std::string_view rest = model_id;
    for (auto& part : parts) {
      const size_t colon = rest.find(':');
      if (colon == std::string_view::npos) {
        rest = {};
        break;
      }
      part = rest.substr(0, colon);
      rest = rest.substr(colon + 1);
    }
    target.region = std::string(parts[3]);
    target.names.emplace_back(model_id);
    const size_t slash = rest.find('/');
    const std::string_view type = rest.substr(0, slash);
    const std::string_view id =
        slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    if (type == "foundation-model" || type == "inference-profile") {
      if (!id.empty()) AddModelOrProfile(id, &target);
    } else if (!id.empty()) {
      // An application inference profile (or another resource) does not
      // name its model: only a configured price for the ARN or its id, else
      // the default, applies.
      target.names.emplace_back(id);
    }
  } else if (!model_id.empty()) {
    AddModelOrProfile(model_id, &target);
  }
  target.names.emplace_back(kDefaultModel);
  // Drop repeats (a family equal to its model) keeping the first.
  std::vector<std::string> unique;
  for (auto& name : target.names) {
    if (std::find(unique.begin(), unique.end(), name) == unique.end())
      unique.push_back(std::move(name));
  }
  target.names = std::move(unique);
  return target;
}

bool SameKey(const PriceEntry& a, const PriceEntry& b) {
  return a.model == b.model && a.region == b.region && a.profile_type == b.profile_type;
}

Result<double> ReadPrice(const nlohmann::json& entry, const char* field, const std::string& where) {
  auto it = entry.find(field);
  if (it == entry.end()) {
    return InvalidArgumentError(where + ": \"" + field +
                                "\" is missing; give the price in USD per 1,000 tokens");
  }
  if (!it->is_number() || !std::isfinite(it->get<double>()) || it->get<double>() < 0) {
    return InvalidArgumentError(where + ": \"" + field +
                                "\" must be a number >= 0 (USD per 1,000 tokens), got " +
                                it->dump());
  }
  return it->get<double>();
}

}  // namespace

PriceTable PriceTable::BuiltIn() {
  PriceTable table;
  for (const BuiltInPrice& row : kBuiltInPrices) {
    table.entries_.push_back(PriceEntry{.model = row.model,
                                        .region = "",
                                        .profile_type = row.profile_type,
                                        .price = {row.input_per_1k, row.output_per_1k}});
  }
  return table;
}

Result<PriceTable> PriceTable::FromJson(const nlohmann::json& entries) {
  if (!entries.is_array()) {
    return InvalidArgumentError(
        "prices must be a JSON array of {\"model\", \"input_per_1k\", \"output_per_1k\"} "
        "objects, got " +
        std::string(entries.type_name()));
  }
  PriceTable table;
  for (size_t i = 0; i < entries.size(); ++i) {
    const nlohmann::json& entry = entries[i];
    std::string where = "price entry " + std::to_string(i);
    if (!entry.is_object()) {
      return InvalidArgumentError(
          where + " must be an object with \"model\", \"input_per_1k\" and \"output_per_1k\"");
    }
    for (const auto& [name, value] : entry.items()) {
      if (name != "model" && name != "region" && name != "profile_type" && name != "input_per_1k" &&
          name != "output_per_1k") {
        return InvalidArgumentError(
            where + ": unknown field \"" + name +
            "\"; the fields are model, region, profile_type, input_per_1k, output_per_1k");
      }
    }
    PriceEntry parsed;
    auto model = entry.find("model");
    if (model == entry.end() || !model->is_string() || model->get<std::string>().empty()) {
      return InvalidArgumentError(where +
                                  ": \"model\" must be a non-empty string (a model id such as "
                                  "anthropic.claude-3-haiku-20240307-v1:0, a family such as "
                                  "anthropic.claude-3-haiku, or \"default\")");
    }
    parsed.model = model->get<std::string>();
    where += " (model \"" + parsed.model + "\")";
    if (auto region = entry.find("region"); region != entry.end()) {
      if (!region->is_string())
        return InvalidArgumentError(where + ": \"region\" must be a string such as us-east-1");
      parsed.region = region->get<std::string>();
    }
    if (auto type = entry.find("profile_type"); type != entry.end()) {
      if (!type->is_string()) {
        return InvalidArgumentError(where + ": \"profile_type\" must be a string");
      }
      parsed.profile_type = type->get<std::string>();
      if (!parsed.profile_type.empty() && parsed.profile_type != kOnDemand &&
          parsed.profile_type != kCrossRegion && parsed.profile_type != kGlobal) {
        return InvalidArgumentError(
            where + ": \"profile_type\" is \"" + parsed.profile_type +
            "\"; use \"on_demand\", \"cross_region\", \"global\" or leave it out");
      }
    }
    QUARRY_ASSIGN_OR_RETURN(parsed.price.input_per_1k, ReadPrice(entry, "input_per_1k", where));
    QUARRY_ASSIGN_OR_RETURN(parsed.price.output_per_1k, ReadPrice(entry, "output_per_1k", where));
    PriceTable single;
    single.entries_.push_back(std::move(parsed));
    table.Merge(single);
  }
  return table;
}

void PriceTable::Merge(const PriceTable& other) {
  for (const PriceEntry& entry : other.entries_) {
    std::erase_if(entries_, [&](const PriceEntry& existing) { return SameKey(existing, entry); });
    entries_.push_back(entry);
  }
}

Price PriceTable::Lookup(std::string_view model_id, std::string_view region) const {
  const PricedTarget target = ParseTarget(model_id);
  const std::string_view where = region.empty() ? std::string_view(target.region) : region;
  const std::string_view type = target.profile_type;
  // (region, type) pairs from the most specific; "" = the entry applies to any.
  const std::pair<std::string_view, std::string_view> levels[] = {
      {where, type}, {where, ""}, {"", type}, {"", ""}};
  for (const std::string& name : target.names) {
    for (const auto& [level_region, level_type] : levels) {
      // Later entries win: search from the end.
      for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
        if (it->model == name && it->region == level_region && it->profile_type == level_type)
          return it->price;
      }
    }
  }
  return Price{};
}

double PriceTable::Cost(std::string_view model_id, std::string_view region, int64_t input_tokens,
                        int64_t output_tokens) const {
  const Price price = Lookup(model_id, region);
  return static_cast<double>(input_tokens) / 1000.0 * price.input_per_1k +
         static_cast<double>(output_tokens) / 1000.0 * price.output_per_1k;
}

}  // namespace quarry::engine
