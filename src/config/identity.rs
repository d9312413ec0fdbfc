//! `identity.*`: identity tokens (see `crate::identity`): the keys that
//! check them, which claims mean what, and minting. Off unless enabled or a
//! key is configured; on without a key, start-up refuses outside
//! development, and development generates a secret and prints it once.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::{Count, Flag, Span, StringList};
use crate::secret::Secret;

/// Every JWT algorithm name sser can verify, as written in a token's header.
pub const JWT_ALGORITHMS: [&str; 12] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "EdDSA",
];

/// Claims whose meaning JWT fixes; none can carry a user, app, device or
/// topics.
const RESERVED_CLAIMS: [&str; 5] = ["exp", "nbf", "iat", "aud", "jti"];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IdentityConfig {
    /// Turn identity tokens on. Configuring any key turns them on too.
    pub enabled: Flag,
    /// Shared HMAC secret: verifies HS256/384/512 tokens, mints HS256 ones.
    pub secret: Option<Secret>,
    /// Asymmetric keys (PEM), each pinned to one algorithm.
    pub keys: Vec<IdentityKeyConfig>,
    pub jwks: JwksConfig,
    /// Algorithms accepted in a token's header; empty: all the keys support.
    pub algorithms: StringList,
    /// Accepted `aud` values; empty: `aud` is not checked.
    pub audience: StringList,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Span,
    /// Refuse tokens without `exp`.
    pub require_exp: Flag,
    /// The application of a token without the application claim.
    pub default_app: String,
    pub claims: ClaimsConfig,
    pub mint: MintConfig,
    /// A second live connection of one (app, user, device): `takeover` (the
    /// older one ends with `sser.taken_over`) or `reject` (the newer gets 409).
    pub takeover: TakeoverMode,
    /// How long after a take-over the replaced connection's automatic
    /// reconnect (with the `Last-Event-ID` it was last sent) is refused
    /// with 409, so that an `EventSource` stops instead of taking the
    /// device back; `0`: never refused.
    pub takeover_guard: Span,
    pub limits: IdentityLimits,
    /// The cookie a browser's identity token may come in (`EventSource`
    /// with `withCredentials`), when no header or `?access_token=` has one.
    pub cookie: String,
    pub inbox: InboxConfig,
    /// Most users plus devices one `POST /api/v1/send` may name.
    pub max_send_targets: Count,
}

/// See [`IdentityConfig::takeover`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TakeoverMode {
    Takeover,
    Reject,
}

/// `identity.limits.*`: what one identity connection (or user, or client
/// address) may hold; over a limit the connection gets 429 naming it.
/// `0` means no limit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IdentityLimits {
    /// Identity connections one user may hold at once, across devices.
    pub max_connections_per_user: Count,
    /// Identity connections from one client IP address (the accept loop's
    /// own per-address cap on TCP connections is separate).
    pub max_connections_per_ip: Count,
    /// Streams (inboxes and topics) one identity connection may follow.
    pub max_streams_per_connection: Count,
}

impl Default for IdentityLimits {
    fn default() -> Self {
        IdentityLimits {
            max_connections_per_user: Count(100),
            max_connections_per_ip: Count(0),
            max_streams_per_connection: Count(64),
        }
    }
}

/// `identity.inbox`: history kept per identity inbox (an application's
/// broadcast, a user's, a device's), replayed to a client that reconnects
/// with `Last-Event-ID`. On the disk store when `kv.enabled`, else in memory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InboxConfig {
    /// Events kept per inbox (at least 1).
    pub max_events: Count,
    /// Events older than this are dropped; `0`: no age limit.
    pub max_age: Span,
}

impl Default for InboxConfig {
    fn default() -> Self {
        InboxConfig {
            max_events: Count(100),
            max_age: Span(std::time::Duration::from_secs(24 * 3600)),
        }
    }
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            enabled: Flag(false),
            secret: None,
            keys: Vec::new(),
            jwks: JwksConfig::default(),
            algorithms: StringList::default(),
            audience: StringList::default(),
            leeway: Span(std::time::Duration::from_secs(30)),
            require_exp: Flag(true),
            default_app: "default".to_string(),
            claims: ClaimsConfig::default(),
            mint: MintConfig::default(),
            takeover: TakeoverMode::Takeover,
            takeover_guard: Span(std::time::Duration::from_secs(10)),
            limits: IdentityLimits::default(),
            cookie: "sser_token".to_string(),
            inbox: InboxConfig::default(),
            max_send_targets: Count(1000),
        }
    }
}

/// One entry of `identity.keys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentityKeyConfig {
    /// RS256/384/512, PS256/384/512, ES256, ES384 or EdDSA.
    pub alg: String,
    /// When set, the key checks only tokens naming this `kid`.
    #[serde(default)]
    pub kid: Option<String>,
    /// PEM text or the path of a PEM file.
    #[serde(default)]
    pub public_key: Option<String>,
    /// PEM text or the path of a PEM file, for minting.
    #[serde(default)]
    pub private_key: Option<Secret>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JwksConfig {
    /// A JWKS document on disk.
    pub file: Option<PathBuf>,
    /// A JWKS URL (an issuer's `jwks_uri`).
    pub url: Option<String>,
    pub refresh_interval: Span,
    pub min_refresh_interval: Span,
    pub fetch_timeout: Span,
}

impl Default for JwksConfig {
    fn default() -> Self {
        JwksConfig {
            file: None,
            url: None,
            refresh_interval: Span(std::time::Duration::from_secs(600)),
            min_refresh_interval: Span(std::time::Duration::from_secs(30)),
            fetch_timeout: Span(std::time::Duration::from_secs(10)),
        }
    }
}

/// Claim names; a name starting with `/` is a JSON Pointer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClaimsConfig {
    pub user: String,
    pub app: String,
    pub device: String,
    pub topics: String,
}

impl Default for ClaimsConfig {
    fn default() -> Self {
        ClaimsConfig {
            user: "sub".to_string(),
            app: "iss".to_string(),
            device: "device".to_string(),
            topics: "topics".to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MintConfig {
    /// Lifetime of a minted token when the request names none.
    pub default_ttl: Span,
    /// Longest lifetime a request may ask for.
    pub max_ttl: Span,
    /// Signing algorithm; empty: HS256 with the secret, else the first key
    /// with a private key.
    pub algorithm: Option<String>,
}

impl Default for MintConfig {
    fn default() -> Self {
        MintConfig {
            default_ttl: Span(std::time::Duration::from_secs(3600)),
            max_ttl: Span(std::time::Duration::from_secs(24 * 3600)),
            algorithm: None,
        }
    }
}

impl IdentityConfig {
    /// Whether identity tokens are in use: enabled, or a key configured.
    pub fn is_on(&self) -> bool {
        self.enabled.0 || self.has_key()
    }

    pub(super) fn has_key(&self) -> bool {
        self.secret.is_some() || !self.keys.is_empty() || self.jwks.source_count() > 0
    }

    /// Empty strings (blank YAML values, `${VAR}` of an unset variable)
    /// read as unset.
    fn normalize(&mut self) {
        if self.secret.as_ref().is_some_and(Secret::is_empty) {
            self.secret = None;
        }
        if self
            .jwks
            .file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            self.jwks.file = None;
        }
        if self.jwks.url.as_ref().is_some_and(|u| u.trim().is_empty()) {
            self.jwks.url = None;
        }
        if self
            .mint
            .algorithm
            .as_ref()
            .is_some_and(|a| a.trim().is_empty())
        {
            self.mint.algorithm = None;
        }
    }

    /// Checks what types alone cannot. When identity is on without a key,
    /// development gets a generated secret (returned, to be printed once);
    /// any other environment gets an error.
    pub(super) fn check(
        &mut self,
        app_env: &str,
    ) -> Result<Option<(&'static str, Secret)>, ConfigError> {
        self.normalize();
        if !self.is_on() {
            return Ok(None);
        }
        for alg in &self.algorithms.0 {
            if !JWT_ALGORITHMS.contains(&alg.as_str()) {
                return Err(ConfigError(format!(
                    "identity.algorithms (SSER_JWT_ALGORITHMS): {alg:?} is not one of {}",
                    JWT_ALGORITHMS.join(", ")
                )));
            }
        }
        for (i, key) in self.keys.iter().enumerate() {
            if !JWT_ALGORITHMS[3..].contains(&key.alg.as_str()) {
                return Err(ConfigError(format!(
                    "identity.keys[{i}].alg must be one of {} (HS* use identity.secret), got {:?}",
                    JWT_ALGORITHMS[3..].join(", "),
                    key.alg
                )));
            }
            if key.public_key.is_none() && key.private_key.is_none() {
                return Err(ConfigError(format!(
                    "identity.keys[{i}] needs a publicKey (or a privateKey)"
                )));
            }
        }
        self.jwks.check()?;
        self.check_claims()?;
        self.check_times()?;
        self.check_delivery()?;
        if let Some(alg) = &self.mint.algorithm
            && !JWT_ALGORITHMS.contains(&alg.as_str())
        {
            return Err(ConfigError(format!(
                "identity.mint.algorithm: {alg:?} is not one of {}",
                JWT_ALGORITHMS.join(", ")
            )));
        }
        if self.has_key() {
            return Ok(None);
        }
        if app_env != "development" {
            return Err(ConfigError(format!(
                "identity.enabled is true but no key is configured: set identity.secret (SSER_JWT_SECRET), identity.keys or identity.jwks (APP_ENV={app_env} has no default secret)"
            )));
        }
        let secret = Secret::generate();
        self.secret = Some(secret.clone());
        Ok(Some(("SSER_JWT_SECRET", secret)))
    }

    fn check_claims(&self) -> Result<(), ConfigError> {
        let c = &self.claims;
        let named = [
            ("user", "SSER_JWT_USER_CLAIM", &c.user),
            ("app", "SSER_JWT_APP_CLAIM", &c.app),
            ("device", "SSER_JWT_DEVICE_CLAIM", &c.device),
            ("topics", "SSER_JWT_TOPICS_CLAIM", &c.topics),
        ];
        for (i, (leaf, var, name)) in named.iter().enumerate() {
            let problem = if name.trim().is_empty() {
                Some("must not be empty".to_string())
            } else if RESERVED_CLAIMS.contains(&name.as_str()) {
                Some(format!("{name:?} is a reserved JWT claim"))
            } else if named[..i].iter().any(|(_, _, other)| other == name) {
                Some(format!("{name:?} is also used for another claim"))
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(ConfigError(format!(
                    "identity.claims.{leaf} ({var}) {problem}"
                )));
            }
        }
        let app = &self.default_app;
        if app.is_empty() || app.len() > 256 || app.chars().any(char::is_control) {
            return Err(ConfigError(
                "identity.defaultApp (SSER_IDENTITY_DEFAULT_APP) must be 1-256 bytes without control characters".into(),
            ));
        }
        Ok(())
    }

    fn check_delivery(&self) -> Result<(), ConfigError> {
        // RFC 6265's cookie-name: an HTTP token.
        let token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if self.cookie.is_empty() || !self.cookie.chars().all(token_char) {
            return Err(ConfigError(format!(
                "identity.cookie (SSER_IDENTITY_COOKIE) must be a cookie name (letters, digits and !#$%&'*+-.^_`|~), got {:?}",
                self.cookie
            )));
        }
        if self.inbox.max_events.0 == 0 {
            return Err(ConfigError(
                "identity.inbox.maxEvents (SSER_INBOX_MAX_EVENTS) must be at least 1".into(),
            ));
        }
        if self.max_send_targets.0 == 0 {
            return Err(ConfigError(
                "identity.maxSendTargets (SSER_SEND_MAX_TARGETS) must be at least 1".into(),
            ));
        }
        Ok(())
    }

    fn check_times(&self) -> Result<(), ConfigError> {
        let (default, max) = (self.mint.default_ttl.0, self.mint.max_ttl.0);
        if max.as_secs() == 0 {
            return Err(ConfigError(
                "identity.mint.maxTtl (SSER_JWT_MAX_TTL) must be at least 1s".into(),
            ));
        }
        if default.as_secs() == 0 || default > max {
            return Err(ConfigError(format!(
                "identity.mint.defaultTtl (SSER_JWT_DEFAULT_TTL) must be between 1s and identity.mint.maxTtl ({})",
                humantime::format_duration(max)
            )));
        }
        Ok(())
    }
}

impl JwksConfig {
    pub(super) fn source_count(&self) -> usize {
        usize::from(self.file.is_some()) + usize::from(self.url.is_some())
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.source_count() > 1 {
            return Err(ConfigError(
                "identity.jwks: set file (SSER_JWT_JWKS_FILE) or url (SSER_JWT_JWKS_URL), not both"
                    .into(),
            ));
        }
        if let Some(url) = &self.url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError(format!(
                "identity.jwks.url (SSER_JWT_JWKS_URL) must be an https:// (or http://) URL, got {url:?}"
            )));
        }
        for (key, span) in [
            ("refreshInterval", self.refresh_interval),
            ("minRefreshInterval", self.min_refresh_interval),
            ("fetchTimeout", self.fetch_timeout),
        ] {
            if span.0.is_zero() {
                return Err(ConfigError(format!(
                    "identity.jwks.{key} must be above zero"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::super::Config;

    fn load(dir: &Path, pairs: &[(&str, &str)]) -> Result<Config, String> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_sources(dir, &env).map_err(|e| e.to_string())
    }

    const PROD: [(&str, &str); 3] = [
        ("APP_ENV", "production"),
        ("SSER_API_ACCESS_TOKEN", "a"),
        ("SSER_METRICS_ACCESS_TOKEN", "b"),
    ];

    #[test]
    fn off_by_default_and_on_with_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let c = load(dir.path(), &PROD).unwrap();
        assert!(!c.identity.is_on());
        let mut env = PROD.to_vec();
        env.push(("SSER_JWT_SECRET", "s#1 literal"));
        let c = load(dir.path(), &env).unwrap();
        assert!(c.identity.is_on());
        assert!(c.identity.secret.unwrap().matches("s#1 literal"));
        assert!(
            c.generated_tokens
                .iter()
                .all(|(v, _)| *v != "SSER_JWT_SECRET")
        );
    }

    #[test]
    fn enabled_without_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = PROD.to_vec();
        env.push(("SSER_IDENTITY_ENABLED", "true"));
        let err = load(dir.path(), &env).unwrap_err();
        assert!(
            err.contains("SSER_JWT_SECRET") && err.contains("no key"),
            "{err}"
        );
        let c = load(dir.path(), &[("SSER_IDENTITY_ENABLED", "true")]).unwrap();
        let (var, secret) = c
            .generated_tokens
            .iter()
            .find(|(v, _)| *v == "SSER_JWT_SECRET")
            .unwrap();
        assert_eq!(*var, "SSER_JWT_SECRET");
        assert_eq!(c.identity.secret.as_ref(), Some(secret));
    }

    #[test]
    fn bad_values_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        for (pairs, expected) in [
            (
                vec![
                    ("SSER_JWT_SECRET", "s"),
                    ("SSER_JWT_ALGORITHMS", "HS256,none"),
                ],
                "identity.algorithms (SSER_JWT_ALGORITHMS)",
            ),
            (
                vec![("SSER_JWT_SECRET", "s"), ("SSER_JWT_USER_CLAIM", "exp")],
                "identity.claims.user (SSER_JWT_USER_CLAIM)",
            ),
            (
                vec![("SSER_JWT_SECRET", "s"), ("SSER_JWT_DEVICE_CLAIM", "sub")],
                "identity.claims.device (SSER_JWT_DEVICE_CLAIM)",
            ),
            (
                vec![("SSER_JWT_SECRET", "s"), ("SSER_JWT_DEFAULT_TTL", "2d")],
                "identity.mint.defaultTtl (SSER_JWT_DEFAULT_TTL)",
            ),
            (
                vec![("SSER_JWT_JWKS_URL", "ftp://x"), ("SSER_JWT_JWKS_FILE", "")],
                "identity.jwks.url (SSER_JWT_JWKS_URL)",
            ),
            (
                vec![
                    ("SSER_JWT_JWKS_URL", "https://x"),
                    ("SSER_JWT_JWKS_FILE", "/k"),
                ],
                "not both",
            ),
            (
                vec![("SSER_JWT_SECRET", "s"), ("SSER_JWT_LEEWAY", "soon")],
                "identity.leeway (SSER_JWT_LEEWAY)",
            ),
            (
                vec![("SSER_JWT_SECRET", "s"), ("SSER_IDENTITY_COOKIE", "a b")],
                "identity.cookie (SSER_IDENTITY_COOKIE)",
            ),
            (
                vec![("SSER_JWT_SECRET", "s"), ("SSER_INBOX_MAX_EVENTS", "0")],
                "identity.inbox.maxEvents (SSER_INBOX_MAX_EVENTS)",
            ),
            (
                vec![("SSER_JWT_SECRET", "s"), ("SSER_SEND_MAX_TARGETS", "0")],
                "identity.maxSendTargets (SSER_SEND_MAX_TARGETS)",
            ),
        ] {
            let err = load(dir.path(), &pairs).unwrap_err();
            assert!(err.contains(expected), "{expected}: {err}");
        }
        std::fs::write(
            dir.path().join("base.yaml"),
            "identity:\n  keys:\n    - alg: HS256\n      publicKey: x\n",
        )
        .unwrap();
        let err = load(dir.path(), &[]).unwrap_err();
        assert!(err.contains("identity.keys[0].alg"), "{err}");
        std::fs::write(
            dir.path().join("base.yaml"),
            "identity:\n  keys:\n    - alg: ES256\n      kid: a\n",
        )
        .unwrap();
        let err = load(dir.path(), &[]).unwrap_err();
        assert!(err.contains("identity.keys[0] needs a publicKey"), "{err}");
    }
}
