#pragma once
// Helpers shared by the provider-area route files (provider_routes.cc,
// agent_routes.cc): error shaping for domain::FieldError, list pages, the
// organization's key rotation period, loading a provider's catalogue
// (cached or fetched), and the Bedrock call wrapper that records metrics and
// the request id in the log. Not for other areas.
//
// Thread safety: functions over the shared ServerContext (thread-safe).

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/api.h"
#include "bedrock/client.h"
#include "common/status.h"
#include "domain/paging.h"
#include "domain/providers.h"

namespace quarry::api::provider_support {

// 400 (or `http_status`) with the field error's code, message and hint, and
// details.field.
ApiError FromFieldError(const domain::FieldError& error, int http_status = 400);
ApiResponse FieldErrorResponse(const domain::FieldError& error, int http_status = 400);

// {"items":[...],"next_cursor":...|null}
template <typename T, typename F>
nlohmann::json PageJson(const domain::Page<T>& page, F to_json) {
  nlohmann::json items = nlohmann::json::array();
  for (const T& item : page.items) items.push_back(to_json(item));
  return {{"items", std::move(items)},
          {"next_cursor", page.next_cursor.empty() ? nlohmann::json(nullptr) : nlohmann::json(page.next_cursor)}};
}

// ?limit=&cursor= of the request.
Result<domain::PageRequest> PageFrom(const ApiRequest& request);

// The organization's key rotation period (its settings, else the server default).
int RotationDays(ServerContext& context, const std::string& org_id);

// The provider's public JSON with the organization's rotation period.
nlohmann::json ProviderJson(ServerContext& context, const domain::Provider& provider);

// Reads a provider of the caller's organization.
Result<domain::Provider> LoadProvider(ServerContext& context, const std::string& org_id,
                                      const std::string& provider_id);

// 409 "provider_not_working" unless the provider's status is working.
std::optional<ApiError> RequireWorking(const domain::Provider& provider, std::string_view for_what);

// The provider's catalogue: the cached one unless `refresh` or none is cached,
// else fetched through the provider's client (and cached). A Bedrock failure
// comes back in `bedrock_error` (and the Status is Unavailable).
struct CatalogueLoad {
  domain::CachedCatalogue cached{};
  bool fetched = false;  // true: fetched by this call
};
Result<CatalogueLoad> LoadCatalogue(ServerContext& context, const domain::Provider& provider, bool refresh,
                                    const std::string& request_id,
                                    std::optional<bedrock::BedrockError>* bedrock_error);

// Logs one Bedrock call as a JSON line with the request id (no blocking
// beyond the log write: usable from client callbacks).
void LogBedrockCall(std::string_view operation, const std::string& request_id, const std::string& provider_id,
                    const bedrock::BedrockError* error, int64_t latency_ms);
// LogBedrockCall, and counts it in the metrics.
void NoteBedrockCall(ServerContext& context, std::string_view operation, const std::string& request_id,
                     const std::string& provider_id, const bedrock::BedrockError* error, int64_t latency_ms);

// Milliseconds since `start` on the context's clock.
int64_t MillisSince(ServerContext& context, MonotonicTime start);

}  // namespace quarry::api::provider_support
