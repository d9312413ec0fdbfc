//! `compat.notificationService.*`: the sse-notification-service profile's
//! keys: where it is served (the three every profile has, see
//! [`ProfileMount`]) and its own.

use serde::{Deserialize, Serialize};

use super::compat::{ProfileMount, check_prefix};
use super::load::ConfigError;
use super::values::{Flag, ListenAddr};

const KEY: &str = "compat.notificationService";

/// `compat.notificationService`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NotificationServiceConfig {
    /// `SSER_COMPAT_NOTIFICATION_SERVICE_ENABLED`.
    pub enabled: Flag,
    /// `SSER_COMPAT_NOTIFICATION_SERVICE_PREFIX`.
    pub prefix: String,
    /// `SSER_COMPAT_NOTIFICATION_SERVICE_ADDR`.
    pub addr: Option<ListenAddr>,
}

impl NotificationServiceConfig {
    /// Where the profile is served.
    pub fn mount(&self) -> ProfileMount {
        ProfileMount::new(self.enabled, &self.prefix, self.addr)
    }

    pub(super) fn check(&mut self) -> Result<(), ConfigError> {
        check_prefix(KEY, &mut self.prefix)
    }
}
