//! The presence tracker: turns connections opening and closing into
//! [`PresenceEvent`]s.
//!
//! A user is online while it has at least one connection; a device while it
//! has at least one. When the last connection goes, the offline is not sent
//! at once: it waits `grace`, and a connection of the same user/device that
//! opens meanwhile cancels it silently, so a client that reconnects (a
//! network blip, a token refresh, a page reload) makes no offline/online
//! noise. Only when the grace runs out with nothing reopened is the offline
//! emitted, with the reason and time of the close that caused it.
//!
//! Race-free by construction: all state sits behind one mutex, every
//! transition is decided and emitted under it (so a sink sees one key's
//! events in the order they happened), and nothing awaits while holding it.
//! Each open and close is a couple of hash-map operations; an expiry is a
//! Tokio timer whose task re-checks, under the lock, that the offline it was
//! armed for is still due (a reopen disarms it by clearing it).
//!
//! Connections are tracked through a [`PresenceLease`]: [`PresenceTracker::open`]
//! returns one, and closing it (or dropping it: `disconnected`) is the close,
//! so an open can never be closed twice or forgotten.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::runtime::Handle;

use super::event::{PresenceEvent, PresenceKind, PresenceReason};
use super::sink::PresenceSink;
use crate::store::now_ms;

/// The tracker's settings (`presence.*`).
#[derive(Debug, Clone, Default)]
pub struct PresenceSettings {
    /// How long a user/device may be without connections before it is
    /// reported offline. Zero reports it at once.
    pub grace: Duration,
    /// This node's name, copied into every event (`None` on a single node).
    pub node: Option<String>,
}

/// Who a connection belongs to, as far as presence is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PresenceIdentity {
    pub app: String,
    pub user: String,
    pub device: Option<String>,
}

/// How many users and devices are online now (including those in grace).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PresenceCounts {
    pub users: u64,
    pub devices: u64,
}

#[derive(Clone)]
pub struct PresenceTracker {
    inner: Arc<Inner>,
}

struct Inner {
    grace: Duration,
    node: Option<String>,
    sink: Arc<dyn PresenceSink>,
    /// Where expiry timers run (captured at construction, so closing works
    /// from any thread, including a `Drop`).
    runtime: Handle,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// (app, user) → the user and its devices.
    users: HashMap<(String, String), UserEntry>,
    devices_online: u64,
    /// Tells one armed offline from the next; a timer whose number no
    /// longer matches was disarmed by a reopen.
    next_arm: u64,
    /// After [`PresenceTracker::shutdown`]: offlines are emitted at once.
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
enum Due {
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
struct Armed {
    arm: u64,
    reason: PresenceReason,
    at: u64,
    connection_id: String,
    device: Option<String>,
}

impl PresenceTracker {
    /// A tracker sending to `sink`. Must be called inside a Tokio runtime
    /// (expiry timers run on it).
    pub fn new(settings: PresenceSettings, sink: Arc<dyn PresenceSink>) -> PresenceTracker {
        PresenceTracker {
            inner: Arc::new(Inner {
                grace: settings.grace,
                node: settings.node,
                sink,
                runtime: Handle::current(),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// A connection opened. Emits `user_online`/`device_online` for a user
    /// or device that had no connection and none in grace.
    pub fn open(&self, who: PresenceIdentity, connection_id: &str) -> PresenceLease {
        let inner = &self.inner;
        let mut state = inner.state.lock();
        let at = now_ms();
        let key = (who.app, who.user);
        let user = state.users.entry(key.clone()).or_default();
        let user_online = user.presence.reopen();
        let device_online = match &who.device {
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
            state.devices_online += 1;
        }
        let event = |kind| PresenceEvent {
            kind,
            app: key.0.clone(),
            user: key.1.clone(),
            device: who.device.clone(),
            reason: PresenceReason::Connected,
            at,
            connection_id: connection_id.to_string(),
            node: inner.node.clone(),
        };
        if user_online {
            inner.sink.emit(event(PresenceKind::UserOnline));
        }
        if device_online {
            inner.sink.emit(event(PresenceKind::DeviceOnline));
        }
        drop(state);
        PresenceLease {
            inner: inner.clone(),
            key,
            device: who.device,
            connection_id: connection_id.to_string(),
            closed: false,
        }
    }

    /// Emits every offline still waiting for its grace now, with reason
    /// `shutdown`, and from then on emits offlines at once (this node can
    /// no longer watch for reconnects). Call it once the streams have been
    /// ended, before draining the webhooks. Returns how many it emitted.
    pub fn shutdown(&self) -> usize {
        let inner = &self.inner;
        let mut state = inner.state.lock();
        state.closing = true;
        let mut emitted = 0;
        let users = std::mem::take(&mut state.users);
        for (key, mut user) in users {
            emitted += inner.flush_devices(&mut state, &key, &mut user, true);
            if let Some(armed) = user.presence.armed.take() {
                let armed = Armed {
                    reason: PresenceReason::Shutdown,
                    ..armed
                };
                inner.emit_offline(PresenceKind::UserOffline, &key, armed);
                emitted += 1;
            } else {
                state.users.insert(key, user);
            }
        }
        emitted
    }

    /// Hands `sink` a `user_online`/`device_online` for every user and
    /// device this node holds now (those in grace included), under the
    /// tracker's lock, so they are queued in order with every open and close
    /// around them. For the cluster's presence ledger when it lost this
    /// node's share ([`super::cluster`]): replayed, the ledger is whole
    /// again. Their `connection_id` is empty (the tracker keeps counts, not
    /// connections). Returns how many it handed over.
    pub fn replay(&self, sink: &dyn PresenceSink) -> usize {
        let inner = &self.inner;
        let state = inner.state.lock();
        let at = now_ms();
        let mut replayed = 0;
        for ((app, user), entry) in &state.users {
            let event = |kind, device: Option<&String>| PresenceEvent {
                kind,
                app: app.clone(),
                user: user.clone(),
                device: device.cloned(),
                reason: PresenceReason::Connected,
                at,
                connection_id: String::new(),
                node: inner.node.clone(),
            };
            sink.emit(event(PresenceKind::UserOnline, None));
            replayed += 1;
            for device in entry.devices.keys() {
                sink.emit(event(PresenceKind::DeviceOnline, Some(device)));
                replayed += 1;
            }
        }
        replayed
    }

    /// A handle that does not keep the tracker alive.
    pub fn downgrade(&self) -> WeakPresenceTracker {
        WeakPresenceTracker {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// Users and devices online now, those in grace included.
    pub fn counts(&self) -> PresenceCounts {
        let state = self.inner.state.lock();
        PresenceCounts {
            users: state.users.len() as u64,
            devices: state.devices_online,
        }
    }

    /// Whether the user has a connection (or is in grace).
    pub fn is_online(&self, app: &str, user: &str) -> bool {
        let state = self.inner.state.lock();
        state
            .users
            .contains_key(&(app.to_string(), user.to_string()))
    }
}

/// A [`PresenceTracker`] that may be gone.
#[derive(Clone)]
pub struct WeakPresenceTracker {
    inner: std::sync::Weak<Inner>,
}

impl WeakPresenceTracker {
    pub fn upgrade(&self) -> Option<PresenceTracker> {
        self.inner.upgrade().map(|inner| PresenceTracker { inner })
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

impl Inner {
    fn close(self: &Arc<Self>, lease: &PresenceLease, reason: PresenceReason) {
        let mut state = self.state.lock();
        let at = now_ms();
        let State {
            users,
            next_arm,
            closing,
            ..
        } = &mut *state;
        let Some(user) = users.get_mut(&lease.key) else {
            debug_assert!(false, "a lease outlived its user entry");
            return;
        };
        let immediate = *closing || self.grace.is_zero();
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
                connection_id: lease.connection_id.clone(),
                device: lease.device.clone(),
            });
            Some(*next_arm)
        };
        let device_arm = lease
            .device
            .as_ref()
            .and_then(|d| user.devices.get_mut(d))
            .and_then(&mut arm);
        let user_arm = arm(&mut user.presence);
        if device_arm.is_none() && user_arm.is_none() {
            return;
        }
        if immediate {
            let device = lease.device.as_deref().map(|d| (d, Due::Any));
            self.expire(&mut state, &lease.key, device, Some(Due::Any));
            return;
        }
        drop(state);
        let timer = Arc::downgrade(self);
        let key = lease.key.clone();
        let device = lease.device.clone();
        let grace = self.grace;
        self.runtime.spawn(async move {
            tokio::time::sleep(grace).await;
            if let Some(inner) = timer.upgrade() {
                let mut state = inner.state.lock();
                let device = device.as_deref().zip(device_arm.map(Due::Armed));
                inner.expire(&mut state, &key, device, user_arm.map(Due::Armed));
            }
        });
    }

    /// Emits the offlines of `device` and of its user that are due, and
    /// forgets them: they have no connection left.
    fn expire(
        &self,
        state: &mut State,
        key: &(String, String),
        device: Option<(&str, Due)>,
        user: Option<Due>,
    ) {
        let Some(entry) = state.users.get_mut(key) else {
            return;
        };
        if let Some((device, due)) = device
            && let Some(p) = entry.devices.get_mut(device)
            && due.matches(p)
            && let Some(armed) = p.armed.take()
        {
            entry.devices.remove(device);
            state.devices_online = state.devices_online.saturating_sub(1);
            self.emit_offline(PresenceKind::DeviceOffline, key, armed);
        }
        if let Some(due) = user
            && state
                .users
                .get(key)
                .is_some_and(|u| due.matches(&u.presence))
            && let Some(mut user) = state.users.remove(key)
        {
            // Devices always expire before (or with) their user; flush any
            // left so a consumer never sees a device outlive its user.
            self.flush_devices(state, key, &mut user, false);
            if let Some(armed) = user.presence.armed.take() {
                self.emit_offline(PresenceKind::UserOffline, key, armed);
            }
        }
    }

    /// Emits the armed offlines of `user`'s devices; with `shutdown`, with
    /// that reason.
    fn flush_devices(
        &self,
        state: &mut State,
        key: &(String, String),
        user: &mut UserEntry,
        shutdown: bool,
    ) -> usize {
        let mut emitted = 0;
        user.devices.retain(|_, p| {
            let Some(mut armed) = p.armed.take() else {
                return true;
            };
            if shutdown {
                armed.reason = PresenceReason::Shutdown;
            }
            state.devices_online = state.devices_online.saturating_sub(1);
            self.emit_offline(PresenceKind::DeviceOffline, key, armed);
            emitted += 1;
            false
        });
        emitted
    }

    fn emit_offline(&self, kind: PresenceKind, key: &(String, String), armed: Armed) {
        self.sink.emit(PresenceEvent {
            kind,
            app: key.0.clone(),
            user: key.1.clone(),
            device: armed.device,
            reason: armed.reason,
            at: armed.at,
            connection_id: armed.connection_id,
            node: self.node.clone(),
        });
    }
}

/// One open connection, as the tracker knows it. [`PresenceLease::close`]
/// says why it closed; dropping it unclosed counts as `disconnected`.
pub struct PresenceLease {
    inner: Arc<Inner>,
    key: (String, String),
    device: Option<String>,
    connection_id: String,
    closed: bool,
}

impl PresenceLease {
    pub fn close(mut self, reason: PresenceReason) {
        self.closed = true;
        self.inner.close(&self, reason);
    }

    pub fn connection_id(&self) -> &str {
        &self.connection_id
    }
}

impl Drop for PresenceLease {
    fn drop(&mut self) {
        if !self.closed {
            self.closed = true;
            self.inner.close(self, PresenceReason::Disconnected);
        }
    }
}

impl std::fmt::Debug for PresenceLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceLease")
            .field("app", &self.key.0)
            .field("user", &self.key.1)
            .field("device", &self.device)
            .field("connection_id", &self.connection_id)
            .finish()
    }
}
