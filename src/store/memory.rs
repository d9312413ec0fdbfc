//! In-memory topic history: a ring of the most recent events.
//!
//! It has its own small lock so replay reads never contend with the topic's
//! publish lock for longer than a few clones of `Bytes`. An [`IdIndex`] kept
//! under the same lock answers `find` without scanning the ring.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;

use super::id_index::IdIndex;
use super::{Commit, Retention, StoreError, StoredEvent, TopicLog, now_ms};

pub struct MemoryLog {
    retention: Retention,
    inner: Mutex<Ring>,
}

#[derive(Default)]
struct Ring {
    events: VecDeque<StoredEvent>,
    bytes: u64,
    /// Publisher-chosen ids of `events`; trimmed with them.
    ids: IdIndex,
}

impl MemoryLog {
    pub fn new(retention: Retention) -> Arc<Self> {
        Arc::new(MemoryLog {
            retention,
            inner: Mutex::new(Ring::default()),
        })
    }

    fn trim(&self, ring: &mut Ring) {
        let max_events = self.retention.max_events.unwrap_or(u64::MAX);
        let max_bytes = self.retention.max_bytes.unwrap_or(u64::MAX);
        let oldest_allowed = self
            .retention
            .max_age
            .map(|age| now_ms().saturating_sub(age.as_millis() as u64));
        let mut popped = false;
        while let Some(front) = ring.events.front() {
            let too_many = ring.events.len() as u64 > max_events;
            let too_big = ring.bytes > max_bytes;
            let too_old = oldest_allowed.is_some_and(|t| front.published_at_ms < t);
            if !(too_many || too_big || too_old) {
                break;
            }
            ring.bytes -= front.frame.len() as u64;
            ring.events.pop_front();
            popped = true;
        }
        if popped {
            let first = ring.events.front().map(|e| e.seq);
            ring.ids.trim_to(first);
        }
    }
}

impl TopicLog for MemoryLog {
    fn append(&self, event: StoredEvent) -> Commit {
        let mut ring = self.inner.lock();
        ring.bytes += event.frame.len() as u64;
        ring.ids.push(event.seq, &event.id);
        ring.events.push_back(event);
        self.trim(&mut ring);
        Commit::Done
    }

    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let mut ring = self.inner.lock();
        self.trim(&mut ring);
        // Sequences are increasing, so the start is found by binary search.
        let start = ring.events.partition_point(|e| e.seq <= after);
        Ok(ring.events.range(start..).take(limit).cloned().collect())
    }

    fn find(&self, id: &str) -> Result<Option<u64>, StoreError> {
        let mut ring = self.inner.lock();
        // Age-based retention is applied lazily here as in `read_after`, so
        // an expired event is never named.
        self.trim(&mut ring);
        Ok(ring.ids.find(id))
    }

    fn bounds(&self) -> Option<(u64, u64)> {
        let ring = self.inner.lock();
        Some((ring.events.front()?.seq, ring.events.back()?.seq))
    }

    fn usage(&self) -> (u64, u64) {
        let ring = self.inner.lock();
        (ring.events.len() as u64, ring.bytes)
    }

    fn expire(&self) {
        let mut ring = self.inner.lock();
        self.trim(&mut ring);
    }

    fn destroy(&self) -> Result<(), StoreError> {
        let mut ring = self.inner.lock();
        ring.events.clear();
        ring.bytes = 0;
        ring.ids.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64) -> StoredEvent {
        StoredEvent {
            seq,
            id: Arc::from(seq.to_string()),
            frame: bytes::Bytes::from(format!("id: {seq}\ndata: x\n\n")),
            published_at_ms: now_ms(),
        }
    }

    #[test]
    fn ring_keeps_the_newest_and_reads_after() {
        let log = MemoryLog::new(Retention {
            max_events: Some(3),
            ..Retention::default()
        });
        for seq in 1..=5 {
            let _ = log.append(ev(seq));
        }
        assert_eq!(log.bounds(), Some((3, 5)));
        let seqs: Vec<u64> = log
            .read_after(3, 10)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, vec![4, 5]);
        assert_eq!(log.find("4").unwrap(), Some(4));
        assert_eq!(log.find("1").unwrap(), None);
        assert_eq!(log.read_after(0, 1).unwrap()[0].seq, 3);
    }
}
