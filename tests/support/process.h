#pragma once
// Test support: run a child process without a shell, and find the Python
// interpreters whose botocore serves as our independent oracle.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace quarry::testing {

struct ProcessResult {
  int exit_code = -1;  // the exit status, or 128 + signal number
  std::string stdout_text;
  std::string stderr_text;
};

// Runs argv[0] (looked up on PATH) with `stdin_text` on its standard input and
// collects both output streams. Never throws; a failure to start the process
// shows as exit code 127 with the reason on stderr_text.
ProcessResult RunProcess(const std::vector<std::string>& argv, std::string_view stdin_text = {});

struct PythonOracle {
  std::string interpreter;       // path or name to run
  std::string botocore_version;  // e.g. "1.29.27"
};

// Debian's /usr/bin/python3 with its python3-botocore (1.29 on bookworm),
// which scripts/install-deps.sh installs. nullopt if it is missing.
std::optional<PythonOracle> DebianBotocore();

// The `python3` on PATH when its botocore is at least 1.43 (it has the
// Bedrock models); nullopt otherwise.
std::optional<PythonOracle> ModernBotocore();

}  // namespace quarry::testing
