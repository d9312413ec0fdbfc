//! How persistent topics are laid out as bytes, shared by every disk engine.
//!
//! An event is stored under its sequence (big-endian `u64`, so key order is
//! publish order) with this value:
//!
//! ```text
//! [version: u8 = 1][published_at_ms: u64 BE][id_len: u32 BE][id][SSE frame]
//! ```
//!
//! The frame is stored already encoded, so replay sends stored bytes as they
//! are (encode once holds across restarts too). A topic record is JSON, so
//! it stays readable and can grow fields. Decoding never panics: anything
//! malformed is a [`StoreError::Corrupt`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Retention, StoreError, StoredEvent, TopicRecord};
use crate::model::TopicId;
use crate::secret::Secret;

const EVENT_V1: u8 = 1;
const HEADER: usize = 1 + 8 + 4;

pub fn encode_event(event: &StoredEvent) -> Vec<u8> {
    let id = event.id.as_bytes();
    let mut out = Vec::with_capacity(HEADER + id.len() + event.frame.len());
    out.push(EVENT_V1);
    out.extend_from_slice(&event.published_at_ms.to_be_bytes());
    out.extend_from_slice(&(id.len() as u32).to_be_bytes());
    out.extend_from_slice(id);
    out.extend_from_slice(&event.frame);
    out
}

/// What retention needs to know about a stored event without copying it.
#[derive(Debug, Clone, Copy)]
pub struct Peek {
    pub published_at_ms: u64,
    pub frame_len: u64,
}

fn split(value: &[u8]) -> Result<(u64, &[u8], &[u8]), StoreError> {
    let corrupt = || StoreError::Corrupt(format!("malformed event value ({} bytes)", value.len()));
    if value.len() < HEADER || value[0] != EVENT_V1 {
        return Err(corrupt());
    }
    let ts = u64::from_be_bytes(value[1..9].try_into().map_err(|_| corrupt())?);
    let id_len = u32::from_be_bytes(value[9..13].try_into().map_err(|_| corrupt())?) as usize;
    let rest = &value[HEADER..];
    if rest.len() < id_len {
        return Err(corrupt());
    }
    let (id, frame) = rest.split_at(id_len);
    Ok((ts, id, frame))
}

pub fn peek(value: &[u8]) -> Result<Peek, StoreError> {
    let (published_at_ms, _, frame) = split(value)?;
    Ok(Peek {
        published_at_ms,
        frame_len: frame.len() as u64,
    })
}

pub fn decode_id(value: &[u8]) -> Result<&str, StoreError> {
    let (_, id, _) = split(value)?;
    std::str::from_utf8(id).map_err(|_| StoreError::Corrupt("event id is not UTF-8".into()))
}

pub fn decode_event(seq: u64, value: &[u8]) -> Result<StoredEvent, StoreError> {
    let (published_at_ms, _, frame) = split(value)?;
    Ok(StoredEvent {
        seq,
        id: Arc::from(decode_id(value)?),
        frame: Bytes::copy_from_slice(frame),
        published_at_ms,
    })
}

/// Sequence keys: big-endian so that byte order is numeric order.
pub fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

pub fn seq_from_key(key: &[u8]) -> Result<u64, StoreError> {
    key.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt(format!("event key of {} bytes", key.len())))
}

/// The registry record of a persistent topic, as JSON. The token is kept as
/// is (subscribers must be checked against it after a restart), so the store
/// directory must be as private as the configuration that holds the API token.
#[derive(Serialize, Deserialize)]
struct RecordV1 {
    id: String,
    token: String,
    created_at_ms: u64,
    #[serde(default)]
    retention: RetentionV1,
}

/// [`Retention`] as records store it: `max_age` in milliseconds, `null` for
/// no limit. The on-disk format, owned here so no other type can change it.
#[derive(Serialize, Deserialize, Default)]
struct RetentionV1 {
    max_events: Option<u64>,
    max_age: Option<u64>,
    max_bytes: Option<u64>,
}

impl From<Retention> for RetentionV1 {
    fn from(r: Retention) -> Self {
        RetentionV1 {
            max_events: r.max_events,
            max_age: r.max_age.map(|d| d.as_millis() as u64),
            max_bytes: r.max_bytes,
        }
    }
}

impl From<RetentionV1> for Retention {
    fn from(r: RetentionV1) -> Self {
        Retention {
            max_events: r.max_events,
            max_age: r.max_age.map(Duration::from_millis),
            max_bytes: r.max_bytes,
        }
    }
}

pub fn encode_record(record: &TopicRecord) -> Vec<u8> {
    let v = RecordV1 {
        id: record.id.clone(),
        token: record.token.expose().to_string(),
        created_at_ms: record.created_at_ms,
        retention: record.retention.into(),
    };
    // Serializing plain strings and numbers cannot fail.
    serde_json::to_vec(&v).unwrap_or_default()
}

pub fn decode_record(key: &str, value: &[u8]) -> Result<TopicRecord, StoreError> {
    let v: RecordV1 = serde_json::from_slice(value)
        .map_err(|e| StoreError::Corrupt(format!("topic record {key:?}: {e}")))?;
    if v.id != key || !TopicId::is_valid(&v.id) {
        return Err(StoreError::Corrupt(format!(
            "topic record {key:?} holds id {:?}",
            v.id
        )));
    }
    Ok(TopicRecord {
        id: v.id,
        token: Secret::new(&v.token),
        persist: true,
        created_at_ms: v.created_at_ms,
        retention: v.retention.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_round_trip_and_garbage() {
        let e = StoredEvent {
            seq: 7,
            id: Arc::from("abc"),
            frame: Bytes::from_static(b"id: abc\ndata: x\n\n"),
            published_at_ms: 42,
        };
        let v = encode_event(&e);
        let d = decode_event(7, &v).unwrap();
        assert_eq!(&*d.id, "abc");
        assert_eq!(d.frame, e.frame);
        assert_eq!(d.published_at_ms, 42);
        assert_eq!(peek(&v).unwrap().frame_len, e.frame.len() as u64);
        for bad in [
            &b""[..],
            b"\x02aaaaaaaaaaaaaaaa",
            b"\x01\0\0\0\0\0\0\0\0\xff\xff\xff\xffab",
        ] {
            assert!(decode_event(1, bad).is_err());
        }
        assert!(seq_from_key(b"abc").is_err());
    }
}
