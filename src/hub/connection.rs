//! One client connection as the hub knows it: an id (sent to the client as
//! `X-Connection-Id`), the streams it follows, and its one bounded outgoing
//! queue ([`Outbox`]), into which the broker fans events and the hub puts
//! heartbeats and the shutdown notice.
//!
//! The connection's HTTP body ([`super::feed`]) reads that queue; everyone
//! else (the registry, an operator ending it, the broker) only pushes into
//! it, so nobody ever waits on a client.

use std::sync::Arc;

use crate::broker::Outbox;
use crate::model::StreamKey;

pub struct Connection {
    id: Arc<str>,
    outbox: Arc<Outbox>,
    streams: Box<[StreamKey]>,
    opened_at_ms: u64,
}

impl Connection {
    pub(crate) fn new(id: Arc<str>, outbox: Arc<Outbox>, streams: Box<[StreamKey]>) -> Self {
        Connection {
            id,
            outbox,
            streams,
            opened_at_ms: crate::model::now_ms(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn id_arc(&self) -> &Arc<str> {
        &self.id
    }

    /// The streams it follows, in its order (the order of its cursors).
    pub fn streams(&self) -> &[StreamKey] {
        &self.streams
    }

    /// Milliseconds since the epoch when it opened.
    pub fn opened_at_ms(&self) -> u64 {
        self.opened_at_ms
    }

    /// Ends the connection once what is queued has been sent.
    pub fn end(&self) {
        self.outbox.end();
    }

    pub(crate) fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("streams", &self.streams)
            .finish()
    }
}
