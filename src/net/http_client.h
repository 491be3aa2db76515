#pragma once
// An asynchronous HTTP client on libcurl's multi interface, driven by one
// event-loop thread: thousands of requests in flight without a thread each,
// connection reuse, HTTP/2 when the server offers it (ALPN over TLS), TLS
// verification on, proxies from the standard environment (http_proxy,
// https_proxy, no_proxy), and no call that can wait forever.
//
// Every request carries its own limits: a connect timeout, a per-request
// timeout (the whole exchange), an idle timeout (no bytes received for that
// long ends the call: a stalled stream becomes a clear error, never a hang),
// a response size cap, and a cancellation handle. Retries are the caller's
// business (aws::RetryStrategy); this layer makes one attempt. That includes
// the case where libcurl would resend a request by itself (a reused keep-alive
// connection closed before any response byte): the request is not sent again
// and the call ends with kConnectionReset, since the server may have acted on it.
//
// Callbacks run on the client's event-loop thread, one at a time; they must
// not block. on_data receives body bytes in the slices libcurl delivers; it may
// return false to abort the request (the completion then reports kCancelled).
// on_complete is called exactly once per started request, after the last
// on_data.
//
// Thread safety: Start(), Cancel() and the destructor may be called from any
// thread. The destructor cancels what is in flight (their on_complete runs
// with kCancelled) and joins the loop thread.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace quarry::net {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpClientRequest {
  std::string method = "GET";
  // Absolute URL, already encoded as it must go on the wire
  // ("https://bedrock-runtime.us-east-1.amazonaws.com/model/x%3A0/invoke");
  // the client sends the path exactly as given.
  std::string url{};
  HttpHeaders headers{};  // sent as given (the caller signs them)
  std::string body{};

  std::chrono::milliseconds connect_timeout{3'000};
  std::chrono::milliseconds request_timeout{60'000};  // the whole exchange
  std::chrono::milliseconds idle_timeout{30'000};     // no bytes received for this long
  size_t max_response_bytes = 32 * 1024 * 1024;       // body bytes; over it the call fails
};

// How a request ended at the transport level. An HTTP error status is not a
// transport failure: it is kOk with that status.
enum class TransportOutcome {
  kOk,
  kConnectFailed,     // DNS, refused, unreachable, TLS handshake
  kConnectTimeout,
  kRequestTimeout,    // request_timeout elapsed
  kIdleTimeout,       // no bytes for idle_timeout
  kConnectionReset,   // reset or closed before the response was complete
  kResponseTooLarge,  // more than max_response_bytes
  kCancelled,         // Cancel(), on_data returned false, or the client shut down
  kOther,
};
std::string_view TransportOutcomeName(TransportOutcome outcome);

struct HttpClientResponse {
  TransportOutcome outcome = TransportOutcome::kOther;
  std::string error{};   // what went wrong, for people (empty when kOk)
  int status = 0;        // 0 when no response status arrived
  HttpHeaders headers{};  // of the final response (no 100-continue)
  // The body, unless the request had an on_data callback (then empty).
  std::string body{};
  bool headers_received = false;
  uint64_t body_bytes = 0;  // received, whether buffered or streamed
  std::chrono::microseconds elapsed{0};
  std::string http_version{};  // "1.1", "2"

  // The first header with this name (case-insensitive), or nullptr.
  const std::string* FindHeader(std::string_view name) const;
};

struct HttpCallbacks {
  // Called once when the response headers are complete (status + headers).
  std::function<void(int status, const HttpHeaders& headers)> on_headers{};
  // Body bytes as they arrive; return false to abort. When unset, the body is
  // buffered into HttpClientResponse::body.
  std::function<bool(std::string_view bytes)> on_data{};
  // Exactly once.
  std::function<void(HttpClientResponse response)> on_complete{};
};

// Identifies a started request, for Cancel().
using RequestId = uint64_t;

struct HttpClientOptions {
  size_t max_connections_per_host = 0;  // 0 = unlimited (libcurl default)
  size_t max_total_connections = 0;     // 0 = unlimited
  bool verify_tls = true;               // only tests against plain HTTP may care; never off in production
  // A PEM file of CA certificates to trust instead of the system's (a
  // TLS-inspecting proxy's CA, a private CA in front of a VPC endpoint); empty:
  // the system store. Create() fails (InvalidArgument) when it cannot be read.
  std::string ca_bundle{};
  std::string user_agent = "quarry";
};

class HttpClient {
 public:
  // Starts the event-loop thread. Errors: Internal when libcurl cannot be
  // initialised.
  static Result<std::unique_ptr<HttpClient>> Create(const HttpClientOptions& options = {});
  virtual ~HttpClient() = default;

  // Queues a request; returns at once. Errors (returned, and on_complete is
  // then NOT called): InvalidArgument for a URL that is not http(s):// or
  // that contains spaces or control characters; Unavailable after shutdown.
  virtual Result<RequestId> Start(HttpClientRequest request, HttpCallbacks callbacks) = 0;

  // Cancels a request if it is still in flight (its on_complete runs with
  // kCancelled); no effect otherwise.
  virtual void Cancel(RequestId id) = 0;

  // Requests in flight right now.
  virtual size_t in_flight() const = 0;

  // Convenience for tools and tests: starts a buffered request and blocks the
  // calling thread (never the loop thread) until it completes.
  HttpClientResponse Send(HttpClientRequest request);
};

}  // namespace quarry::net
