//! Observability over real sockets: Prometheus `/metrics` read back with a
//! real Prometheus text-format parser (`prometheus-parse`), the JSON metrics,
//! and the dashboard's stats stream read with a real SSE parser.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::*;
use prometheus_parse::{Scrape, Value};
use serde_json::json;

/// Scrapes `/metrics` with `token` and parses it as Prometheus would.
async fn scrape(server: &TestServer, token: Option<&str>) -> Scrape {
    let mut req = server.http.get(server.url("/metrics"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("scrape");
    assert_eq!(resp.status(), 200, "scrape status");
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = resp.text().await.expect("scrape body");
    check_exposition(&text);
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text parses")
}

/// What the lenient parser does not check: every series belongs to a family
/// declared with `# TYPE` (and `# HELP`) before it, names are legal, and no
/// series appears twice.
fn check_exposition(text: &str) {
    let mut typed: HashMap<String, String> = HashMap::new();
    let mut helped = HashSet::new();
    let mut seen = HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(
                typed.insert(name.to_string(), kind.to_string()).is_none(),
                "TYPE twice: {name}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.insert(rest.split_once(' ').expect("HELP name text").0.to_string());
            continue;
        }
        assert!(
            !line.is_empty() && !line.starts_with('#'),
            "unexpected line {line:?}"
        );
        let series = line.rsplit_once(' ').expect("series value").0;
        assert!(seen.insert(series.to_string()), "series twice: {series}");
        let name = series.split('{').next().unwrap_or(series);
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name {name}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(typed.contains_key(family), "no # TYPE before {name}");
        assert!(helped.contains(family), "no # HELP for {family}");
    }
}

fn value(scrape: &Scrape, name: &str) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name)
        .unwrap_or_else(|| panic!("{name} missing"));
    match sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        _ => panic!("{name} is not a single value"),
    }
}

fn histogram(scrape: &Scrape, name: &str) -> Vec<(f64, f64)> {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name)
        .unwrap_or_else(|| panic!("{name} missing"));
    match &sample.value {
        Value::Histogram(buckets) => buckets.iter().map(|b| (b.less_than, b.count)).collect(),
        _ => panic!("{name} is not a histogram"),
    }
}

#[tokio::test]
async fn prometheus_metrics_parse_and_move() {
    let server = TestServer::start().await;
    let before = scrape(&server, Some(METRICS_TOKEN)).await;
    assert_eq!(value(&before, "sser_messages_received_total"), 0.0);
    assert_eq!(value(&before, "sser_publish_duration_seconds_count"), 0.0);
    assert!(value(&before, "process_resident_memory_bytes") > 1e6);
    let info = before
        .samples
        .iter()
        .find(|s| s.metric == "sser_build_info")
        .expect("build info");
    assert_eq!(info.labels.get("version"), Some(env!("CARGO_PKG_VERSION")));

    let (id, token) = server.create_topic(json!({})).await;
    let mut stream = server.subscribe(&id, &token).await;
    for i in 0..5 {
        server
            .publish_ok(&id, json!({"message": format!("m{i}")}))
            .await;
    }
    stream.take(5).await;
    // "sent" is counted as the stream yields, a moment after the client may
    // have parsed it: wait for the counter rather than race it.
    server
        .wait_until("5 sent", || async {
            server.metric("message_sent").await == 5
        })
        .await;

    let after = scrape(&server, Some(METRICS_TOKEN)).await;
    assert_eq!(value(&after, "sser_messages_received_total"), 5.0);
    assert_eq!(value(&after, "sser_messages_sent_total"), 5.0);
    assert!(value(&after, "sser_bytes_sent_total") > 5.0 * 10.0);
    assert_eq!(value(&after, "sser_topics"), 1.0);
    assert_eq!(value(&after, "sser_active_topics"), 1.0);
    assert_eq!(value(&after, "sser_active_subscribers"), 1.0);
    assert_eq!(value(&after, "sser_subscribers_total"), 1.0);
    assert_eq!(value(&after, "sser_topics_created_total"), 1.0);

    let buckets = histogram(&after, "sser_publish_duration_seconds");
    assert!(buckets.len() >= 10, "{buckets:?}");
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "buckets ascend and are cumulative: {buckets:?}"
    );
    let last = buckets.last().expect("a bucket");
    assert!(last.0.is_infinite(), "+Inf bucket last");
    assert_eq!(last.1, 5.0);
    assert_eq!(value(&after, "sser_publish_duration_seconds_count"), 5.0);
    assert!(value(&after, "sser_publish_duration_seconds_sum") > 0.0);

    // Bounded cardinality: no per-topic series unless enabled.
    assert!(
        !after
            .samples
            .iter()
            .any(|s| s.metric.starts_with("sser_topic_")),
        "per-topic series must be off by default"
    );

    // The JSON metrics still lead with SSER's seven, in order.
    let v: serde_json::Value = server
        .http
        .get(server.url("/api/v1/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .expect("json metrics")
        .json()
        .await
        .expect("json body");
    let names: Vec<&str> = v["metrics"]
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names[..7],
        [
            "topics",
            "static_topics",
            "active_topics",
            "subscribers",
            "active_subscribers",
            "message_received",
            "message_sent"
        ]
    );
    drop(stream);
    server.stop().await;
}

#[tokio::test]
async fn prometheus_auth_and_open_mode() {
    let server = TestServer::start().await;
    let get = |token: Option<&'static str>| {
        let mut req = server.http.get(server.url("/metrics"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move { req.send().await.expect("scrape").status() }
    };
    assert_eq!(get(None).await, 401);
    assert_eq!(get(Some("wrong")).await, 401);
    assert_eq!(get(Some(METRICS_TOKEN)).await, 200);
    assert_eq!(get(Some(API_TOKEN)).await, 200);
    // A rejected scrape never echoes the token it was sent.
    let body = server
        .http
        .get(server.url("/metrics"))
        .bearer_auth("secret-guess")
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    assert!(!body.contains("secret-guess"), "{body}");
    server.stop().await;

    let open = TestServer::start_with(|c| c.metrics.open = sser::config::Flag(true)).await;
    scrape(&open, None).await;
    open.stop().await;
}

#[tokio::test]
async fn per_topic_series_when_enabled() {
    let server = TestServer::start_with(|c| c.metrics.per_topic = sser::config::Flag(true)).await;
    let (a, token) = server.create_topic(json!({})).await;
    let (b, _) = server.create_topic(json!({})).await;
    let _stream = server.subscribe(&a, &token).await;
    for _ in 0..3 {
        server.publish_ok(&a, json!({"message": "x"})).await;
    }
    let s = scrape(&server, Some(METRICS_TOKEN)).await;
    let series = |name: &str, topic: &str| -> f64 {
        let sample = s
            .samples
            .iter()
            .find(|x| x.metric == name && x.labels.get("topic") == Some(topic))
            .unwrap_or_else(|| panic!("{name}{{topic={topic}}} missing"));
        match sample.value {
            Value::Counter(v) | Value::Gauge(v) => v,
            _ => panic!("{name} has the wrong type"),
        }
    };
    assert_eq!(series("sser_topic_events_published_total", &a), 3.0);
    assert_eq!(series("sser_topic_events_published_total", &b), 0.0);
    assert_eq!(series("sser_topic_subscribers", &a), 1.0);
    assert_eq!(series("sser_topic_history_events", &a), 3.0);
    assert!(series("sser_topic_history_bytes", &a) > 0.0);
    server.stop().await;
}

#[tokio::test]
async fn stats_stream_feeds_the_dashboard() {
    let server = TestServer::start().await;
    let resp = server
        .http
        .get(server.url("/api/v1/metrics/stream"))
        .send()
        .await
        .expect("stream");
    assert_eq!(resp.status(), 401, "the stats stream needs a token");

    let (id, _) = server.create_topic(json!({})).await;
    let mut stream = SseStream::open(
        server
            .http
            .get(server.url("/api/v1/metrics/stream"))
            .bearer_auth(METRICS_TOKEN),
    )
    .await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.headers["content-type"], "text/event-stream");
    let first = stream.take(3).await;
    let kinds: Vec<&str> = first.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds, ["history", "stats", "topics"]);
    let stats: serde_json::Value = serde_json::from_str(&first[1].data).expect("stats json");
    assert_eq!(stats["version"], env!("CARGO_PKG_VERSION"));
    assert!(stats["memory_rss_bytes"].as_u64().expect("rss") > 1 << 20);
    assert_eq!(stats["metrics"][0]["name"], "topics");
    // Identity tokens are off here: the dashboard shows why it lists no
    // users. No stream is open but this one (not a registry connection).
    assert_eq!(stats["identity"], serde_json::Value::Null, "{stats}");
    assert_eq!(
        stats["streams"],
        json!({"topic": 0, "identity": 0, "presence": 0}),
        "{stats}"
    );
    let topics: serde_json::Value = serde_json::from_str(&first[2].data).expect("topics json");
    assert_eq!(topics["total"], 1);
    assert_eq!(topics["pubsubs"][0]["id"], id.as_str());

    for _ in 0..4 {
        server.publish_ok(&id, json!({"message": "tick"})).await;
    }
    // Within a few seconds a stats update shows the publishes and a rate.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no stats update showed the publishes"
        );
        let e = stream.expect_event().await;
        if e.event != "stats" {
            continue;
        }
        let s: serde_json::Value = serde_json::from_str(&e.data).expect("stats json");
        let received = s["metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .find(|m| m["name"] == "message_received")
            .and_then(|m| m["value"].as_u64());
        if received == Some(4) && s["rates"]["events_in"].as_f64() > Some(0.0) {
            assert_eq!(s["publish_latency"]["count"], 4);
            assert!(s["publish_latency"]["p99_seconds"].as_f64() > Some(0.0));
            break;
        }
    }
    // The API token is never taken from a URL.
    let resp = server
        .http
        .get(server.url(&format!("/api/v1/metrics/stream?access_token={API_TOKEN}")))
        .send()
        .await
        .expect("stream");
    assert_eq!(resp.status(), 401);
    // The next connection's history holds the seconds sampled so far. This
    // one authenticates as a plain EventSource must, with ?access_token=.
    let mut again = SseStream::open(server.http.get(server.url(&format!(
        "/api/v1/metrics/stream?access_token={METRICS_TOKEN}"
    ))))
    .await;
    assert_eq!(again.status, 200);
    let history = again.expect_event().await;
    assert_eq!(history.event, "history");
    let h: serde_json::Value = serde_json::from_str(&history.data).expect("history json");
    let points = h["points"].as_array().expect("points");
    assert!(!points.is_empty());
    assert!(
        points.iter().any(|p| p[1].as_f64() > Some(0.0)),
        "{points:?}"
    );
    server.stop().await;
}
