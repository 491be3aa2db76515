// Durable execution, tested as an operator would break it: `quarry serve`
// processes running the triage automation against a separate `quarry sim`
// process (so killing a server does not take the emulator with it).
//
// - Crash: a batch of tickets, kill -9 of the server while runs are in
//   flight, restart on the same data directory; every run finishes exactly
//   once (each ticket's version shows exactly the two engine writes; one run
//   per ticket), and only runs unfinished at the kill repeated agent calls.
// - Multi-node: three servers on one PostgreSQL database, one killed
//   mid-batch; the other two finish every run exactly once.
//
// Bounded: 120 tickets (crash) / 90 tickets (multi-node), 5 s leases, every
// wait has a deadline.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/crypto.h"
#include "common/encoding.h"
#include "net/http_client.h"
#include "tests/support/postgres_cluster.h"
#include "tests/support/scratch_dir.h"
#include "tests/support/sim_process.h"

namespace quarry::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kDemoKey[] = "AKIAQUARRYDEMO000001";
constexpr char kDemoSecret[] = "quarryDemoSecretKey0000000000000000000001";
constexpr char kAliasArn[] = "arn:aws:bedrock:us-east-1:111122223333:agent-alias/HELPDESK01/PRODALIAS1";

// A string member, or "" when absent or null.
std::string Str(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

struct Reply {
  int status = 0;
  json body;
};

class Http {
 public:
  Http() : client_(net::HttpClient::Create().value()) {}
  Reply Call(const std::string& method, const std::string& url, const std::string& token, const json& body = nullptr) {
    net::HttpClientRequest request;
    request.method = method;
    request.url = url;
    if (!token.empty()) request.headers.emplace_back("Authorization", "Bearer " + token);
    if (!body.is_null()) {
      request.headers.emplace_back("Content-Type", "application/json");
      request.body = body.dump();
    }
    request.request_timeout = seconds(30);
    net::HttpClientResponse response = client_->Send(std::move(request));
    Reply reply;
    reply.status = response.status;
    reply.body = json::parse(response.body, nullptr, false);
    return reply;
  }

 private:
  std::unique_ptr<net::HttpClient> client_;
};

// A `quarry serve` child with the engine's lease shortened for the test.
struct Server {
  std::unique_ptr<SimProcess> process = std::make_unique<SimProcess>();
  std::string url;
  std::string token;  // the first start's admin token ("" on later starts)

  // `first`: a first start on an empty database, which also prints the admin token.
  bool Start(const std::string& data_dir, const std::string& config_file, const std::vector<std::string>& env,
             bool first = false) {
    std::vector<std::string> args = {"/usr/bin/env"};
    args.insert(args.end(), env.begin(), env.end());
    args.insert(args.end(), {QUARRY_BINARY, "serve", "--port", "0", "--data-dir", data_dir, "--config", config_file,
                             "--exit-on-stdin-eof"});
    process = std::make_unique<SimProcess>();
    if (!process->StartCommand(args, first ? 2 : 1)) return false;
    url = process->var("URL");
    for (const std::string& line : process->lines()) {
      if (line.rfind("admin token: ", 0) == 0) token = line.substr(13, line.find(' ', 13) - 13);
    }
    return !url.empty() && (!first || !token.empty());
  }
  void Kill() {
    if (process->pid() > 0) {
      kill(process->pid(), SIGKILL);
      waitpid(process->pid(), nullptr, 0);
    }
    process.reset();
  }
};

std::string WriteConfig(const ScratchDir& dir, const std::string& name, const std::string& extra) {
  const std::string path = dir.Path(name);
  std::ofstream(path) << "[engine]\nlease_seconds = 5\n" << extra << "[log]\nlevel = \"warn\"\n";
  return path;
}

// The automation: ticket created -> agent triage (structured, mapped onto the
// ticket) -> if high priority: route "escalated", otherwise "queued".
json TriageDefinition() {
  return json::parse(R"({
    "name": "Durable triage", "object": "ticket",
    "trigger": {"type": "record_created"},
    "steps": [
      {"id": "triage", "type": "run_agent_task", "agent": "$agent",
       "task": "Triage this IT ticket: {record.title}. {record.description}",
       "output": {"type": "structured", "fields": [
         {"name": "category", "type": "enum", "values": ["Hardware", "Software", "Network", "Access", "Other"]},
         {"name": "priority", "type": "enum", "values": ["Critical", "High", "Medium", "Low"]}]},
       "map": {"category": "category", "priority": "priority"},
       "options": {"cache": {"enabled": false}}},
      {"id": "route", "type": "if",
       "branches": [{"when": {"left": "{steps.triage.priority}", "op": "in", "right": ["Critical", "High"]},
                     "steps": [{"id": "escalate", "type": "update_record", "values": {"route": "escalated"}}]}],
       "otherwise": [{"id": "queue", "type": "update_record", "values": {"route": "queued"}}]}
    ]})");
}

// Creates provider, app, ticket object, agent connection and the published
// automation; returns {app_id, automation_id}.
std::pair<std::string, std::string> SetUpTriage(Http& http, const std::string& base, const std::string& token) {
  auto must = [&](const std::string& method, const std::string& path, const json& body) {
    Reply reply = http.Call(method, base + path, token, body);
    EXPECT_GE(reply.status, 200) << path;
    EXPECT_LT(reply.status, 300) << path << ": " << reply.body.dump();
    return reply.body;
  };
  const json provider = must("POST", "/api/v1/providers",
                             {{"name", "Bedrock"},
                              {"region", "us-east-1"},
                              {"credentials",
                               {{"kind", "access_key"}, {"access_key_id", kDemoKey}, {"secret_access_key", kDemoSecret}}}});
  must("POST", "/api/v1/providers/" + Str(provider, "id") + "/test", json::object());
  const json app = must("POST", "/api/v1/apps", {{"name", "IT"}, {"namespace", "it"}, {"handle", "TCK"}});
  const std::string app_id = Str(app, "id");
  const json object = must("POST", "/api/v1/apps/" + app_id + "/objects", {{"name", "Ticket"}, {"api_name", "ticket"}});
  const std::string fields = "/api/v1/apps/" + app_id + "/objects/" + Str(object, "id") + "/fields";
  must("POST", fields, {{"api_name", "title"}, {"label", "Title"}, {"type", "text"}});
  must("POST", fields, {{"api_name", "description"}, {"label", "Description"}, {"type", "long_text"}});
  must("POST", fields, {{"api_name", "category"}, {"label", "Category"}, {"type", "text"}});
  must("POST", fields, {{"api_name", "priority"}, {"label", "Priority"}, {"type", "text"}});
  must("POST", fields, {{"api_name", "route"}, {"label", "Route"}, {"type", "text"}});
  const json agent = must("POST", "/api/v1/apps/" + app_id + "/agents",
                          {{"provider_id", Str(provider, "id")}, {"agent_alias_arn", kAliasArn}, {"name", "Helpdesk"}});
  json definition = TriageDefinition();
  definition["steps"][0]["agent"] = Str(agent, "id");
  const json automation = must("POST", "/api/v1/apps/" + app_id + "/automations", definition);
  must("POST", "/api/v1/automations/" + Str(automation, "id") + "/publish", json::object());
  return {app_id, Str(automation, "id")};
}

const char* kTickets[] = {
    "VPN down for the whole sales floor, nobody can work",
    "Laptop battery swells and the case cracked",
    "How do I change my email signature?",
    "Cannot log in after password reset, account locked",
    "Printer on floor 3 jams on every page",
    "Outlook crashes when opening attachments",
};

void CreateTickets(Http& http, const std::string& base, const std::string& token, const std::string& app_id, int from,
                   int count) {
  for (int i = from; i < from + count; ++i) {
    const std::string text = kTickets[i % (sizeof(kTickets) / sizeof(kTickets[0]))];
    Reply reply = http.Call("POST", base + "/api/v1/apps/" + app_id + "/objects/ticket/records", token,
                            {{"values", {{"title", "Ticket " + std::to_string(i)}, {"description", text}}}});
    ASSERT_EQ(reply.status, 201) << reply.body.dump();
  }
}

json Stats(Http& http, const std::string& base, const std::string& token, const std::string& automation_id) {
  return http.Call("GET", base + "/api/v1/automations/" + automation_id + "/stats?window=1h", token).body;
}

int64_t Settled(const json& stats) {
  return stats.value("succeeded", int64_t{0}) + stats.value("failed", int64_t{0});
}

// Every ticket: exactly one succeeded run and version 3 (created, the agent
// step's mapped update, the route update): an update applied twice would
// show as version 4, a lost run as a missing route. Sets `*reclaimed` to the
// number of runs claimed more than once (taken over after a lost lease).
void ExpectExactlyOnce(Http& http, const std::string& base, const std::string& token, const std::string& app_id,
                       const std::string& automation_id, int expected, int* reclaimed) {
  *reclaimed = 0;
  std::map<std::string, int> runs_per_record;
  std::string cursor;
  for (int page = 0; page < 20; ++page) {
    Reply runs = http.Call("GET", base + "/api/v1/automations/" + automation_id + "/runs?limit=200" +
                                      (cursor.empty() ? "" : "&cursor=" + cursor),
                           token);
    ASSERT_EQ(runs.status, 200) << runs.body.dump();
    for (const json& run : runs.body.value("items", json::array())) {
      EXPECT_EQ(Str(run, "status"), "succeeded") << run.dump();
      ++runs_per_record[Str(run, "record_id")];
      if (run.value("claims", 0) > 1) ++*reclaimed;
    }
    cursor = Str(runs.body, "next_cursor");
    if (cursor.empty()) break;
  }
  EXPECT_EQ(static_cast<int>(runs_per_record.size()), expected);
  for (const auto& [record, count] : runs_per_record) EXPECT_EQ(count, 1) << "record " << record;

  int checked = 0;
  cursor.clear();
  for (int page = 0; page < 20; ++page) {
    Reply records = http.Call("GET", base + "/api/v1/apps/" + app_id + "/objects/ticket/records?limit=200" +
                                          (cursor.empty() ? "" : "&cursor=" + cursor),
                              token);
    ASSERT_EQ(records.status, 200) << records.body.dump();
    for (const json& record : records.body.value("items", json::array())) {
      ++checked;
      EXPECT_EQ(record.value("version", 0), 3) << record.dump();
      const std::string route = Str(record["values"], "route");
      EXPECT_TRUE(route == "escalated" || route == "queued") << record.dump();
    }
    cursor = Str(records.body, "next_cursor");
    if (cursor.empty()) break;
  }
  EXPECT_EQ(checked, expected);
}

int64_t EmulatorCalls(Http& http, const std::string& sim_url, const std::string& operation) {
  Reply counters = http.Call("GET", sim_url + "/_quarry/counters", "");
  // Per operation: a count per outcome ("ok", fault kinds) and their "total".
  const json outcomes = counters.body["operations"].value(operation, json::object());
  return outcomes.value("total", int64_t{0});
}

void AddLatency(Http& http, const std::string& sim_url, int latency_ms) {
  Reply added = http.Call("POST", sim_url + "/_quarry/faults", "",
                          {{"kind", "latency"}, {"operation", "InvokeAgent"}, {"latency_ms", latency_ms}});
  ASSERT_LT(added.status, 300) << added.body.dump();
}

// Waits until `settled` runs finished, or the deadline; returns the last stats.
json WaitSettled(Http& http, const std::string& base, const std::string& token, const std::string& automation_id,
                 int64_t settled, seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  json stats;
  while (std::chrono::steady_clock::now() < deadline) {
    stats = Stats(http, base, token, automation_id);
    if (Settled(stats) >= settled) break;
    std::this_thread::sleep_for(milliseconds(200));
  }
  return stats;
}

TEST(EngineDurabilityTest, KillNineMidBatchThenRestartFinishesEveryRunOnce) {
  SimProcess sim;
  ASSERT_TRUE(sim.Start(QUARRY_BINARY)) << "quarry sim did not start";
  const std::string sim_url = sim.var("URL");
  ScratchDir dir;
  const std::string config = WriteConfig(dir, "serve.toml", "");
  const std::vector<std::string> env = {"QUARRY_BEDROCK_ENDPOINT_URL=" + sim_url};
  Http http;

  Server server;
  ASSERT_TRUE(server.Start(dir.Path("data"), config, env, /*first=*/true)) << "no URL and admin token";
  const std::string token = server.token;
  auto [app_id, automation_id] = SetUpTriage(http, server.url, token);
  ASSERT_FALSE(::testing::Test::HasFailure()) << "setting up the automation failed";

  // Runs take ~60 ms at the emulator, so many are in flight at the kill.
  AddLatency(http, sim_url, 60);
  constexpr int kTickets = 120;
  CreateTickets(http, server.url, token, app_id, 0, kTickets);
  json before_kill = WaitSettled(http, server.url, token, automation_id, kTickets / 4, seconds(60));
  server.Kill();
  const int64_t unfinished_at_kill = kTickets - Settled(before_kill);
  ASSERT_GT(unfinished_at_kill, 0) << "the batch finished before the kill; nothing was tested";

  ASSERT_TRUE(server.Start(dir.Path("data"), config, env)) << "the server did not restart on its data";
  json after = WaitSettled(http, server.url, token, automation_id, kTickets, seconds(90));
  ASSERT_EQ(Settled(after), kTickets) << after.dump();
  int reclaimed = 0;
  ExpectExactlyOnce(http, server.url, token, app_id, automation_id, kTickets, &reclaimed);
  EXPECT_GT(reclaimed, 0) << "no run was taken over after the restart";

  const int64_t calls = EmulatorCalls(http, sim_url, "InvokeAgent");
  EXPECT_GE(calls, kTickets);
  // One agent call per run (the emulator answers structured tasks in the
  // declared shape, so no repair turn); only runs unfinished at the kill may
  // have repeated theirs.
  EXPECT_LE(calls, kTickets + unfinished_at_kill) << "more agent calls than the runs can explain";
  EXPECT_EQ(server.process->Stop(), 0);
  EXPECT_EQ(sim.Stop(), 0);
}

TEST(EngineDurabilityTest, ThreeNodesOnPostgresOneKilledMidBatch) {
  PostgresDatabase database = SharedPostgresDatabase();
  if (database.url.empty()) GTEST_SKIP() << database.skip_reason;
  SimProcess sim;
  ASSERT_TRUE(sim.Start(QUARRY_BINARY)) << "quarry sim did not start";
  const std::string sim_url = sim.var("URL");
  ScratchDir dir;
  const std::string config = WriteConfig(dir, "serve.toml", "[database]\nurl = \"" + database.url + "\"\n");
  const std::string master_key = Base64Encode(SecureRandomBytes(32));
  const std::vector<std::string> env = {"QUARRY_BEDROCK_ENDPOINT_URL=" + sim_url, "QUARRY_MASTER_KEY=" + master_key};
  Http http;

  std::vector<Server> nodes(3);
  ASSERT_TRUE(nodes[0].Start(dir.Path("node0"), config, env, /*first=*/true)) << "no URL and admin token";
  const std::string token = nodes[0].token;
  ASSERT_TRUE(nodes[1].Start(dir.Path("node1"), config, env));
  ASSERT_TRUE(nodes[2].Start(dir.Path("node2"), config, env));
  auto [app_id, automation_id] = SetUpTriage(http, nodes[0].url, token);
  ASSERT_FALSE(::testing::Test::HasFailure()) << "setting up the automation failed";

  // Agent answers take 400 ms (a step makes one or two calls), so every node
  // holds leases on runs in flight when node 1 is killed.
  AddLatency(http, sim_url, 400);
  constexpr int kTickets = 90;
  // Records arrive through all three nodes.
  for (int n = 0; n < 3; ++n) CreateTickets(http, nodes[n].url, token, app_id, n * 30, 30);
  json before_kill = WaitSettled(http, nodes[0].url, token, automation_id, 5, seconds(60));
  nodes[1].Kill();
  ASSERT_LT(Settled(before_kill), kTickets) << "the batch finished before the kill; nothing was tested";

  // Node 1's runs wait for their 5 s leases to expire, then node 0 or 2 takes them.
  json after = WaitSettled(http, nodes[0].url, token, automation_id, kTickets, seconds(90));
  ASSERT_EQ(Settled(after), kTickets) << after.dump();
  int reclaimed = 0;
  ExpectExactlyOnce(http, nodes[2].url, token, app_id, automation_id, kTickets, &reclaimed);
  EXPECT_GT(reclaimed, 0) << "node 1 held no lease at the kill; the takeover was not tested";
  EXPECT_EQ(nodes[0].process->Stop(), 0);
  EXPECT_EQ(nodes[2].process->Stop(), 0);
  EXPECT_EQ(sim.Stop(), 0);
}

}  // namespace
}  // namespace quarry::testing
