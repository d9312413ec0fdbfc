//! One persistent topic's history: [`DiskLog`], the disk [`TopicLog`].
//!
//! Appends go to the writer thread and come back as a [`Commit::Pending`]
//! that resolves once the event is stored as durably as the store's mode
//! promises; range reads go to the engine; `find`, `bounds` and `usage` are
//! answered from the in-memory `view` without touching the
//! disk, so resolving a `Last-Event-ID` is a hash lookup even when thousands
//! of clients reconnect at once.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::engine::Engine;
use super::view::{Held, LogShared, Meta};
use super::writer::{Msg, WriterTx, stopped};
use crate::store::id_index::IdIndex;
use crate::store::{Commit, StoreError, StoredEvent, TopicLog, TopicRecord, codec};

pub struct DiskLog {
    engine: Arc<dyn Engine>,
    tx: WriterTx,
    shared: Arc<LogShared>,
}

impl DiskLog {
    /// Opens a topic's log: the one read of the whole log (its counts, and
    /// its id index), then registers it with the writer.
    pub(super) fn open(
        engine: Arc<dyn Engine>,
        tx: WriterTx,
        record: &TopicRecord,
    ) -> Result<DiskLog, StoreError> {
        let mut ids = IdIndex::new();
        let stats = engine.log_stats(&record.id, &mut |seq, value| {
            ids.push_str(seq, codec::decode_id(value)?);
            Ok(())
        })?;
        let shared = Arc::new(LogShared {
            topic: Arc::from(record.id.as_str()),
            retention: record.retention,
            held: Mutex::new(Held {
                meta: Meta {
                    first: stats.first,
                    count: stats.count,
                    bytes: stats.bytes,
                    last_seq: stats.last_seq.max(stats.last.unwrap_or(0)),
                    destroyed: false,
                },
                ids,
            }),
        });
        tx.send(Msg::Register(shared.clone()))?;
        Ok(DiskLog { engine, tx, shared })
    }
}

impl TopicLog for DiskLog {
    fn append(&self, event: StoredEvent) -> Commit {
        let (done, wait) = oneshot::channel();
        let sent = self.tx.send(Msg::Append {
            log: self.shared.clone(),
            event,
            done,
        });
        Commit::Pending(Box::pin(async move {
            sent?;
            wait.await.map_err(|_| stopped())?
        }))
    }

    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        if self.shared.held.lock().meta.destroyed {
            return Ok(Vec::new());
        }
        self.engine
            .read_after(&self.shared.topic, after, limit)?
            .into_iter()
            .map(|(seq, value)| codec::decode_event(seq, &value))
            .collect()
    }

    fn find(&self, id: &str) -> Result<Option<u64>, StoreError> {
        // In memory, under the lock the writer updates it with: the oldest
        // retained occurrence, without reading the disk.
        let held = self.shared.held.lock();
        if held.meta.destroyed {
            return Ok(None);
        }
        Ok(held.ids.find(id))
    }

    fn bounds(&self) -> Option<(u64, u64)> {
        let meta = self.shared.held.lock().meta;
        if meta.count == 0 {
            return None;
        }
        Some((meta.first?, meta.last_seq))
    }

    fn last_seq(&self) -> u64 {
        self.shared.held.lock().meta.last_seq
    }

    fn usage(&self) -> (u64, u64) {
        let meta = self.shared.held.lock().meta;
        (meta.count, meta.bytes)
    }

    fn destroy(&self) -> Result<(), StoreError> {
        {
            let mut held = self.shared.held.lock();
            held.meta.destroyed = true;
            held.meta.count = 0;
            held.meta.bytes = 0;
            held.meta.first = None;
            held.ids.clear();
        }
        // The registry entry and the data go in one durable step; deleting
        // twice (store.delete_topic, then destroy) is harmless.
        let id = self.shared.topic.to_string();
        self.tx.call(|done| Msg::Delete { id, done })
    }
}
