#pragma once
// Who is making a request: the authenticated user, their organization and
// role, as the API layer resolved it from a session cookie or an API token.
//
// Roles (seed: "only users allowed to edit AI Providers"):
//   member   reads apps and records, chats with connected agents, creates and
//            updates records;
//   builder  also creates and changes apps, objects, fields, agent
//            connections (automations in a later issue);
//   admin    also manages users, tokens, verified domains and settings, and
//            reads the audit log.
// Providers and AI Services may be created, changed or deleted only by an
// admin whose e-mail domain is on the organization's verified-domain list
// (CanEditProviders); the domain check is made when the principal is loaded,
// so removing a domain takes effect on the next request.

#include <string>
#include <string_view>

namespace quarry::domain {

enum class Role { kMember, kBuilder, kAdmin };
std::string_view RoleName(Role role);  // "member" | "builder" | "admin"
// Parses "member" | "builder" | "admin"; false for anything else.
bool ParseRole(std::string_view text, Role* role);

struct Principal {
  std::string user_id{};
  std::string org_id{};
  std::string email{};
  Role role = Role::kMember;
  bool email_domain_verified = false;  // the e-mail's domain is on the org's list
  std::string auth_kind{};             // "session" | "token"
  std::string credential_id{};         // session or token id (never the secret)

  bool IsAdmin() const { return role == Role::kAdmin; }
  bool CanBuild() const { return role == Role::kAdmin || role == Role::kBuilder; }
  bool CanEditProviders() const { return role == Role::kAdmin && email_domain_verified; }
};

}  // namespace quarry::domain
