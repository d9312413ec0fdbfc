//! Publishing into Redis: one Lua script takes the topic's next sequence,
//! appends the event to its Stream with the explicit id `<seq>-0` (trimmed
//! to about `cap` entries) and announces it on the topic's channel, all
//! atomically. Redis runs scripts one at a time, so every node sees one
//! order per topic, sequences stay dense (`1`, `2`, … as on a single node)
//! and live messages leave in sequence order.

use redis::Script;
use redis::aio::ConnectionManager;

use super::entry;
use crate::broker::{BrokerError, NewEvent};

/// KEYS: counter, stream, registry. ARGV: cap, has-id, id, has-type, type,
/// data, channel, live payload, topic id (checked in the registry when not
/// empty, so a topic deleted on another node is not brought back).
const PUBLISH: &str = r"
if ARGV[9] ~= '' and redis.call('HEXISTS', KEYS[3], ARGV[9]) == 0 then
  return -1
end
local seq = redis.call('INCR', KEYS[1])
local add = {'XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], seq .. '-0', 'd', ARGV[6]}
if ARGV[2] == '1' then
  table.insert(add, 'i')
  table.insert(add, ARGV[3])
end
if ARGV[4] == '1' then
  table.insert(add, 't')
  table.insert(add, ARGV[5])
end
redis.call(unpack(add))
redis.call('PUBLISH', ARGV[7], seq .. '\n' .. ARGV[8])
return seq
";

pub(super) fn script() -> Script {
    Script::new(PUBLISH)
}

pub(super) struct Target<'a> {
    pub(super) counter: &'a str,
    pub(super) stream: &'a str,
    pub(super) registry: &'a str,
    pub(super) channel: &'a str,
    pub(super) cap: u64,
    /// The topic id to check in the registry; `None` for topics every node
    /// defines itself.
    pub(super) registered: Option<&'a str>,
}

/// Appends `event`; returns its sequence.
pub(super) async fn append(
    conn: &ConnectionManager,
    script: &Script,
    target: Target<'_>,
    event: &NewEvent,
    wait_replicas: u64,
    wait_timeout_ms: u64,
) -> Result<u64, BrokerError> {
    let mut conn = conn.clone();
    let seq: i64 = script
        .key(target.counter)
        .key(target.stream)
        .key(target.registry)
        .arg(target.cap)
        .arg(if event.id.is_some() { "1" } else { "0" })
        .arg(event.id.as_deref().unwrap_or(""))
        .arg(if event.kind.is_some() { "1" } else { "0" })
        .arg(event.kind.as_deref().unwrap_or(""))
        .arg(&event.data)
        .arg(target.channel)
        .arg(entry::live_payload(event))
        .arg(target.registered.unwrap_or(""))
        .invoke_async(&mut conn)
        .await
        .map_err(super::unavailable)?;
    let seq = u64::try_from(seq).map_err(|_| BrokerError::NotFound)?;
    if wait_replicas > 0 {
        let acked: u64 = redis::cmd("WAIT")
            .arg(wait_replicas)
            .arg(wait_timeout_ms)
            .query_async(&mut conn)
            .await
            .map_err(super::unavailable)?;
        if acked < wait_replicas {
            return Err(BrokerError::Unavailable(format!(
                "the event is stored on the Redis primary but only {acked} of {wait_replicas} replicas acknowledged it (cluster.redis.waitReplicas); it may be delivered, retry with the same id to be sure"
            )));
        }
    }
    Ok(seq)
}
