#include "bedrock/agent_json.h"

namespace quarry::bedrock {
namespace {

using nlohmann::json;

json ParametersJson(const std::vector<InvocationParameter>& parameters) {
  json out = json::array();
  for (const InvocationParameter& p : parameters) out.push_back({{"name", p.name}, {"type", p.type}, {"value", p.value}});
  return out;
}

// The fields both invocation kinds carry only sometimes.
template <typename Invocation>
void AddOptionalFields(const Invocation& invocation, json& out) {
  if (!invocation.action_invocation_type.empty()) out["action_invocation_type"] = invocation.action_invocation_type;
  if (!invocation.agent_id.empty()) out["agent_id"] = invocation.agent_id;
  if (!invocation.collaborator_name.empty()) out["collaborator_name"] = invocation.collaborator_name;
}

}  // namespace

json ReturnControlToJson(const ReturnControl& return_control) {
  json invocations = json::array();
  for (const FunctionInvocation& f : return_control.invocations) {
    json entry = {{"action_group", f.action_group}, {"function", f.function}, {"parameters", ParametersJson(f.parameters)}};
    AddOptionalFields(f, entry);
    invocations.push_back(std::move(entry));
  }
  for (const ApiInvocation& a : return_control.api_invocations) {
    json body = json::object();
    for (const auto& [media_type, properties] : a.request_body) body[media_type] = ParametersJson(properties);
    json entry = {{"action_group", a.action_group},
                  {"http_method", a.http_method},
                  {"api_path", a.api_path},
                  {"parameters", ParametersJson(a.parameters)},
                  {"request_body", std::move(body)}};
    AddOptionalFields(a, entry);
    invocations.push_back(std::move(entry));
  }
  return {{"invocation_id", return_control.invocation_id}, {"invocations", std::move(invocations)}};
}

}  // namespace quarry::bedrock
