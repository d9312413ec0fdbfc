//! Persistence measurements behind BENCHMARKS.md's `## Persistence` section.
//!
//! ```text
//! cargo run --release --example persist_bench -- redb
//! cargo run --release --example persist_bench -- sled
//! ```
//!
//! It drives the hub directly (no HTTP, so the numbers are the store's, not
//! the client's): 64 concurrent publishers through `Hub::publish`, the same
//! path a `POST .../events` takes after parsing. Each scenario uses a fresh
//! store in a temporary directory under `target/` (a real disk: `/tmp` may be
//! tmpfs, where fsync costs nothing). Nothing here is asserted; it prints one
//! line per scenario.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sser::Server;
use sser::config::{Config, DurabilityMode, Flag, KvEngine};
use sser::hub::{Hub, NewEvent, NewTopic, Resume, Topic};
use sser::secret::Secret;
use sser::store::Retention;

const PUBLISHERS: usize = 64;

fn config(dir: &Path, engine: KvEngine, durability: DurabilityMode) -> Config {
    let mut c = Config::default();
    c.server.addr = "127.0.0.1:0".parse().expect("literal");
    c.pubsub.api_access_token = Some(Secret::new("bench"));
    c.pubsub.metrics_access_token = Some(Secret::new("bench"));
    c.kv.enabled = Flag(true);
    c.kv.dsn = dir.to_path_buf();
    c.kv.engine = engine;
    c.kv.durability = durability;
    c.kv.retention.max_events = sser::config::Count(0);
    c
}

/// Binds a server on `dir`, retrying while a previous one in this process
/// is still releasing the store (its writer thread closes the files).
async fn open(dir: &Path, engine: KvEngine, durability: DurabilityMode) -> Server {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Server::bind(config(dir, engine, durability)).await {
            Ok(server) => return server,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot open the store: {e}"),
        }
    }
}

async fn topics(hub: &Arc<Hub>, n: usize, retention: Option<Retention>) -> Vec<Arc<Topic>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            hub.create_topic(NewTopic {
                persist: true,
                retention,
            })
            .await
            .expect("create topic"),
        );
    }
    out
}

/// `total` publishes of `size`-byte messages by 64 concurrent publishers,
/// spread round-robin over `topics`; returns publishes per second.
async fn storm(hub: &Arc<Hub>, topics: &[Arc<Topic>], total: usize, size: usize) -> f64 {
    let data = "x".repeat(size);
    let per = total / PUBLISHERS;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let hub = hub.clone();
        let topics = topics.to_vec();
        let data = data.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                let topic = &topics[(p + i * PUBLISHERS) % topics.len()];
                let event = NewEvent::new(None, None, data.clone()).expect("valid event");
                hub.publish(topic, event).await.expect("publish");
            }
        }));
    }
    for t in tasks {
        t.await.expect("publisher");
    }
    (per * PUBLISHERS) as f64 / start.elapsed().as_secs_f64()
}

fn disk_usage(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut apparent = 0;
    let mut allocated = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                apparent += meta.len();
                allocated += meta.blocks() * 512;
            }
        }
    }
    (apparent, allocated)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

#[tokio::main]
async fn main() {
    let (engine, name) = match std::env::args().nth(1).as_deref() {
        Some("sled") => (KvEngine::Sled, "sled"),
        Some("redb") | None => (KvEngine::Redb, "redb"),
        Some(other) => panic!("engine must be redb or sled, got {other}"),
    };
    let scale: usize = std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-persist");
    std::fs::create_dir_all(&root).expect("bench dir");
    println!("engine: {name}");

    // Durable (sync) publishes: 1 topic, then 100 topics.
    for n_topics in [1, 100] {
        let dir = tempfile::tempdir_in(&root).expect("tempdir");
        let server = open(dir.path(), engine, DurabilityMode::Sync).await;
        let hub = server.hub().clone();
        let ts = topics(&hub, n_topics, None).await;
        storm(&hub, &ts, 2_048, 256).await; // warm-up
        let rate = storm(&hub, &ts, 20_480 * scale, 256).await;
        println!(
            "{name}: durable, {n_topics} topic(s), {PUBLISHERS} publishers: {rate:.0} publishes/s"
        );
    }

    // Relaxed mode.
    for n_topics in [1, 100] {
        let dir = tempfile::tempdir_in(&root).expect("tempdir");
        let server = open(dir.path(), engine, DurabilityMode::Relaxed).await;
        let hub = server.hub().clone();
        let ts = topics(&hub, n_topics, None).await;
        storm(&hub, &ts, 2_048, 256).await;
        let rate = storm(&hub, &ts, 102_400 * scale, 256).await;
        println!(
            "{name}: relaxed, {n_topics} topic(s), {PUBLISHERS} publishers: {rate:.0} publishes/s"
        );
    }

    // Replay of 100,000 events from disk after a restart.
    {
        let dir = tempfile::tempdir_in(&root).expect("tempdir");
        let id = {
            let server = open(dir.path(), engine, DurabilityMode::Relaxed).await;
            let hub = server.hub().clone();
            let ts = topics(&hub, 1, None).await;
            storm(&hub, &ts, 100_032, 256).await;
            hub.flush().await.expect("flush");
            ts[0].id.to_string()
        };
        let server = open(dir.path(), engine, DurabilityMode::Sync).await;
        let hub = server.hub().clone();
        let topic = hub.get(&id).expect("topic reloaded");
        let start = Instant::now();
        let sub = hub
            .subscribe(topic, Resume::Earliest)
            .await
            .expect("subscribe");
        let mut stream = Box::pin(sub.into_stream());
        let mut events = 0usize;
        while events < 100_032 {
            match stream.next().await {
                Some(Ok(frame)) if frame.starts_with(b"id: ") => events += 1,
                Some(_) => {}
                None => break,
            }
        }
        let took = start.elapsed();
        println!(
            "{name}: replay of {events} events from disk after restart: {:.0} ms ({:.0} events/s)",
            took.as_secs_f64() * 1000.0,
            events as f64 / took.as_secs_f64()
        );
    }

    // Disk use after 1,000,000 x 256-byte events with a 5,000-event cap, in
    // the default (sync) durability mode.
    {
        let dir = tempfile::tempdir_in(&root).expect("tempdir");
        let total = 1_000_000usize;
        let (apparent, allocated, rate) = {
            let server = open(dir.path(), engine, DurabilityMode::Sync).await;
            let hub = server.hub().clone();
            let ts = topics(
                &hub,
                1,
                Some(Retention {
                    max_events: Some(5_000),
                    ..Retention::default()
                }),
            )
            .await;
            let mut peak = 0u64;
            let start = Instant::now();
            for _ in 0..10 {
                storm(&hub, &ts, total / 10, 256).await;
                peak = peak.max(disk_usage(dir.path()).0);
            }
            let rate = total as f64 / start.elapsed().as_secs_f64();
            hub.flush().await.expect("flush");
            println!(
                "{name}: retention run: held {} events; peak apparent size during the run {}",
                ts[0].history_usage().0,
                mib(peak)
            );
            let (a, b) = disk_usage(dir.path());
            (a, b, rate)
        };
        println!(
            "{name}: disk after {total} x 256 B events, cap 5,000 (sync, {rate:.0}/s): apparent {}, allocated {}",
            mib(apparent),
            mib(allocated)
        );
        // And after a restart (sled compacts on open; redb reuses pages).
        let server = open(dir.path(), engine, DurabilityMode::Sync).await;
        drop(server);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (a, b) = disk_usage(dir.path());
        println!(
            "{name}: same store after reopen: apparent {}, allocated {}",
            mib(a),
            mib(b)
        );
    }
}
