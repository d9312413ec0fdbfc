//! The [`Broker`] seam served by a cluster member: how the hub's calls
//! (open, publish, follow, read history, delete) become Redis requests on
//! the Streams, counters and channels `super` sets up. Kept apart from the
//! member's lifecycle and its services to the rest of the node (`super`:
//! connecting, health, the directory, the presence ledger, leases), which
//! are a different concern with a different reader.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::live::{Join, LiveStream};
use super::{RedisBroker, UNAVAILABLE, epoch, history, inboxes, listener, publish, registry};
use crate::broker::{
    Broker, BrokerError, Follow, HistoryBatch, NewEvent, Origin, Outbox, Published, TopicChange,
};
use crate::model::{Position, Retention, StreamKey, TopicId};
use crate::store::TopicRecord;

#[async_trait]
impl Broker for RedisBroker {
    fn persistent(&self) -> bool {
        // Every topic's history is in Redis.
        true
    }

    async fn stored_topics(&self) -> Result<Vec<TopicRecord>, BrokerError> {
        let (records, newest) = registry::load_all(&self.shared.conn, &self.shared.keys)
            .await
            .map_err(|e| self.shared.count("registry", e))?;
        // What the hub opens now: a reconnect reads only what came after.
        self.shared.registry_seen.lock().get_or_insert(newest);
        Ok(records)
    }

    async fn open(
        &self,
        stream: &StreamKey,
        record: &TopicRecord,
        origin: Origin,
    ) -> Result<(), BrokerError> {
        let cap = self.cap(&record.retention);
        let Some(topic) = stream.topic() else {
            // The presence feed: like an inbox, opened once at start-up.
            self.open_system(stream, cap, record.retention.max_age);
            return Ok(());
        };
        if origin == Origin::New {
            registry::save(
                &self.shared.conn,
                &self.shared.keys,
                record,
                &self.shared.node,
            )
            .await
            .map_err(|e| self.shared.count("registry", e))?;
        }
        let registered = (origin != Origin::Configured).then(|| record.clone());
        let max_age = record.retention.max_age;
        self.shared
            .streams
            .write()
            .entry(topic.clone())
            .or_insert_with(|| {
                let names = self.shared.keys.names(stream);
                LiveStream::new(stream.clone(), names, cap, max_age, registered)
            });
        Ok(())
    }

    async fn open_inbox(
        &self,
        stream: &StreamKey,
        retention: Retention,
    ) -> Result<(), BrokerError> {
        if !stream.is_inbox() {
            return Err(BrokerError::NotFound);
        }
        self.open_system(stream, self.cap(&retention), retention.max_age);
        Ok(())
    }

    fn close_idle_inboxes(&self) -> usize {
        // The same periodic sweep stops listening to streams nobody here
        // follows any more, so a node hears only what it delivers.
        let idle: Vec<Arc<LiveStream>> = self
            .shared
            .every_stream()
            .into_iter()
            .filter(|s| s.wanted.load(Ordering::Relaxed) && s.followers.is_empty())
            .collect();
        if !idle.is_empty() {
            let shared = self.shared.clone();
            tokio::spawn(async move {
                for live in idle {
                    listener::unsubscribe_if_idle(&shared, &live).await;
                }
            });
        }
        self.forget_idle_inboxes()
    }

    fn open_inboxes(&self) -> usize {
        self.shared
            .inboxes
            .read()
            .keys()
            .filter(|k| k.is_inbox())
            .count()
    }

    async fn delete(&self, stream: &StreamKey) -> Result<(), BrokerError> {
        let Some(topic) = stream.topic() else {
            // Inboxes and the presence feed are never deleted.
            return Err(BrokerError::NotFound);
        };
        self.live(stream)?;
        registry::remove(
            &self.shared.conn,
            &self.shared.keys,
            topic,
            &self.shared.node,
        )
        .await
        .map_err(|e| self.shared.count("registry", e))?;
        if let Some(live) = self.shared.streams.write().remove(topic) {
            live.close();
        }
        Ok(())
    }

    async fn publish(&self, stream: &StreamKey, event: NewEvent) -> Result<Published, BrokerError> {
        let live = self.live(stream)?;
        let Some(topic) = stream.topic() else {
            return self
                .publish_inbox(&live, event)
                .await
                .map_err(|e| self.shared.count("publish", e));
        };
        let registry = self.shared.keys.registry();
        let epoch_key = self.shared.keys.epoch();
        let ids = self.shared.keys.ids(topic);
        let mut refused = false;
        let seq = loop {
            let epoch = self.shared.epoch.lock().value.clone();
            let target = publish::Target {
                names: &live.names,
                registry: &registry,
                epoch_key: &epoch_key,
                ids: &ids,
                cap: live.cap,
                max_age_ms: live.max_age.map_or(0, inboxes::millis),
                registered: live.registered.then_some(topic.as_str()),
                epoch: &epoch,
            };
            let appended = publish::append(
                &self.shared.conn,
                &self.shared.script,
                target,
                &event,
                self.shared.wait_replicas,
                self.wait_ms(),
            )
            .await
            .map_err(|e| self.shared.count("publish", e))?;
            match appended {
                publish::Appended::At(seq) => break seq,
                // Redis lost its data (or was flushed): adopt the new
                // epoch (re-creating the registry) and try once more.
                publish::Appended::OtherEpoch if !refused => {
                    refused = true;
                    epoch::check(&self.shared).await?;
                }
                publish::Appended::OtherEpoch => {
                    return Err(BrokerError::Unavailable(UNAVAILABLE.to_string()));
                }
            }
        };
        Ok(live.appended(seq, &event))
    }

    async fn follow(
        &self,
        stream: &StreamKey,
        outbox: &Arc<Outbox>,
        slot: u32,
    ) -> Result<Follow, BrokerError> {
        let live = self.live(stream)?;
        let (ticket, head) = loop {
            if live.sent().is_none() {
                let _subscribing = live.subscribing.lock().await;
                // An idle inbox closed by the sweep meanwhile: open it again.
                if live.is_closed() {
                    return Err(BrokerError::NotFound);
                }
                if live.sent().is_none() {
                    listener::subscribe(&self.shared, &live).await?;
                    let last =
                        history::last_assigned(&self.shared.conn, &self.shared.source(&live))
                            .await
                            .map_err(|e| self.shared.count("follow", e))?;
                    live.synced(last);
                }
            }
            match live.join(outbox.clone(), slot) {
                Join::Joined(ticket, head) => break (ticket, head),
                // The idle sweep stopped listening in between.
                Join::NotListening => continue,
                Join::Closed => return Err(BrokerError::NotFound),
            }
        };
        // Anything published between reading the head and the listener
        // seeing this topic's messages.
        if let Err(e) = listener::catch_up(&self.shared, &live).await {
            tracing::warn!(stream = %stream, error = %e, "cannot catch up from Redis");
        }
        Ok(Follow {
            ticket,
            head: Position::from_seq(head),
        })
    }

    async fn read_after(
        &self,
        stream: &StreamKey,
        after: Position,
        limit: usize,
    ) -> Result<HistoryBatch, BrokerError> {
        let live = self.live(stream)?;
        let source = self.shared.source(&live);
        let after = after.seq();
        let mut page = history::after(&self.shared.conn, &source, after, limit)
            .await
            .map_err(|e| self.shared.count("read", e))?;
        // Expired entries the next publish has not deleted yet (one
        // without a time was not written by sser: it stays, to be rejected
        // and counted below).
        page.entries.retain(|entry| !entry.expired(&source));
        let missing = match page.entries.first() {
            Some(first) => first.seq > after.saturating_add(1),
            None => page.last_assigned > after,
        };
        let mut events = Vec::with_capacity(page.entries.len());
        for entry in &page.entries {
            match entry.delivery() {
                Some(delivery) => events.push(delivery),
                None => self.shared.metrics.cluster_entry_rejected(),
            }
        }
        Ok(HistoryBatch { events, missing })
    }

    async fn holds_after(&self, stream: &StreamKey, after: Position) -> Result<bool, BrokerError> {
        let live = self.live(stream)?;
        let (first, last) = history::first(&self.shared.conn, &self.shared.source(&live))
            .await
            .map_err(|e| self.shared.count("read", e))?;
        let after = after.seq();
        Ok(match first {
            Some(first) => first <= after.saturating_add(1),
            None => last <= after,
        })
    }

    async fn find(
        &self,
        stream: &StreamKey,
        event_id: &str,
    ) -> Result<Option<Position>, BrokerError> {
        let live = self.live(stream)?;
        let seq = history::find(&self.shared.conn, &self.shared.source(&live), event_id)
            .await
            .map_err(|e| self.shared.count("find", e))?;
        Ok(seq.map(Position::from_seq))
    }

    async fn oldest(&self, stream: &StreamKey) -> Option<Position> {
        let live = self.live(stream).ok()?;
        let (first, _) = history::first(&self.shared.conn, &self.shared.source(&live))
            .await
            .map_err(|e| self.shared.count("read", e))
            .ok()?;
        first.map(Position::from_seq)
    }

    fn usage(&self, _stream: &StreamKey) -> (u64, u64) {
        // History is in Redis: reading its size on every metrics scrape
        // would cost a round trip per stream.
        (0, 0)
    }

    fn followers(&self, stream: &StreamKey) -> Vec<Arc<Outbox>> {
        self.live(stream)
            .map_or_else(|_| Vec::new(), |live| live.followers.outboxes())
    }

    fn follower_count(&self, stream: &StreamKey) -> usize {
        self.live(stream).map_or(0, |live| live.followers.len())
    }

    async fn flush(&self) -> Result<(), BrokerError> {
        self.local.flush().await
    }

    async fn lookup_topic(&self, id: &str) -> Result<Option<TopicRecord>, BrokerError> {
        if !TopicId::is_valid(id) {
            return Ok(None);
        }
        registry::load(&self.shared.conn, &self.shared.keys, id).await
    }

    fn topic_changes(&self) -> Option<mpsc::UnboundedReceiver<TopicChange>> {
        self.changes.lock().take()
    }
}
