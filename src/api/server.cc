#include "api/server.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

#include "api/internal.h"
#include "common/crypto.h"
#include "common/encoding.h"
#include "common/ids.h"
#include "domain/accounts.h"

namespace quarry::api {
namespace internal {

std::string DumpJson(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

net::HttpResponse ToHttpResponse(const ApiResponse& response, const std::string& request_id) {
  net::HttpResponse http;
  http.status = response.status;
  http.headers = response.headers;
  if (response.status != 204 && response.status != 304) {
    http.headers.emplace_back("Content-Type", response.content_type);
    http.body = response.raw_body ? *response.raw_body : DumpJson(response.body);
  }
  http.headers.emplace_back("X-Request-Id", request_id);
  return http;
}

}  // namespace internal

namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr std::string_view kRequestsTotal = "quarry_http_requests_total";
constexpr std::string_view kRequestDuration = "quarry_http_request_duration_seconds";
constexpr std::string_view kSessionCookie = "quarry_session";

// A bounded queue in front of a fixed set of threads. Handlers may block on
// the database, so they never run on the HTTP server's I/O threads.
class WorkerPool {
 public:
  WorkerPool(int threads, size_t max_queued) : max_queued_(max_queued == 0 ? 1 : max_queued) {
    for (int i = 0; i < (threads < 1 ? 1 : threads); ++i) {
      threads_.emplace_back([this] { Run(); });
    }
  }
  ~WorkerPool() { Stop(); }

  // False when the queue is full or the pool is stopping.
  bool TrySubmit(std::function<void()> job) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_ || queue_.size() >= max_queued_) return false;
      queue_.push_back(std::move(job));
    }
    ready_.notify_one();
    return true;
  }

  // Jobs still queued are dropped (their responders answer for them); jobs
  // running are finished, since each holds its own bounded waits.
  void Stop() {
    std::deque<std::function<void()>> dropped;
    {
      std::lock_guard lock(mutex_);
      if (stopping_ && threads_.empty()) return;
      stopping_ = true;
      dropped.swap(queue_);
    }
    ready_.notify_all();
    dropped.clear();
    for (std::thread& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
    threads_.clear();
  }

 private:
  void Run() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      job();
    }
  }

  const size_t max_queued_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

bool IsSaneRequestId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (const char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '_' || c == '.' || c == ':';
    if (!ok) return false;
  }
  return true;
}

std::string RequestIdFor(const net::HttpServerRequest& request) {
  const std::string* given = request.FindHeader("X-Request-Id");
  if (given != nullptr && IsSaneRequestId(*given)) return *given;
  return NewId("req");
}

ApiError MakeError(int http_status, std::string code, std::string message, std::string hint = {}) {
  ApiError error;
  error.http_status = http_status;
  error.code = std::move(code);
  error.message = std::move(message);
  error.hint = std::move(hint);
  return error;
}

// The value of the quarry_session cookie, or "".
std::string SessionCookie(const ApiRequest& request) {
  const std::string* header = request.Header("Cookie");
  if (header == nullptr) return "";
  std::string_view rest = *header;
  while (!rest.empty()) {
    const size_t semicolon = rest.find(';');
    std::string_view pair = TrimAsciiWhitespace(rest.substr(0, semicolon));
    rest = semicolon == std::string_view::npos ? std::string_view() : rest.substr(semicolon + 1);
    const size_t equals = pair.find('=');
    if (equals == std::string_view::npos) continue;
    if (TrimAsciiWhitespace(pair.substr(0, equals)) == kSessionCookie) {
      return std::string(TrimAsciiWhitespace(pair.substr(equals + 1)));
    }
  }
  return "";
}

std::string RoleArticle(domain::Role role) {
  return role == domain::Role::kAdmin ? "an admin" : std::string("a ") + std::string(domain::RoleName(role));
}

// Whether the principal may use a route of this Access; PermissionDenied
// saying which role is needed and how to get it otherwise.
Status CheckAccess(Access access, const domain::Principal& who) {
  switch (access) {
    case Access::kPublic:
    case Access::kAuthenticated:
      return Status::Ok();
    case Access::kBuilder:
      if (who.CanBuild()) return Status::Ok();
      return PermissionDeniedError("this needs the builder or admin role and you are " + RoleArticle(who.role) +
                                   "; ask an organization admin to change your role");
    case Access::kAdmin:
      if (who.IsAdmin()) return Status::Ok();
      return PermissionDeniedError("this needs the admin role and you are " + RoleArticle(who.role) +
                                   "; ask an organization admin to do it or to change your role");
    case Access::kProviderEditor:
      if (who.CanEditProviders()) return Status::Ok();
      if (!who.IsAdmin()) {
        return PermissionDeniedError("only organization admins may change AI providers and services (and verified "
                                     "domains), and you are " +
                                     RoleArticle(who.role) + "; ask an admin of a verified e-mail domain");
      }
      return PermissionDeniedError("only admins whose e-mail domain is verified may change AI providers and "
                                   "services (and verified domains); the domain " +
                                   domain::EmailDomain(who.email) +
                                   " is not on the organization's verified-domain list; an admin of a verified "
                                   "domain can add it with POST /api/v1/verified-domains");
  }
  return PermissionDeniedError("unknown access level");
}

struct ParsedTarget {
  std::string raw_path;
  std::string path;
  std::multimap<std::string, std::string> query;
};

Result<ParsedTarget> ParseTarget(std::string_view target) {
  ParsedTarget parsed;
  const size_t question = target.find('?');
  parsed.raw_path = std::string(target.substr(0, question));
  if (parsed.raw_path.empty() || parsed.raw_path.front() != '/') {
    return InvalidArgumentError("the request target must be an absolute path like /api/v1/me");
  }
  Result<std::string> path = UriDecode(parsed.raw_path);
  if (!path.ok()) return InvalidArgumentError("the request path has a malformed %-escape; encode it again");
  parsed.path = std::move(path).value();
  if (question == std::string_view::npos) return parsed;
  std::string_view rest = target.substr(question + 1);
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    std::string pair(rest.substr(0, amp));
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) continue;
    for (char& c : pair) {
      if (c == '+') c = ' ';  // form encoding, as browsers write queries
    }
    const size_t equals = pair.find('=');
    Result<std::string> name = UriDecode(std::string_view(pair).substr(0, equals));
    Result<std::string> value =
        UriDecode(equals == std::string::npos ? std::string_view() : std::string_view(pair).substr(equals + 1));
    if (!name.ok() || !value.ok()) {
      return InvalidArgumentError("the query string has a malformed %-escape; encode it again");
    }
    parsed.query.emplace(std::move(name).value(), std::move(value).value());
  }
  return parsed;
}

bool IsSaneIdempotencyKey(std::string_view key) {
  if (key.empty() || key.size() > 255) return false;
  for (const char c : key) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

// What is stored for an idempotent POST and replayed later.
std::string SerializeResponse(const net::HttpResponse& response) {
  nlohmann::json headers = nlohmann::json::array();
  for (const auto& [name, value] : response.headers) {
    if (EqualsIgnoreAsciiCase(name, "X-Request-Id")) continue;  // the replay gets its own
    headers.push_back({name, value});
  }
  return internal::DumpJson({{"status", response.status}, {"headers", headers}, {"body", response.body}});
}

Result<net::HttpResponse> DeserializeResponse(std::string_view text) {
  const nlohmann::json parsed = nlohmann::json::parse(text, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object() || !parsed.contains("status") || !parsed["status"].is_number() ||
      !parsed.contains("body") || !parsed["body"].is_string() || !parsed.contains("headers") ||
      !parsed["headers"].is_array()) {
    return InternalError("the stored response for this Idempotency-Key is unreadable; retry with a new key");
  }
  net::HttpResponse response;
  response.status = parsed["status"].get<int>();
  response.body = parsed["body"].get<std::string>();
  for (const auto& header : parsed["headers"]) {
    if (header.is_array() && header.size() == 2 && header[0].is_string() && header[1].is_string()) {
      response.headers.emplace_back(header[0].get<std::string>(), header[1].get<std::string>());
    }
  }
  return response;
}

class ApiServerImpl final : public ApiServer {
 public:
  ApiServerImpl(std::shared_ptr<ServerContext> context, const ApiServerOptions& options)
      : context_(std::move(context)), options_(options) {}

  ~ApiServerImpl() override { Stop(); }

  Status Start() {
    MetricsRegistry& metrics = *context_->metrics;
    metrics.DeclareCounter(std::string(kRequestsTotal),
                           "HTTP requests answered, by route pattern, method and status.");
    metrics.DeclareHistogram(std::string(kRequestDuration),
                             "Time to answer an HTTP request (to the first byte for streams), by route pattern "
                             "and method.",
                             DefaultLatencyBuckets());
    RegisterSystemRoutes(router_, *context_);
    RegisterAccountRoutes(router_, *context_);
    RegisterProviderRoutes(router_, *context_);
    RegisterAgentRoutes(router_, *context_);
    RegisterAppRoutes(router_, *context_);
    RegisterAutomationRoutes(router_, *context_);

    pool_ = std::make_unique<WorkerPool>(options_.worker_threads, options_.max_queued_requests);
    net::HttpServerOptions http_options;
    http_options.host = options_.host;
    http_options.port = options_.port;
    http_options.threads = options_.io_threads;
    // The HTTP layer's own limit is a backstop with room above ours, so an
    // over-limit body normally gets our 413 envelope rather than its reply.
    const int64_t limit = context_->settings.max_request_body_bytes;
    http_options.max_body_bytes = static_cast<size_t>(limit > 0 ? limit : 0) * 2 + 1024 * 1024;
    Result<std::unique_ptr<net::HttpServer>> http = net::HttpServer::StartAsync(
        http_options, [this](net::HttpServerRequest request, std::shared_ptr<net::Responder> responder) {
          OnRequest(std::move(request), std::move(responder));
        });
    if (!http.ok()) {
      pool_->Stop();
      return http.status();
    }
    http_ = std::move(http).value();
    return Status::Ok();
  }

  std::string base_url() const override { return http_ ? http_->base_url() : ""; }
  int port() const override { return http_ ? http_->port() : 0; }
  const Router& router() const override { return router_; }

  void Stop() override {
    std::lock_guard lock(stop_mutex_);
    if (stopped_) return;
    stopped_ = true;
    // New requests stop first; then the workers finish what they run.
    if (http_) http_->Stop();
    if (pool_) pool_->Stop();
  }

 private:
  struct Exchange {
    net::HttpServerRequest request;
    std::shared_ptr<net::Responder> responder;
    std::string request_id;
    SteadyClock::time_point started;
  };

  // On an I/O thread: only cheap checks, then hand over to a worker.
  void OnRequest(net::HttpServerRequest request, std::shared_ptr<net::Responder> responder) {
    auto exchange = std::make_shared<Exchange>();
    exchange->started = SteadyClock::now();
    exchange->request_id = RequestIdFor(request);
    exchange->request = std::move(request);
    exchange->responder = std::move(responder);

    const int64_t limit = context_->settings.max_request_body_bytes;
    if (static_cast<int64_t>(exchange->request.body.size()) > limit) {
      Finish(*exchange, nullptr, nullptr,
             ApiResponse::Error(MakeError(413, "request_too_large",
                                          "the request body is " + std::to_string(exchange->request.body.size()) +
                                              " bytes; the limit is " + std::to_string(limit) + " bytes",
                                          "send a smaller body (split large imports into several requests)")));
      return;
    }
    const bool queued = pool_->TrySubmit([this, exchange] { Handle(*exchange); });
    if (!queued) {
      ApiResponse busy = ApiResponse::Error(
          MakeError(503, "server_busy",
                    "the server has too many requests waiting (" + std::to_string(options_.max_queued_requests) +
                        ")",
                    "retry after the number of seconds in Retry-After"));
      busy.headers.emplace_back("Retry-After", "1");
      Finish(*exchange, nullptr, nullptr, std::move(busy));
    }
  }

  // On a worker thread.
  void Handle(Exchange& exchange) {
    if (exchange.responder->closed()) return;  // the client gave up while queued
    const net::HttpServerRequest& http = exchange.request;
    Result<ParsedTarget> target = ParseTarget(http.target);
    if (!target.ok()) {
      Finish(exchange, nullptr, nullptr, ApiResponse::Error(ApiError::FromStatus(target.status())));
      return;
    }
    Router::Match match = router_.Find(http.method, target->raw_path);
    if (match.spec == nullptr) {
      if (match.path_known) {
        ApiResponse response = ApiResponse::Error(MakeError(
            405, "method_not_allowed", http.method + " is not allowed on " + target->path,
            "use one of the methods in the Allow header; GET /api/v1/openapi.json lists every operation"));
        response.headers.emplace_back("Allow", AllowedMethods(target->raw_path));
        Finish(exchange, nullptr, nullptr, std::move(response));
      } else {
        Finish(exchange, nullptr, nullptr,
               ApiResponse::Error(MakeError(404, "route_not_found", "there is no endpoint " + target->path,
                                            "check the path; GET /api/v1/openapi.json lists every endpoint")));
      }
      return;
    }

    ApiRequest request;
    request.method = http.method;
    request.path = std::move(target->path);
    request.path_params = std::move(match.path_params);
    request.query = std::move(target->query);
    request.headers = http.headers;
    request.body = http.body;
    request.request_id = exchange.request_id;
    request.remote_address = http.remote_address;

    if (match.spec->access != Access::kPublic) {
      Result<domain::Principal> who = Authenticate(request);
      if (!who.ok()) {
        ApiResponse response = ApiResponse::Error(ApiError::FromStatus(who.status()));
        response.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"quarry\"");
        Finish(exchange, match.spec, &request, std::move(response));
        return;
      }
      request.principal = std::move(who).value();
      if (Status allowed = CheckAccess(match.spec->access, *request.principal); !allowed.ok()) {
        Finish(exchange, match.spec, &request, ApiResponse::Error(ApiError::FromStatus(allowed)));
        return;
      }
    }

    if (match.spec->streaming) {
      RunStream(exchange, *match.spec, *match.stream_handler, request);
      return;
    }
    const std::string* key = request.Header("Idempotency-Key");
    if (key != nullptr && request.method == "POST" && request.principal) {
      RunIdempotent(exchange, *match.spec, *match.handler, request, *key);
      return;
    }
    Finish(exchange, match.spec, &request, RunHandler(*match.handler, request));
  }

  ApiResponse RunHandler(const Handler& handler, ApiRequest& request) {
    try {
      Result<ApiResponse> result = handler(request);
      if (!result.ok()) return ApiResponse::Error(ApiError::FromStatus(result.status()));
      return std::move(result).value();
    } catch (const nlohmann::json::exception& e) {
      // A handler read a member with the wrong type (e.g. a string where a
      // number belongs): the client's mistake, not a crash.
      return ApiResponse::Error(MakeError(400, "invalid_argument",
                                          std::string("a member of the request has the wrong type: ") + e.what(),
                                          "check the request against GET /api/v1/openapi.json"));
    } catch (const std::exception& e) {
      spdlog::error("request {}: handler threw: {}", request.request_id, e.what());
      return ApiResponse::Error(ApiError::FromStatus(InternalError("the request failed inside the server")));
    }
  }

  void RunIdempotent(Exchange& exchange, const RouteSpec& spec, const Handler& handler, ApiRequest& request,
                     const std::string& key) {
    if (!IsSaneIdempotencyKey(key)) {
      Finish(exchange, &spec, &request,
             ApiResponse::Error(MakeError(400, "invalid_argument",
                                          "the Idempotency-Key header must be 1 to 255 printable ASCII characters",
                                          "send a fresh random key such as a UUID for each new create")));
      return;
    }
    const std::string scope = request.principal->user_id;
    const std::string hash = Sha256Hex(request.method + "\n" + request.path + "\n" + request.body);
    const std::string aad = "idempotency:" + scope + ":" + key;
    domain::IdempotencyClaim claim;
    Status claimed = context_->db->Write([&](store::Tx& tx) -> Status {
      QUARRY_ASSIGN_OR_RETURN(claim, domain::ClaimIdempotencyKey(tx, *context_->clock, scope, key, hash));
      return Status::Ok();
    });
    if (!claimed.ok()) {
      Finish(exchange, &spec, &request, ApiResponse::Error(ApiError::FromStatus(claimed)));
      return;
    }
    switch (claim.kind) {
      case domain::IdempotencyClaim::Kind::kMismatch:
        Finish(exchange, &spec, &request,
               ApiResponse::Error(MakeError(
                   422, "idempotency_key_reused",
                   "this Idempotency-Key was used in the last 24 hours for a different request (method, path or "
                   "body)",
                   "use a new key for a new request; reuse a key only to retry the very same request")));
        return;
      case domain::IdempotencyClaim::Kind::kInProgress: {
        ApiResponse response = ApiResponse::Error(
            MakeError(409, "idempotency_key_in_progress",
                      "the first request with this Idempotency-Key is still running",
                      "retry after it finishes (see Retry-After) to get its response"));
        response.headers.emplace_back("Retry-After", "1");
        Finish(exchange, &spec, &request, std::move(response));
        return;
      }
      case domain::IdempotencyClaim::Kind::kReplay: {
        Result<store::SecretString> opened = context_->secrets->keyring().Open(claim.response, aad);
        Result<net::HttpResponse> stored =
            opened.ok() ? DeserializeResponse(opened->reveal()) : Result<net::HttpResponse>(opened.status());
        if (!stored.ok()) {
          Finish(exchange, &spec, &request, ApiResponse::Error(ApiError::FromStatus(stored.status())));
          return;
        }
        net::HttpResponse replay = std::move(stored).value();
        replay.headers.emplace_back("Idempotent-Replayed", "true");
        replay.headers.emplace_back("X-Request-Id", exchange.request_id);
        FinishHttp(exchange, &spec, &request, std::move(replay));
        return;
      }
      case domain::IdempotencyClaim::Kind::kProceed:
        break;
    }
    ApiResponse response = RunHandler(handler, request);
    net::HttpResponse http = internal::ToHttpResponse(response, exchange.request_id);
    Status stored = context_->db->Write([&](store::Tx& tx) -> Status {
      if (http.status >= 500) return domain::ReleaseIdempotencyKey(tx, scope, key);
      // Sealed: a create's response may hold a one-time secret (a new API
      // token), which must not sit in the database in clear.
      QUARRY_ASSIGN_OR_RETURN(std::string sealed, context_->secrets->keyring().Seal(SerializeResponse(http), aad));
      return domain::FinishIdempotency(tx, *context_->clock, scope, key, sealed);
    });
    if (!stored.ok()) {
      spdlog::warn("request {}: could not store the response for its Idempotency-Key: {}", exchange.request_id,
                   stored.ToString());
    }
    FinishHttp(exchange, &spec, &request, std::move(http));
  }

  void RunStream(Exchange& exchange, const RouteSpec& spec, const StreamHandler& handler, ApiRequest& request) {
    std::shared_ptr<SseStream> stream = internal::MakeSseStream(exchange.responder, exchange.request_id);
    Status status;
    try {
      status = handler(request, stream);
    } catch (const std::exception& e) {
      spdlog::error("request {}: stream handler threw: {}", request.request_id, e.what());
      status = InternalError("the request failed inside the server");
    }
    int http_status = 200;
    if (!status.ok()) {
      const ApiError error = ApiError::FromStatus(status);
      if (!stream->started()) http_status = error.http_status;
      stream->Fail(error);
    }
    Record(exchange, &spec, &request, http_status);
  }

  Result<domain::Principal> Authenticate(const ApiRequest& request) {
    const std::string* authorization = request.Header("Authorization");
    std::string token;
    std::string session;
    if (authorization != nullptr) {
      const std::string_view value = TrimAsciiWhitespace(*authorization);
      if (value.size() < 7 || !EqualsIgnoreAsciiCase(value.substr(0, 7), "Bearer ")) {
        return UnauthenticatedError(
            "the Authorization header must be \"Bearer <API token>\"; create a token with POST /api/v1/tokens or "
            "`quarry login`");
      }
      token = std::string(TrimAsciiWhitespace(value.substr(7)));
    } else {
      session = SessionCookie(request);
      if (session.empty()) {
        return UnauthenticatedError(
            "this endpoint needs credentials: send Authorization: Bearer <API token>, or log in with POST "
            "/api/v1/auth/login");
      }
    }
    std::optional<domain::Authenticated> result;
    Status status = context_->db->Read([&](store::Tx& tx) -> Status {
      Result<domain::Authenticated> found = token.empty()
                                                ? domain::AuthenticateSession(tx, *context_->clock, session)
                                                : domain::AuthenticateApiToken(tx, *context_->clock, token);
      if (!found.ok()) return found.status();
      result = std::move(found).value();
      return Status::Ok();
    });
    if (!status.ok()) return status;
    if (result->token_needs_touch) {
      const std::string token_id = result->principal.credential_id;
      Status touched = context_->db->Write(
          [&](store::Tx& tx) { return domain::TouchApiToken(tx, *context_->clock, token_id); });
      if (!touched.ok()) spdlog::warn("could not record the last use of token {}: {}", token_id, touched.ToString());
    }
    return std::move(result->principal);
  }

  std::string AllowedMethods(std::string_view raw_path) const {
    std::string allow;
    for (const char* method : {"GET", "POST", "PUT", "PATCH", "DELETE"}) {
      if (router_.Find(method, raw_path).spec != nullptr) {
        if (!allow.empty()) allow += ", ";
        allow += method;
      }
    }
    return allow;
  }

  void Finish(Exchange& exchange, const RouteSpec* spec, const ApiRequest* request, ApiResponse response) {
    FinishHttp(exchange, spec, request, internal::ToHttpResponse(response, exchange.request_id));
  }

  // Recorded before the response is handed over: a client that has its
  // answer and reads /metrics next must find this request counted.
  void FinishHttp(Exchange& exchange, const RouteSpec* spec, const ApiRequest* request, net::HttpResponse http) {
    Record(exchange, spec, request, http.status);
    exchange.responder->Send(std::move(http));
  }

  // One log line and the HTTP metrics for an answered request.
  void Record(const Exchange& exchange, const RouteSpec* spec, const ApiRequest* request, int status) {
    const double seconds = std::chrono::duration<double>(SteadyClock::now() - exchange.started).count();
    // Unmatched paths share one label value: raw paths would let anyone
    // create unbounded metric series.
    const std::string route = spec != nullptr ? spec->pattern : "unmatched";
    const std::string& method = exchange.request.method;
    const std::string method_label = spec != nullptr ? spec->method : (method.size() <= 10 ? method : "other");
    context_->metrics->Add(kRequestsTotal,
                           {{"route", route}, {"method", method_label}, {"status", std::to_string(status)}});
    context_->metrics->Observe(kRequestDuration, {{"route", route}, {"method", method_label}}, seconds);

    nlohmann::json line = {
        {"event", "http_request"},
        {"request_id", exchange.request_id},
        {"method", method},
        {"route", route},
        {"path", request != nullptr ? request->path : exchange.request.target.substr(0, 200)},
        {"status", status},
        {"latency_ms", std::round(seconds * 1e6) / 1e3},
        {"remote", exchange.request.remote_address},
    };
    if (request != nullptr && request->principal) line["user_id"] = request->principal->user_id;
    if (status >= 500) {
      spdlog::warn("{}", internal::DumpJson(line));
    } else {
      spdlog::info("{}", internal::DumpJson(line));
    }
  }

  std::shared_ptr<ServerContext> context_;
  ApiServerOptions options_;
  Router router_;
  std::unique_ptr<WorkerPool> pool_;
  std::unique_ptr<net::HttpServer> http_;
  std::mutex stop_mutex_;
  bool stopped_ = false;
};

}  // namespace

Result<std::unique_ptr<ApiServer>> ApiServer::Start(std::shared_ptr<ServerContext> context,
                                                    const ApiServerOptions& options) {
  if (context == nullptr || !context->db || !context->secrets || !context->clock || !context->metrics ||
      !context->provider_clients) {
    return InvalidArgumentError(
        "the API server needs a context with a database, a secret store, a clock, a metrics registry and provider "
        "clients (a start-up bug)");
  }
  auto server = std::make_unique<ApiServerImpl>(std::move(context), options);
  QUARRY_RETURN_IF_ERROR(server->Start());
  return std::unique_ptr<ApiServer>(std::move(server));
}

}  // namespace quarry::api
