#include "domain/fields.h"

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <set>

#include "common/encoding.h"
#include "common/ids.h"
#include "domain/app_internal.h"
#include "domain/apps.h"
#include "domain/audit.h"

namespace quarry::domain {
namespace {

using app_internal::DumpJson;
using app_internal::NowText;
using app_internal::Utf8Length;

constexpr size_t kMaxUserIdLength = 64;

constexpr std::string_view kInsertField =
    "INSERT INTO app_fields (id, org_id, app_id, object_id, api_name, label, type, required, "
    "is_unique, default_json, options_json, max_length, position, version, created_at, "
    "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1, $14, $14)";
constexpr std::string_view kUpdateField =
    "UPDATE app_fields SET label = $2, required = $3, is_unique = $4, default_json = $5, "
    "options_json = $6, max_length = $7, position = $8, version = version + 1, updated_at = $9 "
    "WHERE id = $1";
constexpr std::string_view kDeleteField = "DELETE FROM app_fields WHERE id = $1";
constexpr std::string_view kMaxPosition =
    "SELECT COALESCE(MAX(position), 0), COUNT(*) FROM app_fields WHERE object_id = $1";
constexpr std::string_view kUserInOrg = "SELECT 1 FROM users WHERE id = $1 AND org_id = $2";
constexpr std::string_view kDeleteUniqueValues =
    "DELETE FROM record_unique_values WHERE field_id = $1";
constexpr std::string_view kObjectRecordValues =
    "SELECT id, handle, values_json FROM records WHERE object_id = $1 ORDER BY number";
constexpr std::string_view kInsertUniqueValue =
    "INSERT INTO record_unique_values (field_id, value_hash, record_id) VALUES ($1, $2, $3)";
// Removing a deleted field's values keeps records free of keys no field
// describes (a later field with the same api_name starts empty).
constexpr std::string_view kStripValuesSqlite =
    "UPDATE records SET values_json = json_remove(values_json, $1) "
    "WHERE object_id = $2 AND json_type(values_json, $1) IS NOT NULL";
constexpr std::string_view kStripValuesPostgres =
    "UPDATE records SET values_json = CAST(CAST(values_json AS jsonb) - CAST($1 AS text) AS text) "
    "WHERE object_id = $2 AND (CAST(values_json AS jsonb) -> CAST($1 AS text)) IS NOT NULL";

constexpr std::string_view kReservedNames[] = {
    "id", "handle", "number", "version", "created_at", "updated_at", "created_by", "updated_by",
};

std::string JoinOptions(const std::vector<std::string>& options) {
  std::string out;
  for (const std::string& option : options) {
    if (!out.empty()) out += ", ";
    out += option;
  }
  return out;
}

std::string JsonTypeName(const nlohmann::json& value) {
  if (value.is_string()) return "a string";
  if (value.is_boolean()) return "a boolean";
  if (value.is_number()) return "a number";
  if (value.is_array()) return "an array";
  if (value.is_object()) return "an object";
  return "null";
}

bool ParseDigits(std::string_view text, int* out) {
  int value = 0;
  if (text.empty()) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  *out = value;
  return true;
}

bool ParseYmd(std::string_view text, std::chrono::year_month_day* out) {
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return false;
  int y = 0, m = 0, d = 0;
  if (!ParseDigits(text.substr(0, 4), &y) || !ParseDigits(text.substr(5, 2), &m) ||
      !ParseDigits(text.substr(8, 2), &d)) {
    return false;
  }
  const std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month{unsigned(m)},
                                        std::chrono::day{unsigned(d)}};
  if (y < 1 || !ymd.ok()) return false;
  *out = ymd;
  return true;
}

// Options of a dropdown: 1-200 distinct non-empty strings of at most 100 characters.
std::optional<std::vector<std::string>> ReadOptions(const nlohmann::json& spec,
                                                    FieldErrors* errors) {
  auto it = spec.find("options");
  if (it == spec.end() || it->is_null()) return std::nullopt;
  if (!it->is_array()) {
    errors->Add("options", "must be an array of strings, not " + JsonTypeName(*it));
    return std::nullopt;
  }
  if (it->empty() || it->size() > kMaxDropdownOptions) {
    errors->Add("options", "must hold 1 to " + std::to_string(kMaxDropdownOptions) + " options");
    return std::nullopt;
  }
  std::vector<std::string> options;
  std::set<std::string> seen;
  for (const auto& option : *it) {
    if (!option.is_string()) {
      errors->Add("options", "must be an array of strings; found " + JsonTypeName(option));
      return std::nullopt;
    }
    std::string text(TrimAsciiWhitespace(option.get<std::string>()));
    if (text.empty() || Utf8Length(text) > kMaxDropdownOptionLength) {
      errors->Add("options", "each option must be 1 to " +
                                 std::to_string(kMaxDropdownOptionLength) + " characters");
      return std::nullopt;
    }
    if (!seen.insert(text).second) {
      errors->Add("options", "lists '" + text + "' twice; options must be distinct");
      return std::nullopt;
    }
    options.push_back(std::move(text));
  }
  return options;
}

bool IsTextKind(FieldType type) { return type == FieldType::kText || type == FieldType::kLongText; }

// Checks max_length for the field's type, writing errors under "max_length".
void CheckMaxLength(const Field& field, FieldErrors* errors) {
  if (!field.max_length) return;
  if (!IsTextKind(field.type)) {
    errors->Add("max_length", "applies only to text and long_text fields; remove it");
    return;
  }
  const int64_t limit =
      field.type == FieldType::kText ? kMaxTextMaxLength : kDefaultLongTextMaxLength;
  if (*field.max_length < 1 || *field.max_length > limit) {
    errors->Add("max_length", "must be between 1 and " + std::to_string(limit) + " for a " +
                                  std::string(FieldTypeName(field.type)) + " field");
  }
}

// Checks the default against the field's definition and normalizes it.
Status CheckDefault(store::Tx& tx, const std::string& org_id, Field* field, FieldErrors* errors) {
  if (field->default_value.is_null()) return Status::Ok();
  nlohmann::json normalized;
  std::string error;
  if (!NormalizeFieldValue(*field, field->default_value, &normalized, &error)) {
    errors->Add("default", error);
    return Status::Ok();
  }
  field->default_value = normalized;
  if (field->type == FieldType::kUser) {
    QUARRY_ASSIGN_OR_RETURN(store::Rows rows,
                            tx.Query(kUserInOrg, {normalized.get<std::string>(), org_id}));
    if (rows.empty()) errors->Add("default", "is not a user of this organization");
  }
  if (field->unique) {
    errors->Add("default", "a unique field cannot have a default (every record would share it)");
  }
  return Status::Ok();
}

store::Params FieldParams(const Field& field) {
  return {
      field.label,
      store::Bool(field.required),
      store::Bool(field.unique),
      field.default_value.is_null() ? store::Null() : store::Value(DumpJson(field.default_value)),
      DumpJson(nlohmann::json(field.options)),
      field.max_length ? store::Value(*field.max_length) : store::Null(),
      field.position,
  };
}

Result<Field> FindField(store::Tx& tx, const AppObject& object, std::string_view field_ref) {
  QUARRY_ASSIGN_OR_RETURN(std::vector<Field> fields, app_internal::LoadFields(tx, object.id));
  for (Field& field : fields) {
    if (field.id == field_ref || field.api_name == field_ref) return std::move(field);
  }
  return NotFoundError("field '" + std::string(field_ref) + "' not found on object " +
                       object.api_name + "; list its fields with GET .../objects/" +
                       object.api_name + "/fields");
}

// Fills record_unique_values for a field that becomes unique.
Status BackfillUnique(store::Tx& tx, const Field& field) {
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(kObjectRecordValues, {field.object_id}));
  std::map<std::string, std::string> seen;  // hash -> handle
  for (const store::Row& row : rows.rows) {
    const nlohmann::json values = app_internal::ParseStoredJson(row.Text(2));
    auto it = values.find(field.api_name);
    if (it == values.end() || it->is_null()) continue;
    const std::string hash = app_internal::UniqueValueHash(field, *it);
    auto [pos, inserted] = seen.emplace(hash, row.Text(1));
    if (!inserted) {
      return FailedPreconditionError("field " + field.api_name + " cannot become unique: records " +
                                     pos->second + " and " + row.Text(1) +
                                     " share a value; change one of them first");
    }
    QUARRY_RETURN_IF_ERROR(tx.Exec(kInsertUniqueValue, {field.id, hash, row.Text(0)}));
  }
  return Status::Ok();
}

}  // namespace

std::string_view FieldTypeName(FieldType type) {
  switch (type) {
    case FieldType::kText: return "text";
    case FieldType::kLongText: return "long_text";
    case FieldType::kNumber: return "number";
    case FieldType::kDecimal: return "decimal";
    case FieldType::kDropdown: return "dropdown";
    case FieldType::kCheckbox: return "checkbox";
    case FieldType::kDate: return "date";
    case FieldType::kDateTime: return "date_time";
    case FieldType::kJson: return "json";
    case FieldType::kUser: return "user";
  }
  return "text";
}

bool ParseFieldType(std::string_view text, FieldType* type) {
  for (FieldType candidate : kAllFieldTypes) {
    if (FieldTypeName(candidate) == text) {
      *type = candidate;
      return true;
    }
  }
  return false;
}

std::string FieldTypeList() {
  std::string out;
  for (FieldType type : kAllFieldTypes) {
    if (!out.empty()) out += ", ";
    out += FieldTypeName(type);
  }
  return out;
}

bool FieldTypeSupportsUnique(FieldType type) {
  switch (type) {
    case FieldType::kText:
    case FieldType::kNumber:
    case FieldType::kDecimal:
    case FieldType::kDate:
    case FieldType::kDateTime:
    case FieldType::kUser:
      return true;
    default:
      return false;
  }
}

bool FieldTypeIsFilterable(FieldType type) { return type != FieldType::kJson; }

void FieldErrors::Add(const std::string& name, std::string message) {
  by_name_.emplace(name, std::move(message));
}

Status FieldErrors::ToStatus(std::string_view what) const {
  if (by_name_.empty()) return Status::Ok();
  std::string noun(what);
  if (by_name_.size() == 1 && !noun.empty() && noun.back() == 's') noun.pop_back();
  std::string message = std::to_string(by_name_.size()) + " " + noun + " invalid: ";
  bool first = true;
  for (const auto& [name, text] : by_name_) {
    if (!first) message += "; ";
    first = false;
    message += name + " " + text;
  }
  return InvalidArgumentError(message);
}

nlohmann::json FieldErrors::ToJson() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, text] : by_name_) out[name] = text;
  return out;
}

int64_t Field::EffectiveMaxLength() const {
  if (type == FieldType::kText) return max_length.value_or(kDefaultTextMaxLength);
  if (type == FieldType::kLongText) return max_length.value_or(kDefaultLongTextMaxLength);
  return 0;
}

nlohmann::json Field::ToJson() const {
  nlohmann::json out = {
      {"id", id},
      {"app_id", app_id},
      {"object_id", object_id},
      {"api_name", api_name},
      {"label", label},
      {"type", FieldTypeName(type)},
      {"required", required},
      {"unique", unique},
      {"default", default_value},
      {"position", position},
      {"version", version},
      {"created_at", created_at},
      {"updated_at", updated_at},
  };
  if (type == FieldType::kDropdown) out["options"] = options;
  if (IsTextKind(type)) out["max_length"] = EffectiveMaxLength();
  return out;
}

bool IsValidDate(std::string_view text) {
  std::chrono::year_month_day ymd;
  return ParseYmd(text, &ymd);
}

bool NormalizeDateTime(std::string_view text, std::string* utc_millis) {
  using namespace std::chrono;
  if (text.size() < 20 || (text[10] != 'T' && text[10] != 't')) return false;
  year_month_day ymd;
  if (!ParseYmd(text.substr(0, 10), &ymd)) return false;
  if (text[13] != ':' || text[16] != ':') return false;
  int hour = 0, minute = 0, second = 0;
  if (!ParseDigits(text.substr(11, 2), &hour) || !ParseDigits(text.substr(14, 2), &minute) ||
      !ParseDigits(text.substr(17, 2), &second) || hour > 23 || minute > 59 || second > 59) {
    return false;
  }
  size_t pos = 19;
  int millis = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    size_t digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (digits < 3) millis = millis * 10 + (text[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0 || digits > 9) return false;
    for (size_t i = digits; i < 3; ++i) millis *= 10;
  }
  int offset_minutes = 0;
  std::string_view zone = text.substr(pos);
  if (zone == "Z" || zone == "z") {
    offset_minutes = 0;
  } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
    int oh = 0, om = 0;
    if (!ParseDigits(zone.substr(1, 2), &oh) || !ParseDigits(zone.substr(4, 2), &om) || oh > 23 ||
        om > 59) {
      return false;
    }
    offset_minutes = (oh * 60 + om) * (zone[0] == '-' ? -1 : 1);
  } else {
    return false;
  }
  const sys_time<milliseconds> local = sys_days{ymd} + hours{hour} + minutes{minute} +
                                       seconds{second} + milliseconds{millis};
  const sys_time<milliseconds> utc = local - minutes{offset_minutes};
  const year_month_day utc_day{floor<days>(utc)};
  if (static_cast<int>(utc_day.year()) < 1 || static_cast<int>(utc_day.year()) > 9999) {
    return false;
  }
  *utc_millis = app_internal::FormatMillisUtc(utc);
  return true;
}

bool IsValidApiName(std::string_view text) {
  if (text.empty() || text.size() > 63) return false;
  if (text[0] < 'a' || text[0] > 'z') return false;
  for (char c : text) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

bool IsReservedFieldName(std::string_view api_name) {
  for (std::string_view reserved : kReservedNames) {
    if (reserved == api_name) return true;
  }
  return false;
}

bool NormalizeFieldValue(const Field& field, const nlohmann::json& value,
                         nlohmann::json* normalized, std::string* error) {
  switch (field.type) {
    case FieldType::kText:
    case FieldType::kLongText: {
      if (!value.is_string()) {
        *error = "must be a string, not " + JsonTypeName(value);
        return false;
      }
      const size_t length = Utf8Length(value.get_ref<const std::string&>());
      if (static_cast<int64_t>(length) > field.EffectiveMaxLength()) {
        *error = "must be at most " + std::to_string(field.EffectiveMaxLength()) +
                 " characters (it has " + std::to_string(length) + ")";
        return false;
      }
      *normalized = value;
      return true;
    }
    case FieldType::kNumber: {
      if (value.is_number_unsigned()) {
        if (value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          *error = "is too large for a number field (the limit is 9223372036854775807)";
          return false;
        }
        *normalized = value.get<int64_t>();
        return true;
      }
      if (value.is_number_integer()) {
        *normalized = value.get<int64_t>();
        return true;
      }
      if (value.is_number_float()) {
        const double d = value.get<double>();
        // Whole numbers sent as 3.0 are accepted; within +-2^53 they are exact.
        if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) <= 9007199254740992.0) {
          *normalized = static_cast<int64_t>(d);
          return true;
        }
        *error = "must be a whole number (use a decimal field for fractions)";
        return false;
      }
      *error = "must be a whole number, not " + JsonTypeName(value);
      return false;
    }
    case FieldType::kDecimal: {
      if (!value.is_number()) {
        *error = "must be a number, not " + JsonTypeName(value);
        return false;
      }
      if (value.is_number_float() && !std::isfinite(value.get<double>())) {
        *error = "must be a finite number";
        return false;
      }
      *normalized = value;
      return true;
    }
    case FieldType::kDropdown: {
      if (value.is_string()) {
        const std::string& text = value.get_ref<const std::string&>();
        for (const std::string& option : field.options) {
          if (option == text) {
            *normalized = value;
            return true;
          }
        }
      }
      *error = "must be one of " + JoinOptions(field.options);
      return false;
    }
    case FieldType::kCheckbox: {
      if (!value.is_boolean()) {
        *error = "must be true or false, not " + JsonTypeName(value);
        return false;
      }
      *normalized = value;
      return true;
    }
    case FieldType::kDate: {
      if (!value.is_string() || !IsValidDate(value.get_ref<const std::string&>())) {
        *error = "must be a date in the form YYYY-MM-DD (e.g. 2026-11-25)";
        return false;
      }
      *normalized = value;
      return true;
    }
    case FieldType::kDateTime: {
      std::string utc;
      if (!value.is_string() || !NormalizeDateTime(value.get_ref<const std::string&>(), &utc)) {
        *error = "must be an ISO 8601 date and time with a zone (e.g. 2026-11-25T10:00:00Z)";
        return false;
      }
      *normalized = utc;
      return true;
    }
    case FieldType::kJson: {
      if (DumpJson(value).size() > kMaxJsonValueBytes) {
        *error = "must be at most " + std::to_string(kMaxJsonValueBytes) + " bytes of JSON";
        return false;
      }
      *normalized = value;
      return true;
    }
    case FieldType::kUser: {
      if (!value.is_string() || value.get_ref<const std::string&>().empty() ||
          value.get_ref<const std::string&>().size() > kMaxUserIdLength) {
        *error = "must be the id of a user of this organization (a string)";
        return false;
      }
      *normalized = value;
      return true;
    }
  }
  *error = "has an unknown type";
  return false;
}

bool ParseFieldValueText(const Field& field, std::string_view text, nlohmann::json* normalized,
                         std::string* error) {
  switch (field.type) {
    case FieldType::kNumber: {
      int64_t number = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
      if (ec != std::errc() || end != text.data() + text.size()) {
        *error = "must be a whole number";
        return false;
      }
      *normalized = number;
      return true;
    }
    case FieldType::kDecimal: {
      const std::string copy(text);
      char* end = nullptr;
      const double number = std::strtod(copy.c_str(), &end);
      if (copy.empty() || end != copy.c_str() + copy.size() || !std::isfinite(number)) {
        *error = "must be a number";
        return false;
      }
      *normalized = number;
      return true;
    }
    case FieldType::kCheckbox:
      if (text == "true" || text == "false") {
        *normalized = text == "true";
        return true;
      }
      *error = "must be true or false";
      return false;
    case FieldType::kJson:
      *error = "is a json field, which cannot be filtered or sorted";
      return false;
    case FieldType::kText:
    case FieldType::kLongText:
    case FieldType::kUser:
      // Filters compare any text; length limits apply to stored values only.
      *normalized = std::string(text);
      return true;
    default:
      return NormalizeFieldValue(field, nlohmann::json(std::string(text)), normalized, error);
  }
}

Result<Field> CreateField(store::Tx& tx, const ChangeContext& change, std::string_view app_ref,
                          std::string_view object_ref, const nlohmann::json& spec,
                          FieldErrors* errors) {
  FieldErrors local;
  if (errors == nullptr) errors = &local;
  QUARRY_RETURN_IF_ERROR(app_internal::RequireBuilder(change, "create fields"));
  QUARRY_RETURN_IF_ERROR(app_internal::RequireObject(spec, errors));
  QUARRY_ASSIGN_OR_RETURN(App app, app_internal::FindApp(tx, change.org_id, app_ref, false));
  // Lock the app row first (PostgreSQL): schema changes of one app run one
  // at a time, and record writes see them whole.
  QUARRY_RETURN_IF_ERROR(app_internal::BumpSchemaVersion(tx, app.id));
  QUARRY_ASSIGN_OR_RETURN(AppObject object, app_internal::FindObject(tx, app, object_ref, false));

  app_internal::RejectUnknownKeys(spec,
                                  {"api_name", "label", "type", "required", "unique", "default",
                                   "options", "max_length", "position"},
                                  errors);
  Field field;
  field.id = NewId("fld");
  field.org_id = change.org_id;
  field.app_id = app.id;
  field.object_id = object.id;
  if (auto api_name = app_internal::ReadString(spec, "api_name", true, errors)) {
    if (!IsValidApiName(*api_name)) {
      errors->Add("api_name",
                  "must be 1-63 characters of a-z, 0-9 and _, starting with a letter "
                  "(e.g. due_date)");
    } else if (IsReservedFieldName(*api_name)) {
      errors->Add("api_name", "'" + *api_name +
                                  "' is reserved for the record's own keys; choose another name");
    }
    field.api_name = *api_name;
  }
  if (auto label = app_internal::ReadName(spec, "label", true, errors)) field.label = *label;
  bool type_known = false;
  if (auto type = app_internal::ReadString(spec, "type", true, errors)) {
    type_known = ParseFieldType(*type, &field.type);
    if (!type_known) errors->Add("type", "must be one of " + FieldTypeList());
  }
  field.required = app_internal::ReadBool(spec, "required", errors).value_or(false);
  field.unique = app_internal::ReadBool(spec, "unique", errors).value_or(false);
  auto options = ReadOptions(spec, errors);
  field.max_length = app_internal::ReadInt(spec, "max_length", errors);
  auto position = app_internal::ReadInt(spec, "position", errors);
  if (type_known) {
    if (field.type == FieldType::kDropdown) {
      if (options) {
        field.options = *options;
      } else if (!errors->Has("options")) {
        errors->Add("options", "is required for a dropdown field (e.g. [\"Low\",\"High\"])");
      }
    } else if (spec.contains("options") && !spec["options"].is_null()) {
      errors->Add("options", "applies only to dropdown fields; remove it");
    }
    if (field.unique && !FieldTypeSupportsUnique(field.type)) {
      errors->Add("unique", "is not supported for " + std::string(FieldTypeName(field.type)) +
                                " fields (only text, number, decimal, date, date_time, user)");
    }
    CheckMaxLength(field, errors);
    if (auto it = spec.find("default"); it != spec.end()) field.default_value = *it;
    // A dropdown default is checked against valid options only.
    if (field.type != FieldType::kDropdown || !errors->Has("options")) {
      QUARRY_RETURN_IF_ERROR(CheckDefault(tx, change.org_id, &field, errors));
    }
  }
  if (!errors->empty()) return errors->ToStatus();

  QUARRY_ASSIGN_OR_RETURN(store::Row stats, tx.QueryOne(kMaxPosition, {object.id}, "fields"));
  if (static_cast<size_t>(stats.Int(1)) >= kMaxFieldsPerObject) {
    return FailedPreconditionError("object " + object.api_name + " already has " +
                                   std::to_string(kMaxFieldsPerObject) +
                                   " fields, the most an object may have; delete unused ones");
  }
  field.position = position.value_or(stats.Int(0) + 1);
  field.created_at = field.updated_at = NowText(change);
  store::Params params = {field.id, field.org_id, field.app_id, field.object_id, field.api_name};
  store::Params rest = FieldParams(field);  // label, required, unique, default, options, ...
  params.push_back(rest[0]);
  params.push_back(std::string(FieldTypeName(field.type)));
  params.insert(params.end(), rest.begin() + 1, rest.end());
  params.push_back(field.created_at);
  Status inserted = tx.Exec(kInsertField, params).status();
  if (inserted.code() == StatusCode::kAlreadyExists) {
    errors->Add("api_name", "is already used by another field of " + object.api_name);
    return Status(StatusCode::kAlreadyExists,
                  "object " + object.api_name + " already has a field named " + field.api_name +
                      "; choose another api_name or update that field");
  }
  QUARRY_RETURN_IF_ERROR(inserted);
  QUARRY_RETURN_IF_ERROR(
      app_internal::Audit(tx, change, "field.create", "field", field.id, nullptr, field.ToJson()));
  return field;
}

Result<Field> UpdateField(store::Tx& tx, const ChangeContext& change, std::string_view app_ref,
                          std::string_view object_ref, std::string_view field_ref,
                          const nlohmann::json& patch, const VersionCheck& check,
                          FieldErrors* errors) {
  FieldErrors local;
  if (errors == nullptr) errors = &local;
  QUARRY_RETURN_IF_ERROR(app_internal::RequireBuilder(change, "change fields"));
  QUARRY_RETURN_IF_ERROR(app_internal::RequireObject(patch, errors));
  QUARRY_ASSIGN_OR_RETURN(App app, app_internal::FindApp(tx, change.org_id, app_ref, false));
  // Lock the app row first (PostgreSQL): schema changes of one app run one
  // at a time, and record writes see them whole.
  QUARRY_RETURN_IF_ERROR(app_internal::BumpSchemaVersion(tx, app.id));
  QUARRY_ASSIGN_OR_RETURN(AppObject object, app_internal::FindObject(tx, app, object_ref, false));
  QUARRY_ASSIGN_OR_RETURN(Field before, FindField(tx, object, field_ref));
  QUARRY_RETURN_IF_ERROR(app_internal::RunVersionCheck(check, before.version));

  app_internal::RejectUnknownKeys(patch,
                                  {"api_name", "type", "label", "required", "unique", "default",
                                   "options", "max_length", "position"},
                                  errors);
  // api_name and type are accepted only unchanged, so a client may send back
  // what it read.
  if (auto it = patch.find("api_name"); it != patch.end() && *it != before.api_name) {
    errors->Add("api_name", "cannot be changed (records store values under it); create a new "
                            "field instead");
  }
  if (auto it = patch.find("type"); it != patch.end() && *it != FieldTypeName(before.type)) {
    errors->Add("type", "cannot be changed; create a new field of the new type instead");
  }
  Field field = before;
  if (auto label = app_internal::ReadName(patch, "label", false, errors)) field.label = *label;
  if (auto required = app_internal::ReadBool(patch, "required", errors)) field.required = *required;
  if (auto unique = app_internal::ReadBool(patch, "unique", errors)) field.unique = *unique;
  if (field.unique && !before.unique && !FieldTypeSupportsUnique(field.type)) {
    errors->Add("unique", "is not supported for " + std::string(FieldTypeName(field.type)) +
                              " fields (only text, number, decimal, date, date_time, user)");
  }
  if (patch.contains("options")) {
    if (field.type != FieldType::kDropdown) {
      errors->Add("options", "applies only to dropdown fields; remove it");
    } else if (auto options = ReadOptions(patch, errors)) {
      field.options = *options;
    } else if (!errors->Has("options")) {
      errors->Add("options", "must hold 1 to " + std::to_string(kMaxDropdownOptions) + " options");
    }
  }
  if (patch.contains("max_length")) {
    field.max_length = app_internal::ReadInt(patch, "max_length", errors);
    CheckMaxLength(field, errors);
  }
  if (auto position = app_internal::ReadInt(patch, "position", errors)) field.position = *position;
  if (auto it = patch.find("default"); it != patch.end()) field.default_value = *it;
  if (field.type != FieldType::kDropdown || !errors->Has("options")) {
    QUARRY_RETURN_IF_ERROR(CheckDefault(tx, change.org_id, &field, errors));
  }
  if (!errors->empty()) return errors->ToStatus();

  if (field.unique && !before.unique) QUARRY_RETURN_IF_ERROR(BackfillUnique(tx, field));
  if (!field.unique && before.unique) {
    QUARRY_RETURN_IF_ERROR(tx.Exec(kDeleteUniqueValues, {field.id}));
  }
  field.updated_at = NowText(change);
  field.version = before.version + 1;
  store::Params params = {field.id};
  store::Params rest = FieldParams(field);
  params.insert(params.end(), rest.begin(), rest.end());
  params.push_back(field.updated_at);
  QUARRY_RETURN_IF_ERROR(tx.Exec(kUpdateField, params));
  QUARRY_RETURN_IF_ERROR(app_internal::Audit(tx, change, "field.update", "field", field.id,
                                             before.ToJson(), field.ToJson()));
  return field;
}

Status DeleteField(store::Tx& tx, const ChangeContext& change, std::string_view app_ref,
                   std::string_view object_ref, std::string_view field_ref,
                   const VersionCheck& check) {
  QUARRY_RETURN_IF_ERROR(app_internal::RequireBuilder(change, "delete fields"));
  QUARRY_ASSIGN_OR_RETURN(App app, app_internal::FindApp(tx, change.org_id, app_ref, false));
  // Lock the app row first (PostgreSQL): schema changes of one app run one
  // at a time, and record writes see them whole.
  QUARRY_RETURN_IF_ERROR(app_internal::BumpSchemaVersion(tx, app.id));
  QUARRY_ASSIGN_OR_RETURN(AppObject object, app_internal::FindObject(tx, app, object_ref, false));
  QUARRY_ASSIGN_OR_RETURN(Field field, FindField(tx, object, field_ref));
  QUARRY_RETURN_IF_ERROR(app_internal::RunVersionCheck(check, field.version));
  if (tx.dialect() == store::Dialect::kPostgres) {
    QUARRY_RETURN_IF_ERROR(tx.Exec(kStripValuesPostgres, {field.api_name, object.id}));
  } else {
    QUARRY_RETURN_IF_ERROR(tx.Exec(kStripValuesSqlite, {"$." + field.api_name, object.id}));
  }
  QUARRY_RETURN_IF_ERROR(tx.Exec(kDeleteField, {field.id}));
  return app_internal::Audit(tx, change, "field.delete", "field", field.id, field.ToJson(),
                             nullptr);
}

Result<Field> GetField(store::Tx& tx, const std::string& org_id, std::string_view app_ref,
                       std::string_view object_ref, std::string_view field_ref) {
  QUARRY_ASSIGN_OR_RETURN(App app, app_internal::FindApp(tx, org_id, app_ref, false));
  QUARRY_ASSIGN_OR_RETURN(AppObject object, app_internal::FindObject(tx, app, object_ref, false));
  return FindField(tx, object, field_ref);
}

Result<std::vector<Field>> ListFields(store::Tx& tx, const std::string& org_id,
                                      std::string_view app_ref, std::string_view object_ref) {
  QUARRY_ASSIGN_OR_RETURN(App app, app_internal::FindApp(tx, org_id, app_ref, false));
  QUARRY_ASSIGN_OR_RETURN(AppObject object, app_internal::FindObject(tx, app, object_ref, false));
  return app_internal::LoadFields(tx, object.id);
}

}  // namespace quarry::domain
