#pragma once
// The running product in one process: data directory, keyring, database with
// migrations applied, first-start bootstrap, the Bedrock emulator when asked
// for, and the API server. `quarry serve` runs one until a stop signal;
// `quarry demo` runs one on a scratch directory and walks the seed through
// its API.
//
// Thread safety: Start/Stop from one thread; the members are thread-safe.

#include <memory>
#include <optional>
#include <string>

#include "api/api.h"
#include "api/server.h"
#include "cli/serve_config.h"
#include "common/status.h"
#include "sim/sim_server.h"

namespace quarry::cli {

class Platform {
 public:
  // Creates the data directory (0700) when missing, loads or creates the
  // master key, opens the database and applies migrations, bootstraps an
  // empty database (first admin + one-time API token), starts the emulator
  // (config.embedded_sim) and the API server. Errors say which step failed
  // and what to do.
  static Result<std::unique_ptr<Platform>> Start(const ServeConfig& config);
  ~Platform();

  std::string base_url() const;
  // The emulator's URL, "" without it.
  std::string emulator_url() const;
  // Set only on the first start of an empty database: the admin's API token,
  // shown once.
  const std::optional<std::string>& first_admin_token() const { return first_admin_token_; }
  api::ServerContext& context() { return *context_; }
  // Stops the API server (draining requests), drains the automation engine
  // (runs in flight get a few seconds to reach their next commit; the rest
  // go back to the queue), then stops the emulator.
  void Stop();

 private:
  Platform() = default;
  std::unique_ptr<sim::SimServer> sim_;
  std::shared_ptr<api::ServerContext> context_;
  std::unique_ptr<api::ApiServer> server_;
  std::optional<std::string> first_admin_token_;
};

}  // namespace quarry::cli
