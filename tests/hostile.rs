//! Hostile input over real sockets (issue 9): malformed and oversized
//! bodies, framing-breaking ids and types, bad tokens, bytes that are not
//! ASCII, request-smuggling shapes and broken request lines. Each goes out
//! raw over its own TCP connection, byte for byte, because no well-behaved
//! client can produce most of them.
//!
//! Every one must get a 4xx, never a 5xx; afterwards the server must still be
//! healthy: `/healthz` answers and a real publish reaches a real subscriber.
//!
//! Most refusals carry the API's JSON error. The exceptions are refusals
//! hyper makes while reading the request head, before any of our code runs
//! (README, "API"): a bare status, and the connection closed. See
//! [`Expect::Hyper`].

#[path = "hostile/cases.rs"]
mod cases;
mod common;

use std::time::Duration;

use cases::*;
use common::raw::{self, RawResponse};
use common::*;
use serde_json::json;

/// Sends every case, each on its own connection, and checks the answer.
async fn run_cases(server: &TestServer, cases: Vec<Case>) {
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut failures = Vec::new();
    for case in cases {
        let resp = raw::send(&addr, &case.request, Duration::from_millis(200)).await;
        if let Err(why) = check(&case, &resp) {
            failures.push(format!(
                "{}: {why}\n    got {} {:?} {}",
                case.what,
                resp.status,
                resp.header("content-type"),
                resp.body_text().chars().take(200).collect::<String>()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn check(case: &Case, resp: &RawResponse) -> Result<(), String> {
    if resp.status >= 500 {
        return Err("a 5xx".into());
    }
    let body = resp.body_text();
    if body.contains(API_TOKEN) || body.contains(METRICS_TOKEN) {
        return Err("a token in the response".into());
    }
    if !resp.trailing.is_empty() {
        return Err(format!(
            "bytes after the response: {:?}",
            String::from_utf8_lossy(&resp.trailing)
        ));
    }
    match case.expect {
        Expect::Json(status) => {
            if resp.status != status {
                return Err(format!("expected {status}"));
            }
            if resp.json_error().is_none() {
                return Err("expected the API's JSON error".into());
            }
        }
        Expect::Hyper(status) => {
            if resp.status != status {
                return Err(format!("expected {status}"));
            }
            if !resp.closed {
                return Err("connection left open after a framing error".into());
            }
        }
        Expect::Served(status) => {
            if resp.status != status {
                return Err(format!("expected {status}"));
            }
        }
    }
    Ok(())
}

/// After all of it: health, and a real publish reaching a real subscriber.
async fn assert_healthy(server: &TestServer) {
    let health = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("healthz request");
    assert_eq!(health.status(), 200, "healthz after hostile input");
    let (topic, token) = server.create_topic(json!({})).await;
    let mut stream = server.subscribe(&topic, &token).await;
    assert_eq!(stream.status, 200);
    let id = server
        .publish_ok(&topic, json!({"id": "after", "message": {"still": "fine"}}))
        .await;
    let event = stream.expect_event().await;
    assert_eq!(
        (event.id.as_str(), event.data.as_str()),
        (id.as_str(), r#"{"still":"fine"}"#)
    );
}

#[tokio::test]
async fn malformed_bodies_are_refused_with_json() {
    let server = TestServer::start().await;
    let (topic, _) = server.create_topic(json!({})).await;
    let mut cases = malformed_bodies(&topic);
    cases.extend(bad_fields(&topic));
    run_cases(&server, cases).await;
    assert_eq!(
        server.metric("message_received").await,
        0,
        "nothing was published"
    );
    assert_healthy(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn bad_tokens_are_refused_with_json() {
    let server = TestServer::start().await;
    let (topic, _) = server.create_topic(json!({})).await;
    run_cases(&server, bad_tokens(&topic)).await;
    assert_eq!(
        server.metric("message_received").await,
        0,
        "nothing was published"
    );
    assert_healthy(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn smuggling_shapes_and_broken_heads_are_refused() {
    let server = TestServer::start().await;
    let (topic, _) = server.create_topic(json!({})).await;
    let mut cases = smuggling(&topic);
    cases.extend(broken_heads(&topic));
    run_cases(&server, cases).await;
    assert_eq!(
        server.metric("message_received").await,
        0,
        "nothing was published"
    );
    assert_healthy(&server).await;
    server.stop().await;
}

/// Bodies over `server.maxRequestBodySize` get 413, however they are framed,
/// without the server reading all of a huge declared body.
#[tokio::test]
async fn huge_bodies_are_413() {
    let server = TestServer::start_with(|c| {
        c.server.max_request_body_size = sser::config::Bytes(64 * 1024);
    })
    .await;
    let (topic, _) = server.create_topic(json!({})).await;
    let over = format!(r#"{{"event":{{"message":"{}"}}}}"#, "x".repeat(64 * 1024));
    let mut chunked = format!("{:x}\r\n", over.len()).into_bytes();
    chunked.extend_from_slice(over.as_bytes());
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let cases = vec![
        publish_case(
            "Content-Length over the limit",
            &topic,
            over.as_bytes(),
            Expect::Json(413),
        ),
        Case {
            what: "chunked over the limit".into(),
            request: request(
                "POST",
                &format!("/api/v1/pubsubs/{topic}/events"),
                &[&bearer(), "Transfer-Encoding: chunked"],
                &chunked,
            ),
            expect: Expect::Json(413),
        },
        Case {
            // Declares 100 MiB and sends the first 64 KiB: answered from the
            // header, not after reading 100 MiB.
            what: "100 MiB declared".into(),
            request: request(
                "POST",
                &format!("/api/v1/pubsubs/{topic}/events"),
                &[&bearer(), "Content-Length: 104857600"],
                over.as_bytes(),
            ),
            expect: Expect::Json(413),
        },
    ];
    run_cases(&server, cases).await;
    assert_healthy(&server).await;
    server.stop().await;
}

/// A request with both `Content-Length` and `Transfer-Encoding` is where a
/// proxy and the server may disagree on where the body ends, so that bytes
/// the proxy thinks are body become a second request (CL.TE smuggling).
/// RFC 9112 §6.1: the server may process it by Transfer-Encoding, but must
/// then close the connection, which is what hyper does. Here the "body" by
/// Content-Length hides a DELETE of another topic: it must never run.
#[tokio::test]
async fn content_length_with_transfer_encoding_never_runs_a_hidden_request() {
    let server = TestServer::start().await;
    let (topic, _) = server.create_topic(json!({})).await;
    let (victim, _) = server.create_topic(json!({})).await;
    let auth = bearer();
    let body = br#"{"event":{"message":"x"}}"#;
    let mut chunked = format!("{:x}\r\n", body.len()).into_bytes();
    chunked.extend_from_slice(body);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let hidden = format!("DELETE /api/v1/pubsubs/{victim} HTTP/1.1\r\nHost: x\r\n{auth}\r\n\r\n");
    let payload = [chunked.as_slice(), hidden.as_bytes()].concat();
    for order in [
        [
            "Transfer-Encoding: chunked".to_string(),
            format!("Content-Length: {}", payload.len()),
        ],
        [
            format!("Content-Length: {}", payload.len()),
            "Transfer-Encoding: chunked".to_string(),
        ],
    ] {
        let mut head =
            format!("POST /api/v1/pubsubs/{topic}/events HTTP/1.1\r\nHost: x\r\n{auth}\r\n");
        for h in &order {
            head.push_str(h);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let request = [head.as_bytes(), &payload].concat();
        let addr = server.base.trim_start_matches("http://").to_string();
        let resp = raw::send(&addr, &request, Duration::from_millis(500)).await;
        // hyper reads the body by Transfer-Encoding (a 201 for the publish)
        // and then closes the connection.
        assert_eq!(resp.status, 201, "{order:?}");
        assert!(
            resp.trailing.is_empty(),
            "{order:?}: a second response, so the hidden request ran: {:?}",
            String::from_utf8_lossy(&resp.trailing)
        );
        assert!(resp.closed, "{order:?}: connection left open");
    }
    let v = server
        .get_json(&format!("/api/v1/pubsubs/{victim}"), API_TOKEN)
        .await;
    assert_eq!(v["pubsub"]["id"], victim, "the hidden DELETE did not run");
    assert_healthy(&server).await;
    server.stop().await;
}

/// A message nested deeper than any subscriber's JSON parser will take is
/// refused (issue 9, item 5), as are ids with spaces at either end, which
/// could never come back through a `Last-Event-ID` header (item 3).
#[tokio::test]
async fn deep_messages_and_edge_space_ids_are_refused() {
    let server = TestServer::start().await;
    let (topic, _) = server.create_topic(json!({})).await;
    let cases = vec![
        publish_case(
            "message nested 100,000 deep",
            &topic,
            nested(100_000).as_bytes(),
            Expect::Json(400),
        ),
        publish_case(
            "message nested 10,000 deep",
            &topic,
            nested(10_000).as_bytes(),
            Expect::Json(400),
        ),
        publish_case(
            "id with a leading space",
            &topic,
            br#"{"event":{"id":" a","message":"x"}}"#,
            Expect::Json(400),
        ),
        publish_case(
            "id with a trailing space",
            &topic,
            br#"{"event":{"id":"a ","message":"x"}}"#,
            Expect::Json(400),
        ),
        publish_case(
            "id with a trailing tab",
            &topic,
            b"{\"event\":{\"id\":\"a\\t\",\"message\":\"x\"}}",
            Expect::Json(400),
        ),
    ];
    run_cases(&server, cases).await;
    assert_eq!(
        server.metric("message_received").await,
        0,
        "nothing was published"
    );
    assert_healthy(&server).await;
    server.stop().await;
}
