//! sser: a Server-Sent Events pub/sub server, API-compatible with SSER.
//!
//! # The map
//!
//! | module | role |
//! |---|---|
//! | [`config`] | figment: defaults → `_config/base.yaml` → `_config/$APP_ENV.yaml` → `.env` → environment |
//! | [`http`] | axum router, auth extractors, handlers, the JSON error type, CORS |
//! | [`hub`] | topics, publishing, subscriptions, fan-out, order, slow-consumer policy |
//! | [`sse`] | the wire format, and nothing else |
//! | [`store`] | the `Store`/`TopicLog` traits and the in-memory history |
//! | [`metrics`] | counters behind `/api/v1/metrics` |
//! | [`readiness`] | named checks behind `/readyz` |
//! | [`secret`] | tokens: generation, constant-time comparison, redaction |
//!
//! # The path of one event
//!
//! `POST /api/v1/pubsubs/:id/events` → [`http::pubsubs::publish`] validates the
//! body → [`hub::Hub::publish`] assigns the topic's next sequence, encodes the
//! SSE frame once ([`sse::encode_event`]), appends it to the topic's history
//! and sends it on the topic's broadcast channel → each subscriber's
//! [`hub::Subscription`] stream yields the shared `Bytes` to its HTTP body.
//!
//! [`Server`] binds and runs all of it; `main.rs` only parses the command line.

pub mod config;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod readiness;
pub mod secret;
pub mod sse;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::hub::{Hub, HubSettings};
use crate::metrics::Metrics;
use crate::readiness::Readiness;

/// Why the server could not start (or stopped with an error).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("cannot listen on {addr} (server.addr / PORT): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the store: {0}")]
    Hub(#[from] hub::HubError),
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// A bound, ready-to-run server. Tests build one on `127.0.0.1:0` and call
/// [`Server::run`] in a task; `main` does the same with signals attached.
pub struct Server {
    config: Config,
    listener: TcpListener,
    hub: Arc<Hub>,
    state: Arc<http::AppState>,
    shutdown: CancellationToken,
}

impl Server {
    pub async fn bind(config: Config) -> Result<Server, StartError> {
        let addr = config.server.addr.0;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let shutdown = CancellationToken::new();
        let metrics = Arc::new(Metrics::default());
        let readiness = Arc::new(Readiness::default());
        let hub = Hub::new(
            HubSettings::from_config(&config),
            None,
            &config.pubsub.static_pub_subs,
            metrics,
            shutdown.child_token(),
        )?;
        readiness.set("hub", true, "serving");
        let state = Arc::new(http::AppState {
            hub: hub.clone(),
            // `Config::finish` guarantees both tokens exist.
            api_token: config
                .pubsub
                .api_access_token
                .clone()
                .unwrap_or_else(secret::Secret::generate),
            metrics_token: config
                .pubsub
                .metrics_access_token
                .clone()
                .unwrap_or_else(secret::Secret::generate),
            readiness,
        });
        Ok(Server {
            config,
            listener,
            hub,
            state,
            shutdown,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.config.server.addr.0)
    }

    /// Cancel this token to shut the server down gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Serves until the shutdown token is cancelled, then: readiness goes
    /// false, the listener stops accepting, every stream is told and ended,
    /// open connections get `server.shutdownTimeout` to finish, and the store
    /// is flushed.
    pub async fn run(self) -> Result<(), StartError> {
        let app = http::router(self.state.clone(), &self.config);
        // Small SSE writes must not wait for Nagle; and a peer that stops
        // acknowledging data for two heartbeats is cut by the kernel, so a
        // vanished client (or one stalled for good) cannot pin a connection.
        let user_timeout = (self.config.pubsub.tick_frequency.0 * 2).max(Duration::from_secs(10));
        let listener = self.listener.tap_io(move |tcp| {
            let _ = tcp.set_nodelay(true);
            let _ = socket2::SockRef::from(&*tcp).set_tcp_user_timeout(Some(user_timeout));
        });
        let shutdown = self.shutdown.clone();
        // `into_make_service` finalizes the router once; serving a bare
        // `Router` rebuilds (deep-clones) every route for each connection,
        // which cost ~12 KB per idle SSE connection.
        let serve = axum::serve(listener, app.into_make_service())
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future();
        let mut serve = tokio::spawn(serve);

        tokio::select! {
            result = &mut serve => {
                // The server stopped on its own: that is an error.
                return match result {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(StartError::Serve(e)),
                    Err(e) => Err(StartError::Serve(std::io::Error::other(e))),
                };
            }
            () = shutdown.cancelled() => {}
        }
        self.state.readiness.set("shutdown", false, "shutting down");
        tracing::info!("shutting down: ending streams");
        let bound = self.config.server.shutdown_timeout.0;
        match tokio::time::timeout(bound, &mut serve).await {
            Ok(_) => tracing::info!("all connections closed"),
            Err(_) => {
                serve.abort();
                tracing::warn!(
                    "connections still open after {}; closing them",
                    humantime::format_duration(bound)
                );
            }
        }
        if let Err(e) = self.hub.flush().await {
            tracing::error!(error = %e, "flushing the store at shutdown failed");
        }
        Ok(())
    }
}

/// Cancels `token` on SIGTERM or SIGINT.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = ctrl_c => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("signal received");
        token.cancel();
    });
}
