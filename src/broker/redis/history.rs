//! Reading a stream's history from its Redis Stream: pages after a position
//! (resume, lag catch-up, gap repair), the first entry (truncation), and
//! finding an event by its id.
//!
//! Entries sser did not write (an id other than `<seq>-0`) are skipped;
//! entries whose fields fail validation come back rejected
//! ([`Entry::event`] is `None`) so that callers count them and still move
//! past their sequence. Entries older than the stream's `maxAge` are
//! trimmed by the next publish; until then readers treat them as gone
//! ([`Entry::expired`]), so an expired event is never named or replayed.

use redis::Script;
use redis::aio::ConnectionManager;

use super::entry::{self, Entry};
use super::unavailable;
use crate::broker::BrokerError;

type RawEntry = (String, Vec<Vec<u8>>);

/// Where a stream's history is, and how to read it.
pub(super) struct Source {
    pub(super) stream: String,
    pub(super) counter: String,
    /// A topic's index of publisher ids (inboxes have none: `find` scans).
    pub(super) ids: Option<String>,
    /// What the counter stands at while it does not exist: for a topic the
    /// epoch's base ([`super::epoch`]), for an inbox 0 (its next life
    /// starts at the clock).
    pub(super) base: u64,
    /// Entries appended before this time (ms) have expired (`maxAge`).
    pub(super) expired_before: Option<u64>,
}

impl Entry {
    pub(super) fn expired(&self, source: &Source) -> bool {
        matches!((self.published_ms, source.expired_before), (Some(at), Some(before)) if at < before)
    }
}

/// A page of entries read from a stream.
pub(super) struct Page {
    pub(super) entries: Vec<Entry>,
    /// Entries read, sser's or not: fewer than asked means the end.
    pub(super) read: usize,
    /// The topic's counter: the newest sequence ever assigned.
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

/// Up to `limit` entries after sequence `after`, with the counter, read
/// atomically (so an empty page with a counter past `after` means the
/// events were trimmed, not that they are on their way).
pub(super) async fn after(
    conn: &ConnectionManager,
    topic: &Source,
    after: u64,
    limit: usize,
) -> Result<Page, BrokerError> {
    let start = if after == 0 {
        "-".to_string()
    } else {
        format!("({after}-0")
    };
    let (raw, last): (Vec<RawEntry>, Option<u64>) = redis::pipe()
        .atomic()
        .cmd("XRANGE")
        .arg(&topic.stream)
        .arg(start)
        .arg("+")
        .arg("COUNT")
        .arg(limit)
        .cmd("GET")
        .arg(&topic.counter)
        .query_async(&mut conn.clone())
        .await
        .map_err(unavailable)?;
    let (entries, read) = decode(raw);
    Ok(Page {
        entries,
        read,
        last_assigned: last.unwrap_or(topic.base),
    })
}

/// The counter: the newest sequence ever assigned.
pub(super) async fn last_assigned(
    conn: &ConnectionManager,
    topic: &Source,
) -> Result<u64, BrokerError> {
    let last: Option<u64> = redis::cmd("GET")
        .arg(&topic.counter)
        .query_async(&mut conn.clone())
        .await
        .map_err(unavailable)?;
    Ok(last.unwrap_or(topic.base))
}

/// The oldest entry's sequence that has not expired, and the counter.
pub(super) async fn first(
    conn: &ConnectionManager,
    topic: &Source,
) -> Result<(Option<u64>, u64), BrokerError> {
    // Expired entries linger only on a topic nobody published to since:
    // usually the first page holds the answer.
    const PAGE: usize = 16;
    let mut cursor = 0;
    loop {
        let page = after(conn, topic, cursor, PAGE).await?;
        if let Some(entry) = page.entries.iter().find(|e| !e.expired(topic)) {
            return Ok((Some(entry.seq), page.last_assigned));
        }
        match page.entries.last() {
            Some(last) if page.read == PAGE => cursor = last.seq,
            _ => return Ok((None, page.last_assigned)),
        }
    }
}

/// KEYS: stream, id index. ARGV: the id, the id as a sequence (or empty),
/// the expiry time in ms (0: none). Returns the sequence of the oldest
/// event held with this id, -1 when there is none, -2 when the index
/// cannot tell (the id repeats and its oldest event was trimmed): scan.
const FIND: &str = r"
local function held(seq)
  local e = redis.call('XRANGE', KEYS[1], seq .. '-0', seq .. '-0')
  if #e == 0 then
    return nil
  end
  local at, id = nil, nil
  for j = 1, #e[1][2], 2 do
    if e[1][2][j] == 'w' then
      at = tonumber(e[1][2][j + 1])
    elseif e[1][2][j] == 'i' then
      id = e[1][2][j + 1]
    end
  end
  if at ~= nil and at < tonumber(ARGV[3]) then
    return nil
  end
  return {id}
end
local best = nil
local indexed = redis.call('HGET', KEYS[2], ARGV[1])
if indexed then
  local seq = string.match(indexed, '^(%d+)')
  if not seq then
    return -2
  end
  local e = held(seq)
  if not e or e[1] ~= ARGV[1] then
    return -2
  end
  best = seq
end
if ARGV[2] ~= '' and (best == nil or #ARGV[2] < #best or (#ARGV[2] == #best and ARGV[2] < best)) then
  local e = held(ARGV[2])
  if e and e[1] == nil then
    best = ARGV[2]
  end
end
if best == nil then
  return -1
end
return tonumber(best)
";

/// The sequence of the oldest event with this id still held (an event
/// without a publisher id is known by its sequence, as on one node): from
/// the id index, in one round trip; by a scan of the Stream only for an id
/// that repeats and whose oldest event was trimmed.
pub(super) async fn find(
    conn: &ConnectionManager,
    topic: &Source,
    event_id: &str,
) -> Result<Option<u64>, BrokerError> {
    let Some(ids) = &topic.ids else {
        return scan(conn, topic, event_id).await;
    };
    let as_seq = event_id
        .parse::<u64>()
        .ok()
        .filter(|seq| *seq > 0 && seq.to_string() == event_id);
    let found: i64 = Script::new(FIND)
        .key(&topic.stream)
        .key(ids)
        .arg(event_id)
        .arg(as_seq.map_or_else(String::new, |seq| seq.to_string()))
        .arg(topic.expired_before.unwrap_or(0))
        .invoke_async(&mut conn.clone())
        .await
        .map_err(unavailable)?;
    match found {
        -2 => scan(conn, topic, event_id).await,
        seq => Ok(u64::try_from(seq).ok()),
    }
}

/// `find` the slow way: every entry, oldest first.
async fn scan(
    conn: &ConnectionManager,
    topic: &Source,
    event_id: &str,
) -> Result<Option<u64>, BrokerError> {
    const PAGE: usize = 1000;
    let mut cursor = 0;
    loop {
        let page = after(conn, topic, cursor, PAGE).await?;
        for entry in &page.entries {
            if !entry.expired(topic) && entry.event_id().as_deref() == Some(event_id) {
                return Ok(Some(entry.seq));
            }
        }
        match page.entries.last() {
            Some(last) if page.read == PAGE => cursor = last.seq,
            _ => return Ok(None),
        }
    }
}
