//! Noticing that Redis lost its data (restarted without persistence,
//! flushed, failed over to a replica that had nothing) and staying safe
//! when it did.
//!
//! The first node to use a Redis data set writes `<p>epoch`: a random id
//! and Redis' clock in microseconds, the epoch's *base*. Every node keeps
//! the value it adopted; the publish script refuses a publish made with
//! another value, and the listener compares after every reconnect. A
//! different or missing value means counters, histories and the registry
//! are gone, so:
//! - positions never go backwards or repeat: a topic counter that does not
//!   exist starts at the base, later than any position an earlier epoch
//!   gave out (as configured topics do on a single node after a restart);
//!   topics created within the epoch start at 1, their counter being
//!   written at creation ([`super::registry::save`]);
//! - the registry is re-created from what the nodes hold: each node writes
//!   back the records of the topics it has open (unless present) and
//!   announces them, before it adopts the new epoch (until then its
//!   publishes get a 503, not a 404 for a topic whose record is not back);
//! - followers are told: the first event of the new epoch comes after a
//!   hole, which [`super::live::LiveStream`] reports as a gap (the
//!   connections get `sser.history_truncated`), and a client resuming with
//!   an id of the old epoch is answered as for an id no longer in history.
//!
//! Redis persistence (`appendonly yes`, `appendfsync always`, replicas
//! with `cluster.redis.waitReplicas`) keeps the epoch, and all the rest,
//! across restarts; this is the safety net when it was not set.

use redis::Script;

use super::{Shared, registry};
use crate::broker::BrokerError;

/// KEYS: the epoch key. ARGV: a fresh random id. Returns the epoch's
/// value, writing `<id> <microseconds>` first when there is none.
const ENSURE: &str = r"
local e = redis.call('GET', KEYS[1])
if e then return e end
local t = redis.call('TIME')
e = ARGV[1] .. ' ' .. t[1] .. string.format('%06d', tonumber(t[2]))
redis.call('SET', KEYS[1], e)
return e
";

/// The epoch this node works in.
#[derive(Debug, Default, Clone)]
pub(super) struct Epoch {
    /// `<id> <base>` as stored; empty before the first check.
    pub(super) value: String,
    /// Where the counters of topics without one start.
    pub(super) base: u64,
}

/// The base of an epoch value (`<id> <base>`), if it is one of ours.
fn parse(value: &str) -> Option<u64> {
    let (id, base) = value.rsplit_once(' ')?;
    if id.is_empty() || base.is_empty() || !base.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    base.parse().ok()
}

/// Reads (or starts) the epoch; when it is not the one this node worked
/// in, re-creates the registry from this node's topics and adopts it.
/// Whether Redis had lost its data.
pub(super) async fn check(shared: &Shared) -> Result<bool, BrokerError> {
    let _one_at_a_time = shared.epoch_sync.lock().await;
    let value: String = Script::new(ENSURE)
        .key(shared.keys.epoch())
        .arg(crate::secret::new_id())
        .invoke_async(&mut shared.conn.clone())
        .await
        .map_err(|e| shared.failed("epoch", e))?;
    let Some(base) = parse(&value) else {
        shared.metrics.cluster.redis_error("epoch");
        tracing::error!(key = %shared.keys.epoch(), "the epoch key in Redis was not written by sser; delete it to recover");
        return Err(BrokerError::Unavailable(super::UNAVAILABLE.to_string()));
    };
    let known = shared.epoch.lock().value.clone();
    if known == value {
        return Ok(false);
    }
    let lost = !known.is_empty();
    if lost {
        let records: Vec<_> = shared
            .streams
            .read()
            .values()
            .filter_map(|live| live.record.clone())
            .collect();
        tracing::warn!(
            topics = records.len(),
            base,
            "Redis lost its data (its epoch changed): re-creating the registry from this node's topics; positions continue from the new base, followers are told of the hole"
        );
        registry::restore(&shared.conn, &shared.keys, &records, &shared.node)
            .await
            .map_err(|e| shared.count("epoch", e))?;
    }
    if lost {
        // The change log went with the rest: read the registry whole.
        *shared.registry_seen.lock() = None;
    }
    *shared.epoch.lock() = Epoch { value, base };
    Ok(lost)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn only_epoch_values_sser_wrote_parse() {
        assert_eq!(
            parse("V1StGXR8 1700000000123456"),
            Some(1_700_000_000_123_456)
        );
        for bad in ["", "1700", " 17", "id ", "id 12a", "id -5"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
