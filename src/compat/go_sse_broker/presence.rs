//! go-sse-broker's presence callbacks on Redis: in a cluster with the
//! profile on, every presence event of the profile's application also goes
//! out with `PUBLISH` on the channels its back-ends subscribe to
//! (`sse_topic_user_online`, `sse_topic_user_offline`,
//! `sse_topic_device_online`, `sse_topic_device_offline`, unprefixed), as
//! its `StateChange` JSON:
//!
//! ```json
//! {"uid":"u-42","device":"phone-1","device_id":"3f…","trigger_time":"2026-11-30 09:00:00","reason":"device_disconnect","payload":""}
//! ```
//!
//! `device` is the device name and `device_id` this profile's id for it
//! (`/info`'s): the original's versions named the field one way or the
//! other, so both are sent. `trigger_time` is when the change happened, in
//! UTC. Reasons in its vocabulary: `connected` → `device_connected`,
//! `disconnected` and `expired` → `device_disconnect`, `kicked` →
//! `kick_offline`, `taken_over` → `extrude_offline`, `shutdown` →
//! `instance_close`, `node_lost` → `instance_clear` (its name for the
//! clean-up after a dead instance, which it never did). `payload` is empty.
//!
//! The events are the cluster-wide ones ([`crate::presence::cluster`]):
//! emitted once, by one node. Unlike the original, a take-over is not an
//! offline and an online (the device never goes offline), and the grace
//! period absorbs reconnects. A task publishes them in order; the sink
//! only queues (the presence writer must not wait).

use std::sync::Arc;

use serde_json::json;
use tokio::sync::mpsc;

use super::info::{broker_time, device_id};
use crate::broker::RedisBroker;
use crate::presence::{PresenceEvent, PresenceKind, PresenceReason, PresenceSink};

/// The channel an event goes out on.
pub fn channel(kind: PresenceKind) -> &'static str {
    match kind {
        PresenceKind::UserOnline => "sse_topic_user_online",
        PresenceKind::UserOffline => "sse_topic_user_offline",
        PresenceKind::DeviceOnline => "sse_topic_device_online",
        PresenceKind::DeviceOffline => "sse_topic_device_offline",
    }
}

/// A reason in go-sse-broker's words.
pub fn reason(reason: PresenceReason) -> &'static str {
    match reason {
        PresenceReason::Connected => "device_connected",
        PresenceReason::Disconnected | PresenceReason::Expired => "device_disconnect",
        PresenceReason::Kicked => "kick_offline",
        PresenceReason::TakenOver => "extrude_offline",
        PresenceReason::Shutdown => "instance_close",
        PresenceReason::NodeLost => "instance_clear",
    }
}

/// The `StateChange` JSON of `event`.
pub fn state_change(event: &PresenceEvent) -> String {
    let device = event.device.as_deref().unwrap_or("");
    json!({
        "uid": event.user,
        "device": device,
        "device_id": if device.is_empty() { String::new() } else { device_id(&event.app, &event.user, device) },
        "trigger_time": broker_time(event.at),
        "reason": reason(event.reason),
        "payload": "",
    })
    .to_string()
}

/// The sink publishing `app`'s presence events on the channels.
pub fn presence_channels(redis: Arc<RedisBroker>, app: String) -> Arc<dyn PresenceSink> {
    let (tx, mut rx) = mpsc::unbounded_channel::<PresenceEvent>();
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            let body = state_change(&event);
            if let Err(e) = redis.publish_raw(channel(event.kind), &body).await {
                tracing::warn!(error = %e, kind = event.kind.as_str(), "go-sse-broker presence callback not published");
            }
        }
    });
    Arc::new(AppOnly { app, tx })
}

/// Only the profile's application: its back-ends know no other.
struct AppOnly {
    app: String,
    tx: mpsc::UnboundedSender<PresenceEvent>,
}

impl PresenceSink for AppOnly {
    fn emit(&self, event: PresenceEvent) {
        if event.app == self.app {
            // A closed receiver: the runtime is going away.
            let _ = self.tx.send(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_change_speaks_go_sse_broker() {
        let event = PresenceEvent {
            kind: PresenceKind::DeviceOffline,
            app: "default".into(),
            user: "sssxyd".into(),
            device: Some("xuyd".into()),
            reason: PresenceReason::NodeLost,
            at: 1_726_135_079_000,
            connection_id: "c1".into(),
            node: Some("n1".into()),
        };
        let v: serde_json::Value = serde_json::from_str(&state_change(&event)).unwrap();
        assert_eq!(v["uid"], "sssxyd");
        assert_eq!(v["device"], "xuyd");
        assert_eq!(v["device_id"].as_str().map(str::len), Some(32));
        assert_eq!(v["trigger_time"], "2024-09-12 09:57:59");
        assert_eq!(v["reason"], "instance_clear");
        assert_eq!(v["payload"], "");
        assert_eq!(channel(event.kind), "sse_topic_device_offline");
    }
}
