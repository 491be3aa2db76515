#pragma once
// The two parts of `quarry demo` (see demo_command.cc). Each prints its steps
// to stdout and, if a step does not behave as it must, reports it on stderr
// and throws CLI::RuntimeError(1), so a broken build never shows a demo that
// looks fine.

namespace quarry::cli {

// Part one: the protocol core, with no network.
void RunProtocolDemo();
// Part two: the Bedrock client against the built-in emulator, on loopback.
void RunEmulatorDemo();

}  // namespace quarry::cli
