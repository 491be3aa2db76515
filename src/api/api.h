#pragma once
// The REST API framework (/api/v1): routing, the error envelope, requests and
// responses, server-sent events, and the context every handler shares. Route
// handlers stay thin: parse, authorize (declaratively, by Access), call the
// domain, shape JSON.
//
// Conventions every route follows (docs/api.md has the user-facing version):
//   - JSON bodies and responses; field names snake_case; ids "<prefix>_...";
//     timestamps ISO 8601 UTC with milliseconds.
//   - Errors: {"error":{"code","message","hint","details"}} with the HTTP status
//     from HttpStatusFor (the one table). `code` is stable snake_case,
//     `message` says what is wrong, `hint` says how to fix it (for Bedrock
//     failures: the troubleshooting entry as text, and details.troubleshooting
//     holds the structured entry, details.aws the AWS code / status / request id).
//   - Lists: ?limit=&cursor= -> {"items":[...],"next_cursor":...|null}.
//   - Creates: POST -> 201 with the entity, Location and ETag. An
//     Idempotency-Key header makes a create safe to retry: the framework
//     stores the first response for 24 h and replays it for the same key and
//     body (a different body with the same key is 422 idempotency_key_reused).
//   - Updates: PATCH with the changed fields; every entity has an integer
//     `version`, its ETag is "\"<version>\"", and If-Match (when sent) must
//     match or the update fails with 412 (Status kAborted).
//   - Deletes: DELETE -> 204.
//
// Threads: ordinary handlers run on the API worker pool and may block on the
// database. Stream handlers run there too, return quickly after starting
// their work, and write events from any thread.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/metrics.h"
#include "common/status.h"
#include "domain/principal.h"
#include "net/http_server.h"
#include "store/database.h"
#include "store/secrets.h"

namespace quarry::bedrock {
struct BedrockError;
}
namespace quarry::domain {
class RecordService;
}  // namespace quarry::domain

namespace quarry::engine {
class ProviderClients;
class Engine;
}

namespace quarry::api {

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

// The one table from a canonical status to an HTTP status:
// InvalidArgument/OutOfRange 400, Unauthenticated 401, PermissionDenied 403,
// NotFound 404, AlreadyExists/FailedPrecondition 409, Aborted 412,
// ResourceExhausted 429, Cancelled 499, Unimplemented 501, Unavailable 503,
// DeadlineExceeded 504, everything else 500.
int HttpStatusFor(StatusCode code);
// "invalid_argument", "not_found", ... (snake_case of StatusCodeName), except
// Aborted -> "precondition_failed".
std::string ErrorCodeFor(StatusCode code);

struct ApiError {
  int http_status = 500;
  std::string code{};     // stable snake_case, e.g. "validation_failed", "base_agent_arn"
  std::string message{};  // what is wrong
  std::string hint{};     // how to fix it ("" when nothing useful can be said)
  nlohmann::json details = nlohmann::json::object();

  static ApiError FromStatus(const Status& status);
  // A Bedrock failure: status from the error's Status, code from the AWS error
  // (snake_case of e.g. AccessDeniedException -> "bedrock_access_denied"),
  // hint = troubleshooting text, details.troubleshooting / details.aws.
  static ApiError FromBedrock(const bedrock::BedrockError& error);
  // Names the inputs that were wrong in details.fields ({"name": "problem"});
  // for an InvalidArgument `status` the error becomes validation_failed with
  // the hint to correct them. Nothing changes when `fields` is empty.
  void AddFieldErrors(const Status& status, nlohmann::json fields);
  // {"error":{...}}
  nlohmann::json ToJson() const;
};

// ---------------------------------------------------------------------------
// Requests and responses
// ---------------------------------------------------------------------------

struct ApiRequest {
  std::string method{};
  std::string path{};  // decoded path without the query
  std::map<std::string, std::string> path_params{};  // from {name} segments, decoded
  std::multimap<std::string, std::string> query{};   // decoded
  net::HeaderFields headers{};
  std::string body{};
  std::string request_id{};  // X-Request-Id if the client sent a sane one, else "req_..."
  std::string remote_address{};
  // Set for every route whose Access is not kPublic.
  std::optional<domain::Principal> principal{};

  const std::string* Header(std::string_view name) const;  // case-insensitive
  // The first value of a query parameter, or `fallback`.
  std::string QueryParam(std::string_view name, std::string_view fallback = {}) const;
  // The body as a JSON object. InvalidArgument naming the byte offset for
  // malformed JSON, and "the request body must be a JSON object" otherwise.
  Result<nlohmann::json> JsonBody() const;
  // principal.value(); routes with Access != kPublic may rely on it.
  const domain::Principal& who() const { return *principal; }
};

struct ApiResponse {
  int status = 200;
  nlohmann::json body = nullptr;  // serialized as JSON unless raw_body is set
  std::optional<std::string> raw_body{};  // sent as is, with content_type
  std::string content_type = "application/json";
  net::HeaderFields headers{};

  static ApiResponse Json(nlohmann::json body, int status = 200);
  // 201 with Location and ETag "\"<version>\"".
  static ApiResponse Created(nlohmann::json body, std::string location, int64_t version);
  // 200 with ETag.
  static ApiResponse Entity(nlohmann::json body, int64_t version);
  static ApiResponse NoContent();
  static ApiResponse Text(std::string body, std::string content_type);
  static ApiResponse Error(const ApiError& error);
};

// If-Match against an entity's current version: OK when absent or equal
// ("\"3\"", "3" and W/"3" accepted), Aborted ("the record changed since you
// read it (version 4, If-Match 3); fetch it again and retry") otherwise.
Status CheckIfMatch(const ApiRequest& request, int64_t current_version);

// ---------------------------------------------------------------------------
// Server-sent events
// ---------------------------------------------------------------------------

// One text/event-stream response. The HTTP response starts (200, with
// Cache-Control: no-cache and X-Request-Id) at the first Send or Comment. Each
// event is "event: <name>\ndata: <json>\n\n". Close() ends the response; it
// is also closed when the last reference goes away. Thread-safe.
class SseStream {
 public:
  virtual ~SseStream() = default;
  // False once the client has gone away (stop producing then).
  virtual bool Send(std::string_view event, const nlohmann::json& data) = 0;
  virtual bool Comment(std::string_view text) = 0;  // ": text\n\n", keep-alive
  // Sends `event: error` with the error envelope, then closes.
  virtual void Fail(const ApiError& error) = 0;
  virtual void Close() = 0;
  virtual bool closed() const = 0;
  virtual bool started() const = 0;
};

// ---------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------

enum class Access {
  kPublic,          // no credentials (healthz, login, openapi)
  kAuthenticated,   // any user of the organization
  kBuilder,         // builder or admin
  kAdmin,           // admin
  kProviderEditor,  // admin with a verified e-mail domain (providers, services)
};
std::string_view AccessName(Access access);

// Ordinary handler: the response, or a Status mapped by ApiError::FromStatus.
using Handler = std::function<Result<ApiResponse>(ApiRequest& request)>;
// Stream handler: an error returned before the stream started becomes an
// ordinary error response; after it started, an `event: error`. Returning OK
// leaves the stream open for the work the handler started (which holds the
// shared_ptr and calls Close()).
using StreamHandler =
    std::function<Status(ApiRequest& request, std::shared_ptr<SseStream> stream)>;

struct RouteSpec {
  std::string method{};   // "GET", "POST", "PATCH", "PUT", "DELETE"
  std::string pattern{};  // "/api/v1/providers/{provider_id}/test"
  Access access = Access::kAuthenticated;
  bool streaming = false;
};

class Router {
 public:
  // Patterns are literal segments and {name} segments (one path segment
  // each). Registering the same method and pattern twice is a programming
  // error (asserted).
  void Add(std::string method, std::string pattern, Access access, Handler handler);
  void AddStream(std::string method, std::string pattern, Access access, StreamHandler handler);

  struct Match {
    const RouteSpec* spec = nullptr;
    const Handler* handler = nullptr;              // set for ordinary routes
    const StreamHandler* stream_handler = nullptr;  // set for stream routes
    std::map<std::string, std::string> path_params{};
    bool path_known = false;  // the path matched some route with another method (405)
  };
  Match Find(std::string_view method, std::string_view path) const;
  std::vector<RouteSpec> routes() const;

 private:
  struct Entry {
    RouteSpec spec;
    std::vector<std::string> segments;
    Handler handler;
    StreamHandler stream_handler;
  };
  std::vector<Entry> entries_;
};

// ---------------------------------------------------------------------------
// What handlers share
// ---------------------------------------------------------------------------

struct ServerSettings {
  std::string data_dir{};
  // Endpoint used for providers that set none (the embedded emulator in
  // `quarry serve --embedded-sim`); "" = AWS's own endpoints.
  std::string default_endpoint_url{};
  int provider_key_rotation_days_default = 90;
  int64_t max_request_body_bytes = 10 * 1024 * 1024;
};

// Owned by the server; handlers reach everything through it. All members are
// thread-safe.
struct ServerContext {
  std::shared_ptr<store::Database> db;
  std::shared_ptr<store::SecretStore> secrets;
  std::shared_ptr<const Clock> clock;
  std::shared_ptr<MetricsRegistry> metrics;
  std::shared_ptr<engine::ProviderClients> provider_clients;
  // Record operations shared with the engine (whose write hook it carries);
  // RegisterAppRoutes makes one when null.
  std::shared_ptr<domain::RecordService> records;
  // The automation engine; automation routes answer 503 when null.
  std::shared_ptr<engine::Engine> engine;
  ServerSettings settings;
};

// Route registration, one function per area (each in its own *_routes.cc).
void RegisterSystemRoutes(Router& router, ServerContext& context);    // healthz, readyz, metrics, openapi
void RegisterAccountRoutes(Router& router, ServerContext& context);   // login, users, tokens, domains, audit
void RegisterProviderRoutes(Router& router, ServerContext& context);  // providers, models, services, try-it
void RegisterAgentRoutes(Router& router, ServerContext& context);     // agent connections, conversations, chat
void RegisterAppRoutes(Router& router, ServerContext& context);       // apps, objects, fields, records
void RegisterAutomationRoutes(Router& router, ServerContext& context);  // automations, runs, reviews, alerts, templates

}  // namespace quarry::api
