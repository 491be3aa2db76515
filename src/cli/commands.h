#pragma once
// Registration functions for the `quarry` subcommands. Each adds its
// subcommand to `parent` and installs a callback that does the work; a failure
// is reported on stderr and ends the process with a non-zero exit code by
// throwing CLI::RuntimeError(code), which main() turns into the exit status.

#include <CLI/CLI.hpp>

namespace quarry::cli {

// quarry aws sign --request FILE --context FILE --show ...
void RegisterAwsSignCommand(CLI::App& aws);
// quarry aws eventstream decode [FILE|-] / encode [FILE|-]
void RegisterAwsEventStreamCommand(CLI::App& aws);
// quarry aws arn ARN
void RegisterAwsArnCommand(CLI::App& aws);
// quarry demo
void RegisterDemoCommand(CLI::App& app);
// quarry sim [--config FILE] [--host H] [--port N] [--print-config]
void RegisterSimCommand(CLI::App& app);
// quarry bedrock whoami | models | invoke-model | invoke-agent | alias
void RegisterBedrockCommand(CLI::App& app);
// quarry serve [--config FILE] [--port N] [--data-dir DIR] [--db URL] [--embedded-sim]
void RegisterServeCommand(CLI::App& app);
// quarry login | providers | models | services | apps | records | agents | chat
void RegisterClientCommands(CLI::App& app);
// quarry automations | runs | reviews | alerts | templates
void RegisterAutomationCommands(CLI::App& app);

}  // namespace quarry::cli
