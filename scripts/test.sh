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

step "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

step "cargo nextest run"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --all-targets --no-fail-fast
else
  cargo test --locked --all-targets --no-fail-fast
fi
