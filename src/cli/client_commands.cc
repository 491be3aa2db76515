// The `quarry` client subcommands: each mirrors a part of the REST API
// (docs/api.md) and prints a table for people, or the API's JSON with --json.
// Failures print the server's message and hint and exit 1.
//
//   quarry login --server URL (--token TOKEN | --email EMAIL [--password P])
//   quarry providers add|test|list|rm     quarry models PROVIDER
//   quarry services add|list|rm|try       quarry apps create|list
//   quarry records create|list|get|update quarry agents connect|list|rm
//   quarry chat AGENT                     (interactive, streaming)

#include <strings.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "cli/api_client.h"
#include "cli/client_command_support.h"
#include "cli/commands.h"
#include "common/encoding.h"

namespace quarry::cli {
namespace {

using nlohmann::json;

// Prints a list response ({"items":[...]}) as a table of the given columns,
// or the JSON.
void PrintList(const ApiClient& client, const ApiCallResult& result,
               const std::vector<std::string>& columns) {
  if (client.settings().json_output) {
    std::cout << result.body.dump(2) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> rows;
  const json& items = result.body.is_object() ? result.body["items"] : json::array();
  for (const json& item : items) {
    std::vector<std::string> row;
    for (const std::string& column : columns) row.push_back(Cell(item, column));
    rows.push_back(std::move(row));
  }
  std::cout << RenderTable(columns, rows);
}

void PrintEntity(const ApiClient& client, const json& body,
                 const std::vector<std::string>& fields) {
  if (client.settings().json_output) {
    std::cout << body.dump(2) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> rows;
  for (const std::string& field : fields) {
    const std::string value = Cell(body, field);
    if (!value.empty()) rows.push_back({field, value});
  }
  std::cout << RenderTable({"field", "value"}, rows);
}

// --- login ---------------------------------------------------------------

void RegisterLogin(CLI::App& app) {
  struct Flags {
    std::string server, token, email, password;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* login = app.add_subcommand("login", "Save the server and a token for the other subcommands");
  login->add_option("--server", flags->server, "Quarry server URL, e.g. http://127.0.0.1:8080")->required();
  login->add_option("--token", flags->token, "An API token (qk_...)");
  login->add_option("--email", flags->email, "Log in with e-mail and password instead of a token");
  login->add_option("--password", flags->password, "Password (prompted for when omitted)");
  login->callback([flags] {
    std::string token = flags->token;
    ClientSettings settings{flags->server, "", false};
    if (token.empty()) {
      if (flags->email.empty()) {
        std::cerr << "error: pass --token TOKEN, or --email EMAIL to log in with a password\n";
        throw CLI::RuntimeError(2);
      }
      std::string password = flags->password;
      if (password.empty()) {
        const char* typed = ::getpass("password: ");
        password = typed != nullptr ? typed : "";
      }
      // A password login opens a browser session; the CLI trades it for an
      // API token of its own, so the password is never stored.
      ApiClient anonymous(settings);
      ApiCallResult session = anonymous.Call("POST", "/api/v1/auth/login",
                                             {{"email", flags->email}, {"password", password}});
      Must(session, "logging in");
      std::string cookie;
      for (const auto& [name, value] : session.headers) {
        if (name.size() == 10 && strncasecmp(name.c_str(), "set-cookie", 10) == 0 &&
            value.starts_with("quarry_session=")) {
          cookie = value.substr(0, value.find(';'));
        }
      }
      if (cookie.empty()) {
        std::cerr << "error: the server accepted the password but set no session; log in with --token\n";
        throw CLI::RuntimeError(1);
      }
      ClientSettings with_session = settings;
      with_session.extra_headers.emplace_back("Cookie", cookie);
      ApiClient session_client(with_session);
      char host[256] = "this machine";
      ::gethostname(host, sizeof host - 1);
      ApiCallResult minted = Must(
          session_client.Call("POST", "/api/v1/tokens", {{"name", std::string("quarry CLI on ") + host}}),
          "creating an API token for the CLI");
      token = Cell(minted.body, "token");
      session_client.Call("POST", "/api/v1/auth/logout", json::object());
    }
    settings.token = token;
    ApiClient client(settings);
    ApiCallResult me = Must(client.Call("GET", "/api/v1/me"), "checking the token");
    const Status saved = SaveLogin(settings.server, token);
    if (!saved.ok()) {
      std::cerr << "error: " << saved.message() << "\n";
      throw CLI::RuntimeError(1);
    }
    const json user = me.body.value("user", json::object());
    std::cout << "logged in to " << settings.server << " as " << Cell(user, "email") << " ("
              << Cell(user, "role") << "); saved to " << LoginFilePath() << "\n";
  });
}

// --- providers and models ---------------------------------------------------

void RegisterProviders(CLI::App& app) {
  CLI::App* providers = app.add_subcommand("providers", "AI Providers (Amazon Bedrock accounts)");
  providers->require_subcommand(1);

  struct AddFlags {
    CommonFlags common;
    std::string name, region = "us-east-1", access_key_id, secret_access_key, session_token,
                role_arn, external_id, api_key, endpoint_url;
    bool default_chain = false;
  };
  auto add = std::make_shared<AddFlags>();
  CLI::App* add_cmd = providers->add_subcommand("add", "Add an Amazon Bedrock provider");
  AddCommonFlags(add_cmd, &add->common);
  add_cmd->add_option("name", add->name, "Display name")->required();
  add_cmd->add_option("--region", add->region, "AWS region")->capture_default_str();
  add_cmd->add_option("--access-key-id", add->access_key_id, "Access key id (AKIA...)");
  add_cmd->add_option("--secret-access-key", add->secret_access_key,
                      "Secret access key (default: $AWS_SECRET_ACCESS_KEY)");
  add_cmd->add_option("--session-token", add->session_token, "Session token, for temporary keys");
  add_cmd->add_option("--role-arn", add->role_arn, "Assume this role (with the keys, or the default chain)");
  add_cmd->add_option("--external-id", add->external_id, "External id for --role-arn");
  add_cmd->add_option("--api-key", add->api_key, "Bedrock API key (bearer; not for agents)");
  add_cmd->add_flag("--default-chain", add->default_chain, "Use the server's own AWS credentials");
  add_cmd->add_option("--endpoint-url", add->endpoint_url, "One endpoint for every Bedrock service");
  add_cmd->callback([add] {
    if (add->secret_access_key.empty()) {
      if (const char* env = std::getenv("AWS_SECRET_ACCESS_KEY")) add->secret_access_key = env;
    }
    json keys = {{"access_key_id", add->access_key_id},
                 {"secret_access_key", add->secret_access_key}};
    json credentials;
    if (!add->role_arn.empty()) {
      credentials = {{"kind", "assume_role"}, {"role_arn", add->role_arn}};
      if (!add->external_id.empty()) credentials["external_id"] = add->external_id;
      if (add->access_key_id.empty()) {
        credentials["source"] = "default_chain";
      } else {
        credentials["source"] = "access_key";
        credentials["access_key_id"] = add->access_key_id;
        credentials["secret_access_key"] = add->secret_access_key;
      }
    } else if (!add->api_key.empty()) {
      credentials = {{"kind", "api_key"}, {"api_key", add->api_key}};
    } else if (add->default_chain) {
      credentials = {{"kind", "default_chain"}};
    } else if (!add->session_token.empty()) {
      credentials = keys;
      credentials["kind"] = "session";
      credentials["session_token"] = add->session_token;
    } else {
      credentials = keys;
      credentials["kind"] = "access_key";
    }
    json body = {{"name", add->name}, {"region", add->region}, {"credentials", credentials}};
    if (!add->endpoint_url.empty()) body["endpoint_url"] = add->endpoint_url;
    ApiClient client = Connect(add->common);
    ApiCallResult result = Must(client.Call("POST", "/api/v1/providers", body), "adding the provider");
    PrintEntity(client, result.body, {"id", "name", "region", "status"});
  });

  struct TestFlags {
    CommonFlags common;
    std::string provider, invoke_model;
  };
  auto test = std::make_shared<TestFlags>();
  CLI::App* test_cmd = providers->add_subcommand("test", "Test Connection: credentials, catalogue, a model");
  AddCommonFlags(test_cmd, &test->common);
  test_cmd->add_option("provider", test->provider, "Provider id")->required();
  test_cmd->add_option("--invoke-model", test->invoke_model,
                       "Also send a one-token request to this model or inference profile id");
  test_cmd->callback([test] {
    ApiClient client = Connect(test->common);
    json body = json::object();
    if (!test->invoke_model.empty()) body["invoke_model"] = test->invoke_model;
    ApiCallResult result = client.Call("POST", "/api/v1/providers/" + Segment(test->provider) + "/test", body);
    if (!result.ok() && !(result.body.is_object() && result.body.contains("checks"))) {
      FailWithApiError(result, "testing the provider");
    }
    const std::string status = Cell(result.body.value("provider", json::object()), "status");
    if (client.settings().json_output) {
      std::cout << result.body.dump(2) << "\n";
    } else {
      std::vector<std::vector<std::string>> rows;
      for (const json& check : result.body.value("checks", json::array())) {
        std::string detail = Cell(check, "detail");
        if (check.contains("error") && check["error"].is_object()) detail = Cell(check["error"], "message");
        if (!Cell(check, "skipped_reason").empty()) detail = Cell(check, "skipped_reason");
        rows.push_back({Cell(check, "name"), Cell(check, "status"), Cell(check, "latency_ms"), detail});
      }
      std::cout << RenderTable({"check", "result", "ms", "detail"}, rows);
      for (const json& check : result.body.value("checks", json::array())) {
        const json& entry = check.contains("troubleshooting") ? check["troubleshooting"] : json();
        if (!entry.is_object()) continue;
        std::cout << "\n" << Cell(check, "name") << ": " << Cell(entry, "title") << "\n";
        for (const json& fix : entry.value("how_to_fix", json::array())) {
          std::cout << "  - " << fix.get<std::string>() << "\n";
        }
      }
      std::cout << "status: " << status << "\n";
    }
    if (status != "working") throw CLI::RuntimeError(1);
  });

  auto list = std::make_shared<CommonFlags>();
  CLI::App* list_cmd = providers->add_subcommand("list", "List providers");
  AddCommonFlags(list_cmd, list.get());
  list_cmd->callback([list] {
    ApiClient client = Connect(*list);
    PrintList(client, Must(client.Call("GET", "/api/v1/providers"), "listing providers"),
              {"id", "name", "region", "status", "credentials_age_days", "last_tested_at"});
  });

  struct RmFlags {
    CommonFlags common;
    std::string provider;
  };
  auto rm = std::make_shared<RmFlags>();
  CLI::App* rm_cmd = providers->add_subcommand("rm", "Delete a provider");
  AddCommonFlags(rm_cmd, &rm->common);
  rm_cmd->add_option("provider", rm->provider, "Provider id")->required();
  rm_cmd->callback([rm] {
    ApiClient client = Connect(rm->common);
    Must(client.Call("DELETE", "/api/v1/providers/" + Segment(rm->provider)), "deleting the provider");
    std::cout << "deleted " << rm->provider << "\n";
  });

  struct ModelsFlags {
    CommonFlags common;
    std::string provider;
    bool refresh = false;
  };
  auto models = std::make_shared<ModelsFlags>();
  CLI::App* models_cmd = app.add_subcommand("models", "The model catalogue of a provider's region");
  AddCommonFlags(models_cmd, &models->common);
  models_cmd->add_option("provider", models->provider, "Provider id")->required();
  models_cmd->add_flag("--refresh", models->refresh, "Fetch again from Bedrock instead of the cache");
  models_cmd->callback([models] {
    ApiClient client = Connect(models->common);
    std::string path = "/api/v1/providers/" + Segment(models->provider) + "/models";
    if (models->refresh) path += "?refresh=true";
    ApiCallResult result = Must(client.Call("GET", path), "reading the model catalogue");
    if (client.settings().json_output) {
      std::cout << result.body.dump(2) << "\n";
      return;
    }
    std::vector<std::vector<std::string>> rows;
    for (const json& model : result.body.value("models", json::array())) {
      std::string usable = model.value("usable", false) ? "yes" : "no: " + Cell(model, "unusable_reason");
      rows.push_back({Cell(model, "name"), Cell(model, "model_id"), Cell(model, "invocation_target"), usable});
    }
    std::cout << "region " << Cell(result.body, "region") << ", catalogue fetched " << Cell(result.body, "fetched_at")
              << "\n" << RenderTable({"model", "model id", "invoke with", "usable"}, rows);
  });
}

// --- services ------------------------------------------------------------------

void RegisterServices(CLI::App& app) {
  CLI::App* services = app.add_subcommand("services", "AI Services (a Claude model with its settings)");
  services->require_subcommand(1);

  struct AddFlags {
    CommonFlags common;
    std::string name, provider, model, system;
    double temperature = 0.2;
    int max_tokens = 1024;
  };
  auto add = std::make_shared<AddFlags>();
  CLI::App* add_cmd = services->add_subcommand("add", "Create an LLM service");
  AddCommonFlags(add_cmd, &add->common);
  add_cmd->add_option("name", add->name, "Service name")->required();
  add_cmd->add_option("--provider", add->provider, "Provider id")->required();
  add_cmd->add_option("--model", add->model, "Model id or inference profile id")->required();
  add_cmd->add_option("--temperature", add->temperature, "0 to 1")->capture_default_str();
  add_cmd->add_option("--max-tokens", add->max_tokens, "Maximum output tokens")->capture_default_str();
  add_cmd->add_option("--system", add->system, "System prompt");
  add_cmd->callback([add] {
    json body = {{"name", add->name},           {"type", "llm"},
                 {"provider_id", add->provider}, {"model", add->model},
                 {"temperature", add->temperature}, {"max_tokens", add->max_tokens}};
    if (!add->system.empty()) body["system_prompt"] = add->system;
    ApiClient client = Connect(add->common);
    ApiCallResult result = Must(client.Call("POST", "/api/v1/services", body), "creating the service");
    PrintEntity(client, result.body, {"id", "name", "model.invocation_target", "notices"});
  });

  auto list = std::make_shared<CommonFlags>();
  CLI::App* list_cmd = services->add_subcommand("list", "List services");
  AddCommonFlags(list_cmd, list.get());
  list_cmd->callback([list] {
    ApiClient client = Connect(*list);
    PrintList(client, Must(client.Call("GET", "/api/v1/services"), "listing services"),
              {"id", "name", "model.name", "model.invocation_target", "temperature", "max_tokens"});
  });

  struct IdFlags {
    CommonFlags common;
    std::string id, prompt;
  };
  auto rm = std::make_shared<IdFlags>();
  CLI::App* rm_cmd = services->add_subcommand("rm", "Delete a service");
  AddCommonFlags(rm_cmd, &rm->common);
  rm_cmd->add_option("service", rm->id, "Service id")->required();
  rm_cmd->callback([rm] {
    ApiClient client = Connect(rm->common);
    Must(client.Call("DELETE", "/api/v1/services/" + Segment(rm->id)), "deleting the service");
    std::cout << "deleted " << rm->id << "\n";
  });

  auto try_flags = std::make_shared<IdFlags>();
  CLI::App* try_cmd = services->add_subcommand("try", "Send a prompt and stream the reply");
  AddCommonFlags(try_cmd, &try_flags->common);
  try_cmd->add_option("service", try_flags->id, "Service id")->required();
  try_cmd->add_option("prompt", try_flags->prompt, "The prompt")->required();
  try_cmd->callback([try_flags] {
    ApiClient client = Connect(try_flags->common);
    json done;
    ApiCallResult result = client.Stream(
        "POST", "/api/v1/services/" + Segment(try_flags->id) + "/try", {{"prompt", try_flags->prompt}},
        [&](const std::string& event, const json& data) {
          if (event == "delta") {
            std::cout << data.value("text", "") << std::flush;
          } else if (event == "done") {
            done = data;
          } else if (event == "error") {
            FailWithApiError({.status = 502, .body = data}, "the model call failed");
          }
        });
    if (!result.ok()) FailWithApiError(result, "trying the service");
    std::cout << "\n";
    if (done.is_object()) {
      std::cerr << "(" << Cell(done, "latency_ms") << " ms, usage " << Cell(done, "usage") << ")\n";
    }
  });
}

// --- apps and records -------------------------------------------------------------

void RegisterApps(CLI::App& app) {
  CLI::App* apps = app.add_subcommand("apps", "Apps (namespaces of objects and records)");
  apps->require_subcommand(1);
  struct CreateFlags {
    CommonFlags common;
    std::string name, ns, prefix, description;
  };
  auto create = std::make_shared<CreateFlags>();
  CLI::App* create_cmd = apps->add_subcommand("create", "Create an app");
  AddCommonFlags(create_cmd, &create->common);
  create_cmd->add_option("name", create->name, "App name")->required();
  create_cmd->add_option("--namespace", create->ns, "Unique namespace (lower case)")->required();
  create_cmd->add_option("--handle", create->prefix, "Record handle prefix, e.g. TCK (records are TCK-1, TCK-2, ...)")->required();
  create_cmd->add_option("--description", create->description, "Description");
  create_cmd->callback([create] {
    ApiClient client = Connect(create->common);
    json body = {{"name", create->name}, {"namespace", create->ns}, {"handle", create->prefix}};
    if (!create->description.empty()) body["description"] = create->description;
    ApiCallResult result = Must(client.Call("POST", "/api/v1/apps", body), "creating the app");
    PrintEntity(client, result.body, {"id", "name", "namespace", "handle"});
  });
  struct ObjectFlags {
    CommonFlags common;
    std::string app_id, name, api_name;
  };
  auto object = std::make_shared<ObjectFlags>();
  CLI::App* object_cmd = apps->add_subcommand("add-object", "Add an object (a record type) to an app");
  AddCommonFlags(object_cmd, &object->common);
  object_cmd->add_option("app", object->app_id, "App id or namespace")->required();
  object_cmd->add_option("name", object->name, "Object name, e.g. Ticket")->required();
  object_cmd->add_option("--api-name", object->api_name, "API name, e.g. ticket")->required();
  object_cmd->callback([object] {
    ApiClient client = Connect(object->common);
    ApiCallResult result = Must(client.Call("POST", "/api/v1/apps/" + Segment(object->app_id) + "/objects",
                                            {{"name", object->name}, {"api_name", object->api_name}}),
                                "adding the object");
    PrintEntity(client, result.body, {"id", "name", "api_name"});
  });

  struct FieldFlags {
    CommonFlags common;
    std::string app_id, object_id, api_name, label, type = "text", default_value;
    std::vector<std::string> options;
    bool required = false;
  };
  auto field = std::make_shared<FieldFlags>();
  CLI::App* field_cmd = apps->add_subcommand("add-field", "Add a field to an object");
  AddCommonFlags(field_cmd, &field->common);
  field_cmd->add_option("app", field->app_id, "App id or namespace")->required();
  field_cmd->add_option("object", field->object_id, "Object id or API name")->required();
  field_cmd->add_option("api_name", field->api_name, "Field API name, e.g. priority")->required();
  field_cmd->add_option("--label", field->label, "Label (default: the API name)");
  field_cmd->add_option("--type", field->type,
                        "text, long_text, number, decimal, dropdown, checkbox, date, date_time, json, user")
      ->capture_default_str();
  field_cmd->add_option("--option", field->options, "A dropdown option (repeat)");
  field_cmd->add_option("--default", field->default_value, "Default value");
  field_cmd->add_flag("--required", field->required, "A value is required");
  field_cmd->callback([field] {
    ApiClient client = Connect(field->common);
    json body = {{"api_name", field->api_name},
                 {"label", field->label.empty() ? field->api_name : field->label},
                 {"type", field->type},
                 {"required", field->required}};
    if (!field->options.empty()) body["options"] = field->options;
    if (!field->default_value.empty()) {
      body["default"] = ParseAssignments({"v=" + field->default_value}, "--default")["v"];
    }
    ApiCallResult result = Must(
        client.Call("POST", "/api/v1/apps/" + Segment(field->app_id) + "/objects/" + Segment(field->object_id) +
                                "/fields",
                    body),
        "adding the field");
    PrintEntity(client, result.body, {"id", "api_name", "label", "type", "required"});
  });

  auto list = std::make_shared<CommonFlags>();
  CLI::App* list_cmd = apps->add_subcommand("list", "List apps");
  AddCommonFlags(list_cmd, list.get());
  list_cmd->callback([list] {
    ApiClient client = Connect(*list);
    PrintList(client, Must(client.Call("GET", "/api/v1/apps"), "listing apps"),
              {"id", "name", "namespace", "handle"});
  });
}

void RegisterRecords(CLI::App& app) {
  CLI::App* records = app.add_subcommand("records", "Records of an app's object");
  records->require_subcommand(1);
  struct Flags {
    CommonFlags common;
    std::string app_id, object_id, record, limit;
    std::vector<std::string> sets, filters;
  };
  auto create = std::make_shared<Flags>();
  CLI::App* create_cmd = records->add_subcommand("create", "Create a record");
  AddCommonFlags(create_cmd, &create->common);
  create_cmd->add_option("app", create->app_id, "App id")->required();
  create_cmd->add_option("object", create->object_id, "Object id")->required();
  create_cmd->add_option("--set", create->sets, "FIELD=VALUE (repeat)");
  create_cmd->callback([create] {
    ApiClient client = Connect(create->common);
    ApiCallResult result = Must(
        client.Call("POST",
                    "/api/v1/apps/" + Segment(create->app_id) + "/objects/" + Segment(create->object_id) + "/records",
                    {{"values", ParseAssignments(create->sets, "--set", "FIELD=VALUE")}}),
        "creating the record");
    PrintEntity(client, result.body, {"id", "handle", "values", "version"});
  });

  auto list = std::make_shared<Flags>();
  CLI::App* list_cmd = records->add_subcommand("list", "List records (filters: FIELD=VALUE)");
  AddCommonFlags(list_cmd, &list->common);
  list_cmd->add_option("app", list->app_id, "App id")->required();
  list_cmd->add_option("object", list->object_id, "Object id")->required();
  list_cmd->add_option("--filter", list->filters, "FIELD=VALUE, or FIELD[op]=VALUE with op eq ne gt lt gte lte contains in");
  list_cmd->add_option("--limit", list->limit, "Page size");
  list_cmd->callback([list] {
    ApiClient client = Connect(list->common);
    std::string path = "/api/v1/apps/" + Segment(list->app_id) + "/objects/" + Segment(list->object_id) + "/records";
    char separator = '?';
    for (const std::string& filter : list->filters) {
      const size_t equals = filter.find('=');
      if (equals == std::string::npos) {
        std::cerr << "error: --filter " << filter << " is not FIELD=VALUE\n";
        throw CLI::RuntimeError(2);
      }
      std::string field = filter.substr(0, equals);
      std::string op;
      if (const size_t bracket = field.find('['); bracket != std::string::npos && field.back() == ']') {
        op = field.substr(bracket, field.size() - bracket);
        field = field.substr(0, bracket);
      }
      path += separator + std::string("filter%5B") + UriEncode(field) + "%5D" +
              (op.empty() ? "" : UriEncode(op)) + "=" + UriEncode(filter.substr(equals + 1));
      separator = '&';
    }
    if (!list->limit.empty()) path += separator + std::string("limit=") + UriEncode(list->limit);
    ApiCallResult result = Must(client.Call("GET", path), "listing records");
    if (client.settings().json_output) {
      std::cout << result.body.dump(2) << "\n";
      return;
    }
    std::vector<std::vector<std::string>> rows;
    for (const json& record : result.body.value("items", json::array())) {
      rows.push_back({Cell(record, "handle"), Cell(record, "id"), Cell(record, "values")});
    }
    std::cout << RenderTable({"handle", "id", "values"}, rows);
  });

  auto get = std::make_shared<Flags>();
  CLI::App* get_cmd = records->add_subcommand("get", "Show one record (by id or handle)");
  AddCommonFlags(get_cmd, &get->common);
  get_cmd->add_option("app", get->app_id, "App id")->required();
  get_cmd->add_option("record", get->record, "Record id or handle (TCK-12)")->required();
  get_cmd->callback([get] {
    ApiClient client = Connect(get->common);
    ApiCallResult result = Must(
        client.Call("GET", "/api/v1/apps/" + Segment(get->app_id) + "/records/" + Segment(get->record)),
        "reading the record");
    PrintEntity(client, result.body, {"id", "handle", "values", "version", "created_at", "updated_at"});
  });

  auto update = std::make_shared<Flags>();
  CLI::App* update_cmd = records->add_subcommand("update", "Change fields of a record");
  AddCommonFlags(update_cmd, &update->common);
  update_cmd->add_option("app", update->app_id, "App id")->required();
  update_cmd->add_option("record", update->record, "Record id or handle")->required();
  update_cmd->add_option("--set", update->sets, "FIELD=VALUE (repeat)")->required();
  update_cmd->callback([update] {
    ApiClient client = Connect(update->common);
    ApiCallResult result = Must(
        client.Call("PATCH", "/api/v1/apps/" + Segment(update->app_id) + "/records/" + Segment(update->record),
                    {{"values", ParseAssignments(update->sets, "--set", "FIELD=VALUE")}}),
        "updating the record");
    PrintEntity(client, result.body, {"id", "handle", "values", "version"});
  });
}

// --- agents and chat -----------------------------------------------------------------

void RegisterAgents(CLI::App& app) {
  CLI::App* agents = app.add_subcommand("agents", "Bedrock Agents connected to apps");
  agents->require_subcommand(1);
  struct Flags {
    CommonFlags common;
    std::string app_id, provider, alias_arn, name, description, agent;
  };
  auto connect = std::make_shared<Flags>();
  CLI::App* connect_cmd = agents->add_subcommand("connect", "Connect an agent by its Agent Alias ARN");
  AddCommonFlags(connect_cmd, &connect->common);
  connect_cmd->add_option("app", connect->app_id, "App id")->required();
  connect_cmd->add_option("--provider", connect->provider, "Provider id")->required();
  connect_cmd->add_option("--alias-arn", connect->alias_arn,
                          "arn:aws:bedrock:REGION:ACCOUNT:agent-alias/AGENT_ID/ALIAS_ID")->required();
  connect_cmd->add_option("--name", connect->name, "Display name")->required();
  connect_cmd->add_option("--description", connect->description, "Description");
  connect_cmd->callback([connect] {
    ApiClient client = Connect(connect->common);
    json body = {{"provider_id", connect->provider}, {"agent_alias_arn", connect->alias_arn},
                 {"name", connect->name}};
    if (!connect->description.empty()) body["description"] = connect->description;
    ApiCallResult result = Must(
        client.Call("POST", "/api/v1/apps/" + Segment(connect->app_id) + "/agents", body), "connecting the agent");
    PrintEntity(client, result.body, {"id", "name", "agent_alias_arn", "status", "warnings"});
  });
  auto list = std::make_shared<Flags>();
  CLI::App* list_cmd = agents->add_subcommand("list", "List the agents of an app");
  AddCommonFlags(list_cmd, &list->common);
  list_cmd->add_option("app", list->app_id, "App id")->required();
  list_cmd->callback([list] {
    ApiClient client = Connect(list->common);
    PrintList(client,
              Must(client.Call("GET", "/api/v1/apps/" + Segment(list->app_id) + "/agents"), "listing agents"),
              {"id", "name", "agent_alias_arn", "status"});
  });
  auto rm = std::make_shared<Flags>();
  CLI::App* rm_cmd = agents->add_subcommand("rm", "Disconnect an agent");
  AddCommonFlags(rm_cmd, &rm->common);
  rm_cmd->add_option("agent", rm->agent, "Agent connection id")->required();
  rm_cmd->callback([rm] {
    ApiClient client = Connect(rm->common);
    Must(client.Call("DELETE", "/api/v1/agents/" + Segment(rm->agent)), "disconnecting the agent");
    std::cout << "disconnected " << rm->agent << "\n";
  });
}

// Sends one message and streams the reply to stdout. Returns false when the
// call failed (the error is printed).
bool ChatTurn(ApiClient& client, const std::string& conversation_id, const std::string& text,
              bool trace) {
  json done;
  bool failed = false;
  std::string path = "/api/v1/conversations/" + Segment(conversation_id) + "/messages";
  if (trace) path += "?trace=true";
  ApiCallResult result = client.Stream("POST", path, {{"text", text}}, [&](const std::string& event, const json& data) {
    if (event == "chunk") {
      std::cout << data.value("text", "") << std::flush;
    } else if (event == "trace") {
      std::cerr << "[trace] " << data.dump() << "\n";
    } else if (event == "return_control") {
      std::cout << "\n[the agent asked the application to run: " << data.dump() << "]";
    } else if (event == "done") {
      done = data;
    } else if (event == "error") {
      const json error = data.value("error", data);
      std::cerr << "\nerror: " << Cell(error, "message") << "\n";
      if (!Cell(error, "hint").empty()) std::cerr << "  hint: " << Cell(error, "hint") << "\n";
      failed = true;
    }
  });
  if (!result.ok()) {
    if (!result.transport_error.empty() || result.status >= 400) {
      const json* error = result.body.is_object() && result.body.contains("error") ? &result.body["error"] : nullptr;
      std::cerr << "error: " << (error ? Cell(*error, "message") : result.transport_error) << "\n";
      if (error && !Cell(*error, "hint").empty()) std::cerr << "  hint: " << Cell(*error, "hint") << "\n";
    }
    return false;
  }
  std::cout << "\n";
  if (done.is_object()) std::cerr << "(" << Cell(done, "latency_ms") << " ms)\n";
  return !failed;
}

void RegisterChat(CLI::App& app) {
  struct Flags {
    CommonFlags common;
    std::string agent, message;
    bool trace = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* chat = app.add_subcommand("chat", "Chat with a connected Bedrock Agent (one session)");
  AddCommonFlags(chat, &flags->common);
  chat->add_option("agent", flags->agent, "Agent connection id")->required();
  chat->add_option("-m,--message", flags->message, "Send one message and exit (no prompt)");
  chat->add_flag("--trace", flags->trace, "Show the agent's trace events");
  chat->callback([flags] {
    ApiClient client = Connect(flags->common);
    ApiCallResult conversation = Must(
        client.Call("POST", "/api/v1/agents/" + Segment(flags->agent) + "/conversations", json::object()),
        "starting the conversation");
    const std::string conversation_id = Cell(conversation.body, "id");
    if (!flags->message.empty()) {
      const bool ok = ChatTurn(client, conversation_id, flags->message, flags->trace);
      client.Call("POST", "/api/v1/conversations/" + Segment(conversation_id) + "/end", json::object());
      if (!ok) throw CLI::RuntimeError(1);
      return;
    }
    std::cerr << "conversation " << conversation_id << " (empty line or Ctrl-D ends it)\n";
    std::string line;
    while (true) {
      std::cout << "> " << std::flush;
      if (!std::getline(std::cin, line) || line.empty()) break;
      ChatTurn(client, conversation_id, line, flags->trace);
    }
    client.Call("POST", "/api/v1/conversations/" + Segment(conversation_id) + "/end", json::object());
  });
}

}  // namespace

void RegisterClientCommands(CLI::App& app) {
  RegisterLogin(app);
  RegisterProviders(app);
  RegisterServices(app);
  RegisterApps(app);
  RegisterRecords(app);
  RegisterAgents(app);
  RegisterChat(app);
}

}  // namespace quarry::cli
