#pragma once
// The automation engine: what the API and the CLI talk to. It owns the
// executor (workers that claim runs and execute their steps), the trigger
// hook that enqueues runs in the same transaction as a record write, the
// schedule ticker, the call cache, the rate limiter, the price table and the
// webhook sender; and it implements the automation use cases with their
// authorization:
//   - builders and admins create, edit, validate, publish, pause and delete
//     automations, and start test runs;
//   - every member of the organization reads automations, runs, steps,
//     statistics, alerts and the review queue, invokes on-demand automations
//     and decides reviews.
//
// Durability contract (run_store.h): a run is enqueued atomically with the
// record write that triggers it; a worker claims it with a lease; pure steps
// (Bedrock calls, searches, conditions) run in memory; every effect (record
// create/update, review escalation, notification result) commits together
// with the journal of the steps before it and the run's new position, under
// the lease check. A crash loses at most the pure steps since the last
// commit, which are redone (so Bedrock may see a call twice, never a record
// an update twice). A graceful Drain() stops claiming, lets runs in flight
// reach their next commit or finish within the timeout, and releases the
// rest back to the queue.
//
// Thread safety: thread-safe.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/metrics.h"
#include "common/status.h"
#include "domain/fields.h"
#include "domain/principal.h"
#include "domain/records.h"
#include "engine/automation_spec.h"
#include "engine/call_cache.h"
#include "engine/pricing.h"
#include "engine/provider_clients.h"
#include "engine/rate_limiter.h"
#include "engine/run_store.h"
#include "store/database.h"

namespace quarry::engine {

struct EngineOptions {
  std::string node_id{};            // lease owner name; "" = host-pid-random
  bool run_workers = true;          // false: this node only enqueues (API-only)
  int blocking_threads = 16;        // database work of steps (SQLite writes block)
  int max_in_flight = 20'000;       // runs claimed and not finished, per node
  int claim_batch = 256;
  std::chrono::milliseconds lease{30'000};
  std::chrono::milliseconds poll_interval{200};
  RateBudget default_budget{};                  // per provider/model key; 0 = unlimited
  std::map<std::string, RateBudget> budgets{};  // "<provider_id>/<model or agent id>" -> budget
  PriceTable prices = PriceTable::BuiltIn();
  size_t cache_max_entries = 100'000;
};

struct EngineDeps {
  std::shared_ptr<store::Database> db;
  std::shared_ptr<const Clock> clock;
  std::shared_ptr<MetricsRegistry> metrics;              // may be null
  std::shared_ptr<ProviderClients> provider_clients;
  std::shared_ptr<domain::RecordService> records;        // the engine installs its write hook
  std::shared_ptr<net::HttpClient> http;                 // webhooks; null: the engine makes one
};

// Something that happened to a run, for live progress (SSE, `quarry runs watch`).
// run_queued is sent after the enqueuing transaction commits, so it never
// names a run that was rolled back; a worker that happens to poll in that
// instant can start the run first, so a watcher of many runs may rarely see a
// run's run_started just before its run_queued.
struct RunEvent {
  std::string org_id{};
  std::string automation_id{};
  std::string run_id{};
  std::string kind{};  // run_queued | run_started | step_finished | run_waiting_review | run_finished
  nlohmann::json data = nlohmann::json::object();  // the run (run_*) or the step (step_finished)
};

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> Create(EngineDeps deps, EngineOptions options);
  ~Engine();  // Drain(0) if still running
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Starts the workers and the schedule ticker (when run_workers).
  Status Start();
  // Stops claiming; waits up to `timeout` for runs in flight; releases the rest.
  void Drain(std::chrono::milliseconds timeout);

  RunStore& store();

  // --- automations --------------------------------------------------------
  // `definition` is saved as the draft; it must parse as JSON but may be
  // incomplete (validation runs on publish, or via Validate). Create also
  // needs "name" and "object" (the object of the app). PermissionDenied for
  // members; NotFound for an unknown app/object.
  Result<AutomationRow> CreateAutomation(const domain::Principal& actor, const std::string& app_ref,
                                         const nlohmann::json& definition, const std::string& request_id);
  // Replaces the draft and/or name/status ("active" | "paused"); Aborted on
  // an If-Match mismatch.
  Result<AutomationRow> UpdateAutomation(const domain::Principal& actor, const std::string& automation_id,
                                         const nlohmann::json& patch, std::optional<int64_t> expected_version,
                                         const std::string& request_id);
  Status DeleteAutomation(const domain::Principal& actor, const std::string& automation_id,
                          const std::string& request_id);
  // Validates a definition for an app (every problem in *errors).
  Status Validate(const domain::Principal& actor, const std::string& app_id, const nlohmann::json& definition,
                  domain::FieldErrors* errors);
  // Validates the draft and publishes it as the next version.
  Result<AutomationVersion> Publish(const domain::Principal& actor, const std::string& automation_id,
                                    domain::FieldErrors* errors, const std::string& request_id);

  // --- runs ---------------------------------------------------------------
  // A test run of the draft (or the published version) on a sample record:
  // Bedrock is really called; record changes, notifications and reviews are
  // shown in the steps' outputs ("would_apply") but not applied. Waits up to
  // `wait` for the run to finish and returns it (status running if not).
  Result<RunRow> TestRun(const domain::Principal& actor, const std::string& automation_id,
                         const std::string& record_ref, bool use_draft, std::chrono::milliseconds wait);
  // Runs an on-demand automation with inputs (and optionally a record);
  // waits up to `wait`. The run's outputs are the automation's "outputs".
  // InvalidArgument (with *errors) for missing/mistyped inputs.
  Result<RunRow> Invoke(const domain::Principal& actor, const std::string& automation_id,
                        const nlohmann::json& inputs, const std::string& record_ref,
                        const std::string& idempotency_key, std::chrono::milliseconds wait,
                        domain::FieldErrors* errors);
  // Cancels a queued run or one waiting for review (its open review is
  // rejected); builders and admins only, audited. FailedPrecondition for a
  // running or finished run.
  Status CancelRun(const domain::Principal& actor, const std::string& run_id, const std::string& request_id);
  // A decision on a pending review: "approved" (the proposed values),
  // "edited" (the proposed values replaced by `values`), "rejected" (the run
  // ends as cancelled... with the comment). The run continues on some node.
  Result<ReviewRow> DecideReview(const domain::Principal& actor, const std::string& review_id,
                                 const std::string& decision, const nlohmann::json& values,
                                 const std::string& comment, domain::FieldErrors* errors);

  // --- live progress ------------------------------------------------------
  using RunListener = std::function<void(const RunEvent&)>;
  // Events of one organization, filtered by automation and/or run ("" = all).
  // Listeners run on engine threads and must not block.
  uint64_t Subscribe(const std::string& org_id, const std::string& automation_id, const std::string& run_id,
                     RunListener listener);
  void Unsubscribe(uint64_t subscription);

  // {"node","in_flight","queued_locally","cache":{...},"limits":{...}}
  nlohmann::json StatusJson() const;
  const PriceTable& prices() const;

  class Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace quarry::engine
