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
//
// Both handler kinds share the send path (Respond() plays a script). With an
// AsyncHttpHandler, the coroutine parks on its timer after calling the
// handler; Responder calls (any thread) record the event in a small shared
// Exchange and post a timer cancel to the strand, so nothing blocks and the
// socket is still touched only on the strand (see "Asynchronous handlers").

// <utility> must come before any Asio header: Asio 1.74's awaitable.hpp uses
// std::exchange without including it, and libstdc++ 12 no longer pulls it in.
#include <utility>

#include "net/http_server.h"

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <exception>
#include <iterator>
#include <limits>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <sstream>
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
// Connections taken from the accept queue per wake-up of the acceptor (see
// AcceptLoop): a full default backlog (4096) empties in 16 trips, and
// established connections are not starved meanwhile.
constexpr int kMaxAcceptBurst = 256;
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

// The target without its query, for messages: a query may carry a token.
std::string_view PathOf(std::string_view target) {
  return target.substr(0, target.find('?'));
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

// Shared by every exchange of one server: Responders post to a connection's
// strand only while the gate is open. Stop() closes it before stopping the
// io_context, so a Responder that outlives the server never touches a dead
// executor; its calls become no-ops.
struct Gate {
  std::shared_mutex mutex;
  bool open = true;
};

struct Connection;

// The state of one asynchronous exchange (a request answered through a
// Responder), shared by the Responder (any thread) and the connection
// coroutine (its strand). Plain data guarded by `mutex`, plus the strand
// executor, which the coroutine clears (under the mutex) when it lets go of
// the exchange: nothing here keeps the server or its io_context alive.
struct Exchange {
  enum class Answer {
    kNone,       // nothing yet
    kSend,       // Send(): `start` holds the whole script
    kStream,     // BeginStream(): `start` holds status and headers
    kEnded,      // End() after BeginStream
    kAbandoned,  // the server answered instead (500, 504) or gave up
  };

  Exchange(std::shared_ptr<Gate> server_gate, size_t queue_limit, asio::any_io_executor strand,
           std::weak_ptr<Connection> owner)
      : gate(std::move(server_gate)),
        max_queued_bytes(queue_limit),
        executor(std::move(strand)),
        connection(std::move(owner)) {}

  // Wakes the coroutine if it waits for an event. Called with `mutex` held.
  void WakeLocked(const std::shared_ptr<Exchange>& self);
  bool GateOpen() {
    std::shared_lock lock(gate->mutex);
    return gate->open;
  }

  const std::shared_ptr<Gate> gate;
  const size_t max_queued_bytes;

  std::mutex mutex;
  Answer answer = Answer::kNone;
  std::optional<HttpResponse> start;  // taken by the coroutine
  std::deque<std::string> queue;       // Write() bytes not yet taken
  size_t queued_bytes = 0;             // queued + being written
  bool overflow = false;               // a Write() went over max_queued_bytes
  bool dropped = false;                // the Responder was destroyed
  bool closed = false;                 // no more bytes can reach the client
  bool wake_posted = false;
  std::optional<asio::any_io_executor> executor;  // reset when the coroutine is done
  std::weak_ptr<Connection> connection;
};

// One accepted connection. Everything in it is touched only on `executor` (a
// strand), by the connection coroutine or by handlers posted there.
struct Connection {
  Connection(tcp::socket socket, asio::any_io_executor strand, uint64_t connection_id,
             size_t buffer_limit)
      : executor(strand),
        stream(std::move(socket)),
        timer(strand),
        id(connection_id),
        buffer(buffer_limit) {}

  asio::any_io_executor executor;
  beast::tcp_stream stream;
  // Response delays; in async mode also the coroutine's wait for events
  // (while `waiting`, a cancel() wakes it).
  asio::steady_timer timer;
  uint64_t id;
  std::string remote_address;
  // Bytes read and not yet parsed. Lives here (not in the coroutine) because
  // the async-mode watcher reads into it while a response is pending.
  beast::flat_buffer buffer;

  // Async mode.
  bool waiting = false;        // the coroutine waits on `timer` for an event
  bool watching = false;       // a watcher read is pending on the socket
  bool watch_wanted = false;   // restart the watcher after it reads bytes
  bool peer_gone = false;      // the watcher saw EOF or an error
  std::shared_ptr<Exchange> exchange;  // the exchange in progress, if any
};

void Exchange::WakeLocked(const std::shared_ptr<Exchange>& self) {
  if (wake_posted || !executor) return;
  std::shared_lock gate_lock(gate->mutex);
  if (!gate->open) return;
  wake_posted = true;
  // post() never runs the handler inline, so holding `mutex` here is safe.
  asio::post(*executor, [self, owner = connection] {
    {
      std::lock_guard lock(self->mutex);
      self->wake_posted = false;
    }
    // The check runs on the strand, after the coroutine either armed its
    // wait (then cancel wakes it) or is busy (then it re-reads the state
    // before it waits again): no wake-up is lost.
    if (std::shared_ptr<Connection> connection = owner.lock()) {
      if (connection->waiting) connection->timer.cancel();
    }
  });
}

class ResponderImpl final : public Responder {
 public:
  explicit ResponderImpl(const std::shared_ptr<Exchange>& exchange) : exchange_(exchange) {}

  ~ResponderImpl() override {
    std::shared_ptr<Exchange> exchange = exchange_.lock();
    if (!exchange) return;
    std::lock_guard lock(exchange->mutex);
    exchange->dropped = true;
    exchange->WakeLocked(exchange);
  }

  void Send(HttpResponse response) override {
    std::shared_ptr<Exchange> exchange = exchange_.lock();
    if (!exchange) return;
    std::lock_guard lock(exchange->mutex);
    if (exchange->answer != Exchange::Answer::kNone) {
      IgnoredCall("Send", exchange->answer);
      return;
    }
    exchange->answer = Exchange::Answer::kSend;
    exchange->start = std::move(response);
    exchange->WakeLocked(exchange);
  }

  void BeginStream(int status, HeaderFields headers) override {
    std::shared_ptr<Exchange> exchange = exchange_.lock();
    if (!exchange) return;
    std::lock_guard lock(exchange->mutex);
    if (exchange->answer != Exchange::Answer::kNone) {
      IgnoredCall("BeginStream", exchange->answer);
      return;
    }
    HttpResponse start;
    start.status = status;
    start.headers = std::move(headers);
    start.chunked = true;
    exchange->answer = Exchange::Answer::kStream;
    exchange->start = std::move(start);
    exchange->WakeLocked(exchange);
  }

  bool Write(std::string bytes) override {
    std::shared_ptr<Exchange> exchange = exchange_.lock();
    if (!exchange) return false;
    std::lock_guard lock(exchange->mutex);
    if (exchange->answer != Exchange::Answer::kStream) {
      if (exchange->answer != Exchange::Answer::kAbandoned) IgnoredCall("Write", exchange->answer);
      return false;
    }
    if (exchange->closed || !exchange->GateOpen()) return false;
    if (bytes.empty()) return true;  // an empty chunk would end the stream
    if (bytes.size() > exchange->max_queued_bytes - std::min(exchange->max_queued_bytes,
                                                             exchange->queued_bytes)) {
      // A slow reader: the coroutine closes the connection.
      exchange->overflow = true;
      exchange->closed = true;
      exchange->WakeLocked(exchange);
      return false;
    }
    exchange->queued_bytes += bytes.size();
    exchange->queue.push_back(std::move(bytes));
    exchange->WakeLocked(exchange);
    return true;
  }

  void End() override {
    std::shared_ptr<Exchange> exchange = exchange_.lock();
    if (!exchange) return;
    std::lock_guard lock(exchange->mutex);
    if (exchange->answer != Exchange::Answer::kStream) {
      if (exchange->answer != Exchange::Answer::kAbandoned) IgnoredCall("End", exchange->answer);
      return;
    }
    exchange->answer = Exchange::Answer::kEnded;
    exchange->WakeLocked(exchange);
  }

  bool closed() const override {
    std::shared_ptr<Exchange> exchange = exchange_.lock();
    if (!exchange) return true;
    std::lock_guard lock(exchange->mutex);
    // Consistent with Write(): true once nothing more can be sent, whether
    // the client went away or the answer is complete.
    return exchange->closed || exchange->answer == Exchange::Answer::kSend ||
           exchange->answer == Exchange::Answer::kEnded ||
           exchange->answer == Exchange::Answer::kAbandoned || !exchange->GateOpen();
  }

 private:
  static void IgnoredCall(std::string_view call, Exchange::Answer answer) {
    std::string_view state = "the response was already sent";
    switch (answer) {
      case Exchange::Answer::kNone:
        state = "BeginStream() was not called";
        break;
      case Exchange::Answer::kSend:
        state = "Send() already answered";
        break;
      case Exchange::Answer::kStream:
        state = "the stream already began";
        break;
      case Exchange::Answer::kEnded:
        state = "End() already ended the stream";
        break;
      case Exchange::Answer::kAbandoned:
        state = "the server already answered (timeout or error)";
        break;
    }
    spdlog::warn("http server: Responder::{}() ignored because {}; answer with Send() or "
                 "BeginStream() Write()* End(), once",
                 call, state);
  }

  // Weak: once the connection coroutine is done with the exchange, every
  // call is a no-op and the Responder keeps nothing alive.
  std::weak_ptr<Exchange> exchange_;
};

class HttpServerImpl final : public HttpServer {
 public:
  HttpServerImpl(const HttpServerOptions& options, HttpHandler handler,
                 AsyncHttpHandler async_handler)
      : options_(options),
        handler_(std::move(handler)),
        async_handler_(std::move(async_handler)),
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
    // Synchronous accept() then returns would_block instead of waiting (see
    // AcceptLoop); asynchronous accepts are unaffected.
    if (!ec) acceptor_.non_blocking(true, ec);
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
    {
      // From here on Responders post nothing (see Gate).
      std::unique_lock lock(gate_->mutex);
      gate_->open = false;
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

  // Registers an accepted socket and starts its session on `strand`; false
  // (the socket closed) when the server is stopping.
  bool Adopt(tcp::socket socket, const asio::any_io_executor& strand, uint64_t id) {
    error_code ec;
    socket.set_option(tcp::no_delay(true), ec);  // no Nagle + delayed-ACK stalls
    tcp::endpoint remote = socket.remote_endpoint(ec);
    auto connection = std::make_shared<Connection>(std::move(socket), strand, id, options_.max_header_bytes + kReadSlack);
    if (!ec) connection->remote_address = FormatEndpoint(remote);
    if (!Register(connection)) {
      connection->stream.close();
      return false;
    }
    asio::co_spawn(strand, Session(connection), [](std::exception_ptr error) { LogException(error, "a connection"); });
    return true;
  }

  // Accepts connections until Stop(). After each asynchronous accept, what
  // else waits in the kernel's accept queue is taken at once (up to
  // kMaxAcceptBurst) instead of one connection per trip through the
  // io_context's handler queue: under a burst of thousands of connects that
  // queue is long, and an accept queue that overflows makes the kernel drop
  // SYNs, which the client only retries a whole second later.
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
      if (!Adopt(std::move(socket), strand, next_id++)) break;
      bool stopped = false;
      for (int i = 0; i < kMaxAcceptBurst; ++i) {
        asio::any_io_executor more_strand = asio::make_strand(io_context_);
        tcp::socket more(more_strand);
        acceptor_.accept(more, ec);
        if (ec) break;  // would_block: the queue is empty (other errors: the async accept sees them)
        if (!Adopt(std::move(more), more_strand, next_id++)) {
          stopped = true;
          break;
        }
      }
      if (stopped) break;
    }
    std::lock_guard lock(mutex_);
    accepting_ = false;
    drained_.notify_all();
  }

  // Serves one connection until it closes.
  asio::awaitable<void> Session(std::shared_ptr<Connection> connection) {
    Registration registration{this, connection->id};
    try {
      co_await ServeRequests(connection);
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
  asio::awaitable<void> ServeRequests(std::shared_ptr<Connection> shared_connection) {
    Connection& connection = *shared_connection;
    beast::flat_buffer& buffer = connection.buffer;
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
      if (async_handler_) {
        if (!co_await ServeAsync(shared_connection, std::move(request), info)) co_return;
        continue;
      }
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

  // Plays a chunked script. What is due at the same moment (the header and
  // the chunks without a delay before them, and the terminating chunk) goes
  // out in one write: a streamed answer that is ready at once (most of the
  // emulator's) costs one send and one wake-up of the client, not one per
  // event. A chunk with a delay starts a new write after that delay.
  asio::awaitable<bool> SendChunked(Connection& connection, unsigned version, bool close_after,
                                    const HttpResponse& response) {
    std::string pending;
    {
      http::response<http::empty_body> message;
      FillHeader(message, version, response, close_after);
      message.chunked(true);
      std::ostringstream header;
      header << message.base();
      pending = std::move(header).str();
    }
    for (const auto& chunk : response.chunks) {
      if (chunk.delay > std::chrono::milliseconds::zero()) {
        if (!co_await WritePending(connection, pending)) co_return false;
        if (!co_await Sleep(connection, chunk.delay)) co_return false;
      }
      // An empty chunk would be the terminating chunk; it only carries a delay.
      if (chunk.bytes.empty()) continue;
      AppendChunk(chunk.bytes, pending);
    }
    if (response.end == ResponseEnd::kComplete) pending += "0\r\n\r\n";
    co_return co_await WritePending(connection, pending);
  }

  // Writes `pending` (if anything) and empties it; false when the write failed
  // or the server is stopping.
  asio::awaitable<bool> WritePending(Connection& connection, std::string& pending) {
    if (pending.empty()) co_return true;
    error_code ec;
    connection.stream.expires_after(options_.read_timeout);
    co_await asio::async_write(connection.stream, asio::buffer(pending), Await(ec));
    pending.clear();
    co_return !ec && !stopping_;
  }

  // HTTP/1.1 chunk framing: size in hex, CRLF, the bytes, CRLF.
  static void AppendChunk(std::string_view bytes, std::string& out) {
    char size[20];
    const int n = std::snprintf(size, sizeof size, "%zx\r\n", bytes.size());
    out.append(size, static_cast<size_t>(n));
    out.append(bytes);
    out += "\r\n";
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

  // ---- Asynchronous handlers ----------------------------------------------
  //
  // After reading a request the coroutine hands it to the AsyncHttpHandler
  // with a Responder, then waits for the Responder's events on the
  // connection timer: a Responder call posts a cancel() of that timer to the
  // strand (Exchange::WakeLocked), so no thread ever blocks. While it waits,
  // a "watcher" read is pending on the socket so that a client that goes away
  // is noticed at once (the producer sees closed() / Write() == false), not
  // only at the next write; bytes the watcher reads (a pipelined request) stay
  // in the connection buffer for the next request.

  // Clears the exchange's link to the strand when the coroutine lets go of
  // it, also when the frame is destroyed without finishing (Stop()).
  struct ExchangeGuard {
    std::shared_ptr<Exchange> exchange;
    ~ExchangeGuard() {
      std::lock_guard lock(exchange->mutex);
      exchange->closed = true;
      exchange->executor.reset();
    }
  };

  void CallAsyncHandler(HttpServerRequest request, const std::string& what,
                        const std::shared_ptr<Exchange>& exchange) {
    auto responder = std::make_shared<ResponderImpl>(exchange);
    try {
      async_handler_(std::move(request), responder);
      return;
    } catch (const std::exception& e) {
      spdlog::error("http server: handler for {} threw: {}", what, e.what());
    } catch (...) {
      spdlog::error("http server: handler for {} threw a non-standard exception", what);
    }
    // Ignored when the handler had already answered.
    responder->Send(
        ErrorResponse(500, "internal error while handling " + what + "; see the server log"));
  }

  // Serves one request with the async handler. True when the connection
  // stays open for the next request.
  asio::awaitable<bool> ServeAsync(std::shared_ptr<Connection> shared_connection,
                                   HttpServerRequest request, RequestInfo info) {
    Connection& connection = *shared_connection;
    auto exchange = std::make_shared<Exchange>(gate_, options_.max_queued_bytes,
                                               connection.executor, shared_connection);
    ExchangeGuard guard{exchange};
    connection.exchange = exchange;
    HttpServerRequest head;  // what the send path needs once `request` is moved away
    head.method = request.method;
    head.target = request.target;
    const std::string what = head.method + " " + std::string(PathOf(head.target));
    const auto deadline = std::chrono::steady_clock::now() + options_.response_timeout;
    CallAsyncHandler(std::move(request), what, exchange);
    StartWatch(shared_connection);
    const bool keep_open =
        co_await AwaitAnswer(connection, *exchange, head, what, info, deadline);
    connection.exchange.reset();
    if (!keep_open || stopping_) {
      connection.watch_wanted = false;
      co_return false;
    }
    co_await StopWatch(connection);
    co_return !stopping_ && !connection.peer_gone;
  }

  // Waits on the connection timer until `deadline`, a wake-up, or Stop().
  asio::awaitable<void> WaitForEvent(Connection& connection,
                                     std::chrono::steady_clock::time_point deadline) {
    if (stopping_) co_return;
    connection.timer.expires_at(deadline);
    connection.waiting = true;
    error_code ec;
    co_await connection.timer.async_wait(Await(ec));
    connection.waiting = false;
  }

  // Starts a read that notices the client going away while a response is
  // pending. Bounded by the connection buffer: once a pipelined request
  // fills it, the watcher stops and write errors take over.
  void StartWatch(const std::shared_ptr<Connection>& shared_connection) {
    Connection& connection = *shared_connection;
    connection.watch_wanted = true;
    if (connection.watching || connection.peer_gone || stopping_) return;
    if (connection.buffer.size() >= options_.max_header_bytes) return;
    connection.watching = true;
    connection.stream.socket().async_read_some(
        connection.buffer.prepare(kFirstReadSize),
        [this, shared_connection](error_code ec, size_t n) {
          Connection& c = *shared_connection;
          c.watching = false;
          if (!ec) {
            c.buffer.commit(n);
            if (c.watch_wanted) StartWatch(shared_connection);
          } else if (ec != asio::error::operation_aborted) {
            // EOF or reset. (A client that half-closes after its request
            // counts as gone too: HTTP clients do not do that.)
            c.peer_gone = true;
            if (c.exchange) {
              std::lock_guard lock(c.exchange->mutex);
              c.exchange->closed = true;
            }
          }
          if (c.waiting) c.timer.cancel();
        });
  }

  // Ends the watcher read before anything else reads the socket.
  asio::awaitable<void> StopWatch(Connection& connection) {
    connection.watch_wanted = false;
    if (!connection.watching) co_return;
    error_code ignored;
    connection.stream.socket().cancel(ignored);
    while (connection.watching && !stopping_) {
      co_await WaitForEvent(connection, std::chrono::steady_clock::time_point::max());
    }
  }

  static void MarkClosed(Exchange& exchange) {
    std::lock_guard lock(exchange.mutex);
    exchange.closed = true;
  }

  // Plays a complete response (Send, or the server's own 500/504) after the
  // watcher has stopped.
  asio::awaitable<bool> RespondAsync(Connection& connection, const HttpServerRequest& head,
                                     const RequestInfo& info, HttpResponse response) {
    co_await StopWatch(connection);
    if (stopping_) co_return false;
    co_return co_await Respond(connection, head, info.version, info.keep_alive, response);
  }

  asio::awaitable<bool> WriteStreamHeader(Connection& connection, unsigned version,
                                          const HttpResponse& start, bool close_after,
                                          bool chunked) {
    http::response<http::empty_body> message;
    FillHeader(message, version, start, close_after);
    message.chunked(chunked);
    http::response_serializer<http::empty_body> serializer(message);
    connection.stream.expires_after(options_.read_timeout);
    error_code ec;
    co_await http::async_write_header(connection.stream, serializer, Await(ec));
    co_return !ec && !stopping_;
  }

  // Writes queued bytes as one HTTP chunk (or raw, for HTTP/1.0).
  asio::awaitable<bool> WriteStreamBytes(Connection& connection,
                                         const std::vector<std::string>& batch, bool chunked) {
    std::vector<asio::const_buffer> buffers;
    buffers.reserve(batch.size());
    for (const auto& bytes : batch) buffers.emplace_back(bytes.data(), bytes.size());
    connection.stream.expires_after(options_.read_timeout);
    error_code ec;
    if (chunked) {
      co_await asio::async_write(connection.stream, http::make_chunk(buffers), Await(ec));
    } else {
      co_await asio::async_write(connection.stream, buffers, Await(ec));
    }
    co_return !ec && !stopping_;
  }

  // The event loop of one async exchange. True when the connection stays
  // open for the next request.
  asio::awaitable<bool> AwaitAnswer(Connection& connection, Exchange& exchange,
                                    const HttpServerRequest& head, const std::string& what,
                                    const RequestInfo& info,
                                    std::chrono::steady_clock::time_point deadline) {
    enum class Step { kWait, kSend, kBegin, kWrite, kEnd, kCut, kOverflow, kDropped, kTimeout };
    bool streaming = false;
    bool chunked = true;
    bool close_after = false;
    const bool head_only = head.method == "HEAD";
    HttpResponse start;
    std::vector<std::string> batch;
    for (;;) {
      if (stopping_ || connection.peer_gone) co_return false;
      Step step = Step::kWait;
      size_t batch_bytes = 0;
      {
        std::lock_guard lock(exchange.mutex);
        if (!streaming) {
          if (exchange.start) {
            start = std::move(*exchange.start);
            exchange.start.reset();
            step = exchange.answer == Exchange::Answer::kSend ? Step::kSend : Step::kBegin;
          } else if (exchange.dropped) {
            exchange.answer = Exchange::Answer::kAbandoned;
            exchange.closed = true;
            step = Step::kDropped;
          } else if (std::chrono::steady_clock::now() >= deadline) {
            exchange.answer = Exchange::Answer::kAbandoned;
            exchange.closed = true;
            step = Step::kTimeout;
          }
        } else if (exchange.overflow) {
          step = Step::kOverflow;
        } else if (!exchange.queue.empty()) {
          batch.assign(std::make_move_iterator(exchange.queue.begin()),
                       std::make_move_iterator(exchange.queue.end()));
          exchange.queue.clear();
          for (const auto& bytes : batch) batch_bytes += bytes.size();
          step = Step::kWrite;
        } else if (exchange.answer == Exchange::Answer::kEnded) {
          exchange.closed = true;
          step = Step::kEnd;
        } else if (exchange.dropped) {
          exchange.closed = true;
          step = Step::kCut;
        }
      }
      switch (step) {
        case Step::kWait:
          co_await WaitForEvent(connection, streaming ? std::chrono::steady_clock::time_point::max()
                                                      : deadline);
          break;
        case Step::kSend:
          MarkClosed(exchange);
          co_return co_await RespondAsync(connection, head, info, std::move(start));
        case Step::kDropped:
          spdlog::error("http server: the handler for {} dropped its Responder without "
                        "answering; sent 500",
                        what);
          co_return co_await RespondAsync(
              connection, head, info,
              ErrorResponse(500, "internal error: the server dropped the request " + what +
                                     " without answering; see the server log"));
        case Step::kTimeout:
          spdlog::error("http server: no response to {} within {} s; sent 504", what,
                        options_.response_timeout.count());
          co_return co_await RespondAsync(
              connection, head, info,
              ErrorResponse(504, "the server did not start a response to " + what + " within " +
                                     std::to_string(options_.response_timeout.count()) +
                                     " s; retry later, and see the server log if it persists"));
        case Step::kBegin: {
          if (start.status < 100 || start.status > 999) {
            spdlog::error("http server: handler for {} began a stream with invalid status {}",
                          what, start.status);
            {
              std::lock_guard lock(exchange.mutex);
              exchange.answer = Exchange::Answer::kAbandoned;
              exchange.closed = true;
            }
            co_return co_await RespondAsync(
                connection, head, info,
                ErrorResponse(500, "internal error: the handler began a stream with HTTP status " +
                                       std::to_string(start.status)));
          }
          // HTTP/1.0 has no chunked encoding: the body ends when the
          // connection closes.
          chunked = info.version != 10;
          close_after = !info.keep_alive || !chunked;
          for (const auto& [name, value] : start.headers) {
            if (EqualsIgnoreAsciiCase(name, "Connection") && HeaderListHasToken(value, "close")) {
              close_after = true;
            }
          }
          if (!co_await WriteStreamHeader(connection, info.version, start, close_after, chunked)) {
            MarkClosed(exchange);
            co_return false;
          }
          streaming = true;
          break;
        }
        case Step::kWrite: {
          const bool written = head_only || co_await WriteStreamBytes(connection, batch, chunked);
          batch.clear();
          {
            std::lock_guard lock(exchange.mutex);
            exchange.queued_bytes -= batch_bytes;
            if (!written) exchange.closed = true;
          }
          if (!written) co_return false;
          break;
        }
        case Step::kEnd: {
          if (chunked && !head_only) {
            connection.stream.expires_after(options_.read_timeout);
            error_code ec;
            co_await asio::async_write(connection.stream, http::make_chunk_last(), Await(ec));
            if (ec || stopping_) co_return false;
          }
          if (!close_after) co_return true;
          GracefulClose(connection);
          co_return false;
        }
        case Step::kCut:
          // The producer went away mid-stream: end the connection without the
          // terminating chunk so that the client sees a cut-off stream.
          spdlog::warn("http server: the handler for {} dropped its Responder before End(); "
                       "closed the stream without its terminating chunk",
                       what);
          GracefulClose(connection);
          co_return false;
        case Step::kOverflow:
          spdlog::warn("http server: client {} reads {} too slowly (over {} bytes queued); "
                       "closed the connection",
                       connection.remote_address, what, options_.max_queued_bytes);
          connection.stream.close();
          co_return false;
      }
    }
  }

  const HttpServerOptions options_;
  const HttpHandler handler_;              // exactly one of the two is set
  const AsyncHttpHandler async_handler_;
  const std::shared_ptr<Gate> gate_ = std::make_shared<Gate>();

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

namespace {

Result<std::unique_ptr<HttpServer>> StartServer(const HttpServerOptions& options,
                                                HttpHandler handler,
                                                AsyncHttpHandler async_handler) {
  if (!handler && !async_handler) {
    return InvalidArgumentError("HTTP server needs a handler; pass a callable");
  }
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
  if (options.response_timeout.count() <= 0 || options.max_queued_bytes == 0) {
    return InvalidArgumentError(
        "HTTP server response_timeout and max_queued_bytes must be positive; use for example "
        "300 s and 4 MiB");
  }
  try {
    auto server = std::make_unique<HttpServerImpl>(options, std::move(handler),
                                                   std::move(async_handler));
    QUARRY_RETURN_IF_ERROR(server->Listen(address, static_cast<uint16_t>(options.port)));
    server->Run();
    return std::unique_ptr<HttpServer>(std::move(server));
  } catch (const std::exception& e) {
    return UnavailableError("cannot start the HTTP server on " + options.host + ":" +
                            std::to_string(options.port) + ": " + e.what());
  }
}

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                      HttpHandler handler) {
  if (!handler) return InvalidArgumentError("HTTP server needs a handler; pass a callable");
  return StartServer(options, std::move(handler), nullptr);
}

Result<std::unique_ptr<HttpServer>> HttpServer::StartAsync(const HttpServerOptions& options,
                                                           AsyncHttpHandler handler) {
  if (!handler) return InvalidArgumentError("HTTP server needs a handler; pass a callable");
  return StartServer(options, nullptr, std::move(handler));
}

}  // namespace quarry::net
