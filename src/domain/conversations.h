#pragma once
// Chat with a connected Bedrock agent. A conversation belongs to one user and
// one agent connection and keeps one Bedrock session id for its whole life,
// so the agent remembers earlier turns. Each turn stores the user's message
// and the agent's reply (text, citations, a returnControl request when the
// agent handed control back, the number of trace events, latency, request
// ids) or the error that ended it. A conversation can be ended (the API also
// ends the Bedrock session).
//
// One turn at a time: BeginTurn marks the conversation busy (busy_since) and
// refuses a second turn while the first is running (FailedPrecondition,
// "conversation_busy"); FinishTurn clears it. A busy mark older than
// kStaleTurnAfter (a server that died mid-turn) no longer blocks.
//
// Thread safety: stateless functions over a store::Tx; values.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/status.h"
#include "domain/paging.h"
#include "domain/principal.h"
#include "store/database.h"

namespace quarry::domain {

inline constexpr std::chrono::minutes kStaleTurnAfter{15};
inline constexpr size_t kMaxMessageLength = 25'000;  // InvokeAgent inputText limit

struct Conversation {
  std::string id{};  // "cnv_..."
  std::string org_id{};
  std::string agent_connection_id{};
  std::string user_id{};
  std::string session_id{};  // the Bedrock sessionId
  std::string title{};
  std::string status = "active";  // "active" | "ended"
  int64_t message_count = 0;
  bool busy = false;
  std::string created_at{}, updated_at{}, ended_at{};
};

// {"id","agent_id","user_id","session_id","title","status","message_count",
//  "busy","created_at","updated_at","ended_at"}
nlohmann::json ConversationToJson(const Conversation& conversation);

struct ConversationMessage {
  std::string id{};  // "msg_..."
  std::string conversation_id{};
  int64_t seq = 0;
  std::string role{};  // "user" | "agent"
  std::string text{};
  nlohmann::json citations = nlohmann::json::array();
  nlohmann::json return_control = nullptr;  // {"invocation_id","invocations":[...]} or null
  int64_t trace_count = 0;
  std::optional<int64_t> latency_ms{};
  std::string request_id{};          // Quarry's request id
  std::string bedrock_request_id{};  // AWS's
  nlohmann::json error = nullptr;    // the error envelope's "error" object, or null
  std::string created_at{};
};

// {"id","seq","role","text","citations","return_control","trace_count",
//  "latency_ms","request_id","bedrock_request_id","error","created_at"}
nlohmann::json MessageToJson(const ConversationMessage& message);

Result<Conversation> CreateConversation(store::Tx& tx, const Clock& clock, const Principal& actor,
                                        const std::string& agent_connection_id, const std::string& title);
Result<Conversation> GetConversation(store::Tx& tx, const Clock& clock, const std::string& org_id,
                                     const std::string& conversation_id);
// Newest first. `user_id` "" = every user's.
Result<Page<Conversation>> ListConversations(store::Tx& tx, const Clock& clock, const std::string& org_id,
                                             const std::string& agent_connection_id, const std::string& user_id,
                                             const PageRequest& page);

// Starts a turn: checks the conversation is active and idle, marks it busy
// and stores the user's message (text may be empty when the turn returns
// control results; `return_control` then holds them). Errors:
// FailedPrecondition "conversation ... has ended" / "... is still answering".
Result<ConversationMessage> BeginTurn(store::Tx& tx, const Clock& clock, const Conversation& conversation,
                                      const std::string& text, const nlohmann::json& return_control,
                                      const std::string& request_id);
// Ends a turn: stores the agent's reply (or the error in `reply.error`) and
// clears the busy mark.
Result<ConversationMessage> FinishTurn(store::Tx& tx, const Clock& clock, const Conversation& conversation,
                                       ConversationMessage reply);
// Marks the conversation ended (idempotent).
Result<Conversation> EndConversation(store::Tx& tx, const Clock& clock, const Conversation& conversation);

// Oldest first (by seq).
Result<Page<ConversationMessage>> ListMessages(store::Tx& tx, const std::string& org_id,
                                               const std::string& conversation_id, const PageRequest& page);

}  // namespace quarry::domain
