#pragma once
// A throwaway PostgreSQL cluster for tests: Debian's server binaries
// (/usr/lib/postgresql/<N>/bin), initdb into a scratch directory with trust
// authentication, listening only on a Unix socket in that directory (no TCP),
// run as a non-root user (the "postgres" system user when the test runs as
// root, since PostgreSQL refuses to run as root), stopped and deleted when the
// last user of it is gone (process exit).
//
// One cluster per test process, started on first use; each caller gets a
// fresh database in it, so tests are isolated without paying for initdb
// each time. The cluster lives in /dev/shm when available (else the temp
// directory) and is copied from a template data directory made once by
// initdb and kept there (quarry_pg_template_<version>_uid<N>), so starting
// one costs a fraction of a second. Durability settings are off (fsync=off):
// it is for tests only.
//
// Thread safety: SharedPostgresDatabase may be called from any thread.

#include <string>

namespace quarry::testing {

struct PostgresDatabase {
  std::string url{};          // "postgresql://postgres@/<db>?host=<socket dir>" ("" when unavailable)
  std::string skip_reason{};  // why there is no server ("" when url is set)
};

// A new, empty database in the shared cluster. When PostgreSQL's server is not
// installed or cannot start, url is "" and skip_reason says why; callers then
// GTEST_SKIP() << skip_reason (loudly: the reason names the missing package).
PostgresDatabase SharedPostgresDatabase();

}  // namespace quarry::testing
