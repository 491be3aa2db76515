#include "cli/platform.h"

#include <sys/stat.h>

#include <filesystem>
#include <system_error>

#include <spdlog/spdlog.h>

#include "common/metrics.h"
#include "domain/accounts.h"
#include "domain/schema.h"
#include "engine/engine.h"
#include "engine/provider_clients.h"
#include "engine/run_store.h"
#include "domain/records.h"
#include "sim/world.h"
#include "store/database.h"
#include "store/migrations.h"
#include "store/secrets.h"

namespace quarry::cli {
namespace {

// The data directory holds the master key file and the SQLite database:
// readable by the service user only.
Status PrepareDataDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return UnavailableError("cannot create the data directory " + dir + ": " + ec.message() +
                            "; choose a writable --data-dir");
  }
  if (::chmod(dir.c_str(), 0700) != 0) {
    return UnavailableError("cannot restrict the data directory " + dir +
                            " to its owner (chmod 700); check who owns it");
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Platform>> Platform::Start(const ServeConfig& config) {
  QUARRY_RETURN_IF_ERROR(ValidateServeConfig(config));
  QUARRY_RETURN_IF_ERROR(PrepareDataDir(config.data_dir));

  std::unique_ptr<Platform> platform(new Platform());
  auto context = std::make_shared<api::ServerContext>();
  context->clock = std::make_shared<SystemClock>();
  context->metrics = std::make_shared<MetricsRegistry>();

  store::KeyringOptions keyring_options;
  keyring_options.data_dir = config.data_dir;
  if (const char* key = std::getenv("QUARRY_MASTER_KEY"); key != nullptr && *key != '\0') {
    keyring_options.env_master_key = key;
  }
  auto keyring = store::Keyring::Load(keyring_options);
  if (!keyring.ok()) return keyring.status().WithContext("loading the master key");
  context->secrets = std::make_shared<store::SecretStore>(keyring.value());

  auto db = store::Database::Open(config.EffectiveDatabaseUrl());
  if (!db.ok()) return db.status().WithContext("opening the database");
  context->db = std::shared_ptr<store::Database>(std::move(db).value());
  QUARRY_RETURN_IF_ERROR(store::ApplyMigrations(*context->db, engine::AllServerMigrations())
                             .WithContext("applying database migrations"));

  auto token = domain::BootstrapIfEmpty(*context->db, *context->clock, config.admin_email);
  if (!token.ok()) return token.status().WithContext("creating the first administrator");
  if (token.value()) platform->first_admin_token_ = token.value()->reveal();

  if (config.embedded_sim) {
    auto sim = sim::SimServer::Start(sim::DemoWorld(), {.host = "127.0.0.1", .port = 0});
    if (!sim.ok()) return sim.status().WithContext("starting the embedded Bedrock emulator");
    platform->sim_ = std::move(sim).value();
  }

  context->settings.data_dir = config.data_dir;
  context->settings.default_endpoint_url =
      platform->sim_ ? platform->sim_->base_url() : config.default_endpoint_url;
  context->settings.provider_key_rotation_days_default = config.key_rotation_days;
  context->provider_clients = std::make_shared<engine::ProviderClients>(
      context->db, context->secrets, context->clock, context->settings.default_endpoint_url,
      context->metrics);

  context->records = std::make_shared<domain::RecordService>(context->db, context->clock);
  engine::EngineDeps engine_deps;
  engine_deps.db = context->db;
  engine_deps.clock = context->clock;
  engine_deps.metrics = context->metrics;
  engine_deps.provider_clients = context->provider_clients;
  engine_deps.records = context->records;
  engine::EngineOptions engine_options;
  engine_options.run_workers = config.engine_workers;
  engine_options.max_in_flight = config.engine_max_in_flight;
  engine_options.lease = std::chrono::seconds(config.engine_lease_seconds);
  engine_options.default_budget = {config.engine_requests_per_minute, config.engine_tokens_per_minute};
  auto engine = engine::Engine::Create(std::move(engine_deps), std::move(engine_options));
  if (!engine.ok()) return engine.status().WithContext("starting the automation engine");
  context->engine = std::shared_ptr<engine::Engine>(std::move(engine).value());
  QUARRY_RETURN_IF_ERROR(context->engine->Start().WithContext("starting the automation engine"));

  api::ApiServerOptions options;
  options.host = config.host;
  options.port = config.port;
  options.io_threads = config.io_threads;
  options.worker_threads = config.worker_threads;
  auto server = api::ApiServer::Start(context, options);
  if (!server.ok()) return server.status().WithContext("starting the API server");
  platform->server_ = std::move(server).value();
  platform->context_ = std::move(context);
  spdlog::info("quarry serve: listening on {} (database {})", platform->server_->base_url(),
               platform->context_->db->DisplayUrl());
  return platform;
}

Platform::~Platform() { Stop(); }

std::string Platform::base_url() const { return server_ ? server_->base_url() : std::string(); }

std::string Platform::emulator_url() const { return sim_ ? sim_->base_url() : std::string(); }

void Platform::Stop() {
  if (server_) server_->Stop();
  if (context_ && context_->engine) context_->engine->Drain(std::chrono::seconds(5));
  if (sim_) sim_->Stop();
}

}  // namespace quarry::cli
