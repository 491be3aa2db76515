#include "common/ids.h"

#include <gtest/gtest.h>

#include <set>

namespace quarry {
namespace {

TEST(IdsTest, NewIdHasPrefixAndTwentyBase32Chars) {
  const std::string id = NewId("prv");
  ASSERT_EQ(id.size(), 24u);
  EXPECT_EQ(id.substr(0, 4), "prv_");
  EXPECT_TRUE(IsWellFormedId(id, "prv"));
  EXPECT_FALSE(IsWellFormedId(id, "svc"));
}

TEST(IdsTest, IdsDoNotRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i) EXPECT_TRUE(seen.insert(NewId("rec")).second);
}

TEST(IdsTest, RejectsMalformedIds) {
  EXPECT_FALSE(IsWellFormedId(""));
  EXPECT_FALSE(IsWellFormedId("prv"));
  EXPECT_FALSE(IsWellFormedId("prv_short"));
  EXPECT_FALSE(IsWellFormedId("PRV_0123456789abcdefghjk"));
  EXPECT_FALSE(IsWellFormedId("prv_0123456789abcdefghjI"));  // I is not in the alphabet
  EXPECT_FALSE(IsWellFormedId("prv_0123456789abcdefghjk/../x"));
  EXPECT_TRUE(IsWellFormedId("prv_0123456789abcdefghjk"));
}

}  // namespace
}  // namespace quarry
