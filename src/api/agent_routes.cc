// Routes of App Intelligence — Bedrock Agents: agent connections under apps,
// and chat with them. Thin: parse, call the domain and the engine, shape JSON.
//
//   GET    /api/v1/apps/{app_id}/agents                    list an app's agents
//   POST   /api/v1/apps/{app_id}/agents                    connect (builder)
//   GET    /api/v1/agents/{agent_id}
//   PATCH  /api/v1/agents/{agent_id}                       (builder)
//   DELETE /api/v1/agents/{agent_id}                       (builder)
//   POST   /api/v1/agents/{agent_id}/verify                re-check the alias (builder)
//   POST   /api/v1/agents/{agent_id}/conversations         start a chat (one Bedrock session)
//   GET    /api/v1/agents/{agent_id}/conversations         the caller's chats (?all=true for admins)
//   GET    /api/v1/conversations/{conversation_id}
//   GET    /api/v1/conversations/{conversation_id}/messages   history, oldest first
//   POST   /api/v1/conversations/{conversation_id}/messages   SSE: chunk*, trace*, return_control?, done | error
//   POST   /api/v1/conversations/{conversation_id}/end     end the Bedrock session

#include <chrono>
#include <memory>
#include <mutex>

#include "api/api.h"
#include "api/provider_support.h"
#include "bedrock/agent_json.h"
#include "bedrock/client.h"
#include "bedrock/troubleshooting.h"
#include "common/encoding.h"
#include "domain/agent_connections.h"
#include "domain/conversations.h"
#include "domain/providers.h"
#include "engine/provider_clients.h"

namespace quarry::api {
namespace {

using nlohmann::json;
namespace ps = provider_support;

std::string AgentLocation(const std::string& id) { return "/api/v1/agents/" + id; }

bedrock::CallOptions CheckCallOptions() {
  bedrock::CallOptions o;
  o.attempt_timeout = std::chrono::milliseconds(10'000);
  o.overall_deadline = std::chrono::milliseconds(20'000);
  o.max_attempts = 2;
  return o;
}

// A troubleshooting entry for a problem found without a failed call (an ARN
// refused before sending, an alias without a version), from the same
// catalogue the client uses.
json Troubleshooting(std::string_view code, int http_status, std::string message, const std::string& region,
                     const std::string& alias_arn, std::string_view operation) {
  aws::AwsError error;
  error.code = std::string(code);
  error.http_status = http_status;
  error.message = std::move(message);
  error.service = "bedrock-agent";
  bedrock::CallContext context;
  context.operation = std::string(operation);
  context.region = region;
  context.agent_alias_arn = alias_arn;
  return bedrock::Troubleshoot(error, context).ToJson();
}

std::string TroubleshootingText(const json& entry) {
  std::string text;
  if (entry.contains("how_to_fix") && entry["how_to_fix"].is_array()) {
    for (const json& step : entry["how_to_fix"]) {
      if (step.is_string()) text += (text.empty() ? "" : " ") + step.get<std::string>();
    }
  }
  return text;
}

ApiResponse ArnRefusal(const domain::FieldError& e, const std::string& region, const std::string& text) {
  ApiError error = ps::FromFieldError(e);
  const bool mismatch = e.code == "agent_region_mismatch";
  // The seed's entry for the mistake: "Invalid ARN format / Resource not
  // found" (malformed, base ARN) or the region mismatch.
  error.details["troubleshooting"] =
      Troubleshooting(mismatch ? "ResourceNotFoundException" : "ValidationException", mismatch ? 404 : 400,
                      mismatch ? "agent alias not found in this region (refused by Quarry before any call)"
                               : "Invalid ARN format (refused by Quarry before any call)",
                      region, text,
                      "InvokeAgent");
  return ApiResponse::Error(error);
}

bool IsAccessDenied(const bedrock::BedrockError& e) {
  return e.status.code() == StatusCode::kPermissionDenied || e.aws.code.rfind("AccessDenied", 0) == 0 ||
         e.aws.http_status == 403;
}

// What GetAgentAlias says about an alias.
struct AliasCheck {
  std::optional<ApiResponse> refusal{};
  json verification = json::object();
  std::vector<json> warnings{};
  std::string alias_name{};
};

AliasCheck CheckAlias(ServerContext& context, const domain::Provider& provider, const aws::AgentAliasArn& arn,
                      const std::string& request_id) {
  AliasCheck check;
  const std::string arn_text = arn.ToString();
  const std::string now = domain::NowTimestamp(*context.clock);
  Result<std::shared_ptr<bedrock::BedrockClient>> client =
      context.provider_clients->ForProvider(provider.org_id, provider.id);
  if (!client.ok()) {
    check.refusal = ApiResponse::Error(ApiError::FromStatus(client.status()));
    return check;
  }
  MonotonicTime start = context.clock->MonotonicNow();
  bedrock::BedrockResult<bedrock::AgentAliasInfo> r = (*client)->GetAgentAlias(arn_text, CheckCallOptions());
  ps::NoteBedrockCall(context, "GetAgentAlias", request_id, provider.id, r.ok() ? nullptr : &r.error(),
                      ps::MillisSince(context, start));
  if (!r.ok()) {
    if (IsAccessDenied(r.error())) {
      check.verification = {{"status", "unverified"}, {"checked_at", now}, {"reason", "access_denied"}};
      const std::string who = provider.identity_arn.empty() ? "the provider's identity" : provider.identity_arn;
      check.warnings.push_back(
          {{"code", "alias_not_verified"},
           {"missing_permission", "bedrock:GetAgentAlias"},
           {"message", "Quarry could not check this alias: " + who + " is not allowed bedrock:GetAgentAlias on " +
                           arn_text +
                           ". The connection is saved without knowing whether the alias exists and points at a "
                           "prepared version. To let Quarry check it, allow bedrock:GetAgentAlias on "
                           "arn:" + arn.partition + ":bedrock:" + arn.region + ":" + arn.account + ":agent-alias/" +
                           arn.agent_id + "/* in the IAM policy, then POST /api/v1/agents/{agent_id}/verify. "
                           "Chatting needs bedrock:InvokeAgent."}});
      return check;
    }
    check.refusal = ApiResponse::Error(ApiError::FromBedrock(r.error()));
    return check;
  }
  const bedrock::AgentAliasInfo& info = r.value();
  if (!info.exists) {
    ApiError error;
    error.http_status = 400;
    error.code = "agent_alias_not_found";
    error.message = "the agent alias " + arn_text + " does not exist in account " + arn.account + ", region " +
                    arn.region + " (GetAgentAlias found no such alias)";
    json entry = Troubleshooting("ResourceNotFoundException", 404, "agent alias not found", arn.region, arn_text,
                                 "GetAgentAlias");
    error.hint = "Check the agent id and alias id for typos and copy the ARN directly from the console (the agent's "
                 "Aliases tab); confirm the region matches your provider. " +
                 TroubleshootingText(entry);
    error.details = {{"field", "agent_alias_arn"}, {"troubleshooting", entry}};
    check.refusal = ApiResponse::Error(error);
    return check;
  }
  if (!info.has_version || !info.prepared) {
    ApiError error;
    error.http_status = 409;
    error.code = "agent_alias_no_version";
    error.message = !info.has_version
                        ? "the alias " + info.alias_name + " (" + arn_text + ") has no associated version"
                        : "the alias " + info.alias_name + " (" + arn_text + ") points at version " +
                              info.agent_version + ", which is not prepared (status " + info.status + ")";
    json entry = Troubleshooting("ValidationException", 400, "alias has no associated version", arn.region, arn_text,
                                 "GetAgentAlias");
    error.hint = "In the Bedrock console, verify the alias has an associated version; create a new alias and select "
                 "\"Create a new version and associate it\"; ensure the agent is not in draft state.";
    error.details = {{"field", "agent_alias_arn"},
                     {"troubleshooting", entry},
                     {"alias", {{"name", info.alias_name}, {"status", info.status}, {"agent_version", info.agent_version}}}};
    check.refusal = ApiResponse::Error(error);
    return check;
  }
  check.alias_name = info.alias_name;
  check.verification = {{"status", "verified"},
                        {"checked_at", now},
                        {"alias_name", info.alias_name},
                        {"alias_status", info.status},
                        {"agent_version", info.agent_version}};
  return check;
}

// Everything needed before saving a connection: a working provider that can
// invoke agents, a valid alias ARN in its region, and the alias check.
struct Connectable {
  std::optional<ApiResponse> refusal{};
  domain::Provider provider{};
  aws::AgentAliasArn arn{};
  AliasCheck alias{};
};

Result<Connectable> PrepareConnection(ServerContext& context, const ApiRequest& request,
                                      const std::string& provider_id, const std::string& arn_text) {
  Connectable c;
  Result<domain::Provider> provider = ps::LoadProvider(context, request.who().org_id, provider_id);
  if (!provider.ok()) {
    if (provider.status().code() != StatusCode::kNotFound) return provider.status();
    domain::FieldError e;
    e.field = "provider_id";
    e.code = "provider_not_found";
    e.message = provider.status().message();
    c.refusal = ps::FieldErrorResponse(e);
    return c;
  }
  c.provider = std::move(provider).value();
  if (auto e = ps::RequireWorking(c.provider, "agent connections")) {
    c.refusal = ApiResponse::Error(*e);
    return c;
  }
  if (c.provider.config.kind == domain::CredentialKind::kApiKey) {
    ApiError error;
    error.http_status = 409;
    error.code = "provider_cannot_invoke_agents";
    error.message = "provider '" + c.provider.name +
                    "' uses a Bedrock API key, and InvokeAgent accepts only AWS Signature Version 4";
    error.hint = "Use a provider with access keys or a role (credentials kind access_key, session or assume_role) "
                 "for agents; the API-key provider can still serve AI Services.";
    c.refusal = ApiResponse::Error(error);
    return c;
  }
  if (auto e = domain::CheckAgentAliasArn(arn_text, c.provider.config.region, c.provider.name, &c.arn)) {
    c.refusal = ArnRefusal(*e, c.provider.config.region, arn_text);
    return c;
  }
  c.alias = CheckAlias(context, c.provider, c.arn, request.request_id);
  if (c.alias.refusal) c.refusal = std::move(c.alias.refusal);
  return c;
}

Result<ApiResponse> ListAgentsRoute(ServerContext& context, ApiRequest& request) {
  QUARRY_ASSIGN_OR_RETURN(domain::PageRequest page, ps::PageFrom(request));
  domain::Page<domain::AgentConnection> agents;
  QUARRY_RETURN_IF_ERROR(context.db->Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(std::string app_id,
                            domain::ResolveAppId(tx, request.who().org_id, request.path_params.at("app_id")));
    QUARRY_ASSIGN_OR_RETURN(agents, domain::ListAgentConnections(tx, request.who().org_id, app_id, page));
    return Status::Ok();
  }));
  return ApiResponse::Json(ps::PageJson(agents, domain::AgentConnectionToJson));
}

Result<ApiResponse> ConnectAgentRoute(ServerContext& context, ApiRequest& request) {
  QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
  domain::AgentConnectionInput input;
  if (auto e = domain::ParseAgentConnectionInput(body, /*create=*/true, &input)) return ps::FieldErrorResponse(*e);
  std::string app_id;
  QUARRY_RETURN_IF_ERROR(context.db->Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(app_id, domain::ResolveAppId(tx, request.who().org_id, request.path_params.at("app_id")));
    return Status::Ok();
  }));
  QUARRY_ASSIGN_OR_RETURN(Connectable c, PrepareConnection(context, request, *input.provider_id, *input.agent_alias_arn));
  if (c.refusal) return std::move(*c.refusal);

  domain::AgentConnection agent;
  agent.app_id = app_id;
  agent.provider_id = c.provider.id;
  agent.name = input.name.value_or(c.alias.alias_name.empty() ? "Bedrock agent " + c.arn.agent_id
                                                              : c.alias.alias_name + " (" + c.arn.agent_id + ")");
  agent.description = input.description.value_or("");
  agent.agent_alias_arn = c.arn.ToString();
  agent.agent_id = c.arn.agent_id;
  agent.alias_id = c.arn.alias_id;
  agent.region = c.arn.region;
  agent.account = c.arn.account;
  agent.verification = c.alias.verification;
  agent.warnings = c.alias.warnings;
  QUARRY_RETURN_IF_ERROR(context.db->Write([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(agent,
                            domain::CreateAgentConnection(tx, *context.clock, request.who(), agent, request.request_id));
    return Status::Ok();
  }));
  return ApiResponse::Created(domain::AgentConnectionToJson(agent), AgentLocation(agent.id), agent.version);
}

Result<domain::AgentConnection> LoadAgent(ServerContext& context, const ApiRequest& request) {
  domain::AgentConnection agent;
  QUARRY_RETURN_IF_ERROR(context.db->Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(agent,
                            domain::GetAgentConnection(tx, request.who().org_id, request.path_params.at("agent_id")));
    return Status::Ok();
  }));
  return agent;
}

Result<ApiResponse> GetAgentRoute(ServerContext& context, ApiRequest& request) {
  QUARRY_ASSIGN_OR_RETURN(domain::AgentConnection agent, LoadAgent(context, request));
  return ApiResponse::Entity(domain::AgentConnectionToJson(agent), agent.version);
}

Result<ApiResponse> SaveAgentUpdate(ServerContext& context, const ApiRequest& request,
                                    const domain::AgentConnection& before, domain::AgentConnection updated) {
  QUARRY_RETURN_IF_ERROR(context.db->Write([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(updated, domain::UpdateAgentConnection(tx, *context.clock, request.who(), before, updated,
                                                                   request.request_id));
    return Status::Ok();
  }));
  return ApiResponse::Entity(domain::AgentConnectionToJson(updated), updated.version);
}

Result<ApiResponse> PatchAgentRoute(ServerContext& context, ApiRequest& request) {
  QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
  domain::AgentConnectionInput input;
  if (auto e = domain::ParseAgentConnectionInput(body, /*create=*/false, &input)) return ps::FieldErrorResponse(*e);
  QUARRY_ASSIGN_OR_RETURN(domain::AgentConnection before, LoadAgent(context, request));
  QUARRY_RETURN_IF_ERROR(CheckIfMatch(request, before.version));
  domain::AgentConnection updated = before;
  if (input.name) updated.name = *input.name;
  if (input.description) updated.description = *input.description;
  const bool relink = (input.provider_id && *input.provider_id != before.provider_id) ||
                      (input.agent_alias_arn && *input.agent_alias_arn != before.agent_alias_arn);
  if (relink) {
    QUARRY_ASSIGN_OR_RETURN(Connectable c,
                            PrepareConnection(context, request, input.provider_id.value_or(before.provider_id),
                                              input.agent_alias_arn.value_or(before.agent_alias_arn)));
    if (c.refusal) return std::move(*c.refusal);
    updated.provider_id = c.provider.id;
    updated.agent_alias_arn = c.arn.ToString();
    updated.agent_id = c.arn.agent_id;
    updated.alias_id = c.arn.alias_id;
    updated.region = c.arn.region;
    updated.account = c.arn.account;
    updated.verification = c.alias.verification;
    updated.warnings = c.alias.warnings;
  }
  return SaveAgentUpdate(context, request, before, std::move(updated));
}

Result<ApiResponse> VerifyAgentRoute(ServerContext& context, ApiRequest& request) {
  QUARRY_ASSIGN_OR_RETURN(domain::AgentConnection before, LoadAgent(context, request));
  QUARRY_ASSIGN_OR_RETURN(Connectable c,
                          PrepareConnection(context, request, before.provider_id, before.agent_alias_arn));
  if (c.refusal) return std::move(*c.refusal);
  domain::AgentConnection updated = before;
  updated.verification = c.alias.verification;
  updated.warnings = c.alias.warnings;
  return SaveAgentUpdate(context, request, before, std::move(updated));
}

Result<ApiResponse> DeleteAgentRoute(ServerContext& context, ApiRequest& request) {
  QUARRY_RETURN_IF_ERROR(context.db->Write([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(domain::AgentConnection agent,
                            domain::GetAgentConnection(tx, request.who().org_id, request.path_params.at("agent_id")));
    QUARRY_RETURN_IF_ERROR(CheckIfMatch(request, agent.version));
    return domain::DeleteAgentConnection(tx, *context.clock, request.who(), agent, request.request_id);
  }));
  return ApiResponse::NoContent();
}

// ---------------------------------------------------------------------------
// Conversations
// ---------------------------------------------------------------------------

Result<ApiResponse> StartConversationRoute(ServerContext& context, ApiRequest& request) {
  json body = json::object();
  if (!TrimAsciiWhitespace(request.body).empty()) {
    QUARRY_ASSIGN_OR_RETURN(body, request.JsonBody());
  }
  if (auto e = domain::CheckKnownMembers(body, "", {"title"})) return ps::FieldErrorResponse(*e);
  std::string title;
  if (auto it = body.find("title"); it != body.end() && !it->is_null()) {
    if (!it->is_string() || it->get<std::string>().size() > 200) {
      return InvalidArgumentError("title must be a string of at most 200 characters");
    }
    title = it->get<std::string>();
  }
  QUARRY_ASSIGN_OR_RETURN(domain::AgentConnection agent, LoadAgent(context, request));
  domain::Conversation conversation;
  QUARRY_RETURN_IF_ERROR(context.db->Write([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(conversation,
                            domain::CreateConversation(tx, *context.clock, request.who(), agent.id, title));
    return Status::Ok();
  }));
  return ApiResponse::Created(domain::ConversationToJson(conversation),
                              "/api/v1/conversations/" + conversation.id, 1);
}

Result<ApiResponse> ListConversationsRoute(ServerContext& context, ApiRequest& request) {
  QUARRY_ASSIGN_OR_RETURN(domain::PageRequest page, ps::PageFrom(request));
  const std::string all = request.QueryParam("all", "false");
  if (all != "true" && all != "false") return InvalidArgumentError("all must be true or false");
  if (all == "true" && !request.who().IsAdmin()) {
    return PermissionDeniedError("only organization admins may list every user's conversations; leave out all=true");
  }
  QUARRY_ASSIGN_OR_RETURN(domain::AgentConnection agent, LoadAgent(context, request));
  domain::Page<domain::Conversation> conversations;
  QUARRY_RETURN_IF_ERROR(context.db->Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(conversations,
                            domain::ListConversations(tx, *context.clock, request.who().org_id, agent.id,
                                                      all == "true" ? "" : request.who().user_id, page));
    return Status::Ok();
  }));
  return ApiResponse::Json(ps::PageJson(conversations, domain::ConversationToJson));
}

// The conversation, readable by its owner and by admins; `write` = owner only.
Result<domain::Conversation> LoadConversation(ServerContext& context, const ApiRequest& request, bool write) {
  domain::Conversation conversation;
  QUARRY_RETURN_IF_ERROR(context.db->Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(conversation, domain::GetConversation(tx, *context.clock, request.who().org_id,
                                                                  request.path_params.at("conversation_id")));
    return Status::Ok();
  }));
  const bool owner = conversation.user_id == request.who().user_id;
  if (!owner && (write || !request.who().IsAdmin())) {
    // Not found rather than forbidden: other people's chats are not disclosed.
    return NotFoundError("conversation " + conversation.id +
                         " not found; start one with POST /api/v1/agents/{agent_id}/conversations");
  }
  return conversation;
}

Result<ApiResponse> GetConversationRoute(ServerContext& context, ApiRequest& request) {
  QUARRY_ASSIGN_OR_RETURN(domain::Conversation conversation, LoadConversation(context, request, false));
  return ApiResponse::Json(domain::ConversationToJson(conversation));
}

Result<ApiResponse> ListMessagesRoute(ServerContext& context, ApiRequest& request) {
  QUARRY_ASSIGN_OR_RETURN(domain::PageRequest page, ps::PageFrom(request));
  QUARRY_ASSIGN_OR_RETURN(domain::Conversation conversation, LoadConversation(context, request, false));
  domain::Page<domain::ConversationMessage> messages;
  QUARRY_RETURN_IF_ERROR(context.db->Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(messages, domain::ListMessages(tx, conversation.org_id, conversation.id, page));
    return Status::Ok();
  }));
  return ApiResponse::Json(ps::PageJson(messages, domain::MessageToJson));
}

ApiError ConversationStateError(const domain::Conversation& conversation, const Status& status) {
  ApiError error = ApiError::FromStatus(status);
  if (status.code() == StatusCode::kFailedPrecondition) {
    error.code = status.message().find("has ended") != std::string::npos ? "conversation_ended" : "conversation_busy";
    error.details = {{"conversation_id", conversation.id}};
  }
  return error;
}

struct TurnInput {
  std::string text{};
  bool end_session = false;
  json return_control = nullptr;  // as stored on the user's message
  std::string invocation_id{};
  std::vector<bedrock::ReturnControlResult> results{};
};

std::optional<domain::FieldError> ParseTurn(const json& body, TurnInput* out) {
  auto err = [](std::string field, std::string message, std::string hint = {}) {
    domain::FieldError e;
    e.field = std::move(field);
    e.message = std::move(message);
    e.hint = std::move(hint);
    return e;
  };
  if (auto e = domain::CheckKnownMembers(body, "", {"text", "end_session", "return_control"})) return e;
  if (auto it = body.find("text"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) return err("text", "text must be a string");
    out->text = it->get<std::string>();
  }
  if (out->text.size() > domain::kMaxMessageLength) {
    return err("text", "text is longer than 25,000 characters (the InvokeAgent limit)", "Shorten the message.");
  }
  if (auto it = body.find("end_session"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean()) return err("end_session", "end_session must be true or false");
    out->end_session = it->get<bool>();
  }
  if (auto it = body.find("return_control"); it != body.end() && !it->is_null()) {
    const json& rc = *it;
    if (auto e = domain::CheckKnownMembers(rc, "return_control", {"invocation_id", "results"})) return e;
    if (!rc.contains("invocation_id") || !rc["invocation_id"].is_string() ||
        rc["invocation_id"].get<std::string>().empty()) {
      return err("return_control.invocation_id", "return_control.invocation_id is required",
                 "Copy invocation_id from the return_control event.");
    }
    out->invocation_id = rc["invocation_id"].get<std::string>();
    if (!rc.contains("results") || !rc["results"].is_array() || rc["results"].empty() || rc["results"].size() > 50) {
      return err("return_control.results", "return_control.results must be a non-empty array (at most 50)",
                 "Send one {\"action_group\",\"function\",\"response_body\"} per invocation of the event.");
    }
    for (size_t i = 0; i < rc["results"].size(); ++i) {
      const json& r = rc["results"][i];
      const std::string where = "return_control.results[" + std::to_string(i) + "]";
      if (auto e = domain::CheckKnownMembers(r, where,
                                             {"action_group", "function", "api_path", "http_method",
                                              "http_status_code", "response_body", "response_state"})) {
        return e;
      }
      bedrock::ReturnControlResult result;
      for (auto [key, slot] : {std::pair{"action_group", &result.action_group}, std::pair{"function", &result.function},
                               std::pair{"api_path", &result.api_path}, std::pair{"http_method", &result.http_method},
                               std::pair{"response_body", &result.response_body},
                               std::pair{"response_state", &result.response_state}}) {
        auto v = r.find(key);
        if (v == r.end() || v->is_null()) continue;
        if (!v->is_string()) return err(where + "." + key, where + "." + key + " must be a string");
        *slot = v->get<std::string>();
      }
      // A function's result names its function; an API operation's result
      // its api_path and http_method (as in the return_control event).
      const bool api = !result.api_path.empty() || !result.http_method.empty();
      if (result.action_group.empty() || (api ? result.api_path.empty() || result.http_method.empty()
                                              : result.function.empty())) {
        return err(where, where + " needs action_group and function, or action_group, api_path and http_method",
                   "Copy them from the invocation of the return_control event you answer.");
      }
      if (api) {
        result.content_type = "application/json";
        result.http_status_code = 200;
        if (auto v = r.find("http_status_code"); v != r.end() && !v->is_null()) {
          if (!v->is_number_integer() || v->get<int64_t>() < 100 || v->get<int64_t>() > 599) {
            return err(where + ".http_status_code", where + ".http_status_code must be an HTTP status (100-599)");
          }
          result.http_status_code = v->get<int>();
        }
      } else if (r.contains("http_status_code")) {
        return err(where + ".http_status_code", where + ".http_status_code applies only to API operations");
      }
      if (!result.response_state.empty() && result.response_state != "FAILURE" && result.response_state != "REPROMPT") {
        return err(where + ".response_state", "response_state must be FAILURE or REPROMPT (or absent)");
      }
      out->results.push_back(std::move(result));
    }
    out->return_control = rc;
  }
  if (out->text.empty() && out->results.empty()) {
    return err("text", "text is required", "Send {\"text\": \"your message\"}.");
  }
  return std::nullopt;
}

json CitationsJson(const std::vector<bedrock::Citation>& citations) {
  json out = json::array();
  for (const bedrock::Citation& c : citations) {
    json refs = json::array();
    for (const bedrock::CitationReference& r : c.references) refs.push_back({{"text", r.text}, {"uri", r.uri}});
    out.push_back({{"generated_text", c.generated_text}, {"references", refs}});
  }
  return out;
}

// Shared by a turn's callbacks (which run on client threads, one at a time).
struct Turn {
  std::shared_ptr<SseStream> stream;
  std::shared_ptr<engine::ProviderClients> clients;
  std::shared_ptr<store::Database> db;
  std::shared_ptr<const Clock> clock;
  std::shared_ptr<MetricsRegistry> metrics;
  domain::Conversation conversation;
  std::string request_id;
  std::string provider_id;
  bool trace = false;
  bool end_session = false;
  MonotonicTime start{};
  int64_t trace_count = 0;
  std::mutex mutex;
  bedrock::CallHandle handle;
  bool cancel = false;

  void Cancel() {
    std::lock_guard<std::mutex> lock(mutex);
    cancel = true;
    handle.Cancel();
  }
};

void FinishTurnWork(const std::shared_ptr<Turn>& turn, const bedrock::BedrockResult<bedrock::AgentResult>& r,
                    int64_t ms) {
  {
    // Also here: the handle may have been stored after the completion ran.
    std::lock_guard<std::mutex> lock(turn->mutex);
    turn->handle = bedrock::CallHandle();
  }
  domain::ConversationMessage reply;
  reply.latency_ms = ms;
  reply.request_id = turn->request_id;
  reply.trace_count = turn->trace_count;
  std::optional<ApiError> failure;
  if (r.ok()) {
    reply.text = r.value().completion;
    reply.citations = CitationsJson(r.value().citations);
    if (r.value().return_control) reply.return_control = bedrock::ReturnControlToJson(*r.value().return_control);
    reply.bedrock_request_id = r.value().request_id;
  } else {
    failure = ApiError::FromBedrock(r.error());
    reply.error = failure->ToJson()["error"];
    reply.bedrock_request_id = r.error().aws.request_id;
  }
  Result<domain::ConversationMessage> saved = reply;
  Status written = turn->db->Write([&](store::Tx& tx) -> Status {
    saved = domain::FinishTurn(tx, *turn->clock, turn->conversation, reply);
    QUARRY_RETURN_IF_ERROR(saved.status());
    if (r.ok() && turn->end_session) {
      QUARRY_RETURN_IF_ERROR(domain::EndConversation(tx, *turn->clock, turn->conversation).status());
    }
    return Status::Ok();
  });
  if (failure) {
    turn->stream->Fail(*failure);
    return;
  }
  if (!written.ok()) {
    turn->stream->Fail(ApiError::FromStatus(written.WithContext("the reply arrived but could not be saved")));
    return;
  }
  if (!reply.return_control.is_null()) turn->stream->Send("return_control", reply.return_control);
  json done = domain::MessageToJson(saved.value());
  done["session_id"] = turn->conversation.session_id;
  done["conversation_id"] = turn->conversation.id;
  done["conversation_status"] = turn->end_session ? "ended" : "active";
  turn->stream->Send("done", done);
  turn->stream->Close();
}

Status PostMessageRoute(ServerContext& context, ApiRequest& request, std::shared_ptr<SseStream> stream) {
  QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
  TurnInput input;
  if (auto e = ParseTurn(body, &input)) {
    stream->Fail(ps::FromFieldError(*e));
    return Status::Ok();
  }
  const std::string trace = request.QueryParam("trace", "false");
  if (trace != "true" && trace != "false") return InvalidArgumentError("trace must be true or false");
  // Off by default: streaming the final response needs the agent's role to
  // be allowed bedrock:InvokeModelWithResponseStream as well.
  const std::string stream_final = request.QueryParam("stream", "false");
  if (stream_final != "true" && stream_final != "false") return InvalidArgumentError("stream must be true or false");
  QUARRY_ASSIGN_OR_RETURN(domain::Conversation conversation, LoadConversation(context, request, true));
  domain::AgentConnection agent;
  QUARRY_RETURN_IF_ERROR(context.db->Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(agent, domain::GetAgentConnection(tx, conversation.org_id, conversation.agent_connection_id));
    return Status::Ok();
  }));
  QUARRY_ASSIGN_OR_RETURN(std::shared_ptr<bedrock::BedrockClient> client,
                          context.provider_clients->ForProvider(agent.org_id, agent.provider_id));
  Status begun = context.db->Write([&](store::Tx& tx) -> Status {
    return domain::BeginTurn(tx, *context.clock, conversation, input.text, input.return_control, request.request_id)
        .status();
  });
  if (!begun.ok()) {
    stream->Fail(ConversationStateError(conversation, begun));
    return Status::Ok();
  }

  auto turn = std::make_shared<Turn>();
  turn->stream = stream;
  turn->clients = context.provider_clients;
  turn->db = context.db;
  turn->clock = context.clock;
  turn->metrics = context.metrics;
  turn->conversation = conversation;
  turn->request_id = request.request_id;
  turn->provider_id = agent.provider_id;
  turn->trace = trace == "true";
  turn->end_session = input.end_session;
  turn->start = context.clock->MonotonicNow();

  bedrock::InvokeAgentRequest invoke;
  invoke.agent_alias_arn = agent.agent_alias_arn;
  invoke.session_id = conversation.session_id;
  invoke.input_text = input.text;
  invoke.enable_trace = turn->trace;
  invoke.stream_final_response = stream_final == "true";
  invoke.end_session = input.end_session;
  invoke.return_control_invocation_id = input.invocation_id;
  invoke.return_control_results = input.results;
  invoke.options.overall_deadline = std::chrono::milliseconds(300'000);

  bedrock::AgentCallbacks callbacks;
  callbacks.on_chunk = [turn](const bedrock::AgentChunk& chunk) {
    json data = {{"text", chunk.text}};
    if (!chunk.citations.empty()) data["citations"] = CitationsJson(chunk.citations);
    if (!turn->stream->Send("chunk", data)) turn->Cancel();
  };
  callbacks.on_trace = [turn](const json& trace_event) {
    ++turn->trace_count;
    if (turn->trace && !turn->stream->Send("trace", trace_event)) turn->Cancel();
  };
  // `client` rides along (a non-owning share, see ProviderClients) so the
  // provider's client stays cached for the call.
  auto done = [turn, client](bedrock::BedrockResult<bedrock::AgentResult> r) {
    {
      std::lock_guard<std::mutex> lock(turn->mutex);
      turn->handle = bedrock::CallHandle();
    }
    const int64_t ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(turn->clock->MonotonicNow() - turn->start).count();
    engine::RecordBedrockCall(turn->metrics.get(), "InvokeAgent", r.ok() ? nullptr : &r.error(),
                              static_cast<double>(ms) / 1000.0);
    ps::LogBedrockCall("InvokeAgent", turn->request_id, turn->provider_id, r.ok() ? nullptr : &r.error(), ms);
    // The reply is saved before `done` is sent, so history is complete when
    // the client sees it; the write blocks, so it runs off the client thread.
    auto work = [turn, r = std::move(r), ms]() { FinishTurnWork(turn, r, ms); };
    if (!turn->clients->Defer(work)) work();
  };
  bedrock::CallHandle handle = client->InvokeAgent(invoke, std::move(callbacks), std::move(done));
  std::lock_guard<std::mutex> lock(turn->mutex);
  if (!handle.done()) turn->handle = handle;
  if (turn->cancel) handle.Cancel();
  return Status::Ok();
}

Result<ApiResponse> EndConversationRoute(ServerContext& context, ApiRequest& request) {
  QUARRY_ASSIGN_OR_RETURN(domain::Conversation conversation, LoadConversation(context, request, true));
  json out = json::object();
  if (conversation.status == "active") {
    domain::AgentConnection agent;
    QUARRY_RETURN_IF_ERROR(context.db->Read([&](store::Tx& tx) -> Status {
      QUARRY_ASSIGN_OR_RETURN(agent,
                              domain::GetAgentConnection(tx, conversation.org_id, conversation.agent_connection_id));
      return Status::Ok();
    }));
    // Bedrock ends a session on a turn with endSession set, and a turn needs
    // input; the agent's answer to this closing line is not kept.
    bool ended_remotely = false;
    json warning = nullptr;
    Result<std::shared_ptr<bedrock::BedrockClient>> client =
        context.provider_clients->ForProvider(agent.org_id, agent.provider_id);
    if (client.ok()) {
      bedrock::InvokeAgentRequest invoke;
      invoke.agent_alias_arn = agent.agent_alias_arn;
      invoke.session_id = conversation.session_id;
      invoke.input_text = "End of conversation.";
      invoke.end_session = true;
      invoke.options = CheckCallOptions();
      MonotonicTime start = context.clock->MonotonicNow();
      bedrock::BedrockResult<bedrock::AgentResult> r = (*client)->InvokeAgent(invoke);
      ps::NoteBedrockCall(context, "InvokeAgent", request.request_id, agent.provider_id, r.ok() ? nullptr : &r.error(),
                          ps::MillisSince(context, start));
      ended_remotely = r.ok();
      if (!r.ok()) {
        warning = {{"message", "The conversation is ended in Quarry, but Bedrock did not confirm ending the session "
                               "(it expires by itself after the agent's idle session timeout): " +
                                   r.error().ToString()}};
      }
    } else {
      warning = {{"message", client.status().message()}};
    }
    QUARRY_RETURN_IF_ERROR(context.db->Write([&](store::Tx& tx) -> Status {
      QUARRY_ASSIGN_OR_RETURN(conversation, domain::EndConversation(tx, *context.clock, conversation));
      return Status::Ok();
    }));
    out = domain::ConversationToJson(conversation);
    out["bedrock_session_ended"] = ended_remotely;
    out["warning"] = warning;
    return ApiResponse::Json(out);
  }
  out = domain::ConversationToJson(conversation);
  out["bedrock_session_ended"] = false;
  out["warning"] = nullptr;
  return ApiResponse::Json(out);
}

}  // namespace

void RegisterAgentRoutes(Router& router, ServerContext& context) {
  ServerContext* c = &context;
  auto h = [c](Result<ApiResponse> (*fn)(ServerContext&, ApiRequest&)) {
    return [c, fn](ApiRequest& request) { return fn(*c, request); };
  };
  router.Add("GET", "/api/v1/apps/{app_id}/agents", Access::kAuthenticated, h(ListAgentsRoute));
  router.Add("POST", "/api/v1/apps/{app_id}/agents", Access::kBuilder, h(ConnectAgentRoute));
  router.Add("GET", "/api/v1/agents/{agent_id}", Access::kAuthenticated, h(GetAgentRoute));
  router.Add("PATCH", "/api/v1/agents/{agent_id}", Access::kBuilder, h(PatchAgentRoute));
  router.Add("DELETE", "/api/v1/agents/{agent_id}", Access::kBuilder, h(DeleteAgentRoute));
  router.Add("POST", "/api/v1/agents/{agent_id}/verify", Access::kBuilder, h(VerifyAgentRoute));
  router.Add("POST", "/api/v1/agents/{agent_id}/conversations", Access::kAuthenticated, h(StartConversationRoute));
  router.Add("GET", "/api/v1/agents/{agent_id}/conversations", Access::kAuthenticated, h(ListConversationsRoute));
  router.Add("GET", "/api/v1/conversations/{conversation_id}", Access::kAuthenticated, h(GetConversationRoute));
  router.Add("GET", "/api/v1/conversations/{conversation_id}/messages", Access::kAuthenticated, h(ListMessagesRoute));
  router.AddStream("POST", "/api/v1/conversations/{conversation_id}/messages", Access::kAuthenticated,
                   [c](ApiRequest& request, std::shared_ptr<SseStream> stream) {
                     return PostMessageRoute(*c, request, std::move(stream));
                   });
  router.Add("POST", "/api/v1/conversations/{conversation_id}/end", Access::kAuthenticated,
             h(EndConversationRoute));
}

}  // namespace quarry::api
