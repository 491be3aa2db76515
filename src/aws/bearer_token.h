#pragma once
// Amazon Bedrock API keys (bearer tokens) and the choice between them and
// SigV4 for each Bedrock endpoint.
//
// A Bedrock API key is sent as `Authorization: Bearer <token>` (RFC 6750)
// instead of a SigV4 signature. The SDKs read it from the environment variable
// AWS_BEARER_TOKEN_BEDROCK (botocore: "AWS_BEARER_TOKEN_" + the upper-case
// signing name, which is "bedrock"). Only the `bedrock` (control plane) and
// `bedrock-runtime` endpoints accept it: their service models list
// smithy.api#httpBearerAuth. Agents for Amazon Bedrock (`bedrock-agent`,
// `bedrock-agent-runtime`, so InvokeAgent) and STS need SigV4.
// https://docs.aws.amazon.com/bedrock/latest/userguide/api-keys.html
// https://docs.aws.amazon.com/bedrock/latest/userguide/api-keys-reference.html
//
// A BearerToken never reaches a log: ToString()/operator<< print only its
// kind and length.
//
// Thread safety: values and pure functions.

#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include "aws/shared_config.h"
#include "aws/region.h"
#include "common/status.h"

namespace quarry::aws {

inline constexpr std::string_view kBedrockBearerTokenEnvVar = "AWS_BEARER_TOKEN_BEDROCK";
// Tokens are pre-signed URLs (short-term keys, a few KiB) or service-specific
// credentials (long-term keys); anything larger is a mistake.
inline constexpr size_t kMaxBearerTokenBytes = 16 * 1024;

class BearerToken {
 public:
  // Checks the token is usable in an HTTP header: non-empty, at most
  // kMaxBearerTokenBytes, visible ASCII only (no spaces or control
  // characters, which would allow header injection). Surrounding whitespace is
  // trimmed (a copied key often ends in a newline). `source` says where it came
  // from ("environment AWS_BEARER_TOKEN_BEDROCK", "explicit", ...).
  // Errors: InvalidArgument; the message never contains the token.
  static Result<BearerToken> Create(std::string_view token, std::string source);

  // The secret, for the Authorization header only.
  const std::string& token() const { return token_; }
  const std::string& source() const { return source_; }

  // "BearerToken{kind=long-term (ABSK...), length=132, source=explicit}".
  std::string ToString() const;

 private:
  BearerToken(std::string token, std::string source)
      : token_(std::move(token)), source_(std::move(source)) {}
  std::string token_;
  std::string source_;
};

inline std::ostream& operator<<(std::ostream& out, const BearerToken& token) {
  return out << token.ToString();
}

// The token given explicitly when there is one, else AWS_BEARER_TOKEN_BEDROCK
// when it is set and non-empty, else nullopt. Errors: a malformed token.
Result<std::optional<BearerToken>> ResolveBedrockBearerToken(
    const std::optional<std::string>& explicit_token, const Environment& env);

// True for the endpoints whose API accepts Bedrock API keys.
bool AcceptsBearerToken(AwsService endpoint);

enum class AuthScheme { kSigV4, kBearer };
std::string_view AuthSchemeName(AuthScheme scheme);  // "SigV4", "Bearer"

// What the caller has configured.
struct ConfiguredAuth {
  bool bearer_token = false;       // a Bedrock API key is available
  bool sigv4_credentials = false;  // IAM credentials (keys, profile, role) are available
};

// Picks how to authenticate a call to `endpoint`: a bearer token when the
// endpoint accepts one and one is configured (it is preferred, as in
// botocore), else SigV4 when IAM credentials are configured.
// Errors: FailedPrecondition when nothing usable is configured; for the
// Agents endpoints with only an API key, a message saying that Bedrock API
// keys are not accepted there and what to configure instead.
Result<AuthScheme> SelectAuthScheme(AwsService endpoint, const ConfiguredAuth& configured);

}  // namespace quarry::aws
