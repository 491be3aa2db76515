#pragma once
// The audit log: every change to configuration (users, tokens, domains,
// providers, services, apps, objects, fields, agent connections, settings)
// is recorded in the same transaction as the change: who, what, when, the
// state before and after.
//
// No secrets: callers pass the public JSON form of an entity (which never
// holds a secret), and Record() also replaces the value of any key whose name
// suggests a secret ("secret", "password", "token", "session_token",
// "api_key", "private") with "[redacted]", at any depth, as a second line of
// defence.
//
// Table audit_log (migration 100-199, owned by the accounts module).
// Thread safety: stateless functions over a Tx.

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/status.h"
#include "domain/paging.h"
#include "domain/principal.h"
#include "store/database.h"

namespace quarry::domain {

struct AuditEntry {
  std::string id{};           // "aud_..." (set by Record)
  std::string org_id{};
  std::string actor_user_id{};  // "" for the system (first start, migrations)
  std::string actor_email{};
  std::string action{};       // "<entity>.<verb>": "provider.create", "service.update", "user.role_change"
  std::string target_type{};  // "provider"
  std::string target_id{};
  nlohmann::json before = nullptr;  // null for creates
  nlohmann::json after = nullptr;   // null for deletes
  std::string request_id{};
  std::string at{};           // ISO 8601 UTC (set by Record)

  nlohmann::json ToJson() const;
};

// Records an entry for `actor` (may be nullptr for the system).
Status RecordAudit(store::Tx& tx, const Clock& clock, const Principal* actor, AuditEntry entry);

struct AuditFilter {
  std::string target_type{};  // "" = any
  std::string target_id{};
  std::string action{};
};
// Newest first.
Result<Page<AuditEntry>> ListAudit(store::Tx& tx, const std::string& org_id,
                                   const AuditFilter& filter, const PageRequest& page);

}  // namespace quarry::domain
