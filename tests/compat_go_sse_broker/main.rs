//! The go-sse-broker profile over HTTP, as its users meet it: every
//! endpoint of its README (`/token`, `/send`, `/events`, `/info`, `/kick`)
//! in both request forms and every response field ([`readme`]), each
//! defect `other-seeds.md` lists shown fixed ([`defects`]), its config
//! terms ([`terms`]), and its query flow in headless Chromium
//! ([`browser`]). Real server, real sockets, a real SSE parser.

#[path = "../common/mod.rs"]
mod common;

mod browser;
mod defects;
mod readme;
mod terms;

use common::*;
use serde_json::Value;
use sser::config::{Config, Flag, Span};
use sser::secret::Secret;

pub const SECRET: &str = "go-sse-broker-test-secret-of-32-bytes";

/// The profile on the main listener at go-sse-broker's own paths, with the
/// test secret; presence without grace.
pub fn enable(c: &mut Config) {
    c.compat.go_sse_broker.enabled = Flag(true);
    // `Config::finish` maps compat.goSseBroker.jwt.secret onto this (see
    // `terms`); tests build their Config directly.
    c.identity.secret = Some(Secret::new(SECRET));
    c.presence.grace = Span(std::time::Duration::ZERO);
}

pub async fn start() -> TestServer {
    TestServer::start_with(enable).await
}

pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::start_with(|c| {
        enable(c);
        tweak(c);
    })
    .await
}

/// The HTTP status and the JSON body of a response.
pub async fn answer(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body = resp.text().await.expect("body");
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (status, v)
}

/// `GET <path_and_query>` with the API token.
pub async fn get(server: &TestServer, path_and_query: &str) -> (u16, Value) {
    let resp = server
        .http
        .get(server.url(path_and_query))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("GET");
    answer(resp).await
}

/// `POST <path>` with a JSON body and the API token.
pub async fn post(server: &TestServer, path: &str, body: Value) -> (u16, Value) {
    let resp = server
        .http
        .post(server.url(path))
        .bearer_auth(API_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("POST");
    answer(resp).await
}

/// The `result` of a successful envelope, after checking the envelope:
/// HTTP 200, `code` 1, `msg` "success", `micro` a number of µs.
pub fn ok((status, v): (u16, Value)) -> Value {
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["code"], 1, "{v}");
    assert_eq!(v["msg"], "success", "{v}");
    assert!(v["micro"].is_u64(), "micro: {v}");
    v["result"].clone()
}

/// A refused envelope: HTTP `status`, `code` the same, `result` "";
/// returns `msg`.
pub fn refused(expected: u16, (status, v): (u16, Value)) -> String {
    assert_eq!(status, expected, "{v}");
    assert_eq!(v["code"], expected, "{v}");
    assert_eq!(v["result"], "", "{v}");
    assert!(v["micro"].is_u64(), "micro: {v}");
    v["msg"].as_str().expect("msg").to_string()
}

/// A token from `/token` for `uid` (bound to `device` when given).
pub async fn token(server: &TestServer, uid: &str, device: Option<&str>) -> String {
    let query = match device {
        Some(d) => format!("/token?uid={uid}&device={}", urlencode(d)),
        None => format!("/token?uid={uid}"),
    };
    ok(get(server, &query).await)
        .as_str()
        .expect("a token")
        .to_string()
}

pub fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `GET /events?token=…&device=…[&id=…]`, the README's browser flow,
/// checked to open with `sys_connected`.
pub async fn events(server: &TestServer, token: &str, device: &str, id: Option<&str>) -> SseStream {
    let mut url = format!(
        "/events?token={}&device={}",
        urlencode(token),
        urlencode(device)
    );
    if let Some(id) = id {
        url.push_str(&format!("&id={}", urlencode(id)));
    }
    let mut stream = SseStream::open(server.http.get(server.url(&url))).await;
    assert_eq!(stream.status, 200);
    let first = stream.expect_event().await;
    assert_eq!(
        (first.event.as_str(), first.data.as_str(), first.id.as_str()),
        ("sys_connected", "127.0.0.1", ""),
        "the first frame"
    );
    stream
}

/// A user's stream on `device` with a fresh token.
pub async fn connect(server: &TestServer, uid: &str, device: &str) -> SseStream {
    let token = token(server, uid, None).await;
    events(server, &token, device, None).await
}

/// Waits until the stream ends; returns the events it got on the way.
pub async fn until_end(stream: &mut SseStream) -> Vec<eventsource_stream::Event> {
    let mut seen = Vec::new();
    while let Some(event) = stream.next().await {
        seen.push(event);
    }
    seen
}
