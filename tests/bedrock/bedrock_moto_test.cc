// `quarry bedrock` against moto (an independent AWS emulator in Python) with
// IAM enforcement on: the signature and the policy checks are moto's, not ours.
//
// moto 5.2 serves STS and IAM, and bedrock / bedrock-runtime / bedrock-agent
// partly, but NOT bedrock-agent-runtime: an InvokeAgent request matches no
// moto route, and with enforcement on moto answers 403 AccessDenied "... is not
// authorized to perform: bedrock:None" (an XML body). moto's SigV4 check also
// rejects any request whose path holds a percent-encoded character (a model id
// with ':'): botocore gets the same SignatureDoesNotMatch, so InvokeModel is
// exercised with a model id without ':'. The tests below check what moto can
// check.
//
// Skipped loudly when python3 on PATH has no moto or boto3.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/loopback_socket.h"
#include "tests/support/process.h"

namespace quarry::testing {
namespace {

using nlohmann::json;

// A free loopback port: bound, read, released (moto binds it right after).
int FreePort() {
  sockaddr_in addr{};
  const int fd = BoundLoopbackSocket(/*backlog=*/-1, &addr);
  if (fd < 0) return -1;
  close(fd);
  return ntohs(addr.sin_port);
}

class BedrockMotoTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ProcessResult probe = RunProcess({"python3", "-c", "import moto, boto3; print(moto.__version__)"});
    if (probe.exit_code != 0) {
      skip_reason_ = "SKIPPED LOUDLY: python3 on PATH has no moto/boto3, so `quarry bedrock` was not checked against "
                     "moto's IAM enforcement (whoami with an IAM user's keys, a wrong secret, InvokeAgent/InvokeModel "
                     "without permission). Install moto[server] >= 5.2 and boto3.";
      return;
    }
    const int port = FreePort();
    ASSERT_GT(port, 0);
    url_ = "http://127.0.0.1:" + std::to_string(port);
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      // Quiet, in its own process group so the whole server goes at the end.
      setpgid(0, 0);
      freopen("/dev/null", "w", stdout);
      freopen("/dev/null", "w", stderr);
      const std::string port_text = std::to_string(port);
      execlp("python3", "python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", port_text.c_str(),
             static_cast<char*>(nullptr));
      _exit(127);
    }
    // Bounded start-up wait: 30 s at most.
    bool up = false;
    for (int i = 0; i < 120 && !up; ++i) {
      ProcessResult r = RunProcess({"curl", "-s", "-o", "/dev/null", "-m", "2", url_ + "/moto-api/"});
      up = r.exit_code == 0;
      if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    ASSERT_TRUE(up) << "moto.server did not answer on " << url_ << " within 30 s";
    ProcessResult setup = RunProcess({"timeout", "30", "python3", QUARRY_BEDROCK_TEST_DIR "/moto_iam_setup.py", url_});
    ASSERT_EQ(setup.exit_code, 0) << setup.stderr_text;
    user_ = json::parse(setup.stdout_text, nullptr, false);
    ASSERT_FALSE(user_.is_discarded()) << setup.stdout_text;
  }

  static void TearDownTestSuite() {
    if (pid_ > 0) {
      kill(-pid_, SIGTERM);
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    ASSERT_TRUE(user_.is_object()) << "moto set-up failed";
  }

  static ProcessResult Bedrock(std::vector<std::string> args, const std::string& secret = "") {
    std::vector<std::string> argv = {
        "env", "-i", "PATH=/usr/bin:/bin", "HOME=/nonexistent", "AWS_CONFIG_FILE=/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
        "AWS_ACCESS_KEY_ID=" + user_["access_key_id"].get<std::string>(),
        "AWS_SECRET_ACCESS_KEY=" + (secret.empty() ? user_["secret_access_key"].get<std::string>() : secret),
        "timeout", "30", QUARRY_BINARY, "bedrock"};
    for (std::string& a : args) argv.push_back(std::move(a));
    argv.insert(argv.end(), {"--region", "us-east-1", "--endpoint-url", url_});
    return RunProcess(argv);
  }

  static inline std::string skip_reason_;
  static inline std::string url_;
  static inline pid_t pid_ = -1;
  static inline json user_;
};

TEST_F(BedrockMotoTest, WhoamiWithTheUsersKeysReturnsTheUsersArn) {
  ProcessResult r = Bedrock({"whoami"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  json j = json::parse(r.stdout_text, nullptr, false);
  EXPECT_EQ(j["arn"], user_["arn"]) << r.stdout_text;
  EXPECT_EQ(j["account"], user_["account"]);
  EXPECT_EQ(j["credentials_source"], "environment");
}

TEST_F(BedrockMotoTest, AWrongSecretFailsWithMotosSignatureErrorAndTheInvalidCredentialsEntry) {
  ProcessResult r = Bedrock({"whoami"}, "not-the-secret-0000000000000000000000000");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.stdout_text.empty()) << r.stdout_text;
  EXPECT_NE(r.stderr_text.find("SignatureDoesNotMatch"), std::string::npos) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("[credentials-invalid]"), std::string::npos) << r.stderr_text;
}

TEST_F(BedrockMotoTest, InvokeAgentWithoutThePermissionIsExplainedAsAccessDenied) {
  ProcessResult r = Bedrock({"invoke-agent", "--alias-arn",
                             "arn:aws:bedrock:us-east-1:" + user_["account"].get<std::string>() +
                                 ":agent-alias/ABCDEFGHIJ/KLMNOPQRST",
                             "--prompt", "hello", "--max-attempts", "1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.stdout_text.empty()) << r.stdout_text;
  // moto's own refusal (it has no InvokeAgent route, so it names no action)...
  EXPECT_NE(r.stderr_text.find("AccessDenied"), std::string::npos) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("quarry-cli-user"), std::string::npos) << r.stderr_text;
  // ...and our entry says which permission to grant on which resource.
  EXPECT_NE(r.stderr_text.find("[access-denied-invoke-agent]"), std::string::npos) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("Add bedrock:InvokeAgent"), std::string::npos) << r.stderr_text;
}

TEST_F(BedrockMotoTest, InvokeModelWithoutThePermissionIsExplainedAsAccessDenied) {
  // No ':' in the id: moto's verifier mis-handles percent-encoded paths. (The client
  // keeps only the start of a non-JSON body, so the action name may be cut.)
  ProcessResult r = Bedrock({"invoke-model", "--model", "anthropic.claude-instant-v1", "--prompt", "hello",
                             "--max-attempts", "1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.stdout_text.empty()) << r.stdout_text;
  EXPECT_NE(r.stderr_text.find("not authorized to perform: bedrock:Invoke"), std::string::npos)
      << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("[access-denied-invoke-model]"), std::string::npos) << r.stderr_text;
}

}  // namespace
}  // namespace quarry::testing
