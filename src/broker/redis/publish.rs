//! Publishing into Redis: one Lua script takes the topic's next sequence,
//! appends the event to its Stream with the explicit id `<seq>-0`, applies
//! the topic's retention, keeps the index of publisher ids and announces
//! the event on the topic's channel, all atomically. Redis runs scripts one
//! at a time, so every node sees one order per topic, sequences stay dense
//! (`1`, `2`, … as on a single node) and live messages leave in sequence
//! order.
//!
//! - Epoch: the script refuses a publish made in another epoch than the
//!   data set's ([`super::epoch`]), and a counter that does not exist
//!   starts at the epoch's base, so positions never repeat after Redis
//!   lost its data.
//! - Retention, as on a single node: at most `cap` events (the topic's
//!   `maxEvents`, bounded by `cluster.redis.maxStreamLength`) and none
//!   older than its `maxAge`, measured on Redis' clock (each entry keeps
//!   its time in field `w`). The oldest entries are trimmed exactly, a few
//!   per publish (at most 256), so one publish never holds Redis long.
//!   `maxBytes` is not applied in Redis (`maxStreamLength` bounds memory).
//! - The id index `<p>ids:<topic>`: publisher id → the oldest position
//!   holding it (`<seq>`), marked `<seq>*` once the id repeats and `*`
//!   once that oldest one is trimmed while later ones may remain (then a
//!   lookup scans, [`super::history::find`]). Entries go as the events
//!   they name are trimmed, so the index never outgrows the Stream, bar
//!   the `*` marks of repeated ids, which stay until the topic is deleted.
//!
//! Identity inboxes and the presence feed use a second script
//! ([`append_inbox`]): the same order and announcement, plus their
//! retention (see `inboxes` for why it is applied this way):
//! - positions: a stream whose counter is gone (new, or expired) starts at
//!   the publishing node's clock in microseconds, like a single node's
//!   in-memory inbox, so a position never names two events across an
//!   inbox's lives in Redis;
//! - age: each entry carries its publish time (`w`); expired entries at
//!   the head (a few per publish) are deleted, and the stream and counter
//!   get the age as their TTL, so an inbox nobody sends to any more
//!   vanishes from Redis when its newest event expires.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Script, ScriptInvocation};

use super::entry;
use super::keys::StreamNames;
use crate::broker::{BrokerError, NewEvent};
use crate::model::now_ms;

/// KEYS: counter, stream, registry, epoch, id index. ARGV: cap, max age in
/// ms (0: none), has-id, id, has-type, type, data, channel, live payload,
/// topic id (checked in the registry when not empty, so a topic deleted on
/// another node is not brought back), epoch. Sequences are handled as
/// text (`%d`): past 10^14 Lua would print a number in exponent form.
/// Returns the sequence, -1 when the topic is gone, -2 when the epoch is
/// not the data set's.
const PUBLISH: &str = r"
if redis.call('GET', KEYS[4]) ~= ARGV[11] then
  return -2
end
if ARGV[10] ~= '' and redis.call('HEXISTS', KEYS[3], ARGV[10]) == 0 then
  return -1
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], string.match(ARGV[11], '(%d+)$'))
end
local seq = string.format('%d', redis.call('INCR', KEYS[1]))
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local add = {'XADD', KEYS[2], seq .. '-0', 'd', ARGV[7], 'w', string.format('%d', now)}
if ARGV[3] == '1' then
  table.insert(add, 'i')
  table.insert(add, ARGV[4])
  local held = redis.call('HGET', KEYS[5], ARGV[4])
  if not held then
    redis.call('HSET', KEYS[5], ARGV[4], seq)
  elseif string.sub(held, -1) ~= '*' then
    redis.call('HSET', KEYS[5], ARGV[4], held .. '*')
  end
end
if ARGV[5] == '1' then
  table.insert(add, 't')
  table.insert(add, ARGV[6])
end
redis.call(unpack(add))
local excess = redis.call('XLEN', KEYS[2]) - tonumber(ARGV[1])
local max_age = tonumber(ARGV[2])
local look = excess
if max_age > 0 and look < 8 then
  look = 8
end
if look > 256 then
  look = 256
end
if look > 0 then
  local cut = nil
  for i, e in ipairs(redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', look)) do
    local at, id = nil, nil
    for j = 1, #e[2], 2 do
      if e[2][j] == 'w' then
        at = tonumber(e[2][j + 1])
      elseif e[2][j] == 'i' then
        id = e[2][j + 1]
      end
    end
    local expired = max_age > 0 and at ~= nil and at < now - max_age
    if e[1] == seq .. '-0' or not (i <= excess or expired) then
      break
    end
    if id then
      local held = redis.call('HGET', KEYS[5], id)
      local s = string.match(e[1], '^(%d+)')
      if held == s then
        redis.call('HDEL', KEYS[5], id)
      elseif held == s .. '*' then
        redis.call('HSET', KEYS[5], id, '*')
      end
    end
    cut = e[1]
  end
  if cut then
    redis.call('XTRIM', KEYS[2], 'MINID', (string.gsub(cut, '%-0$', '-1')))
  end
end
redis.call('PUBLISH', ARGV[8], seq .. '\n' .. ARGV[9])
return tonumber(seq)
";

pub(super) fn script() -> Script {
    Script::new(PUBLISH)
}

pub(super) struct Target<'a> {
    pub(super) names: &'a StreamNames,
    pub(super) registry: &'a str,
    pub(super) epoch_key: &'a str,
    pub(super) ids: &'a str,
    pub(super) cap: u64,
    /// `maxAge` in milliseconds; 0: none.
    pub(super) max_age_ms: u64,
    /// The topic id to check in the registry; `None` for topics every node
    /// defines itself.
    pub(super) registered: Option<&'a str>,
    /// The epoch this node works in.
    pub(super) epoch: &'a str,
}

/// What became of a publish.
pub(super) enum Appended {
    /// Stored with this sequence.
    At(u64),
    /// Refused: Redis' data set is not the epoch this node works in.
    OtherEpoch,
}

/// Appends `event` to a topic.
pub(super) async fn append(
    conn: &ConnectionManager,
    script: &Script,
    target: Target<'_>,
    event: &NewEvent,
    wait_replicas: u64,
    wait_timeout_ms: u64,
) -> Result<Appended, BrokerError> {
    let mut conn = conn.clone();
    let mut invocation = script.key(&target.names.counter);
    invocation
        .key(&target.names.stream)
        .key(target.registry)
        .key(target.epoch_key)
        .key(target.ids)
        .arg(target.cap)
        .arg(target.max_age_ms);
    let seq: i64 = event_args(&mut invocation, event, target.names)
        .arg(target.registered.unwrap_or(""))
        .arg(target.epoch)
        .invoke_async(&mut conn)
        .await
        .map_err(super::unavailable)?;
    if seq == -2 {
        return Ok(Appended::OtherEpoch);
    }
    let seq = u64::try_from(seq).map_err(|_| BrokerError::NotFound)?;
    wait_for_replicas(&mut conn, wait_replicas, wait_timeout_ms).await?;
    Ok(Appended::At(seq))
}

/// The event's fields, the stream's pub/sub channel and the live copy to
/// publish on it, in the order both scripts read them from `ARGV`.
fn event_args<'i, 's>(
    invocation: &'i mut ScriptInvocation<'s>,
    event: &NewEvent,
    names: &StreamNames,
) -> &'i mut ScriptInvocation<'s> {
    invocation
        .arg(if event.id.is_some() { "1" } else { "0" })
        .arg(event.id.as_deref().unwrap_or(""))
        .arg(if event.kind.is_some() { "1" } else { "0" })
        .arg(event.kind.as_deref().unwrap_or(""))
        .arg(&event.data)
        .arg(&names.channel)
        .arg(entry::live_payload(event))
}

/// `cluster.redis.waitReplicas`: fails unless that many replicas have what
/// this connection wrote.
async fn wait_for_replicas(
    conn: &mut ConnectionManager,
    wait_replicas: u64,
    wait_timeout_ms: u64,
) -> Result<(), BrokerError> {
    if wait_replicas == 0 {
        return Ok(());
    }
    let acked: u64 = redis::cmd("WAIT")
        .arg(wait_replicas)
        .arg(wait_timeout_ms)
        .query_async(conn)
        .await
        .map_err(super::unavailable)?;
    if acked < wait_replicas {
        return Err(BrokerError::Unavailable(format!(
            "the event is stored on the Redis primary but only {acked} of {wait_replicas} replicas acknowledged it (cluster.redis.waitReplicas); it may be delivered, retry with the same id to be sure"
        )));
    }
    Ok(())
}

/// KEYS: counter, stream. ARGV: cap, has-id, id, has-type, type, data,
/// channel, live payload, now (Unix ms), max age (ms, `0`: none), first
/// sequence (for a stream without a counter). Sequences stay strings in
/// Lua: a clock-seeded one has more digits than Lua prints exactly.
const PUBLISH_INBOX: &str = r"
local seq
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('INCR', KEYS[1])
  seq = redis.call('GET', KEYS[1])
else
  seq = ARGV[11]
  redis.call('SET', KEYS[1], seq)
end
local max_age = tonumber(ARGV[10])
if max_age > 0 then
  local cutoff = tonumber(ARGV[9]) - max_age
  local expired = {}
  for _, e in ipairs(redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 32)) do
    local at = nil
    local f = e[2]
    for i = 1, #f - 1, 2 do
      if f[i] == 'w' then at = tonumber(f[i + 1]) end
    end
    if at ~= nil and at >= cutoff then break end
    table.insert(expired, e[1])
  end
  if #expired > 0 then
    redis.call('XDEL', KEYS[2], unpack(expired))
  end
end
local add = {'XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], seq .. '-0', 'd', ARGV[6], 'w', ARGV[9]}
if ARGV[2] == '1' then
  table.insert(add, 'i')
  table.insert(add, ARGV[3])
end
if ARGV[4] == '1' then
  table.insert(add, 't')
  table.insert(add, ARGV[5])
end
redis.call(unpack(add))
if max_age > 0 then
  redis.call('PEXPIRE', KEYS[1], max_age)
  redis.call('PEXPIRE', KEYS[2], max_age)
end
redis.call('PUBLISH', ARGV[7], seq .. '\n' .. ARGV[8])
return seq
";

pub(super) fn inbox_script() -> Script {
    Script::new(PUBLISH_INBOX)
}

/// Where [`append_inbox`] writes, and the retention it applies.
pub(super) struct InboxTarget<'a> {
    pub(super) names: &'a StreamNames,
    pub(super) cap: u64,
    pub(super) max_age: Option<Duration>,
}

/// Appends `event` to an inbox (or the presence feed); returns its sequence.
pub(super) async fn append_inbox(
    conn: &ConnectionManager,
    script: &Script,
    target: InboxTarget<'_>,
    event: &NewEvent,
    wait_replicas: u64,
    wait_timeout_ms: u64,
) -> Result<u64, BrokerError> {
    let mut conn = conn.clone();
    let now = now_ms();
    let max_age = target.max_age.map_or(0, |age| {
        u64::try_from(age.as_millis()).unwrap_or(u64::MAX).max(1)
    });
    let mut invocation = script.key(&target.names.counter);
    invocation.key(&target.names.stream).arg(target.cap);
    let seq: u64 = event_args(&mut invocation, event, target.names)
        .arg(now)
        .arg(max_age)
        .arg(now.saturating_mul(1000).max(1))
        .invoke_async(&mut conn)
        .await
        .map_err(super::unavailable)?;
    wait_for_replicas(&mut conn, wait_replicas, wait_timeout_ms).await?;
    Ok(seq)
}
