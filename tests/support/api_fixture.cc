#include "tests/support/api_fixture.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "common/crypto.h"
#include "common/encoding.h"
#include "domain/accounts.h"
#include "domain/schema.h"
#include "domain/records.h"
#include "engine/engine.h"
#include "engine/provider_clients.h"
#include "engine/run_store.h"
#include "sim/world.h"
#include "store/migrations.h"

namespace quarry::testing {
namespace {

// The fixture is used from tests only: a set-up failure is fatal, with the
// reason on stderr (gtest is not linked into this library).
[[noreturn]] void Fatal(const std::string& what) {
  std::fprintf(stderr, "ApiFixture: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

template <typename T>
T Must(Result<T> result, const std::string& what) {
  if (!result.ok()) Fatal(what + ": " + result.status().ToString());
  return std::move(result).value();
}

void Must(const Status& status, const std::string& what) {
  if (!status.ok()) Fatal(what + ": " + status.ToString());
}

}  // namespace

const std::string* ApiReply::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoreAsciiCase(key, name)) return &value;
  }
  return nullptr;
}

std::string ApiReply::Describe() const {
  std::string text = request_line + " -> " + std::to_string(status) + " ";
  text += body.size() > 2000 ? body.substr(0, 2000) + "..." : body;
  return text;
}

struct ApiFixture::Impl {
  ScratchDir dir;
  std::unique_ptr<sim::SimServer> emulator;
  std::shared_ptr<api::ServerContext> context;
  std::unique_ptr<api::ApiServer> server;
  std::unique_ptr<net::HttpClient> client;
};

ApiFixture::ApiFixture(ApiFixtureOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& impl = *impl_;
  if (options.with_emulator) {
    impl.emulator = Must(sim::SimServer::Start(sim::DemoWorld(), {}), "starting the Bedrock emulator");
  }
  const std::string url =
      options.database_url.empty() ? "sqlite:" + impl.dir.Path("quarry.db") : options.database_url;
  std::shared_ptr<store::Database> db = Must(store::Database::Open(url), "opening the database " + url);
  Must(store::ApplyMigrations(*db, engine::AllServerMigrations()), "applying migrations");

  auto keyring = Must(store::Keyring::FromKeys({SecureRandomBytes(32)}), "making a keyring");
  auto context = std::make_shared<api::ServerContext>();
  context->db = db;
  context->secrets = std::make_shared<store::SecretStore>(keyring);
  // The process-wide clock lives forever; the shared_ptr must not delete it.
  context->clock = std::shared_ptr<const Clock>(&SystemClock::Get(), [](const Clock*) {});
  context->metrics = std::make_shared<MetricsRegistry>();
  context->settings.data_dir = impl.dir.path();
  context->settings.default_endpoint_url = impl.emulator ? impl.emulator->base_url() : "";
  context->provider_clients = std::make_shared<engine::ProviderClients>(
      context->db, context->secrets, context->clock, context->settings.default_endpoint_url, context->metrics);
  context->records = std::make_shared<domain::RecordService>(context->db, context->clock);
  engine::EngineDeps engine_deps{.db = context->db,
                                 .clock = context->clock,
                                 .metrics = context->metrics,
                                 .provider_clients = context->provider_clients,
                                 .records = context->records,
                                 .http = nullptr};
  engine::EngineOptions engine_options;
  engine_options.blocking_threads = 4;
  engine_options.poll_interval = std::chrono::milliseconds(50);
  context->engine = Must(engine::Engine::Create(std::move(engine_deps), std::move(engine_options)),
                         "creating the automation engine");
  Must(context->engine->Start(), "starting the automation engine");
  impl.context = context;

  // The organization and one user of each role, each with an API token.
  struct Seed {
    const char* email;
    domain::Role role;
    std::string* user_id;
    std::string* token;
  };
  const Seed seeds[] = {
      {"admin@example.com", domain::Role::kAdmin, &admin_user_id, &admin_token},
      {"builder@example.com", domain::Role::kBuilder, &builder_user_id, &builder_token},
      {"member@example.com", domain::Role::kMember, &member_user_id, &member_token},
      {"admin@unverified.test", domain::Role::kAdmin, &outsider_user_id, &outsider_token},
  };
  const Clock& clock = *context->clock;
  Must(db->Write([&](store::Tx& tx) -> Status {
         QUARRY_ASSIGN_OR_RETURN(domain::Organization org, domain::CreateOrganization(tx, clock, "Example"));
         org_id = org.id;
         QUARRY_RETURN_IF_ERROR(domain::AddVerifiedDomain(tx, clock, org.id, "example.com", "").status());
         for (const Seed& seed : seeds) {
           domain::NewUser user;
           user.org_id = org.id;
           user.email = seed.email;
           user.role = seed.role;
           QUARRY_ASSIGN_OR_RETURN(domain::User created, domain::CreateUser(tx, clock, user));
           *seed.user_id = created.id;
           QUARRY_ASSIGN_OR_RETURN(domain::NewApiToken token,
                                   domain::CreateApiToken(tx, clock, org.id, created.id, "fixture"));
           *seed.token = token.secret.reveal();
         }
         return Status::Ok();
       }),
       "seeding the organization and users");

  api::ApiServerOptions server_options;
  server_options.worker_threads = 4;
  impl.server = Must(api::ApiServer::Start(context, server_options), "starting the API server");
  impl.client = Must(net::HttpClient::Create(), "creating the HTTP client");
}

ApiFixture::~ApiFixture() {
  // Order matters: no request may run while what it uses goes away, and the
  // provider clients go only after the server stopped (their contract).
  impl_->client.reset();
  if (impl_->server) impl_->server->Stop();
  impl_->server.reset();
  if (impl_->context && impl_->context->engine) impl_->context->engine->Drain(std::chrono::seconds(2));
  impl_->context.reset();
  if (impl_->emulator) impl_->emulator->Stop();
}

std::string ApiFixture::base_url() const { return impl_->server->base_url(); }
std::string ApiFixture::emulator_url() const { return impl_->emulator ? impl_->emulator->base_url() : ""; }
api::ServerContext& ApiFixture::context() { return *impl_->context; }
sim::SimServer* ApiFixture::emulator() { return impl_->emulator.get(); }

ApiReply ApiFixture::Call(std::string_view method, std::string_view path, const std::string& token,
                          const nlohmann::json& body, const net::HttpHeaders& extra_headers) {
  return CallRaw(method, path, token, body.is_null() ? std::string() : body.dump(), extra_headers);
}

ApiReply ApiFixture::CallRaw(std::string_view method, std::string_view path, const std::string& token,
                             std::string body, const net::HttpHeaders& extra_headers) {
  net::HttpClientRequest request;
  request.method = std::string(method);
  request.url = base_url() + std::string(path);
  if (!token.empty()) request.headers.emplace_back("Authorization", "Bearer " + token);
  if (!body.empty()) request.headers.emplace_back("Content-Type", "application/json");
  for (const auto& header : extra_headers) request.headers.push_back(header);
  request.body = std::move(body);
  request.request_timeout = std::chrono::seconds(60);
  request.idle_timeout = std::chrono::seconds(60);

  ApiReply reply;
  reply.request_line = std::string(method) + " " + std::string(path);
  net::HttpClientResponse response = impl_->client->Send(std::move(request));
  if (response.outcome != net::TransportOutcome::kOk) {
    reply.status = 0;
    reply.body = "transport error: " + response.error;
    return reply;
  }
  reply.status = response.status;
  reply.headers = std::move(response.headers);
  reply.body = std::move(response.body);
  const nlohmann::json parsed = nlohmann::json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
  reply.json = parsed.is_discarded() ? nlohmann::json(nullptr) : parsed;
  return reply;
}

std::string ApiFixture::AddWorkingProvider(const std::string& name) {
  const nlohmann::json body = {
      {"name", name},
      {"region", "us-east-1"},
      {"credentials",
       {{"kind", "access_key"},
        {"access_key_id", std::string(sim::kDemoAccessKeyId)},
        {"secret_access_key", std::string(sim::kDemoSecretAccessKey)}}},
  };
  ApiReply created = Call("POST", "/api/v1/providers", admin_token, body);
  if (created.status != 201 || !created.json.is_object() || !created.json.contains("id")) {
    std::fprintf(stderr, "ApiFixture::AddWorkingProvider: %s\n", created.Describe().c_str());
    return "";
  }
  const std::string id = created.json["id"].get<std::string>();
  ApiReply tested = Call("POST", "/api/v1/providers/" + id + "/test", admin_token, nlohmann::json::object());
  if (tested.status != 200) {
    std::fprintf(stderr, "ApiFixture::AddWorkingProvider: %s\n", tested.Describe().c_str());
    return "";
  }
  return id;
}

}  // namespace quarry::testing
