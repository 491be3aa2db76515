// Process-level tests of `quarry bedrock`: the real executable against a real
// `quarry sim` child (demo world, port 0), as a person would run them.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/encoding.h"
#include "tests/support/process.h"
#include "tests/support/sim_process.h"
#include "tests/support/scratch_dir.h"
#include "tests/support/tls_test_server.h"

namespace quarry::testing {
namespace {

using nlohmann::json;

constexpr char kHaiku[] = "anthropic.claude-3-haiku-20240307-v1:0";
constexpr char kReadOnlyKey[] = "AKIAQUARRYREADONLY01";
constexpr char kReadOnlySecret[] = "quarryReadOnlySecret00000000000000000001";

class BedrockCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    sim_ = new SimProcess();
    ASSERT_TRUE(sim_->Start(QUARRY_BINARY)) << "quarry sim did not start";
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(sim_->Stop(), 0);
    delete sim_;
    sim_ = nullptr;
  }
  void SetUp() override {
    // Each test starts from a clean emulator (faults, counters, sessions).
    Admin("DELETE", "/_quarry/faults");
    Admin("POST", "/_quarry/reset");
  }

  static std::string Url() { return sim_->var("URL"); }
  static std::string AliasArn() { return sim_->var("AGENT_ALIAS_ARN"); }

  // Runs `quarry bedrock ARGS --endpoint-url SIM` (or `endpoint_url`) with
  // only the given credentials in the environment (no shared files, no stray
  // variables).
  static ProcessResult Bedrock(std::vector<std::string> args, const std::string& key = "",
                               const std::string& secret = "", std::vector<std::string> extra_env = {},
                               const std::string& endpoint_url = "") {
    std::vector<std::string> argv = {"env", "-i", "PATH=/usr/bin:/bin", "HOME=/nonexistent",
                                     "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null"};
    argv.push_back("AWS_ACCESS_KEY_ID=" + (key.empty() ? sim_->var("AWS_ACCESS_KEY_ID") : key));
    argv.push_back("AWS_SECRET_ACCESS_KEY=" + (secret.empty() ? sim_->var("AWS_SECRET_ACCESS_KEY") : secret));
    for (std::string& e : extra_env) argv.push_back(std::move(e));
    argv.push_back("timeout");
    argv.push_back("60");
    argv.push_back(QUARRY_BINARY);
    argv.push_back("bedrock");
    for (std::string& a : args) argv.push_back(std::move(a));
    argv.push_back("--endpoint-url");
    argv.push_back(endpoint_url.empty() ? Url() : endpoint_url);
    return RunProcess(argv);
  }

  static ProcessResult Admin(const std::string& method, const std::string& path, const std::string& body = "") {
    std::vector<std::string> argv = {"curl", "-sS", "-X", method, Url() + path};
    if (!body.empty()) {
      argv.insert(argv.end(), {"-H", "Content-Type: application/json", "--data-binary", body});
    }
    return RunProcess(argv);
  }

  static json ParseStdout(const ProcessResult& r) {
    json j = json::parse(r.stdout_text, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "stdout is not JSON: " << r.stdout_text;
    return j;
  }

  static SimProcess* sim_;
};

SimProcess* BedrockCliTest::sim_ = nullptr;

TEST_F(BedrockCliTest, WhoamiPrintsTheCallerIdentityAndWhereTheCredentialsCameFrom) {
  ProcessResult r = Bedrock({"whoami", "--region", "us-east-1"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  json j = ParseStdout(r);
  EXPECT_EQ(j["account"], "111122223333");
  EXPECT_EQ(j["arn"], "arn:aws:iam::111122223333:user/quarry-demo");
  EXPECT_FALSE(j["user_id"].get<std::string>().empty());
  EXPECT_EQ(j["region"], "us-east-1");
  EXPECT_FALSE(j["credentials_source"].get<std::string>().empty());
}

TEST_F(BedrockCliTest, WhoamiWithAnAssumeRoleProfileCallsStsAssumeRoleFirst) {
  ScratchDir dir;
  const std::string config = dir.Write("config",
                                       "[profile src]\nregion = us-east-1\n"
                                       "[profile invoker]\nrole_arn = arn:aws:iam::111122223333:role/quarry-invoker\n"
                                       "source_profile = src\nregion = us-east-1\n");
  const std::string credentials = dir.Write("credentials",
                                            "[src]\naws_access_key_id = " + sim_->var("AWS_ACCESS_KEY_ID") +
                                                "\naws_secret_access_key = " + sim_->var("AWS_SECRET_ACCESS_KEY") + "\n");
  ProcessResult r = RunProcess({"env", "-i", "PATH=/usr/bin:/bin", "HOME=/nonexistent", "AWS_CONFIG_FILE=" + config,
                                "AWS_SHARED_CREDENTIALS_FILE=" + credentials, "timeout", "60", QUARRY_BINARY, "bedrock",
                                "whoami", "--profile", "invoker", "--endpoint-url", Url()});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  json j = ParseStdout(r);
  EXPECT_EQ(j["arn"].get<std::string>().rfind("arn:aws:sts::111122223333:assumed-role/quarry-invoker/", 0), 0u)
      << r.stdout_text;
  EXPECT_NE(j["credentials_source"].get<std::string>().find("invoker"), std::string::npos) << r.stdout_text;
  EXPECT_EQ(j["region"], "us-east-1");
}

TEST_F(BedrockCliTest, NoCredentialsAnywhereFailsBeforeAnyRequest) {
  ProcessResult r = RunProcess({"env", "-i", "PATH=/usr/bin:/bin", "HOME=/nonexistent", "AWS_CONFIG_FILE=/dev/null",
                                "AWS_SHARED_CREDENTIALS_FILE=/dev/null", QUARRY_BINARY, "bedrock", "whoami", "--region",
                                "us-east-1", "--endpoint-url", Url()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(r.stdout_text.empty());
  EXPECT_NE(r.stderr_text.find("AWS_ACCESS_KEY_ID"), std::string::npos) << r.stderr_text;
}

TEST_F(BedrockCliTest, ModelsListsClaudeTargetsByDefaultAndEverythingWithAll) {
  ProcessResult r = Bedrock({"models", "--region", "us-east-1"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  json j = ParseStdout(r);
  ASSERT_TRUE(j["targets"].is_array());
  bool haiku = false;
  for (const json& t : j["targets"]) {
    EXPECT_EQ(t["provider"], "Anthropic") << t.dump();
    if (t["id"] == kHaiku) haiku = true;
  }
  EXPECT_TRUE(haiku) << r.stdout_text;

  ProcessResult all = Bedrock({"models", "--all", "--region", "us-east-1"});
  ASSERT_EQ(all.exit_code, 0) << all.stderr_text;
  EXPECT_NE(all.stdout_text.find("amazon.titan-text-express"), std::string::npos);
  EXPECT_EQ(r.stdout_text.find("amazon.titan-text-express"), std::string::npos);
}

TEST_F(BedrockCliTest, InvokeModelPrintsTextStopReasonAndUsage) {
  ProcessResult r = Bedrock({"invoke-model", "--region", "us-east-1", "--model", kHaiku, "--prompt", "Say hello",
                             "--system", "Be brief.", "--max-tokens", "200", "--temperature", "0.5"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  json j = ParseStdout(r);
  EXPECT_EQ(j["api"], "InvokeModel");
  EXPECT_FALSE(j["text"].get<std::string>().empty());
  EXPECT_EQ(j["content"][0]["type"], "text");
  EXPECT_FALSE(j["stop_reason"].get<std::string>().empty());
  EXPECT_GT(j["usage"]["input_tokens"].get<int>(), 0);
  EXPECT_GT(j["usage"]["output_tokens"].get<int>(), 0);
  EXPECT_TRUE(r.stderr_text.empty()) << r.stderr_text;
}

TEST_F(BedrockCliTest, InvokeModelStreamPrintsExactlyTheTextOfTheJsonResult) {
  ProcessResult full = Bedrock({"invoke-model", "--region", "us-east-1", "--model", kHaiku, "--prompt", "Tell me a story"});
  ASSERT_EQ(full.exit_code, 0) << full.stderr_text;
  ProcessResult streamed = Bedrock({"invoke-model", "--region", "us-east-1", "--model", kHaiku, "--prompt",
                                    "Tell me a story", "--stream"});
  ASSERT_EQ(streamed.exit_code, 0) << streamed.stderr_text;
  EXPECT_EQ(streamed.stdout_text, ParseStdout(full)["text"].get<std::string>());

  ProcessResult streamed_json = Bedrock({"invoke-model", "--region", "us-east-1", "--model", kHaiku, "--prompt",
                                         "Tell me a story", "--stream", "--json"});
  ASSERT_EQ(streamed_json.exit_code, 0) << streamed_json.stderr_text;
  EXPECT_EQ(ParseStdout(streamed_json)["api"], "InvokeModelWithResponseStream");
  EXPECT_EQ(ParseStdout(streamed_json)["text"], ParseStdout(full)["text"]);
}

TEST_F(BedrockCliTest, InvokeModelWithConverseAndConverseStream) {
  ProcessResult r = Bedrock({"invoke-model", "--region", "us-east-1", "--model", kHaiku, "--prompt", "Hi", "--converse"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  json j = ParseStdout(r);
  EXPECT_EQ(j["api"], "Converse");
  EXPECT_FALSE(j["text"].get<std::string>().empty());
  ProcessResult s = Bedrock({"invoke-model", "--region", "us-east-1", "--model", kHaiku, "--prompt", "Hi", "--converse",
                             "--stream"});
  ASSERT_EQ(s.exit_code, 0) << s.stderr_text;
  EXPECT_EQ(s.stdout_text, j["text"].get<std::string>());
}

TEST_F(BedrockCliTest, InvokeAgentAnswersWithCitationsAndTraces) {
  ProcessResult r = Bedrock({"invoke-agent", "--alias-arn", AliasArn(), "--prompt", "How do I reset my VPN password?",
                             "--session-id", "cli-test-1", "--trace", "--end-session"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  json j = ParseStdout(r);
  EXPECT_FALSE(j["completion"].get<std::string>().empty());
  EXPECT_TRUE(j["citations"].is_array());
  EXPECT_GT(j["traces"].get<int>(), 0);
  EXPECT_EQ(j["session_id"], "cli-test-1");
}

TEST_F(BedrockCliTest, InvokeAgentStreamPrintsTheCompletionText) {
  ProcessResult full = Bedrock({"invoke-agent", "--alias-arn", AliasArn(), "--prompt", "My printer is jammed",
                                "--session-id", "cli-test-2"});
  ASSERT_EQ(full.exit_code, 0) << full.stderr_text;
  ProcessResult streamed = Bedrock({"invoke-agent", "--alias-arn", AliasArn(), "--prompt", "My printer is jammed",
                                    "--session-id", "cli-test-3", "--stream"});
  ASSERT_EQ(streamed.exit_code, 0) << streamed.stderr_text;
  EXPECT_FALSE(streamed.stdout_text.empty());
  EXPECT_EQ(streamed.stdout_text, ParseStdout(full)["completion"].get<std::string>());
}

TEST_F(BedrockCliTest, InvokeAgentReportsReturnOfControl) {
  ProcessResult r = Bedrock({"invoke-agent", "--alias-arn", AliasArn(), "--prompt",
                             "Please open a ticket: my laptop will not boot", "--session-id", "cli-test-4"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  json j = ParseStdout(r);
  ASSERT_TRUE(j.contains("return_control")) << r.stdout_text;
  EXPECT_EQ(j["return_control"]["invocations"][0]["function"], "create_ticket");
}

TEST_F(BedrockCliTest, InvokeAgentReportsAnApiSchemaReturnOfControl) {
  ProcessResult r = Bedrock({"invoke-agent", "--alias-arn", AliasArn(), "--prompt",
                             "Please file a repair request for asset LAP-0042: the screen flickers", "--session-id",
                             "cli-test-api"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  json j = ParseStdout(r);
  ASSERT_TRUE(j.contains("return_control")) << r.stdout_text;
  // One list, as the chat API shows it: the API operation is its entry.
  ASSERT_EQ(j["return_control"]["invocations"].size(), 1u) << r.stdout_text;
  EXPECT_FALSE(j["return_control"].contains("api_invocations"));
  const json& api = j["return_control"]["invocations"][0];
  EXPECT_FALSE(api.contains("function"));
  EXPECT_EQ(api["action_group"], "assets");
  EXPECT_EQ(api["http_method"], "POST");
  EXPECT_EQ(api["api_path"], "/assets/{assetId}/repairs");
  EXPECT_EQ(api["parameters"][0]["value"], "LAP-0042");
  EXPECT_EQ(api["request_body"]["application/json"].size(), 2u) << r.stdout_text;
  EXPECT_EQ(api["action_invocation_type"], "RESULT");
}

TEST_F(BedrockCliTest, InvokeAgentPrintsAndSavesTheFilesTheAgentReturns) {
  ScratchDir dir;
  ProcessResult r = Bedrock({"invoke-agent", "--alias-arn", AliasArn(), "--prompt", "Export the VPN articles as CSV",
                             "--session-id", "cli-test-files", "--files-dir", dir.path()});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  json j = ParseStdout(r);
  ASSERT_TRUE(j.contains("files")) << r.stdout_text;
  ASSERT_EQ(j["files"].size(), 1u);
  const json& file = j["files"][0];
  EXPECT_EQ(file["name"], "articles.csv");
  EXPECT_EQ(file["type"], "text/csv");
  auto content = Base64Decode(file["content_base64"].get<std::string>());
  ASSERT_TRUE(content.ok());
  EXPECT_EQ(file["size"].get<size_t>(), content.value().size());
  EXPECT_EQ(content.value().rfind("id,title,uri,text\r\n", 0), 0u);
  EXPECT_EQ(file["saved_to"], dir.Path("articles.csv"));
  std::ifstream saved(dir.Path("articles.csv"), std::ios::binary);
  const std::string on_disk((std::istreambuf_iterator<char>(saved)), std::istreambuf_iterator<char>());
  EXPECT_EQ(on_disk, content.value());
  EXPECT_NE(j["completion"].get<std::string>().find("articles.csv"), std::string::npos);

  // Streaming the text: stdout is only the text, the file is mentioned on stderr.
  ProcessResult streamed = Bedrock({"invoke-agent", "--alias-arn", AliasArn(), "--prompt",
                                    "Export the VPN articles as CSV", "--session-id", "cli-test-files-2", "--stream"});
  ASSERT_EQ(streamed.exit_code, 0) << streamed.stderr_text;
  EXPECT_NE(streamed.stdout_text.find("articles.csv"), std::string::npos);
  EXPECT_NE(streamed.stderr_text.find("note: the agent returned the file 'articles.csv'"), std::string::npos)
      << streamed.stderr_text;
}

TEST_F(BedrockCliTest, AliasReportsAPreparedAliasAndOneWithoutAVersion) {
  ProcessResult good = Bedrock({"alias", "--alias-arn", AliasArn()});
  ASSERT_EQ(good.exit_code, 0) << good.stderr_text;
  json g = ParseStdout(good);
  EXPECT_EQ(g["exists"], true);
  EXPECT_EQ(g["agent_version"], "1");
  EXPECT_EQ(g["prepared"], true);

  ProcessResult none = Bedrock(
      {"alias", "--alias-arn", "arn:aws:bedrock:us-east-1:111122223333:agent-alias/HELPDESK01/NOVERSION1"});
  ASSERT_EQ(none.exit_code, 0) << none.stderr_text;
  json n = ParseStdout(none);
  EXPECT_EQ(n["exists"], true);
  EXPECT_EQ(n["has_version"], false);
  EXPECT_EQ(n["prepared"], false);
  EXPECT_NE(n["note"].get<std::string>().find("no agent version"), std::string::npos);
}

TEST_F(BedrockCliTest, AccessDeniedForTheRestrictedUserExplainsTheFixOnStderr) {
  ProcessResult r = Bedrock({"invoke-agent", "--alias-arn", AliasArn(), "--prompt", "hello"}, kReadOnlyKey,
                            kReadOnlySecret);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.stdout_text.empty()) << r.stdout_text;
  EXPECT_NE(r.stderr_text.find("AccessDeniedException"), std::string::npos) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("bedrock:InvokeAgent"), std::string::npos) << r.stderr_text;
  // The troubleshooting entry follows the error: its causes and fixes.
  EXPECT_NE(r.stderr_text.find("quarry-readonly"), std::string::npos) << r.stderr_text;
  EXPECT_GT(r.stderr_text.size(), 300u) << r.stderr_text;
}

TEST_F(BedrockCliTest, AnUntrustedCertificateIsExplainedAndAwsCaBundleMakesItTrusted) {
  quarry::testing::TlsTestServer tls;  // a real TLS server whose CA the system does not know
  const std::vector<std::string> whoami = {"whoami", "--region", "us-east-1", "--max-attempts", "1"};

  ProcessResult untrusted = Bedrock(whoami, "", "", {}, tls.base_url());
  EXPECT_EQ(untrusted.exit_code, 1);
  EXPECT_NE(untrusted.stderr_text.find("tls-certificate-untrusted"), std::string::npos) << untrusted.stderr_text;
  EXPECT_NE(untrusted.stderr_text.find("AWS_CA_BUNDLE"), std::string::npos) << untrusted.stderr_text;
  EXPECT_EQ(tls.requests(), 0);  // nothing was sent to a server that could not be verified

  // An unreadable bundle is refused before anything is sent, naming where it was set.
  ProcessResult unreadable = Bedrock(whoami, "", "", {"AWS_CA_BUNDLE=/nonexistent/proxy-ca.pem"}, tls.base_url());
  EXPECT_EQ(unreadable.exit_code, 2);
  EXPECT_NE(unreadable.stderr_text.find("/nonexistent/proxy-ca.pem"), std::string::npos) << unreadable.stderr_text;
  EXPECT_NE(unreadable.stderr_text.find("set by AWS_CA_BUNDLE"), std::string::npos) << unreadable.stderr_text;

  // With the server's CA in AWS_CA_BUNDLE the request goes through (the
  // server is no STS, so whoami still fails, but not on trust).
  ProcessResult trusted = Bedrock(whoami, "", "", {"AWS_CA_BUNDLE=" + tls.ca_file()}, tls.base_url());
  EXPECT_EQ(tls.requests(), 1);
  EXPECT_EQ(trusted.stderr_text.find("tls-certificate-untrusted"), std::string::npos) << trusted.stderr_text;
}

TEST_F(BedrockCliTest, ThrottlingIsRetriedUntilItSucceeds) {
  ProcessResult added =
      Admin("POST", "/_quarry/faults", R"({"kind": "throttle", "operation": "InvokeModel", "count": 2})");
  ASSERT_EQ(added.exit_code, 0) << added.stderr_text;
  ProcessResult r = Bedrock({"invoke-model", "--region", "us-east-1", "--model", kHaiku, "--prompt", "Hi"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(ParseStdout(r)["attempts"], 3);
  ProcessResult counters = Admin("GET", "/_quarry/counters");
  json c = json::parse(counters.stdout_text, nullptr, false);
  EXPECT_EQ(c["operations"]["InvokeModel"]["ThrottlingException"], 2) << counters.stdout_text;
  EXPECT_EQ(c["operations"]["InvokeModel"]["ok"], 1) << counters.stdout_text;
}

TEST_F(BedrockCliTest, ThrottlingBeyondTheAttemptsFailsWithTheThrottlingEntry) {
  Admin("POST", "/_quarry/faults", R"({"kind": "throttle", "operation": "InvokeModel", "count": 5})");
  ProcessResult r =
      Bedrock({"invoke-model", "--region", "us-east-1", "--model", kHaiku, "--prompt", "Hi", "--max-attempts", "2"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.stdout_text.empty());
  EXPECT_NE(r.stderr_text.find("ThrottlingException"), std::string::npos) << r.stderr_text;
}

TEST_F(BedrockCliTest, ABadRegionFailsBeforeAnyRequest) {
  ProcessResult r = Bedrock({"whoami", "--region", "us-east-1a"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(r.stdout_text.empty());
  EXPECT_NE(r.stderr_text.find("region"), std::string::npos) << r.stderr_text;
  ProcessResult counters = Admin("GET", "/_quarry/counters");
  EXPECT_EQ(json::parse(counters.stdout_text, nullptr, false)["total"], 0) << counters.stdout_text;
}

TEST_F(BedrockCliTest, ABaseAgentArnIsRefusedWithTheAliasArnToUseInstead) {
  ProcessResult r = Bedrock({"invoke-agent", "--alias-arn", "arn:aws:bedrock:us-east-1:111122223333:agent/HELPDESK01",
                             "--prompt", "hello"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(r.stdout_text.empty());
  EXPECT_NE(r.stderr_text.find("agent-alias/HELPDESK01/"), std::string::npos) << r.stderr_text;
  ProcessResult a = Bedrock({"alias", "--alias-arn", "arn:aws:bedrock:us-east-1:111122223333:agent/HELPDESK01"});
  EXPECT_EQ(a.exit_code, 2);
  ProcessResult counters = Admin("GET", "/_quarry/counters");
  EXPECT_EQ(json::parse(counters.stdout_text, nullptr, false)["total"], 0) << counters.stdout_text;
}

TEST_F(BedrockCliTest, AnAliasArnOfAnotherRegionThanTheConfiguredOneIsRefused) {
  ProcessResult r = Bedrock({"alias", "--alias-arn", AliasArn(), "--region", "us-west-2"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.stderr_text.find("--region us-east-1"), std::string::npos) << r.stderr_text;
}

TEST_F(BedrockCliTest, BearerTokenWorksForModelsButIsRefusedForAgents) {
  ProcessResult models = Bedrock({"models", "--region", "us-east-1", "--bearer-token", "ABSKquarrydemoapikey0001"});
  EXPECT_EQ(models.exit_code, 0) << models.stderr_text;
  ProcessResult agent = Bedrock(
      {"invoke-agent", "--alias-arn", AliasArn(), "--prompt", "hi", "--bearer-token", "ABSKquarrydemoapikey0001"});
  EXPECT_EQ(agent.exit_code, 2);
  EXPECT_NE(agent.stderr_text.find("API keys"), std::string::npos) << agent.stderr_text;
}

TEST_F(BedrockCliTest, AWrongSecretFailsWithTheInvalidCredentialsEntry) {
  ProcessResult r = Bedrock({"whoami", "--region", "us-east-1"}, "AKIAQUARRYDEMO000001", "wrong-secret-0000000000000");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.stdout_text.empty());
  EXPECT_NE(r.stderr_text.find("SignatureDoesNotMatch"), std::string::npos) << r.stderr_text;
}

}  // namespace
}  // namespace quarry::testing
