// Tests of the emulator's Bedrock Agents (agent_model.h).
#include "sim/agent_model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "common/encoding.h"
#include "tests/support/process.h"

namespace quarry::sim {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

AgentSpec TestAgent() {
  AgentSpec agent;
  agent.id = "AGENT12345";
  agent.name = "helpdesk";
  agent.account = "123456789012";
  agent.region = "us-east-1";
  agent.idle_session_ttl_seconds = 600;

  AgentVersionSpec draft;
  draft.version = "DRAFT";
  draft.instruction = "You are a helpdesk agent.";
  draft.foundation_model = "anthropic.claude-3-5-sonnet-20240620-v1:0";
  draft.knowledge_base_ids = {"KB12345678"};
  ActionFunctionSpec create;
  create.action_group = "tickets";
  create.function = "create_ticket";
  create.description = "Creates a ticket";
  create.parameters = {{"ticket_id", "string", "related ticket", false},
                       {"email", "string", "requester", true},
                       {"priority", "integer", "1-5", false},
                       {"summary", "string", "what happened", false},
                       {"severity", "string", "low, medium, high or critical", false}};
  create.trigger_words = {"open a ticket", "escalate"};
  ActionFunctionSpec repair;
  repair.action_group = "assets";
  repair.description = "Sends an asset for repair";
  repair.api_path = "/assets/{assetId}/repairs";
  repair.http_method = "POST";
  repair.parameters = {{"assetId", "string", "asset tag", true}};
  repair.request_body = {{"issue", "string", "what is broken", true}, {"urgent", "boolean", "loaner today", false}};
  repair.trigger_words = {"repair request"};
  draft.actions = {create, repair};
  draft.code_interpreter = true;
  draft.rules = {{"magic word", "You said the magic word."}};
  agent.versions.push_back(draft);

  AgentVersionSpec v1 = draft;
  v1.version = "1";
  agent.versions.push_back(v1);

  AgentVersionSpec v2 = draft;
  v2.version = "2";
  v2.prepared = false;
  agent.versions.push_back(v2);

  AgentVersionSpec v3 = draft;
  v3.version = "3";
  GuardrailSpec guardrail;
  guardrail.id = "gr12345678";
  guardrail.version = "1";
  guardrail.blocked_topics = {{"Investments", {"stocks", "crypto"}}};
  guardrail.blocked_message = "I cannot discuss investments.";
  v3.guardrail = guardrail;
  v3.code_interpreter = false;
  agent.versions.push_back(v3);

  agent.aliases = {
      {"LIVEALIAS1", "live", "", "1", "PREPARED"},
      {"NOVERSION1", "empty", "", "", "PREPARED"},
      {"UNPREPARED", "unprepared", "", "2", "PREPARED"},
      {"MISSINGVER", "missing", "", "9", "PREPARED"},
      {"UPDATING01", "updating", "", "1", "UPDATING"},
      {"GUARDED001", "guarded", "", "3", "PREPARED"},
  };
  return agent;
}

std::vector<KnowledgeBaseSpec> TestKnowledgeBases() {
  KnowledgeBaseSpec kb;
  kb.id = "KB12345678";
  kb.name = "it-handbook";
  kb.documents = {
      {"doc-vpn", "VPN guide",
       "The VPN client is GlobalConnect. To connect to the VPN, open GlobalConnect and sign in with your badge "
       "number. The VPN disconnects after eight hours.",
       "s3://handbook/vpn.md"},
      {"doc-password", "Password policy",
       "Passwords expire every 90 days. To reset your password, visit the self-service portal and answer your "
       "security questions.",
       "s3://handbook/password.md"},
  };
  return {kb};
}

class AgentModelTest : public ::testing::Test {
 protected:
  AgentOutcome Run(const std::string& alias_id, InvokeAgentInput input) {
    const auto alias = agent_.FindAlias(alias_id);
    EXPECT_TRUE(alias.has_value()) << alias_id;
    return RunAgent(agent_, *alias, input, knowledge_, sessions_, clock_);
  }
  static InvokeAgentInput Input(std::string text, std::string session = "session-1") {
    InvokeAgentInput input;
    input.session_id = std::move(session);
    input.input_text = std::move(text);
    return input;
  }
  // By value: callers often pass a temporary outcome.
  static std::vector<AgentEvent> Events(const AgentOutcome& outcome) {
    if (const auto* error = std::get_if<aws::AwsError>(&outcome)) {
      ADD_FAILURE() << "unexpected error: " << error->ToString();
      return {};
    }
    return std::get<std::vector<AgentEvent>>(outcome);
  }
  static aws::AwsError Error(const AgentOutcome& outcome) {
    if (const auto* error = std::get_if<aws::AwsError>(&outcome)) return *error;
    ADD_FAILURE() << "expected an error, got events";
    return {};
  }
  // The answer: the concatenation of the decoded chunk bytes.
  static std::string Answer(const std::vector<AgentEvent>& events) {
    std::string answer;
    for (const auto& e : events) {
      if (e.type != "chunk") continue;
      auto decoded = Base64Decode(e.payload.at("bytes").get<std::string>());
      EXPECT_TRUE(decoded.ok());
      if (decoded.ok()) answer += std::string(decoded.value().begin(), decoded.value().end());
    }
    return answer;
  }
  static std::vector<json> Traces(const std::vector<AgentEvent>& events, const std::string& kind) {
    std::vector<json> out;
    for (const auto& e : events) {
      if (e.type == "trace" && e.payload.at("trace").contains(kind)) out.push_back(e.payload.at("trace").at(kind));
    }
    return out;
  }
  static const AgentEvent* Find(const std::vector<AgentEvent>& events, const std::string& type) {
    for (const auto& e : events) {
      if (e.type == type) return &e;
    }
    return nullptr;
  }

  AgentSpec agent_ = TestAgent();
  const std::vector<KnowledgeBaseSpec> kbs_ = TestKnowledgeBases();
  const KnowledgeIndex knowledge_{kbs_};
  AgentSessions sessions_{1000};
  FakeClock clock_;
};

// The index holds what retrieval compares against: keywords without stop
// words or one-letter words, lower-cased, sorted and distinct; the document's
// sentences with theirs; and the reference that cites the document.
TEST(KnowledgeIndexTest, IndexesKeywordsSentencesAndReferenceOnce) {
  const std::vector<KnowledgeBaseSpec> kbs = TestKnowledgeBases();
  const KnowledgeIndex index(kbs);
  ASSERT_EQ(&index.knowledge_bases(), &kbs);
  ASSERT_EQ(index.documents(0).size(), kbs[0].documents.size());
  const KnowledgeIndex::Document& vpn = index.documents(0)[0];
  EXPECT_EQ(vpn.spec, &kbs[0].documents[0]);
  EXPECT_TRUE(std::is_sorted(vpn.keywords.begin(), vpn.keywords.end()));
  EXPECT_EQ(std::adjacent_find(vpn.keywords.begin(), vpn.keywords.end()), vpn.keywords.end());
  auto has = [](const std::vector<std::string>& words, const std::string& w) {
    return std::binary_search(words.begin(), words.end(), w);
  };
  EXPECT_TRUE(has(vpn.keywords, "guide"));  // from the title
  EXPECT_TRUE(has(vpn.keywords, "globalconnect"));
  EXPECT_FALSE(has(vpn.keywords, "the"));
  EXPECT_FALSE(has(vpn.keywords, "to"));
  ASSERT_EQ(vpn.sentences.size(), 3u);
  EXPECT_EQ(vpn.sentences[2].text, "The VPN disconnects after eight hours.");
  EXPECT_TRUE(has(vpn.sentences[2].keywords, "disconnects"));
  EXPECT_FALSE(has(vpn.sentences[2].keywords, "globalconnect"));
  EXPECT_EQ(vpn.reference["location"]["s3Location"]["uri"], "s3://handbook/vpn.md");
  EXPECT_EQ(vpn.reference["metadata"]["x-amz-bedrock-kb-chunk-id"], "doc-vpn");
  EXPECT_EQ(vpn.reference["metadata"]["title"], "VPN guide");
}

TEST_F(AgentModelTest, DraftTestAliasResolvesToDraftEvenWhenNotListed) {
  const auto alias = agent_.FindAlias("TSTALIASID");
  ASSERT_TRUE(alias.has_value());
  EXPECT_EQ(alias->agent_version, "DRAFT");
  EXPECT_EQ(alias->status, "PREPARED");
  EXPECT_FALSE(agent_.FindAlias("NOSUCHALIA").has_value());
  ASSERT_NE(agent_.FindVersion("DRAFT"), nullptr);
  EXPECT_EQ(agent_.FindVersion("7"), nullptr);

  InvokeAgentInput input = Input("How do I reset my password?");
  input.enable_trace = true;
  const auto events = Events(Run("TSTALIASID", input));
  const auto traces = Traces(events, "orchestrationTrace");
  ASSERT_FALSE(events.empty());
  for (const auto& e : events) {
    if (e.type == "trace") {
      EXPECT_EQ(e.payload.at("agentVersion"), "DRAFT");
    }
  }
}

TEST_F(AgentModelTest, AliasWithNoVersionIsResourceNotFound) {
  const auto error = Error(Run("NOVERSION1", Input("hello")));
  EXPECT_EQ(error.code, "ResourceNotFoundException");
  EXPECT_EQ(error.http_status, 404);
  EXPECT_THAT(error.message, HasSubstr("no associated version"));
}

TEST_F(AgentModelTest, AliasPointingAtMissingVersionIsResourceNotFound) {
  const auto error = Error(Run("MISSINGVER", Input("hello")));
  EXPECT_EQ(error.code, "ResourceNotFoundException");
  EXPECT_EQ(error.http_status, 404);
  EXPECT_THAT(error.message, HasSubstr("version 9"));
}

TEST_F(AgentModelTest, UnpreparedVersionIsDependencyFailed) {
  const auto error = Error(Run("UNPREPARED", Input("hello")));
  EXPECT_EQ(error.code, "DependencyFailedException");
  EXPECT_EQ(error.http_status, 424);
  EXPECT_THAT(error.message, HasSubstr("not prepared"));
}

TEST_F(AgentModelTest, AliasNotPreparedIsConflict) {
  const auto error = Error(Run("UPDATING01", Input("hello")));
  EXPECT_EQ(error.code, "ConflictException");
  EXPECT_EQ(error.http_status, 409);
  EXPECT_THAT(error.message, HasSubstr("UPDATING"));
}

TEST_F(AgentModelTest, SessionIdMustMatchPatternAndLength) {
  for (const std::string& bad : std::vector<std::string>{"a", "", "has space", "slash/no", "bang!", std::string(101, 'x')}) {
    const auto error = Error(Run("LIVEALIAS1", Input("hello", bad)));
    EXPECT_EQ(error.code, "ValidationException") << bad;
    EXPECT_EQ(error.http_status, 400) << bad;
  }
  for (const std::string& good : std::vector<std::string>{"ab", "a.b_c:d-e", std::string(100, 'Z')}) {
    EXPECT_TRUE(std::holds_alternative<std::vector<AgentEvent>>(Run("LIVEALIAS1", Input("hello", good)))) << good;
  }
  EXPECT_EQ(sessions_.size(), 3u);  // rejected calls leave no session behind
}

TEST_F(AgentModelTest, EmptyInputWithoutResultsIsRejected) {
  const auto error = Error(Run("LIVEALIAS1", Input("   ")));
  EXPECT_EQ(error.code, "ValidationException");
  EXPECT_THAT(error.message, HasSubstr("inputText"));
}

TEST_F(AgentModelTest, LaterTurnQuotesEarlierQuestionAndEndSessionForgets) {
  Events(Run("LIVEALIAS1", Input("Which VPN client do we use?")));
  const std::string recall = Answer(Events(Run("LIVEALIAS1", Input("What did I ask before?"))));
  EXPECT_THAT(recall, HasSubstr("Which VPN client do we use?"));

  // Another session of the same alias does not see it.
  EXPECT_THAT(Answer(Events(Run("LIVEALIAS1", Input("What did I ask before?", "other-session")))),
              Not(HasSubstr("VPN")));

  InvokeAgentInput last = Input("Thanks, that is all for now");
  last.end_session = true;
  Events(Run("LIVEALIAS1", last));
  EXPECT_THAT(Answer(Events(Run("LIVEALIAS1", Input("What did I ask earlier?")))),
              HasSubstr("start of our conversation"));
}

TEST_F(AgentModelTest, IdleSessionExpiresAfterAgentTtl) {
  agent_.idle_session_ttl_seconds = 60;
  Events(Run("LIVEALIAS1", Input("Which VPN client do we use?")));
  clock_.Advance(std::chrono::seconds(59));
  EXPECT_THAT(Answer(Events(Run("LIVEALIAS1", Input("What did I ask before?")))), HasSubstr("VPN client"));
  clock_.Advance(std::chrono::seconds(61));
  EXPECT_THAT(Answer(Events(Run("LIVEALIAS1", Input("What did I ask before?")))),
              HasSubstr("start of our conversation"));
}

TEST_F(AgentModelTest, KnowledgeBaseAnswerCitesTheRetrievedSentence) {
  const auto events = Events(Run("LIVEALIAS1", Input("How do I reset my password?")));
  ASSERT_EQ(events.size(), 1u);
  const std::string answer = Answer(events);
  EXPECT_THAT(answer, HasSubstr("To reset your password, visit the self-service portal"));
  const json& citations = events[0].payload.at("attribution").at("citations");
  ASSERT_GE(citations.size(), 1u);
  const json& part = citations[0].at("generatedResponsePart").at("textResponsePart");
  const size_t start = part.at("span").at("start").get<size_t>();
  const size_t end = part.at("span").at("end").get<size_t>();  // inclusive
  ASSERT_LT(end, answer.size());
  EXPECT_EQ(answer.substr(start, end - start + 1), part.at("text").get<std::string>());
  EXPECT_THAT(part.at("text").get<std::string>(), HasSubstr("reset your password"));
  const json& ref = citations[0].at("retrievedReferences").at(0);
  EXPECT_EQ(ref.at("location").at("type"), "S3");
  EXPECT_EQ(ref.at("location").at("s3Location").at("uri"), "s3://handbook/password.md");
  EXPECT_THAT(ref.at("content").at("text").get<std::string>(), HasSubstr("Passwords expire every 90 days"));
}

TEST_F(AgentModelTest, NoKnowledgeBaseMatchMeansNoCitations) {
  const auto events = Events(Run("LIVEALIAS1", Input("Recommend a lunch recipe with tomatoes")));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_FALSE(events[0].payload.contains("attribution"));
  EXPECT_THAT(Answer(events), HasSubstr("could not find"));
}

TEST_F(AgentModelTest, ScriptedRuleTakesPrecedenceForTheAnswer) {
  EXPECT_EQ(Answer(Events(Run("LIVEALIAS1", Input("Say the MAGIC WORD about the VPN")))), "You said the magic word.");
}

TEST_F(AgentModelTest, ReturnControlRoundTripAnswersFromTheFunctionResult) {
  const auto first =
      Events(Run("LIVEALIAS1", Input("Please open a ticket about TCK-123 for ana@example.com, priority 4, urgent")));
  const AgentEvent* rc = Find(first, "returnControl");
  ASSERT_NE(rc, nullptr);
  EXPECT_EQ(Find(first, "chunk"), nullptr);
  const std::string invocation_id = rc->payload.at("invocationId");
  EXPECT_THAT(invocation_id, ::testing::MatchesRegex("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"));
  const json& fn = rc->payload.at("invocationInputs").at(0).at("functionInvocationInput");
  EXPECT_EQ(fn.at("actionGroup"), "tickets");
  EXPECT_EQ(fn.at("function"), "create_ticket");
  EXPECT_EQ(fn.at("actionInvocationType"), "RESULT");
  std::map<std::string, std::string> params;
  for (const auto& p : fn.at("parameters")) params[p.at("name")] = p.at("value");
  EXPECT_EQ(params["ticket_id"], "TCK-123");
  EXPECT_EQ(params["email"], "ana@example.com");
  EXPECT_EQ(params["priority"], "4");
  EXPECT_FALSE(params["summary"].empty());
  EXPECT_EQ(params["severity"], "high");  // a level from "urgent", not the whole input

  // Results with the wrong invocationId are rejected and keep the pending call.
  InvokeAgentInput wrong = Input("");
  wrong.session_state = {{"invocationId", "not-the-id"},
                         {"returnControlInvocationResults",
                          json::array({{{"functionResult",
                                         {{"actionGroup", "tickets"},
                                          {"function", "create_ticket"},
                                          {"responseBody", {{"TEXT", {{"body", "Ticket TCK-999 created"}}}}}}}}})}};
  const auto error = Error(Run("LIVEALIAS1", wrong));
  EXPECT_EQ(error.code, "ValidationException");
  EXPECT_THAT(error.message, HasSubstr("invocationId"));

  InvokeAgentInput right = wrong;
  right.session_state["invocationId"] = invocation_id;
  const std::string answer = Answer(Events(Run("LIVEALIAS1", right)));
  EXPECT_THAT(answer, HasSubstr("Ticket TCK-999 created"));

  // The pending call is consumed: the same results again are rejected.
  EXPECT_EQ(Error(Run("LIVEALIAS1", right)).code, "ValidationException");
}

// An apiResult reply to `invocation_id` for `method` `path` of `group`.
InvokeAgentInput ApiReply(const std::string& session, const std::string& invocation_id, const std::string& group,
                          const std::string& method, const std::string& path, const std::string& body,
                          int status = 200) {
  InvokeAgentInput input;
  input.session_id = session;
  input.session_state = {{"invocationId", invocation_id},
                         {"returnControlInvocationResults",
                          json::array({{{"apiResult",
                                         {{"actionGroup", group},
                                          {"httpMethod", method},
                                          {"apiPath", path},
                                          {"httpStatusCode", status},
                                          {"responseBody", {{"application/json", {{"body", body}}}}}}}}})}};
  return input;
}

TEST_F(AgentModelTest, ApiSchemaActionReturnsControlWithAnApiInvocationInputAndAcceptsAnApiResult) {
  const auto first =
      Events(Run("LIVEALIAS1", Input("Please file a repair request for asset LAP-0042: the hinge is cracked, yes urgent",
                                     "api-1")));
  const AgentEvent* rc = Find(first, "returnControl");
  ASSERT_NE(rc, nullptr);
  EXPECT_EQ(Find(first, "chunk"), nullptr);
  const std::string id = rc->payload.at("invocationId");
  ASSERT_EQ(rc->payload.at("invocationInputs").size(), 1u);
  const json& input = rc->payload.at("invocationInputs").at(0);
  EXPECT_FALSE(input.contains("functionInvocationInput"));
  const json& api = input.at("apiInvocationInput");
  EXPECT_EQ(api.at("actionGroup"), "assets");
  EXPECT_EQ(api.at("httpMethod"), "POST");
  EXPECT_EQ(api.at("apiPath"), "/assets/{assetId}/repairs");  // templated, as Bedrock sends it
  EXPECT_EQ(api.at("actionInvocationType"), "RESULT");
  ASSERT_EQ(api.at("parameters").size(), 1u);
  EXPECT_EQ(api.at("parameters")[0], json({{"name", "assetId"}, {"type", "string"}, {"value", "LAP-0042"}}));
  const json& properties = api.at("requestBody").at("content").at("application/json").at("properties");
  ASSERT_EQ(properties.size(), 2u);
  EXPECT_EQ(properties[0].at("name"), "issue");
  EXPECT_THAT(properties[0].at("value").get<std::string>(), HasSubstr("hinge is cracked"));
  EXPECT_EQ(properties[1], json({{"name", "urgent"}, {"type", "boolean"}, {"value", "true"}}));

  // The method is compared ignoring case; the answer comes from the body.
  const std::string answer = Answer(Events(Run(
      "LIVEALIAS1", ApiReply("api-1", id, "assets", "post", "/assets/{assetId}/repairs", R"({"repairId":"R-77"})", 201))));
  EXPECT_THAT(answer, HasSubstr("POST /assets/{assetId}/repairs action completed"));
  EXPECT_THAT(answer, HasSubstr("R-77"));
  // Consumed: the same reply again has nothing to answer.
  EXPECT_THAT(Error(Run("LIVEALIAS1", ApiReply("api-1", id, "assets", "POST", "/assets/{assetId}/repairs", "{}")))
                  .message,
              HasSubstr("no returnControl is pending"));
}

// The orchestration trace of a returned control names the action as the
// console shows it: apiPath, lower-case verb and requestBody for an API
// operation; the function for a function.
TEST_F(AgentModelTest, ActionTracesDescribeTheApiOperationOrTheFunction) {
  auto group_input = [&](const std::string& text, const std::string& session) {
    InvokeAgentInput input = Input(text, session);
    input.enable_trace = true;
    for (const AgentEvent& e : Events(Run("LIVEALIAS1", input))) {
      if (e.type != "trace") continue;
      const json* orchestration = e.payload.at("trace").contains("orchestrationTrace")
                                      ? &e.payload.at("trace").at("orchestrationTrace")
                                      : nullptr;
      if (orchestration != nullptr && orchestration->contains("invocationInput") &&
          orchestration->at("invocationInput").contains("actionGroupInvocationInput")) {
        return orchestration->at("invocationInput").at("actionGroupInvocationInput");
      }
    }
    ADD_FAILURE() << "no action group trace for: " << text;
    return json();
  };
  const json api = group_input("Please file a repair request for asset LAP-0042: the hinge is cracked", "trace-api");
  EXPECT_EQ(api.value("actionGroupName", ""), "assets");
  EXPECT_EQ(api.value("executionType", ""), "RETURN_CONTROL");
  EXPECT_EQ(api.value("apiPath", ""), "/assets/{assetId}/repairs");
  EXPECT_EQ(api.value("verb", ""), "post");
  EXPECT_FALSE(api.contains("function"));
  const json properties = api["requestBody"]["content"]["application/json"];
  ASSERT_EQ(properties.size(), 2u) << api;
  EXPECT_EQ(properties[0].value("name", ""), "issue");
  EXPECT_EQ(api["parameters"].size(), 1u);
  EXPECT_FALSE(api.value("invocationId", "").empty());

  const json function = group_input("Please escalate TCK-77", "trace-function");
  EXPECT_FALSE(function.value("function", "").empty()) << function;
  EXPECT_FALSE(function.contains("apiPath"));
  EXPECT_FALSE(function.contains("verb"));
  EXPECT_FALSE(function.contains("requestBody"));
}

TEST_F(AgentModelTest, ApiResultsThatDoNotMatchThePendingInvocationAreRejectedAndKeepItPending) {
  const auto first = Events(Run("LIVEALIAS1", Input("repair request for LAP-7: keyboard", "api-2")));
  const AgentEvent* rc = Find(first, "returnControl");
  ASSERT_NE(rc, nullptr);
  const std::string id = rc->payload.at("invocationId");
  const std::string path = "/assets/{assetId}/repairs";

  aws::AwsError e = Error(Run("LIVEALIAS1", ApiReply("api-2", "not-the-id", "assets", "POST", path, "{}")));
  EXPECT_EQ(e.code, "ValidationException");
  EXPECT_EQ(e.http_status, 400);
  EXPECT_THAT(e.message, HasSubstr("does not match the pending returnControl invocationId " + id));

  e = Error(Run("LIVEALIAS1", ApiReply("api-2", id, "assets", "POST", "/assets/LAP-7/repairs", "{}")));
  EXPECT_EQ(e.code, "ValidationException");
  EXPECT_THAT(e.message, HasSubstr("apiResult is for POST /assets/LAP-7/repairs, but returnControl " + id +
                                   " asked for POST /assets/{assetId}/repairs"));

  e = Error(Run("LIVEALIAS1", ApiReply("api-2", id, "assets", "GET", path, "{}")));
  EXPECT_THAT(e.message, HasSubstr("apiResult is for GET /assets/{assetId}/repairs"));

  e = Error(Run("LIVEALIAS1", ApiReply("api-2", id, "inventory", "POST", path, "{}")));
  EXPECT_THAT(e.message, HasSubstr("actionGroup 'inventory' is not the action group of the pending apiInvocationInput"));

  InvokeAgentInput function_reply = Input("", "api-2");
  function_reply.session_state = {
      {"invocationId", id},
      {"returnControlInvocationResults",
       json::array({{{"functionResult", {{"actionGroup", "assets"}, {"function", "repair"}}}}})}};
  e = Error(Run("LIVEALIAS1", function_reply));
  EXPECT_THAT(e.message, HasSubstr("is a functionResult, but returnControl " + id +
                                   " asked for the API operation POST /assets/{assetId}/repairs"));

  InvokeAgentInput bad_status = ApiReply("api-2", id, "assets", "POST", path, "{}");
  bad_status.session_state["returnControlInvocationResults"][0]["apiResult"]["httpStatusCode"] = "200";
  EXPECT_THAT(Error(Run("LIVEALIAS1", bad_status)).message, HasSubstr("httpStatusCode must be an integer"));

  // Still pending: a right reply works, and a 5xx result is reported as a failure.
  const std::string answer =
      Answer(Events(Run("LIVEALIAS1", ApiReply("api-2", id, "assets", "POST", path, "repair service down", 503))));
  EXPECT_THAT(answer, HasSubstr("action failed: repair service down"));
}

TEST_F(AgentModelTest, AnApiResultForAPendingFunctionIsRejected) {
  const auto first = Events(Run("LIVEALIAS1", Input("Please open a ticket for bo@example.com", "api-3")));
  const AgentEvent* rc = Find(first, "returnControl");
  ASSERT_NE(rc, nullptr);
  const aws::AwsError e = Error(Run(
      "LIVEALIAS1", ApiReply("api-3", rc->payload.at("invocationId"), "tickets", "POST", "/tickets", "{}")));
  EXPECT_EQ(e.code, "ValidationException");
  EXPECT_THAT(e.message, HasSubstr("is an apiResult, but returnControl"));
  EXPECT_THAT(e.message, HasSubstr("asked for the function tickets/create_ticket"));
}

TEST_F(AgentModelTest, CodeInterpreterExportsMatchingArticlesAsACsvFile) {
  InvokeAgentInput input = Input("Export the VPN articles as CSV", "csv-1");
  input.enable_trace = true;
  const auto events = Events(Run("LIVEALIAS1", input));
  const AgentEvent* files = Find(events, "files");
  ASSERT_NE(files, nullptr);
  ASSERT_EQ(files->payload.at("files").size(), 1u);
  const json& file = files->payload.at("files")[0];
  EXPECT_EQ(file.at("name"), "articles.csv");
  EXPECT_EQ(file.at("type"), "text/csv");
  auto bytes = Base64Decode(file.at("bytes").get<std::string>());
  ASSERT_TRUE(bytes.ok());
  const std::string csv(bytes.value().begin(), bytes.value().end());
  // RFC 4180: CRLF lines, a field with a comma or quote is quoted.
  EXPECT_THAT(csv, ::testing::StartsWith("id,title,uri,text\r\ndoc-vpn,VPN guide,s3://handbook/vpn.md,\"The VPN client"));
  EXPECT_THAT(csv, Not(HasSubstr("doc-password")));
  EXPECT_THAT(Answer(events), HasSubstr("I exported 1 knowledge base article to articles.csv ("));
  // The file comes before the answer, and the trace shows the interpreter.
  EXPECT_LT(files - events.data(), Find(events, "chunk") - events.data());
  bool interpreter = false;
  for (const json& t : Traces(events, "orchestrationTrace")) {
    if (t.contains("invocationInput") && t["invocationInput"]["invocationType"] == "ACTION_GROUP_CODE_INTERPRETER") {
      interpreter = true;
    }
  }
  EXPECT_TRUE(interpreter);

  // Nothing matches: every article of the knowledge base.
  const auto all = Events(Run("LIVEALIAS1", Input("Export everything as a CSV file", "csv-2")));
  ASSERT_NE(Find(all, "files"), nullptr);
  EXPECT_THAT(Answer(all), HasSubstr("I exported 2 knowledge base articles"));
}

TEST_F(AgentModelTest, WithoutTheCodeInterpreterAnExportRequestGetsNoFile) {
  const auto events = Events(Run("GUARDED001", Input("Export the VPN articles as CSV", "csv-3")));
  EXPECT_EQ(Find(events, "files"), nullptr);
  EXPECT_FALSE(Answer(events).empty());
}

TEST_F(AgentModelTest, ResultsWithoutPendingInvocationAreRejected) {
  InvokeAgentInput input = Input("", "fresh-session");
  input.session_state = {{"invocationId", "abc"},
                         {"returnControlInvocationResults",
                          json::array({{{"functionResult", {{"actionGroup", "tickets"}, {"function", "create_ticket"}}}}})}};
  const auto error = Error(Run("LIVEALIAS1", input));
  EXPECT_EQ(error.code, "ValidationException");
  EXPECT_THAT(error.message, HasSubstr("no returnControl is pending"));
  EXPECT_EQ(sessions_.size(), 0u);
}

TEST_F(AgentModelTest, TracesOnlyWhenAskedAndWithTheRightShape) {
  EXPECT_TRUE(Traces(Events(Run("LIVEALIAS1", Input("How do I reset my password?"))), "orchestrationTrace").empty());

  InvokeAgentInput input = Input("How do I reset my password?", "traced");
  input.enable_trace = true;
  const auto events = Events(Run("LIVEALIAS1", input));
  for (const auto& e : events) {
    if (e.type != "trace") continue;
    EXPECT_EQ(e.payload.at("agentId"), "AGENT12345");
    EXPECT_EQ(e.payload.at("agentAliasId"), "LIVEALIAS1");
    EXPECT_EQ(e.payload.at("agentVersion"), "1");
    EXPECT_EQ(e.payload.at("sessionId"), "traced");
    EXPECT_TRUE(e.payload.at("eventTime").is_string());
    EXPECT_EQ(e.payload.at("trace").size(), 1u);
  }
  const auto pre = Traces(events, "preProcessingTrace");
  ASSERT_EQ(pre.size(), 2u);
  EXPECT_EQ(pre[0].at("modelInvocationInput").at("type"), "PRE_PROCESSING");
  EXPECT_EQ(pre[1].at("modelInvocationOutput").at("parsedResponse").at("isValid"), true);
  EXPECT_THAT(pre[1].at("modelInvocationOutput").at("parsedResponse").at("rationale").get<std::string>(),
              HasSubstr("is valid"));

  bool model_input = false, rationale = false, kb_input = false, kb_output = false, final_response = false;
  for (const auto& t : Traces(events, "orchestrationTrace")) {
    if (t.contains("modelInvocationInput")) {
      model_input = t["modelInvocationInput"]["type"] == "ORCHESTRATION" && t["modelInvocationInput"].contains("text");
      EXPECT_LE(t["modelInvocationInput"]["traceId"].get<std::string>().size(), 16u);
    }
    if (t.contains("rationale")) rationale = !t["rationale"]["text"].get<std::string>().empty();
    if (t.contains("invocationInput")) {
      kb_input = t["invocationInput"]["invocationType"] == "KNOWLEDGE_BASE" &&
                 t["invocationInput"]["knowledgeBaseLookupInput"]["knowledgeBaseId"] == "KB12345678";
    }
    if (t.contains("observation") && t["observation"].contains("knowledgeBaseLookupOutput")) {
      kb_output = !t["observation"]["knowledgeBaseLookupOutput"]["retrievedReferences"].empty();
    }
    if (t.contains("observation") && t["observation"].contains("finalResponse")) {
      final_response = t["observation"]["finalResponse"]["text"] == Answer(events);
    }
  }
  EXPECT_TRUE(model_input);
  EXPECT_TRUE(rationale);
  EXPECT_TRUE(kb_input);
  EXPECT_TRUE(kb_output);
  EXPECT_TRUE(final_response);
  EXPECT_FALSE(Traces(events, "postProcessingTrace").empty());
  EXPECT_TRUE(Traces(events, "guardrailTrace").empty());  // no guardrail on version 1
}

TEST_F(AgentModelTest, GuardrailBlocksTopicWithoutCallingKnowledgeBaseOrActions) {
  InvokeAgentInput input = Input("Should I escalate my crypto password worries?");
  input.enable_trace = true;
  const auto events = Events(Run("GUARDED001", input));
  EXPECT_EQ(Answer(events), "I cannot discuss investments.");
  EXPECT_EQ(Find(events, "returnControl"), nullptr);
  const auto guardrail = Traces(events, "guardrailTrace");
  ASSERT_EQ(guardrail.size(), 1u);
  EXPECT_EQ(guardrail[0].at("action"), "INTERVENED");
  EXPECT_EQ(guardrail[0].at("inputAssessments").at(0).at("topicPolicy").at("topics").at(0).at("name"), "Investments");
  EXPECT_TRUE(Traces(events, "orchestrationTrace").empty());

  InvokeAgentInput fine = Input("How do I reset my password?");
  fine.enable_trace = true;
  const auto ok = Events(Run("GUARDED001", fine));
  EXPECT_THAT(Answer(ok), HasSubstr("self-service portal"));
  for (const auto& g : Traces(ok, "guardrailTrace")) EXPECT_EQ(g.at("action"), "NONE");
}

TEST_F(AgentModelTest, StreamFinalResponseChunksConcatenateToTheSameAnswer) {
  const auto whole = Events(Run("LIVEALIAS1", Input("How do I connect to the VPN?", "one")));
  InvokeAgentInput streamed_input = Input("How do I connect to the VPN?", "two");
  streamed_input.stream_final_response = true;
  const auto streamed = Events(Run("LIVEALIAS1", streamed_input));
  ASSERT_GT(streamed.size(), 2u);
  EXPECT_EQ(Answer(streamed), Answer(whole));

  // Each chunk's citations point into that chunk, and together they cover the
  // same cited text as the one-chunk answer.
  std::string cited_whole, cited_streamed;
  for (const auto& c : whole[0].payload.at("attribution").at("citations")) {
    cited_whole += c["generatedResponsePart"]["textResponsePart"]["text"].get<std::string>();
  }
  for (const auto& e : streamed) {
    const std::string text = Answer({e});
    if (!e.payload.contains("attribution")) continue;
    for (const auto& c : e.payload["attribution"]["citations"]) {
      const auto& part = c["generatedResponsePart"]["textResponsePart"];
      const size_t s = part["span"]["start"], end = part["span"]["end"];
      ASSERT_LT(end, text.size());
      EXPECT_EQ(text.substr(s, end - s + 1), part["text"].get<std::string>());
      cited_streamed += part["text"].get<std::string>();
    }
  }
  EXPECT_FALSE(cited_whole.empty());
  EXPECT_EQ(cited_streamed, cited_whole);
}

TEST_F(AgentModelTest, SameInputsGiveIdenticalEvents) {
  auto run_all = [&](AgentSessions& store) {
    std::vector<json> out;
    const auto alias = *agent_.FindAlias("LIVEALIAS1");
    for (const std::string text : {"How do I reset my password?", "Please escalate TCK-77", "What did I ask before?"}) {
      InvokeAgentInput input = Input(text);
      input.enable_trace = true;
      const auto outcome = RunAgent(agent_, alias, input, knowledge_, store, clock_);
      for (const auto& e : Events(outcome)) out.push_back({{"type", e.type}, {"payload", e.payload}});
    }
    return out;
  };
  AgentSessions a, b;
  EXPECT_EQ(run_all(a), run_all(b));
}

// --- Structured tasks: the engine appends instructions whose last line is
// "JSON schema: {...}" (engine/structured_output.h); the agent answers with
// one conforming JSON object chosen from the task's words.

json TicketSchema() {
  return json::parse(R"({"type":"object","properties":{
      "category":{"type":"string","enum":["Hardware","Software","Network","Access","Email","Other"]},
      "priority":{"type":"string","enum":["Critical","High","Medium","Low"]},
      "sentiment":{"type":"string","enum":["positive","neutral","negative"]},
      "confidence":{"type":"number"},
      "suggested_resolution":{"type":"string"}},
    "required":["category","priority","sentiment","confidence","suggested_resolution"]})");
}

json InquirySchema() {
  return json::parse(R"({"type":"object","properties":{
      "response":{"type":"string"},
      "category":{"type":"string","enum":["FAQ","Standard","High priority"]},
      "sentiment":{"type":"string","enum":["positive","neutral","negative"]}},
    "required":["response","category","sentiment"]})");
}

// The instructions as the engine words them: a field list naming every enum
// value, then the schema line.
std::string Instructions(const json& schema) {
  std::string out =
      "Answer with only one JSON object that matches the schema below: no prose.\nFields:\n";
  for (const auto& [name, property] : schema.at("properties").items()) {
    out += "- " + name;
    if (property.contains("enum")) {
      out += " (exactly one of:";
      for (const auto& v : property.at("enum")) out += " " + v.get<std::string>() + ",";
      out += ")";
    }
    out += "\n";
  }
  return out + "JSON schema: " + schema.dump();
}

std::string TicketTask(const std::string& title, const std::string& description) {
  return "Triage this IT support ticket.\n\nTitle: " + title + "\nDescription: " + description +
         "\n\n" + Instructions(TicketSchema());
}

// Checks `value` against the flat object schemas above.
void ExpectConforms(const json& value, const json& schema) {
  ASSERT_TRUE(value.is_object()) << value.dump();
  for (const auto& name : schema.at("required"))
    EXPECT_TRUE(value.contains(name.get<std::string>())) << name;
  for (const auto& [name, property] : schema.at("properties").items()) {
    ASSERT_TRUE(value.contains(name)) << name;
    const json& v = value.at(name);
    if (property.contains("enum")) {
      const json& values = property.at("enum");
      EXPECT_NE(std::find(values.begin(), values.end(), v), values.end()) << name << ": " << v;
    } else if (property.at("type") == "number") {
      ASSERT_TRUE(v.is_number()) << name;
    } else {
      ASSERT_TRUE(v.is_string()) << name;
      EXPECT_FALSE(v.get<std::string>().empty()) << name;
    }
  }
}

class StructuredTaskTest : public AgentModelTest {
 protected:
  json Ask(const std::string& text, const std::string& session = "structured-1",
           const std::string& alias = "LIVEALIAS1") {
    const auto events = Events(Run(alias, Input(text, session)));
    EXPECT_EQ(Find(events, "returnControl"), nullptr);
    const std::string answer = Answer(events);
    json parsed = json::parse(answer, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(parsed.is_object()) << answer;
    return parsed;
  }
};

TEST_F(StructuredTaskTest, OutageTicketIsNetworkHighPriorityAndNegative) {
  const json answer =
      Ask(TicketTask("VPN down", "VPN down for the whole sales floor, nobody can work"));
  ExpectConforms(answer, TicketSchema());
  EXPECT_EQ(answer.at("category"), "Network");
  EXPECT_TRUE(answer.at("priority") == "Critical" || answer.at("priority") == "High")
      << answer.dump();
  EXPECT_EQ(answer.at("sentiment"), "negative");
  EXPECT_GE(answer.at("confidence").get<double>(), 0.6);
  EXPECT_LE(answer.at("confidence").get<double>(), 1.0);
  EXPECT_THAT(answer.at("suggested_resolution").get<std::string>(), HasSubstr("VPN down"));
}

TEST_F(StructuredTaskTest, HowToQuestionIsLowPriorityAndFaq) {
  const json ticket = Ask(TicketTask("Email signature", "How do I change my email signature?"));
  ExpectConforms(ticket, TicketSchema());
  EXPECT_EQ(ticket.at("category"), "Email");
  EXPECT_EQ(ticket.at("priority"), "Low");
  EXPECT_EQ(ticket.at("sentiment"), "neutral");

  // The instructions name FAQ, Standard and High priority, and so may the
  // task's own wording: neither decides the category.
  const json inquiry =
      Ask("Classify this inquiry as FAQ, Standard or High priority and draft a response.\n\n"
          "Inputs:\n- customer_inquiry: How do I change my email signature?\n"
          "- customer: Jane Doe <jane.doe@example.com>\n\n" +
              Instructions(InquirySchema()),
          "structured-2");
  ExpectConforms(inquiry, InquirySchema());
  EXPECT_EQ(inquiry.at("category"), "FAQ");
  const std::string response = inquiry.at("response").get<std::string>();
  EXPECT_THAT(response, HasSubstr("Hi Jane"));
  EXPECT_THAT(response, HasSubstr("change my email signature"));
}

TEST_F(StructuredTaskTest, VagueTicketHasLowConfidenceAndANeutralCategory) {
  const json answer = Ask(TicketTask("Help", "Something is wrong and I don't know what."));
  ExpectConforms(answer, TicketSchema());
  EXPECT_EQ(answer.at("category"), "Other");
  EXPECT_EQ(answer.at("priority"), "Medium");
  EXPECT_LT(answer.at("confidence").get<double>(), 0.6);
  EXPECT_GE(answer.at("confidence").get<double>(), 0.0);
}

TEST_F(StructuredTaskTest, AnswersAreDeterministicAcrossSessions) {
  const std::string task =
      TicketTask("Excel", "Excel crashes every time I open the budget workbook.");
  const json first = Ask(task, "session-a");
  EXPECT_EQ(Ask(task, "session-b"), first);
  EXPECT_EQ(first.at("category"), "Software");
}

TEST_F(StructuredTaskTest, StructuredTaskComesBeforeActionsButAfterRules) {
  // "escalate" is an action trigger word: a structured task still gets JSON.
  const json answer =
      Ask(TicketTask("Escalate please", "Please escalate: my laptop screen is cracked."));
  EXPECT_EQ(answer.at("category"), "Hardware");
  // A scripted rule wins over the schema.
  EXPECT_EQ(Answer(Events(Run("LIVEALIAS1", Input(TicketTask("x", "the magic word"), "rules")))),
            "You said the magic word.");
}

TEST_F(StructuredTaskTest, RepairTurnIsAnsweredFromTheEarlierTask) {
  // The first answer comes from a rule and is not JSON; the engine's repair
  // turn (only instructions, schema repeated) gets JSON about the first task.
  const std::string first =
      TicketTask("VPN", "magic word: the VPN connection is down for everyone");
  EXPECT_EQ(Answer(Events(Run("LIVEALIAS1", Input(first, "repair")))), "You said the magic word.");
  const json repaired =
      Ask("Your previous answer could not be used: no JSON object in the answer.\nAnswer again. " +
              Instructions(TicketSchema()),
          "repair");
  ExpectConforms(repaired, TicketSchema());
  EXPECT_EQ(repaired.at("category"), "Network");
  EXPECT_EQ(repaired.at("priority"), "Critical");
}

TEST_F(StructuredTaskTest, TicketsThatTalkAboutJsonOrSchemasKeepTheirWords) {
  const json answer = Ask(TicketTask("Export broken",
                                     "The Excel export writes invalid JSON after the update "
                                     "and the database schema check fails."),
                          "json-words");
  EXPECT_EQ(answer.at("category"), "Software");
  EXPECT_THAT(answer.at("suggested_resolution").get<std::string>(), HasSubstr("Export broken"));
}

TEST_F(StructuredTaskTest, StreamingTracesAndGuardrailStillApply) {
  InvokeAgentInput input =
      Input(TicketTask("Printer", "The printer on floor 2 jams on every page."), "traced");
  input.enable_trace = true;
  input.stream_final_response = true;
  const auto events = Events(Run("GUARDED001", input));
  size_t chunks = 0;
  for (const auto& e : events) chunks += e.type == "chunk" ? 1 : 0;
  EXPECT_GT(chunks, 1u);
  const json answer = json::parse(Answer(events));
  EXPECT_EQ(answer.at("category"), "Hardware");
  bool finished = false;
  for (const auto& t : Traces(events, "orchestrationTrace")) {
    if (t.contains("observation") && t.at("observation").at("type") == "FINISH") {
      finished = true;
      EXPECT_EQ(json::parse(t.at("observation").at("finalResponse").at("text").get<std::string>()),
                answer);
    }
  }
  EXPECT_TRUE(finished);

  const auto blocked = Events(
      Run("GUARDED001", Input(TicketTask("Crypto", "Can I buy crypto on my laptop?"), "guarded")));
  EXPECT_EQ(Answer(blocked), "I cannot discuss investments.");
}

TEST_F(StructuredTaskTest, UnparsableSchemaLineMeansAnOrdinaryAnswer) {
  const auto events = Events(
      Run("LIVEALIAS1", Input("Recommend a lunch recipe.\nJSON schema: {not json", "plain")));
  EXPECT_FALSE(json::parse(Answer(events), nullptr, false).is_object());
  EXPECT_THAT(Answer(events), HasSubstr("could not find"));
}

TEST_F(StructuredTaskTest, InvalidUtf8InTheTaskStillGivesValidJson) {
  const json answer =
      Ask(TicketTask("Bad \xff\xfe bytes", "The VPN \xc3 drops \xff again."), "utf8");
  ExpectConforms(answer, TicketSchema());
}

TEST(AgentSessionsTest, StoreDropsLeastRecentlyUsedPastItsBound) {
  AgentSessions sessions(3);
  FakeClock clock;
  for (int i = 0; i < 5; ++i) {
    sessions.WithSession("s" + std::to_string(i), std::chrono::seconds(600), clock,
                         [](AgentSessions::Session& s) { s.turns.push_back({"hi", "hello"}); });
    clock.Advance(std::chrono::seconds(1));
  }
  EXPECT_EQ(sessions.size(), 3u);
  bool fresh = false;
  sessions.WithSession("s0", std::chrono::seconds(600), clock,
                       [&](AgentSessions::Session& s) { fresh = s.turns.empty(); });
  EXPECT_TRUE(fresh);  // s0 was the oldest and was dropped
}

TEST(AgentSessionsTest, ConcurrentTurnsAreAllRecorded) {
  AgentSessions sessions;
  FakeClock clock;
  constexpr int kThreads = 4;
  constexpr int kTurns = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kTurns; ++i) {
        const std::string key = i % 2 == 0 ? "shared" : "own-" + std::to_string(t);
        sessions.WithSession(key, std::chrono::seconds(600), clock,
                             [](AgentSessions::Session& s) { s.turns.push_back({"u", "a"}); });
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(sessions.size(), static_cast<size_t>(kThreads + 1));
  size_t shared_turns = 0;
  sessions.WithSession("shared", std::chrono::seconds(600), clock,
                       [&](AgentSessions::Session& s) { shared_turns = s.turns.size(); });
  EXPECT_EQ(shared_turns, static_cast<size_t>(kThreads * kTurns / 2));
}

// Every event payload must parse with botocore's own parser against the
// bedrock-agent-runtime model, and use only modelled member names and types.
TEST_F(AgentModelTest, EventPayloadsMatchTheBotocoreModel) {
  const auto oracle = testing::ModernBotocore();
  if (!oracle) {
    GTEST_SKIP() << "SKIPPED: no python3 with botocore >= 1.43 on PATH (Debian's 1.29 has no "
                    "bedrock-agent-runtime model); InvokeAgent payload shapes were NOT checked against botocore.";
  }
  json all = json::array();
  auto collect = [&](const AgentOutcome& outcome) {
    for (const auto& e : Events(outcome)) all.push_back({{"type", e.type}, {"payload", e.payload}});
  };
  InvokeAgentInput kb = Input("How do I reset my password?", "oracle");
  kb.enable_trace = true;
  kb.stream_final_response = true;
  collect(Run("LIVEALIAS1", kb));
  InvokeAgentInput action = Input("Please escalate TCK-5 for bo@example.com", "oracle");
  action.enable_trace = true;
  const auto rc_outcome = Run("LIVEALIAS1", action);
  collect(rc_outcome);
  const auto rc_events = Events(rc_outcome);
  const AgentEvent* rc = Find(rc_events, "returnControl");
  ASSERT_NE(rc, nullptr);
  InvokeAgentInput result = Input("", "oracle");
  result.enable_trace = true;
  result.session_state = {{"invocationId", rc->payload["invocationId"]},
                          {"returnControlInvocationResults",
                           json::array({{{"functionResult",
                                          {{"actionGroup", "tickets"},
                                           {"function", "create_ticket"},
                                           {"responseBody", {{"TEXT", {{"body", "done"}}}}}}}}})}};
  collect(Run("LIVEALIAS1", result));
  InvokeAgentInput api = Input("File a repair request for LAP-9: the fan is loud", "oracle-api");
  api.enable_trace = true;
  const auto api_outcome = Run("LIVEALIAS1", api);
  collect(api_outcome);
  const auto api_events = Events(api_outcome);
  const AgentEvent* api_rc = Find(api_events, "returnControl");
  ASSERT_NE(api_rc, nullptr);
  InvokeAgentInput api_result = ApiReply("oracle-api", api_rc->payload["invocationId"], "assets", "POST",
                                         "/assets/{assetId}/repairs", "{\"repairId\": \"R-1\"}", 201);
  api_result.enable_trace = true;
  collect(Run("LIVEALIAS1", api_result));
  InvokeAgentInput csv = Input("Export the password articles as CSV", "oracle-csv");
  csv.enable_trace = true;
  collect(Run("LIVEALIAS1", csv));
  InvokeAgentInput guarded = Input("Tell me about crypto", "oracle");
  guarded.enable_trace = true;
  collect(Run("GUARDED001", guarded));
  InvokeAgentInput guarded_ok = Input("How do I connect to the VPN?", "oracle");
  guarded_ok.enable_trace = true;
  collect(Run("GUARDED001", guarded_ok));

  static constexpr const char* kScript = R"PY(
import base64, json, sys
import botocore.session
from botocore.parsers import EventStreamJSONParser
model = botocore.session.get_session().get_service_model('bedrock-agent-runtime')
stream = model.shape_for('ResponseStream')
errors = []
def check(shape, value, path):
    t = shape.type_name
    if getattr(shape, 'is_document_type', False): return  # any JSON value
    if t == 'structure':
        if not isinstance(value, dict): errors.append(path + ': not an object'); return
        for k, v in value.items():
            if k not in shape.members: errors.append(path + ': unmodelled member ' + k); continue
            check(shape.members[k], v, path + '.' + k)
        for r in shape.required_members:
            if r not in value: errors.append(path + ': missing required ' + r)
    elif t == 'list':
        if not isinstance(value, list): errors.append(path + ': not a list'); return
        for i, v in enumerate(value): check(shape.member, v, '%s[%d]' % (path, i))
    elif t == 'map':
        if not isinstance(value, dict): errors.append(path + ': not a map'); return
        for k, v in value.items(): check(shape.value, v, path + '{' + k + '}')
    elif t == 'string':
        if not isinstance(value, str): errors.append(path + ': not a string'); return
        if shape.enum and value not in shape.enum: errors.append(path + ': %r not in enum' % value)
        mx = shape.metadata.get('max')
        if mx is not None and len(value) > mx: errors.append(path + ': longer than %d' % mx)
    elif t in ('integer', 'long'):
        if not isinstance(value, int) or isinstance(value, bool): errors.append(path + ': not an integer')
    elif t == 'boolean':
        if not isinstance(value, bool): errors.append(path + ': not a boolean')
    elif t == 'blob':
        try: base64.b64decode(value, validate=True)
        except Exception: errors.append(path + ': not base64')
    elif t == 'timestamp':
        if not isinstance(value, str): errors.append(path + ': timestamp not a string')
events = json.load(sys.stdin)
parser = EventStreamJSONParser()
for i, e in enumerate(events):
    shape = stream.members[e['type']]
    check(shape, e['payload'], '%d:%s' % (i, e['type']))
    parser._parse_shape(shape, e['payload'])
print('\n'.join(errors) if errors else 'OK %d' % len(events))
)PY";
  const auto result_process = testing::RunProcess({oracle->interpreter, "-c", kScript}, all.dump());
  EXPECT_EQ(result_process.exit_code, 0) << result_process.stderr_text;
  EXPECT_THAT(result_process.stdout_text, ::testing::StartsWith("OK")) << result_process.stdout_text;
}

}  // namespace
}  // namespace quarry::sim
