#pragma once
// App Intelligence — Bedrock Agents: an agent built in AWS connected to an
// app by its Agent Alias ARN, through a working provider, with a display name
// and description.
//
// Rules (the seed's step 4 and troubleshooting):
//   - the ARN must be an agent *alias* ARN
//     (arn:aws:bedrock:{region}:{account}:agent-alias/{agent-id}/{alias-id});
//     a base agent ARN is refused with code "base_agent_arn", anything else
//     malformed with "invalid_agent_alias_arn" (aws::ParseAgentAliasArn's
//     message, which shows the shape to use);
//   - the ARN's region (and partition) must be the provider's, else
//     "agent_region_mismatch";
//   - the alias is then checked with GetAgentAlias by the API layer; the
//     outcome is stored in `verification` and any `warnings` (e.g. the
//     provider's identity may not call bedrock:GetAgentAlias).
// An alias may be connected to an app once; names are unique per app.
//
// Apps belong to the apps module; the app is looked up by id or namespace in
// the apps table (no foreign key; skipped while no apps table exists).
//
// Thread safety: stateless functions over a store::Tx; values.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "aws/arn.h"
#include "common/clock.h"
#include "common/status.h"
#include "domain/paging.h"
#include "domain/principal.h"
#include "domain/providers.h"
#include "store/database.h"

namespace quarry::domain {

// The seed's reminder of the alias ARN shape.
inline constexpr char kAgentAliasArnFormat[] = "arn:aws:bedrock:{region}:{account}:agent-alias/{agent-id}/{alias-id}";

// Validates `text` as an agent alias ARN for `provider_region`. On success
// fills `out`. FieldError (field "agent_alias_arn") codes as above; the hint
// carries the seed's guidance.
std::optional<FieldError> CheckAgentAliasArn(const std::string& text, const std::string& provider_region,
                                             const std::string& provider_name, aws::AgentAliasArn* out);

struct AgentConnection {
  std::string id{};  // "agt_..."
  std::string org_id{};
  std::string app_id{};
  std::string provider_id{};
  std::string name{};
  std::string description{};
  std::string agent_alias_arn{};
  std::string agent_id{}, alias_id{}, region{}, account{};
  // {"status":"verified"|"unverified","checked_at","alias_name","alias_status","agent_version"}
  nlohmann::json verification = nlohmann::json::object();
  std::vector<nlohmann::json> warnings{};  // [{"code","message","missing_permission"?}]
  int64_t version = 1;
  std::string created_by{}, created_at{}, updated_at{};
};

// {"id","app_id","provider_id","source":"bedrock","name","description",
//  "agent_alias_arn","agent_id","alias_id","region","account","verification",
//  "warnings","version","created_by","created_at","updated_at"}
nlohmann::json AgentConnectionToJson(const AgentConnection& agent);

struct AgentConnectionInput {
  std::optional<std::string> provider_id{}, agent_alias_arn{}, name{}, description{};
};
// {"provider_id","agent_alias_arn","name","description","source":"bedrock"}.
std::optional<FieldError> ParseAgentConnectionInput(const nlohmann::json& body, bool create,
                                                    AgentConnectionInput* out);

// The id of the app `app_ref` names (its id or its namespace) in the org.
// NotFound when the apps table exists and has no such app; `app_ref` itself
// while no apps table exists (a build without the apps module).
Result<std::string> ResolveAppId(store::Tx& tx, const std::string& org_id, const std::string& app_ref);

Result<AgentConnection> CreateAgentConnection(store::Tx& tx, const Clock& clock, const Principal& actor,
                                              AgentConnection agent, const std::string& request_id);
Result<AgentConnection> GetAgentConnection(store::Tx& tx, const std::string& org_id, const std::string& agent_id);
Result<Page<AgentConnection>> ListAgentConnections(store::Tx& tx, const std::string& org_id,
                                                   const std::string& app_id, const PageRequest& page);
Result<AgentConnection> UpdateAgentConnection(store::Tx& tx, const Clock& clock, const Principal& actor,
                                              const AgentConnection& before, AgentConnection updated,
                                              const std::string& request_id);
// Also deletes its conversations (cascade).
Status DeleteAgentConnection(store::Tx& tx, const Clock& clock, const Principal& actor, const AgentConnection& agent,
                             const std::string& request_id);

}  // namespace quarry::domain
