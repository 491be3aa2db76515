#pragma once
// IAM-style identity policies for the Bedrock emulator.
//
// A policy is a list of statements {Effect, Action, Resource} as in an IAM
// policy document (https://docs.aws.amazon.com/IAM/latest/UserGuide/
// reference_policies_evaluation-logic.html, reduced to identity policies
// without conditions): a request is allowed when some statement allows it and
// none denies it. Default deny; an explicit Deny wins. Actions match
// case-insensitively ("bedrock:invoke*" == "bedrock:Invoke*"); resources match
// case-sensitively. In both, `*` matches any run of characters (including
// none, and across ':' and '/') and `?` any single character.
//
// Thread safety: values and pure functions.

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace quarry::sim {

struct PolicyStatement {
  bool allow = true;                    // Effect: Allow | Deny
  std::vector<std::string> actions{};   // "bedrock:InvokeModel", "bedrock:*", "*"
  std::vector<std::string> resources{}; // ARN patterns, "*"
};

struct Policy {
  std::vector<PolicyStatement> statements{};
};

// Parses a policy document: {"Version": ..., "Statement": [ ... ] | { ... }}.
// Action and Resource may be a string or a list of strings; NotAction,
// NotResource, Principal and Condition are refused (not modelled). Errors:
// InvalidArgument naming `path` (a JSON path such as
// "accounts[0].users[1].policies[0]") and what to fix.
Result<Policy> ParsePolicy(const nlohmann::json& document, std::string_view path);

// The policy as a document ParsePolicy accepts.
nlohmann::json PolicyToJson(const Policy& policy);

// IAM wildcard matching: `*` any run, `?` one character.
bool WildcardMatch(std::string_view pattern, std::string_view text, bool ignore_case);

enum class Decision { kAllow, kExplicitDeny, kImplicitDeny };

// Evaluates every statement of every policy for (action, resource).
Decision Evaluate(const std::vector<Policy>& policies, std::string_view action,
                  std::string_view resource);

// The AccessDeniedException message AWS writes:
//   User: <principal> is not authorized to perform: <action> on resource:
//   <resource> because no identity-based policy allows the <action> action
// or, for an explicit deny, "... with an explicit deny in an identity-based
// policy".
std::string AccessDeniedMessage(std::string_view principal_arn, std::string_view action,
                                std::string_view resource, Decision decision);

}  // namespace quarry::sim
