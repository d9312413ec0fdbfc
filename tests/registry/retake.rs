//! After a take-over, the replaced connection's automatic reconnect (the
//! `Last-Event-ID` it was last sent) is refused with 409 while the device
//! has its new owner (`identity.takeoverGuard`), so an `EventSource` stops
//! instead of taking the device back; a new stream (no `Last-Event-ID`)
//! still takes over, and nothing else is refused.

use std::time::Duration;

use super::*;

/// `GET /api/v1/stream` as an `EventSource` reconnects: with
/// `Last-Event-ID` when given.
async fn reconnect(api: &Api, token: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let mut req = api.http.get(api.url("/api/v1/stream")).bearer_auth(token);
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id);
    }
    tokio::time::timeout(DEADLINE, req.send())
        .await
        .expect("stream request in time")
        .expect("stream request")
}

/// A reconnect with `Last-Event-ID` that is let in (200).
async fn resume(api: &Api, token: &str, last_event_id: &str) -> SseStream {
    let req = api
        .http
        .get(api.url("/api/v1/stream"))
        .bearer_auth(token)
        .header("Last-Event-ID", last_event_id);
    let stream = SseStream::open(req).await;
    assert_eq!(stream.status, 200, "the reconnect is let in");
    stream
}

/// Sends `message` to u1's phone; the stream `to` receives it: its id.
async fn send_to_phone(server: &TestServer, to: &mut SseStream, message: u32) -> String {
    let resp = server
        .http
        .post(server.url("/api/v1/send"))
        .bearer_auth(API_TOKEN)
        .json(&json!({"devices": [{"user": "u1", "device": "phone"}], "message": message}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let event = to.expect_event().await;
    assert_eq!(event.data, message.to_string());
    event.id
}

async fn assert_refused_as_taken_over(resp: reqwest::Response) {
    assert_eq!(resp.status(), 409);
    assert_eq!(
        resp.headers()["content-type"],
        "application/json",
        "not text/event-stream: an EventSource fails for good"
    );
    let body: Value = resp.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("taken over by a newer connection"),
        "{body}"
    );
    assert!(message.contains("open a new stream"), "{body}");
}

#[tokio::test]
async fn the_replaced_tabs_reconnect_is_refused_and_a_new_stream_still_takes_over() {
    let server = start().await;
    let phone = token(APP, "u1", Some("phone"));
    let mut tab1 = open(&server, &phone).await;
    let seen_by_tab1 = send_to_phone(&server, &mut tab1, 1).await;

    let mut tab2 = open(&server, &phone).await;
    ends_with_notice(&mut tab1, "sser.taken_over").await;

    // Tab 1's EventSource comes back with the id it was last sent: refused,
    // however often, and tab 2 keeps the device.
    for _ in 0..3 {
        assert_refused_as_taken_over(reconnect(&server, &phone, Some(&seen_by_tab1)).await).await;
    }
    assert_eq!(listed(&server, "app=shop").await, [conn_id(&tab2)]);
    let seen_by_tab2 = send_to_phone(&server, &mut tab2, 2).await;

    // The new owner's own reconnect (its socket died unnoticed) resumes and
    // takes over its old connection: never refused, and it leaves no guard,
    // so a second blip before any new event gets in too.
    let mut tab2_again = resume(&server, &phone, &seen_by_tab2).await;
    ends_with_notice(&mut tab2, "sser.taken_over").await;
    let mut tab2_third = resume(&server, &phone, &seen_by_tab2).await;
    ends_with_notice(&mut tab2_again, "sser.taken_over").await;

    // A page that deliberately takes its device back opens a new stream
    // (no Last-Event-ID): that takes over as always.
    let tab1_new = open(&server, &phone).await;
    ends_with_notice(&mut tab2_third, "sser.taken_over").await;
    assert_eq!(listed(&server, "app=shop").await, [conn_id(&tab1_new)]);
    server.stop().await;
}

#[tokio::test]
async fn once_the_new_owner_is_gone_the_old_tab_may_come_back() {
    let server = start().await;
    let phone = token(APP, "u1", Some("phone"));
    let mut tab1 = open(&server, &phone).await;
    let seen = send_to_phone(&server, &mut tab1, 1).await;
    let tab2 = open(&server, &phone).await;
    ends_with_notice(&mut tab1, "sser.taken_over").await;
    assert_refused_as_taken_over(reconnect(&server, &phone, Some(&seen)).await).await;

    // Within the guard still, but the device is free: nobody to take from.
    drop(tab2);
    wait_until("tab 2 to leave", || async {
        listed(&server, "app=shop").await.is_empty()
    })
    .await;
    assert_eq!(reconnect(&server, &phone, Some(&seen)).await.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn the_guard_runs_out() {
    let guard = Duration::from_millis(300);
    let server = start_with(|c| c.identity.takeover_guard = Span(guard)).await;
    let phone = token(APP, "u1", Some("phone"));
    let mut tab1 = open(&server, &phone).await;
    let seen = send_to_phone(&server, &mut tab1, 1).await;
    let _tab2 = open(&server, &phone).await;
    ends_with_notice(&mut tab1, "sser.taken_over").await;
    assert_refused_as_taken_over(reconnect(&server, &phone, Some(&seen)).await).await;
    wait_until("the guard to run out", || async {
        reconnect(&server, &phone, Some(&seen)).await.status() == 200
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn nothing_is_refused_with_the_guard_off_a_victim_without_an_id_or_a_kick() {
    // Guard 0: the old behaviour.
    let server = start_with(|c| c.identity.takeover_guard = Span(Duration::ZERO)).await;
    let phone = token(APP, "u1", Some("phone"));
    let mut tab1 = open(&server, &phone).await;
    let seen = send_to_phone(&server, &mut tab1, 1).await;
    let _tab2 = open(&server, &phone).await;
    ends_with_notice(&mut tab1, "sser.taken_over").await;
    assert_eq!(reconnect(&server, &phone, Some(&seen)).await.status(), 200);
    server.stop().await;

    let server = start().await;
    // A victim that was sent nothing reconnects without an id, like a new
    // tab: it takes over (nothing tells them apart).
    let mut tab1 = open(&server, &phone).await;
    let _tab2 = open(&server, &phone).await;
    ends_with_notice(&mut tab1, "sser.taken_over").await;
    assert_eq!(reconnect(&server, &phone, None).await.status(), 200);

    // A kicked client is let back in (without block_seconds), id or not.
    let laptop = token(APP, "u1", Some("laptop"));
    let mut on_laptop = open(&server, &laptop).await;
    let resp = server
        .http
        .post(server.url("/api/v1/send"))
        .bearer_auth(API_TOKEN)
        .json(&json!({"devices": [{"user": "u1", "device": "laptop"}], "message": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let seen = on_laptop.expect_event().await.id;
    let (status, _) = kick(
        &server,
        json!({"devices": [{"user": "u1", "device": "laptop"}]}),
    )
    .await;
    assert_eq!(status, 200);
    ends_with_notice(&mut on_laptop, "sser.kicked").await;
    assert_eq!(reconnect(&server, &laptop, Some(&seen)).await.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn a_victim_sent_nothing_since_it_resumed_is_known_by_the_id_it_resumed_from() {
    let server = start().await;
    let phone = token(APP, "u1", Some("phone"));
    let mut tab1 = open(&server, &phone).await;
    let seen = send_to_phone(&server, &mut tab1, 1).await;
    // Tab 1 blips and comes back with its id; nothing is sent meanwhile, so
    // its browser will send that same id again.
    let mut tab1_again = resume(&server, &phone, &seen).await;
    ends_with_notice(&mut tab1, "sser.taken_over").await;
    let _tab2 = open(&server, &phone).await;
    ends_with_notice(&mut tab1_again, "sser.taken_over").await;
    assert_refused_as_taken_over(reconnect(&server, &phone, Some(&seen)).await).await;
    server.stop().await;
}
