#include "sim/iam.h"

#include <gtest/gtest.h>

namespace quarry::sim {
namespace {

using nlohmann::json;

Policy MustParse(const json& doc) {
  auto p = ParsePolicy(doc, "$.policy");
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() ? p.value() : Policy{};
}

constexpr char kHaiku[] = "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0";

TEST(IamTest, WildcardsMatchAnyRunAndOneCharacter) {
  EXPECT_TRUE(WildcardMatch("bedrock:*", "bedrock:InvokeModel", true));
  EXPECT_TRUE(WildcardMatch("bedrock:invoke*", "bedrock:InvokeModelWithResponseStream", true));
  EXPECT_FALSE(WildcardMatch("bedrock:invoke*", "bedrock:InvokeModel", false));
  EXPECT_TRUE(WildcardMatch("arn:aws:bedrock:*::foundation-model/anthropic.claude-3-haiku-*", kHaiku, false));
  EXPECT_TRUE(WildcardMatch("arn:aws:bedrock:us-east-?::*", kHaiku, false));
  EXPECT_FALSE(WildcardMatch("arn:aws:bedrock:us-west-?::*", kHaiku, false));
  EXPECT_TRUE(WildcardMatch("*", "", false));
  EXPECT_FALSE(WildcardMatch("a?", "a", false));
}

TEST(IamTest, DefaultDenyExplicitAllowAndDenyWins) {
  Policy allow = MustParse({{"Statement", {{"Effect", "Allow"}, {"Action", "bedrock:*"}, {"Resource", "*"}}}});
  Policy deny = MustParse({{"Statement", json::array({{{"Effect", "Deny"},
                                                       {"Action", json::array({"bedrock:InvokeModel"})},
                                                       {"Resource", kHaiku}}})}});
  EXPECT_EQ(Evaluate({}, "bedrock:InvokeModel", kHaiku), Decision::kImplicitDeny);
  EXPECT_EQ(Evaluate({allow}, "bedrock:InvokeModel", kHaiku), Decision::kAllow);
  EXPECT_EQ(Evaluate({allow, deny}, "bedrock:InvokeModel", kHaiku), Decision::kExplicitDeny);
  EXPECT_EQ(Evaluate({deny, allow}, "bedrock:InvokeModel", kHaiku), Decision::kExplicitDeny);
  EXPECT_EQ(Evaluate({allow, deny}, "bedrock:InvokeModelWithResponseStream", kHaiku), Decision::kAllow);
  EXPECT_EQ(Evaluate({allow}, "sts:AssumeRole", "arn:aws:iam::111122223333:role/x"), Decision::kImplicitDeny);
}

TEST(IamTest, AccessDeniedMessageNamesPrincipalActionAndResource) {
  EXPECT_EQ(AccessDeniedMessage("arn:aws:iam::123456789012:user/x", "bedrock:InvokeModel", kHaiku,
                                Decision::kImplicitDeny),
            std::string("User: arn:aws:iam::123456789012:user/x is not authorized to perform: bedrock:InvokeModel on "
                        "resource: ") +
                kHaiku + " because no identity-based policy allows the bedrock:InvokeModel action");
  EXPECT_NE(AccessDeniedMessage("u", "a", "r", Decision::kExplicitDeny).find("with an explicit deny"), std::string::npos);
}

TEST(IamTest, PolicyErrorsNameThePath) {
  auto bad_effect = ParsePolicy({{"Statement", {{"Effect", "Maybe"}, {"Action", "*"}, {"Resource", "*"}}}}, "$.p");
  ASSERT_FALSE(bad_effect.ok());
  EXPECT_NE(bad_effect.status().message().find("$.p.Statement.Effect"), std::string::npos);
  auto condition = ParsePolicy(
      {{"Statement", json::array({{{"Effect", "Allow"}, {"Action", "*"}, {"Resource", "*"}, {"Condition", json::object()}}})}},
      "$.p");
  ASSERT_FALSE(condition.ok());
  EXPECT_NE(condition.status().message().find("$.p.Statement[0].Condition"), std::string::npos);
  auto no_resource = ParsePolicy({{"Statement", {{"Effect", "Allow"}, {"Action", "*"}}}}, "$.p");
  EXPECT_FALSE(no_resource.ok());
}

}  // namespace
}  // namespace quarry::sim
