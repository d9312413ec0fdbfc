//! The single-node broker: in-process fan-out over each stream's history
//! log (memory, or the redb/sled store for persistent topics).
//!
//! Publishing takes the stream's lock only to assign the next sequence,
//! encode the frame once, hand it to the history log and queue it for every
//! follower; nothing under the lock waits for a reader or the disk. Because
//! sequence assignment, log append and fan-out happen in one critical section
//! (or, for durable logs, are released in sequence order after the commit),
//! every connection sees a stream's events in publish order.
//!
//! Every store call that may block runs through [`offload`] (here, and in
//! `inbox` for identity inboxes), so no async task waits on the disk.

use std::collections::{HashMap, VecDeque};
use std::hash::RandomState;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};

use super::{
    Broker, BrokerError, Delivery, Follow, Followers, HistoryBatch, NewEvent, Origin, Outbox,
    Published,
};
use crate::model::{Position, Retention, StreamKey, now_ms};
use crate::store::disk::{DiskSettings, DiskStore};
use crate::store::memory::MemoryLog;
use crate::store::{Commit, Store, StoreError, StoredEvent, TopicLog, TopicRecord};

/// How many locks serialise inbox opening (by hash of the key): opening
/// different inboxes mostly proceeds in parallel.
const OPENING_STRIPES: usize = 16;

pub struct LocalBroker {
    pub(super) streams: RwLock<HashMap<StreamKey, Arc<LocalStream>>>,
    pub(super) store: Option<Arc<dyn Store>>,
    /// Serialises the opening of inboxes that hash alike (see `inbox`).
    pub(super) opening: Box<[tokio::sync::Mutex<()>]>,
    pub(super) hasher: RandomState,
}

pub(super) struct LocalStream {
    /// History reads may touch the disk.
    pub(super) on_disk: bool,
    pub(super) log: Arc<dyn TopicLog>,
    pub(super) state: Mutex<StreamState>,
    pub(super) followers: Arc<Followers>,
    /// An inbox found idle by the last sweep of the reaper (see `inbox`).
    pub(super) idle: AtomicBool,
}

pub(super) struct StreamState {
    pub(super) next_seq: u64,
    pub(super) closed: bool,
    /// Events appended to a durable log whose commit is still in flight,
    /// in sequence order; released to followers once committed.
    pub(super) pending: VecDeque<Arc<Delivery>>,
}

impl LocalBroker {
    /// Memory history only: persistent topics are refused.
    pub fn in_memory() -> Arc<LocalBroker> {
        Arc::new(LocalBroker::with_store(None))
    }

    fn with_store(store: Option<Arc<dyn Store>>) -> LocalBroker {
        LocalBroker {
            streams: RwLock::new(HashMap::new()),
            store,
            opening: (0..OPENING_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            hasher: RandomState::new(),
        }
    }

    /// With the persistent store `disk` asks for, opened off the runtime
    /// (opening may read the whole registry).
    pub async fn open(disk: Option<DiskSettings>) -> Result<Arc<LocalBroker>, StoreError> {
        let store: Option<Arc<dyn Store>> = match disk {
            None => None,
            Some(settings) => {
                let disk = offload(true, move || DiskStore::open(settings)).await?;
                tracing::info!(
                    engine = disk.settings().engine.name(),
                    durability = ?disk.settings().durability,
                    "persistent store open"
                );
                Some(disk)
            }
        };
        Ok(Arc::new(LocalBroker::with_store(store)))
    }

    fn stream(&self, key: &StreamKey) -> Result<Arc<LocalStream>, BrokerError> {
        self.streams
            .read()
            .get(key)
            .cloned()
            .ok_or(BrokerError::NotFound)
    }
}

impl LocalStream {
    pub(super) fn new(on_disk: bool, log: Arc<dyn TopicLog>, next_seq: u64) -> Arc<LocalStream> {
        Arc::new(LocalStream {
            on_disk,
            log,
            state: Mutex::new(StreamState {
                next_seq,
                closed: false,
                pending: VecDeque::new(),
            }),
            followers: Followers::new(),
            idle: AtomicBool::new(false),
        })
    }

    async fn publish(&self, event: NewEvent) -> Result<Published, BrokerError> {
        let (published, commit) = {
            let mut state = self.state.lock();
            if state.closed {
                return Err(BrokerError::NotFound);
            }
            let seq = state.next_seq;
            state.next_seq += 1;
            let (id, frame) = event.encode(&seq.to_string());
            let commit = self.log.append(StoredEvent {
                seq,
                id: id.clone(),
                frame: frame.clone(),
                published_at_ms: now_ms(),
            });
            let position = Position::from_seq(seq);
            let delivery = Arc::new(Delivery { position, frame });
            let commit = match commit {
                Commit::Done => {
                    self.followers.fan_out(&delivery);
                    None
                }
                Commit::Pending(commit) => {
                    state.pending.push_back(delivery);
                    Some(commit)
                }
            };
            (Published { id, position }, commit)
        };

        if let Some(commit) = commit {
            let result = commit.await;
            let mut state = self.state.lock();
            match result {
                // Commits complete in append order, so everything up to this
                // sequence is durable and can go out, in order.
                Ok(()) => {
                    while state
                        .pending
                        .front()
                        .is_some_and(|d| d.position <= published.position)
                    {
                        if let Some(delivery) = state.pending.pop_front() {
                            self.followers.fan_out(&delivery);
                        }
                    }
                }
                Err(e) => {
                    state.pending.retain(|d| d.position != published.position);
                    return Err(e.into());
                }
            }
        }
        Ok(published)
    }

    /// The newest sequence handed to followers.
    fn released(&self) -> u64 {
        let state = self.state.lock();
        let first_unsent = state
            .pending
            .front()
            .map_or(state.next_seq, |d| d.position.seq());
        first_unsent.saturating_sub(1)
    }
}

#[async_trait]
impl Broker for LocalBroker {
    fn persistent(&self) -> bool {
        self.store.is_some()
    }

    async fn stored_topics(&self) -> Result<Vec<TopicRecord>, BrokerError> {
        match self.store.clone() {
            None => Ok(Vec::new()),
            Some(store) => Ok(offload(true, move || store.load_topics()).await?),
        }
    }

    async fn open(
        &self,
        stream: &StreamKey,
        record: &TopicRecord,
        origin: Origin,
    ) -> Result<(), BrokerError> {
        let log: Arc<dyn TopicLog> = if record.persist {
            let store = self
                .store
                .clone()
                .ok_or(BrokerError::PersistenceUnavailable)?;
            let record = record.clone();
            offload(true, move || {
                if origin == Origin::New {
                    store.save_topic(&record)?;
                }
                store.open_log(&record)
            })
            .await?
        } else {
            MemoryLog::new(record.retention)
        };
        let mut next_seq = log.last_seq().saturating_add(1);
        if origin == Origin::Configured {
            // Seeded from the clock: an id a client kept from a previous run
            // can never alias a new event (it is reported as truncated).
            next_seq = next_seq.max(now_ms().saturating_mul(1000));
        }
        let local = LocalStream::new(record.persist, log, next_seq);
        self.streams.write().insert(stream.clone(), local);
        Ok(())
    }

    async fn open_inbox(
        &self,
        stream: &StreamKey,
        retention: Retention,
    ) -> Result<(), BrokerError> {
        self.open_inbox_stream(stream, retention).await
    }

    fn close_idle_inboxes(&self) -> usize {
        self.sweep_idle_inboxes()
    }

    fn open_inboxes(&self) -> usize {
        self.streams.read().keys().filter(|k| k.is_inbox()).count()
    }

    async fn delete(&self, stream: &StreamKey) -> Result<(), BrokerError> {
        let local = self
            .streams
            .write()
            .remove(stream)
            .ok_or(BrokerError::NotFound)?;
        {
            let mut state = local.state.lock();
            state.closed = true;
            state.pending.clear();
        }
        local.followers.close();
        let log = local.log.clone();
        let store = self.store.clone().filter(|_| local.on_disk);
        let topic = stream.topic().map(|t| t.to_string());
        offload(local.on_disk, move || {
            if let (Some(store), Some(topic)) = (store, topic) {
                store.delete_topic(&topic)?;
            }
            log.destroy()
        })
        .await?;
        Ok(())
    }

    async fn publish(&self, stream: &StreamKey, event: NewEvent) -> Result<Published, BrokerError> {
        self.stream(stream)?.publish(event).await
    }

    async fn follow(
        &self,
        stream: &StreamKey,
        outbox: &Arc<Outbox>,
        slot: u32,
    ) -> Result<Follow, BrokerError> {
        let local = self.stream(stream)?;
        // Under the publish lock, so nothing released in between is missed.
        let state = local.state.lock();
        if state.closed {
            return Err(BrokerError::NotFound);
        }
        let ticket = local
            .followers
            .add(outbox.clone(), slot)
            .ok_or(BrokerError::NotFound)?;
        local
            .idle
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let first_unsent = state
            .pending
            .front()
            .map_or(state.next_seq, |d| d.position.seq());
        Ok(Follow {
            ticket,
            head: Position::from_seq(first_unsent.saturating_sub(1)),
        })
    }

    async fn read_after(
        &self,
        stream: &StreamKey,
        after: Position,
        limit: usize,
    ) -> Result<HistoryBatch, BrokerError> {
        let local = self.stream(stream)?;
        let log = local.log.clone();
        let after = after.seq();
        let events = offload(local.on_disk, move || log.read_after(after, limit)).await?;
        // Sequences are dense within a stream: a first event past
        // `after + 1`, or none at all although later ones were released,
        // means retention dropped what came right after `after`.
        let missing = match events.first() {
            Some(first) => first.seq > after.saturating_add(1),
            None => local.released() > after,
        };
        Ok(HistoryBatch {
            events: events
                .into_iter()
                .map(|e| Delivery {
                    position: Position::from_seq(e.seq),
                    frame: e.frame,
                })
                .collect(),
            missing,
        })
    }

    async fn holds_after(&self, stream: &StreamKey, after: Position) -> Result<bool, BrokerError> {
        let local = self.stream(stream)?;
        let after = after.seq();
        Ok(match local.log.bounds() {
            Some((first, _)) => first <= after.saturating_add(1),
            None => local.released() <= after,
        })
    }

    async fn find(
        &self,
        stream: &StreamKey,
        event_id: &str,
    ) -> Result<Option<Position>, BrokerError> {
        let local = self.stream(stream)?;
        let log = local.log.clone();
        let id = event_id.to_string();
        let seq = offload(local.on_disk, move || log.find(&id)).await?;
        Ok(seq.map(Position::from_seq))
    }

    async fn oldest(&self, stream: &StreamKey) -> Option<Position> {
        let local = self.stream(stream).ok()?;
        local
            .log
            .bounds()
            .map(|(first, _)| Position::from_seq(first))
    }

    fn usage(&self, stream: &StreamKey) -> (u64, u64) {
        self.stream(stream)
            .map_or((0, 0), |local| local.log.usage())
    }

    fn followers(&self, stream: &StreamKey) -> Vec<Arc<Outbox>> {
        self.stream(stream)
            .map_or_else(|_| Vec::new(), |local| local.followers.outboxes())
    }

    fn follower_count(&self, stream: &StreamKey) -> usize {
        self.stream(stream).map_or(0, |local| local.followers.len())
    }

    async fn flush(&self) -> Result<(), BrokerError> {
        if let Some(store) = self.store.clone() {
            offload(true, move || store.flush()).await?;
        }
        Ok(())
    }
}

/// Runs store work: inline when it only touches memory (a few clones under
/// a short lock), on the blocking pool when it may touch the disk.
pub(super) async fn offload<T: Send + 'static>(
    on_disk: bool,
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    if on_disk {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| StoreError::Io(format!("storage task failed: {e}")))?
    } else {
        work()
    }
}
