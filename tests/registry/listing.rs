//! Who is connected: `GET /api/v1/connections` (filters, paging, the fields
//! of a connection) and `GET /api/v1/apps/:app/users/:user`, and what an
//! identity token may see of them.

use std::collections::HashSet;

use super::*;

/// Every id the listing gives for `query`, page by page of `limit`.
async fn all_pages(server: &TestServer, query: &str, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/connections?limit={limit}&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, body) = get(server, &path, METRICS_TOKEN).await;
        assert_eq!(status, 200, "{body}");
        let page = body["connections"].as_array().unwrap();
        assert!(page.len() <= limit);
        ids.extend(page.iter().map(|c| c["id"].as_str().unwrap().to_string()));
        match body["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(page.len(), limit, "a full page before the last");
                cursor = Some(next.to_string());
            }
            None => return ids,
        }
    }
}

#[tokio::test]
async fn listing_pages_through_everything_once_and_filters_by_app_user_device() {
    let server = start().await;
    let mut streams = Vec::new();
    for i in 0..7 {
        let device = format!("d{}", i % 2);
        streams.push(open(&server, &token(APP, &format!("u{i}"), Some(&device))).await);
    }
    streams.push(open(&server, &token(APP, "u1", None)).await);
    for user in ["u1", "u2"] {
        streams.push(open(&server, &token("blog", user, None)).await);
    }
    let (topic, topic_token) = server.create_topic(json!({})).await;
    let topic_stream = server.subscribe(&topic, &topic_token).await;
    let mut everyone: Vec<String> = streams.iter().map(conn_id).collect();
    everyone.push(conn_id(&topic_stream));
    everyone.sort();

    // Pages of 3 cover all eleven exactly once, in id order.
    let paged = all_pages(&server, "", 3).await;
    assert_eq!(paged, everyone);
    assert_eq!(all_pages(&server, "", 1000).await, everyone);
    let shop = all_pages(&server, "app=shop", 2).await;
    assert_eq!(shop.len(), 8);
    assert_eq!(shop.iter().collect::<HashSet<_>>().len(), 8);
    assert_eq!(all_pages(&server, "app=blog", 5).await.len(), 2);
    assert_eq!(all_pages(&server, "app=shop&user=u1", 5).await.len(), 2);
    assert_eq!(
        all_pages(&server, "app=shop&user=u1&device=d1", 5).await,
        [conn_id(&streams[1])]
    );
    assert!(all_pages(&server, "app=none", 5).await.is_empty());

    // The fields of one connection.
    let (_, body) = get(&server, "/api/v1/connections?app=shop&user=u3", API_TOKEN).await;
    let conn = &body["connections"][0];
    assert_eq!(conn["id"], conn_id(&streams[3]));
    assert_eq!(
        (&conn["app"], &conn["user"], &conn["device"]),
        (&json!("shop"), &json!("u3"), &json!("d1"))
    );
    assert!(
        conn["remote_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{conn}"
    );
    assert!(conn["connected_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        conn["streams"],
        json!(["app:shop", "user:shop/u3", "device:shop/u3/d1"])
    );
    assert_eq!(conn["last_event_id"], Value::Null, "nothing sent yet");

    // last_event_id follows what the client was sent.
    let resp = server
        .http
        .post(server.url("/api/v1/send"))
        .bearer_auth(API_TOKEN)
        .json(&json!({"users": ["u3"], "message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let sent = streams[3].expect_event().await;
    let (_, body) = get(&server, "/api/v1/connections?app=shop&user=u3", API_TOKEN).await;
    assert_eq!(body["connections"][0]["last_event_id"], sent.id);

    // A topic connection has no identity.
    let (_, body) = get(&server, "/api/v1/connections?limit=1000", API_TOKEN).await;
    let topic_id = conn_id(&topic_stream);
    let topic_conn = body["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == topic_id.as_str())
        .expect("listed")
        .clone();
    assert_eq!(
        (
            &topic_conn["app"],
            &topic_conn["user"],
            &topic_conn["device"]
        ),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    assert_eq!(topic_conn["streams"], json!([format!("topic:{topic}")]));

    // Bad queries.
    for query in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "user=u1",
        "app=shop&device=d1",
        "app=a%0Ab",
        "colour=red",
    ] {
        let (status, body) = get(&server, &format!("/api/v1/connections?{query}"), API_TOKEN).await;
        assert_eq!(status, 400, "{query}: {body}");
    }
    let (status, _) = get(&server, "/api/v1/connections", "wrong").await;
    assert_eq!(status, 401);
    server.stop().await;
}

#[tokio::test]
async fn an_identity_token_sees_only_its_own_user() {
    let server = start().await;
    let u1_phone = token(APP, "u1", Some("phone"));
    let _a = open(&server, &u1_phone).await;
    let _b = open(&server, &token(APP, "u1", Some("laptop"))).await;
    let _c = open(&server, &token(APP, "u1", Some("laptop2"))).await;
    let _d = open(&server, &token(APP, "u2", Some("phone"))).await;
    let _e = open(&server, &token("blog", "u1", Some("phone"))).await;

    // Its own connections, whatever it asks.
    for query in ["", "?app=shop", "?app=shop&user=u1", "?user=u1"] {
        let (status, body) = get(&server, &format!("/api/v1/connections{query}"), &u1_phone).await;
        assert_eq!(status, 200, "{query}: {body}");
        let conns = body["connections"].as_array().unwrap();
        assert_eq!(conns.len(), 3, "{query}");
        assert!(
            conns
                .iter()
                .all(|c| c["app"] == "shop" && c["user"] == "u1")
        );
    }
    let (_, body) = get(&server, "/api/v1/connections?device=laptop", &u1_phone).await;
    assert_eq!(body["connections"].as_array().unwrap().len(), 1);

    // Never another user's or another application's.
    for path in [
        "/api/v1/connections?app=blog",
        "/api/v1/connections?app=blog&user=u1",
        "/api/v1/connections?user=u2",
        "/api/v1/apps/shop/users/u2",
        "/api/v1/apps/blog/users/u1",
    ] {
        let (status, body) = get(&server, path, &u1_phone).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    // A token of app blog sees nothing of shop.
    let blog = token("blog", "u1", None);
    let (_, body) = get(&server, "/api/v1/connections", &blog).await;
    let conns = body["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0]["app"], "blog");

    // A bad identity token is refused as one.
    let expired = token_with(APP, "u1", None, -3600, &[]);
    let (status, body) = get(&server, "/api/v1/connections", &expired).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["reason"], "token_expired");
    server.stop().await;
}

#[tokio::test]
async fn a_users_presence_summary_counts_its_devices() {
    let server = start().await;
    let (status, body) = get(&server, "/api/v1/apps/shop/users/u1", METRICS_TOKEN).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"app": "shop", "user": "u1", "online": false, "since": null, "devices": []})
    );

    let _phone = open(&server, &token(APP, "u1", Some("phone"))).await;
    let _bare1 = open(&server, &token(APP, "u1", None)).await;
    let _bare2 = open(&server, &token(APP, "u1", None)).await;
    let u1 = token(APP, "u1", Some("laptop"));
    let _laptop = open(&server, &u1).await;
    // Its own token may ask too.
    let (status, body) = get(&server, "/api/v1/apps/shop/users/u1", &u1).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["online"], true);
    assert!(body["since"].is_string());
    let devices: Vec<(Value, Value)> = body["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["device"].clone(), d["connections"].clone()))
        .collect();
    assert_eq!(
        devices,
        [
            (Value::Null, json!(2)),
            (json!("laptop"), json!(1)),
            (json!("phone"), json!(1)),
        ]
    );
    server.stop().await;
}
