// The `quarry` executable: parses the command line and dispatches to the
// subcommand registered in commands.h.

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/keys_command.h"
#include "common/log.h"

int main(int argc, char** argv) {
  CLI::App app{"Quarry: automation on Amazon Bedrock, self-hosted.", "quarry"};
  app.require_subcommand(1);
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical or off")
      ->capture_default_str();

  CLI::App* aws = app.add_subcommand(
      "aws", "AWS protocol debugging tools: SigV4 signing, event streams, ARNs");
  aws->require_subcommand(1);
  quarry::cli::RegisterAwsSignCommand(*aws);
  quarry::cli::RegisterAwsEventStreamCommand(*aws);
  quarry::cli::RegisterAwsArnCommand(*aws);
  quarry::cli::RegisterDemoCommand(app);
  quarry::cli::RegisterSimCommand(app);
  quarry::cli::RegisterBedrockCommand(app);
  quarry::cli::RegisterServeCommand(app);
  quarry::cli::RegisterKeysCommand(app);
  quarry::cli::RegisterClientCommands(app);
  quarry::cli::RegisterAutomationCommands(app);

  app.parse_complete_callback([&] {
    const quarry::Status status = quarry::InitLogging({.level = log_level});
    if (!status.ok()) throw CLI::ValidationError("--log-level", status.message());
  });
  CLI11_PARSE(app, argc, argv);
  return 0;
}
