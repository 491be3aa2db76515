#include "sim/world.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <cstdio>
#include <cstdlib>

#include "aws/arn.h"
#include "aws/region.h"

namespace quarry::sim {
namespace {

using nlohmann::json;

// Reads the members of one JSON object, remembering which were read, so that
// Finish() can reject the unknown ones with their path.
class ObjectReader {
 public:
  ObjectReader(const json& value, std::string path) : value_(value), path_(std::move(path)) {}

  Status Check() const {
    if (!value_.is_object()) return InvalidArgumentError(path_ + " must be a JSON object");
    return Status();
  }
  std::string Path(std::string_view key) const { return path_ + "." + std::string(key); }
  const json* Get(std::string_view key) {
    seen_.insert(std::string(key));
    auto it = value_.find(std::string(key));
    return it == value_.end() ? nullptr : &*it;
  }
  Status String(std::string_view key, std::string* out, bool required) {
    const json* v = Get(key);
    if (v == nullptr) {
      return required ? InvalidArgumentError(Path(key) + " is missing; it is required (a string)") : Status();
    }
    if (!v->is_string()) return InvalidArgumentError(Path(key) + " must be a string");
    *out = v->get<std::string>();
    if (required && out->empty()) return InvalidArgumentError(Path(key) + " must not be empty");
    return Status();
  }
  Status Int(std::string_view key, int64_t* out, int64_t min, int64_t max) {
    const json* v = Get(key);
    if (v == nullptr) return Status();
    if (!v->is_number_integer()) return InvalidArgumentError(Path(key) + " must be an integer");
    int64_t x = v->get<int64_t>();
    if (x < min || x > max) {
      return InvalidArgumentError(Path(key) + " is " + std::to_string(x) + "; it must be between " +
                                  std::to_string(min) + " and " + std::to_string(max));
    }
    *out = x;
    return Status();
  }
  Status Int32(std::string_view key, int* out, int64_t min, int64_t max) {
    int64_t x = *out;
    QUARRY_RETURN_IF_ERROR(Int(key, &x, min, max));
    *out = static_cast<int>(x);
    return Status();
  }
  Status Bool(std::string_view key, bool* out) {
    const json* v = Get(key);
    if (v == nullptr) return Status();
    if (!v->is_boolean()) return InvalidArgumentError(Path(key) + " must be true or false");
    *out = v->get<bool>();
    return Status();
  }
  Status Strings(std::string_view key, std::vector<std::string>* out, bool required = false) {
    const json* v = Get(key);
    if (v == nullptr) {
      return required ? InvalidArgumentError(Path(key) + " is missing; it is required (a list of strings)")
                      : Status();
    }
    if (!v->is_array()) return InvalidArgumentError(Path(key) + " must be a list of strings");
    out->clear();
    for (size_t i = 0; i < v->size(); ++i) {
      if (!(*v)[i].is_string()) {
        return InvalidArgumentError(Path(key) + "[" + std::to_string(i) + "] must be a string");
      }
      out->push_back((*v)[i].get<std::string>());
    }
    return Status();
  }
  // Each element of a list of objects, with its path.
  template <typename Fn>
  Status Objects(std::string_view key, Fn fn) {
    const json* v = Get(key);
    if (v == nullptr) return Status();
    if (!v->is_array()) return InvalidArgumentError(Path(key) + " must be a list");
    for (size_t i = 0; i < v->size(); ++i) {
      std::string path = Path(key) + "[" + std::to_string(i) + "]";
      if (!(*v)[i].is_object()) return InvalidArgumentError(path + " must be a JSON object");
      QUARRY_RETURN_IF_ERROR(fn((*v)[i], path));
    }
    return Status();
  }
  Status Finish() const {
    for (const auto& [key, unused] : value_.items()) {
      if (key.rfind("_comment", 0) == 0 || seen_.count(key) > 0) continue;
      std::string known;
      for (const std::string& k : seen_) known += (known.empty() ? "" : ", ") + k;
      return InvalidArgumentError(Path(key) + " is not a known member; the members here are: " + known +
                                  " (and \"_comment\")");
    }
    return Status();
  }

 private:
  const json& value_;
  std::string path_;
  std::set<std::string> seen_;
};

Status CheckOneOf(const std::string& value, std::initializer_list<std::string_view> allowed, const std::string& path) {
  for (std::string_view a : allowed) {
    if (value == a) return Status();
  }
  std::string list;
  for (std::string_view a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
  return InvalidArgumentError(path + " is \"" + value + "\"; it must be one of " + list);
}

Status CheckListOneOf(const std::vector<std::string>& values, std::initializer_list<std::string_view> allowed,
                      const std::string& path) {
  for (size_t i = 0; i < values.size(); ++i) {
    QUARRY_RETURN_IF_ERROR(CheckOneOf(values[i], allowed, path + "[" + std::to_string(i) + "]"));
  }
  return Status();
}

bool IsTwelveDigits(std::string_view s) {
  return s.size() == 12 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

Result<std::vector<Policy>> ReadPolicies(ObjectReader& r, std::string_view key) {
  std::vector<Policy> out;
  const json* v = r.Get(key);
  if (v == nullptr) return out;
  if (!v->is_array()) return InvalidArgumentError(r.Path(key) + " must be a list of policy documents");
  for (size_t i = 0; i < v->size(); ++i) {
    QUARRY_ASSIGN_OR_RETURN(Policy p, ParsePolicy((*v)[i], r.Path(key) + "[" + std::to_string(i) + "]"));
    out.push_back(std::move(p));
  }
  return out;
}

Status ReadRules(ObjectReader& r, std::vector<ReplyRule>* out) {
  return r.Objects("rules", [&](const json& v, const std::string& path) -> Status {
    ObjectReader rr(v, path);
    ReplyRule rule;
    QUARRY_RETURN_IF_ERROR(rr.String("match", &rule.match, true));
    QUARRY_RETURN_IF_ERROR(rr.String("reply", &rule.reply, true));
    QUARRY_RETURN_IF_ERROR(rr.Finish());
    out->push_back(std::move(rule));
    return Status();
  });
}

Status ReadAccount(const json& v, const std::string& path, AccountSpec* account) {
  ObjectReader r(v, path);
  QUARRY_RETURN_IF_ERROR(r.String("id", &account->id, true));
  if (!IsTwelveDigits(account->id)) {
    return InvalidArgumentError(r.Path("id") + " is \"" + account->id + "\"; an account id is 12 digits");
  }
  QUARRY_RETURN_IF_ERROR(r.Objects("users", [&](const json& u, const std::string& upath) -> Status {
    ObjectReader ur(u, upath);
    UserSpec user;
    QUARRY_RETURN_IF_ERROR(ur.String("name", &user.name, true));
    QUARRY_RETURN_IF_ERROR(ur.Objects("access_keys", [&](const json& k, const std::string& kpath) -> Status {
      ObjectReader kr(k, kpath);
      AccessKeySpec key;
      QUARRY_RETURN_IF_ERROR(kr.String("id", &key.id, true));
      QUARRY_RETURN_IF_ERROR(kr.String("secret", &key.secret, true));
      if (key.id.size() < 16 || key.id.size() > 128 ||
          !std::all_of(key.id.begin(), key.id.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)); })) {
        return InvalidArgumentError(kr.Path("id") + " must be 16 to 128 letters or digits, e.g. AKIAIOSFODNN7EXAMPLE");
      }
      QUARRY_RETURN_IF_ERROR(kr.Finish());
      user.access_keys.push_back(std::move(key));
      return Status();
    }));
    QUARRY_ASSIGN_OR_RETURN(user.policies, ReadPolicies(ur, "policies"));
    QUARRY_RETURN_IF_ERROR(ur.Finish());
    account->users.push_back(std::move(user));
    return Status();
  }));
  QUARRY_RETURN_IF_ERROR(r.Objects("roles", [&](const json& rv, const std::string& rpath) -> Status {
    ObjectReader rr(rv, rpath);
    RoleSpec role;
    QUARRY_RETURN_IF_ERROR(rr.String("name", &role.name, true));
    QUARRY_RETURN_IF_ERROR(rr.Strings("trusted_principals", &role.trusted_principals, true));
    QUARRY_ASSIGN_OR_RETURN(role.policies, ReadPolicies(rr, "policies"));
    QUARRY_RETURN_IF_ERROR(rr.Int32("max_session_seconds", &role.max_session_seconds, 900, 43200));
    QUARRY_RETURN_IF_ERROR(rr.Finish());
    account->roles.push_back(std::move(role));
    return Status();
  }));
  QUARRY_RETURN_IF_ERROR(r.Objects("api_keys", [&](const json& kv, const std::string& kpath) -> Status {
    ObjectReader kr(kv, kpath);
    ApiKeySpec key;
    QUARRY_RETURN_IF_ERROR(kr.String("token", &key.token, true));
    QUARRY_RETURN_IF_ERROR(kr.String("user", &key.user, true));
    QUARRY_RETURN_IF_ERROR(kr.Finish());
    if (account->FindUser(key.user) == nullptr) {
      return InvalidArgumentError(kpath + ".user names \"" + key.user + "\", which is not a user of account " +
                                  account->id + "; add it to users or fix the name");
    }
    account->api_keys.push_back(std::move(key));
    return Status();
  }));
  QUARRY_RETURN_IF_ERROR(r.Strings("model_access", &account->model_access));
  return r.Finish();
}

Status ReadModel(const json& v, const std::string& path, ModelSpec* model) {
  ObjectReader r(v, path);
  QUARRY_RETURN_IF_ERROR(r.String("id", &model->id, true));
  if (!aws::ParseFoundationModelId(model->id).ok()) {
    return InvalidArgumentError(r.Path("id") + " \"" + model->id +
                                "\" is not a foundation model id (provider.name-version[:n])");
  }
  QUARRY_RETURN_IF_ERROR(r.String("name", &model->name, true));
  QUARRY_RETURN_IF_ERROR(r.String("provider", &model->provider, true));
  model->input_modalities = {"TEXT"};
  model->output_modalities = {"TEXT"};
  model->inference_types = {"ON_DEMAND"};
  QUARRY_RETURN_IF_ERROR(r.Strings("input_modalities", &model->input_modalities));
  QUARRY_RETURN_IF_ERROR(CheckListOneOf(model->input_modalities, {"TEXT", "IMAGE", "EMBEDDING"}, r.Path("input_modalities")));
  QUARRY_RETURN_IF_ERROR(r.Strings("output_modalities", &model->output_modalities));
  QUARRY_RETURN_IF_ERROR(CheckListOneOf(model->output_modalities, {"TEXT", "IMAGE", "EMBEDDING"}, r.Path("output_modalities")));
  QUARRY_RETURN_IF_ERROR(r.Bool("streaming", &model->streaming));
  QUARRY_RETURN_IF_ERROR(r.Strings("inference_types", &model->inference_types));
  QUARRY_RETURN_IF_ERROR(CheckListOneOf(model->inference_types, {"ON_DEMAND", "INFERENCE_PROFILE", "PROVISIONED"},
                                        r.Path("inference_types")));
  if (model->inference_types.empty()) {
    return InvalidArgumentError(r.Path("inference_types") + " is empty; list ON_DEMAND and/or INFERENCE_PROFILE");
  }
  QUARRY_RETURN_IF_ERROR(r.Strings("customizations", &model->customizations));
  QUARRY_RETURN_IF_ERROR(CheckListOneOf(model->customizations, {"FINE_TUNING", "CONTINUED_PRE_TRAINING", "DISTILLATION"},
                                        r.Path("customizations")));
  QUARRY_RETURN_IF_ERROR(r.String("lifecycle", &model->lifecycle, false));
  QUARRY_RETURN_IF_ERROR(CheckOneOf(model->lifecycle, {"ACTIVE", "LEGACY"}, r.Path("lifecycle")));
  QUARRY_RETURN_IF_ERROR(r.Int32("max_output_tokens", &model->max_output_tokens, 1, 1'000'000));
  QUARRY_RETURN_IF_ERROR(ReadRules(r, &model->rules));
  return r.Finish();
}

Status ReadRegion(const json& v, const std::string& path, RegionSpec* region) {
  ObjectReader r(v, path);
  QUARRY_RETURN_IF_ERROR(r.String("name", &region->name, true));
  if (!aws::ParseRegion(region->name).ok()) {
    return InvalidArgumentError(r.Path("name") + " \"" + region->name + "\" is not an AWS region name such as us-east-1");
  }
  QUARRY_RETURN_IF_ERROR(r.Objects("models", [&](const json& m, const std::string& mpath) -> Status {
    ModelSpec model;
    QUARRY_RETURN_IF_ERROR(ReadModel(m, mpath, &model));
    if (region->FindModel(model.id) != nullptr) {
      return InvalidArgumentError(mpath + ".id \"" + model.id + "\" is listed twice in this region");
    }
    region->models.push_back(std::move(model));
    return Status();
  }));
  QUARRY_RETURN_IF_ERROR(r.Objects("system_profiles", [&](const json& p, const std::string& ppath) -> Status {
    ObjectReader pr(p, ppath);
    SystemProfileSpec profile;
    QUARRY_RETURN_IF_ERROR(pr.String("id", &profile.id, true));
    auto parsed = aws::ParseSystemProfileId(profile.id);
    if (!parsed.ok()) {
      return InvalidArgumentError(pr.Path("id") + ": " + parsed.status().message());
    }
    profile.model = parsed.value().model_id;
    if (region->FindModel(profile.model) == nullptr) {
      return InvalidArgumentError(pr.Path("id") + " routes to " + profile.model +
                                  ", which this region's models do not list; add the model first");
    }
    QUARRY_RETURN_IF_ERROR(pr.String("name", &profile.name, true));
    QUARRY_RETURN_IF_ERROR(pr.String("description", &profile.description, false));
    profile.destinations = {region->name};
    QUARRY_RETURN_IF_ERROR(pr.Strings("destinations", &profile.destinations));
    for (size_t i = 0; i < profile.destinations.size(); ++i) {
      if (!aws::ParseRegion(profile.destinations[i]).ok()) {
        return InvalidArgumentError(pr.Path("destinations") + "[" + std::to_string(i) + "] is not a region name");
      }
    }
    QUARRY_RETURN_IF_ERROR(pr.Finish());
    region->system_profiles.push_back(std::move(profile));
    return Status();
  }));
  return r.Finish();
}

Status ReadKnowledgeBase(const json& v, const std::string& path, KnowledgeBaseSpec* kb) {
  ObjectReader r(v, path);
  QUARRY_RETURN_IF_ERROR(r.String("id", &kb->id, true));
  if (!aws::IsValidAgentId(kb->id)) {
    return InvalidArgumentError(r.Path("id") + " must be 10 letters or digits, e.g. KBITHELP01");
  }
  QUARRY_RETURN_IF_ERROR(r.String("name", &kb->name, true));
  QUARRY_RETURN_IF_ERROR(r.Objects("documents", [&](const json& d, const std::string& dpath) -> Status {
    ObjectReader dr(d, dpath);
    KnowledgeDocument doc;
    QUARRY_RETURN_IF_ERROR(dr.String("id", &doc.id, true));
    QUARRY_RETURN_IF_ERROR(dr.String("title", &doc.title, true));
    QUARRY_RETURN_IF_ERROR(dr.String("text", &doc.text, true));
    QUARRY_RETURN_IF_ERROR(dr.String("uri", &doc.uri, false));
    QUARRY_RETURN_IF_ERROR(dr.Finish());
    kb->documents.push_back(std::move(doc));
    return Status();
  }));
  return r.Finish();
}

Status ReadAgentVersion(const json& v, const std::string& path, AgentVersionSpec* version) {
  ObjectReader r(v, path);
  QUARRY_RETURN_IF_ERROR(r.String("version", &version->version, true));
  QUARRY_RETURN_IF_ERROR(r.Bool("prepared", &version->prepared));
  QUARRY_RETURN_IF_ERROR(r.String("instruction", &version->instruction, false));
  QUARRY_RETURN_IF_ERROR(r.String("foundation_model", &version->foundation_model, true));
  QUARRY_RETURN_IF_ERROR(r.Strings("knowledge_base_ids", &version->knowledge_base_ids));
  QUARRY_RETURN_IF_ERROR(r.Bool("code_interpreter", &version->code_interpreter));
  QUARRY_RETURN_IF_ERROR(r.Objects("actions", [&](const json& a, const std::string& apath) -> Status {
    ObjectReader ar(a, apath);
    ActionFunctionSpec action;
    QUARRY_RETURN_IF_ERROR(ar.String("action_group", &action.action_group, true));
    // A function-schema function, or an API-schema operation (api_path + http_method).
    QUARRY_RETURN_IF_ERROR(ar.String("function", &action.function, false));
    QUARRY_RETURN_IF_ERROR(ar.String("api_path", &action.api_path, false));
    QUARRY_RETURN_IF_ERROR(ar.String("http_method", &action.http_method, false));
    if (action.function.empty() == action.api_path.empty()) {
      return InvalidArgumentError(apath + " needs either \"function\" (a function-schema action group) or "
                                  "\"api_path\" and \"http_method\" (an API-schema action group), not both");
    }
    if (action.is_api()) {
      if (action.api_path.front() != '/') {
        return InvalidArgumentError(ar.Path("api_path") + " \"" + action.api_path +
                                    "\" must start with '/', e.g. /assets/{assetId}");
      }
      if (action.http_method.empty()) {
        return InvalidArgumentError(ar.Path("http_method") + " is missing; it is required with api_path (GET, POST, ...)");
      }
      QUARRY_RETURN_IF_ERROR(
          CheckOneOf(action.http_method, {"GET", "POST", "PUT", "PATCH", "DELETE"}, ar.Path("http_method")));
    } else if (!action.http_method.empty()) {
      return InvalidArgumentError(ar.Path("http_method") + " only goes with api_path; a function has no HTTP method");
    }
    QUARRY_RETURN_IF_ERROR(ar.String("description", &action.description, false));
    QUARRY_RETURN_IF_ERROR(ar.Strings("trigger_words", &action.trigger_words, true));
    auto read_parameters = [&](std::string_view key, std::vector<ActionParameterSpec>* out) {
      return ar.Objects(key, [&](const json& p, const std::string& ppath) -> Status {
        ObjectReader pr(p, ppath);
        ActionParameterSpec param;
        QUARRY_RETURN_IF_ERROR(pr.String("name", &param.name, true));
        param.type = "string";
        QUARRY_RETURN_IF_ERROR(pr.String("type", &param.type, false));
        QUARRY_RETURN_IF_ERROR(
            CheckOneOf(param.type, {"string", "number", "integer", "boolean", "array"}, pr.Path("type")));
        QUARRY_RETURN_IF_ERROR(pr.String("description", &param.description, false));
        QUARRY_RETURN_IF_ERROR(pr.Bool("required", &param.required));
        QUARRY_RETURN_IF_ERROR(pr.Finish());
        out->push_back(std::move(param));
        return Status();
      });
    };
    QUARRY_RETURN_IF_ERROR(read_parameters("parameters", &action.parameters));
    QUARRY_RETURN_IF_ERROR(read_parameters("request_body", &action.request_body));
    if (!action.is_api() && !action.request_body.empty()) {
      return InvalidArgumentError(ar.Path("request_body") + " only goes with api_path; a function takes parameters");
    }
    // Every {name} of the path template must be a declared parameter.
    for (size_t open = action.api_path.find('{'); open != std::string::npos;
         open = action.api_path.find('{', open + 1)) {
      const size_t close = action.api_path.find('}', open);
      if (close == std::string::npos) {
        return InvalidArgumentError(ar.Path("api_path") + " has a '{' without '}'");
      }
      const std::string name = action.api_path.substr(open + 1, close - open - 1);
      const bool declared = std::any_of(action.parameters.begin(), action.parameters.end(),
                                        [&](const ActionParameterSpec& p) { return p.name == name; });
      if (!declared) {
        return InvalidArgumentError(ar.Path("api_path") + " uses {" + name + "}, which is not in " +
                                    ar.Path("parameters") + "; declare it there");
      }
    }
    QUARRY_RETURN_IF_ERROR(ar.Finish());
    version->actions.push_back(std::move(action));
    return Status();
  }));
  if (const json* g = r.Get("guardrail"); g != nullptr) {
    ObjectReader gr(*g, r.Path("guardrail"));
    QUARRY_RETURN_IF_ERROR(gr.Check());
    GuardrailSpec guardrail;
    QUARRY_RETURN_IF_ERROR(gr.String("id", &guardrail.id, true));
    guardrail.version = "DRAFT";
    QUARRY_RETURN_IF_ERROR(gr.String("version", &guardrail.version, false));
    QUARRY_RETURN_IF_ERROR(gr.String("blocked_message", &guardrail.blocked_message, false));
    QUARRY_RETURN_IF_ERROR(gr.Objects("blocked_topics", [&](const json& t, const std::string& tpath) -> Status {
      ObjectReader tr(t, tpath);
      GuardrailSpec::Topic topic;
      QUARRY_RETURN_IF_ERROR(tr.String("name", &topic.name, true));
      QUARRY_RETURN_IF_ERROR(tr.Strings("words", &topic.words, true));
      QUARRY_RETURN_IF_ERROR(tr.Finish());
      guardrail.blocked_topics.push_back(std::move(topic));
      return Status();
    }));
    QUARRY_RETURN_IF_ERROR(gr.Finish());
    version->guardrail = std::move(guardrail);
  }
  QUARRY_RETURN_IF_ERROR(ReadRules(r, &version->rules));
  return r.Finish();
}

Status ReadAgent(const json& v, const std::string& path, AgentSpec* agent) {
  ObjectReader r(v, path);
  QUARRY_RETURN_IF_ERROR(r.String("id", &agent->id, true));
  if (!aws::IsValidAgentId(agent->id)) {
    return InvalidArgumentError(r.Path("id") + " \"" + agent->id + "\" must be exactly 10 letters or digits");
  }
  QUARRY_RETURN_IF_ERROR(r.String("name", &agent->name, true));
  QUARRY_RETURN_IF_ERROR(r.String("account", &agent->account, true));
  QUARRY_RETURN_IF_ERROR(r.String("region", &agent->region, true));
  QUARRY_RETURN_IF_ERROR(r.String("status", &agent->status, false));
  QUARRY_RETURN_IF_ERROR(CheckOneOf(agent->status,
                                    {"CREATING", "PREPARING", "PREPARED", "NOT_PREPARED", "DELETING", "FAILED",
                                     "VERSIONING", "UPDATING"},
                                    r.Path("status")));
  QUARRY_RETURN_IF_ERROR(r.String("resource_role_arn", &agent->resource_role_arn, false));
  if (agent->resource_role_arn.empty()) {
    agent->resource_role_arn = "arn:aws:iam::" + agent->account + ":role/AmazonBedrockExecutionRoleForAgents_" + agent->id;
  }
  QUARRY_RETURN_IF_ERROR(r.Int32("idle_session_ttl_seconds", &agent->idle_session_ttl_seconds, 60, 3600));
  QUARRY_RETURN_IF_ERROR(r.String("created_at", &agent->created_at, false));
  WallTime unused;
  if (!ParseIso8601Utc(agent->created_at, &unused)) {
    return InvalidArgumentError(r.Path("created_at") + " must be an ISO-8601 UTC time such as 2026-01-01T00:00:00Z");
  }
  QUARRY_RETURN_IF_ERROR(r.Objects("versions", [&](const json& vv, const std::string& vpath) -> Status {
    AgentVersionSpec version;
    QUARRY_RETURN_IF_ERROR(ReadAgentVersion(vv, vpath, &version));
    agent->versions.push_back(std::move(version));
    return Status();
  }));
  if (agent->versions.empty() || agent->versions.front().version != "DRAFT") {
    return InvalidArgumentError(r.Path("versions") + " must start with the DRAFT version ({\"version\": \"DRAFT\", ...})");
  }
  QUARRY_RETURN_IF_ERROR(r.Objects("aliases", [&](const json& av, const std::string& apath) -> Status {
    ObjectReader ar(av, apath);
    AgentAliasSpec alias;
    QUARRY_RETURN_IF_ERROR(ar.String("id", &alias.id, true));
    if (!aws::IsValidAgentId(alias.id)) {
      return InvalidArgumentError(ar.Path("id") + " \"" + alias.id + "\" must be exactly 10 letters or digits");
    }
    QUARRY_RETURN_IF_ERROR(ar.String("name", &alias.name, true));
    QUARRY_RETURN_IF_ERROR(ar.String("description", &alias.description, false));
    QUARRY_RETURN_IF_ERROR(ar.String("agent_version", &alias.agent_version, false));
    QUARRY_RETURN_IF_ERROR(ar.String("status", &alias.status, false));
    QUARRY_RETURN_IF_ERROR(CheckOneOf(alias.status,
                                      {"CREATING", "PREPARED", "FAILED", "UPDATING", "DELETING", "DISSOCIATED"},
                                      ar.Path("status")));
    if (!alias.agent_version.empty() && agent->FindVersion(alias.agent_version) == nullptr) {
      return InvalidArgumentError(ar.Path("agent_version") + " \"" + alias.agent_version +
                                  "\" is not one of this agent's versions; add it to versions or leave it empty");
    }
    QUARRY_RETURN_IF_ERROR(ar.Finish());
    agent->aliases.push_back(std::move(alias));
    return Status();
  }));
  return r.Finish();
}

}  // namespace

// ---- lookups ----

const UserSpec* AccountSpec::FindUser(std::string_view name) const {
  for (const UserSpec& u : users) {
    if (u.name == name) return &u;
  }
  return nullptr;
}
const RoleSpec* AccountSpec::FindRole(std::string_view name) const {
  for (const RoleSpec& r : roles) {
    if (r.name == name) return &r;
  }
  return nullptr;
}
bool AccountSpec::HasModelAccess(std::string_view model_id) const {
  for (const std::string& m : model_access) {
    if (m == "*" || m == model_id) return true;
  }
  return false;
}
bool ModelSpec::OnDemand() const {
  return std::find(inference_types.begin(), inference_types.end(), "ON_DEMAND") != inference_types.end();
}
bool ModelSpec::IsClaude() const { return id.rfind("anthropic.claude", 0) == 0; }
ClaudeModelSpec ModelSpec::Claude() const {
  ClaudeModelSpec spec;
  spec.model_id = id;
  spec.max_output_tokens = max_output_tokens;
  return spec;
}
const ModelSpec* RegionSpec::FindModel(std::string_view model_id) const {
  for (const ModelSpec& m : models) {
    if (m.id == model_id) return &m;
  }
  return nullptr;
}
const SystemProfileSpec* RegionSpec::FindProfile(std::string_view profile_id) const {
  for (const SystemProfileSpec& p : system_profiles) {
    if (p.id == profile_id) return &p;
  }
  return nullptr;
}
std::string ApplicationProfileSpec::Arn() const {
  return "arn:aws:bedrock:" + region + ":" + account + ":application-inference-profile/" + id;
}
const AccountSpec* WorldConfig::FindAccount(std::string_view id) const {
  for (const AccountSpec& a : accounts) {
    if (a.id == id) return &a;
  }
  return nullptr;
}
const RegionSpec* WorldConfig::FindRegion(std::string_view name) const {
  for (const RegionSpec& r : regions) {
    if (r.name == name) return &r;
  }
  return nullptr;
}
const AgentSpec* WorldConfig::FindAgent(std::string_view region, std::string_view agent_id) const {
  for (const AgentSpec& a : agents) {
    if (a.region == region && a.id == agent_id) return &a;
  }
  return nullptr;
}
const ApplicationProfileSpec* WorldConfig::FindApplicationProfile(std::string_view arn) const {
  for (const ApplicationProfileSpec& p : application_profiles) {
    if (p.Arn() == arn) return &p;
  }
  return nullptr;
}

// ---- faults ----

json FaultRule::ToJson() const {
  json j = {{"kind", kind}, {"operation", operation}};
  if (!model.empty()) j["model"] = model;
  if (!agent.empty()) j["agent"] = agent;
  if (count) j["count"] = *count;
  if (rate) j["rate"] = *rate;
  if (latency_ms) j["latency_ms"] = latency_ms;
  if (median_ms) j["median_ms"] = median_ms;
  if (p99_ms) j["p99_ms"] = p99_ms;
  if (first_byte_ms) j["first_byte_ms"] = first_byte_ms;
  if (chunk_delay_ms) j["chunk_delay_ms"] = chunk_delay_ms;
  if (in_stream) j["in_stream"] = true;
  if (after_events != 1) j["after_events"] = after_events;
  if (!exception_type.empty()) j["exception_type"] = exception_type;
  if (!message.empty()) j["message"] = message;
  return j;
}

Result<FaultRule> ParseFaultRule(const json& value, std::string_view path_view) {
  std::string path(path_view);
  ObjectReader r(value, path);
  QUARRY_RETURN_IF_ERROR(r.Check());
  FaultRule rule;
  QUARRY_RETURN_IF_ERROR(r.String("kind", &rule.kind, true));
  QUARRY_RETURN_IF_ERROR(CheckOneOf(rule.kind,
                                    {"latency", "throttle", "internal_error", "service_unavailable", "model_timeout",
                                     "model_not_ready", "dependency_failed", "stream_exception", "bad_crc",
                                     "cut_stream", "stall", "reset"},
                                    r.Path("kind")));
  QUARRY_RETURN_IF_ERROR(r.String("operation", &rule.operation, false));
  QUARRY_RETURN_IF_ERROR(CheckOneOf(rule.operation,
                                    {"*", "InvokeModel", "InvokeModelWithResponseStream", "Converse", "ConverseStream",
                                     "InvokeAgent", "ListFoundationModels", "GetFoundationModel",
                                     "ListInferenceProfiles", "GetInferenceProfile", "GetAgent", "GetAgentAlias",
                                     "ListAgentAliases", "GetCallerIdentity", "AssumeRole"},
                                    r.Path("operation")));
  QUARRY_RETURN_IF_ERROR(r.String("model", &rule.model, false));
  QUARRY_RETURN_IF_ERROR(r.String("agent", &rule.agent, false));
  if (const json* c = r.Get("count"); c != nullptr) {
    if (!c->is_number_integer() || c->get<int64_t>() < 1) {
      return InvalidArgumentError(r.Path("count") + " must be a positive integer (the next N matching calls)");
    }
    rule.count = c->get<int64_t>();
  }
  if (const json* c = r.Get("rate"); c != nullptr) {
    if (!c->is_number() || c->get<double>() < 0 || c->get<double>() > 1) {
      return InvalidArgumentError(r.Path("rate") + " must be a number between 0 and 1");
    }
    rule.rate = c->get<double>();
  }
  if (rule.count && rule.rate) {
    return InvalidArgumentError(path + " has both count and rate; give one of them");
  }
  if (!rule.count && !rule.rate) rule.rate = 1.0;  // every matching call
  constexpr int64_t kMaxMs = 3'600'000;
  QUARRY_RETURN_IF_ERROR(r.Int("latency_ms", &rule.latency_ms, 0, kMaxMs));
  QUARRY_RETURN_IF_ERROR(r.Int("median_ms", &rule.median_ms, 0, kMaxMs));
  QUARRY_RETURN_IF_ERROR(r.Int("p99_ms", &rule.p99_ms, 0, kMaxMs));
  QUARRY_RETURN_IF_ERROR(r.Int("first_byte_ms", &rule.first_byte_ms, 0, kMaxMs));
  QUARRY_RETURN_IF_ERROR(r.Int("chunk_delay_ms", &rule.chunk_delay_ms, 0, kMaxMs));
  QUARRY_RETURN_IF_ERROR(r.Bool("in_stream", &rule.in_stream));
  QUARRY_RETURN_IF_ERROR(r.Int("after_events", &rule.after_events, 0, 1'000'000));
  QUARRY_RETURN_IF_ERROR(r.String("exception_type", &rule.exception_type, false));
  QUARRY_RETURN_IF_ERROR(r.String("message", &rule.message, false));
  if ((rule.median_ms > 0) != (rule.p99_ms > 0) || (rule.median_ms > 0 && rule.p99_ms < rule.median_ms)) {
    return InvalidArgumentError(path + ": a heavy-tailed latency needs both median_ms and p99_ms, with p99_ms >= median_ms");
  }
  if (rule.kind == "latency" && rule.latency_ms == 0 && rule.median_ms == 0 && rule.first_byte_ms == 0 &&
      rule.chunk_delay_ms == 0) {
    return InvalidArgumentError(path + ": a latency fault needs latency_ms, median_ms+p99_ms, first_byte_ms or chunk_delay_ms");
  }
  QUARRY_RETURN_IF_ERROR(r.Finish());
  return rule;
}

// ---- the world ----

Result<WorldConfig> ParseWorldConfig(std::string_view json_text) {
  json doc = json::parse(json_text, nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
  if (doc.is_discarded()) {
    return InvalidArgumentError("the world config is not valid JSON; check for a missing comma or quote "
                                "(start from `quarry sim --print-config`)");
  }
  WorldConfig world;
  ObjectReader r(doc, "$");
  QUARRY_RETURN_IF_ERROR(r.Check());
  if (const json* seed = r.Get("seed"); seed != nullptr) {
    if (!seed->is_number_unsigned()) return InvalidArgumentError("$.seed must be a non-negative integer");
    world.seed = seed->get<uint64_t>();
  }
  QUARRY_RETURN_IF_ERROR(r.Int("request_log_size", &world.request_log_size, 1, 100'000));
  QUARRY_RETURN_IF_ERROR(r.Objects("accounts", [&](const json& v, const std::string& path) -> Status {
    AccountSpec account;
    QUARRY_RETURN_IF_ERROR(ReadAccount(v, path, &account));
    if (world.FindAccount(account.id) != nullptr) return InvalidArgumentError(path + ".id repeats account " + account.id);
    world.accounts.push_back(std::move(account));
    return Status();
  }));
  if (world.accounts.empty()) return InvalidArgumentError("$.accounts is missing or empty; define at least one account");
  QUARRY_RETURN_IF_ERROR(r.Objects("regions", [&](const json& v, const std::string& path) -> Status {
    RegionSpec region;
    QUARRY_RETURN_IF_ERROR(ReadRegion(v, path, &region));
    if (world.FindRegion(region.name) != nullptr) return InvalidArgumentError(path + ".name repeats " + region.name);
    world.regions.push_back(std::move(region));
    return Status();
  }));
  if (world.regions.empty()) return InvalidArgumentError("$.regions is missing or empty; serve at least one region");
  QUARRY_RETURN_IF_ERROR(r.Objects("application_profiles", [&](const json& v, const std::string& path) -> Status {
    ObjectReader pr(v, path);
    ApplicationProfileSpec p;
    QUARRY_RETURN_IF_ERROR(pr.String("account", &p.account, true));
    QUARRY_RETURN_IF_ERROR(pr.String("region", &p.region, true));
    QUARRY_RETURN_IF_ERROR(pr.String("id", &p.id, true));
    QUARRY_RETURN_IF_ERROR(pr.String("name", &p.name, true));
    QUARRY_RETURN_IF_ERROR(pr.String("description", &p.description, false));
    QUARRY_RETURN_IF_ERROR(pr.String("model", &p.model, true));
    QUARRY_RETURN_IF_ERROR(pr.Finish());
    if (world.FindAccount(p.account) == nullptr) return InvalidArgumentError(path + ".account is not a defined account");
    const RegionSpec* region = world.FindRegion(p.region);
    if (region == nullptr) return InvalidArgumentError(path + ".region is not a served region");
    if (region->FindModel(p.model) == nullptr) {
      return InvalidArgumentError(path + ".model \"" + p.model + "\" is not offered in " + p.region);
    }
    if (p.id.size() != 12 || !std::all_of(p.id.begin(), p.id.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        })) {
      return InvalidArgumentError(path + ".id must be 12 lower-case letters or digits, e.g. a1b2c3d4e5f6");
    }
    world.application_profiles.push_back(std::move(p));
    return Status();
  }));
  QUARRY_RETURN_IF_ERROR(r.Objects("knowledge_bases", [&](const json& v, const std::string& path) -> Status {
    KnowledgeBaseSpec kb;
    QUARRY_RETURN_IF_ERROR(ReadKnowledgeBase(v, path, &kb));
    world.knowledge_bases.push_back(std::move(kb));
    return Status();
  }));
  QUARRY_RETURN_IF_ERROR(r.Objects("agents", [&](const json& v, const std::string& path) -> Status {
    AgentSpec agent;
    QUARRY_RETURN_IF_ERROR(ReadAgent(v, path, &agent));
    if (world.FindAccount(agent.account) == nullptr) {
      return InvalidArgumentError(path + ".account \"" + agent.account + "\" is not one of the accounts");
    }
    if (world.FindRegion(agent.region) == nullptr) {
      return InvalidArgumentError(path + ".region \"" + agent.region + "\" is not a served region");
    }
    if (world.FindAgent(agent.region, agent.id) != nullptr) {
      return InvalidArgumentError(path + ".id repeats agent " + agent.id);
    }
    for (size_t i = 0; i < agent.versions.size(); ++i) {
      for (const std::string& kb : agent.versions[i].knowledge_base_ids) {
        bool found = std::any_of(world.knowledge_bases.begin(), world.knowledge_bases.end(),
                                 [&](const KnowledgeBaseSpec& k) { return k.id == kb; });
        if (!found) {
          return InvalidArgumentError(path + ".versions[" + std::to_string(i) + "].knowledge_base_ids names " + kb +
                                      ", which is not in $.knowledge_bases");
        }
      }
    }
    world.agents.push_back(std::move(agent));
    return Status();
  }));
  QUARRY_RETURN_IF_ERROR(r.Objects("quotas", [&](const json& v, const std::string& path) -> Status {
    ObjectReader qr(v, path);
    QuotaRule q;
    QUARRY_RETURN_IF_ERROR(qr.String("account", &q.account, false));
    QUARRY_RETURN_IF_ERROR(qr.String("model", &q.model, false));
    QUARRY_RETURN_IF_ERROR(qr.Int("requests_per_minute", &q.requests_per_minute, 0, 1'000'000'000));
    QUARRY_RETURN_IF_ERROR(qr.Int("tokens_per_minute", &q.tokens_per_minute, 0, 1'000'000'000'000));
    QUARRY_RETURN_IF_ERROR(qr.Finish());
    if (q.account != "*" && world.FindAccount(q.account) == nullptr) {
      return InvalidArgumentError(path + ".account must be \"*\" or one of the accounts");
    }
    world.quotas.push_back(std::move(q));
    return Status();
  }));
  QUARRY_RETURN_IF_ERROR(r.Objects("faults", [&](const json& v, const std::string& path) -> Status {
    QUARRY_ASSIGN_OR_RETURN(FaultRule f, ParseFaultRule(v, path));
    world.faults.push_back(std::move(f));
    return Status();
  }));
  QUARRY_RETURN_IF_ERROR(r.Finish());
  // model_access names models some region offers (a typo would silently deny).
  for (size_t a = 0; a < world.accounts.size(); ++a) {
    for (size_t i = 0; i < world.accounts[a].model_access.size(); ++i) {
      const std::string& m = world.accounts[a].model_access[i];
      if (m == "*") continue;
      bool found = std::any_of(world.regions.begin(), world.regions.end(),
                               [&](const RegionSpec& region) { return region.FindModel(m) != nullptr; });
      if (!found) {
        return InvalidArgumentError("$.accounts[" + std::to_string(a) + "].model_access[" + std::to_string(i) +
                                    "] \"" + m + "\" is not offered by any region; use a model id from regions[].models");
      }
    }
  }
  return world;
}

WorldConfig DemoWorld() {
  auto world = ParseWorldConfig(DemoWorldConfigText());
  if (!world.ok()) {
    // The demo is a constant of the program; an invalid one is a bug.
    std::fprintf(stderr, "BUG: the demo world is invalid: %s\n", world.status().ToString().c_str());
    std::abort();
  }
  return std::move(world).value();
}

}  // namespace quarry::sim
