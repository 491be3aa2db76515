#include "engine/provider_clients.h"

#include <atomic>
#include <chrono>
#include <future>
#include <memory>

#include <gtest/gtest.h>

#include "domain/schema.h"
#include "sim/sim_server.h"
#include "sim/world.h"
#include "store/migrations.h"

namespace quarry::engine {
namespace {

class ProviderClientsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto sim = sim::SimServer::Start(sim::DemoWorld(), {});
    ASSERT_TRUE(sim.ok()) << sim.status().ToString();
    sim_ = std::move(sim).value();
    auto db = store::Database::Open("sqlite::memory:");
    ASSERT_TRUE(db.ok());
    db_ = std::shared_ptr<store::Database>(std::move(db).value());
    ASSERT_TRUE(store::ApplyMigrations(*db_, domain::AllMigrations()).ok());
    auto keyring = store::Keyring::FromKeys({std::string(32, 'k')});
    ASSERT_TRUE(keyring.ok());
    secrets_ = std::make_shared<store::SecretStore>(keyring.value());
    metrics_ = std::make_shared<MetricsRegistry>();
    // Rechecked on every call, so a version change shows at once.
    clients_ = std::make_unique<ProviderClients>(db_, secrets_, nullptr, sim_->base_url(), metrics_,
                                                 std::chrono::milliseconds(0));
    actor_.org_id = "org_0000000000000000000a";
    actor_.user_id = "usr_0000000000000000000a";
    actor_.role = domain::Role::kAdmin;
    actor_.email_domain_verified = true;
  }

  domain::Provider Create(const nlohmann::json& credentials) {
    domain::ProviderInput input;
    EXPECT_FALSE(domain::ParseProviderInput(
        {{"name", "p" + std::to_string(++count_)}, {"region", "us-east-1"}, {"credentials", credentials}}, true,
        &input));
    domain::ProviderDraft draft;
    EXPECT_FALSE(domain::ApplyProviderInput(nullptr, nullptr, input, &draft));
    domain::Provider p;
    EXPECT_TRUE(db_->Write([&](store::Tx& tx) -> Status {
                     QUARRY_ASSIGN_OR_RETURN(p, domain::CreateProvider(tx, *secrets_, SystemClock::Get(), actor_,
                                                                       draft, "req"));
                     return Status::Ok();
                   }).ok());
    return p;
  }

  domain::Provider Rename(const domain::Provider& p, const std::string& name) {
    domain::ProviderDraft draft;
    draft.name = name;
    draft.config = p.config;
    domain::Provider after;
    EXPECT_TRUE(db_->Write([&](store::Tx& tx) -> Status {
                     QUARRY_ASSIGN_OR_RETURN(after, domain::UpdateProvider(tx, *secrets_, SystemClock::Get(), actor_,
                                                                           p, draft, std::nullopt, "req"));
                     return Status::Ok();
                   }).ok());
    return after;
  }

  std::unique_ptr<sim::SimServer> sim_;
  std::shared_ptr<store::Database> db_;
  std::shared_ptr<store::SecretStore> secrets_;
  std::shared_ptr<MetricsRegistry> metrics_;
  std::unique_ptr<ProviderClients> clients_;
  domain::Principal actor_;
  int count_ = 0;
};

nlohmann::json DemoKeys() {
  return {{"kind", "access_key"},
          {"access_key_id", std::string(sim::kDemoAccessKeyId)},
          {"secret_access_key", std::string(sim::kDemoSecretAccessKey)}};
}

TEST_F(ProviderClientsTest, OneClientPerProviderVersionKeptAliveWhileHeld) {
  domain::Provider p = Create(DemoKeys());
  auto first = clients_->ForProvider(actor_.org_id, p.id);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto again = clients_->ForProvider(actor_.org_id, p.id);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(first->get(), again->get());
  EXPECT_EQ(clients_->CachedClientCountForTest(), 1u);

  // A new version makes a new client; the old one lives while it is held.
  Rename(p, "renamed");
  auto second = clients_->ForProvider(actor_.org_id, p.id);
  ASSERT_TRUE(second.ok());
  EXPECT_NE(first->get(), second->get());
  EXPECT_EQ(clients_->CachedClientCountForTest(), 2u);
  auto identity = (*first)->GetCallerIdentity();
  ASSERT_TRUE(identity.ok()) << identity.error().ToString();
  EXPECT_EQ(identity.value().account, "111122223333");

  // Released, the retired client goes at the next call.
  first = Result<std::shared_ptr<bedrock::BedrockClient>>(InternalError("released"));
  again = Result<std::shared_ptr<bedrock::BedrockClient>>(InternalError("released"));
  ASSERT_TRUE(clients_->ForProvider(actor_.org_id, p.id).ok());
  EXPECT_EQ(clients_->CachedClientCountForTest(), 1u);

  clients_->Invalidate(p.id);
  second = Result<std::shared_ptr<bedrock::BedrockClient>>(InternalError("released"));
  clients_->Invalidate(p.id);
  EXPECT_EQ(clients_->CachedClientCountForTest(), 0u);

  EXPECT_EQ(clients_->ForProvider("org_other00000000000000a", p.id).status().code(), StatusCode::kNotFound);
}

TEST_F(ProviderClientsTest, CachedClientIsTrustedUntilItsRecheckIntervalOrAnInvalidate) {
  FakeClock clock;
  auto clients = std::make_unique<ProviderClients>(db_, secrets_, std::shared_ptr<const Clock>(&clock, [](auto*) {}),
                                                   sim_->base_url(), metrics_, std::chrono::seconds(2));
  domain::Provider p = Create(DemoKeys());
  auto first = clients->ForProvider(actor_.org_id, p.id);
  ASSERT_TRUE(first.ok()) << first.status().ToString();

  // Changed behind this node's back (as another node would): the cached
  // client serves until the interval has passed...
  const domain::Provider renamed = Rename(p, "renamed elsewhere");
  clock.Advance(std::chrono::milliseconds(1900));
  auto cached = clients->ForProvider(actor_.org_id, p.id);
  ASSERT_TRUE(cached.ok());
  EXPECT_EQ(first->get(), cached->get());
  // ...and another organization never gets it from the cache.
  EXPECT_EQ(clients->ForProvider("org_other00000000000000a", p.id).status().code(), StatusCode::kNotFound);

  clock.Advance(std::chrono::milliseconds(200));
  auto rebuilt = clients->ForProvider(actor_.org_id, p.id);
  ASSERT_TRUE(rebuilt.ok());
  EXPECT_NE(first->get(), rebuilt->get());

  // A local update invalidates at once.
  Rename(renamed, "renamed here");
  clients->Invalidate(p.id);
  auto after_invalidate = clients->ForProvider(actor_.org_id, p.id);
  ASSERT_TRUE(after_invalidate.ok());
  EXPECT_NE(rebuilt->get(), after_invalidate->get());
}

TEST_F(ProviderClientsTest, AsyncCallsOutliveTheirHandlesAndRunDeferredWork) {
  domain::Provider p = Create(DemoKeys());
  std::promise<bool> done;
  {
    auto client = clients_->ForProvider(actor_.org_id, p.id);
    ASSERT_TRUE(client.ok());
    std::shared_ptr<bedrock::BedrockClient> held = *client;
    // The completion holds the only share; dropping it there is safe.
    held->GetCallerIdentity([held, this, &done](bedrock::BedrockResult<bedrock::CallerIdentity> r) mutable {
      const bool ok = r.ok();
      held.reset();
      ASSERT_TRUE(clients_->Defer([&done, ok] { done.set_value(ok); }));
    });
  }
  clients_->Invalidate(p.id);  // retired while the call runs
  auto future = done.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_TRUE(future.get());
}

TEST_F(ProviderClientsTest, BuildsEveryCredentialKind) {
  const std::vector<nlohmann::json> kinds = {
      DemoKeys(),
      {{"kind", "assume_role"},
       {"role_arn", std::string(sim::kDemoRoleArn)},
       {"source", "access_key"},
       {"access_key_id", std::string(sim::kDemoAccessKeyId)},
       {"secret_access_key", std::string(sim::kDemoSecretAccessKey)}},
      {{"kind", "api_key"}, {"api_key", std::string(sim::kDemoApiKey)}},
      {{"kind", "default_chain"}},
  };
  for (const nlohmann::json& kind : kinds) {
    domain::Provider p = Create(kind);
    auto client = clients_->ForProvider(actor_.org_id, p.id);
    ASSERT_TRUE(client.ok()) << kind.dump() << ": " << client.status().ToString();
  }
  // The role is really assumed: the identity is the role's.
  domain::Provider role = Create(kinds[1]);
  auto client = clients_->ForProvider(actor_.org_id, role.id);
  ASSERT_TRUE(client.ok());
  auto identity = (*client)->GetCallerIdentity();
  ASSERT_TRUE(identity.ok()) << identity.error().ToString();
  EXPECT_NE(identity.value().arn.find("assumed-role/quarry-invoker/quarry-" + role.id), std::string::npos)
      << identity.value().arn;
}

TEST(BedrockErrorCodeTest, SnakeCasesTheAwsCode) {
  bedrock::BedrockError e;
  e.aws.code = "AccessDeniedException";
  EXPECT_EQ(BedrockErrorCode(e), "bedrock_access_denied");
  e.aws.code = "SignatureDoesNotMatch";
  EXPECT_EQ(BedrockErrorCode(e), "bedrock_signature_does_not_match");
  e.aws.code = "";
  EXPECT_EQ(BedrockErrorCode(e), "bedrock_error");
}

}  // namespace
}  // namespace quarry::engine
