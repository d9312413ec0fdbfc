//! The presence ledger: who is online anywhere in the cluster, decided in
//! Redis so that each `user_online`/`user_offline` (and device) transition
//! is seen by exactly one node, which alone emits it.
//!
//! Each node's presence tracker decides, locally and with its grace period,
//! when a user or device comes online or goes offline *on this node*; the
//! ledger turns those into cluster-wide transitions. Per user (and per
//! device) one hash holds a field per node that has it, its value the
//! [`Share`] that node holds (who, and which connection made it). A Lua
//! script sets or deletes this node's field and answers whether the hash
//! went from empty to one field (online everywhere now) or from one to
//! empty (offline everywhere now), atomically, so two nodes can never both
//! see the same transition.
//!
//! Everything a node writes is filterable by node: `<p>presence:node:<id>`
//! sets list the hashes it has a field in, and `<p>presence:nodes` the
//! nodes that wrote any. When a node dies (its heartbeat record expired,
//! [`super::nodes`]), one survivor claims it (`SET NX`), takes its fields
//! out of every hash ([`PresenceLedger::reap`]) and emits the offlines of
//! those left with no field: nothing depends on the dead node cleaning up.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use super::keys::Keys;
use super::{nodes, unavailable};
use crate::broker::BrokerError;

/// KEYS: the hash, this node's set of hashes, the set of nodes. ARGV: node,
/// share. Bit 1: the hash had no field before (online everywhere now); bit
/// 2: this node was not in the set of nodes (first write, or its share was
/// cleared behind its back).
const ONLINE: &str = r"
local unlisted = redis.call('SADD', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[2], KEYS[1])
local added = redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local first = 0
if added == 1 and redis.call('HLEN', KEYS[1]) == 1 then first = 1 end
return first + 2 * unlisted
";

/// KEYS: the hash, this node's set of hashes. ARGV: node. 1 when this
/// node's was the last field (offline everywhere now).
const OFFLINE: &str = r"
redis.call('SREM', KEYS[2], KEYS[1])
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
if removed == 1 and redis.call('EXISTS', KEYS[1]) == 0 then return 1 end
return 0
";

/// KEYS: the set of nodes. ARGV: this node, the heartbeat records' prefix.
/// The nodes that wrote presence and whose heartbeat record is gone.
const LOST: &str = r"
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if id ~= ARGV[1] and redis.call('EXISTS', ARGV[2] .. id) == 0 then
    table.insert(out, id)
  end
end
return out
";

/// KEYS: the dead node's set of hashes. ARGV: the dead node, batch size.
/// Takes up to a batch of hashes out of the set and the dead node's field
/// out of each; returns how many are left in the set, then the share of
/// every hash left empty (offline everywhere now).
const REAP: &str = r"
local out = {0}
for _, key in ipairs(redis.call('SPOP', KEYS[1], tonumber(ARGV[2]))) do
  local share = redis.call('HGET', key, ARGV[1])
  if share then
    redis.call('HDEL', key, ARGV[1])
    if redis.call('EXISTS', key) == 0 then table.insert(out, share) end
  end
end
out[1] = redis.call('SCARD', KEYS[1])
return out
";

/// KEYS: the set of nodes, this node's sets of hashes. ARGV: node. A node
/// leaving with no share left is forgotten (a survivor would otherwise
/// take it for a dead one); with shares left, survivors clear them.
const LEAVE: &str = r"
if redis.call('EXISTS', KEYS[2]) == 0 and redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('SREM', KEYS[1], ARGV[1])
  return 1
end
return 0
";

/// Hashes one reap step handles (one short script run each).
const REAP_BATCH: usize = 500;

/// What one node holds of a user or device: who, and the connection that
/// made it online there (named in the offline if that node dies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    #[serde(rename = "a")]
    pub app: String,
    #[serde(rename = "u")]
    pub user: String,
    /// The connection's device (also on a user's share).
    #[serde(rename = "d")]
    pub device: Option<String>,
    #[serde(rename = "c")]
    pub connection_id: String,
}

/// What one `online` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Online {
    /// Nobody held it before: the cluster-wide online.
    pub everywhere: bool,
    /// This node was not listed as a writer: its first write, or the
    /// ledger lost its share (swept as a dead node, or an emptied Redis).
    pub was_unlisted: bool,
}

/// Whether an entry is a user's or a device's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    User,
    Device,
}

/// This node's handle on the ledger.
#[derive(Clone)]
pub struct PresenceLedger {
    conn: ConnectionManager,
    keys: Keys,
    node: String,
    timeout: Duration,
    scripts: Arc<Scripts>,
}

/// Each script's text and hash, computed once (`EVALSHA`, loaded on a miss).
struct Scripts {
    online: redis::Script,
    offline: redis::Script,
    lost: redis::Script,
    reap: redis::Script,
    leave: redis::Script,
}

impl PresenceLedger {
    pub(super) fn new(
        conn: ConnectionManager,
        keys: Keys,
        node: String,
        timeout: Duration,
    ) -> PresenceLedger {
        PresenceLedger {
            conn,
            keys,
            node,
            timeout,
            scripts: Arc::new(Scripts {
                online: redis::Script::new(ONLINE),
                offline: redis::Script::new(OFFLINE),
                lost: redis::Script::new(LOST),
                reap: redis::Script::new(REAP),
                leave: redis::Script::new(LEAVE),
            }),
        }
    }

    /// This node's id (the field it writes).
    pub fn node(&self) -> &str {
        &self.node
    }

    fn hash(&self, share: &Share, level: Level) -> Option<String> {
        let device = match level {
            Level::User => None,
            Level::Device => Some(share.device.as_deref()?),
        };
        Some(self.keys.presence(&share.app, &share.user, device))
    }

    /// This node now holds `share` (a device level share without a device
    /// is nothing).
    pub async fn online(&self, share: &Share, level: Level) -> Result<Online, BrokerError> {
        let Some(hash) = self.hash(share, level) else {
            return Ok(Online {
                everywhere: false,
                was_unlisted: false,
            });
        };
        let value = serde_json::to_string(share)
            .map_err(|e| BrokerError::Unavailable(format!("presence share: {e}")))?;
        let mut invocation = self.scripts.online.prepare_invoke();
        invocation
            .key(hash)
            .key(
                self.keys
                    .presence_of_node(&self.node, level == Level::Device),
            )
            .key(self.keys.presence_nodes())
            .arg(&self.node)
            .arg(value);
        let mut conn = self.conn.clone();
        let ran = invocation.invoke_async::<i64>(&mut conn);
        let bits = self.bounded(ran).await?;
        Ok(Online {
            everywhere: bits & 1 == 1,
            was_unlisted: bits & 2 == 2,
        })
    }

    /// Whether this node is listed as a writer (its share may be in the
    /// ledger); false once a survivor cleared it, or Redis lost it.
    pub async fn is_listed(&self) -> Result<bool, BrokerError> {
        let mut command = redis::cmd("SISMEMBER");
        command.arg(self.keys.presence_nodes()).arg(&self.node);
        let mut conn = self.conn.clone();
        let ran = command.query_async::<i64>(&mut conn);
        self.bounded(ran).await.map(|n| n == 1)
    }

    /// This node no longer holds `share`; true when nobody holds it now
    /// (the cluster-wide offline).
    pub async fn offline(&self, share: &Share, level: Level) -> Result<bool, BrokerError> {
        let Some(hash) = self.hash(share, level) else {
            return Ok(false);
        };
        let mut invocation = self.scripts.offline.prepare_invoke();
        invocation
            .key(hash)
            .key(
                self.keys
                    .presence_of_node(&self.node, level == Level::Device),
            )
            .arg(&self.node);
        let mut conn = self.conn.clone();
        let ran = invocation.invoke_async::<i64>(&mut conn);
        self.bounded(ran).await.map(|n| n == 1)
    }

    /// Nodes that left a share behind and are no longer alive.
    pub async fn lost_nodes(&self) -> Result<Vec<String>, BrokerError> {
        let mut invocation = self.scripts.lost.prepare_invoke();
        invocation
            .key(self.keys.presence_nodes())
            .arg(&self.node)
            .arg(self.keys.node(""));
        let mut conn = self.conn.clone();
        let ran = invocation.invoke_async::<Vec<String>>(&mut conn);
        let ids = self.bounded(ran).await?;
        Ok(ids.into_iter().filter(|id| nodes::valid_id(id)).collect())
    }

    /// Claims the clean-up of dead `node` for `hold`; true for exactly one
    /// caller (until `hold` runs out: a claimant that dies mid-way is
    /// replaced, and the reap resumes where it stopped).
    pub async fn claim(&self, node: &str, hold: Duration) -> Result<bool, BrokerError> {
        let hold_ms = u64::try_from(hold.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut command = redis::cmd("SET");
        command
            .arg(self.keys.presence_lost(node))
            .arg(&self.node)
            .arg("NX")
            .arg("PX")
            .arg(hold_ms);
        let mut conn = self.conn.clone();
        let ran = command.query_async::<Option<String>>(&mut conn);
        self.bounded(ran).await.map(|reply| reply.is_some())
    }

    /// Takes dead `node`'s fields out of every `level` hash; returns the
    /// shares of those now held by nobody. Shares that do not decode (not
    /// written by sser) are skipped and counted in the second value.
    pub async fn reap(&self, node: &str, level: Level) -> Result<(Vec<Share>, u64), BrokerError> {
        let set = self.keys.presence_of_node(node, level == Level::Device);
        let mut gone = Vec::new();
        let mut rejected = 0;
        loop {
            let mut invocation = self.scripts.reap.prepare_invoke();
            invocation.key(&set).arg(node).arg(REAP_BATCH);
            let mut conn = self.conn.clone();
            let ran = invocation.invoke_async::<Vec<redis::Value>>(&mut conn);
            let reply = self.bounded(ran).await?;
            let mut reply = reply.into_iter();
            let left = match reply.next() {
                Some(redis::Value::Int(n)) => n,
                _ => 0,
            };
            for value in reply {
                let redis::Value::BulkString(bytes) = value else {
                    rejected += 1;
                    continue;
                };
                match serde_json::from_slice::<Share>(&bytes) {
                    Ok(share) if share.device.is_some() || level == Level::User => {
                        gone.push(share);
                    }
                    _ => rejected += 1,
                }
            }
            if left <= 0 {
                return Ok((gone, rejected));
            }
        }
    }

    /// A graceful stop after every share of this node was removed: the
    /// survivors need not look at it. False when shares are left (their
    /// offlines then come from a survivor, as `node_lost`).
    pub async fn leave(&self) -> Result<bool, BrokerError> {
        let mut invocation = self.scripts.leave.prepare_invoke();
        invocation
            .key(self.keys.presence_nodes())
            .key(self.keys.presence_of_node(&self.node, false))
            .key(self.keys.presence_of_node(&self.node, true))
            .arg(&self.node);
        let mut conn = self.conn.clone();
        let ran = invocation.invoke_async::<i64>(&mut conn);
        self.bounded(ran).await.map(|n| n == 1)
    }

    /// Dead `node` has nothing left in the ledger: forget it.
    pub async fn forget(&self, node: &str) -> Result<(), BrokerError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .srem(self.keys.presence_nodes(), node)
            .ignore()
            .del(self.keys.presence_of_node(node, false))
            .ignore()
            .del(self.keys.presence_of_node(node, true))
            .ignore()
            .del(self.keys.presence_lost(node))
            .ignore();
        let mut conn = self.conn.clone();
        let ran = pipe.query_async::<()>(&mut conn);
        self.bounded(ran).await
    }

    async fn bounded<T>(
        &self,
        request: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, BrokerError> {
        match tokio::time::timeout(self.timeout, request).await {
            Ok(result) => result.map_err(unavailable),
            Err(_) => Err(BrokerError::Unavailable(super::UNAVAILABLE.to_string())),
        }
    }
}
