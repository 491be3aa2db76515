#include "engine/automation_spec.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <initializer_list>
#include <set>
#include <utility>

#include "engine/expressions.h"

namespace quarry::engine {
namespace {

using domain::FieldErrors;
using nlohmann::json;

// Bounds that keep a hostile definition from exhausting the stack or the
// patience of whoever reads the error list. kMaxDefinitionBytes bounds the
// rest.
constexpr int kMaxIfNesting = 8;
constexpr int kMaxConditionDepth = 16;
constexpr int kMaxValueDepth = 32;
constexpr size_t kMaxBranches = 20;
constexpr size_t kMaxOutputFields = 50;
constexpr size_t kMaxEnumValues = 100;
constexpr size_t kMaxTriggerInputs = 50;
constexpr size_t kMaxNameChars = 100;
constexpr size_t kMaxDescriptionChars = 2000;
constexpr size_t kMaxSecretChars = 256;
constexpr size_t kMaxUrlChars = 2048;
constexpr int64_t kMinTimeoutMs = 1000;
constexpr int64_t kMaxTimeoutMs = 900'000;
constexpr int64_t kMaxRetryAttempts = 10;
constexpr int64_t kMaxRetryDelayMs = 300'000;
constexpr int64_t kMinScheduleSeconds = 60;
constexpr int64_t kMaxScheduleSeconds = 366LL * 24 * 3600;
constexpr int64_t kMaxCacheTtlSeconds = 7LL * 24 * 3600;
constexpr int64_t kMaxConcurrency = 10'000;
constexpr int64_t kMaxSearchLimit = 50;
constexpr size_t kMaxListed = 20;      // names listed in one message
constexpr size_t kMaxSummarized = 10;  // problems quoted in the summary status

constexpr std::string_view kBuiltinRecordFields[] = {"id", "handle", "created_at", "updated_at"};
constexpr std::string_view kErrorClasses[] = {"throttling", "transient", "timeout"};
constexpr std::string_view kReviewOutputs[] = {"decision", "reviewer", "comment"};
constexpr TriggerKind kTriggerKinds[] = {TriggerKind::kRecordCreated, TriggerKind::kRecordUpdated,
                                         TriggerKind::kOnDemand, TriggerKind::kSchedule};
constexpr StepKind kStepKinds[] = {
    StepKind::kRunAgentTask,   StepKind::kAiPrompt,         StepKind::kSearchRecords,
    StepKind::kCreateRecord,   StepKind::kUpdateRecord,     StepKind::kIf,
    StepKind::kEscalateReview, StepKind::kSendNotification,
};

std::string TypeName(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      return "a number";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    default:
      return "a value";
  }
}

std::string Join(const std::vector<std::string>& items, std::string_view empty = "none") {
  if (items.empty()) return std::string(empty);
  std::string out;
  for (size_t i = 0; i < items.size() && i < kMaxListed; ++i) {
    if (i > 0) out += ", ";
    out += items[i];
  }
  if (items.size() > kMaxListed)
    out += " and " + std::to_string(items.size() - kMaxListed) + " more";
  return out;
}

std::string Quote(std::string_view text) { return "'" + std::string(text) + "'"; }

std::string Key(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string At(const std::string& path, size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

size_t Utf8Length(std::string_view text) {
  size_t count = 0;
  for (char c : text) count += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return count;
}

std::string_view Trim(std::string_view text) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(char c) { return IsLower(c) || (c >= 'A' && c <= 'Z'); }

// [a-z][a-z0-9_]{0,39}
bool IsStepId(std::string_view text) {
  if (text.empty() || text.size() > 40 || !IsLower(text[0])) return false;
  for (char c : text) {
    if (!IsLower(c) && !IsDigit(c) && c != '_') return false;
  }
  return true;
}

// Names that become reference segments and JSON keys (output fields, inputs,
// proposed values): [A-Za-z_][A-Za-z0-9_]{0,63}.
bool IsName(std::string_view text) {
  if (text.empty() || text.size() > 64 || !(IsAlpha(text[0]) || text[0] == '_')) return false;
  for (char c : text) {
    if (!IsAlpha(c) && !IsDigit(c) && c != '_') return false;
  }
  return true;
}

// An action group or function name of a Bedrock agent.
bool IsControlName(std::string_view text) {
  if (text.empty() || text.size() > 100) return false;
  for (char c : text) {
    if (!IsAlpha(c) && !IsDigit(c) && c != '_' && c != '-') return false;
  }
  return true;
}

// "<METHOD> <apiPath>" of an API-schema action group's operation, e.g.
// "POST /assets/{assetId}/repairs".
bool IsApiOperationName(std::string_view text) {
  const size_t space = text.find(' ');
  if (space == std::string_view::npos || text.size() > 300) return false;
  const std::string_view method = text.substr(0, space);
  const std::string_view path = text.substr(space + 1);
  static constexpr std::string_view kMethods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"};
  if (std::find(std::begin(kMethods), std::end(kMethods), method) == std::end(kMethods)) return false;
  if (path.empty() || path[0] != '/') return false;
  for (char c : path) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return false;
  }
  return true;
}

bool IsHttpUrl(std::string_view url) {
  if (url.size() > kMaxUrlChars) return false;
  std::string_view rest;
  if (url.substr(0, 7) == "http://") {
    rest = url.substr(7);
  } else if (url.substr(0, 8) == "https://") {
    rest = url.substr(8);
  } else {
    return false;
  }
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7F) return false;
  }
  // The host is literal: a reference may fill in the path or query, never
  // choose where the request goes.
  const size_t host_end = rest.find_first_of("/?#");
  const std::string_view host = rest.substr(0, host_end);
  return !host.empty() && host.find_first_of("{}@") == std::string_view::npos;
}

bool IsBuiltinRecordField(std::string_view name) {
  for (std::string_view builtin : kBuiltinRecordFields) {
    if (name == builtin) return true;
  }
  return false;
}

std::optional<int64_t> AsInt(const json& value) {
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_number_unsigned()) {
    const uint64_t u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (value.is_number_float()) {
    const double d = value.get<double>();
    if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) < 9e15)
      return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

std::string FieldNames(const domain::ObjectSchema& object) {
  std::vector<std::string> names;
  for (const domain::Field& field : object.fields) names.push_back(field.api_name);
  return Join(names);
}

std::string NotAFieldMessage(std::string_view name, const domain::ObjectSchema& object,
                             bool with_builtins) {
  std::string message = Quote(name) + " is not a field of " + object.object.api_name +
                        " (its fields: " + FieldNames(object);
  if (with_builtins) message += "; plus id, handle, created_at, updated_at";
  return message + ")";
}

std::optional<TriggerKind> ParseTriggerKind(std::string_view text) {
  for (TriggerKind kind : kTriggerKinds) {
    if (TriggerKindName(kind) == text) return kind;
  }
  return std::nullopt;
}

std::optional<StepKind> ParseStepKind(std::string_view text) {
  for (StepKind kind : kStepKinds) {
    if (StepKindName(kind) == text) return kind;
  }
  return std::nullopt;
}

std::string StepKindList() {
  std::vector<std::string> names;
  for (StepKind kind : kStepKinds) names.emplace_back(StepKindName(kind));
  return Join(names);
}

// Where a step sits in if-branches: (if step id, branch index; the otherwise
// list counts as the branch after the last one).
struct BranchPos {
  std::string if_id{};
  size_t branch = 0;
};

// What a template may refer to, given where it sits.
struct RefContext {
  int order = -1;  // pre-order index of the owning step; -1 trigger, INT_MAX automation outputs
  std::vector<BranchPos> branches{};
  std::string self_id{};
  bool in_trigger = false;
  bool allow_control = false;                       // return_control replies
  bool in_search = false;                           // a search_records where
  const domain::ObjectSchema* candidate = nullptr;  // in_search: the searched object, if known
};

struct StepInfo {
  std::string path{};
  int order = 0;
  std::vector<BranchPos> branches{};
  bool known = false;  // the step parsed far enough to know its outputs
  StepKind kind = StepKind::kRunAgentTask;
  std::vector<std::string> outputs{};
};

// Templates are checked after every step is parsed, since a reference needs
// to know every step (to tell "runs later" from "does not exist").
struct PendingTemplate {
  std::string path{};
  std::string text{};
  RefContext context{};
};

class SpecParser {
 public:
  SpecParser(const SpecEnvironment& env, FieldErrors* errors) : env_(env), errors_(errors) {}

  void Parse(const json& definition, AutomationSpec* spec);

 private:
  void Error(const std::string& path, std::string message) {
    errors_->Add(path, std::move(message));
  }

  // Absent and null are the same: not given.
  static const json* Get(const json& object, std::string_view key) {
    if (!object.is_object()) return nullptr;
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) return nullptr;
    return &*it;
  }

  void CheckKeys(const json& object, const std::string& path,
                 std::initializer_list<std::string_view> known, std::string_view what) {
    std::vector<std::string> names(known.begin(), known.end());
    for (const auto& [key, value] : object.items()) {
      bool found = false;
      for (std::string_view k : known) found = found || k == key;
      if (!found) {
        Error(Key(path, key), "is not a known property of " + std::string(what) +
                                  "; the known ones are " + Join(names) +
                                  " (remove it or fix its name)");
      }
    }
  }

  bool RequireObject(const json& value, const std::string& path, std::string_view example) {
    if (value.is_object()) return true;
    Error(path, "must be an object like " + std::string(example) + ", not " + TypeName(value));
    return false;
  }

  std::optional<std::string> ReadString(const json& object, std::string_view key,
                                        const std::string& path, bool required,
                                        std::string_view hint = {}) {
    const json* value = Get(object, key);
    if (value == nullptr) {
      if (required) Error(path, hint.empty() ? "is required" : "is required: " + std::string(hint));
      return std::nullopt;
    }
    if (!value->is_string()) {
      Error(path, "must be a string, not " + TypeName(*value));
      return std::nullopt;
    }
    return value->get<std::string>();
  }

  std::optional<int64_t> ReadInt(const json& object, std::string_view key, const std::string& path,
                                 int64_t min, int64_t max, std::string_view unit) {
    const json* value = Get(object, key);
    if (value == nullptr) return std::nullopt;
    const std::optional<int64_t> number = AsInt(*value);
    const std::string range = "between " + std::to_string(min) + " and " + std::to_string(max) +
                              (unit.empty() ? "" : " " + std::string(unit));
    if (!number) {
      Error(path, "must be a whole number " + range + ", not " + TypeName(*value));
      return std::nullopt;
    }
    if (*number < min || *number > max) {
      Error(path, "must be " + range + " (it is " + std::to_string(*number) + ")");
      return std::nullopt;
    }
    return number;
  }

  std::optional<bool> ReadBool(const json& object, std::string_view key, const std::string& path) {
    const json* value = Get(object, key);
    if (value == nullptr) return std::nullopt;
    if (!value->is_boolean()) {
      Error(path, "must be true or false, not " + TypeName(*value));
      return std::nullopt;
    }
    return value->get<bool>();
  }

  void Template(const std::string& path, const std::string& text, const RefContext& context) {
    pending_.push_back(PendingTemplate{path, text, context});
  }

  // Every string anywhere in `value` is a template.
  void TemplatesIn(const json& value, const std::string& path, const RefContext& context,
                   int depth) {
    if (depth > kMaxValueDepth) {
      Error(path,
            "is nested more than " + std::to_string(kMaxValueDepth) + " levels deep; flatten it");
      return;
    }
    if (value.is_string()) {
      Template(path, value.get<std::string>(), context);
    } else if (value.is_array()) {
      for (size_t i = 0; i < value.size(); ++i)
        TemplatesIn(value[i], At(path, i), context, depth + 1);
    } else if (value.is_object()) {
      for (const auto& [key, item] : value.items())
        TemplatesIn(item, Key(path, key), context, depth + 1);
    }
  }

  const domain::ObjectSchema* ReadObjectRef(const json& object, const std::string& path,
                                            bool required, std::string* api_name);

  void ParseTrigger(const json& value, Trigger* trigger);
  void ParseSettings(const json& value, AutomationSettings* settings);
  std::optional<Condition> ParseCondition(const json& value, const std::string& path,
                                          const RefContext& context, int depth);
  void ParseComparisonTail(const json& value, const std::string& path, std::string_view right_key,
                           const RefContext& context, Condition* condition);
  void ParseSteps(const json& value, const std::string& path, int depth,
                  const std::vector<BranchPos>& branches, std::vector<Step>* out);
  std::optional<Step> ParseStep(const json& value, const std::string& path, int depth,
                                const std::vector<BranchPos>& branches);
  void ParseModelStep(const json& value, const std::string& path, const RefContext& context,
                      Step* step);
  void ParseSearch(const json& value, const std::string& path, const RefContext& context,
                   Step* step);
  void ParseIf(const json& value, const std::string& path, const RefContext& context, int depth,
               Step* step);
  void ParseOutput(const json* value, const std::string& path, Step* step);
  std::optional<OutputField> ParseOutputField(const json& value, const std::string& path);
  void ParseMap(const json& value, const std::string& path, Step* step);
  void ParseOptions(const json& value, const std::string& path, Step* step);
  void ParseValues(const json* value, const std::string& path, const domain::ObjectSchema* target,
                   const RefContext& context, bool creating, Step* step);
  void CheckDefault(const json& value, const std::string& path, const Step& step,
                    const std::string& output);

  void ValidateTemplate(const PendingTemplate& pending);
  void CheckReference(const Reference& ref, const RefContext& context,
                      std::vector<std::string>* problems);
  // {record.<field>...} style paths: path[start] names a field of `object`.
  void CheckFieldPath(const domain::ObjectSchema* object, const Reference& ref, size_t start,
                      std::vector<std::string>* problems);

  const SpecEnvironment& env_;
  FieldErrors* errors_;
  const domain::ObjectSchema* object_ = nullptr;
  std::optional<TriggerKind> trigger_kind_{};
  std::map<std::string, std::string> trigger_inputs_{};  // name -> type
  int step_count_ = 0;
  std::map<std::string, StepInfo> steps_{};
  std::vector<PendingTemplate> pending_{};
};

void SpecParser::Parse(const json& definition, AutomationSpec* spec) {
  spec->raw = definition;
  CheckKeys(definition, "",
            {"name", "description", "object", "trigger", "settings", "outputs", "steps"},
            "an automation definition");

  if (auto name = ReadString(definition, "name", "name", true, "a short name for the automation")) {
    const std::string trimmed(Trim(*name));
    if (trimmed.empty()) {
      Error("name", "must not be empty; give the automation a short name");
    } else if (Utf8Length(trimmed) > kMaxNameChars) {
      Error("name", "must be at most " + std::to_string(kMaxNameChars) + " characters");
    }
    spec->name = trimmed;
  }
  if (auto description = ReadString(definition, "description", "description", false)) {
    if (Utf8Length(*description) > kMaxDescriptionChars) {
      Error("description",
            "must be at most " + std::to_string(kMaxDescriptionChars) + " characters");
    }
    spec->description = *description;
  }
  object_ = ReadObjectRef(definition, "object", true, &spec->object);

  if (const json* trigger = Get(definition, "trigger")) {
    if (RequireObject(*trigger, "trigger", "{\"type\": \"record_created\"}")) {
      ParseTrigger(*trigger, &spec->trigger);
    }
  } else {
    Error("trigger", "is required, e.g. {\"type\": \"record_created\"}");
  }
  if (const json* settings = Get(definition, "settings")) {
    if (RequireObject(*settings, "settings", "{\"max_concurrency\": 100}")) {
      ParseSettings(*settings, &spec->settings);
    }
  }

  const json* steps = Get(definition, "steps");
  if (steps == nullptr) {
    Error("steps",
          "is required: a list of steps, e.g. [{\"id\": \"analyse\", \"type\": "
          "\"run_agent_task\", ...}]");
  } else if (!steps->is_array()) {
    Error("steps", "must be an array of steps, not " + TypeName(*steps));
  } else if (steps->empty()) {
    Error("steps", "must hold at least one step");
  } else {
    ParseSteps(*steps, "steps", 0, {}, &spec->steps);
    if (step_count_ > kMaxSteps) {
      Error("steps", "hold more than " + std::to_string(kMaxSteps) +
                         " steps (nested steps count); split the automation");
    }
  }

  if (const json* outputs = Get(definition, "outputs")) {
    if (RequireObject(*outputs, "outputs", "{\"category\": \"{steps.analyse.category}\"}")) {
      RefContext context;
      context.order = INT_MAX;
      for (const auto& [name, value] : outputs->items()) {
        const std::string path = Key("outputs", name);
        if (!IsName(name)) {
          Error(path, "is not a valid output name; use letters, digits and _ (e.g. \"category\")");
        }
        if (!value.is_string()) {
          Error(path, "must be a text with references like \"{steps.analyse.category}\", not " +
                          TypeName(value));
          continue;
        }
        spec->outputs[name] = value.get<std::string>();
        Template(path, value.get<std::string>(), context);
      }
    }
  }

  for (const PendingTemplate& pending : pending_) ValidateTemplate(pending);
}

const domain::ObjectSchema* SpecParser::ReadObjectRef(const json& object, const std::string& path,
                                                      bool required, std::string* api_name) {
  std::optional<std::string> ref =
      ReadString(object, "object", path, required, "the api name of one of the app's objects");
  if (!ref) return nullptr;
  const domain::ObjectSchema* found = env_.app->FindObject(*ref);
  if (found == nullptr) {
    std::vector<std::string> names;
    for (const domain::ObjectSchema& o : env_.app->objects) names.push_back(o.object.api_name);
    Error(path, Quote(*ref) + " is not an object of app " + env_.app->app.namespace_name +
                    " (its objects: " + Join(names) + ")");
    *api_name = *ref;
    return nullptr;
  }
  *api_name = found->object.api_name;
  return found;
}

void SpecParser::ParseTrigger(const json& value, Trigger* trigger) {
  CheckKeys(value, "trigger", {"type", "fields", "where", "inputs", "every_seconds"},
            "the trigger");
  if (auto type = ReadString(value, "type", "trigger.type", true,
                             "record_created, record_updated, on_demand or schedule")) {
    trigger_kind_ = ParseTriggerKind(*type);
    if (trigger_kind_) {
      trigger->kind = *trigger_kind_;
    } else {
      Error("trigger.type", Quote(*type) +
                                " is not a trigger type; use record_created, record_updated, "
                                "on_demand or schedule");
    }
  }
  const bool known = trigger_kind_.has_value();

  if (const json* fields = Get(value, "fields")) {
    if (known && *trigger_kind_ != TriggerKind::kRecordUpdated) {
      Error("trigger.fields", "applies only to record_updated triggers; remove it");
    } else if (!fields->is_array() || fields->empty()) {
      Error("trigger.fields",
            "must be a non-empty array of field names like [\"status\"]; remove "
            "it to run on any change");
    } else {
      for (size_t i = 0; i < fields->size(); ++i) {
        const json& item = (*fields)[i];
        const std::string path = At("trigger.fields", i);
        if (!item.is_string()) {
          Error(path, "must be a field name, not " + TypeName(item));
          continue;
        }
        const std::string name = item.get<std::string>();
        if (object_ != nullptr && object_->FindField(name) == nullptr) {
          Error(path, NotAFieldMessage(name, *object_, false));
          continue;
        }
        trigger->fields.push_back(name);
      }
    }
  }

  if (const json* where = Get(value, "where")) {
    RefContext context;
    context.in_trigger = true;
    trigger->where = ParseCondition(*where, "trigger.where", context, 0);
  }

  if (const json* inputs = Get(value, "inputs")) {
    if (known && *trigger_kind_ != TriggerKind::kOnDemand) {
      Error("trigger.inputs", "apply only to on_demand triggers; remove them");
    } else if (!inputs->is_array()) {
      Error("trigger.inputs",
            "must be an array like [{\"name\": \"email\", \"type\": \"text\"}], not " +
                TypeName(*inputs));
    } else if (inputs->size() > kMaxTriggerInputs) {
      Error("trigger.inputs", "must hold at most " + std::to_string(kMaxTriggerInputs) + " inputs");
    } else {
      for (size_t i = 0; i < inputs->size(); ++i) {
        const json& item = (*inputs)[i];
        const std::string path = At("trigger.inputs", i);
        if (!RequireObject(item, path,
                           "{\"name\": \"email\", \"type\": \"text\", \"required\": true}")) {
          continue;
        }
        CheckKeys(item, path, {"name", "type", "required"}, "a trigger input");
        TriggerInput input;
        if (auto name = ReadString(item, "name", Key(path, "name"), true)) {
          input.name = *name;
          if (!IsName(*name)) {
            Error(Key(path, "name"), Quote(*name) +
                                         " is not a valid input name; use letters, "
                                         "digits and _ (e.g. \"email\")");
          } else if (trigger_inputs_.count(*name) > 0) {
            Error(Key(path, "name"),
                  Quote(*name) + " is declared twice; input names must be unique");
          }
        }
        if (auto type = ReadString(item, "type", Key(path, "type"), false)) {
          if (*type != "text" && *type != "number" && *type != "boolean" && *type != "json") {
            Error(Key(path, "type"), Quote(*type) +
                                         " is not an input type; use text, number, "
                                         "boolean or json");
          } else {
            input.type = *type;
          }
        }
        if (auto required = ReadBool(item, "required", Key(path, "required")))
          input.required = *required;
        if (!input.name.empty() && trigger_inputs_.count(input.name) == 0) {
          trigger_inputs_[input.name] = input.type;
        }
        trigger->inputs.push_back(std::move(input));
      }
    }
  }

  if (known && *trigger_kind_ == TriggerKind::kSchedule) {
    if (Get(value, "every_seconds") == nullptr) {
      Error("trigger.every_seconds",
            "is required for a schedule trigger: seconds between runs, at "
            "least 60 (e.g. 3600 for hourly)");
    } else if (auto every = ReadInt(value, "every_seconds", "trigger.every_seconds",
                                    kMinScheduleSeconds, kMaxScheduleSeconds, "seconds")) {
      trigger->every_seconds = *every;
    }
  } else if (known && Get(value, "every_seconds") != nullptr) {
    Error("trigger.every_seconds", "applies only to schedule triggers; remove it");
  }
}

void SpecParser::ParseSettings(const json& value, AutomationSettings* settings) {
  CheckKeys(value, "settings", {"max_concurrency", "alert_webhook", "alert_secret"}, "settings");
  if (auto max = ReadInt(value, "max_concurrency", "settings.max_concurrency", 1, kMaxConcurrency,
                         "runs")) {
    settings->max_concurrency = static_cast<int>(*max);
  }
  if (auto url = ReadString(value, "alert_webhook", "settings.alert_webhook", false)) {
    if (!IsHttpUrl(*url)) {
      Error("settings.alert_webhook", "must be an http:// or https:// URL with a host");
    }
    settings->alert_webhook = *url;
  }
  if (auto secret = ReadString(value, "alert_secret", "settings.alert_secret", false)) {
    if (secret->size() > kMaxSecretChars) {
      Error("settings.alert_secret",
            "must be at most " + std::to_string(kMaxSecretChars) + " characters");
    }
    settings->alert_secret = *secret;
  }
}

std::optional<Condition> SpecParser::ParseCondition(const json& value, const std::string& path,
                                                    const RefContext& context, int depth) {
  if (depth > kMaxConditionDepth) {
    Error(path, "is nested more than " + std::to_string(kMaxConditionDepth) +
                    " levels deep; simplify the condition");
    return std::nullopt;
  }
  if (!value.is_object()) {
    Error(path,
          "must be a condition such as {\"left\": \"{record.priority}\", \"op\": \"eq\", "
          "\"right\": \"High\"}, {\"all\": [...]}, {\"any\": [...]} or {\"not\": {...}}, not " +
              TypeName(value));
    return std::nullopt;
  }
  Condition condition;
  if (value.contains("all") || value.contains("any")) {
    const std::string key = value.contains("all") ? "all" : "any";
    condition.kind = key == "all" ? Condition::Kind::kAll : Condition::Kind::kAny;
    CheckKeys(value, path, {key}, "an \"" + key + "\" condition (one key, holding a list)");
    const json& list = value.at(key);
    if (!list.is_array() || list.empty()) {
      Error(Key(path, key), "must be a non-empty array of conditions");
      return condition;
    }
    for (size_t i = 0; i < list.size(); ++i) {
      if (auto child = ParseCondition(list[i], At(Key(path, key), i), context, depth + 1)) {
        condition.children.push_back(std::move(*child));
      }
    }
    return condition;
  }
  if (value.contains("not")) {
    condition.kind = Condition::Kind::kNot;
    CheckKeys(value, path, {"not"}, "a \"not\" condition (one key, holding one condition)");
    if (auto child = ParseCondition(value.at("not"), Key(path, "not"), context, depth + 1)) {
      condition.children.push_back(std::move(*child));
    }
    return condition;
  }
  condition.kind = Condition::Kind::kCompare;
  if (value.contains("field")) {
    // Shorthand: in a search's where the field is the candidate's, elsewhere
    // the record's.
    CheckKeys(value, path, {"field", "op", "value"}, "a shorthand condition");
    const domain::ObjectSchema* object = context.in_search ? context.candidate : object_;
    if (auto field = ReadString(value, "field", Key(path, "field"), true)) {
      if (!IsBuiltinRecordField(*field) && object != nullptr &&
          object->FindField(*field) == nullptr) {
        Error(Key(path, "field"), NotAFieldMessage(*field, *object, true));
      } else if (!IsName(*field)) {
        Error(Key(path, "field"), Quote(*field) + " is not a field name");
      } else {
        condition.left =
            "{" + std::string(context.in_search ? "candidate." : "record.") + *field + "}";
      }
    }
    ParseComparisonTail(value, path, "value", context, &condition);
    return condition;
  }
  CheckKeys(value, path, {"left", "op", "right"}, "a comparison");
  if (auto left = ReadString(value, "left", Key(path, "left"), true,
                             "the text to compare, e.g. \"{record.priority}\"")) {
    condition.left = *left;
    Template(Key(path, "left"), *left, context);
  }
  ParseComparisonTail(value, path, "right", context, &condition);
  return condition;
}

void SpecParser::ParseComparisonTail(const json& value, const std::string& path,
                                     std::string_view right_key, const RefContext& context,
                                     Condition* condition) {
  const std::string right_path = Key(path, right_key);
  std::optional<std::string> op = ReadString(
      value, "op", Key(path, "op"), true,
      "eq, ne, gt, gte, lt, lte, contains, not_contains, in, not_in, is_empty or is_not_empty");
  if (op && !IsKnownConditionOp(*op)) {
    Error(Key(path, "op"), Quote(*op) +
                               " is not an operator; use eq, ne, gt, gte, lt, lte, "
                               "contains, not_contains, in, not_in, is_empty or is_not_empty");
    op.reset();
  }
  const json* right = Get(value, right_key);
  if (right != nullptr) condition->right = *right;
  if (!op) return;
  condition->op = *op;
  if (*op == "is_empty" || *op == "is_not_empty") {
    if (right != nullptr) Error(right_path, "is not used with " + *op + "; remove it");
    return;
  }
  if (*op == "in" || *op == "not_in") {
    if (right == nullptr) {
      Error(right_path,
            "is required: the list of values for " + *op + ", e.g. [\"High\", \"Critical\"]");
    } else if (!right->is_array()) {
      Error(right_path, "must be an array for " + *op + ", e.g. [\"High\", \"Critical\"], not " +
                            TypeName(*right));
    } else {
      for (size_t i = 0; i < right->size(); ++i) {
        const json& item = (*right)[i];
        if (item.is_string()) {
          Template(At(right_path, i), item.get<std::string>(), context);
        } else if (!item.is_number() && !item.is_boolean()) {
          Error(At(right_path, i), "must be text, a number or a boolean, not " + TypeName(item));
        }
      }
    }
    return;
  }
  if (right == nullptr) {
    Error(right_path, "is required for " + *op +
                          " (the value to compare with); use is_empty to test "
                          "for a missing value");
  } else if (right->is_string()) {
    Template(right_path, right->get<std::string>(), context);
  } else if (!right->is_number() && !right->is_boolean()) {
    Error(right_path, "must be text, a number or a boolean for " + *op + ", not " +
                          TypeName(*right) + "; use in / not_in to compare with a list");
  }
}

void SpecParser::ParseSteps(const json& value, const std::string& path, int depth,
                            const std::vector<BranchPos>& branches, std::vector<Step>* out) {
  for (size_t i = 0; i < value.size(); ++i) {
    if (auto step = ParseStep(value[i], At(path, i), depth, branches))
      out->push_back(std::move(*step));
  }
}

std::optional<Step> SpecParser::ParseStep(const json& value, const std::string& path, int depth,
                                          const std::vector<BranchPos>& branches) {
  const int order = step_count_++;
  // Past the limit only counting matters (reported once by Parse).
  if (order >= kMaxSteps) return std::nullopt;
  if (!value.is_object()) {
    Error(path,
          "must be a step object like {\"id\": \"analyse\", \"type\": \"run_agent_task\", ...}, "
          "not " +
              TypeName(value));
    return std::nullopt;
  }
  Step step;
  step.raw = value;
  bool registered = false;
  if (auto id = ReadString(value, "id", Key(path, "id"), true, "a step id such as \"analyse\"")) {
    step.id = *id;
    auto existing = steps_.find(*id);
    if (!IsStepId(*id)) {
      Error(Key(path, "id"), Quote(*id) +
                                 " is not a valid step id; use 1-40 lower-case letters, "
                                 "digits and _, starting with a letter (e.g. \"analyse\")");
    } else if (existing != steps_.end()) {
      Error(Key(path, "id"),
            Quote(*id) + " is already the id of " + existing->second.path +
                "; step ids must be unique in the automation (nested steps included)");
    } else {
      // Registered before the body so nested steps cannot reuse the id.
      StepInfo info;
      info.path = path;
      info.order = order;
      info.branches = branches;
      steps_.emplace(*id, std::move(info));
      registered = true;
    }
  }
  std::optional<StepKind> kind;
  if (auto type = ReadString(value, "type", Key(path, "type"), true, StepKindList())) {
    kind = ParseStepKind(*type);
    if (!kind)
      Error(Key(path, "type"), Quote(*type) + " is not a step type; use " + StepKindList());
  }
  if (!kind) return std::nullopt;
  step.kind = *kind;

  RefContext context;
  context.order = order;
  context.branches = branches;
  // A duplicate id is not this step's: references to it mean the first one.
  context.self_id = registered ? step.id : std::string();

  switch (step.kind) {
    case StepKind::kRunAgentTask:
    case StepKind::kAiPrompt:
      ParseModelStep(value, path, context, &step);
      break;
    case StepKind::kSearchRecords:
      ParseSearch(value, path, context, &step);
      break;
    case StepKind::kCreateRecord: {
      CheckKeys(value, path, {"id", "type", "object", "values"}, "a create_record step");
      const domain::ObjectSchema* target =
          ReadObjectRef(value, Key(path, "object"), true, &step.object);
      ParseValues(Get(value, "values"), Key(path, "values"), target, context, /*creating=*/true,
                  &step);
      break;
    }
    case StepKind::kUpdateRecord: {
      CheckKeys(value, path, {"id", "type", "record", "object", "values"}, "an update_record step");
      if (auto record = ReadString(value, "record", Key(path, "record"), false)) {
        if (Trim(*record).empty()) {
          Error(Key(path, "record"), "must not be empty; remove it to update the trigger record");
        }
        step.record = *record;
        Template(Key(path, "record"), *record, context);
      }
      const domain::ObjectSchema* target = object_;
      step.object = object_ != nullptr ? object_->object.api_name : std::string();
      if (Get(value, "object") != nullptr) {
        target = ReadObjectRef(value, Key(path, "object"), false, &step.object);
      }
      ParseValues(Get(value, "values"), Key(path, "values"), target, context, /*creating=*/false,
                  &step);
      break;
    }
    case StepKind::kIf:
      ParseIf(value, path, context, depth, &step);
      break;
    case StepKind::kEscalateReview: {
      CheckKeys(value, path, {"id", "type", "reason", "proposed"}, "an escalate_review step");
      if (auto reason = ReadString(value, "reason", Key(path, "reason"), false)) {
        step.reason = *reason;
        Template(Key(path, "reason"), *reason, context);
      }
      if (const json* proposed = Get(value, "proposed")) {
        const std::string proposed_path = Key(path, "proposed");
        if (RequireObject(*proposed, proposed_path,
                          "{\"suggested_response\": \"{steps.analyse.response}\"}")) {
          for (const auto& [name, item] : proposed->items()) {
            const std::string item_path = Key(proposed_path, name);
            bool reserved = false;
            for (std::string_view output : kReviewOutputs) reserved = reserved || name == output;
            if (!IsName(name)) {
              Error(item_path,
                    "is not a valid name; use letters, digits and _ (e.g. "
                    "\"suggested_response\")");
            } else if (reserved) {
              Error(item_path,
                    "is an output every review has (decision, reviewer, comment); "
                    "choose another name");
            }
            TemplatesIn(item, item_path, context, 0);
            step.proposed[name] = item;
          }
        }
      }
      break;
    }
    case StepKind::kSendNotification: {
      CheckKeys(value, path, {"id", "type", "url", "secret", "body", "options"},
                "a send_notification step");
      if (auto url =
              ReadString(value, "url", Key(path, "url"), true, "the http(s) URL to post to")) {
        if (!IsHttpUrl(*url)) {
          Error(Key(path, "url"),
                "must be an http:// or https:// URL with a literal host (other "
                "schemes are not allowed; references may appear only in the path "
                "or query)");
        }
        step.url = *url;
        Template(Key(path, "url"), *url, context);
      }
      if (auto secret = ReadString(value, "secret", Key(path, "secret"), false)) {
        if (secret->size() > kMaxSecretChars) {
          Error(Key(path, "secret"),
                "must be at most " + std::to_string(kMaxSecretChars) + " characters");
        }
        step.secret = *secret;
      }
      if (const json* body = Get(value, "body")) {
        TemplatesIn(*body, Key(path, "body"), context, 0);
        step.body = *body;
      }
      if (const json* options = Get(value, "options"))
        ParseOptions(*options, Key(path, "options"), &step);
      break;
    }
  }

  if (registered) {
    StepInfo& info = steps_[step.id];
    info.known = true;
    info.kind = step.kind;
    info.outputs = step.OutputNames();
  }
  return step;
}

void SpecParser::ParseModelStep(const json& value, const std::string& path,
                                const RefContext& context, Step* step) {
  const bool agent = step->kind == StepKind::kRunAgentTask;
  if (agent) {
    CheckKeys(
        value, path,
        {"id", "type", "agent", "task", "inputs", "output", "map", "return_control", "options"},
        "a run_agent_task step");
    if (auto id = ReadString(value, "agent", Key(path, "agent"), true,
                             "the id (agt_...) of an agent connected to this app")) {
      step->agent_id = *id;
      if (env_.agents.count(*id) == 0) {
        std::vector<std::string> known;
        for (const auto& [agent_id, name] : env_.agents)
          known.push_back(agent_id + " (" + name + ")");
        Error(Key(path, "agent"),
              Quote(*id) + " is not an agent connected to this app; " +
                  (known.empty() ? std::string("connect one in App Intelligence first")
                                 : "use one of " + Join(known)));
      }
    }
  } else {
    CheckKeys(value, path,
              {"id", "type", "service", "prompt", "system", "output", "map", "options"},
              "an ai_prompt step");
    if (auto id = ReadString(value, "service", Key(path, "service"), true,
                             "the id (svc_...) of an AI service")) {
      step->service_id = *id;
      if (env_.services.count(*id) == 0) {
        std::vector<std::string> known;
        for (const auto& [service_id, name] : env_.services)
          known.push_back(service_id + " (" + name + ")");
        Error(Key(path, "service"),
              Quote(*id) + " is not an AI service of this organization; " +
                  (known.empty() ? std::string("create one under AI Services first")
                                 : "use one of " + Join(known)));
      }
    }
    if (auto system = ReadString(value, "system", Key(path, "system"), false)) {
      step->system = *system;
      Template(Key(path, "system"), *system, context);
    }
  }
  const char* text_key = agent ? "task" : "prompt";
  if (auto text = ReadString(value, text_key, Key(path, text_key), true,
                             agent ? "what the agent should do, with references like "
                                     "{record.description}"
                                   : "the prompt, with references like {record.description}")) {
    if (Trim(*text).empty()) Error(Key(path, text_key), "must not be empty");
    step->task = *text;
    Template(Key(path, text_key), *text, context);
  }
  if (agent) {
    if (const json* inputs = Get(value, "inputs")) {
      const std::string inputs_path = Key(path, "inputs");
      if (RequireObject(*inputs, inputs_path, "{\"customer_inquiry\": \"{record.description}\"}")) {
        for (const auto& [name, item] : inputs->items()) {
          const std::string item_path = Key(inputs_path, name);
          if (!IsName(name)) {
            Error(item_path, "is not a valid input name; use letters, digits and _");
          }
          if (!item.is_string()) {
            Error(item_path, "must be a text with references, not " + TypeName(item));
            continue;
          }
          step->inputs.emplace_back(name, item.get<std::string>());
          Template(item_path, item.get<std::string>(), context);
        }
      }
    }
  }
  ParseOutput(Get(value, "output"), Key(path, "output"), step);
  if (const json* map = Get(value, "map")) ParseMap(*map, Key(path, "map"), step);
  if (agent) {
    if (const json* controls = Get(value, "return_control")) {
      const std::string controls_path = Key(path, "return_control");
      if (RequireObject(*controls, controls_path,
                        "{\"orders/lookup_order\": \"Order {control.order_id} is shipped\"}")) {
        RefContext reply_context = context;
        reply_context.allow_control = true;
        for (const auto& [name, item] : controls->items()) {
          const std::string item_path = Key(controls_path, name);
          const size_t slash = name.find('/');
          if (slash == std::string::npos || !IsControlName(name.substr(0, slash)) ||
              (!IsControlName(name.substr(slash + 1)) && !IsApiOperationName(name.substr(slash + 1)))) {
            Error(item_path,
                  "must be named \"<actionGroup>/<function>\" (letters, digits, _ and -), e.g. "
                  "\"orders/lookup_order\", or for an API-schema action group \"<actionGroup>/<METHOD> "
                  "<apiPath>\", e.g. \"assets/POST /assets/{assetId}/repairs\"");
          }
          if (!item.is_string()) {
            Error(item_path, "must be the reply text, not " + TypeName(item));
            continue;
          }
          step->return_control[name] = item.get<std::string>();
          Template(item_path, item.get<std::string>(), reply_context);
        }
      }
    }
  }
  if (const json* options = Get(value, "options"))
    ParseOptions(*options, Key(path, "options"), step);
}

void SpecParser::ParseSearch(const json& value, const std::string& path, const RefContext& context,
                             Step* step) {
  CheckKeys(value, path, {"id", "type", "object", "where", "sort", "limit"},
            "a search_records step");
  const domain::ObjectSchema* searched =
      ReadObjectRef(value, Key(path, "object"), true, &step->object);
  if (const json* where = Get(value, "where")) {
    RefContext where_context = context;
    where_context.in_search = true;
    where_context.candidate = searched;
    step->where = ParseCondition(*where, Key(path, "where"), where_context, 0);
  }
  if (auto sort = ReadString(value, "sort", Key(path, "sort"), false)) {
    std::string_view name = *sort;
    if (!name.empty() && name.front() == '-') name.remove_prefix(1);
    if (name != "created_at" && name != "updated_at" && searched != nullptr) {
      const domain::Field* field = searched->FindField(name);
      if (field == nullptr) {
        Error(Key(path, "sort"), Quote(name) + " is not a field of " + searched->object.api_name +
                                     "; sort by created_at, updated_at or one of: " +
                                     FieldNames(*searched) + " (prefix - for descending)");
      } else if (!domain::FieldTypeIsFilterable(field->type)) {
        Error(Key(path, "sort"), Quote(name) + " is a json field and cannot be sorted by");
      }
    }
    step->sort = *sort;
  }
  if (auto limit = ReadInt(value, "limit", Key(path, "limit"), 1, kMaxSearchLimit, "records")) {
    step->limit = static_cast<int>(*limit);
  }
}

void SpecParser::ParseIf(const json& value, const std::string& path, const RefContext& context,
                         int depth, Step* step) {
  CheckKeys(value, path, {"id", "type", "branches", "otherwise"}, "an if step");
  if (depth >= kMaxIfNesting) {
    Error(path, "is nested inside more than " + std::to_string(kMaxIfNesting) +
                    " if steps; flatten the logic with all/any conditions");
    return;
  }
  const json* branches = Get(value, "branches");
  const std::string branches_path = Key(path, "branches");
  size_t branch_count = 0;
  if (branches == nullptr) {
    Error(branches_path, "is required: [{\"when\": <condition>, \"steps\": [...]}, ...]");
  } else if (!branches->is_array() || branches->empty()) {
    Error(branches_path, "must be a non-empty array of {\"when\": <condition>, \"steps\": [...]}");
  } else if (branches->size() > kMaxBranches) {
    Error(branches_path, "must hold at most " + std::to_string(kMaxBranches) + " branches");
  } else {
    branch_count = branches->size();
    for (size_t i = 0; i < branches->size(); ++i) {
      const json& item = (*branches)[i];
      const std::string branch_path = At(branches_path, i);
      if (!RequireObject(item, branch_path, "{\"when\": <condition>, \"steps\": [...]}")) continue;
      CheckKeys(item, branch_path, {"when", "steps"}, "a branch");
      Step::Branch branch;
      if (const json* when = Get(item, "when")) {
        if (auto condition = ParseCondition(*when, Key(branch_path, "when"), context, 0)) {
          branch.when = std::move(*condition);
        }
      } else {
        Error(Key(branch_path, "when"), "is required: the condition that selects this branch");
      }
      const json* steps = Get(item, "steps");
      if (steps == nullptr || !steps->is_array()) {
        Error(Key(branch_path, "steps"), "must be an array of steps (it may be empty)");
      } else {
        std::vector<BranchPos> inner = context.branches;
        inner.push_back(BranchPos{step->id, i});
        ParseSteps(*steps, Key(branch_path, "steps"), depth + 1, inner, &branch.steps);
      }
      step->branches.push_back(std::move(branch));
    }
  }
  if (const json* otherwise = Get(value, "otherwise")) {
    if (!otherwise->is_array()) {
      Error(Key(path, "otherwise"), "must be an array of steps, not " + TypeName(*otherwise));
    } else {
      std::vector<BranchPos> inner = context.branches;
      inner.push_back(BranchPos{step->id, branch_count});
      ParseSteps(*otherwise, Key(path, "otherwise"), depth + 1, inner, &step->otherwise);
    }
  }
}

void SpecParser::ParseOutput(const json* value, const std::string& path, Step* step) {
  if (value == nullptr) return;  // text
  if (!RequireObject(*value, path,
                     "{\"type\": \"text\"} or {\"type\": \"structured\", \"fields\": [...]}")) {
    return;
  }
  CheckKeys(*value, path, {"type", "fields"}, "an output");
  std::optional<std::string> type =
      ReadString(*value, "type", Key(path, "type"), true, "text or structured");
  const json* fields = Get(*value, "fields");
  if (type && *type != "text" && *type != "structured") {
    Error(Key(path, "type"), Quote(*type) + " is not an output type; use text or structured");
    return;
  }
  if (!type || *type == "text") {
    if (type && fields != nullptr) {
      Error(Key(path, "fields"),
            "apply only to structured output; remove them or set type to structured");
    }
    return;
  }
  step->output.structured = true;
  const std::string fields_path = Key(path, "fields");
  if (fields == nullptr || !fields->is_array() || fields->empty()) {
    Error(fields_path,
          "must be a non-empty array of fields like [{\"name\": \"category\", \"type\": "
          "\"enum\", \"values\": [\"FAQ\", \"Standard\"]}]");
    return;
  }
  if (fields->size() > kMaxOutputFields) {
    Error(fields_path, "must hold at most " + std::to_string(kMaxOutputFields) + " fields");
    return;
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < fields->size(); ++i) {
    const std::string field_path = At(fields_path, i);
    std::optional<OutputField> field = ParseOutputField((*fields)[i], field_path);
    if (!field) continue;
    if (!seen.insert(field->name).second) {
      Error(Key(field_path, "name"),
            Quote(field->name) + " is declared twice; field names must be unique");
      continue;
    }
    step->output.fields.push_back(std::move(*field));
  }
}

std::optional<OutputField> SpecParser::ParseOutputField(const json& value,
                                                        const std::string& path) {
  if (!RequireObject(value, path, "{\"name\": \"category\", \"type\": \"text\"}"))
    return std::nullopt;
  CheckKeys(value, path, {"name", "type", "values", "description", "default"}, "an output field");
  OutputField field;
  bool ok = true;
  if (auto name = ReadString(value, "name", Key(path, "name"), true)) {
    field.name = *name;
    if (!IsName(*name)) {
      Error(Key(path, "name"), Quote(*name) +
                                   " is not a valid field name; use letters, digits and _ "
                                   "(e.g. \"category\")");
      ok = false;
    } else if (*name == "text" || *name == "session_id") {
      Error(Key(path, "name"), Quote(*name) +
                                   " is already an output of every agent and prompt step; "
                                   "choose another name");
      ok = false;
    }
  } else {
    ok = false;
  }
  bool type_known = false;
  if (auto type =
          ReadString(value, "type", Key(path, "type"), true, "text, number, boolean or enum")) {
    type_known = true;
    if (*type == "text") {
      field.type = OutputField::Type::kText;
    } else if (*type == "number") {
      field.type = OutputField::Type::kNumber;
    } else if (*type == "boolean") {
      field.type = OutputField::Type::kBoolean;
    } else if (*type == "enum") {
      field.type = OutputField::Type::kEnum;
    } else {
      Error(Key(path, "type"),
            Quote(*type) + " is not a field type; use text, number, boolean or enum");
      type_known = false;
    }
  }
  const json* values = Get(value, "values");
  const std::string values_path = Key(path, "values");
  if (type_known && field.type == OutputField::Type::kEnum) {
    if (values == nullptr || !values->is_array() || values->empty()) {
      Error(values_path,
            "must list at least one value for an enum field, e.g. [\"FAQ\", \"Standard\"]");
      type_known = false;
    } else if (values->size() > kMaxEnumValues) {
      Error(values_path, "must hold at most " + std::to_string(kMaxEnumValues) + " values");
      type_known = false;
    } else {
      std::set<std::string> folded;
      for (size_t i = 0; i < values->size(); ++i) {
        const json& item = (*values)[i];
        if (!item.is_string() || Trim(item.get<std::string>()).empty()) {
          Error(At(values_path, i), "must be a non-empty text");
          continue;
        }
        std::string lower = item.get<std::string>();
        for (char& c : lower) {
          if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        }
        if (!folded.insert(lower).second) {
          Error(At(values_path, i), Quote(item.get<std::string>()) +
                                        " is listed twice (values match "
                                        "without regard to case)");
          continue;
        }
        field.values.push_back(item.get<std::string>());
      }
    }
  } else if (values != nullptr && type_known) {
    Error(values_path, "apply only to enum fields; remove them or set type to enum");
  }
  if (auto description = ReadString(value, "description", Key(path, "description"), false)) {
    if (Utf8Length(*description) > kMaxDescriptionChars) {
      Error(Key(path, "description"),
            "must be at most " + std::to_string(kMaxDescriptionChars) + " characters");
    }
    field.description = *description;
  }
  if (const json* def = Get(value, "default")) {
    const std::string default_path = Key(path, "default");
    if (type_known) {
      switch (field.type) {
        case OutputField::Type::kText:
          if (!def->is_string())
            Error(default_path, "must be a text for a text field, not " + TypeName(*def));
          break;
        case OutputField::Type::kNumber:
          if (!def->is_number()) {
            Error(default_path, "must be a number for a number field, not " + TypeName(*def));
          }
          break;
        case OutputField::Type::kBoolean:
          if (!def->is_boolean()) {
            Error(default_path, "must be true or false for a boolean field, not " + TypeName(*def));
          }
          break;
        case OutputField::Type::kEnum: {
          bool found = false;
          for (const std::string& allowed : field.values)
            found = found || (def->is_string() && *def == allowed);
          if (!found)
            Error(default_path, "must be one of the field's values: " + Join(field.values));
          break;
        }
      }
    }
    field.default_value = *def;
  }
  if (!ok) return std::nullopt;
  return field;
}

void SpecParser::ParseMap(const json& value, const std::string& path, Step* step) {
  if (!RequireObject(value, path, "{\"category\": \"record.inquiry_category\"}")) return;
  const std::vector<std::string> outputs = step->OutputNames();
  for (const auto& [output, target] : value.items()) {
    const std::string item_path = Key(path, output);
    bool is_output = false;
    for (const std::string& name : outputs) is_output = is_output || name == output;
    if (!is_output) {
      Error(item_path,
            Quote(output) + " is not an output of this step (its outputs: " + Join(outputs) + ")");
      continue;
    }
    if (!target.is_string()) {
      Error(item_path,
            "must name a record field like \"record.category\", not " + TypeName(target));
      continue;
    }
    std::string_view field = target.get_ref<const std::string&>();
    if (field.substr(0, 7) == "record.") field.remove_prefix(7);
    if (object_ == nullptr) continue;
    if (IsBuiltinRecordField(field)) {
      Error(item_path, "record." + std::string(field) + " cannot be written; map onto one of " +
                           object_->object.api_name + "'s fields: " + FieldNames(*object_));
      continue;
    }
    if (object_->FindField(field) == nullptr) {
      Error(item_path, NotAFieldMessage(field, *object_, false) + "; write \"record.<field>\"");
      continue;
    }
    step->map[output] = std::string(field);
  }
}

void SpecParser::CheckDefault(const json& value, const std::string& path, const Step& step,
                              const std::string& output) {
  for (const OutputField& field : step.output.fields) {
    if (field.name != output) continue;
    bool ok = true;
    switch (field.type) {
      case OutputField::Type::kText:
        ok = value.is_string();
        break;
      case OutputField::Type::kNumber:
        ok = value.is_number();
        break;
      case OutputField::Type::kBoolean:
        ok = value.is_boolean();
        break;
      case OutputField::Type::kEnum:
        ok = false;
        for (const std::string& allowed : field.values)
          ok = ok || (value.is_string() && value == allowed);
        if (!ok) Error(path, "must be one of " + Join(field.values));
        return;
    }
    if (!ok) {
      const char* wanted = field.type == OutputField::Type::kBoolean  ? "true or false"
                           : field.type == OutputField::Type::kNumber ? "a number"
                                                                      : "a text";
      Error(path, std::string("must be ") + wanted + " like the field, not " + TypeName(value));
    }
    return;
  }
  if (output == "status") {
    if (!value.is_number())
      Error(path, "must be a number (an HTTP status), not " + TypeName(value));
  } else if (!value.is_string()) {
    Error(path, "must be a text, not " + TypeName(value));
  }
}

void SpecParser::ParseOptions(const json& value, const std::string& path, Step* step) {
  if (!RequireObject(value, path, "{\"timeout_ms\": 60000, \"on_error\": \"halt\"}")) return;
  CheckKeys(value, path, {"timeout_ms", "retry", "on_error", "defaults", "cache"},
            "execution options");
  ExecutionOptions& options = step->options;
  if (auto timeout = ReadInt(value, "timeout_ms", Key(path, "timeout_ms"), kMinTimeoutMs,
                             kMaxTimeoutMs, "milliseconds")) {
    options.timeout_ms = *timeout;
  }
  if (const json* retry = Get(value, "retry")) {
    const std::string retry_path = Key(path, "retry");
    if (RequireObject(*retry, retry_path,
                      "{\"max_attempts\": 3, \"base_ms\": 500, \"cap_ms\": 20000}")) {
      CheckKeys(*retry, retry_path, {"max_attempts", "base_ms", "cap_ms", "jitter", "retry_on"},
                "a retry policy");
      RetryPolicy& policy = options.retry;
      if (auto attempts = ReadInt(*retry, "max_attempts", Key(retry_path, "max_attempts"), 1,
                                  kMaxRetryAttempts, "attempts (1 means no retry)")) {
        policy.max_attempts = static_cast<int>(*attempts);
      }
      if (auto base = ReadInt(*retry, "base_ms", Key(retry_path, "base_ms"), 1, kMaxRetryDelayMs,
                              "milliseconds")) {
        policy.base_ms = *base;
      }
      if (auto cap = ReadInt(*retry, "cap_ms", Key(retry_path, "cap_ms"), 1, kMaxRetryDelayMs,
                             "milliseconds")) {
        policy.cap_ms = *cap;
      }
      if (policy.cap_ms < policy.base_ms) {
        Error(Key(retry_path, "cap_ms"), "must be at least base_ms (" +
                                             std::to_string(policy.base_ms) +
                                             "): it caps the growing delay between attempts");
      }
      if (auto jitter = ReadBool(*retry, "jitter", Key(retry_path, "jitter")))
        policy.jitter = *jitter;
      if (const json* retry_on = Get(*retry, "retry_on")) {
        const std::string on_path = Key(retry_path, "retry_on");
        if (!retry_on->is_array()) {
          Error(on_path,
                "must be an array of error classes (throttling, transient, timeout), not " +
                    TypeName(*retry_on));
        } else {
          policy.retry_on.clear();
          for (size_t i = 0; i < retry_on->size(); ++i) {
            const json& item = (*retry_on)[i];
            if (!item.is_string() || !IsKnownErrorClass(item.get<std::string>())) {
              Error(At(on_path, i),
                    (item.is_string() ? Quote(item.get<std::string>()) : TypeName(item)) +
                        " is not an error class; use throttling, transient or timeout");
              continue;
            }
            policy.retry_on.push_back(item.get<std::string>());
          }
        }
      }
    }
  }
  if (auto on_error = ReadString(value, "on_error", Key(path, "on_error"), false)) {
    if (*on_error == "halt") {
      options.on_error = OnError::kHalt;
    } else if (*on_error == "continue") {
      options.on_error = OnError::kContinue;
    } else if (*on_error == "review") {
      options.on_error = OnError::kReview;
    } else {
      Error(Key(path, "on_error"), Quote(*on_error) +
                                       " is not an error policy; use halt (halt and "
                                       "alert), continue (with default values) or "
                                       "review (escalate to human review)");
    }
  }
  if (const json* defaults = Get(value, "defaults")) {
    const std::string defaults_path = Key(path, "defaults");
    if (RequireObject(*defaults, defaults_path, "{\"category\": \"Standard\"}")) {
      const std::vector<std::string> outputs = step->OutputNames();
      for (const auto& [name, item] : defaults->items()) {
        bool is_output = false;
        for (const std::string& output : outputs) is_output = is_output || output == name;
        if (!is_output) {
          Error(
              Key(defaults_path, name),
              Quote(name) + " is not an output of this step (its outputs: " + Join(outputs) + ")");
          continue;
        }
        CheckDefault(item, Key(defaults_path, name), *step, name);
      }
      options.defaults = *defaults;
    }
  }
  if (const json* cache = Get(value, "cache")) {
    const std::string cache_path = Key(path, "cache");
    if (RequireObject(*cache, cache_path, "{\"enabled\": true, \"ttl_seconds\": 300}")) {
      CheckKeys(*cache, cache_path, {"enabled", "ttl_seconds"}, "cache options");
      if (auto enabled = ReadBool(*cache, "enabled", Key(cache_path, "enabled"))) {
        options.cache_enabled = *enabled;
      }
      if (auto ttl = ReadInt(*cache, "ttl_seconds", Key(cache_path, "ttl_seconds"), 1,
                             kMaxCacheTtlSeconds, "seconds")) {
        options.cache_ttl_seconds = *ttl;
      }
    }
  }
}

// Whether no string inside `value` holds a reference (so it can be checked
// against the field now).
bool IsLiteral(const json& value) {
  if (value.is_string()) {
    auto refs = ParseReferences(value.get_ref<const std::string&>());
    return refs.ok() && refs->empty();
  }
  if (value.is_array() || value.is_object()) {
    for (const json& item : value) {
      if (!IsLiteral(item)) return false;
    }
  }
  return true;
}

void SpecParser::ParseValues(const json* value, const std::string& path,
                             const domain::ObjectSchema* target, const RefContext& context,
                             bool creating, Step* step) {
  if (value == nullptr) {
    Error(path, creating
                    ? "is required: the new record's values, e.g. {\"title\": \"{record.title}\"}"
                    : "is required: the fields to change, e.g. {\"status\": \"Resolved\"}");
    return;
  }
  if (!RequireObject(*value, path, "{\"title\": \"{record.title}\"}")) return;
  if (!creating && value->empty()) {
    Error(path, "must name at least one field to change");
    return;
  }
  for (const auto& [name, item] : value->items()) {
    const std::string item_path = Key(path, name);
    TemplatesIn(item, item_path, context, 0);
    step->values[name] = item;
    if (target == nullptr) continue;
    const domain::Field* field = target->FindField(name);
    if (field == nullptr) {
      if (IsBuiltinRecordField(name)) {
        Error(item_path, "is set by Quarry and cannot be written; set one of " +
                             target->object.api_name + "'s fields: " + FieldNames(*target));
      } else {
        Error(item_path, NotAFieldMessage(name, *target, false));
      }
      continue;
    }
    if (item.is_null() || !IsLiteral(item)) continue;
    auto rendered = RenderValue(item, Scope{});
    if (!rendered.ok()) continue;
    json normalized;
    std::string error;
    if (!domain::NormalizeFieldValue(*field, *rendered, &normalized, &error)) {
      Error(item_path, error + " (" + target->object.api_name + "." + name + " is a " +
                           std::string(domain::FieldTypeName(field->type)) + " field)");
    }
  }
  if (creating && target != nullptr) {
    std::vector<std::string> missing;
    for (const domain::Field& field : target->fields) {
      if (!field.required || !field.default_value.is_null()) continue;
      const json* given = Get(*value, field.api_name);
      if (given == nullptr) missing.push_back(field.api_name);
    }
    if (!missing.empty()) {
      Error(path, "has no value for the required field(s) " + Join(missing) + " of " +
                      target->object.api_name + "; add them");
    }
  }
}

void SpecParser::ValidateTemplate(const PendingTemplate& pending) {
  auto refs = ParseReferences(pending.text);
  if (!refs.ok()) {
    Error(pending.path, refs.status().message());
    return;
  }
  std::vector<std::string> problems;
  for (const Reference& ref : *refs) CheckReference(ref, pending.context, &problems);
  if (problems.empty()) return;
  std::string message;
  for (const std::string& problem : problems) {
    if (!message.empty()) message += "; ";
    message += problem;
  }
  Error(pending.path, message);
}

void SpecParser::CheckFieldPath(const domain::ObjectSchema* object, const Reference& ref,
                                size_t start, std::vector<std::string>* problems) {
  if (object == nullptr) return;
  const std::string& name = ref.path[start];
  const bool deeper = ref.path.size() > start + 1;
  if (IsBuiltinRecordField(name)) {
    if (deeper) problems->push_back(ref.text + ": " + name + " has no members");
    return;
  }
  const domain::Field* field = object->FindField(name);
  if (field == nullptr) {
    problems->push_back(ref.text + ": " + NotAFieldMessage(name, *object, true));
    return;
  }
  if (deeper && field->type != domain::FieldType::kJson) {
    problems->push_back(ref.text + ": " + Quote(name) + " is a " +
                        std::string(domain::FieldTypeName(field->type)) +
                        " field and has no members; write {" + ref.path[0] + "." +
                        (start == 2 ? ref.path[1] + "." : std::string()) + name + "}");
  }
}

void SpecParser::CheckReference(const Reference& ref, const RefContext& context,
                                std::vector<std::string>* problems) {
  const std::vector<std::string>& path = ref.path;
  const std::string& root = path[0];
  auto fail = [&](const std::string& why) { problems->push_back(ref.text + ": " + why); };

  if (root == "record") {
    if (path.size() < 2) return fail("name a field, e.g. {record.description}");
    return CheckFieldPath(object_, ref, 1, problems);
  }
  if (root == "trigger") {
    if (path.size() < 2) {
      return fail(
          "name a part: trigger.kind, trigger.changed_fields, trigger.before.<field> or "
          "trigger.inputs.<name>");
    }
    const std::string& part = path[1];
    if (part == "kind") {
      if (path.size() > 2) fail("trigger.kind has no members");
      return;
    }
    if (part == "changed_fields" || part == "before") {
      if (trigger_kind_ && *trigger_kind_ != TriggerKind::kRecordUpdated) {
        return fail("trigger." + part + " exists only for record_updated triggers");
      }
      if (part == "changed_fields") {
        if (path.size() > 2) fail("write {trigger.changed_fields} (a list of field names)");
        return;
      }
      if (path.size() < 3) return fail("name a field, e.g. {trigger.before.status}");
      return CheckFieldPath(object_, ref, 2, problems);
    }
    if (part == "inputs") {
      if (trigger_kind_ && *trigger_kind_ != TriggerKind::kOnDemand) {
        return fail("trigger inputs exist only for on_demand triggers");
      }
      if (path.size() < 3) return fail("name an input, e.g. {trigger.inputs.email}");
      auto it = trigger_inputs_.find(path[2]);
      if (it == trigger_inputs_.end()) {
        std::vector<std::string> names;
        for (const auto& [name, type] : trigger_inputs_) names.push_back(name);
        return fail("the trigger declares no input " + Quote(path[2]) +
                    " (its inputs: " + Join(names) + "); declare it under trigger.inputs");
      }
      if (path.size() > 3 && it->second != "json")
        fail("input " + Quote(path[2]) + " has no members");
      return;
    }
    return fail("unknown trigger value " + Quote(part) +
                "; use trigger.kind, trigger.changed_fields, trigger.before.<field> or "
                "trigger.inputs.<name>");
  }
  if (root == "steps") {
    if (path.size() < 3) return fail("write {steps.<id>.<output>}, e.g. {steps.analyse.text}");
    const std::string& id = path[1];
    auto it = steps_.find(id);
    if (it == steps_.end()) {
      std::vector<std::string> ids;
      for (const auto& [step_id, info] : steps_) ids.push_back(step_id);
      return fail("no step has the id " + Quote(id) + " (step ids: " + Join(ids) + ")");
    }
    const StepInfo& info = it->second;
    if (id == context.self_id) {
      return fail(
          "is this step's own output; a step can only use outputs of steps that run before it");
    }
    if (context.in_trigger) {
      return fail(
          "no step has run when the trigger's where is checked; use {record.*} or "
          "{trigger.*} values");
    }
    if (info.order > context.order) {
      return fail("step " + Quote(id) + " runs later (" + info.path +
                  "); only steps that run before this point can be referenced");
    }
    for (const BranchPos& theirs : info.branches) {
      for (const BranchPos& ours : context.branches) {
        if (theirs.if_id == ours.if_id && theirs.branch != ours.branch) {
          return fail("step " + Quote(id) + " is in another branch of if " + Quote(theirs.if_id) +
                      ", so it never runs in the same run as this step");
        }
      }
    }
    if (!info.known) return;
    const std::string& output = path[2];
    bool found = false;
    for (const std::string& name : info.outputs) found = found || name == output;
    if (!found) {
      if (info.outputs.empty()) {
        return fail("step " + Quote(id) +
                    " is an if step and has no outputs; refer to the steps in "
                    "its branches");
      }
      return fail("step " + Quote(id) + " has no output " + Quote(output) +
                  " (its outputs: " + Join(info.outputs) + ")");
    }
    if (path.size() > 3) {
      bool reserved = false;
      for (std::string_view name : kReviewOutputs) reserved = reserved || output == name;
      const bool structured = (info.kind == StepKind::kSearchRecords && output == "records") ||
                              (info.kind == StepKind::kEscalateReview && !reserved);
      if (!structured) {
        fail("output " + Quote(output) + " has no members; write {steps." + id + "." + output +
             "}");
      }
    }
    return;
  }
  if (root == "control") {
    if (!context.allow_control)
      return fail("{control.*} values exist only in return_control replies");
    if (path.size() != 2) fail("write {control.<parameter>}");
    return;
  }
  if (root == "candidate") {
    if (!context.in_search)
      return fail("{candidate.*} values exist only in a search_records step's where");
    if (path.size() < 2) return fail("name a field, e.g. {candidate.email}");
    return CheckFieldPath(context.candidate, ref, 1, problems);
  }
  fail(
      "unknown reference; references start with record., trigger., steps., control. "
      "(return_control "
      "replies) or candidate. (search where)");
}

void Emit(const std::vector<Step>& steps, std::vector<Instruction>* out) {
  for (const Step& step : steps) {
    Instruction instruction;
    instruction.step = &step;
    if (step.kind != StepKind::kIf) {
      instruction.kind = Instruction::Kind::kStep;
      out->push_back(std::move(instruction));
      continue;
    }
    instruction.kind = Instruction::Kind::kBranch;
    const size_t branch_at = out->size();
    out->push_back(std::move(instruction));
    std::vector<int> targets;
    std::vector<size_t> jumps;
    for (const Step::Branch& branch : step.branches) {
      targets.push_back(static_cast<int>(out->size()));
      Emit(branch.steps, out);
      jumps.push_back(out->size());
      Instruction jump;
      jump.kind = Instruction::Kind::kJump;
      out->push_back(std::move(jump));
    }
    targets.push_back(static_cast<int>(out->size()));
    Emit(step.otherwise, out);
    const int after = static_cast<int>(out->size());
    for (size_t jump : jumps) (*out)[jump].target = after;
    (*out)[branch_at].branch_targets = std::move(targets);
  }
}

const Step* FindIn(const std::vector<Step>& steps, std::string_view id) {
  for (const Step& step : steps) {
    if (step.id == id) return &step;
    for (const Step::Branch& branch : step.branches) {
      if (const Step* found = FindIn(branch.steps, id)) return found;
    }
    if (const Step* found = FindIn(step.otherwise, id)) return found;
  }
  return nullptr;
}

}  // namespace

std::string_view TriggerKindName(TriggerKind kind) {
  switch (kind) {
    case TriggerKind::kRecordCreated:
      return "record_created";
    case TriggerKind::kRecordUpdated:
      return "record_updated";
    case TriggerKind::kOnDemand:
      return "on_demand";
    case TriggerKind::kSchedule:
      return "schedule";
  }
  return "unknown";
}

std::string_view StepKindName(StepKind kind) {
  switch (kind) {
    case StepKind::kRunAgentTask:
      return "run_agent_task";
    case StepKind::kAiPrompt:
      return "ai_prompt";
    case StepKind::kSearchRecords:
      return "search_records";
    case StepKind::kCreateRecord:
      return "create_record";
    case StepKind::kUpdateRecord:
      return "update_record";
    case StepKind::kIf:
      return "if";
    case StepKind::kEscalateReview:
      return "escalate_review";
    case StepKind::kSendNotification:
      return "send_notification";
  }
  return "unknown";
}

std::string_view OutputFieldTypeName(OutputField::Type type) {
  switch (type) {
    case OutputField::Type::kText:
      return "text";
    case OutputField::Type::kNumber:
      return "number";
    case OutputField::Type::kBoolean:
      return "boolean";
    case OutputField::Type::kEnum:
      return "enum";
  }
  return "unknown";
}

std::string_view OnErrorName(OnError on_error) {
  switch (on_error) {
    case OnError::kHalt:
      return "halt";
    case OnError::kContinue:
      return "continue";
    case OnError::kReview:
      return "review";
  }
  return "unknown";
}

bool IsKnownErrorClass(std::string_view name) {
  for (std::string_view known : kErrorClasses) {
    if (name == known) return true;
  }
  return false;
}

std::vector<std::string> Step::OutputNames() const {
  std::vector<std::string> names;
  switch (kind) {
    case StepKind::kRunAgentTask:
    case StepKind::kAiPrompt:
      names = {"text", "session_id"};
      for (const OutputField& field : output.fields) names.push_back(field.name);
      break;
    case StepKind::kSearchRecords:
      names = {"count", "records", "text"};
      break;
    case StepKind::kCreateRecord:
      names = {"id", "handle"};
      break;
    case StepKind::kUpdateRecord:
      names = {"id", "version"};
      break;
    case StepKind::kIf:
      break;
    case StepKind::kEscalateReview:
      names = {"decision", "reviewer", "comment"};
      for (const auto& [name, value] : proposed) names.push_back(name);
      break;
    case StepKind::kSendNotification:
      names = {"status", "delivery_id"};
      break;
  }
  return names;
}

const Step* AutomationSpec::FindStep(std::string_view id) const { return FindIn(steps, id); }

Result<AutomationSpec> ParseAutomationSpec(const json& definition, const SpecEnvironment& env,
                                           FieldErrors* errors) {
  if (env.app == nullptr) {
    return InternalError("automation validation needs the app's schema; none was given");
  }
  FieldErrors found;
  AutomationSpec spec;
  if (!definition.is_object()) {
    found.Add("definition", "must be a JSON object with name, object, trigger and steps, not " +
                                TypeName(definition));
  } else {
    const size_t bytes = definition.dump(-1, ' ', false, json::error_handler_t::replace).size();
    if (bytes > kMaxDefinitionBytes) {
      found.Add("definition", "is " + std::to_string(bytes) + " bytes; at most " +
                                  std::to_string(kMaxDefinitionBytes) +
                                  " are allowed: shorten the texts or split the automation");
    } else {
      SpecParser(env, &found).Parse(definition, &spec);
    }
  }
  if (found.empty()) return spec;

  std::string message = "the automation definition has " + std::to_string(found.size()) +
                        (found.size() == 1 ? " problem: " : " problems: ");
  size_t shown = 0;
  for (const auto& [path, text] : found.by_name()) {
    if (errors != nullptr) errors->Add(path, text);
    if (shown < kMaxSummarized) {
      if (shown > 0) message += "; ";
      message += path + " " + text;
    }
    ++shown;
  }
  if (shown > kMaxSummarized)
    message += "; and " + std::to_string(shown - kMaxSummarized) + " more";
  return InvalidArgumentError(message);
}

Program CompileProgram(std::shared_ptr<const AutomationSpec> spec) {
  Program program;
  program.spec = std::move(spec);
  if (program.spec != nullptr) Emit(program.spec->steps, &program.instructions);
  Instruction end;
  end.kind = Instruction::Kind::kEnd;
  program.instructions.push_back(std::move(end));
  return program;
}

}  // namespace quarry::engine
