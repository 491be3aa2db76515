#pragma once
// File: aws/eventstream.h
//
// The AWS event-stream codec (`application/vnd.amazon.eventstream`): the
// binary framing that Bedrock uses for InvokeModelWithResponseStream,
// ConverseStream and InvokeAgent response bodies.
//
// Spec: the Smithy event-stream specification,
//   https://smithy.io/2.0/aws/amazon-eventstream.html
// and its message-level protocol rules,
//   https://smithy.io/2.0/spec/streaming.html#event-streams
// Limits follow botocore (headers <= 128 KiB) and aws-c-event-stream
// (message <= 24 MiB).
//
// Wire format (all integers big-endian):
//
//   [0..3]   total_length   u32  whole message, this field and the final CRC included
//   [4..7]   headers_length u32
//   [8..11]  prelude_crc    u32  CRC32 (IEEE, zlib) of bytes 0..7
//   [12..]   headers        headers_length bytes
//   [...]    payload        total_length - headers_length - 16 bytes
//   [-4..]   message_crc    u32  CRC32 of bytes 0 .. total_length-5
//
// A header is `name_len u8 | name | type u8 | value`, where the value is
// empty for the booleans (types 0 and 1), int8/int16/int32/int64 (2..5),
// `u16 length | bytes` for byte arrays (6) and strings (7), int64 milliseconds
// since the Unix epoch for timestamps (8), and 16 raw bytes for UUIDs (9).
//
// This file offers:
//   - the message model (Message, Header, HeaderValue);
//   - EncodeMessage / AppendEncodedMessage, which validate before writing;
//   - EventStreamDecoder, an incremental decoder fed arbitrary slices;
//   - accessors and builders for the AWS protocol headers (`:message-type`,
//     `:event-type`, `:exception-type`, ...).
//
// Example (a libcurl write callback):
//   EventStreamDecoder decoder;
//   std::vector<Message> messages;
//   Status status = decoder.Feed(slice, &messages);   // zero or more messages
//   for (Message& m : messages) Handle(std::move(m));  // even when !status.ok()
//   ...
//   status = decoder.Finish();  // at end of body: fails if a message was cut off
//
// Thread safety: all types are values; a decoder must not be used from two
// threads at once.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace quarry::aws {

// Bytes of the prelude (total_length, headers_length, prelude_crc).
inline constexpr size_t kEventStreamPreludeSize = 12;
// The smallest possible message: a prelude and a message CRC.
inline constexpr size_t kEventStreamMinMessageSize = 16;
// aws-c-event-stream's cap on one message (botocore 1.43 allows the same
// payload size); the decoder's and encoder's default bound.
inline constexpr size_t kEventStreamDefaultMaxMessageSize = 24 * 1024 * 1024;
// botocore's cap on headers_length.
inline constexpr size_t kEventStreamMaxHeadersSize = 128 * 1024;
// Header names are 1..255 bytes (u8 length, empty names rejected).
inline constexpr size_t kEventStreamMaxHeaderNameSize = 255;
// Byte-array and string values carry a u16 length.
inline constexpr size_t kEventStreamMaxHeaderValueSize = 65535;

// The wire type codes of header values.
enum class HeaderType : uint8_t {
  kBoolTrue = 0,
  kBoolFalse = 1,
  kByte = 2,       // int8
  kShort = 3,      // int16
  kInt = 4,        // int32
  kLong = 5,       // int64
  kBytes = 6,      // byte array, <= 65535 bytes
  kString = 7,     // UTF-8 string, <= 65535 bytes (not checked for UTF-8)
  kTimestamp = 8,  // int64 milliseconds since 1970-01-01T00:00:00Z
  kUuid = 9,       // 16 bytes
};

// "bool", "byte", "short", "int", "long", "bytes", "string", "timestamp",
// "uuid" (both boolean codes give "bool"); the names of the JSON-lines form.
std::string_view HeaderTypeName(HeaderType type);

using UuidBytes = std::array<uint8_t, 16>;

// A typed header value. Built only through the factories, so the integer is
// always within its type's range and a UUID always has 16 bytes.
class HeaderValue {
 public:
  static HeaderValue Bool(bool value);
  static HeaderValue Byte(int8_t value);
  static HeaderValue Short(int16_t value);
  static HeaderValue Int(int32_t value);
  static HeaderValue Long(int64_t value);
  // Length is checked by the encoder (<= 65535).
  static HeaderValue Bytes(std::string value);
  static HeaderValue String(std::string value);
  static HeaderValue Timestamp(int64_t millis_since_epoch);
  static HeaderValue Uuid(const UuidBytes& value);

  HeaderType type() const { return type_; }
  bool is_bool() const { return type_ == HeaderType::kBoolTrue || type_ == HeaderType::kBoolFalse; }
  // True for kBoolTrue. Meaningful only when is_bool().
  bool bool_value() const { return type_ == HeaderType::kBoolTrue; }
  // The value of a byte, short, int, long or timestamp (0 for other types).
  int64_t integer_value() const { return integer_; }
  // The bytes of a byte array, string or UUID (empty for other types).
  const std::string& bytes_value() const { return bytes_; }
  UuidBytes uuid_value() const;

  friend bool operator==(const HeaderValue&, const HeaderValue&) = default;

 private:
  HeaderValue(HeaderType type, int64_t integer, std::string bytes)
      : type_(type), integer_(integer), bytes_(std::move(bytes)) {}

  HeaderType type_ = HeaderType::kBoolFalse;
  int64_t integer_ = 0;
  std::string bytes_;
};

struct Header {
  std::string name;
  HeaderValue value;

  friend bool operator==(const Header&, const Header&) = default;
};

// One event-stream message. Headers keep their wire order; duplicate names
// are allowed by the model (the accessors below use the first match).
struct Message {
  std::vector<Header> headers;
  std::string payload;

  // The first header called `name`, or nullptr.
  const Header* FindHeader(std::string_view name) const;

  friend bool operator==(const Message&, const Message&) = default;
};

// ---------------------------------------------------------------------------
// Encoding

// Appends the wire form of `message` to `*out`. Fails with InvalidArgument
// (and leaves `*out` unchanged) when a header name is empty or longer than 255
// bytes, a byte-array or string value is longer than 65535 bytes, the headers
// exceed 128 KiB, or the whole message would exceed `max_message_size`.
Status AppendEncodedMessage(const Message& message, std::string* out,
                            size_t max_message_size = kEventStreamDefaultMaxMessageSize);

// The wire form of `message`; same checks as AppendEncodedMessage.
Result<std::string> EncodeMessage(const Message& message,
                                  size_t max_message_size = kEventStreamDefaultMaxMessageSize);

// ---------------------------------------------------------------------------
// Decoding

// What went wrong in a malformed stream. Every kind is fatal for the stream.
enum class EventStreamErrorKind {
  // The prelude CRC does not match bytes 0..7: the lengths cannot be trusted.
  kPreludeChecksumMismatch,
  // The message CRC does not match: the message was corrupted in transit.
  kMessageChecksumMismatch,
  // total_length < 16, headers_length > total_length - 16, or headers_length
  // above the headers maximum: the sender is broken.
  kLengthOutOfBounds,
  // total_length above the configured max_message_size (prelude checksum
  // good): the stream may be sound, this message is just larger than the
  // reader accepts.
  kMessageTooLarge,
  // A header runs past the end of the headers section.
  kTruncatedHeaders,
  // A header type code outside 0..9.
  kUnknownHeaderType,
  // A header with a zero-length name.
  kEmptyHeaderName,
  // Finish() was called while part of a message was still buffered.
  kStreamEndedMidMessage,
};

// "PreludeChecksumMismatch", "MessageChecksumMismatch", ...
std::string_view EventStreamErrorKindName(EventStreamErrorKind kind);

struct EventStreamError {
  EventStreamErrorKind kind;
  // Offset in the whole stream of the first byte of the bad message.
  uint64_t message_offset = 0;
  // Names the offsets and values involved and what it means for the user.
  std::string message;

  // Status with code kDataLoss and "<KindName>: <message>".
  Status ToStatus() const;
};

struct EventStreamDecoderOptions {
  // Largest accepted total_length. Checked (after the prelude CRC) before
  // any buffer for the message is allocated.
  size_t max_message_size = kEventStreamDefaultMaxMessageSize;
  // Largest accepted headers_length.
  size_t max_headers_size = kEventStreamMaxHeadersSize;
};

// Incremental decoder: feed it the bytes of a stream in slices of any size
// (one byte, a libcurl buffer, a megabyte holding many messages); it returns
// each message as soon as its last byte arrives.
//
// Each byte is copied once, into the message being built (headers into a
// scratch buffer, the payload straight into Message::payload), and CRC'd
// once as it passes, so a large payload is never re-copied or re-scanned.
// Memory is bounded by options.max_message_size per decoder.
//
// After the first error the decoder stays failed: Feed and Finish return the
// same error forever and consume nothing.
class EventStreamDecoder {
 public:
  explicit EventStreamDecoder(EventStreamDecoderOptions options = {});

  // Consumes all of `bytes` and appends every message completed by them to
  // `*out` (messages completed before an error in the same slice are appended
  // too). Returns OK or a kDataLoss Status describing the error (see error()).
  Status Feed(std::string_view bytes, std::vector<Message>* out);

  // Signals the end of input. Fails with kStreamEndedMidMessage if part of a
  // message is buffered (a cut-off stream is an error, never a silent stall),
  // or returns the earlier error. OK on a clean boundary, including an empty
  // stream.
  Status Finish();

  // The error that failed the decoder, if any.
  const std::optional<EventStreamError>& error() const { return error_; }
  // True when no partial message is buffered.
  bool at_message_boundary() const { return state_ == State::kPrelude && filled_ == 0; }
  // Bytes consumed from all Feed calls, and complete messages produced.
  uint64_t bytes_consumed() const { return stream_offset_; }
  uint64_t messages_decoded() const { return messages_decoded_; }

 private:
  enum class State { kPrelude, kHeaders, kPayload, kMessageCrc };

  Status Fail(EventStreamErrorKind kind, std::string message);
  Status StartMessage();
  Status FinishMessage(std::vector<Message>* out);

  EventStreamDecoderOptions options_;
  State state_ = State::kPrelude;
  std::optional<EventStreamError> error_;
  Status error_status_;

  uint64_t stream_offset_ = 0;    // bytes consumed so far
  uint64_t message_offset_ = 0;   // stream offset of the current message
  uint64_t messages_decoded_ = 0;

  // Small fixed-size fields (prelude, message CRC) are gathered here.
  std::array<char, kEventStreamPreludeSize> small_{};
  size_t filled_ = 0;  // bytes gathered for the current state

  uint32_t total_length_ = 0;
  uint32_t headers_length_ = 0;
  uint32_t running_crc_ = 0;  // CRC32 of the message bytes consumed so far
  std::string headers_buffer_;
  Message current_;
};

// Decodes a complete buffer holding zero or more whole messages; fails if any
// is malformed or the buffer ends mid-message.
Result<std::vector<Message>> DecodeMessages(std::string_view bytes,
                                            EventStreamDecoderOptions options = {});

// ---------------------------------------------------------------------------
// AWS protocol headers (all strings on the wire)
// (botocore/parsers.py BaseEventStreamParser; Smithy event-stream spec)

inline constexpr std::string_view kMessageTypeHeader = ":message-type";
inline constexpr std::string_view kEventTypeHeader = ":event-type";
inline constexpr std::string_view kExceptionTypeHeader = ":exception-type";
inline constexpr std::string_view kContentTypeHeader = ":content-type";
inline constexpr std::string_view kErrorCodeHeader = ":error-code";
inline constexpr std::string_view kErrorMessageHeader = ":error-message";

enum class MessageType { kEvent, kException, kError };

// The value of the first header called `name` when it is a string; nullopt
// when it is absent or of another type. The view points into `message`.
std::optional<std::string_view> GetStringHeader(const Message& message, std::string_view name);

// `:message-type` parsed; nullopt when absent, not a string, or not one of
// "event", "exception", "error".
std::optional<MessageType> GetMessageType(const Message& message);
std::optional<std::string_view> GetEventType(const Message& message);
std::optional<std::string_view> GetExceptionType(const Message& message);
std::optional<std::string_view> GetContentType(const Message& message);
std::optional<std::string_view> GetErrorCode(const Message& message);
std::optional<std::string_view> GetErrorMessage(const Message& message);

// An event: headers `:event-type` = event_type, `:content-type` =
// content_type, `:message-type` = "event" (the order AWS sends them), and
// `payload` (e.g. `chunk` with {"bytes":"<base64>"}).
Message MakeEventMessage(std::string_view event_type, std::string payload,
                         std::string_view content_type = "application/json");

// A modelled exception: `:exception-type` = exception_type (the lower-camel
// member name, e.g. "throttlingException"), `:content-type`, `:message-type`
// = "exception"; payload is the JSON body, e.g. {"message":"..."}.
Message MakeExceptionMessage(std::string_view exception_type, std::string payload,
                             std::string_view content_type = "application/json");

// An unmodelled error: `:error-code`, `:error-message`, `:message-type` =
// "error", empty payload.
Message MakeErrorMessage(std::string_view error_code, std::string_view error_message);

}  // namespace quarry::aws
