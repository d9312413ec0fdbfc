//! `soak`: minutes of mixed load, to see whether the server's memory comes
//! back down afterwards. The whole time, churn workers connect, receive one
//! event and disconnect while background publishers keep events flowing;
//! every `--flood-every`, a flood opens thousands of subscribers at once,
//! publishes a burst that fans out to all of them, holds, and closes them.
//!
//! The server's RSS is sampled throughout (from `/proc` given its pid, else
//! from its Prometheus `/metrics`) into the report's timeline, with the idle
//! RSS after each flood and after everything stopped: a leak climbs flood
//! after flood, allocator retention settles at a plateau.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

use crate::http::{Conn, build_request, connect};
use crate::rss::{RssSource, Timeline, record, sample_loop};
use crate::stats::{self, Sharded, now_ns};
use crate::sub::{self, Accounting, Live};
use crate::target::{Mode, Target, source_ip};
use crate::{Common, Outcome};

#[derive(clap::Args, Debug, Clone)]
pub struct SoakArgs {
    /// How long churn and background publishing run; floods fall inside it.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Subscribers each flood opens (spread over the topics).
    #[arg(long, default_value_t = 10_000)]
    pub flood_connections: usize,
    /// A flood starts this often (the first after one interval of churn).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub flood_every: Duration,
    /// How long a flood's subscribers stay open once all are connected.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub flood_hold: Duration,
    /// After a flood's subscribers closed, how long before its "after" RSS
    /// sample (the server's memory trimmer looks every 10 s).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub flood_cooldown: Duration,
    /// Events published during each flood's hold, as fast as they go,
    /// round-robin over the topics (each fans out to every subscriber of it).
    #[arg(long, default_value_t = 2_000)]
    pub flood_publishes: u64,
    /// Payload bytes of every published event.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    #[arg(long, default_value_t = 100)]
    pub topics: usize,
    /// Churn workers (connect, one event, disconnect) running throughout.
    #[arg(long, default_value_t = 16)]
    pub churn_concurrency: usize,
    /// Pause between background publish rounds (one event to every topic).
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    pub publish_interval: Duration,
    /// RSS sampling interval.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub sample_every: Duration,
    /// Idle time after everything stopped (topics deleted) before the last
    /// sample.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// The server's pid, for RSS from /proc; without it, our API's
    /// `/metrics` (`process_resident_memory_bytes`) with the API token.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

pub async fn run(c: &Common, a: &SoakArgs) -> Result<Outcome, String> {
    let target = Arc::new(Target::setup(&c.target_spec(), a.topics.max(1)).await?);
    let source = match (a.server_pid, &target.mode) {
        (Some(pid), _) => RssSource::Proc(pid),
        (None, Mode::Sser { api_token }) => RssSource::Metrics {
            addr: target.pub_url.addr,
            request: build_request(
                "GET",
                &target.pub_url,
                "/metrics",
                &[
                    ("Authorization".into(), format!("Bearer {api_token}")),
                    ("Connection".into(), "close".into()),
                ],
                None,
            ),
        },
        (None, Mode::Generic) => return Err("soak needs --server-pid for a generic target".into()),
        (None, Mode::Identity { .. }) => return Err("soak runs on topics, not identities".into()),
        (None, Mode::Existing) => return Err("soak creates its own topics".into()),
    };
    let timeline = Arc::new(Timeline {
        start: Instant::now(),
        phase: Mutex::new("churn".into()),
        flood_open: AtomicU64::new(0),
        samples: Mutex::new(Vec::new()),
    });
    let rss_start = source.sample_kib().await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let sampler = tokio::spawn(sample_loop(
        source.clone(),
        timeline.clone(),
        a.sample_every,
        stop_rx.clone(),
    ));

    let churn_running = Arc::new(AtomicBool::new(true));
    let publishers: Vec<_> = (0..2)
        .map(|p| {
            tokio::spawn(background_publisher(
                target.clone(),
                p,
                a.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    let churn = Arc::new(Churn::default());
    let workers: Vec<_> = (0..a.churn_concurrency)
        .map(|w| {
            tokio::spawn(churn_worker(
                target.clone(),
                w,
                churn.clone(),
                churn_running.clone(),
            ))
        })
        .collect();

    let mut floods = Vec::new();
    let end = Instant::now() + a.duration;
    let mut n = 0;
    loop {
        let next = timeline.start + a.flood_every * (n + 1);
        if next + a.flood_hold > end {
            break;
        }
        tokio::time::sleep_until(next.into()).await;
        n += 1;
        floods.push(flood(c, a, n, &target, &timeline, &source).await);
    }
    tokio::time::sleep_until(end.into()).await;

    timeline.set_phase("stopping");
    churn_running.store(false, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let _ = stop_tx.send(true);
    let (mut published, mut publish_errors) = (0, 0);
    for p in publishers {
        let (s, e) = p.await.unwrap_or((0, 0));
        published += s;
        publish_errors += e;
    }
    let rss_before_teardown = source.sample_kib().await;
    target.teardown().await;
    timeline.set_phase("settle");
    // The sampler stopped with the others: sample the settle period here.
    let settle_end = Instant::now() + a.settle;
    while Instant::now() < settle_end {
        tokio::time::sleep(a.sample_every.min(settle_end - Instant::now())).await;
        record(&timeline, source.sample_kib().await);
    }
    let _ = sampler.await;
    let rss_end = source.sample_kib().await;

    let samples = std::mem::take(&mut *timeline.samples.lock());
    let rss_max = samples.iter().filter_map(|s| s["rss_kib"].as_u64()).max();
    let (cycles, churn_errors) = (
        churn.cycles.load(Ordering::Relaxed),
        churn.errors.load(Ordering::Relaxed),
    );
    let flood_errors: u64 = floods
        .iter()
        .filter_map(|f| f["connect_errors"].as_u64())
        .sum();
    let report = json!({
        "scenario": "soak",
        "target": c.label(),
        "params": {
            "duration_secs": a.duration.as_secs_f64(), "flood_connections": a.flood_connections,
            "flood_every_secs": a.flood_every.as_secs_f64(), "flood_hold_secs": a.flood_hold.as_secs_f64(),
            "flood_publishes": a.flood_publishes, "size": a.size, "topics": a.topics,
            "churn_concurrency": a.churn_concurrency,
            "publish_interval_ms": a.publish_interval.as_secs_f64() * 1000.0,
            "settle_secs": a.settle.as_secs_f64(), "threads": c.threads, "seed": c.seed,
            "rss_from": if a.server_pid.is_some() { "proc" } else { "metrics" },
        },
        "server_rss_kib_start": rss_start,
        "server_rss_kib_max": rss_max,
        "server_rss_kib_before_teardown": rss_before_teardown,
        "server_rss_kib_end": rss_end,
        "floods": floods,
        "churn_cycles": cycles,
        "churn_errors": churn_errors,
        "churn_first_error": churn.first_error.lock().clone(),
        "background_published": published,
        "background_publish_errors": publish_errors,
        "samples": samples,
        "bench_rss_kib": stats::self_rss_kib(),
    });
    Ok(Outcome {
        report,
        failed: churn_errors > 0 || publish_errors > 0 || flood_errors > 0,
    })
}

/// One flood: open, burst, hold, close, cool down; returns its report.
async fn flood(
    c: &Common,
    a: &SoakArgs,
    n: u32,
    target: &Arc<Target>,
    timeline: &Arc<Timeline>,
    source: &RssSource,
) -> Value {
    let rss_before = source.sample_kib().await;
    timeline.set_phase(format!("flood {n}: opening"));
    let (stop_tx, stop_rx) = watch::channel(false);
    let acc = Arc::new(Accounting {
        publishers: 1,
        hist: Arc::new(Sharded::new(1)),
        live: Arc::new(Live::default()),
        events: None,
    });
    let gate = Arc::new(Semaphore::new(c.connect_concurrency.max(1)));
    let spread = c.spread(a.flood_connections);
    let errors = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut opening = Vec::with_capacity(a.flood_connections);
    for i in 0..a.flood_connections {
        let (target, gate, acc, stop, errors, timeline) = (
            target.clone(),
            gate.clone(),
            acc.clone(),
            stop_rx.clone(),
            errors.clone(),
            timeline.clone(),
        );
        opening.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.ok();
            let opened =
                sub::open(&target, i % target.topics.len(), source_ip(i, spread), 1024).await;
            drop(permit);
            match opened {
                Ok(s) => {
                    timeline.flood_open.fetch_add(1, Ordering::Relaxed);
                    let r = sub::run(s, i, acc, stop).await;
                    timeline.flood_open.fetch_sub(1, Ordering::Relaxed);
                    r.received
                }
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    0
                }
            }
        }));
    }
    // Wait until every connect has succeeded or failed.
    while timeline.flood_open.load(Ordering::Relaxed) + errors.load(Ordering::Relaxed)
        < a.flood_connections as u64
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let open_secs = t0.elapsed().as_secs_f64();
    let opened = timeline.flood_open.load(Ordering::Relaxed);

    timeline.set_phase(format!("flood {n}: burst"));
    let hold_end = Instant::now() + a.flood_hold;
    let (published, publish_errors) = burst(target, a.flood_publishes, a.size, n).await;
    timeline.set_phase(format!("flood {n}: hold"));
    tokio::time::sleep_until(hold_end.into()).await;
    let rss_peak = source.sample_kib().await;

    timeline.set_phase(format!("flood {n}: closed"));
    let _ = stop_tx.send(true);
    let mut received = 0;
    for t in opening {
        received += t.await.unwrap_or(0);
    }
    // Give the server a moment to notice the closed sockets.
    tokio::time::sleep(a.flood_cooldown).await;
    let rss_after = source.sample_kib().await;
    timeline.set_phase("churn");
    json!({
        "flood": n,
        "opened": opened,
        "connect_errors": errors.load(Ordering::Relaxed),
        "open_secs": open_secs,
        "published": published,
        "publish_errors": publish_errors,
        "deliveries": received,
        "server_rss_kib_before": rss_before,
        "server_rss_kib_held": rss_peak,
        "server_rss_kib_after_close": rss_after,
    })
}

/// Publishes `count` events round-robin over the topics on four keep-alive
/// connections, as fast as they are acknowledged.
async fn burst(target: &Arc<Target>, count: u64, size: usize, flood: u32) -> (u64, u64) {
    let lanes = 4u64;
    let tasks: Vec<_> = (0..lanes)
        .map(|lane| {
            let target = target.clone();
            tokio::spawn(async move {
                let (mut sent, mut errors) = (0, 0);
                let mut conn: Option<Conn> = None;
                let mut k = lane;
                while k < count {
                    let topic = (k as usize) % target.topics.len();
                    let req =
                        target.publish_request(topic, &payload(u64::from(flood) << 32 | k, size));
                    k += lanes;
                    if publish_once(&target, &mut conn, &req).await {
                        sent += 1;
                    } else {
                        errors += 1;
                    }
                }
                (sent, errors)
            })
        })
        .collect();
    let (mut sent, mut errors) = (0, 0);
    for t in tasks {
        let (s, e) = t.await.unwrap_or((0, 0));
        sent += s;
        errors += e;
    }
    (sent, errors)
}

/// A bench payload of `size` bytes: `sb:<k>:<ns>:` and padding.
fn payload(k: u64, size: usize) -> String {
    let mut p = format!("sb:{k}:{}:", now_ns());
    if p.len() < size {
        p.extend(std::iter::repeat_n('x', size - p.len()));
    }
    p
}

/// One publish on a reused keep-alive connection; true on a 2xx.
async fn publish_once(target: &Target, conn: &mut Option<Conn>, req: &[u8]) -> bool {
    if conn.is_none() {
        *conn = connect(target.pub_url.addr, None)
            .await
            .ok()
            .map(|s| Conn::new(s, 4096));
    }
    let Some(cn) = conn.as_mut() else {
        return false;
    };
    match cn.roundtrip(req).await {
        Ok((h, _)) if (200..300).contains(&h.status) => {
            if !h.keep_alive {
                *conn = None;
            }
            true
        }
        _ => {
            *conn = None;
            false
        }
    }
}

/// One event to every topic every `--publish-interval`, until stopped.
async fn background_publisher(
    target: Arc<Target>,
    p: u64,
    a: SoakArgs,
    mut stop: watch::Receiver<bool>,
) -> (u64, u64) {
    let mut tick = tokio::time::interval(a.publish_interval.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut sent, mut errors) = (0, 0);
    let mut conn = None;
    let mut k = p;
    loop {
        tokio::select! {
            _ = stop.changed() => return (sent, errors),
            _ = tick.tick() => {}
        }
        for t in 0..target.topics.len() {
            let req = target.publish_request(t, &payload(k, a.size));
            k += 2;
            if publish_once(&target, &mut conn, &req).await {
                sent += 1;
            } else {
                errors += 1;
            }
        }
    }
}

#[derive(Default)]
struct Churn {
    cycles: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

/// Connect, receive one event, disconnect; again, until told to stop.
async fn churn_worker(target: Arc<Target>, w: usize, churn: Arc<Churn>, running: Arc<AtomicBool>) {
    let mut n = w;
    while running.load(Ordering::Relaxed) {
        let source = source_ip(n, 64);
        n += 1;
        let topic = n % target.topics.len();
        match tokio::time::timeout(
            Duration::from_secs(10),
            crate::connect::one_cycle(&target, topic, source),
        )
        .await
        {
            Ok(Ok(())) => {
                churn.cycles.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                churn.errors.fetch_add(1, Ordering::Relaxed);
                churn.first_error.lock().get_or_insert(e);
            }
            Err(_) => {
                churn.errors.fetch_add(1, Ordering::Relaxed);
                churn
                    .first_error
                    .lock()
                    .get_or_insert("cycle timed out".into());
            }
        }
    }
}
