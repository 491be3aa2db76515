#include "engine/programs.h"

#include <utility>

#include "domain/agent_connections.h"
#include "domain/services.h"
#include "engine/run_store.h"

namespace quarry::engine {

namespace {

constexpr int kListPageSize = 500;

// Every page of a keyset-paged list.
template <typename T, typename Fn>
Status ForEachPage(Fn list_page, const std::function<void(const T&)>& visit) {
  domain::PageRequest page{.limit = kListPageSize};
  for (;;) {
    QUARRY_ASSIGN_OR_RETURN(domain::Page<T> got, list_page(page));
    for (const T& item : got.items) visit(item);
    if (got.next_cursor.empty()) return Status::Ok();
    page.cursor = got.next_cursor;
  }
}

}  // namespace

nlohmann::json RecordScopeJson(const domain::Record& record) {
  nlohmann::json scope = record.values.is_object() ? record.values : nlohmann::json::object();
  scope["id"] = record.id;
  scope["handle"] = record.handle;
  scope["created_at"] = record.created_at;
  scope["updated_at"] = record.updated_at;
  return scope;
}

Result<SpecEnvironment> LoadSpecEnvironment(store::Tx& tx, const std::string& org_id, const std::string& app_id,
                                            std::shared_ptr<const domain::AppSchema>* schema_out) {
  QUARRY_ASSIGN_OR_RETURN(std::shared_ptr<const domain::AppSchema> schema,
                          domain::LoadAppSchema(tx, org_id, app_id));
  SpecEnvironment env;
  QUARRY_RETURN_IF_ERROR(ForEachPage<domain::AgentConnection>(
      [&](const domain::PageRequest& page) { return domain::ListAgentConnections(tx, org_id, schema->app.id, page); },
      [&](const domain::AgentConnection& agent) { env.agents[agent.id] = agent.name; }));
  QUARRY_RETURN_IF_ERROR(ForEachPage<domain::Service>(
      [&](const domain::PageRequest& page) { return domain::ListServices(tx, org_id, page); },
      [&](const domain::Service& service) { env.services[service.id] = service.name; }));
  *schema_out = schema;
  env.app = schema_out->get();
  return env;
}

Result<std::shared_ptr<const LoadedProgram>> ProgramCache::Get(store::Tx& tx, const std::string& org_id,
                                                               const std::string& app_id,
                                                               const std::string& automation_id, int64_t version,
                                                               const nlohmann::json* definition) {
  QUARRY_ASSIGN_OR_RETURN(int64_t schema_version, domain::CurrentSchemaVersion(tx, org_id, app_id, false));
  const std::string key = automation_id + "/" + std::to_string(version) + "/" + std::to_string(schema_version);
  if (version > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = entries_.find(key);
    if (it != entries_.end()) return it->second;
  }

  nlohmann::json loaded_definition;
  if (version > 0) {
    QUARRY_ASSIGN_OR_RETURN(AutomationVersion row, store_.GetVersion(tx, automation_id, version));
    loaded_definition = std::move(row.definition);
    definition = &loaded_definition;
  }
  if (definition == nullptr) {
    return InvalidArgumentError("no definition given for a draft run of automation " + automation_id);
  }

  auto program = std::make_shared<LoadedProgram>();
  QUARRY_ASSIGN_OR_RETURN(SpecEnvironment env, LoadSpecEnvironment(tx, org_id, app_id, &program->schema));
  domain::FieldErrors errors;
  Result<AutomationSpec> spec = ParseAutomationSpec(*definition, env, &errors);
  if (!spec.ok()) {
    std::string problems;
    for (const auto& [path, message] : errors.by_name()) {
      if (!problems.empty()) problems += "; ";
      problems += path + ": " + message;
    }
    return FailedPreconditionError(
        "automation " + automation_id + (version > 0 ? " version " + std::to_string(version) : " (draft)") +
        " no longer validates against the app: " + (problems.empty() ? spec.status().message() : problems) +
        ". Fix the definition (or restore what it refers to) and publish it again");
  }
  program->object = program->schema->FindObject(spec.value().object);
  if (program->object == nullptr) {
    return FailedPreconditionError("automation " + automation_id + " watches object '" + spec.value().object +
                                      "', which the app no longer has; change its \"object\" and publish again");
  }
  program->program = CompileProgram(std::make_shared<const AutomationSpec>(std::move(spec).value()));
  std::shared_ptr<const LoadedProgram> shared = std::move(program);
  if (version > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (entries_.size() >= kMaxEntries) entries_.clear();
    entries_[key] = shared;
  }
  return shared;
}

void ProgramCache::Clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  entries_.clear();
}

}  // namespace quarry::engine
