//! How much history a stream keeps. Plain data: the HTTP body
//! (`http::pubsubs`) and the disk codec (`store::codec`) each turn their own
//! wire format into this, so neither format leaks into the other.

use std::time::Duration;

/// Limits on what a stream's history keeps. `None` means no limit of that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub max_events: Option<u64>,
    pub max_age: Option<Duration>,
    pub max_bytes: Option<u64>,
}

impl Retention {
    /// These limits, with every unset one taken from `defaults`.
    pub fn or(self, defaults: Retention) -> Retention {
        Retention {
            max_events: self.max_events.or(defaults.max_events),
            max_age: self.max_age.or(defaults.max_age),
            max_bytes: self.max_bytes.or(defaults.max_bytes),
        }
    }
}
