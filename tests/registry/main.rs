//! The registry over HTTP, on real sockets with a real SSE parser: who is
//! connected (`GET /api/v1/connections`, `GET /api/v1/apps/:app/users/:user`)
//! with paging and app/user isolation, kicks by id, user and device (with
//! and without `block_seconds`), device take-over under a race of fifty
//! simultaneous connects, the reject policy, a taken-over connection's
//! reconnect refused while the device has its new owner, presence on its stream (with
//! replay) and as webhooks to a real receiver, the identity limits, and
//! the Prometheus series. Identity connections are `GET /api/v1/stream`
//! with signed tokens.

#[path = "../common/mod.rs"]
mod common;

mod kick;
mod limits;
mod listing;
mod presence;
mod retake;
mod takeover;

use std::time::Duration;

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sser::config::{Config, Span};
use sser::secret::Secret;

pub const SECRET: &str = "registry-test-secret-of-at-least-32b";

/// The server's `identity.defaultApp`, so kicks without `app` reach it.
pub const APP: &str = "shop";

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Identity on with the test secret and [`APP`] as the default
/// application; presence without grace, so offlines come at once.
pub fn with_identity(c: &mut Config) {
    c.identity.secret = Some(Secret::new(SECRET));
    c.identity.default_app = APP.into();
    c.presence.grace = Span(Duration::ZERO);
}

pub async fn start() -> TestServer {
    TestServer::start_with(with_identity).await
}

pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::start_with(|c| {
        with_identity(c);
        tweak(c);
    })
    .await
}

/// A token for `user` of `app` (on `device`), valid for `ttl` seconds
/// (negative: expired that long ago), with `topics` selectors.
pub fn token_with(
    app: &str,
    user: &str,
    device: Option<&str>,
    ttl: i64,
    topics: &[&str],
) -> String {
    let exp = now().saturating_add_signed(ttl);
    let mut claims = json!({"sub": user, "iss": app, "iat": now() - 1000, "exp": exp});
    if let Some(device) = device {
        claims["device"] = json!(device);
    }
    if !topics.is_empty() {
        claims["topics"] = json!(topics);
    }
    let key = EncodingKey::from_secret(SECRET.as_bytes()).expect("hmac key");
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).expect("signs")
}

/// A token for `user` of `app` (on `device`), valid for an hour.
pub fn token(app: &str, user: &str, device: Option<&str>) -> String {
    token_with(app, user, device, 3600, &[])
}

/// `GET /api/v1/stream` with `token`; the response, whatever it is.
pub async fn try_open(api: &Api, token: &str, query: &[(&str, &str)]) -> reqwest::Response {
    tokio::time::timeout(
        DEADLINE,
        api.http
            .get(api.url("/api/v1/stream"))
            .bearer_auth(token)
            .query(query)
            .send(),
    )
    .await
    .expect("stream request in time")
    .expect("stream request")
}

/// An identity stream that opened (200).
pub async fn open(api: &Api, token: &str) -> SseStream {
    open_with(api, token, &[]).await
}

pub async fn open_with(api: &Api, token: &str, query: &[(&str, &str)]) -> SseStream {
    let req = api
        .http
        .get(api.url("/api/v1/stream"))
        .bearer_auth(token)
        .query(query);
    let stream = SseStream::open(req).await;
    assert_eq!(stream.status, 200, "identity stream opens");
    stream
}

/// The registry id of a stream (its `X-Connection-Id`).
pub fn conn_id(stream: &SseStream) -> String {
    stream.headers["x-connection-id"]
        .to_str()
        .expect("ascii id")
        .to_string()
}

/// The presence stream, from `last_event_id` when given.
pub async fn presence_stream(api: &Api, last_event_id: Option<&str>) -> SseStream {
    let mut req = api
        .http
        .get(api.url("/api/v1/presence/stream"))
        .bearer_auth(API_TOKEN);
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id);
    }
    let stream = SseStream::open(req).await;
    assert_eq!(stream.status, 200, "presence stream opens");
    stream
}

/// The next presence event: (kind, its JSON), checking that the SSE event
/// name is the kind.
pub async fn next_presence(stream: &mut SseStream) -> (String, Value) {
    let event = stream.expect_event().await;
    let data: Value = serde_json::from_str(&event.data).expect("presence JSON");
    assert_eq!(data["kind"], event.event, "event name is the kind");
    (event.event, data)
}

/// `GET` with `token`: (status, JSON body).
pub async fn get(api: &Api, path: &str, token: &str) -> (u16, Value) {
    let resp = api
        .http
        .get(api.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

/// `POST /api/v1/kick` with the API token: (status, JSON body).
pub async fn kick(api: &Api, body: Value) -> (u16, Value) {
    let resp = api
        .http
        .post(api.url("/api/v1/kick"))
        .bearer_auth(API_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("kick request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

/// The ids of the connections `query` lists (API token, one page of 1000).
pub async fn listed(api: &Api, query: &str) -> Vec<String> {
    let (status, body) = get(
        api,
        &format!("/api/v1/connections?limit=1000&{query}"),
        API_TOKEN,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut ids: Vec<String> = body["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect();
    ids.sort();
    ids
}

/// Reads `stream` to its end; the events on the way (heartbeats are
/// comments, not events).
pub async fn drain(stream: &mut SseStream) -> Vec<eventsource_stream::Event> {
    let mut events = Vec::new();
    while let Some(event) = stream.next().await {
        events.push(event);
    }
    events
}

/// The stream's next event is the named notice and then it ends; its data.
pub async fn ends_with_notice(stream: &mut SseStream, name: &str) -> Value {
    let events = drain(stream).await;
    let last = events
        .last()
        .unwrap_or_else(|| panic!("no {name} before the end"));
    assert_eq!(last.event, name, "{events:?}");
    serde_json::from_str(&last.data).expect("notice JSON")
}

/// The value of an unlabelled series in `/metrics` (0 when absent).
pub async fn prom(api: &Api, name: &str) -> u64 {
    let text = api
        .http
        .get(api.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .expect("metrics request")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}
