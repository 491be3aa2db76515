// Process-level tests of `quarry serve`, the client subcommands and
// `quarry demo`: the real executable, as an operator would run it, against a
// server started with the embedded emulator on a scratch data directory.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/process.h"
#include "tests/support/scratch_dir.h"
#include "tests/support/sim_process.h"

namespace quarry::testing {
namespace {

using nlohmann::json;

constexpr char kDemoKey[] = "AKIAQUARRYDEMO000001";
constexpr char kDemoSecret[] = "quarryDemoSecretKey0000000000000000000001";
constexpr char kAliasArn[] = "arn:aws:bedrock:us-east-1:111122223333:agent-alias/HELPDESK01/PRODALIAS1";
constexpr char kBaseArn[] = "arn:aws:bedrock:us-east-1:111122223333:agent/HELPDESK01";

class ServeCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_ = new ScratchDir();
    config_ = new ScratchDir();
    server_ = new SimProcess();
    ASSERT_TRUE(server_->StartCommand({QUARRY_BINARY, "serve", "--embedded-sim", "--port", "0",
                                       "--data-dir", data_->Path("data"), "--exit-on-stdin-eof"},
                                      3))
        << "quarry serve did not start";
    for (const std::string& line : server_->lines()) {
      if (line.rfind("admin token: ", 0) == 0) token_ = line.substr(13, line.find(' ', 13) - 13);
    }
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(server_->Stop(), 0) << "quarry serve must exit 0 on a clean stop";
    delete server_;
    delete config_;
    delete data_;
  }

  // Runs `quarry ARGS` with its own login file.
  static ProcessResult Quarry(std::vector<std::string> args, std::string_view stdin_text = {}) {
    std::vector<std::string> argv = {"env", "XDG_CONFIG_HOME=" + config_->path(), "QUARRY_SERVER=",
                                     "QUARRY_TOKEN=", QUARRY_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv, stdin_text);
  }
  static json QuarryJson(std::vector<std::string> args) {
    args.push_back("--json");
    ProcessResult result = Quarry(args);
    EXPECT_EQ(result.exit_code, 0) << result.stderr_text;
    return json::parse(result.stdout_text, nullptr, false);
  }
  static void Login() {
    ProcessResult login = Quarry({"login", "--server", server_->var("URL"), "--token", token_});
    ASSERT_EQ(login.exit_code, 0) << login.stderr_text;
  }

  static ScratchDir* data_;
  static ScratchDir* config_;
  static SimProcess* server_;
  static std::string token_;
};

ScratchDir* ServeCliTest::data_ = nullptr;
ScratchDir* ServeCliTest::config_ = nullptr;
SimProcess* ServeCliTest::server_ = nullptr;
std::string ServeCliTest::token_;

TEST_F(ServeCliTest, AnnouncesItselfAndProtectsItsDataDirectory) {
  ASSERT_FALSE(token_.empty()) << "the first start must print the admin token";
  EXPECT_EQ(token_.rfind("qk_", 0), 0u);
  struct stat info {};
  ASSERT_EQ(::stat(data_->Path("data").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0700);
  ASSERT_EQ(::stat(data_->Path("data/master.keys").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600);
}

TEST_F(ServeCliTest, LoginSavesTheTokenPrivately) {
  Login();
  struct stat info {};
  ASSERT_EQ(::stat(config_->Path("quarry/cli.json").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600);
  ProcessResult bad = Quarry({"login", "--server", server_->var("URL"), "--token", "qk_wrong"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.stderr_text.find("HTTP 401"), std::string::npos) << bad.stderr_text;
}

TEST_F(ServeCliTest, WalksTheSeedFromTheCommandLine) {
  Login();
  json provider = QuarryJson({"providers", "add", "Bedrock CLI", "--access-key-id", kDemoKey,
                              "--secret-access-key", kDemoSecret});
  const std::string provider_id = provider.value("id", "");
  ASSERT_FALSE(provider_id.empty()) << provider.dump();
  EXPECT_EQ(provider.dump().find(kDemoSecret), std::string::npos) << "the secret must never come back";

  ProcessResult test = Quarry({"providers", "test", provider_id});
  EXPECT_EQ(test.exit_code, 0) << test.stdout_text << test.stderr_text;
  EXPECT_NE(test.stdout_text.find("status: working"), std::string::npos) << test.stdout_text;

  ProcessResult models = Quarry({"models", provider_id});
  EXPECT_EQ(models.exit_code, 0) << models.stderr_text;
  EXPECT_NE(models.stdout_text.find("us.anthropic."), std::string::npos)
      << "profile-only models must show the profile to invoke: " << models.stdout_text;

  json service = QuarryJson({"services", "add", "Triage", "--provider", provider_id, "--model",
                             "anthropic.claude-3-haiku-20240307-v1:0"});
  const std::string service_id = service.value("id", "");
  ASSERT_FALSE(service_id.empty()) << service.dump();
  ProcessResult reply = Quarry({"services", "try", service_id, "Say hello"});
  EXPECT_EQ(reply.exit_code, 0) << reply.stderr_text;
  EXPECT_FALSE(reply.stdout_text.empty());

  json app = QuarryJson({"apps", "create", "Helpdesk", "--namespace", "helpdesk_cli", "--handle", "HLP"});
  const std::string app_id = app.value("id", "");
  ASSERT_FALSE(app_id.empty()) << app.dump();

  ProcessResult object = Quarry({"apps", "add-object", app_id, "Ticket", "--api-name", "ticket"});
  ASSERT_EQ(object.exit_code, 0) << object.stderr_text;
  ASSERT_EQ(Quarry({"apps", "add-field", app_id, "ticket", "subject", "--required"}).exit_code, 0);
  ProcessResult priority = Quarry({"apps", "add-field", app_id, "ticket", "priority", "--type", "dropdown",
                                   "--option", "Low", "--option", "High", "--default", "Low"});
  ASSERT_EQ(priority.exit_code, 0) << priority.stderr_text;
  json record = QuarryJson({"records", "create", app_id, "ticket", "--set", "subject=Printer jammed"});
  EXPECT_EQ(record.value("handle", ""), "HLP-1") << record.dump();
  ProcessResult invalid = Quarry({"records", "create", app_id, "ticket", "--set", "priority=Urgent"});
  EXPECT_EQ(invalid.exit_code, 1);
  EXPECT_NE(invalid.stderr_text.find("validation_failed"), std::string::npos) << invalid.stderr_text;
  ProcessResult updated = Quarry({"records", "update", app_id, "HLP-1", "--set", "priority=High"});
  EXPECT_EQ(updated.exit_code, 0) << updated.stderr_text;
  ProcessResult listed = Quarry({"records", "list", app_id, "ticket", "--filter", "priority=High"});
  EXPECT_EQ(listed.exit_code, 0) << listed.stderr_text;
  EXPECT_NE(listed.stdout_text.find("HLP-1"), std::string::npos) << listed.stdout_text;
  ProcessResult shown = Quarry({"records", "get", app_id, "HLP-1"});
  EXPECT_NE(shown.stdout_text.find("Printer jammed"), std::string::npos) << shown.stdout_text;

  ProcessResult base = Quarry({"agents", "connect", app_id, "--provider", provider_id, "--alias-arn",
                               kBaseArn, "--name", "Helpdesk"});
  EXPECT_EQ(base.exit_code, 1);
  EXPECT_NE(base.stderr_text.find("base_agent_arn"), std::string::npos) << base.stderr_text;
  EXPECT_NE(base.stderr_text.find("hint:"), std::string::npos) << base.stderr_text;

  json agent = QuarryJson({"agents", "connect", app_id, "--provider", provider_id, "--alias-arn",
                           kAliasArn, "--name", "Helpdesk"});
  const std::string agent_id = agent.value("id", "");
  ASSERT_FALSE(agent_id.empty()) << agent.dump();
  ProcessResult chat = Quarry({"chat", agent_id, "-m", "How do I connect to the VPN?"});
  EXPECT_EQ(chat.exit_code, 0) << chat.stderr_text;
  EXPECT_NE(chat.stdout_text.find("VPN"), std::string::npos) << chat.stdout_text;

  // The interactive form reads lines until an empty one.
  ProcessResult interactive = Quarry({"chat", agent_id}, "How do I connect to the VPN?\n\n");
  EXPECT_EQ(interactive.exit_code, 0) << interactive.stderr_text;
  EXPECT_NE(interactive.stdout_text.find("VPN"), std::string::npos);

  ProcessResult providers = Quarry({"providers", "list"});
  EXPECT_NE(providers.stdout_text.find("working"), std::string::npos) << providers.stdout_text;
}

// `quarry keys rotate` while the server runs: the secrets are re-encrypted
// under a new key, and the running server still opens them (it re-reads the
// key file when it meets the new key id).
TEST_F(ServeCliTest, KeysRotateWhileServingKeepsProvidersWorking) {
  Login();
  json provider = QuarryJson({"providers", "add", "Before rotation", "--access-key-id", kDemoKey,
                              "--secret-access-key", kDemoSecret});
  const std::string provider_id = provider.value("id", "");
  ASSERT_FALSE(provider_id.empty()) << provider.dump();

  ProcessResult rotated = Quarry({"keys", "rotate", "--data-dir", data_->Path("data")});
  ASSERT_EQ(rotated.exit_code, 0) << rotated.stdout_text << rotated.stderr_text;
  EXPECT_EQ(rotated.stdout_text.find("Re-encrypted 0 secrets"), std::string::npos)
      << "the provider's secrets must be re-encrypted: " << rotated.stdout_text;
  EXPECT_NE(rotated.stdout_text.find("Re-encrypted"), std::string::npos) << rotated.stdout_text;
  std::ifstream keys(data_->Path("data/master.keys"));
  int lines = 0;
  for (std::string line; std::getline(keys, line);) lines += (line.empty() || line[0] == '#') ? 0 : 1;
  EXPECT_EQ(lines, 2) << "the old key stays for backups, the new one is primary";

  ProcessResult test = Quarry({"providers", "test", provider_id});
  EXPECT_EQ(test.exit_code, 0) << test.stdout_text << test.stderr_text;
  EXPECT_NE(test.stdout_text.find("status: working"), std::string::npos) << test.stdout_text;
}

TEST_F(ServeCliTest, ClientWithoutALoginSaysWhatToDo) {
  ScratchDir empty_config;
  ProcessResult result = RunProcess({"env", "XDG_CONFIG_HOME=" + empty_config.path(), "QUARRY_SERVER=",
                                     QUARRY_BINARY, "providers", "list"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.stderr_text.find("quarry login"), std::string::npos) << result.stderr_text;
}

TEST(ServeConfigCliTest, AMisspeltSettingStopsTheServerWithItsName) {
  ScratchDir dir;
  const std::string config = dir.Write("quarry.toml", "[server]\nprot = 8080\n");
  ProcessResult result = RunProcess({QUARRY_BINARY, "serve", "--config", config, "--data-dir", dir.Path("d")});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.stderr_text.find("server.prot"), std::string::npos) << result.stderr_text;
}

TEST(DemoCliTest, TheDemoWalksTheSeedAndExits) {
  ScratchDir dir;
  ProcessResult result = RunProcess(
      {QUARRY_BINARY, "demo", "--exit", "--port", "0", "--data-dir", dir.Path("demo")});
  ASSERT_EQ(result.exit_code, 0) << result.stdout_text << result.stderr_text;
  for (const char* expected : {"status: working", "base_agent_arn", "connected agt_", "IT ticket triage",
                               "runs: 50 started", "TCK-50", "invocations 50", "Quarry is serving at"}) {
    EXPECT_NE(result.stdout_text.find(expected), std::string::npos) << expected << "\n" << result.stdout_text;
  }
  // A second run on the same data directory refuses instead of mixing data.
  ProcessResult again = RunProcess(
      {QUARRY_BINARY, "demo", "--exit", "--port", "0", "--data-dir", dir.Path("demo")});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.stderr_text.find("already holds"), std::string::npos) << again.stderr_text;
}

}  // namespace
}  // namespace quarry::testing
