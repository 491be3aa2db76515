#pragma once
// Parsed automation versions, shared by the trigger hook, the executor and
// the facade: a definition is validated against the app's current schema
// and the organization's agents and services (SpecEnvironment), compiled
// into a Program and cached per (automation, version). Published versions
// are immutable, so a cached program stays right until the app's schema
// changes; the cache key includes the schema version for that reason.
//
// Thread safety: ProgramCache is thread-safe.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "domain/apps.h"
#include "domain/fields.h"
#include "domain/records.h"
#include "engine/automation_spec.h"
#include "store/database.h"

namespace quarry::engine {

// A record as value references see it ({record.*}): its values plus id,
// handle, created_at and updated_at.
nlohmann::json RecordScopeJson(const domain::Record& record);

// The environment of an app inside `tx`: its schema, the agents connected
// to it and the organization's AI services.
Result<SpecEnvironment> LoadSpecEnvironment(store::Tx& tx, const std::string& org_id, const std::string& app_id,
                                            std::shared_ptr<const domain::AppSchema>* schema_out);

// A validated, compiled definition with the schema it was validated against.
struct LoadedProgram {
  Program program{};
  std::shared_ptr<const domain::AppSchema> schema{};
  const domain::ObjectSchema* object = nullptr;  // the automation's object, inside `schema`
};

class RunStore;

class ProgramCache {
 public:
  explicit ProgramCache(RunStore& store) : store_(store) {}

  // The program of a published version (version > 0), or of `definition`
  // when version == 0 (a draft under test; not cached). Loads the version
  // and the environment in `tx`. FailedPrecondition (with the validation
  // problems) when the definition no longer validates, e.g. after a field
  // was deleted.
  Result<std::shared_ptr<const LoadedProgram>> Get(store::Tx& tx, const std::string& org_id,
                                                   const std::string& app_id, const std::string& automation_id,
                                                   int64_t version, const nlohmann::json* definition);
  void Clear();

 private:
  static constexpr size_t kMaxEntries = 4096;
  RunStore& store_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const LoadedProgram>> entries_;  // "aut/version/schema_version"
};

}  // namespace quarry::engine
