#include "domain/records.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <set>

#include "common/encoding.h"
#include "common/ids.h"
#include "domain/app_internal.h"

namespace quarry::domain {
namespace {

using app_internal::DumpJson;
using app_internal::NowText;
using app_internal::ParseStoredJson;
using store::Dialect;

constexpr std::string_view kRecordColumns =
    "id, org_id, app_id, object_id, number, handle, values_json, version, created_by, "
    "updated_by, created_at, updated_at";
// The handle counter: one row lock per app on PostgreSQL, the single writer on
// SQLite. Returns the schema version so a create validated against a cached
// schema is refused when the schema moved on.
constexpr std::string_view kNextRecordNumber =
    "UPDATE apps SET record_seq = record_seq + 1 WHERE id = $1 AND org_id = $2 "
    "RETURNING record_seq, schema_version, handle";
constexpr std::string_view kInsertRecord =
    "INSERT INTO records (id, org_id, app_id, object_id, number, handle, values_json, version, "
    "created_by, updated_by, created_at, updated_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8, $9, $9)";
constexpr std::string_view kUpdateRecord =
    "UPDATE records SET values_json = $2, version = version + 1, updated_by = $3, "
    "updated_at = $4 WHERE id = $1 AND version = $5";
constexpr std::string_view kDeleteRecord = "DELETE FROM records WHERE id = $1";
constexpr std::string_view kUserInOrg = "SELECT 1 FROM users WHERE id = $1 AND org_id = $2";
constexpr std::string_view kUniqueOwner =
    "SELECT r.id, r.handle FROM record_unique_values u JOIN records r ON r.id = u.record_id "
    "WHERE u.field_id = $1 AND u.value_hash = $2";
constexpr std::string_view kInsertUnique =
    "INSERT INTO record_unique_values (field_id, value_hash, record_id) VALUES ($1, $2, $3)";
constexpr std::string_view kDeleteUnique =
    "DELETE FROM record_unique_values WHERE field_id = $1 AND record_id = $2";

constexpr size_t kMaxInValues = 100;
constexpr int kMaxSchemaRetries = 3;

Record RecordFromRow(const store::Row& row) {
  Record record;
  record.id = row.Text(0);
  record.org_id = row.Text(1);
  record.app_id = row.Text(2);
  record.object_id = row.Text(3);
  record.number = row.Int(4);
  record.handle = row.Text(5);
  record.values = ParseStoredJson(row.Text(6));
  if (!record.values.is_object()) record.values = nlohmann::json::object();
  record.version = row.Int(7);
  record.created_by = row.Text(8);
  record.updated_by = row.Text(9);
  record.created_at = row.Text(10);
  record.updated_at = row.Text(11);
  return record;
}

std::string FieldNames(const ObjectSchema& object) {
  std::string out;
  for (const Field& field : object.fields) {
    if (!out.empty()) out += ", ";
    out += field.api_name;
  }
  return out.empty() ? "(none yet)" : out;
}

bool IsTextKind(FieldType type) { return type == FieldType::kText || type == FieldType::kLongText; }

// The difference between two value sets (either may be empty).
RecordChange DiffRecords(RecordChangeKind kind, std::optional<Record> before,
                         std::optional<Record> after) {
  RecordChange change;
  change.kind = kind;
  const nlohmann::json empty = nlohmann::json::object();
  const nlohmann::json& old_values = before ? before->values : empty;
  const nlohmann::json& new_values = after ? after->values : empty;
  std::set<std::string> keys;
  for (const auto& [key, value] : old_values.items()) keys.insert(key);
  for (const auto& [key, value] : new_values.items()) keys.insert(key);
  for (const std::string& key : keys) {
    auto old_it = old_values.find(key);
    auto new_it = new_values.find(key);
    const nlohmann::json old_value = old_it != old_values.end() ? *old_it : nlohmann::json();
    const nlohmann::json new_value = new_it != new_values.end() ? *new_it : nlohmann::json();
    if (old_value == new_value) continue;
    change.changed_fields.push_back(key);
    change.before_values[key] = old_value;
    change.after_values[key] = new_value;
  }
  change.before = std::move(before);
  change.after = std::move(after);
  return change;
}

// Checks that user values name users of the organization (only the values in
// `keys`).
Status CheckUsers(store::Tx& tx, const std::string& org_id, const ObjectSchema& object,
                  const nlohmann::json& values, const std::vector<std::string>& keys,
                  FieldErrors* errors) {
  for (const std::string& key : keys) {
    const Field* field = object.FindField(key);
    if (field == nullptr || field->type != FieldType::kUser) continue;
    auto it = values.find(key);
    if (it == values.end() || !it->is_string()) continue;
    QUARRY_ASSIGN_OR_RETURN(store::Rows rows,
                            tx.Query(kUserInOrg, {it->get<std::string>(), org_id}));
    if (rows.empty()) {
      errors->Add(key, "is not a user of this organization; use a user id from GET /api/v1/users");
    }
  }
  return errors->ToStatus();
}

// Keeps record_unique_values in step for the unique fields among `keys`.
Status UpdateUniqueValues(store::Tx& tx, const ObjectSchema& object, const std::string& record_id,
                          const nlohmann::json& values, const std::vector<std::string>& keys,
                          bool had_values, FieldErrors* errors) {
  struct Claim {
    const Field* field;
    std::string hash;
  };
  std::vector<Claim> claims;
  for (const std::string& key : keys) {
    const Field* field = object.FindField(key);
    if (field == nullptr || !field->unique) continue;
    if (had_values) QUARRY_RETURN_IF_ERROR(tx.Exec(kDeleteUnique, {field->id, record_id}));
    auto it = values.find(key);
    if (it == values.end() || it->is_null()) continue;
    std::string hash = app_internal::UniqueValueHash(*field, *it);
    QUARRY_ASSIGN_OR_RETURN(store::Rows owner, tx.Query(kUniqueOwner, {field->id, hash}));
    if (!owner.empty() && owner.rows[0].Text(0) != record_id) {
      errors->Add(key, "must be unique; record " + owner.rows[0].Text(1) +
                           " already has this value");
      continue;
    }
    claims.push_back({field, std::move(hash)});
  }
  if (!errors->empty()) {
    return Status(StatusCode::kAlreadyExists,
                  "a unique field's value is already used by another record: " +
                      errors->ToStatus().message());
  }
  for (const Claim& claim : claims) {
    Status inserted = tx.Exec(kInsertUnique, {claim.field->id, claim.hash, record_id}).status();
    if (inserted.code() == StatusCode::kAlreadyExists) {
      // Another transaction claimed it between the check and the insert.
      errors->Add(claim.field->api_name, "must be unique; another record just took this value");
      return Status(StatusCode::kAlreadyExists, "field " + claim.field->api_name +
                                                    " must be unique and its value was just taken "
                                                    "by another record; choose another value");
    }
    QUARRY_RETURN_IF_ERROR(inserted);
  }
  return Status::Ok();
}

Status StaleSchemaError(const AppSchema& schema) {
  return Status(StatusCode::kAborted, "the fields of app " + schema.app.namespace_name +
                                          " changed while the record was being saved; reload "
                                          "them and retry");
}

// Finds a record of the app by id or handle.
Result<Record> FindRecord(store::Tx& tx, const AppSchema& schema, std::string_view record_ref,
                          bool for_update) {
  // One statement per kind of reference (g++ 12 -O3 warns about a Value
  // that is a string on one branch and an integer on the other).
  std::string sql;
  store::Params params;
  if (IsWellFormedId(record_ref, "rec")) {
    sql = "SELECT " + std::string(kRecordColumns) + " FROM records WHERE app_id = $1 AND id = $2";
    params = {schema.app.id, std::string(record_ref)};
  } else {
    const size_t dash = record_ref.rfind('-');
    int64_t number = 0;
    bool parsed = dash != std::string_view::npos && dash + 1 < record_ref.size() &&
                  record_ref.size() - dash - 1 <= 18;
    if (parsed) {
      for (char c : record_ref.substr(dash + 1)) {
        if (c < '0' || c > '9') parsed = false;
        number = number * 10 + (c - '0');
      }
    }
    std::string prefix(parsed ? record_ref.substr(0, dash) : std::string_view());
    std::transform(prefix.begin(), prefix.end(), prefix.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    if (!parsed || prefix != schema.app.handle) {
      return NotFoundError("record '" + std::string(record_ref) + "' not found in app " +
                           schema.app.namespace_name + "; use a record id (rec_...) or a handle " +
                           "like " + schema.app.handle + "-1");
    }
    sql = "SELECT " + std::string(kRecordColumns) + " FROM records WHERE app_id = $1 AND number = $2";
    params = {schema.app.id, number};
  }
  if (for_update) sql += app_internal::ForUpdate(tx);
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, params));
  if (rows.empty()) {
    return NotFoundError("record " + std::string(record_ref) + " not found in app " +
                         schema.app.namespace_name +
                         " (it may have been deleted); list records with GET /api/v1/apps/" +
                         schema.app.namespace_name + "/objects/{object}/records");
  }
  return RecordFromRow(rows.rows[0]);
}

// Writes a validated record (`values`, serialized as `values_text`) and
// returns it without its values (the caller moves them in: the write may run
// on SQLite's single writer thread, where every copy counts). *stale is set
// (with Aborted) when the app's schema version differs from `schema`'s or the
// app is gone.
Result<Record> InsertRecord(store::Tx& tx, const ChangeContext& change, const AppSchema& schema,
                            const ObjectSchema& object, const nlohmann::json& values,
                            const std::string& values_text, FieldErrors* errors, bool* stale) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : values.items()) keys.push_back(key);
  QUARRY_RETURN_IF_ERROR(CheckUsers(tx, change.org_id, object, values, keys, errors));

  QUARRY_ASSIGN_OR_RETURN(store::Rows counter,
                          tx.Query(kNextRecordNumber, {schema.app.id, change.org_id}));
  if (counter.empty() || counter.rows[0].Int(1) != schema.schema_version) {
    *stale = true;
    if (counter.empty()) {
      return NotFoundError("app " + schema.app.namespace_name +
                           " no longer exists; list apps with GET /api/v1/apps");
    }
    return StaleSchemaError(schema);
  }
  Record record;
  record.id = NewId("rec");
  record.org_id = change.org_id;
  record.app_id = schema.app.id;
  record.object_id = object.object.id;
  record.number = counter.rows[0].Int(0);
  record.handle = counter.rows[0].Text(2) + "-" + std::to_string(record.number);
  record.created_by = record.updated_by = app_internal::ActorId(change);
  record.created_at = record.updated_at = NowText(change);
  QUARRY_RETURN_IF_ERROR(tx.Exec(
      kInsertRecord, {record.id, record.org_id, record.app_id, record.object_id, record.number,
                      record.handle, values_text, record.created_by, record.created_at}));
  QUARRY_RETURN_IF_ERROR(UpdateUniqueValues(tx, object, record.id, values, keys, false, errors));
  return record;
}

// Updates a record whose app schema the caller has verified in `tx`.
Result<RecordChange> UpdateVerified(store::Tx& tx, const ChangeContext& change,
                                    const AppSchema& schema, std::string_view record_ref,
                                    const nlohmann::json& changes, const VersionCheck& check,
                                    FieldErrors* errors) {
  QUARRY_ASSIGN_OR_RETURN(Record before, FindRecord(tx, schema, record_ref, true));
  QUARRY_RETURN_IF_ERROR(app_internal::RunVersionCheck(check, before.version));
  const ObjectSchema* object = schema.FindObjectById(before.object_id);
  if (object == nullptr) return StaleSchemaError(schema);
  QUARRY_ASSIGN_OR_RETURN(nlohmann::json merged,
                          ValidateRecordValues(*object, changes, &before.values, errors));
  Record after = before;
  after.values = std::move(merged);
  RecordChange diff = DiffRecords(RecordChangeKind::kUpdated, before, after);
  if (diff.changed_fields.empty()) return diff;  // nothing to write; version unchanged
  QUARRY_RETURN_IF_ERROR(
      CheckUsers(tx, change.org_id, *object, after.values, diff.changed_fields, errors));
  QUARRY_RETURN_IF_ERROR(UpdateUniqueValues(tx, *object, after.id, after.values,
                                            diff.changed_fields, true, errors));
  after.version = before.version + 1;
  after.updated_by = app_internal::ActorId(change);
  after.updated_at = NowText(change);
  QUARRY_ASSIGN_OR_RETURN(int64_t updated,
                          tx.Exec(kUpdateRecord, {after.id, DumpJson(after.values),
                                                  after.updated_by, after.updated_at,
                                                  before.version}));
  if (updated != 1) {
    return Status(StatusCode::kAborted, "record " + before.handle +
                                            " changed while it was being updated; fetch it "
                                            "again and retry");
  }
  diff.after = std::move(after);
  return diff;
}

Result<RecordChange> DeleteVerified(store::Tx& tx, const ChangeContext& change,
                                    const AppSchema& schema, std::string_view record_ref,
                                    const VersionCheck& check) {
  QUARRY_RETURN_IF_ERROR(app_internal::RequireBuilder(change, "delete records"));
  QUARRY_ASSIGN_OR_RETURN(Record before, FindRecord(tx, schema, record_ref, true));
  QUARRY_RETURN_IF_ERROR(app_internal::RunVersionCheck(check, before.version));
  QUARRY_RETURN_IF_ERROR(tx.Exec(kDeleteRecord, {before.id}));
  return DiffRecords(RecordChangeKind::kDeleted, std::move(before), std::nullopt);
}

// ---------------------------------------------------------------------------
// Listing
// ---------------------------------------------------------------------------

// How a sort or filter key compares in SQL.
enum class ValueClass { kText, kNumeric, kBoolean };

struct Operand {
  std::string expr;        // SQL expression
  ValueClass value_class;  // how values bind
  bool nullable = false;
  const Field* field = nullptr;  // nullptr for the record's own columns
  bool date_time = false;        // built-in timestamps and date_time fields
};

ValueClass ClassOf(FieldType type) {
  switch (type) {
    case FieldType::kNumber:
    case FieldType::kDecimal:
      return ValueClass::kNumeric;
    case FieldType::kCheckbox:
      return ValueClass::kBoolean;
    default:
      return ValueClass::kText;
  }
}

class SqlBuilder {
 public:
  explicit SqlBuilder(Dialect dialect) : dialect_(dialect) {}
  Dialect dialect() const { return dialect_; }
  store::Params& params() { return params_; }

  std::string Raw(store::Value value) {
    params_.push_back(std::move(value));
    return "$" + std::to_string(params_.size());
  }

  // A bound, typed value for comparison with an Operand of `value_class`.
  std::string Typed(ValueClass value_class, const nlohmann::json& value) {
    if (dialect_ == Dialect::kSqlite) {
      switch (value_class) {
        case ValueClass::kNumeric:
          if (value.is_number_integer()) return Raw(value.get<int64_t>());
          return Raw(value.get<double>());
        case ValueClass::kBoolean:
          return Raw(int64_t{value.get<bool>() ? 1 : 0});
        case ValueClass::kText:
          return Raw(value.get<std::string>());
      }
    }
    switch (value_class) {
      case ValueClass::kNumeric:
        return "CAST(" + Raw(DumpJson(value)) + " AS numeric)";
      case ValueClass::kBoolean:
        return "CAST(" + Raw(std::string(value.get<bool>() ? "true" : "false")) + " AS boolean)";
      case ValueClass::kText:
        return "CAST(" + Raw(value.get<std::string>()) + " AS text)";
    }
    return Raw(store::Null());
  }

  // The SQL for a field's value in values_json, NULL when absent or of
  // another JSON type (typed, so comparisons are numeric / boolean / text).
  std::string FieldExpr(const Field& field) {
    const ValueClass value_class = ClassOf(field.type);
    if (dialect_ == Dialect::kSqlite) {
      const std::string path = Raw("$." + field.api_name);
      std::string types;
      switch (value_class) {
        case ValueClass::kNumeric: types = "'integer', 'real'"; break;
        case ValueClass::kBoolean: types = "'true', 'false'"; break;
        case ValueClass::kText: types = "'text'"; break;
      }
      return "(CASE WHEN json_type(values_json, " + path + ") IN (" + types +
             ") THEN json_extract(values_json, " + path + ") END)";
    }
    const std::string key = "CAST(" + Raw(field.api_name) + " AS text)";
    const std::string doc = "CAST(values_json AS jsonb)";
    switch (value_class) {
      case ValueClass::kNumeric:
        return "(CASE WHEN jsonb_typeof(" + doc + " -> " + key + ") = 'number' THEN CAST(" + doc +
               " ->> " + key + " AS numeric) END)";
      case ValueClass::kBoolean:
        return "(CASE WHEN jsonb_typeof(" + doc + " -> " + key + ") = 'boolean' THEN CAST(" +
               doc + " ->> " + key + " AS boolean) END)";
      case ValueClass::kText:
        return "(CASE WHEN jsonb_typeof(" + doc + " -> " + key + ") = 'string' THEN " + doc +
               " ->> " + key + " END)";
    }
    return "NULL";
  }

 private:
  Dialect dialect_;
  store::Params params_;
};

// Resolves a sort or filter key. Errors go to *errors under `param`.
std::optional<Operand> ResolveOperand(SqlBuilder& sql, const ObjectSchema& object,
                                      const std::string& key, const std::string& param,
                                      FieldErrors* errors) {
  if (key == "created_at" || key == "updated_at") {
    return Operand{key, ValueClass::kText, false, nullptr, true};
  }
  if (key == "created_by" || key == "updated_by") {
    return Operand{key, ValueClass::kText, false, nullptr, false};
  }
  const Field* field = object.FindField(key);
  if (field == nullptr) {
    errors->Add(param, "names '" + key + "', which is not a field of object " +
                           object.object.api_name + "; its fields are " + FieldNames(object) +
                           " (and created_at, updated_at, created_by, updated_by)");
    return std::nullopt;
  }
  if (!FieldTypeIsFilterable(field->type)) {
    errors->Add(param, "names json field " + key + ", which cannot be filtered or sorted");
    return std::nullopt;
  }
  return Operand{sql.FieldExpr(*field), ClassOf(field->type), true, field,
                 field->type == FieldType::kDateTime};
}

// Parses one filter or cursor value for an operand.
bool ParseOperandValue(const Operand& operand, std::string_view text, nlohmann::json* value,
                       std::string* error) {
  if (operand.date_time) {
    std::string utc;
    if (NormalizeDateTime(text, &utc)) {
      *value = utc;
      return true;
    }
    // A bare date means its first millisecond (UTC).
    if (IsValidDate(text)) {
      *value = std::string(text) + "T00:00:00.000Z";
      return true;
    }
    *error = "must be an ISO 8601 date and time (e.g. 2026-11-25T10:00:00Z) or a date";
    return false;
  }
  if (operand.field == nullptr) {
    *value = std::string(text);
    return true;
  }
  return ParseFieldValueText(*operand.field, text, value, error);
}

bool OpAllowed(const Operand& operand, FilterOp op, std::string* error) {
  const FieldType type = operand.field != nullptr ? operand.field->type : FieldType::kText;
  switch (op) {
    case FilterOp::kEq:
    case FilterOp::kNe:
    case FilterOp::kIn:
      return true;
    case FilterOp::kContains:
      if (operand.field != nullptr && IsTextKind(type)) return true;
      *error = "uses contains, which applies only to text and long_text fields";
      return false;
    default:
      if (operand.field == nullptr) {
        if (operand.date_time) return true;
        *error = "compares " + std::string(FilterOpName(op)) +
                 " on a user id; use eq, ne or in";
        return false;
      }
      if (type == FieldType::kCheckbox || type == FieldType::kDropdown ||
          type == FieldType::kUser) {
        *error = "uses " + std::string(FilterOpName(op)) + ", which " +
                 std::string(FieldTypeName(type)) + " fields do not support; use eq, ne or in";
        return false;
      }
      return true;
  }
}

nlohmann::json RecordSortValue(const Record& record, const std::string& key) {
  if (key == "created_at") return record.created_at;
  if (key == "updated_at") return record.updated_at;
  if (key == "created_by") return record.created_by;
  if (key == "updated_by") return record.updated_by;
  auto it = record.values.find(key);
  return it != record.values.end() ? *it : nlohmann::json();
}

std::string CursorSortKey(const RecordQuery& query) {
  return (query.descending ? "-" : "") + query.sort;
}

}  // namespace

// ---------------------------------------------------------------------------

std::string_view RecordChangeKindName(RecordChangeKind kind) {
  switch (kind) {
    case RecordChangeKind::kCreated: return "created";
    case RecordChangeKind::kUpdated: return "updated";
    case RecordChangeKind::kDeleted: return "deleted";
  }
  return "created";
}

nlohmann::json Record::ToJson() const {
  return {
      {"id", id},
      {"handle", handle},
      {"number", number},
      {"app_id", app_id},
      {"object_id", object_id},
      {"values", values},
      {"version", version},
      {"created_by", created_by},
      {"updated_by", updated_by},
      {"created_at", created_at},
      {"updated_at", updated_at},
  };
}

std::string_view FilterOpName(FilterOp op) {
  switch (op) {
    case FilterOp::kEq: return "eq";
    case FilterOp::kNe: return "ne";
    case FilterOp::kGt: return "gt";
    case FilterOp::kLt: return "lt";
    case FilterOp::kGte: return "gte";
    case FilterOp::kLte: return "lte";
    case FilterOp::kContains: return "contains";
    case FilterOp::kIn: return "in";
  }
  return "eq";
}

bool ParseFilterOp(std::string_view text, FilterOp* op) {
  for (FilterOp candidate : {FilterOp::kEq, FilterOp::kNe, FilterOp::kGt, FilterOp::kLt,
                             FilterOp::kGte, FilterOp::kLte, FilterOp::kContains, FilterOp::kIn}) {
    if (FilterOpName(candidate) == text) {
      *op = candidate;
      return true;
    }
  }
  return false;
}

Result<nlohmann::json> ValidateRecordValues(const ObjectSchema& object, const nlohmann::json& input,
                                            const nlohmann::json* current, FieldErrors* errors) {
  FieldErrors local;
  if (errors == nullptr) errors = &local;
  if (!input.is_object()) {
    errors->Add("values", "must be a JSON object of field api names to values");
    return errors->ToStatus();
  }
  const bool creating = current == nullptr;
  nlohmann::json result = creating ? nlohmann::json::object() : *current;
  if (!result.is_object()) result = nlohmann::json::object();
  for (const auto& [key, value] : input.items()) {
    const Field* field = object.FindField(key);
    if (field == nullptr) {
      errors->Add(key, "is not a field of object " + object.object.api_name + "; its fields are " +
                           FieldNames(object));
      continue;
    }
    const bool empty_text = value.is_string() && value.get_ref<const std::string&>().empty() &&
                            IsTextKind(field->type);
    if (value.is_null() || empty_text) {
      if (field->required) {
        errors->Add(key, creating ? "is required" : "is required and cannot be cleared");
        continue;
      }
      if (value.is_null()) {
        result.erase(key);
        continue;
      }
    }
    nlohmann::json normalized;
    std::string error;
    if (!NormalizeFieldValue(*field, value, &normalized, &error)) {
      errors->Add(key, error);
      continue;
    }
    result[key] = std::move(normalized);
  }
  if (creating) {
    for (const Field& field : object.fields) {
      if (!input.contains(field.api_name) && !field.default_value.is_null()) {
        result[field.api_name] = field.default_value;
      }
      if (field.required && !result.contains(field.api_name) && !errors->Has(field.api_name)) {
        errors->Add(field.api_name, "is required");
      }
    }
  }
  if (errors->empty() && DumpJson(result).size() > kMaxRecordValuesBytes) {
    errors->Add("values", "must total at most " + std::to_string(kMaxRecordValuesBytes) +
                              " bytes of JSON");
  }
  if (!errors->empty()) return errors->ToStatus();
  return result;
}

Result<RecordChange> CreateRecordInTx(store::Tx& tx, const ChangeContext& change,
                                      const AppSchema& schema, const ObjectSchema& object,
                                      const nlohmann::json& values, FieldErrors* errors) {
  FieldErrors local;
  if (errors == nullptr) errors = &local;
  QUARRY_ASSIGN_OR_RETURN(nlohmann::json normalized,
                          ValidateRecordValues(object, values, nullptr, errors));
  bool stale = false;
  QUARRY_ASSIGN_OR_RETURN(
      Record record,
      InsertRecord(tx, change, schema, object, normalized, DumpJson(normalized), errors, &stale));
  record.values = std::move(normalized);
  return DiffRecords(RecordChangeKind::kCreated, std::nullopt, std::move(record));
}

Result<RecordChange> UpdateRecordInTx(store::Tx& tx, const ChangeContext& change,
                                      const AppSchema& schema, std::string_view record_ref,
                                      const nlohmann::json& changes, const VersionCheck& check,
                                      FieldErrors* errors) {
  FieldErrors local;
  if (errors == nullptr) errors = &local;
  QUARRY_ASSIGN_OR_RETURN(int64_t version,
                          CurrentSchemaVersion(tx, change.org_id, schema.app.id, true));
  if (version != schema.schema_version) return StaleSchemaError(schema);
  return UpdateVerified(tx, change, schema, record_ref, changes, check, errors);
}

Result<RecordChange> DeleteRecordInTx(store::Tx& tx, const ChangeContext& change,
                                      const AppSchema& schema, std::string_view record_ref,
                                      const VersionCheck& check) {
  return DeleteVerified(tx, change, schema, record_ref, check);
}

Result<Record> GetRecordInTx(store::Tx& tx, const AppSchema& schema, std::string_view record_ref) {
  return FindRecord(tx, schema, record_ref, false);
}

Result<RecordQuery> ParseRecordQuery(const std::multimap<std::string, std::string>& params,
                                     FieldErrors* errors) {
  FieldErrors local;
  if (errors == nullptr) errors = &local;
  RecordQuery query;
  std::string limit, cursor;
  for (const auto& [key, value] : params) {
    if (key == "limit") {
      limit = value;
    } else if (key == "cursor") {
      cursor = value;
    } else if (key == "sort") {
      std::string_view sort = value;
      query.descending = !sort.empty() && sort[0] == '-';
      if (query.descending) sort.remove_prefix(1);
      if (sort.empty()) {
        errors->Add("sort", "must name a field or created_at / updated_at, with - for descending");
      }
      query.sort = std::string(sort);
    } else if (key.rfind("filter", 0) == 0) {
      // filter[<field>] or filter[<field>][<op>]
      std::string_view rest = std::string_view(key).substr(6);
      RecordFilter filter;
      filter.param = key;
      filter.value = value;
      bool ok = rest.size() > 2 && rest[0] == '[';
      size_t close = ok ? rest.find(']') : std::string_view::npos;
      ok = ok && close != std::string_view::npos && close > 1;
      if (ok) {
        filter.field = std::string(rest.substr(1, close - 1));
        rest.remove_prefix(close + 1);
        if (!rest.empty()) {
          ok = rest.size() > 2 && rest.front() == '[' && rest.back() == ']' &&
               rest.find(']') == rest.size() - 1;
          if (ok && !ParseFilterOp(rest.substr(1, rest.size() - 2), &filter.op)) {
            errors->Add(key, "uses an unknown operator; use one of eq, ne, gt, lt, gte, lte, "
                             "contains, in");
            continue;
          }
        }
      }
      if (!ok) {
        errors->Add(key, "is not a filter of the form filter[field]=value or "
                         "filter[field][op]=value");
        continue;
      }
      query.filters.push_back(std::move(filter));
    }
  }
  // The cursor is checked where it is decoded (it must match the sort).
  Result<PageRequest> page = ParsePageRequest(limit, "");
  if (!page.ok()) {
    errors->Add("limit", page.status().message());
  } else {
    query.page = *page;
    query.page.cursor = cursor;
  }
  if (!errors->empty()) return errors->ToStatus("query parameters");
  return query;
}

Result<Page<Record>> ListRecordsInTx(store::Tx& tx, const AppSchema& schema,
                                     const ObjectSchema& object, const RecordQuery& query,
                                     FieldErrors* errors) {
  FieldErrors local;
  if (errors == nullptr) errors = &local;
  SqlBuilder sql(tx.dialect());
  std::string where = "org_id = " + sql.Raw(schema.app.org_id) +
                      " AND object_id = " + sql.Raw(object.object.id);
  for (const RecordFilter& filter : query.filters) {
    std::optional<Operand> operand = ResolveOperand(sql, object, filter.field, filter.param, errors);
    if (!operand) continue;
    std::string error;
    if (!OpAllowed(*operand, filter.op, &error)) {
      errors->Add(filter.param, error);
      continue;
    }
    std::vector<std::string_view> texts;
    if (filter.op == FilterOp::kIn) {
      std::string_view rest = filter.value;
      while (true) {
        const size_t comma = rest.find(',');
        texts.push_back(rest.substr(0, comma));
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
      }
      if (texts.size() > kMaxInValues) {
        errors->Add(filter.param, "lists more than " + std::to_string(kMaxInValues) + " values");
        continue;
      }
    } else {
      texts.push_back(filter.value);
    }
    std::vector<std::string> bound;
    for (std::string_view text : texts) {
      nlohmann::json value;
      if (!ParseOperandValue(*operand, text, &value, &error)) {
        errors->Add(filter.param, "value '" + std::string(text) + "' " + error);
        break;
      }
      bound.push_back(sql.Typed(operand->value_class, value));
    }
    if (errors->Has(filter.param)) continue;
    const std::string& x = operand->expr;
    switch (filter.op) {
      case FilterOp::kEq: where += " AND " + x + " = " + bound[0]; break;
      case FilterOp::kNe: where += " AND (" + x + " IS NULL OR " + x + " <> " + bound[0] + ")"; break;
      case FilterOp::kGt: where += " AND " + x + " > " + bound[0]; break;
      case FilterOp::kLt: where += " AND " + x + " < " + bound[0]; break;
      case FilterOp::kGte: where += " AND " + x + " >= " + bound[0]; break;
      case FilterOp::kLte: where += " AND " + x + " <= " + bound[0]; break;
      case FilterOp::kContains:
        where += sql.dialect() == Dialect::kSqlite ? " AND instr(" + x + ", " + bound[0] + ") > 0"
                                                   : " AND strpos(" + x + ", " + bound[0] + ") > 0";
        break;
      case FilterOp::kIn: {
        std::string list;
        for (const std::string& b : bound) list += (list.empty() ? "" : ", ") + b;
        where += " AND " + x + " IN (" + list + ")";
        break;
      }
    }
  }
  std::optional<Operand> sort = ResolveOperand(sql, object, query.sort, "sort", errors);
  if (!errors->empty()) return errors->ToStatus("query parameters");

  const std::string& x = sort->expr;
  const char* dir = query.descending ? "DESC" : "ASC";
  const char* after = query.descending ? "<" : ">";
  if (!query.page.cursor.empty()) {
    std::string sort_value, number_text;
    if (Status decoded = DecodeCursor(query.page.cursor, &sort_value, &number_text); !decoded.ok()) {
      errors->Add("cursor", decoded.message());
      return errors->ToStatus("query parameters");
    }
    const std::string expected_key = CursorSortKey(query) + ":";
    if (sort_value.rfind(expected_key, 0) != 0) {
      errors->Add("cursor", "belongs to a list with another sort; start again without a cursor");
      return errors->ToStatus("query parameters");
    }
    const nlohmann::json value =
        ParseStoredJson(sort_value.substr(expected_key.size()), nlohmann::json());
    int64_t number = 0;
    auto [end, ec] =
        std::from_chars(number_text.data(), number_text.data() + number_text.size(), number);
    if (ec != std::errc() || end != number_text.data() + number_text.size()) {
      errors->Add("cursor", "is not one this server issued; start again without a cursor");
      return errors->ToStatus("query parameters");
    }
    const std::string n = sql.Raw(number);
    if (value.is_null()) {
      // Records without a value come last ascending, first descending.
      where += query.descending ? " AND (" + x + " IS NOT NULL OR number < " + n + ")"
                                : " AND (" + x + " IS NULL AND number > " + n + ")";
    } else {
      const bool value_ok = sort->value_class == ValueClass::kNumeric   ? value.is_number()
                            : sort->value_class == ValueClass::kBoolean ? value.is_boolean()
                                                                        : value.is_string();
      if (!value_ok) {
        errors->Add("cursor", "is not one this server issued; start again without a cursor");
        return errors->ToStatus("query parameters");
      }
      const std::string v = sql.Typed(sort->value_class, value);
      std::string keyset = x + " " + after + " " + v + " OR (" + x + " = " + v + " AND number " +
                           after + " " + n + ")";
      if (sort->nullable) {
        keyset = query.descending ? x + " IS NOT NULL AND (" + keyset + ")"
                                  : x + " IS NULL OR " + keyset;
      }
      where += " AND (" + keyset + ")";
    }
  }
  std::string order = " ORDER BY ";
  if (sort->nullable) order += "(" + x + " IS NULL) " + dir + ", ";
  order += x + " " + dir + ", number " + dir;
  const std::string statement = "SELECT " + std::string(kRecordColumns) + " FROM records WHERE " +
                                where + order + " LIMIT " + std::to_string(query.page.limit + 1);
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(statement, sql.params()));
  Page<Record> page;
  for (const store::Row& row : rows.rows) {
    if (page.items.size() == static_cast<size_t>(query.page.limit)) {
      const Record& last = page.items.back();
      page.next_cursor =
          EncodeCursor(CursorSortKey(query) + ":" + DumpJson(RecordSortValue(last, query.sort)),
                       std::to_string(last.number));
      break;
    }
    page.items.push_back(RecordFromRow(row));
  }
  return page;
}

// ---------------------------------------------------------------------------
// RecordService
// ---------------------------------------------------------------------------

namespace {
std::string CacheKey(const std::string& org_id, std::string_view app_ref) {
  std::string key = org_id;
  key += '\x1f';
  key += app_ref;
  return key;
}
}  // namespace

RecordService::RecordService(std::shared_ptr<store::Database> db,
                             std::shared_ptr<const Clock> clock)
    : db_(std::move(db)), clock_(std::move(clock)) {}

std::shared_ptr<const AppSchema> RecordService::Cached(const std::string& org_id,
                                                       std::string_view app_ref) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = cache_.find(CacheKey(org_id, app_ref));
  return it != cache_.end() ? it->second : nullptr;
}

void RecordService::Remember(const std::string& org_id, std::string_view app_ref,
                             std::shared_ptr<const AppSchema> schema) {
  std::lock_guard<std::mutex> lock(mutex_);
  // A full cache starts over: simple, bounded, and refilled on demand.
  if (cache_.size() >= kMaxCachedApps) cache_.clear();
  cache_[CacheKey(org_id, app_ref)] = std::move(schema);
}

void RecordService::Forget(const std::string& org_id, std::string_view app_ref) {
  std::lock_guard<std::mutex> lock(mutex_);
  cache_.erase(CacheKey(org_id, app_ref));
}

Result<std::shared_ptr<const AppSchema>> RecordService::CurrentSchema(store::Tx& tx,
                                                                      const std::string& org_id,
                                                                      std::string_view app_ref,
                                                                      bool lock) {
  std::shared_ptr<const AppSchema> schema = Cached(org_id, app_ref);
  for (int attempt = 0; attempt < kMaxSchemaRetries; ++attempt) {
    if (schema != nullptr) {
      Result<int64_t> version = CurrentSchemaVersion(tx, org_id, schema->app.id, lock);
      if (version.ok() && *version == schema->schema_version) return schema;
      if (!version.ok() && version.status().code() != StatusCode::kNotFound) {
        return version.status();
      }
    }
    QUARRY_ASSIGN_OR_RETURN(schema, LoadAppSchema(tx, org_id, app_ref));
    Remember(org_id, app_ref, schema);
    if (!lock) return schema;
    // Locking may wait for a schema change to commit; check again after it.
  }
  return UnavailableError("the fields of app " + std::string(app_ref) +
                          " are being changed too quickly to save the record; try again");
}

Result<RecordChange> RecordService::Create(const ChangeContext& change_in,
                                           std::string_view app_ref, std::string_view object_ref,
                                           const nlohmann::json& values, FieldErrors* errors) {
  FieldErrors local;
  if (errors == nullptr) errors = &local;
  ChangeContext change = change_in;
  if (change.clock == nullptr) change.clock = clock_.get();
  for (int attempt = 0; attempt < kMaxSchemaRetries; ++attempt) {
    errors->Clear();
    std::shared_ptr<const AppSchema> schema = Cached(change.org_id, app_ref);
    const bool from_cache = schema != nullptr;
    if (!from_cache) {
      QUARRY_RETURN_IF_ERROR(db_->Read([&](store::Tx& tx) -> Status {
        QUARRY_ASSIGN_OR_RETURN(schema, LoadAppSchema(tx, change.org_id, app_ref));
        return Status::Ok();
      }));
      Remember(change.org_id, app_ref, schema);
    }
    const ObjectSchema* object = schema->FindObject(object_ref);
    if (object == nullptr) {
      if (from_cache) {
        Forget(change.org_id, app_ref);
        continue;
      }
      return NotFoundError("object '" + std::string(object_ref) + "' not found in app " +
                           schema->app.namespace_name + "; list its objects with GET /api/v1/apps/" +
                           schema->app.namespace_name + "/objects");
    }
    // Validation runs here, on the caller's thread, not inside the write.
    QUARRY_ASSIGN_OR_RETURN(nlohmann::json normalized,
                            ValidateRecordValues(*object, values, nullptr, errors));
    // Serialized here too: the write function may run on SQLite's single
    // writer thread, which should only run SQL.
    const std::string values_text = DumpJson(normalized);
    bool stale = false;
    std::optional<Record> written_record;
    std::optional<RecordChange> hooked;
    Status written = db_->Write([&](store::Tx& tx) -> Status {
      stale = false;
      written_record.reset();
      hooked.reset();
      errors->Clear();
      QUARRY_ASSIGN_OR_RETURN(Record record, InsertRecord(tx, change, *schema, *object, normalized,
                                                          values_text, errors, &stale));
      if (hook_) {
        record.values = normalized;
        hooked = DiffRecords(RecordChangeKind::kCreated, std::nullopt, std::move(record));
        return hook_(tx, *hooked);
      }
      written_record = std::move(record);
      return Status::Ok();
    });
    if (stale) {
      Forget(change.org_id, app_ref);
      continue;
    }
    QUARRY_RETURN_IF_ERROR(written);
    if (hooked) return std::move(*hooked);
    written_record->values = std::move(normalized);
    return DiffRecords(RecordChangeKind::kCreated, std::nullopt, std::move(*written_record));
  }
  return UnavailableError("the fields of app " + std::string(app_ref) +
                          " kept changing while the record was being saved; try again");
}

Result<RecordChange> RecordService::Update(const ChangeContext& change_in,
                                           std::string_view app_ref, std::string_view record_ref,
                                           const nlohmann::json& changes, const VersionCheck& check,
                                           FieldErrors* errors) {
  FieldErrors local;
  if (errors == nullptr) errors = &local;
  ChangeContext change = change_in;
  if (change.clock == nullptr) change.clock = clock_.get();
  std::optional<RecordChange> result;
  QUARRY_RETURN_IF_ERROR(db_->Write([&](store::Tx& tx) -> Status {
    result.reset();
    errors->Clear();
    QUARRY_ASSIGN_OR_RETURN(std::shared_ptr<const AppSchema> schema,
                            CurrentSchema(tx, change.org_id, app_ref, true));
    QUARRY_ASSIGN_OR_RETURN(RecordChange made, UpdateVerified(tx, change, *schema, record_ref,
                                                              changes, check, errors));
    if (hook_ && !made.changed_fields.empty()) QUARRY_RETURN_IF_ERROR(hook_(tx, made));
    result = std::move(made);
    return Status::Ok();
  }));
  return std::move(*result);
}

Result<RecordChange> RecordService::Delete(const ChangeContext& change_in,
                                           std::string_view app_ref, std::string_view record_ref,
                                           const VersionCheck& check) {
  ChangeContext change = change_in;
  if (change.clock == nullptr) change.clock = clock_.get();
  QUARRY_RETURN_IF_ERROR(app_internal::RequireBuilder(change, "delete records"));
  std::optional<RecordChange> result;
  QUARRY_RETURN_IF_ERROR(db_->Write([&](store::Tx& tx) -> Status {
    result.reset();
    QUARRY_ASSIGN_OR_RETURN(std::shared_ptr<const AppSchema> schema,
                            CurrentSchema(tx, change.org_id, app_ref, false));
    QUARRY_ASSIGN_OR_RETURN(RecordChange made,
                            DeleteVerified(tx, change, *schema, record_ref, check));
    if (hook_) QUARRY_RETURN_IF_ERROR(hook_(tx, made));
    result = std::move(made);
    return Status::Ok();
  }));
  return std::move(*result);
}

Result<Record> RecordService::Get(const std::string& org_id, std::string_view app_ref,
                                  std::string_view record_ref) {
  std::optional<Record> result;
  QUARRY_RETURN_IF_ERROR(db_->Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(std::shared_ptr<const AppSchema> schema,
                            CurrentSchema(tx, org_id, app_ref, false));
    QUARRY_ASSIGN_OR_RETURN(Record record, FindRecord(tx, *schema, record_ref, false));
    result = std::move(record);
    return Status::Ok();
  }));
  return std::move(*result);
}

Result<Page<Record>> RecordService::List(const std::string& org_id, std::string_view app_ref,
                                         std::string_view object_ref, const RecordQuery& query,
                                         FieldErrors* errors) {
  FieldErrors local;
  if (errors == nullptr) errors = &local;
  std::optional<Page<Record>> result;
  QUARRY_RETURN_IF_ERROR(db_->Read([&](store::Tx& tx) -> Status {
    errors->Clear();
    QUARRY_ASSIGN_OR_RETURN(std::shared_ptr<const AppSchema> schema,
                            CurrentSchema(tx, org_id, app_ref, false));
    const ObjectSchema* object = schema->FindObject(object_ref);
    if (object == nullptr) {
      return NotFoundError("object '" + std::string(object_ref) + "' not found in app " +
                           schema->app.namespace_name + "; list its objects with GET /api/v1/apps/" +
                           schema->app.namespace_name + "/objects");
    }
    QUARRY_ASSIGN_OR_RETURN(Page<Record> page,
                            ListRecordsInTx(tx, *schema, *object, query, errors));
    result = std::move(page);
    return Status::Ok();
  }));
  return std::move(*result);
}

}  // namespace quarry::domain
