#pragma once
// Configuration of `quarry serve`: built-in defaults, then a TOML file, then
// environment variables, then command-line flags (each later source wins).
//
// The TOML file (every key optional):
//   [server]   host = "127.0.0.1"   port = 8080   io_threads = 2   worker_threads = 64
//              data_dir = "quarry-data"
//   [database] url = "sqlite:quarry-data/quarry.db" | "postgresql://..."
//   [bedrock]  embedded_sim = false   default_endpoint_url = ""
//   [log]      format = "text" | "json"   level = "info"
//   [security] key_rotation_days = 90    admin_email = "admin@example.com"
//   [engine]   workers = true   max_in_flight = 20000   lease_seconds = 30
//              requests_per_minute = 0   tokens_per_minute = 0   (per provider/model; 0 = unlimited)
// Environment: QUARRY_HOST, QUARRY_PORT, QUARRY_DATA_DIR, QUARRY_DB,
// QUARRY_EMBEDDED_SIM (1/true/yes), QUARRY_BEDROCK_ENDPOINT_URL,
// QUARRY_LOG_FORMAT, QUARRY_LOG_LEVEL, QUARRY_ADMIN_EMAIL, QUARRY_ENGINE_WORKERS (1/0).
//
// Errors name the file, the key and what is allowed: an unknown key is an
// error (a typo must not be ignored silently), as is a value of the wrong
// type or out of range.

#include <cstdint>
#include <map>
#include <string>

#include "common/status.h"

namespace quarry::cli {

struct ServeConfig {
  std::string host = "127.0.0.1";
  int port = 8080;
  int io_threads = 2;
  int worker_threads = 64;
  std::string data_dir = "quarry-data";
  std::string database_url{};  // "" = "sqlite:<data_dir>/quarry.db"
  bool embedded_sim = false;
  std::string default_endpoint_url{};
  std::string log_format = "text";
  std::string log_level = "info";
  int key_rotation_days = 90;
  std::string admin_email = "admin@example.com";
  // The automation engine: whether this node executes runs (an API-only
  // node still enqueues them), how many it holds at once, its lease length,
  // and the default Bedrock budget per provider/model key.
  bool engine_workers = true;
  int engine_max_in_flight = 20'000;
  int engine_lease_seconds = 30;
  int64_t engine_requests_per_minute = 0;
  int64_t engine_tokens_per_minute = 0;

  // database_url, or the SQLite file in data_dir.
  std::string EffectiveDatabaseUrl() const;
};

// Applies the TOML text (as read from `source_name`) over `config`.
Status ApplyServeToml(const std::string& text, const std::string& source_name,
                      ServeConfig* config);
// Applies the QUARRY_* variables present in `env` over `config`.
Status ApplyServeEnvironment(const std::map<std::string, std::string>& env, ServeConfig* config);
// Checks ranges and combinations after all sources were applied.
Status ValidateServeConfig(const ServeConfig& config);

// The QUARRY_* variables of this process.
std::map<std::string, std::string> QuarryEnvironment();

}  // namespace quarry::cli
