#pragma once
// Byte and text encodings used across the protocol code: hex, base64 (RFC 4648,
// standard alphabet with padding), percent-encoding (RFC 3986 unreserved set),
// and small ASCII string helpers.
//
// All functions are pure and thread-safe. Inputs are byte strings; nothing here
// assumes or checks UTF-8.

#include <string>
#include <string_view>

#include "common/status.h"

namespace quarry {

// Lower-case hex of every byte.
std::string HexEncode(std::string_view bytes);
// Accepts upper- or lower-case digits; fails on odd length or a non-hex digit.
Result<std::string> HexDecode(std::string_view hex);

std::string Base64Encode(std::string_view bytes);
// Strict decoding: standard alphabet, length a multiple of 4, padding only at
// the end. Fails with InvalidArgument naming the offending position.
Result<std::string> Base64Decode(std::string_view text);

enum class SlashEncoding { kEncode, kKeep };
// Percent-encodes every byte outside A-Z a-z 0-9 - . _ ~ (and '/' when kKeep)
// as %XX with upper-case hex digits. A space becomes %20, never '+'.
std::string UriEncode(std::string_view bytes, SlashEncoding slash = SlashEncoding::kEncode);
// Decodes %XX escapes ('+' is left as it is). Fails on a truncated or non-hex
// escape.
Result<std::string> UriDecode(std::string_view text);

std::string AsciiToLower(std::string_view text);
// Removes leading and trailing spaces, tabs, CR and LF.
std::string_view TrimAsciiWhitespace(std::string_view text);
bool EqualsIgnoreAsciiCase(std::string_view a, std::string_view b);

}  // namespace quarry
