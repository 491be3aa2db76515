// Benchmarks of the Bedrock client against the emulator (`quarry sim`) run as
// a separate process, so every CPU second and byte of memory of this process
// is the client's (plus Google Benchmark's own, which is negligible).
//
//   BM_InvokeModelClientCpu          blocking InvokeModel, one at a time: client
//                                    CPU per call (getrusage of this process:
//                                    sign, serialise, send, parse, wake-up).
//   BM_InvokeModelThroughput/N       N calls in flight (async): calls per second.
//   BM_InvokeAgent10kConcurrent      10,000 InvokeAgent calls at once, each held
//                                    2 s by the emulator: wall time until the
//                                    last completes, and this process's VmHWM.
//
// The emulator: QUARRY_SIM_URL (with the demo world's first key, e.g. started
// by scripts/bench_client.py so that wrk can measure its ceiling in the same
// run), else `quarry sim` is started here (QUARRY_BINARY, else the build's
// binary) with the demo world minus its quotas and a 2 s latency fault on
// InvokeAgent. Build: -DQUARRY_BENCHMARKS=ON, Release.

#include <benchmark/benchmark.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "aws/credential_provider.h"
#include "bedrock/client.h"
#include "sim/world.h"

namespace quarry::bedrock {
namespace {

constexpr char kModel[] = "anthropic.claude-3-haiku-20240307-v1:0";
constexpr int kConcurrentAgents = 10'000;

// The emulator process (or an external one) and the demo credentials.
class Emulator {
 public:
  static Emulator& Get() {
    static Emulator* instance = new Emulator();  // lives until exit
    return *instance;
  }
  const std::string& url() const { return url_; }
  const std::string& alias_arn() const { return alias_arn_; }
  // The emulator's CPU seconds so far (user + system), or -1 when unknown
  // (an external emulator without QUARRY_SIM_PID).
  double CpuSeconds() const {
    if (pid_ <= 0 && external_pid_ <= 0) return -1;
    std::ifstream stat("/proc/" + std::to_string(pid_ > 0 ? pid_ : external_pid_) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    // Fields after the ")" that ends the command name: state is field 3;
    // utime and stime are fields 14 and 15.
    size_t pos = text.rfind(')');
    if (pos == std::string::npos) return -1;
    std::istringstream fields(text.substr(pos + 2));
    std::string field;
    double utime = 0, stime = 0;
    for (int i = 3; i <= 15 && fields >> field; ++i) {
      if (i == 14) utime = std::stod(field);
      if (i == 15) stime = std::stod(field);
    }
    return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }

  ~Emulator() { Stop(); }
  void Stop() {
    if (pid_ > 0) {
      close(stdin_fd_);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

 private:
  Emulator() {
    RaiseFileLimit();
    if (const char* url = std::getenv("QUARRY_SIM_URL"); url != nullptr && *url != '\0') {
      url_ = url;
      alias_arn_ = "arn:aws:bedrock:us-east-1:111122223333:agent-alias/HELPDESK01/PRODALIAS1";
      if (const char* pid = std::getenv("QUARRY_SIM_PID"); pid != nullptr) external_pid_ = std::atoi(pid);
      return;
    }
    // The demo world without quotas (the client is measured, not throttling),
    // with every InvokeAgent held 2 s.
    nlohmann::json world = nlohmann::json::parse(sim::DemoWorldConfigText());
    world.erase("quotas");
    world["faults"] = nlohmann::json::array(
        {{{"kind", "latency"}, {"operation", "InvokeAgent"}, {"latency_ms", 2000}}});
    config_path_ = "/tmp/quarry_client_benchmark_world_" + std::to_string(getpid()) + ".json";
    std::ofstream(config_path_) << world.dump();

    const char* binary = std::getenv("QUARRY_BINARY");
    const std::string quarry = binary != nullptr ? binary : QUARRY_BINARY;
    int in_pipe[2], out_pipe[2];
    if (pipe(in_pipe) != 0 || pipe(out_pipe) != 0) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in_pipe[0], STDIN_FILENO);
      dup2(out_pipe[1], STDOUT_FILENO);
      close(in_pipe[1]);
      close(out_pipe[0]);
      execl(quarry.c_str(), quarry.c_str(), "sim", "--port", "0", "--config", config_path_.c_str(),
            "--exit-on-stdin-eof", static_cast<char*>(nullptr));
      _exit(127);
    }
    close(in_pipe[0]);
    close(out_pipe[1]);
    stdin_fd_ = in_pipe[1];
    FILE* out = fdopen(out_pipe[0], "r");
    char line[1024];
    for (int i = 0; i < 5 && fgets(line, sizeof line, out) != nullptr; ++i) {
      std::string text(line);
      while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
      if (text.rfind("listening on ", 0) == 0) url_ = text.substr(13);
      if (text.rfind("AGENT_ALIAS_ARN=", 0) == 0) alias_arn_ = text.substr(16);
    }
    fclose(out);
    std::remove(config_path_.c_str());
    if (url_.empty()) throw std::runtime_error("quarry sim did not start: " + quarry);
  }

  // 10,000 sockets here; the child inherits the raised limit too.
  static void RaiseFileLimit() {
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    const rlim_t wanted = 4 * kConcurrentAgents;
    if (limit.rlim_cur < wanted) {
      limit.rlim_cur = limit.rlim_max == RLIM_INFINITY ? wanted : std::min<rlim_t>(wanted, limit.rlim_max);
      setrlimit(RLIMIT_NOFILE, &limit);
    }
  }

  std::string url_, alias_arn_, config_path_;
  pid_t pid_ = -1;
  pid_t external_pid_ = -1;
  int stdin_fd_ = -1;
};

std::unique_ptr<BedrockClient> MakeClient(int max_attempts = 3) {
  aws::Credentials creds;
  creds.access_key_id = "AKIAQUARRYDEMO000001";
  creds.secret_access_key = "quarryDemoSecretKey0000000000000000000001";
  BedrockClientOptions options;
  options.region = "us-east-1";
  options.endpoint_url = Emulator::Get().url();
  options.credentials = std::make_shared<aws::StaticCredentialProvider>(creds);
  options.retry.max_attempts = max_attempts;
  Result<std::unique_ptr<BedrockClient>> client = BedrockClient::Create(options);
  if (!client.ok()) throw std::runtime_error(client.status().message());
  return std::move(client).value();
}

ModelRequest HaikuRequest() {
  ModelRequest request;
  request.model_id = kModel;
  request.system = "Be brief.";
  request.max_tokens = 64;
  request.messages.push_back(ChatMessage::User("Triage: VPN drops every 10 minutes."));
  return request;
}

double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

double PeakRssMb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return -1;
}

void BM_InvokeModelClientCpu(benchmark::State& state) {
  std::unique_ptr<BedrockClient> client = MakeClient();
  const ModelRequest request = HaikuRequest();
  // Warm-up: the connection is opened and kept alive.
  if (!client->InvokeModel(request).ok()) {
    state.SkipWithError("InvokeModel failed during warm-up");
    return;
  }
  int64_t failures = 0;
  const double cpu_start = ProcessCpuSeconds();
  for (auto _ : state) {
    BedrockResult<ModelResult> r = client->InvokeModel(request);
    if (!r.ok()) ++failures;
    benchmark::DoNotOptimize(r);
  }
  const double cpu = ProcessCpuSeconds() - cpu_start;
  state.counters["client_cpu_us_per_call"] = cpu * 1e6 / static_cast<double>(state.iterations());
  state.counters["failures"] = static_cast<double>(failures);
}
BENCHMARK(BM_InvokeModelClientCpu)->UseRealTime()->Unit(benchmark::kMicrosecond)->MinTime(2.0);

// Keeps `in_flight` asynchronous InvokeModel calls going until `total` have
// completed.
void BM_InvokeModelThroughput(benchmark::State& state) {
  const int in_flight = static_cast<int>(state.range(0));
  constexpr int64_t kTotal = 20'000;
  std::unique_ptr<BedrockClient> client = MakeClient();
  const ModelRequest request = HaikuRequest();
  for (auto _ : state) {
    std::mutex mu;
    std::condition_variable done_cv;
    std::atomic<int64_t> started{0}, completed{0}, failed{0};
    std::function<void()> start_one;
    start_one = [&] {
      if (started.fetch_add(1) >= kTotal) return;
      client->InvokeModel(request, [&](BedrockResult<ModelResult> r) {
        if (!r.ok()) failed.fetch_add(1);
        if (completed.fetch_add(1) + 1 == kTotal) {
          std::lock_guard<std::mutex> lock(mu);
          done_cv.notify_all();
        }
        start_one();  // a callback may start the next call (it does not block)
      });
    };
    const double cpu_start = ProcessCpuSeconds();
    const double sim_cpu_start = Emulator::Get().CpuSeconds();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < in_flight; ++i) start_one();
    {
      std::unique_lock<std::mutex> lock(mu);
      done_cv.wait(lock, [&] { return completed.load() >= kTotal; });
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.counters["calls_per_s"] = static_cast<double>(kTotal) / seconds;
    state.counters["client_cpu_us_per_call"] = (ProcessCpuSeconds() - cpu_start) * 1e6 / kTotal;
    state.counters["emulator_cpu_us_per_call"] = (Emulator::Get().CpuSeconds() - sim_cpu_start) * 1e6 / kTotal;
    state.counters["failures"] = static_cast<double>(failed.load());
  }
}
BENCHMARK(BM_InvokeModelThroughput)->Arg(1)->Arg(16)->Arg(64)->Iterations(1)->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_InvokeAgent10kConcurrent(benchmark::State& state) {
  // One attempt: a retry would hide a failure inside the 2.5 s budget.
  std::unique_ptr<BedrockClient> client = MakeClient(/*max_attempts=*/1);
  for (auto _ : state) {
    std::mutex mu;
    std::condition_variable done_cv;
    std::atomic<int> completed{0}, failed{0};
    std::map<std::string, int> errors;  // under mu
    std::vector<double> done_at;  // seconds from the start to each completion; under mu
    done_at.reserve(kConcurrentAgents);
    const double cpu_start = ProcessCpuSeconds();
    const double sim_cpu_start = Emulator::Get().CpuSeconds();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kConcurrentAgents; ++i) {
      InvokeAgentRequest request;
      request.agent_alias_arn = Emulator::Get().alias_arn();
      request.session_id = "bench-" + std::to_string(i);
      request.input_text = "My VPN drops every 10 minutes, what should I do?";
      client->InvokeAgent(request, {}, [&](BedrockResult<AgentResult> r) {
        std::lock_guard<std::mutex> lock(mu);
        if (!r.ok()) {
          failed.fetch_add(1);
          ++errors[r.error().aws.code];
        }
        done_at.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        if (completed.fetch_add(1) + 1 == kConcurrentAgents) done_cv.notify_all();
      });
    }
    const double submit_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::unique_lock<std::mutex> lock(mu);
    done_cv.wait(lock, [&] { return completed.load() >= kConcurrentAgents; });
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.counters["wall_s"] = wall;
    state.counters["submit_s"] = submit_s;
    state.counters["failed"] = failed.load();
    state.counters["peak_rss_mb"] = PeakRssMb();
    state.counters["within_2_5s"] = wall <= 2.5 ? 1 : 0;
    state.counters["client_cpu_s"] = ProcessCpuSeconds() - cpu_start;
    state.counters["emulator_cpu_s"] = Emulator::Get().CpuSeconds() - sim_cpu_start;
    // When the first, the median and the 99th-percentile call completed: how
    // the time beyond the 2 s latency splits between the whole batch and a
    // straggling few (a SYN the kernel dropped costs a straggler a full second).
    std::sort(done_at.begin(), done_at.end());
    auto at = [&](double q) { return done_at[static_cast<size_t>(q * static_cast<double>(done_at.size() - 1))]; };
    state.counters["first_s"] = at(0.0);
    state.counters["p50_s"] = at(0.5);
    state.counters["p99_s"] = at(0.99);
    for (const auto& [code, count] : errors) std::fprintf(stderr, "InvokeAgent error %s: %d\n", code.c_str(), count);
  }
}
BENCHMARK(BM_InvokeAgent10kConcurrent)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace quarry::bedrock

BENCHMARK_MAIN();
