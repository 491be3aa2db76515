#include "domain/audit.h"

#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <utility>

#include "common/ids.h"

namespace quarry::domain {
namespace {

constexpr std::string_view kInsertAudit =
    "INSERT INTO audit_log (id, org_id, actor_user_id, actor_email, action, target_type, target_id, before_json, "
    "after_json, request_id, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
constexpr std::string_view kAuditColumns =
    "id, org_id, actor_user_id, actor_email, action, target_type, target_id, before_json, after_json, request_id, "
    "at";

std::string AuditTimestamp(WallTime time) {
  const int64_t millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(millis / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buffer[96];
  std::snprintf(buffer, sizeof(buffer), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(millis % 1000));
  return buffer;
}

// Splits a member name into lower-case words at '_', '-' and camelCase
// boundaries: "secretAccessKey" -> secret, access, key.
std::vector<std::string> NameWords(std::string_view name) {
  std::vector<std::string> words;
  std::string current;
  for (size_t i = 0; i < name.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(name[i]);
    if (c == '_' || c == '-' || c == '.' || c == ' ') {
      if (!current.empty()) words.push_back(std::move(current));
      current.clear();
      continue;
    }
    if (std::isupper(c) && !current.empty() && !std::isupper(static_cast<unsigned char>(name[i - 1]))) {
      words.push_back(std::move(current));
      current.clear();
    }
    current += static_cast<char>(std::tolower(c));
  }
  if (!current.empty()) words.push_back(std::move(current));
  return words;
}

// A member whose name suggests a secret. Word-based, so "token" and
// "session_token" are caught while "max_tokens" (a setting) is not.
bool LooksSecret(std::string_view name) {
  const std::vector<std::string> words = NameWords(name);
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& word = words[i];
    if (word == "secret" || word == "secrets" || word == "password" || word == "passwd" || word == "token" ||
        word == "private" || word == "credential" || word == "passphrase" || word == "apikey") {
      return true;
    }
    if (word == "api" && i + 1 < words.size() && words[i + 1] == "key") return true;
  }
  return false;
}

nlohmann::json Redact(const nlohmann::json& value) {
  if (value.is_object()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [key, member] : value.items()) {
      if (LooksSecret(key) && !member.is_null()) {
        out[key] = "[redacted]";
      } else {
        out[key] = Redact(member);
      }
    }
    return out;
  }
  if (value.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& member : value) out.push_back(Redact(member));
    return out;
  }
  return value;
}

store::Value JsonColumn(const nlohmann::json& value) {
  if (value.is_null()) return store::Null();
  return value.dump();
}

nlohmann::json ParseJsonColumn(const store::Row& row, size_t i) {
  if (row.IsNull(i)) return nullptr;
  nlohmann::json parsed = nlohmann::json::parse(row.Text(i), nullptr, /*allow_exceptions=*/false);
  return parsed.is_discarded() ? nlohmann::json(nullptr) : parsed;
}

AuditEntry EntryFromRow(const store::Row& row) {
  AuditEntry entry;
  entry.id = row.Text(0);
  entry.org_id = row.Text(1);
  entry.actor_user_id = row.Text(2);
  entry.actor_email = row.Text(3);
  entry.action = row.Text(4);
  entry.target_type = row.Text(5);
  entry.target_id = row.Text(6);
  entry.before = ParseJsonColumn(row, 7);
  entry.after = ParseJsonColumn(row, 8);
  entry.request_id = row.Text(9);
  entry.at = row.Text(10);
  return entry;
}

}  // namespace

nlohmann::json AuditEntry::ToJson() const {
  return {{"id", id},
          {"actor", {{"user_id", actor_user_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(actor_user_id)},
                     {"email", actor_email.empty() ? nlohmann::json(nullptr) : nlohmann::json(actor_email)}}},
          {"action", action},
          {"target", {{"type", target_type}, {"id", target_id}}},
          {"before", before},
          {"after", after},
          {"request_id", request_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(request_id)},
          {"at", at}};
}

Status RecordAudit(store::Tx& tx, const Clock& clock, const Principal* actor, AuditEntry entry) {
  entry.id = NewId("aud");
  entry.at = AuditTimestamp(clock.Now());
  if (actor != nullptr) {
    entry.actor_user_id = actor->user_id;
    entry.actor_email = actor->email;
    if (entry.org_id.empty()) entry.org_id = actor->org_id;
  }
  if (entry.org_id.empty()) {
    return InternalError("audit entry for " + entry.action + " has no organization (a programming error)");
  }
  return tx
      .Exec(kInsertAudit, {entry.id, entry.org_id, entry.actor_user_id, entry.actor_email, entry.action,
                           entry.target_type, entry.target_id, JsonColumn(Redact(entry.before)),
                           JsonColumn(Redact(entry.after)), entry.request_id, entry.at})
      .status();
}

Result<Page<AuditEntry>> ListAudit(store::Tx& tx, const std::string& org_id, const AuditFilter& filter,
                                   const PageRequest& page) {
  std::string sql = "SELECT " + std::string(kAuditColumns) + " FROM audit_log WHERE org_id = $1";
  store::Params params = {org_id};
  auto add_equals = [&](std::string_view column, const std::string& value) {
    if (value.empty()) return;
    params.push_back(value);
    sql += " AND " + std::string(column) + " = $" + std::to_string(params.size());
  };
  add_equals("target_type", filter.target_type);
  add_equals("target_id", filter.target_id);
  add_equals("action", filter.action);
  if (!page.cursor.empty()) {
    std::string at, id;
    QUARRY_RETURN_IF_ERROR(DecodeCursor(page.cursor, &at, &id));
    params.push_back(at);
    const std::string a = "$" + std::to_string(params.size());
    params.push_back(id);
    const std::string b = "$" + std::to_string(params.size());
    sql += " AND (at < " + a + " OR (at = " + a + " AND id < " + b + "))";
  }
  sql += " ORDER BY at DESC, id DESC LIMIT " + std::to_string(page.limit + 1);
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, params));
  Page<AuditEntry> result;
  for (size_t i = 0; i < rows.size() && static_cast<int>(i) < page.limit; ++i) {
    result.items.push_back(EntryFromRow(rows.rows[i]));
  }
  if (static_cast<int>(rows.size()) > page.limit && !result.items.empty()) {
    result.next_cursor = EncodeCursor(result.items.back().at, result.items.back().id);
  }
  return result;
}

}  // namespace quarry::domain
