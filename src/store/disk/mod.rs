//! Persistent topics on disk: [`DiskStore`] (the disk [`Store`]) and
//! [`DiskLog`] (the disk [`TopicLog`]), over one embedded database.
//!
//! The engine-specific half is small ([`engine::Engine`], implemented by
//! [`redb`] and [`sled`]); everything about *when* things are written lives
//! once, on this side:
//!
//! - **One writer thread per store** (`writer`): group commit, so 64
//!   concurrent publishers share one fsync instead of paying for 64.
//! - **Durability modes** ([`Durability`]). `sync` (default): a publish is
//!   answered only after its event is fsynced, so a 201 survives `kill -9`
//!   and power loss. `relaxed`: the publish is answered once the event is
//!   written to the engine (readable, ordered) and the writer fsyncs every
//!   `kv.flushInterval`; a crash may lose the last interval's acknowledged
//!   events, never reorder or duplicate them.
//! - **Retention** (max events / bytes / age) is applied by the writer in the
//!   same transaction as the appends that exceed it, and for age once a
//!   second on a timer, so disk use stays bounded without a separate
//!   compaction pass and without publishers ever waiting for it.
//! - **`find` never touches the disk.** Each log keeps an id index beside its
//!   counts (`view`), updated by the writer in the same step (rebuilt from
//!   the one read of each log at start-up), so resolving a `Last-Event-ID` is
//!   a hash lookup even when thousands of clients reconnect at once.
//! - **Sequences survive.** The last assigned sequence of each topic is stored
//!   with its events, so a topic whose events were all trimmed still
//!   continues where it was: an id a client kept can never alias a new event.
//!
//! Start-up refuses, with a message naming the path, a store it cannot
//! read, one another process holds (lock file `sser.lock`), one written by
//! the other engine, and one that has lost topics its manifest lists.

pub mod engine;
mod log;
mod manifest;
pub mod redb;
mod settings;
pub mod sled;
mod view;
mod writer;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

pub use self::log::DiskLog;
pub use self::settings::{DiskSettings, Durability, EngineKind};

use self::engine::Engine;
use self::manifest::Manifest;
use self::writer::{Msg, Writer, WriterTx};
use crate::store::{Store, StoreError, TopicLog, TopicRecord, codec};

pub struct DiskStore {
    engine: Arc<dyn Engine>,
    /// Ids of the persistent topics, mirrored in the manifest file.
    manifest: Manifest,
    tx: WriterTx,
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
        let lock = lock_dir(dir)?;
        let engine = open_engine(&settings)?;
        let manifest = Manifest::open(dir, engine.as_ref())?;
        let tx = Writer::spawn(engine.clone(), settings.durability)?;
        Ok(Arc::new(DiskStore {
            engine,
            manifest,
            tx,
            settings,
            _lock: lock,
        }))
    }

    pub fn settings(&self) -> &DiskSettings {
        &self.settings
    }
}

/// Takes `sser.lock` in `dir`, so two processes never share one store.
fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let lock_path = dir.join("sser.lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StoreError::Io(format!("cannot open {}: {e}", lock_path.display())))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Io(format!(
            "the store at {} is in use by another process (lock {} is held); \
             stop the other sser or give this one its own kv.dsn",
            dir.display(),
            lock_path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Io(format!(
            "cannot lock {}: {e}",
            lock_path.display()
        ))),
    }
}

/// Opens the engine `settings.engine` names in `settings.dir`.
fn open_engine(settings: &DiskSettings) -> Result<Arc<dyn Engine>, StoreError> {
    let dir = &settings.dir;
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
    Ok(match settings.engine {
        EngineKind::Redb => Arc::new(self::redb::RedbEngine::open(&path)?),
        EngineKind::Sled => Arc::new(self::sled::SledEngine::open(&path)?),
    })
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
        self.tx.call(|done| Msg::SaveRecord { id, value, done })?;
        // The manifest lists a topic only once the engine holds it.
        self.manifest.add(&record.id)
    }

    fn delete_topic(&self, id: &str) -> Result<(), StoreError> {
        // ... and stops listing it before the engine drops it.
        self.manifest.remove(id)?;
        let id = id.to_string();
        self.tx.call(|done| Msg::Delete { id, done })
    }

    fn open_log(&self, record: &TopicRecord) -> Result<Arc<dyn TopicLog>, StoreError> {
        let log = DiskLog::open(self.engine.clone(), self.tx.clone(), record)?;
        Ok(Arc::new(log))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.tx.call(|done| Msg::Flush { done })
    }
}
