//! Identity connections across nodes (issue 13, phase 2, the directory):
//! device take-over and the `reject` policy across nodes, the guard against
//! a replaced connection's reconnect (per node), kick by id and by
//! user issued on one node for connections on others, blocks that hold on
//! every node, listings and paging that see every node, a killed node's
//! connections dropping out within `cluster.nodeTtl`, and 503 for a new
//! identity connection while Redis is away.

use std::collections::BTreeSet;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::Cluster;
use crate::common::*;

const SECRET: &str = "cluster-directory-test-secret-of-32-bytes";
const APP: &str = "shop";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// An identity token of `user` (and `device`) in [`APP`].
fn token(user: &str, device: Option<&str>) -> String {
    let mut claims = json!({"sub": user, "iss": APP, "iat": now(), "exp": now() + 3600});
    if let Some(device) = device {
        claims["device"] = json!(device);
    }
    let key = EncodingKey::from_secret(SECRET.as_bytes()).expect("hmac key");
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).expect("signs")
}

/// Three nodes with identity tokens on, and `extra` settings.
fn cluster(extra: &[(&str, &str)]) -> Cluster {
    let mut env = vec![
        ("SSER_JWT_SECRET", SECRET),
        ("SSER_IDENTITY_DEFAULT_APP", APP),
    ];
    env.extend_from_slice(extra);
    Cluster::start_with(3, &env)
}

/// Opens `user`'s identity stream on `node`: the response, whatever its
/// status.
async fn try_open(node: &Api, user: &str, device: Option<&str>) -> SseStream {
    let req = node
        .http
        .get(node.url("/api/v1/stream"))
        .bearer_auth(token(user, device));
    SseStream::open(req).await
}

/// An open stream and its connection id.
async fn open(node: &Api, user: &str, device: Option<&str>) -> (SseStream, String) {
    let stream = try_open(node, user, device).await;
    assert_eq!(stream.status, 200, "identity stream of {user} opens");
    let id = stream.headers["x-connection-id"]
        .to_str()
        .expect("ASCII id")
        .to_string();
    (stream, id)
}

/// Reads until the stream ends; the names of the events it sent.
async fn until_end(stream: &mut SseStream) -> Vec<String> {
    let mut names = Vec::new();
    while let Some(event) = stream.next().await {
        names.push(event.event);
    }
    names
}

/// The ids `GET /api/v1/connections?<query>` lists on `node` (one page).
async fn listed(node: &Api, query: &str) -> Vec<String> {
    let body = node
        .get_json(&format!("/api/v1/connections?{query}"), API_TOKEN)
        .await;
    body["connections"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| c["id"].as_str().expect("an id").to_string())
        .collect()
}

async fn wait_listed(node: &Api, query: &str, want: &[&str]) {
    let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    wait_until(&format!("{query} to list {want:?}"), || async {
        listed(node, query).await == want
    })
    .await;
}

#[tokio::test]
async fn a_device_taken_over_on_another_node_ends_there_and_is_listed_once() {
    let cluster = cluster(&[]);
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let (mut on_a, first) = open(&a, "u1", Some("phone")).await;
    wait_listed(&c, "app=shop&user=u1", &[&first]).await;

    let (_on_b, second) = open(&b, "u1", Some("phone")).await;
    let names = until_end(&mut on_a).await;
    assert_eq!(
        names.last().map(String::as_str),
        Some("sser.taken_over"),
        "{names:?}"
    );
    wait_listed(&c, "app=shop&user=u1", &[&second]).await;
    // The old connection's late `left` did not clear the new owner: a
    // third connection of the device on C takes over B's in turn.
    let (_on_c, third) = open(&c, "u1", Some("phone")).await;
    wait_listed(&a, "app=shop&user=u1&device=phone", &[&third]).await;
}

/// The identity stream of `user`'s `device` on `node`, as an `EventSource`
/// reconnects: with `Last-Event-ID`; the response, whatever its status.
async fn try_resume(node: &Api, user: &str, device: &str, last_event_id: &str) -> SseStream {
    let req = node
        .http
        .get(node.url("/api/v1/stream"))
        .bearer_auth(token(user, Some(device)))
        .header("Last-Event-ID", last_event_id);
    SseStream::open(req).await
}

#[tokio::test]
async fn a_replaced_connections_reconnect_is_refused_on_its_node_while_the_device_is_held_anywhere()
{
    let cluster = cluster(&[]);
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let (mut tab1, _) = open(&a, "u1", Some("phone")).await;
    let resp = a
        .http
        .post(a.url("/api/v1/send"))
        .bearer_auth(API_TOKEN)
        .json(&json!({"devices": [{"user": "u1", "device": "phone"}], "message": 1}))
        .send()
        .await
        .expect("send request");
    assert_eq!(resp.status(), 201);
    let seen = tab1.expect_event().await.id;

    // Taken over on its own node: its reconnect there is refused.
    let (mut tab2, _) = open(&a, "u1", Some("phone")).await;
    assert_eq!(
        until_end(&mut tab1).await.last().map(String::as_str),
        Some("sser.taken_over")
    );
    assert_eq!(try_resume(&a, "u1", "phone", &seen).await.status, 409);

    // The device moves to another node: still held, still refused on A.
    let (_tab3, third) = open(&b, "u1", Some("phone")).await;
    assert_eq!(
        until_end(&mut tab2).await.last().map(String::as_str),
        Some("sser.taken_over")
    );
    assert_eq!(try_resume(&a, "u1", "phone", &seen).await.status, 409);
    wait_listed(&c, "app=shop&user=u1&device=phone", &[&third]).await;

    // The guard is per node (README): on a node that did not see the
    // take-over the same reconnect is let in and takes over.
    assert_eq!(try_resume(&c, "u1", "phone", &seen).await.status, 200);
}

#[tokio::test]
async fn the_reject_policy_refuses_a_device_held_on_another_node() {
    let cluster = cluster(&[("SSER_IDENTITY_TAKEOVER", "reject")]);
    let (a, b) = (cluster.node(0), cluster.node(1));
    let (on_a, _) = open(&a, "u1", Some("phone")).await;
    let refused = try_open(&b, "u1", Some("phone")).await;
    assert_eq!(refused.status, 409, "the device is busy on A");
    // Another device of the same user is free.
    let (_laptop, _) = open(&b, "u1", Some("laptop")).await;
    // Once A's connection is gone, the device may connect anywhere.
    drop(on_a);
    wait_until("the device to be free again", || async {
        try_open(&b, "u1", Some("phone")).await.status == 200
    })
    .await;
}

#[tokio::test]
async fn a_kick_issued_on_one_node_ends_connections_on_others_and_blocks_everywhere() {
    let cluster = cluster(&[]);
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let (mut on_a, id) = open(&a, "u2", Some("tablet")).await;
    wait_listed(&c, "app=shop&user=u2", &[&id]).await;

    let resp = c
        .http
        .delete(c.url(&format!(
            "/api/v1/connections/{id}?reason=bye&block_seconds=60"
        )))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("kick request");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.expect("JSON"),
        json!({"ended": 1})
    );
    let names = until_end(&mut on_a).await;
    assert_eq!(
        names.last().map(String::as_str),
        Some("sser.kicked"),
        "{names:?}"
    );
    let blocked = try_open(&b, "u2", Some("tablet")).await;
    assert_eq!(blocked.status, 403, "the block holds on B");
    assert!(blocked.headers.contains_key("retry-after"));
    // Another device of the user was not blocked.
    let (_other, _) = open(&b, "u2", Some("phone")).await;

    // Kick by user on C: one connection on A, one on B.
    let (mut u3_a, id_a) = open(&a, "u3", None).await;
    let (mut u3_b, id_b) = open(&b, "u3", None).await;
    let mut both = [id_a.clone(), id_b.clone()];
    both.sort();
    wait_listed(&c, "app=shop&user=u3", &[&both[0], &both[1]]).await;
    let resp = c
        .http
        .post(c.url("/api/v1/kick"))
        .bearer_auth(API_TOKEN)
        .json(&json!({"app": APP, "users": ["u3"]}))
        .send()
        .await
        .expect("kick request");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.expect("JSON"),
        json!({"ended": 2})
    );
    for stream in [&mut u3_a, &mut u3_b] {
        let names = until_end(stream).await;
        assert_eq!(names.last().map(String::as_str), Some("sser.kicked"));
    }
    // An id nobody holds is still a 404 on a cluster.
    let resp = c
        .http
        .delete(c.url("/api/v1/connections/no-such-connection"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("kick request");
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn listings_and_summaries_on_one_node_page_through_every_node() {
    let cluster = cluster(&[]);
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let mut streams = Vec::new();
    let mut ids = BTreeSet::new();
    for (node, device) in [(&a, "d1"), (&a, "d2"), (&c, "d3"), (&c, "d4")] {
        let (stream, id) = open(node, "pager", Some(device)).await;
        streams.push(stream);
        ids.insert(id);
    }
    let all: Vec<&str> = ids.iter().map(String::as_str).collect();
    wait_listed(&b, "app=shop&user=pager", &all).await;

    // One at a time, by cursor: each exactly once, in id order.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("/api/v1/connections?app=shop&limit=1&cursor={c}"),
            None => "/api/v1/connections?app=shop&limit=1".to_string(),
        };
        let body = b.get_json(&query, API_TOKEN).await;
        for conn in body["connections"].as_array().expect("a list") {
            paged.push(conn["id"].as_str().expect("id").to_string());
            assert_eq!(conn["user"], "pager");
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
        assert!(paged.len() <= 4, "paging ends: {paged:?}");
    }
    assert_eq!(paged, all, "every node's connections, once each, in order");
    assert_eq!(listed(&b, "app=shop&user=pager&device=d3").await.len(), 1);
    // Unfiltered, from B, which holds none of them.
    let everything = listed(&b, "limit=1000").await;
    assert!(all.iter().all(|id| everything.iter().any(|e| e == id)));

    let summary = b.get_json("/api/v1/apps/shop/users/pager", API_TOKEN).await;
    assert_eq!(summary["online"], true, "{summary}");
    let devices: Vec<&str> = summary["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| d["device"].as_str().expect("device"))
        .collect();
    assert_eq!(devices, ["d1", "d2", "d3", "d4"]);
}

#[tokio::test]
async fn a_killed_nodes_connections_drop_out_within_the_node_ttl() {
    let mut cluster = cluster(&[
        ("SSER_CLUSTER_NODE_TTL", "3s"),
        ("SSER_IDENTITY_TAKEOVER", "reject"),
    ]);
    let (a, b) = (cluster.node(0), cluster.node(1));
    let (_on_a, id) = open(&a, "u4", Some("phone")).await;
    wait_listed(&b, "app=shop&user=u4", &[&id]).await;
    let killed = std::time::Instant::now();
    cluster.nodes[0].kill9();
    wait_listed(&b, "app=shop&user=u4", &[]).await;
    // Within the TTL; the slack is for a loaded test machine only (the
    // reads check the heartbeat record, which Redis expires on time).
    assert!(
        killed.elapsed() < Duration::from_secs(3 + 3),
        "gone within the TTL: {:?}",
        killed.elapsed()
    );
    // The dead node's hold on the device no longer counts.
    let (_on_b, _) = open(&b, "u4", Some("phone")).await;
}

#[tokio::test]
async fn while_redis_is_away_identity_connections_are_refused_with_503() {
    let mut cluster = cluster(&[]);
    let a = cluster.node(0);
    let (_open_before, _) = open(&a, "u5", Some("phone")).await;
    cluster.redis.stop();
    let refused = try_open(&a, "u6", Some("phone")).await;
    assert_eq!(refused.status, 503, "a claim needs Redis");
    // The node itself stays up.
    let alive = a.http.get(a.url("/healthz")).send().await.expect("healthz");
    assert_eq!(alive.status(), 200);
}

/// go-sse-broker's `GET <path>` on `node` with the API token: its `result`.
async fn broker_result(node: &Api, path: &str) -> Value {
    let body = node.get_json(path, API_TOKEN).await;
    assert_eq!(body["code"], 1, "{path}: {body}");
    body["result"].clone()
}

/// A go-sse-broker client's stream of `uid`'s `device` on `node`, past its
/// `sys_connected`.
async fn broker_events(node: &Api, uid: &str, device: &str) -> SseStream {
    let token = broker_result(node, &format!("/token?uid={uid}")).await;
    let token = token.as_str().expect("a token");
    let url = node.url(&format!("/events?token={token}&device={device}"));
    let mut stream = SseStream::open(node.http.get(url)).await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.expect_event().await.event, "sys_connected");
    stream
}

#[tokio::test]
async fn go_sse_broker_info_take_over_and_kick_span_the_nodes() {
    let cluster = Cluster::start_with(
        3,
        &[
            ("SSER_COMPAT_GO_SSE_BROKER_ENABLED", "true"),
            ("SSER_COMPAT_GO_SSE_BROKER_JWT_SECRET", SECRET),
        ],
    );
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let mut on_a = broker_events(&a, "gu1", "pc").await;
    let a_addr = a.base.trim_start_matches("http://").to_string();

    wait_until("C's /info to count A's device and every node", || async {
        let info = broker_result(&c, "/info").await;
        info["instance_count"] == 3 && info["device_count"] == 1 && info["user_count"] == 1
    })
    .await;
    let device = broker_result(&c, "/info?uid=gu1&device=pc").await;
    assert_eq!(device["online"], true, "{device}");
    assert_eq!(device["instance_address"], a_addr.as_str(), "{device}");
    let instance = broker_result(&c, &format!("/info?address={a_addr}")).await;
    assert_eq!(
        (&instance["online"], &instance["device_count"]),
        (&json!(true), &json!(1)),
        "{instance}"
    );

    // The same device on B: A's client is told in go-sse-broker's words.
    let mut on_b = broker_events(&b, "gu1", "pc").await;
    let names = until_end(&mut on_a).await;
    assert_eq!(
        names.last().map(String::as_str),
        Some("sys_extrude_offline"),
        "{names:?}"
    );
    let kicked = broker_result(&c, "/kick?uid=gu1").await;
    assert_eq!(kicked, 1, "B's connection, kicked from C");
    let names = until_end(&mut on_b).await;
    assert_eq!(
        names.last().map(String::as_str),
        Some("sys_kick_offline"),
        "{names:?}"
    );
}

#[tokio::test]
async fn a_redis_that_lost_the_directory_gets_every_nodes_connections_back() {
    let cluster = cluster(&[]);
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let (mut on_a, id) = open(&a, "u7", Some("phone")).await;
    wait_listed(&b, "app=shop&user=u7", &[&id]).await;

    // Redis comes back empty (a restart without its files): every key
    // goes, and every node's listener reconnects.
    let mut redis = cluster.redis.client();
    redis::cmd("FLUSHALL")
        .query::<()>(&mut redis)
        .expect("FLUSHALL");
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query::<i64>(&mut redis)
        .expect("CLIENT KILL");
    wait_listed(&b, "app=shop&user=u7", &[&id]).await;
    // A holds the device again: taking it over from C ends A's stream.
    let (_on_c, _) = open(&c, "u7", Some("phone")).await;
    let names = until_end(&mut on_a).await;
    assert_eq!(
        names.last().map(String::as_str),
        Some("sser.taken_over"),
        "{names:?}"
    );
}
