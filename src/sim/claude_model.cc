// Implements the emulator's Claude model (see claude_model.h).
//
// Request validation mirrors the two layers Bedrock applies to an Anthropic
// body: a JSON-schema pass (messages worded "Malformed input request: #/path:
// ..., please reformat your input and try again.", several violations joined
// without a separator, as Bedrock does) and then Anthropic's semantic checks
// ("messages: roles must alternate ..."). Converse bodies get the AWS-style
// sentences Bedrock returns for Converse.

#include "sim/claude_model.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "common/encoding.h"
#include "sim/text_words.h"

namespace quarry::sim {
namespace {

using json = nlohmann::json;

constexpr std::string_view kAnthropicVersion = "bedrock-2023-05-31";
// Emulator bound: beyond this many messages the request is rejected rather
// than processed (real requests are bounded by the 20 MB payload limit).
constexpr size_t kMaxMessages = 10000;
constexpr int kCharsPerToken = 4;

// ---------------------------------------------------------------------------
// Small helpers

uint64_t Fnv1a(std::string_view data, uint64_t hash = 1469598103934665603ULL) {
  for (unsigned char c : data) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  return hash;
}

// A stable identifier body of `length` characters from [0-9A-Za-z].
std::string StableIdChars(std::string_view seed, size_t length) {
  static constexpr std::string_view kAlphabet =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string out;
  uint64_t hash = Fnv1a(seed);
  while (out.size() < length) {
    uint64_t h = hash;
    for (int i = 0; i < 8 && out.size() < length; ++i) {
      out.push_back(kAlphabet[h % kAlphabet.size()]);
      h /= kAlphabet.size();
    }
    hash = Fnv1a(out, hash);
  }
  return out;
}

// The JSON type names that Bedrock's schema validator prints.
std::string SchemaTypeName(const json& value) {
  switch (value.type()) {
    case json::value_t::object: return "JSONObject";
    case json::value_t::array: return "JSONArray";
    case json::value_t::string: return "String";
    case json::value_t::boolean: return "Boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "Integer";
    case json::value_t::number_float: return "BigDecimal";
    case json::value_t::null: return "Null";
    default: return "Unknown";
  }
}

std::string FormatNumber(const json& value) {
  if (value.is_number_integer() || value.is_number_unsigned()) return value.dump();
  double d = value.get<double>();
  if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.1f", d);
    return buf;
  }
  return value.dump();
}

bool IsIntegral(const json& value) {
  if (value.is_number_integer() || value.is_number_unsigned()) return true;
  if (value.is_number_float()) {
    double d = value.get<double>();
    return std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 2e9;
  }
  return false;
}

// Lenient accessors for client-supplied JSON (tool schemas in particular):
// nlohmann's value() throws when the member has another type.
std::string StringOr(const json& object, const char* key, std::string fallback) {
  if (object.is_object() && object.contains(key) && object[key].is_string()) return object[key].get<std::string>();
  return fallback;
}

// A non-negative integer member, capped at `cap` so a schema cannot make the
// generator allocate without bound.
size_t SizeOr(const json& object, const char* key, size_t fallback, size_t cap = 1000) {
  if (object.is_object() && object.contains(key) && IsIntegral(object[key]) && object[key].get<double>() >= 0) {
    return std::min(static_cast<size_t>(object[key].get<double>()), cap);
  }
  return fallback;
}

bool IsValidToolName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

// Collects JSON-schema violations and words them as Bedrock does.
class SchemaErrors {
 public:
  void Add(std::string path, std::string message) {
    text_ += path + ": " + message;
    empty_ = false;
  }
  bool empty() const { return empty_; }
  Status ToStatus() const {
    return InvalidArgumentError("Malformed input request: " + text_ +
                                ", please reformat your input and try again.");
  }

 private:
  std::string text_;
  bool empty_ = true;
};

// Checks `value` has type `want` ("object", "array", "string", "integer",
// "number", "boolean"), adding a schema error otherwise.
bool ExpectType(const json& value, std::string_view want, const std::string& path, SchemaErrors& errors) {
  bool ok = false;
  std::string want_name;
  if (want == "object") {
    ok = value.is_object();
    want_name = "JSONObject";
  } else if (want == "array") {
    ok = value.is_array();
    want_name = "JSONArray";
  } else if (want == "string") {
    ok = value.is_string();
    want_name = "String";
  } else if (want == "integer") {
    ok = IsIntegral(value);
    want_name = "Integer";
  } else if (want == "number") {
    ok = value.is_number();
    want_name = "Number";
  } else if (want == "boolean") {
    ok = value.is_boolean();
    want_name = "Boolean";
  }
  if (!ok) errors.Add(path, "expected type: " + want_name + ", found: " + SchemaTypeName(value));
  return ok;
}

void CheckKeys(const json& object, std::initializer_list<std::string_view> required,
               std::initializer_list<std::string_view> optional, const std::string& path,
               SchemaErrors& errors) {
  for (std::string_view key : required) {
    if (!object.contains(std::string(key))) {
      errors.Add(path, "required key [" + std::string(key) + "] not found");
    }
  }
  for (const auto& [key, unused] : object.items()) {
    (void)unused;
    bool known = std::find(required.begin(), required.end(), key) != required.end() ||
                 std::find(optional.begin(), optional.end(), key) != optional.end();
    if (!known) errors.Add(path, "extraneous key [" + key + "] is not permitted");
  }
}

void CheckRange(const json& value, double lo, double hi, const std::string& path, SchemaErrors& errors) {
  double d = value.get<double>();
  char bound[32];
  if (d < lo) {
    std::snprintf(bound, sizeof(bound), "%g", lo);
    errors.Add(path, FormatNumber(value) + " is not greater or equal to " + bound);
  } else if (d > hi) {
    std::snprintf(bound, sizeof(bound), "%g", hi);
    errors.Add(path, FormatNumber(value) + " is not less or equal to " + bound);
  }
}

// ---------------------------------------------------------------------------
// Anthropic content blocks (shared by both request forms after conversion)

void CheckImageSource(const json& block, const std::string& path, SchemaErrors& errors) {
  CheckKeys(block, {"type", "source"}, {"cache_control"}, path, errors);
  if (!block.contains("source") || !ExpectType(block["source"], "object", path + "/source", errors)) return;
  const json& source = block["source"];
  CheckKeys(source, {"type", "media_type", "data"}, {}, path + "/source", errors);
  if (source.contains("type") && source["type"] != "base64") {
    errors.Add(path + "/source/type", source["type"].dump() + " is not a valid enum value");
  }
  if (source.contains("media_type")) {
    static const std::set<std::string> kMedia = {"image/jpeg", "image/png", "image/gif", "image/webp"};
    if (!source["media_type"].is_string() || !kMedia.contains(source["media_type"].get<std::string>())) {
      errors.Add(path + "/source/media_type", source["media_type"].dump() + " is not a valid enum value");
    }
  }
  if (source.contains("data")) ExpectType(source["data"], "string", path + "/source/data", errors);
}

void CheckDocument(const json& block, const std::string& path, SchemaErrors& errors) {
  CheckKeys(block, {"type", "source"}, {"cache_control", "title", "context", "citations"}, path, errors);
  if (!block.contains("source") || !ExpectType(block["source"], "object", path + "/source", errors)) return;
  const json& source = block["source"];
  CheckKeys(source, {"type", "media_type", "data"}, {}, path + "/source", errors);
  if (source.contains("data")) ExpectType(source["data"], "string", path + "/source/data", errors);
}

// Schema pass over one message's content; returns the content normalised to
// an array of blocks.
json CheckContentSchema(const json& content, const std::string& path, SchemaErrors& errors) {
  if (content.is_string()) return json::array({{{"type", "text"}, {"text", content}}});
  if (!content.is_array()) {
    errors.Add(path, "expected type: JSONArray, found: " + SchemaTypeName(content));
    return json::array();
  }
  for (size_t i = 0; i < content.size(); ++i) {
    const json& block = content[i];
    std::string bpath = path + "/" + std::to_string(i);
    if (!ExpectType(block, "object", bpath, errors)) continue;
    if (!block.contains("type")) {
      errors.Add(bpath, "required key [type] not found");
      continue;
    }
    if (!ExpectType(block["type"], "string", bpath + "/type", errors)) continue;
    const std::string type = block["type"].get<std::string>();
    if (type == "text") {
      CheckKeys(block, {"type", "text"}, {"cache_control", "citations"}, bpath, errors);
      if (block.contains("text")) ExpectType(block["text"], "string", bpath + "/text", errors);
    } else if (type == "image") {
      CheckImageSource(block, bpath, errors);
    } else if (type == "document") {
      CheckDocument(block, bpath, errors);
    } else if (type == "tool_use") {
      CheckKeys(block, {"type", "id", "name", "input"}, {"cache_control"}, bpath, errors);
      if (block.contains("id")) ExpectType(block["id"], "string", bpath + "/id", errors);
      if (block.contains("name")) ExpectType(block["name"], "string", bpath + "/name", errors);
      if (block.contains("input")) ExpectType(block["input"], "object", bpath + "/input", errors);
    } else if (type == "tool_result") {
      CheckKeys(block, {"type", "tool_use_id"}, {"content", "is_error", "cache_control"}, bpath, errors);
      if (block.contains("tool_use_id")) ExpectType(block["tool_use_id"], "string", bpath + "/tool_use_id", errors);
      if (block.contains("is_error")) ExpectType(block["is_error"], "boolean", bpath + "/is_error", errors);
      if (block.contains("content") && !block["content"].is_string()) {
        if (ExpectType(block["content"], "array", bpath + "/content", errors)) {
          for (size_t j = 0; j < block["content"].size(); ++j) {
            const json& inner = block["content"][j];
            std::string ipath = bpath + "/content/" + std::to_string(j);
            if (!ExpectType(inner, "object", ipath, errors)) continue;
            std::string itype = StringOr(inner, "type", "");
            if (itype == "text") {
              CheckKeys(inner, {"type", "text"}, {"cache_control"}, ipath, errors);
            } else if (itype == "image") {
              CheckImageSource(inner, ipath, errors);
            } else {
              errors.Add(ipath + "/type", json(itype).dump() + " is not a valid enum value");
            }
          }
        }
      }
    } else if (type == "thinking" || type == "redacted_thinking") {
      // Extended-thinking blocks are passed back by clients as-is; accept them.
    } else {
      errors.Add(bpath + "/type", json(type).dump() + " is not a valid enum value");
    }
  }
  return content;
}

// Text of a tool_result's content, for token counting and answers.
std::string ToolResultText(const json& block) {
  if (!block.contains("content")) return "";
  const json& content = block["content"];
  if (content.is_string()) return content.get<std::string>();
  std::string out;
  if (content.is_array()) {
    for (const json& inner : content) {
      if (inner.is_object() && inner.value("type", "") == "text" && inner.contains("text") &&
          inner["text"].is_string()) {
        if (!out.empty()) out += "\n";
        out += inner["text"].get<std::string>();
      }
    }
  }
  return out;
}

// Anthropic's semantic checks over validated message blocks. `messages` is in
// Anthropic form. Wording follows Anthropic's API errors as Bedrock returns them.
Status CheckConversationAnthropic(const std::vector<std::pair<std::string, json>>& messages) {
  if (messages.front().first != "user") {
    return InvalidArgumentError(
        "messages: first message must use the \"user\" role. Start the conversation with a user message "
        "(put instructions in the top-level \"system\" field).");
  }
  for (size_t i = 1; i < messages.size(); ++i) {
    if (messages[i].first == messages[i - 1].first) {
      return InvalidArgumentError("messages: roles must alternate between \"user\" and \"assistant\", but found multiple \"" +
                                  messages[i].first + "\" roles in a row");
    }
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& [role, blocks] = messages[i];
    bool final_assistant = (i + 1 == messages.size() && role == "assistant");
    if (blocks.empty() && !final_assistant) {
      return InvalidArgumentError("messages." + std::to_string(i) +
                                  ": all messages must have non-empty content except for the optional final "
                                  "assistant message");
    }
    for (size_t j = 0; j < blocks.size(); ++j) {
      const json& block = blocks[j];
      std::string type = block.value("type", "");
      std::string where = "messages." + std::to_string(i) + ".content." + std::to_string(j);
      if (type == "text" && block["text"].get<std::string>().empty() && !final_assistant) {
        return InvalidArgumentError("messages: text content blocks must be non-empty");
      }
      if (type == "tool_use" && role != "assistant") {
        return InvalidArgumentError(where + ": tool_use blocks may only appear in \"assistant\" messages; send tool "
                                            "results back as tool_result blocks in a \"user\" message");
      }
      if (type == "tool_result" && role != "user") {
        return InvalidArgumentError(where + ": tool_result blocks may only appear in \"user\" messages");
      }
      if ((type == "image" || type == "document") && role != "user") {
        return InvalidArgumentError(where + ": " + type + " blocks may only appear in \"user\" messages");
      }
    }
  }
  // Every tool_use must be answered in the next message and every tool_result
  // must answer a tool_use of the previous message.
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& [role, blocks] = messages[i];
    if (role == "assistant") {
      std::vector<std::string> ids;
      for (const json& block : blocks) {
        if (block.value("type", "") == "tool_use") ids.push_back(block["id"].get<std::string>());
      }
      if (ids.empty() || i + 1 == messages.size()) continue;
      std::set<std::string> answered;
      for (const json& block : messages[i + 1].second) {
        if (block.value("type", "") == "tool_result") answered.insert(block["tool_use_id"].get<std::string>());
      }
      std::string missing;
      for (const std::string& id : ids) {
        if (!answered.contains(id)) missing += (missing.empty() ? "" : ", ") + id;
      }
      if (!missing.empty()) {
        return InvalidArgumentError("messages." + std::to_string(i + 1) +
                                    ": `tool_use` ids were found without `tool_result` blocks immediately after: " +
                                    missing +
                                    ". Each `tool_use` block must have a corresponding `tool_result` block in the "
                                    "next message.");
      }
    } else {
      std::set<std::string> offered;
      if (i > 0) {
        for (const json& block : messages[i - 1].second) {
          if (block.value("type", "") == "tool_use") offered.insert(block["id"].get<std::string>());
        }
      }
      for (size_t j = 0; j < blocks.size(); ++j) {
        const json& block = blocks[j];
        if (block.value("type", "") != "tool_result") continue;
        std::string id = block["tool_use_id"].get<std::string>();
        if (!offered.contains(id)) {
          return InvalidArgumentError("messages." + std::to_string(i) + ".content." + std::to_string(j) +
                                      ": unexpected `tool_use_id` found in `tool_result` blocks: " + id +
                                      ". Each `tool_result` block must have a corresponding `tool_use` block in the "
                                      "previous message.");
        }
      }
    }
  }
  return Status();
}

Status CheckToolChoice(const ClaudeRequest& request) {
  if (request.tool_choice == "tool") {
    for (const ClaudeTool& tool : request.tools) {
      if (tool.name == request.tool_choice_name) return Status();
    }
    return InvalidArgumentError("tool_choice: tool \"" + request.tool_choice_name +
                                "\" is not one of the tools in the request. Name one of the offered tools, or use "
                                "{\"type\": \"auto\"}.");
  }
  if (!request.tool_choice.empty() && request.tool_choice != "none" && request.tools.empty()) {
    return InvalidArgumentError("tool_choice may only be specified while providing tools. Add \"tools\" or remove "
                                "\"tool_choice\".");
  }
  return Status();
}

Status CheckUniqueToolNames(const std::vector<ClaudeTool>& tools) {
  std::set<std::string> seen;
  for (const ClaudeTool& tool : tools) {
    if (!seen.insert(tool.name).second) {
      return InvalidArgumentError("tools: Tool names must be unique. The name \"" + tool.name +
                                  "\" is used more than once; rename one of the tools.");
    }
  }
  return Status();
}

// ---------------------------------------------------------------------------
// Token counting: one function for input and output, ~4 characters a token.

int TextTokens(std::string_view text) {
  if (text.empty()) return 0;
  return static_cast<int>((text.size() + kCharsPerToken - 1) / kCharsPerToken);
}

int BlockTokens(const json& block) {
  std::string type = block.value("type", "");
  if (type == "text") return TextTokens(block.value("text", ""));
  if (type == "tool_use") return TextTokens(block.value("name", "")) + TextTokens(block["input"].dump());
  if (type == "tool_result") return TextTokens(ToolResultText(block)) + 1;
  // An image or document is billed by size; a fixed figure keeps it stable.
  if (type == "image" || type == "document") return 256;
  return 0;
}

int InputTokens(const ClaudeRequest& request) {
  int total = TextTokens(request.system);
  for (const auto& [role, blocks] : request.messages) {
    total += 1;  // role marker
    for (const json& block : blocks) total += BlockTokens(block);
  }
  for (const ClaudeTool& tool : request.tools) {
    total += TextTokens(tool.name) + TextTokens(tool.description) + TextTokens(tool.input_schema.dump());
  }
  return std::max(total, 1);
}

int OutputTokens(const json& content) {
  int total = 0;
  for (const json& block : content) total += BlockTokens(block);
  return std::max(total, 1);
}

// ---------------------------------------------------------------------------
// Words and the small lexicon that makes enum choices plausible.


// Splits identifiers such as "ticketCategory" or "is_urgent" into words.
std::vector<std::string> IdentifierWords(std::string_view name) {
  std::string spaced;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (i > 0 && std::isupper(static_cast<unsigned char>(c)) &&
        std::islower(static_cast<unsigned char>(name[i - 1]))) {
      spaced.push_back(' ');
    }
    spaced.push_back(c);
  }
  return LowerCaseWords(spaced);
}

struct LexiconEntry {
  std::string_view concept_word;
  std::vector<std::string_view> cues;
};

const std::vector<LexiconEntry>& Lexicon() {
  // "down" alone is too common ("shuts down", "scroll down") to mean an
  // outage, so the outage cues use the phrases that do.
  static const std::vector<LexiconEntry> kLexicon = {
      {"network",
       {"vpn",    "wifi",    "wi-fi",      "internet", "connection", "connectivity", "connect",
        "dns",    "router",  "ethernet",   "firewall", "proxy",      "bandwidth",    "latency",
        "packet", "drops",   "disconnect", "offline",  "lan",        "wan",          "switch",
        "ping",   "timeout", "network",    "wireless", "hotspot",    "dhcp",         "intranet"}},
      {"hardware",
       {"laptop",   "screen",      "keyboard", "mouse",   "monitor",   "printer", "cracked",
        "broken",   "battery",     "device",   "charger", "dock",      "docking", "disk",
        "headset",  "phone",       "hardware", "fan",     "overheat",  "webcam",  "cable",
        "desktop",  "motherboard", "memory",   "toner",   "projector", "usb",     "trackpad",
        "touchpad", "microphone",  "speakers", "scanner", "spilled",   "hinge"}},
      {"software",
       {"install",  "crash",    "bug",        "error",   "update",  "upgrade", "application",
        "app",      "software", "excel",      "outlook", "word",    "freeze",  "frozen",
        "version",  "patch",    "exception",  "browser", "program", "plugin",  "driver",
        "database", "license",  "teams",      "zoom",    "acrobat", "pdf",     "powerpoint",
        "windows",  "macos",    "salesforce", "jira"}},
      {"access",
       {"password",     "login",        "logon",     "locked", "lockout",      "locked out",
        "access",       "permission",   "account",   "mfa",    "2fa",          "sso",
        "reset",        "credential",   "sign in",   "signin", "authenticat",  "unauthorized",
        "forbidden",    "role",         "privilege", "log in", "admin rights", "badge",
        "shared drive", "shared folder"}},
      {"email",
       {"email", "e-mail", "mail", "mailbox", "inbox", "outlook", "signature", "calendar",
        "attachment", "spam", "phishing", "distribution list", "out of office", "bounce", "smtp",
        "exchange"}},
      {"billing",
       {"invoice", "charge", "billing", "bill", "refund", "payment", "subscription", "price",
        "pricing", "receipt", "credit card", "twice", "overcharg", "paid", "pay", "cost", "fee"}},
      {"critical", {"outage",    "is down",    "are down",     "went down",   "goes down",
                    "down for",  "everyone",   "all users",    "entire",      "production",
                    "emergency", "breach",     "company-wide", "whole",       "nobody",
                    "data loss", "ransomware", "hacked",       "compromised", "all staff"}},
      {"high", {"urgent",         "asap",        "blocked",        "blocking",      "immediately",
                "deadline",       "important",   "cannot work",    "can't work",    "critical",
                "severe",         "today",       "unable to work", "cannot log in", "can't log in",
                "phishing",       "malware",     "virus",          "suspicious",    "stolen",
                "client meeting", "presentation"}},
      {"medium",
       {"intermittent", "sometimes", "slow", "drops", "occasionally", "issue", "problem",
        "degraded"}},
      {"low",
       {"question", "minor", "whenever", "when possible", "nice to have", "cosmetic", "request",
        "how do i", "curious", "typo", "suggestion", "how can i", "how to", "no rush", "would like",
        "is it possible"}},
      {"positive",
       {"thanks", "thank", "great", "love", "happy", "excellent", "awesome", "pleased", "good",
        "appreciate", "wonderful", "fantastic", "helpful", "brilliant", "perfect", "glad",
        "kudos"}},
      {"negative", {"angry",        "terrible",      "frustrated", "awful",    "unhappy",
                    "bad",          "worst",         "annoyed",    "broken",   "disappointed",
                    "unacceptable", "frustrating",   "again",      "still",    "third time",
                    "ridiculous",   "useless",       "annoying",   "fed up",   "nobody can work",
                    "cannot work",  "can't work",    "furious",    "horrible", "hate",
                    "not working",  "nothing works", "waste",      "complain", "outage",
                    "doesn't work", "does not work", "disaster"}},
      {"neutral", {"question", "wondering", "info", "information"}},
      // Customer-inquiry categories (FAQ / Standard / High priority).
      {"faq",
       {"how do i", "how to", "how can i", "where can i", "where do i", "is there",
        "is it possible", "can i", "what is", "what are", "instructions", "guide", "wondering",
        "question", "policy", "opening hours"}},
      {"standard",
       {"order", "delivery", "account", "invoice", "refund", "problem", "issue", "error",
        "not working", "wrong", "cancel", "return", "replacement", "missing", "damaged"}},
      {"priority",
       {"urgent", "asap", "immediately", "legal", "lawyer", "complaint", "complain", "unacceptable",
        "outage", "is down", "emergency", "security", "breach", "fraud", "third time", "furious",
        "escalate", "manager"}},
      {"escalation",
       {"urgent", "outage", "is down", "are down", "everyone", "critical", "asap", "immediately",
        "legal", "security", "breach", "escalate", "manager", "complaint"}},
      {"escalate",
       {"urgent", "outage", "is down", "are down", "everyone", "critical", "asap", "immediately",
        "legal", "security", "breach", "manager", "complaint"}},
      {"urgent",
       {"urgent", "asap", "immediately", "outage", "is down", "are down", "emergency", "critical"}},
  };
  return kLexicon;
}

struct Prompt {
  std::string lowered;  // " " + words joined by single spaces + " "
  std::vector<std::string> words;
};

Prompt MakePrompt(std::string_view text) {
  Prompt prompt;
  prompt.words = LowerCaseWords(text);
  prompt.lowered = " ";
  for (const std::string& w : prompt.words) prompt.lowered += w + " ";
  return prompt;
}

bool CueMatches(const Prompt& prompt, std::string_view cue) {
  if (cue.find(' ') != std::string_view::npos || cue.find('-') != std::string_view::npos ||
      cue.find('\'') != std::string_view::npos) {
    std::string normal = " ";
    for (const std::string& w : LowerCaseWords(cue)) normal += w + " ";
    return prompt.lowered.find(normal) != std::string::npos;
  }
  for (const std::string& word : prompt.words) {
    if (word == cue) return true;
    if (cue.size() >= 4 && word.size() > cue.size() && word.compare(0, cue.size(), cue) == 0) return true;
  }
  return false;
}

// How well a candidate (an enum value, a tool name) fits the prompt.
int ScoreCandidate(const Prompt& prompt, std::string_view candidate) {
  int score = 0;
  for (const std::string& word : IdentifierWords(candidate)) {
    if (CueMatches(prompt, word)) score += 3;
    for (const LexiconEntry& entry : Lexicon()) {
      if (entry.concept_word != word) continue;
      for (std::string_view cue : entry.cues) {
        if (CueMatches(prompt, cue)) score += 2;
      }
    }
  }
  return score;
}

// The first `max_words` words of `text`, as written.
std::string LeadingWords(std::string_view text, size_t max_words) {
  std::string out;
  size_t count = 0;
  bool in_word = false;
  for (char c : text) {
    bool space = std::isspace(static_cast<unsigned char>(c)) != 0;
    if (space) {
      if (in_word) {
        ++count;
        in_word = false;
        if (count >= max_words) break;
      }
      if (!out.empty() && out.back() != ' ') out.push_back(' ');
    } else {
      in_word = true;
      out.push_back(c);
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// Cuts `text` to at most `max_bytes` without splitting a UTF-8 sequence.
std::string Utf8Prefix(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  size_t end = max_bytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return std::string(text.substr(0, end));
}

size_t Utf8Length(std::string_view text) {
  size_t n = 0;
  for (unsigned char c : text) {
    if ((c & 0xC0) != 0x80) ++n;
  }
  return n;
}

std::string Summary(std::string_view text, size_t max_words) {
  std::string lead = LeadingWords(TrimAsciiWhitespace(text), max_words);
  size_t total = LowerCaseWords(text).size();
  if (total > max_words) lead += "...";
  return lead;
}

// ---------------------------------------------------------------------------
// Schema-conforming values for tool inputs.

struct ValueContext {
  const json& root_schema;
  const Prompt& prompt;
  std::string_view prompt_text;
};

const json* ResolveRef(const json& schema, const json& root) {
  if (!schema.contains("$ref") || !schema["$ref"].is_string()) return &schema;
  std::string ref = schema["$ref"].get<std::string>();
  if (ref.rfind("#/", 0) != 0) return &schema;
  const json* node = &root;
  size_t pos = 2;
  while (pos <= ref.size()) {
    size_t slash = ref.find('/', pos);
    std::string part = ref.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    if (!node->is_object() || !node->contains(part)) return &schema;
    node = &(*node)[part];
    if (slash == std::string::npos) break;
    pos = slash + 1;
  }
  return node;
}

std::string SchemaType(const json& schema) {
  if (schema.contains("type")) {
    const json& type = schema["type"];
    if (type.is_string()) return type.get<std::string>();
    if (type.is_array()) {
      for (const json& t : type) {
        if (t.is_string() && t != "null") return t.get<std::string>();
      }
      if (!type.empty() && type[0].is_string()) return type[0].get<std::string>();
    }
  }
  if (schema.contains("properties")) return "object";
  if (schema.contains("items")) return "array";
  return "string";
}

// The enum value that best fits the prompt (ties: the first). When nothing
// fits at all, a neutral value ("Other", "Medium", ...) reads more plausibly
// than the first one, so it is preferred if the enum has one.
json ChooseEnum(const json& values, const Prompt& prompt) {
  int best_score = 0;
  const json* best = nullptr;
  for (const json& value : values) {
    int score = value.is_string() ? ScoreCandidate(prompt, value.get<std::string>()) : 0;
    if (score > best_score) {
      best_score = score;
      best = &value;
    }
  }
  if (best != nullptr) return *best;
  static const std::set<std::string> kNeutral = {"other",         "unknown", "general", "misc",
                                                 "miscellaneous", "medium",  "normal",  "neutral",
                                                 "moderate",      "standard"};
  for (const json& value : values) {
    if (value.is_string() && kNeutral.contains(AsciiToLower(value.get<std::string>()))) return value;
  }
  return values.front();
}

bool IsStopWord(std::string_view word) {
  static const std::set<std::string_view> kStop = {
      "this", "that", "with", "from", "have", "been", "were", "when", "what", "which", "there", "their", "about",
      "would", "could", "should", "please", "thanks", "into", "your", "they", "them", "then", "than", "also",
      "some", "every", "ticket", "classify", "support", "following", "here", "just", "need", "needs", "after"};
  return kStop.contains(word);
}

// Distinctive words of the prompt, in order of first appearance.
std::vector<std::string> Keywords(const Prompt& prompt, size_t max_count) {
  std::vector<std::string> out;
  for (const std::string& w : prompt.words) {
    if (out.size() >= max_count) break;
    if (w.size() < 4 || IsStopWord(w) || std::all_of(w.begin(), w.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    if (std::find(out.begin(), out.end(), w) == out.end()) out.push_back(w);
  }
  return out;
}

bool NameHas(const std::vector<std::string>& words, std::initializer_list<std::string_view> keys) {
  for (const std::string& w : words) {
    for (std::string_view k : keys) {
      if (w == k) return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------
// Free text and confidence for triage-like answers. A real model reads the
// request and answers about it; the stand-in names the request's subject and
// gives the advice of the topic its words point at, so answers read
// plausibly and differ between requests while staying deterministic.

// The topics the advice and the confidence are based on (lexicon concepts).
constexpr std::array<std::string_view, 6> kTopics = {"network", "hardware", "software",
                                                     "access",  "email",    "billing"};

int ConceptCueCount(const Prompt& prompt, std::string_view concept_word) {
  int count = 0;
  for (const LexiconEntry& entry : Lexicon()) {
    if (entry.concept_word != concept_word) continue;
    for (std::string_view cue : entry.cues) {
      if (CueMatches(prompt, cue)) ++count;
    }
  }
  return count;
}

struct TopicScores {
  std::string_view best{};  // "" when no topic cue occurs
  int best_count = 0;
  int second_count = 0;
};

TopicScores ScoreTopics(const Prompt& prompt) {
  TopicScores scores;
  for (std::string_view topic : kTopics) {
    const int count = ConceptCueCount(prompt, topic);
    if (count > scores.best_count) {
      scores.second_count = scores.best_count;
      scores.best_count = count;
      scores.best = topic;
    } else if (count > scores.second_count) {
      scores.second_count = count;
    }
  }
  return scores;
}

// A confidence in [0, 1]: low when no topic cue occurs (a vague request),
// middling when topics tie, high when one topic is clearly ahead; a small
// spread derived from the text keeps equal cases from looking canned.
double TopicConfidence(const Prompt& prompt, std::string_view prompt_text) {
  const TopicScores scores = ScoreTopics(prompt);
  double base;
  if (scores.best_count == 0) {
    base = 0.42;
  } else if (scores.best_count == scores.second_count) {
    base = 0.57;
  } else if (scores.best_count == 1) {
    base = 0.7;
  } else if (scores.best_count - scores.second_count == 1) {
    base = 0.8;
  } else {
    base = 0.9;
  }
  const double spread = static_cast<double>(static_cast<int>(Fnv1a(prompt_text) % 7) - 3) / 100.0;
  return std::round((base + spread) * 100.0) / 100.0;
}

bool IsHowToQuestion(const Prompt& prompt) {
  for (std::string_view cue : {"how do i", "how to", "how can i", "where can i", "where do i",
                               "is it possible", "is there a way"}) {
    if (CueMatches(prompt, cue)) return true;
  }
  return false;
}

// The values of "Label: value" lines whose label (up to three words) has one
// of `labels` among its words, in order.
std::vector<std::string> LabelledValues(std::string_view text,
                                        std::initializer_list<std::string_view> labels) {
  std::vector<std::string> values;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = TrimAsciiWhitespace(text.substr(start, end - start));
    const size_t colon = line.find(':');
    if (colon != std::string_view::npos && colon > 0) {
      const std::vector<std::string> label_words = IdentifierWords(line.substr(0, colon));
      const std::string_view value = TrimAsciiWhitespace(line.substr(colon + 1));
      if (!label_words.empty() && label_words.size() <= 3 && !value.empty()) {
        for (std::string_view label : labels) {
          if (std::find(label_words.begin(), label_words.end(), label) != label_words.end()) {
            values.emplace_back(value);
            break;
          }
        }
      }
    }
    if (end == text.size()) break;
    start = end + 1;
  }
  return values;
}

std::optional<std::string> LabelledValue(std::string_view text,
                                         std::initializer_list<std::string_view> labels) {
  std::vector<std::string> values = LabelledValues(text, labels);
  if (values.empty()) return std::nullopt;
  return std::move(values.front());
}

// What the request is about: a title or subject line when there is one, else
// the first sentence of the description (or of the text); at most 12 words,
// without closing punctuation.
std::string RequestSubject(std::string_view text) {
  std::optional<std::string> value = LabelledValue(text, {"title", "subject", "summary"});
  if (!value)
    value =
        LabelledValue(text, {"inquiry", "description", "message", "question", "request", "body"});
  std::string source = value ? *value : std::string(TrimAsciiWhitespace(text));
  for (size_t i = 0; i + 1 < source.size(); ++i) {
    if ((source[i] == '.' || source[i] == '?' || source[i] == '!') && source[i + 1] == ' ') {
      source.resize(i + 1);
      break;
    }
  }
  std::string subject = LeadingWords(source, 12);
  while (!subject.empty() && std::strchr(".?!,;: ", subject.back()) != nullptr) subject.pop_back();
  return subject.empty() ? std::string("your request") : subject;
}

// A first name from a "Label: value" value: an e-mail address gives its
// capitalised first local-part word, "Jane Doe" its first word; "" for
// anything else ("My order is late").
std::string FirstName(std::string_view value) {
  std::string word;
  const size_t at = value.find('@');
  if (at != std::string_view::npos) {
    size_t start = at;
    while (start > 0 && (std::isalnum(static_cast<unsigned char>(value[start - 1])) != 0 ||
                         std::strchr("._-+", value[start - 1]) != nullptr)) {
      --start;
    }
    for (size_t i = start; i < at && std::isalpha(static_cast<unsigned char>(value[i])) != 0; ++i) {
      word.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(value[i]))));
    }
    // "Jane Doe <jane.doe@...>": the written name wins when there is one.
    std::string_view before = value.substr(0, start);
    while (!before.empty() && std::isalpha(static_cast<unsigned char>(before.back())) == 0)
      before.remove_suffix(1);
    const std::string written = before.empty() ? std::string() : FirstName(before);
    if (!written.empty()) return written;
  } else {
    // Up to three words, each capitalised.
    size_t words = 0;
    bool word_start = true;
    for (char c : value) {
      if (c == ' ') {
        word_start = true;
        continue;
      }
      if (word_start && std::isupper(static_cast<unsigned char>(c)) == 0) return "";
      if (word_start) ++words;
      word_start = false;
    }
    if (words == 0 || words > 3) return "";
    for (char c : value) {
      if (std::isalpha(static_cast<unsigned char>(c)) == 0) break;
      word.push_back(c);
    }
  }
  if (word.size() < 2 || word.size() > 20) return "";
  word[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(word[0])));
  return word;
}

// The first name to greet: from the first name / customer / requester /
// from line that holds one.
std::string GreetingName(std::string_view text) {
  for (const std::string& value :
       LabelledValues(text, {"name", "customer", "requester", "from", "email", "contact"})) {
    std::string name = FirstName(value);
    if (!name.empty()) return name;
  }
  return "";
}

std::string_view TopicAdvice(std::string_view topic) {
  if (topic == "network") {
    return "check the VPN client version and the local connection, reconnect, and confirm whether "
           "others on the "
           "same site are affected";
  }
  if (topic == "hardware") {
    return "check power, cables and the dock, then book the device in with the IT desk for repair "
           "or replacement "
           "if it is faulty";
  }
  if (topic == "software") {
    return "update or reinstall the application, clear its cache and collect the exact error "
           "message if it happens "
           "again";
  }
  if (topic == "access") {
    return "verify the requester's identity, then unlock the account or reset the password and "
           "review their group "
           "permissions";
  }
  if (topic == "email")
    return "check the mailbox settings, quota and rules in Outlook and walk the requester through "
           "the change";
  if (topic == "billing")
    return "review the invoice and payment history and correct or refund any duplicate charge";
  return "ask the requester for more details (what they were doing, any error message, when it "
         "started) before "
         "assigning it";
}

std::string_view TopicReply(std::string_view topic) {
  if (topic == "network") {
    return "We are looking into the connection problem; meanwhile, please reconnect to the VPN and "
           "restart your "
           "laptop.";
  }
  if (topic == "hardware")
    return "We will check the device and arrange a repair or a replacement if it is needed.";
  if (topic == "software") {
    return "Please make sure the application is up to date; we will investigate the error if it "
           "continues.";
  }
  if (topic == "access")
    return "We can unlock your account or reset your password as soon as we have verified your "
           "identity.";
  if (topic == "email")
    return "Most mailbox settings are under File > Options in Outlook, and we are happy to walk "
           "you through it.";
  if (topic == "billing")
    return "We are reviewing your invoice and will correct or refund any duplicate charge.";
  return "We have received your message and will come back to you with an answer shortly.";
}

// A suggested resolution for the request.
std::string ResolutionText(const ValueContext& ctx) {
  const std::string subject = RequestSubject(ctx.prompt_text);
  const TopicScores topics = ScoreTopics(ctx.prompt);
  if (IsHowToQuestion(ctx.prompt) && !topics.best.empty()) {
    return "For \"" + subject + "\": send the requester the how-to article for this " +
           std::string(topics.best) + " question; no technician is needed.";
  }
  std::string advice(TopicAdvice(topics.best));
  advice[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(advice[0])));
  return "For \"" + subject + "\": " + advice + ".";
}

// A reply to the requester: greeting, the subject, the topic's answer, and
// an apology when the request sounds unhappy.
std::string ReplyText(const ValueContext& ctx) {
  const std::string name = GreetingName(ctx.prompt_text);
  std::string text = name.empty() ? "Hello, " : "Hi " + name + ", ";
  text += "thank you for contacting us about \"" + RequestSubject(ctx.prompt_text) + "\". ";
  if (ScoreCandidate(ctx.prompt, "negative") > ScoreCandidate(ctx.prompt, "positive")) {
    text += "We are sorry for the trouble this has caused. ";
  }
  text += TopicReply(ScoreTopics(ctx.prompt).best);
  text += " Best regards, the support team";
  return text;
}

json GenerateValue(const json& schema_in, std::string_view property, const ValueContext& ctx, int depth);

json GenerateString(const json& schema, std::string_view property, const ValueContext& ctx) {
  std::string format = StringOr(schema, "format", "");
  std::string value;
  if (format == "date") {
    value = "2024-06-03";
  } else if (format == "date-time") {
    value = "2024-06-03T09:30:00Z";
  } else if (format == "time") {
    value = "09:30:00";
  } else if (format == "email") {
    value = "user@example.com";
  } else if (format == "uri" || format == "url") {
    value = "https://example.com/";
  } else if (format == "uuid") {
    std::string hex;
    uint64_t a = Fnv1a(ctx.prompt_text), b = Fnv1a(property, a);
    char buf[40];
    std::snprintf(buf, sizeof(buf), "%08x-%04x-4%03x-8%03x-%012llx", static_cast<unsigned>(a >> 32),
                  static_cast<unsigned>(a & 0xFFFF), static_cast<unsigned>((a >> 16) & 0xFFF),
                  static_cast<unsigned>(b & 0xFFF), static_cast<unsigned long long>(b >> 16) & 0xFFFFFFFFFFFFULL);
    value = buf;
  } else {
    std::vector<std::string> name_words = IdentifierWords(property);
    if (NameHas(name_words, {"name", "title", "subject", "label", "topic", "headline"})) {
      value = Summary(ctx.prompt_text, 6);
    } else if (NameHas(name_words, {"id", "identifier", "code", "key"})) {
      value = "id-" + StableIdChars(std::string(ctx.prompt_text) + std::string(property), 8);
    } else if (NameHas(name_words, {"language", "lang", "locale"})) {
      value = "en";
    } else if (NameHas(name_words, {"reason", "reasoning", "rationale", "explanation", "justification"})) {
      value = "Based on the request: " + Summary(ctx.prompt_text, 20);
    } else if (NameHas(name_words, {"email"})) {
      value = "user@example.com";
    } else if (NameHas(name_words, {"resolution", "solution", "fix", "remedy", "workaround",
                                    "recommendation", "steps"})) {
      value = ResolutionText(ctx);
    } else if (NameHas(name_words, {"response", "reply", "answer", "draft", "letter"})) {
      value = ReplyText(ctx);
    } else if (NameHas(name_words, {"suggestion", "suggested", "suggest", "recommended"})) {
      value = ResolutionText(ctx);
    } else {
      value = Summary(ctx.prompt_text, 24);
      if (value.empty()) value = std::string(property.empty() ? "value" : property);
    }
  }
  size_t min_length = SizeOr(schema, "minLength", 0, 10000);
  size_t max_length = SizeOr(schema, "maxLength", 0, 1000000);
  while (Utf8Length(value) < min_length) value += value.empty() ? "x" : " " + value;
  if (SizeOr(schema, "maxLength", SIZE_MAX, SIZE_MAX) != SIZE_MAX && Utf8Length(value) > max_length) {
    std::string cut;
    size_t chars = 0;
    for (size_t i = 0; i < value.size(); ++i) {
      if ((static_cast<unsigned char>(value[i]) & 0xC0) != 0x80) {
        if (chars == max_length) break;
        ++chars;
      }
      cut.push_back(value[i]);
    }
    value = cut;
  }
  return value;
}

json GenerateNumber(const json& schema, std::string_view property, bool integer,
                    const ValueContext& ctx) {
  std::optional<double> lo, hi;
  bool lo_exclusive = false, hi_exclusive = false;
  if (schema.contains("minimum") && schema["minimum"].is_number()) lo = schema["minimum"].get<double>();
  if (schema.contains("maximum") && schema["maximum"].is_number()) hi = schema["maximum"].get<double>();
  if (schema.contains("exclusiveMinimum") && schema["exclusiveMinimum"].is_number()) {
    lo = schema["exclusiveMinimum"].get<double>();
    lo_exclusive = true;
  }
  if (schema.contains("exclusiveMaximum") && schema["exclusiveMaximum"].is_number()) {
    hi = schema["exclusiveMaximum"].get<double>();
    hi_exclusive = true;
  }
  std::vector<std::string> words = IdentifierWords(property);
  double value;
  const bool confidence_like =
      NameHas(words, {"confidence", "probability", "certainty", "likelihood"});
  if (lo && hi) {
    double fraction = confidence_like             ? TopicConfidence(ctx.prompt, ctx.prompt_text)
                      : NameHas(words, {"score"}) ? 0.8
                                                  : 0.5;
    value = *lo + (*hi - *lo) * fraction;
  } else if (lo) {
    value = std::max(*lo, 1.0);
  } else if (hi) {
    value = std::min(*hi, 1.0);
  } else if (confidence_like) {
    value = TopicConfidence(ctx.prompt, ctx.prompt_text);
  } else {
    value = 1;
  }
  if (integer) {
    value = std::round(value);
    if (lo && (value < *lo || (lo_exclusive && value <= *lo))) value = std::floor(*lo) + 1;
    if (hi && (value > *hi || (hi_exclusive && value >= *hi))) value = std::ceil(*hi) - 1;
    return static_cast<int64_t>(value);
  }
  if (lo_exclusive && value <= *lo) value = *lo + (hi ? (*hi - *lo) / 2 : 1);
  if (hi_exclusive && value >= *hi) value = *hi - (lo ? (*hi - *lo) / 2 : 1);
  return value;
}

json GenerateValue(const json& schema_in, std::string_view property, const ValueContext& ctx, int depth) {
  if (!schema_in.is_object()) return json();
  const json& schema = *ResolveRef(schema_in, ctx.root_schema);
  if (depth > 8) return json();
  if (schema.contains("const")) return schema["const"];
  if (schema.contains("enum") && schema["enum"].is_array() && !schema["enum"].empty()) {
    return ChooseEnum(schema["enum"], ctx.prompt);
  }
  for (const char* key : {"anyOf", "oneOf", "allOf"}) {
    if (schema.contains(key) && schema[key].is_array() && !schema[key].empty()) {
      return GenerateValue(schema[key][0], property, ctx, depth + 1);
    }
  }
  std::string type = SchemaType(schema);
  if (type == "object") {
    json out = json::object();
    if (schema.contains("properties") && schema["properties"].is_object()) {
      for (const auto& [name, sub] : schema["properties"].items()) {
        out[name] = GenerateValue(sub, name, ctx, depth + 1);
      }
    }
    return out;
  }
  if (type == "array") {
    json out = json::array();
    size_t count = std::max<size_t>(SizeOr(schema, "minItems", 0, 100), 1);
    count = std::min(count, SizeOr(schema, "maxItems", count));
    const json items = schema.contains("items") ? schema["items"] : json::object();
    const json& item_schema = *ResolveRef(items, ctx.root_schema);
    if (item_schema.contains("enum") && item_schema["enum"].is_array() && !item_schema["enum"].empty()) {
      // Distinct enum values, best matches first.
      std::vector<std::pair<int, size_t>> ranked;
      for (size_t i = 0; i < item_schema["enum"].size(); ++i) {
        const json& v = item_schema["enum"][i];
        ranked.emplace_back(v.is_string() ? -ScoreCandidate(ctx.prompt, v.get<std::string>()) : 0, i);
      }
      std::stable_sort(ranked.begin(), ranked.end());
      for (size_t i = 0; i < count && i < ranked.size(); ++i) out.push_back(item_schema["enum"][ranked[i].second]);
      return out;
    }
    // Free-form string lists (tags, keywords, ...) get the prompt's keywords.
    bool plain_string = SchemaType(item_schema) == "string" && !item_schema.contains("format") &&
                        !item_schema.contains("const") && !item_schema.contains("minLength") &&
                        !item_schema.contains("anyOf") && !item_schema.contains("oneOf");
    if (plain_string) {
      size_t max_items = SizeOr(schema, "maxItems", 3);
      std::vector<std::string> keys = Keywords(ctx.prompt, std::min<size_t>(max_items, 3));
      for (std::string& key : keys) out.push_back(std::move(key));
      for (size_t i = out.size(); i < count; ++i) out.push_back("item " + std::to_string(i + 1));
      if (item_schema.contains("maxLength")) {
        size_t max_len = SizeOr(item_schema, "maxLength", 1000);
        for (json& item : out) item = Utf8Prefix(item.get<std::string>(), max_len);
      }
      return out;
    }
    std::string singular(property);
    for (size_t i = 0; i < count; ++i) {
      json item = GenerateValue(item_schema, singular, ctx, depth + 1);
      if (item.is_string() && count > 1) item = item.get<std::string>() + " (" + std::to_string(i + 1) + ")";
      out.push_back(std::move(item));
    }
    return out;
  }
  if (type == "integer") return GenerateNumber(schema, property, true, ctx);
  if (type == "number") return GenerateNumber(schema, property, false, ctx);
  if (type == "boolean") {
    for (const std::string& word : IdentifierWords(property)) {
      if (word == "is" || word == "has" || word == "needs" || word == "requires") continue;
      if (word.size() >= 3 && CueMatches(ctx.prompt, word)) return true;
      if (ScoreCandidate(ctx.prompt, word) > 0) return true;
    }
    return false;
  }
  if (type == "null") return json();
  return GenerateString(schema, property, ctx);
}

// ---------------------------------------------------------------------------
// Reply generation helpers

std::string BlocksText(const json& blocks) {
  std::string out;
  for (const json& block : blocks) {
    std::string type = block.value("type", "");
    std::string piece;
    if (type == "text") piece = block.value("text", "");
    if (type == "tool_result") piece = ToolResultText(block);
    if (piece.empty()) continue;
    if (!out.empty()) out += "\n";
    out += piece;
  }
  return out;
}

const ClaudeTool* PickTool(const ClaudeRequest& request, const Prompt& prompt, std::string_view last_text) {
  if (request.tools.empty() || request.tool_choice == "none") return nullptr;
  if (request.tool_choice == "tool") {
    for (const ClaudeTool& tool : request.tools) {
      if (tool.name == request.tool_choice_name) return &tool;
    }
    return nullptr;
  }
  std::string lowered = AsciiToLower(last_text);
  if (request.tool_choice == "any") {
    const ClaudeTool* best = &request.tools.front();
    int best_score = -1;
    for (const ClaudeTool& tool : request.tools) {
      int score = ScoreCandidate(prompt, tool.name) * 2;
      if (lowered.find(AsciiToLower(tool.name)) != std::string::npos) score += 100;
      for (const std::string& w : LowerCaseWords(tool.description)) {
        if (w.size() >= 4 && CueMatches(prompt, w)) ++score;
      }
      if (score > best_score) {
        best_score = score;
        best = &tool;
      }
    }
    return best;
  }
  // auto: only when the prompt names the tool.
  for (const ClaudeTool& tool : request.tools) {
    std::string name = AsciiToLower(tool.name);
    std::string spaced = name;
    std::replace(spaced.begin(), spaced.end(), '_', ' ');
    std::replace(spaced.begin(), spaced.end(), '-', ' ');
    if (lowered.find(name) != std::string::npos || lowered.find(spaced) != std::string::npos) return &tool;
  }
  return nullptr;
}

std::string DerivedText(std::string_view last_text, const ClaudeRequest& request, std::string_view ref) {
  std::string text;
  std::string trimmed(TrimAsciiWhitespace(last_text));
  if (trimmed.empty()) {
    text = "Hello! How can I help you today?";
  } else {
    Prompt prompt = MakePrompt(trimmed);
    std::string summary = Summary(trimmed, 16);
    bool question = trimmed.back() == '?';
    text = question ? "Here is my answer to your question about \"" + summary + "\". "
                    : "Thank you for your message about \"" + summary + "\". ";
    // Pick out the most distinctive words: the longest ones, in order.
    std::vector<std::string> keys;
    for (const std::string& w : prompt.words) {
      if (w.size() >= 6 && std::find(keys.begin(), keys.end(), w) == keys.end()) keys.push_back(w);
      if (keys.size() == 3) break;
    }
    if (!keys.empty()) {
      text += "The key points I see are: ";
      for (size_t i = 0; i < keys.size(); ++i) text += (i ? ", " : "") + keys[i];
      text += ". ";
    }
    text += question ? "In short, it depends on your setup, but the points above are where I would start."
                     : "I have noted the details and can help with the next step.";
  }
  if (!request.system.empty()) {
    // Acknowledge the system prompt so its effect is visible in tests.
    text += " (following the instructions: " + Summary(request.system, 6) + ")";
  }
  text += " [ref " + std::string(ref) + "]";
  return text;
}

}  // namespace

// ---------------------------------------------------------------------------

namespace {

Result<ClaudeRequest> ParseAnthropicRequestImpl(std::string_view body, const ClaudeModelSpec& model) {
  json doc = json::parse(body, nullptr, false);
  if (doc.is_discarded()) {
    return InvalidArgumentError(
        "Malformed input request: the request body is not valid JSON, please reformat your input and try again.");
  }
  SchemaErrors errors;
  if (!doc.is_object()) {
    errors.Add("#", "expected type: JSONObject, found: " + SchemaTypeName(doc));
    return errors.ToStatus();
  }
  CheckKeys(doc, {"anthropic_version", "max_tokens", "messages"},
            {"system", "temperature", "top_p", "top_k", "stop_sequences", "tools", "tool_choice", "anthropic_beta",
             "metadata", "thinking"},
            "#", errors);
  if (doc.contains("anthropic_version")) ExpectType(doc["anthropic_version"], "string", "#/anthropic_version", errors);
  if (doc.contains("max_tokens") && ExpectType(doc["max_tokens"], "integer", "#/max_tokens", errors)) {
    CheckRange(doc["max_tokens"], 1, model.max_output_tokens, "#/max_tokens", errors);
  }
  if (doc.contains("temperature") && ExpectType(doc["temperature"], "number", "#/temperature", errors)) {
    CheckRange(doc["temperature"], 0, 1, "#/temperature", errors);
  }
  if (doc.contains("top_p") && ExpectType(doc["top_p"], "number", "#/top_p", errors)) {
    CheckRange(doc["top_p"], 0, 1, "#/top_p", errors);
  }
  if (doc.contains("top_k") && ExpectType(doc["top_k"], "integer", "#/top_k", errors)) {
    CheckRange(doc["top_k"], 0, 1e9, "#/top_k", errors);
  }
  if (doc.contains("stop_sequences") && ExpectType(doc["stop_sequences"], "array", "#/stop_sequences", errors)) {
    for (size_t i = 0; i < doc["stop_sequences"].size(); ++i) {
      ExpectType(doc["stop_sequences"][i], "string", "#/stop_sequences/" + std::to_string(i), errors);
    }
  }
  if (doc.contains("anthropic_beta")) {
    if (ExpectType(doc["anthropic_beta"], "array", "#/anthropic_beta", errors)) {
      for (size_t i = 0; i < doc["anthropic_beta"].size(); ++i) {
        ExpectType(doc["anthropic_beta"][i], "string", "#/anthropic_beta/" + std::to_string(i), errors);
      }
    }
  }
  if (doc.contains("system")) {
    const json& system = doc["system"];
    if (system.is_array()) {
      for (size_t i = 0; i < system.size(); ++i) {
        std::string path = "#/system/" + std::to_string(i);
        if (!ExpectType(system[i], "object", path, errors)) continue;
        CheckKeys(system[i], {"type", "text"}, {"cache_control", "citations"}, path, errors);
        if (system[i].contains("type") && system[i]["type"] != "text") {
          errors.Add(path + "/type", system[i]["type"].dump() + " is not a valid enum value");
        }
        if (system[i].contains("text")) ExpectType(system[i]["text"], "string", path + "/text", errors);
      }
    } else if (!system.is_string()) {
      errors.Add("#/system", "expected type: String, found: " + SchemaTypeName(system));
    }
  }
  if (doc.contains("tools") && ExpectType(doc["tools"], "array", "#/tools", errors)) {
    for (size_t i = 0; i < doc["tools"].size(); ++i) {
      const json& tool = doc["tools"][i];
      std::string path = "#/tools/" + std::to_string(i);
      if (!ExpectType(tool, "object", path, errors)) continue;
      CheckKeys(tool, {"name", "input_schema"}, {"description", "cache_control", "type"}, path, errors);
      if (tool.contains("name") && ExpectType(tool["name"], "string", path + "/name", errors) &&
          !IsValidToolName(tool["name"].get<std::string>())) {
        errors.Add(path + "/name", "string [" + tool["name"].get<std::string>() +
                                       "] does not match pattern ^[a-zA-Z0-9_-]{1,64}$");
      }
      if (tool.contains("description")) ExpectType(tool["description"], "string", path + "/description", errors);
      if (tool.contains("input_schema") && ExpectType(tool["input_schema"], "object", path + "/input_schema", errors)) {
        const json& schema = tool["input_schema"];
        if (schema.contains("type") && schema["type"] != "object") {
          errors.Add(path + "/input_schema/type", schema["type"].dump() + " is not a valid enum value");
        }
      }
    }
  }
  if (doc.contains("tool_choice") && ExpectType(doc["tool_choice"], "object", "#/tool_choice", errors)) {
    const json& choice = doc["tool_choice"];
    std::string type = StringOr(choice, "type", "");
    if (!choice.contains("type")) {
      errors.Add("#/tool_choice", "required key [type] not found");
    } else if (type == "tool") {
      CheckKeys(choice, {"type", "name"}, {"disable_parallel_tool_use"}, "#/tool_choice", errors);
      if (choice.contains("name")) ExpectType(choice["name"], "string", "#/tool_choice/name", errors);
    } else if (type == "auto" || type == "any") {
      CheckKeys(choice, {"type"}, {"disable_parallel_tool_use"}, "#/tool_choice", errors);
    } else if (type == "none") {
      CheckKeys(choice, {"type"}, {}, "#/tool_choice", errors);
    } else {
      errors.Add("#/tool_choice/type", choice["type"].dump() + " is not a valid enum value");
    }
  }
  std::vector<std::pair<std::string, json>> messages;
  if (doc.contains("messages") && ExpectType(doc["messages"], "array", "#/messages", errors)) {
    const json& list = doc["messages"];
    if (list.empty()) errors.Add("#/messages", "expected minimum item count: 1, found: 0");
    if (list.size() > kMaxMessages) {
      errors.Add("#/messages", "expected maximum item count: " + std::to_string(kMaxMessages) +
                                   ", found: " + std::to_string(list.size()));
    }
    for (size_t i = 0; i < list.size() && i < kMaxMessages; ++i) {
      const json& message = list[i];
      std::string path = "#/messages/" + std::to_string(i);
      if (!ExpectType(message, "object", path, errors)) continue;
      CheckKeys(message, {"role", "content"}, {}, path, errors);
      std::string role;
      if (message.contains("role") && ExpectType(message["role"], "string", path + "/role", errors)) {
        role = message["role"].get<std::string>();
        if (role != "user" && role != "assistant") {
          errors.Add(path + "/role", message["role"].dump() + " is not a valid enum value");
        }
      }
      json blocks = json::array();
      if (message.contains("content")) blocks = CheckContentSchema(message["content"], path + "/content", errors);
      messages.emplace_back(role, std::move(blocks));
    }
  }
  if (!errors.empty()) return errors.ToStatus();

  // Semantic checks, after the body has the right shape.
  if (doc["anthropic_version"].get<std::string>() != kAnthropicVersion) {
    return InvalidArgumentError("Invalid API version: anthropic_version must be \"" + std::string(kAnthropicVersion) +
                                "\" on Amazon Bedrock, got \"" + doc["anthropic_version"].get<std::string>() + "\".");
  }
  QUARRY_RETURN_IF_ERROR(CheckConversationAnthropic(messages));

  ClaudeRequest request;
  request.max_tokens = doc["max_tokens"].get<int>();
  if (doc.contains("system")) {
    if (doc["system"].is_string()) {
      request.system = doc["system"].get<std::string>();
    } else {
      for (const json& block : doc["system"]) {
        if (!request.system.empty()) request.system += "\n";
        request.system += block["text"].get<std::string>();
      }
    }
  }
  request.messages = std::move(messages);
  if (doc.contains("stop_sequences")) {
    for (const json& s : doc["stop_sequences"]) request.stop_sequences.push_back(s.get<std::string>());
  }
  if (doc.contains("tools")) {
    for (const json& tool : doc["tools"]) {
      request.tools.push_back(
          ClaudeTool{tool["name"].get<std::string>(), StringOr(tool, "description", ""), tool["input_schema"]});
    }
  }
  if (doc.contains("tool_choice")) {
    request.tool_choice = doc["tool_choice"]["type"].get<std::string>();
    if (request.tool_choice == "tool") request.tool_choice_name = doc["tool_choice"]["name"].get<std::string>();
  }
  QUARRY_RETURN_IF_ERROR(CheckUniqueToolNames(request.tools));
  QUARRY_RETURN_IF_ERROR(CheckToolChoice(request));
  return request;
}


// Converse validation errors use the AWS service sentence style.
Status ConverseError(std::string message) { return InvalidArgumentError(std::move(message)); }

Status ConstraintError(const std::string& value, const std::string& path, const std::string& constraint) {
  return ConverseError("1 validation error detected: Value '" + value + "' at '" + path +
                       "' failed to satisfy constraint: " + constraint);
}

// Converts one Converse content block into the Anthropic form.
Result<json> ConverseBlockToAnthropic(const json& block, const std::string& path) {
  if (!block.is_object() || block.size() != 1) {
    return ConverseError("The content block at " + path +
                         " must set exactly one member (text, image, document, toolUse, toolResult, ...). Put each "
                         "piece of content in its own block and try again.");
  }
  const std::string key = block.begin().key();
  const json& value = block.begin().value();
  if (key == "text") {
    if (!value.is_string()) return ConverseError("The text at " + path + ".text must be a string.");
    return json{{"type", "text"}, {"text", value}};
  }
  if (key == "image") {
    static const std::set<std::string> kFormats = {"png", "jpeg", "gif", "webp"};
    if (!value.is_object() || !value.contains("format") || !value["format"].is_string() ||
        !kFormats.contains(value["format"].get<std::string>())) {
      return ConstraintError(value.is_object() && value.contains("format") ? value["format"].dump() : "null",
                             path + ".image.format", "Member must satisfy enum value set: [png, jpeg, gif, webp]");
    }
    if (!value.contains("source") || !value["source"].is_object() || !value["source"].contains("bytes") ||
        !value["source"]["bytes"].is_string()) {
      return ConverseError("The image at " + path +
                           " needs source.bytes (base64). s3Location sources are not supported by this model.");
    }
    return json{{"type", "image"},
                {"source",
                 {{"type", "base64"},
                  {"media_type", "image/" + value["format"].get<std::string>()},
                  {"data", value["source"]["bytes"]}}}};
  }
  if (key == "document") {
    if (!value.is_object() || !value.contains("format") || !value.contains("name") || !value.contains("source")) {
      return ConverseError("The document at " + path + " needs format, name and source. Add them and try again.");
    }
    std::string format = value["format"].is_string() ? value["format"].get<std::string>() : "";
    std::string media = format == "pdf" ? "application/pdf" : "text/plain";
    json data = value["source"].is_object() && value["source"].contains("bytes") ? value["source"]["bytes"] : json("");
    return json{{"type", "document"},
                {"title", value["name"]},
                {"source", {{"type", "base64"}, {"media_type", media}, {"data", data}}}};
  }
  if (key == "toolUse") {
    if (!value.is_object() || !value.contains("toolUseId") || !value["toolUseId"].is_string() ||
        !value.contains("name") || !value["name"].is_string() || !value.contains("input")) {
      return ConverseError("The toolUse block at " + path + " needs toolUseId, name and input. Add them and try again.");
    }
    json input = value["input"];
    if (!input.is_object()) {
      return ConverseError("The toolUse input at " + path + ".toolUse.input must be a JSON object.");
    }
    return json{{"type", "tool_use"}, {"id", value["toolUseId"]}, {"name", value["name"]}, {"input", input}};
  }
  if (key == "toolResult") {
    if (!value.is_object() || !value.contains("toolUseId") || !value["toolUseId"].is_string() ||
        !value.contains("content") || !value["content"].is_array()) {
      return ConverseError("The toolResult block at " + path +
                           " needs toolUseId and a content list. Add them and try again.");
    }
    json content = json::array();
    for (const json& inner : value["content"]) {
      if (!inner.is_object() || inner.size() != 1) {
        return ConverseError("Each toolResult content block at " + path + " must set exactly one member.");
      }
      const std::string ikey = inner.begin().key();
      if (ikey == "text" && inner["text"].is_string()) {
        content.push_back({{"type", "text"}, {"text", inner["text"]}});
      } else if (ikey == "json") {
        content.push_back({{"type", "text"}, {"text", inner["json"].dump()}});
      } else if (ikey == "image") {
        QUARRY_ASSIGN_OR_RETURN(json image, ConverseBlockToAnthropic(inner, path + ".toolResult.content"));
        content.push_back(std::move(image));
      } else {
        return ConverseError("The toolResult content member \"" + ikey + "\" at " + path +
                             " is not supported by this model. Use text, json or image.");
      }
    }
    json out{{"type", "tool_result"}, {"tool_use_id", value["toolUseId"]}, {"content", content}};
    if (value.contains("status")) {
      if (value["status"] != "success" && value["status"] != "error") {
        return ConstraintError(value["status"].dump(), path + ".toolResult.status",
                               "Member must satisfy enum value set: [success, error]");
      }
      if (value["status"] == "error") out["is_error"] = true;
    }
    return out;
  }
  if (key == "cachePoint" || key == "reasoningContent") {
    return json();  // no Anthropic content of its own: dropped
  }
  if (key == "guardContent") {
    if (value.is_object() && value.contains("text") && value["text"].is_object() && value["text"].contains("text") &&
        value["text"]["text"].is_string()) {
      return json{{"type", "text"}, {"text", value["text"]["text"]}};
    }
    return ConverseError("The guardContent block at " + path + " needs text.text.");
  }
  return ConverseError("The content block member \"" + key + "\" at " + path +
                       " is not supported by this model. Use text, image, document, toolUse or toolResult.");
}


Result<ClaudeRequest> ParseConverseRequestImpl(std::string_view body, const ClaudeModelSpec& model) {
  json doc = json::parse(body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return ConverseError("The request body is not a valid JSON object. Send the Converse request as a JSON object "
                         "and try again.");
  }
  static const std::set<std::string> kKnown = {"messages",
                                               "system",
                                               "inferenceConfig",
                                               "toolConfig",
                                               "guardrailConfig",
                                               "additionalModelRequestFields",
                                               "promptVariables",
                                               "additionalModelResponseFieldPaths",
                                               "requestMetadata",
                                               "performanceConfig",
                                               "serviceTier",
                                               "outputConfig"};
  for (const auto& [key, unused] : doc.items()) {
    (void)unused;
    if (!kKnown.contains(key)) {
      return ConverseError("Unknown field \"" + key + "\" in the Converse request body. Remove it (modelId belongs " +
                           "in the URL path) and try again.");
    }
  }
  ClaudeRequest request;
  request.max_tokens = model.max_output_tokens;  // Converse defaults to the model maximum
  if (!doc.contains("messages") || !doc["messages"].is_array() || doc["messages"].empty()) {
    return ConverseError(
        "A conversation must start with a user message. Try again with a conversation that starts with a user "
        "message.");
  }
  if (doc["messages"].size() > kMaxMessages) {
    return ConverseError("The conversation has more than " + std::to_string(kMaxMessages) +
                         " messages. Shorten it and try again.");
  }
  for (size_t i = 0; i < doc["messages"].size(); ++i) {
    const json& message = doc["messages"][i];
    std::string path = "messages." + std::to_string(i + 1) + ".member";
    if (!message.is_object() || !message.contains("role") || !message.contains("content")) {
      return ConverseError("Each message needs role and content; the message at " + path + " does not have both.");
    }
    if (message["role"] != "user" && message["role"] != "assistant") {
      return ConstraintError(message["role"].is_string() ? message["role"].get<std::string>() : message["role"].dump(),
                             path + ".role", "Member must satisfy enum value set: [user, assistant]");
    }
    if (!message["content"].is_array()) {
      return ConverseError("The content at " + path + ".content must be a list of content blocks.");
    }
    json blocks = json::array();
    for (size_t j = 0; j < message["content"].size(); ++j) {
      QUARRY_ASSIGN_OR_RETURN(json block, ConverseBlockToAnthropic(message["content"][j],
                                                                   "messages." + std::to_string(i) + ".content." +
                                                                       std::to_string(j)));
      if (!block.is_null()) blocks.push_back(std::move(block));
    }
    request.messages.emplace_back(message["role"].get<std::string>(), std::move(blocks));
  }
  if (request.messages.front().first != "user") {
    return ConverseError(
        "A conversation must start with a user message. Try again with a conversation that starts with a user "
        "message.");
  }
  for (size_t i = 1; i < request.messages.size(); ++i) {
    if (request.messages[i].first == request.messages[i - 1].first) {
      return ConverseError(
          "A conversation must alternate between user and assistant roles. Make sure the conversation alternates "
          "between user and assistant roles and try again.");
    }
  }
  for (size_t i = 0; i < request.messages.size(); ++i) {
    const auto& [role, blocks] = request.messages[i];
    bool final_assistant = (i + 1 == request.messages.size() && role == "assistant");
    if (blocks.empty() && !final_assistant) {
      return ConverseError("The content field in the Message object at messages." + std::to_string(i) +
                           " is empty. Add a ContentBlock object to the content field and try again.");
    }
    for (const json& block : blocks) {
      std::string type = block.value("type", "");
      if (type == "text" && block["text"].get<std::string>().empty() && !final_assistant) {
        return ConverseError("The text field in the ContentBlock object at messages." + std::to_string(i) +
                             " is blank. Add text to the text field, and try again.");
      }
      if ((type == "tool_use" && role != "assistant") || ((type == "tool_result" || type == "image" ||
                                                           type == "document") && role != "user")) {
        return ConverseError("The content at messages." + std::to_string(i) + " has a block type that role " + role +
                             " cannot send: toolUse comes from the assistant; toolResult, image and document come "
                             "from the user.");
      }
    }
  }
  // Tool use and results must pair up between consecutive turns.
  for (size_t i = 1; i < request.messages.size(); ++i) {
    if (request.messages[i].first != "user") continue;
    std::vector<std::string> uses;
    for (const json& block : request.messages[i - 1].second) {
      if (block.value("type", "") == "tool_use") uses.push_back(block["id"].get<std::string>());
    }
    std::vector<std::string> results;
    for (const json& block : request.messages[i].second) {
      if (block.value("type", "") == "tool_result") results.push_back(block["tool_use_id"].get<std::string>());
    }
    if (results.size() > uses.size()) {
      return ConverseError("The number of toolResult blocks at messages." + std::to_string(i) +
                           ".content exceeds the number of toolUse blocks of previous turn.");
    }
    std::string missing;
    for (const std::string& id : uses) {
      if (std::find(results.begin(), results.end(), id) == results.end()) {
        missing += (missing.empty() ? "" : ", ") + id;
      }
    }
    if (!missing.empty()) {
      return ConverseError("Expected toolResult blocks at messages." + std::to_string(i) +
                           ".content for the following Ids: " + missing);
    }
  }
  if (doc.contains("system")) {
    if (!doc["system"].is_array()) return ConverseError("The system field must be a list of SystemContentBlock objects.");
    for (const json& block : doc["system"]) {
      if (!block.is_object() || block.size() != 1) {
        return ConverseError("Each system content block must set exactly one member (text, guardContent or "
                             "cachePoint).");
      }
      if (block.contains("text")) {
        if (!block["text"].is_string() || block["text"].get<std::string>().empty()) {
          return ConverseError("The text field in the SystemContentBlock object is blank. Add text to the text "
                               "field, and try again.");
        }
        if (!request.system.empty()) request.system += "\n";
        request.system += block["text"].get<std::string>();
      }
    }
  }
  if (doc.contains("inferenceConfig")) {
    const json& config = doc["inferenceConfig"];
    if (!config.is_object()) return ConverseError("inferenceConfig must be a JSON object.");
    if (config.contains("maxTokens")) {
      if (!IsIntegral(config["maxTokens"])) return ConverseError("inferenceConfig.maxTokens must be an integer.");
      int64_t max_tokens = config["maxTokens"].get<int64_t>();
      if (max_tokens < 1) {
        return ConstraintError(std::to_string(max_tokens), "inferenceConfig.maxTokens",
                               "Member must have value greater than or equal to 1");
      }
      if (max_tokens > model.max_output_tokens) {
        std::string limit = std::to_string(model.max_output_tokens);
        return ConverseError("The maximum tokens you requested exceeds the model limit of " + limit +
                             ". Try again with a maximum tokens value that is lower than " + limit + ".");
      }
      request.max_tokens = static_cast<int>(max_tokens);
    }
    for (const char* key : {"temperature", "topP"}) {
      if (!config.contains(key)) continue;
      if (!config[key].is_number()) return ConverseError(std::string("inferenceConfig.") + key + " must be a number.");
      double v = config[key].get<double>();
      if (v < 0) {
        return ConstraintError(FormatNumber(config[key]), std::string("inferenceConfig.") + key,
                               "Member must have value greater than or equal to 0");
      }
      if (v > 1) {
        return ConstraintError(FormatNumber(config[key]), std::string("inferenceConfig.") + key,
                               "Member must have value less than or equal to 1");
      }
    }
    if (config.contains("stopSequences")) {
      if (!config["stopSequences"].is_array()) return ConverseError("inferenceConfig.stopSequences must be a list.");
      for (const json& s : config["stopSequences"]) {
        if (!s.is_string() || s.get<std::string>().empty()) {
          return ConverseError("Each entry of inferenceConfig.stopSequences must be a non-empty string.");
        }
        request.stop_sequences.push_back(s.get<std::string>());
      }
    }
  }
  if (doc.contains("additionalModelRequestFields") && !doc["additionalModelRequestFields"].is_object()) {
    return ConverseError("additionalModelRequestFields must be a JSON object.");
  }
  if (doc.contains("toolConfig")) {
    const json& config = doc["toolConfig"];
    if (!config.is_object() || !config.contains("tools") || !config["tools"].is_array() || config["tools"].empty()) {
      return ConverseError("toolConfig.tools must be a non-empty list of tools. Add a toolSpec or remove toolConfig.");
    }
    for (size_t i = 0; i < config["tools"].size(); ++i) {
      const json& tool = config["tools"][i];
      if (tool.is_object() && tool.contains("cachePoint") && tool.size() == 1) continue;
      std::string path = "toolConfig.tools." + std::to_string(i + 1) + ".member.toolSpec";
      if (!tool.is_object() || !tool.contains("toolSpec") || !tool["toolSpec"].is_object()) {
        return ConverseError("Each entry of toolConfig.tools must be {\"toolSpec\": {...}}; entry " +
                             std::to_string(i) + " is not.");
      }
      const json& spec = tool["toolSpec"];
      std::string name = spec.contains("name") && spec["name"].is_string() ? spec["name"].get<std::string>() : "";
      if (!IsValidToolName(name)) {
        if (name.size() > 64) {
          return ConstraintError(name, path + ".name", "Member must have length less than or equal to 64");
        }
        return ConstraintError(name, path + ".name", "Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+");
      }
      if (!spec.contains("inputSchema") || !spec["inputSchema"].is_object() || !spec["inputSchema"].contains("json") ||
          !spec["inputSchema"]["json"].is_object()) {
        return ConverseError("The toolSpec \"" + name +
                             "\" needs inputSchema.json, a JSON schema object. Add it and try again.");
      }
      request.tools.push_back(ClaudeTool{name, StringOr(spec, "description", ""), spec["inputSchema"]["json"]});
    }
    if (config.contains("toolChoice")) {
      const json& choice = config["toolChoice"];
      if (!choice.is_object() || choice.size() != 1) {
        return ConverseError("toolConfig.toolChoice must set exactly one of auto, any or tool.");
      }
      if (choice.contains("auto")) {
        request.tool_choice = "auto";
      } else if (choice.contains("any")) {
        request.tool_choice = "any";
      } else if (choice.contains("tool") && choice["tool"].is_object() && choice["tool"].contains("name") &&
                 choice["tool"]["name"].is_string()) {
        request.tool_choice = "tool";
        request.tool_choice_name = choice["tool"]["name"].get<std::string>();
      } else {
        return ConverseError("toolConfig.toolChoice must be {\"auto\":{}}, {\"any\":{}} or {\"tool\":{\"name\":…}}.");
      }
    } else {
      request.tool_choice = "auto";
    }
    QUARRY_RETURN_IF_ERROR(CheckUniqueToolNames(request.tools));
    if (request.tool_choice == "tool") {
      bool found = std::any_of(request.tools.begin(), request.tools.end(),
                               [&](const ClaudeTool& t) { return t.name == request.tool_choice_name; });
      if (!found) {
        return ConverseError("The tool \"" + request.tool_choice_name +
                             "\" named in toolConfig.toolChoice is not in toolConfig.tools. Name one of the "
                             "configured tools and try again.");
      }
    }
  } else {
    // Tool blocks in the conversation need the tools they refer to.
    for (const auto& [role, blocks] : request.messages) {
      for (const json& block : blocks) {
        std::string type = block.value("type", "");
        if (type == "tool_use" || type == "tool_result") {
          return ConverseError("The toolConfig field must be defined when using toolUse and toolResult content "
                               "blocks.");
        }
      }
    }
  }
  return request;
}

}  // namespace

// The checks above test every type before reading it; the catch is a last
// line of defence so a missed case becomes a ValidationException, not a crash.
Result<ClaudeRequest> ParseAnthropicRequest(std::string_view body, const ClaudeModelSpec& model) {
  try {
    return ParseAnthropicRequestImpl(body, model);
  } catch (const json::exception& e) {
    return InvalidArgumentError(std::string("Malformed input request: ") + e.what() +
                                ", please reformat your input and try again.");
  }
}

Result<ClaudeRequest> ParseConverseRequest(std::string_view body, const ClaudeModelSpec& model) {
  try {
    return ParseConverseRequestImpl(body, model);
  } catch (const json::exception& e) {
    return InvalidArgumentError(std::string("The request body could not be read: ") + e.what() +
                                ". Check the Converse request shape and try again.");
  }
}

ClaudeReply GenerateReply(const ClaudeRequest& request, std::span<const ReplyRule> rules,
                          const ClaudeModelSpec& model) {
  ClaudeReply reply;
  reply.input_tokens = InputTokens(request);

  // A stable fingerprint of the whole request.
  std::string seed = model.model_id + "\x1f" + request.system;
  for (const auto& [role, blocks] : request.messages) seed += "\x1f" + role + "\x1f" + blocks.dump();
  for (const ClaudeTool& tool : request.tools) seed += "\x1f" + tool.name;
  seed += "\x1f" + request.tool_choice + request.tool_choice_name;
  reply.message_id = "msg_bdrk_" + StableIdChars(seed, 24);
  std::string ref = StableIdChars(seed + "ref", 8);

  // The last user turn drives the reply.
  const json* last_user = nullptr;
  size_t last_user_index = 0;
  for (size_t i = request.messages.size(); i > 0; --i) {
    if (request.messages[i - 1].first == "user") {
      last_user = &request.messages[i - 1].second;
      last_user_index = i - 1;
      break;
    }
  }
  std::string last_text = last_user != nullptr ? BlocksText(*last_user) : "";
  Prompt prompt = MakePrompt(last_text);

  std::string text;
  bool is_tool = false;
  // 1. Tool results come back: answer with them.
  std::vector<const json*> results;
  if (last_user != nullptr) {
    for (const json& block : *last_user) {
      if (block.value("type", "") == "tool_result") results.push_back(&block);
    }
  }
  if (!results.empty()) {
    std::map<std::string, std::string> names;
    if (last_user_index > 0) {
      for (const json& block : request.messages[last_user_index - 1].second) {
        if (block.value("type", "") == "tool_use") names[block["id"].get<std::string>()] = block.value("name", "");
      }
    }
    for (const json* result : results) {
      std::string id = result->value("tool_use_id", "");
      std::string name = names.contains(id) ? names[id] : std::string("the tool");
      std::string body = Summary(ToolResultText(*result), 60);
      if (!text.empty()) text += " ";
      if (result->value("is_error", false)) {
        text += "The " + name + " call failed: " + (body.empty() ? "no details were given" : body) +
                ". I could not complete that step.";
      } else {
        text += "Based on the " + name + " result, " + (body.empty() ? "the call returned no content" : body) + ".";
      }
    }
    text += " [ref " + ref + "]";
  } else {
    const ClaudeTool* tool = nullptr;
    bool forced = request.tool_choice == "any" || request.tool_choice == "tool";
    if (forced) tool = PickTool(request, prompt, last_text);
    std::string lowered = AsciiToLower(last_text);
    const ReplyRule* rule = nullptr;
    if (tool == nullptr) {
      for (const ReplyRule& r : rules) {
        if (!r.match.empty() && lowered.find(AsciiToLower(r.match)) != std::string::npos) {
          rule = &r;
          break;
        }
      }
    }
    if (rule != nullptr) {
      text = rule->reply;
    } else {
      if (tool == nullptr) tool = PickTool(request, prompt, last_text);
      if (tool != nullptr) {
        ValueContext ctx{tool->input_schema, prompt, last_text};
        json input = GenerateValue(tool->input_schema, "", ctx, 0);
        if (!input.is_object()) input = json::object();
        reply.content.push_back({{"type", "tool_use"},
                                 {"id", "toolu_bdrk_" + StableIdChars(seed + "\x1f" + tool->name, 24)},
                                 {"name", tool->name},
                                 {"input", std::move(input)}});
        is_tool = true;
      } else {
        text = DerivedText(last_text, request, ref);
      }
    }
  }

  if (is_tool) {
    reply.stop_reason = "tool_use";
    reply.output_tokens = OutputTokens(reply.content);
    if (reply.output_tokens > request.max_tokens) {
      // The model ran out of tokens before finishing the call: the input is
      // cut off, which the API reports as an empty input.
      reply.content[0]["input"] = json::object();
      reply.stop_reason = "max_tokens";
      reply.output_tokens = std::min(OutputTokens(reply.content), std::max(request.max_tokens, 1));
    }
    return reply;
  }

  reply.stop_reason = "end_turn";
  // Stop sequences: cut at the earliest occurrence.
  size_t cut = std::string::npos;
  std::string matched;
  for (const std::string& stop : request.stop_sequences) {
    if (stop.empty()) continue;
    size_t pos = text.find(stop);
    if (pos != std::string::npos && (cut == std::string::npos || pos < cut)) {
      cut = pos;
      matched = stop;
    }
  }
  if (cut != std::string::npos) {
    text = text.substr(0, cut);
    reply.stop_reason = "stop_sequence";
    reply.stop_sequence = matched;
  }
  size_t max_bytes = static_cast<size_t>(std::max(request.max_tokens, 1)) * kCharsPerToken;
  if (text.size() > max_bytes) {
    text = Utf8Prefix(text, max_bytes);
    reply.stop_reason = "max_tokens";
    reply.stop_sequence.clear();
  }
  reply.content.push_back({{"type", "text"}, {"text", text}});
  reply.output_tokens = OutputTokens(reply.content);
  return reply;
}

json GenerateSchemaValue(const json& schema, std::string_view prompt_text) {
  const Prompt prompt = MakePrompt(prompt_text);
  const ValueContext ctx{schema, prompt, prompt_text};
  return GenerateValue(schema, "", ctx, 0);
}

json AnthropicResponseBody(const ClaudeReply& reply, const ClaudeModelSpec& model) {
  json body{{"id", reply.message_id},
            {"type", "message"},
            {"role", "assistant"},
            {"model", model.model_id},
            {"content", reply.content},
            {"stop_reason", reply.stop_reason},
            {"stop_sequence", nullptr},
            {"usage", {{"input_tokens", reply.input_tokens}, {"output_tokens", reply.output_tokens}}}};
  if (reply.stop_reason == "stop_sequence") body["stop_sequence"] = reply.stop_sequence;
  return body;
}

namespace {

// Splits text into deltas of a few words; the pieces concatenate to `text`.
std::vector<std::string> TextPieces(std::string_view text, size_t words_per_piece = 3) {
  std::vector<std::string> pieces;
  std::string current;
  size_t words = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    current.push_back(text[i]);
    bool space = std::isspace(static_cast<unsigned char>(text[i])) != 0;
    bool next_word = i + 1 < text.size() && !std::isspace(static_cast<unsigned char>(text[i + 1]));
    if (space && next_word) {
      if (++words == words_per_piece) {
        pieces.push_back(std::move(current));
        current.clear();
        words = 0;
      }
    }
  }
  if (!current.empty() || pieces.empty()) pieces.push_back(std::move(current));
  return pieces;
}

// Splits serialised JSON into fixed-size pieces on UTF-8 boundaries.
std::vector<std::string> JsonPieces(std::string_view text, size_t piece_bytes = 24) {
  std::vector<std::string> pieces;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = std::min(text.size(), pos + piece_bytes);
    while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
    pieces.emplace_back(text.substr(pos, end - pos));
    pos = end;
  }
  return pieces;
}

}  // namespace

std::vector<json> AnthropicStreamEvents(const ClaudeReply& reply, const ClaudeModelSpec& model,
                                        int64_t invocation_latency_ms, int64_t first_byte_latency_ms) {
  std::vector<json> events;
  events.push_back({{"type", "message_start"},
                    {"message",
                     {{"id", reply.message_id},
                      {"type", "message"},
                      {"role", "assistant"},
                      {"model", model.model_id},
                      {"content", json::array()},
                      {"stop_reason", nullptr},
                      {"stop_sequence", nullptr},
                      {"usage", {{"input_tokens", reply.input_tokens}, {"output_tokens", 1}}}}}});
  for (size_t i = 0; i < reply.content.size(); ++i) {
    const json& block = reply.content[i];
    if (block.value("type", "") == "tool_use") {
      events.push_back({{"type", "content_block_start"},
                        {"index", i},
                        {"content_block",
                         {{"type", "tool_use"}, {"id", block["id"]}, {"name", block["name"]}, {"input", json::object()}}}});
      events.push_back(
          {{"type", "content_block_delta"}, {"index", i}, {"delta", {{"type", "input_json_delta"}, {"partial_json", ""}}}});
      for (std::string& piece : JsonPieces(block["input"].dump())) {
        events.push_back({{"type", "content_block_delta"},
                          {"index", i},
                          {"delta", {{"type", "input_json_delta"}, {"partial_json", std::move(piece)}}}});
      }
    } else {
      events.push_back(
          {{"type", "content_block_start"}, {"index", i}, {"content_block", {{"type", "text"}, {"text", ""}}}});
      for (std::string& piece : TextPieces(block.value("text", ""))) {
        events.push_back({{"type", "content_block_delta"},
                          {"index", i},
                          {"delta", {{"type", "text_delta"}, {"text", std::move(piece)}}}});
      }
    }
    events.push_back({{"type", "content_block_stop"}, {"index", i}});
  }
  json stop_sequence = reply.stop_reason == "stop_sequence" ? json(reply.stop_sequence) : json(nullptr);
  events.push_back({{"type", "message_delta"},
                    {"delta", {{"stop_reason", reply.stop_reason}, {"stop_sequence", stop_sequence}}},
                    {"usage", {{"output_tokens", reply.output_tokens}}}});
  events.push_back({{"type", "message_stop"},
                    {"amazon-bedrock-invocationMetrics",
                     {{"inputTokenCount", reply.input_tokens},
                      {"outputTokenCount", reply.output_tokens},
                      {"invocationLatency", invocation_latency_ms},
                      {"firstByteLatency", first_byte_latency_ms}}}});
  return events;
}

namespace {

json ConverseContent(const json& block) {
  if (block.value("type", "") == "tool_use") {
    return {{"toolUse", {{"toolUseId", block["id"]}, {"name", block["name"]}, {"input", block["input"]}}}};
  }
  return {{"text", block.value("text", "")}};
}

json ConverseUsage(const ClaudeReply& reply) {
  return {{"inputTokens", reply.input_tokens},
          {"outputTokens", reply.output_tokens},
          {"totalTokens", reply.input_tokens + reply.output_tokens}};
}

}  // namespace

json ConverseResponseBody(const ClaudeReply& reply, int64_t latency_ms) {
  json content = json::array();
  for (const json& block : reply.content) content.push_back(ConverseContent(block));
  return {{"output", {{"message", {{"role", "assistant"}, {"content", content}}}}},
          {"stopReason", reply.stop_reason},
          {"usage", ConverseUsage(reply)},
          {"metrics", {{"latencyMs", latency_ms}}}};
}

std::vector<std::pair<std::string, json>> ConverseStreamEvents(const ClaudeReply& reply, int64_t latency_ms) {
  std::vector<std::pair<std::string, json>> events;
  events.emplace_back("messageStart", json{{"role", "assistant"}});
  for (size_t i = 0; i < reply.content.size(); ++i) {
    const json& block = reply.content[i];
    if (block.value("type", "") == "tool_use") {
      events.emplace_back("contentBlockStart",
                          json{{"start", {{"toolUse", {{"toolUseId", block["id"]}, {"name", block["name"]}}}}},
                               {"contentBlockIndex", i}});
      for (std::string& piece : JsonPieces(block["input"].dump())) {
        events.emplace_back("contentBlockDelta",
                            json{{"delta", {{"toolUse", {{"input", std::move(piece)}}}}}, {"contentBlockIndex", i}});
      }
    } else {
      for (std::string& piece : TextPieces(block.value("text", ""))) {
        events.emplace_back("contentBlockDelta",
                            json{{"delta", {{"text", std::move(piece)}}}, {"contentBlockIndex", i}});
      }
    }
    events.emplace_back("contentBlockStop", json{{"contentBlockIndex", i}});
  }
  events.emplace_back("messageStop", json{{"stopReason", reply.stop_reason}});
  events.emplace_back("metadata", json{{"usage", ConverseUsage(reply)}, {"metrics", {{"latencyMs", latency_ms}}}});
  return events;
}

}  // namespace quarry::sim
