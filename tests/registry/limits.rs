//! The identity limits: connections per user, per client address, streams
//! per connection. Over one: 429 JSON naming it, and nothing changes.

use super::*;

/// The refused response's JSON error, checked for a 429 naming `key`.
async fn names_limit(resp: reqwest::Response, key: &str, max: u64) {
    assert_eq!(resp.status(), 429);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], 429);
    assert_eq!(body["error"]["limit"], key, "{body}");
    assert_eq!(body["error"]["max"], max, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(key),
        "{body}"
    );
}

#[tokio::test]
async fn a_user_over_its_connection_limit_gets_429() {
    let server =
        start_with(|c| c.identity.limits.max_connections_per_user = sser::config::Count(2)).await;
    let phone = token(APP, "u1", Some("phone"));
    let _a = open(&server, &phone).await;
    let _b = open(&server, &token(APP, "u1", None)).await;
    names_limit(
        try_open(&server, &token(APP, "u1", Some("laptop")), &[]).await,
        "identity.limits.maxConnectionsPerUser",
        2,
    )
    .await;
    // Another user is not affected, and a device taking over its own older
    // connection does not count twice.
    let _c = open(&server, &token(APP, "u2", None)).await;
    let _d = open(&server, &phone).await;
    assert_eq!(listed(&server, "app=shop&user=u1").await.len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn an_address_over_its_identity_connection_limit_gets_429() {
    let server =
        start_with(|c| c.identity.limits.max_connections_per_ip = sser::config::Count(2)).await;
    let _a = open(&server, &token(APP, "u1", None)).await;
    let _b = open(&server, &token(APP, "u2", None)).await;
    names_limit(
        try_open(&server, &token(APP, "u3", None), &[]).await,
        "identity.limits.maxConnectionsPerIp",
        2,
    )
    .await;
    // Topic connections are the accept loop's business, not this limit's.
    let (topic, topic_token) = server.create_topic(json!({})).await;
    let _t = server.subscribe(&topic, &topic_token).await;
    // One leaves, one more may come.
    drop(_a);
    wait_until("a place to free up", || async {
        try_open(&server, &token(APP, "u3", None), &[])
            .await
            .status()
            == 200
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn a_connection_over_its_stream_limit_gets_429() {
    let server =
        start_with(|c| c.identity.limits.max_streams_per_connection = sser::config::Count(4)).await;
    let mut topics = Vec::new();
    for _ in 0..2 {
        topics.push(server.create_topic(json!({})).await.0);
    }
    let may_follow = token_with(APP, "u1", Some("phone"), 3600, &["*"]);
    // Three inboxes (app, user, device) and one topic: four.
    let _ok = open_with(&server, &may_follow, &[("topic", &topics[0])]).await;
    // And two topics: five.
    let resp = try_open(
        &server,
        &token_with(APP, "u2", Some("phone"), 3600, &["*"]),
        &[("topic", &topics[0]), ("topic", &topics[1])],
    )
    .await;
    names_limit(resp, "identity.limits.maxStreamsPerConnection", 4).await;
    assert_eq!(listed(&server, "app=shop&user=u2").await.len(), 0);
    server.stop().await;
}
