//! The TLS accept loop: TCP accept → TLS handshake (with a deadline) →
//! hyper-util's auto builder, which speaks HTTP/2 or HTTP/1.1 as ALPN chose,
//! serving the same axum router as the plain listener. Graceful shutdown
//! stops accepting, sends HTTP/2 GOAWAY / closes idle HTTP/1 connections, and
//! waits for open responses (SSE streams end when the hub shuts down).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::ACME_TLS_ALPN;

/// A client that opens a connection and says nothing is cut after this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    shutdown: CancellationToken,
    user_timeout: Duration,
) -> std::io::Result<()> {
    // Turn every handler into its final `Route` once (what axum::serve does
    // per connection); otherwise each request would rebuild its route.
    let app: Router = app.with_state(());
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    // With a timer, hyper's 30 s limit on reading HTTP/1 request headers
    // applies, so a client trickling bytes cannot hold a connection.
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let builder = std::sync::Arc::new(builder);
    loop {
        let (tcp, peer) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors or a connection reset before
                    // accept: not fatal; pause so the loop does not spin.
                    tracing::warn!(error = %e, "TLS accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // The same socket options as the plain listener (see `Server::run`).
        let _ = tcp.set_nodelay(true);
        let _ = socket2::SockRef::from(&tcp).set_tcp_user_timeout(Some(user_timeout));
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        let app = app.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let Some(tls) = handshake(&acceptor, tcp, peer).await else {
                return;
            };
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), TowerToHyperService::new(app));
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "TLS connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let mut tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake refused");
            return None;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return None;
        }
    };
    if tls.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) {
        // A tls-alpn-01 validation: the handshake itself was the answer.
        tracing::info!(%peer, "ACME tls-alpn-01 validation answered");
        let _ = tls.shutdown().await;
        return None;
    }
    Some(tls)
}
