#include "cli/commands.h"

namespace quarry::cli {

void RegisterSimCommand(CLI::App& parent) { (void)parent; }

}  // namespace quarry::cli
