//! What this node knows of its cluster, for `/metrics`, `/api/v1/metrics`
//! and the dashboard: the live nodes (from the Redis heartbeat,
//! `broker::redis::nodes`), the heartbeat's Redis round trip and the Redis
//! requests that failed.
//!
//! It lives here, below every layer, so that the broker can write it and
//! the HTTP layer read it without either knowing the other. It stays off
//! (and nothing shows it) on a node that is not a cluster member.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::RwLock;
use serde::Serialize;

use super::LatencyHistogram;

/// One node as its heartbeat describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeSeen {
    pub id: String,
    /// The address it advertises (its listener's address).
    pub addr: String,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_ms: u64,
    /// Subscriber streams it served at its last heartbeat.
    pub connections: u64,
}

/// The Redis operations whose failures are counted, listed in `/metrics`
/// even before one fails (so a dashboard's rate has a series to start
/// from).
pub const REDIS_OPS: &[&str] = &[
    "catch_up",
    "control",
    "directory",
    "epoch",
    "find",
    "follow",
    "heartbeat",
    "leave",
    "presence",
    "publish",
    "read",
    "registry",
    "subscribe",
];

#[derive(Debug, Default)]
pub struct ClusterMetrics {
    on: AtomicBool,
    this_node: RwLock<String>,
    nodes: RwLock<Vec<NodeSeen>>,
    /// One heartbeat: write this node's record, read every live one.
    pub roundtrip: LatencyHistogram,
    errors: AtomicU64,
    /// Failed Redis requests by operation (a handful of names).
    errors_by_op: parking_lot::Mutex<Vec<(&'static str, u64)>>,
    /// Presence ops (a connection's user/device coming or going on this
    /// node) that never reached the ledger.
    presence_dropped: AtomicU64,
    /// Dead nodes whose presence this node cleared (`node_lost`).
    nodes_lost: AtomicU64,
    /// Messages of outside producers (sse-notification-service `PUBLISH
    /// {app}:channel:{user}`): delivered, and dropped as invalid or for
    /// lack of room.
    producer_delivered: AtomicU64,
    producer_rejected: AtomicU64,
    /// Directory writes dropped because the queue was full (Redis away).
    directory_dropped: AtomicU64,
}

impl ClusterMetrics {
    /// Called once when the node joins its cluster.
    pub fn joined(&self, node: &str) {
        *self.this_node.write() = node.to_string();
        self.on.store(true, Ordering::Relaxed);
    }

    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    pub fn this_node(&self) -> String {
        self.this_node.read().clone()
    }

    /// The live nodes as of the latest heartbeat, sorted by id.
    pub fn seen(&self, mut nodes: Vec<NodeSeen>) {
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        *self.nodes.write() = nodes;
    }

    pub fn nodes(&self) -> Vec<NodeSeen> {
        self.nodes.read().clone()
    }

    /// A Redis request of operation `op` (`publish`, `read`, `heartbeat`,
    /// …) failed or did not answer in time.
    pub fn redis_error(&self, op: &'static str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut by_op = self.errors_by_op.lock();
        match by_op.iter_mut().find(|(name, _)| *name == op) {
            Some((_, count)) => *count += 1,
            None => {
                by_op.push((op, 1));
                by_op.sort_unstable();
            }
        }
    }

    /// Failed Redis requests by operation, sorted by name: every one of
    /// [`REDIS_OPS`], and any other that failed.
    pub fn redis_errors_by_op(&self) -> Vec<(&'static str, u64)> {
        let mut all = self.errors_by_op.lock().clone();
        for op in REDIS_OPS {
            if !all.iter().any(|(name, _)| name == op) {
                all.push((op, 0));
            }
        }
        all.sort_unstable();
        all
    }

    pub fn redis_errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn presence_dropped(&self) {
        self.presence_dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn presence_dropped_total(&self) -> u64 {
        self.presence_dropped.load(Ordering::Relaxed)
    }

    pub fn node_lost(&self) {
        self.nodes_lost.fetch_add(1, Ordering::Relaxed);
    }

    pub fn nodes_lost_total(&self) -> u64 {
        self.nodes_lost.load(Ordering::Relaxed)
    }

    pub fn producer_delivered(&self) {
        self.producer_delivered.fetch_add(1, Ordering::Relaxed);
    }

    pub fn producer_rejected(&self) {
        self.producer_rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// (delivered, rejected) producer messages.
    pub fn producer_messages(&self) -> (u64, u64) {
        (
            self.producer_delivered.load(Ordering::Relaxed),
            self.producer_rejected.load(Ordering::Relaxed),
        )
    }

    pub fn directory_dropped(&self) {
        self.directory_dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn directory_drops(&self) -> u64 {
        self.directory_dropped.load(Ordering::Relaxed)
    }
}
