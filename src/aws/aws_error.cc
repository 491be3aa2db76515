#include "aws/aws_error.h"

#include <algorithm>
#include <array>
#include <charconv>

#include <nlohmann/json.hpp>

#include "common/encoding.h"

namespace quarry::aws {
namespace {

constexpr size_t kMaxCodeLength = 128;
constexpr size_t kMaxMessageLength = 2048;
constexpr size_t kMaxFieldLength = 512;
constexpr size_t kMaxRequestIdLength = 128;
constexpr size_t kBodyPreviewLength = 200;
constexpr size_t kMaxParsedBody = 256 * 1024;
constexpr size_t kMaxXmlElementText = 4096;

// aws-protocol.md §9 (botocore retries/standard.py): throttling error codes.
constexpr std::array<std::string_view, 13> kThrottlingCodes = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "EC2ThrottledException",
};

// Transient by code: the §9 timeout codes, and the 5xx exceptions of the
// Bedrock models, which in an event stream arrive without their status.
constexpr std::array<std::string_view, 8> kTransientCodes = {
    "RequestTimeout",          "RequestTimeoutException",     "PriorRequestNotComplete",
    "InternalServerException", "ServiceUnavailableException", "BadGatewayException",
    "InternalFailure",         "ServiceUnavailable",
};

constexpr std::array<std::string_view, 10> kAuthCodes = {
    "UnrecognizedClientException",  "InvalidSignatureException",
    "ExpiredTokenException",        "ExpiredToken",
    "IncompleteSignatureException", "MissingAuthenticationTokenException",
    "InvalidClientTokenId",         "SignatureDoesNotMatch",
    "AuthFailure",                  "MissingAuthenticationToken",
};

template <size_t N>
bool ContainsIgnoreCase(const std::array<std::string_view, N>& list, std::string_view code) {
  for (std::string_view c : list) {
    if (EqualsIgnoreAsciiCase(c, code)) return true;
  }
  return false;
}

// Cuts `text` to at most `max` bytes without splitting a UTF-8 sequence.
std::string Bounded(std::string_view text, size_t max) {
  if (text.size() <= max) return std::string(text);
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return std::string(text.substr(0, end)) + "...";
}

// A printable, single-line preview of a body we could not parse.
std::string Preview(std::string_view body) {
  std::string out;
  const size_t n = body.size() < kBodyPreviewLength ? body.size() : kBodyPreviewLength;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(body[i]);
    out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : (c < 0x80 ? ' ' : '?'));
  }
  if (n < body.size()) out += "...";
  return out;
}

// Request ids are opaque tokens; keep only token characters.
std::string CleanRequestId(std::string_view id) {
  std::string out;
  for (char c : id) {
    if (out.size() >= kMaxRequestIdLength) break;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == ':' || c == '/' || c == '+' || c == '=') {
      out.push_back(c);
    }
  }
  return out;
}

std::optional<std::chrono::milliseconds> ParseRetryAfter(const HeaderList& headers) {
  const std::optional<std::string_view> value = FindHeader(headers, "x-amz-retry-after");
  if (!value) return std::nullopt;
  const std::string_view v = TrimAsciiWhitespace(*value);
  if (v.empty() || v.size() > 9) return std::nullopt;  // at most ~11.5 days
  int64_t ms = 0;
  const auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), ms);
  if (ec != std::errc() || ptr != v.data() + v.size() || ms < 0) return std::nullopt;
  return std::chrono::milliseconds(ms);
}

std::string FirstLetterUpper(std::string code) {
  if (!code.empty() && code[0] >= 'a' && code[0] <= 'z') code[0] = static_cast<char>(code[0] - 32);
  return code;
}

// The members of a JSON error body we keep besides the message.
constexpr std::array<std::string_view, 5> kExtraFields = {
    "resourceName", "originalStatusCode", "originalMessage", "reason", "fieldList"};

// Reads message and extra fields from a parsed JSON object body.
void ReadJsonBody(const nlohmann::json& body, AwsError* error) {
  for (std::string_view key : {"message", "Message", "errorMessage"}) {
    const auto it = body.find(key);
    if (it != body.end() && it->is_string()) {
      error->message = Bounded(it->get_ref<const std::string&>(), kMaxMessageLength);
      break;
    }
  }
  for (std::string_view key : kExtraFields) {
    const auto it = body.find(key);
    if (it == body.end()) continue;
    std::string value;
    if (it->is_string()) {
      value = it->get_ref<const std::string&>();
    } else if (it->is_number() || it->is_boolean() || it->is_array() || it->is_object()) {
      value = it->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } else {
      continue;
    }
    error->fields.emplace_back(std::string(key), Bounded(value, kMaxFieldLength));
  }
}

// The body's __type / code / Code, unsanitised.
std::string BodyCode(const nlohmann::json& body) {
  for (std::string_view key : {"__type", "code", "Code"}) {
    const auto it = body.find(key);
    if (it != body.end() && it->is_string()) return it->get<std::string>();
  }
  return "";
}

std::string HttpCode(int http_status) { return "HTTP " + std::to_string(http_status); }

// The body without leading whitespace and a UTF-8 byte order mark.
std::string_view SkipLeadingSpace(std::string_view body) {
  if (body.starts_with("\xEF\xBB\xBF")) body.remove_prefix(3);
  while (!body.empty() && (body.front() == ' ' || body.front() == '\t' || body.front() == '\r' ||
                           body.front() == '\n')) {
    body.remove_prefix(1);
  }
  return body;
}

bool StartsWithIgnoreCase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && EqualsIgnoreAsciiCase(text.substr(0, prefix.size()), prefix);
}

// An HTML page (a proxy's or load balancer's error page, a captive portal):
// by Content-Type, or by how the document starts.
bool LooksLikeHtml(std::string_view content_type, std::string_view body) {
  if (StartsWithIgnoreCase(TrimAsciiWhitespace(content_type), "text/html")) return true;
  const std::string_view start = SkipLeadingSpace(body);
  for (std::string_view tag : {"<!doctype html", "<html", "<head", "<body", "<title", "<center", "<h1"}) {
    if (StartsWithIgnoreCase(start, tag)) return true;
  }
  return false;
}

// A printable, single-line rendering of a header value we echo in a message.
std::string CleanHeaderValue(std::string_view value) {
  std::string out;
  for (char c : TrimAsciiWhitespace(value)) {
    if (out.size() >= 100) {
      out += "...";
      break;
    }
    const unsigned char u = static_cast<unsigned char>(c);
    out.push_back(u >= 0x20 && u < 0x7f ? c : '?');
  }
  return out;
}

// Like Preview, but runs of whitespace (an HTML page's indentation) become
// one space, so the 200 characters show text rather than blanks.
std::string CompactPreview(std::string_view body) {
  std::string flat;
  flat.reserve(std::min(body.size(), kBodyPreviewLength * 4));
  bool space = false;
  for (char c : SkipLeadingSpace(body)) {
    if (flat.size() > kBodyPreviewLength) break;
    const unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) {
      space = true;
      continue;
    }
    if (space && !flat.empty()) flat.push_back(' ');
    space = false;
    flat.push_back(c);
  }
  std::string out = Preview(flat);
  if (flat.size() > kBodyPreviewLength && !out.ends_with("...")) out += "...";
  return out;
}

// What the service is called in a message.
std::string ServiceLabel(std::string_view service) {
  if (service == "sts") return "AWS STS";
  if (service.starts_with("bedrock")) return "Amazon Bedrock (" + std::string(service) + ")";
  if (service.empty()) return "the AWS service";
  return "the AWS service " + std::string(service);
}

// The message for a body that is no AWS error document: what came back, and
// that something other than the service answered.
std::string ForeignBodyMessage(std::string_view service, int http_status, const HeaderList& headers,
                               std::string_view body) {
  const std::optional<std::string_view> content_type = FindHeader(headers, "Content-Type");
  const bool html = LooksLikeHtml(content_type.value_or(""), body);
  std::string out = "HTTP " + std::to_string(http_status) + " with ";
  out += content_type ? "Content-Type " + CleanHeaderValue(*content_type) : std::string("no Content-Type");
  out += html ? " (an HTML page)" : "";
  out += " and a body that is not an AWS error response";
  if (html) {
    if (auto title = internal::FindXmlElementText(body.substr(0, kMaxParsedBody), "title")) {
      const std::string t = CompactPreview(*title);
      if (!t.empty()) out += ", titled \"" + t + "\"";
    }
  }
  out += ": \"" + CompactPreview(body) + "\". This reply did not come from " + ServiceLabel(service) +
         " but from something in between (an HTTP proxy, a load balancer, a VPC endpoint or a firewall) or from "
         "another server: check the endpoint URL and the proxy settings (HTTPS_PROXY, NO_PROXY).";
  return out;
}

// The parts of an AWS XML error document, any of its shapes:
//   <ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>   (query: STS, ...)
//   <Error><Code/><Message/><RequestId/></Error>                                          (REST-XML: S3, ...)
//   <Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>    (EC2)
struct XmlErrorDocument {
  std::string code;  // raw (not yet sanitised)
  std::optional<std::string> message;
  std::optional<std::string> type;
  std::optional<std::string> request_id;
};

// The first <Error> element (not <Errors>, not <ErrorResponse>) with a
// <Code>; nullopt when there is none or the body is not XML.
std::optional<XmlErrorDocument> ParseXmlErrorDocument(std::string_view body) {
  const std::string_view xml = SkipLeadingSpace(body.substr(0, kMaxParsedBody));
  if (!xml.starts_with("<")) return std::nullopt;
  size_t pos = 0;
  while ((pos = xml.find("<Error", pos)) != std::string_view::npos) {
    const size_t after = pos + 6;
    if (after >= xml.size()) return std::nullopt;
    const char next = xml[after];
    if (next != '>' && next != ' ' && next != '\t' && next != '\r' && next != '\n') {
      pos = after;  // <Errors>, <ErrorResponse>
      continue;
    }
    const size_t end = xml.find("</Error>", after);
    // Look for Code/Message/Type inside <Error> only, so that a stray element
    // elsewhere cannot be taken for them.
    const std::string_view scope =
        xml.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos + 8);
    std::optional<std::string> code = internal::FindXmlElementText(scope, "Code");
    if (!code || SanitizeErrorCode(*code).empty()) {
      pos = after;
      continue;
    }
    XmlErrorDocument doc;
    doc.code = std::move(*code);
    doc.message = internal::FindXmlElementText(scope, "Message");
    doc.type = internal::FindXmlElementText(scope, "Type");
    doc.request_id = internal::FindXmlElementText(xml, "RequestId");
    if (!doc.request_id) doc.request_id = internal::FindXmlElementText(xml, "RequestID");
    return doc;
  }
  return std::nullopt;
}

void ReadRequestIdHeader(const HeaderList& headers, AwsError* error) {
  if (auto id = FindHeader(headers, "x-amzn-RequestId")) {
    error->request_id = CleanRequestId(*id);
  } else if (auto alt = FindHeader(headers, "x-amz-request-id")) {
    error->request_id = CleanRequestId(*alt);
  }
}

// Fills code (when not set yet), message, fault and request id from an XML
// error document.
void ReadXmlErrorDocument(const XmlErrorDocument& doc, AwsError* error) {
  if (error->code.empty()) error->code = SanitizeErrorCode(doc.code);
  if (doc.message) error->message = Bounded(*doc.message, kMaxMessageLength);
  if (doc.type) error->fault = SanitizeErrorCode(*doc.type);
  if (doc.request_id && !CleanRequestId(*doc.request_id).empty()) {
    error->request_id = CleanRequestId(*doc.request_id);
  }
}

}  // namespace

std::optional<std::string_view> FindHeader(const HeaderList& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoreAsciiCase(key, name)) return std::string_view(value);
  }
  return std::nullopt;
}

std::string_view RetryClassName(RetryClass retry_class) {
  switch (retry_class) {
    case RetryClass::kNotRetryable:
      return "not-retryable";
    case RetryClass::kThrottling:
      return "throttling";
    case RetryClass::kTransient:
      return "transient";
  }
  return "not-retryable";
}

std::optional<std::string_view> AwsError::Field(std::string_view name) const {
  for (const auto& [key, value] : fields) {
    if (key == name) return std::string_view(value);
  }
  return std::nullopt;
}

std::string AwsError::ToString() const {
  std::string out = code.empty() ? std::string("AWS error") : code;
  std::string details;
  if (http_status > 0 && !code.starts_with("HTTP ")) details = "HTTP " + std::to_string(http_status);
  if (in_stream) details += std::string(details.empty() ? "" : ", ") + "in the response stream";
  if (!service.empty()) details += (details.empty() ? "" : ", ") + service;
  if (!request_id.empty()) details += (details.empty() ? "" : ", ") + ("request id " + request_id);
  if (!details.empty()) out += " (" + details + ")";
  if (!message.empty()) out += ": " + message;
  return out;
}

Status AwsError::ToStatus() const {
  StatusCode status_code = StatusCode::kUnknown;
  const auto is = [this](std::string_view c) { return EqualsIgnoreAsciiCase(code, c); };
  if (retry_class == RetryClass::kThrottling || is("ServiceQuotaExceededException")) {
    status_code = StatusCode::kResourceExhausted;
  } else if (ContainsIgnoreCase(kAuthCodes, code)) {
    status_code = StatusCode::kUnauthenticated;
  } else if (is("AccessDeniedException") || is("AccessDenied")) {
    status_code = StatusCode::kPermissionDenied;
  } else if (is("ValidationException") || is("ValidationError")) {
    status_code = StatusCode::kInvalidArgument;
  } else if (is("ResourceNotFoundException")) {
    status_code = StatusCode::kNotFound;
  } else if (is("ConflictException")) {
    status_code = StatusCode::kAborted;
  } else if (timeout || is("ModelTimeoutException") || is("RequestTimeout") ||
             is("RequestTimeoutException")) {
    status_code = StatusCode::kDeadlineExceeded;
  } else if (is("ModelErrorException") || is("ModelStreamErrorException")) {
    status_code = StatusCode::kInternal;
  } else if (retry_class == RetryClass::kTransient || is("ModelNotReadyException") ||
             is("DependencyFailedException") || is("BadGatewayException")) {
    status_code = StatusCode::kUnavailable;
  } else if (http_status == 400) {
    status_code = StatusCode::kInvalidArgument;
  } else if (http_status == 401) {
    status_code = StatusCode::kUnauthenticated;
  } else if (http_status == 403) {
    status_code = StatusCode::kPermissionDenied;
  } else if (http_status == 404) {
    status_code = StatusCode::kNotFound;
  } else if (http_status == 408) {
    status_code = StatusCode::kDeadlineExceeded;
  } else if (http_status == 409) {
    status_code = StatusCode::kAborted;
  } else if (http_status >= 500 || http_status == 0) {
    status_code = StatusCode::kUnavailable;
  }
  return Status(status_code, ToString());
}

std::string SanitizeErrorCode(std::string_view raw) {
  std::string_view code = raw;
  if (const size_t colon = code.find(':'); colon != std::string_view::npos) {
    code = code.substr(0, colon);
  }
  if (const size_t hash = code.rfind('#'); hash != std::string_view::npos) {
    code = code.substr(hash + 1);
  }
  code = TrimAsciiWhitespace(code);
  std::string out;
  for (char c : code) {
    if (out.size() >= kMaxCodeLength) break;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
        c == '.' || c == '-') {
      out.push_back(c);
    }
  }
  return out;
}

bool IsThrottlingCode(std::string_view code) { return ContainsIgnoreCase(kThrottlingCodes, code); }

RetryClass ClassifyError(std::string_view service, std::string_view code, int http_status) {
  if (EqualsIgnoreAsciiCase(code, "ModelNotReadyException")) {
    // Modelled `retryable {throttling: false}` in bedrock-runtime (HTTP 429);
    // in bedrock-agent-runtime it is a 424 with no retry trait.
    return service == "bedrock-runtime" ? RetryClass::kTransient : RetryClass::kNotRetryable;
  }
  if (IsThrottlingCode(code)) return RetryClass::kThrottling;
  if (ContainsIgnoreCase(kTransientCodes, code)) return RetryClass::kTransient;
  if (http_status == 429) return RetryClass::kThrottling;
  if (http_status == 500 || http_status == 502 || http_status == 503 || http_status == 504) {
    return RetryClass::kTransient;
  }
  if (http_status == 0) return RetryClass::kTransient;  // no response at all
  return RetryClass::kNotRetryable;
}

AwsError ParseRestJsonError(std::string_view service, int http_status, const HeaderList& headers,
                            std::string_view body) {
  AwsError error;
  error.http_status = http_status;
  error.service = std::string(service);
  ReadRequestIdHeader(headers, &error);
  error.retry_after = ParseRetryAfter(headers);
  if (auto header_code = FindHeader(headers, "x-amzn-ErrorType")) {
    error.code = SanitizeErrorCode(*header_code);
  }
  // With x-amzn-ErrorType the service itself answered, whatever the body.
  const bool from_service = !error.code.empty();

  nlohmann::json parsed;
  if (body.size() <= kMaxParsedBody) {
    parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  }
  if (parsed.is_object()) {
    if (error.code.empty()) error.code = SanitizeErrorCode(BodyCode(parsed));
    ReadJsonBody(parsed, &error);
  } else if (std::optional<XmlErrorDocument> xml;
             !LooksLikeHtml("", body) && (xml = ParseXmlErrorDocument(body))) {
    // An AWS XML error (a VPC endpoint, a gateway or an S3-style front end
    // answered in the query / REST-XML shape): as good as the JSON one.
    ReadXmlErrorDocument(*xml, &error);
  } else if (!body.empty()) {
    if (from_service) {
      error.message = "response body is not JSON: " + Preview(body);
    } else {
      error.message = ForeignBodyMessage(service, http_status, headers, body);
      error.not_from_service = true;
    }
  }
  if (error.code.empty()) {
    error.code = HttpCode(http_status);
    if (error.message.empty()) error.message = body.empty() ? "empty response body" : "";
  }
  error.retry_class = ClassifyError(service, error.code, http_status);
  return error;
}

AwsError ParseStsXmlError(int http_status, const HeaderList& headers, std::string_view body) {
  // STS also speaks JSON (the awsQueryCompatible JSON protocol); a JSON body
  // is read as such.
  if (SkipLeadingSpace(body).starts_with("{")) {
    AwsError json_error = ParseRestJsonError("sts", http_status, headers, body);
    if (!json_error.code.starts_with("HTTP ")) return json_error;
  }
  AwsError error;
  error.http_status = http_status;
  error.service = "sts";
  error.retry_after = ParseRetryAfter(headers);
  // The document decides, not its Content-Type: AWS-compatible servers (moto
  // among them) label their XML errors text/html.
  if (!LooksLikeHtml("", body)) {
    if (std::optional<XmlErrorDocument> xml = ParseXmlErrorDocument(body)) ReadXmlErrorDocument(*xml, &error);
  }
  if (error.request_id.empty()) ReadRequestIdHeader(headers, &error);
  if (error.code.empty()) {
    error.code = HttpCode(http_status);
    if (error.message.empty()) {
      error.message = body.empty() ? "empty response body" : ForeignBodyMessage("sts", http_status, headers, body);
      error.not_from_service = !body.empty();
    }
  }
  error.retry_class = ClassifyError("sts", error.code, http_status);
  return error;
}

AwsError ParseStreamException(std::string_view service, std::string_view exception_type,
                              std::string_view payload) {
  AwsError error;
  error.http_status = 200;
  error.in_stream = true;
  error.service = std::string(service);
  error.code = FirstLetterUpper(SanitizeErrorCode(exception_type));
  nlohmann::json parsed;
  if (payload.size() <= kMaxParsedBody) {
    parsed = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
  }
  if (parsed.is_object()) {
    ReadJsonBody(parsed, &error);
  } else if (!payload.empty()) {
    error.message = "exception payload is not JSON: " + Preview(payload);
  }
  if (error.code.empty()) error.code = "UnknownStreamException";
  error.retry_class = ClassifyError(service, error.code, error.http_status);
  return error;
}

AwsError MakeConnectionError(std::string_view service, std::string_view detail, bool timeout) {
  AwsError error;
  error.service = std::string(service);
  error.timeout = timeout;
  error.code = timeout ? "RequestTimeout" : "ConnectionError";
  error.message = Bounded(detail, kMaxMessageLength);
  error.retry_class = RetryClass::kTransient;
  return error;
}

RenderedError RenderRestJsonError(const AwsError& error) {
  RenderedError out;
  out.http_status = error.http_status > 0 ? error.http_status : 500;
  out.headers.emplace_back("Content-Type", "application/json");
  out.headers.emplace_back("x-amzn-ErrorType", SanitizeErrorCode(error.code));
  if (!error.request_id.empty()) {
    out.headers.emplace_back("x-amzn-RequestId", CleanRequestId(error.request_id));
  }
  if (error.retry_after) {
    out.headers.emplace_back("x-amz-retry-after", std::to_string(error.retry_after->count()));
  }
  nlohmann::json body = nlohmann::json::object();
  body["message"] = error.message;
  for (const auto& [key, value] : error.fields) {
    // originalStatusCode is an Integer in the models; send numbers as numbers.
    int64_t number = 0;
    const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), number);
    if (key == "originalStatusCode" && ec == std::errc() && ptr == value.data() + value.size()) {
      body[key] = number;
    } else {
      body[key] = value;
    }
  }
  out.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return out;
}

std::string RenderStsXmlError(const AwsError& error) {
  const std::string fault =
      !error.fault.empty() ? error.fault
                           : (error.http_status >= 400 && error.http_status < 500 ? "Sender"
                                                                                  : "Receiver");
  std::string xml =
      "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
      "  <Error>\n"
      "    <Type>" + internal::XmlEscape(fault) + "</Type>\n"
      "    <Code>" + internal::XmlEscape(SanitizeErrorCode(error.code)) + "</Code>\n"
      "    <Message>" + internal::XmlEscape(error.message) + "</Message>\n"
      "  </Error>\n"
      "  <RequestId>" + internal::XmlEscape(error.request_id) + "</RequestId>\n"
      "</ErrorResponse>\n";
  return xml;
}

namespace internal {

namespace {
void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Decodes the entity body between '&' and ';' ("amp", "#60", "#x3C").
std::optional<uint32_t> DecodeEntity(std::string_view name) {
  if (name == "amp") return '&';
  if (name == "lt") return '<';
  if (name == "gt") return '>';
  if (name == "quot") return '"';
  if (name == "apos") return '\'';
  if (name.size() < 2 || name[0] != '#') return std::nullopt;
  const bool hex = name[1] == 'x' || name[1] == 'X';
  const std::string_view digits = name.substr(hex ? 2 : 1);
  if (digits.empty() || digits.size() > 8) return std::nullopt;
  uint32_t cp = 0;
  const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), cp, hex ? 16 : 10);
  if (ec != std::errc() || ptr != digits.data() + digits.size()) return std::nullopt;
  // XML Char: no NUL, no surrogates, nothing past U+10FFFF.
  if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
  return cp;
}
}  // namespace

std::string XmlUnescape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '&') {
      // Entities are short; do not scan far for the ';'.
      const size_t semi = text.substr(i, 12).find(';');
      if (semi != std::string_view::npos) {
        if (auto cp = DecodeEntity(text.substr(i + 1, semi - 1))) {
          AppendUtf8(*cp, &out);
          i += semi + 1;
          continue;
        }
      }
    }
    out.push_back(text[i]);
    ++i;
  }
  return out;
}

std::string XmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // Control characters other than tab/newline are not XML 1.0 Chars.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') {
          out += ' ';
        } else {
          out.push_back(c);
        }
    }
  }
  return out;
}

std::optional<std::string> FindXmlElementText(std::string_view xml, std::string_view name) {
  const std::string open = "<" + std::string(name);
  const std::string close = "</" + std::string(name) + ">";
  size_t pos = 0;
  while ((pos = xml.find(open, pos)) != std::string_view::npos) {
    const size_t after = pos + open.size();
    if (after >= xml.size()) return std::nullopt;
    const char next = xml[after];
    if (next != '>' && next != ' ' && next != '/' && next != '\t' && next != '\n' && next != '\r') {
      pos = after;  // a longer name such as <CodeX>
      continue;
    }
    const size_t gt = xml.find('>', after);
    if (gt == std::string_view::npos) return std::nullopt;
    if (xml[gt - 1] == '/') return std::string();  // <Code/>
    const size_t end = xml.find(close, gt + 1);
    if (end == std::string_view::npos) return std::nullopt;
    std::string_view text = xml.substr(gt + 1, end - gt - 1);
    constexpr std::string_view kCdataOpen = "<![CDATA[";
    constexpr std::string_view kCdataClose = "]]>";
    if (text.starts_with(kCdataOpen) && text.ends_with(kCdataClose)) {
      text = text.substr(kCdataOpen.size(), text.size() - kCdataOpen.size() - kCdataClose.size());
      return Bounded(text, kMaxXmlElementText);
    }
    return XmlUnescape(Bounded(text, kMaxXmlElementText));
  }
  return std::nullopt;
}

}  // namespace internal

}  // namespace quarry::aws
