//! The clustered broker: streams whose positions and history live in
//! Redis, so that every node serves every stream in one order: topics (with
//! their registry), identity inboxes and the presence feed ([`inboxes`]).
//! This file is the member's lifecycle (connect, health, leave) and what it
//! lends the rest of the node; the [`Broker`](crate::broker::Broker) calls
//! themselves are in [`streams`].
//!
//! - Positions: a Lua script takes a stream's next sequence and appends the
//!   event to its Redis Stream as `<seq>-0` ([`publish`]); topic ids stay
//!   `1`, `2`, … as on one node.
//! - History: the Stream itself ([`history`]), so a client resuming on any
//!   node is exact; a topic's is trimmed to its retention (`maxEvents`,
//!   bounded by `cluster.redis.maxStreamLength`, and `maxAge`) by the
//!   publish script, which also keeps the index of publisher ids `find`
//!   reads.
//! - Registry: topic records in a hash, create/delete notices on a channel
//!   and in a capped log ([`registry`], [`changes`]); the hub learns of
//!   other nodes' changes through
//!   [`Broker::topic_changes`](crate::broker::Broker::topic_changes).
//! - Live fan-out: each node subscribes only to the channels of streams it
//!   has followers for ([`listener`]) and hands events to the same
//!   [`Followers`](crate::broker::Followers) lists the local broker uses
//!   ([`live`]), repairing any gap from the Stream.
//!
//! When Redis cannot take a publish, it fails with
//! [`BrokerError::Unavailable`] (HTTP 503): never a delivery to this node
//! alone. Every failed Redis request is counted by operation
//! (`sser_cluster_redis_errors_total{op}`). If Redis comes back without
//! its data, the node notices and stays safe ([`epoch`]). Node liveness:
//! each node's heartbeat record with a TTL, and the
//! set of live nodes every node reads ([`nodes`]). The wrapped
//! [`LocalBroker`] only flushes the disk store at shutdown.
//!
//! The directory of identity connections ([`RedisDirectory`], with
//! [`directory_scripts`], [`directory_writer`] and the per-node
//! [`control`] channel) makes take-over, kick, blocks and listings
//! cluster-wide: [`RedisBroker::directory`] gives it to the hub.
//!
//! Presence across nodes: the ledger ([`presence`], [`PresenceLedger`])
//! decides cluster-wide online/offline transitions and lets a survivor
//! clean up after a dead node. For the other seeds' Redis conventions:
//! [`RedisBroker::publish_raw`] (unprefixed channels) and
//! [`RedisBroker::consume_leased`] (a pattern subscription exactly one node
//! holds at a time, [`lease`]).

mod changes;
mod control;
mod directory;
mod directory_scripts;
mod directory_writer;
mod entry;
mod epoch;
mod history;
mod inboxes;
mod keys;
mod lease;
mod listener;
mod live;
mod nodes;
pub mod presence;
mod publish;
mod registry;
mod streams;

pub use lease::RawMessage;
pub use presence::{Level, Online, PresenceLedger, Share};

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{BrokerError, LocalBroker, TopicChange};
use crate::metrics::Metrics;
use crate::model::{Retention, StreamKey, TopicId, now_ms};
pub use directory::RedisDirectory;
use keys::Keys;
use live::LiveStream;

/// What clients are told when Redis cannot take a request.
const UNAVAILABLE: &str =
    "the cluster's Redis is unavailable; nothing was published or changed, retry later";

/// How a node reaches Redis (`lib.rs` builds it from `cluster.redis.*`).
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://` or `rediss://`; may hold a password: never logged.
    pub url: String,
    pub prefix: String,
    pub wait_replicas: u64,
    pub max_stream_length: u64,
    pub timeout: Duration,
    /// How long a node's heartbeat outlives it (`cluster.nodeTtl`).
    pub node_ttl: Duration,
    /// The address this node tells the others it serves on.
    pub advertised_addr: String,
}

/// Why a node could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid Redis URL: {0}")]
    Url(String),
    #[error("cannot reach Redis: {0}")]
    Unreachable(String),
}

pub struct RedisBroker {
    shared: Arc<Shared>,
    /// The disk store, if any (flushed at shutdown).
    local: Arc<LocalBroker>,
    changes: Mutex<Option<mpsc::UnboundedReceiver<TopicChange>>>,
    /// `cluster.nodeTtl`: also the TTL of leases and presence claims.
    node_ttl: Duration,
    shutdown: CancellationToken,
    directory: Arc<RedisDirectory>,
}

/// What the broker and its listener share.
pub(super) struct Shared {
    client: redis::Client,
    conn: ConnectionManager,
    keys: Keys,
    /// This node's name in registry notices (so it skips its own).
    node: String,
    wait_replicas: u64,
    max_stream_length: u64,
    timeout: Duration,
    script: redis::Script,
    inbox_script: redis::Script,
    streams: RwLock<HashMap<TopicId, Arc<LiveStream>>>,
    /// Identity inboxes and the presence feed this node has opened.
    inboxes: RwLock<HashMap<StreamKey, Arc<LiveStream>>>,
    /// The listener's subscription side, while it is connected.
    sink: tokio::sync::Mutex<Option<PubSubSink>>,
    listening: AtomicBool,
    metrics: Arc<Metrics>,
    changes: mpsc::UnboundedSender<TopicChange>,
    heartbeat: Arc<nodes::Heartbeat>,
    /// Commands to this node from others ([`control`]).
    commands: mpsc::UnboundedSender<crate::broker::directory::Command>,
    /// The Redis data set this node works with ([`epoch`]).
    epoch: Mutex<epoch::Epoch>,
    /// One epoch check at a time.
    epoch_sync: tokio::sync::Mutex<()>,
    /// The newest registry change this node has applied ([`changes`]);
    /// `None`: read the whole registry at the next reconnect.
    registry_seen: Mutex<Option<changes::LogId>>,
}

/// A Redis failure as clients see it (the details go to the log only).
/// Callers count it ([`Shared::count`]).
fn unavailable(e: redis::RedisError) -> BrokerError {
    tracing::warn!(error = %e, "Redis request failed");
    BrokerError::Unavailable(UNAVAILABLE.to_string())
}

impl RedisBroker {
    /// Connects (failing if Redis does not answer within the timeout) and
    /// starts the listener, which runs until `shutdown`.
    pub async fn connect(
        settings: RedisSettings,
        local: Arc<LocalBroker>,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Result<Arc<RedisBroker>, ConnectError> {
        let client = redis::Client::open(settings.url.trim())
            .map_err(|e| ConnectError::Url(format!("{:?}", e.kind())))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = tokio::time::timeout(
            settings.timeout,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| ConnectError::Unreachable("no answer in time".into()))?
        .map_err(|e| ConnectError::Unreachable(e.to_string()))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let node = crate::secret::new_id();
        let heartbeat = Arc::new(nodes::Heartbeat::new(
            conn.clone(),
            Keys::new(&settings.prefix),
            node.clone(),
            settings.advertised_addr.clone(),
            settings.node_ttl,
            settings.timeout,
            metrics.clone(),
        ));
        let shared = Arc::new(Shared {
            client,
            conn,
            keys: Keys::new(&settings.prefix),
            node,
            wait_replicas: settings.wait_replicas,
            max_stream_length: settings.max_stream_length,
            timeout: settings.timeout,
            script: publish::script(),
            inbox_script: publish::inbox_script(),
            streams: RwLock::new(HashMap::new()),
            inboxes: RwLock::new(HashMap::new()),
            sink: tokio::sync::Mutex::new(None),
            listening: AtomicBool::new(false),
            metrics,
            changes: tx,
            heartbeat: heartbeat.clone(),
            commands,
            epoch: Mutex::new(epoch::Epoch::default()),
            epoch_sync: tokio::sync::Mutex::new(()),
            registry_seen: Mutex::new(None),
        });
        tokio::time::timeout(settings.timeout, epoch::check(&shared))
            .await
            .map_err(|_| ConnectError::Unreachable("no answer in time".into()))?
            .map_err(|e| ConnectError::Unreachable(e.to_string()))?;
        tokio::spawn(listener::run(shared.clone(), shutdown.clone()));
        // Followers need the listener: give it the same time to connect.
        let deadline = tokio::time::Instant::now() + settings.timeout;
        while !shared.listening.load(Ordering::Relaxed) {
            if tokio::time::Instant::now() >= deadline {
                return Err(ConnectError::Unreachable(
                    "the pub/sub connection did not open in time".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Seen by the others from the start; a failed first beat is retried.
        heartbeat.beat().await;
        tokio::spawn(heartbeat.run(shutdown.clone()));
        let writer =
            directory_writer::Writer::start(shared.clone(), settings.node_ttl, shutdown.clone());
        let directory = Arc::new(RedisDirectory::new(shared.clone(), writer, commands_rx));
        Ok(Arc::new(RedisBroker {
            shared,
            local,
            changes: Mutex::new(Some(rx)),
            node_ttl: settings.node_ttl,
            shutdown,
            directory,
        }))
    }

    /// Whether Redis answers and this node listens to it, for `/readyz`.
    pub async fn health(&self) -> Result<(), String> {
        let mut conn = self.shared.conn.clone();
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut conn);
        match tokio::time::timeout(self.shared.timeout, ping).await {
            Ok(Ok(_)) if self.shared.listening.load(Ordering::Relaxed) => Ok(()),
            Ok(Ok(_)) => Err("Redis answers; its pub/sub connection is reconnecting".into()),
            Ok(Err(e)) => Err(format!("Redis does not answer: {:?}", e.kind())),
            Err(_) => Err("Redis does not answer in time".into()),
        }
    }

    /// The cluster-wide directory of identity connections, for the hub.
    pub fn directory(&self) -> Arc<RedisDirectory> {
        self.directory.clone()
    }

    /// A graceful stop: this node's heartbeat goes now, so the others stop
    /// counting it at once rather than after `cluster.nodeTtl`.
    pub async fn leave(&self) {
        self.shared.heartbeat.leave().await;
    }

    /// This node's id in the cluster.
    pub fn node_id(&self) -> &str {
        &self.shared.node
    }

    /// `cluster.nodeTtl`: a dead node's heartbeat is gone within it.
    pub fn node_ttl(&self) -> Duration {
        self.node_ttl
    }

    /// This node's handle on the cluster's presence ledger.
    pub fn presence_ledger(&self) -> PresenceLedger {
        PresenceLedger::new(
            self.shared.conn.clone(),
            self.shared.keys.clone(),
            self.shared.node.clone(),
            self.shared.timeout,
        )
    }

    /// `PUBLISH` on `channel` as named (no prefix): for listeners outside
    /// sser that expect another server's channel names.
    pub async fn publish_raw(&self, channel: &str, payload: &str) -> Result<(), BrokerError> {
        let mut command = redis::cmd("PUBLISH");
        command.arg(channel).arg(payload);
        let mut conn = self.shared.conn.clone();
        let sent = command.query_async::<i64>(&mut conn);
        match tokio::time::timeout(self.shared.timeout, sent).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(BrokerError::Unavailable(UNAVAILABLE.to_string())),
        }
    }

    /// Messages on the (unprefixed) channels matching `pattern`, heard by
    /// exactly one node of the cluster at a time: the holder of lease
    /// `name` ([`lease`]). Up to `capacity` wait in the queue; each one
    /// beyond calls `on_overflow` and is dropped. Runs until shutdown.
    pub fn consume_leased(
        &self,
        name: &str,
        pattern: &str,
        capacity: usize,
        on_overflow: Box<dyn Fn() + Send + Sync>,
    ) -> mpsc::Receiver<RawMessage> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let leased = lease::Leased {
            client: self.shared.client.clone(),
            conn: self.shared.conn.clone(),
            lease: self.shared.keys.lease(name),
            node: self.shared.node.clone(),
            pattern: pattern.to_string(),
            ttl: self.node_ttl,
            timeout: self.shared.timeout,
            on_overflow,
        };
        tokio::spawn(leased.run(tx, self.shutdown.clone()));
        rx
    }

    fn live(&self, stream: &StreamKey) -> Result<Arc<LiveStream>, BrokerError> {
        self.shared.live(stream).ok_or(BrokerError::NotFound)
    }

    fn wait_ms(&self) -> u64 {
        u64::try_from(self.shared.timeout.as_millis()).unwrap_or(u64::MAX)
    }

    /// The stream's cap in Redis: its retention's, within
    /// `cluster.redis.maxStreamLength`.
    fn cap(&self, retention: &Retention) -> u64 {
        retention
            .max_events
            .map_or(self.shared.max_stream_length, |n| {
                n.min(self.shared.max_stream_length)
            })
            .max(1)
    }
}

impl Shared {
    /// The stream open on this node under `key`.
    fn live(&self, key: &StreamKey) -> Option<Arc<LiveStream>> {
        match key.topic() {
            Some(topic) => self.streams.read().get(topic).cloned(),
            None => self.inboxes.read().get(key).cloned(),
        }
    }

    /// The stream a live channel carries, if it is open here.
    fn live_of_channel(&self, channel: &str) -> Option<Arc<LiveStream>> {
        self.live(&self.keys.stream_of_channel(channel)?)
    }

    /// A failed Redis request of operation `op`, counted.
    fn failed(&self, op: &'static str, e: redis::RedisError) -> BrokerError {
        self.count(op, unavailable(e))
    }

    /// Counts `e` under `op` when Redis failed.
    fn count(&self, op: &'static str, e: BrokerError) -> BrokerError {
        if matches!(e, BrokerError::Unavailable(_)) {
            self.metrics.cluster.redis_error(op);
        }
        e
    }

    /// Where `live`'s history is, as of now.
    fn source(&self, live: &LiveStream) -> history::Source {
        let topic = live.key.topic();
        history::Source {
            stream: live.names.stream.clone(),
            counter: live.names.counter.clone(),
            ids: topic.map(|topic| self.keys.ids(topic)),
            base: if topic.is_some() {
                self.epoch.lock().base
            } else {
                0
            },
            expired_before: live
                .max_age
                .map(|age| now_ms().saturating_sub(inboxes::millis(age))),
        }
    }

    /// Every stream open on this node: topics, inboxes, the presence feed.
    fn every_stream(&self) -> Vec<Arc<LiveStream>> {
        let mut all: Vec<Arc<LiveStream>> = self.streams.read().values().cloned().collect();
        all.extend(self.inboxes.read().values().cloned());
        all
    }
}
