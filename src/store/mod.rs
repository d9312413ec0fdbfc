//! Where topics and their event history live.
//!
//! Two small traits keep the hub ignorant of storage engines:
//! - [`Store`] holds topic records (the registry that survives restarts) and
//!   opens one [`TopicLog`] per topic;
//! - [`TopicLog`] is a topic's ordered history: append (in sequence order,
//!   from under the topic's lock, never blocking on I/O), range reads for
//!   `Last-Event-ID` replay, lookup of an event id, and trimming.
//!
//! In-memory topics use [`memory::MemoryLog`]; persistent topics use
//! [`disk::DiskStore`] with the engine `kv.engine` selects
//! ([`disk::redb`] by default, or [`disk::sled`]); [`codec`] is their
//! shared on-disk layout. Both answer [`TopicLog::find`] from an in-memory
//! [`id_index::IdIndex`] rather than by scanning history.

pub mod codec;
pub mod disk;
pub mod id_index;
pub mod memory;

use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use crate::model::{Retention, now_ms};
use crate::secret::Secret;

/// One event as history keeps it: its place in the topic, the id clients see
/// (and may send back as `Last-Event-ID`), and its encoded SSE frame.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: u64,
    pub id: Arc<str>,
    pub frame: Bytes,
    /// Milliseconds since the Unix epoch, for age-based retention.
    pub published_at_ms: u64,
}

/// A topic as the registry keeps it.
#[derive(Debug, Clone)]
pub struct TopicRecord {
    pub id: String,
    pub token: Secret,
    pub persist: bool,
    pub created_at_ms: u64,
    pub retention: Retention,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage I/O failed: {0}")]
    Io(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// Completion of an append. A log either always completes at once (memory,
/// relaxed durability) or always through a future that resolves when the
/// event is durable; commits complete in append order.
pub enum Commit {
    Done,
    Pending(Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>),
}

pub trait TopicLog: Send + Sync {
    /// Appends an event. Called in sequence order while the topic is locked,
    /// so it must only enqueue work, never wait for the disk.
    fn append(&self, event: StoredEvent) -> Commit;

    /// Up to `limit` events with `seq > after`, oldest first. May read the
    /// disk: the hub calls it outside every lock.
    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;

    /// The sequence of the OLDEST event with this id still held, if any.
    /// Ids may repeat (publishers choose them, and may pick one that equals
    /// a server-assigned sequence), and the hub cannot know which occurrence
    /// a client saw; resuming after the oldest can repeat events but never
    /// skips one.
    fn find(&self, id: &str) -> Result<Option<u64>, StoreError>;

    /// The oldest and newest sequence still held.
    fn bounds(&self) -> Option<(u64, u64)>;

    /// The newest sequence this log has ever been given, even if retention
    /// has since dropped it: the topic continues after it, so an id a client
    /// kept can never name a different, newer event.
    fn last_seq(&self) -> u64 {
        self.bounds().map_or(0, |(_, last)| last)
    }

    /// Number of events and bytes held, for metrics and the dashboard.
    fn usage(&self) -> (u64, u64);

    /// Drops everything this log holds (the topic is being deleted).
    fn destroy(&self) -> Result<(), StoreError>;
}

/// The registry of persistent topics and the factory for their logs.
pub trait Store: Send + Sync {
    fn load_topics(&self) -> Result<Vec<TopicRecord>, StoreError>;
    fn save_topic(&self, record: &TopicRecord) -> Result<(), StoreError>;
    fn delete_topic(&self, id: &str) -> Result<(), StoreError>;
    /// Opens (or creates) the history of a topic; the sequence after the
    /// newest stored event is where the topic continues.
    fn open_log(&self, record: &TopicRecord) -> Result<Arc<dyn TopicLog>, StoreError>;
    /// Makes everything written so far durable (called at shutdown).
    fn flush(&self) -> Result<(), StoreError>;
}
