#include "aws/aws_error.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace quarry::aws {
namespace {

using ::testing::HasSubstr;

TEST(SanitizeErrorCodeTest, KeepsTheNameBetweenHashAndColon) {
  EXPECT_EQ(SanitizeErrorCode("ThrottlingException"), "ThrottlingException");
  EXPECT_EQ(SanitizeErrorCode("ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            "ValidationException");
  EXPECT_EQ(SanitizeErrorCode("com.amazon.bedrock#AccessDeniedException"), "AccessDeniedException");
  EXPECT_EQ(SanitizeErrorCode("aws.protocoltests.restjson#FooError:http://internal.amazon.com/"),
            "FooError");
  EXPECT_EQ(SanitizeErrorCode("  FooError \r\n"), "FooError");
  EXPECT_EQ(SanitizeErrorCode("Foo<script>Error"), "FooscriptError");
  EXPECT_EQ(SanitizeErrorCode(std::string(1000, 'A')).size(), 128u);
}

TEST(RestJsonErrorTest, TakesTheCodeFromTheHeaderFirst) {
  const AwsError e = ParseRestJsonError(
      "bedrock-runtime", 400,
      {{"X-Amzn-ErrorType", "ValidationException:http://internal.amazon.com/coral/"},
       {"x-amzn-RequestId", "b1f3a2c4-0000-4000-8000-000000000001"}},
      R"({"__type":"ignored#Other","message":"Malformed input request"})");
  EXPECT_EQ(e.code, "ValidationException");
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.request_id, "b1f3a2c4-0000-4000-8000-000000000001");
  EXPECT_EQ(e.message, "Malformed input request");
  EXPECT_EQ(e.service, "bedrock-runtime");
  EXPECT_EQ(e.retry_class, RetryClass::kNotRetryable);
  EXPECT_EQ(e.ToStatus().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(e.ToString(),
            "ValidationException (HTTP 400, bedrock-runtime, request id "
            "b1f3a2c4-0000-4000-8000-000000000001): Malformed input request");
}

TEST(RestJsonErrorTest, FallsBackToTypeCodeAndCodeInTheBody) {
  EXPECT_EQ(ParseRestJsonError("bedrock", 403, {}, R"({"__type":"com.amazon#AccessDeniedException"})").code,
            "AccessDeniedException");
  EXPECT_EQ(ParseRestJsonError("bedrock", 404, {}, R"({"code":"ResourceNotFoundException"})").code,
            "ResourceNotFoundException");
  const AwsError upper = ParseRestJsonError("bedrock", 403, {}, R"({"Code":"X#UnrecognizedClientException","Message":"bad key"})");
  EXPECT_EQ(upper.code, "UnrecognizedClientException");
  EXPECT_EQ(upper.message, "bad key");
  EXPECT_EQ(upper.ToStatus().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(ParseRestJsonError("bedrock", 400, {}, R"({"errorMessage":"boom"})").message, "boom");
}

TEST(RestJsonErrorTest, KeepsModelledExtraFields) {
  const AwsError e = ParseRestJsonError(
      "bedrock-runtime", 424, {{"x-amzn-ErrorType", "ModelErrorException"}},
      R"({"message":"model failed","originalStatusCode":500,"resourceName":"anthropic.claude"})");
  EXPECT_EQ(e.Field("originalStatusCode"), "500");
  EXPECT_EQ(e.Field("resourceName"), "anthropic.claude");
  EXPECT_EQ(e.Field("absent"), std::nullopt);
  EXPECT_EQ(e.retry_class, RetryClass::kNotRetryable);
}

TEST(RestJsonErrorTest, ToleratesEmptyAndNonJsonBodies) {
  const AwsError empty = ParseRestJsonError("bedrock-runtime", 502, {}, "");
  EXPECT_EQ(empty.code, "HTTP 502");
  EXPECT_EQ(empty.message, "empty response body");
  EXPECT_EQ(empty.retry_class, RetryClass::kTransient);
  EXPECT_EQ(empty.ToString(), "HTTP 502 (bedrock-runtime): empty response body");

  const std::string html = "<html><body>502 Bad Gateway</body>\n</html>" + std::string(5000, 'x');
  const AwsError proxy = ParseRestJsonError("bedrock-runtime", 502, {}, html);
  EXPECT_EQ(proxy.code, "HTTP 502");
  EXPECT_THAT(proxy.message, HasSubstr("\"<html><body>502 Bad Gateway</body> </html>xxx"));
  EXPECT_LT(proxy.message.size(), 700u);

  // With x-amzn-ErrorType the service answered: the body is only previewed.
  const AwsError own = ParseRestJsonError("bedrock", 500, {{"x-amzn-ErrorType", "InternalServerException"}}, "oops");
  EXPECT_EQ(own.message, "response body is not JSON: oops");
  EXPECT_FALSE(own.not_from_service);

  const AwsError array = ParseRestJsonError("bedrock", 500, {{"x-amzn-ErrorType", "InternalServerException"}}, "[1,2]");
  EXPECT_EQ(array.code, "InternalServerException");
  EXPECT_EQ(array.ToStatus().code(), StatusCode::kUnavailable);
}

TEST(RestJsonErrorTest, ReadsAnXmlErrorResponseFromAnythingInFront) {
  // A query-protocol error document (what a VPC endpoint or gateway may send).
  const AwsError query = ParseRestJsonError(
      "bedrock-runtime", 403, {{"Content-Type", "text/xml"}},
      "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"https://example.com/doc/\">\n  <Error>\n"
      "    <Type>Sender</Type>\n    <Code>AccessDenied</Code>\n    <Message>Denied by the VPC endpoint policy &amp; "
      "more</Message>\n  </Error>\n  <RequestId>0d3f-42</RequestId>\n</ErrorResponse>");
  EXPECT_EQ(query.code, "AccessDenied");
  EXPECT_EQ(query.message, "Denied by the VPC endpoint policy & more");
  EXPECT_EQ(query.fault, "Sender");
  EXPECT_EQ(query.request_id, "0d3f-42");
  EXPECT_EQ(query.retry_class, RetryClass::kNotRetryable);
  EXPECT_EQ(query.ToStatus().code(), StatusCode::kPermissionDenied);
  EXPECT_FALSE(query.not_from_service);

  // A bare <Error> (REST-XML, S3 style), with the request id inside it.
  const AwsError bare = ParseRestJsonError(
      "bedrock-agent-runtime", 503, {{"x-amzn-RequestId", "from-header"}},
      "<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message><RequestId>in-body</RequestId></Error>");
  EXPECT_EQ(bare.code, "SlowDown");
  EXPECT_EQ(bare.message, "Reduce your request rate.");
  EXPECT_EQ(bare.request_id, "in-body");
  EXPECT_EQ(bare.retry_class, RetryClass::kThrottling);

  // EC2's shape: <Response><Errors><Error>, RequestID with a capital D.
  const AwsError ec2 = ParseRestJsonError(
      "bedrock", 400, {},
      "<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>not allowed</Message></Error></Errors>"
      "<RequestID>ec2-req</RequestID></Response>");
  EXPECT_EQ(ec2.code, "UnauthorizedOperation");
  EXPECT_EQ(ec2.message, "not allowed");
  EXPECT_EQ(ec2.request_id, "ec2-req");

  // x-amzn-ErrorType still wins for the code.
  EXPECT_EQ(ParseRestJsonError("bedrock", 400, {{"x-amzn-ErrorType", "ValidationException"}},
                               "<Error><Code>Other</Code><Message>m</Message></Error>")
                .code,
            "ValidationException");

  // XML without a usable <Code> is not an error document.
  const AwsError no_code = ParseRestJsonError("bedrock", 500, {}, "<Error><Message>only</Message></Error>");
  EXPECT_EQ(no_code.code, "HTTP 500");
  EXPECT_THAT(no_code.message, HasSubstr("not an AWS error response"));
}

TEST(RestJsonErrorTest, AnHtmlOrTextBodySaysWhatCameBackAndThatBedrockDidNotSendIt) {
  const std::string page =
      "<!DOCTYPE html>\n<html>\n  <head>\n    <title>502 Bad Gateway</title>\n  </head>\n  <body>\n"
      "    <h1>Bad Gateway</h1>\n    <p>The proxy server received an invalid response.\x01</p>\n" +
      std::string(10'000, 'z') + "</body></html>";
  const AwsError html =
      ParseRestJsonError("bedrock-runtime", 502, {{"Content-Type", "text/html; charset=iso-8859-1"}}, page);
  EXPECT_EQ(html.code, "HTTP 502");
  EXPECT_EQ(html.retry_class, RetryClass::kTransient);
  EXPECT_THAT(html.message, HasSubstr("HTTP 502 with Content-Type text/html; charset=iso-8859-1 (an HTML page)"));
  EXPECT_THAT(html.message, HasSubstr("titled \"502 Bad Gateway\""));
  // Whitespace collapsed, control bytes replaced, cut after ~200 characters.
  EXPECT_THAT(html.message, HasSubstr("\"<!DOCTYPE html> <html> <head> <title>502 Bad Gateway</title> </head>"));
  EXPECT_THAT(html.message, HasSubstr("invalid response. </p>"));
  EXPECT_THAT(html.message, HasSubstr("zzz...\""));
  EXPECT_THAT(html.message, HasSubstr("did not come from Amazon Bedrock (bedrock-runtime)"));
  EXPECT_THAT(html.message, HasSubstr("check the endpoint URL and the proxy settings"));
  EXPECT_LT(html.message.size(), 800u);
  EXPECT_TRUE(html.not_from_service);

  // An HTML page is never read as an XML error even if it has <Error> in it.
  const AwsError page_with_error = ParseRestJsonError(
      "bedrock", 403, {}, "<html><body><Error><Code>AccessDenied</Code></Error></body></html>");
  EXPECT_EQ(page_with_error.code, "HTTP 403");
  EXPECT_EQ(page_with_error.ToStatus().code(), StatusCode::kPermissionDenied);

  const AwsError text = ParseRestJsonError("bedrock-agent-runtime", 407, {}, "Proxy Authentication Required\r\n");
  EXPECT_EQ(text.code, "HTTP 407");
  EXPECT_THAT(text.message, HasSubstr("HTTP 407 with no Content-Type and a body that is not an AWS error response: "
                                      "\"Proxy Authentication Required\""));
  EXPECT_THAT(text.message, HasSubstr("HTTPS_PROXY"));

  // Header values echoed in the message are printable and bounded.
  const AwsError odd = ParseRestJsonError("bedrock", 500, {{"Content-Type", "text/\x01" + std::string(500, 'p')}}, "x");
  EXPECT_THAT(odd.message, HasSubstr("Content-Type text/?ppp"));
  EXPECT_LT(odd.message.size(), 700u);
}

TEST(RestJsonErrorTest, BoundsTheMessage) {
  const std::string body = R"({"message":")" + std::string(100'000, 'm') + R"("})";
  const AwsError e = ParseRestJsonError("bedrock", 400, {{"x-amzn-ErrorType", "ValidationException"}}, body);
  EXPECT_LE(e.message.size(), 2048u + 3u);
}

TEST(RestJsonErrorTest, ReadsRetryAfterMillisecondsAndIgnoresBadValues) {
  EXPECT_EQ(ParseRestJsonError("bedrock", 429, {{"x-amz-retry-after", "1500"}}, "").retry_after,
            std::chrono::milliseconds(1500));
  EXPECT_EQ(ParseRestJsonError("bedrock", 429, {{"x-amz-retry-after", "-1"}}, "").retry_after, std::nullopt);
  EXPECT_EQ(ParseRestJsonError("bedrock", 429, {{"x-amz-retry-after", "1.5"}}, "").retry_after, std::nullopt);
  EXPECT_EQ(ParseRestJsonError("bedrock", 429, {{"x-amz-retry-after", "99999999999"}}, "").retry_after,
            std::nullopt);
}

TEST(ClassifyErrorTest, FollowsTheStandardModeLists) {
  EXPECT_EQ(ClassifyError("bedrock-runtime", "ThrottlingException", 429), RetryClass::kThrottling);
  EXPECT_EQ(ClassifyError("bedrock", "SlowDown", 503), RetryClass::kThrottling);
  EXPECT_EQ(ClassifyError("bedrock", "", 429), RetryClass::kThrottling);
  EXPECT_EQ(ClassifyError("bedrock", "InternalServerException", 500), RetryClass::kTransient);
  EXPECT_EQ(ClassifyError("bedrock-agent-runtime", "BadGatewayException", 502), RetryClass::kTransient);
  EXPECT_EQ(ClassifyError("bedrock-runtime", "ServiceUnavailableException", 503), RetryClass::kTransient);
  EXPECT_EQ(ClassifyError("bedrock", "", 504), RetryClass::kTransient);
  EXPECT_EQ(ClassifyError("sts", "RequestTimeout", 400), RetryClass::kTransient);
  EXPECT_EQ(ClassifyError("bedrock", "PriorRequestNotComplete", 400), RetryClass::kTransient);
  for (const auto& [code, status] : std::vector<std::pair<std::string, int>>{
           {"ValidationException", 400}, {"AccessDeniedException", 403},
           {"ResourceNotFoundException", 404}, {"ServiceQuotaExceededException", 400},
           {"ModelTimeoutException", 408}, {"ModelErrorException", 424},
           {"ModelStreamErrorException", 424}, {"DependencyFailedException", 424},
           {"ConflictException", 409}, {"UnrecognizedClientException", 403},
           {"ExpiredTokenException", 403}}) {
    EXPECT_EQ(ClassifyError("bedrock-runtime", code, status), RetryClass::kNotRetryable) << code;
  }
}

TEST(ClassifyErrorTest, DecidesModelNotReadyByService) {
  EXPECT_EQ(ClassifyError("bedrock-runtime", "ModelNotReadyException", 429), RetryClass::kTransient);
  EXPECT_EQ(ClassifyError("bedrock-agent-runtime", "ModelNotReadyException", 424),
            RetryClass::kNotRetryable);
}

TEST(ClassifyErrorTest, IgnoresCaseOfThrottlingCodes) {
  EXPECT_TRUE(IsThrottlingCode("throttlingException"));
  EXPECT_TRUE(IsThrottlingCode("THROTTLINGEXCEPTION"));
  EXPECT_FALSE(IsThrottlingCode("ThrottlingExceptionX"));
  EXPECT_EQ(ClassifyError("bedrock-runtime", "throttlingException", 200), RetryClass::kThrottling);
}

TEST(StreamExceptionTest, RecognisesLowerCamelThrottlingLikeUpperCamel) {
  const AwsError lower = ParseStreamException("bedrock-runtime", "throttlingException",
                                              R"({"message":"Too many tokens, please wait."})");
  const AwsError upper = ParseStreamException("bedrock-runtime", "ThrottlingException",
                                              R"({"message":"Too many tokens, please wait."})");
  EXPECT_EQ(lower.code, "ThrottlingException");
  EXPECT_EQ(lower.retry_class, RetryClass::kThrottling);
  EXPECT_EQ(upper.retry_class, RetryClass::kThrottling);
  EXPECT_TRUE(lower.in_stream);
  EXPECT_EQ(lower.message, "Too many tokens, please wait.");
  EXPECT_EQ(lower.ToStatus().code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(lower.ToString(), HasSubstr("in the response stream"));
}

TEST(StreamExceptionTest, ClassifiesStreamErrorsByCode) {
  const AwsError model = ParseStreamException(
      "bedrock-runtime", "modelStreamErrorException",
      R"({"message":"stream broke","originalStatusCode":400,"originalMessage":"bad"})");
  EXPECT_EQ(model.code, "ModelStreamErrorException");
  EXPECT_EQ(model.retry_class, RetryClass::kNotRetryable);
  EXPECT_EQ(model.Field("originalMessage"), "bad");
  EXPECT_EQ(ParseStreamException("bedrock-agent-runtime", "internalServerException", "{}").retry_class,
            RetryClass::kTransient);
  EXPECT_EQ(ParseStreamException("bedrock-runtime", "serviceUnavailableException", "").retry_class,
            RetryClass::kTransient);
  const AwsError junk = ParseStreamException("bedrock-runtime", "validationException", "not json");
  EXPECT_THAT(junk.message, HasSubstr("not JSON: not json"));
  EXPECT_EQ(junk.retry_class, RetryClass::kNotRetryable);
}

TEST(ConnectionErrorTest, IsTransientAndMarksTimeouts) {
  const AwsError e = MakeConnectionError("bedrock-runtime", "Connection refused", false);
  EXPECT_EQ(e.http_status, 0);
  EXPECT_EQ(e.retry_class, RetryClass::kTransient);
  EXPECT_EQ(e.ToStatus().code(), StatusCode::kUnavailable);
  const AwsError t = MakeConnectionError("bedrock-runtime", "Operation timed out", true);
  EXPECT_TRUE(t.timeout);
  EXPECT_EQ(t.ToStatus().code(), StatusCode::kDeadlineExceeded);
}

constexpr std::string_view kStsError = R"(<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>Sender</Type>
    <Code>InvalidClientTokenId</Code>
    <Message>The security token included in the request is invalid &amp; &lt;expired&gt; &#39;x&#x27; &quot;q&quot; &apos;</Message>
  </Error>
  <RequestId>4c2b8f5e-1234-4a5b-9c8d-000000000002</RequestId>
</ErrorResponse>)";

TEST(StsXmlErrorTest, ExtractsTypeCodeMessageAndRequestId) {
  const AwsError e = ParseStsXmlError(403, {}, kStsError);
  EXPECT_EQ(e.code, "InvalidClientTokenId");
  EXPECT_EQ(e.fault, "Sender");
  EXPECT_EQ(e.message,
            "The security token included in the request is invalid & <expired> 'x' \"q\" '");
  EXPECT_EQ(e.request_id, "4c2b8f5e-1234-4a5b-9c8d-000000000002");
  EXPECT_EQ(e.service, "sts");
  EXPECT_EQ(e.ToStatus().code(), StatusCode::kUnauthenticated);
}

TEST(StsXmlErrorTest, ToleratesJunkAndThrottling) {
  const AwsError junk = ParseStsXmlError(503, {{"x-amzn-RequestId", "abc"}}, "Service Unavailable");
  EXPECT_EQ(junk.code, "HTTP 503");
  EXPECT_EQ(junk.request_id, "abc");
  EXPECT_EQ(junk.retry_class, RetryClass::kTransient);
  EXPECT_THAT(junk.message, HasSubstr("Service Unavailable"));
  const AwsError throttled = ParseStsXmlError(
      400, {}, "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>");
  EXPECT_EQ(throttled.retry_class, RetryClass::kThrottling);
  EXPECT_EQ(ParseStsXmlError(400, {}, "<Error><Code>Unterminated").code, "HTTP 400");
  EXPECT_EQ(ParseStsXmlError(400, {}, "").message, "empty response body");
}

TEST(StsXmlErrorTest, ReadsJsonErrorsAndExplainsForeignBodies) {
  const AwsError json = ParseStsXmlError(400, {{"x-amzn-RequestId", "j-1"}},
                                         R"({"__type":"com.amazon#ExpiredTokenException","message":"expired"})");
  EXPECT_EQ(json.code, "ExpiredTokenException");
  EXPECT_EQ(json.message, "expired");
  EXPECT_EQ(json.service, "sts");
  EXPECT_EQ(json.request_id, "j-1");

  const AwsError html = ParseStsXmlError(403, {{"Content-Type", "text/html"}}, "<html><title>Blocked</title></html>");
  EXPECT_EQ(html.code, "HTTP 403");
  EXPECT_THAT(html.message, HasSubstr("titled \"Blocked\""));
  EXPECT_THAT(html.message, HasSubstr("did not come from AWS STS"));

  // A bare <Error> with a namespace attribute, as REST-XML front ends send it.
  const AwsError bare = ParseStsXmlError(400, {}, "<Error xmlns=\"x\"><Code>Throttling</Code></Error>");
  EXPECT_EQ(bare.code, "Throttling");
  EXPECT_EQ(bare.retry_class, RetryClass::kThrottling);

  // An AWS error document labelled text/html (as moto labels them) is still
  // the service's own answer, for STS and for a JSON service alike.
  const std::string labelled =
      "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ErrorResponse><Errors><Error><Code>SignatureDoesNotMatch</Code>"
      "<Message>signature mismatch</Message></Error></Errors><RequestId>r-9</RequestId></ErrorResponse>";
  for (const AwsError& e : {ParseStsXmlError(403, {{"Content-Type", "text/html; charset=utf-8"}}, labelled),
                            ParseRestJsonError("bedrock", 403, {{"Content-Type", "text/html"}}, labelled)}) {
    EXPECT_EQ(e.code, "SignatureDoesNotMatch") << e.message;
    EXPECT_EQ(e.message, "signature mismatch");
    EXPECT_FALSE(e.not_from_service);
  }
}

TEST(XmlTest, UnescapesEntitiesAndKeepsMalformedOnesLiterally) {
  EXPECT_EQ(internal::XmlUnescape("a &amp; b &lt;c&gt; &#233; &#x20AC; &#x1F600;"),
            "a & b <c> \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
  EXPECT_EQ(internal::XmlUnescape("&bogus; &#; &#xZZ; &#0; &#xD800; & alone &amp"),
            "&bogus; &#; &#xZZ; &#0; &#xD800; & alone &amp");
  EXPECT_EQ(internal::FindXmlElementText("<a><Code attr=\"1\">X</Code></a>", "Code"), "X");
  EXPECT_EQ(internal::FindXmlElementText("<CodeX>no</CodeX><Code>yes</Code>", "Code"), "yes");
  EXPECT_EQ(internal::FindXmlElementText("<Code/>", "Code"), "");
  EXPECT_EQ(internal::FindXmlElementText("<Code><![CDATA[a&amp;b]]></Code>", "Code"), "a&amp;b");
  EXPECT_EQ(internal::FindXmlElementText("<Other>1</Other>", "Code"), std::nullopt);
}

TEST(RenderErrorTest, RendersARestJsonErrorThatParsesBack) {
  AwsError e;
  e.code = "ModelErrorException";
  e.http_status = 424;
  e.request_id = "req-1";
  e.message = "The model returned \"an error\"";
  e.retry_after = std::chrono::milliseconds(250);
  e.fields = {{"originalStatusCode", "500"}, {"resourceName", "anthropic.claude"}};
  const RenderedError r = RenderRestJsonError(e);
  EXPECT_EQ(r.http_status, 424);
  EXPECT_EQ(FindHeader(r.headers, "x-amzn-errortype"), "ModelErrorException");
  EXPECT_EQ(FindHeader(r.headers, "content-type"), "application/json");
  EXPECT_THAT(r.body, HasSubstr(R"("originalStatusCode":500)"));
  const AwsError back = ParseRestJsonError("bedrock-runtime", r.http_status, r.headers, r.body);
  EXPECT_EQ(back.code, e.code);
  EXPECT_EQ(back.message, e.message);
  EXPECT_EQ(back.request_id, "req-1");
  EXPECT_EQ(back.retry_after, std::chrono::milliseconds(250));
  EXPECT_EQ(back.Field("resourceName"), "anthropic.claude");
}

TEST(RenderErrorTest, RendersAnStsErrorThatParsesBack) {
  AwsError e;
  e.code = "ExpiredToken";
  e.http_status = 400;
  e.request_id = "r-2";
  e.message = "The security token <expired> & \"gone\"";
  const std::string xml = RenderStsXmlError(e);
  EXPECT_THAT(xml, HasSubstr("<Type>Sender</Type>"));
  EXPECT_THAT(xml, HasSubstr("&lt;expired&gt; &amp; &quot;gone&quot;"));
  const AwsError back = ParseStsXmlError(400, {}, xml);
  EXPECT_EQ(back.code, "ExpiredToken");
  EXPECT_EQ(back.message, e.message);
  EXPECT_EQ(back.request_id, "r-2");
  EXPECT_EQ(back.fault, "Sender");
}

}  // namespace
}  // namespace quarry::aws

namespace quarry::aws {
namespace {

// Deterministic junk: the parsers must stay total and bounded on any input.
TEST(ErrorParsersTest, SurviveArbitraryBytes) {
  uint64_t state = 0x9E3779B97F4A7C15ull;
  auto next = [&state] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  const std::string_view fragments[] = {"<Error>", "</Error>", "<Code>", "</Code>", "&#x", "&amp",
                                        "{\"message\":", "\"", "#", ":", "<![CDATA[", "]]>", "}"};
  for (int i = 0; i < 2000; ++i) {
    std::string input;
    const size_t pieces = next() % 12;
    for (size_t p = 0; p < pieces; ++p) {
      if (next() % 2 == 0) {
        input += fragments[next() % std::size(fragments)];
      } else {
        input.push_back(static_cast<char>(next() & 0xFF));
      }
    }
    const AwsError json = ParseRestJsonError("bedrock-runtime", 400, {{"x-amzn-ErrorType", input}}, input);
    EXPECT_LE(json.code.size(), 128u);
    const AwsError bare = ParseRestJsonError("bedrock-runtime", 400, {{"Content-Type", input}}, input);
    EXPECT_FALSE(bare.code.empty());
    EXPECT_LE(bare.message.size(), 4096u);
    const AwsError xml = ParseStsXmlError(400, {}, input);
    EXPECT_FALSE(xml.code.empty());
    const AwsError stream = ParseStreamException("bedrock-runtime", input, input);
    EXPECT_FALSE(stream.code.empty());
    (void)internal::XmlUnescape(input);
  }
}

}  // namespace
}  // namespace quarry::aws
