#include "domain/services.h"

#include <algorithm>
#include <cmath>

#include "aws/region.h"
#include "common/encoding.h"
#include "common/ids.h"
#include "domain/audit.h"

namespace quarry::domain {
namespace {

using nlohmann::json;

constexpr size_t kMaxNameLength = 100;
constexpr size_t kMaxDescriptionLength = 2000;

constexpr std::string_view kServiceColumns =
    "id, org_id, name, type, description, provider_id, model_id, invocation_target, target_kind, "
    "foundation_model_id, model_name, temperature, max_tokens, top_p, stop_sequences, system_prompt, notices, "
    "version, created_by, created_at, updated_at";

constexpr std::string_view kInsertService =
    "INSERT INTO ai_services (id, org_id, name, name_key, type, description, provider_id, model_id, "
    "invocation_target, target_kind, foundation_model_id, model_name, temperature, max_tokens, top_p, "
    "stop_sequences, system_prompt, notices, version, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, "
    "$5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, 1, $19, $20, $20)";

constexpr std::string_view kUpdateService =
    "UPDATE ai_services SET name = $3, name_key = $4, description = $5, provider_id = $6, model_id = $7, "
    "invocation_target = $8, target_kind = $9, foundation_model_id = $10, model_name = $11, temperature = $12, "
    "max_tokens = $13, top_p = $14, stop_sequences = $15, system_prompt = $16, notices = $17, "
    "version = version + 1, updated_at = $18 WHERE org_id = $1 AND id = $2 AND version = $19";

constexpr std::string_view kDeleteService = "DELETE FROM ai_services WHERE org_id = $1 AND id = $2";

FieldError Err(std::string field, std::string message, std::string hint = {}) {
  FieldError e;
  e.field = std::move(field);
  e.message = std::move(message);
  e.hint = std::move(hint);
  return e;
}

std::string Quote(std::string_view text) { return "'" + aws::internal::QuoteForMessage(text, 120) + "'"; }

// Strips a system profile's geography prefix ("us.", "global.", ...).
std::string_view WithoutGeography(std::string_view id) {
  for (std::string_view prefix : {"us-gov.", "us.", "eu.", "apac.", "global.", "jp.", "au.", "ca."}) {
    if (id.starts_with(prefix)) return id.substr(prefix.size());
  }
  return id;
}

struct Family {
  std::string_view key;
  int64_t max_output;
  int64_t context;
  bool vision;
  bool tools;
};

// Most specific first: "claude-opus-4-1" must win over "claude-opus-4".
constexpr Family kFamilies[] = {
    {"claude-opus-4-5", 64'000, 200'000, true, true},   {"claude-opus-4-1", 32'000, 200'000, true, true},
    {"claude-opus-4", 32'000, 200'000, true, true},     {"claude-sonnet-4-5", 64'000, 200'000, true, true},
    {"claude-sonnet-4", 64'000, 200'000, true, true},   {"claude-haiku-4-5", 64'000, 200'000, true, true},
    {"claude-3-7-sonnet", 64'000, 200'000, true, true}, {"claude-3-5-sonnet", 8'192, 200'000, true, true},
    {"claude-3-5-haiku", 8'192, 200'000, false, true},  {"claude-3-opus", 4'096, 200'000, true, true},
    {"claude-3-sonnet", 4'096, 200'000, true, true},    {"claude-3-haiku", 4'096, 200'000, true, true},
    {"claude-v2:1", 4'096, 200'000, false, false},      {"claude-v2", 4'096, 100'000, false, false},
    {"claude-instant", 4'096, 100'000, false, false},
};

json StringArray(const std::vector<std::string>& items) {
  json a = json::array();
  for (const std::string& s : items) a.push_back(s);
  return a;
}

std::vector<std::string> StringsFrom(const json& value) {
  std::vector<std::string> out;
  if (!value.is_array()) return out;
  for (const json& v : value) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

bool Contains(const std::vector<std::string>& list, std::string_view item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// One catalogue target as stored (bedrock::ModelCatalogue::ToJson()).
struct Target {
  std::string kind, id, arn, name, provider, recommended_profile_id, unusable_reason;
  std::vector<std::string> model_ids;
  bool on_demand = false, requires_profile = false, streaming = false, active = true, usable = true;
};

std::vector<Target> TargetsOf(const CachedCatalogue& cached) {
  std::vector<Target> out;
  const json& list = cached.catalogue.contains("targets") ? cached.catalogue["targets"] : json::array();
  if (!list.is_array()) return out;
  for (const json& t : list) {
    if (!t.is_object()) continue;
    Target x;
    x.kind = t.value("kind", "");
    x.id = t.value("id", "");
    x.arn = t.value("arn", "");
    x.name = t.value("name", "");
    x.provider = t.value("provider", "");
    x.recommended_profile_id = t.value("recommended_profile_id", "");
    x.unusable_reason = t.value("unusable_reason", "");
    x.model_ids = StringsFrom(t.value("model_ids", json::array()));
    x.on_demand = t.value("on_demand", false);
    x.requires_profile = t.value("requires_profile", false);
    x.streaming = t.value("streaming", false);
    x.active = t.value("active", true);
    x.usable = t.value("usable", true);
    // Facts learnt from calls since the fetch.
    if (Contains(cached.unusable, x.id) || (!x.arn.empty() && Contains(cached.unusable, x.arn))) {
      x.usable = false;
      if (x.unusable_reason.empty()) {
        x.unusable_reason = "a call to " + x.id + " in " + cached.region +
                            " was denied for this provider's identity (check Model access in the Bedrock console "
                            "and the IAM policy)";
      }
    }
    if (x.id.empty()) continue;
    out.push_back(std::move(x));
  }
  return out;
}

std::string FoundationOf(const Target& t) {
  if (t.kind == "foundation-model") return t.id;
  if (!t.model_ids.empty()) return t.model_ids.front();
  if (t.kind == "system-profile") return std::string(WithoutGeography(t.id));
  return "";
}

json CapabilitiesJson(const ClaudeLimits& limits, bool streaming) {
  json c = {{"streaming", streaming}};
  if (limits.known) {
    c["max_output_tokens"] = limits.max_output_tokens;
    c["context_window"] = limits.context_window;
    c["vision"] = limits.vision;
    c["tool_use"] = limits.tool_use;
  } else {
    c["max_output_tokens"] = nullptr;
    c["context_window"] = nullptr;
  }
  return c;
}

std::optional<std::optional<double>> ParseUnitFloat(const json& body, std::string_view key,
                                                    std::optional<FieldError>* error) {
  auto it = body.find(std::string(key));
  if (it == body.end()) return std::nullopt;
  if (it->is_null()) return std::optional<double>();
  if (!it->is_number()) {
    *error = Err(std::string(key), std::string(key) + " must be a number between 0 and 1");
    return std::nullopt;
  }
  double v = it->get<double>();
  if (!std::isfinite(v) || v < 0.0 || v > 1.0) {
    *error = Err(std::string(key), std::string(key) + " is " + it->dump() + "; it must be between 0 and 1",
                 key == "temperature" ? "Use 0 for the most predictable answers, up to 1 for the most varied."
                                      : "top_p is the nucleus sampling mass; leave it out unless you need it.");
    return std::nullopt;
  }
  return std::optional<double>(v);
}

Service ServiceFromRow(const store::Row& r) {
  Service s;
  s.id = r.Text(0);
  s.org_id = r.Text(1);
  s.name = r.Text(2);
  s.type = r.Text(3);
  s.description = r.Text(4);
  s.provider_id = r.Text(5);
  s.model_id = r.Text(6);
  s.invocation_target = r.Text(7);
  s.target_kind = r.Text(8);
  s.foundation_model_id = r.Text(9);
  s.model_name = r.Text(10);
  s.temperature = r.Double(11);
  s.max_tokens = r.Int(12);
  if (!r.IsNull(13)) s.top_p = r.Double(13);
  s.stop_sequences = StringsFrom(json::parse(r.Text(14), nullptr, false));
  s.system_prompt = r.Text(15);
  s.notices = StringsFrom(json::parse(r.Text(16), nullptr, false));
  s.version = r.Int(17);
  s.created_by = r.Text(18);
  s.created_at = r.Text(19);
  s.updated_at = r.Text(20);
  return s;
}

store::Value TopP(const Service& s) { return s.top_p ? store::Value(*s.top_p) : store::Null(); }

Status NameTaken(const std::string& name) {
  return Status(StatusCode::kAlreadyExists, "a service named " + Quote(name) +
                                                " already exists in this organization; choose another name");
}

}  // namespace

// ---------------------------------------------------------------------------
// Claude limits
// ---------------------------------------------------------------------------

bool IsClaudeModelId(std::string_view model_id) {
  return WithoutGeography(model_id).starts_with("anthropic.claude");
}

ClaudeLimits ClaudeLimitsFor(std::string_view model_id) {
  ClaudeLimits limits;
  std::string_view id = WithoutGeography(model_id);
  if (!id.starts_with("anthropic.")) return limits;
  id.remove_prefix(std::string_view("anthropic.").size());
  for (const Family& f : kFamilies) {
    if (!id.starts_with(f.key)) continue;
    limits.known = true;
    limits.family = std::string(f.key);
    limits.max_output_tokens = f.max_output;
    limits.context_window = f.context;
    limits.vision = f.vision;
    limits.tool_use = f.tools;
    return limits;
  }
  return limits;
}

// ---------------------------------------------------------------------------
// Catalogue view and model choice
// ---------------------------------------------------------------------------

json ModelsView(const Provider& provider, const CachedCatalogue& cached, bool all) {
  std::vector<Target> targets = TargetsOf(cached);
  json models = json::array();
  json profiles = json::array();
  for (const Target& t : targets) {
    const std::string foundation = FoundationOf(t);
    const bool claude = IsClaudeModelId(foundation);
    if (!all && !claude) continue;
    if (t.kind != "foundation-model") {
      profiles.push_back({{"id", t.id},
                          {"kind", t.kind},
                          {"arn", t.arn},
                          {"name", t.name},
                          {"model_ids", StringArray(t.model_ids)},
                          {"usable", t.usable},
                          {"unusable_reason", t.usable ? json(nullptr) : json(t.unusable_reason)}});
      continue;
    }
    std::vector<std::string> profile_ids;
    for (const Target& p : targets) {
      if (p.kind == "system-profile" && Contains(p.model_ids, t.id)) profile_ids.push_back(p.id);
    }
    bool usable = t.usable;
    std::string reason = t.unusable_reason;
    std::string target = t.on_demand ? t.id : t.recommended_profile_id;
    if (t.requires_profile && t.recommended_profile_id.empty()) {
      usable = false;
      reason = "this model runs only through an inference profile, and none for it is offered in " +
               provider.config.region;
    }
    if (usable && !t.recommended_profile_id.empty()) {
      const Target* profile = nullptr;
      for (const Target& p : targets) {
        if (p.id == t.recommended_profile_id) profile = &p;
      }
      if (profile != nullptr && !profile->usable && t.requires_profile) {
        usable = false;
        reason = profile->unusable_reason;
      }
    }
    ClaudeLimits limits = ClaudeLimitsFor(t.id);
    models.push_back({{"model_id", t.id},
                      {"arn", t.arn},
                      {"name", t.name},
                      {"provider", t.provider},
                      {"claude", claude},
                      {"on_demand", t.on_demand},
                      {"requires_profile", t.requires_profile},
                      {"profile_id", t.recommended_profile_id.empty() ? json(nullptr) : json(t.recommended_profile_id)},
                      {"profile_ids", StringArray(profile_ids)},
                      {"invocation_target", target.empty() ? json(nullptr) : json(target)},
                      {"streaming", t.streaming},
                      {"active", t.active},
                      {"lifecycle", t.active ? "ACTIVE" : "LEGACY"},
                      {"usable", usable},
                      {"unusable_reason", usable ? json(nullptr) : json(reason)},
                      {"capabilities", CapabilitiesJson(limits, t.streaming)}});
  }
  return {{"provider_id", provider.id},
          {"region", provider.config.region},
          {"fetched_at", cached.fetched_at},
          {"models", models},
          {"profiles", profiles}};
}

std::optional<FieldError> ResolveModelChoice(const CachedCatalogue& cached, const std::string& region,
                                             const std::string& requested, ModelChoice* out) {
  *out = ModelChoice{};
  out->requested = requested;
  std::vector<Target> targets = TargetsOf(cached);
  const Target* found = nullptr;
  for (const Target& t : targets) {
    if (t.id == requested || (!t.arn.empty() && t.arn == requested)) found = &t;
  }
  if (found == nullptr) {
    std::string examples;
    int shown = 0;
    for (const Target& t : targets) {
      if (!IsClaudeModelId(FoundationOf(t)) || !t.usable || shown >= 6) continue;
      examples += (examples.empty() ? "" : ", ") + t.id;
      ++shown;
    }
    FieldError e = Err("model", Quote(requested) + " is not in this provider's model catalogue for " + region,
                       "Pick a model or inference profile from GET /api/v1/providers/{provider_id}/models (add "
                       "?refresh=true if it was enabled recently)" +
                           (examples.empty() ? std::string(".") : "; for example: " + examples + "."));
    e.code = "model_not_available";
    return e;
  }
  const Target& t = *found;
  const std::string foundation = FoundationOf(t);
  if (!IsClaudeModelId(foundation)) {
    FieldError e = Err("model", Quote(requested) + " is not a Claude model",
                       "AI Services of type llm run Anthropic Claude models on Bedrock; choose one of the Claude "
                       "models the catalogue lists.");
    e.code = "model_not_supported";
    return e;
  }
  if (!t.usable) {
    FieldError e = Err("model", Quote(requested) + " cannot be used by this provider: " + t.unusable_reason,
                       "Enable the model under Model access in the Bedrock console for this account and region, and "
                       "allow bedrock:InvokeModel on it in the IAM policy; then refresh the catalogue.");
    e.code = "model_not_usable";
    return e;
  }
  out->foundation_model_id = foundation;
  out->model_name = t.name;
  out->limits = ClaudeLimitsFor(foundation);
  out->target_kind = t.kind;
  out->invocation_target = t.id;
  if (t.kind == "foundation-model" && t.requires_profile) {
    if (t.recommended_profile_id.empty()) {
      FieldError e = Err("model",
                         Quote(requested) + " runs only through an inference profile, and no profile for it is "
                                            "offered in " + region,
                         "Choose a model that runs on demand in " + region +
                             ", or use a provider in a region whose profiles include this model.");
      e.code = "model_needs_profile";
      return e;
    }
    for (const Target& p : targets) {
      if (p.id == t.recommended_profile_id && !p.usable) {
        FieldError e = Err("model", "the inference profile " + p.id + " cannot be used: " + p.unusable_reason,
                           "Enable model access for the models behind the profile, then refresh the catalogue.");
        e.code = "model_not_usable";
        return e;
      }
    }
    out->invocation_target = t.recommended_profile_id;
    out->target_kind = "system-profile";
    out->notices.push_back(t.name + " (" + t.id + ") is not available on demand in " + region +
                           "; the service calls it through the inference profile " + t.recommended_profile_id + ".");
  }
  if (!t.active) {
    out->notices.push_back((t.name.empty() ? t.id : t.name) +
                           " is a legacy model; AWS will retire it. Plan a move to a newer Claude model.");
  }
  if (!out->limits.known) {
    out->notices.push_back("The output limit of " + foundation +
                           " is not known to this Quarry version; Bedrock will refuse a max_tokens above it.");
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Services
// ---------------------------------------------------------------------------

json ServiceToJson(const Service& s) {
  return {{"id", s.id},
          {"name", s.name},
          {"type", s.type},
          {"description", s.description},
          {"provider_id", s.provider_id},
          {"model",
           {{"requested", s.model_id},
            {"invocation_target", s.invocation_target},
            {"target_kind", s.target_kind},
            {"foundation_model_id", s.foundation_model_id},
            {"name", s.model_name}}},
          {"temperature", s.temperature},
          {"max_tokens", s.max_tokens},
          {"top_p", s.top_p ? json(*s.top_p) : json(nullptr)},
          {"stop_sequences", StringArray(s.stop_sequences)},
          {"system_prompt", s.system_prompt},
          {"notices", StringArray(s.notices)},
          {"version", s.version},
          {"created_by", s.created_by},
          {"created_at", s.created_at},
          {"updated_at", s.updated_at}};
}

std::optional<FieldError> ParseServiceInput(const json& body, bool create, ServiceInput* out) {
  *out = ServiceInput{};
  if (auto e = CheckKnownMembers(body, "", {"name", "type", "description", "provider_id", "model", "model_id",
                                            "temperature", "max_tokens", "top_p", "stop_sequences",
                                            "system_prompt"})) {
    return e;
  }
  auto str = [&](std::string_view key, std::optional<std::string>* slot) -> std::optional<FieldError> {
    auto it = body.find(std::string(key));
    if (it == body.end() || it->is_null()) return std::nullopt;
    if (!it->is_string()) return Err(std::string(key), std::string(key) + " must be a string");
    *slot = it->get<std::string>();
    return std::nullopt;
  };
  if (auto it = body.find("type"); it != body.end() && !it->is_null()) {
    if (!it->is_string() || it->get<std::string>() != "llm") {
      return Err("type", "type must be \"llm\"", "LLM is the only service type in this version.");
    }
  }
  if (auto e = str("name", &out->name)) return e;
  if (auto e = str("description", &out->description)) return e;
  if (auto e = str("provider_id", &out->provider_id)) return e;
  if (auto e = str("model", &out->model)) return e;
  if (!out->model) {
    if (auto e = str("model_id", &out->model)) return e;
  }
  if (auto e = str("system_prompt", &out->system_prompt)) return e;
  if (out->name) {
    std::string_view trimmed = TrimAsciiWhitespace(*out->name);
    if (trimmed.empty()) return Err("name", "name is empty", "Give the service a name, e.g. \"Ticket triage\".");
    if (trimmed.size() != out->name->size()) return Err("name", "name has spaces at the start or end");
    if (out->name->size() > kMaxNameLength) return Err("name", "name is longer than 100 characters");
  }
  if (out->description && out->description->size() > kMaxDescriptionLength) {
    return Err("description", "description is longer than 2000 characters", "Shorten it.");
  }
  if (out->model && out->model->empty()) {
    return Err("model", "model is empty", "Pick a model id or inference profile from the provider's catalogue.");
  }
  if (out->system_prompt && out->system_prompt->size() > kMaxSystemPromptLength) {
    return Err("system_prompt", "system_prompt is longer than 100,000 characters", "Shorten the system prompt.");
  }
  std::optional<FieldError> error;
  if (auto t = ParseUnitFloat(body, "temperature", &error)) {
    if (!t->has_value()) return Err("temperature", "temperature cannot be null", "Use a number between 0 and 1.");
    out->temperature = **t;
  }
  if (error) return error;
  out->top_p = ParseUnitFloat(body, "top_p", &error);
  if (error) return error;
  if (auto it = body.find("max_tokens"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer() && !(it->is_number_unsigned())) {
      return Err("max_tokens", "max_tokens must be a whole number", "For example 1024.");
    }
    int64_t v = it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)
                    ? INT64_MAX
                    : it->get<int64_t>();
    if (v < 1) return Err("max_tokens", "max_tokens must be at least 1", "For example 1024.");
    out->max_tokens = v;
  }
  if (auto it = body.find("stop_sequences"); it != body.end() && !it->is_null()) {
    if (!it->is_array()) return Err("stop_sequences", "stop_sequences must be an array of strings");
    if (it->size() > kMaxStopSequences) {
      return Err("stop_sequences", "stop_sequences has " + std::to_string(it->size()) + " entries; at most " +
                                       std::to_string(kMaxStopSequences) + " are allowed");
    }
    std::vector<std::string> list;
    for (size_t i = 0; i < it->size(); ++i) {
      const json& v = (*it)[i];
      std::string field = "stop_sequences[" + std::to_string(i) + "]";
      if (!v.is_string()) return Err(field, field + " must be a string");
      std::string s = v.get<std::string>();
      if (s.empty() || TrimAsciiWhitespace(s).empty()) {
        return Err(field, field + " is empty or only whitespace",
                   "Claude refuses whitespace-only stop sequences; remove it.");
      }
      if (s.size() > kMaxStopSequenceLength) return Err(field, field + " is longer than 1000 characters");
      list.push_back(std::move(s));
    }
    out->stop_sequences = std::move(list);
  }
  if (create) {
    if (!out->name) return Err("name", "name is required", "Give the service a name, e.g. \"Ticket triage\".");
    if (!out->provider_id) {
      return Err("provider_id", "provider_id is required",
                 "Choose a working Amazon Bedrock provider (GET /api/v1/providers?status=working).");
    }
    if (!out->model) {
      return Err("model", "model is required",
                 "Pick a Claude model or inference profile from GET /api/v1/providers/{provider_id}/models.");
    }
  }
  return std::nullopt;
}

std::optional<FieldError> ApplyServiceInput(const Service* existing, const ServiceInput& input,
                                            const ModelChoice* model, Service* out) {
  Service s = existing != nullptr ? *existing : Service{};
  if (input.name) s.name = *input.name;
  if (input.description) s.description = *input.description;
  if (input.provider_id) s.provider_id = *input.provider_id;
  if (model != nullptr) {
    s.model_id = model->requested;
    s.invocation_target = model->invocation_target;
    s.target_kind = model->target_kind;
    s.foundation_model_id = model->foundation_model_id;
    s.model_name = model->model_name;
    s.notices = model->notices;
  }
  if (input.temperature) s.temperature = *input.temperature;
  if (input.max_tokens) s.max_tokens = *input.max_tokens;
  if (input.top_p) s.top_p = *input.top_p;
  if (input.stop_sequences) s.stop_sequences = *input.stop_sequences;
  if (input.system_prompt) s.system_prompt = *input.system_prompt;

  ClaudeLimits limits = model != nullptr ? model->limits : ClaudeLimitsFor(s.foundation_model_id);
  if (limits.known && s.max_tokens > limits.max_output_tokens) {
    FieldError e = Err("max_tokens",
                       "max_tokens is " + std::to_string(s.max_tokens) + ", above the limit of " +
                           std::to_string(limits.max_output_tokens) + " output tokens of " +
                           (s.model_name.empty() ? s.foundation_model_id : s.model_name),
                       "Use at most " + std::to_string(limits.max_output_tokens) +
                           ", or choose a model with a larger output limit.");
    e.code = "max_tokens_above_model_limit";
    return e;
  }
  if (!limits.known && s.max_tokens > 200'000) {
    return Err("max_tokens", "max_tokens is " + std::to_string(s.max_tokens) + ", more than any Claude model returns",
               "Use a value of a few thousand at most.");
  }
  *out = std::move(s);
  return std::nullopt;
}

Result<Service> CreateService(store::Tx& tx, const Clock& clock, const Principal& actor, Service s,
                              const std::string& request_id) {
  s.id = NewId("svc");
  s.org_id = actor.org_id;
  s.created_by = actor.user_id;
  s.created_at = s.updated_at = NowTimestamp(clock);
  s.version = 1;
  Result<int64_t> inserted = tx.Exec(
      kInsertService, {s.id, s.org_id, s.name, AsciiToLower(s.name), s.type, s.description, s.provider_id, s.model_id,
                       s.invocation_target, s.target_kind, s.foundation_model_id, s.model_name, s.temperature,
                       s.max_tokens, TopP(s), StringArray(s.stop_sequences).dump(), s.system_prompt,
                       StringArray(s.notices).dump(), s.created_by, s.created_at});
  if (!inserted.ok()) {
    if (inserted.status().code() == StatusCode::kAlreadyExists) return NameTaken(s.name);
    return inserted.status();
  }
  QUARRY_RETURN_IF_ERROR(RecordAudit(tx, clock, &actor,
                                     {.org_id = s.org_id,
                                      .action = "service.create",
                                      .target_type = "service",
                                      .target_id = s.id,
                                      .after = ServiceToJson(s),
                                      .request_id = request_id}));
  return s;
}

Result<Service> GetService(store::Tx& tx, const std::string& org_id, const std::string& service_id) {
  if (!IsWellFormedId(service_id, "svc")) {
    return NotFoundError("service " + Quote(service_id) +
                         " not found; service ids look like svc_...; list services with GET /api/v1/services");
  }
  std::string sql = "SELECT " + std::string(kServiceColumns) + " FROM ai_services WHERE org_id = $1 AND id = $2";
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, {org_id, service_id}));
  if (rows.empty()) {
    return NotFoundError("service " + service_id + " not found in this organization; list services with GET "
                                                   "/api/v1/services");
  }
  return ServiceFromRow(rows.rows[0]);
}

Result<Page<Service>> ListServices(store::Tx& tx, const std::string& org_id, const PageRequest& page,
                                   std::string_view provider_id) {
  std::string sql = "SELECT " + std::string(kServiceColumns) + " FROM ai_services WHERE org_id = $1";
  store::Params params = {org_id};
  if (!provider_id.empty()) {
    params.push_back(std::string(provider_id));
    sql += " AND provider_id = $" + std::to_string(params.size());
  }
  QUARRY_RETURN_IF_ERROR(AppendKeysetPage(page, &sql, &params));
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, params));
  return TakeKeysetPage<Service>(rows, page.limit, ServiceFromRow);
}

Result<Service> UpdateService(store::Tx& tx, const Clock& clock, const Principal& actor, const Service& before,
                              Service s, const std::string& request_id) {
  s.updated_at = NowTimestamp(clock);
  Result<int64_t> changed = tx.Exec(
      kUpdateService, {s.org_id, s.id, s.name, AsciiToLower(s.name), s.description, s.provider_id, s.model_id,
                       s.invocation_target, s.target_kind, s.foundation_model_id, s.model_name, s.temperature,
                       s.max_tokens, TopP(s), StringArray(s.stop_sequences).dump(), s.system_prompt,
                       StringArray(s.notices).dump(), s.updated_at, before.version});
  if (!changed.ok()) {
    if (changed.status().code() == StatusCode::kAlreadyExists) return NameTaken(s.name);
    return changed.status();
  }
  if (*changed == 0) {
    return Status(StatusCode::kAborted, "service " + s.id + " changed while this update ran; fetch it again and retry");
  }
  s.version = before.version + 1;
  QUARRY_RETURN_IF_ERROR(RecordAudit(tx, clock, &actor,
                                     {.org_id = s.org_id,
                                      .action = "service.update",
                                      .target_type = "service",
                                      .target_id = s.id,
                                      .before = ServiceToJson(before),
                                      .after = ServiceToJson(s),
                                      .request_id = request_id}));
  return s;
}

Status DeleteService(store::Tx& tx, const Clock& clock, const Principal& actor, const Service& service,
                     const std::string& request_id) {
  QUARRY_ASSIGN_OR_RETURN(int64_t deleted, tx.Exec(kDeleteService, {service.org_id, service.id}));
  if (deleted == 0) return NotFoundError("service " + service.id + " not found");
  return RecordAudit(tx, clock, &actor,
                     {.org_id = service.org_id,
                      .action = "service.delete",
                      .target_type = "service",
                      .target_id = service.id,
                      .before = ServiceToJson(service),
                      .request_id = request_id});
}

}  // namespace quarry::domain
