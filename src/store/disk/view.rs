//! What the writer and the readers of one log share: its counts, bounds and
//! id index, in memory, behind one lock.
//!
//! This lets `find`, `bounds` and `usage` answer without touching the disk,
//! and keeps one rule in one place: only the writer (and `destroy`) changes
//! this view, and only after the engine has committed what it describes.

use std::sync::Arc;

use parking_lot::Mutex;

use super::engine::Trim;
use crate::store::Retention;
use crate::store::id_index::IdIndex;

/// In-memory view of one log, kept current by the writer.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Meta {
    pub(super) first: Option<u64>,
    pub(super) count: u64,
    pub(super) bytes: u64,
    /// Newest sequence written (durable in sync mode).
    pub(super) last_seq: u64,
    pub(super) destroyed: bool,
}

/// What readers of a log see, behind one lock, so the counts and the id
/// index always describe the same moment. Only the writer thread (and
/// `destroy`) changes it, right after the engine transaction that it
/// describes has committed: an event is never indexed before it is stored,
/// and its publisher is answered (then the event fanned out) only after, so
/// no client can hold an id `find` does not know yet. Trimming is seen here
/// a moment after it is on disk; in that moment `find` can only answer an
/// older sequence, never a newer one, and a replay after an event that has
/// just gone reports the gap (`sser.lagged`) rather than skipping anything.
#[derive(Default)]
pub(super) struct Held {
    pub(super) meta: Meta,
    pub(super) ids: IdIndex,
}

pub(super) struct LogShared {
    pub(super) topic: Arc<str>,
    pub(super) retention: Retention,
    pub(super) held: Mutex<Held>,
}

impl LogShared {
    pub(super) fn trim_limits(&self, meta: &Meta, now: u64) -> Trim {
        Trim {
            max_events: self.retention.max_events.unwrap_or(u64::MAX),
            max_bytes: self.retention.max_bytes.unwrap_or(u64::MAX),
            cutoff_ms: self
                .retention
                .max_age
                .map_or(0, |age| now.saturating_sub(age.as_millis() as u64)),
            count: meta.count,
            bytes: meta.bytes,
        }
    }
}
