#pragma once
// The typed Amazon Bedrock / STS client: InvokeModel (Claude messages),
// InvokeModelWithResponseStream, Converse, ConverseStream, InvokeAgent, the
// model catalogue (ListFoundationModels + ListInferenceProfiles, merged),
// GetFoundationModel, GetAgentAlias, STS GetCallerIdentity and AssumeRole.
//
// Wire protocol (aws-protocol.md; the services' service-2.json models):
// rest-json for the four Bedrock services (path labels percent-encoded, so a
// model id's ':' goes as %3A and an ARN's '/' as %2F), awsQuery + XML for STS;
// SigV4 with signing name "bedrock" (all four Bedrock services) or "sts",
// re-signed on every attempt; `amz-sdk-invocation-id` and
// `amz-sdk-request: attempt=N; max=M` added after signing (as botocore does).
// A Bedrock API key (`Authorization: Bearer`) is used where
// aws::SelectAuthScheme allows it (bedrock, bedrock-runtime), SigV4 otherwise;
// InvokeAgent with only an API key fails at once with a message saying what to
// configure. Event streams are decoded with aws::EventStreamDecoder as bytes
// arrive; a corrupt frame is a hard error; in-stream exceptions become errors
// with aws.in_stream = true. InvokeAgent's stream (bedrock-agent-runtime
// ResponseStream) yields chunks, traces, files (FilePart: decoded into
// AgentResult::files) and returnControl (ReturnControlPayload, whose
// invocation inputs are functionInvocationInput or apiInvocationInput); the
// reply sends functionResult or apiResult entries (ReturnControlResult).
//
// Retries: aws::RetryStrategy (standard mode) with a RetryQuota shared by all
// calls of the client. A stream is retried only before its first event reached
// the caller. The overall deadline bounds the whole chain (attempt timeouts are
// clipped to it). Retry delays wait on a timer thread owned by the client (one
// thread, a priority queue of due times, joined by the destructor); retries
// are built, signed and handed to the HTTP client on that thread. The first
// attempt is built and sent on the calling thread when the credentials are at
// hand (aws::CredentialProvider::CredentialsWithoutWaiting: static keys, or
// cached ones not due for a refresh); when getting them could block (a
// refresh through STS), an asynchronous call's first attempt moves to the
// timer thread, so neither the caller nor the HTTP loop thread ever waits on
// it. The blocking wrappers may wait on the calling thread, which is about to
// wait anyway.
//
// No call can wait forever: every attempt has a connect timeout, an attempt
// timeout, an idle timeout (no bytes for that long ends a stalled stream with
// a clear error) and the overall deadline; buffered bodies are capped
// (max_response_bytes) and stream buffers are bounded.
//
// Errors are BedrockError values: the AWS error (code, HTTP status, request
// id, message, retry class, in_stream, timeout), the attempts made, why the
// client gave up (RetryStrategy's reason), and a troubleshooting entry from
// bedrock::Troubleshoot. Local problems (a bad request, no credentials) are
// BedrockErrors too, with origin kClient and attempts == 0. Codes made by the
// client itself: "ClientError" (not sent), "Cancelled", "CorruptEventStream"
// (bad CRC or framing: DataLoss, never retried), "InvalidResponse" (a 2xx body
// of the wrong shape), "ResponseTooLarge" (a body over max_response_bytes,
// or one stream event over max_stream_buffer_bytes); transport failures come from
// aws::MakeConnectionError (timeout flag set for connect/attempt/idle timeouts).
//
// Threads: completion callbacks and stream callbacks run on the HTTP client's
// loop thread or on this client's timer thread (retries, cancellation, a call
// rejected before sending), never inside the call that started them.
// Callbacks of one call run one at a time, in order, and must not block.
// The completion runs exactly once per call. The blocking wrappers wait on the
// caller's thread: never call them from a callback.
//
// Thread safety: BedrockClient is thread-safe; share one per process/provider.
// The destructor cancels what is in flight, waits for their completions
// (with kCancelled), then joins the timer thread; so never destroy the client
// from one of its own callbacks. The injected Clock gives the signing time and
// the deadlines; retry delays are waited in real (steady) time.
//
// Example:
//   bedrock::BedrockClientOptions options;
//   options.region = "us-east-1";
//   options.endpoint_url = sim->base_url();          // or empty for AWS
//   options.credentials = std::make_shared<aws::StaticCredentialProvider>(creds);
//   auto client = bedrock::BedrockClient::Create(options).value();
//
//   bedrock::ModelRequest request;
//   request.model_id = "anthropic.claude-3-haiku-20240307-v1:0";
//   request.system = "Be brief.";
//   request.messages.push_back(bedrock::ChatMessage::User("Hello"));
//   bedrock::BedrockResult<bedrock::ModelResult> r = client->InvokeModel(request);  // blocking
//   if (!r.ok()) { std::cerr << r.error().ToString() << "\n" << r.error().troubleshooting.ToText(); }
//   else std::cout << r.value().text;
//
//   // Asynchronous, streaming:
//   bedrock::CallHandle h = client->InvokeModelWithResponseStream(
//       request, [](const bedrock::StreamDelta& d) { std::cout << d.text; },
//       [](bedrock::BedrockResult<bedrock::ModelResult> r) { /* done */ });
//   h.Cancel();  // any time, from any thread

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "aws/aws_error.h"
#include "aws/credential_provider.h"
#include "aws/credential_types.h"
#include "aws/region.h"
#include "aws/retry.h"
#include "bedrock/model_catalogue.h"
#include "bedrock/troubleshooting.h"
#include "common/clock.h"
#include "common/status.h"
#include "net/http_client.h"

namespace quarry::bedrock {

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

enum class ErrorOrigin {
  kClient,     // rejected before sending: invalid request, no credentials, bad config
  kTransport,  // no (complete) HTTP response: connect failure, timeout, reset, corrupt stream
  kService,    // an AWS error response (non-2xx)
  kStream,     // an exception event inside a 200 event stream
  kCancelled,  // CallHandle::Cancel() or client shutdown
};
std::string_view ErrorOriginName(ErrorOrigin origin);  // "client", "transport", ...

struct BedrockError {
  ErrorOrigin origin = ErrorOrigin::kClient;
  // code ("ThrottlingException", "ConnectionError", "InvalidRequest", ...),
  // http_status (0 without a response), request_id, message, retry_class,
  // in_stream, timeout, fields.
  aws::AwsError aws{};
  bool retryable = false;      // aws.retry_class != kNotRetryable
  int attempts = 0;            // attempts that were sent
  std::string give_up_reason;  // why no further retry (RetryStrategy), "" if not applicable
  TroubleshootingEntry troubleshooting{};
  Status status;               // canonical Status (aws.ToStatus(), or the local error)

  // "InvokeModel failed: ThrottlingException (HTTP 429, request id ...): ...; 3 attempts; <reason>".
  std::string ToString() const;
  nlohmann::json ToJson() const;
};

// A value or a BedrockError.
template <typename T>
class BedrockResult {
 public:
  BedrockResult(T value) : v_(std::move(value)) {}            // NOLINT: implicit by design
  BedrockResult(BedrockError error) : v_(std::move(error)) {}  // NOLINT
  bool ok() const { return v_.index() == 0; }
  const T& value() const& { return std::get<0>(v_); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const BedrockError& error() const { return std::get<1>(v_); }
  // OK or error().status.
  Status status() const { return ok() ? Status::Ok() : error().status; }

 private:
  std::variant<T, BedrockError> v_{};
};

// ---------------------------------------------------------------------------
// Per-call limits and cancellation
// ---------------------------------------------------------------------------

struct Deadlines {
  std::chrono::milliseconds connect_timeout{3'000};
  std::chrono::milliseconds attempt_timeout{120'000};  // one attempt, whole exchange
  std::chrono::milliseconds overall_deadline{300'000}; // the chain of attempts and delays
  std::chrono::milliseconds idle_timeout{30'000};      // no bytes received for this long
};

// Per-call overrides of the client's defaults (unset: the client's).
struct CallOptions {
  std::optional<std::chrono::milliseconds> connect_timeout{};
  std::optional<std::chrono::milliseconds> attempt_timeout{};
  std::optional<std::chrono::milliseconds> overall_deadline{};
  std::optional<std::chrono::milliseconds> idle_timeout{};
  std::optional<int> max_attempts{};  // >= 1; can only lower the client's retry.max_attempts
};

class CallState;  // internal

// Handle of an asynchronous call. Copyable; a default handle does nothing.
class CallHandle {
 public:
  CallHandle() = default;
  explicit CallHandle(std::shared_ptr<CallState> state) : state_(std::move(state)) {}
  // Ends the call: its completion runs (soon, on a client thread) with origin
  // kCancelled, unless it has already completed. Any thread; idempotent.
  void Cancel() const;
  bool done() const;

 private:
  std::shared_ptr<CallState> state_{};
};

template <typename T>
using Completion = std::function<void(BedrockResult<T>)>;

// ---------------------------------------------------------------------------
// Claude messages (InvokeModel body; mapped to Converse for Converse*)
// ---------------------------------------------------------------------------

struct ContentBlock {
  enum class Type { kText, kToolUse, kToolResult };
  Type type = Type::kText;
  std::string text{};                 // kText; kToolResult: the result text
  std::string tool_use_id{};          // kToolUse, kToolResult
  std::string tool_name{};            // kToolUse
  nlohmann::json tool_input = nlohmann::json::object();  // kToolUse
  bool is_error = false;            // kToolResult

  static ContentBlock Text(std::string text);
  static ContentBlock ToolUse(std::string id, std::string name, nlohmann::json input);
  static ContentBlock ToolResult(std::string tool_use_id, std::string text, bool is_error = false);
};

struct ChatMessage {
  std::string role = "user";  // "user" | "assistant"
  std::vector<ContentBlock> content{};

  static ChatMessage User(std::string text);
  static ChatMessage Assistant(std::string text);
};

struct ToolSpec {
  std::string name{};
  std::string description{};
  nlohmann::json input_schema = nlohmann::json::object();  // JSON Schema object
};

struct ToolChoice {
  enum class Kind { kAuto, kAny, kTool };
  Kind kind = Kind::kAuto;
  std::string name{};  // kTool
};

struct ModelRequest {
  std::string model_id{};  // foundation model id/ARN or inference profile id/ARN
  std::string system{};    // empty: none
  std::vector<ChatMessage> messages{};
  int max_tokens = 1024;
  std::optional<double> temperature{};
  std::optional<double> top_p{};
  std::optional<int> top_k{};  // InvokeModel only (Converse: additionalModelRequestFields)
  std::vector<std::string> stop_sequences{};
  std::vector<ToolSpec> tools{};
  std::optional<ToolChoice> tool_choice{};
  CallOptions options{};
};

struct TokenUsage {
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
};

struct ModelResult {
  std::vector<ContentBlock> content{};  // kText and kToolUse blocks, in order
  std::string text{};                   // all text blocks concatenated
  std::string stop_reason{};            // "end_turn", "tool_use", "max_tokens", "stop_sequence", ...
  std::string stop_sequence{};          // the one that matched, when known
  TokenUsage usage{};
  std::string model{};                  // as reported by the response, when present
  std::string request_id{};
  int attempts = 0;

  // The first tool_use block, or nullptr.
  const ContentBlock* FirstToolUse() const;
};

// One streamed increment.
struct StreamDelta {
  enum class Kind { kText, kToolInput };
  Kind kind = Kind::kText;
  int index = 0;             // content block index
  std::string text{};          // kText: text; kToolInput: partial JSON of the tool input
  std::string tool_use_id{};   // kToolInput
  std::string tool_name{};     // kToolInput
};
using DeltaCallback = std::function<void(const StreamDelta&)>;

// ---------------------------------------------------------------------------
// Agents
// ---------------------------------------------------------------------------

// One parameter of a returned-control invocation (all values are text, as
// the agent's model produced them; `type` is the schema's type).
struct InvocationParameter {
  std::string name, type, value;
};

// A function of a function-schema action group the agent wants run
// (returnControl invocationInputs[].functionInvocationInput).
struct FunctionInvocation {
  std::string action_group{};
  std::string function{};
  using Parameter = InvocationParameter;
  std::vector<Parameter> parameters{};
  std::string action_invocation_type{};  // RESULT | USER_CONFIRMATION | USER_CONFIRMATION_AND_RESULT ("" unset)
  std::string agent_id{};                // multi-agent collaboration: the collaborator that asks
  std::string collaborator_name{};
};

// An operation of an API-schema (OpenAPI) action group the agent wants run
// (returnControl invocationInputs[].apiInvocationInput).
struct ApiInvocation {
  std::string action_group{};
  std::string http_method{};  // as sent ("GET", "POST", ...; compare ignoring case)
  std::string api_path{};     // the schema's path, templated: "/assets/{assetId}/repairs"
  std::vector<InvocationParameter> parameters{};  // path, query and header parameters
  // requestBody.content: media type ("application/json") -> its properties.
  std::map<std::string, std::vector<InvocationParameter>> request_body{};
  std::string action_invocation_type{};
  std::string agent_id{};
  std::string collaborator_name{};
};

// The result of one returned-control invocation, sent back in
// sessionState.returnControlInvocationResults: a functionResult, or an
// apiResult when `api_path` is set. Make them with ForFunction / ForApi.
struct ReturnControlResult {
  std::string action_group{};
  std::string function{};        // functionResult
  std::string response_body{};   // the body text (for an API: usually JSON text)
  std::string response_state{};  // "" | "FAILURE" | "REPROMPT"
  // apiResult: the apiPath and httpMethod of the ApiInvocation, unchanged.
  std::string api_path{};
  std::string http_method{};
  std::optional<int> http_status_code{};  // apiResult.httpStatusCode
  // The responseBody key: "" = "TEXT" for a function, "application/json" for an API.
  std::string content_type{};
  std::string agent_id{};            // echo of the invocation's agentId (multi-agent), when set
  std::string confirmation_state{};  // "" | "CONFIRM" | "DENY" (USER_CONFIRMATION invocations)

  bool is_api() const { return !api_path.empty(); }
  static ReturnControlResult ForFunction(const FunctionInvocation& invocation, std::string body,
                                         std::string response_state = "");
  static ReturnControlResult ForApi(const ApiInvocation& invocation, std::string body, int http_status_code = 200,
                                    std::string response_state = "");
};

struct InvokeAgentRequest {
  std::string agent_alias_arn{};  // arn:aws:bedrock:REGION:ACCOUNT:agent-alias/AGENT/ALIAS
  std::string session_id{};       // [0-9a-zA-Z._:-]+, 2..100
  std::string input_text{};       // may be empty when returning control results
  bool enable_trace = false;
  bool end_session = false;
  bool stream_final_response = false;
  // Reply to a returnControl: its invocation id and one result per invocation input.
  std::string return_control_invocation_id{};
  std::vector<ReturnControlResult> return_control_results{};
  std::map<std::string, std::string> session_attributes{};
  std::map<std::string, std::string> prompt_session_attributes{};
  CallOptions options{};
};

struct CitationReference {
  std::string text{};  // the retrieved passage
  std::string uri;   // location (s3 uri, web url, ...), when present
};

struct Citation {
  std::string generated_text{};  // the part of the answer it supports
  std::vector<CitationReference> references{};
};

struct AgentChunk {
  std::string text{};
  std::vector<Citation> citations{};
};

// The agent handed control back: run the functions and API operations, then
// call InvokeAgent again in the same session with return_control_invocation_id
// and one result per invocation (ReturnControlResult::ForFunction / ForApi).
struct ReturnControl {
  std::string invocation_id{};
  std::vector<FunctionInvocation> invocations{};  // function-schema action groups
  std::vector<ApiInvocation> api_invocations{};   // API-schema action groups
  nlohmann::json raw{};  // the event payload
};

// A file the agent produced (code interpreter output: a `files` event).
struct AgentFile {
  std::string name{};
  std::string media_type{};  // "text/csv", "image/png", ...
  std::string bytes{};       // the decoded content
};

struct AgentResult {
  std::string completion{};  // all chunk texts concatenated
  std::vector<Citation> citations{};
  std::vector<nlohmann::json> traces{};  // each trace event payload
  std::optional<ReturnControl> return_control{};
  // Files of `files` events, in order. Bounded like the whole response: one
  // event is at most max_stream_buffer_bytes, all of them together at most
  // max_response_bytes (ResponseTooLarge otherwise).
  std::vector<AgentFile> files{};
  std::string session_id{};
  std::string request_id{};
  int attempts = 0;
};

struct AgentCallbacks {
  std::function<void(const AgentChunk&)> on_chunk{};      // optional
  std::function<void(const nlohmann::json&)> on_trace{};  // optional
  std::function<void(const AgentFile&)> on_file{};        // optional
};

// ---------------------------------------------------------------------------
// Control plane and STS
// ---------------------------------------------------------------------------

struct FoundationModelInfo {
  std::string model_id, model_arn, model_name, provider_name;
  std::vector<std::string> inference_types{};  // ON_DEMAND, INFERENCE_PROFILE, PROVISIONED
  bool streaming = false;
  std::string lifecycle_status{};  // ACTIVE | LEGACY
  nlohmann::json raw{};            // modelDetails
};

struct AgentAliasInfo {
  bool exists = false;  // false: ResourceNotFound (the other fields are empty)
  std::string agent_id, alias_id, alias_name, alias_arn;
  std::string status{};         // PREPARED, FAILED, ...
  std::string agent_version{};  // "" when the alias has no version
  bool has_version = false;
  bool prepared = false;      // status == PREPARED and has_version
  nlohmann::json raw{};         // agentAlias
};

struct CallerIdentity {
  std::string account, arn, user_id;
};

// ---------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------

struct BedrockClientOptions {
  std::string region{};  // validated with aws::ParseRegion
  bool use_fips = false;
  bool use_dual_stack = false;
  // One URL for every service ("http://127.0.0.1:4566"); empty: AWS endpoints.
  std::string endpoint_url{};
  // Per-service overrides (win over endpoint_url).
  std::map<aws::AwsService, std::string> service_endpoints{};

  // IAM credentials (SigV4) and/or a Bedrock API key. At least one.
  std::shared_ptr<aws::CredentialProvider> credentials{};
  std::optional<std::string> bearer_token{};

  aws::RetryConfig retry{};
  std::shared_ptr<aws::RetryQuota> retry_quota{};  // nullptr: one owned by the client
  aws::RandomSource random;                      // nullptr: aws::DefaultRandomSource()
  Deadlines deadlines{};
  size_t max_response_bytes = 16 * 1024 * 1024;  // any response body, buffered or streamed
  // Pending bytes of one event-stream frame. An InvokeAgent `files` event
  // carries up to five files of up to 1,000,000 bytes each (base64 in JSON:
  // about 6.7 MB), hence 8 MiB; a larger frame fails with ResponseTooLarge.
  size_t max_stream_buffer_bytes = 8 * 1024 * 1024;

  const Clock* clock = nullptr;                   // nullptr: SystemClock; must outlive the client
  std::shared_ptr<net::HttpClient> http_client{};  // nullptr: the client creates one
  // For the HTTP client the client creates (ignored with http_client): a PEM
  // file of CA certificates to trust instead of the system's (AWS_CA_BUNDLE /
  // a profile's ca_bundle, see aws::ResolveCaBundle). Create() fails when it
  // cannot be read.
  std::string ca_bundle{};
};

class BedrockClient {
 public:
  // Errors (InvalidArgument / FailedPrecondition): a bad region, endpoint URL,
  // retry config, or neither credentials nor a bearer token.
  static Result<std::unique_ptr<BedrockClient>> Create(BedrockClientOptions options);
  ~BedrockClient();
  BedrockClient(const BedrockClient&) = delete;
  BedrockClient& operator=(const BedrockClient&) = delete;

  // --- asynchronous --------------------------------------------------------
  CallHandle InvokeModel(const ModelRequest& request, Completion<ModelResult> done);
  CallHandle InvokeModelWithResponseStream(const ModelRequest& request, DeltaCallback on_delta,
                                           Completion<ModelResult> done);
  CallHandle Converse(const ModelRequest& request, Completion<ModelResult> done);
  CallHandle ConverseStream(const ModelRequest& request, DeltaCallback on_delta,
                            Completion<ModelResult> done);
  CallHandle InvokeAgent(const InvokeAgentRequest& request, AgentCallbacks callbacks,
                         Completion<AgentResult> done);
  // Every page of ListFoundationModels and of ListInferenceProfiles (SYSTEM_DEFINED
  // and APPLICATION), merged by bedrock::MergeCatalogue.
  CallHandle ListCatalogue(Completion<ModelCatalogue> done, CallOptions options = {});
  CallHandle GetFoundationModel(const std::string& model_id, Completion<FoundationModelInfo> done,
                                CallOptions options = {});
  // A missing alias is a success with exists == false.
  CallHandle GetAgentAlias(const std::string& agent_alias_arn, Completion<AgentAliasInfo> done,
                           CallOptions options = {});
  CallHandle GetCallerIdentity(Completion<CallerIdentity> done, CallOptions options = {});
  // With `source` set, signs with those credentials instead of the client's.
  CallHandle AssumeRole(const aws::AssumeRoleRequest& request, std::optional<aws::Credentials> source,
                        Completion<aws::Credentials> done, CallOptions options = {});

  // --- blocking wrappers (tools, tests; never from a callback) -------------
  BedrockResult<ModelResult> InvokeModel(const ModelRequest& request);
  BedrockResult<ModelResult> InvokeModelWithResponseStream(const ModelRequest& request,
                                                           DeltaCallback on_delta = nullptr);
  BedrockResult<ModelResult> Converse(const ModelRequest& request);
  BedrockResult<ModelResult> ConverseStream(const ModelRequest& request, DeltaCallback on_delta = nullptr);
  BedrockResult<AgentResult> InvokeAgent(const InvokeAgentRequest& request, AgentCallbacks callbacks = {});
  BedrockResult<ModelCatalogue> ListCatalogue(CallOptions options = {});
  BedrockResult<FoundationModelInfo> GetFoundationModel(const std::string& model_id, CallOptions options = {});
  BedrockResult<AgentAliasInfo> GetAgentAlias(const std::string& agent_alias_arn, CallOptions options = {});
  BedrockResult<CallerIdentity> GetCallerIdentity(CallOptions options = {});
  BedrockResult<aws::Credentials> AssumeRole(const aws::AssumeRoleRequest& request,
                                             std::optional<aws::Credentials> source = std::nullopt,
                                             CallOptions options = {});

  const std::string& region() const;
  // The endpoint URL ("https://host[:port]") used for `service`.
  std::string EndpointUrl(aws::AwsService service) const;
  aws::RetryQuota& retry_quota() const;

  class Impl;

 private:
  explicit BedrockClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_{};
};

// An aws::RoleAssumer backed by STS AssumeRole, for assume-role profiles
// (wrap the chain in aws::CachingCredentialProvider so temporary credentials
// are refreshed before they expire). It owns a BedrockClient made from
// `options` (its credentials/bearer token are ignored: each call signs with
// the source credentials it is given), so it can be handed to the credential
// chain before the main client exists.
// Errors: as BedrockClient::Create.
Result<std::unique_ptr<aws::RoleAssumer>> MakeStsRoleAssumer(BedrockClientOptions options);

}  // namespace quarry::bedrock
