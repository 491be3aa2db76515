#pragma once
// Quarry's JSON form of what an agent hands back (one shape for the chat API
// and `quarry bedrock invoke-agent`, so a user who debugs an agent from the
// command line sees what the API will show).
//
// Thread safety: pure functions.

#include <nlohmann/json.hpp>

#include "bedrock/client.h"

namespace quarry::bedrock {

// {"invocation_id", "invocations": [...]}: one list, as AWS's
// invocationInputs (function-schema entries first, then API-schema ones).
// A function-schema entry is {action_group, function,
// parameters}; an API-schema entry is {action_group, http_method, api_path,
// parameters, request_body: {media type: [parameters]}}. Parameters are
// [{name, type, value}]. action_invocation_type, agent_id and
// collaborator_name are added when set.
nlohmann::json ReturnControlToJson(const ReturnControl& return_control);

}  // namespace quarry::bedrock
