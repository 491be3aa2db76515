#pragma once
// Process-wide logging set-up on spdlog. Logs go to stderr, as text for people
// or as one JSON object per line for collectors. Secrets must never be passed
// to a logger: types that hold them (aws::Credentials, ...) only print masked.

#include <string_view>

#include "common/status.h"

namespace quarry {

enum class LogFormat { kText, kJson };

struct LogOptions {
  LogFormat format = LogFormat::kText;
  // trace, debug, info, warn, error, critical, off.
  std::string_view level = "info";
};

// Installs the default logger. Fails with InvalidArgument on an unknown level.
// Call once, early in main(), before other threads start.
Status InitLogging(const LogOptions& options);

}  // namespace quarry
