// Runs the built `quarry aws eventstream decode|encode` as a person would:
// round trips, files read in chunks, and the failure cases (corrupt CRC,
// truncated stream, bad JSON, missing file).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/encoding.h"
#include "tests/support/process.h"
#include "tests/support/scratch_dir.h"

namespace quarry {
namespace {

using ::quarry::testing::ProcessResult;
using ::quarry::testing::RunProcess;
using ::quarry::testing::ScratchDir;
using ::testing::HasSubstr;

// Frames checked against Debian's botocore 1.29 (see src/aws/eventstream_test.cc).
constexpr std::string_view kEmptyFrameHex = "000000100000000005c248eb7d98c8ff";
constexpr std::string_view kChunkEventFrameHex =
    "0000006f0000004b9f4ea7ed0b3a6576656e742d747970650700056368756e6b0d3a636f6e74656e742d7479706507"
    "00106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b226279746573"
    "223a22534756736247383d227d0b6e5dde";

constexpr std::string_view kEmptyLine = R"({"headers":[],"payload_base64":""})";
constexpr std::string_view kChunkLine =
    R"({"headers":[{"name":":event-type","type":"string","value":"chunk"},)"
    R"({"name":":content-type","type":"string","value":"application/json"},)"
    R"({"name":":message-type","type":"string","value":"event"}],)"
    R"("payload_base64":"eyJieXRlcyI6IlNHVnNiRzg9In0="})";
constexpr std::string_view kAllTypesLine =
    R"({"headers":[{"name":"t","type":"bool","value":true},)"
    R"({"name":"f","type":"bool","value":false},)"
    R"({"name":"b","type":"byte","value":-128},)"
    R"({"name":"s","type":"short","value":32767},)"
    R"({"name":"i","type":"int","value":-70000},)"
    R"({"name":"l","type":"long","value":-9223372036854775808},)"
    R"({"name":"ba","type":"bytes","value":"AP8Q"},)"
    R"({"name":"str","type":"string","value":"hé"},)"
    R"({"name":"ts","type":"timestamp","value":1700000000123},)"
    R"({"name":"u","type":"uuid","value":"0f8fad5b-d9cb-469f-a165-70867728950e"}],)"
    R"("payload_base64":"eHl6"})";

std::string Unhex(std::string_view hex) { return HexDecode(hex).value_or("<bad hex>"); }

ProcessResult Quarry(const std::vector<std::string>& args, std::string_view stdin_bytes = {}) {
  std::vector<std::string> argv = {QUARRY_BINARY, "aws", "eventstream"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv, stdin_bytes);
}


std::string Lines(const std::vector<std::string_view>& lines) {
  std::string out;
  for (std::string_view line : lines) (out += line) += '\n';
  return out;
}

TEST(AwsEventStreamCliTest, DecodePrintsOneJsonLinePerMessage) {
  const ProcessResult result =
      Quarry({"decode"}, Unhex(kEmptyFrameHex) + Unhex(kChunkEventFrameHex));
  EXPECT_EQ(result.exit_code, 0) << result.stderr_text;
  EXPECT_EQ(result.stdout_text, Lines({kEmptyLine, kChunkLine}));
  EXPECT_EQ(result.stderr_text, "");
}

TEST(AwsEventStreamCliTest, EncodeWritesTheBotocoreFrames) {
  const ProcessResult result = Quarry({"encode", "-"}, Lines({kEmptyLine, kChunkLine}));
  EXPECT_EQ(result.exit_code, 0) << result.stderr_text;
  EXPECT_EQ(HexEncode(result.stdout_text),
            std::string(kEmptyFrameHex) + std::string(kChunkEventFrameHex));
}

TEST(AwsEventStreamCliTest, EveryHeaderTypeRoundTripsThroughEncodeAndDecode) {
  const std::string input = Lines({kAllTypesLine, kEmptyLine, kAllTypesLine});
  const ProcessResult encoded = Quarry({"encode"}, input);
  ASSERT_EQ(encoded.exit_code, 0) << encoded.stderr_text;
  const ProcessResult decoded = Quarry({"decode"}, encoded.stdout_text);
  ASSERT_EQ(decoded.exit_code, 0) << decoded.stderr_text;
  EXPECT_EQ(decoded.stdout_text, input);
}

TEST(AwsEventStreamCliTest, DecodesAFileLargerThanOneReadChunk) {
  // 300 messages of ~1 KiB: the file spans several 64 KiB reads, and
  // messages straddle the read boundaries.
  std::string lines;
  for (int i = 0; i < 300; ++i) {
    const std::string payload = Base64Encode(std::string(1000 + i, static_cast<char>('a' + i % 26)));
    lines += R"({"headers":[{"name":"i","type":"int","value":)" + std::to_string(i) +
             R"(}],"payload_base64":")" + payload + "\"}\n";
  }
  const ScratchDir dir;
  const std::string json_file = dir.Write("messages.jsonl", lines);
  const ProcessResult encoded = Quarry({"encode", json_file});
  ASSERT_EQ(encoded.exit_code, 0) << encoded.stderr_text;
  ASSERT_GT(encoded.stdout_text.size(), 3u * 64 * 1024);
  const std::string binary_file = dir.Write("messages.bin", encoded.stdout_text);
  const ProcessResult decoded = Quarry({"decode", binary_file});
  ASSERT_EQ(decoded.exit_code, 0) << decoded.stderr_text;
  EXPECT_EQ(decoded.stdout_text, lines);
}

TEST(AwsEventStreamCliTest, EmptyInputDecodesToNothing) {
  const ProcessResult result = Quarry({"decode"});
  EXPECT_EQ(result.exit_code, 0) << result.stderr_text;
  EXPECT_EQ(result.stdout_text, "");
  const ProcessResult encoded = Quarry({"encode"});
  EXPECT_EQ(encoded.exit_code, 0) << encoded.stderr_text;
  EXPECT_EQ(encoded.stdout_text, "");
}

TEST(AwsEventStreamCliTest, CorruptCrcPrintsTheEarlierMessagesThenFails) {
  std::string stream = Unhex(kEmptyFrameHex) + Unhex(kChunkEventFrameHex);
  stream[stream.size() - 10] ^= 0x04;  // inside the second message's payload
  const ProcessResult result = Quarry({"decode"}, stream);
  EXPECT_NE(result.exit_code, 0);
  EXPECT_EQ(result.stdout_text, Lines({kEmptyLine}));
  EXPECT_THAT(result.stderr_text, HasSubstr("MessageChecksumMismatch"));
  EXPECT_THAT(result.stderr_text, HasSubstr("stream offset 16"));
}

TEST(AwsEventStreamCliTest, CorruptPreludeFails) {
  std::string stream = Unhex(kChunkEventFrameHex);
  stream[2] ^= 0x01;
  const ProcessResult result = Quarry({"decode"}, stream);
  EXPECT_NE(result.exit_code, 0);
  EXPECT_EQ(result.stdout_text, "");
  EXPECT_THAT(result.stderr_text, HasSubstr("PreludeChecksumMismatch"));
}

TEST(AwsEventStreamCliTest, TruncatedStreamFailsInsteadOfStopping) {
  const std::string stream = Unhex(kEmptyFrameHex) + Unhex(kChunkEventFrameHex);
  const ProcessResult result = Quarry({"decode"}, stream.substr(0, stream.size() - 1));
  EXPECT_NE(result.exit_code, 0);
  EXPECT_EQ(result.stdout_text, Lines({kEmptyLine}));
  EXPECT_THAT(result.stderr_text, HasSubstr("StreamEndedMidMessage"));
}

TEST(AwsEventStreamCliTest, BadJsonNamesTheLine) {
  const ProcessResult not_json = Quarry({"encode"}, Lines({kEmptyLine, "", "{oops"}));
  EXPECT_NE(not_json.exit_code, 0);
  EXPECT_THAT(not_json.stderr_text, HasSubstr("line 3"));
  EXPECT_THAT(not_json.stderr_text, HasSubstr("not valid JSON"));

  const ProcessResult bad_type = Quarry(
      {"encode"}, Lines({R"({"headers":[{"name":"x","type":"float","value":1}],"payload_base64":""})"}));
  EXPECT_NE(bad_type.exit_code, 0);
  EXPECT_THAT(bad_type.stderr_text, HasSubstr("line 1"));
  EXPECT_THAT(bad_type.stderr_text, HasSubstr("unknown type \"float\""));

  const ProcessResult too_long_name = Quarry(
      {"encode"}, Lines({R"({"headers":[{"name":")" + std::string(256, 'n') +
                         R"(","type":"bool","value":true}],"payload_base64":""})"}));
  EXPECT_NE(too_long_name.exit_code, 0);
  EXPECT_THAT(too_long_name.stderr_text, HasSubstr("1 to 255"));
}

TEST(AwsEventStreamCliTest, MissingFileFails) {
  const ProcessResult result = Quarry({"decode", "/nonexistent/quarry/capture.bin"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_THAT(result.stderr_text, HasSubstr("cannot open"));
}

}  // namespace
}  // namespace quarry
