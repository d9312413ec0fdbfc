//! The hub: the registry of topics, publishing, and subscriptions.
//!
//! It knows nothing of HTTP or storage engines: topics keep their history
//! behind [`crate::store::TopicLog`], persistent topics are registered through
//! [`crate::store::Store`], and subscribers get a byte stream from
//! [`feed::Subscription`]. The registry lock is never held across an await.

pub mod feed;
pub mod topic;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

pub use feed::{Resume, SubscribeError, Subscription};
pub use topic::{InvalidEvent, NewEvent, PublishError, Published, Topic};

use crate::metrics::{Metrics, TopicCounts};
use crate::secret::{Secret, new_id};
use crate::store::memory::MemoryLog;
use crate::store::{Retention, Store, StoreError, TopicLog, TopicRecord, now_ms};
use feed::FeedContext;
use topic::TopicInit;

/// Topic ids: what SSER and our own generator produce, and what is safe in a
/// URL path, a log line and a storage key.
pub fn is_valid_topic_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The hub's tunables, taken from configuration.
#[derive(Debug, Clone)]
pub struct HubSettings {
    pub history_size: u64,
    pub subscriber_buffer: usize,
    pub tick: Duration,
    pub retry: Duration,
    /// Default history limits of persistent topics (`kv.retention`).
    pub persistent_retention: Retention,
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
    #[error("Persistent store is not available")]
    PersistenceUnavailable,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Hub {
    settings: HubSettings,
    topics: RwLock<HashMap<Arc<str>, Arc<Topic>>>,
    store: Option<Arc<dyn Store>>,
    metrics: Arc<Metrics>,
    feed: FeedContext,
    /// Set when shutdown begins; topics registered after it start stopped.
    stopping: AtomicBool,
}

impl Hub {
    /// Builds the hub, loads persistent topics from `store` and registers the
    /// static topics from configuration. Starts the heartbeat ticker, so it
    /// must run inside a Tokio runtime.
    pub fn new(
        settings: HubSettings,
        store: Option<Arc<dyn Store>>,
        static_topics: &[crate::config::StaticPubSub],
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Result<Arc<Hub>, HubError> {
        let hub = Arc::new(Hub {
            feed: FeedContext {
                metrics: metrics.clone(),
                retry_ms: settings.retry.as_millis() as u64,
            },
            settings,
            topics: RwLock::new(HashMap::new()),
            store,
            metrics,
            stopping: AtomicBool::new(false),
        });
        if let Some(store) = &hub.store {
            for record in store.load_topics()? {
                let log = store.open_log(&record)?;
                hub.register(&record, None, false, log);
            }
        }
        for st in static_topics {
            let record = TopicRecord {
                id: st.id.clone(),
                token: st.token.clone(),
                persist: false,
                created_at_ms: now_ms(),
                retention: hub.default_retention(),
            };
            let log: Arc<dyn TopicLog> = MemoryLog::new(record.retention);
            // A static topic is recreated at every start, so its sequence is
            // seeded from the clock: an id a client kept from a previous run
            // can never alias a new event (it is reported as truncated).
            let seed = now_ms().saturating_mul(1000);
            hub.register(&record, st.name.clone(), true, log)
                .bump_sequence(seed);
        }
        tokio::spawn(Hub::tick(Arc::downgrade(&hub), shutdown));
        Ok(hub)
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
        let requested = requested.unwrap_or_default();
        let mut retention = Retention {
            max_events: requested.max_events.or(default.max_events),
            max_age: requested.max_age.or(default.max_age),
            max_bytes: requested.max_bytes.or(default.max_bytes),
        };
        if !persist {
            let cap = self.settings.history_size;
            retention.max_events = Some(retention.max_events.map_or(cap, |n| n.min(cap)));
        }
        retention
    }

    fn register(
        &self,
        record: &TopicRecord,
        name: Option<String>,
        is_static: bool,
        log: Arc<dyn TopicLog>,
    ) -> Arc<Topic> {
        let next_seq = log.last_seq().saturating_add(1);
        let topic = Topic::new(TopicInit {
            id: record.id.clone(),
            token: record.token.clone(),
            name,
            persist: record.persist,
            is_static,
            created_at_ms: record.created_at_ms,
            retention: record.retention,
            log,
            next_seq,
            buffer: self.settings.subscriber_buffer,
        });
        self.topics.write().insert(topic.id.clone(), topic.clone());
        // A topic created while the server stops must not keep a stream open.
        if self.stopping.load(Ordering::SeqCst) {
            topic.stop();
        }
        topic
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn settings(&self) -> &HubSettings {
        &self.settings
    }

    /// Heartbeats every `tick` to every topic with subscribers, and at
    /// shutdown the stop notice. Both travel the topics' live channels (see
    /// `topic::Signal`), so subscriber streams wait on nothing else.
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
                    for topic in hub.topics() {
                        topic.heartbeat();
                    }
                }
                () = shutdown.cancelled() => {
                    if let Some(hub) = hub.upgrade() {
                        hub.stopping.store(true, Ordering::SeqCst);
                        for topic in hub.topics() {
                            topic.stop();
                        }
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

    pub fn persistence_available(&self) -> bool {
        self.store.is_some()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(id).cloned()
    }

    /// All topics, in no particular order.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics.read().values().cloned().collect()
    }

    pub async fn create_topic(&self, new: NewTopic) -> Result<Arc<Topic>, HubError> {
        let record = TopicRecord {
            id: new_id(),
            token: Secret::generate(),
            persist: new.persist,
            created_at_ms: now_ms(),
            retention: self.retention_for(new.persist, new.retention),
        };
        let log: Arc<dyn TopicLog> = if new.persist {
            let store = self.store.clone().ok_or(HubError::PersistenceUnavailable)?;
            let rec = record.clone();
            blocking(move || {
                store.save_topic(&rec)?;
                store.open_log(&rec)
            })
            .await?
        } else {
            MemoryLog::new(record.retention)
        };
        let topic = self.register(&record, None, false, log);
        self.metrics.topic_created();
        Ok(topic)
    }

    /// Deletes a topic: its subscribers get SSER's closed message and their
    /// streams end; its history is dropped.
    pub async fn delete_topic(&self, id: &str) -> Result<(), HubError> {
        let topic = {
            let mut topics = self.topics.write();
            match topics.get(id) {
                None => return Err(HubError::NotFound),
                Some(t) if t.is_static => return Err(HubError::StaticTopic(id.to_string())),
                Some(_) => topics.remove(id).ok_or(HubError::NotFound)?,
            }
        };
        topic.close();
        let log = topic.log.clone();
        let store = self.store.clone().filter(|_| topic.persist);
        let topic_id = topic.id.to_string();
        blocking(move || {
            if let Some(store) = store {
                store.delete_topic(&topic_id)?;
            }
            log.destroy()
        })
        .await?;
        self.metrics.topic_deleted();
        Ok(())
    }

    pub async fn publish(&self, topic: &Topic, event: NewEvent) -> Result<Published, HubError> {
        // Publish→enqueue latency: until the event is in history and on the
        // live channel (for a durable topic, that includes its commit).
        let started = std::time::Instant::now();
        match topic.publish(event).await {
            Ok(published) => {
                self.metrics.event_published(started.elapsed());
                self.metrics.event_received();
                Ok(published)
            }
            Err(PublishError::Closed) => Err(HubError::NotFound),
            Err(PublishError::Store(e)) => Err(HubError::Store(e)),
        }
    }

    pub async fn subscribe(
        &self,
        topic: Arc<Topic>,
        resume: Resume,
    ) -> Result<Subscription, HubError> {
        Subscription::open(topic, resume, self.feed.clone())
            .await
            .map_err(|e| match e {
                SubscribeError::Closed => HubError::NotFound,
                SubscribeError::Stopping => HubError::Stopping,
                SubscribeError::Store(e) => HubError::Store(e),
            })
    }

    /// Makes all history durable (shutdown).
    pub async fn flush(&self) -> Result<(), HubError> {
        if let Some(store) = self.store.clone() {
            blocking(move || store.flush()).await?;
        }
        Ok(())
    }
}

/// Runs store work on the blocking pool so no async task waits on the disk.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Io(format!("storage task failed: {e}")))?
}
