//! The hub's topics: opening them (stored ones and configured ones at
//! start-up, those another node of the cluster created, those a client
//! names into being), creating, finding and deleting them, and their
//! retention. One topic is a [`Topic`]; this is the hub's map of them and
//! the ways in and out of it.
//!
//! It is apart from the hub's other work (connections, publishing and
//! subscribing, system streams, heartbeats) because all of it is about
//! keeping that map and the broker's streams in step: a topic is in the
//! map exactly while the broker serves its stream.

use std::sync::{Arc, Weak};

use super::topic::{Topic, TopicInit};
use super::{Hub, HubError};
use crate::broker::{BrokerError, Origin, TopicChange};
use crate::metrics::TopicCounts;
use crate::model::{Retention, StreamKey, TopicId, now_ms};
use crate::secret::{Secret, new_id};
use crate::store::{StoreError, TopicRecord};

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

impl Hub {
    /// Opens the persistent topics the broker stored and the static topics
    /// from configuration; in a cluster, follows from then on the topics
    /// other nodes create and delete.
    pub(super) async fn open_topics(
        self: &Arc<Self>,
        static_topics: &[StaticTopic],
    ) -> Result<(), HubError> {
        for record in self.broker.stored_topics().await? {
            let id = TopicId::parse(&record.id)
                .map_err(|e| StoreError::Corrupt(format!("stored topic id {e}")))?;
            self.open(id, &record, None, Origin::Stored, false).await?;
        }
        for st in static_topics {
            let record = TopicRecord {
                id: st.id.to_string(),
                token: st.token.clone(),
                persist: false,
                created_at_ms: now_ms(),
                retention: self.default_retention(),
            };
            self.open(
                st.id.clone(),
                &record,
                st.name.clone(),
                Origin::Configured,
                true,
            )
            .await?;
        }
        if let Some(changes) = self.broker.topic_changes() {
            tokio::spawn(Hub::follow_topic_changes(Arc::downgrade(self), changes));
        }
        Ok(())
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

    pub(super) fn default_retention(&self) -> Retention {
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
}
