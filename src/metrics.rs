//! Counters and gauges of the hub, read by `/api/v1/metrics` (SSER's seven
//! names, in a fixed order), and by anything else that reports on the server.
//!
//! Everything is a relaxed atomic: the hot path pays one uncontended add per
//! delivered event, and readers accept a value a moment old. The publish
//! latency histogram ([`LatencyHistogram`]) costs two more adds per publish.
//! The accept loop's counters ([`ConnectionMetrics`]) are read by `/metrics`
//! only, so `/api/v1/metrics` keeps SSER's shape.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
    /// Presence webhooks (`presence::webhook`): one per event and URL.
    webhooks_delivered: AtomicU64,
    webhooks_retried: AtomicU64,
    webhooks_failed: AtomicU64,
    webhooks_dropped: AtomicU64,
    /// Events read back from a cluster's Redis that failed validation.
    cluster_rejected: AtomicU64,
    /// Time from `Hub::publish` being called to the event being in history
    /// and on every subscriber's queue (the 201 follows at once).
    pub publish_latency: LatencyHistogram,
    /// Connections: open, refused at accept, closed by a limit.
    pub connections: ConnectionMetrics,
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
            webhooks_delivered: AtomicU64::new(0),
            webhooks_retried: AtomicU64::new(0),
            webhooks_failed: AtomicU64::new(0),
            webhooks_dropped: AtomicU64::new(0),
            cluster_rejected: AtomicU64::new(0),
            publish_latency: LatencyHistogram::default(),
            connections: ConnectionMetrics::default(),
        }
    }
}

/// One named value, as SSER's `/api/v1/metrics` lists them.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub name: &'static str,
    pub value: u64,
}

/// Presence webhook outcomes since start, each counted once per event and
/// URL: `delivered` (a 2xx), `failed` (given up: a final refusal, attempts
/// or age exhausted, or abandoned at shutdown), `dropped` (the URL's queue
/// was full: never sent). `retried` counts attempts after the first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WebhookCounts {
    pub delivered: u64,
    pub retried: u64,
    pub failed: u64,
    pub dropped: u64,
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

    pub(crate) fn webhook_delivered(&self) {
        self.webhooks_delivered.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn webhook_retried(&self) {
        self.webhooks_retried.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn webhooks_failed(&self, n: u64) {
        self.webhooks_failed.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn webhook_dropped(&self) {
        self.webhooks_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// The webhook counters, for `/metrics` and the dashboard.
    pub fn webhook_counts(&self) -> WebhookCounts {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WebhookCounts {
            delivered: load(&self.webhooks_delivered),
            retried: load(&self.webhooks_retried),
            failed: load(&self.webhooks_failed),
            dropped: load(&self.webhooks_dropped),
        }
    }

    pub(crate) fn event_published(&self, took: Duration) {
        self.publish_latency.observe(took);
    }

    /// When the process (this `Metrics`) started.
    /// An event read back from Redis was dropped: its id or type would
    /// break SSE framing, or it was not sser's encoding.
    pub fn cluster_entry_rejected(&self) {
        self.cluster_rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub fn cluster_rejected_entries(&self) -> u64 {
        self.cluster_rejected.load(Ordering::Relaxed)
    }

    pub fn started(&self) -> Instant {
        self.started
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

/// Why the accept loop turned a connection away before serving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its client address already had `server.maxConnectionsPerIp` open.
    PerIp,
    /// `server.maxConnections` were open and none was idle enough to close.
    Total,
    /// The process was out of file descriptors (EMFILE/ENFILE).
    FdLimit,
}

impl Refusal {
    pub const ALL: [Refusal; 3] = [Refusal::PerIp, Refusal::Total, Refusal::FdLimit];

    /// The Prometheus label value.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::PerIp => "per_ip",
            Refusal::Total => "total",
            Refusal::FdLimit => "fd_limit",
        }
    }
}

/// Which limit made the server close a connection it had accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// No complete first request within `server.handshakeTimeout`.
    Handshake,
    /// A later HTTP/1.1 request head not within `server.headerReadTimeout`.
    RequestHead,
    /// A request body not received within `server.requestBodyTimeout`.
    RequestBody,
    /// No request in progress for `server.connectionIdleTimeout`.
    Idle,
    /// An HTTP/2 keep-alive ping went unanswered.
    KeepAlive,
    /// Closed while idle to make room for a new connection at
    /// `server.maxConnections`.
    Evicted,
}

impl Cut {
    pub const ALL: [Cut; 6] = [
        Cut::Handshake,
        Cut::RequestHead,
        Cut::RequestBody,
        Cut::Idle,
        Cut::KeepAlive,
        Cut::Evicted,
    ];

    /// The Prometheus label value.
    pub fn label(self) -> &'static str {
        match self {
            Cut::Handshake => "handshake_timeout",
            Cut::RequestHead => "header_timeout",
            Cut::RequestBody => "body_timeout",
            Cut::Idle => "idle",
            Cut::KeepAlive => "keepalive_timeout",
            Cut::Evicted => "evicted",
        }
    }
}

/// The accept loop's numbers (`crate::serve`).
#[derive(Debug, Default)]
pub struct ConnectionMetrics {
    open: AtomicI64,
    accepted: AtomicU64,
    refused: [AtomicU64; Refusal::ALL.len()],
    cut: [AtomicU64; Cut::ALL.len()],
}

impl ConnectionMetrics {
    pub fn opened(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
    }
    pub fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn refused(&self, why: Refusal) {
        self.refused[why as usize].fetch_add(1, Ordering::Relaxed);
    }
    pub fn cut(&self, why: Cut) {
        self.cut[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Connections being served now (both listeners).
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed).max(0) as u64
    }
    pub fn accepted_total(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
    pub fn refused_total(&self, why: Refusal) -> u64 {
        self.refused[why as usize].load(Ordering::Relaxed)
    }
    pub fn cut_total(&self, why: Cut) -> u64 {
        self.cut[why as usize].load(Ordering::Relaxed)
    }
}

/// Upper bounds of the publish latency buckets, in microseconds (the last
/// bucket, `+Inf`, is implicit). From 10 µs (an in-memory publish) to 1 s (a
/// durable commit on a struggling disk).
pub const LATENCY_BUCKETS_US: [u64; 15] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    1_000_000,
];

/// A fixed-bucket histogram of durations: one relaxed add on the bucket and
/// one on the sum per observation, no locks, no allocation. Buckets are
/// stored non-cumulative; readers add them up (see [`LatencyHistogram::snapshot`]).
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// `LATENCY_BUCKETS_US.len() + 1` counts; the last one is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    sum_ns: AtomicU64,
}

/// A point-in-time copy of a [`LatencyHistogram`], cumulative like
/// Prometheus buckets.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, observations at or below it)`, ascending,
    /// without the `+Inf` bucket (that is `count`).
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl LatencyHistogram {
    pub fn observe(&self, took: Duration) {
        let us = took.as_micros().min(u128::from(u64::MAX)) as u64;
        // 15 sorted bounds: a branch-predictable scan beats a binary search.
        let i = LATENCY_BUCKETS_US
            .iter()
            .position(|&bound| us <= bound)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let ns = took.as_nanos().min(u128::from(u64::MAX)) as u64;
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(LATENCY_BUCKETS_US.len());
        for (i, &bound) in LATENCY_BUCKETS_US.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            buckets.push((bound as f64 / 1e6, cumulative));
        }
        cumulative += self.buckets[LATENCY_BUCKETS_US.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            buckets,
            count: cumulative,
            sum_seconds: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

impl HistogramSnapshot {
    /// An estimate of the `q` quantile (0..=1) in seconds: the upper bound of
    /// the bucket it falls in, as Prometheus' `histogram_quantile` would
    /// interpolate it. `None` with no observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * self.count as f64;
        let mut lower = (0.0, 0u64);
        for &(bound, count) in &self.buckets {
            if count as f64 >= rank {
                let in_bucket = (count - lower.1) as f64;
                let frac = if in_bucket > 0.0 {
                    (rank - lower.1 as f64) / in_bucket
                } else {
                    1.0
                };
                return Some(lower.0 + (bound - lower.0) * frac);
            }
            lower = (bound, count);
        }
        // In the +Inf bucket: the largest finite bound is all we can say.
        Some(lower.0)
    }
}

/// Resident memory of this process in bytes (Linux; `None` elsewhere).
///
/// Read from `VmRSS` in `/proc/self/status`, which the kernel reports in
/// kB: the same figure as `/proc/self/statm`'s resident pages, without having
/// to know the page size (4 KiB on x86-64, often 16 or 64 KiB on arm64).
pub fn process_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_micros(5));
        h.observe(Duration::from_micros(10));
        h.observe(Duration::from_micros(700));
        h.observe(Duration::from_secs(3));
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets[0], (10e-6, 2));
        assert_eq!(s.buckets.last().map(|b| b.1), Some(3));
        assert!((s.sum_seconds - 3.000715).abs() < 1e-9);
        let p50 = s.quantile(0.5).expect("observations");
        assert!(p50 <= 10e-6, "{p50}");
        assert_eq!(LatencyHistogram::default().snapshot().quantile(0.5), None);
    }

    #[test]
    fn reads_resident_memory() {
        if cfg!(target_os = "linux") {
            let rss = process_rss_bytes().expect("statm");
            assert!(rss > 1 << 20, "{rss}");
        }
    }
}
