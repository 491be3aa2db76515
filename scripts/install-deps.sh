#!/usr/bin/env bash
# Installs every Debian package Quarry needs to build, test, benchmark and run
# its demo. Idempotent: packages already present are left alone, and the
# package lists are refreshed once, only when something is missing.
set -euo pipefail

packages=(
  # toolchain
  g++ make cmake ninja-build pkg-config ccache
  # libraries (found by CMakeLists.txt and src/*/CMakeLists.txt)
  libssl-dev zlib1g-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev libboost-dev libcurl4-openssl-dev
  libsqlite3-dev libpq-dev libargon2-dev libtomlplusplus-dev
  # the PostgreSQL server for the multi-node storage tests (a throwaway cluster per test run)
  postgresql
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev wrk
  # HTTP/2 for the TLS test server (tests/support/tls_test_server)
  libnghttp2-dev
  # independent oracle for the protocol tests (SigV4 signer, event-stream parser)
  python3 python3-botocore
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
  else
    echo "install-deps: these packages are missing and this user cannot install them: ${missing[*]}" >&2
    echo "install-deps: run 'make deps' as root, or install them with apt-get." >&2
    exit 1
  fi
fi

echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
