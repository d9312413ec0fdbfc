//! The redb engine: one file (`<kv.dsn>/sser.redb`), a table per topic log.
//!
//! Why redb is the default: a stable, documented file format; copy-on-write
//! B-trees with checksummed commits, so a `kill -9` or power loss leaves the
//! last committed transaction intact (no separate recovery log to replay);
//! and pages freed by retention are reused by later writes, so a topic capped
//! at N events keeps a bounded file.
//!
//! Layout: table `topics` (id → JSON record), table `last_seq` (id → newest
//! assigned sequence) and one table `events/<id>` (seq → event value) per
//! persistent topic, dropped whole when the topic is deleted.

use std::path::{Path, PathBuf};

use redb::{
    Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, TableError,
};

use super::engine::{Engine, LogStats, TopicWrite, Visit};
use crate::store::{StoreError, codec};

const TOPICS: TableDefinition<&str, &[u8]> = TableDefinition::new("topics");
const LAST_SEQ: TableDefinition<&str, u64> = TableDefinition::new("last_seq");

fn events_name(topic: &str) -> String {
    format!("events/{topic}")
}

pub struct RedbEngine {
    db: Database,
    path: PathBuf,
}

impl RedbEngine {
    pub fn open(path: &Path) -> Result<RedbEngine, StoreError> {
        let shown = path.display();
        let db = Database::create(path).map_err(|e| match e {
            DatabaseError::DatabaseAlreadyOpen => StoreError::Io(format!(
                "the redb store {shown} is already open in another process"
            )),
            DatabaseError::Storage(redb::StorageError::Corrupted(why)) => StoreError::Corrupt(
                format!("the redb store {shown} is corrupt ({why}); restore it from a backup or move it away"),
            ),
            other => StoreError::Io(format!(
                "cannot open the redb store {shown}: {other}; if the file is damaged, restore it \
                 from a backup or move it away"
            )),
        })?;
        let engine = RedbEngine {
            db,
            path: path.to_path_buf(),
        };
        // Creates the registry tables on first use, and proves the file is
        // writable before the server accepts anything.
        let txn = engine.db.begin_write().map_err(|e| engine.err(e))?;
        {
            txn.open_table(TOPICS).map_err(|e| engine.err(e))?;
            txn.open_table(LAST_SEQ).map_err(|e| engine.err(e))?;
        }
        txn.commit().map_err(|e| engine.err(e))?;
        Ok(engine)
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Io(format!("redb store {}: {e}", self.path.display()))
    }

    /// A read of a topic's events table, or `None` if it has no events yet.
    fn read_events<T>(
        &self,
        topic: &str,
        read: impl FnOnce(&redb::ReadOnlyTable<u64, &[u8]>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let name = events_name(topic);
        match txn.open_table(TableDefinition::<u64, &[u8]>::new(&name)) {
            Ok(table) => read(&table).map(Some),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }
}

impl Engine for RedbEngine {
    fn load_records(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(TOPICS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn log_stats(&self, topic: &str, visit: &mut Visit<'_>) -> Result<LogStats, StoreError> {
        let mut stats = self
            .read_events(topic, |table| {
                let mut stats = LogStats::default();
                for item in table.iter().map_err(|e| self.err(e))? {
                    let (k, v) = item.map_err(|e| self.err(e))?;
                    let seq = k.value();
                    stats.first.get_or_insert(seq);
                    stats.last = Some(seq);
                    stats.count += 1;
                    stats.bytes += codec::peek(v.value())?.frame_len;
                    visit(seq, v.value())?;
                }
                Ok(stats)
            })?
            .unwrap_or_default();
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(LAST_SEQ).map_err(|e| self.err(e))?;
        stats.last_seq = table
            .get(topic)
            .map_err(|e| self.err(e))?
            .map_or(0, |v| v.value());
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
        Ok(self
            .read_events(topic, |table| {
                let mut out = Vec::new();
                for item in table.range(start..).map_err(|e| self.err(e))?.take(limit) {
                    let (k, v) = item.map_err(|e| self.err(e))?;
                    out.push((k.value(), v.value().to_vec()));
                }
                Ok(out)
            })?
            .unwrap_or_default())
    }

    fn write(&self, writes: &mut [TopicWrite], durable: bool) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })
        .map_err(|e| self.err(e))?;
        {
            let mut last_seq = txn.open_table(LAST_SEQ).map_err(|e| self.err(e))?;
            for w in writes.iter_mut() {
                let name = events_name(&w.topic);
                let mut table = txn
                    .open_table(TableDefinition::<u64, &[u8]>::new(&name))
                    .map_err(|e| self.err(e))?;
                for (seq, value) in &w.appends {
                    table
                        .insert(*seq, value.as_slice())
                        .map_err(|e| self.err(e))?;
                }
                if !w.appends.is_empty() {
                    last_seq
                        .insert(&*w.topic, w.last_seq)
                        .map_err(|e| self.err(e))?;
                }
                if let Some(trim) = w.trim.as_mut() {
                    loop {
                        let oldest = match table.first().map_err(|e| self.err(e))? {
                            Some((k, v)) => Some((k.value(), codec::peek(v.value())?)),
                            None => None,
                        };
                        let Some((seq, peek)) = oldest else { break };
                        if !trim.must_pop(peek.published_at_ms) {
                            break;
                        }
                        table.remove(seq).map_err(|e| self.err(e))?;
                        trim.popped(peek.frame_len);
                    }
                    w.first_after_trim = table
                        .first()
                        .map_err(|e| self.err(e))?
                        .map(|(k, _)| k.value());
                    if table.len().map_err(|e| self.err(e))? == 0 {
                        trim.count = 0;
                        trim.bytes = 0;
                    }
                }
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }

    fn put_record(&self, id: &str, value: &[u8]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.open_table(TOPICS)
            .map_err(|e| self.err(e))?
            .insert(id, value)
            .map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))
    }

    fn delete_topic(&self, id: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.open_table(TOPICS)
            .map_err(|e| self.err(e))?
            .remove(id)
            .map_err(|e| self.err(e))?;
        txn.open_table(LAST_SEQ)
            .map_err(|e| self.err(e))?
            .remove(id)
            .map_err(|e| self.err(e))?;
        let name = events_name(id);
        txn.delete_table(TableDefinition::<u64, &[u8]>::new(&name))
            .map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))
    }

    fn sync(&self) -> Result<(), StoreError> {
        // An empty durable commit makes every earlier non-durable one durable.
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))
    }
}
