#include "cli/commands.h"

namespace quarry::cli {

void RegisterBedrockCommand(CLI::App& parent) { (void)parent; }

}  // namespace quarry::cli
