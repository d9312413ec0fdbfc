//! One client connection as the hub knows it: an id (sent to the client as
//! `X-Connection-Id`), the streams it follows, and its one bounded outgoing
//! queue ([`Outbox`]), into which the broker fans events and the hub puts
//! heartbeats and the shutdown notice.
//!
//! The connection's HTTP body ([`super::feed`]) reads that queue; everyone
//! else (the registry, an operator ending it, the broker) only pushes into
//! it, so nobody ever waits on a client.
//!
//! A connection opened with an identity token has an [`Owner`]: the
//! application, user and device it speaks for, whose inboxes it follows.

use std::sync::Arc;

use bytes::Bytes;

use crate::broker::Outbox;
use crate::model::StreamKey;

/// Whose connection it is: the identity of the token that opened it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    pub app: Arc<str>,
    pub user: Arc<str>,
    pub device: Option<Arc<str>>,
}

impl Owner {
    pub fn new(app: &str, user: &str, device: Option<&str>) -> Owner {
        Owner {
            app: Arc::from(app),
            user: Arc::from(user),
            device: device.map(Arc::from),
        }
    }

    /// The inboxes this identity follows, in cursor order: its
    /// application's broadcast, its user's inbox, its device's inbox (when
    /// it has a device).
    pub fn inboxes(&self) -> Vec<StreamKey> {
        let mut keys = vec![
            StreamKey::App(self.app.clone()),
            StreamKey::User {
                app: self.app.clone(),
                user: self.user.clone(),
            },
        ];
        if let Some(device) = &self.device {
            keys.push(StreamKey::Device {
                app: self.app.clone(),
                user: self.user.clone(),
                device: device.clone(),
            });
        }
        keys
    }
}

pub struct Connection {
    id: Arc<str>,
    outbox: Arc<Outbox>,
    streams: Box<[StreamKey]>,
    /// Boxed: one pointer on the many connections that have none.
    owner: Option<Arc<Owner>>,
    opened_at_ms: u64,
}

impl Connection {
    pub(crate) fn new(
        id: Arc<str>,
        outbox: Arc<Outbox>,
        streams: Box<[StreamKey]>,
        owner: Option<Owner>,
    ) -> Self {
        Connection {
            id,
            outbox,
            streams,
            owner: owner.map(Arc::new),
            opened_at_ms: crate::model::now_ms(),
        }
    }

    /// The identity it was opened with, if any.
    pub fn owner(&self) -> Option<&Arc<Owner>> {
        self.owner.as_ref()
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

    /// Ends the connection once what is queued has been sent, with
    /// `farewell` (an SSE frame, e.g. `sse::encode_notice("sser.kicked", …)`)
    /// as the last thing it receives.
    pub fn end_with(&self, farewell: Bytes) {
        self.outbox.end_with(farewell);
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
            .field("owner", &self.owner)
            .finish()
    }
}
