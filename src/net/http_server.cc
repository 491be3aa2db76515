// The HttpServer implementation: Boost.Beast 1.74 + C++20 coroutines.
//
// This is deliberately the only Beast translation unit in the project (one
// Beast TU costs ~11 s at -O2 and over a minute with sanitizers).
//
// Structure: one io_context run by N threads. The acceptor coroutine runs on
// its own strand; every accepted connection gets a fresh strand, and its
// socket, its timer and its coroutine all live on that strand, so Stop() can
// close a connection from outside by posting to the strand without racing the
// coroutine. A connection is an entry in `connections_` while its coroutine is
// alive; Stop() closes them all and waits (bounded) for the coroutines to end.

// <utility> must come before any Asio header: Asio 1.74's awaitable.hpp uses
// std::exchange without including it, and libstdc++ 12 no longer pulls it in.
#include <utility>

#include "net/http_server.h"

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <iterator>
#include <limits>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/encoding.h"

namespace quarry::net {

const std::string* HttpServerRequest::FindHeader(std::string_view name) const {
  for (const auto& [field_name, value] : headers) {
    if (EqualsIgnoreAsciiCase(field_name, name)) return &value;
  }
  return nullptr;
}

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

// The first read of a request asks for this much; Beast then reads in steps of
// at least 512 bytes, growing the buffer only as the request needs.
constexpr size_t kFirstReadSize = 512;
// Slack on top of the header limit that bounds the connection's read buffer.
constexpr size_t kReadSlack = 16 * 1024;
// After an error response (400/413/431) the server half-closes and discards
// what the client is still sending, so that closing does not turn into a RST
// that destroys the response before the client reads it. Both bounded.
constexpr std::chrono::seconds kLingerTime{1};
constexpr size_t kLingerMaxBytes = 4 * 1024 * 1024;
// Stop() waits this long for connection coroutines to finish on their own
// before stopping the io_context (which destroys whatever is left).
constexpr std::chrono::seconds kStopDrainTime{5};

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// Beast 1.74 uses boost::string_view.
std::string_view Sv(beast::string_view text) { return {text.data(), text.size()}; }

auto Await(error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

std::string JsonMessage(std::string_view message) {
  return nlohmann::json{{"message", message}}.dump();
}

std::string FormatEndpoint(const tcp::endpoint& endpoint) {
  const asio::ip::address address = endpoint.address();
  const std::string port = std::to_string(endpoint.port());
  if (address.is_v6()) return "[" + address.to_string() + "]:" + port;
  return address.to_string() + ":" + port;
}

// Headers the server owns: framing and connection management.
bool IsServerOwnedHeader(std::string_view name) {
  return EqualsIgnoreAsciiCase(name, "Content-Length") ||
         EqualsIgnoreAsciiCase(name, "Transfer-Encoding") ||
         EqualsIgnoreAsciiCase(name, "Connection");
}

bool HeaderListHasToken(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const size_t comma = value.find(',');
    if (EqualsIgnoreAsciiCase(TrimAsciiWhitespace(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

void LogException(std::exception_ptr error, std::string_view where) {
  if (!error) return;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    spdlog::error("http server: {} ended with an exception: {}", where, e.what());
  } catch (...) {
    spdlog::error("http server: {} ended with an unknown exception", where);
  }
}

// One accepted connection. Everything in it is touched only on `executor` (a
// strand), by the connection coroutine or by handlers Stop() posts there.
struct Connection {
  Connection(tcp::socket socket, asio::any_io_executor strand, uint64_t connection_id)
      : executor(strand), stream(std::move(socket)), timer(strand), id(connection_id) {}

  asio::any_io_executor executor;
  beast::tcp_stream stream;
  asio::steady_timer timer;  // response delays
  uint64_t id;
  std::string remote_address;
};

class HttpServerImpl final : public HttpServer {
 public:
  HttpServerImpl(const HttpServerOptions& options, HttpHandler handler)
      : options_(options),
        handler_(std::move(handler)),
        io_context_(options.threads),
        acceptor_executor_(asio::make_strand(io_context_)),
        acceptor_(acceptor_executor_) {}

  ~HttpServerImpl() override {
    Stop();
    // Connections whose coroutine never got to run are still registered;
    // release their sockets while the io_context still exists.
    std::lock_guard lock(mutex_);
    connections_.clear();
  }

  Status Listen(const asio::ip::address& address, uint16_t port) {
    const tcp::endpoint endpoint(address, port);
    const std::string where = FormatEndpoint(endpoint);
    error_code ec;
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return UnavailableError("cannot listen on " + where + ": " + ec.message() +
                              "; choose another port (0 picks a free one) or stop the process "
                              "that holds it");
    }
    port_ = acceptor_.local_endpoint(ec).port();
    if (ec) return UnavailableError("cannot read the bound address of " + where + ": " + ec.message());
    base_url_ = "http://" + FormatEndpoint(tcp::endpoint(address, static_cast<uint16_t>(port_)));
    return Status::Ok();
  }

  void Run() {
    accepting_ = true;
    asio::co_spawn(acceptor_executor_, AcceptLoop(),
                   [](std::exception_ptr error) { LogException(error, "the acceptor"); });
    threads_.reserve(static_cast<size_t>(options_.threads));
    for (int i = 0; i < options_.threads; ++i) {
      threads_.emplace_back([this] {
        // Coroutines catch their own exceptions; this loop is the last line of
        // defence so that one stray exception cannot kill an I/O thread.
        for (;;) {
          try {
            io_context_.run();
            return;
          } catch (const std::exception& e) {
            spdlog::error("http server: I/O thread caught an exception: {}", e.what());
          }
        }
      });
    }
  }

  int port() const override { return port_; }
  std::string base_url() const override { return base_url_; }
  size_t open_connections() const override { return open_connections_.load(); }

  void Stop() override {
    std::lock_guard stop_lock(stop_mutex_);
    if (stopped_) return;
    stopped_ = true;

    std::vector<std::shared_ptr<Connection>> live;
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      live.reserve(connections_.size());
      for (const auto& [id, connection] : connections_) live.push_back(connection);
    }
    asio::post(acceptor_executor_, [this] {
      error_code ignored;
      acceptor_.close(ignored);
    });
    // Closing the socket fails any pending read/write; cancelling the timer
    // wakes a delayed response. Coroutines re-check `stopping_` after every
    // wait, so a close that lands between two operations is not lost.
    for (auto& connection : live) {
      asio::post(connection->executor, [connection] {
        connection->timer.cancel();
        connection->stream.close();
      });
    }
    live.clear();
    {
      std::unique_lock lock(mutex_);
      drained_.wait_for(lock, kStopDrainTime,
                        [this] { return connections_.empty() && !accepting_; });
    }
    io_context_.stop();
    for (auto& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }

 private:
  // Removes a connection from the registry when its coroutine ends (also when
  // the coroutine frame is destroyed without finishing).
  struct Registration {
    HttpServerImpl* server;
    uint64_t id;
    ~Registration() { server->Unregister(id); }
  };

  bool Register(const std::shared_ptr<Connection>& connection) {
    std::lock_guard lock(mutex_);
    if (stopping_) return false;
    connections_.emplace(connection->id, connection);
    open_connections_.store(connections_.size());
    return true;
  }

  void Unregister(uint64_t id) {
    std::lock_guard lock(mutex_);
    connections_.erase(id);
    open_connections_.store(connections_.size());
    if (connections_.empty()) drained_.notify_all();
  }

  asio::awaitable<void> AcceptLoop() {
    uint64_t next_id = 1;
    for (;;) {
      asio::any_io_executor strand = asio::make_strand(io_context_);
      tcp::socket socket(strand);
      error_code ec;
      co_await acceptor_.async_accept(socket, Await(ec));
      if (stopping_ || !acceptor_.is_open()) break;
      if (ec) {
        // Typically EMFILE/ENFILE: back off briefly instead of spinning.
        spdlog::warn("http server: accept on {} failed: {}", base_url_, ec.message());
        asio::steady_timer backoff(acceptor_executor_);
        backoff.expires_after(std::chrono::milliseconds(50));
        co_await backoff.async_wait(Await(ec));
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);  // no Nagle + delayed-ACK stalls
      tcp::endpoint remote = socket.remote_endpoint(ec);
      auto connection = std::make_shared<Connection>(std::move(socket), strand, next_id++);
      if (!ec) connection->remote_address = FormatEndpoint(remote);
      if (!Register(connection)) {
        connection->stream.close();
        break;
      }
      asio::co_spawn(strand, Session(connection),
                     [](std::exception_ptr error) { LogException(error, "a connection"); });
    }
    std::lock_guard lock(mutex_);
    accepting_ = false;
    drained_.notify_all();
  }

  // Serves one connection until it closes.
  asio::awaitable<void> Session(std::shared_ptr<Connection> connection) {
    Registration registration{this, connection->id};
    try {
      co_await ServeRequests(*connection);
    } catch (const std::exception& e) {
      spdlog::error("http server: connection from {} failed: {}", connection->remote_address,
                    e.what());
    }
    connection->stream.close();
  }

  // What ReadRequest learned besides the request itself.
  struct RequestInfo {
    unsigned version = 11;
    bool keep_alive = true;
  };

  // The connection loop. Memory matters here: ten thousand waiting
  // connections each hold this frame, so parsing and sending live in child
  // coroutines whose frames exist only while they run.
  asio::awaitable<void> ServeRequests(Connection& connection) {
    beast::flat_buffer buffer(options_.max_header_bytes + kReadSlack);
    error_code ec;
    for (;;) {
      if (stopping_) co_return;
      if (buffer.size() == 0) {
        // Between requests: wait for the first byte under the idle timeout.
        // The buffer is released first so that an idle connection does not
        // pin memory sized for its last request.
        buffer.shrink_to_fit();
        connection.stream.expires_after(options_.idle_timeout);
        const size_t n =
            co_await connection.stream.async_read_some(buffer.prepare(kFirstReadSize), Await(ec));
        if (ec || stopping_) co_return;  // closed, reset, idle timeout or Stop()
        buffer.commit(n);
      }
      HttpServerRequest request;
      RequestInfo info;
      if (!co_await ReadRequest(connection, buffer, request, info)) co_return;
      if (buffer.size() == 0) buffer.shrink_to_fit();
      HttpResponse response = CallHandler(request);
      if (!co_await Respond(connection, request, info.version, info.keep_alive, response)) {
        co_return;
      }
    }
  }

  // Reads one request whose first bytes are in `buffer`. False when the
  // connection must end (after an error response where one makes sense).
  asio::awaitable<bool> ReadRequest(Connection& connection, beast::flat_buffer& buffer,
                                    HttpServerRequest& request, RequestInfo& info) {
    // A request has started: all of it must arrive within read_timeout.
    connection.stream.expires_after(options_.read_timeout);
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<uint32_t>(options_.max_header_bytes));
    parser.body_limit(static_cast<uint64_t>(options_.max_body_bytes));
    error_code ec;
    co_await http::async_read_header(connection.stream, buffer, parser, Await(ec));
    if (ec || stopping_) {
      co_await FailRequest(connection, ec);
      co_return false;
    }
    if (!parser.is_done()) {
      const auto& header = parser.get();
      const auto expect = header.find(http::field::expect);
      if (expect != header.end() && EqualsIgnoreAsciiCase(Sv(expect->value()), "100-continue")) {
        co_await asio::async_write(connection.stream, asio::buffer(kContinue), Await(ec));
        if (ec || stopping_) co_return false;
      }
      co_await http::async_read(connection.stream, buffer, parser, Await(ec));
      if (ec || stopping_) {
        co_await FailRequest(connection, ec);
        co_return false;
      }
    }
    http::request<http::string_body> message = parser.release();
    info.version = message.version();
    info.keep_alive = message.keep_alive();
    request.method = std::string(Sv(message.method_string()));
    request.target = std::string(Sv(message.target()));
    request.headers.reserve(static_cast<size_t>(std::distance(message.begin(), message.end())));
    for (const auto& field : message) {
      request.headers.emplace_back(Sv(field.name_string()), Sv(field.value()));
    }
    request.body = std::move(message.body());
    request.remote_address = connection.remote_address;
    co_return true;
  }

  HttpResponse CallHandler(const HttpServerRequest& request) {
    try {
      return handler_(request);
    } catch (const std::exception& e) {
      spdlog::error("http server: handler for {} {} threw: {}", request.method, request.target,
                    e.what());
    } catch (...) {
      spdlog::error("http server: handler for {} {} threw a non-standard exception",
                    request.method, request.target);
    }
    return ErrorResponse(500, "internal error while handling " + request.method + " " +
                                  request.target + "; see the server log");
  }

  static HttpResponse ErrorResponse(int status, std::string message) {
    HttpResponse response;
    response.status = status;
    response.headers = {{"Content-Type", "application/json"}};
    response.body = JsonMessage(message);
    return response;
  }

  // Answers a request that could not be read, when an answer makes sense,
  // then closes.
  asio::awaitable<void> FailRequest(Connection& connection, error_code ec) {
    if (stopping_ || ec.category() != http::make_error_code(http::error::bad_method).category() ||
        ec == http::error::end_of_stream || ec == http::error::partial_message) {
      // Socket errors, timeouts, Stop(), or the client closing mid-request:
      // there is nobody to answer.
      co_return;
    }
    HttpResponse response;
    if (ec == http::error::body_limit) {
      response = ErrorResponse(413, "request body exceeds the server limit of " +
                                        std::to_string(options_.max_body_bytes) +
                                        " bytes; send a smaller body");
    } else if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      response = ErrorResponse(431, "request headers exceed the server limit of " +
                                        std::to_string(options_.max_header_bytes) +
                                        " bytes; send fewer or smaller headers");
    } else {
      response = ErrorResponse(400, "malformed HTTP request: " + ec.message());
    }
    http::response<http::string_body> message(static_cast<http::status>(response.status), 11);
    for (const auto& [name, value] : response.headers) message.insert(name, value);
    message.keep_alive(false);
    message.body() = std::move(response.body);
    message.prepare_payload();
    connection.stream.expires_after(options_.read_timeout);
    error_code write_ec;
    co_await http::async_write(connection.stream, message, Await(write_ec));
    if (write_ec || stopping_) co_return;
    // Half-close, then discard what the client is still sending (bounded) so
    // that close() does not reset the connection before the client has read
    // the response.
    connection.stream.socket().shutdown(tcp::socket::shutdown_send, write_ec);
    connection.stream.expires_after(kLingerTime);
    std::array<char, 4096> sink;
    size_t discarded = 0;
    while (discarded < kLingerMaxBytes && !stopping_) {
      const size_t n = co_await connection.stream.async_read_some(asio::buffer(sink), Await(ec));
      if (ec) break;
      discarded += n;
    }
  }

  // Waits `delay` on the connection's timer. False when the wait was cut
  // short (Stop()).
  asio::awaitable<bool> Sleep(Connection& connection, std::chrono::milliseconds delay) {
    if (stopping_) co_return false;
    if (delay <= std::chrono::milliseconds::zero()) co_return true;
    connection.timer.expires_after(delay);
    error_code ec;
    co_await connection.timer.async_wait(Await(ec));
    co_return !ec && !stopping_;
  }

  static void Reset(Connection& connection) {
    // SO_LINGER {on, 0}: close() sends RST instead of FIN.
    error_code ignored;
    connection.stream.socket().set_option(asio::socket_base::linger(true, 0), ignored);
    connection.stream.close();
  }

  // Holds the connection without sending anything until the client closes it
  // or Stop() does. Whatever the client sends is discarded.
  asio::awaitable<void> Stall(Connection& connection) {
    connection.stream.expires_never();
    std::array<char, 512> sink;
    error_code ec;
    while (!stopping_) {
      co_await connection.stream.async_read_some(asio::buffer(sink), Await(ec));
      if (ec) break;
    }
  }

  static void GracefulClose(Connection& connection) {
    error_code ignored;
    connection.stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    connection.stream.close();
  }

  // Plays a response script. Returns true when the connection stays open for
  // the next request.
  template <typename Message>
  static void FillHeader(Message& message, unsigned version, const HttpResponse& response,
                         bool close_after) {
    message.version(version == 10 ? 10 : 11);
    message.result(static_cast<unsigned>(response.status));
    for (const auto& [name, value] : response.headers) {
      if (!IsServerOwnedHeader(name)) message.insert(name, value);
    }
    message.keep_alive(!close_after);
  }

  // The send steps are coroutines of their own so that their messages and
  // serializers take memory only while they run, not during a long delay.
  asio::awaitable<bool> SendComplete(Connection& connection, const HttpServerRequest& request,
                                     unsigned version, bool close_after, HttpResponse& response) {
    http::response<http::string_body> message;
    FillHeader(message, version, response, close_after);
    if (request.method == "HEAD") {
      message.content_length(response.body.size());
    } else {
      message.body() = std::move(response.body);
      message.prepare_payload();
    }
    connection.stream.expires_after(options_.read_timeout);
    error_code ec;
    co_await http::async_write(connection.stream, message, Await(ec));
    co_return !ec && !stopping_;
  }

  asio::awaitable<bool> SendChunked(Connection& connection, unsigned version, bool close_after,
                                    const HttpResponse& response) {
    error_code ec;
    {
      http::response<http::empty_body> message;
      FillHeader(message, version, response, close_after);
      message.chunked(true);
      http::response_serializer<http::empty_body> serializer(message);
      connection.stream.expires_after(options_.read_timeout);
      co_await http::async_write_header(connection.stream, serializer, Await(ec));
      if (ec || stopping_) co_return false;
    }
    for (const auto& chunk : response.chunks) {
      if (!co_await Sleep(connection, chunk.delay)) co_return false;
      // An empty chunk would be the terminating chunk; it only carries a delay.
      if (chunk.bytes.empty()) continue;
      connection.stream.expires_after(options_.read_timeout);
      co_await asio::async_write(connection.stream, http::make_chunk(asio::buffer(chunk.bytes)),
                                 Await(ec));
      if (ec || stopping_) co_return false;
    }
    if (response.end == ResponseEnd::kComplete) {
      connection.stream.expires_after(options_.read_timeout);
      co_await asio::async_write(connection.stream, http::make_chunk_last(), Await(ec));
      if (ec || stopping_) co_return false;
    }
    co_return true;
  }

  asio::awaitable<bool> Respond(Connection& connection, const HttpServerRequest& request,
                                unsigned version, bool keep_alive, HttpResponse& response) {
    if (!co_await Sleep(connection, response.delay)) co_return false;
    switch (response.start) {
      case ResponseStart::kSend:
        break;
      case ResponseStart::kResetConnection:
        Reset(connection);
        co_return false;
      case ResponseStart::kStallForever:
        co_await Stall(connection);
        co_return false;
    }
    if (response.status < 100 || response.status > 999) {
      spdlog::error("http server: handler for {} {} returned invalid status {}", request.method,
                    request.target, response.status);
      response = ErrorResponse(500, "internal error: the handler returned HTTP status " +
                                        std::to_string(response.status));
    }

    bool close_after = !keep_alive || response.end == ResponseEnd::kCloseConnection ||
                       response.end == ResponseEnd::kResetConnection;
    for (const auto& [name, value] : response.headers) {
      if (EqualsIgnoreAsciiCase(name, "Connection") && HeaderListHasToken(value, "close")) {
        close_after = true;
      }
    }
    const bool sent = response.chunked
                          ? co_await SendChunked(connection, version, close_after, response)
                          : co_await SendComplete(connection, request, version, close_after,
                                                  response);
    if (!sent) co_return false;

    switch (response.end) {
      case ResponseEnd::kComplete:
        if (!close_after) co_return true;
        GracefulClose(connection);
        co_return false;
      case ResponseEnd::kCloseConnection:
        GracefulClose(connection);
        co_return false;
      case ResponseEnd::kResetConnection:
        Reset(connection);
        co_return false;
      case ResponseEnd::kStallForever:
        co_await Stall(connection);
        co_return false;
    }
    co_return false;
  }

  const HttpServerOptions options_;
  const HttpHandler handler_;

  std::mutex stop_mutex_;  // serializes Stop()
  bool stopped_ = false;

  mutable std::mutex mutex_;  // guards connections_, accepting_; stopping_ is set under it
  std::condition_variable drained_;
  std::unordered_map<uint64_t, std::shared_ptr<Connection>> connections_;
  bool accepting_ = false;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> open_connections_{0};

  int port_ = 0;
  std::string base_url_;

  // Declared after everything the coroutines touch: ~io_context destroys any
  // coroutine frames still pending, and their destructors use the members
  // above.
  asio::io_context io_context_;
  asio::any_io_executor acceptor_executor_;
  tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
};

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                      HttpHandler handler) {
  if (!handler) return InvalidArgumentError("HTTP server needs a handler; pass a callable");
  error_code ec;
  const asio::ip::address address = asio::ip::make_address(options.host, ec);
  if (ec) {
    return InvalidArgumentError("HTTP server host \"" + options.host +
                                "\" is not an IP address literal; use an address such as "
                                "127.0.0.1, 0.0.0.0 or ::1 (the server never resolves names)");
  }
  if (options.port < 0 || options.port > 65535) {
    return InvalidArgumentError("HTTP server port " + std::to_string(options.port) +
                                " is out of range; use 1-65535, or 0 for a free port");
  }
  if (options.threads < 1 || options.threads > 256) {
    return InvalidArgumentError("HTTP server threads = " + std::to_string(options.threads) +
                                " is out of range; use 1-256");
  }
  if (options.max_header_bytes == 0 ||
      options.max_header_bytes > std::numeric_limits<uint32_t>::max() / 2) {
    return InvalidArgumentError("HTTP server max_header_bytes = " +
                                std::to_string(options.max_header_bytes) +
                                " is out of range; use a positive size such as 65536");
  }
  if (options.idle_timeout.count() <= 0 || options.read_timeout.count() <= 0) {
    return InvalidArgumentError("HTTP server idle_timeout and read_timeout must be positive");
  }
  try {
    auto server = std::make_unique<HttpServerImpl>(options, std::move(handler));
    QUARRY_RETURN_IF_ERROR(server->Listen(address, static_cast<uint16_t>(options.port)));
    server->Run();
    return std::unique_ptr<HttpServer>(std::move(server));
  } catch (const std::exception& e) {
    return UnavailableError("cannot start the HTTP server on " + options.host + ":" +
                            std::to_string(options.port) + ": " + e.what());
  }
}

}  // namespace quarry::net
