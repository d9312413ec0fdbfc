//! Reading the registry ([`Connections`]) without changing it: find one
//! connection by id, list them all or a page at a time (in id order, so
//! pages are stable), count them by kind and per application, and sum up
//! one user's connections by device. Each read takes the registry's lock
//! once and costs O(what it returns), never a walk of the others
//! ([`super::owners`]).
//!
//! It lives apart from the registry's changes (admission, take-over,
//! ending: `super::connections`), which must all happen in one step under
//! the lock; a read only has to see one consistent moment of it. The
//! cluster-wide listings build on these ([`super::cluster`]).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use super::connection::Connection;
use super::connections::{ById, Connections};
use super::owners::{ConnId, Selector, lower};

/// Open connections by kind (no per-user detail: fit for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionCounts {
    /// Opened with topic tokens (or the API token).
    pub topic: u64,
    /// Opened with an identity token.
    pub identity: u64,
    /// On the presence stream.
    pub presence: u64,
}

/// One page of a listing, in connection id order.
pub struct Page {
    pub connections: Vec<Arc<Connection>>,
    /// Pass as `after` for the next page; `None` on the last one.
    pub next: Option<String>,
}

/// One user's connections, grouped by device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    /// When the oldest of its open connections opened (Unix ms).
    pub since_ms: u64,
    /// In device order; connections without a device come first, as
    /// `device: None`.
    pub devices: Vec<DeviceSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSummary {
    pub device: Option<Arc<str>>,
    pub connections: usize,
    pub since_ms: u64,
}

impl Connections {
    pub fn count(&self) -> usize {
        self.inner.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    pub fn counts(&self) -> ConnectionCounts {
        let r = self.inner.lock();
        let identity = r.owners.total();
        let presence = r.presence_streams;
        ConnectionCounts {
            topic: (r.by_id.len() - identity - presence) as u64,
            identity: identity as u64,
            presence: presence as u64,
        }
    }

    /// How many users of `app` are connected, and with how many identity
    /// connections. O(1).
    pub fn app_counts(&self, app: &str) -> (usize, usize) {
        self.inner.lock().owners.app_counts(app)
    }

    /// Every open connection, in id order.
    pub fn list(&self) -> Vec<Arc<Connection>> {
        self.inner
            .lock()
            .by_id
            .iter()
            .map(|c| c.0.clone())
            .collect()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Connection>> {
        self.inner.lock().by_id.get(id).map(|c| c.0.clone())
    }

    /// Up to `limit` connections, in id order after `after`: all of them
    /// (`selector` `None`), or the identity connections `selector` names.
    /// O(log n + limit).
    pub fn page(&self, selector: Option<Selector<'_>>, after: Option<&str>, limit: usize) -> Page {
        let r = self.inner.lock();
        let ask = limit.saturating_add(1);
        let ids: Vec<ConnId> = match selector {
            Some(selector) => r.owners.page(selector, after, ask),
            None => r
                .by_id
                .range::<str, _>((lower(after), Bound::Unbounded))
                .take(ask)
                .map(|c| c.0.id_arc().clone())
                .collect(),
        };
        let mut connections: Vec<Arc<Connection>> = ids
            .iter()
            .filter_map(|id| r.by_id.get(&**id).map(|c| c.0.clone()))
            .collect();
        let next = match connections.len() > limit {
            true => {
                connections.truncate(limit);
                connections.last().map(|c| c.id().to_string())
            }
            false => None,
        };
        Page { connections, next }
    }

    /// One user's open connections by device; `None` when it has none.
    /// O(the user's connections).
    pub fn user(&self, app: &str, user: &str) -> Option<UserSummary> {
        let r = self.inner.lock();
        let conns = r.owners.user_conns(app, user);
        UserSummary::of(
            conns
                .iter()
                .filter_map(|id| r.by_id.get(&**id))
                .map(|ById(conn)| {
                    let device = conn.owner().and_then(|o| o.device.clone());
                    (device, conn.opened_at_ms())
                }),
        )
    }
}

impl UserSummary {
    /// Sums up one user's connections, each given as (its device, when it
    /// opened): this node's ([`Connections::user`]) or the cluster's
    /// (`Hub::user_summary`). `None` when there are none.
    pub(super) fn of(
        connections: impl IntoIterator<Item = (Option<Arc<str>>, u64)>,
    ) -> Option<UserSummary> {
        let mut devices: BTreeMap<Option<Arc<str>>, DeviceSummary> = BTreeMap::new();
        for (device, opened_at_ms) in connections {
            let summary = devices
                .entry(device.clone())
                .or_insert_with(|| DeviceSummary {
                    device,
                    connections: 0,
                    since_ms: u64::MAX,
                });
            summary.connections += 1;
            summary.since_ms = summary.since_ms.min(opened_at_ms);
        }
        let since_ms = devices.values().map(|d| d.since_ms).min()?;
        Some(UserSummary {
            since_ms,
            devices: devices.into_values().collect(),
        })
    }
}
