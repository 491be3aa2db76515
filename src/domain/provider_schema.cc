// Tables of the provider area (migrations 200-299): providers and their
// cached model catalogues, AI services, agent connections, conversations and
// their messages. Portable SQL (store/database.h): TEXT, BIGINT, DOUBLE
// PRECISION, JSON as TEXT, timestamps as ISO 8601 TEXT.
//
// Apps belong to another module: agent_connections.app_id is checked by the
// code (SELECT 1 FROM apps ...), not by a foreign key, so the two modules'
// migrations need no order between them.

#include "domain/schema.h"

namespace quarry::domain {
namespace {

constexpr char kCreateProviders[] = R"SQL(
CREATE TABLE providers (
  id TEXT PRIMARY KEY,
  org_id TEXT NOT NULL,
  name TEXT NOT NULL,
  name_key TEXT NOT NULL,
  region TEXT NOT NULL,
  credential_kind TEXT NOT NULL,
  config TEXT NOT NULL,
  secret_refs TEXT NOT NULL,
  access_key_hint TEXT NOT NULL DEFAULT '',
  credentials_set_at TEXT NOT NULL,
  status TEXT NOT NULL,
  last_error TEXT,
  last_test TEXT,
  last_tested_at TEXT,
  identity_arn TEXT NOT NULL DEFAULT '',
  version BIGINT NOT NULL,
  created_by TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (org_id, name_key)
);
CREATE INDEX IF NOT EXISTS providers_org_created ON providers (org_id, created_at, id);
CREATE TABLE provider_catalogues (
  provider_id TEXT PRIMARY KEY REFERENCES providers (id) ON DELETE CASCADE,
  org_id TEXT NOT NULL,
  region TEXT NOT NULL,
  catalogue TEXT NOT NULL,
  fetched_at TEXT NOT NULL,
  unusable TEXT NOT NULL
)
)SQL";

constexpr char kCreateServices[] = R"SQL(
CREATE TABLE ai_services (
  id TEXT PRIMARY KEY,
  org_id TEXT NOT NULL,
  name TEXT NOT NULL,
  name_key TEXT NOT NULL,
  type TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  provider_id TEXT NOT NULL REFERENCES providers (id),
  model_id TEXT NOT NULL,
  invocation_target TEXT NOT NULL,
  target_kind TEXT NOT NULL,
  foundation_model_id TEXT NOT NULL,
  model_name TEXT NOT NULL DEFAULT '',
  temperature DOUBLE PRECISION NOT NULL,
  max_tokens BIGINT NOT NULL,
  top_p DOUBLE PRECISION,
  stop_sequences TEXT NOT NULL,
  system_prompt TEXT NOT NULL DEFAULT '',
  notices TEXT NOT NULL DEFAULT '[]',
  version BIGINT NOT NULL,
  created_by TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (org_id, name_key)
);
CREATE INDEX IF NOT EXISTS ai_services_org_created ON ai_services (org_id, created_at, id);
CREATE INDEX IF NOT EXISTS ai_services_provider ON ai_services (provider_id)
)SQL";

constexpr char kCreateAgents[] = R"SQL(
CREATE TABLE agent_connections (
  id TEXT PRIMARY KEY,
  org_id TEXT NOT NULL,
  app_id TEXT NOT NULL,
  provider_id TEXT NOT NULL REFERENCES providers (id),
  name TEXT NOT NULL,
  name_key TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  agent_alias_arn TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  alias_id TEXT NOT NULL,
  region TEXT NOT NULL,
  account TEXT NOT NULL,
  verification TEXT NOT NULL,
  warnings TEXT NOT NULL DEFAULT '[]',
  version BIGINT NOT NULL,
  created_by TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (org_id, app_id, name_key),
  UNIQUE (org_id, app_id, agent_alias_arn)
);
CREATE INDEX IF NOT EXISTS agent_connections_app ON agent_connections (org_id, app_id, created_at, id);
CREATE INDEX IF NOT EXISTS agent_connections_provider ON agent_connections (provider_id)
)SQL";

constexpr char kCreateConversations[] = R"SQL(
CREATE TABLE conversations (
  id TEXT PRIMARY KEY,
  org_id TEXT NOT NULL,
  agent_connection_id TEXT NOT NULL REFERENCES agent_connections (id) ON DELETE CASCADE,
  user_id TEXT NOT NULL,
  session_id TEXT NOT NULL UNIQUE,
  title TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL,
  message_count BIGINT NOT NULL DEFAULT 0,
  busy_since TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  ended_at TEXT
);
CREATE INDEX IF NOT EXISTS conversations_agent ON conversations (org_id, agent_connection_id, created_at, id);
CREATE TABLE conversation_messages (
  id TEXT PRIMARY KEY,
  conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  org_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  role TEXT NOT NULL,
  text TEXT NOT NULL,
  citations TEXT NOT NULL DEFAULT '[]',
  return_control TEXT,
  trace_count BIGINT NOT NULL DEFAULT 0,
  latency_ms BIGINT,
  request_id TEXT NOT NULL DEFAULT '',
  bedrock_request_id TEXT NOT NULL DEFAULT '',
  error TEXT,
  created_at TEXT NOT NULL,
  UNIQUE (conversation_id, seq)
)
)SQL";

}  // namespace

std::vector<store::Migration> ProviderMigrations() {
  return {
      {200, "create providers and catalogue cache", kCreateProviders, ""},
      {201, "create ai services", kCreateServices, ""},
      {202, "create agent connections", kCreateAgents, ""},
      {203, "create conversations", kCreateConversations, ""},
  };
}

}  // namespace quarry::domain
