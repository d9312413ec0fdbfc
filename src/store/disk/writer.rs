//! The store's one writer thread: group commit, durability and retention.
//!
//! `append` (called under the topic's lock) only sends the event down a
//! channel. The writer takes whatever has queued up (from every topic),
//! writes it in one engine transaction, makes it durable with one fsync
//! (`sync` mode), then resolves every waiting publisher in append order: 64
//! concurrent publishers share one flush instead of paying for 64. In
//! `relaxed` mode it answers once the write is in and fsyncs every
//! `kv.flushInterval`. Retention is applied in the same transaction as the
//! appends that exceed it, and for age once a second on a timer, so
//! publishers never wait for a compaction pass.
//!
//! Control messages (save a record, delete a topic, flush) travel on the
//! same queue, so what was appended before them is committed first.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::engine::{Engine, TopicWrite};
use super::settings::Durability;
use super::view::{LogShared, Meta};
use crate::store::{StoreError, StoredEvent, codec, now_ms};

/// How a control message is answered.
pub(super) type Reply = mpsc::Sender<Result<(), StoreError>>;

/// What the store and its logs ask of the writer.
pub(super) enum Msg {
    Append {
        log: Arc<LogShared>,
        event: StoredEvent,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    Register(Arc<LogShared>),
    SaveRecord {
        id: String,
        value: Vec<u8>,
        done: Reply,
    },
    Delete {
        id: String,
        done: Reply,
    },
    Flush {
        done: Reply,
    },
}

/// Most events one group commit takes: bounds a batch's latency and memory.
const MAX_BATCH: usize = 4096;
/// How often age-based retention is checked.
const AGE_TRIM_EVERY: Duration = Duration::from_secs(1);

/// The way into the writer thread, shared by the store and every log it
/// opened. The thread ends (after a final fsync) once the last one is
/// dropped.
#[derive(Clone)]
pub(super) struct WriterTx(mpsc::Sender<Msg>);

impl WriterTx {
    pub(super) fn send(&self, msg: Msg) -> Result<(), StoreError> {
        self.0.send(msg).map_err(|_| stopped())
    }

    /// Sends a control message and waits (on a blocking thread) for it.
    pub(super) fn call(&self, make: impl FnOnce(Reply) -> Msg) -> Result<(), StoreError> {
        let (done, wait) = mpsc::channel();
        self.send(make(done))?;
        wait.recv().map_err(|_| stopped())?
    }
}

pub(super) fn stopped() -> StoreError {
    StoreError::Io("the store writer has stopped".into())
}

pub(super) struct Writer {
    engine: Arc<dyn Engine>,
    durability: Durability,
    logs: HashMap<Arc<str>, Arc<LogShared>>,
    /// Written but not yet fsynced (relaxed mode).
    dirty: bool,
}

/// One topic's part of a group commit, beside its [`TopicWrite`].
struct Target {
    log: Arc<LogShared>,
    /// Its meta as it will be once the batch is in.
    meta: Meta,
    /// The `(seq, id)` appended, for its id index.
    ids: Vec<(u64, Arc<str>)>,
}

struct PendingAppend {
    log: Arc<LogShared>,
    event: StoredEvent,
    done: oneshot::Sender<Result<(), StoreError>>,
}

impl Writer {
    /// Starts the writer thread for `engine`.
    pub(super) fn spawn(
        engine: Arc<dyn Engine>,
        durability: Durability,
    ) -> Result<WriterTx, StoreError> {
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            engine,
            durability,
            logs: HashMap::new(),
            dirty: false,
        };
        std::thread::Builder::new()
            .name("sser-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Io(format!("cannot start the store writer: {e}")))?;
        Ok(WriterTx(tx))
    }

    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let flush_every = match self.durability {
            Durability::Sync => AGE_TRIM_EVERY,
            Durability::Relaxed { interval } => interval.max(Duration::from_millis(1)),
        };
        let mut last_age_trim = Instant::now();
        let mut last_flush = Instant::now();
        let mut appends: Vec<PendingAppend> = Vec::new();
        loop {
            let timeout = flush_every.min(AGE_TRIM_EVERY);
            let first = match rx.recv_timeout(timeout) {
                Ok(msg) => Some(msg),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut msgs: Vec<Msg> = first.into_iter().collect();
            while msgs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(msg) => msgs.push(msg),
                    Err(_) => break,
                }
            }
            for msg in msgs {
                match msg {
                    Msg::Append { log, event, done } => {
                        appends.push(PendingAppend { log, event, done })
                    }
                    Msg::Register(log) => {
                        self.logs.insert(log.topic.clone(), log);
                    }
                    // Control messages keep their place in the queue: what was
                    // appended before them is committed first.
                    Msg::SaveRecord { id, value, done } => {
                        self.commit(&mut appends);
                        let _ = done.send(self.engine.put_record(&id, &value));
                    }
                    Msg::Delete { id, done } => {
                        self.commit(&mut appends);
                        if let Some(log) = self.logs.remove(id.as_str()) {
                            let mut held = log.held.lock();
                            held.meta.destroyed = true;
                            held.ids.clear();
                        }
                        let _ = done.send(self.engine.delete_topic(&id));
                    }
                    Msg::Flush { done } => {
                        self.commit(&mut appends);
                        let result = self.engine.sync();
                        self.dirty = result.is_err();
                        let _ = done.send(result);
                    }
                }
            }
            self.commit(&mut appends);
            if last_age_trim.elapsed() >= AGE_TRIM_EVERY {
                last_age_trim = Instant::now();
                self.trim_by_age();
            }
            if self.dirty && last_flush.elapsed() >= flush_every {
                last_flush = Instant::now();
                match self.engine.sync() {
                    Ok(()) => self.dirty = false,
                    Err(e) => tracing::error!(error = %e, "periodic store flush failed"),
                }
            }
        }
        if let Err(e) = self.engine.sync() {
            tracing::error!(error = %e, "final store flush failed");
        }
    }

    /// One group commit: every queued append, all topics, one transaction,
    /// one fsync (sync mode); then every publisher is answered in order.
    fn commit(&mut self, appends: &mut Vec<PendingAppend>) {
        if appends.is_empty() {
            return;
        }
        let batch = std::mem::take(appends);
        let now = now_ms();
        let mut writes: Vec<TopicWrite> = Vec::new();
        // Per topic, parallel to `writes`: its log and what changes once the
        // batch is in.
        let mut targets: Vec<Target> = Vec::new();
        let mut index: HashMap<Arc<str>, usize> = HashMap::new();
        let mut answers: Vec<(oneshot::Sender<Result<(), StoreError>>, bool)> = Vec::new();
        for PendingAppend { log, event, done } in batch {
            let meta_now = log.held.lock().meta;
            if meta_now.destroyed {
                answers.push((done, false));
                continue;
            }
            let i = *index.entry(log.topic.clone()).or_insert_with(|| {
                writes.push(TopicWrite {
                    topic: log.topic.clone(),
                    appends: Vec::new(),
                    last_seq: 0,
                    trim: None,
                    first_after_trim: None,
                });
                targets.push(Target {
                    log: log.clone(),
                    meta: meta_now,
                    ids: Vec::new(),
                });
                writes.len() - 1
            });
            let Target { meta, ids, .. } = &mut targets[i];
            ids.push((event.seq, event.id.clone()));
            meta.count += 1;
            meta.bytes += event.frame.len() as u64;
            meta.first.get_or_insert(event.seq);
            meta.last_seq = meta.last_seq.max(event.seq);
            writes[i].last_seq = meta.last_seq;
            writes[i]
                .appends
                .push((event.seq, codec::encode_event(&event)));
            answers.push((done, true));
        }
        for (w, t) in writes.iter_mut().zip(&targets) {
            let trim = t.log.trim_limits(&t.meta, now);
            if trim.count > trim.max_events || trim.bytes > trim.max_bytes || trim.cutoff_ms > 0 {
                w.trim = Some(trim);
            }
        }
        let durable = self.durability == Durability::Sync;
        let result = if writes.is_empty() {
            Ok(())
        } else {
            self.engine.write(&mut writes, durable)
        };
        match &result {
            Ok(()) => {
                self.dirty |= !durable;
                for (w, Target { log, mut meta, ids }) in writes.iter().zip(targets) {
                    if let Some(trim) = w.trim {
                        meta.count = trim.count;
                        meta.bytes = trim.bytes;
                        meta.first = w.first_after_trim;
                    }
                    // Counts and index change together, under one lock.
                    let mut held = log.held.lock();
                    if !held.meta.destroyed {
                        held.meta = meta;
                        for (seq, id) in &ids {
                            held.ids.push(*seq, id);
                        }
                        if w.trim.is_some() {
                            held.ids.trim_to(w.first_after_trim);
                        }
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "store commit failed"),
        }
        for (done, accepted) in answers {
            let answer = match (&result, accepted) {
                (_, false) => Err(StoreError::Io("the topic was deleted".into())),
                (Ok(()), true) => Ok(()),
                (Err(e), true) => Err(StoreError::Io(e.to_string())),
            };
            let _ = done.send(answer);
        }
    }

    /// Drops events older than their topic's `max_age`, for topics that are
    /// not being published to (busy ones are trimmed with their appends).
    fn trim_by_age(&mut self) {
        let now = now_ms();
        let mut writes: Vec<TopicWrite> = Vec::new();
        let mut logs = Vec::new();
        for log in self.logs.values() {
            if log.retention.max_age.is_none() {
                continue;
            }
            let meta = log.held.lock().meta;
            if meta.count == 0 || meta.destroyed {
                continue;
            }
            writes.push(TopicWrite {
                topic: log.topic.clone(),
                appends: Vec::new(),
                last_seq: meta.last_seq,
                trim: Some(log.trim_limits(&meta, now)),
                first_after_trim: None,
            });
            logs.push(log.clone());
        }
        if writes.is_empty() {
            return;
        }
        // Trims need not be durable at once: an event that reappears after a
        // crash is only trimmed again.
        if let Err(e) = self.engine.write(&mut writes, false) {
            tracing::error!(error = %e, "age-based trimming failed");
            return;
        }
        self.dirty = true;
        for (w, log) in writes.iter().zip(logs) {
            if let Some(trim) = w.trim {
                let mut held = log.held.lock();
                if !held.meta.destroyed {
                    held.meta.count = trim.count;
                    held.meta.bytes = trim.bytes;
                    held.meta.first = w.first_after_trim;
                    held.ids.trim_to(w.first_after_trim);
                }
            }
        }
    }
}
