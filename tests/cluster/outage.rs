//! Redis goes away and comes back: publishes answer 503 (never a delivery
//! to one node alone), `/readyz` fails, the nodes and their connections
//! stay up, and after Redis returns the connected clients get what is
//! published from then on, with no gap and no duplicate.

use serde_json::{Value, json};

use crate::common::*;
use crate::{Cluster, readyz, wait_for_topic};

#[tokio::test]
async fn redis_outage_means_503_and_recovery_without_gap() {
    let mut cluster = Cluster::start();
    let (a, b) = (cluster.node(0), cluster.node(1));
    let (topic, token) = a.create_topic(json!({})).await;
    wait_for_topic(&b, &topic).await;
    let mut on_b = b.subscribe(&topic, &token).await;
    let mut on_a = a.subscribe(&topic, &token).await;
    a.publish_ok(&topic, json!({"message": "before"})).await;
    assert_eq!(on_b.expect_event().await.id, "1");
    assert_eq!(on_a.expect_event().await.id, "1");
    assert_eq!(readyz(&a).await.0, 200);

    cluster.redis.stop();
    let resp = a.publish(&topic, json!({"message": "during"})).await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.expect("JSON error");
    let message = body.to_string();
    assert!(message.contains("Redis"), "{message}");
    wait_until("/readyz to fail on every node", || async {
        readyz(&a).await.0 == 503 && readyz(&b).await.0 == 503
    })
    .await;
    let (_, body) = readyz(&b).await;
    assert_eq!(body["checks"]["redis"]["ok"], false, "{body}");
    for node in [&a, &b] {
        let alive = node
            .http
            .get(node.url("/healthz"))
            .send()
            .await
            .expect("healthz");
        assert_eq!(alive.status(), 200, "nodes stay alive");
    }

    cluster.redis.restart();
    wait_until("/readyz to recover", || async {
        readyz(&a).await.0 == 200 && readyz(&b).await.0 == 200
    })
    .await;
    for n in 2..=21 {
        let id = a
            .publish_ok(&topic, json!({"message": format!("after{n}")}))
            .await;
        assert_eq!(id, n.to_string());
    }
    for stream in [&mut on_b, &mut on_a] {
        let events = stream.take(20).await;
        let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        let expected: Vec<String> = (2..=21).map(|n| n.to_string()).collect();
        assert_eq!(ids, expected, "no gap, no duplicate");
    }
}

#[tokio::test]
async fn a_node_that_cannot_reach_redis_refuses_to_start_naming_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("redis://user:hunter2@127.0.0.1:{}/0", free_port());
    let (status, stderr) = ServerProcess::start_failing(
        dir.path(),
        &[
            ("SSER_CLUSTER_REDIS_URL", url.as_str()),
            ("SSER_CLUSTER_REDIS_TIMEOUT", "500ms"),
        ],
    );
    assert!(!status.success());
    assert!(stderr.contains("cluster.redis.url"), "{stderr}");
    assert!(stderr.contains("SSER_CLUSTER_REDIS_URL"), "{stderr}");
    assert!(
        !stderr.contains("hunter2"),
        "the password is never shown: {stderr}"
    );
}
