// Accounts: login and sessions, the caller's own view, the organization and
// its settings, users and roles, API tokens, verified domains, the audit log.
// Every change writes its audit entry in the same transaction.

#include <algorithm>
#include <optional>
#include <utility>

#include "api/api.h"
#include "common/encoding.h"
#include "domain/accounts.h"
#include "domain/audit.h"

namespace quarry::api {
namespace {

using domain::Principal;
using nlohmann::json;

// Runs `fn` (returning Result<T>) in a transaction and returns its result.
// The function may run more than once (see store::Database), so it only
// touches the transaction and its own result.
template <typename Fn>
auto Transact(store::Database& db, bool write, Fn&& fn) -> decltype(fn(std::declval<store::Tx&>())) {
  using R = decltype(fn(std::declval<store::Tx&>()));
  std::optional<R> out;
  auto body = [&](store::Tx& tx) -> Status {
    R result = fn(tx);
    Status status = result.status();
    out.emplace(std::move(result));
    return status;
  };
  Status status = write ? db.Write(body) : db.Read(body);
  if (!status.ok()) return status;
  return std::move(*out);
}

template <typename Fn>
auto InWrite(ServerContext& context, Fn&& fn) {
  return Transact(*context.db, true, std::forward<Fn>(fn));
}
template <typename Fn>
auto InRead(ServerContext& context, Fn&& fn) {
  return Transact(*context.db, false, std::forward<Fn>(fn));
}

// Typo protection: a misspelt member would otherwise be silently ignored.
Status CheckMembers(const json& body, std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : body.items()) {
    bool known = false;
    for (std::string_view name : allowed) known = known || key == name;
    if (!known) {
      std::string list;
      for (std::string_view name : allowed) {
        if (!list.empty()) list += ", ";
        list += name;
      }
      return InvalidArgumentError("unknown member \"" + key + "\"; the members allowed here are: " + list);
    }
  }
  return Status::Ok();
}

Result<std::optional<std::string>> OptString(const json& body, std::string_view name) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) return InvalidArgumentError(std::string(name) + " must be a string");
  return std::optional<std::string>(it->get<std::string>());
}

Result<std::string> RequiredString(const json& body, std::string_view name) {
  QUARRY_ASSIGN_OR_RETURN(std::optional<std::string> value, OptString(body, name));
  if (!value || value->empty()) return InvalidArgumentError(std::string(name) + " is required");
  return *value;
}

Result<std::optional<bool>> OptBool(const json& body, std::string_view name) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::optional<bool>();
  if (!it->is_boolean()) return InvalidArgumentError(std::string(name) + " must be true or false");
  return std::optional<bool>(it->get<bool>());
}

Result<std::optional<domain::Role>> OptRole(const json& body) {
  QUARRY_ASSIGN_OR_RETURN(std::optional<std::string> text, OptString(body, "role"));
  if (!text) return std::optional<domain::Role>();
  domain::Role role;
  if (!domain::ParseRole(*text, &role)) {
    return InvalidArgumentError("role \"" + text->substr(0, 40) + "\" is not a role; use member, builder or admin");
  }
  return std::optional<domain::Role>(role);
}

json PageJson(json items, const std::string& next_cursor) {
  return {{"items", std::move(items)}, {"next_cursor", next_cursor.empty() ? json(nullptr) : json(next_cursor)}};
}

Result<domain::PageRequest> PageFrom(const ApiRequest& request) {
  return domain::ParsePageRequest(request.QueryParam("limit"), request.QueryParam("cursor"));
}

Status Audit(store::Tx& tx, ServerContext& context, const ApiRequest& request, std::string action,
             std::string target_type, std::string target_id, json before, json after) {
  return domain::RecordAudit(tx, *context.clock, &request.who(),
                             {.org_id = request.who().org_id,
                              .action = std::move(action),
                              .target_type = std::move(target_type),
                              .target_id = std::move(target_id),
                              .before = std::move(before),
                              .after = std::move(after),
                              .request_id = request.request_id});
}

// An admin whose own domain is unverified must not be able to take over an
// account of a verified domain (by setting its password, making it admin,
// or minting its tokens) and so gain the provider rights it is denied.
Status GuardVerifiedAccount(store::Tx& tx, const Principal& actor, const std::string& target_email) {
  if (actor.CanEditProviders()) return Status::Ok();
  QUARRY_ASSIGN_OR_RETURN(bool verified,
                          domain::IsDomainVerified(tx, actor.org_id, domain::EmailDomain(target_email)));
  if (!verified) return Status::Ok();
  return PermissionDeniedError("accounts of the verified domain " + domain::EmailDomain(target_email) +
                               " may only be created or changed by an admin whose own e-mail domain is verified; "
                               "ask such an admin");
}

std::string SessionCookieHeader(const ApiRequest& request, const std::string& value, int64_t max_age_seconds) {
  std::string cookie = "quarry_session=" + value + "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" +
                       std::to_string(max_age_seconds);
  // Behind a TLS-terminating proxy the cookie must not travel in clear.
  const std::string* proto = request.Header("X-Forwarded-Proto");
  if (proto != nullptr && EqualsIgnoreAsciiCase(*proto, "https")) cookie += "; Secure";
  return cookie;
}

json MeJson(const Principal& who, const domain::User& user, const domain::Organization& org) {
  return {{"user", user.ToJson()},
          {"organization", org.ToJson()},
          {"permissions",
           {{"is_admin", who.IsAdmin()},
            {"can_build", who.CanBuild()},
            {"can_edit_providers", who.CanEditProviders()},
            {"email_domain_verified", who.email_domain_verified}}},
          {"auth", {{"kind", who.auth_kind}, {"credential_id", who.credential_id}}}};
}

// ---------------------------------------------------------------------------
// Login, logout, me
// ---------------------------------------------------------------------------

void RegisterSessionRoutes(Router& router, ServerContext& context) {
  router.Add("POST", "/api/v1/auth/login", Access::kPublic, [&context](ApiRequest& request) -> Result<ApiResponse> {
    QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
    QUARRY_RETURN_IF_ERROR(CheckMembers(body, {"email", "password"}));
    QUARRY_ASSIGN_OR_RETURN(std::string email, RequiredString(body, "email"));
    QUARRY_ASSIGN_OR_RETURN(std::string password_text, RequiredString(body, "password"));
    const store::SecretString password(std::move(password_text));
    QUARRY_ASSIGN_OR_RETURN(domain::NewSession session, InWrite(context, [&](store::Tx& tx) {
                              return domain::Login(tx, *context.clock, email, password);
                            }));
    ApiResponse response = ApiResponse::Json(
        {{"user", session.user.ToJson()},
         {"session", {{"id", session.session.id}, {"expires_at", session.session.expires_at}}}});
    const int64_t max_age = std::chrono::duration_cast<std::chrono::seconds>(domain::kSessionLifetime).count();
    response.headers.emplace_back("Set-Cookie", SessionCookieHeader(request, session.secret.reveal(), max_age));
    response.headers.emplace_back("Cache-Control", "no-store");
    return response;
  });

  router.Add("POST", "/api/v1/auth/logout", Access::kAuthenticated,
             [&context](ApiRequest& request) -> Result<ApiResponse> {
               if (request.who().auth_kind == "session") {
                 const std::string session_id = request.who().credential_id;
                 QUARRY_RETURN_IF_ERROR(
                     context.db->Write([&](store::Tx& tx) { return domain::DeleteSession(tx, session_id); }));
               }
               ApiResponse response = ApiResponse::NoContent();
               response.headers.emplace_back("Set-Cookie", SessionCookieHeader(request, "", 0));
               return response;
             });

  router.Add("GET", "/api/v1/me", Access::kAuthenticated, [&context](ApiRequest& request) -> Result<ApiResponse> {
    const Principal& who = request.who();
    return InRead(context, [&](store::Tx& tx) -> Result<ApiResponse> {
      QUARRY_ASSIGN_OR_RETURN(domain::User user, domain::GetUser(tx, who.org_id, who.user_id));
      QUARRY_ASSIGN_OR_RETURN(domain::Organization org, domain::GetOrganization(tx, who.org_id));
      return ApiResponse::Json(MeJson(who, user, org));
    });
  });

  router.Add("PUT", "/api/v1/me/password", Access::kAuthenticated,
             [&context](ApiRequest& request) -> Result<ApiResponse> {
               QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
               QUARRY_RETURN_IF_ERROR(CheckMembers(body, {"current_password", "new_password"}));
               QUARRY_ASSIGN_OR_RETURN(std::optional<std::string> current, OptString(body, "current_password"));
               QUARRY_ASSIGN_OR_RETURN(std::string next, RequiredString(body, "new_password"));
               const store::SecretString current_secret(current.value_or(""));
               const store::SecretString next_secret(std::move(next));
               const Principal& who = request.who();
               const std::string keep = who.auth_kind == "session" ? who.credential_id : "";
               QUARRY_RETURN_IF_ERROR(InWrite(context, [&](store::Tx& tx) -> Result<bool> {
                 QUARRY_ASSIGN_OR_RETURN(domain::User user, domain::GetUser(tx, who.org_id, who.user_id));
                 if (user.has_password) {
                   QUARRY_ASSIGN_OR_RETURN(bool matches, domain::CheckUserPassword(tx, who.user_id, current_secret));
                   if (!matches) {
                     return PermissionDeniedError(
                         "current_password is wrong; send your current password to set a new one (or ask an admin "
                         "to reset it)");
                   }
                 }
                 QUARRY_RETURN_IF_ERROR(
                     domain::SetPassword(tx, *context.clock, who.org_id, who.user_id, next_secret, keep));
                 QUARRY_RETURN_IF_ERROR(
                     Audit(tx, context, request, "user.password_change", "user", who.user_id, nullptr, nullptr));
                 return true;
               }).status());
               return ApiResponse::NoContent();
             });
}

// ---------------------------------------------------------------------------
// Organization
// ---------------------------------------------------------------------------

void RegisterOrganizationRoutes(Router& router, ServerContext& context) {
  router.Add("GET", "/api/v1/organization", Access::kAuthenticated,
             [&context](ApiRequest& request) -> Result<ApiResponse> {
               QUARRY_ASSIGN_OR_RETURN(domain::Organization org, InRead(context, [&](store::Tx& tx) {
                                         return domain::GetOrganization(tx, request.who().org_id);
                                       }));
               return ApiResponse::Entity(org.ToJson(), org.version);
             });

  router.Add("PATCH", "/api/v1/organization", Access::kAdmin, [&context](ApiRequest& request) -> Result<ApiResponse> {
    QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
    QUARRY_RETURN_IF_ERROR(CheckMembers(body, {"name", "settings"}));
    domain::OrganizationUpdate update;
    QUARRY_ASSIGN_OR_RETURN(update.name, OptString(body, "name"));
    if (body.contains("settings")) {
      const json& settings = body["settings"];
      if (!settings.is_object()) return InvalidArgumentError("settings must be an object");
      QUARRY_RETURN_IF_ERROR(CheckMembers(settings, {"provider_key_rotation_days"}));
      if (settings.contains("provider_key_rotation_days")) {
        const json& days = settings["provider_key_rotation_days"];
        if (!days.is_number_integer()) {
          return InvalidArgumentError("settings.provider_key_rotation_days must be a whole number of days");
        }
        const int64_t value = days.get<int64_t>();
        update.provider_key_rotation_days = static_cast<int>(std::clamp<int64_t>(value, -1, 100000));
      }
    }
    QUARRY_ASSIGN_OR_RETURN(domain::Organization org, InWrite(context, [&](store::Tx& tx) -> Result<domain::Organization> {
      QUARRY_ASSIGN_OR_RETURN(domain::Organization before, domain::GetOrganization(tx, request.who().org_id));
      QUARRY_RETURN_IF_ERROR(CheckIfMatch(request, before.version));
      QUARRY_ASSIGN_OR_RETURN(domain::Organization after, domain::UpdateOrganization(tx, *context.clock, before.id,
                                                                                     update, before.version));
      QUARRY_RETURN_IF_ERROR(
          Audit(tx, context, request, "organization.update", "organization", after.id, before.ToJson(), after.ToJson()));
      return after;
    }));
    return ApiResponse::Entity(org.ToJson(), org.version);
  });
}

// ---------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------

void RegisterUserRoutes(Router& router, ServerContext& context) {
  router.Add("GET", "/api/v1/users", Access::kAuthenticated, [&context](ApiRequest& request) -> Result<ApiResponse> {
    QUARRY_ASSIGN_OR_RETURN(domain::PageRequest page, PageFrom(request));
    QUARRY_ASSIGN_OR_RETURN(domain::Page<domain::User> users, InRead(context, [&](store::Tx& tx) {
                              return domain::ListUsers(tx, request.who().org_id, page);
                            }));
    json items = json::array();
    for (const domain::User& user : users.items) items.push_back(user.ToJson());
    return ApiResponse::Json(PageJson(std::move(items), users.next_cursor));
  });

  router.Add("GET", "/api/v1/users/{user_id}", Access::kAuthenticated,
             [&context](ApiRequest& request) -> Result<ApiResponse> {
               QUARRY_ASSIGN_OR_RETURN(domain::User user, InRead(context, [&](store::Tx& tx) {
                                         return domain::GetUser(tx, request.who().org_id,
                                                                request.path_params["user_id"]);
                                       }));
               return ApiResponse::Entity(user.ToJson(), user.version);
             });

  router.Add("POST", "/api/v1/users", Access::kAdmin, [&context](ApiRequest& request) -> Result<ApiResponse> {
    QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
    QUARRY_RETURN_IF_ERROR(CheckMembers(body, {"email", "display_name", "role", "password"}));
    domain::NewUser user;
    user.org_id = request.who().org_id;
    QUARRY_ASSIGN_OR_RETURN(user.email, RequiredString(body, "email"));
    QUARRY_ASSIGN_OR_RETURN(std::optional<std::string> display_name, OptString(body, "display_name"));
    user.display_name = display_name.value_or("");
    QUARRY_ASSIGN_OR_RETURN(std::optional<domain::Role> role, OptRole(body));
    user.role = role.value_or(domain::Role::kMember);
    QUARRY_ASSIGN_OR_RETURN(std::optional<std::string> password, OptString(body, "password"));
    if (password) user.password = store::SecretString(std::move(*password));
    QUARRY_ASSIGN_OR_RETURN(domain::User created, InWrite(context, [&](store::Tx& tx) -> Result<domain::User> {
      QUARRY_ASSIGN_OR_RETURN(std::string email, domain::NormalizeEmail(user.email));
      QUARRY_RETURN_IF_ERROR(GuardVerifiedAccount(tx, request.who(), email));
      QUARRY_ASSIGN_OR_RETURN(domain::User made, domain::CreateUser(tx, *context.clock, user));
      QUARRY_RETURN_IF_ERROR(Audit(tx, context, request, "user.create", "user", made.id, nullptr, made.ToJson()));
      return made;
    }));
    return ApiResponse::Created(created.ToJson(), "/api/v1/users/" + created.id, created.version);
  });

  router.Add("PATCH", "/api/v1/users/{user_id}", Access::kAdmin,
             [&context](ApiRequest& request) -> Result<ApiResponse> {
               QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
               QUARRY_RETURN_IF_ERROR(CheckMembers(body, {"display_name", "role", "disabled"}));
               domain::UserUpdate update;
               QUARRY_ASSIGN_OR_RETURN(update.display_name, OptString(body, "display_name"));
               QUARRY_ASSIGN_OR_RETURN(update.role, OptRole(body));
               QUARRY_ASSIGN_OR_RETURN(update.disabled, OptBool(body, "disabled"));
               const std::string user_id = request.path_params["user_id"];
               QUARRY_ASSIGN_OR_RETURN(domain::User user, InWrite(context, [&](store::Tx& tx) -> Result<domain::User> {
                 const std::string& org_id = request.who().org_id;
                 QUARRY_ASSIGN_OR_RETURN(domain::User before, domain::GetUser(tx, org_id, user_id));
                 QUARRY_RETURN_IF_ERROR(CheckIfMatch(request, before.version));
                 QUARRY_RETURN_IF_ERROR(GuardVerifiedAccount(tx, request.who(), before.email));
                 QUARRY_ASSIGN_OR_RETURN(domain::User after, domain::UpdateUser(tx, *context.clock, org_id, user_id,
                                                                                update, before.version));
                 const std::string action = before.role != after.role ? "user.role_change" : "user.update";
                 QUARRY_RETURN_IF_ERROR(
                     Audit(tx, context, request, action, "user", user_id, before.ToJson(), after.ToJson()));
                 return after;
               }));
               return ApiResponse::Entity(user.ToJson(), user.version);
             });

  router.Add("PUT", "/api/v1/users/{user_id}/password", Access::kAdmin,
             [&context](ApiRequest& request) -> Result<ApiResponse> {
               QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
               QUARRY_RETURN_IF_ERROR(CheckMembers(body, {"password"}));
               QUARRY_ASSIGN_OR_RETURN(std::string text, RequiredString(body, "password"));
               const store::SecretString password(std::move(text));
               const std::string user_id = request.path_params["user_id"];
               QUARRY_RETURN_IF_ERROR(InWrite(context, [&](store::Tx& tx) -> Result<bool> {
                 QUARRY_ASSIGN_OR_RETURN(domain::User user, domain::GetUser(tx, request.who().org_id, user_id));
                 QUARRY_RETURN_IF_ERROR(GuardVerifiedAccount(tx, request.who(), user.email));
                 QUARRY_RETURN_IF_ERROR(domain::SetPassword(tx, *context.clock, user.org_id, user_id, password));
                 QUARRY_RETURN_IF_ERROR(Audit(tx, context, request, "user.password_set", "user", user_id, nullptr, nullptr));
                 return true;
               }).status());
               return ApiResponse::NoContent();
             });

  router.Add("DELETE", "/api/v1/users/{user_id}", Access::kAdmin,
             [&context](ApiRequest& request) -> Result<ApiResponse> {
               const std::string user_id = request.path_params["user_id"];
               QUARRY_RETURN_IF_ERROR(InWrite(context, [&](store::Tx& tx) -> Result<bool> {
                 QUARRY_ASSIGN_OR_RETURN(domain::User user, domain::GetUser(tx, request.who().org_id, user_id));
                 QUARRY_RETURN_IF_ERROR(CheckIfMatch(request, user.version));
                 QUARRY_RETURN_IF_ERROR(GuardVerifiedAccount(tx, request.who(), user.email));
                 QUARRY_RETURN_IF_ERROR(domain::DeleteUser(tx, user.org_id, user_id));
                 QUARRY_RETURN_IF_ERROR(Audit(tx, context, request, "user.delete", "user", user_id, user.ToJson(), nullptr));
                 return true;
               }).status());
               return ApiResponse::NoContent();
             });
}

// ---------------------------------------------------------------------------
// API tokens
// ---------------------------------------------------------------------------

// A token may be seen and revoked by its owner and by admins.
Status CheckTokenAccess(const Principal& who, const domain::ApiToken& token) {
  if (who.IsAdmin() || token.user_id == who.user_id) return Status::Ok();
  // Not found rather than forbidden: others' token ids are not disclosed.
  return NotFoundError("API token " + token.id + " not found; list your tokens with GET /api/v1/tokens");
}

void RegisterTokenRoutes(Router& router, ServerContext& context) {
  router.Add("GET", "/api/v1/tokens", Access::kAuthenticated, [&context](ApiRequest& request) -> Result<ApiResponse> {
    QUARRY_ASSIGN_OR_RETURN(domain::PageRequest page, PageFrom(request));
    const Principal& who = request.who();
    // Admins see every token (or one user's with ?user_id=); others their own.
    std::string user_id = request.QueryParam("user_id");
    if (!who.IsAdmin()) {
      if (!user_id.empty() && user_id != who.user_id) {
        return PermissionDeniedError("only admins may list other users' tokens; leave out user_id to list yours");
      }
      user_id = who.user_id;
    }
    QUARRY_ASSIGN_OR_RETURN(domain::Page<domain::ApiToken> tokens, InRead(context, [&](store::Tx& tx) {
                              return domain::ListApiTokens(tx, who.org_id, user_id, page);
                            }));
    json items = json::array();
    for (const domain::ApiToken& token : tokens.items) items.push_back(token.ToJson());
    return ApiResponse::Json(PageJson(std::move(items), tokens.next_cursor));
  });

  router.Add("POST", "/api/v1/tokens", Access::kAuthenticated, [&context](ApiRequest& request) -> Result<ApiResponse> {
    QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
    QUARRY_RETURN_IF_ERROR(CheckMembers(body, {"name", "expires_at", "user_id"}));
    QUARRY_ASSIGN_OR_RETURN(std::string name, RequiredString(body, "name"));
    QUARRY_ASSIGN_OR_RETURN(std::optional<std::string> expires_text, OptString(body, "expires_at"));
    QUARRY_ASSIGN_OR_RETURN(std::optional<std::string> for_user, OptString(body, "user_id"));
    std::optional<WallTime> expires_at;
    if (expires_text) {
      WallTime parsed;
      if (!ParseIso8601Utc(*expires_text, &parsed)) {
        return InvalidArgumentError("expires_at must be an ISO 8601 UTC time like 2027-01-31T00:00:00Z");
      }
      expires_at = parsed;
    }
    const Principal& who = request.who();
    const std::string user_id = for_user.value_or(who.user_id);
    if (user_id != who.user_id && !who.IsAdmin()) {
      return PermissionDeniedError("only admins may create tokens for other users; leave out user_id to create "
                                   "one for yourself");
    }
    QUARRY_ASSIGN_OR_RETURN(domain::NewApiToken created, InWrite(context, [&](store::Tx& tx) -> Result<domain::NewApiToken> {
      if (user_id != who.user_id) {
        QUARRY_ASSIGN_OR_RETURN(domain::User owner, domain::GetUser(tx, who.org_id, user_id));
        QUARRY_RETURN_IF_ERROR(GuardVerifiedAccount(tx, who, owner.email));
      }
      QUARRY_ASSIGN_OR_RETURN(domain::NewApiToken made,
                              domain::CreateApiToken(tx, *context.clock, who.org_id, user_id, name, expires_at));
      QUARRY_RETURN_IF_ERROR(Audit(tx, context, request, "token.create", "token", made.token.id, nullptr,
                                   made.token.ToJson()));
      return made;
    }));
    json out = created.token.ToJson();
    // The only time the token is shown: it is stored as a hash.
    out["token"] = created.secret.reveal();
    ApiResponse response = ApiResponse::Created(std::move(out), "/api/v1/tokens/" + created.token.id, 1);
    response.headers.emplace_back("Cache-Control", "no-store");
    return response;
  });

  router.Add("GET", "/api/v1/tokens/{token_id}", Access::kAuthenticated,
             [&context](ApiRequest& request) -> Result<ApiResponse> {
               QUARRY_ASSIGN_OR_RETURN(domain::ApiToken token, InRead(context, [&](store::Tx& tx) {
                                         return domain::GetApiToken(tx, request.who().org_id,
                                                                    request.path_params["token_id"]);
                                       }));
               QUARRY_RETURN_IF_ERROR(CheckTokenAccess(request.who(), token));
               return ApiResponse::Json(token.ToJson());
             });

  router.Add("DELETE", "/api/v1/tokens/{token_id}", Access::kAuthenticated,
             [&context](ApiRequest& request) -> Result<ApiResponse> {
               const std::string token_id = request.path_params["token_id"];
               QUARRY_RETURN_IF_ERROR(InWrite(context, [&](store::Tx& tx) -> Result<bool> {
                 QUARRY_ASSIGN_OR_RETURN(domain::ApiToken before, domain::GetApiToken(tx, request.who().org_id, token_id));
                 QUARRY_RETURN_IF_ERROR(CheckTokenAccess(request.who(), before));
                 if (!before.revoked_at.empty()) return true;
                 QUARRY_ASSIGN_OR_RETURN(domain::ApiToken after,
                                         domain::RevokeApiToken(tx, *context.clock, before.org_id, token_id));
                 QUARRY_RETURN_IF_ERROR(
                     Audit(tx, context, request, "token.revoke", "token", token_id, before.ToJson(), after.ToJson()));
                 return true;
               }).status());
               return ApiResponse::NoContent();
             });
}

// ---------------------------------------------------------------------------
// Verified domains
// ---------------------------------------------------------------------------

void RegisterDomainRoutes(Router& router, ServerContext& context) {
  router.Add("GET", "/api/v1/verified-domains", Access::kAdmin, [&context](ApiRequest& request) -> Result<ApiResponse> {
    QUARRY_ASSIGN_OR_RETURN(std::vector<domain::VerifiedDomain> domains, InRead(context, [&](store::Tx& tx) {
                              return domain::ListVerifiedDomains(tx, request.who().org_id);
                            }));
    json items = json::array();
    for (const domain::VerifiedDomain& domain : domains) items.push_back(domain.ToJson());
    return ApiResponse::Json(PageJson(std::move(items), ""));
  });

  // Only admins of an already verified domain may change the list: an admin
  // of an unverified domain adding their own would grant themselves the
  // provider rights the list exists to restrict.
  router.Add("POST", "/api/v1/verified-domains", Access::kProviderEditor,
             [&context](ApiRequest& request) -> Result<ApiResponse> {
               QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
               QUARRY_RETURN_IF_ERROR(CheckMembers(body, {"domain"}));
               QUARRY_ASSIGN_OR_RETURN(std::string name, RequiredString(body, "domain"));
               QUARRY_ASSIGN_OR_RETURN(domain::VerifiedDomain added, InWrite(context, [&](store::Tx& tx) -> Result<domain::VerifiedDomain> {
                 QUARRY_ASSIGN_OR_RETURN(domain::VerifiedDomain made,
                                         domain::AddVerifiedDomain(tx, *context.clock, request.who().org_id, name,
                                                                   request.who().user_id));
                 QUARRY_RETURN_IF_ERROR(Audit(tx, context, request, "verified_domain.create", "verified_domain",
                                              made.id, nullptr, made.ToJson()));
                 return made;
               }));
               return ApiResponse::Created(added.ToJson(), "/api/v1/verified-domains/" + added.id, 1);
             });

  router.Add("DELETE", "/api/v1/verified-domains/{domain_id}", Access::kProviderEditor,
             [&context](ApiRequest& request) -> Result<ApiResponse> {
               const std::string domain_id = request.path_params["domain_id"];
               QUARRY_RETURN_IF_ERROR(InWrite(context, [&](store::Tx& tx) -> Result<bool> {
                 const std::string& org_id = request.who().org_id;
                 QUARRY_ASSIGN_OR_RETURN(domain::VerifiedDomain before, domain::GetVerifiedDomain(tx, org_id, domain_id));
                 if (before.domain == domain::EmailDomain(request.who().email)) {
                   return FailedPreconditionError("the domain " + before.domain +
                                                  " is your own e-mail domain; removing it would take away your own "
                                                  "rights to change it back. Ask another verified admin to remove it");
                 }
                 QUARRY_RETURN_IF_ERROR(domain::RemoveVerifiedDomain(tx, org_id, domain_id));
                 QUARRY_RETURN_IF_ERROR(Audit(tx, context, request, "verified_domain.delete", "verified_domain",
                                              domain_id, before.ToJson(), nullptr));
                 return true;
               }).status());
               return ApiResponse::NoContent();
             });
}

// ---------------------------------------------------------------------------
// Audit log
// ---------------------------------------------------------------------------

void RegisterAuditRoutes(Router& router, ServerContext& context) {
  router.Add("GET", "/api/v1/audit", Access::kAdmin, [&context](ApiRequest& request) -> Result<ApiResponse> {
    QUARRY_ASSIGN_OR_RETURN(domain::PageRequest page, PageFrom(request));
    domain::AuditFilter filter;
    filter.target_type = request.QueryParam("target_type");
    filter.target_id = request.QueryParam("target_id");
    filter.action = request.QueryParam("action");
    QUARRY_ASSIGN_OR_RETURN(domain::Page<domain::AuditEntry> entries, InRead(context, [&](store::Tx& tx) {
                              return domain::ListAudit(tx, request.who().org_id, filter, page);
                            }));
    json items = json::array();
    for (const domain::AuditEntry& entry : entries.items) items.push_back(entry.ToJson());
    return ApiResponse::Json(PageJson(std::move(items), entries.next_cursor));
  });
}

}  // namespace

void RegisterAccountRoutes(Router& router, ServerContext& context) {
  RegisterSessionRoutes(router, context);
  RegisterOrganizationRoutes(router, context);
  RegisterUserRoutes(router, context);
  RegisterTokenRoutes(router, context);
  RegisterDomainRoutes(router, context);
  RegisterAuditRoutes(router, context);
}

}  // namespace quarry::api
