// `quarry demo`, part three: the platform, as the seed walks it. Starts the
// server with the built-in emulator on SQLite, then, through the REST API
// (the same calls the web UI and `quarry` CLI make): adds the Amazon Bedrock
// provider and tests the connection, creates a Claude service on a model that
// needs an inference profile, creates the IT-support app with its ticket
// object, connects the demo agent by its alias ARN (after showing what a base
// agent ARN gets), asks the agent one question; then creates the IT ticket
// triage automation from its template, files about fifty tickets, shows the
// runs' progress, a table of what the agent decided per ticket and the run
// history numbers. Then it keeps serving until Ctrl-C, saying where.

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <thread>
#include <vector>
#include <string>

#include "cli/api_client.h"
#include "cli/demo.h"
#include "cli/demo_tickets.h"
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

  Step("4. Create the IT-support app");
  const json app = Must(client, "creating the app", "POST", "/api/v1/apps",
                        {{"name", "IT Support"}, {"namespace", "it_support"}, {"handle", "TCK"},
                         {"description", "Employee IT tickets"}});
  const std::string app_id = Text(app, "id");
  std::cout << "   app " << app_id << " (records will be TCK-1, TCK-2, ...)\n";

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
                           {"description", "Triages and answers employee IT tickets"}});
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

  Step("7. Create the IT ticket triage automation from its template, and publish it");
  const json automation = Must(client, "creating the automation from the template", "POST",
                               "/api/v1/apps/" + app_id + "/automations/from-template",
                               {{"template", "it-ticket-triage"}, {"agent", agent_id}, {"create_object", true}});
  const std::string automation_id = Text(automation, "id");
  const json published = Must(client, "publishing the automation", "POST",
                              "/api/v1/automations/" + automation_id + "/publish", json::object());
  std::cout << "   " << automation_id << " \"" << Text(automation, "name") << "\", version "
            << published.value("version", 0) << ": ticket created -> agent triage (category, priority, "
            << "sentiment, resolution) -> route\n";

  Step("8. File " + std::to_string(DemoTickets().size()) + " tickets; each one triggers a run");
  const std::string records_path = "/api/v1/apps/" + app_id + "/objects/ticket/records";
  for (const DemoTicket& ticket : DemoTickets()) {
    Must(client, "creating a ticket", "POST", records_path,
         {{"values", {{"title", ticket.title}, {"description", ticket.description}, {"requester", ticket.requester}}}});
  }
  const size_t total = DemoTickets().size();
  const std::string stats_path = "/api/v1/automations/" + automation_id + "/stats?window=1h";
  json stats;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  for (;;) {
    stats = Must(client, "reading the automation's statistics", "GET", stats_path);
    const int64_t settled = stats.value("succeeded", int64_t{0}) + stats.value("failed", int64_t{0}) +
                            stats.value("waiting_review", int64_t{0});
    std::cout << "\r   runs: " << stats.value("invocations", int64_t{0}) << " started, "
              << stats.value("succeeded", int64_t{0}) << " succeeded, " << stats.value("failed", int64_t{0})
              << " failed, " << stats.value("waiting_review", int64_t{0}) << " waiting for review   "
              << std::flush;
    if (settled >= static_cast<int64_t>(total)) break;
    if (std::chrono::steady_clock::now() > deadline) {
      std::cout << "\n";
      Fail("the runs did not settle within two minutes", {.status = 200, .raw_body = stats.dump()});
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  std::cout << "\n";

  // One row per ticket: the triage the agent gave and how the run went.
  std::map<std::string, json> runs_by_record;
  const json runs = Must(client, "listing the runs", "GET",
                         "/api/v1/automations/" + automation_id + "/runs?limit=200");
  for (const json& run : runs.value("items", json::array())) {
    runs_by_record[Text(run, "record_id")] = run;
  }
  const json tickets = Must(client, "listing the tickets", "GET", records_path + "?limit=200&sort=created_at");
  std::vector<std::vector<std::string>> rows;
  for (const json& ticket : tickets.value("items", json::array())) {
    const json& values = ticket["values"];
    auto value = [&](const char* key) {
      auto it = values.find(key);
      if (it == values.end() || it->is_null()) return std::string("-");
      return it->is_string() ? it->get<std::string>() : it->dump();
    };
    std::string latency = "-", cache = "-", tokens = "-", route = value("route");
    auto run_it = runs_by_record.find(Text(ticket, "id"));
    if (run_it != runs_by_record.end()) {
      const json run = Must(client, "reading a run", "GET", "/api/v1/runs/" + Text(run_it->second, "id"));
      for (const json& step : run.value("steps", json::array())) {
        if (Text(step, "type") != "run_agent_task") continue;
        latency = std::to_string(step.value("latency_ms", int64_t{0})) + " ms";
        cache = step.value("cache_hit", false) ? "hit" : "miss";
        tokens = std::to_string(step.value("input_tokens", int64_t{0}) + step.value("output_tokens", int64_t{0}));
      }
      if (Text(run, "status") == "waiting_review") route = "human review";
    }
    std::string title = value("title");
    if (title.size() > 38) title = title.substr(0, 35) + "...";
    rows.push_back({Text(ticket, "handle"), title, value("category"), value("priority"), value("sentiment"), route,
                    latency, cache, tokens});
  }
  std::cout << RenderTable({"ticket", "title", "category", "priority", "sentiment", "route", "latency", "cache",
                            "tokens"},
                           rows);

  Step("9. Run history (the last hour)");
  stats = Must(client, "reading the automation's statistics", "GET", stats_path);
  std::cout << "   invocations " << stats.value("invocations", int64_t{0}) << ", success rate "
            << static_cast<int>(stats.value("success_rate", 0.0) * 100 + 0.5) << "%, latency p50 "
            << stats.value("latency_p50_ms", int64_t{0}) << " ms / p95 " << stats.value("latency_p95_ms", int64_t{0})
            << " ms, tokens " << stats.value("input_tokens", int64_t{0}) << " in / "
            << stats.value("output_tokens", int64_t{0}) << " out, cost $" << stats.value("cost_usd", 0.0)
            << ", cache hits " << stats.value("cache_hits", int64_t{0}) << "\n";
  std::cout << "   reviews waiting: quarry reviews list;  a run in full: quarry runs show <run id>\n";

  std::cout << "\nQuarry is serving at " << server.base_url() << " (data in " << options.data_dir << ").\n"
            << "Try it from another terminal:\n"
            << "   quarry login --server " << server.base_url() << " --token " << token << "\n"
            << "   quarry providers list\n"
            << "   quarry chat " << agent_id << "\n"
            << "   quarry runs watch --automation " << automation_id << "\n";
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
