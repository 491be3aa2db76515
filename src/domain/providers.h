#pragma once
// AI Providers (Amazon Bedrock): an organization's named connection to one
// AWS account in one region. A provider holds a region, a credential kind
// with its settings, optional endpoint overrides, and a status kept by Test
// Connection (untested, working, failing with the last error and when).
//
// Credential kinds (the JSON "kind"):
//   access_key     access_key_id + secret_access_key (an IAM user's keys);
//   session        the same + session_token (temporary credentials);
//   assume_role    role_arn, optional external_id and session_name, and a
//                  source: "access_key" (keys given here, optionally with a
//                  session token) or "default_chain" (the server's own);
//   api_key        a Bedrock API key (bearer token). It works for models and
//                  the catalogue only: InvokeAgent and STS need SigV4, so a
//                  provider of this kind carries a warning;
//   default_chain  the server's own credentials (environment, shared files).
//
// Secrets (access key ids, secret keys, session tokens, API keys) live only in
// the store::SecretStore, owned by "provider:<id>"; the providers row holds
// their secret ids and a masked hint of the access key id
// (store::MaskedHint). Nothing in this module returns, logs or audits a
// secret: ProviderToJson shows the hint only.
//
// Names are unique per organization (case-insensitively). Updates bump
// `version` (the ETag); Test Connection results do not (they are status, not
// configuration).
//
// Also here: the per-provider model catalogue cache (the merged catalogue
// JSON, when it was fetched, and models found unusable by a test call), and
// the small helpers shared by the provider-area entities (timestamps, input
// errors).
//
// Thread safety: stateless functions over a store::Tx; values.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/status.h"
#include "domain/paging.h"
#include "domain/principal.h"
#include "store/database.h"
#include "store/secrets.h"

namespace quarry::domain {

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

// A rejected input: which field (JSON path, "credentials.role_arn"), what is
// wrong, how to fix it, and a stable snake_case code for the API.
struct FieldError {
  std::string field{};
  std::string message{};
  std::string hint{};
  std::string code = "validation_failed";

  // InvalidArgument "<message> <hint>".
  Status ToStatus() const;
};

// "2026-11-25T10:00:00.123Z" (UTC, milliseconds; sorts as time).
std::string FormatTimestamp(WallTime time);
std::string NowTimestamp(const Clock& clock);
// Parses FormatTimestamp's output (milliseconds optional). False otherwise.
bool ParseTimestamp(std::string_view text, WallTime* out);

// Checks that `body` has only members named in `allowed` (typo protection).
std::optional<FieldError> CheckKnownMembers(const nlohmann::json& body, std::string_view where,
                                            const std::vector<std::string_view>& allowed);

// ---------------------------------------------------------------------------
// Providers
// ---------------------------------------------------------------------------

enum class CredentialKind { kAccessKey, kSession, kAssumeRole, kApiKey, kDefaultChain };
std::string_view CredentialKindName(CredentialKind kind);  // "access_key", ...
bool ParseCredentialKind(std::string_view text, CredentialKind* kind);

enum class ProviderStatus { kUntested, kWorking, kFailing };
std::string_view ProviderStatusName(ProviderStatus status);  // "untested" | "working" | "failing"
bool ParseProviderStatus(std::string_view text, ProviderStatus* status);

// Endpoint overrides. Service keys: "runtime" (bedrock-runtime),
// "agent_runtime" (bedrock-agent-runtime), "control" (bedrock, and
// bedrock-agent unless "agent" is given), "agent" (bedrock-agent), "sts".
struct ProviderEndpoints {
  std::string endpoint_url{};  // one URL for every service; "" = none
  std::map<std::string, std::string> services{};
  bool empty() const { return endpoint_url.empty() && services.empty(); }
  nlohmann::json ToJson() const;
};
// The accepted service keys, in documentation order.
const std::vector<std::string>& EndpointServiceKeys();

// Everything about a provider's connection that is not secret.
struct ProviderConfig {
  std::string region{};
  CredentialKind kind = CredentialKind::kAccessKey;
  std::string role_arn{};      // assume_role
  std::string external_id{};   // assume_role, optional
  std::string session_name{};  // assume_role, optional ("" = "quarry-<provider id>")
  std::string source{};        // assume_role: "access_key" | "default_chain"
  ProviderEndpoints endpoints{};

  // True when the kind takes an access key pair (access_key, session,
  // assume_role with source access_key).
  bool UsesAccessKey() const;
};

// Plaintext secrets of a provider (only those its kind uses are set).
struct ProviderSecrets {
  store::SecretString access_key_id{};
  store::SecretString secret_access_key{};
  store::SecretString session_token{};
  store::SecretString api_key{};
};

struct Provider {
  std::string id{};  // "prv_..."
  std::string org_id{};
  std::string name{};
  ProviderConfig config{};
  std::string access_key_hint{};                  // "AKIA****0001" or ""
  std::map<std::string, std::string> secret_ids{};  // purpose -> secret id
  std::string credentials_set_at{};               // when these credentials were entered
  ProviderStatus status = ProviderStatus::kUntested;
  nlohmann::json last_error = nullptr;  // {"check","code","message","hint","troubleshooting"} or null
  nlohmann::json last_test = nullptr;   // the last Test Connection report, or null
  std::string last_tested_at{};         // "" = never
  std::string identity_arn{};           // from the last successful credentials check
  int64_t version = 1;
  std::string created_by{};
  std::string created_at{};
  std::string updated_at{};
};

// The provider's public JSON (never a secret):
// {"id","name","type":"bedrock","region","credentials":{"kind","access_key_hint",
//  "role_arn","external_id","session_name","source","has_session_token"},
//  "endpoints":{...}|null,"status","last_error","last_tested_at","identity_arn",
//  "credentials_set_at","credentials_age_days","rotation_period_days",
//  "rotation_due":bool,"warnings":[{"code","message"}],"version","created_by",
//  "created_at","updated_at"}
nlohmann::json ProviderToJson(const Provider& provider, WallTime now, int rotation_period_days);

// ---- Input ----

struct CredentialsInput {
  CredentialKind kind = CredentialKind::kAccessKey;
  std::optional<store::SecretString> access_key_id{};
  std::optional<store::SecretString> secret_access_key{};
  std::optional<store::SecretString> session_token{};
  std::optional<store::SecretString> api_key{};
  std::optional<std::string> role_arn{}, external_id{}, session_name{}, source{};
};

struct ProviderInput {
  std::optional<std::string> name{};
  std::optional<std::string> region{};
  std::optional<ProviderEndpoints> endpoints{};  // {} clears them
  std::optional<CredentialsInput> credentials{};
};

// Parses a create (all of name, region, credentials required) or update body:
// {"name","region","credentials":{...},"endpoints":{"endpoint_url",
// "runtime","agent_runtime","control","agent","sts"}|null,"endpoint_url"}.
// Shapes only; ApplyProviderInput checks what depends on the stored provider.
std::optional<FieldError> ParseProviderInput(const nlohmann::json& body, bool create, ProviderInput* out);

// The configuration and secrets after applying `input` to `existing` (nullptr
// for a create). An update that keeps the credential kind may omit secret
// members to keep the stored ones (`existing_secrets`). Fails when the result
// misses something its kind needs.
struct ProviderDraft {
  std::string name{};
  ProviderConfig config{};
  ProviderSecrets secrets{};
  bool credentials_changed = false;  // secrets or role settings differ: re-test before keeping
  bool connection_changed = false;   // region or endpoints differ: status back to untested
};
std::optional<FieldError> ApplyProviderInput(const Provider* existing, const ProviderSecrets* existing_secrets,
                                             const ProviderInput& input, ProviderDraft* out);

// Warnings that follow from a configuration (no network): api_key cannot
// invoke agents, default_chain depends on the server's environment.
std::vector<nlohmann::json> ProviderConfigWarnings(const ProviderConfig& config);

// ---- Storage ----

// Inserts a provider (status untested) with its secrets, and the audit entry.
// AlreadyExists when the name is taken in the organization.
Result<Provider> CreateProvider(store::Tx& tx, const store::SecretStore& secrets, const Clock& clock,
                                const Principal& actor, const ProviderDraft& draft, const std::string& request_id);
// NotFound ("provider prv_... not found; list providers with GET /api/v1/providers").
Result<Provider> GetProvider(store::Tx& tx, const std::string& org_id, const std::string& provider_id);
// Oldest first. `status` "" = any.
Result<Page<Provider>> ListProviders(store::Tx& tx, const std::string& org_id, const PageRequest& page,
                                     std::string_view status = {});
Result<ProviderSecrets> LoadProviderSecrets(store::Tx& tx, const store::SecretStore& secrets,
                                            const Provider& provider);

// Writes an update: the draft's name and configuration; its secrets when
// credentials_changed (replacing the stored secrets, dropping those the new
// kind does not use); `tested` is the test report that proved new credentials
// (status working) or nullopt (status untested when the connection changed,
// kept otherwise). Bumps the version; audit entry with before and after.
struct TestOutcome {
  ProviderStatus status = ProviderStatus::kUntested;
  nlohmann::json last_error = nullptr;
  nlohmann::json report = nullptr;
  std::string identity_arn{};
  std::string tested_at{};
};
Result<Provider> UpdateProvider(store::Tx& tx, const store::SecretStore& secrets, const Clock& clock,
                                const Principal& actor, const Provider& before, const ProviderDraft& draft,
                                const std::optional<TestOutcome>& tested, const std::string& request_id);
// Stores a Test Connection result (no version bump). Audited as
// "provider.test" (status changes only matter to people reading the log).
Status RecordProviderTest(store::Tx& tx, const Clock& clock, const Principal& actor, const Provider& provider,
                          const TestOutcome& outcome, const std::string& request_id);
// Deletes a provider, its secrets and cached catalogue. FailedPrecondition
// naming the services and agent connections that still use it.
Status DeleteProvider(store::Tx& tx, const store::SecretStore& secrets, const Clock& clock,
                      const Principal& actor, const Provider& provider, const std::string& request_id);

// ---- Model catalogue cache ----

struct CachedCatalogue {
  nlohmann::json catalogue = nullptr;  // bedrock::ModelCatalogue::ToJson()
  std::string region{};
  std::string fetched_at{};
  std::vector<std::string> unusable{};  // model / profile ids a call found unusable
};
// nullopt when nothing is cached or the cache is for another region.
Result<std::optional<CachedCatalogue>> GetCachedCatalogue(store::Tx& tx, const Provider& provider);
Status PutCachedCatalogue(store::Tx& tx, const Provider& provider, const nlohmann::json& catalogue,
                          const std::string& fetched_at);
// Remembers that `target_id` is unusable for this provider (an AccessDenied
// on a test or service call); shown in the catalogue.
Status MarkTargetUnusable(store::Tx& tx, const Provider& provider, const std::string& target_id);

}  // namespace quarry::domain
