// The shipped templates: structure (unique ids, placeholders that match the
// definitions, fields of known types), instantiation (every placeholder
// substituted, a missing one reported), and that each instantiated
// definition is a valid automation for an app built from the template's own
// fields.

#include "engine/templates.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "domain/apps.h"
#include "domain/fields.h"
#include "engine/automation_spec.h"

namespace quarry::engine {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

constexpr const char* kAgentId = "agt_helpdesk";
constexpr const char* kWebhook = "https://hooks.example.com/quarry";

json Values() {
  return json{{"$agent", kAgentId}, {"$webhook", kWebhook}, {"$service", "svc_claude"}};
}

// Every string in the definition, depth first.
void CollectStrings(const json& node, std::vector<std::string>* out) {
  if (node.is_string()) {
    out->push_back(node.get<std::string>());
  } else if (node.is_array() || node.is_object()) {
    for (const auto& child : node) CollectStrings(child, out);
  }
}

std::set<std::string> PlaceholdersIn(const json& definition) {
  std::vector<std::string> strings;
  CollectStrings(definition, &strings);
  std::set<std::string> found;
  for (const std::string& s : strings) {
    if (!s.empty() && s.front() == '$') found.insert(s);
  }
  return found;
}

// An app with one object holding the template's fields, as a user would
// create it before instantiating the template.
std::shared_ptr<const domain::AppSchema> AppFor(const AutomationTemplate& tmpl,
                                                const std::string& object) {
  auto app = std::make_shared<domain::AppSchema>();
  app->app.id = "app_templates";
  app->app.namespace_name = "support";
  domain::ObjectSchema schema;
  schema.object.id = "obj_1";
  schema.object.api_name = object;
  schema.object.name = tmpl.object_label;
  int64_t position = 0;
  for (const TemplateField& tf : tmpl.fields) {
    domain::Field field;
    field.api_name = tf.api_name;
    field.label = tf.label;
    EXPECT_TRUE(domain::ParseFieldType(tf.type, &field.type))
        << tmpl.id << "." << tf.api_name << ": " << tf.type;
    field.options = tf.options;
    field.position = position++;
    schema.fields.push_back(std::move(field));
  }
  app->objects.push_back(std::move(schema));
  return app;
}

TEST(TemplatesTest, ShipsTheThreeTemplatesWithUniqueIds) {
  std::set<std::string> ids;
  for (const AutomationTemplate& tmpl : Templates()) {
    EXPECT_TRUE(ids.insert(tmpl.id).second) << "duplicate id " << tmpl.id;
    EXPECT_FALSE(tmpl.name.empty()) << tmpl.id;
    EXPECT_FALSE(tmpl.description.empty()) << tmpl.id;
    EXPECT_FALSE(tmpl.object.empty()) << tmpl.id;
    EXPECT_FALSE(tmpl.object_label.empty()) << tmpl.id;
    EXPECT_EQ(FindTemplate(tmpl.id), &tmpl);
  }
  EXPECT_EQ(ids, (std::set<std::string>{"customer-inquiry-processing", "it-ticket-triage",
                                        "customer-communication"}));
  EXPECT_EQ(FindTemplate("no-such-template"), nullptr);
}

TEST(TemplatesTest, FieldsHaveKnownTypesUniqueNamesAndDropdownOptions) {
  for (const AutomationTemplate& tmpl : Templates()) {
    std::set<std::string> names;
    for (const TemplateField& field : tmpl.fields) {
      EXPECT_TRUE(names.insert(field.api_name).second)
          << tmpl.id << ": duplicate field " << field.api_name;
      domain::FieldType type;
      EXPECT_TRUE(domain::ParseFieldType(field.type, &type)) << tmpl.id << "." << field.api_name;
      EXPECT_EQ(field.type == "dropdown", !field.options.empty())
          << tmpl.id << "." << field.api_name;
      EXPECT_FALSE(field.label.empty()) << tmpl.id << "." << field.api_name;
    }
  }
}

TEST(TemplatesTest, PlaceholdersListedAreExactlyThoseUsed) {
  for (const AutomationTemplate& tmpl : Templates()) {
    std::set<std::string> listed(tmpl.placeholders.begin(), tmpl.placeholders.end());
    listed.insert("$object");  // always substituted, never listed
    EXPECT_EQ(PlaceholdersIn(tmpl.definition), listed) << tmpl.id;
    for (const std::string& p : tmpl.placeholders) {
      EXPECT_TRUE(p == "$agent" || p == "$service" || p == "$webhook") << tmpl.id << ": " << p;
    }
  }
}

TEST(TemplatesTest, InstantiateSubstitutesEveryPlaceholder) {
  for (const AutomationTemplate& tmpl : Templates()) {
    auto definition = InstantiateTemplate(tmpl, "my_" + tmpl.object, Values());
    ASSERT_TRUE(definition.ok()) << tmpl.id << ": " << definition.status().ToString();
    EXPECT_TRUE(PlaceholdersIn(*definition).empty()) << tmpl.id << ": " << definition->dump();
    EXPECT_EQ(definition->at("object"), "my_" + tmpl.object);
    const std::string text = definition->dump();
    EXPECT_THAT(text, HasSubstr(kAgentId));
    if (std::find(tmpl.placeholders.begin(), tmpl.placeholders.end(), "$webhook") !=
        tmpl.placeholders.end()) {
      EXPECT_THAT(text, HasSubstr(kWebhook));
    }
    // The template itself is untouched.
    EXPECT_EQ(tmpl.definition.at("object"), "$object");
  }
}

TEST(TemplatesTest, EmptyObjectNameMeansTheSuggestedOneAndBareNamesAreAccepted) {
  const AutomationTemplate* triage = FindTemplate("it-ticket-triage");
  ASSERT_NE(triage, nullptr);
  auto definition = InstantiateTemplate(*triage, "", json{{"agent", kAgentId}});
  ASSERT_TRUE(definition.ok()) << definition.status().ToString();
  EXPECT_EQ(definition->at("object"), "ticket");
  EXPECT_EQ(definition->at("steps")[0].at("agent"), kAgentId);
}

TEST(TemplatesTest, MissingOrMistypedPlaceholderIsReported) {
  const AutomationTemplate* communication = FindTemplate("customer-communication");
  ASSERT_NE(communication, nullptr);
  auto missing = InstantiateTemplate(*communication, "message", json{{"$agent", kAgentId}});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.status().message(), HasSubstr("$webhook"));
  EXPECT_THAT(missing.status().message(), HasSubstr("customer-communication"));

  auto none = InstantiateTemplate(*communication, "message", json::object());
  ASSERT_FALSE(none.ok());
  EXPECT_THAT(none.status().message(), HasSubstr("$agent, $webhook"));

  auto empty =
      InstantiateTemplate(*communication, "message", json{{"$agent", ""}, {"$webhook", kWebhook}});
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(empty.status().message(), HasSubstr("$agent"));

  auto wrong_type =
      InstantiateTemplate(*communication, "message", json{{"$agent", 7}, {"$webhook", kWebhook}});
  ASSERT_FALSE(wrong_type.ok());
  EXPECT_THAT(wrong_type.status().message(), HasSubstr("must be text"));

  auto not_object = InstantiateTemplate(*communication, "message", json::array());
  ASSERT_FALSE(not_object.ok());
  EXPECT_EQ(not_object.status().code(), StatusCode::kInvalidArgument);
}

TEST(TemplatesTest, ToJsonCarriesEverything) {
  for (const AutomationTemplate& tmpl : Templates()) {
    const json j = TemplateToJson(tmpl);
    EXPECT_EQ(j.at("id"), tmpl.id);
    EXPECT_EQ(j.at("object"), tmpl.object);
    EXPECT_EQ(j.at("placeholders").size(), tmpl.placeholders.size());
    EXPECT_EQ(j.at("definition"), tmpl.definition);
    ASSERT_EQ(j.at("fields").size(), tmpl.fields.size());
    for (size_t i = 0; i < tmpl.fields.size(); ++i) {
      EXPECT_EQ(j.at("fields")[i].at("api_name"), tmpl.fields[i].api_name);
      EXPECT_EQ(j.at("fields")[i].contains("options"), tmpl.fields[i].type == "dropdown");
    }
  }
}

TEST(TemplatesTest, InstantiatedTemplatesAreValidAutomations) {
  for (const AutomationTemplate& tmpl : Templates()) {
    const std::string object = "my_" + tmpl.object;
    auto definition = InstantiateTemplate(tmpl, object, Values());
    ASSERT_TRUE(definition.ok()) << tmpl.id << ": " << definition.status().ToString();
    auto app = AppFor(tmpl, object);
    SpecEnvironment env;
    env.app = app.get();
    env.agents = {{kAgentId, "helpdesk"}};
    env.services = {{"svc_claude", "claude"}};
    domain::FieldErrors errors;
    auto spec = ParseAutomationSpec(*definition, env, &errors);
    ASSERT_TRUE(spec.ok()) << tmpl.id << ": " << spec.status().ToString() << "\n"
                           << errors.ToJson().dump(2);
    EXPECT_EQ(spec->object, object);
    EXPECT_EQ(spec->trigger.kind, TriggerKind::kRecordCreated);
    // Each template hands a structured task to the agent and routes or
    // reviews on its answer.
    ASSERT_FALSE(spec->steps.empty());
    bool structured_agent_step = false;
    for (const Step& step : spec->steps) {
      structured_agent_step =
          structured_agent_step || (step.kind == StepKind::kRunAgentTask && step.output.structured);
    }
    EXPECT_TRUE(structured_agent_step) << tmpl.id;
    EXPECT_FALSE(CompileProgram(std::make_shared<const AutomationSpec>(std::move(*spec)))
                     .instructions.empty());
  }
}

TEST(TemplatesTest, TriageRoutesOnPriorityThenConfidence) {
  const AutomationTemplate* triage = FindTemplate("it-ticket-triage");
  ASSERT_NE(triage, nullptr);
  const json& steps = triage->definition.at("steps");
  ASSERT_EQ(steps.size(), 2u);
  const json& branches = steps[1].at("branches");
  ASSERT_EQ(branches.size(), 3u);
  EXPECT_EQ(branches[0].at("when").at("right"), json({"Critical", "High"}));
  EXPECT_EQ(branches[0].at("steps")[0].at("values").at("route"), "escalated");
  EXPECT_EQ(branches[1].at("steps")[0].at("type"), "escalate_review");
  EXPECT_EQ(branches[2].at("steps")[0].at("values").at("route"), "auto-resolved");
  EXPECT_EQ(steps[1].at("otherwise")[0].at("values").at("route"), "queued");
}

}  // namespace
}  // namespace quarry::engine
