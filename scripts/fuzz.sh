#!/usr/bin/env bash
# Fuzz: every cargo-fuzz (libFuzzer) target of fuzz/ for a bounded time each, one after the
# other (not in CI: it takes minutes per target, and a fuzz run is not reproducible).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (default 60 s each, every target)
#   FUZZ_FLAGS="-seed=1 -rss_limit_mb=8192" scripts/fuzz.sh 600 message   (more libFuzzer flags)
#
# The targets, what they are fed, and what each checks besides "never panics":
#   sse_lines         turbine's SSE line reader, arbitrary bytes in arbitrary chunks and limits
#   message           turbine's message parser, then the aggregate of a cluster (update,
#                     remove_host, expire, write / merged)
#   turbine_config    turbine's Config::from_toml and plan, and the instances-file format
#   command_config    tower-hystrix's Registry::load_str, building the commands a file names,
#                     and a second file applied to them
#   dashboard_config  the dashboard's Config::from_toml and its allow-list entries
#   proxy_target      dashboard::allow: Origin::parse, AllowList, parse_target, allows, check
#
# The machine's toolchain is stable: cargo-fuzz passes nightly-only flags (-Zsanitizer=address,
# sanitizer coverage), which RUSTC_BOOTSTRAP=1 unlocks. cargo-fuzz is installed with
# `cargo install cargo-fuzz --locked` when missing (a few minutes). The first build of the
# targets takes several minutes too (release, address sanitizer, every dependency).
#
# Corpora grow in fuzz/corpus/TARGET (seeded from the repository's fixtures on the first run),
# crashes are written to fuzz/artifacts/TARGET; both are ignored by git. The script exits 1
# when a target crashed (a panic, a stack overflow, a time-out of one input, or running out of
# memory), printing the artifact's path: reproduce it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-...
# and make it a regression test in the owning crate's tests/hostile.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH="${1:-60}"
shift || true
if ! [[ "$SECONDS_EACH" =~ ^[0-9]+$ ]] || [ "$SECONDS_EACH" -lt 1 ]; then
  echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
  exit 2
fi
ALL=(sse_lines message turbine_config command_config dashboard_config proxy_target)
TARGETS=("${@:-${ALL[@]}}")
for target in "${TARGETS[@]}"; do
  if ! [[ " ${ALL[*]} " == *" $target "* ]]; then
    echo "unknown target $target (targets: ${ALL[*]})" >&2
    exit 2
  fi
done
# More libFuzzer flags for every run, after the script's own (which they override).
read -r -a EXTRA <<<"${FUZZ_FLAGS:-}"

# The longest input libFuzzer makes, per target: SSE streams must reach past a line limit
# (up to the default 1 MiB) and hold JSON nested deep; configuration files and URLs are short.
max_len() {
  case "$1" in
    sse_lines) echo 1100000 ;;
    message) echo 262144 ;;
    turbine_config | command_config | dashboard_config) echo 16384 ;;
    proxy_target) echo 4096 ;;
  esac
}
dict() {
  case "$1" in
    sse_lines | message) echo fuzz/dicts/json.dict ;;
    turbine_config | command_config | dashboard_config) echo fuzz/dicts/toml.dict ;;
    proxy_target) echo fuzz/dicts/url.dict ;;
  esac
}

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# Seeds, on a target's first run only: libFuzzer keeps what it finds next to them.
seed() {
  local target=$1 dir=fuzz/corpus/$1 f n=0
  if [ -d "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
    return
  fi
  mkdir -p "$dir"
  local fixtures=stream/tests/fixtures/hystrix-stream
  case "$target" in
    sse_lines)
      # Two bytes of line limit (ff ff: the default), a cut count, cut points, the stream.
      for f in "$fixtures"/*.stream "$fixtures"/s*.txt; do
        n=$((n + 1))
        { printf '\xff\xff\x00'; head -c 16384 "$f"; } >"$dir/seed-$n"
        { printf '\x00\x04\x03\x10\x00\x41\x00\x00\x01'; head -c 4096 "$f"; } >"$dir/seed-$n-cut"
      done
      ;;
    message)
      # A byte of mode and key cap, then one operation per line: a host digit and a JSON text.
      for f in "$fixtures"/s*.txt; do
        n=$((n + 1))
        { printf '\x0e'; grep -a '^data:' "$f" | sed 's/^data: *//; s/^/0/'; } >"$dir/seed-$n"
        { printf '\x03'; grep -a '^data:' "$f" | sed 's/^data: *//; s/^/1/'; printf '!\n-1\n'; } >"$dir/seed-$n-t2"
      done
      { printf '\x04'; grep -a -m 50 '^data:' "$fixtures/turbine-test-cinematch.stream" |
        sed 's/^data: *//; s/^/2/'; printf '~\x10\n!\n'; } >"$dir/seed-cinematch"
      ;;
    turbine_config)
      cp turbine/turbine.example.toml "$dir/example.toml"
      printf '127.0.0.1:8080\n# a comment\nhttp://turbine-a:8989/turbine.stream?cluster=api\n[::1]:9\n' >"$dir/instances.txt"
      printf 'interval_ms = 500\nmode = "turbine2"\n[clusters.default]\ninstances = ["127.0.0.1:1", "https://[::1]:8443/x"]\nauthorization = "Bearer x"\n[clusters.api]\nsrv = "_hystrix._tcp.api.example"\nnameservers = ["127.0.0.1:5353"]\nsrv_min_refresh_ms = 100\n' >"$dir/clusters.toml"
      ;;
    command_config)
      printf '[command.default]\nexecution_isolation_thread_timeout_in_milliseconds = 800\n\n[command.GetUser]\ncircuit_breaker_error_threshold_percentage = 25\ncircuit_breaker_force_open = false\n\n[threadpool.default]\ncore_size = 10\n\n[threadpool.Users]\nmax_queue_size = 100\nqueue_size_rejection_threshold = 20\n' >"$dir/doc.toml"
      printf '[command.Pooled]\nexecution_isolation_strategy = "THREAD"\nmetrics_rolling_stats_time_in_milliseconds = 20000\nmetrics_rolling_stats_num_buckets = 20\n[threadpool.Pooled]\ncore_size = 2\nmaximum_size = 4\nallow_maximum_size_to_diverge_from_core_size = true\n\n%%%%\n[command.Pooled]\nexecution_isolation_strategy = "THREAD"\nexecution_isolation_semaphore_max_concurrent_requests = 1\n[threadpool.Pooled]\ncore_size = 1\nmax_queue_size = 5\n' >"$dir/reload.toml"
      ;;
    dashboard_config)
      printf 'listen = "127.0.0.1:7979"\nallow = ["10.0.0.5:8080", "https://turbine.internal"]\nturbine_config = "turbine.toml"\nconnect_timeout_ms = 5000\nidle_timeout_ms = 10000\nmax_streams = 100\nca_file = "ca.pem"\n' >"$dir/doc.toml"
      ;;
    proxy_target)
      printf '127.0.0.1:8080 https://turbine.example [::1]:9000\nhttp://127.0.0.1:8080/turbine.stream?cluster=a#frag' >"$dir/allowed"
      printf '127.0.0.1:8080\nhttp://127.0.0.1:8080@169.254.169.254/' >"$dir/userinfo"
      printf 'HTTP://LOCALHOST.\nhttp://0x7f.1:8080\\@evil.test/' >"$dir/forms"
      ;;
  esac
}

echo "==> building the fuzz targets"
cargo fuzz build

failed=()
stamp=$(mktemp)
trap 'rm -f "$stamp"' EXIT
for target in "${TARGETS[@]}"; do
  len=$(max_len "$target")
  seed "$target"
  echo "==> $target: ${SECONDS_EACH} s, -max_len=$len"
  touch "$stamp"
  if cargo fuzz run "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$SECONDS_EACH" -max_len="$len" -timeout=20 -rss_limit_mb=4096 \
    -dict="$(dict "$target")" -print_final_stats=1 "${EXTRA[@]}"; then
    echo "==> $target: no crash"
  else
    echo "==> $target: CRASHED" >&2
    found=$(find "fuzz/artifacts/$target" -type f -newer "$stamp" 2>/dev/null || true)
    if [ -n "$found" ]; then
      echo "$found" | sed 's/^/    artifact: /' >&2
    else
      echo "    (no artifact written: see the output above)" >&2
    fi
    failed+=("$target")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ${#TARGETS[@]} target(s), ${SECONDS_EACH} s each, no crash"
