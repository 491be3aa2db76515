#pragma once
// The engine's durable state, on SQLite and PostgreSQL alike (migrations
// 400-499): automations with drafts and immutable published versions, runs
// with leases, the step journal, the human review queue and alerts.
//
// Tables (all keyed by org_id first where people list them):
//   automations          id "aut_", org, app, object id, name, status
//                        (active | paused), draft (JSON text), published_version
//                        (NULL until first publish), trigger_kind of the
//                        published version, version (ETag), timestamps
//   automation_versions  (automation_id, version) -> definition JSON, who, when
//   runs                 id "run_", org, automation, version, app, record id,
//                        mode (live | test), status, trigger JSON, state JSON
//                        (position + step outputs so far), outputs, error,
//                        lease owner / token / expiry (epoch ms), available_at
//                        (epoch ms), claims, dedupe_key (UNIQUE when set),
//                        totals (tokens, cost, bedrock ms), timestamps
//   run_steps            (run_id, seq) -> one executed step: step id, type,
//                        status, attempts, rendered input (no secrets), output,
//                        request ids, latency, bedrock time, tokens, cost,
//                        cache hit, error (with troubleshooting), timestamps
//   reviews              id "rev_", org, run, automation, step id, status
//                        (pending | approved | edited | rejected), reason,
//                        proposed JSON, context JSON, decision JSON, who, when
//   alerts               id "alr_", org, automation, run, step id, message,
//                        error JSON, delivery status, created_at
//
// Run statuses: queued -> running -> succeeded | failed | cancelled, with
// running -> waiting_review -> queued (after a decision) and running -> queued
// (released: drain, throttling).
//
// Leases and exactly-once effects: ClaimRuns gives each claimed run a new
// random lease token. Every later write of a run's state (CommitProgress,
// FinishRun, ReleaseRun, EscalateToReview) checks owner and token inside the
// same transaction and fails with Aborted ("lease lost") when another worker
// has taken the run since; the caller's effects in that transaction (record
// updates) roll back with it. A run whose lease expired is claimable again
// and resumes from its last committed position, so an effect commits once.
// On PostgreSQL the claim uses FOR UPDATE SKIP LOCKED, so any number of nodes
// claim disjoint runs; on SQLite the single writer serializes claims.
//
// Times are epoch milliseconds from the injected Clock (lease expiry compares
// with the database caller's clock: nodes' clocks must agree within the lease
// margin).
//
// Thread safety: RunStore is thread-safe; the Tx functions are stateless.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
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
#include "store/migrations.h"

namespace quarry::engine {

// Migrations 400-499.
std::vector<store::Migration> EngineMigrations();
// Everything a server's database needs: domain::AllMigrations() + EngineMigrations().
std::vector<store::Migration> AllServerMigrations();

// ---------------------------------------------------------------------------
// Automations
// ---------------------------------------------------------------------------

struct AutomationRow {
  std::string id{};  // "aut_..."
  std::string org_id{};
  std::string app_id{};
  std::string object_id{};
  std::string name{};
  std::string status = "active";            // active | paused
  nlohmann::json draft = nlohmann::json::object();
  std::optional<int64_t> published_version{};
  std::string trigger_kind{};               // of the published version, "" before
  int64_t version = 1;                      // ETag of the row
  std::string created_by{}, created_at{}, updated_at{};

  // {"id","app_id","object_id","name","status","draft","published_version",
  //  "trigger","version","created_by","created_at","updated_at"}
  nlohmann::json ToJson() const;
};

struct AutomationVersion {
  std::string automation_id{};
  int64_t version = 0;
  nlohmann::json definition = nlohmann::json::object();
  std::string published_by{}, published_at{};
};

// A published automation that a record write may trigger.
struct TriggerCandidate {
  std::string org_id{};
  std::string automation_id{};
  int64_t version = 0;
  std::string app_id{};
  std::string trigger_kind{};
};

// ---------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------

struct RunRow {
  std::string id{};  // "run_..."
  std::string org_id{};
  std::string automation_id{};
  int64_t automation_version = 0;
  std::string app_id{};
  std::string record_id{};  // "" for runs without a record
  std::string mode = "live";   // live | test
  std::string status{};        // queued | running | waiting_review | succeeded | failed | cancelled
  nlohmann::json trigger = nlohmann::json::object();
  nlohmann::json state = nlohmann::json::object();    // {"position": n, "steps": {...}, ...} (executor's)
  nlohmann::json outputs = nlohmann::json::object();
  nlohmann::json error{};                              // null or {"code","message","step",...}
  std::string lease_owner{};
  std::string lease_token{};
  int64_t lease_expires_at_ms = 0;
  int64_t available_at_ms = 0;
  int64_t claims = 0;
  int64_t input_tokens = 0, output_tokens = 0;
  double cost_usd = 0;
  int64_t bedrock_ms = 0;
  std::string created_at{}, started_at{}, finished_at{};

  // The run for the API (no lease token).
  nlohmann::json ToJson() const;
};

struct NewRun {
  std::string org_id{};
  std::string automation_id{};
  int64_t automation_version = 0;
  std::string app_id{};
  std::string record_id{};
  std::string mode = "live";
  nlohmann::json trigger = nlohmann::json::object();
  std::string dedupe_key{};  // "" = none; else a duplicate is not inserted
  int64_t available_at_ms = 0;  // 0 = now
};

struct StepRow {
  std::string run_id{};
  int64_t seq = 0;  // 0, 1, 2 ... in execution order within the run
  std::string step_id{};
  std::string type{};
  std::string target{};  // agent connection id (run_agent_task) or service id (ai_prompt), else ""
  std::string status{};  // succeeded | failed | skipped | defaulted | waiting_review
  int attempts = 0;
  nlohmann::json input = nlohmann::json::object();   // rendered, without secrets
  nlohmann::json output = nlohmann::json::object();
  std::vector<std::string> request_ids{};
  int64_t latency_ms = 0;     // whole step
  int64_t bedrock_ms = 0;     // waiting on Bedrock (all attempts)
  int64_t engine_us = 0;      // engine's own time (latency minus Bedrock and queue waits)
  int64_t input_tokens = 0, output_tokens = 0;
  double cost_usd = 0;
  bool cache_hit = false;
  int retries = 0;
  nlohmann::json error{};     // null or the error JSON (code, message, hint, troubleshooting)
  std::string started_at{}, finished_at{};

  nlohmann::json ToJson() const;
};

// A claimed run: the row (with the fresh lease token) ready to execute.
using ClaimedRun = RunRow;

// The lease a worker holds on a run; every state write checks it.
struct Lease {
  std::string run_id{};
  std::string owner{};
  std::string token{};
};

// ---------------------------------------------------------------------------
// Reviews and alerts
// ---------------------------------------------------------------------------

struct ReviewRow {
  std::string id{};  // "rev_..."
  std::string org_id{};
  std::string run_id{};
  std::string automation_id{};
  std::string step_id{};
  std::string status = "pending";  // pending | approved | edited | rejected
  std::string reason{};
  nlohmann::json proposed = nlohmann::json::object();
  nlohmann::json context = nlohmann::json::object();   // record, trigger, step outputs so far
  nlohmann::json decision{};                            // null or {"decision","values","comment"}
  std::string decided_by{}, decided_at{}, created_at{};

  nlohmann::json ToJson() const;
};

struct AlertRow {
  std::string id{};  // "alr_..."
  std::string org_id{};
  std::string automation_id{};
  std::string run_id{};
  std::string step_id{};
  std::string message{};
  nlohmann::json error{};
  std::string delivery = "none";  // none | pending | delivered | failed
  std::string created_at{};

  nlohmann::json ToJson() const;
};

struct RunFilter {
  std::string automation_id{};  // "" = any
  std::string status{};         // "" = any
  std::string record_id{};      // "" = any
  std::string mode{};           // "" = any
};

// Statistics over a time window. For an automation: its runs created in the
// window; "finished" = succeeded, failed or cancelled; running counts queued
// and running runs (in progress); latency percentiles (nearest rank) over the
// newest 10,000 finished runs. For an agent: its run_agent_task steps started
// in the window (skipped ones excluded); failed includes "defaulted" steps;
// finished = succeeded + failed; latency is the step's.
struct RunStats {
  int64_t invocations = 0;  // runs (steps) started in the window
  int64_t succeeded = 0, failed = 0, waiting_review = 0, running = 0;
  double success_rate = 0, failure_rate = 0;  // over finished runs; 0 when none
  int64_t latency_p50_ms = 0, latency_p95_ms = 0;  // run latency (created -> finished)
  int64_t input_tokens = 0, output_tokens = 0;
  double cost_usd = 0;
  int64_t cache_hits = 0;
  nlohmann::json ToJson() const;
};

// ---------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------

class RunStore {
 public:
  RunStore(std::shared_ptr<store::Database> db, std::shared_ptr<const Clock> clock);

  store::Database& db() { return *db_; }

  // --- automations (authorization is the caller's) ------------------------
  Result<AutomationRow> CreateAutomation(store::Tx& tx, AutomationRow row);
  // NotFound when absent (or in another organization).
  Result<AutomationRow> GetAutomation(store::Tx& tx, const std::string& org_id, const std::string& id);
  // Oldest first (created_at, id).
  Result<domain::Page<AutomationRow>> ListAutomations(store::Tx& tx, const std::string& org_id,
                                                      const std::string& app_id,  // "" = all
                                                      const domain::PageRequest& page);
  // Replaces name/status/draft; bumps version. Aborted when expected_version
  // (when set) differs.
  Result<AutomationRow> UpdateAutomation(store::Tx& tx, const AutomationRow& row,
                                         std::optional<int64_t> expected_version);
  // Deletes it with its versions, runs (and their steps and reviews) and
  // alerts; NotFound when absent.
  Status DeleteAutomation(store::Tx& tx, const std::string& org_id, const std::string& id);
  // Stores the definition as the next version and points the automation at it.
  Result<AutomationVersion> Publish(store::Tx& tx, const std::string& org_id, const std::string& automation_id,
                                    const nlohmann::json& definition, const std::string& trigger_kind,
                                    const std::string& published_by);
  Result<AutomationVersion> GetVersion(store::Tx& tx, const std::string& automation_id, int64_t version);
  // Active, published automations on `object_id` whose trigger kind is one of
  // record_created / record_updated (both returned; the caller filters).
  Result<std::vector<TriggerCandidate>> RecordTriggerCandidates(store::Tx& tx, const std::string& object_id);
  // Active, published automations with a schedule trigger (all organizations).
  Result<std::vector<TriggerCandidate>> ScheduledAutomations(store::Tx& tx);

  // --- runs --------------------------------------------------------------
  // Inserts a queued run; returns its id, or "" when dedupe_key matched an
  // existing run (nothing inserted).
  Result<std::string> EnqueueRun(store::Tx& tx, const NewRun& run);
  // Claims up to `max` runs that are queued and available, or running with an
  // expired lease, oldest available first; sets status running, owner, a new
  // token, expiry now + lease, started_at (first claim), claims + 1.
  Result<std::vector<ClaimedRun>> ClaimRuns(const std::string& owner, int max, std::chrono::milliseconds lease);
  // Like ClaimRuns for one run (a test run or an on-demand call executed by
  // the node that received it). NotFound / FailedPrecondition when it is not claimable.
  Result<ClaimedRun> ClaimRun(const std::string& run_id, const std::string& owner, std::chrono::milliseconds lease);
  // Extends the leases this owner still holds; returns the run ids whose lease
  // was lost (taken by another worker or finished elsewhere).
  Result<std::vector<std::string>> RenewLeases(const std::string& owner, const std::vector<Lease>& leases,
                                               std::chrono::milliseconds lease);

  // Inside the caller's transaction (so effects commit with the journal):
  // Aborted "lease lost" unless the lease still holds.
  Status CheckLease(store::Tx& tx, const Lease& lease);
  // Appends journal rows and saves the run's state (lease checked).
  Status CommitProgress(store::Tx& tx, const Lease& lease, const std::vector<StepRow>& steps,
                        const nlohmann::json& state, const RunRow& totals);
  // Ends the run: status succeeded | failed | cancelled, outputs, error,
  // totals, finished_at; clears the lease (lease checked).
  Status FinishRun(store::Tx& tx, const Lease& lease, const std::string& status, const nlohmann::json& outputs,
                   const nlohmann::json& error, const RunRow& totals);
  // Back to queued, available at `available_at_ms` (lease checked, cleared).
  Status ReleaseRun(store::Tx& tx, const Lease& lease, int64_t available_at_ms);
  // Parks the run in waiting_review and inserts the review row (lease checked,
  // cleared); returns the review id.
  Result<std::string> EscalateToReview(store::Tx& tx, const Lease& lease, ReviewRow review);

  Result<RunRow> GetRun(store::Tx& tx, const std::string& org_id, const std::string& run_id);
  Result<std::vector<StepRow>> GetSteps(store::Tx& tx, const std::string& run_id);
  // Newest first.
  Result<domain::Page<RunRow>> ListRuns(store::Tx& tx, const std::string& org_id, const RunFilter& filter,
                                        const domain::PageRequest& page);
  // Cancels a queued / waiting_review run (FailedPrecondition otherwise).
  Status CancelRun(store::Tx& tx, const std::string& org_id, const std::string& run_id);
  // Runs of an automation by status (queued, running, ...): for drain and progress.
  Result<std::map<std::string, int64_t>> CountRunsByStatus(store::Tx& tx, const std::string& org_id,
                                                           const std::string& automation_id);

  // --- review queue -------------------------------------------------------
  // Oldest first (queue order). Cancelling a run rejects its pending reviews
  // (decided_by "", comment "the run was cancelled").
  Result<domain::Page<ReviewRow>> ListReviews(store::Tx& tx, const std::string& org_id,
                                              const std::string& status,  // "" = any
                                              const domain::PageRequest& page);
  Result<ReviewRow> GetReview(store::Tx& tx, const std::string& org_id, const std::string& review_id);
  // Records the decision and requeues the run (status queued, the decision
  // in the run's state under "review"). FailedPrecondition when the review
  // is no longer pending.
  Result<ReviewRow> DecideReview(store::Tx& tx, const std::string& org_id, const std::string& review_id,
                                 const std::string& decision,  // approved | edited | rejected
                                 const nlohmann::json& values, const std::string& comment,
                                 const std::string& decided_by);

  // --- alerts -------------------------------------------------------------
  Result<std::string> InsertAlert(store::Tx& tx, AlertRow alert);
  Status SetAlertDelivery(store::Tx& tx, const std::string& alert_id, const std::string& delivery);
  // Newest first.
  Result<domain::Page<AlertRow>> ListAlerts(store::Tx& tx, const std::string& org_id,
                                            const std::string& automation_id,  // "" = any
                                            const domain::PageRequest& page);

  // --- monitoring ---------------------------------------------------------
  // Over runs created at or after `since_ms`, for one automation.
  Result<RunStats> AutomationStats(store::Tx& tx, const std::string& org_id, const std::string& automation_id,
                                   int64_t since_ms);
  // Over run_agent_task steps of one agent connection started at or after since_ms
  // (step latency, not run latency).
  Result<RunStats> AgentStats(store::Tx& tx, const std::string& org_id, const std::string& agent_id,
                              int64_t since_ms);

  int64_t NowMs() const;

 private:
  std::shared_ptr<store::Database> db_;
  std::shared_ptr<const Clock> clock_;
};

}  // namespace quarry::engine
