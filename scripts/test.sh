#!/usr/bin/env bash
# The project's test command (README, .ci/run). Installs what the tests need, then runs every
# test of the workspace with every feature (Redis included). Tests never skip: a missing
# redis-server is installed here, and the Redis tests fail loudly if it still is not there.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "test.sh: redis-server not found; installing Debian's redis-server" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
  # The package starts a system instance; the tests start their own on free loopback ports.
  $SUDO systemctl stop redis-server >/dev/null 2>&1 || true
fi
redis-server --version

# Property tests: a modest case count here; see README for the long run.
export PROPTEST_CASES="${PROPTEST_CASES:-256}"
cargo test --workspace --all-features --locked "$@"
