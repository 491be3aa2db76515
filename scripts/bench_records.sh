#!/usr/bin/env bash
# Record creation through the REST API on SQLite (durable: WAL,
# synchronous=FULL, group commit), measured with wrk on this machine.
#
# Usage: scripts/bench_records.sh BUILD_DIR [SECONDS] [CONNECTIONS...]
#   BUILD_DIR    a Release tree with the `quarry` binary (e.g. build/release)
#   SECONDS      length of each measured run (default 10)
#   CONNECTIONS  wrk connection counts to try (default: 16 32 64)
#   WORKER_THREADS (environment) API handler threads (default 64; see below)
#
# Starts `quarry serve` on an empty data directory inside BUILD_DIR (so the
# database sits on the same disk as the build, not on a tmpfs), creates an
# app with a "tickets" object and five typed fields, then for each connection
# count runs `wrk -t1 -cN -dSECONDS` with scripts/bench_records.lua (every
# request creates one validated record; 2 s of warm-up first). Prints
# records/s (201 responses only) and latency percentiles, then checks that the
# last handle number equals the number of records created, so no create was
# lost or counted twice. Target (issue 5): >= 5,000 records/s, p99 < 10 ms.
set -euo pipefail

build_dir=${1:?usage: scripts/bench_records.sh BUILD_DIR [SECONDS] [CONNECTIONS...]}
seconds=${2:-10}
shift $(($# >= 2 ? 2 : $#))
connections=("$@")
if [ ${#connections[@]} -eq 0 ]; then connections=(16 32 64); fi

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench_serve.sh
. "$here/bench_serve.sh"
# Request logs go to a file, as a deployment would keep them.
# Handlers block on the database while their write waits for the group
# commit, so the worker pool bounds how many writes share one commit: with
# `quarry serve`'s default of 8 workers no more than 8 records share a commit
# and throughput stays near 3,300 records/s here; 64 lets the batches grow.
workers=${WORKER_THREADS:-64}
QUARRY_LOG_LEVEL=${QUARRY_LOG_LEVEL:-info} bench_serve_start bench_records.sh "$build_dir" \
  "$(printf '[server]\nworker_threads = %d\n' "$workers")"
log="$data_dir/server.log"


api POST /api/v1/apps '{"name":"Benchmark","namespace":"bench","handle":"BEN"}' >/dev/null
api POST /api/v1/apps/bench/objects '{"name":"Tickets","api_name":"tickets"}' >/dev/null
for field in \
  '{"api_name":"title","label":"Title","type":"text","required":true}' \
  '{"api_name":"priority","label":"Priority","type":"dropdown","options":["Low","Medium","High"]}' \
  '{"api_name":"estimate","label":"Estimate","type":"number"}' \
  '{"api_name":"urgent","label":"Urgent","type":"checkbox"}' \
  '{"api_name":"due","label":"Due","type":"date"}'; do
  api POST /api/v1/apps/bench/objects/tickets/fields "$field" >/dev/null
done

export QUARRY_TOKEN=$token
export QUARRY_RECORDS_PATH=/api/v1/apps/bench/objects/tickets/records
url="$base_url$QUARRY_RECORDS_PATH"
total=0
count_created() { sed -n 's/^records created: \([0-9]*\).*/\1/p' "$1"; }

echo "== quarry serve on SQLite ($data_dir/quarry.db), $workers API worker threads, log level ${QUARRY_LOG_LEVEL:-info}"
echo "   cores: $(nproc); wrk and the server share them"
for c in "${connections[@]}"; do
  out="$data_dir/wrk-$c.txt"
  wrk -t1 -c"$c" -d2s -s "$here/bench_records.lua" "$url" >"$out"  # warm-up
  total=$((total + $(count_created "$out")))
  echo
  echo "== wrk -t1 -c$c -d${seconds}s: POST $QUARRY_RECORDS_PATH"
  wrk -t1 -c"$c" -d"${seconds}s" -s "$here/bench_records.lua" "$url" | tee "$out" |
    grep -E '^(records|latency|first failure)'
  total=$((total + $(count_created "$out")))
done

# Every 201 is a committed record with the next handle number.
last=$(api GET "$QUARRY_RECORDS_PATH?sort=-created_at&limit=1" |
  python3 -c 'import json,sys; items=json.load(sys.stdin)["items"]; print(items[0]["number"] if items else 0)')
# wrk stops counting at the deadline while requests are in flight; those
# still commit, so up to one record per open connection and run may be
# created without being acknowledged.
in_flight=0
for c in "${connections[@]}"; do in_flight=$((in_flight + 2 * c)); done
echo
echo "records acknowledged: $total; last handle: BEN-$last (at most $in_flight were in flight when wrk stopped)"
if [ "$last" -lt "$total" ] || [ "$last" -gt $((total + in_flight)) ]; then
  echo "bench_records.sh: the last handle number ($last) does not match the records acknowledged ($total)" >&2
  exit 1
fi
db_size=$(du -h "$data_dir/quarry.db" | cut -f1)
echo "database: $db_size; server peak RSS: $(awk '/^VmHWM/ {print $2 " " $3}' "/proc/$server_pid/status")"
