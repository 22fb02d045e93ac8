# Shared by benches/wrk.sh and benches/nginx.sh (sourced, not run): the served stack, one wrk
# run's summary, and medians of the per-round ratios. Needs THREADS, CONNS set by the caller.

# serve_stack SECONDS: builds and starts `load --serve SECONDS` (sts-emulator, upstream and
# proxy on 127.0.0.1; it exits by itself) and sets SERVE_OUT (a temporary directory, removed by
# the caller's trap), SERVER (its pid), PROXY, UPSTREAM and PROOF (already verified once).
serve_stack() {
  cargo build --release -q -p iam-join-benches --bin load
  SERVE_OUT=$(mktemp -d)
  ./target/release/load --serve "$1" >"$SERVE_OUT/serve.txt" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 300); do
    grep -q '^SERVING_SECONDS=' "$SERVE_OUT/serve.txt" && break
    kill -0 "$SERVER" 2>/dev/null || { cat "$SERVE_OUT/serve.txt" >&2; exit 1; }
    sleep 0.1
  done
  PROXY=$(sed -n 's/^PROXY=//p' "$SERVE_OUT/serve.txt")
  UPSTREAM=$(sed -n 's/^UPSTREAM=//p' "$SERVE_OUT/serve.txt")
  PROOF=$(sed -n 's/^PROOF=//p' "$SERVE_OUT/serve.txt")
  [ -n "$PROXY" ] && [ -n "$UPSTREAM" ] && [ -n "$PROOF" ] || { cat "$SERVE_OUT/serve.txt" >&2; exit 1; }
  grep -E '^(# |machine:)' "$SERVE_OUT/serve.txt"
}

# wrk_measure URL SECONDS: one wrk run carrying the proof; prints
# "<requests/s> <p50 µs> <p99 µs> <non-2xx>".
wrk_measure() {
  wrk -t"$THREADS" -c"$CONNS" -d"$2s" --latency -H "Authorization: Bearer $PROOF" "$1" |
    awk '
      function us(v) {
        if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000;
        if (v ~ /s$/) return v * 1000000; return v
      }
      /^ +50%/ { p50 = us($2) } /^ +99%/ { p99 = us($2) }
      /Requests\/sec:/ { rps = $2 } /Non-2xx/ { bad = $5 }
      END { printf "%.0f %.0f %.0f %d\n", rps, p50, p99, bad + 0 }'
}

# medians: reads rows of numbers on stdin, prints the median of each column (space-separated).
medians() {
  awk '{ for (c = 1; c <= NF; c++) v[c, NR] = $c; cols = NF }
    END {
      for (c = 1; c <= cols; c++) {
        for (i = 1; i <= NR; i++) a[i] = v[c, i]
        for (i = 1; i <= NR; i++) for (j = i + 1; j <= NR; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x }
        printf "%s%s", (c > 1 ? " " : ""), (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)
      }
      printf "\n"
    }'
}
