//! What a persistent store is opened with: where it lives, which engine
//! holds it, and when an acknowledged publish is on disk.
//!
//! The store owns these types; `kv.*` becomes them at start-up, and nothing
//! here reads configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which embedded database holds the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    pub(super) fn data_path(self, dir: &Path) -> PathBuf {
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
