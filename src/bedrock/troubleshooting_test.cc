#include "bedrock/troubleshooting.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "aws/aws_error.h"

namespace quarry::bedrock {
namespace {

using ::testing::HasSubstr;

constexpr const char* kHaiku = "anthropic.claude-3-haiku-20240307-v1:0";
constexpr const char* kSonnet4 = "anthropic.claude-sonnet-4-20250514-v1:0";
constexpr const char* kAliasArn = "arn:aws:bedrock:us-east-1:111122223333:agent-alias/HELPDESK01/PRODALIAS1";
constexpr const char* kReadOnlyUser = "arn:aws:iam::111122223333:user/quarry-readonly";

// A rest-json error response as Bedrock (and the emulator) sends it.
aws::AwsError RestJson(std::string_view service, int status, std::string_view code, std::string_view message,
                       std::string_view request_id = "req-0001") {
  aws::HeaderList headers = {{"x-amzn-ErrorType", std::string(code)},
                             {"x-amzn-RequestId", std::string(request_id)},
                             {"Content-Type", "application/json"}};
  return aws::ParseRestJsonError(service, status, headers, nlohmann::json{{"message", message}}.dump());
}

aws::AwsError RestJsonWithField(std::string_view service, int status, std::string_view code,
                                std::string_view message, std::string_view field, std::string_view value) {
  aws::HeaderList headers = {{"x-amzn-ErrorType", std::string(code)}, {"x-amzn-RequestId", "req-0002"}};
  return aws::ParseRestJsonError(service, status, headers,
                                 nlohmann::json{{"message", message}, {std::string(field), value}}.dump());
}

aws::AwsError StsXml(int status, std::string_view code, std::string_view message) {
  std::string body = "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>" +
                     std::string(code) + "</Code><Message>" + std::string(message) +
                     "</Message></Error><RequestId>sts-req-1</RequestId></ErrorResponse>";
  return aws::ParseStsXmlError(status, {{"Content-Type", "text/xml"}}, body);
}

CallContext ModelCall(std::string model, std::string region = "us-east-1", std::string operation = "InvokeModel") {
  CallContext c;
  c.operation = std::move(operation);
  c.region = std::move(region);
  c.model_id = std::move(model);
  return c;
}

CallContext AgentCall(std::string alias_arn = kAliasArn, std::string region = "us-east-1") {
  CallContext c;
  c.operation = "InvokeAgent";
  c.region = std::move(region);
  c.agent_alias_arn = std::move(alias_arn);
  return c;
}

struct Case {
  std::string name;
  aws::AwsError error;
  CallContext context;
  std::string expected_id;
  std::vector<std::string> facts;  // must appear in ToText()
};

std::vector<Case> Cases() {
  std::vector<Case> cases;
  const std::string denied_model =
      std::string("User: ") + kReadOnlyUser +
      " is not authorized to perform: bedrock:InvokeModel on resource: "
      "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-sonnet-20240620-v1:0 because no "
      "identity-based policy allows the bedrock:InvokeModel action";
  cases.push_back({"access denied on a foundation model",
                   RestJson("bedrock-runtime", 403, "AccessDeniedException", denied_model, "req-ad-1"),
                   ModelCall("anthropic.claude-3-5-sonnet-20240620-v1:0"),
                   "access-denied-invoke-model",
                   {"bedrock:InvokeModelWithResponseStream", kReadOnlyUser, "req-ad-1", "us-east-1",
                    "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-sonnet-20240620-v1:0"}});
  CallContext profile_call = ModelCall(std::string("us.") + kSonnet4, "us-east-1", "Converse");
  profile_call.identity_arn = kReadOnlyUser;
  cases.push_back({"access denied through a system profile",
                   RestJson("bedrock-runtime", 403, "AccessDeniedException",
                            std::string("User: ") + kReadOnlyUser +
                                " is not authorized to perform: bedrock:InvokeModel on resource: "
                                "arn:aws:bedrock:us-east-1:111122223333:inference-profile/us." + kSonnet4),
                   profile_call,
                   "access-denied-invoke-model",
                   {std::string("arn:aws:bedrock:us-east-1:111122223333:inference-profile/us.") + kSonnet4,
                    std::string("foundation-model/") + kSonnet4, "destination region"}});
  cases.push_back({"access denied on an agent alias",
                   RestJson("bedrock-agent-runtime", 403, "AccessDeniedException",
                            std::string("User: ") + kReadOnlyUser +
                                " is not authorized to perform: bedrock:InvokeAgent on resource: " + kAliasArn +
                                " because no identity-based policy allows the bedrock:InvokeAgent action"),
                   AgentCall(),
                   "access-denied-invoke-agent",
                   {"bedrock:InvokeAgent", kAliasArn, kReadOnlyUser, "Resource"}});
  cases.push_back({"model access not granted",
                   RestJson("bedrock-runtime", 403, "AccessDeniedException",
                            "You don't have access to the model with the specified model ID."),
                   ModelCall("anthropic.claude-3-opus-20240229-v1:0", "eu-west-1"),
                   "model-access-not-granted",
                   {"eu-west-1", "Model access", "anthropic.claude-3-opus-20240229-v1:0"}});
  cases.push_back({"on-demand throughput not supported, model from the context",
                   RestJson("bedrock-runtime", 400, "ValidationException",
                            std::string("Invocation of model ID ") + kSonnet4 +
                                " with on-demand throughput isn\xE2\x80\x99t supported. Retry your request with the ID "
                                "or ARN of an inference profile that contains this model."),
                   ModelCall(kSonnet4),
                   "on-demand-not-supported",
                   {std::string("us.") + kSonnet4}});
  CallContext no_model = ModelCall("", "eu-west-1");
  cases.push_back({"on-demand throughput not supported, model from the message",
                   RestJson("bedrock-runtime", 400, "ValidationException",
                            std::string("Invocation of model ID ") + kSonnet4 +
                                " with on-demand throughput isn't supported. Retry your request with the ID or ARN of "
                                "an inference profile that contains this model."),
                   no_model,
                   "on-demand-not-supported",
                   {std::string("eu.") + kSonnet4}});
  cases.push_back({"base agent ARN instead of the alias ARN",
                   RestJson("bedrock-agent-runtime", 404, "ResourceNotFoundException",
                            "Failed to retrieve resource because it doesn't exist."),
                   AgentCall("arn:aws:bedrock:us-east-2:123456789012:agent/ABCD1234EF", "us-east-2"),
                   "invalid-agent-alias-arn",
                   {"arn:aws:bedrock:us-east-2:123456789012:agent-alias/ABCD1234EF/", "Aliases"}});
  cases.push_back({"invalid model identifier",
                   RestJson("bedrock-runtime", 400, "ValidationException", "The provided model identifier is invalid."),
                   ModelCall("anthropic.claude-3-haiku-2024", "us-west-2"),
                   "invalid-model-identifier",
                   {"anthropic.claude-3-haiku-2024", "us-west-2", "list-foundation-models"}});
  cases.push_back({"agent alias not found",
                   RestJson("bedrock-agent-runtime", 404, "ResourceNotFoundException",
                            "Failed to retrieve resource because it doesn't exist. Retry the request with a different "
                            "resource identifier."),
                   AgentCall("arn:aws:bedrock:us-east-1:111122223333:agent-alias/HELPDESK01/DELETED001"),
                   "resource-not-found",
                   {"DELETED001", "deleted", "agent-alias/{agent-id}/{alias-id}"}});
  cases.push_back({"agent in another region than the provider",
                   RestJson("bedrock-agent-runtime", 404, "ResourceNotFoundException",
                            "Failed to retrieve resource because it doesn't exist."),
                   AgentCall("arn:aws:bedrock:us-west-2:111122223333:agent-alias/HELPDESK01/PRODALIAS1", "us-east-1"),
                   "region-mismatch",
                   {"us-west-2", "us-east-1"}});
  CallContext connect = ModelCall(kHaiku);
  connect.endpoint_url = "https://bedrock-runtime.us-east-1.amazonaws.com";
  cases.push_back({"could not connect",
                   aws::MakeConnectionError("bedrock-runtime",
                                            "connect to bedrock-runtime.us-east-1.amazonaws.com:443: Connection refused",
                                            false),
                   connect,
                   "could-not-connect",
                   {"https://bedrock-runtime.us-east-1.amazonaws.com", "VPC endpoint", "Connection refused"}});
  cases.push_back({"TLS certificate not trusted (a TLS-inspecting proxy)",
                   aws::MakeConnectionError("bedrock-runtime",
                                            "connect_failed: SSL certificate problem: unable to get local issuer "
                                            "certificate; the server's TLS certificate is not trusted",
                                            false),
                   connect,
                   "tls-certificate-untrusted",
                   {"AWS_CA_BUNDLE", "TLS-inspecting proxy", "Never turn certificate verification off"}});
  cases.push_back({"request timed out",
                   aws::MakeConnectionError("bedrock-runtime", "no response within 60000 ms", true),
                   ModelCall(kHaiku), "request-timed-out", {"timed out", kHaiku}});
  cases.push_back({"agent dependency failed",
                   RestJsonWithField("bedrock-agent-runtime", 424, "DependencyFailedException",
                                     "The agent's dependency failed to respond; check the resources the agent uses and "
                                     "try again.",
                                     "resourceName", "Lambda"),
                   AgentCall(), "agent-execution-timed-out", {"Lambda", "knowledge base", "timeout"}});
  cases.push_back({"agent call timed out",
                   aws::MakeConnectionError("bedrock-agent-runtime", "no response within 120000 ms", true),
                   AgentCall(), "agent-execution-timed-out", {kAliasArn}});
  cases.push_back({"alias with no associated version",
                   RestJson("bedrock-agent-runtime", 404, "ResourceNotFoundException",
                            "Agent alias NOVERSION1 of agent HELPDESK01 has no associated version. Associate the alias "
                            "with a prepared agent version, or use TSTALIASID to invoke the DRAFT version."),
                   AgentCall("arn:aws:bedrock:us-east-1:111122223333:agent-alias/HELPDESK01/NOVERSION1"),
                   "agent-alias-no-version",
                   {"Create a new version and associate it", "NOVERSION1", "TSTALIASID"}});
  cases.push_back({"throttled with HTTP 429",
                   RestJson("bedrock-runtime", 429, "ThrottlingException",
                            "Too many requests, please wait before trying again."),
                   ModelCall(kHaiku), "throttled", {"tokens-per-minute", "Service Quotas", "us-east-1", kHaiku}});
  cases.push_back({"throttled inside the stream (lower-case spelling)",
                   aws::ParseStreamException("bedrock-runtime", "throttlingException",
                                             R"({"message":"Too many tokens, please wait before trying again."})"),
                   ModelCall(kHaiku, "us-east-1", "InvokeModelWithResponseStream"), "throttled",
                   {"inside the response stream", "cross-region"}});
  cases.push_back({"STS throttling", StsXml(400, "Throttling", "Rate exceeded"), ModelCall("", "us-east-1",
                   "GetCallerIdentity"), "throttled", {"Rate exceeded"}});
  cases.push_back({"service quota exceeded",
                   RestJson("bedrock-runtime", 400, "ServiceQuotaExceededException",
                            "Your request exceeded the tokens per day quota."),
                   ModelCall(kHaiku), "service-quota-exceeded", {"Service Quotas", "tokens per day"}});
  cases.push_back({"validation error in the body",
                   RestJson("bedrock-runtime", 400, "ValidationException",
                            "max_tokens: 100000 > 4096, which is the maximum allowed number of output tokens"),
                   ModelCall(kHaiku), "validation-error",
                   {"max_tokens: 100000 > 4096", "anthropic_version", "alternate"}});
  cases.push_back({"expired session token",
                   RestJson("bedrock-runtime", 400, "ExpiredTokenException",
                            "The security token included in the request is expired"),
                   ModelCall(kHaiku), "credentials-expired", {"Refresh", "ExpiredTokenException"}});
  cases.push_back({"expired token on STS", StsXml(400, "ExpiredToken", "The security token included in the request is expired"),
                   ModelCall("", "us-east-1", "GetCallerIdentity"), "credentials-expired", {"sts-req-1"}});
  cases.push_back({"unknown access key",
                   RestJson("bedrock-runtime", 403, "UnrecognizedClientException",
                            "The security token included in the request is invalid."),
                   ModelCall(kHaiku), "credentials-invalid", {"deactivated", "get-caller-identity"}});
  cases.push_back({"wrong secret on STS",
                   StsXml(403, "SignatureDoesNotMatch",
                          "The request signature we calculated does not match the signature you provided. Check your "
                          "AWS Secret Access Key and signing method."),
                   ModelCall("", "us-east-1", "GetCallerIdentity"), "credentials-invalid", {"secret"}});
  cases.push_back({"clock skew",
                   RestJson("bedrock-runtime", 403, "InvalidSignatureException",
                            "Signature expired: 20240101T000000Z is now earlier than 20240101T001000Z "
                            "(20240101T000500Z - 5 min.)"),
                   ModelCall(kHaiku), "clock-skew", {"NTP", "Signature expired"}});
  CallContext bearer = AgentCall();
  bearer.used_bearer_token = true;
  cases.push_back({"bearer token on an agent",
                   RestJson("bedrock-agent-runtime", 403, "AccessDeniedException",
                            "Bedrock API keys (bearer tokens) are not supported by bedrock-agent-runtime; sign the "
                            "request with SigV4 using AWS access keys (unset AWS_BEARER_TOKEN_BEDROCK)."),
                   bearer, "bearer-token-not-accepted", {"AWS_BEARER_TOKEN_BEDROCK", "IAM credentials"}});
  cases.push_back({"corrupt event-stream frame",
                   aws::MakeConnectionError("bedrock-runtime", "event stream message CRC mismatch (prelude checksum)",
                                            false),
                   ModelCall(kHaiku, "us-east-1", "InvokeModelWithResponseStream"), "event-stream-broken",
                   {"proxy", "Retry"}});
  cases.push_back({"model stream error inside the stream",
                   aws::ParseStreamException("bedrock-runtime", "modelStreamErrorException",
                                             R"({"message":"The stream ended unexpectedly.","originalStatusCode":500})"),
                   ModelCall(kHaiku, "us-east-1", "ConverseStream"), "event-stream-broken", {"ModelStreamErrorException"}});
  cases.push_back({"stalled stream",
                   aws::MakeConnectionError("bedrock-runtime", "stream idle timeout: no bytes for 30000 ms", true),
                   ModelCall(kHaiku, "us-east-1", "InvokeModelWithResponseStream"), "event-stream-stalled",
                   {"buffer", "idle timeout"}});
  cases.push_back({"model not ready",
                   RestJson("bedrock-runtime", 429, "ModelNotReadyException",
                            "Model is not ready for inference. Wait and try your request again."),
                   ModelCall(kHaiku), "model-not-ready", {"retried automatically"}});
  cases.push_back({"model timeout",
                   RestJson("bedrock-runtime", 408, "ModelTimeoutException",
                            "Model has timed out in processing the request. Try your request again."),
                   ModelCall(kHaiku), "model-timeout", {"max_tokens"}});
  cases.push_back({"model error",
                   RestJsonWithField("bedrock-runtime", 424, "ModelErrorException", "The model failed.",
                                     "originalStatusCode", "500"),
                   ModelCall(kHaiku), "model-error", {"status 500"}});
  cases.push_back({"internal server error",
                   RestJson("bedrock-runtime", 500, "InternalServerException",
                            "The server encountered an internal error while processing the request.", "req-500"),
                   ModelCall(kHaiku), "service-error", {"req-500", "retries these automatically"}});
  cases.push_back({"service unavailable",
                   RestJson("bedrock-runtime", 503, "ServiceUnavailableException", "Try again later."),
                   ModelCall(kHaiku), "service-error", {"HTTP 503"}});
  cases.push_back({"an error no entry knows",
                   RestJson("bedrock-runtime", 418, "TeapotException", "I am a teapot.", "req-tea"),
                   ModelCall(kHaiku), "unknown-error",
                   {"TeapotException", "HTTP 418", "req-tea", "I am a teapot.", "CloudTrail"}});
  cases.push_back({"an HTML error page from a proxy in front of Bedrock",
                   aws::ParseRestJsonError("bedrock-runtime", 403, {{"Content-Type", "text/html"}},
                                           "<html><head><title>Access blocked by policy</title></head></html>"),
                   ModelCall(kHaiku),
                   "response-not-from-aws",
                   {"Access blocked by policy", "HTTPS_PROXY", "NO_PROXY", "endpoint URL"}});
  return cases;
}

TEST(TroubleshootTest, EachErrorGetsItsEntryWithTheCallsDetails) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    TroubleshootingEntry entry = Troubleshoot(c.error, c.context);
    EXPECT_EQ(entry.id, c.expected_id) << entry.ToText();
    const std::string text = entry.ToText();
    for (const std::string& fact : c.facts) EXPECT_THAT(text, HasSubstr(fact));
    EXPECT_FALSE(entry.title.empty());
    EXPECT_FALSE(entry.likely_causes.empty());
    EXPECT_FALSE(entry.how_to_fix.empty());
    // what_happened always carries the AWS code and the operation.
    EXPECT_THAT(entry.what_happened, HasSubstr(c.error.code));
    if (!c.context.operation.empty()) {
      EXPECT_THAT(entry.what_happened, HasSubstr(c.context.operation));
    }
  }
}

TEST(TroubleshootTest, EveryEntryIdIsReachable) {
  std::set<std::string> reached;
  for (const Case& c : Cases()) reached.insert(Troubleshoot(c.error, c.context).id);
  std::vector<std::string> ids = TroubleshootingEntryIds();
  std::set<std::string> all(ids.begin(), ids.end());
  EXPECT_EQ(all.size(), ids.size()) << "duplicate entry ids";
  EXPECT_EQ(reached, all);
}

TEST(TroubleshootTest, BaseAgentArnEntryShowsTheParsersGuidance) {
  TroubleshootingEntry entry =
      Troubleshoot(RestJson("bedrock-agent-runtime", 403, "AccessDeniedException", "denied"),
                   AgentCall("arn:aws:bedrock:us-east-2:123456789012:agent/ABCD1234EF", "us-east-2"));
  EXPECT_EQ(entry.id, "invalid-agent-alias-arn");
  EXPECT_THAT(entry.what_happened, HasSubstr("agent-alias/ABCD1234EF/{alias-id}"));
}

TEST(TroubleshootTest, ThrottlingWinsOverAMalformedAliasArn) {
  // A throttle says nothing about the ARN; do not blame it.
  TroubleshootingEntry entry =
      Troubleshoot(RestJson("bedrock-agent-runtime", 429, "ThrottlingException", "Rate exceeded"),
                   AgentCall("arn:aws:bedrock:us-east-2:123456789012:agent/ABCD1234EF", "us-east-2"));
  EXPECT_EQ(entry.id, "throttled");
}

TEST(TroubleshootTest, OnDemandEntryWithoutAKnownRegionExplainsThePrefixes) {
  TroubleshootingEntry entry = Troubleshoot(
      RestJson("bedrock-runtime", 400, "ValidationException",
               std::string("Invocation of model ID ") + kSonnet4 + " with on-demand throughput isn't supported."),
      ModelCall(kSonnet4, ""));
  EXPECT_EQ(entry.id, "on-demand-not-supported");
  EXPECT_THAT(entry.ToText(), HasSubstr("global."));
}

TEST(TroubleshootingEntryTest, ToJsonHasEveryField) {
  TroubleshootingEntry entry = Troubleshoot(RestJson("bedrock-runtime", 429, "ThrottlingException", "slow down"),
                                            ModelCall(kHaiku));
  nlohmann::json j = entry.ToJson();
  EXPECT_EQ(j["id"], "throttled");
  EXPECT_EQ(j["title"], entry.title);
  EXPECT_EQ(j["what_happened"], entry.what_happened);
  ASSERT_TRUE(j["likely_causes"].is_array());
  ASSERT_TRUE(j["how_to_fix"].is_array());
  EXPECT_EQ(j["how_to_fix"].size(), entry.how_to_fix.size());
  std::string text = entry.ToText();
  EXPECT_THAT(text, HasSubstr("What happened: "));
  EXPECT_THAT(text, HasSubstr("How to fix:\n  1. "));
}

TEST(TroubleshootingDocTest, EveryEntryIdIsDocumented) {
  std::string root;
  if (const char* env = std::getenv("QUARRY_SOURCE_DIR"); env != nullptr && *env != '\0') {
    root = env;
  } else {
    root = QUARRY_TEST_SOURCE_DIR;
  }
  std::ifstream in(root + "/docs/troubleshooting.md");
  ASSERT_TRUE(in.good()) << "cannot read " << root << "/docs/troubleshooting.md";
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string doc = buffer.str();
  for (const std::string& id : TroubleshootingEntryIds()) {
    EXPECT_THAT(doc, HasSubstr("`" + id + "`")) << "docs/troubleshooting.md does not describe " << id;
  }
}

}  // namespace
}  // namespace quarry::bedrock
