#include "cli/keys_command.h"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include "cli/serve_config.h"
#include "store/database.h"
#include "store/migrations.h"
#include "store/secrets.h"

namespace quarry::cli {
namespace {

constexpr int kExitFailed = 1;
constexpr int kExitInvalid = 2;
// Longer than the interval at which a running server notices a new key file
// (KeyringOptions::key_file_check_interval_ms), so after this wait no server
// seals with the old key any more.
constexpr auto kServerSwitchDelay = std::chrono::milliseconds(2500);

struct KeysOptions {
  std::string data_dir;
  std::string db_url;
  bool rewrap_only = false;
};

[[noreturn]] void Fail(int code, const Status& status) {
  std::cerr << "quarry keys rotate: " << status.ToString() << "\n";
  throw CLI::RuntimeError(code);
}

int ExitCodeFor(const Status& status) {
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kFailedPrecondition:
      return kExitInvalid;
    default:
      return kExitFailed;
  }
}

void RunRotate(const KeysOptions& flags) {
  ServeConfig config;
  Status env = ApplyServeEnvironment(QuarryEnvironment(), &config);
  if (!env.ok()) Fail(kExitInvalid, env);
  if (!flags.data_dir.empty()) config.data_dir = flags.data_dir;
  if (!flags.db_url.empty()) config.database_url = flags.db_url;

  // A mistyped --data-dir or --db must not create a new key file or an
  // empty database (Keyring::Load and Database::Open would).
  const char* env_key_value = std::getenv("QUARRY_MASTER_KEY");
  const bool env_key = env_key_value != nullptr && *env_key_value != '\0';
  const std::string key_file = config.data_dir + "/master.keys";
  std::error_code ignored;
  if (!env_key && !std::filesystem::exists(key_file, ignored)) {
    Fail(kExitInvalid, FailedPreconditionError("there is no key file " + key_file +
                                               "; check --data-dir (it must be the directory "
                                               "`quarry serve` uses)"));
  }
  const std::string url = config.EffectiveDatabaseUrl();
  if (url.rfind("sqlite:", 0) == 0 && url != "sqlite::memory:" &&
      !std::filesystem::exists(url.substr(7), ignored)) {
    Fail(kExitInvalid, FailedPreconditionError("there is no database file " + url.substr(7) +
                                               "; check --db and --data-dir"));
  }

  store::KeyringOptions keyring_options;
  keyring_options.data_dir = config.data_dir;
  auto keyring = store::Keyring::Load(keyring_options);
  if (!keyring.ok()) Fail(ExitCodeFor(keyring.status()), keyring.status().WithContext("loading the master keys"));

  auto db = store::Database::Open(url);
  if (!db.ok()) Fail(ExitCodeFor(db.status()), db.status().WithContext("opening the database"));
  auto version = store::SchemaVersion(**db);
  if (!version.ok()) Fail(kExitFailed, version.status().WithContext("reading the schema version"));
  if (*version < 1) {
    Fail(kExitInvalid,
         FailedPreconditionError("the database " + (*db)->DisplayUrl() +
                                 " has no secrets table yet; check --db, or start `quarry serve` "
                                 "once to create the schema"));
  }

  const std::string old_primary = (*keyring)->primary_key_id();
  if (!flags.rewrap_only) {
    Status rotated = (*keyring)->RotateKeyFile();
    if (!rotated.ok()) Fail(ExitCodeFor(rotated), rotated);
    std::cout << "New primary key " << (*keyring)->primary_key_id() << " added to "
              << config.data_dir << "/master.keys (previous primary " << old_primary
              << "; " << (*keyring)->key_ids().size() << " keys kept)\n";
  }
  const auto rotated_at = std::chrono::steady_clock::now();

  store::SecretStore secrets(*keyring);
  auto report = secrets.RewrapAll(**db);
  if (!report.ok()) Fail(kExitFailed, report.status().WithContext("re-encrypting secrets"));
  int64_t rewrapped = report->rewrapped;
  if (!flags.rewrap_only) {
    // Secrets a running server sealed with the old key before it noticed the
    // new file.
    std::this_thread::sleep_until(rotated_at + kServerSwitchDelay);
    auto late = secrets.RewrapAll(**db);
    if (!late.ok()) Fail(kExitFailed, late.status().WithContext("re-encrypting secrets"));
    rewrapped += late->rewrapped;
  }
  std::cout << "Re-encrypted " << rewrapped << " secrets under key "
            << (*keyring)->primary_key_id() << "; " << report->already_current
            << " were already under it\n";
}

}  // namespace

void RegisterKeysCommand(CLI::App& app) {
  CLI::App* keys = app.add_subcommand("keys", "Manage the master keys that encrypt stored secrets");
  keys->require_subcommand(1);
  CLI::App* rotate = keys->add_subcommand(
      "rotate", "Add a new master key and re-encrypt every stored secret under it");
  auto flags = std::make_shared<KeysOptions>();
  rotate->add_option("--data-dir", flags->data_dir,
                     "Data directory holding master.keys (default: as for quarry serve)");
  rotate->add_option("--db", flags->db_url,
                     "Database URL: sqlite:PATH or postgresql://... (default: as for quarry serve)");
  rotate->add_flag("--rewrap-only", flags->rewrap_only,
                   "Do not add a key; only re-encrypt secrets not under the current primary key");
  rotate->callback([flags] { RunRotate(*flags); });
}

}  // namespace quarry::cli
