#include "domain/apps.h"

#include <map>

#include "common/ids.h"
#include "domain/app_internal.h"
#include "domain/audit.h"

namespace quarry::domain {
namespace {

using app_internal::NowText;

constexpr std::string_view kInsertApp =
    "INSERT INTO apps (id, org_id, name, namespace, handle, description, record_seq, "
    "schema_version, version, created_by, created_at, updated_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, 0, 1, 1, $7, $8, $8)";
constexpr std::string_view kAppConflicts =
    "SELECT namespace, handle, name FROM apps WHERE org_id = $1 AND id <> $2 AND "
    "(namespace = $3 OR handle = $4)";
constexpr std::string_view kCountApps = "SELECT COUNT(*) FROM apps WHERE org_id = $1";
constexpr std::string_view kUpdateApp =
    "UPDATE apps SET name = $2, namespace = $3, handle = $4, description = $5, "
    "version = version + 1, schema_version = schema_version + 1, updated_at = $6 WHERE id = $1";
constexpr std::string_view kDeleteApp = "DELETE FROM apps WHERE id = $1";
constexpr std::string_view kSchemaVersion =
    "SELECT schema_version FROM apps WHERE id = $1 AND org_id = $2";
constexpr std::string_view kAppObjects =
    "SELECT id, org_id, app_id, name, api_name, description, version, created_at, updated_at "
    "FROM app_objects WHERE app_id = $1 ORDER BY api_name";
constexpr std::string_view kAppFields =
    "SELECT id, org_id, app_id, object_id, api_name, label, type, required, is_unique, "
    "default_json, options_json, max_length, position, version, created_at, updated_at "
    "FROM app_fields WHERE app_id = $1 ORDER BY object_id, position, api_name";
constexpr std::string_view kInsertObject =
    "INSERT INTO app_objects (id, org_id, app_id, name, api_name, description, version, "
    "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7)";
constexpr std::string_view kCountObjects = "SELECT COUNT(*) FROM app_objects WHERE app_id = $1";
constexpr std::string_view kUpdateObject =
    "UPDATE app_objects SET name = $2, description = $3, version = version + 1, updated_at = $4 "
    "WHERE id = $1";
constexpr std::string_view kDeleteObject = "DELETE FROM app_objects WHERE id = $1";

void CheckNamespace(const std::string& value, FieldErrors* errors) {
  if (!IsValidNamespace(value)) {
    errors->Add("namespace",
                "must be 2-32 characters of a-z, 0-9 and _, starting with a letter "
                "(e.g. support_desk)");
  } else if (IsWellFormedId(value, "app")) {
    errors->Add("namespace", "must not look like an app id; choose a descriptive name");
  }
}

void CheckHandle(const std::string& value, FieldErrors* errors) {
  if (!IsValidHandlePrefix(value)) {
    errors->Add("handle", "must be 2-8 upper-case letters A-Z (e.g. TCK, for records TCK-1, TCK-2)");
  }
}

// Names the app that already uses a namespace or handle, so the 409 says
// which one to change.
Status CheckAppConflicts(store::Tx& tx, const std::string& org_id, const std::string& app_id,
                         const App& app, FieldErrors* errors) {
  QUARRY_ASSIGN_OR_RETURN(
      store::Rows rows,
      tx.Query(kAppConflicts, {org_id, app_id, app.namespace_name, app.handle}));
  for (const store::Row& row : rows.rows) {
    if (row.Text(0) == app.namespace_name) {
      errors->Add("namespace", "is already used by app '" + row.Text(2) + "'");
    }
    if (row.Text(1) == app.handle) {
      errors->Add("handle", "is already used by app '" + row.Text(2) + "'");
    }
  }
  if (errors->empty()) return Status::Ok();
  return Status(StatusCode::kAlreadyExists,
                "another app of your organization uses this " +
                    std::string(errors->Has("namespace") ? "namespace" : "handle") +
                    "; namespaces and handles are unique per organization, so choose another");
}

Result<std::vector<ObjectSchema>> LoadObjects(store::Tx& tx, const std::string& app_id) {
  QUARRY_ASSIGN_OR_RETURN(store::Rows object_rows, tx.Query(kAppObjects, {app_id}));
  QUARRY_ASSIGN_OR_RETURN(store::Rows field_rows, tx.Query(kAppFields, {app_id}));
  std::vector<ObjectSchema> objects;
  std::map<std::string, size_t> index;
  for (const store::Row& row : object_rows.rows) {
    ObjectSchema object;
    object.object = app_internal::ObjectFromRow(row);
    index[object.object.id] = objects.size();
    objects.push_back(std::move(object));
  }
  for (const store::Row& row : field_rows.rows) {
    Field field = app_internal::FieldFromRow(row);
    auto it = index.find(field.object_id);
    if (it != index.end()) objects[it->second].fields.push_back(std::move(field));
  }
  return objects;
}

}  // namespace

ChangeContext ChangeContext::For(const Principal& principal, const Clock& clock,
                                 std::string request_id) {
  ChangeContext change;
  change.org_id = principal.org_id;
  change.principal = &principal;
  change.clock = &clock;
  change.request_id = std::move(request_id);
  return change;
}

ChangeContext ChangeContext::System(std::string org_id, const Clock& clock) {
  ChangeContext change;
  change.org_id = std::move(org_id);
  change.clock = &clock;
  return change;
}

bool IsValidNamespace(std::string_view text) {
  if (text.size() < 2 || text.size() > 32) return false;
  if (text[0] < 'a' || text[0] > 'z') return false;
  for (char c : text) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

bool IsValidHandlePrefix(std::string_view text) {
  if (text.size() < 2 || text.size() > 8) return false;
  for (char c : text) {
    if (c < 'A' || c > 'Z') return false;
  }
  return true;
}

nlohmann::json App::ToJson() const {
  return {
      {"id", id},
      {"name", name},
      {"namespace", namespace_name},
      {"handle", handle},
      {"description", description},
      {"version", version},
      {"created_by", created_by},
      {"created_at", created_at},
      {"updated_at", updated_at},
  };
}

nlohmann::json AppObject::ToJson() const {
  return {
      {"id", id},
      {"app_id", app_id},
      {"name", name},
      {"api_name", api_name},
      {"description", description},
      {"version", version},
      {"created_at", created_at},
      {"updated_at", updated_at},
  };
}

const Field* ObjectSchema::FindField(std::string_view api_name) const {
  for (const Field& field : fields) {
    if (field.api_name == api_name) return &field;
  }
  return nullptr;
}

nlohmann::json ObjectSchema::ToJson() const {
  nlohmann::json out = object.ToJson();
  nlohmann::json list = nlohmann::json::array();
  for (const Field& field : fields) list.push_back(field.ToJson());
  out["fields"] = std::move(list);
  return out;
}

const ObjectSchema* AppSchema::FindObject(std::string_view object_ref) const {
  for (const ObjectSchema& object : objects) {
    if (object.object.id == object_ref || object.object.api_name == object_ref) return &object;
  }
  return nullptr;
}

const ObjectSchema* AppSchema::FindObjectById(std::string_view object_id) const {
  for (const ObjectSchema& object : objects) {
    if (object.object.id == object_id) return &object;
  }
  return nullptr;
}

Result<std::shared_ptr<const AppSchema>> LoadAppSchema(store::Tx& tx, const std::string& org_id,
                                                       std::string_view app_ref) {
  QUARRY_ASSIGN_OR_RETURN(App found, app_internal::FindApp(tx, org_id, app_ref, false));
  // Under READ COMMITTED each statement may see a newer state. Every schema
  // change bumps schema_version, so equal versions before and after the reads
  // prove that they saw one consistent schema.
  constexpr int kAttempts = 5;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    auto schema = std::make_shared<AppSchema>();
    QUARRY_ASSIGN_OR_RETURN(int64_t first, CurrentSchemaVersion(tx, org_id, found.id, false));
    QUARRY_ASSIGN_OR_RETURN(schema->app, app_internal::FindApp(tx, org_id, found.id, false));
    QUARRY_ASSIGN_OR_RETURN(schema->objects, LoadObjects(tx, found.id));
    QUARRY_ASSIGN_OR_RETURN(int64_t last, CurrentSchemaVersion(tx, org_id, found.id, false));
    if (first == last) {
      schema->schema_version = first;
      return std::shared_ptr<const AppSchema>(std::move(schema));
    }
  }
  return UnavailableError("app " + found.namespace_name +
                          " is being changed too quickly to read its fields; try again");
}

Result<int64_t> CurrentSchemaVersion(store::Tx& tx, const std::string& org_id,
                                     const std::string& app_id, bool lock) {
  std::string sql(kSchemaVersion);
  if (lock) sql += app_internal::ForShare(tx);
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, {app_id, org_id}));
  if (rows.empty()) {
    return NotFoundError("app " + app_id +
                         " no longer exists in your organization; list apps with GET /api/v1/apps");
  }
  return rows.rows[0].Int(0);
}

Result<App> CreateApp(store::Tx& tx, const ChangeContext& change, const nlohmann::json& spec,
                      FieldErrors* errors) {
  FieldErrors local;
  if (errors == nullptr) errors = &local;
  QUARRY_RETURN_IF_ERROR(app_internal::RequireBuilder(change, "create apps"));
  QUARRY_RETURN_IF_ERROR(app_internal::RequireObject(spec, errors));
  app_internal::RejectUnknownKeys(spec, {"name", "namespace", "handle", "description"}, errors);
  App app;
  app.id = NewId("app");
  app.org_id = change.org_id;
  if (auto name = app_internal::ReadName(spec, "name", true, errors)) app.name = *name;
  if (auto ns = app_internal::ReadString(spec, "namespace", true, errors)) {
    app.namespace_name = *ns;
    CheckNamespace(*ns, errors);
  }
  if (auto handle = app_internal::ReadString(spec, "handle", true, errors)) {
    app.handle = *handle;
    CheckHandle(*handle, errors);
  }
  if (auto description = app_internal::ReadDescription(spec, "description", errors)) {
    app.description = *description;
  }
  if (!errors->empty()) return errors->ToStatus();

  QUARRY_ASSIGN_OR_RETURN(store::Row count, tx.QueryOne(kCountApps, {change.org_id}, "apps"));
  if (static_cast<size_t>(count.Int(0)) >= kMaxAppsPerOrg) {
    return FailedPreconditionError("your organization already has " +
                                   std::to_string(kMaxAppsPerOrg) +
                                   " apps, the most it may have; delete unused apps first");
  }
  QUARRY_RETURN_IF_ERROR(CheckAppConflicts(tx, change.org_id, app.id, app, errors));
  app.created_by = app_internal::ActorId(change);
  app.created_at = app.updated_at = NowText(change);
  QUARRY_RETURN_IF_ERROR(tx.Exec(kInsertApp, {app.id, app.org_id, app.name, app.namespace_name,
                                              app.handle, app.description, app.created_by,
                                              app.created_at}));
  QUARRY_RETURN_IF_ERROR(
      app_internal::Audit(tx, change, "app.create", "app", app.id, nullptr, app.ToJson()));
  return app;
}

Result<App> UpdateApp(store::Tx& tx, const ChangeContext& change, std::string_view app_ref,
                      const nlohmann::json& patch, const VersionCheck& check, FieldErrors* errors) {
  FieldErrors local;
  if (errors == nullptr) errors = &local;
  QUARRY_RETURN_IF_ERROR(app_internal::RequireBuilder(change, "change apps"));
  QUARRY_RETURN_IF_ERROR(app_internal::RequireObject(patch, errors));
  QUARRY_ASSIGN_OR_RETURN(App before, app_internal::FindApp(tx, change.org_id, app_ref, true));
  QUARRY_RETURN_IF_ERROR(app_internal::RunVersionCheck(check, before.version));
  app_internal::RejectUnknownKeys(patch, {"name", "namespace", "handle", "description"}, errors);
  App app = before;
  if (auto name = app_internal::ReadName(patch, "name", false, errors)) app.name = *name;
  if (auto ns = app_internal::ReadString(patch, "namespace", false, errors)) {
    app.namespace_name = *ns;
    CheckNamespace(*ns, errors);
  }
  if (auto handle = app_internal::ReadString(patch, "handle", false, errors)) {
    app.handle = *handle;
    CheckHandle(*handle, errors);
  }
  if (auto description = app_internal::ReadDescription(patch, "description", errors)) {
    app.description = *description;
  }
  if (!errors->empty()) return errors->ToStatus();

  const bool identity_changes =
      app.namespace_name != before.namespace_name || app.handle != before.handle;
  if (identity_changes) {
    QUARRY_ASSIGN_OR_RETURN(bool has_records, app_internal::HasRecords(tx, app.id, ""));
    if (has_records) {
      const std::string what = app.namespace_name != before.namespace_name ? "namespace" : "handle";
      errors->Add(what, "cannot change once the app has records");
      return FailedPreconditionError(
          "app " + before.namespace_name + " has records, so its " + what +
          " can no longer change (record handles and references use it); create a new app "
          "if you need a different one");
    }
    QUARRY_RETURN_IF_ERROR(CheckAppConflicts(tx, change.org_id, app.id, app, errors));
  }
  app.version = before.version + 1;
  app.updated_at = NowText(change);
  QUARRY_RETURN_IF_ERROR(tx.Exec(kUpdateApp, {app.id, app.name, app.namespace_name, app.handle,
                                              app.description, app.updated_at}));
  QUARRY_RETURN_IF_ERROR(
      app_internal::Audit(tx, change, "app.update", "app", app.id, before.ToJson(), app.ToJson()));
  return app;
}

Status DeleteApp(store::Tx& tx, const ChangeContext& change, std::string_view app_ref, bool force,
                 const VersionCheck& check) {
  QUARRY_RETURN_IF_ERROR(app_internal::RequireBuilder(change, "delete apps"));
  QUARRY_ASSIGN_OR_RETURN(App app, app_internal::FindApp(tx, change.org_id, app_ref, true));
  QUARRY_RETURN_IF_ERROR(app_internal::RunVersionCheck(check, app.version));
  if (!force) {
    QUARRY_ASSIGN_OR_RETURN(bool has_records, app_internal::HasRecords(tx, app.id, ""));
    if (has_records) {
      return FailedPreconditionError("app " + app.namespace_name +
                                     " has records; delete it with ?force=true to remove it "
                                     "together with all its objects and records");
    }
  }
  QUARRY_RETURN_IF_ERROR(tx.Exec(kDeleteApp, {app.id}));
  return app_internal::Audit(tx, change, "app.delete", "app", app.id, app.ToJson(), nullptr);
}

Result<App> GetApp(store::Tx& tx, const std::string& org_id, std::string_view app_ref) {
  return app_internal::FindApp(tx, org_id, app_ref, false);
}

Result<Page<App>> ListApps(store::Tx& tx, const std::string& org_id, const PageRequest& page) {
  std::string sql = "SELECT " + std::string(app_internal::kAppColumns) +
                    " FROM apps WHERE org_id = $1";
  store::Params params = {org_id};
  QUARRY_RETURN_IF_ERROR(AppendKeysetPage(page, &sql, &params));
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, params));
  return TakeKeysetPage<App>(rows, page.limit, app_internal::AppFromRow);
}

Result<ObjectSchema> CreateObject(store::Tx& tx, const ChangeContext& change,
                                  std::string_view app_ref, const nlohmann::json& spec,
                                  FieldErrors* errors) {
  FieldErrors local;
  if (errors == nullptr) errors = &local;
  QUARRY_RETURN_IF_ERROR(app_internal::RequireBuilder(change, "create objects"));
  QUARRY_RETURN_IF_ERROR(app_internal::RequireObject(spec, errors));
  QUARRY_ASSIGN_OR_RETURN(App app, app_internal::FindApp(tx, change.org_id, app_ref, false));
  // Lock the app row first (PostgreSQL): schema changes of one app run one
  // at a time, and record writes see them whole.
  QUARRY_RETURN_IF_ERROR(app_internal::BumpSchemaVersion(tx, app.id));
  app_internal::RejectUnknownKeys(spec, {"name", "api_name", "description"}, errors);
  ObjectSchema schema;
  AppObject& object = schema.object;
  object.id = NewId("obj");
  object.org_id = change.org_id;
  object.app_id = app.id;
  if (auto name = app_internal::ReadName(spec, "name", true, errors)) object.name = *name;
  if (auto api_name = app_internal::ReadString(spec, "api_name", true, errors)) {
    object.api_name = *api_name;
    if (!IsValidApiName(*api_name)) {
      errors->Add("api_name",
                  "must be 1-63 characters of a-z, 0-9 and _, starting with a letter "
                  "(e.g. tickets)");
    } else if (IsWellFormedId(*api_name, "obj")) {
      errors->Add("api_name", "must not look like an object id; choose a descriptive name");
    }
  }
  if (auto description = app_internal::ReadDescription(spec, "description", errors)) {
    object.description = *description;
  }
  if (!errors->empty()) return errors->ToStatus();

  QUARRY_ASSIGN_OR_RETURN(store::Row count, tx.QueryOne(kCountObjects, {app.id}, "objects"));
  if (static_cast<size_t>(count.Int(0)) >= kMaxObjectsPerApp) {
    return FailedPreconditionError("app " + app.namespace_name + " already has " +
                                   std::to_string(kMaxObjectsPerApp) +
                                   " objects, the most an app may have; delete unused ones");
  }
  object.created_at = object.updated_at = NowText(change);
  Status inserted = tx.Exec(kInsertObject, {object.id, object.org_id, object.app_id, object.name,
                                            object.api_name, object.description, object.created_at})
                        .status();
  if (inserted.code() == StatusCode::kAlreadyExists) {
    errors->Add("api_name", "is already used by another object of " + app.namespace_name);
    return Status(StatusCode::kAlreadyExists,
                  "app " + app.namespace_name + " already has an object named " + object.api_name +
                      "; choose another api_name");
  }
  QUARRY_RETURN_IF_ERROR(inserted);
  QUARRY_RETURN_IF_ERROR(app_internal::Audit(tx, change, "object.create", "object", object.id,
                                             nullptr, object.ToJson()));
  return schema;
}

Result<ObjectSchema> UpdateObject(store::Tx& tx, const ChangeContext& change,
                                  std::string_view app_ref, std::string_view object_ref,
                                  const nlohmann::json& patch, const VersionCheck& check,
                                  FieldErrors* errors) {
  FieldErrors local;
  if (errors == nullptr) errors = &local;
  QUARRY_RETURN_IF_ERROR(app_internal::RequireBuilder(change, "change objects"));
  QUARRY_RETURN_IF_ERROR(app_internal::RequireObject(patch, errors));
  QUARRY_ASSIGN_OR_RETURN(App app, app_internal::FindApp(tx, change.org_id, app_ref, false));
  // Lock the app row first (PostgreSQL): schema changes of one app run one
  // at a time, and record writes see them whole.
  QUARRY_RETURN_IF_ERROR(app_internal::BumpSchemaVersion(tx, app.id));
  QUARRY_ASSIGN_OR_RETURN(AppObject before, app_internal::FindObject(tx, app, object_ref, true));
  QUARRY_RETURN_IF_ERROR(app_internal::RunVersionCheck(check, before.version));
  app_internal::RejectUnknownKeys(patch, {"name", "api_name", "description"}, errors);
  if (auto it = patch.find("api_name"); it != patch.end() && *it != before.api_name) {
    errors->Add("api_name",
                "cannot be changed (API clients and automations refer to it); create a new "
                "object instead");
  }
  ObjectSchema schema;
  schema.object = before;
  AppObject& object = schema.object;
  if (auto name = app_internal::ReadName(patch, "name", false, errors)) object.name = *name;
  if (auto description = app_internal::ReadDescription(patch, "description", errors)) {
    object.description = *description;
  }
  if (!errors->empty()) return errors->ToStatus();
  object.version = before.version + 1;
  object.updated_at = NowText(change);
  QUARRY_RETURN_IF_ERROR(
      tx.Exec(kUpdateObject, {object.id, object.name, object.description, object.updated_at}));
  QUARRY_RETURN_IF_ERROR(app_internal::Audit(tx, change, "object.update", "object", object.id,
                                             before.ToJson(), object.ToJson()));
  QUARRY_ASSIGN_OR_RETURN(schema.fields, app_internal::LoadFields(tx, object.id));
  return schema;
}

Status DeleteObject(store::Tx& tx, const ChangeContext& change, std::string_view app_ref,
                    std::string_view object_ref, bool force, const VersionCheck& check) {
  QUARRY_RETURN_IF_ERROR(app_internal::RequireBuilder(change, "delete objects"));
  QUARRY_ASSIGN_OR_RETURN(App app, app_internal::FindApp(tx, change.org_id, app_ref, false));
  // Lock the app row first (PostgreSQL): schema changes of one app run one
  // at a time, and record writes see them whole.
  QUARRY_RETURN_IF_ERROR(app_internal::BumpSchemaVersion(tx, app.id));
  QUARRY_ASSIGN_OR_RETURN(AppObject object, app_internal::FindObject(tx, app, object_ref, true));
  QUARRY_RETURN_IF_ERROR(app_internal::RunVersionCheck(check, object.version));
  if (!force) {
    QUARRY_ASSIGN_OR_RETURN(bool has_records, app_internal::HasRecords(tx, app.id, object.id));
    if (has_records) {
      return FailedPreconditionError("object " + object.api_name +
                                     " has records; delete it with ?force=true to remove it "
                                     "together with its fields and records");
    }
  }
  QUARRY_RETURN_IF_ERROR(tx.Exec(kDeleteObject, {object.id}));
  return app_internal::Audit(tx, change, "object.delete", "object", object.id, object.ToJson(),
                             nullptr);
}

Result<ObjectSchema> GetObject(store::Tx& tx, const std::string& org_id, std::string_view app_ref,
                               std::string_view object_ref) {
  QUARRY_ASSIGN_OR_RETURN(App app, app_internal::FindApp(tx, org_id, app_ref, false));
  ObjectSchema schema;
  QUARRY_ASSIGN_OR_RETURN(schema.object, app_internal::FindObject(tx, app, object_ref, false));
  QUARRY_ASSIGN_OR_RETURN(schema.fields, app_internal::LoadFields(tx, schema.object.id));
  return schema;
}

Result<std::vector<ObjectSchema>> ListObjects(store::Tx& tx, const std::string& org_id,
                                              std::string_view app_ref) {
  QUARRY_ASSIGN_OR_RETURN(App app, app_internal::FindApp(tx, org_id, app_ref, false));
  return LoadObjects(tx, app.id);
}

}  // namespace quarry::domain
