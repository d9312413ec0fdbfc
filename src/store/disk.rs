//! Persistent topics on disk: the engine-independent half.
//!
//! [`DiskStore`] implements [`Store`] and [`DiskLog`] implements [`TopicLog`]
//! on top of a small [`Engine`] trait (one impl per embedded database:
//! [`super::redb_engine`], [`super::sled_engine`]). Everything about *when*
//! things are written lives here, once:
//!
//! - **One writer thread per store.** `append` (called under the topic's
//!   lock) only sends the event down a channel and returns
//!   [`Commit::Pending`]. The writer takes whatever has queued up (from every
//!   topic), writes it in one engine transaction, makes it durable with one
//!   fsync, then resolves every waiting publisher in append order: this is
//!   group commit, so 64 concurrent publishers share one flush instead of
//!   paying for 64.
//! - **Durability modes.** `sync` (default): a publish is answered only after
//!   its event is fsynced, so a 201 survives `kill -9` and power loss.
//!   `relaxed`: the publish is answered once the event is written to the
//!   engine (readable, ordered) and the writer fsyncs every
//!   `kv.flushInterval`; a crash may lose the last interval's acknowledged
//!   events, never reorder or duplicate them.
//! - **Retention** (max events / bytes / age) is applied by the writer in the
//!   same transaction as the appends that exceed it, and for age once a
//!   second on a timer, so disk use stays bounded without a separate
//!   compaction pass and without publishers ever waiting for it.
//! - **`find` never touches the disk.** Each log keeps an [`IdIndex`] of its
//!   retained publisher-chosen ids beside its counts, under the same lock,
//!   updated by the writer in the same step (rebuilt from the one read of
//!   each log at start-up), so resolving a `Last-Event-ID` is a hash lookup
//!   even when thousands of clients reconnect at once.
//! - **Sequences survive.** The last assigned sequence of each topic is stored
//!   with its events, so a topic whose events were all trimmed still
//!   continues where it was: an id a client kept can never alias a new event.
//!
//! Start-up refuses, with a message naming the path, a store it cannot
//! read, one another process holds (lock file `sser.lock`), and one written by
//! the other engine.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::id_index::IdIndex;
use super::{Commit, Retention, Store, StoreError, StoredEvent, TopicLog, TopicRecord, codec};

/// Which embedded database holds the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Redb,
    Sled,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Redb => "redb",
            EngineKind::Sled => "sled",
        }
    }

    /// Where this engine keeps its data inside the store directory.
    fn data_path(self, dir: &Path) -> PathBuf {
        match self {
            EngineKind::Redb => dir.join("sser.redb"),
            EngineKind::Sled => dir.join("sled"),
        }
    }
}

/// When an acknowledged publish is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Acknowledge after fsync (group commit).
    Sync,
    /// Acknowledge after the write; fsync every `interval`.
    Relaxed { interval: Duration },
}

#[derive(Debug, Clone)]
pub struct DiskSettings {
    /// The store directory (`kv.dsn`).
    pub dir: PathBuf,
    pub engine: EngineKind,
    pub durability: Durability,
}

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

/// In-memory view of one log, kept current by the writer.
#[derive(Debug, Default, Clone, Copy)]
struct Meta {
    first: Option<u64>,
    count: u64,
    bytes: u64,
    /// Newest sequence written (durable in sync mode).
    last_seq: u64,
    destroyed: bool,
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
struct Held {
    meta: Meta,
    ids: IdIndex,
}

struct LogShared {
    topic: Arc<str>,
    retention: Retention,
    held: Mutex<Held>,
}

impl LogShared {
    fn trim_limits(&self, meta: &Meta, now: u64) -> Trim {
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

type Reply = mpsc::Sender<Result<(), StoreError>>;

enum Msg {
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

pub struct DiskStore {
    engine: Arc<dyn Engine>,
    /// Ids of the persistent topics, mirrored in the manifest file.
    manifest: Mutex<std::collections::BTreeSet<String>>,
    tx: mpsc::Sender<Msg>,
    settings: DiskSettings,
    /// Held for the store's lifetime: a second process fails to take it.
    _lock: File,
}

impl DiskStore {
    /// Opens (or creates) the store in `settings.dir`. Every error names the
    /// path and says what to do.
    pub fn open(settings: DiskSettings) -> Result<Arc<DiskStore>, StoreError> {
        let dir = &settings.dir;
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Io(format!(
                "cannot create the store directory {}: {e}",
                dir.display()
            ))
        })?;
        let lock_path = dir.join("sser.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::Io(format!("cannot open {}: {e}", lock_path.display())))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Io(format!(
                    "the store at {} is in use by another process (lock {} is held); \
                     stop the other sser or give this one its own kv.dsn",
                    dir.display(),
                    lock_path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Io(format!(
                    "cannot lock {}: {e}",
                    lock_path.display()
                )));
            }
        }
        // A store written by the other engine must not be shadowed by a
        // fresh, empty one of this engine.
        let other = match settings.engine {
            EngineKind::Redb => EngineKind::Sled,
            EngineKind::Sled => EngineKind::Redb,
        };
        let path = settings.engine.data_path(dir);
        if !path.exists() && other.data_path(dir).exists() {
            return Err(StoreError::Io(format!(
                "{} holds a {} store but kv.engine is {}: set kv.engine (SSER_KV_ENGINE) to {} \
                 or point kv.dsn elsewhere",
                dir.display(),
                other.name(),
                settings.engine.name(),
                other.name()
            )));
        }
        let engine: Arc<dyn Engine> = match settings.engine {
            EngineKind::Redb => Arc::new(super::redb_engine::RedbEngine::open(&path)?),
            EngineKind::Sled => Arc::new(super::sled_engine::SledEngine::open(&path)?),
        };
        let manifest = check_manifest(dir, engine.as_ref())?;
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            engine: engine.clone(),
            durability: settings.durability,
            logs: HashMap::new(),
            dirty: false,
        };
        std::thread::Builder::new()
            .name("sser-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Io(format!("cannot start the store writer: {e}")))?;
        Ok(Arc::new(DiskStore {
            engine,
            manifest: Mutex::new(manifest),
            tx,
            settings,
            _lock: lock,
        }))
    }

    pub fn settings(&self) -> &DiskSettings {
        &self.settings
    }

    fn send(&self, msg: Msg) -> Result<(), StoreError> {
        self.tx
            .send(msg)
            .map_err(|_| StoreError::Io("the store writer has stopped".into()))
    }

    /// Sends a control message and waits (on a blocking thread) for it.
    fn call(&self, make: impl FnOnce(Reply) -> Msg) -> Result<(), StoreError> {
        let (done, wait) = mpsc::channel();
        self.send(make(done))?;
        wait.recv()
            .map_err(|_| StoreError::Io("the store writer has stopped".into()))?
    }
}

impl Store for DiskStore {
    fn load_topics(&self) -> Result<Vec<TopicRecord>, StoreError> {
        self.engine
            .load_records()?
            .into_iter()
            .map(|(id, value)| codec::decode_record(&id, &value))
            .collect()
    }

    fn save_topic(&self, record: &TopicRecord) -> Result<(), StoreError> {
        let value = codec::encode_record(record);
        let id = record.id.clone();
        self.call(|done| Msg::SaveRecord { id, value, done })?;
        // The manifest lists a topic only once the engine holds it.
        let mut ids = self.manifest.lock();
        ids.insert(record.id.clone());
        write_manifest(&self.settings.dir, &ids)
    }

    fn delete_topic(&self, id: &str) -> Result<(), StoreError> {
        {
            // ... and stops listing it before the engine drops it.
            let mut ids = self.manifest.lock();
            if ids.remove(id) {
                write_manifest(&self.settings.dir, &ids)?;
            }
        }
        let id = id.to_string();
        self.call(|done| Msg::Delete { id, done })
    }

    fn open_log(&self, record: &TopicRecord) -> Result<Arc<dyn TopicLog>, StoreError> {
        // The one read of the whole log: counts, and the id index.
        let mut ids = IdIndex::new();
        let stats = self.engine.log_stats(&record.id, &mut |seq, value| {
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
        self.send(Msg::Register(shared.clone()))?;
        Ok(Arc::new(DiskLog {
            engine: self.engine.clone(),
            tx: self.tx.clone(),
            shared,
        }))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.call(|done| Msg::Flush { done })
    }
}

const MANIFEST: &str = "topics.manifest";

/// The manifest is a plain list of persistent topic ids kept beside the
/// engine's files. An engine that "recovers" a damaged file by silently
/// dropping data (sled 0.34 truncates its log at the first bad record, and
/// can come back empty) would otherwise start as a fresh store; a topic the
/// manifest lists but the engine lacks stops start-up instead.
fn check_manifest(
    dir: &Path,
    engine: &dyn Engine,
) -> Result<std::collections::BTreeSet<String>, StoreError> {
    let held: std::collections::BTreeSet<String> = engine
        .load_records()?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let path = dir.join(MANIFEST);
    let listed = match std::fs::read_to_string(&path) {
        Ok(text) => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(StoreError::Io(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let missing: Vec<&String> = listed.iter().filter(|id| !held.contains(*id)).collect();
    if let Some(first) = missing.first() {
        return Err(StoreError::Corrupt(format!(
            "the store in {} has lost {} of the {} persistent topics listed in {} (first: {first}); \
             its data is damaged: restore it from a backup or move it away",
            dir.display(),
            missing.len(),
            listed.len(),
            path.display()
        )));
    }
    write_manifest(dir, &held)?;
    Ok(held)
}

/// Replaces the manifest atomically (temp file, fsync, rename).
fn write_manifest(dir: &Path, ids: &std::collections::BTreeSet<String>) -> Result<(), StoreError> {
    use std::io::Write;
    let path = dir.join(MANIFEST);
    let tmp = dir.join(format!("{MANIFEST}.tmp"));
    let io = |e: std::io::Error| StoreError::Io(format!("cannot write {}: {e}", path.display()));
    let mut file = File::create(&tmp).map_err(io)?;
    for id in ids {
        writeln!(file, "{id}").map_err(io)?;
    }
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

pub struct DiskLog {
    engine: Arc<dyn Engine>,
    tx: mpsc::Sender<Msg>,
    shared: Arc<LogShared>,
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
            if sent.is_err() {
                return Err(StoreError::Io("the store writer has stopped".into()));
            }
            wait.await
                .map_err(|_| StoreError::Io("the store writer has stopped".into()))?
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
        let (done, wait) = mpsc::channel();
        self.tx
            .send(Msg::Delete {
                id: self.shared.topic.to_string(),
                done,
            })
            .map_err(|_| StoreError::Io("the store writer has stopped".into()))?;
        wait.recv()
            .map_err(|_| StoreError::Io("the store writer has stopped".into()))?
    }
}

struct Writer {
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
        let now = super::now_ms();
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
        let now = super::now_ms();
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

/// The same conformance checks for every engine (and, for `find`, the
/// memory log too), through the traits only.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn record(id: &str, retention: Retention) -> TopicRecord {
        TopicRecord {
            id: id.to_string(),
            token: Secret::new("token"),
            persist: true,
            created_at_ms: 1,
            retention,
        }
    }

    fn event(seq: u64, id: &str) -> StoredEvent {
        StoredEvent {
            seq,
            id: Arc::from(id),
            frame: bytes::Bytes::from(format!("id: {id}\ndata: {seq}\n\n")),
            published_at_ms: super::super::now_ms(),
        }
    }

    async fn append(log: &Arc<dyn TopicLog>, e: StoredEvent) {
        match log.append(e) {
            Commit::Done => {}
            Commit::Pending(f) => f.await.unwrap(),
        }
    }

    fn open(dir: &Path, engine: EngineKind) -> Arc<DiskStore> {
        DiskStore::open(DiskSettings {
            dir: dir.to_path_buf(),
            engine,
            durability: Durability::Sync,
        })
        .unwrap()
    }

    async fn conformance(engine: EngineKind) {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), engine);
        let rec = record(
            "t1",
            Retention {
                max_events: Some(5),
                ..Retention::default()
            },
        );
        store.save_topic(&rec).unwrap();
        let log = store.open_log(&rec).unwrap();
        assert_eq!(log.bounds(), None);
        assert_eq!(log.last_seq(), 0);
        for seq in 1..=8 {
            let id = if seq == 6 {
                "custom".to_string()
            } else {
                seq.to_string()
            };
            append(&log, event(seq, &id)).await;
        }
        assert_eq!(log.bounds(), Some((4, 8)));
        assert_eq!(log.usage().0, 5);
        assert_eq!(log.last_seq(), 8);
        let seqs: Vec<u64> = log
            .read_after(5, 10)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, vec![6, 7, 8]);
        assert_eq!(log.read_after(0, 2).unwrap().len(), 2);
        assert_eq!(log.read_after(u64::MAX, 2).unwrap().len(), 0);
        assert_eq!(log.find("custom").unwrap(), Some(6));
        assert_eq!(log.find("7").unwrap(), Some(7));
        assert_eq!(log.find("6").unwrap(), None, "seq 6 has a publisher id");
        assert_eq!(log.find("2").unwrap(), None, "trimmed");
        assert_eq!(&*log.read_after(5, 1).unwrap()[0].id, "custom");
        store.flush().unwrap();

        // Reopen: same records, same history, same sequence.
        drop(log);
        drop(store);
        let store = reopen(dir.path(), engine).await;
        let records = store.load_topics().unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].retention.max_events, Some(5));
        assert!(records[0].token.matches("token"));
        let log = store.open_log(&records[0]).unwrap();
        assert_eq!(log.bounds(), Some((4, 8)));
        assert_eq!(log.last_seq(), 8);

        // Destroy drops everything, including the stored sequence.
        store.delete_topic("t1").unwrap();
        log.destroy().unwrap();
        assert!(log.read_after(0, 10).unwrap().is_empty());
        assert!(store.load_topics().unwrap().is_empty());
        let log = store.open_log(&rec).unwrap();
        assert_eq!((log.bounds(), log.last_seq()), (None, 0));
    }

    /// The previous store's writer thread closes the engine's files just
    /// after the last handle goes; wait for it (with a deadline).
    async fn reopen(dir: &Path, engine: EngineKind) -> Arc<DiskStore> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            match DiskStore::open(DiskSettings {
                dir: dir.to_path_buf(),
                engine,
                durability: Durability::Sync,
            }) {
                Ok(store) => return store,
                Err(e) => {
                    assert!(std::time::Instant::now() < deadline, "reopen: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    #[tokio::test]
    async fn redb_conformance() {
        conformance(EngineKind::Redb).await;
    }

    #[tokio::test]
    async fn sled_conformance() {
        conformance(EngineKind::Sled).await;
    }

    /// Retention for the `find` checks: four events.
    fn four() -> Retention {
        Retention {
            max_events: Some(4),
            ..Retention::default()
        }
    }

    /// `find` names the OLDEST retained event with an id, whatever mix of
    /// server-made and publisher-chosen ids, as retention trims. The same
    /// for every log; ends holding 9 "order-1", 10 "12", 11 "11", 12 "12".
    async fn find_contract(log: &Arc<dyn TopicLog>) {
        // Server ids only.
        for seq in 1..=3 {
            append(log, event(seq, &seq.to_string())).await;
        }
        assert_eq!(log.find("1").unwrap(), Some(1));
        assert_eq!(log.find("3").unwrap(), Some(3));
        assert_eq!(log.find("4").unwrap(), None, "not published yet");
        assert_eq!(log.find("01").unwrap(), None, "not the server's spelling");
        // A publisher's "1", newer than the server's 1: the server's wins.
        append(log, event(4, "1")).await;
        assert_eq!(log.find("1").unwrap(), Some(1));
        assert_eq!(log.find("4").unwrap(), None, "seq 4 has a publisher id");
        // Seq 1 is trimmed: the publisher's "1" is now the oldest.
        append(log, event(5, "order-1")).await;
        assert_eq!(log.bounds(), Some((2, 5)));
        assert_eq!(log.find("1").unwrap(), Some(4));
        // A reused publisher id: the oldest occurrence.
        append(log, event(6, "order-1")).await;
        append(log, event(7, "7")).await;
        assert_eq!(log.find("order-1").unwrap(), Some(5));
        append(log, event(8, "8")).await;
        assert_eq!(log.find("1").unwrap(), None, "both \"1\"s trimmed");
        assert_eq!(log.find("order-1").unwrap(), Some(5));
        // Its oldest occurrence trimmed: the next one.
        append(log, event(9, "order-1")).await;
        assert_eq!(log.find("order-1").unwrap(), Some(6));
        // A publisher's "12" older than the server's 12: the publisher's.
        append(log, event(10, "12")).await;
        append(log, event(11, "11")).await;
        append(log, event(12, "12")).await;
        find_final(log);
    }

    /// What `find` answers once [`find_contract`] has run (and after reopen).
    fn find_final(log: &Arc<dyn TopicLog>) {
        assert_eq!(log.bounds(), Some((9, 12)));
        assert_eq!(log.find("12").unwrap(), Some(10));
        assert_eq!(log.find("11").unwrap(), Some(11));
        assert_eq!(log.find("10").unwrap(), None, "seq 10 has a publisher id");
        assert_eq!(log.find("order-1").unwrap(), Some(9));
        assert_eq!(log.find("8").unwrap(), None, "trimmed");
        assert_eq!(log.find("13").unwrap(), None);
    }

    /// Destroyed: nothing is found.
    fn find_destroyed(log: &Arc<dyn TopicLog>) {
        for id in ["12", "11", "order-1", "9"] {
            assert_eq!(log.find(id).unwrap(), None, "{id} after destroy");
        }
    }

    #[tokio::test]
    async fn memory_find() {
        let log: Arc<dyn TopicLog> = crate::store::memory::MemoryLog::new(four());
        find_contract(&log).await;
        log.destroy().unwrap();
        find_destroyed(&log);
    }

    async fn disk_find(engine: EngineKind) {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), engine);
        let rec = record("f", four());
        store.save_topic(&rec).unwrap();
        let log = store.open_log(&rec).unwrap();
        find_contract(&log).await;
        store.flush().unwrap();
        drop(log);
        drop(store);

        // Reopened, the index is rebuilt from disk and keeps working.
        let store = reopen(dir.path(), engine).await;
        let log = store.open_log(&rec).unwrap();
        find_final(&log);
        append(&log, event(13, "order-1")).await;
        assert_eq!(log.find("order-1").unwrap(), Some(13), "9 trimmed");
        assert_eq!(log.find("12").unwrap(), Some(10));
        append(&log, event(14, "14")).await;
        assert_eq!(log.find("12").unwrap(), Some(12), "10 trimmed");
        assert_eq!(log.find("14").unwrap(), Some(14));

        store.delete_topic("f").unwrap();
        log.destroy().unwrap();
        find_destroyed(&log);
        assert_eq!(log.find("14").unwrap(), None);
    }

    #[tokio::test]
    async fn redb_find() {
        disk_find(EngineKind::Redb).await;
    }

    #[tokio::test]
    async fn sled_find() {
        disk_find(EngineKind::Sled).await;
    }

    fn aging() -> Retention {
        Retention {
            max_age: Some(Duration::from_millis(200)),
            ..Retention::default()
        }
    }

    /// Age-based retention (the writer's timer for disk logs, lazily for the
    /// memory log) drops events from the index too.
    async fn find_after_aging(log: &Arc<dyn TopicLog>) {
        append(log, event(1, "a")).await;
        append(log, event(2, "2")).await;
        assert_eq!(log.find("a").unwrap(), Some(1));
        assert_eq!(log.find("2").unwrap(), Some(2));
        let deadline = Instant::now() + Duration::from_secs(10);
        while log.find("a").unwrap().is_some() || log.find("2").unwrap().is_some() {
            assert!(Instant::now() < deadline, "aged events are never dropped");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(log.usage().0, 0);
        append(log, event(3, "a")).await;
        assert_eq!(log.find("a").unwrap(), Some(3));
    }

    #[tokio::test]
    async fn memory_find_after_aging() {
        let log: Arc<dyn TopicLog> = crate::store::memory::MemoryLog::new(aging());
        find_after_aging(&log).await;
    }

    async fn disk_find_after_aging(engine: EngineKind) {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), engine);
        let rec = record("aged", aging());
        store.save_topic(&rec).unwrap();
        let log = store.open_log(&rec).unwrap();
        find_after_aging(&log).await;
    }

    #[tokio::test]
    async fn redb_find_after_aging() {
        disk_find_after_aging(EngineKind::Redb).await;
    }

    #[tokio::test]
    async fn sled_find_after_aging() {
        disk_find_after_aging(EngineKind::Sled).await;
    }
}
