//! Connections that follow several topics (`GET /api/v1/events?topic=…`) and
//! the registry of connections, over real sockets with a real SSE parser.

mod common;

use std::collections::HashMap;

use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sser::config::Count;
use sser::hub::{EndReason, KickError};

/// Opens `GET /api/v1/events` on `topics` with the API token and `headers`.
async fn follow(server: &TestServer, topics: &[String], headers: &[(&str, &str)]) -> SseStream {
    let mut req = server
        .http
        .get(server.url("/api/v1/events"))
        .bearer_auth(API_TOKEN);
    for topic in topics {
        req = req.query(&[("topic", topic)]);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let stream = SseStream::open(req).await;
    assert_eq!(stream.status, 200, "follow {topics:?}");
    stream
}

async fn create_topics(server: &TestServer, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(server.create_topic(json!({})).await.0);
    }
    ids
}

/// The topic an event on a multi-topic stream comes from, and its type.
fn topic_of(event: &eventsource_stream::Event) -> (String, Option<String>) {
    match event.event.split_once(':') {
        Some((topic, kind)) => (topic.to_string(), Some(kind.to_string())),
        None => (event.event.clone(), None),
    }
}

/// Publishes `n` events to each topic, one task per topic, all at once; an
/// odd event gets the type `odd`. Message = the event's number in its topic.
fn publish_concurrently(
    server: &TestServer,
    topics: &[String],
    n: usize,
) -> Vec<tokio::task::JoinHandle<()>> {
    topics
        .iter()
        .map(|topic| {
            let api = server.api();
            let topic = topic.clone();
            tokio::spawn(async move {
                for i in 0..n {
                    let mut event = json!({"message": i.to_string()});
                    if i % 2 == 1 {
                        event["type"] = json!("odd");
                    }
                    api.publish_ok(&topic, event).await;
                }
            })
        })
        .collect()
}

/// Groups the messages received per topic, checking each event's name.
fn per_topic(events: &[eventsource_stream::Event], into: &mut HashMap<String, Vec<usize>>) {
    for e in events {
        let (topic, kind) = topic_of(e);
        let i: usize = e.data.parse().unwrap_or_else(|_| panic!("event {e:?}"));
        assert_eq!(kind.as_deref(), (i % 2 == 1).then_some("odd"), "{e:?}");
        into.entry(topic).or_default().push(i);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_on_three_topics_gets_each_topics_events_in_order() {
    const N: usize = 300;
    let server = TestServer::start_with(|c| c.pubsub.history_size = Count(10_000)).await;
    let topics = create_topics(&server, 3).await;
    let mut stream = follow(&server, &topics, &[]).await;
    assert!(!stream.headers["x-connection-id"].is_empty());

    let publishers = publish_concurrently(&server, &topics, N);
    let events = stream.take(3 * N).await;
    for p in publishers {
        p.await.expect("publisher");
    }
    let mut got = HashMap::new();
    per_topic(&events, &mut got);
    for topic in &topics {
        assert_eq!(
            got[topic],
            (0..N).collect::<Vec<_>>(),
            "topic {topic} in order, complete"
        );
    }
    // Every id is a cursor: distinct, and not one topic's sequence.
    let ids: std::collections::HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), events.len(), "one cursor per event");
    assert!(events.iter().all(|e| e.id.parse::<u64>().is_err()));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_event_id_resumes_all_three_topics_exactly_while_publishing_continues() {
    const N: usize = 400;
    let server = TestServer::start_with(|c| c.pubsub.history_size = Count(10_000)).await;
    let topics = create_topics(&server, 3).await;
    let mut first = follow(&server, &topics, &[]).await;
    let publishers = publish_concurrently(&server, &topics, N);

    // Read part of the storm, then drop the connection mid-way.
    let before = first.take(150).await;
    let cursor = before.last().expect("events").id.clone();
    drop(first);

    // Resume with the cursor while the publishers go on, in another topic
    // order in the URL (the cursor is of the set, not of the URL).
    let mut reversed = topics.clone();
    reversed.reverse();
    let mut second = follow(&server, &reversed, &[("Last-Event-ID", cursor.as_str())]).await;
    assert!(second.headers.get("x-sser-history-truncated").is_none());
    for p in publishers {
        p.await.expect("publisher");
    }
    let after = second.take(3 * N - before.len()).await;
    let mut got = HashMap::new();
    per_topic(&before, &mut got);
    per_topic(&after, &mut got);
    for topic in &topics {
        assert_eq!(
            got[topic],
            (0..N).collect::<Vec<_>>(),
            "topic {topic}: no gap, no duplicate across the reconnect"
        );
    }

    // The query form resumes the same way: nothing is left after the last id.
    let last = after.last().expect("events").id.clone();
    let mut third = SseStream::open(
        server
            .http
            .get(server.url("/api/v1/events"))
            .query(&[
                ("topic", &topics[0]),
                ("topic", &topics[1]),
                ("topic", &topics[2]),
            ])
            .query(&[("last_event_id", &last)])
            .bearer_auth(API_TOKEN),
    )
    .await;
    server.publish_ok(&topics[1], json!({"message": "0"})).await;
    let next = third.expect_event().await;
    assert_eq!(
        (topic_of(&next).0, next.data.as_str()),
        (topics[1].clone(), "0")
    );
    server.stop().await;
}

#[tokio::test]
async fn unknown_cursors_are_answered_per_topic_never_silently() {
    let server = TestServer::start_with(|c| c.pubsub.history_size = Count(3)).await;
    let topics = create_topics(&server, 2).await;
    let mut s = follow(&server, &topics, &[]).await;
    server
        .publish_ok(&topics[0], json!({"message": "a0"}))
        .await;
    let cursor = s.expect_event().await.id;
    drop(s);
    // History moves on past the cursor's position in topic 0.
    for i in 1..=5 {
        server
            .publish_ok(&topics[0], json!({"message": format!("a{i}")}))
            .await;
    }
    server
        .publish_ok(&topics[1], json!({"message": "b0"}))
        .await;

    let mut s = follow(&server, &topics, &[("Last-Event-ID", cursor.as_str())]).await;
    assert_eq!(s.headers["x-sser-history-truncated"], "true");
    let notice = s.expect_event().await;
    assert_eq!(notice.event, "sser.history_truncated");
    let v: Value = serde_json::from_str(&notice.data).unwrap();
    assert_eq!(
        v["topic"],
        topics[0].as_str(),
        "names the topic that lost events"
    );
    let rest: Vec<String> = s.take(4).await.into_iter().map(|e| e.data).collect();
    let of = |prefix: &str| -> Vec<&str> {
        rest.iter()
            .map(String::as_str)
            .filter(|d| d.starts_with(prefix))
            .collect()
    };
    // Topics replay in the connection's order (by id), each complete.
    assert_eq!(of("a"), ["a3", "a4", "a5"], "what history still holds");
    assert_eq!(of("b"), ["b0"], "the exact resume of the other topic");

    // A cursor of another set of topics (or garbage) is unknown for all.
    for bad in [cursor.as_str(), "garbage"] {
        let mut s = follow(&server, &topics[..1], &[("Last-Event-ID", bad)]).await;
        assert_eq!(s.headers["x-sser-history-truncated"], "true");
        assert_eq!(s.expect_event().await.event, "sser.history_truncated");
        assert_eq!(s.expect_event().await.data, "a3");
    }
    server.stop().await;
}

#[tokio::test]
async fn deleting_one_topic_tells_the_connection_and_keeps_the_others_flowing() {
    let server = TestServer::start().await;
    let topics = create_topics(&server, 3).await;
    let (a, b, c) = (&topics[0], &topics[1], &topics[2]);
    let mut multi = follow(&server, &topics, &[]).await;
    // SSER's one-topic stream on the deleted topic, for comparison.
    let mut single = SseStream::open(
        server
            .http
            .get(server.url(&format!("/api/v1/pubsubs/{b}/events")))
            .bearer_auth(API_TOKEN),
    )
    .await;
    for t in &topics {
        server
            .publish_ok(t, json!({"message": format!("1-{t}")}))
            .await;
    }
    assert_eq!(multi.take(3).await.len(), 3);
    assert_eq!(single.expect_event().await.data, format!("1-{b}"));

    assert_eq!(server.delete_topic(b).await.status(), 204);
    let closed = multi.expect_event().await;
    assert_eq!(closed.event, "sser.closed");
    let v: Value = serde_json::from_str(&closed.data).unwrap();
    assert_eq!(
        (v["status"].as_str(), v["topic"].as_str()),
        (Some("closed"), Some(b.as_str()))
    );
    // The one-topic subscriber sees exactly what SSER sends, then the end.
    assert_eq!(single.expect_event().await.data, r#"{"status": "closed"}"#);
    assert!(single.next().await.is_none());

    server.publish_ok(a, json!({"message": "2-a"})).await;
    server.publish_ok(c, json!({"message": "2-c"})).await;
    let more: Vec<String> = multi.take(2).await.into_iter().map(|e| e.data).collect();
    assert_eq!(more, ["2-a", "2-c"], "the other topics keep flowing");

    // The last topics deleted: their notices, then the end.
    assert_eq!(server.delete_topic(a).await.status(), 204);
    assert_eq!(server.delete_topic(c).await.status(), 204);
    assert_eq!(multi.expect_event().await.event, "sser.closed");
    assert_eq!(multi.expect_event().await.event, "sser.closed");
    assert!(multi.next().await.is_none());
    server.stop().await;
}

/// A one-topic stream's last id lives beside its queue (see
/// `broker::Outbox::record_sent`), a labelled one's in the connection: the
/// registry reads either, after live events and after a replay.
#[tokio::test]
async fn the_registry_knows_the_last_id_each_connection_was_sent() {
    let server = TestServer::start().await;
    let topics = create_topics(&server, 2).await;
    let registry = server.hub.connections();
    let conn_id = |s: &SseStream| s.headers["x-connection-id"].to_str().unwrap().to_string();
    let last_id = |id: &str| registry.get(id).expect("registered").last_event_id();

    let mut live = server.subscribe(&topics[0], API_TOKEN).await;
    let live_id = conn_id(&live);
    assert_eq!(last_id(&live_id), None, "nothing sent yet");
    server
        .publish_ok(&topics[0], json!({"id": "custom-1", "message": "a"}))
        .await;
    assert_eq!(live.expect_event().await.id, "custom-1");
    assert_eq!(last_id(&live_id).as_deref(), Some("custom-1"));
    let second = server.publish_ok(&topics[0], json!({"message": "b"})).await;
    assert_eq!(live.expect_event().await.id, second);
    assert_eq!(last_id(&live_id), Some(second.clone()));

    // Replayed, not live: the last event of the replay.
    let mut replayed = server
        .subscribe_from(&topics[0], API_TOKEN, "custom-1")
        .await;
    assert_eq!(replayed.expect_event().await.id, second);
    assert_eq!(last_id(&conn_id(&replayed)), Some(second.clone()));

    // A labelled connection: its ids are cursors over its topics.
    let mut labelled = SseStream::open(
        server
            .http
            .get(server.url("/api/v1/events"))
            .query(&[("topic", &topics[0]), ("topic", &topics[1])])
            .bearer_auth(API_TOKEN),
    )
    .await;
    server.publish_ok(&topics[1], json!({"message": "c"})).await;
    let cursor = labelled.expect_event().await.id;
    assert_ne!(cursor, "", "a cursor id");
    assert_eq!(last_id(&conn_id(&labelled)), Some(cursor));
}

#[tokio::test]
async fn the_registry_lists_and_ends_a_connection_by_id() {
    let server = TestServer::start().await;
    let topics = create_topics(&server, 2).await;
    let resp = server
        .http
        .get(server.url("/api/v1/events"))
        .query(&[("topic", &topics[0]), ("topic", &topics[1])])
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    let id = resp.headers()["x-connection-id"]
        .to_str()
        .unwrap()
        .to_string();
    let single = server.subscribe(&topics[0], API_TOKEN).await;
    let single_id = single.headers["x-connection-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(id, single_id);

    let registry = server.hub.connections();
    assert_eq!(registry.count(), 2);
    let mut listed: Vec<String> = registry.list().iter().map(|c| c.id().to_string()).collect();
    listed.sort();
    let mut want = vec![id.clone(), single_id.clone()];
    want.sort();
    assert_eq!(listed, want);
    let conn = registry.get(&id).expect("registered");
    assert_eq!(conn.streams().len(), 2);

    // Ended by id: the stream says so and ends; the registry forgets it.
    let kick = || EndReason::Kicked {
        reason: Some("maintenance".into()),
    };
    assert_eq!(registry.end(&id, kick(), None), Ok(()));
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    while let Some(chunk) = tokio::time::timeout(DEADLINE, body.next())
        .await
        .expect("stream ends in time")
    {
        text.push_str(std::str::from_utf8(&chunk.expect("chunk")).unwrap());
    }
    assert!(
        text.ends_with("event: sser.kicked\ndata: {\"message\":\"this connection was ended by the server's operator\",\"reason\":\"maintenance\",\"status\":\"kicked\"}\n\n"),
        "{text:?}"
    );
    server
        .wait_until("the ended connection to leave", || async {
            server.hub.connections().get(&id).is_none()
        })
        .await;
    assert_eq!(
        registry.end(&id, kick(), None),
        Err(KickError::NotFound),
        "nothing left to end"
    );
    assert_eq!(registry.count(), 1);

    // Ending every connection on a stream reaches the one-topic stream too.
    let topic = server.hub.get(&topics[0]).unwrap();
    assert_eq!(server.hub.end_connections_on(&topic.stream), 1);
    let mut single = single;
    assert!(single.next().await.is_none());
    server
        .wait_until("the registry to empty", || async {
            server.hub.connections().is_empty()
        })
        .await;
    assert_eq!(server.metric("active_subscribers").await, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connections_on_ten_topics_come_and_go() {
    const CONNECTIONS: usize = 1_000;
    let server = TestServer::start().await;
    let topics = create_topics(&server, 10).await;
    let opened: Vec<SseStream> = futures_util::stream::iter(0..CONNECTIONS)
        .map(|_| follow(&server, &topics, &[]))
        .buffer_unordered(64)
        .collect()
        .await;
    let hub = &server.hub;
    assert_eq!(hub.connections().count(), CONNECTIONS);
    for t in &topics {
        assert_eq!(hub.get(t).unwrap().subscriber_count(), CONNECTIONS);
    }
    assert_eq!(
        server.metric("active_subscribers").await,
        CONNECTIONS as u64
    );

    // One event reaches every connection.
    server
        .publish_ok(&topics[7], json!({"message": "all"}))
        .await;
    let got: Vec<String> = futures_util::stream::iter(opened)
        .map(|mut s| async move {
            let e = s.expect_event().await;
            drop(s);
            e.data
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert_eq!(got.len(), CONNECTIONS);
    assert!(got.iter().all(|d| d == "all"));

    // Every connection dropped: nothing is left behind.
    server
        .wait_until("the registry to empty", || async {
            hub.connections().is_empty()
        })
        .await;
    for t in &topics {
        assert_eq!(
            hub.get(t).unwrap().subscriber_count(),
            0,
            "topic {t} has no followers"
        );
    }
    assert_eq!(server.metric("active_subscribers").await, 0);
    server.stop().await;
}

/// A stalled connection on two topics falls behind its queue and catches up
/// from both topics' history: every event, in order, per topic.
#[tokio::test]
async fn a_stalled_multi_topic_connection_catches_up_from_history() {
    let server = TestServer::start_with(|c| {
        c.pubsub.subscriber_buffer = Count(8);
        c.pubsub.history_size = Count(10_000);
    })
    .await;
    let topics = create_topics(&server, 2).await;
    let stalled = server
        .http
        .get(server.url("/api/v1/events"))
        .query(&[("topic", &topics[0]), ("topic", &topics[1])])
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    let filler = "x".repeat(8_192);
    for i in 0..600 {
        let topic = &topics[i % 2];
        server
            .publish_ok(topic, json!({"message": format!("{} {filler}", i / 2)}))
            .await;
    }
    let mut events = std::pin::pin!(eventsource_stream::Eventsource::eventsource(
        stalled.bytes_stream()
    ));
    let mut got: HashMap<String, Vec<usize>> = HashMap::new();
    for _ in 0..600 {
        let e = tokio::time::timeout(DEADLINE, events.next())
            .await
            .expect("event in time")
            .expect("stream open")
            .expect("valid SSE");
        assert_ne!(e.event, "sser.lagged", "history covered the gap");
        let n: usize = e.data.split(' ').next().unwrap().parse().unwrap();
        got.entry(e.event.clone()).or_default().push(n);
    }
    for t in &topics {
        assert_eq!(got[t], (0..300).collect::<Vec<_>>(), "topic {t}");
    }
    assert!(
        server.metric("lagged_subscribers").await >= 1,
        "it really fell behind"
    );
    server.stop().await;
}

#[tokio::test]
async fn who_may_follow_which_topics() {
    let server = TestServer::start_with(|c| c.pubsub.max_topics_per_connection = Count(2)).await;
    let (a, token_a) = server.create_topic(json!({})).await;
    let (b, _) = server.create_topic(json!({})).await;
    let (c, _) = server.create_topic(json!({})).await;
    let url = server.url("/api/v1/events");
    let get = |query: Vec<(&str, String)>, token: Option<&str>| {
        let mut req = server.http.get(&url).query(&query);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req
    };
    let t = |id: &String| ("topic", id.clone());
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            get(vec![t(&a)], Some(&token_a)),
            200,
            "a topic's token, its topic",
        ),
        (
            get(vec![t(&a), ("access_token", token_a.clone())], None),
            200,
            "in the query",
        ),
        (
            get(vec![t(&a), t(&a)], Some(&token_a)),
            200,
            "duplicates count once",
        ),
        (
            get(vec![t(&a), t(&b)], Some(&token_a)),
            401,
            "a topic's token, another topic",
        ),
        (
            get(vec![t(&b)], Some(&token_a)),
            401,
            "a topic's token, not its topic",
        ),
        (
            get(vec![t(&a), ("access_token", API_TOKEN.into())], None),
            401,
            "API token in the query",
        ),
        (get(vec![t(&a)], Some(METRICS_TOKEN)), 401, "metrics token"),
        (get(vec![t(&a)], None), 401, "no token"),
        (
            get(vec![("topic", "missing".into())], Some(&token_a)),
            401,
            "unknown topic, topic token",
        ),
        (
            get(vec![("topic", "missing".into())], Some(API_TOKEN)),
            404,
            "unknown topic, API token",
        ),
        (
            get(vec![t(&a), t(&b)], Some(API_TOKEN)),
            200,
            "the API token, any topics",
        ),
        (
            get(vec![t(&a), t(&b), t(&c)], Some(API_TOKEN)),
            400,
            "over the limit",
        ),
        (get(vec![], Some(API_TOKEN)), 400, "no topic"),
        (
            get(vec![("topic", "a b".into())], Some(API_TOKEN)),
            400,
            "invalid id",
        ),
    ];
    for (req, want, what) in cases {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "{what}");
        if want != 200 {
            let text = resp.text().await.unwrap();
            assert!(!text.contains(&token_a), "{what}: token echoed");
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["error"]["code"], want, "{what}");
        }
    }
    let resp = get(vec![("topic", "missing".into())], Some(API_TOKEN))
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["message"], "topic not found: missing");
    let resp = get(vec![t(&a), t(&b), t(&c)], Some(API_TOKEN))
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("pubsub.maxTopicsPerConnection"),
        "{v}"
    );
    server.stop().await;
}

/// Streams carry `X-Connection-Id`; CORS-only headers go only to CORS
/// requests on streams (hyper keeps a stream's header map for its life, see
/// `http::cors`), while a browser on another origin can still read the id.
#[tokio::test]
async fn stream_headers_name_the_connection_and_stay_small() {
    let server = TestServer::start().await;
    let (topic, token) = server.create_topic(json!({})).await;
    let url = server.url(&format!("/api/v1/pubsubs/{topic}/events"));
    let plain = server
        .http
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(!plain.headers()["x-connection-id"].is_empty());
    assert!(
        plain
            .headers()
            .get("access-control-expose-headers")
            .is_none()
    );
    let cors = server
        .http
        .get(&url)
        .bearer_auth(&token)
        .header("Origin", "https://app.example")
        .send()
        .await
        .unwrap();
    let exposed = cors.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.contains("x-connection-id"), "{exposed}");
    // Short responses are unchanged.
    let list = server
        .http
        .get(server.url("/api/v1/pubsubs"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(list.headers().contains_key("access-control-expose-headers"));
    server.stop().await;
}
