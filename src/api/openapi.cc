#include "api/openapi.h"

#include <algorithm>
#include <map>
#include <set>

#include "common/encoding.h"

namespace quarry::api {
namespace {

constexpr std::string_view kOperationKeys[] = {"get", "put", "post", "delete", "options", "head", "patch", "trace"};

bool IsOperationKey(std::string_view key) {
  return std::find(std::begin(kOperationKeys), std::end(kOperationKeys), key) != std::end(kOperationKeys);
}

std::string Upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

Result<nlohmann::json> MergeOpenApi(const std::vector<std::pair<std::string, std::string>>& files) {
  nlohmann::json merged;
  // Which file documented an operation or defined a component, for messages.
  std::map<std::string, std::string> operation_origin;
  std::map<std::string, std::string> component_origin;
  bool have_base = false;
  for (const auto& [name, text] : files) {
    if (TrimAsciiWhitespace(text).empty()) continue;  // a fragment nobody has written yet
    nlohmann::json document = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (document.is_discarded() || !document.is_object()) {
      return InvalidArgumentError("src/api/openapi/" + name + " is not a JSON object; fix its syntax");
    }
    if (!have_base) {
      have_base = true;
      merged = document;
      if (!merged.contains("paths")) merged["paths"] = nlohmann::json::object();
      if (!merged.contains("components")) merged["components"] = nlohmann::json::object();
      for (const auto& [path, item] : merged["paths"].items()) {
        for (const auto& [key, operation] : item.items()) {
          if (IsOperationKey(key)) operation_origin[Upper(key) + " " + path] = name;
        }
      }
      for (const auto& [section, members] : merged["components"].items()) {
        for (const auto& [member, value] : members.items()) component_origin[section + "/" + member] = name;
      }
      continue;
    }
    for (const auto& [key, value] : document.items()) {
      if (key == "paths" || key == "components" || key == "tags" || key.starts_with("_comment")) continue;
      return InvalidArgumentError("src/api/openapi/" + name + " has a top-level member \"" + key +
                                  "\"; a fragment holds only paths, components and tags");
    }
    if (document.contains("paths")) {
      if (!document["paths"].is_object()) {
        return InvalidArgumentError("src/api/openapi/" + name + ": \"paths\" must be an object");
      }
      for (const auto& [path, item] : document["paths"].items()) {
        if (!item.is_object()) {
          return InvalidArgumentError("src/api/openapi/" + name + ": paths[\"" + path + "\"] must be an object");
        }
        nlohmann::json& target = merged["paths"][path];
        if (target.is_null()) target = nlohmann::json::object();
        for (const auto& [key, operation] : item.items()) {
          if (IsOperationKey(key)) {
            const std::string id = Upper(key) + " " + path;
            if (const auto it = operation_origin.find(id); it != operation_origin.end()) {
              return InvalidArgumentError(id + " is documented in both " + it->second + " and " + name +
                                          "; keep it in one of them");
            }
            operation_origin[id] = name;
            target[key] = operation;
          } else if (!target.contains(key)) {
            target[key] = operation;  // path-level parameters, summary
          }
        }
      }
    }
    if (document.contains("components")) {
      if (!document["components"].is_object()) {
        return InvalidArgumentError("src/api/openapi/" + name + ": \"components\" must be an object");
      }
      for (const auto& [section, members] : document["components"].items()) {
        if (!members.is_object()) continue;
        nlohmann::json& target = merged["components"][section];
        if (target.is_null()) target = nlohmann::json::object();
        for (const auto& [member, value] : members.items()) {
          const std::string id = section + "/" + member;
          if (target.contains(member) && target[member] != value) {
            return InvalidArgumentError("components/" + id + " is defined differently in " +
                                        component_origin[id] + " and " + name + "; rename one or share one");
          }
          component_origin.emplace(id, name);
          target[member] = value;
        }
      }
    }
    if (document.contains("tags") && document["tags"].is_array()) {
      nlohmann::json& tags = merged["tags"];
      if (!tags.is_array()) tags = nlohmann::json::array();
      std::set<std::string> known;
      for (const auto& tag : tags) {
        if (tag.is_object() && tag.contains("name") && tag["name"].is_string()) known.insert(tag["name"]);
      }
      for (const auto& tag : document["tags"]) {
        if (tag.is_object() && tag.contains("name") && tag["name"].is_string() &&
            known.insert(tag["name"].get<std::string>()).second) {
          tags.push_back(tag);
        }
      }
    }
  }
  if (!have_base) return InvalidArgumentError("src/api/openapi/base.json is missing or empty");
  return merged;
}

Result<nlohmann::json> OpenApiDocument() {
  static const Result<nlohmann::json> document = MergeOpenApi(EmbeddedOpenApiFiles());
  return document;
}

std::vector<std::string> CompareOpenApiWithRoutes(const nlohmann::json& document,
                                                  const std::vector<RouteSpec>& routes) {
  std::set<std::string> documented;
  if (document.contains("paths") && document["paths"].is_object()) {
    for (const auto& [path, item] : document["paths"].items()) {
      if (!item.is_object()) continue;
      for (const auto& [key, operation] : item.items()) {
        if (IsOperationKey(key)) documented.insert(Upper(key) + " " + path);
      }
    }
  }
  std::set<std::string> routed;
  for (const RouteSpec& route : routes) routed.insert(route.method + " " + route.pattern);
  std::vector<std::string> problems;
  for (const std::string& id : routed) {
    if (!documented.contains(id)) problems.push_back(id + " is routed but not documented");
  }
  for (const std::string& id : documented) {
    if (!routed.contains(id)) problems.push_back(id + " is documented but not routed");
  }
  return problems;
}

}  // namespace quarry::api
