#include "engine/provider_checks.h"

#include <chrono>

#include <spdlog/spdlog.h>

#include "engine/provider_clients.h"

namespace quarry::engine {
namespace {

using nlohmann::json;

// Test Connection answers a person waiting in front of a form: bounded
// tightly, one retry at most.
bedrock::CallOptions TestCallOptions() {
  bedrock::CallOptions o;
  o.connect_timeout = std::chrono::milliseconds(3'000);
  o.attempt_timeout = std::chrono::milliseconds(15'000);
  o.overall_deadline = std::chrono::milliseconds(25'000);
  o.max_attempts = 2;
  return o;
}

int64_t MillisSince(const Clock& clock, MonotonicTime start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock.MonotonicNow() - start).count();
}

double Seconds(int64_t ms) { return static_cast<double>(ms) / 1000.0; }

bool IsAccessProblem(const bedrock::BedrockError& e) {
  const std::string& id = e.troubleshooting.id;
  return id == "access-denied-invoke-model" || id == "model-access-not-granted" ||
         e.status.code() == StatusCode::kPermissionDenied;
}

template <typename T>
void Finish(CheckResult& check, const bedrock::BedrockResult<T>& r, int64_t ms, MetricsRegistry* metrics,
            std::string_view operation, const std::string& request_id) {
  check.latency_ms = ms;
  RecordBedrockCall(metrics, operation, r.ok() ? nullptr : &r.error(), Seconds(ms));
  nlohmann::json line = {{"event", "bedrock_call"},
                         {"operation", operation},
                         {"check", check.name},
                         {"outcome", r.ok() ? std::string("ok") : r.error().aws.code},
                         {"request_id", request_id},
                         {"latency_ms", ms}};
  spdlog::info("{}", line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  if (r.ok()) {
    check.status = "passed";
    return;
  }
  check.status = "failed";
  check.error = r.error();
}

}  // namespace

json CheckResult::ToJson() const {
  json j = {{"name", name},
            {"ok", ok()},
            {"status", status},
            {"latency_ms", status == "skipped" ? json(nullptr) : json(latency_ms)},
            {"detail", detail},
            {"error", nullptr},
            {"troubleshooting", nullptr},
            {"skipped_reason", skipped_reason.empty() ? json(nullptr) : json(skipped_reason)}};
  if (error) {
    json e = BedrockErrorJson(*error);
    j["troubleshooting"] = e["troubleshooting"];
    e.erase("troubleshooting");
    j["error"] = std::move(e);
  }
  return j;
}

bool ConnectionTestReport::ok() const {
  for (const CheckResult& c : checks) {
    if (!c.ok()) return false;
  }
  return true;
}

json ConnectionTestReport::ToJson() const {
  json list = json::array();
  for (const CheckResult& c : checks) list.push_back(c.ToJson());
  return {{"ok", ok()},
          {"status", ok() ? "working" : "failing"},
          {"tested_at", tested_at},
          {"identity_arn", identity_arn.empty() ? json(nullptr) : json(identity_arn)},
          {"checks", list}};
}

json ConnectionTestReport::LastError() const {
  for (const CheckResult& c : checks) {
    if (c.ok() || !c.error) continue;
    json e = BedrockErrorJson(*c.error);
    e["check"] = c.name;
    e["at"] = tested_at;
    return e;
  }
  return nullptr;
}

domain::TestOutcome ConnectionTestReport::Outcome() const {
  domain::TestOutcome o;
  o.status = ok() ? domain::ProviderStatus::kWorking : domain::ProviderStatus::kFailing;
  o.last_error = LastError();
  o.report = ToJson();
  o.identity_arn = identity_arn;
  o.tested_at = tested_at;
  return o;
}

ConnectionTestReport RunConnectionTest(bedrock::BedrockClient& client, const domain::ProviderConfig& config,
                                       const ConnectionTestOptions& options, const Clock& clock,
                                       MetricsRegistry* metrics) {
  ConnectionTestReport report;
  report.tested_at = domain::NowTimestamp(clock);
  const bedrock::CallOptions call_options = TestCallOptions();

  // 1. Credentials.
  CheckResult credentials;
  credentials.name = "credentials";
  if (config.kind == domain::CredentialKind::kApiKey) {
    credentials.status = "skipped";
    credentials.skipped_reason =
        "A Bedrock API key has no IAM identity STS can show; the catalogue check below proves the key works.";
  } else {
    MonotonicTime start = clock.MonotonicNow();
    bedrock::BedrockResult<bedrock::CallerIdentity> r = client.GetCallerIdentity(call_options);
    Finish(credentials, r, MillisSince(clock, start), metrics, "GetCallerIdentity", options.request_id);
    if (r.ok()) {
      report.identity_arn = r.value().arn;
      credentials.detail = {{"identity_arn", r.value().arn}, {"account", r.value().account}};
    }
  }
  const bool credentials_failed = credentials.status == "failed";
  report.checks.push_back(std::move(credentials));

  // 2. Catalogue.
  CheckResult catalogue;
  catalogue.name = "catalogue";
  if (credentials_failed) {
    catalogue.status = "skipped";
    catalogue.skipped_reason = "The credentials check failed; fix the credentials first.";
  } else {
    MonotonicTime start = clock.MonotonicNow();
    bedrock::BedrockResult<bedrock::ModelCatalogue> r = client.ListCatalogue(call_options);
    Finish(catalogue, r, MillisSince(clock, start), metrics, "ListCatalogue", options.request_id);
    if (r.ok()) {
      int claude = 0, profiles = 0, models = 0;
      for (const bedrock::CatalogueTarget& t : r.value().targets) {
        if (t.kind == bedrock::TargetKind::kFoundationModel) {
          ++models;
          if (t.id.find("anthropic.claude") != std::string::npos) ++claude;
        } else {
          ++profiles;
        }
      }
      catalogue.detail = {{"region", r.value().region},
                          {"foundation_models", models},
                          {"claude_models", claude},
                          {"inference_profiles", profiles}};
      report.catalogue = r.value();
    }
  }
  report.checks.push_back(std::move(catalogue));

  // 3. One-token InvokeModel, on request.
  if (!options.invoke_model.empty()) {
    CheckResult invoke;
    invoke.name = "invoke_model";
    std::string target = options.invoke_model;
    invoke.detail = {{"model", options.invoke_model}};
    if (report.catalogue) {
      const bedrock::CatalogueTarget* t = report.catalogue->Find(options.invoke_model);
      if (t != nullptr && t->kind == bedrock::TargetKind::kFoundationModel && t->requires_profile &&
          !t->recommended_profile_id.empty()) {
        target = t->recommended_profile_id;
        invoke.detail["note"] = options.invoke_model + " runs only through an inference profile in " + config.region +
                                "; called " + target + " instead.";
      }
    }
    invoke.detail["invoked"] = target;
    if (credentials_failed) {
      invoke.status = "skipped";
      invoke.skipped_reason = "The credentials check failed; fix the credentials first.";
    } else {
      bedrock::ModelRequest request;
      request.model_id = target;
      request.max_tokens = 1;
      request.messages.push_back(bedrock::ChatMessage::User("ping"));
      request.options = call_options;
      MonotonicTime start = clock.MonotonicNow();
      bedrock::BedrockResult<bedrock::ModelResult> r = client.InvokeModel(request);
      Finish(invoke, r, MillisSince(clock, start), metrics, "InvokeModel", options.request_id);
      if (r.ok()) {
        RecordBedrockTokens(metrics, target, r.value().usage);
        invoke.detail["stop_reason"] = r.value().stop_reason;
        invoke.detail["input_tokens"] = r.value().usage.input_tokens;
        invoke.detail["output_tokens"] = r.value().usage.output_tokens;
      } else if (IsAccessProblem(r.error())) {
        report.unusable_targets.push_back(target);
      }
    }
    report.checks.push_back(std::move(invoke));
  }
  return report;
}

}  // namespace quarry::engine
