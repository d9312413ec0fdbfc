//! Redis goes away and comes back: publishes answer 503 (never a delivery
//! to one node alone), `/readyz` fails, the nodes and their connections
//! stay up, and after Redis returns the connected clients get what is
//! published from then on, with no gap and no duplicate. What Redis
//! trimmed or lost meanwhile is reported (`sser.history_truncated`), and
//! positions never repeat, even when Redis comes back empty.

use serde_json::{Value, json};

use crate::common::*;
use crate::{Cluster, readyz, signal, wait_for_topic};

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

/// A node that could not hear Redis while the topic's history was trimmed
/// past what its followers had: they get `sser.history_truncated` (as on a
/// single node), then what is held, never a silent jump.
#[tokio::test]
async fn followers_of_a_node_cut_off_while_history_was_trimmed_are_told() {
    let cluster = Cluster::start_with(2, &[]);
    let (a, b) = (cluster.node(0), cluster.node(1));
    let (topic, token) = a
        .create_topic(json!({"pubsub": {"retention": {"max_events": 3}}}))
        .await;
    wait_for_topic(&b, &topic).await;
    let mut on_b = b.subscribe(&topic, &token).await;
    a.publish_ok(&topic, json!({"message": "m1"})).await;
    assert_eq!(on_b.expect_event().await.id, "1");

    // B is frozen and its pub/sub connection dropped: it hears nothing of
    // what A publishes meanwhile, and Redis keeps only the last three.
    signal(&cluster.nodes[1], "STOP");
    let mut redis = cluster.redis.client();
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut redis)
        .expect("CLIENT KILL");
    for n in 2..=8 {
        a.publish_ok(&topic, json!({"message": format!("m{n}")}))
            .await;
    }
    signal(&cluster.nodes[1], "CONT");

    let notice = on_b.expect_event().await;
    assert_eq!(notice.event, "sser.history_truncated", "{notice:?}");
    let body: Value = serde_json::from_str(&notice.data).expect("notice JSON");
    assert_eq!(body["oldest_retained_seq"], 6, "{body}");
    let ids: Vec<String> = on_b.take(3).await.into_iter().map(|e| e.id).collect();
    assert_eq!(ids, ["6", "7", "8"]);
    a.publish_ok(&topic, json!({"message": "m9"})).await;
    assert_eq!(on_b.expect_event().await.id, "9", "live again, in order");
}

/// Publishes until a 201 and returns the position. The first request on
/// a connection that has to reconnect after Redis came back may get a 503
/// (nothing was stored): clients retry, as the message tells them.
async fn publish_retrying(node: &Api, topic: &str) -> u64 {
    let taken = std::sync::Arc::new(std::sync::Mutex::new(None::<u64>));
    wait_until("a publish to be taken", || {
        let (node, topic, taken) = (node.clone(), topic.to_string(), taken.clone());
        async move {
            let resp = node.publish(&topic, json!({"message": "after"})).await;
            if resp.status() != 201 {
                assert_eq!(resp.status(), 503);
                return false;
            }
            let body: Value = resp.json().await.expect("publish body");
            let id = body["event"]["id"].as_str().and_then(|id| id.parse().ok());
            *taken.lock().expect("lock") = id;
            true
        }
    })
    .await;
    let taken = *taken.lock().expect("lock");
    taken.expect("a sequence")
}

/// Redis comes back with nothing (no persistence): positions never repeat
/// (the new epoch starts above every earlier one), the registry is written
/// back from what the nodes hold, and followers and resuming clients are
/// told that history was lost.
#[tokio::test]
async fn redis_restarted_empty_never_reuses_a_position() {
    let mut cluster = Cluster::start_with(2, &[]);
    let (a, b) = (cluster.node(0), cluster.node(1));
    let (topic, token) = a.create_topic(json!({})).await;
    wait_for_topic(&b, &topic).await;
    let mut on_a = a.subscribe(&topic, &token).await;
    let mut on_b = b.subscribe(&topic, &token).await;
    for n in 1..=3 {
        a.publish_ok(&topic, json!({"message": format!("m{n}")}))
            .await;
    }
    for stream in [&mut on_a, &mut on_b] {
        let ids: Vec<String> = stream.take(3).await.into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["1", "2", "3"]);
    }

    cluster.redis.restart_empty();
    wait_until("/readyz to recover", || async {
        readyz(&a).await.0 == 200 && readyz(&b).await.0 == 200
    })
    .await;
    // Both nodes hold the topic: it is back, and B (which did not create
    // it) publishes to it.
    let first = publish_retrying(&b, &topic).await;
    assert!(first > 3, "position {first} would repeat an earlier one");
    let next = publish_retrying(&a, &topic).await;
    assert_eq!(next, first + 1, "dense again within the new epoch");
    for stream in [&mut on_a, &mut on_b] {
        let notice = stream.expect_event().await;
        assert_eq!(notice.event, "sser.history_truncated", "{notice:?}");
        let ids: Vec<String> = stream.take(2).await.into_iter().map(|e| e.id).collect();
        assert_eq!(ids, [first.to_string(), next.to_string()]);
    }
    // A client that kept an id of the lost history is told so, then gets
    // what there is.
    let mut resumed = b
        .subscribe_with(&topic, &token, &[("Last-Event-ID", "2")])
        .await;
    assert_eq!(resumed.expect_event().await.event, "sser.history_truncated");
    assert_eq!(resumed.expect_event().await.id, first.to_string());
    // Every node still knows the topic.
    for node in [&a, &b] {
        let status = node
            .http
            .get(node.url(&format!("/api/v1/pubsubs/{topic}")))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .expect("GET topic")
            .status();
        assert_eq!(status, 200);
    }
}

/// A node cut off from Redis while another creates and deletes topics
/// learns of both when it is back, from the registry's change log: no
/// node reads the whole registry again on a reconnect.
#[tokio::test]
async fn a_node_cut_off_catches_up_on_topics_created_and_deleted_meanwhile() {
    let cluster = Cluster::start_with(2, &[]);
    let (a, b) = (cluster.node(0), cluster.node(1));
    let (old, token) = a.create_topic(json!({})).await;
    wait_for_topic(&b, &old).await;
    let mut on_b = b.subscribe(&old, &token).await;
    assert_eq!(on_b.status, 200);
    let mut redis = cluster.redis.client();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut redis)
        .expect("CONFIG RESETSTAT");

    signal(&cluster.nodes[1], "STOP");
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut redis)
        .expect("CLIENT KILL");
    let (new, _) = a.create_topic(json!({})).await;
    assert_eq!(a.delete_topic(&old).await.status(), 204);
    signal(&cluster.nodes[1], "CONT");

    // `next` fails the test if the stream does not end within the deadline.
    while on_b.next().await.is_some() {}
    wait_for_topic(&b, &new).await;
    wait_until("B to forget the deleted topic", || async {
        b.http
            .get(b.url(&format!("/api/v1/pubsubs/{old}")))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .is_ok_and(|r| r.status() == 404)
    })
    .await;
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut redis)
        .expect("INFO commandstats");
    assert!(
        !stats.contains("cmdstat_hgetall"),
        "a reconnect read the whole registry: {stats}"
    );
}
