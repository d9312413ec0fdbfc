//! Counters and gauges of the hub, read by `/api/v1/metrics` (SSER's seven
//! names, in a fixed order), and by anything else that reports on the server.
//!
//! Everything is a relaxed atomic: the hot path pays one uncontended add per
//! delivered event, and readers accept a value a moment old.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    topics_created: AtomicU64,
    topics_deleted: AtomicU64,
    subscribers_total: AtomicU64,
    subscribers_active: AtomicI64,
    subscribers_lagged: AtomicU64,
    events_received: AtomicU64,
    events_sent: AtomicU64,
    bytes_sent: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            topics_created: AtomicU64::new(0),
            topics_deleted: AtomicU64::new(0),
            subscribers_total: AtomicU64::new(0),
            subscribers_active: AtomicI64::new(0),
            subscribers_lagged: AtomicU64::new(0),
            events_received: AtomicU64::new(0),
            events_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
        }
    }
}

/// One named value, as SSER's `/api/v1/metrics` lists them.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub name: &'static str,
    pub value: u64,
}

/// What only the hub's registry knows, passed in when metrics are read.
#[derive(Debug, Clone, Copy, Default)]
pub struct TopicCounts {
    pub topics: u64,
    pub static_topics: u64,
    pub active_topics: u64,
}

impl Metrics {
    pub(crate) fn topic_created(&self) {
        self.topics_created.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn topic_deleted(&self) {
        self.topics_deleted.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn subscriber_opened(&self) {
        self.subscribers_total.fetch_add(1, Ordering::Relaxed);
        self.subscribers_active.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn subscriber_closed(&self) {
        self.subscribers_active.fetch_sub(1, Ordering::Relaxed);
    }
    pub(crate) fn subscriber_lagged(&self) {
        self.subscribers_lagged.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn event_received(&self) {
        self.events_received.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn event_sent(&self, bytes: usize) {
        self.events_sent.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    pub fn active_subscribers(&self) -> u64 {
        self.subscribers_active.load(Ordering::Relaxed).max(0) as u64
    }

    /// SSER's seven metrics first, in SSER's documented order, then ours.
    pub fn samples(&self, counts: TopicCounts) -> Vec<Sample> {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            Sample {
                name: "topics",
                value: counts.topics,
            },
            Sample {
                name: "static_topics",
                value: counts.static_topics,
            },
            Sample {
                name: "active_topics",
                value: counts.active_topics,
            },
            Sample {
                name: "subscribers",
                value: load(&self.subscribers_total),
            },
            Sample {
                name: "active_subscribers",
                value: self.active_subscribers(),
            },
            Sample {
                name: "message_received",
                value: load(&self.events_received),
            },
            Sample {
                name: "message_sent",
                value: load(&self.events_sent),
            },
            Sample {
                name: "bytes_sent",
                value: load(&self.bytes_sent),
            },
            Sample {
                name: "lagged_subscribers",
                value: load(&self.subscribers_lagged),
            },
            Sample {
                name: "topics_created",
                value: load(&self.topics_created),
            },
            Sample {
                name: "topics_deleted",
                value: load(&self.topics_deleted),
            },
            Sample {
                name: "uptime_seconds",
                value: self.uptime_secs(),
            },
        ]
    }
}
