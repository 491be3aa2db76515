#include "domain/providers.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "aws/arn.h"
#include "aws/region.h"
#include "common/encoding.h"
#include "common/ids.h"
#include "domain/audit.h"

namespace quarry::domain {
namespace {

using nlohmann::json;

constexpr std::string_view kPurposeAccessKeyId = "access_key_id";
constexpr std::string_view kPurposeSecretAccessKey = "secret_access_key";
constexpr std::string_view kPurposeSessionToken = "session_token";
constexpr std::string_view kPurposeApiKey = "api_key";

constexpr size_t kMaxNameLength = 100;
constexpr size_t kMaxSecretLength = 4096;
constexpr size_t kMaxSessionTokenLength = 16384;
constexpr size_t kMaxUrlLength = 2048;

constexpr std::string_view kProviderColumns =
    "id, org_id, name, region, credential_kind, config, secret_refs, access_key_hint, credentials_set_at, "
    "status, last_error, last_test, last_tested_at, identity_arn, version, created_by, created_at, updated_at";

constexpr std::string_view kInsertProvider =
    "INSERT INTO providers (id, org_id, name, name_key, region, credential_kind, config, secret_refs, "
    "access_key_hint, credentials_set_at, status, last_error, last_test, last_tested_at, identity_arn, version, "
    "created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL, NULL, "
    "'', 1, $12, $13, $13)";

constexpr std::string_view kUpdateProvider =
    "UPDATE providers SET name = $3, name_key = $4, region = $5, credential_kind = $6, config = $7, "
    "secret_refs = $8, access_key_hint = $9, credentials_set_at = $10, status = $11, last_error = $12, "
    "last_test = $13, last_tested_at = $14, identity_arn = $15, version = version + 1, updated_at = $16 "
    "WHERE org_id = $1 AND id = $2 AND version = $17";

constexpr std::string_view kRecordTest =
    "UPDATE providers SET status = $3, last_error = $4, last_test = $5, last_tested_at = $6, identity_arn = $7 "
    "WHERE org_id = $1 AND id = $2";

constexpr std::string_view kDeleteProvider = "DELETE FROM providers WHERE org_id = $1 AND id = $2";

constexpr std::string_view kServicesUsingProvider =
    "SELECT name FROM ai_services WHERE org_id = $1 AND provider_id = $2 ORDER BY name LIMIT 10";
constexpr std::string_view kAgentsUsingProvider =
    "SELECT name FROM agent_connections WHERE org_id = $1 AND provider_id = $2 ORDER BY name LIMIT 10";

constexpr std::string_view kGetCatalogue =
    "SELECT region, catalogue, fetched_at, unusable FROM provider_catalogues WHERE provider_id = $1";
constexpr std::string_view kPutCatalogue =
    "INSERT INTO provider_catalogues (provider_id, org_id, region, catalogue, fetched_at, unusable) "
    "VALUES ($1, $2, $3, $4, $5, '[]') ON CONFLICT (provider_id) DO UPDATE SET region = excluded.region, "
    "catalogue = excluded.catalogue, fetched_at = excluded.fetched_at, "
    "unusable = CASE WHEN provider_catalogues.region = excluded.region THEN provider_catalogues.unusable "
    "ELSE '[]' END";
constexpr std::string_view kGetUnusable = "SELECT unusable, region FROM provider_catalogues WHERE provider_id = $1";
constexpr std::string_view kSetUnusable = "UPDATE provider_catalogues SET unusable = $2 WHERE provider_id = $1";

std::string NameKey(std::string_view name) { return AsciiToLower(name); }

FieldError Err(std::string field, std::string message, std::string hint = {}) {
  FieldError e;
  e.field = std::move(field);
  e.message = std::move(message);
  e.hint = std::move(hint);
  return e;
}

std::string Quote(std::string_view text) { return "'" + aws::internal::QuoteForMessage(text, 80) + "'"; }

bool HasSpaceOrControl(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
  });
}

// Optional string member: absent/null -> nullopt; otherwise must be a string.
std::optional<FieldError> OptString(const json& obj, std::string_view key, std::string_view path,
                                    std::optional<std::string>* out) {
  auto it = obj.find(std::string(key));
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) return Err(std::string(path), std::string(path) + " must be a string");
  *out = it->get<std::string>();
  return std::nullopt;
}

std::optional<FieldError> OptSecret(const json& obj, std::string_view key, std::string_view path, size_t max_len,
                                    std::optional<store::SecretString>* out) {
  auto it = obj.find(std::string(key));
  if (it == obj.end() || it->is_null()) return std::nullopt;
  // Never echo the value: a secret pasted in the wrong place must not come
  // back in an error.
  if (!it->is_string()) return Err(std::string(path), std::string(path) + " must be a string");
  std::string value = it->get<std::string>();
  if (value.empty()) return Err(std::string(path), std::string(path) + " is empty", "Paste the full value.");
  if (value.size() > max_len) {
    return Err(std::string(path), std::string(path) + " is longer than " + std::to_string(max_len) + " characters",
               "Check that you pasted only the value.");
  }
  if (HasSpaceOrControl(value)) {
    return Err(std::string(path), std::string(path) + " contains spaces or control characters",
               "Paste the value without surrounding spaces, quotes or line breaks.");
  }
  *out = store::SecretString(std::move(value));
  return std::nullopt;
}

std::optional<FieldError> CheckName(const std::string& name) {
  std::string_view trimmed = TrimAsciiWhitespace(name);
  if (trimmed.empty()) return Err("name", "name is empty", "Give the provider a name, e.g. \"Bedrock production\".");
  if (trimmed.size() != name.size()) {
    return Err("name", "name has spaces at the start or end", "Remove the surrounding spaces.");
  }
  if (name.size() > kMaxNameLength) {
    return Err("name", "name is longer than " + std::to_string(kMaxNameLength) + " characters", "Use a shorter name.");
  }
  if (std::any_of(name.begin(), name.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; })) {
    return Err("name", "name contains control characters", "Use printable characters only.");
  }
  return std::nullopt;
}

std::optional<FieldError> CheckRegion(const std::string& region) {
  Result<aws::Region> parsed = aws::ParseRegion(region);
  if (!parsed.ok()) {
    return Err("region", parsed.status().message(),
               "Use the region where your Bedrock models and agents are, e.g. us-east-1 or us-east-2.");
  }
  return std::nullopt;
}

std::optional<FieldError> CheckUrl(const std::string& url, const std::string& field) {
  if (url.size() > kMaxUrlLength) return Err(field, field + " is too long", "Use an http(s)://host[:port] URL.");
  if (!(url.starts_with("https://") || url.starts_with("http://")) || HasSpaceOrControl(url)) {
    return Err(field, field + " " + Quote(url) + " is not an http:// or https:// URL",
               "Write the endpoint as https://host[:port], e.g. https://bedrock-runtime.us-east-1.amazonaws.com "
               "or a VPC endpoint's DNS name.");
  }
  std::string_view rest = std::string_view(url).substr(url.find("://") + 3);
  if (rest.empty() || rest.front() == '/' || rest.front() == ':') {
    return Err(field, field + " " + Quote(url) + " has no host", "Write the endpoint as https://host[:port].");
  }
  if (rest.find('@') != std::string_view::npos) {
    return Err(field, field + " must not contain user information", "Remove the 'user@' part of the URL.");
  }
  return std::nullopt;
}

std::optional<FieldError> ParseEndpoints(const json& value, std::string_view path, ProviderEndpoints* out) {
  *out = ProviderEndpoints{};
  if (value.is_null()) return std::nullopt;
  if (!value.is_object()) {
    return Err(std::string(path), std::string(path) + " must be an object or null",
               "Example: {\"runtime\": \"https://vpce-...bedrock-runtime...\"}.");
  }
  for (auto it = value.begin(); it != value.end(); ++it) {
    const std::string field = std::string(path) + "." + it.key();
    if (it->is_null()) continue;
    if (!it->is_string()) return Err(field, field + " must be a string URL");
    std::string url = it->get<std::string>();
    if (url.empty()) continue;
    if (auto e = CheckUrl(url, field)) return e;
    if (it.key() == "endpoint_url") {
      out->endpoint_url = url;
      continue;
    }
    const auto& keys = EndpointServiceKeys();
    if (std::find(keys.begin(), keys.end(), it.key()) == keys.end()) {
      std::string list = "endpoint_url";
      for (const std::string& k : keys) list += ", " + k;
      return Err(field, "unknown endpoint " + Quote(it.key()), "Use one of: " + list + ".");
    }
    out->services[it.key()] = url;
  }
  return std::nullopt;
}

std::optional<FieldError> CheckRoleArn(const std::string& role_arn) {
  const std::string example = "arn:aws:iam::123456789012:role/quarry-bedrock-invoker";
  Result<aws::Arn> arn = aws::ParseArn(role_arn);
  if (!arn.ok()) return Err("credentials.role_arn", arn.status().message(), "Use the role's ARN, e.g. " + example + ".");
  if (arn->service != "iam" || !arn->resource.starts_with("role/") || arn->account.empty() ||
      arn->resource.size() <= 5) {
    return Err("credentials.role_arn", Quote(role_arn) + " is not an IAM role ARN",
               "Copy the role's ARN from the IAM console (Roles > the role > ARN), e.g. " + example + ".");
  }
  return std::nullopt;
}

bool AllCharsIn(std::string_view text, std::string_view extra) {
  return std::all_of(text.begin(), text.end(), [&](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || extra.find(c) != std::string_view::npos;
  });
}

std::optional<FieldError> CheckAccessKeyId(const store::SecretString& id) {
  const std::string& v = id.reveal();
  if (v.size() < 16 || v.size() > 128 || !AllCharsIn(v, "")) {
    return Err("credentials.access_key_id", "credentials.access_key_id is not an AWS access key id",
               "An access key id is 16 to 128 letters and digits, like AKIA... or ASIA...; copy it from the IAM "
               "console (Users > Security credentials).");
  }
  return std::nullopt;
}

json SecretRefsToJson(const std::map<std::string, std::string>& refs) {
  json j = json::object();
  for (const auto& [k, v] : refs) j[k] = v;
  return j;
}

json ConfigToStoredJson(const ProviderConfig& c) {
  json j = {{"region", c.region}, {"kind", CredentialKindName(c.kind)}};
  if (!c.role_arn.empty()) j["role_arn"] = c.role_arn;
  if (!c.external_id.empty()) j["external_id"] = c.external_id;
  if (!c.session_name.empty()) j["session_name"] = c.session_name;
  if (!c.source.empty()) j["source"] = c.source;
  if (!c.endpoints.empty()) j["endpoints"] = c.endpoints.ToJson();
  return j;
}

ProviderConfig ConfigFromStoredJson(const std::string& region, const std::string& kind, const std::string& text) {
  ProviderConfig c;
  c.region = region;
  ParseCredentialKind(kind, &c.kind);
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return c;
  c.role_arn = j.value("role_arn", "");
  c.external_id = j.value("external_id", "");
  c.session_name = j.value("session_name", "");
  c.source = j.value("source", "");
  if (j.contains("endpoints") && j["endpoints"].is_object()) {
    for (auto it = j["endpoints"].begin(); it != j["endpoints"].end(); ++it) {
      if (!it->is_string()) continue;
      if (it.key() == "endpoint_url") {
        c.endpoints.endpoint_url = it->get<std::string>();
      } else {
        c.endpoints.services[it.key()] = it->get<std::string>();
      }
    }
  }
  return c;
}

json ParseJsonColumn(const std::optional<std::string>& text) {
  if (!text || text->empty()) return nullptr;
  json j = json::parse(*text, nullptr, false);
  return j.is_discarded() ? json(nullptr) : j;
}

std::optional<std::string> JsonColumn(const json& value) {
  if (value.is_null()) return std::nullopt;
  return value.dump();
}

Provider ProviderFromRow(const store::Row& r) {
  Provider p;
  p.id = r.Text(0);
  p.org_id = r.Text(1);
  p.name = r.Text(2);
  p.config = ConfigFromStoredJson(r.Text(3), r.Text(4), r.Text(5));
  json refs = json::parse(r.Text(6), nullptr, false);
  if (refs.is_object()) {
    for (auto it = refs.begin(); it != refs.end(); ++it) {
      if (it->is_string()) p.secret_ids[it.key()] = it->get<std::string>();
    }
  }
  p.access_key_hint = r.Text(7);
  p.credentials_set_at = r.Text(8);
  ParseProviderStatus(r.Text(9), &p.status);
  p.last_error = ParseJsonColumn(r.OptText(10));
  p.last_test = ParseJsonColumn(r.OptText(11));
  p.last_tested_at = r.OptText(12).value_or("");
  p.identity_arn = r.Text(13);
  p.version = r.Int(14);
  p.created_by = r.Text(15);
  p.created_at = r.Text(16);
  p.updated_at = r.Text(17);
  return p;
}

// The secret members a kind uses.
std::vector<std::string_view> PurposesFor(const ProviderConfig& config) {
  switch (config.kind) {
    case CredentialKind::kAccessKey:
      return {kPurposeAccessKeyId, kPurposeSecretAccessKey};
    case CredentialKind::kSession:
      return {kPurposeAccessKeyId, kPurposeSecretAccessKey, kPurposeSessionToken};
    case CredentialKind::kAssumeRole:
      if (config.source == "access_key") return {kPurposeAccessKeyId, kPurposeSecretAccessKey, kPurposeSessionToken};
      return {};
    case CredentialKind::kApiKey:
      return {kPurposeApiKey};
    case CredentialKind::kDefaultChain:
      return {};
  }
  return {};
}

const store::SecretString& SecretFor(const ProviderSecrets& s, std::string_view purpose) {
  if (purpose == kPurposeAccessKeyId) return s.access_key_id;
  if (purpose == kPurposeSecretAccessKey) return s.secret_access_key;
  if (purpose == kPurposeSessionToken) return s.session_token;
  return s.api_key;
}

store::SecretString* MutableSecretFor(ProviderSecrets& s, std::string_view purpose) {
  if (purpose == kPurposeAccessKeyId) return &s.access_key_id;
  if (purpose == kPurposeSecretAccessKey) return &s.secret_access_key;
  if (purpose == kPurposeSessionToken) return &s.session_token;
  return &s.api_key;
}

// Stores the draft's secrets for `owner`, returning purpose -> secret id.
Result<std::map<std::string, std::string>> PutSecrets(store::Tx& tx, const store::SecretStore& store,
                                                      const std::string& owner, const ProviderConfig& config,
                                                      const ProviderSecrets& secrets) {
  std::map<std::string, std::string> refs;
  for (std::string_view purpose : PurposesFor(config)) {
    const store::SecretString& value = SecretFor(secrets, purpose);
    if (value.empty()) continue;  // optional session token
    QUARRY_ASSIGN_OR_RETURN(std::string id, store.Put(tx, owner, purpose, value));
    refs[std::string(purpose)] = id;
  }
  return refs;
}

std::string HintFor(const ProviderConfig& config, const ProviderSecrets& secrets) {
  if (!config.UsesAccessKey() || secrets.access_key_id.empty()) return "";
  return store::MaskedHint(secrets.access_key_id.reveal());
}

std::string Owner(const std::string& provider_id) { return "provider:" + provider_id; }

}  // namespace

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

Status FieldError::ToStatus() const {
  std::string text = message;
  if (!hint.empty()) text += (text.empty() || text.back() == '.' ? " " : ". ") + hint;
  return InvalidArgumentError(text);
}

std::string FormatTimestamp(WallTime time) {
  using namespace std::chrono;
  auto ms_total = duration_cast<milliseconds>(time.time_since_epoch()).count();
  int64_t secs = ms_total / 1000;
  int64_t ms = ms_total % 1000;
  if (ms < 0) {
    ms += 1000;
    secs -= 1;
  }
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

std::string NowTimestamp(const Clock& clock) { return FormatTimestamp(clock.Now()); }

bool ParseTimestamp(std::string_view text, WallTime* out) {
  WallTime base;
  if (!ParseIso8601Utc(text, &base)) return false;
  // ParseIso8601Utc ignores fractions; add the milliseconds back.
  size_t dot = text.find('.');
  if (dot != std::string_view::npos) {
    int ms = 0;
    int digits = 0;
    for (size_t i = dot + 1; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])) && digits < 3;
         ++i, ++digits) {
      ms = ms * 10 + (text[i] - '0');
    }
    while (digits < 3) {
      ms *= 10;
      ++digits;
    }
    base += std::chrono::milliseconds(ms);
  }
  *out = base;
  return true;
}

std::optional<FieldError> CheckKnownMembers(const json& body, std::string_view where,
                                            const std::vector<std::string_view>& allowed) {
  if (!body.is_object()) return Err(std::string(where), std::string(where) + " must be a JSON object");
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (std::find(allowed.begin(), allowed.end(), it.key()) != allowed.end()) continue;
    std::string list;
    for (std::string_view a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    std::string field = where.empty() ? it.key() : std::string(where) + "." + it.key();
    return Err(field, "unknown member " + Quote(it.key()) + (where.empty() ? "" : " in " + std::string(where)),
               "Accepted members: " + list + ".");
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Enums
// ---------------------------------------------------------------------------

std::string_view CredentialKindName(CredentialKind kind) {
  switch (kind) {
    case CredentialKind::kAccessKey:
      return "access_key";
    case CredentialKind::kSession:
      return "session";
    case CredentialKind::kAssumeRole:
      return "assume_role";
    case CredentialKind::kApiKey:
      return "api_key";
    case CredentialKind::kDefaultChain:
      return "default_chain";
  }
  return "access_key";
}

bool ParseCredentialKind(std::string_view text, CredentialKind* kind) {
  for (CredentialKind k : {CredentialKind::kAccessKey, CredentialKind::kSession, CredentialKind::kAssumeRole,
                           CredentialKind::kApiKey, CredentialKind::kDefaultChain}) {
    if (CredentialKindName(k) == text) {
      *kind = k;
      return true;
    }
  }
  return false;
}

std::string_view ProviderStatusName(ProviderStatus status) {
  switch (status) {
    case ProviderStatus::kUntested:
      return "untested";
    case ProviderStatus::kWorking:
      return "working";
    case ProviderStatus::kFailing:
      return "failing";
  }
  return "untested";
}

bool ParseProviderStatus(std::string_view text, ProviderStatus* status) {
  for (ProviderStatus s : {ProviderStatus::kUntested, ProviderStatus::kWorking, ProviderStatus::kFailing}) {
    if (ProviderStatusName(s) == text) {
      *status = s;
      return true;
    }
  }
  return false;
}

const std::vector<std::string>& EndpointServiceKeys() {
  static const std::vector<std::string> keys = {"runtime", "agent_runtime", "control", "agent", "sts"};
  return keys;
}

json ProviderEndpoints::ToJson() const {
  json j = json::object();
  if (!endpoint_url.empty()) j["endpoint_url"] = endpoint_url;
  for (const auto& [k, v] : services) j[k] = v;
  return j;
}

bool ProviderConfig::UsesAccessKey() const {
  return kind == CredentialKind::kAccessKey || kind == CredentialKind::kSession ||
         (kind == CredentialKind::kAssumeRole && source == "access_key");
}

// ---------------------------------------------------------------------------
// JSON view
// ---------------------------------------------------------------------------

std::vector<json> ProviderConfigWarnings(const ProviderConfig& config) {
  std::vector<json> warnings;
  if (config.kind == CredentialKind::kApiKey) {
    warnings.push_back(
        {{"code", "api_key_cannot_invoke_agents"},
         {"message",
          "A Bedrock API key works for models and the model catalogue only: InvokeAgent and STS require AWS "
          "Signature Version 4. To connect Bedrock Agents through this provider, use access keys or a role "
          "instead (credentials kind access_key, session or assume_role)."}});
  }
  if (config.kind == CredentialKind::kDefaultChain ||
      (config.kind == CredentialKind::kAssumeRole && config.source == "default_chain")) {
    warnings.push_back({{"code", "server_credentials"},
                        {"message",
                         "This provider uses the Quarry server's own AWS credentials (environment variables, shared "
                         "credentials files). Every Quarry node must have them; Test Connection shows which identity "
                         "they resolve to."}});
  }
  return warnings;
}

json ProviderToJson(const Provider& p, WallTime now, int rotation_period_days) {
  json credentials = {{"kind", CredentialKindName(p.config.kind)}};
  if (p.config.UsesAccessKey()) {
    credentials["access_key_hint"] = p.access_key_hint;
    credentials["has_session_token"] = p.secret_ids.count(std::string(kPurposeSessionToken)) > 0;
  }
  if (p.config.kind == CredentialKind::kApiKey) credentials["api_key_set"] = p.secret_ids.count("api_key") > 0;
  if (p.config.kind == CredentialKind::kAssumeRole) {
    credentials["role_arn"] = p.config.role_arn;
    credentials["external_id"] = p.config.external_id.empty() ? json(nullptr) : json(p.config.external_id);
    credentials["session_name"] = p.config.session_name.empty() ? json(nullptr) : json(p.config.session_name);
    credentials["source"] = p.config.source;
  }

  std::vector<json> warnings = ProviderConfigWarnings(p.config);
  json age = nullptr;
  bool rotation_due = false;
  // Rotation applies to long-lived secrets typed into Quarry; the server's
  // own credentials and temporary session tokens are rotated elsewhere.
  const bool rotatable = p.config.UsesAccessKey() || p.config.kind == CredentialKind::kApiKey;
  WallTime set_at;
  if (rotatable && ParseTimestamp(p.credentials_set_at, &set_at)) {
    int64_t days = std::chrono::duration_cast<std::chrono::hours>(now - set_at).count() / 24;
    if (days < 0) days = 0;
    age = days;
    if (rotation_period_days > 0 && days >= rotation_period_days) {
      rotation_due = true;
      warnings.push_back(
          {{"code", "rotation_due"},
           {"message", "These credentials have been in use for " + std::to_string(days) +
                           " days, past the organization's rotation period of " +
                           std::to_string(rotation_period_days) +
                           " days. Create new access keys in IAM, then replace them here with one PATCH (Quarry "
                           "tests the new keys before dropping the old ones), and deactivate the old keys in IAM."}});
    }
  }

  json j = {{"id", p.id},
            {"name", p.name},
            {"type", "bedrock"},
            {"region", p.config.region},
            {"credentials", credentials},
            {"endpoints", p.config.endpoints.empty() ? json(nullptr) : p.config.endpoints.ToJson()},
            {"status", ProviderStatusName(p.status)},
            {"last_error", p.last_error},
            {"last_tested_at", p.last_tested_at.empty() ? json(nullptr) : json(p.last_tested_at)},
            {"last_test", p.last_test},
            {"identity_arn", p.identity_arn.empty() ? json(nullptr) : json(p.identity_arn)},
            {"credentials_set_at", p.credentials_set_at},
            {"credentials_age_days", age},
            {"rotation_period_days", rotation_period_days},
            {"rotation_due", rotation_due},
            {"warnings", warnings},
            {"version", p.version},
            {"created_by", p.created_by},
            {"created_at", p.created_at},
            {"updated_at", p.updated_at}};
  return j;
}

// ---------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------

namespace {

std::optional<FieldError> ParseCredentials(const json& value, CredentialsInput* out) {
  if (!value.is_object()) {
    return Err("credentials", "credentials must be a JSON object",
               "Example: {\"kind\": \"access_key\", \"access_key_id\": \"AKIA...\", \"secret_access_key\": \"...\"}.");
  }
  if (auto e = CheckKnownMembers(value, "credentials",
                                 {"kind", "access_key_id", "secret_access_key", "session_token", "api_key",
                                  "role_arn", "external_id", "session_name", "source"})) {
    return e;
  }
  auto kind_it = value.find("kind");
  if (kind_it == value.end() || !kind_it->is_string()) {
    return Err("credentials.kind", "credentials.kind is missing",
               "Set kind to one of access_key, session, assume_role, api_key, default_chain.");
  }
  std::string kind_text = kind_it->get<std::string>();
  if (!ParseCredentialKind(kind_text, &out->kind)) {
    return Err("credentials.kind", "unknown credentials kind " + Quote(kind_text),
               "Use one of access_key, session, assume_role, api_key, default_chain.");
  }
  if (auto e = OptSecret(value, "access_key_id", "credentials.access_key_id", 128, &out->access_key_id)) return e;
  if (auto e = OptSecret(value, "secret_access_key", "credentials.secret_access_key", kMaxSecretLength,
                         &out->secret_access_key)) {
    return e;
  }
  if (auto e = OptSecret(value, "session_token", "credentials.session_token", kMaxSessionTokenLength,
                         &out->session_token)) {
    return e;
  }
  if (auto e = OptSecret(value, "api_key", "credentials.api_key", kMaxSecretLength, &out->api_key)) return e;
  if (auto e = OptString(value, "role_arn", "credentials.role_arn", &out->role_arn)) return e;
  if (auto e = OptString(value, "external_id", "credentials.external_id", &out->external_id)) return e;
  if (auto e = OptString(value, "session_name", "credentials.session_name", &out->session_name)) return e;
  if (auto e = OptString(value, "source", "credentials.source", &out->source)) return e;

  // Members that make no sense for the kind are refused rather than silently
  // stored: a secret key sent with kind default_chain is a mistake to report.
  auto refuse = [&](bool present, std::string_view member) -> std::optional<FieldError> {
    if (!present) return std::nullopt;
    return Err("credentials." + std::string(member),
               "credentials." + std::string(member) + " does not apply to kind " + kind_text,
               "Remove it, or choose the kind that uses it.");
  };
  const bool keys_allowed = out->kind == CredentialKind::kAccessKey || out->kind == CredentialKind::kSession ||
                            out->kind == CredentialKind::kAssumeRole;
  if (auto e = refuse(!keys_allowed && out->access_key_id.has_value(), "access_key_id")) return e;
  if (auto e = refuse(!keys_allowed && out->secret_access_key.has_value(), "secret_access_key")) return e;
  if (auto e = refuse(out->kind == CredentialKind::kAccessKey && out->session_token.has_value(), "session_token")) {
    return Err("credentials.session_token", "credentials.session_token does not apply to kind access_key",
               "Temporary credentials with a session token use kind \"session\".");
  }
  if (auto e = refuse(!keys_allowed && out->session_token.has_value(), "session_token")) return e;
  if (auto e = refuse(out->kind != CredentialKind::kApiKey && out->api_key.has_value(), "api_key")) return e;
  const bool role = out->kind == CredentialKind::kAssumeRole;
  if (auto e = refuse(!role && out->role_arn.has_value(), "role_arn")) return e;
  if (auto e = refuse(!role && out->external_id.has_value(), "external_id")) return e;
  if (auto e = refuse(!role && out->session_name.has_value(), "session_name")) return e;
  if (auto e = refuse(!role && out->source.has_value(), "source")) return e;
  return std::nullopt;
}

}  // namespace

std::optional<FieldError> ParseProviderInput(const json& body, bool create, ProviderInput* out) {
  *out = ProviderInput{};
  if (auto e = CheckKnownMembers(body, "", {"name", "type", "region", "credentials", "endpoints", "endpoint_url"})) {
    return e;
  }
  if (auto it = body.find("type"); it != body.end() && !it->is_null()) {
    if (!it->is_string() || it->get<std::string>() != "bedrock") {
      return Err("type", "type must be \"bedrock\"", "Amazon Bedrock is the only provider type.");
    }
  }
  if (auto e = OptString(body, "name", "name", &out->name)) return e;
  if (auto e = OptString(body, "region", "region", &out->region)) return e;
  if (out->name) {
    if (auto e = CheckName(*out->name)) return e;
  }
  if (out->region) {
    if (auto e = CheckRegion(*out->region)) return e;
  }
  if (auto it = body.find("endpoints"); it != body.end()) {
    ProviderEndpoints endpoints;
    if (auto e = ParseEndpoints(*it, "endpoints", &endpoints)) return e;
    out->endpoints = endpoints;
  }
  if (auto it = body.find("endpoint_url"); it != body.end()) {
    if (!out->endpoints) out->endpoints = ProviderEndpoints{};
    if (!it->is_null()) {
      if (!it->is_string()) return Err("endpoint_url", "endpoint_url must be a string URL or null");
      std::string url = it->get<std::string>();
      if (!url.empty()) {
        if (auto e = CheckUrl(url, "endpoint_url")) return e;
      }
      out->endpoints->endpoint_url = url;
    }
  }
  if (auto it = body.find("credentials"); it != body.end() && !it->is_null()) {
    CredentialsInput credentials;
    if (auto e = ParseCredentials(*it, &credentials)) return e;
    out->credentials = std::move(credentials);
  }
  if (create) {
    if (!out->name) return Err("name", "name is required", "Give the provider a name, e.g. \"Bedrock production\".");
    if (!out->region) {
      return Err("region", "region is required",
                 "Set the region where your Bedrock models and agents are, e.g. us-east-1.");
    }
    if (!out->credentials) {
      return Err("credentials", "credentials are required",
                 "Example: {\"kind\": \"access_key\", \"access_key_id\": \"AKIA...\", \"secret_access_key\": "
                 "\"...\"} (the keys of the IAM user from step 2 of the setup guide).");
    }
  }
  return std::nullopt;
}

std::optional<FieldError> ApplyProviderInput(const Provider* existing, const ProviderSecrets* existing_secrets,
                                             const ProviderInput& input, ProviderDraft* out) {
  *out = ProviderDraft{};
  if (existing != nullptr) {
    out->name = existing->name;
    out->config = existing->config;
    if (existing_secrets != nullptr) out->secrets = *existing_secrets;
  }
  if (input.name) out->name = *input.name;
  if (input.region && (existing == nullptr || *input.region != existing->config.region)) {
    out->config.region = *input.region;
    out->connection_changed = true;
  }
  if (input.endpoints) {
    ProviderEndpoints merged = *input.endpoints;
    if (existing == nullptr || merged.ToJson() != existing->config.endpoints.ToJson()) out->connection_changed = true;
    out->config.endpoints = std::move(merged);
  }
  if (!input.credentials) return std::nullopt;

  const CredentialsInput& c = *input.credentials;
  const bool same_kind = existing != nullptr && existing->config.kind == c.kind;
  ProviderConfig& config = out->config;
  ProviderSecrets fresh;
  if (same_kind) fresh = out->secrets;  // keep stored secrets not sent again
  const std::string kind = std::string(CredentialKindName(c.kind));
  const ProviderConfig old_config = out->config;
  config.kind = c.kind;
  config.role_arn.clear();
  config.external_id.clear();
  config.session_name.clear();
  config.source.clear();

  auto need = [&](const std::optional<store::SecretString>& sent, store::SecretString* slot,
                  std::string_view member) -> std::optional<FieldError> {
    if (sent) {
      *slot = *sent;
      return std::nullopt;
    }
    if (!slot->empty()) return std::nullopt;
    return Err("credentials." + std::string(member),
               "credentials." + std::string(member) + " is required for kind " + kind,
               "Paste the value from the IAM console (the secret access key is shown only once, when the key is "
               "created).");
  };

  switch (c.kind) {
    case CredentialKind::kAccessKey:
    case CredentialKind::kSession:
      if (auto e = need(c.access_key_id, &fresh.access_key_id, "access_key_id")) return e;
      if (auto e = need(c.secret_access_key, &fresh.secret_access_key, "secret_access_key")) return e;
      if (c.kind == CredentialKind::kSession) {
        if (auto e = need(c.session_token, &fresh.session_token, "session_token")) return e;
      } else {
        fresh.session_token = store::SecretString();
      }
      fresh.api_key = store::SecretString();
      break;
    case CredentialKind::kAssumeRole: {
      std::string role_arn = c.role_arn.value_or(same_kind ? old_config.role_arn : "");
      if (role_arn.empty()) {
        return Err("credentials.role_arn", "credentials.role_arn is required for kind assume_role",
                   "Use the ARN of the role Quarry should assume, e.g. "
                   "arn:aws:iam::123456789012:role/quarry-bedrock-invoker.");
      }
      if (auto e = CheckRoleArn(role_arn)) return e;
      config.role_arn = role_arn;
      config.external_id = c.external_id.value_or(same_kind ? old_config.external_id : "");
      if (!config.external_id.empty() &&
          (config.external_id.size() < 2 || config.external_id.size() > 1224 ||
           !AllCharsIn(config.external_id, "+=,.@:/-_"))) {
        return Err("credentials.external_id", "credentials.external_id is not a valid external id",
                   "Use 2 to 1224 letters, digits or +=,.@:/-_ characters, exactly as in the role's trust policy.");
      }
      config.session_name = c.session_name.value_or(same_kind ? old_config.session_name : "");
      if (!config.session_name.empty() &&
          (config.session_name.size() < 2 || config.session_name.size() > 64 ||
           !AllCharsIn(config.session_name, "+=,.@-_"))) {
        return Err("credentials.session_name", "credentials.session_name is not a valid role session name",
                   "Use 2 to 64 letters, digits or +=,.@-_ characters, or leave it out.");
      }
      config.source = c.source.value_or(same_kind ? old_config.source : "");
      if (config.source.empty()) {
        config.source = (c.access_key_id || c.secret_access_key) ? "access_key" : "";
      }
      if (config.source != "access_key" && config.source != "default_chain") {
        return Err("credentials.source",
                   config.source.empty() ? "credentials.source is required for kind assume_role"
                                         : "unknown credentials.source " + Quote(config.source),
                   "Use \"access_key\" (send access_key_id and secret_access_key of the identity that assumes the "
                   "role) or \"default_chain\" (the server's own AWS credentials).");
      }
      if (config.source == "access_key") {
        if (same_kind && old_config.source != "access_key") {
          fresh.access_key_id = fresh.secret_access_key = fresh.session_token = store::SecretString();
        }
        if (auto e = need(c.access_key_id, &fresh.access_key_id, "access_key_id")) return e;
        if (auto e = need(c.secret_access_key, &fresh.secret_access_key, "secret_access_key")) return e;
        if (c.session_token) fresh.session_token = *c.session_token;
      } else {
        if (c.access_key_id || c.secret_access_key || c.session_token) {
          return Err("credentials.source", "access keys were sent with source default_chain",
                     "Use source \"access_key\" to assume the role with these keys, or remove the keys.");
        }
        fresh.access_key_id = fresh.secret_access_key = fresh.session_token = store::SecretString();
      }
      fresh.api_key = store::SecretString();
      break;
    }
    case CredentialKind::kApiKey:
      if (auto e = need(c.api_key, &fresh.api_key, "api_key")) return e;
      fresh.access_key_id = fresh.secret_access_key = fresh.session_token = store::SecretString();
      break;
    case CredentialKind::kDefaultChain:
      fresh = ProviderSecrets{};
      break;
  }
  if (config.UsesAccessKey()) {
    if (auto e = CheckAccessKeyId(fresh.access_key_id)) return e;
  }

  // Did anything that decides the identity change?
  bool changed = existing == nullptr || !same_kind || config.role_arn != old_config.role_arn ||
                 config.external_id != old_config.external_id || config.session_name != old_config.session_name ||
                 config.source != old_config.source;
  for (std::string_view purpose : {kPurposeAccessKeyId, kPurposeSecretAccessKey, kPurposeSessionToken,
                                   kPurposeApiKey}) {
    if (SecretFor(fresh, purpose).reveal() != SecretFor(out->secrets, purpose).reveal()) changed = true;
  }
  out->secrets = std::move(fresh);
  out->credentials_changed = changed;
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Storage
// ---------------------------------------------------------------------------

Result<Provider> CreateProvider(store::Tx& tx, const store::SecretStore& secrets, const Clock& clock,
                                const Principal& actor, const ProviderDraft& draft, const std::string& request_id) {
  Provider p;
  p.id = NewId("prv");
  p.org_id = actor.org_id;
  p.name = draft.name;
  p.config = draft.config;
  p.created_by = actor.user_id;
  p.created_at = p.updated_at = p.credentials_set_at = NowTimestamp(clock);
  p.status = ProviderStatus::kUntested;
  p.version = 1;
  p.access_key_hint = HintFor(draft.config, draft.secrets);
  QUARRY_ASSIGN_OR_RETURN(p.secret_ids, PutSecrets(tx, secrets, Owner(p.id), p.config, draft.secrets));

  Result<int64_t> inserted =
      tx.Exec(kInsertProvider,
              {p.id, p.org_id, p.name, NameKey(p.name), p.config.region, std::string(CredentialKindName(p.config.kind)),
               ConfigToStoredJson(p.config).dump(), SecretRefsToJson(p.secret_ids).dump(), p.access_key_hint,
               p.credentials_set_at, std::string(ProviderStatusName(p.status)), p.created_by, p.created_at});
  if (!inserted.ok()) {
    if (inserted.status().code() == StatusCode::kAlreadyExists) {
      return Status(StatusCode::kAlreadyExists, "a provider named " + Quote(p.name) +
                                                    " already exists in this organization; choose another name or "
                                                    "update the existing provider");
    }
    return inserted.status();
  }
  QUARRY_RETURN_IF_ERROR(RecordAudit(tx, clock, &actor,
                                     {.org_id = p.org_id,
                                      .action = "provider.create",
                                      .target_type = "provider",
                                      .target_id = p.id,
                                      .after = ProviderToJson(p, clock.Now(), 0),
                                      .request_id = request_id}));
  return p;
}

Result<Provider> GetProvider(store::Tx& tx, const std::string& org_id, const std::string& provider_id) {
  if (!IsWellFormedId(provider_id, "prv")) {
    return NotFoundError("provider " + Quote(provider_id) +
                         " not found; provider ids look like prv_...; list providers with GET /api/v1/providers");
  }
  std::string sql = "SELECT " + std::string(kProviderColumns) + " FROM providers WHERE org_id = $1 AND id = $2";
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, {org_id, provider_id}));
  if (rows.empty()) {
    return NotFoundError("provider " + provider_id +
                         " not found in this organization; list providers with GET /api/v1/providers");
  }
  return ProviderFromRow(rows.rows[0]);
}

Result<Page<Provider>> ListProviders(store::Tx& tx, const std::string& org_id, const PageRequest& page,
                                     std::string_view status) {
  std::string sql = "SELECT " + std::string(kProviderColumns) + " FROM providers WHERE org_id = $1";
  store::Params params = {org_id};
  if (!status.empty()) {
    params.push_back(std::string(status));
    sql += " AND status = $" + std::to_string(params.size());
  }
  QUARRY_RETURN_IF_ERROR(AppendKeysetPage(page, &sql, &params));
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, params));
  return TakeKeysetPage<Provider>(rows, page.limit, ProviderFromRow);
}

Result<ProviderSecrets> LoadProviderSecrets(store::Tx& tx, const store::SecretStore& secrets,
                                            const Provider& provider) {
  ProviderSecrets out;
  for (const auto& [purpose, id] : provider.secret_ids) {
    Result<store::SecretString> value = secrets.Get(tx, id);
    if (!value.ok()) {
      return value.status().WithContext("reading the " + purpose + " of provider " + provider.id);
    }
    *MutableSecretFor(out, purpose) = std::move(value).value();
  }
  return out;
}

Result<Provider> UpdateProvider(store::Tx& tx, const store::SecretStore& secrets, const Clock& clock,
                                const Principal& actor, const Provider& before, const ProviderDraft& draft,
                                const std::optional<TestOutcome>& tested, const std::string& request_id) {
  Provider p = before;
  p.name = draft.name;
  p.config = draft.config;
  p.updated_at = NowTimestamp(clock);
  if (draft.credentials_changed) {
    // New secrets first, then drop the old ones: the old rows go only in this
    // transaction, after the new keys were proved by `tested`.
    using SecretRefs = std::map<std::string, std::string>;
    QUARRY_ASSIGN_OR_RETURN(SecretRefs refs, PutSecrets(tx, secrets, Owner(p.id), p.config, draft.secrets));
    for (const auto& [purpose, id] : before.secret_ids) QUARRY_RETURN_IF_ERROR(secrets.Delete(tx, id));
    p.secret_ids = std::move(refs);
    p.access_key_hint = HintFor(draft.config, draft.secrets);
    p.credentials_set_at = p.updated_at;
  }
  if (tested) {
    p.status = tested->status;
    p.last_error = tested->last_error;
    p.last_test = tested->report;
    p.last_tested_at = tested->tested_at;
    p.identity_arn = tested->identity_arn;
  } else if (draft.credentials_changed || draft.connection_changed) {
    p.status = ProviderStatus::kUntested;
    p.last_error = nullptr;
    p.identity_arn.clear();
  }
  Result<int64_t> changed = tx.Exec(
      kUpdateProvider,
      {p.org_id, p.id, p.name, NameKey(p.name), p.config.region, std::string(CredentialKindName(p.config.kind)),
       ConfigToStoredJson(p.config).dump(), SecretRefsToJson(p.secret_ids).dump(), p.access_key_hint,
       p.credentials_set_at, std::string(ProviderStatusName(p.status)), store::OptionalText(JsonColumn(p.last_error)),
       store::OptionalText(JsonColumn(p.last_test)),
       p.last_tested_at.empty() ? store::Null() : store::Value(p.last_tested_at), p.identity_arn, p.updated_at,
       before.version});
  if (!changed.ok()) {
    if (changed.status().code() == StatusCode::kAlreadyExists) {
      return Status(StatusCode::kAlreadyExists,
                    "a provider named " + Quote(p.name) + " already exists in this organization; choose another name");
    }
    return changed.status();
  }
  if (*changed == 0) {
    return Status(StatusCode::kAborted, "provider " + p.id + " changed while this update ran (version " +
                                            std::to_string(before.version) + " is no longer current); fetch it "
                                            "again and retry");
  }
  p.version = before.version + 1;
  if (draft.connection_changed) {
    QUARRY_RETURN_IF_ERROR(tx.Exec("DELETE FROM provider_catalogues WHERE provider_id = $1", {p.id}).status());
  }
  QUARRY_RETURN_IF_ERROR(RecordAudit(
      tx, clock, &actor,
      {.org_id = p.org_id,
       .action = draft.credentials_changed ? "provider.rotate_credentials" : "provider.update",
       .target_type = "provider",
       .target_id = p.id,
       .before = ProviderToJson(before, clock.Now(), 0),
       .after = ProviderToJson(p, clock.Now(), 0),
       .request_id = request_id}));
  return p;
}

Status RecordProviderTest(store::Tx& tx, const Clock& clock, const Principal& actor, const Provider& provider,
                          const TestOutcome& outcome, const std::string& request_id) {
  QUARRY_ASSIGN_OR_RETURN(
      int64_t changed,
      tx.Exec(kRecordTest, {provider.org_id, provider.id, std::string(ProviderStatusName(outcome.status)),
                            store::OptionalText(JsonColumn(outcome.last_error)),
                            store::OptionalText(JsonColumn(outcome.report)), outcome.tested_at, outcome.identity_arn}));
  if (changed == 0) return NotFoundError("provider " + provider.id + " was deleted while it was being tested");
  return RecordAudit(tx, clock, &actor,
                     {.org_id = provider.org_id,
                      .action = "provider.test",
                      .target_type = "provider",
                      .target_id = provider.id,
                      .before = {{"status", ProviderStatusName(provider.status)}},
                      .after = {{"status", ProviderStatusName(outcome.status)},
                                {"last_error", outcome.last_error}},
                      .request_id = request_id});
}

Status DeleteProvider(store::Tx& tx, const store::SecretStore& secrets, const Clock& clock, const Principal& actor,
                      const Provider& provider, const std::string& request_id) {
  std::vector<std::string> users;
  QUARRY_ASSIGN_OR_RETURN(store::Rows services, tx.Query(kServicesUsingProvider, {provider.org_id, provider.id}));
  for (const store::Row& r : services.rows) users.push_back("service " + Quote(r.Text(0)));
  QUARRY_ASSIGN_OR_RETURN(store::Rows agents, tx.Query(kAgentsUsingProvider, {provider.org_id, provider.id}));
  for (const store::Row& r : agents.rows) users.push_back("agent connection " + Quote(r.Text(0)));
  if (!users.empty()) {
    std::string list;
    for (const std::string& u : users) list += (list.empty() ? "" : ", ") + u;
    return FailedPreconditionError("provider " + Quote(provider.name) + " is still used by " + list +
                                   "; move them to another provider or delete them first");
  }
  QUARRY_RETURN_IF_ERROR(tx.Exec("DELETE FROM provider_catalogues WHERE provider_id = $1", {provider.id}).status());
  QUARRY_RETURN_IF_ERROR(secrets.DeleteOwned(tx, Owner(provider.id)));
  QUARRY_ASSIGN_OR_RETURN(int64_t deleted, tx.Exec(kDeleteProvider, {provider.org_id, provider.id}));
  if (deleted == 0) return NotFoundError("provider " + provider.id + " not found");
  return RecordAudit(tx, clock, &actor,
                     {.org_id = provider.org_id,
                      .action = "provider.delete",
                      .target_type = "provider",
                      .target_id = provider.id,
                      .before = ProviderToJson(provider, clock.Now(), 0),
                      .request_id = request_id});
}

// ---------------------------------------------------------------------------
// Catalogue cache
// ---------------------------------------------------------------------------

Result<std::optional<CachedCatalogue>> GetCachedCatalogue(store::Tx& tx, const Provider& provider) {
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(kGetCatalogue, {provider.id}));
  if (rows.empty()) return std::optional<CachedCatalogue>();
  const store::Row& r = rows.rows[0];
  if (r.Text(0) != provider.config.region) return std::optional<CachedCatalogue>();
  CachedCatalogue c;
  c.region = r.Text(0);
  c.catalogue = ParseJsonColumn(r.OptText(1));
  c.fetched_at = r.Text(2);
  json unusable = ParseJsonColumn(r.OptText(3));
  if (unusable.is_array()) {
    for (const json& u : unusable) {
      if (u.is_string()) c.unusable.push_back(u.get<std::string>());
    }
  }
  // A row made by MarkTargetUnusable before any fetch holds no catalogue.
  if (!c.catalogue.is_object() || c.fetched_at.empty()) return std::optional<CachedCatalogue>();
  return std::optional<CachedCatalogue>(std::move(c));
}

Status PutCachedCatalogue(store::Tx& tx, const Provider& provider, const json& catalogue,
                          const std::string& fetched_at) {
  return tx.Exec(kPutCatalogue, {provider.id, provider.org_id, provider.config.region, catalogue.dump(), fetched_at})
      .status();
}

Status MarkTargetUnusable(store::Tx& tx, const Provider& provider, const std::string& target_id) {
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(kGetUnusable, {provider.id}));
  if (rows.empty()) {
    // No catalogue cached yet: keep the fact in an empty entry so the next
    // fetch still shows it.
    QUARRY_RETURN_IF_ERROR(tx.Exec(kPutCatalogue, {provider.id, provider.org_id, provider.config.region,
                                                   std::string("{}"), std::string("")})
                               .status());
  }
  json unusable = rows.empty() ? json::array() : ParseJsonColumn(rows.rows[0].OptText(0));
  if (!unusable.is_array()) unusable = json::array();
  for (const json& u : unusable) {
    if (u.is_string() && u.get<std::string>() == target_id) return Status::Ok();
  }
  unusable.push_back(target_id);
  return tx.Exec(kSetUnusable, {provider.id, unusable.dump()}).status();
}

}  // namespace quarry::domain
