#include "engine/executor.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <random>
#include <utility>

#include <spdlog/spdlog.h>

#include "bedrock/client.h"
#include "common/ids.h"
#include "domain/agent_connections.h"
#include "domain/services.h"
#include "engine/structured_output.h"

namespace quarry::engine {

using nlohmann::json;
using Millis = std::chrono::milliseconds;

namespace {

constexpr int kMaxReturnControlRounds = 5;
constexpr int kMaxCascadeDepth = 3;
constexpr char kStepOverheadHistogram[] = "quarry_engine_step_overhead_seconds";
constexpr char kRunsCounter[] = "quarry_engine_runs_total";
constexpr char kStepsCounter[] = "quarry_engine_steps_total";
constexpr char kCacheCounter[] = "quarry_engine_cache_lookups_total";
constexpr char kInFlightGauge[] = "quarry_engine_runs_in_flight";

int64_t MicrosSince(MonotonicTime start, const Clock& clock) {
  return std::chrono::duration_cast<std::chrono::microseconds>(clock.MonotonicNow() - start).count();
}

std::string IsoNow(const Clock& clock) { return FormatIso8601Utc(clock.Now()); }

// Bedrock session ids allow [0-9a-zA-Z._:-].
std::string SessionIdFor(const std::string& run_id, const std::string& step_id) {
  std::string id = "quarry-" + run_id + "-" + step_id;
  for (char& c : id) {
    if (c == '_') c = '-';
  }
  return id.substr(0, 100);
}

std::string ErrorClassOf(const bedrock::BedrockError& error) {
  if (error.aws.timeout) return "timeout";
  switch (error.aws.retry_class) {
    case aws::RetryClass::kThrottling:
      return "throttling";
    case aws::RetryClass::kTransient:
      return "transient";
    case aws::RetryClass::kNotRetryable:
      break;
  }
  return "";
}

json LocalError(std::string code, std::string message, std::string hint) {
  return json{{"code", std::move(code)}, {"message", std::move(message)}, {"hint", std::move(hint)}};
}

// Sums the token usage an agent's traces report, and names the model when a
// trace says which one ran.
void AgentUsage(const bedrock::AgentResult& result, int64_t* input_tokens, int64_t* output_tokens,
                std::string* model) {
  for (const json& trace : result.traces) {
    const json* body = &trace;
    if (trace.contains("trace") && trace["trace"].is_object()) body = &trace["trace"];
    if (!body->is_object()) continue;
    for (const auto& [kind, part] : body->items()) {
      if (!part.is_object()) continue;
      if (part.contains("modelInvocationOutput")) {
        const json& usage = part["modelInvocationOutput"].value("metadata", json::object()).value("usage", json::object());
        *input_tokens += usage.value("inputTokens", int64_t{0});
        *output_tokens += usage.value("outputTokens", int64_t{0});
      }
      if (model->empty() && part.contains("modelInvocationInput")) {
        *model = part["modelInvocationInput"].value("foundationModel", std::string());
      }
    }
  }
}

}  // namespace

// One run in memory on this node.
struct RunExec {
  RunRow row;
  Lease lease;
  std::shared_ptr<const LoadedProgram> loaded;
  Scope scope;
  int pc = 0;
  int64_t seq = 0;
  std::vector<StepRow> pending;
  RunRow totals;
  bool test = false;
  int depth = 0;
  json review = nullptr;          // a decision to consume (state["review"])
  json pending_review = nullptr;  // {"step_id","proposed"} saved when escalating
  std::string record_id;
  bool lost = false;
  bool prepared = false;
  bool counted = false;  // holds a concurrency slot

  // The step being executed.
  MonotonicTime step_started{};
  int64_t wait_us = 0;     // limiter, backoff, waiting on a shared call
  int64_t bedrock_us = 0;  // on the wire
  struct Call {
    const Step* step = nullptr;
    std::string target;       // agent alias ARN or model id
    std::string provider_id;
    std::string region;
    std::string limit_key;
    std::string cache_key;
    bool leader = false;
    bool use_cache = false;
    int attempt = 0;
    int retries = 0;
    std::string input_text;   // agent input / prompt as rendered (with instructions)
    json rendered = json::object();
    std::string session_id;
    bool repair_used = false;
    int control_rounds = 0;
    std::string follow_up_text;
    std::string rc_invocation_id;
    std::vector<bedrock::ReturnControlResult> rc_results;
    std::vector<std::string> request_ids;
    int64_t input_tokens = 0, output_tokens = 0;
    std::string price_model;
    // ai_prompt
    std::string system;
    int max_tokens = 1024;
    std::optional<double> temperature;
    int64_t estimated_tokens = 0;
    MonotonicTime sent_at{};
    bedrock::CallHandle handle;
    RateLimiter::Ticket ticket = 0;
    json last_error = nullptr;
  } call;

  const Program& program() const { return loaded->program; }
  const AutomationSpec& spec() const { return *loaded->program.spec; }
};

Executor::Executor(Deps deps, const EngineOptions& options, std::string node_id)
    : deps_(std::move(deps)), options_(options), node_id_(std::move(node_id)), pool_(options.blocking_threads) {
  if (deps_.metrics) {
    deps_.metrics->DeclareHistogram(kStepOverheadHistogram,
                                    "The engine's own time per step (Bedrock and queue waits excluded).",
                                    {0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5});
    deps_.metrics->DeclareCounter(kRunsCounter, "Automation runs finished on this node, by status.");
    deps_.metrics->DeclareCounter(kStepsCounter, "Automation steps executed on this node, by type and status.");
    deps_.metrics->DeclareCounter(kCacheCounter, "Cache lookups of Bedrock steps, by outcome (hit, shared, miss).");
    deps_.metrics->DeclareGauge(kInFlightGauge, "Runs claimed by this node and not finished.");
  }
}

Executor::~Executor() { Drain(Millis(0)); }

void Executor::Start() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (claimer_.joinable() || stopping_) return;
  claimer_ = std::thread([this] { ClaimLoop(); });
}

void Executor::Wake() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    woken_ = true;
  }
  wake_.notify_one();
}

size_t Executor::in_flight() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return active_.size();
}

size_t Executor::queued_locally() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return waiting_count_;
}

void Executor::WaitForChange(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait_for(lock, timeout);
}

void Executor::ClaimLoop() {
  auto last_renewal = std::chrono::steady_clock::now();
  const auto renew_every = std::max<Millis>(options_.lease / 3, Millis(100));
  for (;;) {
    int capacity = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait_for(lock, options_.poll_interval, [this] { return stopping_ || woken_; });
      if (stopping_) return;
      const bool woken = woken_;
      woken_ = false;
      capacity = options_.max_in_flight - static_cast<int>(active_.size());
      if (woken) {
        // The enqueuing transaction may still be committing: give it a moment.
        lock.unlock();
        std::this_thread::sleep_for(Millis(2));
      }
    }
    while (capacity > 0) {
      auto claimed = deps_.store->ClaimRuns(node_id_, std::min(capacity, options_.claim_batch), options_.lease);
      if (!claimed.ok()) {
        spdlog::warn("engine: claiming runs failed: {}", claimed.status().ToString());
        break;
      }
      for (RunRow& row : claimed.value()) Admit(std::move(row));
      const int got = static_cast<int>(claimed.value().size());
      capacity -= got;
      if (got < options_.claim_batch) break;
    }
    if (std::chrono::steady_clock::now() - last_renewal >= renew_every) {
      last_renewal = std::chrono::steady_clock::now();
      std::vector<Lease> leases;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        leases.reserve(active_.size());
        for (const auto& [id, run] : active_) leases.push_back(run->lease);
      }
      if (!leases.empty()) {
        auto lost = deps_.store->RenewLeases(node_id_, leases, options_.lease);
        if (!lost.ok()) {
          spdlog::warn("engine: renewing {} leases failed: {}", leases.size(), lost.status().ToString());
        } else if (!lost.value().empty()) {
          std::lock_guard<std::mutex> lock(mutex_);
          for (const std::string& id : lost.value()) {
            auto it = active_.find(id);
            if (it != active_.end()) it->second->lost = true;
          }
        }
      }
    }
  }
}

void Executor::ClaimAndRun(const std::string& run_id) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
  }
  auto claimed = deps_.store->ClaimRun(run_id, node_id_, options_.lease);
  if (claimed.ok()) {
    Admit(std::move(claimed).value());
  } else {
    Wake();  // another node (or our claimer) has it
  }
}

void Executor::Admit(RunRow row) {
  auto run = std::make_shared<RunExec>();
  run->lease = Lease{row.id, node_id_, row.lease_token};
  run->row = std::move(row);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (active_.count(run->row.id) > 0) return;  // already here (claimed twice by this node)
    active_[run->row.id] = run;
    if (deps_.metrics) deps_.metrics->Set(kInFlightGauge, {}, static_cast<double>(active_.size()));
  }
  Post(run, [this, run](RunExec&) {
    if (!Prepare(*run)) return;
    StartRun(run);
  });
}

void Executor::StartRun(const std::shared_ptr<RunExec>& run) {
  const std::string& automation = run->row.automation_id;
  const int cap = std::max(1, run->spec().settings.max_concurrency);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    int& used = running_per_automation_[automation];
    if (used >= cap) {
      waiting_[automation].push_back(run);
      ++waiting_count_;
      return;
    }
    ++used;
    run->counted = true;
  }
  if (Listening()) {
    deps_.emit(RunEvent{run->row.org_id, automation, run->row.id, "run_started", run->row.ToJson()});
  }
  Advance(run);
}

void Executor::Post(const std::shared_ptr<RunExec>& run, std::function<void(RunExec&)> work) {
  ++outstanding_;
  pool_.Post([this, run, work = std::move(work)] {
    bool stop;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop = released_;
    }
    if (!stop) {
      if (run->lost) {
        Drop(*run, "its lease was taken over by another worker");
      } else {
        work(*run);
      }
    }
    --outstanding_;
  });
}

bool Executor::Prepare(RunExec& run) {
  const RunRow& row = run.row;
  run.test = row.mode == "test";
  run.record_id = row.record_id;
  run.depth = row.trigger.value("depth", 0);
  const json* definition = row.trigger.contains("definition") ? &row.trigger["definition"] : nullptr;
  domain::Record record;
  bool have_record = false;
  Status status = deps_.db->Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(run.loaded, deps_.programs->Get(tx, row.org_id, row.app_id, row.automation_id,
                                                            row.automation_version, definition));
    if (!run.record_id.empty()) {
      Result<domain::Record> got = domain::GetRecordInTx(tx, *run.loaded->schema, run.record_id);
      if (!got.ok()) {
        if (got.status().code() == StatusCode::kNotFound) {
          return FailedPreconditionError("the run's record " + run.record_id +
                                            " no longer exists (deleted after the run was queued)");
        }
        return got.status();
      }
      record = std::move(got).value();
      have_record = true;
    }
    return Status::Ok();
  });
  if (!status.ok()) {
    if (status.code() == StatusCode::kUnavailable) {
      // The database is away: let the lease expire and a worker retry later.
      Drop(run, "the database is unavailable: " + status.ToString());
      return false;
    }
    Finish(run, "failed",
           LocalError("run_not_startable", status.message(),
                      "Fix the automation or its app, then start the run again (a new trigger or invoke)"),
           true);
    return false;
  }
  if (have_record) run.scope.record = RecordScopeJson(record);
  run.scope.trigger = row.trigger;
  run.scope.trigger.erase("definition");
  run.scope.trigger.erase("depth");
  const json& state = row.state;
  if (state.is_object()) {
    run.pc = state.value("position", 0);
    run.seq = state.value("seq", int64_t{0});
    if (state.contains("steps") && state["steps"].is_object()) run.scope.steps = state["steps"];
    if (state.contains("review")) run.review = state["review"];
    if (state.contains("pending_review")) run.pending_review = state["pending_review"];
  }
  run.totals.input_tokens = row.input_tokens;
  run.totals.output_tokens = row.output_tokens;
  run.totals.cost_usd = row.cost_usd;
  run.totals.bedrock_ms = row.bedrock_ms;
  if (run.pc < 0 || run.pc >= static_cast<int>(run.program().instructions.size())) run.pc = 0;
  run.prepared = true;
  return true;
}

json Executor::StateJson(const RunExec& run) const {
  json state{{"position", run.pc}, {"seq", run.seq}, {"steps", run.scope.steps}};
  if (!run.pending_review.is_null()) state["pending_review"] = run.pending_review;
  return state;
}

void Executor::Advance(const std::shared_ptr<RunExec>& run_ptr) {
  RunExec& run = *run_ptr;
  const Program& program = run.program();
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (released_) return;
    }
    if (run.lost) {
      Drop(run, "its lease was taken over by another worker");
      return;
    }
    const Instruction& instruction = program.instructions[static_cast<size_t>(run.pc)];
    run.step_started = deps_.clock->MonotonicNow();
    run.wait_us = 0;
    run.bedrock_us = 0;
    switch (instruction.kind) {
      case Instruction::Kind::kEnd:
        Finish(run, "succeeded", nullptr, false);
        return;
      case Instruction::Kind::kJump:
        run.pc = instruction.target;
        continue;
      case Instruction::Kind::kBranch:
        RunBranch(run, instruction);
        continue;
      case Instruction::Kind::kStep:
        break;
    }
    const Step& step = *instruction.step;
    // A review decision for this step (escalated step, or a failed step whose
    // policy was "review") gives its outputs.
    if (run.review.is_object() && !run.pending_review.is_null() &&
        run.pending_review.value("step_id", "") == step.id) {
      if (step.CallsBedrock() && run.review.value("decision", "") != "rejected") {
        // A failed Bedrock step escalated by its policy: the decided values
        // are its outputs, and its map applies as if the call had answered.
        json values = run.pending_review.value("proposed", json::object());
        if (run.review.value("decision", "") == "edited") {
          const json edited = run.review.value("values", json::object());
          for (const auto& [key, value] : edited.items()) values[key] = value;
        }
        json result{{"outputs", values}, {"text", values.value("text", "")}};
        run.review = nullptr;
        run.pending_review = nullptr;
        run.call = RunExec::Call();
        run.call.step = &step;
        run.call.rendered = json{{"review", "decided"}};
        CompleteCall(run_ptr, step, result, false);
        return;
      }
      if (!RunReview(run, step)) return;
      continue;
    }
    switch (step.kind) {
      case StepKind::kSearchRecords:
        if (!RunSearch(run, step)) return;
        continue;
      case StepKind::kCreateRecord:
      case StepKind::kUpdateRecord:
        if (!RunRecordEffect(run, step)) return;
        continue;
      case StepKind::kEscalateReview:
        if (!RunReview(run, step)) return;
        continue;
      case StepKind::kSendNotification:
        StartNotification(run_ptr, step);
        return;
      case StepKind::kRunAgentTask:
      case StepKind::kAiPrompt:
        StartCall(run_ptr, step);
        return;
      case StepKind::kIf:
        break;  // compiled to kBranch
    }
    ++run.pc;
  }
}

void Executor::RunBranch(RunExec& run, const Instruction& instruction) {
  const Step& step = *instruction.step;
  size_t taken = step.branches.size();  // otherwise
  for (size_t i = 0; i < step.branches.size(); ++i) {
    Result<bool> matched = Evaluate(step.branches[i].when, run.scope);
    if (matched.ok() && matched.value()) {
      taken = i;
      break;
    }
  }
  json output{{"branch", taken < step.branches.size() ? json(static_cast<int64_t>(taken)) : json("otherwise")}};
  run.scope.steps[step.id] = output;
  PushStep(run, &step, "if", "succeeded", json::object(), output);
  run.pc = instruction.branch_targets[taken];
}

bool Executor::RunSearch(RunExec& run, const Step& step) {
  const domain::ObjectSchema* object = run.loaded->schema->FindObject(step.object);
  json records = json::array();
  std::string text;
  Status status = Status::Ok();
  if (object == nullptr) {
    status = FailedPreconditionError("object '" + step.object + "' no longer exists in the app");
  } else {
    // Candidates newest first (or by the step's sort), filtered by the
    // where-condition with {candidate.*}; at most 500 are examined.
    domain::RecordQuery query;
    std::string sort = step.sort.empty() ? "-created_at" : step.sort;
    query.descending = !sort.empty() && sort[0] == '-';
    query.sort = query.descending ? sort.substr(1) : sort;
    query.page.limit = 500;
    domain::FieldErrors errors;
    status = deps_.db->Read([&](store::Tx& tx) -> Status {
      QUARRY_ASSIGN_OR_RETURN(domain::Page<domain::Record> page,
                              domain::ListRecordsInTx(tx, *run.loaded->schema, *object, query, &errors));
      Scope scope = run.scope;
      for (const domain::Record& candidate : page.items) {
        if (candidate.id == run.record_id) continue;  // the trigger record is not its own context
        scope.candidate = RecordScopeJson(candidate);
        if (step.where) {
          Result<bool> matched = Evaluate(*step.where, scope);
          if (!matched.ok() || !matched.value()) continue;
        }
        records.push_back(scope.candidate);
        if (static_cast<int>(records.size()) >= step.limit) break;
      }
      return Status::Ok();
    });
  }
  if (!status.ok()) {
    PushStep(run, &step, "search_records", "failed", json::object(), json::object(),
             LocalError("search_failed", status.message(), "Check the step's object and condition"));
    Finish(run, "failed", LocalError("search_failed", "step " + step.id + ": " + status.message(),
                                     "Check the step's object and condition"), true);
    return false;
  }
  for (const json& record : records) {
    if (!text.empty()) text += "\n";
    text += record.value("handle", "") + ":";
    for (const auto& [name, value] : record.items()) {
      if (name == "id" || name == "handle" || name == "created_at" || name == "updated_at") continue;
      text += " " + name + "=" + ValueToText(value) + ";";
    }
  }
  json output{{"count", records.size()}, {"records", records}, {"text", text}};
  run.scope.steps[step.id] = output;
  PushStep(run, &step, "search_records", "succeeded", json{{"object", step.object}, {"limit", step.limit}}, output);
  ++run.pc;
  return true;
}

namespace {

// Whether the instruction after `pc` (following jumps) ends the program.
bool EndsAfter(const Program& program, int pc) {
  int next = pc + 1;
  for (int guard = 0; guard < 1000 && next < static_cast<int>(program.instructions.size()); ++guard) {
    const Instruction& instruction = program.instructions[static_cast<size_t>(next)];
    if (instruction.kind == Instruction::Kind::kJump) {
      next = instruction.target;
      continue;
    }
    return instruction.kind == Instruction::Kind::kEnd;
  }
  return false;
}

// The automation's "outputs" rendered over `scope` (what an on-demand
// call returns when the run succeeds).
json RenderRunOutputs(const AutomationSpec& spec, const Scope& scope) {
  json outputs = json::object();
  for (const auto& [name, templ] : spec.outputs) {
    Result<json> value = RenderValue(json(templ), scope);
    outputs[name] = value.ok() ? value.value() : json(nullptr);
  }
  return outputs;
}

bool IsLeaseLost(const Status& status) {
  return status.code() == StatusCode::kAborted && status.message().find("lease lost") != std::string::npos;
}

}  // namespace

bool Executor::RunRecordEffect(RunExec& run, const Step& step) {
  const bool create = step.kind == StepKind::kCreateRecord;
  const std::string type(StepKindName(step.kind));
  json values = json::object();
  for (const auto& [field, value] : step.values) {
    Result<json> rendered = RenderValue(value, run.scope);
    if (!rendered.ok()) {
      json error = LocalError("render_failed", "step " + step.id + ": " + rendered.status().message(),
                              "Fix the step's values");
      error["step"] = step.id;
      PushStep(run, &step, type, "failed", json::object(), json::object(), error);
      Finish(run, "failed", error, true);
      return false;
    }
    values[field] = std::move(rendered).value();
  }
  std::string record_ref = run.record_id;
  if (!create && !step.record.empty()) {
    Result<std::string> rendered = Render(step.record, run.scope);
    record_ref = rendered.ok() ? rendered.value() : std::string();
  }
  const domain::ObjectSchema* object = create ? run.loaded->schema->FindObject(step.object) : nullptr;
  json input{{"values", values}};
  if (create) input["object"] = step.object;
  else input["record"] = record_ref;

  if (run.test) {
    json output{{"would_apply", input}, {"id", create ? "" : record_ref}, {"handle", ""}, {"version", 0}};
    run.scope.steps[step.id] = output;
    PushStep(run, &step, type, "succeeded", input, output);
    ++run.pc;
    return true;
  }
  if ((create && object == nullptr) || (!create && record_ref.empty())) {
    const std::string message = create ? "object '" + step.object + "' no longer exists in the app"
                                       : "the step has no record to update (the run has no trigger record and "
                                         "\"record\" rendered empty)";
    Finish(run, "failed", LocalError("record_step_failed", "step " + step.id + ": " + message,
                                     "Fix the step's object or record reference"), true);
    return false;
  }

  const bool finish_after = EndsAfter(run.program(), run.pc);
  const domain::ChangeContext change = domain::ChangeContext::System(run.row.org_id, *deps_.clock);
  domain::FieldErrors errors;
  json output;
  json run_outputs = json::object();
  std::optional<domain::Record> after;
  const int64_t latency_us = MicrosSince(run.step_started, *deps_.clock);
  Status status = deps_.db->Write([&](store::Tx& tx) -> Status {
    errors.Clear();
    Result<domain::RecordChange> written =
        create ? domain::CreateRecordInTx(tx, change, *run.loaded->schema, *object, values, &errors)
               : domain::UpdateRecordInTx(tx, change, *run.loaded->schema, record_ref, values, {}, &errors);
    if (!written.ok()) return written.status();
    const domain::Record& record = *written.value().after;
    after = record;
    output = json{{"id", record.id}, {"handle", record.handle}, {"version", record.version}};
    if (deps_.enqueue_triggered && run.depth < kMaxCascadeDepth) {
      QUARRY_RETURN_IF_ERROR(deps_.enqueue_triggered(tx, written.value(), run.depth + 1, run.row.automation_id));
    }
    std::vector<StepRow> rows = run.pending;
    StepRow row;
    row.run_id = run.row.id;
    row.seq = run.seq;
    row.step_id = step.id;
    row.type = type;
    row.status = "succeeded";
    row.attempts = 1;
    row.input = input;
    row.output = output;
    row.latency_ms = latency_us / 1000;
    row.engine_us = latency_us;
    row.started_at = IsoNow(*deps_.clock);
    row.finished_at = row.started_at;
    rows.push_back(std::move(row));
    json steps = run.scope.steps;
    steps[step.id] = output;
    json state{{"position", run.pc + 1}, {"seq", run.seq + 1}, {"steps", steps}};
    QUARRY_RETURN_IF_ERROR(deps_.store->CommitProgress(tx, run.lease, rows, state, run.totals));
    if (finish_after) {
      Scope scope = run.scope;
      scope.steps = steps;
      if (record.id == run.record_id) scope.record = RecordScopeJson(record);
      run_outputs = RenderRunOutputs(run.spec(), scope);
      QUARRY_RETURN_IF_ERROR(deps_.store->FinishRun(tx, run.lease, "succeeded", run_outputs, nullptr, run.totals));
    }
    return Status::Ok();
  });
  if (!status.ok()) {
    if (IsLeaseLost(status)) {
      Drop(run, status.message());
      return false;
    }
    if (status.code() == StatusCode::kUnavailable) {
      Drop(run, "the database is unavailable: " + status.ToString());
      return false;
    }
    json error = LocalError("record_step_failed", "step " + step.id + " could not " +
                                                      (create ? "create the record: " : "update the record: ") +
                                                      status.message(),
                            "Check that the values fit the object's fields");
    if (!errors.empty()) error["fields"] = errors.ToJson();
    PushStep(run, &step, type, "failed", input, json::object(), error);
    Finish(run, "failed", error, true);
    return false;
  }
  if (deps_.metrics) {
    deps_.metrics->Add(kStepsCounter, {{"type", type}, {"status", "succeeded"}});
    deps_.metrics->Observe(kStepOverheadHistogram, {{"type", type}}, static_cast<double>(latency_us) / 1e6);
  }
  run.pending.clear();
  ++run.seq;
  run.scope.steps[step.id] = output;
  if (after && after->id == run.record_id) run.scope.record = RecordScopeJson(*after);
  if (Listening()) {
    deps_.emit(RunEvent{run.row.org_id, run.row.automation_id, run.row.id, "step_finished",
                        json{{"step_id", step.id}, {"type", type}, {"status", "succeeded"}, {"output", output}}});
  }
  if (finish_after) {
    AnnounceFinished(run, "succeeded", run_outputs, nullptr);
    return false;
  }
  ++run.pc;
  return true;
}

bool Executor::RunReview(RunExec& run, const Step& step) {
  const bool is_review_step = step.kind == StepKind::kEscalateReview;
  if (run.review.is_object() && !run.pending_review.is_null() && run.pending_review.value("step_id", "") == step.id) {
    // Resume after a decision.
    const std::string decision = run.review.value("decision", "");
    json proposed = run.pending_review.value("proposed", json::object());
    json values = proposed;
    const json edited = run.review.value("values", json::object());
    if (decision == "edited" && edited.is_object()) {
      for (const auto& [key, value] : edited.items()) values[key] = value;
    }
    json output = values;
    output["decision"] = decision;
    output["reviewer"] = run.review.value("decided_by", "");
    output["comment"] = run.review.value("comment", "");
    run.review = nullptr;
    run.pending_review = nullptr;
    run.scope.steps[step.id] = output;
    PushStep(run, &step, std::string(StepKindName(step.kind)), decision == "rejected" ? "rejected" : "succeeded",
             json{{"review", "decided"}}, output);
    if (decision == "rejected") {
      const std::string comment = output.value("comment", "");
      Finish(run, "cancelled",
             LocalError("rejected_by_reviewer",
                        "a reviewer rejected step " + step.id + (comment.empty() ? "" : ": " + comment),
                        "Nothing to fix: the run ended as the reviewer decided"),
             false);
      return false;
    }
    ++run.pc;
    return true;
  }
  if (!is_review_step) return true;
  json proposed = json::object();
  for (const auto& [key, value] : step.proposed) {
    Result<json> rendered = RenderValue(value, run.scope);
    proposed[key] = rendered.ok() ? rendered.value() : json(nullptr);
  }
  Result<std::string> reason = Render(step.reason, run.scope);
  const std::string reason_text = reason.ok() ? reason.value() : step.reason;
  if (run.test) {
    json output = proposed;
    output["decision"] = "approved";
    output["reviewer"] = "";
    output["comment"] = "test run: would escalate to human review (" + reason_text + ")";
    output["would_escalate"] = true;
    run.scope.steps[step.id] = output;
    PushStep(run, &step, "escalate_review", "succeeded", json{{"reason", reason_text}, {"proposed", proposed}},
             output);
    ++run.pc;
    return true;
  }
  Escalate(run, step, reason_text, proposed);
  return false;
}

void Executor::Escalate(RunExec& run, const Step& step, const std::string& reason, json proposed) {
  run.pending_review = json{{"step_id", step.id}, {"proposed", proposed}};
  PushStep(run, &step, std::string(StepKindName(step.kind)), "waiting_review",
           json{{"reason", reason}, {"proposed", proposed}}, json::object());
  ReviewRow review;
  review.org_id = run.row.org_id;
  review.run_id = run.row.id;
  review.automation_id = run.row.automation_id;
  review.step_id = step.id;
  review.reason = reason;
  review.proposed = proposed;
  review.context = json{{"record", run.scope.record}, {"trigger", run.scope.trigger}, {"steps", run.scope.steps}};
  const json state = StateJson(run);
  std::string review_id;
  Status status = deps_.db->Write([&](store::Tx& tx) -> Status {
    QUARRY_RETURN_IF_ERROR(deps_.store->CommitProgress(tx, run.lease, run.pending, state, run.totals));
    QUARRY_ASSIGN_OR_RETURN(review_id, deps_.store->EscalateToReview(tx, run.lease, review));
    return Status::Ok();
  });
  if (!status.ok()) {
    Drop(run, "escalating to review failed: " + status.ToString());
    return;
  }
  run.pending.clear();
  if (Listening()) {
    json data = run.row.ToJson();
    data["status"] = "waiting_review";
    data["review_id"] = review_id;
    deps_.emit(RunEvent{run.row.org_id, run.row.automation_id, run.row.id, "run_waiting_review", data});
  }
  Retire(run);
}

void Executor::StartNotification(const std::shared_ptr<RunExec>& run_ptr, const Step& step) {
  RunExec& run = *run_ptr;
  Result<json> body = RenderValue(step.body, run.scope);
  Result<std::string> url = Render(step.url, run.scope);
  if (!body.ok() || !url.ok()) {
    FailStep(run_ptr, step, LocalError("render_failed", (!body.ok() ? body.status() : url.status()).message(),
                                       "Fix the step's url or body"));
    return;
  }
  const std::string delivery_id = run.row.id + "-" + std::to_string(run.seq);
  json input{{"url", url.value()}, {"body", body.value()}, {"delivery_id", delivery_id}};
  if (run.test) {
    json output{{"would_apply", input}, {"status", 0}, {"delivery_id", delivery_id}};
    run.scope.steps[step.id] = output;
    PushStep(run, &step, "send_notification", "succeeded", input, output);
    ++run.pc;
    Post(run_ptr, [this, run_ptr](RunExec&) { Advance(run_ptr); });
    return;
  }
  WebhookRequest request;
  request.url = url.value();
  request.body = body.value().dump();
  request.secret = step.secret;
  request.delivery_id = delivery_id;
  request.max_attempts = std::max(1, step.options.retry.max_attempts);
  request.timeout = Millis(step.options.timeout_ms > 0 ? step.options.timeout_ms : kDefaultNotificationTimeoutMs);
  request.backoff_base = Millis(step.options.retry.base_ms);
  request.backoff_cap = Millis(step.options.retry.cap_ms);
  ++outstanding_;
  const Step* step_ptr = &step;
  const MonotonicTime sent = deps_.clock->MonotonicNow();
  Status started = deps_.webhooks->Send(request, [this, run_ptr, step_ptr, input, sent](WebhookResult result) {
    Post(run_ptr, [this, run_ptr, step_ptr, input, sent, result](RunExec& run) {
      run.wait_us += MicrosSince(sent, *deps_.clock);
      if (!result.status.ok()) {
        json error = LocalError("notification_failed", result.status.message(),
                                "Check that the webhook URL is reachable from the server and answers 2xx");
        error["http_status"] = result.http_status;
        error["attempts"] = result.attempts;
        FailStep(run_ptr, *step_ptr, error);
        return;
      }
      json output{{"status", result.http_status}, {"delivery_id", input.value("delivery_id", "")}};
      run.scope.steps[step_ptr->id] = output;
      PushStep(run, step_ptr, "send_notification", "succeeded", input, output);
      ++run.pc;
      if (!CommitPending(run)) return;
      Advance(run_ptr);
    });
    --outstanding_;
  });
  if (!started.ok()) {
    --outstanding_;
    FailStep(run_ptr, step, LocalError("notification_failed", started.message(), "Fix the step's url"));
  }
}

// ---------------------------------------------------------------------------
// Bedrock steps

void Executor::StartCall(const std::shared_ptr<RunExec>& run_ptr, const Step& step) {
  RunExec& run = *run_ptr;
  RunExec::Call& call = run.call;
  call = RunExec::Call();
  call.step = &step;
  const bool agent = step.kind == StepKind::kRunAgentTask;

  // Where the call goes.
  Status resolved = deps_.db->Read([&](store::Tx& tx) -> Status {
    if (agent) {
      QUARRY_ASSIGN_OR_RETURN(domain::AgentConnection connection,
                              domain::GetAgentConnection(tx, run.row.org_id, step.agent_id));
      call.target = connection.agent_alias_arn;
      call.provider_id = connection.provider_id;
      call.region = connection.region;
      call.limit_key = connection.provider_id + "/" + connection.agent_id;
      return Status::Ok();
    }
    QUARRY_ASSIGN_OR_RETURN(domain::Service service, domain::GetService(tx, run.row.org_id, step.service_id));
    call.target = service.invocation_target;
    call.provider_id = service.provider_id;
    call.limit_key = service.provider_id + "/" + service.foundation_model_id;
    call.price_model = service.foundation_model_id.empty() ? service.invocation_target : service.foundation_model_id;
    call.system = step.system.empty() ? service.system_prompt : step.system;
    call.max_tokens = static_cast<int>(service.max_tokens);
    call.temperature = service.temperature;
    return Status::Ok();
  });
  if (!resolved.ok()) {
    FailStep(run_ptr, step,
             LocalError(agent ? "agent_not_found" : "service_not_found",
                        std::string(agent ? "the step's agent " + step.agent_id : "the step's service " + step.service_id) +
                            " cannot be used: " + resolved.message(),
                        "Reconnect the agent or service, or point the step at another one and publish again"));
    return;
  }

  // What is sent.
  Result<std::string> task = Render(step.task, run.scope);
  if (!task.ok()) {
    FailStep(run_ptr, step, LocalError("render_failed", task.status().message(), "Fix the step's task text"));
    return;
  }
  std::string text = task.value();
  json rendered_inputs = json::object();
  if (!step.inputs.empty()) {
    text += "\n\nInputs:";
    for (const auto& [name, templ] : step.inputs) {
      Result<std::string> value = Render(templ, run.scope);
      const std::string value_text = value.ok() ? value.value() : std::string();
      rendered_inputs[name] = value_text;
      text += "\n- " + name + ": " + value_text;
    }
  }
  if (step.output.structured && agent) text += "\n\n" + StructuredAnswerInstructions(step.output.fields);
  call.input_text = text;
  call.rendered = json{{"task", task.value()}, {"inputs", rendered_inputs}};
  if (!agent && !call.system.empty()) call.rendered["system"] = call.system;
  call.session_id = SessionIdFor(run.row.id, step.id);
  call.estimated_tokens = static_cast<int64_t>(text.size() / 4) + (agent ? 500 : call.max_tokens / 2);

  // Cache and deduplication.
  call.use_cache = step.options.cache_enabled;
  if (call.use_cache) {
    std::string settings = std::string(StepKindName(step.kind));
    if (step.output.structured) settings += "|" + OutputJsonSchema(step.output.fields).dump();
    if (!agent) {
      settings += "|" + call.system + "|" + std::to_string(call.max_tokens) + "|" +
                  (call.temperature ? std::to_string(*call.temperature) : std::string());
    }
    for (const auto& [key, reply] : step.return_control) settings += "|" + key + "=" + reply;
    call.cache_key = CallCacheKey(call.target, text, settings);
    std::shared_ptr<const CachedCall> hit;
    ++outstanding_;
    const MonotonicTime asked = deps_.clock->MonotonicNow();
    const Step* step_ptr = &step;
    CallCache::Lookup lookup = deps_.cache->Begin(
        call.cache_key,
        [this, run_ptr, step_ptr, asked](CacheOutcome outcome) {
          Post(run_ptr, [this, run_ptr, step_ptr, asked, outcome](RunExec& run) {
            run.wait_us += MicrosSince(asked, *deps_.clock);
            if (outcome.status.ok() && outcome.call) {
              if (deps_.metrics) deps_.metrics->Add(kCacheCounter, {{"outcome", "shared"}});
              CompleteCall(run_ptr, *step_ptr, outcome.call->value, true);
            } else {
              // The shared call failed: make our own, under our own policy.
              run.call.use_cache = false;
              run.call.leader = false;
              run.call.attempt = 1;
              run.call.last_error = LocalError("shared_call_failed", outcome.status.message(), "");
              Invoke(run_ptr);
            }
          });
          --outstanding_;
        },
        &hit);
    if (lookup != CallCache::Lookup::kFollower) --outstanding_;
    if (lookup == CallCache::Lookup::kHit) {
      if (deps_.metrics) deps_.metrics->Add(kCacheCounter, {{"outcome", "hit"}});
      CompleteCall(run_ptr, step, hit->value, true);
      return;
    }
    if (lookup == CallCache::Lookup::kFollower) return;
    if (deps_.metrics) deps_.metrics->Add(kCacheCounter, {{"outcome", "miss"}});
    call.leader = true;
  }
  Invoke(run_ptr);
}

void Executor::Invoke(const std::shared_ptr<RunExec>& run_ptr) {
  RunExec& run = *run_ptr;
  RunExec::Call& call = run.call;
  ++call.attempt;
  // Throttling first: the run waits here (no thread does) until the budget allows.
  // Admitted at once (the usual case), the limiter calls back on this thread
  // before Acquire returns: the call is then sent from here, without a hop
  // through the pool. Only this thread reads `returned`, and only while the
  // thread ids match, so the flags need no lock.
  struct Admission {
    std::thread::id caller = std::this_thread::get_id();
    bool returned = false;
    bool admitted_here = false;
  };
  auto admission = std::make_shared<Admission>();
  ++outstanding_;
  const MonotonicTime asked = deps_.clock->MonotonicNow();
  call.ticket = deps_.limiter->Acquire(
      call.limit_key, call.estimated_tokens, [this, run_ptr, asked, admission](bool admitted) {
        if (admitted && std::this_thread::get_id() == admission->caller && !admission->returned) {
          admission->admitted_here = true;
          return;
        }
        Post(run_ptr, [this, run_ptr, asked, admitted](RunExec& run) {
          run.wait_us += MicrosSince(asked, *deps_.clock);
          run.call.ticket = 0;
          if (!admitted) {
            Drop(run, "the engine is shutting down");
            return;
          }
          Send(run_ptr);
        });
        --outstanding_;
      });
  admission->returned = true;
  if (admission->admitted_here) {
    --outstanding_;
    call.ticket = 0;
    Send(run_ptr);
  }
}

void Executor::Send(const std::shared_ptr<RunExec>& run_ptr) {
  RunExec& run = *run_ptr;
  RunExec::Call& call = run.call;
  const Step& step = *call.step;
  const bool agent = step.kind == StepKind::kRunAgentTask;
  Result<std::shared_ptr<bedrock::BedrockClient>> client =
      deps_.provider_clients->ForProvider(run.row.org_id, call.provider_id);
  if (!client.ok()) {
    json error = LocalError("provider_unusable", client.status().message(),
                            "Fix the provider's credentials or region (Providers > Test Connection)");
    OnCallResult(run_ptr, FailedPreconditionError(client.status().message()), error, false, "", Millis(0));
    return;
  }
  bedrock::CallOptions options;
  const int64_t timeout = step.options.timeout_ms > 0 ? step.options.timeout_ms
                                                      : (agent ? kDefaultAgentTimeoutMs : kDefaultPromptTimeoutMs);
  options.attempt_timeout = Millis(timeout);
  options.overall_deadline = Millis(timeout);
  options.max_attempts = 1;  // the step's retry policy decides
  call.sent_at = deps_.clock->MonotonicNow();
  ++outstanding_;
  if (agent) {
    bedrock::InvokeAgentRequest request;
    request.agent_alias_arn = call.target;
    request.session_id = call.session_id;
    request.enable_trace = true;
    request.options = options;
    if (!call.rc_invocation_id.empty()) {
      request.return_control_invocation_id = call.rc_invocation_id;
      request.return_control_results = call.rc_results;
    } else {
      request.input_text = call.follow_up_text.empty() ? call.input_text : call.follow_up_text;
    }
    call.handle = client.value()->InvokeAgent(
        request, {}, [this, run_ptr](bedrock::BedrockResult<bedrock::AgentResult> result) {
          Post(run_ptr, [this, run_ptr, result = std::move(result)](RunExec& run) {
            if (!CallArrived(run_ptr, result.ok() ? nullptr : &result.error())) return;
            RunExec::Call& call = run.call;
            const bedrock::AgentResult& answer = result.value();
            call.request_ids.push_back(answer.request_id);
            int64_t in = 0, out = 0;
            AgentUsage(answer, &in, &out, &call.price_model);
            call.input_tokens += in;
            call.output_tokens += out;
            const Step& step = *call.step;
            if (answer.return_control) {
              if (++call.control_rounds > kMaxReturnControlRounds) {
                OnCallResult(run_ptr, FailedPreconditionError("return control loop"),
                             LocalError("return_control_loop",
                                        "the agent returned control more than " +
                                            std::to_string(kMaxReturnControlRounds) + " times in step " + step.id,
                                        "Check the agent's action group and the step's return_control replies"),
                             false, "", Millis(0));
                return;
              }
              call.rc_results.clear();
              // Each invocation is answered by the step's reply for its key
              // ("group/function", or "group/METHOD apiPath" for an API-schema
              // action group), rendered with the invocation's parameters as
              // {control.*}.
              auto reply_for = [&](const std::string& key,
                                   const std::vector<bedrock::InvocationParameter>& params,
                                   std::string* text) {
                auto reply = step.return_control.find(key);
                if (reply == step.return_control.end()) {
                  std::string names;
                  for (const auto& p : params) names += (names.empty() ? "" : ", ") + p.name;
                  OnCallResult(
                      run_ptr, FailedPreconditionError("unanswered return control"),
                      LocalError(
                          "agent_returned_control",
                          "the agent asked Quarry to run " + key +
                              " (parameters: " + (names.empty() ? "none" : names) + ") but step " +
                              step.id + " has no return_control reply for it",
                          "Add \"return_control\": {\"" + key +
                              "\": \"reply text\"} to the step, or give the action group a Lambda "
                              "function in Bedrock so the agent does not return control"),
                      false, "", Millis(0));
                  return false;
                }
                Scope scope = run.scope;
                scope.control = json::object();
                for (const auto& p : params) scope.control[p.name] = p.value;
                Result<std::string> rendered = Render(reply->second, scope);
                *text = rendered.ok() ? rendered.value() : std::string();
                return true;
              };
              for (const bedrock::FunctionInvocation& invocation :
                   answer.return_control->invocations) {
                std::string text;
                if (!reply_for(invocation.action_group + "/" + invocation.function,
                               invocation.parameters, &text)) {
                  return;
                }
                call.rc_results.push_back(
                    bedrock::ReturnControlResult::ForFunction(invocation, std::move(text)));
              }
              for (const bedrock::ApiInvocation& invocation :
                   answer.return_control->api_invocations) {
                std::vector<bedrock::InvocationParameter> params = invocation.parameters;
                for (const auto& [media_type, properties] : invocation.request_body) {
                  params.insert(params.end(), properties.begin(), properties.end());
                }
                std::string method = invocation.http_method;
                for (char& c : method)
                  c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
                std::string text;
                if (!reply_for(invocation.action_group + "/" + method + " " + invocation.api_path,
                               params, &text)) {
                  return;
                }
                call.rc_results.push_back(
                    bedrock::ReturnControlResult::ForApi(invocation, std::move(text)));
              }
              if (call.rc_results.empty()) {
                OnCallResult(run_ptr, FailedPreconditionError("empty return control"),
                             LocalError("agent_returned_control",
                                        "the agent returned control in step " + step.id +
                                            " without naming a function or API operation to run",
                                        "Check the agent's action groups in the Bedrock console"),
                             false, "", Millis(0));
                return;
              }
              call.rc_invocation_id = answer.return_control->invocation_id;
              call.follow_up_text.clear();
              Invoke(run_ptr);
              return;
            }
            call.rc_invocation_id.clear();
            call.rc_results.clear();
            json value{{"text", answer.completion}, {"session_id", answer.session_id}};
            if (step.output.structured) {
              Result<json> parsed = ParseStructuredAnswer(answer.completion, step.output.fields);
              if (!parsed.ok()) {
                if (!call.repair_used) {
                  call.repair_used = true;
                  call.follow_up_text = RepairInstructions(parsed.status().message(), step.output.fields);
                  Invoke(run_ptr);
                  return;
                }
                OnCallResult(run_ptr, parsed.status(),
                             LocalError("invalid_structured_output",
                                        "the agent's answer did not match the declared fields, even after one "
                                        "repair turn: " + parsed.status().message(),
                                        "Make the task clearer about the fields, or relax them (defaults, "
                                        "fewer enum values)"),
                             false, "", Millis(0));
                return;
              }
              value["outputs"] = parsed.value();
              value["repaired"] = call.repair_used;
            }
            OnCallResult(run_ptr, value, nullptr, false, "", Millis(0));
          });
          --outstanding_;
        });
  } else {
    bedrock::ModelRequest request;
    request.model_id = call.target;
    request.system = call.system;
    request.messages.push_back(bedrock::ChatMessage::User(call.input_text));
    request.max_tokens = call.max_tokens;
    request.temperature = call.temperature;
    request.options = options;
    if (step.output.structured) {
      request.tools.push_back(bedrock::ToolSpec{"record_output", "Record the answer's fields.",
                                                OutputJsonSchema(step.output.fields)});
      request.tool_choice = bedrock::ToolChoice{bedrock::ToolChoice::Kind::kTool, "record_output"};
    }
    call.handle = client.value()->InvokeModel(
        request, [this, run_ptr](bedrock::BedrockResult<bedrock::ModelResult> result) {
          Post(run_ptr, [this, run_ptr, result = std::move(result)](RunExec& run) {
            if (!CallArrived(run_ptr, result.ok() ? nullptr : &result.error())) return;
            RunExec::Call& call = run.call;
            const bedrock::ModelResult& answer = result.value();
            call.request_ids.push_back(answer.request_id);
            call.input_tokens += answer.usage.input_tokens;
            call.output_tokens += answer.usage.output_tokens;
            const Step& step = *call.step;
            json value{{"text", answer.text}, {"session_id", ""}};
            if (step.output.structured) {
              const bedrock::ContentBlock* tool = answer.FirstToolUse();
              Result<json> parsed = tool != nullptr ? ValidateStructuredValues(tool->tool_input, step.output.fields)
                                                    : ParseStructuredAnswer(answer.text, step.output.fields);
              if (!parsed.ok()) {
                OnCallResult(run_ptr, parsed.status(),
                             LocalError("invalid_structured_output",
                                        "the model's answer did not match the declared fields: " +
                                            parsed.status().message(),
                                        "Make the prompt clearer about the fields, or relax them"),
                             false, "", Millis(0));
                return;
              }
              value["outputs"] = parsed.value();
            }
            OnCallResult(run_ptr, value, nullptr, false, "", Millis(0));
          });
          --outstanding_;
        });
  }
}

bool Executor::CallArrived(const std::shared_ptr<RunExec>& run_ptr, const bedrock::BedrockError* error) {
  RunExec& run = *run_ptr;
  RunExec::Call& call = run.call;
  call.handle = bedrock::CallHandle();  // its state holds the answer's closure: break the cycle
  run.bedrock_us += MicrosSince(call.sent_at, *deps_.clock);
  if (error == nullptr) return true;
  if (!error->aws.request_id.empty()) call.request_ids.push_back(error->aws.request_id);
  if (error->aws.code == "ThrottlingException") deps_.limiter->OnThrottled(call.limit_key);
  OnCallResult(run_ptr, error->status, BedrockErrorJson(*error), error->retryable, ErrorClassOf(*error),
               error->aws.retry_after.value_or(Millis(0)));
  return false;
}

void Executor::OnCallResult(const std::shared_ptr<RunExec>& run_ptr, Result<json> result, json error_json,
                            bool retryable, const std::string& error_class, std::chrono::milliseconds retry_after) {
  RunExec& run = *run_ptr;
  RunExec::Call& call = run.call;
  const Step& step = *call.step;
  if (result.ok()) {
    json value = std::move(result).value();
    value["request_ids"] = call.request_ids;
    value["input_tokens"] = call.input_tokens;
    value["output_tokens"] = call.output_tokens;
    value["price_model"] = call.price_model;
    if (call.leader) {
      auto cached = std::make_shared<CachedCall>();
      cached->value = value;
      cached->input_tokens = call.input_tokens;
      cached->output_tokens = call.output_tokens;
      deps_.cache->Complete(call.cache_key, CacheOutcome{Status::Ok(), cached},
                            std::chrono::seconds(step.options.cache_ttl_seconds));
      call.leader = false;
    }
    deps_.limiter->Settle(call.limit_key, call.estimated_tokens, call.input_tokens + call.output_tokens);
    CompleteCall(run_ptr, step, value, false);
    return;
  }
  call.last_error = error_json;
  const RetryPolicy& policy = step.options.retry;
  const bool class_listed =
      !error_class.empty() && std::find(policy.retry_on.begin(), policy.retry_on.end(), error_class) != policy.retry_on.end();
  bool stopping;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping = stopping_;
  }
  if (retryable && class_listed && call.attempt < policy.max_attempts && !stopping) {
    // Exponential backoff with jitter; a throttled call also waits for the
    // (now tighter) rate budget when it is re-admitted.
    double delay = std::min<double>(static_cast<double>(policy.cap_ms),
                                    static_cast<double>(policy.base_ms) * std::pow(2.0, call.attempt - 1));
    if (policy.jitter) {
      thread_local std::mt19937_64 rng{std::random_device{}()};
      delay *= std::uniform_real_distribution<double>(0.5, 1.0)(rng);
    }
    delay = std::max<double>(delay, static_cast<double>(retry_after.count()));
    ++call.retries;
    call.rc_invocation_id.clear();
    call.rc_results.clear();
    ++outstanding_;
    const MonotonicTime asked = deps_.clock->MonotonicNow();
    timer_.After(Millis(static_cast<int64_t>(delay)), [this, run_ptr, asked] {
      Post(run_ptr, [this, run_ptr, asked](RunExec& run) {
        run.wait_us += MicrosSince(asked, *deps_.clock);
        Invoke(run_ptr);
      });
      --outstanding_;
    });
    return;
  }
  if (call.leader) {
    deps_.cache->Complete(call.cache_key, CacheOutcome{result.status(), nullptr}, std::chrono::seconds(0));
    call.leader = false;
  }
  json error = error_json.is_null() ? LocalError("step_failed", result.status().message(), "") : error_json;
  error["attempts"] = call.attempt;
  FailStep(run_ptr, step, error);
}

void Executor::CompleteCall(const std::shared_ptr<RunExec>& run_ptr, const Step& step, const json& result,
                            bool cache_hit) {
  RunExec& run = *run_ptr;
  RunExec::Call& call = run.call;
  json output = json::object();
  if (result.contains("outputs") && result["outputs"].is_object()) output = result["outputs"];
  output["text"] = result.value("text", "");
  output["session_id"] = cache_hit ? std::string() : result.value("session_id", "");
  run.scope.steps[step.id] = output;

  const int64_t in = cache_hit ? 0 : result.value("input_tokens", int64_t{0});
  const int64_t out = cache_hit ? 0 : result.value("output_tokens", int64_t{0});
  std::string price_model = result.value("price_model", "");
  if (price_model.empty()) price_model = "default";
  const double cost = deps_.prices->Cost(price_model, call.region, in, out);
  run.totals.input_tokens += in;
  run.totals.output_tokens += out;
  run.totals.cost_usd += cost;
  run.totals.bedrock_ms += run.bedrock_us / 1000;

  StepRow row;
  row.input = call.rendered;
  row.output = output;
  row.request_ids = cache_hit ? std::vector<std::string>{} : result.value("request_ids", std::vector<std::string>{});
  row.input_tokens = in;
  row.output_tokens = out;
  row.cost_usd = cost;
  row.cache_hit = cache_hit;
  row.retries = call.retries;
  row.attempts = std::max(1, call.attempt);
  row.target = step.kind == StepKind::kRunAgentTask ? step.agent_id : step.service_id;
  if (result.value("repaired", false)) row.output["repaired"] = true;
  PushStep(run, &step, std::string(StepKindName(step.kind)), "succeeded", json(), json());
  StepRow& pushed = run.pending.back();
  row.run_id = pushed.run_id;
  row.seq = pushed.seq;
  row.step_id = pushed.step_id;
  row.type = pushed.type;
  row.status = pushed.status;
  row.latency_ms = pushed.latency_ms;
  row.bedrock_ms = run.bedrock_us / 1000;
  row.engine_us = pushed.engine_us;
  row.started_at = pushed.started_at;
  row.finished_at = pushed.finished_at;
  pushed = std::move(row);

  // Outputs mapped onto record fields: an Update Record effect of this step.
  if (!step.map.empty()) {
    Step update;
    update.id = step.id;
    update.kind = StepKind::kUpdateRecord;
    for (const auto& [output_name, field] : step.map) {
      update.values[field] = output.contains(output_name) ? output[output_name] : json(nullptr);
    }
    // The journal row above records the call; the map's update commits with it.
    if (run.test) {
      run.pending.back().output["would_apply"] = json{{"record", run.record_id}, {"values", [&] {
                                                        json v = json::object();
                                                        for (const auto& [f, value] : update.values) v[f] = value;
                                                        return v;
                                                      }()}};
      ++run.pc;
      Advance(run_ptr);
      return;
    }
    if (run.record_id.empty()) {
      ++run.pc;
      Advance(run_ptr);
      return;
    }
    const bool finish_after = EndsAfter(run.program(), run.pc);
    const domain::ChangeContext change = domain::ChangeContext::System(run.row.org_id, *deps_.clock);
    json values = json::object();
    for (const auto& [field, value] : update.values) values[field] = value;
    domain::FieldErrors errors;
    std::optional<domain::Record> after;
    json run_outputs = json::object();
    Status status = deps_.db->Write([&](store::Tx& tx) -> Status {
      errors.Clear();
      QUARRY_ASSIGN_OR_RETURN(domain::RecordChange written,
                              domain::UpdateRecordInTx(tx, change, *run.loaded->schema, run.record_id, values, {},
                                                       &errors));
      after = *written.after;
      if (deps_.enqueue_triggered && run.depth < kMaxCascadeDepth) {
        QUARRY_RETURN_IF_ERROR(deps_.enqueue_triggered(tx, written, run.depth + 1, run.row.automation_id));
      }
      json state{{"position", run.pc + 1}, {"seq", run.seq}, {"steps", run.scope.steps}};
      QUARRY_RETURN_IF_ERROR(deps_.store->CommitProgress(tx, run.lease, run.pending, state, run.totals));
      if (finish_after) {
        Scope scope = run.scope;
        scope.record = RecordScopeJson(*after);
        run_outputs = RenderRunOutputs(run.spec(), scope);
        QUARRY_RETURN_IF_ERROR(deps_.store->FinishRun(tx, run.lease, "succeeded", run_outputs, nullptr, run.totals));
      }
      return Status::Ok();
    });
    if (!status.ok()) {
      if (IsLeaseLost(status) || status.code() == StatusCode::kUnavailable) {
        Drop(run, status.ToString());
        return;
      }
      json error = LocalError("record_step_failed",
                              "step " + step.id + " could not write its outputs onto the record: " + status.message(),
                              "Check the step's map: each output must fit its field (type, options, length)");
      if (!errors.empty()) error["fields"] = errors.ToJson();
      run.pending.back().status = "failed";
      run.pending.back().error = error;
      Finish(run, "failed", error, true);
      return;
    }
    run.pending.clear();
    if (after) run.scope.record = RecordScopeJson(*after);
    if (finish_after) {
      AnnounceFinished(run, "succeeded", run_outputs, nullptr);
      return;
    }
  }
  ++run.pc;
  Advance(run_ptr);
}

// The journal row of a failed Bedrock step carries what the attempts did.
void Executor::NoteCallAttempts(RunExec& run, const Step& step) {
  if (!step.CallsBedrock() || run.pending.empty()) return;
  StepRow& row = run.pending.back();
  row.attempts = std::max(1, run.call.attempt);
  row.retries = run.call.retries;
  row.request_ids = run.call.request_ids;
  row.target = step.kind == StepKind::kRunAgentTask ? step.agent_id : step.service_id;
  row.input_tokens = run.call.input_tokens;
  row.output_tokens = run.call.output_tokens;
}

void Executor::FailStep(const std::shared_ptr<RunExec>& run_ptr, const Step& step, json error) {
  RunExec& run = *run_ptr;
  const std::string type(StepKindName(step.kind));
  if (deps_.metrics) deps_.metrics->Add(kStepsCounter, {{"type", type}, {"status", "failed"}});
  error["step"] = step.id;
  switch (step.options.on_error) {
    case OnError::kContinue: {
      json output = step.output.structured ? DefaultOutputValues(step.output.fields, step.options.defaults)
                                           : json::object();
      if (!output.contains("text")) output["text"] = step.options.defaults.value("text", "");
      output["session_id"] = "";
      run.scope.steps[step.id] = output;
      PushStep(run, &step, type, "defaulted", run.call.rendered, output, error);
      NoteCallAttempts(run, step);
      ++run.pc;
      Advance(run_ptr);
      return;
    }
    case OnError::kReview: {
      json proposed = step.output.structured ? DefaultOutputValues(step.output.fields, step.options.defaults)
                                             : json{{"text", step.options.defaults.value("text", "")}};
      PushStep(run, &step, type, "failed", run.call.rendered, json::object(), error);
      NoteCallAttempts(run, step);
      if (run.test) {
        json output = proposed;
        output["decision"] = "approved";
        output["would_escalate"] = true;
        run.scope.steps[step.id] = output;
        ++run.pc;
        Advance(run_ptr);
        return;
      }
      Escalate(run, step, "step " + step.id + " failed: " + error.value("message", ""), proposed);
      return;
    }
    case OnError::kHalt:
      break;
  }
  PushStep(run, &step, type, "failed", run.call.rendered, json::object(), error);
  NoteCallAttempts(run, step);
  Finish(run, "failed", error, true);
}

// ---------------------------------------------------------------------------
// Journal and end

void Executor::PushStep(RunExec& run, const Step* step, std::string_view type, std::string status, json input,
                        json output, json error) {
  StepRow row;
  row.run_id = run.row.id;
  row.seq = run.seq++;
  row.step_id = step != nullptr ? step->id : std::string();
  row.type = std::string(type);
  row.status = std::move(status);
  row.attempts = 1;
  row.input = input.is_null() ? json::object() : std::move(input);
  row.output = output.is_null() ? json::object() : std::move(output);
  row.error = std::move(error);
  const int64_t latency_us = MicrosSince(run.step_started, *deps_.clock);
  row.latency_ms = latency_us / 1000;
  row.bedrock_ms = run.bedrock_us / 1000;
  row.engine_us = std::max<int64_t>(0, latency_us - run.bedrock_us - run.wait_us);
  const std::string now = IsoNow(*deps_.clock);
  row.started_at = now;
  row.finished_at = now;
  if (deps_.metrics) {
    deps_.metrics->Add(kStepsCounter, {{"type", row.type}, {"status", row.status}});
    deps_.metrics->Observe(kStepOverheadHistogram, {{"type", row.type}}, static_cast<double>(row.engine_us) / 1e6);
  }
  if (Listening()) {
    deps_.emit(RunEvent{run.row.org_id, run.row.automation_id, run.row.id, "step_finished",
                        json{{"seq", row.seq}, {"step_id", row.step_id}, {"type", row.type}, {"status", row.status},
                             {"latency_ms", row.latency_ms}, {"cache_hit", row.cache_hit}}});
  }
  run.pending.push_back(std::move(row));
}

bool Executor::CommitPending(RunExec& run) {
  const json state = StateJson(run);
  Status status = deps_.db->Write([&](store::Tx& tx) -> Status {
    return deps_.store->CommitProgress(tx, run.lease, run.pending, state, run.totals);
  });
  if (!status.ok()) {
    Drop(run, "saving progress failed: " + status.ToString());
    return false;
  }
  run.pending.clear();
  return true;
}

void Executor::Finish(RunExec& run, const std::string& status, json error, bool alert) {
  const json outputs = run.loaded && status == "succeeded" ? RenderRunOutputs(run.spec(), run.scope) : json::object();
  const json state = run.prepared ? StateJson(run) : run.row.state;
  std::string alert_id;
  const bool raise_alert = alert && status == "failed" && !run.test;
  AlertRow alert_row;
  if (raise_alert) {
    alert_row.org_id = run.row.org_id;
    alert_row.automation_id = run.row.automation_id;
    alert_row.run_id = run.row.id;
    alert_row.step_id = error.is_object() ? error.value("step", "") : "";
    alert_row.message = "run " + run.row.id + " failed" +
                        (alert_row.step_id.empty() ? "" : " at step " + alert_row.step_id) + ": " +
                        (error.is_object() ? error.value("message", "") : std::string());
    alert_row.error = error;
    alert_row.delivery = run.loaded && !run.spec().settings.alert_webhook.empty() ? "pending" : "none";
  }
  Status committed = deps_.db->Write([&](store::Tx& tx) -> Status {
    if (!run.pending.empty()) {
      QUARRY_RETURN_IF_ERROR(deps_.store->CommitProgress(tx, run.lease, run.pending, state, run.totals));
    }
    QUARRY_RETURN_IF_ERROR(deps_.store->FinishRun(tx, run.lease, status, outputs, error, run.totals));
    if (raise_alert) {
      QUARRY_ASSIGN_OR_RETURN(alert_id, deps_.store->InsertAlert(tx, alert_row));
    }
    return Status::Ok();
  });
  if (!committed.ok()) {
    Drop(run, "finishing the run failed: " + committed.ToString());
    return;
  }
  run.pending.clear();
  if (raise_alert && alert_row.delivery == "pending") {
    DeliverAlert(run, alert_id, json{{"type", "automation.run_failed"},
                                     {"alert_id", alert_id},
                                     {"automation_id", run.row.automation_id},
                                     {"run_id", run.row.id},
                                     {"message", alert_row.message},
                                     {"error", error}});
  }
  if (status == "failed") {
    spdlog::warn("engine: run {} of automation {} failed: {}", run.row.id, run.row.automation_id,
                 error.is_object() ? error.value("message", "") : std::string());
  }
  AnnounceFinished(run, status, outputs, error);
}

void Executor::AnnounceFinished(RunExec& run, const std::string& status, const json& outputs, const json& error) {
  run.row.status = status;
  if (deps_.metrics) deps_.metrics->Add(kRunsCounter, {{"status", status}});
  if (Listening()) {
    json data = run.row.ToJson();
    data["outputs"] = outputs;
    data["error"] = error;
    deps_.emit(RunEvent{run.row.org_id, run.row.automation_id, run.row.id, "run_finished", data});
  }
  Retire(run);
}

void Executor::DeliverAlert(const RunExec& run, const std::string& alert_id, const json& body) {
  WebhookRequest request;
  request.url = run.spec().settings.alert_webhook;
  request.secret = run.spec().settings.alert_secret;
  request.body = body.dump();
  request.delivery_id = alert_id;
  ++outstanding_;
  Status started = deps_.webhooks->Send(request, [this, alert_id](WebhookResult result) {
    const std::string delivery = result.status.ok() ? "delivered" : "failed";
    if (!result.status.ok()) {
      spdlog::warn("engine: alert {} could not be delivered: {}", alert_id, result.status.ToString());
    }
    pool_.Post([this, alert_id, delivery] {
      (void)deps_.db->Write(
          [&](store::Tx& tx) -> Status { return deps_.store->SetAlertDelivery(tx, alert_id, delivery); });
    });
    --outstanding_;
  });
  if (!started.ok()) {
    --outstanding_;
    spdlog::warn("engine: alert {} not sent: {}", alert_id, started.ToString());
  }
}

void Executor::Drop(RunExec& run, const std::string& why) {
  spdlog::info("engine: run {} left this node: {}", run.row.id, why);
  run.call.handle.Cancel();
  Retire(run);
}

void Executor::Retire(RunExec& run) {
  run.call.handle = bedrock::CallHandle();  // a finished call's state would keep the run alive
  std::shared_ptr<RunExec> next;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = active_.find(run.row.id);
    if (it == active_.end()) return;
    std::shared_ptr<RunExec> keep = it->second;  // `run` stays valid until this scope ends
    active_.erase(it);
    if (run.counted) {
      run.counted = false;
      int& used = running_per_automation_[run.row.automation_id];
      if (used > 0) --used;
      auto waiting = waiting_.find(run.row.automation_id);
      if (waiting != waiting_.end() && !waiting->second.empty() && !stopping_) {
        next = waiting->second.front();
        waiting->second.pop_front();
        --waiting_count_;
        ++used;
        next->counted = true;
        if (waiting->second.empty()) waiting_.erase(waiting);
      }
    }
    if (deps_.metrics) deps_.metrics->Set(kInFlightGauge, {}, static_cast<double>(active_.size()));
  }
  changed_.notify_all();
  wake_.notify_one();
  if (next) {
    if (Listening()) {
      deps_.emit(RunEvent{next->row.org_id, next->row.automation_id, next->row.id, "run_started", next->row.ToJson()});
    }
    Post(next, [this, next](RunExec&) { Advance(next); });
  }
}

void Executor::Drain(std::chrono::milliseconds timeout) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (released_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (claimer_.joinable()) claimer_.join();
  // Runs over their automation's cap have not started: back to the queue now.
  std::vector<std::shared_ptr<RunExec>> to_release;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    for (auto& [automation, queue] : waiting_) {
      for (auto& run : queue) to_release.push_back(run);
    }
    waiting_.clear();
    waiting_count_ = 0;
    for (const auto& run : to_release) active_.erase(run->row.id);
    changed_.wait_for(lock, timeout, [this] { return active_.empty(); });
    released_ = true;
    for (const auto& [id, run] : active_) to_release.push_back(run);
    active_.clear();
  }
  changed_.notify_all();
  for (const auto& run : to_release) {
    run->call.handle.Cancel();
    run->call.handle = bedrock::CallHandle();
    if (run->call.ticket != 0) deps_.limiter->Cancel(run->call.ticket);
    const int64_t now = deps_.store->NowMs();
    (void)deps_.db->Write([&](store::Tx& tx) -> Status { return deps_.store->ReleaseRun(tx, run->lease, now); });
  }
  // Callbacks still on their way hold `this`: wait for them (bounded).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (outstanding_.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(Millis(5));
  }
  pool_.Stop();
  timer_.Stop();
}

}  // namespace quarry::engine
