//! Presence across the cluster (issue 13, phase 2): a user is online from
//! its first connection on any node to its last, each transition is emitted
//! once (one webhook, one go-sse-broker channel message), a node killed
//! with `kill -9` has its users cleared by one survivor with reason
//! `node_lost` within `nodeTtl + nodeCheckInterval`, and a
//! sse-notification-service producer's `PUBLISH {app}:channel:{user}`
//! reaches the user.
//!
//! Presence is observed where its consumers see it: a webhook receiver that
//! every node posts to (one worker per node, so each node's events arrive
//! in order), and a Redis `PSUBSCRIBE`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::common::*;
use crate::{Cluster, prometheus};

const SECRET: &str = "cluster-presence-test-secret-32-bytes!";
const APP: &str = "shop";
/// A dead node's heartbeat is gone within this; survivors look every
/// [`CHECK`]: `node_lost` within their sum.
/// Long enough that a live node's heartbeat survives a stall of a debug
/// build on a loaded 2-core machine (3 s did not: a live node was taken
/// for dead once in a full run at load average 20).
const TTL: Duration = Duration::from_secs(6);
const CHECK: Duration = Duration::from_millis(500);

/// Every presence webhook body any node posted.
#[derive(Clone, Default)]
struct Hooks {
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Hooks {
    async fn start() -> (Hooks, String) {
        let hooks = Hooks::default();
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(hooks.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (hooks, url)
    }

    /// The events of `kind` for `user` (and `device`, when given).
    fn of(&self, kind: &str, user: &str, device: Option<&str>) -> Vec<Value> {
        self.bodies
            .lock()
            .iter()
            .filter(|e| e["kind"] == kind && e["user"] == user)
            .filter(|e| device.is_none_or(|d| e["device"] == d))
            .cloned()
            .collect()
    }

    async fn wait_for(&self, kind: &str, user: &str, device: Option<&str>) -> Value {
        wait_until(&format!("{kind} of {user}"), || async {
            !self.of(kind, user, device).is_empty()
        })
        .await;
        self.of(kind, user, device).remove(0)
    }
}

async fn receive(State(hooks): State<Hooks>, body: axum::body::Bytes) -> axum::http::StatusCode {
    if let Ok(event) = serde_json::from_slice::<Value>(&body) {
        hooks.bodies.lock().push(event);
    }
    axum::http::StatusCode::NO_CONTENT
}

/// An identity token for `user` of [`APP`] on `device`.
fn token(user: &str, device: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = json!({"sub": user, "iss": APP, "device": device, "iat": now, "exp": now + 3600});
    let key = EncodingKey::from_secret(SECRET.as_bytes()).expect("hmac key");
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).expect("signs")
}

/// `GET /api/v1/stream` as `user` on `device`.
async fn connect(node: &Api, user: &str, device: &str) -> SseStream {
    let req = node
        .http
        .get(node.url("/api/v1/stream"))
        .bearer_auth(token(user, device));
    let stream = SseStream::open(req).await;
    assert_eq!(stream.status, 200, "identity stream opens");
    stream
}

/// Connects and disconnects a marker user on `node`, and waits for its
/// `user_offline`: every event `node` emitted before has arrived too (one
/// webhook worker per node keeps them in order).
async fn flush(hooks: &Hooks, node: &Api, marker: &str) {
    let stream = connect(node, marker, "m").await;
    hooks.wait_for("user_online", marker, None).await;
    drop(stream);
    hooks.wait_for("user_offline", marker, None).await;
}

/// A cluster of `count` nodes with identity, webhooks to `hook`, no grace
/// period (offline at once), a short node TTL and `extra`.
fn cluster(count: usize, hook: &str, extra: &[(&str, &str)]) -> Cluster {
    let ttl = format!("{}ms", TTL.as_millis());
    let check = format!("{}ms", CHECK.as_millis());
    let mut env = vec![
        ("SSER_JWT_SECRET", SECRET),
        ("SSER_PRESENCE_GRACE", "0s"),
        ("SSER_WEBHOOK_URLS", hook),
        ("SSER_WEBHOOK_SECRET", "whsec-cluster"),
        ("SSER_WEBHOOK_CONCURRENCY", "1"),
        ("SSER_CLUSTER_NODE_TTL", ttl.as_str()),
        ("SSER_CLUSTER_NODE_CHECK_INTERVAL", check.as_str()),
    ];
    env.extend_from_slice(extra);
    Cluster::start_with(count, &env)
}

/// The node's id in the cluster.
async fn node_id(node: &Api) -> String {
    let body: Value = node.get_json("/api/v1/metrics", METRICS_TOKEN).await;
    body["cluster"]["node"]
        .as_str()
        .expect("node id")
        .to_string()
}

/// Every message on Redis channels matching `pattern`, as (channel, JSON).
fn redis_messages(redis: &crate::RedisServer, pattern: &str) -> Arc<Mutex<Vec<(String, Value)>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut conn = redis.client();
    let pattern = pattern.to_string();
    let out = seen.clone();
    let (ready, subscribed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut pubsub = conn.as_pubsub();
        let _ = ready.send(pubsub.psubscribe(&pattern).is_ok());
        // Ends with the test's redis-server.
        while let Ok(message) = pubsub.get_message() {
            let body = serde_json::from_slice(message.get_payload_bytes()).unwrap_or(Value::Null);
            out.lock()
                .push((message.get_channel_name().to_string(), body));
        }
    });
    assert_eq!(subscribed.recv_timeout(DEADLINE), Ok(true), "PSUBSCRIBE");
    seen
}

#[tokio::test]
async fn a_user_is_offline_once_when_its_last_connection_anywhere_closes() {
    let (hooks, url) = Hooks::start().await;
    let cluster = cluster(
        2,
        &url,
        &[
            ("SSER_COMPAT_GO_SSE_BROKER_ENABLED", "true"),
            ("SSER_COMPAT_GO_SSE_BROKER_APP", APP),
        ],
    );
    let channels = redis_messages(&cluster.redis, "sse_topic_*");
    let (a, b) = (cluster.node(0), cluster.node(1));

    let on_a = connect(&a, "u1", "phone").await;
    hooks.wait_for("device_online", "u1", Some("phone")).await;
    let on_b = connect(&b, "u1", "laptop").await;
    hooks.wait_for("device_online", "u1", Some("laptop")).await;
    flush(&hooks, &b, "marker-b1").await;
    assert_eq!(
        hooks.of("user_online", "u1", None).len(),
        1,
        "online once across the cluster"
    );

    // Close A: the user is still on B.
    drop(on_a);
    let gone = hooks.wait_for("device_offline", "u1", Some("phone")).await;
    assert_eq!(gone["reason"], "disconnected");
    flush(&hooks, &a, "marker-a1").await;
    assert!(
        hooks.of("user_offline", "u1", None).is_empty(),
        "still connected on B: {:?}",
        hooks.of("user_offline", "u1", None)
    );

    // Close B: the last connection anywhere.
    drop(on_b);
    let offline = hooks.wait_for("user_offline", "u1", None).await;
    assert_eq!(offline["reason"], "disconnected");
    assert_eq!(offline["node"], node_id(&b).await.as_str());
    flush(&hooks, &a, "marker-a2").await;
    flush(&hooks, &b, "marker-b2").await;
    assert_eq!(hooks.of("user_offline", "u1", None).len(), 1);
    assert_eq!(hooks.of("user_online", "u1", None).len(), 1);
    assert_eq!(hooks.of("device_online", "u1", None).len(), 2);
    assert_eq!(hooks.of("device_offline", "u1", None).len(), 2);

    // The same transitions on go-sse-broker's channels, once each.
    let of_u1 = |channel: &str| -> Vec<Value> {
        channels
            .lock()
            .iter()
            .filter(|(c, body)| c == channel && body["uid"] == "u1")
            .map(|(_, body)| body.clone())
            .collect()
    };
    wait_until("go-sse-broker's user_offline", || async {
        !of_u1("sse_topic_user_offline").is_empty()
    })
    .await;
    assert_eq!(of_u1("sse_topic_user_online").len(), 1);
    assert_eq!(of_u1("sse_topic_device_online").len(), 2);
    assert_eq!(of_u1("sse_topic_device_offline").len(), 2);
    let offline = of_u1("sse_topic_user_offline");
    assert_eq!(offline.len(), 1);
    assert_eq!(offline[0]["reason"], "device_disconnect");
    assert_eq!(offline[0]["device"], "laptop");
    assert_eq!(offline[0]["payload"], "");
    let time = offline[0]["trigger_time"].as_str().unwrap_or("");
    assert_eq!(time.len(), "2026-01-01 00:00:00".len(), "{time}");
}

#[tokio::test]
async fn a_killed_nodes_users_go_offline_once_with_node_lost() {
    let (hooks, url) = Hooks::start().await;
    let mut cluster = cluster(3, &url, &[]);
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let dead = node_id(&c).await;

    // u2 only on C; u3 on A and C.
    let _u2 = connect(&c, "u2", "phone").await;
    let _u3_a = connect(&a, "u3", "tablet").await;
    let _u3_c = connect(&c, "u3", "phone").await;
    hooks.wait_for("device_online", "u2", Some("phone")).await;
    hooks.wait_for("device_online", "u3", Some("phone")).await;
    hooks.wait_for("device_online", "u3", Some("tablet")).await;

    cluster.nodes[2].kill9();
    let killed = Instant::now();
    let offline = hooks.wait_for("user_offline", "u2", None).await;
    let took = killed.elapsed();
    assert!(
        took <= TTL + CHECK + Duration::from_secs(3),
        "node_lost within nodeTtl + nodeCheckInterval (+ delivery), took {took:?}"
    );
    assert_eq!(offline["reason"], "node_lost");
    assert_eq!(offline["node"], dead.as_str(), "names the node that died");
    let device = hooks.wait_for("device_offline", "u3", Some("phone")).await;
    assert_eq!(device["reason"], "node_lost");

    // Exactly one survivor cleaned up, and nobody emits anything twice.
    wait_until("the clean-up to be counted", || async {
        let (on_a, on_b) = (
            prometheus(&a, "sser_cluster_nodes_lost_total").await,
            prometheus(&b, "sser_cluster_nodes_lost_total").await,
        );
        eprintln!("nodes_lost_total: a={on_a} b={on_b}");
        on_a + on_b == 1.0
    })
    .await;
    flush(&hooks, &a, "marker-a").await;
    flush(&hooks, &b, "marker-b").await;
    assert_eq!(hooks.of("user_offline", "u2", None).len(), 1);
    assert_eq!(hooks.of("device_offline", "u2", None).len(), 1);
    assert_eq!(hooks.of("device_offline", "u3", Some("phone")).len(), 1);
    assert!(
        hooks.of("user_offline", "u3", None).is_empty(),
        "u3 is still on A"
    );
    assert!(hooks.of("device_offline", "u3", Some("tablet")).is_empty());
}

#[tokio::test]
async fn a_notification_service_producer_reaches_its_user() {
    let (_hooks, url) = Hooks::start().await;
    let cluster = cluster(
        2,
        &url,
        &[
            ("SSER_COMPAT_NOTIFICATION_SERVICE_ENABLED", "true"),
            ("SSER_COMPAT_NOTIFICATION_SERVICE_PREFIX", "/ns"),
        ],
    );
    let nodes = [cluster.node(0), cluster.node(1)];
    let mut redis = cluster.redis.client();
    // One node holds the producers' lease and listens.
    let mut holder = String::new();
    wait_until("a node to hold the producer lease and listen", || {
        let lease: Option<String> = redis::cmd("GET")
            .arg("sser:lease:notification-service")
            .query(&mut redis)
            .unwrap_or(None);
        let patterns: i64 = redis::cmd("PUBSUB")
            .arg("NUMPAT")
            .query(&mut redis)
            .unwrap_or(0);
        if let Some(lease) = &lease {
            holder = lease.clone();
        }
        std::future::ready(lease.is_some() && patterns >= 1)
    })
    .await;
    // The user on every node: the holder sends to the user's inbox, which
    // reaches the user's connections wherever they are.
    let mut streams = Vec::new();
    let mut holder_node = None;
    for (i, node) in nodes.iter().enumerate() {
        if node_id(node).await == holder {
            holder_node = Some(node.clone());
        }
        // The original's own client: `GET /sse` with `iss`/`sub`.
        let req = node
            .http
            .get(node.url("/ns/sse"))
            .bearer_auth(token("u5", &format!("web-{i}")));
        let stream = SseStream::open(req).await;
        assert_eq!(stream.status, 200);
        streams.push(stream);
    }
    let node = holder_node.expect("the lease names a node");

    let publish = |redis: &mut redis::Connection, channel: &str, body: &str| {
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(body)
            .query::<i64>(redis)
            .expect("PUBLISH")
    };
    // Dropped and counted: a nested map, and a type that would forge a frame.
    publish(
        &mut redis,
        "shop:channel:u5",
        r#"{"id":"1","type":"event","data":{"a":{"b":"c"}}}"#,
    );
    publish(
        &mut redis,
        "shop:channel:u5",
        r#"{"id":"2","type":"x\ndata: forged","data":{}}"#,
    );
    publish(
        &mut redis,
        "shop:channel:u5",
        r#"{"id":"100","type":"event","data":{"hello":"world"}}"#,
    );
    publish(
        &mut redis,
        "shop:channel:u5",
        r#"{"id":"101","type":"event","data":{"n":"2"}}"#,
    );
    // Each connection gets each valid message once, in order.
    for stream in &mut streams {
        let first = stream.expect_event().await;
        assert_eq!(first.event, "event");
        assert_eq!(
            serde_json::from_str::<Value>(&first.data).ok(),
            Some(json!({"hello": "world"}))
        );
        let second = stream.expect_event().await;
        assert_eq!(
            serde_json::from_str::<Value>(&second.data).ok(),
            Some(json!({"n": "2"}))
        );
    }
    assert_eq!(
        prometheus(&node, "sser_cluster_producer_rejected_total").await,
        2.0
    );
    // Counted once the send returned, which may be after the delivery.
    wait_until("the delivery to be counted", || async {
        prometheus(&node, "sser_cluster_producer_messages_total").await == 2.0
    })
    .await;
}

// Two threads: the receiver must answer the stopping node's webhooks while
// `terminate` blocks this one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_is_a_shutdown_not_a_lost_node() {
    let (hooks, url) = Hooks::start().await;
    let mut cluster = cluster(2, &url, &[]);
    let (a, b) = (cluster.node(0), cluster.node(1));
    let _u6 = connect(&b, "u6", "phone").await;
    hooks.wait_for("user_online", "u6", None).await;

    assert!(cluster.nodes[1].terminate().success());
    let offline = hooks.wait_for("user_offline", "u6", None).await;
    assert_eq!(offline["reason"], "shutdown");
    // Past the time a survivor would have taken the node for dead.
    let after = Instant::now() + TTL + CHECK * 2;
    wait_until("a survivor's node check after the TTL", || async {
        Instant::now() >= after
    })
    .await;
    flush(&hooks, &a, "marker-a").await;
    assert_eq!(hooks.of("user_offline", "u6", None).len(), 1);
    assert_eq!(hooks.of("device_offline", "u6", None).len(), 1);
    assert_eq!(prometheus(&a, "sser_cluster_nodes_lost_total").await, 0.0);
}

#[tokio::test]
async fn a_share_the_ledger_lost_is_written_again() {
    let (hooks, url) = Hooks::start().await;
    let cluster = cluster(1, &url, &[]);
    let a = cluster.node(0);
    let u7 = connect(&a, "u7", "phone").await;
    hooks.wait_for("user_online", "u7", None).await;

    // Behind the node's back, as a survivor that took it for dead (or a
    // Redis that came back empty) leaves it: its presence is gone.
    let mut redis = cluster.redis.client();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("sser:presence:*")
        .query(&mut redis)
        .expect("KEYS");
    assert!(!keys.is_empty());
    redis::cmd("DEL")
        .arg(&keys)
        .query::<i64>(&mut redis)
        .expect("DEL");

    // Within a check interval the node writes what it holds again: the
    // user is online once more in the ledger...
    wait_until("the node to write its share again", || async {
        hooks.of("user_online", "u7", None).len() == 2
    })
    .await;
    // ...so its last connection closing is still an offline, once.
    drop(u7);
    let offline = hooks.wait_for("user_offline", "u7", None).await;
    assert_eq!(offline["reason"], "disconnected");
    flush(&hooks, &a, "marker-a").await;
    assert_eq!(hooks.of("user_offline", "u7", None).len(), 1);
    assert_eq!(hooks.of("device_offline", "u7", Some("phone")).len(), 1);
}
