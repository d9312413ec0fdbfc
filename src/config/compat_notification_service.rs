//! `compat.notificationService.*`: the sse-notification-service profile's
//! keys: where it is served (the three every profile has, see
//! [`ProfileMount`]), its `ping` interval, and its own `JWT_SECRET`, which
//! becomes the identity key its tokens are checked with.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::identity::IdentityConfig;
use super::load::ConfigError;
use super::profile_mount::{ProfileMount, check_prefix};
use super::values::{Flag, ListenAddr, Span};
use crate::secret::Secret;

const KEY: &str = "compat.notificationService";

/// `compat.notificationService`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NotificationServiceConfig {
    /// `SSER_COMPAT_NOTIFICATION_SERVICE_ENABLED`.
    pub enabled: Flag,
    /// `SSER_COMPAT_NOTIFICATION_SERVICE_PREFIX`.
    pub prefix: String,
    /// `SSER_COMPAT_NOTIFICATION_SERVICE_ADDR`.
    pub addr: Option<ListenAddr>,
    /// How often its streams get the `ping` event
    /// (`SSER_COMPAT_NOTIFICATION_SERVICE_PING_INTERVAL`; the original: 30 s).
    pub ping_interval: Span,
    /// The original's `JWT_SECRET`: with the profile on, it is the
    /// identity secret (`identity.secret`), unless that is set too, when
    /// both must agree.
    pub jwt_secret: Option<Secret>,
}

impl Default for NotificationServiceConfig {
    fn default() -> Self {
        NotificationServiceConfig {
            enabled: Flag(false),
            prefix: String::new(),
            addr: None,
            ping_interval: Span(Duration::from_secs(30)),
            jwt_secret: None,
        }
    }
}

impl NotificationServiceConfig {
    /// Where the profile is served.
    pub fn mount(&self) -> ProfileMount {
        ProfileMount::new(self.enabled, &self.prefix, self.addr)
    }

    /// Checks the keys and, with the profile on, makes sure identity
    /// tokens are on with a key: `JWT_SECRET` becomes `identity.secret`.
    /// Runs before `identity`'s own check (which, in development, generates
    /// a secret when none is configured).
    pub(super) fn check(
        &mut self,
        identity: &mut IdentityConfig,
        app_env: &str,
    ) -> Result<(), ConfigError> {
        check_prefix(KEY, &mut self.prefix)?;
        let ping = self.ping_interval.0;
        if ping < Duration::from_secs(1) || ping > Duration::from_secs(3600) {
            return Err(ConfigError(format!(
                "{KEY}.pingInterval (SSER_COMPAT_NOTIFICATION_SERVICE_PING_INTERVAL) must be between 1s and 1h, got {}",
                humantime::format_duration(ping)
            )));
        }
        if self.jwt_secret.as_ref().is_some_and(Secret::is_empty) {
            self.jwt_secret = None;
        }
        if !self.mount().enabled {
            return Ok(());
        }
        let identity_secret = identity.secret.as_ref().filter(|s| !s.is_empty());
        match (&self.jwt_secret, identity_secret) {
            (Some(theirs), Some(ours)) if !ours.matches(theirs.expose()) => {
                return Err(ConfigError(format!(
                    "{KEY}.jwtSecret (JWT_SECRET) and identity.secret (SSER_JWT_SECRET) differ: the profile's tokens are checked with the identity key, so set one of them (or both alike)"
                )));
            }
            (Some(theirs), None) => identity.secret = Some(theirs.clone()),
            _ => {}
        }
        if !identity.has_key() && app_env != "development" {
            return Err(ConfigError(format!(
                "{KEY} is on but no key checks its tokens: set JWT_SECRET (its own variable) or SSER_JWT_SECRET (or identity.keys / identity.jwks)"
            )));
        }
        identity.enabled = Flag(true);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, env};

    const ON: (&str, &str) = ("SSER_COMPAT_NOTIFICATION_SERVICE_ENABLED", "true");

    #[test]
    fn jwt_secret_becomes_the_identity_secret() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::from_sources(dir.path(), &env(&[ON, ("JWT_SECRET", "theirs")])).unwrap();
        assert!(c.identity.secret.unwrap().matches("theirs"));
        assert_eq!(c.compat.notification_service.ping_interval.0.as_secs(), 30);
        // Off, their variable changes nothing.
        let c = Config::from_sources(dir.path(), &env(&[("JWT_SECRET", "theirs")])).unwrap();
        assert!(c.identity.secret.is_none() && !c.identity.is_on());
        // Both, alike: fine; different: refused, naming both.
        let both = [ON, ("JWT_SECRET", "same"), ("SSER_JWT_SECRET", "same")];
        Config::from_sources(dir.path(), &env(&both)).unwrap();
        let err = Config::from_sources(
            dir.path(),
            &env(&[ON, ("JWT_SECRET", "a"), ("SSER_JWT_SECRET", "b")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("JWT_SECRET") && err.contains("SSER_JWT_SECRET"),
            "{err}"
        );
        assert!(!err.contains("\"a\"") && !err.contains("\"b\""), "{err}");
    }

    #[test]
    fn on_without_a_key_generates_one_only_in_development() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::from_sources(dir.path(), &env(&[ON])).unwrap();
        assert!(c.identity.is_on() && c.identity.secret.is_some());
        let err = Config::from_sources(
            dir.path(),
            &env(&[
                ON,
                ("APP_ENV", "production"),
                ("SSER_API_ACCESS_TOKEN", "a"),
                ("SSER_METRICS_ACCESS_TOKEN", "b"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("set JWT_SECRET"), "{err}");
    }

    #[test]
    fn ping_interval_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::from_sources(
            dir.path(),
            &env(&[("SSER_COMPAT_NOTIFICATION_SERVICE_PING_INTERVAL", "5s")]),
        )
        .unwrap();
        assert_eq!(c.compat.notification_service.ping_interval.0.as_secs(), 5);
        let err = Config::from_sources(
            dir.path(),
            &env(&[("SSER_COMPAT_NOTIFICATION_SERVICE_PING_INTERVAL", "0")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("compat.notificationService.pingInterval"),
            "{err}"
        );
    }
}
