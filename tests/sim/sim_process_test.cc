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
#include "tests/support/sim_process.h"

namespace quarry::testing {
namespace {

TEST(SimProcessTest, AnnouncesAddressAndDemoCredentialsThenStopsOnStdinEof) {
  SimProcess sim;
  ASSERT_TRUE(sim.Start(QUARRY_BINARY));
  EXPECT_EQ(sim.var("AWS_ACCESS_KEY_ID"), "AKIAQUARRYDEMO000001");
  EXPECT_EQ(sim.var("AWS_REGION"), "us-east-1");
  EXPECT_EQ(sim.var("AGENT_ALIAS_ARN"), "arn:aws:bedrock:us-east-1:111122223333:agent-alias/HELPDESK01/PRODALIAS1");
  EXPECT_EQ(sim.var("URL").rfind("http://127.0.0.1:", 0), 0u);
  EXPECT_EQ(sim.Stop(), 0);
}

TEST(SimProcessTest, ThreadsOptionServesAndIsRangeChecked) {
  SimProcess sim;
  ASSERT_TRUE(sim.Start(QUARRY_BINARY, {"--threads", "4"}));
  ProcessResult models = RunProcess({"env", "AWS_ACCESS_KEY_ID=" + sim.var("AWS_ACCESS_KEY_ID"),
                                     "AWS_SECRET_ACCESS_KEY=" + sim.var("AWS_SECRET_ACCESS_KEY"), QUARRY_BINARY,
                                     "bedrock", "models", "--endpoint-url", sim.var("URL"), "--region", "us-east-1"});
  EXPECT_EQ(models.exit_code, 0) << models.stderr_text;
  EXPECT_NE(models.stdout_text.find("anthropic.claude"), std::string::npos) << models.stdout_text;
  EXPECT_EQ(sim.Stop(), 0);

  ProcessResult none = RunProcess({QUARRY_BINARY, "sim", "--threads", "0"});
  EXPECT_NE(none.exit_code, 0);
  EXPECT_NE(none.stderr_text.find("--threads"), std::string::npos) << none.stderr_text;
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
  ASSERT_TRUE(sim.Start(QUARRY_BINARY));
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
  ASSERT_TRUE(sim.Start(QUARRY_BINARY));
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
