#pragma once
// Token prices for the cost of each call: USD per 1,000 input and output
// tokens, per model, optionally per region and inference profile type
// (on-demand, cross-region profile "us."/"eu."/"apac.", global profile
// "global."). The built-in table holds Anthropic Claude list prices on
// Bedrock; the serve configuration can add or override entries.
//
// Lookup order for (model, region, profile type): exact model + region +
// type, model + region, model + type, model, then the model family (the id
// with its date/version suffix removed: "anthropic.claude-3-haiku"), then the
// table's "default" entry (used for agents whose model is not known).
//
// Thread safety: a value; const methods are thread-safe.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace quarry::engine {

struct Price {
  double input_per_1k = 0;
  double output_per_1k = 0;
};

struct PriceEntry {
  std::string model{};         // foundation model id (no profile prefix), family, or "default"
  std::string region{};        // "" = any
  std::string profile_type{};  // "" = any | "on_demand" | "cross_region" | "global"
  Price price{};
};

class PriceTable {
 public:
  // The built-in list prices.
  static PriceTable BuiltIn();
  // Entries as JSON: [{"model","region"?,"profile_type"?,"input_per_1k","output_per_1k"}].
  // InvalidArgument naming the bad entry.
  static Result<PriceTable> FromJson(const nlohmann::json& entries);

  // Adds entries (later ones win over earlier ones for the same key).
  void Merge(const PriceTable& other);

  // `model_id` may be a profile id ("us.anthropic...") or ARN; the profile
  // type is derived from it when not given.
  Price Lookup(std::string_view model_id, std::string_view region) const;
  double Cost(std::string_view model_id, std::string_view region, int64_t input_tokens,
              int64_t output_tokens) const;

  const std::vector<PriceEntry>& entries() const { return entries_; }

 private:
  std::vector<PriceEntry> entries_;
};

}  // namespace quarry::engine
