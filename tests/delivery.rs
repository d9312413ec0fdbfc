//! Delivery guarantees over real sockets: order, fan-out, the slow-consumer
//! policy, `Last-Event-ID` replay and heartbeats.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::json;

/// Four concurrent publishers, 10,000 events, two subscribers: both see every
/// event exactly once, in the same order, with increasing ids, and each
/// publisher's events in the order it sent them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_in_order_to_two_subscribers() {
    const PUBLISHERS: usize = 4;
    const PER_PUBLISHER: usize = 2_500;
    // History large enough that a subscriber delayed by a busy test machine
    // catches up instead of being cut.
    let server =
        TestServer::start_with(|c| c.pubsub.history_size = sser::config::Count(20_000)).await;
    let (id, token) = server.create_topic(json!({})).await;
    let mut a = server.subscribe(&id, &token).await;
    let mut b = server.subscribe(&id, &token).await;

    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let http = server.http.clone();
        let url = server.url(&format!("/api/v1/pubsubs/{id}/events"));
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_PUBLISHER {
                let resp = http
                    .post(&url)
                    .bearer_auth(API_TOKEN)
                    .json(&json!({"event": {"message": format!("{p}:{i}")}}))
                    .send()
                    .await
                    .expect("publish");
                assert_eq!(resp.status(), 201);
            }
        }));
    }
    let total = PUBLISHERS * PER_PUBLISHER;
    let (ea, eb) = tokio::join!(a.take(total), b.take(total));
    for t in tasks {
        t.await.expect("publisher task");
    }
    let ids_a: Vec<&str> = ea.iter().map(|e| e.id.as_str()).collect();
    let ids_b: Vec<&str> = eb.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids_a, ids_b, "both subscribers see the same order");
    let seqs: Vec<u64> = ea
        .iter()
        .map(|e| e.id.parse().expect("numeric id"))
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "ids increase by one"
    );
    let mut next = [0usize; PUBLISHERS];
    for e in &ea {
        let (p, i) = e.data.split_once(':').expect("p:i");
        let (p, i): (usize, usize) = (p.parse().unwrap(), i.parse().unwrap());
        assert_eq!(i, next[p], "publisher {p}'s events in its order");
        next[p] += 1;
    }
    server.stop().await;
}

/// Publishes `n` events of `size` bytes as fast as possible and checks that
/// publishing never waited on a stalled subscriber (every publish is 201).
async fn publish_burst(server: &TestServer, topic: &str, n: usize, size: usize) -> Vec<String> {
    let filler = "x".repeat(size);
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(
            server
                .publish_ok(topic, json!({"message": format!("{i} {filler}")}))
                .await,
        );
    }
    ids
}

/// A subscriber whose socket is not read: the response has arrived but its
/// body is not polled, so the kernel buffers fill and the server's writes to
/// it stop.
async fn stalled_subscriber(server: &TestServer, topic: &str, token: &str) -> reqwest::Response {
    let resp = server
        .http
        .get(server.url(&format!("/api/v1/pubsubs/{topic}/events")))
        .bearer_auth(token)
        .send()
        .await
        .expect("subscribe");
    assert_eq!(resp.status(), 200);
    resp
}

/// The stalled subscriber falls behind the live buffer but history still
/// holds what it missed: it catches up with every event, in order, no gap.
#[tokio::test]
async fn stalled_subscriber_catches_up_from_history() {
    let server = TestServer::start_with(|c| {
        c.pubsub.subscriber_buffer = sser::config::Count(8);
        c.pubsub.history_size = sser::config::Count(10_000);
    })
    .await;
    let (id, token) = server.create_topic(json!({})).await;
    let stalled = stalled_subscriber(&server, &id, &token).await;
    let ids = publish_burst(&server, &id, 1_500, 8_192).await;

    let mut events = std::pin::pin!(eventsource_stream::Eventsource::eventsource(
        stalled.bytes_stream()
    ));
    let mut got = Vec::new();
    while got.len() < ids.len() {
        let event = tokio::time::timeout(DEADLINE, events.next())
            .await
            .expect("event in time")
            .expect("stream open")
            .expect("valid SSE");
        assert_ne!(event.event, "sser.lagged", "history covered the gap");
        got.push(event.id);
    }
    assert_eq!(got, ids);
    assert!(
        server.metric("lagged_subscribers").await >= 1,
        "the subscriber really fell behind the live buffer"
    );
    server.stop().await;
}

/// History is too short to cover the gap: the subscriber is told, with the
/// last sequence it got, and disconnected; it never sees a silent gap.
#[tokio::test]
async fn stalled_subscriber_beyond_history_is_told_and_disconnected() {
    let server = TestServer::start_with(|c| {
        c.pubsub.subscriber_buffer = sser::config::Count(8);
        c.pubsub.history_size = sser::config::Count(16);
    })
    .await;
    let (id, token) = server.create_topic(json!({})).await;
    let stalled = stalled_subscriber(&server, &id, &token).await;
    let ids = publish_burst(&server, &id, 1_500, 8_192).await;

    let mut events = std::pin::pin!(eventsource_stream::Eventsource::eventsource(
        stalled.bytes_stream()
    ));
    let mut got: Vec<String> = Vec::new();
    let notice = loop {
        let event = tokio::time::timeout(DEADLINE, events.next())
            .await
            .expect("event in time")
            .expect("stream must end with a notice, not silently")
            .expect("valid SSE");
        if event.event == "sser.lagged" {
            break event;
        }
        got.push(event.id);
    };
    // What it did get is an unbroken prefix of what was published.
    assert_eq!(got[..], ids[..got.len()]);
    assert!(got.len() < ids.len());
    let v: serde_json::Value = serde_json::from_str(&notice.data).unwrap();
    assert_eq!(v["status"], "lagged");
    assert!(
        notice.id.is_empty() || Some(&notice.id) == got.last(),
        "notice carries no new id"
    );
    assert!(
        tokio::time::timeout(DEADLINE, events.next())
            .await
            .expect("stream ends")
            .is_none(),
        "disconnected after the notice"
    );
    // Reconnecting with the last id it saw is answered explicitly.
    let last = got.last().cloned().unwrap_or_default();
    let mut again = server
        .subscribe_with(&id, &token, &[("Last-Event-ID", last.as_str())])
        .await;
    assert_eq!(again.headers["x-sser-history-truncated"], "true");
    assert_eq!(again.expect_event().await.event, "sser.history_truncated");
    let first = again.expect_event().await;
    assert_eq!(first.id, ids[ids.len() - 16], "then what history holds");
    server.stop().await;
}

/// Deleting a topic while a subscriber is stalled with data pending: no
/// crash, healthy subscribers get everything and the close, the stalled one
/// ends explicitly when it reads again, and the server keeps serving.
#[tokio::test]
async fn delete_while_a_subscriber_is_stalled() {
    let server = TestServer::start_with(|c| {
        c.pubsub.subscriber_buffer = sser::config::Count(8);
        c.pubsub.history_size = sser::config::Count(32);
    })
    .await;
    let (id, token) = server.create_topic(json!({})).await;
    let mut healthy = server.subscribe(&id, &token).await;
    let stalled = stalled_subscriber(&server, &id, &token).await;
    let reader = tokio::spawn(async move {
        healthy.take(300).await.len() + {
            let closed = healthy.expect_event().await;
            assert_eq!(closed.data, r#"{"status": "closed"}"#);
            0
        }
    });
    publish_burst(&server, &id, 300, 16_384).await;
    assert_eq!(server.delete_topic(&id).await.status(), 204);
    assert_eq!(reader.await.expect("healthy reader"), 300);

    let mut events = std::pin::pin!(eventsource_stream::Eventsource::eventsource(
        stalled.bytes_stream()
    ));
    let last = loop {
        match tokio::time::timeout(DEADLINE, events.next())
            .await
            .expect("stalled stream progresses")
        {
            Some(Ok(event)) => {
                if event.event == "sser.lagged" || event.data == r#"{"status": "closed"}"# {
                    break event;
                }
            }
            Some(Err(e)) => panic!("bad SSE: {e}"),
            None => panic!("stream ended without a closing notice"),
        }
    };
    assert!(last.event == "sser.lagged" || last.data.contains("closed"));
    // Still serving.
    let (other, _) = server.create_topic(json!({})).await;
    server.publish_ok(&other, json!({"message": "alive"})).await;
    server.stop().await;
}

#[tokio::test]
async fn replay_after_reconnect_is_exact() {
    let server = TestServer::start().await;
    let (id, token) = server.create_topic(json!({})).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let custom = if i == 4 { Some("custom-4") } else { None };
        let mut ev = json!({"message": format!("m{i}")});
        if let Some(c) = custom {
            ev["id"] = json!(c);
        }
        ids.push(server.publish_ok(&id, ev).await);
    }
    // Header form, resuming after a server id.
    let mut s = server
        .subscribe_with(&id, &token, &[("Last-Event-ID", ids[6].as_str())])
        .await;
    assert!(s.headers.get("x-sser-history-truncated").is_none());
    let got: Vec<String> = s.take(3).await.into_iter().map(|e| e.id).collect();
    assert_eq!(got, ids[7..]);
    // Query form, resuming after a publisher's own id; live events follow
    // the replay with no gap or duplicate.
    let mut s = SseStream::open(server.http.get(server.url(&format!(
        "/api/v1/pubsubs/{id}/events?access_token={token}&last_event_id=custom-4"
    ))))
    .await;
    let replayed: Vec<String> = s.take(5).await.into_iter().map(|e| e.id).collect();
    assert_eq!(replayed, ids[5..]);
    let live = server.publish_ok(&id, json!({"message": "live"})).await;
    assert_eq!(s.expect_event().await.id, live);
    // `earliest` replays everything retained.
    let mut s = SseStream::open(server.http.get(server.url(&format!(
        "/api/v1/pubsubs/{id}/events?access_token={token}&last_event_id=earliest"
    ))))
    .await;
    assert_eq!(s.expect_event().await.id, ids[0]);
    server.stop().await;
}

#[tokio::test]
async fn replay_of_an_unknown_id_is_reported_as_truncated() {
    let server = TestServer::start_with(|c| c.pubsub.history_size = sser::config::Count(5)).await;
    let (id, token) = server.create_topic(json!({})).await;
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(server.publish_ok(&id, json!({"message": i})).await);
    }
    // ids[0] has been trimmed from the 5-event history.
    let mut s = server
        .subscribe_with(&id, &token, &[("Last-Event-ID", ids[0].as_str())])
        .await;
    assert_eq!(s.headers["x-sser-history-truncated"], "true");
    let notice = s.expect_event().await;
    assert_eq!(notice.event, "sser.history_truncated");
    assert!(notice.id.is_empty() || notice.id == ids[0]);
    let got: Vec<String> = s.take(5).await.into_iter().map(|e| e.id).collect();
    assert_eq!(got, ids[3..]);
    server.stop().await;
}

/// Browsers send `Last-Event-ID` as UTF-8 bytes: a non-ASCII id resumes
/// exactly after that event, as an ASCII one does (issue 9: it used to be
/// dropped, starting a live-only stream that silently lost the replay).
#[tokio::test]
async fn non_ascii_last_event_id_resumes_exactly() {
    let server = TestServer::start().await;
    let (id, token) = server.create_topic(json!({})).await;
    let ids: Vec<String> = (1..=4).map(|i| format!("zürich-événement-{i}")).collect();
    for custom in &ids {
        server
            .publish_ok(&id, json!({"id": custom, "message": custom}))
            .await;
    }
    let last = reqwest::header::HeaderValue::from_bytes(ids[1].as_bytes()).unwrap();
    let mut s = SseStream::open(
        server
            .http
            .get(server.url(&format!("/api/v1/pubsubs/{id}/events")))
            .bearer_auth(&token)
            .header("Last-Event-ID", last),
    )
    .await;
    assert!(s.headers.get("x-sser-history-truncated").is_none());
    let got: Vec<String> = s.take(2).await.into_iter().map(|e| e.id).collect();
    assert_eq!(got, ids[2..]);
    server.stop().await;
}

/// A `Last-Event-ID` that is not even UTF-8 names no event: the stream says
/// so (header and notice) and sends everything retained, never silence.
#[tokio::test]
async fn unreadable_last_event_id_gets_the_truncation_answer() {
    let server = TestServer::start().await;
    let (id, token) = server.create_topic(json!({})).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(server.publish_ok(&id, json!({"message": i})).await);
    }
    let garbage = reqwest::header::HeaderValue::from_bytes(b"\xff\xfe-3").unwrap();
    let mut s = SseStream::open(
        server
            .http
            .get(server.url(&format!("/api/v1/pubsubs/{id}/events")))
            .bearer_auth(&token)
            .header("Last-Event-ID", garbage),
    )
    .await;
    assert_eq!(s.headers["x-sser-history-truncated"], "true");
    assert_eq!(s.expect_event().await.event, "sser.history_truncated");
    let got: Vec<String> = s.take(3).await.into_iter().map(|e| e.id).collect();
    assert_eq!(got, ids);
    server.stop().await;
}

/// HTTP strips a header value's edge spaces and tabs, so an id with them
/// could never come back as `Last-Event-ID`: refused at publish, named.
#[tokio::test]
async fn ids_with_edge_whitespace_are_refused_at_publish() {
    let server = TestServer::start().await;
    let (id, _) = server.create_topic(json!({})).await;
    for bad in [" lead", "trail ", "\ttab", "tab\t", " "] {
        let resp = server
            .publish(&id, json!({"id": bad, "message": "x"}))
            .await;
        assert_eq!(resp.status(), 400, "{bad:?}");
        let body: serde_json::Value = resp.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("event.id") && message.contains("Last-Event-ID"),
            "{bad:?}: {message}"
        );
    }
    // Inner spaces are fine: they survive the header.
    assert_eq!(
        server
            .publish_ok(&id, json!({"id": "a b", "message": "x"}))
            .await,
        "a b"
    );
    server.stop().await;
}

/// Resuming while publishers keep publishing: every event exactly once, in
/// order, across the seam between history and the live stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_seam_under_concurrent_publishing() {
    let server =
        TestServer::start_with(|c| c.pubsub.history_size = sser::config::Count(10_000)).await;
    let (id, token) = server.create_topic(json!({})).await;
    let first = server.publish_ok(&id, json!({"message": "start"})).await;
    let http = server.http.clone();
    let url = server.url(&format!("/api/v1/pubsubs/{id}/events"));
    let publisher = tokio::spawn(async move {
        let mut ids = Vec::new();
        for i in 0..1_000 {
            let resp = http
                .post(&url)
                .bearer_auth(API_TOKEN)
                .json(&json!({"event": {"message": i}}))
                .send()
                .await
                .expect("publish");
            let v: serde_json::Value = resp.json().await.expect("body");
            ids.push(v["event"]["id"].as_str().expect("id").to_string());
        }
        ids
    });
    // Subscribe in the middle of the storm, resuming after the first event.
    let mut s = server
        .subscribe_with(&id, &token, &[("Last-Event-ID", first.as_str())])
        .await;
    let ids = publisher.await.expect("publisher");
    let got: Vec<String> = s.take(ids.len()).await.into_iter().map(|e| e.id).collect();
    assert_eq!(got, ids);
    server.stop().await;
}

#[tokio::test]
async fn heartbeats_arrive_and_the_stream_opens_at_once() {
    let server = TestServer::start_with(|c| {
        c.pubsub.tick_frequency = sser::config::Span(Duration::from_millis(200));
        c.pubsub.retry = sser::config::Span(Duration::from_millis(1500));
    })
    .await;
    let (id, token) = server.create_topic(json!({})).await;
    let resp = server
        .http
        .get(server.url(&format!("/api/v1/pubsubs/{id}/events")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    // Headers arrived (send returned) before any event was published; the
    // retry hint comes first, then heartbeat comments.
    while text.matches(r#": {"status": "tick"}"#).count() < 2 {
        let chunk = tokio::time::timeout(DEADLINE, body.next())
            .await
            .expect("bytes in time")
            .expect("stream open")
            .expect("chunk");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(text.starts_with("retry: 1500\n"), "{text}");
    server.stop().await;
}

/// Ids can repeat: a publisher may reuse its own ids or pick one that equals
/// a server-assigned sequence. Resuming after an ambiguous id may repeat
/// events, but never skips one.
#[tokio::test]
async fn resume_after_an_ambiguous_id_never_skips() {
    let server = TestServer::start().await;
    let (id, token) = server.create_topic(json!({})).await;
    let mut ids = Vec::new();
    for m in ["a", "b", "c"] {
        ids.push(server.publish_ok(&id, json!({"message": m})).await);
    }
    assert_eq!(ids[0], "1");
    ids.push(
        server
            .publish_ok(&id, json!({"id": "1", "message": "d"}))
            .await,
    );
    ids.push(server.publish_ok(&id, json!({"message": "e"})).await);
    // A client that saw the server's event "1" resumes: it must get b..e.
    let mut s = server
        .subscribe_with(&id, &token, &[("Last-Event-ID", "1")])
        .await;
    let got: Vec<String> = s.take(4).await.into_iter().map(|e| e.data).collect();
    assert_eq!(got, ["b", "c", "d", "e"]);
    server.stop().await;
}
