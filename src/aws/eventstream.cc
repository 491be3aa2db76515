#include "aws/eventstream.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

#include <fmt/format.h>

#include "common/crypto.h"

namespace quarry::aws {
namespace {

uint32_t ReadU32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | uint32_t{u[3]};
}

uint64_t ReadU64(const char* p) { return (uint64_t{ReadU32(p)} << 32) | ReadU32(p + 4); }

uint64_t ReadBigEndian(const char* p, size_t width) {
  uint64_t v = 0;
  for (size_t i = 0; i < width; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

void WriteU32(char* p, uint32_t v) {
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>(v >> 16);
  p[2] = static_cast<char>(v >> 8);
  p[3] = static_cast<char>(v);
}

void WriteBigEndian(char* p, uint64_t v, size_t width) {
  for (size_t i = 0; i < width; ++i) p[i] = static_cast<char>(v >> (8 * (width - 1 - i)));
}

// Bytes of a value after its type code; nullopt for variable-length types.
std::optional<size_t> FixedValueSize(HeaderType type) {
  switch (type) {
    case HeaderType::kBoolTrue:
    case HeaderType::kBoolFalse:
      return 0;
    case HeaderType::kByte:
      return 1;
    case HeaderType::kShort:
      return 2;
    case HeaderType::kInt:
      return 4;
    case HeaderType::kLong:
    case HeaderType::kTimestamp:
      return 8;
    case HeaderType::kUuid:
      return 16;
    case HeaderType::kBytes:
    case HeaderType::kString:
      return std::nullopt;
  }
  return std::nullopt;
}

// Sign-extends the low `width` bytes of `raw`.
int64_t SignExtend(uint64_t raw, size_t width) {
  if (width == 8) return static_cast<int64_t>(raw);
  const unsigned bits = static_cast<unsigned>(width * 8);
  const uint64_t sign = uint64_t{1} << (bits - 1);
  raw &= (uint64_t{1} << bits) - 1;
  return static_cast<int64_t>(raw ^ sign) - static_cast<int64_t>(sign);
}

std::string Printable(std::string_view name) {
  std::string out;
  for (unsigned char c : name.substr(0, 64)) {
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (name.size() > 64) out += "...";
  return out;
}

}  // namespace

std::string_view HeaderTypeName(HeaderType type) {
  switch (type) {
    case HeaderType::kBoolTrue:
    case HeaderType::kBoolFalse:
      return "bool";
    case HeaderType::kByte:
      return "byte";
    case HeaderType::kShort:
      return "short";
    case HeaderType::kInt:
      return "int";
    case HeaderType::kLong:
      return "long";
    case HeaderType::kBytes:
      return "bytes";
    case HeaderType::kString:
      return "string";
    case HeaderType::kTimestamp:
      return "timestamp";
    case HeaderType::kUuid:
      return "uuid";
  }
  return "unknown";
}

HeaderValue HeaderValue::Bool(bool value) {
  return HeaderValue(value ? HeaderType::kBoolTrue : HeaderType::kBoolFalse, 0, {});
}
HeaderValue HeaderValue::Byte(int8_t value) { return HeaderValue(HeaderType::kByte, value, {}); }
HeaderValue HeaderValue::Short(int16_t value) { return HeaderValue(HeaderType::kShort, value, {}); }
HeaderValue HeaderValue::Int(int32_t value) { return HeaderValue(HeaderType::kInt, value, {}); }
HeaderValue HeaderValue::Long(int64_t value) { return HeaderValue(HeaderType::kLong, value, {}); }
HeaderValue HeaderValue::Bytes(std::string value) {
  return HeaderValue(HeaderType::kBytes, 0, std::move(value));
}
HeaderValue HeaderValue::String(std::string value) {
  return HeaderValue(HeaderType::kString, 0, std::move(value));
}
HeaderValue HeaderValue::Timestamp(int64_t millis_since_epoch) {
  return HeaderValue(HeaderType::kTimestamp, millis_since_epoch, {});
}
HeaderValue HeaderValue::Uuid(const UuidBytes& value) {
  return HeaderValue(HeaderType::kUuid, 0,
                     std::string(reinterpret_cast<const char*>(value.data()), value.size()));
}

UuidBytes HeaderValue::uuid_value() const {
  UuidBytes out{};
  if (type_ == HeaderType::kUuid) std::memcpy(out.data(), bytes_.data(), out.size());
  return out;
}

const Header* Message::FindHeader(std::string_view name) const {
  for (const Header& header : headers) {
    if (header.name == name) return &header;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// Encoding

Status AppendEncodedMessage(const Message& message, std::string* out, size_t max_message_size) {
  // Validate and size everything before touching `out`, so a failure leaves
  // it unchanged and a success writes the frame with a single resize.
  size_t headers_size = 0;
  for (size_t i = 0; i < message.headers.size(); ++i) {
    const Header& header = message.headers[i];
    if (header.name.empty() || header.name.size() > kEventStreamMaxHeaderNameSize) {
      return InvalidArgumentError(fmt::format(
          "event-stream header #{} has a {}-byte name '{}'; names must be 1 to {} bytes long",
          i, header.name.size(), Printable(header.name), kEventStreamMaxHeaderNameSize));
    }
    const std::optional<size_t> fixed = FixedValueSize(header.value.type());
    size_t value_size = 0;
    if (fixed.has_value()) {
      value_size = *fixed;
    } else {
      const size_t length = header.value.bytes_value().size();
      if (length > kEventStreamMaxHeaderValueSize) {
        return InvalidArgumentError(fmt::format(
            "event-stream header '{}' has a {}-byte {} value; the wire format allows at most {} "
            "bytes (a u16 length): move large data into the payload",
            Printable(header.name), length, HeaderTypeName(header.value.type()),
            kEventStreamMaxHeaderValueSize));
      }
      value_size = 2 + length;
    }
    headers_size += 1 + header.name.size() + 1 + value_size;
  }
  if (headers_size > kEventStreamMaxHeadersSize) {
    return InvalidArgumentError(
        fmt::format("event-stream headers take {} bytes; decoders (botocore) accept at most {}: "
                    "use fewer or smaller headers",
                    headers_size, kEventStreamMaxHeadersSize));
  }
  const size_t limit =
      std::min<size_t>(max_message_size, std::numeric_limits<uint32_t>::max());
  if (message.payload.size() > limit - kEventStreamMinMessageSize - headers_size) {
    return InvalidArgumentError(fmt::format(
        "event-stream message would be {} bytes ({} of headers, {} of payload), above the limit "
        "of {} bytes: split the payload over several messages",
        kEventStreamMinMessageSize + headers_size + message.payload.size(), headers_size,
        message.payload.size(), limit));
  }
  const size_t total = kEventStreamMinMessageSize + headers_size + message.payload.size();

  const size_t start = out->size();
  out->resize(start + total);
  char* p = out->data() + start;
  WriteU32(p, static_cast<uint32_t>(total));
  WriteU32(p + 4, static_cast<uint32_t>(headers_size));
  WriteU32(p + 8, Crc32(std::string_view(p, 8)));
  char* w = p + kEventStreamPreludeSize;
  for (const Header& header : message.headers) {
    *w++ = static_cast<char>(header.name.size());
    std::memcpy(w, header.name.data(), header.name.size());
    w += header.name.size();
    const HeaderType type = header.value.type();
    *w++ = static_cast<char>(type);
    const std::optional<size_t> fixed = FixedValueSize(type);
    if (type == HeaderType::kUuid) {
      std::memcpy(w, header.value.bytes_value().data(), 16);
      w += 16;
    } else if (fixed.has_value()) {
      WriteBigEndian(w, static_cast<uint64_t>(header.value.integer_value()), *fixed);
      w += *fixed;
    } else {
      const std::string& bytes = header.value.bytes_value();
      WriteBigEndian(w, bytes.size(), 2);
      w += 2;
      std::memcpy(w, bytes.data(), bytes.size());
      w += bytes.size();
    }
  }
  if (!message.payload.empty()) std::memcpy(w, message.payload.data(), message.payload.size());
  w += message.payload.size();
  WriteU32(w, Crc32(std::string_view(p, total - 4)));
  return Status::Ok();
}

Result<std::string> EncodeMessage(const Message& message, size_t max_message_size) {
  std::string out;
  QUARRY_RETURN_IF_ERROR(AppendEncodedMessage(message, &out, max_message_size));
  return out;
}

// ---------------------------------------------------------------------------
// Decoding

std::string_view EventStreamErrorKindName(EventStreamErrorKind kind) {
  switch (kind) {
    case EventStreamErrorKind::kPreludeChecksumMismatch:
      return "PreludeChecksumMismatch";
    case EventStreamErrorKind::kMessageChecksumMismatch:
      return "MessageChecksumMismatch";
    case EventStreamErrorKind::kLengthOutOfBounds:
      return "LengthOutOfBounds";
    case EventStreamErrorKind::kMessageTooLarge:
      return "MessageTooLarge";
    case EventStreamErrorKind::kTruncatedHeaders:
      return "TruncatedHeaders";
    case EventStreamErrorKind::kUnknownHeaderType:
      return "UnknownHeaderType";
    case EventStreamErrorKind::kEmptyHeaderName:
      return "EmptyHeaderName";
    case EventStreamErrorKind::kStreamEndedMidMessage:
      return "StreamEndedMidMessage";
  }
  return "Unknown";
}

Status EventStreamError::ToStatus() const {
  return DataLossError(fmt::format("{}: {}", EventStreamErrorKindName(kind), message));
}

EventStreamDecoder::EventStreamDecoder(EventStreamDecoderOptions options) : options_(options) {}

Status EventStreamDecoder::Fail(EventStreamErrorKind kind, std::string message) {
  error_ = EventStreamError{kind, message_offset_, std::move(message)};
  error_status_ = error_->ToStatus();
  // Release whatever the broken message had buffered; the decoder is done.
  current_ = Message{};
  headers_buffer_ = std::string();
  return error_status_;
}

Status EventStreamDecoder::StartMessage() {
  const uint32_t total = ReadU32(small_.data());
  const uint32_t headers = ReadU32(small_.data() + 4);
  const uint32_t wire_crc = ReadU32(small_.data() + 8);
  // The lengths are only trusted once the prelude CRC vouches for them, so a
  // corrupted length is reported as corruption, not as a bogus size.
  const uint32_t computed = Crc32(std::string_view(small_.data(), 8));
  if (computed != wire_crc) {
    return Fail(EventStreamErrorKind::kPreludeChecksumMismatch,
                fmt::format("the message at stream offset {} has prelude CRC 0x{:08x} but its "
                            "first 8 bytes (total_length={}, headers_length={}) hash to 0x{:08x}; "
                            "the stream is corrupted or is not an AWS event stream (check the "
                            "response Content-Type), so nothing after this point can be trusted",
                            message_offset_, wire_crc, total, headers, computed));
  }
  if (total < kEventStreamMinMessageSize) {
    return Fail(EventStreamErrorKind::kLengthOutOfBounds,
                fmt::format("the message at stream offset {} declares total_length={}, below the "
                            "{}-byte minimum of a message; the sender is broken",
                            message_offset_, total, kEventStreamMinMessageSize));
  }
  if (total > options_.max_message_size) {
    return Fail(EventStreamErrorKind::kMessageTooLarge,
                fmt::format("the message at stream offset {} declares total_length={}, above the "
                            "limit of {} bytes; refusing to buffer it (raise max_message_size only "
                            "if the service really sends messages that large)",
                            message_offset_, total, options_.max_message_size));
  }
  if (headers > total - kEventStreamMinMessageSize) {
    return Fail(EventStreamErrorKind::kLengthOutOfBounds,
                fmt::format("the message at stream offset {} declares headers_length={} but "
                            "total_length={} leaves room for at most {} bytes of headers; the "
                            "sender is broken",
                            message_offset_, headers, total, total - kEventStreamMinMessageSize));
  }
  if (headers > options_.max_headers_size) {
    return Fail(EventStreamErrorKind::kLengthOutOfBounds,
                fmt::format("the message at stream offset {} declares headers_length={}, above "
                            "the limit of {} bytes",
                            message_offset_, headers, options_.max_headers_size));
  }
  total_length_ = total;
  headers_length_ = headers;
  running_crc_ = Crc32(std::string_view(small_.data(), kEventStreamPreludeSize));
  headers_buffer_.clear();
  headers_buffer_.reserve(headers);
  current_ = Message{};
  current_.payload.reserve(total - headers - kEventStreamMinMessageSize);
  filled_ = 0;
  state_ = State::kHeaders;
  return Status::Ok();
}

Status EventStreamDecoder::FinishMessage(std::vector<Message>* out) {
  const uint32_t wire_crc = ReadU32(small_.data());
  if (wire_crc != running_crc_) {
    return Fail(EventStreamErrorKind::kMessageChecksumMismatch,
                fmt::format("the {}-byte message at stream offset {} has message CRC 0x{:08x} but "
                            "its bytes hash to 0x{:08x}; the message was corrupted in transit "
                            "(retry the request)",
                            total_length_, message_offset_, wire_crc, running_crc_));
  }
  // Headers are parsed only now that the CRC has vouched for them.
  const std::string_view data = headers_buffer_;
  size_t pos = 0;
  const uint64_t headers_start = message_offset_ + kEventStreamPreludeSize;
  while (pos < data.size()) {
    const size_t header_start = pos;
    const size_t name_length = static_cast<unsigned char>(data[pos]);
    if (name_length == 0) {
      return Fail(EventStreamErrorKind::kEmptyHeaderName,
                  fmt::format("the header at stream offset {} (message at {}) has an empty name; "
                              "header names are 1 to 255 bytes, so the sender is broken",
                              headers_start + header_start, message_offset_));
    }
    // name_len + name + type code must fit.
    if (name_length + 2 > data.size() - pos) {
      return Fail(EventStreamErrorKind::kTruncatedHeaders,
                  fmt::format("the header at stream offset {} (message at {}) declares a {}-byte "
                              "name, which runs past the end of the {}-byte headers section",
                              headers_start + header_start, message_offset_, name_length,
                              data.size()));
    }
    std::string name(data.substr(pos + 1, name_length));
    pos += 1 + name_length;
    const uint8_t code = static_cast<uint8_t>(data[pos]);
    ++pos;
    if (code > static_cast<uint8_t>(HeaderType::kUuid)) {
      return Fail(EventStreamErrorKind::kUnknownHeaderType,
                  fmt::format("header '{}' at stream offset {} (message at {}) has type code {}; "
                              "known codes are 0 to 9, so the stream is not one this decoder "
                              "understands",
                              Printable(name), headers_start + header_start, message_offset_,
                              code));
    }
    const auto type = static_cast<HeaderType>(code);
    const std::optional<size_t> fixed = FixedValueSize(type);
    size_t value_length = 0;
    size_t prefix = 0;
    if (fixed.has_value()) {
      value_length = *fixed;
    } else if (data.size() - pos >= 2) {
      prefix = 2;
      value_length = (size_t{static_cast<unsigned char>(data[pos])} << 8) |
                     static_cast<unsigned char>(data[pos + 1]);
    } else {
      value_length = 2;  // the length field itself does not fit
    }
    if (prefix + value_length > data.size() - pos) {
      return Fail(EventStreamErrorKind::kTruncatedHeaders,
                  fmt::format("the {} value of header '{}' at stream offset {} (message at {}) "
                              "needs {} bytes but only {} remain in the {}-byte headers section",
                              HeaderTypeName(type), Printable(name), headers_start + header_start,
                              message_offset_, prefix + value_length, data.size() - pos,
                              data.size()));
    }
    pos += prefix;
    const char* v = data.data() + pos;
    HeaderValue value = HeaderValue::Bool(false);
    switch (type) {
      case HeaderType::kBoolTrue:
        value = HeaderValue::Bool(true);
        break;
      case HeaderType::kBoolFalse:
        break;
      case HeaderType::kByte:
        value = HeaderValue::Byte(static_cast<int8_t>(SignExtend(ReadBigEndian(v, 1), 1)));
        break;
      case HeaderType::kShort:
        value = HeaderValue::Short(static_cast<int16_t>(SignExtend(ReadBigEndian(v, 2), 2)));
        break;
      case HeaderType::kInt:
        value = HeaderValue::Int(static_cast<int32_t>(SignExtend(ReadU32(v), 4)));
        break;
      case HeaderType::kLong:
        value = HeaderValue::Long(static_cast<int64_t>(ReadU64(v)));
        break;
      case HeaderType::kTimestamp:
        value = HeaderValue::Timestamp(static_cast<int64_t>(ReadU64(v)));
        break;
      case HeaderType::kBytes:
        value = HeaderValue::Bytes(std::string(v, value_length));
        break;
      case HeaderType::kString:
        value = HeaderValue::String(std::string(v, value_length));
        break;
      case HeaderType::kUuid: {
        UuidBytes uuid;
        std::memcpy(uuid.data(), v, uuid.size());
        value = HeaderValue::Uuid(uuid);
        break;
      }
    }
    pos += value_length;
    current_.headers.push_back(Header{std::move(name), std::move(value)});
  }
  out->push_back(std::move(current_));
  current_ = Message{};
  ++messages_decoded_;
  state_ = State::kPrelude;
  filled_ = 0;
  return Status::Ok();
}

Status EventStreamDecoder::Feed(std::string_view bytes, std::vector<Message>* out) {
  if (error_.has_value()) return error_status_;
  size_t pos = 0;
  // Copies up to `want` bytes into `dest`, CRCing them on the way: each byte
  // is touched once while it is hot in cache.
  const auto take_into = [&](std::string* dest, size_t want) {
    const size_t n = std::min(want, bytes.size() - pos);
    const std::string_view piece = bytes.substr(pos, n);
    dest->append(piece);
    running_crc_ = Crc32(piece, running_crc_);
    pos += n;
    stream_offset_ += n;
  };
  while (true) {
    // States with nothing left to read advance without input, so a message
    // whose last byte arrived is emitted in this same call.
    if (state_ == State::kHeaders && headers_buffer_.size() == headers_length_) {
      state_ = State::kPayload;
    }
    if (state_ == State::kPayload &&
        current_.payload.size() == total_length_ - headers_length_ - kEventStreamMinMessageSize) {
      state_ = State::kMessageCrc;
      filled_ = 0;
    }
    if (pos == bytes.size()) break;
    switch (state_) {
      case State::kPrelude: {
        if (filled_ == 0) message_offset_ = stream_offset_;
        const size_t n = std::min(kEventStreamPreludeSize - filled_, bytes.size() - pos);
        std::memcpy(small_.data() + filled_, bytes.data() + pos, n);
        filled_ += n;
        pos += n;
        stream_offset_ += n;
        if (filled_ == kEventStreamPreludeSize) QUARRY_RETURN_IF_ERROR(StartMessage());
        break;
      }
      case State::kHeaders:
        take_into(&headers_buffer_, headers_length_ - headers_buffer_.size());
        break;
      case State::kPayload:
        take_into(&current_.payload, total_length_ - headers_length_ - kEventStreamMinMessageSize -
                                         current_.payload.size());
        break;
      case State::kMessageCrc: {
        const size_t n = std::min(4 - filled_, bytes.size() - pos);
        std::memcpy(small_.data() + filled_, bytes.data() + pos, n);
        filled_ += n;
        pos += n;
        stream_offset_ += n;
        if (filled_ == 4) QUARRY_RETURN_IF_ERROR(FinishMessage(out));
        break;
      }
    }
  }
  return Status::Ok();
}

Status EventStreamDecoder::Finish() {
  if (error_.has_value()) return error_status_;
  if (at_message_boundary()) return Status::Ok();
  const uint64_t buffered = stream_offset_ - message_offset_;
  std::string detail =
      state_ == State::kPrelude
          ? fmt::format("only {} of the 12 prelude bytes arrived", buffered)
          : fmt::format("{} of its {} bytes arrived", buffered, total_length_);
  return Fail(EventStreamErrorKind::kStreamEndedMidMessage,
              fmt::format("the stream ended inside the message at stream offset {}: {}; the "
                          "response was cut off (connection dropped or timed out), so the result "
                          "is incomplete: retry the request",
                          message_offset_, detail));
}

Result<std::vector<Message>> DecodeMessages(std::string_view bytes,
                                            EventStreamDecoderOptions options) {
  EventStreamDecoder decoder(options);
  std::vector<Message> messages;
  QUARRY_RETURN_IF_ERROR(decoder.Feed(bytes, &messages));
  QUARRY_RETURN_IF_ERROR(decoder.Finish());
  return messages;
}

// ---------------------------------------------------------------------------
// AWS protocol headers

std::optional<std::string_view> GetStringHeader(const Message& message, std::string_view name) {
  const Header* header = message.FindHeader(name);
  if (header == nullptr || header->value.type() != HeaderType::kString) return std::nullopt;
  return std::string_view(header->value.bytes_value());
}

std::optional<MessageType> GetMessageType(const Message& message) {
  const std::optional<std::string_view> value = GetStringHeader(message, kMessageTypeHeader);
  if (!value.has_value()) return std::nullopt;
  if (*value == "event") return MessageType::kEvent;
  if (*value == "exception") return MessageType::kException;
  if (*value == "error") return MessageType::kError;
  return std::nullopt;
}

std::optional<std::string_view> GetEventType(const Message& message) {
  return GetStringHeader(message, kEventTypeHeader);
}
std::optional<std::string_view> GetExceptionType(const Message& message) {
  return GetStringHeader(message, kExceptionTypeHeader);
}
std::optional<std::string_view> GetContentType(const Message& message) {
  return GetStringHeader(message, kContentTypeHeader);
}
std::optional<std::string_view> GetErrorCode(const Message& message) {
  return GetStringHeader(message, kErrorCodeHeader);
}
std::optional<std::string_view> GetErrorMessage(const Message& message) {
  return GetStringHeader(message, kErrorMessageHeader);
}

namespace {
Header StringHeader(std::string_view name, std::string_view value) {
  return Header{std::string(name), HeaderValue::String(std::string(value))};
}
}  // namespace

Message MakeEventMessage(std::string_view event_type, std::string payload,
                         std::string_view content_type) {
  Message message;
  message.headers = {StringHeader(kEventTypeHeader, event_type),
                     StringHeader(kContentTypeHeader, content_type),
                     StringHeader(kMessageTypeHeader, "event")};
  message.payload = std::move(payload);
  return message;
}

Message MakeExceptionMessage(std::string_view exception_type, std::string payload,
                             std::string_view content_type) {
  Message message;
  message.headers = {StringHeader(kExceptionTypeHeader, exception_type),
                     StringHeader(kContentTypeHeader, content_type),
                     StringHeader(kMessageTypeHeader, "exception")};
  message.payload = std::move(payload);
  return message;
}

Message MakeErrorMessage(std::string_view error_code, std::string_view error_message) {
  Message message;
  message.headers = {StringHeader(kErrorCodeHeader, error_code),
                     StringHeader(kErrorMessageHeader, error_message),
                     StringHeader(kMessageTypeHeader, "error")};
  return message;
}

}  // namespace quarry::aws
