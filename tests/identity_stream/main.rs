//! Identity over HTTP, on real sockets with a real SSE parser: the one
//! stream per identity (`GET /api/v1/stream`), targeted sends
//! (`POST /api/v1/send`), minting (`POST /api/v1/tokens`), every bad-token
//! shape, expiry mid-stream, app isolation, offline replay (in memory and
//! across a restart on disk), and sends to one identity among many.

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod delivery;
mod fanout;
mod mint;
mod replay;

use std::time::Duration;

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sser::config::Config;
use sser::secret::Secret;

pub const SECRET: &str = "identity-stream-test-secret-of-32-bytes+";

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The application the tests' tokens name by default, and the server's
/// `identity.defaultApp`, so sends without `app` reach them.
pub const APP: &str = "shop";

/// Identity on, with the test secret, no leeway (so expiry is exact) and
/// [`APP`] as the default application.
pub fn with_identity(c: &mut Config) {
    c.identity.secret = Some(Secret::new(SECRET));
    c.identity.leeway = sser::config::Span(Duration::ZERO);
    c.identity.default_app = APP.into();
}

pub async fn start() -> TestServer {
    TestServer::start_with(with_identity).await
}

/// Claims for `user` of `app` (and `device`), valid for an hour.
pub fn claims(app: &str, user: &str, device: Option<&str>) -> Value {
    let mut c = json!({"sub": user, "iss": app, "iat": now(), "exp": now() + 3600});
    if let Some(device) = device {
        c["device"] = json!(device);
    }
    c
}

pub fn sign(claims: &Value) -> String {
    let key = EncodingKey::from_secret(SECRET.as_bytes()).expect("hmac key");
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).expect("signs")
}

/// A token for `user` of `app` on `device`.
pub fn token(app: &str, user: &str, device: Option<&str>) -> String {
    sign(&claims(app, user, device))
}

/// Opens `GET /api/v1/stream` with `token` in the header and `query`.
pub async fn open(server: &Api, token: &str, query: &[(&str, &str)]) -> SseStream {
    open_with(server, token, query, &[]).await
}

pub async fn open_with(
    server: &Api,
    token: &str,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> SseStream {
    let mut req = server
        .http
        .get(server.url("/api/v1/stream"))
        .bearer_auth(token)
        .query(query);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let stream = SseStream::open(req).await;
    assert_eq!(stream.status, 200, "identity stream opens");
    stream
}

/// `POST /api/v1/send` with the API token; the response.
pub async fn try_send(server: &Api, body: Value) -> reqwest::Response {
    server
        .http
        .post(server.url("/api/v1/send"))
        .bearer_auth(API_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("send request")
}

/// Sends and returns the 201 body.
pub async fn send(server: &Api, body: Value) -> Value {
    let resp = try_send(server, body.clone()).await;
    assert_eq!(resp.status(), 201, "send {body}");
    resp.json().await.expect("send body")
}

/// The JSON error body of a refused request, checked for shape.
pub async fn error_of(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status, "{}", resp.url().path());
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], status);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    body
}
