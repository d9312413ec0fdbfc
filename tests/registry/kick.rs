//! Kicks: by id (identity and topic connections), by user, by device; the
//! kicked stream reads `sser.kicked` and ends; the same token gets back in
//! unless `block_seconds` was given.

use super::*;

#[tokio::test]
async fn kick_by_id_ends_the_stream_and_the_same_token_gets_back_in() {
    let server = start().await;
    let phone = token(APP, "u1", Some("phone"));
    let mut stream = open(&server, &phone).await;
    let id = conn_id(&stream);

    // Only the API token may kick.
    let url = server.url(&format!("/api/v1/connections/{id}"));
    for token in [METRICS_TOKEN, phone.as_str()] {
        let resp = server
            .http
            .delete(&url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
    }
    let resp = server
        .http
        .delete(&url)
        .query(&[("reason", "maintenance")])
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"ended": 1}));
    let notice = ends_with_notice(&mut stream, "sser.kicked").await;
    assert_eq!(notice["status"], "kicked");
    assert_eq!(notice["reason"], "maintenance");
    assert!(
        listed(&server, "").await.is_empty(),
        "gone from the registry"
    );

    // Gone: a second kick finds nothing.
    let resp = server
        .http
        .delete(&url)
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // Kicking is not revoking: the same token reconnects.
    let again = open(&server, &phone).await;
    assert_ne!(conn_id(&again), id);
    server.stop().await;
}

#[tokio::test]
async fn a_topic_connection_can_be_kicked_by_id_but_not_blocked() {
    let server = start().await;
    let (topic, topic_token) = server.create_topic(json!({})).await;
    let mut stream = server.subscribe(&topic, &topic_token).await;
    let id = conn_id(&stream);
    let url = server.url(&format!("/api/v1/connections/{id}"));

    let resp = server
        .http
        .delete(&url)
        .query(&[("block_seconds", "60")])
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "no identity to block");
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("block_seconds"),
        "{body}"
    );
    assert_eq!(listed(&server, "").await, [id], "still there");

    let resp = server
        .http
        .delete(&url)
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let notice = ends_with_notice(&mut stream, "sser.kicked").await;
    assert_eq!(notice["reason"], Value::Null);
    server.stop().await;
}

#[tokio::test]
async fn kick_by_user_and_by_device_end_exactly_those() {
    let server = start().await;
    let mut u1_phone = open(&server, &token(APP, "u1", Some("phone"))).await;
    let mut u1_laptop = open(&server, &token(APP, "u1", Some("laptop"))).await;
    let mut u1_bare = open(&server, &token(APP, "u1", None)).await;
    let u2_phone = open(&server, &token(APP, "u2", Some("phone"))).await;
    let blog_u1 = open(&server, &token("blog", "u1", Some("phone"))).await;
    let survivors = {
        let mut ids = vec![conn_id(&u2_phone), conn_id(&blog_u1)];
        ids.sort();
        ids
    };

    // A device: that one only, not the same name on another user.
    let (status, body) = kick(
        &server,
        json!({"devices": [{"user": "u1", "device": "phone"}], "reason": "lost phone"}),
    )
    .await;
    assert_eq!((status, body), (200, json!({"ended": 1})));
    let notice = ends_with_notice(&mut u1_phone, "sser.kicked").await;
    assert_eq!(notice["reason"], "lost phone");

    // A user: every connection it has left, in this application only.
    let (status, body) = kick(&server, json!({"users": ["u1", "u1", "nobody"]})).await;
    assert_eq!((status, body), (200, json!({"ended": 2})));
    ends_with_notice(&mut u1_laptop, "sser.kicked").await;
    ends_with_notice(&mut u1_bare, "sser.kicked").await;
    assert_eq!(listed(&server, "").await, survivors);

    // The survivors still get what is sent to them.
    let resp = server
        .http
        .post(server.url("/api/v1/send"))
        .bearer_auth(API_TOKEN)
        .json(&json!({"users": ["u2"], "message": "still here"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let mut u2_phone = u2_phone;
    assert_eq!(u2_phone.expect_event().await.data, "still here");

    // Bad requests change nothing.
    for body in [
        json!({}),
        json!({"users": []}),
        json!({"users": ["a\nb"]}),
        json!({"devices": ["phone"]}),
        json!({"users": ["u2"], "block_seconds": 0}),
        json!({"users": ["u2"], "block_seconds": 86401}),
        json!({"users": ["u2"], "whom": 1}),
    ] {
        let (status, err) = kick(&server, body.clone()).await;
        assert_eq!(status, 400, "{body} → {err}");
    }
    assert_eq!(listed(&server, "").await, survivors);
    drop(blog_u1);
    server.stop().await;
}

#[tokio::test]
async fn block_seconds_keeps_the_kicked_out_until_it_runs_out() {
    let server = start().await;
    let u1 = token(APP, "u1", Some("phone"));
    let u1_other_device = token(APP, "u1", Some("laptop"));
    let u2 = token(APP, "u2", Some("phone"));
    let mut stream = open(&server, &u1).await;

    let (status, body) = kick(&server, json!({"users": ["u1"], "block_seconds": 2})).await;
    assert_eq!((status, body), (200, json!({"ended": 1})));
    ends_with_notice(&mut stream, "sser.kicked").await;

    // The whole user is blocked (every device), with a date and a
    // Retry-After; another user is not.
    for token in [&u1, &u1_other_device] {
        let resp = try_open(&server, token, &[]).await;
        assert_eq!(resp.status(), 403);
        let retry_after: u64 = resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=2).contains(&retry_after), "{retry_after}");
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"]["blocked_until"].is_string(), "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("kicked"),
            "{body}"
        );
    }
    let _other = open(&server, &u2).await;

    // Until it runs out.
    wait_until("the block to run out", || async {
        try_open(&server, &u1, &[]).await.status() == 200
    })
    .await;

    // A device block leaves the user's other devices alone.
    let _phone = open(&server, &u1).await;
    let (status, _) = kick(
        &server,
        json!({"devices": [{"user": "u1", "device": "phone"}], "block_seconds": 60}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(try_open(&server, &u1, &[]).await.status(), 403);
    let _laptop = open(&server, &u1_other_device).await;

    // And a blocked kick by id blocks that connection's device.
    let laptop_id = listed(&server, "app=shop&user=u1").await;
    assert_eq!(laptop_id.len(), 1);
    let resp = server
        .http
        .delete(server.url(&format!("/api/v1/connections/{}", laptop_id[0])))
        .query(&[("block_seconds", "60")])
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(try_open(&server, &u1_other_device, &[]).await.status(), 403);
    assert_eq!(
        try_open(&server, &token(APP, "u1", Some("tablet")), &[])
            .await
            .status(),
        200,
        "only the blocked devices"
    );
    server.stop().await;
}
