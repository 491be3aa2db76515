// Routes of AI Providers, their model catalogue, and AI Services (with the
// streaming "try it"). Thin: parse, call the domain and the engine, shape
// JSON. Mutations of providers and services need Access::kProviderEditor (an
// admin whose e-mail domain is verified), as the seed requires.
//
//   GET    /api/v1/providers                         list (?status=working)
//   POST   /api/v1/providers                         create (status untested)
//   GET    /api/v1/providers/{provider_id}
//   PATCH  /api/v1/providers/{provider_id}           update; new credentials are tested first
//   DELETE /api/v1/providers/{provider_id}
//   POST   /api/v1/providers/{provider_id}/test      Test Connection
//   GET    /api/v1/providers/{provider_id}/models    catalogue (?refresh=true, ?all=true)
//   GET    /api/v1/services                          list (?provider_id=)
//   POST   /api/v1/services
//   GET    /api/v1/services/{service_id}
//   PATCH  /api/v1/services/{service_id}
//   DELETE /api/v1/services/{service_id}
//   POST   /api/v1/services/{service_id}/try         SSE: delta*, done | error

#include <memory>
#include <mutex>

#include "api/api.h"
#include "api/provider_support.h"
#include "bedrock/client.h"
#include "common/encoding.h"
#include "domain/providers.h"
#include "domain/services.h"
#include "engine/provider_checks.h"
#include "engine/provider_clients.h"

namespace quarry::api {
namespace {

using nlohmann::json;
namespace ps = provider_support;

constexpr size_t kMaxPromptLength = 100'000;

std::string ProviderLocation(const std::string& id) { return "/api/v1/providers/" + id; }
std::string ServiceLocation(const std::string& id) { return "/api/v1/services/" + id; }

// The body as JSON, or {} when empty (for POSTs whose body is optional).
Result<json> OptionalJsonBody(const ApiRequest& request) {
  if (TrimAsciiWhitespace(request.body).empty()) return json::object();
  return request.JsonBody();
}

// A handle of an asynchronous Bedrock call that callbacks may cancel (when
// the client of the stream went away) before or after the handle is known.
class Cancellable {
 public:
  void Set(bedrock::CallHandle handle) {
    std::lock_guard<std::mutex> lock(mutex_);
    handle_ = std::move(handle);
    if (cancel_) handle_.Cancel();
  }
  void Cancel() {
    std::lock_guard<std::mutex> lock(mutex_);
    cancel_ = true;
    handle_.Cancel();
  }
  // Breaks the cycle handle -> call state -> callbacks -> this.
  void Reset() {
    std::lock_guard<std::mutex> lock(mutex_);
    handle_ = bedrock::CallHandle();
  }

 private:
  std::mutex mutex_;
  bedrock::CallHandle handle_;
  bool cancel_ = false;
};

// ---------------------------------------------------------------------------
// Providers
// ---------------------------------------------------------------------------

Result<ApiResponse> ListProvidersRoute(ServerContext& context, ApiRequest& request) {
  QUARRY_ASSIGN_OR_RETURN(domain::PageRequest page, ps::PageFrom(request));
  std::string status = request.QueryParam("status");
  if (!status.empty()) {
    domain::ProviderStatus parsed;
    if (!domain::ParseProviderStatus(status, &parsed)) {
      return InvalidArgumentError("status must be untested, working or failing");
    }
  }
  domain::Page<domain::Provider> providers;
  QUARRY_RETURN_IF_ERROR(context.db->Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(providers, domain::ListProviders(tx, request.who().org_id, page, status));
    return Status::Ok();
  }));
  const int days = ps::RotationDays(context, request.who().org_id);
  const WallTime now = context.clock->Now();
  return ApiResponse::Json(
      ps::PageJson(providers, [&](const domain::Provider& p) { return domain::ProviderToJson(p, now, days); }));
}

// Builds (and drops) a client for a configuration, so a bad endpoint or
// region is refused at save time rather than at the first call.
std::optional<ApiError> CheckBuildable(ServerContext& context, const domain::ProviderDraft& draft) {
  engine::ProviderClientSpec spec{"", draft.config, draft.secrets};
  Result<std::unique_ptr<bedrock::BedrockClient>> client = context.provider_clients->BuildUnsaved(spec);
  if (client.ok()) return std::nullopt;
  ApiError error;
  error.http_status = 400;
  error.code = "invalid_provider_configuration";
  error.message = "this configuration cannot make a Bedrock client: " + client.status().message();
  error.hint = "Check the region and the endpoint URLs.";
  return error;
}

Result<ApiResponse> CreateProviderRoute(ServerContext& context, ApiRequest& request) {
  QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
  domain::ProviderInput input;
  if (auto e = domain::ParseProviderInput(body, /*create=*/true, &input)) return ps::FieldErrorResponse(*e);
  domain::ProviderDraft draft;
  if (auto e = domain::ApplyProviderInput(nullptr, nullptr, input, &draft)) return ps::FieldErrorResponse(*e);
  if (auto e = CheckBuildable(context, draft)) return ApiResponse::Error(*e);
  domain::Provider provider;
  QUARRY_RETURN_IF_ERROR(context.db->Write([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(provider, domain::CreateProvider(tx, *context.secrets, *context.clock, request.who(),
                                                             draft, request.request_id));
    return Status::Ok();
  }));
  return ApiResponse::Created(ps::ProviderJson(context, provider), ProviderLocation(provider.id), provider.version);
}

Result<ApiResponse> GetProviderRoute(ServerContext& context, ApiRequest& request) {
  QUARRY_ASSIGN_OR_RETURN(domain::Provider provider,
                          ps::LoadProvider(context, request.who().org_id, request.path_params.at("provider_id")));
  return ApiResponse::Entity(ps::ProviderJson(context, provider), provider.version);
}

// Runs Test Connection with a client and stores nothing.
engine::ConnectionTestReport RunTest(ServerContext& context, bedrock::BedrockClient& client,
                                     const domain::ProviderConfig& config, const std::string& invoke_model,
                                     const std::string& request_id) {
  engine::ConnectionTestOptions options;
  options.invoke_model = invoke_model;
  options.request_id = request_id;
  return engine::RunConnectionTest(client, config, options, *context.clock, context.metrics.get());
}

// Caches what a test learnt: the catalogue and the unusable targets.
Status KeepTestFacts(store::Tx& tx, const domain::Provider& provider, const engine::ConnectionTestReport& report) {
  if (report.catalogue) {
    QUARRY_RETURN_IF_ERROR(domain::PutCachedCatalogue(tx, provider, report.catalogue->ToJson(), report.tested_at));
  }
  for (const std::string& target : report.unusable_targets) {
    QUARRY_RETURN_IF_ERROR(domain::MarkTargetUnusable(tx, provider, target));
  }
  return Status::Ok();
}

// {"invoke_model": "..."} from a test body.
std::optional<domain::FieldError> ParseTestOptions(const json& body, std::string_view where, std::string* invoke) {
  if (auto e = domain::CheckKnownMembers(body, where, {"invoke_model"})) return e;
  auto it = body.find("invoke_model");
  if (it == body.end() || it->is_null()) return std::nullopt;
  std::string field = where.empty() ? "invoke_model" : std::string(where) + ".invoke_model";
  if (!it->is_string() || it->get<std::string>().empty() || it->get<std::string>().size() > 2048) {
    domain::FieldError e;
    e.field = field;
    e.message = field + " must be a model id, inference profile id or ARN";
    e.hint = "Pick one from GET /api/v1/providers/{provider_id}/models, e.g. anthropic.claude-3-haiku-20240307-v1:0.";
    return e;
  }
  *invoke = it->get<std::string>();
  return std::nullopt;
}

Result<ApiResponse> PatchProviderRoute(ServerContext& context, ApiRequest& request) {
  const std::string& id = request.path_params.at("provider_id");
  QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
  std::string invoke_model;
  if (auto it = body.find("test"); it != body.end()) {
    if (!it->is_null()) {
      if (auto e = ParseTestOptions(*it, "test", &invoke_model)) return ps::FieldErrorResponse(*e);
    }
    body.erase("test");
  }
  domain::ProviderInput input;
  if (auto e = domain::ParseProviderInput(body, /*create=*/false, &input)) return ps::FieldErrorResponse(*e);

  domain::Provider before;
  domain::ProviderSecrets before_secrets;
  QUARRY_RETURN_IF_ERROR(context.db->Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(before, domain::GetProvider(tx, request.who().org_id, id));
    QUARRY_ASSIGN_OR_RETURN(before_secrets, domain::LoadProviderSecrets(tx, *context.secrets, before));
    return Status::Ok();
  }));
  QUARRY_RETURN_IF_ERROR(CheckIfMatch(request, before.version));
  domain::ProviderDraft draft;
  if (auto e = domain::ApplyProviderInput(&before, &before_secrets, input, &draft)) return ps::FieldErrorResponse(*e);
  if (auto e = CheckBuildable(context, draft)) return ApiResponse::Error(*e);

  std::optional<domain::TestOutcome> tested;
  std::optional<engine::ConnectionTestReport> report;
  if (draft.credentials_changed) {
    // Prove the new credentials before the old ones are dropped: a client
    // made from the unsaved configuration runs the whole test.
    engine::ProviderClientSpec spec{before.id, draft.config, draft.secrets};
    QUARRY_ASSIGN_OR_RETURN(std::unique_ptr<bedrock::BedrockClient> client,
                            context.provider_clients->BuildUnsaved(spec));
    report = RunTest(context, *client, draft.config, invoke_model, request.request_id);
    client.reset();
    if (!report->ok()) {
      ApiError error;
      error.http_status = 409;
      error.code = "credentials_test_failed";
      json last = report->LastError();
      error.message = "the new credentials failed Test Connection (" + last.value("check", std::string("test")) +
                      ": " + last.value("message", std::string("failed")) +
                      "); nothing was changed and the old credentials stay in use";
      error.hint = last.value("hint", std::string());
      error.details = {{"test", report->ToJson()}};
      return ApiResponse::Error(error);
    }
    tested = report->Outcome();
  }
  domain::Provider after;
  QUARRY_RETURN_IF_ERROR(context.db->Write([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(after, domain::UpdateProvider(tx, *context.secrets, *context.clock, request.who(), before,
                                                          draft, tested, request.request_id));
    if (report) QUARRY_RETURN_IF_ERROR(KeepTestFacts(tx, after, *report));
    return Status::Ok();
  }));
  context.provider_clients->Invalidate(after.id);
  json out = ps::ProviderJson(context, after);
  if (report) out["test"] = report->ToJson();
  return ApiResponse::Entity(out, after.version);
}

Result<ApiResponse> DeleteProviderRoute(ServerContext& context, ApiRequest& request) {
  const std::string& id = request.path_params.at("provider_id");
  QUARRY_RETURN_IF_ERROR(context.db->Write([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(domain::Provider provider, domain::GetProvider(tx, request.who().org_id, id));
    QUARRY_RETURN_IF_ERROR(CheckIfMatch(request, provider.version));
    return domain::DeleteProvider(tx, *context.secrets, *context.clock, request.who(), provider, request.request_id);
  }));
  context.provider_clients->Invalidate(id);
  return ApiResponse::NoContent();
}

Result<ApiResponse> TestProviderRoute(ServerContext& context, ApiRequest& request) {
  const std::string& id = request.path_params.at("provider_id");
  QUARRY_ASSIGN_OR_RETURN(json body, OptionalJsonBody(request));
  std::string invoke_model;
  if (auto e = ParseTestOptions(body, "", &invoke_model)) return ps::FieldErrorResponse(*e);
  QUARRY_ASSIGN_OR_RETURN(domain::Provider provider, ps::LoadProvider(context, request.who().org_id, id));
  QUARRY_ASSIGN_OR_RETURN(std::shared_ptr<bedrock::BedrockClient> client,
                          context.provider_clients->ForProvider(provider.org_id, provider.id));
  engine::ConnectionTestReport report = RunTest(context, *client, provider.config, invoke_model, request.request_id);
  client.reset();
  domain::TestOutcome outcome = report.Outcome();
  QUARRY_RETURN_IF_ERROR(context.db->Write([&](store::Tx& tx) -> Status {
    QUARRY_RETURN_IF_ERROR(
        domain::RecordProviderTest(tx, *context.clock, request.who(), provider, outcome, request.request_id));
    return KeepTestFacts(tx, provider, report);
  }));
  QUARRY_ASSIGN_OR_RETURN(provider, ps::LoadProvider(context, request.who().org_id, id));
  json out = report.ToJson();
  out["provider"] = ps::ProviderJson(context, provider);
  return ApiResponse::Json(out);
}

Result<ApiResponse> ModelsRoute(ServerContext& context, ApiRequest& request) {
  const std::string& id = request.path_params.at("provider_id");
  const std::string refresh = request.QueryParam("refresh", "false");
  const std::string all = request.QueryParam("all", "false");
  for (const auto& [name, value] : {std::pair{"refresh", refresh}, std::pair{"all", all}}) {
    if (value != "true" && value != "false") {
      return InvalidArgumentError(std::string(name) + " must be true or false");
    }
  }
  QUARRY_ASSIGN_OR_RETURN(domain::Provider provider, ps::LoadProvider(context, request.who().org_id, id));
  std::optional<bedrock::BedrockError> bedrock_error;
  Result<ps::CatalogueLoad> load =
      ps::LoadCatalogue(context, provider, refresh == "true", request.request_id, &bedrock_error);
  if (bedrock_error) return ApiResponse::Error(ApiError::FromBedrock(*bedrock_error));
  if (!load.ok()) return load.status();
  json out = domain::ModelsView(provider, load->cached, all == "true");
  out["cached"] = !load->fetched;
  return ApiResponse::Json(out);
}

// ---------------------------------------------------------------------------
// Services
// ---------------------------------------------------------------------------

Result<ApiResponse> ListServicesRoute(ServerContext& context, ApiRequest& request) {
  QUARRY_ASSIGN_OR_RETURN(domain::PageRequest page, ps::PageFrom(request));
  const std::string provider_id = request.QueryParam("provider_id");
  domain::Page<domain::Service> services;
  QUARRY_RETURN_IF_ERROR(context.db->Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(services, domain::ListServices(tx, request.who().org_id, page, provider_id));
    return Status::Ok();
  }));
  return ApiResponse::Json(ps::PageJson(services, domain::ServiceToJson));
}

// Resolves `model` for `provider` (which must be working) through its
// catalogue. Either `choice` is filled or `response` holds the error reply.
Status ResolveModel(ServerContext& context, const ApiRequest& request, const domain::Provider& provider,
                    const std::string& model, domain::ModelChoice* choice, std::optional<ApiResponse>* response) {
  if (auto e = ps::RequireWorking(provider, "AI Services")) {
    *response = ApiResponse::Error(*e);
    return Status::Ok();
  }
  std::optional<bedrock::BedrockError> bedrock_error;
  Result<ps::CatalogueLoad> load = ps::LoadCatalogue(context, provider, false, request.request_id, &bedrock_error);
  if (bedrock_error) {
    *response = ApiResponse::Error(ApiError::FromBedrock(*bedrock_error));
    return Status::Ok();
  }
  QUARRY_RETURN_IF_ERROR(load.status());
  std::optional<domain::FieldError> e = domain::ResolveModelChoice(load->cached, provider.config.region, model, choice);
  if (e && e->code == "model_not_available" && !load->fetched) {
    // The cache may predate a model being enabled: look again once.
    load = ps::LoadCatalogue(context, provider, true, request.request_id, &bedrock_error);
    if (bedrock_error) {
      *response = ApiResponse::Error(ApiError::FromBedrock(*bedrock_error));
      return Status::Ok();
    }
    QUARRY_RETURN_IF_ERROR(load.status());
    e = domain::ResolveModelChoice(load->cached, provider.config.region, model, choice);
  }
  if (e) *response = ps::FieldErrorResponse(*e);
  return Status::Ok();
}

Result<ApiResponse> CreateServiceRoute(ServerContext& context, ApiRequest& request) {
  QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
  domain::ServiceInput input;
  if (auto e = domain::ParseServiceInput(body, /*create=*/true, &input)) return ps::FieldErrorResponse(*e);
  Result<domain::Provider> provider = ps::LoadProvider(context, request.who().org_id, *input.provider_id);
  if (!provider.ok()) {
    if (provider.status().code() != StatusCode::kNotFound) return provider.status();
    domain::FieldError e;
    e.field = "provider_id";
    e.code = "provider_not_found";
    e.message = provider.status().message();
    return ps::FieldErrorResponse(e);
  }
  domain::ModelChoice choice;
  std::optional<ApiResponse> refusal;
  QUARRY_RETURN_IF_ERROR(ResolveModel(context, request, *provider, *input.model, &choice, &refusal));
  if (refusal) return std::move(*refusal);
  domain::Service service;
  if (auto e = domain::ApplyServiceInput(nullptr, input, &choice, &service)) return ps::FieldErrorResponse(*e);
  QUARRY_RETURN_IF_ERROR(context.db->Write([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(service,
                            domain::CreateService(tx, *context.clock, request.who(), service, request.request_id));
    return Status::Ok();
  }));
  return ApiResponse::Created(domain::ServiceToJson(service), ServiceLocation(service.id), service.version);
}

Result<ApiResponse> GetServiceRoute(ServerContext& context, ApiRequest& request) {
  domain::Service service;
  QUARRY_RETURN_IF_ERROR(context.db->Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(service,
                            domain::GetService(tx, request.who().org_id, request.path_params.at("service_id")));
    return Status::Ok();
  }));
  return ApiResponse::Entity(domain::ServiceToJson(service), service.version);
}

Result<ApiResponse> PatchServiceRoute(ServerContext& context, ApiRequest& request) {
  QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
  domain::ServiceInput input;
  if (auto e = domain::ParseServiceInput(body, /*create=*/false, &input)) return ps::FieldErrorResponse(*e);
  domain::Service before;
  QUARRY_RETURN_IF_ERROR(context.db->Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(before,
                            domain::GetService(tx, request.who().org_id, request.path_params.at("service_id")));
    return Status::Ok();
  }));
  QUARRY_RETURN_IF_ERROR(CheckIfMatch(request, before.version));
  const bool provider_changes = input.provider_id && *input.provider_id != before.provider_id;
  const bool model_changes = input.model && *input.model != before.model_id;
  std::optional<domain::ModelChoice> choice;
  if (provider_changes || model_changes) {
    const std::string provider_id = input.provider_id.value_or(before.provider_id);
    Result<domain::Provider> provider = ps::LoadProvider(context, request.who().org_id, provider_id);
    if (!provider.ok()) {
      if (provider.status().code() != StatusCode::kNotFound) return provider.status();
      domain::FieldError e;
      e.field = "provider_id";
      e.code = "provider_not_found";
      e.message = provider.status().message();
      return ps::FieldErrorResponse(e);
    }
    choice.emplace();
    std::optional<ApiResponse> refusal;
    QUARRY_RETURN_IF_ERROR(
        ResolveModel(context, request, *provider, input.model.value_or(before.model_id), &*choice, &refusal));
    if (refusal) return std::move(*refusal);
  }
  domain::Service updated;
  if (auto e = domain::ApplyServiceInput(&before, input, choice ? &*choice : nullptr, &updated)) {
    return ps::FieldErrorResponse(*e);
  }
  QUARRY_RETURN_IF_ERROR(context.db->Write([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(updated, domain::UpdateService(tx, *context.clock, request.who(), before, updated,
                                                           request.request_id));
    return Status::Ok();
  }));
  return ApiResponse::Entity(domain::ServiceToJson(updated), updated.version);
}

Result<ApiResponse> DeleteServiceRoute(ServerContext& context, ApiRequest& request) {
  QUARRY_RETURN_IF_ERROR(context.db->Write([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(domain::Service service,
                            domain::GetService(tx, request.who().org_id, request.path_params.at("service_id")));
    QUARRY_RETURN_IF_ERROR(CheckIfMatch(request, service.version));
    return domain::DeleteService(tx, *context.clock, request.who(), service, request.request_id);
  }));
  return ApiResponse::NoContent();
}

// POST /services/{id}/try: {"prompt", "system"?} -> event: delta {text} ...,
// event: done {text, usage, latency_ms, stop_reason, model, request_id}.
Status TryServiceRoute(ServerContext& context, ApiRequest& request, std::shared_ptr<SseStream> stream) {
  QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
  if (auto e = domain::CheckKnownMembers(body, "", {"prompt", "system"})) {
    stream->Fail(ps::FromFieldError(*e));
    return Status::Ok();
  }
  auto prompt_it = body.find("prompt");
  if (prompt_it == body.end() || !prompt_it->is_string() || prompt_it->get<std::string>().empty()) {
    domain::FieldError e;
    e.field = "prompt";
    e.message = "prompt is required";
    e.hint = "Send {\"prompt\": \"...\"} with the text to send to the model.";
    stream->Fail(ps::FromFieldError(e));
    return Status::Ok();
  }
  std::string prompt = prompt_it->get<std::string>();
  if (prompt.size() > kMaxPromptLength) return InvalidArgumentError("prompt is longer than 100,000 characters");
  std::optional<std::string> system;
  if (auto it = body.find("system"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) return InvalidArgumentError("system must be a string");
    system = it->get<std::string>();
  }

  domain::Service service;
  QUARRY_RETURN_IF_ERROR(context.db->Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(service,
                            domain::GetService(tx, request.who().org_id, request.path_params.at("service_id")));
    return Status::Ok();
  }));
  QUARRY_ASSIGN_OR_RETURN(std::shared_ptr<bedrock::BedrockClient> client,
                          context.provider_clients->ForProvider(service.org_id, service.provider_id));

  bedrock::ModelRequest model_request;
  model_request.model_id = service.invocation_target;
  model_request.system = system.value_or(service.system_prompt);
  model_request.messages.push_back(bedrock::ChatMessage::User(std::move(prompt)));
  model_request.max_tokens = static_cast<int>(service.max_tokens);
  model_request.temperature = service.temperature;
  model_request.top_p = service.top_p;
  model_request.stop_sequences = service.stop_sequences;
  model_request.options.overall_deadline = std::chrono::milliseconds(180'000);

  auto cancellable = std::make_shared<Cancellable>();
  std::shared_ptr<MetricsRegistry> metrics = context.metrics;
  std::shared_ptr<const Clock> clock = context.clock;
  const MonotonicTime start = clock->MonotonicNow();
  const std::string request_id = request.request_id;
  const std::string provider_id = service.provider_id;
  const std::string target = service.invocation_target;

  auto on_delta = [stream, cancellable](const bedrock::StreamDelta& delta) {
    if (delta.kind != bedrock::StreamDelta::Kind::kText || delta.text.empty()) return;
    if (!stream->Send("delta", {{"text", delta.text}})) cancellable->Cancel();
  };
  // The completion keeps `client` (a non-owning share, see ProviderClients)
  // so the provider's client stays cached for the call.
  auto done = [stream, cancellable, metrics, clock, start, request_id, provider_id, target,
               client](bedrock::BedrockResult<bedrock::ModelResult> r) {
    cancellable->Reset();
    const int64_t ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(clock->MonotonicNow() - start).count();
    engine::RecordBedrockCall(metrics.get(), "InvokeModelWithResponseStream", r.ok() ? nullptr : &r.error(),
                              static_cast<double>(ms) / 1000.0);
    ps::LogBedrockCall("InvokeModelWithResponseStream", request_id, provider_id, r.ok() ? nullptr : &r.error(), ms);
    if (!r.ok()) {
      stream->Fail(ApiError::FromBedrock(r.error()));
      return;
    }
    engine::RecordBedrockTokens(metrics.get(), target, r.value().usage);
    stream->Send("done", {{"text", r.value().text},
                          {"usage",
                           {{"input_tokens", r.value().usage.input_tokens},
                            {"output_tokens", r.value().usage.output_tokens}}},
                          {"latency_ms", ms},
                          {"stop_reason", r.value().stop_reason},
                          {"model", target},
                          {"request_id", r.value().request_id},
                          {"quarry_request_id", request_id},
                          {"provider_id", provider_id}});
    stream->Close();
  };
  cancellable->Set(client->InvokeModelWithResponseStream(model_request, on_delta, done));
  return Status::Ok();
}

}  // namespace

void RegisterProviderRoutes(Router& router, ServerContext& context) {
  ServerContext* c = &context;
  auto h = [c](Result<ApiResponse> (*fn)(ServerContext&, ApiRequest&)) {
    return [c, fn](ApiRequest& request) { return fn(*c, request); };
  };
  router.Add("GET", "/api/v1/providers", Access::kAuthenticated, h(ListProvidersRoute));
  router.Add("POST", "/api/v1/providers", Access::kProviderEditor, h(CreateProviderRoute));
  router.Add("GET", "/api/v1/providers/{provider_id}", Access::kAuthenticated, h(GetProviderRoute));
  router.Add("PATCH", "/api/v1/providers/{provider_id}", Access::kProviderEditor, h(PatchProviderRoute));
  router.Add("DELETE", "/api/v1/providers/{provider_id}", Access::kProviderEditor, h(DeleteProviderRoute));
  router.Add("POST", "/api/v1/providers/{provider_id}/test", Access::kProviderEditor, h(TestProviderRoute));
  router.Add("GET", "/api/v1/providers/{provider_id}/models", Access::kAuthenticated, h(ModelsRoute));
  router.Add("GET", "/api/v1/services", Access::kAuthenticated, h(ListServicesRoute));
  router.Add("POST", "/api/v1/services", Access::kProviderEditor, h(CreateServiceRoute));
  router.Add("GET", "/api/v1/services/{service_id}", Access::kAuthenticated, h(GetServiceRoute));
  router.Add("PATCH", "/api/v1/services/{service_id}", Access::kProviderEditor, h(PatchServiceRoute));
  router.Add("DELETE", "/api/v1/services/{service_id}", Access::kProviderEditor, h(DeleteServiceRoute));
  router.AddStream("POST", "/api/v1/services/{service_id}/try", Access::kBuilder,
                   [c](ApiRequest& request, std::shared_ptr<SseStream> stream) {
                     return TryServiceRoute(*c, request, std::move(stream));
                   });
}

}  // namespace quarry::api
