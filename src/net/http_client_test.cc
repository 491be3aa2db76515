#include "net/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "net/http_server.h"
#include "tests/support/loopback_socket.h"
#include "tests/support/tls_test_server.h"

namespace quarry::net {

// Readable outcomes in failure messages.
void PrintTo(TransportOutcome outcome, std::ostream* os) { *os << TransportOutcomeName(outcome); }

namespace {

using ::quarry::testing::BoundLoopbackSocket;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

// Every wait in these tests gives up after this long, so that a broken client
// fails a test instead of hanging it.
constexpr auto kGiveUp = 20s;

// The tests talk to 127.0.0.1; make sure a proxy from the environment of the
// machine running them is not used for that.
const bool kNoProxyForLoopback = [] {
  ::setenv("no_proxy", "127.0.0.1,localhost", 1);
  ::setenv("NO_PROXY", "127.0.0.1,localhost", 1);
  return true;
}();

// Collects one request's callbacks; Wait() returns its response.
class Recorder {
 public:
  HttpCallbacks Callbacks(bool stream = false) {
    HttpCallbacks callbacks;
    callbacks.on_headers = [this](int status, const HttpHeaders&) {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back("headers " + std::to_string(status));
    };
    if (stream) {
      callbacks.on_data = [this](std::string_view bytes) {
        std::lock_guard<std::mutex> lock(mu_);
        events_.push_back("data " + std::string(bytes));
        return keep_going_.load();
      };
    }
    callbacks.on_complete = [this](HttpClientResponse response) {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back("complete");
      ++completions_;
      response_ = std::move(response);
      cv_.notify_all();
    };
    return callbacks;
  }

  // False when on_complete did not run within kGiveUp.
  bool Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kGiveUp, [&] { return completions_ > 0; });
  }

  HttpClientResponse response() {
    std::lock_guard<std::mutex> lock(mu_);
    return response_;
  }
  std::vector<std::string> events() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  int completions() {
    std::lock_guard<std::mutex> lock(mu_);
    return completions_;
  }
  void StopAfterFirstData() { keep_going_ = false; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> events_;
  int completions_ = 0;
  HttpClientResponse response_;
  std::atomic<bool> keep_going_{true};
};

// Raises the soft descriptor limit to the hard one. "" when `requests`
// connections fit (about two descriptors each: client and server side),
// otherwise why they do not.
std::string RaiseFdLimitFor(int requests) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return "getrlimit(RLIMIT_NOFILE) failed; this test did not run";
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur >= static_cast<rlim_t>(2 * requests + 500)) return "";
  return "RLIMIT_NOFILE hard limit " + std::to_string(limit.rlim_max) + " is too low for " +
         std::to_string(requests) + " connections; this test did not run";
}

// Completions of requests to a server that never answers (see
// StartStalledRequests).
struct StalledOutcomes {
  std::atomic<int> completed{0};
  std::atomic<int> cancelled{0};
};

class HttpClientTest : public ::testing::Test {
 protected:
  // Starts a server whose handler records the request and runs `script`.
  void StartServer(std::function<HttpResponse(const HttpServerRequest&)> script,
                   const HttpServerOptions& options = {}) {
    auto server = HttpServer::Start(options, [this, script](const HttpServerRequest& request) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        last_request_ = request;
        remote_addresses_.insert(request.remote_address);
      }
      return script(request);
    });
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
  }

  void SetUp() override {
    HttpClientOptions options;
    options.verify_tls = true;
    auto client = HttpClient::Create(options);
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    client_ = std::move(client).value();
  }

  void TearDown() override {
    client_.reset();
    if (server_) server_->Stop();
  }

  HttpClientRequest Get(const std::string& path) {
    HttpClientRequest request;
    request.url = server_->base_url() + path;
    return request;
  }

  // Starts a server that never answers and `count` requests to it, whose
  // completions (and cancellations among them) are counted in `outcomes`.
  void StartStalledRequests(int count, StalledOutcomes& outcomes) {
    StartServer([](const HttpServerRequest&) {
      HttpResponse response;
      response.start = ResponseStart::kStallForever;
      return response;
    });
    for (int i = 0; i < count; ++i) {
      HttpCallbacks callbacks;
      callbacks.on_complete = [&outcomes](HttpClientResponse response) {
        ++outcomes.completed;
        if (response.outcome == TransportOutcome::kCancelled) ++outcomes.cancelled;
      };
      ASSERT_TRUE(client_->Start(Get("/stall"), std::move(callbacks)).ok());
    }
  }

  HttpServerRequest last_request() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_request_;
  }
  size_t distinct_remote_addresses() {
    std::lock_guard<std::mutex> lock(mu_);
    return remote_addresses_.size();
  }

  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<HttpClient> client_;
  std::mutex mu_;
  HttpServerRequest last_request_;
  std::set<std::string> remote_addresses_;
};

HttpResponse Plain(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  response.headers = {{"Content-Type", "text/plain"}};
  return response;
}

HttpResponse Stream(std::vector<HttpResponse::Chunk> chunks, ResponseEnd end) {
  HttpResponse response;
  response.chunked = true;
  response.chunks = std::move(chunks);
  response.end = end;
  return response;
}

TEST_F(HttpClientTest, GetRoundTripCarriesHeadersAndBody) {
  StartServer([](const HttpServerRequest&) {
    HttpResponse response = Plain(200, "hello");
    response.headers.emplace_back("X-Amzn-RequestId", "  abc-123 ");
    return response;
  });
  HttpClientRequest request = Get("/ping");
  request.headers = {{"X-Custom", "value 1"}, {"Authorization", "AWS4-HMAC-SHA256 Credential=x"}};
  const HttpClientResponse response = client_->Send(request);

  ASSERT_EQ(response.outcome, TransportOutcome::kOk) << response.error;
  EXPECT_EQ(response.error, "");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "hello");
  EXPECT_EQ(response.body_bytes, 5u);
  EXPECT_TRUE(response.headers_received);
  EXPECT_EQ(response.http_version, "1.1");
  ASSERT_NE(response.FindHeader("x-amzn-requestid"), nullptr);
  EXPECT_EQ(*response.FindHeader("x-amzn-requestid"), "abc-123");
  EXPECT_EQ(response.FindHeader("X-Missing"), nullptr);
  // Header names keep the server's spelling.
  bool found = false;
  for (const auto& [name, value] : response.headers) found = found || name == "X-Amzn-RequestId";
  EXPECT_TRUE(found);
  EXPECT_GT(response.elapsed.count(), 0);

  const HttpServerRequest received = last_request();
  EXPECT_EQ(received.method, "GET");
  EXPECT_EQ(received.target, "/ping");
  ASSERT_NE(received.FindHeader("X-Custom"), nullptr);
  EXPECT_EQ(*received.FindHeader("X-Custom"), "value 1");
  ASSERT_NE(received.FindHeader("Authorization"), nullptr);
  EXPECT_EQ(*received.FindHeader("Authorization"), "AWS4-HMAC-SHA256 Credential=x");
  ASSERT_NE(received.FindHeader("User-Agent"), nullptr);
  EXPECT_EQ(*received.FindHeader("User-Agent"), "quarry");
}

TEST_F(HttpClientTest, PostSendsTheBodyWithoutExpectContinueOrAFormContentType) {
  StartServer([](const HttpServerRequest& request) { return Plain(201, "got " + request.body); });
  HttpClientRequest request = Get("/model/x/invoke");
  request.method = "POST";
  request.body = std::string(200'000, 'b');  // large enough that libcurl would use Expect
  const HttpClientResponse response = client_->Send(request);

  ASSERT_EQ(response.outcome, TransportOutcome::kOk) << response.error;
  EXPECT_EQ(response.status, 201);
  EXPECT_EQ(response.body, "got " + request.body);
  const HttpServerRequest received = last_request();
  EXPECT_EQ(received.method, "POST");
  EXPECT_EQ(received.body, request.body);
  EXPECT_EQ(received.FindHeader("Expect"), nullptr);
  EXPECT_EQ(received.FindHeader("Content-Type"), nullptr);
  ASSERT_NE(received.FindHeader("Content-Length"), nullptr);
  EXPECT_EQ(*received.FindHeader("Content-Length"), "200000");

  // A caller's Content-Type is sent as given; other methods carry bodies too.
  request.method = "PUT";
  request.body = R"({"a":1})";
  request.headers = {{"Content-Type", "application/json"}};
  const HttpClientResponse put = client_->Send(request);
  ASSERT_EQ(put.outcome, TransportOutcome::kOk) << put.error;
  EXPECT_EQ(last_request().method, "PUT");
  EXPECT_EQ(last_request().body, R"({"a":1})");
  ASSERT_NE(last_request().FindHeader("Content-Type"), nullptr);
  EXPECT_EQ(*last_request().FindHeader("Content-Type"), "application/json");
}

TEST_F(HttpClientTest, SendsTheTargetExactlyAsGiven) {
  StartServer([](const HttpServerRequest&) { return Plain(200, ""); });
  for (const std::string target :
       {"/model/a%3A0/invoke?x=1&x=2", "/bucket/a%2Fb/key", "/a/./b/../c%20d?q=%2F%3D", "/%7Euser/A%2f"}) {
    const HttpClientResponse response = client_->Send(Get(target));
    ASSERT_EQ(response.outcome, TransportOutcome::kOk) << response.error;
    EXPECT_EQ(last_request().target, target);
  }
}

TEST_F(HttpClientTest, UsesTheProxyFromTheEnvironment) {
  StartServer([](const HttpServerRequest&) { return Plain(200, "via proxy"); });
  // The test server plays the proxy: a proxied plain-HTTP request arrives with
  // the absolute URL as its target.
  ::setenv("http_proxy", server_->base_url().c_str(), 1);
  HttpClientRequest request;
  request.url = "http://bedrock.example.invalid/model/a%3A0/invoke";
  const HttpClientResponse response = client_->Send(request);
  ::unsetenv("http_proxy");
  ASSERT_EQ(response.outcome, TransportOutcome::kOk) << response.error;
  EXPECT_EQ(response.body, "via proxy");
  EXPECT_EQ(last_request().target, "http://bedrock.example.invalid/model/a%3A0/invoke");
}

TEST_F(HttpClientTest, SequentialRequestsReuseOneConnection) {
  StartServer([](const HttpServerRequest&) { return Plain(200, "ok"); });
  for (int i = 0; i < 50; ++i) {
    const HttpClientResponse response = client_->Send(Get("/r" + std::to_string(i)));
    ASSERT_EQ(response.outcome, TransportOutcome::kOk) << response.error;
    EXPECT_LE(server_->open_connections(), 2u);
  }
  EXPECT_EQ(distinct_remote_addresses(), 1u);
}

// The client reuses libcurl handles and header buffers between requests:
// nothing of one request (method, body, headers) may leak into the next.
TEST_F(HttpClientTest, ARequestCarriesNothingOverFromThePreviousOne) {
  StartServer([](const HttpServerRequest& request) { return Plain(200, request.method + " " + request.body); });
  HttpClientRequest post = Get("/first");
  post.method = "POST";
  post.body = "payload";
  post.headers = {{"Content-Type", "application/json"}, {"X-Only-First", "1"}, {"X-Empty", ""}};
  HttpClientResponse response = client_->Send(post);
  ASSERT_EQ(response.outcome, TransportOutcome::kOk) << response.error;
  EXPECT_EQ(response.body, "POST payload");
  ASSERT_NE(last_request().FindHeader("X-Empty"), nullptr);  // an empty value is sent, not dropped
  EXPECT_EQ(*last_request().FindHeader("X-Empty"), "");

  for (const std::string method : {"GET", "HEAD", "DELETE", "PUT", "GET"}) {
    HttpClientRequest next = Get("/next");
    next.method = method;
    if (method == "PUT") next.body = "second";
    response = client_->Send(next);
    ASSERT_EQ(response.outcome, TransportOutcome::kOk) << method << ": " << response.error;
    const HttpServerRequest received = last_request();
    EXPECT_EQ(received.method, method);
    EXPECT_EQ(received.target, "/next");
    EXPECT_EQ(received.body, method == "PUT" ? "second" : "") << method;
    EXPECT_EQ(received.FindHeader("X-Only-First"), nullptr) << method;
    EXPECT_EQ(received.FindHeader("X-Empty"), nullptr) << method;
    EXPECT_EQ(received.FindHeader("Content-Type"), nullptr) << method;
    EXPECT_EQ(response.body, method == "HEAD" ? "" : method + " " + received.body) << method;
  }
  EXPECT_EQ(distinct_remote_addresses(), 1u);  // all on one connection
}

// Idle connections stay in the epoll set between requests; one the server
// closes meanwhile must neither keep the loop busy nor break the next request.
TEST_F(HttpClientTest, AnIdleConnectionTheServerClosedIsReplaced) {
  auto handler = [](const HttpServerRequest&) { return Plain(200, "ok"); };
  StartServer(handler);
  ASSERT_EQ(client_->Send(Get("/a")).outcome, TransportOutcome::kOk);
  const int port = server_->port();
  server_->Stop();  // closes the client's idle connection
  HttpServerOptions options;
  options.port = port;
  StartServer(handler, options);

  // The loop sees the close while the connection is idle in libcurl's cache.
  // Were it to spin on that event, it would burn this whole interval.
  rusage before{};
  ::getrusage(RUSAGE_SELF, &before);
  const auto started = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(300ms);
  rusage after{};
  ::getrusage(RUSAGE_SELF, &after);
  auto cpu = [](const rusage& u) {
    return std::chrono::seconds(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           std::chrono::microseconds(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
  };
  EXPECT_LT(cpu(after) - cpu(before), (std::chrono::steady_clock::now() - started) / 2);

  for (int i = 0; i < 3; ++i) {
    const HttpClientResponse response = client_->Send(Get("/b"));
    ASSERT_EQ(response.outcome, TransportOutcome::kOk) << response.error;
  }
  EXPECT_EQ(distinct_remote_addresses(), 2u);  // one connection to each server
}

// Callbacks run on the loop thread; requests they start or cancel there are
// picked up without a wake-up from another thread.
TEST_F(HttpClientTest, CallbacksMayStartAndCancelRequests) {
  StartServer([](const HttpServerRequest& request) {
    if (request.target == "/stall") {
      HttpResponse response;
      response.start = ResponseStart::kStallForever;
      return response;
    }
    return Plain(200, request.target);
  });
  Recorder stalled;
  const Result<RequestId> stalled_id = client_->Start(Get("/stall"), stalled.Callbacks());
  ASSERT_TRUE(stalled_id.ok());

  // A chain: each completion starts the next request; the last one cancels
  // the stalled request.
  constexpr int kChain = 20;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> bodies;
  std::function<void(int)> start = [&](int i) {
    HttpCallbacks callbacks;
    callbacks.on_complete = [&, i](HttpClientResponse response) {
      {
        std::lock_guard<std::mutex> lock(mu);
        bodies.push_back(response.body);
      }
      if (i + 1 < kChain) {
        start(i + 1);
      } else {
        client_->Cancel(stalled_id.value());
      }
      cv.notify_all();
    };
    ASSERT_TRUE(client_->Start(Get("/chain/" + std::to_string(i)), std::move(callbacks)).ok());
  };
  start(0);
  ASSERT_TRUE(stalled.Wait());
  EXPECT_EQ(stalled.response().outcome, TransportOutcome::kCancelled);
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(bodies.size(), static_cast<size_t>(kChain));
  for (int i = 0; i < kChain; ++i) EXPECT_EQ(bodies[i], "/chain/" + std::to_string(i));
}

TEST_F(HttpClientTest, StreamsChunksAsTheyArriveAfterOnHeaders) {
  StartServer([](const HttpServerRequest&) {
    return Stream({{0ms, "one"}, {150ms, "two"}, {150ms, "three"}}, ResponseEnd::kComplete);
  });
  Recorder recorder;
  ASSERT_TRUE(client_->Start(Get("/stream"), recorder.Callbacks(/*stream=*/true)).ok());
  ASSERT_TRUE(recorder.Wait());

  const HttpClientResponse response = recorder.response();
  ASSERT_EQ(response.outcome, TransportOutcome::kOk) << response.error;
  EXPECT_EQ(response.body, "");  // streamed, not buffered
  EXPECT_EQ(response.body_bytes, 11u);
  EXPECT_THAT(recorder.events(),
              ::testing::ElementsAre("headers 200", "data one", "data two", "data three", "complete"));
  EXPECT_EQ(client_->in_flight(), 0u);
}

TEST_F(HttpClientTest, OnDataReturningFalseCancelsTheRequest) {
  StartServer([](const HttpServerRequest&) {
    return Stream({{0ms, "first"}}, ResponseEnd::kStallForever);
  });
  Recorder recorder;
  recorder.StopAfterFirstData();
  ASSERT_TRUE(client_->Start(Get("/stream"), recorder.Callbacks(/*stream=*/true)).ok());
  ASSERT_TRUE(recorder.Wait());
  const HttpClientResponse response = recorder.response();
  EXPECT_EQ(response.outcome, TransportOutcome::kCancelled);
  EXPECT_THAT(response.error, HasSubstr("on_data"));
  EXPECT_THAT(recorder.events(), ::testing::ElementsAre("headers 200", "data first", "complete"));
}

TEST_F(HttpClientTest, CancelFromAnotherThreadEndsAStalledRequest) {
  StartServer([](const HttpServerRequest&) {
    HttpResponse response;
    response.start = ResponseStart::kStallForever;
    return response;
  });
  Recorder recorder;
  const Result<RequestId> id = client_->Start(Get("/stall"), recorder.Callbacks());
  ASSERT_TRUE(id.ok());
  std::thread([&] {
    std::this_thread::sleep_for(100ms);
    client_->Cancel(id.value());
  }).join();
  ASSERT_TRUE(recorder.Wait());
  EXPECT_EQ(recorder.response().outcome, TransportOutcome::kCancelled);
  EXPECT_EQ(recorder.completions(), 1);
  // Cancelling again, or an id that never existed, is harmless.
  client_->Cancel(id.value());
  client_->Cancel(123456);
}

TEST_F(HttpClientTest, RequestTimeoutEndsASlowResponse) {
  StartServer([](const HttpServerRequest&) {
    HttpResponse response = Plain(200, "late");
    response.delay = 2000ms;
    return response;
  });
  HttpClientRequest request = Get("/slow");
  request.request_timeout = 300ms;
  const HttpClientResponse response = client_->Send(request);
  EXPECT_EQ(response.outcome, TransportOutcome::kRequestTimeout) << response.error;
  EXPECT_THAT(response.error, HasSubstr("127.0.0.1"));
  EXPECT_THAT(response.error, HasSubstr("300 ms"));
  EXPECT_LT(response.elapsed, 1900ms);  // it did not wait for the response
}

TEST_F(HttpClientTest, IdleTimeoutEndsAStalledStream) {
  StartServer([](const HttpServerRequest&) {
    return Stream({{0ms, "0123456789"}}, ResponseEnd::kStallForever);
  });
  HttpClientRequest request = Get("/stall");
  request.idle_timeout = 300ms;
  const auto started = std::chrono::steady_clock::now();
  const HttpClientResponse response = client_->Send(request);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
  EXPECT_EQ(response.outcome, TransportOutcome::kIdleTimeout) << response.error;
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "0123456789");
  EXPECT_EQ(response.body_bytes, 10u);
  EXPECT_THAT(response.error, HasSubstr("idle_timeout 300 ms"));
  EXPECT_THAT(response.error, HasSubstr("10 body bytes"));
}

TEST_F(HttpClientTest, ConnectionRefusedIsConnectFailed) {
  // A port that was free a moment ago and has no listener.
  sockaddr_in address{};
  const int fd = BoundLoopbackSocket(/*backlog=*/-1, &address);
  ASSERT_GE(fd, 0);
  ::close(fd);
  const std::string host = "127.0.0.1:" + std::to_string(ntohs(address.sin_port));

  HttpClientRequest request;
  request.url = "http://" + host + "/x";
  const HttpClientResponse response = client_->Send(request);
  EXPECT_EQ(response.outcome, TransportOutcome::kConnectFailed) << response.error;
  EXPECT_THAT(response.error, HasSubstr(host));
  EXPECT_FALSE(response.headers_received);
  EXPECT_EQ(response.status, 0);
}

TEST_F(HttpClientTest, ConnectTimeoutWhenTheServerNeverAcceptsTheConnection) {
  // A listener with a full accept queue: Linux drops further SYNs, so the
  // client's connect neither succeeds nor fails until it times out.
  sockaddr_in address{};
  const int listener = BoundLoopbackSocket(/*backlog=*/0, &address);
  ASSERT_GE(listener, 0);
  std::vector<int> fillers;
  for (int i = 0; i < 3; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    fillers.push_back(fd);
  }
  std::this_thread::sleep_for(50ms);

  HttpClientRequest request;
  request.url = "http://127.0.0.1:" + std::to_string(ntohs(address.sin_port)) + "/x";
  request.connect_timeout = 300ms;
  const HttpClientResponse response = client_->Send(request);
  for (const int fd : fillers) ::close(fd);
  ::close(listener);
  EXPECT_EQ(response.outcome, TransportOutcome::kConnectTimeout) << response.error;
  EXPECT_THAT(response.error, HasSubstr("300 ms"));
  EXPECT_LT(response.elapsed, 10s);
}

TEST_F(HttpClientTest, TlsHandshakeFailureIsConnectFailed) {
  StartServer([](const HttpServerRequest&) { return Plain(200, "plain"); });
  HttpClientRequest request;
  request.url = "https://127.0.0.1:" + std::to_string(server_->port()) + "/x";  // not a TLS server
  const HttpClientResponse response = client_->Send(request);
  EXPECT_EQ(response.outcome, TransportOutcome::kConnectFailed) << response.error;
}

// --- TLS against a real TLS server with its own CA -------------------------

std::unique_ptr<HttpClient> ClientTrusting(const std::string& ca_bundle) {
  HttpClientOptions options;
  options.ca_bundle = ca_bundle;
  Result<std::unique_ptr<HttpClient>> client = HttpClient::Create(options);
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  return client.ok() ? std::move(client).value() : nullptr;
}

HttpClientRequest GetFrom(const std::string& url) {
  HttpClientRequest request;
  request.url = url;
  return request;
}

TEST(HttpClientTlsTest, AServerSignedByTheCaBundleIsTrusted) {
  quarry::testing::TlsTestServer server;
  std::unique_ptr<HttpClient> client = ClientTrusting(server.ca_file());
  ASSERT_NE(client, nullptr);
  const HttpClientResponse response = client->Send(GetFrom(server.base_url() + "/x"));
  ASSERT_EQ(response.outcome, TransportOutcome::kOk) << response.error;
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "ok");
  EXPECT_EQ(response.http_version, "1.1");
  EXPECT_EQ(server.requests(), 1);
}

TEST(HttpClientTlsTest, AnUntrustedCertificateIsRefusedWithAHintAboutTheCaBundle) {
  quarry::testing::TlsTestServer server;
  // The system's store, then a CA that signed something else: both refuse.
  for (const std::string& ca_bundle : {std::string(), server.unrelated_ca_file()}) {
    std::unique_ptr<HttpClient> client = ClientTrusting(ca_bundle);
    ASSERT_NE(client, nullptr);
    const HttpClientResponse response = client->Send(GetFrom(server.base_url() + "/x"));
    EXPECT_EQ(response.outcome, TransportOutcome::kConnectFailed) << response.error;
    EXPECT_THAT(response.error, AllOf(HasSubstr("not trusted"), HasSubstr("CA bundle"))) << ca_bundle;
    EXPECT_FALSE(response.headers_received);
  }
  EXPECT_EQ(server.requests(), 0);  // nothing was sent to an unverified server
}

TEST(HttpClientTlsTest, Http2IsUsedWhenTheServerOffersItAndConcurrentCallsShareOneConnection) {
  quarry::testing::TlsTestServer server(/*offer_http2=*/true);
  std::unique_ptr<HttpClient> client = ClientTrusting(server.ca_file());
  ASSERT_NE(client, nullptr);
  constexpr int kCalls = 8;
  std::mutex mu;
  std::condition_variable done;
  std::vector<HttpClientResponse> responses;
  for (int i = 0; i < kCalls; ++i) {
    HttpClientRequest request = GetFrom(server.base_url() + "/call-" + std::to_string(i));
    if (i % 2 == 1) {  // POSTs too: their body ends the stream, not the headers
      request.method = "POST";
      request.body = R"({"call": )" + std::to_string(i) + "}";
    }
    HttpCallbacks callbacks;
    callbacks.on_complete = [&](HttpClientResponse response) {
      std::lock_guard<std::mutex> lock(mu);
      responses.push_back(std::move(response));
      done.notify_all();
    };
    ASSERT_TRUE(client->Start(std::move(request), std::move(callbacks)).ok());
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(done.wait_for(lock, 20s, [&] { return responses.size() == kCalls; }));
  }
  for (const HttpClientResponse& response : responses) {
    EXPECT_EQ(response.outcome, TransportOutcome::kOk) << response.error;
    EXPECT_EQ(response.http_version, "2");
    EXPECT_EQ(response.status, 200);
    EXPECT_EQ(response.body, "ok");
  }
  EXPECT_EQ(server.requests(), kCalls);
  EXPECT_EQ(server.connections(), 1);  // multiplexed, not one connection per call
}

TEST(HttpClientTlsTest, AnUnreadableCaBundleFailsAtCreate) {
  HttpClientOptions options;
  options.ca_bundle = "/nonexistent/quarry-ca.pem";
  Result<std::unique_ptr<HttpClient>> client = HttpClient::Create(options);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(client.status().message(), AllOf(HasSubstr("/nonexistent/quarry-ca.pem"), HasSubstr("PEM")));
}

TEST_F(HttpClientTest, ResetBeforeTheResponseIsConnectionReset) {
  StartServer([](const HttpServerRequest&) {
    HttpResponse response;
    response.start = ResponseStart::kResetConnection;
    return response;
  });
  const HttpClientResponse response = client_->Send(Get("/reset"));
  EXPECT_EQ(response.outcome, TransportOutcome::kConnectionReset) << response.error;
  EXPECT_EQ(response.status, 0);
}

// Reads from `fd` until `text` has arrived (true) or the peer closed / 5 s
// passed (false).
bool ReadUntilSeen(int fd, std::string_view text) {
  std::string seen;
  timeval timeout{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  char buffer[4096];
  while (seen.find(text) == std::string::npos) {
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) return false;
    seen.append(buffer, static_cast<size_t>(n));
  }
  return true;
}

TEST_F(HttpClientTest, ARequestLostOnAReusedConnectionIsNotSentAgainBehindTheCallersBack) {
  // The server answers the first request, then reads the second one on the
  // same keep-alive connection and closes it without answering. libcurl would
  // send the request again on a new connection (counted nowhere, and the
  // server may have acted on it); the client reports the failure instead.
  sockaddr_in address{};
  const int listener = BoundLoopbackSocket(/*backlog=*/8, &address);
  ASSERT_GE(listener, 0);
  std::atomic<int> requests{0};
  std::thread server([&] {
    const int first = ::accept(listener, nullptr, nullptr);
    if (first < 0) return;
    if (ReadUntilSeen(first, "/first")) {
      ++requests;
      const std::string reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
      ::send(first, reply.data(), reply.size(), MSG_NOSIGNAL);
      if (ReadUntilSeen(first, "second-body")) ++requests;
    }
    ::close(first);
    // A resend would come on a new connection (libcurl opens one before it
    // asks whether to send): count a request that arrives there.
    timeval timeout{1, 0};
    ::setsockopt(listener, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    const int again = ::accept(listener, nullptr, nullptr);
    if (again >= 0) {
      if (ReadUntilSeen(again, "second-body")) ++requests;
      ::close(again);
    }
  });
  const std::string base = "http://127.0.0.1:" + std::to_string(ntohs(address.sin_port));
  HttpClientRequest get;
  get.url = base + "/first";
  const HttpClientResponse first = client_->Send(get);
  EXPECT_EQ(first.outcome, TransportOutcome::kOk) << first.error;
  HttpClientRequest post;
  post.method = "POST";
  post.url = base + "/second";
  post.body = "second-body";
  const HttpClientResponse second = client_->Send(post);
  server.join();
  ::close(listener);
  EXPECT_EQ(second.outcome, TransportOutcome::kConnectionReset) << second.error;
  EXPECT_THAT(second.error, AllOf(HasSubstr("reused keep-alive connection"), HasSubstr("not sent again")));
  EXPECT_EQ(requests.load(), 2);  // the first, and the second once
}

TEST_F(HttpClientTest, ChunkedStreamCutOffIsConnectionReset) {
  for (const ResponseEnd end : {ResponseEnd::kCloseConnection, ResponseEnd::kResetConnection}) {
    StartServer([end](const HttpServerRequest&) {
      return Stream({{0ms, "part-1"}, {20ms, "part-2"}}, end);
    });
    const HttpClientResponse response = client_->Send(Get("/cut"));
    EXPECT_EQ(response.outcome, TransportOutcome::kConnectionReset)
        << static_cast<int>(end) << ": " << response.error;
    EXPECT_EQ(response.status, 200);
    EXPECT_THAT(response.error, HasSubstr("127.0.0.1"));
    server_->Stop();
  }
}

TEST_F(HttpClientTest, ResponseOverMaxResponseBytesFails) {
  StartServer([](const HttpServerRequest& request) {
    if (request.target == "/chunked") {
      return Stream({{0ms, std::string(600, 'a')}, {0ms, std::string(600, 'b')}}, ResponseEnd::kComplete);
    }
    return Plain(200, std::string(10'000, 'x'));
  });
  for (const std::string path : {"/sized", "/chunked"}) {
    HttpClientRequest request = Get(path);
    request.max_response_bytes = 1000;
    const HttpClientResponse response = client_->Send(request);
    EXPECT_EQ(response.outcome, TransportOutcome::kResponseTooLarge) << path << ": " << response.error;
    EXPECT_LE(response.body.size(), 1000u);
  }
  // Exactly at the limit is fine.
  HttpClientRequest request = Get("/sized");
  request.max_response_bytes = 10'000;
  EXPECT_EQ(client_->Send(request).outcome, TransportOutcome::kOk);
}

TEST_F(HttpClientTest, HttpErrorStatusIsATransportSuccess) {
  StartServer([](const HttpServerRequest&) { return Plain(500, R"({"message":"boom"})"); });
  const HttpClientResponse response = client_->Send(Get("/error"));
  EXPECT_EQ(response.outcome, TransportOutcome::kOk);
  EXPECT_EQ(response.status, 500);
  EXPECT_EQ(response.body, R"({"message":"boom"})");
  EXPECT_EQ(response.error, "");
}

TEST_F(HttpClientTest, InvalidUrlsAreRejectedWithoutCallingOnComplete) {
  for (const std::string url : {"ftp://example.com/x", "example.com/x", "http://exa mple.com/", "http://x/a\nb",
                                "http:///path", "http://x/\x7f"}) {
    bool completed = false;
    HttpClientRequest request;
    request.url = url;
    HttpCallbacks callbacks;
    callbacks.on_complete = [&](HttpClientResponse) { completed = true; };
    const Result<RequestId> id = client_->Start(request, callbacks);
    ASSERT_FALSE(id.ok()) << url;
    EXPECT_EQ(id.status().code(), StatusCode::kInvalidArgument) << url;
    EXPECT_FALSE(completed);
  }
  HttpClientRequest request;
  request.url = "http://127.0.0.1:1/";
  request.headers = {{"X-Injected", "a\r\nEvil: 1"}};
  EXPECT_EQ(client_->Start(request, {}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->in_flight(), 0u);
  // Send() reports the rejection in the response.
  request.headers.clear();
  request.url = "ftp://x/";
  const HttpClientResponse response = client_->Send(request);
  EXPECT_EQ(response.outcome, TransportOutcome::kOther);
  EXPECT_THAT(response.error, HasSubstr("http://"));
}

TEST_F(HttpClientTest, AThousandConcurrentRequestsAllCompleteCorrectly) {
  StartServer([](const HttpServerRequest& request) {
    HttpResponse response = Plain(200, "reply to " + request.target);
    response.delay = 50ms;
    return response;
  });
  constexpr int kRequests = 1000;
  // One connection per request needs ~2 descriptors each (client + server
  // side). Raise the soft limit; where the hard limit is too low, cap the
  // client's connections instead (requests then queue for a connection).
  if (!RaiseFdLimitFor(kRequests).empty()) {
    HttpClientOptions options;
    options.max_connections_per_host = 200;
    client_ = std::move(HttpClient::Create(options)).value();
  }
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  std::vector<HttpClientResponse> responses(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    HttpCallbacks callbacks;
    callbacks.on_complete = [&, i](HttpClientResponse response) {
      std::lock_guard<std::mutex> lock(mu);
      responses[i] = std::move(response);
      ++done;
      cv.notify_all();
    };
    ASSERT_TRUE(client_->Start(Get("/item/" + std::to_string(i)), std::move(callbacks)).ok());
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, kGiveUp, [&] { return done == kRequests; })) << done << " completed";
  }
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_EQ(responses[i].outcome, TransportOutcome::kOk) << i << ": " << responses[i].error;
    ASSERT_EQ(responses[i].status, 200);
    ASSERT_EQ(responses[i].body, "reply to /item/" + std::to_string(i));
  }
  EXPECT_EQ(client_->in_flight(), 0u);
}

// More transfers than one libcurl multi handle is given (the client spreads
// them over several): every response reaches its own request, and Cancel()
// finds its request among them.
TEST_F(HttpClientTest, FiveThousandConcurrentRequestsCompleteAndCancelCorrectly) {
  StartServer([](const HttpServerRequest& request) {
    HttpResponse response = Plain(200, "reply to " + request.target);
    response.delay = request.target.rfind("/stall/", 0) == 0 ? 3000ms : 50ms;
    return response;
  });
  constexpr int kRequests = 5000;
  if (std::string why = RaiseFdLimitFor(kRequests); !why.empty()) GTEST_SKIP() << why;
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  std::vector<HttpClientResponse> responses(kRequests);
  std::vector<RequestId> ids(kRequests);
  auto cancelled = [](int i) { return i % 10 == 3; };
  for (int i = 0; i < kRequests; ++i) {
    HttpCallbacks callbacks;
    callbacks.on_complete = [&, i](HttpClientResponse response) {
      std::lock_guard<std::mutex> lock(mu);
      responses[i] = std::move(response);
      ++done;
      cv.notify_all();
    };
    const std::string path = (cancelled(i) ? "/stall/" : "/item/") + std::to_string(i);
    Result<RequestId> id = client_->Start(Get(path), std::move(callbacks));
    ASSERT_TRUE(id.ok());
    ids[i] = id.value();
  }
  for (int i = 0; i < kRequests; ++i) {
    if (cancelled(i)) client_->Cancel(ids[i]);
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, kGiveUp, [&] { return done == kRequests; })) << done << " completed";
  }
  for (int i = 0; i < kRequests; ++i) {
    if (cancelled(i)) {
      ASSERT_EQ(responses[i].outcome, TransportOutcome::kCancelled) << i << ": " << responses[i].error;
      continue;
    }
    ASSERT_EQ(responses[i].outcome, TransportOutcome::kOk) << i << ": " << responses[i].error;
    ASSERT_EQ(responses[i].body, "reply to /item/" + std::to_string(i));
  }
  EXPECT_EQ(client_->in_flight(), 0u);
}

TEST_F(HttpClientTest, DestructorCancelsRequestsInFlight) {
  constexpr int kRequests = 20;
  StalledOutcomes outcomes;
  StartStalledRequests(kRequests, outcomes);
  std::this_thread::sleep_for(100ms);  // let some of them reach the server
  const auto started = std::chrono::steady_clock::now();
  client_.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  EXPECT_EQ(outcomes.completed.load(), kRequests);
  EXPECT_EQ(outcomes.cancelled.load(), kRequests);
}

// A burst is handed to libcurl in slices; the destructor also cancels the
// requests of a burst that were not handed over yet.
TEST_F(HttpClientTest, DestructorCancelsABurstThatIsStillBeingStarted) {
  constexpr int kRequests = 600;
  if (std::string why = RaiseFdLimitFor(kRequests); !why.empty()) GTEST_SKIP() << why;
  StalledOutcomes outcomes;
  StartStalledRequests(kRequests, outcomes);
  client_.reset();
  EXPECT_EQ(outcomes.completed.load(), kRequests);
  EXPECT_EQ(outcomes.cancelled.load(), kRequests);
}

TEST_F(HttpClientTest, ThrowingCallbacksCancelTheRequestAndDoNotEscape) {
  StartServer([](const HttpServerRequest&) {
    return Stream({{0ms, "a"}, {10ms, "b"}}, ResponseEnd::kComplete);
  });
  {
    Recorder recorder;
    HttpCallbacks callbacks = recorder.Callbacks(/*stream=*/true);
    callbacks.on_headers = [](int, const HttpHeaders&) { throw std::runtime_error("bad headers"); };
    int data_calls = 0;
    callbacks.on_data = [&](std::string_view) { ++data_calls; return true; };
    ASSERT_TRUE(client_->Start(Get("/s"), std::move(callbacks)).ok());
    ASSERT_TRUE(recorder.Wait());
    EXPECT_EQ(recorder.response().outcome, TransportOutcome::kCancelled);
    EXPECT_THAT(recorder.response().error, HasSubstr("bad headers"));
    EXPECT_EQ(data_calls, 0);
  }
  {
    Recorder recorder;
    HttpCallbacks callbacks = recorder.Callbacks(/*stream=*/true);
    int data_calls = 0;
    callbacks.on_data = [&](std::string_view) -> bool {
      ++data_calls;
      throw std::runtime_error("bad data");
    };
    ASSERT_TRUE(client_->Start(Get("/s"), std::move(callbacks)).ok());
    ASSERT_TRUE(recorder.Wait());
    EXPECT_EQ(recorder.response().outcome, TransportOutcome::kCancelled);
    EXPECT_THAT(recorder.response().error, HasSubstr("bad data"));
    EXPECT_EQ(data_calls, 1);
  }
  {
    std::promise<void> thrown;
    HttpCallbacks callbacks;
    callbacks.on_complete = [&](HttpClientResponse) {
      thrown.set_value();
      throw std::runtime_error("bad completion");
    };
    ASSERT_TRUE(client_->Start(Get("/s"), std::move(callbacks)).ok());
    ASSERT_EQ(thrown.get_future().wait_for(kGiveUp), std::future_status::ready);
  }
  // The client still works.
  EXPECT_EQ(client_->Send(Get("/s")).outcome, TransportOutcome::kOk);
}

TEST_F(HttpClientTest, SendOnTheLoopThreadReturnsAnErrorInsteadOfDeadlocking) {
  StartServer([](const HttpServerRequest&) { return Plain(200, "ok"); });
  std::promise<HttpClientResponse> inner;
  HttpCallbacks callbacks;
  callbacks.on_complete = [&](HttpClientResponse) { inner.set_value(client_->Send(Get("/inner"))); };
  ASSERT_TRUE(client_->Start(Get("/outer"), std::move(callbacks)).ok());
  auto future = inner.get_future();
  ASSERT_EQ(future.wait_for(kGiveUp), std::future_status::ready);
  const HttpClientResponse response = future.get();
  EXPECT_EQ(response.outcome, TransportOutcome::kOther);
  EXPECT_THAT(response.error, HasSubstr("loop thread"));
}

TEST(TransportOutcomeNameTest, NamesEveryOutcome) {
  EXPECT_EQ(TransportOutcomeName(TransportOutcome::kOk), "ok");
  EXPECT_EQ(TransportOutcomeName(TransportOutcome::kIdleTimeout), "idle_timeout");
  EXPECT_EQ(TransportOutcomeName(TransportOutcome::kConnectionReset), "connection_reset");
}

}  // namespace
}  // namespace quarry::net
