//! The server's own messages on a stream: truncation, lag and close notices,
//! and the last words of a stream the server ends (kicked, taken over,
//! token expired): SSE events named `sser.*`, without an `id:` so they do
//! not move the client's `Last-Event-ID`; and the comments that end a
//! stream.
//!
//! On a labelled connection (several topics, or an identity's streams)
//! every notice names its stream: `"topic": <id>` for a topic, `"stream":
//! "@user"` (its event label) for an identity's inbox. On SSER's one-topic
//! stream the notices are exactly what they always were.

use bytes::Bytes;
use serde_json::{Value, json};

use super::framing::label;
use crate::model::{Position, StreamKey};
use crate::sse;

/// The comment that ends every stream when the server stops; EventSource
/// reconnects after its `retry:` delay, to this server or another.
pub const SHUTDOWN_NOTICE: &str = "server shutting down; reconnect";

/// The comment that ends a stream ended by an operator.
pub const ENDED_NOTICE: &str = "connection ended by the server";

/// An unknown id or cursor: everything retained follows.
pub(super) const UNKNOWN_ID: &str =
    "the requested Last-Event-ID is no longer in history; sending all that is retained";
/// A known position whose successors history no longer wholly holds.
pub(super) const GAP: &str = "history no longer holds every event after the requested Last-Event-ID; sending all that is retained";

/// Events lost while the connection was open (a cluster node cut off from
/// Redis while its history was trimmed, or Redis lost its data).
pub(super) const LOST: &str = "history no longer holds every event after the last one sent on this connection (the cluster's Redis trimmed or lost them while this node was cut off); sending all that is retained";

/// `sser.history_truncated`: history does not hold all that was asked for.
pub(super) fn truncated(
    stream: Option<&StreamKey>,
    message: &str,
    oldest: Option<Position>,
) -> Bytes {
    let mut notice = json!({
        "status": "history_truncated",
        "message": message,
        "oldest_retained_seq": position_json(oldest),
    });
    name(&mut notice, stream);
    sse::encode_notice("sser.history_truncated", &notice.to_string())
}

/// `sser.lagged`: the connection fell further behind than history reaches
/// and ends; `cursor` is the last position it was sent.
pub(super) fn lagged(stream: Option<&StreamKey>, cursor: Position, why: &str) -> Bytes {
    let mut notice = json!({
        "status": "lagged",
        "message": format!("{why}; reconnect with Last-Event-ID to resume"),
        "last_seq": position_json(Some(cursor)),
    });
    name(&mut notice, stream);
    sse::encode_notice("sser.lagged", &notice.to_string())
}

/// `sser.closed`: one topic of a labelled connection was deleted.
pub(super) fn closed(stream: &StreamKey) -> Bytes {
    let mut notice = json!({
        "status": "closed",
        "message": "the topic was deleted; the other topics of this connection go on",
    });
    name(&mut notice, Some(stream));
    sse::encode_notice("sser.closed", &notice.to_string())
}

/// `sser.token_expired`: the last event of a stream whose identity token
/// expired.
pub(super) fn token_expired() -> Bytes {
    let notice = json!({
        "status": "token_expired",
        "message": "the identity token has expired; reconnect with a fresh token (and Last-Event-ID to resume)",
    });
    sse::encode_notice("sser.token_expired", &notice.to_string())
}

/// `sser.kicked`: the last event of a connection an operator ended, with
/// the reason it gave (or null).
pub(super) fn kicked(reason: Option<&str>) -> Bytes {
    let notice = json!({
        "status": "kicked",
        "reason": reason,
        "message": "this connection was ended by the server's operator",
    });
    sse::encode_notice("sser.kicked", &notice.to_string())
}

/// `sser.taken_over`: the last event of a connection whose device opened a
/// newer one (`identity.takeover: takeover`).
pub(super) fn taken_over() -> Bytes {
    let notice = json!({
        "status": "taken_over",
        "message": "a newer connection of this device took over; this one ends",
    });
    sse::encode_notice("sser.taken_over", &notice.to_string())
}

/// Says which stream a notice is about, on a labelled connection.
fn name(notice: &mut Value, stream: Option<&StreamKey>) {
    match stream.map(|key| (key, key.topic())) {
        None => {}
        Some((_, Some(topic))) => notice["topic"] = json!(topic.as_str()),
        Some((key, None)) => notice["stream"] = json!(label(key)),
    }
}

/// A position in a notice: a number for a sequence (what SSER-era clients
/// read), else its text.
fn position_json(position: Option<Position>) -> Value {
    match position.map(Position::parts) {
        None => Value::Null,
        Some((seq, 0)) => json!(seq),
        Some(_) => json!(position.map(|p| p.to_string())),
    }
}
