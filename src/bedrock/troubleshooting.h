#pragma once
// The troubleshooting catalogue: every AWS failure Quarry can meet, explained
// in words a person can act on. Each entry says what happened, the likely
// causes and how to fix it, filled in with the details of the failed call
// (region, model, agent alias ARN, identity) so the fix is concrete.
//
// It covers every case of the seed's Troubleshooting section (access denied on
// InvokeModel or InvokeAgent; invalid ARN format / resource not found,
// including the base-agent-ARN mistake; could not connect, timeouts, a provider
// region that differs from the agent's; agent execution timed out; an alias
// with no associated version) and the failures users hit most: model access
// not granted, on-demand throughput not supported (naming the inference
// profile id to use instead), throttling and quotas, validation errors in the
// request body, expired or invalid credentials, clock skew, Bedrock API keys
// used where they are not accepted, and broken or stalled event streams.
//
// Thread safety: pure functions over constant data.

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "aws/aws_error.h"

namespace quarry::bedrock {

struct TroubleshootingEntry {
  std::string id{};             // stable, e.g. "access-denied-invoke-agent"
  std::string title{};          // one line
  std::string what_happened{};  // filled in with the call's details
  std::vector<std::string> likely_causes{};
  std::vector<std::string> how_to_fix{};

  // Several lines for a terminal: title, what happened, causes, fixes.
  std::string ToText() const;
  // {"id","title","what_happened","likely_causes":[…],"how_to_fix":[…]}.
  nlohmann::json ToJson() const;
};

// What was being attempted when the error happened. Empty fields are unknown.
struct CallContext {
  std::string operation{};        // "InvokeAgent", "InvokeModel", "GetCallerIdentity", …
  std::string region{};           // the region the call went to
  std::string endpoint_url{};     // the endpoint it went to
  std::string model_id{};         // InvokeModel / Converse target as given
  std::string agent_alias_arn{};  // InvokeAgent / GetAgentAlias
  std::string identity_arn{};     // the caller, when known (from GetCallerIdentity)
  bool used_bearer_token = false;
};

// The entry for this error. Never fails: an error no entry knows gets a
// generic entry that still shows the AWS code, status, request id and message.
TroubleshootingEntry Troubleshoot(const aws::AwsError& error, const CallContext& context);

// The identifiers of every entry, for documentation and tests.
std::vector<std::string> TroubleshootingEntryIds();

}  // namespace quarry::bedrock
