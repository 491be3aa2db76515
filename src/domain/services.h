#pragma once
// AI Services (type "llm"): a named binding of a working provider, a
// Bedrock-hosted Claude model, and its settings (temperature, max tokens,
// optional top_p, stop sequences and system prompt). Automations and agents
// use services, never raw model ids.
//
// The model is chosen from the provider's catalogue (domain/providers.h
// caches it): a foundation model id, a system inference profile id, or an
// application inference profile ARN/id. A foundation model that runs only
// through an inference profile in the provider's region is stored with the
// profile as its invocation target, and the service says so in `notices`.
// max_tokens is checked against the model's output limit (ClaudeLimitsFor).
//
// Also here: the catalogue view the API shows (ModelsView) and the Claude
// model limits.
//
// Thread safety: stateless functions over a store::Tx; values.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/status.h"
#include "domain/paging.h"
#include "domain/principal.h"
#include "domain/providers.h"
#include "store/database.h"

namespace quarry::domain {

// ---------------------------------------------------------------------------
// Claude model limits
// ---------------------------------------------------------------------------

struct ClaudeLimits {
  bool known = false;               // false: not a Claude model we know
  std::string family{};             // "claude-3-haiku"
  int64_t max_output_tokens = 0;    // the largest max_tokens the model accepts
  int64_t context_window = 0;       // input + output tokens
  bool vision = false;              // accepts images
  bool tool_use = false;            // tools / function calling
};
// Limits by foundation model id ("anthropic.claude-3-haiku-20240307-v1:0",
// with or without a geography prefix). From Anthropic's model comparison
// (output limits at the default, without beta headers).
ClaudeLimits ClaudeLimitsFor(std::string_view model_id);
bool IsClaudeModelId(std::string_view model_id);

// Stop sequences: bedrock-runtime's InferenceConfigurationStopSequencesList
// (the Converse shape) allows at most 2,500; Anthropic documents no smaller
// limit for Claude. Each must be non-empty; we also bound their length.
inline constexpr size_t kMaxStopSequences = 2500;
inline constexpr size_t kMaxStopSequenceLength = 1000;
inline constexpr size_t kMaxSystemPromptLength = 100'000;

// ---------------------------------------------------------------------------
// The catalogue as the API shows it
// ---------------------------------------------------------------------------

// {"provider_id","region","fetched_at","models":[...],"profiles":[...]} where
// each model is {"model_id","name","provider","claude","on_demand",
// "requires_profile","profile_id","profile_ids","invocation_target",
// "streaming","active","lifecycle","usable","unusable_reason",
// "capabilities":{"max_output_tokens","context_window","vision","tool_use",
// "streaming"}} and each profile {"id","kind","arn","name","model_ids",
// "usable","unusable_reason"}. `all` = false keeps Claude only.
nlohmann::json ModelsView(const Provider& provider, const CachedCatalogue& cached, bool all);

// What a service will call.
struct ModelChoice {
  std::string requested{};          // as given
  std::string invocation_target{};  // what InvokeModel gets
  std::string target_kind{};        // "foundation-model" | "system-profile" | "application-profile"
  std::string foundation_model_id{};
  std::string model_name{};
  ClaudeLimits limits{};
  std::vector<std::string> notices{};  // e.g. "stored the inference profile ..."
};
// Resolves a model choice against the catalogue. FieldError (field "model")
// for: not in the catalogue (names a few that are), not a Claude model, not
// usable by the account, a profile-only model with no profile in the region.
std::optional<FieldError> ResolveModelChoice(const CachedCatalogue& cached, const std::string& region,
                                             const std::string& requested, ModelChoice* out);

// ---------------------------------------------------------------------------
// Services
// ---------------------------------------------------------------------------

struct Service {
  std::string id{};  // "svc_..."
  std::string org_id{};
  std::string name{};
  std::string type = "llm";
  std::string description{};
  std::string provider_id{};
  std::string model_id{};  // as chosen
  std::string invocation_target{};
  std::string target_kind{};
  std::string foundation_model_id{};
  std::string model_name{};
  double temperature = 0.7;
  int64_t max_tokens = 1024;
  std::optional<double> top_p{};
  std::vector<std::string> stop_sequences{};
  std::string system_prompt{};
  std::vector<std::string> notices{};
  int64_t version = 1;
  std::string created_by{}, created_at{}, updated_at{};
};

// {"id","name","type","description","provider_id","model":{"requested",
// "invocation_target","target_kind","foundation_model_id","name"},
// "temperature","max_tokens","top_p","stop_sequences","system_prompt",
// "notices","version","created_by","created_at","updated_at"}
nlohmann::json ServiceToJson(const Service& service);

struct ServiceInput {
  std::optional<std::string> name{}, description{}, provider_id{}, model{};
  std::optional<double> temperature{};
  std::optional<int64_t> max_tokens{};
  std::optional<std::optional<double>> top_p{};  // {nullopt} clears
  std::optional<std::vector<std::string>> stop_sequences{};
  std::optional<std::string> system_prompt{};
};
// Shapes and ranges that need no catalogue: name, type "llm", temperature
// 0..1, top_p 0..1, max_tokens >= 1, stop sequences (count, non-empty,
// length), system prompt length.
std::optional<FieldError> ParseServiceInput(const nlohmann::json& body, bool create, ServiceInput* out);

// Applies input to `existing` (nullptr for create) with the resolved model
// (required when the model or provider changes) and checks max_tokens
// against the model's limit.
std::optional<FieldError> ApplyServiceInput(const Service* existing, const ServiceInput& input,
                                            const ModelChoice* model, Service* out);

Result<Service> CreateService(store::Tx& tx, const Clock& clock, const Principal& actor, Service service,
                              const std::string& request_id);
Result<Service> GetService(store::Tx& tx, const std::string& org_id, const std::string& service_id);
Result<Page<Service>> ListServices(store::Tx& tx, const std::string& org_id, const PageRequest& page,
                                   std::string_view provider_id = {});
// `updated` carries the new values; checks before.version (Aborted on a race).
Result<Service> UpdateService(store::Tx& tx, const Clock& clock, const Principal& actor, const Service& before,
                              Service updated, const std::string& request_id);
Status DeleteService(store::Tx& tx, const Clock& clock, const Principal& actor, const Service& service,
                     const std::string& request_id);

}  // namespace quarry::domain
