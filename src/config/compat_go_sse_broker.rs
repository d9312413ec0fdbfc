//! `compat.goSseBroker.*`: the go-sse-broker profile's keys: where it is
//! served (the three every profile has, see [`ProfileMount`]), its own, and
//! go-sse-broker's own `config.toml` terms, mapped onto ours:
//!
//! | go-sse-broker | here | becomes |
//! |---|---|---|
//! | `[jwt] secret` | `compat.goSseBroker.jwt.secret` | `identity.secret` |
//! | `[jwt] expire` | `compat.goSseBroker.jwt.expire` | the profile's `/token` lifetime |
//! | `[sse] heartbeat_interval` | `compat.goSseBroker.sse.heartbeat_interval` | its streams' `:heartbeat` period (unset: `pubsub.tickFrequency`) |
//!
//! The secret is mapped here, before `identity.*` is checked, so it is held
//! to the same rules as one written natively, and a clash between the two
//! spellings stops start-up naming both keys.

use serde::{Deserialize, Serialize};

use super::profile_mount::{ProfileMount, check_prefix};
use super::values::{Flag, ListenAddr};
use super::{ConfigError, IdentityConfig, Span, StringList};
use crate::secret::Secret;

const KEY: &str = "compat.goSseBroker";

/// The placeholder in go-sse-broker's sample `config.toml`: a deployment
/// that never changed it signs with a secret everyone knows.
const SAMPLE_SECRET: &str = "please_modify";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GoSseBrokerConfig {
    /// `SSER_COMPAT_GO_SSE_BROKER_ENABLED`.
    pub enabled: Flag,
    /// `SSER_COMPAT_GO_SSE_BROKER_PREFIX`.
    pub prefix: String,
    /// `SSER_COMPAT_GO_SSE_BROKER_ADDR`.
    pub addr: Option<ListenAddr>,
    /// The application its users live in; unset: `identity.defaultApp`.
    pub app: Option<String>,
    /// Back-end addresses (IPs or CIDR blocks) that may call `/token`,
    /// `/send`, `/info` and `/kick` WITHOUT the API token. Empty: none.
    pub unauthenticated_from: StringList,
    /// The address `/info` and `sys_instance_close` give for this node;
    /// unset: the address the profile listens on.
    pub instance_address: Option<String>,
    pub jwt: BrokerJwt,
    pub sse: BrokerSse,
}

/// go-sse-broker's `[jwt]` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerJwt {
    /// `[jwt] secret`: the HMAC secret tokens are signed with.
    pub secret: Option<Secret>,
    /// `[jwt] expire`: a `/token` without `ttl` lives this long (a number
    /// is seconds); `0` or unset: `identity.mint.defaultTtl`.
    pub expire: Option<Span>,
}

/// go-sse-broker's `[sse]` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerSse {
    /// `[sse] heartbeat_interval`: how often its streams get `:heartbeat`
    /// (a number is seconds); `0` or unset: `pubsub.tickFrequency`.
    pub heartbeat_interval: Option<Span>,
}

impl GoSseBrokerConfig {
    /// Where the profile is served.
    pub fn mount(&self) -> ProfileMount {
        ProfileMount::new(self.enabled, &self.prefix, self.addr)
    }

    pub(super) fn check(&mut self) -> Result<(), ConfigError> {
        check_prefix(KEY, &mut self.prefix)
    }

    /// Maps the original's terms onto `identity.*` and, when the profile is
    /// enabled, turns identity tokens on (it needs them). Runs before that
    /// section is checked.
    pub(super) fn apply(
        &self,
        app_env: &str,
        identity: &mut IdentityConfig,
    ) -> Result<(), ConfigError> {
        if let Some(secret) = self.jwt.secret.as_ref().filter(|s| !s.is_empty()) {
            if secret.expose() == SAMPLE_SECRET {
                return Err(ConfigError(format!(
                    "compat.goSseBroker.jwt.secret is go-sse-broker's sample placeholder {SAMPLE_SECRET:?}: set a secret of your own"
                )));
            }
            match &identity.secret {
                Some(native) if native.expose() != secret.expose() => {
                    return Err(ConfigError(
                        "compat.goSseBroker.jwt.secret and identity.secret (SSER_JWT_SECRET) differ: they are the same secret, set only one".into(),
                    ));
                }
                _ => identity.secret = Some(secret.clone()),
            }
        }
        if let Some(Span(expire)) = self.jwt.expire
            && expire > identity.mint.max_ttl.0
        {
            return Err(ConfigError(format!(
                "compat.goSseBroker.jwt.expire ({}) is longer than identity.mint.maxTtl ({}), the longest a token may live",
                humantime::format_duration(expire),
                humantime::format_duration(identity.mint.max_ttl.0)
            )));
        }
        if let Some(app) = &self.app
            && (app.is_empty() || app.len() > 256 || app.chars().any(char::is_control))
        {
            return Err(ConfigError(
                "compat.goSseBroker.app must be 1-256 bytes without control characters".into(),
            ));
        }
        if self.mount().enabled {
            if !identity.has_key() && app_env != "development" {
                return Err(ConfigError(format!(
                    "compat.goSseBroker needs a key to sign and check its tokens: set compat.goSseBroker.jwt.secret (go-sse-broker's [jwt] secret) or identity.secret (SSER_JWT_SECRET) (APP_ENV={app_env} has no default secret)"
                )));
            }
            identity.enabled.0 = true;
        }
        Ok(())
    }

    /// The `/token` lifetime when a request names none (`jwt.expire`; `0`:
    /// the identity default).
    pub fn token_ttl(&self) -> Option<std::time::Duration> {
        self.jwt.expire.map(|s| s.0).filter(|d| !d.is_zero())
    }

    /// The `:heartbeat` period when one is set (`sse.heartbeat_interval`;
    /// `0`: none, `pubsub.tickFrequency` applies).
    pub fn heartbeat_interval(&self) -> Option<std::time::Duration> {
        self.sse
            .heartbeat_interval
            .map(|s| s.0)
            .filter(|d| !d.is_zero())
    }
}
