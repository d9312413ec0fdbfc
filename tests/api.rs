//! Black-box tests of the REST API over real sockets: every endpoint, every
//! auth failure, every validation error, CORS, limits and metrics.

mod common;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn create_publish_subscribe_delete() {
    let server = TestServer::start().await;
    let (id, token) = server.create_topic(json!({})).await;
    assert_eq!(id.len(), 11);
    assert_eq!(token.len(), 64);
    let mut stream = server.subscribe(&id, &token).await;
    assert_eq!(stream.status, 200);
    let published = server
        .publish_ok(&id, json!({"type": "greet", "message": "hello\nworld"}))
        .await;
    let event = stream.expect_event().await;
    assert_eq!(event.id, published);
    assert_eq!(event.event, "greet");
    assert_eq!(event.data, "hello\nworld");

    let resp = server.delete_topic(&id).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.text().await.unwrap(), "");
    let closed = stream.expect_event().await;
    assert_eq!(closed.data, r#"{"status": "closed"}"#);
    assert!(stream.next().await.is_none(), "stream ends after close");
    server.stop().await;
}

#[tokio::test]
async fn create_variants_and_response_shape() {
    let server = TestServer::start().await;
    for body in [
        "",
        "{}",
        "null",
        r#"{"pubsub":null}"#,
        r#"{"pubsub":{"persist":false}}"#,
    ] {
        let resp = server
            .http
            .post(server.url("/api/v1/pubsubs"))
            .header("Authorization", API_TOKEN) // SSER's bare form
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "body {body:?}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/json",
            "JSON bodies say so"
        );
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["pubsub"]["persist"], false);
        assert!(v["pubsub"]["created_at"].as_str().unwrap().ends_with('Z'));
    }
    // Persistence is off in this server: a clear 400 that creates nothing.
    let before = server.metric("topics").await;
    let resp = server
        .http
        .post(server.url("/api/v1/pubsubs"))
        .bearer_auth(API_TOKEN)
        .json(&json!({"pubsub": {"persist": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Persistent store is not available")
    );
    assert_eq!(
        server.metric("topics").await,
        before,
        "failed create counts nothing"
    );
    server.stop().await;
}

#[tokio::test]
async fn auth_failures_never_echo_tokens() {
    let server = TestServer::start().await;
    let (id, token) = server.create_topic(json!({})).await;
    let wrong = "wrong-token-value-1234";
    let cases: Vec<(reqwest::RequestBuilder, &str)> = vec![
        (
            server.http.post(server.url("/api/v1/pubsubs")),
            "create, no token",
        ),
        (
            server
                .http
                .post(server.url("/api/v1/pubsubs"))
                .bearer_auth(wrong),
            "create, wrong token",
        ),
        (
            // A topic token is not an API token.
            server
                .http
                .post(server.url("/api/v1/pubsubs"))
                .bearer_auth(&token),
            "create, topic token",
        ),
        (
            server
                .http
                .delete(server.url(&format!("/api/v1/pubsubs/{id}")))
                .bearer_auth(wrong),
            "delete, wrong token",
        ),
        (
            server
                .http
                .post(server.url(&format!("/api/v1/pubsubs/{id}/events")))
                .bearer_auth(METRICS_TOKEN)
                .body(r#"{"event":{"message":"x"}}"#),
            "publish, metrics token",
        ),
        (
            server
                .http
                .get(server.url(&format!("/api/v1/pubsubs/{id}/events"))),
            "subscribe, no token",
        ),
        (
            server
                .http
                .get(server.url(&format!("/api/v1/pubsubs/{id}/events")))
                .bearer_auth(wrong),
            "subscribe, wrong token",
        ),
        (
            // 401 before 404: a wrong token learns nothing about which topics exist.
            server
                .http
                .get(server.url("/api/v1/pubsubs/doesnotexist/events"))
                .bearer_auth(wrong),
            "subscribe, unknown topic, wrong token",
        ),
        (
            // The query token is read only when the header is absent.
            server
                .http
                .get(server.url(&format!("/api/v1/pubsubs/{id}/events?access_token={token}")))
                .bearer_auth(wrong),
            "subscribe, wrong header beats right query",
        ),
        (
            server
                .http
                .get(server.url("/api/v1/metrics"))
                .bearer_auth(wrong),
            "metrics, wrong token",
        ),
        (
            // Metrics and API tokens are header-only.
            server
                .http
                .get(server.url(&format!("/api/v1/metrics?access_token={METRICS_TOKEN}"))),
            "metrics, query token",
        ),
        (
            server
                .http
                .get(server.url("/api/v1/pubsubs"))
                .bearer_auth(&token),
            "list, topic token",
        ),
        (
            // The API token is honoured in the header only, never the query.
            server.http.get(server.url(&format!(
                "/api/v1/pubsubs/{id}/events?access_token={API_TOKEN}"
            ))),
            "subscribe, API token in query",
        ),
    ];
    for (req, what) in cases {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{what}");
        assert_eq!(resp.headers()["content-type"], "application/json", "{what}");
        let text = resp.text().await.unwrap();
        assert!(!text.contains(wrong), "{what}: token echoed: {text}");
        assert!(!text.contains(&token), "{what}: token echoed: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"]["code"], 401, "{what}");
    }
    // With the API token, an unknown topic is a plain 404.
    let resp = server
        .http
        .get(server.url("/api/v1/pubsubs/doesnotexist/events"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    server.stop().await;
}

/// Input limits (issue 9, item 5): a message nested deeper than
/// `server.maxJsonDepth` is refused by name and reaches nobody; one at the
/// limit goes through; a misspelt `retention` key is refused by name.
#[tokio::test]
async fn deep_messages_and_unknown_retention_keys_are_refused() {
    let server =
        TestServer::start_with(|c| c.server.max_json_depth = sser::config::Count(16)).await;
    let (id, token) = server.create_topic(json!({})).await;
    let mut stream = server.subscribe(&id, &token).await;
    let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    for depth in [17, 100_000] {
        let body = format!(r#"{{"event":{{"message":{}}}}}"#, nested(depth));
        let resp = server
            .http
            .post(server.url(&format!("/api/v1/pubsubs/{id}/events")))
            .bearer_auth(API_TOKEN)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "depth {depth}");
        let v: Value = resp.json().await.unwrap();
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("server.maxJsonDepth"), "{message}");
    }
    let body = format!(r#"{{"event":{{"message":{}}}}}"#, nested(16));
    let resp = server
        .http
        .post(server.url(&format!("/api/v1/pubsubs/{id}/events")))
        .bearer_auth(API_TOKEN)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(stream.expect_event().await.data, nested(16));

    let resp = server
        .http
        .post(server.url("/api/v1/pubsubs"))
        .bearer_auth(API_TOKEN)
        .json(&json!({"pubsub": {"retention": {"max_event": 5}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("max_event"), "names the key: {message}");
    assert_eq!(server.hub.topics().len(), 1, "no topic was created");
    server.stop().await;
}

#[tokio::test]
async fn subscribe_token_forms() {
    let server = TestServer::start().await;
    let (id, token) = server.create_topic(json!({})).await;
    let path = format!("/api/v1/pubsubs/{id}/events");
    let requests = [
        server.http.get(server.url(&path)).bearer_auth(&token),
        server
            .http
            .get(server.url(&path))
            .header("Authorization", &token),
        server
            .http
            .get(server.url(&format!("{path}?access_token={token}"))),
        // The operator may tail any topic with the API token.
        server.http.get(server.url(&path)).bearer_auth(API_TOKEN),
    ];
    for req in requests {
        let stream = SseStream::open(req).await;
        assert_eq!(stream.status, 200);
        assert_eq!(stream.headers["content-type"], "text/event-stream");
        assert_eq!(stream.headers["cache-control"], "no-cache");
        assert_eq!(stream.headers["x-accel-buffering"], "no");
    }
    server.stop().await;
}

#[tokio::test]
async fn publish_validation_errors_change_nothing() {
    let server = TestServer::start().await;
    let (id, token) = server.create_topic(json!({})).await;
    let mut stream = server.subscribe(&id, &token).await;
    let long = "x".repeat(257);
    let bad_bodies: Vec<(String, &str)> = vec![
        ("not json".into(), "invalid JSON"),
        ("{}".into(), "missing event"),
        (r#"{"event":{}}"#.into(), "missing message"),
        (
            r#"{"event":{"id":"a\nb","message":"x"}}"#.into(),
            "LF in id",
        ),
        (
            r#"{"event":{"id":"a\rb","message":"x"}}"#.into(),
            "CR in id",
        ),
        (
            r#"{"event":{"id":"a\u0000b","message":"x"}}"#.into(),
            "NUL in id",
        ),
        (r#"{"event":{"id":"","message":"x"}}"#.into(), "empty id"),
        (
            r#"{"event":{"type":"a\nb","message":"x"}}"#.into(),
            "LF in type",
        ),
        (
            r#"{"event":{"type":"a\r\nretry: 1","message":"x"}}"#.into(),
            "CRLF in type",
        ),
        (
            r#"{"event":{"type":"","message":"x"}}"#.into(),
            "empty type",
        ),
        (
            format!(r#"{{"event":{{"id":"{long}","message":"x"}}}}"#),
            "long id",
        ),
        (r#"{"event":{"id":5,"message":"x"}}"#.into(), "numeric id"),
        (
            r#"{"event":{"id":"earliest","message":"x"}}"#.into(),
            "reserved id",
        ),
        (
            r#"{"event":{"id":" padded ","message":"x"}}"#.into(),
            "id with edge spaces",
        ),
    ];
    for (body, what) in &bad_bodies {
        let resp = server
            .http
            .post(server.url(&format!("/api/v1/pubsubs/{id}/events")))
            .bearer_auth(API_TOKEN)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{what}");
        let v: Value = resp.json().await.unwrap();
        assert!(v["error"]["message"].as_str().is_some(), "{what}");
    }
    assert_eq!(server.metric("message_received").await, 0);
    // Nothing reached the stream: the next event is the next valid publish.
    let ok = server.publish_ok(&id, json!({"message": "valid"})).await;
    let event = stream.expect_event().await;
    assert_eq!(
        (event.id.as_str(), event.data.as_str()),
        (ok.as_str(), "valid")
    );
    // Unknown topic on publish and delete: 404.
    for req in [
        server
            .http
            .post(server.url("/api/v1/pubsubs/nope/events"))
            .bearer_auth(API_TOKEN)
            .body(r#"{"event":{"message":"x"}}"#),
        server
            .http
            .delete(server.url("/api/v1/pubsubs/nope"))
            .bearer_auth(API_TOKEN),
    ] {
        assert_eq!(req.send().await.unwrap().status(), 404);
    }
    server.stop().await;
}

#[tokio::test]
async fn messages_of_any_json_type() {
    let server = TestServer::start().await;
    let (id, token) = server.create_topic(json!({})).await;
    let mut stream = server.subscribe(&id, &token).await;
    let cases = [
        (r#""plain text""#, "plain text"),
        (
            r#"{ "order_id": 9001, "status" : "shipped" }"#,
            r#"{"order_id":9001,"status":"shipped"}"#,
        ),
        (r#"{"z": 1, "a": 2}"#, r#"{"z":1,"a":2}"#),
        ("42", "42"),
        ("1.5e3", "1.5e3"),
        ("[1, \"two\", null]", r#"[1,"two",null]"#),
        ("true", "true"),
        ("null", "null"),
        (r#""""#, ""),
        (r#""line1\r\nline2\rline3""#, "line1\nline2\nline3"),
    ];
    for (message, _) in &cases {
        let body = format!(r#"{{"event":{{"message":{message}}}}}"#);
        let resp = server
            .http
            .post(server.url(&format!("/api/v1/pubsubs/{id}/events")))
            .bearer_auth(API_TOKEN)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{message}");
    }
    for (message, expected) in cases {
        assert_eq!(stream.expect_event().await.data, expected, "{message}");
    }
    server.stop().await;
}

#[tokio::test]
async fn publisher_ids_are_the_sse_ids() {
    let server = TestServer::start().await;
    let (id, token) = server.create_topic(json!({})).await;
    let mut stream = server.subscribe(&id, &token).await;
    let a = server.publish_ok(&id, json!({"message": "a"})).await;
    let b = server
        .publish_ok(
            &id,
            json!({"id": "order-update-456", "type": "ORDER_SHIPPED", "message": "b"}),
        )
        .await;
    let c = server.publish_ok(&id, json!({"message": "c"})).await;
    assert_eq!(b, "order-update-456");
    let na: u64 = a.parse().unwrap();
    let nc: u64 = c.parse().unwrap();
    assert!(nc > na, "server ids increase within a topic");
    let got: Vec<String> = stream.take(3).await.into_iter().map(|e| e.id).collect();
    assert_eq!(got, vec![a, b, c]);
    server.stop().await;
}

#[tokio::test]
async fn body_limit_is_413_json() {
    let server = TestServer::start_with(|c| {
        c.server.max_request_body_size = sser::config::Bytes(1024);
    })
    .await;
    let (id, _) = server.create_topic(json!({})).await;
    let big = json!({"event": {"message": "x".repeat(4096)}});
    let resp = server
        .http
        .post(server.url(&format!("/api/v1/pubsubs/{id}/events")))
        .bearer_auth(API_TOKEN)
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], 413);
    assert_eq!(server.metric("message_received").await, 0);
    server.stop().await;
}

#[tokio::test]
async fn cors_preflight_on_every_endpoint() {
    let server = TestServer::start_with(|c| {
        c.server.cors.allowed_origins =
            sser::config::StringList(vec!["https://app.example".into()]);
    })
    .await;
    for (path, method) in [
        ("/api/v1/pubsubs", "POST"),
        ("/api/v1/pubsubs/abc", "DELETE"),
        ("/api/v1/pubsubs/abc/events", "POST"),
        ("/api/v1/pubsubs/abc/events", "GET"),
        ("/api/v1/metrics", "GET"),
    ] {
        let resp = server
            .http
            .request(reqwest::Method::OPTIONS, server.url(path))
            .header("Origin", "https://app.example")
            .header("Access-Control-Request-Method", method)
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{method} {path}");
        let h = resp.headers();
        assert_eq!(h["access-control-allow-origin"], "https://app.example");
        assert!(
            h["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains(method)
        );
        assert!(
            h["access-control-allow-headers"]
                .to_str()
                .unwrap()
                .contains("authorization")
        );
        assert_eq!(h["access-control-allow-credentials"], "true");
    }
    // An origin not on the list gets no CORS grant.
    let resp = server
        .http
        .request(reqwest::Method::OPTIONS, server.url("/api/v1/pubsubs"))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    server.stop().await;
}

/// Credentials only for origins listed by name (issue 9, item 4): with the
/// default `*`, any origin may call the API but no page can use a visitor's
/// cookies, and `null` (sandboxed frames, local files) never gets them.
#[tokio::test]
async fn cors_grants_credentials_only_to_named_origins() {
    let preflight = |server: &TestServer, origin: &str| {
        server
            .http
            .request(reqwest::Method::OPTIONS, server.url("/api/v1/pubsubs"))
            .header("Origin", origin.to_string())
            .header("Access-Control-Request-Method", "POST")
            .send()
    };
    let server = TestServer::start().await;
    for origin in ["https://any.example", "null"] {
        let resp = preflight(&server, origin).await.unwrap();
        let h = resp.headers();
        assert_eq!(h["access-control-allow-origin"], origin);
        assert!(
            h.get("access-control-allow-credentials").is_none(),
            "{origin}: no credentials under `*`"
        );
        // A simple request gets the same answer as its preflight.
        let resp = server
            .http
            .get(server.url("/healthz"))
            .header("Origin", origin)
            .send()
            .await
            .unwrap();
        assert!(
            resp.headers()
                .get("access-control-allow-credentials")
                .is_none()
        );
    }
    server.stop().await;

    let server = TestServer::start_with(|c| {
        c.server.cors.allowed_origins = sser::config::StringList(vec![
            "*".into(),
            "https://app.example".into(),
            "null".into(),
        ]);
    })
    .await;
    let resp = preflight(&server, "https://app.example").await.unwrap();
    assert_eq!(resp.headers()["access-control-allow-credentials"], "true");
    for origin in ["https://other.example", "null"] {
        let resp = preflight(&server, origin).await.unwrap();
        assert_eq!(resp.headers()["access-control-allow-origin"], origin);
        assert!(
            resp.headers()
                .get("access-control-allow-credentials")
                .is_none(),
            "{origin}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn static_topics_from_config() {
    let server = TestServer::start_with(|c| {
        c.pubsub.static_pub_subs = vec![sser::config::StaticPubSub {
            id: "news".into(),
            name: Some("News".into()),
            token: sser::secret::Secret::new("news-token"),
        }];
    })
    .await;
    let mut stream = server.subscribe("news", "news-token").await;
    assert_eq!(stream.status, 200);
    let id = server.publish_ok("news", json!({"message": "hi"})).await;
    assert_eq!(stream.expect_event().await.id, id);
    let resp = server.delete_topic("news").await;
    assert_eq!(resp.status(), 409);
    assert_eq!(server.metric("static_topics").await, 1);
    server.stop().await;
}

#[tokio::test]
async fn metrics_track_topics_and_subscribers_without_leaks() {
    // An hour between heartbeats: a client that goes away must be noticed from
    // the connection itself, not from the next heartbeat write.
    let server = TestServer::start_with(|c| {
        c.pubsub.tick_frequency = sser::config::Span(std::time::Duration::from_secs(3600));
    })
    .await;
    let names: Vec<String> = {
        let v: Value = server.get_json("/api/v1/metrics", METRICS_TOKEN).await;
        v["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        &names[..7],
        [
            "topics",
            "static_topics",
            "active_topics",
            "subscribers",
            "active_subscribers",
            "message_received",
            "message_sent"
        ]
    );
    let (id, token) = server.create_topic(json!({})).await;
    let (id2, _) = server.create_topic(json!({})).await;
    let s1 = server.subscribe(&id, &token).await;
    let mut s2 = server.subscribe(&id, &token).await;
    assert_eq!(server.metric("topics").await, 2);
    assert_eq!(server.metric("active_topics").await, 1);
    assert_eq!(server.metric("active_subscribers").await, 2);
    server.publish_ok(&id, json!({"message": "m"})).await;
    s2.expect_event().await;
    assert_eq!(server.metric("message_received").await, 1);
    drop(s1);
    server
        .wait_until("dropped subscriber is counted out", || async {
            server.metric("active_subscribers").await == 1
        })
        .await;
    // Deleting the topic ends the remaining stream; nothing leaks.
    for t in [&id, &id2] {
        let resp = server.delete_topic(t).await;
        assert_eq!(resp.status(), 204);
    }
    assert_eq!(s2.expect_event().await.data, r#"{"status": "closed"}"#);
    assert!(s2.next().await.is_none());
    server
        .wait_until("all subscribers counted out", || async {
            server.metric("active_subscribers").await == 0
        })
        .await;
    assert_eq!(server.metric("topics").await, 0);
    assert_eq!(server.metric("active_topics").await, 0);
    assert_eq!(server.metric("subscribers").await, 2);
    assert!(server.metric("message_sent").await >= 2);
    server.stop().await;
}

#[tokio::test]
async fn topic_listing() {
    let server = TestServer::start().await;
    let (id, token) = server.create_topic(json!({})).await;
    let _s = server.subscribe(&id, &token).await;
    server.publish_ok(&id, json!({"message": "m"})).await;
    let v: Value = server
        .get_json(&format!("/api/v1/pubsubs/{id}"), METRICS_TOKEN)
        .await;
    assert_eq!(v["pubsub"]["id"], id.as_str());
    assert_eq!(v["pubsub"]["subscribers"], 1);
    assert_eq!(v["pubsub"]["events_published"], 1);
    assert_eq!(v["pubsub"]["history_events"], 1);
    assert!(
        v["pubsub"].get("token").is_none(),
        "listing never shows tokens"
    );
    let v: Value = server.get_json("/api/v1/pubsubs", API_TOKEN).await;
    assert_eq!(v["pubsubs"].as_array().unwrap().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn health_readiness_request_ids_and_unknown_paths() {
    let server = TestServer::start().await;
    let resp = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id1 = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "ok");
    let resp = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let id2 = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(id1, id2);
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "ready");
    // A caller's own request id is kept.
    let resp = server
        .http
        .get(server.url("/healthz"))
        .header("x-request-id", "trace-me")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-me");
    let resp = server
        .http
        .get(server.url("/no/such/path"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], 404);
    server.stop().await;
}

/// Failures axum detects before a handler runs are JSON errors too.
#[tokio::test]
async fn framework_rejections_are_json() {
    let server = TestServer::start().await;
    let resp = server
        .http
        .put(server.url("/api/v1/pubsubs"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert!(resp.headers()["allow"].to_str().unwrap().contains("POST"));
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], 405);
    assert_eq!(v["error"]["message"], "method not allowed");

    let (id, _) = server.create_topic(json!({})).await;
    let resp = server
        .http
        .get(server.url(&format!(
            "/api/v1/pubsubs/{id}/events?access_token=a&access_token=b"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], 400);
    server.stop().await;
}

/// Per-topic retention fills unset limits from the defaults, and no request
/// can make an in-memory topic hold more than `historySize`.
#[tokio::test]
async fn topic_retention_cannot_unbound_memory() {
    let server = TestServer::start_with(|c| c.pubsub.history_size = sser::config::Count(5)).await;
    for retention in [
        json!({}),
        json!({"max_age": 60_000}),
        json!({"max_events": 1_000_000}),
    ] {
        let (id, _) = server
            .create_topic(json!({"pubsub": {"retention": retention}}))
            .await;
        for i in 0..20 {
            server.publish_ok(&id, json!({"message": i})).await;
        }
        let v: Value = server
            .get_json(&format!("/api/v1/pubsubs/{id}"), API_TOKEN)
            .await;
        assert_eq!(v["pubsub"]["history_events"], 5, "retention {retention}");
    }
    server.stop().await;
}

/// A request head over `server.maxHeaderSize` (8 KiB by default) is refused
/// with 431, one under it is served, and the server goes on serving.
#[tokio::test]
async fn oversized_request_head_is_431() {
    let server = TestServer::start().await;
    for (size, status) in [(7_000, 200), (10_000, 431), (7_000, 200)] {
        let resp = server
            .http
            .get(server.url("/healthz"))
            .header("x-big", "y".repeat(size))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{size}-byte header");
    }
    server.stop().await;
}
