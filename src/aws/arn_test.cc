#include "aws/arn.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace quarry::aws {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::string_view kSeedAliasArn =
    "arn:aws:bedrock:us-east-2:123456789012:agent-alias/ABCD1234EF/GHIJ5678KL";
constexpr std::string_view kSeedAgentArn = "arn:aws:bedrock:us-east-2:123456789012:agent/ABCD1234EF";

std::string AliasError(std::string_view text) {
  Result<AgentAliasArn> r = ParseAgentAliasArn(text);
  EXPECT_FALSE(r.ok()) << text;
  return r.ok() ? "" : r.status().message();
}

// ---------------------------------------------------------------- generic

TEST(ArnTest, ParsesTheSixParts) {
  Result<Arn> arn = ParseArn("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.a.b:0");
  ASSERT_TRUE(arn.ok()) << arn.status().ToString();
  EXPECT_EQ(arn->partition, "aws");
  EXPECT_EQ(arn->service, "bedrock");
  EXPECT_EQ(arn->region, "us-east-1");
  EXPECT_EQ(arn->account, "123456789012");
  EXPECT_EQ(arn->resource, "inference-profile/us.a.b:0");  // ':' kept in the resource
  EXPECT_EQ(arn->ToString(), "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.a.b:0");
}

TEST(ArnTest, AcceptsEmptyRegionAndAccount) {
  Result<Arn> arn = ParseArn("arn:aws:iam::123456789012:user/alice");
  ASSERT_TRUE(arn.ok());
  EXPECT_EQ(arn->region, "");
  EXPECT_TRUE(ParseArn("arn:aws:s3:::bucket/key").ok());
}

TEST(ArnTest, RefusesMalformedArnsPrecisely) {
  EXPECT_THAT(ParseArn("").status().message(), HasSubstr("is empty"));
  EXPECT_THAT(ParseArn("ABCD1234EF").status().message(), HasSubstr("is not an ARN"));
  EXPECT_THAT(ParseArn("ARN:aws:bedrock:us-east-1:123456789012:agent/X").status().message(),
              HasSubstr("lower-case 'arn:'"));
  EXPECT_THAT(ParseArn("arn:aws:bedrock:us-east-1").status().message(),
              HasSubstr("six parts separated by ':'"));
  EXPECT_THAT(ParseArn("arn:aws:bedrock:us-east-1").status().message(), HasSubstr("has 4"));
  EXPECT_THAT(ParseArn("arn:amazon:bedrock:us-east-1:123456789012:x/y").status().message(),
              HasSubstr("is not an AWS partition"));
  EXPECT_THAT(ParseArn("arn:AWS:bedrock:us-east-1:123456789012:x/y").status().message(),
              HasSubstr("must be lower case: 'aws'"));
  EXPECT_THAT(ParseArn("arn:aws::us-east-1:123456789012:x/y").status().message(),
              HasSubstr("service part of the ARN is empty"));
  EXPECT_THAT(ParseArn("arn:aws:Bedrock:us-east-1:123456789012:x/y").status().message(),
              HasSubstr("lower-case letters"));
  EXPECT_THAT(ParseArn("arn:aws:bedrock:us-east-1:123456789012:").status().message(),
              HasSubstr("resource part"));
  EXPECT_THAT(ParseArn(std::string(3000, 'a')).status().message(), HasSubstr("the limit is 2048"));
}

TEST(ArnTest, ValidatesTheRegionAndItsPartition) {
  EXPECT_THAT(ParseArn("arn:aws:bedrock:us-east-9x:123456789012:agent/ABCD1234EF").status().message(),
              HasSubstr("the region part of the ARN: 'us-east-9x' is not an AWS region name"));
  EXPECT_THAT(ParseArn("arn:aws:bedrock:us-gov-west-1:123456789012:agent/ABCD1234EF")
                  .status()
                  .message(),
              HasSubstr("belongs to partition aws-us-gov, but the ARN says 'aws'"));
  EXPECT_TRUE(ParseArn("arn:aws-us-gov:bedrock:us-gov-west-1:123456789012:agent/ABCD1234EF").ok());
  EXPECT_TRUE(ParseArn("arn:aws-cn:bedrock:cn-north-1:123456789012:agent/ABCD1234EF").ok());
}

TEST(ArnTest, RequiresTwelveDigitAccounts) {
  EXPECT_THAT(ParseArn("arn:aws:bedrock:us-east-1:1234:agent/ABCD1234EF").status().message(),
              HasSubstr("'1234' has 4 digits; it must be the 12-digit AWS account id"));
  EXPECT_THAT(ParseArn("arn:aws:bedrock:us-east-1:12345678901a:agent/ABCD1234EF").status().message(),
              HasSubstr("characters other than digits"));
}

// ---------------------------------------------------------------- agent alias

TEST(AgentAliasArnTest, AcceptsTheSeedExample) {
  Result<AgentAliasArn> arn = ParseAgentAliasArn(kSeedAliasArn);
  ASSERT_TRUE(arn.ok()) << arn.status().ToString();
  EXPECT_EQ(arn->partition, "aws");
  EXPECT_EQ(arn->region, "us-east-2");
  EXPECT_EQ(arn->account, "123456789012");
  EXPECT_EQ(arn->agent_id, "ABCD1234EF");
  EXPECT_EQ(arn->alias_id, "GHIJ5678KL");
  EXPECT_EQ(arn->ToString(), kSeedAliasArn);
}

TEST(AgentAliasArnTest, AcceptsTheDraftAliasAndOtherPartitions) {
  EXPECT_TRUE(
      ParseAgentAliasArn("arn:aws:bedrock:eu-west-1:000000000001:agent-alias/ABCD1234EF/TSTALIASID").ok());
  EXPECT_TRUE(ParseAgentAliasArn(
                  "arn:aws-us-gov:bedrock:us-gov-west-1:123456789012:agent-alias/abcd1234ef/0123456789")
                  .ok());
}

TEST(AgentAliasArnTest, RefusesTheBaseAgentArnWithTheShapeItNeeds) {
  EXPECT_EQ(AliasError(kSeedAgentArn),
            "this is the agent ARN; connect the agent alias ARN, "
            "arn:aws:bedrock:us-east-2:123456789012:agent-alias/ABCD1234EF/{alias-id}, from the "
            "agent's Aliases tab in the Bedrock console (create an alias first if the agent has "
            "none)");
}

TEST(AgentAliasArnTest, ExplainsEachKindOfMistake) {
  EXPECT_THAT(AliasError("arn:aws:bedrock-agent:us-east-2:123456789012:agent-alias/ABCD1234EF/GHIJ5678KL"),
              HasSubstr("agent alias ARNs say 'bedrock'"));
  EXPECT_THAT(AliasError("arn:aws:s3:::my-bucket"), HasSubstr("not a Bedrock agent alias ARN"));
  EXPECT_THAT(AliasError("arn:aws:bedrock:us-east:123456789012:agent-alias/ABCD1234EF/GHIJ5678KL"),
              HasSubstr("is not an AWS region name"));
  EXPECT_THAT(AliasError("arn:aws:bedrock:us-east-2:12345678901:agent-alias/ABCD1234EF/GHIJ5678KL"),
              HasSubstr("has 11 digits; it must be the 12-digit AWS account id"));
  EXPECT_THAT(AliasError("arn:aws:bedrock:us-east-2:123456789012:agent-alias/ABCD1234EF/GHIJ5678K"),
              HasSubstr("the alias id 'GHIJ5678K' has 9 characters; it must have exactly 10"));
  EXPECT_THAT(AliasError("arn:aws:bedrock:us-east-2:123456789012:agent-alias/ABCD1234EF/GHIJ5678K!"),
              HasSubstr("only letters and digits"));
  EXPECT_THAT(AliasError("arn:aws:bedrock:us-east-2:123456789012:agent-alias/ABCD1234E/GHIJ5678KL"),
              HasSubstr("the agent id 'ABCD1234E' has 9 characters"));
  EXPECT_THAT(AliasError("arn:aws:bedrock:us-east-2:123456789012:agent-alias/ABCD1234EF"),
              HasSubstr("the alias id is missing"));
  EXPECT_THAT(AliasError("arn:aws:bedrock:us-east-2:123456789012:agent-alias/ABCD1234EF/"),
              HasSubstr("agent-alias/ABCD1234EF/{alias-id}"));
  EXPECT_THAT(AliasError("arn:aws:bedrock:us-east-2:123456789012:agent-alias/ABCD1234EF/GHIJ5678KL/x"),
              HasSubstr("extra parts after the alias id"));
  EXPECT_THAT(AliasError("arn:aws:bedrock:us-east-2:123456789012:knowledge-base/KB12345678"),
              HasSubstr("this is a knowledge base ARN"));
  EXPECT_THAT(AliasError("arn:aws:bedrock:us-east-2::foundation-model/anthropic.claude-v2"),
              HasSubstr("this is a model ARN"));
  EXPECT_THAT(AliasError("arn:aws:bedrock:us-east-2:123456789012:flow/FLOW123456"),
              HasSubstr("is not an agent alias"));
  EXPECT_THAT(AliasError("arn:aws:bedrock::123456789012:agent-alias/ABCD1234EF/GHIJ5678KL"),
              HasSubstr("region part of this agent alias ARN is empty"));
  EXPECT_THAT(AliasError("ABCD1234EF"), HasSubstr("is an agent id or alias id, not an ARN"));
}

TEST(AgentAliasArnTest, ExplainsAMisspelledResourceTypeWithTheCorrectedArn) {
  const std::string expected =
      "it must be 'agent-alias' (lower case, with a hyphen): "
      "arn:aws:bedrock:us-east-2:123456789012:agent-alias/ABCD1234EF/GHIJ5678KL";
  EXPECT_THAT(AliasError("arn:aws:bedrock:us-east-2:123456789012:agentalias/ABCD1234EF/GHIJ5678KL"),
              HasSubstr(expected));
  EXPECT_THAT(AliasError("arn:aws:bedrock:us-east-2:123456789012:Agent-Alias/ABCD1234EF/GHIJ5678KL"),
              HasSubstr(expected));
  EXPECT_THAT(AliasError("arn:aws:bedrock:us-east-2:123456789012:agent_alias/ABCD1234EF/GHIJ5678KL"),
              HasSubstr(expected));
}

TEST(AgentAliasArnTest, ExplainsSpacesAndQuotesPastedAroundIt) {
  const std::string arn(kSeedAliasArn);
  for (const std::string& pasted :
       {" " + arn, arn + "\n", "\"" + arn + "\"", "'" + arn + "'", "`" + arn + "`",
        "\xE2\x80\x9C" + arn + "\xE2\x80\x9D", "  \"" + arn + "\" \t"}) {
    const std::string error = AliasError(pasted);
    EXPECT_THAT(error, HasSubstr("has spaces or quotes pasted around it; remove them and use '" +
                                 arn + "'"))
        << pasted;
  }
  EXPECT_THAT(AliasError("arn:aws:bedrock:us-east-2:123456789012:agent-alias/ABCD1234EF/ GHIJ5678KL"),
              HasSubstr("contains a space or line break at position"));
}

TEST(AgentAliasArnTest, IsValidAgentIdChecksLengthAndAlphabet) {
  EXPECT_TRUE(IsValidAgentId("ABCD1234EF"));
  EXPECT_TRUE(IsValidAgentId("TSTALIASID"));
  EXPECT_FALSE(IsValidAgentId("ABCD1234E"));
  EXPECT_FALSE(IsValidAgentId("ABCD1234EF1"));
  EXPECT_FALSE(IsValidAgentId("ABCD-234EF"));
}

// ---------------------------------------------------------------- models

TEST(ModelIdTest, ParsesFoundationModelIds) {
  for (std::string_view id :
       {"anthropic.claude-3-5-sonnet-20240620-v1:0", "amazon.nova-pro-v1:0", "cohere.embed-english-v3",
        "anthropic.claude-3-sonnet-20240229-v1:0:28k", "meta.llama3-1-70b-instruct-v1:0"}) {
    Result<FoundationModelId> m = ParseFoundationModelId(id);
    ASSERT_TRUE(m.ok()) << id << ": " << m.status().ToString();
    EXPECT_EQ(m->id, id);
  }
  EXPECT_EQ(ParseFoundationModelId("anthropic.claude-v2").value().provider, "anthropic");
}

TEST(ModelIdTest, RefusesMalformedModelIds) {
  EXPECT_THAT(ParseFoundationModelId("Anthropic.Claude-v2").status().message(), HasSubstr("lower case"));
  EXPECT_THAT(ParseFoundationModelId("claude-3-haiku").status().message(),
              HasSubstr("provider.name-version"));
  EXPECT_FALSE(ParseFoundationModelId("anthropic..claude").ok());
  EXPECT_FALSE(ParseFoundationModelId("anthropic.claude:").ok());
  EXPECT_FALSE(ParseFoundationModelId("a.b:1:2:3").ok());
  EXPECT_FALSE(ParseFoundationModelId("a.b.c.d.e").ok());
  EXPECT_FALSE(ParseFoundationModelId("anthropic.claude/../x").ok());
}

TEST(ModelIdTest, ParsesSystemProfileIdsWithKnownGeographies) {
  const struct {
    std::string_view id;
    Geography geography;
  } cases[] = {
      {"us.anthropic.claude-3-5-sonnet-20240620-v1:0", Geography::kUs},
      {"eu.anthropic.claude-3-haiku-20240307-v1:0", Geography::kEu},
      {"apac.amazon.nova-lite-v1:0", Geography::kApac},
      {"global.anthropic.claude-sonnet-4-20250514-v1:0", Geography::kGlobal},
      {"us-gov.anthropic.claude-3-haiku-20240307-v1:0", Geography::kUsGov},
      {"jp.anthropic.claude-3-haiku-20240307-v1:0", Geography::kJp},
      {"au.anthropic.claude-3-haiku-20240307-v1:0", Geography::kAu},
  };
  for (const auto& c : cases) {
    Result<SystemProfileId> p = ParseSystemProfileId(c.id);
    ASSERT_TRUE(p.ok()) << c.id << ": " << p.status().ToString();
    EXPECT_EQ(p->geography, c.geography);
    EXPECT_EQ(std::string(GeographyPrefix(p->geography)) + "." + p->model_id, c.id);
  }
  EXPECT_THAT(ParseSystemProfileId("xx.anthropic.claude-v2").status().message(),
              HasSubstr("geography prefix"));
}

TEST(ModelIdTest, SuggestsTheSystemProfileForARegionsGeography) {
  const std::string model = "anthropic.claude-3-5-sonnet-20240620-v1:0";
  EXPECT_EQ(SystemProfileIdForRegion(model, ParseRegion("us-west-2").value()).value(), "us." + model);
  EXPECT_EQ(SystemProfileIdForRegion(model, ParseRegion("eu-central-1").value()).value(), "eu." + model);
  EXPECT_EQ(SystemProfileIdForRegion(model, ParseRegion("ap-northeast-1").value()).value(),
            "apac." + model);
  EXPECT_EQ(SystemProfileIdForRegion(model, ParseRegion("us-gov-west-1").value()).value(),
            "us-gov." + model);
  Result<std::string> none = SystemProfileIdForRegion(model, ParseRegion("sa-east-1").value());
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(none.status().message(), HasSubstr("global." + model));
  EXPECT_THAT(SystemProfileIdForRegion("us." + model, ParseRegion("us-east-1").value()).status().message(),
              HasSubstr("already an inference profile id"));
}

// ---------------------------------------------------------------- describe

TEST(DescribeArnTest, NamesEachBedrockKind) {
  Result<ArnDescription> alias = DescribeArn(kSeedAliasArn);
  ASSERT_TRUE(alias.ok());
  EXPECT_EQ(alias->kind, ArnKind::kAgentAlias);
  EXPECT_EQ(alias->alias_id, "GHIJ5678KL");

  Result<ArnDescription> agent = DescribeArn(kSeedAgentArn);
  ASSERT_TRUE(agent.ok());
  EXPECT_EQ(agent->kind, ArnKind::kAgent);
  EXPECT_EQ(agent->agent_id, "ABCD1234EF");

  Result<ArnDescription> fm =
      DescribeArn("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0");
  ASSERT_TRUE(fm.ok());
  EXPECT_EQ(fm->kind, ArnKind::kFoundationModel);
  EXPECT_EQ(fm->model_id, "anthropic.claude-3-haiku-20240307-v1:0");

  Result<ArnDescription> ip = DescribeArn(
      "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0");
  ASSERT_TRUE(ip.ok());
  EXPECT_EQ(ip->kind, ArnKind::kInferenceProfile);
  EXPECT_EQ(ip->geography, Geography::kUs);
  EXPECT_EQ(ip->model_id, "anthropic.claude-3-haiku-20240307-v1:0");

  Result<ArnDescription> app =
      DescribeArn("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6");
  ASSERT_TRUE(app.ok());
  EXPECT_EQ(app->kind, ArnKind::kApplicationInferenceProfile);
  EXPECT_EQ(app->profile_id, "a1b2c3d4e5f6");

  EXPECT_EQ(DescribeArn("arn:aws:iam::123456789012:user/alice")->kind, ArnKind::kOther);
  EXPECT_EQ(DescribeArn("arn:aws:bedrock:us-east-1:123456789012:knowledge-base/KB12345678")->kind,
            ArnKind::kKnowledgeBase);
}

TEST(DescribeArnTest, RequiresTheEmptyAccountOnFoundationModelArns) {
  EXPECT_THAT(DescribeArn("arn:aws:bedrock:us-east-1:123456789012:foundation-model/anthropic.claude-v2")
                  .status()
                  .message(),
              HasSubstr("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-v2"));
}

// ---------------------------------------------------------------- model target

TEST(ModelTargetTest, ClassifiesEveryAcceptedForm) {
  const struct {
    std::string_view text;
    ModelTargetKind kind;
  } cases[] = {
      {"anthropic.claude-3-haiku-20240307-v1:0", ModelTargetKind::kFoundationModelId},
      {"arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
       ModelTargetKind::kFoundationModelArn},
      {"us.anthropic.claude-3-5-sonnet-20240620-v1:0", ModelTargetKind::kSystemProfileId},
      {"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0",
       ModelTargetKind::kSystemProfileArn},
      {"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6",
       ModelTargetKind::kApplicationProfileArn},
      {"arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdef123456",
       ModelTargetKind::kProvisionedModelArn},
      {"arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.titan-text-lite-v1:0:4k/abcdef123456",
       ModelTargetKind::kCustomModelArn},
      {"arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/abcdef123456",
       ModelTargetKind::kCustomModelDeploymentArn},
      {"arn:aws:bedrock:us-east-1:123456789012:imported-model/abcdef123456",
       ModelTargetKind::kImportedModelArn},
      {"arn:aws:bedrock:us-east-1:123456789012:prompt/PROMPT1234:3", ModelTargetKind::kPromptArn},
      {"arn:aws:bedrock:us-east-1:123456789012:default-prompt-router/anthropic.claude:1",
       ModelTargetKind::kPromptRouterArn},
      {"arn:aws:sagemaker:us-east-1:123456789012:endpoint/my-endpoint",
       ModelTargetKind::kSageMakerEndpointArn},
  };
  for (const auto& c : cases) {
    Result<ModelTarget> t = ClassifyModelTarget(c.text);
    ASSERT_TRUE(t.ok()) << c.text << ": " << t.status().ToString();
    EXPECT_EQ(t->kind, c.kind) << c.text << " -> " << ModelTargetKindName(t->kind);
    EXPECT_EQ(t->text, c.text);
  }
  Result<ModelTarget> profile = ClassifyModelTarget("eu.anthropic.claude-3-haiku-20240307-v1:0");
  ASSERT_TRUE(profile.ok());
  EXPECT_EQ(profile->geography, Geography::kEu);
  EXPECT_EQ(profile->model_id, "anthropic.claude-3-haiku-20240307-v1:0");
}

TEST(ModelTargetTest, RefusesEverythingElseListingTheAcceptedForms) {
  for (std::string_view bad :
       {"", "claude", "arn:aws:iam::123456789012:user/alice",
        "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/ABC",
        "arn:aws:bedrock:us-east-1:123456789012:prompt/short",
        "arn:aws:bedrock:us-east-1:123456789012:knowledge-base/KB12345678", " anthropic.claude-v2"}) {
    Result<ModelTarget> t = ClassifyModelTarget(bad);
    EXPECT_FALSE(t.ok()) << bad;
  }
  EXPECT_THAT(ClassifyModelTarget("claude").status().message(), HasSubstr("A modelId is a model id"));
  EXPECT_THAT(ClassifyModelTarget(kSeedAliasArn).status().message(), HasSubstr("InvokeAgent"));
}

}  // namespace
}  // namespace quarry::aws

namespace quarry::aws {
namespace {

// Deterministic junk built from ARN-like pieces: the parsers must never crash
// and every refusal must carry a message.
TEST(ArnFuzzTest, RefusesOrAcceptsArbitraryInputWithoutCrashing) {
  uint64_t state = 0x2545F4914F6CDD1Dull;
  auto next = [&state] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  const std::string_view fragments[] = {"arn:", "aws", ":", "bedrock", "us-east-1", "123456789012",
                                        "agent-alias/", "ABCD1234EF", "/", "agent/", "\"", " ",
                                        "foundation-model/", "anthropic.claude-v2", "inference-profile/",
                                        "us."};
  for (int i = 0; i < 3000; ++i) {
    std::string input;
    const size_t pieces = next() % 14;
    for (size_t p = 0; p < pieces; ++p) {
      if (next() % 5 == 0) {
        input.push_back(static_cast<char>(next() & 0xFF));
      } else {
        input += fragments[next() % std::size(fragments)];
      }
    }
    for (const Status& status :
         {ParseArn(input).status(), ParseAgentAliasArn(input).status(), DescribeArn(input).status(),
          ClassifyModelTarget(input).status(), ParseRegion(input).status()}) {
      if (!status.ok()) {
        EXPECT_FALSE(status.message().empty()) << input;
        EXPECT_LT(status.message().size(), 2000u) << input;
      }
    }
  }
}

}  // namespace
}  // namespace quarry::aws
