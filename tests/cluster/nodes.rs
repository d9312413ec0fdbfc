//! Node liveness: every node's `/metrics` and `/api/v1/metrics` show every
//! live node; one that stops gracefully drops out of the others' view at
//! once, one killed with `kill -9` within its heartbeat's TTL.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;
use crate::{Cluster, prometheus, prometheus_sum, prometheus_text};

/// Short, so a dead node's record expires within the test: heartbeats
/// every 2 s.
const TTL: Duration = Duration::from_secs(6);

/// `/api/v1/metrics`' `cluster` object.
async fn cluster_view(node: &Api) -> Value {
    let body: Value = node.get_json("/api/v1/metrics", METRICS_TOKEN).await;
    body["cluster"].clone()
}

/// The node ids `/metrics` lists, sorted, with what `sser_cluster_nodes`
/// says (they must agree).
async fn seen(node: &Api) -> Vec<String> {
    let text = prometheus_text(node).await;
    let mut ids: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("sser_cluster_node_connections{node=\""))
        .filter_map(|l| l.split('"').next())
        .map(str::to_string)
        .collect();
    ids.sort();
    // From the same scrape: a heartbeat between two would change the view.
    let gauge = text
        .lines()
        .find_map(|l| l.strip_prefix("sser_cluster_nodes "))
        .and_then(|v| v.trim().parse::<usize>().ok());
    assert_eq!(gauge, Some(ids.len()), "{text}");
    ids
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn every_node_sees_the_live_nodes_and_loses_stopped_and_killed_ones() {
    let ttl = format!("{}s", TTL.as_secs());
    let mut cluster = Cluster::start_with(3, &[("SSER_CLUSTER_NODE_TTL", ttl.as_str())]);
    let apis: Vec<Api> = (0..3).map(|i| cluster.node(i)).collect();
    let mut ids = Vec::new();
    for api in &apis {
        let view = cluster_view(api).await;
        ids.push(view["node"].as_str().expect("node id").to_string());
    }
    let all = sorted(&[&ids[0], &ids[1], &ids[2]]);
    assert_eq!(all.len(), 3);
    assert!(
        all[0] != all[1] && all[1] != all[2],
        "ids are unique: {all:?}"
    );
    wait_until("every node to see all three", || async {
        for api in &apis {
            if seen(api).await != all {
                return false;
            }
        }
        true
    })
    .await;

    // Connection counts travel with the heartbeat.
    let (topic, token) = apis[0].create_topic(json!({})).await;
    let _following = apis[0].subscribe(&topic, &token).await;
    wait_until("node 3 to see node 1's connection", || async {
        let view = cluster_view(&apis[2]).await;
        view["nodes"].as_array().is_some_and(|nodes| {
            nodes
                .iter()
                .any(|n| n["id"] == ids[0].as_str() && n["connections"] == 1)
        })
    })
    .await;
    let view = cluster_view(&apis[1]).await;
    assert!(
        view["redis_roundtrip"]["count"].as_u64() > Some(0),
        "{view}"
    );
    assert!(
        view["redis_roundtrip"]["p50_seconds"].as_f64() > Some(0.0),
        "{view}"
    );
    assert_eq!(view["redis_errors"], 0, "{view}");
    let addr = view["nodes"][0]["addr"].as_str().unwrap_or("");
    assert!(addr.starts_with("127.0.0.1:"), "{view}");
    assert!(prometheus(&apis[1], "sser_cluster_redis_roundtrip_seconds_count").await > 0.0);
    assert_eq!(
        prometheus_sum(&apis[1], "sser_cluster_redis_errors_total").await,
        0.0
    );

    // A graceful stop: gone at once, not after the TTL nor the next beat.
    assert!(cluster.nodes[2].terminate().success());
    let left = Instant::now();
    let two = sorted(&[&ids[0], &ids[1]]);
    wait_until("the stopped node to leave the others' view", || async {
        seen(&apis[0]).await == two && seen(&apis[1]).await == two
    })
    .await;
    assert!(
        left.elapsed() < TTL / 4,
        "a graceful leave is seen at once, took {:?}",
        left.elapsed()
    );

    // `kill -9`: no leave; its record expires within the TTL, and the
    // survivor's next heartbeat (a third of the TTL later at most) drops it.
    cluster.nodes[1].kill9();
    let killed = Instant::now();
    let one = vec![ids[0].clone()];
    wait_until("the killed node to leave the survivor's view", || async {
        seen(&apis[0]).await == one
    })
    .await;
    assert!(
        killed.elapsed() <= TTL + TTL / 3 + Duration::from_secs(1),
        "a dead node is dropped within the TTL, took {:?}",
        killed.elapsed()
    );
}

#[tokio::test]
async fn a_single_node_shows_no_cluster() {
    let server = TestServer::start().await;
    let api = server.api();
    let body: Value = api.get_json("/api/v1/metrics", METRICS_TOKEN).await;
    assert!(body.get("cluster").is_none(), "{body}");
    let text = prometheus_text(&api).await;
    assert!(!text.contains("sser_cluster_nodes"), "{text}");
}
