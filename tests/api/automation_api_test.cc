// Automations end to end over real HTTP, against the Bedrock emulator's demo
// agent: definitions (create, validate, publish, authorization), each
// trigger (record created, record updated with a fields filter and a
// where-condition, on demand with inputs and outputs), test runs that show
// but do not apply, human review (approve, edit, reject), runs with their
// steps, statistics, live progress as server-sent events, and templates.
//
// Runs finish asynchronously: tests wait by polling GET /api/v1/runs/{id}
// with a bounded deadline. Runs are enqueued in the same transaction as the
// record write that triggers them, so "no run" can be checked right after
// the write.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "tests/support/api_fixture.h"

namespace quarry::testing {
namespace {

using nlohmann::json;
using ::testing::AnyOf;
using ::testing::Contains;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

const std::string kAlias =
    "arn:aws:bedrock:us-east-1:111122223333:agent-alias/HELPDESK01/PRODALIAS1";
constexpr auto kRunDeadline = std::chrono::seconds(60);

class AutomationApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    fixture_ = new ApiFixture();
    provider_ = new std::string(fixture_->AddWorkingProvider());
  }
  static void TearDownTestSuite() {
    delete fixture_;
    delete provider_;
    fixture_ = nullptr;
    provider_ = nullptr;
  }
  ApiFixture& f() { return *fixture_; }

  // Each test has its own app ("TCK"-like handle) with a ticket object and the
  // demo agent connected to it.
  void SetUp() override {
    ASSERT_FALSE(provider_->empty());
    static std::atomic<int> counter{0};
    const int n = ++counter;
    app_ = "desk_" + std::to_string(n);
    std::string handle = "T";
    for (int k = n; k > 0 || handle.size() < 2; k /= 26) handle += static_cast<char>('A' + k % 26);
    handle_ = handle;
    ApiReply r = f().Call("POST", "/api/v1/apps", f().builder_token,
                          {{"name", "Help desk"}, {"namespace", app_}, {"handle", handle_}});
    ASSERT_EQ(r.status, 201) << r.Describe();
    r = f().Call("POST", "/api/v1/apps/" + app_ + "/objects", f().builder_token,
                 {{"name", "Ticket"}, {"api_name", "ticket"}});
    ASSERT_EQ(r.status, 201) << r.Describe();
    for (const json& field : {
             json{{"api_name", "title"}, {"label", "Title"}, {"type", "text"}},
             json{{"api_name", "category"},
                  {"label", "Category"},
                  {"type", "dropdown"},
                  {"options", {"Network", "Hardware", "Software"}}},
             json{{"api_name", "status"},
                  {"label", "Status"},
                  {"type", "dropdown"},
                  {"options", {"open", "pending", "closed"}}},
             json{{"api_name", "priority"},
                  {"label", "Priority"},
                  {"type", "dropdown"},
                  {"options", {"Low", "High"}}},
             json{{"api_name", "note"}, {"label", "Note"}, {"type", "long_text"}},
         }) {
      r = f().Call("POST", "/api/v1/apps/" + app_ + "/objects/ticket/fields", f().builder_token,
                   field);
      ASSERT_EQ(r.status, 201) << r.Describe();
    }
    r = f().Call("POST", "/api/v1/apps/" + app_ + "/agents", f().builder_token,
                 {{"provider_id", *provider_}, {"agent_alias_arn", kAlias}, {"name", "Helpdesk"}});
    ASSERT_EQ(r.status, 201) << r.Describe();
    agent_ = r.json["id"];
  }

  static void ExpectError(const ApiReply& reply, int status, const std::string& code) {
    EXPECT_EQ(reply.status, status) << reply.Describe();
    ASSERT_TRUE(reply.json.is_object() && reply.json.contains("error")) << reply.Describe();
    EXPECT_EQ(reply.json["error"]["code"], code) << reply.Describe();
    EXPECT_FALSE(reply.json["error"]["message"].get<std::string>().empty()) << reply.Describe();
    EXPECT_FALSE(reply.json["error"]["hint"].get<std::string>().empty()) << reply.Describe();
  }
  static std::set<std::string> BadFields(const ApiReply& reply) {
    std::set<std::string> names;
    const json fields =
        reply.json.is_object() ? reply.json["error"]["details"].value("fields", json()) : json();
    if (fields.is_object()) {
      for (const auto& [name, message] : fields.items()) names.insert(name);
    }
    return names;
  }

  // The agent step every test uses: structured triage mapped onto the record.
  json TriageStep(bool map = true) const {
    json step = {{"id", "analyse"},
                 {"type", "run_agent_task"},
                 {"agent", agent_},
                 {"task", "Triage this IT ticket: {record.title}"},
                 {"output",
                  {{"type", "structured"},
                   {"fields",
                    {{{"name", "category"},
                      {"type", "enum"},
                      {"values", {"Network", "Hardware", "Software"}}},
                     {{"name", "summary"}, {"type", "text"}, {"default", "(none)"}}}}}}};
    if (map) step["map"] = {{"category", "record.category"}};
    return step;
  }
  json Definition(json trigger, json steps, const std::string& name = "Triage") const {
    return {{"name", name},
            {"object", "ticket"},
            {"trigger", std::move(trigger)},
            {"steps", std::move(steps)}};
  }

  std::string Create(const json& definition) {
    ApiReply r =
        f().Call("POST", "/api/v1/apps/" + app_ + "/automations", f().builder_token, definition);
    EXPECT_EQ(r.status, 201) << r.Describe();
    return r.json.is_object() ? r.json.value("id", "") : "";
  }
  std::string CreateAndPublish(const json& definition) {
    const std::string id = Create(definition);
    ApiReply r = f().Call("POST", "/api/v1/automations/" + id + "/publish", f().builder_token,
                          json::object());
    EXPECT_EQ(r.status, 200) << r.Describe();
    return id;
  }
  json NewTicket(const json& values) {
    ApiReply r = f().Call("POST", "/api/v1/apps/" + app_ + "/objects/ticket/records",
                          f().member_token, {{"values", values}});
    EXPECT_EQ(r.status, 201) << r.Describe();
    return r.json;
  }
  json Record(const std::string& id) {
    ApiReply r = f().Call("GET", "/api/v1/apps/" + app_ + "/records/" + id, f().member_token);
    EXPECT_EQ(r.status, 200) << r.Describe();
    return r.json.value("values", json::object());
  }
  std::vector<json> Runs(const std::string& automation) {
    ApiReply r = f().Call("GET", "/api/v1/automations/" + automation + "/runs", f().member_token);
    EXPECT_EQ(r.status, 200) << r.Describe();
    return r.json.value("items", std::vector<json>{});
  }
  // Polls the run until its status is one of `statuses` (default: finished).
  json WaitRun(const std::string& run_id,
               const std::set<std::string>& statuses = {"succeeded", "failed", "cancelled"}) {
    const auto deadline = std::chrono::steady_clock::now() + kRunDeadline;
    ApiReply r;
    while (std::chrono::steady_clock::now() < deadline) {
      r = f().Call("GET", "/api/v1/runs/" + run_id, f().member_token);
      if (r.status == 200 && statuses.count(r.json.value("status", ""))) return r.json;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "run " << run_id
                  << " did not reach the expected status in time: " << r.Describe();
    return r.json;
  }
  // Waits for the automation to have `count` runs, then for all of them to
  // reach one of `statuses`; newest first.
  std::vector<json> WaitRuns(const std::string& automation, size_t count,
                             const std::set<std::string>& statuses = {"succeeded", "failed",
                                                                      "cancelled"}) {
    const auto deadline = std::chrono::steady_clock::now() + kRunDeadline;
    std::vector<json> runs = Runs(automation);
    while (runs.size() < count && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      runs = Runs(automation);
    }
    EXPECT_EQ(runs.size(), count);
    std::vector<json> finished;
    for (const json& run : runs) finished.push_back(WaitRun(run["id"], statuses));
    return finished;
  }
  static const json* FindStep(const json& run, const std::string& step_id) {
    for (const json& step : run["steps"]) {
      if (step.value("step_id", "") == step_id) return &step;
    }
    return nullptr;
  }

  static ApiFixture* fixture_;
  static std::string* provider_;
  std::string app_, handle_, agent_;
};

ApiFixture* AutomationApiTest::fixture_ = nullptr;
std::string* AutomationApiTest::provider_ = nullptr;

TEST_F(AutomationApiTest, DefinitionsAreCreatedValidatedAndPublishedByBuilders) {
  const json definition = Definition({{"type", "record_created"}}, {TriageStep()});

  // Create: 201 with Location and ETag; name and object are required.
  ApiReply r =
      f().Call("POST", "/api/v1/apps/" + app_ + "/automations", f().builder_token, definition);
  ASSERT_EQ(r.status, 201) << r.Describe();
  const std::string id = r.json["id"];
  EXPECT_THAT(id, ::testing::StartsWith("aut_"));
  EXPECT_EQ(*r.Header("Location"), "/api/v1/automations/" + id);
  EXPECT_EQ(*r.Header("ETag"), "\"1\"");
  EXPECT_TRUE(r.json["published_version"].is_null());
  r = f().Call("POST", "/api/v1/apps/" + app_ + "/automations", f().builder_token,
               {{"steps", json::array()}});
  ExpectError(r, 400, "validation_failed");
  EXPECT_THAT(BadFields(r), UnorderedElementsAre("name", "object"));
  ExpectError(f().Call("POST", "/api/v1/apps/nope_app/automations", f().builder_token, definition),
              404, "not_found");

  // Members read but do not change.
  ExpectError(
      f().Call("POST", "/api/v1/apps/" + app_ + "/automations", f().member_token, definition), 403,
      "permission_denied");
  ExpectError(
      f().Call("POST", "/api/v1/automations/" + id + "/publish", f().member_token, json::object()),
      403, "permission_denied");
  ExpectError(
      f().Call("PATCH", "/api/v1/automations/" + id, f().member_token, {{"status", "paused"}}), 403,
      "permission_denied");
  r = f().Call("GET", "/api/v1/automations/" + id, f().member_token);
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.json["name"], "Triage");
  r = f().Call("GET", "/api/v1/apps/" + app_ + "/automations", f().member_token);
  ASSERT_EQ(r.status, 200) << r.Describe();
  ASSERT_EQ(r.json["items"].size(), 1u);
  EXPECT_TRUE(r.json["next_cursor"].is_null());

  // A draft with references that cannot exist: every problem at once.
  json bad = definition;
  bad["steps"][0]["task"] = "Triage {record.no_such_field} {steps.later.text}";
  bad["steps"][0]["map"] = {{"category", "record.not_a_field"}};
  r = f().Call("POST", "/api/v1/automations/" + id + "/validate", f().builder_token,
               {{"definition", bad}});
  ExpectError(r, 400, "validation_failed");
  EXPECT_GE(BadFields(r).size(), 2u) << r.Describe();
  r = f().Call("POST", "/api/v1/automations/" + id + "/validate", f().builder_token,
               json::object());
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.json["valid"], true);

  // Saving a bad draft works; publishing it does not.
  ExpectError(f().Call("PATCH", "/api/v1/automations/" + id, f().builder_token,
                       {{"definition", bad}}, {{"If-Match", "\"7\""}}),
              412, "precondition_failed");
  ExpectError(
      f().Call("PATCH", "/api/v1/automations/" + id, f().builder_token, {{"status", "sleeping"}}),
      400, "validation_failed");
  r = f().Call("PATCH", "/api/v1/automations/" + id, f().builder_token, {{"definition", bad}},
               {{"If-Match", "\"1\""}});
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.json["version"], 2);
  r = f().Call("POST", "/api/v1/automations/" + id + "/publish", f().builder_token, json::object());
  ExpectError(r, 400, "validation_failed");
  EXPECT_FALSE(BadFields(r).empty());

  r = f().Call("PATCH", "/api/v1/automations/" + id, f().builder_token,
               {{"definition", definition}, {"name", "Ticket triage"}});
  ASSERT_EQ(r.status, 200) << r.Describe();
  r = f().Call("POST", "/api/v1/automations/" + id + "/publish", f().builder_token, json::object());
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.json["published_version"], 1);
  EXPECT_EQ(r.json["name"], "Ticket triage");
  r = f().Call("PATCH", "/api/v1/automations/" + id, f().builder_token, {{"status", "paused"}});
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.json["status"], "paused");

  // Engine status for builders only.
  EXPECT_EQ(f().Call("GET", "/api/v1/engine/status", f().builder_token).status, 200);
  ExpectError(f().Call("GET", "/api/v1/engine/status", f().member_token), 403, "permission_denied");

  ExpectError(f().Call("DELETE", "/api/v1/automations/" + id, f().member_token), 403,
              "permission_denied");
  ASSERT_EQ(f().Call("DELETE", "/api/v1/automations/" + id, f().builder_token).status, 204);
  ExpectError(f().Call("GET", "/api/v1/automations/" + id, f().member_token), 404, "not_found");
}

TEST_F(AutomationApiTest, RecordCreatedRunsTheAgentAndMapsItsAnswer) {
  const std::string id = CreateAndPublish(Definition({{"type", "record_created"}}, {TriageStep()}));
  const json ticket = NewTicket({{"title", "The VPN drops my network connection every hour"}});
  const std::vector<json> runs = WaitRuns(id, 1);
  ASSERT_EQ(runs.size(), 1u);
  const json& run = runs[0];
  ASSERT_EQ(run["status"], "succeeded") << run.dump();
  EXPECT_EQ(run["mode"], "live");
  EXPECT_EQ(run["record_id"], ticket["id"]);
  const json* step = FindStep(run, "analyse");
  ASSERT_NE(step, nullptr) << run.dump();
  EXPECT_EQ((*step)["status"], "succeeded");
  EXPECT_EQ((*step)["type"], "run_agent_task");
  const json category = (*step)["output"]["category"];
  EXPECT_THAT(category.get<std::string>(), AnyOf(Eq("Network"), Eq("Hardware"), Eq("Software")));
  EXPECT_EQ(Record(ticket["id"])["category"], category);

  // The run is found by every filter, and the statistics count it.
  for (const std::string& query :
       {"automation=" + id, "automation=" + id + "&status=succeeded",
        "automation=" + id + "&record=" + ticket["handle"].get<std::string>(),
        "record=" + ticket["id"].get<std::string>() + "&mode=live"}) {
    ApiReply r = f().Call("GET", "/api/v1/runs?" + query, f().member_token);
    ASSERT_EQ(r.status, 200) << r.Describe();
    EXPECT_EQ(r.json["items"].size(), 1u) << query;
  }
  ExpectError(f().Call("GET", "/api/v1/runs?status=sleeping", f().member_token), 400,
              "validation_failed");
  ApiReply r =
      f().Call("GET", "/api/v1/runs?automation=" + id + "&status=failed", f().member_token);
  ASSERT_EQ(r.status, 200);
  EXPECT_TRUE(r.json["items"].empty());
  r = f().Call("GET", "/api/v1/automations/" + id + "/stats?window=1h", f().member_token);
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.json["invocations"], 1);
  EXPECT_EQ(r.json["succeeded"], 1);
  EXPECT_EQ(r.json["window"], "1h");
  r = f().Call("GET", "/api/v1/agents/" + agent_ + "/stats", f().member_token);
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_GE(r.json["invocations"].get<int64_t>(), 1);
  ExpectError(f().Call("GET", "/api/v1/automations/" + id + "/stats?window=2y", f().member_token),
              400, "invalid_argument");
  ExpectError(f().Call("GET", "/api/v1/agents/agt_00000000000000000000/stats", f().member_token),
              404, "not_found");
  ExpectError(f().Call("GET", "/api/v1/runs/run_00000000000000000000", f().member_token), 404,
              "not_found");
}

// A record-triggered run is announced as queued (after the record write
// committed) before it starts, to watchers of its automation.
TEST_F(AutomationApiTest, RecordTriggeredRunsAreAnnouncedAsQueuedFirst) {
  const std::string id = CreateAndPublish(Definition({{"type", "record_created"}}, {TriageStep()}));
  std::mutex mu;
  std::vector<engine::RunEvent> events;
  engine::Engine& engine = *f().context().engine;
  const uint64_t subscription = engine.Subscribe(f().org_id, id, "", [&](const engine::RunEvent& event) {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back(event);
  });
  const json ticket = NewTicket({{"title", "My laptop screen flickers"}});
  const std::vector<json> runs = WaitRuns(id, 1);
  engine.Unsubscribe(subscription);
  ASSERT_EQ(runs.size(), 1u);
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_FALSE(events.empty());
  std::vector<std::string> kinds;
  for (const engine::RunEvent& e : events) {
    EXPECT_EQ(e.run_id, runs[0]["id"]);
    kinds.push_back(e.kind);
  }
  EXPECT_EQ(kinds.front(), "run_queued") << ::testing::PrintToString(kinds);
  EXPECT_EQ(std::count(kinds.begin(), kinds.end(), "run_queued"), 1);
  EXPECT_EQ(events.front().data["status"], "queued");
  EXPECT_EQ(events.front().data["record_id"], ticket["id"]);
  EXPECT_EQ(events.front().automation_id, id);
}

TEST_F(AutomationApiTest, RecordUpdatedRunsOnlyForTheChosenFieldsAndCondition) {
  json trigger = {{"type", "record_updated"},
                  {"fields", {"status"}},
                  {"where", {{"field", "priority"}, {"op", "eq"}, {"value", "High"}}}};
  const std::string id =
      CreateAndPublish(Definition(trigger,
                                  {{{"id", "flag"},
                                    {"type", "update_record"},
                                    {"values", {{"note", "escalated: {record.title}"}}}}},
                                  "Escalate"));
  const json low = NewTicket({{"title", "Mouse"}, {"status", "open"}, {"priority", "Low"}});
  const json high = NewTicket({{"title", "Server room"}, {"status", "open"}, {"priority", "High"}});
  EXPECT_TRUE(Runs(id).empty());  // created, not updated
  const std::string base = "/api/v1/apps/" + app_ + "/records/";
  // Another field changes: no run. The chosen field on a Low ticket: no run.
  ASSERT_EQ(f().Call("PATCH", base + high["id"].get<std::string>(), f().member_token,
                     {{"values", {{"title", "Server room is hot"}}}})
                .status,
            200);
  ASSERT_EQ(f().Call("PATCH", base + low["id"].get<std::string>(), f().member_token,
                     {{"values", {{"status", "pending"}}}})
                .status,
            200);
  EXPECT_TRUE(Runs(id).empty());
  ASSERT_EQ(f().Call("PATCH", base + high["id"].get<std::string>(), f().member_token,
                     {{"values", {{"status", "pending"}}}})
                .status,
            200);
  const std::vector<json> runs = WaitRuns(id, 1);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0]["status"], "succeeded") << runs[0].dump();
  EXPECT_EQ(runs[0]["record_id"], high["id"]);
  EXPECT_EQ(Record(high["id"])["note"], "escalated: Server room is hot");
  EXPECT_FALSE(Record(low["id"]).contains("note") && !Record(low["id"])["note"].is_null());
}

TEST_F(AutomationApiTest, OnDemandInvokeReturnsOutputs) {
  json definition =
      Definition({{"type", "on_demand"},
                  {"inputs", {{{"name", "question"}, {"type", "text"}, {"required", true}}}}},
                 {TriageStep(false)}, "Classify");
  definition["steps"][0]["task"] = "Triage this IT request: {trigger.inputs.question}";
  definition["outputs"] = {{"category", "{steps.analyse.category}"}};
  const std::string id = CreateAndPublish(definition);
  const std::string path = "/api/v1/automations/" + id + "/invoke";

  ApiReply r = f().Call("POST", path, f().member_token, {{"inputs", json::object()}});
  ExpectError(r, 400, "validation_failed");
  EXPECT_FALSE(BadFields(r).empty()) << r.Describe();
  ExpectError(f().Call("POST", path, f().member_token, {{"inputs", "question"}}), 400,
              "validation_failed");

  const json body = {{"inputs", {{"question", "My laptop keyboard is broken"}}},
                     {"wait_seconds", 60}};
  r = f().Call("POST", path, f().member_token, body, {{"Idempotency-Key", "invoke-1"}});
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.json["status"], "succeeded");
  EXPECT_THAT(r.json["outputs"]["category"].get<std::string>(),
              AnyOf(Eq("Network"), Eq("Hardware"), Eq("Software")));
  ASSERT_NE(FindStep(r.json, "analyse"), nullptr) << r.Describe();
  // A retry with the same key is the same run.
  ApiReply again =
      f().Call("POST", path, f().member_token, body, {{"Idempotency-Key", "invoke-1"}});
  ASSERT_EQ(again.status, 200) << again.Describe();
  EXPECT_EQ(again.json["id"], r.json["id"]);
  EXPECT_EQ(Runs(id).size(), 1u);
}

// The demo agent hands control back for its API-schema action group
// ("assets", POST /assets/{assetId}/repairs); the step's reply for that
// operation is sent back as an apiResult and the agent finishes with it.
TEST_F(AutomationApiTest, ReturnedControlOfAnApiOperationIsAnsweredFromTheStep) {
  json step = {{"id", "repair"},
               {"type", "run_agent_task"},
               {"agent", agent_},
               {"task", "Please file a repair request for asset {trigger.inputs.asset}: {trigger.inputs.issue}"}};
  json definition = Definition({{"type", "on_demand"},
                                {"inputs",
                                 {{{"name", "asset"}, {"type", "text"}, {"required", true}},
                                  {{"name", "issue"}, {"type", "text"}, {"required", true}}}}},
                               {step}, "Repairs without a reply");
  definition["outputs"] = {{"answer", "{steps.repair.text}"}};
  const json inputs = {{"inputs", {{"asset", "LAP-0042"}, {"issue", "the screen flickers"}}},
                       {"wait_seconds", 60}};

  // Without a reply for the operation the step fails and names the key to add.
  const std::string unanswered = CreateAndPublish(definition);
  ApiReply r = f().Call("POST", "/api/v1/automations/" + unanswered + "/invoke", f().member_token, inputs);
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.json["status"], "failed") << r.Describe();
  EXPECT_EQ(r.json["error"].value("code", ""), "agent_returned_control") << r.Describe();
  EXPECT_THAT(r.json["error"].value("hint", ""), HasSubstr("assets/POST /assets/{assetId}/repairs"))
      << r.Describe();

  definition["name"] = "Repairs";
  definition["steps"][0]["return_control"] = {
      {"assets/POST /assets/{assetId}/repairs", "Repair order R-1 opened for {control.assetId}"}};
  const std::string answered = CreateAndPublish(definition);
  r = f().Call("POST", "/api/v1/automations/" + answered + "/invoke", f().member_token, inputs);
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.json["status"], "succeeded") << r.Describe();
  EXPECT_THAT(r.json["outputs"].value("answer", ""), HasSubstr("Repair order R-1 opened for LAP-0042"))
      << r.Describe();

  // A reply key that is neither a function nor "<METHOD> <path>" is refused.
  definition["steps"][0]["return_control"] = {{"assets/FETCH assets", "x"}};
  ApiReply bad = f().Call("POST", "/api/v1/automations/" + answered + "/validate", f().builder_token,
                          {{"definition", definition}});
  ExpectError(bad, 400, "validation_failed");
  EXPECT_TRUE(BadFields(bad).count("steps[0].return_control.assets/FETCH assets")) << bad.Describe();
}

// A run whose last step writes the record ends in that step's transaction;
// it still returns the automation's outputs, rendered after the write.
TEST_F(AutomationApiTest, OnDemandRunEndingInARecordWriteReturnsOutputs) {
  const json ticket = NewTicket({{"title", "Laptop keyboard is broken"}});
  json definition = Definition({{"type", "on_demand"}}, {TriageStep(true)}, "Classify and file");
  definition["outputs"] = {{"category", "{steps.analyse.category}"}, {"stored", "{record.category}"}};
  const std::string id = CreateAndPublish(definition);
  ApiReply r = f().Call("POST", "/api/v1/automations/" + id + "/invoke", f().member_token,
                        {{"inputs", json::object()}, {"record", ticket["handle"]}, {"wait_seconds", 60}});
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.json["status"], "succeeded");
  ASSERT_TRUE(r.json["outputs"].contains("category")) << r.Describe();
  EXPECT_EQ(r.json["outputs"]["category"], r.json["outputs"]["stored"]) << r.Describe();
  EXPECT_EQ(Record(ticket["id"])["category"], r.json["outputs"]["category"]);
}

TEST_F(AutomationApiTest, TestRunShowsWhatWouldApplyWithoutApplyingIt) {
  const json ticket = NewTicket({{"title", "Printer offline on floor 2"}});
  const std::string id = Create(Definition({{"type", "record_created"}}, {TriageStep()}));
  const std::string path = "/api/v1/automations/" + id + "/test";
  ExpectError(f().Call("POST", path, f().member_token, {{"record", ticket["handle"]}}), 403,
              "permission_denied");
  ExpectError(f().Call("POST", path, f().builder_token,
                       {{"record", ticket["handle"]}, {"wait_seconds", 999}}),
              400, "validation_failed");

  ApiReply r = f().Call("POST", path, f().builder_token,
                        {{"record", ticket["handle"]}, {"wait_seconds", 60}});
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.json["mode"], "test");
  EXPECT_EQ(r.json["status"], "succeeded") << r.Describe();
  const json* step = FindStep(r.json, "analyse");
  ASSERT_NE(step, nullptr) << r.Describe();
  EXPECT_TRUE((*step)["output"].contains("would_apply")) << step->dump();
  EXPECT_FALSE(Record(ticket["id"]).contains("category") &&
               !Record(ticket["id"])["category"].is_null());
  // Test runs are kept apart from live ones.
  ApiReply live =
      f().Call("GET", "/api/v1/automations/" + id + "/runs?mode=live", f().member_token);
  ASSERT_EQ(live.status, 200);
  EXPECT_TRUE(live.json["items"].empty());
}

TEST_F(AutomationApiTest, ReviewsAreApprovedEditedOrRejectedByMembers) {
  const std::string id = CreateAndPublish(Definition(
      {{"type", "record_created"}},
      {{{"id", "check"},
        {"type", "escalate_review"},
        {"reason", "Confirm the note"},
        {"proposed", {{"note", "Suggested for {record.title}"}}}},
       {{"id", "apply"}, {"type", "update_record"}, {"values", {{"note", "{steps.check.note}"}}}}},
      "Reviewed"));
  std::vector<json> tickets;
  for (const char* title : {"alpha", "beta", "gamma"})
    tickets.push_back(NewTicket({{"title", title}}));
  const std::vector<json> waiting = WaitRuns(id, 3, {"waiting_review"});
  ASSERT_EQ(waiting.size(), 3u);

  ApiReply r = f().Call("GET", "/api/v1/reviews?status=pending", f().member_token);
  ASSERT_EQ(r.status, 200) << r.Describe();
  std::map<std::string, json> by_record;  // record id -> review
  for (const json& review : r.json["items"]) {
    if (review["automation_id"] != id) continue;
    ApiReply run =
        f().Call("GET", "/api/v1/runs/" + review["run_id"].get<std::string>(), f().member_token);
    by_record[run.json.value("record_id", "")] = review;
  }
  ASSERT_EQ(by_record.size(), 3u);
  std::vector<std::string> record_ids, review_ids, run_ids;
  for (const json& ticket : tickets) {
    record_ids.push_back(ticket["id"]);
    review_ids.push_back(by_record[record_ids.back()]["id"]);
    run_ids.push_back(by_record[record_ids.back()]["run_id"]);
  }
  const std::string approve = review_ids[0], edit = review_ids[1], reject = review_ids[2];
  r = f().Call("GET", "/api/v1/reviews/" + approve, f().member_token);
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.json["proposed"]["note"], "Suggested for alpha");

  ExpectError(f().Call("POST", "/api/v1/reviews/" + approve + "/decision", f().member_token,
                       {{"decision", "maybe"}}),
              400, "validation_failed");
  r = f().Call("POST", "/api/v1/reviews/" + approve + "/decision", f().member_token,
               {{"decision", "approved"}});
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.json["status"], "approved");
  ExpectError(f().Call("POST", "/api/v1/reviews/" + approve + "/decision", f().member_token,
                       {{"decision", "rejected"}}),
              409, "review_already_decided");
  r = f().Call("POST", "/api/v1/reviews/" + edit + "/decision", f().member_token,
               {{"decision", "edited"},
                {"values", {{"note", "Edited by a person"}}},
                {"comment", "shorter"}});
  ASSERT_EQ(r.status, 200) << r.Describe();
  r = f().Call("POST", "/api/v1/reviews/" + reject + "/decision", f().member_token,
               {{"decision", "rejected"}, {"comment", "not needed"}});
  ASSERT_EQ(r.status, 200) << r.Describe();

  EXPECT_EQ(WaitRun(run_ids[0])["status"], "succeeded");
  EXPECT_EQ(WaitRun(run_ids[1])["status"], "succeeded");
  EXPECT_NE(WaitRun(run_ids[2])["status"], "succeeded");
  EXPECT_EQ(Record(record_ids[0])["note"], "Suggested for alpha");
  EXPECT_EQ(Record(record_ids[1])["note"], "Edited by a person");
  const json rejected = Record(record_ids[2]);
  EXPECT_FALSE(rejected.contains("note") && !rejected["note"].is_null());
}

TEST_F(AutomationApiTest, BuildersCancelWaitingRunsAndTheirReviewsClose) {
  const std::string id = CreateAndPublish(Definition(
      {{"type", "record_created"}},
      {{{"id", "check"}, {"type", "escalate_review"}, {"reason", "Confirm"}, {"proposed", {{"note", "x"}}}},
       {{"id", "apply"}, {"type", "update_record"}, {"values", {{"note", "{steps.check.note}"}}}}},
      "Cancellable"));
  const json ticket = NewTicket({{"title", "to cancel"}});
  const std::vector<json> waiting = WaitRuns(id, 1, {"waiting_review"});
  ASSERT_EQ(waiting.size(), 1u);
  const std::string run_id = waiting[0]["id"];
  const std::string cancel = "/api/v1/runs/" + run_id + "/cancel";

  ExpectError(f().Call("POST", cancel, f().member_token, json::object()), 403, "permission_denied");
  ApiReply r = f().Call("POST", cancel, f().builder_token, json::object());
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.json["status"], "cancelled");
  // The open review is closed as rejected; the record is untouched.
  r = f().Call("GET", "/api/v1/reviews?status=pending", f().member_token);
  ASSERT_EQ(r.status, 200) << r.Describe();
  for (const json& review : r.json["items"]) EXPECT_NE(review["run_id"], run_id);
  const json values = Record(ticket["id"]);
  EXPECT_FALSE(values.contains("note") && !values["note"].is_null());
  // A finished run cannot be cancelled again; an unknown one is not found.
  ExpectError(f().Call("POST", cancel, f().builder_token, json::object()), 409, "failed_precondition");
  ExpectError(f().Call("POST", "/api/v1/runs/run_nope/cancel", f().builder_token, json::object()), 404,
              "not_found");
}

TEST_F(AutomationApiTest, RunEventsStreamTheRunUntilItFinishes) {
  json definition = Definition({{"type", "on_demand"}}, {TriageStep(false)}, "Streamed");
  definition["steps"][0]["task"] = "Triage this IT request: the Wi-Fi network is down";
  const std::string id = CreateAndPublish(definition);
  ApiReply r = f().Call("POST", "/api/v1/automations/" + id + "/invoke", f().member_token,
                        {{"wait_seconds", 0}});
  ASSERT_THAT(r.status, AnyOf(Eq(200), Eq(202))) << r.Describe();
  const std::string run_id = r.json["id"];

  // The stream starts with the run so far and ends after run_finished.
  ApiReply events = f().Call("GET", "/api/v1/runs/" + run_id + "/events", f().member_token);
  ASSERT_EQ(events.status, 200) << events.Describe();
  std::vector<std::string> names;
  std::istringstream lines(events.body);
  json last;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("event: ", 0) == 0) names.push_back(line.substr(7));
    if (line.rfind("data: ", 0) == 0) last = json::parse(line.substr(6), nullptr, false);
  }
  ASSERT_FALSE(names.empty()) << events.body;
  EXPECT_EQ(names.back(), "run_finished") << events.body;
  EXPECT_EQ(std::count(names.begin(), names.end(), "step_finished"), 1) << events.body;
  EXPECT_EQ(last["status"], "succeeded");
  EXPECT_EQ(last["run_id"], run_id);

  ExpectError(f().Call("GET", "/api/v1/runs/run_00000000000000000000/events", f().member_token),
              404, "not_found");
  ExpectError(
      f().Call("GET", "/api/v1/automations/aut_00000000000000000000/events", f().member_token), 404,
      "not_found");
}

TEST_F(AutomationApiTest, TemplatesCreateTheObjectFieldsAndDraft) {
  ApiReply r = f().Call("GET", "/api/v1/automation-templates", f().member_token);
  ASSERT_EQ(r.status, 200) << r.Describe();
  std::vector<std::string> ids;
  for (const json& t : r.json["items"]) ids.push_back(t["id"]);
  EXPECT_THAT(ids, Contains("it-ticket-triage"));
  r = f().Call("GET", "/api/v1/automation-templates/it-ticket-triage", f().member_token);
  ASSERT_EQ(r.status, 200) << r.Describe();
  const json tmpl = r.json;
  ExpectError(f().Call("GET", "/api/v1/automation-templates/nope", f().member_token), 404,
              "not_found");

  const std::string path = "/api/v1/apps/" + app_ + "/automations/from-template";
  json body = {{"template", "it-ticket-triage"}, {"object", "triage_ticket"}, {"agent", agent_}};
  for (const json& placeholder : tmpl["placeholders"]) {
    if (placeholder == "$service") body["service"] = "svc_00000000000000000000";
    if (placeholder == "$webhook") body["webhook"] = "http://127.0.0.1:9/hook";
  }
  json without_agent = body;
  without_agent.erase("agent");
  ExpectError(f().Call("POST", path, f().builder_token, without_agent), 400, "validation_failed");
  r = f().Call("POST", path, f().builder_token, body);
  ExpectError(r, 400, "validation_failed");  // no such object, and create_object not asked
  EXPECT_THAT(BadFields(r), UnorderedElementsAre("object"));
  ExpectError(f().Call("POST", path, f().member_token, body), 403, "permission_denied");

  body["create_object"] = true;
  r = f().Call("POST", path, f().builder_token, body);
  ASSERT_EQ(r.status, 201) << r.Describe();
  EXPECT_EQ(r.json["setup"]["object_created"], true);
  EXPECT_EQ(r.json["setup"]["fields_created"].size(), tmpl["fields"].size());
  EXPECT_EQ(r.json["draft"]["object"], "triage_ticket");
  ApiReply object =
      f().Call("GET", "/api/v1/apps/" + app_ + "/objects/triage_ticket", f().member_token);
  ASSERT_EQ(object.status, 200) << object.Describe();
  EXPECT_EQ(object.json["fields"].size(), tmpl["fields"].size());
  // The draft is complete: it validates against the object just made.
  ApiReply valid =
      f().Call("POST", "/api/v1/automations/" + r.json["id"].get<std::string>() + "/validate",
               f().builder_token, json::object());
  if (!tmpl["placeholders"].is_array() ||
      !std::count(tmpl["placeholders"].begin(), tmpl["placeholders"].end(), json("$service"))) {
    EXPECT_EQ(valid.status, 200) << valid.Describe();
  }
}

}  // namespace
}  // namespace quarry::testing
