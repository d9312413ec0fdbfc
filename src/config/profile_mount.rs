//! The three placement keys every `compat.<profile>` section starts with
//! ([`ProfileMount`]), shared by the profiles' own config files and read
//! by `compat.rs`, which holds the profiles together.

use std::net::SocketAddr;

use super::load::ConfigError;
use super::values::{Flag, ListenAddr};

/// Where a profile is served, read from the three keys every
/// `compat.<profile>` section starts with:
///
/// - `enabled` (`SSER_COMPAT_<PROFILE>_ENABLED`): serve the profile;
///   setting `addr` enables it too;
/// - `prefix` (`SSER_COMPAT_<PROFILE>_PREFIX`): where on the main listener
///   its paths start (`""`: the original's exact paths, at the root; else
///   `/something`, no trailing slash);
/// - `addr` (`SSER_COMPAT_<PROFILE>_ADDR`): a listener of its own, where
///   it is served at its exact paths, and not on the main listener.
///
/// They are fields of each profile's own struct rather than a flattened
/// shared one: serde's `flatten` would lose the key's name in errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileMount {
    pub enabled: bool,
    pub prefix: String,
    pub addr: Option<SocketAddr>,
}

impl ProfileMount {
    /// Reads the three keys.
    pub fn new(enabled: Flag, prefix: &str, addr: Option<ListenAddr>) -> ProfileMount {
        ProfileMount {
            enabled: enabled.0 || addr.is_some(),
            prefix: prefix.to_string(),
            addr: addr.map(|a| a.0),
        }
    }
}

/// Checks `<key>.prefix` and trims a trailing `/` (`/ns/` means `/ns`).
pub(super) fn check_prefix(key: &str, prefix: &mut String) -> Result<(), ConfigError> {
    let trimmed = prefix.trim().trim_end_matches('/').to_string();
    if !trimmed.is_empty() && !trimmed.starts_with('/') {
        return Err(ConfigError(format!(
            "{key}.prefix = {prefix:?} must start with / (e.g. /ns), or be empty for the root"
        )));
    }
    if trimmed.contains(['{', '}', '*', '?', '#']) || trimmed.contains("//") {
        return Err(ConfigError(format!(
            "{key}.prefix = {prefix:?} must be a plain path such as /ns (no {{}}, *, ?, # or //)"
        )));
    }
    *prefix = trimmed;
    Ok(())
}
