#pragma once
// An automation's definition: what an automation is (trigger, steps, execution
// options), how its JSON is parsed and validated when it is saved, and the
// flat program a run executes.
//
// The JSON form (the API's and the CLI's; docs/automations.md):
//
//   {"name": "IT ticket triage", "description": "...",
//    "object": "ticket",                          // the app object the trigger watches / runs on
//    "trigger": {"type": "record_created"         // | record_updated | on_demand | schedule
//                "fields": ["status"],            // record_updated: only when one of these changed
//                "where": <condition>,            // optional, on the triggering record
//                "inputs": [{"name": "email", "type": "text", "required": true}],   // on_demand
//                "every_seconds": 3600},          // schedule (>= 60)
//    "settings": {"max_concurrency": 100,         // runs of this automation in flight per node
//                 "alert_webhook": "https://...", // optional: halt-and-alert deliveries
//                 "alert_secret": "..."},         // optional HMAC key for those deliveries
//    "outputs": {"category": "{steps.analyse.category}"},   // on_demand: what the call returns
//    "steps": [ <step>, ... ]}
//
// Steps ("id" is [a-z][a-z0-9_]{0,39}, unique in the automation, including
// nested steps):
//   {"id","type":"run_agent_task","agent":"agt_...","task":"text with {refs}",
//    "inputs":{"customer_inquiry":"{record.description}"},
//    "output":{"type":"text"} | {"type":"structured","fields":[<output field>...]},
//    "map":{"category":"record.inquiry_category"},          // output -> record field (an effect)
//    "return_control":{"<actionGroup>/<function>":"reply text with {refs} and {control.<param>}"},
//    "options":<execution options>}
//   {"id","type":"ai_prompt","service":"svc_...","prompt":"...","system":"...",
//    "output":..., "map":..., "options":...}
//   {"id","type":"search_records","object":"ticket","where":<condition over {candidate.<field>}>,
//    "sort":"-created_at","limit":5}                        // limit 1..50
//   {"id","type":"create_record","object":"task","values":{"title":"{record.title}"}}
//   {"id","type":"update_record","record":"{record.id}","values":{"category":"..."}}   // record: default the trigger record
//                                            // optional "object": the record's object (default the automation's)
//   {"id","type":"if","branches":[{"when":<condition>,"steps":[...]}, ...],"otherwise":[...]}   // no outputs
//   {"id","type":"escalate_review","reason":"text","proposed":{"suggested_response":"{steps.analyse.response}"}}
//   {"id","type":"send_notification","url":"http(s)://...","secret":"...","body":{...any JSON, strings may hold refs},
//    "options":<execution options>}   // url: literal scheme and host; refs only in its path or query
//
// Output field: {"name":"category","type":"text"|"number"|"boolean"|"enum",
//                "values":["FAQ","Standard"] (enum), "description":"...", "default":<value of the type>}
//
// Execution options (steps that call Bedrock; all optional):
//   {"timeout_ms": 60000,                            // per attempt; default per kind (kDefault*TimeoutMs)
//    "retry": {"max_attempts": 3, "base_ms": 500, "cap_ms": 20000, "jitter": true,
//              "retry_on": ["throttling", "transient", "timeout"]},   // error classes
//    "on_error": "halt" | "continue" | "review",     // default "halt" (halt and alert)
//    "defaults": {"category": "Standard"},           // "continue": values for the outputs (else the fields' defaults)
//    "cache": {"enabled": true, "ttl_seconds": 300}} // default enabled, 300 s
//
// Conditions: {"all":[c...]} | {"any":[c...]} | {"not": c} |
//   {"left": "<text with refs>", "op": <op>, "right": <JSON literal or text with refs>}
//   ops: eq ne gt gte lt lte contains not_contains in not_in is_empty is_not_empty
//   (is_empty / is_not_empty take no "right"; in / not_in take an array).
//   Shorthand {"field": "priority", "op": ..., "value": ...} means left "{record.priority}"
//   (inside a search_records where: "{candidate.priority}").
//   Comparison: numbers compare as numbers when both sides parse as numbers;
//   otherwise text comparison, case-insensitive for eq/ne/contains/in.
//
// Value references, in any text: {record.<field>} (plus record.id, record.handle,
// record.created_at, record.updated_at), {trigger.kind}, {trigger.changed_fields},
// {trigger.before.<field>}, {trigger.inputs.<name>}, {steps.<id>.<output>},
// {control.<param>} (return_control replies only), {candidate.<field>} (search
// where only). "{{" and "}}" are literal braces. Outputs per step type:
//   run_agent_task / ai_prompt: text, session_id, and each structured field
//   search_records: count, records (JSON array), text (one line per record)
//   create_record: id, handle        update_record: id, version
//   escalate_review: decision ("approved"|"edited"|"rejected"), reviewer, comment,
//                    and each "proposed" key (the reviewer's edited value)
//   send_notification: status (HTTP status), delivery_id
// Validation when saved: every reference must name something that can exist
// there — a field of the object, a trigger input, an output of a step that
// comes earlier in document order (a step in a branch may be referenced after
// the if; when the branch was not taken it renders empty). Unknown keys,
// wrong types, bad ids, duplicate step ids, map targets that are not fields,
// enum defaults outside the values, etc. are all reported at once.
//
// Thread safety: values and pure functions.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "domain/apps.h"
#include "domain/fields.h"

namespace quarry::engine {

inline constexpr int64_t kDefaultAgentTimeoutMs = 120'000;   // agents orchestrate several model calls
inline constexpr int64_t kDefaultPromptTimeoutMs = 60'000;
inline constexpr int64_t kDefaultNotificationTimeoutMs = 10'000;
inline constexpr int kMaxSteps = 100;                          // including nested steps
inline constexpr size_t kMaxDefinitionBytes = 256 * 1024;

enum class TriggerKind { kRecordCreated, kRecordUpdated, kOnDemand, kSchedule };
std::string_view TriggerKindName(TriggerKind kind);  // "record_created", ...

enum class StepKind {
  kRunAgentTask,
  kAiPrompt,
  kSearchRecords,
  kCreateRecord,
  kUpdateRecord,
  kIf,
  kEscalateReview,
  kSendNotification,
};
std::string_view StepKindName(StepKind kind);  // "run_agent_task", ...

// A condition tree (see the header comment).
struct Condition {
  enum class Kind { kAll, kAny, kNot, kCompare };
  Kind kind = Kind::kCompare;
  std::vector<Condition> children{};  // kAll / kAny / kNot (one)
  std::string left{};                 // kCompare: text with references
  std::string op{};                   // kCompare
  nlohmann::json right{};             // kCompare: literal, or a string with references
};

struct OutputField {
  enum class Type { kText, kNumber, kBoolean, kEnum };
  std::string name{};
  Type type = Type::kText;
  std::vector<std::string> values{};  // kEnum
  std::string description{};
  std::optional<nlohmann::json> default_value{};
};
std::string_view OutputFieldTypeName(OutputField::Type type);

struct OutputSpec {
  bool structured = false;
  std::vector<OutputField> fields{};  // structured only
};

struct RetryPolicy {
  int max_attempts = 3;
  int64_t base_ms = 500;
  int64_t cap_ms = 20'000;
  bool jitter = true;
  // Error classes retried: "throttling", "transient" (5xx, connection
  // failures, in-stream service errors), "timeout".
  std::vector<std::string> retry_on{"throttling", "transient", "timeout"};
};

enum class OnError { kHalt, kContinue, kReview };
std::string_view OnErrorName(OnError on_error);  // "halt" | "continue" | "review"

struct ExecutionOptions {
  int64_t timeout_ms = 0;  // per attempt; 0 = the kind's default
  RetryPolicy retry{};
  OnError on_error = OnError::kHalt;
  nlohmann::json defaults = nlohmann::json::object();  // output name -> value
  bool cache_enabled = true;
  int64_t cache_ttl_seconds = 300;
};

struct Step {
  std::string id{};
  StepKind kind = StepKind::kRunAgentTask;
  nlohmann::json raw = nlohmann::json::object();  // the step as saved (for history)

  // run_agent_task / ai_prompt
  std::string agent_id{};    // "agt_..."
  std::string service_id{};  // "svc_..."
  std::string task{};        // task (agent) or prompt (service), with references
  std::string system{};      // ai_prompt only
  std::vector<std::pair<std::string, std::string>> inputs{};  // named inputs, in order
  OutputSpec output{};
  std::map<std::string, std::string> map{};              // output name -> record field api name ("record." stripped)
  std::map<std::string, std::string> return_control{};   // "group/function" -> reply template
  ExecutionOptions options{};

  // search_records / create_record
  std::string object{};  // api name (update_record too: the target record's object)
  std::optional<Condition> where{};
  std::string sort{};    // search: "[-]field" or created_at / updated_at
  int limit = 5;
  // create_record / update_record: field api name -> text with references
  // (a value that is exactly one reference keeps the referenced value's type)
  std::map<std::string, nlohmann::json> values{};
  std::string record{};  // update_record: reference or id; "" = the trigger record

  // escalate_review
  std::string reason{};
  std::map<std::string, nlohmann::json> proposed{};

  // send_notification
  std::string url{};
  std::string secret{};
  nlohmann::json body{};

  // if
  struct Branch {
    Condition when{};
    std::vector<Step> steps{};
  };
  std::vector<Branch> branches{};
  std::vector<Step> otherwise{};

  bool CallsBedrock() const { return kind == StepKind::kRunAgentTask || kind == StepKind::kAiPrompt; }
  // The names this step makes available as {steps.<id>.<name>}.
  std::vector<std::string> OutputNames() const;
};

struct TriggerInput {
  std::string name{};
  std::string type = "text";  // text | number | boolean | json
  bool required = false;
};

struct Trigger {
  TriggerKind kind = TriggerKind::kRecordCreated;
  std::vector<std::string> fields{};  // record_updated
  std::optional<Condition> where{};
  std::vector<TriggerInput> inputs{};  // on_demand
  int64_t every_seconds = 0;           // schedule
};

struct AutomationSettings {
  int max_concurrency = 100;
  std::string alert_webhook{};
  std::string alert_secret{};
};

struct AutomationSpec {
  std::string name{};
  std::string description{};
  std::string object{};  // api name of the watched object
  Trigger trigger{};
  AutomationSettings settings{};
  std::map<std::string, std::string> outputs{};  // on_demand results: name -> text with references
  std::vector<Step> steps{};
  nlohmann::json raw = nlohmann::json::object();  // the definition as saved

  // Finds a step by id anywhere in the tree (nullptr when absent).
  const Step* FindStep(std::string_view id) const;
};

// What validation checks references against. Agents and services are given
// as id -> display name; an id not in the map is reported as unknown.
struct SpecEnvironment {
  const domain::AppSchema* app = nullptr;  // required
  std::map<std::string, std::string> agents{};
  std::map<std::string, std::string> services{};
};

// Parses and validates a definition. On failure: InvalidArgument whose
// message summarizes, with every problem in *errors keyed by JSON path
// ("steps[1].output.fields[0].values", "trigger.where.left", ...), each
// message saying what is wrong and how to fix it.
Result<AutomationSpec> ParseAutomationSpec(const nlohmann::json& definition, const SpecEnvironment& env,
                                           domain::FieldErrors* errors);

// The flat program a run executes: steps in document order, with if-steps
// turned into a branch instruction that names where each branch starts and
// a jump at the end of each branch to after the if. A run's position is an
// index into `instructions` (durable in the run's state).
struct Instruction {
  enum class Kind { kStep, kBranch, kJump, kEnd };
  Kind kind = Kind::kStep;
  const Step* step = nullptr;     // kStep; kBranch: the if step
  std::vector<int> branch_targets{};  // kBranch: one per branch, then the otherwise target
  int target = -1;                // kJump
};

struct Program {
  std::shared_ptr<const AutomationSpec> spec{};  // owns the steps the instructions point at
  std::vector<Instruction> instructions{};        // last is kEnd
};
Program CompileProgram(std::shared_ptr<const AutomationSpec> spec);

// Error-class names accepted in retry_on.
bool IsKnownErrorClass(std::string_view name);

}  // namespace quarry::engine
