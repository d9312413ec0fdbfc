//! sser: a Server-Sent Events pub/sub server, API-compatible with SSER.
//!
//! # The map
//!
//! | module | role |
//! |---|---|
//! | [`config`] | figment: defaults → `_config/base.yaml` → `_config/$APP_ENV.yaml` → `.env` → environment |
//! | [`http`] | axum router, auth extractors, handlers, the JSON error type, CORS, the embedded dashboard (`dashboard/`), Prometheus `/metrics` and the dashboard's stats stream |
//! | [`hub`] | topics, publishing, subscriptions, fan-out, order, slow-consumer policy |
//! | [`sse`] | the wire format, and nothing else |
//! | [`store`] | the `Store`/`TopicLog` traits and the in-memory history |
//! | [`memory`] | gives freed heap back to the OS after a burst (glibc keeps it otherwise) |
//! | [`metrics`] | counters and the publish latency histogram behind `/api/v1/metrics`, `/metrics` and the dashboard |
//! | [`readiness`] | named checks behind `/readyz` |
//! | [`secret`] | tokens: generation, constant-time comparison, redaction |
//! | [`tls`] | HTTPS: ACME (Let's Encrypt) or file certificates, HTTP/2, redirects |
//! | [`serve`] | the accept loop behind both listeners: socket options, HTTP/1.1 + HTTP/2, graceful shutdown |
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
pub mod memory;
pub mod metrics;
pub mod readiness;
pub mod secret;
pub mod serve;
pub mod sse;
pub mod store;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

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
    #[error("cannot open the persistent store (kv.dsn / SSER_KV_DSN = {path}): {source}")]
    Store {
        path: String,
        source: store::StoreError,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// A bound, ready-to-run server. Tests build one on `127.0.0.1:0` and call
/// [`Server::run`] in a task; `main` does the same with signals attached.
pub struct Server {
    config: Config,
    listener: TcpListener,
    /// The HTTPS listener, when `server.ssl.enabled`.
    tls: Option<tls::Tls>,
    tls_addr: Option<SocketAddr>,
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
        let store: Option<Arc<dyn store::Store>> = if config.kv.enabled.0 {
            let settings = config.kv.disk_settings();
            let path = settings.dir.display().to_string();
            // Opening may read the whole registry: keep it off the runtime.
            let opened =
                tokio::task::spawn_blocking(move || store::disk::DiskStore::open(settings))
                    .await
                    .map_err(|e| store::StoreError::Io(format!("store open task failed: {e}")))
                    .and_then(|r| r);
            let disk = opened.map_err(|source| StartError::Store { path, source })?;
            tracing::info!(
                engine = disk.settings().engine.name(),
                durability = ?disk.settings().durability,
                "persistent store open"
            );
            Some(disk)
        } else {
            None
        };
        let hub = Hub::new(
            HubSettings::from_config(&config),
            store,
            &config.pubsub.static_pub_subs,
            metrics,
            shutdown.child_token(),
        )?;
        readiness.set("hub", true, "serving");
        let stats = http::stats::StatsFeed::start(hub.clone(), shutdown.child_token());
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
            readiness: readiness.clone(),
            stats,
            prometheus: http::prometheus::PrometheusSettings {
                open: config.metrics.open.0,
                per_topic: config.metrics.per_topic.0,
            },
        });
        let tls = match config.server.ssl.enabled.0 {
            true => Some(tls::Tls::bind(&config, &readiness).await?),
            false => None,
        };
        let tls_addr = tls.as_ref().and_then(|t| t.local_addr().ok());
        Ok(Server {
            config,
            listener,
            tls,
            tls_addr,
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

    /// The bound HTTPS address, when TLS is enabled.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
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
    pub async fn run(mut self) -> Result<(), StartError> {
        let app = http::router(self.state.clone(), &self.config);
        let settings = serve::ConnSettings::from_config(&self.config);
        let shutdown = self.shutdown.clone();
        memory::spawn_trimmer(shutdown.child_token());
        // With TLS on, the API moves to the TLS listener and the plain one
        // serves what `tls::redirect` describes.
        let (plain_app, tls_task) = match self.tls.take() {
            Some(tls) => {
                let plain = tls.plain_router(app.clone());
                let task = tls.start(
                    app,
                    self.state.readiness.clone(),
                    shutdown.clone(),
                    settings,
                );
                (plain, Some(task))
            }
            None => (app, None),
        };
        let tls_abort = tls_task.as_ref().map(|t| t.abort_handle());
        let plain = serve::serve(
            self.listener,
            plain_app,
            serve::Plain,
            shutdown.clone(),
            settings,
        );
        let mut serve = tokio::spawn(async move {
            match tls_task {
                None => plain.await,
                Some(tls) => {
                    let tls = async { tls.await.map_err(std::io::Error::other)? };
                    tokio::try_join!(plain, tls).map(|_| ())
                }
            }
        });

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
                if let Some(tls) = &tls_abort {
                    tls.abort();
                }
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
