//! Why the server ends a connection ([`EndReason`]) and its last words:
//! the native notice, or a compatibility profile's spelling of it.
//!
//! The compatibility profiles (`crate::compat`) serve clients written for
//! other SSE servers through the same hub, inboxes and registry as native
//! clients, and choose per connection how its events are named
//! ([`Naming`](super::Naming)) and its keep-alive
//! ([`Heartbeat`](super::Heartbeat)). The third thing such clients read is
//! why the server ended their stream: go-sse-broker's clients listen for
//! `sys_kick_offline`, `sys_extrude_offline` and `sys_instance_close` where
//! a native client gets `sser.kicked`, `sser.taken_over` and the shutdown
//! comment. A [`Farewell`] spells those; the hub asks it when it ends the
//! connection and knows nothing of any profile. A connection without one
//! (every native one) gets the native notice.

use std::net::SocketAddr;

use bytes::Bytes;

use super::notice;
use crate::sse;

/// How one connection's last frame is spelt when the server ends it.
/// Called under the registry's lock or on the connection's own task: it
/// must only build bytes, never block.
pub trait Farewell: Send + Sync + 'static {
    /// The last frame for `why` (including [`EndReason::Shutdown`]);
    /// `None`: the native notice.
    fn frame(&self, why: &EndReason) -> Option<Bytes>;
}

/// Why the server ends a connection (a client that goes away needs none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// An operator ended it (`DELETE /api/v1/connections/:id`,
    /// `POST /api/v1/kick`), with the reason it gave, if any.
    Kicked { reason: Option<String> },
    /// A newer connection of the same (app, user, device) replaced it,
    /// opened from `by` (when the listener knew the address).
    TakenOver { by: Option<SocketAddr> },
    /// Its identity token expired during the stream.
    Expired,
    /// The server is stopping.
    Shutdown,
}

impl EndReason {
    /// The last event the client reads: a named notice, so that an
    /// `EventSource` can tell why (`addEventListener("sser.kicked", …)`),
    /// before the stream ends and it reconnects.
    pub(crate) fn farewell(&self) -> Bytes {
        match self {
            EndReason::Kicked { reason } => notice::kicked(reason.as_deref()),
            EndReason::TakenOver { .. } => notice::taken_over(),
            EndReason::Expired => notice::token_expired(),
            EndReason::Shutdown => sse::comment_frame(notice::SHUTDOWN_NOTICE),
        }
    }
}
