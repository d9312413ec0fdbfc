//! The topic registry shared by the nodes: a Redis hash of topic records
//! (`<p>topics`, id → record) and a channel of create/delete notices
//! (`<p>topics:changes`, `c <node> <id> <log id>` / `d …`), each change
//! also kept in the change log ([`super::changes`]). Every write is one
//! script, so the record, the log entry and the notice go together.
//!
//! A record is the persistent store's record encoding
//! ([`codec::encode_record`]) behind one byte for the `persist` flag. A
//! node loads every record at start-up and follows the notices; it skips
//! its own, having applied them already.

use redis::Script;
use redis::aio::ConnectionManager;

use super::changes::{LOG_CAP, LogId, RawEntry};
use super::{Keys, unavailable};
use crate::broker::BrokerError;
use crate::model::TopicId;
use crate::store::{TopicRecord, codec};

fn encode(record: &TopicRecord) -> Vec<u8> {
    let mut value = vec![if record.persist { b'1' } else { b'0' }];
    value.extend(codec::encode_record(record));
    value
}

fn decode(id: &str, value: &[u8]) -> Option<TopicRecord> {
    let (flag, rest) = value.split_first()?;
    let mut record = codec::decode_record(id, rest).ok()?;
    record.persist = *flag == b'1';
    Some(record)
}

/// KEYS: registry, counter, log. ARGV: topic id, record, channel, node,
/// log cap.
const SAVE: &str = r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SET', KEYS[2], '0', 'NX')
local at = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'c', ARGV[1])
redis.call('PUBLISH', ARGV[3], 'c ' .. ARGV[4] .. ' ' .. ARGV[1] .. ' ' .. at)
";

/// KEYS: registry, stream, counter, id index, log. ARGV: topic id,
/// channel, node, log cap.
const REMOVE: &str = r"
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
local at = redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[4], '*', 'd', ARGV[1])
redis.call('PUBLISH', ARGV[2], 'd ' .. ARGV[3] .. ' ' .. ARGV[1] .. ' ' .. at)
";

/// KEYS: registry, log. ARGV: channel, node, log cap, then topic id and
/// record pairs; only records not present are written (and announced).
const RESTORE: &str = r"
for i = 4, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    local at = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'c', ARGV[i])
    redis.call('PUBLISH', ARGV[1], 'c ' .. ARGV[2] .. ' ' .. ARGV[i] .. ' ' .. at)
  end
end
";

/// Stores a new topic's record and tells the other nodes. Its counter is
/// written too (unless one is left), so its positions start at 1 rather
/// than at the epoch's base ([`super::epoch`]).
pub(super) async fn save(
    conn: &ConnectionManager,
    keys: &Keys,
    record: &TopicRecord,
    node: &str,
) -> Result<(), BrokerError> {
    let topic = TopicId::parse(&record.id).map_err(|_| BrokerError::NotFound)?;
    Script::new(SAVE)
        .key(keys.registry())
        .key(keys.counter(&topic))
        .key(keys.registry_log())
        .arg(&record.id)
        .arg(encode(record))
        .arg(keys.registry_channel())
        .arg(node)
        .arg(LOG_CAP)
        .invoke_async::<()>(&mut conn.clone())
        .await
        .map_err(unavailable)
}

/// Drops a topic's record, history, counter and id index, and tells the
/// other nodes.
pub(super) async fn remove(
    conn: &ConnectionManager,
    keys: &Keys,
    topic: &TopicId,
    node: &str,
) -> Result<(), BrokerError> {
    Script::new(REMOVE)
        .key(keys.registry())
        .key(keys.stream(topic))
        .key(keys.counter(topic))
        .key(keys.ids(topic))
        .key(keys.registry_log())
        .arg(topic.as_str())
        .arg(keys.registry_channel())
        .arg(node)
        .arg(LOG_CAP)
        .invoke_async::<()>(&mut conn.clone())
        .await
        .map_err(unavailable)
}

/// Writes back the records of topics this node holds after Redis lost its
/// data (those present are kept) and tells the other nodes. Their counters
/// are left to start at the new epoch's base.
pub(super) async fn restore(
    conn: &ConnectionManager,
    keys: &Keys,
    records: &[TopicRecord],
    node: &str,
) -> Result<(), BrokerError> {
    if records.is_empty() {
        return Ok(());
    }
    let script = Script::new(RESTORE);
    let mut invocation = script.prepare_invoke();
    invocation
        .key(keys.registry())
        .key(keys.registry_log())
        .arg(keys.registry_channel())
        .arg(node)
        .arg(LOG_CAP);
    for record in records {
        invocation.arg(&record.id).arg(encode(record));
    }
    invocation
        .invoke_async::<()>(&mut conn.clone())
        .await
        .map_err(unavailable)
}

/// Every record and the log's newest entry, read together (so no change
/// falls between them).
pub(super) async fn load_all(
    conn: &ConnectionManager,
    keys: &Keys,
) -> Result<(Vec<TopicRecord>, LogId), BrokerError> {
    let (all, newest): (Vec<(String, Vec<u8>)>, Vec<RawEntry>) = redis::pipe()
        .atomic()
        .cmd("HGETALL")
        .arg(keys.registry())
        .cmd("XREVRANGE")
        .arg(keys.registry_log())
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut conn.clone())
        .await
        .map_err(unavailable)?;
    let newest = newest
        .first()
        .and_then(|(id, _)| LogId::parse(id))
        .unwrap_or(LogId::START);
    Ok((decode_all(keys, all), newest))
}

/// Every record, skipping (and logging) any that does not decode.
fn decode_all(keys: &Keys, all: Vec<(String, Vec<u8>)>) -> Vec<TopicRecord> {
    all.into_iter()
        .filter_map(|(id, value)| {
            let record = decode(&id, &value);
            if record.is_none() {
                tracing::warn!(key = %keys.registry(), "skipping an unreadable topic record in Redis");
            }
            record
        })
        .collect()
}

pub(super) async fn load(
    conn: &ConnectionManager,
    keys: &Keys,
    id: &str,
) -> Result<Option<TopicRecord>, BrokerError> {
    let value: Option<Vec<u8>> = redis::cmd("HGET")
        .arg(keys.registry())
        .arg(id)
        .query_async(&mut conn.clone())
        .await
        .map_err(unavailable)?;
    Ok(value.and_then(|v| decode(id, &v)))
}

/// A registry notice from the channel: `c <node> <id> <log id>` or
/// `d <node> <id> <log id>` (the log id is missing from notices of nodes
/// older than the change log).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Notice<'a> {
    pub(super) created: bool,
    pub(super) node: &'a str,
    pub(super) id: &'a str,
    pub(super) at: Option<LogId>,
}

pub(super) fn parse_notice(payload: &str) -> Option<Notice<'_>> {
    let mut parts = payload.split(' ');
    let (kind, node, id) = (parts.next()?, parts.next()?, parts.next()?);
    let at = match parts.next() {
        Some(at) => Some(LogId::parse(at)?),
        None => None,
    };
    if !TopicId::is_valid(id) || parts.next().is_some() {
        return None;
    }
    let created = match kind {
        "c" => true,
        "d" => false,
        _ => return None,
    };
    Some(Notice {
        created,
        node,
        id,
        at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Retention;
    use crate::secret::Secret;

    #[test]
    fn records_round_trip_with_their_flag() {
        for persist in [false, true] {
            let record = TopicRecord {
                id: "abc".into(),
                token: Secret::new("tok"),
                persist,
                created_at_ms: 5,
                retention: Retention::default(),
            };
            let back = decode("abc", &encode(&record)).expect("decodes");
            assert_eq!((back.persist, back.token.expose()), (persist, "tok"));
            assert!(decode("other", &encode(&record)).is_none());
        }
        assert!(decode("abc", b"").is_none());
    }

    #[test]
    fn notices_parse_and_bad_ones_do_not() {
        let created = parse_notice("c n1 abc 17-2").expect("notice");
        assert!(created.created);
        assert_eq!((created.node, created.id), ("n1", "abc"));
        assert_eq!(created.at, LogId::parse("17-2"));
        let deleted = parse_notice("d n1 abc").expect("an older node's notice");
        assert!(!deleted.created && deleted.at.is_none());
        for bad in [
            "x n1 abc",
            "c n1",
            "c n1 a\nb",
            "c n1 abc zz",
            "c n1 abc 1-1 more",
        ] {
            assert_eq!(parse_notice(bad), None, "{bad:?}");
        }
    }
}
