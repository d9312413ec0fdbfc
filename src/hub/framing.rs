//! How events are written on one connection.
//!
//! - [`Framing::Shared`] (SSER's `GET /api/v1/pubsubs/:id/events`, one
//!   topic): the frame exactly as it was encoded at publish, shared by every
//!   connection. Ids are the publisher's own or the event's sequence, as
//!   SSER clients expect.
//! - [`Framing::Labelled`] (`GET /api/v1/events?topic=…`, one topic or
//!   several): each event says which topic it is from in its SSE event name,
//!   `<topic>` for an event published without a type and `<topic>:<type>`
//!   for a typed one (topic ids never contain `:`, so the split is
//!   unambiguous, and an `EventSource` listens with
//!   `addEventListener("orders", …)` or `("orders:shipped", …)`). The `id:`
//!   is the connection's resume cursor over all its topics
//!   ([`crate::model::cursor`]). Only that first line differs per
//!   connection: it goes out as its own small chunk, followed by a slice of
//!   the shared frame (the type and `data:` lines), so the payload is still
//!   encoded once.
//!
//! Identity connections (`GET /api/v1/stream`) are framed the same way, and
//! label their inboxes `@app` (sent to the whole application), `@user` (to
//! the user) and `@device` (to this device): `@user` or `@user:<type>`.
//! Topic ids never contain `@`, so no topic can pass for an inbox.
//!
//! - [`Framing::Unlabelled`] ([`Naming::AsPublished`]): ids are cursors as
//!   above, but each event keeps the name it was published with (its type,
//!   or none: `message`). For clients written against another server's API
//!   (the compatibility profiles) that listen by type or with `onmessage`
//!   and know nothing of streams. Only the `id:` line is the connection's
//!   own; the rest is the shared frame.

use std::time::Duration;

use bytes::Bytes;

use crate::model::cursor::StreamSet;
use crate::model::{Position, StreamKey};
use crate::sse;

thread_local! {
    /// Where a labelled head is written before it is copied out: the copy
    /// is one allocation of exactly its size, where building the head in a
    /// `Vec` of a guessed capacity costs two (`Bytes` wraps a `Vec` with
    /// spare room in a second allocation).
    static HEAD: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

pub(crate) enum Framing {
    Shared,
    /// Every event named by its stream ([`label`]), ids being cursors over
    /// the connection's streams (whose keys the connection holds).
    Labelled {
        set: StreamSet,
    },
    /// Ids are cursors, as for `Labelled`; events keep their own names.
    Unlabelled {
        set: StreamSet,
    },
}

/// How a connection over several streams names its events: the choice a
/// caller of [`Hub::connect`](super::Hub::connect) makes
/// ([`ConnectSpec::naming`](super::ConnectSpec::naming)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Naming {
    /// `event: <stream>` or `<stream>:<type>` ([`label`]): the native API.
    #[default]
    ByStream,
    /// `event: <type>` as published, or no `event:` line for an untyped
    /// event; notices do not name a stream either.
    AsPublished,
}

/// A connection's own heartbeat ([`ConnectSpec::heartbeat`](super::ConnectSpec::heartbeat)):
/// `frame` every `every`, instead of the hub's comment every
/// `pubsub.tickFrequency`, for clients that expect their server's own
/// keep-alive event (sse-notification-service's `ping`).
#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub every: Duration,
    /// A whole SSE frame. Without an `id:` line, so that it never moves the
    /// client's `Last-Event-ID`.
    pub frame: Bytes,
}

/// The event name of events from `key` on a labelled connection: the topic
/// id, or `@app`, `@user`, `@device` for an identity's inboxes.
pub fn label(key: &StreamKey) -> &str {
    match key {
        StreamKey::Topic(id) => id.as_str(),
        StreamKey::App(_) => "@app",
        StreamKey::User(_) => "@user",
        StreamKey::Device(_) => "@device",
        StreamKey::Presence => "@presence",
    }
}

/// The chunks one event becomes on this connection.
pub(crate) enum Frames {
    One(Bytes),
    /// The connection's own head, then a slice of the shared frame.
    Two(Bytes, Bytes),
}

impl Frames {
    /// The chunk that starts with the event's `id:` line.
    pub fn first(&self) -> &Bytes {
        match self {
            Frames::One(a) | Frames::Two(a, _) => a,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Frames::One(a) => a.len(),
            Frames::Two(a, b) => a.len() + b.len(),
        }
    }
}

impl Framing {
    /// `frame` (from the stream `key`) as this connection writes it, with
    /// `cursors` (one per stream, in order) already including it.
    pub fn event(
        &self,
        key: &StreamKey,
        frame: &Bytes,
        cursors: impl ExactSizeIterator<Item = Position>,
    ) -> Frames {
        let (set, labelled) = match self {
            Framing::Shared => return Frames::One(frame.clone()),
            Framing::Labelled { set } => (set, true),
            Framing::Unlabelled { set } => (set, false),
        };
        let Some((start, typed)) = sse::after_id_line(frame) else {
            // Not one of our frames (cannot happen): send it unchanged.
            return Frames::One(frame.clone());
        };
        HEAD.with_borrow_mut(|head| {
            head.clear();
            head.extend_from_slice(b"id: ");
            set.encode_into(cursors, head);
            let rest = if !labelled {
                head.push(b'\n');
                frame.slice(start..)
            } else {
                head.extend_from_slice(b"\nevent: ");
                head.extend_from_slice(label(key).as_bytes());
                if typed {
                    // `event: <type>\n…` → `event: <topic>:<type>\n…`
                    head.push(b':');
                    frame.slice(start + "event: ".len()..)
                } else {
                    head.push(b'\n');
                    frame.slice(start..)
                }
            };
            Frames::Two(Bytes::copy_from_slice(head), rest)
        })
    }

    /// Whether events (and notices) name their stream.
    pub fn labelled(&self) -> bool {
        matches!(self, Framing::Labelled { .. })
    }

    /// The connection's streams, when its ids are cursors over them.
    pub fn set(&self) -> Option<&StreamSet> {
        match self {
            Framing::Shared => None,
            Framing::Labelled { set } | Framing::Unlabelled { set } => Some(set),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TopicId;

    fn text(frames: Frames) -> String {
        match frames {
            Frames::One(a) => String::from_utf8_lossy(&a).into_owned(),
            Frames::Two(a, b) => format!(
                "{}{}",
                String::from_utf8_lossy(&a),
                String::from_utf8_lossy(&b)
            ),
        }
    }

    #[test]
    fn topics_framing_names_the_topic_and_carries_the_cursor() {
        let names: Vec<TopicId> = ["news", "orders"]
            .iter()
            .map(|t| TopicId::parse(t).unwrap())
            .collect();
        let keys: Vec<StreamKey> = names.iter().cloned().map(StreamKey::Topic).collect();
        let set = StreamSet::of(&keys);
        let framing = Framing::Labelled { set };
        let cursors = [Position::from_seq(3), Position::from_seq(9)];
        let check = &set.encode(&cursors);
        let typed = sse::encode_event("9", Some("shipped"), "a\nb");
        assert_eq!(
            text(framing.event(&keys[1], &typed, cursors.into_iter())),
            format!("id: {check}\nevent: orders:shipped\ndata: a\ndata: b\n\n")
        );
        let plain = sse::encode_event("3", None, "x");
        assert_eq!(
            text(framing.event(&keys[0], &plain, cursors.into_iter())),
            format!("id: {check}\nevent: news\ndata: x\n\n")
        );
        assert_eq!(
            text(Framing::Shared.event(&keys[0], &plain, cursors.into_iter())),
            "id: 3\ndata: x\n\n"
        );
    }

    #[test]
    fn inboxes_are_labelled_by_kind() {
        let keys = [
            StreamKey::app("shop"),
            StreamKey::user("shop", "u1"),
            StreamKey::device("shop", "u1", "phone"),
        ];
        let set = StreamSet::of(&keys);
        let framing = Framing::Labelled { set };
        let cursors = [Position::from_seq(1), Position::from_seq(2), Position::ZERO];
        let check = &set.encode(&cursors);
        let typed = sse::encode_event("2", Some("order"), "{}");
        assert_eq!(
            text(framing.event(&keys[1], &typed, cursors.into_iter())),
            format!("id: {check}\nevent: @user:order\ndata: {{}}\n\n")
        );
        let plain = sse::encode_event("1", None, "hi");
        assert_eq!(
            text(framing.event(&keys[0], &plain, cursors.into_iter())),
            format!("id: {check}\nevent: @app\ndata: hi\n\n")
        );
        assert_eq!(label(&keys[2]), "@device");
    }

    #[test]
    fn unlabelled_framing_keeps_the_published_name_and_the_cursor() {
        let keys = [StreamKey::app("shop"), StreamKey::user("shop", "u1")];
        let set = StreamSet::of(&keys);
        let framing = Framing::Unlabelled { set };
        let cursors = [Position::from_seq(4), Position::from_seq(2)];
        let check = &set.encode(&cursors);
        let typed = sse::encode_event("2", Some("order"), "a\nb");
        assert_eq!(
            text(framing.event(&keys[1], &typed, cursors.into_iter())),
            format!("id: {check}\nevent: order\ndata: a\ndata: b\n\n")
        );
        let plain = sse::encode_event("4", None, "hi");
        assert_eq!(
            text(framing.event(&keys[0], &plain, cursors.into_iter())),
            format!("id: {check}\ndata: hi\n\n")
        );
        assert!(!framing.labelled());
    }
}
