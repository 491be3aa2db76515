#include "api/provider_support.h"

#include <chrono>

#include <spdlog/spdlog.h>

#include "domain/accounts.h"
#include "engine/provider_clients.h"

namespace quarry::api::provider_support {

using nlohmann::json;

ApiError FromFieldError(const domain::FieldError& e, int http_status) {
  ApiError error;
  error.http_status = http_status;
  error.code = e.code.empty() ? "validation_failed" : e.code;
  error.message = e.message;
  error.hint = e.hint;
  error.details = {{"field", e.field}};
  return error;
}

ApiResponse FieldErrorResponse(const domain::FieldError& error, int http_status) {
  return ApiResponse::Error(FromFieldError(error, http_status));
}

Result<domain::PageRequest> PageFrom(const ApiRequest& request) {
  return domain::ParsePageRequest(request.QueryParam("limit"), request.QueryParam("cursor"));
}

int RotationDays(ServerContext& context, const std::string& org_id) {
  int days = context.settings.provider_key_rotation_days_default;
  Status s = context.db->Read([&](store::Tx& tx) -> Status {
    Result<domain::Organization> org = domain::GetOrganization(tx, org_id);
    if (org.ok()) days = org->provider_key_rotation_days;
    return Status::Ok();
  });
  (void)s;  // the default stands when the organization cannot be read
  return days;
}

json ProviderJson(ServerContext& context, const domain::Provider& provider) {
  return domain::ProviderToJson(provider, context.clock->Now(), RotationDays(context, provider.org_id));
}

Result<domain::Provider> LoadProvider(ServerContext& context, const std::string& org_id,
                                      const std::string& provider_id) {
  domain::Provider provider;
  QUARRY_RETURN_IF_ERROR(context.db->Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(provider, domain::GetProvider(tx, org_id, provider_id));
    return Status::Ok();
  }));
  return provider;
}

std::optional<ApiError> RequireWorking(const domain::Provider& provider, std::string_view for_what) {
  if (provider.status == domain::ProviderStatus::kWorking) return std::nullopt;
  ApiError error;
  error.http_status = 409;
  error.code = "provider_not_working";
  error.message = "provider '" + provider.name + "' is " + std::string(domain::ProviderStatusName(provider.status)) +
                  "; only working providers can be used for " + std::string(for_what);
  error.hint = provider.status == domain::ProviderStatus::kUntested
                   ? "Run Test Connection first: POST /api/v1/providers/" + provider.id + "/test."
                   : "Fix the provider (see its last_error) and run Test Connection again: POST /api/v1/providers/" +
                         provider.id + "/test.";
  error.details = {{"provider_id", provider.id},
                   {"status", domain::ProviderStatusName(provider.status)},
                   {"last_error", provider.last_error}};
  return error;
}

int64_t MillisSince(ServerContext& context, MonotonicTime start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(context.clock->MonotonicNow() - start).count();
}

void NoteBedrockCall(ServerContext& context, std::string_view operation, const std::string& request_id,
                     const std::string& provider_id, const bedrock::BedrockError* error, int64_t latency_ms) {
  engine::RecordBedrockCall(context.metrics.get(), operation, error, static_cast<double>(latency_ms) / 1000.0);
  LogBedrockCall(operation, request_id, provider_id, error, latency_ms);
}

void LogBedrockCall(std::string_view operation, const std::string& request_id, const std::string& provider_id,
                    const bedrock::BedrockError* error, int64_t latency_ms) {
  json line = {{"event", "bedrock_call"},
               {"operation", operation},
               {"provider_id", provider_id},
               {"request_id", request_id},
               {"latency_ms", latency_ms},
               {"outcome", error == nullptr ? "ok" : error->aws.code}};
  if (error != nullptr) line["bedrock_request_id"] = error->aws.request_id;
  const std::string text = line.dump(-1, ' ', false, json::error_handler_t::replace);
  if (error == nullptr) {
    spdlog::info("{}", text);
  } else {
    spdlog::warn("{}", text);
  }
}

Result<CatalogueLoad> LoadCatalogue(ServerContext& context, const domain::Provider& provider, bool refresh,
                                    const std::string& request_id,
                                    std::optional<bedrock::BedrockError>* bedrock_error) {
  CatalogueLoad load;
  std::optional<domain::CachedCatalogue> cached;
  QUARRY_RETURN_IF_ERROR(context.db->Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(cached, domain::GetCachedCatalogue(tx, provider));
    return Status::Ok();
  }));
  if (cached && !refresh) {
    load.cached = std::move(*cached);
    return load;
  }
  QUARRY_ASSIGN_OR_RETURN(std::shared_ptr<bedrock::BedrockClient> client,
                          context.provider_clients->ForProvider(provider.org_id, provider.id));
  bedrock::CallOptions options;
  options.overall_deadline = std::chrono::milliseconds(30'000);
  MonotonicTime start = context.clock->MonotonicNow();
  bedrock::BedrockResult<bedrock::ModelCatalogue> r = client->ListCatalogue(options);
  NoteBedrockCall(context, "ListCatalogue", request_id, provider.id, r.ok() ? nullptr : &r.error(),
                  MillisSince(context, start));
  if (!r.ok()) {
    *bedrock_error = r.error();
    return r.error().status.ok() ? UnavailableError("the catalogue could not be read") : r.error().status;
  }
  const std::string now = domain::NowTimestamp(*context.clock);
  json catalogue = r.value().ToJson();
  QUARRY_RETURN_IF_ERROR(context.db->Write([&](store::Tx& tx) -> Status {
    QUARRY_RETURN_IF_ERROR(domain::PutCachedCatalogue(tx, provider, catalogue, now));
    QUARRY_ASSIGN_OR_RETURN(cached, domain::GetCachedCatalogue(tx, provider));
    return Status::Ok();
  }));
  if (cached) {
    load.cached = std::move(*cached);
  } else {
    load.cached.catalogue = catalogue;
    load.cached.region = provider.config.region;
    load.cached.fetched_at = now;
  }
  load.fetched = true;
  return load;
}

}  // namespace quarry::api::provider_support
