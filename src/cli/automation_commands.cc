// quarry automations | runs | reviews | alerts | templates (placeholder).
#include "cli/commands.h"

namespace quarry::cli {

void RegisterAutomationCommands(CLI::App& app) { (void)app; }

}  // namespace quarry::cli
