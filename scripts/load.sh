#!/usr/bin/env bash
# The example service under wrk, with and without its commands, in the same run.
#
#   scripts/load.sh [ROUNDS] [SECONDS]     (default 5 rounds of 10 s per side)
#
# Three instances of examples/axum_service (release build) with no simulated latency (--fast)
# and pricing healthy (--waves off), each answering GET /product/{id} from four dependencies:
#   commands   through commands, as the demo runs them (breaker, timeout, metrics with latency
#              on each; a stale-if-error cache on one; fallbacks on three; the inventory
#              client isolated in a thread pool of 8, the others by semaphores);
#   semaphores the same, with the inventory client on a semaphore too (--no-pool);
#   direct     straight to the dependencies (--no-commands), the baseline.
# wrk loads each in turn, ROUNDS times, round-robin, so that all sides see the same machine;
# the medians of the rounds are compared. Installs wrk (Debian) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${1:-5}"
SECONDS_PER_RUN="${2:-10}"
CONNECTIONS=16
SIDES=(commands semaphores direct)
declare -A PORT=([commands]=18091 [semaphores]=18092 [direct]=18093)
declare -A FLAGS=([commands]="" [semaphores]="--no-pool" [direct]="--no-commands")

if ! command -v wrk >/dev/null 2>&1; then
  echo "==> installing wrk"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk
fi

cargo build --release --example axum_service
BIN=target/release/examples/axum_service

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

for side in "${SIDES[@]}"; do
  # shellcheck disable=SC2086 # FLAGS holds zero or one flag
  "$BIN" --listen "127.0.0.1:${PORT[$side]}" --fast --waves off ${FLAGS[$side]} >/dev/null &
  pids+=("$!")
done
for side in "${SIDES[@]}"; do
  for _ in $(seq 1 50); do
    curl -fsS "http://127.0.0.1:${PORT[$side]}/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
done

# Every product id a round asks for, so that the stale cache holds as many keys as it would.
# Saturated: each connection sends its next request as soon as it has an answer. Paced: each
# waits 2 ms first (about 7,000 requests a second in all, well below what every side can
# take), so that the latencies compare the work, not the queues.
cat >/tmp/load-saturated.lua <<'LUA'
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/product/" .. (n % 1000))
end
LUA
{ cat /tmp/load-saturated.lua; echo 'delay = function() return 2 end'; } >/tmp/load-paced.lua

# wrk's "Requests/sec", its 50th and its 99th percentile in microseconds.
run() {
  local port=$1 script=$2 out
  out=$(wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -s "$script" \
    "http://127.0.0.1:${port}/")
  if grep -q "Non-2xx" <<<"$out"; then
    echo "non-2xx answers on port ${port}:" >&2
    echo "$out" >&2
    exit 1
  fi
  local rps p50 p99
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(percentile 50% <<<"$out")
  p99=$(percentile 99% <<<"$out")
  echo "$rps $p50 $p99"
}

# A percentile line of wrk's --latency output, in microseconds.
percentile() {
  awk -v p="$1" '$1 == p {v=$2; if (v ~ /us$/) {sub(/us$/, "", v); print v}
    else if (v ~ /ms$/) {sub(/ms$/, "", v); print v * 1000}
    else if (v ~ /s$/) {sub(/s$/, "", v); print v * 1000000}}'
}

median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

echo "==> warm-up"
for side in "${SIDES[@]}"; do run "${PORT[$side]}" /tmp/load-saturated.lua >/dev/null; done

# measure LOAD: ROUNDS rounds, each side once per round, then the medians.
measure() {
  local load=$1 script="/tmp/load-$1.lua"
  declare -A RPS P50 P99 MRPS MP50 MP99 RATIO ADDED
  echo
  echo "==> ${load}: wrk -t1 -c${CONNECTIONS} -d${SECONDS_PER_RUN}s, ${ROUNDS} rounds"
  for round in $(seq 1 "$ROUNDS"); do
    local line="round ${round}:"
    declare -A this_rps this_p99
    for side in "${SIDES[@]}"; do
      read -r rps p50 p99 < <(run "${PORT[$side]}" "$script")
      RPS[$side]+="${rps} "; P50[$side]+="${p50} "; P99[$side]+="${p99} "
      this_rps[$side]=$rps; this_p99[$side]=$p99
      line+=$(printf ' %s %6.0f req/s p99 %5.0f us |' "$side" "$rps" "$p99")
    done
    echo "${line% |}"
    # Within a round the sides ran back to back: their ratio is steadier than the medians.
    for side in commands semaphores; do
      RATIO[$side]+="$(awk -v w="${this_rps[$side]}" -v o="${this_rps[direct]}" 'BEGIN {print w / o}') "
      ADDED[$side]+="$(awk -v w="${this_p99[$side]}" -v o="${this_p99[direct]}" 'BEGIN {print w - o}') "
    done
  done
  echo "medians:"
  for side in "${SIDES[@]}"; do
    MRPS[$side]=$(tr ' ' '\n' <<<"${RPS[$side]}" | grep . | median)
    MP50[$side]=$(tr ' ' '\n' <<<"${P50[$side]}" | grep . | median)
    MP99[$side]=$(tr ' ' '\n' <<<"${P99[$side]}" | grep . | median)
    printf '  %-10s %8.0f req/s   p50 %6.0f us   p99 %6.0f us\n' \
      "$side" "${MRPS[$side]}" "${MP50[$side]}" "${MP99[$side]}"
  done
  for side in commands semaphores; do
    awk -v s="$side" -v w="${MRPS[$side]}" -v o="${MRPS[direct]}" \
      -v w50="${MP50[$side]}" -v o50="${MP50[direct]}" \
      -v w99="${MP99[$side]}" -v o99="${MP99[direct]}" 'BEGIN {
      printf "  %s / direct, medians: throughput ratio %.2f, p50 added %+.0f us, p99 added %+.0f us\n",
        s, w / o, w50 - o50, w99 - o99 }'
  done
  for side in commands semaphores; do
    printf '  %s / direct, median of the rounds: throughput ratio %.2f, p99 added %+.0f us\n' "$side" \
      "$(tr ' ' '\n' <<<"${RATIO[$side]}" | grep . | median)" \
      "$(tr ' ' '\n' <<<"${ADDED[$side]}" | grep . | median)"
  done
}

measure saturated
measure paced

# The pages really went through the commands: /metrics counts the pool's executions.
executions=$(curl -fsS "http://127.0.0.1:${PORT[commands]}/metrics" |
  awk '/^hystrix_command_events_total\{.*command="CheckStock".*event="success"/ {print $2}' | head -1)
echo
echo "CheckStock successes counted by /metrics (commands side): ${executions:-none}"
