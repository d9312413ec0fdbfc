//! `metrics.*`: who may read the Prometheus endpoint and how many series
//! it exposes.

use serde::{Deserialize, Serialize};

use super::values::Flag;

/// The Prometheus endpoint `GET /metrics`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MetricsConfig {
    /// Serve `/metrics` without a token (for a scraper on a private network).
    /// Off by default: it then takes the metrics token (or the API token).
    pub open: Flag,
    /// Add per-topic series (`topic="<id>"` labels). Off by default so the
    /// number of series stays bounded however many topics clients create.
    pub per_topic: Flag,
}
