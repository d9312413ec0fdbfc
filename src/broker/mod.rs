//! The broker: where events travel between publishers and the connections
//! that follow their streams. It is the seam between the hub (topics,
//! connections, slow-consumer policy) and where events and history live.
//!
//! A [`Broker`] assigns each published event its [`Position`] in its stream,
//! appends it to the stream's history, and hands it (encoded once, shared)
//! to every connection following the stream on this node, in position order
//! and without ever waiting for a reader: the event goes once into the
//! stream's ring ([`Followers`]), the [`Outbox`] of each follower that was
//! waiting gets a notice, and each reader pulls what it has not read through
//! its [`FollowTicket`]. It lets a
//! connection follow a stream from a known position and reads history after
//! a position, which is all the hub needs for exact resume and lag catch-up.
//!
//! [`LocalBroker`] is the single-node implementation: in-process fan-out
//! over memory logs and the redb/sled store. [`RedisBroker`] (a cluster
//! member) implements the same trait with the same [`Followers`] lists for
//! its own node's connections; neither HTTP nor connections change. The shape
//! follows Mercure's `Transport` (dispatch, add/remove subscriber, history),
//! with positions instead of event ids so that resume is exact per stream.

pub mod directory;
pub mod event;
pub mod followers;
mod inbox;
pub mod local;
pub mod outbox;
pub mod redis;

use std::sync::Arc;

use async_trait::async_trait;

pub use directory::Directory;
pub use event::{Delivery, InvalidEvent, NewEvent, Published};
pub use followers::{FollowTicket, Followers, Pulled};
pub use local::LocalBroker;
pub use outbox::{Item, Outbox};
pub use redis::{RawMessage, RedisBroker, RedisDirectory, RedisSettings};

use crate::model::{Position, Retention, StreamKey};
use crate::store::{StoreError, TopicRecord};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("no such stream")]
    NotFound,
    #[error("Persistent store is not available")]
    PersistenceUnavailable,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The shared store of a cluster (Redis) cannot take or give the
    /// event now; nothing was applied. The text is safe to show clients.
    #[error("{0}")]
    Unavailable(String),
}

/// A change to the topic registry made on another node of a cluster.
#[derive(Debug, Clone)]
pub enum TopicChange {
    /// Open this topic here too (its stream is already open in the broker).
    Created(TopicRecord),
    /// The topic is gone: its followers here were told already.
    Deleted(String),
}

/// How a stream comes to be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Created now: a persistent stream's record is stored first.
    New,
    /// Loaded from the store at start-up ([`Broker::stored_topics`]).
    Stored,
    /// Defined in configuration and recreated at every start: its history
    /// did not survive, so its positions must not start over (a cursor a
    /// client kept from an earlier run would name a different event).
    Configured,
}

/// A connection now following a stream.
pub struct Follow {
    /// Leaves the stream's fan-out when dropped.
    pub ticket: FollowTicket,
    /// Every event after this position is read through the ticket (or
    /// marked lagged); everything up to it is history.
    pub head: Position,
}

/// A page of history, oldest first.
pub struct HistoryBatch {
    pub events: Vec<Delivery>,
    /// History no longer holds every event after the position asked for
    /// (retention dropped some before the first one here).
    pub missing: bool,
}

#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Whether persistent streams are available.
    fn persistent(&self) -> bool;

    /// The persistent topics that outlive the process, to open at start-up.
    async fn stored_topics(&self) -> Result<Vec<TopicRecord>, BrokerError>;

    /// Opens (or creates) the stream of a topic.
    async fn open(
        &self,
        stream: &StreamKey,
        record: &TopicRecord,
        origin: Origin,
    ) -> Result<(), BrokerError>;

    /// Opens an identity's inbox ([`StreamKey::is_inbox`]) unless it is
    /// open already. Inboxes are opened on first use (a send, a follow) and
    /// closed again when idle ([`Broker::close_idle_inboxes`]); their history
    /// is kept with `retention`, on the disk store when the broker has one
    /// (so what a user missed while offline survives a restart), in memory
    /// otherwise. Safe to call concurrently for the same inbox.
    async fn open_inbox(&self, stream: &StreamKey, retention: Retention)
    -> Result<(), BrokerError>;

    /// One sweep of the idle-inbox reaper, called periodically. An inbox
    /// nobody follows is closed at the second sweep that finds it idle, if
    /// its history no longer needs it: on disk always (the history stays on
    /// disk and is read back when it opens again), in memory only once its
    /// history is empty (expired, or never written). So inboxes of users who
    /// came and went do not hold memory forever. A send or follow that races
    /// with the close gets [`BrokerError::NotFound`] and opens it again.
    /// Returns how many inboxes it closed.
    fn close_idle_inboxes(&self) -> usize;

    /// Inboxes open on this node now (for metrics and the dashboard).
    fn open_inboxes(&self) -> usize;

    /// Deletes a stream: its followers are told ([`Item::Closed`]), its
    /// history and (when persistent) its record are dropped.
    async fn delete(&self, stream: &StreamKey) -> Result<(), BrokerError>;

    /// Assigns the event's position, appends it to history and hands it to
    /// every follower. Returns once it is in history (for a durable stream:
    /// committed).
    async fn publish(&self, stream: &StreamKey, event: NewEvent) -> Result<Published, BrokerError>;

    /// Follows `stream` from now on: the ticket reads every event published
    /// after this (tagged `slot`), and `outbox` is told when there is news.
    async fn follow(
        &self,
        stream: &StreamKey,
        outbox: &Arc<Outbox>,
        slot: u32,
    ) -> Result<Follow, BrokerError>;

    /// Up to `limit` events after `after`, oldest first.
    async fn read_after(
        &self,
        stream: &StreamKey,
        after: Position,
        limit: usize,
    ) -> Result<HistoryBatch, BrokerError>;

    /// Whether history still holds every event after `after`.
    async fn holds_after(&self, stream: &StreamKey, after: Position) -> Result<bool, BrokerError>;

    /// The position of the OLDEST event with this id still held. Ids may
    /// repeat; resuming after the oldest can repeat events, never skip one.
    async fn find(
        &self,
        stream: &StreamKey,
        event_id: &str,
    ) -> Result<Option<Position>, BrokerError>;

    /// The oldest position history holds.
    async fn oldest(&self, stream: &StreamKey) -> Option<Position>;

    /// Events and bytes held in history, for metrics and the dashboard.
    fn usage(&self, stream: &StreamKey) -> (u64, u64);

    /// The outboxes of this node's connections following `stream`.
    fn followers(&self, stream: &StreamKey) -> Vec<Arc<Outbox>>;

    fn follower_count(&self, stream: &StreamKey) -> usize;

    /// Makes all history durable (shutdown).
    async fn flush(&self) -> Result<(), BrokerError>;

    /// The record of topic `id` if the cluster has it although this node
    /// has not opened it (created elsewhere moments ago); always `None` on
    /// a single node.
    async fn lookup_topic(&self, _id: &str) -> Result<Option<TopicRecord>, BrokerError> {
        Ok(None)
    }

    /// Topics created or deleted on other nodes, for a broker shared by a
    /// cluster; `None` on a single node. Only the first call gets them.
    fn topic_changes(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<TopicChange>> {
        None
    }
}
