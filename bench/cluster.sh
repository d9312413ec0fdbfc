#!/usr/bin/env bash
# Cross-node fan-out (issue 13): one sser node alone, then three nodes over
# one Redis with the publisher on node A and subscribers spread over A, B
# and C, same sser-bench arguments, one after the other in the same session.
#
# Usage: bench/cluster.sh [extra sser-bench fanout args...]
# Needs: cargo build --release --workspace (the server and bench/sser-bench); redis-server (scripts/test-deps.sh).
# Redis runs as the README asks for "201 means stored": appendonly yes,
# appendfsync always (in a temporary directory).
# Reports land in bench/results/cluster-{single,3nodes}.txt (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/sser-bench
[ -x "$bin" ] && [ -x target/release/sser ] || { echo "run: cargo build --release --workspace" >&2; exit 1; }
mkdir -p bench/results
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export SSER_API_ACCESS_TOKEN=bench-api-token SSER_METRICS_ACCESS_TOKEN=bench-metrics-token SSER_LOG=warn
REDIS_PORT="${REDIS_PORT:-16379}"
ports=(18901 18902 18903)
args=(fanout --topics 1 --subscribers 999 --publishers 1 --events 2000 --size 64 --drain-timeout 10s "$@")

wait_http() {
  for _ in $(seq 200); do curl -fs "http://127.0.0.1:$1/healthz" >/dev/null && return 0; sleep 0.05; done
  echo "node on $1 did not start" >&2; exit 2
}

echo "== one node"
PORT="127.0.0.1:${ports[0]}" target/release/sser >"$work/single.log" 2>&1 & pids+=($!)
wait_http "${ports[0]}"
"$bin" "${args[@]}" --url "http://127.0.0.1:${ports[0]}" --label "1 node" \
  | tee bench/results/cluster-single.txt
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()

echo "== three nodes over Redis (publisher on A, subscribers on A, B, C)"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$work" --save "" \
  --appendonly yes --appendfsync always >"$work/redis.log" 2>&1 & pids+=($!)
for _ in $(seq 200); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
for p in "${ports[@]}"; do
  SSER_CLUSTER_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" PORT="127.0.0.1:$p" \
    target/release/sser >"$work/node-$p.log" 2>&1 & pids+=($!)
done
for p in "${ports[@]}"; do wait_http "$p"; done
via=()
for p in "${ports[@]}"; do via+=(--subscribe-via "http://127.0.0.1:$p"); done
"$bin" "${args[@]}" --url "http://127.0.0.1:${ports[0]}" "${via[@]}" --label "3 nodes" \
  | tee bench/results/cluster-3nodes.txt
