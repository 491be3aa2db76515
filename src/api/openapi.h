#pragma once
// The OpenAPI 3.1 document of the REST API, served at /api/v1/openapi.json.
//
// It is kept in the repository as src/api/openapi/base.json (info, servers,
// security schemes, the shared schemas such as the error envelope, and the
// system endpoints) plus one fragment per area (accounts.json,
// providers.json, agents.json, apps.json, ...). Every *.json file of that
// directory is embedded into the binary at build time and merged here: a
// fragment holds "paths" and optionally "components" and "tags". Two files
// documenting the same operation, or defining one component differently,
// are an error naming both files. An empty fragment file is skipped.
//
// Thread safety: pure functions; OpenApiDocument caches its result.

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/api.h"
#include "common/status.h"

namespace quarry::api {

// (file name, text) of every embedded document, base.json first.
const std::vector<std::pair<std::string, std::string>>& EmbeddedOpenApiFiles();

// Merges documents as described above: base first, fragments in order.
// InvalidArgument naming the file for invalid JSON or a conflict.
Result<nlohmann::json> MergeOpenApi(const std::vector<std::pair<std::string, std::string>>& files);

// The merged embedded document (computed once).
Result<nlohmann::json> OpenApiDocument();

// Differences between the document and the router: "GET /api/v1/x is routed
// but not documented", "DELETE /api/v1/y is documented but not routed".
// Empty when they agree.
std::vector<std::string> CompareOpenApiWithRoutes(const nlohmann::json& document,
                                                  const std::vector<RouteSpec>& routes);

}  // namespace quarry::api
