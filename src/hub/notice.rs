//! The server's own messages on a stream: truncation, lag and close notices
//! (SSE events named `sser.*`, without an `id:` so they do not move the
//! client's `Last-Event-ID`), and the comments that end a stream.
//!
//! On a multi-topic connection every notice names its topic; on SSER's
//! one-topic stream the notices are exactly what they always were.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::model::{Position, TopicId};
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

/// `sser.history_truncated`: history does not hold all that was asked for.
pub(super) fn truncated(topic: Option<&TopicId>, message: &str, oldest: Option<Position>) -> Bytes {
    let mut notice = json!({
        "status": "history_truncated",
        "message": message,
        "oldest_retained_seq": position_json(oldest),
    });
    if let Some(topic) = topic {
        notice["topic"] = json!(topic.as_str());
    }
    sse::encode_notice("sser.history_truncated", &notice.to_string())
}

/// `sser.lagged`: the connection fell further behind than history reaches
/// and ends; `cursor` is the last position it was sent.
pub(super) fn lagged(topic: Option<&TopicId>, cursor: Position, why: &str) -> Bytes {
    let mut notice = json!({
        "status": "lagged",
        "message": format!("{why}; reconnect with Last-Event-ID to resume"),
        "last_seq": position_json(Some(cursor)),
    });
    if let Some(topic) = topic {
        notice["topic"] = json!(topic.as_str());
    }
    sse::encode_notice("sser.lagged", &notice.to_string())
}

/// `sser.closed`: one topic of a multi-topic connection was deleted.
pub(super) fn closed(topic: &TopicId) -> Bytes {
    let notice = json!({
        "status": "closed",
        "topic": topic.as_str(),
        "message": "the topic was deleted; the other topics of this connection go on",
    });
    sse::encode_notice("sser.closed", &notice.to_string())
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
