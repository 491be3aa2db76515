#include "domain/conversations.h"

#include <charconv>

#include "common/crypto.h"
#include "common/ids.h"
#include "domain/providers.h"

namespace quarry::domain {
namespace {

using nlohmann::json;

constexpr std::string_view kConversationColumns =
    "id, org_id, agent_connection_id, user_id, session_id, title, status, message_count, busy_since, created_at, "
    "updated_at, ended_at";

constexpr std::string_view kInsertConversation =
    "INSERT INTO conversations (id, org_id, agent_connection_id, user_id, session_id, title, status, message_count, "
    "busy_since, created_at, updated_at, ended_at) VALUES ($1, $2, $3, $4, $5, $6, 'active', 0, NULL, $7, $7, NULL)";

// Claims the conversation for one turn: only when active and not busy (or
// busy for so long that the turn's server must have died).
constexpr std::string_view kClaimTurn =
    "UPDATE conversations SET busy_since = $3, message_count = message_count + 1, updated_at = $3 "
    "WHERE org_id = $1 AND id = $2 AND status = 'active' AND (busy_since IS NULL OR busy_since < $4) "
    "RETURNING message_count";

constexpr std::string_view kReleaseTurn =
    "UPDATE conversations SET busy_since = NULL, message_count = message_count + 1, updated_at = $3 "
    "WHERE org_id = $1 AND id = $2 RETURNING message_count";

constexpr std::string_view kEndConversation =
    "UPDATE conversations SET status = 'ended', ended_at = $3, updated_at = $3, busy_since = NULL "
    "WHERE org_id = $1 AND id = $2 AND status = 'active'";

constexpr std::string_view kInsertMessage =
    "INSERT INTO conversation_messages (id, conversation_id, org_id, seq, role, text, citations, return_control, "
    "trace_count, latency_ms, request_id, bedrock_request_id, error, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, "
    "$8, $9, $10, $11, $12, $13, $14)";

constexpr std::string_view kMessageColumns =
    "id, conversation_id, seq, role, text, citations, return_control, trace_count, latency_ms, request_id, "
    "bedrock_request_id, error, created_at";

json ParseOr(const std::optional<std::string>& text, json fallback) {
  if (!text || text->empty()) return fallback;
  json j = json::parse(*text, nullptr, false);
  return j.is_discarded() ? fallback : j;
}

std::string StaleBefore(const Clock& clock) { return FormatTimestamp(clock.Now() - kStaleTurnAfter); }

Conversation ConversationFromRow(const store::Row& r, const std::string& stale_before) {
  Conversation c;
  c.id = r.Text(0);
  c.org_id = r.Text(1);
  c.agent_connection_id = r.Text(2);
  c.user_id = r.Text(3);
  c.session_id = r.Text(4);
  c.title = r.Text(5);
  c.status = r.Text(6);
  c.message_count = r.Int(7);
  std::optional<std::string> busy = r.OptText(8);
  c.busy = busy.has_value() && *busy >= stale_before;
  c.created_at = r.Text(9);
  c.updated_at = r.Text(10);
  c.ended_at = r.OptText(11).value_or("");
  return c;
}

ConversationMessage MessageFromRow(const store::Row& r) {
  ConversationMessage m;
  m.id = r.Text(0);
  m.conversation_id = r.Text(1);
  m.seq = r.Int(2);
  m.role = r.Text(3);
  m.text = r.Text(4);
  m.citations = ParseOr(r.OptText(5), json::array());
  m.return_control = ParseOr(r.OptText(6), nullptr);
  m.trace_count = r.Int(7);
  m.latency_ms = r.OptInt(8);
  m.request_id = r.Text(9);
  m.bedrock_request_id = r.Text(10);
  m.error = ParseOr(r.OptText(11), nullptr);
  m.created_at = r.Text(12);
  return m;
}

Status InsertMessage(store::Tx& tx, const std::string& org_id, const ConversationMessage& m) {
  return tx
      .Exec(kInsertMessage,
            {m.id, m.conversation_id, org_id, m.seq, m.role, m.text, m.citations.dump(),
             m.return_control.is_null() ? store::Null() : store::Value(m.return_control.dump()), m.trace_count,
             m.latency_ms ? store::Value(*m.latency_ms) : store::Null(), m.request_id, m.bedrock_request_id,
             m.error.is_null() ? store::Null() : store::Value(m.error.dump()), m.created_at})
      .status();
}

}  // namespace

json ConversationToJson(const Conversation& c) {
  return {{"id", c.id},
          {"agent_id", c.agent_connection_id},
          {"user_id", c.user_id},
          {"session_id", c.session_id},
          {"title", c.title},
          {"status", c.status},
          {"message_count", c.message_count},
          {"busy", c.busy},
          {"created_at", c.created_at},
          {"updated_at", c.updated_at},
          {"ended_at", c.ended_at.empty() ? json(nullptr) : json(c.ended_at)}};
}

json MessageToJson(const ConversationMessage& m) {
  return {{"id", m.id},
          {"seq", m.seq},
          {"role", m.role},
          {"text", m.text},
          {"citations", m.citations},
          {"return_control", m.return_control},
          {"trace_count", m.trace_count},
          {"latency_ms", m.latency_ms ? json(*m.latency_ms) : json(nullptr)},
          {"request_id", m.request_id},
          {"bedrock_request_id", m.bedrock_request_id},
          {"error", m.error},
          {"created_at", m.created_at}};
}

Result<Conversation> CreateConversation(store::Tx& tx, const Clock& clock, const Principal& actor,
                                        const std::string& agent_connection_id, const std::string& title) {
  Conversation c;
  c.id = NewId("cnv");
  c.org_id = actor.org_id;
  c.agent_connection_id = agent_connection_id;
  c.user_id = actor.user_id;
  // Bedrock session ids are [0-9a-zA-Z._:-]{2,100}: no underscore, so not
  // the conversation id itself.
  c.session_id = "quarry-" + RandomUuid();
  c.title = title;
  c.created_at = c.updated_at = NowTimestamp(clock);
  QUARRY_RETURN_IF_ERROR(
      tx.Exec(kInsertConversation, {c.id, c.org_id, c.agent_connection_id, c.user_id, c.session_id, c.title,
                                    c.created_at})
          .status());
  return c;
}

Result<Conversation> GetConversation(store::Tx& tx, const Clock& clock, const std::string& org_id,
                                     const std::string& conversation_id) {
  if (!IsWellFormedId(conversation_id, "cnv")) {
    return NotFoundError("conversation '" + conversation_id.substr(0, 60) +
                         "' not found; conversation ids look like cnv_...");
  }
  std::string sql =
      "SELECT " + std::string(kConversationColumns) + " FROM conversations WHERE org_id = $1 AND id = $2";
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, {org_id, conversation_id}));
  if (rows.empty()) {
    return NotFoundError("conversation " + conversation_id +
                         " not found; start one with POST /api/v1/agents/{agent_id}/conversations");
  }
  return ConversationFromRow(rows.rows[0], StaleBefore(clock));
}

Result<Page<Conversation>> ListConversations(store::Tx& tx, const Clock& clock, const std::string& org_id,
                                             const std::string& agent_connection_id, const std::string& user_id,
                                             const PageRequest& page) {
  std::string sql = "SELECT " + std::string(kConversationColumns) +
                    " FROM conversations WHERE org_id = $1 AND agent_connection_id = $2";
  store::Params params = {org_id, agent_connection_id};
  if (!user_id.empty()) {
    params.push_back(user_id);
    sql += " AND user_id = $" + std::to_string(params.size());
  }
  if (!page.cursor.empty()) {
    std::string before_at, before_id;
    QUARRY_RETURN_IF_ERROR(DecodeCursor(page.cursor, &before_at, &before_id));
    params.push_back(before_at);
    std::string a = "$" + std::to_string(params.size());
    params.push_back(before_id);
    std::string b = "$" + std::to_string(params.size());
    sql += " AND (created_at < " + a + " OR (created_at = " + a + " AND id < " + b + "))";
  }
  sql += " ORDER BY created_at DESC, id DESC LIMIT " + std::to_string(page.limit + 1);
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, params));
  Page<Conversation> out;
  const std::string stale = StaleBefore(clock);
  for (const store::Row& r : rows.rows) {
    if (static_cast<int>(out.items.size()) == page.limit) {
      out.next_cursor = EncodeCursor(out.items.back().created_at, out.items.back().id);
      break;
    }
    out.items.push_back(ConversationFromRow(r, stale));
  }
  return out;
}

Result<ConversationMessage> BeginTurn(store::Tx& tx, const Clock& clock, const Conversation& conversation,
                                      const std::string& text, const json& return_control,
                                      const std::string& request_id) {
  const std::string now = NowTimestamp(clock);
  QUARRY_ASSIGN_OR_RETURN(store::Rows claimed, tx.Query(kClaimTurn, {conversation.org_id, conversation.id, now,
                                                                     StaleBefore(clock)}));
  if (claimed.empty()) {
    QUARRY_ASSIGN_OR_RETURN(Conversation current, GetConversation(tx, clock, conversation.org_id, conversation.id));
    if (current.status != "active") {
      return FailedPreconditionError("conversation " + conversation.id +
                                     " has ended; start a new one with POST /api/v1/agents/" +
                                     conversation.agent_connection_id + "/conversations");
    }
    return FailedPreconditionError("conversation " + conversation.id +
                                   " is still answering the previous message; wait for its done event, then send "
                                   "the next one");
  }
  ConversationMessage m;
  m.id = NewId("msg");
  m.conversation_id = conversation.id;
  m.seq = claimed.rows[0].Int(0);
  m.role = "user";
  m.text = text;
  m.return_control = return_control;
  m.request_id = request_id;
  m.created_at = now;
  QUARRY_RETURN_IF_ERROR(InsertMessage(tx, conversation.org_id, m));
  return m;
}

Result<ConversationMessage> FinishTurn(store::Tx& tx, const Clock& clock, const Conversation& conversation,
                                       ConversationMessage reply) {
  const std::string now = NowTimestamp(clock);
  QUARRY_ASSIGN_OR_RETURN(store::Rows released, tx.Query(kReleaseTurn, {conversation.org_id, conversation.id, now}));
  if (released.empty()) return NotFoundError("conversation " + conversation.id + " was deleted during the turn");
  reply.id = NewId("msg");
  reply.conversation_id = conversation.id;
  reply.seq = released.rows[0].Int(0);
  reply.role = "agent";
  reply.created_at = now;
  QUARRY_RETURN_IF_ERROR(InsertMessage(tx, conversation.org_id, reply));
  return reply;
}

Result<Conversation> EndConversation(store::Tx& tx, const Clock& clock, const Conversation& conversation) {
  QUARRY_RETURN_IF_ERROR(
      tx.Exec(kEndConversation, {conversation.org_id, conversation.id, NowTimestamp(clock)}).status());
  return GetConversation(tx, clock, conversation.org_id, conversation.id);
}

Result<Page<ConversationMessage>> ListMessages(store::Tx& tx, const std::string& org_id,
                                               const std::string& conversation_id, const PageRequest& page) {
  std::string sql = "SELECT " + std::string(kMessageColumns) +
                    " FROM conversation_messages WHERE org_id = $1 AND conversation_id = $2";
  store::Params params = {org_id, conversation_id};
  if (!page.cursor.empty()) {
    std::string after_seq, after_id;
    QUARRY_RETURN_IF_ERROR(DecodeCursor(page.cursor, &after_seq, &after_id));
    int64_t seq = 0;
    auto [end, ec] = std::from_chars(after_seq.data(), after_seq.data() + after_seq.size(), seq);
    if (ec != std::errc() || end != after_seq.data() + after_seq.size()) {
      return InvalidArgumentError("the cursor is not one this server issued; start again without a cursor");
    }
    params.push_back(seq);
    sql += " AND seq > $3";
  }
  sql += " ORDER BY seq LIMIT " + std::to_string(page.limit + 1);
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, params));
  Page<ConversationMessage> out;
  for (const store::Row& r : rows.rows) {
    if (static_cast<int>(out.items.size()) == page.limit) {
      out.next_cursor = EncodeCursor(std::to_string(out.items.back().seq), out.items.back().id);
      break;
    }
    out.items.push_back(MessageFromRow(r));
  }
  return out;
}

}  // namespace quarry::domain
