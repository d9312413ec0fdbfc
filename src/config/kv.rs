//! `kv.*`: persistent topics: whether they are on, where the store lives,
//! which engine and durability it uses, and the default retention.
//!
//! These are configuration's own types; `lib.rs` turns them into the
//! store's `DiskSettings` and the hub's default `Retention`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::load::ConfigError;
use super::values::{Bytes, Count, Flag, Span};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KvConfig {
    /// Enables persistent topics (`SSER_PERSISTENT_STORE_ENABLED`).
    pub enabled: Flag,
    /// The directory of the persistent store (`SSER_KV_DSN`). It holds topic
    /// tokens: keep it as private as the configuration.
    pub dsn: PathBuf,
    /// `redb` (default) or `sled` (`SSER_KV_ENGINE`). The store remembers
    /// which engine wrote it; start-up refuses a mismatch.
    pub engine: KvEngine,
    /// `sync` (default): a 201 on publish means the event is fsynced
    /// (concurrent publishes share one fsync). `relaxed`: a 201 means written,
    /// fsynced within `flushInterval` (`SSER_KV_DURABILITY`).
    pub durability: DurabilityMode,
    /// How often relaxed mode fsyncs (`SSER_KV_FLUSH_INTERVAL`).
    pub flush_interval: Span,
    /// Default history limits of persistent topics; a topic created with its
    /// own `retention` uses that instead.
    pub retention: KvRetention,
}

/// See [`KvConfig::engine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvEngine {
    Redb,
    Sled,
}

/// See [`KvConfig::durability`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityMode {
    Sync,
    Relaxed,
}

/// Retention defaults for persistent topics; `0` means no limit of that kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KvRetention {
    /// Newest events kept per topic (`SSER_KV_RETENTION_MAX_EVENTS`).
    pub max_events: Count,
    /// Events older than this are dropped (`SSER_KV_RETENTION_MAX_AGE`).
    pub max_age: Span,
    /// Frame bytes kept per topic (`SSER_KV_RETENTION_MAX_BYTES`).
    pub max_bytes: Bytes,
}

impl Default for KvRetention {
    fn default() -> Self {
        KvRetention {
            max_events: Count(10_000),
            max_age: Span(std::time::Duration::ZERO),
            max_bytes: Bytes(0),
        }
    }
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            enabled: Flag(false),
            dsn: PathBuf::from("./_storage"),
            engine: KvEngine::Redb,
            durability: DurabilityMode::Sync,
            flush_interval: Span(std::time::Duration::from_millis(100)),
            retention: KvRetention::default(),
        }
    }
}

impl KvConfig {
    /// Checks what types alone cannot.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.durability == DurabilityMode::Relaxed && self.flush_interval.0.is_zero() {
            return Err(ConfigError(
                "kv.flushInterval (SSER_KV_FLUSH_INTERVAL) must be above zero in relaxed durability mode".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::KvEngine;
    use crate::config::{Config, env};

    #[test]
    fn kv_keys_from_env() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::from_sources(
            dir.path(),
            &env(&[
                ("SSER_PERSISTENT_STORE_ENABLED", "true"),
                ("SSER_KV_ENGINE", "sled"),
                ("SSER_KV_DURABILITY", "relaxed"),
                ("SSER_KV_FLUSH_INTERVAL", "50ms"),
                ("SSER_KV_RETENTION_MAX_EVENTS", "0"),
                ("SSER_KV_RETENTION_MAX_AGE", "1h"),
                ("SSER_KV_RETENTION_MAX_BYTES", "1MiB"),
            ]),
        )
        .unwrap();
        assert!(c.kv.enabled.0);
        assert_eq!(c.kv.engine, KvEngine::Sled);
        // `lib.rs` reads 0 as "no limit" (its `persistent_retention` test).
        assert_eq!(c.kv.retention.max_events.0, 0);
        assert_eq!(
            c.kv.retention.max_age.0,
            std::time::Duration::from_secs(3600)
        );
        assert_eq!(c.kv.retention.max_bytes.0, 1 << 20);
        let err = Config::from_sources(dir.path(), &env(&[("SSER_KV_ENGINE", "rocksdb")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("kv.engine (SSER_KV_ENGINE)"), "{err}");
    }
}
