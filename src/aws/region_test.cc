#include "aws/region.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace quarry::aws {
namespace {

using ::testing::HasSubstr;

std::string ErrorOf(std::string_view text) {
  Result<Region> r = ParseRegion(text);
  EXPECT_FALSE(r.ok()) << text;
  return r.ok() ? "" : r.status().message();
}

TEST(RegionTest, AcceptsRegionsOfEveryPartition) {
  const struct {
    std::string_view region;
    std::string_view partition;
  } cases[] = {
      {"us-east-1", "aws"},          {"eu-central-1", "aws"},         {"ap-southeast-7", "aws"},
      {"mx-central-1", "aws"},       {"il-central-1", "aws"},         {"us-gov-west-1", "aws-us-gov"},
      {"cn-northwest-1", "aws-cn"},  {"eusc-de-east-1", "aws-eusc"},  {"us-iso-east-1", "aws-iso"},
      {"us-isob-east-1", "aws-iso-b"}, {"eu-isoe-west-1", "aws-iso-e"}, {"us-isof-south-1", "aws-iso-f"},
  };
  for (const auto& c : cases) {
    Result<Region> r = ParseRegion(c.region);
    ASSERT_TRUE(r.ok()) << c.region << ": " << r.status().ToString();
    EXPECT_EQ(r->name(), c.region);
    EXPECT_EQ(r->partition().name, c.partition) << c.region;
  }
}

TEST(RegionTest, AcceptsFutureRegionsThatMatchThePartitionPattern) {
  Result<Region> r = ParseRegion("eu-south-9");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->partition().dns_suffix, "amazonaws.com");
}

TEST(RegionTest, RefusesUnknownRegionWithTheShapeOfARegion) {
  EXPECT_EQ(ErrorOf("us-east-9x"),
            "'us-east-9x' is not an AWS region name; regions look like us-east-1, eu-central-1, "
            "ap-southeast-2, us-gov-west-1 or cn-north-1");
  EXPECT_THAT(ErrorOf("xx-east-1"), HasSubstr("is not an AWS region name"));
  EXPECT_THAT(ErrorOf("useast1"), HasSubstr("is not an AWS region name"));
  EXPECT_THAT(ErrorOf("us-east-"), HasSubstr("is not an AWS region name"));
  EXPECT_THAT(ErrorOf("us--1"), HasSubstr("is not an AWS region name"));
  EXPECT_THAT(ErrorOf("us_east_1"), HasSubstr("is not an AWS region name"));
}

TEST(RegionTest, RefusesHostInjectionAttempts) {
  EXPECT_THAT(ErrorOf("us-east-1.evil.com"), HasSubstr("looks like a host name or URL"));
  EXPECT_THAT(ErrorOf("us-east-1/"), HasSubstr("looks like a host name or URL"));
  EXPECT_THAT(ErrorOf("evil.com/us-east-1"), HasSubstr("looks like a host name or URL"));
  EXPECT_THAT(ErrorOf("us-east-1:443"), HasSubstr("looks like a host name or URL"));
  EXPECT_THAT(ErrorOf("us-east-1@evil"), HasSubstr("is not an AWS region name"));
  EXPECT_THAT(ErrorOf("us-east-1#"), HasSubstr("is not an AWS region name"));
  EXPECT_THAT(ErrorOf(std::string_view("us-east-1\0x", 11)), HasSubstr("\\x00"));
  EXPECT_THAT(ErrorOf("us-east-1\r\nHost: evil"), HasSubstr("\\x0D\\x0A"));
}

TEST(RegionTest, RefusesEmptyWithAnExplanation) {
  EXPECT_THAT(ErrorOf(""), HasSubstr("the region is empty"));
}

TEST(RegionTest, RefusesUpperCaseAndNamesTheLowerCaseRegion) {
  EXPECT_THAT(ErrorOf("US-EAST-1"), HasSubstr("use 'us-east-1'"));
  EXPECT_THAT(ErrorOf("us-East-1"), HasSubstr("lower case"));
}

TEST(RegionTest, RefusesUnicodeLookalikes) {
  // Cyrillic 'е' (U+0435) in place of the Latin 'e'.
  const std::string error = ErrorOf("us-\xD0\xB5" "ast-1");
  EXPECT_THAT(error, HasSubstr("is not an AWS region name"));
  EXPECT_THAT(error, HasSubstr("\\xD0\\xB5"));
  // A full-width digit one.
  EXPECT_THAT(ErrorOf("us-east-\xEF\xBC\x91"), HasSubstr("is not an AWS region name"));
}

TEST(RegionTest, ExplainsSpacesAvailabilityZonesFipsAndGlobalPseudoRegions) {
  EXPECT_THAT(ErrorOf(" us-east-1\n"), HasSubstr("has spaces around it; use the region name alone: 'us-east-1'"));
  EXPECT_THAT(ErrorOf("us-east-1a"), HasSubstr("Availability Zone, not a region; its region is 'us-east-1'"));
  EXPECT_THAT(ErrorOf("fips-us-east-1"), HasSubstr("use the region 'us-east-1' and turn on the FIPS"));
  EXPECT_THAT(ErrorOf("us-gov-west-1-fips"), HasSubstr("use the region 'us-gov-west-1'"));
  EXPECT_THAT(ErrorOf("aws-global"), HasSubstr("global endpoint"));
}

TEST(RegionTest, RefusesOverlongInputAndBoundsTheMessage) {
  const std::string long_text(10'000, 'a');
  const std::string error = ErrorOf(long_text);
  EXPECT_THAT(error, HasSubstr("too long"));
  EXPECT_LT(error.size(), 400u);
}

TEST(RegionTest, BuildsEndpointHostsForTheFiveServices) {
  const Region region = ParseRegion("us-east-1").value();
  EXPECT_EQ(EndpointHost(AwsService::kBedrock, region).value(), "bedrock.us-east-1.amazonaws.com");
  EXPECT_EQ(EndpointHost(AwsService::kBedrockRuntime, region).value(),
            "bedrock-runtime.us-east-1.amazonaws.com");
  EXPECT_EQ(EndpointHost(AwsService::kBedrockAgent, region).value(),
            "bedrock-agent.us-east-1.amazonaws.com");
  EXPECT_EQ(EndpointHost(AwsService::kBedrockAgentRuntime, region).value(),
            "bedrock-agent-runtime.us-east-1.amazonaws.com");
  EXPECT_EQ(EndpointHost(AwsService::kSts, region).value(), "sts.us-east-1.amazonaws.com");
}

TEST(RegionTest, BuildsFipsAndDualStackHostsAsTheRuleSetsDo) {
  const Region us = ParseRegion("us-east-1").value();
  EXPECT_EQ(EndpointHost(AwsService::kBedrockRuntime, us, {.use_fips = true}).value(),
            "bedrock-runtime-fips.us-east-1.amazonaws.com");
  EXPECT_EQ(EndpointHost(AwsService::kBedrockAgentRuntime, us, {.use_dual_stack = true}).value(),
            "bedrock-agent-runtime.us-east-1.api.aws");
  EXPECT_EQ(
      EndpointHost(AwsService::kBedrock, us, {.use_fips = true, .use_dual_stack = true}).value(),
      "bedrock-fips.us-east-1.api.aws");
  EXPECT_EQ(EndpointHost(AwsService::kSts, us, {.use_fips = true}).value(),
            "sts-fips.us-east-1.amazonaws.com");
  const Region gov = ParseRegion("us-gov-west-1").value();
  EXPECT_EQ(EndpointHost(AwsService::kSts, gov, {.use_fips = true}).value(),
            "sts.us-gov-west-1.amazonaws.com");
  EXPECT_EQ(EndpointHost(AwsService::kBedrockRuntime, gov, {.use_fips = true}).value(),
            "bedrock-runtime-fips.us-gov-west-1.amazonaws.com");
}

TEST(RegionTest, UsesThePartitionDnsSuffix) {
  EXPECT_EQ(EndpointHost(AwsService::kBedrockRuntime, ParseRegion("cn-north-1").value()).value(),
            "bedrock-runtime.cn-north-1.amazonaws.com.cn");
  EXPECT_EQ(EndpointHost(AwsService::kSts, ParseRegion("us-isob-east-1").value()).value(),
            "sts.us-isob-east-1.sc2s.sgov.gov");
}

TEST(RegionTest, NamesSigningNamesAndPrefixes) {
  EXPECT_EQ(ServiceSigningName(AwsService::kBedrockAgentRuntime), "bedrock");
  EXPECT_EQ(ServiceSigningName(AwsService::kSts), "sts");
  EXPECT_EQ(ServiceEndpointPrefix(AwsService::kBedrockAgent), "bedrock-agent");
  EXPECT_NE(FindPartition("aws-cn"), nullptr);
  EXPECT_EQ(FindPartition("AWS"), nullptr);
  EXPECT_EQ(KnownPartitions().front().name, "aws");
}

}  // namespace
}  // namespace quarry::aws
