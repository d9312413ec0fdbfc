//! Configuration: built-in defaults → `_config/base.yaml` →
//! `_config/${APP_ENV}.yaml` → `.env` → environment, later sources winning.
//!
//! YAML keys and environment names are SSER's where they mean the same thing,
//! so an SSER deployment's `_config` folder and `.env` keep working (including
//! `${VAR:default}` placeholders in YAML). Unlike SSER, environment values are
//! taken literally and a bad value stops start-up with a message that names
//! the key. `ENV_VARS` is the one table of environment names; the README's
//! configuration table mirrors it.

pub mod values;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Yaml};
use figment::value::{Dict, Value};
use serde::{Deserialize, Serialize};

use crate::secret::Secret;
use crate::store::disk::{DiskSettings, Durability, EngineKind};
pub use values::{Bytes, Count, Flag, ListenAddr, Span};

/// Environment variable → configuration key. SSER's names first.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("PORT", "server.addr"),
    ("SSLPORT", "server.sslAddr"),
    ("SSER_API_ACCESS_TOKEN", "pubsub.apiAccessToken"),
    ("SSER_METRICS_ACCESS_TOKEN", "pubsub.metricsAccessToken"),
    ("SSER_PERSISTENT_STORE_ENABLED", "kv.enabled"),
    ("SSER_SSL_ENABLED", "server.ssl.enabled"),
    ("SSER_DOMAIN_NAME", "server.ssl.domainName"),
    ("SSER_LETSENCRYPT_EMAIL", "server.ssl.letsencryptEmail"),
    // SSER's own (misspelt) name, kept as an alias.
    ("SSER_LETSENCYRPT_EMAIL", "server.ssl.letsencryptEmail"),
    ("SSER_SSL_CACHE_DIR", "server.ssl.cacheDir"),
    ("SSER_ACME_DIRECTORY", "server.ssl.acmeDirectory"),
    ("SSER_ACME_CHALLENGE", "server.ssl.acmeChallenge"),
    ("SSER_ACME_CA_ROOT", "server.ssl.acmeCaRoot"),
    ("SSER_SSL_CERT_FILE", "server.ssl.certFile"),
    ("SSER_SSL_KEY_FILE", "server.ssl.keyFile"),
    ("SSER_SSL_RELOAD_INTERVAL", "server.ssl.reloadInterval"),
    ("SSER_SSL_API_OVER_HTTP", "server.ssl.apiOverHttp"),
    ("SSER_KV_DSN", "kv.dsn"),
    ("SSER_KV_ENGINE", "kv.engine"),
    ("SSER_KV_DURABILITY", "kv.durability"),
    ("SSER_KV_FLUSH_INTERVAL", "kv.flushInterval"),
    ("SSER_KV_RETENTION_MAX_EVENTS", "kv.retention.maxEvents"),
    ("SSER_KV_RETENTION_MAX_AGE", "kv.retention.maxAge"),
    ("SSER_KV_RETENTION_MAX_BYTES", "kv.retention.maxBytes"),
    ("SSER_CORS_ALLOWED_ORIGINS", "server.cors.allowedOrigins"),
    ("SSER_MAX_REQUEST_BODY_SIZE", "server.maxRequestBodySize"),
    ("SSER_MAX_HEADER_SIZE", "server.maxHeaderSize"),
    ("SSER_SHUTDOWN_TIMEOUT", "server.shutdownTimeout"),
    ("SSER_HANDSHAKE_TIMEOUT", "server.handshakeTimeout"),
    ("SSER_HEADER_READ_TIMEOUT", "server.headerReadTimeout"),
    ("SSER_REQUEST_BODY_TIMEOUT", "server.requestBodyTimeout"),
    (
        "SSER_CONNECTION_IDLE_TIMEOUT",
        "server.connectionIdleTimeout",
    ),
    ("SSER_MAX_CONNECTIONS", "server.maxConnections"),
    ("SSER_MAX_CONNECTIONS_PER_IP", "server.maxConnectionsPerIp"),
    (
        "SSER_HTTP2_KEEP_ALIVE_INTERVAL",
        "server.http2.keepAliveInterval",
    ),
    (
        "SSER_HTTP2_KEEP_ALIVE_TIMEOUT",
        "server.http2.keepAliveTimeout",
    ),
    (
        "SSER_HTTP2_MAX_CONCURRENT_STREAMS",
        "server.http2.maxConcurrentStreams",
    ),
    ("SSER_TICK_FREQUENCY", "pubsub.tickFrequency"),
    ("SSER_RETRY", "pubsub.retry"),
    ("SSER_HISTORY_SIZE", "pubsub.historySize"),
    ("SSER_SUBSCRIBER_BUFFER", "pubsub.subscriberBuffer"),
    ("SSER_LOG", "log.level"),
    ("SSER_LOG_FORMAT", "log.format"),
    ("SSER_DASHBOARD_ENABLED", "server.dashboard"),
    ("SSER_METRICS_OPEN", "metrics.open"),
    ("SSER_METRICS_PER_TOPIC", "metrics.perTopic"),
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// `APP_ENV`: `development` (default), `production`, or any name with a
    /// matching `_config/<name>.yaml`. Set from the environment only.
    #[serde(skip)]
    pub app_env: String,
    /// Tokens generated at start-up because none were configured
    /// (development only); printed once so the operator can use them.
    #[serde(skip)]
    pub generated_tokens: Vec<(&'static str, Secret)>,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub pubsub: PubSubConfig,
    #[serde(default)]
    pub kv: KvConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServerConfig {
    /// Plain HTTP listener. A bare port listens on all interfaces.
    pub addr: ListenAddr,
    /// HTTPS listener, used when `ssl.enabled`.
    pub ssl_addr: ListenAddr,
    /// Largest accepted request body; larger ones get 413.
    pub max_request_body_size: Bytes,
    /// Each connection's read buffer, and so the limit on a request head
    /// (request line and headers; larger ones get 431). It is the biggest
    /// part of what an idle subscriber costs, so it stays small; hyper needs
    /// at least 8 KiB.
    pub max_header_size: Bytes,
    /// How long a graceful shutdown may take before open connections are cut.
    pub shutdown_timeout: Span,
    /// From accept to a new connection's first complete request head: TLS
    /// handshake, HTTP/2 preface and request line and headers included. A
    /// client that connects and says nothing is cut after this.
    pub handshake_timeout: Span,
    /// HTTP/1.1: a later request's head must arrive within this once the
    /// connection is ready for it, so it is also the keep-alive idle limit.
    pub header_read_timeout: Span,
    /// A request body must arrive in full within this of its head (a body
    /// trickled to hold the connection is cut with 408).
    pub request_body_timeout: Span,
    /// A connection with no request in progress (HTTP/2: no open stream) is
    /// closed after this. Streams being served are requests in progress:
    /// they are never cut for being quiet.
    pub connection_idle_timeout: Span,
    /// Connections open at once on both listeners; `0` means automatic (the
    /// open-file limit less a reserve). At the limit a new connection closes
    /// the longest-idle one, or is refused when none is idle.
    pub max_connections: Count,
    /// Connections open at once from one client address (IPv6: one /64);
    /// `0` means no limit. Behind a reverse proxy every connection comes
    /// from the proxy: use 0 there.
    pub max_connections_per_ip: Count,
    pub http2: Http2Config,
    pub cors: CorsConfig,
    pub ssl: SslConfig,
    /// Serve the dashboard at `/`. It holds no data of its own: everything
    /// it shows needs the metrics or API token.
    pub dashboard: Flag,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: ListenAddr("0.0.0.0:8889".parse().expect("literal address")),
            ssl_addr: ListenAddr("0.0.0.0:8888".parse().expect("literal address")),
            max_request_body_size: Bytes(1 << 20),
            max_header_size: Bytes(8 << 10),
            shutdown_timeout: Span(std::time::Duration::from_secs(10)),
            handshake_timeout: Span(std::time::Duration::from_secs(10)),
            header_read_timeout: Span(std::time::Duration::from_secs(10)),
            request_body_timeout: Span(std::time::Duration::from_secs(30)),
            connection_idle_timeout: Span(std::time::Duration::from_secs(60)),
            max_connections: Count(0),
            max_connections_per_ip: Count(1000),
            http2: Http2Config::default(),
            cors: CorsConfig::default(),
            ssl: SslConfig::default(),
            dashboard: Flag(true),
        }
    }
}

/// HTTP/2 connections (cleartext prior knowledge, or ALPN `h2` over TLS).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Http2Config {
    /// A PING is sent after this long without a frame from the client;
    /// `0` turns pings off.
    pub keep_alive_interval: Span,
    /// A client that does not answer a PING within this is cut.
    pub keep_alive_timeout: Span,
    /// Streams (requests, SSE subscriptions) one connection may have open.
    pub max_concurrent_streams: Count,
}

impl Default for Http2Config {
    fn default() -> Self {
        Http2Config {
            keep_alive_interval: Span(std::time::Duration::from_secs(30)),
            keep_alive_timeout: Span(std::time::Duration::from_secs(20)),
            max_concurrent_streams: Count(100),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CorsConfig {
    /// Origins allowed to call the API from a browser. `*` allows any origin
    /// (the request's origin is reflected, so credentials work).
    pub allowed_origins: StringList,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            allowed_origins: StringList(vec!["*".to_string()]),
        }
    }
}

/// HTTPS (see `crate::tls` and the README's HTTPS section). With `enabled`, `server.sslAddr`
/// serves the API over TLS (HTTP/2 and HTTP/1.1) and `server.addr` serves ACME
/// http-01 challenges, `/healthz`, `/readyz` and 308 redirects to https.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SslConfig {
    pub enabled: Flag,
    /// One or more domains, comma-separated: the names the ACME certificate
    /// covers and the only SNI names the TLS listener answers (a handshake
    /// for any other name is refused). The first is the redirect target
    /// when a request's Host is not one of them.
    pub domain_name: StringList,
    /// Contact for the ACME account (optional; Let's Encrypt no longer mails
    /// expiry notices, but uses it for account problems).
    pub letsencrypt_email: String,
    /// Where ACME account keys and certificates are cached (created 0700).
    pub cache_dir: PathBuf,
    /// ACME directory: `production` (Let's Encrypt, default), `staging`
    /// (Let's Encrypt's staging CA, untrusted certificates, generous limits),
    /// or the directory URL of any ACME CA.
    pub acme_directory: String,
    /// `tls-alpn-01` (default; only `sslAddr`, public port 443, must be
    /// reachable) or `http-01` (`addr`, public port 80, must be reachable;
    /// use it when something in front terminates TLS).
    pub acme_challenge: String,
    /// A PEM file of extra root certificates trusted when talking to the ACME
    /// directory (a private CA, or a local test CA such as pebble).
    pub acme_ca_root: Option<PathBuf>,
    /// Manual certificates: PEM certificate chain (leaf first). With
    /// `keyFile`, replaces ACME; both files are re-read when they change.
    pub cert_file: Option<PathBuf>,
    /// Manual certificates: PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// How often `certFile`/`keyFile` are checked for changes.
    pub reload_interval: Span,
    /// Also serve the API over plain HTTP on `addr` instead of redirecting
    /// (for a trusted network behind a proxy; SSE then has HTTP/1.1's limit
    /// of six connections per origin in browsers).
    pub api_over_http: Flag,
}

impl Default for SslConfig {
    fn default() -> Self {
        SslConfig {
            enabled: Flag(false),
            domain_name: StringList::default(),
            letsencrypt_email: String::new(),
            cache_dir: PathBuf::from("./_config/certs"),
            acme_directory: "production".to_string(),
            acme_challenge: "tls-alpn-01".to_string(),
            acme_ca_root: None,
            cert_file: None,
            key_file: None,
            reload_interval: Span(std::time::Duration::from_secs(10)),
            api_over_http: Flag(false),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PubSubConfig {
    /// Token for create, delete and publish (and for tailing any topic).
    pub api_access_token: Option<Secret>,
    /// Token for reading metrics.
    pub metrics_access_token: Option<Secret>,
    /// Interval of the keep-alive comment on every stream.
    pub tick_frequency: Span,
    /// Reconnect delay suggested to clients in the stream's `retry:` field.
    pub retry: Span,
    /// Events each in-memory topic keeps for `Last-Event-ID` replay.
    pub history_size: Count,
    /// Events a subscriber may fall behind the live stream before it has to
    /// catch up from history (see `hub::feed`).
    pub subscriber_buffer: Count,
    /// Topics defined in configuration: fixed id and token, never deleted.
    pub static_pub_subs: Vec<StaticPubSub>,
}

impl Default for PubSubConfig {
    fn default() -> Self {
        PubSubConfig {
            api_access_token: None,
            metrics_access_token: None,
            tick_frequency: Span(std::time::Duration::from_secs(15)),
            retry: Span(std::time::Duration::from_secs(3)),
            history_size: Count(1000),
            subscriber_buffer: Count(1024),
            static_pub_subs: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StaticPubSub {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub token: Secret,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KvConfig {
    /// Enables persistent topics (`SSER_PERSISTENT_STORE_ENABLED`).
    pub enabled: Flag,
    /// The directory of the persistent store (`SSER_KV_DSN`). It holds topic
    /// tokens: keep it as private as the configuration.
    pub dsn: PathBuf,
    /// `redb` (default) or `sled` (`SSER_KV_ENGINE`). The store remembers
    /// which engine wrote it; start-up refuses a mismatch.
    pub engine: EngineKind,
    /// `sync` (default): a 201 on publish means the event is fsynced
    /// (concurrent publishes share one fsync). `relaxed`: a 201 means written,
    /// fsynced within `flushInterval` (`SSER_KV_DURABILITY`).
    pub durability: DurabilityMode,
    /// How often relaxed mode fsyncs (`SSER_KV_FLUSH_INTERVAL`).
    pub flush_interval: Span,
    /// Default history limits of persistent topics; a topic created with its
    /// own `retention` uses that instead.
    pub retention: KvRetention,
}

/// See [`KvConfig::durability`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityMode {
    Sync,
    Relaxed,
}

/// Retention defaults for persistent topics; `0` means no limit of that kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KvRetention {
    /// Newest events kept per topic (`SSER_KV_RETENTION_MAX_EVENTS`).
    pub max_events: Count,
    /// Events older than this are dropped (`SSER_KV_RETENTION_MAX_AGE`).
    pub max_age: Span,
    /// Frame bytes kept per topic (`SSER_KV_RETENTION_MAX_BYTES`).
    pub max_bytes: Bytes,
}

impl Default for KvRetention {
    fn default() -> Self {
        KvRetention {
            max_events: Count(10_000),
            max_age: Span(std::time::Duration::ZERO),
            max_bytes: Bytes(0),
        }
    }
}

impl KvRetention {
    pub fn to_retention(&self) -> crate::store::Retention {
        crate::store::Retention {
            max_events: Some(self.max_events.0).filter(|&n| n > 0),
            max_age: Some(self.max_age.0).filter(|d| !d.is_zero()),
            max_bytes: Some(self.max_bytes.0).filter(|&n| n > 0),
        }
    }
}

impl KvConfig {
    /// The store settings this configuration asks for.
    pub fn disk_settings(&self) -> DiskSettings {
        DiskSettings {
            dir: self.dsn.clone(),
            engine: self.engine,
            durability: match self.durability {
                DurabilityMode::Sync => Durability::Sync,
                DurabilityMode::Relaxed => Durability::Relaxed {
                    interval: self.flush_interval.0,
                },
            },
        }
    }
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            enabled: Flag(false),
            dsn: PathBuf::from("./_storage"),
            engine: EngineKind::Redb,
            durability: DurabilityMode::Sync,
            flush_interval: Span(std::time::Duration::from_millis(100)),
            retention: KvRetention::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `sser=debug,tower_http=info`.
    pub level: String,
    /// `pretty`, `json`, or `auto` (json when APP_ENV=production).
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_string(),
            format: "auto".to_string(),
        }
    }
}

/// The Prometheus endpoint `GET /metrics`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MetricsConfig {
    /// Serve `/metrics` without a token (for a scraper on a private network).
    /// Off by default: it then takes the metrics token (or the API token).
    pub open: Flag,
    /// Add per-topic series (`topic="<id>"` labels). Off by default so the
    /// number of series stays bounded however many topics clients create.
    pub per_topic: Flag,
}

/// A list that may also be written as one comma-separated string, as
/// environment variables must be.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct StringList(pub Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let items = match Raw::deserialize(d)? {
            Raw::One(s) => s.split(',').map(str::to_string).collect(),
            Raw::Many(v) => v,
        };
        Ok(StringList(
            items
                .into_iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        ))
    }
}

/// Why the configuration could not be loaded. The message names the key (and
/// the environment variable, where one sets it).
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

impl Default for Config {
    fn default() -> Self {
        Config {
            app_env: "development".to_string(),
            generated_tokens: Vec::new(),
            server: ServerConfig::default(),
            pubsub: PubSubConfig::default(),
            kv: KvConfig::default(),
            log: LogConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

impl Config {
    /// Loads from `config_dir`, the `.env` file in the working directory and
    /// the process environment.
    pub fn load(config_dir: &Path) -> Result<Config, ConfigError> {
        let mut env: HashMap<String, String> = HashMap::new();
        // `.env` fills in only what the real environment leaves unset.
        match dotenvy::from_path_iter(".env") {
            Ok(iter) => {
                for item in iter {
                    let (k, v) = item.map_err(|e| ConfigError(format!(".env: {e}")))?;
                    env.insert(k, v);
                }
            }
            Err(e) if e.not_found() => {}
            Err(e) => return Err(ConfigError(format!(".env: {e}"))),
        }
        env.extend(std::env::vars());
        Config::from_sources(config_dir, &env)
    }

    /// Pure loader: YAML files from `config_dir` and the given environment.
    pub fn from_sources(
        config_dir: &Path,
        env: &HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(env, name);
        let app_env = get("APP_ENV").unwrap_or("development").to_string();
        if app_env.contains(['/', '\\']) || app_env.starts_with('.') {
            return Err(ConfigError(format!(
                "APP_ENV={app_env:?} must be a plain name such as production"
            )));
        }

        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        for file in ["base.yaml".to_string(), format!("{app_env}.yaml")] {
            if let Some(dict) = read_yaml(&config_dir.join(&file), env)? {
                figment = figment.merge(Serialized::defaults(dict));
            }
        }
        for (var, key) in ENV_VARS {
            if let Some(value) = get(var) {
                figment = figment.merge((*key, value));
            }
        }

        let mut config: Config = figment.extract().map_err(|e| describe(&e))?;
        config.app_env = app_env;
        config.finish()?;
        Ok(config)
    }

    pub fn is_production(&self) -> bool {
        self.app_env == "production"
    }

    pub fn is_development(&self) -> bool {
        self.app_env == "development"
    }

    /// Checks what types alone cannot, and fills in development tokens.
    fn finish(&mut self) -> Result<(), ConfigError> {
        let dev = self.is_development();
        let app_env = self.app_env.clone();
        for (key, var, slot) in [
            (
                "pubsub.apiAccessToken",
                "SSER_API_ACCESS_TOKEN",
                &mut self.pubsub.api_access_token,
            ),
            (
                "pubsub.metricsAccessToken",
                "SSER_METRICS_ACCESS_TOKEN",
                &mut self.pubsub.metrics_access_token,
            ),
        ] {
            if slot.as_ref().is_none_or(Secret::is_empty) {
                if !dev {
                    return Err(ConfigError(format!(
                        "{key} ({var}) is required when APP_ENV={app_env}: there are no default tokens"
                    )));
                }
                let token = Secret::generate();
                *slot = Some(token.clone());
                self.generated_tokens.push((var, token));
            }
        }
        let header = self.server.max_header_size.0;
        if !(8192..=1 << 20).contains(&header) {
            return Err(ConfigError(format!(
                "server.maxHeaderSize (SSER_MAX_HEADER_SIZE) must be between 8KiB and 1MiB, got {header} bytes"
            )));
        }
        self.server.check_connection_limits()?;
        if self.pubsub.tick_frequency.0.is_zero() {
            return Err(ConfigError(
                "pubsub.tickFrequency (SSER_TICK_FREQUENCY) must be above zero".into(),
            ));
        }
        let buffer = self.pubsub.subscriber_buffer.0;
        if !(1..=1 << 20).contains(&buffer) {
            return Err(ConfigError(format!(
                "pubsub.subscriberBuffer (SSER_SUBSCRIBER_BUFFER) must be between 1 and 1048576, got {buffer}"
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, topic) in self.pubsub.static_pub_subs.iter().enumerate() {
            if !crate::hub::is_valid_topic_id(&topic.id) {
                return Err(ConfigError(format!(
                    "pubsub.staticPubSubs[{i}].id {:?} must be 1-64 characters of A-Z a-z 0-9 _ -",
                    topic.id
                )));
            }
            if topic.token.is_empty() {
                return Err(ConfigError(format!(
                    "pubsub.staticPubSubs[{i}].token must not be empty"
                )));
            }
            if !seen.insert(topic.id.as_str()) {
                return Err(ConfigError(format!(
                    "pubsub.staticPubSubs[{i}].id {:?} appears twice",
                    topic.id
                )));
            }
        }
        if self.kv.durability == DurabilityMode::Relaxed && self.kv.flush_interval.0.is_zero() {
            return Err(ConfigError(
                "kv.flushInterval (SSER_KV_FLUSH_INTERVAL) must be above zero in relaxed durability mode".into(),
            ));
        }
        if !["auto", "pretty", "json"].contains(&self.log.format.as_str()) {
            return Err(ConfigError(format!(
                "log.format (SSER_LOG_FORMAT) must be auto, pretty or json, got {:?}",
                self.log.format
            )));
        }
        self.server.ssl.check()?;
        Ok(())
    }
}

impl ServerConfig {
    fn check_connection_limits(&self) -> Result<(), ConfigError> {
        for (key, var, span) in [
            (
                "server.handshakeTimeout",
                "SSER_HANDSHAKE_TIMEOUT",
                self.handshake_timeout,
            ),
            (
                "server.headerReadTimeout",
                "SSER_HEADER_READ_TIMEOUT",
                self.header_read_timeout,
            ),
            (
                "server.requestBodyTimeout",
                "SSER_REQUEST_BODY_TIMEOUT",
                self.request_body_timeout,
            ),
            (
                "server.connectionIdleTimeout",
                "SSER_CONNECTION_IDLE_TIMEOUT",
                self.connection_idle_timeout,
            ),
            (
                "server.http2.keepAliveTimeout",
                "SSER_HTTP2_KEEP_ALIVE_TIMEOUT",
                self.http2.keep_alive_timeout,
            ),
        ] {
            if span.0.is_zero() {
                return Err(ConfigError(format!(
                    "{key} ({var}) must be above zero: without it a client that stops talking holds its connection forever"
                )));
            }
        }
        let streams = self.http2.max_concurrent_streams.0;
        if !(1..=10_000).contains(&streams) {
            return Err(ConfigError(format!(
                "server.http2.maxConcurrentStreams (SSER_HTTP2_MAX_CONCURRENT_STREAMS) must be between 1 and 10000, got {streams}"
            )));
        }
        Ok(())
    }
}

impl SslConfig {
    /// True when certificates come from files rather than ACME.
    pub fn manual(&self) -> bool {
        self.cert_file.is_some() || self.key_file.is_some()
    }

    fn check(&self) -> Result<(), ConfigError> {
        if !self.enabled.0 {
            return Ok(());
        }
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => {
                return Err(ConfigError(
                    "server.ssl.keyFile (SSER_SSL_KEY_FILE) is required with server.ssl.certFile"
                        .into(),
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError(
                    "server.ssl.certFile (SSER_SSL_CERT_FILE) is required with server.ssl.keyFile"
                        .into(),
                ));
            }
            _ => {}
        }
        if self.manual() {
            // The SNI check uses domainName when given; manual certificates
            // need no list of names otherwise.
        } else if self.domain_name.0.is_empty() {
            return Err(ConfigError(
                "server.ssl.domainName (SSER_DOMAIN_NAME) is required when server.ssl.enabled (SSER_SSL_ENABLED) is true and no server.ssl.certFile is set".into(),
            ));
        }
        for name in &self.domain_name.0 {
            let bare = name.strip_prefix("*.").unwrap_or(name);
            let ok = !bare.is_empty()
                && bare.len() <= 253
                && bare.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !ok {
                return Err(ConfigError(format!(
                    "server.ssl.domainName (SSER_DOMAIN_NAME): {name:?} is not a DNS name"
                )));
            }
        }
        if !self.manual()
            && let Some(name) = self.domain_name.0.iter().find(|n| n.starts_with("*."))
        {
            return Err(ConfigError(format!(
                "server.ssl.domainName (SSER_DOMAIN_NAME): {name:?} is a wildcard, which ACME issues only by dns-01 (not supported); name each host or use server.ssl.certFile/keyFile"
            )));
        }
        let dir = self.acme_directory.trim();
        if !(dir == "production"
            || dir == "staging"
            || dir.starts_with("https://")
            || dir.starts_with("http://"))
        {
            return Err(ConfigError(format!(
                "server.ssl.acmeDirectory (SSER_ACME_DIRECTORY) must be production, staging or a directory URL, got {dir:?}"
            )));
        }
        if !["tls-alpn-01", "http-01"].contains(&self.acme_challenge.trim()) {
            return Err(ConfigError(format!(
                "server.ssl.acmeChallenge (SSER_ACME_CHALLENGE) must be tls-alpn-01 or http-01, got {:?}",
                self.acme_challenge
            )));
        }
        if self.reload_interval.0.is_zero() {
            return Err(ConfigError(
                "server.ssl.reloadInterval (SSER_SSL_RELOAD_INTERVAL) must be above zero".into(),
            ));
        }
        Ok(())
    }
}

/// Reads one YAML file (a missing file is fine) and expands SSER-style
/// `${VAR}` / `${VAR:default}` placeholders in its string values. Expansion
/// happens after parsing, so the substituted text is never re-read as YAML.
fn read_yaml(path: &Path, env: &HashMap<String, String>) -> Result<Option<Dict>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ConfigError(format!("{}: {e}", path.display()))),
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    let dict: Dict = Figment::from(Yaml::string(&text))
        .extract()
        .map_err(|e| ConfigError(format!("{}: {}", path.display(), e)))?;
    Ok(Some(
        dict.into_iter()
            .map(|(k, v)| (k, expand_value(v, env)))
            .collect(),
    ))
}

/// An environment variable's value; empty counts as unset, as in SSER's
/// `.env` template where unused names are left blank.
fn lookup<'a>(env: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    env.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

fn expand_value(value: Value, env: &HashMap<String, String>) -> Value {
    match value {
        Value::String(tag, s) => Value::String(tag, expand_placeholders(&s, env)),
        Value::Dict(tag, d) => Value::Dict(
            tag,
            d.into_iter()
                .map(|(k, v)| (k, expand_value(v, env)))
                .collect(),
        ),
        Value::Array(tag, a) => {
            Value::Array(tag, a.into_iter().map(|v| expand_value(v, env)).collect())
        }
        other => other,
    }
}

/// `${NAME}` → the variable or ""; `${NAME:default}` → the variable or `default`.
fn expand_placeholders(s: &str, env: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let inner = &rest[start + 2..start + len];
        let (name, default) = inner.split_once(':').unwrap_or((inner, ""));
        out.push_str(lookup(env, name.trim()).unwrap_or(default));
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

/// Turns figment's error into one line that names the configuration key and,
/// where one sets it, the environment variable.
fn describe(e: &figment::Error) -> ConfigError {
    let key = e.path.join(".");
    let var = ENV_VARS
        .iter()
        .filter(|(_, k)| *k == key)
        .map(|(v, _)| *v)
        .next();
    let what = e.kind.to_string();
    ConfigError(match (key.is_empty(), var) {
        (true, _) => what,
        (false, Some(var)) => format!("{key} ({var}): {what}"),
        (false, None) => format!("{key}: {what}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_generate_tokens_in_development() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::from_sources(dir.path(), &env(&[])).unwrap();
        assert_eq!(c.server.addr.0.port(), 8889);
        assert_eq!(c.generated_tokens.len(), 2);
        assert!(c.pubsub.api_access_token.is_some());
    }

    #[test]
    fn production_requires_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let err = Config::from_sources(dir.path(), &env(&[("APP_ENV", "production")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SSER_API_ACCESS_TOKEN"), "{err}");
    }

    #[test]
    fn env_values_are_literal_and_win() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("base.yaml"),
            "server:\n  addr: ${PORT:7000}\npubsub:\n  apiAccessToken: from-yaml\n  historySize: 5\n",
        )
        .unwrap();
        let c = Config::from_sources(
            dir.path(),
            &env(&[
                ("SSER_API_ACCESS_TOKEN", "a#b 007"),
                ("SSER_METRICS_ACCESS_TOKEN", "007"),
                ("SSER_LETSENCYRPT_EMAIL", "me@example.com"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.addr.0.port(), 7000);
        assert!(c.pubsub.api_access_token.unwrap().matches("a#b 007"));
        assert!(c.pubsub.metrics_access_token.unwrap().matches("007"));
        assert_eq!(c.pubsub.history_size.0, 5);
        assert_eq!(c.server.ssl.letsencrypt_email, "me@example.com");
    }

    #[test]
    fn placeholder_uses_environment_and_env_file_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("base.yaml"),
            "server:\n  addr: ${PORT:7000}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("staging.yaml"),
            "server:\n  addr: 127.0.0.1:7100\n",
        )
        .unwrap();
        let c = Config::from_sources(
            dir.path(),
            &env(&[
                ("APP_ENV", "staging"),
                ("SSER_API_ACCESS_TOKEN", "x"),
                ("SSER_METRICS_ACCESS_TOKEN", "y"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.addr.to_string(), "127.0.0.1:7100");
        let c = Config::from_sources(
            dir.path(),
            &env(&[
                ("APP_ENV", "staging"),
                ("PORT", ":7200"),
                ("SSER_API_ACCESS_TOKEN", "x"),
                ("SSER_METRICS_ACCESS_TOKEN", "y"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.addr.to_string(), "0.0.0.0:7200");
    }

    #[test]
    fn kv_keys_from_env() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::from_sources(
            dir.path(),
            &env(&[
                ("SSER_PERSISTENT_STORE_ENABLED", "true"),
                ("SSER_KV_ENGINE", "sled"),
                ("SSER_KV_DURABILITY", "relaxed"),
                ("SSER_KV_FLUSH_INTERVAL", "50ms"),
                ("SSER_KV_RETENTION_MAX_EVENTS", "0"),
                ("SSER_KV_RETENTION_MAX_AGE", "1h"),
                ("SSER_KV_RETENTION_MAX_BYTES", "1MiB"),
            ]),
        )
        .unwrap();
        assert!(c.kv.enabled.0);
        assert_eq!(c.kv.engine, EngineKind::Sled);
        let r = c.kv.retention.to_retention();
        assert_eq!(r.max_events, None);
        assert_eq!(r.max_age, Some(std::time::Duration::from_secs(3600)));
        assert_eq!(r.max_bytes, Some(1 << 20));
        let err = Config::from_sources(dir.path(), &env(&[("SSER_KV_ENGINE", "rocksdb")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("kv.engine (SSER_KV_ENGINE)"), "{err}");
    }

    #[test]
    fn shipped_config_files_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("_config");
        let c = Config::from_sources(&dir, &env(&[])).unwrap();
        assert_eq!(c.server.addr.0.port(), 8889);
        assert_eq!(c.log.format, "pretty");
        let c = Config::from_sources(
            &dir,
            &env(&[
                ("APP_ENV", "production"),
                ("SSER_API_ACCESS_TOKEN", "a"),
                ("SSER_METRICS_ACCESS_TOKEN", "b"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.addr.0.port(), 80);
        assert_eq!(c.server.ssl_addr.0.port(), 443);
        assert_eq!(c.log.format, "json");
    }

    #[test]
    fn every_environment_variable_is_documented() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        let yaml = std::fs::read_to_string(root.join("_config/base.yaml")).unwrap();
        for (var, key) in ENV_VARS {
            assert!(readme.contains(var), "README lacks {var}");
            let leaf = key.rsplit('.').next().unwrap();
            assert!(yaml.contains(leaf), "_config/base.yaml lacks {key}");
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let err = Config::from_sources(dir.path(), &env(&[("PORT", "eighty")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.addr (PORT)"), "{err}");
        let err = Config::from_sources(dir.path(), &env(&[("SSER_SSL_ENABLED", "maybe")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SSER_SSL_ENABLED"), "{err}");
    }

    #[test]
    fn connection_limits_from_env_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::from_sources(
            dir.path(),
            &env(&[
                ("SSER_HANDSHAKE_TIMEOUT", "2s"),
                ("SSER_REQUEST_BODY_TIMEOUT", "1m"),
                ("SSER_MAX_CONNECTIONS", "5000"),
                ("SSER_MAX_CONNECTIONS_PER_IP", "0"),
                ("SSER_HTTP2_KEEP_ALIVE_INTERVAL", "0"),
                ("SSER_HTTP2_MAX_CONCURRENT_STREAMS", "250"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.handshake_timeout.0.as_secs(), 2);
        assert_eq!(c.server.request_body_timeout.0.as_secs(), 60);
        assert_eq!(c.server.max_connections.0, 5000);
        assert_eq!(c.server.max_connections_per_ip.0, 0);
        assert!(c.server.http2.keep_alive_interval.0.is_zero());
        assert_eq!(c.server.http2.max_concurrent_streams.0, 250);
        let err = Config::from_sources(dir.path(), &env(&[("SSER_HANDSHAKE_TIMEOUT", "0")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("server.handshakeTimeout (SSER_HANDSHAKE_TIMEOUT)"),
            "{err}"
        );
        let err = Config::from_sources(
            dir.path(),
            &env(&[("SSER_HTTP2_MAX_CONCURRENT_STREAMS", "0")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("SSER_HTTP2_MAX_CONCURRENT_STREAMS"), "{err}");
    }

    #[test]
    fn ssl_settings_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let load = |pairs: &[(&str, &str)]| {
            let mut all = vec![("SSER_SSL_ENABLED", "true")];
            all.extend_from_slice(pairs);
            Config::from_sources(dir.path(), &env(&all)).map_err(|e| e.to_string())
        };
        let err = load(&[]).unwrap_err();
        assert!(err.contains("SSER_DOMAIN_NAME"), "{err}");
        let c = load(&[
            ("SSER_DOMAIN_NAME", "a.example.com, b.example.com"),
            ("SSER_ACME_DIRECTORY", "staging"),
            ("SSLPORT", "8443"),
        ])
        .unwrap();
        assert_eq!(
            c.server.ssl.domain_name.0,
            ["a.example.com", "b.example.com"]
        );
        assert_eq!(c.server.ssl_addr.0.port(), 8443);
        let err = load(&[
            ("SSER_DOMAIN_NAME", "x.test"),
            ("SSER_ACME_DIRECTORY", "prod"),
        ])
        .unwrap_err();
        assert!(
            err.contains("server.ssl.acmeDirectory (SSER_ACME_DIRECTORY)"),
            "{err}"
        );
        let err = load(&[
            ("SSER_DOMAIN_NAME", "x.test"),
            ("SSER_ACME_CHALLENGE", "dns-01"),
        ])
        .unwrap_err();
        assert!(err.contains("SSER_ACME_CHALLENGE"), "{err}");
        let err = load(&[("SSER_DOMAIN_NAME", "*.example.com")]).unwrap_err();
        assert!(err.contains("wildcard"), "{err}");
        let err = load(&[("SSER_DOMAIN_NAME", "bad name")]).unwrap_err();
        assert!(err.contains("not a DNS name"), "{err}");
        let err = load(&[("SSER_SSL_CERT_FILE", "cert.pem")]).unwrap_err();
        assert!(err.contains("SSER_SSL_KEY_FILE"), "{err}");
        let c = load(&[
            ("SSER_SSL_CERT_FILE", "c.pem"),
            ("SSER_SSL_KEY_FILE", "k.pem"),
        ])
        .unwrap();
        assert!(c.server.ssl.manual());
        // Disabled: nothing is required.
        Config::from_sources(dir.path(), &env(&[("SSER_ACME_DIRECTORY", "nonsense")])).unwrap();
    }
}
