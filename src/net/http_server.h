#pragma once
// An HTTP/1.1 server for Quarry's own endpoints and for the Bedrock emulator.
//
// The implementation (http_server.cc) is the project's only Boost.Beast
// translation unit: one io_context, C++20 coroutines, keep-alive connections,
// timers instead of threads, so ten thousand slow responses cost ten thousand
// small coroutine frames, not threads. Nothing from Boost leaks into this
// header.
//
// A handler turns a request into an HttpResponse *script*: a status and
// headers, an optional delay before anything is sent, then either a complete
// body or a sequence of (delay, bytes) chunks sent with chunked transfer
// encoding, and finally how the exchange ends. Scripts make every network
// behaviour an emulator needs reproducible: latency, time to first byte,
// delay between stream events, a stream that stalls forever, a connection
// reset, a stream cut off mid-frame.
//
// Thread safety: the handler is called on the server's I/O threads, possibly
// concurrently when `threads` > 1; it must be thread-safe and must not block.
// Start() and Stop() may be called from any thread; Stop() is idempotent and
// is called by the destructor.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace quarry::net {

using HeaderFields = std::vector<std::pair<std::string, std::string>>;

struct HttpServerRequest {
  std::string method{};   // "POST"
  std::string target{};   // raw request target as received: "/model/x%3A0/invoke?a=b"
  HeaderFields headers{};  // as received, in order, names as sent
  std::string body{};
  std::string remote_address{};  // "127.0.0.1:54321"

  // The first header with this name (case-insensitive), or nullptr.
  const std::string* FindHeader(std::string_view name) const;
};

// What happens before the status line is sent.
enum class ResponseStart {
  kSend,                // send the response (after `delay`)
  kResetConnection,     // after `delay`, reset the connection (RST) without a response
  kStallForever,        // never answer; hold the connection until the client or Stop() closes it
};

// What happens after the body or the last chunk.
enum class ResponseEnd {
  kComplete,            // finish normally (terminating chunk for chunked bodies); keep-alive
  kCloseConnection,     // close the connection without the terminating chunk: a cut-off stream
  kResetConnection,     // reset the connection (RST) without the terminating chunk
  kStallForever,        // send nothing more, never finish; hold until the client or Stop() closes
};

struct HttpResponse {
  int status = 200;
  HeaderFields headers{};  // Content-Length / Transfer-Encoding are set by the server
  std::chrono::milliseconds delay{0};  // before the status line (latency, time to first byte)
  ResponseStart start = ResponseStart::kSend;

  // A complete body, sent with Content-Length, when `chunked` is false.
  std::string body{};

  // With `chunked`, the body is sent with Transfer-Encoding: chunked, one HTTP
  // chunk per entry, each after its delay (measured from the previous send).
  bool chunked = false;
  struct Chunk {
    std::chrono::milliseconds delay{0};
    std::string bytes{};
  };
  std::vector<Chunk> chunks{};
  ResponseEnd end = ResponseEnd::kComplete;
};

using HttpHandler = std::function<HttpResponse(const HttpServerRequest&)>;

// The answer to one request, given later and possibly from another thread:
// what an application server needs for handlers that block (a database
// write on a worker pool), wait (a Bedrock call), or stream (server-sent
// events).
//
// Exactly one of these sequences, once:
//   Send(response)                      a complete scripted response, as from an HttpHandler
//   BeginStream(...) Write(...)* End()  a chunked response produced over time
// Calls out of that order are ignored (and logged). Writes are queued and sent
// in order; Write() never blocks. The queue is bounded: when more than
// `max_queued_bytes` wait unsent (a slow reader), Write() returns false, the
// connection is closed and later writes are dropped; the producer must stop.
// Write() also returns false once the client has gone away (closed, reset,
// Stop()); `closed()` tells the same without writing.
// If the Responder is destroyed without a response (a handler bug), the
// server answers 500 with a JSON message; destroyed after BeginStream but
// before End(), the connection is closed without the terminating chunk (the
// client sees a cut-off stream). After BeginStream, the connection is not
// reused unless End() completed the stream. A response that has not started
// (no Send/BeginStream) within `response_timeout` is answered 504 with a
// JSON message, and later calls are ignored.
//
// Send() plays its script (delays, chunks, end modes) exactly as a response
// from an HttpHandler. BeginStream() sends the header at once with
// Transfer-Encoding: chunked (for an HTTP/1.0 client: no chunking, and the
// body ends when the connection closes); each Write() batch becomes one
// chunk; Write("") is accepted and sends nothing. For HEAD requests only the
// header is sent.
//
// While a response is pending or streaming, the server keeps a read pending
// on the connection, so a client that goes away (close, reset, or a
// half-close) makes closed() true promptly, without a Write(). closed() is
// also true once nothing more can be sent: after Send(), End(), the 504, or
// Stop(). The Responder holds only weak references: it may outlive the
// server, and after Stop() or destruction every call is a no-op.
//
// Thread safety: all methods may be called from any thread (also from inside
// the handler, on the I/O thread); they never block on I/O; calls from
// several threads are serialized, in the order they took the Responder's lock.
class Responder {
 public:
  virtual ~Responder() = default;
  virtual void Send(HttpResponse response) = 0;
  virtual void BeginStream(int status, HeaderFields headers) = 0;
  virtual bool Write(std::string bytes) = 0;
  virtual void End() = 0;
  virtual bool closed() const = 0;
};

// An asynchronous handler: called on an I/O thread with the request (moved
// in) and the Responder; it must return quickly (hand blocking work to
// another thread) and answer through the Responder, now or later.
using AsyncHttpHandler =
    std::function<void(HttpServerRequest request, std::shared_ptr<Responder> responder)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";  // an IP literal; the server never resolves names
  int port = 0;                    // 0 picks a free port (see HttpServer::port())
  int threads = 1;                 // I/O threads
  size_t max_body_bytes = 26'214'400;       // larger bodies get 413 with a JSON message
  size_t max_header_bytes = 64 * 1024;      // larger headers get 431
  std::chrono::seconds idle_timeout{60};    // an idle keep-alive connection is closed
  std::chrono::seconds read_timeout{30};    // a request must arrive within this once started
  // Async handlers: unsent bytes a stream may queue before the connection is
  // closed as a slow reader (see Responder).
  size_t max_queued_bytes = 4 * 1024 * 1024;
  // Async handlers: an idle stream (no Write for this long) gets no special
  // treatment; the producer owns keep-alives (SSE comments). A response that
  // never starts is answered 504 after this long, so no request waits forever.
  std::chrono::seconds response_timeout{300};
};

class HttpServer {
 public:
  // Binds, listens and starts the I/O threads. Errors: InvalidArgument for a
  // host that is not an IP literal; Unavailable when the address cannot be
  // bound (the message names the address and the system error).
  static Result<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                   HttpHandler handler);
  // The same, with an asynchronous handler (see Responder).
  static Result<std::unique_ptr<HttpServer>> StartAsync(const HttpServerOptions& options,
                                                        AsyncHttpHandler handler);
  virtual ~HttpServer() = default;

  // The bound port (the real one when options.port was 0).
  virtual int port() const = 0;
  // "http://127.0.0.1:PORT".
  virtual std::string base_url() const = 0;
  // Stops accepting, closes every connection (stalled ones included), joins
  // the I/O threads.
  virtual void Stop() = 0;
  // Connections open right now (for tests and the admin endpoint).
  virtual size_t open_connections() const = 0;
};

}  // namespace quarry::net
