// Unit tests of the API framework's pure parts: the status table, the error
// envelope, routing, If-Match, JSON bodies, the OpenAPI merge, cursors.

#include <gtest/gtest.h>

#include "api/api.h"
#include "api/internal.h"
#include "api/openapi.h"
#include "bedrock/client.h"
#include "domain/paging.h"

namespace quarry::api {
namespace {

TEST(HttpStatusForTest, TheOneTable) {
  EXPECT_EQ(HttpStatusFor(StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFor(StatusCode::kOutOfRange), 400);
  EXPECT_EQ(HttpStatusFor(StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(HttpStatusFor(StatusCode::kPermissionDenied), 403);
  EXPECT_EQ(HttpStatusFor(StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(StatusCode::kAlreadyExists), 409);
  EXPECT_EQ(HttpStatusFor(StatusCode::kFailedPrecondition), 409);
  EXPECT_EQ(HttpStatusFor(StatusCode::kAborted), 412);
  EXPECT_EQ(HttpStatusFor(StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(HttpStatusFor(StatusCode::kCancelled), 499);
  EXPECT_EQ(HttpStatusFor(StatusCode::kUnimplemented), 501);
  EXPECT_EQ(HttpStatusFor(StatusCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatusFor(StatusCode::kDeadlineExceeded), 504);
  EXPECT_EQ(HttpStatusFor(StatusCode::kInternal), 500);
  EXPECT_EQ(HttpStatusFor(StatusCode::kDataLoss), 500);
  EXPECT_EQ(HttpStatusFor(StatusCode::kUnknown), 500);
}

TEST(ErrorCodeForTest, SnakeCaseExceptAborted) {
  EXPECT_EQ(ErrorCodeFor(StatusCode::kInvalidArgument), "invalid_argument");
  EXPECT_EQ(ErrorCodeFor(StatusCode::kNotFound), "not_found");
  EXPECT_EQ(ErrorCodeFor(StatusCode::kFailedPrecondition), "failed_precondition");
  EXPECT_EQ(ErrorCodeFor(StatusCode::kAborted), "precondition_failed");
  EXPECT_EQ(ErrorCodeFor(StatusCode::kUnauthenticated), "unauthenticated");
}

TEST(ApiErrorTest, FromStatusMakesTheEnvelope) {
  const ApiError error = ApiError::FromStatus(NotFoundError("user usr_x not found"));
  EXPECT_EQ(error.http_status, 404);
  const nlohmann::json json = error.ToJson();
  EXPECT_EQ(json["error"]["code"], "not_found");
  EXPECT_EQ(json["error"]["message"], "user usr_x not found");
  EXPECT_TRUE(json["error"]["hint"].is_string());
  EXPECT_TRUE(json["error"]["details"].is_object());
}

TEST(ApiErrorTest, FromBedrockCarriesTheTroubleshootingEntry) {
  bedrock::BedrockError failure;
  failure.origin = bedrock::ErrorOrigin::kService;
  failure.aws.code = "AccessDeniedException";
  failure.aws.http_status = 403;
  failure.aws.request_id = "req-123";
  failure.aws.message = "not authorized to perform bedrock:InvokeModel";
  failure.troubleshooting.id = "access-denied-invoke-model";
  failure.troubleshooting.title = "Access denied";
  failure.troubleshooting.how_to_fix = {"Grant bedrock:InvokeModel"};
  failure.status = PermissionDeniedError("AccessDeniedException (HTTP 403)");
  const ApiError error = ApiError::FromBedrock(failure);
  EXPECT_EQ(error.http_status, 403);
  EXPECT_EQ(error.code, "bedrock_access_denied");
  EXPECT_NE(error.hint.find("Grant bedrock:InvokeModel"), std::string::npos) << error.hint;
  EXPECT_EQ(error.details["troubleshooting"]["id"], "access-denied-invoke-model");
  EXPECT_EQ(error.details["aws"]["code"], "AccessDeniedException");
  EXPECT_EQ(error.details["aws"]["request_id"], "req-123");
  EXPECT_EQ(error.details["aws"]["http_status"], 403);
}

Handler Returns(int status) {
  return [status](ApiRequest&) -> Result<ApiResponse> { return ApiResponse::Json(nullptr, status); };
}

TEST(RouterTest, MatchesLiteralAndParamSegments) {
  Router router;
  router.Add("GET", "/api/v1/users", Access::kAuthenticated, Returns(1));
  router.Add("GET", "/api/v1/users/{user_id}", Access::kAuthenticated, Returns(2));
  router.Add("GET", "/api/v1/users/me", Access::kAuthenticated, Returns(3));
  router.Add("DELETE", "/api/v1/users/{user_id}", Access::kAdmin, Returns(4));
  router.Add("POST", "/api/v1/apps/{app_id}/records/{record_id}/x", Access::kBuilder, Returns(5));

  Router::Match match = router.Find("GET", "/api/v1/users/usr_1");
  ASSERT_NE(match.spec, nullptr);
  EXPECT_EQ(match.spec->pattern, "/api/v1/users/{user_id}");
  EXPECT_EQ(match.path_params["user_id"], "usr_1");
  ASSERT_NE(match.handler, nullptr);
  EXPECT_EQ(match.stream_handler, nullptr);

  // The literal pattern wins over the parameter, whatever the order added.
  match = router.Find("GET", "/api/v1/users/me");
  ASSERT_NE(match.spec, nullptr);
  EXPECT_EQ(match.spec->pattern, "/api/v1/users/me");

  match = router.Find("DELETE", "/api/v1/users/usr_2");
  ASSERT_NE(match.spec, nullptr);
  EXPECT_EQ(match.spec->access, Access::kAdmin);

  match = router.Find("POST", "/api/v1/apps/app_1/records/TCK-7/x");
  ASSERT_NE(match.spec, nullptr);
  EXPECT_EQ(match.path_params["app_id"], "app_1");
  EXPECT_EQ(match.path_params["record_id"], "TCK-7");
}

TEST(RouterTest, DecodesSegmentsAfterSplitting) {
  Router router;
  router.Add("GET", "/api/v1/things/{arn}", Access::kAuthenticated, Returns(1));
  // An encoded '/' stays inside its segment.
  const Router::Match match = router.Find("GET", "/api/v1/things/agent-alias%2FA%2FB");
  ASSERT_NE(match.spec, nullptr);
  EXPECT_EQ(match.path_params.at("arn"), "agent-alias/A/B");
}

TEST(RouterTest, TellsUnknownPathsFromWrongMethods) {
  Router router;
  router.Add("GET", "/api/v1/users", Access::kAuthenticated, Returns(1));
  Router::Match match = router.Find("PUT", "/api/v1/users");
  EXPECT_EQ(match.spec, nullptr);
  EXPECT_TRUE(match.path_known);  // 405
  match = router.Find("GET", "/api/v1/nothing");
  EXPECT_EQ(match.spec, nullptr);
  EXPECT_FALSE(match.path_known);  // 404
  match = router.Find("GET", "/api/v1/users/");  // an empty segment matches no parameter
  EXPECT_EQ(match.spec, nullptr);
  EXPECT_FALSE(match.path_known);
}

TEST(RouterTest, StreamRoutesAreMarked) {
  Router router;
  router.AddStream("POST", "/api/v1/x/{id}/chat", Access::kAuthenticated,
                   [](ApiRequest&, std::shared_ptr<SseStream>) { return Status::Ok(); });
  const Router::Match match = router.Find("POST", "/api/v1/x/1/chat");
  ASSERT_NE(match.spec, nullptr);
  EXPECT_TRUE(match.spec->streaming);
  EXPECT_NE(match.stream_handler, nullptr);
  EXPECT_EQ(match.handler, nullptr);
  ASSERT_EQ(router.routes().size(), 1u);
  EXPECT_EQ(router.routes()[0].method, "POST");
}

ApiRequest WithHeader(std::string name, std::string value) {
  ApiRequest request;
  request.headers.emplace_back(std::move(name), std::move(value));
  return request;
}

TEST(CheckIfMatchTest, AcceptsTheVersionInEveryForm) {
  EXPECT_TRUE(CheckIfMatch(ApiRequest{}, 3).ok());
  EXPECT_TRUE(CheckIfMatch(WithHeader("If-Match", "\"3\""), 3).ok());
  EXPECT_TRUE(CheckIfMatch(WithHeader("if-match", "3"), 3).ok());
  EXPECT_TRUE(CheckIfMatch(WithHeader("If-Match", "W/\"3\""), 3).ok());
  EXPECT_TRUE(CheckIfMatch(WithHeader("If-Match", "*"), 3).ok());
  const Status stale = CheckIfMatch(WithHeader("If-Match", "\"3\""), 4);
  EXPECT_EQ(stale.code(), StatusCode::kAborted);
  EXPECT_NE(stale.message().find("version 4"), std::string::npos) << stale.message();
  EXPECT_EQ(CheckIfMatch(WithHeader("If-Match", "\"abc\""), 4).code(), StatusCode::kAborted);
}

TEST(ApiRequestTest, JsonBodyReportsTheByteOffset) {
  ApiRequest request;
  request.body = R"({"name": "x",, })";
  Result<nlohmann::json> body = request.JsonBody();
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(body.status().message().find("byte offset 13"), std::string::npos) << body.status().message();

  request.body = "[1, 2]";
  body = request.JsonBody();
  ASSERT_FALSE(body.ok());
  EXPECT_NE(body.status().message().find("must be a JSON object"), std::string::npos);

  request.body = "  ";
  EXPECT_FALSE(request.JsonBody().ok());

  request.body = R"({"a": 1})";
  ASSERT_TRUE(request.JsonBody().ok());
  EXPECT_EQ((*request.JsonBody())["a"], 1);
}

TEST(ApiRequestTest, HeadersAndQuery) {
  ApiRequest request = WithHeader("X-Thing", "v");
  request.query.emplace("limit", "5");
  ASSERT_NE(request.Header("x-thing"), nullptr);
  EXPECT_EQ(*request.Header("x-thing"), "v");
  EXPECT_EQ(request.Header("absent"), nullptr);
  EXPECT_EQ(request.QueryParam("limit"), "5");
  EXPECT_EQ(request.QueryParam("cursor", "none"), "none");
}

TEST(ApiResponseTest, HelpersSetStatusAndHeaders) {
  const ApiResponse created = ApiResponse::Created({{"id", "x"}}, "/api/v1/x/1", 1);
  EXPECT_EQ(created.status, 201);
  ASSERT_EQ(created.headers.size(), 2u);
  EXPECT_EQ(created.headers[0], (std::pair<std::string, std::string>("Location", "/api/v1/x/1")));
  EXPECT_EQ(created.headers[1], (std::pair<std::string, std::string>("ETag", "\"1\"")));
  EXPECT_EQ(ApiResponse::Entity({}, 7).headers[0].second, "\"7\"");
  EXPECT_EQ(ApiResponse::NoContent().status, 204);
  const ApiResponse error = ApiResponse::Error(ApiError::FromStatus(InvalidArgumentError("bad")));
  EXPECT_EQ(error.status, 400);
  EXPECT_EQ(error.body["error"]["code"], "invalid_argument");
}

TEST(OpenApiTest, MergesFragmentsAndRefusesConflicts) {
  const std::string base = R"({"openapi":"3.1.0","paths":{"/healthz":{"get":{}}},"components":{"schemas":{"E":{}}}})";
  const std::string a = R"({"paths":{"/a":{"get":{},"post":{}}},"components":{"schemas":{"A":{"type":"object"}}}})";
  const std::string b = R"({"paths":{"/b/{id}":{"delete":{}}},"tags":[{"name":"b"}]})";
  Result<nlohmann::json> merged = MergeOpenApi({{"base.json", base}, {"a.json", a}, {"b.json", b}, {"c.json", ""}});
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  EXPECT_TRUE((*merged)["paths"]["/a"].contains("post"));
  EXPECT_TRUE((*merged)["components"]["schemas"].contains("A"));
  EXPECT_EQ((*merged)["tags"][0]["name"], "b");

  const std::string clash = R"({"paths":{"/a":{"get":{}}}})";
  Result<nlohmann::json> conflict = MergeOpenApi({{"base.json", base}, {"a.json", a}, {"z.json", clash}});
  ASSERT_FALSE(conflict.ok());
  EXPECT_NE(conflict.status().message().find("GET /a is documented in both a.json and z.json"), std::string::npos)
      << conflict.status().message();

  Result<nlohmann::json> broken = MergeOpenApi({{"base.json", base}, {"x.json", "{nope"}});
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.status().message().find("x.json"), std::string::npos);

  const std::vector<std::string> problems =
      CompareOpenApiWithRoutes(*merged, {RouteSpec{"GET", "/healthz"}, RouteSpec{"GET", "/a"},
                                         RouteSpec{"PUT", "/missing"}});
  EXPECT_EQ(problems, (std::vector<std::string>{"PUT /missing is routed but not documented",
                                                "DELETE /b/{id} is documented but not routed",
                                                "POST /a is documented but not routed"}));
}

TEST(OpenApiTest, TheEmbeddedDocumentMerges) {
  Result<nlohmann::json> document = OpenApiDocument();
  ASSERT_TRUE(document.ok()) << document.status().ToString();
  EXPECT_EQ((*document)["openapi"], "3.1.0");
  EXPECT_TRUE((*document)["paths"].contains("/api/v1/users/{user_id}"));
  EXPECT_TRUE((*document)["components"]["schemas"].contains("Error"));
}

TEST(PagingTest, CursorsRoundTripAndForeignOnesAreRefused) {
  const std::string cursor = domain::EncodeCursor("2026-11-25T10:00:00.000Z", "usr_abc");
  std::string sort_value, id;
  ASSERT_TRUE(domain::DecodeCursor(cursor, &sort_value, &id).ok());
  EXPECT_EQ(sort_value, "2026-11-25T10:00:00.000Z");
  EXPECT_EQ(id, "usr_abc");
  EXPECT_EQ(cursor.find_first_of("+/="), std::string::npos) << "cursors are URL-safe";
  EXPECT_EQ(domain::DecodeCursor("bm9wZQ", &sort_value, &id).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(domain::DecodeCursor("!!", &sort_value, &id).code(), StatusCode::kInvalidArgument);

  EXPECT_EQ(domain::ParsePageRequest("", "").value().limit, 50);
  EXPECT_EQ(domain::ParsePageRequest("500", "").value().limit, 500);
  EXPECT_FALSE(domain::ParsePageRequest("0", "").ok());
  EXPECT_FALSE(domain::ParsePageRequest("501", "").ok());
  EXPECT_FALSE(domain::ParsePageRequest("ten", "").ok());
  EXPECT_FALSE(domain::ParsePageRequest("5", "garbage").ok());
  EXPECT_EQ(domain::ParsePageRequest("5", cursor).value().cursor, cursor);
}

// A Responder that records what the stream does with it.
class RecordingResponder final : public net::Responder {
 public:
  void Send(net::HttpResponse response) override {
    calls.push_back("send " + std::to_string(response.status));
    sent = std::move(response);
  }
  void BeginStream(int status, net::HeaderFields headers) override {
    calls.push_back("begin " + std::to_string(status));
    begun_headers = std::move(headers);
  }
  bool Write(std::string bytes) override {
    if (gone) return false;
    written += bytes;
    return true;
  }
  void End() override { calls.push_back("end"); }
  bool closed() const override { return gone; }

  std::vector<std::string> calls;
  net::HttpResponse sent;
  net::HeaderFields begun_headers;
  std::string written;
  bool gone = false;
};

TEST(SseStreamTest, EventsStartTheResponseAndCloseEndsIt) {
  auto responder = std::make_shared<RecordingResponder>();
  std::shared_ptr<SseStream> stream = internal::MakeSseStream(responder, "req_1");
  EXPECT_FALSE(stream->started());
  EXPECT_TRUE(stream->Send("delta", {{"text", "line one\nline two"}}));
  EXPECT_TRUE(stream->Comment("keep\nalive"));
  EXPECT_TRUE(stream->started());
  stream->Close();
  EXPECT_TRUE(stream->closed());
  EXPECT_FALSE(stream->Send("late", {}));
  EXPECT_EQ(responder->calls, (std::vector<std::string>{"begin 200", "end"}));
  EXPECT_EQ(responder->written,
            "event: delta\ndata: {\"text\":\"line one\\nline two\"}\n\n: keep alive\n\n");
  bool has_type = false, has_id = false;
  for (const auto& [name, value] : responder->begun_headers) {
    has_type = has_type || (name == "Content-Type" && value.starts_with("text/event-stream"));
    has_id = has_id || (name == "X-Request-Id" && value == "req_1");
  }
  EXPECT_TRUE(has_type);
  EXPECT_TRUE(has_id);
}

TEST(SseStreamTest, FailBeforeTheStartIsAnOrdinaryErrorResponse) {
  auto responder = std::make_shared<RecordingResponder>();
  std::shared_ptr<SseStream> stream = internal::MakeSseStream(responder, "req_2");
  stream->Fail(ApiError::FromStatus(NotFoundError("agent agt_1 not found")));
  EXPECT_EQ(responder->calls, (std::vector<std::string>{"send 404"}));
  EXPECT_NE(responder->sent.body.find("\"code\":\"not_found\""), std::string::npos) << responder->sent.body;
  stream.reset();  // the destructor adds nothing after a Fail
  EXPECT_EQ(responder->calls.size(), 1u);
}

TEST(SseStreamTest, FailAfterTheStartIsAnErrorEvent) {
  auto responder = std::make_shared<RecordingResponder>();
  {
    std::shared_ptr<SseStream> stream = internal::MakeSseStream(responder, "req_3");
    ASSERT_TRUE(stream->Send("delta", {{"text", "hi"}}));
    stream->Fail(ApiError::FromStatus(UnavailableError("Bedrock went away")));
  }
  EXPECT_EQ(responder->calls, (std::vector<std::string>{"begin 200", "end"}));
  EXPECT_NE(responder->written.find("event: error\ndata: {\"error\":"), std::string::npos) << responder->written;
}

TEST(SseStreamTest, AGoneClientStopsTheProducer) {
  auto responder = std::make_shared<RecordingResponder>();
  std::shared_ptr<SseStream> stream = internal::MakeSseStream(responder, "req_4");
  ASSERT_TRUE(stream->Send("a", 1));
  responder->gone = true;
  EXPECT_TRUE(stream->closed());
  EXPECT_FALSE(stream->Send("b", 2));
  stream.reset();  // nothing more is sent to a connection that is gone
  EXPECT_EQ(responder->calls, (std::vector<std::string>{"begin 200"}));
}

}  // namespace
}  // namespace quarry::api
