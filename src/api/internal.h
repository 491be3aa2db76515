#pragma once
// Pieces of the API framework shared between its own translation units
// (server.cc, sse.cc, system_routes.cc); not for route files.

#include <memory>
#include <string>

#include "api/api.h"
#include "net/http_server.h"

namespace quarry::api::internal {

// The SseStream over an async HTTP responder (see api.h for the contract).
std::shared_ptr<SseStream> MakeSseStream(std::shared_ptr<net::Responder> responder, std::string request_id);

// An ApiResponse as the HTTP response the server sends, with Content-Type and
// X-Request-Id set.
net::HttpResponse ToHttpResponse(const ApiResponse& response, const std::string& request_id);

// JSON text that never throws: invalid UTF-8 in strings is replaced.
std::string DumpJson(const nlohmann::json& value);

}  // namespace quarry::api::internal
