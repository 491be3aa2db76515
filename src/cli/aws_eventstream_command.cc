#include "cli/commands.h"

namespace quarry::cli {

void RegisterAwsEventStreamCommand(CLI::App& parent) { (void)parent; }

}  // namespace quarry::cli
