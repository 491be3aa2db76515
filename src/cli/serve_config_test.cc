#include "cli/serve_config.h"

#include <gtest/gtest.h>

namespace quarry::cli {
namespace {

TEST(ServeConfigTest, DefaultsAreValidAndUseSqliteInTheDataDir) {
  ServeConfig config;
  EXPECT_TRUE(ValidateServeConfig(config).ok());
  EXPECT_EQ(config.EffectiveDatabaseUrl(), "sqlite:quarry-data/quarry.db");
}

TEST(ServeConfigTest, TomlOverridesDefaults) {
  ServeConfig config;
  const Status status = ApplyServeToml(R"(
[server]
port = 9090
data_dir = "/var/lib/quarry"
[database]
url = "postgresql://quarry@db/quarry"
[bedrock]
embedded_sim = true
[log]
format = "json"
[security]
key_rotation_days = 30
)",
                                       "quarry.toml", &config);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(config.port, 9090);
  EXPECT_EQ(config.data_dir, "/var/lib/quarry");
  EXPECT_EQ(config.EffectiveDatabaseUrl(), "postgresql://quarry@db/quarry");
  EXPECT_TRUE(config.embedded_sim);
  EXPECT_EQ(config.log_format, "json");
  EXPECT_EQ(config.key_rotation_days, 30);
}

TEST(ServeConfigTest, UnknownKeyIsAnErrorNamingIt) {
  ServeConfig config;
  const Status status = ApplyServeToml("[server]\nprot = 1\n", "quarry.toml", &config);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("server.prot"), std::string::npos) << status.message();
}

TEST(ServeConfigTest, WrongTypeIsAnErrorSayingTheExpectedType) {
  ServeConfig config;
  const Status status = ApplyServeToml("[server]\nport = \"80\"\n", "quarry.toml", &config);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("whole number"), std::string::npos) << status.message();
}

TEST(ServeConfigTest, MalformedTomlNamesTheLine) {
  ServeConfig config;
  const Status status = ApplyServeToml("[server]\nport = = 3\n", "quarry.toml", &config);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("quarry.toml:2"), std::string::npos) << status.message();
}

TEST(ServeConfigTest, EnvironmentOverridesTheFile) {
  ServeConfig config;
  ASSERT_TRUE(ApplyServeToml("[server]\nport = 9090\n", "quarry.toml", &config).ok());
  ASSERT_TRUE(ApplyServeEnvironment({{"QUARRY_PORT", "7070"}, {"QUARRY_EMBEDDED_SIM", "yes"}},
                                    &config)
                  .ok());
  EXPECT_EQ(config.port, 7070);
  EXPECT_TRUE(config.embedded_sim);
  EXPECT_FALSE(ApplyServeEnvironment({{"QUARRY_PORT", "80x"}}, &config).ok());
  EXPECT_FALSE(ApplyServeEnvironment({{"QUARRY_EMBEDDED_SIM", "maybe"}}, &config).ok());
}

TEST(ServeConfigTest, ValidationRejectsOutOfRangeAndConflicts) {
  ServeConfig config;
  config.port = 70000;
  EXPECT_FALSE(ValidateServeConfig(config).ok());
  config = ServeConfig();
  config.log_format = "xml";
  EXPECT_FALSE(ValidateServeConfig(config).ok());
  config = ServeConfig();
  config.embedded_sim = true;
  config.default_endpoint_url = "http://127.0.0.1:1";
  EXPECT_FALSE(ValidateServeConfig(config).ok());
  config = ServeConfig();
  config.admin_email = "nobody";
  EXPECT_FALSE(ValidateServeConfig(config).ok());
}

}  // namespace
}  // namespace quarry::cli
