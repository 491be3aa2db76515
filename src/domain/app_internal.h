#pragma once
// Internal helpers shared by apps.cc, fields.cc and records.cc (not part of
// the domain's contract): timestamps, JSON spec readers that collect
// FieldErrors, authorization and version checks, and stored-JSON parsing.

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/status.h"
#include "domain/apps.h"
#include "domain/fields.h"
#include "store/database.h"

namespace quarry::domain::app_internal {

// Column lists matching the row readers below.
inline constexpr std::string_view kAppColumns =
    "id, org_id, name, namespace, handle, description, version, created_by, created_at, "
    "updated_at";
inline constexpr std::string_view kObjectColumns =
    "id, org_id, app_id, name, api_name, description, version, created_at, updated_at";
inline constexpr std::string_view kFieldColumns =
    "id, org_id, app_id, object_id, api_name, label, type, required, is_unique, default_json, "
    "options_json, max_length, position, version, created_at, updated_at";

App AppFromRow(const store::Row& row);
AppObject ObjectFromRow(const store::Row& row);
Field FieldFromRow(const store::Row& row);

// "2026-11-25T10:00:00.123Z".
std::string FormatMillisUtc(WallTime time);
std::string NowText(const ChangeContext& change);

// The acting user's id, "" for the system.
std::string ActorId(const ChangeContext& change);
// PermissionDenied unless the actor is a builder or admin (or the system).
Status RequireBuilder(const ChangeContext& change, std::string_view what);

// Records an audit entry for a change made under `change` (apps, objects,
// fields share it).
Status Audit(store::Tx& tx, const ChangeContext& change, std::string action,
             std::string target_type, std::string target_id, nlohmann::json before,
             nlohmann::json after);

// Runs the optional version check.
Status RunVersionCheck(const VersionCheck& check, int64_t current_version);

// Parses JSON that Quarry stored itself; a corrupt value gives `fallback`.
nlohmann::json ParseStoredJson(const std::string& text,
                               nlohmann::json fallback = nlohmann::json::object());
// Compact, never throws (invalid UTF-8 is replaced).
std::string DumpJson(const nlohmann::json& value);

// Number of Unicode code points in UTF-8 text.
size_t Utf8Length(std::string_view text);

// Spec readers. Each one records a problem under `key` in *errors and
// returns nullopt when the key is present with the wrong type or value;
// nullopt without an error when absent (or null, where null means absent).
// Records "is required" when `required` and absent.
void RejectUnknownKeys(const nlohmann::json& spec, std::initializer_list<std::string_view> known,
                       FieldErrors* errors);
std::optional<std::string> ReadString(const nlohmann::json& spec, const std::string& key,
                                      bool required, FieldErrors* errors);
std::optional<bool> ReadBool(const nlohmann::json& spec, const std::string& key,
                             FieldErrors* errors);
std::optional<int64_t> ReadInt(const nlohmann::json& spec, const std::string& key,
                               FieldErrors* errors);
// A human name: trimmed, 1-100 characters.
std::optional<std::string> ReadName(const nlohmann::json& spec, const std::string& key,
                                    bool required, FieldErrors* errors);
// A description: 0-2000 characters.
std::optional<std::string> ReadDescription(const nlohmann::json& spec, const std::string& key,
                                           FieldErrors* errors);

// InvalidArgument for a spec that is not an object.
Status RequireObject(const nlohmann::json& spec, FieldErrors* errors);

// Bumps the app's schema_version (and nothing else).
Status BumpSchemaVersion(store::Tx& tx, const std::string& app_id);
// Whether the app (or, when object_id is set, the object) has any records.
Result<bool> HasRecords(store::Tx& tx, const std::string& app_id, const std::string& object_id);

// " FOR UPDATE" / " FOR SHARE" on PostgreSQL, "" on SQLite (its single writer
// already serializes write transactions).
std::string_view ForUpdate(const store::Tx& tx);
std::string_view ForShare(const store::Tx& tx);

// The app row for a reference (id or namespace), NotFound otherwise.
Result<App> FindApp(store::Tx& tx, const std::string& org_id, std::string_view app_ref,
                    bool for_update);
// The object row of an app for a reference (id or api_name), NotFound otherwise.
Result<AppObject> FindObject(store::Tx& tx, const App& app, std::string_view object_ref,
                             bool for_update);
// The fields of an object, by position then api_name.
Result<std::vector<Field>> LoadFields(store::Tx& tx, const std::string& object_id);

// Hash of a unique value for record_unique_values.
std::string UniqueValueHash(const Field& field, const nlohmann::json& value);

}  // namespace quarry::domain::app_internal
