//! The topic registry shared by the nodes: a Redis hash of topic records
//! (`<p>topics`, id → record) and a channel of create/delete notices
//! (`<p>topics:changes`, `c <node> <id>` / `d <node> <id>`).
//!
//! A record is the persistent store's record encoding
//! ([`codec::encode_record`]) behind one byte for the `persist` flag. A
//! node loads every record at start-up and follows the notices; it skips
//! its own, having applied them already.

use redis::aio::ConnectionManager;

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

/// Stores a new topic's record and tells the other nodes. Its counter is
/// written too (unless one is left), so its positions start at 1 rather
/// than at the epoch's base ([`super::epoch`]).
pub(super) async fn save(
    conn: &ConnectionManager,
    keys: &Keys,
    record: &TopicRecord,
    node: &str,
) -> Result<(), BrokerError> {
    let counter = TopicId::parse(&record.id)
        .map(|topic| keys.counter(&topic))
        .map_err(|_| BrokerError::NotFound)?;
    redis::pipe()
        .atomic()
        .hset(keys.registry(), &record.id, encode(record))
        .ignore()
        .cmd("SET")
        .arg(counter)
        .arg(0)
        .arg("NX")
        .ignore()
        .publish(keys.registry_channel(), format!("c {node} {}", record.id))
        .ignore()
        .query_async::<()>(&mut conn.clone())
        .await
        .map_err(unavailable)
}

/// Drops a topic's record, history and counter, and tells the other nodes.
pub(super) async fn remove(
    conn: &ConnectionManager,
    keys: &Keys,
    topic: &TopicId,
    node: &str,
) -> Result<(), BrokerError> {
    redis::pipe()
        .atomic()
        .hdel(keys.registry(), topic.as_str())
        .ignore()
        .del(keys.stream(topic))
        .ignore()
        .del(keys.counter(topic))
        .ignore()
        .del(keys.ids(topic))
        .ignore()
        .publish(keys.registry_channel(), format!("d {node} {topic}"))
        .ignore()
        .query_async::<()>(&mut conn.clone())
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
    let mut pipe = redis::pipe();
    for record in records {
        pipe.hset_nx(keys.registry(), &record.id, encode(record))
            .ignore()
            .publish(keys.registry_channel(), format!("c {node} {}", record.id))
            .ignore();
    }
    pipe.query_async::<()>(&mut conn.clone())
        .await
        .map_err(unavailable)
}

/// Every record, skipping (and logging) any that does not decode.
pub(super) async fn load_all(
    conn: &ConnectionManager,
    keys: &Keys,
) -> Result<Vec<TopicRecord>, BrokerError> {
    let all: Vec<(String, Vec<u8>)> = redis::cmd("HGETALL")
        .arg(keys.registry())
        .query_async(&mut conn.clone())
        .await
        .map_err(unavailable)?;
    Ok(all
        .into_iter()
        .filter_map(|(id, value)| {
            let record = decode(&id, &value);
            if record.is_none() {
                tracing::warn!(key = %keys.registry(), "skipping an unreadable topic record in Redis");
            }
            record
        })
        .collect())
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

/// A registry notice from the channel.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Notice<'a> {
    Created { node: &'a str, id: &'a str },
    Deleted { node: &'a str, id: &'a str },
}

pub(super) fn parse_notice(payload: &str) -> Option<Notice<'_>> {
    let mut parts = payload.splitn(3, ' ');
    let (kind, node, id) = (parts.next()?, parts.next()?, parts.next()?);
    if !TopicId::is_valid(id) {
        return None;
    }
    match kind {
        "c" => Some(Notice::Created { node, id }),
        "d" => Some(Notice::Deleted { node, id }),
        _ => None,
    }
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
        assert_eq!(
            parse_notice("c n1 abc"),
            Some(Notice::Created {
                node: "n1",
                id: "abc"
            })
        );
        assert_eq!(
            parse_notice("d n1 abc"),
            Some(Notice::Deleted {
                node: "n1",
                id: "abc"
            })
        );
        assert_eq!(parse_notice("x n1 abc"), None);
        assert_eq!(parse_notice("c n1"), None);
        assert_eq!(parse_notice("c n1 a\nb"), None);
    }
}
