#include "engine/expressions.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <utility>

namespace quarry::engine {
namespace {

using nlohmann::json;

// How much of a template an error message quotes.
constexpr size_t kFragmentChars = 40;
// Arrays and objects handed to RenderValue come from saved definitions, which
// validation bounds; this only keeps a hostile value from exhausting the stack.
constexpr int kMaxRenderDepth = 64;

bool IsSegmentChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

std::string Fragment(std::string_view text, size_t offset) {
  std::string out(text.substr(offset, kFragmentChars));
  if (text.size() - offset > kFragmentChars) out += "...";
  return out;
}

Status TemplateError(std::string_view text, size_t offset, const std::string& what) {
  return InvalidArgumentError(what + " at offset " + std::to_string(offset) + " (\"" +
                              Fragment(text, offset) + "\"); write {{ and }} for literal braces");
}

// Walks a template once: literal text (with "{{" and "}}" already turned into
// single braces) goes to `literal`, each reference to `reference`. Nothing a
// callback produces is scanned again, which is what makes rendering safe
// against values that look like references.
template <typename Literal, typename OnReference>
Status Scan(std::string_view text, Literal&& literal, OnReference&& reference) {
  size_t i = 0;
  size_t run_start = 0;
  auto flush = [&](size_t end) {
    if (end > run_start) literal(text.substr(run_start, end - run_start));
  };
  while (i < text.size()) {
    const char c = text[i];
    if (c == '}') {
      if (i + 1 < text.size() && text[i + 1] == '}') {
        flush(i);
        literal("}");
        i += 2;
        run_start = i;
        continue;
      }
      return TemplateError(text, i, "stray \"}\"");
    }
    if (c != '{') {
      ++i;
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '{') {
      flush(i);
      literal("{");
      i += 2;
      run_start = i;
      continue;
    }
    const size_t close = text.find('}', i + 1);
    if (close == std::string_view::npos) return TemplateError(text, i, "unclosed \"{\"");
    const std::string_view body = text.substr(i + 1, close - i - 1);
    if (body.empty()) return TemplateError(text, i, "empty reference \"{}\"");
    Reference ref;
    ref.offset = i;
    ref.text = std::string(text.substr(i, close - i + 1));
    size_t start = 0;
    while (true) {
      const size_t dot = body.find('.', start);
      const std::string_view segment =
          body.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
      bool valid = !segment.empty();
      for (char s : segment) valid = valid && IsSegmentChar(s);
      if (!valid) {
        return TemplateError(text, i,
                             "reference " + ref.text + " has an invalid part \"" +
                                 std::string(segment) +
                                 "\" (parts are letters, digits and _ joined by dots)");
      }
      ref.path.emplace_back(segment);
      if (dot == std::string_view::npos) break;
      start = dot + 1;
    }
    flush(i);
    reference(std::move(ref));
    i = close + 1;
    run_start = i;
  }
  flush(text.size());
  return Status::Ok();
}

char LowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = LowerAscii(c);
  return out;
}

std::string_view Trim(std::string_view text) {
  const auto is_space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

// A decimal number as people and models write it: optional sign, digits with
// an optional fraction, optional exponent. No hex, inf or nan.
std::optional<double> ParseNumber(std::string_view raw) {
  std::string_view text = Trim(raw);
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  size_t i = 0;
  if (i < text.size() && text[i] == '-') ++i;
  size_t digits = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i, ++digits;
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i, ++digits;
  }
  if (digits == 0) return std::nullopt;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
    size_t exponent_digits = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i, ++exponent_digits;
    if (exponent_digits == 0) return std::nullopt;
  }
  if (i != text.size()) return std::nullopt;
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
    return std::nullopt;
  }
  return value;
}

const json* Root(const Scope& scope, std::string_view name) {
  if (name == "record") return &scope.record;
  if (name == "trigger") return &scope.trigger;
  if (name == "steps") return &scope.steps;
  if (name == "control") return &scope.control;
  if (name == "candidate") return &scope.candidate;
  return nullptr;
}

Result<json> RenderValueAt(const json& value, const Scope& scope, int depth) {
  if (depth > kMaxRenderDepth) {
    return InvalidArgumentError("value is nested more than " + std::to_string(kMaxRenderDepth) +
                                " levels deep; flatten it");
  }
  if (value.is_string()) {
    const std::string& text = value.get_ref<const std::string&>();
    QUARRY_ASSIGN_OR_RETURN(std::vector<Reference> refs, ParseReferences(text));
    if (refs.size() == 1 && refs[0].offset == 0 && refs[0].text.size() == text.size()) {
      return Resolve(scope, refs[0]);
    }
    if (refs.empty() && text.find('{') == std::string::npos &&
        text.find('}') == std::string::npos) {
      return value;
    }
    QUARRY_ASSIGN_OR_RETURN(std::string rendered, Render(text, scope));
    return json(std::move(rendered));
  }
  if (value.is_array()) {
    json out = json::array();
    for (const json& item : value) {
      QUARRY_ASSIGN_OR_RETURN(json rendered, RenderValueAt(item, scope, depth + 1));
      out.push_back(std::move(rendered));
    }
    return out;
  }
  if (value.is_object()) {
    json out = json::object();
    for (const auto& [key, item] : value.items()) {
      QUARRY_ASSIGN_OR_RETURN(json rendered, RenderValueAt(item, scope, depth + 1));
      out[key] = std::move(rendered);
    }
    return out;
  }
  return value;
}

bool IsEmptyValue(const json& value) {
  if (value.is_null()) return true;
  if (value.is_string()) return Trim(value.get_ref<const std::string&>()).empty();
  if (value.is_array() || value.is_object()) return value.empty();
  return false;
}

// eq for two texts: numerically when both are numbers, else case-insensitive.
bool TextEquals(std::string_view a, std::string_view b) {
  const std::optional<double> x = ParseNumber(a);
  const std::optional<double> y = ParseNumber(b);
  if (x && y) return *x == *y;
  return Lower(a) == Lower(b);
}

// <0, 0, >0: numerically when both are numbers, else byte-wise text.
int Order(std::string_view a, std::string_view b) {
  const std::optional<double> x = ParseNumber(a);
  const std::optional<double> y = ParseNumber(b);
  if (x && y) return *x < *y ? -1 : (*x > *y ? 1 : 0);
  const int c = a.compare(b);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

// "contains": an array (e.g. trigger.changed_fields) holds an element equal to
// the needle; anything else contains it as case-insensitive text.
bool Contains(const json& haystack, const std::string& needle) {
  if (haystack.is_array()) {
    for (const json& item : haystack) {
      if (TextEquals(ValueToText(item), needle)) return true;
    }
    return false;
  }
  return Lower(ValueToText(haystack)).find(Lower(needle)) != std::string::npos;
}

Result<bool> EvaluateCompare(const Condition& condition, const Scope& scope) {
  const std::string& op = condition.op;
  if (!IsKnownConditionOp(op)) {
    return InvalidArgumentError("unknown condition operator \"" + op +
                                "\"; use eq, ne, gt, gte, lt, lte, contains, not_contains, in, "
                                "not_in, is_empty or is_not_empty");
  }
  QUARRY_ASSIGN_OR_RETURN(json left, RenderValue(json(condition.left), scope));
  if (op == "is_empty") return IsEmptyValue(left);
  if (op == "is_not_empty") return !IsEmptyValue(left);
  const std::string left_text = ValueToText(left);
  if (op == "in" || op == "not_in") {
    if (!condition.right.is_array()) {
      return InvalidArgumentError("operator " + op + " needs an array on the right");
    }
    bool found = false;
    for (const json& item : condition.right) {
      QUARRY_ASSIGN_OR_RETURN(json rendered, RenderValue(item, scope));
      if (TextEquals(left_text, ValueToText(rendered))) {
        found = true;
        break;
      }
    }
    return op == "in" ? found : !found;
  }
  QUARRY_ASSIGN_OR_RETURN(json right, RenderValue(condition.right, scope));
  const std::string right_text = ValueToText(right);
  if (op == "eq") return TextEquals(left_text, right_text);
  if (op == "ne") return !TextEquals(left_text, right_text);
  if (op == "contains") return Contains(left, right_text);
  if (op == "not_contains") return !Contains(left, right_text);
  const int order = Order(left_text, right_text);
  if (op == "gt") return order > 0;
  if (op == "gte") return order >= 0;
  if (op == "lt") return order < 0;
  return order <= 0;  // lte
}

Result<bool> EvaluateAt(const Condition& condition, const Scope& scope, int depth) {
  if (depth > kMaxRenderDepth) {
    return InvalidArgumentError("condition is nested more than " + std::to_string(kMaxRenderDepth) +
                                " levels deep");
  }
  switch (condition.kind) {
    case Condition::Kind::kAll:
      for (const Condition& child : condition.children) {
        QUARRY_ASSIGN_OR_RETURN(bool value, EvaluateAt(child, scope, depth + 1));
        if (!value) return false;
      }
      return true;
    case Condition::Kind::kAny:
      for (const Condition& child : condition.children) {
        QUARRY_ASSIGN_OR_RETURN(bool value, EvaluateAt(child, scope, depth + 1));
        if (value) return true;
      }
      return false;
    case Condition::Kind::kNot: {
      if (condition.children.size() != 1) {
        return InvalidArgumentError("a \"not\" condition needs exactly one condition inside");
      }
      QUARRY_ASSIGN_OR_RETURN(bool value, EvaluateAt(condition.children[0], scope, depth + 1));
      return !value;
    }
    case Condition::Kind::kCompare:
      return EvaluateCompare(condition, scope);
  }
  return InvalidArgumentError("unknown condition kind");
}

}  // namespace

Result<std::vector<Reference>> ParseReferences(std::string_view text) {
  std::vector<Reference> refs;
  QUARRY_RETURN_IF_ERROR(Scan(
      text, [](std::string_view) {}, [&](Reference ref) { refs.push_back(std::move(ref)); }));
  return refs;
}

json Resolve(const Scope& scope, const Reference& reference) {
  if (reference.path.empty()) return nullptr;
  const json* node = Root(scope, reference.path[0]);
  if (node == nullptr) return nullptr;
  for (size_t i = 1; i < reference.path.size(); ++i) {
    const std::string& segment = reference.path[i];
    if (node->is_object()) {
      auto it = node->find(segment);
      if (it == node->end()) return nullptr;
      node = &*it;
    } else if (node->is_array()) {
      size_t index = 0;
      const auto [end, ec] =
          std::from_chars(segment.data(), segment.data() + segment.size(), index);
      if (ec != std::errc() || end != segment.data() + segment.size() || index >= node->size()) {
        return nullptr;
      }
      node = &(*node)[index];
    } else {
      return nullptr;
    }
  }
  return *node;
}

Result<std::string> Render(std::string_view text, const Scope& scope) {
  std::string out;
  out.reserve(text.size());
  QUARRY_RETURN_IF_ERROR(Scan(
      text, [&](std::string_view literal) { out.append(literal); },
      [&](Reference ref) { out += ValueToText(Resolve(scope, ref)); }));
  return out;
}

Result<json> RenderValue(const json& value, const Scope& scope) {
  return RenderValueAt(value, scope, 0);
}

std::string ValueToText(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
    case json::value_t::discarded:
      return "";
    case json::value_t::string:
      return value.get<std::string>();
    case json::value_t::boolean:
      return value.get<bool>() ? "true" : "false";
    case json::value_t::number_integer:
      return std::to_string(value.get<int64_t>());
    case json::value_t::number_unsigned:
      return std::to_string(value.get<uint64_t>());
    case json::value_t::number_float: {
      const double d = value.get<double>();
      // Whole numbers print without ".0" (3, not 3.0); 2^53 keeps the cast exact.
      if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) < 9007199254740992.0) {
        return std::to_string(static_cast<int64_t>(d));
      }
      return value.dump();  // shortest form that reads back the same
    }
    default:
      return value.dump(-1, ' ', false, json::error_handler_t::replace);
  }
}

Result<bool> Evaluate(const Condition& condition, const Scope& scope) {
  return EvaluateAt(condition, scope, 0);
}

bool IsKnownConditionOp(std::string_view op) {
  static constexpr std::string_view kOps[] = {"eq", "ne",     "gt",       "gte",
                                              "lt", "lte",    "contains", "not_contains",
                                              "in", "not_in", "is_empty", "is_not_empty"};
  for (std::string_view known : kOps) {
    if (op == known) return true;
  }
  return false;
}

}  // namespace quarry::engine
