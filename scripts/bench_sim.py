"""Load-tests the Bedrock emulator (`quarry sim`) with wrk, on loopback, bounded in time.

Usage: python3 scripts/bench_sim.py BUILD_DIR   (a Release tree with -DQUARRY_BENCHMARKS=ON)

1. Throughput: signed InvokeModel calls (a Claude model, zero latency, one I/O thread) under
   `wrk -t1 -c64 -d5s`, against the trivial HTTP server (net/http_server_benchmark, one I/O
   thread) in the same run, reported as a ratio. Every response must be a 200: the emulator's
   counters are read afterwards to prove the calls were served, not refused.
2. Concurrency: InvokeAgent streams with 2 s of injected latency, 10,000 connections at once
   (`wrk -t2 -c10000 -d6s`), and the emulator's peak resident memory (VmHWM).

Requests are signed with botocore's SigV4 signer (Debian's python3-botocore is enough), which
also makes this an independent check of the emulator's verifier under load. The emulator accepts
a signature for 15 minutes, far longer than a run.
"""
import datetime
import json
import os
import pathlib
import re
import resource
import subprocess
import sys
import tempfile
import urllib.request

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

MODEL_ID = "anthropic.claude-3-haiku-20240307-v1:0"
WRK_SECONDS = 5
STREAMS = 10_000
SESSIONS = 100  # distinct pre-signed InvokeAgent requests rotated by wrk


def start(argv):
    """Starts a server that prints its address first and stops when stdin closes."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return proc


def stop(proc):
    proc.stdin.close()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def peak_rss_mb(pid):
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def read_sim_banner(proc):
    env = {}
    while len(env) < 5:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("bench_sim: quarry sim exited before printing its address")
        line = line.strip()
        if line.startswith("listening on "):
            env["URL"] = line[len("listening on "):]
        elif "=" in line:
            key, value = line.split("=", 1)
            env[key] = value
    return env


def signed(env, method, url, body, headers):
    creds = Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(creds, "bedrock", env["AWS_REGION"]).add_auth(request)
    return dict(request.headers.items())


def lua_for(requests):
    """A wrk script that rotates through pre-built (method, path, headers, body) requests."""
    # The requests are formatted in init(), after wrk has set its Host header
    # (host:port), which the signatures cover.
    lines = ["local reqs = {}", "function init(args)"]
    for method, path, headers, body in requests:
        hdrs = ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()
                         if k.lower() != "host")
        lines.append(f"  reqs[#reqs + 1] = wrk.format({json.dumps(method)}, {json.dumps(path)}, "
                     f"{{{hdrs}}}, {json.dumps(body)})")
    lines += ["end", "local i = 0",
              "request = function()",
              "  i = i % #reqs + 1",
              "  return reqs[i]",
              "end"]
    return "\n".join(lines) + "\n"


def wrk(url, script, connections, threads, seconds, timeout="10s"):
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s",
                          f"--timeout", timeout, "--latency", "-s", script, url],
                         capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise SystemExit(f"bench_sim: wrk failed: {out.stderr}")
    text = out.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)
    p99 = re.search(r"99%\s+(\S+)", text)
    return {"rps": rps, "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(1) if errors else "none",
            "p99": p99.group(1) if p99 else "?", "raw": text}


def admin(url, path, body=None, method=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method or ("POST" if data else "GET"),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def main():
    build_dir = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "build/release")
    quarry = build_dir / "src/cli/quarry"
    trivial = build_dir / "src/net/http_server_benchmark"
    for binary in (quarry, trivial):
        if not binary.exists():
            raise SystemExit(f"bench_sim: {binary} not found; build {build_dir} with -DQUARRY_BENCHMARKS=ON")
    # 10,000 client sockets plus 10,000 server sockets on one machine.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * STREAMS
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(wanted, hard)), hard))

    # A world without quotas: the benchmark measures the emulator, not its throttling.
    world = json.loads(subprocess.run([str(quarry), "sim", "--print-config"], check=True,
                                      capture_output=True, text=True).stdout)
    world.pop("quotas", None)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="quarry_bench_sim_"))
    (tmp / "world.json").write_text(json.dumps(world))

    sim = start([str(quarry), "sim", "--port", "0", "--config", str(tmp / "world.json"),
                 "--exit-on-stdin-eof"])
    results = {}
    try:
        env = read_sim_banner(sim)
        url = env["URL"]
        body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64,
                           "messages": [{"role": "user", "content": "Triage: VPN drops every 10 minutes."}]})
        path = "/model/" + MODEL_ID.replace(":", "%3A") + "/invoke"
        headers = signed(env, "POST", url + path, body,
                         {"Content-Type": "application/json", "Accept": "application/json"})
        (tmp / "invoke.lua").write_text(lua_for([("POST", path, headers, body)]))

        admin(url, "/_quarry/reset", {})
        results["sim"] = wrk(url, str(tmp / "invoke.lua"), 64, 1, WRK_SECONDS)
        counters = admin(url, "/_quarry/counters")
        invoke = counters.get("operations", {}).get("InvokeModel", {})
        results["sim_ok_calls"] = invoke.get("ok", 0)
        results["sim_total_calls"] = invoke.get("total", 0)

        trivial_proc = start([str(trivial), "--threads", "1", "--seconds", "120"])
        port = trivial_proc.stdout.readline().strip()
        results["trivial"] = wrk(f"http://127.0.0.1:{port}", str(tmp / "invoke.lua"), 64, 1, WRK_SECONDS)
        stop(trivial_proc)

        # 10,000 concurrent agent streams, each held 2 s by the emulator.
        alias = env["AGENT_ALIAS_ARN"].split(":")[-1].split("/")
        agent_requests = []
        for n in range(SESSIONS):
            agent_path = f"/agents/{alias[1]}/agentAliases/{alias[2]}/sessions/bench-{n:04d}/text"
            agent_body = json.dumps({"inputText": "My VPN drops every 10 minutes, what should I do?"})
            agent_headers = signed(env, "POST", url + agent_path, agent_body,
                                   {"Content-Type": "application/json", "Accept": "application/json"})
            agent_requests.append(("POST", agent_path, agent_headers, agent_body))
        (tmp / "agent.lua").write_text(lua_for(agent_requests))
        admin(url, "/_quarry/faults", {"kind": "latency", "operation": "InvokeAgent", "latency_ms": 2000})
        admin(url, "/_quarry/reset", {})
        rss_before = peak_rss_mb(sim.pid)
        results["streams"] = wrk(url, str(tmp / "agent.lua"), STREAMS, 2, 6, timeout="10s")
        results["streams_peak_rss_mb"] = peak_rss_mb(sim.pid)
        results["rss_before_streams_mb"] = rss_before
        counters = admin(url, "/_quarry/counters")
        results["agent_calls"] = counters.get("operations", {}).get("InvokeAgent", {})
    finally:
        stop(sim)

    sim_r, triv = results["sim"], results["trivial"]
    print(f"InvokeModel on the emulator (1 I/O thread, wrk -t1 -c64 -d{WRK_SECONDS}s): "
          f"{sim_r['rps']:,.0f} calls/s, p99 {sim_r['p99']}, non-2xx {sim_r['non2xx']}, "
          f"socket errors {sim_r['socket_errors']}; emulator counted {results['sim_ok_calls']} ok "
          f"of {results['sim_total_calls']}")
    print(f"trivial HTTP server, same machine, same run:              {triv['rps']:,.0f} requests/s, "
          f"p99 {triv['p99']}")
    print(f"ratio emulator / trivial server: {sim_r['rps'] / triv['rps']:.2f}")
    streams = results["streams"]
    print(f"InvokeAgent with 2 s latency, {STREAMS} connections (wrk -t2 -c{STREAMS} -d6s): "
          f"{streams['rps']:,.0f} calls/s completed, non-2xx {streams['non2xx']}, socket errors "
          f"{streams['socket_errors']}, p99 {streams['p99']}; emulator calls {results['agent_calls']}")
    print(f"emulator peak RSS: {results['rss_before_streams_mb']:.1f} MB before the streams, "
          f"{results['streams_peak_rss_mb']:.1f} MB with {STREAMS} concurrent streams")


if __name__ == "__main__":
    main()
