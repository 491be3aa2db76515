#pragma once
// Delivery of notifications and alerts to HTTP webhooks: a JSON body POSTed
// with a signature the receiver can check, retried with backoff until
// delivered or out of attempts.
//
// Headers sent: Content-Type: application/json; X-Quarry-Delivery: <delivery
// id> (the same on every attempt, so receivers can drop duplicates);
// X-Quarry-Timestamp: <unix seconds>; and, when a secret is configured,
// X-Quarry-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">.
// A 2xx answer is delivered; 408, 429 and 5xx and transport failures are
// retried (Retry-After honoured up to the cap); other 4xx fail at once (the
// receiver refused the body; retrying cannot help).
//
// Only http:// and https:// URLs; the error for a delivery says the URL's
// host (never the secret), the last status or transport failure, and how
// many attempts were made.
//
// Thread safety: thread-safe. The completion runs on the HTTP client's loop
// thread or the sender's timer thread, never inside Send().

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "net/http_client.h"

namespace quarry::engine {

struct WebhookRequest {
  std::string url{};
  std::string body{};         // JSON text
  std::string secret{};       // "" = unsigned
  std::string delivery_id{};  // required
  int max_attempts = 5;
  std::chrono::milliseconds timeout{10'000};   // per attempt
  std::chrono::milliseconds backoff_base{500};
  std::chrono::milliseconds backoff_cap{30'000};
};

struct WebhookResult {
  Status status;          // OK when delivered
  int http_status = 0;    // last status (0 = none)
  int attempts = 0;
};

// The signature header value for a body ("sha256=<hex>").
std::string WebhookSignature(std::string_view secret, std::string_view timestamp, std::string_view body);

class WebhookSender {
 public:
  // `http` is shared with other users; `clock` for timestamps.
  WebhookSender(std::shared_ptr<net::HttpClient> http, const Clock& clock);
  ~WebhookSender();  // cancels pending retries (their completion runs with Cancelled)
  WebhookSender(const WebhookSender&) = delete;
  WebhookSender& operator=(const WebhookSender&) = delete;

  // InvalidArgument (returned, `done` not called) for a URL that is not
  // http(s) or an empty delivery id.
  Status Send(WebhookRequest request, std::function<void(WebhookResult)> done);

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace quarry::engine
