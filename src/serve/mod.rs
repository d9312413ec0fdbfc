//! The accept loop behind every listener, plain or TLS: TCP accept →
//! admission (connection caps) → socket options → an optional handshake
//! (TLS) → hyper-util's auto builder, which speaks HTTP/1.1 or HTTP/2 (ALPN
//! `h2` over TLS, prior knowledge in clear) and serves the axum router.
//!
//! One loop so both listeners behave the same: the same socket options, the
//! same limits on slow and silent clients, the same per-connection memory,
//! the same graceful shutdown (stop accepting, let open responses finish;
//! SSE streams end because the hub tells them to).
//!
//! The limits (README, "Operations") bound what a client can hold without
//! being served: a handshake, a request head or body, an idle connection, a
//! share of the connection slots, never a stream being served. [`registry`]
//! counts and caps connections, [`conn`] runs one connection's timers,
//! [`body`] puts the request body under a deadline, [`refuse`] turns
//! connections away (also when the process is out of file descriptors).
//! `lib.rs` turns configuration into [`ConnSettings`]; this module never
//! reads `Config`.

mod body;
mod conn;
mod refuse;
pub mod registry;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, Refusal};
pub use registry::{Caps, Registry};

/// What turns an accepted TCP stream into the byte stream HTTP runs on.
pub trait Handshake: Clone + Send + Sync + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Whether the listener speaks plain HTTP, so a refused connection can
    /// be told why in an HTTP response.
    const PLAIN_HTTP: bool;

    /// `None` drops the connection (a failed or finished handshake). The
    /// accept loop bounds it with `handshake_timeout`.
    fn handshake(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
    ) -> impl Future<Output = Option<Self::Io>> + Send;
}

/// Plain HTTP: the TCP stream as it is.
#[derive(Clone, Copy)]
pub struct Plain;

impl Handshake for Plain {
    type Io = TcpStream;
    const PLAIN_HTTP: bool = true;

    async fn handshake(&self, tcp: TcpStream, _: SocketAddr) -> Option<TcpStream> {
        Some(tcp)
    }
}

/// What every connection of every listener gets.
#[derive(Debug, Clone, Copy)]
pub struct ConnSettings {
    /// A peer that leaves sent data unacknowledged this long is cut by the
    /// kernel (TCP_USER_TIMEOUT).
    pub user_timeout: Duration,
    /// The read buffer, and so the largest request head (HTTP/2: header
    /// list).
    pub max_header_size: usize,
    /// From accept to the first complete request head.
    pub handshake_timeout: Duration,
    /// HTTP/1.1: each later request head, from when the connection is ready
    /// for it.
    pub header_read_timeout: Duration,
    /// From a request head to the end of its body.
    pub request_body_timeout: Duration,
    /// No request in progress this long: the connection is closed.
    pub connection_idle_timeout: Duration,
    pub caps: Caps,
    pub http2: Http2Settings,
}

#[derive(Debug, Clone, Copy)]
pub struct Http2Settings {
    /// `None`: no keep-alive pings.
    pub keep_alive_interval: Option<Duration>,
    pub keep_alive_timeout: Duration,
    pub max_concurrent_streams: u32,
}

/// Connections the kernel may queue for `accept` (Linux caps it at
/// `net.core.somaxconn`, 4,096 by default). tokio's default of 1,024
/// overflows when thousands of clients connect at once (a flood, or every
/// subscriber reconnecting after a restart); an overflow drops the client's
/// handshake and costs it a 1 s, then 3 s, retransmission.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds a listener with the backlog above (and `SO_REUSEADDR`, as tokio's
/// own `bind` sets, so a restart can rebind at once).
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The automatic `server.maxConnections`: the open-file limit less a
/// reserve (a sixteenth, 32 to 1,024) for the store, logs, certificates and
/// the listeners, so the server's own connections never exhaust it.
pub fn automatic_max_connections() -> usize {
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024)
        .min(1 << 24);
    let reserve = (soft / 16).clamp(32, 1024);
    soft.saturating_sub(reserve).max(1) as usize
}

/// What every listener shares: settings, the connection registry (one set
/// of caps for both listeners) and the refusal logs.
pub struct Connections {
    settings: ConnSettings,
    registry: Arc<Registry>,
    refusal_logs: [refuse::Throttle; Refusal::ALL.len()],
    eviction_log: refuse::Throttle,
    accept_error_log: refuse::Throttle,
}

impl Connections {
    pub fn new(settings: ConnSettings, metrics: Arc<Metrics>) -> Arc<Connections> {
        Arc::new(Connections {
            settings,
            registry: Arc::new(Registry::new(settings.caps, metrics)),
            refusal_logs: Default::default(),
            eviction_log: Default::default(),
            accept_error_log: Default::default(),
        })
    }

    pub fn settings(&self) -> &ConnSettings {
        &self.settings
    }

    fn metrics(&self) -> &Arc<Metrics> {
        self.registry.metrics()
    }

    /// Counts, logs (throttled) and closes a refused connection.
    fn refuse(&self, tcp: TcpStream, peer: SocketAddr, why: Refusal, plain_http: bool) {
        self.metrics().connections.refused(why);
        refuse::refuse(tcp, why, plain_http);
        let Some(more) = self.refusal_logs[why as usize].hit() else {
            return;
        };
        let caps = self.settings.caps;
        match why {
            Refusal::PerIp => tracing::warn!(
                client = %registry::client_key(peer.ip()),
                refused_since_last_line = more,
                "refusing connections: the client address has server.maxConnectionsPerIp = {} open",
                caps.per_ip
            ),
            Refusal::Total => tracing::warn!(
                refused_since_last_line = more,
                "refusing connections: server.maxConnections = {} are open and none is idle",
                caps.total
            ),
            Refusal::FdLimit => tracing::error!(
                refused_since_last_line = more,
                open = self.registry.open(),
                "out of file descriptors: refusing new connections; raise the open-file limit (ulimit -n) or lower server.maxConnections"
            ),
        }
    }

    /// Out of descriptors. Linux reports that before looking at the
    /// backlog, so first find out, with the spare descriptor, whether a
    /// client is waiting at all. If one is: as at `server.maxConnections`,
    /// the longest-idle connection makes room for it (it keeps the spare's
    /// descriptor until that one closes), or with none idle it is refused at
    /// once instead of waiting in the backlog.
    fn at_descriptor_limit<H: Handshake>(
        &self,
        listener: &TcpListener,
        spare: &mut refuse::Spare,
    ) -> AtLimit {
        if !spare.release() {
            return AtLimit::NoSpare;
        }
        let next = futures_util::FutureExt::now_or_never(listener.accept());
        let (tcp, peer) = match next {
            // Nobody waiting (tokio saw EAGAIN and will wait for the next).
            None => {
                spare.restore();
                return AtLimit::Nobody;
            }
            Some(Err(e)) => {
                spare.restore();
                return match refuse::out_of_descriptors(&e) {
                    true => AtLimit::NoSpare,
                    false => AtLimit::Nobody,
                };
            }
            Some(Ok(pair)) => pair,
        };
        match self.make_room::<H>(tcp, peer, spare) {
            Some((tcp, peer)) => AtLimit::Admit(tcp, peer),
            None => AtLimit::Refused,
        }
    }

    /// A client holds a descriptor while none is left for the spare: the
    /// longest-idle connection makes room for it, or it is refused (its
    /// descriptor then goes back to the spare).
    fn make_room<H: Handshake>(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        spare: &mut refuse::Spare,
    ) -> Option<(TcpStream, SocketAddr)> {
        if self.registry.evict_one() {
            if let Some(more) = self.eviction_log.hit() {
                tracing::warn!(
                    evicted_since_last_line = more,
                    open = self.registry.open(),
                    "out of file descriptors: closing the longest-idle connections to admit new ones; raise the open-file limit (ulimit -n) or lower server.maxConnections"
                );
            }
            return Some((tcp, peer));
        }
        self.refuse(tcp, peer, Refusal::FdLimit, H::PLAIN_HTTP);
        spare.restore();
        None
    }
}

/// What [`Connections::at_descriptor_limit`] did.
enum AtLimit {
    /// No client was waiting.
    Nobody,
    /// A client was waiting and an idle connection made room for it.
    Admit(TcpStream, SocketAddr),
    /// A client was waiting and was refused.
    Refused,
    /// The spare descriptor is in use too: wait for one to close.
    NoSpare,
}

/// The HTTP/1.1 and HTTP/2 connection settings, shared by every connection.
fn builder(s: &ConnSettings) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    // The read buffer's cap is most of an idle connection's memory: hyper's
    // default lets it grow to 16 KiB on the first read; capped at 8 KiB, an
    // idle subscriber costs 14.6 KB instead of 20.2 KB (9,000 streams,
    // measured). hyper starts the header read timeout whenever the
    // connection is ready for a request head, idle keep-alive included.
    builder
        .http1()
        .timer(TokioTimer::new())
        .max_buf_size(s.max_header_size)
        .header_read_timeout(s.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(s.http2.keep_alive_interval)
        .keep_alive_timeout(s.http2.keep_alive_timeout)
        .max_concurrent_streams(s.http2.max_concurrent_streams)
        .max_header_list_size(u32::try_from(s.max_header_size).unwrap_or(u32::MAX));
    builder
}

/// Back-off between failed accepts that could not refuse anyone.
const FIRST_BACKOFF: Duration = Duration::from_millis(1);
const LONGEST_BACKOFF: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `shutdown`, then waits for open
/// connections to finish (the caller bounds that wait).
pub async fn serve<H: Handshake>(
    listener: TcpListener,
    app: Router,
    handshake: H,
    shutdown: CancellationToken,
    conns: Arc<Connections>,
) -> std::io::Result<()> {
    let settings = conns.settings;
    // Turn every handler into its final route once. axum::serve would do this
    // for each connection, deep-cloning every layer (~12 KB per idle SSE
    // connection, measured).
    let shared = Arc::new(conn::Shared {
        app: app.with_state(()),
        builder: Arc::new(builder(&settings)),
        settings,
        metrics: conns.metrics().clone(),
        registry: conns.registry.clone(),
        stopping: conn::Stopping::default(),
    });
    // Every connection task holds a sender; when all are gone, all are closed.
    let (alive, mut all_closed) = mpsc::channel::<()>(1);
    let mut spare = refuse::Spare::reserve();
    let mut backoff = FIRST_BACKOFF;
    loop {
        // After the spare was lent to a client, the next free descriptor
        // goes back to it before any new connection (a no-op while held).
        spare.restore();
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok((tcp, peer)) => {
                backoff = FIRST_BACKOFF;
                // The spare is still lent out (an evicted connection had
                // not closed at the top of the loop), so this client took
                // the descriptor it was waiting for. Admitted as is, it
                // would leave none to refuse the next client with, who
                // would then wait in the backlog for good: treat it as
                // arriving at the limit.
                spare.restore();
                if spare.is_lent() {
                    match conns.make_room::<H>(tcp, peer, &mut spare) {
                        Some(pair) => pair,
                        None => continue,
                    }
                } else {
                    (tcp, peer)
                }
            }
            Err(e) if refuse::out_of_descriptors(&e) => {
                match conns.at_descriptor_limit::<H>(&listener, &mut spare) {
                    AtLimit::Admit(tcp, peer) => (tcp, peer),
                    AtLimit::Nobody | AtLimit::Refused => continue,
                    AtLimit::NoSpare => {
                        // An evicted connection is closing, or something
                        // else holds the descriptors: retry shortly, never
                        // spin; if it lasts, make room.
                        if backoff >= LONGEST_BACKOFF / 16 {
                            conns.registry.evict_one();
                        }
                        if let Some(more) = conns.refusal_logs[Refusal::FdLimit as usize].hit() {
                            tracing::error!(
                                waited_since_last_line = more,
                                open = conns.registry.open(),
                                "out of file descriptors: new connections wait; raise the open-file limit (ulimit -n) or lower server.maxConnections"
                            );
                        }
                        tokio::select! {
                            () = shutdown.cancelled() => break,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(LONGEST_BACKOFF);
                        continue;
                    }
                }
            }
            Err(e) => {
                // A connection reset before it was accepted, or the kernel
                // short of memory: not fatal, but never spin on it.
                if let Some(more) = conns.accept_error_log.hit() {
                    tracing::warn!(error = %e, failed_since_last_line = more, "accept failed");
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(LONGEST_BACKOFF);
                continue;
            }
        };
        let (slot, evicted) = match conns.registry.admit(peer) {
            Ok(admitted) => admitted,
            Err(why) => {
                conns.refuse(tcp, peer, why, H::PLAIN_HTTP);
                continue;
            }
        };
        if evicted && let Some(more) = conns.eviction_log.hit() {
            tracing::info!(
                evicted_since_last_line = more,
                "at server.maxConnections = {}: closing the longest-idle connections to admit new ones",
                settings.caps.total
            );
        }
        // From accept to the first request head (see `conn`).
        let deadline = Instant::now() + settings.handshake_timeout;
        // Small SSE writes must not wait for Nagle; and a peer that stops
        // acknowledging data is cut by the kernel, so a vanished client (or
        // one stalled for good) cannot pin a connection.
        let _ = tcp.set_nodelay(true);
        let _ = socket2::SockRef::from(&tcp).set_tcp_user_timeout(Some(settings.user_timeout));
        let handshake = handshake.clone();
        let shared = shared.clone();
        let alive = alive.clone();
        // What this task holds lives as long as the connection: the peer's
        // address is in the slot, the deadline is computed here, nothing
        // else is captured (this is per-connection memory).
        tokio::spawn(async move {
            let _alive = alive;
            let io = tokio::select! {
                biased;
                // Nothing but eviction wakes a connection with no request.
                () = slot.conn.wake.notified() => None,
                () = shared.stopping.stopped() => None,
                io = tokio::time::timeout_at(deadline, handshake.handshake(tcp, slot.conn.peer())) => {
                    io.unwrap_or_else(|_| {
                        shared.metrics.connections.cut(crate::metrics::Cut::Handshake);
                        None
                    })
                }
            };
            if let Some(io) = io {
                conn::serve(io, &slot, deadline, &shared).await;
            }
            drop(slot);
        });
    }
    drop(listener);
    shared.stopping.stop();
    drop(alive);
    let _ = all_closed.recv().await;
    Ok(())
}
