//! One live connection per (app, user, device): the take-over policy (the
//! older connection gets `sser.taken_over` and ends) under a race of fifty
//! simultaneous connects, and the reject policy (409).

use std::collections::HashMap;

use super::*;
use futures_util::future::join_all;

const RACERS: usize = 50;

#[tokio::test]
async fn fifty_simultaneous_connects_of_one_device_leave_exactly_one() {
    let server = start().await;
    let mut presence = presence_stream(&server, None).await;
    let phone = token(APP, "u1", Some("phone"));

    // All at once: each on its own socket, the requests in flight together.
    let streams: Vec<SseStream> = join_all((0..RACERS).map(|_| {
        let api = server.api();
        let phone = phone.clone();
        async move { open(&api, &phone).await }
    }))
    .await;
    let mut by_id: HashMap<String, SseStream> =
        streams.into_iter().map(|s| (conn_id(&s), s)).collect();
    assert_eq!(by_id.len(), RACERS, "fifty connections were admitted");

    // Exactly one is left in the registry...
    let left = listed(&server, "app=shop&user=u1&device=phone").await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(listed(&server, "app=shop").await, left, "and nothing else");
    let mut survivor = by_id.remove(&left[0]).expect("the survivor is one of ours");

    // ...and every other one was told and ended.
    let ended = join_all(
        by_id
            .into_values()
            .map(|mut s| async move { ends_with_notice(&mut s, "sser.taken_over").await }),
    )
    .await;
    assert_eq!(ended.len(), RACERS - 1);
    assert!(ended.iter().all(|n| n["status"] == "taken_over"));

    // The survivor is live: it gets what is sent to its device.
    let resp = server
        .http
        .post(server.url("/api/v1/send"))
        .bearer_auth(API_TOKEN)
        .json(&json!({"devices": [{"user": "u1", "device": "phone"}], "message": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(survivor.expect_event().await.data, "1");

    // Presence saw one device come online once, and go offline once when
    // the survivor left: balanced, no noise from the forty-nine.
    drop(survivor);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (kind, data) = next_presence(&mut presence).await;
        seen.push((kind, data["reason"].as_str().unwrap().to_string()));
    }
    let seen: Vec<(&str, &str)> = seen.iter().map(|(k, r)| (k.as_str(), r.as_str())).collect();
    assert_eq!(
        seen,
        [
            ("user_online", "connected"),
            ("device_online", "connected"),
            ("device_offline", "disconnected"),
            ("user_offline", "disconnected"),
        ]
    );
    let (status, user) = get(&server, "/api/v1/apps/shop/users/u1", API_TOKEN).await;
    assert_eq!((status, &user["online"]), (200, &json!(false)));
    server.stop().await;
}

#[tokio::test]
async fn with_reject_the_second_connection_of_a_device_gets_409() {
    let server = start_with(|c| c.identity.takeover = sser::config::TakeoverMode::Reject).await;
    let phone = token(APP, "u1", Some("phone"));

    // Fifty at once: exactly one gets in.
    let responses = join_all((0..RACERS).map(|_| {
        let api = server.api();
        let phone = phone.clone();
        async move { try_open(&api, &phone, &[]).await }
    }))
    .await;
    let (admitted, refused): (Vec<_>, Vec<_>) =
        responses.into_iter().partition(|r| r.status() == 200);
    assert_eq!(admitted.len(), 1);
    assert_eq!(refused.len(), RACERS - 1);
    for resp in refused {
        assert_eq!(resp.status(), 409);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], 409);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("identity.takeover"),
            "{body}"
        );
    }
    // The first one goes on; other devices and users are not affected.
    assert_eq!(listed(&server, "app=shop&user=u1").await.len(), 1);
    let _laptop = open(&server, &token(APP, "u1", Some("laptop"))).await;
    let _u2 = open(&server, &token(APP, "u2", Some("phone"))).await;

    // Once it is gone, the device may connect again.
    drop(admitted);
    wait_until("the device to be free again", || async {
        try_open(&server, &phone, &[]).await.status() == 200
    })
    .await;
    server.stop().await;
}
