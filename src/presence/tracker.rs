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
//! Race-free by construction: all state (who is online, which offlines are
//! armed: [`super::online`]) sits behind one mutex, every transition is
//! decided and emitted under it (so a sink sees one key's events in the
//! order they happened), and nothing awaits while holding it.
//! Each open and close is a couple of hash-map operations; an expiry is a
//! Tokio timer whose task re-checks, under the lock, that the offline it was
//! armed for is still due (a reopen disarms it by clearing it).
//!
//! Connections are tracked through a [`PresenceLease`]: [`PresenceTracker::open`]
//! returns one, and closing it (or dropping it: `disconnected`) is the close,
//! so an open can never be closed twice or forgotten.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::runtime::Handle;

use super::event::{PresenceEvent, PresenceKind, PresenceReason};
use super::online::{Armed, Due, Online, PresenceCounts};
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
    state: Mutex<Online>,
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
                state: Mutex::new(Online::default()),
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
        let (user_online, device_online) = state.open(&key, who.device.as_ref());
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
        state.shut_down(&|kind, key, armed| inner.emit_offline(kind, key, armed))
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
        state.for_each(|(app, user), device| {
            let kind = match device {
                None => PresenceKind::UserOnline,
                Some(_) => PresenceKind::DeviceOnline,
            };
            sink.emit(PresenceEvent {
                kind,
                app: app.clone(),
                user: user.clone(),
                device: device.cloned(),
                reason: PresenceReason::Connected,
                at,
                connection_id: String::new(),
                node: inner.node.clone(),
            });
            replayed += 1;
        });
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
        self.inner.state.lock().counts()
    }

    /// Whether the user has a connection (or is in grace).
    pub fn is_online(&self, app: &str, user: &str) -> bool {
        self.inner.state.lock().has_user(app, user)
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

impl Inner {
    fn close(self: &Arc<Self>, lease: &PresenceLease, reason: PresenceReason) {
        let mut state = self.state.lock();
        let at = now_ms();
        let Some((device_arm, user_arm)) = state.close(
            &lease.key,
            lease.device.as_ref(),
            reason,
            at,
            &lease.connection_id,
        ) else {
            return;
        };
        let immediate = state.closing() || self.grace.is_zero();
        if immediate {
            let device = lease.device.as_deref().map(|d| (d, Due::Any));
            state.expire(&lease.key, device, Some(Due::Any), &|kind, key, armed| {
                self.emit_offline(kind, key, armed)
            });
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
                state.expire(
                    &key,
                    device,
                    user_arm.map(Due::Armed),
                    &|kind, key, armed| inner.emit_offline(kind, key, armed),
                );
            }
        });
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
