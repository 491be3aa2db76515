#pragma once
// The automation templates Quarry ships (the seed's "Customer Inquiry
// Processing" example and its two use cases): each is an object with the
// fields it needs and an automation definition in automation_spec.h's JSON
// form, with placeholders the user fills when instantiating:
//   "$agent"    the agent connection id (run_agent_task steps)
//   "$service"  an AI service id (ai_prompt steps), when the template has one
//   "$object"   the object's api name
//   "$webhook"  a notification URL (send_notification steps), when it has one
//
// Templates:
//   customer-inquiry-processing  inquiry created -> gather the customer's
//       earlier inquiries -> agent analysis (response, category, sentiment) ->
//       route: High priority -> escalate to review; Standard -> review queue;
//       FAQ -> auto-respond with the suggestion.
//   it-ticket-triage  ticket created -> agent categorises, prioritises and
//       suggests a resolution (structured) -> update the ticket -> route:
//       Critical/High -> escalated; low confidence -> review; Low how-to
//       questions -> auto-resolved; otherwise queued. (No notification step,
//       so it needs no webhook; add a send_notification step to page someone.)
//   customer-communication  inquiry created -> agent drafts a personalised
//       reply -> human review (approve/edit/reject) -> send (notification).
//
// Thread safety: pure functions over constant data.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace quarry::engine {

struct TemplateField {
  std::string api_name, label, type;     // type as domain::FieldType names ("text", "dropdown", ...)
  std::vector<std::string> options{};    // dropdown
};

struct AutomationTemplate {
  std::string id{};           // "it-ticket-triage"
  std::string name{};
  std::string description{};
  std::string object{};       // suggested object api name ("ticket")
  std::string object_label{};
  std::vector<TemplateField> fields{};
  std::vector<std::string> placeholders{};  // which of $agent, $service, $webhook it needs
  nlohmann::json definition{};              // with placeholders
};

const std::vector<AutomationTemplate>& Templates();
const AutomationTemplate* FindTemplate(const std::string& id);

// The definition with placeholders replaced ({"$agent": "agt_...", ...} and
// "$object"). InvalidArgument naming a placeholder the template needs but
// `values` lacks.
Result<nlohmann::json> InstantiateTemplate(const AutomationTemplate& tmpl, const std::string& object,
                                           const nlohmann::json& values);

// {"id","name","description","object","fields":[...],"placeholders":[...],"definition":{...}}
nlohmann::json TemplateToJson(const AutomationTemplate& tmpl);

}  // namespace quarry::engine
