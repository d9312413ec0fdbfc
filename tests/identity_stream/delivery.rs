//! What one identity stream delivers: its app's, user's and device's
//! inboxes and the topics its token allows, each event labelled; what a
//! send reaches; app isolation; devices of one user; send validation.

use super::*;

/// The parts of an SSE event a test compares.
fn seen(e: &eventsource_stream::Event) -> (String, String) {
    (e.event.clone(), e.data.clone())
}

#[tokio::test]
async fn one_stream_carries_inboxes_and_allowed_topics_labelled() {
    let server = start().await;
    let (topic, _) = server.create_topic(json!({})).await;
    let (other, _) = server.create_topic(json!({})).await;
    let mut c = claims("shop", "u1", Some("phone"));
    c["topics"] = json!([topic]);
    let tok = sign(&c);

    let mut stream = open(&server, &tok, &[("topic", &topic)]).await;
    let conn = stream.headers["x-connection-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(!conn.is_empty());
    assert!(server.hub.connections().get(&conn).is_some());

    send(&server, json!({"message": "to everyone"})).await;
    send(
        &server,
        json!({"users": ["u1"], "type": "order", "message": {"n": 1}}),
    )
    .await;
    send(
        &server,
        json!({"devices": [{"user": "u1", "device": "phone"}], "message": "ring"}),
    )
    .await;
    server
        .publish_ok(&topic, json!({"type": "t", "message": "news"}))
        .await;
    let got: Vec<_> = stream.take(4).await.iter().map(seen).collect();
    assert_eq!(
        got,
        [
            ("@app".into(), "to everyone".into()),
            ("@user:order".into(), r#"{"n":1}"#.into()),
            ("@device".into(), "ring".into()),
            (format!("{topic}:t"), "news".into()),
        ]
    );

    // Topics: 403 naming one the token does not allow (existing or not),
    // 404 only for an allowed one that does not exist, 400 for a bad id,
    // and 401 before any of them.
    let url = server.url("/api/v1/stream");
    let ask = |t: &str, bearer: &str| {
        server
            .http
            .get(&url)
            .query(&[("topic", t)])
            .bearer_auth(bearer)
    };
    let body = error_of(ask(&other, &tok).send().await.unwrap(), 403).await;
    assert!(body["error"]["message"].as_str().unwrap().contains(&other));
    error_of(ask("nope", &tok).send().await.unwrap(), 403).await;
    let mut any = claims("shop", "u1", None);
    any["topics"] = json!(["*"]);
    let any = sign(&any);
    let body = error_of(ask("nope", &any).send().await.unwrap(), 404).await;
    assert!(body["error"]["message"].as_str().unwrap().contains("nope"));
    error_of(ask("not a topic", &any).send().await.unwrap(), 400).await;
    error_of(ask(&other, "bad").send().await.unwrap(), 401).await;
    // No topics claim: only its own inboxes.
    let none = token("shop", "u1", None);
    error_of(ask(&topic, &none).send().await.unwrap(), 403).await;
    server.stop().await;
}

#[tokio::test]
async fn an_app_sees_nothing_of_another_app() {
    let server = start().await;
    // The same user and device names in two applications.
    let mut a = open(&server, &token("app-a", "u1", Some("d1")), &[]).await;
    let mut b = open(&server, &token("app-b", "u1", Some("d1")), &[]).await;
    for app in ["app-b", "app-a"] {
        let device = json!([{"user": "u1", "device": "d1"}]);
        for body in [
            json!({"app": app, "message": format!("{app} all")}),
            json!({"app": app, "users": ["u1"], "message": format!("{app} user")}),
            json!({"app": app, "devices": device, "message": format!("{app} device")}),
        ] {
            assert_eq!(send(&server, body).await["reached"], 1);
        }
    }
    let data = |events: Vec<eventsource_stream::Event>| -> Vec<String> {
        events.into_iter().map(|e| e.data).collect()
    };
    // A's first events are its own: nothing of B's came before them.
    assert_eq!(
        data(a.take(3).await),
        ["app-a all", "app-a user", "app-a device"]
    );
    assert_eq!(
        data(b.take(3).await),
        ["app-b all", "app-b user", "app-b device"]
    );
    // Nor can A replay B's inboxes: its cursor covers its own streams only.
    let mut again = open(
        &server,
        &token("app-a", "u1", Some("d1")),
        &[("last_event_id", "earliest")],
    )
    .await;
    assert_eq!(
        data(again.take(3).await),
        ["app-a all", "app-a user", "app-a device"]
    );
    let default = send(&server, json!({"users": ["u1"], "message": "default app"})).await;
    assert_eq!(default["app"], APP);
    assert_eq!(default["reached"], 0, "neither app's u1");
    server.stop().await;
}

#[tokio::test]
async fn a_device_send_reaches_one_of_three_devices() {
    let server = start().await;
    let mut devices = Vec::new();
    for d in ["d1", "d2", "d3"] {
        devices.push(open(&server, &token("shop", "u1", Some(d)), &[]).await);
    }
    let mut other_user = open(&server, &token("shop", "u2", Some("d2")), &[]).await;

    let sent = send(
        &server,
        json!({"devices": [{"user": "u1", "device": "d2"}], "id": "m-1", "message": "only d2"}),
    )
    .await;
    assert_eq!(sent["reached"], 1);
    assert_eq!(
        sent["events"],
        json!([{"to": "device", "user": "u1", "device": "d2", "id": "m-1"}])
    );
    let sent = send(&server, json!({"users": ["u1"], "message": "all of u1"})).await;
    assert_eq!(sent["reached"], 3);
    send(&server, json!({"message": "everyone"})).await;

    for (i, stream) in devices.iter_mut().enumerate() {
        let mut want = vec![("@user", "all of u1"), ("@app", "everyone")];
        if i == 1 {
            want.insert(0, ("@device", "only d2"));
        }
        let got = stream.take(want.len()).await;
        let got: Vec<(&str, &str)> = got
            .iter()
            .map(|e| (e.event.as_str(), e.data.as_str()))
            .collect();
        assert_eq!(got, want, "device d{}", i + 1);
    }
    // u2's device d2 is another device: names are per user.
    assert_eq!(other_user.expect_event().await.data, "everyone");
    server.stop().await;
}

#[tokio::test]
async fn send_reports_each_inbox_and_validates_like_publish() {
    let server = TestServer::start_with(|c| {
        with_identity(c);
        c.identity.max_send_targets = sser::config::Count(4);
        c.server.max_json_depth = sser::config::Count(4);
    })
    .await;
    let _u1 = open(&server, &token("shop", "u1", None), &[]).await;
    let sent = send(
        &server,
        json!({"app": "shop", "users": ["u1", "u2", "u1"], "devices": [{"user": "u1", "device": "x"}],
               "message": {"a": [1]}}),
    )
    .await;
    assert_eq!(sent["app"], "shop");
    assert_eq!(sent["reached"], 1, "u1's one connection; u2 is offline");
    let events = sent["events"].as_array().unwrap();
    assert_eq!(events.len(), 3, "u1 once, u2, the device: {sent}");
    assert_eq!(events[0]["to"], "user");
    assert_eq!(events[0]["user"], "u1");
    assert_eq!(events[2]["to"], "device");
    for e in events {
        assert!(e["id"].as_str().is_some_and(|id| !id.is_empty()));
    }
    let app = send(&server, json!({"app": "shop", "message": "x"})).await;
    assert_eq!(app["events"][0]["to"], "app");

    for (body, needle) in [
        (json!({"users": [], "message": 1}), "both empty"),
        (
            json!({"users": [], "devices": [], "message": 1}),
            "both empty",
        ),
        (json!({"users": [""], "message": 1}), "users[0]"),
        (json!({"devices": [{"user": "u"}], "message": 1}), "device"),
        (json!({"devices": ["u/d"], "message": 1}), "invalid"),
        (
            json!({"users": ["a", "b", "c", "d", "e"], "message": 1}),
            "identity.maxSendTargets",
        ),
        (json!({"app": "", "message": 1}), "app"),
        (json!({"users": ["u1"]}), "message"),
        (json!({"message": 1, "to": "u1"}), "unknown field"),
        (
            json!({"id": "a\nb", "message": 1}),
            "id must not contain a line break",
        ),
        (json!({"id": "earliest", "message": 1}), "id is reserved"),
        (json!({"type": "", "message": 1}), "type must not be empty"),
        (json!({"message": [[[[[1]]]]]}), "server.maxJsonDepth"),
    ] {
        let resp = try_send(&server, body.clone()).await;
        let err = error_of(resp, 400).await;
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{body}: {message}");
    }
    server.stop().await;
}
