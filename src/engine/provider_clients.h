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
// Thread safety: thread-safe. Clients are shared_ptrs: a caller keeps its
// client alive for the length of its call even if the provider changes.

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "bedrock/client.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/status.h"
#include "store/database.h"
#include "store/secrets.h"

namespace quarry::engine {

class ProviderClients {
 public:
  ProviderClients(std::shared_ptr<store::Database> db, std::shared_ptr<store::SecretStore> secrets,
                  std::shared_ptr<const Clock> clock, std::string default_endpoint_url,
                  std::shared_ptr<MetricsRegistry> metrics);
  ~ProviderClients();

  // The client for a provider of `org_id`. NotFound for an unknown provider;
  // FailedPrecondition when its configuration cannot make a client (the
  // message says what to fix).
  Result<std::shared_ptr<bedrock::BedrockClient>> ForProvider(const std::string& org_id,
                                                              const std::string& provider_id);
  // Drops the cached client (after an update or delete).
  void Invalidate(const std::string& provider_id);

  const std::string& default_endpoint_url() const { return default_endpoint_url_; }

 private:
  struct Entry;
  std::shared_ptr<store::Database> db_;
  std::shared_ptr<store::SecretStore> secrets_;
  std::shared_ptr<const Clock> clock_;
  std::string default_endpoint_url_;
  std::shared_ptr<MetricsRegistry> metrics_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Entry>> clients_;
};

}  // namespace quarry::engine
