//! A connection's dialect: how the frames the server writes on its own
//! account are spelt on one connection.
//!
//! The compatibility profiles (`crate::compat`) serve clients written for
//! other SSE servers through the same hub, inboxes and registry as native
//! clients. What those clients parse differs only in spelling: the name of
//! a sent event (`custom-event`, not `@user:custom-event`: that one is
//! [`Naming`](super::Naming), chosen per connection), the keep-alive, and
//! the last words of a connection the server ends (go-sse-broker's
//! `sys_kick_offline` for `sser.kicked`, …). A [`Dialect`] says the last
//! two; the hub asks it at those few points and knows nothing of any
//! profile. Every method defaults to the native spelling, so a connection
//! without a dialect (every native one) is unchanged.
//!
//! Event payloads are still encoded once and shared: these frames are the
//! server's own, written per connection anyway.

use bytes::Bytes;

use super::connection::EndReason;

/// How one connection spells the server's own frames (see the module doc).
/// Called on the connection's own task or under the registry's lock: it must
/// only build bytes, never block.
pub trait Dialect: Send + Sync + 'static {
    /// The keep-alive frame; `None`: the native comment.
    fn heartbeat(&self) -> Option<Bytes> {
        None
    }

    /// The last frame of a connection the server ends for `why`
    /// (including [`EndReason::Shutdown`]); `None`: the native notice.
    fn farewell(&self, why: &EndReason) -> Option<Bytes> {
        let _ = why;
        None
    }
}
