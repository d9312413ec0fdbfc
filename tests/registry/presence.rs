//! Presence from real identity connections: on the presence stream (with
//! replay after `Last-Event-ID`), with the reason each connection ended
//! (disconnected, kicked, expired), as signed webhooks to a real receiver
//! that fails once, and in `/metrics`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use parking_lot::Mutex;

use super::*;

/// (kind, reason, device) of the next `n` presence events.
async fn presence_events(stream: &mut SseStream, n: usize) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let (kind, data) = next_presence(stream).await;
        assert_eq!(data["app"], APP);
        assert_eq!(data["user"], "u1");
        out.push((
            kind,
            data["reason"].as_str().unwrap().to_string(),
            data["device"].clone(),
        ));
    }
    out
}

fn kinds(events: &[(String, String, Value)]) -> Vec<(&str, &str)> {
    events
        .iter()
        .map(|(k, r, _)| (k.as_str(), r.as_str()))
        .collect()
}

#[tokio::test]
async fn the_presence_stream_follows_connections_and_replays_after_an_id() {
    let server = start().await;
    // Only the API token, in the header.
    for token in [METRICS_TOKEN, "wrong"] {
        let resp = server
            .http
            .get(server.url("/api/v1/presence/stream"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
    }
    let mut live = presence_stream(&server, None).await;

    let phone = open(&server, &token(APP, "u1", Some("phone"))).await;
    let mut first = Vec::new();
    for _ in 0..2 {
        first.push(live.expect_event().await);
    }
    assert_eq!(first[0].event, "user_online");
    assert_eq!(first[1].event, "device_online");
    let data: Value = serde_json::from_str(&first[1].data).unwrap();
    assert_eq!(data["connection_id"], conn_id(&phone));
    assert_eq!(data["device"], "phone");
    drop(phone);
    let events = presence_events(&mut live, 2).await;
    assert_eq!(
        kinds(&events),
        [
            ("device_offline", "disconnected"),
            ("user_offline", "disconnected")
        ]
    );

    // A kick is the reason of the offline it causes.
    let _phone = open(&server, &token(APP, "u1", Some("phone"))).await;
    presence_events(&mut live, 2).await;
    let (status, _) = kick(&server, json!({"users": ["u1"], "reason": "x"})).await;
    assert_eq!(status, 200);
    let events = presence_events(&mut live, 2).await;
    assert_eq!(
        kinds(&events),
        [("device_offline", "kicked"), ("user_offline", "kicked")]
    );

    // Resuming after the first event replays the seven after it, exactly.
    let mut resumed = presence_stream(&server, Some(&first[0].id)).await;
    let replayed = presence_events(&mut resumed, 7).await;
    assert_eq!(
        kinds(&replayed),
        [
            ("device_online", "connected"),
            ("device_offline", "disconnected"),
            ("user_offline", "disconnected"),
            ("user_online", "connected"),
            ("device_online", "connected"),
            ("device_offline", "kicked"),
            ("user_offline", "kicked"),
        ]
    );
    // `earliest` gives all eight.
    let mut all = presence_stream(&server, Some("earliest")).await;
    let everything = presence_events(&mut all, 8).await;
    assert_eq!(everything[0].0, "user_online");
    // And both go on live.
    let _laptop = open(&server, &token(APP, "u1", Some("laptop"))).await;
    for stream in [&mut live, &mut resumed, &mut all] {
        let events = presence_events(stream, 2).await;
        assert_eq!(events[1].2, "laptop");
    }
    server.stop().await;
}

#[tokio::test]
async fn an_expired_token_ends_its_stream_and_goes_offline_as_expired() {
    // No leeway, so the token ends when its exp says.
    let server = start_with(|c| c.identity.leeway = Span(Duration::ZERO)).await;
    let mut live = presence_stream(&server, None).await;

    let short = token_with(APP, "u1", Some("phone"), 2, &[]);
    let mut stream = open(&server, &short).await;
    presence_events(&mut live, 2).await;
    let notice = ends_with_notice(&mut stream, "sser.token_expired").await;
    assert_eq!(notice["status"], "token_expired");
    let events = presence_events(&mut live, 2).await;
    assert_eq!(
        kinds(&events),
        [("device_offline", "expired"), ("user_offline", "expired")]
    );
    assert!(listed(&server, "app=shop").await.is_empty());
    server.stop().await;
}

/// Every request a receiver got: its signature header and its body.
type Hits = Arc<Mutex<Vec<(String, Value)>>>;

/// A webhook receiver on a free port: 500 to its first request, then 204;
/// it keeps every body it got with its signature header.
struct Receiver {
    url: String,
    hits: Hits,
}

impl Receiver {
    async fn start() -> Receiver {
        let hits: Hits = Arc::default();
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(hits.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://{addr}/hook"),
            hits,
        }
    }
}

async fn receive(State(hits): State<Hits>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature = headers
        .get("x-sser-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut hits = hits.lock();
    hits.push((
        signature,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    ));
    if hits.len() == 1 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

#[tokio::test]
async fn webhooks_get_a_real_connect_and_disconnect_retrying_a_failure() {
    let receiver = Receiver::start().await;
    let url = receiver.url.clone();
    let server = start_with(move |c| {
        let hooks = &mut c.presence.webhooks;
        hooks.urls = sser::config::StringList(vec![url]);
        hooks.secret = Some(Secret::new("whsec"));
        hooks.backoff = Span(Duration::from_millis(50));
        hooks.max_backoff = Span(Duration::from_millis(200));
        // One at a time, so the first event is the one that fails.
        hooks.concurrency = sser::config::Count(1);
    })
    .await;

    let phone = open(&server, &token(APP, "u1", Some("phone"))).await;
    wait_until("the two onlines to be delivered", || async {
        prom(&server, "sser_webhooks_delivered_total").await == 2
    })
    .await;
    drop(phone);
    wait_until("the two offlines to be delivered", || async {
        prom(&server, "sser_webhooks_delivered_total").await == 4
    })
    .await;
    assert_eq!(prom(&server, "sser_webhooks_retried_total").await, 1);
    assert_eq!(prom(&server, "sser_webhooks_failed_total").await, 0);
    assert_eq!(prom(&server, "sser_webhooks_dropped_total").await, 0);

    let hits = receiver.hits.lock().clone();
    assert_eq!(hits.len(), 5, "four events, the first one twice");
    assert!(hits.iter().all(|(sig, _)| sig.starts_with("sha256=")));
    assert_eq!(hits[0].1, hits[1].1, "the failed one was retried as it was");
    let kinds: Vec<&str> = hits[1..]
        .iter()
        .map(|(_, body)| body["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "user_online",
            "device_online",
            "device_offline",
            "user_offline"
        ]
    );
    assert!(
        hits[1..]
            .iter()
            .all(|(_, b)| b["user"] == "u1" && b["app"] == APP)
    );
    server.stop().await;
}

#[tokio::test]
async fn metrics_count_connections_by_kind_and_who_is_online() {
    let server = start().await;
    let (topic, topic_token) = server.create_topic(json!({})).await;
    let _t = server.subscribe(&topic, &topic_token).await;
    let _p = presence_stream(&server, None).await;
    let _a = open(&server, &token(APP, "u1", Some("phone"))).await;
    let _b = open(&server, &token(APP, "u1", Some("laptop"))).await;
    let _c = open(&server, &token(APP, "u2", None)).await;

    let text = server
        .http
        .get(server.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "sser_stream_connections{kind=\"topic\"} 1",
        "sser_stream_connections{kind=\"identity\"} 3",
        "sser_stream_connections{kind=\"presence\"} 1",
        "sser_presence_users_online 2",
        "sser_presence_devices_online 2",
        "sser_webhooks_delivered_total 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
    assert!(!text.contains("u1"), "no per-user labels");

    // The dashboard's stats stream carries the same counts (its first
    // `stats` event is built when the stream opens).
    let mut stats = SseStream::open(
        server
            .http
            .get(server.url("/api/v1/metrics/stream"))
            .bearer_auth(METRICS_TOKEN),
    )
    .await;
    let first = stats.take(2).await;
    assert_eq!(first[1].event, "stats");
    let s: Value = serde_json::from_str(&first[1].data).expect("stats json");
    assert_eq!(
        s["identity"],
        json!({"users_online": 2, "devices_online": 2}),
        "{s}"
    );
    assert_eq!(
        s["streams"],
        json!({"topic": 1, "identity": 3, "presence": 1}),
        "{s}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_reconnect_within_the_grace_makes_no_offline_online_noise() {
    let server = start_with(|c| c.presence.grace = Span(Duration::from_secs(2))).await;
    let mut live = presence_stream(&server, None).await;
    let phone = token(APP, "u1", Some("phone"));

    let first = open(&server, &phone).await;
    presence_events(&mut live, 2).await;
    // A blip: gone and back well within the grace.
    drop(first);
    wait_until("the first connection to leave", || async {
        listed(&server, "app=shop").await.is_empty()
    })
    .await;
    let second = open(&server, &phone).await;
    let second_id = conn_id(&second);
    // Then a real departure: the offlines come after the grace, and they are
    // the next presence events (nothing for the blip): both name the second
    // connection, whose close caused them.
    drop(second);
    for kind in ["device_offline", "user_offline"] {
        let (got, data) = next_presence(&mut live).await;
        assert_eq!(got, kind);
        assert_eq!(data["reason"], "disconnected");
        assert_eq!(data["connection_id"], second_id.as_str(), "{data}");
    }
    server.stop().await;
}
