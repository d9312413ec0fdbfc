//! The notices a stream sends about itself, as SSE events named `sser.*`
//! whose data is a small JSON object (`status`, `message`, and which stream
//! it is about). Encoded per connection, rarely: they are never on the
//! fan-out path.
//!
//! A notice about one stream of a labelled connection names it: `"topic":
//! <id>` for a topic (as multi-topic clients read it), `"stream": "@user"`
//! (its event label) for an identity's inbox.

use bytes::Bytes;
use serde_json::{Value, json};

use super::framing::label;
use crate::model::{Position, StreamKey};
use crate::sse;

/// `sser.history_truncated`: history no longer holds everything after the
/// position asked for; `oldest` is the oldest it holds.
pub(super) fn truncated(message: &str, oldest: Option<Position>, key: Option<&StreamKey>) -> Bytes {
    let mut notice = json!({
        "status": "history_truncated",
        "message": message,
        "oldest_retained_seq": position_json(oldest),
    });
    name(&mut notice, key);
    sse::encode_notice("sser.history_truncated", &notice.to_string())
}

/// `sser.lagged`: the connection fell further behind than history reaches
/// and ends; `last` is the position it last delivered.
pub(super) fn lagged(why: &str, last: Position, key: Option<&StreamKey>) -> Bytes {
    let mut notice = json!({
        "status": "lagged",
        "message": format!("{why}; reconnect with Last-Event-ID to resume"),
        "last_seq": position_json(Some(last)),
    });
    name(&mut notice, key);
    sse::encode_notice("sser.lagged", &notice.to_string())
}

/// `sser.closed`: one topic of a labelled connection was deleted.
pub(super) fn closed(key: &StreamKey) -> Bytes {
    let mut notice = json!({
        "status": "closed",
        "message": "the topic was deleted; the other topics of this connection go on",
    });
    name(&mut notice, Some(key));
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

fn name(notice: &mut Value, key: Option<&StreamKey>) {
    match key {
        None => {}
        Some(key) => match key.topic() {
            Some(topic) => notice["topic"] = json!(topic.as_str()),
            None => notice["stream"] = json!(label(key)),
        },
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
