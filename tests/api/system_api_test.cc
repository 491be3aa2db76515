// The framework over real HTTP: system endpoints, the error envelope for
// framework failures (404, 405, 400, 413), request ids, metrics, and the
// OpenAPI document checked against the routes that really exist.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cctype>
#include <cstdlib>
#include <sstream>

#include "api/openapi.h"
#include "tests/support/api_fixture.h"

namespace quarry::testing {
namespace {

using ::testing::HasSubstr;

bool IsNameChar(char c, bool first) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':' ||
         (!first && std::isdigit(static_cast<unsigned char>(c)));
}

// One sample line of the text exposition format: a metric name, optional
// {name="escaped value",...}, a space, a number.
bool IsPrometheusSample(std::string_view line) {
  size_t i = 0;
  if (i >= line.size() || !IsNameChar(line[i], true)) return false;
  while (i < line.size() && IsNameChar(line[i], false)) ++i;
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      if (!IsNameChar(line[i], true) || line[i] == ':') return false;
      while (i < line.size() && IsNameChar(line[i], false) && line[i] != ':') ++i;
      if (i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') return false;
      i += 2;
      while (i < line.size() && line[i] != '"') {
        if (line[i] == '\\') {
          if (i + 1 >= line.size() || std::string_view("\\\"n").find(line[i + 1]) == std::string_view::npos) {
            return false;
          }
          ++i;
        }
        ++i;
      }
      if (i >= line.size()) return false;
      ++i;  // closing quote
      if (i < line.size() && line[i] == ',') ++i;
    }
    if (i >= line.size()) return false;
    ++i;  // closing brace
  }
  if (i >= line.size() || line[i] != ' ') return false;
  const std::string value(line.substr(i + 1));
  if (value == "+Inf" || value == "-Inf" || value == "NaN") return true;
  char* end = nullptr;
  std::strtod(value.c_str(), &end);
  return !value.empty() && end == value.c_str() + value.size();
}

class SystemApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { fixture_ = new ApiFixture(ApiFixtureOptions{.with_emulator = false}); }
  static void TearDownTestSuite() {
    delete fixture_;
    fixture_ = nullptr;
  }
  ApiFixture& f() { return *fixture_; }

  static void ExpectEnvelope(const ApiReply& reply, int status, const std::string& code) {
    EXPECT_EQ(reply.status, status) << reply.Describe();
    ASSERT_TRUE(reply.json.is_object()) << reply.Describe();
    ASSERT_TRUE(reply.json.contains("error")) << reply.Describe();
    const nlohmann::json& error = reply.json["error"];
    EXPECT_EQ(error["code"], code) << reply.Describe();
    EXPECT_TRUE(error["message"].is_string() && !error["message"].get<std::string>().empty()) << reply.Describe();
    EXPECT_TRUE(error["hint"].is_string()) << reply.Describe();
    EXPECT_TRUE(error["details"].is_object()) << reply.Describe();
    EXPECT_NE(reply.Header("X-Request-Id"), nullptr) << reply.Describe();
  }

  static ApiFixture* fixture_;
};
ApiFixture* SystemApiTest::fixture_ = nullptr;

TEST_F(SystemApiTest, HealthzAndReadyz) {
  ApiReply health = f().Call("GET", "/healthz", "");
  EXPECT_EQ(health.status, 200) << health.Describe();
  EXPECT_EQ(health.json["status"], "ok");

  ApiReply ready = f().Call("GET", "/readyz", "");
  EXPECT_EQ(ready.status, 200) << ready.Describe();
  EXPECT_EQ(ready.json["status"], "ready");
  EXPECT_EQ(ready.json["database"], "sqlite");
  EXPECT_GE(ready.json["schema_version"].get<int64_t>(), 100);
}

TEST_F(SystemApiTest, ReadyzNamesAMissingMigration) {
  auto exec = [&](const std::string& sql) {
    const Status status = f().context().db->Write([&](store::Tx& tx) { return tx.Exec(sql).status(); });
    ASSERT_TRUE(status.ok()) << status.ToString();
  };
  exec("DELETE FROM schema_migrations WHERE version = 101");
  const ApiReply reply = f().Call("GET", "/readyz", "");
  exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (101, 'create audit log', "
       "'2026-01-01T00:00:00.000Z')");
  ExpectEnvelope(reply, 503, "not_ready");
  EXPECT_THAT(reply.json["error"]["message"].get<std::string>(), HasSubstr("101 (create audit log)"));
  EXPECT_EQ(f().Call("GET", "/readyz", "").status, 200);
  // Liveness does not depend on readiness.
  EXPECT_EQ(f().Call("GET", "/healthz", "").status, 200);
}

TEST_F(SystemApiTest, UnknownRouteIs404AndWrongMethodIs405) {
  ExpectEnvelope(f().Call("GET", "/api/v1/no-such-thing", f().admin_token), 404, "route_not_found");
  const ApiReply wrong = f().Call("PUT", "/api/v1/users", f().admin_token, nlohmann::json::object());
  ExpectEnvelope(wrong, 405, "method_not_allowed");
  ASSERT_NE(wrong.Header("Allow"), nullptr);
  EXPECT_THAT(*wrong.Header("Allow"), HasSubstr("GET"));
  EXPECT_THAT(*wrong.Header("Allow"), HasSubstr("POST"));
}

TEST_F(SystemApiTest, MalformedJsonIs400WithTheByteOffset) {
  const ApiReply reply = f().CallRaw("POST", "/api/v1/tokens", f().member_token, R"({"name": "x" "oops"})");
  ExpectEnvelope(reply, 400, "invalid_argument");
  EXPECT_THAT(reply.json["error"]["message"].get<std::string>(), HasSubstr("byte offset 18"));
  const ApiReply not_object = f().CallRaw("POST", "/api/v1/tokens", f().member_token, "[1]");
  ExpectEnvelope(not_object, 400, "invalid_argument");
  EXPECT_THAT(not_object.json["error"]["message"].get<std::string>(), HasSubstr("JSON object"));
  const ApiReply wrong_type = f().Call("POST", "/api/v1/tokens", f().member_token, {{"name", 5}});
  ExpectEnvelope(wrong_type, 400, "invalid_argument");
  const ApiReply unknown_member = f().Call("POST", "/api/v1/tokens", f().member_token, {{"nmae", "x"}});
  ExpectEnvelope(unknown_member, 400, "invalid_argument");
  EXPECT_THAT(unknown_member.json["error"]["message"].get<std::string>(), HasSubstr("nmae"));
}

TEST_F(SystemApiTest, BodyTooLargeIs413) {
  const int64_t limit = f().context().settings.max_request_body_bytes;
  std::string body = "{\"name\":\"" + std::string(static_cast<size_t>(limit), 'x') + "\"}";
  const ApiReply reply = f().CallRaw("POST", "/api/v1/tokens", f().member_token, std::move(body));
  ExpectEnvelope(reply, 413, "request_too_large");
}

TEST_F(SystemApiTest, RequestIdsAreCarriedOrMade) {
  ApiReply given = f().Call("GET", "/healthz", "", nullptr, {{"X-Request-Id", "trace-42.a"}});
  ASSERT_NE(given.Header("X-Request-Id"), nullptr);
  EXPECT_EQ(*given.Header("X-Request-Id"), "trace-42.a");
  ApiReply insane = f().Call("GET", "/healthz", "", nullptr, {{"X-Request-Id", "bad id with spaces"}});
  ASSERT_NE(insane.Header("X-Request-Id"), nullptr);
  EXPECT_THAT(*insane.Header("X-Request-Id"), ::testing::StartsWith("req_"));
}

TEST_F(SystemApiTest, MetricsExpositionParses) {
  ASSERT_EQ(f().Call("GET", "/healthz", "").status, 200);
  ASSERT_EQ(f().Call("GET", "/api/v1/nowhere", "").status, 404);
  const ApiReply reply = f().Call("GET", "/metrics", "");
  ASSERT_EQ(reply.status, 200) << reply.Describe();
  ASSERT_NE(reply.Header("Content-Type"), nullptr);
  EXPECT_THAT(*reply.Header("Content-Type"), HasSubstr("text/plain"));

  // Every line is a comment (# HELP / # TYPE) or a sample:
  //   name{label="value",...} number
  std::istringstream lines(reply.body);
  std::string line;
  int samples = 0;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    if (line.starts_with("#")) {
      EXPECT_TRUE(line.starts_with("# HELP quarry_") || line.starts_with("# TYPE quarry_")) << line;
    } else {
      EXPECT_TRUE(IsPrometheusSample(line)) << line;
      ++samples;
    }
  }
  EXPECT_GT(samples, 0);
  // The checker itself rejects what is not a sample.
  EXPECT_FALSE(IsPrometheusSample("m{a=1} 2"));
  EXPECT_FALSE(IsPrometheusSample("m{a=\"1\"} two"));
  EXPECT_FALSE(IsPrometheusSample("9m 1"));
  EXPECT_TRUE(IsPrometheusSample("m{a=\"x\\\"y\",b=\"\"} 1.5e-3"));
  EXPECT_THAT(reply.body, HasSubstr("# TYPE quarry_http_requests_total counter"));
  EXPECT_THAT(reply.body, HasSubstr("quarry_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"}"));
  EXPECT_THAT(reply.body, HasSubstr("quarry_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}"));
  EXPECT_THAT(reply.body, HasSubstr("# TYPE quarry_http_request_duration_seconds histogram"));
  EXPECT_THAT(reply.body,
              HasSubstr("quarry_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",le=\"+Inf\"}"));
}

TEST_F(SystemApiTest, OpenApiDocumentIsServed) {
  const ApiReply reply = f().Call("GET", "/api/v1/openapi.json", "");
  ASSERT_EQ(reply.status, 200) << reply.Describe();
  EXPECT_EQ(reply.json["openapi"], "3.1.0");
  EXPECT_TRUE(reply.json["paths"].contains("/api/v1/tokens"));
}

// The document in the repository and the routes the server really has must
// agree both ways: every route documented with its method, every documented
// operation routed. A missing area fragment shows up here as a list.
TEST_F(SystemApiTest, OpenApiDocumentsEveryRouteAndNothingElse) {
  Result<nlohmann::json> document = api::OpenApiDocument();
  ASSERT_TRUE(document.ok()) << document.status().ToString();
  api::Router router;
  api::RegisterSystemRoutes(router, f().context());
  api::RegisterAccountRoutes(router, f().context());
  api::RegisterProviderRoutes(router, f().context());
  api::RegisterAgentRoutes(router, f().context());
  api::RegisterAppRoutes(router, f().context());
  api::RegisterAutomationRoutes(router, f().context());
  const std::vector<std::string> problems = api::CompareOpenApiWithRoutes(*document, router.routes());
  std::string listing;
  for (const std::string& problem : problems) listing += "  " + problem + "\n";
  EXPECT_TRUE(problems.empty()) << "the OpenAPI document (src/api/openapi/*.json) and the router disagree:\n"
                                << listing;
}

}  // namespace
}  // namespace quarry::testing
