//! A node killed mid-stream (`kill -9`) loses nothing for its clients:
//! they reconnect to another node with `Last-Event-ID` and get every event
//! published meanwhile exactly once, on a topic and on an identity inbox,
//! while publishing goes on from a third node the whole time.

use eventsource_stream::Event;
use serde_json::json;

use crate::common::*;
use crate::inboxes::{cluster_with, open, send, token};
use crate::wait_for_topic;

/// Reads what `stream` still delivers until its connection breaks.
async fn drain(stream: &mut SseStream, into: &mut Vec<Event>) {
    while let Some(event) = stream.next_until_cut().await {
        into.push(event);
    }
}

/// Event `m<n>` on the topic and to user u1.
async fn publish(node: &Api, topic: &str, n: u32) {
    let message = format!("m{n}");
    node.publish_ok(topic, json!({ "message": message })).await;
    send(node, json!({"users": ["u1"], "message": message})).await;
}

fn data(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.data.clone()).collect()
}

#[tokio::test]
async fn clients_of_a_killed_node_resume_elsewhere_without_gap_or_duplicate() {
    let mut cluster = cluster_with(3, &[]);
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let (topic, topic_token) = a.create_topic(json!({})).await;
    wait_for_topic(&c, &topic).await;
    let identity = token("u1", Some("phone"));
    let mut on_topic = c.subscribe(&topic, &topic_token).await;
    let mut on_inbox = open(&c, &identity, None).await;

    for n in 1..=10 {
        publish(&a, &topic, n).await;
    }
    let mut topic_seen = on_topic.take(5).await;
    let mut inbox_seen = on_inbox.take(5).await;

    // Publishing goes on from A while C dies under its clients.
    let publisher = tokio::spawn({
        let (a, topic) = (a.clone(), topic.clone());
        async move {
            for n in 11..=60 {
                publish(&a, &topic, n).await;
            }
        }
    });
    cluster.nodes[2].kill9();
    drain(&mut on_topic, &mut topic_seen).await;
    drain(&mut on_inbox, &mut inbox_seen).await;

    // Each client comes back on B from the last event it got.
    let last = |events: &[Event]| events.last().expect("events before the kill").id.clone();
    let mut on_topic = b
        .subscribe_with(
            &topic,
            &topic_token,
            &[("Last-Event-ID", &last(&topic_seen))],
        )
        .await;
    assert_eq!(on_topic.status, 200);
    let mut on_inbox = open(&b, &identity, Some(&last(&inbox_seen))).await;
    let topic_rest = 60 - topic_seen.len();
    let inbox_rest = 60 - inbox_seen.len();
    topic_seen.extend(on_topic.take(topic_rest).await);
    inbox_seen.extend(on_inbox.take(inbox_rest).await);
    publisher.await.expect("publisher");

    let expected: Vec<String> = (1..=60).map(|n| format!("m{n}")).collect();
    assert_eq!(data(&topic_seen), expected, "topic: no gap, no duplicate");
    assert_eq!(data(&inbox_seen), expected, "inbox: no gap, no duplicate");
    assert!(inbox_seen.iter().all(|e| e.event == "@user"));
}
