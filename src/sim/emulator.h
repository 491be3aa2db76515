#pragma once
// The Bedrock emulator's request handler: the server side of the five
// services Quarry calls, on one port, routed by method and path
// (aws-protocol.md §2), behind SigV4 (or Bedrock API key) authentication and
// IAM-style policies, with per-account quotas and scripted faults.
//
//   bedrock-runtime        POST /model/{modelId}/invoke | invoke-with-response-stream | converse | converse-stream
//   bedrock-agent-runtime  POST /agents/{agentId}/agentAliases/{aliasId}/sessions/{sessionId}/text
//   bedrock                GET  /foundation-models[/{id}], /inference-profiles[/{id}]
//   bedrock-agent          GET  /agents/{agentId}/, /agents/{agentId}/agentaliases/{aliasId}/
//                          POST /agents/{agentId}/agentaliases/   (ListAgentAliases)
//   sts                    POST /  (query protocol: GetCallerIdentity, AssumeRole)
//   admin (no auth)        /_quarry/healthz, counters, requests, faults, reset
//
// The region is the one in the request's credential scope (it must be a
// served region); the signing name must be `bedrock` for the Bedrock
// services and `sts` for STS. Path segments are percent-decoded after
// splitting on '/', the signature is verified over the raw path.
//
// Handle() never blocks: every delay (latency faults, time to first byte,
// delays between stream events) is part of the returned HttpResponse script.
//
// Thread safety: Handle() and the admin methods may be called concurrently;
// mutable state (temporary credentials, quotas, faults, counters, the request
// log, agent sessions) is guarded by mutexes.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aws/sigv4_verifier.h"
#include "common/clock.h"
#include "net/http_server.h"
#include "sim/agent_model.h"
#include "sim/world.h"

namespace quarry::sim {

class Emulator {
 public:
  // `clock` must outlive the emulator (signature skew, credential expiry,
  // quota windows, agent sessions).
  Emulator(WorldConfig world, const Clock& clock);
  ~Emulator();
  Emulator(const Emulator&) = delete;
  Emulator& operator=(const Emulator&) = delete;

  // Turns one request into a response script.
  net::HttpResponse Handle(const net::HttpServerRequest& request);

  // Admin operations (also reachable over HTTP under /_quarry/).
  // {"total": N, "operations": {"InvokeModel": {"ok": 3, "ThrottlingException": 1}, ...}}
  nlohmann::json CountersJson() const;
  // {"requests": [{"time", "operation", "identity", "target", "status", "error_code", "request_id"}, ...]}
  nlohmann::json RequestLogJson() const;
  nlohmann::json FaultsJson() const;
  void AddFault(FaultRule rule);
  void ClearFaults();
  // Clears counters, the request log, quota windows and agent sessions.
  void Reset();
  // Calls that reached the emulator for `operation` (all outcomes).
  int64_t CallCount(std::string_view operation) const;

  const WorldConfig& world() const { return world_; }

 private:
  struct Identity;
  struct Call;
  struct FaultState {
    FaultRule rule;
    int64_t remaining = -1;  // for count rules
  };
  struct TempCredential {
    std::string secret;
    std::string session_token;
    WallTime expiration;
    std::string account;
    std::string role_name;
    std::string session_name;
  };
  struct LongTermKey {
    std::string secret;
    std::string account;
    std::string user;
  };

  net::HttpResponse Dispatch(Call& call, const net::HttpServerRequest& request);
  net::HttpResponse HandleAdmin(const net::HttpServerRequest& request, std::string_view path);
  std::optional<aws::KnownAccessKey> LookupKey(std::string_view access_key_id) const;

  // Operations.
  net::HttpResponse InvokeRuntime(Call& call, const net::HttpServerRequest& request);
  net::HttpResponse InvokeAgent(Call& call, const net::HttpServerRequest& request);
  net::HttpResponse ListFoundationModels(Call& call);
  net::HttpResponse GetFoundationModel(Call& call);
  net::HttpResponse ListInferenceProfiles(Call& call);
  net::HttpResponse GetInferenceProfile(Call& call);
  net::HttpResponse GetAgent(Call& call);
  net::HttpResponse GetAgentAlias(Call& call);
  net::HttpResponse ListAgentAliases(Call& call, const net::HttpServerRequest& request);
  net::HttpResponse Sts(Call& call, const net::HttpServerRequest& request);

  // Helpers.
  bool Authorize(Call& call, std::string_view action, std::string_view resource);
  std::vector<FaultRule> DrawFaults(const Call& call);
  // What the call's fault rules do: the latency to add before the response
  // (and between stream events), the failure to answer with instead, and for
  // streams the rule that breaks the stream part-way.
  struct FaultPlan {
    int64_t delay_ms = 0;
    int64_t chunk_delay_ms = 0;
    std::optional<net::HttpResponse> failure;
    std::optional<FaultRule> stream_fault;
  };
  FaultPlan PlanFaults(Call& call, bool stream);
  int64_t DrawLatency(const FaultRule& rule);
  uint64_t NextRandom();
  bool QuotaAdmit(const std::string& account, const std::string& model);
  void QuotaCharge(const std::string& account, const std::string& model, int64_t tokens);
  void Record(const Call& call, const net::HttpResponse& response);

  const WorldConfig world_;
  const KnowledgeIndex knowledge_{world_.knowledge_bases};  // of world_, for InvokeAgent
  const Clock& clock_;
  std::map<std::string, LongTermKey> long_term_keys_;
  std::map<std::string, std::string> bearer_tokens_;  // token -> "account/user"
  std::map<std::string, std::unique_ptr<aws::SigV4Verifier>> verifiers_;  // "region/service"
  aws::SigningKeyCache key_cache_;

  mutable std::mutex temp_mutex_;
  std::map<std::string, TempCredential> temp_credentials_;

  mutable std::mutex fault_mutex_;
  std::vector<FaultState> faults_;
  uint64_t rng_state_;

  std::mutex quota_mutex_;
  struct QuotaWindow {
    int64_t minute = -1;
    int64_t requests = 0;
    int64_t tokens = 0;
  };
  std::map<std::string, QuotaWindow> quota_windows_;

  mutable std::mutex stats_mutex_;
  int64_t total_calls_ = 0;
  std::map<std::string, std::map<std::string, int64_t>> counters_;
  // One call of the request log; kept as plain fields, turned into JSON only
  // when the log is read (every call is logged, few logs are read).
  struct LoggedCall {
    WallTime time{};
    std::string operation, identity, region, target, model, outcome, error_code, request_id;
    int status = 0;
  };
  std::deque<LoggedCall> request_log_;

  mutable std::mutex sessions_mutex_;
  std::shared_ptr<AgentSessions> sessions_;
};

}  // namespace quarry::sim
