//! Identity inboxes and the presence feed across nodes: a send made on one
//! node reaches the identity's connections on the others (user, device and
//! application targets) in one order whichever node sends, an inbox resumes exactly on another node while
//! sends go on, presence on one node reaches a presence stream on another,
//! an entry injected into an inbox in Redis is dropped and counted, a
//! send while Redis is down answers 503, and the inbox retention's age
//! holds in Redis.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::common::*;
use crate::{Cluster, prometheus};

const SECRET: &str = "cluster-inbox-test-secret-of-32-bytes!!";
const APP: &str = "shop";

/// Three nodes with identity on (the test secret, [`APP`] by default).
fn cluster() -> Cluster {
    cluster_with(3, &[])
}

fn cluster_with(count: usize, extra: &[(&str, &str)]) -> Cluster {
    let mut env = vec![
        ("SSER_JWT_SECRET", SECRET),
        ("SSER_IDENTITY_DEFAULT_APP", APP),
        ("SSER_PRESENCE_GRACE", "0s"),
    ];
    env.extend_from_slice(extra);
    Cluster::start_with(count, &env)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// An identity token for `user` of [`APP`] (on `device`).
fn token(user: &str, device: Option<&str>) -> String {
    let mut claims = json!({"sub": user, "iss": APP, "iat": now(), "exp": now() + 3600});
    if let Some(device) = device {
        claims["device"] = json!(device);
    }
    let key = EncodingKey::from_secret(SECRET.as_bytes()).expect("hmac key");
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).expect("signs")
}

/// `GET /api/v1/stream` for `token`, resuming after `last_event_id`.
async fn open(node: &Api, token: &str, last_event_id: Option<&str>) -> SseStream {
    let mut req = node.http.get(node.url("/api/v1/stream")).bearer_auth(token);
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id);
    }
    let stream = SseStream::open(req).await;
    assert_eq!(stream.status, 200, "identity stream opens");
    stream
}

async fn try_send(node: &Api, body: &Value) -> reqwest::Response {
    node.http
        .post(node.url("/api/v1/send"))
        .bearer_auth(API_TOKEN)
        .json(body)
        .send()
        .await
        .expect("send request")
}

async fn send(node: &Api, body: Value) {
    let resp = try_send(node, &body).await;
    assert_eq!(resp.status(), 201, "send {body}");
}

/// (event name, data) of the next `n` events.
async fn seen(stream: &mut SseStream, n: usize) -> Vec<(String, String)> {
    let events = stream.take(n).await;
    events.into_iter().map(|e| (e.event, e.data)).collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn a_send_on_one_node_reaches_the_identity_on_every_node() {
    let cluster = cluster();
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let mut phone_on_b = open(&b, &token("u1", Some("phone")), None).await;
    let mut laptop_on_c = open(&c, &token("u1", Some("laptop")), None).await;
    let mut other_on_c = open(&c, &token("u2", None), None).await;

    send(&a, json!({"users": ["u1"], "message": "to u1"})).await;
    send(
        &a,
        json!({"devices": [{"user": "u1", "device": "phone"}], "message": "to the phone"}),
    )
    .await;
    send(&a, json!({"message": "to everyone"})).await;

    assert_eq!(
        seen(&mut phone_on_b, 3).await,
        pairs(&[
            ("@user", "to u1"),
            ("@device", "to the phone"),
            ("@app", "to everyone")
        ])
    );
    assert_eq!(
        seen(&mut laptop_on_c, 2).await,
        pairs(&[("@user", "to u1"), ("@app", "to everyone")])
    );
    assert_eq!(
        seen(&mut other_on_c, 1).await,
        pairs(&[("@app", "to everyone")])
    );
}

#[tokio::test]
async fn an_inbox_resumes_exactly_on_another_node_while_sends_go_on() {
    let cluster = cluster();
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let tok = token("u1", None);
    let mut on_b = open(&b, &tok, None).await;
    for n in 1..=10 {
        send(&a, json!({"users": ["u1"], "message": format!("m{n}")})).await;
    }
    let first = on_b.take(7).await;
    let data: Vec<&str> = first.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(data, ["m1", "m2", "m3", "m4", "m5", "m6", "m7"]);
    let cursor = first.last().expect("events").id.clone();
    drop(on_b);

    // Sends go on (from A, and from C itself) while the client moves to C.
    let sender = {
        let (a, c) = (a.clone(), c.clone());
        tokio::spawn(async move {
            for n in 11..=60 {
                let node = if n % 2 == 0 { &a } else { &c };
                send(node, json!({"users": ["u1"], "message": format!("m{n}")})).await;
            }
        })
    };
    let mut on_c = open(&c, &tok, Some(&cursor)).await;
    let rest = on_c.take(53).await;
    let data: Vec<String> = rest.iter().map(|e| e.data.clone()).collect();
    let expected: Vec<String> = (8..=60).map(|n| format!("m{n}")).collect();
    assert_eq!(data, expected, "no gap, no duplicate");
    assert!(rest.iter().all(|e| e.event == "@user"));
    sender.await.expect("sender");
}

#[tokio::test]
async fn presence_on_one_node_reaches_a_presence_stream_on_another() {
    let cluster = cluster();
    let (a, b) = (cluster.node(0), cluster.node(1));
    let req = b
        .http
        .get(b.url("/api/v1/presence/stream"))
        .bearer_auth(API_TOKEN);
    let mut presence = SseStream::open(req).await;
    assert_eq!(presence.status, 200);

    let _phone = open(&a, &token("u1", Some("phone")), None).await;
    let event = presence.expect_event().await;
    assert_eq!(event.event, "user_online");
    let data: Value = serde_json::from_str(&event.data).expect("presence JSON");
    assert_eq!(
        (data["app"].as_str(), data["user"].as_str()),
        (Some(APP), Some("u1"))
    );
}

#[tokio::test]
async fn an_entry_injected_into_an_inbox_is_dropped_and_counted() {
    let cluster = cluster();
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let tok = token("u1", None);
    let mut on_b = open(&b, &tok, None).await;
    send(&a, json!({"users": ["u1"], "message": "one"})).await;
    let one = on_b.expect_event().await;
    assert_eq!(one.data, "one");

    // Someone with access to Redis writes the inbox's next entry with an id
    // that would forge events in the client's stream, and a forged live
    // message too. (App `shop`, user `u1`: length-prefixed in key names.)
    let mut redis = cluster.redis.client();
    let stream = "sser:stream:user:4.shop:2.u1";
    let seq: u64 = redis::cmd("INCR")
        .arg("sser:seq:user:4.shop:2.u1")
        .query(&mut redis)
        .expect("INCR");
    let _: String = redis::cmd("XADD")
        .arg(stream)
        .arg(format!("{seq}-0"))
        .arg("d")
        .arg("evil")
        .arg("i")
        .arg("x\nid: forged\ndata: forged")
        .query(&mut redis)
        .expect("XADD");
    let _: i64 = redis::cmd("PUBLISH")
        .arg("sser:live:user:4.shop:2.u1")
        .arg(format!(
            "{seq}\n{{\"i\":\"y\\r\\nevent: forged\",\"d\":\"evil\"}}"
        ))
        .query(&mut redis)
        .expect("PUBLISH");
    send(&a, json!({"users": ["u1"], "message": "three"})).await;
    let next = on_b.expect_event().await;
    assert_eq!(
        (next.event.as_str(), next.data.as_str()),
        ("@user", "three")
    );
    assert!(prometheus(&b, "sser_cluster_rejected_entries_total").await >= 1.0);

    // History read on another node drops it as well.
    let mut replay = open(&c, &tok, Some(&one.id)).await;
    let event = replay.expect_event().await;
    assert_eq!(event.data, "three");
    assert!(prometheus(&c, "sser_cluster_rejected_entries_total").await >= 1.0);
}

#[tokio::test]
async fn a_send_while_redis_is_down_answers_503() {
    let mut cluster = cluster();
    let a = cluster.node(0);
    send(&a, json!({"users": ["u1"], "message": "before"})).await;
    cluster.redis.stop();
    for body in [
        json!({"users": ["u1"], "message": "during"}),
        json!({"message": "to everyone, during"}),
    ] {
        let resp = try_send(&a, &body).await;
        assert_eq!(resp.status(), 503, "{body}");
        let error: Value = resp.json().await.expect("JSON error");
        assert_eq!(error["error"]["code"], 503);
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("Redis"), "{message}");
    }
}

#[tokio::test]
async fn the_inbox_age_bound_holds_in_redis() {
    let cluster = cluster_with(1, &[("SSER_INBOX_MAX_AGE", "2s")]);
    let a = cluster.node(0);
    let mut redis = cluster.redis.client();
    let (stream, counter) = ("sser:stream:user:4.shop:2.u1", "sser:seq:user:4.shop:2.u1");
    let started = tokio::time::Instant::now();
    send(&a, json!({"users": ["u1"], "message": "a"})).await;
    for key in [stream, counter] {
        let ttl: i64 = redis::cmd("PTTL").arg(key).query(&mut redis).expect("PTTL");
        assert!(
            (1..=2000).contains(&ttl),
            "{key} expires with the age: {ttl}"
        );
    }
    // Time has to pass for an event to age: `a` expires at 2 s, `b` at 3 s.
    tokio::time::sleep_until(started + std::time::Duration::from_secs(1)).await;
    send(&a, json!({"users": ["u1"], "message": "b"})).await;
    let b_seq: u64 = redis::cmd("GET")
        .arg(counter)
        .query(&mut redis)
        .expect("GET");
    tokio::time::sleep_until(started + std::time::Duration::from_millis(2200)).await;
    let mut everything = open(&a, &token("u1", None), Some("earliest")).await;
    let b = everything.expect_event().await;
    assert_eq!(b.data, "b", "the expired event is not replayed");
    drop(everything);

    // Nobody sends any more: the inbox leaves Redis with its last event.
    wait_until("the inbox to expire in Redis", || {
        let mut redis = cluster.redis.client();
        async move {
            let left: u64 = redis::cmd("EXISTS")
                .arg(stream)
                .arg(counter)
                .query(&mut redis)
                .expect("EXISTS");
            left == 0
        }
    })
    .await;
    // A later life never gives out a position of the earlier one: a client
    // resuming from it is told what it may have missed expired.
    send(&a, json!({"users": ["u1"], "message": "c"})).await;
    let c_seq: u64 = redis::cmd("GET")
        .arg(counter)
        .query(&mut redis)
        .expect("GET");
    assert!(c_seq > b_seq, "{c_seq} after {b_seq}");
    let mut resumed = open(&a, &token("u1", None), Some(&b.id)).await;
    let notice = resumed.expect_event().await;
    assert_eq!(notice.event, "sser.history_truncated", "{}", notice.data);
    assert_eq!(resumed.expect_event().await.data, "c");
}

#[tokio::test]
async fn sends_from_every_node_reach_every_device_in_one_order() {
    let cluster = cluster();
    let nodes = [cluster.node(0), cluster.node(1), cluster.node(2)];
    let mut phone = open(&nodes[1], &token("u1", Some("phone")), None).await;
    let mut laptop = open(&nodes[2], &token("u1", Some("laptop")), None).await;
    let senders: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let node = node.clone();
            tokio::spawn(async move {
                for n in 0..20 {
                    send(
                        &node,
                        json!({"users": ["u1"], "message": format!("{i}-{n}")}),
                    )
                    .await;
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.expect("sender");
    }
    let on_phone: Vec<String> = phone.take(60).await.into_iter().map(|e| e.data).collect();
    let on_laptop: Vec<String> = laptop.take(60).await.into_iter().map(|e| e.data).collect();
    assert_eq!(on_phone, on_laptop, "one order on every node");
    for i in 0..3 {
        let own: Vec<&String> = on_phone
            .iter()
            .filter(|d| d.starts_with(&format!("{i}-")))
            .collect();
        let expected: Vec<String> = (0..20).map(|n| format!("{i}-{n}")).collect();
        assert_eq!(
            own,
            expected.iter().collect::<Vec<_>>(),
            "each sender's order kept"
        );
    }
}
