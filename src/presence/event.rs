//! What a presence change looks like to the outside world: one
//! [`PresenceEvent`], the same JSON on the presence stream and in every
//! webhook body.
//!
//! The shape is fixed here, once, so the stream, the webhooks and the
//! compatibility profiles (go-sse-broker's `StateChange`) all map the same
//! value instead of each inventing its own.
//!
//! # JSON
//!
//! ```json
//! {
//!   "kind": "device_offline",
//!   "app": "shop",
//!   "user": "u-42",
//!   "device": "phone-1",
//!   "reason": "disconnected",
//!   "at": 1767225600123,
//!   "connection_id": "Zz48qkAeRmD",
//!   "node": null
//! }
//! ```
//!
//! Every key is always present. `device` is the device of the connection that
//! caused the change (also on `user_*` events, `null` for a connection without
//! a device). `at` is when the change happened, in Unix milliseconds: for an
//! offline after the grace period, the moment the last connection closed, not
//! the moment the grace ran out. `node` names the cluster node (`null` on a
//! single node).
//!
//! # Mapping onto go-sse-broker's `StateChange`
//!
//! See `compat::go_sse_broker::presence`: `{uid, device, device_id,
//! trigger_time, reason, payload}` on channel `sse_topic_<kind>`, reasons
//! `connected` → `device_connected`, `disconnected` and `expired` →
//! `device_disconnect`, `kicked` → `kick_offline`, `taken_over` →
//! `extrude_offline`, `shutdown` → `instance_close`, `node_lost` →
//! `instance_clear`.
//!
//! In a cluster, `node` is the id of the node that emitted the event, or
//! for `node_lost` the node that died (where the connection was).

use serde::{Deserialize, Serialize};

/// Which of the four transitions happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceKind {
    /// The user's first connection opened (none was open, none in grace).
    UserOnline,
    /// The user's last connection closed and the grace period passed.
    UserOffline,
    /// The device's first connection opened.
    DeviceOnline,
    /// The device's last connection closed and the grace period passed.
    DeviceOffline,
}

impl PresenceKind {
    /// The JSON name (`user_online`, ...), e.g. for a header or an SSE `event:`.
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceKind::UserOnline => "user_online",
            PresenceKind::UserOffline => "user_offline",
            PresenceKind::DeviceOnline => "device_online",
            PresenceKind::DeviceOffline => "device_offline",
        }
    }

    pub fn is_online(self) -> bool {
        matches!(self, PresenceKind::UserOnline | PresenceKind::DeviceOnline)
    }
}

/// Why a connection opened or closed. An online event is always
/// `connected`; an offline carries the reason its last connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceReason {
    /// A connection opened.
    Connected,
    /// The client went away, or stopped answering heartbeats.
    Disconnected,
    /// Ended by the API (`DELETE /api/v1/connections/:id`, `POST /api/v1/kick`).
    Kicked,
    /// Replaced by a newer connection of the same device.
    TakenOver,
    /// The identity token expired during the stream.
    Expired,
    /// This server is shutting down.
    Shutdown,
    /// The cluster node that held the connection disappeared.
    NodeLost,
}

impl PresenceReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceReason::Connected => "connected",
            PresenceReason::Disconnected => "disconnected",
            PresenceReason::Kicked => "kicked",
            PresenceReason::TakenOver => "taken_over",
            PresenceReason::Expired => "expired",
            PresenceReason::Shutdown => "shutdown",
            PresenceReason::NodeLost => "node_lost",
        }
    }
}

/// One presence change. See the module doc for the JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceEvent {
    pub kind: PresenceKind,
    pub app: String,
    pub user: String,
    pub device: Option<String>,
    pub reason: PresenceReason,
    /// Unix milliseconds.
    pub at: u64,
    pub connection_id: String,
    pub node: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_is_the_documented_one() {
        let e = PresenceEvent {
            kind: PresenceKind::DeviceOffline,
            app: "shop".into(),
            user: "u-42".into(),
            device: Some("phone-1".into()),
            reason: PresenceReason::TakenOver,
            at: 1_767_225_600_123,
            connection_id: "Zz48qkAeRmD".into(),
            node: None,
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "kind": "device_offline",
                "app": "shop",
                "user": "u-42",
                "device": "phone-1",
                "reason": "taken_over",
                "at": 1_767_225_600_123u64,
                "connection_id": "Zz48qkAeRmD",
                "node": null
            })
        );
        let back: PresenceEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn names_match_serde() {
        for k in [
            PresenceKind::UserOnline,
            PresenceKind::UserOffline,
            PresenceKind::DeviceOnline,
            PresenceKind::DeviceOffline,
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for r in [
            PresenceReason::Connected,
            PresenceReason::Disconnected,
            PresenceReason::Kicked,
            PresenceReason::TakenOver,
            PresenceReason::Expired,
            PresenceReason::Shutdown,
            PresenceReason::NodeLost,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }
}
