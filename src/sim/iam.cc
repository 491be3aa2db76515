#include "sim/iam.h"

#include <cctype>

namespace quarry::sim {
namespace {

using nlohmann::json;

Result<std::vector<std::string>> StringOrList(const json& value, const std::string& path) {
  std::vector<std::string> out;
  if (value.is_string()) {
    out.push_back(value.get<std::string>());
  } else if (value.is_array() && !value.empty()) {
    for (size_t i = 0; i < value.size(); ++i) {
      if (!value[i].is_string()) {
        return InvalidArgumentError(path + "[" + std::to_string(i) + "] must be a string");
      }
      out.push_back(value[i].get<std::string>());
    }
  } else {
    return InvalidArgumentError(path + " must be a string or a non-empty list of strings, e.g. \"bedrock:*\"");
  }
  for (const std::string& s : out) {
    if (s.empty()) return InvalidArgumentError(path + " holds an empty string; write a pattern such as \"*\"");
  }
  return out;
}

Result<PolicyStatement> ParseStatement(const json& statement, const std::string& path) {
  if (!statement.is_object()) {
    return InvalidArgumentError(path + " must be an object {\"Effect\", \"Action\", \"Resource\"}");
  }
  PolicyStatement out;
  for (const auto& [key, value] : statement.items()) {
    if (key == "Effect") {
      if (value == "Allow") {
        out.allow = true;
      } else if (value == "Deny") {
        out.allow = false;
      } else {
        return InvalidArgumentError(path + ".Effect must be \"Allow\" or \"Deny\"");
      }
    } else if (key == "Action") {
      QUARRY_ASSIGN_OR_RETURN(out.actions, StringOrList(value, path + ".Action"));
    } else if (key == "Resource") {
      QUARRY_ASSIGN_OR_RETURN(out.resources, StringOrList(value, path + ".Resource"));
    } else if (key == "Sid" || key.rfind("_comment", 0) == 0) {
      // Documentation only.
    } else {
      return InvalidArgumentError(path + "." + key +
                                  " is not supported by the emulator; use Effect, Action and Resource only");
    }
  }
  if (!statement.contains("Effect")) return InvalidArgumentError(path + ".Effect is missing (\"Allow\" or \"Deny\")");
  if (out.actions.empty()) return InvalidArgumentError(path + ".Action is missing (e.g. \"bedrock:InvokeModel\")");
  if (out.resources.empty()) return InvalidArgumentError(path + ".Resource is missing (e.g. \"*\")");
  return out;
}

}  // namespace

Result<Policy> ParsePolicy(const json& document, std::string_view path_view) {
  const std::string path(path_view);
  if (!document.is_object()) {
    return InvalidArgumentError(path + " must be a policy document {\"Version\": \"2012-10-17\", \"Statement\": [...]}");
  }
  Policy policy;
  for (const auto& [key, value] : document.items()) {
    if (key == "Version" || key == "Id" || key.rfind("_comment", 0) == 0) continue;
    if (key != "Statement") {
      return InvalidArgumentError(path + "." + key + " is not a policy member; use Version and Statement");
    }
    if (value.is_object()) {
      QUARRY_ASSIGN_OR_RETURN(PolicyStatement s, ParseStatement(value, path + ".Statement"));
      policy.statements.push_back(std::move(s));
    } else if (value.is_array()) {
      for (size_t i = 0; i < value.size(); ++i) {
        QUARRY_ASSIGN_OR_RETURN(PolicyStatement s,
                                ParseStatement(value[i], path + ".Statement[" + std::to_string(i) + "]"));
        policy.statements.push_back(std::move(s));
      }
    } else {
      return InvalidArgumentError(path + ".Statement must be a statement object or a list of them");
    }
  }
  if (!document.contains("Statement")) return InvalidArgumentError(path + ".Statement is missing");
  return policy;
}

json PolicyToJson(const Policy& policy) {
  json statements = json::array();
  for (const PolicyStatement& s : policy.statements) {
    statements.push_back({{"Effect", s.allow ? "Allow" : "Deny"}, {"Action", s.actions}, {"Resource", s.resources}});
  }
  return {{"Version", "2012-10-17"}, {"Statement", statements}};
}

bool WildcardMatch(std::string_view pattern, std::string_view text, bool ignore_case) {
  // Iterative glob matching with single-star backtracking: linear memory,
  // O(n*m) worst case, no recursion on user input.
  auto eq = [ignore_case](char a, char b) {
    if (ignore_case) {
      return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
    }
    return a == b;
  };
  size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || (pattern[p] != '*' && eq(pattern[p], text[t])))) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

Decision Evaluate(const std::vector<Policy>& policies, std::string_view action, std::string_view resource) {
  bool allowed = false;
  for (const Policy& policy : policies) {
    for (const PolicyStatement& s : policy.statements) {
      bool action_match = false;
      for (const std::string& a : s.actions) {
        if (WildcardMatch(a, action, /*ignore_case=*/true)) {
          action_match = true;
          break;
        }
      }
      if (!action_match) continue;
      bool resource_match = false;
      for (const std::string& r : s.resources) {
        if (WildcardMatch(r, resource, /*ignore_case=*/false)) {
          resource_match = true;
          break;
        }
      }
      if (!resource_match) continue;
      if (!s.allow) return Decision::kExplicitDeny;
      allowed = true;
    }
  }
  return allowed ? Decision::kAllow : Decision::kImplicitDeny;
}

std::string AccessDeniedMessage(std::string_view principal_arn, std::string_view action, std::string_view resource,
                                Decision decision) {
  std::string message = "User: ";
  message += principal_arn;
  message += " is not authorized to perform: ";
  message += action;
  message += " on resource: ";
  message += resource;
  if (decision == Decision::kExplicitDeny) {
    message += " with an explicit deny in an identity-based policy";
  } else {
    message += " because no identity-based policy allows the ";
    message += action;
    message += " action";
  }
  return message;
}

}  // namespace quarry::sim
