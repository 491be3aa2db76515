// Measures quarry::net::HttpClient against a local net::HttpServer:
//
//   1. sequential: client CPU per request (the loop thread, read with
//      CLOCK_THREAD_CPUTIME_ID from inside on_complete, plus the calling
//      thread), one request at a time, trivial handler;
//   2. pipelined: requests/s and client CPU per request with 64 in flight;
//   3. new connections: sequential requests with "Connection: close", so
//      each one connects anew: client CPU per request including its
//      connection;
//   4. concurrent: N requests (default 10,000) all in flight at once, each
//      delayed 2 s by the server: wall time until all completed, the client
//      process's CPU and peak RSS (VmHWM), and when the requests reached the
//      server and when they completed (from the start of the burst), which
//      tells sending costs from receiving costs.
//
//   http_client_benchmark [--requests N] [--concurrent N] [--delay-ms D] [--warmup N]
//                         [--new-connections N]  (default: requests / 10)
//
// A count of 0 skips its scenario (for profiling one of them alone, e.g.
// under callgrind with small counts). Scenario 4 runs the server in a forked
// child process so that the client's file descriptors (one socket per
// request), CPU and peak RSS are its own.

#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "net/http_client.h"
#include "net/http_server.h"

namespace {

using quarry::net::HttpCallbacks;
using quarry::net::HttpClient;
using quarry::net::HttpClientRequest;
using quarry::net::HttpClientResponse;
using quarry::net::HttpResponse;
using quarry::net::HttpServer;
using quarry::net::HttpServerOptions;
using quarry::net::HttpServerRequest;
using quarry::net::TransportOutcome;
using SteadyClock = std::chrono::steady_clock;

constexpr const char* kBody =
    R"({"output":{"message":{"role":"assistant","content":[{"text":"ok"}]}},"stopReason":"end_turn"})";

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

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

double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

// Runs `total` requests keeping `window` in flight; reports wall time and the
// CPU time of the loop thread and of the calling thread.
struct RunStats {
  int ok = 0;
  int failed = 0;
  double wall_s = 0;
  double loop_cpu_s = 0;
  double caller_cpu_s = 0;
  double first_done_s = 0;  // first and last completion, from the start
  double last_done_s = 0;
  std::string first_error;
};

RunStats RunWindow(HttpClient& client, const std::string& url, int total, int window,
                   std::chrono::milliseconds connect_timeout = std::chrono::milliseconds(3000)) {
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    int started = 0;
    int done = 0;
    double loop_cpu_first = -1;
    double loop_cpu_last = 0;
    SteadyClock::time_point first_done{};
    SteadyClock::time_point last_done{};
    RunStats stats;
  } state;
  HttpClientRequest request;
  request.url = url;
  request.connect_timeout = connect_timeout;
  request.request_timeout = std::chrono::milliseconds(120'000);

  // Starts one request; its on_complete starts the next one (on the loop
  // thread) so that `window` stay in flight.
  std::function<void()> start_one = [&] {
    HttpCallbacks callbacks;
    callbacks.on_complete = [&](HttpClientResponse response) {
      const double cpu = ThreadCpuSeconds();  // the loop thread's
      bool start_next = false;
      {
        std::lock_guard<std::mutex> lock(state.mu);
        if (state.loop_cpu_first < 0) {
          state.loop_cpu_first = cpu;
          state.first_done = SteadyClock::now();
        }
        state.loop_cpu_last = cpu;
        state.last_done = SteadyClock::now();
        if (response.outcome == TransportOutcome::kOk && response.status == 200) {
          ++state.stats.ok;
        } else {
          if (state.stats.failed++ == 0) state.stats.first_error = response.error;
        }
        ++state.done;
        if (state.started < total) {
          ++state.started;
          start_next = true;
        }
        state.cv.notify_all();
      }
      if (start_next) start_one();
    };
    if (!client.Start(request, std::move(callbacks)).ok()) std::abort();
  };

  const double caller_cpu0 = ThreadCpuSeconds();
  const auto t0 = SteadyClock::now();
  {
    std::lock_guard<std::mutex> lock(state.mu);
    state.started = std::min(window, total);
  }
  for (int i = 0; i < std::min(window, total); ++i) start_one();
  {
    std::unique_lock<std::mutex> lock(state.mu);
    state.cv.wait(lock, [&] { return state.done == total; });
  }
  RunStats stats = state.stats;
  stats.wall_s = Seconds(SteadyClock::now() - t0);
  stats.caller_cpu_s = ThreadCpuSeconds() - caller_cpu0;
  stats.loop_cpu_s = state.loop_cpu_last - state.loop_cpu_first;  // from the 1st to the last completion
  stats.first_done_s = Seconds(state.first_done - t0);
  stats.last_done_s = Seconds(state.last_done - t0);
  return stats;
}

// With `new_connections`, every request asks the server to close its
// connection afterwards, so the next one connects anew.
void RunSequential(HttpClient& client, const std::string& url, int total, bool new_connections = false) {
  const double caller_cpu0 = ThreadCpuSeconds();
  double loop_first = -1;
  double loop_last = 0;
  const auto t0 = SteadyClock::now();
  int failed = 0;
  for (int i = 0; i < total; ++i) {
    HttpClientRequest request;
    request.url = url;
    if (new_connections) request.headers = {{"Connection", "close"}};
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    HttpCallbacks callbacks;
    callbacks.on_complete = [&](HttpClientResponse response) {
      const double cpu = ThreadCpuSeconds();
      std::lock_guard<std::mutex> lock(mu);
      if (loop_first < 0) loop_first = cpu;
      loop_last = cpu;
      if (response.outcome != TransportOutcome::kOk) ++failed;
      done = true;
      cv.notify_all();
    };
    if (!client.Start(request, std::move(callbacks)).ok()) std::abort();
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done; });
  }
  const double wall = Seconds(SteadyClock::now() - t0);
  const double caller = ThreadCpuSeconds() - caller_cpu0;
  std::printf(
      "%s: %d requests, %d failed, %.0f req/s, latency %.1f us, client CPU/request: loop %.1f us + caller %.1f us\n",
      new_connections ? "new connection each" : "sequential", total, failed, total / wall, wall / total * 1e6,
      (loop_last - loop_first) / std::max(total - 1, 1) * 1e6, caller / total * 1e6);
}

void RaiseFdLimit() {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
}

}  // namespace

// When the requests of scenario 4 reached the forked server, in nanoseconds
// of the steady clock (CLOCK_MONOTONIC, the same in both processes).
struct Arrivals {
  int64_t first_ns = 0;
  int64_t last_ns = 0;
  int64_t count = 0;
};

int64_t SteadyNanos(SteadyClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

int main(int argc, char** argv) {
  int requests = 20'000;
  int concurrent = 10'000;
  int delay_ms = 2'000;
  int warmup = 1'000;
  int new_connections = -1;  // default: requests / 10
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const int value = std::atoi(argv[i + 1]);
    if (flag == "--requests") requests = value;
    else if (flag == "--concurrent") concurrent = value;
    else if (flag == "--delay-ms") delay_ms = value;
    else if (flag == "--warmup") warmup = value;
    else if (flag == "--new-connections") new_connections = value;
    else {
      std::fprintf(stderr, "usage: %s [--requests N] [--concurrent N] [--delay-ms D] [--warmup N] "
                   "[--new-connections N]\n",
                   argv[0]);
      return 2;
    }
  }
  RaiseFdLimit();

  // Scenario 4's server: a forked child (before any thread exists), which
  // reports its port through a pipe, and when the stop pipe closes, when the
  // requests arrived; then it exits.
  int port_pipe[2];
  int stop_pipe[2];
  if (pipe(port_pipe) != 0 || pipe(stop_pipe) != 0) return 1;
  const pid_t child = fork();
  if (child == 0) {
    close(port_pipe[0]);
    close(stop_pipe[1]);
    std::mutex mu;
    Arrivals arrivals;
    HttpServerOptions options;
    auto server = HttpServer::Start(options, [&, delay_ms](const HttpServerRequest&) {
      {
        const int64_t now = SteadyNanos(SteadyClock::now());
        std::lock_guard<std::mutex> lock(mu);
        if (arrivals.count++ == 0) arrivals.first_ns = now;
        arrivals.last_ns = now;
      }
      HttpResponse response;
      response.body = kBody;
      response.delay = std::chrono::milliseconds(delay_ms);
      return response;
    });
    if (!server.ok()) _exit(1);
    const int port = (*server)->port();
    if (write(port_pipe[1], &port, sizeof(port)) != sizeof(port)) _exit(1);
    char byte;
    while (read(stop_pipe[0], &byte, 1) > 0) {
    }
    (*server)->Stop();
    if (write(port_pipe[1], &arrivals, sizeof(arrivals)) != sizeof(arrivals)) _exit(1);
    _exit(0);
  }
  close(port_pipe[1]);
  close(stop_pipe[0]);
  int slow_port = 0;
  if (read(port_pipe[0], &slow_port, sizeof(slow_port)) != sizeof(slow_port)) return 1;

  auto fast_server = HttpServer::Start(HttpServerOptions{}, [](const HttpServerRequest&) {
    HttpResponse response;
    response.body = kBody;
    return response;
  });
  if (!fast_server.ok()) return 1;
  const std::string fast_url = (*fast_server)->base_url() + "/model/m/invoke";

  auto client_or = HttpClient::Create();
  if (!client_or.ok()) return 1;
  HttpClient& client = **client_or;

  if (warmup > 0) RunWindow(client, fast_url, warmup, 1);
  if (requests > 0) {
    RunSequential(client, fast_url, std::max(requests / 4, 1));
    const RunStats piped = RunWindow(client, fast_url, requests, 64);
    std::printf("64 in flight: %d requests, %d failed, %.0f req/s, client CPU/request: loop %.1f us + caller %.1f us\n",
                requests, piped.failed, requests / piped.wall_s, piped.loop_cpu_s / requests * 1e6,
                piped.caller_cpu_s / requests * 1e6);
  }
  if (new_connections < 0) new_connections = requests / 10;
  if (new_connections > 0) {
    RunSequential(client, fast_url, std::max(new_connections, 2), /*new_connections=*/true);
  }
  std::printf("RSS before the concurrent run: VmHWM %s, VmRSS %s\n", ProcStatusField("VmHWM").c_str(),
              ProcStatusField("VmRSS").c_str());

  if (concurrent > 0) {
    rusage usage0{};
    getrusage(RUSAGE_SELF, &usage0);
    const std::string slow_url = "http://127.0.0.1:" + std::to_string(slow_port) + "/model/m/invoke";
    const int64_t start_ns = SteadyNanos(SteadyClock::now());
    const RunStats slow = RunWindow(client, slow_url, concurrent, concurrent, std::chrono::milliseconds(30'000));
    rusage usage1{};
    getrusage(RUSAGE_SELF, &usage1);
    auto cpu = [](const rusage& u) {
      return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
             static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
    };
    // The fast server is idle here and the slow one lives in the child, so
    // the process CPU is the client's.
    std::printf("%d concurrent, server delay %d ms: %d ok, %d failed, wall %.2f s, client process CPU %.2f s, VmHWM %s\n",
                concurrent, delay_ms, slow.ok, slow.failed, slow.wall_s, cpu(usage1) - cpu(usage0),
                ProcStatusField("VmHWM").c_str());
    if (slow.failed > 0) std::printf("  first error: %s\n", slow.first_error.c_str());
    close(stop_pipe[1]);
    Arrivals arrivals;
    if (read(port_pipe[0], &arrivals, sizeof(arrivals)) == sizeof(arrivals) && arrivals.count > 0) {
      std::printf("  requests reached the server from +%.2f s to +%.2f s; completions from +%.2f s to +%.2f s\n",
                  static_cast<double>(arrivals.first_ns - start_ns) * 1e-9,
                  static_cast<double>(arrivals.last_ns - start_ns) * 1e-9, slow.first_done_s, slow.last_done_s);
    }
    // The child served only this scenario: its CPU is the server's share of
    // the two processes' work.
    waitpid(child, nullptr, 0);
    rusage server_usage{};
    getrusage(RUSAGE_CHILDREN, &server_usage);
    std::printf("  server process CPU %.2f s\n", cpu(server_usage));
  } else {
    close(stop_pipe[1]);
    waitpid(child, nullptr, 0);
  }

  client_or.value().reset();
  return 0;
}
