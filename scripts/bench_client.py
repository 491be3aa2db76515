"""Benchmarks the Bedrock client (src/bedrock/client_benchmark.cc) against `quarry sim`, bounded in time.

Usage: python3 scripts/bench_client.py BUILD_DIR   (a Release tree with -DQUARRY_BENCHMARKS=ON)

One emulator process (demo world without quotas, every InvokeAgent held 2 s) serves, in the same run:
1. the emulator's ceiling: signed InvokeModel calls under `wrk -t1 -c64 -d5s` (as scripts/bench_sim.py);
2. client_benchmark, pointed at it with QUARRY_SIM_URL: client CPU per InvokeModel call, calls per second
   with N in flight (reported as a ratio of the ceiling), and 10,000 concurrent InvokeAgent calls (wall
   time until the last completes, the client process's peak RSS).
The emulator runs in its own process, so the benchmark process's CPU and memory are the client's alone.
"""
import json
import pathlib
import resource
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bench_sim import MODEL_ID, admin, lua_for, read_sim_banner, signed, start, stop, wrk  # noqa: E402

WRK_SECONDS = 5
CPU_TARGET_US = 20.0
AGENT_WALL_TARGET_S = 2.5
RSS_TARGET_MB = 300.0


def main():
    build_dir = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "build/release")
    quarry = build_dir / "src/cli/quarry"
    bench = build_dir / "src/bedrock/client_benchmark"
    for binary in (quarry, bench):
        if not binary.exists():
            raise SystemExit(f"bench_client: {binary} not found; build {build_dir} with -DQUARRY_BENCHMARKS=ON")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(40_000, hard)), hard))

    world = json.loads(subprocess.run([str(quarry), "sim", "--print-config"], check=True,
                                      capture_output=True, text=True).stdout)
    world.pop("quotas", None)
    world["faults"] = [{"kind": "latency", "operation": "InvokeAgent", "latency_ms": 2000}]
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="quarry_bench_client_"))
    (tmp / "world.json").write_text(json.dumps(world))

    sim = start([str(quarry), "sim", "--port", "0", "--config", str(tmp / "world.json"), "--exit-on-stdin-eof"])
    try:
        env = read_sim_banner(sim)
        url = env["URL"]
        body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64, "system": "Be brief.",
                           "messages": [{"role": "user", "content": "Triage: VPN drops every 10 minutes."}]})
        path = "/model/" + MODEL_ID.replace(":", "%3A") + "/invoke"
        headers = signed(env, "POST", url + path, body, {"Content-Type": "application/json",
                                                          "Accept": "application/json"})
        (tmp / "invoke.lua").write_text(lua_for([("POST", path, headers, body)]))
        admin(url, "/_quarry/reset", {})
        ceiling = wrk(url, str(tmp / "invoke.lua"), 64, 1, WRK_SECONDS)

        out = subprocess.run([str(bench), "--benchmark_format=json"], capture_output=True, text=True,
                             timeout=600, env={"QUARRY_SIM_URL": url, "QUARRY_SIM_PID": str(sim.pid),
                                               "PATH": "/usr/bin:/bin"})
        if out.returncode != 0:
            raise SystemExit(f"bench_client: client_benchmark failed ({out.returncode}): {out.stderr[-2000:]}")
        (build_dir / "bench-results").mkdir(exist_ok=True)
        (build_dir / "bench-results" / "client_benchmark.json").write_text(out.stdout)
        results = {b["name"]: b for b in json.loads(out.stdout)["benchmarks"]}
    finally:
        stop(sim)

    def find(prefix):
        return next(v for k, v in results.items() if k.startswith(prefix))

    cpu = find("BM_InvokeModelClientCpu")
    print(f"client CPU per blocking InvokeModel call (sign, serialise, send, parse, wake-up; emulator in another "
          f"process): {cpu['client_cpu_us_per_call']:.1f} us (target <= {CPU_TARGET_US:.0f} us: "
          f"{'met' if cpu['client_cpu_us_per_call'] <= CPU_TARGET_US else 'NOT met'}); "
          f"wall {cpu['real_time']:.0f} us per call")
    print(f"emulator ceiling (wrk -t1 -c64 -d{WRK_SECONDS}s, same emulator, same run): {ceiling['rps']:,.0f} calls/s, "
          f"non-2xx {ceiling['non2xx']}")
    for n in (1, 16, 64):
        t = find(f"BM_InvokeModelThroughput/{n}/")
        print(f"client, {n:>2} in flight: {t['calls_per_s']:,.0f} calls/s = {t['calls_per_s'] / ceiling['rps']:.2f} "
              f"of the ceiling; client CPU {t['client_cpu_us_per_call']:.1f} us/call, emulator CPU "
              f"{t['emulator_cpu_us_per_call']:.1f} us/call; failures {t['failures']:.0f}")
    a = find("BM_InvokeAgent10kConcurrent")
    print(f"10,000 concurrent InvokeAgent (2 s each): last completed after {a['wall_s']:.2f} s "
          f"({'within' if a['wall_s'] <= AGENT_WALL_TARGET_S else 'NOT within'} {AGENT_WALL_TARGET_S} s), "
          f"failed {a['failed']:.0f}, submitted in {a['submit_s']:.2f} s; completions: first {a['first_s']:.2f} s, "
          f"median {a['p50_s']:.2f} s, 99th percentile {a['p99_s']:.2f} s; client CPU {a['client_cpu_s']:.2f} s, "
          f"emulator CPU {a['emulator_cpu_s']:.2f} s")
    print(f"client peak RSS (VmHWM, whole benchmark process): {a['peak_rss_mb']:.0f} MB "
          f"(target < {RSS_TARGET_MB:.0f} MB: {'met' if a['peak_rss_mb'] < RSS_TARGET_MB else 'NOT met'})")


if __name__ == "__main__":
    main()
