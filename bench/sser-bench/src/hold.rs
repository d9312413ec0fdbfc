//! `hold`: one process's share of a broadcast to more subscribers than one
//! process may hold open (`bench/cluster-100k.sh`: 100,000 over 6 nodes).
//!
//! It opens N subscribers to one topic that already exists (spread over the
//! `--subscribe-via` nodes), writes a ready file once all are open, then
//! waits for events 0..E on every one of them and reports, per event, how
//! many of its subscribers got it and when the first and the last did. The
//! events come from `send` in another process; both stamp times on the
//! machine's monotonic clock, so a script merges the reports into "publish →
//! last delivery anywhere" and "every subscriber got every event".

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::stats::{self, Sharded};
use crate::sub::{self, Accounting, EventLog, Live};
use crate::target::{Target, source_ip};
use crate::{Common, Outcome};

#[derive(clap::Args, Debug, Clone)]
pub struct HoldArgs {
    /// Id of the topic to follow (it exists already; see `send`).
    #[arg(long)]
    pub topic: String,
    /// The topic's subscriber token (from its creation).
    #[arg(long)]
    pub topic_token: String,
    /// Subscribers this process holds (N).
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Events every subscriber must get: numbers 0..E from `send`.
    #[arg(long, default_value_t = 1)]
    pub events: usize,
    /// Written (atomically) with `{"open":…,"connect_errors":…}` once every
    /// subscriber is open or has failed: the signal to start publishing.
    #[arg(long)]
    pub ready_file: Option<std::path::PathBuf>,
    /// Written once waiting for events ended (everything arrived, or
    /// progress stopped), before the subscribers disconnect: a script reads
    /// the servers' CPU time then, apart from the disconnects.
    #[arg(long)]
    pub done_file: Option<std::path::PathBuf>,
    /// Longest wait for the events once ready.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub wait: Duration,
    /// Once deliveries started, how long without progress before counting
    /// what is missing as lost.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Times a subscriber whose connect failed tries again, as an
    /// `EventSource` does (counted in the report as `connect_retries`).
    #[arg(long, default_value_t = 0)]
    pub retries: u32,
    /// Pause before each retry.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub retry_after: Duration,
    /// Read buffer per subscriber, bytes (events here are small).
    #[arg(long, default_value_t = 1024)]
    pub read_buffer: usize,
}

pub async fn run(c: &Common, a: &HoldArgs) -> Result<Outcome, String> {
    let target = Arc::new(Target::existing_topic(
        &c.target_spec(),
        &a.topic,
        &a.topic_token,
    )?);
    let request = target.subscribe_request(0);
    let spread = c.spread(a.subscribers);
    let log = Arc::new(EventLog::new(a.events));
    let acc = Arc::new(Accounting {
        publishers: 1,
        hist: Arc::new(Sharded::new(64)),
        live: Arc::new(Live::default()),
        events: Some(log.clone()),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(c.connect_concurrency.max(1)));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Result<(), String>>();
    let retried = Arc::new(AtomicU64::new(0));
    let t_connect = Instant::now();
    let mut tasks = Vec::with_capacity(a.subscribers);
    for i in 0..a.subscribers {
        let (gate, ready, acc, stop, request) = (
            gate.clone(),
            ready_tx.clone(),
            acc.clone(),
            stop_rx.clone(),
            request.clone(),
        );
        let (addr, source, buf) = (target.sub_addr(i), source_ip(i, spread), a.read_buffer);
        let (retries, retry_after, retried) = (a.retries, a.retry_after, retried.clone());
        tasks.push(tokio::spawn(async move {
            let mut attempt = 0;
            let opened = loop {
                let permit = gate.clone().acquire_owned().await.ok();
                let opened = sub::open_request_at(addr, &request, source, buf).await;
                drop(permit);
                if opened.is_ok() || attempt == retries {
                    break opened;
                }
                attempt += 1;
                retried.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(retry_after).await;
            };
            match opened {
                Ok(s) => {
                    let _ = ready.send(Ok(()));
                    Some(sub::run(s, i, acc, stop).await)
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                    None
                }
            }
        }));
    }
    drop(ready_tx);
    let (mut open, mut connect_errors, mut first_error) = (0u64, 0u64, None);
    for _ in 0..a.subscribers {
        match ready_rx.recv().await {
            Some(Ok(())) => open += 1,
            Some(Err(e)) => {
                connect_errors += 1;
                first_error.get_or_insert(e);
            }
            None => break,
        }
    }
    let connect_secs = t_connect.elapsed().as_secs_f64();
    if let Some(path) = &a.ready_file {
        write_atomically(
            path,
            &json!({ "open": open, "connect_errors": connect_errors }),
        )?;
    }

    // Wait for every event on every open subscriber, or for progress to stop.
    let expected = open * a.events as u64;
    let cpu0 = stats::cpu_seconds();
    let t_ready = Instant::now();
    let (mut last, mut last_move) = (0u64, Instant::now());
    loop {
        let now = acc.live.received.load(Ordering::Relaxed);
        if now >= expected || acc.live.ended.load(Ordering::Relaxed) >= open {
            break;
        }
        if now != last {
            (last, last_move) = (now, Instant::now());
        } else if (now > 0 && last_move.elapsed() > a.drain_timeout) || t_ready.elapsed() > a.wait {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let cpu = stats::cpu_seconds() - cpu0;
    if let Some(path) = &a.done_file {
        write_atomically(
            path,
            &json!({ "received": acc.live.received.load(Ordering::Relaxed) }),
        )?;
    }
    let _ = stop_tx.send(true);
    let (mut received, mut out_of_order, mut lagged, mut ended_early) = (0u64, 0u64, 0u64, 0u64);
    for t in tasks {
        if let Ok(Some(r)) = t.await {
            received += r.received;
            out_of_order += r.out_of_order;
            lagged += u64::from(r.lagged);
            ended_early += u64::from(r.ended_early);
        }
    }
    let per_event: Vec<Value> = (0..a.events)
        .map(|k| {
            let got = log.received[k].load(Ordering::Relaxed);
            let ns = |v: &[AtomicU64]| Some(v[k].load(Ordering::Relaxed)).filter(|_| got > 0);
            json!({
                "k": k, "received": got, "sent_ns": ns(&log.sent_ns),
                "first_ns": ns(&log.first_ns), "last_ns": ns(&log.last_ns),
            })
        })
        .collect();
    let lost = expected.saturating_sub(received);
    let report = json!({
        "scenario": "hold",
        "target": c.label(),
        "params": {
            "subscribers": a.subscribers, "events": a.events,
            "nodes": target.sub_via.len().max(1), "source_ips": spread.max(1),
            "threads": c.threads,
        },
        "open": open,
        "connect_errors": connect_errors,
        "first_connect_error": first_error,
        "connect_secs": connect_secs,
        "connect_retries": retried.load(Ordering::Relaxed),
        "expected": expected,
        "received": received,
        "lost": lost,
        "lagged_disconnects": lagged,
        "ended_early": ended_early,
        "out_of_order": out_of_order,
        "latency": stats::latency_json(&acc.hist.merged()),
        "per_event": per_event,
        "bench_cpu_secs_while_waiting": cpu,
        "bench_rss_kib": stats::self_rss_kib(),
    });
    let failed = lost > 0 || connect_errors > 0 || out_of_order > 0 || lagged > 0;
    Ok(Outcome { report, failed })
}

/// Writes `value` to `path` whole or not at all (a watcher never reads half).
fn write_atomically(path: &std::path::Path, value: &Value) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, value.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}
