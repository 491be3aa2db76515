// `quarry demo`, part two: the Bedrock client against the built-in emulator,
// on loopback. It walks what an operations team does first: check who the
// credentials belong to, see which Claude targets the region offers, triage
// tickets with a forced tool (structured output), stream a reply, ask the IT
// agent (citations, then a hand-back of control to create a ticket), survive
// throttling, and read the troubleshooting entries of two common mistakes.

#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "aws/credential_provider.h"
#include <CLI/CLI.hpp>

#include "bedrock/client.h"
#include "cli/demo.h"
#include "sim/sim_server.h"
#include "sim/world.h"

namespace quarry::cli {
namespace {

using nlohmann::json;

constexpr char kHaiku[] = "anthropic.claude-3-haiku-20240307-v1:0";
constexpr char kSonnet4[] = "anthropic.claude-sonnet-4-20250514-v1:0";

void Section(const std::string& title) { std::cout << "\n== " << title << "\n"; }

[[noreturn]] void Fail(const std::string& what, const bedrock::BedrockError& error) {
  std::cerr << "demo failed: " << what << ": " << error.ToString() << "\n"
            << error.troubleshooting.ToText() << "\n";
  throw CLI::RuntimeError(1);
}

std::unique_ptr<bedrock::BedrockClient> MakeClient(const std::string& endpoint, std::string_view key_id,
                                                   std::string_view secret) {
  bedrock::BedrockClientOptions options;
  options.region = "us-east-1";
  options.endpoint_url = endpoint;
  options.credentials = std::make_shared<aws::StaticCredentialProvider>(aws::Credentials{
      .access_key_id = std::string(key_id), .secret_access_key = std::string(secret), .source = "demo"});
  options.deadlines.overall_deadline = std::chrono::seconds(20);
  auto client = bedrock::BedrockClient::Create(std::move(options));
  if (!client.ok()) {
    std::cerr << "demo failed: " << client.status().ToString() << "\n";
    throw CLI::RuntimeError(1);
  }
  return std::move(client).value();
}

bedrock::ModelRequest TriageRequest(const std::string& ticket) {
  bedrock::ModelRequest request;
  request.model_id = kHaiku;
  request.system = "You triage IT support tickets.";
  request.messages = {bedrock::ChatMessage::User("Triage this ticket: " + ticket)};
  request.max_tokens = 256;
  request.tools = {{.name = "classify_ticket",
                    .description = "Record the ticket's category and priority.",
                    .input_schema = {
                        {"type", "object"},
                        {"properties",
                         {{"category",
                           {{"type", "string"},
                            {"enum", {"Network", "Hardware", "Software", "Access", "Billing", "Other"}}}},
                          {"priority", {{"type", "string"}, {"enum", {"Low", "Medium", "High", "Critical"}}}}}},
                        {"required", {"category", "priority"}}}}};
  request.tool_choice = bedrock::ToolChoice{.kind = bedrock::ToolChoice::Kind::kTool, .name = "classify_ticket"};
  return request;
}

void Triage(bedrock::BedrockClient& client) {
  Section("9. Triage with Claude 3 Haiku: a forced tool gives structured output");
  const std::vector<std::string> tickets = {
      "VPN drops every 10 minutes since this morning's update.",
      "Laptop screen cracked after a fall, I cannot see anything.",
      "Locked out of my account after the password reset.",
      "Our invoice was charged twice this month.",
      "Email is down for everyone in the London office, urgent!"};
  for (const std::string& ticket : tickets) {
    const auto result = client.InvokeModel(TriageRequest(ticket));
    if (!result.ok()) Fail("InvokeModel", result.error());
    const bedrock::ContentBlock* tool = result.value().FirstToolUse();
    std::cout << "   " << ticket << "\n     -> "
              << (tool != nullptr ? tool->tool_input.dump() : result.value().text) << "  (" << result.value().usage.input_tokens
              << " in / " << result.value().usage.output_tokens << " out tokens)\n";
  }
}

void Agent(bedrock::BedrockClient& client) {
  Section("11. The IT helpdesk agent, by its Agent Alias ARN");
  const std::string alias_arn = "arn:aws:bedrock:us-east-1:" + std::string(sim::kDemoAccount) + ":agent-alias/" +
                                std::string(sim::kDemoAgentId) + "/" + std::string(sim::kDemoAliasId);
  std::cout << "   " << alias_arn << "\n   you: How do I connect to the VPN?\n   agent (streamed): ";
  bedrock::InvokeAgentRequest ask{.agent_alias_arn = alias_arn,
                                  .session_id = "demo-session-1",
                                  .input_text = "How do I connect to the VPN?",
                                  .stream_final_response = true};
  auto answer = client.InvokeAgent(
      ask, {.on_chunk = [](const bedrock::AgentChunk& chunk) { std::cout << chunk.text << std::flush; }});
  if (!answer.ok()) Fail("InvokeAgent", answer.error());
  std::cout << "\n";
  std::set<std::string> sources;  // streamed chunks each cite their part of the same passage
  for (const bedrock::Citation& citation : answer.value().citations) {
    for (const bedrock::CitationReference& reference : citation.references) sources.insert(reference.uri);
  }
  for (const std::string& source : sources) std::cout << "   cited: " << source << "\n";

  std::cout << "   you: Please open a ticket for this, my laptop is TCK-1042\n";
  bedrock::InvokeAgentRequest ticket{.agent_alias_arn = alias_arn,
                                     .session_id = "demo-session-1",
                                     .input_text = "Please open a ticket for this, my laptop is TCK-1042"};
  auto handed_back = client.InvokeAgent(ticket);
  if (!handed_back.ok()) Fail("InvokeAgent", handed_back.error());
  if (!handed_back.value().return_control) {
    std::cout << "   agent: " << handed_back.value().completion << "\n";
    return;
  }
  const bedrock::ReturnControl& control = *handed_back.value().return_control;
  const bedrock::FunctionInvocation& call = control.invocations.front();
  std::cout << "   agent hands control back: " << call.action_group << "/" << call.function << "(";
  for (size_t i = 0; i < call.parameters.size(); ++i) {
    std::cout << (i ? ", " : "") << call.parameters[i].name << "=" << call.parameters[i].value;
  }
  std::cout << ")\n   Quarry runs the action and returns: ticket TCK-2001 created\n";
  bedrock::InvokeAgentRequest results{
      .agent_alias_arn = alias_arn,
      .session_id = "demo-session-1",
      .return_control_invocation_id = control.invocation_id,
      .return_control_results = {{.action_group = call.action_group,
                                  .function = call.function,
                                  .response_body = "Ticket TCK-2001 created and assigned to the network team."}}};
  auto final_answer = client.InvokeAgent(results);
  if (!final_answer.ok()) Fail("InvokeAgent", final_answer.error());
  std::cout << "   agent: " << final_answer.value().completion << "\n";
}

}  // namespace

void RunEmulatorDemo() {
  std::cout << "\nPart two: the Bedrock client against the built-in emulator (loopback only).\n";
  auto sim = sim::SimServer::Start(sim::DemoWorld(), {});
  if (!sim.ok()) {
    std::cerr << "demo failed: cannot start the emulator: " << sim.status().ToString() << "\n";
    throw CLI::RuntimeError(1);
  }
  sim::SimServer& server = *sim.value();
  std::cout << "   emulator listening on " << server.base_url() << " (quarry sim, demo world)\n";
  auto client = MakeClient(server.base_url(), sim::kDemoAccessKeyId, sim::kDemoSecretAccessKey);

  Section("7. Who am I? (STS GetCallerIdentity)");
  auto identity = client->GetCallerIdentity();
  if (!identity.ok()) Fail("GetCallerIdentity", identity.error());
  std::cout << "   " << identity.value().arn << " (account " << identity.value().account << ")\n";

  Section("8. Claude targets in us-east-1 (ListFoundationModels + ListInferenceProfiles, merged)");
  auto catalogue = client->ListCatalogue();
  if (!catalogue.ok()) Fail("ListCatalogue", catalogue.error());
  for (const bedrock::CatalogueTarget& target : catalogue.value().targets) {
    if (target.kind != bedrock::TargetKind::kFoundationModel || target.provider != "Anthropic") continue;
    std::cout << "   " << target.name << ": "
              << (target.on_demand ? "on demand as " + target.id
                                   : "through the inference profile " + target.recommended_profile_id)
              << (target.usable ? "" : " (no access: " + target.unusable_reason + ")") << "\n";
  }

  Triage(*client);

  Section("10. A streamed reply (InvokeModelWithResponseStream)");
  bedrock::ModelRequest stream_request{.model_id = kHaiku,
                                       .messages = {bedrock::ChatMessage::User(
                                           "Draft a short reply to a user whose VPN connection keeps failing.")},
                                       .max_tokens = 200};
  std::cout << "   ";
  auto streamed = client->InvokeModelWithResponseStream(stream_request, [](const bedrock::StreamDelta& delta) {
    if (delta.kind == bedrock::StreamDelta::Kind::kText) std::cout << delta.text << std::flush;
  });
  if (!streamed.ok()) Fail("InvokeModelWithResponseStream", streamed.error());
  std::cout << "\n   stop reason " << streamed.value().stop_reason << ", " << streamed.value().usage.output_tokens
            << " output tokens\n";

  Agent(*client);

  Section("12. Throttled twice: the standard retry mode absorbs it");
  server.emulator().AddFault({.kind = "throttle", .operation = "InvokeModel", .count = 2});
  const int64_t before = server.emulator().CallCount("InvokeModel");
  auto retried = client->InvokeModel(TriageRequest("Printer on floor 3 is offline."));
  if (!retried.ok()) Fail("InvokeModel under throttling", retried.error());
  std::cout << "   succeeded after " << retried.value().attempts << " attempts; the emulator counted "
            << server.emulator().CallCount("InvokeModel") - before << " InvokeModel calls\n";

  Section("13. Mistakes, explained: the troubleshooting catalogue");
  bedrock::ModelRequest on_demand{.model_id = kSonnet4,
                                  .messages = {bedrock::ChatMessage::User("Hello")},
                                  .max_tokens = 50};
  auto refused = client->InvokeModel(on_demand);
  if (refused.ok()) {
    std::cerr << "demo failed: an on-demand call to a profile-only model was accepted\n";
    throw CLI::RuntimeError(1);
  }
  std::cout << "   calling " << kSonnet4 << " on demand:\n";
  std::cout << refused.error().troubleshooting.ToText() << "\n";
  auto restricted = MakeClient(server.base_url(), sim::kDemoRestrictedAccessKeyId,
                               sim::kDemoRestrictedSecretAccessKey);
  bedrock::InvokeAgentRequest denied_request{
      .agent_alias_arn = "arn:aws:bedrock:us-east-1:" + std::string(sim::kDemoAccount) + ":agent-alias/" +
                         std::string(sim::kDemoAgentId) + "/" + std::string(sim::kDemoAliasId),
      .session_id = "demo-session-2",
      .input_text = "Hello"};
  auto denied = restricted->InvokeAgent(denied_request);
  if (denied.ok()) {
    std::cerr << "demo failed: the restricted user was allowed to invoke the agent\n";
    throw CLI::RuntimeError(1);
  }
  std::cout << "\n   the read-only user invoking the agent:\n" << denied.error().troubleshooting.ToText() << "\n";
  server.Stop();
}

}  // namespace quarry::cli
