//! Identity connections across the cluster: what the hub does with the
//! [`Directory`] when it has one (a cluster member), on top of its own
//! registry ([`Connections`](super::Connections)), which still decides
//! everything about this node's connections under its lock.
//!
//! - Opening: an identity connection claims its device (and is checked
//!   against the cluster's blocks) *before* it registers here
//!   ([`Hub::claim`]); a registry that then refuses gives the device back
//!   ([`Hub::release`]); an older owner on another node is told to end
//!   with the same farewell it would get here ([`Hub::take_over_remote`]).
//!   Redis away: the claim fails with 503 and nothing opens.
//! - Reading: listings, user summaries and counts merge this node's
//!   registry (always current, with every detail) with the directory's
//!   entries of the other live nodes ([`Listed`]).
//! - Ending: a kick ends this node's connections here and sends the others
//!   an `end` command; blocks are written to Redis first, so they hold on
//!   every node ([`Hub::end_connection`], [`Hub::kick`]).
//!
//! Without a directory (one node) every method here is the registry's own
//! answer, unchanged.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use tokio::sync::mpsc;

use super::admission::{BlockScope, Refusal, TakeoverPolicy};
use super::census::UserSummary;
use super::connection::Connection;
use super::connections::KickError;
use super::farewell::EndReason;
use super::listed::{Listed, ListedPage};
use super::owners::Selector;
use super::roster::scope_of;
use super::{Hub, HubError};
use crate::broker::BrokerError;
use crate::broker::directory::{
    AppCounts, Claimed, Command, Directory, Ending, Filter, Holder, Scope,
};

/// Listed per read of the directory when every entry is wanted.
const STEP: usize = 1000;

/// Why a connection could not be ended as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndError {
    NotFound,
    /// A block needs an identity to block; a topic connection has none.
    NoIdentity,
    /// It is on another node and Redis cannot carry the command now.
    Unavailable(String),
}

/// A device claimed in the cluster before registering here.
#[derive(Debug, Default)]
pub(crate) struct Claim {
    claimed: bool,
    previous: Option<Holder>,
}

fn filter_of<'a>(selector: Option<Selector<'a>>) -> Filter<'a> {
    match selector {
        None => Filter::All,
        Some(Selector::App(a)) => Filter::App(a),
        Some(Selector::User(a, u)) => Filter::User(a, u),
        Some(Selector::Device(a, u, d)) => Filter::Device(a, u, d),
    }
}

fn ending_of(why: &EndReason) -> Option<Ending> {
    match why {
        EndReason::Kicked { reason } => Some(Ending::Kicked {
            reason: reason.clone(),
        }),
        EndReason::TakenOver { by } => Some(Ending::TakenOver {
            by: by.map(|a| a.to_string()),
        }),
        EndReason::Expired | EndReason::Shutdown => None,
    }
}

fn reason_of(why: Ending) -> EndReason {
    match why {
        Ending::Kicked { reason } => EndReason::Kicked { reason },
        Ending::TakenOver { by } => EndReason::TakenOver {
            by: by.and_then(|a| a.parse::<SocketAddr>().ok()),
        },
    }
}

impl Hub {
    /// Makes this node's identity connections known to the cluster, and
    /// carries out the commands other nodes send it. Called once, at
    /// start-up, before any connection opens.
    pub fn attach_directory(self: &Arc<Self>, directory: Arc<dyn Directory>) {
        if let Some(commands) = directory.commands() {
            tokio::spawn(Hub::follow_commands(Arc::downgrade(self), commands));
        }
        self.connections.attach_directory(directory);
    }

    fn directory(&self) -> Option<&Arc<dyn Directory>> {
        self.connections.directory()
    }

    async fn follow_commands(hub: Weak<Hub>, mut commands: mpsc::UnboundedReceiver<Command>) {
        while let Some(command) = commands.recv().await {
            let Some(hub) = hub.upgrade() else { return };
            match command {
                Command::End { ids, why } => {
                    let why = reason_of(why);
                    for id in ids {
                        // Gone already, or never here: nothing to end.
                        let _ = hub.connections.end(&id, why.clone(), None);
                    }
                }
                Command::Rejoin => hub.connections.rejoin(),
            }
        }
    }

    /// The cluster's say on `conn` opening: blocks, and its device's owner.
    pub(crate) async fn claim(&self, conn: &Connection) -> Result<Claim, HubError> {
        let (Some(directory), Some(owner)) = (self.directory(), conn.owner()) else {
            return Ok(Claim::default());
        };
        let reject = self.settings.admission.takeover == TakeoverPolicy::Reject;
        match directory.claim(conn.id(), scope_of(owner), reject).await? {
            Claimed::Blocked { until_ms } => Err(HubError::Refused(Refusal::Blocked { until_ms })),
            Claimed::Busy => Err(HubError::Refused(Refusal::DeviceBusy)),
            Claimed::Granted { previous } => Ok(Claim {
                claimed: true,
                previous,
            }),
        }
    }

    /// Whether `claim` found its device owned on another node.
    pub(crate) fn held_elsewhere(&self, claim: &Claim) -> bool {
        let here = self.directory().map(|d| d.node());
        claim
            .previous
            .as_ref()
            .is_some_and(|p| Some(p.node.as_str()) != here)
    }

    /// Gives back a claim whose connection the registry refused.
    pub(crate) async fn release(&self, conn: &Connection, claim: &Claim) {
        let (Some(directory), Some(owner), true) = (self.directory(), conn.owner(), claim.claimed)
        else {
            return;
        };
        if let Err(e) = directory
            .release(conn.id(), scope_of(owner), claim.previous.as_ref())
            .await
        {
            tracing::warn!(error = %e, "cannot give a refused connection's device back");
        }
    }

    /// Ends the device's previous owner when it is on another node.
    pub(crate) async fn take_over_remote(&self, conn: &Connection, claim: Claim) {
        let (Some(directory), Some(previous)) = (self.directory(), claim.previous) else {
            return;
        };
        if previous.node == directory.node() {
            // Here: the registry took it over as it registered `conn`.
            return;
        }
        let why = Ending::TakenOver {
            by: conn.remote().map(|a| a.to_string()),
        };
        if let Err(e) = directory
            .end_remote(&previous.node, vec![previous.conn], why)
            .await
        {
            tracing::warn!(node = %previous.node, error = %e, "cannot end a taken-over connection on another node");
        }
    }

    /// Up to `limit` connections in id order after `after`, on every node:
    /// all of them (`selector` `None`: this node's topic connections and
    /// every identity connection), or the identity connections `selector`
    /// names.
    pub async fn connection_page(
        &self,
        selector: Option<Selector<'_>>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ListedPage, HubError> {
        let local = self.connections.page(selector, after, limit);
        let Some(directory) = self.directory() else {
            return Ok(ListedPage {
                connections: local.connections.into_iter().map(Listed::Here).collect(),
                next: local.next,
            });
        };
        let remote = directory
            .page(filter_of(selector), after, limit.saturating_add(1))
            .await?;
        let mut merged: BTreeMap<String, Listed> = remote
            .into_iter()
            // This node's own truth is its registry.
            .filter(|l| l.node != directory.node())
            .map(|l| (l.entry.id.clone(), Listed::Elsewhere(l)))
            .collect();
        let local_more = local.next.is_some();
        for conn in local.connections {
            merged.insert(conn.id().to_string(), Listed::Here(conn));
        }
        let more = merged.len() > limit || local_more;
        let connections: Vec<Listed> = merged.into_values().take(limit).collect();
        let next = match more {
            true => connections.last().map(|c| c.id().to_string()),
            false => None,
        };
        Ok(ListedPage { connections, next })
    }

    /// Every connection `selector` names, on every node, page by page.
    pub async fn all_connections(&self, selector: Selector<'_>) -> Result<Vec<Listed>, HubError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .connection_page(Some(selector), after.as_deref(), STEP)
                .await?;
            out.extend(page.connections);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// One user's open connections on every node, by device; `None` when
    /// it has none.
    pub async fn user_summary(
        &self,
        app: &str,
        user: &str,
    ) -> Result<Option<UserSummary>, HubError> {
        if self.directory().is_none() {
            return Ok(self.connections.user(app, user));
        }
        let conns = self.all_connections(Selector::User(app, user)).await?;
        Ok(UserSummary::of(conns.iter().map(|conn| {
            let device = conn.owner().and_then(|(_, _, d)| d).map(Arc::from);
            (device, conn.opened_at_ms())
        })))
    }

    /// Users and identity connections of `app` on every node, with each
    /// node's share (`nodes` is empty on a single node).
    pub async fn app_counts(&self, app: &str) -> Result<AppCounts, HubError> {
        let Some(directory) = self.directory() else {
            let (users, connections) = self.connections.app_counts(app);
            return Ok(AppCounts {
                users,
                connections,
                nodes: Vec::new(),
            });
        };
        Ok(directory.app_counts(app).await?)
    }

    /// Ends connection `id` with `why`, wherever it is; with `block_until`
    /// (Unix ms), its identity (its device if it has one, else its user)
    /// may not reconnect to any node before then.
    pub async fn end_connection(
        &self,
        id: &str,
        why: EndReason,
        block_until: Option<u64>,
    ) -> Result<(), EndError> {
        let unavailable = |e: BrokerError| match HubError::from(e) {
            HubError::Unavailable(why) => EndError::Unavailable(why),
            other => EndError::Unavailable(other.to_string()),
        };
        let Some(directory) = self.directory() else {
            return self
                .connections
                .end(id, why, block_until)
                .map_err(kick_error);
        };
        if let Some(conn) = self.connections.get(id) {
            if let Some(until) = block_until {
                let owner = conn.owner().ok_or(EndError::NoIdentity)?;
                directory
                    .block(scope_of(owner), until)
                    .await
                    .map_err(unavailable)?;
            }
            return self
                .connections
                .end(id, why, block_until)
                .map_err(kick_error);
        }
        let located = directory.locate(id).await.map_err(unavailable)?;
        let Some(located) = located.filter(|l| l.node != directory.node()) else {
            return Err(EndError::NotFound);
        };
        if let Some(until) = block_until {
            let e = &located.entry;
            let scope = Scope {
                app: &e.app,
                user: &e.user,
                device: e.device.as_deref(),
            };
            directory.block(scope, until).await.map_err(unavailable)?;
        }
        let Some(ending) = ending_of(&why) else {
            return Err(EndError::NotFound);
        };
        directory
            .end_remote(&located.node, vec![located.entry.id], ending)
            .await
            .map_err(unavailable)
    }

    /// Ends every identity connection the selectors name, on every node,
    /// once each, after recording `blocks` (in the cluster first, so that
    /// none of them can reconnect anywhere in between). Returns how many
    /// ended.
    pub async fn kick(
        &self,
        selectors: &[Selector<'_>],
        blocks: Vec<(BlockScope, u64)>,
        why: &EndReason,
    ) -> Result<usize, HubError> {
        let Some(directory) = self.directory() else {
            return Ok(self.connections.kick(selectors, blocks, why));
        };
        for (scope, until) in &blocks {
            let scope = Scope {
                app: &scope.app,
                user: &scope.user,
                device: scope.device.as_deref(),
            };
            directory.block(scope, *until).await?;
        }
        let mut elsewhere: HashMap<String, Vec<String>> = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for selector in selectors {
            let mut after: Option<String> = None;
            loop {
                let page = directory
                    .page(filter_of(Some(*selector)), after.as_deref(), STEP)
                    .await?;
                after = page.last().map(|l| l.entry.id.clone());
                let full = page.len() == STEP;
                for l in page {
                    if l.node != directory.node() && seen.insert(l.entry.id.clone()) {
                        elsewhere.entry(l.node).or_default().push(l.entry.id);
                    }
                }
                if !full {
                    break;
                }
            }
        }
        let mut ended = 0;
        if let Some(ending) = ending_of(why) {
            for (node, ids) in elsewhere {
                let n = ids.len();
                directory.end_remote(&node, ids, ending.clone()).await?;
                ended += n;
            }
        }
        Ok(ended + self.connections.kick(selectors, blocks, why))
    }
}

fn kick_error(e: KickError) -> EndError {
    match e {
        KickError::NotFound => EndError::NotFound,
        KickError::NoIdentity => EndError::NoIdentity,
    }
}
