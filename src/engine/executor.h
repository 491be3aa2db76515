#pragma once
// The executor: claims runs with leases and drives each through its program
// (engine.h states the durability contract). Internal to engine/.
//
// Threads: one claimer thread (claims batches while the node has capacity,
// renews leases, wakes on Wake() or every poll interval); a WorkPool for
// everything that blocks (transactions, rendering, parsing); Bedrock and
// webhook completions only post to that pool. A run is advanced by one pool
// thread at a time: each continuation is posted only after the previous one
// ended.
//
// Thread safety: thread-safe.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/metrics.h"
#include "domain/records.h"
#include "engine/call_cache.h"
#include "engine/engine.h"
#include "engine/expressions.h"
#include "engine/pricing.h"
#include "engine/programs.h"
#include "engine/provider_clients.h"
#include "engine/rate_limiter.h"
#include "engine/run_store.h"
#include "engine/webhook.h"
#include "engine/work_queue.h"

namespace quarry::engine {

struct RunExec;

class Executor {
 public:
  struct Deps {
    std::shared_ptr<store::Database> db;
    std::shared_ptr<const Clock> clock;
    std::shared_ptr<MetricsRegistry> metrics;  // may be null
    std::shared_ptr<ProviderClients> provider_clients;
    RunStore* store = nullptr;
    ProgramCache* programs = nullptr;
    CallCache* cache = nullptr;
    RateLimiter* limiter = nullptr;
    WebhookSender* webhooks = nullptr;
    const PriceTable* prices = nullptr;
    // Enqueues the runs a record change made by a step triggers (cascade),
    // inside the step's transaction.
    std::function<Status(store::Tx&, const domain::RecordChange&, int depth, const std::string& from_automation)>
        enqueue_triggered;
    std::function<void(const RunEvent&)> emit;
    // How many listeners `emit` has (nullptr: assume some). Events are only
    // built while someone listens: a run's JSON costs more than its step.
    const std::atomic<int>* listeners = nullptr;
  };
  Executor(Deps deps, const EngineOptions& options, std::string node_id);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  void Start();
  // New runs may be claimable (after a commit that enqueued some).
  void Wake();
  // Executes this run here (test runs, on-demand calls): claims it directly.
  void ClaimAndRun(const std::string& run_id);
  // Stops claiming; waits up to `timeout` for runs in flight; releases the
  // rest to the queue; returns when no callback can touch the executor.
  void Drain(std::chrono::milliseconds timeout);

  const std::string& node_id() const { return node_id_; }
  size_t in_flight() const;
  size_t queued_locally() const;

  // Finished runs since start (any node's run this node finished).
  void WaitForChange(std::chrono::milliseconds timeout);

 private:
  friend struct RunExec;
  void ClaimLoop();
  void Admit(RunRow row);
  void StartRun(const std::shared_ptr<RunExec>& run);
  void Post(const std::shared_ptr<RunExec>& run, std::function<void(RunExec&)> work);
  void Advance(const std::shared_ptr<RunExec>& run);
  bool Prepare(RunExec& run);

  // Steps.
  void RunBranch(RunExec& run, const Instruction& instruction);
  bool RunSearch(RunExec& run, const Step& step);
  bool RunRecordEffect(RunExec& run, const Step& step);
  bool RunReview(RunExec& run, const Step& step);
  void StartNotification(const std::shared_ptr<RunExec>& run, const Step& step);
  void StartCall(const std::shared_ptr<RunExec>& run, const Step& step);
  void Invoke(const std::shared_ptr<RunExec>& run);
  // True when run events have a listener (see Deps::listeners).
  bool Listening() const {
    return deps_.emit && (deps_.listeners == nullptr || deps_.listeners->load(std::memory_order_relaxed) > 0);
  }
  // Sends the admitted call to Bedrock; its answer comes back through Post.
  void Send(const std::shared_ptr<RunExec>& run);
  // The common start of every Bedrock answer: releases the call's handle and
  // counts its time; an error (non-null) goes to the step's retry policy and
  // the result is false.
  bool CallArrived(const std::shared_ptr<RunExec>& run, const bedrock::BedrockError* error);
  void OnCallResult(const std::shared_ptr<RunExec>& run, Result<nlohmann::json> result, nlohmann::json error_json,
                    bool retryable, const std::string& error_class, std::chrono::milliseconds retry_after);
  void CompleteCall(const std::shared_ptr<RunExec>& run, const Step& step, const nlohmann::json& result,
                    bool cache_hit);
  void FailStep(const std::shared_ptr<RunExec>& run, const Step& step, nlohmann::json error);
  void NoteCallAttempts(RunExec& run, const Step& step);

  // Journal and end.
  void PushStep(RunExec& run, const Step* step, std::string_view type, std::string status, nlohmann::json input,
                nlohmann::json output, nlohmann::json error = nullptr);
  bool CommitPending(RunExec& run);
  void Finish(RunExec& run, const std::string& status, nlohmann::json error, bool alert);
  // After the run's end committed: metrics, the run_finished event, and the
  // run leaves this node.
  void AnnounceFinished(RunExec& run, const std::string& status, const nlohmann::json& outputs,
                        const nlohmann::json& error);
  void Escalate(RunExec& run, const Step& step, const std::string& reason, nlohmann::json proposed);
  void Drop(RunExec& run, const std::string& why);
  void Retire(RunExec& run);
  nlohmann::json StateJson(const RunExec& run) const;
  void DeliverAlert(const RunExec& run, const std::string& alert_id, const nlohmann::json& body);

  Deps deps_;
  const EngineOptions options_;
  const std::string node_id_;
  WorkPool pool_;
  DelayTimer timer_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable changed_;
  bool woken_ = false;
  bool stopping_ = false;  // no more claims
  bool released_ = false;  // drained: every continuation stops
  std::unordered_map<std::string, std::shared_ptr<RunExec>> active_;        // run id ->
  std::map<std::string, int> running_per_automation_;                      // slots used
  std::map<std::string, std::deque<std::shared_ptr<RunExec>>> waiting_;    // over the cap
  size_t waiting_count_ = 0;
  std::atomic<int64_t> outstanding_{0};  // posted continuations and async calls not yet back
  std::thread claimer_;
};

}  // namespace quarry::engine
