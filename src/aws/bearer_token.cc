#include "aws/bearer_token.h"

#include "common/encoding.h"

namespace quarry::aws {
namespace {

constexpr std::string_view kConfigureIam =
    "configure IAM credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (plus "
    "AWS_SESSION_TOKEN for temporary keys), or set AWS_PROFILE to a profile in ~/.aws/credentials "
    "or ~/.aws/config (access keys, credential_process or role_arn), or give the provider an "
    "access "
    "key pair or a role to assume";

}  // namespace

Result<BearerToken> BearerToken::Create(std::string_view token, std::string source) {
  std::string_view trimmed = TrimAsciiWhitespace(token);
  if (trimmed.empty()) {
    return InvalidArgumentError("the Bedrock API key from " + source +
                                " is empty; set it to the key shown when it was created");
  }
  if (trimmed.size() > kMaxBearerTokenBytes) {
    return InvalidArgumentError("the Bedrock API key from " + source + " is " +
                                std::to_string(trimmed.size()) + " bytes, more than the " +
                                std::to_string(kMaxBearerTokenBytes) +
                                " a key can be; check that only the key was pasted");
  }
  for (size_t i = 0; i < trimmed.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(trimmed[i]);
    if (c <= 0x20 || c >= 0x7f) {
      // Position only: the character itself could be part of the secret.
      return InvalidArgumentError("the Bedrock API key from " + source +
                                  " contains a space, control or non-ASCII character at position " +
                                  std::to_string(i) + "; copy the key again without extra text");
    }
  }
  return BearerToken(std::string(trimmed), std::move(source));
}

std::string BearerToken::ToString() const {
  // The documented key prefixes are not secret and tell people which kind of
  // key is in use; nothing after them is shown.
  std::string kind = "unknown";
  if (token_.rfind("ABSK", 0) == 0) {
    kind = "long-term (ABSK...)";
  } else if (token_.rfind("bedrock-api-key-", 0) == 0) {
    kind = "short-term (bedrock-api-key-...)";
  }
  std::string out = "BearerToken{kind=" + kind + ", length=" + std::to_string(token_.size());
  if (!source_.empty()) out += ", source=" + source_;
  out += "}";
  return out;
}

Result<std::optional<BearerToken>> ResolveBedrockBearerToken(
    const std::optional<std::string>& explicit_token, const Environment& env) {
  if (explicit_token.has_value()) {
    QUARRY_ASSIGN_OR_RETURN(BearerToken token, BearerToken::Create(*explicit_token, "explicit"));
    return std::optional<BearerToken>(std::move(token));
  }
  if (std::optional<std::string> value = env.GetNonEmpty(kBedrockBearerTokenEnvVar)) {
    QUARRY_ASSIGN_OR_RETURN(
        BearerToken token,
        BearerToken::Create(*value, "environment " + std::string(kBedrockBearerTokenEnvVar)));
    return std::optional<BearerToken>(std::move(token));
  }
  return std::optional<BearerToken>();
}

bool AcceptsBearerToken(AwsService endpoint) {
  return endpoint == AwsService::kBedrockRuntime || endpoint == AwsService::kBedrock;
}

std::string_view AuthSchemeName(AuthScheme scheme) {
  return scheme == AuthScheme::kBearer ? "Bearer" : "SigV4";
}

Result<AuthScheme> SelectAuthScheme(AwsService endpoint, const ConfiguredAuth& configured) {
  if (AcceptsBearerToken(endpoint) && configured.bearer_token) return AuthScheme::kBearer;
  if (configured.sigv4_credentials) return AuthScheme::kSigV4;
  std::string name(ServiceEndpointPrefix(endpoint));
  if (configured.bearer_token) {
    if (endpoint == AwsService::kBedrockAgentRuntime ||
        endpoint == AwsService::kBedrockAgent) {
      return FailedPreconditionError(
          "only a Bedrock API key (bearer token) is configured, but Bedrock API keys are not "
          "accepted "
          "by Agents for Amazon Bedrock (" +
          name +
          "): InvokeAgent and the agent APIs always need SigV4 signing with IAM credentials. To "
          "call "
          "agents, " +
          std::string(kConfigureIam) +
          ". The API key can stay configured for bedrock-runtime and bedrock calls.");
    }
    return FailedPreconditionError(
        "only a Bedrock API key (bearer token) is configured, but " + name +
        " does not accept Bedrock API keys and needs SigV4 signing; " + std::string(kConfigureIam));
  }
  std::string message =
      "no credentials are configured for " + name + "; " + std::string(kConfigureIam);
  if (AcceptsBearerToken(endpoint)) {
    message += ", or set " + std::string(kBedrockBearerTokenEnvVar) + " to a Bedrock API key";
  }
  return FailedPreconditionError(message);
}

}  // namespace quarry::aws
