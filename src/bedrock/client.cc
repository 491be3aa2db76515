#include "bedrock/client.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <queue>
#include <thread>
#include <unordered_map>

#include "aws/arn.h"
#include "aws/bearer_token.h"
#include "aws/eventstream.h"
#include "aws/sigv4.h"
#include "common/crypto.h"
#include "common/encoding.h"

namespace quarry::bedrock {

using nlohmann::json;
using std::chrono::milliseconds;

namespace {

// Set by the blocking wrappers (Wait) on their own thread while they start a
// call: its first attempt may then wait for credentials there (see Start).
thread_local bool t_caller_may_block = false;

// Bodies of error responses are only parsed up to this size (aws_error.h
// parses at most 256 KiB anyway).
constexpr size_t kMaxErrorBodyBytes = 256 * 1024;

milliseconds Remaining(MonotonicTime deadline, MonotonicTime now) {
  if (deadline == MonotonicTime::max()) return milliseconds::max();
  if (now >= deadline) return milliseconds(0);
  return std::chrono::duration_cast<milliseconds>(deadline - now);
}

struct ParsedUrl {
  std::string scheme, host;
  int port = 0;
  std::string base;  // scheme://host[:port] (no trailing slash), plus any path prefix
  std::string path_prefix;
  std::string authority;  // host[:port] as written
};

Result<ParsedUrl> ParseEndpointUrl(std::string_view url) {
  ParsedUrl out;
  size_t sep = url.find("://");
  if (sep == std::string_view::npos) {
    return InvalidArgumentError("endpoint URL " + aws::internal::QuoteForMessage(url) +
                                " has no scheme; write it as http://host:port or https://host");
  }
  out.scheme = AsciiToLower(url.substr(0, sep));
  if (out.scheme != "http" && out.scheme != "https") {
    return InvalidArgumentError("endpoint URL scheme must be http or https, got " +
                                aws::internal::QuoteForMessage(out.scheme));
  }
  std::string_view rest = url.substr(sep + 3);
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (authority.empty()) return InvalidArgumentError("endpoint URL has no host: " + std::string(url));
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '?' || c == '#') {
      return InvalidArgumentError("endpoint URL " + aws::internal::QuoteForMessage(url) +
                                  " contains spaces, control characters, a query or a fragment");
    }
  }
  std::string_view host = authority;
  if (authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return InvalidArgumentError("endpoint URL has a bad IPv6 literal");
    host = authority.substr(0, close + 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return InvalidArgumentError("endpoint URL has a bad port");
      out.port = std::atoi(std::string(after.substr(1)).c_str());
    }
  } else if (size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    std::string port(authority.substr(colon + 1));
    if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return InvalidArgumentError("endpoint URL port '" + port + "' is not a number");
    }
    out.port = std::atoi(port.c_str());
    if (out.port <= 0 || out.port > 65535) return InvalidArgumentError("endpoint URL port out of range");
  }
  out.host = AsciiToLower(host);
  out.path_prefix = std::string(path);
  out.authority = std::string(authority);
  out.base = out.scheme + "://" + std::string(authority) + out.path_prefix;
  return out;
}

constexpr aws::AwsService kAllServices[] = {aws::AwsService::kBedrock, aws::AwsService::kBedrockRuntime,
                                            aws::AwsService::kBedrockAgent,
                                            aws::AwsService::kBedrockAgentRuntime, aws::AwsService::kSts};

std::string JsonString(const json& j, std::string_view key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

int64_t JsonInt(const json& j, std::string_view key) {
  if (!j.is_object()) return 0;
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return 0;
  return it->get<int64_t>();
}

const std::string* MessageHeaderString(const aws::Message& m, std::string_view name) {
  const aws::Header* h = m.FindHeader(name);
  if (h == nullptr) return nullptr;
  return &h->value.bytes_value();
}

}  // namespace

// ---------------------------------------------------------------------------
// Errors

std::string_view ErrorOriginName(ErrorOrigin origin) {
  switch (origin) {
    case ErrorOrigin::kClient: return "client";
    case ErrorOrigin::kTransport: return "transport";
    case ErrorOrigin::kService: return "service";
    case ErrorOrigin::kStream: return "stream";
    case ErrorOrigin::kCancelled: return "cancelled";
  }
  return "unknown";
}

std::string BedrockError::ToString() const {
  std::string out = aws.ToString();
  out += "; " + std::to_string(attempts) + (attempts == 1 ? " attempt" : " attempts");
  if (!give_up_reason.empty()) out += "; " + give_up_reason;
  return out;
}

json BedrockError::ToJson() const {
  json j{{"origin", std::string(ErrorOriginName(origin))},
         {"code", aws.code},
         {"http_status", aws.http_status},
         {"request_id", aws.request_id},
         {"message", aws.message},
         {"service", aws.service},
         {"in_stream", aws.in_stream},
         {"timeout", aws.timeout},
         {"retryable", retryable},
         {"retry_class", std::string(aws::RetryClassName(aws.retry_class))},
         {"attempts", attempts},
         {"give_up_reason", give_up_reason},
         {"status", status.ToString()},
         {"troubleshooting", troubleshooting.ToJson()}};
  return j;
}

// ---------------------------------------------------------------------------
// Content helpers

ContentBlock ContentBlock::Text(std::string text) {
  ContentBlock b;
  b.type = Type::kText;
  b.text = std::move(text);
  return b;
}
ContentBlock ContentBlock::ToolUse(std::string id, std::string name, json input) {
  ContentBlock b;
  b.type = Type::kToolUse;
  b.tool_use_id = std::move(id);
  b.tool_name = std::move(name);
  b.tool_input = std::move(input);
  return b;
}
ContentBlock ContentBlock::ToolResult(std::string tool_use_id, std::string text, bool is_error) {
  ContentBlock b;
  b.type = Type::kToolResult;
  b.tool_use_id = std::move(tool_use_id);
  b.text = std::move(text);
  b.is_error = is_error;
  return b;
}
ChatMessage ChatMessage::User(std::string text) {
  return ChatMessage{"user", {ContentBlock::Text(std::move(text))}};
}
ChatMessage ChatMessage::Assistant(std::string text) {
  return ChatMessage{"assistant", {ContentBlock::Text(std::move(text))}};
}
ReturnControlResult ReturnControlResult::ForFunction(const FunctionInvocation& invocation, std::string body,
                                                     std::string response_state) {
  ReturnControlResult r;
  r.action_group = invocation.action_group;
  r.function = invocation.function;
  r.response_body = std::move(body);
  r.response_state = std::move(response_state);
  r.agent_id = invocation.agent_id;
  return r;
}
ReturnControlResult ReturnControlResult::ForApi(const ApiInvocation& invocation, std::string body,
                                                int http_status_code, std::string response_state) {
  ReturnControlResult r;
  r.action_group = invocation.action_group;
  r.api_path = invocation.api_path;
  r.http_method = invocation.http_method;
  r.http_status_code = http_status_code;
  r.response_body = std::move(body);
  r.response_state = std::move(response_state);
  r.agent_id = invocation.agent_id;
  return r;
}
const ContentBlock* ModelResult::FirstToolUse() const {
  for (const auto& b : content) {
    if (b.type == ContentBlock::Type::kToolUse) return &b;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// The timer thread: retry delays and asynchronous completions of calls that
// never reached the network. One thread, a min-heap of due times.

namespace {

class TimerThread {
 public:
  TimerThread() : thread_([this] { Run(); }) {}
  ~TimerThread() { Stop(); }

  void Schedule(milliseconds delay, std::function<void()> task) {
    const auto due = std::chrono::steady_clock::now() + delay;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      queue_.push(Item{due, next_seq_++, std::move(task)});
    }
    cv_.notify_one();
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  struct Item {
    std::chrono::steady_clock::time_point due;
    uint64_t seq;
    std::function<void()> task;
    bool operator>(const Item& other) const {
      return due != other.due ? due > other.due : seq > other.seq;
    }
  };

  void Run() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      if (stopping_) return;
      if (queue_.empty()) {
        cv_.wait(lock);
        continue;
      }
      auto due = queue_.top().due;
      if (std::chrono::steady_clock::now() < due) {
        cv_.wait_until(lock, due);
        continue;
      }
      std::function<void()> task = std::move(const_cast<Item&>(queue_.top()).task);
      queue_.pop();
      lock.unlock();
      task();
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> queue_;
  uint64_t next_seq_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace

// ---------------------------------------------------------------------------
// Call state

// What one operation sends, and how its response is consumed.
struct Exchange {
  aws::AwsService service = aws::AwsService::kBedrockRuntime;
  std::string method = "POST";
  std::string path;   // already percent-encoded
  std::string query;  // already encoded, without '?'
  std::vector<std::pair<std::string, std::string>> headers;  // content-type etc.
  std::string body;
  bool stream = false;
  bool sts = false;
  bool sigv4_only = false;
  std::optional<aws::Credentials> credentials_override;
  CallContext context;
  CallOptions options;
};

struct RawResponse {
  int status = 0;
  net::HttpHeaders headers;
  std::string body;  // buffered calls
  std::string request_id;
  int attempts = 0;
};

class CallState : public std::enable_shared_from_this<CallState> {
 public:
  // Stream events: return an error to end the attempt (an exception event, a
  // payload that cannot be parsed).
  std::function<std::optional<BedrockError>(const aws::Message&)> on_event;
  // Called before each attempt of a stream (resets accumulators).
  std::function<void()> on_attempt_start;
  // Exactly one of these runs, once.
  std::function<void(RawResponse)> on_success;
  std::function<void(BedrockError)> on_failure;

  void Cancel();
  bool done() const { return completed_.load(); }

  // Internal state, guarded by mutex_ unless noted.
  BedrockClient::Impl* impl = nullptr;
  Exchange exchange;
  uint64_t registry_id = 0;
  std::mutex mutex_;
  bool cancelled = false;
  std::optional<net::RequestId> in_flight;
  std::shared_ptr<CallState> child;  // composite calls (catalogue)
  aws::RetryToken token;
  int max_attempts = 1;
  MonotonicTime deadline = MonotonicTime::max();
  std::string invocation_id;
  // Per attempt (loop thread only).
  std::unique_ptr<aws::EventStreamDecoder> decoder;
  int http_status = 0;
  std::string error_body;
  std::optional<BedrockError> attempt_error;
  bool events_delivered = false;  // sticky across attempts

  // Claims the right to complete. True once.
  bool Claim() { return !completed_.exchange(true); }

 private:
  std::atomic<bool> completed_{false};
};

void CallHandle::Cancel() const {
  if (state_) state_->Cancel();
}
bool CallHandle::done() const { return state_ ? state_->done() : true; }

// ---------------------------------------------------------------------------
// Impl

class BedrockClient::Impl {
 public:
  explicit Impl(BedrockClientOptions options, aws::Region region)
      : options_(std::move(options)),
        region_(std::move(region)),
        clock_(options_.clock != nullptr ? *options_.clock : SystemClock::Get()),
        quota_(options_.retry_quota ? options_.retry_quota : std::make_shared<aws::RetryQuota>()),
        strategy_(options_.retry, quota_, clock_,
                  options_.random ? options_.random : aws::DefaultRandomSource()) {}

  ~Impl() {
    std::vector<std::shared_ptr<CallState>> live;
    {
      std::lock_guard<std::mutex> lock(registry_mutex_);
      shutting_down_ = true;
      for (auto& [id, weak] : registry_) {
        if (auto s = weak.lock()) live.push_back(std::move(s));
      }
    }
    for (auto& s : live) s->Cancel();
    live.clear();
    {
      std::unique_lock<std::mutex> lock(registry_mutex_);
      registry_cv_.wait(lock, [this] { return live_calls_ == 0; });
    }
    timer_.Stop();
  }

  Status Init() {
    if (options_.retry.max_attempts < 1) {
      return InvalidArgumentError("retry.max_attempts must be at least 1 (the first attempt counts)");
    }
    for (aws::AwsService service : kAllServices) {
      std::string url;
      if (auto it = options_.service_endpoints.find(service); it != options_.service_endpoints.end()) {
        url = it->second;
      } else if (!options_.endpoint_url.empty()) {
        url = options_.endpoint_url;
      } else {
        auto host = aws::EndpointHost(service, region_,
                                      {.use_fips = options_.use_fips, .use_dual_stack = options_.use_dual_stack});
        if (!host.ok()) return host.status();
        url = "https://" + host.value();
      }
      auto parsed = ParseEndpointUrl(url);
      if (!parsed.ok()) return parsed.status();
      endpoints_[service] = std::move(parsed).value();
    }
    if (options_.bearer_token.has_value()) {
      auto token = aws::BearerToken::Create(*options_.bearer_token, "explicit");
      if (!token.ok()) return token.status();
      bearer_ = std::move(token).value();
    }
    if (!options_.http_client) {
      auto http = net::HttpClient::Create({.ca_bundle = options_.ca_bundle});
      if (!http.ok()) return http.status();
      options_.http_client = std::shared_ptr<net::HttpClient>(std::move(http).value());
    }
    return Status::Ok();
  }

  std::string EndpointUrl(aws::AwsService service) const { return endpoints_.at(service).base; }

  // Starts a call chain; callbacks set on `state` by the caller.
  void Start(const std::shared_ptr<CallState>& state) {
    state->impl = this;
    const Exchange& ex = state->exchange;
    state->max_attempts = ex.options.max_attempts.value_or(options_.retry.max_attempts);
    if (state->max_attempts < 1) state->max_attempts = 1;
    const milliseconds overall = ex.options.overall_deadline.value_or(options_.deadlines.overall_deadline);
    state->deadline = clock_.MonotonicNow() + overall;
    state->token = strategy_.AcquireInitialToken(state->deadline);
    state->invocation_id = RandomUuid();
    {
      std::lock_guard<std::mutex> lock(registry_mutex_);
      if (shutting_down_) {
        state->cancelled = true;
      }
      state->registry_id = ++next_registry_id_;
      registry_[state->registry_id] = state;
      ++live_calls_;
    }
    // The first attempt is built, signed and sent on the caller's thread. A
    // blocking wrapper's caller is about to block anyway and is never a
    // callback (documented), so it may wait for credentials. An asynchronous
    // caller may be a callback on the HTTP loop thread, which must never
    // block: its attempt goes on only with credentials at hand, and moves to
    // the timer thread when getting them could block (a refresh through STS).
    // Either way no thread hop per call, and completions never run inside
    // this call (a failure before sending goes through FailAsync).
    Attempt(state, t_caller_may_block ? MayBlock::kYes : MayBlock::kNo);
  }

  // Whether the thread running an attempt may wait for credentials.
  enum class MayBlock { kNo, kYes };

  // Builds, signs and sends one attempt. Runs on the caller's thread (first
  // attempt) or the timer thread (retries, and first attempts whose
  // credentials were not at hand).
  void Attempt(const std::shared_ptr<CallState>& state, MayBlock may_block) {
    Exchange& ex = state->exchange;
    if (IsCancelled(state)) {
      FailAsync(state, CancelledError(state));
      return;
    }
    // Authentication.
    aws::ConfiguredAuth configured{.bearer_token = bearer_.has_value() && !ex.sigv4_only && !ex.sts,
                                   .sigv4_credentials = options_.credentials != nullptr ||
                                                        ex.credentials_override.has_value()};
    auto scheme = aws::SelectAuthScheme(ex.service, configured);
    if (!scheme.ok()) {
      FailAsync(state, ClientError(state, scheme.status()));
      return;
    }
    const ParsedUrl& endpoint = endpoints_.at(ex.service);
    aws::HttpRequest req;
    req.method = ex.method;
    req.path = endpoint.path_prefix + ex.path;
    req.query = ex.query;
    req.body = ex.body;
    req.headers.push_back({"Host", aws::HostHeaderValue(endpoint.scheme, endpoint.host, endpoint.port)});
    for (const auto& [name, value] : ex.headers) req.headers.push_back({name, value});
    if (scheme.value() == aws::AuthScheme::kBearer) {
      req.headers.push_back({"Authorization", "Bearer " + bearer_->token()});
    } else {
      std::optional<aws::Credentials> at_hand = ex.credentials_override;
      if (!at_hand.has_value() && may_block == MayBlock::kNo) {
        at_hand = options_.credentials->CredentialsWithoutWaiting();
        if (!at_hand.has_value()) {
          timer_.Schedule(milliseconds(0), [this, state] { Attempt(state, MayBlock::kYes); });
          return;
        }
      }
      Result<aws::Credentials> creds = at_hand.has_value() ? Result<aws::Credentials>(std::move(*at_hand))
                                                           : options_.credentials->GetCredentials();
      if (!creds.ok()) {
        FailAsync(state, ClientError(state, creds.status().WithContext("cannot get AWS credentials")));
        return;
      }
      aws::SigningParams params;
      params.credentials = &creds.value();
      params.region = region_.name();
      params.service = aws::ServiceSigningName(ex.service);
      params.time = clock_.Now();
      Status signed_status = aws::SignRequest(params, req);
      if (!signed_status.ok()) {
        FailAsync(state, ClientError(state, signed_status));
        return;
      }
    }
    // Added after signing, as botocore does (they change every attempt).
    req.headers.push_back({"amz-sdk-invocation-id", state->invocation_id});
    req.headers.push_back({"amz-sdk-request", "attempt=" + std::to_string(state->token.attempt) +
                                                  "; max=" + std::to_string(state->max_attempts)});

    net::HttpClientRequest http;
    http.method = req.method;
    http.url = endpoint.scheme + "://" + endpoint.authority + req.path + (req.query.empty() ? "" : "?" + req.query);
    for (auto& h : req.headers) http.headers.emplace_back(std::move(h.name), std::move(h.value));
    http.body = std::move(req.body);
    const milliseconds remaining = Remaining(state->deadline, clock_.MonotonicNow());
    if (remaining <= milliseconds(0)) {
      BedrockError e = MakeError(state, ErrorOrigin::kTransport,
                                 aws::MakeConnectionError(aws::ServiceEndpointPrefix(ex.service),
                                                          "the overall deadline passed before the attempt", true));
      e.give_up_reason = "overall deadline reached";
      FailAsync(state, std::move(e));
      return;
    }
    const milliseconds attempt_timeout = ex.options.attempt_timeout.value_or(options_.deadlines.attempt_timeout);
    http.connect_timeout = std::min(ex.options.connect_timeout.value_or(options_.deadlines.connect_timeout), remaining);
    http.request_timeout = std::min(attempt_timeout, remaining);
    http.idle_timeout = ex.options.idle_timeout.value_or(options_.deadlines.idle_timeout);
    // Streams too: a reply over the cap is not a chat reply.
    http.max_response_bytes = options_.max_response_bytes;

    // Per-attempt state (the loop thread owns it once the request starts).
    state->http_status = 0;
    state->error_body.clear();
    state->attempt_error.reset();
    if (ex.stream) {
      aws::EventStreamDecoderOptions dopts;
      dopts.max_message_size = std::max<size_t>(options_.max_stream_buffer_bytes, 1024);
      state->decoder = std::make_unique<aws::EventStreamDecoder>(dopts);
      if (state->on_attempt_start) state->on_attempt_start();
    }

    net::HttpCallbacks callbacks;
    callbacks.on_headers = [state](int status, const net::HttpHeaders&) { state->http_status = status; };
    if (ex.stream) {
      callbacks.on_data = [state](std::string_view bytes) { return OnStreamData(*state, bytes); };
    }
    callbacks.on_complete = [this, state](net::HttpClientResponse response) {
      OnAttemptComplete(state, std::move(response));
    };
    std::lock_guard<std::mutex> lock(state->mutex_);
    if (state->cancelled) {
      FailAsync(state, CancelledError(state));
      return;
    }
    auto id = options_.http_client->Start(std::move(http), std::move(callbacks));
    if (!id.ok()) {
      FailAsync(state, ClientError(state, id.status()));
      return;
    }
    state->in_flight = id.value();
  }

  static bool OnStreamData(CallState& state, std::string_view bytes) {
    if (state.http_status < 200 || state.http_status >= 300) {
      // An error response on a streaming operation: keep (a bounded prefix of) the body.
      size_t room = kMaxErrorBodyBytes - std::min(kMaxErrorBodyBytes, state.error_body.size());
      state.error_body.append(bytes.substr(0, room));
      return true;
    }
    std::vector<aws::Message> messages;
    Status fed = state.decoder->Feed(bytes, &messages);
    for (const aws::Message& m : messages) {
      if (auto err = HandleMessage(state, m)) {
        state.attempt_error = std::move(err);
        return false;
      }
    }
    if (!fed.ok()) {
      state.attempt_error = IsFrameOverLimit(*state.decoder) ? FrameTooLargeError(state)
                                                             : CorruptStreamError(state, fed);
      return false;
    }
    return true;
  }

  // The decoder refused a frame only because its declared length is above
  // max_message_size (its prelude checksum was good): the stream is sound, the
  // event is just bigger than this client accepts.
  static bool IsFrameOverLimit(const aws::EventStreamDecoder& decoder) {
    const auto& error = decoder.error();
    return error && error->kind == aws::EventStreamErrorKind::kMessageTooLarge;
  }

  static BedrockError FrameTooLargeError(CallState& state) {
    aws::AwsError e;
    e.code = "ResponseTooLarge";
    e.http_status = state.http_status;
    e.service = std::string(aws::ServiceEndpointPrefix(state.exchange.service));
    const size_t limit = std::max<size_t>(state.impl->options_.max_stream_buffer_bytes, 1024);
    const std::string& detail = state.decoder->error()->message;
    e.message = "an event in the response stream is larger than max_stream_buffer_bytes (" + std::to_string(limit) +
                " bytes), so it was not read (" + detail + ")";
    if (state.exchange.context.operation == "InvokeAgent") {
      e.message += "; an InvokeAgent `files` event (code interpreter output) carries up to five files of up to "
                   "1,000,000 bytes each, about 6.7 MB of JSON: raise max_stream_buffer_bytes if the agent "
                   "produces files that large";
    } else {
      e.message += "; raise max_stream_buffer_bytes if events that large are expected";
    }
    e.retry_class = aws::RetryClass::kNotRetryable;
    BedrockError be = state.impl->MakeError(state.shared_from_this(), ErrorOrigin::kTransport, std::move(e));
    be.status = ResourceExhaustedError(be.aws.ToString());
    return be;
  }

  static std::optional<BedrockError> HandleMessage(CallState& state, const aws::Message& m) {
    const std::string service(aws::ServiceEndpointPrefix(state.exchange.service));
    const std::string* type = MessageHeaderString(m, ":message-type");
    if (type != nullptr && *type == "exception") {
      const std::string* ex = MessageHeaderString(m, ":exception-type");
      aws::AwsError e = aws::ParseStreamException(service, ex ? *ex : "unknownException", m.payload);
      return state.impl->MakeError(state.shared_from_this(), ErrorOrigin::kStream, std::move(e));
    }
    if (type != nullptr && *type == "error") {
      const std::string* code = MessageHeaderString(m, ":error-code");
      const std::string* msg = MessageHeaderString(m, ":error-message");
      aws::AwsError e = aws::ParseStreamException(service, code ? *code : "UnknownError",
                                                  json{{"message", msg ? *msg : ""}}.dump());
      return state.impl->MakeError(state.shared_from_this(), ErrorOrigin::kStream, std::move(e));
    }
    state.events_delivered = true;
    if (state.on_event) return state.on_event(m);
    return std::nullopt;
  }

  static BedrockError CorruptStreamError(CallState& state, const Status& status) {
    aws::AwsError e;
    e.code = "CorruptEventStream";
    e.http_status = state.http_status;
    e.service = std::string(aws::ServiceEndpointPrefix(state.exchange.service));
    e.message = "the response event stream is corrupt (" + status.message() +
                "); the response cannot be trusted, so the call is not retried";
    e.retry_class = aws::RetryClass::kNotRetryable;
    BedrockError be = state.impl->MakeError(state.shared_from_this(), ErrorOrigin::kTransport, std::move(e));
    be.status = DataLossError(be.aws.ToString());
    return be;
  }

  void OnAttemptComplete(const std::shared_ptr<CallState>& state, net::HttpClientResponse response) {
    {
      std::lock_guard<std::mutex> lock(state->mutex_);
      state->in_flight.reset();
    }
    const Exchange& ex = state->exchange;
    const std::string service(aws::ServiceEndpointPrefix(ex.service));
    std::optional<BedrockError> error;
    if (state->attempt_error) {
      error = std::move(state->attempt_error);
    } else if (response.outcome == net::TransportOutcome::kCancelled && IsCancelled(state)) {
      Fail(state, CancelledError(state));
      return;
    } else if (response.outcome != net::TransportOutcome::kOk) {
      const bool timeout = response.outcome == net::TransportOutcome::kConnectTimeout ||
                           response.outcome == net::TransportOutcome::kRequestTimeout ||
                           response.outcome == net::TransportOutcome::kIdleTimeout;
      std::string detail = std::string(net::TransportOutcomeName(response.outcome)) + ": " + response.error;
      if (response.outcome == net::TransportOutcome::kIdleTimeout) {
        detail = "no bytes received for " +
                 std::to_string(ex.options.idle_timeout.value_or(options_.deadlines.idle_timeout).count()) +
                 " ms (idle timeout); the connection or stream stalled (" + response.error + ")";
      }
      aws::AwsError e = aws::MakeConnectionError(service, detail, timeout);
      if (response.outcome == net::TransportOutcome::kResponseTooLarge) {
        e.code = "ResponseTooLarge";
        e.retry_class = aws::RetryClass::kNotRetryable;
        e.message = "the response is larger than max_response_bytes (" +
                    std::to_string(options_.max_response_bytes) + "); raise the limit if this is expected";
      }
      if (const std::string* rid = response.FindHeader("x-amzn-RequestId")) e.request_id = *rid;
      error = MakeError(state, ErrorOrigin::kTransport, std::move(e));
    } else if (response.status < 200 || response.status >= 300) {
      aws::HeaderList headers(response.headers.begin(), response.headers.end());
      std::string_view body = ex.stream ? std::string_view(state->error_body) : std::string_view(response.body);
      aws::AwsError e = ex.sts ? aws::ParseStsXmlError(response.status, headers, body)
                               : aws::ParseRestJsonError(service, response.status, headers, body);
      error = MakeError(state, ErrorOrigin::kService, std::move(e));
    } else if (ex.stream) {
      Status finished = state->decoder->Finish();
      if (!finished.ok()) {
        // A stream cut off mid-frame: the transport broke (retryable if
        // nothing reached the caller yet).
        aws::AwsError e = aws::MakeConnectionError(
            service, "the event stream ended in the middle of a message (" + finished.message() + ")", false);
        error = MakeError(state, ErrorOrigin::kTransport, std::move(e));
      }
    }
    if (!error) {
      strategy_.RecordSuccess(state->token);
      RawResponse raw;
      raw.status = response.status;
      raw.headers = std::move(response.headers);
      raw.body = std::move(response.body);
      raw.attempts = state->token.attempt;
      for (const auto& [name, value] : raw.headers) {
        if (EqualsIgnoreAsciiCase(name, "x-amzn-RequestId")) raw.request_id = value;
      }
      if (state->Claim()) {
        state->on_success(std::move(raw));
        Unregister(state);
      }
      return;
    }
    if (error->aws.request_id.empty()) {
      if (const std::string* rid = response.FindHeader("x-amzn-RequestId")) error->aws.request_id = *rid;
    }
    // Retry?
    aws::AttemptOutcome outcome{.error = error->aws, .stream_events_delivered = state->events_delivered};
    const int attempts_made = state->token.attempt;
    Result<milliseconds> delay = milliseconds(0);
    if (attempts_made >= state->max_attempts) {
      delay = error->status;
      error->give_up_reason = error->retryable ? "gave up after " + std::to_string(attempts_made) +
                                                     " attempts (the configured maximum)"
                                               : "not retryable";
    } else {
      delay = strategy_.RefreshTokenForRetry(state->token, outcome);
      if (!delay.ok()) error->give_up_reason = delay.status().message();
    }
    if (!delay.ok()) {
      error->attempts = attempts_made;
      Fail(state, std::move(*error));
      return;
    }
    // A retry would follow, but the caller cancelled meanwhile (while this
    // attempt's answer was on its way): the call ends as cancelled, as it
    // would have during the retry delay.
    if (IsCancelled(state)) {
      Fail(state, CancelledError(state));
      return;
    }
    timer_.Schedule(delay.value(), [this, state] { Attempt(state, MayBlock::kYes); });
  }

  bool IsCancelled(const std::shared_ptr<CallState>& state) {
    std::lock_guard<std::mutex> lock(state->mutex_);
    return state->cancelled;
  }

  BedrockError MakeError(const std::shared_ptr<CallState>& state, ErrorOrigin origin, aws::AwsError aws_error) {
    BedrockError e;
    e.origin = origin;
    if (aws_error.service.empty()) aws_error.service = std::string(aws::ServiceEndpointPrefix(state->exchange.service));
    e.aws = std::move(aws_error);
    e.retryable = e.aws.retry_class != aws::RetryClass::kNotRetryable;
    e.attempts = state->token.attempt;
    e.status = e.aws.ToStatus();
    CallContext ctx = state->exchange.context;
    ctx.region = region_.name();
    ctx.endpoint_url = EndpointUrl(state->exchange.service);
    ctx.used_bearer_token = bearer_.has_value() && !state->exchange.sigv4_only && !state->exchange.sts &&
                            aws::AcceptsBearerToken(state->exchange.service);
    e.troubleshooting = Troubleshoot(e.aws, ctx);
    return e;
  }

  BedrockError ClientError(const std::shared_ptr<CallState>& state, const Status& status) {
    aws::AwsError a;
    a.code = "ClientError";
    a.message = status.message();
    a.retry_class = aws::RetryClass::kNotRetryable;
    BedrockError e = MakeError(state, ErrorOrigin::kClient, std::move(a));
    e.status = status;
    e.attempts = state->token.attempt - 1;
    e.give_up_reason = "not sent";
    return e;
  }

  BedrockError CancelledError(const std::shared_ptr<CallState>& state) {
    aws::AwsError a;
    a.code = "Cancelled";
    a.message = "the call was cancelled by the caller (or the client shut down)";
    BedrockError e = MakeError(state, ErrorOrigin::kCancelled, std::move(a));
    e.status = Status(StatusCode::kCancelled, e.aws.message);
    e.give_up_reason = "cancelled";
    return e;
  }

  // Completes with an error on the timer thread (so never inside the caller's call).
  void FailAsync(const std::shared_ptr<CallState>& state, BedrockError error) {
    timer_.Schedule(milliseconds(0), [this, state, e = std::move(error)]() mutable { Fail(state, std::move(e)); });
  }

  void Fail(const std::shared_ptr<CallState>& state, BedrockError error) {
    if (state->Claim()) {
      state->on_failure(std::move(error));
      Unregister(state);
    }
  }

  void Unregister(const std::shared_ptr<CallState>& state) {
    std::lock_guard<std::mutex> lock(registry_mutex_);
    if (registry_.erase(state->registry_id) > 0) {
      --live_calls_;
      if (live_calls_ == 0) registry_cv_.notify_all();
    }
  }

  // Composite calls (the catalogue) are registered too, so shutdown waits.
  void RegisterComposite(const std::shared_ptr<CallState>& state) {
    state->impl = this;
    std::lock_guard<std::mutex> lock(registry_mutex_);
    if (shutting_down_) state->cancelled = true;
    state->registry_id = ++next_registry_id_;
    registry_[state->registry_id] = state;
    ++live_calls_;
  }

  BedrockClientOptions options_;
  aws::Region region_;
  const Clock& clock_;
  std::shared_ptr<aws::RetryQuota> quota_;
  aws::RetryStrategy strategy_;
  std::map<aws::AwsService, ParsedUrl> endpoints_;
  std::optional<aws::BearerToken> bearer_;

  std::mutex registry_mutex_;
  std::condition_variable registry_cv_;
  std::unordered_map<uint64_t, std::weak_ptr<CallState>> registry_;
  uint64_t next_registry_id_ = 0;
  size_t live_calls_ = 0;
  bool shutting_down_ = false;

  TimerThread timer_;  // last: stopped explicitly in the destructor
};

void CallState::Cancel() {
  std::optional<net::RequestId> id;
  std::shared_ptr<CallState> kid;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (cancelled) return;
    cancelled = true;
    id = in_flight;
    kid = child;
  }
  if (kid) kid->Cancel();
  if (done() || impl == nullptr) return;
  if (id.has_value()) {
    impl->options_.http_client->Cancel(*id);
  } else if (!kid) {
    // Waiting for a retry timer (or not started): complete now.
    auto self = shared_from_this();
    impl->FailAsync(self, impl->CancelledError(self));
  }
}


// ---------------------------------------------------------------------------
// Launching typed calls

namespace {

using EventHandler = std::function<std::optional<BedrockError>(const aws::Message&, CallState&)>;

template <typename T>
using Parser = std::function<BedrockResult<T>(RawResponse&, CallState&)>;

// Creates the state of a call; starts it unless `precheck` failed (then it
// completes with that client error, asynchronously).
template <typename T>
std::shared_ptr<CallState> Launch(BedrockClient::Impl& impl, Exchange ex, Parser<T> parse, Completion<T> done,
                                  EventHandler on_event = {}, std::function<void()> on_attempt_start = {},
                                  Status precheck = Status::Ok(), bool start = true) {
  auto state = std::make_shared<CallState>();
  state->exchange = std::move(ex);
  CallState* sp = state.get();
  state->on_success = [parse = std::move(parse), done, sp](RawResponse raw) { done(parse(raw, *sp)); };
  state->on_failure = [done](BedrockError e) { done(BedrockResult<T>(std::move(e))); };
  if (on_event) state->on_event = [on_event = std::move(on_event), sp](const aws::Message& m) { return on_event(m, *sp); };
  state->on_attempt_start = std::move(on_attempt_start);
  if (!precheck.ok()) {
    impl.RegisterComposite(state);
    impl.FailAsync(state, impl.ClientError(state, precheck));
    return state;
  }
  if (start) impl.Start(state);
  return state;
}

BedrockError ResponseShapeError(CallState& state, std::string what) {
  aws::AwsError e;
  e.code = "InvalidResponse";
  e.http_status = state.http_status;
  e.message = "the response could not be understood: " + what;
  e.retry_class = aws::RetryClass::kNotRetryable;
  BedrockError be = state.impl->MakeError(state.shared_from_this(), ErrorOrigin::kTransport, std::move(e));
  be.status = InternalError(be.aws.ToString());
  return be;
}

Result<json> ParseJsonBody(std::string_view body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return InvalidArgumentError("the body is not JSON");
  return j;
}

// --- Claude messages body ---------------------------------------------------

json ClaudeContent(const ContentBlock& b) {
  switch (b.type) {
    case ContentBlock::Type::kText:
      return json{{"type", "text"}, {"text", b.text}};
    case ContentBlock::Type::kToolUse:
      return json{{"type", "tool_use"}, {"id", b.tool_use_id}, {"name", b.tool_name},
                  {"input", b.tool_input.is_null() ? json::object() : b.tool_input}};
    case ContentBlock::Type::kToolResult: {
      json r{{"type", "tool_result"}, {"tool_use_id", b.tool_use_id},
             {"content", json::array({json{{"type", "text"}, {"text", b.text}}})}};
      if (b.is_error) r["is_error"] = true;
      return r;
    }
  }
  return json::object();
}

json ClaudeBody(const ModelRequest& r) {
  json body{{"anthropic_version", "bedrock-2023-05-31"}, {"max_tokens", r.max_tokens}};
  json messages = json::array();
  for (const auto& m : r.messages) {
    json content = json::array();
    for (const auto& b : m.content) content.push_back(ClaudeContent(b));
    messages.push_back(json{{"role", m.role}, {"content", std::move(content)}});
  }
  body["messages"] = std::move(messages);
  if (!r.system.empty()) body["system"] = r.system;
  if (r.temperature) body["temperature"] = *r.temperature;
  if (r.top_p) body["top_p"] = *r.top_p;
  if (r.top_k) body["top_k"] = *r.top_k;
  if (!r.stop_sequences.empty()) body["stop_sequences"] = r.stop_sequences;
  if (!r.tools.empty()) {
    json tools = json::array();
    for (const auto& t : r.tools) {
      json tool{{"name", t.name}, {"input_schema", t.input_schema}};
      if (!t.description.empty()) tool["description"] = t.description;
      tools.push_back(std::move(tool));
    }
    body["tools"] = std::move(tools);
  }
  if (r.tool_choice) {
    switch (r.tool_choice->kind) {
      case ToolChoice::Kind::kAuto: body["tool_choice"] = {{"type", "auto"}}; break;
      case ToolChoice::Kind::kAny: body["tool_choice"] = {{"type", "any"}}; break;
      case ToolChoice::Kind::kTool: body["tool_choice"] = {{"type", "tool"}, {"name", r.tool_choice->name}}; break;
    }
  }
  return body;
}

// --- Converse body -----------------------------------------------------------

json ConverseBody(const ModelRequest& r) {
  json body;
  json messages = json::array();
  for (const auto& m : r.messages) {
    json content = json::array();
    for (const auto& b : m.content) {
      switch (b.type) {
        case ContentBlock::Type::kText: content.push_back({{"text", b.text}}); break;
        case ContentBlock::Type::kToolUse:
          content.push_back({{"toolUse",
                              {{"toolUseId", b.tool_use_id}, {"name", b.tool_name},
                               {"input", b.tool_input.is_null() ? json::object() : b.tool_input}}}});
          break;
        case ContentBlock::Type::kToolResult:
          content.push_back({{"toolResult",
                              {{"toolUseId", b.tool_use_id},
                               {"content", json::array({json{{"text", b.text}}})},
                               {"status", b.is_error ? "error" : "success"}}}});
          break;
      }
    }
    messages.push_back(json{{"role", m.role}, {"content", std::move(content)}});
  }
  body["messages"] = std::move(messages);
  if (!r.system.empty()) body["system"] = json::array({json{{"text", r.system}}});
  json inference{{"maxTokens", r.max_tokens}};
  if (r.temperature) inference["temperature"] = *r.temperature;
  if (r.top_p) inference["topP"] = *r.top_p;
  if (!r.stop_sequences.empty()) inference["stopSequences"] = r.stop_sequences;
  body["inferenceConfig"] = std::move(inference);
  if (r.top_k) body["additionalModelRequestFields"] = {{"top_k", *r.top_k}};
  if (!r.tools.empty()) {
    json tools = json::array();
    for (const auto& t : r.tools) {
      json spec{{"name", t.name}, {"inputSchema", {{"json", t.input_schema}}}};
      if (!t.description.empty()) spec["description"] = t.description;
      tools.push_back({{"toolSpec", std::move(spec)}});
    }
    json config{{"tools", std::move(tools)}};
    if (r.tool_choice) {
      switch (r.tool_choice->kind) {
        case ToolChoice::Kind::kAuto: config["toolChoice"] = {{"auto", json::object()}}; break;
        case ToolChoice::Kind::kAny: config["toolChoice"] = {{"any", json::object()}}; break;
        case ToolChoice::Kind::kTool: config["toolChoice"] = {{"tool", {{"name", r.tool_choice->name}}}}; break;
      }
    }
    body["toolConfig"] = std::move(config);
  }
  return body;
}

Status CheckModelRequest(const ModelRequest& r) {
  if (r.model_id.empty()) {
    return InvalidArgumentError("model_id is empty; pass a model id (anthropic.claude-3-haiku-20240307-v1:0) or an "
                                "inference profile id or ARN");
  }
  if (r.messages.empty()) return InvalidArgumentError("messages is empty; add at least one user message");
  if (r.max_tokens < 1) return InvalidArgumentError("max_tokens must be at least 1");
  return Status::Ok();
}

void FinishText(ModelResult& r) {
  r.text.clear();
  for (const auto& b : r.content) {
    if (b.type == ContentBlock::Type::kText) r.text += b.text;
  }
}

Result<ModelResult> ParseClaudeResponse(const json& j) {
  if (!j.is_object() || !j.contains("content") || !j["content"].is_array()) {
    return InvalidArgumentError("the InvokeModel body has no content array");
  }
  ModelResult r;
  for (const auto& c : j["content"]) {
    std::string type = JsonString(c, "type");
    if (type == "text") {
      r.content.push_back(ContentBlock::Text(JsonString(c, "text")));
    } else if (type == "tool_use") {
      r.content.push_back(ContentBlock::ToolUse(JsonString(c, "id"), JsonString(c, "name"),
                                                c.contains("input") ? c["input"] : json::object()));
    }
  }
  r.stop_reason = JsonString(j, "stop_reason");
  r.stop_sequence = JsonString(j, "stop_sequence");
  r.model = JsonString(j, "model");
  if (j.contains("usage")) {
    r.usage.input_tokens = JsonInt(j["usage"], "input_tokens");
    r.usage.output_tokens = JsonInt(j["usage"], "output_tokens");
  }
  FinishText(r);
  return r;
}

Result<ModelResult> ParseConverseResponse(const json& j) {
  const json* content = nullptr;
  if (j.is_object() && j.contains("output") && j["output"].is_object() && j["output"].contains("message") &&
      j["output"]["message"].is_object() && j["output"]["message"].contains("content") &&
      j["output"]["message"]["content"].is_array()) {
    content = &j["output"]["message"]["content"];
  }
  if (content == nullptr) return InvalidArgumentError("the Converse body has no output.message.content");
  ModelResult r;
  for (const auto& c : *content) {
    if (c.contains("text") && c["text"].is_string()) {
      r.content.push_back(ContentBlock::Text(c["text"].get<std::string>()));
    } else if (c.contains("toolUse") && c["toolUse"].is_object()) {
      const json& t = c["toolUse"];
      r.content.push_back(ContentBlock::ToolUse(JsonString(t, "toolUseId"), JsonString(t, "name"),
                                                t.contains("input") ? t["input"] : json::object()));
    }
  }
  r.stop_reason = JsonString(j, "stopReason");
  if (j.contains("usage")) {
    r.usage.input_tokens = JsonInt(j["usage"], "inputTokens");
    r.usage.output_tokens = JsonInt(j["usage"], "outputTokens");
  }
  FinishText(r);
  return r;
}

// Accumulates a streamed reply (either dialect) into a ModelResult.
struct StreamAccumulator {
  ModelResult result;
  std::vector<std::string> tool_json;  // per block index
  DeltaCallback on_delta;
  static constexpr size_t kMaxBlocks = 1024;

  void Reset() {
    result = ModelResult{};
    tool_json.clear();
  }

  std::optional<std::string> Block(int64_t index, ContentBlock** out) {
    if (index < 0 || index >= static_cast<int64_t>(kMaxBlocks)) return "content block index out of range";
    if (static_cast<size_t>(index) >= result.content.size()) {
      result.content.resize(index + 1);
      tool_json.resize(index + 1);
    }
    *out = &result.content[index];
    return std::nullopt;
  }

  std::optional<std::string> Anthropic(const json& ev) {
    const std::string type = JsonString(ev, "type");
    ContentBlock* block = nullptr;
    if (type == "message_start") {
      const json& m = ev.contains("message") ? ev["message"] : json::object();
      result.model = JsonString(m, "model");
      if (m.is_object() && m.contains("usage")) result.usage.input_tokens = JsonInt(m["usage"], "input_tokens");
    } else if (type == "content_block_start") {
      if (auto e = Block(JsonInt(ev, "index"), &block)) return e;
      const json& cb = ev.contains("content_block") ? ev["content_block"] : json::object();
      if (JsonString(cb, "type") == "tool_use") {
        *block = ContentBlock::ToolUse(JsonString(cb, "id"), JsonString(cb, "name"), json::object());
      } else {
        *block = ContentBlock::Text(JsonString(cb, "text"));
      }
    } else if (type == "content_block_delta") {
      const int64_t index = JsonInt(ev, "index");
      if (auto e = Block(index, &block)) return e;
      const json& d = ev.contains("delta") ? ev["delta"] : json::object();
      StreamDelta delta;
      delta.index = static_cast<int>(index);
      if (JsonString(d, "type") == "input_json_delta") {
        delta.kind = StreamDelta::Kind::kToolInput;
        delta.text = JsonString(d, "partial_json");
        tool_json[index] += delta.text;
        delta.tool_use_id = block->tool_use_id;
        delta.tool_name = block->tool_name;
      } else {
        delta.text = JsonString(d, "text");
        block->text += delta.text;
      }
      if (on_delta) on_delta(delta);
    } else if (type == "message_delta") {
      const json& d = ev.contains("delta") ? ev["delta"] : json::object();
      result.stop_reason = JsonString(d, "stop_reason");
      result.stop_sequence = JsonString(d, "stop_sequence");
      if (ev.contains("usage")) result.usage.output_tokens = JsonInt(ev["usage"], "output_tokens");
    } else if (type == "message_stop") {
      if (ev.contains("amazon-bedrock-invocationMetrics")) {
        const json& m = ev["amazon-bedrock-invocationMetrics"];
        if (result.usage.input_tokens == 0) result.usage.input_tokens = JsonInt(m, "inputTokenCount");
        if (result.usage.output_tokens == 0) result.usage.output_tokens = JsonInt(m, "outputTokenCount");
      }
    }
    return std::nullopt;
  }

  std::optional<std::string> Converse(std::string_view type, const json& ev) {
    ContentBlock* block = nullptr;
    if (type == "contentBlockStart") {
      if (auto e = Block(JsonInt(ev, "contentBlockIndex"), &block)) return e;
      const json& start = ev.contains("start") ? ev["start"] : json::object();
      if (start.is_object() && start.contains("toolUse")) {
        *block = ContentBlock::ToolUse(JsonString(start["toolUse"], "toolUseId"), JsonString(start["toolUse"], "name"),
                                       json::object());
      }
    } else if (type == "contentBlockDelta") {
      const int64_t index = JsonInt(ev, "contentBlockIndex");
      if (auto e = Block(index, &block)) return e;
      const json& d = ev.contains("delta") ? ev["delta"] : json::object();
      StreamDelta delta;
      delta.index = static_cast<int>(index);
      if (d.is_object() && d.contains("toolUse")) {
        delta.kind = StreamDelta::Kind::kToolInput;
        delta.text = JsonString(d["toolUse"], "input");
        tool_json[index] += delta.text;
        delta.tool_use_id = block->tool_use_id;
        delta.tool_name = block->tool_name;
      } else if (d.is_object() && d.contains("text")) {
        delta.text = JsonString(d, "text");
        block->text += delta.text;
      } else {
        return std::nullopt;
      }
      if (on_delta) on_delta(delta);
    } else if (type == "messageStop") {
      result.stop_reason = JsonString(ev, "stopReason");
    } else if (type == "metadata") {
      if (ev.contains("usage")) {
        result.usage.input_tokens = JsonInt(ev["usage"], "inputTokens");
        result.usage.output_tokens = JsonInt(ev["usage"], "outputTokens");
      }
    }
    return std::nullopt;
  }

  std::optional<std::string> Finish() {
    for (size_t i = 0; i < result.content.size(); ++i) {
      ContentBlock& b = result.content[i];
      if (b.type == ContentBlock::Type::kToolUse && !tool_json[i].empty()) {
        json input = json::parse(tool_json[i], nullptr, false);
        if (input.is_discarded()) return "the streamed tool input of block " + std::to_string(i) + " is not JSON";
        b.tool_input = std::move(input);
      }
    }
    FinishText(result);
    return std::nullopt;
  }
};

std::string ModelPath(const std::string& model_id, std::string_view op) {
  return "/model/" + UriEncode(model_id, SlashEncoding::kEncode) + "/" + std::string(op);
}

// --- Agents ------------------------------------------------------------------

std::vector<Citation> ParseCitations(const json& payload) {
  std::vector<Citation> out;
  if (!payload.is_object() || !payload.contains("attribution")) return out;
  const json& attribution = payload["attribution"];
  if (!attribution.is_object() || !attribution.contains("citations") || !attribution["citations"].is_array()) {
    return out;
  }
  for (const auto& c : attribution["citations"]) {
    Citation citation;
    if (c.contains("generatedResponsePart") && c["generatedResponsePart"].contains("textResponsePart")) {
      citation.generated_text = JsonString(c["generatedResponsePart"]["textResponsePart"], "text");
    }
    if (c.contains("retrievedReferences") && c["retrievedReferences"].is_array()) {
      for (const auto& r : c["retrievedReferences"]) {
        CitationReference ref;
        if (r.contains("content")) ref.text = JsonString(r["content"], "text");
        if (r.contains("location") && r["location"].is_object()) {
          for (const auto& [key, loc] : r["location"].items()) {
            if (!loc.is_object()) continue;
            for (const char* field : {"uri", "url"}) {
              if (ref.uri.empty()) ref.uri = JsonString(loc, field);
            }
          }
        }
        citation.references.push_back(std::move(ref));
      }
    }
    out.push_back(std::move(citation));
  }
  return out;
}

std::vector<InvocationParameter> ParseParameters(const json& object, std::string_view key) {
  std::vector<InvocationParameter> out;
  if (!object.is_object()) return out;
  auto it = object.find(key);
  if (it == object.end() || !it->is_array()) return out;
  for (const auto& p : *it) out.push_back({JsonString(p, "name"), JsonString(p, "type"), JsonString(p, "value")});
  return out;
}

// ReturnControlPayload: invocationInputs is a list of unions, each either a
// functionInvocationInput or an apiInvocationInput (bedrock-agent-runtime
// InvocationInputMember). Unknown members (a newer union member) are skipped.
ReturnControl ParseReturnControl(const json& payload) {
  ReturnControl rc;
  rc.raw = payload;
  rc.invocation_id = JsonString(payload, "invocationId");
  if (!payload.contains("invocationInputs") || !payload["invocationInputs"].is_array()) return rc;
  for (const auto& in : payload["invocationInputs"]) {
    if (!in.is_object()) continue;
    if (auto f = in.find("functionInvocationInput"); f != in.end() && f->is_object()) {
      FunctionInvocation inv;
      inv.action_group = JsonString(*f, "actionGroup");
      inv.function = JsonString(*f, "function");
      inv.parameters = ParseParameters(*f, "parameters");
      inv.action_invocation_type = JsonString(*f, "actionInvocationType");
      inv.agent_id = JsonString(*f, "agentId");
      inv.collaborator_name = JsonString(*f, "collaboratorName");
      rc.invocations.push_back(std::move(inv));
    } else if (auto a = in.find("apiInvocationInput"); a != in.end() && a->is_object()) {
      ApiInvocation inv;
      inv.action_group = JsonString(*a, "actionGroup");
      inv.http_method = JsonString(*a, "httpMethod");
      inv.api_path = JsonString(*a, "apiPath");
      inv.parameters = ParseParameters(*a, "parameters");
      if (auto body = a->find("requestBody"); body != a->end() && body->is_object()) {
        if (auto content = body->find("content"); content != body->end() && content->is_object()) {
          for (const auto& [media_type, properties] : content->items()) {
            inv.request_body[media_type] = ParseParameters(properties, "properties");
          }
        }
      }
      inv.action_invocation_type = JsonString(*a, "actionInvocationType");
      inv.agent_id = JsonString(*a, "agentId");
      inv.collaborator_name = JsonString(*a, "collaboratorName");
      rc.api_invocations.push_back(std::move(inv));
    }
  }
  return rc;
}

// One entry of sessionState.returnControlInvocationResults (InvocationResultMember).
json ReturnControlResultJson(const ReturnControlResult& r) {
  const std::string content_type =
      !r.content_type.empty() ? r.content_type : (r.is_api() ? "application/json" : "TEXT");
  json out{{"actionGroup", r.action_group}, {"responseBody", {{content_type, {{"body", r.response_body}}}}}};
  if (r.is_api()) {
    out["apiPath"] = r.api_path;
    out["httpMethod"] = r.http_method;
    if (r.http_status_code) out["httpStatusCode"] = *r.http_status_code;
  } else {
    out["function"] = r.function;
  }
  if (!r.response_state.empty()) out["responseState"] = r.response_state;
  if (!r.agent_id.empty()) out["agentId"] = r.agent_id;
  if (!r.confirmation_state.empty()) out["confirmationState"] = r.confirmation_state;
  return json{{r.is_api() ? "apiResult" : "functionResult", std::move(out)}};
}

// What the service would reject anyway, said before sending ("" = fine).
std::string CheckReturnControlResult(const ReturnControlResult& r, size_t index) {
  const std::string where = "return_control_results[" + std::to_string(index) + "]";
  if (r.action_group.empty()) {
    return where + ".action_group is empty; copy it from the invocation in the returnControl event";
  }
  if (r.is_api() && r.http_method.empty()) {
    return where + " is an API result (api_path is set) but http_method is empty; copy apiPath and httpMethod "
                   "from the apiInvocationInput";
  }
  if (!r.is_api() && r.function.empty()) {
    return where + ".function is empty; copy it from the functionInvocationInput (for an API-schema action "
                   "group, set api_path and http_method instead)";
  }
  if (!r.response_state.empty() && r.response_state != "FAILURE" && r.response_state != "REPROMPT") {
    return where + ".response_state must be FAILURE, REPROMPT or empty, not " +
           aws::internal::QuoteForMessage(r.response_state);
  }
  if (!r.confirmation_state.empty() && r.confirmation_state != "CONFIRM" && r.confirmation_state != "DENY") {
    return where + ".confirmation_state must be CONFIRM, DENY or empty";
  }
  if (r.http_status_code && (*r.http_status_code < 100 || *r.http_status_code > 599)) {
    return where + ".http_status_code must be an HTTP status (100..599)";
  }
  return "";
}

// A `files` event (FilePart): files[] of {name, type, bytes (base64 blob)}.
// Appends the decoded files to `out`; `total` counts their bytes. Errors:
// InvalidArgument for a payload of the wrong shape, ResourceExhausted when
// the files together pass `limit`.
Status ParseFiles(const json& payload, size_t limit, size_t* total, std::vector<AgentFile>* out) {
  if (!payload.is_object()) return InvalidArgumentError("a files event is not a JSON object");
  auto files = payload.find("files");
  if (files == payload.end() || files->is_null()) return Status::Ok();
  if (!files->is_array()) return InvalidArgumentError("a files event's files member is not a list");
  for (const auto& f : *files) {
    if (!f.is_object()) return InvalidArgumentError("a files event holds a file that is not a JSON object");
    AgentFile file;
    file.name = JsonString(f, "name");
    file.media_type = JsonString(f, "type");
    auto bytes = Base64Decode(JsonString(f, "bytes"));
    if (!bytes.ok()) {
      return InvalidArgumentError("the bytes of file " + aws::internal::QuoteForMessage(file.name) +
                                  " are not base64");
    }
    file.bytes = std::move(bytes).value();
    *total += file.bytes.size();
    if (*total > limit) {
      return ResourceExhaustedError("the files the agent returned add up to more than max_response_bytes (" +
                                    std::to_string(limit) +
                                    " bytes); raise the limit if files that large are expected");
    }
    out->push_back(std::move(file));
  }
  return Status::Ok();
}

bool ValidSessionId(std::string_view id) {
  if (id.size() < 2 || id.size() > 100) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' || c == '-';
  });
}

// --- STS ---------------------------------------------------------------------

std::string FormEncode(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out += '&';
    out += UriEncode(k, SlashEncoding::kEncode) + "=" + UriEncode(v, SlashEncoding::kEncode);
  }
  return out;
}

Exchange StsExchange(std::string operation, std::vector<std::pair<std::string, std::string>> params,
                     CallOptions options) {
  Exchange ex;
  ex.service = aws::AwsService::kSts;
  ex.method = "POST";
  ex.path = "/";
  ex.sts = true;
  ex.sigv4_only = true;
  ex.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
  params.insert(params.begin(), {{"Action", operation}, {"Version", "2011-06-15"}});
  ex.body = FormEncode(params);
  ex.context.operation = std::move(operation);
  ex.options = std::move(options);
  return ex;
}

template <typename T>
BedrockResult<T> Wait(const std::function<CallHandle(Completion<T>)>& start) {
  auto promise = std::make_shared<std::promise<BedrockResult<T>>>();
  auto future = promise->get_future();
  struct InlineScope {
    bool saved = t_caller_may_block;
    InlineScope() { t_caller_may_block = true; }
    ~InlineScope() { t_caller_may_block = saved; }
  };
  {
    InlineScope scope;
    start([promise](BedrockResult<T> r) { promise->set_value(std::move(r)); });
  }
  return future.get();
}

}  // namespace

// ---------------------------------------------------------------------------
// BedrockClient

Result<std::unique_ptr<BedrockClient>> BedrockClient::Create(BedrockClientOptions options) {
  auto region = aws::ParseRegion(options.region);
  if (!region.ok()) return region.status();
  if (!options.credentials && !options.bearer_token.has_value()) {
    return FailedPreconditionError(
        "no credentials configured: set IAM credentials (a credential provider) or a Bedrock API key");
  }
  auto impl = std::make_unique<Impl>(std::move(options), std::move(region).value());
  QUARRY_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<BedrockClient>(new BedrockClient(std::move(impl)));
}

BedrockClient::BedrockClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BedrockClient::~BedrockClient() = default;

const std::string& BedrockClient::region() const { return impl_->region_.name(); }
std::string BedrockClient::EndpointUrl(aws::AwsService service) const { return impl_->EndpointUrl(service); }
aws::RetryQuota& BedrockClient::retry_quota() const { return *impl_->quota_; }

namespace {

Exchange ModelExchange(const ModelRequest& request, std::string operation, std::string_view path_op,
                       bool stream, bool converse) {
  Exchange ex;
  ex.service = aws::AwsService::kBedrockRuntime;
  ex.method = "POST";
  ex.path = ModelPath(request.model_id, path_op);
  ex.stream = stream;
  ex.body = (converse ? ConverseBody(request) : ClaudeBody(request)).dump();
  ex.headers.push_back({"Content-Type", "application/json"});
  if (!converse) ex.headers.push_back({stream ? "X-Amzn-Bedrock-Accept" : "Accept", "application/json"});
  ex.context.operation = std::move(operation);
  ex.context.model_id = request.model_id;
  ex.options = request.options;
  return ex;
}

CallHandle BufferedModelCall(BedrockClient::Impl& impl, const ModelRequest& request, bool converse,
                             Completion<ModelResult> done) {
  Status pre = CheckModelRequest(request);
  Exchange ex = ModelExchange(request, converse ? "Converse" : "InvokeModel", converse ? "converse" : "invoke",
                              false, converse);
  Parser<ModelResult> parse = [converse](RawResponse& raw, CallState& st) -> BedrockResult<ModelResult> {
    auto j = ParseJsonBody(raw.body);
    if (!j.ok()) return ResponseShapeError(st, j.status().message());
    auto r = converse ? ParseConverseResponse(j.value()) : ParseClaudeResponse(j.value());
    if (!r.ok()) return ResponseShapeError(st, r.status().message());
    r.value().request_id = raw.request_id;
    r.value().attempts = raw.attempts;
    return std::move(r).value();
  };
  return CallHandle(Launch<ModelResult>(impl, std::move(ex), std::move(parse), std::move(done), {}, {}, pre));
}

CallHandle StreamModelCall(BedrockClient::Impl& impl, const ModelRequest& request, bool converse,
                           DeltaCallback on_delta, Completion<ModelResult> done) {
  Status pre = CheckModelRequest(request);
  Exchange ex = ModelExchange(request, converse ? "ConverseStream" : "InvokeModelWithResponseStream",
                              converse ? "converse-stream" : "invoke-with-response-stream", true, converse);
  auto acc = std::make_shared<StreamAccumulator>();
  acc->on_delta = std::move(on_delta);
  EventHandler on_event = [acc, converse](const aws::Message& m, CallState& st) -> std::optional<BedrockError> {
    const std::string* type = MessageHeaderString(m, ":event-type");
    if (type == nullptr) return std::nullopt;
    json payload = json::parse(m.payload, nullptr, false);
    if (payload.is_discarded()) return ResponseShapeError(st, "event '" + *type + "' has a payload that is not JSON");
    std::optional<std::string> err;
    if (converse) {
      err = acc->Converse(*type, payload);
    } else if (*type == "chunk") {
      auto bytes = Base64Decode(JsonString(payload, "bytes"));
      if (!bytes.ok()) return ResponseShapeError(st, "a chunk's bytes are not base64");
      json ev = json::parse(bytes.value(), nullptr, false);
      if (ev.is_discarded()) return ResponseShapeError(st, "a chunk's bytes are not a JSON model event");
      err = acc->Anthropic(ev);
    }
    if (err) return ResponseShapeError(st, *err);
    return std::nullopt;
  };
  Parser<ModelResult> parse = [acc](RawResponse& raw, CallState& st) -> BedrockResult<ModelResult> {
    if (auto err = acc->Finish()) return ResponseShapeError(st, *err);
    ModelResult r = std::move(acc->result);
    r.request_id = raw.request_id;
    r.attempts = raw.attempts;
    return r;
  };
  return CallHandle(Launch<ModelResult>(impl, std::move(ex), std::move(parse), std::move(done), std::move(on_event),
                                        [acc] { acc->Reset(); }, pre));
}

}  // namespace

CallHandle BedrockClient::InvokeModel(const ModelRequest& request, Completion<ModelResult> done) {
  return BufferedModelCall(*impl_, request, false, std::move(done));
}
CallHandle BedrockClient::Converse(const ModelRequest& request, Completion<ModelResult> done) {
  return BufferedModelCall(*impl_, request, true, std::move(done));
}
CallHandle BedrockClient::InvokeModelWithResponseStream(const ModelRequest& request, DeltaCallback on_delta,
                                                        Completion<ModelResult> done) {
  return StreamModelCall(*impl_, request, false, std::move(on_delta), std::move(done));
}
CallHandle BedrockClient::ConverseStream(const ModelRequest& request, DeltaCallback on_delta,
                                         Completion<ModelResult> done) {
  return StreamModelCall(*impl_, request, true, std::move(on_delta), std::move(done));
}

CallHandle BedrockClient::InvokeAgent(const InvokeAgentRequest& request, AgentCallbacks callbacks,
                                      Completion<AgentResult> done) {
  Exchange ex;
  ex.service = aws::AwsService::kBedrockAgentRuntime;
  ex.method = "POST";
  ex.stream = true;
  ex.sigv4_only = true;
  ex.context.operation = "InvokeAgent";
  ex.context.agent_alias_arn = request.agent_alias_arn;
  ex.options = request.options;
  Status pre;
  std::string session_id = request.session_id.empty() ? RandomUuid() : request.session_id;
  auto arn = aws::ParseAgentAliasArn(request.agent_alias_arn);
  if (!arn.ok()) {
    pre = arn.status();
  } else if (!ValidSessionId(session_id)) {
    pre = InvalidArgumentError("session id " + aws::internal::QuoteForMessage(session_id) +
                               " is invalid: use 2 to 100 characters from [0-9a-zA-Z._:-]");
  } else if (request.input_text.empty() && request.return_control_results.empty()) {
    pre = InvalidArgumentError("input_text is empty; send text, or return_control_results after a returnControl");
  } else if (!request.return_control_results.empty() && request.return_control_invocation_id.empty()) {
    pre = InvalidArgumentError(
        "return_control_results need return_control_invocation_id: copy the invocationId of the returnControl event");
  } else if (request.return_control_results.size() > 5) {
    pre = InvalidArgumentError("at most 5 return_control_results (one per invocation of the returnControl event), got " +
                               std::to_string(request.return_control_results.size()));
  } else if (!impl_->options_.credentials) {
    pre = FailedPreconditionError(
        "InvokeAgent needs IAM credentials (SigV4): Bedrock API keys are not accepted by Agents for Amazon Bedrock. "
        "Configure an access key, a profile or a role for this provider.");
  }
  for (size_t i = 0; pre.ok() && i < request.return_control_results.size(); ++i) {
    if (std::string problem = CheckReturnControlResult(request.return_control_results[i], i); !problem.empty()) {
      pre = InvalidArgumentError(problem);
    }
  }
  if (arn.ok()) {
    ex.path = "/agents/" + UriEncode(arn.value().agent_id) + "/agentAliases/" + UriEncode(arn.value().alias_id) +
              "/sessions/" + UriEncode(session_id) + "/text";
  }
  json body = json::object();
  if (!request.input_text.empty()) body["inputText"] = request.input_text;
  body["enableTrace"] = request.enable_trace;
  body["endSession"] = request.end_session;
  json state = json::object();
  if (!request.session_attributes.empty()) state["sessionAttributes"] = request.session_attributes;
  if (!request.prompt_session_attributes.empty()) state["promptSessionAttributes"] = request.prompt_session_attributes;
  if (!request.return_control_invocation_id.empty()) state["invocationId"] = request.return_control_invocation_id;
  if (!request.return_control_results.empty()) {
    json results = json::array();
    for (const auto& r : request.return_control_results) results.push_back(ReturnControlResultJson(r));
    state["returnControlInvocationResults"] = std::move(results);
  }
  if (!state.empty()) body["sessionState"] = std::move(state);
  if (request.stream_final_response) body["streamingConfigurations"] = {{"streamFinalResponse", true}};
  ex.body = body.dump();
  ex.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};

  struct AgentAcc {
    AgentResult result;
    AgentCallbacks callbacks;
    size_t trace_bytes = 0;
    size_t file_bytes = 0;
  };
  auto acc = std::make_shared<AgentAcc>();
  acc->callbacks = std::move(callbacks);
  acc->result.session_id = session_id;
  const size_t max_file_bytes = impl_->options_.max_response_bytes;
  EventHandler on_event = [acc, max_file_bytes](const aws::Message& m,
                                                CallState& st) -> std::optional<BedrockError> {
    const std::string* type = MessageHeaderString(m, ":event-type");
    if (type == nullptr) return std::nullopt;
    json payload = json::parse(m.payload, nullptr, false);
    if (payload.is_discarded()) return ResponseShapeError(st, "event '" + *type + "' has a payload that is not JSON");
    if (*type == "chunk") {
      AgentChunk chunk;
      auto bytes = Base64Decode(JsonString(payload, "bytes"));
      if (!bytes.ok()) return ResponseShapeError(st, "a chunk's bytes are not base64");
      chunk.text = std::move(bytes).value();
      chunk.citations = ParseCitations(payload);
      acc->result.completion += chunk.text;
      for (const auto& c : chunk.citations) acc->result.citations.push_back(c);
      if (acc->callbacks.on_chunk) acc->callbacks.on_chunk(chunk);
    } else if (*type == "trace") {
      // Traces are kept up to a bound (they can be large); callbacks see all.
      if (acc->trace_bytes < 8 * 1024 * 1024) {
        acc->trace_bytes += m.payload.size();
        acc->result.traces.push_back(payload);
      }
      if (acc->callbacks.on_trace) acc->callbacks.on_trace(payload);
    } else if (*type == "returnControl") {
      acc->result.return_control = ParseReturnControl(payload);
    } else if (*type == "files") {
      const size_t first_new = acc->result.files.size();
      if (Status parsed = ParseFiles(payload, max_file_bytes, &acc->file_bytes, &acc->result.files);
          !parsed.ok()) {
        BedrockError e = ResponseShapeError(st, parsed.message());
        if (parsed.code() == StatusCode::kResourceExhausted) {
          e.aws.code = "ResponseTooLarge";
          e.aws.message = parsed.message();
          e.status = ResourceExhaustedError(e.aws.ToString());
        }
        return e;
      }
      if (acc->callbacks.on_file) {
        for (size_t i = first_new; i < acc->result.files.size(); ++i) acc->callbacks.on_file(acc->result.files[i]);
      }
    }
    return std::nullopt;
  };
  Parser<AgentResult> parse = [acc](RawResponse& raw, CallState&) -> BedrockResult<AgentResult> {
    AgentResult r = std::move(acc->result);
    r.request_id = raw.request_id;
    r.attempts = raw.attempts;
    for (const auto& [name, value] : raw.headers) {
      if (EqualsIgnoreAsciiCase(name, "x-amz-bedrock-agent-session-id") && !value.empty()) r.session_id = value;
    }
    return r;
  };
  std::string sid = session_id;
  return CallHandle(Launch<AgentResult>(*impl_, std::move(ex), std::move(parse), std::move(done),
                                        std::move(on_event),
                                        [acc, sid] {
                                          AgentCallbacks cb = std::move(acc->callbacks);
                                          acc->result = AgentResult{};
                                          acc->result.session_id = sid;
                                          acc->callbacks = std::move(cb);
                                          acc->trace_bytes = 0;
                                          acc->file_bytes = 0;
                                        },
                                        pre));
}

CallHandle BedrockClient::GetFoundationModel(const std::string& model_id, Completion<FoundationModelInfo> done,
                                             CallOptions options) {
  Exchange ex;
  ex.service = aws::AwsService::kBedrock;
  ex.method = "GET";
  ex.path = "/foundation-models/" + UriEncode(model_id);
  ex.context.operation = "GetFoundationModel";
  ex.context.model_id = model_id;
  ex.options = std::move(options);
  Status pre = model_id.empty() ? InvalidArgumentError("model id is empty") : Status::Ok();
  Parser<FoundationModelInfo> parse = [](RawResponse& raw, CallState& st) -> BedrockResult<FoundationModelInfo> {
    auto j = ParseJsonBody(raw.body);
    if (!j.ok() || !j.value().contains("modelDetails")) return ResponseShapeError(st, "no modelDetails");
    const json& d = j.value()["modelDetails"];
    FoundationModelInfo info;
    info.model_id = JsonString(d, "modelId");
    info.model_arn = JsonString(d, "modelArn");
    info.model_name = JsonString(d, "modelName");
    info.provider_name = JsonString(d, "providerName");
    if (d.contains("inferenceTypesSupported") && d["inferenceTypesSupported"].is_array()) {
      for (const auto& t : d["inferenceTypesSupported"]) {
        if (t.is_string()) info.inference_types.push_back(t.get<std::string>());
      }
    }
    info.streaming = d.value("responseStreamingSupported", false);
    if (d.contains("modelLifecycle")) info.lifecycle_status = JsonString(d["modelLifecycle"], "status");
    info.raw = d;
    return info;
  };
  return CallHandle(Launch<FoundationModelInfo>(*impl_, std::move(ex), std::move(parse), std::move(done), {}, {}, pre));
}

CallHandle BedrockClient::GetAgentAlias(const std::string& agent_alias_arn, Completion<AgentAliasInfo> done,
                                        CallOptions options) {
  Exchange ex;
  ex.service = aws::AwsService::kBedrockAgent;
  ex.method = "GET";
  ex.sigv4_only = true;
  ex.context.operation = "GetAgentAlias";
  ex.context.agent_alias_arn = agent_alias_arn;
  ex.options = std::move(options);
  auto arn = aws::ParseAgentAliasArn(agent_alias_arn);
  Status pre = arn.status();
  if (arn.ok()) {
    ex.path = "/agents/" + UriEncode(arn.value().agent_id) + "/agentaliases/" + UriEncode(arn.value().alias_id) + "/";
  }
  Parser<AgentAliasInfo> parse = [](RawResponse& raw, CallState& st) -> BedrockResult<AgentAliasInfo> {
    auto j = ParseJsonBody(raw.body);
    if (!j.ok() || !j.value().contains("agentAlias")) return ResponseShapeError(st, "no agentAlias");
    const json& a = j.value()["agentAlias"];
    AgentAliasInfo info;
    info.exists = true;
    info.agent_id = JsonString(a, "agentId");
    info.alias_id = JsonString(a, "agentAliasId");
    info.alias_name = JsonString(a, "agentAliasName");
    info.alias_arn = JsonString(a, "agentAliasArn");
    info.status = JsonString(a, "agentAliasStatus");
    if (a.contains("routingConfiguration") && a["routingConfiguration"].is_array()) {
      for (const auto& r : a["routingConfiguration"]) {
        std::string v = JsonString(r, "agentVersion");
        if (!v.empty()) {
          info.agent_version = v;
          break;
        }
      }
    }
    info.has_version = !info.agent_version.empty();
    info.prepared = info.has_version && info.status == "PREPARED";
    info.raw = a;
    return info;
  };
  Completion<AgentAliasInfo> wrapped = [done = std::move(done)](BedrockResult<AgentAliasInfo> r) {
    if (!r.ok() && r.error().aws.code == "ResourceNotFoundException") {
      done(AgentAliasInfo{});
      return;
    }
    done(std::move(r));
  };
  return CallHandle(Launch<AgentAliasInfo>(*impl_, std::move(ex), std::move(parse), std::move(wrapped), {}, {}, pre));
}

CallHandle BedrockClient::GetCallerIdentity(Completion<CallerIdentity> done, CallOptions options) {
  Parser<CallerIdentity> parse = [](RawResponse& raw, CallState& st) -> BedrockResult<CallerIdentity> {
    CallerIdentity id;
    auto arn = aws::internal::FindXmlElementText(raw.body, "Arn");
    auto account = aws::internal::FindXmlElementText(raw.body, "Account");
    auto user = aws::internal::FindXmlElementText(raw.body, "UserId");
    if (!arn || !account) return ResponseShapeError(st, "GetCallerIdentityResult has no Arn or Account");
    id.arn = *arn;
    id.account = *account;
    id.user_id = user.value_or("");
    return id;
  };
  return CallHandle(Launch<CallerIdentity>(*impl_, StsExchange("GetCallerIdentity", {}, std::move(options)),
                                           std::move(parse), std::move(done)));
}

CallHandle BedrockClient::AssumeRole(const aws::AssumeRoleRequest& request, std::optional<aws::Credentials> source,
                                     Completion<aws::Credentials> done, CallOptions options) {
  std::vector<std::pair<std::string, std::string>> params;
  params.push_back({"RoleArn", request.role_arn});
  params.push_back({"RoleSessionName", request.role_session_name.empty() ? "quarry-session"
                                                                         : request.role_session_name});
  if (request.duration) params.push_back({"DurationSeconds", std::to_string(request.duration->count())});
  if (!request.external_id.empty()) params.push_back({"ExternalId", request.external_id});
  Exchange ex = StsExchange("AssumeRole", std::move(params), std::move(options));
  ex.credentials_override = std::move(source);
  Status pre;
  if (!request.mfa_serial.empty()) {
    pre = UnimplementedError("profile " + request.profile +
                             " needs an MFA token (mfa_serial), which Quarry cannot prompt for; use a role without "
                             "MFA or credentials from a session obtained outside Quarry");
  }
  std::string role = request.role_arn;
  Parser<aws::Credentials> parse = [role](RawResponse& raw, CallState& st) -> BedrockResult<aws::Credentials> {
    aws::Credentials c;
    auto key = aws::internal::FindXmlElementText(raw.body, "AccessKeyId");
    auto secret = aws::internal::FindXmlElementText(raw.body, "SecretAccessKey");
    auto token = aws::internal::FindXmlElementText(raw.body, "SessionToken");
    auto expiration = aws::internal::FindXmlElementText(raw.body, "Expiration");
    if (!key || !secret || !token) return ResponseShapeError(st, "AssumeRoleResult has no Credentials");
    c.access_key_id = *key;
    c.secret_access_key = *secret;
    c.session_token = *token;
    if (expiration) {
      WallTime t;
      if (!ParseIso8601Utc(*expiration, &t)) return ResponseShapeError(st, "Expiration is not an ISO-8601 time");
      c.expiration = t;
    }
    c.source = "sts:AssumeRole " + role;
    return c;
  };
  return CallHandle(Launch<aws::Credentials>(*impl_, std::move(ex), std::move(parse), std::move(done), {}, {}, pre));
}

// The catalogue: ListFoundationModels, then every page of
// ListInferenceProfiles for SYSTEM_DEFINED and then APPLICATION.
CallHandle BedrockClient::ListCatalogue(Completion<ModelCatalogue> done, CallOptions options) {
  constexpr int kMaxPages = 100;
  struct Job {
    std::shared_ptr<CallState> parent;
    Impl* impl = nullptr;
    CallOptions options;
    Completion<ModelCatalogue> done;
    json foundation;
    std::vector<json> pages;
    int type_index = 0;  // 0 SYSTEM_DEFINED, 1 APPLICATION
    std::string next_token;
    int page_count = 0;
  };
  auto job = std::make_shared<Job>();
  job->impl = impl_.get();
  job->options = std::move(options);
  job->done = std::move(done);
  job->parent = std::make_shared<CallState>();
  job->parent->exchange.service = aws::AwsService::kBedrock;
  job->parent->exchange.context.operation = "ListCatalogue";
  std::weak_ptr<Job> weak_job = job;
  job->parent->on_failure = [weak_job](BedrockError e) {
    if (auto j = weak_job.lock()) j->done(std::move(e));
  };
  impl_->RegisterComposite(job->parent);

  // Each step keeps the job alive through its completion.
  auto finish = [](const std::shared_ptr<Job>& j, BedrockResult<ModelCatalogue> r) {
    {
      // The child's callbacks hold the job: break the cycle.
      std::lock_guard<std::mutex> lock(j->parent->mutex_);
      j->parent->child.reset();
    }
    if (j->parent->Claim()) {
      j->done(std::move(r));
      j->impl->Unregister(j->parent);
    }
  };
  auto start_child = [](const std::shared_ptr<Job>& j, const std::shared_ptr<CallState>& child) {
    {
      std::lock_guard<std::mutex> lock(j->parent->mutex_);
      if (j->parent->cancelled) {
        child->cancelled = true;
      }
      j->parent->child = child;
    }
    j->impl->Start(child);
  };
  auto json_parser = Parser<json>([](RawResponse& raw, CallState& st) -> BedrockResult<json> {
    auto j = ParseJsonBody(raw.body);
    if (!j.ok()) return ResponseShapeError(st, j.status().message());
    return std::move(j).value();
  });

  std::shared_ptr<std::function<void(std::shared_ptr<Job>)>> next_page =
      std::make_shared<std::function<void(std::shared_ptr<Job>)>>();
  std::weak_ptr<std::function<void(std::shared_ptr<Job>)>> weak_next = next_page;
  *next_page = [finish, start_child, json_parser, next_page_w = weak_next](std::shared_ptr<Job> j) {
    Exchange ex;
    ex.service = aws::AwsService::kBedrock;
    ex.method = "GET";
    ex.path = "/inference-profiles";
    ex.query = "maxResults=1000&type=" + std::string(j->type_index == 0 ? "SYSTEM_DEFINED" : "APPLICATION");
    if (!j->next_token.empty()) ex.query += "&nextToken=" + UriEncode(j->next_token);
    ex.context.operation = "ListInferenceProfiles";
    ex.options = j->options;
    auto self = next_page_w.lock();
    auto child = Launch<json>(
        *j->impl, std::move(ex), json_parser,
        [j, finish, self](BedrockResult<json> r) {
          if (!r.ok()) return finish(j, r.error());
          json page = std::move(r).value();
          std::string token = JsonString(page, "nextToken");
          j->pages.push_back(std::move(page));
          ++j->page_count;
          if (!token.empty() && j->page_count < kMaxPages) {
            j->next_token = token;
          } else if (j->type_index == 0) {
            j->type_index = 1;
            j->next_token.clear();
          } else {
            auto merged = MergeCatalogue(j->impl->region_.name(), j->foundation, j->pages);
            if (!merged.ok()) {
              auto parent = j->parent;
              return finish(j, ResponseShapeError(*parent, merged.status().message()));
            }
            return finish(j, std::move(merged).value());
          }
          (*self)(j);
        },
        {}, {}, Status::Ok(), /*start=*/false);
    start_child(j, child);
  };

  Exchange ex;
  ex.service = aws::AwsService::kBedrock;
  ex.method = "GET";
  ex.path = "/foundation-models";
  ex.context.operation = "ListFoundationModels";
  ex.options = job->options;
  auto first = Launch<json>(
      *impl_, std::move(ex), json_parser,
      [job, finish, next_page](BedrockResult<json> r) {
        if (!r.ok()) return finish(job, r.error());
        job->foundation = std::move(r).value();
        (*next_page)(job);
      },
      {}, {}, Status::Ok(), /*start=*/false);
  start_child(job, first);
  return CallHandle(job->parent);
}

// --- blocking wrappers ---------------------------------------------------------

BedrockResult<ModelResult> BedrockClient::InvokeModel(const ModelRequest& request) {
  return Wait<ModelResult>([&](Completion<ModelResult> d) { return InvokeModel(request, std::move(d)); });
}
BedrockResult<ModelResult> BedrockClient::InvokeModelWithResponseStream(const ModelRequest& request,
                                                                        DeltaCallback on_delta) {
  return Wait<ModelResult>([&](Completion<ModelResult> d) {
    return InvokeModelWithResponseStream(request, std::move(on_delta), std::move(d));
  });
}
BedrockResult<ModelResult> BedrockClient::Converse(const ModelRequest& request) {
  return Wait<ModelResult>([&](Completion<ModelResult> d) { return Converse(request, std::move(d)); });
}
BedrockResult<ModelResult> BedrockClient::ConverseStream(const ModelRequest& request, DeltaCallback on_delta) {
  return Wait<ModelResult>(
      [&](Completion<ModelResult> d) { return ConverseStream(request, std::move(on_delta), std::move(d)); });
}
BedrockResult<AgentResult> BedrockClient::InvokeAgent(const InvokeAgentRequest& request, AgentCallbacks callbacks) {
  return Wait<AgentResult>(
      [&](Completion<AgentResult> d) { return InvokeAgent(request, std::move(callbacks), std::move(d)); });
}
BedrockResult<ModelCatalogue> BedrockClient::ListCatalogue(CallOptions options) {
  return Wait<ModelCatalogue>([&](Completion<ModelCatalogue> d) { return ListCatalogue(std::move(d), options); });
}
BedrockResult<FoundationModelInfo> BedrockClient::GetFoundationModel(const std::string& model_id,
                                                                     CallOptions options) {
  return Wait<FoundationModelInfo>(
      [&](Completion<FoundationModelInfo> d) { return GetFoundationModel(model_id, std::move(d), options); });
}
BedrockResult<AgentAliasInfo> BedrockClient::GetAgentAlias(const std::string& agent_alias_arn, CallOptions options) {
  return Wait<AgentAliasInfo>(
      [&](Completion<AgentAliasInfo> d) { return GetAgentAlias(agent_alias_arn, std::move(d), options); });
}
BedrockResult<CallerIdentity> BedrockClient::GetCallerIdentity(CallOptions options) {
  return Wait<CallerIdentity>([&](Completion<CallerIdentity> d) { return GetCallerIdentity(std::move(d), options); });
}
BedrockResult<aws::Credentials> BedrockClient::AssumeRole(const aws::AssumeRoleRequest& request,
                                                          std::optional<aws::Credentials> source,
                                                          CallOptions options) {
  return Wait<aws::Credentials>(
      [&](Completion<aws::Credentials> d) { return AssumeRole(request, source, std::move(d), options); });
}

// --- the STS role assumer --------------------------------------------------------

namespace {
class StsRoleAssumer final : public aws::RoleAssumer {
 public:
  explicit StsRoleAssumer(std::unique_ptr<BedrockClient> client) : client_(std::move(client)) {}
  Result<aws::Credentials> AssumeRole(const aws::AssumeRoleRequest& request,
                                      const aws::Credentials& source) override {
    BedrockResult<aws::Credentials> r = client_->AssumeRole(request, source);
    if (!r.ok()) {
      return Status(r.error().status.code(), "AssumeRole of " + request.role_arn +
                                                 (request.profile.empty() ? "" : " (profile " + request.profile + ")") +
                                                 " failed: " + r.error().ToString());
    }
    return std::move(r).value();
  }

 private:
  std::unique_ptr<BedrockClient> client_;
};
}  // namespace

Result<std::unique_ptr<aws::RoleAssumer>> MakeStsRoleAssumer(BedrockClientOptions options) {
  options.bearer_token.reset();
  // Each call signs with its source credentials; this placeholder provider is
  // never asked (AssumeRole always passes them).
  options.credentials = std::make_shared<aws::StaticCredentialProvider>(aws::Credentials{});
  auto client = BedrockClient::Create(std::move(options));
  if (!client.ok()) return client.status();
  return std::unique_ptr<aws::RoleAssumer>(new StsRoleAssumer(std::move(client).value()));
}

}  // namespace quarry::bedrock
