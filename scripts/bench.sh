#!/usr/bin/env bash
# Runs Quarry's benchmarks from a Release build and prints the figures that
# docs/performance.md reports, including ratios against botocore measured in
# the same run. Usage: scripts/bench.sh BUILD_DIR
set -euo pipefail
build_dir=${1:-build/release}
out_dir="$build_dir/bench-results"
mkdir -p "$out_dir"

run() {
  local name=$1
  shift
  echo "== $name"
  "$build_dir/src/aws/$name" --benchmark_out="$out_dir/$name.json" --benchmark_out_format=json "$@"
}

run sigv4_benchmark --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
run eventstream_benchmark --benchmark_repetitions=3 --benchmark_report_aggregates_only=true

echo "== botocore SigV4 signer, same request, same run"
oracles=(/usr/bin/python3)
if command -v python3 >/dev/null && [ "$(command -v python3)" != /usr/bin/python3 ]; then
  oracles+=("$(command -v python3)")
fi
: >"$out_dir/botocore.jsonl"
for interpreter in "${oracles[@]}"; do
  if "$interpreter" -c 'import botocore' 2>/dev/null; then
    "$interpreter" scripts/botocore_sign_bench.py | tee -a "$out_dir/botocore.jsonl"
  fi
done

/usr/bin/python3 scripts/bench_summary.py "$out_dir"

echo
echo "== HTTP server alone: throughput and 10,000 slow responses"
bash scripts/bench_http.sh "$build_dir"

echo
echo "== Bedrock emulator under load"
/usr/bin/python3 scripts/bench_sim.py "$build_dir"

echo
echo "== Bedrock client against the emulator: CPU per call, throughput, 10,000 concurrent agents"
/usr/bin/python3 scripts/bench_client.py "$build_dir"

echo
echo "== Record creation through the REST API on SQLite (durable), wrk"
bash scripts/bench_records.sh "$build_dir" 10 16 32 64

echo
echo "== Automation engine: runs/s, engine time per step, 10,000 runs waiting on slow agents"
"$build_dir/src/engine/call_cache_benchmark" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
bash scripts/bench_engine.sh "$build_dir" 10 16 10000
