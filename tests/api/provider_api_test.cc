// AI Providers, the model catalogue and AI Services over real HTTP: an
// in-process server on SQLite with the Bedrock emulator (demo world).

#include <algorithm>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include "common/crypto.h"
#include "common/encoding.h"
#include "sim/world.h"
#include "tests/support/api_fixture.h"

namespace quarry {
namespace {

using nlohmann::json;
using testing::ApiFixture;
using testing::ApiReply;
using ::testing::HasSubstr;

constexpr char kHaiku[] = "anthropic.claude-3-haiku-20240307-v1:0";
constexpr char kSonnet37[] = "anthropic.claude-3-7-sonnet-20250219-v1:0";
constexpr char kSonnet37Profile[] = "us.anthropic.claude-3-7-sonnet-20250219-v1:0";
constexpr char kOpus[] = "anthropic.claude-3-opus-20240229-v1:0";

json Keys(std::string_view id, std::string_view secret) {
  return {{"kind", "access_key"}, {"access_key_id", std::string(id)}, {"secret_access_key", std::string(secret)}};
}

json ProviderBody(const std::string& name, json credentials, const std::string& region = "us-east-1") {
  return {{"name", name}, {"region", region}, {"credentials", std::move(credentials)}};
}

struct SseEvent {
  std::string name;
  json data;
};

std::vector<SseEvent> ParseSse(const std::string& body) {
  std::vector<SseEvent> events;
  std::istringstream in(body);
  std::string line;
  SseEvent current;
  while (std::getline(in, line)) {
    if (line.rfind("event: ", 0) == 0) current.name = line.substr(7);
    if (line.rfind("data: ", 0) == 0) current.data = json::parse(line.substr(6), nullptr, false);
    if (line.empty() && !current.name.empty()) {
      events.push_back(current);
      current = SseEvent{};
    }
  }
  return events;
}

const json* FindCheck(const json& report, std::string_view name) {
  for (const json& c : report["checks"]) {
    if (c["name"] == name) return &c;
  }
  return nullptr;
}

class ProviderApiTest : public ::testing::Test {
 protected:
  ApiReply Admin(std::string_view method, const std::string& path, const json& body = nullptr) {
    return fx_.Call(method, path, fx_.admin_token, body);
  }
  std::string Create(const json& body) {
    ApiReply r = Admin("POST", "/api/v1/providers", body);
    EXPECT_EQ(r.status, 201) << r.Describe();
    return r.json.value("id", "");
  }
  // Expects a 4xx with `code` and returns the error object.
  json ExpectError(const ApiReply& r, int status, const std::string& code) {
    EXPECT_EQ(r.status, status) << r.Describe();
    EXPECT_TRUE(r.json.is_object()) << r.Describe();
    if (!r.json.is_object() || !r.json.contains("error")) return json::object();
    EXPECT_EQ(r.json["error"]["code"], code) << r.Describe();
    EXPECT_FALSE(r.json["error"]["message"].get<std::string>().empty());
    return r.json["error"];
  }
  std::string WorkingService(const std::string& provider, const std::string& model = kHaiku) {
    ApiReply r = Admin("POST", "/api/v1/services",
                       {{"name", "svc-" + model}, {"provider_id", provider}, {"model", model}, {"max_tokens", 256}});
    EXPECT_EQ(r.status, 201) << r.Describe();
    return r.json.value("id", "");
  }

  ApiFixture fx_;
};

TEST_F(ProviderApiTest, CreateShowsNoSecretThenTestMakesItWorking) {
  ApiReply created = Admin("POST", "/api/v1/providers",
                           ProviderBody("Bedrock demo", Keys(sim::kDemoAccessKeyId, sim::kDemoSecretAccessKey)));
  ASSERT_EQ(created.status, 201) << created.Describe();
  const std::string id = created.json["id"];
  EXPECT_THAT(id, ::testing::StartsWith("prv_"));
  ASSERT_NE(created.Header("Location"), nullptr);
  EXPECT_EQ(*created.Header("Location"), "/api/v1/providers/" + id);
  EXPECT_EQ(*created.Header("ETag"), "\"1\"");
  EXPECT_EQ(created.json["status"], "untested");
  EXPECT_EQ(created.json["type"], "bedrock");
  EXPECT_EQ(created.json["credentials"]["kind"], "access_key");
  EXPECT_EQ(created.json["credentials"]["access_key_hint"], "AKIA****0001");
  EXPECT_EQ(created.json["credentials_age_days"], 0);
  EXPECT_EQ(created.json["rotation_period_days"], 90);
  EXPECT_FALSE(created.json["rotation_due"].get<bool>());
  EXPECT_THAT(created.body, ::testing::Not(HasSubstr(std::string(sim::kDemoSecretAccessKey))));
  EXPECT_THAT(created.body, ::testing::Not(HasSubstr(std::string(sim::kDemoAccessKeyId))));

  ApiReply tested = Admin("POST", "/api/v1/providers/" + id + "/test");
  ASSERT_EQ(tested.status, 200) << tested.Describe();
  EXPECT_TRUE(tested.json["ok"].get<bool>()) << tested.Describe();
  const json* credentials = FindCheck(tested.json, "credentials");
  ASSERT_NE(credentials, nullptr);
  EXPECT_EQ((*credentials)["status"], "passed");
  EXPECT_EQ((*credentials)["detail"]["identity_arn"], "arn:aws:iam::111122223333:user/quarry-demo");
  EXPECT_TRUE((*credentials)["latency_ms"].is_number());
  const json* catalogue = FindCheck(tested.json, "catalogue");
  ASSERT_NE(catalogue, nullptr);
  EXPECT_EQ((*catalogue)["status"], "passed");
  EXPECT_GE((*catalogue)["detail"]["claude_models"].get<int>(), 4);
  EXPECT_EQ(FindCheck(tested.json, "invoke_model"), nullptr);  // only on request
  EXPECT_EQ(tested.json["provider"]["status"], "working");
  EXPECT_EQ(tested.json["provider"]["identity_arn"], "arn:aws:iam::111122223333:user/quarry-demo");
  EXPECT_TRUE(tested.json["provider"]["last_tested_at"].is_string());

  ApiReply got = fx_.Call("GET", "/api/v1/providers/" + id, fx_.member_token);
  ASSERT_EQ(got.status, 200) << got.Describe();
  EXPECT_EQ(got.json["status"], "working");
  EXPECT_EQ(got.json["last_error"], nullptr);

  ApiReply working = fx_.Call("GET", "/api/v1/providers?status=working", fx_.builder_token);
  ASSERT_EQ(working.status, 200) << working.Describe();
  ASSERT_EQ(working.json["items"].size(), 1u);
  EXPECT_EQ(working.json["next_cursor"], nullptr);
  EXPECT_EQ(fx_.Call("GET", "/api/v1/providers?status=failing", fx_.admin_token).json["items"].size(), 0u);
  ExpectError(Admin("GET", "/api/v1/providers?status=broken"), 400, "invalid_argument");
  ExpectError(Admin("GET", "/api/v1/providers/prv_00000000000000000000"), 404, "not_found");

  // Bedrock calls are counted.
  EXPECT_GE(fx_.context().metrics->Value("quarry_bedrock_calls_total",
                                         {{"operation", "GetCallerIdentity"}, {"outcome", "ok"}}),
            1.0);
}

TEST_F(ProviderApiTest, InvokeCheckUsesTheProfileForProfileOnlyModels) {
  const std::string id = Create(ProviderBody("p", Keys(sim::kDemoAccessKeyId, sim::kDemoSecretAccessKey)));
  ApiReply tested = Admin("POST", "/api/v1/providers/" + id + "/test", {{"invoke_model", kSonnet37}});
  ASSERT_EQ(tested.status, 200) << tested.Describe();
  const json* invoke = FindCheck(tested.json, "invoke_model");
  ASSERT_NE(invoke, nullptr) << tested.Describe();
  EXPECT_EQ((*invoke)["status"], "passed") << tested.Describe();
  EXPECT_EQ((*invoke)["detail"]["invoked"], kSonnet37Profile);
  EXPECT_THAT((*invoke)["detail"]["note"].get<std::string>(), HasSubstr("inference profile"));
  EXPECT_TRUE(tested.json["ok"].get<bool>());

  // A model the account was never granted: the check fails, explained, and
  // the catalogue then marks it unusable.
  ApiReply denied = Admin("POST", "/api/v1/providers/" + id + "/test", {{"invoke_model", kOpus}});
  ASSERT_EQ(denied.status, 200) << denied.Describe();
  EXPECT_FALSE(denied.json["ok"].get<bool>());
  invoke = FindCheck(denied.json, "invoke_model");
  ASSERT_NE(invoke, nullptr);
  EXPECT_EQ((*invoke)["status"], "failed");
  EXPECT_TRUE((*invoke)["troubleshooting"].is_object());
  EXPECT_FALSE((*invoke)["troubleshooting"]["how_to_fix"].empty());
  EXPECT_EQ(denied.json["provider"]["status"], "failing");
  EXPECT_EQ(denied.json["provider"]["last_error"]["check"], "invoke_model");

  ApiReply models = Admin("GET", "/api/v1/providers/" + id + "/models");
  ASSERT_EQ(models.status, 200) << models.Describe();
  bool seen_opus = false;
  for (const json& m : models.json["models"]) {
    if (m["model_id"] == kOpus) {
      seen_opus = true;
      EXPECT_FALSE(m["usable"].get<bool>());
    }
  }
  EXPECT_TRUE(seen_opus);
  ExpectError(Admin("POST", "/api/v1/providers/" + id + "/test", {{"invoke_model", 3}}), 400, "validation_failed");
  ExpectError(Admin("POST", "/api/v1/providers/" + id + "/test", {{"model", kHaiku}}), 400, "validation_failed");
}

TEST_F(ProviderApiTest, WrongSecretFailsWithTheSignatureTroubleshooting) {
  const std::string id =
      Create(ProviderBody("wrong", Keys(sim::kDemoAccessKeyId, "wrongSecretKey000000000000000000000000001")));
  ApiReply tested = Admin("POST", "/api/v1/providers/" + id + "/test", {{"invoke_model", kHaiku}});
  ASSERT_EQ(tested.status, 200) << tested.Describe();
  EXPECT_FALSE(tested.json["ok"].get<bool>());
  const json* credentials = FindCheck(tested.json, "credentials");
  ASSERT_NE(credentials, nullptr);
  EXPECT_EQ((*credentials)["status"], "failed");
  EXPECT_EQ((*credentials)["troubleshooting"]["id"], "credentials-invalid") << tested.Describe();
  EXPECT_THAT((*credentials)["error"]["hint"].get<std::string>(), HasSubstr("secret access key"));
  EXPECT_EQ((*FindCheck(tested.json, "catalogue"))["status"], "skipped");
  EXPECT_EQ((*FindCheck(tested.json, "invoke_model"))["status"], "skipped");

  ApiReply got = Admin("GET", "/api/v1/providers/" + id);
  EXPECT_EQ(got.json["status"], "failing");
  EXPECT_EQ(got.json["last_error"]["check"], "credentials");
  EXPECT_THAT(got.json["last_error"]["code"].get<std::string>(), ::testing::StartsWith("bedrock_"));
  EXPECT_TRUE(got.json["last_error"]["troubleshooting"].is_object());
  EXPECT_TRUE(got.json["last_tested_at"].is_string());
}

TEST_F(ProviderApiTest, RestrictedUserIsExplainedAsAccessDenied) {
  const std::string id = Create(
      ProviderBody("readonly", Keys(sim::kDemoRestrictedAccessKeyId, sim::kDemoRestrictedSecretAccessKey)));
  ApiReply tested = Admin("POST", "/api/v1/providers/" + id + "/test",
                          {{"invoke_model", "anthropic.claude-3-5-sonnet-20240620-v1:0"}});
  ASSERT_EQ(tested.status, 200) << tested.Describe();
  EXPECT_EQ((*FindCheck(tested.json, "credentials"))["status"], "passed");
  EXPECT_EQ((*FindCheck(tested.json, "catalogue"))["status"], "passed");
  const json& invoke = *FindCheck(tested.json, "invoke_model");
  EXPECT_EQ(invoke["status"], "failed");
  EXPECT_EQ(invoke["error"]["code"], "bedrock_access_denied") << tested.Describe();
  EXPECT_EQ(invoke["troubleshooting"]["id"], "access-denied-invoke-model");
  EXPECT_THAT(invoke["error"]["hint"].get<std::string>(), HasSubstr("bedrock:InvokeModel"));
  // The restricted user may invoke Haiku: the same provider then works.
  ApiReply ok = Admin("POST", "/api/v1/providers/" + id + "/test", {{"invoke_model", kHaiku}});
  EXPECT_TRUE(ok.json["ok"].get<bool>()) << ok.Describe();
}

TEST_F(ProviderApiTest, OtherCredentialKinds) {
  // A Bedrock API key: no STS identity, the catalogue proves it; a warning
  // says agents need SigV4.
  const std::string api_key = Create(ProviderBody(
      "api key", json{{"kind", "api_key"}, {"api_key", std::string(sim::kDemoApiKey)}}));
  ApiReply tested = Admin("POST", "/api/v1/providers/" + api_key + "/test", {{"invoke_model", kHaiku}});
  ASSERT_EQ(tested.status, 200) << tested.Describe();
  EXPECT_TRUE(tested.json["ok"].get<bool>()) << tested.Describe();
  EXPECT_EQ((*FindCheck(tested.json, "credentials"))["status"], "skipped");
  EXPECT_EQ(tested.json["provider"]["warnings"][0]["code"], "api_key_cannot_invoke_agents");
  EXPECT_EQ(tested.json["provider"]["credentials"]["api_key_set"], true);

  // AssumeRole with the demo user's keys as the source.
  json role = {{"kind", "assume_role"},
               {"role_arn", std::string(sim::kDemoRoleArn)},
               {"source", "access_key"},
               {"access_key_id", std::string(sim::kDemoAccessKeyId)},
               {"secret_access_key", std::string(sim::kDemoSecretAccessKey)}};
  const std::string assumed = Create(ProviderBody("role", role));
  ApiReply role_test = Admin("POST", "/api/v1/providers/" + assumed + "/test", {{"invoke_model", kHaiku}});
  ASSERT_EQ(role_test.status, 200) << role_test.Describe();
  EXPECT_TRUE(role_test.json["ok"].get<bool>()) << role_test.Describe();
  EXPECT_THAT(role_test.json["identity_arn"].get<std::string>(), HasSubstr("assumed-role/quarry-invoker"));
  EXPECT_EQ(role_test.json["provider"]["credentials"]["role_arn"], std::string(sim::kDemoRoleArn));

  // Temporary keys with a session token that the emulator does not know.
  json session = {{"kind", "session"},
                  {"access_key_id", "ASIAQUARRYUNKNOWN001"},
                  {"secret_access_key", "sessionSecret0000000000000000000000000001"},
                  {"session_token", "sessionTokenValue000001"}};
  const std::string temp = Create(ProviderBody("session", session));
  ApiReply temp_test = Admin("POST", "/api/v1/providers/" + temp + "/test");
  EXPECT_FALSE(temp_test.json["ok"].get<bool>()) << temp_test.Describe();
  EXPECT_EQ(temp_test.json["provider"]["credentials"]["has_session_token"], true);
}

TEST_F(ProviderApiTest, ValidationErrorsNameTheField) {
  auto field_of = [&](const json& body) {
    ApiReply r = Admin("POST", "/api/v1/providers", body);
    json e = ExpectError(r, 400, "validation_failed");
    EXPECT_FALSE(e.value("hint", std::string()).empty()) << r.Describe();
    return e["details"].value("field", std::string());
  };
  const json keys = Keys(sim::kDemoAccessKeyId, sim::kDemoSecretAccessKey);
  json b = ProviderBody("x", keys);
  b.erase("name");
  EXPECT_EQ(field_of(b), "name");
  EXPECT_EQ(field_of(ProviderBody("x", keys, "us-east-9x")), "region");
  EXPECT_EQ(field_of(ProviderBody("x", keys, "us-east-1a")), "region");
  EXPECT_EQ(field_of(ProviderBody("x", json{{"kind", "password"}})), "credentials.kind");
  EXPECT_EQ(field_of(ProviderBody("x", json{{"kind", "access_key"}, {"access_key_id", "AKIAQUARRYDEMO000001"}})),
            "credentials.secret_access_key");
  json with_token = keys;
  with_token["session_token"] = "abc";
  EXPECT_EQ(field_of(ProviderBody("x", with_token)), "credentials.session_token");
  EXPECT_EQ(field_of(ProviderBody("x", json{{"kind", "session"}, {"access_key_id", "ASIAQUARRYDEMO000001"},
                                            {"secret_access_key", "s"}})),
            "credentials.session_token");
  EXPECT_EQ(field_of(ProviderBody("x", json{{"kind", "assume_role"}, {"role_arn", "arn:aws:iam::111122223333:user/x"},
                                            {"source", "default_chain"}})),
            "credentials.role_arn");
  EXPECT_EQ(field_of(ProviderBody("x", json{{"kind", "assume_role"},
                                            {"role_arn", std::string(sim::kDemoRoleArn)}, {"source", "nowhere"}})),
            "credentials.source");
  EXPECT_EQ(field_of(ProviderBody("x", json{{"kind", "api_key"}})), "credentials.api_key");
  EXPECT_EQ(field_of(ProviderBody("x", json{{"kind", "default_chain"}, {"api_key", "x"}})), "credentials.api_key");
  b = ProviderBody("x", keys);
  b["endpoints"] = {{"runtime", "not a url"}};
  EXPECT_EQ(field_of(b), "endpoints.runtime");
  b = ProviderBody("x", keys);
  b["endpoints"] = {{"s3", "https://s3.amazonaws.com"}};
  EXPECT_EQ(field_of(b), "endpoints.s3");
  b = ProviderBody("x", keys);
  b["secret"] = "oops";
  EXPECT_EQ(field_of(b), "secret");
  b = ProviderBody("x", keys);
  b["type"] = "openai";
  EXPECT_EQ(field_of(b), "type");

  ExpectError(fx_.CallRaw("POST", "/api/v1/providers", fx_.admin_token, "{\"name\": "), 400, "invalid_argument");
  ASSERT_FALSE(Create(ProviderBody("Twin", keys)).empty());
  ExpectError(Admin("POST", "/api/v1/providers", ProviderBody("twin", keys)), 409, "already_exists");
}

TEST_F(ProviderApiTest, OnlyAdminsOfAVerifiedDomainMayChangeProvidersAndServices) {
  const std::string id = fx_.AddWorkingProvider();
  ASSERT_FALSE(id.empty());
  const std::string service = WorkingService(id);
  const json body = ProviderBody("other", Keys(sim::kDemoAccessKeyId, sim::kDemoSecretAccessKey));
  const json service_body = {{"name", "s2"}, {"provider_id", id}, {"model", kHaiku}};
  struct Mutation {
    std::string method, path;
    json body;
  };
  const std::vector<Mutation> mutations = {
      {"POST", "/api/v1/providers", body},
      {"PATCH", "/api/v1/providers/" + id, {{"name", "renamed"}}},
      {"POST", "/api/v1/providers/" + id + "/test", json::object()},
      {"DELETE", "/api/v1/providers/" + id, nullptr},
      {"POST", "/api/v1/services", service_body},
      {"PATCH", "/api/v1/services/" + service, {{"temperature", 0.2}}},
      {"DELETE", "/api/v1/services/" + service, nullptr},
  };
  for (const std::string* token : {&fx_.member_token, &fx_.builder_token, &fx_.outsider_token}) {
    for (const Mutation& m : mutations) {
      ApiReply r = fx_.Call(m.method, m.path, *token, m.body);
      EXPECT_EQ(r.status, 403) << r.Describe();
    }
  }
  ExpectError(fx_.Call("GET", "/api/v1/providers", ""), 401, "unauthenticated");
  // Everyone may read.
  for (const std::string* token : {&fx_.member_token, &fx_.builder_token, &fx_.outsider_token}) {
    EXPECT_EQ(fx_.Call("GET", "/api/v1/providers/" + id, *token).status, 200);
    EXPECT_EQ(fx_.Call("GET", "/api/v1/services/" + service, *token).status, 200);
    EXPECT_EQ(fx_.Call("GET", "/api/v1/providers/" + id + "/models", *token).status, 200);
  }
  // The verified admin may do all of it.
  EXPECT_EQ(Admin("PATCH", "/api/v1/services/" + service, {{"temperature", 0.2}}).status, 200);
  EXPECT_EQ(Admin("PATCH", "/api/v1/providers/" + id, {{"name", "renamed"}}).status, 200);
  EXPECT_EQ(Admin("DELETE", "/api/v1/services/" + service).status, 204);
  EXPECT_EQ(Admin("DELETE", "/api/v1/providers/" + id).status, 204);
}

TEST_F(ProviderApiTest, ReplacingKeysRetestsBeforeDroppingTheOldOnes) {
  const std::string id = fx_.AddWorkingProvider();
  ASSERT_FALSE(id.empty());
  // Bad new keys: refused with the test report; nothing changes.
  ApiReply bad = Admin("PATCH", "/api/v1/providers/" + id,
                       {{"credentials", Keys(sim::kDemoRestrictedAccessKeyId, "notTheRightSecret00000000000000000000001")}});
  json e = ExpectError(bad, 409, "credentials_test_failed");
  EXPECT_FALSE(e["details"]["test"]["ok"].get<bool>());
  EXPECT_FALSE(e["hint"].get<std::string>().empty());
  ApiReply still = Admin("GET", "/api/v1/providers/" + id);
  EXPECT_EQ(still.json["status"], "working");
  EXPECT_EQ(still.json["version"], 1);
  EXPECT_EQ(still.json["credentials"]["access_key_hint"], "AKIA****0001");

  // Stale If-Match.
  ExpectError(fx_.Call("PATCH", "/api/v1/providers/" + id, fx_.admin_token, {{"name", "x"}}, {{"If-Match", "\"7\""}}),
              412, "precondition_failed");

  // Good new keys (the restricted user's): tested, stored, old ones gone.
  ApiReply good = fx_.Call(
      "PATCH", "/api/v1/providers/" + id, fx_.admin_token,
      {{"credentials", Keys(sim::kDemoRestrictedAccessKeyId, sim::kDemoRestrictedSecretAccessKey)},
       {"test", {{"invoke_model", kHaiku}}}},
      {{"If-Match", "\"1\""}});
  ASSERT_EQ(good.status, 200) << good.Describe();
  EXPECT_EQ(*good.Header("ETag"), "\"2\"");
  EXPECT_EQ(good.json["version"], 2);
  EXPECT_EQ(good.json["status"], "working");
  EXPECT_EQ(good.json["credentials"]["access_key_hint"], "AKIA****LY01");
  EXPECT_TRUE(good.json["test"]["ok"].get<bool>());
  EXPECT_EQ(good.json["identity_arn"], "arn:aws:iam::111122223333:user/quarry-readonly");
  // The cached client was rebuilt with the new keys.
  ApiReply retest = Admin("POST", "/api/v1/providers/" + id + "/test");
  EXPECT_EQ(retest.json["identity_arn"], "arn:aws:iam::111122223333:user/quarry-readonly") << retest.Describe();

  // A rename keeps the status; a region change makes it untested again.
  EXPECT_EQ(Admin("PATCH", "/api/v1/providers/" + id, {{"name", "renamed"}}).json["status"], "working");
  ApiReply moved = Admin("PATCH", "/api/v1/providers/" + id, {{"region", "us-west-2"}});
  EXPECT_EQ(moved.json["status"], "untested") << moved.Describe();
  ExpectError(Admin("PATCH", "/api/v1/providers/" + id, {{"region", "mars-1"}}), 400, "validation_failed");
}

TEST_F(ProviderApiTest, RotationWarningPastTheOrganizationsPeriod) {
  const std::string id = fx_.AddWorkingProvider();
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(fx_.context()
                  .db->Write([&](store::Tx& tx) -> Status {
                    return tx
                        .Exec("UPDATE providers SET credentials_set_at = '2020-01-01T00:00:00.000Z' WHERE id = $1",
                              {id})
                        .status();
                  })
                  .ok());
  ApiReply got = Admin("GET", "/api/v1/providers/" + id);
  EXPECT_TRUE(got.json["rotation_due"].get<bool>()) << got.Describe();
  EXPECT_GT(got.json["credentials_age_days"].get<int>(), 90);
  ASSERT_FALSE(got.json["warnings"].empty());
  EXPECT_EQ(got.json["warnings"][0]["code"], "rotation_due");
  EXPECT_THAT(got.json["warnings"][0]["message"].get<std::string>(), HasSubstr("rotation period of 90 days"));
}

TEST_F(ProviderApiTest, ModelCatalogueIsCachedAndRefreshable) {
  const std::string id = fx_.AddWorkingProvider();
  ASSERT_FALSE(id.empty());
  ApiReply models = Admin("GET", "/api/v1/providers/" + id + "/models");
  ASSERT_EQ(models.status, 200) << models.Describe();
  EXPECT_TRUE(models.json["cached"].get<bool>());  // Test Connection filled the cache
  EXPECT_EQ(models.json["region"], "us-east-1");
  bool saw_profile_only = false;
  for (const json& m : models.json["models"]) {
    EXPECT_TRUE(m["claude"].get<bool>());
    if (m["model_id"] == kSonnet37) {
      saw_profile_only = true;
      EXPECT_TRUE(m["requires_profile"].get<bool>());
      EXPECT_EQ(m["profile_id"], kSonnet37Profile);
      EXPECT_EQ(m["invocation_target"], kSonnet37Profile);
      EXPECT_TRUE(m["capabilities"]["max_output_tokens"].is_number());
    }
    if (m["model_id"] == kHaiku) {
      EXPECT_EQ(m["capabilities"]["max_output_tokens"], 4096);
    }
  }
  EXPECT_TRUE(saw_profile_only);
  EXPECT_FALSE(models.json["profiles"].empty());

  ApiReply refreshed = Admin("GET", "/api/v1/providers/" + id + "/models?refresh=true&all=true");
  ASSERT_EQ(refreshed.status, 200) << refreshed.Describe();
  EXPECT_FALSE(refreshed.json["cached"].get<bool>());
  bool saw_titan = false;
  for (const json& m : refreshed.json["models"]) saw_titan = saw_titan || m["model_id"] == "amazon.titan-text-express-v1";
  EXPECT_TRUE(saw_titan);
  ExpectError(Admin("GET", "/api/v1/providers/" + id + "/models?refresh=maybe"), 400, "invalid_argument");

  // A failing provider's refresh comes back as the Bedrock error, explained.
  const std::string bad =
      Create(ProviderBody("bad", Keys(sim::kDemoAccessKeyId, "wrongSecretKey000000000000000000000000001")));
  ApiReply failed = Admin("GET", "/api/v1/providers/" + bad + "/models");
  EXPECT_EQ(failed.status, 401) << failed.Describe();
  EXPECT_TRUE(failed.json["error"]["details"]["troubleshooting"].is_object()) << failed.Describe();
}

TEST_F(ProviderApiTest, ServicesBindAWorkingProviderAndAClaudeModel) {
  const std::string id = fx_.AddWorkingProvider();
  ASSERT_FALSE(id.empty());
  ApiReply created = Admin("POST", "/api/v1/services",
                           {{"name", "Triage"},
                            {"type", "llm"},
                            {"provider_id", id},
                            {"model", kSonnet37},
                            {"temperature", 0.2},
                            {"max_tokens", 2048},
                            {"top_p", 0.9},
                            {"stop_sequences", {"END"}},
                            {"system_prompt", "Be brief."}});
  ASSERT_EQ(created.status, 201) << created.Describe();
  const std::string service = created.json["id"];
  EXPECT_THAT(service, ::testing::StartsWith("svc_"));
  EXPECT_EQ(created.json["model"]["requested"], kSonnet37);
  EXPECT_EQ(created.json["model"]["invocation_target"], kSonnet37Profile);
  EXPECT_EQ(created.json["model"]["target_kind"], "system-profile");
  ASSERT_FALSE(created.json["notices"].empty());
  EXPECT_THAT(created.json["notices"][0].get<std::string>(), HasSubstr(kSonnet37Profile));
  EXPECT_EQ(created.json["temperature"], 0.2);
  EXPECT_EQ(created.json["top_p"], 0.9);

  auto field_error = [&](const json& body, const std::string& code) {
    ApiReply r = Admin("POST", "/api/v1/services", body);
    return ExpectError(r, r.status == 409 ? 409 : 400, code)["details"].value("field", std::string());
  };
  const json base = {{"name", "s"}, {"provider_id", id}, {"model", kHaiku}};
  json b = base;
  b["max_tokens"] = 5000;
  EXPECT_EQ(field_error(b, "max_tokens_above_model_limit"), "max_tokens");
  b = base;
  b["temperature"] = 1.5;
  EXPECT_EQ(field_error(b, "validation_failed"), "temperature");
  b = base;
  b["top_p"] = 2;
  EXPECT_EQ(field_error(b, "validation_failed"), "top_p");
  b = base;
  b["stop_sequences"] = {"   "};
  EXPECT_EQ(field_error(b, "validation_failed"), "stop_sequences[0]");
  b = base;
  b["model"] = "anthropic.claude-99-v1:0";
  EXPECT_EQ(field_error(b, "model_not_available"), "model");
  b = base;
  b["model"] = "amazon.titan-text-express-v1";
  EXPECT_EQ(field_error(b, "model_not_supported"), "model");
  b = base;
  b["type"] = "embedding";
  EXPECT_EQ(field_error(b, "validation_failed"), "type");
  b = base;
  b["provider_id"] = "prv_00000000000000000000";
  EXPECT_EQ(field_error(b, "provider_not_found"), "provider_id");
  b = base;
  b.erase("model");
  EXPECT_EQ(field_error(b, "validation_failed"), "model");
  b = base;
  b["name"] = "triage";
  EXPECT_EQ(Admin("POST", "/api/v1/services", b).status, 409);

  // Only working providers.
  const std::string untested =
      Create(ProviderBody("untested", Keys(sim::kDemoAccessKeyId, sim::kDemoSecretAccessKey)));
  b = base;
  b["provider_id"] = untested;
  json e = ExpectError(Admin("POST", "/api/v1/services", b), 409, "provider_not_working");
  EXPECT_THAT(e["hint"].get<std::string>(), HasSubstr("/test"));

  // Update: model change re-checked, max_tokens against the new model.
  ApiReply patched = fx_.Call("PATCH", "/api/v1/services/" + service, fx_.admin_token,
                              {{"model", kHaiku}, {"max_tokens", 1000}}, {{"If-Match", "\"1\""}});
  ASSERT_EQ(patched.status, 200) << patched.Describe();
  EXPECT_EQ(patched.json["model"]["invocation_target"], kHaiku);
  EXPECT_TRUE(patched.json["notices"].empty());
  EXPECT_EQ(patched.json["version"], 2);
  ExpectError(Admin("PATCH", "/api/v1/services/" + service, {{"max_tokens", 8000}}), 400,
              "max_tokens_above_model_limit");
  ExpectError(fx_.Call("PATCH", "/api/v1/services/" + service, fx_.admin_token, {{"top_p", nullptr}},
                       {{"If-Match", "\"1\""}}),
              412, "precondition_failed");
  EXPECT_EQ(Admin("PATCH", "/api/v1/services/" + service, {{"top_p", nullptr}}).json["top_p"], nullptr);

  ApiReply list = fx_.Call("GET", "/api/v1/services?provider_id=" + id, fx_.member_token);
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.json["items"].size(), 1u);

  // A provider in use cannot be deleted.
  json in_use = ExpectError(Admin("DELETE", "/api/v1/providers/" + id), 409, "failed_precondition");
  EXPECT_THAT(in_use["message"].get<std::string>(), HasSubstr("Triage"));
  EXPECT_EQ(Admin("DELETE", "/api/v1/services/" + service).status, 204);
  EXPECT_EQ(Admin("GET", "/api/v1/services/" + service).status, 404);
  EXPECT_EQ(Admin("DELETE", "/api/v1/providers/" + id).status, 204);
  EXPECT_EQ(Admin("GET", "/api/v1/providers/" + id).status, 404);
}

TEST_F(ProviderApiTest, TryItStreamsTheReply) {
  const std::string id = fx_.AddWorkingProvider();
  ASSERT_FALSE(id.empty());
  const std::string service = WorkingService(id);
  ApiReply r = fx_.Call("POST", "/api/v1/services/" + service + "/try", fx_.builder_token, {{"prompt", "ping"}});
  ASSERT_EQ(r.status, 200) << r.Describe();
  ASSERT_NE(r.Header("Content-Type"), nullptr);
  EXPECT_THAT(*r.Header("Content-Type"), HasSubstr("text/event-stream"));
  std::vector<SseEvent> events = ParseSse(r.body);
  ASSERT_GE(events.size(), 2u) << r.body;
  std::string streamed;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    EXPECT_EQ(events[i].name, "delta");
    streamed += events[i].data["text"].get<std::string>();
  }
  const SseEvent& done = events.back();
  ASSERT_EQ(done.name, "done") << r.body;
  EXPECT_EQ(done.data["text"], streamed);
  EXPECT_EQ(done.data["text"], "pong");
  EXPECT_GT(done.data["usage"]["output_tokens"].get<int>(), 0);
  EXPECT_TRUE(done.data["latency_ms"].is_number());
  EXPECT_FALSE(done.data["stop_reason"].get<std::string>().empty());
  EXPECT_GE(fx_.context().metrics->Value("quarry_bedrock_tokens_total", {{"direction", "output"}, {"model", kHaiku}}),
            1.0);
  ApiReply metrics = fx_.Call("GET", "/metrics", "");
  EXPECT_THAT(metrics.body, HasSubstr("quarry_bedrock_calls_total"));
  EXPECT_THAT(metrics.body, HasSubstr("quarry_bedrock_call_duration_seconds"));

  EXPECT_EQ(fx_.Call("POST", "/api/v1/services/" + service + "/try", fx_.member_token, {{"prompt", "ping"}}).status,
            403);
  ExpectError(fx_.Call("POST", "/api/v1/services/" + service + "/try", fx_.admin_token, json::object()), 400,
              "validation_failed");
  ExpectError(fx_.Call("POST", "/api/v1/services/svc_00000000000000000000/try", fx_.admin_token, {{"prompt", "x"}}),
              404, "not_found");
}

// ---- The secrets test ----

// Keeps every log line the server writes while installed.
class CaptureSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::string text() {
    std::lock_guard<std::mutex> lock(mutex_);
    return text_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    text_.append(formatted.data(), formatted.size());
  }
  void flush_() override {}

 private:
  std::string text_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(ProviderSecretsTest, ASecretWrittenThroughTheApiAppearsNowhere) {
  auto sink = std::make_shared<CaptureSink>();
  spdlog::default_logger()->sinks().push_back(sink);
  spdlog::level::level_enum old_level = spdlog::default_logger()->level();
  spdlog::set_level(spdlog::level::trace);

  std::vector<std::string> secrets;
  std::string responses;
  {
    ApiFixture fx;
    auto call = [&](std::string_view method, const std::string& path, const json& body = nullptr,
                    const net::HttpHeaders& headers = {}) {
      ApiReply r = fx.Call(method, path, fx.admin_token, body, headers);
      responses += r.request_line + "\n" + r.body + "\n";
      for (const auto& [k, v] : r.headers) responses += k + ": " + v + "\n";
      return r;
    };
    const std::string unique = HexEncode(SecureRandomBytes(8));
    const std::string wrong_secret = "KnownSecretValue" + unique + "000000000001";
    const std::string session_token = "KnownSessionToken" + unique;
    const std::string rotated_secret = "KnownRotatedSecret" + unique + "0000000001";
    const std::string bad_paste = "KnownBadPaste" + unique;
    secrets = {wrong_secret, session_token, rotated_secret, bad_paste, std::string(sim::kDemoSecretAccessKey),
               std::string(sim::kDemoApiKey)};

    // A working provider with the demo keys, tested with an invoke.
    ApiReply good = call("POST", "/api/v1/providers",
                         ProviderBody("good", Keys(sim::kDemoAccessKeyId, sim::kDemoSecretAccessKey)));
    ASSERT_EQ(good.status, 201);
    const std::string good_id = good.json["id"];
    call("POST", "/api/v1/providers/" + good_id + "/test", {{"invoke_model", kHaiku}});
    // A failing one with a wrong secret and a session token.
    ApiReply bad = call("POST", "/api/v1/providers",
                        ProviderBody("bad", json{{"kind", "session"},
                                                 {"access_key_id", std::string(sim::kDemoAccessKeyId)},
                                                 {"secret_access_key", wrong_secret},
                                                 {"session_token", session_token}}));
    ASSERT_EQ(bad.status, 201);
    call("POST", "/api/v1/providers/" + bad.json["id"].get<std::string>() + "/test", {{"invoke_model", kHaiku}});
    call("GET", "/api/v1/providers/" + bad.json["id"].get<std::string>() + "/models?refresh=true");
    // An API-key provider.
    ApiReply key = call("POST", "/api/v1/providers",
                        ProviderBody("key", json{{"kind", "api_key"}, {"api_key", std::string(sim::kDemoApiKey)}}));
    ASSERT_EQ(key.status, 201);
    call("POST", "/api/v1/providers/" + key.json["id"].get<std::string>() + "/test");
    // A rotation that fails its test, and one refused by validation.
    ApiReply rotate = call("PATCH", "/api/v1/providers/" + good_id,
                           {{"credentials", Keys(sim::kDemoAccessKeyId, rotated_secret)}});
    EXPECT_EQ(rotate.status, 409);
    ApiReply pasted = call("PATCH", "/api/v1/providers/" + good_id,
                           {{"credentials", Keys(sim::kDemoAccessKeyId, bad_paste + " \n")}});
    EXPECT_EQ(pasted.status, 400);
    // A service and a try, then every read.
    ApiReply service = call("POST", "/api/v1/services", {{"name", "s"}, {"provider_id", good_id}, {"model", kHaiku}});
    call("POST", "/api/v1/services/" + service.json.value("id", "") + "/try", {{"prompt", "ping"}});
    call("GET", "/api/v1/providers");
    call("GET", "/api/v1/providers/" + good_id);
    call("GET", "/api/v1/services");
    ApiReply audit = call("GET", "/api/v1/audit?limit=500");
    EXPECT_EQ(audit.status, 200) << audit.Describe();
    EXPECT_THAT(audit.body, HasSubstr("provider.create"));
    call("GET", "/metrics");

    const std::string db_path = fx.context().settings.data_dir + "/quarry.db";
    std::string files = ReadFile(db_path) + ReadFile(db_path + "-wal");
    EXPECT_GT(files.size(), 1000u);
    const std::string logs = sink->text();
    EXPECT_THAT(logs, HasSubstr("bedrock_call"));  // the log was captured
    for (const std::string& secret : secrets) {
      EXPECT_EQ(responses.find(secret), std::string::npos) << "an API response holds a secret";
      EXPECT_EQ(logs.find(secret), std::string::npos) << "the log holds a secret";
      EXPECT_EQ(files.find(secret), std::string::npos) << "the database file holds a secret";
    }
    // The access key id is not secret, but only its hint is shown or stored.
    EXPECT_EQ(responses.find(std::string(sim::kDemoAccessKeyId)), std::string::npos);
    EXPECT_EQ(files.find(std::string(sim::kDemoAccessKeyId)), std::string::npos);
  }
  auto& sinks = spdlog::default_logger()->sinks();
  sinks.erase(std::remove(sinks.begin(), sinks.end(), sink), sinks.end());
  spdlog::set_level(old_level);
}

}  // namespace
}  // namespace quarry
