//! `connect`: connection churn. C workers each loop: connect, subscribe,
//! receive one event, disconnect. Background publishers keep events flowing
//! to every topic, so a cycle includes waiting for the next event: keep them
//! busy (several, back to back) or the cycle rate measures their cadence.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::json;
use tokio::sync::watch;

use crate::http::{Conn, Dechunker, Framing, connect};
use crate::sse::Parser;
use crate::stats::{self, new_histogram, now_ns};
use crate::sub::{self, parse_payload};
use crate::target::{Target, source_ip};
use crate::{Common, Outcome};

#[derive(clap::Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Concurrent workers (connections in flight).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// How long to churn.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    #[arg(long, default_value_t = 1)]
    pub topics: usize,
    /// Background publishers sending to every topic while workers churn.
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Pause between one publisher's rounds (0s = back to back).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub publish_interval: Duration,
    /// Source addresses to rotate over (closed connections sit in TIME_WAIT,
    /// each source address has its own ephemeral ports).
    #[arg(long, default_value_t = 64)]
    pub churn_source_ips: usize,
}

pub async fn run(c: &Common, a: &ConnectArgs) -> Result<Outcome, String> {
    let target = Arc::new(Target::setup(&c.target_spec(), a.topics.max(1)).await?);
    let running = Arc::new(AtomicBool::new(true));
    let (stop_tx, stop_rx) = watch::channel(false);

    // The background publishers: each loops over the topics on its own
    // keep-alive connection, back to back (or every `--publish-interval`).
    // Several of them, so a worker's wait for "the next event" is short and
    // the cycle rate measures the server's connection handling, not the
    // publishers' cadence.
    let publishers: Vec<_> = (0..a.publishers.max(1))
        .map(|p| {
            let target = target.clone();
            let interval = a.publish_interval;
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                let mut conn: Option<Conn> = None;
                let mut tick = tokio::time::interval(interval.max(Duration::from_micros(1)));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut k = p as u64;
                let (mut sent, mut errors) = (0u64, 0u64);
                loop {
                    if interval.is_zero() {
                        if *stop.borrow() {
                            break;
                        }
                    } else {
                        tokio::select! {
                            _ = stop.changed() => break,
                            _ = tick.tick() => {}
                        }
                    }
                    for t in 0..target.topics.len() {
                        let req = target.publish_request(t, &format!("sb:{k}:{}:", now_ns()));
                        k += 1;
                        if conn.is_none() {
                            conn = connect(target.pub_url.addr, None)
                                .await
                                .ok()
                                .map(|s| Conn::new(s, 4096));
                        }
                        let Some(cn) = conn.as_mut() else {
                            errors += 1;
                            continue;
                        };
                        match cn.roundtrip(&req).await {
                            Ok((h, _)) if (200..300).contains(&h.status) => {
                                sent += 1;
                                if !h.keep_alive {
                                    conn = None;
                                }
                            }
                            _ => {
                                errors += 1;
                                conn = None;
                            }
                        }
                    }
                }
                (sent, errors)
            })
        })
        .collect();

    let cycles = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(parking_lot::Mutex::new(None::<String>));
    let cpu0 = stats::cpu_seconds();
    let t0 = Instant::now();
    let mut workers = Vec::new();
    for w in 0..a.concurrency {
        let (target, running, cycles, errors, first_error) = (
            target.clone(),
            running.clone(),
            cycles.clone(),
            errors.clone(),
            first_error.clone(),
        );
        let spread = a.churn_source_ips;
        let mut rng = StdRng::seed_from_u64(c.seed.wrapping_mul(1_000_003).wrapping_add(w as u64));
        workers.push(tokio::spawn(async move {
            let mut hist = new_histogram();
            let mut n = w;
            while running.load(Ordering::Relaxed) {
                let topic = rng.gen_range(0..target.topics.len());
                let start = Instant::now();
                let source = source_ip(n, spread);
                n += 1;
                match tokio::time::timeout(
                    Duration::from_secs(10),
                    one_cycle(&target, topic, source),
                )
                .await
                {
                    Ok(Ok(())) => {
                        cycles.fetch_add(1, Ordering::Relaxed);
                        hist.saturating_record((start.elapsed().as_micros() as u64).max(1));
                    }
                    Ok(Err(e)) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        first_error.lock().get_or_insert(e);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        first_error.lock().get_or_insert("cycle timed out".into());
                    }
                }
            }
            hist
        }));
    }
    tokio::time::sleep(a.duration).await;
    running.store(false, Ordering::Relaxed);
    let mut hist = new_histogram();
    for w in workers {
        if let Ok(h) = w.await {
            let _ = hist.add(&h);
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = stats::cpu_seconds() - cpu0;
    let _ = stop_tx.send(true);
    let (mut published, mut pub_errors) = (0u64, 0u64);
    for p in publishers {
        let (s, e) = p.await.unwrap_or((0, 0));
        published += s;
        pub_errors += e;
    }
    target.teardown().await;
    let done = cycles.load(Ordering::Relaxed);
    let errs = errors.load(Ordering::Relaxed);
    let report = json!({
        "scenario": "connect",
        "target": c.label(),
        "params": {
            "concurrency": a.concurrency, "topics": a.topics,
            "duration_secs": a.duration.as_secs_f64(),
            "publish_interval_ms": a.publish_interval.as_secs_f64() * 1000.0,
            "publishers": a.publishers,
            "threads": c.threads, "source_ips": a.churn_source_ips, "seed": c.seed,
        },
        "cycles": done,
        "cycles_per_sec": done as f64 / secs,
        "errors": errs,
        "first_error": first_error.lock().clone(),
        "cycle_latency": stats::latency_json(&hist),
        "background_published": published,
        "background_publish_errors": pub_errors,
        "bench_cpu_secs": cpu,
        "bench_cpu_percent_of_one_core": 100.0 * cpu / secs,
    });
    Ok(Outcome {
        report,
        failed: errs > 0 || pub_errors > 0,
    })
}

/// Connect, subscribe, read until one bench event arrives, drop the socket.
/// (`soak` churns with it too.)
pub(crate) async fn one_cycle(
    target: &Target,
    topic: usize,
    source: Option<std::net::IpAddr>,
) -> Result<(), String> {
    let mut s = sub::open(target, topic, source, 1024).await?;
    let mut parser = Parser::default();
    let mut dechunk = Dechunker::default();
    let mut decoded = Vec::new();
    loop {
        if !s.conn.buf.is_empty() {
            decoded.clear();
            if s.framing == Framing::Chunked {
                dechunk
                    .decode(&mut s.conn.buf, &mut decoded)
                    .map_err(|e| e.to_string())?;
            } else {
                decoded.extend_from_slice(&s.conn.buf);
                s.conn.buf.clear();
            }
            let mut got = false;
            parser.feed(&decoded, |ev| got |= parse_payload(&ev.data).is_some());
            if got {
                return Ok(());
            }
            if dechunk.is_done() {
                return Err("stream ended before an event".into());
            }
        }
        if s.conn.fill().await.map_err(|e| e.to_string())? == 0 {
            return Err("stream ended before an event".into());
        }
    }
}
