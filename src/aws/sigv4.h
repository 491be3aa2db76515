#pragma once
// AWS Signature Version 4 (header signing), client side.
//
// Implements "Create a signed AWS API request"
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html)
// with the choices botocore's `SigV4Auth` makes (botocore/auth.py), so a
// request signed here carries exactly the Authorization header botocore would
// produce for the same request and clock:
//
//   * Canonical URI: the path is taken exactly as it is on the wire (each
//     segment already percent-encoded once), optionally normalised (dot
//     segments removed, runs of '/' collapsed; botocore always does this for
//     non-S3 services), an empty path becomes "/", and then it is
//     percent-encoded once more, keeping '/' and the unreserved characters.
//     So a model id's "%3A" is signed as "%253A" and "%2F" as "%252F". S3
//     (service "s3") is the exception: its path is signed as it is.
//   * Canonical query: split on '&', each piece on the first '='; names and
//     values are percent-decoded (a '%' not followed by two hex digits stays a
//     literal '%'; '+' stays a literal '+', it is NOT a space) and re-encoded
//     with the strict RFC 3986 set (upper-case hex), sorted by name, then value;
//     "n" and "n=" both become "n=". botocore itself signs the URL's query
//     verbatim (sorted), which is the same string for every query its
//     serializer produces (those are already strictly encoded); we normalise
//     sloppy input ("a=b:c", lower-case "%3a") the way the IAM spec asks.
//   * Canonical headers: every header except Authorization and the ones
//     botocore never signs (kUnsignedHeaderNames: user-agent, expect,
//     x-amzn-trace-id and the hop-by-hop headers). Names are lower-cased,
//     values trimmed and every run of whitespace (including folded
//     continuation lines) replaced by one space, repeated names joined with ','
//     in the order received, sorted by name.
//   * Payload hash: the value of an x-amz-content-sha256 header when the
//     request has one, otherwise the hex SHA-256 of the body.
//   * Signing key: HMAC chain over ("AWS4" + secret, date, region, service,
//     "aws4_request"), cached in a SigningKeyCache.
//
// Differences from botocore, on purpose: a `Date` header is never rewritten
// (botocore replaces it and drops X-Amz-Date); we always sign with X-Amz-Date.
// `omit_session_token` mirrors aws-c-auth's flag of that name (botocore has no
// equivalent): the token header is added after signing and is not signed.
//
// Thread safety: the free functions are thread-safe. SigningKeyCache is
// internally synchronised and may be shared by any number of threads.
// HttpRequest is a plain value: do not sign one request from two threads.

#include <chrono>
#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "aws/credential_types.h"
#include "common/clock.h"
#include "common/crypto.h"
#include "common/status.h"

namespace quarry::aws {

inline constexpr std::string_view kSigV4Algorithm = "AWS4-HMAC-SHA256";
// SHA-256 of the empty string, the payload hash of a request without body.
inline constexpr std::string_view kEmptyPayloadSha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";

// Header names (lower case) that are never signed: botocore 1.43's
// SIGNED_HEADERS_BLACKLIST (Debian's 1.29 lists only expect, user-agent and
// x-amzn-trace-id; the hop-by-hop ones are changed by proxies, so signing them
// would only break requests). Authorization is also never signed.
inline constexpr std::string_view kUnsignedHeaderNames[] = {
    "connection", "expect",  "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailer",    "transfer-encoding", "upgrade", "user-agent", "x-amzn-trace-id"};

struct HttpHeader {
  std::string name{};   // as sent; compared case-insensitively
  std::string value{};  // as sent (untrimmed)
};

// A request as it goes on the wire. `path` and `query` are the raw request
// target split at the first '?': path segments already percent-encoded once
// (e.g. "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke"), query
// without the '?'. Headers keep their order; repeated names are allowed. The
// Host header must be present (see HostHeaderValue).
struct HttpRequest {
  std::string method{};
  std::string path{};
  std::string query{};
  std::vector<HttpHeader> headers{};
  std::string body{};

  // First header with this name (case-insensitive), or nullptr.
  const HttpHeader* FindHeader(std::string_view name) const;
  // Removes every header with this name; returns how many were removed.
  size_t RemoveHeaders(std::string_view name);
  // Replaces the value of the first header with this name (removing any
  // others), or appends the header when absent. Reuses the existing string's
  // capacity, so re-signing a request does not allocate for it.
  void SetHeader(std::string_view name, std::string_view value);
};

// The Host header value for a URL's scheme, host and port: lower-cased host,
// ":port" appended unless it is the scheme's default (80 for http, 443 for
// https) or port is 0 (none given). IPv6 literals must be passed in brackets.
std::string HostHeaderValue(std::string_view scheme, std::string_view host, int port = 0);

// "20150830T123600Z" for a UTC time (seconds; sub-seconds are truncated).
std::string FormatAmzDate(WallTime time);
// Parses the X-Amz-Date basic format "YYYYMMDDTHHMMSSZ" strictly.
bool ParseAmzDate(std::string_view text, WallTime* out);

// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
// "aws4_request"). `date` is "YYYYMMDD". Uncached; prefer SigningKeyCache.
Sha256Digest DeriveSigningKey(std::string_view secret_access_key, std::string_view date,
                              std::string_view region, std::string_view service);

// A small bounded cache of derived signing keys (as HmacSha256Key, with the
// HMAC pads precomputed), keyed by a SHA-256 over (secret, date, region,
// service): the secret is never kept in clear. When a key for a newer day is
// added, keys older than the day before it are dropped (the day before stays,
// because a verifier accepts requests up to 15 minutes old across midnight);
// when full, the oldest entry is replaced.
//
// Thread safety: all methods may be called concurrently (shared_mutex:
// lookups share the lock, insertions take it exclusively).
class SigningKeyCache {
 public:
  static constexpr size_t kDefaultCapacity = 32;
  explicit SigningKeyCache(size_t capacity = kDefaultCapacity);
  SigningKeyCache(const SigningKeyCache&) = delete;
  SigningKeyCache& operator=(const SigningKeyCache&) = delete;

  // The process-wide cache used when a caller passes none.
  static SigningKeyCache& Default();

  // The signing key for (secret, date "YYYYMMDD", region, service), derived
  // and inserted on a miss.
  HmacSha256Key Get(std::string_view secret_access_key, std::string_view date,
                    std::string_view region, std::string_view service);

  size_t size() const;
  void Clear();

 private:
  struct Entry {
    Sha256Digest id;
    int64_t day;  // days since 1970-01-01 of `date`
    uint64_t inserted;
    HmacSha256Key key;
  };
  const size_t capacity_;
  mutable std::shared_mutex mutex_;
  std::vector<Entry> entries_;
  int64_t newest_day_ = INT64_MIN;
  uint64_t insertions_ = 0;
};

struct SigningParams {
  // Must outlive the call. access_key_id and secret_access_key must be set.
  const Credentials* credentials = nullptr;
  std::string_view region{};   // e.g. "us-east-1"
  std::string_view service{};  // signing name, e.g. "bedrock" (also for bedrock-runtime)
  WallTime time{};             // the caller passes Clock::Now()
  // Remove dot segments and collapse duplicate slashes before encoding
  // (botocore does this for every service but S3).
  bool normalize_path = true;
  // Add `x-amz-content-sha256: <hex SHA-256 of the body>` and sign it.
  bool sign_body = false;
  // Add X-Amz-Security-Token after signing instead of signing it.
  bool omit_session_token = false;
  // nullptr: SigningKeyCache::Default().
  SigningKeyCache* key_cache = nullptr;
};

// Every intermediate value of one signature, for tests and `quarry aws sign`.
struct SigningArtifacts {
  std::string canonical_request{};
  std::string string_to_sign{};
  std::string signature{};      // 64 lower-case hex digits
  std::string authorization{};  // the Authorization header value
  std::string signed_headers{};
  std::string credential_scope{};  // "20150830/us-east-1/bedrock/aws4_request"
  std::string amz_date{};          // "20150830T123600Z"
};

// Signs `request` in place: removes any Authorization header (a retry must
// re-sign), sets X-Amz-Date, sets (or, with omit_session_token, adds after
// signing) X-Amz-Security-Token when the credentials have a session token,
// sets x-amz-content-sha256 when sign_body, and adds the Authorization header.
// When `artifacts` is not null, fills it.
//
// Errors: InvalidArgument when the credentials are missing or incomplete, the
// region or service is empty, the method is empty, or there is no Host header.
Status SignRequest(const SigningParams& params, HttpRequest& request,
                   SigningArtifacts* artifacts = nullptr);

// Everything a signature depends on besides the request: the content of an
// aws-c-auth style context.json, which `quarry aws sign --context` reads:
//   {"credentials": {"access_key_id": "...", "secret_access_key": "...",
//                    "token": "..." (optional)},
//    "region": "us-east-1", "service": "bedrock",
//    "timestamp": "2015-08-30T12:36:00Z",
//    "normalize": true, "sign_body": false, "omit_session_token": false}
// normalize, sign_body and omit_session_token are optional (defaults shown).
struct SigningContext {
  Credentials credentials{};
  std::string region{};
  std::string service{};
  WallTime time{};
  bool normalize = true;
  bool sign_body = false;
  bool omit_session_token = false;
};
// Errors: InvalidArgument naming the bad or missing field.
Result<SigningContext> ParseSigningContextJson(std::string_view json);

// Parses a raw HTTP/1.1 request: a request line "METHOD TARGET HTTP/1.1"
// (TARGET in origin form, "/path?query", split at the first '?'),
// "Name:value" header lines (the value kept as written; a line starting with
// a space or tab continues the previous header's value and is appended to it
// after one space, RFC 9112 obs-fold), a blank line, then the body verbatim.
// Lines may end in LF or CRLF. Errors: InvalidArgument saying which line is
// malformed and why.
Result<HttpRequest> ParseHttpRequestText(std::string_view text);

// Building blocks, exposed for tests and for the verifier.

// The canonical URI of a raw (wire) path: see the file comment.
std::string CanonicalUri(std::string_view raw_path, std::string_view service, bool normalize_path);
// The canonical query string of a raw query (without '?').
std::string CanonicalQueryString(std::string_view raw_query);
// Trim + fold every whitespace run to one space (SigV4 "Trimall").
std::string CanonicalHeaderValue(std::string_view value);

// The canonical request over the headers named in `signed_headers` (lower
// case, ';'-separated, in that order; a named header missing from `headers`
// contributes "name:"). Appends to *out. `payload_hash` is the last line.
struct CanonicalRequestInput {
  std::string_view method{};
  std::string_view raw_path{};
  std::string_view raw_query{};
  std::span<const HttpHeader> headers{};
  std::string_view signed_headers{};
  std::string_view payload_hash{};
  std::string_view service{};  // "s3" disables double encoding
  bool normalize_path = true;
};
void AppendCanonicalRequest(const CanonicalRequestInput& input, std::string* out);

// "AWS4-HMAC-SHA256\n<amz_date>\n<scope>\n<hex SHA-256 of canonical request>".
std::string StringToSign(std::string_view amz_date, std::string_view credential_scope,
                         std::string_view canonical_request);

// Lower-case hex of `digest` written to `out` (64 chars, no terminator).
void WriteDigestHex(const Sha256Digest& digest, char* out);

}  // namespace quarry::aws

// Not API: helpers shared by sigv4.cc and sigv4_verifier.cc.
namespace quarry::aws::internal {

bool EqualsIgnoreCase(std::string_view a, std::string_view b);
int CompareIgnoreAsciiCase(std::string_view a, std::string_view b);
bool IsUnsignedHeaderName(std::string_view name);
void AppendPercentEncoded(std::string_view bytes, bool keep_slash, std::string* out);
void AppendDecodedThenEncoded(std::string_view text, std::string* out);
void AppendTrimmedHeaderValue(std::string_view value, std::string* out);
void AppendLowerAscii(std::string_view text, std::string* out);
bool NeedsNormalization(std::string_view path);
std::string NormalizePath(std::string_view path);
void AppendCanonicalUri(std::string_view raw_path, std::string_view service, bool normalize_path,
                        std::string* out);
void AppendCanonicalQuery(std::string_view raw_query, std::string* out);
void AppendHexDigest(const Sha256Digest& digest, std::string* out);
void AppendScope(std::string_view date, std::string_view region, std::string_view service,
                 std::string* out);
void AppendStringToSign(std::string_view amz_date, std::string_view date, std::string_view region,
                        std::string_view service, const Sha256Digest& canonical_hash, std::string* out);
void AppendCanonicalRequestForSigning(std::string_view method, std::string_view raw_path,
                                      std::string_view raw_query, std::span<const HttpHeader> headers,
                                      std::string_view payload_hash, std::string_view service,
                                      bool normalize_path, std::string* out, std::string* signed_headers);
// "YYYYMMDD" -> days since 1970-01-01; false when not a real date.
bool ParseScopeDate(std::string_view date, int64_t* days);
bool ParseDigits(std::string_view text, unsigned* out);
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d);
void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d);
// Writes "YYYYMMDDTHHMMSSZ" (16 chars, no terminator).
void WriteAmzDate(WallTime time, char out[16]);

}  // namespace quarry::aws::internal
