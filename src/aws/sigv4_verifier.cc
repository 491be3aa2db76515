#include "aws/sigv4_verifier.h"

#include <utility>

namespace quarry::aws {
namespace {

using internal::EqualsIgnoreCase;

constexpr std::string_view kInvalidTokenMessage = "The security token included in the request is invalid.";
constexpr std::string_view kSignatureMismatchMessage =
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details.";

SignatureVerificationError Error(std::string_view code, int status, std::string message) {
  return SignatureVerificationError{std::string(code), status, std::move(message)};
}

SignatureVerificationError Incomplete(std::string message) {
  return Error(kIncompleteSignature, 400, std::move(message));
}

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (IsSpace(text.front()) || text.front() == '\r' || text.front() == '\n')) {
    text.remove_prefix(1);
  }
  while (!text.empty() && (IsSpace(text.back()) || text.back() == '\r' || text.back() == '\n')) {
    text.remove_suffix(1);
  }
  return text;
}

const HttpHeader* FindHeader(std::span<const HttpHeader> headers, std::string_view name) {
  for (const HttpHeader& header : headers) {
    if (EqualsIgnoreCase(header.name, name)) return &header;
  }
  return nullptr;
}

bool ListContains(std::string_view list, std::string_view name) {
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(';', start);
    if (end == std::string_view::npos) end = list.size();
    if (EqualsIgnoreCase(list.substr(start, end - start), name)) return true;
    start = end + 1;
  }
  return false;
}

bool IsLowerHexSha256(std::string_view text) {
  if (text.size() != 64) return false;
  for (const char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

std::variant<ParsedAuthorization, SignatureVerificationError> ParseAuthorizationHeader(
    std::string_view authorization, bool has_amz_date) {
  const std::string_view value = Trim(authorization);
  size_t algorithm_end = 0;
  while (algorithm_end < value.size() && !IsSpace(value[algorithm_end])) ++algorithm_end;
  const std::string_view algorithm = value.substr(0, algorithm_end);
  // A value without any space (e.g. a bare token) has no algorithm at all:
  // AWS then reports every missing parameter, which the loop below does.
  std::string_view rest = algorithm_end < value.size() ? value.substr(algorithm_end) : std::string_view();
  if (algorithm_end < value.size() && algorithm != kSigV4Algorithm) {
    return Incomplete("Unsupported Authorization algorithm '" + std::string(algorithm) +
                      "': sign the request with AWS4-HMAC-SHA256 (SigV4). Authorization=" + std::string(value));
  }
  if (algorithm_end == value.size()) rest = {};

  ParsedAuthorization parsed;
  bool has_credential = false, has_signed_headers = false, has_signature = false;
  // AWS splits the parameters on commas and whitespace, so "a=1,b=2",
  // "a=1, b=2" and "a=1 ,  b=2" are all accepted, and "Credential= AKID/..."
  // is not (the value after the space is a pair without '=').
  size_t pos = 0;
  while (pos < rest.size()) {
    while (pos < rest.size() && (rest[pos] == ',' || IsSpace(rest[pos]))) ++pos;
    if (pos >= rest.size()) break;
    size_t end = pos;
    while (end < rest.size() && rest[end] != ',' && !IsSpace(rest[end])) ++end;
    const std::string_view pair = rest.substr(pos, end - pos);
    pos = end;
    const size_t eq = pair.find('=');
    if (eq == std::string_view::npos) {
      return Incomplete("'" + std::string(pair) +
                        "' not a valid key=value pair (missing equal-sign) in Authorization header: '" +
                        std::string(value) + "'.");
    }
    const std::string_view key = pair.substr(0, eq);
    const std::string_view item = pair.substr(eq + 1);
    if (key == "Credential" && !has_credential) {
      has_credential = true;
      parsed.credential = item;
    } else if (key == "SignedHeaders" && !has_signed_headers) {
      has_signed_headers = true;
      parsed.signed_headers = item;
    } else if (key == "Signature" && !has_signature) {
      has_signature = true;
      parsed.signature = item;
    }
  }
  if (!has_credential || !has_signed_headers || !has_signature || !has_amz_date) {
    std::string message;
    if (!has_credential) message += "Authorization header requires 'Credential' parameter. ";
    if (!has_signature) message += "Authorization header requires 'Signature' parameter. ";
    if (!has_signed_headers) message += "Authorization header requires 'SignedHeaders' parameter. ";
    if (!has_amz_date) {
      message += "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ";
    }
    message += "Authorization=" + std::string(value);
    return Incomplete(std::move(message));
  }

  std::string_view parts[5];
  size_t count = 0;
  size_t start = 0;
  const std::string_view credential = parsed.credential;
  while (start <= credential.size() && count < 6) {
    size_t end = credential.find('/', start);
    if (end == std::string_view::npos) end = credential.size();
    if (count < 5) parts[count] = credential.substr(start, end - start);
    ++count;
    start = end + 1;
  }
  if (count != 5 || parts[0].empty()) {
    return Incomplete("Credential '" + std::string(credential) +
                      "' is malformed: expected '<access key id>/<YYYYMMDD>/<region>/<service>/aws4_request'. "
                      "Authorization=" +
                      std::string(value));
  }
  parsed.access_key_id = parts[0];
  parsed.date = parts[1];
  parsed.region = parts[2];
  parsed.service = parts[3];
  parsed.terminator = parts[4];
  return parsed;
}

SigV4Verifier::SigV4Verifier(VerifierOptions options, SecretLookup lookup, SigningKeyCache* cache)
    : options_(std::move(options)),
      lookup_(std::move(lookup)),
      cache_(cache != nullptr ? cache : &SigningKeyCache::Default()) {}

VerificationResult SigV4Verifier::Verify(const ReceivedRequest& request, WallTime now) const {
  const HttpHeader* authorization_header = FindHeader(request.headers, "authorization");
  if (authorization_header == nullptr || Trim(authorization_header->value).empty()) {
    return Error(kMissingAuthenticationToken, 403, "Missing Authentication Token");
  }
  const std::string_view authorization = Trim(authorization_header->value);
  if (authorization.size() > 7 && EqualsIgnoreCase(authorization.substr(0, 6), "Bearer") &&
      IsSpace(authorization[6])) {
    return BearerAuthorization{std::string(Trim(authorization.substr(7)))};
  }

  const HttpHeader* date_header = FindHeader(request.headers, "x-amz-date");
  auto parsed_or = ParseAuthorizationHeader(authorization, date_header != nullptr);
  if (auto* error = std::get_if<SignatureVerificationError>(&parsed_or)) return std::move(*error);
  const ParsedAuthorization& auth = std::get<ParsedAuthorization>(parsed_or);

  const std::string_view amz_date = Trim(date_header->value);
  WallTime request_time;
  if (!ParseAmzDate(amz_date, &request_time)) {
    return Incomplete("Date must be in ISO-8601 'basic format'. Got '" + std::string(amz_date) +
                      "'. Use YYYYMMDD'T'HHMMSS'Z' in UTC, e.g. 20150830T123600Z.");
  }
  if (auth.terminator != "aws4_request") {
    return Error(kInvalidSignature, 403,
                 "Credential should be scoped with a valid terminator: 'aws4_request', not '" +
                     std::string(auth.terminator) + "'.");
  }
  if (auth.date != amz_date.substr(0, 8)) {
    return Error(kInvalidSignature, 403,
                 "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '" +
                     std::string(auth.date) + "' != '" + std::string(amz_date.substr(0, 8)) +
                     "', from 'X-Amz-Date'.");
  }
  if (auth.region != options_.region) {
    return Error(kInvalidSignature, 403,
                 "Credential should be scoped to a valid region, not '" + std::string(auth.region) +
                     "'. This endpoint serves '" + options_.region + "'.");
  }
  if (auth.service != options_.service) {
    return Error(kInvalidSignature, 403,
                 "Credential should be scoped to correct service: '" + options_.service + "'.");
  }
  if (!ListContains(auth.signed_headers, "host")) {
    return Error(kInvalidSignature, 403, "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
  }
  if (!ListContains(auth.signed_headers, "x-amz-date")) {
    return Error(kInvalidSignature, 403, "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.");
  }

  if (request_time < now - options_.max_clock_skew) {
    return Error(kInvalidSignature, 403,
                 "Signature expired: " + std::string(amz_date) + " is now earlier than " +
                     FormatAmzDate(now - options_.max_clock_skew) + " (" + FormatAmzDate(now) + " - " +
                     std::to_string(options_.max_clock_skew.count() / 60) + " min.)");
  }
  if (request_time > now + options_.max_clock_skew) {
    return Error(kInvalidSignature, 403,
                 "Signature not yet current: " + std::string(amz_date) + " is still later than " +
                     FormatAmzDate(now + options_.max_clock_skew) + " (" + FormatAmzDate(now) + " + " +
                     std::to_string(options_.max_clock_skew.count() / 60) + " min.)");
  }

  const std::optional<KnownAccessKey> key = lookup_ ? lookup_(auth.access_key_id) : std::nullopt;
  if (!key.has_value()) return Error(kUnrecognizedClient, 403, std::string(kInvalidTokenMessage));
  const HttpHeader* token_header = FindHeader(request.headers, "x-amz-security-token");
  const std::string_view token = token_header != nullptr ? Trim(token_header->value) : std::string_view();
  if (!ConstantTimeEquals(token, key->session_token)) {
    return Error(kUnrecognizedClient, 403, std::string(kInvalidTokenMessage));
  }

  char body_hex[64];
  std::string_view payload_hash;
  const HttpHeader* content_sha = FindHeader(request.headers, "x-amz-content-sha256");
  if (content_sha != nullptr && ListContains(auth.signed_headers, "x-amz-content-sha256")) {
    payload_hash = content_sha->value;
    const std::string_view claimed = Trim(content_sha->value);
    if (claimed != kUnsignedPayload) {
      WriteDigestHex(Sha256(request.body), body_hex);
      if (!IsLowerHexSha256(claimed) || claimed != std::string_view(body_hex, sizeof(body_hex))) {
        return Error(kContentSha256Mismatch, 400,
                     "The provided 'x-amz-content-sha256' header does not match what was computed.");
      }
    }
  } else if (request.body.empty()) {
    payload_hash = kEmptyPayloadSha256;
  } else {
    WriteDigestHex(Sha256(request.body), body_hex);
    payload_hash = std::string_view(body_hex, sizeof(body_hex));
  }

  thread_local std::string canonical;
  canonical.clear();
  canonical.reserve(1024);
  AppendCanonicalRequest(CanonicalRequestInput{.method = request.method,
                                               .raw_path = request.raw_path,
                                               .raw_query = request.raw_query,
                                               .headers = request.headers,
                                               .signed_headers = auth.signed_headers,
                                               .payload_hash = payload_hash,
                                               .service = options_.service,
                                               .normalize_path = options_.normalize_path},
                         &canonical);
  thread_local std::string string_to_sign;
  string_to_sign.clear();
  string_to_sign.reserve(256);
  internal::AppendStringToSign(amz_date, auth.date, auth.region, auth.service, Sha256(canonical),
                               &string_to_sign);
  const HmacSha256Key signing_key = cache_->Get(key->secret_access_key, auth.date, auth.region, auth.service);
  char expected[64];
  WriteDigestHex(signing_key.Mac(string_to_sign), expected);
  // Keep the per-thread scratch from pinning memory after one huge request.
  if (canonical.capacity() > (1u << 20)) std::string().swap(canonical);
  if (!ConstantTimeEquals(std::string_view(expected, sizeof(expected)), auth.signature)) {
    return Error(kInvalidSignature, 403, std::string(kSignatureMismatchMessage));
  }
  return VerifiedIdentity{std::string(auth.access_key_id), std::string(auth.region), std::string(auth.service),
                          std::string(auth.date), std::string(token), request_time};
}

}  // namespace quarry::aws
