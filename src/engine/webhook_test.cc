#include "engine/webhook.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "net/http_server.h"

namespace quarry::engine {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

constexpr auto kGiveUp = 20s;  // every wait is bounded

// The tests talk to 127.0.0.1; a proxy from the environment must not be used.
const bool kNoProxyForLoopback = [] {
  ::setenv("no_proxy", "127.0.0.1,localhost", 1);
  ::setenv("NO_PROXY", "127.0.0.1,localhost", 1);
  return true;
}();

// HMAC-SHA256 straight from OpenSSL, hex-encoded here: an independent check
// of what the sender signs.
std::string ExpectedSignature(const std::string& secret, const std::string& timestamp,
                              const std::string& body) {
  const std::string message = timestamp + "." + body;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &length);
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex = "sha256=";
  for (unsigned int i = 0; i < length; ++i) {
    hex += kDigits[mac[i] >> 4];
    hex += kDigits[mac[i] & 0xf];
  }
  return hex;
}

struct Seen {
  std::string target, delivery, timestamp, signature, content_type, body;
  bool has_signature = false;
};

// A receiver answering from a script of statuses (the last one repeats).
class Receiver {
 public:
  explicit Receiver(std::vector<int> statuses, net::HeaderFields extra_headers = {})
      : statuses_(std::move(statuses)), extra_headers_(std::move(extra_headers)) {
    auto server = net::HttpServer::Start({}, [this](const net::HttpServerRequest& request) {
      Seen seen;
      seen.target = request.target;
      seen.body = request.body;
      auto header = [&](const char* name, std::string* out) {
        const std::string* value = request.FindHeader(name);
        if (value != nullptr) *out = *value;
        return value != nullptr;
      };
      header("X-Quarry-Delivery", &seen.delivery);
      header("X-Quarry-Timestamp", &seen.timestamp);
      header("Content-Type", &seen.content_type);
      seen.has_signature = header("X-Quarry-Signature", &seen.signature);
      std::lock_guard<std::mutex> lock(mutex_);
      net::HttpResponse response;
      response.status = statuses_[std::min(seen_.size(), statuses_.size() - 1)];
      response.headers = extra_headers_;
      if (response.status != 204) response.body = R"({"ok":false})";
      seen_.push_back(std::move(seen));
      return response;
    });
    EXPECT_TRUE(server.ok()) << server.status().ToString();
    if (server.ok()) server_ = std::move(server).value();
  }

  std::string url(const std::string& path) const { return server_->base_url() + path; }
  std::vector<Seen> seen() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return seen_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<int> statuses_;
  net::HeaderFields extra_headers_;
  std::vector<Seen> seen_;
  std::unique_ptr<net::HttpServer> server_;
};

class WebhookTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto http = net::HttpClient::Create();
    ASSERT_TRUE(http.ok()) << http.status().ToString();
    http_ = std::move(http).value();
    sender_ = std::make_unique<WebhookSender>(http_, clock_);
  }

  WebhookRequest Request(const std::string& url) {
    WebhookRequest request;
    request.url = url;
    request.body = R"({"event":"run_finished","run":"run_1"})";
    request.delivery_id = "dlv_0123456789";
    request.timeout = 5s;
    request.backoff_base = 5ms;
    request.backoff_cap = 20ms;
    return request;
  }

  // Sends and waits (bounded) for the completion.
  WebhookResult Deliver(WebhookRequest request) {
    auto promise = std::make_shared<std::promise<WebhookResult>>();
    auto future = promise->get_future();
    const Status sent =
        sender_->Send(std::move(request), [promise](WebhookResult r) { promise->set_value(r); });
    EXPECT_TRUE(sent.ok()) << sent.ToString();
    if (!sent.ok() || future.wait_for(kGiveUp) != std::future_status::ready) {
      ADD_FAILURE() << "the delivery did not complete";
      return WebhookResult{InternalError("no completion")};
    }
    return future.get();
  }

  FakeClock clock_{WallTime{} + std::chrono::seconds(1'700'000'000)};
  std::shared_ptr<net::HttpClient> http_;
  std::unique_ptr<WebhookSender> sender_;
};

TEST(WebhookSignatureTest, MatchesAnIndependentHmac) {
  EXPECT_EQ(WebhookSignature("s3cret", "1700000000", "{\"a\":1}"),
            ExpectedSignature("s3cret", "1700000000", "{\"a\":1}"));
  EXPECT_EQ(WebhookSignature("", "1", ""), ExpectedSignature("", "1", ""));
  EXPECT_NE(WebhookSignature("k", "1", "ab"),
            WebhookSignature("k", "1a", "b"));  // the dot separates
}

TEST_F(WebhookTest, RetriesServerErrorsWithTheSameDeliveryIdUntilDelivered) {
  Receiver receiver({503, 503, 200});
  WebhookRequest request = Request(receiver.url("/hooks/in?token=path-token-123"));
  request.secret = "whsec_test_secret";
  const std::string body = request.body;
  const WebhookResult result = Deliver(request);
  EXPECT_TRUE(result.status.ok()) << result.status.ToString();
  EXPECT_EQ(result.attempts, 3);
  EXPECT_EQ(result.http_status, 200);

  const auto seen = receiver.seen();
  ASSERT_EQ(seen.size(), 3u);
  for (const Seen& s : seen) {
    EXPECT_EQ(s.target, "/hooks/in?token=path-token-123");
    EXPECT_EQ(s.delivery, "dlv_0123456789");
    EXPECT_EQ(s.timestamp, "1700000000");
    EXPECT_EQ(s.content_type, "application/json");
    EXPECT_EQ(s.body, body);
    ASSERT_TRUE(s.has_signature);
    EXPECT_EQ(s.signature, ExpectedSignature("whsec_test_secret", s.timestamp, s.body));
  }
}

TEST_F(WebhookTest, UnsignedWithoutASecret) {
  Receiver receiver({204});
  const WebhookResult result = Deliver(Request(receiver.url("/")));
  EXPECT_TRUE(result.status.ok()) << result.status.ToString();
  EXPECT_EQ(result.attempts, 1);
  EXPECT_EQ(result.http_status, 204);
  ASSERT_EQ(receiver.seen().size(), 1u);
  EXPECT_FALSE(receiver.seen()[0].has_signature);
}

TEST_F(WebhookTest, ClientErrorIsNotRetried) {
  Receiver receiver({400, 200});
  WebhookRequest request = Request(receiver.url("/hooks/in?token=path-token-123"));
  request.secret = "whsec_test_secret";
  const WebhookResult result = Deliver(request);
  EXPECT_FALSE(result.status.ok());
  EXPECT_EQ(result.attempts, 1);
  EXPECT_EQ(result.http_status, 400);
  EXPECT_EQ(receiver.seen().size(), 1u);
  EXPECT_THAT(result.status.message(), HasSubstr("127.0.0.1"));
  EXPECT_THAT(result.status.message(), HasSubstr("400"));
  EXPECT_THAT(result.status.message(), Not(HasSubstr("whsec_test_secret")));
  EXPECT_THAT(result.status.message(), Not(HasSubstr("path-token-123")));
}

TEST_F(WebhookTest, ThrottledAndTimeoutStatusesAreRetried) {
  Receiver receiver({429, 408, 500, 200});
  const WebhookResult result = Deliver(Request(receiver.url("/")));
  EXPECT_TRUE(result.status.ok()) << result.status.ToString();
  EXPECT_EQ(result.attempts, 4);
}

TEST_F(WebhookTest, RetryAfterIsCappedByTheBackoffCap) {
  // An hour's Retry-After with a 20 ms cap: were it not capped, the bounded
  // wait would fail.
  Receiver receiver({503, 200}, {{"Retry-After", "3600"}});
  const WebhookResult result = Deliver(Request(receiver.url("/")));
  EXPECT_TRUE(result.status.ok()) << result.status.ToString();
  EXPECT_EQ(result.attempts, 2);
}

TEST_F(WebhookTest, GivesUpAfterMaxAttempts) {
  Receiver receiver({502});
  WebhookRequest request = Request(receiver.url("/"));
  request.max_attempts = 3;
  const WebhookResult result = Deliver(request);
  EXPECT_EQ(result.status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(result.attempts, 3);
  EXPECT_EQ(result.http_status, 502);
  EXPECT_EQ(receiver.seen().size(), 3u);
  EXPECT_THAT(result.status.message(), HasSubstr("3 attempts"));
}

TEST_F(WebhookTest, ConnectionRefusedFailsAfterMaxAttemptsNamingTheHost) {
  std::string url;
  {
    auto server = net::HttpServer::Start(
        {}, [](const net::HttpServerRequest&) { return net::HttpResponse{}; });
    ASSERT_TRUE(server.ok());
    url = (*server)->base_url() + "/hook?token=path-token-123";
    (*server)->Stop();
  }
  const std::string host = url.substr(std::string("http://").size(), url.find('/', 7) - 7);
  WebhookRequest request = Request(url);
  request.max_attempts = 3;
  request.secret = "whsec_test_secret";
  const WebhookResult result = Deliver(request);
  EXPECT_EQ(result.status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(result.attempts, 3);
  EXPECT_EQ(result.http_status, 0);
  EXPECT_THAT(result.status.message(), HasSubstr(host));
  EXPECT_THAT(result.status.message(), HasSubstr("3 attempts"));
  EXPECT_THAT(result.status.message(), Not(HasSubstr("whsec_test_secret")));
  EXPECT_THAT(result.status.message(), Not(HasSubstr("path-token-123")));
}

TEST_F(WebhookTest, SendRejectsBadRequestsWithoutCallingDone) {
  bool called = false;
  auto done = [&](WebhookResult) { called = true; };
  WebhookRequest request = Request("ftp://example.com/hook");
  EXPECT_EQ(sender_->Send(request, done).code(), StatusCode::kInvalidArgument);
  request.url = "https:///nohost";
  EXPECT_EQ(sender_->Send(request, done).code(), StatusCode::kInvalidArgument);
  request.url = "https://example.com/a b";
  EXPECT_EQ(sender_->Send(request, done).code(), StatusCode::kInvalidArgument);
  request.url = "https://example.com/hook";
  request.delivery_id = "";
  const Status no_id = sender_->Send(request, done);
  EXPECT_EQ(no_id.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(no_id.message(), HasSubstr("delivery id"));
  EXPECT_FALSE(called);
}

TEST_F(WebhookTest, DestructorCancelsPendingRetries) {
  Receiver receiver({503});
  WebhookRequest request = Request(receiver.url("/"));
  request.backoff_base = 60s;  // the retry would wait a long time
  request.backoff_cap = 60s;
  auto promise = std::make_shared<std::promise<WebhookResult>>();
  auto future = promise->get_future();
  ASSERT_TRUE(sender_->Send(request, [promise](WebhookResult r) { promise->set_value(r); }).ok());
  for (int i = 0; i < 2000 && receiver.seen().empty(); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(receiver.seen().size(), 1u);
  sender_.reset();  // cancels the retry (or the attempt, if still in flight)
  ASSERT_EQ(future.wait_for(0s), std::future_status::ready);
  const WebhookResult result = future.get();
  EXPECT_EQ(result.status.code(), StatusCode::kCancelled);
  EXPECT_EQ(result.attempts, 1);
}

TEST_F(WebhookTest, ManyConcurrentDeliveries) {
  Receiver receiver({503, 200});  // only the very first request fails
  constexpr int kDeliveries = 20;
  std::vector<std::future<WebhookResult>> futures;
  for (int i = 0; i < kDeliveries; ++i) {
    auto promise = std::make_shared<std::promise<WebhookResult>>();
    futures.push_back(promise->get_future());
    WebhookRequest request = Request(receiver.url("/"));
    request.delivery_id = "dlv_" + std::to_string(i);
    ASSERT_TRUE(sender_->Send(request, [promise](WebhookResult r) { promise->set_value(r); }).ok());
  }
  int attempts = 0;
  for (auto& future : futures) {
    ASSERT_EQ(future.wait_for(kGiveUp), std::future_status::ready);
    const WebhookResult result = future.get();
    EXPECT_TRUE(result.status.ok()) << result.status.ToString();
    attempts += result.attempts;
  }
  EXPECT_EQ(attempts, kDeliveries + 1);
}

}  // namespace
}  // namespace quarry::engine
