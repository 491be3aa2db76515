#pragma once
// Structured output of a Run Agent Task or AI prompt step: the declared
// fields as a JSON Schema, the instructions appended to an agent's task, and
// the parsing and validation of an answer (with the message for one repair
// turn when the answer does not fit).
//
// Parsing accepts what models really send: a bare JSON object, one inside a
// ```json fenced block, or one preceded/followed by prose (the first balanced
// top-level {...} that parses). Validation: every declared field must be
// present with the right type, unless it has a default (then the default is
// used); numbers given as numeric strings ("0.8") are accepted; booleans also
// as "true"/"false"; enum values match case-insensitively and are returned
// in their declared spelling; undeclared members are dropped.
//
// Thread safety: pure functions.

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "engine/automation_spec.h"

namespace quarry::engine {

// {"type":"object","properties":{...},"required":[fields without default]}
// with enum values, descriptions and types (text->string, number, boolean).
nlohmann::json OutputJsonSchema(const std::vector<OutputField>& fields);

// The paragraph appended to an agent's task: answer with only one JSON object
// matching this schema, no prose. Its last line is exactly
// "JSON schema: " followed by OutputJsonSchema(fields) as compact JSON (the
// emulator's agents recognise that line and answer with conforming JSON).
std::string StructuredAnswerInstructions(const std::vector<OutputField>& fields);

// The validated values ({"<name>": value} for every declared field).
// InvalidArgument whose message lists every problem ("no JSON object in the
// answer", "category: \"Urgent\" is not one of FAQ, Standard, High priority",
// "confidence: expected a number, got \"high\"", ...).
Result<nlohmann::json> ParseStructuredAnswer(std::string_view answer, const std::vector<OutputField>& fields);

// Validates a JSON object (e.g. a forced tool's input) the same way.
Result<nlohmann::json> ValidateStructuredValues(const nlohmann::json& values,
                                                const std::vector<OutputField>& fields);

// The repair turn sent in the same session after a bad answer: what was wrong
// (`problem`, from the Status above) and the instruction to answer again
// with only the JSON object.
std::string RepairInstructions(std::string_view problem, const std::vector<OutputField>& fields);

// Values for "continue with default values": `overrides` (the step's
// options.defaults) first, then each field's default, then a neutral value
// of the type ("" / 0 / false / the first enum value).
nlohmann::json DefaultOutputValues(const std::vector<OutputField>& fields, const nlohmann::json& overrides);

}  // namespace quarry::engine
