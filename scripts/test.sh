#!/usr/bin/env bash
# The project's test command (README): installs what the tests need on a fresh machine, then
# checks formatting, lints and docs, and runs every test, doc test and benchmark (once, in
# criterion's test mode).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

# Toolchain components.
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
    log "installing rustup component ${component}"
    rustup component add "${component}"
  fi
done

# System packages the tests start for real (see DESIGN.md, "Real components"). Each entry is
# "command:debian-package"; a missing command is installed with apt-get.
SYSTEM_PACKAGES=(
  "redis-server:redis-server"
  # `promtool check metrics` parses and lints the Prometheus exposition (stream/tests).
  "promtool:prometheus"
  # A real DNS server for the SRV discovery tests (turbine/tests/dns.rs, tests/e2e.rs).
  "dnsmasq:dnsmasq"
  # Test certificates for the turbine's HTTPS upstreams (turbine/tests/tls.rs).
  "openssl:openssl"
  # A real headless browser for the dashboard's tests (dashboard/tests/browser.rs,
  # tests/dashboard.rs, tests/e2e.rs), driven through WebDriver.
  "chromium:chromium"
  "chromedriver:chromium-driver"
)
missing=()
for entry in "${SYSTEM_PACKAGES[@]}"; do
  command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

log "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --quiet

log "cargo build: the examples and binaries the end-to-end tests run as processes"
cargo build --workspace --examples --bins --all-features

log "cargo test: unit, integration, examples, benchmarks in test mode"
cargo test --workspace --all-targets --all-features

log "cargo test: doc tests"
cargo test --workspace --doc --all-features
