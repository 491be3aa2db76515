#include "cli/client_command_support.h"

#include <iostream>

#include "common/encoding.h"

namespace quarry::cli {

using nlohmann::json;

void AddCommonFlags(CLI::App* command, CommonFlags* flags) {
  command->add_option("--server", flags->server, "Quarry server URL (default: from `quarry login`)");
  command->add_option("--token", flags->token, "API token (default: from `quarry login`)");
  command->add_flag("--json", flags->json_output, "Print the API's JSON instead of a table");
}

ClientSettings Settings(const CommonFlags& flags) {
  ClientSettings settings{flags.server, flags.token, flags.json_output};
  const Status status = ResolveClientSettings(&settings);
  if (!status.ok()) {
    std::cerr << "error: " << status.message() << "\n";
    throw CLI::RuntimeError(1);
  }
  return settings;
}

ApiClient Connect(const CommonFlags& flags) { return ApiClient(Settings(flags)); }

std::string Segment(const std::string& text) { return UriEncode(text); }

std::string Cell(const json& object, const std::string& key) {
  const json* node = &object;
  size_t start = 0;
  while (true) {
    if (!node->is_object()) return "";
    const size_t dot = key.find('.', start);
    auto it = node->find(key.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (it == node->end() || it->is_null()) return "";
    node = &*it;
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (node->is_string()) return node->get<std::string>();
  return node->dump();
}

ApiCallResult Must(ApiCallResult result, std::string_view what) {
  if (!result.ok()) FailWithApiError(result, what);
  return result;
}

json ParseAssignments(const std::vector<std::string>& assignments, std::string_view flag, std::string_view form) {
  json values = json::object();
  for (const std::string& assignment : assignments) {
    const size_t equals = assignment.find('=');
    if (equals == std::string::npos || equals == 0) {
      std::cerr << "error: " << flag << " " << assignment << " is not " << form << "\n";
      throw CLI::RuntimeError(2);
    }
    const std::string text = assignment.substr(equals + 1);
    json parsed = json::parse(text, nullptr, false);
    values[assignment.substr(0, equals)] = (!parsed.is_discarded() && !parsed.is_string()) ? parsed : json(text);
  }
  return values;
}

}  // namespace quarry::cli
