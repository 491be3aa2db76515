#pragma once
// `quarry keys rotate [--data-dir DIR] [--db URL] [--rewrap-only]`: rotates
// the master key and re-encrypts every stored secret under the new key.
//
// Without --rewrap-only it first appends a new key to <data dir>/master.keys
// (the old keys stay: backups need them). Then it re-encrypts, in small
// transactions, every secret not yet under the primary key, and prints what
// it did. It is safe while `quarry serve` runs on the same data: a server
// meeting the new key id re-reads the key file, and starts sealing with the
// new key within a few seconds; a second re-wrap pass, after that interval,
// catches secrets the server wrote meanwhile.
//
// With QUARRY_MASTER_KEY (keys from the environment) there is no file to
// rotate: set QUARRY_MASTER_KEY to the new key and QUARRY_OLD_MASTER_KEYS to
// the old ones, then run with --rewrap-only.
//
// --data-dir and --db default as for `quarry serve` (QUARRY_DATA_DIR,
// QUARRY_DB, "quarry-data", sqlite:<data dir>/quarry.db).
// Exit codes: 0 done; 1 the rotation or re-encryption failed; 2 invalid
// options or configuration (no key file, keys from the environment without
// --rewrap-only, a database without the secrets table).

#include <CLI/CLI.hpp>

namespace quarry::cli {

void RegisterKeysCommand(CLI::App& app);

}  // namespace quarry::cli
