#pragma once
// Fields of an app's objects: the ten field types, a field's definition
// (api_name, label, required, default, unique, dropdown options, max length
// for text), the check of one value against a field, and the management of
// field definitions (create, read, update, delete) by builders and admins,
// each change written to the audit log in the same transaction.
//
// Value forms (JSON) by type, as records store and return them:
//   text        string, at most max_length characters (default 255, 1-10,000)
//   long_text   string, at most max_length characters (default and max 100,000)
//   number      integer (int64; 3.0 is accepted and stored as 3)
//   decimal     finite number
//   dropdown    string, exactly one of the field's options
//   checkbox    true | false
//   date        "YYYY-MM-DD", a real calendar date
//   date_time   ISO 8601 with Z or an offset, stored in UTC with milliseconds
//               ("2026-11-25T10:00:00.000Z", which sorts as time)
//   json        any JSON value, at most 100,000 bytes serialized
//   user        the id of a user of the organization
// null clears a value (or, on create, is the same as leaving it out).
//
// Field definitions: api_name ([a-z][a-z0-9_]{0,62}, not one of the record's
// own keys: id, handle, number, version, created_at, updated_at, created_by,
// updated_by) and type are fixed once created; label, required, default,
// unique, options, max_length and position may change. Turning `unique` on
// checks the object's existing records (FailedPrecondition when two share a
// value). Deleting a field removes its values from every record of the object.
// Every change to a field also bumps the app's schema version, which record
// writes check, so a record is never validated against a stale definition.
//
// Thread safety: stateless functions over a Tx; FieldErrors is a value.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "store/database.h"

namespace quarry::domain {

enum class FieldType {
  kText,
  kLongText,
  kNumber,
  kDecimal,
  kDropdown,
  kCheckbox,
  kDate,
  kDateTime,
  kJson,
  kUser,
};
inline constexpr FieldType kAllFieldTypes[] = {
    FieldType::kText,     FieldType::kLongText, FieldType::kNumber, FieldType::kDecimal,
    FieldType::kDropdown, FieldType::kCheckbox, FieldType::kDate,   FieldType::kDateTime,
    FieldType::kJson,     FieldType::kUser,
};
// "text", "long_text", "number", "decimal", "dropdown", "checkbox", "date",
// "date_time", "json", "user".
std::string_view FieldTypeName(FieldType type);
bool ParseFieldType(std::string_view text, FieldType* type);
// "text, long_text, ..., user" for error messages.
std::string FieldTypeList();
// Types whose values may be declared unique: text, number, decimal, date,
// date_time, user.
bool FieldTypeSupportsUnique(FieldType type);
// Types records can be filtered and sorted by (all but json).
bool FieldTypeIsFilterable(FieldType type);

inline constexpr int64_t kDefaultTextMaxLength = 255;
inline constexpr int64_t kMaxTextMaxLength = 10'000;
inline constexpr int64_t kDefaultLongTextMaxLength = 100'000;
inline constexpr size_t kMaxJsonValueBytes = 100'000;
inline constexpr size_t kMaxDropdownOptions = 200;
inline constexpr size_t kMaxDropdownOptionLength = 100;
inline constexpr size_t kMaxFieldsPerObject = 200;

// Problems with named inputs, collected so that a request reports every bad
// input at once. The API turns them into 400 validation_failed with
// details {"fields": {"priority": "must be one of Low, Medium, High"}}.
class FieldErrors {
 public:
  // Keeps the first message for a name.
  void Add(const std::string& name, std::string message);
  bool empty() const { return by_name_.empty(); }
  size_t size() const { return by_name_.size(); }
  void Clear() { by_name_.clear(); }
  const std::map<std::string, std::string>& by_name() const { return by_name_; }
  // Whether a name has a message.
  bool Has(const std::string& name) const { return by_name_.count(name) > 0; }
  // InvalidArgument("<n> <what> invalid: a: msg; b: msg"), or OK when empty.
  Status ToStatus(std::string_view what = "fields") const;
  nlohmann::json ToJson() const;  // {"a":"msg",...}

 private:
  std::map<std::string, std::string> by_name_;
};

struct Field {
  std::string id{};  // "fld_..."
  std::string org_id{};
  std::string app_id{};
  std::string object_id{};
  std::string api_name{};
  std::string label{};
  FieldType type = FieldType::kText;
  bool required = false;
  bool unique = false;
  nlohmann::json default_value = nullptr;  // null = no default
  std::vector<std::string> options{};      // dropdown only
  std::optional<int64_t> max_length{};     // text / long_text only; see EffectiveMaxLength
  int64_t position = 0;
  int64_t version = 1;
  std::string created_at{};
  std::string updated_at{};

  // text: max_length or 255; long_text: max_length or 100,000; others 0.
  int64_t EffectiveMaxLength() const;
  // {"id","app_id","object_id","api_name","label","type","required","unique",
  //  "default","options" (dropdown),"max_length" (text kinds),"position",
  //  "version","created_at","updated_at"}
  nlohmann::json ToJson() const;
};

// Checks a non-null `value` against `field` and writes its stored form to
// *normalized. On failure returns false and writes a message that completes
// "<field> ..." (e.g. "must be one of Low, Medium, High") to *error. Does not
// check that a user id exists (that needs the store: see records.h).
bool NormalizeFieldValue(const Field& field, const nlohmann::json& value,
                         nlohmann::json* normalized, std::string* error);

// Parses a value given as query text (filters, e.g. "3", "true",
// "2026-01-01") for `field`, with the same rules as NormalizeFieldValue.
bool ParseFieldValueText(const Field& field, std::string_view text, nlohmann::json* normalized,
                         std::string* error);

// The date-time forms accepted for date_time values: "YYYY-MM-DDTHH:MM:SS"
// with optional fraction (milliseconds kept) and "Z" or "+HH:MM"/"-HH:MM";
// writes "YYYY-MM-DDTHH:MM:SS.mmmZ" in UTC.
bool NormalizeDateTime(std::string_view text, std::string* utc_millis);
// "YYYY-MM-DD" with a real month and day (leap years included).
bool IsValidDate(std::string_view text);
// Identifier rule for object and field api names: [a-z][a-z0-9_]{0,62}.
bool IsValidApiName(std::string_view text);
// Field api names reserved for the record's own keys.
bool IsReservedFieldName(std::string_view api_name);

struct ChangeContext;  // apps.h
using VersionCheck = std::function<Status(int64_t current_version)>;

// Field management. `app_ref` is an app id or namespace, `object_ref` an
// object id or api_name, `field_ref` a field id or api_name. Create/update
// take the API's JSON shape:
//   create {"api_name","label","type","required"?,"unique"?,"default"?,
//           "options"? (dropdown, required there),"max_length"?,"position"?}
//   update any of {"label","required","unique","default","options",
//                  "max_length","position"}
// Errors: PermissionDenied (not a builder), NotFound, InvalidArgument with
// *errors filled (every bad input, unknown keys named), AlreadyExists (the
// api_name is taken on the object), FailedPrecondition (too many fields;
// unique turned on over duplicate values), Aborted (the VersionCheck failed).
Result<Field> CreateField(store::Tx& tx, const ChangeContext& change, std::string_view app_ref,
                          std::string_view object_ref, const nlohmann::json& spec,
                          FieldErrors* errors);
Result<Field> UpdateField(store::Tx& tx, const ChangeContext& change, std::string_view app_ref,
                          std::string_view object_ref, std::string_view field_ref,
                          const nlohmann::json& patch, const VersionCheck& check,
                          FieldErrors* errors);
Status DeleteField(store::Tx& tx, const ChangeContext& change, std::string_view app_ref,
                   std::string_view object_ref, std::string_view field_ref,
                   const VersionCheck& check);
Result<Field> GetField(store::Tx& tx, const std::string& org_id, std::string_view app_ref,
                       std::string_view object_ref, std::string_view field_ref);
// The object's fields by position, then api_name.
Result<std::vector<Field>> ListFields(store::Tx& tx, const std::string& org_id,
                                      std::string_view app_ref, std::string_view object_ref);

}  // namespace quarry::domain
