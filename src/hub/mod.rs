//! The hub: topics, the connections that follow them, and the policies
//! between the two (fan-out order, slow consumers, heartbeats, shutdown).
//!
//! It knows nothing of HTTP or storage engines. Events travel through a
//! [`Broker`] (in-process today, a cluster later): the hub keeps its map of
//! topics in step with the broker's streams (`topics`: opening, creating,
//! finding, deleting) and names a topic's stream to publish on; the broker
//! assigns positions, keeps history and hands each event to every
//! connection following it (each connection's body pulls it from the
//! stream's ring when its [`Outbox`](crate::broker::Outbox) says there is
//! news). A [`Connection`] follows one or more streams; the [`Connections`]
//! registry knows them all (indexed by application, user and device for
//! identity connections, [`owners`]), admits identity connections
//! ([`admission`]: blocks, limits, device take-over, and [`retake`]: a
//! taken-over connection's reconnect refused) and tells presence
//! about them; finding, listing and counting them only reads it
//! ([`census`]); each connection's HTTP body is a [`Subscription`] stream
//! ([`feed`]). Identities' inboxes are streams too ([`inboxes`]): a
//! connection with an [`Owner`] follows them, and a targeted send is a
//! publish on them. In a cluster, the [`Directory`](crate::broker::Directory)
//! makes identity connections known on every node ([`cluster`]: take-over,
//! kick, blocks and listings across nodes). No lock is held across an await (except the one that
//! serialises on-demand topic openings, which guards no data).

pub mod admission;
pub mod census;
mod cluster;
pub mod connection;
pub mod connections;
pub mod farewell;
pub mod feed;
mod feed_stream;
mod followed;
mod framing;
pub mod inboxes;
mod intake;
mod listed;
pub mod notice;
pub mod owners;
mod resume;
mod retake;
mod roster;
pub mod topic;
mod topics;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

pub use crate::broker::directory::AppCounts;
pub use crate::broker::{InvalidEvent, NewEvent, Published};
pub use admission::{AdmissionSettings, BlockScope, Refusal, TakeoverPolicy};
pub use census::{ConnectionCounts, DeviceSummary, Page, UserSummary};
pub use cluster::EndError;
pub use connection::{Connection, Owner};
pub use connections::{Connections, KickError, PresenceHold, PresenceHook};
pub use farewell::EndReason;
pub use farewell::Farewell;
pub use feed::Subscription;
pub use feed_stream::FeedStream;
pub use framing::{Heartbeat, Naming, label};
pub use inboxes::{ConnectSpec, Sent};
pub use listed::{Listed, ListedPage};
pub use owners::Selector;
pub use resume::Resume;
pub use topic::Topic;
pub use topics::{NewTopic, StaticTopic};

use crate::broker::{Broker, BrokerError, Origin};
use crate::metrics::Metrics;
use crate::model::{Retention, StreamKey, TopicId, now_ms};
use crate::secret::Secret;
use crate::store::{StoreError, TopicRecord};

/// The hub's tunables (`lib.rs` builds them from configuration).
#[derive(Debug, Clone)]
pub struct HubSettings {
    pub history_size: u64,
    /// Events a connection may fall behind a stream before it must catch up
    /// from history.
    pub subscriber_buffer: usize,
    pub tick: Duration,
    pub retry: Duration,
    /// Default history limits of persistent topics (`kv.retention`).
    pub persistent_retention: Retention,
    /// Most topics one connection may follow.
    pub max_topics_per_connection: usize,
    /// Who may open an identity connection (limits, take-over).
    pub admission: AdmissionSettings,
    /// History limits of each identity inbox (an application's broadcast,
    /// a user's, a device's): what a client missed while offline.
    pub inbox_retention: Retention,
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("topic not found")]
    NotFound,
    #[error("topic {0} is defined in configuration and cannot be deleted")]
    StaticTopic(String),
    #[error("the server is shutting down")]
    Stopping,
    /// An identity connection was not admitted.
    #[error(transparent)]
    Refused(Refusal),
    #[error("Persistent store is not available")]
    PersistenceUnavailable,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cluster's shared store cannot apply the request now.
    #[error("{0}")]
    Unavailable(String),
}

impl From<BrokerError> for HubError {
    fn from(e: BrokerError) -> Self {
        match e {
            BrokerError::NotFound => HubError::NotFound,
            BrokerError::PersistenceUnavailable => HubError::PersistenceUnavailable,
            BrokerError::Store(e) => HubError::Store(e),
            BrokerError::Unavailable(why) => HubError::Unavailable(why),
        }
    }
}

pub struct Hub {
    settings: HubSettings,
    /// Every open topic by id (kept by `topics`).
    topics: RwLock<HashMap<TopicId, Arc<Topic>>>,
    broker: Arc<dyn Broker>,
    connections: Arc<Connections>,
    metrics: Arc<Metrics>,
    /// Serialises [`Hub::topic_on_demand`]'s openings (and, in a cluster,
    /// of topics other nodes created), so two callers naming a new topic
    /// together open it once. It guards no data and is held only across
    /// opening an in-memory stream (no I/O), by those callers alone: the
    /// one lock in the hub held across an await.
    on_demand: tokio::sync::Mutex<()>,
}

impl Hub {
    /// Builds the hub on `broker`, opens the persistent topics it stored and
    /// the static topics from configuration. Starts the heartbeat ticker, so
    /// it must run inside a Tokio runtime.
    pub async fn new(
        settings: HubSettings,
        broker: Arc<dyn Broker>,
        static_topics: &[StaticTopic],
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Result<Arc<Hub>, HubError> {
        let hub = Arc::new(Hub {
            connections: Arc::new(Connections::new(settings.admission)),
            settings,
            topics: RwLock::new(HashMap::new()),
            broker,
            metrics,
            on_demand: tokio::sync::Mutex::new(()),
        });
        hub.open_topics(static_topics).await?;
        tokio::spawn(Hub::tick(Arc::downgrade(&hub), shutdown));
        Ok(hub)
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn settings(&self) -> &HubSettings {
        &self.settings
    }

    /// The open connections.
    pub fn connections(&self) -> &Connections {
        &self.connections
    }

    /// Ends every connection that follows `stream` (after what is queued for
    /// it); returns how many. O(the stream's followers).
    pub fn end_connections_on(&self, stream: &StreamKey) -> usize {
        let outboxes = self.broker.followers(stream);
        for outbox in &outboxes {
            outbox.end();
        }
        outboxes.len()
    }

    /// Heartbeats every `tick` to every connection and, at shutdown, the stop
    /// notice, into each connection's queue of notices, which its body waits
    /// on alone (the stop comes after the events its streams held).
    async fn tick(hub: Weak<Hub>, shutdown: CancellationToken) {
        let Some(period) = hub.upgrade().map(|h| h.settings.tick) else {
            return;
        };
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        loop {
            tokio::select! {
                _ = interval.tick() => {
                    let Some(hub) = hub.upgrade() else { return };
                    hub.connections.heartbeat();
                    let closed = hub.broker.close_idle_inboxes();
                    if closed > 0 {
                        tracing::debug!(closed, "idle inboxes closed");
                    }
                }
                () = shutdown.cancelled() => {
                    if let Some(hub) = hub.upgrade() {
                        hub.connections.shut_down();
                    }
                    return;
                }
            }
        }
    }

    /// Identity inboxes open now (idle ones are closed, see `inboxes`).
    pub fn open_inboxes(&self) -> usize {
        self.broker.open_inboxes()
    }

    pub fn persistence_available(&self) -> bool {
        self.broker.persistent()
    }

    pub async fn publish(&self, topic: &Topic, event: NewEvent) -> Result<Published, HubError> {
        // Publish→enqueue latency: until the event is in history and queued
        // for every follower (for a durable topic, that includes its commit).
        let started = std::time::Instant::now();
        let published = self.broker.publish(&topic.stream, event).await?;
        topic.count_publish();
        self.metrics.event_published(started.elapsed());
        self.metrics.event_received();
        Ok(published)
    }

    /// SSER's stream of one topic: frames exactly as published.
    pub async fn subscribe(
        &self,
        topic: Arc<Topic>,
        resume: Resume,
        remote: Option<SocketAddr>,
    ) -> Result<Subscription, HubError> {
        let opening = feed::Opening {
            keys: vec![topic.stream.clone()],
            ask: resume::Ask::One(resume),
            owner: None,
            expires_at: None,
            remote,
            naming: Naming::ByStream,
            heartbeat: None,
            farewell: None,
        };
        feed::open(self, opening).await
    }

    /// One connection on several topics (or one), each event named by its
    /// topic, ids being resume cursors over all of them. The topics are
    /// followed in id order (duplicates dropped), so a reconnect with the
    /// same topics in any order resumes with the same cursor.
    pub async fn subscribe_topics(
        &self,
        mut topics: Vec<Arc<Topic>>,
        last_event_id: Option<&str>,
        remote: Option<SocketAddr>,
    ) -> Result<Subscription, HubError> {
        topics.sort_by(|a, b| a.id.cmp(&b.id));
        topics.dedup_by(|a, b| a.id == b.id);
        let opening = feed::Opening {
            keys: topics.iter().map(|t| t.stream.clone()).collect(),
            ask: resume::Ask::Cursor(last_event_id.map(str::to_string)),
            owner: None,
            expires_at: None,
            remote,
            naming: Naming::ByStream,
            heartbeat: None,
            farewell: None,
        };
        feed::open(self, opening).await
    }

    /// Opens a stream the server itself publishes to (the presence feed):
    /// history in memory, `historySize` events, positions seeded from the
    /// clock so that an id from an earlier run never names a new event.
    pub async fn open_system_stream(&self, stream: StreamKey) -> Result<(), HubError> {
        let record = TopicRecord {
            id: stream.to_string(),
            token: Secret::generate(),
            persist: false,
            created_at_ms: now_ms(),
            retention: self.default_retention(),
        };
        Ok(self
            .broker
            .open(&stream, &record, Origin::Configured)
            .await?)
    }

    /// Publishes onto a stream opened with [`Hub::open_system_stream`].
    pub async fn publish_system(
        &self,
        stream: &StreamKey,
        event: NewEvent,
    ) -> Result<Published, HubError> {
        Ok(self.broker.publish(stream, event).await?)
    }

    /// A connection on a system stream: frames exactly as published (ids
    /// are the stream's positions), resuming from `resume` as a topic's
    /// stream does.
    pub async fn subscribe_system(
        &self,
        stream: StreamKey,
        resume: Resume,
        remote: Option<SocketAddr>,
    ) -> Result<Subscription, HubError> {
        let opening = feed::Opening {
            keys: vec![stream],
            ask: resume::Ask::One(resume),
            owner: None,
            remote,
            expires_at: None,
            naming: Naming::ByStream,
            heartbeat: None,
            farewell: None,
        };
        feed::open(self, opening).await
    }

    /// Makes all history durable (shutdown).
    pub async fn flush(&self) -> Result<(), HubError> {
        Ok(self.broker.flush().await?)
    }
}
