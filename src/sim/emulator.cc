#include "sim/emulator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cctype>

#include "aws/arn.h"
#include "aws/aws_error.h"
#include "aws/eventstream.h"
#include "common/crypto.h"
#include "common/encoding.h"

namespace quarry::sim {
namespace {

using nlohmann::json;

constexpr std::string_view kStsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/";
constexpr std::string_view kInvalidModelId = "The provided model identifier is invalid.";
constexpr std::string_view kNoModelAccess = "You don't have access to the model with the specified model ID.";
constexpr std::string_view kThrottled = "Too many requests, please wait before trying again.";
constexpr std::string_view kResourceNotFound =
    "Failed to retrieve resource because it doesn't exist. Retry the request with a different resource identifier.";
constexpr std::string_view kEventStreamType = "application/vnd.amazon.eventstream";
constexpr std::string_view kProfileTimestamp = "2024-08-27T00:00:00Z";

// Upper-case letters and digits derived from `seed`: stable ids (AIDA..., AROA...).
std::string DerivedId(std::string_view prefix, std::string_view seed, size_t length) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  Sha256Digest d = Sha256(seed);
  std::string out(prefix);
  for (size_t i = 0; out.size() < prefix.size() + length; ++i) out += kAlphabet[d[i % d.size()] % 32];
  return out;
}

std::string RandomId(std::string_view prefix, size_t length) {
  return DerivedId(prefix, SecureRandomBytes(32), length);
}

std::string FormDecode(std::string_view text) {
  std::string plus_fixed(text);
  std::replace(plus_fixed.begin(), plus_fixed.end(), '+', ' ');
  auto decoded = UriDecode(plus_fixed);
  return decoded.ok() ? decoded.value() : plus_fixed;
}

std::map<std::string, std::string> ParseForm(std::string_view text) {
  std::map<std::string, std::string> out;
  size_t pos = 0;
  while (pos <= text.size() && !text.empty()) {
    size_t amp = text.find('&', pos);
    std::string_view pair = text.substr(pos, amp == std::string_view::npos ? std::string_view::npos : amp - pos);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      std::string key = FormDecode(pair.substr(0, eq));
      std::string value = eq == std::string_view::npos ? "" : FormDecode(pair.substr(eq + 1));
      out.emplace(std::move(key), std::move(value));
    }
    if (amp == std::string_view::npos) break;
    pos = amp + 1;
  }
  return out;
}

std::string FoundationModelArn(std::string_view region, std::string_view model_id) {
  return "arn:aws:bedrock:" + std::string(region) + "::foundation-model/" + std::string(model_id);
}
std::string ProfileArn(std::string_view region, std::string_view account, std::string_view id) {
  return "arn:aws:bedrock:" + std::string(region) + ":" + std::string(account) + ":inference-profile/" + std::string(id);
}
std::string AgentArn(const AgentSpec& agent) {
  return "arn:aws:bedrock:" + agent.region + ":" + agent.account + ":agent/" + agent.id;
}
std::string AliasArn(const AgentSpec& agent, std::string_view alias_id) {
  return "arn:aws:bedrock:" + agent.region + ":" + agent.account + ":agent-alias/" + agent.id + "/" +
         std::string(alias_id);
}

net::HttpResponse JsonResponse(const json& body, const std::string& request_id, int status = 200) {
  net::HttpResponse r;
  r.status = status;
  r.headers = {{"Content-Type", "application/json"}, {"x-amzn-RequestId", request_id}};
  r.body = body.dump();
  return r;
}

bool IsErrorFault(const FaultRule& f, bool stream) {
  if (f.kind == "throttle" || f.kind == "stall") return !(stream && f.in_stream);
  return f.kind == "internal_error" || f.kind == "service_unavailable" || f.kind == "model_timeout" ||
         f.kind == "model_not_ready" || f.kind == "dependency_failed" || f.kind == "reset";
}

bool IsStreamFault(const FaultRule& f) {
  return ((f.kind == "throttle" || f.kind == "stall") && f.in_stream) || f.kind == "stream_exception" ||
         f.kind == "bad_crc" || f.kind == "cut_stream";
}

std::string EncodeAll(const std::vector<aws::Message>& messages, std::vector<std::string>* frames) {
  std::string all;
  for (const aws::Message& m : messages) {
    std::string frame;
    Status s = aws::AppendEncodedMessage(m, &frame);
    if (!s.ok()) frame.clear();  // bounded payloads; cannot fail for our events
    frames->push_back(frame);
    all += frame;
  }
  return all;
}

}  // namespace

struct Emulator::Identity {
  std::string account;
  std::string arn;
  std::string user_id;
  std::vector<Policy> policies;
  bool bearer = false;
};

struct Emulator::Call {
  std::string operation = "Unknown";
  std::string service;  // endpoint prefix
  std::string method;
  std::vector<std::string> segments;
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> form;  // STS
  std::string region;
  Identity identity;
  std::string request_id;
  std::string target;    // modelId / agent alias as sent (logs, faults)
  std::string model_id;  // resolved foundation model
  std::string agent_id;
  std::string error_code;  // outcome when not plain success
  bool stream = false;

  net::HttpResponse Error(std::string code, int status, std::string message,
                          std::vector<std::pair<std::string, std::string>> fields = {}) {
    error_code = code;
    aws::AwsError e;
    e.code = std::move(code);
    e.http_status = status;
    e.message = std::move(message);
    e.request_id = request_id;
    e.fields = std::move(fields);
    net::HttpResponse r;
    r.status = status;
    if (service == "sts") {
      r.headers = {{"Content-Type", "text/xml"}, {"x-amzn-RequestId", request_id}};
      r.body = aws::RenderStsXmlError(e);
    } else {
      aws::RenderedError rendered = aws::RenderRestJsonError(e);
      r.headers = rendered.headers;
      r.body = rendered.body;
    }
    return r;
  }
};

Emulator::Emulator(WorldConfig world, const Clock& clock)
    : world_(std::move(world)), clock_(clock), rng_state_(world_.seed),
      sessions_(std::make_shared<AgentSessions>()) {
  for (const AccountSpec& account : world_.accounts) {
    for (const UserSpec& user : account.users) {
      for (const AccessKeySpec& key : user.access_keys) {
        long_term_keys_[key.id] = LongTermKey{key.secret, account.id, user.name};
      }
    }
    for (const ApiKeySpec& key : account.api_keys) bearer_tokens_[key.token] = account.id + "/" + key.user;
  }
  auto lookup = [this](std::string_view id) { return LookupKey(id); };
  for (const RegionSpec& region : world_.regions) {
    for (const char* service : {"bedrock", "sts"}) {
      aws::VerifierOptions options;
      options.region = region.name;
      options.service = service;
      verifiers_[region.name + "/" + service] = std::make_unique<aws::SigV4Verifier>(options, lookup, &key_cache_);
    }
  }
  for (const FaultRule& f : world_.faults) AddFault(f);
}

Emulator::~Emulator() = default;

std::optional<aws::KnownAccessKey> Emulator::LookupKey(std::string_view access_key_id) const {
  auto it = long_term_keys_.find(std::string(access_key_id));
  if (it != long_term_keys_.end()) return aws::KnownAccessKey{it->second.secret, ""};
  std::lock_guard<std::mutex> lock(temp_mutex_);
  auto t = temp_credentials_.find(std::string(access_key_id));
  if (t != temp_credentials_.end()) return aws::KnownAccessKey{t->second.secret, t->second.session_token};
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Entry point: admin, routing, authentication.

net::HttpResponse Emulator::Handle(const net::HttpServerRequest& request) {
  std::string_view target = request.target;
  size_t q = target.find('?');
  std::string_view raw_path = target.substr(0, q);
  std::string_view raw_query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  if (raw_path.rfind("/_quarry/", 0) == 0) return HandleAdmin(request, raw_path);

  Call call;
  call.request_id = RandomUuid();
  call.method = request.method;
  call.query = ParseForm(raw_query);
  bool bad_path = raw_path.empty() || raw_path[0] != '/';
  if (!bad_path) {
    std::string_view rest = raw_path.substr(1);
    while (true) {
      size_t slash = rest.find('/');
      auto decoded = UriDecode(rest.substr(0, slash));
      if (!decoded.ok()) {
        bad_path = true;
        break;
      }
      call.segments.push_back(decoded.value());
      if (slash == std::string_view::npos) break;
      rest = rest.substr(slash + 1);
    }
  }
  net::HttpResponse response;
  if (bad_path) {
    response = call.Error("UnknownOperationException", 404, "The request path is not valid.");
  } else {
    response = Dispatch(call, request);
  }
  // The raw query and verification need the raw path: Dispatch re-derives them.
  Record(call, response);
  return response;
}

net::HttpResponse Emulator::Dispatch(Call& call, const net::HttpServerRequest& request) {
  const std::vector<std::string>& s = call.segments;
  const std::string& m = request.method;
  const size_t n = s.size();
  auto ends_clean = [&](size_t at) { return n == at || (n == at + 1 && s[at].empty()); };
  if (n == 1 && s[0].empty() && m == "POST") {
    call.service = "sts";
    call.form = ParseForm(request.body);
    auto action = call.form.find("Action");
    call.operation = action == call.form.end() ? "" : action->second;
    if (call.operation != "GetCallerIdentity" && call.operation != "AssumeRole") {
      std::string name = call.operation;
      call.operation = "Unknown";
      return call.Error("InvalidAction", 400,
                        "Could not find operation " + name + " for version 2011-06-15");
    }
  } else if (n == 3 && s[0] == "model" && m == "POST") {
    call.service = "bedrock-runtime";
    call.target = s[1];
    if (s[2] == "invoke") {
      call.operation = "InvokeModel";
    } else if (s[2] == "invoke-with-response-stream") {
      call.operation = "InvokeModelWithResponseStream";
      call.stream = true;
    } else if (s[2] == "converse") {
      call.operation = "Converse";
    } else if (s[2] == "converse-stream") {
      call.operation = "ConverseStream";
      call.stream = true;
    }
  } else if (n >= 2 && s[0] == "agents") {
    call.agent_id = s[1];
    if (n == 7 && s[2] == "agentAliases" && s[4] == "sessions" && s[6] == "text" && m == "POST") {
      call.service = "bedrock-agent-runtime";
      call.operation = "InvokeAgent";
      call.stream = true;
      call.target = s[1] + "/" + s[3];
    } else if (ends_clean(2) && m == "GET") {
      call.service = "bedrock-agent";
      call.operation = "GetAgent";
    } else if (n >= 3 && s[2] == "agentaliases" && ends_clean(3) && m == "POST") {
      call.service = "bedrock-agent";
      call.operation = "ListAgentAliases";
    } else if (n >= 4 && s[2] == "agentaliases" && !s[3].empty() && ends_clean(4) && m == "GET") {
      call.service = "bedrock-agent";
      call.operation = "GetAgentAlias";
      call.target = s[1] + "/" + s[3];
    }
  } else if (n >= 1 && n <= 2 && s[0] == "foundation-models" && m == "GET") {
    call.service = "bedrock";
    call.operation = n == 1 ? "ListFoundationModels" : "GetFoundationModel";
    if (n == 2) call.target = s[1];
  } else if (n >= 1 && n <= 2 && s[0] == "inference-profiles" && m == "GET") {
    call.service = "bedrock";
    call.operation = n == 1 ? "ListInferenceProfiles" : "GetInferenceProfile";
    if (n == 2) call.target = s[1];
  }
  if (call.operation == "Unknown") {
    call.service.clear();
    return call.Error("UnknownOperationException", 404,
                      "The emulator has no operation for " + m + " " +
                          std::string(std::string_view(request.target).substr(0, 200)) +
                          "; it serves bedrock-runtime, bedrock-agent-runtime, bedrock, bedrock-agent and sts "
                          "(see docs/emulator.md)");
  }

  // ---- authentication ----
  std::string_view target = request.target;
  size_t qpos = target.find('?');
  std::string_view raw_path = target.substr(0, qpos);
  std::string_view raw_query = qpos == std::string_view::npos ? std::string_view() : target.substr(qpos + 1);
  const std::string expected_service = call.service == "sts" ? "sts" : "bedrock";
  const std::string* authorization = request.FindHeader("Authorization");
  const bool bearer_allowed = call.service == "bedrock" || call.service == "bedrock-runtime";
  if (authorization != nullptr && authorization->size() > 7 &&
      EqualsIgnoreAsciiCase(std::string_view(*authorization).substr(0, 7), "Bearer ")) {
    if (!bearer_allowed) {
      if (call.service == "sts") {
        return call.Error("IncompleteSignature", 400,
                          "STS does not accept bearer tokens (Bedrock API keys); sign the request with SigV4 using "
                          "AWS access keys.");
      }
      return call.Error("AccessDeniedException", 403,
                        "Bedrock API keys (bearer tokens) are not supported by " + call.service +
                            "; sign the request with SigV4 using AWS access keys (unset AWS_BEARER_TOKEN_BEDROCK).");
    }
    std::string token(TrimAsciiWhitespace(std::string_view(*authorization).substr(7)));
    auto it = bearer_tokens_.find(token);
    if (it == bearer_tokens_.end()) {
      return call.Error("UnrecognizedClientException", 403, "The security token included in the request is invalid.");
    }
    size_t slash = it->second.find('/');
    const AccountSpec* account = world_.FindAccount(it->second.substr(0, slash));
    const UserSpec* user = account->FindUser(it->second.substr(slash + 1));
    // A bearer token carries no region; the emulator serves it from its first region.
    call.region = world_.regions.front().name;
    call.identity.account = account->id;
    call.identity.arn = "arn:aws:iam::" + account->id + ":user/" + user->name;
    call.identity.user_id = DerivedId("AIDA", call.identity.arn, 17);
    call.identity.policies = user->policies;
    call.identity.bearer = true;
  } else {
    std::string region = world_.regions.front().name;
    if (authorization != nullptr) {
      auto parsed = aws::ParseAuthorizationHeader(*authorization, request.FindHeader("X-Amz-Date") != nullptr);
      if (const auto* p = std::get_if<aws::ParsedAuthorization>(&parsed)) {
        std::string scope_region(p->region);
        if (world_.FindRegion(scope_region) == nullptr) {
          std::string served;
          for (const RegionSpec& r : world_.regions) served += (served.empty() ? "" : ", ") + r.name;
          return call.Error(call.service == "sts" ? "SignatureDoesNotMatch" : "InvalidSignatureException", 403,
                            "Credential should be scoped to a valid region. The emulator serves " + served + ", not '" +
                                aws::internal::QuoteForMessage(scope_region, 40) +
                                "'; set AWS_REGION to a served region.");
        }
        region = scope_region;
      }
    }
    std::vector<aws::HttpHeader> headers;
    headers.reserve(request.headers.size());
    for (const auto& [name, value] : request.headers) headers.push_back(aws::HttpHeader{name, value});
    aws::ReceivedRequest received;
    received.method = request.method;
    received.raw_path = raw_path;
    received.raw_query = raw_query;
    received.headers = headers;
    received.body = request.body;
    const aws::SigV4Verifier& verifier = *verifiers_.at(region + "/" + expected_service);
    aws::VerificationResult result = verifier.Verify(received, clock_.Now());
    if (const auto* error = std::get_if<aws::SignatureVerificationError>(&result)) {
      std::string code = error->code;
      if (call.service == "sts") {
        // The query protocol spells these without the Exception suffix.
        if (code == aws::kInvalidSignature) code = "SignatureDoesNotMatch";
        if (code == aws::kUnrecognizedClient) code = "InvalidClientTokenId";
        if (code == aws::kIncompleteSignature) code = "IncompleteSignature";
        if (code == aws::kMissingAuthenticationToken) code = "MissingAuthenticationToken";
      }
      return call.Error(code, error->http_status, error->message);
    }
    if (std::holds_alternative<aws::BearerAuthorization>(result)) {
      return call.Error("IncompleteSignatureException", 400, "Unsupported Authorization scheme.");
    }
    const auto& verified = std::get<aws::VerifiedIdentity>(result);
    call.region = verified.region;
    auto key = long_term_keys_.find(verified.access_key_id);
    if (key != long_term_keys_.end()) {
      const AccountSpec* account = world_.FindAccount(key->second.account);
      const UserSpec* user = account->FindUser(key->second.user);
      call.identity.account = account->id;
      call.identity.arn = "arn:aws:iam::" + account->id + ":user/" + user->name;
      call.identity.user_id = DerivedId("AIDA", call.identity.arn, 17);
      call.identity.policies = user->policies;
    } else {
      TempCredential temp;
      {
        std::lock_guard<std::mutex> lock(temp_mutex_);
        auto t = temp_credentials_.find(verified.access_key_id);
        if (t == temp_credentials_.end()) {
          return call.Error(call.service == "sts" ? "InvalidClientTokenId" : "UnrecognizedClientException", 403,
                            "The security token included in the request is invalid.");
        }
        temp = t->second;
      }
      if (clock_.Now() >= temp.expiration) {
        return call.Error(call.service == "sts" ? "ExpiredToken" : "ExpiredTokenException", 400,
                          "The security token included in the request is expired");
      }
      const AccountSpec* account = world_.FindAccount(temp.account);
      const RoleSpec* role = account == nullptr ? nullptr : account->FindRole(temp.role_name);
      if (role == nullptr) {
        return call.Error("UnrecognizedClientException", 403, "The security token included in the request is invalid.");
      }
      call.identity.account = account->id;
      call.identity.arn = "arn:aws:sts::" + account->id + ":assumed-role/" + role->name + "/" + temp.session_name;
      call.identity.user_id = DerivedId("AROA", "arn:aws:iam::" + account->id + ":role/" + role->name, 17) + ":" +
                              temp.session_name;
      call.identity.policies = role->policies;
    }
  }

  // ---- operations ----
  const std::string& op = call.operation;
  if (op == "InvokeModel" || op == "InvokeModelWithResponseStream" || op == "Converse" || op == "ConverseStream") {
    return InvokeRuntime(call, request);
  }
  if (op == "InvokeAgent") return InvokeAgent(call, request);
  if (op == "ListFoundationModels") return ListFoundationModels(call);
  if (op == "GetFoundationModel") return GetFoundationModel(call);
  if (op == "ListInferenceProfiles") return ListInferenceProfiles(call);
  if (op == "GetInferenceProfile") return GetInferenceProfile(call);
  if (op == "GetAgent") return GetAgent(call);
  if (op == "GetAgentAlias") return GetAgentAlias(call);
  if (op == "ListAgentAliases") return ListAgentAliases(call, request);
  return Sts(call, request);
}

bool Emulator::Authorize(Call& call, std::string_view action, std::string_view resource) {
  return Evaluate(call.identity.policies, action, resource) == Decision::kAllow;
}

// ---------------------------------------------------------------------------
// Faults and quotas.

uint64_t Emulator::NextRandom() {
  // splitmix64: tiny, deterministic for a seed, good enough for fault draws.
  uint64_t z = (rng_state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::vector<FaultRule> Emulator::DrawFaults(const Call& call) {
  std::vector<FaultRule> fired;
  // At most one error fault and one stream fault apply to a call; the others
  // keep their counts for the next calls, so queued faults play in order.
  bool have_error = false, have_stream = false;
  std::lock_guard<std::mutex> lock(fault_mutex_);
  for (FaultState& state : faults_) {
    const FaultRule& f = state.rule;
    if (f.operation != "*" && f.operation != call.operation) continue;
    if (!f.model.empty() && f.model != call.model_id && f.model != call.target) continue;
    if (!f.agent.empty() && f.agent != call.agent_id) continue;
    const bool is_error = IsErrorFault(f, call.stream);
    const bool is_stream = call.stream && IsStreamFault(f);
    if ((is_error && have_error) || (is_stream && have_stream)) continue;
    if (f.count) {
      if (state.remaining <= 0) continue;
      --state.remaining;
    } else {
      double draw = static_cast<double>(NextRandom() >> 11) / static_cast<double>(1ULL << 53);
      if (!(draw < f.rate.value_or(1.0))) continue;
    }
    have_error = have_error || is_error;
    have_stream = have_stream || is_stream;
    fired.push_back(f);
  }
  return fired;
}

int64_t Emulator::DrawLatency(const FaultRule& rule) {
  int64_t ms = rule.latency_ms;
  if (rule.median_ms > 0) {
    double u1, u2;
    {
      std::lock_guard<std::mutex> lock(fault_mutex_);
      u1 = (static_cast<double>(NextRandom() >> 11) + 1.0) / static_cast<double>((1ULL << 53) + 1);
      u2 = static_cast<double>(NextRandom() >> 11) / static_cast<double>(1ULL << 53);
    }
    // Log-normal with the given median and 99th percentile (z_0.99 = 2.3263).
    double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
    double sigma = std::log(static_cast<double>(rule.p99_ms) / static_cast<double>(rule.median_ms)) / 2.3263;
    double value = static_cast<double>(rule.median_ms) * std::exp(sigma * z);
    ms += static_cast<int64_t>(std::min(value, 10.0 * static_cast<double>(rule.p99_ms)));
  }
  return ms;
}

bool Emulator::QuotaAdmit(const std::string& account, const std::string& model) {
  const int64_t minute = std::chrono::duration_cast<std::chrono::minutes>(clock_.Now().time_since_epoch()).count();
  std::lock_guard<std::mutex> lock(quota_mutex_);
  for (size_t i = 0; i < world_.quotas.size(); ++i) {
    const QuotaRule& rule = world_.quotas[i];
    if ((rule.account != "*" && rule.account != account) || (rule.model != "*" && rule.model != model)) continue;
    QuotaWindow& w = quota_windows_[std::to_string(i) + "|" + account + "|" + model];
    if (w.minute != minute) w = QuotaWindow{minute, 0, 0};
    if ((rule.requests_per_minute > 0 && w.requests >= rule.requests_per_minute) ||
        (rule.tokens_per_minute > 0 && w.tokens >= rule.tokens_per_minute)) {
      return false;
    }
  }
  // Admitted by every rule: count the request in each.
  for (size_t i = 0; i < world_.quotas.size(); ++i) {
    const QuotaRule& rule = world_.quotas[i];
    if ((rule.account != "*" && rule.account != account) || (rule.model != "*" && rule.model != model)) continue;
    ++quota_windows_[std::to_string(i) + "|" + account + "|" + model].requests;
  }
  return true;
}

void Emulator::QuotaCharge(const std::string& account, const std::string& model, int64_t tokens) {
  const int64_t minute = std::chrono::duration_cast<std::chrono::minutes>(clock_.Now().time_since_epoch()).count();
  std::lock_guard<std::mutex> lock(quota_mutex_);
  for (size_t i = 0; i < world_.quotas.size(); ++i) {
    const QuotaRule& rule = world_.quotas[i];
    if ((rule.account != "*" && rule.account != account) || (rule.model != "*" && rule.model != model)) continue;
    QuotaWindow& w = quota_windows_[std::to_string(i) + "|" + account + "|" + model];
    if (w.minute != minute) w = QuotaWindow{minute, 0, 0};
    w.tokens += tokens;
  }
}

namespace {

// The error response a fault stands for, or nullopt when the fault is not an error.
struct FaultError {
  std::string code;
  int status;
  std::string message;
  std::vector<std::pair<std::string, std::string>> fields;
};

FaultError FaultToError(const FaultRule& f, std::string_view service) {
  const bool sts = service == "sts";
  const bool agents = service == "bedrock-agent-runtime";
  FaultError e;
  if (f.kind == "throttle") {
    e = sts ? FaultError{"Throttling", 400, "Rate exceeded", {}} : FaultError{"ThrottlingException", 429, std::string(kThrottled), {}};
  } else if (f.kind == "internal_error") {
    e = sts ? FaultError{"InternalFailure", 500, "An internal error occurred.", {}}
            : FaultError{"InternalServerException", 500,
                         "The server encountered an internal error while processing the request.", {}};
  } else if (f.kind == "service_unavailable") {
    e = FaultError{sts ? "ServiceUnavailable" : "ServiceUnavailableException", 503,
                   "The service is temporarily unable to handle the request. Try your request again later.", {}};
  } else if (f.kind == "model_timeout") {
    e = FaultError{"ModelTimeoutException", 408, "Model has timed out in processing the request. Try your request again.", {}};
  } else if (f.kind == "model_not_ready") {
    e = FaultError{"ModelNotReadyException", agents ? 424 : 429,
                   "Model is not ready for inference. Wait and try your request again.", {}};
  } else {  // dependency_failed
    e = FaultError{"DependencyFailedException", 424,
                   "The agent's dependency failed to respond; check the resources the agent uses and try again.",
                   {{"resourceName", "Lambda"}}};
  }
  if (!f.message.empty()) e.message = f.message;
  return e;
}

// Shared shape of a stream response: each event in its own HTTP chunk.
net::HttpResponse StreamResponse(const std::vector<std::string>& frames, int64_t chunk_delay_ms) {
  net::HttpResponse r;
  r.chunked = true;
  for (size_t i = 0; i < frames.size(); ++i) {
    r.chunks.push_back({std::chrono::milliseconds(i == 0 ? 0 : chunk_delay_ms), frames[i]});
  }
  return r;
}

}  // namespace

Emulator::FaultPlan Emulator::PlanFaults(Call& call, bool stream) {
  FaultPlan plan;
  const std::vector<FaultRule> faults = DrawFaults(call);
  for (const FaultRule& f : faults) {
    plan.delay_ms += DrawLatency(f) + (stream ? f.first_byte_ms : 0);
    plan.chunk_delay_ms = std::max(plan.chunk_delay_ms, f.chunk_delay_ms);
    if (stream && !plan.stream_fault && IsStreamFault(f)) plan.stream_fault = f;
  }
  for (const FaultRule& f : faults) {
    if (!IsErrorFault(f, stream)) continue;
    net::HttpResponse failure;
    if (f.kind == "stall") {
      call.error_code = "Stall";
      failure.start = net::ResponseStart::kStallForever;
    } else if (f.kind == "reset") {
      call.error_code = "ConnectionReset";
      failure.start = net::ResponseStart::kResetConnection;
    } else {
      const FaultError e = FaultToError(f, call.service);
      failure = call.Error(e.code, e.status, e.message, e.fields);
    }
    failure.delay = std::chrono::milliseconds(plan.delay_ms);
    plan.failure = std::move(failure);
    break;
  }
  return plan;
}

// ---------------------------------------------------------------------------
// bedrock-runtime

net::HttpResponse Emulator::InvokeRuntime(Call& call, const net::HttpServerRequest& request) {
  const RegionSpec& region = *world_.FindRegion(call.region);
  const bool stream = call.stream;
  const std::string action = stream ? "bedrock:InvokeModelWithResponseStream" : "bedrock:InvokeModel";
  auto target = aws::ClassifyModelTarget(call.target);
  if (!target.ok()) return call.Error("ValidationException", 400, std::string(kInvalidModelId));

  const ModelSpec* model = nullptr;
  std::vector<std::string> resources;  // IAM resources, in the order AWS checks them
  const aws::ModelTarget& t = target.value();
  switch (t.kind) {
    case aws::ModelTargetKind::kFoundationModelId:
    case aws::ModelTargetKind::kFoundationModelArn:
      if (t.arn && t.arn->region != call.region) break;
      model = region.FindModel(t.model_id);
      resources.push_back(FoundationModelArn(call.region, t.model_id));
      break;
    case aws::ModelTargetKind::kSystemProfileId:
    case aws::ModelTargetKind::kSystemProfileArn: {
      if (t.arn && (t.arn->region != call.region || t.arn->account != call.identity.account)) break;
      const SystemProfileSpec* profile = region.FindProfile(t.profile_id);
      if (profile == nullptr) break;
      model = region.FindModel(profile->model);
      resources.push_back(ProfileArn(call.region, call.identity.account, profile->id));
      resources.push_back(FoundationModelArn(call.region, profile->model));
      break;
    }
    case aws::ModelTargetKind::kApplicationProfileArn: {
      const ApplicationProfileSpec* profile = world_.FindApplicationProfile(t.text);
      if (profile == nullptr || profile->account != call.identity.account || profile->region != call.region) break;
      model = region.FindModel(profile->model);
      resources.push_back(profile->Arn());
      resources.push_back(FoundationModelArn(call.region, profile->model));
      break;
    }
    default:
      break;
  }
  if (model == nullptr) {
    // Still authorise against what was named, as AWS does before it looks the model up.
    if (t.kind == aws::ModelTargetKind::kFoundationModelId && !Authorize(call, action, FoundationModelArn(call.region, t.model_id))) {
      std::string resource = FoundationModelArn(call.region, t.model_id);
      return call.Error("AccessDeniedException", 403,
                        AccessDeniedMessage(call.identity.arn, action, resource,
                                            Evaluate(call.identity.policies, action, resource)));
    }
    return call.Error("ValidationException", 400, std::string(kInvalidModelId));
  }
  call.model_id = model->id;
  for (const std::string& resource : resources) {
    Decision d = Evaluate(call.identity.policies, action, resource);
    if (d != Decision::kAllow) {
      return call.Error("AccessDeniedException", 403, AccessDeniedMessage(call.identity.arn, action, resource, d));
    }
  }
  const AccountSpec& account = *world_.FindAccount(call.identity.account);
  if (!account.HasModelAccess(model->id)) {
    return call.Error("AccessDeniedException", 403, std::string(kNoModelAccess));
  }
  const bool via_profile = t.kind != aws::ModelTargetKind::kFoundationModelId &&
                           t.kind != aws::ModelTargetKind::kFoundationModelArn;
  if (!via_profile && !model->OnDemand()) {
    return call.Error("ValidationException", 400,
                      "Invocation of model ID " + model->id +
                          " with on-demand throughput isn\xE2\x80\x99t supported. Retry your request with the ID or ARN "
                          "of an inference profile that contains this model.");
  }
  if (!model->IsClaude()) {
    return call.Error("ValidationException", 400,
                      "The Quarry emulator only models Anthropic Claude; " + model->id +
                          " is listed but cannot be invoked. Use an anthropic.claude-* model.");
  }
  if (stream && !model->streaming) {
    return call.Error("ValidationException", 400, "The model " + model->id + " does not support response streaming.");
  }
  const ClaudeModelSpec spec = model->Claude();
  const bool converse = call.operation == "Converse" || call.operation == "ConverseStream";
  auto parsed = converse ? ParseConverseRequest(request.body, spec) : ParseAnthropicRequest(request.body, spec);
  if (!parsed.ok()) return call.Error("ValidationException", 400, parsed.status().message());

  // Faults, then quotas, then the model.
  FaultPlan plan = PlanFaults(call, stream);
  if (plan.failure) return std::move(*plan.failure);
  const int64_t delay = plan.delay_ms;
  const int64_t chunk_delay = plan.chunk_delay_ms;
  if (!QuotaAdmit(account.id, model->id)) {
    net::HttpResponse r = call.Error("ThrottlingException", 429, std::string(kThrottled));
    r.delay = std::chrono::milliseconds(delay);
    return r;
  }
  ClaudeReply reply = GenerateReply(parsed.value(), model->rules, spec);
  QuotaCharge(account.id, model->id, reply.input_tokens + reply.output_tokens);
  const int64_t latency = std::max<int64_t>(1, delay);

  net::HttpResponse r;
  if (!stream) {
    json body = converse ? ConverseResponseBody(reply, latency) : AnthropicResponseBody(reply, spec);
    r.body = body.dump();
    r.headers = {{"Content-Type", "application/json"}};
  } else {
    std::vector<aws::Message> messages;
    if (converse) {
      for (auto& [type, payload] : ConverseStreamEvents(reply, latency)) {
        messages.push_back(aws::MakeEventMessage(type, payload.dump()));
      }
    } else {
      for (const json& event : AnthropicStreamEvents(reply, spec, latency, std::max<int64_t>(1, delay))) {
        json chunk = {{"bytes", Base64Encode(event.dump())}};
        messages.push_back(aws::MakeEventMessage("chunk", chunk.dump()));
      }
    }
    // Stream faults change the events after the first `after_events`.
    const FaultRule* stream_fault = plan.stream_fault ? &*plan.stream_fault : nullptr;
    net::ResponseEnd end = net::ResponseEnd::kComplete;
    std::vector<std::string> frames;
    if (stream_fault != nullptr) {
      size_t keep = std::min<size_t>(messages.size(), static_cast<size_t>(stream_fault->after_events));
      const FaultRule& f = *stream_fault;
      std::vector<aws::Message> head(messages.begin(), messages.begin() + static_cast<std::ptrdiff_t>(keep));
      if (f.kind == "throttle") {
        head.push_back(aws::MakeExceptionMessage(
            "throttlingException", json{{"message", f.message.empty() ? std::string(kThrottled) : f.message}}.dump()));
        call.error_code = "throttlingException";
      } else if (f.kind == "stream_exception") {
        std::string type = f.exception_type.empty() ? "modelStreamErrorException" : f.exception_type;
        json payload = {{"message", f.message.empty() ? "The model encountered an error while streaming the response."
                                                      : f.message}};
        if (type == "modelStreamErrorException") {
          payload["originalStatusCode"] = 500;
          payload["originalMessage"] = "Internal error in the model";
        }
        head.push_back(aws::MakeExceptionMessage(type, payload.dump()));
        call.error_code = type;
      }
      EncodeAll(head, &frames);
      if (f.kind == "bad_crc" && keep < messages.size()) {
        std::vector<std::string> bad;
        EncodeAll({messages[keep]}, &bad);
        bad[0].back() = static_cast<char>(bad[0].back() ^ 0x5A);
        frames.push_back(bad[0]);
        end = net::ResponseEnd::kCloseConnection;
        call.error_code = "BadCrc";
      } else if (f.kind == "cut_stream" && keep < messages.size()) {
        std::vector<std::string> cut;
        EncodeAll({messages[keep]}, &cut);
        frames.push_back(cut[0].substr(0, cut[0].size() / 2));
        end = net::ResponseEnd::kCloseConnection;
        call.error_code = "CutStream";
      } else if (f.kind == "stall") {
        end = net::ResponseEnd::kStallForever;
        call.error_code = "StallMidStream";
      }
    } else {
      EncodeAll(messages, &frames);
    }
    r = StreamResponse(frames, chunk_delay);
    r.end = end;
    r.headers = {{"Content-Type", std::string(kEventStreamType)}};
    if (!converse) r.headers.push_back({"X-Amzn-Bedrock-Content-Type", "application/json"});
  }
  r.delay = std::chrono::milliseconds(delay);
  r.headers.push_back({"x-amzn-RequestId", call.request_id});
  r.headers.push_back({"X-Amzn-Bedrock-Input-Token-Count", std::to_string(reply.input_tokens)});
  r.headers.push_back({"X-Amzn-Bedrock-Output-Token-Count", std::to_string(reply.output_tokens)});
  r.headers.push_back({"X-Amzn-Bedrock-Invocation-Latency", std::to_string(latency)});
  return r;
}

// ---------------------------------------------------------------------------
// bedrock-agent-runtime

net::HttpResponse Emulator::InvokeAgent(Call& call, const net::HttpServerRequest& request) {
  const std::string& alias_id = call.segments[3];
  const std::string& session_id = call.segments[5];
  const AgentSpec* agent = world_.FindAgent(call.region, call.agent_id);
  if (agent == nullptr || agent->account != call.identity.account) {
    return call.Error("ResourceNotFoundException", 404, std::string(kResourceNotFound));
  }
  std::optional<AgentAliasSpec> alias = agent->FindAlias(alias_id);
  if (!alias) return call.Error("ResourceNotFoundException", 404, std::string(kResourceNotFound));
  const std::string alias_arn = AliasArn(*agent, alias->id);
  Decision d = Evaluate(call.identity.policies, "bedrock:InvokeAgent", alias_arn);
  if (d != Decision::kAllow) {
    return call.Error("AccessDeniedException", 403,
                      AccessDeniedMessage(call.identity.arn, "bedrock:InvokeAgent", alias_arn, d));
  }
  InvokeAgentInput input;
  input.session_id = session_id;
  if (!request.body.empty()) {
    json body = json::parse(request.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      return call.Error("ValidationException", 400, "The request body is not valid JSON.");
    }
    input.input_text = body.value("inputText", "");
    input.enable_trace = body.value("enableTrace", false);
    input.end_session = body.value("endSession", false);
    input.memory_id = body.value("memoryId", "");
    if (body.contains("sessionState") && body["sessionState"].is_object()) input.session_state = body["sessionState"];
    if (body.contains("streamingConfigurations") && body["streamingConfigurations"].is_object()) {
      input.stream_final_response = body["streamingConfigurations"].value("streamFinalResponse", false);
    }
  }
  FaultPlan plan = PlanFaults(call, /*stream=*/true);
  if (plan.failure) return std::move(*plan.failure);
  const int64_t delay = plan.delay_ms;
  const int64_t chunk_delay = plan.chunk_delay_ms;
  std::shared_ptr<AgentSessions> sessions;
  {
    std::lock_guard<std::mutex> lock(sessions_mutex_);
    sessions = sessions_;
  }
  AgentOutcome outcome = RunAgent(*agent, *alias, input, knowledge_, *sessions, clock_);
  if (const auto* error = std::get_if<aws::AwsError>(&outcome)) {
    net::HttpResponse r = call.Error(error->code, error->http_status, error->message, error->fields);
    r.delay = std::chrono::milliseconds(delay);
    return r;
  }
  const auto& events = std::get<std::vector<AgentEvent>>(outcome);
  std::vector<aws::Message> messages;
  for (const AgentEvent& e : events) {
    if (e.exception) {
      messages.push_back(aws::MakeExceptionMessage(e.type, e.payload.dump()));
      call.error_code = e.type;
    } else {
      messages.push_back(aws::MakeEventMessage(e.type, e.payload.dump()));
    }
  }
  const FaultRule* stream_fault = plan.stream_fault ? &*plan.stream_fault : nullptr;
  std::vector<std::string> frames;
  net::ResponseEnd end = net::ResponseEnd::kComplete;
  if (stream_fault != nullptr) {
    const FaultRule& f = *stream_fault;
    size_t keep = std::min<size_t>(messages.size(), static_cast<size_t>(f.after_events));
    std::vector<aws::Message> head(messages.begin(), messages.begin() + static_cast<std::ptrdiff_t>(keep));
    if (f.kind == "throttle" || f.kind == "stream_exception") {
      std::string type = f.kind == "throttle" ? "throttlingException"
                         : f.exception_type.empty() ? "internalServerException"
                                                    : f.exception_type;
      json payload = {{"message", !f.message.empty()                ? f.message
                                  : f.kind == "throttle"            ? std::string(kThrottled)
                                                                    : "The agent failed while streaming the response."}};
      if (type == "dependencyFailedException" || type == "badGatewayException") payload["resourceName"] = "Lambda";
      head.push_back(aws::MakeExceptionMessage(type, payload.dump()));
      call.error_code = type;
    }
    EncodeAll(head, &frames);
    if ((f.kind == "bad_crc" || f.kind == "cut_stream") && keep < messages.size()) {
      std::vector<std::string> one;
      EncodeAll({messages[keep]}, &one);
      if (f.kind == "bad_crc") {
        one[0].back() = static_cast<char>(one[0].back() ^ 0x5A);
        frames.push_back(one[0]);
        call.error_code = "BadCrc";
      } else {
        frames.push_back(one[0].substr(0, one[0].size() / 2));
        call.error_code = "CutStream";
      }
      end = net::ResponseEnd::kCloseConnection;
    } else if (f.kind == "stall") {
      end = net::ResponseEnd::kStallForever;
      call.error_code = "StallMidStream";
    }
  } else {
    EncodeAll(messages, &frames);
  }
  net::HttpResponse r = StreamResponse(frames, chunk_delay);
  r.end = end;
  r.delay = std::chrono::milliseconds(delay);
  r.headers = {{"Content-Type", std::string(kEventStreamType)},
               {"x-amzn-bedrock-agent-content-type", "application/json"},
               {"x-amz-bedrock-agent-session-id", session_id},
               {"x-amzn-RequestId", call.request_id}};
  if (!input.memory_id.empty()) r.headers.push_back({"x-amz-bedrock-agent-memory-id", input.memory_id});
  return r;
}

// ---------------------------------------------------------------------------
// Control planes. Faults of the error kinds apply to them too.

namespace {

json ModelSummary(const ModelSpec& m, std::string_view region) {
  return {{"modelArn", FoundationModelArn(region, m.id)},
          {"modelId", m.id},
          {"modelName", m.name},
          {"providerName", m.provider},
          {"inputModalities", m.input_modalities},
          {"outputModalities", m.output_modalities},
          {"responseStreamingSupported", m.streaming},
          {"customizationsSupported", m.customizations},
          {"inferenceTypesSupported", m.inference_types},
          {"modelLifecycle", {{"status", m.lifecycle}}}};
}

std::string EnumError(std::string_view value, std::string_view member, std::string_view allowed) {
  return "1 validation error detected: Value '" + aws::internal::QuoteForMessage(value, 64) + "' at '" +
         std::string(member) + "' failed to satisfy constraint: Member must satisfy enum value set: [" +
         std::string(allowed) + "]";
}

}  // namespace


net::HttpResponse Emulator::ListFoundationModels(Call& call) {
  if (!Authorize(call, "bedrock:ListFoundationModels", "*")) {
    return call.Error("AccessDeniedException", 403,
                      AccessDeniedMessage(call.identity.arn, "bedrock:ListFoundationModels", "*",
                                          Evaluate(call.identity.policies, "bedrock:ListFoundationModels", "*")));
  }
  auto get = [&](const char* key) -> std::string {
    auto it = call.query.find(key);
    return it == call.query.end() ? std::string() : it->second;
  };
  const std::string provider = get("byProvider");
  const std::string customization = get("byCustomizationType");
  const std::string modality = get("byOutputModality");
  const std::string inference = get("byInferenceType");
  if (!customization.empty() && customization != "FINE_TUNING" && customization != "CONTINUED_PRE_TRAINING" &&
      customization != "DISTILLATION") {
    return call.Error("ValidationException", 400,
                      EnumError(customization, "byCustomizationType", "FINE_TUNING, CONTINUED_PRE_TRAINING, DISTILLATION"));
  }
  if (!modality.empty() && modality != "TEXT" && modality != "IMAGE" && modality != "EMBEDDING") {
    return call.Error("ValidationException", 400, EnumError(modality, "byOutputModality", "TEXT, IMAGE, EMBEDDING"));
  }
  if (!inference.empty() && inference != "ON_DEMAND" && inference != "PROVISIONED") {
    return call.Error("ValidationException", 400, EnumError(inference, "byInferenceType", "ON_DEMAND, PROVISIONED"));
  }
  FaultPlan plan = PlanFaults(call, /*stream=*/false);
  if (plan.failure) return std::move(*plan.failure);
  const int64_t control_delay = plan.delay_ms;
  json summaries = json::array();
  for (const ModelSpec& m : world_.FindRegion(call.region)->models) {
    // The provider filter ignores case (AWS accepts "anthropic" and "Anthropic").
    if (!provider.empty() && !EqualsIgnoreAsciiCase(provider, m.provider)) continue;
    if (!customization.empty() &&
        std::find(m.customizations.begin(), m.customizations.end(), customization) == m.customizations.end()) {
      continue;
    }
    if (!modality.empty() &&
        std::find(m.output_modalities.begin(), m.output_modalities.end(), modality) == m.output_modalities.end()) {
      continue;
    }
    if (!inference.empty() &&
        std::find(m.inference_types.begin(), m.inference_types.end(), inference) == m.inference_types.end()) {
      continue;
    }
    summaries.push_back(ModelSummary(m, call.region));
  }
  net::HttpResponse r = JsonResponse({{"modelSummaries", summaries}}, call.request_id);
  r.delay = std::chrono::milliseconds(control_delay);
  return r;
}

net::HttpResponse Emulator::GetFoundationModel(Call& call) {
  std::string id = call.target;
  std::string region = call.region;
  if (id.rfind("arn:", 0) == 0) {
    auto described = aws::DescribeArn(id);
    if (!described.ok() || described.value().kind != aws::ArnKind::kFoundationModel) {
      return call.Error("ValidationException", 400, std::string(kInvalidModelId));
    }
    id = described.value().model_id;
    region = described.value().arn.region;
  }
  const std::string arn = FoundationModelArn(call.region, id);
  Decision d = Evaluate(call.identity.policies, "bedrock:GetFoundationModel", arn);
  if (d != Decision::kAllow) {
    return call.Error("AccessDeniedException", 403,
                      AccessDeniedMessage(call.identity.arn, "bedrock:GetFoundationModel", arn, d));
  }
  const ModelSpec* model = region == call.region ? world_.FindRegion(call.region)->FindModel(id) : nullptr;
  call.model_id = model == nullptr ? "" : model->id;
  if (model == nullptr) return call.Error("ValidationException", 400, std::string(kInvalidModelId));
  FaultPlan plan = PlanFaults(call, /*stream=*/false);
  if (plan.failure) return std::move(*plan.failure);
  const int64_t control_delay = plan.delay_ms;
  net::HttpResponse r = JsonResponse({{"modelDetails", ModelSummary(*model, call.region)}}, call.request_id);
  r.delay = std::chrono::milliseconds(control_delay);
  return r;
}

namespace {

json ProfileJson(const SystemProfileSpec& p, std::string_view region, std::string_view account) {
  json models = json::array();
  for (const std::string& dest : p.destinations) models.push_back({{"modelArn", FoundationModelArn(dest, p.model)}});
  json j = {{"inferenceProfileName", p.name},
            {"inferenceProfileArn", ProfileArn(region, account, p.id)},
            {"inferenceProfileId", p.id},
            {"models", models},
            {"status", "ACTIVE"},
            {"type", "SYSTEM_DEFINED"},
            {"createdAt", kProfileTimestamp},
            {"updatedAt", kProfileTimestamp}};
  if (!p.description.empty()) j["description"] = p.description;
  return j;
}

json ApplicationProfileJson(const ApplicationProfileSpec& p) {
  json j = {{"inferenceProfileName", p.name},
            {"inferenceProfileArn", p.Arn()},
            {"inferenceProfileId", p.id},
            {"models", json::array({{{"modelArn", FoundationModelArn(p.region, p.model)}}})},
            {"status", "ACTIVE"},
            {"type", "APPLICATION"},
            {"createdAt", kProfileTimestamp},
            {"updatedAt", kProfileTimestamp}};
  if (!p.description.empty()) j["description"] = p.description;
  return j;
}

}  // namespace

net::HttpResponse Emulator::ListInferenceProfiles(Call& call) {
  const std::string resource = ProfileArn(call.region, call.identity.account, "*");
  Decision d = Evaluate(call.identity.policies, "bedrock:ListInferenceProfiles", resource);
  if (d != Decision::kAllow) {
    return call.Error("AccessDeniedException", 403,
                      AccessDeniedMessage(call.identity.arn, "bedrock:ListInferenceProfiles", resource, d));
  }
  auto get = [&](const char* key) -> std::optional<std::string> {
    auto it = call.query.find(key);
    if (it == call.query.end()) return std::nullopt;
    return it->second;
  };
  std::string type = get("type").value_or("SYSTEM_DEFINED");
  if (type != "SYSTEM_DEFINED" && type != "APPLICATION") {
    return call.Error("ValidationException", 400, EnumError(type, "typeEquals", "SYSTEM_DEFINED, APPLICATION"));
  }
  int64_t max_results = 1000;
  if (auto m = get("maxResults")) {
    char* end = nullptr;
    long long v = std::strtoll(m->c_str(), &end, 10);
    if (m->empty() || *end != '\0' || v < 1 || v > 1000) {
      return call.Error("ValidationException", 400,
                        "1 validation error detected: Value '" + aws::internal::QuoteForMessage(*m, 20) +
                            "' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 1000");
    }
    max_results = v;
  }
  size_t offset = 0;
  if (auto token = get("nextToken")) {
    auto decoded = Base64Decode(*token);
    bool ok = decoded.ok() && decoded.value().rfind("offset:", 0) == 0;
    if (ok) {
      char* end = nullptr;
      std::string digits = decoded.value().substr(7);
      offset = std::strtoull(digits.c_str(), &end, 10);
      ok = !digits.empty() && *end == '\0';
    }
    if (!ok) return call.Error("ValidationException", 400, "The pagination token is invalid; pass the nextToken of the previous response unchanged.");
  }
  FaultPlan plan = PlanFaults(call, /*stream=*/false);
  if (plan.failure) return std::move(*plan.failure);
  const int64_t control_delay = plan.delay_ms;
  std::vector<json> all;
  if (type == "SYSTEM_DEFINED") {
    for (const SystemProfileSpec& p : world_.FindRegion(call.region)->system_profiles) {
      all.push_back(ProfileJson(p, call.region, call.identity.account));
    }
  } else {
    for (const ApplicationProfileSpec& p : world_.application_profiles) {
      if (p.account == call.identity.account && p.region == call.region) all.push_back(ApplicationProfileJson(p));
    }
  }
  json page = json::array();
  for (size_t i = offset; i < all.size() && page.size() < static_cast<size_t>(max_results); ++i) page.push_back(all[i]);
  json body = {{"inferenceProfileSummaries", page}};
  if (offset + page.size() < all.size()) body["nextToken"] = Base64Encode("offset:" + std::to_string(offset + page.size()));
  net::HttpResponse r = JsonResponse(body, call.request_id);
  r.delay = std::chrono::milliseconds(control_delay);
  return r;
}

net::HttpResponse Emulator::GetInferenceProfile(Call& call) {
  const RegionSpec& region = *world_.FindRegion(call.region);
  std::string id = call.target;
  json profile;
  std::string arn;
  if (id.rfind("arn:", 0) == 0) {
    auto described = aws::DescribeArn(id);
    if (described.ok() && described.value().kind == aws::ArnKind::kInferenceProfile &&
        described.value().arn.region == call.region && described.value().arn.account == call.identity.account) {
      id = described.value().profile_id;
    } else if (described.ok() && described.value().kind == aws::ArnKind::kApplicationInferenceProfile) {
      const ApplicationProfileSpec* p = world_.FindApplicationProfile(id);
      if (p != nullptr && p->account == call.identity.account && p->region == call.region) {
        profile = ApplicationProfileJson(*p);
        arn = p->Arn();
      }
      id.clear();
    } else {
      id.clear();
    }
  }
  if (!id.empty()) {
    if (const SystemProfileSpec* p = region.FindProfile(id)) {
      profile = ProfileJson(*p, call.region, call.identity.account);
      arn = profile["inferenceProfileArn"];
    } else {
      for (const ApplicationProfileSpec& a : world_.application_profiles) {
        if (a.id == id && a.account == call.identity.account && a.region == call.region) {
          profile = ApplicationProfileJson(a);
          arn = a.Arn();
        }
      }
    }
  }
  const std::string resource = arn.empty() ? ProfileArn(call.region, call.identity.account, call.target) : arn;
  Decision d = Evaluate(call.identity.policies, "bedrock:GetInferenceProfile", resource);
  if (d != Decision::kAllow) {
    return call.Error("AccessDeniedException", 403,
                      AccessDeniedMessage(call.identity.arn, "bedrock:GetInferenceProfile", resource, d));
  }
  if (profile.is_null()) {
    return call.Error("ResourceNotFoundException", 404,
                      "Inference profile " + aws::internal::QuoteForMessage(call.target) +
                          " not found; list the valid ids with ListInferenceProfiles.");
  }
  FaultPlan plan = PlanFaults(call, /*stream=*/false);
  if (plan.failure) return std::move(*plan.failure);
  const int64_t control_delay = plan.delay_ms;
  net::HttpResponse r = JsonResponse(profile, call.request_id);
  r.delay = std::chrono::milliseconds(control_delay);
  return r;
}

namespace {

json AliasJson(const AgentSpec& agent, const AgentAliasSpec& alias, bool summary) {
  json routing = json::array();
  if (!alias.agent_version.empty()) routing.push_back({{"agentVersion", alias.agent_version}});
  json j = {{"agentAliasId", alias.id},
            {"agentAliasName", alias.name},
            {"agentAliasStatus", alias.status},
            {"routingConfiguration", routing},
            {"createdAt", agent.created_at},
            {"updatedAt", agent.created_at},
            {"aliasInvocationState", "ACCEPT_INVOCATIONS"}};
  if (!alias.description.empty()) j["description"] = alias.description;
  if (!summary) {
    j["agentId"] = agent.id;
    j["agentAliasArn"] = AliasArn(agent, alias.id);
    json history = json::array();
    if (!alias.agent_version.empty()) {
      history.push_back({{"routingConfiguration", routing}, {"startDate", agent.created_at}});
    }
    j["agentAliasHistoryEvents"] = history;
  }
  return j;
}

}  // namespace

net::HttpResponse Emulator::GetAgent(Call& call) {
  const AgentSpec* agent = world_.FindAgent(call.region, call.agent_id);
  std::string arn = agent != nullptr ? AgentArn(*agent)
                                     : "arn:aws:bedrock:" + call.region + ":" + call.identity.account + ":agent/" +
                                           call.agent_id;
  Decision d = Evaluate(call.identity.policies, "bedrock:GetAgent", arn);
  if (d != Decision::kAllow) {
    return call.Error("AccessDeniedException", 403, AccessDeniedMessage(call.identity.arn, "bedrock:GetAgent", arn, d));
  }
  if (agent == nullptr || agent->account != call.identity.account) {
    return call.Error("ResourceNotFoundException", 404,
                      "Agent " + aws::internal::QuoteForMessage(call.agent_id, 20) + " not found in " + call.region +
                          " for account " + call.identity.account + "; check the agent id and the region.");
  }
  FaultPlan plan = PlanFaults(call, /*stream=*/false);
  if (plan.failure) return std::move(*plan.failure);
  const int64_t control_delay = plan.delay_ms;
  const AgentVersionSpec& draft = agent->versions.front();
  json a = {{"agentId", agent->id},
            {"agentName", agent->name},
            {"agentArn", arn},
            {"agentVersion", "DRAFT"},
            {"agentStatus", agent->status},
            {"foundationModel", draft.foundation_model},
            {"instruction", draft.instruction},
            {"idleSessionTTLInSeconds", agent->idle_session_ttl_seconds},
            {"agentResourceRoleArn", agent->resource_role_arn},
            {"orchestrationType", "DEFAULT"},
            {"createdAt", agent->created_at},
            {"updatedAt", agent->created_at},
            {"preparedAt", agent->created_at}};
  if (draft.guardrail) {
    a["guardrailConfiguration"] = {{"guardrailIdentifier", draft.guardrail->id},
                                   {"guardrailVersion", draft.guardrail->version}};
  }
  net::HttpResponse r = JsonResponse({{"agent", a}}, call.request_id);
  r.delay = std::chrono::milliseconds(control_delay);
  return r;
}

net::HttpResponse Emulator::GetAgentAlias(Call& call) {
  const std::string& alias_id = call.segments[3];
  const AgentSpec* agent = world_.FindAgent(call.region, call.agent_id);
  if (agent != nullptr && agent->account != call.identity.account) agent = nullptr;
  std::string arn = "arn:aws:bedrock:" + call.region + ":" + call.identity.account + ":agent-alias/" + call.agent_id +
                    "/" + alias_id;
  Decision d = Evaluate(call.identity.policies, "bedrock:GetAgentAlias", arn);
  if (d != Decision::kAllow) {
    return call.Error("AccessDeniedException", 403,
                      AccessDeniedMessage(call.identity.arn, "bedrock:GetAgentAlias", arn, d));
  }
  std::optional<AgentAliasSpec> alias = agent == nullptr ? std::nullopt : agent->FindAlias(alias_id);
  if (!alias) {
    return call.Error("ResourceNotFoundException", 404,
                      "Agent alias " + aws::internal::QuoteForMessage(alias_id, 20) + " of agent " +
                          aws::internal::QuoteForMessage(call.agent_id, 20) +
                          " not found; list the aliases with ListAgentAliases.");
  }
  FaultPlan plan = PlanFaults(call, /*stream=*/false);
  if (plan.failure) return std::move(*plan.failure);
  const int64_t control_delay = plan.delay_ms;
  net::HttpResponse r = JsonResponse({{"agentAlias", AliasJson(*agent, *alias, false)}}, call.request_id);
  r.delay = std::chrono::milliseconds(control_delay);
  return r;
}

net::HttpResponse Emulator::ListAgentAliases(Call& call, const net::HttpServerRequest& request) {
  const AgentSpec* agent = world_.FindAgent(call.region, call.agent_id);
  if (agent != nullptr && agent->account != call.identity.account) agent = nullptr;
  std::string arn = "arn:aws:bedrock:" + call.region + ":" + call.identity.account + ":agent/" + call.agent_id;
  Decision d = Evaluate(call.identity.policies, "bedrock:ListAgentAliases", arn);
  if (d != Decision::kAllow) {
    return call.Error("AccessDeniedException", 403,
                      AccessDeniedMessage(call.identity.arn, "bedrock:ListAgentAliases", arn, d));
  }
  if (agent == nullptr) {
    return call.Error("ResourceNotFoundException", 404,
                      "Agent " + aws::internal::QuoteForMessage(call.agent_id, 20) + " not found in " + call.region +
                          "; check the agent id and the region.");
  }
  int64_t max_results = 1000;
  size_t offset = 0;
  if (!request.body.empty()) {
    json body = json::parse(request.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      return call.Error("ValidationException", 400, "The request body is not valid JSON.");
    }
    if (body.contains("maxResults")) {
      if (!body["maxResults"].is_number_integer() || body["maxResults"].get<int64_t>() < 1 ||
          body["maxResults"].get<int64_t>() > 1000) {
        return call.Error("ValidationException", 400,
                          "1 validation error detected: Value at 'maxResults' failed to satisfy constraint: Member "
                          "must have value between 1 and 1000");
      }
      max_results = body["maxResults"].get<int64_t>();
    }
    if (body.contains("nextToken")) {
      auto decoded = body["nextToken"].is_string() ? Base64Decode(body["nextToken"].get<std::string>())
                                                   : Result<std::string>(InvalidArgumentError("x"));
      if (!decoded.ok() || decoded.value().rfind("offset:", 0) != 0) {
        return call.Error("ValidationException", 400, "The pagination token is invalid; pass the nextToken of the previous response unchanged.");
      }
      offset = std::strtoull(decoded.value().c_str() + 7, nullptr, 10);
    }
  }
  FaultPlan plan = PlanFaults(call, /*stream=*/false);
  if (plan.failure) return std::move(*plan.failure);
  const int64_t control_delay = plan.delay_ms;
  std::vector<AgentAliasSpec> aliases;
  bool has_draft = false;
  for (const AgentAliasSpec& a : agent->aliases) has_draft = has_draft || a.id == "TSTALIASID";
  if (!has_draft) {
    if (auto draft = agent->FindAlias("TSTALIASID")) aliases.push_back(*draft);
  }
  aliases.insert(aliases.end(), agent->aliases.begin(), agent->aliases.end());
  json page = json::array();
  for (size_t i = offset; i < aliases.size() && page.size() < static_cast<size_t>(max_results); ++i) {
    page.push_back(AliasJson(*agent, aliases[i], true));
  }
  json body = {{"agentAliasSummaries", page}};
  if (offset + page.size() < aliases.size()) body["nextToken"] = Base64Encode("offset:" + std::to_string(offset + page.size()));
  net::HttpResponse r = JsonResponse(body, call.request_id);
  r.delay = std::chrono::milliseconds(control_delay);
  return r;
}

// ---------------------------------------------------------------------------
// STS (query protocol, XML)

net::HttpResponse Emulator::Sts(Call& call, const net::HttpServerRequest& /*request*/) {
  using aws::internal::XmlEscape;
  int64_t control_delay = 0;
  auto xml = [&](const std::string& op, const std::string& result) {
    net::HttpResponse r;
    r.headers = {{"Content-Type", "text/xml"}, {"x-amzn-RequestId", call.request_id}};
    r.body = "<" + op + "Response xmlns=\"" + std::string(kStsNamespace) + "\">\n  <" + op + "Result>\n" + result +
             "  </" + op + "Result>\n  <ResponseMetadata>\n    <RequestId>" + call.request_id +
             "</RequestId>\n  </ResponseMetadata>\n</" + op + "Response>\n";
    r.delay = std::chrono::milliseconds(control_delay);
    return r;
  };
  if (call.operation == "GetCallerIdentity") {
    FaultPlan plan = PlanFaults(call, /*stream=*/false);
    if (plan.failure) return std::move(*plan.failure);
    control_delay = plan.delay_ms;
    return xml("GetCallerIdentity", "    <Arn>" + XmlEscape(call.identity.arn) + "</Arn>\n    <UserId>" +
                                        XmlEscape(call.identity.user_id) + "</UserId>\n    <Account>" +
                                        call.identity.account + "</Account>\n");
  }
  // AssumeRole
  const std::string role_arn = call.form.count("RoleArn") ? call.form["RoleArn"] : "";
  const std::string session = call.form.count("RoleSessionName") ? call.form["RoleSessionName"] : "";
  if (role_arn.size() < 20) {
    return call.Error("ValidationError", 400,
                      "1 validation error detected: Value '" + aws::internal::QuoteForMessage(role_arn, 64) +
                          "' at 'roleArn' failed to satisfy constraint: Member must have length greater than or equal to 20");
  }
  const bool session_ok = session.size() >= 2 && session.size() <= 64 &&
                          std::all_of(session.begin(), session.end(), [](char c) {
                            return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("_+=,.@-", c) != nullptr;
                          });
  if (!session_ok) {
    return call.Error("ValidationError", 400,
                      "1 validation error detected: Value '" + aws::internal::QuoteForMessage(session, 64) +
                          "' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression "
                          "pattern: [\\w+=,.@-]*");
  }
  // arn:aws:iam::{account}:role/{name}
  const AccountSpec* account = nullptr;
  const RoleSpec* role = nullptr;
  if (role_arn.rfind("arn:aws:iam::", 0) == 0 && role_arn.size() > 13 + 12 + 6 &&
      role_arn.compare(25, 6, ":role/") == 0) {
    account = world_.FindAccount(role_arn.substr(13, 12));
    if (account != nullptr) role = account->FindRole(role_arn.substr(31));
  }
  bool trusted = false;
  bool named = false;
  if (role != nullptr) {
    for (const std::string& p : role->trusted_principals) {
      if (WildcardMatch(p, call.identity.arn, false)) named = trusted = true;
      if (p == "arn:aws:iam::" + call.identity.account + ":root" || p == call.identity.account) trusted = true;
    }
  }
  Decision d = Evaluate(call.identity.policies, "sts:AssumeRole", role_arn);
  const bool cross_account = account != nullptr && account->id != call.identity.account;
  if (role == nullptr || !trusted || (d == Decision::kExplicitDeny) ||
      (d != Decision::kAllow && (!named || cross_account))) {
    return call.Error("AccessDenied", 403,
                      "User: " + call.identity.arn + " is not authorized to perform: sts:AssumeRole on resource: " +
                          role_arn);
  }
  int64_t duration = 3600;
  if (call.form.count("DurationSeconds")) {
    char* end = nullptr;
    duration = std::strtoll(call.form["DurationSeconds"].c_str(), &end, 10);
    if (*end != '\0' || duration < 900) {
      return call.Error("ValidationError", 400,
                        "1 validation error detected: Value at 'durationSeconds' failed to satisfy constraint: Member "
                        "must have value greater than or equal to 900");
    }
    if (duration > role->max_session_seconds) {
      return call.Error("ValidationError", 400,
                        "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.");
    }
  }
  FaultPlan plan = PlanFaults(call, /*stream=*/false);
  if (plan.failure) return std::move(*plan.failure);
  control_delay = plan.delay_ms;
  TempCredential temp;
  const std::string key_id = RandomId("ASIA", 16);
  temp.secret = Base64Encode(SecureRandomBytes(30));
  temp.session_token = "IQoJb3JpZ2luX2VjE" + Base64Encode(SecureRandomBytes(96));
  temp.expiration = clock_.Now() + std::chrono::seconds(duration);
  temp.account = account->id;
  temp.role_name = role->name;
  temp.session_name = session;
  {
    std::lock_guard<std::mutex> lock(temp_mutex_);
    // Bounded: drop expired credentials, then the oldest when still full.
    if (temp_credentials_.size() >= 10'000) {
      const WallTime now = clock_.Now();
      for (auto it = temp_credentials_.begin(); it != temp_credentials_.end();) {
        it = it->second.expiration <= now ? temp_credentials_.erase(it) : std::next(it);
      }
      if (temp_credentials_.size() >= 10'000) temp_credentials_.erase(temp_credentials_.begin());
    }
    temp_credentials_[key_id] = temp;
  }
  const std::string role_id = DerivedId("AROA", "arn:aws:iam::" + account->id + ":role/" + role->name, 17);
  return xml("AssumeRole",
             "    <Credentials>\n      <AccessKeyId>" + key_id + "</AccessKeyId>\n      <SecretAccessKey>" +
                 XmlEscape(temp.secret) + "</SecretAccessKey>\n      <SessionToken>" + XmlEscape(temp.session_token) +
                 "</SessionToken>\n      <Expiration>" + FormatIso8601Utc(temp.expiration) +
                 "</Expiration>\n    </Credentials>\n    <AssumedRoleUser>\n      <AssumedRoleId>" + role_id + ":" +
                 XmlEscape(session) + "</AssumedRoleId>\n      <Arn>arn:aws:sts::" + account->id + ":assumed-role/" +
                 XmlEscape(role->name) + "/" + XmlEscape(session) + "</Arn>\n    </AssumedRoleUser>\n");
}

// ---------------------------------------------------------------------------
// Counters, request log and the admin endpoint.

void Emulator::Record(const Call& call, const net::HttpResponse& response) {
  std::string outcome = call.error_code.empty() ? (response.status / 100 == 2 ? "ok" : std::to_string(response.status))
                                                : call.error_code;
  LoggedCall entry{.time = clock_.Now(),
                   .operation = call.operation,
                   .identity = call.identity.arn,
                   .region = call.region,
                   .target = call.target,
                   .model = call.model_id,
                   .outcome = std::move(outcome),
                   .error_code = call.error_code,
                   .request_id = call.request_id,
                   .status = response.status};
  std::lock_guard<std::mutex> lock(stats_mutex_);
  ++total_calls_;
  ++counters_[call.operation][entry.outcome];
  request_log_.push_back(std::move(entry));
  while (request_log_.size() > static_cast<size_t>(world_.request_log_size)) request_log_.pop_front();
}

json Emulator::CountersJson() const {
  std::lock_guard<std::mutex> lock(stats_mutex_);
  json ops = json::object();
  for (const auto& [op, outcomes] : counters_) {
    json o = json::object();
    int64_t total = 0;
    for (const auto& [outcome, count] : outcomes) {
      o[outcome] = count;
      total += count;
    }
    o["total"] = total;
    ops[op] = o;
  }
  return {{"total", total_calls_}, {"operations", ops}};
}

int64_t Emulator::CallCount(std::string_view operation) const {
  std::lock_guard<std::mutex> lock(stats_mutex_);
  auto it = counters_.find(std::string(operation));
  if (it == counters_.end()) return 0;
  int64_t total = 0;
  for (const auto& [outcome, count] : it->second) total += count;
  return total;
}

json Emulator::RequestLogJson() const {
  std::lock_guard<std::mutex> lock(stats_mutex_);
  json list = json::array();
  for (const LoggedCall& e : request_log_) {
    list.push_back({{"time", FormatIso8601Utc(e.time)},
                    {"operation", e.operation},
                    {"identity", e.identity},
                    {"region", e.region},
                    {"target", e.target},
                    {"model", e.model},
                    {"status", e.status},
                    {"outcome", e.outcome},
                    {"error_code", e.error_code},
                    {"request_id", e.request_id}});
  }
  return {{"requests", list}};
}

json Emulator::FaultsJson() const {
  std::lock_guard<std::mutex> lock(fault_mutex_);
  json list = json::array();
  for (const FaultState& f : faults_) {
    json j = f.rule.ToJson();
    if (f.rule.count) j["remaining"] = f.remaining;
    list.push_back(j);
  }
  return {{"faults", list}};
}

void Emulator::AddFault(FaultRule rule) {
  std::lock_guard<std::mutex> lock(fault_mutex_);
  FaultState state;
  state.remaining = rule.count.value_or(-1);
  state.rule = std::move(rule);
  if (faults_.size() < 1000) faults_.push_back(std::move(state));
}

void Emulator::ClearFaults() {
  std::lock_guard<std::mutex> lock(fault_mutex_);
  faults_.clear();
}

void Emulator::Reset() {
  {
    std::lock_guard<std::mutex> lock(stats_mutex_);
    total_calls_ = 0;
    counters_.clear();
    request_log_.clear();
  }
  {
    std::lock_guard<std::mutex> lock(quota_mutex_);
    quota_windows_.clear();
  }
  {
    std::lock_guard<std::mutex> lock(sessions_mutex_);
    sessions_ = std::make_shared<AgentSessions>();
  }
}

net::HttpResponse Emulator::HandleAdmin(const net::HttpServerRequest& request, std::string_view path) {
  const std::string& m = request.method;
  const std::string id = RandomUuid();
  if (path == "/_quarry/healthz" && m == "GET") return JsonResponse({{"status", "ok"}}, id);
  if (path == "/_quarry/counters" && m == "GET") return JsonResponse(CountersJson(), id);
  if (path == "/_quarry/requests" && m == "GET") return JsonResponse(RequestLogJson(), id);
  if (path == "/_quarry/reset" && m == "POST") {
    Reset();
    return JsonResponse({{"reset", true}}, id);
  }
  if (path == "/_quarry/faults") {
    if (m == "GET") return JsonResponse(FaultsJson(), id);
    if (m == "DELETE") {
      ClearFaults();
      return JsonResponse({{"faults", json::array()}}, id);
    }
    if (m == "POST") {
      json body = json::parse(request.body, nullptr, false);
      if (body.is_discarded()) {
        return JsonResponse({{"message", "the body is not JSON; send a fault rule, a list of rules or {\"faults\": [...]}"}}, id, 400);
      }
      if (body.is_object() && body.contains("faults")) body = body["faults"];
      if (body.is_object()) body = json::array({body});
      if (!body.is_array()) return JsonResponse({{"message", "send a fault rule object or a list of them"}}, id, 400);
      std::vector<FaultRule> rules;
      for (size_t i = 0; i < body.size(); ++i) {
        auto rule = ParseFaultRule(body[i], "faults[" + std::to_string(i) + "]");
        if (!rule.ok()) return JsonResponse({{"message", rule.status().message()}}, id, 400);
        rules.push_back(std::move(rule).value());
      }
      for (FaultRule& r : rules) AddFault(std::move(r));
      json out = FaultsJson();
      out["added"] = rules.size();
      return JsonResponse(out, id);
    }
  }
  return JsonResponse({{"message", "unknown admin endpoint; use GET /_quarry/healthz, /_quarry/counters, "
                                   "/_quarry/requests, GET|POST|DELETE /_quarry/faults, POST /_quarry/reset"}},
                      id, 404);
}

}  // namespace quarry::sim
