#include "common/encoding.h"

#include <gtest/gtest.h>

namespace quarry {
namespace {

TEST(EncodingTest, HexRoundTrips) {
  EXPECT_EQ(HexEncode(std::string("\x00\x7f\xff", 3)), "007fff");
  EXPECT_EQ(HexDecode("007FfF").value(), std::string("\x00\x7f\xff", 3));
  EXPECT_FALSE(HexDecode("abc").ok());
  EXPECT_FALSE(HexDecode("zz").ok());
}

TEST(EncodingTest, Base64MatchesRfc4648Vectors) {
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},        {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(Base64Encode(plain), encoded);
    EXPECT_EQ(Base64Decode(encoded).value(), plain);
  }
}

TEST(EncodingTest, Base64RejectsMalformedText) {
  EXPECT_FALSE(Base64Decode("Zg=").ok());
  EXPECT_FALSE(Base64Decode("Z===").ok());
  EXPECT_FALSE(Base64Decode("Zg==Zm9v").ok());
  EXPECT_FALSE(Base64Decode("Zm9*").ok());
  EXPECT_NE(Base64Decode("Zm9*").status().message().find("offset 3"), std::string::npos);
}

TEST(EncodingTest, UriEncodeKeepsOnlyUnreserved) {
  EXPECT_EQ(UriEncode("anthropic.claude-3-haiku-20240307-v1:0"), "anthropic.claude-3-haiku-20240307-v1%3A0");
  EXPECT_EQ(UriEncode("a b/c~d"), "a%20b%2Fc~d");
  EXPECT_EQ(UriEncode("a b/c", SlashEncoding::kKeep), "a%20b/c");
  EXPECT_EQ(UriEncode("\xc3\xa9"), "%C3%A9");
  EXPECT_EQ(UriEncode("%3A"), "%253A");
}

TEST(EncodingTest, UriDecodeHandlesEscapesAndRejectsBadOnes) {
  EXPECT_EQ(UriDecode("v1%3A0").value(), "v1:0");
  EXPECT_EQ(UriDecode("a+b%2f").value(), "a+b/");
  EXPECT_FALSE(UriDecode("abc%2").ok());
  EXPECT_FALSE(UriDecode("abc%").ok());
  EXPECT_FALSE(UriDecode("%zz").ok());
}

TEST(EncodingTest, AsciiHelpers) {
  EXPECT_EQ(AsciiToLower("X-Amz-Date"), "x-amz-date");
  EXPECT_EQ(TrimAsciiWhitespace("  \tvalue \r\n"), "value");
  EXPECT_TRUE(EqualsIgnoreAsciiCase("ThrottlingException", "throttlingexception"));
  EXPECT_FALSE(EqualsIgnoreAsciiCase("a", "ab"));
}

}  // namespace
}  // namespace quarry
