// The `quarry` subcommands of the automation engine, each mirroring a part of
// the REST API (src/api/automation_routes.cc) and printing tables for people,
// or the API's JSON with --json. Failures print the server's message and
// hint and exit 1.
//
//   quarry automations list|show|create|edit|validate|publish|pause|resume|rm|test|invoke|stats|
//                      from-template
//   quarry runs list|show|watch|cancel
//   quarry reviews list|show|approve|edit|reject
//   quarry alerts list
//   quarry templates list|show

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli/api_client.h"
#include "cli/client_command_support.h"
#include "cli/commands.h"
#include "common/encoding.h"

namespace quarry::cli {
namespace {

using nlohmann::json;

void PrintJson(const json& body) { std::cout << body.dump(2) << "\n"; }

// A list response ({"items":[...]}) as a table of the given columns.
void PrintList(const ApiClient& client, const ApiCallResult& result,
               const std::vector<std::string>& columns,
               const std::vector<std::string>& header = {}) {
  if (client.settings().json_output) return PrintJson(result.body);
  std::vector<std::vector<std::string>> rows;
  const json items =
      result.body.is_object() ? result.body.value("items", json::array()) : json::array();
  for (const json& item : items) {
    std::vector<std::string> row;
    for (const std::string& column : columns) row.push_back(Cell(item, column));
    rows.push_back(std::move(row));
  }
  std::cout << RenderTable(header.empty() ? columns : header, rows);
  if (!Cell(result.body, "next_cursor").empty())
    std::cout << "(more: --cursor " << Cell(result.body, "next_cursor") << ")\n";
}

// An entity as a two-column table of the given fields (those with a value).
void PrintEntity(const json& body, const std::vector<std::string>& fields) {
  std::vector<std::vector<std::string>> rows;
  for (const std::string& field : fields) {
    const std::string value = Cell(body, field);
    if (!value.empty()) rows.push_back({field, value});
  }
  std::cout << RenderTable({"field", "value"}, rows);
}

json ReadJsonFile(const std::string& path) {
  std::ifstream in(path == "-" ? "/dev/stdin" : path);
  if (!in) {
    std::cerr << "error: cannot read " << path
              << "; pass the path of a JSON file with the automation's definition\n";
    throw CLI::RuntimeError(2);
  }
  std::stringstream text;
  text << in.rdbuf();
  json parsed = json::parse(text.str(), nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    std::cerr << "error: " << path
              << " is not a JSON object; an automation definition is {\"name\", \"object\", "
              << "\"trigger\", \"steps\", ...}\n";
    throw CLI::RuntimeError(2);
  }
  return parsed;
}

std::string Money(const json& value) {
  if (!value.is_number() || value.get<double>() == 0) return "";
  char text[32];
  std::snprintf(text, sizeof text, "$%.6f", value.get<double>());
  return text;
}

std::string Tokens(const json& object) {
  const int64_t in = object.value("input_tokens", int64_t{0});
  const int64_t out = object.value("output_tokens", int64_t{0});
  if (in == 0 && out == 0) return "";
  return std::to_string(in) + "/" + std::to_string(out);
}

std::string Millis(const json& object, const std::string& key) {
  const std::string text = Cell(object, key);
  return text.empty() ? "" : text + " ms";
}

std::string ErrorText(const json& error) {
  if (!error.is_object()) return "";
  std::string text = Cell(error, "message");
  if (!Cell(error, "code").empty()) text = Cell(error, "code") + ": " + text;
  return text;
}

// A run: its summary, then its steps as a table; test runs also show what
// they would have applied.
void PrintRun(const json& run) {
  PrintEntity(run, {"id", "automation_id", "automation_version", "mode", "status", "record_id",
                    "created_at", "finished_at", "outputs", "error.message", "error.hint"});
  const json steps = run.value("steps", json::array());
  if (steps.empty()) return;
  std::vector<std::vector<std::string>> rows;
  for (const json& step : steps) {
    rows.push_back({Cell(step, "step_id"), Cell(step, "type"), Cell(step, "status"),
                    Millis(step, "latency_ms"), Tokens(step), Money(step.value("cost_usd", json())),
                    step.value("cache_hit", false) ? "hit" : "",
                    ErrorText(step.value("error", json()))});
  }
  std::cout << "\n"
            << RenderTable(
                   {"step", "type", "status", "latency", "tokens", "cost", "cache", "error"}, rows);
  for (const json& step : steps) {
    const json output = step.value("output", json::object());
    if (output.is_object() && output.contains("would_apply")) {
      std::cout << "\n"
                << Cell(step, "step_id")
                << " would apply (test run, not applied): " << output["would_apply"].dump() << "\n";
    }
  }
  for (const json& step : steps) {
    const json error = step.value("error", json());
    if (!error.is_object() || Cell(error, "hint").empty()) continue;
    std::cout << "\n" << Cell(step, "step_id") << ": " << Cell(error, "hint") << "\n";
  }
}

// Prints a run that a test or invoke call returned (finished or not).
void PrintRunResult(const ApiClient& client, const ApiCallResult& result) {
  if (client.settings().json_output) return PrintJson(result.body);
  PrintRun(result.body);
  if (result.status == 202) {
    std::cout << "\nthe run is still going; follow it with: quarry runs watch "
              << Cell(result.body, "id") << "\n";
  }
}

void PrintAutomation(const ApiClient& client, const json& body) {
  if (client.settings().json_output) return PrintJson(body);
  PrintEntity(body, {"id", "name", "app_id", "object_id", "status", "trigger", "published_version",
                     "version", "created_at", "updated_at"});
}

// A validation failure (details.fields) as a table of every problem; any
// other failure as usual. Exits 1.
[[noreturn]] void FailWithProblems(const ApiClient& client, const ApiCallResult& result,
                                   std::string_view what, std::string_view headline) {
  const json error =
      result.body.is_object() ? result.body.value("error", json::object()) : json::object();
  const json fields =
      error.is_object() ? error.value("details", json::object()).value("fields", json()) : json();
  if (!fields.is_object() || client.settings().json_output) FailWithApiError(result, what);
  std::vector<std::vector<std::string>> rows;
  for (const auto& [where, message] : fields.items()) {
    rows.push_back({where, message.is_string() ? message.get<std::string>() : message.dump()});
  }
  std::cerr << headline << " (" << rows.size() << " problem" << (rows.size() == 1 ? "" : "s")
            << "):\n"
            << RenderTable({"where", "problem"}, rows);
  throw CLI::RuntimeError(1);
}

// Adds a positional id and the shared flags; returns the command.
struct IdFlags {
  CommonFlags common;
  std::string id;
};

CLI::App* IdCommand(CLI::App* parent, const std::string& name, const std::string& description,
                    const std::shared_ptr<IdFlags>& flags, const std::string& what) {
  CLI::App* command = parent->add_subcommand(name, description);
  AddCommonFlags(command, &flags->common);
  static const std::map<std::string, std::string> kDescriptions = {
      {"automation", "Automation id (aut_...)"},
      {"run", "Run id (run_...)"},
      {"review", "Review id (rev_...)"},
      {"template", "Template id (it-ticket-triage)"}};
  auto it = kDescriptions.find(what);
  command->add_option(what, flags->id, it != kDescriptions.end() ? it->second : what)->required();
  return command;
}

std::string AutomationPath(const std::string& id) { return "/api/v1/automations/" + Segment(id); }

// --- automations -------------------------------------------------------------

void RegisterAutomations(CLI::App& app) {
  CLI::App* automations =
      app.add_subcommand("automations", "Automations: define, test, publish and call them");
  automations->require_subcommand(1);

  struct ListFlags {
    CommonFlags common;
    std::string app_id, cursor;
  };
  auto list = std::make_shared<ListFlags>();
  CLI::App* list_cmd = automations->add_subcommand("list", "List automations");
  AddCommonFlags(list_cmd, &list->common);
  list_cmd->add_option("--app", list->app_id, "Only this app (id or namespace)");
  list_cmd->add_option("--cursor", list->cursor, "Next page (from the previous listing)");
  list_cmd->callback([list] {
    ApiClient client = Connect(list->common);
    std::string path = list->app_id.empty()
                           ? "/api/v1/automations?limit=100"
                           : "/api/v1/apps/" + Segment(list->app_id) + "/automations?limit=100";
    if (!list->cursor.empty()) path += "&cursor=" + UriEncode(list->cursor);
    PrintList(client, Must(client.Call("GET", path), "listing automations"),
              {"id", "name", "status", "trigger", "published_version", "updated_at"},
              {"id", "name", "status", "trigger", "published", "updated_at"});
  });

  auto show = std::make_shared<IdFlags>();
  IdCommand(automations, "show", "Show an automation (with --json: its draft too)", show,
            "automation")
      ->callback([show] {
        ApiClient client = Connect(show->common);
        ApiCallResult result =
            Must(client.Call("GET", AutomationPath(show->id)), "reading the automation");
        PrintAutomation(client, result.body);
        if (!client.settings().json_output)
          std::cout << "\ndraft:\n" << result.body.value("draft", json()).dump(2) << "\n";
      });

  struct CreateFlags {
    CommonFlags common;
    std::string app_id, file;
  };
  auto create = std::make_shared<CreateFlags>();
  CLI::App* create_cmd =
      automations->add_subcommand("create", "Create an automation from a JSON definition");
  AddCommonFlags(create_cmd, &create->common);
  create_cmd->add_option("--app", create->app_id, "App id or namespace")->required();
  create_cmd->add_option("--file", create->file, "The definition (JSON; - for stdin)")->required();
  create_cmd->callback([create] {
    const json definition = ReadJsonFile(create->file);
    ApiClient client = Connect(create->common);
    ApiCallResult result = Must(
        client.Call("POST", "/api/v1/apps/" + Segment(create->app_id) + "/automations", definition),
        "creating the automation");
    PrintAutomation(client, result.body);
    if (!client.settings().json_output) {
      std::cout << "saved as a draft; next: quarry automations validate " << Cell(result.body, "id")
                << ", then publish\n";
    }
  });

  struct EditFlags {
    CommonFlags common;
    std::string id, file, name;
  };
  auto edit = std::make_shared<EditFlags>();
  CLI::App* edit_cmd =
      automations->add_subcommand("edit", "Replace an automation's draft (and/or rename it)");
  AddCommonFlags(edit_cmd, &edit->common);
  edit_cmd->add_option("automation", edit->id, "Automation id (aut_...)")->required();
  edit_cmd->add_option("--file", edit->file, "The new draft (JSON; - for stdin)");
  edit_cmd->add_option("--name", edit->name, "A new name");
  edit_cmd->callback([edit] {
    json patch = json::object();
    if (!edit->file.empty()) patch["definition"] = ReadJsonFile(edit->file);
    if (!edit->name.empty()) patch["name"] = edit->name;
    if (patch.empty()) {
      std::cerr << "error: nothing to change; pass --file DEFINITION.json and/or --name NAME\n";
      throw CLI::RuntimeError(2);
    }
    ApiClient client = Connect(edit->common);
    PrintAutomation(client, Must(client.Call("PATCH", AutomationPath(edit->id), patch),
                                 "updating the automation")
                                .body);
  });

  struct ValidateFlags {
    CommonFlags common;
    std::string id, file;
  };
  auto validate = std::make_shared<ValidateFlags>();
  CLI::App* validate_cmd =
      automations->add_subcommand("validate", "Validate the draft (or --file) without saving");
  AddCommonFlags(validate_cmd, &validate->common);
  validate_cmd->add_option("automation", validate->id, "Automation id (aut_...)")->required();
  validate_cmd->add_option("--file", validate->file,
                           "Validate this definition instead of the saved draft");
  validate_cmd->callback([validate] {
    ApiClient client = Connect(validate->common);
    json body = validate->file.empty() ? json::object()
                                       : json{{"definition", ReadJsonFile(validate->file)}};
    ApiCallResult result = client.Call("POST", AutomationPath(validate->id) + "/validate", body);
    if (result.ok()) {
      if (client.settings().json_output) return PrintJson(result.body);
      std::cout << "valid\n";
      return;
    }
    FailWithProblems(client, result, "validating the automation", "not valid");
  });

  auto publish = std::make_shared<IdFlags>();
  IdCommand(automations, "publish", "Validate the draft and publish it as the next version",
            publish, "automation")
      ->callback([publish] {
        ApiClient client = Connect(publish->common);
        ApiCallResult result =
            client.Call("POST", AutomationPath(publish->id) + "/publish", json::object());
        if (!result.ok())
          FailWithProblems(client, result, "publishing the automation",
                           "not published: the draft is not valid");
        if (client.settings().json_output) return PrintJson(result.body);
        std::cout << "published " << Cell(result.body, "id") << " as version "
                  << Cell(result.body, "published_version") << "\n";
      });

  for (const auto& [name, status] : {std::pair{"pause", "paused"}, std::pair{"resume", "active"}}) {
    auto flags = std::make_shared<IdFlags>();
    const std::string target = status;
    IdCommand(automations, name,
              target == "paused" ? "Pause: no new runs start (runs in flight finish)"
                                 : "Resume a paused automation",
              flags, "automation")
        ->callback([flags, target] {
          ApiClient client = Connect(flags->common);
          ApiCallResult result =
              Must(client.Call("PATCH", AutomationPath(flags->id), {{"status", target}}),
                   "changing the automation's status");
          if (client.settings().json_output) return PrintJson(result.body);
          std::cout << Cell(result.body, "id") << " is " << Cell(result.body, "status") << "\n";
        });
  }

  auto rm = std::make_shared<IdFlags>();
  IdCommand(automations, "rm", "Delete an automation", rm, "automation")->callback([rm] {
    ApiClient client = Connect(rm->common);
    Must(client.Call("DELETE", AutomationPath(rm->id)), "deleting the automation");
    std::cout << "deleted " << rm->id << "\n";
  });

  struct TestFlags {
    CommonFlags common;
    std::string id, record;
    bool published = false;
    double wait = 60;
  };
  auto test = std::make_shared<TestFlags>();
  CLI::App* test_cmd = automations->add_subcommand(
      "test",
      "Test run on a sample record: the agent is really called, changes are shown, not applied");
  AddCommonFlags(test_cmd, &test->common);
  test_cmd->add_option("automation", test->id, "Automation id (aut_...)")->required();
  test_cmd->add_option("--record", test->record, "The sample record: handle (TCK-1) or id");
  test_cmd->add_flag("--published", test->published,
                     "Test the published version instead of the draft");
  test_cmd->add_option("--wait", test->wait, "Seconds to wait for the run (0-120)")
      ->capture_default_str();
  test_cmd->callback([test] {
    ApiClient client = Connect(test->common);
    json body = {{"use_draft", !test->published}, {"wait_seconds", test->wait}};
    if (!test->record.empty()) body["record"] = test->record;
    PrintRunResult(client, Must(client.Call("POST", AutomationPath(test->id) + "/test", body),
                                "running the test"));
  });

  struct InvokeFlags {
    CommonFlags common;
    std::string id, record, idempotency_key;
    std::vector<std::string> inputs;
    double wait = 30;
  };
  auto invoke = std::make_shared<InvokeFlags>();
  CLI::App* invoke_cmd =
      automations->add_subcommand("invoke", "Call an on-demand automation with inputs");
  AddCommonFlags(invoke_cmd, &invoke->common);
  invoke_cmd->add_option("automation", invoke->id, "Automation id (aut_...)")->required();
  invoke_cmd->add_option("--input", invoke->inputs, "NAME=VALUE (repeat)");
  invoke_cmd->add_option("--record", invoke->record, "A record for the run: handle or id");
  invoke_cmd->add_option("--wait", invoke->wait, "Seconds to wait for the outputs (0-120)")
      ->capture_default_str();
  invoke_cmd->add_option("--idempotency-key", invoke->idempotency_key,
                         "Retry-safe: the same key starts one run (and replays its answer)");
  invoke_cmd->callback([invoke] {
    ClientSettings settings = Settings(invoke->common);
    if (!invoke->idempotency_key.empty())
      settings.extra_headers.emplace_back("Idempotency-Key", invoke->idempotency_key);
    ApiClient client(settings);
    json body = {{"inputs", ParseAssignments(invoke->inputs, "--input")},
                 {"wait_seconds", invoke->wait}};
    if (!invoke->record.empty()) body["record"] = invoke->record;
    ApiCallResult result = Must(client.Call("POST", AutomationPath(invoke->id) + "/invoke", body),
                                "invoking the automation");
    if (client.settings().json_output) return PrintJson(result.body);
    std::cout << "run " << Cell(result.body, "id") << ": " << Cell(result.body, "status") << "\n";
    std::vector<std::vector<std::string>> rows;
    const json outputs = result.body.value("outputs", json::object());
    for (const auto& [name, value] : outputs.items()) {
      rows.push_back({name, value.is_string() ? value.get<std::string>() : value.dump()});
    }
    if (!rows.empty()) std::cout << RenderTable({"output", "value"}, rows);
    const json error = result.body.value("error", json());
    if (error.is_object()) std::cout << "error: " << ErrorText(error) << "\n";
    if (result.status == 202) {
      std::cout << "the run is still going; follow it with: quarry runs watch "
                << Cell(result.body, "id") << "\n";
    }
    if (Cell(result.body, "status") == "failed") throw CLI::RuntimeError(1);
  });

  struct StatsFlags {
    CommonFlags common;
    std::string id, window = "24h";
  };
  auto stats = std::make_shared<StatsFlags>();
  CLI::App* stats_cmd =
      automations->add_subcommand("stats", "Invocations, success rate, latency, tokens and cost");
  AddCommonFlags(stats_cmd, &stats->common);
  stats_cmd->add_option("automation", stats->id, "Automation id (aut_...)")->required();
  stats_cmd->add_option("--window", stats->window, "1h, 24h or 7d")->capture_default_str();
  stats_cmd->callback([stats] {
    ApiClient client = Connect(stats->common);
    ApiCallResult result = Must(
        client.Call("GET", AutomationPath(stats->id) + "/stats?window=" + UriEncode(stats->window)),
        "reading statistics");
    if (client.settings().json_output) return PrintJson(result.body);
    PrintEntity(result.body,
                {"window", "since", "invocations", "succeeded", "failed", "waiting_review",
                 "running", "success_rate", "failure_rate", "latency_p50_ms", "latency_p95_ms",
                 "input_tokens", "output_tokens", "cost_usd", "cache_hits"});
  });

  struct TemplateFlags {
    CommonFlags common;
    std::string template_id, app_id, agent, service, webhook, object, name;
    bool create_object = false;
  };
  auto from = std::make_shared<TemplateFlags>();
  CLI::App* from_cmd = automations->add_subcommand(
      "from-template", "Create an automation (and its object) from a template");
  AddCommonFlags(from_cmd, &from->common);
  from_cmd->add_option("template", from->template_id, "Template id (quarry templates list)")
      ->required();
  from_cmd->add_option("--app", from->app_id, "App id or namespace")->required();
  from_cmd->add_option("--agent", from->agent, "Agent connection id (agt_...) for the agent steps");
  from_cmd->add_option("--service", from->service,
                       "AI service id (svc_...), for templates that need one");
  from_cmd->add_option("--webhook", from->webhook, "Notification URL, for templates that need one");
  from_cmd->add_option("--object", from->object, "Object api name (default: the template's)");
  from_cmd->add_option("--name", from->name, "Automation name (default: the template's)");
  from_cmd->add_flag("--create-object", from->create_object,
                     "Create the object and the template's missing fields");
  from_cmd->callback([from] {
    json body = {{"template", from->template_id}, {"create_object", from->create_object}};
    for (const auto& [key, value] :
         {std::pair{"agent", &from->agent}, std::pair{"service", &from->service},
          std::pair{"webhook", &from->webhook}, std::pair{"object", &from->object},
          std::pair{"name", &from->name}}) {
      if (!value->empty()) body[key] = *value;
    }
    ApiClient client = Connect(from->common);
    ApiCallResult result = Must(
        client.Call("POST", "/api/v1/apps/" + Segment(from->app_id) + "/automations/from-template",
                    body),
        "creating the automation from the template");
    PrintAutomation(client, result.body);
    if (client.settings().json_output) return;
    const json setup = result.body.value("setup", json::object());
    if (setup.value("object_created", false))
      std::cout << "created object " << Cell(setup, "object") << "\n";
    if (!setup.value("fields_created", json::array()).empty()) {
      std::cout << "created fields: " << Cell(setup, "fields_created") << "\n";
    }
    if (!setup.value("fields_missing", json::array()).empty()) {
      std::cout << "missing fields (add them, or use --create-object): "
                << Cell(setup, "fields_missing") << "\n";
    }
    std::cout << "saved as a draft; next: quarry automations publish " << Cell(result.body, "id")
              << "\n";
  });
}

// --- runs ----------------------------------------------------------------------

// One line per event of a live stream, and for an automation the running
// counts by status.
class WatchPrinter {
 public:
  explicit WatchPrinter(bool json_output, bool counts)
      : json_output_(json_output), counts_(counts) {}

  void Event(const std::string& event, const json& data) {
    if (json_output_) {
      std::cout << json{{"event", event}, {"data", data}}.dump() << std::endl;
      return;
    }
    if (event == "counts") {
      const json counts = data.value("counts", json::object());
      for (const auto& [status, count] : counts.items()) {
        if (count.is_number_integer()) by_status_[status] = count.get<int64_t>();
      }
      by_status_.clear();
      last_.clear();
      std::cout << "watching " << Cell(data, "automation_id") << ": " << Counts() << std::endl;
      return;
    }
    if (event == "error") {
      const json error = data.value("error", data);
      std::cerr << "error: " << Cell(error, "message") << "\n";
      if (!Cell(error, "hint").empty()) std::cerr << "  hint: " << Cell(error, "hint") << "\n";
      failed_ = true;
      return;
    }
    std::string line;
    const std::string run_id =
        Cell(data, "run_id").empty() ? Cell(data, "id") : Cell(data, "run_id");
    // A reconnected stream starts with the run's state so far again.
    const std::string key =
        run_id + " " + event + " " + Cell(data, "status") + " " + Cell(data, "seq");
    if (!counts_ && !seen_.insert(key).second) return;
    if (event == "step_finished") {
      line = run_id + "  step " + Cell(data, "step_id") + " (" + Cell(data, "type") + ") " +
             Cell(data, "status");
      if (!Cell(data, "latency_ms").empty()) line += "  " + Millis(data, "latency_ms");
      if (!Tokens(data).empty()) line += "  tokens " + Tokens(data);
      if (data.value("cache_hit", false)) line += "  cache hit";
      if (data.value("error", json()).is_object()) line += "  " + ErrorText(data["error"]);
    } else {
      const std::string status = Cell(data, "status");
      // "finished (failed)"; the other events name their status already.
      line = run_id + "  " + event.substr(event.find('_') + 1) +
             (event != "run_finished" || status.empty() ? "" : " (" + status + ")");
      if (event == "run_finished" && data.value("error", json()).is_object())
        line += "  " + ErrorText(data["error"]);
      Move(run_id, status);
    }
    if (counts_) line += "    [" + Counts() + "]";
    std::cout << line << std::endl;
    if (event == "run_finished" && Cell(data, "status") == "failed") any_failed_ = true;
  }

  bool failed() const { return failed_; }
  bool any_failed() const { return any_failed_; }

 private:
  // Keeps each run's last status so the counts move a run between statuses.
  void Move(const std::string& run_id, const std::string& status) {
    if (status.empty()) return;
    auto it = last_.find(run_id);
    if (it != last_.end()) {
      // A run never goes back to the queue: a run_queued sent just after the
      // run started (see engine::RunEvent) changes nothing.
      if (it->second == status || status == "queued") return;
      if (by_status_[it->second] > 0) --by_status_[it->second];
    } else if (status != "queued" && by_status_["queued"] > 0) {
      --by_status_["queued"];  // a run counted at the start comes out of the queue
    }
    ++by_status_[status];
    if (status == "succeeded" || status == "failed" || status == "cancelled") {
      last_.erase(run_id);  // finished runs are not seen again
    } else {
      last_[run_id] = status;
    }
  }

  std::string Counts() const {
    std::string text;
    for (const char* status :
         {"queued", "running", "waiting_review", "succeeded", "failed", "cancelled"}) {
      auto it = by_status_.find(status);
      const int64_t count = it == by_status_.end() ? 0 : it->second;
      if (count == 0 &&
          (std::string(status) == "waiting_review" || std::string(status) == "cancelled"))
        continue;
      text += (text.empty() ? "" : ", ") + std::string(status) + " " + std::to_string(count);
    }
    return text;
  }

  bool json_output_;
  bool counts_;
  bool failed_ = false;
  bool any_failed_ = false;
  std::map<std::string, int64_t> by_status_;
  std::map<std::string, std::string> last_;
  std::set<std::string> seen_;
};

void RegisterRuns(CLI::App& app) {
  CLI::App* runs =
      app.add_subcommand("runs", "Runs of automations: history, steps and live progress");
  runs->require_subcommand(1);

  struct ListFlags {
    CommonFlags common;
    std::string automation, status, record, mode, cursor;
    int limit = 50;
  };
  auto list = std::make_shared<ListFlags>();
  CLI::App* list_cmd = runs->add_subcommand("list", "List runs, newest first");
  AddCommonFlags(list_cmd, &list->common);
  list_cmd->add_option("--automation", list->automation, "Only runs of this automation");
  list_cmd->add_option("--status", list->status,
                       "queued, running, waiting_review, succeeded, failed or cancelled");
  list_cmd->add_option("--record", list->record,
                       "Only runs of this record (id, or handle with --automation)");
  list_cmd->add_option("--mode", list->mode, "live or test");
  list_cmd->add_option("--limit", list->limit, "Page size (1-500)")->capture_default_str();
  list_cmd->add_option("--cursor", list->cursor, "Next page (from the previous listing)");
  list_cmd->callback([list] {
    ApiClient client = Connect(list->common);
    std::string path = "/api/v1/runs?limit=" + std::to_string(list->limit);
    for (const auto& [key, value] :
         {std::pair{"automation", &list->automation}, std::pair{"status", &list->status},
          std::pair{"record", &list->record}, std::pair{"mode", &list->mode},
          std::pair{"cursor", &list->cursor}}) {
      if (!value->empty()) path += std::string("&") + key + "=" + UriEncode(*value);
    }
    ApiCallResult result = Must(client.Call("GET", path), "listing runs");
    if (client.settings().json_output) return PrintJson(result.body);
    std::vector<std::vector<std::string>> rows;
    for (const json& run : result.body.value("items", json::array())) {
      rows.push_back({Cell(run, "id"), Cell(run, "automation_id"), Cell(run, "mode"),
                      Cell(run, "status"), Cell(run, "record_id"), Cell(run, "created_at"),
                      Tokens(run), Money(run.value("cost_usd", json())),
                      ErrorText(run.value("error", json()))});
    }
    std::cout << RenderTable(
        {"run", "automation", "mode", "status", "record", "created", "tokens", "cost", "error"},
        rows);
    if (!Cell(result.body, "next_cursor").empty())
      std::cout << "(more: --cursor " << Cell(result.body, "next_cursor") << ")\n";
  });

  auto show = std::make_shared<IdFlags>();
  IdCommand(runs, "show", "Show a run and its steps", show, "run")->callback([show] {
    ApiClient client = Connect(show->common);
    ApiCallResult result =
        Must(client.Call("GET", "/api/v1/runs/" + Segment(show->id)), "reading the run");
    if (client.settings().json_output) return PrintJson(result.body);
    PrintRun(result.body);
  });

  auto cancel = std::make_shared<IdFlags>();
  IdCommand(runs, "cancel", "Cancel a queued run or one waiting for review", cancel, "run")
      ->callback([cancel] {
        ApiClient client = Connect(cancel->common);
        ApiCallResult result = Must(
            client.Call("POST", "/api/v1/runs/" + Segment(cancel->id) + "/cancel", json::object()),
            "cancelling the run");
        if (client.settings().json_output) return PrintJson(result.body);
        std::cout << Cell(result.body, "id") << " is " << Cell(result.body, "status") << "\n";
      });

  struct WatchFlags {
    CommonFlags common;
    std::string run, automation;
  };
  auto watch = std::make_shared<WatchFlags>();
  CLI::App* watch_cmd =
      runs->add_subcommand("watch", "Live progress of a run, or of every run of an automation");
  AddCommonFlags(watch_cmd, &watch->common);
  watch_cmd->add_option("run", watch->run, "Run id (ends when the run finishes)");
  watch_cmd->add_option("--automation", watch->automation,
                        "Watch every run of this automation (Ctrl-C ends)");
  watch_cmd->callback([watch] {
    if (watch->run.empty() == watch->automation.empty()) {
      std::cerr << "error: give a run id, or --automation ID (one of the two)\n";
      throw CLI::RuntimeError(2);
    }
    ApiClient client = Connect(watch->common);
    WatchPrinter printer(client.settings().json_output, !watch->automation.empty());
    const std::string path = watch->run.empty() ? AutomationPath(watch->automation) + "/events"
                                                : "/api/v1/runs/" + Segment(watch->run) + "/events";
    // The client's request limit cuts a stream after a few minutes (an
    // automation's stream has no end, a run may wait for review for hours):
    // a stream that had started is opened again, and the printer drops what
    // the new stream's snapshot repeats.
    while (true) {
      bool started = false;
      ApiCallResult result = client.Stream(
          "GET", path, nullptr, [&printer, &started](const std::string& event, const json& data) {
            started = true;
            printer.Event(event, data);
          });
      if (printer.failed()) throw CLI::RuntimeError(1);
      if (result.ok() && !watch->run.empty()) break;
      if (!result.ok() && !(started && !result.transport_error.empty()))
        FailWithApiError(result, "watching");
    }
    if (printer.any_failed()) throw CLI::RuntimeError(1);
  });
}

// --- reviews, alerts, templates -------------------------------------------------

void RegisterReviews(CLI::App& app) {
  CLI::App* reviews =
      app.add_subcommand("reviews", "The human review queue: approve, edit or reject");
  reviews->require_subcommand(1);

  struct ListFlags {
    CommonFlags common;
    std::string status = "pending";
  };
  auto list = std::make_shared<ListFlags>();
  CLI::App* list_cmd = reviews->add_subcommand("list", "List reviews (pending by default)");
  AddCommonFlags(list_cmd, &list->common);
  list_cmd->add_option("--status", list->status, "pending, approved, edited, rejected or all")
      ->capture_default_str();
  list_cmd->callback([list] {
    ApiClient client = Connect(list->common);
    PrintList(
        client,
        Must(client.Call("GET", "/api/v1/reviews?limit=100&status=" + UriEncode(list->status)),
             "listing reviews"),
        {"id", "automation_id", "run_id", "status", "reason", "proposed", "created_at"});
  });

  auto show = std::make_shared<IdFlags>();
  IdCommand(reviews, "show", "Show a review with its context and proposed values", show, "review")
      ->callback([show] {
        ApiClient client = Connect(show->common);
        ApiCallResult result =
            Must(client.Call("GET", "/api/v1/reviews/" + Segment(show->id)), "reading the review");
        if (client.settings().json_output) return PrintJson(result.body);
        PrintEntity(result.body, {"id", "automation_id", "run_id", "step_id", "status", "reason",
                                  "decided_by", "decided_at", "created_at"});
        std::cout << "\nproposed:\n"
                  << result.body.value("proposed", json::object()).dump(2) << "\n";
        std::cout << "\ncontext:\n" << result.body.value("context", json::object()).dump(2) << "\n";
      });

  struct DecideFlags {
    CommonFlags common;
    std::string id, comment;
    std::vector<std::string> sets;
  };
  for (const auto& [name, decision] :
       {std::pair{"approve", "approved"}, std::pair{"edit", "edited"},
        std::pair{"reject", "rejected"}}) {
    auto flags = std::make_shared<DecideFlags>();
    const std::string chosen = decision;
    CLI::App* command = reviews->add_subcommand(
        name, chosen == "approved" ? "Approve the proposed values; the run continues"
              : chosen == "edited"
                  ? "Replace proposed values (--set name=value); the run continues with them"
                  : "Reject; the run ends");
    AddCommonFlags(command, &flags->common);
    command->add_option("review", flags->id, "Review id (rev_...)")->required();
    command->add_option("--comment", flags->comment, "A comment kept with the decision");
    if (chosen == "edited")
      command->add_option("--set", flags->sets, "NAME=VALUE (repeat)")->required();
    command->callback([flags, chosen] {
      json body = {{"decision", chosen}};
      if (!flags->sets.empty()) body["values"] = ParseAssignments(flags->sets, "--set");
      if (!flags->comment.empty()) body["comment"] = flags->comment;
      ApiClient client = Connect(flags->common);
      ApiCallResult result =
          Must(client.Call("POST", "/api/v1/reviews/" + Segment(flags->id) + "/decision", body),
               "deciding the review");
      if (client.settings().json_output) return PrintJson(result.body);
      std::cout << Cell(result.body, "id") << " " << Cell(result.body, "status") << "; run "
                << Cell(result.body, "run_id") << (chosen == "rejected" ? " ends" : " continues")
                << "\n";
    });
  }
}

void RegisterAlerts(CLI::App& app) {
  CLI::App* alerts = app.add_subcommand("alerts", "Alerts from steps that halted");
  alerts->require_subcommand(1);
  struct Flags {
    CommonFlags common;
    std::string automation;
  };
  auto list = std::make_shared<Flags>();
  CLI::App* list_cmd = alerts->add_subcommand("list", "List alerts, newest first");
  AddCommonFlags(list_cmd, &list->common);
  list_cmd->add_option("--automation", list->automation, "Only alerts of this automation");
  list_cmd->callback([list] {
    ApiClient client = Connect(list->common);
    std::string path = "/api/v1/alerts?limit=100";
    if (!list->automation.empty()) path += "&automation=" + UriEncode(list->automation);
    PrintList(client, Must(client.Call("GET", path), "listing alerts"),
              {"id", "automation_id", "run_id", "step_id", "message", "delivery", "created_at"});
  });
}

void RegisterTemplates(CLI::App& app) {
  CLI::App* templates = app.add_subcommand("templates", "Automation templates Quarry ships");
  templates->require_subcommand(1);
  auto list = std::make_shared<CommonFlags>();
  CLI::App* list_cmd = templates->add_subcommand("list", "List templates");
  AddCommonFlags(list_cmd, list.get());
  list_cmd->callback([list] {
    ApiClient client = Connect(*list);
    PrintList(client, Must(client.Call("GET", "/api/v1/automation-templates"), "listing templates"),
              {"id", "name", "object", "placeholders", "description"});
  });
  auto show = std::make_shared<IdFlags>();
  IdCommand(templates, "show", "Show a template: its fields and definition", show, "template")
      ->callback([show] {
        ApiClient client = Connect(show->common);
        ApiCallResult result =
            Must(client.Call("GET", "/api/v1/automation-templates/" + Segment(show->id)),
                 "reading the template");
        if (client.settings().json_output) return PrintJson(result.body);
        PrintEntity(result.body, {"id", "name", "description", "object", "placeholders"});
        std::vector<std::vector<std::string>> rows;
        for (const json& field : result.body.value("fields", json::array())) {
          rows.push_back({Cell(field, "api_name"), Cell(field, "label"), Cell(field, "type"),
                          Cell(field, "options")});
        }
        if (!rows.empty())
          std::cout << "\n" << RenderTable({"field", "label", "type", "options"}, rows);
        std::cout << "\ndefinition:\n"
                  << result.body.value("definition", json::object()).dump(2) << "\n";
      });
}

}  // namespace

void RegisterAutomationCommands(CLI::App& app) {
  RegisterAutomations(app);
  RegisterRuns(app);
  RegisterReviews(app);
  RegisterAlerts(app);
  RegisterTemplates(app);
}

}  // namespace quarry::cli
