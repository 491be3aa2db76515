#pragma once
// Records: instances of an app's object, with typed values validated against
// the object's fields (fields.h), a per-app sequential handle (TCK-1, TCK-2,
// ...), a version for optimistic concurrency, filters, sorting and keyset
// pagination.
//
// Storage: one row per record; the values are one JSON object in a TEXT
// column (values_json), keyed by field api_name, holding only set values in
// their stored form. Indexed columns: object_id with created_at / updated_at
// (list order), app_id with number (handles). Unique fields keep their value
// hashes in record_unique_values, whose primary key makes uniqueness hold
// under concurrency on both databases.
//
// Handles: the app row's counter is incremented with UPDATE ... RETURNING in
// the record's own transaction, so numbers are gapless and never reused while
// the transaction commits (SQLite: the single writer serializes; PostgreSQL:
// the row lock does), and a rolled-back create gives its number back.
//
// Filters are evaluated in SQL (json_extract on SQLite, ->> on PostgreSQL),
// with typed comparisons: numbers as numbers, dates and date-times as their
// sortable text, checkboxes as booleans. Operators eq, ne, gt, lt, gte, lte,
// contains (text kinds; case-sensitive substring), in (comma-separated);
// several filters are combined with AND; `ne` also matches records with no
// value. Sort by created_at (default), updated_at, created_by, updated_by or a
// field ("-" prefix = descending); records without a value sort after those
// with one (before them when descending); ties are broken by handle number,
// so keyset pages are stable under concurrent inserts.
//
// Validation reports every bad value at once (FieldErrors): unknown fields
// (named, with the known ones), missing required values, wrong types or
// forms, users that are not in the organization. On create, absent fields
// take their default. On update only the given fields are checked, and a
// required field cannot be cleared.
//
// Authorization: any user of the organization creates, reads and updates
// records; deleting one needs a builder or admin. Record writes are not
// audited (the record's created_by/updated_by and version say who and when).
//
// Thread safety: the free functions are stateless over a Tx; RecordService is
// thread-safe.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/status.h"
#include "domain/apps.h"
#include "domain/fields.h"
#include "domain/paging.h"
#include "domain/principal.h"
#include "store/database.h"

namespace quarry::domain {

inline constexpr size_t kMaxRecordValuesBytes = 1'000'000;

struct Record {
  std::string id{};  // "rec_..."
  std::string org_id{};
  std::string app_id{};
  std::string object_id{};
  int64_t number = 0;
  std::string handle{};  // "TCK-12"
  nlohmann::json values = nlohmann::json::object();
  int64_t version = 1;
  std::string created_by{};  // user id, "" for the system
  std::string updated_by{};
  std::string created_at{};
  std::string updated_at{};

  // {"id","handle","number","app_id","object_id","values":{...},"version",
  //  "created_by","updated_by","created_at","updated_at"}
  nlohmann::json ToJson() const;
};

enum class RecordChangeKind { kCreated, kUpdated, kDeleted };
std::string_view RecordChangeKindName(RecordChangeKind kind);  // "created" | "updated" | "deleted"

// What a record write did: for the API's response and for the automation
// engine (triggers on record created / updated with changed fields).
struct RecordChange {
  RecordChangeKind kind = RecordChangeKind::kCreated;
  std::optional<Record> before{};  // absent for creates
  std::optional<Record> after{};   // absent for deletes
  // Api names whose value differs between before and after, sorted. For a
  // create: every field that has a value; for a delete: every field that had one.
  std::vector<std::string> changed_fields{};
  // {"<api_name>": value-or-null} for the changed fields only.
  nlohmann::json before_values = nlohmann::json::object();
  nlohmann::json after_values = nlohmann::json::object();
};

// Validates input values against an object's fields (pure). For a create,
// `input` is every value (absent fields take defaults; required ones must be
// present) and the result is the complete stored values; for an update,
// `input` holds the changes (null clears) and `current` the record's stored
// values, and the result is the merged values. InvalidArgument with *errors
// filled (keys are api names) on failure. User ids are checked by the
// functions below, not here.
Result<nlohmann::json> ValidateRecordValues(const ObjectSchema& object, const nlohmann::json& input,
                                            const nlohmann::json* current, FieldErrors* errors);

// The automation engine's entry points: create or update a record inside the
// caller's transaction (so the caller can enqueue work atomically with the
// write) and learn what changed. `schema` must be the app's current schema
// (LoadAppSchema in the same transaction, or a cached copy: a stale one is
// refused with Aborted "the app's fields changed ...; reload and retry").
// `record_ref` is a record id or handle. `check` (may be empty) is given the
// record's current version before an update. Errors: InvalidArgument with
// *errors filled, NotFound, PermissionDenied, AlreadyExists (a unique value is
// taken; *errors names the field), Aborted (version check or stale schema).
Result<RecordChange> CreateRecordInTx(store::Tx& tx, const ChangeContext& change,
                                      const AppSchema& schema, const ObjectSchema& object,
                                      const nlohmann::json& values, FieldErrors* errors);
Result<RecordChange> UpdateRecordInTx(store::Tx& tx, const ChangeContext& change,
                                      const AppSchema& schema, std::string_view record_ref,
                                      const nlohmann::json& changes, const VersionCheck& check,
                                      FieldErrors* errors);
Result<RecordChange> DeleteRecordInTx(store::Tx& tx, const ChangeContext& change,
                                      const AppSchema& schema, std::string_view record_ref,
                                      const VersionCheck& check);
Result<Record> GetRecordInTx(store::Tx& tx, const AppSchema& schema, std::string_view record_ref);

enum class FilterOp { kEq, kNe, kGt, kLt, kGte, kLte, kContains, kIn };
std::string_view FilterOpName(FilterOp op);
bool ParseFilterOp(std::string_view text, FilterOp* op);

struct RecordFilter {
  std::string param{};  // the query parameter as sent, for error messages: "filter[estimate][gt]"
  std::string field{};  // api name or created_at / updated_at / created_by / updated_by
  FilterOp op = FilterOp::kEq;
  std::string value{};  // as sent; `in` splits it at commas
};

struct RecordQuery {
  std::vector<RecordFilter> filters{};
  std::string sort = "created_at";  // field or built-in, without the "-"
  bool descending = false;
  PageRequest page{};
};

// From query parameters: filter[<field>]=v (eq), filter[<field>][<op>]=v,
// sort=[-]<key>, limit, cursor. Other parameters are ignored. InvalidArgument
// with *errors keyed by parameter for malformed filter keys, unknown
// operators, a bad limit or an empty sort.
Result<RecordQuery> ParseRecordQuery(const std::multimap<std::string, std::string>& params,
                                     FieldErrors* errors);

// Lists an object's records. InvalidArgument with *errors keyed by query
// parameter for filters or sorts on unknown fields, json fields, operators
// the field's type does not support, and values of the wrong form.
Result<Page<Record>> ListRecordsInTx(store::Tx& tx, const AppSchema& schema,
                                     const ObjectSchema& object, const RecordQuery& query,
                                     FieldErrors* errors);

// Runs inside a record write's transaction, after the record is written and
// before commit: an error rolls the write back. The automation engine
// registers one to enqueue runs atomically with the record change.
using RecordWriteHook = std::function<Status(store::Tx& tx, const RecordChange& change)>;

// Record operations for request handlers: resolves app and object
// references through a bounded cache of app schemas (checked against the
// app's schema version in every transaction, reloaded when stale), validates
// outside the write transaction where it can (so SQLite's single writer only
// runs the two statements of a create), and runs the write hook.
class RecordService {
 public:
  RecordService(std::shared_ptr<store::Database> db, std::shared_ptr<const Clock> clock);

  // Set before the service is used; not synchronized with running writes.
  void SetWriteHook(RecordWriteHook hook) { hook_ = std::move(hook); }

  Result<RecordChange> Create(const ChangeContext& change, std::string_view app_ref,
                              std::string_view object_ref, const nlohmann::json& values,
                              FieldErrors* errors);
  Result<RecordChange> Update(const ChangeContext& change, std::string_view app_ref,
                              std::string_view record_ref, const nlohmann::json& changes,
                              const VersionCheck& check, FieldErrors* errors);
  Result<RecordChange> Delete(const ChangeContext& change, std::string_view app_ref,
                              std::string_view record_ref, const VersionCheck& check);
  Result<Record> Get(const std::string& org_id, std::string_view app_ref,
                     std::string_view record_ref);
  Result<Page<Record>> List(const std::string& org_id, std::string_view app_ref,
                            std::string_view object_ref, const RecordQuery& query,
                            FieldErrors* errors);

 private:
  // A cached schema, or nullptr.
  std::shared_ptr<const AppSchema> Cached(const std::string& org_id, std::string_view app_ref);
  void Remember(const std::string& org_id, std::string_view app_ref,
                std::shared_ptr<const AppSchema> schema);
  void Forget(const std::string& org_id, std::string_view app_ref);
  // The current schema inside `tx`: the cached one when its version matches
  // (locking the app row FOR SHARE on PostgreSQL when `lock`), else reloaded.
  Result<std::shared_ptr<const AppSchema>> CurrentSchema(store::Tx& tx, const std::string& org_id,
                                                         std::string_view app_ref, bool lock);

  static constexpr size_t kMaxCachedApps = 1024;

  std::shared_ptr<store::Database> db_;
  std::shared_ptr<const Clock> clock_;
  RecordWriteHook hook_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<const AppSchema>> cache_;  // guarded by mutex_
};

}  // namespace quarry::domain
