// Automation definitions: parsing a full valid definition, every validation
// rule (all problems reported at once, keyed by JSON path), and the flat
// program compiled from nested ifs. The app schema is built in memory.

#include "engine/automation_spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>

namespace quarry::engine {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

domain::Field MakeField(std::string api_name, domain::FieldType type,
                        std::vector<std::string> options = {}, bool required = false) {
  domain::Field field;
  field.api_name = std::move(api_name);
  field.label = field.api_name;
  field.type = type;
  field.options = std::move(options);
  field.required = required;
  return field;
}

std::shared_ptr<const domain::AppSchema> MakeApp() {
  auto app = std::make_shared<domain::AppSchema>();
  app->app.id = "app_1";
  app->app.namespace_name = "support";
  domain::ObjectSchema inquiry;
  inquiry.object.id = "obj_inquiry";
  inquiry.object.api_name = "inquiry";
  inquiry.fields = {
      MakeField("description", domain::FieldType::kLongText),
      MakeField("customer_email", domain::FieldType::kText),
      MakeField("inquiry_category", domain::FieldType::kDropdown,
                {"FAQ", "Standard", "High priority"}),
      MakeField("sentiment", domain::FieldType::kDropdown, {"Positive", "Neutral", "Negative"}),
      MakeField("suggested_response", domain::FieldType::kLongText),
      MakeField("status", domain::FieldType::kDropdown, {"New", "In review", "Auto-responded"}),
      MakeField("priority", domain::FieldType::kNumber),
      MakeField("meta", domain::FieldType::kJson),
  };
  domain::ObjectSchema task;
  task.object.id = "obj_task";
  task.object.api_name = "task";
  task.fields = {MakeField("title", domain::FieldType::kText, {}, /*required=*/true),
                 MakeField("notes", domain::FieldType::kLongText)};
  app->objects = {inquiry, task};
  return app;
}

// The seed's "Customer Inquiry Processing", in full.
json CustomerInquiryProcessing() {
  return json::parse(R"js({
    "name": "Customer Inquiry Processing",
    "description": "Analyse new inquiries and route them",
    "object": "inquiry",
    "trigger": {"type": "record_created", "where": {"field": "description", "op": "is_not_empty"}},
    "settings": {"max_concurrency": 50, "alert_webhook": "https://alerts.example.com/hook"},
    "steps": [
      {"id": "history", "type": "search_records", "object": "inquiry",
       "where": {"all": [{"left": "{candidate.customer_email}", "op": "eq", "right": "{record.customer_email}"},
                         {"left": "{candidate.id}", "op": "ne", "right": "{record.id}"}]},
       "sort": "-created_at", "limit": 5},
      {"id": "analyse", "type": "run_agent_task", "agent": "agt_support",
       "task": "Analyse this customer inquiry and suggest a response.\nInquiry: {record.description}\nEarlier inquiries ({steps.history.count}):\n{steps.history.text}",
       "inputs": {"customer_inquiry": "{record.description}"},
       "output": {"type": "structured", "fields": [
         {"name": "response", "type": "text", "description": "the suggested reply"},
         {"name": "category", "type": "enum", "values": ["FAQ", "Standard", "High priority"]},
         {"name": "sentiment", "type": "enum", "values": ["Positive", "Neutral", "Negative"], "default": "Neutral"}]},
       "map": {"category": "record.inquiry_category", "sentiment": "record.sentiment",
               "response": "suggested_response"},
       "options": {"timeout_ms": 60000,
                   "retry": {"max_attempts": 4, "base_ms": 250, "cap_ms": 8000, "jitter": false,
                             "retry_on": ["throttling", "timeout"]},
                   "on_error": "continue", "defaults": {"category": "Standard"},
                   "cache": {"enabled": false, "ttl_seconds": 60}}},
      {"id": "route", "type": "if", "branches": [
        {"when": {"left": "{steps.analyse.category}", "op": "eq", "right": "High priority"}, "steps": [
          {"id": "escalate", "type": "escalate_review", "reason": "High priority inquiry from {record.customer_email}",
           "proposed": {"suggested_response": "{steps.analyse.response}"}}]},
        {"when": {"field": "inquiry_category", "op": "eq", "value": "Standard"}, "steps": [
          {"id": "queue", "type": "update_record", "values": {"status": "In review"}}]},
        {"when": {"left": "{steps.analyse.category}", "op": "in", "right": ["FAQ"]}, "steps": [
          {"id": "auto_respond", "type": "update_record", "record": "{record.id}",
           "values": {"status": "Auto-responded", "suggested_response": "{steps.analyse.response}"}}]}],
       "otherwise": [
         {"id": "notify", "type": "send_notification", "url": "https://hooks.example.com/inquiries",
          "secret": "s3cret", "body": {"handle": "{record.handle}", "category": "{steps.analyse.category}"}}]},
      {"id": "follow_up", "type": "create_record", "object": "task",
       "values": {"title": "Follow up {record.handle} ({steps.escalate.decision})",
                  "notes": "{steps.escalate.suggested_response}"}}
    ]})js");
}

class AutomationSpecTest : public ::testing::Test {
 protected:
  AutomationSpecTest() : app_(MakeApp()) {
    env_.app = app_.get();
    env_.agents = {{"agt_support", "Support agent"}};
    env_.services = {{"svc_claude", "Claude Sonnet"}};
  }

  AutomationSpec MustParse(const json& definition) {
    domain::FieldErrors errors;
    auto spec = ParseAutomationSpec(definition, env_, &errors);
    EXPECT_TRUE(spec.ok()) << spec.status().ToString();
    EXPECT_TRUE(errors.empty()) << errors.ToJson().dump(2);
    return spec.ok() ? *spec : AutomationSpec{};
  }

  // The errors of a definition expected to be invalid.
  domain::FieldErrors Errors(const json& definition) {
    domain::FieldErrors errors;
    auto spec = ParseAutomationSpec(definition, env_, &errors);
    EXPECT_FALSE(spec.ok());
    if (!spec.ok()) {
      EXPECT_EQ(spec.status().code(), StatusCode::kInvalidArgument);
    }
    return errors;
  }

  // The message at `path`, or "<no error at path>: <all errors>".
  std::string ErrorAt(const json& definition, const std::string& path) {
    const domain::FieldErrors errors = Errors(definition);
    auto it = errors.by_name().find(path);
    if (it == errors.by_name().end())
      return "<no error at " + path + ">: " + errors.ToJson().dump();
    return it->second;
  }

  // A minimal valid definition with `steps`.
  static json WithSteps(json steps) {
    return {{"name", "t"},
            {"object", "inquiry"},
            {"trigger", {{"type", "record_created"}}},
            {"steps", std::move(steps)}};
  }

  static json Agent(const std::string& id, const std::string& task) {
    return {{"id", id}, {"type", "run_agent_task"}, {"agent", "agt_support"}, {"task", task}};
  }

  std::shared_ptr<const domain::AppSchema> app_;
  SpecEnvironment env_;
};

TEST_F(AutomationSpecTest, ParsesCustomerInquiryProcessing) {
  const json definition = CustomerInquiryProcessing();
  const AutomationSpec spec = MustParse(definition);
  EXPECT_EQ(spec.name, "Customer Inquiry Processing");
  EXPECT_EQ(spec.object, "inquiry");
  EXPECT_EQ(spec.raw, definition);
  EXPECT_EQ(spec.trigger.kind, TriggerKind::kRecordCreated);
  ASSERT_TRUE(spec.trigger.where.has_value());
  EXPECT_EQ(spec.trigger.where->left, "{record.description}");
  EXPECT_EQ(spec.trigger.where->op, "is_not_empty");
  EXPECT_EQ(spec.settings.max_concurrency, 50);
  ASSERT_EQ(spec.steps.size(), 4u);

  const Step& history = spec.steps[0];
  EXPECT_EQ(history.kind, StepKind::kSearchRecords);
  EXPECT_EQ(history.raw, definition["steps"][0]);
  EXPECT_EQ(history.sort, "-created_at");
  ASSERT_TRUE(history.where.has_value());
  EXPECT_EQ(history.where->kind, Condition::Kind::kAll);
  EXPECT_EQ(history.where->children.size(), 2u);
  EXPECT_THAT(history.OutputNames(), ElementsAre("count", "records", "text"));

  const Step& analyse = spec.steps[1];
  EXPECT_TRUE(analyse.CallsBedrock());
  EXPECT_EQ(analyse.agent_id, "agt_support");
  EXPECT_THAT(analyse.task, HasSubstr("{record.description}"));
  ASSERT_EQ(analyse.inputs.size(), 1u);
  EXPECT_EQ(analyse.inputs[0].first, "customer_inquiry");
  ASSERT_TRUE(analyse.output.structured);
  ASSERT_EQ(analyse.output.fields.size(), 3u);
  EXPECT_EQ(analyse.output.fields[1].type, OutputField::Type::kEnum);
  EXPECT_THAT(analyse.output.fields[1].values, ElementsAre("FAQ", "Standard", "High priority"));
  EXPECT_EQ(analyse.output.fields[2].default_value, json("Neutral"));
  EXPECT_THAT(analyse.OutputNames(),
              ElementsAre("text", "session_id", "response", "category", "sentiment"));
  EXPECT_EQ(analyse.map, (std::map<std::string, std::string>{{"category", "inquiry_category"},
                                                             {"response", "suggested_response"},
                                                             {"sentiment", "sentiment"}}));
  EXPECT_EQ(analyse.options.timeout_ms, 60000);
  EXPECT_EQ(analyse.options.retry.max_attempts, 4);
  EXPECT_EQ(analyse.options.retry.base_ms, 250);
  EXPECT_EQ(analyse.options.retry.cap_ms, 8000);
  EXPECT_FALSE(analyse.options.retry.jitter);
  EXPECT_THAT(analyse.options.retry.retry_on, ElementsAre("throttling", "timeout"));
  EXPECT_EQ(analyse.options.on_error, OnError::kContinue);
  EXPECT_EQ(analyse.options.defaults, json({{"category", "Standard"}}));
  EXPECT_FALSE(analyse.options.cache_enabled);
  EXPECT_EQ(analyse.options.cache_ttl_seconds, 60);

  const Step& route = spec.steps[2];
  EXPECT_EQ(route.kind, StepKind::kIf);
  ASSERT_EQ(route.branches.size(), 3u);
  EXPECT_EQ(route.branches[1].when.left, "{record.inquiry_category}");  // shorthand
  EXPECT_EQ(route.branches[1].when.right, json("Standard"));
  EXPECT_EQ(route.branches[2].when.op, "in");
  EXPECT_TRUE(route.OutputNames().empty());
  ASSERT_EQ(route.otherwise.size(), 1u);

  const Step* escalate = spec.FindStep("escalate");
  ASSERT_NE(escalate, nullptr);
  EXPECT_EQ(escalate->kind, StepKind::kEscalateReview);
  EXPECT_THAT(escalate->OutputNames(),
              ElementsAre("decision", "reviewer", "comment", "suggested_response"));
  const Step* auto_respond = spec.FindStep("auto_respond");
  ASSERT_NE(auto_respond, nullptr);
  EXPECT_EQ(auto_respond->record, "{record.id}");
  EXPECT_EQ(auto_respond->object, "inquiry");
  EXPECT_EQ(auto_respond->values.at("status"), json("Auto-responded"));
  const Step* notify = spec.FindStep("notify");
  ASSERT_NE(notify, nullptr);
  EXPECT_EQ(notify->url, "https://hooks.example.com/inquiries");
  EXPECT_EQ(notify->body["handle"], "{record.handle}");
  EXPECT_THAT(notify->OutputNames(), ElementsAre("status", "delivery_id"));
  EXPECT_EQ(spec.FindStep("follow_up")->object, "task");
  EXPECT_THAT(spec.FindStep("follow_up")->OutputNames(), ElementsAre("id", "handle"));
  EXPECT_THAT(spec.FindStep("queue")->OutputNames(), ElementsAre("id", "version"));
  EXPECT_EQ(spec.FindStep("nope"), nullptr);
}

TEST_F(AutomationSpecTest, ProgramForTheSeedAutomation) {
  auto spec = std::make_shared<const AutomationSpec>(MustParse(CustomerInquiryProcessing()));
  const Program program = CompileProgram(spec);
  using K = Instruction::Kind;
  const std::vector<Instruction>& code = program.instructions;
  ASSERT_EQ(code.size(), 12u);
  std::vector<K> kinds;
  for (const Instruction& instruction : code) kinds.push_back(instruction.kind);
  EXPECT_THAT(kinds, ElementsAre(K::kStep, K::kStep, K::kBranch, K::kStep, K::kJump, K::kStep,
                                 K::kJump, K::kStep, K::kJump, K::kStep, K::kStep, K::kEnd));
  EXPECT_EQ(code[0].step->id, "history");
  EXPECT_EQ(code[2].step->id, "route");
  EXPECT_THAT(code[2].branch_targets, ElementsAre(3, 5, 7, 9));
  EXPECT_EQ(code[3].step->id, "escalate");
  EXPECT_EQ(code[4].target, 10);
  EXPECT_EQ(code[6].target, 10);
  EXPECT_EQ(code[8].target, 10);
  EXPECT_EQ(code[9].step->id, "notify");
  EXPECT_EQ(code[10].step->id, "follow_up");
  EXPECT_EQ(program.spec, spec);
}

TEST_F(AutomationSpecTest, ProgramForNestedIfs) {
  const json definition = WithSteps(json::parse(R"js([
    {"id": "outer", "type": "if", "branches": [
      {"when": {"field": "priority", "op": "gt", "value": 3}, "steps": [
        {"id": "s1", "type": "update_record", "values": {"status": "In review"}},
        {"id": "inner", "type": "if", "branches": [
          {"when": {"field": "status", "op": "eq", "value": "New"}, "steps": [
            {"id": "s2", "type": "update_record", "values": {"priority": 1}}]}],
         "otherwise": [{"id": "s3", "type": "update_record", "values": {"priority": 2}}]}]},
      {"when": {"field": "priority", "op": "eq", "value": 0}, "steps": []}]},
    {"id": "s4", "type": "update_record", "values": {"priority": "{steps.s2.version}"}}
  ])js"));
  auto spec = std::make_shared<const AutomationSpec>(MustParse(definition));
  const Program program = CompileProgram(spec);
  const std::vector<Instruction>& code = program.instructions;
  using K = Instruction::Kind;
  // 0 branch outer; 1 s1; 2 branch inner; 3 s2; 4 jump; 5 s3; 6 jump (end of
  // outer's first branch); 7 jump (end of the empty second branch); 8 s4; 9 end.
  std::vector<K> kinds;
  for (const Instruction& instruction : code) kinds.push_back(instruction.kind);
  EXPECT_THAT(kinds, ElementsAre(K::kBranch, K::kStep, K::kBranch, K::kStep, K::kJump, K::kStep,
                                 K::kJump, K::kJump, K::kStep, K::kEnd));
  EXPECT_EQ(code[0].step->id, "outer");
  EXPECT_THAT(code[0].branch_targets, ElementsAre(1, 7, 8));  // branch 0, empty branch 1, otherwise
  EXPECT_EQ(code[1].step->id, "s1");
  EXPECT_EQ(code[2].step->id, "inner");
  EXPECT_THAT(code[2].branch_targets, ElementsAre(3, 5));
  EXPECT_EQ(code[4].target, 6);  // inner's branch jumps past its otherwise
  EXPECT_EQ(code[5].step->id, "s3");
  EXPECT_EQ(code[6].target, 8);  // end of outer branch 0
  EXPECT_EQ(code[7].target, 8);  // end of outer branch 1 (empty)
  EXPECT_EQ(code[8].step->id, "s4");

  const Program empty = CompileProgram(nullptr);
  ASSERT_EQ(empty.instructions.size(), 1u);
  EXPECT_EQ(empty.instructions[0].kind, K::kEnd);
}

TEST_F(AutomationSpecTest, DefinitionMustBeABoundedObject) {
  EXPECT_THAT(ErrorAt(json::array(), "definition"), HasSubstr("must be a JSON object"));
  json big = WithSteps(json::array({Agent("a", std::string(kMaxDefinitionBytes, 'x'))}));
  EXPECT_THAT(ErrorAt(big, "definition"), HasSubstr("at most 262144"));
}

TEST_F(AutomationSpecTest, ReportsEveryProblemAtOnceWithASummary) {
  json definition = {{"object", "nowhere"},
                     {"trigger", {{"type", "sometimes"}}},
                     {"steps", json::array({{{"id", "Bad Id"}, {"type", "run_agent_task"}}})},
                     {"colour", "blue"}};
  domain::FieldErrors errors;
  auto spec = ParseAutomationSpec(definition, env_, &errors);
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(spec.status().message(), HasSubstr("the automation definition has"));
  EXPECT_THAT(spec.status().message(), HasSubstr("name is required"));
  for (const char* path : {"name", "object", "trigger.type", "steps[0].id", "steps[0].agent",
                           "steps[0].task", "colour"}) {
    EXPECT_TRUE(errors.Has(path)) << path << " in " << errors.ToJson().dump();
  }
  EXPECT_THAT(errors.by_name().at("object"), HasSubstr("its objects: inquiry, task"));
  EXPECT_THAT(errors.by_name().at("colour"),
              HasSubstr("the known ones are name, description, object"));
  EXPECT_THAT(errors.by_name().at("trigger.type"), HasSubstr("record_created, record_updated"));
  EXPECT_THAT(errors.by_name().at("steps[0].id"), HasSubstr("lower-case"));
  // Without an errors map the status still says it all.
  EXPECT_FALSE(ParseAutomationSpec(definition, env_, nullptr).ok());
}

TEST_F(AutomationSpecTest, UnknownKeysAnywhereNameTheKnownOnes) {
  json definition = CustomerInquiryProcessing();
  definition["trigger"]["when"] = 1;
  definition["steps"][1]["prompt"] = "x";
  definition["steps"][1]["options"]["retries"] = 2;
  definition["steps"][1]["output"]["fields"][0]["required"] = true;
  definition["steps"][2]["branches"][0]["else"] = json::array();
  definition["steps"][0]["where"]["all"][0]["value"] = "x";
  const domain::FieldErrors errors = Errors(definition);
  EXPECT_THAT(errors.by_name().at("trigger.when"),
              HasSubstr("type, fields, where, inputs, every_seconds"));
  EXPECT_THAT(errors.by_name().at("steps[1].prompt"), HasSubstr("a run_agent_task step"));
  EXPECT_THAT(errors.by_name().at("steps[1].prompt"), HasSubstr("agent, task, inputs"));
  EXPECT_THAT(errors.by_name().at("steps[1].options.retries"), HasSubstr("timeout_ms, retry"));
  EXPECT_TRUE(errors.Has("steps[1].output.fields[0].required"));
  EXPECT_TRUE(errors.Has("steps[2].branches[0].else"));
  EXPECT_THAT(errors.by_name().at("steps[0].where.all[0].value"), HasSubstr("left, op, right"));
  EXPECT_EQ(errors.size(), 6u) << errors.ToJson().dump();
}

TEST_F(AutomationSpecTest, ReferencesToLaterStepsOrSelfAreErrors) {
  json definition = WithSteps(
      {Agent("first", "Use {steps.second.text}"), Agent("second", "Again: {steps.second.text}")});
  const domain::FieldErrors errors = Errors(definition);
  EXPECT_THAT(errors.by_name().at("steps[0].task"),
              HasSubstr("{steps.second.text}: step 'second' runs later"));
  EXPECT_THAT(errors.by_name().at("steps[0].task"), HasSubstr("steps[1]"));
  EXPECT_THAT(errors.by_name().at("steps[1].task"), HasSubstr("own output"));
}

TEST_F(AutomationSpecTest, ReferencesToMissingOutputsListTheRealOnes) {
  json definition = CustomerInquiryProcessing();
  definition["steps"][2]["branches"][0]["when"]["left"] = "{steps.analyse.categry}";
  definition["steps"][3]["values"]["notes"] = "{steps.history.rows} {steps.ghost.text}";
  definition["steps"][3]["values"]["title"] = "{steps.route.text}";
  const domain::FieldErrors errors = Errors(definition);
  EXPECT_THAT(errors.by_name().at("steps[2].branches[0].when.left"),
              HasSubstr("step 'analyse' has no output 'categry' (its outputs: text, session_id, "
                        "response, category, sentiment)"));
  EXPECT_THAT(errors.by_name().at("steps[3].values.notes"),
              HasSubstr("its outputs: count, records, text"));
  EXPECT_THAT(errors.by_name().at("steps[3].values.notes"),
              HasSubstr("no step has the id 'ghost'"));
  EXPECT_THAT(errors.by_name().at("steps[3].values.title"),
              HasSubstr("if step and has no outputs"));
}

TEST_F(AutomationSpecTest, BranchStepsMayBeUsedAfterTheIfButNotFromASiblingBranch) {
  json definition = CustomerInquiryProcessing();
  // follow_up (after the if) already uses {steps.escalate.*}: valid. A sibling
  // branch may not.
  definition["steps"][2]["branches"][1]["steps"][0]["values"]["status"] =
      "{steps.escalate.decision}";
  EXPECT_THAT(ErrorAt(definition, "steps[2].branches[1].steps[0].values.status"),
              HasSubstr("in another branch of if 'route'"));
  // The if's own condition cannot use a step inside it.
  definition = CustomerInquiryProcessing();
  definition["steps"][2]["branches"][2]["when"]["left"] = "{steps.queue.id}";
  EXPECT_THAT(ErrorAt(definition, "steps[2].branches[2].when.left"), HasSubstr("runs later"));
}

TEST_F(AutomationSpecTest, RecordAndTriggerReferences) {
  json definition = WithSteps({Agent(
      "a",
      "{record.descripton} {record.handle} {record.meta.plan} {record.priority.x} {trigger.kind} "
      "{trigger.before.status} {trigger.inputs.email} {record} {trigger.when} {weather.today}")});
  const std::string message = ErrorAt(definition, "steps[0].task");
  EXPECT_THAT(message,
              HasSubstr("{record.descripton}: 'descripton' is not a field of inquiry (its fields: "
                        "description, customer_email"));
  EXPECT_THAT(message, HasSubstr("plus id, handle, created_at, updated_at"));
  EXPECT_THAT(message,
              HasSubstr("{record.priority.x}: 'priority' is a number field and has no members"));
  EXPECT_THAT(message,
              HasSubstr("{trigger.before.status}: trigger.before exists only for record_updated"));
  EXPECT_THAT(message,
              HasSubstr("{trigger.inputs.email}: trigger inputs exist only for on_demand"));
  EXPECT_THAT(message, HasSubstr("{record}: name a field"));
  EXPECT_THAT(message, HasSubstr("{trigger.when}: unknown trigger value"));
  EXPECT_THAT(message, HasSubstr("{weather.today}: unknown reference"));
  EXPECT_THAT(message, ::testing::Not(HasSubstr("{record.handle}")));
  EXPECT_THAT(message, ::testing::Not(HasSubstr("{record.meta.plan}")));
  EXPECT_THAT(message, ::testing::Not(HasSubstr("{trigger.kind}")));

  json malformed = WithSteps({Agent("a", "Reply as {\"answer\": 1}")});
  EXPECT_THAT(ErrorAt(malformed, "steps[0].task"), HasSubstr("write {{ and }} for literal braces"));
}

TEST_F(AutomationSpecTest, TriggerRules) {
  json on_demand = WithSteps({Agent("a", "Email {trigger.inputs.email}; {trigger.inputs.phone}")});
  on_demand["trigger"] = {
      {"type", "on_demand"},
      {"inputs", json::array({{{"name", "email"}, {"type", "text"}, {"required", true}},
                              {{"name", "count"}, {"type", "integer"}},
                              {{"name", "email"}}})}};
  on_demand["outputs"] = {{"answer", "{steps.a.text}"}, {"bad", "{steps.zzz.text}"}};
  domain::FieldErrors errors = Errors(on_demand);
  EXPECT_THAT(errors.by_name().at("trigger.inputs[1].type"),
              HasSubstr("text, number, boolean or json"));
  EXPECT_THAT(errors.by_name().at("trigger.inputs[2].name"), HasSubstr("declared twice"));
  EXPECT_THAT(errors.by_name().at("steps[0].task"),
              HasSubstr("the trigger declares no input 'phone' (its inputs: count, email)"));
  EXPECT_TRUE(errors.Has("outputs.bad"));
  EXPECT_FALSE(errors.Has("outputs.answer"));

  json created = WithSteps({Agent("a", "x")});
  created["trigger"] = {{"type", "record_created"},
                        {"inputs", json::array()},
                        {"fields", {"status"}},
                        {"every_seconds", 60}};
  errors = Errors(created);
  EXPECT_THAT(errors.by_name().at("trigger.inputs"), HasSubstr("only to on_demand"));
  EXPECT_THAT(errors.by_name().at("trigger.fields"), HasSubstr("only to record_updated"));
  EXPECT_THAT(errors.by_name().at("trigger.every_seconds"), HasSubstr("only to schedule"));

  json updated =
      WithSteps({Agent("a", "Was {trigger.before.status}, changed {trigger.changed_fields}")});
  updated["trigger"] = {{"type", "record_updated"}, {"fields", {"status", "colour", 3}}};
  errors = Errors(updated);
  EXPECT_THAT(errors.by_name().at("trigger.fields[1]"),
              HasSubstr("'colour' is not a field of inquiry"));
  EXPECT_TRUE(errors.Has("trigger.fields[2]"));
  EXPECT_EQ(errors.size(), 2u) << errors.ToJson().dump();
  updated["trigger"]["fields"] = {"status"};
  EXPECT_THAT(MustParse(updated).trigger.fields, ElementsAre("status"));

  json schedule = WithSteps({Agent("a", "x")});
  schedule["trigger"] = {{"type", "schedule"}, {"every_seconds", 59}};
  EXPECT_THAT(ErrorAt(schedule, "trigger.every_seconds"), HasSubstr("between 60 and"));
  schedule["trigger"] = {{"type", "schedule"}};
  EXPECT_THAT(ErrorAt(schedule, "trigger.every_seconds"), HasSubstr("is required"));
  schedule["trigger"] = {{"type", "schedule"}, {"every_seconds", 3600}};
  EXPECT_EQ(MustParse(schedule).trigger.every_seconds, 3600);

  json where = WithSteps({Agent("a", "x")});
  where["trigger"] = {{"type", "record_created"},
                      {"where", {{"left", "{steps.a.text}"}, {"op", "eq"}, {"right", "x"}}}};
  EXPECT_THAT(ErrorAt(where, "trigger.where.left"), HasSubstr("no step has run"));
}

TEST_F(AutomationSpecTest, StepIdsAreValidAndUniqueAcrossNesting) {
  json definition = CustomerInquiryProcessing();
  definition["steps"][2]["otherwise"][0]["id"] = "analyse";
  definition["steps"][3]["id"] = "9lives";
  domain::FieldErrors errors = Errors(definition);
  EXPECT_THAT(errors.by_name().at("steps[2].otherwise[0].id"),
              HasSubstr("'analyse' is already the id of steps[1]"));
  EXPECT_THAT(errors.by_name().at("steps[3].id"), HasSubstr("not a valid step id"));

  // A nested step may not reuse its enclosing if's id either.
  definition = CustomerInquiryProcessing();
  definition["steps"][2]["branches"][0]["steps"][0]["id"] = "route";
  EXPECT_THAT(ErrorAt(definition, "steps[2].branches[0].steps[0].id"),
              HasSubstr("already the id of steps[2]"));
}

TEST_F(AutomationSpecTest, AtMostMaxStepsIncludingNested) {
  json steps = json::array();
  json inner = json::array();
  for (int i = 0; i < kMaxSteps; ++i) {
    inner.push_back({{"id", "u" + std::to_string(i)},
                     {"type", "update_record"},
                     {"values", {{"priority", i}}}});
  }
  steps.push_back({{"id", "gate"},
                   {"type", "if"},
                   {"branches", json::array({{{"when", {{"field", "priority"}, {"op", "is_empty"}}},
                                              {"steps", inner}}})}});
  EXPECT_THAT(ErrorAt(WithSteps(steps), "steps"),
              HasSubstr("hold more than 100 steps (nested steps count)"));
  steps[0]["branches"][0]["steps"].erase(0);
  MustParse(WithSteps(steps));
  EXPECT_THAT(ErrorAt(WithSteps(json::array()), "steps"), HasSubstr("at least one step"));
}

TEST_F(AutomationSpecTest, StructuredOutputFieldRules) {
  json step = Agent("a", "x");
  step["output"] = json::parse(R"js({"type": "structured", "fields": [
    {"name": "category", "type": "enum"},
    {"name": "mood", "type": "enum", "values": ["Happy", "Sad"], "default": "Angry"},
    {"name": "score", "type": "number", "default": "high"},
    {"name": "ok", "type": "boolean", "default": 1},
    {"name": "note", "type": "text", "values": ["x"]},
    {"name": "text", "type": "text"},
    {"name": "score", "type": "number"},
    {"name": "level", "type": "integer"},
    {"name": "dup", "type": "enum", "values": ["A", "a"]}]})js");
  const domain::FieldErrors errors = Errors(WithSteps({step}));
  const std::string base = "steps[0].output.fields";
  EXPECT_THAT(errors.by_name().at(base + "[0].values"), HasSubstr("at least one value"));
  EXPECT_THAT(errors.by_name().at(base + "[1].default"),
              HasSubstr("must be one of the field's values: Happy, Sad"));
  EXPECT_THAT(errors.by_name().at(base + "[2].default"), HasSubstr("must be a number"));
  EXPECT_THAT(errors.by_name().at(base + "[3].default"), HasSubstr("true or false"));
  EXPECT_THAT(errors.by_name().at(base + "[4].values"), HasSubstr("only to enum fields"));
  EXPECT_THAT(errors.by_name().at(base + "[5].name"), HasSubstr("already an output"));
  EXPECT_THAT(errors.by_name().at(base + "[6].name"), HasSubstr("declared twice"));
  EXPECT_THAT(errors.by_name().at(base + "[7].type"), HasSubstr("text, number, boolean or enum"));
  EXPECT_THAT(errors.by_name().at(base + "[8].values[1]"), HasSubstr("listed twice"));

  json text_with_fields = Agent("a", "x");
  text_with_fields["output"] = {{"type", "text"}, {"fields", json::array()}};
  EXPECT_THAT(ErrorAt(WithSteps({text_with_fields}), "steps[0].output.fields"),
              HasSubstr("structured"));
  json no_fields = Agent("a", "x");
  no_fields["output"] = {{"type", "structured"}};
  EXPECT_THAT(ErrorAt(WithSteps({no_fields}), "steps[0].output.fields"),
              HasSubstr("non-empty array"));
}

TEST_F(AutomationSpecTest, ExecutionOptionRules) {
  json step = Agent("a", "x");
  step["options"] = json::parse(R"js({"timeout_ms": 999,
    "retry": {"max_attempts": 11, "base_ms": 5000, "cap_ms": 1000, "jitter": "yes", "retry_on": ["throttling", "boom"]},
    "on_error": "explode", "defaults": {"category": "x", "text": 5},
    "cache": {"enabled": 1, "ttl_seconds": 0}})js");
  domain::FieldErrors errors = Errors(WithSteps({step}));
  EXPECT_THAT(errors.by_name().at("steps[0].options.timeout_ms"),
              HasSubstr("between 1000 and 900000"));
  EXPECT_THAT(errors.by_name().at("steps[0].options.retry.max_attempts"),
              HasSubstr("between 1 and 10"));
  EXPECT_THAT(errors.by_name().at("steps[0].options.retry.cap_ms"),
              HasSubstr("at least base_ms (5000)"));
  EXPECT_TRUE(errors.Has("steps[0].options.retry.jitter"));
  EXPECT_THAT(errors.by_name().at("steps[0].options.retry.retry_on[1]"),
              HasSubstr("'boom' is not an error class; use throttling, transient or timeout"));
  EXPECT_THAT(errors.by_name().at("steps[0].options.on_error"), HasSubstr("halt"));
  EXPECT_THAT(errors.by_name().at("steps[0].options.defaults.category"),
              HasSubstr("not an output of this step (its outputs: text, session_id)"));
  EXPECT_THAT(errors.by_name().at("steps[0].options.defaults.text"), HasSubstr("must be a text"));
  EXPECT_TRUE(errors.Has("steps[0].options.cache.enabled"));
  EXPECT_TRUE(errors.Has("steps[0].options.cache.ttl_seconds"));

  json definition = CustomerInquiryProcessing();
  definition["steps"][1]["options"]["defaults"]["category"] = "Urgent";
  definition["steps"][1]["options"]["timeout_ms"] = 900001;
  errors = Errors(definition);
  EXPECT_THAT(errors.by_name().at("steps[1].options.defaults.category"),
              HasSubstr("must be one of FAQ, Standard, High priority"));
  EXPECT_TRUE(errors.Has("steps[1].options.timeout_ms"));

  EXPECT_TRUE(IsKnownErrorClass("throttling"));
  EXPECT_TRUE(IsKnownErrorClass("transient"));
  EXPECT_TRUE(IsKnownErrorClass("timeout"));
  EXPECT_FALSE(IsKnownErrorClass("validation"));
}

TEST_F(AutomationSpecTest, MapAndValuesMustNameFieldsOfTheTargetObject) {
  json definition = CustomerInquiryProcessing();
  definition["steps"][1]["map"] = {
      {"category", "record.colour"}, {"mood", "record.sentiment"}, {"response", "record.id"}};
  definition["steps"][2]["branches"][1]["steps"][0]["values"] = {
      {"colour", "x"}, {"status", "Closed"}, {"priority", "many"}};
  definition["steps"][3]["values"] = {{"notes", "n"}, {"description", "d"}};
  const domain::FieldErrors errors = Errors(definition);
  EXPECT_THAT(errors.by_name().at("steps[1].map.category"),
              HasSubstr("'colour' is not a field of inquiry"));
  EXPECT_THAT(errors.by_name().at("steps[1].map.mood"),
              HasSubstr("its outputs: text, session_id, response"));
  EXPECT_THAT(errors.by_name().at("steps[1].map.response"), HasSubstr("cannot be written"));
  const std::string values = "steps[2].branches[1].steps[0].values";
  EXPECT_THAT(errors.by_name().at(values + ".colour"), HasSubstr("not a field of inquiry"));
  EXPECT_THAT(errors.by_name().at(values + ".status"), HasSubstr("New, In review, Auto-responded"));
  EXPECT_TRUE(errors.Has(values + ".priority"));
  EXPECT_THAT(errors.by_name().at("steps[3].values.description"), HasSubstr("not a field of task"));
  EXPECT_THAT(errors.by_name().at("steps[3].values"), HasSubstr("required field(s) title of task"));
}

TEST_F(AutomationSpecTest, SearchAndCreateObjectsMustExist) {
  json steps = json::parse(R"js([
    {"id": "s", "type": "search_records", "object": "customer", "limit": 51},
    {"id": "t", "type": "search_records", "object": "task", "sort": "-colour",
     "where": {"field": "titel", "op": "eq", "value": "{record.handle}"}},
    {"id": "c", "type": "create_record", "object": "ghost", "values": {}},
    {"id": "u", "type": "search_records"}])js");
  const domain::FieldErrors errors = Errors(WithSteps(steps));
  EXPECT_THAT(errors.by_name().at("steps[0].object"),
              HasSubstr("'customer' is not an object of app support"));
  EXPECT_THAT(errors.by_name().at("steps[0].limit"), HasSubstr("between 1 and 50"));
  EXPECT_THAT(errors.by_name().at("steps[1].sort"), HasSubstr("'colour' is not a field of task"));
  // The shorthand inside a search's where names the candidate's field.
  EXPECT_THAT(errors.by_name().at("steps[1].where.field"),
              HasSubstr("'titel' is not a field of task"));
  EXPECT_TRUE(errors.Has("steps[2].object"));
  EXPECT_THAT(errors.by_name().at("steps[3].object"), HasSubstr("is required"));

  const AutomationSpec spec = MustParse(WithSteps(json::parse(R"js([
    {"id": "t", "type": "search_records", "object": "obj_task",
     "where": {"field": "title", "op": "contains", "value": "{record.handle}"}}])js")));
  EXPECT_EQ(spec.steps[0].object, "task");  // by id, stored as the api name
  EXPECT_EQ(spec.steps[0].where->left, "{candidate.title}");
  EXPECT_EQ(spec.steps[0].limit, 5);
}

TEST_F(AutomationSpecTest, ControlAndCandidateOnlyWhereTheyExist) {
  json agent = Agent("a", "Order {control.order_id} {candidate.title}");
  agent["return_control"] = {
      {"orders/lookup_order", "Order {control.order_id} ships {record.handle}"},
      {"lookup", "x"},
      {"orders/look up", "y"}};
  const domain::FieldErrors errors = Errors(WithSteps({agent}));
  EXPECT_THAT(errors.by_name().at("steps[0].task"), HasSubstr("only in return_control replies"));
  EXPECT_THAT(errors.by_name().at("steps[0].task"),
              HasSubstr("only in a search_records step's where"));
  EXPECT_FALSE(errors.Has("steps[0].return_control.orders/lookup_order"));
  EXPECT_THAT(errors.by_name().at("steps[0].return_control.lookup"),
              HasSubstr("<actionGroup>/<function>"));
  EXPECT_TRUE(errors.Has("steps[0].return_control.orders/look up"));
  EXPECT_EQ(errors.size(), 3u) << errors.ToJson().dump();
}

TEST_F(AutomationSpecTest, AgentsServicesAndNotificationUrls) {
  json steps = json::parse(R"js([
    {"id": "a", "type": "run_agent_task", "agent": "agt_other", "task": "x"},
    {"id": "p", "type": "ai_prompt", "service": "svc_other", "prompt": "Summarise {record.description}",
     "system": "Be brief", "output": {"type": "text"}},
    {"id": "n", "type": "send_notification", "url": "ftp://files.example.com/x"},
    {"id": "m", "type": "send_notification", "url": "https:///nohost"},
    {"id": "o", "type": "send_notification", "url": "https://{record.customer_email}/x"}])js");
  const domain::FieldErrors errors = Errors(WithSteps(steps));
  EXPECT_THAT(errors.by_name().at("steps[0].agent"),
              HasSubstr("use one of agt_support (Support agent)"));
  EXPECT_THAT(errors.by_name().at("steps[1].service"),
              HasSubstr("use one of svc_claude (Claude Sonnet)"));
  EXPECT_THAT(errors.by_name().at("steps[2].url"), HasSubstr("http:// or https://"));
  EXPECT_TRUE(errors.Has("steps[3].url"));
  EXPECT_THAT(errors.by_name().at("steps[4].url"), HasSubstr("literal host"));
  EXPECT_EQ(errors.size(), 5u) << errors.ToJson().dump();

  steps[0]["agent"] = "agt_support";
  steps[1]["service"] = "svc_claude";
  steps[2]["url"] = "http://127.0.0.1:8080/hook";
  steps[3]["url"] = "https://hooks.example.com";
  steps[4]["url"] =
      "https://hooks.example.com/inquiry/{record.handle}?step={steps.p.text}&x={steps.zz.id}";
  steps[3]["options"] = {{"timeout_ms", 5000}, {"defaults", {{"status", 0}}}};
  EXPECT_THAT(ErrorAt(WithSteps(steps), "steps[4].url"), HasSubstr("no step has the id 'zz'"));
  steps[4]["url"] = "https://hooks.example.com/inquiry/{record.handle}?step={steps.p.text}";
  const AutomationSpec spec = MustParse(WithSteps(steps));
  EXPECT_EQ(spec.steps[1].service_id, "svc_claude");
  EXPECT_EQ(spec.steps[1].task, "Summarise {record.description}");
  EXPECT_EQ(spec.steps[1].system, "Be brief");
  EXPECT_FALSE(spec.steps[1].output.structured);
}

TEST_F(AutomationSpecTest, ConditionRules) {
  json definition = CustomerInquiryProcessing();
  json& branches = definition["steps"][2]["branches"];
  branches[0]["when"] = {{"left", "{record.status}"}, {"op", "in"}, {"right", "New"}};
  branches[1]["when"] = {{"field", "status"}, {"op", "is_empty"}, {"value", "x"}};
  branches[2]["when"] = {
      {"any", json::array({{{"left", "a"}, {"op", "like"}, {"right", "b"}},
                           {{"not", {{"left", "a"}, {"op", "eq"}}}},
                           {{"left", "a"}, {"op", "eq"}, {"right", json::array()}},
                           "x"})}};
  const domain::FieldErrors errors = Errors(definition);
  EXPECT_THAT(errors.by_name().at("steps[2].branches[0].when.right"),
              HasSubstr("must be an array for in"));
  EXPECT_THAT(errors.by_name().at("steps[2].branches[1].when.value"),
              HasSubstr("not used with is_empty"));
  EXPECT_THAT(errors.by_name().at("steps[2].branches[2].when.any[0].op"),
              HasSubstr("'like' is not an operator"));
  EXPECT_THAT(errors.by_name().at("steps[2].branches[2].when.any[1].not.right"),
              HasSubstr("is required for eq"));
  EXPECT_THAT(errors.by_name().at("steps[2].branches[2].when.any[2].right"),
              HasSubstr("use in / not_in"));
  EXPECT_THAT(errors.by_name().at("steps[2].branches[2].when.any[3]"),
              HasSubstr("must be a condition"));
  EXPECT_EQ(errors.size(), 6u) << errors.ToJson().dump();
}

TEST_F(AutomationSpecTest, NamesOfEnums) {
  EXPECT_EQ(TriggerKindName(TriggerKind::kRecordUpdated), "record_updated");
  EXPECT_EQ(TriggerKindName(TriggerKind::kOnDemand), "on_demand");
  EXPECT_EQ(StepKindName(StepKind::kRunAgentTask), "run_agent_task");
  EXPECT_EQ(StepKindName(StepKind::kSendNotification), "send_notification");
  EXPECT_EQ(OutputFieldTypeName(OutputField::Type::kEnum), "enum");
  EXPECT_EQ(OnErrorName(OnError::kReview), "review");
}

}  // namespace
}  // namespace quarry::engine
