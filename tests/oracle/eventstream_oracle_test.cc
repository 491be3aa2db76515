// Oracle test for the event-stream codec: frames we encode must decode
// identically in botocore's independent parser (botocore.eventstream), and in
// our own incremental decoder fed random slices; single-bit corruptions must
// be rejected by both.
//
// Runs against Debian's botocore 1.29 always (a required test dependency) and
// against a modern botocore (>= 1.43) when one is on PATH.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <array>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "aws/eventstream.h"
#include "common/encoding.h"
#include "tests/support/process.h"

namespace quarry::aws {
namespace {

using ::nlohmann::json;
using ::quarry::testing::DebianBotocore;
using ::quarry::testing::ModernBotocore;
using ::quarry::testing::ProcessResult;
using ::quarry::testing::PythonOracle;
using ::quarry::testing::RunProcess;

constexpr int kMessageCount = 1000;
constexpr int kBitFlipSamples = 200;
const std::string kScript = std::string(QUARRY_ORACLE_DIR) + "/eventstream_oracle.py";

// Random valid UTF-8 (ASCII, 2-, 3- and 4-byte sequences) of at most
// `max_bytes` bytes; botocore decodes names and strings as UTF-8.
std::string RandomUtf8(std::mt19937_64& rng, size_t max_bytes) {
  static const char* const kPieces[] = {"a", "Z", "0", "-", ":", " ", "_", "\xc3\xa9",
                                        "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\x7f", "\t"};
  std::uniform_int_distribution<size_t> piece(0, std::size(kPieces) - 1);
  const size_t target = std::uniform_int_distribution<size_t>(0, max_bytes)(rng);
  std::string out;
  while (out.size() < target) {
    const std::string_view p = kPieces[piece(rng)];
    if (out.size() + p.size() > max_bytes) break;
    out += p;
  }
  return out;
}

std::string RandomBytes(std::mt19937_64& rng, size_t size) {
  std::string out(size, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

// Sizes that favour the small and the empty but reach the limits.
size_t RandomValueSize(std::mt19937_64& rng) {
  const uint64_t pick = rng() % 100;
  if (pick < 10) return 0;
  if (pick < 98) return rng() % 300;
  return 65535 - rng() % 3;
}

size_t RandomPayloadSize(std::mt19937_64& rng) {
  const uint64_t pick = rng() % 1000;
  if (pick < 200) return 0;
  if (pick < 950) return rng() % 2048;
  if (pick < 995) return 16 * 1024 + rng() % (64 * 1024);
  return 512 * 1024 + rng() % (512 * 1024);
}

HeaderValue RandomValue(std::mt19937_64& rng, HeaderType type) {
  const uint64_t raw = rng();
  switch (type) {
    case HeaderType::kBoolTrue:
      return HeaderValue::Bool(true);
    case HeaderType::kBoolFalse:
      return HeaderValue::Bool(false);
    case HeaderType::kByte:
      return HeaderValue::Byte(static_cast<int8_t>(raw));
    case HeaderType::kShort:
      return HeaderValue::Short(static_cast<int16_t>(raw));
    case HeaderType::kInt:
      return HeaderValue::Int(static_cast<int32_t>(raw));
    case HeaderType::kLong:
      return HeaderValue::Long(static_cast<int64_t>(raw));
    case HeaderType::kBytes:
      return HeaderValue::Bytes(RandomBytes(rng, RandomValueSize(rng)));
    case HeaderType::kString:
      return HeaderValue::String(RandomUtf8(rng, RandomValueSize(rng)));
    case HeaderType::kTimestamp:
      return HeaderValue::Timestamp(static_cast<int64_t>(raw));
    case HeaderType::kUuid: {
      UuidBytes uuid;
      for (uint8_t& b : uuid) b = static_cast<uint8_t>(rng());
      return HeaderValue::Uuid(uuid);
    }
  }
  return HeaderValue::Bool(false);
}

// kMessageCount random messages; every header type appears many times.
// Names are unique within a message because botocore rejects duplicates.
std::vector<Message> RandomMessages() {
  std::mt19937_64 rng(0x5eed0e5);
  std::vector<Message> messages;
  for (int i = 0; i < kMessageCount; ++i) {
    Message message;
    std::set<std::string> names;
    const int header_count = static_cast<int>(rng() % 11);
    size_t headers_size = 0;
    for (int h = 0; h < header_count; ++h) {
      std::string name = RandomUtf8(rng, rng() % 8 == 0 ? 255 : 24);
      if (name.empty()) name = "n";
      if (!names.insert(name).second) continue;
      const auto type = static_cast<HeaderType>((i + h) % 10);
      Header header{std::move(name), RandomValue(rng, type)};
      const size_t size = 2 + header.name.size() + 18 + header.value.bytes_value().size();
      if (headers_size + size > kEventStreamMaxHeadersSize) break;
      headers_size += size;
      message.headers.push_back(std::move(header));
    }
    message.payload = RandomBytes(rng, RandomPayloadSize(rng));
    messages.push_back(std::move(message));
  }
  return messages;
}

// Our message in the shape the script prints for botocore's: bools stay
// bools, integers and timestamps are "int", byte arrays and UUIDs (botocore
// returns the raw 16 bytes) are base64 "bytes", strings are "str".
json ExpectedBotocoreJson(const Message& message) {
  json headers = json::array();
  for (const Header& header : message.headers) {
    const HeaderValue& v = header.value;
    switch (v.type()) {
      case HeaderType::kBoolTrue:
      case HeaderType::kBoolFalse:
        headers.push_back({header.name, "bool", v.bool_value()});
        break;
      case HeaderType::kByte:
      case HeaderType::kShort:
      case HeaderType::kInt:
      case HeaderType::kLong:
      case HeaderType::kTimestamp:
        headers.push_back({header.name, "int", v.integer_value()});
        break;
      case HeaderType::kBytes:
      case HeaderType::kUuid:
        headers.push_back({header.name, "bytes", Base64Encode(v.bytes_value())});
        break;
      case HeaderType::kString:
        headers.push_back({header.name, "str", v.bytes_value()});
        break;
    }
  }
  return {{"headers", headers}, {"payload_base64", Base64Encode(message.payload)}};
}

std::vector<json> ParseJsonLines(const std::string& text) {
  std::vector<json> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    json line = json::parse(text.substr(start, end - start), nullptr, false);
    EXPECT_FALSE(line.is_discarded()) << "oracle printed a non-JSON line";
    lines.push_back(std::move(line));
    start = end + 1;
  }
  return lines;
}

void ExpectBotocoreDecodesOurFrames(const PythonOracle& oracle) {
  const std::vector<Message> messages = RandomMessages();
  std::string stream;
  std::array<int, 10> type_counts{};
  int empty_payloads = 0, large_payloads = 0, max_size_values = 0;
  for (const Message& message : messages) {
    ASSERT_TRUE(AppendEncodedMessage(message, &stream).ok());
    for (const Header& header : message.headers) {
      ++type_counts[static_cast<size_t>(header.value.type())];
      if (header.value.bytes_value().size() >= 65533) ++max_size_values;
    }
    empty_payloads += message.payload.empty();
    large_payloads += message.payload.size() > 512 * 1024;
  }
  // The sample really covers what it claims to.
  for (size_t type = 0; type < type_counts.size(); ++type) {
    EXPECT_GE(type_counts[type], 100) << "header type " << type;
  }
  EXPECT_GE(empty_payloads, 100);
  EXPECT_GE(large_payloads, 2);
  EXPECT_GE(max_size_values, 5);

  // botocore's reading.
  const ProcessResult result = RunProcess({oracle.interpreter, kScript, "decode", "12345"}, stream);
  ASSERT_EQ(result.exit_code, 0) << result.stderr_text;
  const std::vector<json> lines = ParseJsonLines(result.stdout_text);
  ASSERT_EQ(lines.size(), messages.size() + 1) << "botocore " << oracle.botocore_version
                                               << " said: " << lines.back().dump();
  EXPECT_EQ(lines.back(), (json{{"end", true}, {"leftover", 0}}));
  for (size_t i = 0; i < messages.size(); ++i) {
    ASSERT_EQ(lines[i], ExpectedBotocoreJson(messages[i]))
        << "message " << i << " differs in botocore " << oracle.botocore_version;
  }

  // Our reading of the same bytes, fed in random slices.
  std::mt19937 rng(99);
  EventStreamDecoder decoder;
  std::vector<Message> decoded;
  size_t pos = 0;
  while (pos < stream.size()) {
    const size_t n = std::min<size_t>(stream.size() - pos, rng() % 3 == 0 ? 1 + rng() % 8
                                                                          : 1 + rng() % 70000);
    ASSERT_TRUE(decoder.Feed(std::string_view(stream).substr(pos, n), &decoded).ok());
    pos += n;
  }
  ASSERT_TRUE(decoder.Finish().ok());
  ASSERT_EQ(decoded.size(), messages.size());
  for (size_t i = 0; i < decoded.size(); ++i) {
    ASSERT_EQ(ExpectedBotocoreJson(decoded[i]), lines[i]) << "message " << i;
    ASSERT_EQ(decoded[i], messages[i]) << "message " << i;
  }
}

void ExpectBothRejectSingleBitFlips(const PythonOracle& oracle) {
  const std::vector<Message> messages = RandomMessages();
  std::mt19937_64 rng(4242);
  std::string hex_lines;
  int samples = 0;
  for (size_t i = 0; i < messages.size() && samples < kBitFlipSamples; ++i) {
    Result<std::string> frame = EncodeMessage(messages[i]);
    ASSERT_TRUE(frame.ok());
    if (frame->size() > 8192) continue;  // keep the hex input small
    // Aim a quarter of the flips at the prelude, where the lengths live.
    const size_t byte = rng() % 4 == 0 ? rng() % kEventStreamPreludeSize : rng() % frame->size();
    (*frame)[byte] ^= static_cast<char>(1u << (rng() % 8));
    EXPECT_FALSE(DecodeMessages(*frame).ok()) << "we accepted a flip in message " << i;
    hex_lines += HexEncode(*frame) + "\n";
    ++samples;
  }
  ASSERT_EQ(samples, kBitFlipSamples);
  const ProcessResult result = RunProcess({oracle.interpreter, kScript, "frames"}, hex_lines);
  ASSERT_EQ(result.exit_code, 0) << result.stderr_text;
  const std::vector<json> lines = ParseJsonLines(result.stdout_text);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kBitFlipSamples));
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["messages"], 0) << "botocore accepted corrupted frame " << i;
    EXPECT_TRUE(lines[i]["error"].is_string())
        << "botocore " << oracle.botocore_version << " did not reject corrupted frame " << i
        << ": " << lines[i].dump();
  }
}

std::optional<PythonOracle> RequireDebianBotocore() {
  std::optional<PythonOracle> oracle = DebianBotocore();
  EXPECT_TRUE(oracle.has_value())
      << "Debian's /usr/bin/python3 with python3-botocore is a required test dependency; "
         "install it with scripts/install-deps.sh";
  return oracle;
}

TEST(EventStreamOracleTest, DebianBotocoreDecodesOurFramesIdentically) {
  const std::optional<PythonOracle> oracle = RequireDebianBotocore();
  if (!oracle) return;
  ExpectBotocoreDecodesOurFrames(*oracle);
}

TEST(EventStreamOracleTest, DebianBotocoreAndWeRejectSingleBitFlips) {
  const std::optional<PythonOracle> oracle = RequireDebianBotocore();
  if (!oracle) return;
  ExpectBothRejectSingleBitFlips(*oracle);
}

TEST(EventStreamOracleTest, ModernBotocoreDecodesOurFramesIdentically) {
  const std::optional<PythonOracle> oracle = ModernBotocore();
  if (!oracle) {
    GTEST_SKIP() << "SKIPPED: no botocore >= 1.43 on PATH; the event-stream codec was checked "
                    "against Debian's botocore only";
  }
  ExpectBotocoreDecodesOurFrames(*oracle);
}

TEST(EventStreamOracleTest, ModernBotocoreAndWeRejectSingleBitFlips) {
  const std::optional<PythonOracle> oracle = ModernBotocore();
  if (!oracle) {
    GTEST_SKIP() << "SKIPPED: no botocore >= 1.43 on PATH; bit-flip rejection was checked "
                    "against Debian's botocore only";
  }
  ExpectBothRejectSingleBitFlips(*oracle);
}

}  // namespace
}  // namespace quarry::aws
