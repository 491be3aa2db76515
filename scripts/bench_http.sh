#!/usr/bin/env bash
# Load-tests quarry::net::HttpServer with wrk, on loopback, bounded in time.
# Usage: scripts/bench_http.sh BUILD_DIR   (a Release tree configured with
# -DQUARRY_BENCHMARKS=ON, e.g. build/release)
#
# 1. Throughput: a trivial server (1 I/O thread, ~100-byte JSON reply) under
#    `wrk -t1 -c64 -d5s`: requests/s and latency. This is the "bare HTTP
#    server" baseline the emulator's throughput is compared with.
# 2. Concurrency: 10,000 connections, each response delayed 2 s on a timer
#    (plain, then as a chunked stream whose first event comes after 2 s), under
#    `wrk -t1 -c10000 -d5s --timeout 10s`: the server's peak RSS (VmHWM).
set -euo pipefail

build_dir=${1:?usage: scripts/bench_http.sh BUILD_DIR (configured with -DQUARRY_BENCHMARKS=ON)}
bin="$build_dir/src/net/http_server_benchmark"
if [ ! -x "$bin" ]; then
  echo "bench_http.sh: $bin not found; configure $build_dir with -DQUARRY_BENCHMARKS=ON and" \
    "build the http_server_benchmark target" >&2
  exit 1
fi
if ! command -v wrk >/dev/null; then
  echo "bench_http.sh: wrk is not installed (Debian package wrk; see scripts/install-deps.sh)" >&2
  exit 1
fi

log=$(mktemp /tmp/bench_http.XXXXXX)
trap 'rm -f "$log"' EXIT

# Each server runs as a coprocess: its stdout gives the port, and closing its
# stdin stops it. --seconds is a safety net should this script die.
start_server() {
  coproc SERVER { exec "$bin" --seconds 120 "$@" 2>>"$log"; }
  server_pid=$SERVER_PID
  if ! read -r -t 10 port <&"${SERVER[0]}"; then
    echo "bench_http.sh: the server did not report its port; its log:" >&2
    cat "$log" >&2
    exit 1
  fi
}

stop_server() {
  local hwm
  hwm=$(awk '/^VmHWM/ {print $2 " " $3}' "/proc/$server_pid/status")
  exec {SERVER[1]}>&-
  wait "$server_pid" || true
  echo "server peak RSS (VmHWM): $hwm"
}

# Prints the number of sockets the server holds after `delay` seconds.
sample_sockets() {
  local delay=$1
  sleep "$delay"
  local n
  n=$(find "/proc/$server_pid/fd" -lname 'socket:*' 2>/dev/null | wc -l)
  echo "server sockets open after ${delay}s: $n"
}

echo "== throughput: trivial JSON reply, 1 I/O thread, wrk -t1 -c64 -d5s"
start_server --threads 1
wrk -t1 -c64 -d5s --latency "http://127.0.0.1:$port/model/x/invoke"
stop_server

# 10,000 client sockets plus 10,000 server sockets: each process needs its own
# ~10,100 descriptors.
connections=10000
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt $((connections + 100)) ]; then
  connections=$((hard - 100))
  echo "note: the hard descriptor limit is $hard; using $connections connections" >&2
fi
ulimit -n "$hard"

for mode in plain chunked; do
  echo
  if [ "$mode" = plain ]; then
    echo "== $connections concurrent connections, each response delayed 2 s"
    start_server --threads 1 --delay-ms 2000
  else
    echo "== $connections concurrent chunked streams, first event after 2 s"
    start_server --threads 1 --delay-ms 2000 --chunked
  fi
  sample_sockets 3 &
  sampler=$!
  wrk -t1 -c"$connections" -d5s --timeout 10s --latency "http://127.0.0.1:$port/model/x/invoke"
  wait "$sampler"
  stop_server
done
echo
echo "server exit lines:"
cat "$log"
