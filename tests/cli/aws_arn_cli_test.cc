// Runs `quarry aws arn` as a person would and checks stdout, stderr and the
// exit status.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/support/process.h"

namespace quarry {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

testing::ProcessResult RunArn(std::vector<std::string> args) {
  std::vector<std::string> argv = {QUARRY_BINARY, "aws", "arn"};
  argv.insert(argv.end(), args.begin(), args.end());
  return testing::RunProcess(argv);
}

nlohmann::json ParseStdout(const testing::ProcessResult& r) {
  nlohmann::json j = nlohmann::json::parse(r.stdout_text, nullptr, false);
  EXPECT_TRUE(j.is_object()) << "stdout is not one JSON object: " << r.stdout_text;
  return j;
}

TEST(AwsArnCliTest, PrintsTheSeedAgentAliasArnAsJson) {
  const auto r = RunArn({"arn:aws:bedrock:us-east-2:123456789012:agent-alias/ABCD1234EF/GHIJ5678KL"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_THAT(r.stderr_text, IsEmpty());
  const nlohmann::json j = ParseStdout(r);
  EXPECT_EQ(j["kind"], "agent-alias");
  EXPECT_EQ(j["partition"], "aws");
  EXPECT_EQ(j["service"], "bedrock");
  EXPECT_EQ(j["region"], "us-east-2");
  EXPECT_EQ(j["account"], "123456789012");
  EXPECT_EQ(j["resource"], "agent-alias/ABCD1234EF/GHIJ5678KL");
  EXPECT_EQ(j["agent_id"], "ABCD1234EF");
  EXPECT_EQ(j["alias_id"], "GHIJ5678KL");
}

TEST(AwsArnCliTest, DescribesModelAndProfileArns) {
  auto r = RunArn({"arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  nlohmann::json j = ParseStdout(r);
  EXPECT_EQ(j["kind"], "foundation-model");
  EXPECT_EQ(j["account"], "");
  EXPECT_EQ(j["model_id"], "anthropic.claude-3-haiku-20240307-v1:0");

  r = RunArn({"arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-3-haiku-20240307-v1:0"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  j = ParseStdout(r);
  EXPECT_EQ(j["kind"], "inference-profile");
  EXPECT_EQ(j["geography"], "eu");

  r = RunArn({"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(ParseStdout(r)["kind"], "application-inference-profile");
}

TEST(AwsArnCliTest, RefusesTheBaseAgentArnWhenAnAliasIsRequired) {
  const auto r = RunArn({"--agent-alias", "arn:aws:bedrock:us-east-2:123456789012:agent/ABCD1234EF"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.stdout_text, IsEmpty());
  EXPECT_THAT(r.stderr_text,
              HasSubstr("this is the agent ARN; connect the agent alias ARN, "
                        "arn:aws:bedrock:us-east-2:123456789012:agent-alias/ABCD1234EF/{alias-id}, "
                        "from the agent's Aliases tab"));
}

TEST(AwsArnCliTest, DescribesABaseAgentArnWithANoteOnStderr) {
  const auto r = RunArn({"arn:aws:bedrock:us-east-2:123456789012:agent/ABCD1234EF"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(ParseStdout(r)["kind"], "agent");
  EXPECT_THAT(r.stderr_text, HasSubstr("note: this is the agent ARN; connect the agent alias ARN"));
}

TEST(AwsArnCliTest, ReportsInvalidArnsOnStderrWithTheFix) {
  const auto r = RunArn({"arn:aws:bedrock:us-east-2:1234:agent-alias/ABCD1234EF/GHIJ5678KL"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.stdout_text, IsEmpty());
  EXPECT_THAT(r.stderr_text, HasSubstr("error: the account part '1234' has 4 digits; it must be the "
                                       "12-digit AWS account id"));
}

TEST(AwsArnCliTest, ClassifiesModelTargets) {
  const auto r = RunArn({"--model-target", "us.anthropic.claude-3-5-sonnet-20240620-v1:0"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  const nlohmann::json j = ParseStdout(r);
  EXPECT_EQ(j["kind"], "inference-profile-id");
  EXPECT_EQ(j["geography"], "us");
  EXPECT_EQ(j["model_id"], "anthropic.claude-3-5-sonnet-20240620-v1:0");
}

}  // namespace
}  // namespace quarry
