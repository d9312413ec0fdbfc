//! The cluster-wide directory of identity connections: which node holds
//! which connection of which (app, user, device), so that take-over, kick,
//! blocks, listings and user summaries see every node, not only this one.
//!
//! It is a seam like [`Broker`](super::Broker): the hub owns an
//! `Option<Arc<dyn Directory>>` and knows nothing of Redis. A single node
//! has none, and its registry (`hub::connections`) alone decides, as it
//! always did. A cluster member has the Redis one
//! ([`RedisDirectory`](super::redis::RedisDirectory)).
//!
//! Why this shape:
//! - the registry decides under its lock and must never wait there, so the
//!   one thing that has to be atomic across nodes, a device's ownership
//!   (and the blocks left by kicks), is a separate async [`Directory::claim`]
//!   made *before* the local registration, undone by
//!   [`Directory::release`] when the registry then refuses;
//! - the rest is bookkeeping that may lag by a round trip:
//!   [`Directory::joined`] and [`Directory::left`] only queue (never block,
//!   never fail the connection), and readers merge this node's own registry
//!   in, so a node always sees its own connections at once;
//! - ending a connection held elsewhere is a command to its node
//!   ([`Directory::end_remote`], received there through
//!   [`Directory::commands`]): only the node holding a connection can write
//!   its farewell into its stream;
//! - entries are tagged with their node and ignored once that node is no
//!   longer live, so nothing depends on a dead node cleaning up after
//!   itself.
//!
//! Plain strings only: this layer sits below the hub and cannot name its
//! types (`Owner`, `EndReason`); the hub converts.

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::BrokerError;

/// An identity, or one of its devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope<'a> {
    pub app: &'a str,
    pub user: &'a str,
    pub device: Option<&'a str>,
}

/// One identity connection as the directory records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub app: String,
    pub user: String,
    pub device: Option<String>,
    /// The client's address, as the listener saw it.
    pub remote: Option<String>,
    /// When it opened (Unix ms).
    pub since_ms: u64,
    /// The streams it follows, as their keys print.
    pub streams: Vec<String>,
}

/// An entry read back, with the live node that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub entry: Entry,
    pub node: String,
    /// The node's advertised address (`cluster.advertisedAddr`).
    pub node_addr: String,
}

/// Which identity connections a read means.
#[derive(Debug, Clone, Copy)]
pub enum Filter<'a> {
    /// Every identity connection of the cluster.
    All,
    App(&'a str),
    User(&'a str, &'a str),
    Device(&'a str, &'a str, &'a str),
}

/// The connection that held a device before a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub node: String,
    pub conn: String,
}

/// The outcome of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// The connection may open; `previous` held its device (on a live
    /// node) and is to be taken over.
    Granted { previous: Option<Holder> },
    /// Policy `reject`: a live connection on another node holds the device.
    Busy,
    /// A kick's block holds until then (Unix ms).
    Blocked { until_ms: u64 },
}

/// Why a node is told to end one of its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Kicked {
        reason: Option<String>,
    },
    /// `by`: the address of the connection that took over, when known.
    TakenOver {
        by: Option<String>,
    },
}

/// A command from another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// End these connections of this node, with this farewell.
    End { ids: Vec<String>, why: Ending },
    /// The node has (re)connected to Redis, which may have lost its entries
    /// (restarted empty) or let another node sweep them (this node's
    /// heartbeat lapsed while it could not reach Redis): record every
    /// identity connection of this node again ([`Directory::joined`]).
    Rejoin,
}

/// Identity connections of one application across the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppCounts {
    pub users: usize,
    pub connections: usize,
    /// Per live node holding some: (node id, advertised address, count).
    pub nodes: Vec<(String, String, usize)>,
}

#[async_trait]
pub trait Directory: Send + Sync + 'static {
    /// This node's id.
    fn node(&self) -> &str;

    /// Checks the blocks on `scope` and, when it names a device, makes
    /// connection `id` its owner atomically; with `reject`, refuses while a
    /// live connection on another node holds it.
    async fn claim(&self, id: &str, scope: Scope<'_>, reject: bool)
    -> Result<Claimed, BrokerError>;

    /// Undoes a granted claim the registry then refused: the device goes
    /// back to `previous` (if `id` still owns it).
    async fn release(
        &self,
        id: &str,
        scope: Scope<'_>,
        previous: Option<&Holder>,
    ) -> Result<(), BrokerError>;

    /// Records a registered connection (queued; never blocks).
    fn joined(&self, entry: Entry);

    /// Forgets a connection that left (queued; never blocks). Its device's
    /// owner is cleared only if it is still `id`.
    fn left(&self, id: &str, scope: Scope<'_>);

    /// Where connection `id` is, if a live node holds it.
    async fn locate(&self, id: &str) -> Result<Option<Located>, BrokerError>;

    /// Up to `limit` live entries of `filter`, in id order after `after`.
    async fn page(
        &self,
        filter: Filter<'_>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Located>, BrokerError>;

    /// How many users and connections `app` has across the cluster.
    async fn app_counts(&self, app: &str) -> Result<AppCounts, BrokerError>;

    /// Blocks `scope` until `until_ms` on every node.
    async fn block(&self, scope: Scope<'_>, until_ms: u64) -> Result<(), BrokerError>;

    /// Tells `node` to end its connections `ids`.
    async fn end_remote(
        &self,
        node: &str,
        ids: Vec<String>,
        why: Ending,
    ) -> Result<(), BrokerError>;

    /// Commands other nodes sent this one; only the first call gets them.
    fn commands(&self) -> Option<mpsc::UnboundedReceiver<Command>>;
}
