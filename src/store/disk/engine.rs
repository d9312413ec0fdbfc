//! The engine seam: the few primitive reads and writes each embedded
//! database provides ([`super::redb`], [`super::sled`]), and the batch types
//! the writer hands them.
//!
//! Everything about *when* things are written (group commit, durability,
//! retention timing) stays on the engine-independent side, in
//! `writer`, so each engine is only a mapping of these calls onto
//! its own transactions and an fsync.

use std::sync::Arc;

use crate::store::StoreError;

/// Retention as the writer applies it: `u64::MAX` / `0` mean no limit.
#[derive(Debug, Clone, Copy)]
pub struct Trim {
    pub max_events: u64,
    pub max_bytes: u64,
    /// Events published before this instant (ms since epoch) go.
    pub cutoff_ms: u64,
    /// Events and frame bytes held once this batch's appends are in.
    pub count: u64,
    pub bytes: u64,
}

impl Trim {
    /// Whether the oldest event (published at `ts`) must go now.
    pub fn must_pop(&self, ts: u64) -> bool {
        self.count > self.max_events || self.bytes > self.max_bytes || ts < self.cutoff_ms
    }

    /// Accounts for one popped event.
    pub fn popped(&mut self, frame_len: u64) {
        self.count = self.count.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(frame_len);
    }
}

/// Everything one batch does to one topic, in one engine transaction.
pub struct TopicWrite {
    pub topic: Arc<str>,
    /// `(seq, encoded value)`, in sequence order.
    pub appends: Vec<(u64, Vec<u8>)>,
    /// The topic's newest assigned sequence, stored so it outlives trimming.
    pub last_seq: u64,
    /// Set when retention may require dropping old events; the engine
    /// updates `count`/`bytes` as it pops.
    pub trim: Option<Trim>,
    /// Filled in by the engine when `trim` is set: the oldest sequence left.
    pub first_after_trim: Option<u64>,
}

/// What a log holds, read once when the topic is opened.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogStats {
    pub first: Option<u64>,
    pub last: Option<u64>,
    pub count: u64,
    pub bytes: u64,
    /// The stored newest assigned sequence (may be past `last` after trims).
    pub last_seq: u64,
}

/// Called on each `(seq, value)` of a log, oldest first, by
/// [`Engine::log_stats`].
pub type Visit<'a> = dyn FnMut(u64, &[u8]) -> Result<(), StoreError> + 'a;

/// The engine-specific half: a handful of primitive reads and writes.
/// Writes are only ever called from the writer thread.
pub trait Engine: Send + Sync + 'static {
    /// `(topic id, record bytes)` of every persistent topic.
    fn load_records(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Reads a whole log once (when the topic is opened): its stats, and
    /// every `(seq, value)` to `visit`, oldest first.
    fn log_stats(&self, topic: &str, visit: &mut Visit<'_>) -> Result<LogStats, StoreError>;
    /// Up to `limit` `(seq, value)` with `seq > after`, oldest first.
    fn read_after(
        &self,
        topic: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
    /// Applies a batch in one transaction; `durable` = fsync before return.
    fn write(&self, writes: &mut [TopicWrite], durable: bool) -> Result<(), StoreError>;
    /// Saves a topic record durably.
    fn put_record(&self, id: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Removes a topic's record, events and stored sequence durably.
    fn delete_topic(&self, id: &str) -> Result<(), StoreError>;
    /// Makes every earlier write durable.
    fn sync(&self) -> Result<(), StoreError>;
}
