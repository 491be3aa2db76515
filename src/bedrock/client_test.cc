// The Bedrock client against the in-process emulator (demo world): every
// operation, every injectable fault and the retry decision it must lead to,
// deadlines, cancellation, bearer keys, and 1,000 concurrent calls.

#include "bedrock/client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "net/http_server.h"
#include "sim/sim_server.h"
#include "sim/world.h"
#include "tests/support/scratch_dir.h"

namespace quarry::bedrock {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using nlohmann::json;
using std::chrono::milliseconds;

constexpr char kHaiku[] = "anthropic.claude-3-haiku-20240307-v1:0";
constexpr char kSonnet4[] = "anthropic.claude-sonnet-4-20250514-v1:0";

std::string AliasArn(std::string_view alias) {
  return "arn:aws:bedrock:us-east-1:" + std::string(sim::kDemoAccount) + ":agent-alias/" +
         std::string(sim::kDemoAgentId) + "/" + std::string(alias);
}

aws::Credentials DemoCredentials() {
  aws::Credentials c;
  c.access_key_id = std::string(sim::kDemoAccessKeyId);
  c.secret_access_key = std::string(sim::kDemoSecretAccessKey);
  return c;
}

class BedrockClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    sim::WorldConfig world = sim::DemoWorld();
    world.quotas.clear();  // the 1,000-call test must not hit the demo's per-minute quota
    auto server = sim::SimServer::Start(std::move(world), {.threads = 2});
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value().release();
    auto http = net::HttpClient::Create({.max_connections_per_host = 64, .verify_tls = true});
    ASSERT_TRUE(http.ok()) << http.status().ToString();
    http_ = new std::shared_ptr<net::HttpClient>(std::move(http).value());
  }
  static void TearDownTestSuite() {
    delete http_;
    http_ = nullptr;
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    sim().ClearFaults();
    sim().Reset();
    client_ = MakeClient(Options());
  }

  static sim::Emulator& sim() { return server_->emulator(); }

  BedrockClientOptions Options() {
    BedrockClientOptions o;
    o.region = "us-east-1";
    o.endpoint_url = server_->base_url();
    o.credentials = std::make_shared<aws::StaticCredentialProvider>(DemoCredentials());
    o.random = [] { return 0.0; };  // retries without waiting
    o.deadlines.connect_timeout = milliseconds(2'000);
    o.deadlines.attempt_timeout = milliseconds(10'000);
    o.deadlines.overall_deadline = milliseconds(20'000);
    o.deadlines.idle_timeout = milliseconds(5'000);
    o.http_client = *http_;
    return o;
  }

  static std::unique_ptr<BedrockClient> MakeClient(BedrockClientOptions o) {
    auto c = BedrockClient::Create(std::move(o));
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : nullptr;
  }

  static void AddFault(const json& rule) {
    auto parsed = sim::ParseFaultRule(rule, "$");
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    sim().AddFault(parsed.value());
  }

  static ModelRequest Ask(std::string text, std::string model = kHaiku) {
    ModelRequest r;
    r.model_id = std::move(model);
    r.messages.push_back(ChatMessage::User(std::move(text)));
    r.max_tokens = 200;
    return r;
  }

  static ModelRequest WeatherToolRequest() {
    ModelRequest r = Ask("What is the weather in Paris?");
    r.tools.push_back(ToolSpec{"get_weather", "Current weather for a city",
                               json{{"type", "object"},
                                    {"properties", {{"city", {{"type", "string"}}}}},
                                    {"required", {"city"}}}});
    r.tool_choice = ToolChoice{ToolChoice::Kind::kTool, "get_weather"};
    return r;
  }

  static InvokeAgentRequest AgentAsk(std::string text, std::string session = "session-test-1") {
    InvokeAgentRequest r;
    r.agent_alias_arn = AliasArn(sim::kDemoAliasId);
    r.session_id = std::move(session);
    r.input_text = std::move(text);
    return r;
  }

  static inline sim::SimServer* server_ = nullptr;
  static inline std::shared_ptr<net::HttpClient>* http_ = nullptr;
  std::unique_ptr<BedrockClient> client_;
};

// ---------------------------------------------------------------------------
// Operations

TEST_F(BedrockClientTest, InvokeModelReturnsTextStopReasonAndUsage) {
  auto r = client_->InvokeModel(Ask("ping"));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_THAT(r.value().text, HasSubstr("pong"));
  EXPECT_EQ(r.value().stop_reason, "end_turn");
  EXPECT_GT(r.value().usage.input_tokens, 0);
  EXPECT_GT(r.value().usage.output_tokens, 0);
  EXPECT_FALSE(r.value().request_id.empty());
  EXPECT_EQ(r.value().attempts, 1);
  EXPECT_EQ(sim().CallCount("InvokeModel"), 1);
}

TEST_F(BedrockClientTest, InvokeModelWithAForcedToolReturnsAToolUseBlock) {
  auto r = client_->InvokeModel(WeatherToolRequest());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r.value().stop_reason, "tool_use");
  const ContentBlock* tool = r.value().FirstToolUse();
  ASSERT_NE(tool, nullptr);
  EXPECT_EQ(tool->tool_name, "get_weather");
  EXPECT_FALSE(tool->tool_use_id.empty());
  EXPECT_TRUE(tool->tool_input.is_object());

  // The tool result goes back and the model answers in text.
  ModelRequest next = WeatherToolRequest();
  next.tool_choice.reset();
  next.messages.push_back(ChatMessage{"assistant", {*tool}});
  next.messages.push_back(ChatMessage{"user", {ContentBlock::ToolResult(tool->tool_use_id, "Sunny, 21 C")}});
  auto answer = client_->InvokeModel(next);
  ASSERT_TRUE(answer.ok()) << answer.error().ToString();
  EXPECT_FALSE(answer.value().text.empty());
}

TEST_F(BedrockClientTest, InferenceProfileArnWithSlashIsEncodedAndAccepted) {
  std::string arn = "arn:aws:bedrock:us-east-1:" + std::string(sim::kDemoAccount) +
                    ":inference-profile/us." + kSonnet4;
  auto r = client_->InvokeModel(Ask("ping", arn));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_FALSE(r.value().text.empty());
}

TEST_F(BedrockClientTest, StreamDeltasConcatenateToTheFinalText) {
  std::string streamed;
  int deltas = 0;
  auto r = client_->InvokeModelWithResponseStream(Ask("Tell me about printers and how they work"),
                                                  [&](const StreamDelta& d) {
                                                    if (d.kind == StreamDelta::Kind::kText) streamed += d.text;
                                                    ++deltas;
                                                  });
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_GT(deltas, 1);
  EXPECT_FALSE(r.value().text.empty());
  EXPECT_EQ(streamed, r.value().text);
  EXPECT_EQ(r.value().stop_reason, "end_turn");
  EXPECT_GT(r.value().usage.output_tokens, 0);
  EXPECT_EQ(sim().CallCount("InvokeModelWithResponseStream"), 1);
}

TEST_F(BedrockClientTest, StreamedToolInputIsAssembledIntoTheToolUseBlock) {
  std::string partial;
  auto r = client_->InvokeModelWithResponseStream(WeatherToolRequest(), [&](const StreamDelta& d) {
    if (d.kind == StreamDelta::Kind::kToolInput) partial += d.text;
  });
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  const ContentBlock* tool = r.value().FirstToolUse();
  ASSERT_NE(tool, nullptr);
  EXPECT_EQ(tool->tool_name, "get_weather");
  if (!partial.empty()) {
    EXPECT_EQ(json::parse(partial), tool->tool_input);
  }
}

TEST_F(BedrockClientTest, ConverseAndConverseStreamGiveTheSameTypedResult) {
  auto r = client_->Converse(Ask("ping"));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_THAT(r.value().text, HasSubstr("pong"));
  EXPECT_EQ(r.value().stop_reason, "end_turn");
  EXPECT_GT(r.value().usage.output_tokens, 0);

  std::string streamed;
  auto s = client_->ConverseStream(Ask("Tell me about laptops"),
                                   [&](const StreamDelta& d) { streamed += d.text; });
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_FALSE(s.value().text.empty());
  EXPECT_EQ(streamed, s.value().text);
  EXPECT_GT(s.value().usage.output_tokens, 0);

  auto tool = client_->Converse(WeatherToolRequest());
  ASSERT_TRUE(tool.ok()) << tool.error().ToString();
  ASSERT_NE(tool.value().FirstToolUse(), nullptr);
  EXPECT_EQ(tool.value().FirstToolUse()->tool_name, "get_weather");
  EXPECT_EQ(tool.value().stop_reason, "tool_use");
}

TEST_F(BedrockClientTest, InvokeAgentDeliversChunksTracesAndCitations) {
  InvokeAgentRequest request = AgentAsk("How do I connect to the VPN?");
  request.enable_trace = true;
  request.stream_final_response = true;
  std::string chunks;
  int chunk_count = 0, trace_count = 0;
  AgentCallbacks callbacks;
  callbacks.on_chunk = [&](const AgentChunk& c) {
    chunks += c.text;
    ++chunk_count;
  };
  callbacks.on_trace = [&](const json&) { ++trace_count; };
  auto r = client_->InvokeAgent(request, callbacks);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_FALSE(r.value().completion.empty());
  EXPECT_EQ(chunks, r.value().completion);
  EXPECT_GE(chunk_count, 1);
  EXPECT_GT(trace_count, 0);
  EXPECT_EQ(static_cast<int>(r.value().traces.size()), trace_count);
  ASSERT_FALSE(r.value().citations.empty());
  ASSERT_FALSE(r.value().citations[0].references.empty());
  EXPECT_THAT(r.value().citations[0].references[0].uri, StartsWith("s3://"));
  EXPECT_EQ(r.value().session_id, "session-test-1");
  EXPECT_FALSE(r.value().return_control.has_value());
}

TEST_F(BedrockClientTest, InvokeAgentSurfacesReturnControlAndAcceptsTheResults) {
  auto first = client_->InvokeAgent(AgentAsk("Please open a ticket: my laptop screen is broken", "session-rc-1"));
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  ASSERT_TRUE(first.value().return_control.has_value());
  const ReturnControl& rc = *first.value().return_control;
  EXPECT_FALSE(rc.invocation_id.empty());
  ASSERT_EQ(rc.invocations.size(), 1u);
  EXPECT_EQ(rc.invocations[0].action_group, "ticketing");
  EXPECT_EQ(rc.invocations[0].function, "create_ticket");

  InvokeAgentRequest reply = AgentAsk("", "session-rc-1");
  reply.return_control_invocation_id = rc.invocation_id;
  reply.return_control_results.push_back(
      {rc.invocations[0].action_group, rc.invocations[0].function, "Ticket INC-4242 created", ""});
  auto second = client_->InvokeAgent(reply);
  ASSERT_TRUE(second.ok()) << second.error().ToString();
  EXPECT_FALSE(second.value().return_control.has_value());
  EXPECT_THAT(second.value().completion, HasSubstr("INC-4242"));
}

TEST_F(BedrockClientTest, InvokeAgentApiSchemaReturnControlRoundTrip) {
  auto first =
      client_->InvokeAgent(AgentAsk("Please file a repair request for asset LAP-0042: the hinge is cracked", "session-api-1"));
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  ASSERT_TRUE(first.value().return_control.has_value());
  const ReturnControl& rc = *first.value().return_control;
  EXPECT_TRUE(rc.invocations.empty());
  ASSERT_EQ(rc.api_invocations.size(), 1u);
  const ApiInvocation& api = rc.api_invocations[0];
  EXPECT_EQ(api.action_group, "assets");
  EXPECT_EQ(api.http_method, "POST");
  EXPECT_EQ(api.api_path, "/assets/{assetId}/repairs");
  EXPECT_EQ(api.action_invocation_type, "RESULT");
  ASSERT_EQ(api.parameters.size(), 1u);
  EXPECT_EQ(api.parameters[0].name, "assetId");
  EXPECT_EQ(api.parameters[0].value, "LAP-0042");
  ASSERT_EQ(api.request_body.count("application/json"), 1u);
  const auto& properties = api.request_body.at("application/json");
  ASSERT_EQ(properties.size(), 2u);
  EXPECT_EQ(properties[0].name, "issue");
  EXPECT_THAT(properties[0].value, HasSubstr("hinge is cracked"));
  EXPECT_EQ(properties[1].name, "urgent");
  EXPECT_EQ(properties[1].type, "boolean");

  InvokeAgentRequest reply = AgentAsk("", "session-api-1");
  reply.return_control_invocation_id = rc.invocation_id;
  reply.return_control_results.push_back(ReturnControlResult::ForApi(api, R"({"repairId": "R-77"})", 201));
  EXPECT_TRUE(reply.return_control_results[0].is_api());
  auto second = client_->InvokeAgent(reply);
  ASSERT_TRUE(second.ok()) << second.error().ToString();
  EXPECT_FALSE(second.value().return_control.has_value());
  EXPECT_THAT(second.value().completion, HasSubstr("POST /assets/{assetId}/repairs action completed"));
  EXPECT_THAT(second.value().completion, HasSubstr("R-77"));
}

TEST_F(BedrockClientTest, InvokeAgentApiResultsThatDoNotMatchAreValidationErrors) {
  auto first = client_->InvokeAgent(AgentAsk("repair request for LAP-9: the fan is loud", "session-api-2"));
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  ASSERT_TRUE(first.value().return_control.has_value());
  const ReturnControl rc = *first.value().return_control;
  ASSERT_EQ(rc.api_invocations.size(), 1u);

  InvokeAgentRequest reply = AgentAsk("", "session-api-2");
  reply.return_control_invocation_id = "00000000-0000-4000-a000-000000000000";
  reply.return_control_results.push_back(ReturnControlResult::ForApi(rc.api_invocations[0], "{}"));
  auto unknown = client_->InvokeAgent(reply);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().origin, ErrorOrigin::kService);
  EXPECT_EQ(unknown.error().aws.code, "ValidationException");
  EXPECT_EQ(unknown.error().status.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.error().aws.message, HasSubstr("does not match the pending returnControl invocationId"));
  EXPECT_EQ(unknown.error().attempts, 1);

  reply.return_control_invocation_id = rc.invocation_id;
  reply.return_control_results[0].api_path = "/assets/LAP-9/repairs";  // filled in instead of the template
  auto wrong_path = client_->InvokeAgent(reply);
  ASSERT_FALSE(wrong_path.ok());
  EXPECT_EQ(wrong_path.error().aws.code, "ValidationException");
  EXPECT_THAT(wrong_path.error().aws.message,
              HasSubstr("apiResult is for POST /assets/LAP-9/repairs, but returnControl " + rc.invocation_id +
                        " asked for POST /assets/{assetId}/repairs"));

  reply.return_control_results[0] = ReturnControlResult::ForApi(rc.api_invocations[0], "{}");
  reply.return_control_results[0].http_method = "PUT";
  auto wrong_method = client_->InvokeAgent(reply);
  ASSERT_FALSE(wrong_method.ok());
  EXPECT_THAT(wrong_method.error().aws.message, HasSubstr("apiResult is for PUT /assets/{assetId}/repairs"));

  // A functionResult where an apiResult is due.
  reply.return_control_results[0] = ReturnControlResult{"assets", "repair", "done", ""};
  auto wrong_kind = client_->InvokeAgent(reply);
  ASSERT_FALSE(wrong_kind.ok());
  EXPECT_THAT(wrong_kind.error().aws.message, HasSubstr("is a functionResult, but returnControl"));

  // Rejected before sending: an API result without its method, no invocation id.
  reply.return_control_results[0] = ReturnControlResult::ForApi(rc.api_invocations[0], "{}");
  reply.return_control_results[0].http_method.clear();
  auto local = client_->InvokeAgent(reply);
  ASSERT_FALSE(local.ok());
  EXPECT_EQ(local.error().origin, ErrorOrigin::kClient);
  EXPECT_EQ(local.error().attempts, 0);
  EXPECT_THAT(local.error().aws.message, HasSubstr("http_method is empty"));
  reply.return_control_results[0] = ReturnControlResult::ForApi(rc.api_invocations[0], "{}");
  reply.return_control_invocation_id.clear();
  auto no_id = client_->InvokeAgent(reply);
  ASSERT_FALSE(no_id.ok());
  EXPECT_EQ(no_id.error().origin, ErrorOrigin::kClient);
  EXPECT_THAT(no_id.error().aws.message, HasSubstr("need return_control_invocation_id"));

  // The invocation is still pending after all that.
  reply.return_control_invocation_id = rc.invocation_id;
  auto right = client_->InvokeAgent(reply);
  ASSERT_TRUE(right.ok()) << right.error().ToString();
  EXPECT_THAT(right.value().completion, HasSubstr("action completed"));
}

TEST_F(BedrockClientTest, InvokeAgentCollectsTheFilesOfACodeInterpreterExport) {
  std::vector<std::string> seen;
  AgentCallbacks callbacks;
  callbacks.on_file = [&](const AgentFile& f) { seen.push_back(f.name); };
  auto r = client_->InvokeAgent(AgentAsk("Export the VPN articles as CSV", "session-files-1"), callbacks);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ASSERT_EQ(r.value().files.size(), 1u);
  const AgentFile& file = r.value().files[0];
  EXPECT_EQ(file.name, "articles.csv");
  EXPECT_EQ(file.media_type, "text/csv");
  EXPECT_THAT(file.bytes, StartsWith("id,title,uri,text\r\nvpn,Connecting to the VPN,s3://quarry-demo-kb/it/vpn.md,"));
  EXPECT_EQ(seen, std::vector<std::string>{"articles.csv"});
  EXPECT_THAT(r.value().completion, HasSubstr("to articles.csv (" + std::to_string(file.bytes.size()) + " bytes)"));
  EXPECT_TRUE(client_->InvokeAgent(AgentAsk("How do I connect to the VPN?", "session-files-2")).value().files.empty());
}

TEST_F(BedrockClientTest, AFileLargerThanTheStreamBufferIsAClearErrorNotUnboundedMemory) {
  // A world whose knowledge base holds a 600 KB article, so the export is a
  // 600 KB file (an 800 KB event).
  sim::WorldConfig world = sim::DemoWorld();
  std::string text;
  while (text.size() < 600'000) text += "Spare laptops are kept in room four. ";
  world.knowledge_bases[0].documents.push_back({"spares", "Spare laptop pool", text, "s3://quarry-demo-kb/it/spares.md"});
  auto server = sim::SimServer::Start(std::move(world), {.threads = 1});
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  BedrockClientOptions o = Options();
  o.endpoint_url = server.value()->base_url();

  // The defaults take it.
  auto fits = MakeClient(o)->InvokeAgent(AgentAsk("Export the spare laptop pool article as CSV", "big-1"));
  ASSERT_TRUE(fits.ok()) << fits.error().ToString();
  ASSERT_EQ(fits.value().files.size(), 1u);
  EXPECT_GT(fits.value().files[0].bytes.size(), 600'000u);

  o.max_stream_buffer_bytes = 256 * 1024;
  auto refused = MakeClient(o)->InvokeAgent(AgentAsk("Export the spare laptop pool article as CSV", "big-2"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().aws.code, "ResponseTooLarge");
  EXPECT_EQ(refused.error().status.code(), StatusCode::kResourceExhausted);
  EXPECT_FALSE(refused.error().retryable);
  EXPECT_EQ(refused.error().attempts, 1);
  EXPECT_THAT(refused.error().aws.message, HasSubstr("larger than max_stream_buffer_bytes (262144 bytes)"));
  EXPECT_THAT(refused.error().aws.message, HasSubstr("files` event (code interpreter output)"));

  o.max_stream_buffer_bytes = 8 * 1024 * 1024;
  o.max_response_bytes = 256 * 1024;
  auto capped = MakeClient(o)->InvokeAgent(AgentAsk("Export the spare laptop pool article as CSV", "big-3"));
  ASSERT_FALSE(capped.ok());
  EXPECT_EQ(capped.error().aws.code, "ResponseTooLarge");
  EXPECT_THAT(capped.error().aws.message, HasSubstr("max_response_bytes"));
}

TEST_F(BedrockClientTest, AnHtmlPageOrXmlErrorFromAProxyIsExplained) {
  std::atomic<int> which{0};
  auto proxy = net::HttpServer::Start({}, [&](const net::HttpServerRequest&) {
    net::HttpResponse r;
    if (which.load() == 0) {
      r.status = 502;
      r.headers = {{"Content-Type", "text/html"}};
      r.body = "<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>";
    } else {
      r.status = 403;
      r.headers = {{"Content-Type", "application/xml"}};
      r.body = "<?xml version=\"1.0\"?><ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
               "<Message>Denied by the VPC endpoint policy</Message></Error><RequestId>vpce-1</RequestId>"
               "</ErrorResponse>";
    }
    return r;
  });
  ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
  BedrockClientOptions o = Options();
  o.endpoint_url = proxy.value()->base_url();
  o.retry.max_attempts = 1;
  auto client = MakeClient(o);

  auto html = client->InvokeModel(Ask("ping"));
  ASSERT_FALSE(html.ok());
  EXPECT_EQ(html.error().aws.code, "HTTP 502");
  EXPECT_TRUE(html.error().aws.not_from_service);
  EXPECT_THAT(html.error().aws.message, HasSubstr("titled \"502 Bad Gateway\""));
  EXPECT_THAT(html.error().aws.message, HasSubstr("did not come from Amazon Bedrock (bedrock-runtime)"));
  EXPECT_EQ(html.error().troubleshooting.id, "response-not-from-aws");

  which = 1;
  auto xml = client->InvokeAgent(AgentAsk("hello", "session-proxy-1"));
  ASSERT_FALSE(xml.ok());
  EXPECT_EQ(xml.error().aws.code, "AccessDenied");
  EXPECT_EQ(xml.error().aws.message, "Denied by the VPC endpoint policy");
  EXPECT_EQ(xml.error().aws.request_id, "vpce-1");
  EXPECT_EQ(xml.error().status.code(), StatusCode::kPermissionDenied);
  proxy.value()->Stop();
}

TEST_F(BedrockClientTest, CatalogueMergesModelsAndProfilesWithRecommendations) {
  auto r = client_->ListCatalogue();
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  const CatalogueTarget* sonnet4 = r.value().Find(kSonnet4);
  ASSERT_NE(sonnet4, nullptr);
  EXPECT_TRUE(sonnet4->requires_profile);
  EXPECT_EQ(sonnet4->recommended_profile_id, std::string("us.") + kSonnet4);
  const CatalogueTarget* haiku = r.value().Find(kHaiku);
  ASSERT_NE(haiku, nullptr);
  EXPECT_TRUE(haiku->on_demand);
  bool has_application_profile = false;
  for (const auto& t : r.value().targets) has_application_profile |= t.kind == TargetKind::kApplicationProfile;
  EXPECT_TRUE(has_application_profile);
  EXPECT_EQ(sim().CallCount("ListFoundationModels"), 1);
  EXPECT_GE(sim().CallCount("ListInferenceProfiles"), 2);  // both types
}

TEST_F(BedrockClientTest, GetFoundationModelDescribesTheModel) {
  auto r = client_->GetFoundationModel(kSonnet4);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r.value().model_id, kSonnet4);
  EXPECT_EQ(r.value().provider_name, "Anthropic");
  EXPECT_THAT(r.value().inference_types, ::testing::Contains("INFERENCE_PROFILE"));
}

TEST_F(BedrockClientTest, GetAgentAliasSaysWhetherItExistsHasAVersionAndIsPrepared) {
  auto prod = client_->GetAgentAlias(AliasArn(sim::kDemoAliasId));
  ASSERT_TRUE(prod.ok()) << prod.error().ToString();
  EXPECT_TRUE(prod.value().exists);
  EXPECT_EQ(prod.value().agent_version, "1");
  EXPECT_TRUE(prod.value().prepared);

  auto unbound = client_->GetAgentAlias(AliasArn(sim::kDemoUnboundAliasId));
  ASSERT_TRUE(unbound.ok()) << unbound.error().ToString();
  EXPECT_TRUE(unbound.value().exists);
  EXPECT_FALSE(unbound.value().has_version);
  EXPECT_FALSE(unbound.value().prepared);

  auto missing = client_->GetAgentAlias(AliasArn("MISSING123"));
  ASSERT_TRUE(missing.ok()) << missing.error().ToString();
  EXPECT_FALSE(missing.value().exists);
}

TEST_F(BedrockClientTest, StsIdentityAndAssumeRoleWork) {
  auto id = client_->GetCallerIdentity();
  ASSERT_TRUE(id.ok()) << id.error().ToString();
  EXPECT_EQ(id.value().account, sim::kDemoAccount);
  EXPECT_THAT(id.value().arn, HasSubstr(":user/quarry-demo"));

  aws::AssumeRoleRequest request;
  request.role_arn = std::string(sim::kDemoRoleArn);
  request.role_session_name = "client-test";
  auto creds = client_->AssumeRole(request);
  ASSERT_TRUE(creds.ok()) << creds.error().ToString();
  EXPECT_THAT(creds.value().access_key_id, StartsWith("ASIA"));
  EXPECT_FALSE(creds.value().session_token.empty());
  ASSERT_TRUE(creds.value().expiration.has_value());

  // The role assumer behind assume-role profiles, refreshed by the caching provider.
  auto assumer = MakeStsRoleAssumer(Options());
  ASSERT_TRUE(assumer.ok()) << assumer.status().ToString();
  auto again = assumer.value()->AssumeRole(request, DemoCredentials());
  ASSERT_TRUE(again.ok()) << again.status().ToString();

  BedrockClientOptions o = Options();
  o.credentials = std::make_shared<aws::StaticCredentialProvider>(again.value());
  auto role_client = MakeClient(o);
  auto role_id = role_client->GetCallerIdentity();
  ASSERT_TRUE(role_id.ok()) << role_id.error().ToString();
  EXPECT_THAT(role_id.value().arn, HasSubstr("assumed-role/quarry-invoker/client-test"));
  auto invoke = role_client->InvokeModel(Ask("ping"));
  EXPECT_TRUE(invoke.ok()) << invoke.error().ToString();
}

TEST_F(BedrockClientTest, AssumeRoleProfileWorksThroughTheChainAndIsRefreshedBeforeExpiry) {
  quarry::testing::ScratchDir dir;
  const std::string config = dir.Write("config",
                                       "[profile invoker]\n"
                                       "role_arn = " + std::string(sim::kDemoRoleArn) + "\n"
                                       "source_profile = base\n"
                                       "role_session_name = chain-test\n");
  const std::string credentials = dir.Write("credentials",
                                            "[base]\n"
                                            "aws_access_key_id = " + std::string(sim::kDemoAccessKeyId) + "\n"
                                            "aws_secret_access_key = " + std::string(sim::kDemoSecretAccessKey) +
                                                "\n");
  auto assumer = MakeStsRoleAssumer(Options());
  ASSERT_TRUE(assumer.ok()) << assumer.status().ToString();
  aws::MapEnvironment env;
  aws::CredentialChainOptions chain;
  chain.profile = "invoker";
  chain.environment = &env;
  chain.shared_files = aws::SharedFilePaths{config, credentials};
  chain.role_assumer = assumer.value().get();
  FakeClock refresh_clock(SystemClock::Get().Now());  // only the cache's notion of time
  auto provider = std::make_shared<aws::CachingCredentialProvider>(std::make_shared<aws::CredentialChain>(chain),
                                                                   refresh_clock);
  BedrockClientOptions o = Options();
  o.credentials = provider;
  auto client = MakeClient(o);

  auto id = client->GetCallerIdentity();
  ASSERT_TRUE(id.ok()) << id.error().ToString();
  EXPECT_THAT(id.value().arn, HasSubstr("assumed-role/quarry-invoker/chain-test"));
  ASSERT_TRUE(client->InvokeModel(Ask("ping")).ok());
  EXPECT_EQ(sim().CallCount("AssumeRole"), 1);  // cached

  refresh_clock.Advance(std::chrono::minutes(56));  // inside the 5-minute refresh window of a 1-hour session
  ASSERT_TRUE(client->InvokeModel(Ask("ping")).ok());
  EXPECT_EQ(sim().CallCount("AssumeRole"), 2);
}

TEST_F(BedrockClientTest, BearerKeyWorksForTheRuntimeButInvokeAgentNeedsSigV4) {
  BedrockClientOptions o = Options();
  o.credentials = nullptr;
  o.bearer_token = std::string(sim::kDemoApiKey);
  auto bearer = MakeClient(o);
  auto r = bearer->InvokeModel(Ask("ping"));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_THAT(r.value().text, HasSubstr("pong"));

  auto agent = bearer->InvokeAgent(AgentAsk("hello"));
  ASSERT_FALSE(agent.ok());
  EXPECT_EQ(agent.error().origin, ErrorOrigin::kClient);
  EXPECT_EQ(agent.error().attempts, 0);
  EXPECT_THAT(agent.error().aws.message, HasSubstr("API key"));
  EXPECT_EQ(sim().CallCount("InvokeAgent"), 0);
}

TEST_F(BedrockClientTest, AccessDeniedCarriesTheTroubleshootingEntry) {
  BedrockClientOptions o = Options();
  aws::Credentials c;
  c.access_key_id = std::string(sim::kDemoRestrictedAccessKeyId);
  c.secret_access_key = std::string(sim::kDemoRestrictedSecretAccessKey);
  o.credentials = std::make_shared<aws::StaticCredentialProvider>(c);
  auto restricted = MakeClient(o);
  auto agent = restricted->InvokeAgent(AgentAsk("hello"));
  ASSERT_FALSE(agent.ok());
  EXPECT_EQ(agent.error().aws.code, "AccessDeniedException");
  EXPECT_EQ(agent.error().aws.http_status, 403);
  EXPECT_FALSE(agent.error().retryable);
  EXPECT_EQ(agent.error().attempts, 1);
  EXPECT_EQ(agent.error().status.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(agent.error().troubleshooting.id, "access-denied-invoke-agent");
  EXPECT_FALSE(agent.error().troubleshooting.how_to_fix.empty());
  EXPECT_THAT(agent.error().ToString(), HasSubstr("AccessDeniedException"));
  EXPECT_THAT(agent.error().ToString(), HasSubstr("1 attempt"));
  EXPECT_EQ(agent.error().ToJson()["troubleshooting"]["id"], "access-denied-invoke-agent");

  auto model = restricted->InvokeModel(Ask("ping", "anthropic.claude-3-5-sonnet-20240620-v1:0"));
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.error().troubleshooting.id, "access-denied-invoke-model");
  EXPECT_EQ(sim().CallCount("InvokeModel"), 1);
}

// Credentials that are never at hand without waiting (as during a refresh
// through STS); records the threads that fetched them.
class SourceOnlyCredentials : public aws::CredentialProvider {
 public:
  Result<aws::Credentials> GetCredentials() override {
    std::lock_guard<std::mutex> lock(mutex);
    fetch_threads.push_back(std::this_thread::get_id());
    return DemoCredentials();
  }
  std::vector<std::thread::id> FetchThreads() {
    std::lock_guard<std::mutex> lock(mutex);
    return fetch_threads;
  }

 private:
  std::mutex mutex;
  std::vector<std::thread::id> fetch_threads;
};

TEST_F(BedrockClientTest, CredentialsThatMayBlockAreFetchedOffTheThreadOfAnAsynchronousCaller) {
  auto credentials = std::make_shared<SourceOnlyCredentials>();
  BedrockClientOptions options = Options();
  options.credentials = credentials;
  std::unique_ptr<BedrockClient> client = MakeClient(std::move(options));
  ASSERT_NE(client, nullptr);

  std::promise<BedrockResult<ModelResult>> done;
  client->InvokeModel(Ask("ping"), [&](BedrockResult<ModelResult> r) { done.set_value(std::move(r)); });
  BedrockResult<ModelResult> r = done.get_future().get();
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  // The caller may be a callback on the HTTP loop thread: it never waits.
  ASSERT_EQ(credentials->FetchThreads().size(), 1u);
  EXPECT_NE(credentials->FetchThreads()[0], std::this_thread::get_id());

  // A blocking caller waits anyway: its own thread fetches them.
  ASSERT_TRUE(client->InvokeModel(Ask("ping")).ok());
  ASSERT_EQ(credentials->FetchThreads().size(), 2u);
  EXPECT_EQ(credentials->FetchThreads()[1], std::this_thread::get_id());
}

TEST_F(BedrockClientTest, CallsStartedFromCompletionCallbacksChain) {
  // Static keys are at hand, so each call is signed and sent from inside the
  // previous one's completion, on the HTTP loop thread, without a hop.
  constexpr int kChain = 20;
  std::atomic<int> succeeded{0};
  std::promise<void> done;
  std::function<void(int)> start = [&](int left) {
    client_->InvokeModel(Ask("ping"), [&, left](BedrockResult<ModelResult> r) {
      if (r.ok()) succeeded.fetch_add(1);
      if (left > 1) {
        start(left - 1);
      } else {
        done.set_value();
      }
    });
  };
  start(kChain);
  std::future<void> finished = done.get_future();
  ASSERT_EQ(finished.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(succeeded.load(), kChain);
  EXPECT_EQ(sim().CallCount("InvokeModel"), kChain);
}

// A recording proxy in front of the emulator shows what goes on the wire.
TEST_F(BedrockClientTest, WireRequestsAreEncodedSignedAndNumberedAsBotocoreSendsThem) {
  std::mutex mutex;
  std::vector<net::HttpServerRequest> seen;
  auto proxy = net::HttpServer::Start({}, [&](const net::HttpServerRequest& request) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      seen.push_back(request);
    }
    return sim().Handle(request);
  });
  ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
  BedrockClientOptions o = Options();
  o.service_endpoints[aws::AwsService::kBedrockRuntime] = proxy.value()->base_url();
  o.service_endpoints[aws::AwsService::kSts] = proxy.value()->base_url();
  auto client = MakeClient(o);
  EXPECT_EQ(client->EndpointUrl(aws::AwsService::kBedrockRuntime), proxy.value()->base_url());
  EXPECT_EQ(client->EndpointUrl(aws::AwsService::kBedrock), server_->base_url());

  AddFault({{"kind", "throttle"}, {"operation", "InvokeModelWithResponseStream"}, {"count", 1}});
  ASSERT_TRUE(client->InvokeModelWithResponseStream(Ask("ping")).ok());
  ASSERT_TRUE(client->GetCallerIdentity().ok());
  proxy.value()->Stop();

  ASSERT_EQ(seen.size(), 3u);
  const std::string host = "127.0.0.1:" + std::to_string(proxy.value()->port());
  for (int i = 0; i < 2; ++i) {
    const net::HttpServerRequest& r = seen[i];
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.target, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke-with-response-stream");
    ASSERT_NE(r.FindHeader("X-Amzn-Bedrock-Accept"), nullptr);
    EXPECT_EQ(*r.FindHeader("X-Amzn-Bedrock-Accept"), "application/json");
    EXPECT_EQ(*r.FindHeader("Content-Type"), "application/json");
    EXPECT_EQ(*r.FindHeader("Host"), host);
    EXPECT_THAT(*r.FindHeader("Authorization"), HasSubstr("/us-east-1/bedrock/aws4_request"));
    EXPECT_EQ(*r.FindHeader("amz-sdk-request"), "attempt=" + std::to_string(i + 1) + "; max=3");
    ASSERT_NE(r.FindHeader("amz-sdk-invocation-id"), nullptr);
    EXPECT_EQ(*r.FindHeader("amz-sdk-invocation-id"), *seen[0].FindHeader("amz-sdk-invocation-id"));
  }
  const net::HttpServerRequest& sts = seen[2];
  EXPECT_EQ(sts.target, "/");
  EXPECT_EQ(*sts.FindHeader("Content-Type"), "application/x-www-form-urlencoded; charset=utf-8");
  EXPECT_EQ(sts.body, "Action=GetCallerIdentity&Version=2011-06-15");
  EXPECT_THAT(*sts.FindHeader("Authorization"), HasSubstr("/us-east-1/sts/aws4_request"));
}

// ---------------------------------------------------------------------------
// Faults and retry decisions

TEST_F(BedrockClientTest, ThrottlingIsRetriedUntilSuccess) {
  AddFault({{"kind", "throttle"}, {"operation", "InvokeModel"}, {"count", 2}});
  auto r = client_->InvokeModel(Ask("ping"));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r.value().attempts, 3);
  EXPECT_EQ(sim().CallCount("InvokeModel"), 3);
}

TEST_F(BedrockClientTest, ThrottlingBeyondTheAttemptBudgetFailsWithTheReason) {
  AddFault({{"kind", "throttle"}, {"operation", "InvokeModel"}, {"count", 5}});
  auto r = client_->InvokeModel(Ask("ping"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().aws.code, "ThrottlingException");
  EXPECT_EQ(r.error().aws.http_status, 429);
  EXPECT_TRUE(r.error().retryable);
  EXPECT_EQ(r.error().attempts, 3);
  EXPECT_FALSE(r.error().give_up_reason.empty());
  EXPECT_EQ(sim().CallCount("InvokeModel"), 3);
}

TEST_F(BedrockClientTest, ServerErrorsAreRetried) {
  for (const char* kind : {"internal_error", "service_unavailable", "reset"}) {
    sim().Reset();
    AddFault({{"kind", kind}, {"operation", "InvokeModel"}, {"count", 1}});
    auto r = client_->InvokeModel(Ask("ping"));
    ASSERT_TRUE(r.ok()) << kind << ": " << r.error().ToString();
    // A reset on a reused connection may be resent once by libcurl itself
    // (then the client saw one attempt); either way the emulator saw two calls.
    EXPECT_LE(r.value().attempts, 2) << kind;
    EXPECT_EQ(sim().CallCount("InvokeModel"), 2) << kind;
  }
}

TEST_F(BedrockClientTest, ServerErrorsMapToTheirCodes) {
  struct Case {
    const char* kind;
    const char* code;
    int status;
  };
  for (const Case& c : {Case{"internal_error", "InternalServerException", 500},
                        Case{"service_unavailable", "ServiceUnavailableException", 503}}) {
    sim().Reset();
    AddFault({{"kind", c.kind}, {"operation", "InvokeModel"}, {"count", 3}});
    auto r = client_->InvokeModel(Ask("ping"));
    ASSERT_FALSE(r.ok()) << c.kind;
    EXPECT_EQ(r.error().aws.code, c.code);
    EXPECT_EQ(r.error().aws.http_status, c.status);
    EXPECT_EQ(r.error().origin, ErrorOrigin::kService);
    EXPECT_EQ(sim().CallCount("InvokeModel"), 3) << c.kind;
  }
}

TEST_F(BedrockClientTest, ModelTimeoutIsNotRetried) {
  AddFault({{"kind", "model_timeout"}, {"operation", "InvokeModel"}, {"count", 1}});
  auto r = client_->InvokeModel(Ask("ping"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().aws.code, "ModelTimeoutException");
  EXPECT_EQ(r.error().aws.http_status, 408);
  EXPECT_FALSE(r.error().retryable);
  EXPECT_EQ(r.error().attempts, 1);
  EXPECT_EQ(sim().CallCount("InvokeModel"), 1);
}

TEST_F(BedrockClientTest, ModelNotReadyIsRetriedOnTheRuntimeButNotOnAgents) {
  AddFault({{"kind", "model_not_ready"}, {"operation", "InvokeModel"}, {"count", 1}});
  auto r = client_->InvokeModel(Ask("ping"));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(sim().CallCount("InvokeModel"), 2);

  AddFault({{"kind", "model_not_ready"}, {"operation", "InvokeAgent"}, {"count", 1}});
  auto a = client_->InvokeAgent(AgentAsk("hello"));
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().aws.code, "ModelNotReadyException");
  EXPECT_EQ(a.error().aws.http_status, 424);
  EXPECT_EQ(sim().CallCount("InvokeAgent"), 1);
}

TEST_F(BedrockClientTest, DependencyFailedIsNotRetried) {
  AddFault({{"kind", "dependency_failed"}, {"operation", "InvokeAgent"}, {"count", 1}});
  auto r = client_->InvokeAgent(AgentAsk("hello"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().aws.code, "DependencyFailedException");
  EXPECT_EQ(r.error().aws.http_status, 424);
  EXPECT_FALSE(r.error().retryable);
  EXPECT_EQ(sim().CallCount("InvokeAgent"), 1);
}

TEST_F(BedrockClientTest, StreamExceptionAfterTheFirstEventIsNotRetried) {
  AddFault({{"kind", "stream_exception"},
            {"operation", "InvokeModelWithResponseStream"},
            {"count", 1},
            {"after_events", 1}});
  auto r = client_->InvokeModelWithResponseStream(Ask("Tell me about printers"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().aws.code, "ModelStreamErrorException");
  EXPECT_TRUE(r.error().aws.in_stream);
  EXPECT_EQ(r.error().origin, ErrorOrigin::kStream);
  EXPECT_EQ(r.error().attempts, 1);
  EXPECT_EQ(sim().CallCount("InvokeModelWithResponseStream"), 1);
}

TEST_F(BedrockClientTest, InStreamThrottleIsRetriedOnlyBeforeTheFirstEvent) {
  AddFault({{"kind", "throttle"},
            {"operation", "InvokeModelWithResponseStream"},
            {"in_stream", true},
            {"count", 1},
            {"after_events", 0}});
  auto early = client_->InvokeModelWithResponseStream(Ask("Tell me about printers"));
  ASSERT_TRUE(early.ok()) << early.error().ToString();
  EXPECT_EQ(early.value().attempts, 2);
  EXPECT_EQ(sim().CallCount("InvokeModelWithResponseStream"), 2);

  sim().Reset();
  AddFault({{"kind", "throttle"},
            {"operation", "InvokeModelWithResponseStream"},
            {"in_stream", true},
            {"count", 1},
            {"after_events", 2}});
  std::string streamed;
  auto late = client_->InvokeModelWithResponseStream(Ask("Tell me about printers"),
                                                     [&](const StreamDelta& d) { streamed += d.text; });
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().aws.code, "ThrottlingException");
  EXPECT_TRUE(late.error().aws.in_stream);
  EXPECT_TRUE(late.error().retryable);
  EXPECT_THAT(late.error().give_up_reason, HasSubstr("stream"));
  EXPECT_EQ(sim().CallCount("InvokeModelWithResponseStream"), 1);
}

TEST_F(BedrockClientTest, CorruptFrameIsAHardError) {
  AddFault({{"kind", "bad_crc"}, {"operation", "InvokeModelWithResponseStream"}, {"count", 1}, {"after_events", 0}});
  auto r = client_->InvokeModelWithResponseStream(Ask("Tell me about printers"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().aws.code, "CorruptEventStream");
  EXPECT_EQ(r.error().status.code(), StatusCode::kDataLoss);
  EXPECT_FALSE(r.error().retryable);
  EXPECT_EQ(sim().CallCount("InvokeModelWithResponseStream"), 1);
}

TEST_F(BedrockClientTest, CutStreamIsRetriedOnlyBeforeTheFirstEvent) {
  AddFault({{"kind", "cut_stream"}, {"operation", "ConverseStream"}, {"count", 1}, {"after_events", 0}});
  auto early = client_->ConverseStream(Ask("Tell me about printers"));
  ASSERT_TRUE(early.ok()) << early.error().ToString();
  EXPECT_EQ(sim().CallCount("ConverseStream"), 2);

  sim().Reset();
  AddFault({{"kind", "cut_stream"}, {"operation", "ConverseStream"}, {"count", 1}, {"after_events", 2}});
  auto late = client_->ConverseStream(Ask("Tell me about printers"));
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().origin, ErrorOrigin::kTransport);
  EXPECT_EQ(sim().CallCount("ConverseStream"), 1);
}

TEST_F(BedrockClientTest, StallBeforeTheResponseEndsAtTheIdleTimeout) {
  AddFault({{"kind", "stall"}, {"operation", "InvokeModel"}, {"count", 1}});
  ModelRequest request = Ask("ping");
  request.options.idle_timeout = milliseconds(300);
  request.options.max_attempts = 1;
  auto r = client_->InvokeModel(request);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.error().aws.timeout);
  EXPECT_EQ(r.error().aws.http_status, 0);
  EXPECT_EQ(r.error().origin, ErrorOrigin::kTransport);
  EXPECT_EQ(sim().CallCount("InvokeModel"), 1);
}

TEST_F(BedrockClientTest, StallInsideAStreamEndsAtTheIdleTimeoutWithoutRetry) {
  AddFault({{"kind", "stall"},
            {"operation", "InvokeModelWithResponseStream"},
            {"in_stream", true},
            {"count", 1},
            {"after_events", 2}});
  ModelRequest request = Ask("Tell me about printers");
  request.options.idle_timeout = milliseconds(300);
  auto r = client_->InvokeModelWithResponseStream(request);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.error().aws.timeout);
  EXPECT_THAT(r.error().aws.message, HasSubstr("idle"));
  EXPECT_EQ(sim().CallCount("InvokeModelWithResponseStream"), 1);
}

TEST_F(BedrockClientTest, AttemptTimeoutCutsASlowCallAndLatencyWithinItSucceeds) {
  AddFault({{"kind", "latency"}, {"operation", "InvokeModel"}, {"latency_ms", 150}, {"count", 1}});
  auto ok = client_->InvokeModel(Ask("ping"));
  ASSERT_TRUE(ok.ok()) << ok.error().ToString();

  AddFault({{"kind", "latency"}, {"operation", "InvokeModel"}, {"latency_ms", 1000}, {"count", 1}});
  ModelRequest request = Ask("ping");
  request.options.attempt_timeout = milliseconds(200);
  request.options.max_attempts = 1;
  auto slow = client_->InvokeModel(request);
  ASSERT_FALSE(slow.ok());
  EXPECT_TRUE(slow.error().aws.timeout);
}

TEST_F(BedrockClientTest, OverallDeadlineStopsRetries) {
  BedrockClientOptions o = Options();
  o.random = [] { return 0.99; };  // a throttling retry would wait ~1 s
  auto slow_retry = MakeClient(o);
  AddFault({{"kind", "throttle"}, {"operation", "InvokeModel"}, {"count", 5}});
  ModelRequest request = Ask("ping");
  request.options.overall_deadline = milliseconds(400);
  auto r = slow_retry->InvokeModel(request);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().aws.code, "ThrottlingException");
  EXPECT_THAT(r.error().give_up_reason, HasSubstr("deadline"));
  EXPECT_EQ(sim().CallCount("InvokeModel"), 1);
}

TEST_F(BedrockClientTest, CancelEndsAStalledCall) {
  AddFault({{"kind", "stall"}, {"operation", "InvokeModel"}, {"count", 1}});
  std::promise<BedrockResult<ModelResult>> promise;
  CallHandle handle = client_->InvokeModel(Ask("ping"), [&](BedrockResult<ModelResult> r) {
    promise.set_value(std::move(r));
  });
  // Wait until the request reached the emulator, then cancel.
  while (sim().CallCount("InvokeModel") == 0) std::this_thread::sleep_for(milliseconds(5));
  handle.Cancel();
  auto r = promise.get_future().get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().origin, ErrorOrigin::kCancelled);
  EXPECT_EQ(r.error().status.code(), StatusCode::kCancelled);
  EXPECT_TRUE(handle.done());
}

TEST_F(BedrockClientTest, CancelDuringARetryDelayEndsTheCallWithoutAnotherAttempt) {
  BedrockClientOptions o = Options();
  o.random = [] { return 0.99; };  // the throttling retry would wait ~1 s
  auto slow_retry = MakeClient(o);
  AddFault({{"kind", "throttle"}, {"operation", "InvokeModel"}, {"count", 5}});
  std::promise<BedrockResult<ModelResult>> promise;
  CallHandle handle = slow_retry->InvokeModel(Ask("ping"), [&](BedrockResult<ModelResult> r) {
    promise.set_value(std::move(r));
  });
  while (sim().CallCount("InvokeModel") == 0) std::this_thread::sleep_for(milliseconds(5));
  // Normally one attempt was made (the cancellation lands in the retry delay,
  // or while the throttling answer is being read: the call is cancelled
  // either way); on a machine so loaded that this thread slept through the
  // ~1 s delay, the retry went out first. No attempt may follow the cancellation.
  const int64_t attempts_before_cancel = sim().CallCount("InvokeModel");
  handle.Cancel();
  auto r = promise.get_future().get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().origin, ErrorOrigin::kCancelled);
  EXPECT_EQ(sim().CallCount("InvokeModel"), attempts_before_cancel);
}

TEST_F(BedrockClientTest, DestroyingTheClientCancelsCallsInFlight) {
  AddFault({{"kind", "stall"}, {"operation", "InvokeModel"}, {"count", 1}});
  auto client = MakeClient(Options());
  std::promise<BedrockResult<ModelResult>> promise;
  client->InvokeModel(Ask("ping"), [&](BedrockResult<ModelResult> r) { promise.set_value(std::move(r)); });
  while (sim().CallCount("InvokeModel") == 0) std::this_thread::sleep_for(milliseconds(5));
  client.reset();
  auto future = promise.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  auto r = future.get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().origin, ErrorOrigin::kCancelled);
}

TEST_F(BedrockClientTest, InvalidRequestsFailBeforeSending) {
  ModelRequest empty;
  auto r = client_->InvokeModel(empty);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().origin, ErrorOrigin::kClient);
  EXPECT_EQ(r.error().status.code(), StatusCode::kInvalidArgument);

  InvokeAgentRequest bad = AgentAsk("hello");
  bad.agent_alias_arn = "arn:aws:bedrock:us-east-1:111122223333:agent/HELPDESK01";
  auto a = client_->InvokeAgent(bad);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().origin, ErrorOrigin::kClient);
  EXPECT_EQ(sim().CallCount("InvokeAgent"), 0);

  BedrockClientOptions o = Options();
  o.region = "us-east-1.evil.com";
  EXPECT_FALSE(BedrockClient::Create(o).ok());
}

TEST_F(BedrockClientTest, AThousandConcurrentCallsCompleteCorrectly) {
  constexpr int kCalls = 1000;
  std::mutex mutex;
  std::condition_variable cv;
  int done = 0, ok = 0;
  for (int i = 0; i < kCalls; ++i) {
    client_->InvokeModel(Ask("ping"), [&](BedrockResult<ModelResult> r) {
      std::lock_guard<std::mutex> lock(mutex);
      ++done;
      if (r.ok() && r.value().text.find("pong") != std::string::npos) ++ok;
      cv.notify_one();
    });
  }
  std::unique_lock<std::mutex> lock(mutex);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return done == kCalls; }));
  EXPECT_EQ(ok, kCalls);
  EXPECT_EQ(sim().CallCount("InvokeModel"), kCalls);
}

}  // namespace
}  // namespace quarry::bedrock
