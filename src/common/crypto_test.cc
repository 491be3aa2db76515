#include "common/crypto.h"

#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <string>

#include <gtest/gtest.h>

#include "common/encoding.h"

namespace quarry {
namespace {

TEST(CryptoTest, Sha256KnownAnswers) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256Hasher hasher;
  hasher.Update("a");
  hasher.Update("bc");
  EXPECT_EQ(DigestHex(hasher.Finish()), Sha256Hex("abc"));
}

TEST(CryptoTest, HmacSha256MatchesRfc4231) {
  // RFC 4231 test cases 1, 2 and 6 (a key longer than the block).
  EXPECT_EQ(DigestHex(HmacSha256(std::string(20, '\x0b'), "Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(DigestHex(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(DigestHex(HmacSha256(std::string(131, '\xaa'),
                                 "Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  const HmacSha256Key key("Jefe");
  EXPECT_EQ(key.Mac("what do ya want for nothing?"), HmacSha256("Jefe", "what do ya want for nothing?"));
}

TEST(CryptoTest, Crc32MatchesCheckValue) {
  EXPECT_EQ(Crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(Crc32("56789", Crc32("1234")), 0xCBF43926u);
}

TEST(CryptoTest, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
}

TEST(CryptoTest, SecureRandomBytesHaveTheRequestedLength) {
  EXPECT_EQ(SecureRandomBytes(32).size(), 32u);
  EXPECT_NE(SecureRandomBytes(16), SecureRandomBytes(16));
}

TEST(CryptoTest, RandomUuidIsVersionFourInCanonicalForm) {
  const std::string uuid = RandomUuid();
  ASSERT_EQ(uuid.size(), 36u);
  EXPECT_EQ(uuid[8], '-');
  EXPECT_EQ(uuid[14], '4');
  EXPECT_NE(std::string("89ab").find(uuid[19]), std::string::npos);
  EXPECT_NE(RandomUuid(), uuid);
}

TEST(CryptoTest, RandomUuidsAreDistinctAcrossManyPagesOfRandomBytes) {
  std::set<std::string> seen;
  for (int i = 0; i < 2'000; ++i) {  // about eight refills of a thread's page
    const std::string uuid = RandomUuid();
    ASSERT_EQ(uuid.size(), 36u);
    ASSERT_EQ(uuid.find_first_not_of("0123456789abcdef-"), std::string::npos) << uuid;
    ASSERT_TRUE(seen.insert(uuid).second) << "repeated " << uuid;
  }
}

TEST(CryptoTest, AForkedChildDoesNotRepeatItsParentsNextUuid) {
  RandomUuid();  // this thread now holds a page of random bytes
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const std::string uuid = RandomUuid();
    const ssize_t written = ::write(fds[1], uuid.data(), uuid.size());
    ::_exit(written == static_cast<ssize_t>(uuid.size()) ? 0 : 1);
  }
  ::close(fds[1]);
  std::string from_child(36, '\0');
  ssize_t got = 0;
  while (got < 36) {
    const ssize_t n = ::read(fds[0], from_child.data() + got, static_cast<size_t>(36 - got));
    if (n <= 0) break;
    got += n;
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_EQ(got, 36);
  EXPECT_NE(from_child, RandomUuid());
}

}  // namespace
}  // namespace quarry
