// System endpoints: liveness, readiness, Prometheus metrics, the OpenAPI
// document. All public: probes and scrapers carry no credentials, and the
// API description is not a secret.

#include <set>

#include "api/api.h"
#include "engine/run_store.h"
#include "api/internal.h"
#include "api/openapi.h"
#include "domain/schema.h"
#include "store/migrations.h"

namespace quarry::api {
namespace {

constexpr std::string_view kAppliedVersions = "SELECT version FROM schema_migrations";

}  // namespace

void RegisterSystemRoutes(Router& router, ServerContext& context) {
  // Liveness: answering at all is the signal, so nothing here may fail.
  router.Add("GET", "/healthz", Access::kPublic,
             [](ApiRequest&) -> Result<ApiResponse> { return ApiResponse::Json({{"status", "ok"}}); });

  // Readiness: the database answers and its schema is the one this binary
  // expects.
  router.Add("GET", "/readyz", Access::kPublic, [&context](ApiRequest&) -> Result<ApiResponse> {
    auto not_ready = [](std::string message, std::string hint) {
      ApiError error;
      error.http_status = 503;
      error.code = "not_ready";
      error.message = std::move(message);
      error.hint = std::move(hint);
      ApiResponse response = ApiResponse::Error(error);
      response.headers.emplace_back("Retry-After", "5");
      return response;
    };
    if (Status ping = context.db->Ping(); !ping.ok()) {
      return not_ready("the database " + context.db->DisplayUrl() + " does not answer: " + ping.message(),
                       "check that the database is running and reachable with the configured URL");
    }
    Result<int64_t> version = store::SchemaVersion(*context.db);
    std::set<int64_t> applied;
    Status listed = version.status();
    if (listed.ok()) {
      listed = context.db->Read([&](store::Tx& tx) -> Status {
        applied.clear();
        QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(kAppliedVersions));
        for (const store::Row& row : rows.rows) applied.insert(row.Int(0));
        return Status::Ok();
      });
    }
    if (!listed.ok()) {
      return not_ready("the schema version cannot be read: " + listed.message(),
                       "check the database permissions; the server applies migrations at start-up");
    }
    // Every known migration must be recorded, not just the highest: modules
    // number in their own ranges, so a gap below the maximum is possible.
    std::string missing;
    for (const store::Migration& migration : engine::AllServerMigrations()) {
      if (applied.contains(migration.version)) continue;
      if (!missing.empty()) missing += ", ";
      missing += std::to_string(migration.version) + " (" + migration.name + ")";
    }
    if (!missing.empty()) {
      return not_ready("the database lacks migrations this server needs: " + missing,
                       "restart the server so it applies them, and check its log for a failed migration");
    }
    return ApiResponse::Json({{"status", "ready"},
                              {"database", std::string(store::DialectName(context.db->dialect()))},
                              {"schema_version", *version}});
  });

  router.Add("GET", "/metrics", Access::kPublic, [&context](ApiRequest&) -> Result<ApiResponse> {
    return ApiResponse::Text(context.metrics->RenderPrometheus(), "text/plain; version=0.0.4; charset=utf-8");
  });

  router.Add("GET", "/api/v1/openapi.json", Access::kPublic, [](ApiRequest&) -> Result<ApiResponse> {
    QUARRY_ASSIGN_OR_RETURN(nlohmann::json document, OpenApiDocument());
    return ApiResponse::Json(std::move(document));
  });
}

}  // namespace quarry::api
