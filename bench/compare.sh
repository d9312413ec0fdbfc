#!/usr/bin/env bash
# Runs one sser-bench scenario against sser (release build) and nchan, one
# after the other in the same session, and prints both with ratios.
#
# Usage: bench/compare.sh SCENARIO [extra sser-bench args...]
#   SCENARIO: fanout-10k | fanout-topics | fanout-multi | fanout-multi-split |
#             idle | connect | durable | fanout-small |
#             targeted | app-broadcast | idle-identity (sser only, issue 11) |
#             identity (targeted, fanout-single, app-broadcast and
#             fanout-10k back to back, one table; extra args are not passed on)
# Needs: cargo build --release --workspace (the server and bench/sser-bench); apt-get install nginx-light libnginx-mod-nchan.
# Reports land in bench/results/<scenario>-{sser,nchan}.json (not committed).
# Set ONLY=sser or ONLY=nchan to run one side; PERF=1 records a cpu-clock
# profile of sser during its run into bench/results/<scenario>-sser.perf.
# SSER_BIN=path runs another sser build (e.g. an older one) as the sser side.
# The sser side runs with its disk store on (KV=off: in memory only); the
# identity scenarios run it with an identity secret and KV=off by default, so
# inboxes are in memory as topics are (KV=on: durable inboxes).
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/.."
scenario="${1:?scenario: fanout-10k | fanout-topics | fanout-multi | fanout-multi-split | idle | connect | durable | fanout-small | targeted | app-broadcast | idle-identity | identity}"
shift || true
bin=target/release/sser-bench
sser_bin="${SSER_BIN:-target/release/sser}"
[ -x "$bin" ] && [ -x "$sser_bin" ] || { echo "run: cargo build --release --workspace" >&2; exit 1; }

# The identity comparison: three runs on fresh servers with the same
# settings (identity on, in memory), one table.
if [ "$scenario" = identity ]; then
  for s in targeted fanout-single app-broadcast fanout-10k; do
    extra=(); case "$s" in app-broadcast|fanout-10k) extra=(--events 300) ;; esac
    ONLY=sser IDENTITY=1 KV="${KV:-off}" "$self" "$s" "${extra[@]}" > /dev/null
  done
  python3 - <<'PY'
import json
names = ["targeted", "fanout-single", "app-broadcast", "fanout-10k"]
runs = [json.load(open(f"bench/results/{n}-sser.json")) for n in names]
keys = ["params.subscribers", "params.publishers", "params.events", "params.rate", "mint_secs",
        "connect_secs", "publishes_per_sec", "publish_rtt.p50_ms", "publish_rtt.p99_ms",
        "deliveries_per_sec", "latency.p50_ms", "latency.p99_ms", "latency.max_ms", "expected",
        "received", "lost", "lagged_disconnects", "out_of_order", "server_cpu_secs",
        "server_deliver_cpu_secs", "server_cpu_us_per_publish", "server_cpu_us_per_delivery",
        "bench_cpu_percent_of_one_core", "loadavg_1m_start", "loadavg_1m_end"]
def get(r, k):
    for part in k.split("."):
        if not isinstance(r, dict) or part not in r: return None
        r = r[part]
    return r
fmt = lambda v: "-" if v is None else (f"{v:,.3f}" if isinstance(v, float) else f"{v:,}")
print(f"{'metric':32}" + "".join(f"{n:>15}" for n in names))
for k in keys:
    print(f"{k:32}" + "".join(f"{fmt(get(r, k)):>15}" for r in runs))
PY
  exit 0
fi
identity="${IDENTITY:-0}"
kv="${KV:-on}"
mkdir -p bench/results
SSER_PORT="${SSER_PORT:-18889}"
NCHAN_PORT="${NCHAN_PORT:-18890}"

case "$scenario" in
  fanout-small) args=(fanout --topics 1 --subscribers 100 --publishers 1 --events 2000) ;;
  # 1 topic x 10,000 subscribers, 64-byte events at a fixed publish rate.
  fanout-10k) args=(fanout --topics 1 --subscribers 10000 --publishers 1 --events 2000 --rate 100 --drain-timeout 10s) ;;
  # 1,000 topics x 10 subscribers, 4 publishers as fast as they go.
  fanout-topics) args=(fanout --topics 1000 --subscribers 10000 --publishers 4 --events 20000 --drain-timeout 10s) ;;
  # 1,000 connections each following 10 of 100 topics (100 followers per
  # topic). sser only: one connection on many topics is our API's.
  fanout-multi) args=(fanout --topics 100 --subscribers 1000 --topics-per-subscriber 10 --publishers 4 --events 20000 --drain-timeout 10s); ONLY=sser ;;
  # The same deliveries (100 followers per topic) over 10,000 one-topic connections.
  fanout-multi-split) args=(fanout --topics 100 --subscribers 10000 --publishers 4 --events 20000 --drain-timeout 10s) ;;
  # Held connections near the box's fixed 20,000-fd limit: sser's automatic
  # server.maxConnections is that limit less 1,024 (18,976), so 19,000 (the
  # figure in older reports) now has 24 refused.
  idle) args=(idle --connections 18000 --topics 100 --hold 5s --connect-concurrency 512) ;;
  connect) args=(connect --concurrency 64 --duration 10s --topics 1 --publishers 4) ;;
  # Durable publishes (kv.durability sync: a 201 means fsynced) through HTTP.
  # sser only: nchan keeps messages in memory (or Redis), it has no equivalent.
  durable) args=(fanout --persist --topics 1 --subscribers 1 --publishers 64 --events 20000); ONLY=sser ;;
  # Issue 11, sser only: 10,000 identities (users of one application, each
  # on GET /api/v1/stream with a token minted by the server), then sends.
  # Each send to one random user, 4 publishers as fast as they go:
  targeted) args=(fanout --to users --random-topic --subscribers 10000 --publishers 4 --events 40000 --drain-timeout 10s)
    ONLY=sser; identity=1; kv="${KV:-off}" ;;
  # targeted's topic twin: 10,000 topics x 1 subscriber, each publish to a
  # random topic.
  fanout-single) args=(fanout --topics 10000 --subscribers 10000 --publishers 4 --events 40000 --random-topic --drain-timeout 10s) ;;
  # Each send to the whole application: fanout-10k's shape on identities.
  app-broadcast) args=(fanout --to app --subscribers 10000 --publishers 1 --events 2000 --rate 100 --drain-timeout 10s)
    ONLY=sser; identity=1; kv="${KV:-off}" ;;
  # 10,000 idle identity connections (each its own user).
  idle-identity) args=(idle --identities --connections 10000 --hold 5s --connect-concurrency 512)
    ONLY=sser; identity=1; kv="${KV:-off}" ;;
  *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac
args+=("$@")

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2; return 1
}

if [ "${ONLY:-sser}" != nchan ]; then
  store="$(mktemp -d /tmp/sser-bench-store.XXXXXX)"
  env=(PORT="127.0.0.1:$SSER_PORT" SSER_API_ACCESS_TOKEN=bench SSER_METRICS_ACCESS_TOKEN=bench-m SSER_LOG=error)
  [ "$kv" = on ] && env+=(SSER_PERSISTENT_STORE_ENABLED=true SSER_KV_DSN="$store")
  [ "$identity" = 1 ] && env+=(SSER_JWT_SECRET=bench-identity-secret-0123456789abcdef)
  env "${env[@]}" "$sser_bin" > bench/results/sser.log 2>&1 &
  sser_pid=$!; pids+=("$sser_pid")
  wait_port "$SSER_PORT"
  if [ "${PERF:-0}" = 1 ]; then
    perf record -e cpu-clock -F 499 -p "$sser_pid" -o "bench/results/$scenario-sser.perf" \
      > /dev/null 2>&1 & perf_pid=$!
  fi
  extra=(); case "${args[0]}" in idle|fanout) extra=(--server-pid "$sser_pid") ;; esac
  "$bin" "${args[@]}" "${extra[@]}" --url "http://127.0.0.1:$SSER_PORT" --api-token bench \
    --label sser --json --allow-loss > "bench/results/$scenario-sser.json"
  # The server's own CPU time (user + system, whole run including connects):
  # steadier than wall-clock rates on a shared box.
  ticks="$(awk '{print $14 + $15}' "/proc/$sser_pid/stat")"
  python3 - "bench/results/$scenario-sser.json" "$ticks" "$(getconf CLK_TCK)" <<'PY'
import json, sys
p = sys.argv[1]; d = json.load(open(p))
d["server_cpu_secs"] = int(sys.argv[2]) / int(sys.argv[3])
json.dump(d, open(p, "w"))
PY
  if [ "${PERF:-0}" = 1 ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
  kill "$sser_pid"; wait "$sser_pid" 2>/dev/null || true
  rm -rf "$store"
fi

if [ "${ONLY:-nchan}" != sser ]; then
  bench/peers/run-nchan.sh "$NCHAN_PORT" > bench/results/nchan.log 2>&1 &
  nchan_pid=$!; pids+=("$nchan_pid")
  wait_port "$NCHAN_PORT"
  extra=(); case "${args[0]}" in idle|fanout) extra=(--server-pid "$nchan_pid") ;; esac
  "$bin" "${args[@]}" "${extra[@]}" \
    --subscribe-url "http://127.0.0.1:$NCHAN_PORT/sub/{topic}" \
    --publish-url "http://127.0.0.1:$NCHAN_PORT/pub/{topic}" \
    --label nchan --json --allow-loss > "bench/results/$scenario-nchan.json"
  kill "$nchan_pid"; wait "$nchan_pid" 2>/dev/null || true
fi

python3 - "$scenario" <<'PY'
import json, sys, os
name = sys.argv[1]
runs = {}
for side in ("sser", "nchan"):
    p = f"bench/results/{name}-{side}.json"
    if os.path.exists(p) and os.path.getsize(p):
        runs[side] = json.load(open(p))
keys = ["deliveries_per_sec", "publishes_per_sec", "publish_rtt.p50_ms", "publish_rtt.p99_ms", "latency.p50_ms", "latency.p99_ms",
        "latency.p999_ms", "latency.max_ms", "expected", "received", "lost",
        "lagged_disconnects", "open", "connects_per_sec", "server_rss_bytes_per_conn",
        "server_pss_bytes_per_conn", "cycles_per_sec", "cycle_latency.p50_ms",
        "cycle_latency.p99_ms", "errors", "bench_cpu_percent_of_one_core",
        "bench_connect_cpu_secs", "bench_rss_kib", "mint_secs", "server_cpu_secs",
        "server_deliver_cpu_secs", "server_cpu_us_per_publish", "server_cpu_us_per_delivery",
        "loadavg_1m_start", "loadavg_1m_end"]
def get(r, k):
    for part in k.split("."):
        if not isinstance(r, dict) or part not in r: return None
        r = r[part]
    return r
print(f"{'metric':34} {'sser':>14} {'nchan':>14} {'sser/nchan':>10}")
for k in keys:
    a, b = get(runs.get("sser"), k), get(runs.get("nchan"), k)
    if a is None and b is None: continue
    fmt = lambda v: "-" if v is None else (f"{v:,.3f}" if isinstance(v, float) else f"{v:,}")
    ratio = f"{a / b:.2f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else ""
    print(f"{k:34} {fmt(a):>14} {fmt(b):>14} {ratio:>10}")
PY
