//! Who is connected: open connections in total and per client address, and
//! the queue of idle ones, so the accept loop can admit, refuse or make room.
//!
//! Why eviction: connections that never send a request would otherwise hold
//! every slot until their handshake deadline, and nobody, `/healthz`
//! included, could get in. As nginx does with its "reusable" connections, a
//! connection with no request in progress (none sent yet, or idle between
//! requests) is cheap for its client to open again, so at
//! `server.maxConnections` the longest-idle one is closed to admit the
//! newcomer. A connection with a request in progress, which includes every
//! SSE stream being served, is never evicted.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::metrics::{Cut, Metrics, Refusal};

/// Set in [`ConnState::state`] once the registry chose the connection for
/// eviction; the low bits count requests in progress.
const EVICTED: u32 = 1 << 31;

/// What one connection shares with the registry, its service and its
/// response bodies.
#[derive(Debug)]
pub struct ConnState {
    /// Requests in progress (low 31 bits) and [`EVICTED`].
    state: AtomicU32,
    /// Woken when the last request in progress ends, and on eviction.
    pub(super) wake: Notify,
    /// A first request arrived (the handshake phase is over).
    served: AtomicBool,
    /// It speaks HTTP/2.
    h2: AtomicBool,
    /// Its entry in the idle queue; 0 when it has none. Written only under
    /// the registry's lock (read outside it only by `Registry::mark_busy`).
    idle_key: AtomicU64,
    /// The client's address (kept here, once, rather than in each of the
    /// connection's futures: this is per-connection memory).
    peer: SocketAddr,
}

impl ConnState {
    fn new(peer: SocketAddr) -> ConnState {
        ConnState {
            state: AtomicU32::new(0),
            wake: Notify::new(),
            served: AtomicBool::new(false),
            h2: AtomicBool::new(false),
            idle_key: AtomicU64::new(0),
            peer,
        }
    }

    pub(super) fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The address the per-client cap counts it under.
    fn client(&self) -> IpAddr {
        client_key(self.peer.ip())
    }

    /// A request started: counted until its response body is dropped. The
    /// first one in progress wakes the connection's task, which then drops
    /// its handshake or idle timer at once rather than when it fires (a
    /// stream holds its connection busy for hours: this is per-connection
    /// memory).
    pub(super) fn request_started(&self, http2: bool) {
        let before = self.state.fetch_add(1, Ordering::AcqRel);
        self.served.store(true, Ordering::Release);
        if http2 {
            self.h2.store(true, Ordering::Relaxed);
        }
        if before & !EVICTED == 0 {
            self.wake.notify_one();
        }
    }

    /// A request ended (its response was sent, or abandoned).
    pub(super) fn request_ended(&self) {
        let before = self.state.fetch_sub(1, Ordering::AcqRel);
        if before & !EVICTED == 1 {
            self.wake.notify_one();
        }
    }

    pub(super) fn in_progress(&self) -> u32 {
        self.state.load(Ordering::Acquire) & !EVICTED
    }

    pub(super) fn served(&self) -> bool {
        self.served.load(Ordering::Acquire)
    }

    pub(super) fn is_http2(&self) -> bool {
        self.h2.load(Ordering::Relaxed)
    }

    pub(super) fn evicted(&self) -> bool {
        self.state.load(Ordering::Acquire) & EVICTED != 0
    }

    /// Marks it evicted if, and only if, no request is in progress.
    fn try_evict(&self) -> bool {
        let won = self
            .state
            .compare_exchange(0, EVICTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if won {
            self.wake.notify_one();
        }
        won
    }
}

/// The two caps (`server.maxConnections`, `server.maxConnectionsPerIp`).
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub total: usize,
    /// 0: no limit.
    pub per_ip: usize,
}

#[derive(Debug, Default)]
struct Inner {
    open: usize,
    per_ip: HashMap<IpAddr, u32>,
    /// Connections with no request in progress, oldest idle first. A
    /// connection's task takes its entry out when it sees it busy; until
    /// then (or if it goes idle again or closes first) a busy one's entry
    /// is skipped when reached. At most one entry per open connection.
    idle: BTreeMap<u64, Arc<ConnState>>,
    next_key: u64,
    /// Evicted connections whose tasks have not closed them yet: they still
    /// hold a descriptor each.
    closing: usize,
}

impl Inner {
    fn queue_idle(&mut self, conn: &Arc<ConnState>) {
        self.forget_idle(conn);
        self.next_key += 1;
        conn.idle_key.store(self.next_key, Ordering::Relaxed);
        self.idle.insert(self.next_key, conn.clone());
    }

    fn forget_idle(&mut self, conn: &ConnState) {
        let key = conn.idle_key.swap(0, Ordering::Relaxed);
        if key != 0 {
            self.idle.remove(&key);
        }
    }

    /// Evicts the longest-idle connection; false when every one is busy.
    fn evict_oldest(&mut self) -> bool {
        while let Some((_, conn)) = self.idle.pop_first() {
            conn.idle_key.store(0, Ordering::Relaxed);
            if conn.try_evict() {
                self.closing += 1;
                return true;
            }
        }
        false
    }
}

/// The registry both listeners share: one count, one set of caps.
#[derive(Debug)]
pub struct Registry {
    caps: Caps,
    inner: Mutex<Inner>,
    metrics: Arc<Metrics>,
}

/// An admitted connection's place in the registry; dropping it gives the
/// place back.
#[derive(Debug)]
pub struct Slot {
    registry: Arc<Registry>,
    pub(super) conn: Arc<ConnState>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.release(&self.conn);
    }
}

impl Registry {
    pub fn new(caps: Caps, metrics: Arc<Metrics>) -> Registry {
        Registry {
            caps,
            inner: Mutex::new(Inner::default()),
            metrics,
        }
    }

    pub fn caps(&self) -> Caps {
        self.caps
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Admits a connection from `peer`, evicting the longest-idle one when
    /// at the total cap (then the flag is true), or says why not.
    pub fn admit(self: &Arc<Self>, peer: SocketAddr) -> Result<(Slot, bool), Refusal> {
        let conn = Arc::new(ConnState::new(peer));
        let client = conn.client();
        let mut inner = self.inner.lock();
        let from_client = inner.per_ip.get(&client).copied().unwrap_or(0);
        if self.caps.per_ip > 0 && from_client as usize >= self.caps.per_ip {
            return Err(Refusal::PerIp);
        }
        let evicted = inner.open >= self.caps.total;
        if evicted {
            // An evicted connection's task closes it a moment later; until
            // then the count runs over the cap. Under a flood faster than
            // those tasks run, refuse instead of evicting ever more, so the
            // overshoot stays small next to the descriptor reserve.
            if inner.closing >= self.max_closing() || !inner.evict_oldest() {
                return Err(Refusal::Total);
            }
            self.metrics.connections.cut(Cut::Evicted);
        }
        inner.open += 1;
        *inner.per_ip.entry(client).or_insert(0) += 1;
        // A new connection has no request in progress: it is idle, and the
        // newest, so the last to be evicted.
        inner.queue_idle(&conn);
        drop(inner);
        self.metrics.connections.opened();
        let slot = Slot {
            registry: self.clone(),
            conn,
        };
        Ok((slot, evicted))
    }

    /// The connection has no request in progress since now.
    pub(super) fn mark_idle(&self, conn: &Arc<ConnState>) {
        self.inner.lock().queue_idle(conn);
    }

    /// The connection has a request in progress since now: it leaves the
    /// idle queue (a stream stays busy for hours, and its entry would be
    /// per-connection memory). Its own task is the only one that queues it,
    /// so a zero key, read without the lock, means there is nothing to do.
    pub(super) fn mark_busy(&self, conn: &ConnState) {
        if conn.idle_key.load(Ordering::Relaxed) != 0 {
            self.inner.lock().forget_idle(conn);
        }
    }

    /// Evicts the longest-idle connection, to free a descriptor.
    pub fn evict_one(&self) -> bool {
        let evicted = self.inner.lock().evict_oldest();
        if evicted {
            self.metrics.connections.cut(Cut::Evicted);
        }
        evicted
    }

    /// How many evicted connections may be closing at once: 1/32 of the
    /// cap, 16 to 512 (512 at the automatic cap under `ulimit -n 20000`,
    /// whose descriptor reserve is 1,024).
    fn max_closing(&self) -> usize {
        (self.caps.total / 32).clamp(16, 512)
    }

    fn release(&self, conn: &ConnState) {
        let mut inner = self.inner.lock();
        if conn.evicted() {
            inner.closing = inner.closing.saturating_sub(1);
        }
        inner.forget_idle(conn);
        inner.open = inner.open.saturating_sub(1);
        let client = conn.client();
        if let Some(n) = inner.per_ip.get_mut(&client) {
            *n -= 1;
            if *n == 0 {
                inner.per_ip.remove(&client);
            }
        }
        drop(inner);
        self.metrics.connections.closed();
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.inner.lock().open
    }
}

/// The address a per-client cap counts under: IPv4 as it is (IPv4-mapped
/// IPv6 too); IPv6 by its /64, the block one subscriber usually gets, so a
/// client cannot step around the cap by rotating the low bits.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(total: usize, per_ip: usize) -> Arc<Registry> {
        Arc::new(Registry::new(
            Caps { total, per_ip },
            Arc::new(Metrics::default()),
        ))
    }

    #[test]
    fn per_ip_cap_refuses_and_frees() {
        let r = registry(10, 2);
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:2".parse().unwrap();
        let s1 = r.admit(a).unwrap().0;
        let _s2 = r.admit(a).unwrap().0;
        assert_eq!(r.admit(a).unwrap_err(), Refusal::PerIp);
        let _s3 = r.admit(b).unwrap().0;
        drop(s1);
        let _s4 = r.admit(a).unwrap().0;
        assert_eq!(r.open(), 3);
    }

    #[test]
    fn total_cap_evicts_the_longest_idle_never_a_busy_one() {
        let r = registry(2, 0);
        let ip: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let busy = r.admit(ip).unwrap().0;
        busy.conn.request_started(false);
        let idle = r.admit(ip).unwrap().0;
        let newcomer = r.admit(ip).unwrap().0;
        assert!(idle.conn.evicted());
        assert!(!busy.conn.evicted());
        // The evicted one is still counted until its task drops it.
        newcomer.conn.request_started(false);
        assert_eq!(r.admit(ip).unwrap_err(), Refusal::Total);
        drop(idle);
        // Still at the cap, and every open connection is busy.
        assert_eq!(r.admit(ip).unwrap_err(), Refusal::Total);
        busy.conn.request_ended();
        r.mark_idle(&busy.conn);
        let _next = r.admit(ip).unwrap().0;
        assert!(busy.conn.evicted());
    }

    #[test]
    fn evictions_still_closing_are_bounded() {
        let r = registry(16, 0);
        let ip: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let mut slots: Vec<Slot> = (0..32).map(|_| r.admit(ip).unwrap().0).collect();
        // 16 evicted, none closed yet: no more evictions until one closes.
        assert!(slots[..16].iter().all(|s| s.conn.evicted()));
        assert_eq!(r.admit(ip).unwrap_err(), Refusal::Total);
        slots.remove(0);
        let (_, evicted) = r.admit(ip).unwrap();
        assert!(evicted);
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let a = client_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = client_key("2001:db8:1:2:bbbb::2".parse().unwrap());
        let c = client_key("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mapped = client_key("::ffff:192.0.2.1".parse().unwrap());
        assert_eq!(mapped, "192.0.2.1".parse::<IpAddr>().unwrap());
    }
}
