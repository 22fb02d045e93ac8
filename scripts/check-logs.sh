#!/usr/bin/env bash
# check-logs.sh: search the whole test suite's output for secrets (issue 7). Manual, or an
# optional CI step; `.ci/run` does not call it.
#
# Runs `RUST_LOG=trace cargo test --workspace --all-features --no-fail-fast -- --nocapture`
# (extra arguments go to `cargo test`, before the `--`), captures stdout and stderr into one
# file, and searches it for:
#   - every secret access key and session token of the sts-emulator's built-in identities, read
#     from crates/sts-emulator/src/identity.rs (`keys::*_SECRET_ACCESS_KEY`, `*_SESSION_TOKEN`),
#     both as written and percent-encoded (as they appear in a presigned URL);
#   - `Signature=` (a SigV4 signature, in an authorization header or a presigned query).
# Exit status: 0 when clean; 1 when something was found (each hit is printed with its line
# number, cut to 300 characters); 2 when the secrets could not be read. A failing test suite
# is reported but does not by itself fail the check (its output is still searched).
#
# What it can see: whatever the tests print with --nocapture, which includes the logs of any
# code that installs a subscriber honouring RUST_LOG, and the output of child processes that
# inherit stdout/stderr. Output a test captures from a child process (e.g. the CLI tests read
# `iam-join`'s stderr) is only seen if the test prints it. The focused, in-process check of the
# verifier's own logs at TRACE is tests/no_secrets_in_logs.rs, which runs in every `cargo test`.
#
# Environment: LOG_FILE=path keeps the captured output there (default: a temporary file,
# removed on exit); PROPTEST_CASES (default 256, as in scripts/test.sh).
set -uo pipefail
cd "$(dirname "$0")/.."

identity_rs=crates/sts-emulator/src/identity.rs
# The constants may wrap onto the next line: join the file into one line first.
mapfile -t secrets < <(
  tr '\n' ' ' <"$identity_rs" |
    grep -oE 'pub const [A-Z0-9_]+_(SECRET_ACCESS_KEY|SESSION_TOKEN): &str =[[:space:]]*"[^"]+"' |
    sed -E 's/.*"([^"]+)"$/\1/'
)
if [ "${#secrets[@]}" -lt 2 ]; then
  echo "check-logs: found no secrets in $identity_rs; has the file moved?" >&2
  exit 2
fi

# Percent-encode like a SigV4 query value: only A-Z a-z 0-9 - . _ ~ stay as they are.
percent_encode() {
  local s="$1" out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    case "$c" in
      [A-Za-z0-9._~-]) out+="$c" ;;
      *) out+=$(printf '%%%02X' "'$c") ;;
    esac
  done
  printf '%s' "$out"
}

needles=()
for s in "${secrets[@]}"; do
  needles+=("$s")
  encoded=$(percent_encode "$s")
  [ "$encoded" != "$s" ] && needles+=("$encoded")
done
needles+=("Signature=")

log="${LOG_FILE:-}"
if [ -z "$log" ]; then
  log=$(mktemp -t iam-join-check-logs.XXXXXX)
  trap 'rm -f "$log"' EXIT
fi

echo "check-logs: running the test suite with RUST_LOG=trace; output in $log" >&2
export PROPTEST_CASES="${PROPTEST_CASES:-256}"
RUST_LOG=trace cargo test --workspace --all-features --no-fail-fast "$@" -- --nocapture >"$log" 2>&1
status=$?
if [ "$status" -ne 0 ]; then
  echo "check-logs: note: the test suite itself failed (exit $status); searching its output anyway" >&2
fi

hits=0
for n in "${needles[@]}"; do
  if grep -nF -- "$n" "$log" >/dev/null; then
    hits=$((hits + 1))
    echo "check-logs: FOUND ${n:0:12}… in the test output:" >&2
    grep -nF -- "$n" "$log" | cut -c1-300 | head -n 5 >&2
  fi
done

if [ "$hits" -ne 0 ]; then
  echo "check-logs: $hits of ${#needles[@]} secret patterns found" >&2
  exit 1
fi
echo "check-logs: clean: none of ${#needles[@]} secret patterns in $(wc -l <"$log") lines of test output" >&2
exit 0
