//! The hub: topics, the connections that follow them, and the policies
//! between the two (fan-out order, slow consumers, heartbeats, shutdown).
//!
//! It knows nothing of HTTP or storage engines. Events travel through a
//! [`Broker`] (in-process today, a cluster later): the hub names a topic's
//! stream, the broker assigns positions, keeps history and hands each event
//! to every connection following it (each connection's body pulls it from
//! the stream's ring when its [`Outbox`](crate::broker::Outbox) says there
//! is news). A [`Connection`] follows one or more streams; the [`Connections`]
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

use crate::broker::{Broker, BrokerError, Origin, TopicChange};
use crate::metrics::{Metrics, TopicCounts};
use crate::model::{Retention, StreamKey, TopicId, now_ms};
use crate::secret::{Secret, new_id};
use crate::store::{StoreError, TopicRecord};
use topic::TopicInit;

/// The hub's tunables (`lib.rs` builds them from configuration).
#[derive(Debug, Clone)]
pub struct HubSettings {
    pub history_size: u64,
    /// Events a connection's queue holds before it must catch up from history.
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

/// A topic defined in configuration: fixed id and token, never deleted.
#[derive(Debug, Clone)]
pub struct StaticTopic {
    pub id: TopicId,
    pub name: Option<String>,
    pub token: Secret,
}

/// A request to create a topic.
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    pub persist: bool,
    /// Overrides the default history limits for this topic.
    pub retention: Option<Retention>,
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
        for record in hub.broker.stored_topics().await? {
            let id = TopicId::parse(&record.id)
                .map_err(|e| StoreError::Corrupt(format!("stored topic id {e}")))?;
            hub.open(id, &record, None, Origin::Stored, false).await?;
        }
        for st in static_topics {
            let record = TopicRecord {
                id: st.id.to_string(),
                token: st.token.clone(),
                persist: false,
                created_at_ms: now_ms(),
                retention: hub.default_retention(),
            };
            hub.open(
                st.id.clone(),
                &record,
                st.name.clone(),
                Origin::Configured,
                true,
            )
            .await?;
        }
        if let Some(changes) = hub.broker.topic_changes() {
            tokio::spawn(Hub::follow_topic_changes(Arc::downgrade(&hub), changes));
        }
        tokio::spawn(Hub::tick(Arc::downgrade(&hub), shutdown));
        Ok(hub)
    }

    /// In a cluster: topics created on other nodes open here too, topics
    /// deleted there leave here (their followers were told by the broker).
    async fn follow_topic_changes(
        hub: Weak<Hub>,
        mut changes: tokio::sync::mpsc::UnboundedReceiver<TopicChange>,
    ) {
        while let Some(change) = changes.recv().await {
            let Some(hub) = hub.upgrade() else { return };
            match change {
                TopicChange::Created(record) => {
                    if let Err(e) = hub.open_shared(&record).await {
                        tracing::warn!(topic = %record.id, error = %e, "cannot open a topic created on another node");
                    }
                }
                TopicChange::Deleted(id) => {
                    let mut topics = hub.topics.write();
                    if topics.get(id.as_str()).is_some_and(|t| !t.is_static) {
                        topics.remove(id.as_str());
                    }
                }
            }
        }
    }

    async fn open(
        &self,
        id: TopicId,
        record: &TopicRecord,
        name: Option<String>,
        origin: Origin,
        is_static: bool,
    ) -> Result<Arc<Topic>, HubError> {
        let stream = StreamKey::Topic(id.clone());
        self.broker.open(&stream, record, origin).await?;
        let topic = Topic::new(
            TopicInit {
                id: id.clone(),
                token: record.token.clone(),
                name,
                persist: record.persist,
                is_static,
                created_at_ms: record.created_at_ms,
                retention: record.retention,
            },
            self.broker.clone(),
        );
        self.topics.write().insert(id, topic.clone());
        Ok(topic)
    }

    /// Opens here a topic another node of the cluster created, unless it
    /// is open already (under the on-demand lock: the notice and a request
    /// naming the topic may race).
    async fn open_shared(&self, record: &TopicRecord) -> Result<Arc<Topic>, HubError> {
        if let Some(topic) = self.get(&record.id) {
            return Ok(topic);
        }
        let id = TopicId::parse(&record.id)
            .map_err(|e| StoreError::Corrupt(format!("shared topic id {e}")))?;
        let _opening = self.on_demand.lock().await;
        if let Some(topic) = self.get(&record.id) {
            return Ok(topic);
        }
        self.open(id, record, None, Origin::Stored, false).await
    }

    fn default_retention(&self) -> Retention {
        Retention {
            max_events: Some(self.settings.history_size),
            ..Retention::default()
        }
    }

    /// A topic's retention: what it asked for, with every unset limit taken
    /// from the defaults. In-memory history never exceeds `historySize`, so
    /// no request can make the server's memory unbounded.
    fn retention_for(&self, persist: bool, requested: Option<Retention>) -> Retention {
        // Persistent topics take their defaults from `kv.retention`.
        let default = if persist {
            self.settings.persistent_retention
        } else {
            self.default_retention()
        };
        let mut retention = requested.unwrap_or_default().or(default);
        if !persist {
            let cap = self.settings.history_size;
            retention.max_events = Some(retention.max_events.map_or(cap, |n| n.min(cap)));
        }
        retention
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
    /// notice. Both are queued behind the connection's events, so a
    /// connection's body waits on its queue alone.
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

    /// Topic gauges for metrics, computed on read so publishing and
    /// subscribing pay nothing for them.
    pub fn topic_counts(&self) -> TopicCounts {
        let topics = self.topics.read();
        let mut counts = TopicCounts {
            topics: topics.len() as u64,
            ..TopicCounts::default()
        };
        for topic in topics.values() {
            counts.static_topics += u64::from(topic.is_static);
            counts.active_topics += u64::from(topic.subscriber_count() > 0);
        }
        counts
    }

    /// Identity inboxes open now (idle ones are closed, see `inboxes`).
    pub fn open_inboxes(&self) -> usize {
        self.broker.open_inboxes()
    }

    pub fn persistence_available(&self) -> bool {
        self.broker.persistent()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(id).cloned()
    }

    /// [`Hub::get`], and in a cluster also a topic another node created
    /// moments ago whose notice has not reached this node yet: a client
    /// sent here by the load balancer right after the create finds it.
    pub async fn find(&self, id: &str) -> Option<Arc<Topic>> {
        if let Some(topic) = self.get(id) {
            return Some(topic);
        }
        let record = self.broker.lookup_topic(id).await.ok().flatten()?;
        self.open_shared(&record).await.ok()
    }

    /// All topics, in no particular order.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics.read().values().cloned().collect()
    }

    pub async fn create_topic(&self, new: NewTopic) -> Result<Arc<Topic>, HubError> {
        if new.persist && !self.broker.persistent() {
            return Err(HubError::PersistenceUnavailable);
        }
        let id = TopicId::parse(&new_id())
            .map_err(|e| StoreError::Io(format!("generated topic id {e}")))?;
        let record = TopicRecord {
            id: id.to_string(),
            token: Secret::generate(),
            persist: new.persist,
            created_at_ms: now_ms(),
            retention: self.retention_for(new.persist, new.retention),
        };
        let topic = self.open(id, &record, None, Origin::New, false).await?;
        self.metrics.topic_created();
        Ok(topic)
    }

    /// The topic `id`, opened now when there is none, in memory with the
    /// default history, and `None` when opening it would make more than
    /// `max_matching` topics whose id starts with `prefix`. For clients
    /// that make a channel by naming it (goSSE's event types): the cap
    /// keeps them from making topics without end. Positions are seeded from
    /// the clock, as a configured topic's are: such a topic comes back empty
    /// after a restart while its clients still hold ids from before.
    pub async fn topic_on_demand(
        &self,
        id: TopicId,
        prefix: &str,
        max_matching: usize,
    ) -> Result<Option<Arc<Topic>>, HubError> {
        if let Some(topic) = self.get(&id) {
            return Ok(Some(topic));
        }
        let _opening = self.on_demand.lock().await;
        if let Some(topic) = self.get(&id) {
            return Ok(Some(topic));
        }
        let matching = self
            .topics
            .read()
            .keys()
            .filter(|t| t.as_str().starts_with(prefix))
            .count();
        if matching >= max_matching {
            return Ok(None);
        }
        let record = TopicRecord {
            id: id.to_string(),
            token: Secret::generate(),
            persist: false,
            created_at_ms: now_ms(),
            retention: self.default_retention(),
        };
        let topic = self
            .open(id, &record, None, Origin::Configured, false)
            .await?;
        self.metrics.topic_created();
        Ok(Some(topic))
    }

    /// Deletes a topic: connections on it alone get SSER's closed message and
    /// end; connections on several topics are told and go on with the rest.
    /// Its history is dropped.
    pub async fn delete_topic(&self, id: &str) -> Result<(), HubError> {
        let topic = {
            let mut topics = self.topics.write();
            match topics.get(id) {
                None => return Err(HubError::NotFound),
                Some(t) if t.is_static => return Err(HubError::StaticTopic(id.to_string())),
                Some(_) => topics.remove(id).ok_or(HubError::NotFound)?,
            }
        };
        match self.broker.delete(&topic.stream).await {
            Ok(()) | Err(BrokerError::NotFound) => {}
            Err(BrokerError::Unavailable(why)) => {
                // Nothing was applied (the cluster's Redis is away): the
                // topic stays.
                self.topics.write().insert(topic.id.clone(), topic);
                return Err(HubError::Unavailable(why));
            }
            Err(e) => return Err(e.into()),
        }
        self.metrics.topic_deleted();
        Ok(())
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
