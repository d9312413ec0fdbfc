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
    ("SSER_KV_DSN", "kv.dsn"),
    ("SSER_CORS_ALLOWED_ORIGINS", "server.cors.allowedOrigins"),
    ("SSER_MAX_REQUEST_BODY_SIZE", "server.maxRequestBodySize"),
    ("SSER_SHUTDOWN_TIMEOUT", "server.shutdownTimeout"),
    ("SSER_TICK_FREQUENCY", "pubsub.tickFrequency"),
    ("SSER_RETRY", "pubsub.retry"),
    ("SSER_HISTORY_SIZE", "pubsub.historySize"),
    ("SSER_SUBSCRIBER_BUFFER", "pubsub.subscriberBuffer"),
    ("SSER_LOG", "log.level"),
    ("SSER_LOG_FORMAT", "log.format"),
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
    /// How long a graceful shutdown may take before open connections are cut.
    pub shutdown_timeout: Span,
    pub cors: CorsConfig,
    pub ssl: SslConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: ListenAddr("0.0.0.0:8889".parse().expect("literal address")),
            ssl_addr: ListenAddr("0.0.0.0:8888".parse().expect("literal address")),
            max_request_body_size: Bytes(1 << 20),
            shutdown_timeout: Span(std::time::Duration::from_secs(10)),
            cors: CorsConfig::default(),
            ssl: SslConfig::default(),
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SslConfig {
    pub enabled: Flag,
    /// One or more domains, comma-separated.
    pub domain_name: StringList,
    pub letsencrypt_email: String,
    /// Where ACME account keys and certificates are cached.
    pub cache_dir: PathBuf,
}

impl Default for SslConfig {
    fn default() -> Self {
        SslConfig {
            enabled: Flag(false),
            domain_name: StringList::default(),
            letsencrypt_email: String::new(),
            cache_dir: PathBuf::from("./_config/certs"),
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
    /// Where the persistent store lives.
    pub dsn: PathBuf,
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            enabled: Flag(false),
            dsn: PathBuf::from("./_storage"),
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
        if !["auto", "pretty", "json"].contains(&self.log.format.as_str()) {
            return Err(ConfigError(format!(
                "log.format (SSER_LOG_FORMAT) must be auto, pretty or json, got {:?}",
                self.log.format
            )));
        }
        if self.server.ssl.enabled.0 && self.server.ssl.domain_name.0.is_empty() {
            return Err(ConfigError(
                "server.ssl.domainName (SSER_DOMAIN_NAME) is required when server.ssl.enabled (SSER_SSL_ENABLED) is true".into(),
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
}
