#!/usr/bin/env bash
# The example service under wrk, with and without its commands, in the same run.
#
#   scripts/load.sh [ROUNDS] [SECONDS]     (default 5 rounds of 10 s per side)
#
# Two instances of examples/axum_service (release build) with no simulated latency (--fast)
# and pricing healthy (--waves off): one calls its four dependencies through commands (a
# semaphore-isolated command with a breaker and a stale-if-error cache, two with fallbacks, one
# isolated in a thread pool), the other calls them directly (--no-commands). wrk loads each in
# turn, ROUNDS times, alternating, so that both sides see the same machine; the medians of the
# rounds are compared. Installs wrk (Debian) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${1:-5}"
SECONDS_PER_RUN="${2:-10}"
CONNECTIONS=16
WITH_PORT=18091
WITHOUT_PORT=18092

if ! command -v wrk >/dev/null 2>&1; then
  echo "==> installing wrk"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk
fi

cargo build --release --example axum_service
BIN=target/release/examples/axum_service

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

"$BIN" --listen "127.0.0.1:${WITH_PORT}" --fast --waves off >/dev/null &
pids+=("$!")
"$BIN" --listen "127.0.0.1:${WITHOUT_PORT}" --fast --waves off --no-commands >/dev/null &
pids+=("$!")
for port in "$WITH_PORT" "$WITHOUT_PORT"; do
  for _ in $(seq 1 50); do
    curl -fsS "http://127.0.0.1:${port}/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
done

# Every product id a round asks for, so that the stale cache holds as many keys as it would.
cat >/tmp/load-ids.lua <<'LUA'
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/product/" .. (n % 1000))
end
LUA

# wrk's "Requests/sec" and its 99th percentile in microseconds.
run() {
  local port=$1 out
  out=$(wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -s /tmp/load-ids.lua \
    "http://127.0.0.1:${port}/")
  if grep -q "Non-2xx" <<<"$out"; then
    echo "non-2xx answers on port ${port}:" >&2
    echo "$out" >&2
    exit 1
  fi
  local rps p99
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/, "", v); print v}
         else if (v ~ /ms$/) {sub(/ms$/, "", v); print v * 1000}
         else if (v ~ /s$/) {sub(/s$/, "", v); print v * 1000000}}' <<<"$out")
  echo "$rps $p99"
}

median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

echo "==> warm-up"
run "$WITH_PORT" >/dev/null
run "$WITHOUT_PORT" >/dev/null

with_rps=(); with_p99=(); without_rps=(); without_p99=()
for round in $(seq 1 "$ROUNDS"); do
  read -r rps p99 < <(run "$WITH_PORT")
  with_rps+=("$rps"); with_p99+=("$p99")
  read -r rps2 p992 < <(run "$WITHOUT_PORT")
  without_rps+=("$rps2"); without_p99+=("$p992")
  printf 'round %d: with commands %8.0f req/s p99 %6.0f us | without %8.0f req/s p99 %6.0f us\n' \
    "$round" "$rps" "$p99" "$rps2" "$p992"
done

w_rps=$(printf '%s\n' "${with_rps[@]}" | median)
w_p99=$(printf '%s\n' "${with_p99[@]}" | median)
o_rps=$(printf '%s\n' "${without_rps[@]}" | median)
o_p99=$(printf '%s\n' "${without_p99[@]}" | median)

# The pages really went through the commands: the stream counts their executions.
executions=$(curl -fsS "http://127.0.0.1:${WITH_PORT}/metrics" |
  awk '/^hystrix_command_events_total\{.*command="CheckStock".*event="success"/ {print $2}' | head -1)

echo
echo "wrk -t1 -c${CONNECTIONS} -d${SECONDS_PER_RUN}s, ${ROUNDS} rounds each, medians:"
printf '  with commands     %8.0f req/s   p99 %6.0f us\n' "$w_rps" "$w_p99"
printf '  without commands  %8.0f req/s   p99 %6.0f us\n' "$o_rps" "$o_p99"
awk -v w="$w_rps" -v o="$o_rps" -v wp="$w_p99" -v op="$o_p99" 'BEGIN {
  printf "  throughput ratio (with / without) %.2f, p99 added %+.0f us\n", w / o, wp - op }'
echo "  CheckStock successes counted by /metrics (with commands): ${executions:-none}"
