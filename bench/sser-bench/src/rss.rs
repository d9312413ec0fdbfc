//! The server's resident memory over time, for `soak`: read from `/proc`
//! given its pid, or from its Prometheus `/metrics`
//! (`process_resident_memory_bytes`), and sampled into a timeline tagged with
//! what the load was doing at the time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::http::{Conn, connect};
use crate::stats;

/// Where RSS comes from.
#[derive(Clone)]
pub enum RssSource {
    Proc(u32),
    Metrics {
        addr: std::net::SocketAddr,
        request: Vec<u8>,
    },
}

impl RssSource {
    pub async fn sample_kib(&self) -> Option<u64> {
        match self {
            RssSource::Proc(pid) => stats::process_mem(*pid).map(|m| m.rss_kib),
            RssSource::Metrics { addr, request } => {
                let stream = connect(*addr, None).await.ok()?;
                let (head, body) = Conn::new(stream, 16 * 1024).roundtrip(request).await.ok()?;
                if head.status != 200 {
                    return None;
                }
                let text = String::from_utf8_lossy(&body);
                let line = text
                    .lines()
                    .find(|l| l.starts_with("process_resident_memory_bytes "))?;
                let bytes: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(bytes as u64 / 1024)
            }
        }
    }
}

/// What the sampler records, and what the phases tell it.
pub struct Timeline {
    pub start: Instant,
    pub phase: Mutex<String>,
    pub flood_open: AtomicU64,
    pub samples: Mutex<Vec<Value>>,
}

impl Timeline {
    pub fn set_phase(&self, phase: impl Into<String>) {
        *self.phase.lock() = phase.into();
    }
}

pub fn record(timeline: &Timeline, rss_kib: Option<u64>) {
    let sample = json!({
        "t_secs": (timeline.start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        "rss_kib": rss_kib,
        "phase": timeline.phase.lock().clone(),
        "flood_open": timeline.flood_open.load(Ordering::Relaxed),
    });
    timeline.samples.lock().push(sample);
}

pub async fn sample_loop(
    source: RssSource,
    timeline: Arc<Timeline>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => record(&timeline, source.sample_kib().await),
        }
    }
}
