// `quarry demo`, part three: the platform, as the seed walks it. Starts the
// server with the built-in emulator on SQLite, then, through the REST API
// (the same calls the web UI and `quarry` CLI make): adds the Amazon Bedrock
// provider and tests the connection, creates a Claude service on a model that
// needs an inference profile, creates the IT-support app with its ticket
// object, connects the demo agent by its alias ARN (after showing what a base
// agent ARN gets), asks the agent one question, and files the answer as a
// ticket. Then it keeps serving until Ctrl-C, saying where.

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>

#include "cli/api_client.h"
#include "cli/demo.h"
#include "cli/platform.h"
#include "sim/world.h"

namespace quarry::cli {
namespace {

using nlohmann::json;

void Step(const std::string& title) { std::cout << "\n== " << title << "\n"; }

// A demo step that does not behave as it must ends the demo: a broken build
// must never show a walkthrough that looks fine.
[[noreturn]] void Fail(const std::string& what, const ApiCallResult& result) {
  std::cerr << "demo failed: " << what << ": HTTP " << result.status << " "
            << (result.transport_error.empty() ? result.raw_body.substr(0, 800) : result.transport_error)
            << "\n";
  throw CLI::RuntimeError(1);
}

json Must(ApiClient& client, const std::string& what, std::string_view method, const std::string& path,
          const json& body = nullptr) {
  ApiCallResult result = client.Call(method, path, body);
  if (!result.ok()) Fail(what, result);
  return result.body;
}

std::string Text(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string AliasArn(std::string_view alias_id) {
  return "arn:aws:bedrock:us-east-1:" + std::string(sim::kDemoAccount) + ":agent-alias/" +
         std::string(sim::kDemoAgentId) + "/" + std::string(alias_id);
}

// Picks the first usable Claude model that needs an inference profile, so
// the demo shows the profile being chosen for the user.
json PickProfileModel(const json& catalogue) {
  for (const json& model : catalogue.value("models", json::array())) {
    if (model.value("usable", false) && model.value("requires_profile", false)) return model;
  }
  for (const json& model : catalogue.value("models", json::array())) {
    if (model.value("usable", false)) return model;
  }
  return nullptr;
}

}  // namespace

void RunPlatformDemo(const PlatformDemoOptions& options) {
  std::cout << "Quarry demo: the seed's set-up, steps 2 to 5, through the REST API, on the embedded "
               "defaults\n(SQLite and the built-in Bedrock emulator; no AWS account is used).\n";

  // The stop signals are waited for at the end; block them before any thread starts.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  ServeConfig config;
  config.port = options.port;
  config.data_dir = options.data_dir;
  config.embedded_sim = true;
  config.log_level = "warn";
  auto platform = Platform::Start(config);
  if (!platform.ok() && options.port != 0) {
    std::cout << "   (port " << options.port << " is taken: " << platform.status().message()
              << "; using a free port)\n";
    config.port = 0;
    platform = Platform::Start(config);
  }
  if (!platform.ok()) {
    std::cerr << "demo failed: " << platform.status().message() << "\n";
    throw CLI::RuntimeError(1);
  }
  Platform& server = *platform.value();
  const std::string token = server.first_admin_token().value_or("");
  if (token.empty()) {
    std::cerr << "demo failed: the data directory " << options.data_dir
              << " already holds a Quarry database; remove it or pass another --data-dir\n";
    throw CLI::RuntimeError(1);
  }
  std::cout << "   server " << server.base_url() << ", emulator " << server.emulator_url()
            << ", data in " << options.data_dir << "\n";
  ApiClient client({server.base_url(), token, false});

  Step("1. Who am I? The first start made an administrator of a verified domain");
  const json me = Must(client, "reading /me", "GET", "/api/v1/me");
  std::cout << "   " << Text(me["user"], "email") << ", role " << Text(me["user"], "role")
            << ", may edit AI Providers: " << (me["permissions"].value("can_edit_providers", false) ? "yes" : "no")
            << "\n";

  Step("2. Add an Amazon Bedrock provider (organization level) and test the connection");
  const json provider = Must(client, "adding the provider", "POST", "/api/v1/providers",
                             {{"name", "Bedrock (demo account)"},
                              {"region", "us-east-1"},
                              {"credentials",
                               {{"kind", "access_key"},
                                {"access_key_id", std::string(sim::kDemoAccessKeyId)},
                                {"secret_access_key", std::string(sim::kDemoSecretAccessKey)}}}});
  const std::string provider_id = Text(provider, "id");
  std::cout << "   provider " << provider_id << ": region us-east-1, key "
            << Text(provider["credentials"], "access_key_hint")
            << " (the secret is stored encrypted and never shown again)\n";
  const json catalogue = Must(client, "reading the model catalogue", "GET",
                              "/api/v1/providers/" + provider_id + "/models");
  const json model = PickProfileModel(catalogue);
  if (model.is_null()) Fail("the catalogue has no usable Claude model", {});
  const json test = Must(client, "testing the connection", "POST", "/api/v1/providers/" + provider_id + "/test",
                         {{"invoke_model", Text(model, "invocation_target")}});
  for (const json& check : test.value("checks", json::array())) {
    std::cout << "   check " << Text(check, "name") << ": " << Text(check, "status") << " ("
              << check.value("latency_ms", 0) << " ms)\n";
  }
  const std::string status = Text(test["provider"], "status");
  std::cout << "   status: " << status << "; identity " << Text(test, "identity_arn") << "\n";
  if (status != "working") Fail("the provider did not test as working", {.status = 200, .raw_body = test.dump()});

  Step("3. Create an AI Service on a Bedrock-hosted Claude model");
  const json service = Must(client, "creating the service", "POST", "/api/v1/services",
                            {{"name", "Ticket triage"},
                             {"type", "llm"},
                             {"provider_id", provider_id},
                             {"model", Text(model, "model_id")},
                             {"temperature", 0.2},
                             {"max_tokens", 512}});
  std::cout << "   service " << Text(service, "id") << " on " << Text(service["model"], "name") << "\n";
  for (const json& notice : service.value("notices", json::array())) {
    std::cout << "   note: " << notice.get<std::string>() << "\n";
  }

  Step("4. Create the IT-support app and its ticket object");
  const json app = Must(client, "creating the app", "POST", "/api/v1/apps",
                        {{"name", "IT Support"}, {"namespace", "it_support"}, {"handle", "TCK"},
                         {"description", "Employee IT tickets"}});
  const std::string app_id = Text(app, "id");
  const json object = Must(client, "creating the ticket object", "POST", "/api/v1/apps/" + app_id + "/objects",
                           {{"name", "Ticket"}, {"api_name", "ticket"}});
  const std::string object_id = Text(object, "id");
  const std::string fields_path = "/api/v1/apps/" + app_id + "/objects/" + object_id + "/fields";
  Must(client, "adding a field", "POST", fields_path,
       {{"api_name", "subject"}, {"label", "Subject"}, {"type", "text"}, {"required", true}});
  Must(client, "adding a field", "POST", fields_path,
       {{"api_name", "description"}, {"label", "Description"}, {"type", "long_text"}});
  Must(client, "adding a field", "POST", fields_path,
       {{"api_name", "priority"}, {"label", "Priority"}, {"type", "dropdown"},
        {"options", {"Low", "Medium", "High"}}, {"default", "Medium"}});
  Must(client, "adding a field", "POST", fields_path,
       {{"api_name", "suggested_resolution"}, {"label", "Suggested resolution"}, {"type", "long_text"}});
  std::cout << "   app " << app_id << " (records TCK-1, TCK-2, ...), object ticket with 4 fields\n";

  Step("5. Connect the Bedrock Agent to the app by its Agent Alias ARN");
  const std::string base_arn = "arn:aws:bedrock:us-east-1:" + std::string(sim::kDemoAccount) + ":agent/" +
                               std::string(sim::kDemoAgentId);
  ApiCallResult refused = client.Call("POST", "/api/v1/apps/" + app_id + "/agents",
                                      {{"provider_id", provider_id}, {"agent_alias_arn", base_arn},
                                       {"name", "Helpdesk agent"}});
  if (refused.status != 400) Fail("a base agent ARN was not refused", refused);
  std::cout << "   the base agent ARN " << base_arn << " is refused (HTTP 400, "
            << Text(refused.body["error"], "code") << "):\n     " << Text(refused.body["error"], "hint") << "\n";
  const json agent = Must(client, "connecting the agent", "POST", "/api/v1/apps/" + app_id + "/agents",
                          {{"provider_id", provider_id},
                           {"agent_alias_arn", AliasArn(sim::kDemoAliasId)},
                           {"name", "Helpdesk agent"},
                           {"description", "Answers employee IT questions from the knowledge base"}});
  const std::string agent_id = Text(agent, "id");
  std::cout << "   connected " << agent_id << ": " << AliasArn(sim::kDemoAliasId) << "\n";

  Step("6. Ask the agent a question (chat, streamed as server-sent events)");
  const json conversation = Must(client, "starting a conversation", "POST",
                                 "/api/v1/agents/" + agent_id + "/conversations", json::object());
  const std::string question = "How do I connect to the VPN from home?";
  std::cout << "   you:   " << question << "\n   agent: " << std::flush;
  std::string answer;
  json done;
  const auto started = std::chrono::steady_clock::now();
  ApiCallResult streamed = client.Stream(
      "POST", "/api/v1/conversations/" + Text(conversation, "id") + "/messages", {{"text", question}},
      [&](const std::string& event, const json& data) {
        if (event == "chunk") {
          std::cout << Text(data, "text") << std::flush;
          answer += Text(data, "text");
        } else if (event == "done") {
          done = data;
        } else if (event == "error") {
          Fail("the agent call failed", {.status = 200, .raw_body = data.dump()});
        }
      });
  if (!streamed.ok() || answer.empty()) Fail("chatting with the agent", streamed);
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  std::cout << "\n   (" << done.value("latency_ms", elapsed.count()) << " ms, Bedrock session "
            << Text(conversation, "session_id") << ")\n";

  Step("7. File it as a ticket");
  const json record = Must(client, "creating the ticket", "POST",
                           "/api/v1/apps/" + app_id + "/objects/" + object_id + "/records",
                           {{"values",
                             {{"subject", "VPN disconnects every few minutes"},
                              {"description", question},
                              {"suggested_resolution", answer}}}});
  std::cout << "   " << Text(record, "handle") << " created; priority "
            << record["values"].value("priority", std::string("?")) << " (the field's default)\n";

  std::cout << "\nQuarry is serving at " << server.base_url() << " (data in " << options.data_dir << ").\n"
            << "Try it from another terminal:\n"
            << "   quarry login --server " << server.base_url() << " --token " << token << "\n"
            << "   quarry providers list\n"
            << "   quarry chat " << agent_id << "\n";
  if (options.exit_when_done) {
    server.Stop();
    return;
  }
  std::cout << "Press Ctrl-C to stop.\n" << std::flush;
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  server.Stop();
  std::cout << "\nstopped.\n";
}

}  // namespace quarry::cli
