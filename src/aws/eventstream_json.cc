#include "aws/eventstream_json.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/encoding.h"

namespace quarry::aws {
namespace {

using nlohmann::json;

// Offset of the first byte that breaks UTF-8 (overlong forms, surrogates and
// code points above U+10FFFF included), or nullopt when `text` is valid.
// nlohmann's dump() would throw on the same bytes; checking first lets the
// error name the header.
std::optional<size_t> FirstInvalidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    size_t extra = 0;
    uint32_t code = 0;
    uint32_t min = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      extra = 1, code = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      extra = 2, code = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      extra = 3, code = c & 0x07, min = 0x10000;
    } else {
      return i;
    }
    if (text.size() - i <= extra) return i;
    for (size_t k = 1; k <= extra; ++k) {
      const auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xc0) != 0x80) return i;
      code = (code << 6) | (cc & 0x3f);
    }
    if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return i;
    i += extra + 1;
  }
  return std::nullopt;
}

std::string FormatUuid(const std::string& bytes) {
  const std::string hex = HexEncode(bytes);
  return fmt::format("{}-{}-{}-{}-{}", hex.substr(0, 8), hex.substr(8, 4), hex.substr(12, 4),
                     hex.substr(16, 4), hex.substr(20, 12));
}

Result<UuidBytes> ParseUuid(std::string_view text) {
  const auto bad = [&] {
    return InvalidArgumentError(fmt::format(
        "'{}' is not a UUID; write it as 8-4-4-4-12 hex digits, e.g. "
        "\"0f8fad5b-d9cb-469f-a165-70867728950e\"",
        text.substr(0, 64)));
  };
  if (text.size() != 36) return bad();
  std::string hex;
  for (size_t i = 0; i < text.size(); ++i) {
    const bool dash_position = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash_position != (text[i] == '-')) return bad();
    if (!dash_position) hex.push_back(text[i]);
  }
  Result<std::string> bytes = HexDecode(hex);
  if (!bytes.ok()) return bad();
  UuidBytes out{};
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>((*bytes)[i]);
  return out;
}

std::string_view JsonKind(const json& value) {
  if (value.is_boolean()) return "a boolean";
  if (value.is_number_float()) return "a non-integer number";
  if (value.is_number()) return "an integer";
  if (value.is_string()) return "a string";
  if (value.is_array()) return "an array";
  if (value.is_object()) return "an object";
  return "null";
}

// Reads an integer in [min, max]; `what` names the header for the message.
Result<int64_t> ReadInteger(const json& value, int64_t min, int64_t max, std::string_view type,
                            const std::string& what) {
  if (!value.is_number_integer()) {
    return InvalidArgumentError(fmt::format("{}: a {} value must be a JSON integer, not {}", what,
                                            type, JsonKind(value)));
  }
  bool in_range = false;
  int64_t result = 0;
  if (value.is_number_unsigned()) {
    const uint64_t u = value.get<uint64_t>();
    in_range = u <= static_cast<uint64_t>(max);
    result = static_cast<int64_t>(u);
  } else {
    result = value.get<int64_t>();
    in_range = result >= min && result <= max;
  }
  if (!in_range) {
    return InvalidArgumentError(fmt::format("{}: {} is out of range for a {} (allowed {} to {})",
                                            what, value.dump(), type, min, max));
  }
  return result;
}

Result<HeaderValue> ReadValue(std::string_view type, const json& value, const std::string& what) {
  if (type == "bool") {
    if (!value.is_boolean()) {
      return InvalidArgumentError(
          fmt::format("{}: a bool value must be true or false, not {}", what, JsonKind(value)));
    }
    return HeaderValue::Bool(value.get<bool>());
  }
  if (type == "byte") {
    QUARRY_ASSIGN_OR_RETURN(int64_t v, ReadInteger(value, INT8_MIN, INT8_MAX, type, what));
    return HeaderValue::Byte(static_cast<int8_t>(v));
  }
  if (type == "short") {
    QUARRY_ASSIGN_OR_RETURN(int64_t v, ReadInteger(value, INT16_MIN, INT16_MAX, type, what));
    return HeaderValue::Short(static_cast<int16_t>(v));
  }
  if (type == "int") {
    QUARRY_ASSIGN_OR_RETURN(int64_t v, ReadInteger(value, INT32_MIN, INT32_MAX, type, what));
    return HeaderValue::Int(static_cast<int32_t>(v));
  }
  if (type == "long" || type == "timestamp") {
    QUARRY_ASSIGN_OR_RETURN(int64_t v, ReadInteger(value, INT64_MIN, INT64_MAX, type, what));
    return type == "long" ? HeaderValue::Long(v) : HeaderValue::Timestamp(v);
  }
  if (type == "bytes" || type == "string" || type == "uuid") {
    if (!value.is_string()) {
      return InvalidArgumentError(
          fmt::format("{}: a {} value must be a JSON string, not {}", what, type, JsonKind(value)));
    }
    const std::string& text = value.get_ref<const std::string&>();
    if (type == "string") return HeaderValue::String(text);
    if (type == "uuid") {
      Result<UuidBytes> uuid = ParseUuid(text);
      if (!uuid.ok()) return uuid.status().WithContext(what);
      return HeaderValue::Uuid(*uuid);
    }
    Result<std::string> bytes = Base64Decode(text);
    if (!bytes.ok()) {
      return InvalidArgumentError(fmt::format(
          "{}: a bytes value must be standard base64 with padding: {}", what,
          bytes.status().message()));
    }
    return HeaderValue::Bytes(std::move(bytes).value());
  }
  return InvalidArgumentError(fmt::format(
      "{}: unknown type \"{}\"; use one of bool, byte, short, int, long, bytes, string, "
      "timestamp, uuid",
      what, type.substr(0, 64)));
}

}  // namespace

Result<std::string> MessageToJsonLine(const Message& message) {
  json headers = json::array();
  for (size_t i = 0; i < message.headers.size(); ++i) {
    const Header& header = message.headers[i];
    if (const std::optional<size_t> bad = FirstInvalidUtf8(header.name); bad.has_value()) {
      return InvalidArgumentError(fmt::format(
          "header #{}: its name is not valid UTF-8 (byte {}), so it cannot be written as JSON",
          i, *bad));
    }
    json value;
    const HeaderValue& v = header.value;
    switch (v.type()) {
      case HeaderType::kBoolTrue:
      case HeaderType::kBoolFalse:
        value = v.bool_value();
        break;
      case HeaderType::kByte:
      case HeaderType::kShort:
      case HeaderType::kInt:
      case HeaderType::kLong:
      case HeaderType::kTimestamp:
        value = v.integer_value();
        break;
      case HeaderType::kBytes:
        value = Base64Encode(v.bytes_value());
        break;
      case HeaderType::kString:
        if (const std::optional<size_t> bad = FirstInvalidUtf8(v.bytes_value()); bad.has_value()) {
          return InvalidArgumentError(fmt::format(
              "header '{}': its string value is not valid UTF-8 (byte {}), so it cannot be "
              "written as JSON; the sender should have used the bytes type",
              header.name, *bad));
        }
        value = v.bytes_value();
        break;
      case HeaderType::kUuid:
        value = FormatUuid(v.bytes_value());
        break;
    }
    headers.push_back(json{{"name", header.name},
                           {"type", std::string(HeaderTypeName(v.type()))},
                           {"value", std::move(value)}});
  }
  const json line{{"headers", std::move(headers)},
                  {"payload_base64", Base64Encode(message.payload)}};
  return line.dump();
}

Result<Message> MessageFromJsonLine(std::string_view line) {
  const json parsed = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return InvalidArgumentError(
        "not valid JSON; each line must be one object like "
        "{\"headers\":[{\"name\":\"n\",\"type\":\"string\",\"value\":\"v\"}],"
        "\"payload_base64\":\"\"}");
  }
  if (!parsed.is_object()) {
    return InvalidArgumentError(
        fmt::format("expected a JSON object with \"headers\" and \"payload_base64\", got {}",
                    JsonKind(parsed)));
  }
  for (const auto& [key, unused] : parsed.items()) {
    if (key != "headers" && key != "payload_base64") {
      return InvalidArgumentError(fmt::format(
          "unexpected field \"{}\"; a message has only \"headers\" and \"payload_base64\"",
          key.substr(0, 64)));
    }
  }
  const auto headers_it = parsed.find("headers");
  if (headers_it == parsed.end() || !headers_it->is_array()) {
    return InvalidArgumentError(
        "missing \"headers\" array (write \"headers\":[] for a message without headers)");
  }
  const auto payload_it = parsed.find("payload_base64");
  if (payload_it == parsed.end() || !payload_it->is_string()) {
    return InvalidArgumentError(
        "missing \"payload_base64\" string (write \"payload_base64\":\"\" for an empty payload)");
  }
  Message message;
  Result<std::string> payload = Base64Decode(payload_it->get_ref<const std::string&>());
  if (!payload.ok()) {
    return InvalidArgumentError(fmt::format(
        "\"payload_base64\" is not standard base64 with padding: {}", payload.status().message()));
  }
  message.payload = std::move(payload).value();

  for (size_t i = 0; i < headers_it->size(); ++i) {
    const json& header = (*headers_it)[i];
    std::string what = fmt::format("header #{}", i);
    if (!header.is_object()) {
      return InvalidArgumentError(fmt::format(
          "{}: expected an object with \"name\", \"type\" and \"value\", got {}", what,
          JsonKind(header)));
    }
    for (const auto& [key, unused] : header.items()) {
      if (key != "name" && key != "type" && key != "value") {
        return InvalidArgumentError(fmt::format(
            "{}: unexpected field \"{}\"; a header has only \"name\", \"type\" and \"value\"",
            what, key.substr(0, 64)));
      }
    }
    const auto name_it = header.find("name");
    const auto type_it = header.find("type");
    const auto value_it = header.find("value");
    if (name_it == header.end() || !name_it->is_string()) {
      return InvalidArgumentError(fmt::format("{}: missing \"name\" string", what));
    }
    const std::string& name = name_it->get_ref<const std::string&>();
    what = fmt::format("header #{} '{}'", i, name.substr(0, 64));
    if (type_it == header.end() || !type_it->is_string()) {
      return InvalidArgumentError(fmt::format(
          "{}: missing \"type\" string (bool, byte, short, int, long, bytes, string, timestamp "
          "or uuid)",
          what));
    }
    if (value_it == header.end()) {
      return InvalidArgumentError(fmt::format("{}: missing \"value\"", what));
    }
    QUARRY_ASSIGN_OR_RETURN(HeaderValue value,
                            ReadValue(type_it->get_ref<const std::string&>(), *value_it, what));
    message.headers.push_back(Header{name, std::move(value)});
  }
  return message;
}

}  // namespace quarry::aws
