//! `GET /metrics`: the hub's numbers in the Prometheus text exposition format
//! (version 0.0.4), for a scraper.
//!
//! Protected by the metrics token (or the API token) unless `metrics.open`
//! is set. Per-topic series, labelled `topic="<id>"`, appear only with
//! `metrics.perTopic`, because clients can create topics without limit and
//! each would become a new series in the scraper's database. For the same
//! reason connections and presence are counted by kind only, never by
//! application, user or device.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::principal::Principal;
use crate::hub::Hub;
use crate::metrics::{Cut, HistogramSnapshot, Refusal, process_rss_bytes};
use crate::presence::PresenceCounts;

/// How `/metrics` is served (from `metrics.*` configuration).
#[derive(Debug, Clone, Copy, Default)]
pub struct PrometheusSettings {
    /// No token needed.
    pub open: bool,
    /// Emit per-topic series.
    pub per_topic: bool,
}

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn metrics(principal: Principal, State(state): State<Arc<AppState>>) -> Response {
    if !state.prometheus.open
        && let Err(e) = principal.monitor()
    {
        return e.into_response();
    }
    let body = render(
        &state.hub,
        state.presence.counts(),
        state.prometheus.per_topic,
    );
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        body,
    )
        .into_response()
}

/// The whole exposition. Names follow Prometheus conventions: counters end
/// in `_total`, units are base units (seconds, bytes).
pub fn render(hub: &Hub, presence: PresenceCounts, per_topic: bool) -> String {
    let metrics = hub.metrics();
    let samples = metrics.samples(hub.topic_counts());
    let get = |name: &str| {
        samples
            .iter()
            .find(|s| s.name == name)
            .map_or(0, |s| s.value)
    };
    let mut out = String::with_capacity(4096);
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {}", number(value));
    };
    // SSER's seven, then ours.
    metric(
        "sser_topics",
        "gauge",
        "Topics that exist now.",
        get("topics") as f64,
    );
    metric(
        "sser_static_topics",
        "gauge",
        "Topics defined in configuration.",
        get("static_topics") as f64,
    );
    metric(
        "sser_active_topics",
        "gauge",
        "Topics with at least one subscriber.",
        get("active_topics") as f64,
    );
    metric(
        "sser_subscribers_total",
        "counter",
        "Subscriber streams opened since start.",
        get("subscribers") as f64,
    );
    metric(
        "sser_active_subscribers",
        "gauge",
        "Subscriber streams open now.",
        get("active_subscribers") as f64,
    );
    metric(
        "sser_messages_received_total",
        "counter",
        "Events accepted from publishers.",
        get("message_received") as f64,
    );
    metric(
        "sser_messages_sent_total",
        "counter",
        "Events written to subscriber streams.",
        get("message_sent") as f64,
    );
    metric(
        "sser_bytes_sent_total",
        "counter",
        "Bytes of events written to subscriber streams.",
        get("bytes_sent") as f64,
    );
    metric(
        "sser_lagged_subscribers_total",
        "counter",
        "Times a subscriber fell behind the live stream and had to catch up from history.",
        get("lagged_subscribers") as f64,
    );
    metric(
        "sser_topics_created_total",
        "counter",
        "Topics created since start.",
        get("topics_created") as f64,
    );
    metric(
        "sser_topics_deleted_total",
        "counter",
        "Topics deleted since start.",
        get("topics_deleted") as f64,
    );
    metric(
        "sser_cluster_rejected_entries_total",
        "counter",
        "Events read back from the cluster's Redis and dropped because they failed validation (an id or type with CR, LF or NUL, or not sser's encoding).",
        metrics.cluster_rejected_entries() as f64,
    );
    metric(
        "sser_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        metrics.started().elapsed().as_secs_f64(),
    );
    if let Some(rss) = process_rss_bytes() {
        metric(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            rss as f64,
        );
    }
    connection_series(&metrics.connections, &mut out);
    cluster_series(&metrics.cluster, &mut out);
    identity_series(hub, presence, &mut out);
    let _ = writeln!(out, "# HELP sser_build_info The running version.");
    let _ = writeln!(out, "# TYPE sser_build_info gauge");
    let _ = writeln!(
        out,
        "sser_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );

    histogram(
        &mut out,
        "sser_publish_duration_seconds",
        "Time from a publish request reaching the hub to its event being stored and handed to every subscriber.",
        &metrics.publish_latency.snapshot(),
    );

    if per_topic {
        per_topic_series(hub, &mut out);
    }
    out
}

/// The cluster as this node sees it; nothing on a single node. Node ids
/// are checked to be sser's own (`broker::redis::nodes`) before they become
/// label values, and a cluster holds a handful of nodes, not an unbounded
/// number.
fn cluster_series(c: &crate::metrics::ClusterMetrics, out: &mut String) {
    if !c.is_on() {
        return;
    }
    let nodes = c.nodes();
    let _ = writeln!(
        out,
        "# HELP sser_cluster_nodes Live cluster nodes this node sees (heartbeats within cluster.nodeTtl), itself included."
    );
    let _ = writeln!(out, "# TYPE sser_cluster_nodes gauge");
    let _ = writeln!(out, "sser_cluster_nodes {}", nodes.len());
    let _ = writeln!(
        out,
        "# HELP sser_cluster_node_connections Subscriber streams each live node served at its last heartbeat."
    );
    let _ = writeln!(out, "# TYPE sser_cluster_node_connections gauge");
    for node in &nodes {
        let _ = writeln!(
            out,
            "sser_cluster_node_connections{{node=\"{}\"}} {}",
            node.id, node.connections
        );
    }
    let _ = writeln!(
        out,
        "# HELP sser_cluster_redis_errors_total Redis requests that failed or did not answer in time, by operation."
    );
    let _ = writeln!(out, "# TYPE sser_cluster_redis_errors_total counter");
    for (op, count) in c.redis_errors_by_op() {
        let _ = writeln!(
            out,
            "sser_cluster_redis_errors_total{{op=\"{op}\"}} {count}"
        );
    }
    let (delivered, rejected) = c.producer_messages();
    for (name, help, value) in [
        (
            "sser_cluster_presence_dropped_total",
            "Presence changes of this node's connections that never reached the cluster's presence ledger (Redis away too long).",
            c.presence_dropped_total(),
        ),
        (
            "sser_cluster_nodes_lost_total",
            "Dead nodes whose presence this node cleared, emitting their offlines with reason node_lost.",
            c.nodes_lost_total(),
        ),
        (
            "sser_cluster_producer_messages_total",
            "Messages of sse-notification-service producers (PUBLISH {app}:channel:{user}) delivered to their user's inbox.",
            delivered,
        ),
        (
            "sser_cluster_producer_rejected_total",
            "Messages of sse-notification-service producers dropped: not {id, type, data: flat string map}, or no room to queue them.",
            rejected,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        let _ = writeln!(out, "{name} {value}");
    }
    let _ = writeln!(
        out,
        "# HELP sser_cluster_directory_dropped_total Directory writes (connections joined or left) dropped because Redis was away and their queue was full."
    );
    let _ = writeln!(out, "# TYPE sser_cluster_directory_dropped_total counter");
    let _ = writeln!(
        out,
        "sser_cluster_directory_dropped_total {}",
        c.directory_drops()
    );
    histogram(
        out,
        "sser_cluster_redis_roundtrip_seconds",
        "Round trip of one cluster heartbeat to Redis (write this node's record, read every live node's).",
        &c.roundtrip.snapshot(),
    );
}

/// One histogram in the exposition format: cumulative buckets, `+Inf`,
/// sum and count.
fn histogram(out: &mut String, name: &str, help: &str, h: &HistogramSnapshot) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (bound, count) in &h.buckets {
        let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {count}", number(*bound));
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum {}", number(h.sum_seconds));
    let _ = writeln!(out, "{name}_count {}", h.count);
}

/// The accept loop's limits at work (README, "Operations"). Every label value
/// is always present, so a rate over a reason that has not happened yet is 0,
/// not absent.
fn connection_series(c: &crate::metrics::ConnectionMetrics, out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP sser_connections_open Connections being served now (all listeners)."
    );
    let _ = writeln!(out, "# TYPE sser_connections_open gauge");
    let _ = writeln!(out, "sser_connections_open {}", c.open());
    let _ = writeln!(
        out,
        "# HELP sser_connections_accepted_total Connections accepted and admitted since start."
    );
    let _ = writeln!(out, "# TYPE sser_connections_accepted_total counter");
    let _ = writeln!(
        out,
        "sser_connections_accepted_total {}",
        c.accepted_total()
    );
    let name = "sser_connections_refused_total";
    let _ = writeln!(
        out,
        "# HELP {name} Connections closed at accept: per_ip (server.maxConnectionsPerIp), total (server.maxConnections, nothing idle to close), fd_limit (out of file descriptors)."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    for why in Refusal::ALL {
        let _ = writeln!(
            out,
            "{name}{{reason=\"{}\"}} {}",
            why.label(),
            c.refused_total(why)
        );
    }
    let name = "sser_connections_cut_total";
    let _ = writeln!(
        out,
        "# HELP {name} Accepted connections the server closed because of a limit or timeout."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    for why in Cut::ALL {
        let _ = writeln!(
            out,
            "{name}{{reason=\"{}\"}} {}",
            why.label(),
            c.cut_total(why)
        );
    }
}

/// Streams open by kind, users and devices online, and the presence
/// webhooks' outcomes.
fn identity_series(hub: &Hub, presence: PresenceCounts, out: &mut String) {
    let counts = hub.connections().counts();
    let name = "sser_stream_connections";
    let _ = writeln!(
        out,
        "# HELP {name} SSE streams open now, by kind: topic (topic tokens), identity (identity tokens), presence (the presence stream)."
    );
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (kind, n) in [
        ("topic", counts.topic),
        ("identity", counts.identity),
        ("presence", counts.presence),
    ] {
        let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {n}");
    }
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    };
    metric(
        "sser_presence_users_online",
        "gauge",
        "Users with an identity connection (or within presence.grace of their last one).",
        presence.users,
    );
    metric(
        "sser_presence_devices_online",
        "gauge",
        "Devices with an identity connection (or within presence.grace of their last one).",
        presence.devices,
    );
    let hooks = hub.metrics().webhook_counts();
    for (what, value, help) in [
        (
            "delivered",
            hooks.delivered,
            "Presence webhook deliveries answered with a 2xx (per event and URL).",
        ),
        (
            "retried",
            hooks.retried,
            "Presence webhook attempts after the first.",
        ),
        (
            "failed",
            hooks.failed,
            "Presence webhook deliveries given up (refused, out of attempts or age, or abandoned at shutdown).",
        ),
        (
            "dropped",
            hooks.dropped,
            "Presence webhook deliveries never sent because the URL's queue was full.",
        ),
    ] {
        metric(
            &format!("sser_webhooks_{what}_total"),
            "counter",
            help,
            value,
        );
    }
}

fn per_topic_series(hub: &Hub, out: &mut String) {
    let mut topics = hub.topics();
    topics.sort_by(|a, b| a.id.cmp(&b.id));
    let families: [(&str, &str, &str); 4] = [
        (
            "sser_topic_subscribers",
            "gauge",
            "Subscriber streams open on the topic.",
        ),
        (
            "sser_topic_events_published_total",
            "counter",
            "Events published to the topic since start.",
        ),
        (
            "sser_topic_history_events",
            "gauge",
            "Events the topic keeps for replay.",
        ),
        (
            "sser_topic_history_bytes",
            "gauge",
            "Bytes of events the topic keeps for replay.",
        ),
    ];
    for (i, (name, kind, help)) in families.iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for topic in &topics {
            let value = match i {
                0 => topic.subscriber_count() as u64,
                1 => topic.published_count(),
                2 => topic.history_usage().0,
                _ => topic.history_usage().1,
            };
            let id = label_value(&topic.id);
            let _ = writeln!(out, "{name}{{topic=\"{id}\"}} {value}");
        }
    }
}

/// Escapes a label value (`\`, `"` and newline), though topic ids are
/// `[A-Za-z0-9_-]` today (`model::TopicId`).
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus float formatting: integers without a fraction, others as Rust
/// prints them (shortest round-trip form).
fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}
