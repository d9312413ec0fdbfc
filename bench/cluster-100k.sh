#!/usr/bin/env bash
# 100,000 concurrent subscribers on one box (issue 13's "done when"): NODES
# sser nodes over one Redis, each holding SUBS/NODES subscribers of ONE topic
# opened by as many `sser-bench hold` processes (one per node, so no process
# passes the box's 20,000 open-files limit), then EVENTS publishes on node 0
# (`sser-bench send`, INTERVAL apart) that every subscriber must receive.
#
# Reports: each node's RSS before and after its subscribers connected (per
# connection), deliveries per event summed over the hold processes (0 loss
# means every subscriber got every event), and per event the broadcast time
# = last delivery anywhere - publish (one monotonic clock for every process
# on the box), plus the load average (the box is shared).
#
# Usage: bench/cluster-100k.sh
#   env: NODES=6 SUBS=100000 EVENTS=5 INTERVAL=1s CONNECT_CONCURRENCY=64 RETRIES=3 TICK=15s DRAIN=30s
# Needs: cargo build --release -p sser -p sser-bench; redis-server (scripts/test-deps.sh).
# Redis as the README's "201 means stored" asks: appendonly yes, appendfsync always.
# Leaves bench/results/cluster-100k.json and .txt (not committed); stops every
# process it started and removes its temporary directory on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."
NODES="${NODES:-6}" SUBS="${SUBS:-100000}" EVENTS="${EVENTS:-5}" INTERVAL="${INTERVAL:-1s}"
CONNECT_CONCURRENCY="${CONNECT_CONCURRENCY:-64}" # connects in flight per hold process
# A subscriber whose connect fails (e.g. cut by a node's 10 s handshake limit
# on an overloaded box) tries again after 1 s, as an EventSource would; the
# report counts the retries.
RETRIES="${RETRIES:-3}"
# The nodes' heartbeat comment period (the server's default): every
# subscriber gets one per period, which the CPU figures below include.
TICK="${TICK:-15s}"
# How long a hold process waits without a delivery before counting what is
# missing as lost: must exceed INTERVAL.
DRAIN="${DRAIN:-30s}"
bin=target/release/sser-bench
sser=target/release/sser
[ -x "$bin" ] && [ -x "$sser" ] || { echo "run: cargo build --release -p sser -p sser-bench" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server missing: scripts/test-deps.sh" >&2; exit 1; }
mkdir -p bench/results
work="$(mktemp -d /tmp/sser-100k.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # The nodes' and clients' logs outlive the run, for when something failed.
  rm -rf bench/results/cluster-100k-logs && mkdir -p bench/results/cluster-100k-logs
  cp "$work"/*.log "$work"/*.err "$work"/*.json "$work"/*.txt bench/results/cluster-100k-logs/ 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Each hold process connects to one node from 127.0.0.1: its connections
# need that many local ports towards one (address, port).
per_node=$(( (SUBS + NODES - 1) / NODES ))
read -r lo hi < /proc/sys/net/ipv4/ip_local_port_range
if [ "$per_node" -ge $(( hi - lo )) ]; then
  echo "$per_node connections per node exceed the $((hi - lo)) local ports of ip_local_port_range; raise NODES" >&2
  exit 1
fi
if [ "$per_node" -ge "$(( $(ulimit -Hn) - 1024 ))" ]; then
  echo "$per_node connections per process is too close to the open-files limit $(ulimit -Hn); raise NODES" >&2
  exit 1
fi

# Free loopback ports: the kernel's choice for a socket bound to port 0.
mapfile -t ports < <(python3 - "$((NODES + 1))" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
for s in socks: print(s.getsockname()[1])
PY
)
redis_port="${ports[0]}"; node_ports=("${ports[@]:1}")

export SSER_API_ACCESS_TOKEN=bench-api-token SSER_METRICS_ACCESS_TOKEN=bench-metrics-token SSER_LOG=warn SSER_TICK_FREQUENCY="$TICK"
rss_kib() { awk '/^Rss:/ {print $2}' "/proc/$1/smaps_rollup"; }
exec 4>&2 # stderr, for messages from inside a wait_until condition
wait_until() { # seconds, description, command...
  local deadline=$(( SECONDS + $1 )) what="$2"; shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "timed out waiting for $what" >&2; exit 2; }
    sleep 0.1
  done
}

redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --save "" \
  --appendonly yes --appendfsync always >"$work/redis.log" 2>&1 & redis_pid=$!; pids+=("$redis_pid")
wait_until 20 "redis-server" redis-cli -p "$redis_port" ping
node_pids=()
for p in "${node_ports[@]}"; do
  SSER_CLUSTER_REDIS_URL="redis://127.0.0.1:$redis_port/0" PORT="127.0.0.1:$p" \
    "$sser" >"$work/node-$p.log" 2>&1 & node_pids+=($!); pids+=($!)
done
for p in "${node_ports[@]}"; do wait_until 30 "node on port $p" curl -fs -o /dev/null "http://127.0.0.1:$p/readyz"; done

# One topic, created on node 0; every node must know it before subscribers come.
created="$(curl -fsS -X POST -H "Authorization: Bearer $SSER_API_ACCESS_TOKEN" \
  -H 'Content-Type: application/json' -d '{}' "http://127.0.0.1:${node_ports[0]}/api/v1/pubsubs")"
topic="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["pubsub"]["id"])' <<<"$created")"
token="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["pubsub"]["token"])' <<<"$created")"
for p in "${node_ports[@]}"; do
  wait_until 10 "topic on node $p" curl -fs -o /dev/null -H "Authorization: Bearer $SSER_API_ACCESS_TOKEN" \
    "http://127.0.0.1:$p/api/v1/pubsubs/$topic"
done
before=(); for pid in "${node_pids[@]}"; do before+=("$(rss_kib "$pid")"); done

echo "== $SUBS subscribers over $NODES nodes, $(cat /proc/loadavg)"
hold_pids=()
for i in "${!node_ports[@]}"; do
  n=$(( SUBS / NODES + (i < SUBS % NODES ? 1 : 0) ))
  "$bin" hold --url "http://127.0.0.1:${node_ports[0]}" --subscribe-via "http://127.0.0.1:${node_ports[$i]}" \
    --topic "$topic" --topic-token "$token" --subscribers "$n" --events "$EVENTS" \
    --ready-file "$work/ready-$i" --done-file "$work/done-$i" --drain-timeout "$DRAIN" --connect-concurrency "$CONNECT_CONCURRENCY" --retries "$RETRIES" \
    --label "node $i" --json --allow-loss \
    >"$work/hold-$i.json" 2>"$work/hold-$i.err" & hold_pids+=($!); pids+=($!)
done
all_ready() {
  for i in "${!node_ports[@]}"; do
    kill -0 "${hold_pids[$i]}" 2>/dev/null || { echo "hold process $i exited: $(cat "$work/hold-$i.err")" >&4; exit 2; }
    [ -e "$work/ready-$i" ] || return 1
  done; }
wait_until 900 "every hold process to open its subscribers" all_ready
sleep 2 # let the nodes' allocators settle before reading RSS
after=(); for pid in "${node_pids[@]}"; do after+=("$(rss_kib "$pid")"); done
load_connected="$(cut -d' ' -f1-3 /proc/loadavg)"
# Connections a node refused or cut while they opened (nonzero counters only).
for i in "${!node_ports[@]}"; do
  curl -fsS -H "Authorization: Bearer $SSER_METRICS_ACCESS_TOKEN" "http://127.0.0.1:${node_ports[$i]}/metrics" \
    | grep -E '^sser_connections_(refused|cut)_total' | grep -v ' 0$' | sed "s/^/node $i: /" || true
done > "$work/cuts.txt"

# CPU seconds (user + system) of the nodes and of Redis: what the broadcasts cost them.
cpu_secs() { local t=0; for pid in "$@"; do t=$(( t + $(awk '{print $14 + $15}' "/proc/$pid/stat") )); done
  python3 -c "print($t / $(getconf CLK_TCK))"; }
cpu_nodes0="$(cpu_secs "${node_pids[@]}")" cpu_redis0="$(cpu_secs "$redis_pid")"
echo "== $EVENTS publishes on node 0, $INTERVAL apart"
"$bin" send --url "http://127.0.0.1:${node_ports[0]}" --topic "$topic" --events "$EVENTS" \
  --interval "$INTERVAL" --json --allow-loss >"$work/send.json"
# CPU read when every hold process has its events, before they disconnect.
all_done() { # (or exited: the report says what went wrong)
  for i in "${!node_ports[@]}"; do [ -e "$work/done-$i" ] || ! kill -0 "${hold_pids[$i]}" 2>/dev/null || return 1; done; }
wait_until 900 "every hold process to get its events" all_done
cpu_nodes="$(python3 -c "print($(cpu_secs "${node_pids[@]}") - $cpu_nodes0)")"
cpu_redis="$(python3 -c "print($(cpu_secs "$redis_pid") - $cpu_redis0)")"
for p in "${hold_pids[@]}"; do wait "$p" || true; done
load_end="$(cut -d' ' -f1-3 /proc/loadavg)"
redis_rss="$(rss_kib "$redis_pid")"

TICK="$TICK" CPU_NODES="$cpu_nodes" CPU_REDIS="$cpu_redis" python3 - "$work" "$NODES" "$SUBS" "-" "$load_connected" "$load_end" "$redis_rss" \
  "${before[*]}" "${after[*]}" <<'PY' | tee bench/results/cluster-100k.txt
import json, sys
work, nodes, subs, _, load_conn, load_end, redis_rss = sys.argv[1:8]
nodes, subs = int(nodes), int(subs)
before = [int(x) for x in sys.argv[8].split()]
after = [int(x) for x in sys.argv[9].split()]
holds = []
for i in range(nodes):
    try:
        holds.append(json.load(open(f"{work}/hold-{i}.json")))
    except (OSError, ValueError):
        err = open(f"{work}/hold-{i}.err").read().strip()
        sys.exit(f"hold process {i} left no report: {err}")
send = json.load(open(f"{work}/send.json"))
opened = [h["open"] for h in holds]
print(f"{'node':>4} {'subscribers':>11} {'RSS before MiB':>14} {'RSS after MiB':>13} {'bytes/conn':>10} {'client RSS MiB':>14}")
for i, h in enumerate(holds):
    per = (after[i] - before[i]) * 1024 / max(opened[i], 1)
    print(f"{i:>4} {opened[i]:>11,} {before[i]/1024:>14.1f} {after[i]/1024:>13.1f} {per:>10,.0f} {h['bench_rss_kib']/1024:>14.1f}")
total_open = sum(opened)
per_all = (sum(after) - sum(before)) * 1024 / max(total_open, 1)
print(f"{'all':>4} {total_open:>11,} {sum(before)/1024:>14.1f} {sum(after)/1024:>13.1f} {per_all:>10,.0f}")
slowest = max(h["connect_secs"] for h in holds)
print(f"connect errors {sum(h['connect_errors'] for h in holds)} "
      f"(after {sum(h.get('connect_retries', 0) for h in holds)} retries), all open after {slowest:.1f} s "
      f"({total_open / slowest:,.0f} connects/s); redis RSS {int(redis_rss)/1024:.1f} MiB")
print()
print(f"{'event':>5} {'status':>6} {'publish rtt ms':>14} {'delivered':>10} {'lost':>6} {'first ms':>9} {'last ms':>9}")
lost_total, rows = 0, []
for ev in send["per_event"]:
    k = ev["k"]
    got = sum(h["per_event"][k]["received"] for h in holds)
    lasts = [h["per_event"][k]["last_ns"] for h in holds if h["per_event"][k]["last_ns"]]
    firsts = [h["per_event"][k]["first_ns"] for h in holds if h["per_event"][k]["first_ns"]]
    ms = lambda t: (t - ev["sent_ns"]) / 1e6 if t else None
    last, first = ms(max(lasts, default=None)), ms(min(firsts, default=None))
    lost = total_open - got if ev["status"] and 200 <= ev["status"] < 300 else 0
    lost_total += lost
    rows.append({"k": k, "status": ev["status"], "publish_rtt_ms": ev["rtt_ms"], "delivered": got,
                 "lost": lost, "first_delivery_ms": first, "last_delivery_ms": last})
    fmt = lambda v: "-" if v is None else f"{v:,.1f}"
    if ev.get("error"):
        print(f"      publish {k} failed: {ev['error'][:200]}")
    print(f"{k:>5} {str(ev['status']):>6} {ev['rtt_ms']:>14.1f} {got:>10,} {lost:>6,} {fmt(first):>9} {fmt(last):>9}")
print(f"lost {lost_total}, out of order {sum(h['out_of_order'] for h in holds)}, "
      f"lagged {sum(h['lagged_disconnects'] for h in holds)}, ended early {sum(h['ended_early'] for h in holds)}")
import os
cpu_nodes, cpu_redis = float(os.environ["CPU_NODES"]), float(os.environ["CPU_REDIS"])
delivered = sum(r["delivered"] for r in rows)
cpu_clients = sum(h["bench_cpu_secs_while_waiting"] for h in holds)
print(f"CPU from the first publish to the last delivery (heartbeats every {os.environ['TICK']} included): nodes {cpu_nodes:.2f} s "
      f"({cpu_nodes * 1e6 / max(delivered, 1):.1f} µs per delivery), redis {cpu_redis:.2f} s, "
      f"clients {cpu_clients:.2f} s")
print(f"load average (1/5/15 min): connected {load_conn}, end {load_end}")
cuts = open(f"{work}/cuts.txt").read().strip()
print("connections refused or cut by the nodes:", "none" if not cuts else "\n" + cuts)
json.dump({"nodes": nodes, "subscribers": subs, "open": total_open, "connect_secs": slowest,
           "rss_kib_before": before, "rss_kib_after": after, "rss_bytes_per_conn": per_all,
           "redis_rss_kib": int(redis_rss), "events": rows, "lost": lost_total,
           "loadavg_connected": load_conn, "loadavg_end": load_end,
           "cpu_secs_nodes": cpu_nodes, "cpu_secs_redis": cpu_redis, "cpu_secs_clients": cpu_clients, "holds": holds, "send": send},
          open("bench/results/cluster-100k.json", "w"))
sys.exit(1 if lost_total or total_open < subs or send["publish_errors"] else 0)
PY
