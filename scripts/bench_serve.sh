# Sourced by the benchmark scripts that drive a throwaway `quarry serve`
# (bench_records.sh, bench_engine.sh); not run on its own.
#
#   bench_serve_start SCRIPT BUILD_DIR CONFIG_TEXT [SERVE_ARGS...]
#
# checks that BUILD_DIR has the quarry binary and that wrk, curl and python3
# are installed, makes an empty data directory inside BUILD_DIR (so the
# database sits on the build's disk, not on a tmpfs), writes CONFIG_TEXT as
# its quarry.toml, starts `quarry serve --port 0` there (stdout to
# $data_dir/stdout, stderr to $data_dir/server.log) and waits for the
# address and the one-time admin token it prints. It sets bin, data_dir,
# server_pid, base_url, token and sim_url ("" without --embedded-sim), and
# stops the server and removes the directory when the calling script exits.
# Any failure prints why (with the server's output) and exits 1.
#
#   api METHOD PATH [JSON]
#
# then calls the server's API with the admin token and prints the reply's
# body; a non-2xx reply prints the method, path, status and body and exits 1.

bench_serve_start() {
  bench_script=$1
  local build_dir=$2 config=$3 script=$1
  shift 3
  bin="$build_dir/src/cli/quarry"
  if [ ! -x "$bin" ]; then
    echo "$script: $bin not found; build the quarry target in $build_dir first" >&2
    exit 1
  fi
  local tool
  for tool in wrk curl python3; do
    if ! command -v "$tool" >/dev/null; then
      echo "$script: $tool is not installed (see scripts/install-deps.sh)" >&2
      exit 1
    fi
  done
  data_dir=$(mktemp -d "$build_dir/${script%.sh}.XXXXXX")
  server_pid=""
  trap bench_serve_cleanup EXIT
  printf '%s' "$config" >"$data_dir/quarry.toml"
  "$bin" serve --config "$data_dir/quarry.toml" --data-dir "$data_dir" --port 0 "$@" \
    >"$data_dir/stdout" 2>"$data_dir/server.log" &
  server_pid=$!
  local embedded_sim=false arg
  for arg in "$@"; do [ "$arg" = --embedded-sim ] && embedded_sim=true; done
  base_url="" token="" sim_url=""
  for _ in $(seq 100); do
    base_url=$(sed -n 's/^listening on \(http[^ ]*\).*/\1/p' "$data_dir/stdout" | head -1)
    sim_url=$(sed -n 's/^emulator on \(http[^ ]*\).*/\1/p' "$data_dir/stdout" | head -1)
    token=$(sed -n 's/^admin token: \(qk_[0-9a-f]*\).*/\1/p' "$data_dir/stdout" | head -1)
    if [ -n "$base_url" ] && [ -n "$token" ] && { ! $embedded_sim || [ -n "$sim_url" ]; }; then return 0; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "$script: quarry serve did not print its address and admin token; its output:" >&2
  cat "$data_dir/stdout" "$data_dir/server.log" >&2
  exit 1
}

bench_serve_cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$data_dir"
}

api() {
  local reply status
  reply=$(curl -sS -X "$1" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    ${3:+--data "$3"} -w '\n%{http_code}' "$base_url$2")
  status=${reply##*$'\n'}
  if [ "${status:0:1}" != 2 ]; then
    echo "$bench_script: $1 $2 -> $status ${reply%$'\n'*}" >&2
    exit 1
  fi
  printf '%s' "${reply%$'\n'*}"
}
