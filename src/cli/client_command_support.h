#pragma once
// What the `quarry` client subcommands (client_commands.cc,
// automation_commands.cc) share: the flags that say which server and token to
// use, reading a value out of a JSON reply for a table cell, stopping on an
// API error, and NAME=VALUE arguments as a JSON object.
//
// Failures print "error: ..." to stderr and throw CLI::RuntimeError (exit 1
// for a server or settings problem, 2 for a malformed argument).

#include <CLI/CLI.hpp>

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/api_client.h"

namespace quarry::cli {

// --server, --token and --json, which every client subcommand takes.
struct CommonFlags {
  std::string server, token;
  bool json_output = false;
};
void AddCommonFlags(CLI::App* command, CommonFlags* flags);

// The flags completed from the environment and the login file (exit 1 with
// the reason when no server is known).
ClientSettings Settings(const CommonFlags& flags);
ApiClient Connect(const CommonFlags& flags);

// One path segment, percent-encoded.
std::string Segment(const std::string& text);

// The value at `key` ("error.message" reaches into nested objects) as text:
// strings as they are, other values as JSON, "" when absent or null.
std::string Cell(const nlohmann::json& object, const std::string& key);

// `result` when it succeeded; otherwise prints the API's error (what was
// being done, the message and the hint) and exits 1.
ApiCallResult Must(ApiCallResult result, std::string_view what);

// NAME=VALUE pairs (from the repeated option `flag`, whose arguments take
// the `form` shown in its help, e.g. "FIELD=VALUE") into a JSON object;
// values that parse as JSON other than a string (numbers, booleans, null,
// arrays, objects) keep that type, anything else is text.
nlohmann::json ParseAssignments(const std::vector<std::string>& assignments, std::string_view flag,
                                std::string_view form = "NAME=VALUE");

}  // namespace quarry::cli
