#include "cli/commands.h"

namespace quarry::cli {

void RegisterDemoCommand(CLI::App& parent) { (void)parent; }

}  // namespace quarry::cli
