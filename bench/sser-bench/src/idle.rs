//! `idle`: open N subscriber connections, hold them, and report how fast they
//! opened and (given the server's pid) what they cost the server in memory.
//! With `--identities`, each connection is its own user on
//! `GET /api/v1/stream` (tokens minted first, see [`crate::identity`]), so
//! the cost includes what an identity holds: its inboxes and presence.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::stats::{self, Sharded};
use crate::sub::{self, Accounting, Live};
use crate::target::{Address, Target, source_ip};
use crate::{Common, Outcome};

#[derive(clap::Args, Debug, Clone)]
pub struct IdleArgs {
    /// Connections to open and hold.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Topics the connections are spread over.
    #[arg(long, default_value_t = 100)]
    pub topics: usize,
    /// How long to hold them once all are open.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub hold: Duration,
    /// The server's pid (its children, e.g. nginx workers, are included) for
    /// RSS/PSS per connection from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Identity connections (our API): each its own user of one application
    /// on `GET /api/v1/stream`; --topics is ignored.
    #[arg(long)]
    pub identities: bool,
}

pub async fn run(c: &Common, a: &IdleArgs) -> Result<Outcome, String> {
    let spec = c.target_spec();
    let (target, mint_secs) = if a.identities {
        let (target, secs) = Target::identities(&spec, Address::Users, a.connections).await?;
        (target, Some(secs))
    } else {
        (Target::setup(&spec, a.topics.max(1)).await?, None)
    };
    let target = Arc::new(target);
    let spread = c.spread(a.connections);
    // Minting came first: its allocations are in the baseline, not the delta.
    let mem_before = a.server_pid.and_then(stats::process_mem);
    let (stop_tx, stop_rx) = watch::channel(false);
    let acc = Arc::new(Accounting {
        publishers: 1,
        hist: Arc::new(Sharded::new(1)),
        live: Arc::new(Live::default()),
        events: None,
    });
    let gate = Arc::new(Semaphore::new(c.connect_concurrency.max(1)));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Result<(), String>>();
    let cpu0 = stats::cpu_seconds();
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(a.connections);
    for i in 0..a.connections {
        let request = target.subscribe_request_for(i, &[i % target.topics.len()])?;
        let (target, gate, ready, acc, stop) = (
            target.clone(),
            gate.clone(),
            ready_tx.clone(),
            acc.clone(),
            stop_rx.clone(),
        );
        let source = source_ip(i, spread);
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.ok();
            // A small read buffer: idle streams carry only heartbeats.
            let opened = sub::open_request(&target, &request, source, 512).await;
            drop(permit);
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
    let (mut open, mut errors, mut first_error) = (0u64, 0u64, None);
    // Every task reports once; the senders stay alive in the running tasks.
    for _ in 0..a.connections {
        let Some(r) = ready_rx.recv().await else {
            break;
        };
        match r {
            Ok(()) => open += 1,
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    let connect_secs = t0.elapsed().as_secs_f64();
    let connect_cpu = stats::cpu_seconds() - cpu0;
    tokio::time::sleep(a.hold).await;
    let mem_after = a.server_pid.and_then(stats::process_mem);
    let _ = stop_tx.send(true);
    let mut ended_early = 0u64;
    let mut comments = 0u64;
    for t in tasks {
        if let Ok(Some(r)) = t.await {
            ended_early += u64::from(r.ended_early);
            comments += r.comments;
        }
    }
    target.teardown().await;
    let per_conn = |f: fn(&stats::Mem) -> u64| match (&mem_before, &mem_after) {
        (Some(b), Some(a)) if open > 0 => {
            Value::from((f(a) as f64 - f(b) as f64) * 1024.0 / open as f64)
        }
        _ => Value::Null,
    };
    let report = json!({
        "scenario": "idle",
        "target": c.label(),
        "params": {
            "connections": a.connections, "topics": a.topics, "identities": a.identities,
            "hold_secs": a.hold.as_secs_f64(),
            "threads": c.threads, "source_ips": spread.max(1), "seed": c.seed,
        },
        "mint_secs": mint_secs,
        "open": open,
        "connect_errors": errors,
        "first_connect_error": first_error,
        "connect_secs": connect_secs,
        "connects_per_sec": open as f64 / connect_secs,
        "ended_early": ended_early,
        "comments_received": comments,
        "server_rss_kib_before": mem_before.map(|m| m.rss_kib),
        "server_rss_kib_after": mem_after.map(|m| m.rss_kib),
        "server_pss_kib_before": mem_before.map(|m| m.pss_kib),
        "server_pss_kib_after": mem_after.map(|m| m.pss_kib),
        "server_rss_bytes_per_conn": per_conn(|m| m.rss_kib),
        "server_pss_bytes_per_conn": per_conn(|m| m.pss_kib),
        "bench_connect_cpu_secs": connect_cpu,
        "bench_rss_kib": stats::self_rss_kib(),
    });
    Ok(Outcome {
        report,
        failed: errors > 0 || ended_early > 0,
    })
}
