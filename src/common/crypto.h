#pragma once
// Hashes and MACs on top of OpenSSL 3: SHA-256, HMAC-SHA256 (with a reusable
// precomputed key, which is what makes cached SigV4 signing keys cheap),
// CRC32 (zlib's IEEE polynomial, as AWS event streams use), constant-time
// comparison, and cryptographically secure random bytes.
//
// Thread safety: free functions are thread-safe. Sha256Hasher and HmacSha256Key
// objects are values; a const HmacSha256Key may be shared between threads.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include <openssl/sha.h>

namespace quarry {

using Sha256Digest = std::array<uint8_t, 32>;

// Incremental SHA-256.
class Sha256Hasher {
 public:
  Sha256Hasher();
  void Update(std::string_view bytes);
  Sha256Digest Finish();

 private:
  friend class HmacSha256Key;
  SHA256_CTX ctx_;
};

Sha256Digest Sha256(std::string_view bytes);
// Lower-case hex of the SHA-256 digest.
std::string Sha256Hex(std::string_view bytes);

// An HMAC-SHA256 key with the inner and outer pad states precomputed, so each
// MAC costs two SHA-256 finishes instead of four compressions of setup.
class HmacSha256Key {
 public:
  explicit HmacSha256Key(std::string_view key);
  Sha256Digest Mac(std::string_view message) const;

 private:
  SHA256_CTX inner_;
  SHA256_CTX outer_;
};

Sha256Digest HmacSha256(std::string_view key, std::string_view message);

std::string_view DigestView(const Sha256Digest& digest);
std::string DigestHex(const Sha256Digest& digest);

// CRC32 (IEEE 802.3, zlib's crc32). `crc` continues an earlier checksum.
uint32_t Crc32(std::string_view bytes, uint32_t crc = 0);

// Compares in time that depends only on the lengths, never on where the inputs
// first differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// `count` bytes from the operating system's CSPRNG. Aborts if it fails: there
// is no safe fallback.
std::string SecureRandomBytes(size_t count);

// A random (version 4) UUID in its 8-4-4-4-12 lower-case hex form, as AWS
// request ids and SDK invocation ids are written.
std::string RandomUuid();

}  // namespace quarry
