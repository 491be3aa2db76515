#pragma once
// Accounts: organizations, users (roles, argon2id passwords), browser
// sessions, API tokens, verified e-mail domains, and the first-start
// bootstrap. Also the idempotency records the API framework keeps for POSTs.
// Tables (migrations 100-199, AccountMigrations() in schema.h):
//   organizations, users, sessions, api_tokens, verified_domains, audit_log,
//   idempotency_keys.
//
// Credentials are never stored in clear: API tokens ("qk_" + 40 hex digits)
// and session secrets (64 hex digits) are stored as their SHA-256; passwords
// as argon2id encoded hashes (libargon2). The plaintext of a new token or
// session is returned once, in a SecretString, and never again.
//
// These are repository functions over a Tx: the caller chooses the
// transaction (and writes the audit entry in the same one). Messages say
// what is wrong and how to fix it; none contains a credential.
// Thread safety: stateless functions; PasswordHash/VerifyPassword are
// CPU-heavy (tens of milliseconds) by design.

#include <chrono>
#include <cstdint>
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

// Timestamps are stored and returned as ISO 8601 UTC with milliseconds,
// "2026-11-25T10:00:00.000Z" (the store's form, which sorts as time).

// ---------------------------------------------------------------------------
// Organizations
// ---------------------------------------------------------------------------

struct Organization {
  std::string id{};  // "org_..."
  std::string name{};
  int provider_key_rotation_days = 90;
  int64_t version = 1;
  std::string created_at{};
  std::string updated_at{};
  // {"id","name","settings":{"provider_key_rotation_days"},"version","created_at","updated_at"}
  nlohmann::json ToJson() const;
};

Result<Organization> CreateOrganization(store::Tx& tx, const Clock& clock, std::string name,
                                        int provider_key_rotation_days = 90);
Result<Organization> GetOrganization(store::Tx& tx, const std::string& org_id);
struct OrganizationUpdate {
  std::optional<std::string> name{};
  std::optional<int> provider_key_rotation_days{};  // 1..3650
};
// Applies the update when the stored version is `expected_version`
// (Aborted otherwise); returns the new state.
Result<Organization> UpdateOrganization(store::Tx& tx, const Clock& clock, const std::string& org_id,
                                        const OrganizationUpdate& update, int64_t expected_version);

// ---------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------

struct User {
  std::string id{};  // "usr_..."
  std::string org_id{};
  std::string email{};         // lower case
  std::string email_domain{};  // the part after '@'
  std::string display_name{};
  Role role = Role::kMember;
  bool disabled = false;
  bool has_password = false;
  int64_t version = 1;
  std::string created_at{};
  std::string updated_at{};
  // {"id","org_id","email","display_name","role","disabled","has_password","version","created_at","updated_at"}
  nlohmann::json ToJson() const;
};

// Lower-cases and checks an e-mail address (one '@', a dotted domain, no
// spaces); InvalidArgument saying what is wrong otherwise.
Result<std::string> NormalizeEmail(std::string_view email);
// The domain part of a normalized address.
std::string EmailDomain(std::string_view email);

struct NewUser {
  std::string org_id{};
  std::string email{};
  std::string display_name{};  // "" = the part before '@'
  Role role = Role::kMember;
  std::optional<store::SecretString> password{};  // none: token-only until one is set
};
// AlreadyExists when the e-mail is taken (e-mails are unique across the server).
Result<User> CreateUser(store::Tx& tx, const Clock& clock, const NewUser& user);
Result<User> GetUser(store::Tx& tx, const std::string& org_id, const std::string& user_id);
Result<Page<User>> ListUsers(store::Tx& tx, const std::string& org_id, const PageRequest& page);

struct UserUpdate {
  std::optional<std::string> display_name{};
  std::optional<Role> role{};
  std::optional<bool> disabled{};
};
// Version-checked like UpdateOrganization. FailedPrecondition when the change
// would leave the organization without an enabled admin.
Result<User> UpdateUser(store::Tx& tx, const Clock& clock, const std::string& org_id,
                        const std::string& user_id, const UserUpdate& update, int64_t expected_version);
// Deletes the user with their sessions and tokens. FailedPrecondition for the
// last enabled admin.
Status DeleteUser(store::Tx& tx, const std::string& org_id, const std::string& user_id);

// Password rules: 12..1024 characters. InvalidArgument otherwise.
Status CheckPasswordRules(std::string_view password);
// argon2id encoded hash ("$argon2id$v=19$m=19456,t=2,p=1$...").
Result<std::string> HashPassword(std::string_view password);
bool VerifyPasswordHash(std::string_view encoded_hash, std::string_view password);
// Sets (or replaces) a user's password and ends their sessions, except
// `keep_session_id` when non-empty.
Status SetPassword(store::Tx& tx, const Clock& clock, const std::string& org_id, const std::string& user_id,
                   const store::SecretString& password, const std::string& keep_session_id = {});
// True when `password` is the user's current password.
Result<bool> CheckUserPassword(store::Tx& tx, const std::string& user_id, const store::SecretString& password);

// ---------------------------------------------------------------------------
// Sessions and login
// ---------------------------------------------------------------------------

inline constexpr std::chrono::hours kSessionLifetime{12};

struct Session {
  std::string id{};  // "ses_..."
  std::string user_id{};
  std::string created_at{};
  std::string expires_at{};
};
struct NewSession {
  Session session;
  store::SecretString secret;  // the cookie value; shown once
  User user;
};
// Checks the e-mail and password (Unauthenticated "the e-mail address or
// password is wrong" for any mismatch, unknown user or disabled account, in
// about the same time) and opens a session.
Result<NewSession> Login(store::Tx& tx, const Clock& clock, std::string_view email,
                         const store::SecretString& password);
Status DeleteSession(store::Tx& tx, const std::string& session_id);

// ---------------------------------------------------------------------------
// API tokens
// ---------------------------------------------------------------------------

inline constexpr std::string_view kApiTokenPrefix = "qk_";

struct ApiToken {
  std::string id{};  // "tok_..."
  std::string org_id{};
  std::string user_id{};
  std::string name{};
  std::string prefix{};  // the first 10 characters of the token ("qk_1a2b3c4"), to recognise it
  std::string created_at{};
  std::string expires_at{};    // "" = never
  std::string last_used_at{};  // "" = never
  std::string revoked_at{};    // "" = active
  // {"id","user_id","name","prefix","created_at","expires_at","last_used_at","revoked_at"} (nulls for "")
  nlohmann::json ToJson() const;
};
struct NewApiToken {
  ApiToken token;
  store::SecretString secret;  // "qk_..."; shown once
};
// `expires_at` empty = never expires.
Result<NewApiToken> CreateApiToken(store::Tx& tx, const Clock& clock, const std::string& org_id,
                                   const std::string& user_id, std::string name,
                                   const std::optional<WallTime>& expires_at = std::nullopt);
Result<ApiToken> GetApiToken(store::Tx& tx, const std::string& org_id, const std::string& token_id);
// `user_id` empty = every user's tokens. Newest first.
Result<Page<ApiToken>> ListApiTokens(store::Tx& tx, const std::string& org_id, const std::string& user_id,
                                     const PageRequest& page);
// Marks the token revoked (idempotent). NotFound for an unknown id.
Result<ApiToken> RevokeApiToken(store::Tx& tx, const Clock& clock, const std::string& org_id,
                                const std::string& token_id);

// ---------------------------------------------------------------------------
// Authentication (the API server calls these for every request)
// ---------------------------------------------------------------------------

struct Authenticated {
  Principal principal;
  // The token's last_used_at is older than a minute: the caller may refresh it
  // with TouchApiToken (a write, so not done on every request).
  bool token_needs_touch = false;
};
// Unauthenticated naming the problem (not a Quarry token / unknown or revoked
// / expired / the user is disabled) and the fix.
Result<Authenticated> AuthenticateApiToken(store::Tx& tx, const Clock& clock, std::string_view token);
Result<Authenticated> AuthenticateSession(store::Tx& tx, const Clock& clock, std::string_view secret);
Status TouchApiToken(store::Tx& tx, const Clock& clock, const std::string& token_id);

// ---------------------------------------------------------------------------
// Verified domains
// ---------------------------------------------------------------------------

struct VerifiedDomain {
  std::string id{};  // "dom_..."
  std::string org_id{};
  std::string domain{};  // lower case, "example.com"
  std::string created_at{};
  std::string created_by{};  // user id, "" for the system
  // {"id","domain","created_at","created_by"}
  nlohmann::json ToJson() const;
};
// InvalidArgument for text that is not a domain name; AlreadyExists when listed.
Result<VerifiedDomain> AddVerifiedDomain(store::Tx& tx, const Clock& clock, const std::string& org_id,
                                         std::string_view domain, const std::string& created_by);
Result<std::vector<VerifiedDomain>> ListVerifiedDomains(store::Tx& tx, const std::string& org_id);
Result<VerifiedDomain> GetVerifiedDomain(store::Tx& tx, const std::string& org_id, const std::string& domain_id);
Status RemoveVerifiedDomain(store::Tx& tx, const std::string& org_id, const std::string& domain_id);
Result<bool> IsDomainVerified(store::Tx& tx, const std::string& org_id, std::string_view domain);

// ---------------------------------------------------------------------------
// First start
// ---------------------------------------------------------------------------

// When the database holds no organization: creates one (named after the
// admin's e-mail domain), the admin user (no password yet), the admin's
// domain as a verified domain, and an API token for the admin, returned
// once for the operator to print. nullopt when an organization exists.
Result<std::optional<store::SecretString>> BootstrapIfEmpty(store::Database& db, const Clock& clock,
                                                            std::string_view admin_email);

// ---------------------------------------------------------------------------
// Idempotency records (POST creates with an Idempotency-Key header)
// ---------------------------------------------------------------------------

inline constexpr std::chrono::hours kIdempotencyLifetime{24};
// An in-progress record older than this belongs to a request that died with
// its server; another request with the key may take it over.
inline constexpr std::chrono::minutes kIdempotencyAbandonedAfter{5};

struct IdempotencyClaim {
  enum class Kind {
    kProceed,     // new (or expired) key: run the request, then FinishIdempotency
    kReplay,      // done before with the same request: send `response` again
    kInProgress,  // the first request with this key is still running
    kMismatch,    // the key was used with a different request
  };
  Kind kind = Kind::kProceed;
  std::string response{};  // kReplay: what FinishIdempotency stored
};
// `scope` separates keys of different callers (the user id); `request_hash`
// identifies the request (method, path, body).
Result<IdempotencyClaim> ClaimIdempotencyKey(store::Tx& tx, const Clock& clock, const std::string& scope,
                                             const std::string& key, const std::string& request_hash);
// Stores the response (the caller seals it: it may hold a one-time secret).
Status FinishIdempotency(store::Tx& tx, const Clock& clock, const std::string& scope, const std::string& key,
                         const std::string& response);
// Forgets the key (the request failed in a way a retry may fix).
Status ReleaseIdempotencyKey(store::Tx& tx, const std::string& scope, const std::string& key);

}  // namespace quarry::domain
