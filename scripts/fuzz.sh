#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (libFuzzer) for a fixed time each.
#
# Usage: ./scripts/fuzz.sh [SECONDS] [TARGET...]
#   ./scripts/fuzz.sh              every target, 25 s each (what scripts/test.sh runs)
#   ./scripts/fuzz.sh 600          every target, 10 minutes each
#   ./scripts/fuzz.sh 3600 config_load
#
# Targets (fuzz/fuzz_targets/):
#   publish_frame  publish body -> validated event -> SSE bytes, read back by
#                  an independent SSE parser
#   config_load    YAML files + environment through Config::from_sources
#
# The committed seeds in fuzz/corpus/<target> are read, never written: what a
# run discovers goes to fuzz/target/corpus/<target> (kept between local runs,
# ignored by git; the build itself lives in ~/.cache/sser/fuzz-target). A crash stops the run with exit 1 and leaves its input in
# fuzz/artifacts/<target>/; reproduce it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz -s none <target> fuzz/artifacts/<target>/<file>
# and, once fixed, add the input to fuzz/corpus/<target>.
#
# cargo-fuzz passes nightly-only flags to rustc (the coverage instrumentation
# libFuzzer needs, a sanitizer). RUSTC_BOOTSTRAP=1 lets the stable toolchain
# accept them; it changes nothing else about the build.
#
# No sanitizer by default: the code under test is safe Rust, and the build is
# most of a short run's time (with AddressSanitizer it took 8.2-8.5 CPU-minutes here, without 6.5).
# For a long search through the C-derived YAML parser, add it:
#   SSER_FUZZ_SANITIZER=address ./scripts/fuzz.sh 3600 config_load
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-25}"
shift || true

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  printf '\n==> installing cargo-fuzz\n'
  cargo install cargo-fuzz --locked --version 0.13.2
fi
export RUSTC_BOOTSTRAP=1

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

# One build for every target. 16 codegen units: the build is most of a short
# run's time, and the fuzz profile (fuzz/Cargo.toml) keeps optimisation low.
# The build goes outside the checkout, so that a fresh clone on the same
# machine (CI runs in one) reuses the dependencies built last time; a cold
# build is most of this script's time. SSER_FUZZ_TARGET_DIR moves it.
target_dir="${SSER_FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sser/fuzz-target}"
flags=(--fuzz-dir fuzz --codegen-units 16 --sanitizer "${SSER_FUZZ_SANITIZER:-none}"
  --target-dir "$target_dir")
cargo fuzz build "${flags[@]}"

for target in "${targets[@]}"; do
  printf '\n==> fuzzing %s for %ss\n' "$target" "$seconds"
  mkdir -p "fuzz/target/corpus/$target" "fuzz/artifacts/$target"
  # -max_total_time: the budget; -timeout: one input taking this long is a
  # bug (a hang); -rss_limit_mb: so is using this much memory.
  cargo fuzz run "${flags[@]}" "$target" \
    "fuzz/target/corpus/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
rm -rf /dev/shm/sser-fuzz-config-* "${TMPDIR:-/tmp}"/sser-fuzz-config-* 2>/dev/null || true
