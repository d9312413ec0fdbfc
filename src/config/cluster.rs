//! `cluster.*`: turning a node into a member of a cluster over Redis.
//!
//! Unset (`cluster.redis.url` empty), the node runs alone exactly as before.
//! The URL may carry a password or an ACL user, so it is a [`Secret`]:
//! never logged, and [`redacted_url`] is what messages show.

use serde::{Deserialize, Serialize};

use super::load::ConfigError;
use super::values::{Count, Span};
use crate::secret::Secret;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClusterConfig {
    pub redis: RedisConfig,
    /// How long a node's heartbeat outlives it (`SSER_CLUSTER_NODE_TTL`):
    /// the others stop counting a node that died within about this long.
    /// Refreshed every third of it.
    pub node_ttl: Span,
    /// How often each node looks for dead nodes whose presence must be
    /// cleared (`SSER_CLUSTER_NODE_CHECK_INTERVAL`): a dead node's users go
    /// offline (`node_lost`) within `nodeTtl` plus this.
    pub node_check_interval: Span,
    /// The address this node tells the others and shows on the dashboard
    /// (`SSER_CLUSTER_ADVERTISE_ADDR`), `host:port`: where it is reached
    /// when its listener's own address (often `0.0.0.0:8889` in a
    /// container) says nothing. Unset: the listener's address.
    pub advertise_addr: Option<String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis: RedisConfig::default(),
            node_ttl: Span(std::time::Duration::from_secs(15)),
            node_check_interval: Span(std::time::Duration::from_secs(5)),
            advertise_addr: None,
        }
    }
}

/// `cluster.redis.*`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port/db` or `rediss://` for TLS
    /// (`SSER_CLUSTER_REDIS_URL`). Unset: a single node.
    pub url: Option<Secret>,
    /// Replicas that must acknowledge a publish before it answers 201
    /// (`SSER_CLUSTER_REDIS_WAIT_REPLICAS`); 0: the primary's word.
    pub wait_replicas: Count,
    /// Prefix of every key and channel sser uses (`SSER_CLUSTER_REDIS_PREFIX`),
    /// so several clusters can share one Redis.
    pub prefix: String,
    /// Most events one stream's history keeps in Redis (approximately: Redis
    /// trims whole nodes), whatever a topic's own retention asks
    /// (`SSER_CLUSTER_REDIS_MAX_STREAM_LENGTH`).
    pub max_stream_length: Count,
    /// Bound on one Redis command and on one connection attempt
    /// (`SSER_CLUSTER_REDIS_TIMEOUT`): how long a publish may wait before it
    /// answers 503 while Redis is unreachable.
    pub timeout: Span,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            wait_replicas: Count(0),
            prefix: "sser:".to_string(),
            max_stream_length: Count(100_000),
            timeout: Span(std::time::Duration::from_secs(2)),
        }
    }
}

impl ClusterConfig {
    /// Whether this node is a cluster member.
    pub fn is_on(&self) -> bool {
        self.redis.url.is_some()
    }

    pub(super) fn check(&mut self) -> Result<(), ConfigError> {
        let redis = &mut self.redis;
        if redis
            .url
            .as_ref()
            .is_some_and(|u| u.expose().trim().is_empty())
        {
            redis.url = None;
        }
        if let Some(raw) = &redis.url {
            let parsed = url::Url::parse(raw.expose().trim()).map_err(|e| {
                ConfigError(format!(
                    "cluster.redis.url (SSER_CLUSTER_REDIS_URL) is not a URL: {e}"
                ))
            })?;
            if !matches!(parsed.scheme(), "redis" | "rediss") {
                return Err(ConfigError(format!(
                    "cluster.redis.url (SSER_CLUSTER_REDIS_URL) must start with redis:// or rediss://, not {}://",
                    parsed.scheme()
                )));
            }
            if parsed.host_str().is_none_or(str::is_empty) {
                return Err(ConfigError(
                    "cluster.redis.url (SSER_CLUSTER_REDIS_URL) names no host".into(),
                ));
            }
        }
        if redis.prefix.is_empty()
            || redis.prefix.len() > 64
            || redis
                .prefix
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(ConfigError(
                "cluster.redis.prefix (SSER_CLUSTER_REDIS_PREFIX) must be 1-64 characters without spaces or control characters".into(),
            ));
        }
        if redis.max_stream_length.0 == 0 {
            return Err(ConfigError(
                "cluster.redis.maxStreamLength (SSER_CLUSTER_REDIS_MAX_STREAM_LENGTH) must be at least 1".into(),
            ));
        }
        if redis.timeout.0.is_zero() {
            return Err(ConfigError(
                "cluster.redis.timeout (SSER_CLUSTER_REDIS_TIMEOUT) must be above zero".into(),
            ));
        }
        if self.node_ttl.0 < std::time::Duration::from_secs(1) {
            return Err(ConfigError(
                "cluster.nodeTtl (SSER_CLUSTER_NODE_TTL) must be at least 1s".into(),
            ));
        }
        if self.node_check_interval.0 < std::time::Duration::from_millis(100) {
            return Err(ConfigError(
                "cluster.nodeCheckInterval (SSER_CLUSTER_NODE_CHECK_INTERVAL) must be at least 100ms"
                    .into(),
            ));
        }
        self.advertise_addr = self
            .advertise_addr
            .take()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty());
        if let Some(addr) = &self.advertise_addr {
            check_host_port(addr).map_err(|why| {
                ConfigError(format!(
                    "cluster.advertiseAddr (SSER_CLUSTER_ADVERTISE_ADDR) must be host:port, e.g. sser-1:8889 or [::1]:8889: {why}"
                ))
            })?;
        }
        let redis = &mut self.redis;
        if redis.wait_replicas.0 > 100 {
            return Err(ConfigError(
                "cluster.redis.waitReplicas (SSER_CLUSTER_REDIS_WAIT_REPLICAS) must be at most 100"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// Whether `addr` is `host:port`: a host (a name, an IPv4 address or a
/// bracketed IPv6 one) of printable characters and a port 1-65535.
fn check_host_port(addr: &str) -> Result<(), &'static str> {
    if addr.len() > 300 || addr.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("at most 300 characters, no spaces");
    }
    let (host, port) = addr.rsplit_once(':').ok_or("no :port")?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err("the port is not 1-65535"),
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.is_empty() || bare.contains(['/', '@', '[', ']']) {
        return Err("no host");
    }
    if bare.contains(':') && bare.len() == host.len() {
        return Err("an IPv6 address goes in brackets");
    }
    Ok(())
}

/// The URL with any password replaced, for logs and messages.
pub fn redacted_url(raw: &str) -> String {
    match url::Url::parse(raw.trim()) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "(unparseable URL)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, env};

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().map_err(|e| ConfigError(e.to_string()))?;
        Config::from_sources(dir.path(), &env(pairs))
    }

    #[test]
    fn off_unless_a_url_is_set() {
        let c = load(&[]).unwrap();
        assert!(!c.cluster.is_on());
        let c = load(&[("SSER_CLUSTER_REDIS_URL", "  ")]).unwrap();
        assert!(!c.cluster.is_on());
    }

    #[test]
    fn keys_from_env() {
        let c = load(&[
            ("SSER_CLUSTER_REDIS_URL", "redis://u:pw@127.0.0.1:6379/2"),
            ("SSER_CLUSTER_REDIS_WAIT_REPLICAS", "1"),
            ("SSER_CLUSTER_REDIS_PREFIX", "app1:"),
            ("SSER_CLUSTER_REDIS_MAX_STREAM_LENGTH", "500"),
            ("SSER_CLUSTER_REDIS_TIMEOUT", "500ms"),
            ("SSER_CLUSTER_NODE_TTL", "3s"),
            ("SSER_CLUSTER_NODE_CHECK_INTERVAL", "1s"),
            ("SSER_CLUSTER_ADVERTISE_ADDR", " sser-2.internal:8889 "),
        ])
        .unwrap();
        assert_eq!(
            c.cluster.advertise_addr.as_deref(),
            Some("sser-2.internal:8889")
        );
        let r = &c.cluster.redis;
        assert!(c.cluster.is_on());
        assert_eq!((r.wait_replicas.0, r.max_stream_length.0), (1, 500));
        assert_eq!(r.prefix, "app1:");
        assert_eq!(r.timeout.0.as_millis(), 500);
        assert_eq!(c.cluster.node_ttl.0.as_secs(), 3);
        assert_eq!(c.cluster.node_check_interval.0.as_secs(), 1);
    }

    #[test]
    fn bad_values_name_their_key_and_hide_the_password() {
        for (var, value, key) in [
            (
                "SSER_CLUSTER_REDIS_URL",
                "http://u:hunter2@h/",
                "cluster.redis.url",
            ),
            ("SSER_CLUSTER_REDIS_URL", "hunter2", "cluster.redis.url"),
            ("SSER_CLUSTER_REDIS_PREFIX", "a b", "cluster.redis.prefix"),
            (
                "SSER_CLUSTER_REDIS_MAX_STREAM_LENGTH",
                "0",
                "cluster.redis.maxStreamLength",
            ),
            ("SSER_CLUSTER_REDIS_TIMEOUT", "0s", "cluster.redis.timeout"),
            ("SSER_CLUSTER_NODE_TTL", "500ms", "cluster.nodeTtl"),
            (
                "SSER_CLUSTER_NODE_CHECK_INTERVAL",
                "10ms",
                "cluster.nodeCheckInterval",
            ),
            (
                "SSER_CLUSTER_ADVERTISE_ADDR",
                "sser-2",
                "cluster.advertiseAddr",
            ),
            (
                "SSER_CLUSTER_ADVERTISE_ADDR",
                "h:0",
                "cluster.advertiseAddr",
            ),
            (
                "SSER_CLUSTER_ADVERTISE_ADDR",
                "::1:80",
                "cluster.advertiseAddr",
            ),
            (
                "SSER_CLUSTER_ADVERTISE_ADDR",
                "a b:80",
                "cluster.advertiseAddr",
            ),
            (
                "SSER_CLUSTER_ADVERTISE_ADDR",
                ":80",
                "cluster.advertiseAddr",
            ),
        ] {
            let mut pairs = vec![(var, value)];
            if var != "SSER_CLUSTER_REDIS_URL" {
                pairs.push(("SSER_CLUSTER_REDIS_URL", "redis://127.0.0.1/"));
            }
            let e = load(&pairs).expect_err(var).0;
            assert!(e.contains(key), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn advertise_addr_takes_names_and_both_address_families() {
        for ok in ["sser-1:8889", "10.0.0.7:80", "[::1]:8889", "[fe80::1]:1"] {
            assert_eq!(check_host_port(ok), Ok(()), "{ok}");
        }
        let c = load(&[("SSER_CLUSTER_ADVERTISE_ADDR", "  ")]).unwrap();
        assert_eq!(c.cluster.advertise_addr, None);
    }

    #[test]
    fn redaction_hides_passwords_only() {
        assert_eq!(
            redacted_url("redis://user:secret@h:6379/0"),
            "redis://user:***@h:6379/0"
        );
        assert_eq!(redacted_url("rediss://h:6380"), "rediss://h:6380");
    }
}
