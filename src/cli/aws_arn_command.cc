#include "cli/commands.h"

namespace quarry::cli {

void RegisterAwsArnCommand(CLI::App& parent) { (void)parent; }

}  // namespace quarry::cli
