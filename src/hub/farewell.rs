//! A connection's last words, in a compatibility profile's spelling.
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

use bytes::Bytes;

use super::connection::EndReason;

/// How one connection's last frame is spelt when the server ends it.
/// Called under the registry's lock or on the connection's own task: it
/// must only build bytes, never block.
pub trait Farewell: Send + Sync + 'static {
    /// The last frame for `why` (including [`EndReason::Shutdown`]);
    /// `None`: the native notice.
    fn frame(&self, why: &EndReason) -> Option<Bytes>;
}
