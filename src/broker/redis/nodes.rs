//! Node liveness: every cluster member keeps a heartbeat record in Redis
//! and reads everyone else's, so each node knows which nodes are alive.
//!
//! - `<p>node:<id>` holds this node's record (advertised address, start
//!   time, subscriber streams open) with a TTL of `cluster.nodeTtl`,
//!   rewritten every third of it: a node that dies stops rewriting it and
//!   the key expires.
//! - `<p>nodes`, a sorted set of node ids scored by their last heartbeat
//!   (Redis' own clock, so the nodes' clocks need not agree), is what a
//!   node reads: its size is the number of live nodes, never a scan of the
//!   keyspace. Each heartbeat drops the ids older than the TTL or whose
//!   record has expired.
//! - `<p>nodes:changes` carries join and leave notices, so the others
//!   look again at once instead of at their next heartbeat.
//!
//! One Lua script does a whole heartbeat in one round trip (timed into
//! [`ClusterMetrics::roundtrip`](crate::metrics::ClusterMetrics)). A
//! graceful stop deletes the record and the id ([`Heartbeat::leave`]).
//! Phase 2 (`node_lost`) can hang off the same view: an id that leaves the
//! set without a leave notice is a node that died.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::keys::Keys;
use crate::metrics::{Metrics, NodeSeen};

/// KEYS: the node set, this node's record. ARGV: node id, record, TTL in
/// ms, the record keys' prefix. Returns `id, record, id, record, …` for
/// every live node, this one included.
const BEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ttl)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local record = redis.call('GET', ARGV[4] .. id)
  if record then
    table.insert(out, id)
    table.insert(out, record)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
";

/// A node's heartbeat record, as stored in `<p>node:<id>`.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    addr: String,
    started_ms: u64,
    connections: u64,
}

/// Node ids are ours (base62 nanoids); anything else in the set was not
/// written by sser and is ignored, so it never reaches a metrics label.
pub(super) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// This node's side of liveness.
pub(super) struct Heartbeat {
    conn: redis::aio::ConnectionManager,
    keys: Keys,
    node: String,
    addr: String,
    started_ms: u64,
    ttl: Duration,
    timeout: Duration,
    script: redis::Script,
    metrics: Arc<Metrics>,
    /// Rung by the listener on a join or leave notice.
    pub(super) changed: Notify,
    /// Held across a beat and the leave, so no beat lands after the leave.
    gate: tokio::sync::Mutex<bool>,
}

impl Heartbeat {
    pub(super) fn new(
        conn: redis::aio::ConnectionManager,
        keys: Keys,
        node: String,
        addr: String,
        ttl: Duration,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Heartbeat {
        let started_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        metrics.cluster.joined(&node);
        Heartbeat {
            conn,
            keys,
            node,
            addr,
            started_ms,
            ttl,
            timeout,
            script: redis::Script::new(BEAT),
            metrics,
            changed: Notify::new(),
            gate: tokio::sync::Mutex::new(false),
        }
    }

    /// Beats every third of the TTL (and at once on a notice) until
    /// `shutdown`.
    pub(super) async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let period = self.ttl / 3;
        let mut announced = false;
        loop {
            if self.beat().await && !announced {
                announced = self.announce("j").await;
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(period) => {}
                () = self.changed.notified() => {}
            }
        }
    }

    /// One heartbeat; whether Redis took it.
    pub(super) async fn beat(&self) -> bool {
        let left = self.gate.lock().await;
        if *left {
            return false;
        }
        let record = Record {
            addr: self.addr.clone(),
            started_ms: self.started_ms,
            connections: self.metrics.active_subscribers(),
        };
        let Ok(record) = serde_json::to_string(&record) else {
            return false;
        };
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(self.keys.nodes())
            .key(self.keys.node(&self.node))
            .arg(&self.node)
            .arg(record)
            .arg(ttl_ms)
            .arg(self.keys.node(""));
        let began = Instant::now();
        let mut conn = self.conn.clone();
        let reply = tokio::time::timeout(
            self.timeout,
            invocation.invoke_async::<Vec<String>>(&mut conn),
        )
        .await;
        drop(left);
        let pairs = match reply {
            Ok(Ok(pairs)) => pairs,
            Ok(Err(e)) => {
                self.metrics.cluster.redis_error("heartbeat");
                tracing::warn!(error = %e, "cluster heartbeat failed");
                return false;
            }
            Err(_) => {
                self.metrics.cluster.redis_error("heartbeat");
                tracing::warn!("cluster heartbeat: Redis did not answer in time");
                return false;
            }
        };
        self.metrics.cluster.roundtrip.observe(began.elapsed());
        let nodes = pairs
            .chunks_exact(2)
            .filter(|pair| valid_id(&pair[0]))
            .filter_map(|pair| {
                let record: Record = serde_json::from_str(&pair[1]).ok()?;
                Some(NodeSeen {
                    id: pair[0].clone(),
                    addr: record.addr,
                    started_ms: record.started_ms,
                    connections: record.connections,
                })
            })
            .collect();
        self.metrics.cluster.seen(nodes);
        true
    }

    /// Tells the other nodes to look again now (`j`oin or `l`eave).
    async fn announce(&self, what: &str) -> bool {
        let mut conn = self.conn.clone();
        let mut command = redis::cmd("PUBLISH");
        command
            .arg(self.keys.nodes_channel())
            .arg(format!("{what} {}", self.node));
        let notice = command.query_async::<i64>(&mut conn);
        matches!(tokio::time::timeout(self.timeout, notice).await, Ok(Ok(_)))
    }

    /// A graceful stop: the record and the id go now, and the others are
    /// told, so they do not wait for the TTL.
    pub(super) async fn leave(&self) {
        let mut left = self.gate.lock().await;
        *left = true;
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(self.keys.node(&self.node))
            .ignore()
            .zrem(self.keys.nodes(), &self.node)
            .ignore();
        let removal = pipe.query_async::<()>(&mut conn);
        match tokio::time::timeout(self.timeout, removal).await {
            Ok(Ok(())) => {
                drop(left);
                self.announce("l").await;
                tracing::info!("left the cluster");
            }
            Ok(Err(e)) => {
                self.metrics.cluster.redis_error("leave");
                tracing::warn!(error = %e, "cannot remove this node's heartbeat; it expires with its TTL");
            }
            Err(_) => {
                self.metrics.cluster.redis_error("leave");
                tracing::warn!(
                    "cannot remove this node's heartbeat in time; it expires with its TTL"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::valid_id;

    #[test]
    fn only_sser_node_ids_count() {
        assert!(valid_id("V1StGXR8_Z5"));
        for bad in ["", "a b", "a\"b", "x\ny", &"a".repeat(65)] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }
}
