#pragma once
// The emulator on a socket: an Emulator behind a net::HttpServer. Used by
// `quarry sim`, by process-level tests in-process, and by
// `quarry serve --embedded-sim`.
//
//   auto sim = SimServer::Start(DemoWorld(), {});     // port 0: a free port
//   sim.value()->base_url();                          // "http://127.0.0.1:PORT"
//   sim.value()->Stop();                              // also done by the destructor
//
// Thread safety: Start/Stop from any thread; the emulator is thread-safe.

#include <memory>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "net/http_server.h"
#include "sim/emulator.h"
#include "sim/world.h"

namespace quarry::sim {

struct SimServerOptions {
  std::string host = "127.0.0.1";  // an IP literal
  int port = 0;                    // 0 picks a free port
  int threads = 1;
  const Clock* clock = nullptr;    // nullptr: SystemClock; must outlive the server
};

class SimServer {
 public:
  // Errors: InvalidArgument for a host that is not an IP literal; Unavailable
  // when the port cannot be bound.
  static Result<std::unique_ptr<SimServer>> Start(WorldConfig world, const SimServerOptions& options);
  ~SimServer();

  int port() const;
  std::string base_url() const;
  void Stop();
  Emulator& emulator() { return *emulator_; }

 private:
  SimServer() = default;
  std::unique_ptr<Emulator> emulator_;
  std::unique_ptr<net::HttpServer> server_;
};

}  // namespace quarry::sim
