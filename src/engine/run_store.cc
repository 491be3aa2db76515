#include "engine/run_store.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <tuple>
#include <utility>

#include "common/crypto.h"
#include "common/encoding.h"
#include "common/ids.h"
#include "domain/providers.h"
#include "domain/schema.h"

namespace quarry::engine {
namespace {

using nlohmann::json;

// ---------------------------------------------------------------------------
// Schema (migration 400)
// ---------------------------------------------------------------------------
//
// Why these shapes:
//   - runs_claim (status, available_at_ms, id) and runs_lease (status,
//     lease_expires_at_ms, id) make both claim scans an ordered index range
//     that stops after LIMIT rows, however long the backlog.
//   - runs_automation (automation_id, created_at, id) serves listing, counting
//     and statistics of one automation (automation ids are unique across
//     organizations, so the org_id condition only filters) and also the
//     cascade when an automation is deleted, which an index starting with
//     org_id could not; runs_org (org_id, created_at, id) serves the org-wide
//     list, newest first.
//   - runs.dedupe_key is UNIQUE but NULL when unused (NULLs never collide on
//     either engine), so INSERT ... ON CONFLICT (dedupe_key) DO NOTHING drops
//     duplicate triggers atomically.
//   - created_at_ms / finished_at_ms duplicate the ISO text so run latency is
//     a subtraction in SQL, not a parse per row.
//   - Foreign keys cascade from organizations to automations and from there
//     to versions, runs (then steps and reviews) and alerts, so deleting an
//     automation leaves nothing behind. Apps and objects are referenced by id
//     only (the caller checks them), so the apps module's deletes are not
//     blocked by, and do not depend on, the engine's tables.
constexpr const char* kCreateEngineTables = R"sql(
CREATE TABLE automations (
  id TEXT PRIMARY KEY,
  org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
  app_id TEXT NOT NULL,
  object_id TEXT NOT NULL DEFAULT '',
  name TEXT NOT NULL,
  status TEXT NOT NULL,
  draft_json TEXT NOT NULL,
  published_version BIGINT,
  trigger_kind TEXT NOT NULL DEFAULT '',
  version BIGINT NOT NULL DEFAULT 1,
  created_by TEXT NOT NULL DEFAULT '',
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS automations_org_created ON automations (org_id, created_at, id);
CREATE INDEX IF NOT EXISTS automations_object ON automations (object_id);
CREATE INDEX IF NOT EXISTS automations_trigger ON automations (trigger_kind);
CREATE TABLE automation_versions (
  automation_id TEXT NOT NULL REFERENCES automations (id) ON DELETE CASCADE,
  version BIGINT NOT NULL,
  definition_json TEXT NOT NULL,
  published_by TEXT NOT NULL DEFAULT '',
  published_at TEXT NOT NULL,
  PRIMARY KEY (automation_id, version)
);
CREATE TABLE runs (
  id TEXT PRIMARY KEY,
  org_id TEXT NOT NULL,
  automation_id TEXT NOT NULL REFERENCES automations (id) ON DELETE CASCADE,
  automation_version BIGINT NOT NULL,
  app_id TEXT NOT NULL DEFAULT '',
  record_id TEXT NOT NULL DEFAULT '',
  mode TEXT NOT NULL,
  status TEXT NOT NULL,
  trigger_json TEXT NOT NULL,
  state_json TEXT NOT NULL,
  outputs_json TEXT NOT NULL,
  error_json TEXT,
  lease_owner TEXT NOT NULL DEFAULT '',
  lease_token TEXT NOT NULL DEFAULT '',
  lease_expires_at_ms BIGINT NOT NULL DEFAULT 0,
  available_at_ms BIGINT NOT NULL,
  claims BIGINT NOT NULL DEFAULT 0,
  dedupe_key TEXT UNIQUE,
  input_tokens BIGINT NOT NULL DEFAULT 0,
  output_tokens BIGINT NOT NULL DEFAULT 0,
  cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
  bedrock_ms BIGINT NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL,
  created_at_ms BIGINT NOT NULL,
  started_at TEXT,
  finished_at TEXT,
  finished_at_ms BIGINT
);
CREATE INDEX IF NOT EXISTS runs_claim ON runs (status, available_at_ms, id);
CREATE INDEX IF NOT EXISTS runs_lease ON runs (status, lease_expires_at_ms, id);
CREATE INDEX IF NOT EXISTS runs_automation ON runs (automation_id, created_at, id);
CREATE INDEX IF NOT EXISTS runs_org ON runs (org_id, created_at, id);
CREATE TABLE run_steps (
  run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  seq BIGINT NOT NULL,
  step_id TEXT NOT NULL,
  type TEXT NOT NULL,
  target TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL,
  attempts BIGINT NOT NULL DEFAULT 0,
  input_json TEXT NOT NULL,
  output_json TEXT NOT NULL,
  request_ids_json TEXT NOT NULL,
  latency_ms BIGINT NOT NULL DEFAULT 0,
  bedrock_ms BIGINT NOT NULL DEFAULT 0,
  engine_us BIGINT NOT NULL DEFAULT 0,
  input_tokens BIGINT NOT NULL DEFAULT 0,
  output_tokens BIGINT NOT NULL DEFAULT 0,
  cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
  cache_hit BIGINT NOT NULL DEFAULT 0,
  retries BIGINT NOT NULL DEFAULT 0,
  error_json TEXT,
  started_at TEXT NOT NULL,
  finished_at TEXT NOT NULL,
  PRIMARY KEY (run_id, seq)
);
CREATE INDEX IF NOT EXISTS run_steps_target ON run_steps (target, started_at);
CREATE TABLE reviews (
  id TEXT PRIMARY KEY,
  org_id TEXT NOT NULL,
  run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  automation_id TEXT NOT NULL,
  step_id TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  proposed_json TEXT NOT NULL,
  context_json TEXT NOT NULL,
  decision_json TEXT,
  decided_by TEXT NOT NULL DEFAULT '',
  decided_at TEXT NOT NULL DEFAULT '',
  created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reviews_org_status ON reviews (org_id, status, created_at, id);
CREATE INDEX IF NOT EXISTS reviews_org_created ON reviews (org_id, created_at, id);
CREATE INDEX IF NOT EXISTS reviews_run ON reviews (run_id);
CREATE TABLE alerts (
  id TEXT PRIMARY KEY,
  org_id TEXT NOT NULL,
  automation_id TEXT NOT NULL REFERENCES automations (id) ON DELETE CASCADE,
  run_id TEXT NOT NULL DEFAULT '',
  step_id TEXT NOT NULL DEFAULT '',
  message TEXT NOT NULL,
  error_json TEXT,
  delivery TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_org_created ON alerts (org_id, created_at, id);
CREATE INDEX IF NOT EXISTS alerts_automation ON alerts (automation_id, created_at, id);
)sql";

// ---------------------------------------------------------------------------
// SQL
// ---------------------------------------------------------------------------

constexpr std::string_view kAutomationColumns =
    "id, org_id, app_id, object_id, name, status, draft_json, published_version, trigger_kind, "
    "version, created_by, created_at, updated_at";

constexpr std::string_view kInsertAutomation =
    "INSERT INTO automations (id, org_id, app_id, object_id, name, status, draft_json, "
    "trigger_kind, version, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, "
    "$7, '', 1, $8, $9, $9)";

constexpr std::string_view kUpdateAutomation =
    "UPDATE automations SET name = $3, status = $4, draft_json = $5, version = version + 1, "
    "updated_at = $6 WHERE org_id = $1 AND id = $2 AND ($7 = 0 OR version = $8)";

constexpr std::string_view kDeleteAutomation =
    "DELETE FROM automations WHERE org_id = $1 AND id = $2";

// The row lock this UPDATE takes orders concurrent publishes of one automation.
constexpr std::string_view kBumpPublishedVersion =
    "UPDATE automations SET published_version = COALESCE(published_version, 0) + 1, trigger_kind = "
    "$3, version = version + 1, updated_at = $4 WHERE org_id = $1 AND id = $2 RETURNING "
    "published_version";

constexpr std::string_view kInsertVersion =
    "INSERT INTO automation_versions (automation_id, version, definition_json, published_by, "
    "published_at) VALUES ($1, $2, $3, $4, $5)";

constexpr std::string_view kSelectVersion =
    "SELECT definition_json, published_by, published_at FROM automation_versions WHERE "
    "automation_id = $1 AND version = $2";

constexpr std::string_view kRecordTriggerCandidates =
    "SELECT id, published_version, app_id, trigger_kind, org_id FROM automations WHERE object_id = "
    "$1 AND status = 'active' AND published_version IS NOT NULL AND trigger_kind IN "
    "('record_created', 'record_updated') ORDER BY id";

constexpr std::string_view kScheduledAutomations =
    "SELECT id, published_version, app_id, trigger_kind, org_id FROM automations WHERE "
    "trigger_kind = 'schedule' AND status = 'active' AND published_version IS NOT NULL ORDER BY id";

constexpr std::string_view kRunColumns =
    "id, org_id, automation_id, automation_version, app_id, record_id, mode, status, trigger_json, "
    "state_json, outputs_json, error_json, lease_owner, lease_token, lease_expires_at_ms, "
    "available_at_ms, claims, input_tokens, output_tokens, cost_usd, bedrock_ms, created_at, "
    "started_at, finished_at";

constexpr std::string_view kInsertRun =
    "INSERT INTO runs (id, org_id, automation_id, automation_version, app_id, record_id, mode, "
    "status, trigger_json, state_json, outputs_json, available_at_ms, dedupe_key, created_at, "
    "created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, '{}', '{}', $9, $10, $11, "
    "$12) ON CONFLICT (dedupe_key) DO NOTHING";

// Claims: $1 owner, $2 token prefix (the run id is appended, so every claimed
// run gets its own token), $3 lease expiry, $4 now (ISO), $5 now (ms), $6 max.
// Each inner SELECT is an ordered range of one index (runs_lease, runs_claim).
constexpr std::string_view kClaimSet =
    "UPDATE runs SET status = 'running', lease_owner = $1, lease_token = CAST($2 AS TEXT) || id, "
    "lease_expires_at_ms = $3, started_at = COALESCE(started_at, $4), claims = claims + 1 WHERE id "
    "IN ";
constexpr std::string_view kExpiredSelect =
    "(SELECT id FROM runs WHERE status = 'running' AND lease_expires_at_ms <= $5 ORDER BY "
    "lease_expires_at_ms, id LIMIT $6";
constexpr std::string_view kQueuedSelect =
    "(SELECT id FROM runs WHERE status = 'queued' AND available_at_ms <= $5 ORDER BY "
    "available_at_ms, id LIMIT $6";
constexpr std::string_view kClaimOne =
    "UPDATE runs SET status = 'running', lease_owner = $1, lease_token = CAST($2 AS TEXT) || id, "
    "lease_expires_at_ms = $3, started_at = COALESCE(started_at, $4), claims = claims + 1 WHERE id "
    "= $6 AND ((status = 'queued' AND available_at_ms <= $5) OR (status = 'running' AND "
    "lease_expires_at_ms <= $5))";

constexpr std::string_view kRenewLease =
    "UPDATE runs SET lease_expires_at_ms = $4 WHERE id = $1 AND lease_owner = $2 AND lease_token = "
    "$3 AND status = 'running'";

// A no-op write: it matches only while the lease holds, and on PostgreSQL it
// also locks the row, so no claimer can take the run before the caller's
// transaction ends.
constexpr std::string_view kCheckLease =
    "UPDATE runs SET claims = claims WHERE id = $1 AND lease_owner = $2 AND lease_token = $3 AND "
    "status = 'running'";

constexpr std::string_view kSaveProgress =
    "UPDATE runs SET state_json = $4, input_tokens = $5, output_tokens = $6, cost_usd = $7, "
    "bedrock_ms = $8 WHERE id = $1 AND lease_owner = $2 AND lease_token = $3 AND status = "
    "'running'";

constexpr std::string_view kInsertStep =
    "INSERT INTO run_steps (run_id, seq, step_id, type, target, status, attempts, input_json, "
    "output_json, request_ids_json, latency_ms, bedrock_ms, engine_us, input_tokens, "
    "output_tokens, cost_usd, cache_hit, retries, error_json, started_at, finished_at) VALUES ($1, "
    "$2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)";

constexpr std::string_view kFinishRun =
    "UPDATE runs SET status = $4, outputs_json = $5, error_json = $6, input_tokens = $7, "
    "output_tokens = $8, cost_usd = $9, bedrock_ms = $10, finished_at = $11, finished_at_ms = $12, "
    "lease_owner = '', lease_token = '', lease_expires_at_ms = 0 WHERE id = $1 AND lease_owner = "
    "$2 AND lease_token = $3 AND status = 'running'";

constexpr std::string_view kReleaseRun =
    "UPDATE runs SET status = 'queued', available_at_ms = $4, lease_owner = '', lease_token = '', "
    "lease_expires_at_ms = 0 WHERE id = $1 AND lease_owner = $2 AND lease_token = $3 AND status = "
    "'running'";

constexpr std::string_view kParkRun =
    "UPDATE runs SET status = 'waiting_review', lease_owner = '', lease_token = '', "
    "lease_expires_at_ms = 0 WHERE id = $1 AND lease_owner = $2 AND lease_token = $3 AND status = "
    "'running' RETURNING org_id, automation_id";

constexpr std::string_view kLeaseHolder = "SELECT status, lease_owner FROM runs WHERE id = $1";

constexpr std::string_view kStepColumns =
    "run_id, seq, step_id, type, target, status, attempts, input_json, output_json, "
    "request_ids_json, latency_ms, bedrock_ms, engine_us, input_tokens, output_tokens, cost_usd, "
    "cache_hit, retries, error_json, started_at, finished_at";

constexpr std::string_view kCancelRun =
    "UPDATE runs SET status = 'cancelled', finished_at = $3, finished_at_ms = $4, lease_owner = "
    "'', lease_token = '', lease_expires_at_ms = 0 WHERE org_id = $1 AND id = $2 AND status IN "
    "('queued', 'waiting_review')";

// A cancelled run's open reviews leave the queue with it.
constexpr std::string_view kRejectOpenReviews =
    "UPDATE reviews SET status = 'rejected', decision_json = $2, decided_at = $3 WHERE run_id = $1 "
    "AND status = 'pending'";

constexpr std::string_view kCountByStatus =
    "SELECT status, COUNT(*) FROM runs WHERE automation_id = $2 AND org_id = $1 GROUP BY status";

constexpr std::string_view kReviewColumns =
    "id, org_id, run_id, automation_id, step_id, status, reason, proposed_json, context_json, "
    "decision_json, decided_by, decided_at, created_at";

constexpr std::string_view kInsertReview =
    "INSERT INTO reviews (id, org_id, run_id, automation_id, step_id, status, reason, "
    "proposed_json, context_json, created_at) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, "
    "$9)";

constexpr std::string_view kDecideReview =
    "UPDATE reviews SET status = $3, decision_json = $4, decided_by = $5, decided_at = $6 WHERE "
    "org_id = $1 AND id = $2 AND status = 'pending'";

constexpr std::string_view kWaitingState = "SELECT state_json, status FROM runs WHERE id = $1";

constexpr std::string_view kRequeueReviewed =
    "UPDATE runs SET status = 'queued', available_at_ms = $2, state_json = $3 WHERE id = $1 AND "
    "status = 'waiting_review'";

constexpr std::string_view kAlertColumns =
    "id, org_id, automation_id, run_id, step_id, message, error_json, delivery, created_at";

constexpr std::string_view kInsertAlert =
    "INSERT INTO alerts (id, org_id, automation_id, run_id, step_id, message, error_json, "
    "delivery, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

constexpr std::string_view kSetAlertDelivery = "UPDATE alerts SET delivery = $2 WHERE id = $1";

// Statistics. Sums of BIGINT are numeric on PostgreSQL; the accessors convert.
constexpr std::string_view kRunTotalsByStatus =
    "SELECT status, COUNT(*), COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), "
    "COALESCE(SUM(cost_usd), 0) FROM runs WHERE automation_id = $2 AND org_id = $1 AND created_at "
    ">= $3 GROUP BY status";
// Percentiles are computed here over at most the newest 10,000 samples
// (LIMIT below), which bounds the work of a busy automation's dashboard.
constexpr std::string_view kRunLatencies =
    "SELECT finished_at_ms - created_at_ms FROM runs WHERE automation_id = $2 AND org_id = $1 AND "
    "created_at >= $3 AND finished_at_ms IS NOT NULL ORDER BY created_at DESC, id DESC LIMIT 10000";
constexpr std::string_view kRunCacheHits =
    "SELECT COUNT(*) FROM run_steps s JOIN runs r ON r.id = s.run_id WHERE r.automation_id = $2 "
    "AND r.org_id = $1 AND r.created_at >= $3 AND s.cache_hit = 1";
// An agent's health: its run_agent_task steps (skipped ones never called it).
// "defaulted" is a call that failed and fell back to a default value.
constexpr std::string_view kAgentTotalsByStatus =
    "SELECT s.status, COUNT(*), COALESCE(SUM(s.input_tokens), 0), COALESCE(SUM(s.output_tokens), "
    "0), COALESCE(SUM(s.cost_usd), 0), COALESCE(SUM(s.cache_hit), 0) FROM run_steps s JOIN runs r "
    "ON r.id = s.run_id WHERE s.target = $2 AND s.started_at >= $3 AND s.type = 'run_agent_task' "
    "AND s.status <> 'skipped' AND r.org_id = $1 GROUP BY s.status";
constexpr std::string_view kAgentLatencies =
    "SELECT s.latency_ms FROM run_steps s JOIN runs r ON r.id = s.run_id WHERE s.target = $2 AND "
    "s.started_at >= $3 AND s.type = 'run_agent_task' AND s.status IN ('succeeded', 'failed', "
    "'defaulted') AND r.org_id = $1 ORDER BY s.started_at DESC LIMIT 10000";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

// JSON for a TEXT column. Invalid UTF-8 inside strings (from a model's
// output, say) is replaced rather than thrown on.
std::string JsonText(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

store::Value OptionalJson(const json& value) {
  if (value.is_null()) return store::Null();
  return JsonText(value);
}

json ParseJson(const store::Row& row, size_t i, json fallback) {
  if (row.IsNull(i)) return fallback;
  json parsed = json::parse(row.Text(i), nullptr, false);
  return parsed.is_discarded() ? fallback : parsed;
}

json NullIfEmpty(const std::string& text) { return text.empty() ? json(nullptr) : json(text); }

std::string IsoFromMs(int64_t ms) {
  return domain::FormatTimestamp(WallTime{std::chrono::milliseconds{ms}});
}

bool OneOf(std::string_view value, std::initializer_list<std::string_view> allowed) {
  return std::find(allowed.begin(), allowed.end(), value) != allowed.end();
}

AutomationRow AutomationFromRow(const store::Row& r) {
  AutomationRow a;
  a.id = r.Text(0);
  a.org_id = r.Text(1);
  a.app_id = r.Text(2);
  a.object_id = r.Text(3);
  a.name = r.Text(4);
  a.status = r.Text(5);
  a.draft = ParseJson(r, 6, json::object());
  a.published_version = r.OptInt(7);
  a.trigger_kind = r.Text(8);
  a.version = r.Int(9);
  a.created_by = r.Text(10);
  a.created_at = r.Text(11);
  a.updated_at = r.Text(12);
  return a;
}

RunRow RunFromRow(const store::Row& r) {
  RunRow run;
  run.id = r.Text(0);
  run.org_id = r.Text(1);
  run.automation_id = r.Text(2);
  run.automation_version = r.Int(3);
  run.app_id = r.Text(4);
  run.record_id = r.Text(5);
  run.mode = r.Text(6);
  run.status = r.Text(7);
  run.trigger = ParseJson(r, 8, json::object());
  run.state = ParseJson(r, 9, json::object());
  run.outputs = ParseJson(r, 10, json::object());
  run.error = ParseJson(r, 11, nullptr);
  run.lease_owner = r.Text(12);
  run.lease_token = r.Text(13);
  run.lease_expires_at_ms = r.Int(14);
  run.available_at_ms = r.Int(15);
  run.claims = r.Int(16);
  run.input_tokens = r.Int(17);
  run.output_tokens = r.Int(18);
  run.cost_usd = r.Double(19);
  run.bedrock_ms = r.Int(20);
  run.created_at = r.Text(21);
  run.started_at = r.Text(22);
  run.finished_at = r.Text(23);
  return run;
}

StepRow StepFromRow(const store::Row& r) {
  StepRow s;
  s.run_id = r.Text(0);
  s.seq = r.Int(1);
  s.step_id = r.Text(2);
  s.type = r.Text(3);
  s.target = r.Text(4);
  s.status = r.Text(5);
  s.attempts = static_cast<int>(r.Int(6));
  s.input = ParseJson(r, 7, json::object());
  s.output = ParseJson(r, 8, json::object());
  const json ids = ParseJson(r, 9, json::array());
  if (ids.is_array()) {
    for (const json& id : ids) {
      if (id.is_string()) s.request_ids.push_back(id.get<std::string>());
    }
  }
  s.latency_ms = r.Int(10);
  s.bedrock_ms = r.Int(11);
  s.engine_us = r.Int(12);
  s.input_tokens = r.Int(13);
  s.output_tokens = r.Int(14);
  s.cost_usd = r.Double(15);
  s.cache_hit = r.Bool(16);
  s.retries = static_cast<int>(r.Int(17));
  s.error = ParseJson(r, 18, nullptr);
  s.started_at = r.Text(19);
  s.finished_at = r.Text(20);
  return s;
}

ReviewRow ReviewFromRow(const store::Row& r) {
  ReviewRow v;
  v.id = r.Text(0);
  v.org_id = r.Text(1);
  v.run_id = r.Text(2);
  v.automation_id = r.Text(3);
  v.step_id = r.Text(4);
  v.status = r.Text(5);
  v.reason = r.Text(6);
  v.proposed = ParseJson(r, 7, json::object());
  v.context = ParseJson(r, 8, json::object());
  v.decision = ParseJson(r, 9, nullptr);
  v.decided_by = r.Text(10);
  v.decided_at = r.Text(11);
  v.created_at = r.Text(12);
  return v;
}

AlertRow AlertFromRow(const store::Row& r) {
  AlertRow a;
  a.id = r.Text(0);
  a.org_id = r.Text(1);
  a.automation_id = r.Text(2);
  a.run_id = r.Text(3);
  a.step_id = r.Text(4);
  a.message = r.Text(5);
  a.error = ParseJson(r, 6, nullptr);
  a.delivery = r.Text(7);
  a.created_at = r.Text(8);
  return a;
}

TriggerCandidate CandidateFromRow(const store::Row& r) {
  TriggerCandidate c;
  c.automation_id = r.Text(0);
  c.version = r.Int(1);
  c.app_id = r.Text(2);
  c.trigger_kind = r.Text(3);
  c.org_id = r.Text(4);
  return c;
}

Status AutomationNotFound(const std::string& id) {
  return NotFoundError(
      "automation " + id +
      " not found in this organization; list automations with GET /api/v1/automations");
}

Status RunNotFound(const std::string& id) {
  return NotFoundError("run " + id +
                       " not found in this organization; list runs with GET /api/v1/runs");
}

// The Aborted status of a write whose lease no longer holds, naming who has
// the run now when that can be told.
Status LeaseLost(store::Tx& tx, const Lease& lease) {
  std::string now;
  Result<store::Rows> rows = tx.Query(kLeaseHolder, {lease.run_id});
  if (rows.ok() && !rows->empty()) {
    const store::Row& row = rows->rows[0];
    now = " (the run is now " + row.Text(0);
    if (!row.Text(1).empty() && row.Text(1) != lease.owner) now += ", held by " + row.Text(1);
    now += ")";
  } else if (rows.ok()) {
    now = " (the run no longer exists)";
  }
  return Status(
      StatusCode::kAborted,
      "lease lost on run " + lease.run_id +
          ": another worker took it over after the lease expired, or it was finished, released or "
          "cancelled elsewhere" +
          now + "; drop the run here, its new holder resumes it from the last committed step");
}

// Runs a lease-checked UPDATE (parameters $1 run, $2 owner, $3 token first).
Status LeasedExec(store::Tx& tx, const Lease& lease, std::string_view sql, store::Params params) {
  params.insert(params.begin(), {lease.run_id, lease.owner, lease.token});
  QUARRY_ASSIGN_OR_RETURN(int64_t changed, tx.Exec(sql, params));
  if (changed == 0) return LeaseLost(tx, lease);
  return Status::Ok();
}

// Nearest-rank percentile of sorted values (0 when there are none).
int64_t Percentile(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

void FillRates(RunStats* stats, int64_t finished, std::vector<int64_t> latencies) {
  if (finished > 0) {
    stats->success_rate = static_cast<double>(stats->succeeded) / static_cast<double>(finished);
    stats->failure_rate = static_cast<double>(stats->failed) / static_cast<double>(finished);
  }
  std::sort(latencies.begin(), latencies.end());
  stats->latency_p50_ms = Percentile(latencies, 0.50);
  stats->latency_p95_ms = Percentile(latencies, 0.95);
}

}  // namespace

// ---------------------------------------------------------------------------
// Migrations
// ---------------------------------------------------------------------------

std::vector<store::Migration> EngineMigrations() {
  return {
      {400, "create automations, runs, run steps, reviews, alerts", kCreateEngineTables, ""},
      // A record's run history (GET /runs?record_id=...) without scanning the
      // organization's runs.
      {401, "index runs by record",
       "CREATE INDEX IF NOT EXISTS runs_record ON runs (org_id, record_id, created_at, id)", ""},
  };
}

std::vector<store::Migration> AllServerMigrations() {
  std::vector<store::Migration> all = domain::AllMigrations();
  std::vector<store::Migration> engine = EngineMigrations();
  all.insert(all.end(), std::make_move_iterator(engine.begin()),
             std::make_move_iterator(engine.end()));
  return all;
}

// ---------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------

json AutomationRow::ToJson() const {
  return {{"id", id},
          {"app_id", app_id},
          {"object_id", object_id},
          {"name", name},
          {"status", status},
          {"draft", draft},
          {"published_version", published_version ? json(*published_version) : json(nullptr)},
          {"trigger", NullIfEmpty(trigger_kind)},
          {"version", version},
          {"created_by", created_by},
          {"created_at", created_at},
          {"updated_at", updated_at}};
}

json RunRow::ToJson() const {
  return {{"id", id},
          {"automation_id", automation_id},
          {"automation_version", automation_version},
          {"app_id", app_id},
          {"record_id", NullIfEmpty(record_id)},
          {"mode", mode},
          {"status", status},
          {"trigger", trigger},
          {"state", state},
          {"outputs", outputs},
          {"error", error},
          {"worker", NullIfEmpty(lease_owner)},
          {"claims", claims},
          {"input_tokens", input_tokens},
          {"output_tokens", output_tokens},
          {"cost_usd", cost_usd},
          {"bedrock_ms", bedrock_ms},
          {"created_at", created_at},
          {"started_at", NullIfEmpty(started_at)},
          {"finished_at", NullIfEmpty(finished_at)}};
}

json StepRow::ToJson() const {
  return {{"seq", seq},
          {"step_id", step_id},
          {"type", type},
          {"target", NullIfEmpty(target)},
          {"status", status},
          {"attempts", attempts},
          {"retries", retries},
          {"input", input},
          {"output", output},
          {"request_ids", request_ids},
          {"latency_ms", latency_ms},
          {"bedrock_ms", bedrock_ms},
          {"engine_us", engine_us},
          {"input_tokens", input_tokens},
          {"output_tokens", output_tokens},
          {"cost_usd", cost_usd},
          {"cache_hit", cache_hit},
          {"error", error},
          {"started_at", started_at},
          {"finished_at", finished_at}};
}

json ReviewRow::ToJson() const {
  return {{"id", id},
          {"run_id", run_id},
          {"automation_id", automation_id},
          {"step_id", step_id},
          {"status", status},
          {"reason", reason},
          {"proposed", proposed},
          {"context", context},
          {"decision", decision},
          {"decided_by", NullIfEmpty(decided_by)},
          {"decided_at", NullIfEmpty(decided_at)},
          {"created_at", created_at}};
}

json AlertRow::ToJson() const {
  return {{"id", id},
          {"automation_id", automation_id},
          {"run_id", NullIfEmpty(run_id)},
          {"step_id", NullIfEmpty(step_id)},
          {"message", message},
          {"error", error},
          {"delivery", delivery},
          {"created_at", created_at}};
}

json RunStats::ToJson() const {
  return {{"invocations", invocations},
          {"succeeded", succeeded},
          {"failed", failed},
          {"waiting_review", waiting_review},
          {"running", running},
          {"success_rate", success_rate},
          {"failure_rate", failure_rate},
          {"latency_p50_ms", latency_p50_ms},
          {"latency_p95_ms", latency_p95_ms},
          {"input_tokens", input_tokens},
          {"output_tokens", output_tokens},
          {"cost_usd", cost_usd},
          {"cache_hits", cache_hits}};
}

// ---------------------------------------------------------------------------
// RunStore
// ---------------------------------------------------------------------------

RunStore::RunStore(std::shared_ptr<store::Database> db, std::shared_ptr<const Clock> clock)
    : db_(std::move(db)), clock_(std::move(clock)) {}

int64_t RunStore::NowMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_->Now().time_since_epoch())
      .count();
}

// --- automations ------------------------------------------------------------

Result<AutomationRow> RunStore::CreateAutomation(store::Tx& tx, AutomationRow row) {
  if (row.org_id.empty()) {
    return InvalidArgumentError("an automation needs an organization (org_id is empty)");
  }
  if (!OneOf(row.status, {"active", "paused"})) {
    return InvalidArgumentError("automation status must be 'active' or 'paused' (got '" +
                                row.status.substr(0, 32) + "')");
  }
  if (row.id.empty()) row.id = NewId("aut");
  row.created_at = row.updated_at = IsoFromMs(NowMs());
  row.version = 1;
  row.published_version.reset();
  row.trigger_kind.clear();
  QUARRY_RETURN_IF_ERROR(
      tx.Exec(kInsertAutomation, {row.id, row.org_id, row.app_id, row.object_id, row.name,
                                  row.status, JsonText(row.draft), row.created_by, row.created_at})
          .status());
  return row;
}

Result<AutomationRow> RunStore::GetAutomation(store::Tx& tx, const std::string& org_id,
                                              const std::string& id) {
  const std::string sql = "SELECT " + std::string(kAutomationColumns) +
                          " FROM automations WHERE org_id = $1 AND id = $2";
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, {org_id, id}));
  if (rows.empty()) return AutomationNotFound(id);
  return AutomationFromRow(rows.rows[0]);
}

Result<domain::Page<AutomationRow>> RunStore::ListAutomations(store::Tx& tx,
                                                              const std::string& org_id,
                                                              const std::string& app_id,
                                                              const domain::PageRequest& page) {
  std::string sql =
      "SELECT " + std::string(kAutomationColumns) + " FROM automations WHERE org_id = $1";
  store::Params params = {org_id};
  if (!app_id.empty()) {
    params.push_back(app_id);
    sql += " AND app_id = $" + std::to_string(params.size());
  }
  QUARRY_RETURN_IF_ERROR(domain::AppendKeysetPage(page, &sql, &params));
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, params));
  return domain::TakeKeysetPage<AutomationRow>(rows, page.limit, AutomationFromRow);
}

Result<AutomationRow> RunStore::UpdateAutomation(store::Tx& tx, const AutomationRow& row,
                                                 std::optional<int64_t> expected_version) {
  if (!OneOf(row.status, {"active", "paused"})) {
    return InvalidArgumentError("automation status must be 'active' or 'paused' (got '" +
                                row.status.substr(0, 32) + "')");
  }
  QUARRY_ASSIGN_OR_RETURN(
      int64_t changed,
      tx.Exec(kUpdateAutomation,
              {row.org_id, row.id, row.name, row.status, JsonText(row.draft), IsoFromMs(NowMs()),
               store::Bool(expected_version.has_value()), expected_version.value_or(0)}));
  if (changed == 0) {
    QUARRY_ASSIGN_OR_RETURN(AutomationRow current, GetAutomation(tx, row.org_id, row.id));
    return Status(StatusCode::kAborted, "automation " + row.id +
                                            " changed since you read it (version " +
                                            std::to_string(current.version) + ", you sent " +
                                            std::to_string(expected_version.value_or(0)) +
                                            "); fetch it again, reapply your change and retry");
  }
  return GetAutomation(tx, row.org_id, row.id);
}

Status RunStore::DeleteAutomation(store::Tx& tx, const std::string& org_id, const std::string& id) {
  QUARRY_ASSIGN_OR_RETURN(int64_t changed, tx.Exec(kDeleteAutomation, {org_id, id}));
  if (changed == 0) return AutomationNotFound(id);
  return Status::Ok();
}

Result<AutomationVersion> RunStore::Publish(store::Tx& tx, const std::string& org_id,
                                            const std::string& automation_id,
                                            const json& definition, const std::string& trigger_kind,
                                            const std::string& published_by) {
  AutomationVersion out;
  out.automation_id = automation_id;
  out.definition = definition;
  out.published_by = published_by;
  out.published_at = IsoFromMs(NowMs());
  QUARRY_ASSIGN_OR_RETURN(
      store::Rows bumped,
      tx.Query(kBumpPublishedVersion, {org_id, automation_id, trigger_kind, out.published_at}));
  if (bumped.empty()) return AutomationNotFound(automation_id);
  out.version = bumped.rows[0].Int(0);
  QUARRY_RETURN_IF_ERROR(tx.Exec(kInsertVersion, {automation_id, out.version, JsonText(definition),
                                                  published_by, out.published_at})
                             .status());
  return out;
}

Result<AutomationVersion> RunStore::GetVersion(store::Tx& tx, const std::string& automation_id,
                                               int64_t version) {
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(kSelectVersion, {automation_id, version}));
  if (rows.empty()) {
    return NotFoundError("version " + std::to_string(version) + " of automation " + automation_id +
                         " not found; it was never published (or the automation was deleted)");
  }
  AutomationVersion out;
  out.automation_id = automation_id;
  out.version = version;
  out.definition = ParseJson(rows.rows[0], 0, json::object());
  out.published_by = rows.rows[0].Text(1);
  out.published_at = rows.rows[0].Text(2);
  return out;
}

Result<std::vector<TriggerCandidate>> RunStore::RecordTriggerCandidates(
    store::Tx& tx, const std::string& object_id) {
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(kRecordTriggerCandidates, {object_id}));
  std::vector<TriggerCandidate> out;
  for (const store::Row& row : rows.rows) out.push_back(CandidateFromRow(row));
  return out;
}

Result<std::vector<TriggerCandidate>> RunStore::ScheduledAutomations(store::Tx& tx) {
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(kScheduledAutomations));
  std::vector<TriggerCandidate> out;
  for (const store::Row& row : rows.rows) out.push_back(CandidateFromRow(row));
  return out;
}

// --- runs -------------------------------------------------------------------

Result<std::string> RunStore::EnqueueRun(store::Tx& tx, const NewRun& run) {
  if (run.org_id.empty() || run.automation_id.empty()) {
    return InvalidArgumentError(
        "a run needs an organization and an automation (org_id or automation_id is empty)");
  }
  if (!OneOf(run.mode, {"live", "test"})) {
    return InvalidArgumentError("run mode must be 'live' or 'test' (got '" +
                                run.mode.substr(0, 32) + "')");
  }
  const int64_t now = NowMs();
  const std::string id = NewId("run");
  QUARRY_ASSIGN_OR_RETURN(
      int64_t inserted,
      tx.Exec(kInsertRun,
              {id, run.org_id, run.automation_id, run.automation_version, run.app_id, run.record_id,
               run.mode, JsonText(run.trigger), run.available_at_ms > 0 ? run.available_at_ms : now,
               run.dedupe_key.empty() ? store::Null() : store::Value(run.dedupe_key),
               IsoFromMs(now), now}));
  return inserted == 0 ? std::string() : id;
}

Result<std::vector<ClaimedRun>> RunStore::ClaimRuns(const std::string& owner, int max,
                                                    std::chrono::milliseconds lease) {
  if (owner.empty()) {
    return InvalidArgumentError("a claim needs an owner (the worker's name is empty)");
  }
  std::vector<ClaimedRun> claimed;
  if (max <= 0) return claimed;
  const bool postgres = db_->dialect() == store::Dialect::kPostgres;
  // Disjoint claims across nodes: a row another claimer has locked is skipped,
  // not waited for (SQLite's single writer needs no such clause).
  const std::string lock = postgres ? " FOR UPDATE SKIP LOCKED)" : ")";
  const std::string returning = " RETURNING " + std::string(kRunColumns);
  const std::string claim_expired =
      std::string(kClaimSet) + std::string(kExpiredSelect) + lock + returning;
  const std::string claim_queued =
      std::string(kClaimSet) + std::string(kQueuedSelect) + lock + returning;
  QUARRY_RETURN_IF_ERROR(db_->Write([&](store::Tx& tx) -> Status {
    claimed.clear();
    const int64_t now = NowMs();
    const std::string token = HexEncode(SecureRandomBytes(16)) + ".";
    store::Params params = {owner, token, now + lease.count(), IsoFromMs(now), now, int64_t{max}};
    // Abandoned runs first: they were available before anything queued now.
    QUARRY_ASSIGN_OR_RETURN(store::Rows expired, tx.Query(claim_expired, params));
    for (const store::Row& row : expired.rows) claimed.push_back(RunFromRow(row));
    if (static_cast<int>(claimed.size()) < max) {
      params.back() = int64_t{max - static_cast<int64_t>(claimed.size())};
      QUARRY_ASSIGN_OR_RETURN(store::Rows queued, tx.Query(claim_queued, params));
      // RETURNING gives no order; restore the claim order.
      std::vector<ClaimedRun> fresh;
      for (const store::Row& row : queued.rows) fresh.push_back(RunFromRow(row));
      std::sort(fresh.begin(), fresh.end(), [](const ClaimedRun& a, const ClaimedRun& b) {
        return std::tie(a.available_at_ms, a.id) < std::tie(b.available_at_ms, b.id);
      });
      claimed.insert(claimed.end(), fresh.begin(), fresh.end());
    }
    return Status::Ok();
  }));
  return claimed;
}

Result<ClaimedRun> RunStore::ClaimRun(const std::string& run_id, const std::string& owner,
                                      std::chrono::milliseconds lease) {
  if (owner.empty()) {
    return InvalidArgumentError("a claim needs an owner (the worker's name is empty)");
  }
  ClaimedRun claimed;
  QUARRY_RETURN_IF_ERROR(db_->Write([&](store::Tx& tx) -> Status {
    const int64_t now = NowMs();
    const std::string token = HexEncode(SecureRandomBytes(16)) + ".";
    const std::string sql = std::string(kClaimOne) + " RETURNING " + std::string(kRunColumns);
    QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, {owner, token, now + lease.count(),
                                                             IsoFromMs(now), now, run_id}));
    if (!rows.empty()) {
      claimed = RunFromRow(rows.rows[0]);
      return Status::Ok();
    }
    QUARRY_ASSIGN_OR_RETURN(store::Rows current, tx.Query(kLeaseHolder, {run_id}));
    if (current.empty()) {
      return NotFoundError("run " + run_id +
                           " not found; it may have been deleted with its automation");
    }
    const std::string status = current.rows[0].Text(0);
    if (status == "queued") {
      return FailedPreconditionError("run " + run_id +
                                     " is queued but not available yet (it waits for a retry or "
                                     "a rate limit); claim it later");
    }
    if (status == "running") {
      return FailedPreconditionError("run " + run_id + " is already running on " +
                                     current.rows[0].Text(1) +
                                     "; it can be claimed only after that lease expires");
    }
    return FailedPreconditionError(
        "run " + run_id + " is " + status +
        "; only queued runs (or running runs whose lease expired) can be claimed");
  }));
  return claimed;
}

Result<std::vector<std::string>> RunStore::RenewLeases(const std::string& owner,
                                                       const std::vector<Lease>& leases,
                                                       std::chrono::milliseconds lease) {
  std::vector<std::string> lost;
  if (leases.empty()) return lost;
  QUARRY_RETURN_IF_ERROR(db_->Write([&](store::Tx& tx) -> Status {
    lost.clear();
    const int64_t expires = NowMs() + lease.count();
    for (const Lease& held : leases) {
      QUARRY_ASSIGN_OR_RETURN(int64_t changed,
                              tx.Exec(kRenewLease, {held.run_id, owner, held.token, expires}));
      if (changed == 0) lost.push_back(held.run_id);
    }
    return Status::Ok();
  }));
  return lost;
}

Status RunStore::CheckLease(store::Tx& tx, const Lease& lease) {
  return LeasedExec(tx, lease, kCheckLease, {});
}

Status RunStore::CommitProgress(store::Tx& tx, const Lease& lease,
                                const std::vector<StepRow>& steps, const json& state,
                                const RunRow& totals) {
  QUARRY_RETURN_IF_ERROR(LeasedExec(tx, lease, kSaveProgress,
                                    {JsonText(state), totals.input_tokens, totals.output_tokens,
                                     totals.cost_usd, totals.bedrock_ms}));
  const std::string now = IsoFromMs(NowMs());
  for (const StepRow& step : steps) {
    json request_ids = json::array();
    for (const std::string& id : step.request_ids) request_ids.push_back(id);
    Result<int64_t> inserted =
        tx.Exec(kInsertStep, {lease.run_id,
                              step.seq,
                              step.step_id,
                              step.type,
                              step.target,
                              step.status,
                              int64_t{step.attempts},
                              JsonText(step.input),
                              JsonText(step.output),
                              JsonText(request_ids),
                              step.latency_ms,
                              step.bedrock_ms,
                              step.engine_us,
                              step.input_tokens,
                              step.output_tokens,
                              step.cost_usd,
                              store::Bool(step.cache_hit),
                              int64_t{step.retries},
                              OptionalJson(step.error),
                              step.started_at.empty() ? now : step.started_at,
                              step.finished_at.empty() ? now : step.finished_at});
    if (inserted.status().code() == StatusCode::kAlreadyExists) {
      // Only a worker replaying steps another holder already journaled can
      // collide on (run_id, seq): it lost the run.
      return Status(StatusCode::kAborted,
                    "lease lost on run " + lease.run_id + ": step " + std::to_string(step.seq) +
                        " was already journaled by another worker; drop the run here");
    }
    QUARRY_RETURN_IF_ERROR(inserted.status());
  }
  return Status::Ok();
}

Status RunStore::FinishRun(store::Tx& tx, const Lease& lease, const std::string& status,
                           const json& outputs, const json& error, const RunRow& totals) {
  if (!OneOf(status, {"succeeded", "failed", "cancelled"})) {
    return InvalidArgumentError("a run finishes as succeeded, failed or cancelled (got '" +
                                status.substr(0, 32) + "')");
  }
  const int64_t now = NowMs();
  return LeasedExec(tx, lease, kFinishRun,
                    {status, JsonText(outputs.is_null() ? json::object() : outputs),
                     OptionalJson(error), totals.input_tokens, totals.output_tokens,
                     totals.cost_usd, totals.bedrock_ms, IsoFromMs(now), now});
}

Status RunStore::ReleaseRun(store::Tx& tx, const Lease& lease, int64_t available_at_ms) {
  return LeasedExec(tx, lease, kReleaseRun, {available_at_ms > 0 ? available_at_ms : NowMs()});
}

Result<std::string> RunStore::EscalateToReview(store::Tx& tx, const Lease& lease,
                                               ReviewRow review) {
  QUARRY_ASSIGN_OR_RETURN(store::Rows parked,
                          tx.Query(kParkRun, {lease.run_id, lease.owner, lease.token}));
  if (parked.empty()) return LeaseLost(tx, lease);
  review.id = NewId("rev");
  review.org_id = parked.rows[0].Text(0);
  review.automation_id = parked.rows[0].Text(1);
  review.run_id = lease.run_id;
  QUARRY_RETURN_IF_ERROR(
      tx.Exec(kInsertReview, {review.id, review.org_id, review.run_id, review.automation_id,
                              review.step_id, review.reason, JsonText(review.proposed),
                              JsonText(review.context), IsoFromMs(NowMs())})
          .status());
  return review.id;
}

Result<RunRow> RunStore::GetRun(store::Tx& tx, const std::string& org_id,
                                const std::string& run_id) {
  const std::string sql =
      "SELECT " + std::string(kRunColumns) + " FROM runs WHERE org_id = $1 AND id = $2";
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, {org_id, run_id}));
  if (rows.empty()) return RunNotFound(run_id);
  return RunFromRow(rows.rows[0]);
}

Result<std::vector<StepRow>> RunStore::GetSteps(store::Tx& tx, const std::string& run_id) {
  const std::string sql =
      "SELECT " + std::string(kStepColumns) + " FROM run_steps WHERE run_id = $1 ORDER BY seq";
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, {run_id}));
  std::vector<StepRow> out;
  out.reserve(rows.size());
  for (const store::Row& row : rows.rows) out.push_back(StepFromRow(row));
  return out;
}

Result<domain::Page<RunRow>> RunStore::ListRuns(store::Tx& tx, const std::string& org_id,
                                                const RunFilter& filter,
                                                const domain::PageRequest& page) {
  std::string sql = "SELECT " + std::string(kRunColumns) + " FROM runs WHERE org_id = $1";
  store::Params params = {org_id};
  auto add = [&](const char* column, const std::string& value) {
    if (value.empty()) return;
    params.push_back(value);
    sql += std::string(" AND ") + column + " = $" + std::to_string(params.size());
  };
  add("automation_id", filter.automation_id);
  add("status", filter.status);
  add("record_id", filter.record_id);
  add("mode", filter.mode);
  QUARRY_RETURN_IF_ERROR(
      domain::AppendKeysetPage(page, &sql, &params, domain::SortOrder::kDescending));
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, params));
  return domain::TakeKeysetPage<RunRow>(rows, page.limit, RunFromRow);
}

Status RunStore::CancelRun(store::Tx& tx, const std::string& org_id, const std::string& run_id) {
  const int64_t now = NowMs();
  const std::string at = IsoFromMs(now);
  QUARRY_ASSIGN_OR_RETURN(int64_t changed, tx.Exec(kCancelRun, {org_id, run_id, at, now}));
  if (changed == 0) {
    QUARRY_ASSIGN_OR_RETURN(RunRow run, GetRun(tx, org_id, run_id));
    return FailedPreconditionError(
        "run " + run_id + " is " + run.status +
        "; only queued runs and runs waiting for review can be cancelled");
  }
  const json decision = {
      {"decision", "rejected"}, {"values", nullptr}, {"comment", "the run was cancelled"}};
  return tx.Exec(kRejectOpenReviews, {run_id, JsonText(decision), at}).status();
}

Result<std::map<std::string, int64_t>> RunStore::CountRunsByStatus(
    store::Tx& tx, const std::string& org_id, const std::string& automation_id) {
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(kCountByStatus, {org_id, automation_id}));
  std::map<std::string, int64_t> out;
  for (const store::Row& row : rows.rows) out[row.Text(0)] = row.Int(1);
  return out;
}

// --- review queue -------------------------------------------------------------

Result<domain::Page<ReviewRow>> RunStore::ListReviews(store::Tx& tx, const std::string& org_id,
                                                      const std::string& status,
                                                      const domain::PageRequest& page) {
  std::string sql = "SELECT " + std::string(kReviewColumns) + " FROM reviews WHERE org_id = $1";
  store::Params params = {org_id};
  if (!status.empty()) {
    params.push_back(status);
    sql += " AND status = $2";
  }
  QUARRY_RETURN_IF_ERROR(domain::AppendKeysetPage(page, &sql, &params));
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, params));
  return domain::TakeKeysetPage<ReviewRow>(rows, page.limit, ReviewFromRow);
}

Result<ReviewRow> RunStore::GetReview(store::Tx& tx, const std::string& org_id,
                                      const std::string& review_id) {
  const std::string sql =
      "SELECT " + std::string(kReviewColumns) + " FROM reviews WHERE org_id = $1 AND id = $2";
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, {org_id, review_id}));
  if (rows.empty()) {
    return NotFoundError(
        "review " + review_id +
        " not found in this organization; list the review queue with GET /api/v1/reviews");
  }
  return ReviewFromRow(rows.rows[0]);
}

Result<ReviewRow> RunStore::DecideReview(store::Tx& tx, const std::string& org_id,
                                         const std::string& review_id, const std::string& decision,
                                         const json& values, const std::string& comment,
                                         const std::string& decided_by) {
  if (!OneOf(decision, {"approved", "edited", "rejected"})) {
    return InvalidArgumentError("decision must be 'approved', 'edited' or 'rejected' (got '" +
                                decision.substr(0, 32) + "')");
  }
  QUARRY_ASSIGN_OR_RETURN(ReviewRow review, GetReview(tx, org_id, review_id));
  auto already_decided = [&](const ReviewRow& r) {
    std::string who = r.decided_by.empty() ? "the system (its run was cancelled)" : r.decided_by;
    return FailedPreconditionError(
        "review " + review_id + " was already decided: " + r.status + " by " + who +
        (r.decided_at.empty() ? "" : " at " + r.decided_at) + "; reload the review queue");
  };
  if (review.status != "pending") return already_decided(review);

  const std::string now_iso = IsoFromMs(NowMs());
  const json recorded = {{"decision", decision}, {"values", values}, {"comment", comment}};
  // Conditional on pending, so of two people deciding at once only one wins
  // (on PostgreSQL the second waits for the row and then matches nothing).
  QUARRY_ASSIGN_OR_RETURN(int64_t changed,
                          tx.Exec(kDecideReview, {org_id, review_id, decision, JsonText(recorded),
                                                  decided_by, now_iso}));
  if (changed == 0) {
    QUARRY_ASSIGN_OR_RETURN(ReviewRow current, GetReview(tx, org_id, review_id));
    return already_decided(current);
  }

  QUARRY_ASSIGN_OR_RETURN(store::Rows run_rows, tx.Query(kWaitingState, {review.run_id}));
  if (run_rows.empty()) return RunNotFound(review.run_id);
  if (run_rows.rows[0].Text(1) != "waiting_review") {
    return FailedPreconditionError("run " + review.run_id + " of review " + review_id + " is " +
                                   run_rows.rows[0].Text(1) +
                                   ", not waiting for review; the decision has no run to resume");
  }
  json state = ParseJson(run_rows.rows[0], 0, json::object());
  if (!state.is_object()) state = json::object();
  state["review"] = {{"review_id", review_id},
                     {"decision", decision},
                     {"values", values},
                     {"comment", comment},
                     {"decided_by", decided_by}};
  // A rejected run is queued too: the executor resumes it to end it (and run
  // whatever the definition does on rejection).
  QUARRY_ASSIGN_OR_RETURN(int64_t requeued,
                          tx.Exec(kRequeueReviewed, {review.run_id, NowMs(), JsonText(state)}));
  if (requeued == 0) {
    return FailedPreconditionError("run " + review.run_id +
                                   " stopped waiting for review while the decision was recorded; "
                                   "reload the run");
  }
  review.status = decision;
  review.decision = recorded;
  review.decided_by = decided_by;
  review.decided_at = now_iso;
  return review;
}

// --- alerts -------------------------------------------------------------------

Result<std::string> RunStore::InsertAlert(store::Tx& tx, AlertRow alert) {
  if (!OneOf(alert.delivery, {"none", "pending", "delivered", "failed"})) {
    return InvalidArgumentError("alert delivery must be none, pending, delivered or failed (got '" +
                                alert.delivery.substr(0, 32) + "')");
  }
  alert.id = NewId("alr");
  QUARRY_RETURN_IF_ERROR(
      tx.Exec(kInsertAlert,
              {alert.id, alert.org_id, alert.automation_id, alert.run_id, alert.step_id,
               alert.message, OptionalJson(alert.error), alert.delivery, IsoFromMs(NowMs())})
          .status());
  return alert.id;
}

Status RunStore::SetAlertDelivery(store::Tx& tx, const std::string& alert_id,
                                  const std::string& delivery) {
  if (!OneOf(delivery, {"none", "pending", "delivered", "failed"})) {
    return InvalidArgumentError("alert delivery must be none, pending, delivered or failed (got '" +
                                delivery.substr(0, 32) + "')");
  }
  QUARRY_ASSIGN_OR_RETURN(int64_t changed, tx.Exec(kSetAlertDelivery, {alert_id, delivery}));
  if (changed == 0) {
    return NotFoundError("alert " + alert_id +
                         " not found; it may have been deleted with its automation");
  }
  return Status::Ok();
}

Result<domain::Page<AlertRow>> RunStore::ListAlerts(store::Tx& tx, const std::string& org_id,
                                                    const std::string& automation_id,
                                                    const domain::PageRequest& page) {
  std::string sql = "SELECT " + std::string(kAlertColumns) + " FROM alerts WHERE org_id = $1";
  store::Params params = {org_id};
  if (!automation_id.empty()) {
    params.push_back(automation_id);
    sql += " AND automation_id = $2";
  }
  QUARRY_RETURN_IF_ERROR(
      domain::AppendKeysetPage(page, &sql, &params, domain::SortOrder::kDescending));
  QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query(sql, params));
  return domain::TakeKeysetPage<AlertRow>(rows, page.limit, AlertFromRow);
}

// --- monitoring -----------------------------------------------------------------

Result<RunStats> RunStore::AutomationStats(store::Tx& tx, const std::string& org_id,
                                           const std::string& automation_id, int64_t since_ms) {
  RunStats stats;
  const store::Params params = {org_id, automation_id, IsoFromMs(since_ms)};
  QUARRY_ASSIGN_OR_RETURN(store::Rows totals, tx.Query(kRunTotalsByStatus, params));
  int64_t finished = 0;
  for (const store::Row& row : totals.rows) {
    const std::string status = row.Text(0);
    const int64_t count = row.Int(1);
    stats.invocations += count;
    if (status == "succeeded") stats.succeeded += count;
    if (status == "failed") stats.failed += count;
    if (status == "waiting_review") stats.waiting_review += count;
    if (status == "running" || status == "queued") stats.running += count;
    if (OneOf(status, {"succeeded", "failed", "cancelled"})) finished += count;
    stats.input_tokens += row.Int(2);
    stats.output_tokens += row.Int(3);
    stats.cost_usd += row.Double(4);
  }
  QUARRY_ASSIGN_OR_RETURN(store::Rows latency_rows, tx.Query(kRunLatencies, params));
  std::vector<int64_t> latencies;
  latencies.reserve(latency_rows.size());
  for (const store::Row& row : latency_rows.rows) latencies.push_back(row.Int(0));
  QUARRY_ASSIGN_OR_RETURN(store::Rows hits, tx.Query(kRunCacheHits, params));
  stats.cache_hits = hits.empty() ? 0 : hits.rows[0].Int(0);
  FillRates(&stats, finished, std::move(latencies));
  return stats;
}

Result<RunStats> RunStore::AgentStats(store::Tx& tx, const std::string& org_id,
                                      const std::string& agent_id, int64_t since_ms) {
  RunStats stats;
  const store::Params params = {org_id, agent_id, IsoFromMs(since_ms)};
  QUARRY_ASSIGN_OR_RETURN(store::Rows totals, tx.Query(kAgentTotalsByStatus, params));
  int64_t finished = 0;
  for (const store::Row& row : totals.rows) {
    const std::string status = row.Text(0);
    const int64_t count = row.Int(1);
    stats.invocations += count;
    if (status == "succeeded") stats.succeeded += count;
    if (status == "failed" || status == "defaulted") stats.failed += count;
    if (status == "waiting_review") stats.waiting_review += count;
    if (OneOf(status, {"succeeded", "failed", "defaulted"})) finished += count;
    stats.input_tokens += row.Int(2);
    stats.output_tokens += row.Int(3);
    stats.cost_usd += row.Double(4);
    stats.cache_hits += row.Int(5);
  }
  QUARRY_ASSIGN_OR_RETURN(store::Rows latency_rows, tx.Query(kAgentLatencies, params));
  std::vector<int64_t> latencies;
  latencies.reserve(latency_rows.size());
  for (const store::Row& row : latency_rows.rows) latencies.push_back(row.Int(0));
  FillRates(&stats, finished, std::move(latencies));
  return stats;
}

}  // namespace quarry::engine
