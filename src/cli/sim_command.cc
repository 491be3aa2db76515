// `quarry sim`: runs the Bedrock emulator (src/sim) on a local port.
//
// Its first stdout lines are machine-readable and flushed at once, so a test
// or a script can read the address and the demo credentials:
//   listening on http://127.0.0.1:PORT
//   AWS_ACCESS_KEY_ID=...
//   AWS_SECRET_ACCESS_KEY=...
//   AWS_REGION=us-east-1
//   AGENT_ALIAS_ARN=arn:aws:bedrock:...:agent-alias/...
// It then serves until SIGINT or SIGTERM, or until stdin reaches EOF with
// --exit-on-stdin-eof.

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

#include "cli/commands.h"
#include "sim/sim_server.h"
#include "sim/world.h"

namespace quarry::cli {
namespace {

struct SimArgs {
  std::string config_path;
  std::string host = "127.0.0.1";
  int port = 0;
  int threads = 1;
  bool print_config = false;
  bool exit_on_stdin_eof = false;
};

void RunSim(const SimArgs& args) {
  if (args.print_config) {
    std::cout << sim::DemoWorldConfigText();
    std::cout.flush();
    return;
  }
  std::string text;
  if (args.config_path.empty()) {
    text = sim::DemoWorldConfigText();
  } else {
    std::ifstream in(args.config_path, std::ios::binary);
    if (!in) {
      std::cerr << "quarry sim: cannot read --config " << args.config_path
                << "; check the path (start from `quarry sim --print-config > world.json`)\n";
      throw CLI::RuntimeError(2);
    }
    std::ostringstream buffer;
    buffer << in.rdbuf();
    text = buffer.str();
  }
  auto world = sim::ParseWorldConfig(text);
  if (!world.ok()) {
    std::cerr << "quarry sim: invalid world config"
              << (args.config_path.empty() ? std::string() : " " + args.config_path) << ": "
              << world.status().message() << "\n";
    throw CLI::RuntimeError(2);
  }
  // What to print: the first user with an access key, and the first agent alias.
  std::string key_id, secret, region = world.value().regions.front().name, alias_arn;
  for (const sim::AccountSpec& account : world.value().accounts) {
    for (const sim::UserSpec& user : account.users) {
      if (key_id.empty() && !user.access_keys.empty()) {
        key_id = user.access_keys.front().id;
        secret = user.access_keys.front().secret;
      }
    }
  }
  for (const sim::AgentSpec& agent : world.value().agents) {
    for (const sim::AgentAliasSpec& alias : agent.aliases) {
      if (alias_arn.empty() && !alias.agent_version.empty()) {
        alias_arn = "arn:aws:bedrock:" + agent.region + ":" + agent.account + ":agent-alias/" + agent.id + "/" + alias.id;
      }
    }
  }

  // Block the stop signals in every thread (the server's threads inherit the
  // mask) and wait for them here with sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  sim::SimServerOptions options;
  options.host = args.host;
  options.port = args.port;
  options.threads = args.threads;
  auto server = sim::SimServer::Start(std::move(world).value(), options);
  if (!server.ok()) {
    std::cerr << "quarry sim: " << server.status().message() << "\n";
    throw CLI::RuntimeError(1);
  }
  std::cout << "listening on " << server.value()->base_url() << "\n";
  if (!key_id.empty()) {
    std::cout << "AWS_ACCESS_KEY_ID=" << key_id << "\n" << "AWS_SECRET_ACCESS_KEY=" << secret << "\n";
  }
  std::cout << "AWS_REGION=" << region << "\n";
  if (!alias_arn.empty()) std::cout << "AGENT_ALIAS_ARN=" << alias_arn << "\n";
  std::cout.flush();

  if (args.exit_on_stdin_eof) {
    // Detached: a read() blocked on a terminal cannot be interrupted portably;
    // the process exits after the signal anyway.
    std::thread([] {
      char buffer[256];
      while (read(STDIN_FILENO, buffer, sizeof buffer) > 0) {
      }
      kill(getpid(), SIGTERM);
    }).detach();
  }
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  server.value()->Stop();
  std::cerr << "quarry sim: stopped (" << (signal_number == SIGINT ? "SIGINT" : "SIGTERM") << ")\n";
}

}  // namespace

void RegisterSimCommand(CLI::App& app) {
  auto args = std::make_shared<SimArgs>();
  CLI::App* sim = app.add_subcommand("sim", "Run the local Amazon Bedrock emulator (see docs/emulator.md)");
  sim->add_option("--config", args->config_path, "World config JSON (default: the demo world)");
  sim->add_option("--host", args->host, "IP address to listen on")->capture_default_str();
  sim->add_option("--port", args->port, "Port to listen on (0 picks a free port)")->capture_default_str();
  sim->add_option("--threads", args->threads, "I/O threads serving requests")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  sim->add_flag("--print-config", args->print_config, "Print the demo world's config (documented JSON) and exit");
  sim->add_flag("--exit-on-stdin-eof", args->exit_on_stdin_eof, "Stop when standard input reaches end of file");
  sim->callback([args] { RunSim(*args); });
}

}  // namespace quarry::cli
