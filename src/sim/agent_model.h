#pragma once
// The emulator's Bedrock Agents: what an agent, its versions and aliases, its
// knowledge bases, action groups and guardrail are (the `agents` part of the
// emulator's config), and how one InvokeAgent call turns into the events of
// its response stream.
//
// Behaviour, deterministic throughout:
// - An alias must point at a version; an alias with no version, or whose
//   version is not prepared, fails as Bedrock fails. TSTALIASID is the draft
//   alias and always points at DRAFT.
// - Knowledge bases: keyword retrieval over the documents of the version's
//   knowledge bases; the best matches ground the answer and are cited in the
//   chunk's attribution.
// - Action groups: when the input mentions an action's trigger words, the
//   agent returns control (a returnControl event with an invocationId and a
//   functionInvocationInput, or for an API-schema action an apiInvocationInput
//   with httpMethod, the templated apiPath, parameters and requestBody, their
//   values filled from the input); the next call in the same session carries
//   sessionState.invocationId and returnControlInvocationResults (a
//   functionResult, or an apiResult with the same apiPath and httpMethod),
//   and the agent answers from them. Results for another invocationId, of
//   the other kind, or for another action group / apiPath / httpMethod are
//   a ValidationException that says what was expected.
// - Code interpreter (when the version enables it): "export ... as CSV"
//   produces a `files` event with a CSV file (knowledge-base articles that
//   match the request, all of them if none does, or the session's turns
//   without a knowledge base; at most 1,000,000 bytes, FileBody's maximum)
//   followed by a chunk naming the file.
// - Sessions: per (agent, alias, sessionId) history, so a later turn can refer
//   to an earlier one ("what did I ask before?"); endSession ends it; idle
//   sessions expire after the agent's idleSessionTTLInSeconds.
// - Traces when enableTrace: preProcessingTrace, orchestrationTrace (rationale,
//   modelInvocationInput / Output, observation), postProcessingTrace, and
//   guardrailTrace when a guardrail is attached.
// - Guardrail: blocked topics (by words); a blocked input or answer is
//   replaced by the guardrail's blocked message.
// - streamingConfigurations.streamFinalResponse splits the answer into
//   several chunks; otherwise the answer is one chunk.
//
// Thread safety: AgentSessions is thread-safe; the rest are values and pure
// functions.

#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <functional>
#include <utility>
#include <variant>
#include <vector>

#include "aws/aws_error.h"
#include "common/clock.h"
#include "common/status.h"
#include "sim/claude_model.h"

namespace quarry::sim {

struct KnowledgeDocument {
  std::string id{};
  std::string title{};
  std::string text{};
  std::string uri{};  // "s3://bucket/key" shown in citations
};

struct KnowledgeBaseSpec {
  std::string id{};  // [0-9a-zA-Z]{10}
  std::string name{};
  std::vector<KnowledgeDocument> documents{};
};

// A world's knowledge bases prepared for keyword retrieval: the keywords of
// each document and of each of its sentences, and its retrievedReference
// JSON, worked out once when the world is loaded instead of on every
// InvokeAgent call. It refers to `knowledge_bases`, which must outlive it
// unchanged.
class KnowledgeIndex {
 public:
  struct Sentence {
    std::string text{};
    std::vector<std::string> keywords{};  // sorted, distinct
  };
  struct Document {
    const KnowledgeDocument* spec = nullptr;
    std::vector<std::string> keywords{};  // of title and text; sorted, distinct
    std::vector<Sentence> sentences{};    // of the text, in order
    nlohmann::json reference{};           // a retrievedReferences entry citing it
  };

  explicit KnowledgeIndex(const std::vector<KnowledgeBaseSpec>& knowledge_bases);
  KnowledgeIndex(const KnowledgeIndex&) = delete;
  KnowledgeIndex& operator=(const KnowledgeIndex&) = delete;

  const std::vector<KnowledgeBaseSpec>& knowledge_bases() const { return knowledge_bases_; }
  // The indexed documents of knowledge_bases()[i], in the same order.
  const std::vector<Document>& documents(size_t i) const { return documents_[i]; }

 private:
  const std::vector<KnowledgeBaseSpec>& knowledge_bases_;
  std::vector<std::vector<Document>> documents_;
};

struct ActionParameterSpec {
  std::string name{};
  std::string type{};  // string | number | integer | boolean | array
  std::string description{};
  bool required = false;
};

// An action that hands control back: a function of a function-schema action
// group (`function` set), or an operation of an API-schema (OpenAPI) action
// group (`api_path` and `http_method` set; `parameters` are its path, query
// and header parameters, `request_body` the properties of its
// application/json request body).
struct ActionFunctionSpec {
  std::string action_group{};
  std::string function{};
  std::string description{};
  std::vector<ActionParameterSpec> parameters{};
  std::vector<std::string> trigger_words{};  // case-insensitive words that invoke it
  std::string api_path{};     // "/assets/{assetId}/repairs"
  std::string http_method{};  // GET | POST | PUT | PATCH | DELETE
  std::vector<ActionParameterSpec> request_body{};

  bool is_api() const { return !api_path.empty(); }
};

struct GuardrailSpec {
  std::string id{};
  std::string version{};  // "DRAFT" or a number
  struct Topic {
    std::string name{};
    std::vector<std::string> words{};
  };
  std::vector<Topic> blocked_topics{};
  std::string blocked_message = "Sorry, I can't help with that topic.";
};

struct AgentVersionSpec {
  std::string version{};  // "DRAFT", "1", "2", …
  bool prepared = true;
  std::string instruction{};
  std::string foundation_model{};  // model id or profile id
  std::vector<std::string> knowledge_base_ids{};
  std::vector<ActionFunctionSpec> actions{};
  std::optional<GuardrailSpec> guardrail{};
  std::vector<ReplyRule> rules{};  // scripted answers, as for models
  // The AMAZON.CodeInterpreter action group is enabled: asked to export
  // something as CSV, the agent answers with a `files` event (the CSV) and a
  // chunk saying what it wrote.
  bool code_interpreter = false;
};

struct AgentAliasSpec {
  std::string id{};    // [0-9a-zA-Z]{10}, or TSTALIASID
  std::string name{};
  std::string description{};
  std::string agent_version{};  // "" = no associated version
  std::string status = "PREPARED";  // CREATING | PREPARED | FAILED | UPDATING | DELETING | DISSOCIATED
};

struct AgentSpec {
  std::string id{};  // [0-9a-zA-Z]{10}
  std::string name{};
  std::string account{};  // 12 digits
  std::string region{};
  std::string status = "PREPARED";  // agentStatus
  std::string resource_role_arn{};
  int idle_session_ttl_seconds = 600;
  std::vector<AgentVersionSpec> versions{};  // DRAFT first
  std::vector<AgentAliasSpec> aliases{};     // TSTALIASID is implied when absent
  std::string created_at = "2026-01-01T00:00:00Z";

  const AgentVersionSpec* FindVersion(std::string_view version) const;
  // The alias with this id; TSTALIASID resolves to the draft alias.
  std::optional<AgentAliasSpec> FindAlias(std::string_view alias_id) const;
};

struct InvokeAgentInput {
  std::string session_id{};
  std::string input_text{};
  bool enable_trace = false;
  bool end_session = false;
  bool stream_final_response = false;
  nlohmann::json session_state = nlohmann::json::object();  // as sent
  std::string memory_id{};
};

// One event of the InvokeAgent response stream: a `chunk`, `trace`, `files`
// or `returnControl` event, or an exception (e.g. from a fault) whose type is the
// lower-camel member name (`throttlingException`, …).
struct AgentEvent {
  std::string type{};
  nlohmann::json payload{};
  bool exception = false;
};

// Session memory. Thread-safe; bounded (oldest sessions are dropped past
// `max_sessions`).
class AgentSessions {
 public:
  explicit AgentSessions(size_t max_sessions = 100'000);
  struct Turn {
    std::string user{};
    std::string agent{};
  };
  struct Session {
    std::vector<Turn> turns{};
    std::string pending_invocation_id{};  // a returnControl awaiting results
    std::string pending_function{};       // "group/function", or "group: METHOD /path" for an API
    std::string pending_action_group{};
    std::string pending_api_path{};       // set when the pending invocation is an API operation
    std::string pending_http_method{};
    MonotonicTime last_used{};
  };
  // Runs `fn` on the session (created if new, reset if idle past `ttl`), under
  // the store's lock.
  void WithSession(const std::string& key, std::chrono::seconds ttl, const Clock& clock,
                   const std::function<void(Session&)>& fn);
  void End(const std::string& key);
  size_t size() const;

 private:
  const size_t max_sessions_;
  mutable std::mutex mutex_;
  std::map<std::string, Session> sessions_;
};

// Runs one InvokeAgent call: the events of the response stream, or the AWS
// error InvokeAgent returns before the stream starts (code, HTTP status and
// message as Bedrock sends them): ValidationException (bad sessionId, empty
// input without session state, results for an unknown invocationId, …),
// ResourceNotFoundException (alias points at no version, or a missing one),
// ConflictException, DependencyFailedException (version not prepared).
using AgentOutcome = std::variant<std::vector<AgentEvent>, aws::AwsError>;
AgentOutcome RunAgent(const AgentSpec& agent, const AgentAliasSpec& alias, const InvokeAgentInput& input,
                      const KnowledgeIndex& knowledge, AgentSessions& sessions, const Clock& clock);

}  // namespace quarry::sim
