#include "aws/sigv4_verifier.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "common/encoding.h"

namespace quarry::aws {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

constexpr char kSecret[] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr char kMismatch[] =
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details.";

WallTime At(std::string_view iso) {
  WallTime time;
  EXPECT_TRUE(ParseIso8601Utc(iso, &time)) << iso;
  return time;
}

Credentials MakeCredentials(std::string key_id, std::string secret, std::string token = "") {
  Credentials credentials;
  credentials.access_key_id = std::move(key_id);
  credentials.secret_access_key = std::move(secret);
  credentials.session_token = std::move(token);
  return credentials;
}

class SigV4VerifierTest : public ::testing::Test {
 protected:
  SigV4VerifierTest()
      : verifier_({.region = "us-east-1", .service = "bedrock"},
                  [this](std::string_view key_id) -> std::optional<KnownAccessKey> {
                    const auto it = keys_.find(std::string(key_id));
                    if (it == keys_.end()) return std::nullopt;
                    return it->second;
                  },
                  &cache_) {
    keys_["AKIDEXAMPLE"] = KnownAccessKey{kSecret, ""};
    keys_["ASIATEMPORARY"] = KnownAccessKey{"temporary-secret", "the-session-token"};
  }

  // An InvokeModel request signed at `time` with the given key.
  HttpRequest Signed(std::string_view time, std::string key_id = "AKIDEXAMPLE", std::string secret = kSecret,
                     std::string token = "", bool omit_token = false) {
    HttpRequest request;
    request.method = "POST";
    request.path = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke";
    request.headers = {{"Host", "bedrock-runtime.us-east-1.amazonaws.com"},
                       {"Content-Type", "application/json"},
                       {"Accept", "application/json"},
                       {"User-Agent", "test"}};
    request.body = R"({"anthropic_version":"bedrock-2023-05-31","max_tokens":64})";
    const Credentials credentials = MakeCredentials(std::move(key_id), std::move(secret), std::move(token));
    EXPECT_TRUE(SignRequest({.credentials = &credentials, .region = "us-east-1", .service = "bedrock",
                             .time = At(time), .omit_session_token = omit_token},
                            request)
                    .ok());
    return request;
  }

  VerificationResult Verify(const HttpRequest& request, std::string_view now) {
    return verifier_.Verify({.method = request.method,
                             .raw_path = request.path,
                             .raw_query = request.query,
                             .headers = request.headers,
                             .body = request.body},
                            At(now));
  }

  static SignatureVerificationError ErrorOf(const VerificationResult& result) {
    const auto* error = std::get_if<SignatureVerificationError>(&result);
    EXPECT_NE(error, nullptr) << "expected a verification error";
    return error != nullptr ? *error : SignatureVerificationError{};
  }

  static void SetAuthorization(HttpRequest& request, std::string value) { request.SetHeader("Authorization", value); }

  std::map<std::string, KnownAccessKey> keys_;
  SigningKeyCache cache_;
  SigV4Verifier verifier_;
};

TEST_F(SigV4VerifierTest, AcceptsARequestSignedWithAKnownKey) {
  const HttpRequest request = Signed("2015-08-30T12:36:00Z");
  const VerificationResult result = Verify(request, "2015-08-30T12:40:00Z");
  const auto* identity = std::get_if<VerifiedIdentity>(&result);
  ASSERT_NE(identity, nullptr) << ErrorOf(result).message;
  EXPECT_EQ(identity->access_key_id, "AKIDEXAMPLE");
  EXPECT_EQ(identity->region, "us-east-1");
  EXPECT_EQ(identity->service, "bedrock");
  EXPECT_EQ(identity->date, "20150830");
  EXPECT_EQ(identity->session_token, "");
  EXPECT_EQ(identity->request_time, At("2015-08-30T12:36:00Z"));
}

TEST_F(SigV4VerifierTest, AcceptsTemporaryCredentialsWithTheirSessionToken) {
  const HttpRequest request = Signed("2015-08-30T12:36:00Z", "ASIATEMPORARY", "temporary-secret", "the-session-token");
  const VerificationResult result = Verify(request, "2015-08-30T12:36:00Z");
  const auto* identity = std::get_if<VerifiedIdentity>(&result);
  ASSERT_NE(identity, nullptr) << ErrorOf(result).message;
  EXPECT_EQ(identity->session_token, "the-session-token");
}

TEST_F(SigV4VerifierTest, AcceptsAnUnsignedSessionTokenAddedAfterSigning) {
  const HttpRequest request =
      Signed("2015-08-30T12:36:00Z", "ASIATEMPORARY", "temporary-secret", "the-session-token", true);
  EXPECT_TRUE(std::holds_alternative<VerifiedIdentity>(Verify(request, "2015-08-30T12:36:00Z")));
}

TEST_F(SigV4VerifierTest, RejectsAWrongSessionToken) {
  const HttpRequest request = Signed("2015-08-30T12:36:00Z", "ASIATEMPORARY", "temporary-secret", "forged");
  const SignatureVerificationError error = ErrorOf(Verify(request, "2015-08-30T12:36:00Z"));
  EXPECT_EQ(error.code, "UnrecognizedClientException");
  EXPECT_EQ(error.http_status, 403);
  EXPECT_EQ(error.message, "The security token included in the request is invalid.");
}

TEST_F(SigV4VerifierTest, RejectsTemporaryCredentialsWithoutTheirSessionToken) {
  const HttpRequest request = Signed("2015-08-30T12:36:00Z", "ASIATEMPORARY", "temporary-secret");
  EXPECT_EQ(ErrorOf(Verify(request, "2015-08-30T12:36:00Z")).code, "UnrecognizedClientException");
}

TEST_F(SigV4VerifierTest, RejectsAnUnknownAccessKeyId) {
  const HttpRequest request = Signed("2015-08-30T12:36:00Z", "AKIDUNKNOWN");
  const SignatureVerificationError error = ErrorOf(Verify(request, "2015-08-30T12:36:00Z"));
  EXPECT_EQ(error.code, "UnrecognizedClientException");
  EXPECT_EQ(error.http_status, 403);
  EXPECT_EQ(error.message, "The security token included in the request is invalid.");
}

TEST_F(SigV4VerifierTest, RejectsAWrongSecret) {
  const HttpRequest request = Signed("2015-08-30T12:36:00Z", "AKIDEXAMPLE", "not-the-secret");
  const SignatureVerificationError error = ErrorOf(Verify(request, "2015-08-30T12:36:00Z"));
  EXPECT_EQ(error.code, "InvalidSignatureException");
  EXPECT_EQ(error.http_status, 403);
  EXPECT_EQ(error.message, kMismatch);
}

TEST_F(SigV4VerifierTest, RejectsATamperedBodyPathOrSignedHeader) {
  HttpRequest body = Signed("2015-08-30T12:36:00Z");
  body.body += " ";
  EXPECT_EQ(ErrorOf(Verify(body, "2015-08-30T12:36:00Z")).message, kMismatch);

  HttpRequest path = Signed("2015-08-30T12:36:00Z");
  path.path = "/model/anthropic.claude-3-5-sonnet-20240620-v1:0/invoke";  // same model, other wire form
  EXPECT_EQ(ErrorOf(Verify(path, "2015-08-30T12:36:00Z")).message, kMismatch);

  HttpRequest header = Signed("2015-08-30T12:36:00Z");
  header.SetHeader("Accept", "text/plain");
  EXPECT_EQ(ErrorOf(Verify(header, "2015-08-30T12:36:00Z")).message, kMismatch);

  HttpRequest unsigned_header = Signed("2015-08-30T12:36:00Z");
  unsigned_header.SetHeader("User-Agent", "changed by a proxy");
  EXPECT_TRUE(std::holds_alternative<VerifiedIdentity>(Verify(unsigned_header, "2015-08-30T12:36:00Z")));
}

TEST_F(SigV4VerifierTest, RejectsAnExpiredSignatureWithAwsWording) {
  const HttpRequest request = Signed("2015-08-30T12:36:00Z");
  const SignatureVerificationError error = ErrorOf(Verify(request, "2015-08-30T13:01:00Z"));
  EXPECT_EQ(error.code, "InvalidSignatureException");
  EXPECT_EQ(error.http_status, 403);
  EXPECT_EQ(error.message,
            "Signature expired: 20150830T123600Z is now earlier than 20150830T124600Z (20150830T130100Z - 15 min.)");
}

TEST_F(SigV4VerifierTest, RejectsASignatureFromTheFutureWithAwsWording) {
  const HttpRequest request = Signed("2015-08-30T13:01:00Z");
  const SignatureVerificationError error = ErrorOf(Verify(request, "2015-08-30T12:36:00Z"));
  EXPECT_EQ(error.code, "InvalidSignatureException");
  EXPECT_EQ(error.message,
            "Signature not yet current: 20150830T130100Z is still later than 20150830T125100Z "
            "(20150830T123600Z + 15 min.)");
}

TEST_F(SigV4VerifierTest, AcceptsSkewUpToFifteenMinutesEitherWay) {
  const HttpRequest request = Signed("2015-08-30T12:36:00Z");
  EXPECT_TRUE(std::holds_alternative<VerifiedIdentity>(Verify(request, "2015-08-30T12:51:00Z")));
  EXPECT_TRUE(std::holds_alternative<VerifiedIdentity>(Verify(request, "2015-08-30T12:21:00Z")));
}

TEST_F(SigV4VerifierTest, ReportsAMissingAuthorizationHeader) {
  HttpRequest request = Signed("2015-08-30T12:36:00Z");
  request.RemoveHeaders("authorization");
  const SignatureVerificationError error = ErrorOf(Verify(request, "2015-08-30T12:36:00Z"));
  EXPECT_EQ(error.code, "MissingAuthenticationTokenException");
  EXPECT_EQ(error.http_status, 403);
  EXPECT_EQ(error.message, "Missing Authentication Token");
}

TEST_F(SigV4VerifierTest, ReportsABearerTokenSeparately) {
  HttpRequest request = Signed("2015-08-30T12:36:00Z");
  SetAuthorization(request, "Bearer bedrock-api-key-ABC123==");
  const VerificationResult result = Verify(request, "2015-08-30T12:36:00Z");
  const auto* bearer = std::get_if<BearerAuthorization>(&result);
  ASSERT_NE(bearer, nullptr);
  EXPECT_EQ(bearer->token, "bedrock-api-key-ABC123==");
}

TEST_F(SigV4VerifierTest, ToleratesTheSpacingVariantsAwsAccepts) {
  const HttpRequest signed_request = Signed("2015-08-30T12:36:00Z");
  const std::string original = signed_request.FindHeader("authorization")->value;
  const std::string signature = original.substr(original.find("Signature=") + 10);
  const std::string credential = "AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request";
  const std::string signed_headers = "accept;content-type;host;x-amz-date";
  for (const std::string& variant : {
           "AWS4-HMAC-SHA256 Credential=" + credential + ",SignedHeaders=" + signed_headers + ",Signature=" + signature,
           "AWS4-HMAC-SHA256   Credential=" + credential + " ,  SignedHeaders=" + signed_headers +
               ",\tSignature=" + signature + "  ",
           "AWS4-HMAC-SHA256 Signature=" + signature + ", Credential=" + credential +
               ", SignedHeaders=" + signed_headers,
       }) {
    HttpRequest request = signed_request;
    SetAuthorization(request, variant);
    const VerificationResult result = Verify(request, "2015-08-30T12:36:00Z");
    EXPECT_TRUE(std::holds_alternative<VerifiedIdentity>(result)) << variant << ": " << ErrorOf(result).message;
  }
}

TEST_F(SigV4VerifierTest, ReportsEachMissingAuthorizationParameter) {
  HttpRequest request = Signed("2015-08-30T12:36:00Z");
  SetAuthorization(request,
                   "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, "
                   "SignedHeaders=host;x-amz-date");
  const SignatureVerificationError error = ErrorOf(Verify(request, "2015-08-30T12:36:00Z"));
  EXPECT_EQ(error.code, "IncompleteSignatureException");
  EXPECT_EQ(error.http_status, 400);
  EXPECT_EQ(error.message,
            "Authorization header requires 'Signature' parameter. Authorization=AWS4-HMAC-SHA256 "
            "Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date");

  SetAuthorization(request, "some-opaque-token");
  EXPECT_EQ(ErrorOf(Verify(request, "2015-08-30T12:36:00Z")).message,
            "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' "
            "parameter. Authorization header requires 'SignedHeaders' parameter. Authorization=some-opaque-token");
}

TEST_F(SigV4VerifierTest, ReportsAMissingXAmzDate) {
  HttpRequest request = Signed("2015-08-30T12:36:00Z");
  request.RemoveHeaders("x-amz-date");
  const SignatureVerificationError error = ErrorOf(Verify(request, "2015-08-30T12:36:00Z"));
  EXPECT_EQ(error.code, "IncompleteSignatureException");
  EXPECT_THAT(error.message,
              HasSubstr("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."));
}

TEST_F(SigV4VerifierTest, ReportsAPairWithoutEqualSign) {
  HttpRequest request = Signed("2015-08-30T12:36:00Z");
  SetAuthorization(request,
                   "AWS4-HMAC-SHA256 Credential= AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, "
                   "SignedHeaders=host;x-amz-date, Signature=00");
  const SignatureVerificationError error = ErrorOf(Verify(request, "2015-08-30T12:36:00Z"));
  EXPECT_EQ(error.code, "IncompleteSignatureException");
  EXPECT_THAT(error.message, HasSubstr("'AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request' not a valid "
                                       "key=value pair (missing equal-sign) in Authorization header: "));
}

TEST_F(SigV4VerifierTest, ReportsAMalformedCredentialOrAlgorithm) {
  HttpRequest request = Signed("2015-08-30T12:36:00Z");
  SetAuthorization(request,
                   "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/aws4_request, "
                   "SignedHeaders=host;x-amz-date, Signature=00");
  SignatureVerificationError error = ErrorOf(Verify(request, "2015-08-30T12:36:00Z"));
  EXPECT_EQ(error.code, "IncompleteSignatureException");
  EXPECT_THAT(error.message, HasSubstr("is malformed"));

  SetAuthorization(request, "AWS4-HMAC-SHA1 Credential=A/20150830/us-east-1/bedrock/aws4_request, "
                            "SignedHeaders=host;x-amz-date, Signature=00");
  error = ErrorOf(Verify(request, "2015-08-30T12:36:00Z"));
  EXPECT_EQ(error.code, "IncompleteSignatureException");
  EXPECT_THAT(error.message, HasSubstr("AWS4-HMAC-SHA1"));
}

TEST_F(SigV4VerifierTest, RejectsAScopeForAnotherRegionServiceOrDay) {
  SigV4Verifier other_region({.region = "eu-west-3", .service = "bedrock"},
                             [](std::string_view) { return std::optional<KnownAccessKey>(); });
  const HttpRequest request = Signed("2015-08-30T12:36:00Z");
  const ReceivedRequest received{request.method, request.path, request.query, request.headers, request.body};
  SignatureVerificationError error = ErrorOf(other_region.Verify(received, At("2015-08-30T12:36:00Z")));
  EXPECT_EQ(error.code, "InvalidSignatureException");
  EXPECT_THAT(error.message, HasSubstr("Credential should be scoped to a valid region, not 'us-east-1'."));

  SigV4Verifier other_service({.region = "us-east-1", .service = "sts"},
                              [](std::string_view) { return std::optional<KnownAccessKey>(); });
  error = ErrorOf(other_service.Verify(received, At("2015-08-30T12:36:00Z")));
  EXPECT_EQ(error.message, "Credential should be scoped to correct service: 'sts'.");

  HttpRequest other_day = request;
  other_day.SetHeader("X-Amz-Date", "20150831T000100Z");
  error = ErrorOf(Verify(other_day, "2015-08-31T00:01:00Z"));
  EXPECT_EQ(error.code, "InvalidSignatureException");
  EXPECT_THAT(error.message, HasSubstr("'20150830' != '20150831'"));
}

TEST_F(SigV4VerifierTest, RequiresHostAndDateToBeSigned) {
  HttpRequest request = Signed("2015-08-30T12:36:00Z");
  SetAuthorization(request, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, "
                            "SignedHeaders=accept;x-amz-date, Signature=00");
  EXPECT_THAT(ErrorOf(Verify(request, "2015-08-30T12:36:00Z")).message, HasSubstr("'Host'"));
  SetAuthorization(request, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, "
                            "SignedHeaders=accept;host, Signature=00");
  EXPECT_THAT(ErrorOf(Verify(request, "2015-08-30T12:36:00Z")).message, HasSubstr("'X-Amz-Date'"));
}

TEST_F(SigV4VerifierTest, RejectsAMalformedXAmzDate) {
  HttpRequest request = Signed("2015-08-30T12:36:00Z");
  request.SetHeader("X-Amz-Date", "2015-08-30T12:36:00Z");
  const SignatureVerificationError error = ErrorOf(Verify(request, "2015-08-30T12:36:00Z"));
  EXPECT_EQ(error.code, "IncompleteSignatureException");
  EXPECT_THAT(error.message, HasSubstr("ISO-8601"));
}

TEST_F(SigV4VerifierTest, ChecksASignedContentSha256AgainstTheBody) {
  HttpRequest request;
  request.method = "PUT";
  request.path = "/x";
  request.headers = {{"Host", "bedrock.us-east-1.amazonaws.com"}};
  request.body = "payload";
  const Credentials credentials = MakeCredentials("AKIDEXAMPLE", kSecret);
  ASSERT_TRUE(SignRequest({.credentials = &credentials, .region = "us-east-1", .service = "bedrock",
                           .time = At("2015-08-30T12:36:00Z"), .sign_body = true},
                          request)
                  .ok());
  EXPECT_TRUE(std::holds_alternative<VerifiedIdentity>(Verify(request, "2015-08-30T12:36:00Z")));
  request.body = "tampered";
  const SignatureVerificationError error = ErrorOf(Verify(request, "2015-08-30T12:36:00Z"));
  EXPECT_EQ(error.code, "XAmzContentSHA256Mismatch");
  EXPECT_EQ(error.http_status, 400);
}

TEST_F(SigV4VerifierTest, VerifiesRequestsWithQueriesAndNormalizablePaths) {
  HttpRequest request = Signed("2015-08-30T12:36:00Z");
  request.method = "GET";
  request.path = "/foundation-models/./x//y";
  request.query = "byProvider=Anthropic&a=2&a=1&empty=";
  request.body.clear();
  const Credentials credentials = MakeCredentials("AKIDEXAMPLE", kSecret);
  ASSERT_TRUE(SignRequest({.credentials = &credentials, .region = "us-east-1", .service = "bedrock",
                           .time = At("2015-08-30T12:36:00Z")},
                          request)
                  .ok());
  EXPECT_TRUE(std::holds_alternative<VerifiedIdentity>(Verify(request, "2015-08-30T12:36:00Z")));
}

}  // namespace
}  // namespace quarry::aws
