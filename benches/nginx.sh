#!/usr/bin/env bash
# iam-join-proxy next to nginx, with wrk as the client, in alternating rounds (issue 15):
#   on       iam-join-proxy, verification on (a cached proof)          /app
#   off      iam-join-proxy, public path (forwarding only)             /public/app
#   nginx    nginx as a plain reverse proxy (benches/nginx/bench.conf) /app
#   verify   nginx auth_request -> iam-join-proxy /verify, then proxy  /app
# All four in front of the same upstream (the load benchmark's), rate limits off, same wrk
# settings, same proof. Prints each round and the median ratios to nginx.
#   benches/nginx.sh                     (ROUNDS=, PHASE_SECONDS=, CONNS=, THREADS=)
# Everything listens on 127.0.0.1; every loop is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin"

ROUNDS=${ROUNDS:-4}
PHASE_SECONDS=${PHASE_SECONDS:-4}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
for tool in wrk nginx; do
  command -v "$tool" >/dev/null || { echo "nginx.sh: $tool not found (apt-get install $tool)" >&2; exit 1; }
done
[ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 20 ] && [ "$PHASE_SECONDS" -ge 1 ] && [ "$PHASE_SECONDS" -le 60 ] \
  || { echo "nginx.sh: ROUNDS must be 1..20 and PHASE_SECONDS 1..60" >&2; exit 1; }

. benches/wrk_common.sh
cleanup() {
  [ -f "${SERVE_OUT:-}/nginx.pid" ] && kill "$(cat "$SERVE_OUT/nginx.pid")" 2>/dev/null || true
  kill "${SERVER:-}" 2>/dev/null || true
  rm -rf "${SERVE_OUT:-}"
}
trap cleanup EXIT
serve_stack $(( (ROUNDS + 1) * 4 * (PHASE_SECONDS + 1) + 30 ))
out=$SERVE_OUT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PLAIN_PORT=$(free_port)
AUTH_PORT=$(free_port)
sed -e "s#@DIR@#$out#g" -e "s#@UPSTREAM@#$UPSTREAM#g" -e "s#@VERIFIER@#$PROXY#g" \
  -e "s#@PLAIN_PORT@#$PLAIN_PORT#g" -e "s#@AUTH_PORT@#$AUTH_PORT#g" \
  benches/nginx/bench.conf >"$out/nginx.conf"
nginx -c "$out/nginx.conf" -p "$out" -g 'daemon on;'
for _ in $(seq 1 100); do [ -s "$out/nginx.pid" ] && break; sleep 0.05; done

url() {
  case "$1" in
    on) echo "http://$PROXY/app" ;;
    off) echo "http://$PROXY/public/app" ;;
    nginx) echo "http://127.0.0.1:$PLAIN_PORT/app" ;;
    verify) echo "http://127.0.0.1:$AUTH_PORT/app" ;;
  esac
}
# CPU (user + system, clock ticks) of everything but wrk: the `load --serve` process (proxy,
# upstream, emulator) and nginx's master and workers. The same sum in every mode, so the CPU per
# request of two modes compares the proxies on the same accounting (the upstream's share is in
# both).
server_ticks() {
  local total=0 pid
  for pid in "$SERVER" $(cat "$out/nginx.pid") $(pgrep -P "$(cat "$out/nginx.pid")"); do
    [ -r "/proc/$pid/stat" ] && total=$(( total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat") ))
  done
  echo "$total"
}
TICKS=$(getconf CLK_TCK)
# measure MODE SECONDS: "<requests/s> <p50> <p99> <non-2xx> <server CPU µs per request>".
measure() {
  local before after rps rest
  before=$(server_ticks)
  read -r rps rest < <(wrk_measure "$(url "$1")" "$2")
  after=$(server_ticks)
  echo "$rps $rest $(awk -v t=$(( after - before )) -v hz="$TICKS" -v r="$rps" -v s="$2" \
    'BEGIN { printf "%.1f", (r > 0 ? t / hz * 1e6 / (r * s) : 0) }')"
}

echo "nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), 2 workers; wrk: $THREADS thread(s), $CONNS connections, $PHASE_SECONDS s per phase, $ROUNDS rounds (plus a 1 s warm-up each)"
modes=(on off nginx verify)
for mode in "${modes[@]}"; do
  read -r _ _ _ bad _ < <(measure "$mode" 1)
  [ "$bad" = 0 ] || { echo "nginx.sh: $mode answered non-2xx in the warm-up" >&2; cat "$out/error.log" >&2; exit 1; }
done
ratios=()
cpus=()
for r in $(seq 1 "$ROUNDS"); do
  shift_by=$(( (r - 1) % 4 ))
  order=("${modes[@]:$shift_by}" "${modes[@]:0:$shift_by}")
  for mode in "${order[@]}"; do
    read -r rps p50 p99 bad cpu < <(measure "$mode" "$PHASE_SECONDS")
    printf 'round %d %-6s %8s req/s  p50 %6s us  p99 %6s us  non-2xx %s  server CPU %6s us/req\n' \
      "$r" "$mode" "$rps" "$p50" "$p99" "$bad" "$cpu"
    eval "${mode}_rps=$rps ${mode}_cpu=$cpu"
  done
  ratios+=("$(awk -v on="$on_rps" -v off="$off_rps" -v ng="$nginx_rps" -v v="$verify_rps" \
    'BEGIN { printf "%.3f %.3f %.3f", on / ng, off / ng, v / ng }')")
  cpus+=("$on_cpu $off_cpu $nginx_cpu $verify_cpu")
done
echo "per-round throughput ratios (on/nginx, off/nginx, nginx+verify/nginx):"
printf '  %s\n' "${ratios[@]}"
read -r a b c < <(printf '%s\n' "${ratios[@]}" | medians)
printf 'median throughput: on/nginx %.3fx, off/nginx %.3fx, nginx+verify/nginx %.3fx\n' "$a" "$b" "$c"
read -r a b c d < <(printf '%s\n' "${cpus[@]}" | medians)
printf 'median server CPU per request (proxy or nginx + upstream + emulator): on %.1f us, off %.1f us, nginx %.1f us, nginx+verify %.1f us\n' "$a" "$b" "$c" "$d"
