//! Redis killed in the middle of a publishing storm and restarted on the
//! same data (append-only file, synced on every write): publishes answer
//! 503 while it is away (a JSON error, never a 201 for an event that is
//! not stored), no node falls over, and every subscriber on every node gets
//! every acknowledged event exactly once, in order, with no gap.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::common::*;
use crate::{Cluster, prometheus_sum, readyz, wait_for_topic};

/// What one publisher saw.
#[derive(Default)]
struct Tally {
    /// Positions acknowledged with a 201, per topic index.
    acked: Mutex<Vec<Vec<u64>>>,
    refused: AtomicU64,
    /// 201s since the storm's outage ended.
    after_recovery: AtomicU64,
}

async fn publisher(
    node: Api,
    topics: Vec<String>,
    me: usize,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    recovered: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let which = (n as usize + me) % topics.len();
        n += 1;
        let event = json!({"message": format!("p{me}-{n}")});
        let Ok(resp) = node.try_publish(&topics[which], event).await else {
            panic!("the node stopped answering HTTP");
        };
        match resp.status().as_u16() {
            201 => {
                let body: Value = resp.json().await.expect("publish body");
                let id = body["event"]["id"].as_str().expect("id");
                tally.acked.lock()[which].push(id.parse().expect("a sequence"));
                if recovered.load(Ordering::Relaxed) {
                    tally.after_recovery.fetch_add(1, Ordering::Relaxed);
                }
            }
            503 => {
                let body: Value = resp.json().await.expect("a JSON error");
                assert!(body.to_string().contains("Redis"), "{body}");
                tally.refused.fetch_add(1, Ordering::Relaxed);
            }
            other => panic!("publish answered {other}"),
        }
    }
}

#[tokio::test]
async fn redis_killed_mid_storm_loses_no_acknowledged_event() {
    const TOPICS: usize = 2;
    let mut cluster = Cluster::start_with(2, &[]);
    let nodes = [cluster.node(0), cluster.node(1)];
    let mut topics = Vec::new();
    let mut subscribers = Vec::new();
    for _ in 0..TOPICS {
        let (topic, token) = nodes[0].create_topic(json!({})).await;
        wait_for_topic(&nodes[1], &topic).await;
        let mut on_nodes = Vec::new();
        for node in &nodes {
            on_nodes.push(node.subscribe(&topic, &token).await);
        }
        topics.push(topic);
        subscribers.push(on_nodes);
    }

    let tally = Arc::new(Tally {
        acked: Mutex::new(vec![Vec::new(); TOPICS]),
        ..Tally::default()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let recovered = Arc::new(AtomicBool::new(false));
    let mut publishers = Vec::new();
    for me in 0..4 {
        publishers.push(tokio::spawn(publisher(
            nodes[me % 2].clone(),
            topics.clone(),
            me,
            tally.clone(),
            stop.clone(),
            recovered.clone(),
        )));
    }
    let acked_total = |tally: &Tally| tally.acked.lock().iter().map(Vec::len).sum::<usize>();
    wait_until("the storm to get going", || async {
        acked_total(&tally) >= 100
    })
    .await;

    cluster.redis.stop();
    wait_until("publishes to be refused", || async {
        tally.refused.load(Ordering::Relaxed) >= 20
    })
    .await;
    cluster.redis.restart();
    wait_until("/readyz to recover", || async {
        readyz(&nodes[0]).await.0 == 200 && readyz(&nodes[1]).await.0 == 200
    })
    .await;
    recovered.store(true, Ordering::Relaxed);
    wait_until("the storm to go on after Redis returned", || async {
        tally.after_recovery.load(Ordering::Relaxed) >= 100
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for publisher in publishers {
        publisher.await.expect("publisher task");
    }

    let acked = tally.acked.lock().clone();
    for (which, on_nodes) in subscribers.iter_mut().enumerate() {
        // The last publish of each topic was acknowledged: it is the end.
        let last = *acked[which].iter().max().expect("some publishes");
        for stream in on_nodes.iter_mut() {
            let mut got = Vec::new();
            while got.last() != Some(&last) {
                let event = stream.expect_event().await;
                assert!(
                    !event.event.starts_with("sser."),
                    "nothing was lost: {event:?}"
                );
                got.push(event.id.parse::<u64>().expect("a sequence"));
            }
            // Positions are dense: everything Redis stored, once, in order
            // (events whose publish was cut off may be among them).
            let expected: Vec<u64> = (1..=last).collect();
            assert_eq!(
                got, expected,
                "topic {which}: no gap, no duplicate, in order"
            );
            for id in &acked[which] {
                assert!(got.contains(id), "acknowledged {id} was delivered");
            }
        }
    }
    for node in &nodes {
        let alive = node
            .http
            .get(node.url("/healthz"))
            .send()
            .await
            .expect("healthz");
        assert_eq!(alive.status(), 200, "no node fell over");
        assert!(
            prometheus_sum(node, "sser_cluster_redis_errors_total").await > 0.0,
            "the outage's failures are counted"
        );
    }
    let text = crate::prometheus_text(&nodes[0]).await;
    assert!(
        text.lines().any(
            |l| l.starts_with("sser_cluster_redis_errors_total{op=\"publish\"}")
                && !l.ends_with(" 0")
        ),
        "publish failures are counted under their op"
    );
}
