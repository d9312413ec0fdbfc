//! `flood`: N connections that connect and then say nothing (or half an
//! HTTP/2 preface, or a whole one), held for a duration, while a prober asks
//! `/healthz` on a fresh connection every interval, as a load balancer would.
//! Reports the probe latencies, failures and the longest outage, and what the
//! server did with the flood (closed, refused). With `--reopen` every
//! connection the server closes is opened again: a sustained attack.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, watch};

use crate::http::{Conn, Url, build_request, connect};
use crate::stats::{self, latency_json, new_histogram};
use crate::target::source_ip;
use crate::{Common, Outcome};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum Payload {
    /// Nothing at all.
    Silent,
    /// The first 10 bytes of the HTTP/2 preface.
    H2Half,
    /// The whole HTTP/2 preface, then nothing.
    H2Preface,
}

#[derive(clap::Args, Debug, Clone)]
pub struct FloodArgs {
    /// Connections to open and hold.
    #[arg(long, default_value_t = 20_000)]
    pub connections: usize,
    /// How long the flood lasts.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// What each connection sends after connecting.
    #[arg(long, value_enum, default_value = "silent")]
    pub send: Payload,
    /// Open a connection again whenever the server closes it.
    #[arg(long)]
    pub reopen: bool,
    /// How often `/healthz` is probed (each probe on a new connection).
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    pub probe_interval: Duration,
    /// A probe not answered within this counts as failed.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub probe_timeout: Duration,
}

#[derive(Default)]
struct Counts {
    opened: AtomicU64,
    connect_errors: AtomicU64,
    open_now: AtomicU64,
    open_peak: AtomicU64,
    closed_by_server: AtomicU64,
    /// Connections the server answered before closing (a 429/503 refusal).
    answered: AtomicU64,
}

pub async fn run(c: &Common, a: &FloodArgs) -> Result<Outcome, String> {
    let url = Url::parse(&c.url)?;
    let spread = c.spread(a.connections);
    let counts = Arc::new(Counts::default());
    let held_ms = Arc::new(parking_lot::Mutex::new(new_histogram()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(c.connect_concurrency.max(1)));
    let payload: &'static [u8] = match a.send {
        Payload::Silent => b"",
        Payload::H2Half => &H2_PREFACE[..10],
        Payload::H2Preface => H2_PREFACE,
    };
    let t0 = Instant::now();

    let prober = tokio::spawn(probe(
        url.clone(),
        a.probe_interval,
        a.probe_timeout,
        stop_rx.clone(),
    ));
    let mut workers = Vec::with_capacity(a.connections);
    for i in 0..a.connections {
        let (counts, held_ms, gate, mut stop) = (
            counts.clone(),
            held_ms.clone(),
            gate.clone(),
            stop_rx.clone(),
        );
        let (addr, source, reopen) = (url.addr, source_ip(i, spread), a.reopen);
        workers.push(tokio::spawn(async move {
            loop {
                let permit = gate.acquire().await.ok();
                let connected = tokio::select! {
                    r = connect(addr, source) => r,
                    _ = stop.changed() => return,
                };
                drop(permit);
                let Ok(mut stream) = connected else {
                    counts.connect_errors.fetch_add(1, Ordering::Relaxed);
                    if !reopen {
                        return;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        _ = stop.changed() => return,
                    }
                };
                counts.opened.fetch_add(1, Ordering::Relaxed);
                let now = counts.open_now.fetch_add(1, Ordering::Relaxed) + 1;
                counts.open_peak.fetch_max(now, Ordering::Relaxed);
                let since = Instant::now();
                let _ = stream.write_all(payload).await;
                let mut buf = [0u8; 512];
                let mut answered = false;
                let closed = loop {
                    tokio::select! {
                        r = stream.read(&mut buf) => match r {
                            Ok(0) | Err(_) => break true,
                            // HTTP/2 SETTINGS, or a refusal's answer.
                            Ok(n) => answered |= buf[..n].starts_with(b"HTTP/1.1"),
                        },
                        _ = stop.changed() => break false,
                    }
                };
                counts.open_now.fetch_sub(1, Ordering::Relaxed);
                if !closed {
                    return;
                }
                counts.closed_by_server.fetch_add(1, Ordering::Relaxed);
                if answered {
                    counts.answered.fetch_add(1, Ordering::Relaxed);
                }
                let ms = since.elapsed().as_millis() as u64;
                held_ms.lock().saturating_record(ms.max(1));
                if !reopen {
                    return;
                }
            }
        }));
    }
    tokio::time::sleep(a.duration).await;
    let _ = stop_tx.send(true);
    for w in workers {
        let _ = w.await;
    }
    let probes = prober.await.map_err(|e| e.to_string())?;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let held = held_ms.lock();
    let report = json!({
        "scenario": "flood",
        "target": c.label(),
        "params": {
            "connections": a.connections, "duration_secs": a.duration.as_secs_f64(),
            "send": format!("{:?}", a.send), "reopen": a.reopen,
            "source_ips": spread.max(1), "probe_interval_ms": a.probe_interval.as_millis() as u64,
        },
        "flood_opened": load(&counts.opened),
        "flood_open_peak": load(&counts.open_peak),
        "flood_connect_errors": load(&counts.connect_errors),
        "flood_closed_by_server": load(&counts.closed_by_server),
        "flood_refused_with_answer": load(&counts.answered),
        "flood_held_before_close_ms": {
            "p50": held.value_at_quantile(0.5), "max": held.max(),
        },
        "healthz_probes": probes.sent,
        "healthz_failed": probes.failed,
        "healthz_first_error": probes.first_error,
        "healthz_longest_outage_secs": probes.longest_outage.as_secs_f64(),
        "healthz_latency": latency_json(&probes.latency),
        "elapsed_secs": t0.elapsed().as_secs_f64(),
        "bench_rss_kib": stats::self_rss_kib(),
    });
    Ok(Outcome {
        report,
        failed: probes.failed > 0,
    })
}

struct Probes {
    sent: u64,
    failed: u64,
    first_error: Option<String>,
    longest_outage: Duration,
    latency: hdrhistogram::Histogram<u64>,
}

/// `GET /healthz` on a new connection every `interval` until `stop`.
async fn probe(
    url: Url,
    interval: Duration,
    timeout: Duration,
    mut stop: watch::Receiver<bool>,
) -> Probes {
    let mut out = Probes {
        sent: 0,
        failed: 0,
        first_error: None,
        longest_outage: Duration::ZERO,
        latency: new_histogram(),
    };
    let request = build_request(
        "GET",
        &url,
        "/healthz",
        &[("Connection".into(), "close".into())],
        None,
    );
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let start = Instant::now();
        let attempt = tokio::time::timeout(timeout, async {
            let stream = connect(url.addr, None).await?;
            let mut conn = Conn::new(stream, 1024);
            conn.roundtrip(&request).await
        })
        .await;
        out.sent += 1;
        let error = match attempt {
            Ok(Ok((head, _))) if head.status == 200 => None,
            Ok(Ok((head, _))) => Some(format!("status {}", head.status)),
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {timeout:?}")),
        };
        match error {
            None => {
                out.latency
                    .saturating_record(start.elapsed().as_micros().max(1) as u64);
                if let Some(since) = failing_since.take() {
                    out.longest_outage = out.longest_outage.max(since.elapsed());
                }
            }
            Some(e) => {
                out.failed += 1;
                out.first_error.get_or_insert(e);
                failing_since.get_or_insert(start);
            }
        }
    }
    if let Some(since) = failing_since {
        out.longest_outage = out.longest_outage.max(since.elapsed());
    }
    out
}
