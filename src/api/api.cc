#include "api/api.h"

#include <algorithm>
#include <cassert>
#include <cctype>
#include <utility>

#include "bedrock/client.h"
#include "common/encoding.h"

namespace quarry::api {
namespace {

// "InvalidArgument" -> "invalid_argument"; "AccessDenied" -> "access_denied".
std::string SnakeCase(std::string_view camel) {
  std::string out;
  out.reserve(camel.size() + 4);
  for (size_t i = 0; i < camel.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(camel[i]);
    if (std::isupper(c)) {
      // A new word starts at an upper-case letter that follows a lower-case
      // one or a digit, or that precedes a lower-case one ("HTTPError").
      const bool after_lower = i > 0 && (std::islower(static_cast<unsigned char>(camel[i - 1])) ||
                                         std::isdigit(static_cast<unsigned char>(camel[i - 1])));
      const bool before_lower = i > 0 && i + 1 < camel.size() &&
                                std::islower(static_cast<unsigned char>(camel[i + 1])) &&
                                std::isupper(static_cast<unsigned char>(camel[i - 1]));
      if (!out.empty() && out.back() != '_' && (after_lower || before_lower)) out += '_';
      out += static_cast<char>(std::tolower(c));
    } else if (std::isalnum(c)) {
      out += static_cast<char>(c);
    } else if (!out.empty() && out.back() != '_') {
      out += '_';
    }
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out;
}

std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> segments;
  size_t start = 0;
  if (!path.empty() && path.front() == '/') start = 1;
  while (start <= path.size()) {
    const size_t slash = path.find('/', start);
    const size_t end = slash == std::string_view::npos ? path.size() : slash;
    segments.emplace_back(path.substr(start, end - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return segments;
}

bool IsParamSegment(std::string_view segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

// Segments arrive percent-encoded (the router splits before decoding, so an
// encoded '/' stays inside its segment); a segment that is not valid
// percent-encoding is taken literally and simply matches nothing.
std::string DecodeSegment(std::string_view segment) {
  Result<std::string> decoded = UriDecode(segment);
  return decoded.ok() ? std::move(decoded).value() : std::string(segment);
}

}  // namespace

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

int HttpStatusFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange: return 400;
    case StatusCode::kUnauthenticated: return 401;
    case StatusCode::kPermissionDenied: return 403;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition: return 409;
    case StatusCode::kAborted: return 412;
    case StatusCode::kResourceExhausted: return 429;
    case StatusCode::kCancelled: return 499;
    case StatusCode::kUnimplemented: return 501;
    case StatusCode::kUnavailable: return 503;
    case StatusCode::kDeadlineExceeded: return 504;
    case StatusCode::kUnknown:
    case StatusCode::kInternal:
    case StatusCode::kDataLoss: return 500;
  }
  return 500;
}

std::string ErrorCodeFor(StatusCode code) {
  if (code == StatusCode::kAborted) return "precondition_failed";
  return SnakeCase(StatusCodeName(code));
}

void ApiError::AddFieldErrors(const Status& status, nlohmann::json fields) {
  if (fields.empty()) return;
  if (status.code() == StatusCode::kInvalidArgument) {
    code = "validation_failed";
    hint = "correct the inputs listed in details.fields and send the request again";
  }
  details["fields"] = std::move(fields);
}

ApiError ApiError::FromStatus(const Status& status) {
  ApiError error;
  const StatusCode code = status.ok() ? StatusCode::kInternal : status.code();
  error.http_status = HttpStatusFor(code);
  error.code = ErrorCodeFor(code);
  error.message = status.ok() ? "internal error: a handler failed without saying why; see the server log"
                              : status.message();
  switch (code) {
    case StatusCode::kUnauthenticated:
      error.hint =
          "send Authorization: Bearer <API token> (POST /api/v1/tokens creates one) or log in with "
          "POST /api/v1/auth/login";
      break;
    case StatusCode::kAborted:
      error.hint = "GET the entity again, apply your change to the new version and send its ETag in If-Match";
      break;
    case StatusCode::kResourceExhausted:
      error.hint = "slow down and retry after a short wait";
      break;
    case StatusCode::kUnavailable:
      error.hint = "retry shortly; if it persists, check the server log and GET /readyz";
      break;
    case StatusCode::kInternal:
    case StatusCode::kUnknown:
    case StatusCode::kDataLoss:
      error.hint = "this is a server problem; the server log has the details under this request id";
      break;
    default:
      break;
  }
  return error;
}

ApiError ApiError::FromBedrock(const bedrock::BedrockError& failure) {
  ApiError error;
  const StatusCode code = failure.status.ok() ? StatusCode::kUnavailable : failure.status.code();
  error.http_status = HttpStatusFor(code);
  std::string aws_code = failure.aws.code;
  // "AccessDeniedException" -> "access_denied": the suffix says nothing.
  constexpr std::string_view kSuffix = "Exception";
  if (aws_code.size() > kSuffix.size() && aws_code.ends_with(kSuffix)) {
    aws_code.resize(aws_code.size() - kSuffix.size());
  }
  const std::string snake = SnakeCase(aws_code);
  error.code = snake.empty() ? "bedrock_error" : "bedrock_" + snake;
  error.message = failure.ToString();
  error.hint = failure.troubleshooting.ToText();
  error.details["troubleshooting"] = failure.troubleshooting.ToJson();
  error.details["aws"] = {
      {"code", failure.aws.code},
      {"http_status", failure.aws.http_status},
      {"request_id", failure.aws.request_id},
      {"message", failure.aws.message},
      {"origin", std::string(bedrock::ErrorOriginName(failure.origin))},
      {"attempts", failure.attempts},
  };
  return error;
}

nlohmann::json ApiError::ToJson() const {
  nlohmann::json details_json = details.is_null() ? nlohmann::json::object() : details;
  return {{"error",
           {{"code", code}, {"message", message}, {"hint", hint}, {"details", std::move(details_json)}}}};
}

// ---------------------------------------------------------------------------
// Requests and responses
// ---------------------------------------------------------------------------

const std::string* ApiRequest::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoreAsciiCase(key, name)) return &value;
  }
  return nullptr;
}

std::string ApiRequest::QueryParam(std::string_view name, std::string_view fallback) const {
  const auto it = query.find(std::string(name));
  return it == query.end() ? std::string(fallback) : it->second;
}

Result<nlohmann::json> ApiRequest::JsonBody() const {
  if (TrimAsciiWhitespace(body).empty()) {
    return InvalidArgumentError("the request body is empty; send a JSON object");
  }
  nlohmann::json parsed;
  try {
    parsed = nlohmann::json::parse(body);
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte is 1-based (the byte after the last one read); report 0-based.
    const size_t offset = e.byte > 0 ? e.byte - 1 : 0;
    // nlohmann's text ends with what it expected ("... - unexpected string
    // literal; expected '}'"), which helps find the mistake.
    const std::string_view what = e.what();
    const size_t dash = what.rfind(" - ");
    const std::string detail = dash == std::string_view::npos ? "" : ": " + std::string(what.substr(dash + 3, 200));
    return InvalidArgumentError("the request body is not valid JSON (error at byte offset " +
                                std::to_string(offset) + detail + "); send a JSON object");
  }
  if (!parsed.is_object()) {
    return InvalidArgumentError("the request body must be a JSON object, not a " +
                                std::string(parsed.type_name()));
  }
  return parsed;
}

ApiResponse ApiResponse::Json(nlohmann::json body, int status) {
  ApiResponse response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

ApiResponse ApiResponse::Created(nlohmann::json body, std::string location, int64_t version) {
  ApiResponse response = Json(std::move(body), 201);
  response.headers.emplace_back("Location", std::move(location));
  response.headers.emplace_back("ETag", "\"" + std::to_string(version) + "\"");
  return response;
}

ApiResponse ApiResponse::Entity(nlohmann::json body, int64_t version) {
  ApiResponse response = Json(std::move(body), 200);
  response.headers.emplace_back("ETag", "\"" + std::to_string(version) + "\"");
  return response;
}

ApiResponse ApiResponse::NoContent() {
  ApiResponse response;
  response.status = 204;
  response.raw_body = "";
  return response;
}

ApiResponse ApiResponse::Text(std::string body, std::string content_type) {
  ApiResponse response;
  response.raw_body = std::move(body);
  response.content_type = std::move(content_type);
  return response;
}

ApiResponse ApiResponse::Error(const ApiError& error) {
  return Json(error.ToJson(), error.http_status);
}

Status CheckIfMatch(const ApiRequest& request, int64_t current_version) {
  const std::string* header = request.Header("If-Match");
  if (header == nullptr) return Status::Ok();
  std::string_view value = TrimAsciiWhitespace(*header);
  if (value == "*") return Status::Ok();
  if (value.starts_with("W/")) value.remove_prefix(2);
  if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
    value = value.substr(1, value.size() - 2);
  }
  if (value == std::to_string(current_version)) return Status::Ok();
  return Status(StatusCode::kAborted,
                "the entity changed since you read it (version " + std::to_string(current_version) +
                    ", If-Match " + std::string(TrimAsciiWhitespace(*header)) +
                    "); fetch it again and retry");
}

// ---------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------

std::string_view AccessName(Access access) {
  switch (access) {
    case Access::kPublic: return "public";
    case Access::kAuthenticated: return "authenticated";
    case Access::kBuilder: return "builder";
    case Access::kAdmin: return "admin";
    case Access::kProviderEditor: return "provider_editor";
  }
  return "unknown";
}

void Router::Add(std::string method, std::string pattern, Access access, Handler handler) {
  for (const Entry& entry : entries_) {
    assert(!(entry.spec.method == method && entry.spec.pattern == pattern) && "route registered twice");
    (void)entry;
  }
  Entry entry;
  entry.segments = SplitPath(pattern);
  entry.spec = RouteSpec{std::move(method), std::move(pattern), access, false};
  entry.handler = std::move(handler);
  entries_.push_back(std::move(entry));
}

void Router::AddStream(std::string method, std::string pattern, Access access, StreamHandler handler) {
  for (const Entry& entry : entries_) {
    assert(!(entry.spec.method == method && entry.spec.pattern == pattern) && "route registered twice");
    (void)entry;
  }
  Entry entry;
  entry.segments = SplitPath(pattern);
  entry.spec = RouteSpec{std::move(method), std::move(pattern), access, true};
  entry.stream_handler = std::move(handler);
  entries_.push_back(std::move(entry));
}

Router::Match Router::Find(std::string_view method, std::string_view path) const {
  const std::vector<std::string> raw = SplitPath(path);
  std::vector<std::string> decoded;
  decoded.reserve(raw.size());
  for (const std::string& segment : raw) decoded.push_back(DecodeSegment(segment));

  Match best;
  int best_literals = -1;
  for (const Entry& entry : entries_) {
    if (entry.segments.size() != decoded.size()) continue;
    int literals = 0;
    bool matches = true;
    for (size_t i = 0; i < decoded.size() && matches; ++i) {
      if (IsParamSegment(entry.segments[i])) {
        matches = !decoded[i].empty();
      } else {
        matches = entry.segments[i] == decoded[i];
        ++literals;
      }
    }
    if (!matches) continue;
    if (entry.spec.method != method) {
      best.path_known = true;
      continue;
    }
    // The most specific pattern wins: /users/me before /users/{user_id}.
    if (literals <= best_literals) continue;
    best_literals = literals;
    best.spec = &entry.spec;
    best.handler = entry.spec.streaming ? nullptr : &entry.handler;
    best.stream_handler = entry.spec.streaming ? &entry.stream_handler : nullptr;
    best.path_params.clear();
    for (size_t i = 0; i < decoded.size(); ++i) {
      if (IsParamSegment(entry.segments[i])) {
        const std::string& name = entry.segments[i];
        best.path_params[name.substr(1, name.size() - 2)] = decoded[i];
      }
    }
  }
  if (best.spec != nullptr) best.path_known = true;
  return best;
}

std::vector<RouteSpec> Router::routes() const {
  std::vector<RouteSpec> specs;
  specs.reserve(entries_.size());
  for (const Entry& entry : entries_) specs.push_back(entry.spec);
  return specs;
}

}  // namespace quarry::api
