#!/usr/bin/env bash
# The whole test suite, from a clean checkout: installs what the tests need
# (idempotently), checks formatting and lints, then runs every test.
# Usage: ./scripts/test.sh            (the README's test command; CI runs it)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# Test prerequisites outside cargo, each installed only if missing.
# shellcheck source=scripts/test-deps.sh
source scripts/test-deps.sh

step "cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

# --workspace: the server and the load generator (bench/sser-bench, whose
# smoke tests run it against the server).
step "cargo nextest run"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --all-targets --no-fail-fast
else
  cargo test --workspace --locked --all-targets --no-fail-fast
fi

# The fuzz targets (fuzz/, a crate of its own), briefly: a fixed budget per
# target, so a regression in the publish or configuration path that the
# seeds or a short search reach fails the run. ./scripts/fuzz.sh 600 runs
# them longer on demand.
step "cargo fuzz (${SSER_FUZZ_SECONDS:-25}s per target)"
./scripts/fuzz.sh "${SSER_FUZZ_SECONDS:-25}"
