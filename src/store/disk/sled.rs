//! The sled engine (0.34.7): a directory (`<kv.dsn>/sled`), a tree per topic
//! log. Selectable with `kv.engine: sled`; see BENCHMARKS.md for how it
//! compares with redb (the default).
//!
//! Layout mirrors the redb engine: tree `topics` (id → JSON record), tree
//! `last_seq` (id → newest assigned sequence, big-endian) and one tree
//! `events/<id>` (big-endian seq → event value) per topic. sled's `flush`
//! fsyncs its whole log, so one flush after a batch makes every tree's
//! writes durable: group commit works the same way as with redb.
//!
//! sled's own `flush` is not enough for "acknowledged means stored": on
//! Linux it ends with `sync_file_range`, which survives a killed process but
//! neither flushes the drive's cache nor the file's metadata, so a power cut
//! can lose what it "flushed". [`SledEngine::durable`] adds an `fdatasync` of
//! sled's data file, which is what makes a 201 durable on this engine.
//!
//! sled 0.34 can panic on some damaged files rather than return an error,
//! so opening it is wrapped in `catch_unwind`: a damaged store stops
//! start-up with an error naming the path, never a crash.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use super::engine::{Engine, LogStats, TopicWrite, Visit};
use crate::store::{StoreError, codec};

pub struct SledEngine {
    db: sled::Db,
    topics: sled::Tree,
    last_seq: sled::Tree,
    /// Open event trees: opening one is a lookup in sled's tree registry.
    trees: RwLock<HashMap<Arc<str>, sled::Tree>>,
    /// sled's data file, opened again only to `fdatasync` it.
    data_file: std::fs::File,
    path: PathBuf,
}

fn events_name(topic: &str) -> String {
    format!("events/{topic}")
}

impl SledEngine {
    pub fn open(path: &Path) -> Result<SledEngine, StoreError> {
        let shown = path.display().to_string();
        let config = sled::Config::new()
            .path(path)
            // The writer flushes explicitly (group commit, or every
            // kv.flushInterval in relaxed mode).
            .flush_every_ms(None);
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || config.open()));
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(sled::Error::Corruption { .. })) => {
                return Err(StoreError::Corrupt(format!(
                    "the sled store {shown} is corrupt; restore it from a backup or move it away"
                )));
            }
            Ok(Err(e)) => {
                return Err(StoreError::Io(format!(
                    "cannot open the sled store {shown}: {e}; if it is damaged, restore it from \
                     a backup or move it away"
                )));
            }
            Err(_) => {
                return Err(StoreError::Corrupt(format!(
                    "the sled store {shown} could not be read (sled failed while recovering it); \
                     restore it from a backup or move it away"
                )));
            }
        };
        let err = |e: sled::Error| StoreError::Io(format!("sled store {shown}: {e}"));
        let topics = db.open_tree("topics").map_err(err)?;
        let last_seq = db.open_tree("last_seq").map_err(err)?;
        let data_path = path.join("db");
        let data_file = std::fs::File::open(&data_path)
            .map_err(|e| StoreError::Io(format!("cannot open {}: {e}", data_path.display())))?;
        Ok(SledEngine {
            data_file,
            db,
            topics,
            last_seq,
            trees: RwLock::new(HashMap::new()),
            path: path.to_path_buf(),
        })
    }

    fn err(&self, e: sled::Error) -> StoreError {
        match e {
            sled::Error::Corruption { .. } => {
                StoreError::Corrupt(format!("sled store {}: {e}", self.path.display()))
            }
            e => StoreError::Io(format!("sled store {}: {e}", self.path.display())),
        }
    }

    /// sled's flush, then a real fsync of its data file.
    fn durable(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(|e| self.err(e))?;
        self.data_file
            .sync_data()
            .map_err(|e| StoreError::Io(format!("sled store {}: fsync: {e}", self.path.display())))
    }

    fn tree(&self, topic: &str) -> Result<sled::Tree, StoreError> {
        if let Some(tree) = self.trees.read().get(topic) {
            return Ok(tree.clone());
        }
        let tree = self
            .db
            .open_tree(events_name(topic))
            .map_err(|e| self.err(e))?;
        self.trees.write().insert(Arc::from(topic), tree.clone());
        Ok(tree)
    }
}

impl Engine for SledEngine {
    fn load_records(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.topics.iter() {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let id = String::from_utf8(k.to_vec())
                .map_err(|_| StoreError::Corrupt("a topic id is not UTF-8".into()))?;
            out.push((id, v.to_vec()));
        }
        Ok(out)
    }

    fn log_stats(&self, topic: &str, visit: &mut Visit<'_>) -> Result<LogStats, StoreError> {
        let mut stats = LogStats::default();
        for item in self.tree(topic)?.iter() {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let seq = codec::seq_from_key(&k)?;
            stats.first.get_or_insert(seq);
            stats.last = Some(seq);
            stats.count += 1;
            stats.bytes += codec::peek(&v)?.frame_len;
            visit(seq, &v)?;
        }
        if let Some(v) = self.last_seq.get(topic).map_err(|e| self.err(e))? {
            stats.last_seq = codec::seq_from_key(&v)?;
        }
        Ok(stats)
    }

    fn read_after(
        &self,
        topic: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in self.tree(topic)?.range(codec::seq_key(start)..).take(limit) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push((codec::seq_from_key(&k)?, v.to_vec()));
        }
        Ok(out)
    }

    fn write(&self, writes: &mut [TopicWrite], durable: bool) -> Result<(), StoreError> {
        for w in writes.iter_mut() {
            let tree = self.tree(&w.topic)?;
            if !w.appends.is_empty() {
                let mut batch = sled::Batch::default();
                for (seq, value) in &w.appends {
                    batch.insert(&codec::seq_key(*seq), value.as_slice());
                }
                // One atomic batch per topic: after a crash a topic holds a
                // prefix of what was written, never a gap.
                tree.apply_batch(batch).map_err(|e| self.err(e))?;
                self.last_seq
                    .insert(w.topic.as_bytes(), &codec::seq_key(w.last_seq))
                    .map_err(|e| self.err(e))?;
            }
            if let Some(trim) = w.trim.as_mut() {
                while let Some((k, v)) = tree.first().map_err(|e| self.err(e))? {
                    let peek = codec::peek(&v)?;
                    if !trim.must_pop(peek.published_at_ms) {
                        break;
                    }
                    tree.remove(&k).map_err(|e| self.err(e))?;
                    trim.popped(peek.frame_len);
                }
                w.first_after_trim = match tree.first().map_err(|e| self.err(e))? {
                    Some((k, _)) => Some(codec::seq_from_key(&k)?),
                    None => {
                        trim.count = 0;
                        trim.bytes = 0;
                        None
                    }
                };
            }
        }
        if durable {
            self.durable()?;
        }
        Ok(())
    }

    fn put_record(&self, id: &str, value: &[u8]) -> Result<(), StoreError> {
        self.topics
            .insert(id.as_bytes(), value)
            .map_err(|e| self.err(e))?;
        self.durable()
    }

    fn delete_topic(&self, id: &str) -> Result<(), StoreError> {
        self.topics.remove(id.as_bytes()).map_err(|e| self.err(e))?;
        self.last_seq
            .remove(id.as_bytes())
            .map_err(|e| self.err(e))?;
        self.trees.write().remove(id);
        self.db
            .drop_tree(events_name(id))
            .map_err(|e| self.err(e))?;
        self.durable()
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.durable()
    }
}
