//! sser: a Server-Sent Events pub/sub server, API-compatible with SSER.
//!
//! # The map
//!
//! Each layer imports only the ones above it in this table's lower part
//! (`model` is the bottom); only this file, `main.rs` and [`config`] read
//! the configuration, turning it into each component's own settings type.
//!
//! | module | role |
//! |---|---|
//! | [`config`] | figment: defaults → `_config/base.yaml` → `_config/$APP_ENV.yaml` → `.env` → environment, checked section by section |
//! | [`http`] | axum router, the one [`http::principal::Principal`] extractor, handlers, the JSON error type, CORS, the embedded dashboard (`dashboard/`), Prometheus `/metrics` and the dashboard's stats stream |
//! | [`tls`], [`serve`] | HTTPS (ACME or file certificates, HTTP/2, redirects); the accept loop behind both listeners: socket options, HTTP/1.1 + HTTP/2, graceful shutdown |
//! | [`hub`] | topics, connections (one queue each, any number of streams) and their registry, resume and slow-consumer policy, heartbeats and shutdown |
//! | [`broker`] | where events travel: positions, history, fan-out into each following connection's queue; [`broker::LocalBroker`] in-process |
//! | [`store`] | history logs and the persistent topic registry: memory, redb, sled |
//! | [`metrics`] | counters and the publish latency histogram behind `/api/v1/metrics`, `/metrics` and the dashboard |
//! | [`sse`] | the wire format, and nothing else |
//! | [`model`] | the shared vocabulary: topic ids, stream keys, positions, resume cursors, retention, the clock |
//! | [`readiness`], [`secret`] | named checks behind `/readyz`; tokens (generation, constant-time comparison, redaction) |
//!
//! # The path of one event
//!
//! `POST /api/v1/pubsubs/:id/events` → [`http::pubsubs::publish`] asks the
//! principal, validates the body → [`hub::Hub::publish`] names the topic's
//! stream → [`broker::Broker::publish`] assigns its position, encodes the SSE
//! frame once ([`sse::encode_event`]), appends it to history and queues the
//! shared `Bytes` into the [`broker::Outbox`] of every connection following
//! the stream → each connection's [`hub::Subscription`] body writes it (on a
//! multi-topic connection, behind its own `id:`/`event:` line).
//!
//! [`Server`] binds and runs all of it; `main.rs` only parses the command line.

pub mod broker;
pub mod config;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod model;
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

use crate::config::{Config, DurabilityMode, KvEngine, KvRetention};
use crate::hub::{Hub, HubSettings, StaticTopic};
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
        let disk = config.kv.enabled.0.then(|| disk_settings(&config));
        let path = config.kv.dsn.display().to_string();
        let broker = broker::LocalBroker::open(disk)
            .await
            .map_err(|source| StartError::Store { path, source })?;
        let hub = Hub::new(
            hub_settings(&config),
            broker,
            &static_topics(&config)?,
            metrics,
            shutdown.child_token(),
        )
        .await?;
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
            max_json_depth: config.server.max_json_depth.0 as usize,
        });
        let tls = match config.server.ssl.enabled.0 {
            true => Some(tls::Tls::bind(&tls_settings(&config), &readiness).await?),
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
        let app = http::router(self.state.clone(), &http_settings(&self.config));
        let settings = conn_settings(&self.config);
        let shutdown = self.shutdown.clone();
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
        let serve = tokio::spawn(async move {
            match tls_task {
                None => plain.await,
                Some(tls) => {
                    let tls = async { tls.await.map_err(std::io::Error::other)? };
                    tokio::try_join!(plain, tls).map(|_| ())
                }
            }
        });

        let outcome = serve_until_stopped(
            serve,
            tls_abort,
            &self.shutdown,
            &self.state.readiness,
            self.config.server.shutdown_timeout.0,
        )
        .await;
        // Every exit path after a start flushes, including a serve task that
        // ended on its own: acknowledged relaxed-mode writes must survive.
        if let Err(e) = self.hub.flush().await {
            tracing::error!(error = %e, "flushing the store at shutdown failed");
        }
        outcome
    }
}

/// Waits for shutdown (or for serving to fail), then gives open
/// connections `server.shutdownTimeout` to finish.
async fn serve_until_stopped(
    mut serve: tokio::task::JoinHandle<std::io::Result<()>>,
    tls_abort: Option<tokio::task::AbortHandle>,
    shutdown: &CancellationToken,
    readiness: &Readiness,
    bound: std::time::Duration,
) -> Result<(), StartError> {
    // Cancelling shutdown also ends the serve task, often at once (no
    // open connections), so both branches can be ready together: the
    // cancellation decides, never the order in which they were polled.
    tokio::select! {
        biased;
        () = shutdown.cancelled() => {}
        result = &mut serve => {
            if !shutdown.is_cancelled() {
                // Serving stopped without being asked to: an error.
                return match result {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(StartError::Serve(e)),
                    Err(e) => Err(StartError::Serve(std::io::Error::other(e))),
                };
            }
        }
    }
    readiness.set("shutdown", false, "shutting down");
    tracing::info!("shutting down: ending streams");
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
    Ok(())
}

// Configuration → each component's own settings. Only this file (with
// `main.rs` and `config/`) reads `Config`, so no component depends on how
// settings are spelt in YAML or the environment.

/// The hub's settings from `pubsub.*` and `kv.retention`.
pub fn hub_settings(config: &Config) -> HubSettings {
    HubSettings {
        history_size: config.pubsub.history_size.0,
        subscriber_buffer: config.pubsub.subscriber_buffer.0 as usize,
        tick: config.pubsub.tick_frequency.0,
        retry: config.pubsub.retry.0,
        persistent_retention: persistent_retention(&config.kv.retention),
        max_topics_per_connection: config.pubsub.max_topics_per_connection.0 as usize,
    }
}

/// `kv.retention`: `0` means no limit of that kind.
fn persistent_retention(kv: &KvRetention) -> model::Retention {
    model::Retention {
        max_events: Some(kv.max_events.0).filter(|&n| n > 0),
        max_age: Some(kv.max_age.0).filter(|d| !d.is_zero()),
        max_bytes: Some(kv.max_bytes.0).filter(|&n| n > 0),
    }
}

/// `pubsub.staticPubSubs` (ids already checked by `Config`).
fn static_topics(config: &Config) -> Result<Vec<StaticTopic>, StartError> {
    config
        .pubsub
        .static_pub_subs
        .iter()
        .enumerate()
        .map(|(i, st)| {
            let id = model::TopicId::parse(&st.id).map_err(|e| {
                StartError::Config(config::ConfigError(format!(
                    "pubsub.staticPubSubs[{i}].id {e}"
                )))
            })?;
            Ok(StaticTopic {
                id,
                name: st.name.clone(),
                token: st.token.clone(),
            })
        })
        .collect()
}

/// The persistent store's settings from `kv.*`.
fn disk_settings(config: &Config) -> store::disk::DiskSettings {
    let kv = &config.kv;
    store::disk::DiskSettings {
        dir: kv.dsn.clone(),
        engine: match kv.engine {
            KvEngine::Redb => store::disk::EngineKind::Redb,
            KvEngine::Sled => store::disk::EngineKind::Sled,
        },
        durability: match kv.durability {
            DurabilityMode::Sync => store::disk::Durability::Sync,
            DurabilityMode::Relaxed => store::disk::Durability::Relaxed {
                interval: kv.flush_interval.0,
            },
        },
    }
}

/// The router's settings from `server.*`.
fn http_settings(config: &Config) -> http::HttpSettings {
    http::HttpSettings {
        dashboard: config.server.dashboard.0,
        max_request_body_size: config.server.max_request_body_size.0 as usize,
        cors_allowed_origins: config.server.cors.allowed_origins.0.clone(),
    }
}

/// What every accepted connection gets.
fn conn_settings(config: &Config) -> serve::ConnSettings {
    serve::ConnSettings {
        // Two heartbeats: a live client acknowledges at least those.
        user_timeout: (config.pubsub.tick_frequency.0 * 2).max(std::time::Duration::from_secs(10)),
        max_header_size: config.server.max_header_size.0 as usize,
    }
}

/// `server.sslAddr` and `server.ssl.*`.
fn tls_settings(config: &Config) -> tls::TlsSettings {
    let ssl = &config.server.ssl;
    tls::TlsSettings {
        addr: config.server.ssl_addr.0,
        domain_names: ssl.domain_name.0.clone(),
        letsencrypt_email: ssl.letsencrypt_email.clone(),
        cache_dir: ssl.cache_dir.clone(),
        acme_directory: ssl.acme_directory.clone(),
        acme_http01: ssl.acme_challenge.trim() == "http-01",
        acme_ca_root: ssl.acme_ca_root.clone(),
        cert_file: ssl.cert_file.clone(),
        key_file: ssl.key_file.clone(),
        reload_interval: ssl.reload_interval.0,
        api_over_http: ssl.api_over_http.0,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persistent_retention_reads_zero_as_no_limit() {
        let kv = KvRetention {
            max_events: config::Count(0),
            max_age: config::Span(std::time::Duration::from_secs(3600)),
            max_bytes: config::Bytes(1 << 20),
        };
        let r = persistent_retention(&kv);
        assert_eq!(r.max_events, None);
        assert_eq!(r.max_age, Some(std::time::Duration::from_secs(3600)));
        assert_eq!(r.max_bytes, Some(1 << 20));
    }

    #[test]
    fn disk_settings_follow_kv() {
        let mut config = Config::default();
        config.kv.engine = KvEngine::Sled;
        config.kv.durability = DurabilityMode::Relaxed;
        config.kv.flush_interval = config::Span(std::time::Duration::from_millis(50));
        let settings = disk_settings(&config);
        assert_eq!(settings.engine, store::disk::EngineKind::Sled);
        assert_eq!(
            settings.durability,
            store::disk::Durability::Relaxed {
                interval: std::time::Duration::from_millis(50)
            }
        );
        assert_eq!(settings.dir, config.kv.dsn);
    }
}
