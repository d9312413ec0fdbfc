//! Reading a stream's history from its Redis Stream: pages after a position
//! (resume, lag catch-up, gap repair), the first entry (truncation), and
//! finding an event by its id.
//!
//! Entries sser did not write (an id other than `<seq>-0`) are skipped;
//! entries whose fields fail validation come back rejected
//! ([`Entry::event`] is `None`) so that callers count them and still move
//! past their sequence.

use redis::aio::ConnectionManager;

use super::entry::{self, Entry};
use super::unavailable;
use crate::broker::BrokerError;

type RawEntry = (String, Vec<Vec<u8>>);

/// A page of entries read from a stream.
pub(super) struct Page {
    pub(super) entries: Vec<Entry>,
    /// Entries read, sser's or not: fewer than asked means the end.
    pub(super) read: usize,
    /// The stream's counter: the newest sequence ever assigned.
    pub(super) last_assigned: u64,
}

fn decode(raw: Vec<RawEntry>) -> (Vec<Entry>, usize) {
    let read = raw.len();
    let entries = raw
        .into_iter()
        .filter_map(|(id, fields)| {
            let seq = entry::stream_seq(&id)?;
            Some(Entry {
                seq,
                event: entry::from_fields(&fields),
                published_ms: entry::published_at(&fields),
            })
        })
        .collect();
    (entries, read)
}

/// Up to `limit` entries after sequence `after`, with the counter, read in
/// one round trip.
pub(super) async fn after(
    conn: &ConnectionManager,
    stream: &str,
    counter: &str,
    after: u64,
    limit: usize,
) -> Result<Page, BrokerError> {
    let start = if after == 0 {
        "-".to_string()
    } else {
        format!("({after}-0")
    };
    let (raw, last): (Vec<RawEntry>, Option<u64>) = redis::pipe()
        .cmd("XRANGE")
        .arg(stream)
        .arg(start)
        .arg("+")
        .arg("COUNT")
        .arg(limit)
        .cmd("GET")
        .arg(counter)
        .query_async(&mut conn.clone())
        .await
        .map_err(unavailable)?;
    let (entries, read) = decode(raw);
    Ok(Page {
        entries,
        read,
        last_assigned: last.unwrap_or(0),
    })
}

/// The oldest entry's sequence, and the counter.
pub(super) async fn first(
    conn: &ConnectionManager,
    stream: &str,
    counter: &str,
) -> Result<(Option<u64>, u64), BrokerError> {
    let (raw, last): (Vec<RawEntry>, Option<u64>) = redis::pipe()
        .cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .cmd("GET")
        .arg(counter)
        .query_async(&mut conn.clone())
        .await
        .map_err(unavailable)?;
    let first = raw.first().and_then(|(id, _)| entry::stream_seq(id));
    Ok((first, last.unwrap_or(0)))
}

/// The sequence of the oldest event with this id still held (an event
/// without a publisher id is known by its sequence, as on one node).
pub(super) async fn find(
    conn: &ConnectionManager,
    stream: &str,
    counter: &str,
    event_id: &str,
) -> Result<Option<u64>, BrokerError> {
    const PAGE: usize = 1000;
    let mut cursor = 0;
    loop {
        let page = after(conn, stream, counter, cursor, PAGE).await?;
        for entry in &page.entries {
            if entry.event_id().as_deref() == Some(event_id) {
                return Ok(Some(entry.seq));
            }
        }
        match page.entries.last() {
            Some(last) if page.read == PAGE => cursor = last.seq,
            _ => return Ok(None),
        }
    }
}
