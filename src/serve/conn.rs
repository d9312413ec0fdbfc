//! One admitted connection from handshake to close, and the limits that
//! apply to it on the way:
//!
//! - **handshake**: from accept to the first complete request head (TLS,
//!   protocol detection, HTTP/2 preface, request line and headers) within
//!   `server.handshakeTimeout`, or it is dropped. hyper-util's protocol
//!   detection and HTTP/2 have no such deadline of their own.
//! - **idle**: with no request in progress for
//!   `server.connectionIdleTimeout` it is closed gracefully (HTTP/2 gets a
//!   GOAWAY). A request is in progress from its head until its response body
//!   is sent or abandoned, so an SSE stream keeps its connection busy however
//!   quiet it is: limits bound handshakes and requests, never streams.
//! - **eviction**: while idle, the registry may pick it to make room.
//! - **shutdown**: graceful; open responses may finish.
//!
//! Later HTTP/1.1 request heads are bounded by hyper's header read timeout,
//! HTTP/2 peers by keep-alive pings, request bodies by [`super::body`].
//!
//! Every request carries its connection's peer address as axum's
//! `ConnectInfo<SocketAddr>` (read by `http::remote`): the hub's registry
//! lists it and limits identity connections per IP with it.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use super::ConnSettings;
use super::body::{DeadlineBody, InProgress, TrackedBody};
use super::registry::{ConnState, Slot};
use crate::metrics::{Cut, Metrics};

/// Where a connection is in its life, as far as its timers care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request yet.
    Handshake,
    /// No request in progress.
    Idle,
    /// At least one request in progress.
    Busy,
    /// Told to close (shutdown or idle); waiting for it to finish.
    Closing,
}

/// What every connection task of one accept loop shares.
pub struct Shared {
    pub app: Router,
    pub builder: Arc<Builder<TokioExecutor>>,
    pub settings: ConnSettings,
    pub metrics: Arc<Metrics>,
    pub registry: Arc<super::Registry>,
    pub stopping: Stopping,
}

/// The server's shutdown as connection tasks watch it. A task's wait
/// leaves its waker with the `Notify` once, on its first poll, and on
/// every later wake (a streaming connection's task wakes for every event it
/// writes) only reads the flag: a line nobody writes until shutdown.
/// `CancellationToken::cancelled()` takes two locks shared by every
/// connection on every poll, so its lines moved between cores per event.
#[derive(Default)]
pub struct Stopping {
    stopped: AtomicBool,
    notify: Notify,
}

impl Stopping {
    /// Tells every connection task (the accept loop calls it once, when
    /// the server's shutdown token is cancelled).
    pub fn stop(&self) {
        // The flag first: a task woken below must find it set.
        self.stopped.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Completes once [`Stopping::stop`] was called.
    pub async fn stopped(&self) {
        // Made before the flag is read: a `stop` in between completes it.
        let mut notified = pin!(self.notify.notified());
        let mut registered = false;
        poll_fn(|cx| {
            if self.stopped.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            if !registered {
                registered = true;
                return notified.as_mut().poll(cx);
            }
            Poll::Pending
        })
        .await;
    }
}

/// Serves one connection whose handshake finished, until it closes or a
/// limit closes it. `handshake_deadline` is when the handshake deadline
/// (started at accept) passes.
pub async fn serve<I>(io: I, slot: &Slot, handshake_deadline: Instant, shared: &Arc<Shared>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn_state = &slot.conn;
    // Two pointers: what a request needs beyond them (the router, the body
    // deadline, the peer's address) is shared or in `ConnState`, not copied
    // into every connection's future.
    let service = Service {
        shared: shared.clone(),
        conn: conn_state.clone(),
    };
    let mut conn = pin!(
        shared
            .builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
    );
    let settings = &shared.settings;
    let mut phase = Phase::Handshake;
    // Boxed and dropped while busy: most connections are streams being
    // served, and they need no timer (this is per-connection memory).
    let mut timer = Some(Box::pin(tokio::time::sleep_until(handshake_deadline)));
    loop {
        let next = match phase {
            Phase::Closing => Phase::Closing,
            _ if !conn_state.served() => Phase::Handshake,
            _ if conn_state.in_progress() == 0 => Phase::Idle,
            _ => Phase::Busy,
        };
        if next == Phase::Idle && phase != Phase::Idle {
            let deadline = Instant::now() + settings.connection_idle_timeout;
            timer = Some(Box::pin(tokio::time::sleep_until(deadline)));
            // Idle since now: the last in line for eviction.
            shared.registry.mark_idle(conn_state);
        }
        if next == Phase::Busy && phase != Phase::Busy {
            timer = None;
            shared.registry.mark_busy(conn_state);
        }
        phase = next;
        tokio::select! {
            biased;
            result = conn.as_mut() => {
                if let Err(e) = result {
                    note_error(&*e, conn_state, &shared.metrics);
                }
                return;
            }
            () = conn_state.wake.notified() => {
                if conn_state.evicted() {
                    tracing::debug!(peer = %conn_state.peer(), "idle connection closed to make room");
                    return;
                }
            }
            () = shared.stopping.stopped(), if phase != Phase::Closing => {
                if phase == Phase::Handshake {
                    return;
                }
                conn.as_mut().graceful_shutdown();
                phase = Phase::Closing;
                // The caller bounds the whole shutdown; no timer here.
                timer = None;
            }
            () = expiry(&mut timer) => match phase {
                // Re-check: a request may have started since the last look.
                Phase::Handshake if !conn_state.served() => {
                    shared.metrics.connections.cut(Cut::Handshake);
                    tracing::debug!(peer = %conn_state.peer(), "no request within server.handshakeTimeout; closed");
                    return;
                }
                Phase::Idle if conn_state.in_progress() == 0 => {
                    shared.metrics.connections.cut(Cut::Idle);
                    conn.as_mut().graceful_shutdown();
                    phase = Phase::Closing;
                    // A peer that ignores the GOAWAY gets as long as a new
                    // connection would, then is dropped.
                    let deadline = Instant::now() + settings.handshake_timeout;
                    timer = Some(Box::pin(tokio::time::sleep_until(deadline)));
                }
                Phase::Closing => return,
                // A request started since: the loop looks again.
                _ => timer = None,
            },
        }
    }
}

/// Completes when the timer, if there is one, expires.
async fn expiry(timer: &mut Option<Pin<Box<Sleep>>>) {
    match timer {
        Some(sleep) => sleep.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Counts hyper's own timeouts (HTTP/1.1 header read, HTTP/2 keep-alive)
/// and logs the rest at debug: a client going away is not news.
fn note_error(e: &(dyn std::error::Error + 'static), conn: &ConnState, metrics: &Metrics) {
    let timed_out = e
        .downcast_ref::<hyper::Error>()
        .is_some_and(hyper::Error::is_timeout);
    if timed_out {
        metrics.connections.cut(if conn.is_http2() {
            Cut::KeepAlive
        } else {
            Cut::RequestHead
        });
    }
    tracing::debug!(peer = %conn.peer(), error = %e, "connection ended with an error");
}

/// The router as hyper sees it: each request counted in progress until its
/// response body is done, its body under a deadline.
#[derive(Clone)]
struct Service {
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
}

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        // The client's address, for `http::remote`.
        req.extensions_mut().insert(ConnectInfo(self.conn.peer()));
        let request = InProgress::start(&self.conn, req.version() == hyper::Version::HTTP_2);
        let timeout = self.shared.settings.request_body_timeout;
        let metrics = self.shared.metrics.clone();
        let req = req.map(|body| axum::body::Body::new(DeadlineBody::new(body, timeout, metrics)));
        let app = self.shared.app.clone();
        Box::pin(async move {
            let response = app.oneshot(req).await?;
            Ok(response.map(|body| TrackedBody::new(body, request)))
        })
    }
}
