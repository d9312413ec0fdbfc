//! Each go-sse-broker defect listed in `other-seeds.md`, shown fixed (the
//! cluster ones, a dead node never noticed and one slow client stalling a
//! node's cross-node delivery, arrive with cluster mode: issue 13).

use super::*;
use serde_json::json;

#[tokio::test]
async fn the_last_id_really_resumes_by_query_header_and_last_event_id() {
    let server = start().await;
    let t = token(&server, "u", Some("phone")).await;
    let mut s = events(&server, &t, "phone", None).await;
    ok(get(&server, "/send?uid=u&data=seen").await);
    let seen = s.expect_event().await;
    drop(s);

    // Sent while it was away: to its user, to its device by name, to all.
    ok(get(&server, "/send?uid=u&data=one").await);
    ok(get(&server, "/send?device=phone&data=two").await);
    ok(get(&server, "/send?data=three").await);

    // ?id= (the README's JS), X-SSE-ID, and the browser's own Last-Event-ID
    // (which wins over a stale ?id= left in the URL) all resume exactly:
    // each of its inboxes (application, user, device) after its own last
    // event, so these three come back, once each, and nothing before.
    let mut by_query = events(&server, &t, "phone", Some(&seen.id)).await;
    assert_eq!(data_of(by_query.take(3).await), ["one", "three", "two"]);
    drop(by_query);
    let mut by_x_sse_id = SseStream::open(
        server
            .http
            .get(server.url("/events"))
            .header("X-SSE-Token", &t)
            .header("X-SSE-Device", "phone")
            .header("X-SSE-ID", &seen.id),
    )
    .await;
    assert_eq!(by_x_sse_id.expect_event().await.event, "sys_connected");
    assert_eq!(data_of(by_x_sse_id.take(3).await), ["one", "three", "two"]);
    drop(by_x_sse_id);
    let stale = format!("/events?token={}&device=phone&id=0", urlencode(&t));
    let mut by_header = SseStream::open(
        server
            .http
            .get(server.url(&stale))
            .header("Last-Event-ID", &seen.id),
    )
    .await;
    assert_eq!(by_header.expect_event().await.event, "sys_connected");
    assert_eq!(data_of(by_header.take(3).await), ["one", "three", "two"]);
    drop(by_header);

    // An id it never gave (an old numeric one) is said to be unknown, and
    // what is retained follows, never a silent gap.
    let mut unknown = events(&server, &t, "phone", Some("1098")).await;
    let mut notices = 0;
    let mut retained = Vec::new();
    while retained.len() < 4 {
        let e = unknown.expect_event().await;
        match e.event.as_str() {
            "sser.history_truncated" => notices += 1,
            _ => retained.push(e),
        }
    }
    assert!(notices > 0, "the unknown id is said to be unknown");
    assert_eq!(data_of(retained), ["one", "seen", "three", "two"]);
    server.stop().await;
}

/// The events' data, sorted (replay goes inbox by inbox).
fn data_of(events: Vec<eventsource_stream::Event>) -> Vec<String> {
    let mut data: Vec<String> = events.into_iter().map(|e| e.data).collect();
    data.sort();
    data
}

#[tokio::test]
async fn malformed_requests_get_400_and_the_process_lives_on() {
    let server = start().await;
    for (body, content_type) in [
        ("{", "application/json"),
        ("[1,2]", "application/json"),
        (r#"{"uid": {"x": 1}}"#, "application/json"),
    ] {
        let resp = server
            .http
            .post(server.url("/token"))
            .bearer_auth(API_TOKEN)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST");
        refused(400, answer(resp).await);
    }
    // What exited the original: a charset parameter, ttl=abc, a preflight.
    let resp = server
        .http
        .post(server.url("/token"))
        .bearer_auth(API_TOKEN)
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"uid": "1986"}"#)
        .send()
        .await
        .expect("charset");
    assert!(ok(answer(resp).await).is_string());
    assert!(refused(400, get(&server, "/token?uid=1&ttl=abc").await).contains("ttl"));
    let resp = server
        .http
        .post(server.url("/send"))
        .bearer_auth(API_TOKEN)
        .header("content-type", "multipart/form-data; boundary=x")
        .body("--x--")
        .send()
        .await
        .expect("multipart");
    refused(415, answer(resp).await);
    let preflight = server
        .http
        .request(reqwest::Method::OPTIONS, server.url("/send"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        refused(400, get(&server, "/send?uid=1").await),
        "data cannot be empty"
    );

    // Still serving.
    let healthz = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(healthz.status(), 200);
    assert!(ok(get(&server, "/token?uid=after").await).is_string());
    server.stop().await;
}

#[tokio::test]
async fn back_end_endpoints_require_the_api_token() {
    let server = start().await;
    for path in ["/token?uid=1", "/send?data=x", "/info", "/kick?uid=1"] {
        let resp = server
            .http
            .get(server.url(path))
            .send()
            .await
            .expect("no token");
        assert!(
            refused(401, answer(resp).await).contains("API token"),
            "{path}"
        );
        let resp = server
            .http
            .get(server.url(path))
            .bearer_auth("wrong")
            .send()
            .await
            .expect("wrong token");
        assert_eq!(
            refused(401, answer(resp).await),
            "invalid API token",
            "{path}"
        );
    }
    // The metrics token reads /info, and nothing else.
    let info = server
        .http
        .get(server.url("/info"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .expect("info");
    assert_eq!(ok(answer(info).await)["instance_count"], 1);
    let send = server
        .http
        .get(server.url("/send?data=x"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .expect("send");
    refused(401, answer(send).await);
    server.stop().await;
}

#[tokio::test]
async fn an_allow_listed_back_end_may_go_without_the_token() {
    let server = start_with(|c| {
        c.compat.go_sse_broker.unauthenticated_from =
            sser::config::StringList(vec!["127.0.0.0/8".into()]);
    })
    .await;
    let plain = |path: &str| server.http.get(server.url(path)).send();
    let t = ok(answer(plain("/token?uid=legacy").await.expect("token")).await);
    let mut s = events(&server, t.as_str().expect("token"), "d", None).await;
    assert_eq!(
        ok(answer(plain("/send?uid=legacy&data=x").await.expect("send")).await),
        1
    );
    assert_eq!(s.expect_event().await.data, "x");
    // A wrong token is still wrong, from anywhere.
    let resp = server
        .http
        .get(server.url("/send?data=x"))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("wrong");
    refused(401, answer(resp).await);
    server.stop().await;
}

#[tokio::test]
async fn no_user_can_push_another_users_device_off() {
    let server = start().await;
    let mut alice = connect(&server, "alice", "phone").await;
    let mut bob = connect(&server, "bob", "phone").await;
    ok(get(&server, "/send?uid=alice,bob&data=both-online").await);
    assert_eq!(
        alice.expect_event().await.data,
        "both-online",
        "alice was not pushed off"
    );
    assert_eq!(bob.expect_event().await.data, "both-online");
    let alice_info = ok(get(&server, "/info?uid=alice").await);
    assert_eq!(alice_info["devices"].as_array().map(Vec::len), Some(1));
    server.stop().await;
}

#[tokio::test]
async fn a_reconnect_race_never_drops_the_live_device_from_its_user() {
    let server = start().await;
    // The old stream of a device ends after the new one opened (what a
    // reconnect does): the user, and the device, stay online.
    let mut old = connect(&server, "u", "phone").await;
    let mut new = connect(&server, "u", "phone").await;
    until_end(&mut old).await;
    drop(old);
    let info = ok(get(&server, "/info?uid=u").await);
    assert_eq!(info["online"], true);
    assert_eq!(info["devices"][0]["device_name"], "phone");
    assert_eq!(ok(get(&server, "/send?uid=u&data=x").await), 1);
    assert_eq!(new.expect_event().await.data, "x");
    server.stop().await;
}

#[tokio::test]
async fn tokens_are_checked() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let server = start().await;
    let sign = |secret: &[u8], claims: Value| {
        let key = EncodingKey::from_secret(secret).expect("key");
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).expect("signs")
    };
    let far = 4_000_000_000u64;
    let forged = sign(
        b"not-the-secret-not-the-secret!!!",
        json!({"sub": "u", "exp": far}),
    );
    let other_app = sign(
        SECRET.as_bytes(),
        json!({"sub": "u", "iss": "another-app", "exp": far}),
    );
    let expired = sign(
        SECRET.as_bytes(),
        json!({"sub": "u", "exp": 1_000_000_000u64}),
    );
    for bad in [
        forged.as_str(),
        other_app.as_str(),
        expired.as_str(),
        "garbage",
    ] {
        let resp = server
            .http
            .get(server.url(&format!("/events?token={}&device=d", urlencode(bad))))
            .send()
            .await
            .expect("events");
        assert!(refused(401, answer(resp).await).starts_with("Invalid token"));
    }
    // A lifetime beyond identity.mint.maxTtl is refused, not capped quietly.
    let too_long = get(&server, &format!("/token?uid=u&ttl={}", 400 * 24 * 3600)).await;
    assert!(refused(400, too_long).contains("ttl"));
    server.stop().await;
}

/// There a page pushed off with `sys_extrude_offline` reconnected (its
/// `EventSource` sees an ordinary end) and pushed the newer page off in
/// turn, for ever. Here that reconnect (with the id it was last sent, by
/// `Last-Event-ID` or its `?id=`) is refused in the envelope, with 409,
/// which stops an `EventSource`; a new page still takes the device.
#[tokio::test]
async fn a_page_pushed_off_does_not_push_the_new_one_off_in_turn() {
    let server = start().await;
    let t = token(&server, "u", Some("phone")).await;
    let mut first = events(&server, &t, "phone", None).await;
    ok(get(&server, "/send?device=phone&data=seen").await);
    let seen = first.expect_event().await;
    let mut second = events(&server, &t, "phone", None).await;
    let ends = until_end(&mut first).await;
    assert_eq!(
        ends.last().map(|e| e.event.as_str()),
        Some("sys_extrude_offline")
    );

    let url = format!("/events?token={}&device=phone", urlencode(&t));
    let by_header = server
        .http
        .get(server.url(&url))
        .header("Last-Event-ID", &seen.id)
        .send()
        .await
        .expect("reconnect");
    let msg = refused(409, answer(by_header).await);
    assert!(msg.contains("taken over by a newer connection"), "{msg}");
    let by_query = format!("{url}&id={}", urlencode(&seen.id));
    refused(409, get(&server, &by_query).await);

    ok(get(&server, "/send?device=phone&data=still-second").await);
    assert_eq!(second.expect_event().await.data, "still-second");
    // A new page (no id) takes it over, as always.
    let _third = events(&server, &t, "phone", None).await;
    let ends = until_end(&mut second).await;
    assert_eq!(
        ends.last().map(|e| e.event.as_str()),
        Some("sys_extrude_offline")
    );
    server.stop().await;
}
