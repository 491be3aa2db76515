#include "domain/app_internal.h"

#include <chrono>
#include <cstdio>
#include <limits>

#include "common/crypto.h"
#include "common/encoding.h"
#include "common/ids.h"
#include "domain/audit.h"

namespace quarry::domain::app_internal {
namespace {

constexpr size_t kMaxNameLength = 100;
constexpr size_t kMaxDescriptionLength = 2000;

constexpr std::string_view kBumpSchemaVersion =
    "UPDATE apps SET schema_version = schema_version + 1 WHERE id = $1";
constexpr std::string_view kAppHasRecords = "SELECT 1 FROM records WHERE app_id = $1 LIMIT 1";
constexpr std::string_view kObjectHasRecords =
    "SELECT 1 FROM records WHERE object_id = $1 LIMIT 1";

std::string TypeName(const nlohmann::json& value) {
  if (value.is_string()) return "a string";
  if (value.is_boolean()) return "a boolean";
  if (value.is_number()) return "a number";
  if (value.is_array()) return "an array";
  if (value.is_object()) return "an object";
  return "null";
}

}  // namespace

App AppFromRow(const store::Row& row) {
  App app;
  app.id = row.Text(0);
  app.org_id = row.Text(1);
  app.name = row.Text(2);
  app.namespace_name = row.Text(3);
  app.handle = row.Text(4);
  app.description = row.Text(5);
  app.version = row.Int(6);
  app.created_by = row.Text(7);
  app.created_at = row.Text(8);
  app.updated_at = row.Text(9);
  return app;
}

AppObject ObjectFromRow(const store::Row& row) {
  AppObject object;
  object.id = row.Text(0);
  object.org_id = row.Text(1);
  object.app_id = row.Text(2);
  object.name = row.Text(3);
  object.api_name = row.Text(4);
  object.description = row.Text(5);
  object.version = row.Int(6);
  object.created_at = row.Text(7);
  object.updated_at = row.Text(8);
  return object;
}

Field FieldFromRow(const store::Row& row) {
  Field field;
  field.id = row.Text(0);
  field.org_id = row.Text(1);
  field.app_id = row.Text(2);
  field.object_id = row.Text(3);
  field.api_name = row.Text(4);
  field.label = row.Text(5);
  // An unknown type name can only come from a newer binary's schema; text is
  // the safest reading (values still round-trip as stored).
  if (!ParseFieldType(row.Text(6), &field.type)) field.type = FieldType::kText;
  field.required = row.Bool(7);
  field.unique = row.Bool(8);
  if (auto text = row.OptText(9)) field.default_value = ParseStoredJson(*text, nullptr);
  nlohmann::json options = ParseStoredJson(row.Text(10), nlohmann::json::array());
  if (options.is_array()) {
    for (const auto& option : options) {
      if (option.is_string()) field.options.push_back(option.get<std::string>());
    }
  }
  field.max_length = row.OptInt(11);
  field.position = row.Int(12);
  field.version = row.Int(13);
  field.created_at = row.Text(14);
  field.updated_at = row.Text(15);
  return field;
}

std::string FormatMillisUtc(WallTime time) {
  using namespace std::chrono;
  const auto ms = time_point_cast<milliseconds>(time);
  const auto day = floor<days>(ms);
  const year_month_day ymd{day};
  const hh_mm_ss<milliseconds> tod{ms - day};
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<int>(tod.hours().count()),
                static_cast<int>(tod.minutes().count()), static_cast<int>(tod.seconds().count()),
                static_cast<int>(tod.subseconds().count()));
  return buffer;
}

std::string NowText(const ChangeContext& change) {
  return FormatMillisUtc(change.clock != nullptr ? change.clock->Now() : SystemClock::Get().Now());
}

Status Audit(store::Tx& tx, const ChangeContext& change, std::string action,
             std::string target_type, std::string target_id, nlohmann::json before,
             nlohmann::json after) {
  return RecordAudit(tx, change.clock != nullptr ? *change.clock : SystemClock::Get(),
                     change.principal,
                     {.org_id = change.org_id,
                      .action = std::move(action),
                      .target_type = std::move(target_type),
                      .target_id = std::move(target_id),
                      .before = std::move(before),
                      .after = std::move(after),
                      .request_id = change.request_id});
}

std::string ActorId(const ChangeContext& change) {
  return change.principal != nullptr ? change.principal->user_id : std::string();
}

Status RequireBuilder(const ChangeContext& change, std::string_view what) {
  if (change.principal == nullptr || change.principal->CanBuild()) return Status::Ok();
  return PermissionDeniedError("only builders and admins may " + std::string(what) +
                               "; ask an organization admin to give you the builder role");
}

Status RunVersionCheck(const VersionCheck& check, int64_t current_version) {
  if (!check) return Status::Ok();
  return check(current_version);
}

nlohmann::json ParseStoredJson(const std::string& text, nlohmann::json fallback) {
  nlohmann::json parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return fallback;
  return parsed;
}

std::string DumpJson(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

size_t Utf8Length(std::string_view text) {
  size_t count = 0;
  for (unsigned char c : text) {
    if ((c & 0xC0) != 0x80) ++count;
  }
  return count;
}

void RejectUnknownKeys(const nlohmann::json& spec, std::initializer_list<std::string_view> known,
                       FieldErrors* errors) {
  if (!spec.is_object()) return;
  std::string known_list;
  for (std::string_view key : known) {
    if (!known_list.empty()) known_list += ", ";
    known_list += key;
  }
  for (const auto& [key, value] : spec.items()) {
    bool found = false;
    for (std::string_view k : known) found = found || k == key;
    if (!found) errors->Add(key, "is not a known property here; the known ones are " + known_list);
  }
}

std::optional<std::string> ReadString(const nlohmann::json& spec, const std::string& key,
                                      bool required, FieldErrors* errors) {
  auto it = spec.find(key);
  if (it == spec.end() || it->is_null()) {
    if (required) errors->Add(key, "is required");
    return std::nullopt;
  }
  if (!it->is_string()) {
    errors->Add(key, "must be a string, not " + TypeName(*it));
    return std::nullopt;
  }
  return it->get<std::string>();
}

std::optional<bool> ReadBool(const nlohmann::json& spec, const std::string& key,
                             FieldErrors* errors) {
  auto it = spec.find(key);
  if (it == spec.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) {
    errors->Add(key, "must be true or false, not " + TypeName(*it));
    return std::nullopt;
  }
  return it->get<bool>();
}

std::optional<int64_t> ReadInt(const nlohmann::json& spec, const std::string& key,
                               FieldErrors* errors) {
  auto it = spec.find(key);
  if (it == spec.end() || it->is_null()) return std::nullopt;
  if (it->is_number_integer()) {
    if (it->is_number_unsigned() &&
        it->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      errors->Add(key, "is too large");
      return std::nullopt;
    }
    return it->get<int64_t>();
  }
  errors->Add(key, "must be an integer, not " + TypeName(*it));
  return std::nullopt;
}

std::optional<std::string> ReadName(const nlohmann::json& spec, const std::string& key,
                                    bool required, FieldErrors* errors) {
  std::optional<std::string> text = ReadString(spec, key, required, errors);
  if (!text) return std::nullopt;
  std::string trimmed(TrimAsciiWhitespace(*text));
  if (trimmed.empty()) {
    errors->Add(key, "must not be empty");
    return std::nullopt;
  }
  if (Utf8Length(trimmed) > kMaxNameLength) {
    errors->Add(key, "must be at most " + std::to_string(kMaxNameLength) + " characters");
    return std::nullopt;
  }
  return trimmed;
}

std::optional<std::string> ReadDescription(const nlohmann::json& spec, const std::string& key,
                                           FieldErrors* errors) {
  std::optional<std::string> text = ReadString(spec, key, false, errors);
  if (!text) return std::nullopt;
  if (Utf8Length(*text) > kMaxDescriptionLength) {
    errors->Add(key, "must be at most " + std::to_string(kMaxDescriptionLength) + " characters");
    return std::nullopt;
  }
  return text;
}

Status RequireObject(const nlohmann::json& spec, FieldErrors* errors) {
  if (spec.is_object()) return Status::Ok();
  errors->Add("body", "must be a JSON object, not " + TypeName(spec));
  return errors->ToStatus();
}

Status BumpSchemaVersion(store::Tx& tx, const std::string& app_id) {
  return tx.Exec(kBumpSchemaVersion, {app_id}).status();
}

Result<bool> HasRecords(store::Tx& tx, const std::string& app_id, const std::string& object_id) {
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows,
                          object_id.empty() ? tx.Query(kAppHasRecords, {app_id})
                                            : tx.Query(kObjectHasRecords, {object_id}));
  return !rows.empty();
}

std::string_view ForUpdate(const store::Tx& tx) {
  return tx.dialect() == store::Dialect::kPostgres ? " FOR UPDATE" : "";
}
std::string_view ForShare(const store::Tx& tx) {
  return tx.dialect() == store::Dialect::kPostgres ? " FOR SHARE" : "";
}

Result<App> FindApp(store::Tx& tx, const std::string& org_id, std::string_view app_ref,
                    bool for_update) {
  // An id-shaped reference is looked up by id; namespaces that look like ids
  // are refused at creation, so the two never collide.
  const bool by_id = IsWellFormedId(app_ref, "app");
  std::string sql = "SELECT " + std::string(kAppColumns) + " FROM apps WHERE org_id = $1 AND " +
                    (by_id ? "id" : "namespace") + " = $2";
  if (for_update) sql += ForUpdate(tx);
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, {org_id, std::string(app_ref)}));
  if (rows.empty()) {
    return NotFoundError("app '" + std::string(app_ref) +
                         "' not found in your organization; list apps with GET /api/v1/apps "
                         "and use an app id or namespace");
  }
  return AppFromRow(rows.rows[0]);
}

Result<AppObject> FindObject(store::Tx& tx, const App& app, std::string_view object_ref,
                             bool for_update) {
  const bool by_id = IsWellFormedId(object_ref, "obj");
  std::string sql = "SELECT " + std::string(kObjectColumns) + " FROM app_objects WHERE app_id = $1 AND " +
                    (by_id ? "id" : "api_name") + " = $2";
  if (for_update) sql += ForUpdate(tx);
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, {app.id, std::string(object_ref)}));
  if (rows.empty()) {
    return NotFoundError("object '" + std::string(object_ref) + "' not found in app " +
                         app.namespace_name + "; list its objects with GET /api/v1/apps/" +
                         app.namespace_name + "/objects");
  }
  return ObjectFromRow(rows.rows[0]);
}

Result<std::vector<Field>> LoadFields(store::Tx& tx, const std::string& object_id) {
  const std::string sql = "SELECT " + std::string(kFieldColumns) +
                          " FROM app_fields WHERE object_id = $1 ORDER BY position, api_name";
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, {object_id}));
  std::vector<Field> fields;
  fields.reserve(rows.size());
  for (const store::Row& row : rows.rows) fields.push_back(FieldFromRow(row));
  return fields;
}

std::string UniqueValueHash(const Field& field, const nlohmann::json& value) {
  // The type is part of the hash so a field recreated with another type never
  // matches old keys; numbers hash their canonical JSON form (3 and 3.0 are
  // normalized to 3 before this for number fields).
  return Sha256Hex(std::string(FieldTypeName(field.type)) + "\n" + DumpJson(value));
}

}  // namespace quarry::domain::app_internal
