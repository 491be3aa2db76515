#include "sim/sim_server.h"

#include <arpa/inet.h>

namespace quarry::sim {

Result<std::unique_ptr<SimServer>> SimServer::Start(WorldConfig world, const SimServerOptions& options) {
  // Checked here too so the message names the emulator's option.
  unsigned char buffer[16];
  if (inet_pton(AF_INET, options.host.c_str(), buffer) != 1 && inet_pton(AF_INET6, options.host.c_str(), buffer) != 1) {
    return InvalidArgumentError("--host \"" + options.host +
                                "\" is not an IP address; use an IP literal such as 127.0.0.1 or ::1");
  }
  std::unique_ptr<SimServer> sim(new SimServer());
  const Clock& clock = options.clock != nullptr ? *options.clock : SystemClock::Get();
  sim->emulator_ = std::make_unique<Emulator>(std::move(world), clock);
  net::HttpServerOptions server_options;
  server_options.host = options.host;
  server_options.port = options.port;
  server_options.threads = options.threads;
  Emulator* emulator = sim->emulator_.get();
  QUARRY_ASSIGN_OR_RETURN(sim->server_,
                          net::HttpServer::Start(server_options, [emulator](const net::HttpServerRequest& request) {
                            return emulator->Handle(request);
                          }));
  return sim;
}

SimServer::~SimServer() { Stop(); }

int SimServer::port() const { return server_->port(); }
std::string SimServer::base_url() const { return server_->base_url(); }
void SimServer::Stop() {
  if (server_) server_->Stop();
}

}  // namespace quarry::sim
