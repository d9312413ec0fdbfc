//! Readiness: named checks that parts of the server set (the store, TLS
//! certificates, shutdown), read by `GET /readyz`. Liveness (`/healthz`)
//! needs none of this: if the process answers, it is alive.

use std::collections::BTreeMap;

use parking_lot::RwLock;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Check {
    pub ok: bool,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct Readiness {
    checks: RwLock<BTreeMap<&'static str, Check>>,
}

impl Readiness {
    pub fn set(&self, name: &'static str, ok: bool, message: impl Into<String>) {
        self.checks.write().insert(
            name,
            Check {
                ok,
                message: message.into(),
            },
        );
    }

    pub fn is_ready(&self) -> bool {
        self.checks.read().values().all(|c| c.ok)
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, Check> {
        self.checks.read().clone()
    }
}
