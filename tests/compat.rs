//! The compatibility-profile frame, on real sockets: a profile on the main
//! listener under a prefix, a profile on its own address (set through the
//! environment, as operators do), and the start-up check that refuses two
//! claimants of one path on one listener, naming both. The sse-notification-
//! service profile's `GET /health` stands in for any profile route.

mod common;

use std::collections::HashMap;

use common::*;
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use sser::Server;
use sser::config::Config;

const NS: &str = "sse-notification-service";

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

async fn get_json(url: &str) -> (StatusCode, Value) {
    let resp = reqwest::get(url).await.expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_profile_under_a_prefix_on_the_main_listener() {
    let server = TestServer::start_with(|c| {
        c.compat.notification_service.enabled = sser::config::Flag(true);
        c.compat.notification_service.prefix = "/ns".into();
    })
    .await;
    assert!(server.compat.is_empty(), "no listener of its own");

    let (status, body) = get_json(&server.url("/ns/health")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let resp = no_redirects()
        .get(server.url("/ns"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(resp.headers()["location"], "/ns/health");

    // Outside its prefix the profile is not there; sser's own routes are,
    // with the listener's middleware (request ids, JSON 404s).
    let (status, body) = get_json(&server.url("/health")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["message"], "no such endpoint", "{body}");
    let resp = reqwest::get(server.url("/ns/health"))
        .await
        .expect("request");
    assert!(resp.headers().contains_key("x-request-id"));
    assert_eq!(
        reqwest::get(server.url("/healthz")).await.unwrap().status(),
        StatusCode::OK
    );
    server.stop().await;
}

#[tokio::test]
async fn a_profile_on_its_own_address_from_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env: HashMap<String, String> = [
        ("PORT", "127.0.0.1:0"),
        ("SSER_API_ACCESS_TOKEN", API_TOKEN),
        ("SSER_METRICS_ACCESS_TOKEN", METRICS_TOKEN),
        ("SSER_COMPAT_NOTIFICATION_SERVICE_ADDR", "127.0.0.1:0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = Config::from_sources(dir.path(), &env).expect("config");
    let server = TestServer::start_config(config).await;
    let own = server.compat_base(NS);
    assert_ne!(own, server.base);

    // The original's exact paths, on its own port...
    let (status, body) = get_json(&format!("{own}/health")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let resp = no_redirects()
        .get(format!("{own}/"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(resp.headers()["location"], "/health");
    // ...with the same middleware: JSON 404s, request ids.
    let resp = reqwest::get(format!("{own}/api/v1/pubsubs"))
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(resp.headers().contains_key("x-request-id"));
    // Not on the main listener, whose own dashboard keeps `/`.
    let (status, _) = get_json(&server.url("/health")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Graceful shutdown closes the profile's listener too.
    let addr = own.trim_start_matches("http://").to_string();
    server.stop().await;
    assert!(tokio::net::TcpStream::connect(&addr).await.is_err());
}

#[tokio::test]
async fn a_path_claimed_twice_on_one_listener_stops_start_up() {
    // At the root of the main listener, the profile's `/` is the dashboard's.
    let mut config = test_config();
    config.compat.notification_service.enabled = sser::config::Flag(true);
    let err = match Server::bind(config.clone()).await {
        Ok(_) => panic!("start-up must fail"),
        Err(e) => e.to_string(),
    };
    for needle in [
        "compat.notificationService (sse-notification-service) claims /",
        "the dashboard",
        "compat.notificationService.prefix",
        "SSER_COMPAT_NOTIFICATION_SERVICE_ADDR",
        "server.dashboard",
    ] {
        assert!(err.contains(needle), "{needle:?} missing in: {err}");
    }
    // The prefix itself can land on one of sser's paths.
    config.compat.notification_service.prefix = "/metrics".into();
    let err = match Server::bind(config.clone()).await {
        Ok(_) => panic!("start-up must fail"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("claims /metrics"), "{err}");

    // Without the dashboard the root is free: the original's exact paths.
    config.compat.notification_service.prefix = String::new();
    config.server.dashboard = sser::config::Flag(false);
    let server = TestServer::start_config(config).await;
    let (status, body) = get_json(&server.url("/health")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    server.stop().await;
}

/// `http::paths` is what the conflict check compares against: each of its
/// paths must really be routed (an answer other than the fallback's).
#[tokio::test]
async fn the_native_path_list_matches_the_router() {
    let server = TestServer::start().await;
    let settings = sser::http::HttpSettings {
        dashboard: true,
        max_request_body_size: 1 << 20,
        cors_allowed_origins: vec![],
        cors_exempt: vec![],
    };
    for path in sser::http::paths(&settings) {
        let concrete: String = path
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let resp = reqwest::get(server.url(&concrete)).await.expect("request");
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert!(
            !body.contains("no such endpoint"),
            "{path} is in http::paths but not routed ({status})"
        );
    }
    server.stop().await;
}
