#include "common/ids.h"

#include <array>
#include <cassert>
#include <cstdint>

#include "common/crypto.h"

namespace quarry {
namespace {

// Crockford's alphabet: no I, L, O or U, so ids survive being read aloud.
constexpr std::string_view kAlphabet = "0123456789abcdefghjkmnpqrstvwxyz";
constexpr size_t kRandomChars = 20;

bool IsLowerPrefix(std::string_view prefix) {
  if (prefix.empty() || prefix.size() > 8) return false;
  for (char c : prefix) {
    if (c < 'a' || c > 'z') return false;
  }
  return true;
}

}  // namespace

std::string NewId(std::string_view prefix) {
  assert(IsLowerPrefix(prefix) && "id prefixes are 1-8 lower-case letters");
  const std::string random = SecureRandomBytes(kRandomChars);
  std::string id;
  id.reserve(prefix.size() + 1 + kRandomChars);
  id.append(prefix);
  id.push_back('_');
  // One byte per character, 5 of its bits used: simple and unbiased.
  for (char byte : random) id.push_back(kAlphabet[static_cast<uint8_t>(byte) & 31]);
  return id;
}

bool IsWellFormedId(std::string_view id, std::string_view prefix) {
  const size_t underscore = id.find('_');
  if (underscore == std::string_view::npos) return false;
  const std::string_view head = id.substr(0, underscore);
  const std::string_view tail = id.substr(underscore + 1);
  if (!IsLowerPrefix(head)) return false;
  if (!prefix.empty() && head != prefix) return false;
  if (tail.size() != kRandomChars) return false;
  for (char c : tail) {
    if (kAlphabet.find(c) == std::string_view::npos) return false;
  }
  return true;
}

}  // namespace quarry
