#include "cli/commands.h"

namespace quarry::cli {

void RegisterAwsSignCommand(CLI::App& parent) { (void)parent; }

}  // namespace quarry::cli
