//! sse-notification-service's producers, in a cluster: they publish with
//! Redis `PUBLISH {app}:channel:{user} '{"id","type","data"}'`, and every
//! connection of that user, on every node, must get the message once.
//!
//! One node at a time listens (it holds the `notification-service` lease,
//! [`RedisBroker::consume_leased`]) and turns each message into a send to
//! the user's inbox ([`Hub::send`]): the inbox then reaches the user's
//! connections, with an `id:` to resume from, like `POST /api/v1/send`.
//! Were every node to listen, each would send it once more.
//!
//! A message is read like publisher input and dropped (counted in
//! `sser_cluster_producer_rejected_total`) unless: the channel is
//! `<app>:channel:<user>` (split at the first `:channel:`; names as in
//! tokens: 1–256 bytes, no control characters), the payload a JSON object
//! whose `id` and `type`, when present, are strings fit for an SSE field
//! (no CR, LF or NUL), and whose `data` is an object of strings (the
//! original's flat map), delivered as its JSON text.
//!
//! Pub/sub is fire-and-forget: when the listening node dies, messages
//! published before another node takes the lease over (at most
//! `cluster.nodeTtl` plus a third of it) reach nobody, as they reached no
//! instance of the original while it restarted. A graceful stop frees the
//! lease at once.

use std::sync::Arc;

use serde_json::Value;

use crate::broker::{NewEvent, RawMessage, RedisBroker};
use crate::hub::Hub;
use crate::identity::claims::check_name;
use crate::metrics::Metrics;
use crate::model::StreamKey;

/// The pattern the producers' channels match.
pub const PATTERN: &str = "*:channel:*";

/// Messages that may wait for the hub before new ones are dropped.
const QUEUE: usize = 10_000;

/// Starts consuming the producers' channels, for as long as the node runs.
pub fn start(hub: Arc<Hub>, redis: &RedisBroker, metrics: Arc<Metrics>) {
    let overflow = metrics.clone();
    let mut messages = redis.consume_leased(
        "notification-service",
        PATTERN,
        QUEUE,
        Box::new(move || overflow.cluster.producer_rejected()),
    );
    tokio::spawn(async move {
        while let Some(message) = messages.recv().await {
            let Some((inbox, event)) = read(&message) else {
                metrics.cluster.producer_rejected();
                continue;
            };
            match hub.send(vec![inbox], event).await {
                Ok(_) => metrics.cluster.producer_delivered(),
                Err(e) => {
                    metrics.cluster.producer_rejected();
                    tracing::warn!(error = %e, "a notification-service producer message was not delivered");
                }
            }
        }
    });
}

/// The inbox and event a producer's message stands for, if it is valid.
pub fn read(message: &RawMessage) -> Option<(StreamKey, NewEvent)> {
    let (app, user) = message.channel.split_once(":channel:")?;
    check_name(app).ok()?;
    check_name(user).ok()?;
    let Value::Object(body) = serde_json::from_slice::<Value>(&message.payload).ok()? else {
        return None;
    };
    let field = |name: &str| -> Option<Option<String>> {
        match body.get(name) {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(s)) if s.is_empty() => Some(None),
            Some(Value::String(s)) => Some(Some(s.clone())),
            Some(_) => None,
        }
    };
    let id = field("id")?;
    let kind = field("type")?;
    let Some(Value::Object(data)) = body.get("data") else {
        return None;
    };
    if !data.values().all(Value::is_string) {
        return None;
    }
    let data = serde_json::to_string(data).ok()?;
    let event = NewEvent::new(id, kind, data).ok()?;
    Some((StreamKey::user(app, user), event))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(channel: &str, payload: &str) -> RawMessage {
        RawMessage {
            channel: channel.into(),
            payload: payload.as_bytes().to_vec(),
        }
    }

    #[test]
    fn the_originals_messages_are_read() {
        let m = message(
            "shop:channel:u-1",
            r#"{"id":"100","type":"event","data":{"hello":"world"}}"#,
        );
        let (inbox, event) = read(&m).expect("valid");
        assert_eq!(inbox, StreamKey::user("shop", "u-1"));
        assert_eq!(event.id.as_deref(), Some("100"));
        assert_eq!(event.kind.as_deref(), Some("event"));
        assert_eq!(event.data, r#"{"hello":"world"}"#);
        // A user name may hold the separator's pieces after the first.
        let m = message("shop:channel:a:channel:b", r#"{"data":{}}"#);
        assert_eq!(
            read(&m).map(|(inbox, _)| inbox),
            Some(StreamKey::user("shop", "a:channel:b"))
        );
    }

    #[test]
    fn anything_else_is_dropped() {
        for (channel, payload) in [
            ("shop:channel:u", r#"{"id":"1","type":"t","data":{"n":1}}"#),
            (
                "shop:channel:u",
                r#"{"id":"1","type":"t","data":{"a":{"b":"c"}}}"#,
            ),
            ("shop:channel:u", r#"{"id":"1","type":"t"}"#),
            ("shop:channel:u", r#"{"id":"a\nb","type":"t","data":{}}"#),
            ("shop:channel:u", r#"{"id":"1","type":"x\r\ny","data":{}}"#),
            ("shop:channel:u", r#"{"id":7,"type":"t","data":{}}"#),
            ("shop:channel:u", r#"["id"]"#),
            ("shop:channel:u", "not json"),
            (":channel:u", r#"{"data":{}}"#),
            ("shop:channel:", r#"{"data":{}}"#),
            ("shop:chan:u", r#"{"data":{}}"#),
        ] {
            assert!(
                read(&message(channel, payload)).is_none(),
                "{channel} {payload}"
            );
        }
    }
}
