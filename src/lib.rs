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
//! | [`compat`] | the other seeds' APIs (sse-notification-service, …) as profiles over the native model, on the main listener under a prefix or on their own address |
//! | [`http`] | axum router, the one [`http::principal::Principal`] extractor, handlers, the JSON error type, CORS, the embedded dashboard (`dashboard/`), Prometheus `/metrics` and the dashboard's stats stream |
//! | [`tls`], [`serve`] | HTTPS (ACME or file certificates, HTTP/2, redirects); the accept loop behind both listeners: socket options, HTTP/1.1 + HTTP/2, connection caps and timeouts, graceful shutdown |
//! | [`presence`] | who is online: connection open/close → `user_online`/`device_offline`/… events with a grace period, and signed webhooks for them |
//! | [`identity`] | identity tokens: keys (secret, PEM, JWKS), verification into an `Identity` (app, user, device, topic selectors, expiry), minting |
//! | [`hub`] | topics, identity inboxes (app, user, device) and targeted sends, connections (one queue each, any number of streams) and their registry, resume and slow-consumer policy, heartbeats and shutdown |
//! | [`broker`] | where events travel: positions, history, fan-out to each following connection (a ring per stream that readers pull from); [`broker::LocalBroker`] in-process, [`broker::RedisBroker`] for a cluster over Redis |
//! | [`store`] | history logs and the persistent topic registry: memory, redb, sled |
//! | [`metrics`] | counters and the publish latency histogram behind `/api/v1/metrics`, `/metrics` and the dashboard |
//! | [`memory`] | gives freed heap back to the OS after a burst (glibc keeps it otherwise) |
//! | [`sse`] | the wire format, and nothing else |
//! | [`model`] | the shared vocabulary: topic ids, stream keys, positions, resume cursors, retention, the clock |
//! | [`readiness`], [`secret`] | named checks behind `/readyz`; tokens (generation, constant-time comparison, redaction) |
//!
//! # The path of one event
//!
//! `POST /api/v1/pubsubs/:id/events` → [`http::pubsubs::publish`] asks the
//! principal, validates the body → [`hub::Hub::publish`] names the topic's
//! stream → [`broker::Broker::publish`] assigns its position, encodes the SSE
//! frame once ([`sse::encode_event`]), appends it to history and to the
//! stream's ring of recent events ([`broker::Followers`]), and tells each
//! following connection that was waiting ([`broker::Outbox`]) → each
//! connection's [`hub::Subscription`] body pulls the shared `Bytes` and
//! writes it (on a
//! multi-topic connection, behind its own `id:`/`event:` line).
//! `POST /api/v1/send` is the same path on identities' inbox streams
//! ([`hub::Hub::send`]), and `GET /api/v1/stream` one connection on an
//! identity's inboxes and topics ([`hub::Hub::connect`]).
//!
//! [`Server`] binds and runs all of it; `main.rs` only parses the command line.

pub mod broker;
pub mod compat;
pub mod config;
pub mod http;
pub mod hub;
pub mod identity;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod presence;
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
    #[error(
        "cannot join the cluster (cluster.redis.url / SSER_CLUSTER_REDIS_URL = {url}): {source}"
    )]
    Cluster {
        url: String,
        source: broker::redis::ConnectError,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("identity tokens (identity.*): {0}")]
    Identity(#[from] identity::SetupError),
    #[error("presence webhooks (presence.webhooks.*): {0}")]
    Webhooks(#[from] presence::WebhookError),
    #[error("compatibility profiles (compat.*): {0}")]
    Compat(#[from] compat::CompatError),
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
    /// Identity tokens, when `identity.*` turns them on.
    identity: Option<Arc<identity::Tokens>>,
    /// Who is online; flushed at shutdown.
    presence: presence::PresenceTracker,
    /// Presence webhooks, when `presence.webhooks.urls` has any; drained at
    /// shutdown.
    webhooks: Option<Arc<presence::Webhooks>>,
    /// Presence across the cluster, on a member: drained at shutdown
    /// before the node leaves.
    cluster_presence: Option<Arc<presence::cluster::ClusterPresence>>,
    state: Arc<http::AppState>,
    /// The main listener's router: the API, with the compatibility
    /// profiles placed on it.
    app: axum::Router,
    /// The compatibility profiles' own listeners.
    compat: compat::Mounted,
    /// The cluster's broker, when `cluster.redis.url` makes this node a
    /// member: told at shutdown that the node leaves.
    cluster: Option<Arc<broker::RedisBroker>>,
    shutdown: CancellationToken,
}

impl Server {
    pub async fn bind(config: Config) -> Result<Server, StartError> {
        let addr = config.server.addr.0;
        let listener =
            crate::serve::listen(addr).map_err(|source| StartError::Bind { addr, source })?;
        let shutdown = CancellationToken::new();
        let metrics = Arc::new(Metrics::default());
        let readiness = Arc::new(Readiness::default());
        let disk = config.kv.enabled.0.then(|| disk_settings(&config));
        let path = config.kv.dsn.display().to_string();
        let local = broker::LocalBroker::open(disk)
            .await
            .map_err(|source| StartError::Store { path, source })?;
        let mut cluster = None;
        let advertised = config
            .cluster
            .advertise_addr
            .clone()
            .unwrap_or_else(|| local_addr(&listener, addr).to_string());
        let broker: Arc<dyn broker::Broker> = match redis_settings(&config, advertised) {
            None => local,
            Some(settings) => {
                let url = config::redacted_url(&settings.url);
                let redis = broker::RedisBroker::connect(
                    settings,
                    local,
                    metrics.clone(),
                    shutdown.child_token(),
                )
                .await
                .map_err(|source| StartError::Cluster { url, source })?;
                spawn_redis_readiness(redis.clone(), readiness.clone(), shutdown.child_token());
                cluster = Some(redis.clone());
                redis
            }
        };
        let hub = Hub::new(
            hub_settings(&config),
            broker,
            &static_topics(&config)?,
            metrics,
            shutdown.child_token(),
        )
        .await?;
        if let Some(redis) = &cluster {
            hub.attach_directory(redis.directory());
        }
        readiness.set("hub", true, "serving");
        let Presence {
            tracker: presence,
            webhooks,
            cluster: cluster_presence,
        } = start_presence(&config, &hub, cluster.as_ref(), shutdown.child_token()).await?;
        if let Some(redis) = &cluster
            && config.compat.notification_service.mount().enabled
        {
            compat::notification_service::producers::start(
                hub.clone(),
                redis,
                hub.metrics().clone(),
            );
        }
        let identity = match config.identity.is_on() {
            true => Some(
                identity::Tokens::start(
                    identity_settings(&config.identity),
                    shutdown.child_token(),
                )
                .await?,
            ),
            false => None,
        };
        let stats = http::stats::StatsFeed::start(
            hub.clone(),
            identity.is_some().then(|| presence.clone()),
            shutdown.child_token(),
        );
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
            presence: presence.clone(),
            identity: identity.clone().map(|tokens| http::IdentityState {
                tokens,
                cookie: config.identity.cookie.clone(),
                max_send_targets: usize::try_from(config.identity.max_send_targets.0)
                    .unwrap_or(usize::MAX),
            }),
        });
        let tls = match config.server.ssl.enabled.0 {
            true => Some(tls::Tls::bind(&tls_settings(&config), &readiness).await?),
            false => None,
        };
        let tls_addr = tls.as_ref().and_then(|t| t.local_addr().ok());
        let mut http = http_settings(&config);
        let mut compat = compat::mount(
            &compat::Context {
                state: state.clone(),
                shutdown: shutdown.clone(),
            },
            compat_profiles(&config, local_addr(&listener, addr))?,
            &http::paths(&http),
            addr,
        )?;
        http.cors_exempt = compat.main_cors_exempt();
        let app = http::layers(compat.nest_into(http::routes(state.clone(), &http)), &http);
        Ok(Server {
            config,
            listener,
            tls,
            tls_addr,
            hub,
            identity,
            presence,
            webhooks,
            cluster_presence,
            state,
            app,
            compat,
            cluster,
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

    /// The compatibility profiles served on listeners of their own
    /// (`compat.<profile>.addr`), by name (`compat::About::name`, e.g.
    /// `sse-notification-service`), with each listener's bound address.
    pub fn compat_addrs(&self) -> Vec<(&'static str, SocketAddr)> {
        self.compat.addrs()
    }

    /// Identity tokens, when configured (`identity.*`).
    pub fn identity(&self) -> Option<&Arc<identity::Tokens>> {
        self.identity.as_ref()
    }

    /// Serves until the shutdown token is cancelled, then: readiness goes
    /// false, the listener stops accepting, every stream is told and ended,
    /// open connections get `server.shutdownTimeout` to finish, and the store
    /// is flushed.
    pub async fn run(mut self) -> Result<(), StartError> {
        let app = self.app.clone();
        let settings = conn_settings(&self.config);
        tracing::info!(
            max_connections = settings.caps.total,
            max_connections_per_ip = settings.caps.per_ip,
            "connection limits"
        );
        let conns = serve::Connections::new(settings, self.hub.metrics().clone());
        let shutdown = self.shutdown.clone();
        let compat = std::mem::take(&mut self.compat).serve(
            &http_settings(&self.config),
            shutdown.clone(),
            conns.clone(),
        );
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
                    conns.clone(),
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
            conns,
        );
        let serve = tokio::spawn(async move {
            match tls_task {
                None => tokio::try_join!(plain, compat).map(|_| ()),
                Some(tls) => {
                    let tls = async { tls.await.map_err(std::io::Error::other)? };
                    tokio::try_join!(plain, tls, compat).map(|_| ())
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
        // The streams have ended: offlines still in their grace go out now
        // (reason `shutdown`), and the webhooks get the same bound to
        // deliver what is queued.
        let flushed = self.presence.shutdown();
        // In a cluster they go through the presence ledger first, before
        // the node leaves: once it has left, a survivor would clear its
        // presence as a dead node's (`node_lost`).
        if let Some(cluster_presence) = &self.cluster_presence
            && !cluster_presence
                .leave(self.config.server.shutdown_timeout.0)
                .await
        {
            tracing::warn!(
                "this node's presence is not all cleared in the cluster's Redis; a survivor clears the rest (node_lost)"
            );
        }
        // The other nodes stop counting this one now, not after its TTL.
        if let Some(cluster) = &self.cluster {
            cluster.leave().await;
        }
        if let Some(webhooks) = &self.webhooks
            && !webhooks.drain(self.config.server.shutdown_timeout.0).await
        {
            tracing::warn!(
                flushed,
                "presence webhooks still undelivered at shutdown were abandoned"
            );
        }
        // Every exit path after a start flushes, including a serve task that
        // ended on its own: acknowledged relaxed-mode writes must survive.
        if let Err(e) = self.hub.flush().await {
            tracing::error!(error = %e, "flushing the store at shutdown failed");
        }
        outcome
    }
}

/// What [`start_presence`] starts.
struct Presence {
    tracker: presence::PresenceTracker,
    webhooks: Option<Arc<presence::Webhooks>>,
    cluster: Option<Arc<presence::cluster::ClusterPresence>>,
}

/// Presence: the tracker fed by the registry's identity connections, and
/// its sinks (the presence stream, and the webhooks when configured). On a
/// cluster member the tracker's events go through the cluster's presence
/// ledger first, which passes on the cluster-wide ones, and go-sse-broker's
/// Redis channels are a sink too when its profile is on.
async fn start_presence(
    config: &Config,
    hub: &Arc<Hub>,
    cluster: Option<&Arc<broker::RedisBroker>>,
    shutdown: CancellationToken,
) -> Result<Presence, StartError> {
    let webhooks = webhook_settings(config)
        .map(|settings| presence::Webhooks::start(settings, hub.metrics().clone()))
        .transpose()?;
    let mut sinks: Vec<Arc<dyn presence::PresenceSink>> = vec![presence::stream::start(hub).await?];
    if let Some(webhooks) = &webhooks {
        sinks.push(webhooks.clone());
    }
    let mut settings = presence_settings(config);
    let Some(redis) = cluster else {
        let tracker = presence::PresenceTracker::new(settings, Arc::new(sinks));
        hub.connections().attach_presence(Arc::new(tracker.clone()));
        return Ok(Presence {
            tracker,
            webhooks,
            cluster: None,
        });
    };
    if config.compat.go_sse_broker.mount().enabled {
        let app = config
            .compat
            .go_sse_broker
            .app
            .clone()
            .unwrap_or_else(|| config.identity.default_app.clone());
        sinks.push(compat::go_sse_broker::presence::presence_channels(
            redis.clone(),
            app,
        ));
    }
    let lost = presence::cluster::LostNodeSettings {
        check_interval: config.cluster.node_check_interval.0,
        claim: config.cluster.node_ttl.0,
    };
    let cluster_presence = presence::cluster::ClusterPresence::start(
        redis.presence_ledger(),
        Arc::new(sinks),
        lost,
        hub.metrics().clone(),
        shutdown,
    );
    settings.node = Some(redis.node_id().to_string());
    let tracker = presence::PresenceTracker::new(settings, cluster_presence.clone());
    cluster_presence.attach(&tracker);
    hub.connections().attach_presence(Arc::new(tracker.clone()));
    Ok(Presence {
        tracker,
        webhooks,
        cluster: Some(cluster_presence),
    })
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
        admission: admission_settings(&config.identity),
        inbox_retention: inbox_retention(&config.identity.inbox),
    }
}

/// The registry's admission rules from `identity.takeover` and
/// `identity.limits.*` (`0`: no limit).
fn admission_settings(identity: &config::IdentityConfig) -> hub::AdmissionSettings {
    let limit = |n: config::Count| usize::try_from(n.0).unwrap_or(usize::MAX);
    let limits = &identity.limits;
    hub::AdmissionSettings {
        takeover: match identity.takeover {
            config::TakeoverMode::Takeover => hub::TakeoverPolicy::Takeover,
            config::TakeoverMode::Reject => hub::TakeoverPolicy::Reject,
        },
        max_connections_per_user: limit(limits.max_connections_per_user),
        max_connections_per_ip: limit(limits.max_connections_per_ip),
        max_streams_per_connection: limit(limits.max_streams_per_connection),
        takeover_guard: identity.takeover_guard.0,
    }
}

/// `identity.inbox`: a `maxAge` of `0` means no age limit.
fn inbox_retention(inbox: &config::InboxConfig) -> model::Retention {
    model::Retention {
        max_events: Some(inbox.max_events.0.max(1)),
        max_age: Some(inbox.max_age.0).filter(|d| !d.is_zero()),
        max_bytes: None,
    }
}

/// The presence tracker's settings from `presence.*`.
pub fn presence_settings(config: &Config) -> presence::PresenceSettings {
    presence::PresenceSettings {
        grace: config.presence.grace.0,
        node: None,
    }
}

/// The webhooks' settings from `presence.webhooks.*`; `None` when no URL
/// is configured. `Config::finish` has checked the URLs and the secret.
pub fn webhook_settings(config: &Config) -> Option<presence::WebhookSettings> {
    let w = &config.presence.webhooks;
    let secret = w.secret.clone().filter(|_| !w.urls.0.is_empty())?;
    Some(presence::WebhookSettings {
        urls: w.urls.0.clone(),
        secret,
        timeout: w.timeout.0,
        max_attempts: u32::try_from(w.max_attempts.0).unwrap_or(u32::MAX),
        max_age: w.max_age.0,
        backoff: w.backoff.0,
        max_backoff: w.max_backoff.0,
        queue: usize::try_from(w.queue.0).unwrap_or(usize::MAX),
        concurrency: usize::try_from(w.concurrency.0).unwrap_or(usize::MAX),
    })
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
        // Filled in by `compat::Mounted` for each listener.
        cors_exempt: Vec::new(),
    }
}

/// The identity layer's settings from `identity.*`. Algorithm names were
/// checked against `config::JWT_ALGORITHMS`, which lists only names
/// `identity::Algorithm` parses.
fn identity_settings(c: &config::IdentityConfig) -> identity::IdentitySettings {
    use identity::{Algorithm, JwksSettings, JwksSource, KeySettings};
    let alg = |name: &str| name.parse::<Algorithm>().ok();
    let jwks_source = match (&c.jwks.file, &c.jwks.url) {
        (Some(file), _) => Some(JwksSource::File(file.clone())),
        (None, Some(url)) => Some(JwksSource::Url(url.clone())),
        (None, None) => None,
    };
    identity::IdentitySettings {
        secret: c.secret.clone(),
        keys: c
            .keys
            .iter()
            .enumerate()
            .filter_map(|(i, k)| {
                Some(KeySettings {
                    label: format!("identity.keys[{i}]"),
                    alg: alg(&k.alg)?,
                    kid: k.kid.clone().filter(|kid| !kid.is_empty()),
                    public_key: k.public_key.clone().filter(|p| !p.trim().is_empty()),
                    private_key: k.private_key.clone().filter(|p| !p.is_empty()),
                })
            })
            .collect(),
        jwks: jwks_source.map(|source| JwksSettings {
            source,
            refresh_interval: c.jwks.refresh_interval.0,
            min_refresh_interval: c.jwks.min_refresh_interval.0,
            fetch_timeout: c.jwks.fetch_timeout.0,
        }),
        algorithms: c.algorithms.0.iter().filter_map(|a| alg(a)).collect(),
        audience: c.audience.0.clone(),
        leeway: c.leeway.0,
        require_exp: c.require_exp.0,
        default_app: c.default_app.clone(),
        claims: identity::ClaimNames {
            user: c.claims.user.clone(),
            app: c.claims.app.clone(),
            device: c.claims.device.clone(),
            topics: c.claims.topics.clone(),
        },
        default_ttl: c.mint.default_ttl.0,
        max_ttl: c.mint.max_ttl.0,
        mint_algorithm: c.mint.algorithm.as_deref().and_then(alg),
    }
}

/// The compatibility profiles from `compat.*` (each `None` when off).
/// `main_addr` is the main listener's bound address.
fn compat_profiles(config: &Config, main_addr: SocketAddr) -> Result<compat::Profiles, StartError> {
    let ns = &config.compat.notification_service;
    let gsb = &config.compat.go_sse_broker;
    Ok(compat::Profiles {
        notification_service: compat_enabled(
            ns.mount(),
            compat::notification_service::NotificationServiceSettings {
                ping_interval: ns.ping_interval.0,
            },
        ),
        go_sse_broker: compat_enabled(gsb.mount(), go_sse_broker_settings(config, main_addr)?),
        gosse: compat_enabled(config.compat.gosse.mount(), gosse_settings(config)),
    })
}

/// `compat.goSseBroker.*` (its `jwt.secret` was mapped onto
/// `identity.secret` when the configuration was loaded).
fn go_sse_broker_settings(
    config: &Config,
    main_addr: SocketAddr,
) -> Result<compat::go_sse_broker::GoSseBrokerSettings, StartError> {
    use compat::go_sse_broker::{AddrRange, GoSseBrokerSettings};
    let gsb = &config.compat.go_sse_broker;
    let unauthenticated_from = gsb
        .unauthenticated_from
        .0
        .iter()
        .map(|text| {
            AddrRange::parse(text).map_err(|why| {
                StartError::Config(config::ConfigError(format!(
                    "compat.goSseBroker.unauthenticatedFrom (SSER_COMPAT_GO_SSE_BROKER_UNAUTHENTICATED_FROM): {why}"
                )))
            })
        })
        .collect::<Result<_, _>>()?;
    let listens_on = gsb.mount().addr.unwrap_or(main_addr);
    Ok(GoSseBrokerSettings {
        app: gsb.app.clone(),
        token_ttl: gsb.token_ttl(),
        unauthenticated_from,
        instance_address: gsb
            .instance_address
            .clone()
            .unwrap_or_else(|| listens_on.to_string()),
        heartbeat_interval: gsb
            .heartbeat_interval()
            .unwrap_or(config.pubsub.tick_frequency.0),
        device_memory: match config.identity.inbox.max_age.0 {
            d if d.is_zero() => std::time::Duration::from_secs(7 * 24 * 3600),
            d => d,
        },
    })
}

/// The address `listener` is bound to (`configured` if it cannot say).
fn local_addr(listener: &TcpListener, configured: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(configured)
}

/// The goSSE profile's settings from `compat.gosse.*` (accounts already
/// hashed and checked by `config`).
fn gosse_settings(config: &Config) -> compat::gosse::GosseSettings {
    use compat::gosse::{Account, Role, SameSite};
    let g = &config.compat.gosse;
    compat::gosse::GosseSettings {
        app: g.app.clone(),
        accounts: g
            .accounts
            .iter()
            .map(|a| Account {
                username: a.username.clone(),
                password_hash: a.password_hash.clone(),
                role: match a.role {
                    config::GosseRole::Client => Role::Client,
                    config::GosseRole::Broadcaster => Role::Broadcaster,
                    config::GosseRole::Admin => Role::Admin,
                },
            })
            .collect(),
        allowed_origin: g.allowed_origin.clone(),
        token_ttl: g.token_ttl.0,
        cookie_secure: g.cookie_secure.0,
        cookie_same_site: match g.cookie_same_site {
            config::SameSite::Lax => SameSite::Lax,
            config::SameSite::Strict => SameSite::Strict,
            config::SameSite::None => SameSite::None,
        },
        type_topic_prefix: g.type_topic_prefix.clone(),
        max_types: usize::try_from(g.max_types.0).unwrap_or(usize::MAX),
    }
}

/// A profile with `settings`, placed by its `compat.<profile>` keys, when
/// they turn it on.
fn compat_enabled<S>(mount: config::ProfileMount, settings: S) -> Option<compat::Enabled<S>> {
    let placement = match mount.addr {
        Some(addr) => compat::Placement::Own { addr },
        None => compat::Placement::Main {
            prefix: mount.prefix,
        },
    };
    mount.enabled.then_some(compat::Enabled {
        placement,
        settings,
    })
}

/// The accept loop's settings from `server.*` (README, "Operations").
fn conn_settings(config: &Config) -> serve::ConnSettings {
    let server = &config.server;
    let total = match server.max_connections.0 {
        0 => serve::automatic_max_connections(),
        n => usize::try_from(n).unwrap_or(usize::MAX),
    };
    serve::ConnSettings {
        // Two heartbeats: a live client acknowledges at least those.
        user_timeout: (config.pubsub.tick_frequency.0 * 2).max(std::time::Duration::from_secs(10)),
        max_header_size: usize::try_from(server.max_header_size.0).unwrap_or(usize::MAX),
        handshake_timeout: server.handshake_timeout.0,
        header_read_timeout: server.header_read_timeout.0,
        request_body_timeout: server.request_body_timeout.0,
        connection_idle_timeout: server.connection_idle_timeout.0,
        caps: serve::Caps {
            total,
            per_ip: usize::try_from(server.max_connections_per_ip.0).unwrap_or(usize::MAX),
        },
        http2: serve::Http2Settings {
            keep_alive_interval: Some(server.http2.keep_alive_interval.0).filter(|d| !d.is_zero()),
            keep_alive_timeout: server.http2.keep_alive_timeout.0,
            max_concurrent_streams: u32::try_from(server.http2.max_concurrent_streams.0)
                .unwrap_or(u32::MAX),
        },
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

/// `cluster.redis.*`, when the node is a cluster member.
fn redis_settings(config: &Config, advertised_addr: String) -> Option<broker::RedisSettings> {
    let redis = &config.cluster.redis;
    redis.url.as_ref().map(|url| broker::RedisSettings {
        url: url.expose().to_string(),
        prefix: redis.prefix.clone(),
        wait_replicas: redis.wait_replicas.0,
        max_stream_length: redis.max_stream_length.0,
        timeout: redis.timeout.0,
        node_ttl: config.cluster.node_ttl.0,
        advertised_addr,
    })
}

/// Keeps the `redis` check of `/readyz` current: every second, whether
/// Redis answers and the node listens to it.
fn spawn_redis_readiness(
    redis: Arc<broker::RedisBroker>,
    readiness: Arc<Readiness>,
    shutdown: CancellationToken,
) {
    readiness.set("redis", true, "connected");
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            match redis.health().await {
                Ok(()) => readiness.set("redis", true, "connected"),
                Err(why) => readiness.set("redis", false, why),
            }
        }
    });
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
    fn every_configurable_jwt_algorithm_converts() {
        for name in config::JWT_ALGORITHMS {
            assert!(name.parse::<identity::Algorithm>().is_ok(), "{name}");
        }
    }

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
    fn webhook_settings_only_with_urls() {
        let mut config = Config::default();
        assert!(webhook_settings(&config).is_none());
        config.presence.webhooks.urls = config::StringList(vec!["https://h.example/".into()]);
        config.presence.webhooks.secret = Some(secret::Secret::new("s"));
        config.presence.webhooks.max_attempts = config::Count(3);
        let w = webhook_settings(&config).expect("on");
        assert_eq!((w.urls.len(), w.max_attempts, w.queue), (1, 3, 10_000));
        assert_eq!(presence_settings(&config).grace.as_secs(), 5);
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
