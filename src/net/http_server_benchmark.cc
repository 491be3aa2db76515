// A trivial HTTP server on quarry::net::HttpServer, for load tests with wrk
// (scripts/bench_http.sh). It is the "bare server" baseline that the Bedrock
// emulator's throughput and memory are compared with.
//
//   http_server_benchmark [--threads N] [--seconds S] [--delay-ms D] [--chunked]
//
// Binds 127.0.0.1 on a free port and prints the port on the first line of
// stdout. Runs until stdin is closed or S seconds have passed (default 600),
// then prints a summary line with the peak RSS on stderr.
//
// Default mode answers every request at once with a ~100-byte JSON body.
// --delay-ms D delays each response by D ms (a timer, not a thread), which is
// how 10,000 concurrent slow responses are measured. With --chunked the
// response is instead a three-event chunked stream, the first event after D ms.

#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <string_view>

#include "net/http_server.h"

namespace {

using quarry::net::HttpResponse;
using quarry::net::HttpServer;
using quarry::net::HttpServerOptions;
using quarry::net::HttpServerRequest;

// About the size of a small Bedrock JSON reply.
constexpr std::string_view kBody =
    R"({"output":{"message":{"role":"assistant","content":[{"text":"ok"}]}},"stopReason":"end_turn","usage":{"inputTokens":3}})";

std::string ProcStatusField(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) {
      const size_t start = line.find_first_not_of(" \t", field.size() + 1);
      return start == std::string::npos ? "" : line.substr(start);
    }
  }
  return "?";
}

int Usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s [--threads N] [--seconds S] [--delay-ms D] [--chunked]\n", argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1;
  long seconds = 600;
  long delay_ms = 0;
  bool chunked = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--threads" && has_value) {
      threads = std::atoi(argv[++i]);
    } else if (arg == "--seconds" && has_value) {
      seconds = std::atol(argv[++i]);
    } else if (arg == "--delay-ms" && has_value) {
      delay_ms = std::atol(argv[++i]);
    } else if (arg == "--chunked") {
      chunked = true;
    } else {
      return Usage(argv[0]);
    }
  }

  HttpResponse reply;
  reply.headers = {{"Content-Type", "application/json"}};
  reply.delay = std::chrono::milliseconds(chunked ? 0 : delay_ms);
  if (chunked) {
    reply.headers = {{"Content-Type", "text/event-stream"}};
    reply.chunked = true;
    reply.chunks = {{std::chrono::milliseconds(delay_ms), "data: {\"delta\":\"Hello\"}\n\n"},
                    {std::chrono::milliseconds(0), "data: {\"delta\":\" world\"}\n\n"},
                    {std::chrono::milliseconds(0), "data: {\"stop\":\"end_turn\"}\n\n"}};
  } else {
    reply.body = std::string(kBody);
  }

  HttpServerOptions options;
  options.threads = threads;
  auto server = HttpServer::Start(options, [&reply](const HttpServerRequest&) { return reply; });
  if (!server.ok()) {
    std::fprintf(stderr, "http_server_benchmark: %s\n", server.status().ToString().c_str());
    return 1;
  }
  std::printf("%d\n", server.value()->port());
  std::fflush(stdout);

  // Wait for stdin to close (EOF) or the time limit, whichever comes first.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd input{STDIN_FILENO, POLLIN, 0};
    const int ready = ::poll(&input, 1, 200);
    if (ready > 0) {
      char buffer[256];
      if (::read(STDIN_FILENO, buffer, sizeof(buffer)) <= 0) break;
    } else if (ready < 0) {
      break;
    }
  }
  const size_t open = server.value()->open_connections();
  server.value()->Stop();
  std::fprintf(stderr, "http_server_benchmark: open_connections_at_exit=%zu VmHWM=%s VmRSS=%s\n",
               open, ProcStatusField("VmHWM").c_str(), ProcStatusField("VmRSS").c_str());
  return 0;
}
