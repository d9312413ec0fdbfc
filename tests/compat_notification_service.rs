//! The sse-notification-service profile, walked as its README's users do:
//! `GET /health`, `GET /sse` with the token in `Authorization: Bearer` or
//! `?Authorization=`, `X-Connection-Id`, `GET /connections/{app}` and
//! `/{app}/{user}` in its JSON shape (204 when empty), the `ping` event, and
//! producers' messages (here `POST /api/v1/send`, the HTTP equivalent of its
//! Redis `PUBLISH {app}:channel:{user}`). The server is configured the way
//! its users are: its own address and the original's `JWT_SECRET`.
//!
//! Each defect of the original (`other-seeds.md`, `seeds-wire.md`) is shown
//! fixed: a token without `iss` or `sub`, or an empty `Bearer`, is a 401
//! and the process lives on; a token lists only its own application; the
//! token's expiry ends the stream; the `ping` carries no `id:` (it reset the
//! browser's last event id), and a reconnect resumes. A real Chromium
//! `EventSource` with the query token checks the last two end to end.

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sser::config::Config;

const NS: &str = "sse-notification-service";
const SECRET: &str = "notification-service-test-secret-32b!";
const APP: &str = "app-id-1";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The README's payload: `sub` the user, `iss` the application.
fn claims(app: &str, user: &str) -> Value {
    json!({"sub": user, "iss": app, "iat": now(), "exp": now() + 3600})
}

fn sign_with(claims: &Value, alg: Algorithm) -> String {
    let key = EncodingKey::from_secret(SECRET.as_bytes()).expect("hmac key");
    jsonwebtoken::encode(&Header::new(alg), claims, &key).expect("signs")
}

fn sign(claims: &Value) -> String {
    sign_with(claims, Algorithm::HS256)
}

/// sser with the profile on its own address, configured from the
/// environment as a user moving over would: the original's `JWT_SECRET`,
/// no clock leeway (expiry is exact), and `extra`.
struct Ns {
    server: TestServer,
    /// The profile's own listener.
    base: String,
}

impl Ns {
    async fn start(extra: &[(&str, &str)]) -> Ns {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut env: HashMap<String, String> = [
            ("PORT", "127.0.0.1:0"),
            ("SSER_API_ACCESS_TOKEN", API_TOKEN),
            ("SSER_METRICS_ACCESS_TOKEN", METRICS_TOKEN),
            ("SSER_COMPAT_NOTIFICATION_SERVICE_ADDR", "127.0.0.1:0"),
            ("JWT_SECRET", SECRET),
            ("SSER_JWT_LEEWAY", "0"),
            // Pings only where a test asks for them.
            ("SSER_COMPAT_NOTIFICATION_SERVICE_PING_INTERVAL", "1h"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        let config = Config::from_sources(dir.path(), &env).expect("config");
        let server = TestServer::start_config(config).await;
        let base = server.compat_base(NS);
        Ns { server, base }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET /sse` with `Authorization: Bearer <token>`.
    async fn sse(&self, token: &str) -> SseStream {
        SseStream::open(self.server.http.get(self.url("/sse")).bearer_auth(token)).await
    }

    async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.server
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// What a producer published with `PUBLISH {app}:channel:{user}
    /// '{"id","type","data"}'`, sent the HTTP way.
    async fn publish(&self, app: &str, user: &str, id: &str, kind: &str, data: Value) {
        let resp = self
            .server
            .http
            .post(self.server.url("/api/v1/send"))
            .bearer_auth(API_TOKEN)
            .json(&json!({"app": app, "users": [user], "id": id, "type": kind, "message": data}))
            .send()
            .await
            .expect("send");
        assert_eq!(
            resp.status(),
            StatusCode::CREATED,
            "{:?}",
            resp.text().await
        );
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

/// The next event named `name`, skipping others (pings, notices).
async fn next_named(stream: &mut SseStream, name: &str) -> eventsource_stream::Event {
    loop {
        let event = stream.expect_event().await;
        if event.event == name {
            return event;
        }
    }
}

async fn error_status(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn walks_the_readme() {
    let ns = Ns::start(&[]).await;

    // Health endpoint.
    let resp = reqwest::get(ns.url("/health")).await.expect("health");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"status": "ok"}));

    // Main SSE socket, token in the header.
    let token = sign(&claims(APP, "user-id-1"));
    let mut stream = ns.sse(&token).await;
    assert_eq!(stream.status, StatusCode::OK);
    assert_eq!(stream.headers["content-type"], "text/event-stream");
    assert_eq!(stream.headers["cache-control"], "no-cache");
    let conn_id = stream.headers["x-connection-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(!conn_id.is_empty());

    // A producer sends into the user's channel; the client receives it by
    // its type, data as JSON.
    ns.publish(APP, "user-id-1", "100", "event", json!({"hello": "world"}))
        .await;
    let event = next_named(&mut stream, "event").await;
    assert_eq!(
        serde_json::from_str::<Value>(&event.data).unwrap(),
        json!({"hello": "world"})
    );
    assert!(!event.id.is_empty(), "every event has an id to resume from");

    // A second client of another user, token in the query (browsers).
    let other = sign(&claims(APP, "user-id-2"));
    let mut second = SseStream::open(
        ns.server
            .http
            .get(ns.url(&format!("/sse?Authorization={other}"))),
    )
    .await;
    assert_eq!(second.status, StatusCode::OK);
    let second_id = second.headers["x-connection-id"]
        .to_str()
        .unwrap()
        .to_string();

    // Every connection of the application, by user then connection id.
    let resp = ns.get(&format!("/connections/{APP}"), &token).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let all: Value = resp.json().await.unwrap();
    let entry = &all["user-id-1"][&conn_id];
    assert_eq!(entry["id"], conn_id);
    assert_eq!(entry["remote_addr"], "");
    assert_eq!(entry["application"], json!({"id": APP}));
    assert_eq!(entry["user"], json!({"id": "user-id-1"}));
    let created = entry["created_at"].as_u64().expect("unix seconds");
    assert!(created <= now() && created + 60 > now(), "{created}");
    assert_eq!(
        all["user-id-2"][&second_id]["user"],
        json!({"id": "user-id-2"})
    );
    assert_eq!(all.as_object().unwrap().len(), 2, "{all}");

    // One user's connections.
    let one: Value = ns
        .get(&format!("/connections/{APP}/user-id-2"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one.as_object().unwrap().len(), 1, "{one}");
    assert_eq!(one[&second_id]["application"], json!({"id": APP}));

    // The second user's messages reach only the second user.
    ns.publish(APP, "user-id-2", "101", "order", json!({"n": "1"}))
        .await;
    assert_eq!(next_named(&mut second, "order").await.data, r#"{"n":"1"}"#);

    // Nobody connected: 204 with no body.
    drop(stream);
    drop(second);
    let url = format!("/connections/{APP}");
    ns.server
        .wait_until("both streams closed", || async {
            ns.get(&url, &token).await.status() == StatusCode::NO_CONTENT
        })
        .await;
    let resp = ns
        .get(&format!("/connections/{APP}/user-id-1"), &token)
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(resp.bytes().await.unwrap().is_empty());
    ns.stop().await;
}

#[tokio::test]
async fn root_redirects_to_health() {
    let ns = Ns::start(&[]).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client.get(ns.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(resp.headers()["location"], "/health");
    ns.stop().await;
}

/// The original's heartbeat, `id: 1` / `event: ping` / `data: null`, reset
/// every browser's last event id to 1. Here it has no `id:` line.
#[tokio::test]
async fn the_ping_event_carries_no_id() {
    let ns = Ns::start(&[("SSER_COMPAT_NOTIFICATION_SERVICE_PING_INTERVAL", "1s")]).await;
    let token = sign(&claims(APP, "u"));
    let resp = ns.get("/sse", &token).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let started = std::time::Instant::now();
    while text.matches("event: ping").count() < 2 {
        let chunk = tokio::time::timeout(DEADLINE, body.next())
            .await
            .expect("a ping in time")
            .expect("the stream goes on")
            .expect("body bytes");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    // About once a second (the first after one interval, not at once).
    assert!(started.elapsed() >= Duration::from_millis(1500), "{text:?}");
    for frame in text.split("\n\n").filter(|f| f.contains("event: ping")) {
        assert_eq!(frame, "event: ping\ndata: null", "{text:?}");
    }
    ns.stop().await;
}

#[tokio::test]
async fn a_reconnect_resumes_from_last_event_id() {
    let ns = Ns::start(&[]).await;
    let token = sign(&claims(APP, "u"));
    let mut stream = ns.sse(&token).await;
    ns.publish(APP, "u", "1", "event", json!({"n": "1"})).await;
    let first = next_named(&mut stream, "event").await;
    drop(stream);
    // Sent while the client is away.
    ns.publish(APP, "u", "2", "event", json!({"n": "2"})).await;
    ns.publish(APP, "u", "3", "event", json!({"n": "3"})).await;
    let mut stream = SseStream::open(
        ns.server
            .http
            .get(ns.url("/sse"))
            .bearer_auth(&token)
            .header("Last-Event-ID", &first.id),
    )
    .await;
    assert!(!stream.headers.contains_key("x-sser-history-truncated"));
    assert_eq!(next_named(&mut stream, "event").await.data, r#"{"n":"2"}"#);
    assert_eq!(next_named(&mut stream, "event").await.data, r#"{"n":"3"}"#);
    ns.stop().await;
}

#[tokio::test]
async fn tokens_the_original_crashed_on_are_401s() {
    let ns = Ns::start(&[]).await;
    let no_iss = sign(&json!({"sub": "u", "exp": now() + 60}));
    let no_sub = sign(&json!({"iss": APP, "exp": now() + 60}));
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "no iss",
            ns.server.http.get(ns.url("/sse")).bearer_auth(&no_iss),
        ),
        (
            "no sub",
            ns.server.http.get(ns.url("/sse")).bearer_auth(&no_sub),
        ),
        (
            "no iss, query",
            ns.server
                .http
                .get(ns.url(&format!("/sse?Authorization={no_iss}"))),
        ),
        (
            "empty Bearer",
            ns.server
                .http
                .get(ns.url("/sse"))
                .header("Authorization", "Bearer"),
        ),
        (
            "Bearer and a space",
            ns.server
                .http
                .get(ns.url("/sse"))
                .header("Authorization", "Bearer "),
        ),
        ("no token", ns.server.http.get(ns.url("/sse"))),
        (
            "empty query",
            ns.server.http.get(ns.url("/sse?Authorization=")),
        ),
        (
            "not a JWT",
            ns.server.http.get(ns.url("/sse")).bearer_auth("nope"),
        ),
        (
            "another key",
            ns.server.http.get(ns.url("/sse")).bearer_auth(
                jsonwebtoken::encode(
                    &Header::new(Algorithm::HS256),
                    &claims(APP, "u"),
                    &EncodingKey::from_secret(b"some-other-secret-of-32-bytes-or-so").unwrap(),
                )
                .unwrap(),
            ),
        ),
        (
            "listing without iss",
            ns.server
                .http
                .get(ns.url(&format!("/connections/{APP}")))
                .bearer_auth(&no_iss),
        ),
    ];
    for (what, request) in cases {
        let (status, body) = error_status(request.send().await.expect(what)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(body["error"]["code"], 401, "{what}: {body}");
        // The process lives on.
        assert_eq!(
            reqwest::get(ns.url("/health")).await.unwrap().status(),
            StatusCode::OK
        );
    }
    let (_, body) = error_status(ns.get("/sse", &no_iss).await).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"iss\""),
        "{body}"
    );
    let (_, body) = error_status(ns.get("/sse", &no_sub).await).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"sub\""),
        "{body}"
    );
    ns.stop().await;
}

#[tokio::test]
async fn any_hmac_algorithm_as_the_original() {
    let ns = Ns::start(&[]).await;
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let stream = ns.sse(&sign_with(&claims(APP, "u"), alg)).await;
        assert_eq!(stream.status, StatusCode::OK, "{alg:?}");
    }
    ns.stop().await;
}

#[tokio::test]
async fn a_token_lists_only_its_own_application() {
    let ns = Ns::start(&[]).await;
    let mine = sign(&claims(APP, "u"));
    let theirs = sign(&claims("app-id-2", "v"));
    let _stream = ns.sse(&theirs).await;
    for path in ["/connections/app-id-2", "/connections/app-id-2/v"] {
        let (status, body) = error_status(ns.get(path, &mine).await).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(APP),
            "{body}"
        );
        // Its own token, and the API token, may.
        assert_eq!(
            ns.get(path, &theirs).await.status(),
            StatusCode::OK,
            "{path}"
        );
        assert_eq!(
            ns.get(path, API_TOKEN).await.status(),
            StatusCode::OK,
            "{path}"
        );
    }
    ns.stop().await;
}

#[tokio::test]
async fn expiry_ends_the_stream() {
    let ns = Ns::start(&[]).await;
    let mut short = claims(APP, "u");
    short["exp"] = json!(now() + 1);
    let token = sign(&short);
    let mut stream = ns.sse(&token).await;
    assert_eq!(stream.status, StatusCode::OK);
    let last = next_named(&mut stream, "sser.token_expired").await;
    assert!(last.data.contains("token_expired"), "{}", last.data);
    assert!(stream.next().await.is_none(), "the stream ends");
    assert_eq!(
        ns.get("/sse", &token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    ns.stop().await;
}

/// The original passed a message's `id` and `type` into the stream as they
/// came: a line break in either forged frames.
#[tokio::test]
async fn unsafe_ids_and_types_are_refused() {
    let ns = Ns::start(&[]).await;
    for (id, kind) in [("1\ndata: forged", "event"), ("1", "event\nid: 9")] {
        let resp = ns
            .server
            .http
            .post(ns.server.url("/api/v1/send"))
            .bearer_auth(API_TOKEN)
            .json(&json!({"app": APP, "users": ["u"], "id": id, "type": kind, "message": {}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    }
    ns.stop().await;
}

/// A real `EventSource` in headless Chromium, token in `?Authorization=`:
/// it receives a producer's message by type, then pings whose
/// `lastEventId` is still that message's id; kicked, it reconnects by
/// itself and gets, exactly once, what was sent while it was away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventsource_in_headless_chromium() {
    let chromium = browser::chromium();
    let dir = browser::driver_dir();
    let ns = Ns::start(&[
        ("SSER_COMPAT_NOTIFICATION_SERVICE_PING_INTERVAL", "1s"),
        ("SSER_RETRY", "1500ms"),
    ])
    .await;
    let token = sign(&claims(APP, "browser-user"));
    let child = tokio::process::Command::new("node")
        .arg("notification-service.e2e.mjs")
        .current_dir(&dir)
        .env("NS_URL", &ns.base)
        .env("SSER_URL", &ns.server.base)
        .env("SSER_API_TOKEN", API_TOKEN)
        .env("NS_TOKEN", &token)
        .env("NS_APP", APP)
        .env("NS_USER", "browser-user")
        .env("CHROMIUM", &chromium)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (install Node.js to run the browser test)");
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the browser test finished within 2 minutes")
        .expect("node exit status");
    ns.stop().await;
    assert!(
        output.status.success(),
        "the browser test failed ({}); see its output above",
        output.status
    );
}
