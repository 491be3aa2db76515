// Measures quarry::net::HttpClient against a local net::HttpServer:
//
//   1. sequential: client CPU per request (the loop thread, read with
//      CLOCK_THREAD_CPUTIME_ID from inside on_complete, plus the calling
//      thread), one request at a time, trivial handler;
//   2. pipelined: requests/s and client CPU per request with 64 in flight;
//   3. concurrent: N requests (default 10,000) all in flight at once, each
//      delayed 2 s by the server: wall time until all completed and the
//      client process's peak RSS (VmHWM).
//
//   http_client_benchmark [--requests N] [--concurrent N] [--delay-ms D]
//
// Scenario 3 runs the server in a forked child process so that the client's
// file descriptors (one socket per request) and peak RSS are its own.

#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
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
        if (state.loop_cpu_first < 0) state.loop_cpu_first = cpu;
        state.loop_cpu_last = cpu;
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
  return stats;
}

void RunSequential(HttpClient& client, const std::string& url, int total) {
  const double caller_cpu0 = ThreadCpuSeconds();
  double loop_first = -1;
  double loop_last = 0;
  const auto t0 = SteadyClock::now();
  int failed = 0;
  for (int i = 0; i < total; ++i) {
    HttpClientRequest request;
    request.url = url;
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
  std::printf("sequential: %d requests, %d failed, %.0f req/s, latency %.1f us, client CPU/request: loop %.1f us + caller %.1f us\n",
              total, failed, total / wall, wall / total * 1e6, (loop_last - loop_first) / (total - 1) * 1e6,
              caller / total * 1e6);
}

void RaiseFdLimit() {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
}

}  // namespace

int main(int argc, char** argv) {
  int requests = 20'000;
  int concurrent = 10'000;
  int delay_ms = 2'000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const int value = std::atoi(argv[i + 1]);
    if (flag == "--requests") requests = value;
    else if (flag == "--concurrent") concurrent = value;
    else if (flag == "--delay-ms") delay_ms = value;
    else {
      std::fprintf(stderr, "usage: %s [--requests N] [--concurrent N] [--delay-ms D]\n", argv[0]);
      return 2;
    }
  }
  RaiseFdLimit();

  // Scenario 3's server: a forked child (before any thread exists), which
  // reports its port through a pipe and exits when the pipe closes.
  int port_pipe[2];
  int stop_pipe[2];
  if (pipe(port_pipe) != 0 || pipe(stop_pipe) != 0) return 1;
  const pid_t child = fork();
  if (child == 0) {
    close(port_pipe[0]);
    close(stop_pipe[1]);
    HttpServerOptions options;
    auto server = HttpServer::Start(options, [delay_ms](const HttpServerRequest&) {
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

  RunWindow(client, fast_url, 1000, 1);  // warm up
  RunSequential(client, fast_url, requests / 4);
  const RunStats piped = RunWindow(client, fast_url, requests, 64);
  std::printf("64 in flight: %d requests, %d failed, %.0f req/s, client CPU/request: loop %.1f us + caller %.1f us\n",
              requests, piped.failed, requests / piped.wall_s, piped.loop_cpu_s / requests * 1e6,
              piped.caller_cpu_s / requests * 1e6);
  std::printf("RSS before the concurrent run: VmHWM %s, VmRSS %s\n", ProcStatusField("VmHWM").c_str(),
              ProcStatusField("VmRSS").c_str());

  rusage usage0{};
  getrusage(RUSAGE_SELF, &usage0);
  const std::string slow_url = "http://127.0.0.1:" + std::to_string(slow_port) + "/model/m/invoke";
  const RunStats slow = RunWindow(client, slow_url, concurrent, concurrent, std::chrono::milliseconds(30'000));
  rusage usage1{};
  getrusage(RUSAGE_SELF, &usage1);
  auto cpu = [](const rusage& u) {
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
  };
  // The fast server is idle here and the slow one lives in the child, so the
  // process CPU is the client's.
  std::printf("%d concurrent, server delay %d ms: %d ok, %d failed, wall %.2f s, client process CPU %.2f s, VmHWM %s\n",
              concurrent, delay_ms, slow.ok, slow.failed, slow.wall_s, cpu(usage1) - cpu(usage0),
              ProcStatusField("VmHWM").c_str());
  if (slow.failed > 0) std::printf("  first error: %s\n", slow.first_error.c_str());

  client_or.value().reset();
  close(stop_pipe[1]);
  waitpid(child, nullptr, 0);
  return 0;
}
