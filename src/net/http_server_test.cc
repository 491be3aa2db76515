#include "net/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "net/http_client.h"

namespace quarry::net {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace std::chrono_literals;

// Every blocking read in these tests gives up after this long, so that a
// broken server fails a test instead of hanging it.
constexpr int kReadTimeoutMs = 10'000;

// A minimal blocking HTTP/1.1 client over a POSIX socket: enough to send raw
// bytes and to read responses (Content-Length or chunked) piece by piece.
class TestClient {
 public:
  explicit TestClient(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) throw std::runtime_error("socket() failed");
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      ::close(fd_);
      throw std::runtime_error(std::string("connect() failed: ") + std::strerror(errno));
    }
    SetReadTimeout(kReadTimeoutMs);
  }
  ~TestClient() { Close(); }
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;

  int fd() const { return fd_; }
  int last_errno() const { return last_errno_; }
  const std::string& pending() const { return pending_; }

  void SetReadTimeout(int ms) {
    timeval tv{};
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }

  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool Send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads more bytes into pending(). False on EOF (last_errno() == 0), error
  // or timeout (last_errno() says which).
  bool Fill() {
    char buffer[16384];
    const ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
    if (n > 0) {
      pending_.append(buffer, static_cast<size_t>(n));
      return true;
    }
    last_errno_ = n == 0 ? 0 : errno;
    return false;
  }

  // Reads until EOF or an error; true when it was a clean EOF.
  bool ReadToEof() {
    while (Fill()) {
    }
    return last_errno_ == 0;
  }

  std::optional<std::string> ReadUntil(std::string_view delimiter) {
    for (;;) {
      const size_t at = pending_.find(delimiter);
      if (at != std::string::npos) {
        std::string out = pending_.substr(0, at + delimiter.size());
        pending_.erase(0, at + delimiter.size());
        return out;
      }
      if (!Fill()) return std::nullopt;
    }
  }

  std::optional<std::string> ReadExactly(size_t n) {
    while (pending_.size() < n) {
      if (!Fill()) return std::nullopt;
    }
    std::string out = pending_.substr(0, n);
    pending_.erase(0, n);
    return out;
  }

  struct Head {
    int status = 0;
    HeaderFields headers;
    const std::string* Find(std::string_view name) const {
      for (const auto& [n, v] : headers) {
        if (strcasecmp(n.c_str(), std::string(name).c_str()) == 0) return &v;
      }
      return nullptr;
    }
    bool chunked() const {
      const std::string* te = Find("Transfer-Encoding");
      return te != nullptr && *te == "chunked";
    }
  };

  std::optional<Head> ReadHead() {
    std::optional<std::string> text = ReadUntil("\r\n\r\n");
    if (!text) return std::nullopt;
    Head head;
    size_t line_end = text->find("\r\n");
    const std::string status_line = text->substr(0, line_end);
    if (status_line.size() < 12 || status_line.compare(0, 5, "HTTP/") != 0) return std::nullopt;
    head.status = std::stoi(status_line.substr(9, 3));
    size_t pos = line_end + 2;
    while (pos < text->size()) {
      const size_t end = text->find("\r\n", pos);
      if (end == pos) break;
      const std::string line = text->substr(pos, end - pos);
      const size_t colon = line.find(':');
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      head.headers.emplace_back(line.substr(0, colon), value);
      pos = end + 2;
    }
    return head;
  }

  // One chunk of a chunked body: its bytes, "" for the terminating chunk,
  // nullopt when the connection ended first.
  std::optional<std::string> ReadChunk() {
    std::optional<std::string> size_line = ReadUntil("\r\n");
    if (!size_line) return std::nullopt;
    const size_t size = std::stoul(*size_line, nullptr, 16);
    std::optional<std::string> data = ReadExactly(size + 2);
    if (!data) return std::nullopt;
    return data->substr(0, size);
  }

  struct Response {
    Head head;
    std::string body;
  };

  // A whole response; the body decoded from Content-Length or chunks.
  std::optional<Response> ReadResponse() {
    std::optional<Head> head = ReadHead();
    if (!head) return std::nullopt;
    Response response{*head, ""};
    if (head->chunked()) {
      for (;;) {
        std::optional<std::string> chunk = ReadChunk();
        if (!chunk) return std::nullopt;
        if (chunk->empty()) break;
        response.body += *chunk;
      }
    } else if (const std::string* length = head->Find("Content-Length")) {
      std::optional<std::string> body = ReadExactly(std::stoul(*length));
      if (!body) return std::nullopt;
      response.body = *body;
    }
    return response;
  }

  // True when no byte arrives within `ms` (the connection stays open).
  bool NothingArrivesWithin(int ms) {
    if (!pending_.empty()) return false;
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, ms) == 0;
  }

 private:
  int fd_ = -1;
  int last_errno_ = 0;
  std::string pending_;
};

std::string Get(std::string_view target, std::string_view extra_headers = "") {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra_headers) +
         "\r\n";
}

std::string Post(std::string_view target, std::string_view body,
                 std::string_view extra_headers = "") {
  return "POST " + std::string(target) + " HTTP/1.1\r\nHost: test\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + std::string(extra_headers) + "\r\n" +
         std::string(body);
}

HttpResponse TextResponse(std::string body, int status = 200) {
  HttpResponse response;
  response.status = status;
  response.headers = {{"Content-Type", "text/plain"}};
  response.body = std::move(body);
  return response;
}

std::unique_ptr<HttpServer> StartOrDie(HttpHandler handler, HttpServerOptions options = {}) {
  Result<std::unique_ptr<HttpServer>> server = HttpServer::Start(options, std::move(handler));
  if (!server.ok()) throw std::runtime_error(server.status().ToString());
  return std::move(server).value();
}

// Polls `predicate` for up to 10 s; no upper-bound timing is asserted.
template <typename Predicate>
bool Eventually(Predicate predicate) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return predicate();
}

// Records the last request the handler saw.
struct Recorder {
  std::mutex mutex;
  std::optional<HttpServerRequest> last;
  HttpHandler Handler(HttpResponse response) {
    return [this, response](const HttpServerRequest& request) {
      std::lock_guard lock(mutex);
      last = request;
      return response;
    };
  }
};

TEST(HttpServerTest, GetRoundTripPreservesRawTargetAndHeadersInOrder) {
  Recorder recorder;
  HttpResponse reply = TextResponse("hello");
  reply.headers.emplace_back("X-Reply", "yes");
  auto server = StartOrDie(recorder.Handler(reply));
  EXPECT_EQ(server->base_url(), "http://127.0.0.1:" + std::to_string(server->port()));

  TestClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/model/a%3A0/invoke?x=1&x=2", "X-Custom-Header: One\r\nx-lower: two\r\n")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->head.status, 200);
  EXPECT_EQ(response->body, "hello");
  ASSERT_NE(response->head.Find("X-Reply"), nullptr);
  EXPECT_EQ(*response->head.Find("Content-Length"), "5");

  std::lock_guard lock(recorder.mutex);
  ASSERT_TRUE(recorder.last);
  EXPECT_EQ(recorder.last->method, "GET");
  EXPECT_EQ(recorder.last->target, "/model/a%3A0/invoke?x=1&x=2");
  const HeaderFields expected = {{"Host", "test"}, {"X-Custom-Header", "One"}, {"x-lower", "two"}};
  EXPECT_EQ(recorder.last->headers, expected);
  EXPECT_THAT(recorder.last->remote_address, StartsWith("127.0.0.1:"));
  ASSERT_NE(recorder.last->FindHeader("X-LOWER"), nullptr);
  EXPECT_EQ(*recorder.last->FindHeader("x-custom-header"), "One");
  EXPECT_EQ(recorder.last->FindHeader("Missing"), nullptr);
}

TEST(HttpServerTest, PostRoundTripDeliversTheBody) {
  auto server = StartOrDie([](const HttpServerRequest& request) {
    return TextResponse(request.method + ":" + request.body, 201);
  });
  TestClient client(server->port());
  ASSERT_TRUE(client.Send(Post("/jobs", R"({"a":1})", "Content-Type: application/json\r\n")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->head.status, 201);
  EXPECT_EQ(response->body, R"(POST:{"a":1})");
}

TEST(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnectionIncludingPipelined) {
  std::atomic<int> calls{0};
  auto server = StartOrDie([&](const HttpServerRequest& request) {
    ++calls;
    return TextResponse(request.target);
  });
  TestClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/one")));
  auto first = client.ReadResponse();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->body, "/one");
  EXPECT_EQ(first->head.Find("Connection"), nullptr);
  EXPECT_EQ(server->open_connections(), 1u);

  ASSERT_TRUE(client.Send(Get("/two") + Get("/three")));  // pipelined
  auto second = client.ReadResponse();
  auto third = client.ReadResponse();
  ASSERT_TRUE(second && third);
  EXPECT_EQ(second->body, "/two");
  EXPECT_EQ(third->body, "/three");
  EXPECT_EQ(calls.load(), 3);
}

TEST(HttpServerTest, ConnectionCloseRequestGetsConnectionCloseAndEof) {
  auto server = StartOrDie([](const HttpServerRequest&) { return TextResponse("bye"); });
  TestClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/", "Connection: close\r\n")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  ASSERT_NE(response->head.Find("Connection"), nullptr);
  EXPECT_EQ(*response->head.Find("Connection"), "close");
  EXPECT_TRUE(client.ReadToEof());
}

TEST(HttpServerTest, BodyAtTheLimitIsAcceptedAndOneByteMoreGets413) {
  HttpServerOptions options;
  options.max_body_bytes = 64 * 1024;
  auto server = StartOrDie(
      [](const HttpServerRequest& request) { return TextResponse(std::to_string(request.body.size())); },
      options);
  {
    TestClient client(server->port());
    ASSERT_TRUE(client.Send(Post("/", std::string(64 * 1024, 'a'))));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->head.status, 200);
    EXPECT_EQ(response->body, "65536");
  }
  {
    TestClient client(server->port());
    ASSERT_TRUE(client.Send(Post("/", std::string(64 * 1024 + 1, 'a'))));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->head.status, 413);
    EXPECT_EQ(*response->head.Find("Content-Type"), "application/json");
    EXPECT_THAT(response->body, HasSubstr(R"({"message":")"));
    EXPECT_THAT(response->body, HasSubstr("65536"));
    EXPECT_EQ(*response->head.Find("Connection"), "close");
    EXPECT_TRUE(client.ReadToEof());
  }
}

TEST(HttpServerTest, ChunkedRequestBodyOverTheLimitGets413) {
  HttpServerOptions options;
  options.max_body_bytes = 10;
  auto server = StartOrDie([](const HttpServerRequest&) { return TextResponse("no"); }, options);
  TestClient client(server->port());
  ASSERT_TRUE(client.Send(
      "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->head.status, 413);
}

TEST(HttpServerTest, ExpectContinueGets100ThenTheResponse) {
  auto server = StartOrDie(
      [](const HttpServerRequest& request) { return TextResponse(std::to_string(request.body.size())); });
  TestClient client(server->port());
  ASSERT_TRUE(client.Send(
      "POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  auto interim = client.ReadHead();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(client.Send("12345"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->head.status, 200);
  EXPECT_EQ(response->body, "5");
}

TEST(HttpServerTest, ExpectContinueOverTheLimitGets413WithoutWaitingForTheBody) {
  HttpServerOptions options;
  options.max_body_bytes = 100;
  auto server = StartOrDie([](const HttpServerRequest&) { return TextResponse("no"); }, options);
  TestClient client(server->port());
  ASSERT_TRUE(client.Send(
      "POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->head.status, 413);
}

TEST(HttpServerTest, OversizedHeadersGet431) {
  HttpServerOptions options;
  options.max_header_bytes = 1024;
  auto server = StartOrDie([](const HttpServerRequest&) { return TextResponse("no"); }, options);
  TestClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/", "X-Big: " + std::string(4096, 'b') + "\r\n")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->head.status, 431);
  EXPECT_THAT(response->body, HasSubstr("1024"));
}

TEST(HttpServerTest, MalformedRequestGets400AndTheConnectionCloses) {
  std::atomic<int> calls{0};
  auto server = StartOrDie([&](const HttpServerRequest&) {
    ++calls;
    return TextResponse("no");
  });
  TestClient client(server->port());
  ASSERT_TRUE(client.Send("GET / HTTP/1.1\r\nHost: t\r\nthis is not a header\r\n\r\n"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->head.status, 400);
  EXPECT_THAT(response->body, HasSubstr("message"));
  EXPECT_TRUE(client.ReadToEof());
  EXPECT_EQ(calls.load(), 0);
}

TEST(HttpServerTest, DelayIsHonouredBeforeTheStatusLine) {
  HttpResponse reply = TextResponse("late");
  reply.delay = 150ms;
  auto server = StartOrDie([&](const HttpServerRequest&) { return reply; });
  TestClient client(server->port());
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(client.Send(Get("/")));
  auto response = client.ReadResponse();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "late");
  EXPECT_GE(elapsed, 150ms);  // a lower bound only
}

HttpResponse ChunkedReply(std::vector<HttpResponse::Chunk> chunks, ResponseEnd end) {
  HttpResponse reply;
  reply.headers = {{"Content-Type", "text/event-stream"}};
  reply.chunked = true;
  reply.chunks = std::move(chunks);
  reply.end = end;
  return reply;
}

TEST(HttpServerTest, ChunkedStreamDeliversEachChunkAsItIsSent) {
  // What is due at the same moment goes out in one write, each piece still
  // its own HTTP chunk (300 bytes: size "12c" in hex).
  const std::string third(300, 'x');
  const HttpResponse reply = ChunkedReply(
      {{0ms, "first"}, {1000ms, "second"}, {0ms, ""}, {0ms, third}}, ResponseEnd::kComplete);
  auto server = StartOrDie([&](const HttpServerRequest&) { return reply; });
  TestClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/stream")));
  auto head = client.ReadHead();
  ASSERT_TRUE(head);
  EXPECT_TRUE(head->chunked());
  EXPECT_EQ(head->Find("Content-Length"), nullptr);
  EXPECT_EQ(client.ReadChunk(), "first");
  // The second chunk is a full second away: nothing more is on the wire yet.
  EXPECT_TRUE(client.NothingArrivesWithin(0));
  EXPECT_EQ(client.ReadChunk(), "second");
  EXPECT_EQ(client.ReadChunk(), third);
  EXPECT_EQ(client.ReadChunk(), "");  // terminating chunk
  EXPECT_EQ(client.pending(), "");

  // Keep-alive continues after a complete stream.
  ASSERT_TRUE(client.Send(Get("/stream")));
  auto again = client.ReadResponse();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->body, "firstsecond" + third);
}

TEST(HttpServerTest, CloseConnectionEndCutsTheStreamWithoutTheTerminatingChunk) {
  const HttpResponse reply =
      ChunkedReply({{0ms, "a"}, {10ms, "b"}}, ResponseEnd::kCloseConnection);
  auto server = StartOrDie([&](const HttpServerRequest&) { return reply; });
  TestClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/")));
  auto head = client.ReadHead();
  ASSERT_TRUE(head);
  EXPECT_EQ(*head->Find("Connection"), "close");
  EXPECT_EQ(client.ReadChunk(), "a");
  EXPECT_EQ(client.ReadChunk(), "b");
  EXPECT_TRUE(client.ReadToEof());
  EXPECT_EQ(client.pending(), "");  // no "0\r\n\r\n"
}

TEST(HttpServerTest, ResetConnectionEndResetsTheConnectionAfterTheChunks) {
  const HttpResponse reply = ChunkedReply({{0ms, "a"}}, ResponseEnd::kResetConnection);
  auto server = StartOrDie([&](const HttpServerRequest&) { return reply; });
  TestClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/")));
  ASSERT_TRUE(client.ReadHead());
  EXPECT_EQ(client.ReadChunk(), "a");
  EXPECT_FALSE(client.ReadToEof());
  EXPECT_EQ(client.last_errno(), ECONNRESET);
}

TEST(HttpServerTest, StallForeverEndSendsNothingMoreAndStopStillReturns) {
  const HttpResponse reply = ChunkedReply({{0ms, "a"}}, ResponseEnd::kStallForever);
  auto server = StartOrDie([&](const HttpServerRequest&) { return reply; });
  TestClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/")));
  ASSERT_TRUE(client.ReadHead());
  EXPECT_EQ(client.ReadChunk(), "a");
  EXPECT_TRUE(client.NothingArrivesWithin(200));
  EXPECT_EQ(server->open_connections(), 1u);
  server->Stop();
  EXPECT_EQ(server->open_connections(), 0u);
  client.ReadToEof();  // the server closed it: EOF or reset, but not a timeout
  EXPECT_NE(client.last_errno(), EAGAIN);
}

TEST(HttpServerTest, StartResetConnectionResetsWithoutAResponse) {
  HttpResponse reply;
  reply.start = ResponseStart::kResetConnection;
  auto server = StartOrDie([&](const HttpServerRequest&) { return reply; });
  TestClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/")));
  EXPECT_FALSE(client.ReadToEof());
  EXPECT_EQ(client.last_errno(), ECONNRESET);
  EXPECT_EQ(client.pending(), "");
}

TEST(HttpServerTest, StartStallForeverHoldsTheConnectionUntilTheClientCloses) {
  HttpResponse reply;
  reply.start = ResponseStart::kStallForever;
  auto server = StartOrDie([&](const HttpServerRequest&) { return reply; });
  {
    TestClient client(server->port());
    ASSERT_TRUE(client.Send(Get("/")));
    EXPECT_TRUE(client.NothingArrivesWithin(200));
    EXPECT_EQ(server->open_connections(), 1u);
  }
  EXPECT_TRUE(Eventually([&] { return server->open_connections() == 0; }));
}

TEST(HttpServerTest, StopClosesDelayedAndStalledConnectionsOnTwoThreads) {
  HttpResponse delayed = TextResponse("never");
  delayed.delay = std::chrono::hours(1);
  HttpResponse stalled;
  stalled.start = ResponseStart::kStallForever;
  HttpServerOptions options;
  options.threads = 2;
  auto server = StartOrDie(
      [&](const HttpServerRequest& request) {
        return request.target == "/delay" ? delayed : stalled;
      },
      options);
  TestClient a(server->port());
  TestClient b(server->port());
  TestClient idle(server->port());
  ASSERT_TRUE(a.Send(Get("/delay")));
  ASSERT_TRUE(b.Send(Get("/stall")));
  EXPECT_TRUE(Eventually([&] { return server->open_connections() == 3; }));
  server->Stop();
  EXPECT_EQ(server->open_connections(), 0u);
  for (TestClient* client : {&a, &b, &idle}) {
    client->ReadToEof();
    EXPECT_NE(client->last_errno(), EAGAIN);
    EXPECT_EQ(client->pending(), "");
  }
}

TEST(HttpServerTest, ClientDisconnectMidStreamEndsTheConnectionQuietly) {
  std::vector<HttpResponse::Chunk> chunks;
  for (int i = 0; i < 100; ++i) chunks.push_back({5ms, std::string(1000, 'x')});
  const HttpResponse reply = ChunkedReply(chunks, ResponseEnd::kComplete);
  auto server = StartOrDie([&](const HttpServerRequest& request) {
    return request.target == "/stream" ? reply : TextResponse("ok");
  });
  {
    TestClient client(server->port());
    ASSERT_TRUE(client.Send(Get("/stream")));
    ASSERT_TRUE(client.ReadHead());
    ASSERT_TRUE(client.ReadChunk());
  }
  EXPECT_TRUE(Eventually([&] { return server->open_connections() == 0; }));
  TestClient next(server->port());
  ASSERT_TRUE(next.Send(Get("/")));
  auto response = next.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "ok");
}

TEST(HttpServerTest, HandlerExceptionBecomes500WithAJsonMessage) {
  auto server = StartOrDie([](const HttpServerRequest&) -> HttpResponse {
    throw std::runtime_error("boom");
  });
  TestClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/explode")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->head.status, 500);
  EXPECT_EQ(*response->head.Find("Content-Type"), "application/json");
  EXPECT_THAT(response->body, HasSubstr(R"({"message":")"));
  // The connection is still usable.
  ASSERT_TRUE(client.Send(Get("/explode")));
  auto again = client.ReadResponse();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->head.status, 500);
}

TEST(HttpServerTest, IdleKeepAliveConnectionIsClosedAfterTheIdleTimeout) {
  HttpServerOptions options;
  options.idle_timeout = 1s;
  auto server = StartOrDie([](const HttpServerRequest&) { return TextResponse("ok"); }, options);
  TestClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/")));
  ASSERT_TRUE(client.ReadResponse());
  EXPECT_TRUE(client.ReadToEof());  // within kReadTimeoutMs, not a timeout
}

TEST(HttpServerTest, RequestThatStopsArrivingIsDroppedAfterTheReadTimeout) {
  HttpServerOptions options;
  options.read_timeout = 1s;
  std::atomic<int> calls{0};
  auto server = StartOrDie(
      [&](const HttpServerRequest&) {
        ++calls;
        return TextResponse("ok");
      },
      options);
  TestClient client(server->port());
  ASSERT_TRUE(client.Send("GET / HTTP/1.1\r\nHost: t\r\n"));  // the header never ends
  client.ReadToEof();
  EXPECT_NE(client.last_errno(), EAGAIN);  // the server closed it; the client did not time out
  EXPECT_EQ(calls.load(), 0);
}

TEST(HttpServerTest, StopIsIdempotent) {
  auto server = StartOrDie([](const HttpServerRequest&) { return TextResponse("ok"); });
  const int port = server->port();
  server->Stop();
  server->Stop();
  server.reset();  // the destructor stops again
  // The port is free again.
  HttpServerOptions options;
  options.port = port;
  auto again = HttpServer::Start(options, [](const HttpServerRequest&) { return TextResponse("ok"); });
  EXPECT_TRUE(again.ok()) << again.status().ToString();
}

void RunConcurrentClients(HttpServer& server, int clients) {
  std::vector<std::unique_ptr<TestClient>> connections;
  for (int i = 0; i < clients; ++i) {
    connections.push_back(std::make_unique<TestClient>(server.port()));
  }
  for (int i = 0; i < clients; ++i) {
    ASSERT_TRUE(connections[static_cast<size_t>(i)]->Send(Get("/" + std::to_string(i))));
  }
  for (int i = 0; i < clients; ++i) {
    auto response = connections[static_cast<size_t>(i)]->ReadResponse();
    ASSERT_TRUE(response) << "client " << i;
    EXPECT_EQ(response->body, "/" + std::to_string(i));
  }
  EXPECT_EQ(server.open_connections(), static_cast<size_t>(clients));
}

TEST(HttpServerTest, TwoHundredConcurrentConnectionsEachGetTheirResponse) {
  auto server = StartOrDie([](const HttpServerRequest& request) {
    HttpResponse reply = TextResponse(request.target);
    reply.delay = 50ms;  // so that the requests overlap
    return reply;
  });
  RunConcurrentClients(*server, 200);
}

TEST(HttpServerTest, TwoIoThreadsServeConcurrentConnections) {
  HttpServerOptions options;
  options.threads = 2;
  auto server = StartOrDie(
      [](const HttpServerRequest& request) {
        HttpResponse reply = TextResponse(request.target);
        reply.delay = 10ms;
        return reply;
      },
      options);
  RunConcurrentClients(*server, 50);
}

TEST(HttpServerTest, HostNameIsRejectedAsInvalidArgument) {
  HttpServerOptions options;
  options.host = "localhost";
  auto server = HttpServer::Start(options, [](const HttpServerRequest&) { return HttpResponse{}; });
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(server.status().message(), HasSubstr("localhost"));
}

TEST(HttpServerTest, PortAlreadyInUseIsUnavailableAndNamesTheAddress) {
  auto first = StartOrDie([](const HttpServerRequest&) { return HttpResponse{}; });
  HttpServerOptions options;
  options.port = first->port();
  auto second = HttpServer::Start(options, [](const HttpServerRequest&) { return HttpResponse{}; });
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("127.0.0.1:" + std::to_string(first->port())));
  EXPECT_THAT(second.status().message(), HasSubstr("in use"));
}


// ---- Asynchronous handlers ------------------------------------------------

// A small thread pool standing in for the application's worker threads.
// Declare it before the server in a test: it is then destroyed after the
// server, so tasks still running exercise Responders of a dead server.
class Workers {
 public:
  explicit Workers(int threads) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this] {
        for (;;) {
          std::function<void()> task;
          {
            std::unique_lock lock(mutex_);
            ready_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
            if (tasks_.empty()) return;
            task = std::move(tasks_.front());
            tasks_.pop_front();
          }
          task();
        }
      });
    }
  }
  ~Workers() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    ready_.notify_all();
    for (auto& thread : threads_) thread.join();
  }
  void Run(std::function<void()> task) {
    {
      std::lock_guard lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    ready_.notify_one();
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

std::unique_ptr<HttpServer> StartAsyncOrDie(AsyncHttpHandler handler,
                                            HttpServerOptions options = {}) {
  Result<std::unique_ptr<HttpServer>> server =
      HttpServer::StartAsync(options, std::move(handler));
  if (!server.ok()) throw std::runtime_error(server.status().ToString());
  return std::move(server).value();
}

// Keeps the Responders a handler did not answer, for the test to use.
struct Parked {
  std::mutex mutex;
  std::vector<std::shared_ptr<Responder>> responders;
  AsyncHttpHandler Handler() {
    return [this](HttpServerRequest, std::shared_ptr<Responder> responder) {
      std::lock_guard lock(mutex);
      responders.push_back(std::move(responder));
    };
  }
  size_t size() {
    std::lock_guard lock(mutex);
    return responders.size();
  }
  std::shared_ptr<Responder> at(size_t i) {
    std::lock_guard lock(mutex);
    return responders.at(i);
  }
};

TEST(HttpServerAsyncTest, AnswerLaterFromAnotherThreadPlaysTheWholeScript) {
  Workers workers(1);
  auto server = StartAsyncOrDie([&](HttpServerRequest request, std::shared_ptr<Responder> r) {
    workers.Run([request = std::move(request), r] {
      std::this_thread::sleep_for(50ms);
      HttpResponse reply =
          ChunkedReply({{0ms, request.method + " "}, {20ms, request.body}}, ResponseEnd::kComplete);
      reply.delay = 10ms;
      r->Send(std::move(reply));
      EXPECT_FALSE(r->Write("late"));  // not a stream
    });
  });
  TestClient client(server->port());
  ASSERT_TRUE(client.Send(Post("/jobs", "payload")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->head.status, 200);
  EXPECT_TRUE(response->head.chunked());
  EXPECT_EQ(response->body, "POST payload");
}

TEST(HttpServerAsyncTest, PipelinedRequestsAreAnsweredInOrderWhileTheFirstWaits) {
  Workers workers(1);
  auto server = StartAsyncOrDie([&](HttpServerRequest request, std::shared_ptr<Responder> r) {
    workers.Run([target = request.target, r] {
      std::this_thread::sleep_for(30ms);
      r->Send(TextResponse(target));
    });
  });
  TestClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/one") + Get("/two")));
  auto first = client.ReadResponse();
  auto second = client.ReadResponse();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->body, "/one");
  EXPECT_EQ(second->body, "/two");
}

TEST(HttpServerAsyncTest, HundredChunksStreamedFromAnotherThreadReachARealClient) {
  Workers workers(1);
  std::string expected;
  for (int i = 0; i < 100; ++i) expected += "data: " + std::to_string(i) + "\n\n";
  auto server = StartAsyncOrDie([&](HttpServerRequest, std::shared_ptr<Responder> r) {
    r->BeginStream(200, {{"Content-Type", "text/event-stream"}, {"Content-Length", "1"}});
    workers.Run([r] {
      for (int i = 0; i < 100; ++i) {
        ASSERT_TRUE(r->Write("data: " + std::to_string(i) + "\n\n"));
        if (i % 10 == 0) std::this_thread::sleep_for(1ms);
      }
      r->End();
      EXPECT_TRUE(r->closed());  // the exchange is over
    });
  });

  auto client = HttpClient::Create();
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  std::string received;  // touched only on the client's loop thread
  std::promise<HttpClientResponse> done;
  HttpClientRequest request;
  request.url = server->base_url() + "/events";
  request.request_timeout = 10s;
  HttpCallbacks callbacks;
  callbacks.on_data = [&](std::string_view bytes) {
    received.append(bytes);
    return true;
  };
  callbacks.on_complete = [&](HttpClientResponse response) { done.set_value(std::move(response)); };
  ASSERT_TRUE((*client)->Start(std::move(request), std::move(callbacks)).ok());
  std::future<HttpClientResponse> future = done.get_future();
  ASSERT_EQ(future.wait_for(15s), std::future_status::ready);
  const HttpClientResponse response = future.get();
  EXPECT_EQ(response.outcome, TransportOutcome::kOk) << response.error;
  EXPECT_EQ(response.status, 200);
  ASSERT_NE(response.FindHeader("Transfer-Encoding"), nullptr);
  EXPECT_EQ(*response.FindHeader("Transfer-Encoding"), "chunked");
  EXPECT_EQ(response.FindHeader("Content-Length"), nullptr);
  EXPECT_EQ(received, expected);
}

TEST(HttpServerAsyncTest, ClientDisconnectMidStreamIsSeenWithoutWriting) {
  Parked parked;
  auto server = StartAsyncOrDie([&](HttpServerRequest request, std::shared_ptr<Responder> r) {
    r->BeginStream(200, {{"Content-Type", "text/event-stream"}});
    EXPECT_TRUE(r->Write("hello"));
    parked.Handler()(std::move(request), std::move(r));
  });
  {
    TestClient client(server->port());
    ASSERT_TRUE(client.Send(Get("/chat")));
    ASSERT_TRUE(client.ReadHead());
    EXPECT_EQ(client.ReadChunk(), "hello");
    ASSERT_EQ(parked.size(), 1u);
    EXPECT_FALSE(parked.at(0)->closed());
  }
  std::shared_ptr<Responder> r = parked.at(0);
  // A producer waiting on Bedrock learns it without writing...
  EXPECT_TRUE(Eventually([&] { return r->closed(); }));
  // ...and one that writes is told to stop.
  EXPECT_FALSE(r->Write("more"));
  EXPECT_TRUE(Eventually([&] { return server->open_connections() == 0; }));
}

TEST(HttpServerAsyncTest, SlowReaderOverTheQueueLimitIsClosed) {
  HttpServerOptions options;
  options.max_queued_bytes = 64 * 1024;
  Parked parked;
  auto server = StartAsyncOrDie(parked.Handler(), options);
  TestClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/stream")));
  ASSERT_TRUE(Eventually([&] { return parked.size() == 1; }));
  std::shared_ptr<Responder> r = parked.at(0);
  r->BeginStream(200, {});
  // The client reads nothing: socket buffers fill, then the queue. Bounded:
  // at most 256 MiB are offered.
  const std::string piece(16 * 1024, 'x');
  bool refused = false;
  for (int i = 0; i < 16 * 1024 && !refused; ++i) refused = !r->Write(piece);
  EXPECT_TRUE(refused);
  EXPECT_TRUE(r->closed());
  EXPECT_FALSE(r->Write("x"));
  EXPECT_TRUE(Eventually([&] { return server->open_connections() == 0; }));
  r->End();  // ignored, harmless
}

TEST(HttpServerAsyncTest, ConnectionIsReusedAfterEnd) {
  Workers workers(1);
  std::atomic<int> calls{0};
  auto server = StartAsyncOrDie([&](HttpServerRequest request, std::shared_ptr<Responder> r) {
    ++calls;
    r->BeginStream(201, {{"X-Target", request.target}});
    workers.Run([r, target = request.target] {
      EXPECT_TRUE(r->Write("a"));
      EXPECT_TRUE(r->Write(""));  // no terminating chunk by accident
      EXPECT_TRUE(r->Write(target));
      r->End();
      EXPECT_FALSE(r->Write("after end"));
    });
  });
  TestClient client(server->port());
  for (const std::string target : {"/first", "/second"}) {
    ASSERT_TRUE(client.Send(Get(target)));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->head.status, 201);
    EXPECT_TRUE(response->head.chunked());
    EXPECT_EQ(*response->head.Find("X-Target"), target);
    EXPECT_EQ(response->body, "a" + target);
  }
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(server->open_connections(), 1u);
}

TEST(HttpServerAsyncTest, StreamToAnHttp10ClientIsUnchunkedAndEndsWithClose) {
  auto server = StartAsyncOrDie([](HttpServerRequest, std::shared_ptr<Responder> r) {
    r->BeginStream(200, {{"Content-Type", "text/plain"}});
    r->Write("ab");
    r->Write("cd");
    r->End();
  });
  TestClient client(server->port());
  ASSERT_TRUE(client.Send("GET / HTTP/1.0\r\n\r\n"));
  auto head = client.ReadHead();
  ASSERT_TRUE(head);
  EXPECT_FALSE(head->chunked());
  EXPECT_TRUE(client.ReadToEof());
  EXPECT_EQ(client.pending(), "abcd");
}

TEST(HttpServerAsyncTest, ResponderDroppedMidStreamCutsTheStream) {
  auto server = StartAsyncOrDie([](HttpServerRequest, std::shared_ptr<Responder> r) {
    r->BeginStream(200, {});
    r->Write("partial");
  });
  TestClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/")));
  ASSERT_TRUE(client.ReadHead());
  EXPECT_EQ(client.ReadChunk(), "partial");
  EXPECT_TRUE(client.ReadToEof());
  EXPECT_EQ(client.pending(), "");  // no terminating chunk
}

TEST(HttpServerAsyncTest, DroppedResponderGets500AndTheConnectionStaysUsable) {
  auto server = StartAsyncOrDie([](HttpServerRequest, std::shared_ptr<Responder>) {});
  TestClient client(server->port());
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(client.Send(Get("/forgotten")));
    auto response = client.ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->head.status, 500);
    EXPECT_EQ(*response->head.Find("Content-Type"), "application/json");
    EXPECT_THAT(response->body, HasSubstr(R"({"message":")"));
    EXPECT_THAT(response->body, HasSubstr("/forgotten"));
  }
}

TEST(HttpServerAsyncTest, HandlerExceptionGets500) {
  auto server = StartAsyncOrDie([](HttpServerRequest, std::shared_ptr<Responder>) {
    throw std::runtime_error("boom");
  });
  TestClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/explode")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->head.status, 500);
}

TEST(HttpServerAsyncTest, ResponseThatNeverStartsGets504AfterTheResponseTimeout) {
  HttpServerOptions options;
  options.response_timeout = 1s;
  Parked parked;
  auto server = StartAsyncOrDie(parked.Handler(), options);
  TestClient client(server->port());
  ASSERT_TRUE(client.Send(Get("/slow")));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->head.status, 504);
  EXPECT_EQ(*response->head.Find("Content-Type"), "application/json");
  EXPECT_THAT(response->body, HasSubstr("/slow"));
  ASSERT_EQ(parked.size(), 1u);
  std::shared_ptr<Responder> r = parked.at(0);
  EXPECT_TRUE(r->closed());
  r->Send(TextResponse("too late"));  // ignored
  // The connection serves the next request; the late answer did not leak in.
  ASSERT_TRUE(client.Send(Get("/next")));
  auto next = client.ReadResponse();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->head.status, 504);
  EXPECT_THAT(next->body, HasSubstr("/next"));
}

TEST(HttpServerAsyncTest, StopEndsConnectionsWaitingOnRespondersWhichThenDoNothing) {
  HttpServerOptions options;
  options.threads = 2;
  Parked parked;
  auto server = StartAsyncOrDie(parked.Handler(), options);
  TestClient waiting(server->port());
  TestClient streaming(server->port());
  ASSERT_TRUE(waiting.Send(Get("/wait")));
  ASSERT_TRUE(Eventually([&] { return parked.size() == 1; }));
  ASSERT_TRUE(streaming.Send(Get("/stream")));
  ASSERT_TRUE(Eventually([&] { return parked.size() == 2; }));
  std::shared_ptr<Responder> pending = parked.at(0);
  std::shared_ptr<Responder> stream = parked.at(1);
  stream->BeginStream(200, {});
  ASSERT_TRUE(stream->Write("x"));
  ASSERT_TRUE(streaming.ReadHead());
  EXPECT_EQ(streaming.ReadChunk(), "x");

  server->Stop();
  EXPECT_EQ(server->open_connections(), 0u);
  for (TestClient* client : {&waiting, &streaming}) {
    client->ReadToEof();
    EXPECT_NE(client->last_errno(), EAGAIN);
  }
  EXPECT_TRUE(pending->closed());
  EXPECT_TRUE(stream->closed());
  EXPECT_FALSE(stream->Write("y"));
  server.reset();
  // After the server is gone every call is a no-op.
  pending->Send(TextResponse("nobody"));
  pending->BeginStream(200, {});
  EXPECT_FALSE(pending->Write("z"));
  stream->End();
  EXPECT_TRUE(pending->closed());
  parked.responders.clear();
}

TEST(HttpServerAsyncTest, TwoHundredConcurrentRequestsAnsweredFromAThreadPool) {
  Workers workers(4);
  HttpServerOptions options;
  options.threads = 2;
  auto server = StartAsyncOrDie(
      [&](HttpServerRequest request, std::shared_ptr<Responder> r) {
        workers.Run([target = std::move(request.target), r] {
          std::this_thread::sleep_for(1ms);
          if (target.back() % 2 == 0) {
            r->Send(TextResponse(target));
          } else {
            r->BeginStream(200, {});
            r->Write(target.substr(0, 2));
            r->Write(target.substr(2));
            r->End();
          }
        });
      },
      options);
  RunConcurrentClients(*server, 200);
}

TEST(HttpServerAsyncTest, InvalidOptionsAreRejected) {
  HttpServerOptions options;
  options.max_queued_bytes = 0;
  auto server = HttpServer::StartAsync(options, [](HttpServerRequest, std::shared_ptr<Responder>) {});
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(HttpServer::StartAsync({}, nullptr).ok());
}

}  // namespace
}  // namespace quarry::net
