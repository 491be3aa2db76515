#pragma once
// AWS Signature Version 4 verification (the server side of sigv4.h), for the
// Bedrock emulator.
//
// Given a request as received (method, raw path and query exactly as on the
// wire, headers, body), it parses the Authorization header
//   AWS4-HMAC-SHA256 Credential=<AKID>/<YYYYMMDD>/<region>/<service>/aws4_request,
//     SignedHeaders=<a;b;c>, Signature=<64 hex>
// (the spaces after the commas are optional, as AWS accepts), checks the
// scope against X-Amz-Date and against the region and service the endpoint
// serves, enforces the 15-minute clock-skew window around an injected "now",
// requires `host` and `x-amz-date` among the signed headers, recomputes the
// signature over exactly the signed headers (sigv4.h's canonicalisation) and
// compares it in constant time.
//
// Failures carry the error code, HTTP status and message AWS returns (JSON
// services; the emulator sends them as x-amzn-ErrorType + {"message": ...}):
//   MissingAuthenticationTokenException 403  no Authorization header
//   IncompleteSignatureException        400  malformed Authorization header or X-Amz-Date
//   UnrecognizedClientException         403  unknown access key id, or a wrong/missing/unexpected session token
//   InvalidSignatureException           403  signature mismatch, clock skew, wrong region/service/date in the scope
//   XAmzContentSHA256Mismatch           400  x-amz-content-sha256 names a different body hash
// A `Bearer <token>` Authorization is not SigV4: it is returned as a
// BearerAuthorization so the caller can accept it where AWS does (Bedrock API
// keys on bedrock and bedrock-runtime).
//
// Deliberate limits: only header signing (no pre-signed query
// X-Amz-Signature URLs), only X-Amz-Date (not the Date header), and
// "UNSIGNED-PAYLOAD" in x-amz-content-sha256 is accepted (the body is then not
// covered by the signature, as on AWS).
//
// Thread safety: a SigV4Verifier is immutable after construction; Verify may
// be called from any number of threads if the SecretLookup may be.

#include <chrono>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "aws/sigv4.h"
#include "common/clock.h"

namespace quarry::aws {

// What the secret store knows about an access key id.
struct KnownAccessKey {
  std::string secret_access_key{};
  // For temporary credentials: the session token the request must carry in
  // X-Amz-Security-Token. Empty for long-term keys (then the request must not
  // carry one).
  std::string session_token{};
};

// Returns nullopt when the access key id is unknown.
using SecretLookup = std::function<std::optional<KnownAccessKey>(std::string_view access_key_id)>;

struct VerifiedIdentity {
  std::string access_key_id{};
  std::string region{};
  std::string service{};
  std::string date{};           // scope date, "YYYYMMDD"
  std::string session_token{};  // empty for long-term keys
  WallTime request_time{};      // X-Amz-Date
};

struct BearerAuthorization {
  std::string token{};
};

struct SignatureVerificationError {
  std::string code{};  // e.g. "InvalidSignatureException"
  int http_status = 403;
  std::string message{};
};

// Error codes, as AWS spells them.
inline constexpr std::string_view kMissingAuthenticationToken = "MissingAuthenticationTokenException";
inline constexpr std::string_view kIncompleteSignature = "IncompleteSignatureException";
inline constexpr std::string_view kUnrecognizedClient = "UnrecognizedClientException";
inline constexpr std::string_view kInvalidSignature = "InvalidSignatureException";
inline constexpr std::string_view kContentSha256Mismatch = "XAmzContentSHA256Mismatch";

using VerificationResult = std::variant<VerifiedIdentity, BearerAuthorization, SignatureVerificationError>;

// The request as received. Views: they must stay valid during Verify.
struct ReceivedRequest {
  std::string_view method{};
  std::string_view raw_path{};   // as on the wire, not decoded
  std::string_view raw_query{};  // without '?'
  std::span<const HttpHeader> headers{};
  std::string_view body{};
};

struct VerifierOptions {
  std::string region{};   // the region the endpoint serves, e.g. "us-east-1"
  std::string service{};  // the signing name it expects, e.g. "bedrock"
  bool normalize_path = true;
  std::chrono::seconds max_clock_skew = std::chrono::minutes(15);
};

class SigV4Verifier {
 public:
  // `lookup` is called once per verified request (not for malformed ones).
  // `cache` must outlive the verifier; nullptr uses SigningKeyCache::Default().
  SigV4Verifier(VerifierOptions options, SecretLookup lookup, SigningKeyCache* cache = nullptr);

  VerificationResult Verify(const ReceivedRequest& request, WallTime now) const;

 private:
  VerifierOptions options_;
  SecretLookup lookup_{};
  SigningKeyCache* cache_;
};

// The parts of a SigV4 Authorization header value.
struct ParsedAuthorization {
  std::string_view access_key_id{};
  std::string_view date{};
  std::string_view region{};
  std::string_view service{};
  std::string_view terminator{};  // "aws4_request"
  std::string_view credential{};  // the whole Credential value
  std::string_view signed_headers{};
  std::string_view signature{};
};

// Parses "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..."
// (views into `authorization`); on failure returns the
// IncompleteSignatureException AWS would send. Does not check the scope's
// contents beyond having five parts.
std::variant<ParsedAuthorization, SignatureVerificationError> ParseAuthorizationHeader(
    std::string_view authorization, bool has_amz_date);

}  // namespace quarry::aws
