// `quarry serve`: the Quarry server (REST API, and in later issues the
// automation engine and the web UI).
//
// Its first stdout lines are machine-readable and flushed at once, so tests
// and scripts can find the server:
//   listening on http://127.0.0.1:PORT
//   emulator on http://127.0.0.1:PORT          (with --embedded-sim)
//   admin token: qk_...                        (first start only; shown once)
// It serves until SIGINT or SIGTERM (or stdin EOF with --exit-on-stdin-eof),
// then drains in-flight requests and exits 0.

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "cli/commands.h"
#include "cli/platform.h"
#include "cli/serve_config.h"
#include "common/log.h"
#include "sim/world.h"

namespace quarry::cli {
namespace {

struct ServeFlags {
  std::string config_path;
  std::string host, data_dir, db, log_format;
  int port = -1;
  bool embedded_sim = false;
  bool exit_on_stdin_eof = false;
};

[[noreturn]] void Fail(const Status& status) {
  std::cerr << "quarry serve: " << status.message() << "\n";
  throw CLI::RuntimeError(1);
}

ServeConfig BuildConfig(const ServeFlags& flags) {
  ServeConfig config;
  if (!flags.config_path.empty()) {
    std::ifstream in(flags.config_path, std::ios::binary);
    if (!in) {
      Fail(InvalidArgumentError("cannot read the config file " + flags.config_path +
                                "; check the path (see docs/serve.md for the format)"));
    }
    std::ostringstream text;
    text << in.rdbuf();
    const Status status = ApplyServeToml(text.str(), flags.config_path, &config);
    if (!status.ok()) Fail(status);
  }
  const Status env_status = ApplyServeEnvironment(QuarryEnvironment(), &config);
  if (!env_status.ok()) Fail(env_status);
  if (!flags.host.empty()) config.host = flags.host;
  if (flags.port >= 0) config.port = flags.port;
  if (!flags.data_dir.empty()) config.data_dir = flags.data_dir;
  if (!flags.db.empty()) config.database_url = flags.db;
  if (!flags.log_format.empty()) config.log_format = flags.log_format;
  if (flags.embedded_sim) config.embedded_sim = true;
  const Status valid = ValidateServeConfig(config);
  if (!valid.ok()) Fail(valid);
  return config;
}

void RunServe(const ServeFlags& flags, const std::string& log_level) {
  ServeConfig config = BuildConfig(flags);
  if (!log_level.empty()) config.log_level = log_level;
  const Status logging = InitLogging(
      {.format = config.log_format == "json" ? LogFormat::kJson : LogFormat::kText,
       .level = config.log_level});
  if (!logging.ok()) Fail(logging);

  // Block the stop signals in every thread (the servers' threads inherit the
  // mask) and wait for them here.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto platform = Platform::Start(config);
  if (!platform.ok()) Fail(platform.status());
  std::cout << "listening on " << platform.value()->base_url() << "\n";
  if (!platform.value()->emulator_url().empty()) {
    std::cout << "emulator on " << platform.value()->emulator_url() << " (demo keys: "
              << sim::kDemoAccessKeyId << ", region us-east-1)\n";
  }
  if (platform.value()->first_admin_token()) {
    std::cout << "admin token: " << *platform.value()->first_admin_token()
              << "   (shown once; `quarry login --token` with it)\n";
  }
  std::cout.flush();

  if (flags.exit_on_stdin_eof) {
    std::thread([] {
      char buffer[256];
      while (read(STDIN_FILENO, buffer, sizeof buffer) > 0) {
      }
      kill(getpid(), SIGTERM);
    }).detach();
  }
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  platform.value()->Stop();
  std::cerr << "quarry serve: stopped (" << (signal_number == SIGINT ? "SIGINT" : "SIGTERM")
            << ")\n";
}

}  // namespace

void RegisterServeCommand(CLI::App& app) {
  auto flags = std::make_shared<ServeFlags>();
  auto log_level = std::make_shared<std::string>();
  CLI::App* serve = app.add_subcommand("serve", "Run the Quarry server (see docs/serve.md)");
  serve->add_option("--config", flags->config_path, "TOML config file");
  serve->add_option("--host", flags->host, "IP address to listen on (default 127.0.0.1)");
  serve->add_option("--port", flags->port, "Port (default 8080; 0 picks a free port)");
  serve->add_option("--data-dir", flags->data_dir, "Directory for the database and the master key");
  serve->add_option("--db", flags->db, "sqlite:PATH or postgresql://... (default: SQLite in the data dir)");
  serve->add_option("--log-format", flags->log_format, "text or json");
  serve->add_flag("--embedded-sim", flags->embedded_sim,
                  "Run the Bedrock emulator in-process and send Bedrock calls to it");
  serve->add_flag("--exit-on-stdin-eof", flags->exit_on_stdin_eof,
                  "Stop when standard input reaches end of file");
  serve->callback([flags, log_level] { RunServe(*flags, *log_level); });
}

}  // namespace quarry::cli
