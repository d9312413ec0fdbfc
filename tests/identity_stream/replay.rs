//! Missed while offline: events sent to a user or device while none of its
//! connections is open are replayed on reconnect with `Last-Event-ID` (or
//! `earliest`), in memory and, with the disk store, across a restart.
//! Token expiry ends a stream mid-way. Idle inboxes are closed.

use std::time::Duration;

use super::*;

fn data(events: &[eventsource_stream::Event]) -> Vec<String> {
    events.iter().map(|e| e.data.clone()).collect()
}

#[tokio::test]
async fn missed_while_offline_is_replayed_on_reconnect() {
    let server = start().await;
    let (topic, _) = server.create_topic(json!({})).await;
    let mut c = claims("shop", "u1", Some("phone"));
    c["topics"] = json!(["*"]);
    let tok = sign(&c);

    let mut online = open(&server, &tok, &[("topic", &topic)]).await;
    send(&server, json!({"users": ["u1"], "message": "seen"})).await;
    let seen = online.expect_event().await;
    assert_eq!(seen.data, "seen");
    drop(online);
    server
        .wait_until("the connection to close", || async {
            server.hub.connections().is_empty()
        })
        .await;

    // Offline: to the user, the device, the app and the topic.
    let offline = send(
        &server,
        json!({"users": ["u1"], "message": "u1 while away"}),
    )
    .await;
    assert_eq!(offline["reached"], 0);
    send(
        &server,
        json!({"devices": [{"user": "u1", "device": "phone"}], "message": "phone while away"}),
    )
    .await;
    send(&server, json!({"message": "app while away"})).await;
    server
        .publish_ok(&topic, json!({"message": "topic while away"}))
        .await;

    let mut back = open_with(
        &server,
        &tok,
        &[("topic", &topic)],
        &[("Last-Event-ID", &seen.id)],
    )
    .await;
    assert!(back.headers.get("x-sser-history-truncated").is_none());
    let replayed = back.take(4).await;
    let mut got = data(&replayed);
    got.sort();
    assert_eq!(
        got,
        [
            "app while away",
            "phone while away",
            "topic while away",
            "u1 while away"
        ]
    );
    // Then live, with no duplicate of what was replayed.
    send(&server, json!({"users": ["u1"], "message": "live"})).await;
    assert_eq!(back.expect_event().await.data, "live");
    let last = replayed.last().unwrap().id.clone();
    drop(back);

    // Resuming from a replayed event's cursor skips exactly what was sent.
    let mut again = open_with(
        &server,
        &tok,
        &[("topic", &topic)],
        &[("Last-Event-ID", &last)],
    )
    .await;
    assert_eq!(again.expect_event().await.data, "live");

    // `earliest`: everything retained, for a user who never connected.
    send(
        &server,
        json!({"users": ["newcomer"], "message": "welcome"}),
    )
    .await;
    let mut fresh = open(
        &server,
        &token("shop", "newcomer", None),
        &[("last_event_id", "earliest")],
    )
    .await;
    assert_eq!(data(&fresh.take(2).await), ["app while away", "welcome"]);
    server.stop().await;
}

#[tokio::test]
async fn the_stream_ends_with_token_expired_at_exp() {
    let server = start().await;
    let minted: Value = server
        .http
        .post(server.url("/api/v1/tokens"))
        .bearer_auth(API_TOKEN)
        .json(&json!({"user": "u1", "app": "shop", "ttl": 2}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tok = minted["token"].as_str().expect("token");
    let exp = minted["exp"].as_u64().expect("exp");
    let mut stream = open(&server, tok, &[]).await;
    send(
        &server,
        json!({"users": ["u1"], "message": "before expiry"}),
    )
    .await;
    assert_eq!(stream.expect_event().await.data, "before expiry");
    // The next event is the expiry notice (within the harness deadline),
    // not earlier than `exp`; then the stream ends.
    let notice = stream.expect_event().await;
    assert!(now() >= exp, "ended at {} before exp {exp}", now());
    assert_eq!(notice.event, "sser.token_expired");
    let body: Value = serde_json::from_str(&notice.data).unwrap();
    assert_eq!(body["status"], "token_expired");
    assert!(stream.next().await.is_none(), "the stream ends");
    server
        .wait_until("the expired connection to leave the registry", || async {
            server.hub.connections().is_empty()
        })
        .await;
    // The same token is now refused.
    let resp = server
        .http
        .get(server.url("/api/v1/stream"))
        .bearer_auth(tok)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(resp, 401).await["error"]["reason"],
        "token_expired"
    );
    server.stop().await;
}

#[tokio::test]
async fn idle_inboxes_are_closed_and_reopen_on_use() {
    let server = TestServer::start_with(|c| {
        with_identity(c);
        c.pubsub.tick_frequency = sser::config::Span(Duration::from_millis(50));
        c.identity.inbox.max_age = sser::config::Span(Duration::from_millis(300));
    })
    .await;
    let mut streams = Vec::new();
    for user in ["a", "b", "c"] {
        streams.push(open(&server, &token("shop", user, Some("d")), &[]).await);
    }
    // The app's broadcast, and each user's and device's inbox.
    assert_eq!(server.hub.open_inboxes(), 7);
    send(&server, json!({"users": ["a"], "message": "kept a while"})).await;
    drop(streams);
    server
        .wait_until("idle inboxes to close", || async {
            server.hub.open_inboxes() == 0
        })
        .await;
    // Reopened by use, with the missed event gone only by its age.
    let mut back = open(
        &server,
        &token("shop", "a", None),
        &[("last_event_id", "earliest")],
    )
    .await;
    send(&server, json!({"users": ["a"], "message": "new"})).await;
    assert_eq!(back.expect_event().await.data, "new");
    server.stop().await;
}

/// Sends to a user who is offline, restarts the server (the binary, with
/// the disk store), and replays them: inbox history is on disk, continues
/// its positions, and never shows up as a topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_events_survive_a_restart_on_disk() {
    for engine in ["redb", "sled"] {
        let dir = tempfile::tempdir().unwrap();
        let env = [
            ("SSER_PERSISTENT_STORE_ENABLED", "true"),
            ("SSER_KV_ENGINE", engine),
            ("SSER_JWT_SECRET", SECRET),
            ("SSER_IDENTITY_DEFAULT_APP", APP),
        ];
        let mut process = ServerProcess::start(dir.path(), &env);
        let api = process.api();
        let tok = token("shop", "u1", Some("phone"));
        let mut first = open(&api, &tok, &[]).await;
        send(&api, json!({"users": ["u1"], "message": "seen"})).await;
        let seen = first.expect_event().await;
        drop(first);
        for i in 0..3 {
            send(
                &api,
                json!({"users": ["u1"], "type": "t", "message": format!("missed {i}")}),
            )
            .await;
        }
        send(
            &api,
            json!({"devices": [{"user": "u1", "device": "phone"}], "message": "device missed"}),
        )
        .await;
        assert!(process.terminate().success(), "{engine}: clean exit");

        let process = ServerProcess::start(dir.path(), &env);
        let api = process.api();
        let listed = api.get_json("/api/v1/pubsubs", METRICS_TOKEN).await;
        assert_eq!(
            listed["pubsubs"],
            json!([]),
            "{engine}: inboxes are no topics"
        );
        let mut back = open_with(&api, &tok, &[], &[("Last-Event-ID", &seen.id)]).await;
        assert!(
            back.headers.get("x-sser-history-truncated").is_none(),
            "{engine}"
        );
        let got = back.take(4).await;
        assert_eq!(
            data(&got),
            ["missed 0", "missed 1", "missed 2", "device missed"],
            "{engine}"
        );
        assert_eq!(got[0].event, "@user:t");
        // Positions continue after the restart: the new event comes after.
        send(&api, json!({"users": ["u1"], "message": "after restart"})).await;
        assert_eq!(back.expect_event().await.data, "after restart", "{engine}");
        let mut earliest = open(&api, &tok, &[("last_event_id", "earliest")]).await;
        let all = earliest.take(6).await;
        assert_eq!(all[0].data, "seen", "{engine}");
        assert_eq!(all[5].data, "device missed", "{engine}");
    }
}
