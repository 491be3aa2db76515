#include "domain/agent_connections.h"

#include "aws/region.h"
#include "common/encoding.h"
#include "common/ids.h"
#include "domain/audit.h"

namespace quarry::domain {
namespace {

using nlohmann::json;

constexpr size_t kMaxNameLength = 100;
constexpr size_t kMaxDescriptionLength = 2000;

constexpr std::string_view kAgentColumns =
    "id, org_id, app_id, provider_id, name, description, agent_alias_arn, agent_id, alias_id, region, account, "
    "verification, warnings, version, created_by, created_at, updated_at";

constexpr std::string_view kInsertAgent =
    "INSERT INTO agent_connections (id, org_id, app_id, provider_id, name, name_key, description, agent_alias_arn, "
    "agent_id, alias_id, region, account, verification, warnings, version, created_by, created_at, updated_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 1, $15, $16, $16)";

constexpr std::string_view kUpdateAgent =
    "UPDATE agent_connections SET provider_id = $3, name = $4, name_key = $5, description = $6, "
    "agent_alias_arn = $7, agent_id = $8, alias_id = $9, region = $10, account = $11, verification = $12, "
    "warnings = $13, version = version + 1, updated_at = $14 WHERE org_id = $1 AND id = $2 AND version = $15";

constexpr std::string_view kDeleteAgent = "DELETE FROM agent_connections WHERE org_id = $1 AND id = $2";

constexpr std::string_view kSqliteAppsTable = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'apps'";
constexpr std::string_view kPostgresAppsTable =
    "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'apps'";
constexpr std::string_view kFindApp =
    "SELECT id FROM apps WHERE org_id = $2 AND (id = $1 OR namespace = $1) ORDER BY id = $1 DESC LIMIT 1";

FieldError Err(std::string field, std::string message, std::string hint = {}, std::string code = "validation_failed") {
  FieldError e;
  e.field = std::move(field);
  e.message = std::move(message);
  e.hint = std::move(hint);
  e.code = std::move(code);
  return e;
}

std::string Quote(std::string_view text) { return "'" + aws::internal::QuoteForMessage(text, 160) + "'"; }

AgentConnection AgentFromRow(const store::Row& r) {
  AgentConnection a;
  a.id = r.Text(0);
  a.org_id = r.Text(1);
  a.app_id = r.Text(2);
  a.provider_id = r.Text(3);
  a.name = r.Text(4);
  a.description = r.Text(5);
  a.agent_alias_arn = r.Text(6);
  a.agent_id = r.Text(7);
  a.alias_id = r.Text(8);
  a.region = r.Text(9);
  a.account = r.Text(10);
  a.verification = json::parse(r.Text(11), nullptr, false);
  if (!a.verification.is_object()) a.verification = json::object();
  json warnings = json::parse(r.Text(12), nullptr, false);
  if (warnings.is_array()) {
    for (const json& w : warnings) a.warnings.push_back(w);
  }
  a.version = r.Int(13);
  a.created_by = r.Text(14);
  a.created_at = r.Text(15);
  a.updated_at = r.Text(16);
  return a;
}

json WarningsJson(const std::vector<json>& warnings) {
  json a = json::array();
  for (const json& w : warnings) a.push_back(w);
  return a;
}

Status Taken(const AgentConnection& a, const Status& status) {
  // Two UNIQUE constraints: say which one, by looking at the message the
  // store gives (it names the columns on both engines).
  const std::string& m = status.message();
  if (m.find("agent_alias_arn") != std::string::npos) {
    return Status(StatusCode::kAlreadyExists, "the agent alias " + a.agent_alias_arn +
                                                  " is already connected to this app; use the existing connection");
  }
  return Status(StatusCode::kAlreadyExists,
                "an agent connection named " + Quote(a.name) + " already exists in this app; choose another name");
}

}  // namespace

std::optional<FieldError> CheckAgentAliasArn(const std::string& text, const std::string& provider_region,
                                             const std::string& provider_name, aws::AgentAliasArn* out) {
  const std::string seed_fix =
      "Use the Agent Alias ARN, not the base agent ARN: in the Bedrock console open the agent, go to Aliases, "
      "choose the alias and copy its ARN. The format is " +
      std::string(kAgentAliasArnFormat) + ", e.g. arn:aws:bedrock:us-east-2:123456789012:agent-alias/ABCD1234EF/GHIJ5678KL.";
  if (text.empty()) {
    return Err("agent_alias_arn", "agent_alias_arn is empty", seed_fix, "invalid_agent_alias_arn");
  }
  Result<aws::AgentAliasArn> parsed = aws::ParseAgentAliasArn(text);
  if (!parsed.ok()) {
    Result<aws::ArnDescription> described = aws::DescribeArn(text);
    if (described.ok() && described->kind == aws::ArnKind::kAgent) {
      return Err("agent_alias_arn", parsed.status().message(), seed_fix, "base_agent_arn");
    }
    return Err("agent_alias_arn", parsed.status().message(),
               "Check for typos and a wrong region; copy the ARN directly from the console. " + seed_fix,
               "invalid_agent_alias_arn");
  }
  const aws::AgentAliasArn& arn = parsed.value();
  Result<aws::Region> region = aws::ParseRegion(provider_region);
  if (arn.region != provider_region || (region.ok() && arn.partition != region->partition().name)) {
    return Err("agent_alias_arn",
               "the agent alias is in " + arn.region + " but provider " + Quote(provider_name) +
                   " is configured for " + provider_region,
               "The provider region must match the region where the agent is deployed: choose (or create) a "
               "provider for " +
                   arn.region + ", or connect an alias of an agent deployed in " + provider_region +
                   ". Check the region in the Agent Alias ARN.",
               "agent_region_mismatch");
  }
  *out = arn;
  return std::nullopt;
}

json AgentConnectionToJson(const AgentConnection& a) {
  return {{"id", a.id},
          {"app_id", a.app_id},
          {"provider_id", a.provider_id},
          {"source", "bedrock"},
          {"name", a.name},
          {"description", a.description},
          {"agent_alias_arn", a.agent_alias_arn},
          {"agent_id", a.agent_id},
          {"alias_id", a.alias_id},
          {"region", a.region},
          {"account", a.account},
          {"verification", a.verification},
          {"warnings", WarningsJson(a.warnings)},
          {"version", a.version},
          {"created_by", a.created_by},
          {"created_at", a.created_at},
          {"updated_at", a.updated_at}};
}

std::optional<FieldError> ParseAgentConnectionInput(const json& body, bool create, AgentConnectionInput* out) {
  *out = AgentConnectionInput{};
  if (auto e = CheckKnownMembers(body, "", {"provider_id", "agent_alias_arn", "name", "description", "source"})) {
    return e;
  }
  if (auto it = body.find("source"); it != body.end() && !it->is_null()) {
    if (!it->is_string() || it->get<std::string>() != "bedrock") {
      return Err("source", "source must be \"bedrock\"", "Amazon Bedrock Agents are the only agent source.");
    }
  }
  for (auto [key, slot] : {std::pair{"provider_id", &out->provider_id}, std::pair{"agent_alias_arn", &out->agent_alias_arn},
                           std::pair{"name", &out->name}, std::pair{"description", &out->description}}) {
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) continue;
    if (!it->is_string()) return Err(key, std::string(key) + " must be a string");
    *slot = it->get<std::string>();
  }
  if (out->name) {
    std::string_view trimmed = TrimAsciiWhitespace(*out->name);
    if (trimmed.empty()) return Err("name", "name is empty", "Leave it out to use the alias name, or give a name.");
    if (trimmed.size() != out->name->size()) return Err("name", "name has spaces at the start or end");
    if (out->name->size() > kMaxNameLength) return Err("name", "name is longer than 100 characters");
  }
  if (out->description && out->description->size() > kMaxDescriptionLength) {
    return Err("description", "description is longer than 2000 characters", "Shorten it.");
  }
  if (create) {
    if (!out->provider_id) {
      return Err("provider_id", "provider_id is required",
                 "Choose your Amazon Bedrock provider; only working providers can be used "
                 "(GET /api/v1/providers?status=working).");
    }
    if (!out->agent_alias_arn) {
      return Err("agent_alias_arn", "agent_alias_arn is required",
                 "Paste the Agent Alias ARN (" + std::string(kAgentAliasArnFormat) + ") from the agent's Aliases tab.",
                 "invalid_agent_alias_arn");
    }
  }
  return std::nullopt;
}

Result<std::string> ResolveAppId(store::Tx& tx, const std::string& org_id, const std::string& app_ref) {
  QUARRY_ASSIGN_OR_RETURN(store::Rows table, tx.Query(tx.dialect() == store::Dialect::kSqlite ? kSqliteAppsTable
                                                                                             : kPostgresAppsTable));
  if (table.empty()) return app_ref;  // the apps module is not installed in this build
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(kFindApp, {app_ref, org_id}));
  if (rows.empty()) {
    return NotFoundError("app " + Quote(app_ref) + " not found in this organization; list apps with GET /api/v1/apps");
  }
  return rows.rows[0].Text(0);
}

Result<AgentConnection> CreateAgentConnection(store::Tx& tx, const Clock& clock, const Principal& actor,
                                              AgentConnection a, const std::string& request_id) {
  a.id = NewId("agt");
  a.org_id = actor.org_id;
  a.created_by = actor.user_id;
  a.created_at = a.updated_at = NowTimestamp(clock);
  a.version = 1;
  Result<int64_t> inserted =
      tx.Exec(kInsertAgent, {a.id, a.org_id, a.app_id, a.provider_id, a.name, AsciiToLower(a.name), a.description,
                             a.agent_alias_arn, a.agent_id, a.alias_id, a.region, a.account, a.verification.dump(),
                             WarningsJson(a.warnings).dump(), a.created_by, a.created_at});
  if (!inserted.ok()) {
    if (inserted.status().code() == StatusCode::kAlreadyExists) return Taken(a, inserted.status());
    return inserted.status();
  }
  QUARRY_RETURN_IF_ERROR(RecordAudit(tx, clock, &actor,
                                     {.org_id = a.org_id,
                                      .action = "agent_connection.create",
                                      .target_type = "agent_connection",
                                      .target_id = a.id,
                                      .after = AgentConnectionToJson(a),
                                      .request_id = request_id}));
  return a;
}

Result<AgentConnection> GetAgentConnection(store::Tx& tx, const std::string& org_id, const std::string& agent_id) {
  if (!IsWellFormedId(agent_id, "agt")) {
    return NotFoundError("agent connection " + Quote(agent_id) +
                         " not found; agent connection ids look like agt_...; list them with GET "
                         "/api/v1/apps/{app_id}/agents");
  }
  std::string sql = "SELECT " + std::string(kAgentColumns) + " FROM agent_connections WHERE org_id = $1 AND id = $2";
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, {org_id, agent_id}));
  if (rows.empty()) {
    return NotFoundError("agent connection " + agent_id +
                         " not found in this organization; list them with GET /api/v1/apps/{app_id}/agents");
  }
  return AgentFromRow(rows.rows[0]);
}

Result<Page<AgentConnection>> ListAgentConnections(store::Tx& tx, const std::string& org_id,
                                                   const std::string& app_id, const PageRequest& page) {
  std::string sql = "SELECT " + std::string(kAgentColumns) + " FROM agent_connections WHERE org_id = $1 AND app_id = $2";
  store::Params params = {org_id, app_id};
  QUARRY_RETURN_IF_ERROR(AppendKeysetPage(page, &sql, &params));
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, params));
  return TakeKeysetPage<AgentConnection>(rows, page.limit, AgentFromRow);
}

Result<AgentConnection> UpdateAgentConnection(store::Tx& tx, const Clock& clock, const Principal& actor,
                                              const AgentConnection& before, AgentConnection a,
                                              const std::string& request_id) {
  a.updated_at = NowTimestamp(clock);
  Result<int64_t> changed =
      tx.Exec(kUpdateAgent, {a.org_id, a.id, a.provider_id, a.name, AsciiToLower(a.name), a.description,
                             a.agent_alias_arn, a.agent_id, a.alias_id, a.region, a.account, a.verification.dump(),
                             WarningsJson(a.warnings).dump(), a.updated_at, before.version});
  if (!changed.ok()) {
    if (changed.status().code() == StatusCode::kAlreadyExists) return Taken(a, changed.status());
    return changed.status();
  }
  if (*changed == 0) {
    return Status(StatusCode::kAborted,
                  "agent connection " + a.id + " changed while this update ran; fetch it again and retry");
  }
  a.version = before.version + 1;
  QUARRY_RETURN_IF_ERROR(RecordAudit(tx, clock, &actor,
                                     {.org_id = a.org_id,
                                      .action = "agent_connection.update",
                                      .target_type = "agent_connection",
                                      .target_id = a.id,
                                      .before = AgentConnectionToJson(before),
                                      .after = AgentConnectionToJson(a),
                                      .request_id = request_id}));
  return a;
}

Status DeleteAgentConnection(store::Tx& tx, const Clock& clock, const Principal& actor, const AgentConnection& agent,
                             const std::string& request_id) {
  QUARRY_ASSIGN_OR_RETURN(int64_t deleted, tx.Exec(kDeleteAgent, {agent.org_id, agent.id}));
  if (deleted == 0) return NotFoundError("agent connection " + agent.id + " not found");
  return RecordAudit(tx, clock, &actor,
                     {.org_id = agent.org_id,
                      .action = "agent_connection.delete",
                      .target_type = "agent_connection",
                      .target_id = agent.id,
                      .before = AgentConnectionToJson(agent),
                      .request_id = request_id});
}

}  // namespace quarry::domain
