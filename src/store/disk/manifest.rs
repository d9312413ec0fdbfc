//! The manifest: a plain list of persistent topic ids (`topics.manifest`)
//! kept beside the engine's files, as a guard against silent data loss.
//!
//! An engine that "recovers" a damaged file by silently dropping data (sled
//! 0.34 truncates its log at the first bad record, and can come back empty)
//! would otherwise start as a fresh store; a topic the manifest lists but
//! the engine lacks stops start-up instead.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use super::engine::Engine;
use crate::store::StoreError;

const MANIFEST: &str = "topics.manifest";

/// The ids of the persistent topics, mirrored in the manifest file.
pub(super) struct Manifest {
    dir: PathBuf,
    ids: Mutex<BTreeSet<String>>,
}

impl Manifest {
    /// Checks that the engine holds every topic the manifest lists, then
    /// rewrites the manifest to list exactly what the engine holds.
    pub(super) fn open(dir: &Path, engine: &dyn Engine) -> Result<Manifest, StoreError> {
        let held: BTreeSet<String> = engine
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
        Ok(Manifest {
            dir: dir.to_path_buf(),
            ids: Mutex::new(held),
        })
    }

    /// Lists a topic; call it once the engine holds the topic.
    pub(super) fn add(&self, id: &str) -> Result<(), StoreError> {
        let mut ids = self.ids.lock();
        ids.insert(id.to_string());
        write_manifest(&self.dir, &ids)
    }

    /// Stops listing a topic; call it before the engine drops the topic.
    pub(super) fn remove(&self, id: &str) -> Result<(), StoreError> {
        let mut ids = self.ids.lock();
        if ids.remove(id) {
            write_manifest(&self.dir, &ids)?;
        }
        Ok(())
    }
}

/// Replaces the manifest atomically (temp file, fsync, rename).
fn write_manifest(dir: &Path, ids: &BTreeSet<String>) -> Result<(), StoreError> {
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
