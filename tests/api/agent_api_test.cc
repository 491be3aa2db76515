// App Intelligence — Bedrock Agents over real HTTP: connecting an agent to an
// app by its alias ARN (and every way that is refused), and chatting with it,
// against the Bedrock emulator's demo agent.

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sim/sim_server.h"
#include "sim/world.h"
#include "tests/support/api_fixture.h"
#include "tests/support/postgres_cluster.h"

namespace quarry {
namespace {

using nlohmann::json;
using testing::ApiFixture;
using testing::ApiReply;
using ::testing::HasSubstr;

const std::string kAlias = "arn:aws:bedrock:us-east-1:111122223333:agent-alias/HELPDESK01/PRODALIAS1";
const std::string kBaseArn = "arn:aws:bedrock:us-east-1:111122223333:agent/HELPDESK01";
const std::string kNoVersion = "arn:aws:bedrock:us-east-1:111122223333:agent-alias/HELPDESK01/NOVERSION1";

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

const SseEvent* Find(const std::vector<SseEvent>& events, std::string_view name) {
  for (const SseEvent& e : events) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

json Keys(std::string_view id, std::string_view secret) {
  return {{"kind", "access_key"}, {"access_key_id", std::string(id)}, {"secret_access_key", std::string(secret)}};
}

class AgentApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    provider_ = fx_.AddWorkingProvider();
    ASSERT_FALSE(provider_.empty());
    ApiReply app = fx_.Call("POST", "/api/v1/apps", fx_.builder_token,
                            {{"name", "IT Helpdesk"}, {"namespace", "it_helpdesk"}, {"handle", "TCK"}});
    ASSERT_EQ(app.status, 201) << app.Describe();
    app_ = app.json["id"];
  }

  ApiReply Connect(const json& body, const std::string* token = nullptr) {
    return fx_.Call("POST", "/api/v1/apps/" + app_ + "/agents", token ? *token : fx_.builder_token, body);
  }
  json ExpectError(const ApiReply& r, int status, const std::string& code) {
    EXPECT_EQ(r.status, status) << r.Describe();
    if (!r.json.is_object() || !r.json.contains("error")) {
      ADD_FAILURE() << r.Describe();
      return json::object();
    }
    EXPECT_EQ(r.json["error"]["code"], code) << r.Describe();
    return r.json["error"];
  }
  std::string ConnectDemo() {
    ApiReply r = Connect({{"provider_id", provider_}, {"agent_alias_arn", kAlias}});
    EXPECT_EQ(r.status, 201) << r.Describe();
    return r.json.value("id", "");
  }
  ApiReply Say(const std::string& conversation, const json& body, const std::string& query = "",
               const std::string* token = nullptr) {
    return fx_.Call("POST", "/api/v1/conversations/" + conversation + "/messages" + query,
                    token ? *token : fx_.builder_token, body);
  }
  std::string StartChat(const std::string& agent, const std::string* token = nullptr) {
    ApiReply r = fx_.Call("POST", "/api/v1/agents/" + agent + "/conversations", token ? *token : fx_.builder_token,
                          {{"title", "test"}});
    EXPECT_EQ(r.status, 201) << r.Describe();
    return r.json.value("id", "");
  }

  ApiFixture fx_;
  std::string provider_;
  std::string app_;
};

TEST_F(AgentApiTest, ConnectsTheDemoAgentByItsAliasArn) {
  ApiReply r = Connect({{"provider_id", provider_},
                        {"agent_alias_arn", kAlias},
                        {"name", "IT helpdesk"},
                        {"description", "Triage for the helpdesk app"}});
  ASSERT_EQ(r.status, 201) << r.Describe();
  const std::string id = r.json["id"];
  EXPECT_THAT(id, ::testing::StartsWith("agt_"));
  EXPECT_EQ(*r.Header("Location"), "/api/v1/agents/" + id);
  EXPECT_EQ(r.json["app_id"], app_);
  EXPECT_EQ(r.json["agent_id"], "HELPDESK01");
  EXPECT_EQ(r.json["alias_id"], "PRODALIAS1");
  EXPECT_EQ(r.json["region"], "us-east-1");
  EXPECT_EQ(r.json["verification"]["status"], "verified");
  EXPECT_EQ(r.json["verification"]["alias_name"], "production");
  EXPECT_EQ(r.json["verification"]["agent_version"], "1");
  EXPECT_TRUE(r.json["warnings"].empty());

  // By namespace too, and the default name is the alias name.
  ApiReply list = fx_.Call("GET", "/api/v1/apps/it_helpdesk/agents", fx_.member_token);
  ASSERT_EQ(list.status, 200) << list.Describe();
  ASSERT_EQ(list.json["items"].size(), 1u);
  EXPECT_EQ(list.json["items"][0]["name"], "IT helpdesk");
  ExpectError(fx_.Call("GET", "/api/v1/apps/app_00000000000000000000/agents", fx_.member_token), 404, "not_found");

  // The same alias twice in one app: refused.
  ExpectError(Connect({{"provider_id", provider_}, {"agent_alias_arn", kAlias}}), 409, "already_exists");

  ApiReply got = fx_.Call("GET", "/api/v1/agents/" + id, fx_.member_token);
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(*got.Header("ETag"), "\"1\"");
  ApiReply renamed = fx_.Call("PATCH", "/api/v1/agents/" + id, fx_.builder_token, {{"name", "Helpdesk"}},
                              {{"If-Match", "\"1\""}});
  ASSERT_EQ(renamed.status, 200) << renamed.Describe();
  EXPECT_EQ(renamed.json["version"], 2);
  ExpectError(fx_.Call("PATCH", "/api/v1/agents/" + id, fx_.builder_token, {{"name", "x"}}, {{"If-Match", "\"1\""}}),
              412, "precondition_failed");
  ApiReply verified = fx_.Call("POST", "/api/v1/agents/" + id + "/verify", fx_.builder_token);
  EXPECT_EQ(verified.status, 200) << verified.Describe();
  EXPECT_EQ(verified.json["verification"]["status"], "verified");
}

TEST_F(AgentApiTest, TheBaseAgentArnIsRefusedWithTheSeedsGuidance) {
  json e = ExpectError(Connect({{"provider_id", provider_}, {"agent_alias_arn", kBaseArn}}), 400, "base_agent_arn");
  EXPECT_THAT(e["message"].get<std::string>(), HasSubstr("agent-alias"));
  EXPECT_THAT(e["hint"].get<std::string>(), HasSubstr("not the base agent ARN"));
  EXPECT_THAT(e["hint"].get<std::string>(), HasSubstr("agent-alias/{agent-id}/{alias-id}"));
  EXPECT_EQ(e["details"]["field"], "agent_alias_arn");
  EXPECT_EQ(e["details"]["troubleshooting"]["id"], "invalid-agent-alias-arn");
}

TEST_F(AgentApiTest, MalformedUnknownMismatchedAndVersionlessAliasesAreRefused) {
  ExpectError(Connect({{"provider_id", provider_}, {"agent_alias_arn", "HELPDESK01/PRODALIAS1"}}), 400,
              "invalid_agent_alias_arn");
  ExpectError(Connect({{"provider_id", provider_}, {"agent_alias_arn", " " + kAlias}}), 400,
              "invalid_agent_alias_arn");
  json mismatch = ExpectError(
      Connect({{"provider_id", provider_},
               {"agent_alias_arn", "arn:aws:bedrock:us-west-2:111122223333:agent-alias/HELPDESK01/PRODALIAS1"}}),
      400, "agent_region_mismatch");
  EXPECT_THAT(mismatch["message"].get<std::string>(), HasSubstr("us-west-2"));
  EXPECT_THAT(mismatch["hint"].get<std::string>(), HasSubstr("region"));
  EXPECT_EQ(mismatch["details"]["troubleshooting"]["id"], "region-mismatch");

  json missing = ExpectError(
      Connect({{"provider_id", provider_},
               {"agent_alias_arn", "arn:aws:bedrock:us-east-1:111122223333:agent-alias/HELPDESK01/NOSUCHALIA"}}),
      400, "agent_alias_not_found");
  EXPECT_TRUE(missing["details"]["troubleshooting"].is_object());

  json versionless =
      ExpectError(Connect({{"provider_id", provider_}, {"agent_alias_arn", kNoVersion}}), 409, "agent_alias_no_version");
  EXPECT_THAT(versionless["message"].get<std::string>(), HasSubstr("no associated version"));
  EXPECT_THAT(versionless["hint"].get<std::string>(), HasSubstr("Create a new version and associate it"));
  EXPECT_EQ(versionless["details"]["troubleshooting"]["id"], "agent-alias-no-version");

  ExpectError(Connect({{"agent_alias_arn", kAlias}}), 400, "validation_failed");
  ExpectError(Connect({{"provider_id", provider_}}), 400, "invalid_agent_alias_arn");
  ExpectError(Connect({{"provider_id", "prv_00000000000000000000"}, {"agent_alias_arn", kAlias}}), 400,
              "provider_not_found");
  ExpectError(Connect({{"provider_id", provider_}, {"agent_alias_arn", kAlias}, {"colour", "red"}}), 400,
              "validation_failed");

  // Only working providers.
  ApiReply untested = fx_.Call("POST", "/api/v1/providers", fx_.admin_token,
                               {{"name", "untested"},
                                {"region", "us-east-1"},
                                {"credentials", Keys(sim::kDemoAccessKeyId, sim::kDemoSecretAccessKey)}});
  ASSERT_EQ(untested.status, 201);
  ExpectError(Connect({{"provider_id", untested.json["id"]}, {"agent_alias_arn", kAlias}}), 409,
              "provider_not_working");
  // A Bedrock API key cannot invoke agents.
  ApiReply key = fx_.Call("POST", "/api/v1/providers", fx_.admin_token,
                          {{"name", "key"},
                           {"region", "us-east-1"},
                           {"credentials", {{"kind", "api_key"}, {"api_key", std::string(sim::kDemoApiKey)}}}});
  ASSERT_EQ(key.status, 201);
  const std::string key_id = key.json["id"];
  ASSERT_EQ(fx_.Call("POST", "/api/v1/providers/" + key_id + "/test", fx_.admin_token).json["ok"], true);
  ExpectError(Connect({{"provider_id", key_id}, {"agent_alias_arn", kAlias}}), 409, "provider_cannot_invoke_agents");
}

TEST_F(AgentApiTest, MembersCannotConnectOrChangeAgents) {
  const std::string member = fx_.member_token;
  EXPECT_EQ(Connect({{"provider_id", provider_}, {"agent_alias_arn", kAlias}}, &member).status, 403);
  const std::string id = ConnectDemo();
  EXPECT_EQ(fx_.Call("PATCH", "/api/v1/agents/" + id, member, {{"name", "x"}}).status, 403);
  EXPECT_EQ(fx_.Call("DELETE", "/api/v1/agents/" + id, member).status, 403);
  EXPECT_EQ(fx_.Call("POST", "/api/v1/agents/" + id + "/verify", member).status, 403);
  // Admins may (whatever their domain): agent connections are builder work.
  EXPECT_EQ(fx_.Call("PATCH", "/api/v1/agents/" + id, fx_.outsider_token, {{"description", "x"}}).status, 200);
  // Members may chat.
  EXPECT_FALSE(StartChat(id, &member).empty());
}

TEST_F(AgentApiTest, ChatStreamsKeepsTheSessionAndTheHistory) {
  const std::string agent = ConnectDemo();
  const std::string chat = StartChat(agent);
  ApiReply conversation = fx_.Call("GET", "/api/v1/conversations/" + chat, fx_.builder_token);
  ASSERT_EQ(conversation.status, 200);
  const std::string session = conversation.json["session_id"];
  EXPECT_EQ(conversation.json["status"], "active");

  ApiReply first = Say(chat, {{"text", "How do I connect to the VPN?"}});
  ASSERT_EQ(first.status, 200) << first.Describe();
  std::vector<SseEvent> events = ParseSse(first.body);
  const SseEvent* chunk = Find(events, "chunk");
  ASSERT_NE(chunk, nullptr) << first.body;
  EXPECT_FALSE(chunk->data["text"].get<std::string>().empty());
  ASSERT_EQ(events.back().name, "done") << first.body;
  const json& done = events.back().data;
  EXPECT_THAT(done["text"].get<std::string>(), HasSubstr("VPN"));
  EXPECT_FALSE(done["citations"].empty()) << first.body;
  EXPECT_TRUE(done["latency_ms"].is_number());
  EXPECT_FALSE(done["bedrock_request_id"].get<std::string>().empty());
  EXPECT_EQ(done["session_id"], session);
  EXPECT_EQ(Find(events, "trace"), nullptr);  // only when asked for

  ApiReply second = Say(chat, {{"text", "What did I ask before?"}}, "?trace=true");
  ASSERT_EQ(second.status, 200) << second.Describe();
  events = ParseSse(second.body);
  EXPECT_NE(Find(events, "trace"), nullptr) << second.body;
  EXPECT_THAT(events.back().data["text"].get<std::string>(), HasSubstr("VPN")) << second.body;
  EXPECT_GT(events.back().data["trace_count"].get<int>(), 0);

  ApiReply history = fx_.Call("GET", "/api/v1/conversations/" + chat + "/messages", fx_.builder_token);
  ASSERT_EQ(history.status, 200) << history.Describe();
  ASSERT_EQ(history.json["items"].size(), 4u);
  EXPECT_EQ(history.json["items"][0]["role"], "user");
  EXPECT_EQ(history.json["items"][0]["text"], "How do I connect to the VPN?");
  EXPECT_EQ(history.json["items"][1]["role"], "agent");
  EXPECT_TRUE(history.json["items"][1]["latency_ms"].is_number());
  ApiReply page = fx_.Call("GET", "/api/v1/conversations/" + chat + "/messages?limit=3", fx_.builder_token);
  ASSERT_TRUE(page.json["next_cursor"].is_string());
  ApiReply rest = fx_.Call("GET", "/api/v1/conversations/" + chat + "/messages?limit=3&cursor=" +
                                      page.json["next_cursor"].get<std::string>(),
                           fx_.builder_token);
  ASSERT_EQ(rest.json["items"].size(), 1u);
  EXPECT_EQ(rest.json["items"][0]["seq"], 4);

  ApiReply listed = fx_.Call("GET", "/api/v1/agents/" + agent + "/conversations", fx_.builder_token);
  ASSERT_EQ(listed.json["items"].size(), 1u);
  EXPECT_EQ(listed.json["items"][0]["message_count"], 4);
  // Other people's chats are not visible (admins may read them).
  EXPECT_EQ(fx_.Call("GET", "/api/v1/conversations/" + chat, fx_.member_token).status, 404);
  EXPECT_EQ(fx_.Call("GET", "/api/v1/agents/" + agent + "/conversations", fx_.member_token).json["items"].size(), 0u);
  EXPECT_EQ(fx_.Call("GET", "/api/v1/conversations/" + chat, fx_.admin_token).status, 200);
  const std::string member = fx_.member_token;
  EXPECT_EQ(Say(chat, {{"text", "hi"}}, "", &member).status, 404);
  EXPECT_EQ(fx_.Call("GET", "/api/v1/agents/" + agent + "/conversations?all=true", fx_.member_token).status, 403);

  EXPECT_GE(fx_.context().metrics->Value("quarry_bedrock_calls_total", {{"operation", "InvokeAgent"}, {"outcome", "ok"}}),
            2.0);

  // Ending the conversation ends the Bedrock session; no more turns.
  ApiReply ended = fx_.Call("POST", "/api/v1/conversations/" + chat + "/end", fx_.builder_token);
  ASSERT_EQ(ended.status, 200) << ended.Describe();
  EXPECT_EQ(ended.json["status"], "ended");
  EXPECT_TRUE(ended.json["bedrock_session_ended"].get<bool>()) << ended.Describe();
  ExpectError(Say(chat, {{"text", "still there?"}}), 409, "conversation_ended");

  ExpectError(Say(StartChat(agent), json::object()), 400, "validation_failed");
  ExpectError(Say(StartChat(agent), {{"text", std::string(25'001, 'a')}}), 400, "validation_failed");
  ExpectError(Say(StartChat(agent), {{"text", "x"}}, "?trace=maybe"), 400, "invalid_argument");
}

TEST_F(AgentApiTest, ReturnControlRoundTrip) {
  const std::string chat = StartChat(ConnectDemo());
  ApiReply asked = Say(chat, {{"text", "My laptop screen is broken, please open a ticket"}});
  ASSERT_EQ(asked.status, 200) << asked.Describe();
  std::vector<SseEvent> events = ParseSse(asked.body);
  const SseEvent* rc = Find(events, "return_control");
  ASSERT_NE(rc, nullptr) << asked.body;
  const std::string invocation = rc->data["invocation_id"];
  ASSERT_FALSE(rc->data["invocations"].empty());
  EXPECT_EQ(rc->data["invocations"][0]["function"], "create_ticket");

  ApiReply answered = Say(chat, {{"return_control",
                                  {{"invocation_id", invocation},
                                   {"results",
                                    {{{"action_group", "ticketing"},
                                      {"function", "create_ticket"},
                                      {"response_body", "{\"ticket\": \"TCK-42\"}"}}}}}}});
  ASSERT_EQ(answered.status, 200) << answered.Describe();
  events = ParseSse(answered.body);
  ASSERT_EQ(events.back().name, "done") << answered.body;
  EXPECT_THAT(events.back().data["text"].get<std::string>(), HasSubstr("TCK-42"));
}

TEST_F(AgentApiTest, ReturnControlOfAnApiOperationRoundTrip) {
  const std::string chat = StartChat(ConnectDemo());
  ApiReply asked = Say(chat, {{"text", "Please file a repair request for asset LAP-0042, the hinge broke"}});
  ASSERT_EQ(asked.status, 200) << asked.Describe();
  std::vector<SseEvent> events = ParseSse(asked.body);
  const SseEvent* rc = Find(events, "return_control");
  ASSERT_NE(rc, nullptr) << asked.body;
  ASSERT_FALSE(rc->data["invocations"].empty()) << asked.body;
  const json& invocation = rc->data["invocations"][0];
  EXPECT_EQ(invocation["api_path"], "/assets/{assetId}/repairs") << asked.body;
  EXPECT_EQ(invocation["http_method"], "POST") << asked.body;

  // A result that names neither a function nor an operation is refused.
  ExpectError(Say(chat, {{"return_control",
                          {{"invocation_id", rc->data["invocation_id"]},
                           {"results", {{{"action_group", "assets"}, {"response_body", "{}"}}}}}}}),
              400, "validation_failed");
  ApiReply answered = Say(chat, {{"return_control",
                                  {{"invocation_id", rc->data["invocation_id"]},
                                   {"results",
                                    {{{"action_group", "assets"},
                                      {"api_path", invocation["api_path"]},
                                      {"http_method", invocation["http_method"]},
                                      {"http_status_code", 201},
                                      {"response_body", "{\"repair\": \"R-77\"}"}}}}}}});
  ASSERT_EQ(answered.status, 200) << answered.Describe();
  events = ParseSse(answered.body);
  ASSERT_EQ(events.back().name, "done") << answered.body;
  EXPECT_THAT(events.back().data["text"].get<std::string>(), HasSubstr("R-77"));
}

TEST_F(AgentApiTest, RestrictedUserChatIsExplainedAsAccessDenied) {
  ApiReply created = fx_.Call(
      "POST", "/api/v1/providers", fx_.admin_token,
      {{"name", "readonly"},
       {"region", "us-east-1"},
       {"credentials", Keys(sim::kDemoRestrictedAccessKeyId, sim::kDemoRestrictedSecretAccessKey)}});
  ASSERT_EQ(created.status, 201);
  const std::string readonly = created.json["id"];
  ASSERT_EQ(fx_.Call("POST", "/api/v1/providers/" + readonly + "/test", fx_.admin_token).json["ok"], true);
  ApiReply agent = Connect({{"provider_id", readonly}, {"agent_alias_arn", kAlias}, {"name", "restricted"}});
  ASSERT_EQ(agent.status, 201) << agent.Describe();
  const std::string chat = StartChat(agent.json["id"]);
  ApiReply denied = Say(chat, {{"text", "hello"}});
  json e = ExpectError(denied, 403, "bedrock_access_denied");
  EXPECT_EQ(e["details"]["troubleshooting"]["id"], "access-denied-invoke-agent");
  EXPECT_THAT(e["hint"].get<std::string>(), HasSubstr("bedrock:InvokeAgent"));
  // The failed turn is in the history, and the conversation is free again.
  ApiReply history = fx_.Call("GET", "/api/v1/conversations/" + chat + "/messages", fx_.builder_token);
  ASSERT_EQ(history.json["items"].size(), 2u);
  EXPECT_EQ(history.json["items"][1]["error"]["code"], "bedrock_access_denied");
  EXPECT_EQ(fx_.Call("GET", "/api/v1/conversations/" + chat, fx_.builder_token).json["busy"], false);
}

// An identity that may invoke agents but not read them: the connection is
// saved with a warning naming the missing permission. The provider points at
// a second emulator through its endpoint override.
TEST_F(AgentApiTest, NoGetAgentAliasPermissionSavesWithAWarning) {
  json world = json::parse(sim::DemoWorldConfigText());
  world["accounts"][0]["users"].push_back(
      {{"name", "quarry-noget"},
       {"access_keys", {{{"id", "AKIAQUARRYNOGET00001"}, {"secret", "quarryNoGetSecret000000000000000000000001"}}}},
       {"policies",
        {{{"Version", "2012-10-17"},
          {"Statement",
           {{{"Effect", "Allow"},
             {"Action", {"bedrock:InvokeModel*", "bedrock:InvokeAgent", "bedrock:List*"}},
             {"Resource", "*"}}}}}}}});
  Result<sim::WorldConfig> parsed = sim::ParseWorldConfig(world.dump());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  auto other = sim::SimServer::Start(std::move(parsed).value(), {});
  ASSERT_TRUE(other.ok());
  ApiReply created = fx_.Call("POST", "/api/v1/providers", fx_.admin_token,
                              {{"name", "no-get"},
                               {"region", "us-east-1"},
                               {"endpoint_url", other.value()->base_url()},
                               {"credentials", Keys("AKIAQUARRYNOGET00001", "quarryNoGetSecret000000000000000000000001")}});
  ASSERT_EQ(created.status, 201) << created.Describe();
  const std::string id = created.json["id"];
  EXPECT_EQ(created.json["endpoints"]["endpoint_url"], other.value()->base_url());
  ApiReply tested = fx_.Call("POST", "/api/v1/providers/" + id + "/test", fx_.admin_token);
  ASSERT_EQ(tested.json["ok"], true) << tested.Describe();

  ApiReply agent = Connect({{"provider_id", id}, {"agent_alias_arn", kAlias}, {"name", "unverified"}});
  ASSERT_EQ(agent.status, 201) << agent.Describe();
  EXPECT_EQ(agent.json["verification"]["status"], "unverified");
  ASSERT_EQ(agent.json["warnings"].size(), 1u);
  EXPECT_EQ(agent.json["warnings"][0]["missing_permission"], "bedrock:GetAgentAlias");
  EXPECT_THAT(agent.json["warnings"][0]["message"].get<std::string>(), HasSubstr("bedrock:GetAgentAlias"));

  // Chat works through the override.
  const std::string chat = StartChat(agent.json["id"]);
  ApiReply reply = Say(chat, {{"text", "How do I reset my password?"}});
  ASSERT_EQ(reply.status, 200) << reply.Describe();
  EXPECT_EQ(ParseSse(reply.body).back().name, "done");
  EXPECT_GE(other.value()->emulator().CallCount("InvokeAgent"), 1);
  other.value()->Stop();
}

TEST_F(AgentApiTest, DeletingAnAgentDeletesItsConversations) {
  const std::string agent = ConnectDemo();
  const std::string chat = StartChat(agent);
  ASSERT_EQ(Say(chat, {{"text", "hello"}}).status, 200);
  EXPECT_EQ(fx_.Call("DELETE", "/api/v1/agents/" + agent, fx_.builder_token).status, 204);
  EXPECT_EQ(fx_.Call("GET", "/api/v1/agents/" + agent, fx_.builder_token).status, 404);
  EXPECT_EQ(fx_.Call("GET", "/api/v1/conversations/" + chat, fx_.builder_token).status, 404);
  // And the provider, no longer used, may go.
  EXPECT_EQ(fx_.Call("DELETE", "/api/v1/providers/" + provider_, fx_.admin_token).status, 204);
}

TEST_F(AgentApiTest, AnAppWithAgentsIsDeletedOnlyWithForceAndTakesThemAlong) {
  const std::string agent = ConnectDemo();
  const std::string chat = StartChat(agent);
  ApiReply refused = fx_.Call("DELETE", "/api/v1/apps/" + app_, fx_.builder_token);
  EXPECT_EQ(refused.status, 409) << refused.Describe();
  EXPECT_NE(refused.json["error"]["message"].get<std::string>().find("connected agent"), std::string::npos)
      << refused.Describe();
  EXPECT_EQ(fx_.Call("GET", "/api/v1/agents/" + agent, fx_.builder_token).status, 200);
  EXPECT_EQ(fx_.Call("DELETE", "/api/v1/apps/" + app_ + "?force=true", fx_.builder_token).status, 204);
  EXPECT_EQ(fx_.Call("GET", "/api/v1/agents/" + agent, fx_.builder_token).status, 404);
  EXPECT_EQ(fx_.Call("GET", "/api/v1/conversations/" + chat, fx_.builder_token).status, 404);
}

// The whole seed walk (steps 3 to 5) on PostgreSQL: the same SQL on the other
// engine, through every write path of this area.
TEST(ProviderAreaOnPostgresTest, SeedWalkthrough) {
  const testing::PostgresDatabase pg = testing::SharedPostgresDatabase();
  if (pg.url.empty()) GTEST_SKIP() << "PostgreSQL API tests skipped: " << pg.skip_reason;
  testing::ApiFixtureOptions options;
  options.database_url = pg.url;
  ApiFixture fx(options);
  const std::string provider = fx.AddWorkingProvider();
  ASSERT_FALSE(provider.empty());
  ApiReply tested = fx.Call("POST", "/api/v1/providers/" + provider + "/test", fx.admin_token,
                            {{"invoke_model", "anthropic.claude-3-opus-20240229-v1:0"}});
  EXPECT_FALSE(tested.json["ok"].get<bool>()) << tested.Describe();  // marks Opus unusable (an upsert)
  ASSERT_TRUE(fx.Call("POST", "/api/v1/providers/" + provider + "/test", fx.admin_token).json["ok"].get<bool>());
  ApiReply models = fx.Call("GET", "/api/v1/providers/" + provider + "/models?refresh=true", fx.member_token);
  ASSERT_EQ(models.status, 200) << models.Describe();
  ApiReply rotated = fx.Call(
      "PATCH", "/api/v1/providers/" + provider, fx.admin_token,
      {{"credentials", Keys(sim::kDemoAccessKeyId, sim::kDemoSecretAccessKey)}, {"name", "Bedrock (rotated)"}});
  ASSERT_EQ(rotated.status, 200) << rotated.Describe();

  ApiReply service = fx.Call("POST", "/api/v1/services", fx.admin_token,
                             {{"name", "Triage"},
                              {"provider_id", provider},
                              {"model", "anthropic.claude-3-7-sonnet-20250219-v1:0"},
                              {"max_tokens", 512},
                              {"stop_sequences", {"END"}}});
  ASSERT_EQ(service.status, 201) << service.Describe();
  const std::string service_id = service.json["id"];
  ApiReply patched = fx.Call("PATCH", "/api/v1/services/" + service_id, fx.admin_token, {{"top_p", 0.5}});
  ASSERT_EQ(patched.status, 200) << patched.Describe();
  ApiReply tried = fx.Call("POST", "/api/v1/services/" + service_id + "/try", fx.builder_token, {{"prompt", "Hello"}});
  ASSERT_EQ(tried.status, 200) << tried.Describe();
  EXPECT_EQ(ParseSse(tried.body).back().name, "done") << tried.body;

  ApiReply app = fx.Call("POST", "/api/v1/apps", fx.builder_token,
                         {{"name", "IT Helpdesk"}, {"namespace", "it_helpdesk"}, {"handle", "TCK"}});
  ASSERT_EQ(app.status, 201) << app.Describe();
  ApiReply base = fx.Call("POST", "/api/v1/apps/it_helpdesk/agents", fx.builder_token,
                          {{"provider_id", provider}, {"agent_alias_arn", kBaseArn}});
  EXPECT_EQ(base.status, 400) << base.Describe();
  ApiReply agent = fx.Call("POST", "/api/v1/apps/it_helpdesk/agents", fx.builder_token,
                           {{"provider_id", provider}, {"agent_alias_arn", kAlias}});
  ASSERT_EQ(agent.status, 201) << agent.Describe();
  const std::string agent_id = agent.json["id"];
  ApiReply chat = fx.Call("POST", "/api/v1/agents/" + agent_id + "/conversations", fx.member_token);
  ASSERT_EQ(chat.status, 201) << chat.Describe();
  const std::string chat_id = chat.json["id"];
  for (const char* text : {"How do I reset my password?", "What did I ask before?"}) {
    ApiReply reply = fx.Call("POST", "/api/v1/conversations/" + chat_id + "/messages", fx.member_token, {{"text", text}});
    ASSERT_EQ(reply.status, 200) << reply.Describe();
    EXPECT_EQ(ParseSse(reply.body).back().name, "done") << reply.body;
  }
  ApiReply history = fx.Call("GET", "/api/v1/conversations/" + chat_id + "/messages", fx.member_token);
  EXPECT_EQ(history.json["items"].size(), 4u);
  EXPECT_EQ(fx.Call("GET", "/api/v1/agents/" + agent_id + "/conversations", fx.member_token).json["items"].size(), 1u);
  EXPECT_EQ(fx.Call("POST", "/api/v1/conversations/" + chat_id + "/end", fx.member_token).json["status"], "ended");
  EXPECT_EQ(fx.Call("DELETE", "/api/v1/agents/" + agent_id, fx.builder_token).status, 204);
  EXPECT_EQ(fx.Call("DELETE", "/api/v1/services/" + service_id, fx.admin_token).status, 204);
  EXPECT_EQ(fx.Call("DELETE", "/api/v1/providers/" + provider, fx.admin_token).status, 204);
}

}  // namespace
}  // namespace quarry
