#!/usr/bin/env bash
# The project's test command (README, .ci/run). Installs what the tests need, then runs every
# test of the workspace with every feature (Redis included). Tests never skip: a missing
# redis-server, nginx or caddy is installed here, and the tests fail loudly if it still is not there.
set -euo pipefail
cd "$(dirname "$0")/.."
# nginx lives in /usr/sbin, which is not on every user's PATH.
export PATH="$PATH:/usr/sbin"

# Debian packages the tests start themselves (on free loopback ports): redis-server for the
# Redis backend, nginx and caddy for /verify mode behind a real reverse proxy.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
command -v caddy >/dev/null 2>&1 || missing+=(caddy)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "test.sh: installing Debian's ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  # The packages start system instances (nginx and caddy on port 80); the tests start their
  # own, so stop what was just installed.
  for service in "${missing[@]}"; do
    $SUDO systemctl stop "$service" >/dev/null 2>&1 || $SUDO service "$service" stop >/dev/null 2>&1 || true
  done
fi
redis-server --version
nginx -v
caddy version

# Property tests: a modest case count here; see README for the long run.
export PROPTEST_CASES="${PROPTEST_CASES:-256}"
cargo test --workspace --all-features --locked "$@"
