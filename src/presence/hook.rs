//! The tracker as the hub registry's presence hook: an identity connection
//! admitted by the registry opens a [`PresenceLease`], and the registry
//! closes it with the reason it ended (kicked, taken over, expired,
//! shutdown), or drops it when the client went away (`disconnected`).
//!
//! The registry calls both under its own lock, which is what keeps presence
//! in the order connections really opened and closed (a take-over opens the
//! newcomer before it closes the old one, so the device never looks offline
//! in between). The tracker's sinks only queue, so nothing here waits.

use super::event::PresenceReason;
use super::tracker::{PresenceIdentity, PresenceLease, PresenceTracker};
use crate::hub::{EndReason, Owner, PresenceHold, PresenceHook};

impl PresenceHook for PresenceTracker {
    fn open(&self, owner: &Owner, connection_id: &str) -> Box<dyn PresenceHold> {
        let who = PresenceIdentity {
            app: owner.app.to_string(),
            user: owner.user.to_string(),
            device: owner.device.as_deref().map(str::to_string),
        };
        Box::new(PresenceTracker::open(self, who, connection_id))
    }
}

impl PresenceHold for PresenceLease {
    fn close(self: Box<Self>, why: Option<&EndReason>) {
        PresenceLease::close(*self, reason(why));
    }
}

/// The presence reason for why the server ended a connection.
pub fn reason(why: Option<&EndReason>) -> PresenceReason {
    match why {
        None => PresenceReason::Disconnected,
        Some(EndReason::Kicked { .. }) => PresenceReason::Kicked,
        Some(EndReason::TakenOver { .. }) => PresenceReason::TakenOver,
        Some(EndReason::Expired) => PresenceReason::Expired,
        Some(EndReason::Shutdown) => PresenceReason::Shutdown,
    }
}
