#!/usr/bin/env bash
# The licenses of the dependency tree (all features, dev-dependencies included) against the
# allow-list of deny.toml, with cargo-deny (installed with `cargo install` if missing; the check
# itself needs no network). Not in CI: building cargo-deny takes minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo deny --version >/dev/null 2>&1; then
  echo "==> installing cargo-deny"
  cargo install --locked cargo-deny
fi
cargo deny --offline check licenses
