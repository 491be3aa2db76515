#include "sim/emulator.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>

#include "aws/aws_error.h"
#include "aws/eventstream.h"
#include "aws/sigv4.h"
#include "common/encoding.h"

namespace quarry::sim {
namespace {

using nlohmann::json;

constexpr char kHaiku[] = "anthropic.claude-3-haiku-20240307-v1:0";
constexpr char kSonnet37[] = "anthropic.claude-3-7-sonnet-20250219-v1:0";

WallTime Start() {
  WallTime t;
  EXPECT_TRUE(ParseIso8601Utc("2026-03-01T12:00:10Z", &t));
  return t;
}

std::string Header(const net::HttpResponse& r, std::string_view name) {
  for (const auto& [n, v] : r.headers) {
    if (EqualsIgnoreAsciiCase(n, name)) return v;
  }
  return "";
}

std::string AnthropicBody(const std::string& text) {
  return json{{"anthropic_version", "bedrock-2023-05-31"},
              {"max_tokens", 200},
              {"messages", {{{"role", "user"}, {"content", text}}}}}
      .dump();
}

std::vector<aws::Message> Messages(const net::HttpResponse& r) {
  std::string all;
  for (const auto& c : r.chunks) all += c.bytes;
  aws::EventStreamDecoder decoder;
  std::vector<aws::Message> out;
  Status s = decoder.Feed(all, &out);
  (void)s;
  return out;
}

class EmulatorTest : public ::testing::Test {
 protected:
  explicit EmulatorTest(WorldConfig world = DemoWorld()) : clock_(Start()) {
    emulator_ = std::make_unique<Emulator>(std::move(world), clock_);
  }

  net::HttpServerRequest Signed(const std::string& method, const std::string& path, const std::string& query,
                                const std::string& body, const aws::Credentials& creds,
                                const std::string& region = "us-east-1", const std::string& service = "bedrock",
                                std::optional<WallTime> at = std::nullopt) {
    aws::HttpRequest request;
    request.method = method;
    request.path = path;
    request.query = query;
    request.body = body;
    request.headers = {{"Host", "127.0.0.1:8080"},
                       {"Content-Type", service == "sts" ? "application/x-www-form-urlencoded; charset=utf-8"
                                                         : "application/json"}};
    aws::SigningParams params;
    params.credentials = &creds;
    params.region = region;
    params.service = service;
    params.time = at.value_or(clock_.Now());
    Status s = aws::SignRequest(params, request);
    EXPECT_TRUE(s.ok()) << s.ToString();
    net::HttpServerRequest out;
    out.method = method;
    out.target = path + (query.empty() ? "" : "?" + query);
    for (const auto& h : request.headers) out.headers.push_back({h.name, h.value});
    out.body = body;
    return out;
  }
  net::HttpResponse Call(const std::string& method, const std::string& path, const std::string& query = "",
                         const std::string& body = "", const aws::Credentials* creds = nullptr,
                         const std::string& service = "bedrock") {
    return emulator_->Handle(Signed(method, path, query, body, creds ? *creds : demo_, "us-east-1", service));
  }
  net::HttpResponse Invoke(const std::string& model_path, const std::string& body,
                           const aws::Credentials* creds = nullptr, const std::string& op = "invoke") {
    return Call("POST", "/model/" + model_path + "/" + op, "", body, creds);
  }
  static aws::AwsError Error(const net::HttpResponse& r) {
    return aws::ParseRestJsonError("bedrock", r.status, r.headers, r.body);
  }

  FakeClock clock_;
  std::unique_ptr<Emulator> emulator_;
  aws::Credentials demo_{std::string(kDemoAccessKeyId), std::string(kDemoSecretAccessKey)};
  aws::Credentials readonly_{std::string(kDemoRestrictedAccessKeyId), std::string(kDemoRestrictedSecretAccessKey)};
};

TEST_F(EmulatorTest, UnknownPathIsUnknownOperation) {
  net::HttpResponse r = Call("GET", "/nothing/here");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(Error(r).code, "UnknownOperationException");
}

TEST_F(EmulatorTest, AuthFailuresAreAwsErrors) {
  net::HttpServerRequest unsigned_request;
  unsigned_request.method = "GET";
  unsigned_request.target = "/foundation-models";
  unsigned_request.headers = {{"Host", "127.0.0.1:8080"}};
  EXPECT_EQ(Error(emulator_->Handle(unsigned_request)).code, "MissingAuthenticationTokenException");

  aws::Credentials unknown{"AKIAUNKNOWN000000000", "x"};
  EXPECT_EQ(Error(Call("GET", "/foundation-models", "", "", &unknown)).code, "UnrecognizedClientException");
  aws::Credentials wrong{std::string(kDemoAccessKeyId), "wrong"};
  EXPECT_EQ(Error(Call("GET", "/foundation-models", "", "", &wrong)).code, "InvalidSignatureException");

  // Wrong signing name, unserved region, clock skew.
  auto r = emulator_->Handle(Signed("GET", "/foundation-models", "", "", demo_, "us-east-1", "bedrock-runtime"));
  EXPECT_EQ(Error(r).code, "InvalidSignatureException");
  r = emulator_->Handle(Signed("GET", "/foundation-models", "", "", demo_, "eu-west-1"));
  EXPECT_EQ(Error(r).code, "InvalidSignatureException");
  EXPECT_NE(Error(r).message.find("us-east-1, us-west-2"), std::string::npos) << Error(r).message;
  r = emulator_->Handle(
      Signed("GET", "/foundation-models", "", "", demo_, "us-east-1", "bedrock", clock_.Now() - std::chrono::minutes(20)));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(Error(r).code, "InvalidSignatureException");
}

TEST_F(EmulatorTest, InvokeModelReturnsClaudeMessageAndTokenHeaders) {
  net::HttpResponse r = Invoke("anthropic.claude-3-haiku-20240307-v1%3A0", AnthropicBody("ping"));
  ASSERT_EQ(r.status, 200) << r.body;
  json body = json::parse(r.body);
  EXPECT_EQ(body["type"], "message");
  EXPECT_NE(body.dump().find("pong"), std::string::npos);  // the demo's reply rule
  EXPECT_FALSE(Header(r, "X-Amzn-Bedrock-Input-Token-Count").empty());
  EXPECT_FALSE(Header(r, "X-Amzn-Bedrock-Output-Token-Count").empty());
  EXPECT_FALSE(Header(r, "x-amzn-RequestId").empty());
  EXPECT_EQ(emulator_->CallCount("InvokeModel"), 1);
}

TEST_F(EmulatorTest, ProfileArnWithEncodedSlashRoutesAsOneSegment) {
  std::string arn = "arn:aws:bedrock:us-east-1:111122223333:inference-profile/us." + std::string(kSonnet37);
  net::HttpResponse r = Invoke(UriEncode(arn), AnthropicBody("hello"));
  EXPECT_EQ(r.status, 200) << r.body;
  r = Invoke(UriEncode("us." + std::string(kSonnet37)), AnthropicBody("hello"), nullptr, "converse");
  EXPECT_EQ(r.status, 400);  // an Anthropic body on Converse is a validation error
  EXPECT_EQ(Error(r).code, "ValidationException");
}

TEST_F(EmulatorTest, RuntimeErrorsMatchBedrock) {
  net::HttpResponse r = Invoke(UriEncode(kSonnet37), AnthropicBody("hi"));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(Error(r).message.find("with on-demand throughput isn\xE2\x80\x99t supported"), std::string::npos);
  r = Invoke(UriEncode("anthropic.claude-unknown-v1:0"), AnthropicBody("hi"));
  EXPECT_EQ(Error(r).message, "The provided model identifier is invalid.");
  r = Invoke(UriEncode("anthropic.claude-3-opus-20240229-v1:0"), AnthropicBody("hi"));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(Error(r).message, "You don't have access to the model with the specified model ID.");
  r = Invoke(UriEncode("amazon.titan-text-express-v1"), AnthropicBody("hi"));
  EXPECT_NE(Error(r).message.find("only models Anthropic Claude"), std::string::npos);
  r = Invoke(UriEncode(kHaiku), R"({"anthropic_version":"bedrock-2023-05-31"})");
  EXPECT_EQ(Error(r).code, "ValidationException");
  r = Invoke(UriEncode("us." + std::string(kSonnet37)), AnthropicBody("hi"), &readonly_);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(Error(r).message,
            "User: arn:aws:iam::111122223333:user/quarry-readonly is not authorized to perform: bedrock:InvokeModel on "
            "resource: arn:aws:bedrock:us-east-1:111122223333:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-"
            "v1:0 because no identity-based policy allows the bedrock:InvokeModel action");
}

TEST_F(EmulatorTest, StreamsAreEventStreamsOfChunks) {
  net::HttpResponse r = Invoke(UriEncode(kHaiku), AnthropicBody("hello"), nullptr, "invoke-with-response-stream");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(r.chunked);
  EXPECT_EQ(Header(r, "X-Amzn-Bedrock-Content-Type"), "application/json");
  std::vector<aws::Message> messages = Messages(r);
  ASSERT_GE(messages.size(), 3u);
  EXPECT_EQ(aws::GetEventType(messages[0]).value_or(""), "chunk");
  json first = json::parse(Base64Decode(json::parse(messages[0].payload)["bytes"].get<std::string>()).value());
  EXPECT_EQ(first["type"], "message_start");

  std::string converse = R"({"messages":[{"role":"user","content":[{"text":"hello"}]}]})";
  r = Invoke(UriEncode(kHaiku), converse, nullptr, "converse-stream");
  messages = Messages(r);
  ASSERT_FALSE(messages.empty());
  EXPECT_EQ(aws::GetEventType(messages.front()).value_or(""), "messageStart");
  EXPECT_EQ(aws::GetEventType(messages.back()).value_or(""), "metadata");
}

TEST_F(EmulatorTest, ControlPlaneShapesAndFilters) {
  json all = json::parse(Call("GET", "/foundation-models").body)["modelSummaries"];
  EXPECT_EQ(all.size(), 6u);
  json anthropic = json::parse(Call("GET", "/foundation-models", "byProvider=anthropic").body)["modelSummaries"];
  EXPECT_EQ(anthropic.size(), 5u);
  json on_demand = json::parse(Call("GET", "/foundation-models", "byInferenceType=ON_DEMAND").body)["modelSummaries"];
  EXPECT_EQ(on_demand.size(), 4u);
  EXPECT_EQ(Error(Call("GET", "/foundation-models", "byOutputModality=text")).code, "ValidationException");
  json details = json::parse(Call("GET", "/foundation-models/" + UriEncode(kHaiku)).body)["modelDetails"];
  EXPECT_EQ(details["modelArn"], "arn:aws:bedrock:us-east-1::foundation-model/" + std::string(kHaiku));
  EXPECT_EQ(details["modelLifecycle"]["status"], "ACTIVE");

  json page1 = json::parse(Call("GET", "/inference-profiles", "maxResults=3").body);
  ASSERT_EQ(page1["inferenceProfileSummaries"].size(), 3u);
  ASSERT_TRUE(page1.contains("nextToken"));
  json page2 = json::parse(
      Call("GET", "/inference-profiles", "maxResults=3&nextToken=" + UriEncode(page1["nextToken"].get<std::string>())).body);
  EXPECT_EQ(page2["inferenceProfileSummaries"].size(), 1u);
  EXPECT_FALSE(page2.contains("nextToken"));
  EXPECT_EQ(Error(Call("GET", "/inference-profiles", "maxResults=0")).code, "ValidationException");
  json apps = json::parse(Call("GET", "/inference-profiles", "type=APPLICATION").body)["inferenceProfileSummaries"];
  ASSERT_EQ(apps.size(), 1u);
  EXPECT_EQ(apps[0]["type"], "APPLICATION");
  json profile = json::parse(Call("GET", "/inference-profiles/" + UriEncode("us." + std::string(kSonnet37))).body);
  EXPECT_EQ(profile["inferenceProfileArn"],
            "arn:aws:bedrock:us-east-1:111122223333:inference-profile/us." + std::string(kSonnet37));
  EXPECT_EQ(Call("GET", "/inference-profiles/nope").status, 404);
}

TEST_F(EmulatorTest, AgentControlPlane) {
  json agent = json::parse(Call("GET", "/agents/HELPDESK01/").body)["agent"];
  EXPECT_EQ(agent["agentName"], "it-helpdesk");
  EXPECT_EQ(agent["agentArn"], "arn:aws:bedrock:us-east-1:111122223333:agent/HELPDESK01");
  json alias = json::parse(Call("GET", "/agents/HELPDESK01/agentaliases/PRODALIAS1/").body)["agentAlias"];
  EXPECT_EQ(alias["routingConfiguration"][0]["agentVersion"], "1");
  json unbound = json::parse(Call("GET", "/agents/HELPDESK01/agentaliases/NOVERSION1/").body)["agentAlias"];
  EXPECT_TRUE(unbound["routingConfiguration"].empty());
  json list = json::parse(Call("POST", "/agents/HELPDESK01/agentaliases/", "", "{}").body);
  EXPECT_EQ(list["agentAliasSummaries"].size(), 3u);
  EXPECT_EQ(Call("GET", "/agents/NOSUCHAGNT/").status, 404);
}

TEST_F(EmulatorTest, InvokeAgentStreamsEventsWithHeaders) {
  net::HttpResponse r = Call("POST", "/agents/HELPDESK01/agentAliases/PRODALIAS1/sessions/s-1/text", "",
                             R"({"inputText":"My VPN keeps disconnecting","enableTrace":true})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Header(r, "x-amz-bedrock-agent-session-id"), "s-1");
  EXPECT_EQ(Header(r, "x-amzn-bedrock-agent-content-type"), "application/json");
  bool chunk = false;
  for (const aws::Message& m : Messages(r)) {
    EXPECT_EQ(aws::GetMessageType(m), aws::MessageType::kEvent);
    chunk = chunk || aws::GetEventType(m).value_or("") == "chunk";
  }
  EXPECT_TRUE(chunk);
  r = Call("POST", "/agents/HELPDESK01/agentAliases/ZZZZZZZZZZ/sessions/s-1/text", "", R"({"inputText":"hi"})");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(Error(r).code, "ResourceNotFoundException");
  r = emulator_->Handle(Signed("POST", "/agents/HELPDESK01/agentAliases/PRODALIAS1/sessions/s-1/text", "",
                               R"({"inputText":"hi"})", readonly_));
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(Error(r).message.find("with an explicit deny"), std::string::npos);
}

TEST_F(EmulatorTest, TheDemoAgentHandsBackControlWhenAskedToOpenATicketNotWhenOneIsMentioned) {
  auto events = [&](const std::string& input, const std::string& session) {
    net::HttpResponse r = Call("POST", "/agents/HELPDESK01/agentAliases/PRODALIAS1/sessions/" + session + "/text", "",
                               json{{"inputText", input}}.dump());
    EXPECT_EQ(r.status, 200) << r.body;
    std::set<std::string> types;
    for (const aws::Message& m : Messages(r)) types.emplace(aws::GetEventType(m).value_or(""));
    return types;
  };
  EXPECT_TRUE(events("My monitor flickers, please open a ticket", "s-open").count("returnControl"));
  EXPECT_TRUE(events("Create a ticket: the printer on floor 3 jams", "s-create").count("returnControl"));
  const std::set<std::string> drafted = events("Draft a short reply to this ticket: my VPN keeps disconnecting", "s-draft");
  EXPECT_FALSE(drafted.count("returnControl"));
  EXPECT_TRUE(drafted.count("chunk"));
}

TEST_F(EmulatorTest, BearerKeysWorkForRuntimeOnly) {
  net::HttpServerRequest request;
  request.method = "POST";
  request.target = "/model/" + UriEncode(kHaiku) + "/invoke";
  request.headers = {{"Host", "127.0.0.1:8080"}, {"Authorization", "Bearer " + std::string(kDemoApiKey)}};
  request.body = AnthropicBody("ping");
  EXPECT_EQ(emulator_->Handle(request).status, 200);
  request.target = "/agents/HELPDESK01/agentAliases/PRODALIAS1/sessions/s-1/text";
  request.body = R"({"inputText":"hi"})";
  net::HttpResponse r = emulator_->Handle(request);
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(Error(r).message.find("sign the request with SigV4"), std::string::npos);
  request.headers[1].second = "Bearer wrong";
  request.method = "GET";
  request.target = "/foundation-models";
  EXPECT_EQ(Error(emulator_->Handle(request)).code, "UnrecognizedClientException");
}

TEST_F(EmulatorTest, StsCallerIdentityAssumeRoleAndExpiry) {
  net::HttpResponse r = Call("POST", "/", "", "Action=GetCallerIdentity&Version=2011-06-15", nullptr, "sts");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\""), std::string::npos);
  EXPECT_EQ(aws::internal::FindXmlElementText(r.body, "Account").value_or(""), "111122223333");

  r = Call("POST", "/", "",
           "Action=AssumeRole&Version=2011-06-15&RoleArn=" + UriEncode(std::string(kDemoRoleArn)) +
               "&RoleSessionName=s1&DurationSeconds=900",
           nullptr, "sts");
  ASSERT_EQ(r.status, 200) << r.body;
  aws::Credentials temp{aws::internal::FindXmlElementText(r.body, "AccessKeyId").value_or(""),
                        aws::internal::FindXmlElementText(r.body, "SecretAccessKey").value_or(""),
                        aws::internal::FindXmlElementText(r.body, "SessionToken").value_or("")};
  r = Invoke(UriEncode(kHaiku), AnthropicBody("ping"), &temp);
  EXPECT_EQ(r.status, 200) << r.body;
  clock_.Advance(std::chrono::seconds(901));
  r = Invoke(UriEncode(kHaiku), AnthropicBody("ping"), &temp);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Error(r).code, "ExpiredTokenException");
  EXPECT_EQ(Error(r).message, "The security token included in the request is expired");

  r = Call("POST", "/", "",
           "Action=AssumeRole&Version=2011-06-15&RoleArn=" + UriEncode(std::string(kDemoRoleArn)) + "&RoleSessionName=s1",
           &readonly_, "sts");
  EXPECT_EQ(r.status, 403);
  aws::AwsError e = aws::ParseStsXmlError(r.status, r.headers, r.body);
  EXPECT_EQ(e.code, "AccessDenied");
  r = Call("POST", "/", "", "Action=Nope&Version=2011-06-15", nullptr, "sts");
  EXPECT_EQ(aws::ParseStsXmlError(r.status, r.headers, r.body).code, "InvalidAction");
}

TEST_F(EmulatorTest, AdminEndpointCountsLogsAndResets) {
  Invoke(UriEncode(kHaiku), AnthropicBody("ping"));
  Invoke(UriEncode(kSonnet37), AnthropicBody("ping"));
  json counters = emulator_->CountersJson();
  EXPECT_EQ(counters["total"], 2);
  EXPECT_EQ(counters["operations"]["InvokeModel"]["ok"], 1);
  EXPECT_EQ(counters["operations"]["InvokeModel"]["ValidationException"], 1);
  net::HttpServerRequest admin;
  admin.method = "GET";
  admin.target = "/_quarry/requests";
  json log = json::parse(emulator_->Handle(admin).body)["requests"];
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[1]["error_code"], "ValidationException");
  EXPECT_EQ(log[1]["outcome"], "ValidationException");
  EXPECT_EQ(log[1]["status"], 400);
  EXPECT_EQ(log[0]["identity"], "arn:aws:iam::111122223333:user/quarry-demo");
  // Every field of an entry, as the admin endpoint documents them.
  EXPECT_EQ(log[0]["operation"], "InvokeModel");
  EXPECT_EQ(log[0]["region"], "us-east-1");
  EXPECT_EQ(log[0]["model"], kHaiku);
  EXPECT_EQ(log[0]["status"], 200);
  EXPECT_EQ(log[0]["outcome"], "ok");
  EXPECT_EQ(log[0]["error_code"], "");
  EXPECT_EQ(log[0]["target"], kHaiku);
  EXPECT_EQ(log[0]["request_id"].get<std::string>().size(), 36u) << log[0];
  EXPECT_EQ(log[0]["time"].get<std::string>().back(), 'Z') << log[0];
  admin.method = "POST";
  admin.target = "/_quarry/faults";
  admin.body = "{not json";
  EXPECT_EQ(emulator_->Handle(admin).status, 400);
  admin.body = R"({"kind":"explode"})";
  EXPECT_EQ(emulator_->Handle(admin).status, 400);
  admin.target = "/_quarry/reset";
  admin.body.clear();
  EXPECT_EQ(emulator_->Handle(admin).status, 200);
  EXPECT_EQ(emulator_->CountersJson()["total"], 0);
  admin.method = "GET";
  admin.target = "/_quarry/healthz";
  EXPECT_EQ(emulator_->Handle(admin).status, 200);
}

// ---- faults: each kind's script ----

class FaultTest : public EmulatorTest {
 protected:
  void Add(const json& rule) {
    auto parsed = ParseFaultRule(rule, "$.f");
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    emulator_->AddFault(parsed.value());
  }
  net::HttpResponse Haiku(const std::string& op = "invoke") {
    std::string body = op.rfind("converse", 0) == 0 ? R"({"messages":[{"role":"user","content":[{"text":"hello"}]}]})"
                                                     : AnthropicBody("hello");
    return Invoke(UriEncode(kHaiku), body, nullptr, op);
  }
  net::HttpResponse Agent() {
    return Call("POST", "/agents/HELPDESK01/agentAliases/PRODALIAS1/sessions/s-1/text", "", R"({"inputText":"printer"})");
  }
};

TEST_F(FaultTest, ErrorFaultsMapToModelledErrors) {
  Add({{"kind", "throttle"}, {"operation", "InvokeModel"}, {"count", 1}});
  Add({{"kind", "internal_error"}, {"count", 1}});
  Add({{"kind", "service_unavailable"}, {"count", 1}});
  Add({{"kind", "model_timeout"}, {"count", 1}});
  Add({{"kind", "model_not_ready"}, {"count", 1}});
  struct Expect { int status; std::string code; };
  for (const Expect& e : {Expect{429, "ThrottlingException"}, Expect{500, "InternalServerException"},
                          Expect{503, "ServiceUnavailableException"}, Expect{408, "ModelTimeoutException"},
                          Expect{429, "ModelNotReadyException"}, Expect{200, ""}}) {
    net::HttpResponse r = Haiku();
    EXPECT_EQ(r.status, e.status);
    if (!e.code.empty()) {
      EXPECT_EQ(Error(r).code, e.code);
    }
  }
  EXPECT_EQ(Error(Haiku()).message, "");  // all consumed
  Add({{"kind", "model_not_ready"}, {"operation", "InvokeAgent"}, {"count", 1}});
  Add({{"kind", "dependency_failed"}, {"operation", "InvokeAgent"}, {"count", 1}});
  EXPECT_EQ(Agent().status, 424);
  net::HttpResponse r = Agent();
  EXPECT_EQ(Error(r).code, "DependencyFailedException");
  EXPECT_EQ(Error(r).Field("resourceName").value_or(""), "Lambda");
}

TEST_F(FaultTest, ConnectionFaultsAreScripts) {
  Add({{"kind", "stall"}, {"count", 1}});
  EXPECT_EQ(Haiku().start, net::ResponseStart::kStallForever);
  Add({{"kind", "reset"}, {"count", 1}});
  EXPECT_EQ(Haiku().start, net::ResponseStart::kResetConnection);
  EXPECT_EQ(emulator_->CountersJson()["operations"]["InvokeModel"]["ConnectionReset"], 1);
}

TEST_F(FaultTest, LatencyFirstByteAndChunkDelays) {
  Add({{"kind", "latency"}, {"latency_ms", 250}, {"count", 1}});
  EXPECT_EQ(Haiku().delay, std::chrono::milliseconds(250));
  Add({{"kind", "latency"}, {"first_byte_ms", 300}, {"chunk_delay_ms", 20}, {"count", 1}});
  net::HttpResponse r = Haiku("invoke-with-response-stream");
  EXPECT_EQ(r.delay, std::chrono::milliseconds(300));
  ASSERT_GE(r.chunks.size(), 2u);
  EXPECT_EQ(r.chunks[0].delay, std::chrono::milliseconds(0));
  EXPECT_EQ(r.chunks[1].delay, std::chrono::milliseconds(20));
  // Heavy tail: deterministic for the seed, around the median, bounded.
  Add({{"kind", "latency"}, {"median_ms", 100}, {"p99_ms", 1000}, {"operation", "GetFoundationModel"}});
  std::vector<int64_t> delays;
  for (int i = 0; i < 50; ++i) delays.push_back(Call("GET", "/foundation-models/" + UriEncode(kHaiku)).delay.count());
  std::sort(delays.begin(), delays.end());
  EXPECT_GT(delays[25], 30);
  EXPECT_LT(delays[25], 300);
  EXPECT_LE(delays.back(), 10000);
}

TEST_F(FaultTest, StreamFaultsBreakTheStreamMidway) {
  Add({{"kind", "throttle"}, {"in_stream", true}, {"after_events", 2}, {"count", 1}});
  std::vector<aws::Message> m = Messages(Haiku("converse-stream"));
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(aws::GetMessageType(m[2]), aws::MessageType::kException);
  EXPECT_EQ(aws::GetExceptionType(m[2]).value_or(""), "throttlingException");

  Add({{"kind", "stream_exception"}, {"count", 1}});
  m = Messages(Haiku("invoke-with-response-stream"));
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(aws::GetExceptionType(m[1]).value_or(""), "modelStreamErrorException");

  Add({{"kind", "bad_crc"}, {"count", 1}});
  net::HttpResponse r = Haiku("invoke-with-response-stream");
  std::string all;
  for (const auto& c : r.chunks) all += c.bytes;
  auto decoded = aws::DecodeMessages(all);
  ASSERT_FALSE(decoded.ok());
  EXPECT_NE(decoded.status().message().find("MessageChecksumMismatch"), std::string::npos);

  Add({{"kind", "cut_stream"}, {"count", 1}});
  r = Haiku("invoke-with-response-stream");
  EXPECT_EQ(r.end, net::ResponseEnd::kCloseConnection);
  all.clear();
  for (const auto& c : r.chunks) all += c.bytes;
  aws::EventStreamDecoder decoder;
  std::vector<aws::Message> out;
  EXPECT_TRUE(decoder.Feed(all, &out).ok());
  EXPECT_FALSE(decoder.Finish().ok());

  Add({{"kind", "stream_exception"}, {"operation", "InvokeAgent"}, {"exception_type", "dependencyFailedException"},
       {"after_events", 0}, {"count", 1}});
  m = Messages(Agent());
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(aws::GetExceptionType(m[0]).value_or(""), "dependencyFailedException");
}

TEST_F(FaultTest, RateFaultsAreDeterministicForTheSeed) {
  auto count_throttles = [&] {
    emulator_ = std::make_unique<Emulator>(DemoWorld(), clock_);
    Add({{"kind", "throttle"}, {"rate", 0.3}, {"operation", "ListFoundationModels"}});
    std::string pattern;
    for (int i = 0; i < 40; ++i) pattern += Call("GET", "/foundation-models").status == 429 ? 'T' : '.';
    return pattern;
  };
  std::string first = count_throttles();
  EXPECT_EQ(first, count_throttles());
  size_t throttled = std::count(first.begin(), first.end(), 'T');
  EXPECT_GT(throttled, 3u);
  EXPECT_LT(throttled, 25u);
}

class QuotaTest : public EmulatorTest {
 protected:
  static WorldConfig World() {
    json doc = json::parse(DemoWorldConfigText());
    doc["quotas"] = {{{"account", "*"}, {"model", std::string(kHaiku)}, {"requests_per_minute", 2}},
                     {{"model", std::string(kSonnet37)}, {"tokens_per_minute", 1}}};
    return ParseWorldConfig(doc.dump()).value();
  }
  QuotaTest() : EmulatorTest(World()) {}
};

TEST_F(QuotaTest, RequestsAndTokensPerMinuteThrottle) {
  EXPECT_EQ(Invoke(UriEncode(kHaiku), AnthropicBody("a")).status, 200);
  EXPECT_EQ(Invoke(UriEncode(kHaiku), AnthropicBody("b")).status, 200);
  net::HttpResponse r = Invoke(UriEncode(kHaiku), AnthropicBody("c"));
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(Error(r).message, "Too many requests, please wait before trying again.");
  r = Invoke(UriEncode(kHaiku), AnthropicBody("c"), nullptr, "invoke-with-response-stream");
  EXPECT_EQ(r.status, 429);  // before the stream starts
  EXPECT_FALSE(r.chunked);
  clock_.Advance(std::chrono::seconds(60));
  EXPECT_EQ(Invoke(UriEncode(kHaiku), AnthropicBody("d")).status, 200);

  std::string profile = UriEncode("us." + std::string(kSonnet37));
  EXPECT_EQ(Invoke(profile, AnthropicBody("tokens")).status, 200);
  EXPECT_EQ(Invoke(profile, AnthropicBody("tokens")).status, 429);
  clock_.Advance(std::chrono::seconds(60));
  EXPECT_EQ(Invoke(profile, AnthropicBody("tokens")).status, 200);
}

}  // namespace
}  // namespace quarry::sim
