// The low-level SHA256_* functions are deprecated in OpenSSL 3 in favour of
// EVP, but EVP adds a provider fetch and context allocation per digest that
// costs several times the hashing of a typical SigV4 canonical request; the
// plain SHA256_CTX is also trivially copyable, which is what HMAC pad
// precomputation needs. They remain part of OpenSSL 3's ABI.
#define OPENSSL_SUPPRESS_DEPRECATED

#include "common/crypto.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <unistd.h>
#include <zlib.h>

#include <array>
#include <cstdlib>
#include <cstring>

#include "common/encoding.h"

namespace quarry {

Sha256Hasher::Sha256Hasher() { SHA256_Init(&ctx_); }

void Sha256Hasher::Update(std::string_view bytes) { SHA256_Update(&ctx_, bytes.data(), bytes.size()); }

Sha256Digest Sha256Hasher::Finish() {
  Sha256Digest digest;
  SHA256_Final(digest.data(), &ctx_);
  return digest;
}

Sha256Digest Sha256(std::string_view bytes) {
  // Not OpenSSL 3's one-shot SHA256(): it goes through an EVP fetch that costs
  // more than hashing a whole SigV4 canonical request.
  Sha256Hasher hasher;
  hasher.Update(bytes);
  return hasher.Finish();
}

std::string Sha256Hex(std::string_view bytes) { return DigestHex(Sha256(bytes)); }

HmacSha256Key::HmacSha256Key(std::string_view key) {
  // RFC 2104: keys longer than the block are hashed first; shorter ones are
  // zero-padded to the 64-byte block.
  unsigned char block[SHA256_CBLOCK] = {};
  if (key.size() > SHA256_CBLOCK) {
    const Sha256Digest hashed = Sha256(key);
    std::memcpy(block, hashed.data(), hashed.size());
  } else {
    std::memcpy(block, key.data(), key.size());
  }
  unsigned char ipad[SHA256_CBLOCK];
  unsigned char opad[SHA256_CBLOCK];
  for (size_t i = 0; i < SHA256_CBLOCK; ++i) {
    ipad[i] = block[i] ^ 0x36;
    opad[i] = block[i] ^ 0x5c;
  }
  SHA256_Init(&inner_);
  SHA256_Update(&inner_, ipad, sizeof(ipad));
  SHA256_Init(&outer_);
  SHA256_Update(&outer_, opad, sizeof(opad));
  OPENSSL_cleanse(block, sizeof(block));
  OPENSSL_cleanse(ipad, sizeof(ipad));
  OPENSSL_cleanse(opad, sizeof(opad));
}

Sha256Digest HmacSha256Key::Mac(std::string_view message) const {
  SHA256_CTX inner = inner_;
  SHA256_Update(&inner, message.data(), message.size());
  Sha256Digest inner_digest;
  SHA256_Final(inner_digest.data(), &inner);
  SHA256_CTX outer = outer_;
  SHA256_Update(&outer, inner_digest.data(), inner_digest.size());
  Sha256Digest digest;
  SHA256_Final(digest.data(), &outer);
  return digest;
}

Sha256Digest HmacSha256(std::string_view key, std::string_view message) {
  return HmacSha256Key(key).Mac(message);
}

std::string_view DigestView(const Sha256Digest& digest) {
  return {reinterpret_cast<const char*>(digest.data()), digest.size()};
}

std::string DigestHex(const Sha256Digest& digest) { return HexEncode(DigestView(digest)); }

uint32_t Crc32(std::string_view bytes, uint32_t crc) {
  // zlib takes a uInt length; feed large inputs in pieces.
  uLong value = crc;
  const auto* data = reinterpret_cast<const Bytef*>(bytes.data());
  size_t remaining = bytes.size();
  while (remaining > 0) {
    const uInt piece = remaining > (1u << 30) ? (1u << 30) : static_cast<uInt>(remaining);
    value = crc32(value, data, piece);
    data += piece;
    remaining -= piece;
  }
  return static_cast<uint32_t>(value);
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string SecureRandomBytes(size_t count) {
  std::string out(count, '\0');
  if (count > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(count)) != 1) {
    std::abort();
  }
  return out;
}

std::string RandomUuid() {
  // UUIDs are made on hot paths (an invocation id per Bedrock call), and one
  // RAND_bytes call costs about a microsecond whatever its size: each thread
  // draws CSPRNG bytes a page at a time and hands out 16 per UUID. A forked
  // child must not repeat its parent's bytes, so the page is dropped when the
  // process id changes.
  constexpr size_t kPage = 4096;
  thread_local std::array<unsigned char, kPage> page;
  thread_local size_t used = kPage;
  thread_local pid_t owner = 0;
  const pid_t pid = ::getpid();
  if (used + 16 > kPage || owner != pid) {
    if (RAND_bytes(page.data(), static_cast<int>(kPage)) != 1) std::abort();
    used = 0;
    owner = pid;
  }
  unsigned char bytes[16];
  std::memcpy(bytes, page.data() + used, sizeof bytes);
  std::memset(page.data() + used, 0, sizeof bytes);  // handed out once
  used += sizeof bytes;
  bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0f) | 0x40);  // version 4
  bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3f) | 0x80);  // RFC 4122 variant
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (size_t i = 0; i < sizeof bytes; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[bytes[i] >> 4]);
    out.push_back(kHex[bytes[i] & 0x0f]);
  }
  return out;
}

}  // namespace quarry
