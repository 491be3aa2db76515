#pragma once
// Numbered schema migrations, applied at start-up.
//
// Each migration has a unique, increasing version and SQL for each dialect
// (usually the same text). ApplyMigrations records applied versions in the
// table schema_migrations(version BIGINT PRIMARY KEY, name TEXT, applied_at
// TEXT) and applies the missing ones in order, each in its own transaction,
// so a failed migration leaves the schema at the previous version. On
// PostgreSQL an advisory lock serializes nodes starting at once; on SQLite the
// writer does. A database whose recorded version is newer than any known
// migration (an older binary on a newer schema) is refused with
// FailedPrecondition naming both versions.
//
// Version ranges by owner, so modules never collide:
//   1-99    store (secrets)            100-199 domain: accounts, audit, idempotency
//   200-299 domain: providers, services, agents, conversations
//   300-399 domain: apps, objects, records
//   400-499 engine (automations, runs)

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "store/database.h"

namespace quarry::store {

struct Migration {
  int64_t version = 0;
  std::string name{};          // "create secrets"
  std::string sqlite_sql{};    // one or more statements separated by ';'
  std::string postgres_sql{};  // empty: same as sqlite_sql
};

// The store's own migrations (the secrets table).
std::vector<Migration> StoreMigrations();

// Applies `migrations` (any order; sorted by version here). Pass every
// module's migrations in ONE call: the "newer schema" check compares the
// database with the highest version given. Each missing version is applied,
// also one below the recorded maximum (modules number in their own ranges).
// Errors:
// InvalidArgument for duplicate versions, FailedPrecondition as above, or
// the failing migration's error with its version and name as context.
Status ApplyMigrations(Database& db, std::vector<Migration> migrations);

// The highest applied version (0 for an empty database).
Result<int64_t> SchemaVersion(Database& db);

}  // namespace quarry::store
