// The shipped automation templates (see templates.h). Definitions are kept
// as JSON text so they read like what a user writes through the API.
//
// Wording of the agent tasks: the emulator's agents (and real models) pick
// enum values from the words of the task, so the fixed text around the
// record's values avoids words that lean towards one value ("urgent",
// "request", "question", "helpful", ...) and leaves the enum values to the
// instructions the engine appends. Triage tasks hold only the ticket's title
// and description, so two identical tickets from different people render the
// same call and share one cache entry.

#include "engine/templates.h"

#include <map>
#include <string_view>

namespace quarry::engine {
namespace {

using nlohmann::json;

constexpr std::string_view kTicketTriageDefinition = R"JSON({
  "name": "IT ticket triage",
  "description": "Categorise and prioritise each new ticket, suggest a resolution, then escalate, send to review, auto-resolve or queue it.",
  "object": "$object",
  "trigger": {"type": "record_created"},
  "steps": [
    {"id": "triage", "type": "run_agent_task", "agent": "$agent",
     "task": "Triage this IT support ticket. Classify it, rate how much it affects work, judge the tone of the writer and suggest a resolution.\n\nTitle: {record.title}\nDescription: {record.description}",
     "output": {"type": "structured", "fields": [
       {"name": "category", "type": "enum", "values": ["Hardware", "Software", "Network", "Access", "Email", "Other"],
        "description": "what the ticket is about"},
       {"name": "priority", "type": "enum", "values": ["Critical", "High", "Medium", "Low"],
        "description": "Critical: many people cannot work; High: one person cannot work; Medium: work is degraded; Low: how-to questions and wishes"},
       {"name": "sentiment", "type": "enum", "values": ["positive", "neutral", "negative"],
        "description": "the tone of the writer"},
       {"name": "confidence", "type": "number", "description": "how sure the classification is, from 0 to 1"},
       {"name": "suggested_resolution", "type": "text", "description": "one or two sentences for the technician"}]},
     "map": {"category": "record.category", "priority": "record.priority", "sentiment": "record.sentiment",
             "confidence": "record.confidence", "suggested_resolution": "record.suggested_resolution"},
     "options": {"on_error": "review"}},
    {"id": "route", "type": "if",
     "branches": [
       {"when": {"left": "{steps.triage.priority}", "op": "in", "right": ["Critical", "High"]},
        "steps": [
          {"id": "escalate", "type": "update_record", "values": {"route": "escalated", "status": "Escalated"}}]},
       {"when": {"left": "{steps.triage.confidence}", "op": "lt", "right": 0.6},
        "steps": [
          {"id": "review", "type": "escalate_review",
           "reason": "The agent is unsure how to classify this ticket (confidence {steps.triage.confidence}); check the category and priority.",
           "proposed": {"category": "{steps.triage.category}", "priority": "{steps.triage.priority}",
                        "suggested_resolution": "{steps.triage.suggested_resolution}"}},
          {"id": "apply_review", "type": "update_record",
           "values": {"category": "{steps.review.category}", "priority": "{steps.review.priority}",
                      "suggested_resolution": "{steps.review.suggested_resolution}",
                      "route": "reviewed", "status": "Triaged"}}]},
       {"when": {"all": [
          {"left": "{steps.triage.priority}", "op": "eq", "right": "Low"},
          {"any": [{"field": "description", "op": "contains", "value": "how do i"},
                   {"field": "description", "op": "contains", "value": "how can i"},
                   {"field": "description", "op": "contains", "value": "is it possible"},
                   {"field": "description", "op": "contains", "value": "what is"}]}]},
        "steps": [
          {"id": "auto_resolve", "type": "update_record", "values": {"route": "auto-resolved", "status": "Resolved"}}]}],
     "otherwise": [
       {"id": "queue", "type": "update_record", "values": {"route": "queued", "status": "Triaged"}}]}
  ]
})JSON";

constexpr std::string_view kCustomerInquiryDefinition = R"JSON({
  "name": "Customer inquiry processing",
  "description": "Gather the customer's earlier inquiries, let the agent suggest a response, categorise and judge the sentiment, then escalate, queue for review or auto-respond.",
  "object": "$object",
  "trigger": {"type": "record_created"},
  "steps": [
    {"id": "history", "type": "search_records", "object": "$object",
     "where": {"all": [{"left": "{candidate.customer_email}", "op": "eq", "right": "{record.customer_email}"},
                       {"left": "{candidate.id}", "op": "ne", "right": "{record.id}"}]},
     "sort": "-created_at", "limit": 5},
    {"id": "analyse", "type": "run_agent_task", "agent": "$agent",
     "task": "Analyse this customer inquiry: classify it, judge the tone of the customer and draft a reply to them.\n\nSubject: {record.subject}",
     "inputs": {"customer_inquiry": "{record.description}",
                "customer": "{record.customer_name} <{record.customer_email}>",
                "customer_history": "{steps.history.text}"},
     "output": {"type": "structured", "fields": [
       {"name": "response", "type": "text", "description": "the reply to send to the customer"},
       {"name": "category", "type": "enum", "values": ["FAQ", "Standard", "High priority"],
        "description": "FAQ: answered by documentation; Standard: needs an agent; High priority: needs a person now"},
       {"name": "sentiment", "type": "enum", "values": ["positive", "neutral", "negative"],
        "description": "the tone of the customer"}]},
     "map": {"response": "record.suggested_response", "category": "record.inquiry_category",
             "sentiment": "record.customer_sentiment"},
     "options": {"on_error": "review"}},
    {"id": "route", "type": "if",
     "branches": [
       {"when": {"left": "{steps.analyse.category}", "op": "eq", "right": "High priority"},
        "steps": [
          {"id": "escalate", "type": "update_record", "values": {"route": "escalated", "status": "Escalated"}},
          {"id": "urgent_review", "type": "escalate_review",
           "reason": "High-priority inquiry from {record.customer_email}: answer it personally.",
           "proposed": {"response": "{steps.analyse.response}"}},
          {"id": "urgent_reply", "type": "update_record",
           "values": {"suggested_response": "{steps.urgent_review.response}", "status": "Responded"}}]},
       {"when": {"left": "{steps.analyse.category}", "op": "eq", "right": "Standard"},
        "steps": [
          {"id": "queue", "type": "update_record", "values": {"route": "queued", "status": "In review"}},
          {"id": "standard_review", "type": "escalate_review",
           "reason": "Check the suggested response to {record.customer_email} before it is sent.",
           "proposed": {"response": "{steps.analyse.response}"}},
          {"id": "standard_reply", "type": "update_record",
           "values": {"suggested_response": "{steps.standard_review.response}", "status": "Responded"}}]}],
     "otherwise": [
       {"id": "auto_respond", "type": "update_record", "values": {"route": "auto-responded", "status": "Responded"}},
       {"id": "send_response", "type": "send_notification", "url": "$webhook",
        "body": {"event": "inquiry.auto_response", "inquiry": "{record.id}", "to": "{record.customer_email}",
                 "subject": "Re: {record.subject}", "response": "{steps.analyse.response}"}}]}
  ]
})JSON";

constexpr std::string_view kCustomerCommunicationDefinition = R"JSON({
  "name": "Personalised customer communication",
  "description": "Let the agent draft a personalised reply, have a person approve or edit it, then store and send it.",
  "object": "$object",
  "trigger": {"type": "record_created"},
  "steps": [
    {"id": "draft", "type": "run_agent_task", "agent": "$agent",
     "task": "Write a personalised reply to this customer message, addressing the customer by name.\n\nCustomer: {record.customer_name} <{record.customer_email}>\nSubject: {record.subject}\nMessage: {record.body}",
     "output": {"type": "structured", "fields": [
       {"name": "reply", "type": "text", "description": "the complete reply, greeting and sign-off included"},
       {"name": "sentiment", "type": "enum", "values": ["positive", "neutral", "negative"],
        "description": "the tone of the customer"}]},
     "map": {"reply": "record.draft_reply", "sentiment": "record.customer_sentiment"},
     "options": {"on_error": "review"}},
    {"id": "drafted", "type": "update_record", "values": {"status": "In review"}},
    {"id": "review", "type": "escalate_review",
     "reason": "Approve or edit the reply to {record.customer_name} before it is sent.",
     "proposed": {"reply": "{steps.draft.reply}"}},
    {"id": "approved", "type": "update_record", "values": {"final_reply": "{steps.review.reply}", "status": "Approved"}},
    {"id": "send", "type": "send_notification", "url": "$webhook",
     "body": {"event": "customer.reply", "message": "{record.id}", "to": "{record.customer_email}",
              "name": "{record.customer_name}", "subject": "Re: {record.subject}", "reply": "{steps.review.reply}"}},
    {"id": "sent", "type": "update_record", "values": {"status": "Sent"}}
  ]
})JSON";

json ParseDefinition(std::string_view text) {
  // The texts above are constants: a parse failure is a programming error,
  // caught by the tests, so let it throw.
  return json::parse(text);
}

std::vector<AutomationTemplate> BuildTemplates() {
  std::vector<AutomationTemplate> out;

  AutomationTemplate triage;
  triage.id = "it-ticket-triage";
  triage.name = "IT ticket triage";
  triage.description =
      "Categorise, prioritise and suggest a resolution for each new IT ticket with an agent; "
      "escalate Critical and "
      "High tickets, send unsure classifications to human review, auto-resolve how-to questions "
      "and queue the rest.";
  triage.object = "ticket";
  triage.object_label = "Ticket";
  triage.fields = {
      {"title", "Title", "text"},
      {"description", "Description", "long_text"},
      {"requester", "Requester", "text"},
      {"category",
       "Category",
       "dropdown",
       {"Hardware", "Software", "Network", "Access", "Email", "Other"}},
      {"priority", "Priority", "dropdown", {"Critical", "High", "Medium", "Low"}},
      {"sentiment", "Sentiment", "dropdown", {"positive", "neutral", "negative"}},
      {"suggested_resolution", "Suggested resolution", "long_text"},
      {"confidence", "Confidence", "decimal"},
      {"route", "Route", "text"},
      {"status", "Status", "dropdown", {"New", "Triaged", "Escalated", "Resolved"}},
  };
  triage.placeholders = {"$agent"};
  triage.definition = ParseDefinition(kTicketTriageDefinition);
  out.push_back(std::move(triage));

  AutomationTemplate inquiry;
  inquiry.id = "customer-inquiry-processing";
  inquiry.name = "Customer inquiry processing";
  inquiry.description =
      "The seed's example: gather the customer's earlier inquiries, let an agent suggest a "
      "response, categorise "
      "(FAQ, Standard, High priority) and judge the sentiment; escalate high-priority inquiries, "
      "queue standard ones "
      "for review and auto-respond to FAQs through a webhook.";
  inquiry.object = "inquiry";
  inquiry.object_label = "Inquiry";
  inquiry.fields = {
      {"subject", "Subject", "text"},
      {"description", "Description", "long_text"},
      {"customer_name", "Customer name", "text"},
      {"customer_email", "Customer e-mail", "text"},
      {"inquiry_category", "Inquiry category", "dropdown", {"FAQ", "Standard", "High priority"}},
      {"customer_sentiment", "Customer sentiment", "dropdown", {"positive", "neutral", "negative"}},
      {"suggested_response", "Suggested response", "long_text"},
      {"route", "Route", "text"},
      {"status", "Status", "dropdown", {"New", "In review", "Escalated", "Responded"}},
  };
  inquiry.placeholders = {"$agent", "$webhook"};
  inquiry.definition = ParseDefinition(kCustomerInquiryDefinition);
  out.push_back(std::move(inquiry));

  AutomationTemplate communication;
  communication.id = "customer-communication";
  communication.name = "Personalised customer communication";
  communication.description =
      "An agent drafts a personalised reply to each new customer message; a person approves, edits "
      "or rejects it; "
      "the approved text is stored on the record and sent through a webhook.";
  communication.object = "customer_message";
  communication.object_label = "Customer message";
  communication.fields = {
      {"subject", "Subject", "text"},
      {"body", "Message", "long_text"},
      {"customer_name", "Customer name", "text"},
      {"customer_email", "Customer e-mail", "text"},
      {"customer_sentiment", "Customer sentiment", "dropdown", {"positive", "neutral", "negative"}},
      {"draft_reply", "Draft reply", "long_text"},
      {"final_reply", "Final reply", "long_text"},
      {"status", "Status", "dropdown", {"New", "In review", "Approved", "Sent"}},
  };
  communication.placeholders = {"$agent", "$webhook"};
  communication.definition = ParseDefinition(kCustomerCommunicationDefinition);
  out.push_back(std::move(communication));

  return out;
}

// Replaces every string that is exactly a placeholder. Placeholders only
// ever stand alone (an id, a URL, an object name), so text that merely
// contains a "$" is left as written.
void Substitute(json& node, const std::map<std::string, std::string, std::less<>>& values) {
  if (node.is_string()) {
    auto it = values.find(node.get_ref<const std::string&>());
    if (it != values.end()) node = it->second;
  } else if (node.is_array() || node.is_object()) {
    for (auto& child : node) Substitute(child, values);
  }
}

}  // namespace

const std::vector<AutomationTemplate>& Templates() {
  static const std::vector<AutomationTemplate>* const kTemplates =
      new std::vector<AutomationTemplate>(BuildTemplates());
  return *kTemplates;
}

const AutomationTemplate* FindTemplate(const std::string& id) {
  for (const AutomationTemplate& tmpl : Templates()) {
    if (tmpl.id == id) return &tmpl;
  }
  return nullptr;
}

Result<json> InstantiateTemplate(const AutomationTemplate& tmpl, const std::string& object,
                                 const json& values) {
  if (!values.is_null() && !values.is_object()) {
    return InvalidArgumentError(
        "template values must be a JSON object like {\"$agent\": \"agt_...\"}, not " +
        std::string(values.type_name()));
  }
  std::map<std::string, std::string, std::less<>> substitutions;
  // An empty object name means the template's suggested one.
  substitutions["$object"] = object.empty() ? tmpl.object : object;
  std::vector<std::string> missing;
  for (const std::string& placeholder : tmpl.placeholders) {
    // Accepted with or without the leading "$" ("agent" or "$agent").
    const json* given = nullptr;
    if (values.is_object()) {
      if (auto it = values.find(placeholder); it != values.end()) {
        given = &*it;
      } else if (auto bare = values.find(placeholder.substr(1)); bare != values.end()) {
        given = &*bare;
      }
    }
    if (given == nullptr || given->is_null() ||
        (given->is_string() && given->get<std::string>().empty())) {
      missing.push_back(placeholder);
      continue;
    }
    if (!given->is_string()) {
      return InvalidArgumentError("template value " + placeholder + " must be text, not " +
                                  std::string(given->type_name()));
    }
    substitutions[placeholder] = given->get<std::string>();
  }
  if (!missing.empty()) {
    std::string names;
    for (const std::string& name : missing) names += (names.empty() ? "" : ", ") + name;
    std::string hint;
    for (const std::string& name : missing) {
      if (name == "$agent") hint += " $agent is the id (agt_...) of an agent connected to the app.";
      if (name == "$service") hint += " $service is the id (svc_...) of an AI service.";
      if (name == "$webhook") hint += " $webhook is the http(s) URL notifications are posted to.";
    }
    return InvalidArgumentError("template " + tmpl.id + " needs a value for " + names +
                                "; pass {\"" + missing.front() + "\": \"...\"}." + hint);
  }
  json definition = tmpl.definition;
  Substitute(definition, substitutions);
  return definition;
}

json TemplateToJson(const AutomationTemplate& tmpl) {
  json fields = json::array();
  for (const TemplateField& field : tmpl.fields) {
    json item{{"api_name", field.api_name}, {"label", field.label}, {"type", field.type}};
    if (field.type == "dropdown") item["options"] = field.options;
    fields.push_back(std::move(item));
  }
  return json{{"id", tmpl.id},
              {"name", tmpl.name},
              {"description", tmpl.description},
              {"object", tmpl.object},
              {"object_label", tmpl.object_label},
              {"fields", std::move(fields)},
              {"placeholders", tmpl.placeholders},
              {"definition", tmpl.definition}};
}

}  // namespace quarry::engine
