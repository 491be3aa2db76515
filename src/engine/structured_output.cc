#include "engine/structured_output.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <utility>

#include "engine/expressions.h"

namespace quarry::engine {
namespace {

using nlohmann::json;

// Bounds the search for an object in a long answer full of stray braces.
constexpr int kMaxCandidates = 64;
// How much of a bad value a problem quotes.
constexpr size_t kMaxQuotedChars = 60;

std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string_view Trim(std::string_view text) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

// `got "high"`, `got an array`, ... for problem messages.
std::string Got(const json& value) {
  if (value.is_array()) return "got an array";
  if (value.is_object()) return "got an object";
  std::string text = Dump(value);
  if (text.size() > kMaxQuotedChars) text = text.substr(0, kMaxQuotedChars) + "...";
  return "got " + text;
}

std::string JoinValues(const std::vector<std::string>& values) {
  std::string out;
  for (const std::string& value : values) {
    if (!out.empty()) out += ", ";
    out += value;
  }
  return out;
}

std::optional<json> ParseObject(std::string_view text) {
  json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) return std::nullopt;
  return parsed;
}

// The end (one past the '}') of the balanced {...} starting at `open`, with
// braces inside JSON strings ignored; npos when it never closes.
size_t MatchBrace(std::string_view text, size_t open) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = open; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{') {
      ++depth;
    } else if (c == '}') {
      if (--depth == 0) return i + 1;
    }
  }
  return std::string_view::npos;
}

// The first top-level {...} of `text` that parses as a JSON object.
std::optional<json> FirstObject(std::string_view text) {
  size_t pos = text.find('{');
  int tried = 0;
  while (pos != std::string_view::npos && tried++ < kMaxCandidates) {
    const size_t end = MatchBrace(text, pos);
    if (end == std::string_view::npos) {
      pos = text.find('{', pos + 1);
      continue;
    }
    if (auto parsed = ParseObject(text.substr(pos, end - pos))) return parsed;
    pos = text.find('{', end);
  }
  return std::nullopt;
}

// The object an answer holds: the whole answer, a ```json fence, or the first
// object in prose (see the header).
std::optional<json> ExtractObject(std::string_view answer) {
  if (auto whole = ParseObject(Trim(answer))) return whole;
  size_t fence = answer.find("```");
  while (fence != std::string_view::npos) {
    const size_t line_end = answer.find('\n', fence + 3);
    if (line_end == std::string_view::npos) break;
    const size_t close = answer.find("```", line_end + 1);
    if (close == std::string_view::npos) break;
    const std::string_view body = answer.substr(line_end + 1, close - line_end - 1);
    if (auto parsed = ParseObject(Trim(body))) return parsed;
    if (auto inner = FirstObject(body)) return inner;
    fence = answer.find("```", close + 3);
  }
  return FirstObject(answer);
}

std::optional<json> NumberFromText(std::string_view raw) {
  std::string_view text = Trim(raw);
  if (text.empty()) return std::nullopt;
  // Integers stay integers ("3" -> 3), everything else is a double.
  int64_t integer = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), integer);
  if (ec == std::errc() && end == text.data() + text.size()) return json(integer);
  // from_chars takes no leading '+'; models do write "+0.5" now and then.
  if (text.front() == '+') text.remove_prefix(1);
  double value = 0;
  auto [dend, dec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (dec != std::errc() || dend != text.data() + text.size() || !std::isfinite(value)) {
    return std::nullopt;
  }
  // from_chars also reads "inf"/"nan" and hex-free forms like ".5"; reject words.
  for (char c : text) {
    if ((c >= 'a' && c <= 'z' && c != 'e') || (c >= 'A' && c <= 'Z' && c != 'E')) {
      return std::nullopt;
    }
  }
  return json(value);
}

// One value against one field; the value in its declared form, or a problem
// that completes "<name>: ...".
bool Coerce(const OutputField& field, const json& value, json* out, std::string* problem) {
  switch (field.type) {
    case OutputField::Type::kText:
      if (value.is_string()) {
        *out = value;
        return true;
      }
      if (value.is_number() || value.is_boolean()) {
        *out = ValueToText(value);
        return true;
      }
      *problem = "expected text, " + Got(value);
      return false;
    case OutputField::Type::kNumber:
      if (value.is_number()) {
        *out = value;
        return true;
      }
      if (value.is_string()) {
        if (auto number = NumberFromText(value.get_ref<const std::string&>())) {
          *out = std::move(*number);
          return true;
        }
      }
      *problem = "expected a number, " + Got(value);
      return false;
    case OutputField::Type::kBoolean:
      if (value.is_boolean()) {
        *out = value;
        return true;
      }
      if (value.is_string()) {
        const std::string text = Lower(Trim(value.get_ref<const std::string&>()));
        if (text == "true" || text == "false") {
          *out = text == "true";
          return true;
        }
      }
      *problem = "expected true or false, " + Got(value);
      return false;
    case OutputField::Type::kEnum: {
      if (value.is_string() || value.is_number() || value.is_boolean()) {
        const std::string wanted = Lower(Trim(ValueToText(value)));
        for (const std::string& allowed : field.values) {
          if (Lower(allowed) == wanted) {
            *out = allowed;
            return true;
          }
        }
        std::string shown = Dump(value);
        if (shown.size() > kMaxQuotedChars) shown = shown.substr(0, kMaxQuotedChars) + "...";
        *problem = shown + " is not one of " + JoinValues(field.values);
        return false;
      }
      *problem = "expected one of " + JoinValues(field.values) + ", " + Got(value);
      return false;
    }
  }
  *problem = "has an unknown type";
  return false;
}

std::string_view SchemaType(OutputField::Type type) {
  switch (type) {
    case OutputField::Type::kNumber:
      return "number";
    case OutputField::Type::kBoolean:
      return "boolean";
    case OutputField::Type::kText:
    case OutputField::Type::kEnum:
      break;
  }
  return "string";
}

// A description on one line, so the instructions keep one line per field.
std::string OneLine(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return out;
}

}  // namespace

json OutputJsonSchema(const std::vector<OutputField>& fields) {
  json properties = json::object();
  json required = json::array();
  for (const OutputField& field : fields) {
    json property = {{"type", SchemaType(field.type)}};
    if (field.type == OutputField::Type::kEnum) property["enum"] = field.values;
    if (!field.description.empty()) property["description"] = field.description;
    properties[field.name] = std::move(property);
    if (!field.default_value.has_value()) required.push_back(field.name);
  }
  return {
      {"type", "object"}, {"properties", std::move(properties)}, {"required", std::move(required)}};
}

std::string StructuredAnswerInstructions(const std::vector<OutputField>& fields) {
  std::string out =
      "Answer with only one JSON object that matches the schema below: no prose, no "
      "explanation and no code fence before or after it.\nFields:\n";
  for (const OutputField& field : fields) {
    out += "- " + field.name + " (";
    if (field.type == OutputField::Type::kEnum) {
      out += "exactly one of: " + JoinValues(field.values);
    } else if (field.type == OutputField::Type::kNumber) {
      out += "a number";
    } else if (field.type == OutputField::Type::kBoolean) {
      out += "true or false";
    } else {
      out += "text";
    }
    out += field.default_value.has_value() ? ", optional)" : ", required)";
    if (!field.description.empty()) out += ": " + OneLine(field.description);
    out += "\n";
  }
  out += "JSON schema: " + Dump(OutputJsonSchema(fields));
  return out;
}

Result<json> ParseStructuredAnswer(std::string_view answer,
                                   const std::vector<OutputField>& fields) {
  std::optional<json> object = ExtractObject(answer);
  if (!object) {
    return InvalidArgumentError(
        "no JSON object in the answer; it must be one JSON object with the fields " + [&] {
          std::vector<std::string> names;
          for (const OutputField& field : fields) names.push_back(field.name);
          return JoinValues(names);
        }());
  }
  return ValidateStructuredValues(*object, fields);
}

Result<json> ValidateStructuredValues(const json& values, const std::vector<OutputField>& fields) {
  if (!values.is_object()) {
    return InvalidArgumentError("the answer must be a JSON object, " + Got(values));
  }
  json out = json::object();
  std::vector<std::string> problems;
  for (const OutputField& field : fields) {
    auto it = values.find(field.name);
    if (it == values.end() || it->is_null()) {
      if (field.default_value.has_value()) {
        out[field.name] = *field.default_value;
      } else {
        problems.push_back(field.name + ": missing (it is required)");
      }
      continue;
    }
    json coerced;
    std::string problem;
    if (Coerce(field, *it, &coerced, &problem)) {
      out[field.name] = std::move(coerced);
    } else {
      problems.push_back(field.name + ": " + problem);
    }
  }
  if (!problems.empty()) {
    std::string message = "the answer does not match the declared fields: ";
    for (size_t i = 0; i < problems.size(); ++i) {
      if (i > 0) message += "; ";
      message += problems[i];
    }
    return InvalidArgumentError(message);
  }
  return out;
}

std::string RepairInstructions(std::string_view problem, const std::vector<OutputField>& fields) {
  std::string_view text = Trim(problem);
  while (!text.empty() && text.back() == '.') text.remove_suffix(1);
  return "Your previous answer could not be used: " + std::string(text) + ".\nAnswer again. " +
         StructuredAnswerInstructions(fields);
}

json DefaultOutputValues(const std::vector<OutputField>& fields, const json& overrides) {
  json out = json::object();
  for (const OutputField& field : fields) {
    json value;
    std::string problem;
    if (overrides.is_object()) {
      auto it = overrides.find(field.name);
      if (it != overrides.end() && !it->is_null() && Coerce(field, *it, &value, &problem)) {
        out[field.name] = std::move(value);
        continue;
      }
    }
    if (field.default_value.has_value() && Coerce(field, *field.default_value, &value, &problem)) {
      out[field.name] = std::move(value);
      continue;
    }
    switch (field.type) {
      case OutputField::Type::kText:
        out[field.name] = "";
        break;
      case OutputField::Type::kNumber:
        out[field.name] = 0;
        break;
      case OutputField::Type::kBoolean:
        out[field.name] = false;
        break;
      case OutputField::Type::kEnum:
        out[field.name] = field.values.empty() ? json("") : json(field.values.front());
        break;
    }
  }
  return out;
}

}  // namespace quarry::engine
