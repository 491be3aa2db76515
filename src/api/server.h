#pragma once
// The API server: the HTTP server (net::HttpServer::StartAsync) in front of
// the Router, with the cross-cutting work done once for every route:
// request ids (X-Request-Id in and out, carried into logs), authentication
// (Authorization: Bearer <API token> or the quarry_session cookie),
// authorization by the route's Access, body size limit, the idempotency-key
// replay for POSTs, the error envelope for every failure (unknown route 404,
// wrong method 405, handler errors), a worker pool for handlers (bounded
// queue: when full, 503 with Retry-After), one JSON log line per request
// (method, route pattern, status, latency, request id, user id) and HTTP
// metrics by route pattern and status. Static files of the web UI are served
// from ServerSettings::data_dir's sibling "web" directory in a later issue.
//
// Thread safety: Start/Stop from any thread; Stop drains in-flight handlers
// (bounded wait) before returning.

#include <memory>
#include <string>

#include "api/api.h"
#include "common/status.h"

namespace quarry::api {

struct ApiServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  int io_threads = 2;
  int worker_threads = 8;
  size_t max_queued_requests = 10'000;
};

class ApiServer {
 public:
  // Registers every area's routes and starts listening. The context must
  // have every member set.
  static Result<std::unique_ptr<ApiServer>> Start(std::shared_ptr<ServerContext> context,
                                                  const ApiServerOptions& options);
  virtual ~ApiServer() = default;
  virtual std::string base_url() const = 0;
  virtual int port() const = 0;
  virtual const Router& router() const = 0;
  virtual void Stop() = 0;
};

}  // namespace quarry::api
