//! `fanout`: T topics, N subscribers spread over them (subscriber i listens
//! to topic i mod T), P publishers sending M events of S bytes at R events/s
//! (0 = each publisher as fast as its request/response loop goes).
//!
//! With `--topics-per-subscriber K` (our API only), subscriber i follows the
//! K topics i, i+1, … i+K-1 (mod T) on ONE connection
//! (`GET /api/v1/events?topic=…`), so every event reaches K× as many
//! subscribers' connections as topics are shared.
//!
//! With `--to users` (our API, issue 11), subscriber i is identity i on
//! `GET /api/v1/stream` and each event is a `POST /api/v1/send` to one user
//! (T = N: "topic" i is user i), so every event has one follower; with
//! `--to app` the same identities follow one application and every send
//! reaches all of them (T = 1). See [`crate::identity`].
//!
//! Event k (0 ≤ k < M) is sent by publisher k mod P to topic k mod T (with
//! `--random-topic`, a topic drawn by the publisher's seeded generator); its
//! payload is `sb:<k>:<send time ns>:<padding to S bytes>`. Every subscriber of
//! topic t must receive every event to t that the server acknowledged; the
//! difference is loss. Per publisher, k must increase on every stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::http::{Conn, connect};
use crate::stats::{self, Sharded, new_histogram, now_ns};
use crate::sub::{self, Accounting, Live};
use crate::target::{Address, Target, source_ip};
use crate::{Common, Outcome};

#[derive(clap::Args, Debug, Clone)]
pub struct FanoutArgs {
    /// Topics (T).
    #[arg(long, default_value_t = 1)]
    pub topics: usize,
    /// Subscribers in all (N), spread round-robin over the topics.
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
    /// Publishers (P), each with its own keep-alive connection.
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Events to publish in all (M).
    #[arg(long, default_value_t = 1000)]
    pub events: u64,
    /// Payload size in bytes (S); at least the header `sb:<k>:<ns>:`.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Target publish rate in events/s over all publishers (R); 0 = as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// After the last publish, how long to wait without progress before
    /// counting what is missing as lost.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Topics each subscriber follows on one connection (K); more than 1
    /// needs our API's multi-topic subscribe.
    #[arg(long, default_value_t = 1)]
    pub topics_per_subscriber: usize,
    /// Pause between "all subscribed" and the first publish.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// Where events go: topics; or N identities on `GET /api/v1/stream`
    /// with each event sent to one user (`users`: --topics is ignored, each
    /// user is a target) or to the whole application (`app`).
    #[arg(long, value_enum, default_value_t = Address::Topics)]
    pub to: Address,
    /// Send each event to a random topic (or user) instead of k mod T.
    #[arg(long)]
    pub random_topic: bool,
    /// The server's pid: its CPU time (and its children's) while events
    /// are published and delivered, apart from set-up and connects.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

pub async fn run(c: &Common, a: &FanoutArgs) -> Result<Outcome, String> {
    if a.topics == 0 || a.publishers == 0 || a.topics_per_subscriber == 0 {
        return Err("--topics, --publishers and --topics-per-subscriber must be at least 1".into());
    }
    if a.topics_per_subscriber > a.topics {
        return Err("--topics-per-subscriber cannot exceed --topics".into());
    }
    if a.to != Address::Topics && a.topics_per_subscriber != 1 {
        return Err("--topics-per-subscriber is for topics, not identities".into());
    }
    let spec = c.target_spec();
    let (target, mint_secs) = match a.to {
        Address::Topics => (Target::setup(&spec, a.topics).await?, None),
        to => {
            let (target, secs) = Target::identities(&spec, to, a.subscribers).await?;
            (target, Some(secs))
        }
    };
    let target = Arc::new(target);
    // Identities: one target per user, or one for the application.
    let topics = target.topics.len();
    let spread = c.spread(a.subscribers);

    // 1. Subscribe everyone, a bounded number of connects in flight.
    let (stop_tx, stop_rx) = watch::channel(false);
    let acc = Arc::new(Accounting {
        publishers: a.publishers,
        hist: Arc::new(Sharded::new(64)),
        live: Arc::new(Live::default()),
        events: None,
    });
    let gate = Arc::new(Semaphore::new(c.connect_concurrency.max(1)));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<(Vec<usize>, Result<(), String>)>();
    let mut tasks = Vec::with_capacity(a.subscribers);
    let t_connect = Instant::now();
    for i in 0..a.subscribers {
        let followed: Vec<usize> = (0..a.topics_per_subscriber)
            .map(|j| (i + j) % topics)
            .collect();
        let request = target.subscribe_request_for(i, &followed)?;
        let gate = gate.clone();
        let ready = ready_tx.clone();
        let acc = acc.clone();
        let stop = stop_rx.clone();
        let source = source_ip(i, spread);
        let addr = target.sub_addr(i);
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.ok();
            let opened = sub::open_request_at(addr, &request, source, 4096).await;
            drop(permit);
            match opened {
                Ok(s) => {
                    let _ = ready.send((followed, Ok(())));
                    Some(sub::run(s, i, acc, stop).await)
                }
                Err(e) => {
                    let _ = ready.send((followed, Err(e)));
                    None
                }
            }
        }));
    }
    drop(ready_tx);
    let mut per_topic = vec![0u64; topics];
    let mut connect_errors = 0u64;
    let mut first_error = None;
    // Every task reports once; the senders stay alive in the running tasks.
    for _ in 0..a.subscribers {
        let Some((followed, r)) = ready_rx.recv().await else {
            break;
        };
        match r {
            Ok(()) => {
                for topic in followed {
                    per_topic[topic] += 1;
                }
            }
            Err(e) => {
                connect_errors += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    let connect_secs = t_connect.elapsed().as_secs_f64();
    let subscribed = (a.subscribers as u64).saturating_sub(connect_errors);
    tokio::time::sleep(a.settle).await;

    // 2. Publish.
    let cpu0 = stats::cpu_seconds();
    let server_cpu0 = a.server_pid.and_then(stats::process_cpu_secs);
    let ok_per_topic: Arc<Vec<AtomicU64>> =
        Arc::new((0..topics).map(|_| AtomicU64::new(0)).collect());
    let pub_errors = Arc::new(AtomicU64::new(0));
    let t_pub = Instant::now();
    let mut pubs = Vec::new();
    for p in 0..a.publishers {
        let target = target.clone();
        let ok = ok_per_topic.clone();
        let errors = pub_errors.clone();
        let (events, publishers, size, rate, random_topic) =
            (a.events, a.publishers, a.size, a.rate, a.random_topic);
        let mut rng = StdRng::seed_from_u64(c.seed.wrapping_add(p as u64));
        let padding: String = (0..size)
            .map(|_| rng.sample(rand::distributions::Alphanumeric) as char)
            .collect();
        pubs.push(tokio::spawn(async move {
            let mut hist = new_histogram();
            let mut conn: Option<Conn> = None;
            let start = Instant::now();
            let mut j = 0u64;
            let mut k = p as u64;
            while k < events {
                if rate > 0.0 {
                    let due = start + Duration::from_secs_f64(k as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let topic = if random_topic {
                    rng.gen_range(0..topics)
                } else {
                    (k % topics as u64) as usize
                };
                let sent = now_ns();
                let head = format!("sb:{k}:{sent}:");
                let pad = size.saturating_sub(head.len());
                let payload = format!("{head}{}", &padding[..pad]);
                let req = target.publish_request(topic, &payload);
                let result = async {
                    if conn.is_none() {
                        conn = Some(Conn::new(connect(target.pub_url.addr, None).await?, 4096));
                    }
                    let c = conn.as_mut().expect("just set");
                    let (head, _) = c.roundtrip(&req).await?;
                    if !head.keep_alive {
                        conn = None;
                    }
                    Ok::<u16, std::io::Error>(head.status)
                }
                .await;
                match result {
                    Ok(200..=299) => {
                        ok[topic].fetch_add(1, Ordering::Relaxed);
                        hist.saturating_record(((now_ns() - sent) / 1000).max(1));
                    }
                    Ok(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        conn = None;
                    }
                }
                j += 1;
                k = p as u64 + j * publishers as u64;
            }
            hist
        }));
    }
    let mut pub_hist = new_histogram();
    for p in pubs {
        if let Ok(h) = p.await {
            let _ = pub_hist.add(&h);
        }
    }
    let pub_secs = t_pub.elapsed().as_secs_f64();

    // 3. Drain: wait until everything expected arrived, or nothing moves.
    let expected: u64 = ok_per_topic
        .iter()
        .zip(&per_topic)
        .map(|(ok, subs)| ok.load(Ordering::Relaxed) * subs)
        .sum();
    let mut last = acc.live.received.load(Ordering::Relaxed);
    let mut last_move = Instant::now();
    loop {
        let now = acc.live.received.load(Ordering::Relaxed);
        if now >= expected || acc.live.ended.load(Ordering::Relaxed) >= subscribed {
            break;
        }
        if now != last {
            last = now;
            last_move = Instant::now();
        } else if last_move.elapsed() > a.drain_timeout {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let deliver_secs = t_pub.elapsed().as_secs_f64();
    let cpu = stats::cpu_seconds() - cpu0;
    let server_cpu = match (server_cpu0, a.server_pid.and_then(stats::process_cpu_secs)) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    let _ = stop_tx.send(true);
    let mut received = 0u64;
    let mut out_of_order = 0u64;
    let mut lagged = 0u64;
    let mut ended_early = 0u64;
    let mut read_errors = 0u64;
    for t in tasks {
        if let Ok(Some(r)) = t.await {
            received += r.received;
            out_of_order += r.out_of_order;
            lagged += u64::from(r.lagged);
            ended_early += u64::from(r.ended_early);
            read_errors += u64::from(r.error.is_some());
        }
    }
    target.teardown().await;
    let published: u64 = ok_per_topic.iter().map(|o| o.load(Ordering::Relaxed)).sum();
    let lost = expected.saturating_sub(received);
    let hist = acc.hist.merged();
    let deliveries_per_sec = received as f64 / deliver_secs;
    let report: Value = json!({
        "scenario": "fanout",
        "target": c.label(),
        "params": {
            "to": format!("{:?}", a.to).to_lowercase(), "random_topic": a.random_topic,
            "topics": topics, "subscribers": a.subscribers, "publishers": a.publishers,
            "topics_per_subscriber": a.topics_per_subscriber,
            "events": a.events, "size": a.size, "rate": a.rate, "seed": c.seed,
            "threads": c.threads, "source_ips": spread.max(1),
        },
        "mint_secs": mint_secs,
        "subscribed": subscribed,
        "connect_errors": connect_errors,
        "first_connect_error": first_error,
        "connect_secs": connect_secs,
        "published": published,
        "publish_errors": pub_errors.load(Ordering::Relaxed),
        "publish_secs": pub_secs,
        "publishes_per_sec": published as f64 / pub_secs,
        "publish_rtt": stats::latency_json(&pub_hist),
        "expected": expected,
        "received": received,
        "lost": lost,
        "lagged_disconnects": lagged,
        "ended_early": ended_early,
        "read_errors": read_errors,
        "out_of_order": out_of_order,
        "deliver_secs": deliver_secs,
        "deliveries_per_sec": deliveries_per_sec,
        "latency": stats::latency_json(&hist),
        "bench_cpu_secs": cpu,
        "server_deliver_cpu_secs": server_cpu,
        "server_cpu_us_per_publish": server_cpu.filter(|_| published > 0)
            .map(|s| s * 1e6 / published as f64),
        "server_cpu_us_per_delivery": server_cpu.filter(|_| received > 0)
            .map(|s| s * 1e6 / received as f64),
        "bench_cpu_percent_of_one_core": 100.0 * cpu / deliver_secs,
        "bench_rss_kib": stats::self_rss_kib(),
    });
    let failed = lost > 0
        || connect_errors > 0
        || out_of_order > 0
        || lagged > 0
        || pub_errors.load(Ordering::Relaxed) > 0;
    Ok(Outcome { report, failed })
}
