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

. benches/wrk_common.sh
trap 'kill "${SERVER:-}" 2>/dev/null || true; rm -rf "${SERVE_OUT:-}"' EXIT
serve_stack $(( (ROUNDS + 1) * 2 * (PHASE_SECONDS + 1) + 30 ))
measure() { wrk_measure "http://$PROXY$1" "$2"; }

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
read -r t p q < <(printf '%s\n' "${ratios[@]}" | medians)
printf 'median on/off: throughput %.3fx, p50 latency %.2fx, p99 latency %.2fx\n' "$t" "$p" "$q"
