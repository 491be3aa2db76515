#include "engine/webhook.h"

#include <algorithm>
#include <condition_variable>
#include <ctime>
#include <iomanip>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "common/crypto.h"
#include "common/encoding.h"

namespace quarry::engine {
namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Response bodies are read and dropped: only the status matters, and a
// receiver that answers with a large page must not turn a delivery into a
// failure or a memory cost.
constexpr size_t kMaxResponseBytes = 1024 * 1024;
constexpr milliseconds kMaxConnectTimeout{3'000};

// The host (and port) of an http(s) URL, without user info: the only part of
// a webhook URL an error message may show (paths and queries often carry
// tokens).
std::string UrlHost(std::string_view url) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return "";
  std::string_view rest = url.substr(scheme_end + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (const size_t at = rest.rfind('@'); at != std::string_view::npos) rest.remove_prefix(at + 1);
  return std::string(rest);
}

Status ValidateUrl(std::string_view url) {
  const std::string prefix = AsciiToLower(url.substr(0, 8));
  if (prefix.rfind("http://", 0) != 0 && prefix.rfind("https://", 0) != 0) {
    return InvalidArgumentError("the webhook URL must start with http:// or https://");
  }
  const std::string host = UrlHost(url);
  if (host.empty())
    return InvalidArgumentError("the webhook URL has no host; write it as https://host/path");
  for (const char c : url) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte == 0x7f) {
      return InvalidArgumentError("the webhook URL for " + host +
                                  " contains a space or control character; percent-encode it");
    }
  }
  return Status::Ok();
}

// Retry-After is either delta-seconds or an HTTP-date (RFC 9110 section 10.2.3).
std::optional<milliseconds> ParseRetryAfter(std::string_view value, WallTime now) {
  value = TrimAsciiWhitespace(value);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (value.size() > 9) return milliseconds::max();  // absurdly far: the cap applies
    return milliseconds(std::stoll(std::string(value)) * 1000);
  }
  std::tm tm{};
  std::istringstream in{std::string(value)};
  in >> std::get_time(&tm, "%a, %d %b %Y %H:%M:%S GMT");
  if (in.fail()) return std::nullopt;
  const WallTime at = std::chrono::system_clock::from_time_t(timegm(&tm));
  if (at <= now) return milliseconds(0);
  return std::chrono::duration_cast<milliseconds>(at - now);
}

struct Delivery {
  WebhookRequest request;
  std::function<void(WebhookResult)> done;
  std::string host;
  int attempts = 0;
  int last_status = 0;
  std::string last_failure;  // for the final message
  // The attempt in flight (guarded by the core's mutex).
  net::RequestId request_id = 0;
  bool attempt_finished = false;
};

// Shared with the HTTP client's callbacks, so a completion arriving while the
// sender shuts down still finds a live mutex. It does not own the client:
// the last reference to the core may be dropped on the client's loop thread,
// where the client must not be destroyed; the sender's Impl owns it and
// outlives every use (Shutdown() returns after the last completion).
class SenderCore : public std::enable_shared_from_this<SenderCore> {
 public:
  SenderCore(net::HttpClient* http, const Clock& clock)
      : http_(http), clock_(clock), random_(std::random_device{}()) {}

  void Schedule(std::shared_ptr<Delivery> delivery) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.emplace(SteadyClock::now(), std::move(delivery));
    }
    wake_.notify_one();
  }

  void TimerLoop() {
    std::unique_lock<std::mutex> lock(mutex_);
    std::vector<std::shared_ptr<Delivery>> due;
    while (!stopping_) {
      if (queue_.empty()) {
        wake_.wait(lock);
        continue;
      }
      const auto now = SteadyClock::now();
      if (const SteadyClock::time_point first = queue_.begin()->first; first > now) {
        wake_.wait_until(lock, first);  // a copy: the queue may change while waiting
        continue;
      }
      while (!queue_.empty() && queue_.begin()->first <= now) {
        due.push_back(std::move(queue_.begin()->second));
        queue_.erase(queue_.begin());
      }
      lock.unlock();
      for (auto& delivery : due) StartAttempt(std::move(delivery));
      due.clear();
      lock.lock();
    }
  }

  // Called once the timer thread is told to stop: the waiting retries end as
  // Cancelled, the attempts in flight are cancelled, and this returns when
  // every completion has run.
  void Shutdown(std::thread& timer) {
    std::vector<std::shared_ptr<Delivery>> waiting;
    std::vector<net::RequestId> in_flight;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      for (auto& [due, delivery] : queue_) waiting.push_back(std::move(delivery));
      queue_.clear();
      in_flight.assign(in_flight_ids_.begin(), in_flight_ids_.end());
    }
    wake_.notify_all();
    if (timer.joinable()) timer.join();
    for (const net::RequestId id : in_flight) http_->Cancel(id);
    for (auto& delivery : waiting) FinishCancelled(*delivery);
    std::unique_lock<std::mutex> lock(mutex_);
    idle_.wait(lock, [this] { return in_flight_ == 0; });
  }

 private:
  void StartAttempt(std::shared_ptr<Delivery> delivery) {
    const WebhookRequest& request = delivery->request;
    ++delivery->attempts;
    const std::string timestamp = std::to_string(
        std::chrono::duration_cast<std::chrono::seconds>(clock_.Now().time_since_epoch()).count());
    net::HttpClientRequest http_request;
    http_request.method = "POST";
    http_request.url = request.url;
    http_request.headers = {{"Content-Type", "application/json"},
                            {"X-Quarry-Delivery", request.delivery_id},
                            {"X-Quarry-Timestamp", timestamp}};
    if (!request.secret.empty()) {
      http_request.headers.emplace_back("X-Quarry-Signature",
                                        WebhookSignature(request.secret, timestamp, request.body));
    }
    http_request.body = request.body;
    http_request.request_timeout = request.timeout;
    http_request.idle_timeout = request.timeout;
    http_request.connect_timeout = std::min(request.timeout, kMaxConnectTimeout);
    http_request.max_response_bytes = kMaxResponseBytes;

    net::HttpCallbacks callbacks;
    callbacks.on_data = [](std::string_view) { return true; };
    callbacks.on_complete = [core = shared_from_this(),
                             delivery](net::HttpClientResponse response) {
      core->OnComplete(delivery, std::move(response));
    };
    bool stopping = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping = stopping_;
      if (!stopping) {
        ++in_flight_;
        delivery->request_id = 0;
        delivery->attempt_finished = false;
      }
    }
    if (stopping) {
      --delivery->attempts;  // never sent
      FinishCancelled(*delivery);
      return;
    }

    Result<net::RequestId> started = http_->Start(std::move(http_request), std::move(callbacks));
    if (!started.ok()) {
      // The client's message may quote the URL (and a token in its path), so
      // only its code is passed on.
      delivery->last_failure =
          started.status().code() == StatusCode::kInvalidArgument
              ? std::string(
                    "the HTTP client refused the URL; check the webhook URL's host and characters")
              : "the HTTP client could not start the request (" +
                    std::string(StatusCodeName(started.status().code())) + ")";
      Finish(*delivery, Status(StatusCode::kUnavailable, FailureMessage(*delivery)));
      DoneWithAttempt();
      return;
    }
    bool cancel_now = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!delivery->attempt_finished) {
        delivery->request_id = started.value();
        in_flight_ids_.insert(started.value());
        cancel_now = stopping_;  // Shutdown() collected the ids before this one
      }
    }
    if (cancel_now) http_->Cancel(started.value());
  }

  void OnComplete(const std::shared_ptr<Delivery>& delivery, net::HttpClientResponse response) {
    bool stopping = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      delivery->attempt_finished = true;
      if (delivery->request_id != 0) in_flight_ids_.erase(delivery->request_id);
      stopping = stopping_;
    }
    const WebhookRequest& request = delivery->request;
    bool retryable = false;
    std::optional<milliseconds> retry_after;
    if (response.outcome == net::TransportOutcome::kOk) {
      delivery->last_status = response.status;
      if (response.status >= 200 && response.status < 300) {
        Finish(*delivery, Status::Ok());
        DoneWithAttempt();
        return;
      }
      retryable = response.status == 408 || response.status == 429 || response.status >= 500;
      delivery->last_failure = "the receiver answered HTTP " + std::to_string(response.status);
      if (!retryable) delivery->last_failure += " (not retried: the receiver refused the request)";
      if (const std::string* header = response.FindHeader("Retry-After");
          header != nullptr && retryable) {
        retry_after = ParseRetryAfter(*header, clock_.Now());
      }
    } else if (response.outcome == net::TransportOutcome::kCancelled) {
      FinishCancelled(*delivery);
      DoneWithAttempt();
      return;
    } else {
      retryable = true;
      delivery->last_failure = response.error.empty()
                                   ? std::string(net::TransportOutcomeName(response.outcome))
                                   : response.error;
    }

    if (!retryable || delivery->attempts >= std::max(1, request.max_attempts)) {
      Finish(*delivery,
             Status(retryable ? StatusCode::kUnavailable : StatusCode::kFailedPrecondition,
                    FailureMessage(*delivery)));
      DoneWithAttempt();
      return;
    }
    const milliseconds delay =
        retry_after ? std::min(*retry_after, request.backoff_cap) : Backoff(*delivery);
    bool scheduled = false;
    if (!stopping) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!stopping_) {
        queue_.emplace(SteadyClock::now() + delay, delivery);
        scheduled = true;
      }
    }
    if (scheduled) {
      wake_.notify_one();
    } else {
      FinishCancelled(*delivery);
    }
    DoneWithAttempt();
  }

  // Exponential backoff with "equal jitter": half the step fixed, half
  // random, so receivers recovering from an outage are not hit in lockstep.
  milliseconds Backoff(const Delivery& delivery) {
    const WebhookRequest& request = delivery.request;
    const int64_t base = std::max<int64_t>(0, request.backoff_base.count());
    const int64_t cap = std::max<int64_t>(0, request.backoff_cap.count());
    int64_t step = base;
    for (int i = 1; i < delivery.attempts && step < cap; ++i) step *= 2;
    step = std::min(step, cap);
    if (step <= 1) return milliseconds(step);
    std::lock_guard<std::mutex> lock(mutex_);
    std::uniform_int_distribution<int64_t> jitter(0, step / 2);
    return milliseconds(step - step / 2 + jitter(random_));
  }

  static std::string FailureMessage(const Delivery& delivery) {
    return "webhook delivery " + delivery.request.delivery_id + " to " + delivery.host +
           " failed after " + std::to_string(delivery.attempts) +
           (delivery.attempts == 1 ? " attempt: " : " attempts: ") + delivery.last_failure;
  }

  void FinishCancelled(Delivery& delivery) {
    Finish(delivery,
           Status(StatusCode::kCancelled, "webhook delivery " + delivery.request.delivery_id +
                                              " to " + delivery.host + " was cancelled after " +
                                              std::to_string(delivery.attempts) +
                                              " attempt(s): the sender shut down"));
  }

  static void Finish(Delivery& delivery, Status status) {
    if (!delivery.done) return;
    auto done = std::move(delivery.done);
    delivery.done = nullptr;
    done(WebhookResult{std::move(status), delivery.last_status, delivery.attempts});
  }

  // Every completion ends here, after the delivery's `done` ran, so that
  // Shutdown() returns only when no callback can run any more.
  void DoneWithAttempt() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (--in_flight_ == 0) idle_.notify_all();
  }

  net::HttpClient* const http_;
  const Clock& clock_;
  std::mutex mutex_;
  std::condition_variable wake_;  // the timer thread
  std::condition_variable idle_;  // in_flight_ reached 0
  bool stopping_ = false;
  std::multimap<SteadyClock::time_point, std::shared_ptr<Delivery>> queue_;
  std::set<net::RequestId> in_flight_ids_;
  size_t in_flight_ = 0;
  std::mt19937_64 random_;
};

}  // namespace

std::string WebhookSignature(std::string_view secret, std::string_view timestamp,
                             std::string_view body) {
  std::string message;
  message.reserve(timestamp.size() + 1 + body.size());
  message.append(timestamp).append(".").append(body);
  return "sha256=" + HexEncode(DigestView(HmacSha256(secret, message)));
}

class WebhookSender::Impl {
 public:
  Impl(std::shared_ptr<net::HttpClient> http, const Clock& clock)
      : http_(std::move(http)), core_(std::make_shared<SenderCore>(http_.get(), clock)) {
    timer_ = std::thread([core = core_] { core->TimerLoop(); });
  }
  ~Impl() { core_->Shutdown(timer_); }

  const std::shared_ptr<net::HttpClient> http_;  // declared first: released last
  std::shared_ptr<SenderCore> core_;
  std::thread timer_;
};

WebhookSender::WebhookSender(std::shared_ptr<net::HttpClient> http, const Clock& clock)
    : impl_(std::make_unique<Impl>(std::move(http), clock)) {}

WebhookSender::~WebhookSender() = default;

Status WebhookSender::Send(WebhookRequest request, std::function<void(WebhookResult)> done) {
  QUARRY_RETURN_IF_ERROR(ValidateUrl(request.url));
  if (request.delivery_id.empty()) {
    return InvalidArgumentError(
        "a webhook delivery needs a delivery id (receivers use it to drop duplicates)");
  }
  auto delivery = std::make_shared<Delivery>();
  delivery->host = UrlHost(request.url);
  delivery->request = std::move(request);
  delivery->done = std::move(done);
  // The first attempt also starts on the timer thread, so `done` never runs
  // inside Send().
  impl_->core_->Schedule(std::move(delivery));
  return Status::Ok();
}

}  // namespace quarry::engine
