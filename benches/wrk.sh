#!/usr/bin/env bash
# Cross-check of the load benchmark with wrk as the load generator (a separate, C process):
# `load --serve` starts the sts-emulator, the trivial upstream and the proxy on 127.0.0.1 and
# prints the proxy's address and a proof it has already verified; this script then alternates
# wrk runs with verification on (GET /app, cache hits) and off (GET /public/app, a public path
# of the same proxy), both carrying the same Authorization header.
#
#   benches/wrk.sh                       # 4 rounds of 4 s per mode, 32 connections, 1 wrk thread
#   ROUNDS=6 PHASE_SECONDS=5 CONNS=64 benches/wrk.sh
#
# Needs wrk (Debian: apt-get install wrk). Everything is bounded: the server exits by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-4}
PHASE_SECONDS=${PHASE_SECONDS:-4}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
command -v wrk >/dev/null || { echo "wrk.sh: wrk not found (apt-get install wrk)" >&2; exit 1; }
[ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 20 ] && [ "$PHASE_SECONDS" -ge 1 ] && [ "$PHASE_SECONDS" -le 60 ] \
  || { echo "wrk.sh: ROUNDS must be 1..20 and PHASE_SECONDS 1..60" >&2; exit 1; }

cargo build --release -q -p iam-join-benches --bin load
out=$(mktemp -d)
serve_for=$(( (ROUNDS + 1) * 2 * (PHASE_SECONDS + 1) + 30 ))
./target/release/load --serve "$serve_for" >"$out/serve.txt" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -rf "$out"' EXIT
for _ in $(seq 1 300); do
  grep -q '^SERVING_SECONDS=' "$out/serve.txt" && break
  kill -0 "$server" 2>/dev/null || { cat "$out/serve.txt" >&2; exit 1; }
  sleep 0.1
done
PROXY=$(sed -n 's/^PROXY=//p' "$out/serve.txt")
PROOF=$(sed -n 's/^PROOF=//p' "$out/serve.txt")
[ -n "$PROXY" ] && [ -n "$PROOF" ] || { cat "$out/serve.txt" >&2; exit 1; }

# Prints "<requests/s> <p50 µs> <p99 µs> <non-2xx>" for one wrk run against PATH.
measure() {
  wrk -t"$THREADS" -c"$CONNS" -d"$2s" --latency -H "Authorization: Bearer $PROOF" "http://$PROXY$1" |
    awk '
      function us(v) {
        if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000;
        if (v ~ /s$/) return v * 1000000; return v
      }
      /^ +50%/ { p50 = us($2) } /^ +99%/ { p99 = us($2) }
      /Requests\/sec:/ { rps = $2 } /Non-2xx/ { bad = $5 }
      END { printf "%.0f %.0f %.0f %d\n", rps, p50, p99, bad + 0 }'
}

grep -E '^(# |machine:)' "$out/serve.txt"
echo "wrk: $THREADS thread(s), $CONNS connections, $PHASE_SECONDS s per phase, $ROUNDS rounds (plus a 1 s warm-up)"
measure /app 1 >/dev/null
measure /public/app 1 >/dev/null
ratios=()
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then order="on off"; else order="off on"; fi
  for mode in $order; do
    if [ "$mode" = on ]; then path=/app; else path=/public/app; fi
    read -r rps p50 p99 bad < <(measure "$path" "$PHASE_SECONDS")
    printf 'round %d %-3s %8s req/s  p50 %6s us  p99 %6s us  non-2xx %s\n' "$r" "$mode" "$rps" "$p50" "$p99" "$bad"
    eval "${mode}_rps=$rps ${mode}_p50=$p50 ${mode}_p99=$p99"
  done
  ratios+=("$(awk -v a="$on_rps" -v b="$off_rps" -v c="$on_p50" -v d="$off_p50" -v e="$on_p99" -v f="$off_p99" \
    'BEGIN { printf "%.3f %.2f %.2f", a / b, c / d, e / f }')")
done
echo "per-round on/off (throughput, p50, p99):"
printf '  %s\n' "${ratios[@]}"
printf '%s\n' "${ratios[@]}" | awk '{ t[NR] = $1; p[NR] = $2; q[NR] = $3 }
  function med(a, n,   i, j, x) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END { printf "median on/off: throughput %.3fx, p50 latency %.2fx, p99 latency %.2fx\n", med(t, NR), med(p, NR), med(q, NR) }'
