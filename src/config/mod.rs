//! Configuration: built-in defaults → `_config/base.yaml` →
//! `_config/${APP_ENV}.yaml` → `.env` → environment, later sources winning.
//!
//! YAML keys and environment names are SSER's where they mean the same thing,
//! so an SSER deployment's `_config` folder and `.env` keep working (including
//! `${VAR:default}` placeholders in YAML). Unlike SSER, environment values are
//! taken literally and a bad value stops start-up with a message that names
//! the key. `ENV_VARS` is the one table of environment names; the README's
//! configuration table mirrors it.
//!
//! Each section (`server`, `pubsub`, `kv`, `log`, `metrics`, `identity`,
//! `presence`, `compat`, `cluster`) lives in its own file with its defaults and its checks
//! (`server`'s connection limits in `connections`);
//! `load` reads the layers; this file holds [`Config`], `ENV_VARS` and the
//! entry points. Configuration
//! imports no component: components own their settings types, and `lib.rs`
//! turns a `Config` into them.

mod cluster;
mod compat;
mod compat_go_sse_broker;
mod compat_gosse;
mod compat_notification_service;
mod connections;
mod identity;
mod kv;
mod load;
mod log;
mod metrics;
mod presence;
mod profile_mount;
mod pubsub;
mod server;
pub mod values;

use std::collections::HashMap;
use std::path::Path;

use figment::Figment;
use figment::providers::Serialized;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;
pub use cluster::{ClusterConfig, RedisConfig, redacted_url};
pub use compat::CompatConfig;
pub use compat_go_sse_broker::{BrokerJwt, BrokerSse, GoSseBrokerConfig};
pub use compat_gosse::{GosseAccount, GosseConfig, GosseRole, SameSite};
pub use compat_notification_service::NotificationServiceConfig;
pub use identity::{
    ClaimsConfig, IdentityConfig, IdentityKeyConfig, IdentityLimits, InboxConfig, JWT_ALGORITHMS,
    JwksConfig, MintConfig, TakeoverMode,
};
pub use kv::{DurabilityMode, KvConfig, KvEngine, KvRetention};
pub use load::ConfigError;
pub use log::LogConfig;
pub use metrics::MetricsConfig;
pub use presence::{PresenceConfig, WebhooksConfig};
pub use profile_mount::ProfileMount;
pub use pubsub::{PubSubConfig, StaticPubSub};
pub use server::Http2Config;
pub use server::{CorsConfig, ServerConfig, SslConfig};
pub use values::{Bytes, Count, Flag, ListenAddr, Span, StringList};

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
    ("SSER_MAX_JSON_DEPTH", "server.maxJsonDepth"),
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
    (
        "SSER_MAX_TOPICS_PER_CONNECTION",
        "pubsub.maxTopicsPerConnection",
    ),
    ("SSER_CLUSTER_REDIS_URL", "cluster.redis.url"),
    (
        "SSER_CLUSTER_REDIS_WAIT_REPLICAS",
        "cluster.redis.waitReplicas",
    ),
    ("SSER_CLUSTER_REDIS_PREFIX", "cluster.redis.prefix"),
    (
        "SSER_CLUSTER_REDIS_MAX_STREAM_LENGTH",
        "cluster.redis.maxStreamLength",
    ),
    ("SSER_CLUSTER_REDIS_TIMEOUT", "cluster.redis.timeout"),
    ("SSER_CLUSTER_NODE_TTL", "cluster.nodeTtl"),
    (
        "SSER_CLUSTER_NODE_CHECK_INTERVAL",
        "cluster.nodeCheckInterval",
    ),
    ("SSER_CLUSTER_ADVERTISE_ADDR", "cluster.advertiseAddr"),
    ("SSER_LOG", "log.level"),
    ("SSER_LOG_FORMAT", "log.format"),
    ("SSER_DASHBOARD_ENABLED", "server.dashboard"),
    ("SSER_METRICS_OPEN", "metrics.open"),
    ("SSER_METRICS_PER_TOPIC", "metrics.perTopic"),
    ("SSER_IDENTITY_ENABLED", "identity.enabled"),
    ("SSER_JWT_SECRET", "identity.secret"),
    ("SSER_JWT_ALGORITHMS", "identity.algorithms"),
    ("SSER_JWT_AUDIENCE", "identity.audience"),
    ("SSER_JWT_LEEWAY", "identity.leeway"),
    ("SSER_JWT_REQUIRE_EXP", "identity.requireExp"),
    ("SSER_IDENTITY_DEFAULT_APP", "identity.defaultApp"),
    ("SSER_JWT_USER_CLAIM", "identity.claims.user"),
    ("SSER_JWT_APP_CLAIM", "identity.claims.app"),
    ("SSER_JWT_DEVICE_CLAIM", "identity.claims.device"),
    ("SSER_JWT_TOPICS_CLAIM", "identity.claims.topics"),
    ("SSER_JWT_JWKS_FILE", "identity.jwks.file"),
    ("SSER_JWT_JWKS_URL", "identity.jwks.url"),
    (
        "SSER_JWT_JWKS_REFRESH_INTERVAL",
        "identity.jwks.refreshInterval",
    ),
    ("SSER_JWT_DEFAULT_TTL", "identity.mint.defaultTtl"),
    ("SSER_JWT_MAX_TTL", "identity.mint.maxTtl"),
    ("SSER_JWT_MINT_ALGORITHM", "identity.mint.algorithm"),
    ("SSER_IDENTITY_TAKEOVER", "identity.takeover"),
    ("SSER_IDENTITY_TAKEOVER_GUARD", "identity.takeoverGuard"),
    (
        "SSER_IDENTITY_MAX_CONNECTIONS_PER_USER",
        "identity.limits.maxConnectionsPerUser",
    ),
    (
        "SSER_IDENTITY_MAX_CONNECTIONS_PER_IP",
        "identity.limits.maxConnectionsPerIp",
    ),
    (
        "SSER_IDENTITY_MAX_STREAMS_PER_CONNECTION",
        "identity.limits.maxStreamsPerConnection",
    ),
    ("SSER_IDENTITY_COOKIE", "identity.cookie"),
    ("SSER_INBOX_MAX_EVENTS", "identity.inbox.maxEvents"),
    ("SSER_INBOX_MAX_AGE", "identity.inbox.maxAge"),
    ("SSER_SEND_MAX_TARGETS", "identity.maxSendTargets"),
    ("SSER_PRESENCE_GRACE", "presence.grace"),
    ("SSER_WEBHOOK_URLS", "presence.webhooks.urls"),
    ("SSER_WEBHOOK_SECRET", "presence.webhooks.secret"),
    ("SSER_WEBHOOK_TIMEOUT", "presence.webhooks.timeout"),
    ("SSER_WEBHOOK_MAX_ATTEMPTS", "presence.webhooks.maxAttempts"),
    ("SSER_WEBHOOK_MAX_AGE", "presence.webhooks.maxAge"),
    ("SSER_WEBHOOK_BACKOFF", "presence.webhooks.backoff"),
    ("SSER_WEBHOOK_MAX_BACKOFF", "presence.webhooks.maxBackoff"),
    ("SSER_WEBHOOK_QUEUE", "presence.webhooks.queue"),
    ("SSER_WEBHOOK_CONCURRENCY", "presence.webhooks.concurrency"),
    // Compatibility profiles (`compat.*`): each profile's rows together.
    (
        "SSER_COMPAT_NOTIFICATION_SERVICE_ENABLED",
        "compat.notificationService.enabled",
    ),
    (
        "SSER_COMPAT_NOTIFICATION_SERVICE_PREFIX",
        "compat.notificationService.prefix",
    ),
    (
        "SSER_COMPAT_NOTIFICATION_SERVICE_ADDR",
        "compat.notificationService.addr",
    ),
    (
        "SSER_COMPAT_NOTIFICATION_SERVICE_PING_INTERVAL",
        "compat.notificationService.pingInterval",
    ),
    // sse-notification-service's own name for its token key.
    ("JWT_SECRET", "compat.notificationService.jwtSecret"),
    (
        "SSER_COMPAT_GO_SSE_BROKER_ENABLED",
        "compat.goSseBroker.enabled",
    ),
    (
        "SSER_COMPAT_GO_SSE_BROKER_PREFIX",
        "compat.goSseBroker.prefix",
    ),
    ("SSER_COMPAT_GO_SSE_BROKER_ADDR", "compat.goSseBroker.addr"),
    ("SSER_COMPAT_GO_SSE_BROKER_APP", "compat.goSseBroker.app"),
    (
        "SSER_COMPAT_GO_SSE_BROKER_UNAUTHENTICATED_FROM",
        "compat.goSseBroker.unauthenticatedFrom",
    ),
    (
        "SSER_COMPAT_GO_SSE_BROKER_INSTANCE_ADDRESS",
        "compat.goSseBroker.instanceAddress",
    ),
    (
        "SSER_COMPAT_GO_SSE_BROKER_JWT_SECRET",
        "compat.goSseBroker.jwt.secret",
    ),
    (
        "SSER_COMPAT_GO_SSE_BROKER_JWT_EXPIRE",
        "compat.goSseBroker.jwt.expire",
    ),
    (
        "SSER_COMPAT_GO_SSE_BROKER_HEARTBEAT_INTERVAL",
        "compat.goSseBroker.sse.heartbeat_interval",
    ),
    ("SSER_COMPAT_GOSSE_ENABLED", "compat.gosse.enabled"),
    ("SSER_COMPAT_GOSSE_PREFIX", "compat.gosse.prefix"),
    ("SSER_COMPAT_GOSSE_ADDR", "compat.gosse.addr"),
    ("SSER_COMPAT_GOSSE_APP", "compat.gosse.app"),
    (
        "SSER_COMPAT_GOSSE_ALLOWED_ORIGIN",
        "compat.gosse.allowedOrigin",
    ),
    ("SSER_COMPAT_GOSSE_TOKEN_TTL", "compat.gosse.tokenTtl"),
    (
        "SSER_COMPAT_GOSSE_COOKIE_SECURE",
        "compat.gosse.cookieSecure",
    ),
    (
        "SSER_COMPAT_GOSSE_COOKIE_SAME_SITE",
        "compat.gosse.cookieSameSite",
    ),
    ("SSER_COMPAT_GOSSE_MAX_TYPES", "compat.gosse.maxTypes"),
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
    #[serde(default)]
    pub identity: IdentityConfig,
    pub presence: PresenceConfig,
    /// The other seeds' APIs (`compat.*`), each off by default.
    #[serde(default)]
    pub compat: CompatConfig,
    /// Cluster membership over Redis (`cluster.*`), off by default.
    #[serde(default)]
    pub cluster: ClusterConfig,
}

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
            identity: IdentityConfig::default(),
            presence: PresenceConfig::default(),
            compat: CompatConfig::default(),
            cluster: ClusterConfig::default(),
        }
    }
}

impl Config {
    /// Loads from `config_dir`, the `.env` file in the working directory and
    /// the process environment.
    pub fn load(config_dir: &Path) -> Result<Config, ConfigError> {
        Config::from_sources(config_dir, &load::environment()?)
    }

    /// Pure loader: YAML files from `config_dir` and the given environment.
    pub fn from_sources(
        config_dir: &Path,
        env: &HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let app_env = load::lookup(env, "APP_ENV")
            .unwrap_or("development")
            .to_string();
        if app_env.contains(['/', '\\']) || app_env.starts_with('.') {
            return Err(ConfigError(format!(
                "APP_ENV={app_env:?} must be a plain name such as production"
            )));
        }

        // Later layers win: defaults, base.yaml, <APP_ENV>.yaml, environment.
        let figment = Figment::from(Serialized::defaults(Config::default()));
        let figment = load::merge_files(figment, config_dir, &app_env, env)?;
        let figment = load::merge_env(figment, env, ENV_VARS);
        let mut config: Config = figment
            .extract()
            .map_err(|e| load::describe(&e, ENV_VARS))?;
        config.app_env = app_env;
        // goSSE's own variables (SSE_APP_KEY, SSE_*_USERNAME, …), read in
        // its terms when that profile is on, before the sections are checked.
        compat_gosse::apply_original_terms(&mut config, env)?;
        config.finish()?;
        Ok(config)
    }

    pub fn is_production(&self) -> bool {
        self.app_env == "production"
    }

    pub fn is_development(&self) -> bool {
        self.app_env == "development"
    }

    /// Checks what types alone cannot (each section its own keys), and
    /// fills in development tokens.
    fn finish(&mut self) -> Result<(), ConfigError> {
        let generated = self.pubsub.fill_tokens(&self.app_env)?;
        self.generated_tokens.extend(generated);
        self.server.check_limits()?;
        self.pubsub.check()?;
        self.kv.check()?;
        self.log.check()?;
        self.server.ssl.check()?;
        // Before identity: a profile may bring the identity key.
        self.compat.check(&mut self.identity, &self.app_env)?;
        if let Some(generated) = self.identity.check(&self.app_env)? {
            self.generated_tokens.push(generated);
        }
        self.presence.check()?;
        self.cluster.check()?;
        Ok(())
    }
}

/// Environment pairs for the configuration tests in every section.
#[cfg(test)]
fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
