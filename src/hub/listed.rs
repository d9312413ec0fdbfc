//! A connection as a cluster-wide listing shows it ([`Listed`]): one of
//! this node's, with everything the registry knows, or one of another live
//! node's, as the directory recorded it (no last event id: only its own
//! node writes its stream). The HTTP listings describe both the same way.

use std::sync::Arc;

use super::connection::Connection;
use crate::broker::directory::Located;

/// A connection in a cluster-wide listing.
#[derive(Debug, Clone)]
pub enum Listed {
    /// On this node: everything about it is known.
    Here(Arc<Connection>),
    /// On another live node, as the directory recorded it.
    Elsewhere(Located),
}

impl Listed {
    pub fn id(&self) -> &str {
        match self {
            Listed::Here(c) => c.id(),
            Listed::Elsewhere(l) => &l.entry.id,
        }
    }

    /// (app, user, device) for an identity connection.
    pub fn owner(&self) -> Option<(&str, &str, Option<&str>)> {
        match self {
            Listed::Here(c) => c.owner().map(|o| (&*o.app, &*o.user, o.device.as_deref())),
            Listed::Elsewhere(l) => Some((&l.entry.app, &l.entry.user, l.entry.device.as_deref())),
        }
    }

    pub fn remote(&self) -> Option<String> {
        match self {
            Listed::Here(c) => c.remote().map(|a| a.to_string()),
            Listed::Elsewhere(l) => l.entry.remote.clone(),
        }
    }

    pub fn opened_at_ms(&self) -> u64 {
        match self {
            Listed::Here(c) => c.opened_at_ms(),
            Listed::Elsewhere(l) => l.entry.since_ms,
        }
    }

    pub fn streams(&self) -> Vec<String> {
        match self {
            Listed::Here(c) => c.streams().iter().map(|k| k.to_string()).collect(),
            Listed::Elsewhere(l) => l.entry.streams.clone(),
        }
    }

    /// Known only for this node's connections.
    pub fn last_event_id(&self) -> Option<String> {
        match self {
            Listed::Here(c) => c.last_event_id(),
            Listed::Elsewhere(_) => None,
        }
    }

    /// The advertised address of the node holding it; `None`: this node.
    pub fn node_addr(&self) -> Option<&str> {
        match self {
            Listed::Here(_) => None,
            Listed::Elsewhere(l) => Some(&l.node_addr),
        }
    }
}

/// One page of a cluster-wide listing, in connection id order.
pub struct ListedPage {
    pub connections: Vec<Listed>,
    /// Pass as `after` for the next page; `None` on the last one.
    pub next: Option<String>,
}
