//! `log.*`: the `tracing` filter and the output format (`main` sets up
//! tracing from it before anything else runs).

use serde::{Deserialize, Serialize};

use super::load::ConfigError;

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

impl LogConfig {
    /// Checks what types alone cannot.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if !["auto", "pretty", "json"].contains(&self.format.as_str()) {
            return Err(ConfigError(format!(
                "log.format (SSER_LOG_FORMAT) must be auto, pretty or json, got {:?}",
                self.format
            )));
        }
        Ok(())
    }
}
