//! One topic as the hub knows it: its name and token, how it was made, and
//! its counters. Its events travel through the broker, on the stream
//! [`Topic::stream`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::broker::Broker;
use crate::model::{Retention, StreamKey, TopicId, now_ms};
use crate::secret::Secret;

pub struct Topic {
    pub id: TopicId,
    pub stream: StreamKey,
    token: Secret,
    pub name: Option<String>,
    pub persist: bool,
    pub is_static: bool,
    pub created_at_ms: u64,
    pub retention: Retention,
    broker: Arc<dyn Broker>,
    published: AtomicU64,
    last_publish_ms: AtomicU64,
}

pub(crate) struct TopicInit {
    pub id: TopicId,
    pub token: Secret,
    pub name: Option<String>,
    pub persist: bool,
    pub is_static: bool,
    pub created_at_ms: u64,
    pub retention: Retention,
}

impl Topic {
    pub(crate) fn new(init: TopicInit, broker: Arc<dyn Broker>) -> Arc<Self> {
        Arc::new(Topic {
            stream: StreamKey::Topic(init.id.clone()),
            id: init.id,
            token: init.token,
            name: init.name,
            persist: init.persist,
            is_static: init.is_static,
            created_at_ms: init.created_at_ms,
            retention: init.retention,
            broker,
            published: AtomicU64::new(0),
            last_publish_ms: AtomicU64::new(0),
        })
    }

    /// Constant-time check of a subscriber's token.
    pub fn token_matches(&self, candidate: &str) -> bool {
        self.token.matches(candidate)
    }

    pub fn token(&self) -> &Secret {
        &self.token
    }

    /// Connections following this topic (alone or among others).
    pub fn subscriber_count(&self) -> usize {
        self.broker.follower_count(&self.stream)
    }

    pub fn published_count(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Milliseconds since the epoch of the last publish, if any.
    pub fn last_publish_ms(&self) -> Option<u64> {
        Some(self.last_publish_ms.load(Ordering::Relaxed)).filter(|&t| t > 0)
    }

    /// Events and bytes held in history.
    pub fn history_usage(&self) -> (u64, u64) {
        self.broker.usage(&self.stream)
    }

    pub(crate) fn count_publish(&self) {
        self.published.fetch_add(1, Ordering::Relaxed);
        self.last_publish_ms.store(now_ms(), Ordering::Relaxed);
    }
}
