#include "aws/shared_config.h"
#include "tests/support/scratch_dir.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace quarry::aws {
namespace {

using ::testing::HasSubstr;

using ::quarry::testing::ScratchDir;

TEST(IniParseTest, ReadsSectionsPropertiesCommentsAndWhitespace) {
  Result<IniFile> file = ParseIni(
      "# leading comment\n"
      "; another comment\n"
      "\n"
      "[default]   # comment after a header\n"
      "  AWS_Access_Key_ID   =   AKIDEXAMPLE  \r\n"
      "region=us-west-2 ; trailing comment\n"
      "glued = abc#def;ghi\n"
      "empty =\n"
      "[ spaced name ]\n"
      "k = v",
      "/tmp/config");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  ASSERT_EQ(file->sections.size(), 2u);
  const IniSection& section = file->sections[0];
  EXPECT_EQ(section.name, "default");
  EXPECT_EQ(section.line, 4);
  EXPECT_EQ(section.values.at("aws_access_key_id").value, "AKIDEXAMPLE");
  EXPECT_EQ(section.values.at("aws_access_key_id").line, 5);
  EXPECT_EQ(section.values.at("region").value, "us-west-2");
  EXPECT_EQ(section.values.at("glued").value, "abc#def;ghi");
  EXPECT_EQ(section.values.at("empty").value, "");
  EXPECT_EQ(file->sections[1].name, "spaced name");
  EXPECT_EQ(file->sections[1].values.at("k").value, "v");
}

TEST(IniParseTest, MalformedLinesNameTheFileAndLine) {
  struct Case {
    const char* text;
    const char* expected;
  };
  const Case cases[] = {
      {"[default]\nregion = us-east-1\nthis is not a property\n",
       "/p/config:3: expected `key = value`"},
      {"[default\n", "/p/config:1: section header has no closing ']'"},
      {"region = us-east-1\n", "/p/config:1: property \"region\" appears before any [section]"},
      {"\n[default] junk\n", "/p/config:2: unexpected text after"},
      {"[]\n", "/p/config:1: empty section name"},
      {"[default]\n = value\n", "/p/config:2: property has no name"},
      {"[default]\ns3 =\n  no equals here\n", "/p/config:3: expected an indented `key = value`"},
  };
  for (const Case& c : cases) {
    Result<IniFile> file = ParseIni(c.text, "/p/config");
    ASSERT_FALSE(file.ok()) << c.text;
    EXPECT_EQ(file.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(file.status().message(), HasSubstr(c.expected)) << c.text;
  }
}

TEST(IniParseTest, IndentedLinesAreSubPropertiesOrContinuations) {
  Result<IniFile> file = ParseIni(
      "[profile dev]\n"
      "s3 =\n"
      "  max_concurrent_requests = 10\n"
      "  addressing_style = path\n"
      "credential_process = /bin/tool\n"
      "  --flag\n"
      "region = eu-west-1\n",
      "config");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  const auto& values = file->sections[0].values;
  EXPECT_EQ(values.at("s3").value, "");
  EXPECT_EQ(values.at("s3.max_concurrent_requests").value, "10");
  EXPECT_EQ(values.at("s3.addressing_style").value, "path");
  EXPECT_EQ(values.at("credential_process").value, "/bin/tool\n--flag");
  EXPECT_EQ(values.at("region").value, "eu-west-1");
}

TEST(IniParseTest, IndentedPropertiesAfterAValueAreTheirOwnProperties) {
  Result<IniFile> file = ParseIni(
      "[default]\n"
      "  aws_access_key_id = AKIDEXAMPLE\n"
      "  aws_secret_access_key = secret\n",
      "credentials");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->sections[0].values.at("aws_access_key_id").value, "AKIDEXAMPLE");
  EXPECT_EQ(file->sections[0].values.at("aws_secret_access_key").value, "secret");
}

TEST(IniParseTest, RepeatedSectionsMergeAndLaterValuesWin) {
  Result<IniFile> file = ParseIni("[a]\nx = 1\ny = 1\n[b]\n[a]\nx = 2\n", "f");
  ASSERT_TRUE(file.ok());
  ASSERT_EQ(file->sections.size(), 2u);
  EXPECT_EQ(file->sections[0].values.at("x").value, "2");
  EXPECT_EQ(file->sections[0].values.at("y").value, "1");
}

SharedFilePaths TestPaths() { return SharedFilePaths{"/h/.aws/config", "/h/.aws/credentials"}; }

TEST(SharedConfigTest, ConfigFileProfilesNeedThePrefixExceptDefault) {
  Result<SharedConfig> config =
      SharedConfig::FromText(TestPaths(),
                             "[default]\nregion = us-east-1\n"
                             "[profile dev]\nregion = eu-west-1\n"
                             "[profile \"quoted name\"]\nregion = ap-south-1\n"
                             "[bare]\nregion = sa-east-1\n"
                             "[sso-session corp]\nsso_region = us-east-1\n",
                             std::nullopt);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_TRUE(config->HasProfile("default"));
  EXPECT_TRUE(config->HasProfile("dev"));
  EXPECT_TRUE(config->HasProfile("quoted name"));
  EXPECT_FALSE(config->HasProfile("bare"));
  EXPECT_FALSE(config->HasProfile("corp"));
  EXPECT_FALSE(config->HasProfile("profile dev"));
  EXPECT_EQ(config->Get("dev", "region")->value, "eu-west-1");
  EXPECT_EQ(config->Get("dev", "region")->Where(), "/h/.aws/config:4");
  EXPECT_THAT(config->MisplacedSectionHint("bare"), HasSubstr("written [profile bare]"));
}

TEST(SharedConfigTest, CredentialsFileSectionsAreLiteralProfileNames) {
  Result<SharedConfig> config = SharedConfig::FromText(
      TestPaths(), std::nullopt,
      "[default]\naws_access_key_id = A\n[dev]\nx = 1\n[profile prod]\nx = 2\n");
  ASSERT_TRUE(config.ok());
  EXPECT_TRUE(config->HasProfile("dev"));
  EXPECT_TRUE(config->HasProfile("profile prod"));
  EXPECT_FALSE(config->HasProfile("prod"));
  EXPECT_THAT(config->MisplacedSectionHint("prod"), HasSubstr("no 'profile' prefix"));
  EXPECT_EQ(config->ProfileNames(), (std::vector<std::string>{"default", "dev", "profile prod"}));
}

TEST(SharedConfigTest, CredentialsFileValuesWinOverTheConfigFile) {
  Result<SharedConfig> config = SharedConfig::FromText(
      TestPaths(), "[profile dev]\nregion = a\nx = config\n", "[dev]\nx = credentials\n");
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->Get("dev", "x")->value, "credentials");
  EXPECT_EQ(config->Get("dev", "x")->file, "/h/.aws/credentials");
  EXPECT_EQ(config->Get("dev", "region")->value, "a");
  EXPECT_EQ(config->GetFrom(SharedFileKind::kConfig, "dev", "x")->value, "config");
  EXPECT_FALSE(config->Get("dev", "missing").has_value());
}

TEST(SharedConfigTest, ResolvesPathsFromTheEnvironment) {
  MapEnvironment env({{"HOME", "/home/ann"}});
  SharedFilePaths paths = ResolveSharedFilePaths(env);
  EXPECT_EQ(paths.config_file, "/home/ann/.aws/config");
  EXPECT_EQ(paths.credentials_file, "/home/ann/.aws/credentials");

  env.Set("AWS_CONFIG_FILE", "~/custom/config");
  env.Set("AWS_SHARED_CREDENTIALS_FILE", "/etc/creds");
  paths = ResolveSharedFilePaths(env);
  EXPECT_EQ(paths.config_file, "/home/ann/custom/config");
  EXPECT_EQ(paths.credentials_file, "/etc/creds");

  paths = ResolveSharedFilePaths(MapEnvironment());
  EXPECT_EQ(paths.config_file, "");
  EXPECT_EQ(paths.credentials_file, "");
}

TEST(SharedConfigTest, LoadsFilesAndToleratesMissingOnes) {
  ScratchDir dir;
  std::string credentials = dir.Write("credentials", "[default]\naws_access_key_id = AKID\n");
  Result<SharedConfig> config = SharedConfig::Load({dir.path() + "/nonexistent", credentials});
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_FALSE(config->config_file_exists());
  EXPECT_TRUE(config->credentials_file_exists());
  EXPECT_EQ(config->Get("default", "aws_access_key_id")->value, "AKID");
  EXPECT_THAT(config->DescribeFiles(), HasSubstr("nonexistent (not found)"));
}

TEST(SharedConfigTest, ReportsMalformedAndOversizedFiles) {
  ScratchDir dir;
  std::string bad = dir.Write("config", "[default]\nregion\n");
  Result<SharedConfig> config = SharedConfig::Load({bad, ""});
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr(bad + ":2:"));

  std::string big = dir.Write("big", "[default]\n" + std::string(kMaxSharedFileBytes, '#'));
  EXPECT_EQ(ReadIniFile(big).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadIniFile(dir.path() + "/missing").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ReadIniFile(dir.path()).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quarry::aws
