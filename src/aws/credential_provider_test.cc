#include "aws/credential_provider.h"
#include "tests/support/scratch_dir.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <thread>

#include "aws/bearer_token.h"

namespace quarry::aws {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSecret[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr char kKeyId[] = "AKIAIOSFODNN7EXAMPLE";

using ::quarry::testing::ScratchDir;

// A hermetic chain: its own environment and files in a scratch directory.
class ChainTest : public ::testing::Test {
 protected:
  void WriteConfig(const std::string& text) { dir_.Write("config", text); }
  void WriteCredentials(const std::string& text) { dir_.Write("credentials", text); }

  CredentialChainOptions Options() {
    CredentialChainOptions options;
    options.environment = &env_;
    options.shared_files = SharedFilePaths{dir_.Path("config"), dir_.Path("credentials")};
    options.clock = &clock_;
    return options;
  }
  Result<Credentials> Resolve() { return CredentialChain(Options()).GetCredentials(); }
  Result<Credentials> Resolve(const CredentialChainOptions& options) {
    return CredentialChain(options).GetCredentials();
  }

  ScratchDir dir_;
  MapEnvironment env_;
  FakeClock clock_{WallTime{} + hours(24 * 365 * 55)};
};

// --- sources and order -----------------------------------------------------------

TEST_F(ChainTest, ExplicitCredentialsBeatTheEnvironment) {
  env_.Set("AWS_ACCESS_KEY_ID", "AKIDENV");
  env_.Set("AWS_SECRET_ACCESS_KEY", "env-secret");
  CredentialChainOptions options = Options();
  options.explicit_credentials = Credentials{kKeyId, kSecret, "token", std::nullopt, ""};
  Result<Credentials> credentials = Resolve(options);
  ASSERT_TRUE(credentials.ok()) << credentials.status().ToString();
  EXPECT_EQ(credentials->access_key_id, kKeyId);
  EXPECT_EQ(credentials->session_token, "token");
  EXPECT_EQ(credentials->source, "explicit");
}

TEST_F(ChainTest, ExplicitCredentialsWithoutASecretAreRejected) {
  CredentialChainOptions options = Options();
  options.explicit_credentials = Credentials{kKeyId, "", "", std::nullopt, ""};
  Result<Credentials> credentials = Resolve(options);
  ASSERT_FALSE(credentials.ok());
  EXPECT_THAT(credentials.status().message(), HasSubstr("no secret access key"));
}

TEST_F(ChainTest, EnvironmentBeatsTheProfile) {
  WriteCredentials(
      "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-secret\n");
  env_.Set("AWS_ACCESS_KEY_ID", "AKIDENV");
  env_.Set("AWS_SECRET_ACCESS_KEY", "env-secret");
  env_.Set("AWS_SESSION_TOKEN", "env-token");
  env_.Set("AWS_CREDENTIAL_EXPIRATION", "2030-01-02T03:04:05Z");
  Result<Credentials> credentials = Resolve();
  ASSERT_TRUE(credentials.ok()) << credentials.status().ToString();
  EXPECT_EQ(credentials->access_key_id, "AKIDENV");
  EXPECT_EQ(credentials->secret_access_key, "env-secret");
  EXPECT_EQ(credentials->session_token, "env-token");
  EXPECT_EQ(credentials->source, "environment");
  ASSERT_TRUE(credentials->expiration.has_value());
  EXPECT_EQ(FormatIso8601Utc(*credentials->expiration), "2030-01-02T03:04:05Z");
}

TEST_F(ChainTest, EnvironmentReadsTheLegacySecurityTokenName) {
  env_.Set("AWS_ACCESS_KEY_ID", "AKIDENV");
  env_.Set("AWS_SECRET_ACCESS_KEY", "env-secret");
  env_.Set("AWS_SECURITY_TOKEN", "legacy-token");
  EXPECT_EQ(Resolve()->session_token, "legacy-token");
}

TEST_F(ChainTest, AccessKeyWithoutSecretInTheEnvironmentIsAnError) {
  env_.Set("AWS_ACCESS_KEY_ID", "AKIDENV");
  WriteCredentials("[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = s\n");
  Result<Credentials> credentials = Resolve();
  ASSERT_FALSE(credentials.ok());
  EXPECT_THAT(credentials.status().message(), HasSubstr("AWS_SECRET_ACCESS_KEY is not"));
}

TEST_F(ChainTest, SecretWithoutAccessKeyInTheEnvironmentIsSkippedLikeBotocore) {
  env_.Set("AWS_SECRET_ACCESS_KEY", "orphan");
  WriteCredentials("[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = s\n");
  EXPECT_EQ(Resolve()->access_key_id, "AKIDFILE");
}

TEST_F(ChainTest, ReadsTheDefaultProfileFromTheCredentialsFile) {
  WriteCredentials(
      "# keys\n[default]\n aws_access_key_id = AKIDFILE \naws_secret_access_key=file-secret ; "
      "note\n"
      "aws_session_token = file-token\n");
  Result<Credentials> credentials = Resolve();
  ASSERT_TRUE(credentials.ok()) << credentials.status().ToString();
  EXPECT_EQ(credentials->access_key_id, "AKIDFILE");
  EXPECT_EQ(credentials->secret_access_key, "file-secret");
  EXPECT_EQ(credentials->session_token, "file-token");
  EXPECT_EQ(credentials->source, "profile default (credentials file)");
}

TEST_F(ChainTest, AwsProfileSelectsTheProfileAndOptionsOverrideIt) {
  WriteCredentials(
      "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s\n"
      "[dev]\naws_access_key_id = AKIDDEV\naws_secret_access_key = s\n");
  WriteConfig("[profile prod]\naws_access_key_id = AKIDPROD\naws_secret_access_key = s\n");
  env_.Set("AWS_PROFILE", "dev");
  EXPECT_EQ(Resolve()->access_key_id, "AKIDDEV");
  CredentialChainOptions options = Options();
  options.profile = "prod";
  Result<Credentials> prod = Resolve(options);
  ASSERT_TRUE(prod.ok()) << prod.status().ToString();
  EXPECT_EQ(prod->access_key_id, "AKIDPROD");
  EXPECT_EQ(prod->source, "profile prod (config file)");
}

TEST_F(ChainTest, CredentialsFileBeatsCredentialProcessWhichBeatsConfigKeys) {
  WriteConfig(
      "[profile p]\naws_access_key_id = AKIDCONFIG\naws_secret_access_key = s\n"
      "credential_process = printf "
      "'{\"Version\":1,\"AccessKeyId\":\"AKIDPROCESS\",\"SecretAccessKey\":\"s\"}'\n");
  CredentialChainOptions options = Options();
  options.profile = "p";
  EXPECT_EQ(Resolve(options)->access_key_id, "AKIDPROCESS");
  WriteCredentials("[p]\naws_access_key_id = AKIDCREDS\naws_secret_access_key = s\n");
  EXPECT_EQ(Resolve(options)->access_key_id, "AKIDCREDS");
}

TEST_F(ChainTest, PartialKeysInAProfileNameTheFileAndLine) {
  WriteCredentials("[default]\n\naws_access_key_id = AKIDFILE\n");
  Result<Credentials> credentials = Resolve();
  ASSERT_FALSE(credentials.ok());
  EXPECT_THAT(credentials.status().message(), AllOf(HasSubstr("no aws_secret_access_key"),
                                                    HasSubstr(dir_.Path("credentials") + ":3")));
}

TEST_F(ChainTest, ANamedProfileThatDoesNotExistIsAnErrorNamingItAndTheFiles) {
  WriteConfig("[dev]\nregion = us-east-1\n[profile other]\nregion = us-east-1\n");
  env_.Set("AWS_PROFILE", "dev");
  Result<Credentials> credentials = Resolve();
  ASSERT_FALSE(credentials.ok());
  EXPECT_EQ(credentials.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(
      credentials.status().message(),
      AllOf(HasSubstr("profile 'dev' (from AWS_PROFILE) does not exist"),
            HasSubstr(dir_.Path("config")), HasSubstr(dir_.Path("credentials") + " (not found)"),
            HasSubstr("profiles found: other"), HasSubstr("written [profile dev]")));
}

TEST_F(ChainTest, MalformedFilesAreReportedWithTheLineNumber) {
  WriteConfig("[default]\nregion = us-east-1\nnonsense\n");
  Result<Credentials> credentials = Resolve();
  ASSERT_FALSE(credentials.ok());
  EXPECT_THAT(credentials.status().message(), HasSubstr(dir_.Path("config") + ":3:"));
}

TEST_F(ChainTest, WhenNothingIsFoundEverySourceAndTheFixAreListed) {
  env_.Set("AWS_ACCESS_KEY", "AKIDLEGACY");
  env_.Set("AWS_SECRET_KEY", "legacy-secret");
  WriteConfig("[default]\nregion = us-east-1\n");
  Result<Credentials> credentials = Resolve();
  ASSERT_FALSE(credentials.ok());
  EXPECT_EQ(credentials.status().code(), StatusCode::kFailedPrecondition);
  const std::string message = credentials.status().message();
  EXPECT_THAT(message,
              AllOf(HasSubstr("no AWS credentials found"), HasSubstr("1. explicit credentials"),
                    HasSubstr("2. environment: AWS_ACCESS_KEY_ID is not set"),
                    HasSubstr("old Java SDK names"),
                    HasSubstr("3. shared files: profile 'default' exists but has no credentials"),
                    HasSubstr("container credentials"), HasSubstr("EC2 instance metadata"),
                    HasSubstr("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
                    HasSubstr("set AWS_PROFILE"), HasSubstr("[default] section")));
  EXPECT_THAT(message, AllOf(Not(HasSubstr("AKIDLEGACY")), Not(HasSubstr("legacy-secret"))));
}

TEST_F(ChainTest, AMissingDefaultProfileIsListedNotFatal) {
  Result<Credentials> credentials = Resolve();
  ASSERT_FALSE(credentials.ok());
  EXPECT_EQ(credentials.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(credentials.status().message(), HasSubstr("no profile 'default' in config file"));
}

TEST_F(ChainTest, SsoProfilesSayWhatToDoInstead) {
  WriteConfig("[profile corp]\nsso_session = corp\nsso_account_id = 123456789012\n");
  CredentialChainOptions options = Options();
  options.profile = "corp";
  Result<Credentials> credentials = Resolve(options);
  ASSERT_FALSE(credentials.ok());
  EXPECT_THAT(credentials.status().message(),
              HasSubstr("export-credentials --profile corp --format process"));
}

// --- credential_process ------------------------------------------------------------

ProcessOptions ShortTimeout() {
  ProcessOptions options;
  options.timeout = std::chrono::milliseconds(300);
  return options;
}

TEST(CredentialProcessTest, ParsesTheCommandsJson) {
  Result<Credentials> credentials = RunCredentialProcess(
      "printf '%s' '{\"Version\": 1, \"AccessKeyId\": \"AKIDPROC\", \"SecretAccessKey\": "
      "\"proc-secret\", "
      "\"SessionToken\": \"proc-token\", \"Expiration\": \"2030-05-06T07:08:09Z\"}'",
      ProcessOptions(), "profile 'p'");
  ASSERT_TRUE(credentials.ok()) << credentials.status().ToString();
  EXPECT_EQ(credentials->access_key_id, "AKIDPROC");
  EXPECT_EQ(credentials->secret_access_key, "proc-secret");
  EXPECT_EQ(credentials->session_token, "proc-token");
  EXPECT_EQ(FormatIso8601Utc(*credentials->expiration), "2030-05-06T07:08:09Z");
}

TEST(CredentialProcessTest, RunsThroughTheShell) {
  Result<Credentials> credentials = RunCredentialProcess(
      "A=AKIDSHELL; printf '{\"Version\":1,\"AccessKeyId\":\"%s\",\"SecretAccessKey\":\"x\"}' "
      "\"$A\" | cat",
      ProcessOptions(), "profile 'p'");
  ASSERT_TRUE(credentials.ok()) << credentials.status().ToString();
  EXPECT_EQ(credentials->access_key_id, "AKIDSHELL");
  EXPECT_FALSE(credentials->expiration.has_value());
  EXPECT_FALSE(credentials->HasSessionToken());
}

TEST(CredentialProcessTest, NonZeroExitReportsTheStatusAndFirstStderrLine) {
  Result<Credentials> credentials =
      RunCredentialProcess("echo; echo 'token expired, run login' >&2; echo second >&2; exit 3",
                           ShortTimeout(), "profile 'p'");
  ASSERT_FALSE(credentials.ok());
  EXPECT_EQ(credentials.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(
      credentials.status().message(),
      AllOf(HasSubstr("profile 'p'"), HasSubstr("exited with status 3: token expired, run login"),
            Not(HasSubstr("second"))));
}

TEST(CredentialProcessTest, ACommandThatHangsIsKilledAtTheTimeout) {
  Result<Credentials> credentials = RunCredentialProcess("sleep 5", ShortTimeout(), "profile 'p'");
  ASSERT_FALSE(credentials.ok());
  EXPECT_EQ(credentials.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_THAT(credentials.status().message(), HasSubstr("did not finish within 300 ms"));
}

TEST(CredentialProcessTest, OversizedOutputIsRejected) {
  Result<Credentials> credentials =
      RunCredentialProcess("head -c 200000 /dev/zero", ProcessOptions(), "p");
  ASSERT_FALSE(credentials.ok());
  EXPECT_THAT(credentials.status().message(), HasSubstr("more than 65536 bytes"));
}

TEST(CredentialProcessTest, BadOutputIsExplainedWithoutEchoingIt) {
  struct Case {
    std::string output;
    std::string expected;
  };
  const std::string secret = kSecret;
  const Case cases[] = {
      {"not json " + secret, "did not print a JSON object"},
      {"[1,2]", "did not print a JSON object"},
      {"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"" + secret + "\"}", "without \"Version\""},
      {"{\"Version\":2,\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"" + secret + "\"}",
       "\"Version\": 2"},
      {"{\"Version\":\"1\",\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"" + secret + "\"}",
       "\"Version\": a string"},
      {"{\"Version\":1,\"SecretAccessKey\":\"" + secret + "\"}", "\"AccessKeyId\""},
      {"{\"Version\":1,\"AccessKeyId\":\"A\"}", "\"SecretAccessKey\""},
      {"{\"Version\":1,\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"" + secret +
           "\",\"Expiration\":\"soon\"}",
       "\"Expiration\""},
  };
  for (const Case& c : cases) {
    Result<Credentials> credentials = ParseCredentialProcessOutput(c.output, "profile 'p'");
    ASSERT_FALSE(credentials.ok()) << c.expected;
    EXPECT_THAT(credentials.status().message(),
                AllOf(HasSubstr(c.expected), Not(HasSubstr(secret))));
  }
}

TEST(CredentialProcessTest, AcceptsAnExpirationWithANumericOffset) {
  Result<Credentials> credentials = ParseCredentialProcessOutput(
      "{\"Version\":1,\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\",\"Expiration\":\"2030-01-"
      "01T02:00:00+02:00\"}",
      "p");
  ASSERT_TRUE(credentials.ok()) << credentials.status().ToString();
  EXPECT_EQ(FormatIso8601Utc(*credentials->expiration), "2030-01-01T00:00:00Z");
}

TEST_F(ChainTest, AFailingCredentialProcessNamesTheProfileAndLine) {
  WriteConfig("[default]\n# comment\ncredential_process = exit 7\n");
  Result<Credentials> credentials = Resolve();
  ASSERT_FALSE(credentials.ok());
  EXPECT_THAT(credentials.status().message(),
              AllOf(HasSubstr(dir_.Path("config") + ":3"), HasSubstr("exited with status 7")));
}

// --- AssumeRole ----------------------------------------------------------------------

class FakeRoleAssumer : public RoleAssumer {
 public:
  Result<Credentials> AssumeRole(const AssumeRoleRequest& request,
                                 const Credentials& source) override {
    std::lock_guard<std::mutex> lock(mutex_);
    requests.push_back(request);
    sources.push_back(source);
    if (!fail_with.ok()) return fail_with;
    Credentials out;
    out.access_key_id = "ASIA" + std::to_string(requests.size());
    out.secret_access_key = "assumed-secret";
    out.session_token = "assumed-token";
    out.expiration = WallTime{} + hours(1);
    return out;
  }
  std::mutex mutex_;
  std::vector<AssumeRoleRequest> requests;
  std::vector<Credentials> sources;
  Status fail_with;
};

constexpr char kRoleArn[] = "arn:aws:iam::123456789012:role/Bedrock";

TEST_F(ChainTest, ParsesEveryAssumeRoleSetting) {
  WriteConfig(std::string("[profile r]\nrole_arn = ") + kRoleArn +
              "\nsource_profile = base\nexternal_id = ext-1\nrole_session_name = quarry-test\n"
              "duration_seconds = 3600\nmfa_serial = arn:aws:iam::123456789012:mfa/ann\n");
  Result<SharedConfig> config = SharedConfig::Load({dir_.Path("config"), dir_.Path("credentials")});
  ASSERT_TRUE(config.ok());
  Result<AssumeRoleConfig> role = ParseAssumeRoleConfig(*config, "r");
  ASSERT_TRUE(role.ok()) << role.status().ToString();
  EXPECT_EQ(role->role_arn, kRoleArn);
  EXPECT_EQ(role->source_profile, "base");
  EXPECT_EQ(role->external_id, "ext-1");
  EXPECT_EQ(role->role_session_name, "quarry-test");
  EXPECT_EQ(role->duration, seconds(3600));
  EXPECT_EQ(role->mfa_serial, "arn:aws:iam::123456789012:mfa/ann");
  EXPECT_EQ(role->where, dir_.Path("config") + ":2");
  std::ostringstream debug;
  debug << *role;
  EXPECT_THAT(debug.str(),
              AllOf(HasSubstr(kRoleArn), HasSubstr("external_id=<set>"), Not(HasSubstr("ext-1"))));
}

TEST_F(ChainTest, RejectsInvalidAssumeRoleSettings) {
  const std::string arn = kRoleArn;
  struct Case {
    std::string profile;
    std::string expected;
  };
  WriteConfig(
      "[profile both]\nrole_arn = " + arn +
      "\nsource_profile = a\ncredential_source = Environment\n" + "[profile neither]\nrole_arn = " +
      arn + "\n" + "[profile badarn]\nrole_arn = arn:aws:s3:::bucket\nsource_profile = a\n" +
      "[profile short]\nrole_arn = " + arn + "\nsource_profile = a\nduration_seconds = 60\n" +
      "[profile word]\nrole_arn = " + arn + "\nsource_profile = a\nduration_seconds = 1h\n");
  Result<SharedConfig> config = SharedConfig::Load({dir_.Path("config"), dir_.Path("credentials")});
  ASSERT_TRUE(config.ok());
  const Case cases[] = {{"both", "both source_profile and credential_source"},
                        {"neither", "neither source_profile nor credential_source"},
                        {"badarn", "not an IAM role ARN"},
                        {"short", "from 900 to 43200"},
                        {"word", "from 900 to 43200"}};
  for (const Case& c : cases) {
    Result<AssumeRoleConfig> role = ParseAssumeRoleConfig(*config, c.profile);
    ASSERT_FALSE(role.ok()) << c.profile;
    EXPECT_THAT(role.status().message(), HasSubstr(c.expected)) << c.profile;
  }
}

TEST_F(ChainTest, AssumesTheRoleWithTheSourceProfilesKeys) {
  WriteConfig(std::string("[default]\nrole_arn = ") + kRoleArn +
              "\nsource_profile = base\nexternal_id = ext-1\nduration_seconds = 900\n");
  WriteCredentials("[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = base-secret\n");
  FakeRoleAssumer assumer;
  CredentialChainOptions options = Options();
  options.role_assumer = &assumer;
  Result<Credentials> credentials = Resolve(options);
  ASSERT_TRUE(credentials.ok()) << credentials.status().ToString();
  EXPECT_EQ(credentials->access_key_id, "ASIA1");
  EXPECT_EQ(credentials->source, std::string("profile default (assume role ") + kRoleArn + ")");
  ASSERT_EQ(assumer.requests.size(), 1u);
  EXPECT_EQ(assumer.requests[0].role_arn, kRoleArn);
  EXPECT_EQ(assumer.requests[0].external_id, "ext-1");
  EXPECT_EQ(assumer.requests[0].duration, seconds(900));
  EXPECT_EQ(assumer.requests[0].profile, "default");
  EXPECT_THAT(assumer.requests[0].role_session_name, HasSubstr("quarry-session-"));
  EXPECT_EQ(assumer.sources[0].access_key_id, "AKIDBASE");
}

TEST_F(ChainTest, ChainsRolesFromTheInnermostOut) {
  WriteConfig(
      "[profile outer]\nrole_arn = arn:aws:iam::111111111111:role/Outer\nsource_profile = middle\n"
      "[profile middle]\nrole_arn = arn:aws:iam::222222222222:role/Middle\nsource_profile = base\n"
      "[profile base]\ncredential_process = printf "
      "'{\"Version\":1,\"AccessKeyId\":\"AKIDPROC\",\"SecretAccessKey\":\"s\"}'\n");
  FakeRoleAssumer assumer;
  CredentialChainOptions options = Options();
  options.profile = "outer";
  options.role_assumer = &assumer;
  Result<Credentials> credentials = Resolve(options);
  ASSERT_TRUE(credentials.ok()) << credentials.status().ToString();
  ASSERT_EQ(assumer.requests.size(), 2u);
  EXPECT_EQ(assumer.requests[0].role_arn, "arn:aws:iam::222222222222:role/Middle");
  EXPECT_EQ(assumer.sources[0].access_key_id, "AKIDPROC");
  EXPECT_EQ(assumer.requests[1].role_arn, "arn:aws:iam::111111111111:role/Outer");
  EXPECT_EQ(assumer.sources[1].access_key_id, "ASIA1");
  EXPECT_EQ(credentials->access_key_id, "ASIA2");
}

TEST_F(ChainTest, AProfileMaySourceItsOwnStaticKeys) {
  WriteCredentials(
      std::string(
          "[default]\naws_access_key_id = AKIDSELF\naws_secret_access_key = s\nrole_arn = ") +
      kRoleArn + "\nsource_profile = default\n");
  FakeRoleAssumer assumer;
  CredentialChainOptions options = Options();
  options.role_assumer = &assumer;
  Result<Credentials> credentials = Resolve(options);
  ASSERT_TRUE(credentials.ok()) << credentials.status().ToString();
  EXPECT_EQ(assumer.sources.at(0).access_key_id, "AKIDSELF");
}

TEST_F(ChainTest, CredentialSourceEnvironmentUsesTheEnvironmentKeysAsTheSource) {
  WriteConfig(std::string("[profile r]\nrole_arn = ") + kRoleArn +
              "\ncredential_source = Environment\n");
  FakeRoleAssumer assumer;
  CredentialChainOptions options = Options();
  options.profile = "r";
  options.role_assumer = &assumer;
  Result<Credentials> missing = Resolve(options);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("credential_source = Environment"));
  // With keys in the environment the env source itself wins (chain order), so
  // exercise credential_source through a profile chain instead.
  WriteConfig(std::string("[profile r]\nrole_arn = ") + kRoleArn +
              "\ncredential_source = Ec2InstanceMetadata\n");
  EXPECT_THAT(Resolve(options).status().message(), HasSubstr("cannot fetch"));
}

TEST_F(ChainTest, DetectsSourceProfileCycles) {
  WriteConfig(
      "[profile a]\nrole_arn = arn:aws:iam::1:role/A\nsource_profile = b\n"
      "[profile b]\nrole_arn = arn:aws:iam::1:role/B\nsource_profile = a\n"
      "[profile self]\nrole_arn = arn:aws:iam::1:role/S\nsource_profile = self\n");
  FakeRoleAssumer assumer;
  CredentialChainOptions options = Options();
  options.role_assumer = &assumer;
  options.profile = "a";
  Result<Credentials> credentials = Resolve(options);
  ASSERT_FALSE(credentials.ok());
  EXPECT_THAT(credentials.status().message(), HasSubstr("loops: a -> b -> a"));
  options.profile = "self";
  EXPECT_THAT(Resolve(options).status().message(), HasSubstr("loops: self -> self"));
  EXPECT_TRUE(assumer.requests.empty());
}

TEST_F(ChainTest, AMissingSourceProfileIsNamed) {
  WriteConfig(std::string("[default]\nrole_arn = ") + kRoleArn + "\nsource_profile = nowhere\n");
  FakeRoleAssumer assumer;
  CredentialChainOptions options = Options();
  options.role_assumer = &assumer;
  EXPECT_THAT(Resolve(options).status().message(),
              HasSubstr("source_profile 'nowhere' of profile 'default'"));
}

TEST_F(ChainTest, WithoutARoleAssumerAnAssumeRoleProfileFailsClearly) {
  // The source's credential_process would fail; it must not even run.
  WriteConfig(std::string("[default]\nrole_arn = ") + kRoleArn +
              "\nsource_profile = base\n[profile base]\ncredential_process = exit 9\n");
  Result<Credentials> credentials = Resolve();
  ASSERT_FALSE(credentials.ok());
  EXPECT_THAT(credentials.status().message(),
              AllOf(HasSubstr(std::string("profile 'default' assumes role ") + kRoleArn),
                    HasSubstr("no STS client wired in here"), Not(HasSubstr("status 9"))));
}

TEST_F(ChainTest, AssumeRoleFailuresCarryTheRoleAndProfile) {
  WriteConfig(std::string("[default]\nrole_arn = ") + kRoleArn + "\nsource_profile = base\n");
  WriteCredentials("[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = s\n");
  FakeRoleAssumer assumer;
  assumer.fail_with = PermissionDeniedError("not authorized to perform sts:AssumeRole");
  CredentialChainOptions options = Options();
  options.role_assumer = &assumer;
  Result<Credentials> credentials = Resolve(options);
  ASSERT_FALSE(credentials.ok());
  EXPECT_EQ(credentials.status().code(), StatusCode::kPermissionDenied);
  EXPECT_THAT(
      credentials.status().message(),
      AllOf(HasSubstr(kRoleArn), HasSubstr("profile 'default'"), HasSubstr("sts:AssumeRole")));
}

// --- region ---------------------------------------------------------------------------

TEST_F(ChainTest, RegionComesFromAwsRegionThenAwsDefaultRegionThenTheProfile) {
  WriteConfig("[profile dev]\nregion = eu-central-1\n");
  CredentialChainOptions options = Options();
  options.profile = "dev";
  Result<ResolvedRegion> region = ResolveRegion(options);
  ASSERT_TRUE(region.ok()) << region.status().ToString();
  EXPECT_EQ(region->region, "eu-central-1");
  EXPECT_EQ(region->source, "profile dev (" + dir_.Path("config") + ":2)");
  env_.Set("AWS_DEFAULT_REGION", "us-west-2");
  EXPECT_EQ(ResolveRegion(options)->region, "us-west-2");
  env_.Set("AWS_REGION", "ap-northeast-1");
  EXPECT_EQ(ResolveRegion(options)->region, "ap-northeast-1");
  EXPECT_EQ(ResolveRegion(options)->source, "AWS_REGION");
}

TEST_F(ChainTest, NoRegionSaysHowToSetOne) {
  Result<ResolvedRegion> region = ResolveRegion(Options());
  ASSERT_FALSE(region.ok());
  EXPECT_THAT(region.status().message(),
              AllOf(HasSubstr("set AWS_REGION"), HasSubstr("region = us-east-1")));
}

// --- CA bundle ------------------------------------------------------------------------

TEST_F(ChainTest, CaBundleComesFromAwsCaBundleThenTheProfile) {
  Result<ResolvedCaBundle> none = ResolveCaBundle(Options());
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ(none->path, "");  // the system's store

  WriteConfig("[profile dev]\nregion = eu-central-1\nca_bundle = /etc/proxy-ca.pem\n");
  CredentialChainOptions options = Options();
  options.profile = "dev";
  Result<ResolvedCaBundle> from_profile = ResolveCaBundle(options);
  ASSERT_TRUE(from_profile.ok()) << from_profile.status().ToString();
  EXPECT_EQ(from_profile->path, "/etc/proxy-ca.pem");
  EXPECT_EQ(from_profile->source, "profile dev (" + dir_.Path("config") + ":3)");

  env_.Set("AWS_CA_BUNDLE", "/srv/ca.pem");
  EXPECT_EQ(ResolveCaBundle(options)->path, "/srv/ca.pem");
  EXPECT_EQ(ResolveCaBundle(options)->source, "AWS_CA_BUNDLE");

  options.profile = "missing";
  env_.Set("AWS_CA_BUNDLE", "");
  EXPECT_EQ(ResolveCaBundle(options).status().code(), StatusCode::kNotFound);
}

// --- caching and refresh ---------------------------------------------------------------

class ScriptedProvider : public CredentialProvider {
 public:
  Result<Credentials> GetCredentials() override {
    ++calls;
    return next();
  }
  std::atomic<int> calls{0};
  std::function<Result<Credentials>()> next;
};

Credentials Expiring(const std::string& key_id, WallTime expiration) {
  return Credentials{key_id, "secret", "token", expiration, "test"};
}

TEST(CachingCredentialProviderTest, LongTermCredentialsAreFetchedOnce) {
  FakeClock clock;
  auto inner = std::make_shared<ScriptedProvider>();
  inner->next = [] { return Credentials{"AKID", "s", "", std::nullopt, "test"}; };
  CachingCredentialProvider provider(inner, clock);
  EXPECT_TRUE(provider.GetCredentials().ok());
  clock.Advance(hours(24 * 30));
  EXPECT_TRUE(provider.GetCredentials().ok());
  EXPECT_EQ(inner->calls, 1);
}

TEST(CachingCredentialProviderTest, RefreshesWithinFiveMinutesOfExpiry) {
  FakeClock clock;
  const WallTime start = clock.Now();
  auto inner = std::make_shared<ScriptedProvider>();
  int serial = 0;
  inner->next = [&] { return Expiring("ASIA" + std::to_string(++serial), clock.Now() + hours(1)); };
  CachingCredentialProvider provider(inner, clock);
  EXPECT_EQ(provider.GetCredentials()->access_key_id, "ASIA1");
  clock.SetNow(start + minutes(54));
  EXPECT_EQ(provider.GetCredentials()->access_key_id, "ASIA1");
  EXPECT_EQ(inner->calls, 1);
  clock.SetNow(start + minutes(55) + seconds(1));
  EXPECT_EQ(provider.GetCredentials()->access_key_id, "ASIA2");
  EXPECT_EQ(inner->calls, 2);
}

TEST(CachingCredentialProviderTest, AFailedRefreshKeepsValidCredentialsAndIsReported) {
  FakeClock clock;
  const WallTime start = clock.Now();
  auto inner = std::make_shared<ScriptedProvider>();
  inner->next = [&] { return Expiring("ASIA1", start + hours(1)); };
  CachingCredentialProvider provider(inner, clock);
  ASSERT_TRUE(provider.GetCredentials().ok());
  inner->next = [] { return Result<Credentials>(UnavailableError("sts is down")); };

  clock.SetNow(start + minutes(57));
  Result<Credentials> kept = provider.GetCredentials();
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->access_key_id, "ASIA1");
  EXPECT_THAT(provider.LastRefreshError().message(), HasSubstr("sts is down"));
  EXPECT_EQ(inner->calls, 2);

  // Not retried on every call: only after the retry interval.
  clock.Advance(seconds(10));
  EXPECT_TRUE(provider.GetCredentials().ok());
  EXPECT_EQ(inner->calls, 2);
  clock.Advance(seconds(30));
  EXPECT_TRUE(provider.GetCredentials().ok());
  EXPECT_EQ(inner->calls, 3);

  // Once expired, the failure is the answer.
  clock.SetNow(start + hours(1));
  Result<Credentials> expired = provider.GetCredentials();
  ASSERT_FALSE(expired.ok());
  EXPECT_THAT(expired.status().message(), AllOf(HasSubstr("expired at"), HasSubstr("sts is down")));
  EXPECT_EQ(inner->calls, 4);

  // And a later success recovers.
  inner->next = [&] { return Expiring("ASIA2", clock.Now() + hours(1)); };
  EXPECT_EQ(provider.GetCredentials()->access_key_id, "ASIA2");
  EXPECT_TRUE(provider.LastRefreshError().ok());
}

// Blocks GetCredentials until released.
class GatedProvider : public CredentialProvider {
 public:
  Result<Credentials> GetCredentials() override {
    std::unique_lock<std::mutex> lock(mutex);
    ++calls;
    entered.notify_all();
    released.wait(lock, [&] { return open; });
    return result;
  }
  void WaitUntilEntered(int n) {
    std::unique_lock<std::mutex> lock(mutex);
    entered.wait(lock, [&] { return calls >= n; });
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mutex);
    open = true;
    released.notify_all();
  }
  std::mutex mutex;
  std::condition_variable entered;
  std::condition_variable released;
  int calls = 0;
  bool open = false;
  Credentials result;
};

TEST(CachingCredentialProviderTest, ConcurrentCallersShareOneRefresh) {
  FakeClock clock;
  auto inner = std::make_shared<GatedProvider>();
  inner->result = Expiring("ASIA1", clock.Now() + hours(1));
  CachingCredentialProvider provider(inner, clock);
  constexpr int kThreads = 6;
  std::vector<std::thread> threads;
  std::vector<std::string> seen(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      Result<Credentials> credentials = provider.GetCredentials();
      seen[i] = credentials.ok() ? credentials->access_key_id : credentials.status().ToString();
    });
  }
  inner->WaitUntilEntered(1);
  while (provider.WaitingCallersForTest() < kThreads - 1) std::this_thread::yield();
  inner->Release();
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(inner->calls, 1);
  for (const std::string& key_id : seen) EXPECT_EQ(key_id, "ASIA1");
}

TEST(CachingCredentialProviderTest, CallersDuringARefreshGetTheStillValidCredentials) {
  FakeClock clock;
  const WallTime start = clock.Now();
  auto inner = std::make_shared<GatedProvider>();
  inner->result = Expiring("ASIA1", start + hours(1));
  inner->open = true;
  CachingCredentialProvider provider(inner, clock);
  ASSERT_TRUE(provider.GetCredentials().ok());
  {
    std::lock_guard<std::mutex> lock(inner->mutex);
    inner->open = false;
    inner->result = Expiring("ASIA2", start + hours(2));
  }
  clock.SetNow(start + minutes(58));
  std::thread refresher([&] { EXPECT_EQ(provider.GetCredentials()->access_key_id, "ASIA2"); });
  inner->WaitUntilEntered(2);
  // The refresh is blocked; this caller must not wait for it.
  EXPECT_EQ(provider.GetCredentials()->access_key_id, "ASIA1");
  inner->Release();
  refresher.join();
  EXPECT_EQ(provider.GetCredentials()->access_key_id, "ASIA2");
  EXPECT_EQ(inner->calls, 2);
}

TEST(CachingCredentialProviderTest, CredentialsWithoutWaitingNeverCallsTheSource) {
  FakeClock clock;
  const WallTime start = clock.Now();
  auto inner = std::make_shared<ScriptedProvider>();
  inner->next = [&] { return Expiring("ASIA1", start + hours(1)); };
  CachingCredentialProvider provider(inner, clock);
  // Nothing fetched yet: getting credentials would call the source.
  EXPECT_FALSE(provider.CredentialsWithoutWaiting().has_value());
  EXPECT_EQ(inner->calls, 0);

  ASSERT_TRUE(provider.GetCredentials().ok());
  std::optional<Credentials> at_hand = provider.CredentialsWithoutWaiting();
  ASSERT_TRUE(at_hand.has_value());
  EXPECT_EQ(at_hand->access_key_id, "ASIA1");

  // Inside the refresh window: GetCredentials would refresh, so not at hand.
  clock.SetNow(start + minutes(56));
  EXPECT_FALSE(provider.CredentialsWithoutWaiting().has_value());
  // A failed refresh keeps the valid ones, and until its retry is due they are
  // at hand again.
  inner->next = [] { return Result<Credentials>(UnavailableError("sts is down")); };
  ASSERT_TRUE(provider.GetCredentials().ok());
  EXPECT_EQ(provider.CredentialsWithoutWaiting()->access_key_id, "ASIA1");
  clock.Advance(seconds(31));
  EXPECT_FALSE(provider.CredentialsWithoutWaiting().has_value());
  // Expired: never at hand.
  clock.SetNow(start + hours(1));
  EXPECT_FALSE(provider.CredentialsWithoutWaiting().has_value());
  EXPECT_EQ(inner->calls, 2);
}

TEST(StaticCredentialProviderTest, CredentialsWithoutWaitingAreTheKeysOrNothing) {
  StaticCredentialProvider keys(Credentials{"AKID", "secret", "", std::nullopt, ""});
  ASSERT_TRUE(keys.CredentialsWithoutWaiting().has_value());
  EXPECT_EQ(keys.CredentialsWithoutWaiting()->source, "explicit");
  // Incomplete keys: the blocking path reports what is missing.
  StaticCredentialProvider no_secret(Credentials{"AKID", "", "", std::nullopt, ""});
  EXPECT_FALSE(no_secret.CredentialsWithoutWaiting().has_value());
  EXPECT_FALSE(no_secret.GetCredentials().ok());
}

TEST(CachingCredentialProviderTest, DefaultProviderCachesTheChain) {
  MapEnvironment env({{"AWS_ACCESS_KEY_ID", "AKIDENV"}, {"AWS_SECRET_ACCESS_KEY", "s"}});
  CredentialChainOptions options;
  options.environment = &env;
  options.shared_files = SharedFilePaths{"", ""};
  std::shared_ptr<CredentialProvider> provider = MakeDefaultCredentialProvider(options);
  EXPECT_EQ(provider->GetCredentials()->access_key_id, "AKIDENV");
}

// --- bearer tokens ------------------------------------------------------------------

constexpr char kBearer[] = "ABSKQmVkcm9ja0FQSUtleS1leGFtcGxlLXNlY3JldC12YWx1ZQ==";

TEST(BearerTokenTest, ReadsTheEnvironmentAndPrefersAnExplicitToken) {
  MapEnvironment env({{"AWS_BEARER_TOKEN_BEDROCK", std::string(kBearer) + "\n"}});
  Result<std::optional<BearerToken>> from_env = ResolveBedrockBearerToken(std::nullopt, env);
  ASSERT_TRUE(from_env.ok());
  ASSERT_TRUE(from_env->has_value());
  EXPECT_EQ((*from_env)->token(), kBearer);
  EXPECT_EQ((*from_env)->source(), "environment AWS_BEARER_TOKEN_BEDROCK");
  Result<std::optional<BearerToken>> explicit_token =
      ResolveBedrockBearerToken("bedrock-api-key-xyz", env);
  EXPECT_EQ((*explicit_token)->token(), "bedrock-api-key-xyz");
  EXPECT_FALSE(ResolveBedrockBearerToken(std::nullopt, MapEnvironment())->has_value());
}

TEST(BearerTokenTest, RejectsTokensThatCouldInjectHeadersWithoutEchoingThem) {
  Result<BearerToken> token =
      BearerToken::Create(std::string(kBearer) + "\r\nX-Evil: 1", "explicit");
  ASSERT_FALSE(token.ok());
  EXPECT_THAT(token.status().message(), AllOf(HasSubstr("position"), Not(HasSubstr(kBearer))));
  EXPECT_FALSE(BearerToken::Create("  ", "explicit").ok());
  EXPECT_FALSE(BearerToken::Create(std::string(kMaxBearerTokenBytes + 1, 'a'), "explicit").ok());
}

TEST(BearerTokenTest, PicksBearerOnlyWhereBedrockAcceptsIt) {
  const ConfiguredAuth both{true, true};
  const ConfiguredAuth bearer_only{true, false};
  const ConfiguredAuth sigv4_only{false, true};
  EXPECT_EQ(*SelectAuthScheme(AwsService::kBedrockRuntime, both), AuthScheme::kBearer);
  EXPECT_EQ(*SelectAuthScheme(AwsService::kBedrock, bearer_only), AuthScheme::kBearer);
  EXPECT_EQ(*SelectAuthScheme(AwsService::kBedrockRuntime, sigv4_only), AuthScheme::kSigV4);
  EXPECT_EQ(*SelectAuthScheme(AwsService::kBedrockAgentRuntime, both), AuthScheme::kSigV4);
  EXPECT_EQ(*SelectAuthScheme(AwsService::kBedrockAgent, both), AuthScheme::kSigV4);
  EXPECT_EQ(*SelectAuthScheme(AwsService::kSts, both), AuthScheme::kSigV4);
  EXPECT_FALSE(SelectAuthScheme(AwsService::kSts, bearer_only).ok());
  EXPECT_THAT(SelectAuthScheme(AwsService::kBedrockRuntime, {}).status().message(),
              HasSubstr("AWS_BEARER_TOKEN_BEDROCK"));
}

TEST(BearerTokenTest, AgentsWithOnlyAnApiKeyExplainWhatToConfigure) {
  for (AwsService endpoint :
       {AwsService::kBedrockAgentRuntime, AwsService::kBedrockAgent}) {
    Result<AuthScheme> scheme = SelectAuthScheme(endpoint, ConfiguredAuth{true, false});
    ASSERT_FALSE(scheme.ok());
    EXPECT_EQ(scheme.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_THAT(scheme.status().message(),
                AllOf(HasSubstr("not accepted by Agents for Amazon Bedrock"),
                      HasSubstr("InvokeAgent"), HasSubstr("SigV4"), HasSubstr("AWS_ACCESS_KEY_ID"),
                      HasSubstr("AWS_PROFILE"), HasSubstr("role")));
  }
}

TEST(BearerTokenTest, MapsEndpointNames) {
  EXPECT_EQ(*AwsServiceFromEndpointPrefix("bedrock-agent-runtime"), AwsService::kBedrockAgentRuntime);
  EXPECT_EQ(*AwsServiceFromEndpointPrefix("bedrock"), AwsService::kBedrock);
  EXPECT_EQ(ServiceEndpointPrefix(AwsService::kBedrockRuntime), "bedrock-runtime");
  EXPECT_FALSE(AwsServiceFromEndpointPrefix("s3").ok());
  EXPECT_TRUE(AcceptsBearerToken(AwsService::kBedrockRuntime));
  EXPECT_FALSE(AcceptsBearerToken(AwsService::kBedrockAgentRuntime));
}

// --- masking ----------------------------------------------------------------------

TEST(MaskingTest, NoDebugFormContainsASecret) {
  Credentials credentials{kKeyId, kSecret, "FwoGZXIvYXdzEXAMPLETOKEN", std::nullopt, "environment"};
  std::ostringstream stream;
  stream << credentials;
  for (const std::string& text : {credentials.ToString(), stream.str()}) {
    EXPECT_THAT(text, AllOf(Not(HasSubstr(kSecret)), Not(HasSubstr("FwoGZXIvYXdzEXAMPLETOKEN")),
                            Not(HasSubstr(kKeyId)), HasSubstr("AKIA")));
  }

  Result<BearerToken> token = BearerToken::Create(kBearer, "explicit");
  ASSERT_TRUE(token.ok());
  std::ostringstream token_stream;
  token_stream << *token;
  for (const std::string& text : {token->ToString(), token_stream.str()}) {
    EXPECT_THAT(text,
                AllOf(Not(HasSubstr(kBearer)), Not(HasSubstr("QmVkcm9j")), HasSubstr("long-term")));
  }
}

TEST_F(ChainTest, ErrorsNeverContainTheSecretsTheyAreAbout) {
  WriteCredentials(std::string("[default]\naws_secret_access_key = ") + kSecret + "\n");
  Result<Credentials> credentials = Resolve();
  ASSERT_FALSE(credentials.ok());
  EXPECT_THAT(credentials.status().message(), Not(HasSubstr(kSecret)));

  WriteCredentials("");
  WriteConfig(std::string("[default]\ncredential_process = printf '%s' 'garbage ") + kSecret +
              "'\n");
  credentials = Resolve();
  ASSERT_FALSE(credentials.ok());
  EXPECT_THAT(credentials.status().message(), AllOf(HasSubstr("JSON"), Not(HasSubstr(kSecret))));
}

}  // namespace
}  // namespace quarry::aws
