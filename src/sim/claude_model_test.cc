#include "sim/claude_model.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

namespace quarry::sim {
namespace {

using json = nlohmann::json;

ClaudeModelSpec Spec() {
  ClaudeModelSpec spec;
  spec.model_id = "anthropic.claude-3-5-sonnet-20240620-v1:0";
  spec.max_output_tokens = 8192;
  return spec;
}

json MinimalBody() {
  return json{{"anthropic_version", "bedrock-2023-05-31"},
              {"max_tokens", 256},
              {"messages", json::array({{{"role", "user"}, {"content", "Hello there"}}})}};
}

// The message of the InvalidArgument error from parsing `body`.
std::string AnthropicError(const json& body) {
  Result<ClaudeRequest> result = ParseAnthropicRequest(body.dump(), Spec());
  EXPECT_FALSE(result.ok()) << body.dump();
  if (result.ok()) return "";
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  return std::string(result.status().message());
}

std::string ConverseError(const json& body) {
  Result<ClaudeRequest> result = ParseConverseRequest(body.dump(), Spec());
  EXPECT_FALSE(result.ok()) << body.dump();
  if (result.ok()) return "";
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  return std::string(result.status().message());
}

ClaudeRequest ParseOk(const json& body) {
  Result<ClaudeRequest> result = ParseAnthropicRequest(body.dump(), Spec());
  EXPECT_TRUE(result.ok()) << result.status().message();
  return result.ok() ? result.value() : ClaudeRequest{};
}

json ConverseMinimal() {
  return json{{"messages", json::array({{{"role", "user"}, {"content", json::array({{{"text", "Hi"}}})}}})}};
}

// --- A small JSON-schema checker for tool inputs -----------------------------

bool Conforms(const json& value, const json& schema, std::string* why, const std::string& path = "$") {
  auto fail = [&](const std::string& msg) {
    *why = path + ": " + msg;
    return false;
  };
  if (schema.contains("enum")) {
    bool found = false;
    for (const json& e : schema["enum"]) found = found || e == value;
    if (!found) return fail("not in enum");
  }
  std::string type = schema.value("type", "");
  if (type == "object") {
    if (!value.is_object()) return fail("not an object");
    for (const json& req : schema.value("required", json::array())) {
      if (!value.contains(req.get<std::string>())) return fail("missing required " + req.get<std::string>());
    }
    if (schema.contains("properties")) {
      for (const auto& [key, sub] : value.items()) {
        if (!schema["properties"].contains(key)) return fail("unexpected property " + key);
        if (!Conforms(sub, schema["properties"][key], why, path + "." + key)) return false;
      }
    }
  } else if (type == "array") {
    if (!value.is_array()) return fail("not an array");
    if (schema.contains("minItems") && value.size() < schema["minItems"].get<size_t>()) return fail("too few items");
    if (schema.contains("maxItems") && value.size() > schema["maxItems"].get<size_t>()) return fail("too many items");
    for (size_t i = 0; i < value.size(); ++i) {
      if (schema.contains("items") && !Conforms(value[i], schema["items"], why, path + "[" + std::to_string(i) + "]")) {
        return false;
      }
    }
  } else if (type == "string") {
    if (!value.is_string()) return fail("not a string");
    size_t n = value.get<std::string>().size();
    if (schema.contains("minLength") && n < schema["minLength"].get<size_t>()) return fail("too short");
    if (schema.contains("maxLength") && n > schema["maxLength"].get<size_t>()) return fail("too long");
    std::string format = schema.value("format", "");
    if (format == "date" && (n != 10 || value.get<std::string>()[4] != '-')) return fail("bad date");
    if (format == "date-time" && (n < 20 || value.get<std::string>()[10] != 'T')) return fail("bad date-time");
  } else if (type == "integer" || type == "number") {
    if (!value.is_number()) return fail("not a number");
    if (type == "integer" && !value.is_number_integer()) return fail("not an integer");
    double d = value.get<double>();
    if (schema.contains("minimum") && d < schema["minimum"].get<double>()) return fail("below minimum");
    if (schema.contains("maximum") && d > schema["maximum"].get<double>()) return fail("above maximum");
  } else if (type == "boolean") {
    if (!value.is_boolean()) return fail("not a boolean");
  }
  return true;
}

json TriageSchema() {
  return json::parse(R"({
    "type": "object",
    "properties": {
      "category": {"type": "string", "enum": ["Network", "Hardware", "Software", "Access", "Billing", "Other"]},
      "priority": {"type": "string", "enum": ["Low", "Medium", "High", "Critical"]},
      "confidence": {"type": "number", "minimum": 0, "maximum": 1},
      "summary": {"type": "string", "maxLength": 80}
    },
    "required": ["category", "priority", "confidence"]
  })");
}

// Classifies a ticket with a forced classify_ticket call; returns the input.
json Triage(const std::string& ticket) {
  json body = MinimalBody();
  body["messages"][0]["content"] = "Classify this support ticket: " + ticket;
  body["tools"] = json::array(
      {{{"name", "classify_ticket"}, {"description", "Classify a ticket"}, {"input_schema", TriageSchema()}}});
  body["tool_choice"] = {{"type", "tool"}, {"name", "classify_ticket"}};
  ClaudeReply reply = GenerateReply(ParseOk(body), {}, Spec());
  EXPECT_EQ(reply.stop_reason, "tool_use");
  EXPECT_EQ(reply.content.size(), 1u);
  if (reply.content.empty()) return json();
  std::string why;
  EXPECT_TRUE(Conforms(reply.content[0]["input"], TriageSchema(), &why)) << why;
  return reply.content[0]["input"];
}

std::string Text(const ClaudeReply& reply) {
  std::string out;
  for (const json& block : reply.content) {
    if (block["type"] == "text") out += block["text"].get<std::string>();
  }
  return out;
}

// --- InvokeModel (Anthropic body) validation ----------------------------------

TEST(AnthropicRequestTest, AcceptsMinimalBodyWithStringContent) {
  ClaudeRequest request = ParseOk(MinimalBody());
  ASSERT_EQ(request.messages.size(), 1u);
  EXPECT_EQ(request.messages[0].first, "user");
  EXPECT_EQ(request.messages[0].second, json::parse(R"([{"type":"text","text":"Hello there"}])"));
  EXPECT_EQ(request.max_tokens, 256);
}

TEST(AnthropicRequestTest, AcceptsFullBodyWithSystemBlocksToolsAndChoice) {
  json body = MinimalBody();
  body["system"] = json::array({{{"type", "text"}, {"text", "Be brief."}}, {{"type", "text"}, {"text", "Be kind."}}});
  body["temperature"] = 0.5;
  body["top_p"] = 0.9;
  body["top_k"] = 250;
  body["stop_sequences"] = {"END"};
  body["anthropic_beta"] = {"token-efficient-tools-2025-02-19"};
  body["tools"] = json::array({{{"name", "get_weather"},
                                {"description", "Weather"},
                                {"input_schema", {{"type", "object"}, {"properties", json::object()}}}}});
  body["tool_choice"] = {{"type", "tool"}, {"name", "get_weather"}};
  ClaudeRequest request = ParseOk(body);
  EXPECT_EQ(request.system, "Be brief.\nBe kind.");
  EXPECT_EQ(request.stop_sequences, std::vector<std::string>{"END"});
  ASSERT_EQ(request.tools.size(), 1u);
  EXPECT_EQ(request.tools[0].name, "get_weather");
  EXPECT_EQ(request.tool_choice, "tool");
  EXPECT_EQ(request.tool_choice_name, "get_weather");
}

TEST(AnthropicRequestTest, RejectsMalformedJson) {
  Result<ClaudeRequest> result = ParseAnthropicRequest("{\"anthropic_version\":", Spec());
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("Malformed input request"), std::string::npos);
}

TEST(AnthropicRequestTest, RejectsBodyThatIsNotAnObject) {
  EXPECT_EQ(AnthropicError(json::array()),
            "Malformed input request: #: expected type: JSONObject, found: JSONArray, please reformat your input and "
            "try again.");
}

TEST(AnthropicRequestTest, RejectsMissingMaxTokensWithBedrockWording) {
  json body = MinimalBody();
  body.erase("max_tokens");
  EXPECT_EQ(AnthropicError(body),
            "Malformed input request: #: required key [max_tokens] not found, please reformat your input and try "
            "again.");
}

TEST(AnthropicRequestTest, RejectsMissingAnthropicVersion) {
  json body = MinimalBody();
  body.erase("anthropic_version");
  EXPECT_EQ(AnthropicError(body),
            "Malformed input request: #: required key [anthropic_version] not found, please reformat your input and "
            "try again.");
}

TEST(AnthropicRequestTest, RejectsWrongAnthropicVersion) {
  json body = MinimalBody();
  body["anthropic_version"] = "2023-06-01";
  EXPECT_NE(AnthropicError(body).find("anthropic_version must be \"bedrock-2023-05-31\""), std::string::npos);
}

TEST(AnthropicRequestTest, RejectsNonIntegerMaxTokens) {
  json body = MinimalBody();
  body["max_tokens"] = "100";
  EXPECT_NE(AnthropicError(body).find("#/max_tokens: expected type: Integer, found: String"), std::string::npos);
}

TEST(AnthropicRequestTest, RejectsZeroMaxTokens) {
  json body = MinimalBody();
  body["max_tokens"] = 0;
  EXPECT_NE(AnthropicError(body).find("#/max_tokens: 0 is not greater or equal to 1"), std::string::npos);
}

TEST(AnthropicRequestTest, RejectsMaxTokensAboveTheModelLimit) {
  json body = MinimalBody();
  body["max_tokens"] = 8193;
  EXPECT_NE(AnthropicError(body).find("8193 is not less or equal to 8192"), std::string::npos);
}

TEST(AnthropicRequestTest, RejectsMissingMessages) {
  json body = MinimalBody();
  body.erase("messages");
  EXPECT_NE(AnthropicError(body).find("#: required key [messages] not found"), std::string::npos);
}

TEST(AnthropicRequestTest, RejectsEmptyMessages) {
  json body = MinimalBody();
  body["messages"] = json::array();
  EXPECT_NE(AnthropicError(body).find("#/messages: expected minimum item count: 1, found: 0"), std::string::npos);
}

TEST(AnthropicRequestTest, RejectsUnknownRole) {
  json body = MinimalBody();
  body["messages"][0]["role"] = "system";
  EXPECT_NE(AnthropicError(body).find("#/messages/0/role: \"system\" is not a valid enum value"), std::string::npos);
}

TEST(AnthropicRequestTest, RejectsFirstMessageFromAssistant) {
  json body = MinimalBody();
  body["messages"] = json::array({{{"role", "assistant"}, {"content", "Hi"}}, {{"role", "user"}, {"content", "Yo"}}});
  EXPECT_NE(AnthropicError(body).find("messages: first message must use the \"user\" role"), std::string::npos);
}

TEST(AnthropicRequestTest, RejectsRolesThatDoNotAlternate) {
  json body = MinimalBody();
  body["messages"].push_back({{"role", "user"}, {"content", "again"}});
  EXPECT_EQ(AnthropicError(body),
            "messages: roles must alternate between \"user\" and \"assistant\", but found multiple \"user\" roles in a "
            "row");
}

TEST(AnthropicRequestTest, RejectsEmptyContent) {
  json body = MinimalBody();
  body["messages"][0]["content"] = json::array();
  EXPECT_NE(AnthropicError(body).find("messages.0: all messages must have non-empty content"), std::string::npos);
}

TEST(AnthropicRequestTest, RejectsEmptyTextBlock) {
  json body = MinimalBody();
  body["messages"][0]["content"] = "";
  EXPECT_EQ(AnthropicError(body), "messages: text content blocks must be non-empty");
}

TEST(AnthropicRequestTest, RejectsUnknownContentBlockType) {
  json body = MinimalBody();
  body["messages"][0]["content"] = json::array({{{"type", "video"}, {"url", "x"}}});
  EXPECT_NE(AnthropicError(body).find("#/messages/0/content/0/type: \"video\" is not a valid enum value"),
            std::string::npos);
}

TEST(AnthropicRequestTest, RejectsImageWithUnsupportedMediaType) {
  json body = MinimalBody();
  body["messages"][0]["content"] = json::array(
      {{{"type", "image"}, {"source", {{"type", "base64"}, {"media_type", "image/bmp"}, {"data", "AAAA"}}}}});
  EXPECT_NE(AnthropicError(body).find("#/messages/0/content/0/source/media_type"), std::string::npos);
}

TEST(AnthropicRequestTest, RejectsToolUseInAUserMessage) {
  json body = MinimalBody();
  body["messages"][0]["content"] =
      json::array({{{"type", "tool_use"}, {"id", "toolu_1"}, {"name", "x"}, {"input", json::object()}}});
  EXPECT_NE(AnthropicError(body).find("tool_use blocks may only appear in \"assistant\" messages"), std::string::npos);
}

TEST(AnthropicRequestTest, RejectsToolResultThatAnswersNoToolUse) {
  json body = MinimalBody();
  body["messages"].push_back({{"role", "assistant"}, {"content", "Sure"}});
  body["messages"].push_back(
      {{"role", "user"}, {"content", json::array({{{"type", "tool_result"}, {"tool_use_id", "toolu_9"}}})}});
  EXPECT_NE(AnthropicError(body).find("messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: "
                                      "toolu_9"),
            std::string::npos);
}

TEST(AnthropicRequestTest, RejectsToolUseWithoutResultInTheNextMessage) {
  json body = MinimalBody();
  body["messages"].push_back(
      {{"role", "assistant"},
       {"content", json::array({{{"type", "tool_use"}, {"id", "toolu_1"}, {"name", "x"}, {"input", json::object()}}})}});
  body["messages"].push_back({{"role", "user"}, {"content", "and?"}});
  EXPECT_NE(AnthropicError(body).find("`tool_use` ids were found without `tool_result` blocks immediately after: "
                                      "toolu_1"),
            std::string::npos);
}

TEST(AnthropicRequestTest, RejectsSystemOfWrongType) {
  json body = MinimalBody();
  body["system"] = 5;
  EXPECT_NE(AnthropicError(body).find("#/system: expected type: String, found: Integer"), std::string::npos);
}

TEST(AnthropicRequestTest, RejectsTemperatureAboveOne) {
  json body = MinimalBody();
  body["temperature"] = 1.5;
  EXPECT_NE(AnthropicError(body).find("#/temperature: 1.5 is not less or equal to 1"), std::string::npos);
}

TEST(AnthropicRequestTest, RejectsTopPBelowZero) {
  json body = MinimalBody();
  body["top_p"] = -0.1;
  EXPECT_NE(AnthropicError(body).find("#/top_p: -0.1 is not greater or equal to 0"), std::string::npos);
}

TEST(AnthropicRequestTest, RejectsNegativeTopK) {
  json body = MinimalBody();
  body["top_k"] = -1;
  EXPECT_NE(AnthropicError(body).find("#/top_k: -1 is not greater or equal to 0"), std::string::npos);
}

TEST(AnthropicRequestTest, RejectsNonStringStopSequence) {
  json body = MinimalBody();
  body["stop_sequences"] = {"ok", 3};
  EXPECT_NE(AnthropicError(body).find("#/stop_sequences/1: expected type: String, found: Integer"), std::string::npos);
}

TEST(AnthropicRequestTest, RejectsToolNameOutsideThePattern) {
  json body = MinimalBody();
  body["tools"] = json::array({{{"name", "get weather"}, {"input_schema", {{"type", "object"}}}}});
  EXPECT_NE(AnthropicError(body).find("#/tools/0/name: string [get weather] does not match pattern"), std::string::npos);
}

TEST(AnthropicRequestTest, RejectsToolWithoutInputSchema) {
  json body = MinimalBody();
  body["tools"] = json::array({{{"name", "get_weather"}}});
  EXPECT_NE(AnthropicError(body).find("#/tools/0: required key [input_schema] not found"), std::string::npos);
}

TEST(AnthropicRequestTest, RejectsForcedToolThatIsNotOffered) {
  json body = MinimalBody();
  body["tools"] = json::array({{{"name", "get_weather"}, {"input_schema", {{"type", "object"}}}}});
  body["tool_choice"] = {{"type", "tool"}, {"name", "get_time"}};
  EXPECT_NE(AnthropicError(body).find("tool_choice: tool \"get_time\" is not one of the tools"), std::string::npos);
}

TEST(AnthropicRequestTest, RejectsToolChoiceWithoutTools) {
  json body = MinimalBody();
  body["tool_choice"] = {{"type", "any"}};
  EXPECT_NE(AnthropicError(body).find("tool_choice may only be specified while providing tools"), std::string::npos);
}

TEST(AnthropicRequestTest, RejectsUnknownToolChoiceType) {
  json body = MinimalBody();
  body["tools"] = json::array({{{"name", "t"}, {"input_schema", {{"type", "object"}}}}});
  body["tool_choice"] = {{"type", "required"}};
  EXPECT_NE(AnthropicError(body).find("#/tool_choice/type: \"required\" is not a valid enum value"), std::string::npos);
}

TEST(AnthropicRequestTest, RejectsStreamKeyWithBedrockWording) {
  json body = MinimalBody();
  body["stream"] = true;
  EXPECT_EQ(AnthropicError(body),
            "Malformed input request: #: extraneous key [stream] is not permitted, please reformat your input and try "
            "again.");
}

TEST(AnthropicRequestTest, RejectsModelKey) {
  json body = MinimalBody();
  body["model"] = "claude-3-5-sonnet";
  EXPECT_NE(AnthropicError(body).find("#: extraneous key [model] is not permitted"), std::string::npos);
}

TEST(AnthropicRequestTest, ReportsSeveralSchemaViolationsTogether) {
  json body = MinimalBody();
  body.erase("max_tokens");
  body["prompt"] = "Human: hi";
  EXPECT_EQ(AnthropicError(body),
            "Malformed input request: #: required key [max_tokens] not found#: extraneous key [prompt] is not "
            "permitted, please reformat your input and try again.");
}

// --- Converse validation ------------------------------------------------------

TEST(ConverseRequestTest, ConvertsBlocksToAnthropicForm) {
  json body = json::parse(R"({
    "messages": [
      {"role": "user", "content": [{"text": "Weather?"}, {"image": {"format": "png", "source": {"bytes": "iVBO"}}}]},
      {"role": "assistant", "content": [{"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}}]},
      {"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_1", "content": [{"json": {"temp": 21}}], "status": "success"}}]}
    ],
    "system": [{"text": "Be brief."}],
    "inferenceConfig": {"maxTokens": 500, "temperature": 0.2, "topP": 0.9, "stopSequences": ["STOP"]},
    "toolConfig": {"tools": [{"toolSpec": {"name": "get_weather", "description": "Weather", "inputSchema": {"json": {"type": "object"}}}}],
                   "toolChoice": {"any": {}}},
    "additionalModelRequestFields": {"top_k": 200}
  })");
  Result<ClaudeRequest> result = ParseConverseRequest(body.dump(), Spec());
  ASSERT_TRUE(result.ok()) << result.status().message();
  const ClaudeRequest& request = result.value();
  EXPECT_EQ(request.system, "Be brief.");
  EXPECT_EQ(request.max_tokens, 500);
  EXPECT_EQ(request.stop_sequences, std::vector<std::string>{"STOP"});
  EXPECT_EQ(request.tool_choice, "any");
  ASSERT_EQ(request.messages.size(), 3u);
  EXPECT_EQ(request.messages[0].second[1]["source"]["media_type"], "image/png");
  EXPECT_EQ(request.messages[1].second[0],
            json::parse(R"({"type":"tool_use","id":"tooluse_1","name":"get_weather","input":{"city":"Paris"}})"));
  EXPECT_EQ(request.messages[2].second[0]["type"], "tool_result");
  EXPECT_EQ(request.messages[2].second[0]["content"][0]["text"], "{\"temp\":21}");
}

TEST(ConverseRequestTest, DefaultsMaxTokensToTheModelLimit) {
  Result<ClaudeRequest> result = ParseConverseRequest(ConverseMinimal().dump(), Spec());
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.value().max_tokens, 8192);
}

TEST(ConverseRequestTest, RejectsConversationStartingWithAssistant) {
  json body = ConverseMinimal();
  body["messages"][0]["role"] = "assistant";
  EXPECT_EQ(ConverseError(body),
            "A conversation must start with a user message. Try again with a conversation that starts with a user "
            "message.");
}

TEST(ConverseRequestTest, RejectsMissingMessages) {
  EXPECT_NE(ConverseError(json::object()).find("A conversation must start with a user message."), std::string::npos);
}

TEST(ConverseRequestTest, RejectsRolesThatDoNotAlternate) {
  json body = ConverseMinimal();
  body["messages"].push_back(body["messages"][0]);
  EXPECT_EQ(ConverseError(body),
            "A conversation must alternate between user and assistant roles. Make sure the conversation alternates "
            "between user and assistant roles and try again.");
}

TEST(ConverseRequestTest, RejectsContentBlockWithTwoMembers) {
  json body = ConverseMinimal();
  body["messages"][0]["content"][0]["image"] = {{"format", "png"}, {"source", {{"bytes", "AA"}}}};
  EXPECT_NE(ConverseError(body).find("must set exactly one member"), std::string::npos);
}

TEST(ConverseRequestTest, RejectsBlankText) {
  json body = ConverseMinimal();
  body["messages"][0]["content"][0]["text"] = "";
  EXPECT_NE(ConverseError(body).find("is blank"), std::string::npos);
}

TEST(ConverseRequestTest, RejectsMaxTokensAboveTheModelLimit) {
  json body = ConverseMinimal();
  body["inferenceConfig"] = {{"maxTokens", 10000}};
  EXPECT_EQ(ConverseError(body),
            "The maximum tokens you requested exceeds the model limit of 8192. Try again with a maximum tokens value "
            "that is lower than 8192.");
}

TEST(ConverseRequestTest, RejectsTemperatureAboveOne) {
  json body = ConverseMinimal();
  body["inferenceConfig"] = {{"temperature", 2}};
  EXPECT_EQ(ConverseError(body),
            "1 validation error detected: Value '2' at 'inferenceConfig.temperature' failed to satisfy constraint: "
            "Member must have value less than or equal to 1");
}

TEST(ConverseRequestTest, RejectsToolNameOutsideThePattern) {
  json body = ConverseMinimal();
  body["toolConfig"] = {
      {"tools", json::array({{{"toolSpec", {{"name", "bad name"}, {"inputSchema", {{"json", json::object()}}}}}}})}};
  EXPECT_NE(ConverseError(body).find("Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+"),
            std::string::npos);
}

TEST(ConverseRequestTest, RejectsForcedToolThatIsNotConfigured) {
  json body = ConverseMinimal();
  body["toolConfig"] = {
      {"tools", json::array({{{"toolSpec", {{"name", "a"}, {"inputSchema", {{"json", json::object()}}}}}}})},
      {"toolChoice", {{"tool", {{"name", "b"}}}}}};
  EXPECT_NE(ConverseError(body).find("\"b\" named in toolConfig.toolChoice is not in toolConfig.tools"),
            std::string::npos);
}

TEST(ConverseRequestTest, RejectsModelIdInTheBody) {
  json body = ConverseMinimal();
  body["modelId"] = "anthropic.claude";
  EXPECT_NE(ConverseError(body).find("Unknown field \"modelId\""), std::string::npos);
}

TEST(ConverseRequestTest, RejectsMoreToolResultsThanToolUses) {
  json body = json::parse(R"({"messages": [
      {"role": "user", "content": [{"text": "hi"}]},
      {"role": "assistant", "content": [{"text": "ok"}]},
      {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "x"}]}}]}],
    "toolConfig": {"tools": [{"toolSpec": {"name": "a", "inputSchema": {"json": {}}}}]}})");
  EXPECT_EQ(ConverseError(body),
            "The number of toolResult blocks at messages.2.content exceeds the number of toolUse blocks of previous "
            "turn.");
}

TEST(ConverseRequestTest, RejectsToolUseWithoutToolResult) {
  json body = json::parse(R"({"messages": [
      {"role": "user", "content": [{"text": "hi"}]},
      {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "a", "input": {}}}]},
      {"role": "user", "content": [{"text": "well?"}]}],
    "toolConfig": {"tools": [{"toolSpec": {"name": "a", "inputSchema": {"json": {}}}}]}})");
  EXPECT_EQ(ConverseError(body), "Expected toolResult blocks at messages.2.content for the following Ids: t1");
}

TEST(ConverseRequestTest, RejectsToolBlocksWithoutToolConfig) {
  json body = json::parse(R"({"messages": [
      {"role": "user", "content": [{"text": "hi"}]},
      {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "a", "input": {}}}]},
      {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "x"}]}}]}]})");
  EXPECT_NE(ConverseError(body).find("The toolConfig field must be defined"), std::string::npos);
}

// Replaces every member and element of a valid body, in turn, with values of
// each JSON type: parsing must return a Status (never throw or crash), and a
// body that parses must also get a reply.
void SwapEveryValue(const json& valid, Result<ClaudeRequest> (*parse)(std::string_view, const ClaudeModelSpec&)) {
  std::vector<json::json_pointer> pointers;
  std::function<void(const json&, const json::json_pointer&)> walk = [&](const json& node,
                                                                         const json::json_pointer& at) {
    if (!at.empty()) pointers.push_back(at);
    if (node.is_object()) {
      for (const auto& [key, child] : node.items()) walk(child, at / key);
    } else if (node.is_array()) {
      for (size_t i = 0; i < node.size(); ++i) walk(node[i], at / i);
    }
  };
  walk(valid, json::json_pointer());
  ASSERT_GT(pointers.size(), 20u);
  const std::vector<json> replacements = {nullptr, -1, 2.5, "s", "", true, json::array(), json::object(),
                                          json::array({1}), json{{"type", "text"}}};
  for (const json::json_pointer& pointer : pointers) {
    for (const json& replacement : replacements) {
      json body = valid;
      body[pointer] = replacement;
      Result<ClaudeRequest> result = parse(body.dump(), Spec());
      if (result.ok()) {
        ClaudeReply reply = GenerateReply(result.value(), {}, Spec());
        EXPECT_FALSE(reply.stop_reason.empty());
      } else {
        EXPECT_FALSE(result.status().message().empty());
      }
    }
  }
}

TEST(RobustnessTest, AnthropicBodyWithAnyValueSwappedNeverThrows) {
  json body = json::parse(R"({
    "anthropic_version": "bedrock-2023-05-31", "max_tokens": 100, "system": [{"type": "text", "text": "S"}],
    "temperature": 0.1, "top_p": 0.5, "top_k": 5, "stop_sequences": ["X"],
    "tools": [{"name": "t", "description": "d", "input_schema": {"type": "object",
               "properties": {"p": {"type": "string", "enum": ["a", "b"]}, "n": {"type": "integer", "minimum": 1}},
               "required": ["p"]}}],
    "tool_choice": {"type": "tool", "name": "t"},
    "messages": [
      {"role": "user", "content": [{"type": "text", "text": "hi"},
                                   {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}]},
      {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "t", "input": {"p": "a"}}]},
      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                    "content": [{"type": "text", "text": "ok"}], "is_error": false}]}]})");
  ASSERT_TRUE(ParseAnthropicRequest(body.dump(), Spec()).ok());
  SwapEveryValue(body, &ParseAnthropicRequest);
}

TEST(RobustnessTest, ConverseBodyWithAnyValueSwappedNeverThrows) {
  json body = json::parse(R"({
    "system": [{"text": "S"}],
    "inferenceConfig": {"maxTokens": 100, "temperature": 0.1, "topP": 0.5, "stopSequences": ["X"]},
    "toolConfig": {"tools": [{"toolSpec": {"name": "t", "description": "d", "inputSchema": {"json": {"type": "object",
                   "properties": {"p": {"type": "string", "enum": ["a", "b"]}}}}}}], "toolChoice": {"tool": {"name": "t"}}},
    "messages": [
      {"role": "user", "content": [{"text": "hi"}, {"image": {"format": "png", "source": {"bytes": "AA"}}}]},
      {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "t", "input": {"p": "a"}}}]},
      {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "ok"}, {"json": {"k": 1}}],
                                                   "status": "success"}}]}]})");
  ASSERT_TRUE(ParseConverseRequest(body.dump(), Spec()).ok());
  SwapEveryValue(body, &ParseConverseRequest);
}

// --- Replies ------------------------------------------------------------------

TEST(GenerateReplyTest, FirstMatchingRuleWinsCaseInsensitively) {
  json body = MinimalBody();
  body["messages"][0]["content"] = "Please RESET my Password now";
  std::vector<ReplyRule> rules = {{"refund", "no"}, {"reset my password", "Done: reset."}, {"password", "later"}};
  ClaudeReply reply = GenerateReply(ParseOk(body), rules, Spec());
  EXPECT_EQ(Text(reply), "Done: reset.");
  EXPECT_EQ(reply.stop_reason, "end_turn");
}

TEST(GenerateReplyTest, DerivedReplyIsDeterministicAndDependsOnInput) {
  json body = MinimalBody();
  body["messages"][0]["content"] = "Summarise the quarterly networking report";
  ClaudeReply a = GenerateReply(ParseOk(body), {}, Spec());
  ClaudeReply b = GenerateReply(ParseOk(body), {}, Spec());
  EXPECT_EQ(a.content, b.content);
  EXPECT_EQ(a.message_id, b.message_id);
  EXPECT_EQ(a.message_id.rfind("msg_bdrk_", 0), 0u);
  EXPECT_NE(Text(a).find("quarterly networking report"), std::string::npos);
  body["messages"][0]["content"] = "Something else entirely";
  ClaudeReply c = GenerateReply(ParseOk(body), {}, Spec());
  EXPECT_NE(c.message_id, a.message_id);
  EXPECT_NE(Text(c), Text(a));
}

TEST(GenerateReplyTest, ForcedToolInputConformsToANestedSchema) {
  json schema = json::parse(R"({
    "type": "object",
    "properties": {
      "title": {"type": "string", "minLength": 3, "maxLength": 20},
      "due": {"type": "string", "format": "date"},
      "created_at": {"type": "string", "format": "date-time"},
      "count": {"type": "integer", "minimum": 5, "maximum": 9},
      "ratio": {"type": "number", "minimum": 10},
      "urgent": {"type": "boolean"},
      "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 3},
      "owner": {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "maximum": 0}},
                "required": ["name", "age"]},
      "levels": {"type": "array", "items": {"type": "string", "enum": ["a", "b", "c"]}, "minItems": 2}
    },
    "required": ["title", "due", "count", "tags", "owner"]
  })");
  json body = MinimalBody();
  body["messages"][0]["content"] = "Create an urgent task to renew the office lease";
  body["tools"] = json::array({{{"name", "create_task"}, {"input_schema", schema}}});
  body["tool_choice"] = {{"type", "any"}};
  ClaudeReply reply = GenerateReply(ParseOk(body), {}, Spec());
  ASSERT_EQ(reply.stop_reason, "tool_use");
  ASSERT_EQ(reply.content.size(), 1u);
  const json& block = reply.content[0];
  EXPECT_EQ(block["type"], "tool_use");
  EXPECT_EQ(block["name"], "create_task");
  EXPECT_EQ(block["id"].get<std::string>().rfind("toolu_bdrk_", 0), 0u);
  std::string why;
  EXPECT_TRUE(Conforms(block["input"], schema, &why)) << why << " in " << block["input"].dump();
  EXPECT_EQ(block["input"]["urgent"], true);
  EXPECT_EQ(block["input"]["levels"].size(), 2u);
  EXPECT_NE(block["input"]["levels"][0], block["input"]["levels"][1]);
}

TEST(GenerateReplyTest, AutoToolChoiceUsesAToolOnlyWhenThePromptNamesIt) {
  json body = MinimalBody();
  body["tools"] = json::array({{{"name", "get_weather"},
                                {"input_schema", {{"type", "object"}, {"properties", {{"city", {{"type", "string"}}}}}}}}});
  body["tool_choice"] = {{"type", "auto"}};
  body["messages"][0]["content"] = "Tell me a joke";
  EXPECT_EQ(GenerateReply(ParseOk(body), {}, Spec()).stop_reason, "end_turn");
  body["messages"][0]["content"] = "Use get weather for Paris";
  EXPECT_EQ(GenerateReply(ParseOk(body), {}, Spec()).stop_reason, "tool_use");
}

TEST(GenerateReplyTest, ToolChoiceNoneNeverCallsATool) {
  json body = MinimalBody();
  body["tools"] = json::array({{{"name", "get_weather"}, {"input_schema", {{"type", "object"}}}}});
  body["tool_choice"] = {{"type", "none"}};
  body["messages"][0]["content"] = "Use get_weather for Paris";
  EXPECT_EQ(GenerateReply(ParseOk(body), {}, Spec()).stop_reason, "end_turn");
}

TEST(GenerateReplyTest, TriageGivesPlausibleCategoriesAndPriorities) {
  EXPECT_EQ(Triage("My VPN drops every ten minutes")["category"], "Network");
  EXPECT_EQ(Triage("The laptop screen is cracked after a fall")["category"], "Hardware");
  EXPECT_EQ(Triage("I am locked out and need a password reset")["category"], "Access");
  EXPECT_EQ(Triage("Our invoice was charged twice this month")["category"], "Billing");
  EXPECT_EQ(Triage("Excel crashes when I open the report")["category"], "Software");
  json outage = Triage("URGENT: email server is down for everyone, total outage");
  EXPECT_TRUE(outage["priority"] == "High" || outage["priority"] == "Critical") << outage.dump();
  EXPECT_EQ(Triage("Minor question about the font in the portal, whenever you can")["priority"], "Low");
  json vpn = Triage("My VPN drops every ten minutes");
  EXPECT_GE(vpn["confidence"].get<double>(), 0.0);
  EXPECT_LE(vpn["confidence"].get<double>(), 1.0);
}

TEST(GenerateReplyTest, TriagePrefersANeutralValueWhenNothingMatches) {
  json input = Triage("How do I change my desktop wallpaper colour?");
  EXPECT_EQ(input["category"], "Hardware");  // "desktop" is a hardware cue
  input = Triage("Where can I find the cafeteria menu?");
  EXPECT_EQ(input["category"], "Other");
  EXPECT_EQ(input["priority"], "Medium");
}

TEST(GenerateReplyTest, StringListsGetThePromptKeywords) {
  json schema = json::parse(R"({"type":"object","properties":{"tags":{"type":"array","items":{"type":"string"}}},
                                "required":["tags"]})");
  json body = MinimalBody();
  body["messages"][0]["content"] = "Printer jams on floor three";
  body["tools"] = json::array({{{"name", "tag"}, {"input_schema", schema}}});
  body["tool_choice"] = {{"type", "any"}};
  ClaudeReply reply = GenerateReply(ParseOk(body), {}, Spec());
  EXPECT_EQ(reply.content[0]["input"]["tags"], json::parse(R"(["printer","jams","floor"])"));
}

TEST(GenerateReplyTest, OddSchemaMembersNeitherThrowNorExplode) {
  json schema = json::parse(R"({"type":"object","properties":{
      "a":{"type":"string","format":5,"minLength":"x"},
      "b":{"type":"array","minItems":1000000000,"items":{"type":"integer"}},
      "c":{"$ref":"#/$defs/thing"},
      "d":{"anyOf":[{"type":"integer","minimum":3},{"type":"string"}]}},
    "$defs":{"thing":{"type":"object","properties":{"x":{"type":"boolean"}}}}})");
  json body = MinimalBody();
  body["tools"] = json::array({{{"name", "odd"}, {"input_schema", schema}}});
  body["tool_choice"] = {{"type", "any"}};
  ClaudeReply reply = GenerateReply(ParseOk(body), {}, Spec());
  const json& input = reply.content[0]["input"];
  EXPECT_TRUE(input["a"].is_string());
  EXPECT_EQ(input["b"].size(), 100u);  // minItems is capped
  EXPECT_TRUE(input["c"]["x"].is_boolean());
  EXPECT_EQ(input["d"], 3);
}

TEST(GenerateReplyTest, ToolUseThatDoesNotFitMaxTokensStopsWithMaxTokens) {
  json body = MinimalBody();
  body["max_tokens"] = 2;
  body["messages"][0]["content"] = "My VPN drops";
  body["tools"] = json::array({{{"name", "classify_ticket"}, {"input_schema", TriageSchema()}}});
  body["tool_choice"] = {{"type", "any"}};
  ClaudeReply reply = GenerateReply(ParseOk(body), {}, Spec());
  EXPECT_EQ(reply.stop_reason, "max_tokens");
  EXPECT_LE(reply.output_tokens, 2);
}

TEST(GenerateReplyTest, ToolResultIsAnsweredWithText) {
  json body = MinimalBody();
  body["tools"] = json::array({{{"name", "get_weather"}, {"input_schema", {{"type", "object"}}}}});
  body["tool_choice"] = {{"type", "any"}};
  body["messages"].push_back(
      {{"role", "assistant"},
       {"content",
        json::array({{{"type", "tool_use"}, {"id", "toolu_1"}, {"name", "get_weather"}, {"input", json::object()}}})}});
  body["messages"].push_back(
      {{"role", "user"},
       {"content", json::array({{{"type", "tool_result"}, {"tool_use_id", "toolu_1"}, {"content", "21C and sunny"}}})}});
  ClaudeReply reply = GenerateReply(ParseOk(body), {}, Spec());
  EXPECT_EQ(reply.stop_reason, "end_turn");
  EXPECT_NE(Text(reply).find("get_weather"), std::string::npos);
  EXPECT_NE(Text(reply).find("21C and sunny"), std::string::npos);
}

TEST(GenerateReplyTest, TruncatesAtMaxTokens) {
  json body = MinimalBody();
  body["max_tokens"] = 3;
  ClaudeReply reply = GenerateReply(ParseOk(body), {}, Spec());
  EXPECT_EQ(reply.stop_reason, "max_tokens");
  EXPECT_LE(reply.output_tokens, 3);
  EXPECT_LE(Text(reply).size(), 12u);
}

TEST(GenerateReplyTest, CutsAtTheEarliestStopSequence) {
  json body = MinimalBody();
  body["messages"][0]["content"] = "hello";
  body["stop_sequences"] = {"Cherry", "Banana"};
  std::vector<ReplyRule> rules = {{"hello", "Apple Banana Cherry"}};
  ClaudeReply reply = GenerateReply(ParseOk(body), rules, Spec());
  EXPECT_EQ(reply.stop_reason, "stop_sequence");
  EXPECT_EQ(Text(reply), "Apple ");
  json response = AnthropicResponseBody(reply, Spec());
  EXPECT_EQ(response["stop_sequence"], "Banana");
}

TEST(GenerateReplyTest, InputTokensCountSystemMessagesAndTools) {
  json body = MinimalBody();
  int base = GenerateReply(ParseOk(body), {}, Spec()).input_tokens;
  EXPECT_GE(base, 1);
  body["system"] = std::string(400, 'x');
  int with_system = GenerateReply(ParseOk(body), {}, Spec()).input_tokens;
  EXPECT_EQ(with_system, base + 100);
  body["tools"] = json::array({{{"name", "t"}, {"input_schema", {{"type", "object"}}}}});
  EXPECT_GT(GenerateReply(ParseOk(body), {}, Spec()).input_tokens, with_system);
}

TEST(GenerateReplyTest, BothRequestFormsGiveTheSameReply) {
  json anthropic = MinimalBody();
  json converse = {{"messages", json::array({{{"role", "user"}, {"content", json::array({{{"text", "Hello there"}}})}}})},
                   {"inferenceConfig", {{"maxTokens", 256}}}};
  Result<ClaudeRequest> c = ParseConverseRequest(converse.dump(), Spec());
  ASSERT_TRUE(c.ok());
  ClaudeReply a = GenerateReply(ParseOk(anthropic), {}, Spec());
  ClaudeReply b = GenerateReply(c.value(), {}, Spec());
  EXPECT_EQ(a.content, b.content);
  EXPECT_EQ(a.input_tokens, b.input_tokens);
}

// --- Response bodies and streams ---------------------------------------------

ClaudeReply ToolReply() {
  json body = MinimalBody();
  body["messages"][0]["content"] = "Classify: VPN keeps dropping";
  body["tools"] = json::array({{{"name", "classify_ticket"}, {"input_schema", TriageSchema()}}});
  body["tool_choice"] = {{"type", "any"}};
  return GenerateReply(ParseOk(body), {}, Spec());
}

ClaudeReply LongTextReply() {
  json body = MinimalBody();
  body["messages"][0]["content"] = "Please explain how the quarterly reconciliation process works for contractors";
  return GenerateReply(ParseOk(body), {}, Spec());
}

TEST(ResponseTest, AnthropicBodyHasTheMessageShape) {
  ClaudeReply reply = LongTextReply();
  json body = AnthropicResponseBody(reply, Spec());
  EXPECT_EQ(body["type"], "message");
  EXPECT_EQ(body["role"], "assistant");
  EXPECT_EQ(body["model"], Spec().model_id);
  EXPECT_EQ(body["id"], reply.message_id);
  EXPECT_EQ(body["stop_reason"], "end_turn");
  EXPECT_TRUE(body["stop_sequence"].is_null());
  EXPECT_EQ(body["usage"]["input_tokens"], reply.input_tokens);
  EXPECT_EQ(body["usage"]["output_tokens"], reply.output_tokens);
}

TEST(ResponseTest, AnthropicStreamConcatenatesToTheFullTextWithSameTotals) {
  ClaudeReply reply = LongTextReply();
  std::vector<json> events = AnthropicStreamEvents(reply, Spec(), 1234, 200);
  ASSERT_GE(events.size(), 6u);
  EXPECT_EQ(events.front()["type"], "message_start");
  EXPECT_EQ(events.front()["message"]["usage"]["input_tokens"], reply.input_tokens);
  std::string text;
  int deltas = 0;
  for (const json& e : events) {
    if (e["type"] == "content_block_delta") {
      EXPECT_EQ(e["delta"]["type"], "text_delta");
      text += e["delta"]["text"].get<std::string>();
      ++deltas;
    }
  }
  EXPECT_EQ(text, Text(reply));
  EXPECT_GT(deltas, 3);
  const json& delta = events[events.size() - 2];
  EXPECT_EQ(delta["type"], "message_delta");
  EXPECT_EQ(delta["delta"]["stop_reason"], "end_turn");
  EXPECT_EQ(delta["usage"]["output_tokens"], reply.output_tokens);
  const json& stop = events.back();
  EXPECT_EQ(stop["type"], "message_stop");
  EXPECT_EQ(stop["amazon-bedrock-invocationMetrics"],
            json::parse(R"({"inputTokenCount":)" + std::to_string(reply.input_tokens) + R"(,"outputTokenCount":)" +
                        std::to_string(reply.output_tokens) + R"(,"invocationLatency":1234,"firstByteLatency":200})"));
}

TEST(ResponseTest, AnthropicStreamCarriesToolInputAsPartialJson) {
  ClaudeReply reply = ToolReply();
  ASSERT_EQ(reply.stop_reason, "tool_use");
  std::vector<json> events = AnthropicStreamEvents(reply, Spec(), 10, 5);
  EXPECT_EQ(events[1]["type"], "content_block_start");
  EXPECT_EQ(events[1]["content_block"]["type"], "tool_use");
  EXPECT_EQ(events[1]["content_block"]["id"], reply.content[0]["id"]);
  std::string partial;
  int pieces = 0;
  for (const json& e : events) {
    if (e["type"] == "content_block_delta") {
      EXPECT_EQ(e["delta"]["type"], "input_json_delta");
      partial += e["delta"]["partial_json"].get<std::string>();
      ++pieces;
    }
  }
  EXPECT_GT(pieces, 2);
  EXPECT_EQ(json::parse(partial), reply.content[0]["input"]);
  EXPECT_EQ(events[events.size() - 2]["delta"]["stop_reason"], "tool_use");
}

TEST(ResponseTest, ConverseBodyHasTheConverseShape) {
  ClaudeReply reply = ToolReply();
  json body = ConverseResponseBody(reply, 42);
  EXPECT_EQ(body["output"]["message"]["role"], "assistant");
  const json& use = body["output"]["message"]["content"][0]["toolUse"];
  EXPECT_EQ(use["toolUseId"], reply.content[0]["id"]);
  EXPECT_EQ(use["name"], "classify_ticket");
  EXPECT_EQ(use["input"], reply.content[0]["input"]);
  EXPECT_EQ(body["stopReason"], "tool_use");
  EXPECT_EQ(body["usage"]["inputTokens"], reply.input_tokens);
  EXPECT_EQ(body["usage"]["outputTokens"], reply.output_tokens);
  EXPECT_EQ(body["usage"]["totalTokens"], reply.input_tokens + reply.output_tokens);
  EXPECT_EQ(body["metrics"]["latencyMs"], 42);
  json text_body = ConverseResponseBody(LongTextReply(), 1);
  EXPECT_EQ(text_body["output"]["message"]["content"][0]["text"], Text(LongTextReply()));
}

TEST(ResponseTest, ConverseStreamEventsRebuildTheReply) {
  for (const ClaudeReply& reply : {LongTextReply(), ToolReply()}) {
    auto events = ConverseStreamEvents(reply, 77);
    ASSERT_GE(events.size(), 5u);
    EXPECT_EQ(events[0].first, "messageStart");
    EXPECT_EQ(events[0].second, json::parse(R"({"role":"assistant"})"));
    std::string text, input;
    bool started = false;
    for (const auto& [type, payload] : events) {
      if (type == "contentBlockStart") {
        started = true;
        EXPECT_EQ(payload["start"]["toolUse"]["toolUseId"], reply.content[0]["id"]);
        EXPECT_EQ(payload["contentBlockIndex"], 0);
      }
      if (type == "contentBlockDelta") {
        EXPECT_EQ(payload["contentBlockIndex"], 0);
        if (payload["delta"].contains("text")) text += payload["delta"]["text"].get<std::string>();
        if (payload["delta"].contains("toolUse")) input += payload["delta"]["toolUse"]["input"].get<std::string>();
      }
    }
    bool is_tool = reply.stop_reason == "tool_use";
    EXPECT_EQ(started, is_tool);
    if (is_tool) {
      EXPECT_EQ(json::parse(input), reply.content[0]["input"]);
    } else {
      EXPECT_EQ(text, Text(reply));
    }
    EXPECT_EQ(events[events.size() - 3].first, "contentBlockStop");
    EXPECT_EQ(events[events.size() - 2].first, "messageStop");
    EXPECT_EQ(events[events.size() - 2].second["stopReason"], reply.stop_reason);
    EXPECT_EQ(events.back().first, "metadata");
    EXPECT_EQ(events.back().second["usage"], ConverseResponseBody(reply, 77)["usage"]);
    EXPECT_EQ(events.back().second["metrics"]["latencyMs"], 77);
  }
}

}  // namespace
}  // namespace quarry::sim
