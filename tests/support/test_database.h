#pragma once
// Test support: a fresh, empty database for tests parameterised on the
// engine, so that one test body checks SQLite and PostgreSQL alike.
//
// Header-only: the including test links the store module itself.

#include <memory>
#include <string>

#include "common/status.h"
#include "store/database.h"
#include "tests/support/postgres_cluster.h"
#include "tests/support/scratch_dir.h"

// Asserts that a Status or Result is OK, printing the status otherwise.
#ifndef QUARRY_ASSERT_OK
#define QUARRY_ASSERT_OK(expr)                                               \
  do {                                                                       \
    const ::quarry::Status quarry_s_ = ::quarry::internal::AsStatus((expr)); \
    ASSERT_TRUE(quarry_s_.ok()) << quarry_s_.ToString();                     \
  } while (false)
#endif

namespace quarry::testing {

struct TestDatabase {
  std::shared_ptr<store::Database> db{};  // null when skipped or failed
  std::string skip_reason{};             // set when PostgreSQL is unavailable: skip the test with it
  Status status{};                       // why opening failed otherwise
};

// `engine` "postgresql": a new database in the shared PostgreSQL cluster;
// anything else: SQLite in `scratch`.
inline TestDatabase OpenTestDatabase(const std::string& engine, const ScratchDir& scratch) {
  TestDatabase out;
  std::string url;
  if (engine == "postgresql") {
    PostgresDatabase pg = SharedPostgresDatabase();
    if (pg.url.empty()) {
      out.skip_reason = "PostgreSQL unavailable: " + pg.skip_reason;
      return out;
    }
    url = pg.url;
  } else {
    url = "sqlite:" + scratch.Path("quarry.db");
  }
  auto opened = store::Database::Open(url);
  if (!opened.ok()) {
    out.status = opened.status();
    return out;
  }
  out.db = std::shared_ptr<store::Database>(std::move(*opened));
  return out;
}

}  // namespace quarry::testing
