#include "engine/provider_clients.h"

#include <cctype>
#include <utility>

#include <spdlog/spdlog.h>

#include "aws/credential_provider.h"
#include "aws/region.h"

namespace quarry::engine {
namespace {

using nlohmann::json;

// Calls STS AssumeRole with the source credentials. Wrapped in a
// CachingCredentialProvider, which refreshes before expiry and lets one
// caller refresh at a time.
class AssumeRoleCredentialProvider final : public aws::CredentialProvider {
 public:
  AssumeRoleCredentialProvider(std::unique_ptr<aws::RoleAssumer> assumer,
                               std::shared_ptr<aws::CredentialProvider> source, aws::AssumeRoleRequest request)
      : assumer_(std::move(assumer)), source_(std::move(source)), request_(std::move(request)) {}

  Result<aws::Credentials> GetCredentials() override {
    Result<aws::Credentials> source = source_->GetCredentials();
    if (!source.ok()) {
      return source.status().WithContext("getting the source credentials to assume " + request_.role_arn);
    }
    Result<aws::Credentials> assumed = assumer_->AssumeRole(request_, source.value());
    if (!assumed.ok()) return assumed.status().WithContext("assuming " + request_.role_arn);
    return assumed;
  }

 private:
  std::unique_ptr<aws::RoleAssumer> assumer_;
  std::shared_ptr<aws::CredentialProvider> source_;
  aws::AssumeRoleRequest request_;
};

std::shared_ptr<aws::CredentialProvider> StaticKeys(const domain::ProviderSecrets& secrets, std::string source) {
  aws::Credentials c;
  c.access_key_id = secrets.access_key_id.reveal();
  c.secret_access_key = secrets.secret_access_key.reveal();
  c.session_token = secrets.session_token.reveal();
  c.source = std::move(source);
  return std::make_shared<aws::StaticCredentialProvider>(std::move(c));
}

std::string SessionNameFor(const ProviderClientSpec& spec) {
  if (!spec.config.session_name.empty()) return spec.config.session_name;
  std::string name = "quarry";
  if (!spec.provider_id.empty()) name += "-" + spec.provider_id;
  // Role session names allow [\w+=,.@-]{2,64}.
  for (char& c : name) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && std::string_view("_+=,.@-").find(c) == std::string_view::npos) {
      c = '-';
    }
  }
  return name.substr(0, 64);
}

std::string SnakeCase(std::string_view code) {
  std::string out;
  for (size_t i = 0; i < code.size(); ++i) {
    char c = code[i];
    if (std::isupper(static_cast<unsigned char>(c)) != 0) {
      if (i > 0 && !out.empty() && out.back() != '_' &&
          (std::islower(static_cast<unsigned char>(code[i - 1])) != 0 ||
           (i + 1 < code.size() && std::islower(static_cast<unsigned char>(code[i + 1])) != 0))) {
        out += '_';
      }
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (std::isalnum(static_cast<unsigned char>(c)) != 0) {
      out += c;
    } else if (!out.empty() && out.back() != '_') {
      out += '_';
    }
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out;
}

constexpr int kWorkerThreads = 2;
constexpr size_t kMaxQueuedWork = 10'000;

}  // namespace

struct ProviderClients::Entry {
  struct Token {};
  std::string org_id;
  int64_t version = 0;
  MonotonicTime checked_at{};  // when the provider's version was last read (guarded by mutex_)
  // Handed-out pointers share this token; the entry is idle when it holds
  // the only reference. Declared before `client` so the client (whose
  // destructor runs its calls' completions) goes first.
  std::shared_ptr<Token> token = std::make_shared<Token>();
  std::unique_ptr<bedrock::BedrockClient> client;

  bool idle() const { return token.use_count() == 1; }
  std::shared_ptr<bedrock::BedrockClient> Share() const {
    return std::shared_ptr<bedrock::BedrockClient>(token, client.get());
  }
};

ProviderClients::ProviderClients(std::shared_ptr<store::Database> db, std::shared_ptr<store::SecretStore> secrets,
                                 std::shared_ptr<const Clock> clock, std::string default_endpoint_url,
                                 std::shared_ptr<MetricsRegistry> metrics,
                                 std::chrono::milliseconds recheck_interval)
    : db_(std::move(db)),
      secrets_(std::move(secrets)),
      clock_(clock ? std::move(clock) : std::shared_ptr<const Clock>(&SystemClock::Get(), [](const Clock*) {})),
      default_endpoint_url_(std::move(default_endpoint_url)),
      metrics_(std::move(metrics)),
      recheck_interval_(recheck_interval) {
  if (metrics_) DeclareBedrockMetrics(*metrics_);
  // AWS_CA_BUNDLE: the CA certificates to trust for AWS endpoints (a
  // TLS-inspecting proxy's), as the AWS SDKs take it. An unreadable file makes
  // every Bedrock call fail with that reason (http_status_).
  const std::optional<std::string> ca_bundle = aws::ProcessEnvironment::Get().GetNonEmpty("AWS_CA_BUNDLE");
  Result<std::unique_ptr<net::HttpClient>> http = net::HttpClient::Create({.ca_bundle = ca_bundle.value_or("")});
  if (http.ok()) {
    http_ = std::shared_ptr<net::HttpClient>(std::move(http).value());
  } else {
    http_status_ = ca_bundle.has_value() ? http.status().WithContext("AWS_CA_BUNDLE") : http.status();
  }
  for (int i = 0; i < kWorkerThreads; ++i) workers_.emplace_back([this] { WorkLoop(); });
}

bool ProviderClients::Defer(std::function<void()> work) {
  {
    std::lock_guard<std::mutex> lock(work_mutex_);
    if (stopping_ || work_.size() >= kMaxQueuedWork) return false;
    work_.push_back(std::move(work));
  }
  work_ready_.notify_one();
  return true;
}

void ProviderClients::WorkLoop() {
  for (;;) {
    std::function<void()> work;
    {
      std::unique_lock<std::mutex> lock(work_mutex_);
      work_ready_.wait(lock, [&] { return stopping_ || !work_.empty(); });
      if (work_.empty()) return;  // stopping and drained
      work = std::move(work_.front());
      work_.pop_front();
    }
    work();
  }
}

ProviderClients::~ProviderClients() {
  {
    std::lock_guard<std::mutex> lock(work_mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  for (std::thread& t : workers_) t.join();
  std::map<std::string, std::shared_ptr<Entry>> clients;
  std::vector<std::shared_ptr<Entry>> retired;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    clients.swap(clients_);
    retired.swap(retired_);
  }
  // Destroying the clients cancels whatever is still in flight and waits for
  // those completions; then the shared HTTP client goes.
  clients.clear();
  retired.clear();
}

std::vector<std::shared_ptr<ProviderClients::Entry>> ProviderClients::TakeIdleRetiredLocked() {
  std::vector<std::shared_ptr<Entry>> idle;
  for (auto it = retired_.begin(); it != retired_.end();) {
    if ((*it)->idle()) {
      idle.push_back(std::move(*it));
      it = retired_.erase(it);
    } else {
      ++it;
    }
  }
  return idle;
}

Result<std::shared_ptr<bedrock::BedrockClient>> ProviderClients::ForProvider(const std::string& org_id,
                                                                             const std::string& provider_id) {
  const MonotonicTime now = clock_->MonotonicNow();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = clients_.find(provider_id);
    if (it != clients_.end() && it->second->org_id == org_id && now - it->second->checked_at < recheck_interval_) {
      return it->second->Share();
    }
  }

  // The provider's row first; its secrets (a decryption) only when a client
  // must be built.
  domain::Provider provider;
  QUARRY_RETURN_IF_ERROR(db_->Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(provider, domain::GetProvider(tx, org_id, provider_id));
    return Status::Ok();
  }));
  std::vector<std::shared_ptr<Entry>> to_destroy;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    to_destroy = TakeIdleRetiredLocked();
    auto it = clients_.find(provider_id);
    if (it != clients_.end() && it->second->version == provider.version && it->second->org_id == org_id) {
      it->second->checked_at = now;
      return it->second->Share();
    }
  }
  to_destroy.clear();
  domain::ProviderSecrets secrets;
  QUARRY_RETURN_IF_ERROR(db_->Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(secrets, domain::LoadProviderSecrets(tx, *secrets_, provider));
    return Status::Ok();
  }));

  ProviderClientSpec spec{provider.id, provider.config, std::move(secrets)};
  Result<std::unique_ptr<bedrock::BedrockClient>> built = Build(spec);
  if (!built.ok()) {
    return FailedPreconditionError("provider " + provider.name + " (" + provider.id +
                                   ") cannot make a Bedrock client: " + built.status().message() +
                                   "; fix its settings with PATCH /api/v1/providers/" + provider.id);
  }
  auto entry = std::make_shared<Entry>();
  entry->org_id = org_id;
  entry->version = provider.version;
  entry->checked_at = now;
  entry->client = std::move(built).value();

  std::lock_guard<std::mutex> lock(mutex_);
  auto it = clients_.find(provider_id);
  if (it != clients_.end()) {
    if (it->second->version >= entry->version && it->second->org_id == org_id) {
      // Another caller built the same (or a newer) one meanwhile: use it and
      // retire ours (idle, so it goes at the next purge).
      retired_.push_back(std::move(entry));
      return it->second->Share();
    }
    retired_.push_back(std::move(it->second));
    it->second = entry;
  } else {
    clients_[provider_id] = entry;
  }
  spdlog::debug("built a Bedrock client for provider {} (version {}, region {})", provider.id, provider.version,
                provider.config.region);
  return entry->Share();
}

void ProviderClients::Invalidate(const std::string& provider_id) {
  std::vector<std::shared_ptr<Entry>> to_destroy;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = clients_.find(provider_id);
    if (it != clients_.end()) {
      retired_.push_back(std::move(it->second));
      clients_.erase(it);
    }
    to_destroy = TakeIdleRetiredLocked();
  }
}

size_t ProviderClients::CachedClientCountForTest() {
  std::lock_guard<std::mutex> lock(mutex_);
  return clients_.size() + retired_.size();
}

Result<std::unique_ptr<bedrock::BedrockClient>> ProviderClients::BuildUnsaved(const ProviderClientSpec& spec) {
  return Build(spec);
}

Result<std::unique_ptr<bedrock::BedrockClient>> ProviderClients::Build(const ProviderClientSpec& spec) {
  if (!http_) return http_status_.WithContext("the HTTP client could not start");
  const domain::ProviderConfig& config = spec.config;
  bedrock::BedrockClientOptions options;
  options.region = config.region;
  options.endpoint_url = config.endpoints.endpoint_url.empty() ? default_endpoint_url_ : config.endpoints.endpoint_url;
  for (const auto& [key, url] : config.endpoints.services) {
    if (key == "runtime") {
      options.service_endpoints[aws::AwsService::kBedrockRuntime] = url;
    } else if (key == "agent_runtime") {
      options.service_endpoints[aws::AwsService::kBedrockAgentRuntime] = url;
    } else if (key == "control") {
      options.service_endpoints[aws::AwsService::kBedrock] = url;
      if (config.endpoints.services.count("agent") == 0) {
        options.service_endpoints[aws::AwsService::kBedrockAgent] = url;
      }
    } else if (key == "agent") {
      options.service_endpoints[aws::AwsService::kBedrockAgent] = url;
    } else if (key == "sts") {
      options.service_endpoints[aws::AwsService::kSts] = url;
    }
  }
  options.clock = clock_.get();
  options.http_client = http_;
  const std::string source_name = spec.provider_id.empty() ? "provider (unsaved)" : "provider " + spec.provider_id;

  switch (config.kind) {
    case domain::CredentialKind::kAccessKey:
    case domain::CredentialKind::kSession:
      options.credentials = StaticKeys(spec.secrets, source_name);
      break;
    case domain::CredentialKind::kApiKey:
      options.bearer_token = spec.secrets.api_key.reveal();
      break;
    case domain::CredentialKind::kDefaultChain:
      options.credentials = std::make_shared<aws::CachingCredentialProvider>(
          std::make_shared<aws::CredentialChain>(aws::CredentialChainOptions{}), *clock_);
      break;
    case domain::CredentialKind::kAssumeRole: {
      std::shared_ptr<aws::CredentialProvider> source;
      if (config.source == "access_key") {
        source = StaticKeys(spec.secrets, source_name);
      } else {
        source = std::make_shared<aws::CachingCredentialProvider>(
            std::make_shared<aws::CredentialChain>(aws::CredentialChainOptions{}), *clock_);
      }
      QUARRY_ASSIGN_OR_RETURN(std::unique_ptr<aws::RoleAssumer> assumer, bedrock::MakeStsRoleAssumer(options));
      aws::AssumeRoleRequest request;
      request.role_arn = config.role_arn;
      request.external_id = config.external_id;
      request.role_session_name = SessionNameFor(spec);
      request.profile = source_name;
      options.credentials = std::make_shared<aws::CachingCredentialProvider>(
          std::make_shared<AssumeRoleCredentialProvider>(std::move(assumer), std::move(source), std::move(request)),
          *clock_);
      break;
    }
  }
  return bedrock::BedrockClient::Create(std::move(options));
}

// ---------------------------------------------------------------------------
// Metrics and errors
// ---------------------------------------------------------------------------

void DeclareBedrockMetrics(MetricsRegistry& metrics) {
  metrics.DeclareCounter("quarry_bedrock_calls_total", "Bedrock and STS calls by operation and outcome.");
  metrics.DeclareHistogram("quarry_bedrock_call_duration_seconds",
                           "Duration of Bedrock and STS calls, retries included.", DefaultLatencyBuckets());
  metrics.DeclareCounter("quarry_bedrock_tokens_total", "Model tokens by direction and model.");
}

void RecordBedrockCall(MetricsRegistry* metrics, std::string_view operation, const bedrock::BedrockError* error,
                       double seconds) {
  if (metrics == nullptr) return;
  std::string outcome = error == nullptr ? "ok" : (error->aws.code.empty() ? "error" : error->aws.code);
  metrics->Add("quarry_bedrock_calls_total", {{"operation", std::string(operation)}, {"outcome", outcome}});
  metrics->Observe("quarry_bedrock_call_duration_seconds", {{"operation", std::string(operation)}},
                   seconds < 0 ? 0 : seconds);
}

void RecordBedrockTokens(MetricsRegistry* metrics, std::string_view model, const bedrock::TokenUsage& usage) {
  if (metrics == nullptr) return;
  if (usage.input_tokens > 0) {
    metrics->Add("quarry_bedrock_tokens_total", {{"direction", "input"}, {"model", std::string(model)}},
                 static_cast<double>(usage.input_tokens));
  }
  if (usage.output_tokens > 0) {
    metrics->Add("quarry_bedrock_tokens_total", {{"direction", "output"}, {"model", std::string(model)}},
                 static_cast<double>(usage.output_tokens));
  }
}

std::string BedrockErrorCode(const bedrock::BedrockError& error) {
  std::string code = error.aws.code;
  for (std::string_view suffix : {"Exception", "Error"}) {
    if (code.size() > suffix.size() && std::string_view(code).ends_with(suffix)) {
      code.resize(code.size() - suffix.size());
      break;
    }
  }
  std::string snake = SnakeCase(code);
  if (snake.empty()) snake = "error";
  return "bedrock_" + snake;
}

json BedrockErrorJson(const bedrock::BedrockError& error) {
  std::string message = error.aws.message.empty() ? error.ToString() : error.aws.message;
  return {{"code", BedrockErrorCode(error)},
          {"message", message},
          {"hint", error.troubleshooting.ToText()},
          {"troubleshooting", error.troubleshooting.ToJson()},
          {"aws",
           {{"code", error.aws.code},
            {"http_status", error.aws.http_status},
            {"request_id", error.aws.request_id},
            {"origin", bedrock::ErrorOriginName(error.origin)},
            {"attempts", error.attempts}}}};
}

}  // namespace quarry::engine
