//! The registry of open connections: admit and register them, end them by
//! id, by application, user or device without scanning the others
//! ([`super::owners`]); reach every one for heartbeats and shutdown. (Ending
//! every connection on one stream goes through the stream's own follower
//! list, O(its followers): see `Hub::end_connections_on`.) Finding, listing,
//! paging and counting them only reads the registry: [`super::census`].
//!
//! One lock guards the registry, and everything that must agree with it
//! happens under it, in one step: the admission of an identity connection
//! (blocks, limits, take-over: [`super::admission`]), its presence opening
//! and closing ([`PresenceHook`]), and ending a connection by kick or
//! take-over. So fifty connections of one device arriving together are
//! admitted one after the other and exactly one is left, and presence sees
//! opens and closes in the order the registry made them. Nothing under the
//! lock waits: presence hands its events to a queue, and ending a
//! connection only queues its farewell into its outbox.
//!
//! In a cluster the registry also tells the directory
//! ([`Directory`](crate::broker::Directory)) which identity connections
//! joined and left, after its lock is released: those writes are only
//! queued, so the lock never waits on Redis (the device claim that must
//! come first is the hub's, before [`Connections::register`]: see
//! `super::cluster`).
//!
//! A connection is registered before it follows anything and leaves when its
//! HTTP body is dropped, however that happens ([`Registration`]), or earlier
//! when it is kicked or taken over: from then on it is no longer listed or
//! counted, while its stream sends what was queued and its farewell.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use super::admission::{AdmissionSettings, BlockScope, Blocks, PerIp, Refusal, TakeoverPolicy};
use super::connection::{Connection, Owner};
use super::farewell::EndReason;
use super::owners::{ConnId, OwnerIndex, Selector};
use super::retake::Retakes;
use super::roster::Roster;
use crate::broker::Directory;
use crate::model::StreamKey;

/// What the registry tells presence: an identity connection opened, and
/// (through the returned hold) why it closed. Called under the registry's
/// lock: it must not block or call back into the registry.
pub trait PresenceHook: Send + Sync + 'static {
    fn open(&self, owner: &Owner, connection_id: &str) -> Box<dyn PresenceHold>;
}

/// One identity connection's presence, closed exactly once: with the
/// server's reason, or `None` when the client went away.
pub trait PresenceHold: Send + Sync + 'static {
    fn close(self: Box<Self>, why: Option<&EndReason>);
}

pub struct Connections {
    /// Read, without changing it, by [`super::census`].
    pub(super) inner: Mutex<Registry>,
    admission: AdmissionSettings,
    presence: OnceLock<Arc<dyn PresenceHook>>,
    directory: Roster,
}

#[derive(Default)]
pub(super) struct Registry {
    /// Every connection, ordered by id (for stable pages); an entry is one
    /// pointer, so an idle topic connection costs the registry 8 bytes and a
    /// tree slot.
    pub(super) by_id: BTreeSet<ById>,
    /// Identity connections by owner, each with its presence hold.
    pub(super) owners: OwnerIndex<Option<Box<dyn PresenceHold>>>,
    /// Identity connections per client IP.
    per_ip: PerIp,
    blocks: Blocks,
    /// The ids taken-over connections will reconnect with, for a while.
    retakes: Retakes,
    /// Connections on the presence stream.
    pub(super) presence_streams: usize,
    /// Set at shutdown: no new connection may register.
    stopping: bool,
}

/// A connection in the registry, ordered and found by its id.
pub(super) struct ById(pub(super) Arc<Connection>);

impl Ord for ById {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.id().cmp(other.0.id())
    }
}

impl PartialOrd for ById {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.id() == other.0.id()
    }
}

impl Eq for ById {}

impl Borrow<str> for ById {
    fn borrow(&self) -> &str {
        self.0.id()
    }
}

/// A connection's membership; dropping it unregisters the connection.
pub(crate) struct Registration {
    registry: Arc<Connections>,
    id: ConnId,
}

/// Why an id could not be kicked as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KickError {
    NotFound,
    /// A block needs an identity to block; a topic connection has none.
    NoIdentity,
}

impl Connections {
    pub fn new(admission: AdmissionSettings) -> Connections {
        Connections {
            inner: Mutex::new(Registry::default()),
            admission,
            presence: OnceLock::new(),
            directory: Roster::default(),
        }
    }

    /// The cluster's directory: told of every identity connection that
    /// joins or leaves. Set once, at start-up; a second call is ignored.
    pub fn attach_directory(&self, directory: Arc<dyn Directory>) {
        self.directory.attach(directory);
    }

    pub(crate) fn directory(&self) -> Option<&Arc<dyn Directory>> {
        self.directory.get()
    }

    /// Records every identity connection of this node in the directory
    /// again (after Redis came back, possibly without them).
    pub(crate) fn rejoin(&self) {
        let identity: Vec<Arc<Connection>> = self
            .inner
            .lock()
            .by_id
            .iter()
            .filter(|c| c.0.owner().is_some())
            .map(|c| c.0.clone())
            .collect();
        for conn in &identity {
            self.directory.joined(conn);
        }
        // One that left in between may have queued its `left` before the
        // `joined` above: queue it again, after.
        let gone: Vec<Arc<Connection>> = {
            let r = self.inner.lock();
            identity
                .into_iter()
                .filter(|c| !r.by_id.contains(c.id()))
                .collect()
        };
        self.directory.left(&gone);
    }

    /// Where identity connections report opening and closing. Set once, at
    /// start-up, before any connection opens; a second call is ignored.
    pub fn attach_presence(&self, hook: Arc<dyn PresenceHook>) {
        let _ = self.presence.set(hook);
    }

    pub fn admission(&self) -> &AdmissionSettings {
        &self.admission
    }

    /// Admits and registers `conn`. An identity connection passes the
    /// admission rules first, takes over its device's older connection if
    /// the policy says so, and opens its presence, all under the lock.
    /// `held_elsewhere`: its device has an owner on another node of the
    /// cluster (which the claim has already taken over).
    pub(crate) fn register(
        self: &Arc<Self>,
        conn: Arc<Connection>,
        held_elsewhere: bool,
    ) -> Result<Registration, Refusal> {
        let mut r = self.inner.lock();
        if r.stopping {
            return Err(Refusal::Stopping);
        }
        let id = conn.id_arc().clone();
        let mut gone = None;
        if let Some(owner) = conn.owner() {
            let victim = self.admit(&mut r, &conn, owner, held_elsewhere)?;
            // The newcomer's presence opens before the old connection's
            // closes: the device never looks offline in between.
            let hold = self.presence.get().map(|p| p.open(owner, &id));
            r.owners.insert(owner, &id, hold);
            if let Some(ip) = conn.remote().map(|a| a.ip()) {
                r.per_ip.add(ip);
            }
            if let Some(victim) = victim {
                let why = EndReason::TakenOver { by: conn.remote() };
                gone = Self::remove_locked(&mut r, &victim, Some(&why), true);
                self.guard_retake(&mut r, gone.as_deref(), conn.resumed_from());
            }
        }
        if conn.streams().first() == Some(&StreamKey::Presence) {
            r.presence_streams += 1;
        }
        r.by_id.insert(ById(conn.clone()));
        drop(r);
        self.directory.joined(&conn);
        self.directory.left(gone.as_slice());
        Ok(Registration {
            registry: self.clone(),
            id,
        })
    }

    /// The admission rules; on success, the connection to take over.
    fn admit(
        &self,
        r: &mut Registry,
        conn: &Connection,
        owner: &Owner,
        held_elsewhere: bool,
    ) -> Result<Option<ConnId>, Refusal> {
        let rules = &self.admission;
        if let Some(until_ms) = r.blocks.blocked_until(owner) {
            return Err(Refusal::Blocked { until_ms });
        }
        let limit = rules.max_streams_per_connection;
        if limit > 0 && conn.streams().len() > limit {
            return Err(Refusal::StreamLimit { limit });
        }
        let victim = r.owners.device_holder(owner).cloned();
        if victim.is_some() && rules.takeover == TakeoverPolicy::Reject {
            return Err(Refusal::DeviceBusy);
        }
        // Only while someone holds the device: once it is free, coming back
        // takes nothing from anyone.
        if (victim.is_some() || held_elsewhere) && r.retakes.is_retake(owner, conn.resumed_from()) {
            return Err(Refusal::TakenOver);
        }
        let victim_conn = victim.as_ref().and_then(|v| r.by_id.get(&**v));
        let limit = rules.max_connections_per_user;
        let leaving = usize::from(victim.is_some());
        if limit > 0 && r.owners.user_count(&owner.app, &owner.user) - leaving >= limit {
            return Err(Refusal::UserLimit { limit });
        }
        let limit = rules.max_connections_per_ip;
        if limit > 0
            && let Some(ip) = conn.remote().map(|a| a.ip())
        {
            let same_ip = victim_conn.is_some_and(|v| v.0.remote().map(|a| a.ip()) == Some(ip));
            if r.per_ip.get(ip) - usize::from(same_ip) >= limit {
                return Err(Refusal::IpLimit { limit });
            }
        }
        Ok(victim)
    }

    /// `gone` was just taken over by a connection that resumed from
    /// `taker_resumed_from`: its client's automatic reconnect is to be
    /// refused for a while (see `super::retake`), unless the newcomer *is*
    /// that reconnect (a phone back before the server saw its old socket
    /// die: it presents the very id the old connection was last sent).
    fn guard_retake(
        &self,
        r: &mut Registry,
        gone: Option<&Connection>,
        taker_resumed_from: Option<&str>,
    ) {
        let Some(conn) = gone else { return };
        let Some(owner) = conn.owner() else { return };
        let cursor = conn.client_cursor();
        if cursor.is_some() && cursor.as_deref() == taker_resumed_from {
            return;
        }
        r.retakes
            .taken_over(owner, cursor, self.admission.takeover_guard);
    }

    /// Takes `id` out of every index and closes its presence with `why`;
    /// with `farewell`, queues the notice that ends its stream. Returns the
    /// connection when it was there (for the directory, once unlocked).
    fn remove_locked(
        r: &mut Registry,
        id: &str,
        why: Option<&EndReason>,
        farewell: bool,
    ) -> Option<Arc<Connection>> {
        let ById(conn) = r.by_id.take(id)?;
        if let Some(owner) = conn.owner() {
            if let Some(Some(hold)) = r.owners.remove(owner, id) {
                hold.close(why);
            }
            if let Some(ip) = conn.remote().map(|a| a.ip()) {
                r.per_ip.remove(ip);
            }
        }
        if conn.streams().first() == Some(&StreamKey::Presence) {
            r.presence_streams -= 1;
        }
        if let Some(why) = why.filter(|_| farewell) {
            conn.end_because(why);
        }
        Some(conn)
    }

    /// Ends the connection `id` with `why` (after what is queued for it):
    /// it leaves the registry and its presence closes now. With
    /// `block_until` (Unix ms), its identity (its device if it has one, else
    /// its user) may not reconnect before then.
    pub fn end(&self, id: &str, why: EndReason, block_until: Option<u64>) -> Result<(), KickError> {
        let mut r = self.inner.lock();
        let ById(conn) = r.by_id.get(id).ok_or(KickError::NotFound)?;
        if let Some(until) = block_until {
            let owner = conn.owner().ok_or(KickError::NoIdentity)?;
            let scope = BlockScope::of(owner);
            r.blocks.block(scope, until);
        }
        // A take-over from another node of the cluster ends up here too; it
        // leaves no guard (see `super::retake`): this node does not know
        // whether the newcomer was the victim's own client coming back.
        let gone = Self::remove_locked(&mut r, id, Some(&why), true);
        drop(r);
        self.directory.left(gone.as_slice());
        Ok(())
    }

    /// Ends every identity connection the selectors name, once each, after
    /// recording `blocks` (so that none of them can reconnect in between).
    /// Returns how many ended.
    pub fn kick(
        &self,
        selectors: &[Selector<'_>],
        blocks: Vec<(BlockScope, u64)>,
        why: &EndReason,
    ) -> usize {
        let mut r = self.inner.lock();
        for (scope, until) in blocks {
            r.blocks.block(scope, until);
        }
        let mut gone = Vec::new();
        for selector in selectors {
            for id in r.owners.all(*selector) {
                gone.extend(Self::remove_locked(&mut r, &id, Some(why), true));
            }
        }
        drop(r);
        self.directory.left(&gone);
        gone.len()
    }

    /// Asks every connection for a keep-alive comment.
    pub(crate) fn heartbeat(&self) {
        for c in self.inner.lock().by_id.iter() {
            c.0.outbox().heartbeat();
        }
    }

    /// Refuses new connections and tells every open one to end after what
    /// is queued for it; their presence closes with reason `shutdown`.
    pub(crate) fn shut_down(&self) {
        let mut r = self.inner.lock();
        r.stopping = true;
        for hold in r.owners.holds_mut() {
            if let Some(hold) = hold.take() {
                hold.close(Some(&EndReason::Shutdown));
            }
        }
        for c in r.by_id.iter() {
            c.0.outbox().shutdown();
        }
    }
}

impl Registration {
    /// The connection's own stream ends it for `why` (its token expired)
    /// and writes its own last words: it leaves the registry now, and its
    /// presence closes with that reason rather than `disconnected`.
    pub(crate) fn end(&self, why: &EndReason) {
        let mut r = self.registry.inner.lock();
        let gone = Connections::remove_locked(&mut r, &self.id, Some(why), false);
        drop(r);
        self.registry.directory.left(gone.as_slice());
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut r = self.registry.inner.lock();
        let gone = Connections::remove_locked(&mut r, &self.id, None, false);
        drop(r);
        self.registry.directory.left(gone.as_slice());
    }
}
