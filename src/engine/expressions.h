#pragma once
// Value references ({record.description}, {steps.analyse.category}, ...) and
// conditions: parsing (for validation when an automation is saved) and
// evaluation against a run's scope (when it runs).
//
// Rendering is one pass over the template: each reference is replaced by the
// referenced value, inserted literally. Text that comes out of a value (a
// record's description containing "{record.secret}") is never looked at
// again, so a record cannot inject references. "{{" and "}}" render as "{"
// and "}". A reference to something absent at run time (a field with no
// value, a step in a branch that was not taken) renders as "".
//
// Value to text: strings as they are; numbers in their shortest form (3, 0.7);
// booleans true/false; null ""; arrays and objects as compact JSON.
//
// Thread safety: pure functions over values.

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "engine/automation_spec.h"

namespace quarry::engine {

// One reference found in a template: "steps.analyse.category" split at dots
// into {"steps", "analyse", "category"}; `offset` is its byte offset (the '{').
struct Reference {
  std::vector<std::string> path{};
  size_t offset = 0;
  std::string text{};  // "{steps.analyse.category}" as written
};

// Finds the references of a template. InvalidArgument for an unclosed "{",
// an empty reference, a stray "}" (not doubled) or a segment that is not
// [A-Za-z0-9_]+ — the message names the offset and shows the fragment.
Result<std::vector<Reference>> ParseReferences(std::string_view text);

// Where references are resolved. Each root is a JSON object:
//   record   the record's values plus id, handle, created_at, updated_at
//   trigger  {"kind", "changed_fields": [...], "before": {...}, "inputs": {...}}
//   steps    {"<id>": {"<output>": value, ...}, ...}
//   control  (return_control replies) the parameters of the returned control
//   candidate (search where) the record being tested
struct Scope {
  nlohmann::json record = nlohmann::json::object();
  nlohmann::json trigger = nlohmann::json::object();
  nlohmann::json steps = nlohmann::json::object();
  nlohmann::json control = nlohmann::json::object();
  nlohmann::json candidate = nlohmann::json::object();
};

// The referenced value (JSON null when absent).
nlohmann::json Resolve(const Scope& scope, const Reference& reference);

// The template with every reference replaced (see the header comment).
// InvalidArgument only for a malformed template (validated specs never are).
Result<std::string> Render(std::string_view text, const Scope& scope);

// A value for a record field or a JSON body: when `value` is a string that is
// exactly one reference, the referenced value with its type; a string with
// text around references renders to a string; arrays and objects are rendered
// member by member; other JSON is returned as is.
Result<nlohmann::json> RenderValue(const nlohmann::json& value, const Scope& scope);

// The text form of a value (see the header comment).
std::string ValueToText(const nlohmann::json& value);

// Evaluates a condition. InvalidArgument only for a malformed condition.
Result<bool> Evaluate(const Condition& condition, const Scope& scope);

// The condition operators.
bool IsKnownConditionOp(std::string_view op);

}  // namespace quarry::engine
