// Runs the built `quarry aws sign` against the botocore golden vectors in
// tests/data/sigv4/ and against bad input.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace {

using ::testing::HasSubstr;
using quarry::testing::ProcessResult;
using quarry::testing::RunProcess;

namespace fs = std::filesystem;

const fs::path kGoldenDir = fs::path(QUARRY_TESTDATA_DIR) / "sigv4";

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

ProcessResult Sign(const fs::path& request, const fs::path& context, const std::string& show) {
  return RunProcess({QUARRY_BINARY, "aws", "sign", "--request", request.string(), "--context", context.string(),
                     "--show", show});
}

TEST(AwsSignCliTest, PrintsEveryArtefactOfEveryGoldenVector) {
  const std::vector<std::pair<std::string, std::string>> artefacts = {
      {"canonical-request", "header-canonical-request.txt"},
      {"string-to-sign", "header-string-to-sign.txt"},
      {"signature", "header-signature.txt"},
      {"authorization", "header-authorization.txt"}};
  int cases = 0;
  for (const auto& entry : fs::directory_iterator(kGoldenDir)) {
    if (!entry.is_directory()) continue;
    ++cases;
    for (const auto& [show, file] : artefacts) {
      SCOPED_TRACE(entry.path().filename().string() + " --show " + show);
      const ProcessResult result = Sign(entry.path() / "request.txt", entry.path() / "context.json", show);
      EXPECT_EQ(result.exit_code, 0) << result.stderr_text;
      EXPECT_EQ(result.stdout_text, ReadFile(entry.path() / file) + "\n");
      EXPECT_EQ(result.stderr_text, "");
    }
  }
  EXPECT_GE(cases, 10);
}

class AwsSignCliErrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("quarry_aws_sign_cli_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path Write(const std::string& name, const std::string& content) {
    const fs::path path = dir_ / name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  // Expects a failure with nothing on stdout and `needle` on stderr.
  static void ExpectFailure(const ProcessResult& result, const std::string& needle) {
    EXPECT_NE(result.exit_code, 0);
    EXPECT_EQ(result.stdout_text, "");
    EXPECT_THAT(result.stderr_text, HasSubstr(needle));
  }

  const fs::path golden_request_ = kGoldenDir / "bedrock-invoke-model-id" / "request.txt";
  const fs::path golden_context_ = kGoldenDir / "bedrock-invoke-model-id" / "context.json";
  fs::path dir_;
};

TEST_F(AwsSignCliErrorTest, FailsOnAMissingRequestFile) {
  ExpectFailure(Sign(dir_ / "absent.txt", golden_context_, "signature"), "cannot read the request file");
}

TEST_F(AwsSignCliErrorTest, FailsOnAMissingContextFile) {
  ExpectFailure(Sign(golden_request_, dir_ / "absent.json", "signature"), "cannot read the context file");
}

TEST_F(AwsSignCliErrorTest, FailsOnAMalformedRequestLine) {
  ExpectFailure(Sign(Write("r.txt", "POST /model/x/invoke\nHost:h\n\n"), golden_context_, "signature"),
                "malformed request line");
}

TEST_F(AwsSignCliErrorTest, FailsOnARequestWithoutHost) {
  ExpectFailure(Sign(Write("r.txt", "GET / HTTP/1.1\nAccept:x\n\n"), golden_context_, "signature"), "Host");
}

TEST_F(AwsSignCliErrorTest, FailsOnBadJson) {
  ExpectFailure(Sign(golden_request_, Write("c.json", "{\"credentials\":"), "signature"), "not a JSON object");
}

TEST_F(AwsSignCliErrorTest, FailsOnAMissingField) {
  ExpectFailure(Sign(golden_request_,
                     Write("c.json", R"({"credentials":{"access_key_id":"AKID","secret_access_key":"S"},)"
                                     R"("service":"bedrock","timestamp":"2015-08-30T12:36:00Z"})"),
                     "signature"),
                "region");
}

TEST_F(AwsSignCliErrorTest, FailsOnABadTimestamp) {
  ExpectFailure(Sign(golden_request_,
                     Write("c.json", R"({"credentials":{"access_key_id":"AKID","secret_access_key":"S"},)"
                                     R"("region":"us-east-1","service":"bedrock","timestamp":"30/08/2015"})"),
                     "signature"),
                "timestamp");
}

TEST_F(AwsSignCliErrorTest, FailsOnAnUnknownShow) {
  ExpectFailure(Sign(golden_request_, golden_context_, "everything"), "--show 'everything' is not known");
}

}  // namespace
