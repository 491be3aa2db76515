#pragma once

#include <string>
// The parts of `quarry demo` (see demo_command.cc). Each prints its steps
// to stdout and, if a step does not behave as it must, reports it on stderr
// and throws CLI::RuntimeError(1), so a broken build never shows a demo that
// looks fine.

namespace quarry::cli {

// Part one: the protocol core, with no network.
void RunProtocolDemo();
// Part two: the Bedrock client against the built-in emulator, on loopback.
void RunEmulatorDemo();

struct PlatformDemoOptions {
  std::string data_dir{};      // must not hold a Quarry database yet
  int port = 8080;             // a free port is used when this one is taken
  bool exit_when_done = false; // otherwise serve until SIGINT/SIGTERM
};
// Part three: the platform walkthrough (demo_platform.cc).
void RunPlatformDemo(const PlatformDemoOptions& options);

}  // namespace quarry::cli
