//! go-sse-broker's system events, as its clients listen for them:
//!
//! - `sys_connected` (data: the client's IP), the first frame of a stream;
//! - `sys_kick_offline` (data: `/kick`'s `data`), for a native kick
//!   (`sser.kicked`);
//! - `sys_extrude_offline` (data: the IP of the connection that took the
//!   device over), for a take-over (`sser.taken_over`);
//! - `sys_instance_close` (data: this node's address), when the server
//!   stops (natively a comment).
//!
//! The last three end the stream, as they did there: the hub asks the
//! connection's [`Farewell`] for its last words. Events sent with `/send`
//! keep their own `event:` name (none, or `custom-event`:
//! `hub::Naming::AsPublished`), as the original wrote them, and the
//! keep-alive is its `:heartbeat` comment every `[sse] heartbeat_interval`
//! (a `hub::Heartbeat` of the connection's own).

use std::net::SocketAddr;

use bytes::Bytes;

use crate::hub::{EndReason, Farewell};
use crate::sse;

pub const CONNECTED: &str = "sys_connected";
pub const KICK_OFFLINE: &str = "sys_kick_offline";
pub const EXTRUDE_OFFLINE: &str = "sys_extrude_offline";
pub const INSTANCE_CLOSE: &str = "sys_instance_close";

/// The last words of every connection opened through `/events`.
pub struct BrokerFarewell {
    /// What `sys_instance_close` says (this node's address).
    pub instance_address: String,
}

impl Farewell for BrokerFarewell {
    fn frame(&self, why: &EndReason) -> Option<Bytes> {
        match why {
            EndReason::Kicked { reason } => Some(sse::encode_notice(
                KICK_OFFLINE,
                reason.as_deref().unwrap_or_default(),
            )),
            EndReason::TakenOver { by } => Some(sse::encode_notice(EXTRUDE_OFFLINE, &ip_of(*by))),
            EndReason::Shutdown => Some(sse::encode_notice(INSTANCE_CLOSE, &self.instance_address)),
            // Streams opened here do not end at their token's expiry.
            EndReason::Expired => None,
        }
    }
}

/// go-sse-broker's keep-alive, a comment.
pub fn heartbeat() -> Bytes {
    Bytes::from_static(b":heartbeat\n\n")
}

/// The first frame of a stream: `sys_connected` with the client's IP.
pub fn connected(peer: Option<SocketAddr>) -> Bytes {
    sse::encode_notice(CONNECTED, &ip_of(peer))
}

/// An address as the original's events name it: the IP alone.
fn ip_of(addr: Option<SocketAddr>) -> String {
    addr.map(|a| a.ip().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(b: Option<Bytes>) -> String {
        String::from_utf8_lossy(&b.expect("a frame")).into_owned()
    }

    #[test]
    fn native_endings_get_the_originals_names() {
        let d = BrokerFarewell {
            instance_address: "10.0.0.5:8080".into(),
        };
        let kicked = EndReason::Kicked {
            reason: Some("bye".into()),
        };
        assert_eq!(
            text(d.frame(&kicked)),
            "event: sys_kick_offline\ndata: bye\n\n"
        );
        let by = Some("192.168.2.22:64321".parse().expect("addr"));
        assert_eq!(
            text(d.frame(&EndReason::TakenOver { by })),
            "event: sys_extrude_offline\ndata: 192.168.2.22\n\n"
        );
        assert_eq!(
            text(d.frame(&EndReason::Shutdown)),
            "event: sys_instance_close\ndata: 10.0.0.5:8080\n\n"
        );
        assert_eq!(heartbeat(), ":heartbeat\n\n");
        assert_eq!(
            String::from_utf8_lossy(&connected(by)),
            "event: sys_connected\ndata: 192.168.2.22\n\n"
        );
    }
}
