// Process-level tests of `quarry sim`: the real executable on a free port,
// driven by boto3 (every emulated operation of the five services, checked by
// botocore against the AWS models) and by the AWS CLI.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace quarry::testing {
namespace {

// A running `quarry sim --port 0 --exit-on-stdin-eof`; closing its stdin
// stops it.
class SimProcess {
 public:
  bool Start() {
    int in_pipe[2], out_pipe[2];
    if (pipe(in_pipe) != 0 || pipe(out_pipe) != 0) return false;
    pid_ = fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      dup2(in_pipe[0], STDIN_FILENO);
      dup2(out_pipe[1], STDOUT_FILENO);
      close(in_pipe[1]);
      close(out_pipe[0]);
      execl(QUARRY_BINARY, QUARRY_BINARY, "sim", "--port", "0", "--exit-on-stdin-eof", static_cast<char*>(nullptr));
      _exit(127);
    }
    close(in_pipe[0]);
    close(out_pipe[1]);
    stdin_fd_ = in_pipe[1];
    FILE* out = fdopen(out_pipe[0], "r");
    // The five announced lines, then stop reading (the pipe stays open).
    char line[1024];
    for (int i = 0; i < 5 && fgets(line, sizeof line, out) != nullptr; ++i) {
      std::string text(line);
      while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
      if (text.rfind("listening on ", 0) == 0) {
        vars_["URL"] = text.substr(13);
      } else if (auto eq = text.find('='); eq != std::string::npos) {
        vars_[text.substr(0, eq)] = text.substr(eq + 1);
      }
    }
    out_ = out;
    return vars_.count("URL") && vars_.count("AWS_ACCESS_KEY_ID") && vars_.count("AGENT_ALIAS_ARN");
  }
  // Closes stdin and waits: the exit status of a clean stop.
  int Stop() {
    if (pid_ <= 0) return -1;
    close(stdin_fd_);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    if (out_ != nullptr) fclose(out_);
    out_ = nullptr;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  ~SimProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_ != nullptr) fclose(out_);
  }
  const std::string& var(const std::string& name) { return vars_[name]; }

 private:
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  FILE* out_ = nullptr;
  std::map<std::string, std::string> vars_;
};

TEST(SimProcessTest, AnnouncesAddressAndDemoCredentialsThenStopsOnStdinEof) {
  SimProcess sim;
  ASSERT_TRUE(sim.Start());
  EXPECT_EQ(sim.var("AWS_ACCESS_KEY_ID"), "AKIAQUARRYDEMO000001");
  EXPECT_EQ(sim.var("AWS_REGION"), "us-east-1");
  EXPECT_EQ(sim.var("AGENT_ALIAS_ARN"), "arn:aws:bedrock:us-east-1:111122223333:agent-alias/HELPDESK01/PRODALIAS1");
  EXPECT_EQ(sim.var("URL").rfind("http://127.0.0.1:", 0), 0u);
  EXPECT_EQ(sim.Stop(), 0);
}

TEST(SimProcessTest, PrintConfigIsAcceptedAsConfig) {
  ProcessResult printed = RunProcess({QUARRY_BINARY, "sim", "--print-config"});
  ASSERT_EQ(printed.exit_code, 0) << printed.stderr_text;
  EXPECT_NE(printed.stdout_text.find("\"_comment\""), std::string::npos);
  // A broken copy names the JSON path.
  ProcessResult bad = RunProcess({"sh", "-c",
                                  "f=$(mktemp) && printf '{\"accounts\":[{\"id\":\"12\"}],\"regions\":[]}' > $f && " +
                                      std::string(QUARRY_BINARY) + " sim --config $f; e=$?; rm -f $f; exit $e"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.stderr_text.find("$.accounts[0].id"), std::string::npos) << bad.stderr_text;
}

TEST(SimProcessTest, Boto3DrivesEveryOperationOfTheFiveServices) {
  std::optional<PythonOracle> python = ModernBotocore();
  if (!python) {
    GTEST_SKIP() << "SKIPPED LOUDLY: no python3 with botocore >= 1.43 on PATH, so the boto3 checks of `quarry sim` "
                    "(all five services, shapes, exceptions, faults, counters) did not run. Install boto3 >= 1.43.";
  }
  SimProcess sim;
  ASSERT_TRUE(sim.Start());
  ProcessResult result = RunProcess({"timeout", "60", python->interpreter, QUARRY_SIM_TEST_DIR "/sim_boto3_check.py",
                                     sim.var("URL"), sim.var("AWS_ACCESS_KEY_ID"), sim.var("AWS_SECRET_ACCESS_KEY"),
                                     sim.var("AWS_REGION"), sim.var("AGENT_ALIAS_ARN")});
  EXPECT_EQ(result.exit_code, 0) << result.stdout_text << "\n" << result.stderr_text;
  EXPECT_NE(result.stdout_text.find("ALL OK"), std::string::npos) << result.stdout_text << result.stderr_text;
  EXPECT_EQ(sim.Stop(), 0);
}

TEST(SimProcessTest, AwsCliListsFoundationModels) {
  ProcessResult version = RunProcess({"aws", "--version"});
  if (version.exit_code != 0) {
    GTEST_SKIP() << "SKIPPED LOUDLY: the AWS CLI (`aws`) is not installed, so `aws bedrock list-foundation-models` "
                    "against `quarry sim` did not run.";
  }
  SimProcess sim;
  ASSERT_TRUE(sim.Start());
  ProcessResult result = RunProcess(
      {"env", "AWS_ACCESS_KEY_ID=" + sim.var("AWS_ACCESS_KEY_ID"), "AWS_SECRET_ACCESS_KEY=" + sim.var("AWS_SECRET_ACCESS_KEY"),
       "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_PAGER=", "timeout", "60", "aws",
       "bedrock", "list-foundation-models", "--endpoint-url", sim.var("URL"), "--region", "us-east-1", "--output",
       "json"});
  EXPECT_EQ(result.exit_code, 0) << result.stderr_text;
  EXPECT_NE(result.stdout_text.find("anthropic.claude-3-haiku-20240307-v1:0"), std::string::npos) << result.stdout_text;
  EXPECT_EQ(sim.Stop(), 0);
}

}  // namespace
}  // namespace quarry::testing
