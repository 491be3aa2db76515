#pragma once
// File: aws/eventstream_json.h
//
// A JSON-lines form of event-stream messages (see aws/eventstream.h), for the
// `quarry aws eventstream` debugging tool, test fixtures and the emulator's
// scripted responses. One message is one JSON object on one line:
//
//   {"headers":[{"name":":event-type","type":"string","value":"chunk"},
//               {"name":"n","type":"int","value":-7},
//               {"name":"id","type":"uuid","value":"0f8fad5b-d9cb-469f-a165-70867728950e"}],
//    "payload_base64":"eyJieXRlcyI6IiJ9"}
//
// Value forms by type: "bool" -> true/false; "byte", "short", "int", "long"
// -> JSON integers within the type's range; "timestamp" -> integer
// milliseconds since the Unix epoch; "bytes" -> standard base64 with padding;
// "string" -> the string; "uuid" -> 8-4-4-4-12 hex (written lower-case,
// read in either case). Headers keep their order.
//
// Thread safety: pure functions.

#include <string>
#include <string_view>

#include "aws/eventstream.h"
#include "common/status.h"

namespace quarry::aws {

// The JSON line for `message`, without a trailing newline. Fails with
// InvalidArgument when a header name or string value is not valid UTF-8
// (JSON can only carry UTF-8 text; such a header can only be shown as bytes).
Result<std::string> MessageToJsonLine(const Message& message);

// Parses one JSON line. Fails with InvalidArgument naming the problem: not
// JSON or not an object, a missing or unexpected field, an unknown type name,
// a value of the wrong JSON kind or out of range for byte/short/int/long, bad
// base64, a malformed UUID. The header and payload size limits are the
// encoder's to check (AppendEncodedMessage).
Result<Message> MessageFromJsonLine(std::string_view line);

}  // namespace quarry::aws
