#!/usr/bin/env bash
# Soak: the demo's topology under wrk for a long run (not in CI).
#
#   scripts/soak.sh [SECONDS]      (default 600)
#
# Runs the demo (release build: three instances, the DNS server, the turbine, the dashboard, the
# demo's own load, pricing failing 15 s of every 40 s) and a wrk per instance on its product
# pages. Every 10 s it samples the demo process's resident memory, open file descriptors and
# threads, which must stay flat. At the end it reads each instance's /metrics: the share of
# GetPrice calls the dependency did not serve (failed, short-circuited, timed out, rejected)
# must match the schedule: at least the share of time pricing fails (15 / 40), at most that
# plus GetPrice's 3 s sleep window per wave (the circuit re-closes only after a trial once
# pricing is back), 2 points of slack either way; and no page may have failed (the catalog
# never does). Installs wrk (Debian) if missing. Prints a summary;
# the samples are in target/soak/.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${1:-600}"
HEALTHY=25
FAILING=15
SLEEP_WINDOW=3 # GetPrice's, in examples/common/service.rs
OUT=target/soak
mkdir -p "$OUT"

if ! command -v wrk >/dev/null 2>&1; then
  echo "==> installing wrk"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk
fi
cargo build --release --example demo

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

target/release/examples/demo --listen 127.0.0.1:0 --waves "${HEALTHY},${FAILING}" \
  --report-secs 10 --seconds "$((DURATION + 15))" >"$OUT/demo.log" 2>&1 &
demo=$!
pids+=("$demo")
for _ in $(seq 1 100); do
  grep -q "Ctrl-C" "$OUT/demo.log" 2>/dev/null && break
  sleep 0.1
done
mapfile -t instances < <(awk '/^  storefront-/ {sub("http://", "", $2); sub("/product/7", "", $2); print $2}' "$OUT/demo.log")
[ "${#instances[@]}" -gt 0 ] || { cat "$OUT/demo.log"; echo "no instances in the demo's output" >&2; exit 1; }
echo "==> demo pid ${demo}, instances ${instances[*]}, ${DURATION} s"

cat >"$OUT/ids.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/product/" .. (n % 50))
end
LUA
for addr in "${instances[@]}"; do
  wrk -t1 -c4 -d"${DURATION}s" -s "$OUT/ids.lua" "http://${addr}/" >"$OUT/wrk-${addr//:/_}.txt" 2>&1 &
  pids+=("$!")
done

sample() {
  local rss threads fds
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/${demo}/status")
  threads=$(awk '/^Threads:/ {print $2}' "/proc/${demo}/status")
  fds=$(find "/proc/${demo}/fd" -mindepth 1 -maxdepth 1 | wc -l)
  echo "$1 $rss $fds $threads"
}
echo "seconds rss_kib fds threads" >"$OUT/samples.txt"
for t in $(seq 10 10 "$DURATION"); do
  sleep 10
  kill -0 "$demo" 2>/dev/null || { cat "$OUT/demo.log"; echo "the demo exited" >&2; exit 1; }
  sample "$t" | tee -a "$OUT/samples.txt"
done
wait "${pids[@]:1}" 2>/dev/null || true

# What the instances counted, summed: GetPrice's events and the pages that failed.
declare -A EVENTS
for addr in "${instances[@]}"; do
  while read -r event count; do
    EVENTS[$event]=$(( ${EVENTS[$event]:-0} + ${count%.*} ))
  done < <(curl -fsS "http://${addr}/metrics" |
    awk -F'[{}]' '/^hystrix_command_events_total\{/ && /command="GetPrice"/ {
      match($2, /event="[a-z_]+"/); e = substr($2, RSTART + 7, RLENGTH - 8); split($3, v, " "); print e, v[1] }')
done
served=$(( ${EVENTS[success]:-0} ))
not_served=$(( ${EVENTS[failure]:-0} + ${EVENTS[short_circuited]:-0} + ${EVENTS[timeout]:-0} + ${EVENTS[semaphore_rejected]:-0} ))
non2xx=$(cat "$OUT"/wrk-*.txt | awk '/Non-2xx/ {s += $NF} END {print s + 0}')
requests=$(cat "$OUT"/wrk-*.txt | awk '/requests in/ {s += $1} END {print s + 0}')

echo
echo "soak: ${DURATION} s, $(( ${#instances[@]} )) instances, wrk ${requests} pages (+ the demo's own load)"
awk 'NR > 1 {
  if (NR == 2) { r0 = $2; f0 = $3; t0 = $4; rmin = $2; rmax = $2; fmin = $3; fmax = $3; tmin = $4; tmax = $4 }
  rmin = ($2 < rmin) ? $2 : rmin; rmax = ($2 > rmax) ? $2 : rmax
  fmin = ($3 < fmin) ? $3 : fmin; fmax = ($3 > fmax) ? $3 : fmax
  tmin = ($4 < tmin) ? $4 : tmin; tmax = ($4 > tmax) ? $4 : tmax
  r1 = $2; f1 = $3; t1 = $4 }
  END {
  printf "  resident memory  first %d KiB, last %d KiB, min %d, max %d\n", r0, r1, rmin, rmax
  printf "  file descriptors first %d, last %d, min %d, max %d\n", f0, f1, fmin, fmax
  printf "  threads          first %d, last %d, min %d, max %d\n", t0, t1, tmin, tmax }' "$OUT/samples.txt"
awk -v s="$served" -v n="$not_served" -v h="$HEALTHY" -v f="$FAILING" -v w="$SLEEP_WINDOW" 'BEGIN {
  if (s + n == 0) { print "  GetPrice: no calls counted by /metrics"; exit 1 }
  share = n / (s + n); low = f / (h + f); high = (f + w) / (h + f)
  printf "  GetPrice: %d calls served by pricing, %d not (%.1f %%); the schedule predicts %.1f to %.1f %%\n",
    s, n, 100 * share, 100 * low, 100 * high
  if (share < low - 0.02 || share > high + 0.02) { print "  MISMATCH with the schedule"; exit 1 } }'
echo "  pages answered other than 2xx: ${non2xx}"
[ "$non2xx" -eq 0 ] || { echo "  pages failed" >&2; exit 1; }
