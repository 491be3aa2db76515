#include "aws/eventstream.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "aws/eventstream_json.h"
#include "common/crypto.h"
#include "common/encoding.h"

namespace quarry::aws {
namespace {

using ::testing::HasSubstr;

// Frames built by an independent Python encoder (struct + zlib.crc32) and
// decoded by Debian's botocore 1.29 (botocore.eventstream.EventStreamBuffer)
// to the values noted beside each.
// {} headers, empty payload.
constexpr std::string_view kEmptyFrameHex = "000000100000000005c248eb7d98c8ff";
// {} headers, payload {"foo":"bar"}.
constexpr std::string_view kPayloadOnlyFrameHex =
    "0000001d00000000fd528c5a7b22666f6f223a22626172227d3e9c25b4";
// :event-type=chunk, :content-type=application/json, :message-type=event;
// payload {"bytes":"SGVsbG8="}.
constexpr std::string_view kChunkEventFrameHex =
    "0000006f0000004b9f4ea7ed0b3a6576656e742d747970650700056368756e6b0d3a636f6e74656e742d7479706507"
    "00106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b226279746573"
    "223a22534756736247383d227d0b6e5dde";
// t=True f=False b=-2 s=-300 i=-70000 l=-2^40 ba=00ff10 str="hé"
// ts=1700000000123 u=00..0f; payload "xyz".
constexpr std::string_view kAllTypesFrameHex =
    "000000660000005381325dca017400016601016202fe017303fed4016904fffeee90016c05ffffff0000000000026261"
    "06000300ff100373747207000368c3a9027473080000018bcfe5687b017509000102030405060708090a0b0c0d0e0f"
    "78797a22e85afd";

std::string Unhex(std::string_view hex) {
  Result<std::string> bytes = HexDecode(hex);
  EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
  return bytes.value_or("");
}

UuidBytes CountingUuid() {
  UuidBytes uuid{};
  for (size_t i = 0; i < uuid.size(); ++i) uuid[i] = static_cast<uint8_t>(i);
  return uuid;
}

Message AllTypesMessage() {
  Message message;
  message.headers = {
      {"t", HeaderValue::Bool(true)},
      {"f", HeaderValue::Bool(false)},
      {"b", HeaderValue::Byte(-2)},
      {"s", HeaderValue::Short(-300)},
      {"i", HeaderValue::Int(-70000)},
      {"l", HeaderValue::Long(-(int64_t{1} << 40))},
      {"ba", HeaderValue::Bytes(std::string("\x00\xff\x10", 3))},
      {"str", HeaderValue::String("h\xc3\xa9")},
      {"ts", HeaderValue::Timestamp(1700000000123)},
      {"u", HeaderValue::Uuid(CountingUuid())},
  };
  message.payload = "xyz";
  return message;
}

std::string MustEncode(const Message& message) {
  Result<std::string> bytes = EncodeMessage(message);
  EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
  return bytes.value_or("");
}

// Three different messages laid end to end, as an HTTP body would hold them.
std::vector<Message> SampleMessages() {
  Message big = MakeEventMessage("chunk", std::string(3000, 'p'));
  big.headers.push_back({"n", HeaderValue::Int(42)});
  return {AllTypesMessage(), MakeExceptionMessage("throttlingException", R"({"message":"slow"})"),
          Message{}, big};
}

std::string EncodeAll(const std::vector<Message>& messages) {
  std::string out;
  for (const Message& m : messages) EXPECT_TRUE(AppendEncodedMessage(m, &out).ok());
  return out;
}

// Builds a frame from raw header bytes and payload with correct CRCs, so the
// decoder's structural checks can be reached.
std::string RawFrame(std::string_view headers, std::string_view payload) {
  const auto u32 = [](uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 8), static_cast<char>(v)};
  };
  const uint32_t total = static_cast<uint32_t>(16 + headers.size() + payload.size());
  std::string frame = u32(total) + u32(static_cast<uint32_t>(headers.size()));
  frame += u32(Crc32(frame));
  frame.append(headers);
  frame.append(payload);
  frame += u32(Crc32(frame));
  return frame;
}

// A prelude with a valid CRC and arbitrary lengths.
std::string RawPrelude(uint32_t total, uint32_t headers) {
  std::string frame;
  for (uint32_t v : {total, headers}) {
    for (int shift = 24; shift >= 0; shift -= 8) frame.push_back(static_cast<char>(v >> shift));
  }
  const uint32_t crc = Crc32(frame);
  for (int shift = 24; shift >= 0; shift -= 8) frame.push_back(static_cast<char>(crc >> shift));
  return frame;
}

struct DecodeOutcome {
  std::vector<Message> messages;
  Status status;
  std::optional<EventStreamErrorKind> kind;
};

// Feeds `bytes` in slices chosen by `next_size`, then signals end of input.
template <typename NextSize>
DecodeOutcome DecodeInSlices(std::string_view bytes, NextSize next_size,
                             EventStreamDecoderOptions options = {}) {
  EventStreamDecoder decoder(options);
  DecodeOutcome outcome;
  size_t pos = 0;
  while (pos < bytes.size() && outcome.status.ok()) {
    const size_t n = std::min(next_size(), bytes.size() - pos);
    outcome.status = decoder.Feed(bytes.substr(pos, n), &outcome.messages);
    pos += n;
  }
  if (outcome.status.ok()) outcome.status = decoder.Finish();
  if (decoder.error().has_value()) outcome.kind = decoder.error()->kind;
  return outcome;
}

DecodeOutcome DecodeWhole(std::string_view bytes, EventStreamDecoderOptions options = {}) {
  return DecodeInSlices(bytes, [&] { return bytes.size() + 1; }, options);
}

TEST(EventStreamTest, EveryHeaderTypeRoundTrips) {
  const Message message = AllTypesMessage();
  const DecodeOutcome outcome = DecodeWhole(MustEncode(message));
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  ASSERT_EQ(outcome.messages.size(), 1u);
  EXPECT_EQ(outcome.messages[0], message);
  const Message& decoded = outcome.messages[0];
  EXPECT_TRUE(decoded.headers[0].value.bool_value());
  EXPECT_FALSE(decoded.headers[1].value.bool_value());
  EXPECT_EQ(decoded.headers[2].value.integer_value(), -2);
  EXPECT_EQ(decoded.headers[3].value.integer_value(), -300);
  EXPECT_EQ(decoded.headers[4].value.integer_value(), -70000);
  EXPECT_EQ(decoded.headers[5].value.integer_value(), -(int64_t{1} << 40));
  EXPECT_EQ(decoded.headers[6].value.bytes_value(), std::string("\x00\xff\x10", 3));
  EXPECT_EQ(decoded.headers[8].value.type(), HeaderType::kTimestamp);
  EXPECT_EQ(decoded.headers[9].value.uuid_value(), CountingUuid());
}

TEST(EventStreamTest, IntegerExtremesRoundTrip) {
  Message message;
  message.headers = {
      {"b1", HeaderValue::Byte(INT8_MIN)},       {"b2", HeaderValue::Byte(INT8_MAX)},
      {"s1", HeaderValue::Short(INT16_MIN)},     {"s2", HeaderValue::Short(INT16_MAX)},
      {"i1", HeaderValue::Int(INT32_MIN)},       {"i2", HeaderValue::Int(INT32_MAX)},
      {"l1", HeaderValue::Long(INT64_MIN)},      {"l2", HeaderValue::Long(INT64_MAX)},
      {"t1", HeaderValue::Timestamp(INT64_MIN)}, {"e", HeaderValue::String("")},
      {"eb", HeaderValue::Bytes("")},
  };
  const DecodeOutcome outcome = DecodeWhole(MustEncode(message));
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  ASSERT_EQ(outcome.messages.size(), 1u);
  EXPECT_EQ(outcome.messages[0], message);
}

TEST(EventStreamTest, EncodesBotocoreVectorsByteForByte) {
  EXPECT_EQ(HexEncode(MustEncode(Message{})), kEmptyFrameHex);
  EXPECT_EQ(HexEncode(MustEncode(Message{{}, R"({"foo":"bar"})"})), kPayloadOnlyFrameHex);
  EXPECT_EQ(HexEncode(MustEncode(MakeEventMessage("chunk", R"({"bytes":"SGVsbG8="})"))),
            kChunkEventFrameHex);
  EXPECT_EQ(HexEncode(MustEncode(AllTypesMessage())), kAllTypesFrameHex);
}

TEST(EventStreamTest, DecodesBotocoreVectors) {
  const std::string stream = Unhex(kEmptyFrameHex) + Unhex(kPayloadOnlyFrameHex) +
                             Unhex(kChunkEventFrameHex) + Unhex(kAllTypesFrameHex);
  const DecodeOutcome outcome = DecodeWhole(stream);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  ASSERT_EQ(outcome.messages.size(), 4u);
  EXPECT_EQ(outcome.messages[0], Message{});
  EXPECT_EQ(outcome.messages[1].payload, R"({"foo":"bar"})");
  EXPECT_EQ(GetEventType(outcome.messages[2]), "chunk");
  EXPECT_EQ(GetContentType(outcome.messages[2]), "application/json");
  EXPECT_EQ(GetMessageType(outcome.messages[2]), MessageType::kEvent);
  EXPECT_EQ(outcome.messages[2].payload, R"({"bytes":"SGVsbG8="})");
  EXPECT_EQ(outcome.messages[3], AllTypesMessage());
}

TEST(EventStreamTest, OneByteAtATimeGivesTheSameMessages) {
  const std::vector<Message> expected = SampleMessages();
  const DecodeOutcome outcome = DecodeInSlices(EncodeAll(expected), [] { return size_t{1}; });
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_EQ(outcome.messages, expected);
}

TEST(EventStreamTest, RandomSlicesGiveTheSameMessages) {
  const std::vector<Message> expected = SampleMessages();
  const std::string stream = EncodeAll(expected);
  std::mt19937 rng(20240601);
  for (int round = 0; round < 50; ++round) {
    std::uniform_int_distribution<size_t> size(0, round < 25 ? 16 : 4096);
    const DecodeOutcome outcome = DecodeInSlices(stream, [&] { return size(rng); });
    ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
    ASSERT_EQ(outcome.messages, expected) << "round " << round;
  }
}

TEST(EventStreamTest, YieldsEachMessageAsSoonAsItsLastByteArrives) {
  const std::vector<Message> expected = SampleMessages();
  const std::string first = MustEncode(expected[0]);
  const std::string stream = EncodeAll(expected);
  EventStreamDecoder decoder;
  std::vector<Message> out;
  ASSERT_TRUE(decoder.Feed(std::string_view(stream).substr(0, first.size() - 1), &out).ok());
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(decoder.at_message_boundary());
  ASSERT_TRUE(decoder.Feed(std::string_view(stream).substr(first.size() - 1, 1), &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], expected[0]);
  EXPECT_TRUE(decoder.at_message_boundary());
  EXPECT_EQ(decoder.bytes_consumed(), first.size());
}

TEST(EventStreamTest, DecodesSeveralMessagesFromOneBuffer) {
  const std::vector<Message> expected = SampleMessages();
  Result<std::vector<Message>> decoded = DecodeMessages(EncodeAll(expected));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, expected);
}

TEST(EventStreamTest, EmptyInputDecodesToNothing) {
  Result<std::vector<Message>> decoded = DecodeMessages("");
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(decoded->empty());
}

TEST(EventStreamTest, ReportsPreludeChecksumMismatch) {
  std::string frame = Unhex(kChunkEventFrameHex);
  frame[11] ^= 0x01;
  const DecodeOutcome outcome = DecodeWhole(frame);
  EXPECT_EQ(outcome.kind, EventStreamErrorKind::kPreludeChecksumMismatch);
  EXPECT_EQ(outcome.status.code(), StatusCode::kDataLoss);
  EXPECT_THAT(outcome.status.message(), HasSubstr("PreludeChecksumMismatch"));
  EXPECT_THAT(outcome.status.message(), HasSubstr("stream offset 0"));
}

TEST(EventStreamTest, ReportsMessageChecksumMismatchWithItsOffset) {
  std::string stream = Unhex(kEmptyFrameHex) + Unhex(kChunkEventFrameHex);
  stream[16 + 40] ^= 0x20;  // a byte inside the second message's headers
  const DecodeOutcome outcome = DecodeWhole(stream);
  EXPECT_EQ(outcome.kind, EventStreamErrorKind::kMessageChecksumMismatch);
  EXPECT_THAT(outcome.status.message(), HasSubstr("stream offset 16"));
  EXPECT_EQ(outcome.messages.size(), 1u) << "the good message before the bad one is delivered";
}

TEST(EventStreamTest, RejectsTotalLengthBelowTheMinimum) {
  const DecodeOutcome outcome = DecodeWhole(RawPrelude(15, 0) + "1234");
  EXPECT_EQ(outcome.kind, EventStreamErrorKind::kLengthOutOfBounds);
  EXPECT_THAT(outcome.status.message(), HasSubstr("total_length=15"));
}

TEST(EventStreamTest, RejectsHeadersLongerThanTheMessage) {
  const DecodeOutcome outcome = DecodeWhole(RawPrelude(40, 25) + std::string(28, '\0'));
  EXPECT_EQ(outcome.kind, EventStreamErrorKind::kLengthOutOfBounds);
  EXPECT_THAT(outcome.status.message(), HasSubstr("headers_length=25"));
}

TEST(EventStreamTest, RejectsOversizeLengthsBeforeBufferingAnything) {
  // Only the 12 prelude bytes are fed: the decision must not wait for (or
  // allocate) the 4 GiB the prelude claims.
  EventStreamDecoder decoder;
  std::vector<Message> out;
  const Status status = decoder.Feed(RawPrelude(0xfffffff0u, 0), &out);
  EXPECT_FALSE(status.ok());
  ASSERT_TRUE(decoder.error().has_value());
  EXPECT_EQ(decoder.error()->kind, EventStreamErrorKind::kMessageTooLarge);
  EXPECT_THAT(status.message(), HasSubstr("total_length=4294967280"));

  const DecodeOutcome headers_too_big = DecodeWhole(RawPrelude(200 * 1024, 129 * 1024));
  EXPECT_EQ(headers_too_big.kind, EventStreamErrorKind::kLengthOutOfBounds);
}

TEST(EventStreamTest, HonoursAConfiguredMaximumMessageSize) {
  const std::string frame = MustEncode(Message{{}, std::string(2000, 'x')});
  EXPECT_EQ(DecodeWhole(frame, {.max_message_size = 1024}).kind,
            EventStreamErrorKind::kMessageTooLarge);
  EXPECT_TRUE(DecodeWhole(frame, {.max_message_size = frame.size()}).status.ok());
}

TEST(EventStreamTest, ReportsTruncatedHeaders) {
  // Name runs past the headers section.
  EXPECT_EQ(DecodeWhole(RawFrame("\x05" "ab", "")).kind, EventStreamErrorKind::kTruncatedHeaders);
  // Name fits but the type code does not.
  EXPECT_EQ(DecodeWhole(RawFrame("\x02" "ab", "")).kind, EventStreamErrorKind::kTruncatedHeaders);
  // An int32 value with only two bytes.
  EXPECT_EQ(DecodeWhole(RawFrame(std::string("\x01" "a\x04\x00\x01", 5), "")).kind,
            EventStreamErrorKind::kTruncatedHeaders);
  // A string whose length field is cut.
  EXPECT_EQ(DecodeWhole(RawFrame(std::string("\x01" "a\x07\x00", 4), "")).kind,
            EventStreamErrorKind::kTruncatedHeaders);
  // A string that claims 10 bytes but has 3 before the headers end.
  const DecodeOutcome outcome =
      DecodeWhole(RawFrame(std::string("\x01" "a\x07\x00\x0a" "abc", 8), "payload"));
  EXPECT_EQ(outcome.kind, EventStreamErrorKind::kTruncatedHeaders);
  EXPECT_THAT(outcome.status.message(), HasSubstr("header 'a'"));
}

TEST(EventStreamTest, ReportsUnknownHeaderType) {
  const DecodeOutcome outcome = DecodeWhole(RawFrame("\x01" "a\x0a", ""));
  EXPECT_EQ(outcome.kind, EventStreamErrorKind::kUnknownHeaderType);
  EXPECT_THAT(outcome.status.message(), HasSubstr("type code 10"));
}

TEST(EventStreamTest, ReportsEmptyHeaderName) {
  EXPECT_EQ(DecodeWhole(RawFrame(std::string("\x00\x00", 2), "")).kind,
            EventStreamErrorKind::kEmptyHeaderName);
}

TEST(EventStreamTest, ReportsAStreamThatEndsMidMessage) {
  const std::string frame = Unhex(kChunkEventFrameHex);
  for (size_t cut : {size_t{1}, size_t{11}, size_t{12}, size_t{50}, frame.size() - 1}) {
    const DecodeOutcome outcome = DecodeWhole(frame.substr(0, cut));
    EXPECT_EQ(outcome.kind, EventStreamErrorKind::kStreamEndedMidMessage) << "cut at " << cut;
    EXPECT_THAT(outcome.status.message(), HasSubstr("cut off"));
  }
  // A clean boundary is fine.
  EXPECT_TRUE(DecodeWhole(frame + frame).status.ok());
}

TEST(EventStreamTest, StaysFailedAfterAnError) {
  std::string bad = Unhex(kChunkEventFrameHex);
  bad.back() ^= 0x01;
  EventStreamDecoder decoder;
  std::vector<Message> out;
  const Status first = decoder.Feed(bad, &out);
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(decoder.Feed(Unhex(kEmptyFrameHex), &out), first);
  EXPECT_EQ(decoder.Finish(), first);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(decoder.error()->kind, EventStreamErrorKind::kMessageChecksumMismatch);
}

TEST(EventStreamTest, DetectsEverySingleBitFlip) {
  const std::vector<Message> expected = SampleMessages();
  const std::string stream = EncodeAll(expected);
  std::mt19937 rng(7);
  std::uniform_int_distribution<size_t> size(1, 700);
  for (size_t bit = 0; bit < stream.size() * 8; ++bit) {
    std::string corrupted = stream;
    corrupted[bit / 8] ^= static_cast<char>(1u << (bit % 8));
    const DecodeOutcome outcome =
        bit % 2 == 0 ? DecodeWhole(corrupted) : DecodeInSlices(corrupted, [&] { return size(rng); });
    ASSERT_FALSE(outcome.status.ok()) << "bit " << bit << " flipped went unnoticed";
    ASSERT_TRUE(outcome.kind.has_value());
    // Whatever came out before the error must be the original messages.
    ASSERT_LE(outcome.messages.size(), expected.size());
    for (size_t i = 0; i < outcome.messages.size(); ++i) {
      ASSERT_EQ(outcome.messages[i], expected[i]) << "bit " << bit;
    }
  }
}

TEST(EventStreamTest, EncoderRejectsBadHeaderNames) {
  Message message;
  message.headers = {{"", HeaderValue::Bool(true)}};
  EXPECT_EQ(EncodeMessage(message).status().code(), StatusCode::kInvalidArgument);
  message.headers = {{std::string(256, 'n'), HeaderValue::Bool(true)}};
  EXPECT_THAT(EncodeMessage(message).status().message(), HasSubstr("1 to 255"));
  message.headers = {{std::string(255, 'n'), HeaderValue::Bool(true)}};
  EXPECT_TRUE(EncodeMessage(message).ok());
}

TEST(EventStreamTest, EncoderRejectsOversizeValuesAndLeavesOutputUnchanged) {
  Message message;
  message.headers = {{"s", HeaderValue::String(std::string(65536, 'v'))}};
  std::string out = "keep";
  const Status status = AppendEncodedMessage(message, &out);
  EXPECT_THAT(status.message(), HasSubstr("65535"));
  EXPECT_EQ(out, "keep");
  message.headers = {{"b", HeaderValue::Bytes(std::string(65536, 'v'))}};
  EXPECT_FALSE(EncodeMessage(message).ok());
  message.headers = {{"b", HeaderValue::Bytes(std::string(65535, 'v'))}};
  EXPECT_TRUE(EncodeMessage(message).ok());
}

TEST(EventStreamTest, EncoderRejectsOversizeHeadersAndMessages) {
  Message message;
  for (const char* name : {"a", "b", "c"}) {
    message.headers.push_back({name, HeaderValue::Bytes(std::string(60000, 'v'))});
  }
  EXPECT_THAT(EncodeMessage(message).status().message(), HasSubstr("headers take"));
  EXPECT_FALSE(EncodeMessage(Message{{}, std::string(100, 'x')}, 100).ok());
  EXPECT_TRUE(EncodeMessage(Message{{}, std::string(100, 'x')}, 116).ok());
}

TEST(EventStreamTest, BuildsAndReadsEventMessages) {
  const Message event = MakeEventMessage("chunk", R"({"bytes":"aGk="})");
  EXPECT_EQ(GetMessageType(event), MessageType::kEvent);
  EXPECT_EQ(GetEventType(event), "chunk");
  EXPECT_EQ(GetContentType(event), "application/json");
  EXPECT_EQ(GetExceptionType(event), std::nullopt);
  EXPECT_EQ(event.headers[0].name, ":event-type");
}

TEST(EventStreamTest, BuildsAndReadsExceptionAndErrorMessages) {
  const Message exception =
      MakeExceptionMessage("throttlingException", R"({"message":"Rate exceeded"})");
  EXPECT_EQ(GetMessageType(exception), MessageType::kException);
  EXPECT_EQ(GetExceptionType(exception), "throttlingException");
  EXPECT_EQ(GetEventType(exception), std::nullopt);

  const Message error = MakeErrorMessage("InternalFailure", "boom");
  EXPECT_EQ(GetMessageType(error), MessageType::kError);
  EXPECT_EQ(GetErrorCode(error), "InternalFailure");
  EXPECT_EQ(GetErrorMessage(error), "boom");
  EXPECT_TRUE(error.payload.empty());
}

TEST(EventStreamTest, ProtocolAccessorsIgnoreNonStringAndUnknownValues) {
  Message message;
  message.headers = {{":message-type", HeaderValue::String("bogus")},
                     {":event-type", HeaderValue::Int(3)}};
  EXPECT_EQ(GetMessageType(message), std::nullopt);
  EXPECT_EQ(GetEventType(message), std::nullopt);
  EXPECT_EQ(GetMessageType(Message{}), std::nullopt);
}

// ---------------------------------------------------------------------------
// JSON-lines form

TEST(EventStreamJsonTest, WritesTheDocumentedForm) {
  Result<std::string> line = MessageToJsonLine(AllTypesMessage());
  ASSERT_TRUE(line.ok()) << line.status().ToString();
  EXPECT_EQ(*line,
            R"({"headers":[{"name":"t","type":"bool","value":true},)"
            R"({"name":"f","type":"bool","value":false},)"
            R"({"name":"b","type":"byte","value":-2},)"
            R"({"name":"s","type":"short","value":-300},)"
            R"({"name":"i","type":"int","value":-70000},)"
            R"({"name":"l","type":"long","value":-1099511627776},)"
            R"({"name":"ba","type":"bytes","value":"AP8Q"},)"
            "{\"name\":\"str\",\"type\":\"string\",\"value\":\"h\xc3\xa9\"},"
            R"({"name":"ts","type":"timestamp","value":1700000000123},)"
            R"({"name":"u","type":"uuid","value":"00010203-0405-0607-0809-0a0b0c0d0e0f"}],)"
            R"("payload_base64":"eHl6"})");
}

TEST(EventStreamJsonTest, EveryHeaderTypeRoundTrips) {
  for (const Message& message : SampleMessages()) {
    Result<std::string> line = MessageToJsonLine(message);
    ASSERT_TRUE(line.ok()) << line.status().ToString();
    Result<Message> parsed = MessageFromJsonLine(*line);
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    EXPECT_EQ(*parsed, message);
  }
}

TEST(EventStreamJsonTest, AcceptsUpperCaseUuidsAndExtremeIntegers) {
  Result<Message> parsed = MessageFromJsonLine(
      R"({"headers":[{"name":"u","type":"uuid","value":"00010203-0405-0607-0809-0A0B0C0D0E0F"},)"
      R"({"name":"l","type":"long","value":9223372036854775807},)"
      R"({"name":"m","type":"long","value":-9223372036854775808}],"payload_base64":""})");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->headers[0].value.uuid_value(), CountingUuid());
  EXPECT_EQ(parsed->headers[1].value.integer_value(), INT64_MAX);
  EXPECT_EQ(parsed->headers[2].value.integer_value(), INT64_MIN);
}

std::string JsonError(std::string_view line) {
  Result<Message> parsed = MessageFromJsonLine(line);
  EXPECT_FALSE(parsed.ok()) << line;
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
  return parsed.status().message();
}

std::string OneHeader(std::string_view type, std::string_view value) {
  return std::string(R"({"headers":[{"name":"h","type":")") + std::string(type) +
         R"(","value":)" + std::string(value) + R"(}],"payload_base64":""})";
}

TEST(EventStreamJsonTest, RejectsEveryKindOfBadInput) {
  EXPECT_THAT(JsonError("not json"), HasSubstr("not valid JSON"));
  EXPECT_THAT(JsonError("[1]"), HasSubstr("expected a JSON object"));
  EXPECT_THAT(JsonError(R"({"payload_base64":""})"), HasSubstr("missing \"headers\""));
  EXPECT_THAT(JsonError(R"({"headers":[]})"), HasSubstr("missing \"payload_base64\""));
  EXPECT_THAT(JsonError(R"({"headers":[],"payload_base64":"", "x":1})"),
              HasSubstr("unexpected field \"x\""));
  EXPECT_THAT(JsonError(R"({"headers":[],"payload_base64":"abc"})"), HasSubstr("base64"));
  EXPECT_THAT(JsonError(R"({"headers":[{"type":"bool","value":true}],"payload_base64":""})"),
              HasSubstr("missing \"name\""));
  EXPECT_THAT(JsonError(R"({"headers":[{"name":"h","value":true}],"payload_base64":""})"),
              HasSubstr("missing \"type\""));
  EXPECT_THAT(JsonError(R"({"headers":[{"name":"h","type":"bool"}],"payload_base64":""})"),
              HasSubstr("missing \"value\""));
  EXPECT_THAT(JsonError(R"({"headers":[3],"payload_base64":""})"), HasSubstr("header #0"));
  EXPECT_THAT(JsonError(OneHeader("float", "1")), HasSubstr("unknown type \"float\""));
  EXPECT_THAT(JsonError(OneHeader("byte", "128")), HasSubstr("out of range for a byte"));
  EXPECT_THAT(JsonError(OneHeader("byte", "-129")), HasSubstr("out of range for a byte"));
  EXPECT_THAT(JsonError(OneHeader("short", "32768")), HasSubstr("out of range for a short"));
  EXPECT_THAT(JsonError(OneHeader("int", "-2147483649")), HasSubstr("out of range for a int"));
  EXPECT_THAT(JsonError(OneHeader("long", "9223372036854775808")), HasSubstr("out of range"));
  EXPECT_THAT(JsonError(OneHeader("int", "1.5")), HasSubstr("must be a JSON integer"));
  EXPECT_THAT(JsonError(OneHeader("int", "\"1\"")), HasSubstr("must be a JSON integer"));
  EXPECT_THAT(JsonError(OneHeader("bool", "1")), HasSubstr("true or false"));
  EXPECT_THAT(JsonError(OneHeader("bytes", "\"a\"")), HasSubstr("base64"));
  EXPECT_THAT(JsonError(OneHeader("string", "7")), HasSubstr("must be a JSON string"));
  EXPECT_THAT(JsonError(OneHeader("uuid", "\"00010203-0405-0607-0809-0a0b0c0d0e\"")),
              HasSubstr("not a UUID"));
  EXPECT_THAT(JsonError(OneHeader("uuid", "\"000102030-405-0607-0809-0a0b0c0d0e0f\"")),
              HasSubstr("not a UUID"));
  EXPECT_THAT(JsonError(OneHeader("uuid", "\"0001020g-0405-0607-0809-0a0b0c0d0e0f\"")),
              HasSubstr("not a UUID"));
}

TEST(EventStreamJsonTest, RefusesToWriteInvalidUtf8Strings) {
  Message message;
  message.headers = {{"s", HeaderValue::String("\xff")}};
  EXPECT_THAT(MessageToJsonLine(message).status().message(), HasSubstr("not valid UTF-8"));
  message.headers = {{"\xc0\x80", HeaderValue::Bool(true)}};  // overlong NUL
  EXPECT_THAT(MessageToJsonLine(message).status().message(), HasSubstr("not valid UTF-8"));
  message.headers = {{"b", HeaderValue::Bytes("\xff")}};  // bytes are base64: fine
  EXPECT_TRUE(MessageToJsonLine(message).ok());
}

}  // namespace
}  // namespace quarry::aws
