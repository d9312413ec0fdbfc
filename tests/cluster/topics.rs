//! Topics across nodes: created on one, served by all, in one order, with
//! history any node can resume from, deleted everywhere.

use serde_json::json;

use crate::common::*;
use crate::{Cluster, prometheus, wait_for_topic};

#[tokio::test]
async fn publish_on_one_node_reaches_every_node_in_order_and_delete_ends_them() {
    let cluster = Cluster::start();
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let (topic, token) = a.create_topic(json!({})).await;
    wait_for_topic(&b, &topic).await;

    // C is asked at once, before the create notice may have reached it.
    let mut on_c = c.subscribe(&topic, &token).await;
    let mut on_b = b.subscribe(&topic, &token).await;
    let mut on_a = a.subscribe(&topic, &token).await;
    assert_eq!((on_b.status.as_u16(), on_c.status.as_u16()), (200, 200));
    for n in 1..=30 {
        let id = a
            .publish_ok(&topic, json!({"message": format!("m{n}")}))
            .await;
        assert_eq!(id, n.to_string(), "positions are dense, as on one node");
    }
    // Publishes on B land in the same order.
    b.publish_ok(&topic, json!({"message": "from b", "id": "custom"}))
        .await;
    for stream in [&mut on_a, &mut on_b, &mut on_c] {
        let events = stream.take(31).await;
        for (i, event) in events.iter().take(30).enumerate() {
            assert_eq!(event.id, (i + 1).to_string());
            assert_eq!(event.data, format!("m{}", i + 1));
        }
        assert_eq!(
            (events[30].id.as_str(), events[30].data.as_str()),
            ("custom", "from b")
        );
    }

    // Deleted on B: the stream on C is told and ends, and C forgets it.
    assert_eq!(b.delete_topic(&topic).await.status(), 204);
    // `next` fails the test if the stream does not end within the deadline.
    while on_c.next().await.is_some() {}
    wait_until("C to forget the topic", || async {
        c.http
            .get(c.url(&format!("/api/v1/pubsubs/{topic}")))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .is_ok_and(|r| r.status() == 404)
    })
    .await;
    assert_eq!(
        c.publish(&topic, json!({"message": "x"})).await.status(),
        404
    );
    assert_eq!(
        prometheus(&c, "sser_cluster_rejected_entries_total").await,
        0.0
    );
}

#[tokio::test]
async fn a_client_resumes_on_another_node_without_gap_or_duplicate() {
    let cluster = Cluster::start();
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let (topic, token) = a.create_topic(json!({})).await;
    wait_for_topic(&b, &topic).await;
    wait_for_topic(&c, &topic).await;
    let mut on_b = b.subscribe(&topic, &token).await;
    for n in 1..=10 {
        a.publish_ok(&topic, json!({"message": format!("m{n}")}))
            .await;
    }
    let seen = on_b.take(7).await;
    let last = seen.last().expect("events").id.clone();
    drop(on_b);

    // Publishing goes on while the client moves to C.
    let publisher = {
        let a = a.clone();
        let topic = topic.clone();
        tokio::spawn(async move {
            for n in 11..=60 {
                a.publish_ok(&topic, json!({"message": format!("m{n}")}))
                    .await;
            }
        })
    };
    let mut on_c = c
        .subscribe_with(&topic, &token, &[("Last-Event-ID", &last)])
        .await;
    assert_eq!(on_c.status, 200);
    let rest = on_c.take(53).await;
    let ids: Vec<String> = rest.iter().map(|e| e.id.clone()).collect();
    let expected: Vec<String> = (8..=60).map(|n| n.to_string()).collect();
    assert_eq!(ids, expected);
    assert!(rest.iter().all(|e| e.data == format!("m{}", e.id)));
    publisher.await.expect("publisher");
}

#[tokio::test]
async fn entries_injected_into_redis_are_dropped_and_counted() {
    let cluster = Cluster::start();
    let (a, b) = (cluster.node(0), cluster.node(1));
    let (topic, token) = a.create_topic(json!({})).await;
    wait_for_topic(&b, &topic).await;
    let mut on_b = b.subscribe(&topic, &token).await;
    a.publish_ok(&topic, json!({"message": "one"})).await;
    assert_eq!(on_b.expect_event().await.data, "one");

    // Someone with access to Redis writes the next entry themselves, with
    // an id that would forge a second event in every subscriber's stream,
    // and publishes a forged live message too.
    let mut redis = cluster.redis.client();
    let seq: u64 = redis::cmd("INCR")
        .arg(format!("sser:seq:{topic}"))
        .query(&mut redis)
        .expect("INCR");
    let _: String = redis::cmd("XADD")
        .arg(format!("sser:stream:{topic}"))
        .arg(format!("{seq}-0"))
        .arg("d")
        .arg("evil")
        .arg("i")
        .arg("x\nid: forged\ndata: forged")
        .query(&mut redis)
        .expect("XADD");
    let _: i64 = redis::cmd("PUBLISH")
        .arg(format!("sser:live:{topic}"))
        .arg(format!(
            "{seq}\n{{\"i\":\"y\\r\\nevent: forged\",\"d\":\"evil\"}}"
        ))
        .query(&mut redis)
        .expect("PUBLISH");
    a.publish_ok(&topic, json!({"message": "three"})).await;
    let next = on_b.expect_event().await;
    assert_eq!((next.id.as_str(), next.data.as_str()), ("3", "three"));
    assert!(prometheus(&b, "sser_cluster_rejected_entries_total").await >= 1.0);

    // History read on another node drops it as well.
    let c = cluster.node(2);
    wait_for_topic(&c, &topic).await;
    let mut replay = c
        .subscribe_with(&topic, &token, &[("Last-Event-ID", "1")])
        .await;
    let event = replay.expect_event().await;
    assert_eq!((event.id.as_str(), event.data.as_str()), ("3", "three"));
    assert!(prometheus(&c, "sser_cluster_rejected_entries_total").await >= 1.0);
}

#[tokio::test]
async fn a_node_listens_only_to_topics_it_has_subscribers_for() {
    let cluster = Cluster::start();
    let (a, b) = (cluster.node(0), cluster.node(1));
    let (topic, token) = a.create_topic(json!({})).await;
    let channel = format!("sser:live:{topic}");
    let listeners = || {
        let mut redis = cluster.redis.client();
        let channel = channel.clone();
        async move {
            let reply: (String, u64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(&channel)
                .query(&mut redis)
                .expect("PUBSUB NUMSUB");
            reply.1
        }
    };
    assert_eq!(listeners().await, 0, "nobody subscribed yet");
    let mut on_b = b.subscribe(&topic, &token).await;
    assert_eq!(listeners().await, 1);
    a.publish_ok(&topic, json!({"message": "one"})).await;
    assert_eq!(on_b.expect_event().await.data, "one");
    drop(on_b);
    // The heartbeat sweep (SSER_TICK_FREQUENCY=1s) lets go of it.
    wait_until("B to stop listening", || async { listeners().await == 0 }).await;

    // Events published meanwhile are history; a new subscriber on B
    // listens again and gets what follows.
    a.publish_ok(&topic, json!({"message": "two"})).await;
    let mut again = b
        .subscribe_with(&topic, &token, &[("Last-Event-ID", "1")])
        .await;
    assert_eq!(again.expect_event().await.data, "two");
    a.publish_ok(&topic, json!({"message": "three"})).await;
    let next = again.expect_event().await;
    assert_eq!((next.id.as_str(), next.data.as_str()), ("3", "three"));
    assert_eq!(listeners().await, 1);
}
