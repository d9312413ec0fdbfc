//! Topic history in Redis behaves as on one node: a topic's retention
//! (`max_events` exactly, `max_age`) is applied to its Stream, and resuming
//! after a publisher-supplied id finds the oldest event with that id still
//! held, through the id index the publish script keeps.

use serde_json::{Value, json};

use crate::common::*;
use crate::{Cluster, wait_for_topic};

/// The ids (and notices, by name) a subscription resuming after `last`
/// gets first, `n` of them.
async fn resume(node: &Api, topic: &str, token: &str, last: &str, n: usize) -> Vec<String> {
    let mut stream = node
        .subscribe_with(topic, token, &[("Last-Event-ID", last)])
        .await;
    stream
        .take(n)
        .await
        .into_iter()
        .map(|e| {
            if e.event.starts_with("sser.") {
                e.event
            } else {
                e.id
            }
        })
        .collect()
}

fn stream_len(cluster: &Cluster, topic: &str) -> u64 {
    redis::cmd("XLEN")
        .arg(format!("sser:stream:{topic}"))
        .query(&mut cluster.redis.client())
        .expect("XLEN")
}

/// When entry `seq` of a topic's Stream was appended (its `w` field, ms).
fn appended_ms(cluster: &Cluster, topic: &str, seq: u64) -> u64 {
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(format!("sser:stream:{topic}"))
        .arg(format!("{seq}-0"))
        .arg(format!("{seq}-0"))
        .query(&mut cluster.redis.client())
        .expect("XRANGE");
    entries
        .first()
        .and_then(|(_, fields)| fields.iter().find(|(name, _)| name == "w"))
        .and_then(|(_, at)| at.parse().ok())
        .expect("the entry's time")
}

/// Redis' clock, in ms.
fn redis_now_ms(cluster: &Cluster) -> u64 {
    let (secs, micros): (u64, u64) = redis::cmd("TIME")
        .query(&mut cluster.redis.client())
        .expect("TIME");
    secs * 1000 + micros / 1000
}

#[tokio::test]
async fn a_topics_retention_is_applied_in_redis() {
    let cluster = Cluster::start_with(2, &[]);
    let (a, b) = (cluster.node(0), cluster.node(1));
    let (counted, token) = a
        .create_topic(json!({"pubsub": {"retention": {"max_events": 3}}}))
        .await;
    wait_for_topic(&b, &counted).await;
    for n in 1..=6 {
        a.publish_ok(&counted, json!({"message": format!("m{n}")}))
            .await;
    }
    assert_eq!(stream_len(&cluster, &counted), 3, "exactly max_events");
    assert_eq!(
        resume(&b, &counted, &token, "earliest", 3).await,
        ["4", "5", "6"]
    );
    assert_eq!(
        resume(&b, &counted, &token, "1", 4).await,
        ["sser.history_truncated", "4", "5", "6"]
    );

    let (aged, token) = a
        .create_topic(json!({"pubsub": {"retention": {"max_age": 1000}}}))
        .await;
    wait_for_topic(&b, &aged).await;
    a.publish_ok(&aged, json!({"message": "old1"})).await;
    a.publish_ok(&aged, json!({"message": "old2"})).await;
    assert_eq!(resume(&b, &aged, &token, "1", 1).await, ["2"]);
    // Once both are older than max_age on Redis' clock (which the publish
    // script trims by), expired events are not named, even before a
    // publish trims them.
    let appended = appended_ms(&cluster, &aged, 2);
    wait_until("the events to expire", || async {
        redis_now_ms(&cluster) > appended + 1000
    })
    .await;
    assert_eq!(
        resume(&b, &aged, &token, "1", 1).await,
        ["sser.history_truncated"]
    );
    a.publish_ok(&aged, json!({"message": "new"})).await;
    assert_eq!(stream_len(&cluster, &aged), 1, "trimmed by the publish");
    assert_eq!(
        resume(&b, &aged, &token, "earliest", 1).await,
        ["3"],
        "only what has not expired"
    );
}

#[tokio::test]
async fn resume_after_a_publisher_id_finds_the_oldest_still_held() {
    let cluster = Cluster::start_with(2, &[]);
    let (a, b) = (cluster.node(0), cluster.node(1));
    let (topic, token) = a
        .create_topic(json!({"pubsub": {"retention": {"max_events": 4}}}))
        .await;
    wait_for_topic(&b, &topic).await;
    // Positions 1..=5; ids repeat ("x" at 1 and 3), one event has none.
    for id in [Some("x"), Some("y"), Some("x"), None, Some("z")] {
        let mut event = json!({"message": "m"});
        if let Some(id) = id {
            event["id"] = json!(id);
        }
        a.publish_ok(&topic, event).await;
    }
    // Position 1 is trimmed: the oldest "x" held is position 3.
    assert_eq!(resume(&b, &topic, &token, "x", 2).await, ["4", "z"]);
    assert_eq!(resume(&b, &topic, &token, "y", 3).await, ["x", "4", "z"]);
    // An event without a publisher id is known by its position.
    assert_eq!(resume(&b, &topic, &token, "4", 1).await, ["z"]);
    // "5" is not an id: position 5's event is called "z".
    assert_eq!(
        resume(&b, &topic, &token, "5", 1).await,
        ["sser.history_truncated"]
    );
    a.publish_ok(&topic, json!({"message": "m", "id": "w"}))
        .await;
    a.publish_ok(&topic, json!({"message": "m", "id": "v"}))
        .await;
    // "y" (position 2) and the second "x" (position 3) are trimmed now.
    assert_eq!(
        resume(&b, &topic, &token, "y", 1).await,
        ["sser.history_truncated"]
    );
    assert_eq!(
        resume(&b, &topic, &token, "x", 1).await,
        ["sser.history_truncated"]
    );
    assert_eq!(resume(&b, &topic, &token, "z", 2).await, ["w", "v"]);
    // The index holds no more than the Stream does.
    let index: Value = redis::cmd("HGETALL")
        .arg(format!("sser:ids:{topic}"))
        .query::<Vec<String>>(&mut cluster.redis.client())
        .map(|pairs| json!(pairs))
        .expect("HGETALL");
    let names: Vec<&str> = index
        .as_array()
        .expect("pairs")
        .chunks(2)
        .filter_map(|pair| pair[0].as_str())
        .collect();
    assert!(!names.contains(&"y"), "{index}");
    for held in ["z", "w", "v"] {
        assert!(names.contains(&held), "{index}");
    }
}
