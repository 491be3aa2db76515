// Migrations 300-399: apps, objects, fields, records.
//
// Why these shapes:
//   - apps.record_seq is the per-app handle counter, incremented with
//     UPDATE ... RETURNING in each record's own transaction (gapless; the row
//     lock orders concurrent creates on PostgreSQL).
//   - apps.schema_version is bumped by every change to the app, its objects or
//     their fields; record writes compare it with the definitions they
//     validated against (safe caching on any number of nodes).
//   - records.values_json holds every value of a record in one JSON object;
//     list order columns are indexed per object, handles per app.
//   - record_unique_values makes `unique` fields hold under concurrency: its
//     primary key is (field, value hash), inserted in the record's transaction.
//   - Foreign keys cascade from apps to objects, fields and records, so deleting
//     an app or object (the API asks for force=true when records exist) leaves
//     nothing behind. Other modules' tables reference apps(id) (agent
//     connections), which is why apps has a plain TEXT primary key and org_id.

#include "domain/schema.h"

namespace quarry::domain {
namespace {

constexpr const char* kCreateAppTables = R"sql(
CREATE TABLE apps (
  id TEXT PRIMARY KEY,
  org_id TEXT NOT NULL,
  name TEXT NOT NULL,
  namespace TEXT NOT NULL,
  handle TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  record_seq BIGINT NOT NULL DEFAULT 0,
  schema_version BIGINT NOT NULL DEFAULT 1,
  version BIGINT NOT NULL DEFAULT 1,
  created_by TEXT NOT NULL DEFAULT '',
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (org_id, namespace),
  UNIQUE (org_id, handle)
);
CREATE INDEX apps_org_created ON apps (org_id, created_at, id);
CREATE TABLE app_objects (
  id TEXT PRIMARY KEY,
  org_id TEXT NOT NULL,
  app_id TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  api_name TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  version BIGINT NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (app_id, api_name)
);
CREATE TABLE app_fields (
  id TEXT PRIMARY KEY,
  org_id TEXT NOT NULL,
  app_id TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
  object_id TEXT NOT NULL REFERENCES app_objects (id) ON DELETE CASCADE,
  api_name TEXT NOT NULL,
  label TEXT NOT NULL,
  type TEXT NOT NULL,
  required BIGINT NOT NULL DEFAULT 0,
  is_unique BIGINT NOT NULL DEFAULT 0,
  default_json TEXT,
  options_json TEXT NOT NULL DEFAULT '[]',
  max_length BIGINT,
  position BIGINT NOT NULL DEFAULT 0,
  version BIGINT NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (object_id, api_name)
);
CREATE INDEX app_fields_app ON app_fields (app_id);
CREATE TABLE records (
  id TEXT PRIMARY KEY,
  org_id TEXT NOT NULL,
  app_id TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
  object_id TEXT NOT NULL REFERENCES app_objects (id) ON DELETE CASCADE,
  number BIGINT NOT NULL,
  handle TEXT NOT NULL,
  values_json TEXT NOT NULL,
  version BIGINT NOT NULL DEFAULT 1,
  created_by TEXT NOT NULL DEFAULT '',
  updated_by TEXT NOT NULL DEFAULT '',
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (app_id, number)
);
CREATE INDEX records_object_created ON records (object_id, created_at, number);
CREATE INDEX records_object_updated ON records (object_id, updated_at, number);
CREATE TABLE record_unique_values (
  field_id TEXT NOT NULL REFERENCES app_fields (id) ON DELETE CASCADE,
  value_hash TEXT NOT NULL,
  record_id TEXT NOT NULL REFERENCES records (id) ON DELETE CASCADE,
  PRIMARY KEY (field_id, value_hash)
);
CREATE INDEX record_unique_values_record ON record_unique_values (record_id);
)sql";

}  // namespace

std::vector<store::Migration> AppMigrations() {
  return {
      {300, "create apps, objects, fields, records", kCreateAppTables, ""},
  };
}

}  // namespace quarry::domain
