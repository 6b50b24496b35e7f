#!/usr/bin/env bash
# Alternates criterion benchmark binaries, round after round, so that two builds are compared
# in the same run on a noisy machine. Prints one line per benchmark and round:
#   ROUND BINARY NAME UNIT ESTIMATE
#
# usage: scripts/bench-ab.sh ROUNDS FILTER BINARY...
#
# A binary is what `cargo bench --bench NAME --no-run` prints as its executable; copy it aside
# before building the other revision, e.g.
#   git stash && cargo bench --bench command --no-run && cp target/release/deps/command-HASH /tmp/before
#   git stash pop && cargo bench --bench command --no-run && cp target/release/deps/command-HASH /tmp/after
#   scripts/bench-ab.sh 5 '^command/(tower|command)/' /tmp/before /tmp/after
set -euo pipefail
if [ $# -lt 3 ]; then
    sed -n 2,12p "$0" >&2
    exit 2
fi
rounds=$1
filter=$2
shift 2
for round in $(seq 1 "$rounds"); do
    for binary in "$@"; do
        "$binary" --bench --warm-up-time 2 --measurement-time 5 "$filter" 2>&1 |
            grep -E 'time:' -B1 | grep -v '^--' | paste - - |
            awk -v b="$(basename "$binary")" -v r="$round" '{ print r, b, $1, $(NF-4), $(NF-3) }'
    done
done
