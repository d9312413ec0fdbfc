//! Presence webhooks against a real HTTP receiver: an axum server on a free
//! loopback port that checks every signature the way the README tells
//! receivers to (its own HMAC, not sser's), and fails, hangs or refuses as
//! each test needs. Counters are read from the same `Metrics` the server
//! exports.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::{DEADLINE, wait_until};
use hmac::{Hmac, KeyInit, Mac};
use parking_lot::Mutex;
use sha2::Sha256;
use sser::metrics::{Metrics, WebhookCounts};
use sser::presence::{
    PresenceEvent, PresenceIdentity, PresenceKind, PresenceReason, PresenceSettings,
    PresenceTracker, WebhookSettings, Webhooks,
};
use sser::secret::Secret;

const SECRET: &str = "whsec-test";

/// How the receiver answers.
#[derive(Clone, Copy)]
enum Behaviour {
    /// 500 to the first `n` requests, then 204.
    FailFirst(u32),
    /// Never answers.
    Hang,
    /// 400 to everything.
    Refuse,
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Hit {
    body: Bytes,
    delivery: String,
    kind: String,
    /// The signature checked out over timestamp + "." + body, and the
    /// timestamp was fresh.
    verified: bool,
}

struct Receiver {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
}

struct ReceiverState {
    behaviour: Behaviour,
    seen: AtomicU32,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    async fn start(behaviour: Behaviour) -> Receiver {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(ReceiverState {
            behaviour,
            seen: AtomicU32::new(0),
            hits: hits.clone(),
        });
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://{addr}/hook"),
            hits,
        }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().clone()
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let verified = verify(
        &header("x-sser-timestamp"),
        &body,
        &header("x-sser-signature"),
    );
    state.hits.lock().push(Hit {
        body,
        delivery: header("x-sser-delivery"),
        kind: header("x-sser-event"),
        verified,
    });
    let n = state.seen.fetch_add(1, Ordering::SeqCst);
    match state.behaviour {
        Behaviour::FailFirst(k) if n < k => StatusCode::INTERNAL_SERVER_ERROR,
        Behaviour::FailFirst(_) => StatusCode::NO_CONTENT,
        Behaviour::Hang => std::future::pending().await,
        Behaviour::Refuse => StatusCode::BAD_REQUEST,
    }
}

/// The README's receiver recipe: HMAC-SHA256(secret, timestamp + "." +
/// body) in hex equals the header after `sha256=`, compared in constant
/// time, and the timestamp is within 5 minutes.
fn verify(timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Ok(sent) = timestamp.parse::<u64>() else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if sent.abs_diff(now) > 300 {
        return false;
    }
    let Some(hex) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(tag) = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
    else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).expect("any key");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

fn settings(urls: Vec<String>) -> WebhookSettings {
    WebhookSettings {
        timeout: Duration::from_secs(5),
        max_attempts: 5,
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        ..WebhookSettings::new(urls, Secret::new(SECRET))
    }
}

fn event(user: &str) -> PresenceEvent {
    PresenceEvent {
        kind: PresenceKind::UserOnline,
        app: "shop".into(),
        user: user.into(),
        device: Some("phone".into()),
        reason: PresenceReason::Connected,
        at: 1_767_225_600_000,
        connection_id: "c1".into(),
        node: None,
    }
}

async fn wait_for_counts(metrics: &Metrics, what: &str, done: impl Fn(WebhookCounts) -> bool) {
    wait_until(what, || {
        let ok = done(metrics.webhook_counts());
        async move { ok }
    })
    .await;
}

#[tokio::test]
async fn delivered_once_after_failures_every_attempt_signed() {
    let receiver = Receiver::start(Behaviour::FailFirst(2)).await;
    let metrics = Arc::new(Metrics::default());
    let hooks =
        Webhooks::start(settings(vec![receiver.url.clone()]), metrics.clone()).expect("start");
    let sent = event("u1");
    assert_eq!(hooks.enqueue(&sent), 1);

    wait_for_counts(&metrics, "the delivery", |c| c.delivered == 1).await;
    let hits = receiver.hits();
    assert_eq!(hits.len(), 3, "two 500s, then the accepted one");
    for hit in &hits {
        assert!(hit.verified, "every attempt is signed afresh");
        assert_eq!(hit.body, hits[0].body, "the same body each time");
        assert_eq!(
            hit.delivery, hits[0].delivery,
            "one delivery id to dedupe on"
        );
        assert_eq!(hit.kind, "user_online");
    }
    let got: PresenceEvent = serde_json::from_slice(&hits[2].body).expect("JSON event");
    assert_eq!(got, sent);
    assert_eq!(
        metrics.webhook_counts(),
        WebhookCounts {
            delivered: 1,
            retried: 2,
            failed: 0,
            dropped: 0
        }
    );
    assert_eq!(hooks.pending(), 0);
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out_is_retried_and_counted_failed() {
    let receiver = Receiver::start(Behaviour::Hang).await;
    let metrics = Arc::new(Metrics::default());
    let settings = WebhookSettings {
        timeout: Duration::from_millis(200),
        max_attempts: 3,
        ..settings(vec![receiver.url.clone()])
    };
    let hooks = Webhooks::start(settings, metrics.clone()).expect("start");
    hooks.enqueue(&event("u1"));

    wait_for_counts(&metrics, "giving up", |c| c.failed == 1).await;
    assert_eq!(receiver.hits().len(), 3, "three attempts reached it");
    assert!(receiver.hits().iter().all(|h| h.verified));
    let c = metrics.webhook_counts();
    assert_eq!((c.delivered, c.retried, c.dropped), (0, 2, 0));
    assert_eq!(hooks.pending(), 0);
}

#[tokio::test]
async fn a_refusal_fails_at_once_without_retries() {
    let receiver = Receiver::start(Behaviour::Refuse).await;
    let metrics = Arc::new(Metrics::default());
    let hooks =
        Webhooks::start(settings(vec![receiver.url.clone()]), metrics.clone()).expect("start");
    hooks.enqueue(&event("u1"));
    wait_for_counts(&metrics, "the failure", |c| c.failed == 1).await;
    assert_eq!(receiver.hits().len(), 1);
    assert_eq!(metrics.webhook_counts().retried, 0);
}

/// A receiver that never answers fills its queue; from then on every event
/// is dropped and counted, and `enqueue` still returns in microseconds.
#[tokio::test]
async fn a_full_queue_drops_and_counts_without_blocking() {
    let receiver = Receiver::start(Behaviour::Hang).await;
    let metrics = Arc::new(Metrics::default());
    let settings = WebhookSettings {
        timeout: Duration::from_secs(60),
        queue: 4,
        concurrency: 1,
        ..settings(vec![receiver.url.clone()])
    };
    let hooks = Webhooks::start(settings, metrics.clone()).expect("start");
    // One in flight (hanging), so the queue can only fill.
    hooks.enqueue(&event("first"));
    wait_until("the first request to hang", || {
        let n = receiver.hits().len();
        async move { n == 1 }
    })
    .await;

    let n = 10_000;
    let mut taken = 0;
    let mut slowest = Duration::ZERO;
    let all = Instant::now();
    for i in 0..n {
        let e = event(&format!("u{i}"));
        let t = Instant::now();
        taken += hooks.enqueue(&e);
        slowest = slowest.max(t.elapsed());
    }
    let all = all.elapsed();
    println!(
        "enqueue: {n} calls in {all:?}, mean {:?}, slowest {slowest:?}",
        all / n as u32
    );
    assert_eq!(taken, 4, "the queue holds 4");
    let c = metrics.webhook_counts();
    assert_eq!(c.dropped, n as u64 - 4);
    assert_eq!(c.delivered + c.failed, 0);
    // Blocking would mean waiting on a request that never ends (60 s
    // timeout): any bound far below that tells the two apart.
    assert!(all < Duration::from_secs(5), "enqueue blocked: {all:?}");

    // Shutdown cannot wait for it: what is left is abandoned and counted.
    assert!(!hooks.drain(Duration::from_millis(100)).await);
    let c = metrics.webhook_counts();
    assert_eq!(c.failed, 5, "the hanging one and the 4 queued");
    assert_eq!(hooks.pending(), 0);
    assert_eq!(hooks.enqueue(&event("late")), 0, "no events after drain");
}

/// One URL that refuses connections does not hold up another.
#[tokio::test]
async fn a_dead_url_does_not_delay_a_healthy_one() {
    let healthy = Receiver::start(Behaviour::FailFirst(0)).await;
    let dead = format!("http://127.0.0.1:{}/hook", common::free_port());
    let metrics = Arc::new(Metrics::default());
    let settings = WebhookSettings {
        max_attempts: 2,
        ..settings(vec![dead, healthy.url.clone()])
    };
    let hooks = Webhooks::start(settings, metrics.clone()).expect("start");
    for i in 0..20 {
        assert_eq!(hooks.enqueue(&event(&format!("u{i}"))), 2);
    }
    wait_for_counts(&metrics, "all settled", |c| {
        c.delivered == 20 && c.failed == 20
    })
    .await;
    assert_eq!(healthy.hits().len(), 20);
    assert_eq!(
        metrics.webhook_counts().retried,
        20,
        "one retry each to the dead URL"
    );
}

/// The tracker feeding the webhooks: a connection's whole life reaches the
/// receiver in order, and a drain at shutdown delivers what was queued.
#[tokio::test]
async fn tracker_events_reach_the_receiver_and_drain_delivers_the_rest() {
    let receiver = Receiver::start(Behaviour::FailFirst(0)).await;
    let metrics = Arc::new(Metrics::default());
    let settings = WebhookSettings {
        concurrency: 1,
        ..settings(vec![receiver.url.clone()])
    };
    let hooks = Webhooks::start(settings, metrics.clone()).expect("start");
    let tracker = PresenceTracker::new(
        PresenceSettings {
            grace: Duration::from_secs(30),
            node: None,
        },
        hooks.clone(),
    );
    let who = PresenceIdentity {
        app: "shop".into(),
        user: "u1".into(),
        device: Some("phone".into()),
    };
    tracker.open(who, "c1").close(PresenceReason::Kicked);
    // Offline is waiting for its grace; shutdown emits it now.
    assert_eq!(tracker.shutdown(), 2);
    assert!(hooks.drain(DEADLINE).await, "everything delivered");

    let kinds: Vec<(String, PresenceReason)> = receiver
        .hits()
        .iter()
        .map(|h| {
            let e: PresenceEvent = serde_json::from_slice(&h.body).expect("JSON");
            assert_eq!(h.kind, e.kind.as_str());
            (h.kind.clone(), e.reason)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("user_online".to_string(), PresenceReason::Connected),
            ("device_online".to_string(), PresenceReason::Connected),
            ("device_offline".to_string(), PresenceReason::Shutdown),
            ("user_offline".to_string(), PresenceReason::Shutdown),
        ]
    );
    assert_eq!(metrics.webhook_counts().delivered, 4);
}

#[tokio::test]
async fn bad_settings_are_refused() {
    let metrics = Arc::new(Metrics::default());
    let err = Webhooks::start(settings(vec!["ftp://x/".into()]), metrics.clone())
        .err()
        .expect("bad URL refused")
        .to_string();
    assert!(err.contains("number 0"), "{err}");
    let mut s = settings(vec!["http://127.0.0.1:1/".into()]);
    s.secret = Secret::new("");
    assert!(Webhooks::start(s, metrics).is_err(), "empty secret refused");
}
