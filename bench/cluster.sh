#!/usr/bin/env bash
# Cross-node fan-out (issue 13): one sser node alone, then three nodes over
# one Redis with the publisher on node A and subscribers spread over A, B
# and C, same sser-bench arguments, one after the other in the same session.
# Two loads: "throughput" (one publisher as fast as its 201s come back) and
# "paced" (10 events/s, ~10,000 deliveries/s, far below what either setup
# sustains even on a busy box, so latency is the path's own and not
# queueing): the paced p50/p99 difference is what crossing Redis adds to
# publish → delivery. LOADS="paced" runs one of them.
#
# Usage: bench/cluster.sh [extra sser-bench fanout args, applied to both loads...]
# Needs: cargo build --release --workspace (the server and bench/sser-bench); redis-server (scripts/test-deps.sh).
# Redis runs as the README asks for "201 means stored": appendonly yes,
# appendfsync always (in a temporary directory).
# Reports land in bench/results/cluster-{single,3nodes}-{throughput,paced}.json
# and the table in bench/results/cluster.txt (not committed).
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
common=(fanout --topics 1 --subscribers 999 --publishers 1 --size 64 --drain-timeout 10s)
declare -A loads=(
  [throughput]="--events 2000"
  [paced]="--events 300 --rate 10"
)

wait_http() {
  for _ in $(seq 200); do curl -fs "http://127.0.0.1:$1/healthz" >/dev/null && return 0; sleep 0.05; done
  echo "node on $1 did not start" >&2; exit 2
}
run() { # setup load extra-args...
  local setup="$1" load="$2"; shift 2
  # shellcheck disable=SC2206
  local args=("${common[@]}" ${loads[$load]} "$@" "${extra[@]}")
  "$bin" "${args[@]}" --label "$setup $load" --json --allow-loss > "bench/results/cluster-$setup-$load.json"
}
extra=("$@")
LOADS="${LOADS:-throughput paced}"

echo "== one node"
PORT="127.0.0.1:${ports[0]}" target/release/sser >"$work/single.log" 2>&1 & pids+=($!)
wait_http "${ports[0]}"
for load in $LOADS; do run single "$load" --url "http://127.0.0.1:${ports[0]}"; done
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
for load in $LOADS; do run 3nodes "$load" --url "http://127.0.0.1:${ports[0]}" "${via[@]}"; done

LOADS="$LOADS" python3 - <<'PY' | tee bench/results/cluster.txt
import json
import os
loads = os.environ["LOADS"].split()
r = {(s, l): json.load(open(f"bench/results/cluster-{s}-{l}.json"))
     for s in ("single", "3nodes") for l in loads}
def get(d, k):
    for part in k.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d
rows = [("deliveries/s", "deliveries_per_sec"), ("publish round trip p50 ms", "publish_rtt.p50_ms"),
        ("publish round trip p99 ms", "publish_rtt.p99_ms"), ("publish -> delivery p50 ms", "latency.p50_ms"),
        ("publish -> delivery p99 ms", "latency.p99_ms"), ("lost", "lost"), ("out of order", "out_of_order"),
        ("lagged", "lagged_disconnects"), ("load average 1m, start", "loadavg_1m_start")]
for load in loads:
    print(f"-- {load}")
    print(f"{'':30} {'1 node':>10} {'3 nodes':>10} {'added':>10}")
    for name, key in rows:
        a, b = get(r[("single", load)], key), get(r[("3nodes", load)], key)
        added = f"{b - a:+.2f}" if "ms" in name and a is not None and b is not None else ""
        fmt = lambda v: "-" if v is None else (f"{v:,.2f}" if isinstance(v, float) else f"{v:,}")
        print(f"{name:30} {fmt(a):>10} {fmt(b):>10} {added:>10}")
PY
