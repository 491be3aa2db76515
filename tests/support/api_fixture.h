#pragma once
// An in-process Quarry API server for end-to-end tests over real HTTP:
// SQLite in a scratch directory (or a PostgreSQL URL), the Bedrock emulator
// (sim::SimServer with the demo world) on 127.0.0.1:0, the API server on
// 127.0.0.1:0 with default_endpoint_url pointing at the emulator, and one
// organization with users of every role, each with an API token:
//   admin    admin@example.com    (domain example.com is verified)
//   builder  builder@example.com
//   member   member@example.com
//   outsider admin@unverified.test  (an admin whose domain is NOT verified)
//
// Call() sends a request with the given token and parses a JSON reply.
// Thread safety: Call() may be used from several threads.

#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "api/api.h"
#include "api/server.h"
#include "net/http_client.h"
#include "sim/sim_server.h"
#include "tests/support/scratch_dir.h"

namespace quarry::testing {

struct ApiReply {
  int status = 0;
  nlohmann::json json = nullptr;  // null when the body is not JSON
  std::string body{};
  net::HttpHeaders headers{};
  const std::string* Header(std::string_view name) const;
  // "POST /api/v1/x -> 400 {...}" for assertion messages.
  std::string Describe() const;
  std::string request_line{};
};

struct ApiFixtureOptions {
  std::string database_url{};  // "" = sqlite in the scratch dir
  bool with_emulator = true;
};

class ApiFixture {
 public:
  explicit ApiFixture(ApiFixtureOptions options = {});
  ~ApiFixture();

  std::string base_url() const;       // "http://127.0.0.1:PORT"
  std::string emulator_url() const;   // "" without the emulator
  api::ServerContext& context();
  sim::SimServer* emulator();

  std::string admin_token, builder_token, member_token, outsider_token;
  std::string org_id, admin_user_id, builder_user_id, member_user_id, outsider_user_id;

  ApiReply Call(std::string_view method, std::string_view path, const std::string& token,
                const nlohmann::json& body = nullptr,
                const net::HttpHeaders& extra_headers = {});
  // A raw body (for malformed-JSON tests).
  ApiReply CallRaw(std::string_view method, std::string_view path, const std::string& token,
                   std::string body, const net::HttpHeaders& extra_headers = {});

  // Adds a Bedrock provider on the emulator with the demo keys, tests it
  // (so it is "working") and returns its id. For tests of later areas.
  std::string AddWorkingProvider(const std::string& name = "Bedrock demo");

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace quarry::testing
