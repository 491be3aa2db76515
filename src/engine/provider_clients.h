#pragma once
// One Bedrock client per AI Provider, built from the provider's stored
// configuration (region, credential kind, secrets from the SecretStore,
// endpoint overrides) and cached: a client is shared by every call through
// that provider and rebuilt when the provider's version changes (new keys,
// new region), so a key rotation takes effect on the next call without a
// restart. Providers configured with a role get an AssumeRole credential
// provider (temporary credentials refreshed before expiry).
//
// Endpoint: the provider's own override when set, else the server's default
// (ServerSettings::default_endpoint_url, the embedded emulator), else AWS.
//
// Freshness: a cached client is used without reading the database for
// `recheck_interval` after its provider was last read (2 s by default);
// after that the next call reads the provider's version again (and its
// secrets only when the version changed). An update through this node's API
// calls Invalidate, so it applies at once; another node's update applies
// here within the interval. This keeps a database read and a secret
// decryption out of every Bedrock call.
//
// Thread safety: thread-safe. Clients are shared_ptrs: a caller keeps its
// client alive for the length of its call even if the provider changes.
//
// Lifetime of clients (why this is more than a map): a BedrockClient must
// never be destroyed from one of its own callbacks, and destroying it cancels
// its calls. So the shared_ptr handed out does not own the client: it shares
// a token with the cache entry that does. A superseded client is retired and
// destroyed (on a caller's thread, in ForProvider/Invalidate) only once no
// handed-out pointer remains; callbacks may therefore hold and drop the
// pointer freely. Every client is destroyed with ProviderClients, which
// cancels what is still in flight: destroy ProviderClients only after the API
// server stopped, and never use a client pointer after that.
//
// All clients share one net::HttpClient (one event-loop thread).
//
// Metrics (into the registry given): quarry_bedrock_calls_total{operation,
// outcome} (outcome "ok" or the AWS error code), the histogram
// quarry_bedrock_call_duration_seconds{operation}, and
// quarry_bedrock_tokens_total{direction="input"|"output",model}.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bedrock/client.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/status.h"
#include "domain/providers.h"
#include "net/http_client.h"
#include "store/database.h"
#include "store/secrets.h"

namespace quarry::engine {

// What a client is made from.
struct ProviderClientSpec {
  std::string provider_id{};  // names the role session and credential source ("" for unsaved)
  domain::ProviderConfig config{};
  domain::ProviderSecrets secrets{};
};

class ProviderClients {
 public:
  ProviderClients(std::shared_ptr<store::Database> db, std::shared_ptr<store::SecretStore> secrets,
                  std::shared_ptr<const Clock> clock, std::string default_endpoint_url,
                  std::shared_ptr<MetricsRegistry> metrics,
                  std::chrono::milliseconds recheck_interval = std::chrono::seconds(2));
  ~ProviderClients();
  ProviderClients(const ProviderClients&) = delete;
  ProviderClients& operator=(const ProviderClients&) = delete;

  // The client for a provider of `org_id`. NotFound for an unknown provider;
  // FailedPrecondition when its configuration cannot make a client (the
  // message says what to fix).
  Result<std::shared_ptr<bedrock::BedrockClient>> ForProvider(const std::string& org_id,
                                                              const std::string& provider_id);
  // Drops the cached client (after an update or delete).
  void Invalidate(const std::string& provider_id);

  // A client for a configuration that is not stored (yet): Test Connection
  // of new keys before they replace the old ones, and checking a new
  // configuration builds. Owned by the caller, who must destroy it on its own
  // thread (not in a callback of the client) and before this object.
  Result<std::unique_ptr<bedrock::BedrockClient>> BuildUnsaved(const ProviderClientSpec& spec);

  // Runs `work` on one of this object's two background threads (bounded
  // queue of 10,000). For what a Bedrock callback must not do itself because
  // it blocks (a database write after a call). False when the queue is full
  // or shutting down: the caller then runs the work itself. The destructor
  // runs what is queued before destroying the clients.
  bool Defer(std::function<void()> work);

  const std::string& default_endpoint_url() const { return default_endpoint_url_; }
  MetricsRegistry* metrics() const { return metrics_.get(); }
  const Clock& clock() const { return *clock_; }

  // Clients built and still cached or retired (tests).
  size_t CachedClientCountForTest();

 private:
  struct Entry;
  Result<std::unique_ptr<bedrock::BedrockClient>> Build(const ProviderClientSpec& spec);
  // Takes the retired entries no caller holds any more; the caller destroys
  // them outside the lock.
  std::vector<std::shared_ptr<Entry>> TakeIdleRetiredLocked();

  std::shared_ptr<store::Database> db_;
  std::shared_ptr<store::SecretStore> secrets_;
  std::shared_ptr<const Clock> clock_;
  std::string default_endpoint_url_;
  std::shared_ptr<MetricsRegistry> metrics_;
  std::chrono::milliseconds recheck_interval_;
  std::shared_ptr<net::HttpClient> http_;
  Status http_status_;
  void WorkLoop();

  std::mutex work_mutex_;
  std::condition_variable work_ready_;
  std::deque<std::function<void()>> work_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;

  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Entry>> clients_;
  std::vector<std::shared_ptr<Entry>> retired_;
};

// ---------------------------------------------------------------------------
// Bedrock call accounting
// ---------------------------------------------------------------------------

// Declares the three Bedrock metrics (idempotent).
void DeclareBedrockMetrics(MetricsRegistry& metrics);
// One finished call: `error` nullptr for success. `metrics` may be nullptr.
void RecordBedrockCall(MetricsRegistry* metrics, std::string_view operation, const bedrock::BedrockError* error,
                       double seconds);
void RecordBedrockTokens(MetricsRegistry* metrics, std::string_view model, const bedrock::TokenUsage& usage);

// "bedrock_access_denied" for AccessDeniedException, "bedrock_throttling"
// for ThrottlingException, ...: the stable API error code of a Bedrock error.
std::string BedrockErrorCode(const bedrock::BedrockError& error);
// {"code","message","hint","troubleshooting":{...},"aws":{"code","http_status",
// "request_id","origin","attempts"}} — the body of an error envelope, and of a
// failed Test Connection check. Never holds a secret (the client's errors do
// not).
nlohmann::json BedrockErrorJson(const bedrock::BedrockError& error);

}  // namespace quarry::engine
