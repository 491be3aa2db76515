#include "aws/sigv4.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/encoding.h"

namespace quarry::aws {
namespace {

using ::testing::HasSubstr;

constexpr char kAccessKey[] = "AKIDEXAMPLE";
constexpr char kSecret[] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr char kInvokeBody[] =
    R"({"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"Hi"}]})";

WallTime At(std::string_view iso) {
  WallTime time;
  EXPECT_TRUE(ParseIso8601Utc(iso, &time)) << iso;
  return time;
}

Credentials ExampleCredentials(std::string token = "") {
  Credentials credentials;
  credentials.access_key_id = kAccessKey;
  credentials.secret_access_key = kSecret;
  credentials.session_token = std::move(token);
  return credentials;
}

HttpRequest InvokeModelRequest() {
  HttpRequest request;
  request.method = "POST";
  request.path = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke";
  request.headers = {{"Host", "bedrock-runtime.us-east-1.amazonaws.com"},
                     {"Content-Type", "application/json"},
                     {"Accept", "application/json"}};
  request.body = kInvokeBody;
  return request;
}

size_t CountHeaders(const HttpRequest& request, std::string_view name) {
  size_t count = 0;
  for (const HttpHeader& header : request.headers) count += EqualsIgnoreAsciiCase(header.name, name) ? 1 : 0;
  return count;
}

TEST(SigV4Test, SignsTheWorkedInvokeModelExample) {
  const Credentials credentials = ExampleCredentials();
  HttpRequest request = InvokeModelRequest();
  SigningArtifacts artifacts;
  ASSERT_TRUE(SignRequest({.credentials = &credentials,
                           .region = "us-east-1",
                           .service = "bedrock",
                           .time = At("2015-08-30T12:36:00Z")},
                          request, &artifacts)
                  .ok());
  EXPECT_EQ(artifacts.signature, "175e49e0c0c85b54499e528572318d034beae422504c7278f995ec47999e5e60");
  EXPECT_EQ(artifacts.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, "
            "SignedHeaders=accept;content-type;host;x-amz-date, "
            "Signature=175e49e0c0c85b54499e528572318d034beae422504c7278f995ec47999e5e60");
  EXPECT_EQ(request.FindHeader("authorization")->value, artifacts.authorization);
  EXPECT_EQ(request.FindHeader("x-amz-date")->value, "20150830T123600Z");
  EXPECT_THAT(artifacts.canonical_request,
              HasSubstr("POST\n/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/invoke\n\n"));
  EXPECT_EQ(artifacts.credential_scope, "20150830/us-east-1/bedrock/aws4_request");
  EXPECT_EQ(artifacts.string_to_sign,
            StringToSign("20150830T123600Z", artifacts.credential_scope, artifacts.canonical_request));
}

TEST(SigV4Test, SignsTheConverseExampleFromTheDependencyNotes) {
  const Credentials credentials = ExampleCredentials();
  HttpRequest request;
  request.method = "POST";
  request.path = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse";
  request.headers = {{"Host", "bedrock-runtime.us-east-1.amazonaws.com"}, {"Content-Type", "application/json"}};
  request.body = R"({"messages":[{"role":"user","content":[{"text":"hi"}]}]})";
  SigningArtifacts artifacts;
  ASSERT_TRUE(SignRequest({.credentials = &credentials,
                           .region = "us-east-1",
                           .service = "bedrock",
                           .time = At("2024-01-02T03:04:05Z")},
                          request, &artifacts)
                  .ok());
  EXPECT_EQ(artifacts.signed_headers, "content-type;host;x-amz-date");
  EXPECT_EQ(artifacts.signature, "687b0fd2a650c135ee68f1c05cc35f2cfc9f832eb202df0f0f0c55613aa9dfc3");
}

TEST(SigV4Test, DerivesTheSigningKeyOfTheAwsDocsExample) {
  EXPECT_EQ(DigestHex(DeriveSigningKey(kSecret, "20150830", "us-east-1", "iam")),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9");
}

TEST(SigV4Test, DoubleEncodesColonInModelId) {
  EXPECT_EQ(CanonicalUri("/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke", "bedrock", true),
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/invoke");
}

TEST(SigV4Test, DoubleEncodesSlashInInferenceProfileArn) {
  EXPECT_EQ(CanonicalUri("/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.x/invoke",
                         "bedrock", true),
            "/model/arn%253Aaws%253Abedrock%253Aus-east-1%253A123456789012%253Ainference-profile%252Fus.x/invoke");
}

TEST(SigV4Test, EncodesRawCharactersOnceAndKeepsUnreservedOnes) {
  EXPECT_EQ(CanonicalUri("/a b/c:d/e~f-g_h.i", "bedrock", true), "/a%20b/c%3Ad/e~f-g_h.i");
}

TEST(SigV4Test, SignsS3PathsAsTheyAreOnTheWire) {
  EXPECT_EQ(CanonicalUri("/bucket/key%3A1//x", "s3", false), "/bucket/key%3A1//x");
}

TEST(SigV4Test, NormalizesDotSegmentsAndDuplicateSlashesLikeBotocore) {
  EXPECT_EQ(CanonicalUri("/example/./a/../b//c/", "service", true), "/example/b/c/");
  EXPECT_EQ(CanonicalUri("/a/b/..", "service", true), "/a");
  EXPECT_EQ(CanonicalUri("/..", "service", true), "/");
  EXPECT_EQ(CanonicalUri("//", "service", true), "/");
  EXPECT_EQ(CanonicalUri("/a/", "service", true), "/a/");
}

TEST(SigV4Test, LeavesThePathAloneWhenNormalizationIsOff) {
  EXPECT_EQ(CanonicalUri("/example/./a/../b//c/", "service", false), "/example/./a/../b//c/");
}

TEST(SigV4Test, TurnsAnEmptyPathIntoSlash) {
  EXPECT_EQ(CanonicalUri("", "bedrock", true), "/");
  EXPECT_EQ(CanonicalUri("", "bedrock", false), "/");
  EXPECT_EQ(CanonicalUri("", "s3", false), "/");
}

TEST(SigV4Test, SortsQueryByNameThenValueAndKeepsRepeatedAndEmptyKeys) {
  EXPECT_EQ(CanonicalQueryString("b=2&a=2&a=1&empty=&novalue&A=x"), "A=x&a=1&a=2&b=2&empty=&novalue=");
}

TEST(SigV4Test, SortsQueryPairsByNameBeforeValue) {
  // Sorting joined "name=value" strings would put "a-b=1" first ('-' < '=').
  EXPECT_EQ(CanonicalQueryString("a-b=1&a=2"), "a=2&a-b=1");
}

TEST(SigV4Test, DecodesThenStrictlyReencodesQueryComponents) {
  EXPECT_EQ(CanonicalQueryString("k=%3a%2F&s=a%20b&r=b:c&p=1+2&bad=%zz&t=~"),
            "bad=%25zz&k=%3A%2F&p=1%2B2&r=b%3Ac&s=a%20b&t=~");
}

TEST(SigV4Test, TrimsHeaderValuesAndFoldsWhitespaceRuns) {
  EXPECT_EQ(CanonicalHeaderValue("  a   b\t\tc  "), "a b c");
  EXPECT_EQ(CanonicalHeaderValue("value1\n  value2\r\n\t value3"), "value1 value2 value3");
  EXPECT_EQ(CanonicalHeaderValue("   "), "");
}

TEST(SigV4Test, JoinsRepeatedHeadersInReceivedOrderAndSortsNames) {
  const Credentials credentials = ExampleCredentials();
  HttpRequest request;
  request.method = "GET";
  request.path = "/";
  request.headers = {{"My-Header1", "value2"},
                     {"Host", "example.amazonaws.com"},
                     {"my-header1", "  value1 "},
                     {"A-First", "x"}};
  SigningArtifacts artifacts;
  ASSERT_TRUE(SignRequest({.credentials = &credentials, .region = "us-east-1", .service = "service",
                           .time = At("2015-08-30T12:36:00Z")},
                          request, &artifacts)
                  .ok());
  EXPECT_THAT(artifacts.canonical_request,
              HasSubstr("\na-first:x\nhost:example.amazonaws.com\nmy-header1:value2,value1\nx-amz-date:"));
  EXPECT_EQ(artifacts.signed_headers, "a-first;host;my-header1;x-amz-date");
}

TEST(SigV4Test, NeverSignsUserAgentTraceIdOrHopByHopHeaders) {
  const Credentials credentials = ExampleCredentials();
  HttpRequest request = InvokeModelRequest();
  request.headers.push_back({"User-Agent", "quarry/1"});
  request.headers.push_back({"X-Amzn-Trace-Id", "Root=1"});
  request.headers.push_back({"Expect", "100-continue"});
  request.headers.push_back({"Connection", "keep-alive"});
  request.headers.push_back({"Transfer-Encoding", "chunked"});
  SigningArtifacts artifacts;
  ASSERT_TRUE(SignRequest({.credentials = &credentials, .region = "us-east-1", .service = "bedrock",
                           .time = At("2015-08-30T12:36:00Z")},
                          request, &artifacts)
                  .ok());
  EXPECT_EQ(artifacts.signed_headers, "accept;content-type;host;x-amz-date");
  EXPECT_EQ(artifacts.signature, "175e49e0c0c85b54499e528572318d034beae422504c7278f995ec47999e5e60");
}

TEST(SigV4Test, BuildsHostWithPortOnlyWhenNotDefault) {
  EXPECT_EQ(HostHeaderValue("https", "Bedrock-Runtime.us-east-1.amazonaws.com", 443),
            "bedrock-runtime.us-east-1.amazonaws.com");
  EXPECT_EQ(HostHeaderValue("http", "127.0.0.1", 80), "127.0.0.1");
  EXPECT_EQ(HostHeaderValue("http", "127.0.0.1", 8443), "127.0.0.1:8443");
  EXPECT_EQ(HostHeaderValue("https", "localhost", 80), "localhost:80");
  EXPECT_EQ(HostHeaderValue("https", "localhost"), "localhost");
}

TEST(SigV4Test, SignsTheSessionTokenByDefault) {
  const Credentials credentials = ExampleCredentials("session-token-value");
  HttpRequest request = InvokeModelRequest();
  request.headers.push_back({"x-amz-security-token", "stale"});
  SigningArtifacts artifacts;
  ASSERT_TRUE(SignRequest({.credentials = &credentials, .region = "us-east-1", .service = "bedrock",
                           .time = At("2015-08-30T12:36:00Z")},
                          request, &artifacts)
                  .ok());
  EXPECT_EQ(artifacts.signed_headers, "accept;content-type;host;x-amz-date;x-amz-security-token");
  EXPECT_THAT(artifacts.canonical_request, HasSubstr("\nx-amz-security-token:session-token-value\n"));
  EXPECT_EQ(CountHeaders(request, "x-amz-security-token"), 1u);
  EXPECT_EQ(request.FindHeader("X-Amz-Security-Token")->value, "session-token-value");
}

TEST(SigV4Test, AddsTheSessionTokenAfterSigningWhenAskedToOmitIt) {
  const Credentials credentials = ExampleCredentials("session-token-value");
  HttpRequest request = InvokeModelRequest();
  SigningArtifacts artifacts;
  ASSERT_TRUE(SignRequest({.credentials = &credentials, .region = "us-east-1", .service = "bedrock",
                           .time = At("2015-08-30T12:36:00Z"), .omit_session_token = true},
                          request, &artifacts)
                  .ok());
  EXPECT_EQ(artifacts.signed_headers, "accept;content-type;host;x-amz-date");
  EXPECT_EQ(artifacts.signature, "175e49e0c0c85b54499e528572318d034beae422504c7278f995ec47999e5e60");
  ASSERT_NE(request.FindHeader("x-amz-security-token"), nullptr);
  EXPECT_EQ(request.FindHeader("x-amz-security-token")->value, "session-token-value");
}

TEST(SigV4Test, ResigningReplacesTheOldAuthorizationAndDate) {
  const Credentials credentials = ExampleCredentials();
  HttpRequest request = InvokeModelRequest();
  request.headers.push_back({"authorization", "AWS4-HMAC-SHA256 Credential=old"});
  request.headers.push_back({"Authorization", "a second stale one"});
  ASSERT_TRUE(SignRequest({.credentials = &credentials, .region = "us-east-1", .service = "bedrock",
                           .time = At("2015-08-30T11:00:00Z")},
                          request)
                  .ok());
  SigningArtifacts artifacts;
  ASSERT_TRUE(SignRequest({.credentials = &credentials, .region = "us-east-1", .service = "bedrock",
                           .time = At("2015-08-30T12:36:00Z")},
                          request, &artifacts)
                  .ok());
  EXPECT_EQ(CountHeaders(request, "authorization"), 1u);
  EXPECT_EQ(CountHeaders(request, "x-amz-date"), 1u);
  EXPECT_EQ(artifacts.signature, "175e49e0c0c85b54499e528572318d034beae422504c7278f995ec47999e5e60");
}

TEST(SigV4Test, SignBodyAddsAndSignsTheContentSha256) {
  const Credentials credentials = ExampleCredentials();
  HttpRequest request = InvokeModelRequest();
  SigningArtifacts artifacts;
  ASSERT_TRUE(SignRequest({.credentials = &credentials, .region = "us-east-1", .service = "bedrock",
                           .time = At("2015-08-30T12:36:00Z"), .sign_body = true},
                          request, &artifacts)
                  .ok());
  const std::string body_hash = Sha256Hex(kInvokeBody);
  EXPECT_EQ(request.FindHeader("x-amz-content-sha256")->value, body_hash);
  EXPECT_EQ(artifacts.signed_headers, "accept;content-type;host;x-amz-content-sha256;x-amz-date");
  EXPECT_THAT(artifacts.canonical_request, HasSubstr("\nx-amz-content-sha256:" + body_hash + "\n"));
}

TEST(SigV4Test, UsesAPresentContentSha256AsThePayloadHash) {
  const Credentials credentials = ExampleCredentials();
  HttpRequest request = InvokeModelRequest();
  request.headers.push_back({"X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD"});
  SigningArtifacts artifacts;
  ASSERT_TRUE(SignRequest({.credentials = &credentials, .region = "us-east-1", .service = "bedrock",
                           .time = At("2015-08-30T12:36:00Z")},
                          request, &artifacts)
                  .ok());
  EXPECT_TRUE(artifacts.canonical_request.ends_with("\nUNSIGNED-PAYLOAD"));
}

TEST(SigV4Test, HashesAnEmptyBodyAsTheEmptyStringDigest) {
  const Credentials credentials = ExampleCredentials();
  HttpRequest request;
  request.method = "get";
  request.headers = {{"Host", "example.amazonaws.com"}};
  SigningArtifacts artifacts;
  ASSERT_TRUE(SignRequest({.credentials = &credentials, .region = "us-east-1", .service = "service",
                           .time = At("2015-08-30T12:36:00Z")},
                          request, &artifacts)
                  .ok());
  EXPECT_TRUE(artifacts.canonical_request.starts_with("GET\n/\n\n"));
  EXPECT_TRUE(artifacts.canonical_request.ends_with(std::string("\n") + std::string(kEmptyPayloadSha256)));
}

TEST(SigV4Test, RejectsARequestWithoutHost) {
  const Credentials credentials = ExampleCredentials();
  HttpRequest request = InvokeModelRequest();
  request.RemoveHeaders("host");
  const Status status = SignRequest({.credentials = &credentials, .region = "us-east-1", .service = "bedrock",
                                     .time = At("2015-08-30T12:36:00Z")},
                                    request);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("Host"));
}

TEST(SigV4Test, RejectsMissingCredentialsRegionOrService) {
  HttpRequest request = InvokeModelRequest();
  EXPECT_EQ(SignRequest({.region = "us-east-1", .service = "bedrock"}, request).code(),
            StatusCode::kInvalidArgument);
  Credentials no_secret = ExampleCredentials();
  no_secret.secret_access_key.clear();
  EXPECT_EQ(SignRequest({.credentials = &no_secret, .region = "us-east-1", .service = "bedrock"}, request).code(),
            StatusCode::kInvalidArgument);
  const Credentials credentials = ExampleCredentials();
  EXPECT_EQ(SignRequest({.credentials = &credentials, .region = "", .service = "bedrock"}, request).code(),
            StatusCode::kInvalidArgument);
  // Nothing was signed.
  EXPECT_EQ(request.FindHeader("authorization"), nullptr);
}

TEST(SigV4Test, FormatsAndParsesAmzDates) {
  EXPECT_EQ(FormatAmzDate(At("2015-08-30T12:36:00Z")), "20150830T123600Z");
  EXPECT_EQ(FormatAmzDate(At("2024-02-29T23:59:59Z")), "20240229T235959Z");
  WallTime parsed;
  ASSERT_TRUE(ParseAmzDate("20240229T235959Z", &parsed));
  EXPECT_EQ(parsed, At("2024-02-29T23:59:59Z"));
  EXPECT_FALSE(ParseAmzDate("20230229T000000Z", &parsed));
  EXPECT_FALSE(ParseAmzDate("2015-08-30T12:36:00Z", &parsed));
  EXPECT_FALSE(ParseAmzDate("20150830T126000Z", &parsed));
  EXPECT_FALSE(ParseAmzDate("20150830T123600", &parsed));
}

TEST(SigV4Test, CachedKeysMatchDerivedKeys) {
  SigningKeyCache cache(4);
  const HmacSha256Key key = cache.Get(kSecret, "20150830", "us-east-1", "iam");
  const HmacSha256Key again = cache.Get(kSecret, "20150830", "us-east-1", "iam");
  const HmacSha256Key derived(DigestView(DeriveSigningKey(kSecret, "20150830", "us-east-1", "iam")));
  EXPECT_EQ(key.Mac("message"), derived.Mac("message"));
  EXPECT_EQ(again.Mac("message"), derived.Mac("message"));
  EXPECT_EQ(cache.size(), 1u);
}

TEST(SigV4Test, KeyCacheStaysWithinItsCapacity) {
  SigningKeyCache cache(3);
  for (int i = 0; i < 10; ++i) cache.Get("secret" + std::to_string(i), "20150830", "us-east-1", "bedrock");
  EXPECT_EQ(cache.size(), 3u);
  // The most recent survives and is still right.
  EXPECT_EQ(cache.Get("secret9", "20150830", "us-east-1", "bedrock").Mac("m"),
            HmacSha256Key(DigestView(DeriveSigningKey("secret9", "20150830", "us-east-1", "bedrock"))).Mac("m"));
}

TEST(SigV4Test, KeysForANewDayReplaceOlderDays) {
  SigningKeyCache cache(8);
  cache.Get("a", "20150828", "us-east-1", "bedrock");
  cache.Get("b", "20150829", "us-east-1", "bedrock");
  EXPECT_EQ(cache.size(), 2u);
  cache.Get("a", "20150830", "us-east-1", "bedrock");  // keeps 0829 (the day before), drops 0828
  EXPECT_EQ(cache.size(), 2u);
  cache.Get("a", "20150901", "us-east-1", "bedrock");  // across a month: drops both
  EXPECT_EQ(cache.size(), 1u);
}

TEST(SigV4Test, KeyCacheIsSafeAcrossThreads) {
  SigningKeyCache cache(4);  // smaller than the working set: forces evictions under contention
  constexpr int kThreads = 6;
  constexpr int kIterations = 300;
  const char* dates[] = {"20150829", "20150830", "20150831"};
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Credentials credentials;
      credentials.access_key_id = "AKID" + std::to_string(t);
      credentials.secret_access_key = "secret-" + std::to_string(t);
      for (int i = 0; i < kIterations; ++i) {
        const char* date = dates[(i + t) % 3];
        HttpRequest request = InvokeModelRequest();
        WallTime time;
        ParseAmzDate(std::string(date) + "T120000Z", &time);
        SigningArtifacts artifacts;
        if (!SignRequest({.credentials = &credentials, .region = "us-east-1", .service = "bedrock",
                          .time = time, .key_cache = &cache},
                         request, &artifacts)
                 .ok()) {
          ++failures;
          continue;
        }
        const HmacSha256Key expected(
            DigestView(DeriveSigningKey(credentials.secret_access_key, date, "us-east-1", "bedrock")));
        if (DigestHex(expected.Mac(artifacts.string_to_sign)) != artifacts.signature) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(cache.size(), 4u);
}

TEST(SigV4Test, ParsesRawHttpRequestsWithContinuationLinesAndCrlf) {
  const Result<HttpRequest> parsed = ParseHttpRequestText(
      "POST /a%3Ab?x=1&y HTTP/1.1\r\nHost:example.com\r\nMy-Header: v1\r\n  v2\r\n\tv3\r\nEmpty:\r\n\r\nbody\nline2");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  const HttpRequest& request = parsed.value();
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.path, "/a%3Ab");
  EXPECT_EQ(request.query, "x=1&y");
  ASSERT_EQ(request.headers.size(), 3u);
  EXPECT_EQ(request.headers[1].value, " v1 v2 v3");
  EXPECT_EQ(request.headers[2].value, "");
  EXPECT_EQ(request.body, "body\nline2");
}

TEST(SigV4Test, RejectsMalformedRawRequests) {
  EXPECT_FALSE(ParseHttpRequestText("").ok());
  EXPECT_FALSE(ParseHttpRequestText("GET /\n\n").ok());
  EXPECT_FALSE(ParseHttpRequestText("GET / HTTP/1.1 extra\n\n").ok());
  EXPECT_FALSE(ParseHttpRequestText("GET / FTP/1\n\n").ok());
  EXPECT_FALSE(ParseHttpRequestText("GET / HTTP/1.1\n continuation first\n\n").ok());
  const Result<HttpRequest> no_colon = ParseHttpRequestText("GET / HTTP/1.1\nHost example.com\n\n");
  ASSERT_FALSE(no_colon.ok());
  EXPECT_THAT(no_colon.status().message(), HasSubstr("line 2"));
}

TEST(SigV4Test, ParsesSigningContextsAndNamesBadFields) {
  const Result<SigningContext> context = ParseSigningContextJson(
      R"({"credentials":{"access_key_id":"AKID","secret_access_key":"S","token":"T"},"region":"us-east-1",)"
      R"("service":"bedrock","timestamp":"2015-08-30T12:36:00Z","sign_body":true})");
  ASSERT_TRUE(context.ok()) << context.status().ToString();
  EXPECT_EQ(context.value().credentials.session_token, "T");
  EXPECT_TRUE(context.value().normalize);
  EXPECT_TRUE(context.value().sign_body);
  EXPECT_EQ(FormatAmzDate(context.value().time), "20150830T123600Z");

  EXPECT_THAT(ParseSigningContextJson("{").status().message(), HasSubstr("JSON"));
  EXPECT_THAT(ParseSigningContextJson(R"({"region":"r","service":"s","timestamp":"2015-08-30T12:36:00Z"})")
                  .status()
                  .message(),
              HasSubstr("credentials"));
  EXPECT_THAT(ParseSigningContextJson(R"({"credentials":{"access_key_id":"A","secret_access_key":"S"},)"
                                      R"("region":"r","service":"s","timestamp":"yesterday"})")
                  .status()
                  .message(),
              HasSubstr("timestamp"));
  EXPECT_THAT(ParseSigningContextJson(R"({"credentials":{"access_key_id":"A","secret_access_key":"S"},)"
                                      R"("service":"s","timestamp":"2015-08-30T12:36:00Z"})")
                  .status()
                  .message(),
              HasSubstr("region"));
}

// Golden vectors generated by tests/data/sigv4/generate_vectors.py with
// Debian's botocore.

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

TEST(SigV4GoldenTest, MatchesEveryBotocoreGoldenVector) {
  const std::filesystem::path root = std::filesystem::path(QUARRY_TESTDATA_DIR) / "sigv4";
  int cases = 0;
  for (const auto& entry : std::filesystem::directory_iterator(root)) {
    if (!entry.is_directory()) continue;
    ++cases;
    const std::filesystem::path dir = entry.path();
    SCOPED_TRACE(dir.filename().string());
    const Result<SigningContext> context = ParseSigningContextJson(ReadFile(dir / "context.json"));
    ASSERT_TRUE(context.ok()) << context.status().ToString();
    Result<HttpRequest> request = ParseHttpRequestText(ReadFile(dir / "request.txt"));
    ASSERT_TRUE(request.ok()) << request.status().ToString();
    SigningArtifacts artifacts;
    ASSERT_TRUE(SignRequest({.credentials = &context.value().credentials,
                             .region = context.value().region,
                             .service = context.value().service,
                             .time = context.value().time,
                             .normalize_path = context.value().normalize,
                             .sign_body = context.value().sign_body,
                             .omit_session_token = context.value().omit_session_token},
                            request.value(), &artifacts)
                    .ok());
    EXPECT_EQ(artifacts.canonical_request, ReadFile(dir / "header-canonical-request.txt"));
    EXPECT_EQ(artifacts.string_to_sign, ReadFile(dir / "header-string-to-sign.txt"));
    EXPECT_EQ(artifacts.signature, ReadFile(dir / "header-signature.txt"));
    EXPECT_EQ(artifacts.authorization, ReadFile(dir / "header-authorization.txt"));
  }
  EXPECT_GE(cases, 10);
}

}  // namespace
}  // namespace quarry::aws
