//! How events are written on one connection.
//!
//! - [`Framing::Shared`] (SSER's `GET /api/v1/pubsubs/:id/events`, one
//!   topic): the frame exactly as it was encoded at publish, shared by every
//!   connection. Ids are the publisher's own or the event's sequence, as
//!   SSER clients expect.
//! - [`Framing::Topics`] (`GET /api/v1/events?topic=…`, one topic or
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

use bytes::Bytes;

use crate::model::Position;
use crate::model::TopicId;
use crate::model::cursor::StreamSet;
use crate::sse;

pub(crate) enum Framing {
    Shared,
    Topics {
        set: StreamSet,
        /// The topic of each of the connection's streams, in its order.
        names: Box<[TopicId]>,
    },
}

/// The chunks one event becomes on this connection.
pub(crate) enum Frames {
    One(Bytes),
    /// The connection's own head, then a slice of the shared frame.
    Two(Bytes, Bytes),
}

impl Frames {
    pub fn len(&self) -> usize {
        match self {
            Frames::One(a) => a.len(),
            Frames::Two(a, b) => a.len() + b.len(),
        }
    }
}

impl Framing {
    /// `frame` (from stream `slot`) as this connection writes it, with
    /// `cursors` (one per stream, in order) already including it.
    pub fn event(
        &self,
        slot: usize,
        frame: &Bytes,
        cursors: impl ExactSizeIterator<Item = Position>,
    ) -> Frames {
        let Framing::Topics { set, names } = self else {
            return Frames::One(frame.clone());
        };
        let Some((start, typed)) = sse::after_id_line(frame) else {
            // Not one of our frames (cannot happen): send it unchanged.
            return Frames::One(frame.clone());
        };
        let topic = names.get(slot).map_or("", |t| t.as_str());
        let mut head = Vec::with_capacity(24 + topic.len() + cursors.len() * 12);
        head.extend_from_slice(b"id: ");
        set.encode_into(cursors, &mut head);
        head.extend_from_slice(b"\nevent: ");
        head.extend_from_slice(topic.as_bytes());
        let rest = if typed {
            // `event: <type>\n…` → `event: <topic>:<type>\n…`
            head.push(b':');
            frame.slice(start + "event: ".len()..)
        } else {
            head.push(b'\n');
            frame.slice(start..)
        };
        Frames::Two(Bytes::from(head), rest)
    }

    /// The topic to name in notices about stream `slot`, on connections
    /// whose events name their topic.
    pub fn topic(&self, slot: usize) -> Option<&TopicId> {
        match self {
            Framing::Shared => None,
            Framing::Topics { names, .. } => names.get(slot),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::StreamKey;

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
        let framing = Framing::Topics {
            set,
            names: names.into_boxed_slice(),
        };
        let cursors = [Position::from_seq(3), Position::from_seq(9)];
        let check = &set.encode(&cursors);
        let typed = sse::encode_event("9", Some("shipped"), "a\nb");
        assert_eq!(
            text(framing.event(1, &typed, cursors.into_iter())),
            format!("id: {check}\nevent: orders:shipped\ndata: a\ndata: b\n\n")
        );
        let plain = sse::encode_event("3", None, "x");
        assert_eq!(
            text(framing.event(0, &plain, cursors.into_iter())),
            format!("id: {check}\nevent: news\ndata: x\n\n")
        );
        assert_eq!(
            text(Framing::Shared.event(0, &plain, cursors.into_iter())),
            "id: 3\ndata: x\n\n"
        );
    }
}
