#pragma once
// Apps and their objects: the containers records live in.
//
// An app has a name, a namespace (unique in the organization: 2-32 of
// [a-z0-9_], starting with a letter) and a record handle prefix (unique in the
// organization: 2-8 upper-case letters, e.g. "TCK", so records are TCK-1,
// TCK-2, ...), plus a description. Namespace and handle may change only while
// the app has no records. Objects belong to an app (name, api_name unique in
// the app, description) and hold typed fields (fields.h) and records
// (records.h).
//
// References: wherever an app is named by the caller, `app_ref` is its id
// ("app_...") or its namespace; an object is named by id ("obj_...") or
// api_name.
//
// Authorization: reads need a user of the organization; creating, changing
// and deleting apps, objects and fields needs a builder or an admin
// (PermissionDenied otherwise). The API checks the same rule declaratively;
// the domain checks again. Every change is written to the audit log
// (actions app.create|update|delete, object.*, field.*) in the same
// transaction, with the before and after JSON forms.
//
// Schema version: every app carries an internal schema_version, bumped in the
// same transaction as any change to the app, its objects or their fields.
// Record writes compare it with the version the record was validated against
// (see records.h), so cached definitions are safe on any number of nodes.
//
// Thread safety: stateless functions over a Tx.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/status.h"
#include "domain/fields.h"
#include "domain/paging.h"
#include "domain/principal.h"
#include "store/database.h"

namespace quarry::domain {

// Who is changing something, for authorization and the audit log.
struct ChangeContext {
  std::string org_id{};
  const Principal* principal = nullptr;  // nullptr = the system (automations)
  const Clock* clock = nullptr;          // required
  std::string request_id{};

  // A context for a user's request.
  static ChangeContext For(const Principal& principal, const Clock& clock,
                           std::string request_id = {});
  // A context for the system acting in an organization.
  static ChangeContext System(std::string org_id, const Clock& clock);
};

inline constexpr size_t kMaxObjectsPerApp = 100;
inline constexpr size_t kMaxAppsPerOrg = 1000;

struct App {
  std::string id{};  // "app_..."
  std::string org_id{};
  std::string name{};
  std::string namespace_name{};  // JSON "namespace"
  std::string handle{};          // record handle prefix, "TCK"
  std::string description{};
  int64_t version = 1;
  std::string created_by{};
  std::string created_at{};
  std::string updated_at{};

  // {"id","name","namespace","handle","description","version","created_by",
  //  "created_at","updated_at"}
  nlohmann::json ToJson() const;
};

struct AppObject {
  std::string id{};  // "obj_..."
  std::string org_id{};
  std::string app_id{};
  std::string name{};
  std::string api_name{};
  std::string description{};
  int64_t version = 1;
  std::string created_at{};
  std::string updated_at{};

  // {"id","app_id","name","api_name","description","version","created_at","updated_at"}
  nlohmann::json ToJson() const;
};

// An object with its fields (by position).
struct ObjectSchema {
  AppObject object{};
  std::vector<Field> fields{};

  const Field* FindField(std::string_view api_name) const;
  // The object's JSON plus "fields": [...].
  nlohmann::json ToJson() const;
};

// An app with all its objects and fields at one schema version: what record
// validation needs. Immutable once loaded; shared between threads.
struct AppSchema {
  App app{};
  int64_t schema_version = 0;
  std::vector<ObjectSchema> objects{};

  // By id or api_name; nullptr when there is none.
  const ObjectSchema* FindObject(std::string_view object_ref) const;
  const ObjectSchema* FindObjectById(std::string_view object_id) const;
};

// Loads an app, its objects and their fields in `tx`. NotFound naming the
// reference when the organization has no such app.
Result<std::shared_ptr<const AppSchema>> LoadAppSchema(store::Tx& tx, const std::string& org_id,
                                                       std::string_view app_ref);
// The app's current schema version (NotFound when the app is gone). With
// `lock` on PostgreSQL the row is locked FOR SHARE until the transaction
// ends, so no schema change can commit in between.
Result<int64_t> CurrentSchemaVersion(store::Tx& tx, const std::string& org_id,
                                     const std::string& app_id, bool lock);

// Validation rules (exposed for tests and the CLI).
bool IsValidNamespace(std::string_view text);     // [a-z][a-z0-9_]{1,31}
bool IsValidHandlePrefix(std::string_view text);  // [A-Z]{2,8}

// Apps. Create/update take the API's JSON shape:
//   create {"name","namespace","handle","description"?}
//   update any of {"name","namespace","handle","description"}
// Errors: PermissionDenied, NotFound, InvalidArgument with *errors filled,
// AlreadyExists (namespace or handle taken in the organization),
// FailedPrecondition (namespace/handle change on an app with records; delete
// of an app with records without `force`), Aborted (the VersionCheck failed).
Result<App> CreateApp(store::Tx& tx, const ChangeContext& change, const nlohmann::json& spec,
                      FieldErrors* errors);
Result<App> UpdateApp(store::Tx& tx, const ChangeContext& change, std::string_view app_ref,
                      const nlohmann::json& patch, const VersionCheck& check, FieldErrors* errors);
// Deletes the app with its objects, fields and (with `force`) records.
Status DeleteApp(store::Tx& tx, const ChangeContext& change, std::string_view app_ref, bool force,
                 const VersionCheck& check);
Result<App> GetApp(store::Tx& tx, const std::string& org_id, std::string_view app_ref);
// Oldest first (created_at, id).
Result<Page<App>> ListApps(store::Tx& tx, const std::string& org_id, const PageRequest& page);

// Objects: create {"name","api_name","description"?}; update any of
// {"name","description"} (api_name is fixed). Same errors as apps;
// FailedPrecondition also for more than kMaxObjectsPerApp objects.
Result<ObjectSchema> CreateObject(store::Tx& tx, const ChangeContext& change,
                                  std::string_view app_ref, const nlohmann::json& spec,
                                  FieldErrors* errors);
Result<ObjectSchema> UpdateObject(store::Tx& tx, const ChangeContext& change,
                                  std::string_view app_ref, std::string_view object_ref,
                                  const nlohmann::json& patch, const VersionCheck& check,
                                  FieldErrors* errors);
Status DeleteObject(store::Tx& tx, const ChangeContext& change, std::string_view app_ref,
                    std::string_view object_ref, bool force, const VersionCheck& check);
Result<ObjectSchema> GetObject(store::Tx& tx, const std::string& org_id, std::string_view app_ref,
                               std::string_view object_ref);
// By api_name.
Result<std::vector<ObjectSchema>> ListObjects(store::Tx& tx, const std::string& org_id,
                                              std::string_view app_ref);

}  // namespace quarry::domain
