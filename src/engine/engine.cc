#include "engine/engine.h"

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <thread>
#include <utility>

#include <spdlog/spdlog.h>

#include "common/crypto.h"
#include "common/encoding.h"
#include "domain/agent_connections.h"
#include "domain/audit.h"
#include "engine/executor.h"
#include "engine/expressions.h"
#include "engine/programs.h"
#include "engine/webhook.h"

namespace quarry::engine {

using nlohmann::json;
using Millis = std::chrono::milliseconds;

namespace {

constexpr Millis kScheduleTick{10'000};

Status RequireBuilder(const domain::Principal& actor, std::string_view what) {
  if (actor.CanBuild()) return Status::Ok();
  return PermissionDeniedError("only builders and admins can " + std::string(what) +
                                  "; ask an admin of your organization for the builder role");
}

std::string DefaultNodeId() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return std::string(host[0] != '\0' ? host : "node") + "-" + std::to_string(getpid()) + "-" +
         HexEncode(SecureRandomBytes(3));
}

bool IsTerminal(const std::string& status) {
  return status == "succeeded" || status == "failed" || status == "cancelled" || status == "waiting_review";
}

}  // namespace

class Engine::Impl {
 public:
  Impl(EngineDeps deps, EngineOptions options)
      : deps_(std::move(deps)),
        options_(std::move(options)),
        node_id_(options_.node_id.empty() ? DefaultNodeId() : options_.node_id),
        store_(deps_.db, deps_.clock),
        programs_(store_),
        cache_(*deps_.clock, CallCache::Options{.max_entries = options_.cache_max_entries}),
        limiter_(*deps_.clock, options_.default_budget),
        webhooks_(deps_.http, *deps_.clock) {
    for (const auto& [key, budget] : options_.budgets) limiter_.SetBudget(key, budget);
    Executor::Deps executor_deps;
    executor_deps.db = deps_.db;
    executor_deps.clock = deps_.clock;
    executor_deps.metrics = deps_.metrics;
    executor_deps.provider_clients = deps_.provider_clients;
    executor_deps.store = &store_;
    executor_deps.programs = &programs_;
    executor_deps.cache = &cache_;
    executor_deps.limiter = &limiter_;
    executor_deps.webhooks = &webhooks_;
    executor_deps.prices = &options_.prices;
    executor_deps.enqueue_triggered = [this](store::Tx& tx, const domain::RecordChange& change, int depth,
                                             const std::string& from) {
      return EnqueueForChange(tx, change, depth, from);
    };
    executor_deps.emit = [this](const RunEvent& event) { Emit(event); };
    executor_deps.listeners = &listener_count_;
    executor_ = std::make_unique<Executor>(std::move(executor_deps), options_, node_id_);
    if (deps_.records) {
      deps_.records->SetWriteHook([this](store::Tx& tx, const domain::RecordChange& change) {
        return EnqueueForChange(tx, change, 0, "");
      });
    }
  }

  ~Impl() { Drain(Millis(0)); }

  Status Start() {
    if (!options_.run_workers) return Status::Ok();
    executor_->Start();
    std::lock_guard<std::mutex> lock(schedule_mutex_);
    if (!schedule_thread_.joinable() && !schedule_stopping_) {
      schedule_thread_ = std::thread([this] { ScheduleLoop(); });
    }
    return Status::Ok();
  }

  void Drain(Millis timeout) {
    {
      std::lock_guard<std::mutex> lock(schedule_mutex_);
      schedule_stopping_ = true;
    }
    schedule_wake_.notify_all();
    if (schedule_thread_.joinable()) schedule_thread_.join();
    if (deps_.records) deps_.records->SetWriteHook(nullptr);
    executor_->Drain(timeout);
  }

  // --- triggers -------------------------------------------------------------

  // Runs inside the record write's transaction: enqueues a run for every
  // published automation the change triggers. An automation that can no
  // longer be loaded is skipped with a warning (a broken automation must not
  // block record writes).
  Status EnqueueForChange(store::Tx& tx, const domain::RecordChange& change, int depth, const std::string& from) {
    if (!change.after) return Status::Ok();
    const domain::Record& record = *change.after;
    QUARRY_ASSIGN_OR_RETURN(std::vector<TriggerCandidate> candidates,
                            store_.RecordTriggerCandidates(tx, record.object_id));
    int enqueued = 0;
    for (const TriggerCandidate& candidate : candidates) {
      if (candidate.automation_id == from) continue;  // no self-trigger
      const bool created = change.kind == domain::RecordChangeKind::kCreated;
      if (candidate.trigger_kind != (created ? "record_created" : "record_updated")) continue;
      Result<std::shared_ptr<const LoadedProgram>> loaded =
          programs_.Get(tx, record.org_id, candidate.app_id, candidate.automation_id, candidate.version, nullptr);
      if (!loaded.ok()) {
        spdlog::warn("engine: automation {} not triggered for record {}: {}", candidate.automation_id, record.id,
                     loaded.status().ToString());
        continue;
      }
      const Trigger& trigger = loaded.value()->program.spec->trigger;
      if (!created && !trigger.fields.empty()) {
        bool relevant = false;
        for (const std::string& field : trigger.fields) {
          relevant = relevant || std::binary_search(change.changed_fields.begin(), change.changed_fields.end(), field);
        }
        if (!relevant) continue;
      }
      json trigger_json{{"kind", created ? "record_created" : "record_updated"},
                        {"changed_fields", change.changed_fields},
                        {"before", change.before_values}};
      if (trigger.where) {
        Scope scope;
        scope.record = RecordScopeJson(record);
        scope.trigger = trigger_json;
        Result<bool> matched = Evaluate(*trigger.where, scope);
        if (!matched.ok() || !matched.value()) continue;
      }
      if (depth > 0) trigger_json["depth"] = depth;
      NewRun run;
      run.org_id = record.org_id;
      run.automation_id = candidate.automation_id;
      run.automation_version = candidate.version;
      run.app_id = candidate.app_id;
      run.record_id = record.id;
      run.trigger = std::move(trigger_json);
      QUARRY_ASSIGN_OR_RETURN(std::string run_id, store_.EnqueueRun(tx, run));
      QUARRY_RETURN_IF_ERROR(AnnounceQueued(tx, record.org_id, run_id));
      ++enqueued;
    }
    // Woken once the runs are committed: before that a worker finds nothing.
    if (enqueued > 0) tx.AfterCommit([this] { executor_->Wake(); });
    return Status::Ok();
  }

  void ScheduleLoop() {
    for (;;) {
      EnqueueScheduled();
      std::unique_lock<std::mutex> lock(schedule_mutex_);
      schedule_wake_.wait_for(lock, kScheduleTick, [this] { return schedule_stopping_; });
      if (schedule_stopping_) return;
    }
  }

  // One run per automation per schedule slot; the dedupe key makes that hold
  // across nodes.
  void EnqueueScheduled() {
    const int64_t now_ms = store_.NowMs();
    int enqueued = 0;
    Status status = deps_.db->Write([&](store::Tx& tx) -> Status {
      enqueued = 0;
      QUARRY_ASSIGN_OR_RETURN(std::vector<TriggerCandidate> scheduled, store_.ScheduledAutomations(tx));
      for (const TriggerCandidate& candidate : scheduled) {
        Result<std::shared_ptr<const LoadedProgram>> loaded =
            programs_.Get(tx, candidate.org_id, candidate.app_id, candidate.automation_id, candidate.version, nullptr);
        if (!loaded.ok()) continue;
        const int64_t every_ms = std::max<int64_t>(60, loaded.value()->program.spec->trigger.every_seconds) * 1000;
        const int64_t slot = now_ms / every_ms;
        NewRun run;
        run.org_id = candidate.org_id;
        run.automation_id = candidate.automation_id;
        run.automation_version = candidate.version;
        run.app_id = candidate.app_id;
        run.trigger = json{{"kind", "schedule"}, {"slot", slot}};
        run.dedupe_key = "schedule:" + candidate.automation_id + ":" + std::to_string(slot);
        QUARRY_ASSIGN_OR_RETURN(std::string id, store_.EnqueueRun(tx, run));
        QUARRY_RETURN_IF_ERROR(AnnounceQueued(tx, candidate.org_id, id));
        if (!id.empty()) ++enqueued;
      }
      return Status::Ok();
    });
    if (!status.ok()) spdlog::warn("engine: scheduling runs failed: {}", status.ToString());
    if (enqueued > 0) executor_->Wake();
  }

  // --- events ---------------------------------------------------------------

  // Sends run_queued for a run just enqueued in `tx` (none for an empty id:
  // a duplicate that was not enqueued) once `tx` has committed, so a watcher
  // never hears of a run that was rolled back. Without watchers nothing is
  // read.
  Status AnnounceQueued(store::Tx& tx, const std::string& org_id, const std::string& run_id) {
    if (run_id.empty() || listener_count_.load(std::memory_order_relaxed) == 0) return Status::Ok();
    QUARRY_ASSIGN_OR_RETURN(RunRow row, store_.GetRun(tx, org_id, run_id));
    tx.AfterCommit([this, event = RunEvent{row.org_id, row.automation_id, row.id, "run_queued", row.ToJson()}] {
      Emit(event);
    });
    return Status::Ok();
  }

  struct Subscription {
    std::string org_id, automation_id, run_id;
    RunListener listener;
  };

  void Emit(const RunEvent& event) {
    std::vector<RunListener> listeners;
    {
      std::lock_guard<std::mutex> lock(subscriptions_mutex_);
      for (const auto& [id, sub] : subscriptions_) {
        if (sub.org_id != event.org_id) continue;
        if (!sub.automation_id.empty() && sub.automation_id != event.automation_id) continue;
        if (!sub.run_id.empty() && sub.run_id != event.run_id) continue;
        listeners.push_back(sub.listener);
      }
    }
    for (const RunListener& listener : listeners) listener(event);
  }

  uint64_t Subscribe(Subscription sub) {
    std::lock_guard<std::mutex> lock(subscriptions_mutex_);
    const uint64_t id = next_subscription_++;
    subscriptions_[id] = std::move(sub);
    listener_count_.store(static_cast<int>(subscriptions_.size()), std::memory_order_relaxed);
    return id;
  }

  void Unsubscribe(uint64_t id) {
    std::lock_guard<std::mutex> lock(subscriptions_mutex_);
    subscriptions_.erase(id);
    listener_count_.store(static_cast<int>(subscriptions_.size()), std::memory_order_relaxed);
  }

  // --- helpers for the use cases --------------------------------------------

  Result<AutomationRow> LoadAutomation(const domain::Principal& actor, const std::string& id) {
    AutomationRow row;
    QUARRY_RETURN_IF_ERROR(deps_.db->Read([&](store::Tx& tx) -> Status {
      QUARRY_ASSIGN_OR_RETURN(row, store_.GetAutomation(tx, actor.org_id, id));
      return Status::Ok();
    }));
    return row;
  }

  // Waits until the run finished or parked for review, or `wait` passed.
  Result<RunRow> WaitForRun(const std::string& org_id, const std::string& run_id, Millis wait) {
    const auto deadline = std::chrono::steady_clock::now() + wait;
    for (;;) {
      RunRow row;
      QUARRY_RETURN_IF_ERROR(deps_.db->Read([&](store::Tx& tx) -> Status {
        QUARRY_ASSIGN_OR_RETURN(row, store_.GetRun(tx, org_id, run_id));
        return Status::Ok();
      }));
      const auto now = std::chrono::steady_clock::now();
      if (IsTerminal(row.status) || now >= deadline) return row;
      const auto remaining = std::chrono::duration_cast<Millis>(deadline - now);
      executor_->WaitForChange(std::min(remaining, Millis(100)));
    }
  }

  // Enqueues a run and executes it on this node when it has workers.
  Result<std::string> StartRunHere(const NewRun& run) {
    std::string run_id;
    QUARRY_RETURN_IF_ERROR(deps_.db->Write([&](store::Tx& tx) -> Status {
      QUARRY_ASSIGN_OR_RETURN(run_id, store_.EnqueueRun(tx, run));
      return AnnounceQueued(tx, run.org_id, run_id);
    }));
    if (run_id.empty()) {
      return Status(StatusCode::kAlreadyExists, "a run for this request already exists (same Idempotency-Key)");
    }
    if (options_.run_workers) executor_->ClaimAndRun(run_id);
    return run_id;
  }

  Status Audit(store::Tx& tx, const domain::Principal& actor, const std::string& action, const std::string& id,
               json before, json after, const std::string& request_id,
               const std::string& target_type = "automation") {
    domain::AuditEntry entry;
    entry.org_id = actor.org_id;
    entry.action = action;
    entry.target_type = target_type;
    entry.target_id = id;
    entry.before = std::move(before);
    entry.after = std::move(after);
    entry.request_id = request_id;
    return domain::RecordAudit(tx, *deps_.clock, &actor, std::move(entry));
  }

  EngineDeps deps_;
  EngineOptions options_;
  const std::string node_id_;
  RunStore store_;
  ProgramCache programs_;
  CallCache cache_;
  RateLimiter limiter_;
  WebhookSender webhooks_;
  std::unique_ptr<Executor> executor_;

  std::mutex schedule_mutex_;
  std::condition_variable schedule_wake_;
  bool schedule_stopping_ = false;
  std::thread schedule_thread_;

  std::mutex subscriptions_mutex_;
  std::map<uint64_t, Subscription> subscriptions_;
  std::atomic<int> listener_count_{0};  // subscriptions_.size(), read without the lock
  uint64_t next_subscription_ = 1;
};

// ---------------------------------------------------------------------------

Result<std::unique_ptr<Engine>> Engine::Create(EngineDeps deps, EngineOptions options) {
  if (!deps.db || !deps.clock || !deps.provider_clients) {
    return InvalidArgumentError("the engine needs a database, a clock and the provider clients");
  }
  if (options.max_in_flight < 1 || options.claim_batch < 1 || options.lease < Millis(1000)) {
    return InvalidArgumentError(
        "engine options out of range: max_in_flight and claim_batch must be >= 1 and the lease >= 1 s");
  }
  if (!deps.http) {
    auto http = net::HttpClient::Create();
    if (!http.ok()) return http.status().WithContext("creating the engine's webhook HTTP client");
    deps.http = std::shared_ptr<net::HttpClient>(std::move(http).value());
  }
  return std::unique_ptr<Engine>(new Engine(std::make_unique<Impl>(std::move(deps), std::move(options))));
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

Status Engine::Start() { return impl_->Start(); }
void Engine::Drain(std::chrono::milliseconds timeout) { impl_->Drain(timeout); }
RunStore& Engine::store() { return impl_->store_; }
const PriceTable& Engine::prices() const { return impl_->options_.prices; }

Result<AutomationRow> Engine::CreateAutomation(const domain::Principal& actor, const std::string& app_ref,
                                               const json& definition, const std::string& request_id) {
  QUARRY_RETURN_IF_ERROR(RequireBuilder(actor, "create automations"));
  if (!definition.is_object()) {
    return InvalidArgumentError("the automation definition must be a JSON object with at least \"name\" and "
                                   "\"object\"");
  }
  const json name = definition.value("name", json());
  const json object = definition.value("object", json());
  if (!name.is_string() || name.get<std::string>().empty() || !object.is_string()) {
    return InvalidArgumentError(
        "an automation needs \"name\" (text) and \"object\" (the api name of the app object it runs on)");
  }
  AutomationRow created;
  QUARRY_RETURN_IF_ERROR(impl_->deps_.db->Write([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(std::shared_ptr<const domain::AppSchema> schema,
                            domain::LoadAppSchema(tx, actor.org_id, app_ref));
    const domain::ObjectSchema* found = schema->FindObject(object.get<std::string>());
    if (found == nullptr) {
      return NotFoundError("app '" + schema->app.namespace_name + "' has no object '" + object.get<std::string>() +
                              "'; create it first or use one of its objects");
    }
    AutomationRow row;
    row.org_id = actor.org_id;
    row.app_id = schema->app.id;
    row.object_id = found->object.id;
    row.name = name.get<std::string>();
    row.draft = definition;
    row.created_by = actor.user_id;
    QUARRY_ASSIGN_OR_RETURN(created, impl_->store_.CreateAutomation(tx, std::move(row)));
    return impl_->Audit(tx, actor, "automation.create", created.id, nullptr, created.ToJson(), request_id);
  }));
  return created;
}

Result<AutomationRow> Engine::UpdateAutomation(const domain::Principal& actor, const std::string& automation_id,
                                               const json& patch, std::optional<int64_t> expected_version,
                                               const std::string& request_id) {
  QUARRY_RETURN_IF_ERROR(RequireBuilder(actor, "change automations"));
  if (!patch.is_object()) return InvalidArgumentError("the body must be a JSON object");
  for (const auto& [key, value] : patch.items()) {
    if (key != "name" && key != "status" && key != "definition") {
      return InvalidArgumentError("unknown member \"" + key + "\"; an update takes name, status and definition");
    }
  }
  if (patch.contains("status") && patch["status"] != "active" && patch["status"] != "paused") {
    return InvalidArgumentError("status must be \"active\" or \"paused\"");
  }
  if (patch.contains("definition") && !patch["definition"].is_object()) {
    return InvalidArgumentError("definition must be a JSON object (the whole draft)");
  }
  if (patch.contains("name") && (!patch["name"].is_string() || patch["name"].get<std::string>().empty())) {
    return InvalidArgumentError("name must be non-empty text");
  }
  AutomationRow updated;
  QUARRY_RETURN_IF_ERROR(impl_->deps_.db->Write([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(AutomationRow row, impl_->store_.GetAutomation(tx, actor.org_id, automation_id));
    const json before = row.ToJson();
    if (patch.contains("definition")) {
      row.draft = patch["definition"];
      if (row.draft.contains("name") && row.draft["name"].is_string()) row.name = row.draft["name"];
      if (row.draft.contains("object") && row.draft["object"].is_string()) {
        QUARRY_ASSIGN_OR_RETURN(std::shared_ptr<const domain::AppSchema> schema,
                                domain::LoadAppSchema(tx, actor.org_id, row.app_id));
        const domain::ObjectSchema* object = schema->FindObject(row.draft["object"].get<std::string>());
        if (object == nullptr) {
          return InvalidArgumentError("the app has no object '" + row.draft["object"].get<std::string>() +
                                         "'; use one of its objects");
        }
        row.object_id = object->object.id;
      }
    }
    if (patch.contains("name")) {
      row.name = patch["name"];
      row.draft["name"] = row.name;
    }
    if (patch.contains("status")) row.status = patch["status"];
    QUARRY_ASSIGN_OR_RETURN(updated, impl_->store_.UpdateAutomation(tx, row, expected_version));
    return impl_->Audit(tx, actor, "automation.update", updated.id, before, updated.ToJson(), request_id);
  }));
  return updated;
}

Status Engine::DeleteAutomation(const domain::Principal& actor, const std::string& automation_id,
                                const std::string& request_id) {
  QUARRY_RETURN_IF_ERROR(RequireBuilder(actor, "delete automations"));
  return impl_->deps_.db->Write([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(AutomationRow row, impl_->store_.GetAutomation(tx, actor.org_id, automation_id));
    QUARRY_RETURN_IF_ERROR(impl_->store_.DeleteAutomation(tx, actor.org_id, automation_id));
    return impl_->Audit(tx, actor, "automation.delete", automation_id, row.ToJson(), nullptr, request_id);
  });
}

Status Engine::Validate(const domain::Principal& actor, const std::string& app_id, const json& definition,
                        domain::FieldErrors* errors) {
  return impl_->deps_.db->Read([&](store::Tx& tx) -> Status {
    std::shared_ptr<const domain::AppSchema> schema;
    QUARRY_ASSIGN_OR_RETURN(SpecEnvironment env, LoadSpecEnvironment(tx, actor.org_id, app_id, &schema));
    return ParseAutomationSpec(definition, env, errors).status();
  });
}

Result<AutomationVersion> Engine::Publish(const domain::Principal& actor, const std::string& automation_id,
                                          domain::FieldErrors* errors, const std::string& request_id) {
  QUARRY_RETURN_IF_ERROR(RequireBuilder(actor, "publish automations"));
  AutomationVersion published;
  QUARRY_RETURN_IF_ERROR(impl_->deps_.db->Write([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(AutomationRow row, impl_->store_.GetAutomation(tx, actor.org_id, automation_id));
    std::shared_ptr<const domain::AppSchema> schema;
    QUARRY_ASSIGN_OR_RETURN(SpecEnvironment env, LoadSpecEnvironment(tx, actor.org_id, row.app_id, &schema));
    QUARRY_ASSIGN_OR_RETURN(AutomationSpec spec, ParseAutomationSpec(row.draft, env, errors));
    QUARRY_ASSIGN_OR_RETURN(published, impl_->store_.Publish(tx, actor.org_id, automation_id, row.draft,
                                                             std::string(TriggerKindName(spec.trigger.kind)),
                                                             actor.user_id));
    return impl_->Audit(tx, actor, "automation.publish", automation_id, nullptr,
                        json{{"version", published.version}}, request_id);
  }));
  return published;
}

Result<RunRow> Engine::TestRun(const domain::Principal& actor, const std::string& automation_id,
                               const std::string& record_ref, bool use_draft, std::chrono::milliseconds wait) {
  QUARRY_RETURN_IF_ERROR(RequireBuilder(actor, "start test runs"));
  NewRun run;
  QUARRY_RETURN_IF_ERROR(impl_->deps_.db->Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(AutomationRow row, impl_->store_.GetAutomation(tx, actor.org_id, automation_id));
    run.org_id = actor.org_id;
    run.automation_id = row.id;
    run.app_id = row.app_id;
    run.mode = "test";
    run.trigger = json{{"kind", "test"}};
    if (use_draft) {
      run.trigger["definition"] = row.draft;
    } else if (row.published_version) {
      run.automation_version = *row.published_version;
    } else {
      return FailedPreconditionError("automation " + automation_id +
                                        " has no published version; test the draft (use_draft) or publish first");
    }
    if (!record_ref.empty()) {
      QUARRY_ASSIGN_OR_RETURN(std::shared_ptr<const domain::AppSchema> schema,
                              domain::LoadAppSchema(tx, actor.org_id, row.app_id));
      QUARRY_ASSIGN_OR_RETURN(domain::Record record, domain::GetRecordInTx(tx, *schema, record_ref));
      run.record_id = record.id;
    }
    return Status::Ok();
  }));
  QUARRY_ASSIGN_OR_RETURN(std::string run_id, impl_->StartRunHere(run));
  return impl_->WaitForRun(actor.org_id, run_id, wait);
}

Result<RunRow> Engine::Invoke(const domain::Principal& actor, const std::string& automation_id, const json& inputs,
                              const std::string& record_ref, const std::string& idempotency_key,
                              std::chrono::milliseconds wait, domain::FieldErrors* errors) {
  NewRun run;
  QUARRY_RETURN_IF_ERROR(impl_->deps_.db->Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(AutomationRow row, impl_->store_.GetAutomation(tx, actor.org_id, automation_id));
    if (!row.published_version) {
      return FailedPreconditionError("automation " + automation_id + " is not published yet; publish it first");
    }
    if (row.trigger_kind != "on_demand") {
      return FailedPreconditionError("automation " + automation_id + " is triggered by " + row.trigger_kind +
                                        "; only automations with an on_demand trigger can be invoked");
    }
    if (row.status != "active") {
      return FailedPreconditionError("automation " + automation_id + " is paused; resume it first");
    }
    QUARRY_ASSIGN_OR_RETURN(std::shared_ptr<const LoadedProgram> loaded,
                            impl_->programs_.Get(tx, actor.org_id, row.app_id, row.id, *row.published_version, nullptr));
    const json given = inputs.is_null() ? json::object() : inputs;
    if (!given.is_object()) return InvalidArgumentError("inputs must be a JSON object of name: value");
    json checked = json::object();
    for (const TriggerInput& input : loaded->program.spec->trigger.inputs) {
      const std::string path = "inputs." + input.name;
      if (!given.contains(input.name) || given[input.name].is_null()) {
        if (input.required) errors->Add(path, "is required");
        continue;
      }
      const json& value = given[input.name];
      const bool ok = input.type == "json" || (input.type == "text" && value.is_string()) ||
                      (input.type == "number" && value.is_number()) || (input.type == "boolean" && value.is_boolean());
      if (!ok) {
        errors->Add(path, "must be " + std::string(input.type == "text" ? "text" : "a " + input.type));
        continue;
      }
      checked[input.name] = value;
    }
    for (const auto& [name, value] : given.items()) {
      if (!checked.contains(name) && !errors->Has("inputs." + name)) {
        bool declared = false;
        for (const TriggerInput& input : loaded->program.spec->trigger.inputs) declared = declared || input.name == name;
        if (!declared) errors->Add("inputs." + name, "is not an input of this automation");
      }
    }
    if (!errors->empty()) return errors->ToStatus("inputs");
    run.org_id = actor.org_id;
    run.automation_id = row.id;
    run.automation_version = *row.published_version;
    run.app_id = row.app_id;
    run.trigger = json{{"kind", "on_demand"}, {"inputs", checked}, {"user", actor.user_id}};
    if (!idempotency_key.empty()) run.dedupe_key = "invoke:" + row.id + ":" + Sha256Hex(idempotency_key);
    if (!record_ref.empty()) {
      QUARRY_ASSIGN_OR_RETURN(domain::Record record, domain::GetRecordInTx(tx, *loaded->schema, record_ref));
      run.record_id = record.id;
    }
    return Status::Ok();
  }));
  QUARRY_ASSIGN_OR_RETURN(std::string run_id, impl_->StartRunHere(run));
  return impl_->WaitForRun(actor.org_id, run_id, wait);
}

Status Engine::CancelRun(const domain::Principal& actor, const std::string& run_id,
                         const std::string& request_id) {
  QUARRY_RETURN_IF_ERROR(RequireBuilder(actor, "cancel runs"));
  return impl_->deps_.db->Write([&](store::Tx& tx) -> Status {
    QUARRY_RETURN_IF_ERROR(impl_->store_.CancelRun(tx, actor.org_id, run_id));
    return impl_->Audit(tx, actor, "run.cancel", run_id, nullptr, json{{"status", "cancelled"}}, request_id,
                        "run");
  });
}

Result<ReviewRow> Engine::DecideReview(const domain::Principal& actor, const std::string& review_id,
                                       const std::string& decision, const json& values, const std::string& comment,
                                       domain::FieldErrors* errors) {
  if (decision != "approved" && decision != "edited" && decision != "rejected") {
    errors->Add("decision", "must be approved, edited or rejected");
  }
  if (decision == "edited" && (!values.is_object() || values.empty())) {
    errors->Add("values", "an edit needs the changed proposed values as an object, e.g. {\"suggested_response\": \"...\"}");
  }
  if (!values.is_null() && !values.is_object()) errors->Add("values", "must be an object");
  if (!errors->empty()) return errors->ToStatus("decision");
  ReviewRow decided;
  QUARRY_RETURN_IF_ERROR(impl_->deps_.db->Write([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(ReviewRow review, impl_->store_.GetReview(tx, actor.org_id, review_id));
    if (decision == "edited") {
      for (const auto& [key, value] : values.items()) {
        if (!review.proposed.contains(key)) {
          errors->Add("values." + key, "is not one of the proposed values (" + [&] {
            std::string names;
            for (const auto& [k, v] : review.proposed.items()) names += (names.empty() ? "" : ", ") + k;
            return names.empty() ? std::string("none") : names;
          }() + ")");
        }
      }
      if (!errors->empty()) return errors->ToStatus("values");
    }
    QUARRY_ASSIGN_OR_RETURN(decided, impl_->store_.DecideReview(tx, actor.org_id, review_id, decision,
                                                                values.is_null() ? json::object() : values, comment,
                                                                actor.user_id));
    return Status::Ok();
  }));
  impl_->executor_->Wake();
  return decided;
}

uint64_t Engine::Subscribe(const std::string& org_id, const std::string& automation_id, const std::string& run_id,
                           RunListener listener) {
  return impl_->Subscribe(Impl::Subscription{org_id, automation_id, run_id, std::move(listener)});
}

void Engine::Unsubscribe(uint64_t subscription) { impl_->Unsubscribe(subscription); }

json Engine::StatusJson() const {
  const CallCache::Stats cache = impl_->cache_.stats();
  return json{{"node", impl_->node_id_},
              {"workers", impl_->options_.run_workers},
              {"in_flight", impl_->executor_->in_flight()},
              {"queued_locally", impl_->executor_->queued_locally()},
              {"cache",
               {{"hits", cache.hits},
                {"misses", cache.misses},
                {"shared", cache.shared},
                {"entries", cache.entries},
                {"bytes", cache.bytes}}},
              {"limits", impl_->limiter_.ToJson()}};
}

}  // namespace quarry::engine
