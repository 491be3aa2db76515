#pragma once
// The emulator's world: which accounts, identities, regions, models,
// inference profiles, agents, quotas and faults exist. It is read from a JSON
// document (docs/emulator.md is the reference for every field); the demo world
// is such a document, and `quarry sim --print-config` prints it with a
// "_comment" member in each section. Every member whose name starts with
// "_comment" is ignored anywhere in the document; any other unknown member is
// an error, so a typo never silently changes the world.
//
// Errors name the JSON path ("regions[0].models[2].inference_types[1]") and
// say what to write instead.
//
// Thread safety: values and pure functions.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "sim/agent_model.h"
#include "sim/claude_model.h"
#include "sim/iam.h"

namespace quarry::sim {

struct AccessKeySpec {
  std::string id{};      // "AKIA..." (16-128 characters)
  std::string secret{};  // 40 characters on AWS; any non-empty text here
};

struct UserSpec {
  std::string name{};
  std::vector<AccessKeySpec> access_keys{};
  std::vector<Policy> policies{};
};

struct RoleSpec {
  std::string name{};
  // Principal ARN patterns allowed to assume the role
  // ("arn:aws:iam::111122223333:user/quarry-demo", "arn:aws:iam::111122223333:root" = the whole account).
  std::vector<std::string> trusted_principals{};
  std::vector<Policy> policies{};
  int max_session_seconds = 3600;
};

struct ApiKeySpec {
  std::string token{};  // the bearer token ("ABSK...")
  std::string user{};   // the user whose policies apply
};

struct AccountSpec {
  std::string id{};  // 12 digits
  std::vector<UserSpec> users{};
  std::vector<RoleSpec> roles{};
  std::vector<ApiKeySpec> api_keys{};
  // Foundation model ids this account may invoke ("*" = all).
  std::vector<std::string> model_access{};

  const UserSpec* FindUser(std::string_view name) const;
  const RoleSpec* FindRole(std::string_view name) const;
  bool HasModelAccess(std::string_view model_id) const;
};

struct ModelSpec {
  std::string id{};        // "anthropic.claude-3-haiku-20240307-v1:0"
  std::string name{};      // "Claude 3 Haiku"
  std::string provider{};  // "Anthropic"
  std::vector<std::string> input_modalities{};   // TEXT | IMAGE | EMBEDDING
  std::vector<std::string> output_modalities{};  // TEXT | IMAGE | EMBEDDING
  bool streaming = true;
  std::vector<std::string> inference_types{};  // ON_DEMAND | INFERENCE_PROFILE | PROVISIONED
  std::vector<std::string> customizations{};   // FINE_TUNING | CONTINUED_PRE_TRAINING | DISTILLATION
  std::string lifecycle = "ACTIVE";            // ACTIVE | LEGACY
  int max_output_tokens = 8192;
  std::vector<ReplyRule> rules{};

  bool OnDemand() const;
  bool IsClaude() const;
  ClaudeModelSpec Claude() const;
};

struct SystemProfileSpec {
  std::string id{};    // "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
  std::string name{};  // "US Anthropic Claude 3.7 Sonnet"
  std::string description{};
  std::string model{};                      // the foundation model id
  std::vector<std::string> destinations{};  // regions it routes to (their foundation-model ARNs are listed)
};

struct RegionSpec {
  std::string name{};  // "us-east-1"
  std::vector<ModelSpec> models{};
  std::vector<SystemProfileSpec> system_profiles{};

  const ModelSpec* FindModel(std::string_view model_id) const;
  const SystemProfileSpec* FindProfile(std::string_view profile_id) const;
};

struct ApplicationProfileSpec {
  std::string account{};
  std::string region{};
  std::string id{};  // [a-z0-9]{12}
  std::string name{};
  std::string description{};
  std::string model{};  // the foundation model it invokes
  std::string Arn() const;
};

struct QuotaRule {
  std::string account = "*";  // 12 digits or "*"
  std::string model = "*";    // foundation model id or "*"
  int64_t requests_per_minute = 0;  // 0 = unlimited
  int64_t tokens_per_minute = 0;    // 0 = unlimited
};

// One fault rule (see docs/emulator.md "Faults").
struct FaultRule {
  std::string kind{};  // latency | throttle | internal_error | service_unavailable | model_timeout |
                       // model_not_ready | dependency_failed | stream_exception | bad_crc |
                       // cut_stream | stall | reset
  std::string operation = "*";  // "InvokeModel", ..., or "*"
  std::string model{};          // match on the resolved foundation model id or the modelId as sent ("" = any)
  std::string agent{};          // match on the agent id ("" = any)
  std::optional<int64_t> count{};  // the next N matching calls
  std::optional<double> rate{};    // or this fraction of them (0..1), pseudo-random with the world's seed
  // latency
  int64_t latency_ms = 0;          // fixed delay before the response
  int64_t median_ms = 0;           // or a log-normal delay with this median ...
  int64_t p99_ms = 0;              // ... and this 99th percentile
  int64_t first_byte_ms = 0;       // streams: extra delay before the first byte
  int64_t chunk_delay_ms = 0;      // streams: delay between events
  // throttle: in a stream, send the lower-case `throttlingException` event after
  // `after_events` events instead of a 429 before the stream starts.
  bool in_stream = false;
  int64_t after_events = 1;        // stream_exception / bad_crc / cut_stream / in-stream throttle
  std::string exception_type{};    // stream_exception: e.g. "modelStreamErrorException"
  std::string message{};           // override of the error message

  nlohmann::json ToJson() const;
};

// Parses one fault rule (also used by POST /_quarry/faults).
Result<FaultRule> ParseFaultRule(const nlohmann::json& value, std::string_view path);

struct WorldConfig {
  std::vector<AccountSpec> accounts{};
  std::vector<RegionSpec> regions{};
  std::vector<ApplicationProfileSpec> application_profiles{};
  std::vector<KnowledgeBaseSpec> knowledge_bases{};
  std::vector<AgentSpec> agents{};
  std::vector<QuotaRule> quotas{};
  std::vector<FaultRule> faults{};
  uint64_t seed = 42;  // for rate-based faults and heavy-tailed latency
  int64_t request_log_size = 1000;

  const AccountSpec* FindAccount(std::string_view id) const;
  const RegionSpec* FindRegion(std::string_view name) const;
  const AgentSpec* FindAgent(std::string_view region, std::string_view agent_id) const;
  const ApplicationProfileSpec* FindApplicationProfile(std::string_view arn) const;
};

// Parses and validates a world document. Cross-references are checked
// (api key users, model_access ids, profile models, agent foundation models,
// knowledge base ids, alias versions, agent regions and accounts).
Result<WorldConfig> ParseWorldConfig(std::string_view json_text);

// The demo world's document, with "_comment" members: what
// `quarry sim --print-config` prints and ParseWorldConfig accepts.
std::string DemoWorldConfigText();

// ParseWorldConfig(DemoWorldConfigText()); the demo must always be valid.
WorldConfig DemoWorld();

// Demo facts other code and tests use.
inline constexpr std::string_view kDemoAccount = "111122223333";
inline constexpr std::string_view kDemoAccessKeyId = "AKIAQUARRYDEMO000001";
inline constexpr std::string_view kDemoSecretAccessKey = "quarryDemoSecretKey0000000000000000000001";
inline constexpr std::string_view kDemoRestrictedAccessKeyId = "AKIAQUARRYREADONLY01";
inline constexpr std::string_view kDemoRestrictedSecretAccessKey = "quarryReadOnlySecret00000000000000000001";
inline constexpr std::string_view kDemoApiKey = "ABSKquarrydemoapikey0001";
inline constexpr std::string_view kDemoAgentId = "HELPDESK01";
inline constexpr std::string_view kDemoAliasId = "PRODALIAS1";
inline constexpr std::string_view kDemoUnboundAliasId = "NOVERSION1";
inline constexpr std::string_view kDemoRoleArn = "arn:aws:iam::111122223333:role/quarry-invoker";

}  // namespace quarry::sim
