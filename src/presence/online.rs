//! Who is online on this node, as the tracker ([`super::tracker`]) keeps
//! count: each user's and each device's open connections and, once the
//! last one has closed, the offline armed to go out when the grace runs out
//! (the close that caused it, with a number so that an expiry can tell the
//! offline it was armed for from one armed after a reopen).
//!
//! It is the tracker's book and nothing more: no lock, clock, timer or
//! sink. The tracker holds it under its one mutex, decides every
//! transition with it, and emits the offlines it hands back
//! (`emit`) while still holding that mutex, so a sink sees one key's
//! events in the order they happened.

use std::collections::HashMap;

use super::event::{PresenceKind, PresenceReason};

/// (app, user): one user.
pub(super) type UserKey = (String, String);

/// How many users and devices are online now (including those in grace).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PresenceCounts {
    pub users: u64,
    pub devices: u64,
}

#[derive(Default)]
pub(super) struct Online {
    /// (app, user) → the user and its devices.
    users: HashMap<UserKey, UserEntry>,
    devices_online: u64,
    /// Tells one armed offline from the next; a timer whose number no
    /// longer matches was disarmed by a reopen.
    next_arm: u64,
    /// After `PresenceTracker::shutdown`: offlines are emitted at once.
    closing: bool,
}

#[derive(Default)]
struct UserEntry {
    presence: Presence,
    devices: HashMap<String, Presence>,
}

/// One user's or device's connections, and its offline if one is armed.
#[derive(Default)]
struct Presence {
    open: usize,
    /// Set only while `open == 0`: the offline waiting for the grace.
    armed: Option<Armed>,
}

/// Which armed offline an expiry may emit.
#[derive(Clone, Copy)]
pub(super) enum Due {
    /// Whatever is armed (closing at once: no grace, or shutting down).
    Any,
    /// Only the one armed with this number (a timer: a reopen and a new
    /// close since then armed another, with its own timer).
    Armed(u64),
}

impl Due {
    fn matches(self, p: &Presence) -> bool {
        match (self, &p.armed) {
            (_, None) => false,
            (Due::Any, Some(_)) => true,
            (Due::Armed(n), Some(a)) => a.arm == n,
        }
    }
}

/// An offline waiting to be emitted: the close that caused it.
pub(super) struct Armed {
    arm: u64,
    pub(super) reason: PresenceReason,
    pub(super) at: u64,
    pub(super) connection_id: String,
    pub(super) device: Option<String>,
}

impl Online {
    /// One more connection of `key` (on `device`): whether that makes the
    /// user, and the device, newly online.
    pub(super) fn open(&mut self, key: &UserKey, device: Option<&String>) -> (bool, bool) {
        let user = self.users.entry(key.clone()).or_default();
        let user_online = user.presence.reopen();
        let device_online = match device {
            None => false,
            Some(device) => {
                let entry = match user.devices.get_mut(device) {
                    Some(entry) => entry,
                    None => user.devices.entry(device.clone()).or_default(),
                };
                entry.reopen()
            }
        };
        if device_online {
            self.devices_online += 1;
        }
        (user_online, device_online)
    }

    /// One connection of `key` (on `device`) closed: the device and the
    /// user that have no connection left arm their offline, with this
    /// close's `reason`, time and connection. Returns the numbers armed
    /// (device, user), to expire them by ([`Due::Armed`]); `None` when
    /// neither armed one.
    pub(super) fn close(
        &mut self,
        key: &UserKey,
        device: Option<&String>,
        reason: PresenceReason,
        at: u64,
        connection_id: &str,
    ) -> Option<(Option<u64>, Option<u64>)> {
        let Online {
            users, next_arm, ..
        } = self;
        let Some(user) = users.get_mut(key) else {
            debug_assert!(false, "a lease outlived its user entry");
            return None;
        };
        let mut arm = |p: &mut Presence| -> Option<u64> {
            p.open = p.open.saturating_sub(1);
            if p.open > 0 {
                return None;
            }
            *next_arm += 1;
            p.armed = Some(Armed {
                arm: *next_arm,
                reason,
                at,
                connection_id: connection_id.to_string(),
                device: device.cloned(),
            });
            Some(*next_arm)
        };
        let device_arm = device
            .and_then(|d| user.devices.get_mut(d))
            .and_then(&mut arm);
        let user_arm = arm(&mut user.presence);
        if device_arm.is_none() && user_arm.is_none() {
            return None;
        }
        Some((device_arm, user_arm))
    }

    /// Whether offlines go out at once (after the tracker's shutdown).
    pub(super) fn closing(&self) -> bool {
        self.closing
    }

    /// Emits the offlines of `device` and of its user that are due, and
    /// forgets them: they have no connection left.
    pub(super) fn expire(
        &mut self,
        key: &UserKey,
        device: Option<(&str, Due)>,
        user: Option<Due>,
        emit: &dyn Fn(PresenceKind, &UserKey, Armed),
    ) {
        let Some(entry) = self.users.get_mut(key) else {
            return;
        };
        if let Some((device, due)) = device
            && let Some(p) = entry.devices.get_mut(device)
            && due.matches(p)
            && let Some(armed) = p.armed.take()
        {
            entry.devices.remove(device);
            self.devices_online = self.devices_online.saturating_sub(1);
            emit(PresenceKind::DeviceOffline, key, armed);
        }
        if let Some(due) = user
            && self
                .users
                .get(key)
                .is_some_and(|u| due.matches(&u.presence))
            && let Some(mut user) = self.users.remove(key)
        {
            // Devices always expire before (or with) their user; flush any
            // left so a consumer never sees a device outlive its user.
            self.flush_devices(key, &mut user, false, emit);
            if let Some(armed) = user.presence.armed.take() {
                emit(PresenceKind::UserOffline, key, armed);
            }
        }
    }

    /// Emits every offline still waiting for its grace now, with reason
    /// `shutdown`, and from then on closes at once ([`Online::closing`]).
    /// Returns how many it emitted.
    pub(super) fn shut_down(&mut self, emit: &dyn Fn(PresenceKind, &UserKey, Armed)) -> usize {
        self.closing = true;
        let mut emitted = 0;
        let users = std::mem::take(&mut self.users);
        for (key, mut user) in users {
            emitted += self.flush_devices(&key, &mut user, true, emit);
            if let Some(armed) = user.presence.armed.take() {
                let armed = Armed {
                    reason: PresenceReason::Shutdown,
                    ..armed
                };
                emit(PresenceKind::UserOffline, &key, armed);
                emitted += 1;
            } else {
                self.users.insert(key, user);
            }
        }
        emitted
    }

    /// Emits the armed offlines of `user`'s devices; with `shutdown`, with
    /// that reason.
    fn flush_devices(
        &mut self,
        key: &UserKey,
        user: &mut UserEntry,
        shutdown: bool,
        emit: &dyn Fn(PresenceKind, &UserKey, Armed),
    ) -> usize {
        let mut emitted = 0;
        user.devices.retain(|_, p| {
            let Some(mut armed) = p.armed.take() else {
                return true;
            };
            if shutdown {
                armed.reason = PresenceReason::Shutdown;
            }
            self.devices_online = self.devices_online.saturating_sub(1);
            emit(PresenceKind::DeviceOffline, key, armed);
            emitted += 1;
            false
        });
        emitted
    }

    /// Calls `f` for every user online here (device `None`), then for each
    /// of its devices; those in grace included.
    pub(super) fn for_each(&self, mut f: impl FnMut(&UserKey, Option<&String>)) {
        for (key, entry) in &self.users {
            f(key, None);
            for device in entry.devices.keys() {
                f(key, Some(device));
            }
        }
    }

    /// Users and devices online now, those in grace included.
    pub(super) fn counts(&self) -> PresenceCounts {
        PresenceCounts {
            users: self.users.len() as u64,
            devices: self.devices_online,
        }
    }

    /// Whether the user has a connection (or is in grace).
    pub(super) fn has_user(&self, app: &str, user: &str) -> bool {
        self.users
            .contains_key(&(app.to_string(), user.to_string()))
    }
}

impl Presence {
    /// One more connection; true when this makes it newly online (a reopen
    /// within the grace disarms the offline and is not new).
    fn reopen(&mut self) -> bool {
        self.open += 1;
        self.open == 1 && self.armed.take().is_none()
    }
}
