// Routes of the automation engine: automations (drafts, validation,
// publishing, test runs, on-demand calls), runs with their steps, live
// progress as server-sent events, the human review queue, alerts, statistics
// and templates. Thin: parse, call the engine (engine/engine.h), shape JSON.
//
//   GET    /api/v1/automations                          ?app= (all apps when absent)
//   GET    /api/v1/apps/{app_id}/automations
//   POST   /api/v1/apps/{app_id}/automations            create a draft (builder)
//   POST   /api/v1/apps/{app_id}/automations/from-template   object, fields and draft from a
//   template (builder) GET    /api/v1/automations/{automation_id} PATCH
//   /api/v1/automations/{automation_id}          name, status, draft (builder; If-Match) DELETE
//   /api/v1/automations/{automation_id}          (builder; If-Match) POST
//   /api/v1/automations/{automation_id}/validate the draft or a given definition (builder) POST
//   /api/v1/automations/{automation_id}/publish  (builder) POST
//   /api/v1/automations/{automation_id}/test     test run on a sample record (builder) POST
//   /api/v1/automations/{automation_id}/invoke   on-demand call with inputs GET
//   /api/v1/automations/{automation_id}/runs GET    /api/v1/automations/{automation_id}/events SSE:
//   the automation's runs as they progress GET    /api/v1/automations/{automation_id}/stats
//   ?window=1h|24h|7d GET    /api/v1/agents/{agent_id}/stats              ?window=1h|24h|7d GET
//   /api/v1/runs                                 ?automation=&status=&record=&mode= GET
//   /api/v1/runs/{run_id}                        the run with its steps POST
//   /api/v1/runs/{run_id}/cancel GET    /api/v1/runs/{run_id}/events                 SSE: the run's
//   progress, ends after run_finished GET    /api/v1/reviews ?status=pending (default) | ... | all
//   GET    /api/v1/reviews/{review_id}
//   POST   /api/v1/reviews/{review_id}/decision
//   GET    /api/v1/alerts                               ?automation=
//   GET    /api/v1/automation-templates
//   GET    /api/v1/automation-templates/{template_id}
//   GET    /api/v1/engine/status                        (builder)
//
// Authorization: the engine's methods check the actor for every write; the
// builder-only routes (marked above) also check first, before any work, so a
// member's 403 says what the role allows; reads need a member of the
// organization and see only the organization's rows. Every route answers 503 while the server runs
// without the engine.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "api/api.h"
#include "common/clock.h"
#include "domain/agent_connections.h"
#include "domain/apps.h"
#include "domain/fields.h"
#include "domain/paging.h"
#include "domain/records.h"
#include "engine/engine.h"
#include "engine/run_store.h"
#include "engine/templates.h"

namespace quarry::api {
namespace {

using domain::FieldErrors;
using nlohmann::json;

// Test runs and on-demand calls block an API worker while they wait.
constexpr int kMaxWaitSeconds = 120;
constexpr int kDefaultTestWaitSeconds = 60;
constexpr int kDefaultInvokeWaitSeconds = 30;
// Live progress streams open at once on this server, and events one stream
// may hold back while its snapshot loads.
constexpr size_t kMaxLiveStreams = 1000;
constexpr size_t kMaxHeldEvents = 10'000;
constexpr std::chrono::seconds kKeepAliveEvery{15};
constexpr std::chrono::milliseconds kSweepEvery{500};

constexpr std::string_view kAutomationNotFound =
    "check the automation id; GET /api/v1/automations lists the automations of your organization";
constexpr std::string_view kRunNotFound =
    "check the run id; GET /api/v1/runs lists recent runs (filter with ?automation=)";
constexpr std::string_view kReviewNotFound =
    "check the review id; GET /api/v1/reviews lists the pending reviews";
constexpr std::string_view kAppNotFound =
    "check the app id or namespace; GET /api/v1/apps lists the apps of your organization";
constexpr std::string_view kAgentNotFound =
    "check the agent connection id; GET /api/v1/apps/{app_id}/agents lists an app's agents";
constexpr std::string_view kTemplateNotFound =
    "GET /api/v1/automation-templates lists the templates (for example it-ticket-triage)";

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

// The envelope for a failed call, always with a hint: the framework's for
// the codes it knows, else one for this area.
ApiError Explain(const Status& status, std::string_view not_found_hint) {
  ApiError error = ApiError::FromStatus(status);
  if (!error.hint.empty()) return error;
  switch (status.code()) {
    case StatusCode::kNotFound:
      error.hint = std::string(not_found_hint);
      break;
    case StatusCode::kPermissionDenied:
      error.hint =
          "automations are created, changed, tested and published by builders and admins; ask an "
          "admin of your "
          "organization for the builder role";
      break;
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
      error.hint =
          "correct the request as the message says; GET /api/v1/openapi.json documents this route";
      break;
    case StatusCode::kFailedPrecondition:
      error.hint =
          "the message names the state that is needed; GET the entity to see where it stands now";
      break;
    case StatusCode::kAlreadyExists:
      error.hint = "use the existing one, or choose another name";
      break;
    case StatusCode::kDeadlineExceeded:
      error.hint =
          "the server gave up waiting; retry, or check the run's progress with GET /api/v1/runs";
      break;
    default:
      error.hint = "see the message; GET /api/v1/openapi.json documents this route";
      break;
  }
  return error;
}

// validation_failed with details.fields when inputs were named, else the
// explained envelope.
ApiResponse Failure(const Status& status, const FieldErrors& errors,
                    std::string_view not_found_hint = kAutomationNotFound) {
  ApiError error = Explain(status, not_found_hint);
  if (!errors.empty()) error.AddFieldErrors(status, errors.ToJson());
  return ApiResponse::Error(error);
}

ApiResponse NoEngine() {
  ApiError error;
  error.http_status = 503;
  error.code = "engine_unavailable";
  error.message =
      "the automation engine is not running on this server, so automations, runs and reviews are "
      "unavailable";
  error.hint =
      "start `quarry serve` with the engine enabled (the default), or send the request to a node "
      "that runs it; "
      "GET /readyz shows the server's state";
  return ApiResponse::Error(error);
}

// Builder-only routes are declared kAuthenticated and checked here, so a
// member's 403 carries this area's hint (the engine checks again).
Status RequireBuilder(const ApiRequest& request, std::string_view what) {
  if (request.who().CanBuild()) return Status::Ok();
  return PermissionDeniedError("only builders and admins may " + std::string(what) +
                               "; you are a " + std::string(domain::RoleName(request.who().role)));
}

// ---------------------------------------------------------------------------
// Live progress
// ---------------------------------------------------------------------------

// Wakes the hub's thread. Shared with the listeners, which the engine may
// still call after the hub is gone.
struct Signal {
  std::mutex mutex;
  std::condition_variable cv;
  bool pending = false;   // guarded by mutex
  bool stopping = false;  // guarded by mutex

  void Notify() {
    {
      std::lock_guard lock(mutex);
      pending = true;
    }
    cv.notify_one();
  }
};

// One open event stream subscribed to the engine. Engine listeners run on
// engine threads and must not block: they only queue bytes on the stream
// (SseStream::Send never blocks) under the watch's mutex.
//
// A run's stream ends with what the database holds: the engine announces a
// step when it ran, and journals it with the run's next commit, so a stream
// that subscribed in between would miss it. On run_finished (committed with
// the journal) the hub's thread reads the run and its steps, sends the steps
// not sent yet and the stored run, and closes.
struct Watch {
  std::mutex mutex;
  std::shared_ptr<SseStream> stream;
  std::shared_ptr<engine::Engine> engine;
  std::shared_ptr<Signal> signal;
  std::string org_id;
  std::string run_id;  // "" for an automation's stream
  uint64_t subscription = 0;
  bool live = false;       // the snapshot went out; events pass straight through
  bool finishing = false;  // run_finished arrived; the hub's thread ends the stream
  bool done = false;       // no more events (finished, client gone, failed)
  bool overflow = false;
  json finished_data;                  // run_finished's data, if the read fails
  std::vector<engine::RunEvent> held;  // arrived while the snapshot loaded
  // A run's steps go out once each. Stored steps carry their seq; the
  // engine's live step events may not, so those are matched by step id and
  // status against stored steps already sent (and the other way round).
  std::set<int64_t> steps_sent;
  std::map<std::string, int> stored_unmatched;  // "<step_id> <status>" -> count
  std::map<std::string, int> live_unmatched;

  static std::string StepKey(const json& step) {
    return step.value("step_id", "") + " " + step.value("status", "");
  }
  // Whether a step is new to the client; records it as sent when it is.
  bool FirstTime(const json& step, bool stored) {
    const json seq = step.value("seq", json());
    if (seq.is_number_integer() && steps_sent.count(seq.get<int64_t>())) return false;
    if (seq.is_number_integer()) steps_sent.insert(seq.get<int64_t>());
    const std::string key = StepKey(step);
    std::map<std::string, int>& other = stored ? live_unmatched : stored_unmatched;
    if (auto it = other.find(key); it != other.end() && it->second > 0) {
      --it->second;
      return false;
    }
    ++(stored ? stored_unmatched : live_unmatched)[key];
    return true;
  }

  bool ends_with_run() const { return !run_id.empty(); }

  // Sends one event (mutex held); `stored` when it comes from the database.
  void DeliverLocked(const std::string& kind, json data, const std::string& event_run_id,
                     const std::string& automation_id, bool stored = false) {
    if (done || finishing) return;
    if (data.is_object()) {
      if (!data.contains("run_id")) data["run_id"] = event_run_id;
      if (!data.contains("automation_id")) data["automation_id"] = automation_id;
    }
    if (ends_with_run() && kind == "run_finished") {
      finishing = true;
      finished_data = std::move(data);
      signal->Notify();
      return;
    }
    if (kind == "step_finished" && ends_with_run() && data.is_object() &&
        !FirstTime(data, stored)) {
      return;
    }
    if (!stream->Send(kind, data)) done = true;
  }
};

// The open watches of this server, and the thread that keeps them going:
// ends finished runs' streams (above), sends keep-alive comments every
// kKeepAliveEvery (clients and proxies drop idle streams), and unsubscribes
// watches that are done or whose client left (never from inside a listener).
class LiveEvents {
 public:
  LiveEvents() = default;
  LiveEvents(const LiveEvents&) = delete;
  LiveEvents& operator=(const LiveEvents&) = delete;

  ~LiveEvents() {
    {
      std::lock_guard lock(signal_->mutex);
      signal_->stopping = true;
    }
    signal_->cv.notify_all();
    if (thread_.joinable()) thread_.join();
    for (const std::shared_ptr<Watch>& watch : watches_) Retire(watch);
  }

  // Subscribes a new watch, whose events are held until the caller has sent
  // the snapshot and set `live`. ResourceExhausted when too many streams are
  // open.
  Result<std::shared_ptr<Watch>> Open(std::shared_ptr<engine::Engine> engine,
                                      std::shared_ptr<SseStream> stream, const std::string& org_id,
                                      const std::string& automation_id, const std::string& run_id) {
    auto watch = std::make_shared<Watch>();
    watch->stream = std::move(stream);
    watch->engine = std::move(engine);
    watch->signal = signal_;
    watch->org_id = org_id;
    watch->run_id = run_id;
    {
      std::lock_guard lock(mutex_);
      if (watches_.size() >= kMaxLiveStreams) return TooMany();
    }
    // Subscribed before it is listed, so the hub's thread never sees a watch
    // without its subscription.
    std::weak_ptr<Watch> weak = watch;
    watch->subscription = watch->engine->Subscribe(
        org_id, automation_id, run_id, [weak](const engine::RunEvent& event) {
          std::shared_ptr<Watch> w = weak.lock();
          if (!w) return;
          std::lock_guard lock(w->mutex);
          if (w->done) return;
          if (!w->live) {
            if (w->held.size() >= kMaxHeldEvents) {
              w->overflow = true;
            } else {
              w->held.push_back(event);
            }
            return;
          }
          w->DeliverLocked(event.kind, event.data, event.run_id, event.automation_id);
        });
    {
      std::lock_guard lock(mutex_);
      if (watches_.size() < kMaxLiveStreams) {
        watches_.push_back(watch);
        if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
        return watch;
      }
    }
    watch->engine->Unsubscribe(watch->subscription);
    return TooMany();
  }

 private:
  static Status TooMany() {
    return ResourceExhaustedError(
        "this server already serves " + std::to_string(kMaxLiveStreams) +
        " live event streams; close some (other `quarry runs watch` sessions) and retry");
  }

  void Loop() {
    auto next_keep_alive = std::chrono::steady_clock::now() + kKeepAliveEvery;
    while (true) {
      {
        std::unique_lock lock(signal_->mutex);
        signal_->cv.wait_for(lock, kSweepEvery,
                             [this] { return signal_->pending || signal_->stopping; });
        if (signal_->stopping) return;
        signal_->pending = false;
      }
      const bool keep_alive = std::chrono::steady_clock::now() >= next_keep_alive;
      if (keep_alive) next_keep_alive = std::chrono::steady_clock::now() + kKeepAliveEvery;
      std::vector<std::shared_ptr<Watch>> watches;
      {
        std::lock_guard lock(mutex_);
        watches = watches_;
      }
      std::set<const Watch*> retired;
      for (const std::shared_ptr<Watch>& watch : watches) {
        bool finishing;
        {
          std::lock_guard lock(watch->mutex);
          finishing = watch->finishing && !watch->done;
        }
        if (finishing) Finish(*watch);
        std::lock_guard lock(watch->mutex);
        if (!watch->done && watch->stream->closed()) watch->done = true;
        if (!watch->done && keep_alive && watch->live && !watch->finishing &&
            !watch->stream->Comment("keep-alive")) {
          watch->done = true;
        }
        if (watch->done) retired.insert(watch.get());
      }
      if (retired.empty()) continue;
      {
        std::lock_guard lock(mutex_);
        std::erase_if(watches_,
                      [&](const std::shared_ptr<Watch>& w) { return retired.count(w.get()) > 0; });
      }
      for (const std::shared_ptr<Watch>& watch : watches) {
        if (retired.count(watch.get())) Retire(watch);
      }
    }
  }

  // Ends a run's stream from the database (blocking read; this thread only).
  static void Finish(Watch& watch) {
    engine::RunRow run;
    std::vector<engine::StepRow> steps;
    engine::RunStore& store = watch.engine->store();
    const Status read = store.db().Read([&](store::Tx& tx) -> Status {
      QUARRY_ASSIGN_OR_RETURN(run, store.GetRun(tx, watch.org_id, watch.run_id));
      QUARRY_ASSIGN_OR_RETURN(steps, store.GetSteps(tx, watch.run_id));
      return Status::Ok();
    });
    std::lock_guard lock(watch.mutex);
    if (watch.done) return;
    json final_data = watch.finished_data;
    if (read.ok()) {
      for (const engine::StepRow& step : steps) {
        json data = step.ToJson();
        if (!watch.FirstTime(data, /*stored=*/true)) continue;
        data["run_id"] = run.id;
        data["automation_id"] = run.automation_id;
        if (!watch.stream->Send("step_finished", data)) break;
      }
      final_data = run.ToJson();
      final_data["run_id"] = run.id;
    }
    watch.stream->Send("run_finished", final_data);
    watch.stream->Close();
    watch.done = true;
  }

  static void Retire(const std::shared_ptr<Watch>& watch) {
    if (watch->subscription != 0) watch->engine->Unsubscribe(watch->subscription);
    std::lock_guard lock(watch->mutex);
    watch->done = true;
    watch->stream->Close();
  }

  std::shared_ptr<Signal> signal_ = std::make_shared<Signal>();
  std::mutex mutex_;
  std::vector<std::shared_ptr<Watch>> watches_;  // guarded by mutex_
  std::thread thread_;
};

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

// What a handler needs: the context, the engine (non-null) and the streams.
struct Env {
  ServerContext& context;
  std::shared_ptr<engine::Engine> engine;
  LiveEvents& live;

  engine::RunStore& store() { return engine->store(); }
  template <typename Fn>
  Status Read(Fn&& fn) {
    return store().db().Read([&](store::Tx& tx) -> Status { return fn(tx); });
  }
};

std::string Param(const ApiRequest& request, const std::string& name) {
  auto it = request.path_params.find(name);
  return it != request.path_params.end() ? it->second : std::string();
}

Result<domain::PageRequest> PageOf(const ApiRequest& request) {
  return domain::ParsePageRequest(request.QueryParam("limit"), request.QueryParam("cursor"));
}

template <typename T, typename F>
json PageJson(const domain::Page<T>& page, F to_json) {
  json items = json::array();
  for (const T& item : page.items) items.push_back(to_json(item));
  return {{"items", std::move(items)},
          {"next_cursor", page.next_cursor.empty() ? json(nullptr) : json(page.next_cursor)}};
}

std::string AutomationLocation(const std::string& id) { return "/api/v1/automations/" + id; }
std::string RunLocation(const std::string& id) { return "/api/v1/runs/" + id; }

bool IsFinished(const std::string& run_status) {
  return run_status == "succeeded" || run_status == "failed" || run_status == "cancelled";
}

// Names members of `body` that are not in `known`.
void CheckMembers(const json& body, const std::vector<std::string_view>& known,
                  std::string_view expected, FieldErrors* errors) {
  for (const auto& [key, value] : body.items()) {
    bool found = false;
    for (std::string_view k : known) found = found || k == key;
    if (!found) errors->Add(key, "is not a known property here; send " + std::string(expected));
  }
}

// An optional string member; "" when absent or null.
std::string StringMember(const json& body, const std::string& name, FieldErrors* errors) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return "";
  if (!it->is_string()) {
    errors->Add(name, "must be a string");
    return "";
  }
  return it->get<std::string>();
}

bool BoolMember(const json& body, const std::string& name, bool fallback, FieldErrors* errors) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) {
    errors->Add(name, "must be true or false");
    return fallback;
  }
  return it->get<bool>();
}

std::chrono::milliseconds WaitOf(const json& body, int fallback_seconds, FieldErrors* errors) {
  auto it = body.find("wait_seconds");
  if (it == body.end() || it->is_null()) return std::chrono::seconds(fallback_seconds);
  if (!it->is_number() || it->get<double>() < 0 || it->get<double>() > kMaxWaitSeconds) {
    errors->Add("wait_seconds",
                "must be a number of seconds from 0 to " + std::to_string(kMaxWaitSeconds) +
                    " (the run goes on after that; follow it with GET /api/v1/runs/{run_id})");
    return std::chrono::seconds(fallback_seconds);
  }
  return std::chrono::milliseconds(static_cast<int64_t>(it->get<double>() * 1000.0));
}

Result<engine::AutomationRow> LoadAutomation(Env& env, const ApiRequest& request) {
  engine::AutomationRow row;
  QUARRY_RETURN_IF_ERROR(env.Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(
        row, env.store().GetAutomation(tx, request.who().org_id, Param(request, "automation_id")));
    return Status::Ok();
  }));
  return row;
}

// The run's JSON with "steps": [...].
Result<json> RunWithSteps(Env& env, const std::string& org_id, const std::string& run_id) {
  engine::RunRow run;
  std::vector<engine::StepRow> steps;
  QUARRY_RETURN_IF_ERROR(env.Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(run, env.store().GetRun(tx, org_id, run_id));
    QUARRY_ASSIGN_OR_RETURN(steps, env.store().GetSteps(tx, run.id));
    return Status::Ok();
  }));
  json out = run.ToJson();
  json list = json::array();
  for (const engine::StepRow& step : steps) list.push_back(step.ToJson());
  out["steps"] = std::move(list);
  return out;
}

// 200 with the run when it finished, 202 (and Location) while it goes on.
Result<ApiResponse> RunResponse(Env& env, const ApiRequest& request, const engine::RunRow& run) {
  QUARRY_ASSIGN_OR_RETURN(json body, RunWithSteps(env, request.who().org_id, run.id));
  const bool finished = IsFinished(body.value("status", run.status));
  ApiResponse response = ApiResponse::Json(std::move(body), finished ? 200 : 202);
  if (!finished) response.headers.emplace_back("Location", RunLocation(run.id));
  return response;
}

// ?window=1h|24h|7d (default 24h) as milliseconds.
Result<std::pair<std::string, int64_t>> WindowOf(const ApiRequest& request) {
  static const std::map<std::string, int64_t> kWindows = {
      {"1h", int64_t{3'600'000}}, {"24h", int64_t{86'400'000}}, {"7d", int64_t{604'800'000}}};
  const std::string window = request.QueryParam("window", "24h");
  auto it = kWindows.find(window);
  if (it == kWindows.end()) {
    return InvalidArgumentError("window must be 1h, 24h or 7d (got \"" + window + "\")");
  }
  return std::make_pair(window, it->second);
}

json StatsJson(const engine::RunStats& stats, const std::string& window, int64_t since_ms) {
  json out = stats.ToJson();
  out["window"] = window;
  out["since"] = FormatIso8601Utc(WallTime(std::chrono::milliseconds(since_ms)));
  return out;
}

// ---------------------------------------------------------------------------
// Automations
// ---------------------------------------------------------------------------

Result<ApiResponse> ListAutomationsRoute(Env& env, ApiRequest& request) {
  QUARRY_ASSIGN_OR_RETURN(domain::PageRequest page, PageOf(request));
  const std::string app_ref =
      request.path_params.count("app_id") ? Param(request, "app_id") : request.QueryParam("app");
  domain::Page<engine::AutomationRow> rows;
  const std::string& org_id = request.who().org_id;
  Status status = env.Read([&](store::Tx& tx) -> Status {
    std::string app_id;
    if (!app_ref.empty()) {
      QUARRY_ASSIGN_OR_RETURN(app_id, domain::ResolveAppId(tx, org_id, app_ref));
    }
    QUARRY_ASSIGN_OR_RETURN(rows, env.store().ListAutomations(tx, org_id, app_id, page));
    return Status::Ok();
  });
  if (!status.ok()) return Failure(status, {}, kAppNotFound);
  return ApiResponse::Json(
      PageJson(rows, [](const engine::AutomationRow& row) { return row.ToJson(); }));
}

Result<ApiResponse> CreateAutomationRoute(Env& env, ApiRequest& request) {
  QUARRY_RETURN_IF_ERROR(RequireBuilder(request, "create automations"));
  QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
  FieldErrors errors;
  // The draft may be incomplete, but these two say what it is about.
  for (const char* member : {"name", "object"}) {
    auto it = body.find(member);
    if (it == body.end() || !it->is_string() || it->get<std::string>().empty()) {
      errors.Add(member,
                 std::string(member) == "name"
                     ? "is required: the automation's display name"
                     : "is required: the api_name of the app object the automation works on (e.g. "
                       "\"ticket\")");
    }
  }
  if (!errors.empty()) return Failure(errors.ToStatus(), errors);
  Result<engine::AutomationRow> row = env.engine->CreateAutomation(
      request.who(), Param(request, "app_id"), body, request.request_id);
  if (!row.ok()) return Failure(row.status(), errors, kAppNotFound);
  return ApiResponse::Created(row->ToJson(), AutomationLocation(row->id), row->version);
}

Result<ApiResponse> GetAutomationRoute(Env& env, ApiRequest& request) {
  QUARRY_ASSIGN_OR_RETURN(engine::AutomationRow row, LoadAutomation(env, request));
  return ApiResponse::Entity(row.ToJson(), row.version);
}

Result<ApiResponse> PatchAutomationRoute(Env& env, ApiRequest& request) {
  QUARRY_RETURN_IF_ERROR(RequireBuilder(request, "change automations"));
  QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
  FieldErrors errors;
  CheckMembers(
      body, {"name", "status", "definition"},
      "any of {\"name\", \"status\": \"active\"|\"paused\", \"definition\": {...the full draft}}",
      &errors);
  if (auto it = body.find("name");
      it != body.end() && (!it->is_string() || it->get<std::string>().empty())) {
    errors.Add("name", "must be a non-empty string");
  }
  if (auto it = body.find("status");
      it != body.end() && !(it->is_string() && (*it == "active" || *it == "paused"))) {
    errors.Add("status", "must be \"active\" or \"paused\"");
  }
  if (auto it = body.find("definition"); it != body.end() && !it->is_object()) {
    errors.Add("definition", "must be the automation's full definition (a JSON object)");
  }
  if (!errors.empty()) return Failure(errors.ToStatus(), errors);
  QUARRY_ASSIGN_OR_RETURN(engine::AutomationRow before, LoadAutomation(env, request));
  // If-Match is checked here with the framework's rules, and the version it
  // matched is passed on so a change in between still fails.
  QUARRY_RETURN_IF_ERROR(CheckIfMatch(request, before.version));
  std::optional<int64_t> expected;
  if (request.Header("If-Match") != nullptr) expected = before.version;
  Result<engine::AutomationRow> row =
      env.engine->UpdateAutomation(request.who(), before.id, body, expected, request.request_id);
  if (!row.ok()) return Failure(row.status(), errors);
  return ApiResponse::Entity(row->ToJson(), row->version);
}

Result<ApiResponse> DeleteAutomationRoute(Env& env, ApiRequest& request) {
  QUARRY_RETURN_IF_ERROR(RequireBuilder(request, "delete automations"));
  QUARRY_ASSIGN_OR_RETURN(engine::AutomationRow before, LoadAutomation(env, request));
  QUARRY_RETURN_IF_ERROR(CheckIfMatch(request, before.version));
  QUARRY_RETURN_IF_ERROR(
      env.engine->DeleteAutomation(request.who(), before.id, request.request_id));
  return ApiResponse::NoContent();
}

Result<ApiResponse> ValidateRoute(Env& env, ApiRequest& request) {
  QUARRY_RETURN_IF_ERROR(RequireBuilder(request, "validate automations"));
  QUARRY_ASSIGN_OR_RETURN(engine::AutomationRow row, LoadAutomation(env, request));
  // An empty body validates the saved draft; else the body is a definition,
  // bare or as {"definition": {...}}.
  json definition = row.draft;
  if (!request.body.empty()) {
    QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
    if (body.size() == 1 && body.contains("definition")) {
      if (!body["definition"].is_object()) {
        FieldErrors errors;
        errors.Add("definition", "must be a definition (a JSON object)");
        return Failure(errors.ToStatus(), errors);
      }
      definition = body["definition"];
    } else if (!body.empty()) {
      definition = std::move(body);
    }
  }
  FieldErrors errors;
  Status status = env.engine->Validate(request.who(), row.app_id, definition, &errors);
  if (!status.ok()) return Failure(status, errors);
  return ApiResponse::Json({{"valid", true}});
}

Result<ApiResponse> PublishRoute(Env& env, ApiRequest& request) {
  QUARRY_RETURN_IF_ERROR(RequireBuilder(request, "publish automations"));
  QUARRY_ASSIGN_OR_RETURN(engine::AutomationRow row, LoadAutomation(env, request));
  FieldErrors errors;
  Result<engine::AutomationVersion> version =
      env.engine->Publish(request.who(), row.id, &errors, request.request_id);
  if (!version.ok()) return Failure(version.status(), errors);
  QUARRY_ASSIGN_OR_RETURN(row, LoadAutomation(env, request));
  json out = row.ToJson();
  out["published"] = {{"version", version->version},
                      {"published_by", version->published_by},
                      {"published_at", version->published_at}};
  return ApiResponse::Entity(std::move(out), row.version);
}

Result<ApiResponse> TestRunRoute(Env& env, ApiRequest& request) {
  QUARRY_RETURN_IF_ERROR(RequireBuilder(request, "start test runs"));
  json body = json::object();
  if (!request.body.empty()) {
    QUARRY_ASSIGN_OR_RETURN(body, request.JsonBody());
  }
  FieldErrors errors;
  CheckMembers(body, {"record", "use_draft", "wait_seconds"},
               "{\"record\": \"TCK-1\" (id or handle), \"use_draft\": true, \"wait_seconds\": 60}",
               &errors);
  const std::string record = StringMember(body, "record", &errors);
  const bool use_draft = BoolMember(body, "use_draft", true, &errors);
  const std::chrono::milliseconds wait = WaitOf(body, kDefaultTestWaitSeconds, &errors);
  if (!errors.empty()) return Failure(errors.ToStatus(), errors);
  QUARRY_ASSIGN_OR_RETURN(engine::AutomationRow row, LoadAutomation(env, request));
  Result<engine::RunRow> run = env.engine->TestRun(request.who(), row.id, record, use_draft, wait);
  if (!run.ok()) return Failure(run.status(), errors);
  return RunResponse(env, request, *run);
}

Result<ApiResponse> InvokeRoute(Env& env, ApiRequest& request) {
  json body = json::object();
  if (!request.body.empty()) {
    QUARRY_ASSIGN_OR_RETURN(body, request.JsonBody());
  }
  FieldErrors errors;
  CheckMembers(body, {"inputs", "record", "wait_seconds"},
               "{\"inputs\": {...}, \"record\"?: \"TCK-1\", \"wait_seconds\"?: 30}", &errors);
  json inputs = json::object();
  if (auto it = body.find("inputs"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) {
      errors.Add("inputs", "must be an object of the trigger's input names to values");
    } else {
      inputs = *it;
    }
  }
  const std::string record = StringMember(body, "record", &errors);
  const std::chrono::milliseconds wait = WaitOf(body, kDefaultInvokeWaitSeconds, &errors);
  if (!errors.empty()) return Failure(errors.ToStatus(), errors);
  QUARRY_ASSIGN_OR_RETURN(engine::AutomationRow row, LoadAutomation(env, request));
  const std::string* key = request.Header("Idempotency-Key");
  Result<engine::RunRow> run =
      env.engine->Invoke(request.who(), row.id, inputs, record, key ? *key : "", wait, &errors);
  if (!run.ok() && run.status().code() == StatusCode::kAlreadyExists) {
    ApiError error = Explain(run.status(), kAutomationNotFound);
    error.code = "idempotency_key_used";
    error.hint =
        "this Idempotency-Key already started a run of this automation; find it with GET "
        "/api/v1/automations/" +
        row.id + "/runs, or send a new key for a new call";
    return ApiResponse::Error(error);
  }
  if (!run.ok()) return Failure(run.status(), errors);
  return RunResponse(env, request, *run);
}

// ---------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------

Result<ApiResponse> ListRunsRoute(Env& env, ApiRequest& request) {
  QUARRY_ASSIGN_OR_RETURN(domain::PageRequest page, PageOf(request));
  engine::RunFilter filter;
  filter.automation_id = request.path_params.count("automation_id")
                             ? Param(request, "automation_id")
                             : request.QueryParam("automation");
  filter.status = request.QueryParam("status");
  filter.mode = request.QueryParam("mode");
  const std::string record = request.QueryParam("record");
  FieldErrors errors;
  static const std::set<std::string> kStatuses = {"queued",    "running", "waiting_review",
                                                  "succeeded", "failed",  "cancelled"};
  if (!filter.status.empty() && !kStatuses.count(filter.status)) {
    errors.Add("status",
               "must be one of queued, running, waiting_review, succeeded, failed, cancelled");
  }
  if (!filter.mode.empty() && filter.mode != "live" && filter.mode != "test") {
    errors.Add("mode", "must be live or test");
  }
  if (!errors.empty()) return Failure(errors.ToStatus(), errors);
  const std::string& org_id = request.who().org_id;
  engine::AutomationRow automation;
  if (!filter.automation_id.empty()) {
    Status found = env.Read([&](store::Tx& tx) -> Status {
      QUARRY_ASSIGN_OR_RETURN(automation,
                              env.store().GetAutomation(tx, org_id, filter.automation_id));
      return Status::Ok();
    });
    if (!found.ok()) return Failure(found, errors);
  }
  filter.record_id = record;
  // A handle (TCK-12) needs the app to resolve; ids pass as they are, so
  // runs of a deleted record can still be found.
  if (!record.empty() && !record.starts_with("rec_")) {
    if (automation.id.empty() || !env.context.records) {
      errors.Add(
          "record",
          "a record handle needs ?automation= (to know the app); or pass the record id (rec_...)");
      return Failure(errors.ToStatus(), errors);
    }
    Result<domain::Record> found = env.context.records->Get(org_id, automation.app_id, record);
    if (!found.ok()) {
      return Failure(found.status(), errors,
                     "check the record handle; GET "
                     "/api/v1/apps/{app_id}/objects/{object_id}/records lists records");
    }
    filter.record_id = found->id;
  }
  domain::Page<engine::RunRow> runs;
  QUARRY_RETURN_IF_ERROR(env.Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(runs, env.store().ListRuns(tx, org_id, filter, page));
    return Status::Ok();
  }));
  return ApiResponse::Json(PageJson(runs, [](const engine::RunRow& run) { return run.ToJson(); }));
}

Result<ApiResponse> GetRunRoute(Env& env, ApiRequest& request) {
  QUARRY_ASSIGN_OR_RETURN(json run,
                          RunWithSteps(env, request.who().org_id, Param(request, "run_id")));
  return ApiResponse::Json(std::move(run));
}

Result<ApiResponse> CancelRunRoute(Env& env, ApiRequest& request) {
  const std::string run_id = Param(request, "run_id");
  Status cancelled = env.engine->CancelRun(request.who(), run_id, request.request_id);
  if (!cancelled.ok()) {
    ApiError error = Explain(cancelled, kRunNotFound);
    if (cancelled.code() == StatusCode::kFailedPrecondition) {
      error.hint =
          "only queued runs and runs waiting for review can be cancelled; a running run finishes "
          "its "
          "current step first, so retry in a moment, and a finished run stays as it is";
    }
    return ApiResponse::Error(error);
  }
  QUARRY_ASSIGN_OR_RETURN(json run, RunWithSteps(env, request.who().org_id, run_id));
  return ApiResponse::Json(std::move(run));
}

// The event a run's current status stands for, for the snapshot a new
// stream starts with.
std::string EventForStatus(const std::string& status) {
  if (status == "queued") return "run_queued";
  if (status == "waiting_review") return "run_waiting_review";
  if (IsFinished(status)) return "run_finished";
  return "run_started";
}

Status RunEventsRoute(Env& env, ApiRequest& request, std::shared_ptr<SseStream> stream) {
  const std::string& org_id = request.who().org_id;
  const std::string run_id = Param(request, "run_id");
  {
    engine::RunRow run;
    Status found = env.Read([&](store::Tx& tx) -> Status {
      QUARRY_ASSIGN_OR_RETURN(run, env.store().GetRun(tx, org_id, run_id));
      return Status::Ok();
    });
    if (!found.ok()) {
      stream->Fail(Explain(found, kRunNotFound));
      return Status::Ok();
    }
  }
  Result<std::shared_ptr<Watch>> opened = env.live.Open(env.engine, stream, org_id, "", run_id);
  if (!opened.ok()) {
    stream->Fail(Explain(opened.status(), kRunNotFound));
    return Status::Ok();
  }
  std::shared_ptr<Watch> watch = std::move(opened).value();
  // Read after subscribing, so nothing falls between the snapshot and the
  // live events (duplicated steps are dropped by sequence number).
  engine::RunRow run;
  std::vector<engine::StepRow> steps;
  Status read = env.Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(run, env.store().GetRun(tx, org_id, run_id));
    QUARRY_ASSIGN_OR_RETURN(steps, env.store().GetSteps(tx, run_id));
    return Status::Ok();
  });
  std::lock_guard lock(watch->mutex);
  if (!read.ok()) {
    watch->done = true;
    stream->Fail(Explain(read, kRunNotFound));
    return Status::Ok();
  }
  const json run_json = run.ToJson();
  if (run.status != "queued" || !steps.empty())
    watch->DeliverLocked("run_started", run_json, run.id, run.automation_id);
  for (const engine::StepRow& step : steps) {
    watch->DeliverLocked("step_finished", step.ToJson(), run.id, run.automation_id,
                         /*stored=*/true);
  }
  if (run.status != "running") {
    watch->DeliverLocked(EventForStatus(run.status), run_json, run.id, run.automation_id);
  }
  for (const engine::RunEvent& event : watch->held) {
    watch->DeliverLocked(event.kind, event.data, event.run_id, event.automation_id);
  }
  watch->held.clear();
  watch->live = true;
  if (watch->overflow && !watch->done) {
    watch->done = true;
    ApiError error =
        Explain(ResourceExhaustedError("too many events arrived while the stream started"), "");
    error.hint = "reconnect; the stream starts again from the run's current state";
    stream->Fail(error);
  }
  return Status::Ok();
}

Status AutomationEventsRoute(Env& env, ApiRequest& request, std::shared_ptr<SseStream> stream) {
  const std::string& org_id = request.who().org_id;
  Result<engine::AutomationRow> automation = LoadAutomation(env, request);
  if (!automation.ok()) {
    stream->Fail(Explain(automation.status(), kAutomationNotFound));
    return Status::Ok();
  }
  Result<std::shared_ptr<Watch>> opened =
      env.live.Open(env.engine, stream, org_id, automation->id, "");
  if (!opened.ok()) {
    stream->Fail(Explain(opened.status(), kAutomationNotFound));
    return Status::Ok();
  }
  std::shared_ptr<Watch> watch = std::move(opened).value();
  std::map<std::string, int64_t> counts;
  Status read = env.Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(counts, env.store().CountRunsByStatus(tx, org_id, automation->id));
    return Status::Ok();
  });
  std::lock_guard lock(watch->mutex);
  if (!read.ok()) {
    watch->done = true;
    stream->Fail(Explain(read, kAutomationNotFound));
    return Status::Ok();
  }
  // Where the automation stands when the stream starts; the events that
  // follow move runs between these counts.
  json by_status = json::object();
  for (const auto& [status, count] : counts) by_status[status] = count;
  if (!stream->Send("counts", {{"automation_id", automation->id}, {"counts", by_status}}))
    watch->done = true;
  for (const engine::RunEvent& event : watch->held) {
    watch->DeliverLocked(event.kind, event.data, event.run_id, event.automation_id);
  }
  watch->held.clear();
  watch->live = true;
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------

Result<ApiResponse> AutomationStatsRoute(Env& env, ApiRequest& request) {
  QUARRY_ASSIGN_OR_RETURN(auto window, WindowOf(request));
  QUARRY_ASSIGN_OR_RETURN(engine::AutomationRow row, LoadAutomation(env, request));
  const int64_t since_ms = env.store().NowMs() - window.second;
  engine::RunStats stats;
  QUARRY_RETURN_IF_ERROR(env.Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(stats, env.store().AutomationStats(tx, row.org_id, row.id, since_ms));
    return Status::Ok();
  }));
  json out = StatsJson(stats, window.first, since_ms);
  out["automation_id"] = row.id;
  return ApiResponse::Json(std::move(out));
}

Result<ApiResponse> AgentStatsRoute(Env& env, ApiRequest& request) {
  QUARRY_ASSIGN_OR_RETURN(auto window, WindowOf(request));
  const std::string& org_id = request.who().org_id;
  const int64_t since_ms = env.store().NowMs() - window.second;
  domain::AgentConnection agent;
  engine::RunStats stats;
  Status status = env.Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(agent,
                            domain::GetAgentConnection(tx, org_id, Param(request, "agent_id")));
    QUARRY_ASSIGN_OR_RETURN(stats, env.store().AgentStats(tx, org_id, agent.id, since_ms));
    return Status::Ok();
  });
  if (!status.ok()) return Failure(status, {}, kAgentNotFound);
  json out = StatsJson(stats, window.first, since_ms);
  out["agent_id"] = agent.id;
  return ApiResponse::Json(std::move(out));
}

// ---------------------------------------------------------------------------
// Reviews and alerts
// ---------------------------------------------------------------------------

Result<ApiResponse> ListReviewsRoute(Env& env, ApiRequest& request) {
  QUARRY_ASSIGN_OR_RETURN(domain::PageRequest page, PageOf(request));
  std::string status = request.QueryParam("status", "pending");
  if (status != "pending" && status != "approved" && status != "edited" && status != "rejected" &&
      status != "all") {
    FieldErrors errors;
    errors.Add("status", "must be pending (the default), approved, edited, rejected or all");
    return Failure(errors.ToStatus(), errors);
  }
  if (status == "all") status.clear();
  domain::Page<engine::ReviewRow> reviews;
  QUARRY_RETURN_IF_ERROR(env.Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(reviews,
                            env.store().ListReviews(tx, request.who().org_id, status, page));
    return Status::Ok();
  }));
  return ApiResponse::Json(
      PageJson(reviews, [](const engine::ReviewRow& review) { return review.ToJson(); }));
}

Result<ApiResponse> GetReviewRoute(Env& env, ApiRequest& request) {
  engine::ReviewRow review;
  QUARRY_RETURN_IF_ERROR(env.Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(
        review, env.store().GetReview(tx, request.who().org_id, Param(request, "review_id")));
    return Status::Ok();
  }));
  return ApiResponse::Json(review.ToJson());
}

Result<ApiResponse> DecideReviewRoute(Env& env, ApiRequest& request) {
  QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
  FieldErrors errors;
  CheckMembers(body, {"decision", "values", "comment"},
               "{\"decision\": \"approved\"|\"edited\"|\"rejected\", \"values\"?: {...}, "
               "\"comment\"?: \"...\"}",
               &errors);
  const std::string decision = StringMember(body, "decision", &errors);
  if (decision != "approved" && decision != "edited" && decision != "rejected" &&
      !errors.Has("decision")) {
    errors.Add("decision",
               "is required: approved (keep the proposed values), edited (replace them with "
               "\"values\") or rejected (end the run)");
  }
  json values = json::object();
  if (auto it = body.find("values"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) {
      errors.Add("values", "must be an object of proposed value names to the values to use");
    } else {
      values = *it;
    }
  }
  if (decision == "edited" && values.empty() && !errors.Has("values")) {
    errors.Add("values", "is required for an edited decision: the proposed values to replace");
  }
  const std::string comment = StringMember(body, "comment", &errors);
  if (!errors.empty()) return Failure(errors.ToStatus(), errors);
  Result<engine::ReviewRow> review = env.engine->DecideReview(
      request.who(), Param(request, "review_id"), decision, values, comment, &errors);
  if (!review.ok()) {
    if (review.status().code() == StatusCode::kFailedPrecondition && errors.empty()) {
      ApiError error = Explain(review.status(), kReviewNotFound);
      error.code = "review_already_decided";
      error.hint =
          "someone decided this review already; GET /api/v1/reviews/{review_id} shows the decision";
      return ApiResponse::Error(error);
    }
    return Failure(review.status(), errors, kReviewNotFound);
  }
  return ApiResponse::Json(review->ToJson());
}

Result<ApiResponse> ListAlertsRoute(Env& env, ApiRequest& request) {
  QUARRY_ASSIGN_OR_RETURN(domain::PageRequest page, PageOf(request));
  domain::Page<engine::AlertRow> alerts;
  QUARRY_RETURN_IF_ERROR(env.Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(alerts, env.store().ListAlerts(tx, request.who().org_id,
                                                           request.QueryParam("automation"), page));
    return Status::Ok();
  }));
  return ApiResponse::Json(
      PageJson(alerts, [](const engine::AlertRow& alert) { return alert.ToJson(); }));
}

// ---------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------

Result<ApiResponse> ListTemplatesRoute(Env&, ApiRequest&) {
  json items = json::array();
  for (const engine::AutomationTemplate& tmpl : engine::Templates())
    items.push_back(engine::TemplateToJson(tmpl));
  return ApiResponse::Json({{"items", std::move(items)}, {"next_cursor", nullptr}});
}

Result<ApiResponse> GetTemplateRoute(Env&, ApiRequest& request) {
  const std::string id = Param(request, "template_id");
  const engine::AutomationTemplate* tmpl = engine::FindTemplate(id);
  if (tmpl == nullptr) return NotFoundError("there is no automation template \"" + id + "\"");
  return ApiResponse::Json(engine::TemplateToJson(*tmpl));
}

json FieldSpec(const engine::TemplateField& field) {
  json spec = {{"api_name", field.api_name}, {"label", field.label}, {"type", field.type}};
  if (!field.options.empty()) spec["options"] = field.options;
  return spec;
}

Result<ApiResponse> FromTemplateRoute(Env& env, ApiRequest& request) {
  QUARRY_RETURN_IF_ERROR(RequireBuilder(request, "create automations from templates"));
  QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
  FieldErrors errors;
  CheckMembers(
      body, {"template", "agent", "service", "webhook", "object", "create_object", "name"},
      "{\"template\": \"it-ticket-triage\", \"agent\": \"agt_...\", \"service\"?, \"webhook\"?, "
      "\"object\"?, \"create_object\"?: true, \"name\"?}",
      &errors);
  const std::string template_id = StringMember(body, "template", &errors);
  const bool create_object = BoolMember(body, "create_object", false, &errors);
  const std::string name = StringMember(body, "name", &errors);
  std::string object = StringMember(body, "object", &errors);
  if (template_id.empty() && !errors.Has("template")) {
    errors.Add("template", "is required: a template id from GET /api/v1/automation-templates");
  }
  if (!errors.empty()) return Failure(errors.ToStatus(), errors);
  const engine::AutomationTemplate* tmpl = engine::FindTemplate(template_id);
  if (tmpl == nullptr) {
    errors.Add("template", "there is no template \"" + template_id +
                               "\"; GET /api/v1/automation-templates lists them");
    return Failure(errors.ToStatus(), errors);
  }
  if (object.empty()) object = tmpl->object;
  json placeholders = json::object();
  for (const std::string& placeholder : tmpl->placeholders) {
    const std::string member = placeholder.starts_with("$") ? placeholder.substr(1) : placeholder;
    const std::string value = StringMember(body, member, &errors);
    if (value.empty() && !errors.Has(member)) {
      errors.Add(member,
                 "is required by template " + tmpl->id +
                     (member == "agent"     ? ": the id of a connected agent (agt_...) of this app"
                      : member == "service" ? ": the id of an AI service (svc_...)"
                      : member == "webhook" ? ": the URL notifications are sent to"
                                            : ""));
    }
    placeholders[placeholder] = value;
  }
  if (!errors.empty()) return Failure(errors.ToStatus(), errors);
  Result<json> definition = engine::InstantiateTemplate(*tmpl, object, placeholders);
  if (!definition.ok()) return Failure(definition.status(), errors);
  if (!name.empty()) (*definition)["name"] = name;

  // The object and its fields first (domain rules and audit, as through the
  // app routes), then the draft, which the engine validates on publish.
  const domain::ChangeContext change =
      domain::ChangeContext::For(request.who(), *env.context.clock, request.request_id);
  const std::string app_ref = Param(request, "app_id");
  json setup;
  Status prepared = env.context.db->Write([&](store::Tx& tx) -> Status {
    errors.Clear();
    setup = {{"object", object},
             {"object_created", false},
             {"fields_created", json::array()},
             {"fields_missing", json::array()}};
    QUARRY_ASSIGN_OR_RETURN(std::string app_id, domain::ResolveAppId(tx, change.org_id, app_ref));
    if (placeholders.contains("$agent")) {
      const std::string agent_id = placeholders["$agent"].get<std::string>();
      Result<domain::AgentConnection> agent =
          domain::GetAgentConnection(tx, change.org_id, agent_id);
      if (!agent.ok() && agent.status().code() != StatusCode::kNotFound) return agent.status();
      if (!agent.ok() || agent->app_id != app_id) {
        errors.Add(
            "agent",
            "no agent " + agent_id +
                " is connected to this app; connect one with POST "
                "/api/v1/apps/{app_id}/agents or pick one from GET /api/v1/apps/{app_id}/agents");
        return errors.ToStatus();
      }
    }
    Result<domain::ObjectSchema> existing = domain::GetObject(tx, change.org_id, app_id, object);
    if (!existing.ok() && existing.status().code() != StatusCode::kNotFound)
      return existing.status();
    std::set<std::string> have;
    if (existing.ok()) {
      for (const domain::Field& field : existing->fields) have.insert(field.api_name);
    } else if (!create_object) {
      errors.Add("object",
                 "the app has no object \"" + object +
                     "\"; send \"create_object\": true to create it with the template's fields, or "
                     "name an existing object");
      return errors.ToStatus();
    } else {
      QUARRY_RETURN_IF_ERROR(
          domain::CreateObject(
              tx, change, app_id,
              {{"name", tmpl->object_label.empty() ? object : tmpl->object_label},
               {"api_name", object},
               {"description", "Created from the automation template " + tmpl->id + "."}},
              &errors)
              .status());
      setup["object_created"] = true;
    }
    for (const engine::TemplateField& field : tmpl->fields) {
      if (have.count(field.api_name)) continue;
      if (!create_object) {
        setup["fields_missing"].push_back(field.api_name);
        continue;
      }
      QUARRY_RETURN_IF_ERROR(
          domain::CreateField(tx, change, app_id, object, FieldSpec(field), &errors).status());
      setup["fields_created"].push_back(field.api_name);
    }
    return Status::Ok();
  });
  if (!prepared.ok()) return Failure(prepared, errors, kAppNotFound);
  Result<engine::AutomationRow> row =
      env.engine->CreateAutomation(request.who(), app_ref, *definition, request.request_id);
  if (!row.ok()) return Failure(row.status(), {}, kAppNotFound);
  json out = row->ToJson();
  out["setup"] = std::move(setup);
  return ApiResponse::Created(std::move(out), AutomationLocation(row->id), row->version);
}

Result<ApiResponse> EngineStatusRoute(Env& env, ApiRequest& request) {
  QUARRY_RETURN_IF_ERROR(RequireBuilder(request, "read the engine's status"));
  return ApiResponse::Json(env.engine->StatusJson());
}

}  // namespace

void RegisterAutomationRoutes(Router& router, ServerContext& context) {
  ServerContext* c = &context;
  // Shared by every handler; goes when the router does, closing live streams.
  auto live = std::make_shared<LiveEvents>();
  using Fn = Result<ApiResponse> (*)(Env&, ApiRequest&);
  using StreamFn = Status (*)(Env&, ApiRequest&, std::shared_ptr<SseStream>);
  // The engine is looked up per request: servers may attach it after the
  // routes are registered.
  auto h = [c, live](Fn fn, std::string_view not_found_hint) -> Handler {
    return [c, live, fn, not_found_hint](ApiRequest& request) -> Result<ApiResponse> {
      std::shared_ptr<engine::Engine> engine = c->engine;
      if (!engine) return NoEngine();
      Env env{*c, std::move(engine), *live};
      Result<ApiResponse> response = fn(env, request);
      if (!response.ok()) return ApiResponse::Error(Explain(response.status(), not_found_hint));
      return response;
    };
  };
  auto s = [c, live](StreamFn fn, std::string_view not_found_hint) -> StreamHandler {
    return [c, live, fn, not_found_hint](ApiRequest& request,
                                         std::shared_ptr<SseStream> stream) -> Status {
      std::shared_ptr<engine::Engine> engine = c->engine;
      if (!engine) {
        stream->Fail(ApiError{
            503, "engine_unavailable",
            "the automation engine is not running on this server, so there is no live progress",
            "start `quarry serve` with the engine enabled (the default), or connect to a node "
            "that runs it"});
        return Status::Ok();
      }
      Env env{*c, std::move(engine), *live};
      Status status = fn(env, request, stream);
      if (!status.ok()) stream->Fail(Explain(status, not_found_hint));
      return Status::Ok();
    };
  };

  const std::string v1 = "/api/v1";
  router.Add("GET", v1 + "/automations", Access::kAuthenticated,
             h(ListAutomationsRoute, kAppNotFound));
  router.Add("GET", v1 + "/apps/{app_id}/automations", Access::kAuthenticated,
             h(ListAutomationsRoute, kAppNotFound));
  router.Add("POST", v1 + "/apps/{app_id}/automations", Access::kAuthenticated,
             h(CreateAutomationRoute, kAppNotFound));
  router.Add("POST", v1 + "/apps/{app_id}/automations/from-template", Access::kAuthenticated,
             h(FromTemplateRoute, kAppNotFound));
  router.Add("GET", v1 + "/automations/{automation_id}", Access::kAuthenticated,
             h(GetAutomationRoute, kAutomationNotFound));
  router.Add("PATCH", v1 + "/automations/{automation_id}", Access::kAuthenticated,
             h(PatchAutomationRoute, kAutomationNotFound));
  router.Add("DELETE", v1 + "/automations/{automation_id}", Access::kAuthenticated,
             h(DeleteAutomationRoute, kAutomationNotFound));
  router.Add("POST", v1 + "/automations/{automation_id}/validate", Access::kAuthenticated,
             h(ValidateRoute, kAutomationNotFound));
  router.Add("POST", v1 + "/automations/{automation_id}/publish", Access::kAuthenticated,
             h(PublishRoute, kAutomationNotFound));
  router.Add("POST", v1 + "/automations/{automation_id}/test", Access::kAuthenticated,
             h(TestRunRoute, kAutomationNotFound));
  router.Add("POST", v1 + "/automations/{automation_id}/invoke", Access::kAuthenticated,
             h(InvokeRoute, kAutomationNotFound));
  router.Add("GET", v1 + "/automations/{automation_id}/runs", Access::kAuthenticated,
             h(ListRunsRoute, kAutomationNotFound));
  router.AddStream("GET", v1 + "/automations/{automation_id}/events", Access::kAuthenticated,
                   s(AutomationEventsRoute, kAutomationNotFound));
  router.Add("GET", v1 + "/automations/{automation_id}/stats", Access::kAuthenticated,
             h(AutomationStatsRoute, kAutomationNotFound));
  router.Add("GET", v1 + "/agents/{agent_id}/stats", Access::kAuthenticated,
             h(AgentStatsRoute, kAgentNotFound));
  router.Add("GET", v1 + "/runs", Access::kAuthenticated, h(ListRunsRoute, kAutomationNotFound));
  router.Add("GET", v1 + "/runs/{run_id}", Access::kAuthenticated, h(GetRunRoute, kRunNotFound));
  router.Add("POST", v1 + "/runs/{run_id}/cancel", Access::kAuthenticated,
             h(CancelRunRoute, kRunNotFound));
  router.AddStream("GET", v1 + "/runs/{run_id}/events", Access::kAuthenticated,
                   s(RunEventsRoute, kRunNotFound));
  router.Add("GET", v1 + "/reviews", Access::kAuthenticated, h(ListReviewsRoute, kReviewNotFound));
  router.Add("GET", v1 + "/reviews/{review_id}", Access::kAuthenticated,
             h(GetReviewRoute, kReviewNotFound));
  router.Add("POST", v1 + "/reviews/{review_id}/decision", Access::kAuthenticated,
             h(DecideReviewRoute, kReviewNotFound));
  router.Add("GET", v1 + "/alerts", Access::kAuthenticated,
             h(ListAlertsRoute, kAutomationNotFound));
  router.Add("GET", v1 + "/automation-templates", Access::kAuthenticated,
             h(ListTemplatesRoute, kTemplateNotFound));
  router.Add("GET", v1 + "/automation-templates/{template_id}", Access::kAuthenticated,
             h(GetTemplateRoute, kTemplateNotFound));
  router.Add("GET", v1 + "/engine/status", Access::kAuthenticated,
             h(EngineStatusRoute, kAutomationNotFound));
}

}  // namespace quarry::api
