#!/usr/bin/env bash
# The licenses of the dependency tree that ships (every feature; cargo-deny 0.20 leaves the
# dev-dependencies out: the test-only webdriver crate, MPL-2.0, is not checked) against the
# allow-list of deny.toml, with cargo-deny (installed with `cargo install` if missing; the check
# itself needs no network). Not in CI: building cargo-deny takes minutes. Last run: 2026-12-06,
# cargo-deny 0.20.2, `licenses ok`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo deny --version >/dev/null 2>&1; then
  echo "==> installing cargo-deny"
  cargo install --locked cargo-deny
fi
cargo deny --offline check licenses
