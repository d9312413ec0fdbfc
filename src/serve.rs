//! The accept loop behind every listener, plain or TLS: TCP accept → socket
//! options → an optional handshake (TLS) → hyper-util's auto builder, which
//! speaks HTTP/1.1 or HTTP/2 (ALPN `h2` over TLS, prior knowledge in clear)
//! and serves the axum router.
//!
//! One loop so both listeners behave the same: the same socket options, the
//! same limits on slow clients, the same per-connection memory, the same
//! graceful shutdown (stop accepting, let open responses finish; SSE streams
//! end because the hub tells them to).
//!
//! Every request carries its connection's peer address as axum's
//! `ConnectInfo<SocketAddr>` (read by `http::remote`): the registry lists
//! it and limits identity connections per IP with it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// What turns an accepted TCP stream into the byte stream HTTP runs on.
pub trait Handshake: Clone + Send + Sync + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// `None` drops the connection (a failed or finished handshake).
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
    /// The read buffer, and so the largest request head (see
    /// `server.maxHeaderSize`).
    pub max_header_size: usize,
}

/// Serves `app` on `listener` until `shutdown`, then waits for open
/// connections to finish (the caller bounds that wait).
pub async fn serve<H: Handshake>(
    listener: TcpListener,
    app: Router,
    handshake: H,
    shutdown: CancellationToken,
    settings: ConnSettings,
) -> std::io::Result<()> {
    // Turn every handler into its final route once. axum::serve would do this
    // for each connection, deep-cloning every layer (~12 KB per idle SSE
    // connection, measured).
    let app: Router = app.with_state(());
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    // With a timer, hyper's 30 s limit on reading HTTP/1 request headers
    // applies, so a client trickling bytes cannot hold a connection. The read
    // buffer's cap is most of an idle connection's memory: hyper's default
    // lets it grow to 16 KiB on the first read; capped at 8 KiB, an idle
    // subscriber costs 14.6 KB instead of 20.2 KB (9,000 streams, measured).
    builder
        .http1()
        .timer(TokioTimer::new())
        .max_buf_size(settings.max_header_size);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    loop {
        let (tcp, peer) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // accept: not fatal; pause so the loop does not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Small SSE writes must not wait for Nagle; and a peer that stops
        // acknowledging data is cut by the kernel, so a vanished client (or
        // one stalled for good) cannot pin a connection.
        let _ = tcp.set_nodelay(true);
        let _ = socket2::SockRef::from(&tcp).set_tcp_user_timeout(Some(settings.user_timeout));
        let watcher = graceful.watcher();
        let handshake = handshake.clone();
        let app = app.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let Some(io) = handshake.handshake(tcp, peer).await else {
                return;
            };
            // A thin wrapper (the router is shared, not rebuilt): the peer
            // goes into each request's extensions.
            let app =
                tower::ServiceExt::map_request(app, move |mut req: axum::extract::Request<_>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req
                });
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(app));
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
