#pragma once
// Test Connection: the checks that prove a provider works, each run and
// reported separately, each with its troubleshooting entry on failure.
//
//   credentials  STS GetCallerIdentity: are the credentials valid, and whose
//                are they (the identity ARN). Skipped for a Bedrock API key,
//                which STS does not accept (the catalogue check proves it).
//   catalogue    ListFoundationModels + ListInferenceProfiles: may this
//                identity read the model catalogue of the region; the merged
//                catalogue is returned for caching.
//   invoke_model only on request: a one-token InvokeModel on the model or
//                profile the caller chose (a foundation model that runs only
//                through a profile is called through the region's profile).
//
// When the credentials check fails the others are skipped (they would fail
// the same way). The provider is "working" when every check that ran passed.
//
// Thread safety: RunConnectionTest blocks the calling thread (Bedrock's
// blocking wrappers): call it from an API worker, never from a client
// callback.

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bedrock/client.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "domain/providers.h"

namespace quarry::engine {

struct ConnectionTestOptions {
  std::string invoke_model{};  // "" = no invoke check
  std::string request_id{};    // for the log lines
};

struct CheckResult {
  std::string name{};    // "credentials" | "catalogue" | "invoke_model"
  std::string status{};  // "passed" | "failed" | "skipped"
  int64_t latency_ms = 0;
  nlohmann::json detail = nlohmann::json::object();
  std::optional<bedrock::BedrockError> error{};
  std::string skipped_reason{};

  bool ok() const { return status != "failed"; }
  // {"name","ok","status","latency_ms","detail","error","troubleshooting","skipped_reason"}
  nlohmann::json ToJson() const;
};

struct ConnectionTestReport {
  std::vector<CheckResult> checks{};
  std::string identity_arn{};
  std::optional<bedrock::ModelCatalogue> catalogue{};
  std::vector<std::string> unusable_targets{};  // targets an AccessDenied showed unusable
  std::string tested_at{};

  bool ok() const;
  // {"ok","status":"working"|"failing","tested_at","identity_arn","checks":[...]}
  nlohmann::json ToJson() const;
  // The first failed check as {"check","code","message","hint","troubleshooting","at"}, or null.
  nlohmann::json LastError() const;
  domain::TestOutcome Outcome() const;
};

ConnectionTestReport RunConnectionTest(bedrock::BedrockClient& client, const domain::ProviderConfig& config,
                                       const ConnectionTestOptions& options, const Clock& clock,
                                       MetricsRegistry* metrics);

}  // namespace quarry::engine
