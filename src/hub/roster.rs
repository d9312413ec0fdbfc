//! What the registry tells the cluster's directory
//! ([`Directory`](crate::broker::Directory)): each identity connection that
//! joined or left this node. Both are only queued (the directory writes
//! them to Redis later, pipelined), and the registry calls them after it
//! has released its lock, so the lock never waits on the network. A single
//! node has no directory and this does nothing.

use std::sync::{Arc, OnceLock};

use super::connection::{Connection, Owner};
use crate::broker::Directory;
use crate::broker::directory::{Entry, Scope};

#[derive(Default)]
pub(crate) struct Roster {
    directory: OnceLock<Arc<dyn Directory>>,
}

impl Roster {
    /// Set once, at start-up; a second call is ignored.
    pub fn attach(&self, directory: Arc<dyn Directory>) {
        let _ = self.directory.set(directory);
    }

    pub fn get(&self) -> Option<&Arc<dyn Directory>> {
        self.directory.get()
    }

    /// Queues `conn`'s entry, if it is an identity connection.
    pub fn joined(&self, conn: &Connection) {
        let (Some(directory), Some(owner)) = (self.directory.get(), conn.owner()) else {
            return;
        };
        directory.joined(Entry {
            id: conn.id().to_string(),
            app: owner.app.to_string(),
            user: owner.user.to_string(),
            device: owner.device.as_deref().map(str::to_string),
            remote: conn.remote().map(|a| a.to_string()),
            since_ms: conn.opened_at_ms(),
            streams: conn.streams().iter().map(|k| k.to_string()).collect(),
        });
    }

    /// Queues the removal of the identity connections in `gone`.
    pub fn left(&self, gone: &[Arc<Connection>]) {
        let Some(directory) = self.directory.get() else {
            return;
        };
        for conn in gone {
            if let Some(owner) = conn.owner() {
                directory.left(conn.id(), scope_of(owner));
            }
        }
    }
}

/// The directory's name for `owner` (or one of its blocks).
pub(crate) fn scope_of(owner: &Owner) -> Scope<'_> {
    Scope {
        app: &owner.app,
        user: &owner.user,
        device: owner.device.as_deref(),
    }
}
