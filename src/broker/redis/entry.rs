//! Events as sser writes them into Redis and reads them back.
//!
//! A stream entry has id `<seq>-0` and fields `d` (data), `i` (the
//! publisher's id) and `t` (its type) when given, and `w` (when it was
//! published, Unix milliseconds: what an age bound reads; Redis' clock for
//! topics, the publishing node's for inboxes). A live message on a
//! topic's channel is `<seq>\n<json>` with the same three fields. Whatever
//! comes back from Redis is checked as publisher input is
//! ([`NewEvent::new`]): anyone able to write to Redis could have written it,
//! and an id or type with CR/LF/NUL would break the SSE framing of every
//! subscriber. What fails is rejected (the caller drops and counts it).

use serde::{Deserialize, Serialize};

use crate::broker::{Delivery, NewEvent};
use crate::model::Position;

/// One entry read back from Redis: its sequence, and the event unless it
/// was rejected.
pub(super) struct Entry {
    pub(super) seq: u64,
    pub(super) event: Option<NewEvent>,
    /// When it was published, in Unix milliseconds.
    pub(super) published_ms: Option<u64>,
}

impl Entry {
    /// The frame subscribers get (ids default to the sequence, as on one node).
    pub(super) fn delivery(&self) -> Option<Delivery> {
        self.event.as_ref().map(|event| delivery(self.seq, event))
    }

    /// The id a single-topic subscriber sees for this entry.
    pub(super) fn event_id(&self) -> Option<String> {
        let event = self.event.as_ref()?;
        Some(event.id.clone().unwrap_or_else(|| self.seq.to_string()))
    }
}

pub(super) fn delivery(seq: u64, event: &NewEvent) -> Delivery {
    let (_, frame) = event.encode(&seq.to_string());
    Delivery {
        position: Position::from_seq(seq),
        frame,
    }
}

/// The sequence of a stream entry id sser wrote (`<seq>-0`); anything else
/// was not written by sser.
pub(super) fn stream_seq(id: &str) -> Option<u64> {
    let (seq, minor) = id.split_once('-')?;
    if minor != "0" || seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    seq.parse().ok()
}

/// The event in an entry's flat field list (`[name, value, name, value…]`).
pub(super) fn from_fields(fields: &[Vec<u8>]) -> Option<NewEvent> {
    let mut id = None;
    let mut kind = None;
    let mut data = None;
    for pair in fields.chunks(2) {
        let [name, value] = pair else { return None };
        let value = String::from_utf8(value.clone()).ok()?;
        match name.as_slice() {
            b"i" => id = Some(value),
            b"t" => kind = Some(value),
            b"d" => data = Some(value),
            b"w" => {
                published_ms(&value)?;
            }
            _ => return None,
        }
    }
    NewEvent::new(id, kind, data?).ok()
}

/// The `w` field of an entry's flat field list, if it has a valid one.
pub(super) fn published_at(fields: &[Vec<u8>]) -> Option<u64> {
    fields
        .chunks(2)
        .find(|pair| pair.first().is_some_and(|name| name == b"w"))
        .and_then(|pair| pair.get(1))
        .and_then(|value| std::str::from_utf8(value).ok())
        .and_then(published_ms)
}

fn published_ms(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

#[derive(Serialize, Deserialize)]
struct Live {
    #[serde(skip_serializing_if = "Option::is_none")]
    i: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    t: Option<String>,
    d: String,
}

/// The JSON half of a live message.
pub(super) fn live_payload(event: &NewEvent) -> String {
    let live = Live {
        i: event.id.clone(),
        t: event.kind.clone(),
        d: event.data.clone(),
    };
    // Plain strings always serialize.
    serde_json::to_string(&live).unwrap_or_default()
}

/// A live message: `None` when even its sequence is unreadable (then it is
/// ignored: the next good one repairs any gap from the stream).
pub(super) fn from_live(payload: &[u8]) -> Option<Entry> {
    let at = payload.iter().position(|&b| b == b'\n')?;
    let seq = std::str::from_utf8(&payload[..at]).ok()?;
    if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seq = seq.parse().ok()?;
    let event = serde_json::from_slice::<Live>(&payload[at + 1..])
        .ok()
        .and_then(|live| NewEvent::new(live.i, live.t, live.d).ok());
    Some(Entry {
        seq,
        event,
        published_ms: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<Vec<u8>> {
        pairs
            .iter()
            .flat_map(|(k, v)| [k.as_bytes().to_vec(), v.as_bytes().to_vec()])
            .collect()
    }

    #[test]
    fn only_sser_ids_are_sequences() {
        assert_eq!(stream_seq("42-0"), Some(42));
        for bad in ["42-1", "42", "-0", "a-0", "1700000000000-5", "+1-0"] {
            assert_eq!(stream_seq(bad), None, "{bad}");
        }
    }

    #[test]
    fn fields_are_checked_like_publisher_input() {
        let ok = from_fields(&fields(&[("d", "x\ny"), ("i", "a1"), ("t", "greet")]));
        let ok = ok.expect("valid");
        assert_eq!(
            (ok.id.as_deref(), ok.kind.as_deref()),
            (Some("a1"), Some("greet"))
        );
        let inbox = fields(&[("d", "x"), ("w", "1700000000000")]);
        assert!(from_fields(&inbox).is_some());
        assert_eq!(published_at(&inbox), Some(1_700_000_000_000));
        assert_eq!(published_at(&fields(&[("d", "x")])), None);
        for bad in [
            fields(&[("d", "x"), ("i", "a\nid: forged")]),
            fields(&[("d", "x"), ("t", "t\r")]),
            fields(&[("d", "x"), ("i", "a\0")]),
            fields(&[("i", "no data")]),
            fields(&[("d", "x"), ("zz", "unknown field")]),
            fields(&[("d", "x"), ("w", "-1")]),
            fields(&[("d", "x"), ("w", "soon")]),
            vec![b"d".to_vec()],
        ] {
            assert!(from_fields(&bad).is_none());
        }
    }

    #[test]
    fn live_messages_round_trip_and_bad_ones_are_rejected() {
        let event = NewEvent::new(Some("e".into()), None, "data".into()).unwrap();
        let message = format!("7\n{}", live_payload(&event));
        let entry = from_live(message.as_bytes()).expect("parsed");
        assert_eq!(entry.seq, 7);
        assert_eq!(entry.event_id().as_deref(), Some("e"));
        let forged = from_live(b"8\n{\"i\":\"x\\ny\",\"d\":\"\"}").expect("seq read");
        assert!(forged.event.is_none());
        assert!(from_live(b"x\n{}").is_none());
        assert!(from_live(b"9").is_none());
    }
}
