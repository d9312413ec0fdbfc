//! One client connection as the hub knows it: an id (sent to the client as
//! `X-Connection-Id`), who opened it (the peer's address and, for an
//! identity connection, its [`Owner`]), the streams it follows, and its one
//! queue of notices ([`Outbox`]): the broker's "a stream has news", the
//! hub's heartbeats and the notices that end it.
//!
//! The connection's HTTP body ([`super::feed`]) reads that queue and pulls
//! its streams' events (`super::intake`); everyone else (the registry, an
//! operator ending it, the broker) only pushes into it, so nobody ever
//! waits on a client. The body records the `id:` of the
//! last event it wrote, so the registry can list where each client stands.
//!
//! A connection opened with an identity token has an [`Owner`]: the
//! application, user and device it speaks for, whose inboxes it follows.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::farewell::{EndReason, Farewell};
use crate::broker::Outbox;
use crate::model::{DeviceKey, StreamKey, UserKey};
use crate::sse;

/// Whose connection it is: the identity of the token that opened it (a
/// topic connection has none: topic tokens say nothing about who holds
/// them). The registry indexes connections by it and take-over keys on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    pub app: Arc<str>,
    pub user: Arc<str>,
    /// At most one live connection per (app, user, device): see
    /// `super::admission`.
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
            StreamKey::User(Arc::new(UserKey {
                app: self.app.clone(),
                user: self.user.clone(),
            })),
        ];
        if let Some(device) = &self.device {
            keys.push(StreamKey::Device(Arc::new(DeviceKey {
                app: self.app.clone(),
                user: self.user.clone(),
                device: device.clone(),
            })));
        }
        keys
    }
}

pub struct Connection {
    id: Arc<str>,
    outbox: Arc<Outbox>,
    streams: Box<[StreamKey]>,
    /// Its identity and its profile's farewell, when it has either.
    rare: Option<Box<Rare>>,
    opened_at_ms: u64,
    /// The peer's address, when the listener knew it.
    remote: Option<SocketAddr>,
    /// The `id:` of the last event written, on a connection whose ids are
    /// its own (a labelled one: the cursor over its streams), copied. A
    /// one-topic connection's last event is in its outbox instead (see
    /// [`Outbox::record_sent`]).
    sent_id: Mutex<Vec<u8>>,
}

/// What few connections have, behind one pointer: that pointer is all a
/// topic connection pays for them (this is per-connection memory).
struct Rare {
    owner: Option<Owner>,
    /// How its last words are spelt when the server ends it (a
    /// compatibility profile's connection); `None`: natively.
    farewell: Option<Arc<dyn Farewell>>,
    /// The `Last-Event-ID` an identity connection opened with: what its
    /// client sends again if it is sent nothing newer.
    resumed_from: Option<Box<str>>,
}

impl Connection {
    pub(crate) fn new(
        id: Arc<str>,
        outbox: Arc<Outbox>,
        streams: Box<[StreamKey]>,
        owner: Option<Owner>,
        remote: Option<SocketAddr>,
        farewell: Option<Arc<dyn Farewell>>,
        resumed_from: Option<&str>,
    ) -> Self {
        let resumed_from = owner.as_ref().and(resumed_from).map(Box::from);
        Connection {
            id,
            outbox,
            streams,
            rare: (owner.is_some() || farewell.is_some()).then(|| {
                Box::new(Rare {
                    owner,
                    farewell,
                    resumed_from,
                })
            }),
            opened_at_ms: crate::model::now_ms(),
            remote,
            sent_id: Mutex::new(Vec::new()),
        }
    }

    /// The identity it was opened with, if any.
    pub fn owner(&self) -> Option<&Owner> {
        self.rare.as_ref()?.owner.as_ref()
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

    /// The peer's address, when the listener knew it.
    pub fn remote(&self) -> Option<SocketAddr> {
        self.remote
    }

    /// The `id:` of the last event written to it (what its client would
    /// send as `Last-Event-ID`), if any was.
    pub fn last_event_id(&self) -> Option<String> {
        {
            let copied = self.sent_id.lock();
            if !copied.is_empty() {
                return Some(String::from_utf8_lossy(&copied).into_owned());
            }
        }
        let last = self.outbox.last_sent()?;
        let id = sse::id_of(&last.frame)?;
        Some(String::from_utf8_lossy(id).into_owned())
    }

    /// The `Last-Event-ID` an identity connection opened with, if any.
    pub(crate) fn resumed_from(&self) -> Option<&str> {
        self.rare.as_ref()?.resumed_from.as_deref()
    }

    /// What its client will send as `Last-Event-ID` when it reconnects: the
    /// `id:` of the last event written, else the one it resumed from.
    pub(crate) fn client_cursor(&self) -> Option<String> {
        self.last_event_id()
            .or_else(|| self.resumed_from().map(str::to_string))
    }

    /// Remembers `id`, the `id:` of the event just written on a labelled
    /// connection.
    pub(crate) fn record_sent_id(&self, id: &[u8]) {
        let mut copied = self.sent_id.lock();
        copied.clear();
        copied.extend_from_slice(id);
    }

    /// Ends the connection once what is queued has been sent.
    pub fn end(&self) {
        self.outbox.end();
    }

    /// Ends the connection once what is queued has been sent, with
    /// `farewell` (an SSE frame, e.g. `sse::encode_notice("sser.kicked", …)`)
    /// as the last thing it receives. To end it for one of the registry's
    /// reasons (kick, take-over, expiry), go through the registry instead,
    /// so that presence and the indexes learn of it.
    pub fn end_with(&self, farewell: Bytes) {
        self.outbox.end_with(farewell);
    }

    /// Ends the connection after what is queued, with the notice that says
    /// why. Only the registry calls this, so that presence and the indexes
    /// learn of it in the same step (see `Connections::end`).
    pub(crate) fn end_because(&self, why: &EndReason) {
        match why {
            EndReason::Shutdown => self.outbox.shutdown(),
            why => self.outbox.end_with(self.farewell(why)),
        }
    }

    /// The last frame of this connection when the server ends it for
    /// `why`: its profile's spelling, else the native notice.
    pub(crate) fn farewell(&self, why: &EndReason) -> Bytes {
        self.rare
            .as_ref()
            .and_then(|r| r.farewell.as_ref())
            .and_then(|f| f.frame(why))
            .unwrap_or_else(|| why.farewell())
    }

    pub(crate) fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("owner", &self.owner())
            .field("streams", &self.streams)
            .finish()
    }
}
