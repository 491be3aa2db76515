// The emulator's Bedrock Agents (see agent_model.h). Shapes of the events
// follow the bedrock-agent-runtime model: PayloadPart, TracePart,
// ReturnControlPayload; errors follow aws-protocol.md §8 (InvokeAgent column).
#include "sim/agent_model.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <optional>
#include <set>
#include <string_view>

#include "common/crypto.h"
#include "common/encoding.h"
#include "sim/text_words.h"

namespace quarry::sim {
namespace {

using nlohmann::json;

constexpr std::string_view kService = "bedrock-agent-runtime";
constexpr std::string_view kDraftAlias = "TSTALIASID";
// Bounds: what we keep per session and what we echo back.
constexpr size_t kMaxTurnsPerSession = 50;
constexpr size_t kMaxTurnTextBytes = 4096;
constexpr size_t kMaxReferenceTextBytes = 2000;
constexpr size_t kMaxQuotedInputBytes = 200;
constexpr size_t kMaxInputTextBytes = 25'000'000;  // InvokeAgent inputText max length
constexpr size_t kMaxStreamChunkBytes = 40;        // streamFinalResponse piece size (soft)
constexpr size_t kMaxKnowledgeResults = 3;

aws::AwsError MakeError(std::string code, int status, std::string message) {
  aws::AwsError error;
  error.code = std::move(code);
  error.http_status = status;
  error.message = std::move(message);
  error.service = std::string(kService);
  error.retry_class = aws::ClassifyError(kService, error.code, status);
  return error;
}

aws::AwsError Validation(std::string message) { return MakeError("ValidationException", 400, std::move(message)); }

// Bedrock's wording for a missing resource behind InvokeAgent (seen in client
// reports of this API), plus what exactly is missing.
aws::AwsError NotFound(const std::string& detail) {
  return MakeError("ResourceNotFoundException", 404,
                   "Failed to retrieve resource because it doesn't exist. Retry the request with a different "
                   "resource identifier. (" + detail + ")");
}

std::string Truncate(std::string_view text, size_t max) {
  if (text.size() <= max) return std::string(text);
  // Do not cut a UTF-8 sequence in the middle.
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return std::string(text.substr(0, end));
}

std::string HashHex(std::string_view seed) { return Sha256Hex(seed); }

// A deterministic id shaped like a UUID (8-4-4-4-12 lower-case hex).
std::string UuidLike(std::string_view seed) {
  const std::string h = HashHex(seed);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-4" + h.substr(13, 3) + "-a" + h.substr(17, 3) + "-" +
         h.substr(20, 12);
}

// TraceId is 2–16 characters in the model.
std::string TraceId(std::string_view seed, int step) {
  const std::string suffix = "-" + std::to_string(step);
  return HashHex(seed).substr(0, 16 - suffix.size()) + suffix;
}

bool IsSessionIdChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '_' || c == ':' || c == '-';
}

const std::set<std::string, std::less<>>& StopWords() {
  static const auto* words = new std::set<std::string, std::less<>>{
      "a",     "about", "an",    "and",   "any",   "are",   "as",    "at",    "be",    "been",  "but",
      "by",    "can",   "could", "did",   "do",    "does",  "for",   "from",  "had",   "has",   "have",
      "how",   "i",     "if",    "in",    "into",  "is",    "it",    "its",   "me",    "my",    "no",
      "not",   "of",    "on",    "or",    "our",   "please", "should", "so",  "that",  "the",   "their",
      "them",  "then",  "there", "these", "they",  "this",  "to",    "us",    "was",   "we",    "were",
      "what",  "when",  "where", "which", "who",   "why",   "will",  "with",  "would", "you",   "your",
      "tell",  "know",  "get",   "got",   "also",  "just",  "some",  "than",  "too",   "very"};
  return *words;
}


// Distinct keywords, sorted: words minus stop words and one-letter words.
std::vector<std::string> Keywords(std::string_view text) {
  std::vector<std::string> keywords;
  ForEachLowerCaseWord(text, [&](std::string_view w) {
    if (w.size() < 2 || StopWords().count(w) != 0) return;
    keywords.emplace_back(w);
  });
  std::sort(keywords.begin(), keywords.end());
  keywords.erase(std::unique(keywords.begin(), keywords.end()), keywords.end());
  return keywords;
}

// How many words two sorted, distinct keyword lists (from Keywords) share:
// how many of a query's keywords occur in a text whose Keywords are `b`
// (keywords hold no stop words or one-letter words to begin with).
size_t CountCommon(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  size_t n = 0;
  auto i = a.begin();
  auto j = b.begin();
  while (i != a.end() && j != b.end()) {
    const int order = i->compare(*j);
    if (order == 0) ++n;
    if (order <= 0) ++i;
    if (order >= 0) ++j;
  }
  return n;
}

// True when `phrase` (one or more words) occurs in the text whose WordLine is
// `text_line` as whole words, ignoring case.
bool LineContainsPhrase(std::string_view text_line, std::string_view phrase) {
  const std::string needle = WordLine(phrase);
  return !needle.empty() && text_line.find(needle) != std::string_view::npos;
}

bool ContainsIgnoreCase(std::string_view text, std::string_view needle) {
  if (needle.empty()) return false;
  return AsciiToLower(text).find(AsciiToLower(needle)) != std::string::npos;
}

// Sentences of a document: split after '.', '!' or '?' followed by space.
std::vector<std::string> Sentences(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool end = (c == '.' || c == '!' || c == '?' || c == '\n') &&
                     (i + 1 == text.size() || text[i + 1] == ' ' || text[i + 1] == '\n');
    if (end || i + 1 == text.size()) {
      std::string s(TrimAsciiWhitespace(text.substr(start, i + 1 - start)));
      if (!s.empty()) out.push_back(std::move(s));
      start = i + 1;
    }
  }
  return out;
}

struct Retrieved {
  const KnowledgeIndex::Document* doc = nullptr;
  size_t score = 0;
  const std::string* sentence = nullptr;  // the document's sentence that best matches the query
};

// Keyword retrieval: documents sharing at least max(1, ⌈20%⌉) of the query's
// keywords, best first (ties keep configuration order), at most three.
std::vector<Retrieved> Retrieve(std::string_view query, const AgentVersionSpec& version,
                                const KnowledgeIndex& knowledge) {
  std::vector<Retrieved> found;
  const std::vector<std::string> q = Keywords(query);
  if (q.empty()) return found;
  const size_t threshold = std::max<size_t>(1, (q.size() + 4) / 5);
  const std::vector<KnowledgeBaseSpec>& knowledge_bases = knowledge.knowledge_bases();
  for (const auto& kb_id : version.knowledge_base_ids) {
    for (size_t k = 0; k < knowledge_bases.size(); ++k) {
      if (knowledge_bases[k].id != kb_id) continue;
      for (const KnowledgeIndex::Document& doc : knowledge.documents(k)) {
        const size_t score = CountCommon(q, doc.keywords);
        if (score < threshold) continue;
        Retrieved r{&doc, score, nullptr};
        size_t best = 0;
        for (const KnowledgeIndex::Sentence& s : doc.sentences) {
          const size_t sscore = CountCommon(q, s.keywords);
          if (r.sentence == nullptr || sscore > best) {
            best = sscore;
            r.sentence = &s.text;
          }
        }
        if (r.sentence != nullptr) found.push_back(r);
      }
    }
  }
  std::stable_sort(found.begin(), found.end(), [](const Retrieved& a, const Retrieved& b) { return a.score > b.score; });
  if (found.size() > kMaxKnowledgeResults) found.resize(kMaxKnowledgeResults);
  return found;
}

json ReferenceJson(const KnowledgeDocument& doc) {
  json metadata = json::object();
  metadata["x-amz-bedrock-kb-source-uri"] = doc.uri;
  metadata["x-amz-bedrock-kb-chunk-id"] = doc.id;
  if (!doc.title.empty()) metadata["title"] = doc.title;
  return json{{"content", {{"text", Truncate(doc.text, kMaxReferenceTextBytes)}}},
              {"location", {{"type", "S3"}, {"s3Location", {{"uri", doc.uri}}}}},
              {"metadata", metadata}};
}

// A cited part of the answer: bytes [start, end) of the answer text.
struct CitedPart {
  size_t start = 0;
  size_t end = 0;
  json references = json::array();
};

// Span end is the index of the last cited byte (inclusive), as in the
// RetrieveAndGenerate / InvokeAgent responses we have seen; text is the cited
// substring itself, so a client can check answer[start..end] == text.
json CitationJson(std::string_view answer, size_t start, size_t end, const json& references) {
  return json{{"generatedResponsePart",
               {{"textResponsePart",
                 {{"text", std::string(answer.substr(start, end - start))},
                  {"span", {{"start", start}, {"end", end - 1}}}}}}},
              {"retrievedReferences", references}};
}

json ChunkPayload(std::string_view text, const std::vector<CitedPart>& parts, size_t offset) {
  json payload{{"bytes", Base64Encode(text)}};
  json citations = json::array();
  for (const auto& part : parts) {
    const size_t s = std::max(part.start, offset);
    const size_t e = std::min(part.end, offset + text.size());
    if (s >= e) continue;
    citations.push_back(CitationJson(text, s - offset, e - offset, part.references));
  }
  if (!citations.empty()) payload["attribution"] = {{"citations", std::move(citations)}};
  return payload;
}

// Pieces of the answer for streamFinalResponse: cut after a space or a
// sentence end once a piece reaches kMaxStreamChunkBytes / 2, never inside a
// word unless a word alone is longer than kMaxStreamChunkBytes.
std::vector<std::pair<size_t, size_t>> SplitForStreaming(std::string_view text) {
  std::vector<std::pair<size_t, size_t>> pieces;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = std::min(text.size(), start + kMaxStreamChunkBytes);
    if (end < text.size()) {
      size_t cut = std::string_view::npos;
      for (size_t i = end; i > start + kMaxStreamChunkBytes / 2; --i) {
        if (text[i - 1] == ' ') {
          cut = i;
          break;
        }
      }
      if (cut != std::string_view::npos) {
        end = cut;
      } else {
        while (end > start + 1 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
      }
    }
    pieces.emplace_back(start, end);
    start = end;
  }
  return pieces;
}

bool IsMemoryQuestion(std::string_view input) {
  static constexpr std::string_view kCues[] = {"earlier", "before", "previous", "previously", "what did i ask",
                                               "what did i say"};
  const std::string line = WordLine(input);
  for (auto cue : kCues) {
    if (LineContainsPhrase(line, cue)) return true;
  }
  return false;
}

// Parameter values from the input: ticket ids (ABC-123), emails, numbers,
// booleans; otherwise a default of the right type.
std::string ExtractParameter(std::string_view input, const ActionParameterSpec& p) {
  const std::string name = AsciiToLower(p.name);
  const std::string type = AsciiToLower(p.type);
  std::vector<std::string> tokens;
  {
    std::string cur;
    for (char c : input) {
      if (c == ' ' || c == '\t' || c == '\n' || c == ',' || c == ';' || c == '"' || c == '\'' || c == '(' ||
          c == ')' || c == '?' || c == '!') {
        if (!cur.empty()) tokens.push_back(std::move(cur));
        cur.clear();
      } else {
        cur.push_back(c);
      }
    }
    if (!cur.empty()) tokens.push_back(std::move(cur));
    for (auto& t : tokens) {
      while (!t.empty() && (t.back() == '.' || t.back() == ':')) t.pop_back();
    }
  }
  auto is_email = [](const std::string& t) {
    const size_t at = t.find('@');
    return at != std::string::npos && at > 0 && t.find('.', at) != std::string::npos;
  };
  auto is_ticket = [](const std::string& t) {
    const size_t dash = t.find('-');
    if (dash == std::string::npos || dash == 0 || dash + 1 >= t.size()) return false;
    for (size_t i = 0; i < dash; ++i) {
      if (std::isalpha(static_cast<unsigned char>(t[i])) == 0) return false;
    }
    for (size_t i = dash + 1; i < t.size(); ++i) {
      if (std::isdigit(static_cast<unsigned char>(t[i])) == 0) return false;
    }
    return true;
  };
  auto is_number = [&](const std::string& t) {
    if (t.empty()) return false;
    bool digit = false;
    for (size_t i = 0; i < t.size(); ++i) {
      const char c = t[i];
      if (std::isdigit(static_cast<unsigned char>(c)) != 0) {
        digit = true;
      } else if (!(c == '.' && type != "integer") && !(c == '-' && i == 0)) {
        return false;
      }
    }
    return digit;
  };
  if (type == "number" || type == "integer") {
    for (const auto& t : tokens) {
      if (is_number(t)) return t;
    }
    return "0";
  }
  if (type == "boolean") {
    for (const auto& w : LowerCaseWords(input)) {
      if (w == "true" || w == "yes") return "true";
      if (w == "false" || w == "no") return "false";
    }
    return "false";
  }
  const bool wants_email = name.find("email") != std::string::npos || name.find("mail") != std::string::npos;
  const bool wants_id = name.find("id") != std::string::npos || name.find("ticket") != std::string::npos ||
                        name.find("key") != std::string::npos || name.find("ref") != std::string::npos;
  if (wants_email) {
    for (const auto& t : tokens) {
      if (is_email(t)) return t;
    }
  }
  if (wants_id) {
    for (const auto& t : tokens) {
      if (is_ticket(t)) return t;
    }
    for (const auto& t : tokens) {
      if (is_number(t)) return t;
    }
  }
  if (type == "array") return "[]";
  const bool wants_level = name.find("priority") != std::string::npos || name.find("severity") != std::string::npos ||
                           name.find("urgency") != std::string::npos;
  if (wants_level) {
    // A level, not free text: the first level word of the input, else medium.
    for (const auto& w : LowerCaseWords(input)) {
      if (w == "low" || w == "medium" || w == "high" || w == "critical") return w;
      if (w == "urgent" || w == "asap" || w == "outage") return "high";
    }
    return "medium";
  }
  if (!wants_email && !wants_id) {
    // A free-text parameter (summary, description, query, …): the input itself.
    const std::string trimmed(TrimAsciiWhitespace(input));
    if (!trimmed.empty()) return Truncate(trimmed, kMaxQuotedInputBytes);
  }
  if (wants_email) return "user@example.com";
  return "unknown";
}

std::string QuoteForAnswer(std::string_view text) { return Truncate(TrimAsciiWhitespace(text), kMaxQuotedInputBytes); }

// A blocked topic whose word occurs in `text`, or nullptr.
const GuardrailSpec::Topic* BlockedTopic(const std::optional<GuardrailSpec>& guardrail, std::string_view text) {
  if (!guardrail) return nullptr;
  const std::string line = WordLine(text);
  for (const auto& topic : guardrail->blocked_topics) {
    for (const auto& word : topic.words) {
      if (LineContainsPhrase(line, word)) return &topic;
    }
  }
  return nullptr;
}

int ApproxTokens(std::string_view text) { return static_cast<int>(text.size() / 4 + 1); }

// --- Structured tasks. The engine appends to a structured task a paragraph
// of instructions whose last line is "JSON schema: {...}"; a real agent
// answers with one conforming JSON object, and so does this one: values are
// chosen from the task's own words (not from the instructions, which name
// every enum value and would bias every choice) by the Claude stand-in's
// schema filler.

constexpr std::string_view kSchemaPrefix = "json schema:";

std::vector<std::string_view> SplitLines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (true) {
    const size_t end = text.find('\n', start);
    if (end == std::string_view::npos) {
      lines.push_back(text.substr(start));
      break;
    }
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

struct SchemaLine {
  json schema{};
  size_t offset = 0;  // where the line starts in the text
};

// The last line starting with "JSON schema:" (any case) whose rest parses as
// a JSON object.
std::optional<SchemaLine> FindSchemaLine(std::string_view text) {
  std::optional<SchemaLine> found;
  size_t offset = 0;
  for (std::string_view line : SplitLines(text)) {
    const std::string_view trimmed = TrimAsciiWhitespace(line);
    if (trimmed.size() > kSchemaPrefix.size() &&
        AsciiToLower(trimmed.substr(0, kSchemaPrefix.size())) == kSchemaPrefix) {
      json parsed =
          json::parse(trimmed.substr(kSchemaPrefix.size()), nullptr, /*allow_exceptions=*/false);
      if (parsed.is_object()) found = SchemaLine{std::move(parsed), offset};
    }
    offset += line.size() + 1;
  }
  return found;
}

bool MentionsJson(std::string_view text) { return ContainsIgnoreCase(text, "json"); }

// The string values of each enum in the schema's properties.
std::vector<std::vector<std::string>> EnumValueLists(const json& schema) {
  std::vector<std::vector<std::string>> lists;
  const auto properties = schema.find("properties");
  if (properties == schema.end() || !properties->is_object()) return lists;
  for (const auto& [name, property] : properties->items()) {
    if (!property.is_object()) continue;
    const auto values = property.find("enum");
    if (values == property.end() || !values->is_array()) continue;
    std::vector<std::string> list;
    for (const auto& v : *values) {
      if (v.is_string()) list.push_back(v.get<std::string>());
    }
    if (list.size() >= 2) lists.push_back(std::move(list));
  }
  return lists;
}

// True when `sentence` names two or more values of one enum: "categorise it
// as FAQ, Standard or High priority" instructs, it does not describe.
bool ListsEnumValues(std::string_view sentence,
                     const std::vector<std::vector<std::string>>& lists) {
  const std::string line = WordLine(sentence);
  for (const auto& list : lists) {
    int named = 0;
    for (const auto& value : list) named += LineContainsPhrase(line, value) ? 1 : 0;
    if (named >= 2) return true;
  }
  return false;
}

// The task the answer is generated from: the text before the schema line,
// without the paragraph of instructions that ends with it (the engine puts a
// blank line before the instructions) and without sentences that list an
// enum's values. Empty when nothing but instructions is left.
std::string TaskText(std::string_view before_schema, const json& schema) {
  std::vector<std::string_view> lines = SplitLines(before_schema);
  // before_schema ends with the newline before the schema line.
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  const bool attached = !lines.empty() && !TrimAsciiWhitespace(lines.back()).empty();
  std::vector<std::vector<std::string_view>> paragraphs(1);
  for (std::string_view line : lines) {
    if (TrimAsciiWhitespace(line).empty()) {
      if (!paragraphs.back().empty()) paragraphs.emplace_back();
    } else {
      paragraphs.back().push_back(line);
    }
  }
  while (!paragraphs.empty() && paragraphs.back().empty()) paragraphs.pop_back();
  // The lines right before the schema line are the rest of the instructions.
  if (attached && !paragraphs.empty()) paragraphs.pop_back();
  const auto lists = EnumValueLists(schema);
  std::string task;
  for (const auto& paragraph : paragraphs) {
    for (std::string_view line : paragraph) {
      std::string kept;
      for (const std::string& sentence : Sentences(line)) {
        std::string_view piece = sentence;
        if (ListsEnumValues(piece, lists)) {
          // "Classify as Hardware, Software or Network: <the request>" keeps
          // what follows the colon.
          const size_t colon = piece.rfind(':');
          piece = colon == std::string_view::npos ? std::string_view()
                                                  : TrimAsciiWhitespace(piece.substr(colon + 1));
          if (ListsEnumValues(piece, lists)) piece = {};
        }
        if (piece.empty()) continue;
        if (!kept.empty()) kept += " ";
        kept += piece;
      }
      if (kept.empty()) continue;
      if (!task.empty()) task += "\n";
      task += kept;
    }
  }
  return task;
}

struct StructuredTask {
  json schema{};
  std::string text{};  // what the values are generated from
};

// The structured task of this turn, or nullopt when the turn is not one.
// Repair turns (the engine's "your answer could not be used, answer again
// with only the JSON object", in the same session) are answered from the
// latest earlier task of the session, whether or not they repeat the schema
// line: a turn that talks about JSON, or has nothing but instructions, after
// an earlier task with the same schema is one.
std::optional<StructuredTask> FindStructuredTask(std::string_view input,
                                                 const std::vector<AgentSessions::Turn>& turns) {
  auto earlier = [&]() -> std::optional<StructuredTask> {
    for (auto it = turns.rbegin(); it != turns.rend(); ++it) {
      const std::optional<SchemaLine> line = FindSchemaLine(it->user);
      if (!line) continue;
      std::string text = TaskText(std::string_view(it->user).substr(0, line->offset), line->schema);
      if (!text.empty()) return StructuredTask{line->schema, std::move(text)};
    }
    return std::nullopt;
  };
  std::optional<SchemaLine> line = FindSchemaLine(input);
  if (!line) {
    if (!MentionsJson(input)) return std::nullopt;
    return earlier();
  }
  std::string text = TaskText(input.substr(0, line->offset), line->schema);
  StructuredTask task{std::move(line->schema), std::move(text)};
  if (task.text.empty() || MentionsJson(task.text)) {
    if (auto previous = earlier(); previous && previous->schema == task.schema) return previous;
  }
  if (task.text.empty())
    task.text = std::string(TrimAsciiWhitespace(input.substr(0, line->offset)));
  return task;
}

// A string member of a JSON object, "" when absent or of another type (the
// request is the client's: never let a wrong type throw).
std::string StringMember(const json& object, std::string_view key) {
  if (!object.is_object()) return "";
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// --- Code interpreter: "export ... as CSV".

constexpr size_t kMaxFileBytes = 1'000'000;  // FileBody max in the model

bool IsCsvExport(std::string_view input) {
  const std::string line = WordLine(input);
  if (!LineContainsPhrase(line, "csv")) return false;
  for (std::string_view verb : {"export", "download", "file", "spreadsheet", "save"}) {
    if (LineContainsPhrase(line, verb)) return true;
  }
  return false;
}

// One CSV field (RFC 4180): quoted when it holds a comma, quote or line break.
std::string CsvField(std::string_view value) {
  if (value.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(value);
  std::string out = "\"";
  for (char c : value) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

struct CsvExport {
  std::string name{};
  std::string content{};
  size_t rows = 0;
  bool truncated = false;  // stopped at kMaxFileBytes
  std::string what{};      // "knowledge base article", "conversation turn" (singular)
};

// The knowledge-base articles matching the request (all of the version's
// when none matches), or without knowledge bases the session's turns.
CsvExport BuildCsvExport(std::string_view input, const AgentVersionSpec& version,
                         const KnowledgeIndex& knowledge, const std::vector<AgentSessions::Turn>& turns) {
  CsvExport out;
  std::vector<std::vector<std::string>> rows;
  if (!version.knowledge_base_ids.empty()) {
    out.name = "articles.csv";
    out.what = "knowledge base article";
    out.content = "id,title,uri,text\r\n";
    std::vector<const KnowledgeDocument*> docs;
    for (const auto& r : Retrieve(input, version, knowledge)) docs.push_back(r.doc->spec);
    if (docs.empty()) {
      for (const auto& kb_id : version.knowledge_base_ids) {
        for (const auto& kb : knowledge.knowledge_bases()) {
          if (kb.id != kb_id) continue;
          for (const auto& doc : kb.documents) docs.push_back(&doc);
        }
      }
    }
    for (const auto* doc : docs) rows.push_back({doc->id, doc->title, doc->uri, doc->text});
  } else {
    out.name = "conversation.csv";
    out.what = "conversation turn";
    out.content = "turn,user,agent\r\n";
    for (size_t i = 0; i < turns.size(); ++i) rows.push_back({std::to_string(i + 1), turns[i].user, turns[i].agent});
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) line += (i == 0 ? "" : ",") + CsvField(row[i]);
    line += "\r\n";
    if (out.content.size() + line.size() > kMaxFileBytes) {
      out.truncated = true;
      break;
    }
    out.content += line;
    ++out.rows;
  }
  return out;
}

// Collects the trace events of one turn.
class Tracer {
 public:
  Tracer(bool enabled, const AgentSpec& agent, const AgentAliasSpec& alias, const std::string& version,
         const InvokeAgentInput& input, const Clock& clock, std::string seed)
      : enabled_(enabled), seed_(std::move(seed)), model_(agent.FindVersion(version) != nullptr
                                                               ? agent.FindVersion(version)->foundation_model
                                                               : std::string()) {
    if (!enabled_) return;
    base_ = json{{"agentId", agent.id},
                 {"agentAliasId", alias.id},
                 {"agentVersion", version},
                 {"sessionId", input.session_id},
                 // TracePart.eventTime is a timestamp with timestampFormat iso8601.
                 {"eventTime", FormatIso8601Utc(clock.Now())}};
  }
  std::string NextTraceId() { return TraceId(seed_, step_++); }
  // Adds a trace event of `kind` whose body make_body() returns. The body is
  // built only when traces are on: most calls do not ask for them.
  template <typename MakeBody>
  void Add(std::vector<AgentEvent>& events, const char* kind, MakeBody&& make_body) {
    if (!enabled_) return;
    json body = make_body();
    // Model invocations name the version's model when it has one.
    if (body.contains("modelInvocationInput") && !model_.empty()) body["modelInvocationInput"]["foundationModel"] = model_;
    json payload = base_;
    payload["trace"] = json{{kind, std::move(body)}};
    events.push_back(AgentEvent{"trace", std::move(payload), false});
  }
  bool enabled() const { return enabled_; }

 private:
  bool enabled_;
  std::string seed_;
  std::string model_;
  int step_ = 0;
  json base_;
};

json GuardrailTraceJson(const std::string& trace_id, const GuardrailSpec::Topic* topic, bool input_side) {
  json assessment = json::object();
  if (topic != nullptr) {
    assessment["topicPolicy"] = {{"topics", json::array({{{"name", topic->name}, {"type", "DENY"}, {"action", "BLOCKED"}}})}};
  }
  json trace{{"action", topic != nullptr ? "INTERVENED" : "NONE"}, {"traceId", trace_id}};
  trace[input_side ? "inputAssessments" : "outputAssessments"] = json::array({assessment});
  return trace;
}

}  // namespace

const AgentVersionSpec* AgentSpec::FindVersion(std::string_view version) const {
  for (const auto& v : versions) {
    if (v.version == version) return &v;
  }
  return nullptr;
}

std::optional<AgentAliasSpec> AgentSpec::FindAlias(std::string_view alias_id) const {
  for (const auto& a : aliases) {
    if (a.id == alias_id) return a;
  }
  if (alias_id == kDraftAlias) {
    // The built-in test alias of every agent; it always routes to DRAFT.
    AgentAliasSpec draft;
    draft.id = std::string(kDraftAlias);
    draft.name = "AgentTestAlias";
    draft.description = "Test alias for the working draft (DRAFT) of the agent";
    draft.agent_version = "DRAFT";
    return draft;
  }
  return std::nullopt;
}

KnowledgeIndex::KnowledgeIndex(const std::vector<KnowledgeBaseSpec>& knowledge_bases)
    : knowledge_bases_(knowledge_bases) {
  documents_.reserve(knowledge_bases.size());
  for (const KnowledgeBaseSpec& kb : knowledge_bases) {
    std::vector<Document>& documents = documents_.emplace_back();
    documents.reserve(kb.documents.size());
    for (const KnowledgeDocument& spec : kb.documents) {
      Document& doc = documents.emplace_back();
      doc.spec = &spec;
      doc.keywords = Keywords(spec.title + " " + spec.text);
      for (std::string& text : Sentences(spec.text)) {
        std::vector<std::string> keywords = Keywords(text);
        doc.sentences.push_back(Sentence{std::move(text), std::move(keywords)});
      }
      doc.reference = ReferenceJson(spec);
    }
  }
}

AgentSessions::AgentSessions(size_t max_sessions) : max_sessions_(max_sessions == 0 ? 1 : max_sessions) {}

void AgentSessions::WithSession(const std::string& key, std::chrono::seconds ttl, const Clock& clock,
                                const std::function<void(Session&)>& fn) {
  std::lock_guard<std::mutex> lock(mutex_);
  const MonotonicTime now = clock.MonotonicNow();
  auto it = sessions_.find(key);
  if (it != sessions_.end() && now - it->second.last_used > ttl) {
    it->second = Session{};  // idle past the agent's idleSessionTTLInSeconds: a fresh session
  }
  if (it == sessions_.end()) {
    if (sessions_.size() >= max_sessions_) {
      // Drop the least recently used session. A linear scan, only when full;
      // the bound exists to stop a runaway client, not for a hot path.
      auto oldest = sessions_.begin();
      for (auto s = sessions_.begin(); s != sessions_.end(); ++s) {
        if (s->second.last_used < oldest->second.last_used) oldest = s;
      }
      sessions_.erase(oldest);
    }
    it = sessions_.emplace(key, Session{}).first;
  }
  it->second.last_used = now;
  fn(it->second);
}

void AgentSessions::End(const std::string& key) {
  std::lock_guard<std::mutex> lock(mutex_);
  sessions_.erase(key);
}

size_t AgentSessions::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return sessions_.size();
}

AgentOutcome RunAgent(const AgentSpec& agent, const AgentAliasSpec& alias, const InvokeAgentInput& input,
                      const KnowledgeIndex& knowledge, AgentSessions& sessions, const Clock& clock) {
  // --- Request validation (ValidationException, 400), as the model's
  // constraints on sessionId and inputText.
  const std::string& sid = input.session_id;
  if (sid.size() < 2 || sid.size() > 100 || !std::all_of(sid.begin(), sid.end(), IsSessionIdChar)) {
    return Validation("1 validation error detected: Value '" + Truncate(sid, 120) +
                      "' at 'sessionId' failed to satisfy constraint: Member must satisfy regular expression "
                      "pattern: [0-9a-zA-Z._:-]+ and have length between 2 and 100. Use letters, digits and . _ : - only.");
  }
  if (input.input_text.size() > kMaxInputTextBytes) {
    return Validation("1 validation error detected: Value at 'inputText' failed to satisfy constraint: Member must "
                      "have length less than or equal to 25000000. Send a shorter input.");
  }
  const json& state = input.session_state.is_object() ? input.session_state : json::object();
  const json* results = nullptr;
  if (auto it = state.find("returnControlInvocationResults"); it != state.end() && !it->is_null()) {
    if (!it->is_array() || it->empty() || it->size() > 5) {
      return Validation("sessionState.returnControlInvocationResults must be a list of 1 to 5 results. Send one "
                        "result per invocation input of the returnControl event.");
    }
    results = &*it;
  }
  std::string state_invocation_id;
  if (auto it = state.find("invocationId"); it != state.end() && it->is_string()) state_invocation_id = *it;
  const std::string trimmed_input(TrimAsciiWhitespace(input.input_text));
  if (trimmed_input.empty() && results == nullptr) {
    return Validation("inputText must not be empty unless sessionState carries returnControlInvocationResults. "
                      "Send the user's text in inputText.");
  }

  // --- Alias and version. Which error, and why:
  // - alias not PREPARED (CREATING, UPDATING, FAILED, …): ConflictException
  //   409, "the resource is in a state that conflicts with the call"; the
  //   caller fixes it by waiting or by re-associating the alias.
  // - alias with no version, or pointing at a version that does not exist:
  //   ResourceNotFoundException 404 (what the alias routes to does not
  //   exist), with Bedrock's "Failed to retrieve resource" wording.
  // - version exists but is not prepared: DependencyFailedException 424 (the
  //   alias resolves, but what it depends on, the prepared agent, is not
  //   usable), with resourceName = the agent id.
  if (alias.status != "PREPARED") {
    return MakeError("ConflictException", 409,
                     "The agent alias " + alias.id + " is in status " + alias.status +
                         " and cannot accept invocations. Wait until the alias is PREPARED, or associate it with "
                         "a prepared agent version, and retry.");
  }
  if (alias.agent_version.empty()) {
    return NotFound("Agent alias " + alias.id + " of agent " + agent.id +
                    " has no associated version. Associate the alias with a prepared agent version, or use "
                    "TSTALIASID to invoke the DRAFT version.");
  }
  const AgentVersionSpec* version = agent.FindVersion(alias.agent_version);
  if (version == nullptr) {
    return NotFound("Agent alias " + alias.id + " points at version " + alias.agent_version + " of agent " +
                    agent.id + ", which does not exist. Update the alias to an existing version.");
  }
  if (!version->prepared) {
    aws::AwsError error = MakeError(
        "DependencyFailedException", 424,
        "Version " + version->version + " of agent " + agent.id +
            " is not prepared. Prepare the agent (PrepareAgent) and point the alias at a prepared version, then retry.");
    error.fields.emplace_back("resourceName", agent.id);
    return error;
  }

  // --- The turn, under the session's lock.
  const std::string key = agent.id + "/" + alias.id + "/" + sid;
  const auto ttl = std::chrono::seconds(std::max(1, agent.idle_session_ttl_seconds));
  std::optional<aws::AwsError> failure;
  std::vector<AgentEvent> events;
  bool session_was_new = false;

  sessions.WithSession(key, ttl, clock, [&](AgentSessions::Session& session) {
    session_was_new = session.turns.empty() && session.pending_invocation_id.empty();
    const size_t turn_index = session.turns.size();
    const std::string seed = key + "|" + std::to_string(turn_index) + "|" + input.input_text + "|" +
                             state_invocation_id + "|" + (results ? results->dump() : "");
    Tracer tracer(input.enable_trace, agent, alias, version->version, input, clock, seed);
    const std::optional<GuardrailSpec>& guardrail = version->guardrail;

    // Results for a pending returnControl: check them before anything else.
    std::string result_text;
    std::string result_function;
    bool result_failed = false;  // responseState FAILURE or an HTTP status >= 400
    if (results != nullptr) {
      if (session.pending_invocation_id.empty()) {
        failure = Validation("sessionState.returnControlInvocationResults were sent, but no returnControl is "
                             "pending in session " + sid + ". Send results only in reply to a returnControl event, "
                             "in the same session, before it expires.");
        return;
      }
      if (state_invocation_id != session.pending_invocation_id) {
        failure = Validation("sessionState.invocationId '" + Truncate(state_invocation_id, 100) +
                             "' does not match the pending returnControl invocationId " +
                             session.pending_invocation_id + ". Send the invocationId of the returnControl event.");
        return;
      }
      const bool pending_api = !session.pending_api_path.empty();
      const std::string pending_api_text = session.pending_http_method + " " + session.pending_api_path;
      for (size_t i = 0; i < results->size(); ++i) {
        const json& r = (*results)[i];
        const std::string where = "sessionState.returnControlInvocationResults[" + std::to_string(i) + "]";
        const json* fr = r.is_object() && r.contains("functionResult") ? &r["functionResult"] : nullptr;
        const json* ar = r.is_object() && r.contains("apiResult") ? &r["apiResult"] : nullptr;
        const json* result = fr != nullptr ? fr : ar;
        if ((fr != nullptr && ar != nullptr) || result == nullptr || !result->is_object()) {
          failure = Validation(where + " must hold one functionResult (or apiResult) object. Fill "
                               "functionResult{actionGroup, function, responseBody} for a function, "
                               "apiResult{actionGroup, apiPath, httpMethod, responseBody} for an API operation.");
          return;
        }
        if (pending_api && fr != nullptr) {
          failure = Validation(where + " is a functionResult, but returnControl " + session.pending_invocation_id +
                               " asked for the API operation " + pending_api_text + " of action group " +
                               session.pending_action_group +
                               " (an apiInvocationInput). Reply with apiResult{actionGroup, apiPath, httpMethod, "
                               "responseBody}.");
          return;
        }
        if (!pending_api && ar != nullptr && !session.pending_action_group.empty()) {
          failure = Validation(where + " is an apiResult, but returnControl " + session.pending_invocation_id +
                               " asked for the function " + session.pending_function +
                               " (a functionInvocationInput). Reply with functionResult{actionGroup, function, "
                               "responseBody}.");
          return;
        }
        if (ar != nullptr) {
          const std::string group = StringMember(*ar, "actionGroup");
          const std::string path = StringMember(*ar, "apiPath");
          const std::string method = StringMember(*ar, "httpMethod");
          if (group != session.pending_action_group) {
            failure = Validation(where + ".apiResult.actionGroup '" + Truncate(group, 100) +
                                 "' is not the action group of the pending apiInvocationInput (" +
                                 session.pending_action_group + "). Send the actionGroup of the apiInvocationInput.");
            return;
          }
          if (path != session.pending_api_path || !EqualsIgnoreAsciiCase(method, session.pending_http_method)) {
            failure = Validation(where + ".apiResult is for " + (method.empty() ? "(no httpMethod)" : Truncate(method, 20)) +
                                 " " + (path.empty() ? "(no apiPath)" : Truncate(path, 200)) +
                                 ", but returnControl " + session.pending_invocation_id + " asked for " +
                                 pending_api_text + ". Send the apiPath (as templated in the apiInvocationInput) "
                                 "and httpMethod of the apiInvocationInput unchanged.");
            return;
          }
          if (ar->contains("httpStatusCode") && !(*ar)["httpStatusCode"].is_number_integer()) {
            failure = Validation(where + ".apiResult.httpStatusCode must be an integer (an HTTP status such as 200).");
            return;
          }
          if (ar->contains("httpStatusCode") && (*ar)["httpStatusCode"].get<int64_t>() >= 400) result_failed = true;
        }
        if (StringMember(*result, "responseState") == "FAILURE") result_failed = true;
        const json body = result->contains("responseBody") ? (*result)["responseBody"] : json::object();
        std::string text;
        if (body.is_object()) {
          for (auto it = body.begin(); it != body.end(); ++it) {
            if (it.value().is_object() && it.value().contains("body") && it.value()["body"].is_string()) {
              text = it.value()["body"].get<std::string>();
              break;
            }
          }
        }
        if (!result_text.empty()) result_text += " ";
        result_text += text;
        if (result_function.empty()) {
          // An apiResult matched the pending operation (method compared ignoring case).
          result_function = ar != nullptr ? pending_api_text : StringMember(*fr, "function");
          if (TrimAsciiWhitespace(result_function).empty()) result_function.clear();
        }
      }
      if (result_function.empty()) {
        if (pending_api) {
          result_function = pending_api_text;
        } else {
          const size_t slash = session.pending_function.find('/');
          result_function =
              slash == std::string::npos ? session.pending_function : session.pending_function.substr(slash + 1);
        }
      }
    }

    // Guardrail on the input: a blocked input never reaches the KB or actions.
    const GuardrailSpec::Topic* blocked_in = BlockedTopic(guardrail, input.input_text);
    if (guardrail) {
      tracer.Add(events, "guardrailTrace",
                 [&]() -> json { return GuardrailTraceJson(tracer.NextTraceId(), blocked_in, true); });
    }

    std::string answer;
    std::vector<CitedPart> cited;
    bool returned_control = false;
    std::string final_trace_id;

    if (blocked_in != nullptr) {
      answer = guardrail->blocked_message;
    } else {
      // Pre-processing: the input is classified as valid.
      if (tracer.enabled()) {
        const std::string pre_id = tracer.NextTraceId();
        const std::string pre_prompt = "Classify the user input. Input: " + QuoteForAnswer(input.input_text);
        tracer.Add(events, "preProcessingTrace", [&]() -> json {
          return {{"modelInvocationInput",
                   {{"traceId", pre_id}, {"text", pre_prompt}, {"type", "PRE_PROCESSING"}}}};
        });
        tracer.Add(events, "preProcessingTrace", [&]() -> json {
          return {
              {"modelInvocationOutput",
               {{"traceId", pre_id},
                {"parsedResponse",
                 {{"isValid", true},
                  {"rationale",
                   "The user input is valid: it is a question or request the agent can handle."}}},
                {"rawResponse", {{"content", "<category>D</category>"}}},
                {"metadata",
                 {{"usage", {{"inputTokens", ApproxTokens(pre_prompt)}, {"outputTokens", 8}}}}}}}};
        });
      }
      const std::string orch_id = tracer.NextTraceId();
      final_trace_id = orch_id;
      const std::string orch_prompt = (version->instruction.empty() ? std::string() : version->instruction + "\n\n") +
                                      "User: " + QuoteForAnswer(input.input_text);
      tracer.Add(events, "orchestrationTrace", [&]() -> json {
        return {{"modelInvocationInput",
                 {{"traceId", orch_id}, {"text", orch_prompt}, {"type", "ORCHESTRATION"}}}};
      });
      auto rationale = [&](const std::string& text) {
        tracer.Add(events, "orchestrationTrace", [&]() -> json {
          return {{"rationale", {{"traceId", orch_id}, {"text", text}}}};
        });
      };
      auto model_output = [&](const std::string& raw) {
        tracer.Add(events, "orchestrationTrace", [&]() -> json {
          return {{"modelInvocationOutput",
                   {{"traceId", orch_id},
                    {"rawResponse", {{"content", raw}}},
                    {"metadata",
                     {{"usage",
                       {{"inputTokens", ApproxTokens(orch_prompt)},
                        {"outputTokens", ApproxTokens(raw)}}}}}}}};
        });
      };

      const ReplyRule* rule = nullptr;
      for (const auto& r : version->rules) {
        if (ContainsIgnoreCase(input.input_text, r.match)) {
          rule = &r;
          break;
        }
      }
      // A structured task is answered with JSON: it comes before actions,
      // memory and knowledge answers, which would not fit the schema.
      std::optional<StructuredTask> structured;
      if (results == nullptr && rule == nullptr)
        structured = FindStructuredTask(input.input_text, session.turns);
      // An explicit file export goes to the code interpreter before any
      // action group sees the request.
      const bool export_csv = results == nullptr && rule == nullptr && !structured &&
                              version->code_interpreter && IsCsvExport(input.input_text);
      const ActionFunctionSpec* action = nullptr;
      if (results == nullptr && rule == nullptr && !structured && !export_csv) {
        const std::string input_line = WordLine(input.input_text);
        for (const auto& a : version->actions) {
          for (const auto& w : a.trigger_words) {
            if (LineContainsPhrase(input_line, w)) {
              action = &a;
              break;
            }
          }
          if (action != nullptr) break;
        }
      }

      if (results != nullptr) {
        const std::string group_fn = session.pending_function;
        model_output("The action " + group_fn + " returned its result.");
        tracer.Add(events, "orchestrationTrace", [&]() -> json {
          return {{"observation",
                   {{"traceId", orch_id},
                    {"type", "ACTION_GROUP"},
                    {"actionGroupInvocationOutput",
                     {{"text", Truncate(result_text, kMaxTurnTextBytes)}}}}}};
        });
        rationale("The action " + group_fn + " returned a result; I will answer the user with it.");
        answer = rule != nullptr ? rule->reply
                                 : "The " + result_function + " action " + (result_failed ? "failed" : "completed") +
                                       ": " + Truncate(TrimAsciiWhitespace(result_text), kMaxTurnTextBytes);
        session.pending_invocation_id.clear();
        session.pending_function.clear();
        session.pending_action_group.clear();
        session.pending_api_path.clear();
        session.pending_http_method.clear();
      } else if (rule != nullptr) {
        model_output(rule->reply);
        rationale("A scripted answer applies to this request.");
        answer = rule->reply;
      } else if (structured) {
        rationale(
            "The task asks for one JSON object that matches the given schema; I will fill each "
            "field from "
            "the request.");
        const json value = GenerateSchemaValue(structured->schema, structured->text);
        // Input text may hold invalid UTF-8, which dump() would throw on.
        answer = value.dump(-1, ' ', false, json::error_handler_t::replace);
        model_output(answer);
      } else if (export_csv) {
        const CsvExport file = BuildCsvExport(input.input_text, *version, knowledge, session.turns);
        rationale("The user wants a CSV file; I will write it with the code interpreter.");
        const std::string code = "import csv\nrows = load_" + std::string(file.name == "articles.csv" ? "articles" : "turns") +
                                 "()\nwith open('" + file.name + "', 'w', newline='') as f:\n    csv.writer(f).writerows(rows)\n";
        model_output("<code>" + code + "</code>");
        tracer.Add(events, "orchestrationTrace", [&]() -> json {
          return {
              {"invocationInput",
               {{"traceId", orch_id},
                {"invocationType", "ACTION_GROUP_CODE_INTERPRETER"},
                {"codeInterpreterInvocationInput", {{"code", code}, {"files", json::array()}}}}}};
        });
        tracer.Add(events, "orchestrationTrace", [&]() -> json {
          return {{"observation",
                   {{"traceId", orch_id},
                    {"codeInterpreterInvocationOutput",
                     {{"executionOutput", "wrote " + std::to_string(file.rows) + " rows"},
                      {"files", json::array({file.name})}}}}}};
        });
        events.push_back(AgentEvent{
            "files",
            {{"files", json::array({{{"name", file.name}, {"type", "text/csv"}, {"bytes", Base64Encode(file.content)}}})}},
            false});
        answer = "I exported " + std::to_string(file.rows) + " " + file.what + (file.rows == 1 ? "" : "s") + " to " +
                 file.name + " (" +
                 std::to_string(file.content.size()) + " bytes)" +
                 (file.truncated ? ", stopping at the 1,000,000-byte file limit." : ".");
        model_output(answer);
      } else if (action != nullptr) {
        const std::string invocation_id = UuidLike("invocation|" + seed);
        json parameters = json::array();
        for (const auto& p : action->parameters) {
          parameters.push_back({{"name", p.name},
                                {"type", p.type.empty() ? "string" : p.type},
                                {"value", ExtractParameter(input.input_text, p)}});
        }
        json body_properties = json::array();
        for (const auto& p : action->request_body) {
          body_properties.push_back({{"name", p.name},
                                     {"type", p.type.empty() ? "string" : p.type},
                                     {"value", ExtractParameter(input.input_text, p)}});
        }
        const std::string what = action->is_api() ? "the " + action->http_method + " " + action->api_path +
                                                        " operation"
                                                  : "the " + action->function + " function";
        rationale("The user asks for something " + what + " of the " + action->action_group +
                  " action group does; I will call it.");
        const std::string tool = action->is_api() ? action->http_method + "::" + action->action_group + "::" +
                                                        action->api_path
                                                  : action->action_group + "::" + action->function;
        model_output("<function_calls><invoke><tool_name>" + tool + "</tool_name></invoke></function_calls>");
        json invocation_input;
        if (action->is_api()) {
          invocation_input = {{"actionGroup", action->action_group},
                              {"httpMethod", action->http_method},
                              {"apiPath", action->api_path},
                              {"actionInvocationType", "RESULT"},
                              {"parameters", parameters}};
          if (!action->request_body.empty()) {
            invocation_input["requestBody"] = {
                {"content", {{"application/json", {{"properties", body_properties}}}}}};
          }
          invocation_input = {{"apiInvocationInput", std::move(invocation_input)}};
        } else {
          invocation_input = {{"functionInvocationInput",
                               {{"actionGroup", action->action_group},
                                {"function", action->function},
                                {"actionInvocationType", "RESULT"},
                                {"parameters", parameters}}}};
        }
        tracer.Add(events, "orchestrationTrace", [&]() -> json {
          json group_input{{"actionGroupName", action->action_group},
                           {"executionType", "RETURN_CONTROL"},
                           {"invocationId", invocation_id},
                           {"parameters", parameters}};
          if (!action->is_api()) {
            group_input["function"] = action->function;
          } else {
            group_input["apiPath"] = action->api_path;
            group_input["verb"] = AsciiToLower(action->http_method);
            if (!action->request_body.empty()) {
              group_input["requestBody"] = {{"content", {{"application/json", body_properties}}}};
            }
          }
          return {{"invocationInput",
                   {{"traceId", orch_id}, {"invocationType", "ACTION_GROUP"}, {"actionGroupInvocationInput", group_input}}}};
        });
        events.push_back(AgentEvent{
            "returnControl",
            {{"invocationId", invocation_id}, {"invocationInputs", json::array({std::move(invocation_input)})}},
            false});
        session.pending_invocation_id = invocation_id;
        session.pending_action_group = action->action_group;
        if (action->is_api()) {
          session.pending_function = action->action_group + ": " + action->http_method + " " + action->api_path;
          session.pending_api_path = action->api_path;
          session.pending_http_method = action->http_method;
        } else {
          session.pending_function = action->action_group + "/" + action->function;
          session.pending_api_path.clear();
          session.pending_http_method.clear();
        }
        returned_control = true;
      } else if (IsMemoryQuestion(input.input_text)) {
        if (session.turns.empty()) {
          answer = "This is the start of our conversation: you have not asked me anything before.";
        } else {
          const AgentSessions::Turn* last = nullptr;
          for (auto it = session.turns.rbegin(); it != session.turns.rend(); ++it) {
            if (!TrimAsciiWhitespace(it->user).empty()) {
              last = &*it;
              break;
            }
          }
          answer = last == nullptr ? "Earlier in this session you only sent action results."
                                   : "Earlier you asked: \"" + QuoteForAnswer(last->user) + "\".";
          if (last != nullptr && !last->agent.empty()) answer += " I answered: \"" + QuoteForAnswer(last->agent) + "\".";
        }
        rationale("The user refers to an earlier turn of this session; I will recall it.");
        model_output(answer);
      } else {
        std::vector<Retrieved> found;
        if (!version->knowledge_base_ids.empty()) {
          found = Retrieve(input.input_text, *version, knowledge);
          rationale("I will search the knowledge base for information about the user's question.");
          for (const auto& kb_id : version->knowledge_base_ids) {
            tracer.Add(events, "orchestrationTrace", [&]() -> json {
              return {
                  {"invocationInput",
                   {{"traceId", orch_id},
                    {"invocationType", "KNOWLEDGE_BASE"},
                    {"knowledgeBaseLookupInput",
                     {{"knowledgeBaseId", kb_id}, {"text", QuoteForAnswer(input.input_text)}}}}}};
            });
          }
          tracer.Add(events, "orchestrationTrace", [&]() -> json {
            json refs = json::array();
            for (const auto& r : found) refs.push_back(r.doc->reference);
            return {{"observation",
                     {{"traceId", orch_id},
                      {"type", "KNOWLEDGE_BASE"},
                      {"knowledgeBaseLookupOutput", {{"retrievedReferences", refs}}}}}};
          });
        }
        if (!found.empty()) {
          // One cited sentence per distinct retrieved document (best first).
          std::set<std::string> used;
          for (size_t i = 0; i < found.size(); ++i) {
            if (!used.insert(*found[i].sentence).second) continue;
            std::string lead = i == 0 ? "According to " : " In addition, ";
            const KnowledgeDocument& doc = *found[i].doc->spec;
            lead += doc.title.empty() ? std::string("the knowledge base") : doc.title;
            lead += ": ";
            answer += lead;
            CitedPart part;
            part.start = answer.size();
            answer += *found[i].sentence;
            part.end = answer.size();
            part.references.push_back(found[i].doc->reference);
            cited.push_back(std::move(part));
          }
        } else {
          answer = version->knowledge_base_ids.empty()
                       ? "I can help with that. You asked: \"" + QuoteForAnswer(input.input_text) + "\"."
                       : "I could not find information about that in the knowledge base. You asked: \"" +
                             QuoteForAnswer(input.input_text) + "\".";
        }
        model_output(answer);
      }
    }

    if (!returned_control) {
      // Guardrail on the answer.
      if (blocked_in == nullptr && guardrail) {
        const GuardrailSpec::Topic* blocked_out = BlockedTopic(guardrail, answer);
        tracer.Add(events, "guardrailTrace", [&]() -> json {
          return GuardrailTraceJson(tracer.NextTraceId(), blocked_out, false);
        });
        if (blocked_out != nullptr) {
          answer = guardrail->blocked_message;
          cited.clear();
        }
      }
      if (blocked_in == nullptr) {
        tracer.Add(events, "orchestrationTrace", [&]() -> json {
          return {{"observation",
                   {{"traceId", final_trace_id},
                    {"type", "FINISH"},
                    {"finalResponse", {{"text", answer}}}}}};
        });
        if (tracer.enabled()) {
          const std::string post_id = tracer.NextTraceId();
          const std::string post_prompt = "Rewrite the answer for the user. Answer: " + QuoteForAnswer(answer);
          tracer.Add(events, "postProcessingTrace", [&]() -> json {
            return {{"modelInvocationInput",
                     {{"traceId", post_id}, {"text", post_prompt}, {"type", "POST_PROCESSING"}}}};
          });
          tracer.Add(events, "postProcessingTrace", [&]() -> json {
            return {{"modelInvocationOutput",
                     {{"traceId", post_id},
                      {"parsedResponse", {{"text", answer}}},
                      {"rawResponse", {{"content", answer}}},
                      {"metadata",
                       {{"usage",
                         {{"inputTokens", ApproxTokens(post_prompt)},
                          {"outputTokens", ApproxTokens(answer)}}}}}}}};
          });
        }
      }
      if (input.stream_final_response) {
        for (const auto& [s, e] : SplitForStreaming(answer)) {
          events.push_back(AgentEvent{"chunk", ChunkPayload(std::string_view(answer).substr(s, e - s), cited, s), false});
        }
      } else {
        events.push_back(AgentEvent{"chunk", ChunkPayload(answer, cited, 0), false});
      }
    }

    // Memory of this turn, bounded.
    session.turns.push_back({Truncate(input.input_text, kMaxTurnTextBytes), Truncate(answer, kMaxTurnTextBytes)});
    if (session.turns.size() > kMaxTurnsPerSession) session.turns.erase(session.turns.begin());
  });

  if (failure) {
    // A rejected first call leaves no session behind.
    if (session_was_new) sessions.End(key);
    return *failure;
  }
  if (input.end_session) sessions.End(key);
  return events;
}

}  // namespace quarry::sim
