//! Stream keys: the name of anything a connection can follow. Each stream
//! has its own ordered history and its own positions.
//!
//! Today a stream is a topic. Users', devices' and applications' inboxes
//! will be further variants, so that targeted delivery is ordinary fan-out
//! on a stream and one connection can follow a topic and an inbox at once.

use std::fmt;

use super::TopicId;

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamKey {
    Topic(TopicId),
}

impl StreamKey {
    /// The topic this stream is, if it is one.
    pub fn topic(&self) -> Option<&TopicId> {
        match self {
            StreamKey::Topic(id) => Some(id),
        }
    }
}

impl From<TopicId> for StreamKey {
    fn from(id: TopicId) -> Self {
        StreamKey::Topic(id)
    }
}

/// `topic:<id>`: stable across versions and nodes (resume cursors hash it).
impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamKey::Topic(id) => write!(f, "topic:{id}"),
        }
    }
}

impl fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
