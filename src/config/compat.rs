//! `compat.*`: the compatibility profiles, one sub-section each
//! (`compat.notificationService`, …). Every profile has the same three
//! placement keys ([`ProfileMount`](super::ProfileMount)); its own keys live in its own file
//! (`compat_<name>.rs`), so that profiles are added without touching each
//! other.
//!
//! Configuration's own types; `lib.rs` turns them into `compat::Profiles`.

use serde::{Deserialize, Serialize};

use super::compat_go_sse_broker::GoSseBrokerConfig;
use super::compat_gosse::GosseConfig;
use super::compat_notification_service::NotificationServiceConfig;
use super::identity::IdentityConfig;
use super::load::ConfigError;

/// `compat.*`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CompatConfig {
    /// sse-notification-service (`compat.notificationService.*`).
    pub notification_service: NotificationServiceConfig,
    /// go-sse-broker (`compat.goSseBroker.*`).
    pub go_sse_broker: GoSseBrokerConfig,
    /// goSSE (`compat.gosse.*`).
    pub gosse: GosseConfig,
}

impl CompatConfig {
    /// Checks every profile's keys; a profile whose original had its own
    /// token key may fill in the identity key (before `identity` checks).
    pub(super) fn check(
        &mut self,
        identity: &mut IdentityConfig,
        app_env: &str,
    ) -> Result<(), ConfigError> {
        self.notification_service.check(identity, app_env)?;
        self.go_sse_broker.check()?;
        self.go_sse_broker.apply(app_env, identity)?;
        self.gosse.check()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, env};

    #[test]
    fn addr_enables_and_prefixes_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::from_sources(dir.path(), &env(&[])).unwrap();
        assert!(!c.compat.notification_service.mount().enabled);
        let c = Config::from_sources(
            dir.path(),
            &env(&[("SSER_COMPAT_NOTIFICATION_SERVICE_ADDR", "127.0.0.1:8080")]),
        )
        .unwrap();
        let mount = c.compat.notification_service.mount();
        assert!(mount.enabled);
        assert_eq!(mount.addr.unwrap().to_string(), "127.0.0.1:8080");
        let c = Config::from_sources(
            dir.path(),
            &env(&[
                ("SSER_COMPAT_NOTIFICATION_SERVICE_ENABLED", "true"),
                ("SSER_COMPAT_NOTIFICATION_SERVICE_PREFIX", "/ns/"),
            ]),
        )
        .unwrap();
        assert_eq!(c.compat.notification_service.mount().prefix, "/ns");

        for (prefix, needle) in [("ns", "must start with /"), ("/a/{b}", "plain path")] {
            let err = Config::from_sources(
                dir.path(),
                &env(&[("SSER_COMPAT_NOTIFICATION_SERVICE_PREFIX", prefix)]),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("compat.notificationService.prefix"), "{err}");
            assert!(err.contains(needle), "{err}");
        }
        let err = Config::from_sources(
            dir.path(),
            &env(&[("SSER_COMPAT_NOTIFICATION_SERVICE_ADDR", "nowhere")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("SSER_COMPAT_NOTIFICATION_SERVICE_ADDR"),
            "{err}"
        );
    }
}
