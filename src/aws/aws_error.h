#pragma once
// AWS error responses: parsing (client side), rendering (emulator side) and
// retry classification.
//
// Protocols (aws-protocol.md §8):
//  - rest-json (all four Bedrock services): non-2xx status, error code in the
//    `x-amzn-ErrorType` header, else the body's `__type` / `code` / `Code`;
//    the code is sanitised by keeping what precedes the first ':' and follows
//    the last '#' (botocore RestJSONParser._inject_error_code,
//    BaseJSONParser._do_error_parse; aws-sdk-go-v2 SanitizeErrorCode). The
//    message is the body's `message`, `Message` or `errorMessage`; the request
//    id is the `x-amzn-RequestId` header.
//  - STS (awsQuery): an XML body
//      <ErrorResponse><Error><Type>Sender</Type><Code>..</Code>
//      <Message>..</Message></Error><RequestId>..</RequestId></ErrorResponse>
//  - Fallbacks, because what answers is not always the service: a VPC
//    endpoint, gateway or proxy in front of it may send an AWS XML error in
//    any of its shapes (<ErrorResponse><Error>.., a bare <Error><Code>..
//    </Error> as REST-XML services send, EC2's <Response><Errors><Error>..),
//    which every parser reads like its own protocol's error; STS's parser
//    reads a JSON error body too. A body that is neither (an HTML error page,
//    plain text) gives code "HTTP <status>" and a message saying what came
//    back (status, Content-Type, an HTML page's title, the first 200
//    characters with whitespace collapsed and non-printable bytes replaced)
//    and that something other than the service answered, so the endpoint URL
//    and proxy settings are what to check. A rest-json response carrying
//    x-amzn-ErrorType did come from the service; its non-JSON body is only
//    previewed.
//  - event streams: an exception message carries `:exception-type` (the
//    member name, lower camel case in the Bedrock models, e.g.
//    "throttlingException") and a JSON payload; callers pass the two strings.
//
// Classification (aws-protocol.md §9) is by (service, code, HTTP status):
// throttling codes and HTTP 429 are throttling; 500/502/503/504, connection
// failures without a response, RequestTimeout-style codes and bedrock-runtime's
// ModelNotReadyException (429, modelled retryable, not throttling) are
// transient; everything else (Validation, AccessDenied, ResourceNotFound,
// ServiceQuotaExceeded, ModelTimeout 408, ModelError / ModelStreamError /
// DependencyFailed 424, Conflict, auth errors, and agent-runtime's
// ModelNotReadyException, which is 424) is not retryable. Code comparison
// ignores ASCII case, so the stream spelling "throttlingException" counts
// exactly like "ThrottlingException".
//
// All parsers are total: they never fail, never throw, and bound what they
// keep (code 128 bytes, message 2 KiB, a non-JSON body preview 200 bytes;
// bodies over 256 KiB are not parsed as JSON/XML).
//
// Thread safety: pure functions over values.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace quarry::aws {

// HTTP header fields as (name, value); names compare case-insensitively.
using HeaderList = std::vector<std::pair<std::string, std::string>>;

// The value of the first header called `name` (ASCII case-insensitive).
std::optional<std::string_view> FindHeader(const HeaderList& headers, std::string_view name);

enum class RetryClass {
  kNotRetryable,
  kThrottling,  // back off longer; cheaper on the retry quota (2026 behaviour)
  kTransient,   // server or network hiccup
};
std::string_view RetryClassName(RetryClass retry_class);  // "not-retryable", ...

struct AwsError {
  std::string code;       // sanitised, upper camel: "ThrottlingException"; "HTTP 502" if none
  int http_status = 0;    // 0 = no HTTP response (connection error, timeout)
  std::string request_id;
  std::string message;    // bounded; may be empty
  std::string service;    // endpoint prefix: "bedrock-runtime", "sts", ... ("" unknown)
  std::string fault;      // STS <Type>: "Sender" or "Receiver"
  bool in_stream = false; // raised as an event-stream exception
  bool timeout = false;   // no response because the attempt timed out
  // The body was no AWS error document (an HTML page, plain text): a proxy,
  // load balancer or another server answered, not the service.
  bool not_from_service = false;
  RetryClass retry_class = RetryClass::kNotRetryable;
  // `x-amz-retry-after` in milliseconds, when present and valid.
  std::optional<std::chrono::milliseconds> retry_after;
  // Extra modelled members as text: resourceName, originalStatusCode,
  // originalMessage, reason (bounded; strings and numbers only).
  std::vector<std::pair<std::string, std::string>> fields;

  // The value of a field, or nullopt.
  std::optional<std::string_view> Field(std::string_view name) const;

  // "ThrottlingException (HTTP 429, request id abc): Too many requests".
  std::string ToString() const;

  // A Status for this error: the code's canonical meaning (throttling and
  // quotas -> kResourceExhausted, AccessDenied -> kPermissionDenied, auth
  // errors -> kUnauthenticated, Validation -> kInvalidArgument, NotFound ->
  // kNotFound, timeouts -> kDeadlineExceeded, 5xx and connection errors ->
  // kUnavailable, ...) with ToString() as the message.
  Status ToStatus() const;
};

// Keeps what precedes the first ':' and follows the last '#', trims spaces,
// drops characters outside [A-Za-z0-9_.-] and bounds the length (128).
// "aws.protocoltests#FooError:http://internal.amazon.com/" -> "FooError".
std::string SanitizeErrorCode(std::string_view raw);

// The retry class of `code` / `http_status` returned by `service`.
RetryClass ClassifyError(std::string_view service, std::string_view code, int http_status);

// True for codes that mean the request was throttled (§9 list), any case.
bool IsThrottlingCode(std::string_view code);

// Parses a rest-json error response (falling back to an AWS XML error
// document, then to the "not from the service" message above). `service` is
// the endpoint prefix used for classification and messages
// ("bedrock-runtime", "bedrock-agent-runtime", ...).
AwsError ParseRestJsonError(std::string_view service, int http_status, const HeaderList& headers,
                            std::string_view body);

// Parses an STS (query protocol) XML error response (or a JSON one; other
// bodies as above).
AwsError ParseStsXmlError(int http_status, const HeaderList& headers, std::string_view body);

// An exception delivered inside an event stream: `exception_type` is the
// `:exception-type` header ("throttlingException", "modelStreamErrorException",
// ...), `payload` its JSON payload. http_status is 200 (the stream's).
AwsError ParseStreamException(std::string_view service, std::string_view exception_type,
                              std::string_view payload);

// An attempt that got no HTTP response. `detail` is the transport's message.
AwsError MakeConnectionError(std::string_view service, std::string_view detail, bool timeout);

// Emulator side: a rest-json error response for `error` (status, headers
// x-amzn-ErrorType, x-amzn-RequestId when set, Content-Type
// application/json, x-amz-retry-after when set; body {"message": ..., plus
// fields}).
struct RenderedError {
  int http_status = 500;
  HeaderList headers;
  std::string body;
};
RenderedError RenderRestJsonError(const AwsError& error);

// Emulator side: the STS ErrorResponse XML body for `error` (XML-escaped;
// <Type> is `fault`, or Sender for 4xx and Receiver otherwise).
std::string RenderStsXmlError(const AwsError& error);

namespace internal {
// Replaces &amp; &lt; &gt; &quot; &apos; &#NN; &#xHH; (as UTF-8); anything
// malformed is kept literally.
std::string XmlUnescape(std::string_view text);
std::string XmlEscape(std::string_view text);
// The text of the first element `name` inside `xml` (bounded to 4 KiB,
// CDATA taken verbatim, otherwise entity-unescaped); nullopt when absent.
std::optional<std::string> FindXmlElementText(std::string_view xml, std::string_view name);
}  // namespace internal

}  // namespace quarry::aws
