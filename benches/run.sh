#!/usr/bin/env bash
# Runs every benchmark of benches/RESULTS.md once, in order, and keeps the output:
# criterion (core, layer) and its report, Redis per operation and challenge joins with Redis,
# the load benchmark without and with the proxy's JSON logs and audit file, the wrk
# cross-check and nginx side by side (benches/nginx.sh; both need wrk and nginx) and the memory
# measurement.
#
#   benches/run.sh                 # about 11 minutes on 2 cores (once built)
#   OUT=/tmp/bench benches/run.sh  # where the outputs go (default target/bench-results/<time>)
#
# Everything listens on 127.0.0.1 only and every loop is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."

# wrk and nginx first: the issue 15 table is not complete without them (benches/wrk.sh,
# benches/nginx.sh).
for tool in wrk nginx; do
  PATH="$PATH:/usr/sbin" command -v "$tool" >/dev/null || { echo "run.sh: $tool not found (apt-get install $tool)" >&2; exit 1; }
done

OUT=${OUT:-target/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
echo "outputs in $OUT"

{
  date -u +%Y-%m-%dT%H:%M:%SZ
  echo "nproc: $(nproc)"
  grep -m1 'model name' /proc/cpuinfo || true
  uname -sr
  uptime
} | tee "$OUT/machine.txt"

cargo build --release -q -p iam-join-benches --benches --bins

cargo bench -p iam-join-benches --bench core --bench layer -- --warm-up-time 1 --measurement-time 3 \
  2>&1 | tee "$OUT/criterion.txt" | grep -E '^(proof size|cache_(hit|miss) interleaved)|^[a-z_]+/.*time:|^ +time:' || true
./target/release/report target/criterion | tee "$OUT/criterion-report.md"

# Redis per operation (a real redis-server on loopback, plain and TLS).
PATH="$PATH:/usr/sbin" cargo bench -p iam-join-benches --features redis --bench redis -- \
  --warm-up-time 1 --measurement-time 3 2>&1 | tee "$OUT/redis.txt" | grep -E '^(redis|challenge_join_store)/|time:' || true

./target/release/load --rounds 5 --seconds 4 | tee "$OUT/load.txt"
./target/release/load --rounds 5 --seconds 4 --audit "$OUT/audit.jsonl" | tee "$OUT/load-audit.txt"
rm -f "$OUT/audit.jsonl"
./target/release/load --rounds 5 --seconds 4 --burst 10 --log json 2>/dev/null | tee "$OUT/load-json-logs.txt"

benches/wrk.sh | tee "$OUT/wrk.txt"
benches/nginx.sh | tee "$OUT/nginx.txt"

./target/release/memory | tee "$OUT/memory.txt"
uptime | tee -a "$OUT/machine.txt"
