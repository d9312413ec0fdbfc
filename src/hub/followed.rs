//! What a connection's body keeps for each stream it follows: the cursor
//! (the position of the last event sent), its place in the stream's
//! fan-out, and how it starts. A one-topic connection (most of them) keeps
//! its one entry inline in the body, so reading an event touches no further
//! allocation.

use super::resume::Replay;
use crate::broker::FollowTicket;
use crate::model::Position;

pub(super) struct Followed {
    /// The position of the last event sent.
    pub(super) cursor: Position,
    /// Leaves the stream's fan-out when dropped; `None` once it closed.
    pub(super) ticket: Option<FollowTicket>,
    /// How to replay before going live, if at all.
    pub(super) start: Option<Replay>,
    /// Starts with a truncation notice.
    pub(super) truncated: bool,
}

/// A connection's streams, in its order.
pub(super) enum Streams {
    One(Followed),
    Many(Box<[Followed]>),
}

impl From<Vec<Followed>> for Streams {
    fn from(mut streams: Vec<Followed>) -> Streams {
        match streams.pop() {
            Some(only) if streams.is_empty() => Streams::One(only),
            Some(last) => {
                streams.push(last);
                Streams::Many(streams.into_boxed_slice())
            }
            None => Streams::Many(Box::default()),
        }
    }
}

impl std::ops::Deref for Streams {
    type Target = [Followed];
    fn deref(&self) -> &[Followed] {
        match self {
            Streams::One(one) => std::slice::from_ref(one),
            Streams::Many(many) => many,
        }
    }
}

impl std::ops::DerefMut for Streams {
    fn deref_mut(&mut self) -> &mut [Followed] {
        match self {
            Streams::One(one) => std::slice::from_mut(one),
            Streams::Many(many) => many,
        }
    }
}
