#include "domain/accounts.h"

#include <argon2.h>

#include <cctype>
#include <cstdio>
#include <ctime>
#include <utility>

#include "common/crypto.h"
#include "common/encoding.h"
#include "common/ids.h"
#include "domain/audit.h"
#include "domain/schema.h"

namespace quarry::domain {

// ---------------------------------------------------------------------------
// Roles (principal.h has no .cc of its own)
// ---------------------------------------------------------------------------

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kMember: return "member";
    case Role::kBuilder: return "builder";
    case Role::kAdmin: return "admin";
  }
  return "member";
}

bool ParseRole(std::string_view text, Role* role) {
  if (text == "member") {
    *role = Role::kMember;
  } else if (text == "builder") {
    *role = Role::kBuilder;
  } else if (text == "admin") {
    *role = Role::kAdmin;
  } else {
    return false;
  }
  return true;
}

namespace {

// ---------------------------------------------------------------------------
// SQL
// ---------------------------------------------------------------------------

constexpr std::string_view kOrganizationColumns =
    "id, name, provider_key_rotation_days, version, created_at, updated_at";
constexpr std::string_view kInsertOrganization =
    "INSERT INTO organizations (id, name, provider_key_rotation_days, version, created_at, updated_at) "
    "VALUES ($1, $2, $3, 1, $4, $4)";
constexpr std::string_view kUpdateOrganization =
    "UPDATE organizations SET name = $1, provider_key_rotation_days = $2, version = version + 1, "
    "updated_at = $3 WHERE id = $4 AND version = $5";
constexpr std::string_view kCountOrganizations = "SELECT COUNT(*) FROM organizations";

constexpr std::string_view kUserColumns =
    "id, org_id, email, email_domain, display_name, role, disabled, password_hash, version, created_at, "
    "updated_at";
constexpr std::string_view kInsertUser =
    "INSERT INTO users (id, org_id, email, email_domain, display_name, role, disabled, password_hash, "
    "version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, 1, $8, $8)";
constexpr std::string_view kUpdateUser =
    "UPDATE users SET display_name = $1, role = $2, disabled = $3, version = version + 1, updated_at = $4 "
    "WHERE id = $5 AND org_id = $6 AND version = $7";
constexpr std::string_view kCountEnabledAdmins =
    "SELECT COUNT(*) FROM users WHERE org_id = $1 AND role = 'admin' AND disabled = 0";
constexpr std::string_view kDeleteUser = "DELETE FROM users WHERE id = $1 AND org_id = $2";
constexpr std::string_view kSetPassword =
    "UPDATE users SET password_hash = $1, version = version + 1, updated_at = $2 WHERE id = $3 AND org_id = $4";
constexpr std::string_view kPasswordHashOf = "SELECT password_hash FROM users WHERE id = $1";
constexpr std::string_view kLoginUser =
    "SELECT id, org_id, email, email_domain, display_name, role, disabled, password_hash, version, "
    "created_at, updated_at FROM users WHERE email = $1";

constexpr std::string_view kInsertSession =
    "INSERT INTO sessions (id, user_id, secret_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)";
constexpr std::string_view kDeleteExpiredSessionsOfUser =
    "DELETE FROM sessions WHERE user_id = $1 AND expires_at < $2";
constexpr std::string_view kDeleteSession = "DELETE FROM sessions WHERE id = $1";
constexpr std::string_view kDeleteOtherSessions = "DELETE FROM sessions WHERE user_id = $1 AND id <> $2";

constexpr std::string_view kTokenColumns =
    "id, org_id, user_id, name, prefix, created_at, expires_at, last_used_at, revoked_at";
constexpr std::string_view kInsertToken =
    "INSERT INTO api_tokens (id, org_id, user_id, name, prefix, token_hash, created_at, expires_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
constexpr std::string_view kRevokeToken =
    "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND org_id = $3 AND revoked_at IS NULL";
constexpr std::string_view kTouchToken = "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2";

// The verified-domain check is a count (not EXISTS) because both engines
// return a count as an integer, and booleans are stored as integers anyway.
constexpr std::string_view kAuthenticateToken =
    "SELECT t.id, t.user_id, t.expires_at, t.revoked_at, t.last_used_at, u.org_id, u.email, u.role, "
    "u.disabled, (SELECT COUNT(*) FROM verified_domains d WHERE d.org_id = u.org_id AND d.domain = "
    "u.email_domain) FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1";
constexpr std::string_view kAuthenticateSession =
    "SELECT s.id, s.user_id, s.expires_at, u.org_id, u.email, u.role, u.disabled, (SELECT COUNT(*) FROM "
    "verified_domains d WHERE d.org_id = u.org_id AND d.domain = u.email_domain) FROM sessions s JOIN users u "
    "ON u.id = s.user_id WHERE s.secret_hash = $1";

constexpr std::string_view kDomainColumns = "id, org_id, domain, created_at, created_by";
constexpr std::string_view kInsertDomain =
    "INSERT INTO verified_domains (id, org_id, domain, created_at, created_by) VALUES ($1, $2, $3, $4, $5)";
constexpr std::string_view kDeleteDomain = "DELETE FROM verified_domains WHERE id = $1 AND org_id = $2";
constexpr std::string_view kCountDomain =
    "SELECT COUNT(*) FROM verified_domains WHERE org_id = $1 AND domain = $2";

constexpr std::string_view kSelectIdempotency =
    "SELECT request_hash, state, response, created_at, expires_at FROM idempotency_keys "
    "WHERE scope = $1 AND idem_key = $2";
constexpr std::string_view kInsertIdempotency =
    "INSERT INTO idempotency_keys (scope, idem_key, request_hash, state, response, created_at, expires_at) "
    "VALUES ($1, $2, $3, 'in_progress', NULL, $4, $5)";
constexpr std::string_view kSweepIdempotency =
    "DELETE FROM idempotency_keys WHERE scope = $1 AND expires_at < $2";
constexpr std::string_view kRestartIdempotency =
    "UPDATE idempotency_keys SET request_hash = $1, state = 'in_progress', response = NULL, created_at = $2, "
    "expires_at = $3 WHERE scope = $4 AND idem_key = $5";
constexpr std::string_view kFinishIdempotency =
    "UPDATE idempotency_keys SET state = 'done', response = $1 WHERE scope = $2 AND idem_key = $3";
constexpr std::string_view kDeleteIdempotency = "DELETE FROM idempotency_keys WHERE scope = $1 AND idem_key = $2";

// argon2id at OWASP's recommended minimum (19 MiB, 2 passes, 1 lane): a
// guess costs an attacker real memory, a login costs us tens of ms.
constexpr uint32_t kArgonTimeCost = 2;
constexpr uint32_t kArgonMemoryKib = 19 * 1024;
constexpr uint32_t kArgonLanes = 1;
constexpr size_t kArgonSaltBytes = 16;
constexpr size_t kArgonHashBytes = 32;

// "2026-11-25T10:00:00.000Z": the store's timestamp form, which sorts as time.
std::string IsoMillis(WallTime time) {
  const auto since_epoch = std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch());
  int64_t millis = since_epoch.count();
  int64_t seconds = millis / 1000;
  int64_t fraction = millis % 1000;
  if (fraction < 0) {
    fraction += 1000;
    seconds -= 1;
  }
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[96];
  std::snprintf(buffer, sizeof(buffer), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(fraction));
  return buffer;
}

std::string NowText(const Clock& clock) { return IsoMillis(clock.Now()); }

Organization OrganizationFromRow(const store::Row& row) {
  Organization org;
  org.id = row.Text(0);
  org.name = row.Text(1);
  org.provider_key_rotation_days = static_cast<int>(row.Int(2));
  org.version = row.Int(3);
  org.created_at = row.Text(4);
  org.updated_at = row.Text(5);
  return org;
}

User UserFromRow(const store::Row& row) {
  User user;
  user.id = row.Text(0);
  user.org_id = row.Text(1);
  user.email = row.Text(2);
  user.email_domain = row.Text(3);
  user.display_name = row.Text(4);
  if (!ParseRole(row.Text(5), &user.role)) user.role = Role::kMember;
  user.disabled = row.Bool(6);
  user.has_password = !row.IsNull(7) && !row.Text(7).empty();
  user.version = row.Int(8);
  user.created_at = row.Text(9);
  user.updated_at = row.Text(10);
  return user;
}

ApiToken TokenFromRow(const store::Row& row) {
  ApiToken token;
  token.id = row.Text(0);
  token.org_id = row.Text(1);
  token.user_id = row.Text(2);
  token.name = row.Text(3);
  token.prefix = row.Text(4);
  token.created_at = row.Text(5);
  token.expires_at = row.OptText(6).value_or("");
  token.last_used_at = row.OptText(7).value_or("");
  token.revoked_at = row.OptText(8).value_or("");
  return token;
}

VerifiedDomain DomainFromRow(const store::Row& row) {
  VerifiedDomain domain;
  domain.id = row.Text(0);
  domain.org_id = row.Text(1);
  domain.domain = row.Text(2);
  domain.created_at = row.Text(3);
  domain.created_by = row.Text(4);
  return domain;
}

nlohmann::json NullIfEmpty(const std::string& text) {
  return text.empty() ? nlohmann::json(nullptr) : nlohmann::json(text);
}

Status CheckName(std::string_view what, std::string_view name, size_t max = 200) {
  if (TrimAsciiWhitespace(name).empty()) {
    return InvalidArgumentError(std::string(what) + " must not be empty; give it a name");
  }
  if (name.size() > max) {
    return InvalidArgumentError(std::string(what) + " is " + std::to_string(name.size()) +
                                " characters long; use at most " + std::to_string(max));
  }
  for (const char c : name) {
    if (static_cast<unsigned char>(c) < 0x20) {
      return InvalidArgumentError(std::string(what) + " contains a control character; remove it");
    }
  }
  return Status::Ok();
}

Status CheckDomainName(std::string_view domain) {
  const std::string shown(domain.substr(0, 80));
  if (domain.empty() || domain.size() > 253 || domain.find('.') == std::string_view::npos) {
    return InvalidArgumentError("'" + shown + "' is not a domain name; write it like example.com");
  }
  size_t label_start = 0;
  for (size_t i = 0; i <= domain.size(); ++i) {
    if (i == domain.size() || domain[i] == '.') {
      const std::string_view label = domain.substr(label_start, i - label_start);
      if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
        return InvalidArgumentError("'" + shown + "' is not a domain name; write it like example.com");
      }
      label_start = i + 1;
      continue;
    }
    const char c = domain[i];
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) ||
          c == '-')) {
      return InvalidArgumentError("'" + shown +
                                  "' is not a domain name (letters, digits, '-' and '.' only); write it like "
                                  "example.com");
    }
  }
  return Status::Ok();
}

// Fails when the organization would be left without an enabled admin (the
// caller's transaction then rolls back the change that caused it).
Status CheckAdminRemains(store::Tx& tx, const std::string& org_id) {
  QUARRY_ASSIGN_OR_RETURN(store::Row row, tx.QueryOne(kCountEnabledAdmins, {org_id}, "admin count"));
  if (row.Int(0) < 1) {
    return FailedPreconditionError(
        "this change would leave the organization without an enabled admin; make another user an admin "
        "first");
  }
  return Status::Ok();
}

Principal PrincipalFrom(std::string user_id, std::string org_id, std::string email, std::string_view role,
                        bool verified, std::string auth_kind, std::string credential_id) {
  Principal principal;
  principal.user_id = std::move(user_id);
  principal.org_id = std::move(org_id);
  principal.email = std::move(email);
  if (!ParseRole(role, &principal.role)) principal.role = Role::kMember;
  principal.email_domain_verified = verified;
  principal.auth_kind = std::move(auth_kind);
  principal.credential_id = std::move(credential_id);
  return principal;
}

const std::string& DummyPasswordHash() {
  // Verified against when the e-mail is unknown, so "no such user" and "wrong
  // password" take the same time and cannot be told apart by a stopwatch.
  static const std::string hash = HashPassword("not-a-real-password-000").value_or("");
  return hash;
}

}  // namespace

// ---------------------------------------------------------------------------
// Organizations
// ---------------------------------------------------------------------------

nlohmann::json Organization::ToJson() const {
  return {{"id", id},
          {"name", name},
          {"settings", {{"provider_key_rotation_days", provider_key_rotation_days}}},
          {"version", version},
          {"created_at", created_at},
          {"updated_at", updated_at}};
}

Result<Organization> CreateOrganization(store::Tx& tx, const Clock& clock, std::string name,
                                        int provider_key_rotation_days) {
  QUARRY_RETURN_IF_ERROR(CheckName("the organization name", name));
  Organization org;
  org.id = NewId("org");
  org.name = std::move(name);
  org.provider_key_rotation_days = provider_key_rotation_days;
  org.created_at = org.updated_at = NowText(clock);
  QUARRY_RETURN_IF_ERROR(
      tx.Exec(kInsertOrganization, {org.id, org.name, int64_t{provider_key_rotation_days}, org.created_at}));
  return org;
}

Result<Organization> GetOrganization(store::Tx& tx, const std::string& org_id) {
  const std::string sql = "SELECT " + std::string(kOrganizationColumns) + " FROM organizations WHERE id = $1";
  QUARRY_ASSIGN_OR_RETURN(store::Row row, tx.QueryOne(sql, {org_id}, "organization " + org_id));
  return OrganizationFromRow(row);
}

Result<Organization> UpdateOrganization(store::Tx& tx, const Clock& clock, const std::string& org_id,
                                        const OrganizationUpdate& update, int64_t expected_version) {
  QUARRY_ASSIGN_OR_RETURN(Organization org, GetOrganization(tx, org_id));
  if (org.version != expected_version) {
    return Status(StatusCode::kAborted, "the organization changed since you read it (version " +
                                            std::to_string(org.version) + "); fetch it again and retry");
  }
  if (update.name) {
    QUARRY_RETURN_IF_ERROR(CheckName("the organization name", *update.name));
    org.name = *update.name;
  }
  if (update.provider_key_rotation_days) {
    const int days = *update.provider_key_rotation_days;
    if (days < 1 || days > 3650) {
      return InvalidArgumentError("provider_key_rotation_days must be from 1 to 3650 (got " +
                                  std::to_string(days) + ")");
    }
    org.provider_key_rotation_days = days;
  }
  org.updated_at = NowText(clock);
  QUARRY_ASSIGN_OR_RETURN(int64_t changed, tx.Exec(kUpdateOrganization,
                                                   {org.name, int64_t{org.provider_key_rotation_days},
                                                    org.updated_at, org.id, expected_version}));
  if (changed != 1) {
    return Status(StatusCode::kAborted, "the organization changed while you updated it; fetch it again and retry");
  }
  org.version = expected_version + 1;
  return org;
}

// ---------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------

nlohmann::json User::ToJson() const {
  return {{"id", id},
          {"org_id", org_id},
          {"email", email},
          {"display_name", display_name},
          {"role", std::string(RoleName(role))},
          {"disabled", disabled},
          {"has_password", has_password},
          {"version", version},
          {"created_at", created_at},
          {"updated_at", updated_at}};
}

Result<std::string> NormalizeEmail(std::string_view email) {
  const std::string lower = AsciiToLower(TrimAsciiWhitespace(email));
  const std::string shown = lower.substr(0, 80);
  const size_t at = lower.find('@');
  if (lower.size() > 254 || at == std::string::npos || at == 0 || lower.find('@', at + 1) != std::string::npos) {
    return InvalidArgumentError("'" + shown + "' is not an e-mail address; write it like ada@example.com");
  }
  for (const char c : lower) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == '"' || c == ',' || c == '<' || c == '>') {
      return InvalidArgumentError("the e-mail address '" + shown +
                                  "' contains a space or a character addresses cannot hold; remove it");
    }
  }
  if (Status domain = CheckDomainName(std::string_view(lower).substr(at + 1)); !domain.ok()) {
    return InvalidArgumentError("the e-mail address '" + shown + "' has no valid domain after '@': " +
                                domain.message());
  }
  return lower;
}

std::string EmailDomain(std::string_view email) {
  const size_t at = email.rfind('@');
  return at == std::string_view::npos ? std::string() : std::string(email.substr(at + 1));
}

Result<User> CreateUser(store::Tx& tx, const Clock& clock, const NewUser& request) {
  QUARRY_ASSIGN_OR_RETURN(std::string email, NormalizeEmail(request.email));
  User user;
  user.id = NewId("usr");
  user.org_id = request.org_id;
  user.email = email;
  user.email_domain = EmailDomain(email);
  user.display_name = request.display_name.empty() ? email.substr(0, email.find('@')) : request.display_name;
  QUARRY_RETURN_IF_ERROR(CheckName("display_name", user.display_name));
  user.role = request.role;
  store::Value password_hash = store::Null();
  if (request.password) {
    QUARRY_RETURN_IF_ERROR(CheckPasswordRules(request.password->reveal()));
    QUARRY_ASSIGN_OR_RETURN(std::string hash, HashPassword(request.password->reveal()));
    password_hash = std::move(hash);
    user.has_password = true;
  }
  user.created_at = user.updated_at = NowText(clock);
  Result<int64_t> inserted =
      tx.Exec(kInsertUser, {user.id, user.org_id, user.email, user.email_domain, user.display_name,
                            std::string(RoleName(user.role)), password_hash, user.created_at});
  if (!inserted.ok()) {
    if (inserted.status().code() == StatusCode::kAlreadyExists) {
      return Status(StatusCode::kAlreadyExists,
                    "a user with the e-mail address " + user.email + " already exists; use another address");
    }
    return inserted.status();
  }
  return user;
}

Result<User> GetUser(store::Tx& tx, const std::string& org_id, const std::string& user_id) {
  const std::string sql = "SELECT " + std::string(kUserColumns) + " FROM users WHERE id = $1 AND org_id = $2";
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, {user_id, org_id}));
  if (rows.empty()) {
    return NotFoundError("user " + user_id + " not found in this organization; list users with GET /api/v1/users");
  }
  return UserFromRow(rows.rows[0]);
}

Result<Page<User>> ListUsers(store::Tx& tx, const std::string& org_id, const PageRequest& page) {
  std::string sql = "SELECT " + std::string(kUserColumns) + " FROM users WHERE org_id = $1";
  store::Params params = {org_id};
  QUARRY_RETURN_IF_ERROR(AppendKeysetPage(page, &sql, &params));
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, params));
  return TakeKeysetPage<User>(rows, page.limit, UserFromRow);
}

Result<User> UpdateUser(store::Tx& tx, const Clock& clock, const std::string& org_id, const std::string& user_id,
                        const UserUpdate& update, int64_t expected_version) {
  QUARRY_ASSIGN_OR_RETURN(User user, GetUser(tx, org_id, user_id));
  if (user.version != expected_version) {
    return Status(StatusCode::kAborted, "the user changed since you read it (version " +
                                            std::to_string(user.version) + "); fetch it again and retry");
  }
  if (update.display_name) {
    QUARRY_RETURN_IF_ERROR(CheckName("display_name", *update.display_name));
    user.display_name = *update.display_name;
  }
  if (update.role) user.role = *update.role;
  if (update.disabled) user.disabled = *update.disabled;
  user.updated_at = NowText(clock);
  QUARRY_ASSIGN_OR_RETURN(int64_t changed,
                          tx.Exec(kUpdateUser, {user.display_name, std::string(RoleName(user.role)),
                                                store::Bool(user.disabled), user.updated_at, user.id, org_id,
                                                expected_version}));
  if (changed != 1) {
    return Status(StatusCode::kAborted, "the user changed while you updated it; fetch it again and retry");
  }
  QUARRY_RETURN_IF_ERROR(CheckAdminRemains(tx, org_id));
  if (user.disabled) {
    // A disabled user's sessions end now; tokens are refused at
    // authentication while disabled (and work again when re-enabled).
    QUARRY_RETURN_IF_ERROR(tx.Exec(kDeleteOtherSessions, {user.id, std::string()}));
  }
  user.version = expected_version + 1;
  return user;
}

Status DeleteUser(store::Tx& tx, const std::string& org_id, const std::string& user_id) {
  QUARRY_ASSIGN_OR_RETURN(int64_t deleted, tx.Exec(kDeleteUser, {user_id, org_id}));
  if (deleted == 0) {
    return NotFoundError("user " + user_id + " not found in this organization; list users with GET /api/v1/users");
  }
  return CheckAdminRemains(tx, org_id);
}

Status CheckPasswordRules(std::string_view password) {
  if (password.size() < 12) {
    return InvalidArgumentError("the password is too short (" + std::to_string(password.size()) +
                                " characters); use at least 12");
  }
  if (password.size() > 1024) {
    return InvalidArgumentError("the password is longer than 1024 characters; use a shorter one");
  }
  return Status::Ok();
}

Result<std::string> HashPassword(std::string_view password) {
  const std::string salt = SecureRandomBytes(kArgonSaltBytes);
  const size_t encoded_length =
      argon2_encodedlen(kArgonTimeCost, kArgonMemoryKib, kArgonLanes, kArgonSaltBytes, kArgonHashBytes, Argon2_id);
  std::string encoded(encoded_length, '\0');
  const int rc = argon2id_hash_encoded(kArgonTimeCost, kArgonMemoryKib, kArgonLanes, password.data(),
                                       password.size(), salt.data(), salt.size(), kArgonHashBytes, encoded.data(),
                                       encoded.size());
  if (rc != ARGON2_OK) {
    return InternalError(std::string("could not hash the password (argon2: ") + argon2_error_message(rc) +
                         "); check that the server has enough memory");
  }
  encoded.resize(encoded.find('\0') == std::string::npos ? encoded.size() : encoded.find('\0'));
  return encoded;
}

bool VerifyPasswordHash(std::string_view encoded_hash, std::string_view password) {
  if (encoded_hash.empty()) return false;
  const std::string encoded(encoded_hash);
  return argon2id_verify(encoded.c_str(), password.data(), password.size()) == ARGON2_OK;
}

Status SetPassword(store::Tx& tx, const Clock& clock, const std::string& org_id, const std::string& user_id,
                   const store::SecretString& password, const std::string& keep_session_id) {
  QUARRY_RETURN_IF_ERROR(CheckPasswordRules(password.reveal()));
  QUARRY_ASSIGN_OR_RETURN(std::string hash, HashPassword(password.reveal()));
  QUARRY_ASSIGN_OR_RETURN(int64_t changed, tx.Exec(kSetPassword, {hash, NowText(clock), user_id, org_id}));
  if (changed == 0) {
    return NotFoundError("user " + user_id + " not found in this organization; list users with GET /api/v1/users");
  }
  // A new password ends every other browser session: whoever knew the old
  // one is logged out.
  QUARRY_RETURN_IF_ERROR(tx.Exec(kDeleteOtherSessions, {user_id, keep_session_id}));
  return Status::Ok();
}

Result<bool> CheckUserPassword(store::Tx& tx, const std::string& user_id, const store::SecretString& password) {
  QUARRY_ASSIGN_OR_RETURN(store::Row row, tx.QueryOne(kPasswordHashOf, {user_id}, "user " + user_id));
  if (row.IsNull(0)) return false;
  return VerifyPasswordHash(row.Text(0), password.reveal());
}

// ---------------------------------------------------------------------------
// Sessions and login
// ---------------------------------------------------------------------------

Result<NewSession> Login(store::Tx& tx, const Clock& clock, std::string_view email,
                         const store::SecretString& password) {
  const Status wrong = UnauthenticatedError(
      "the e-mail address or password is wrong (or the account is disabled); check them, or ask an admin to set a "
      "new password");
  const std::string normalized = AsciiToLower(TrimAsciiWhitespace(email));
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(kLoginUser, {normalized}));
  if (rows.empty()) {
    (void)VerifyPasswordHash(DummyPasswordHash(), password.reveal());
    return wrong;
  }
  const store::Row& row = rows.rows[0];
  User user = UserFromRow(row);
  const std::string hash = row.OptText(7).value_or("");
  if (hash.empty()) {
    (void)VerifyPasswordHash(DummyPasswordHash(), password.reveal());
    return wrong;
  }
  if (!VerifyPasswordHash(hash, password.reveal()) || user.disabled) return wrong;

  const std::string now = NowText(clock);
  QUARRY_RETURN_IF_ERROR(tx.Exec(kDeleteExpiredSessionsOfUser, {user.id, now}));
  NewSession created;
  created.session.id = NewId("ses");
  created.session.user_id = user.id;
  created.session.created_at = now;
  created.session.expires_at = IsoMillis(clock.Now() + kSessionLifetime);
  created.secret = store::SecretString(HexEncode(SecureRandomBytes(32)));
  QUARRY_RETURN_IF_ERROR(tx.Exec(kInsertSession, {created.session.id, user.id, Sha256Hex(created.secret.reveal()),
                                                  now, created.session.expires_at}));
  created.user = std::move(user);
  return created;
}

Status DeleteSession(store::Tx& tx, const std::string& session_id) {
  return tx.Exec(kDeleteSession, {session_id}).status();
}

// ---------------------------------------------------------------------------
// API tokens
// ---------------------------------------------------------------------------

nlohmann::json ApiToken::ToJson() const {
  return {{"id", id},
          {"user_id", user_id},
          {"name", name},
          {"prefix", prefix},
          {"created_at", created_at},
          {"expires_at", NullIfEmpty(expires_at)},
          {"last_used_at", NullIfEmpty(last_used_at)},
          {"revoked_at", NullIfEmpty(revoked_at)}};
}

Result<NewApiToken> CreateApiToken(store::Tx& tx, const Clock& clock, const std::string& org_id,
                                   const std::string& user_id, std::string name,
                                   const std::optional<WallTime>& expires_at) {
  QUARRY_RETURN_IF_ERROR(CheckName("the token name", name));
  if (expires_at && *expires_at <= clock.Now()) {
    return InvalidArgumentError("expires_at is in the past; give a future time or leave it out");
  }
  NewApiToken created;
  created.secret = store::SecretString(std::string(kApiTokenPrefix) + HexEncode(SecureRandomBytes(20)));
  ApiToken& token = created.token;
  token.id = NewId("tok");
  token.org_id = org_id;
  token.user_id = user_id;
  token.name = std::move(name);
  token.prefix = created.secret.reveal().substr(0, 10);
  token.created_at = NowText(clock);
  token.expires_at = expires_at ? IsoMillis(*expires_at) : "";
  Result<int64_t> inserted = tx.Exec(kInsertToken, {token.id, org_id, user_id, token.name, token.prefix,
                                                    Sha256Hex(created.secret.reveal()), token.created_at,
                                                    expires_at ? store::Value(token.expires_at) : store::Null()});
  if (!inserted.ok()) {
    if (inserted.status().code() == StatusCode::kFailedPrecondition) {
      return NotFoundError("user " + user_id + " not found in this organization; list users with GET /api/v1/users");
    }
    return inserted.status();
  }
  return created;
}

Result<ApiToken> GetApiToken(store::Tx& tx, const std::string& org_id, const std::string& token_id) {
  const std::string sql = "SELECT " + std::string(kTokenColumns) + " FROM api_tokens WHERE id = $1 AND org_id = $2";
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, {token_id, org_id}));
  if (rows.empty()) {
    return NotFoundError("API token " + token_id + " not found; list tokens with GET /api/v1/tokens");
  }
  return TokenFromRow(rows.rows[0]);
}

Result<Page<ApiToken>> ListApiTokens(store::Tx& tx, const std::string& org_id, const std::string& user_id,
                                     const PageRequest& page) {
  std::string sql = "SELECT " + std::string(kTokenColumns) + " FROM api_tokens WHERE org_id = $1";
  store::Params params = {org_id};
  if (!user_id.empty()) {
    params.push_back(user_id);
    sql += " AND user_id = $" + std::to_string(params.size());
  }
  QUARRY_RETURN_IF_ERROR(AppendKeysetPage(page, &sql, &params, SortOrder::kDescending));
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, params));
  return TakeKeysetPage<ApiToken>(rows, page.limit, TokenFromRow);
}

Result<ApiToken> RevokeApiToken(store::Tx& tx, const Clock& clock, const std::string& org_id,
                                const std::string& token_id) {
  QUARRY_RETURN_IF_ERROR(GetApiToken(tx, org_id, token_id).status());
  QUARRY_RETURN_IF_ERROR(tx.Exec(kRevokeToken, {NowText(clock), token_id, org_id}));
  return GetApiToken(tx, org_id, token_id);
}

// ---------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------

Result<Authenticated> AuthenticateApiToken(store::Tx& tx, const Clock& clock, std::string_view token) {
  if (!token.starts_with(kApiTokenPrefix) || token.size() > 200) {
    return UnauthenticatedError(
        "the bearer token is not a Quarry API token (they start with \"qk_\"); create one with POST /api/v1/tokens "
        "or `quarry login`");
  }
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(kAuthenticateToken, {Sha256Hex(token)}));
  if (rows.empty()) {
    return UnauthenticatedError(
        "the API token is not valid (unknown, or deleted with its user); create a new one with POST /api/v1/tokens "
        "or `quarry login`");
  }
  const store::Row& row = rows.rows[0];
  const std::string now = NowText(clock);
  if (!row.IsNull(3)) {
    return UnauthenticatedError("the API token was revoked at " + row.Text(3) +
                                "; create a new one with POST /api/v1/tokens or `quarry login`");
  }
  if (!row.IsNull(2) && row.Text(2) <= now) {
    return UnauthenticatedError("the API token expired at " + row.Text(2) +
                                "; create a new one with POST /api/v1/tokens or `quarry login`");
  }
  if (row.Bool(8)) {
    return UnauthenticatedError("the account " + row.Text(6) + " is disabled; ask an admin to enable it");
  }
  Authenticated result;
  result.principal =
      PrincipalFrom(row.Text(1), row.Text(5), row.Text(6), row.Text(7), row.Int(9) > 0, "token", row.Text(0));
  const std::string stale = IsoMillis(clock.Now() - std::chrono::minutes(1));
  result.token_needs_touch = row.IsNull(4) || row.Text(4) < stale;
  return result;
}

Result<Authenticated> AuthenticateSession(store::Tx& tx, const Clock& clock, std::string_view secret) {
  if (secret.empty() || secret.size() > 200) {
    return UnauthenticatedError("the session cookie is not valid; log in again with POST /api/v1/auth/login");
  }
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(kAuthenticateSession, {Sha256Hex(secret)}));
  if (rows.empty()) {
    return UnauthenticatedError(
        "the session has ended (logged out, or the password changed); log in again with POST /api/v1/auth/login");
  }
  const store::Row& row = rows.rows[0];
  if (row.Text(2) <= NowText(clock)) {
    return UnauthenticatedError("the session expired at " + row.Text(2) +
                                "; log in again with POST /api/v1/auth/login");
  }
  if (row.Bool(6)) {
    return UnauthenticatedError("the account " + row.Text(4) + " is disabled; ask an admin to enable it");
  }
  Authenticated result;
  result.principal =
      PrincipalFrom(row.Text(1), row.Text(3), row.Text(4), row.Text(5), row.Int(7) > 0, "session", row.Text(0));
  return result;
}

Status TouchApiToken(store::Tx& tx, const Clock& clock, const std::string& token_id) {
  return tx.Exec(kTouchToken, {NowText(clock), token_id}).status();
}

// ---------------------------------------------------------------------------
// Verified domains
// ---------------------------------------------------------------------------

nlohmann::json VerifiedDomain::ToJson() const {
  return {{"id", id}, {"domain", domain}, {"created_at", created_at}, {"created_by", NullIfEmpty(created_by)}};
}

Result<VerifiedDomain> AddVerifiedDomain(store::Tx& tx, const Clock& clock, const std::string& org_id,
                                         std::string_view domain_text, const std::string& created_by) {
  VerifiedDomain domain;
  domain.domain = AsciiToLower(TrimAsciiWhitespace(domain_text));
  QUARRY_RETURN_IF_ERROR(CheckDomainName(domain.domain));
  domain.id = NewId("dom");
  domain.org_id = org_id;
  domain.created_at = NowText(clock);
  domain.created_by = created_by;
  Result<int64_t> inserted =
      tx.Exec(kInsertDomain, {domain.id, org_id, domain.domain, domain.created_at, domain.created_by});
  if (!inserted.ok()) {
    if (inserted.status().code() == StatusCode::kAlreadyExists) {
      return Status(StatusCode::kAlreadyExists, "the domain " + domain.domain + " is already verified");
    }
    return inserted.status();
  }
  return domain;
}

Result<std::vector<VerifiedDomain>> ListVerifiedDomains(store::Tx& tx, const std::string& org_id) {
  const std::string sql =
      "SELECT " + std::string(kDomainColumns) + " FROM verified_domains WHERE org_id = $1 ORDER BY domain";
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, {org_id}));
  std::vector<VerifiedDomain> domains;
  for (const store::Row& row : rows.rows) domains.push_back(DomainFromRow(row));
  return domains;
}

Result<VerifiedDomain> GetVerifiedDomain(store::Tx& tx, const std::string& org_id, const std::string& domain_id) {
  const std::string sql =
      "SELECT " + std::string(kDomainColumns) + " FROM verified_domains WHERE id = $1 AND org_id = $2";
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, {domain_id, org_id}));
  if (rows.empty()) {
    return NotFoundError("verified domain " + domain_id +
                         " not found; list them with GET /api/v1/verified-domains");
  }
  return DomainFromRow(rows.rows[0]);
}

Status RemoveVerifiedDomain(store::Tx& tx, const std::string& org_id, const std::string& domain_id) {
  QUARRY_ASSIGN_OR_RETURN(int64_t deleted, tx.Exec(kDeleteDomain, {domain_id, org_id}));
  if (deleted == 0) {
    return NotFoundError("verified domain " + domain_id +
                         " not found; list them with GET /api/v1/verified-domains");
  }
  return Status::Ok();
}

Result<bool> IsDomainVerified(store::Tx& tx, const std::string& org_id, std::string_view domain) {
  QUARRY_ASSIGN_OR_RETURN(store::Row row,
                          tx.QueryOne(kCountDomain, {org_id, AsciiToLower(domain)}, "verified domain count"));
  return row.Int(0) > 0;
}

// ---------------------------------------------------------------------------
// First start
// ---------------------------------------------------------------------------

Result<std::optional<store::SecretString>> BootstrapIfEmpty(store::Database& db, const Clock& clock,
                                                            std::string_view admin_email) {
  QUARRY_ASSIGN_OR_RETURN(std::string email, NormalizeEmail(admin_email));
  std::optional<store::SecretString> token;
  Status status = db.Write([&](store::Tx& tx) -> Status {
    token.reset();
    QUARRY_ASSIGN_OR_RETURN(store::Row count, tx.QueryOne(kCountOrganizations, {}, "organization count"));
    if (count.Int(0) > 0) return Status::Ok();
    const std::string domain = EmailDomain(email);
    QUARRY_ASSIGN_OR_RETURN(Organization org, CreateOrganization(tx, clock, domain));
    NewUser admin;
    admin.org_id = org.id;
    admin.email = email;
    admin.role = Role::kAdmin;
    QUARRY_ASSIGN_OR_RETURN(User user, CreateUser(tx, clock, admin));
    QUARRY_ASSIGN_OR_RETURN(VerifiedDomain verified, AddVerifiedDomain(tx, clock, org.id, domain, ""));
    QUARRY_ASSIGN_OR_RETURN(NewApiToken created, CreateApiToken(tx, clock, org.id, user.id, "first start"));
    AuditEntry entry;
    entry.org_id = org.id;
    entry.action = "organization.bootstrap";
    entry.target_type = "organization";
    entry.target_id = org.id;
    entry.after = {{"organization", org.ToJson()},
                   {"admin", user.ToJson()},
                   {"verified_domain", verified.ToJson()},
                   {"api_token", created.token.ToJson()}};
    QUARRY_RETURN_IF_ERROR(RecordAudit(tx, clock, nullptr, std::move(entry)));
    token = created.secret;
    return Status::Ok();
  });
  QUARRY_RETURN_IF_ERROR(status);
  return token;
}

// ---------------------------------------------------------------------------
// Idempotency records
// ---------------------------------------------------------------------------

Result<IdempotencyClaim> ClaimIdempotencyKey(store::Tx& tx, const Clock& clock, const std::string& scope,
                                             const std::string& key, const std::string& request_hash) {
  const WallTime now_time = clock.Now();
  const std::string now = IsoMillis(now_time);
  const std::string expires = IsoMillis(now_time + kIdempotencyLifetime);
  // Expired keys of this caller go first: the sweep is bounded by one
  // caller's keys, and an expired key is free to reuse.
  QUARRY_RETURN_IF_ERROR(tx.Exec(kSweepIdempotency, {scope, now}));
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(kSelectIdempotency, {scope, key}));
  IdempotencyClaim claim;
  if (rows.empty()) {
    QUARRY_RETURN_IF_ERROR(tx.Exec(kInsertIdempotency, {scope, key, request_hash, now, expires}));
    claim.kind = IdempotencyClaim::Kind::kProceed;
    return claim;
  }
  const store::Row& row = rows.rows[0];
  const bool in_progress = row.Text(1) == "in_progress";
  if (in_progress) {
    const std::string abandoned = IsoMillis(now_time - kIdempotencyAbandonedAfter);
    if (row.Text(3) < abandoned) {
      QUARRY_RETURN_IF_ERROR(tx.Exec(kRestartIdempotency, {request_hash, now, expires, scope, key}));
      claim.kind = IdempotencyClaim::Kind::kProceed;
      return claim;
    }
  }
  if (!ConstantTimeEquals(row.Text(0), request_hash)) {
    claim.kind = IdempotencyClaim::Kind::kMismatch;
  } else if (in_progress) {
    claim.kind = IdempotencyClaim::Kind::kInProgress;
  } else {
    claim.kind = IdempotencyClaim::Kind::kReplay;
    claim.response = row.Text(2);
  }
  return claim;
}

Status FinishIdempotency(store::Tx& tx, const Clock& clock, const std::string& scope, const std::string& key,
                         const std::string& response) {
  (void)clock;
  return tx.Exec(kFinishIdempotency, {response, scope, key}).status();
}

Status ReleaseIdempotencyKey(store::Tx& tx, const std::string& scope, const std::string& key) {
  return tx.Exec(kDeleteIdempotency, {scope, key}).status();
}

}  // namespace quarry::domain

// ---------------------------------------------------------------------------
// Schema (declared in schema.h)
// ---------------------------------------------------------------------------

namespace quarry::domain {

std::vector<store::Migration> AccountMigrations() {
  std::vector<store::Migration> migrations;
  migrations.push_back(store::Migration{
      100, "create organizations, users, sessions, API tokens, verified domains",
      "CREATE TABLE organizations ("
      "  id TEXT PRIMARY KEY,"
      "  name TEXT NOT NULL,"
      "  provider_key_rotation_days BIGINT NOT NULL DEFAULT 90,"
      "  version BIGINT NOT NULL,"
      "  created_at TEXT NOT NULL,"
      "  updated_at TEXT NOT NULL);"
      "CREATE TABLE users ("
      "  id TEXT PRIMARY KEY,"
      "  org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,"
      "  email TEXT NOT NULL UNIQUE,"
      "  email_domain TEXT NOT NULL,"
      "  display_name TEXT NOT NULL,"
      "  role TEXT NOT NULL CHECK (role IN ('member', 'builder', 'admin')),"
      "  disabled BIGINT NOT NULL DEFAULT 0,"
      "  password_hash TEXT,"
      "  version BIGINT NOT NULL,"
      "  created_at TEXT NOT NULL,"
      "  updated_at TEXT NOT NULL);"
      "CREATE INDEX IF NOT EXISTS users_by_org ON users (org_id, created_at, id);"
      "CREATE TABLE sessions ("
      "  id TEXT PRIMARY KEY,"
      "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
      "  secret_hash TEXT NOT NULL UNIQUE,"
      "  created_at TEXT NOT NULL,"
      "  expires_at TEXT NOT NULL);"
      "CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (user_id);"
      "CREATE TABLE api_tokens ("
      "  id TEXT PRIMARY KEY,"
      "  org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,"
      "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
      "  name TEXT NOT NULL,"
      "  prefix TEXT NOT NULL,"
      "  token_hash TEXT NOT NULL UNIQUE,"
      "  created_at TEXT NOT NULL,"
      "  expires_at TEXT,"
      "  last_used_at TEXT,"
      "  revoked_at TEXT);"
      "CREATE INDEX IF NOT EXISTS api_tokens_by_org ON api_tokens (org_id, created_at, id);"
      "CREATE INDEX IF NOT EXISTS api_tokens_by_user ON api_tokens (user_id);"
      "CREATE TABLE verified_domains ("
      "  id TEXT PRIMARY KEY,"
      "  org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,"
      "  domain TEXT NOT NULL,"
      "  created_at TEXT NOT NULL,"
      "  created_by TEXT NOT NULL,"
      "  UNIQUE (org_id, domain))",
      ""});
  // The audit log keeps no foreign keys: entries outlive what they describe.
  migrations.push_back(store::Migration{
      101, "create audit log",
      "CREATE TABLE audit_log ("
      "  id TEXT PRIMARY KEY,"
      "  org_id TEXT NOT NULL,"
      "  actor_user_id TEXT NOT NULL,"
      "  actor_email TEXT NOT NULL,"
      "  action TEXT NOT NULL,"
      "  target_type TEXT NOT NULL,"
      "  target_id TEXT NOT NULL,"
      "  before_json TEXT,"
      "  after_json TEXT,"
      "  request_id TEXT NOT NULL,"
      "  at TEXT NOT NULL);"
      "CREATE INDEX IF NOT EXISTS audit_log_by_org_time ON audit_log (org_id, at, id);"
      "CREATE INDEX IF NOT EXISTS audit_log_by_target ON audit_log (org_id, target_type, target_id)",
      ""});
  migrations.push_back(store::Migration{
      102, "create idempotency keys",
      "CREATE TABLE idempotency_keys ("
      "  scope TEXT NOT NULL,"
      "  idem_key TEXT NOT NULL,"
      "  request_hash TEXT NOT NULL,"
      "  state TEXT NOT NULL,"
      "  response TEXT,"
      "  created_at TEXT NOT NULL,"
      "  expires_at TEXT NOT NULL,"
      "  PRIMARY KEY (scope, idem_key));"
      "CREATE INDEX IF NOT EXISTS idempotency_keys_by_expiry ON idempotency_keys (scope, expires_at)",
      ""});
  return migrations;
}

}  // namespace quarry::domain
