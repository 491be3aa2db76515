#pragma once
// The emulator's stand-in for a Claude model on Amazon Bedrock: it validates
// request bodies as Bedrock does and produces deterministic replies.
//
// Two request forms are accepted: the Anthropic messages body of InvokeModel /
// InvokeModelWithResponseStream (anthropic_version, max_tokens, messages,
// system, temperature, top_p, top_k, stop_sequences, tools, tool_choice), and
// the Converse / ConverseStream body (messages with content blocks, system,
// inferenceConfig, toolConfig). Both become one ClaudeRequest.
//
// Replies are deterministic: the first scripted rule whose `match` occurs in
// the last user text (case-insensitive) gives the reply text; otherwise the
// reply is derived from the input. When tools are offered and tool_choice
// forces one ("any" or a named tool), the reply is a tool_use block whose
// input conforms to the tool's JSON schema; enum values are chosen by matching
// words of the prompt, so a triage prompt yields plausible categories. Token
// counts are derived consistently from the text.
//
// Thread safety: pure functions.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace quarry::sim {

struct ReplyRule {
  std::string match{};  // case-insensitive substring of the last user text
  std::string reply{};  // the reply text
};

struct ClaudeModelSpec {
  std::string model_id{};          // "anthropic.claude-3-5-sonnet-20240620-v1:0"
  int max_output_tokens = 8192;    // max_tokens above this is a ValidationException
  int context_window_tokens = 200000;
};

struct ClaudeTool {
  std::string name{};
  std::string description{};
  nlohmann::json input_schema{};  // JSON schema of the input object
};

// A validated request, whichever form it came in.
struct ClaudeRequest {
  std::string system{};
  // (role, content blocks in the Anthropic form: [{"type":"text","text":…}, …])
  std::vector<std::pair<std::string, nlohmann::json>> messages{};
  int max_tokens = 0;
  std::vector<std::string> stop_sequences{};
  std::vector<ClaudeTool> tools{};
  std::string tool_choice{};       // "", "auto", "any", "tool", "none"
  std::string tool_choice_name{};  // with "tool"
};

struct ClaudeReply {
  std::string message_id{};   // "msg_bdrk_…", derived from the input
  // Content blocks in the Anthropic form: text and tool_use.
  nlohmann::json content = nlohmann::json::array();
  std::string stop_reason{};  // end_turn | max_tokens | stop_sequence | tool_use
  int input_tokens = 0;
  int output_tokens = 0;
  std::string stop_sequence{};  // the stop sequence that ended the reply (stop_reason stop_sequence)
};

// Validates an InvokeModel body. Errors: InvalidArgument whose message is the
// text of Bedrock's ValidationException for that mistake (missing or wrong
// anthropic_version, missing or out-of-range max_tokens, empty messages, a
// first message that is not from the user, roles that do not alternate,
// unknown content block types, a forced tool that is not offered, malformed
// JSON, …).
Result<ClaudeRequest> ParseAnthropicRequest(std::string_view body, const ClaudeModelSpec& model);

// Validates a Converse / ConverseStream body, with the same error contract.
Result<ClaudeRequest> ParseConverseRequest(std::string_view body, const ClaudeModelSpec& model);

// The deterministic reply to a validated request.
ClaudeReply GenerateReply(const ClaudeRequest& request, std::span<const ReplyRule> rules,
                          const ClaudeModelSpec& model);

// A value conforming to the JSON Schema `schema`, filled from `prompt_text`
// the way a forced tool's input is: enum values chosen by the words of the
// text (falling back to a neutral value such as "Other" or "Medium"), free
// text about the text's subject (resolutions, replies, summaries), numbers
// named like confidence in [0, 1] (low for vague text), respecting
// minimum/maximum, lengths and item counts. Used by the emulator's agents for
// answers that must match a schema. Deterministic; never throws.
nlohmann::json GenerateSchemaValue(const nlohmann::json& schema, std::string_view prompt_text);

// The InvokeModel response body (Anthropic message JSON).
nlohmann::json AnthropicResponseBody(const ClaudeReply& reply, const ClaudeModelSpec& model);

// The Anthropic stream events of InvokeModelWithResponseStream, in order
// (message_start, content_block_start, content_block_delta…, content_block_stop,
// message_delta, message_stop), text split into realistic small deltas; the last
// event carries "amazon-bedrock-invocationMetrics" with the given latencies.
std::vector<nlohmann::json> AnthropicStreamEvents(const ClaudeReply& reply, const ClaudeModelSpec& model,
                                                  int64_t invocation_latency_ms,
                                                  int64_t first_byte_latency_ms);

// The Converse response body: output.message, stopReason, usage, metrics.
nlohmann::json ConverseResponseBody(const ClaudeReply& reply, int64_t latency_ms);

// The ConverseStream events as (event type, JSON payload): messageStart,
// contentBlockStart (tool use), contentBlockDelta…, contentBlockStop,
// messageStop, metadata.
std::vector<std::pair<std::string, nlohmann::json>> ConverseStreamEvents(const ClaudeReply& reply,
                                                                         int64_t latency_ms);

}  // namespace quarry::sim
