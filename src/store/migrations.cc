// Numbered migrations. Each runs in its own transaction together with the
// row that records it, so a migration is applied exactly once or not at all.

#include "store/migrations.h"

#include <algorithm>
#include <set>
#include <string>

#include "store/internal.h"

namespace quarry::store {
namespace {

constexpr std::string_view kCreateMigrationsTable =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version BIGINT PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " applied_at TEXT NOT NULL)";
constexpr std::string_view kSelectApplied = "SELECT version FROM schema_migrations ORDER BY version";
constexpr std::string_view kSelectAppliedOne =
    "SELECT version FROM schema_migrations WHERE version = $1";
constexpr std::string_view kInsertApplied =
    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)";
constexpr std::string_view kSelectMaxVersion = "SELECT MAX(version) FROM schema_migrations";
constexpr std::string_view kSqliteTableExists =
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'";
constexpr std::string_view kPostgresTableExists =
    "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() "
    "AND tablename = 'schema_migrations'";
// Serializes migrating nodes on PostgreSQL; released when the transaction
// ends. The key is an arbitrary constant private to Quarry ("Quarry" + 1).
constexpr std::string_view kAdvisoryLock = "SELECT pg_advisory_xact_lock($1)";
constexpr int64_t kAdvisoryLockKey = 0x51756172727901;

// Secrets (see secrets.h). Text everywhere: the sealed value is base64.
constexpr std::string_view kCreateSecrets =
    "CREATE TABLE secrets ("
    " id TEXT PRIMARY KEY,"
    " owner TEXT NOT NULL,"
    " purpose TEXT NOT NULL,"
    " key_id TEXT NOT NULL,"
    " sealed TEXT NOT NULL,"
    " created_at TEXT NOT NULL,"
    " updated_at TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS secrets_owner ON secrets (owner);"
    "CREATE INDEX IF NOT EXISTS secrets_key_id ON secrets (key_id)";

Status LockIfPostgres(Tx& tx) {
  if (tx.dialect() != Dialect::kPostgres) return Status::Ok();
  return tx.Query(kAdvisoryLock, {kAdvisoryLockKey}).status();
}

Status NewerSchemaError(int64_t recorded, int64_t known) {
  return FailedPreconditionError(
      "the database schema is at version " + std::to_string(recorded) +
      " but this Quarry binary knows migrations only up to version " + std::to_string(known) +
      ": the database was upgraded by a newer Quarry; run that version (or restore a backup "
      "taken before the upgrade)");
}

}  // namespace

std::vector<Migration> StoreMigrations() {
  return {Migration{1, "create secrets", std::string(kCreateSecrets), ""}};
}

Status ApplyMigrations(Database& db, std::vector<Migration> migrations) {
  std::sort(migrations.begin(), migrations.end(),
            [](const Migration& a, const Migration& b) { return a.version < b.version; });
  for (size_t i = 0; i < migrations.size(); ++i) {
    if (migrations[i].version <= 0) {
      return InvalidArgumentError("migration \"" + migrations[i].name + "\" has version " +
                                  std::to_string(migrations[i].version) +
                                  "; versions must be positive");
    }
    if (i > 0 && migrations[i].version == migrations[i - 1].version) {
      return InvalidArgumentError("two migrations have version " +
                                  std::to_string(migrations[i].version) + " (\"" +
                                  migrations[i - 1].name + "\" and \"" + migrations[i].name +
                                  "\"); give each a unique number in its module's range");
    }
  }
  const int64_t known = migrations.empty() ? 0 : migrations.back().version;

  std::set<int64_t> applied;
  QUARRY_RETURN_IF_ERROR(db.Write([&](Tx& tx) -> Status {
                             applied.clear();
                             QUARRY_RETURN_IF_ERROR(LockIfPostgres(tx));
                             QUARRY_RETURN_IF_ERROR(tx.Exec(kCreateMigrationsTable));
                             QUARRY_ASSIGN_OR_RETURN(Rows rows, tx.Query(kSelectApplied));
                             for (const Row& row : rows.rows) applied.insert(row.Int(0));
                             return Status::Ok();
                           })
                             .WithContext("preparing schema migrations"));
  if (!applied.empty() && *applied.rbegin() > known) {
    return NewerSchemaError(*applied.rbegin(), known);
  }

  for (const Migration& migration : migrations) {
    if (applied.count(migration.version) != 0) continue;
    const std::string& sql = (db.dialect() == Dialect::kPostgres && !migration.postgres_sql.empty())
                                 ? migration.postgres_sql
                                 : migration.sqlite_sql;
    Status status = db.Write([&](Tx& tx) -> Status {
      QUARRY_RETURN_IF_ERROR(LockIfPostgres(tx));
      // Another node may have applied it while we waited for the lock.
      QUARRY_ASSIGN_OR_RETURN(Rows done, tx.Query(kSelectAppliedOne, {migration.version}));
      if (!done.empty()) return Status::Ok();
      QUARRY_ASSIGN_OR_RETURN(Rows newest, tx.Query(kSelectMaxVersion));
      if (!newest.empty() && !newest.rows[0].IsNull(0) && newest.rows[0].Int(0) > known) {
        return NewerSchemaError(newest.rows[0].Int(0), known);
      }
      QUARRY_RETURN_IF_ERROR(tx.Exec(sql));
      return tx
          .Exec(kInsertApplied, {migration.version, migration.name, internal::NowIso8601Millis()})
          .status();
    });
    if (!status.ok()) {
      if (status.code() == StatusCode::kFailedPrecondition &&
          status.message().find("knows migrations only up to") != std::string::npos) {
        return status;
      }
      return status.WithContext("applying migration " + std::to_string(migration.version) +
                                " (\"" + migration.name + "\")");
    }
  }
  return Status::Ok();
}

Result<int64_t> SchemaVersion(Database& db) {
  int64_t version = 0;
  QUARRY_RETURN_IF_ERROR(db.Read([&](Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(Rows exists, tx.Query(tx.dialect() == Dialect::kPostgres
                                                      ? kPostgresTableExists
                                                      : kSqliteTableExists));
    if (exists.empty()) return Status::Ok();
    QUARRY_ASSIGN_OR_RETURN(Rows rows, tx.Query(kSelectMaxVersion));
    if (!rows.empty()) version = rows.rows[0].Int(0);
    return Status::Ok();
  }));
  return version;
}

}  // namespace quarry::store
