//! Identity inboxes in the single-node broker: opened on first use, closed
//! again when idle.
//!
//! A topic is created once and lives until deleted; an inbox (an
//! application's broadcast, a user's or a device's inbox) exists for every
//! identity that was ever sent to or connected, which is unbounded over a
//! server's life. So inboxes open on demand and a reaper closes the idle
//! ones (see [`Broker::close_idle_inboxes`](super::Broker::close_idle_inboxes)).
//!
//! Positions never repeat across an inbox's lives, or a client's cursor
//! could name a different event after a reopen:
//! - on disk, the log stores its newest sequence, and a reopened inbox
//!   continues after it (an inbox's log is named by its [`StreamKey`]'s
//!   text, which always holds `:`, so it can never be taken for a topic; it
//!   has no record in the topic registry, so no topic listing shows it);
//! - in memory, a (re)opened inbox starts at the clock in microseconds, as
//!   configured topics do after a restart: later than any position an
//!   earlier life gave out. A client resuming from an earlier life is told
//!   its history was truncated (the server cannot know whether it saw
//!   everything that expired), never handed another event under its id.
//!
//! Races: opening takes one of a few async locks (chosen by the key's hash),
//! so one inbox is never opened twice at once; closing marks the stream
//! closed under its publish lock, only with no follower and no commit in
//! flight, so a send or a follow that still holds it gets `NotFound` and
//! opens it again.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::BrokerError;
use super::local::{LocalBroker, LocalStream, offload};
use crate::model::{Retention, StreamKey, now_ms};
use crate::secret::Secret;
use crate::store::TopicRecord;
use crate::store::memory::MemoryLog;

impl LocalBroker {
    pub(super) async fn open_inbox_stream(
        &self,
        stream: &StreamKey,
        retention: Retention,
    ) -> Result<(), BrokerError> {
        if !stream.is_inbox() {
            return Err(BrokerError::NotFound);
        }
        if self.streams.read().contains_key(stream) {
            return Ok(());
        }
        let stripe = self.hasher.hash_one(stream) as usize % self.opening.len();
        let _opening = self.opening[stripe].lock().await;
        if self.streams.read().contains_key(stream) {
            return Ok(());
        }
        let local = match self.store.clone() {
            Some(store) => {
                let record = TopicRecord {
                    id: stream.to_string(),
                    // Never saved, never compared: inboxes are reached through
                    // identities, not topic tokens.
                    token: Secret::new(""),
                    persist: true,
                    created_at_ms: now_ms(),
                    retention,
                };
                let log = offload(true, move || store.open_log(&record)).await?;
                let next_seq = log.last_seq().saturating_add(1);
                LocalStream::new(true, log, next_seq)
            }
            None => {
                let next_seq = now_ms().saturating_mul(1000).max(1);
                LocalStream::new(false, MemoryLog::new(retention), next_seq)
            }
        };
        self.streams.write().insert(stream.clone(), local);
        Ok(())
    }

    pub(super) fn sweep_idle_inboxes(&self) -> usize {
        let candidates: Vec<(StreamKey, Arc<LocalStream>)> = self
            .streams
            .read()
            .iter()
            .filter(|(key, _)| key.is_inbox())
            .map(|(key, local)| (key.clone(), local.clone()))
            .collect();
        let mut closed = 0;
        for (key, local) in candidates {
            let idle = local.followers.is_empty() && {
                if !local.on_disk {
                    local.log.expire();
                }
                local.on_disk || local.log.usage().0 == 0
            };
            if !idle {
                local.idle.store(false, Ordering::Relaxed);
                continue;
            }
            // Closed at the second sweep in a row that finds it idle (a
            // follow in between clears the mark): a client that reconnects
            // soon finds its inbox as it left it.
            if !local.idle.swap(true, Ordering::Relaxed) {
                continue;
            }
            let mut streams = self.streams.write();
            let mut state = local.state.lock();
            // Checked again where no follow or publish can slip in.
            let still_idle = local.followers.is_empty()
                && state.pending.is_empty()
                && (local.on_disk || local.log.usage().0 == 0);
            let current = streams
                .get(&key)
                .is_some_and(|held| Arc::ptr_eq(held, &local));
            if still_idle && current {
                state.closed = true;
                streams.remove(&key);
                closed += 1;
            }
        }
        closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{Broker, NewEvent, Outbox};

    fn retention() -> Retention {
        Retention {
            max_events: Some(10),
            ..Retention::default()
        }
    }

    fn event(data: &str) -> NewEvent {
        NewEvent::new(None, None, data.to_string()).unwrap()
    }

    #[tokio::test]
    async fn idle_empty_inboxes_close_at_the_second_sweep_and_reopen_later() {
        let broker = LocalBroker::in_memory();
        let quiet = StreamKey::user("shop", "quiet");
        let busy = StreamKey::user("shop", "busy");
        let followed = StreamKey::app("shop");
        for key in [&quiet, &busy, &followed] {
            broker.open_inbox(key, retention()).await.unwrap();
            broker.open_inbox(key, retention()).await.unwrap();
        }
        assert_eq!(broker.open_inboxes(), 3, "opening twice opens once");
        let first = broker.publish(&busy, event("kept")).await.unwrap();
        let outbox = Arc::new(Outbox::new(8));
        let ticket = broker.follow(&followed, &outbox, 0).await.unwrap();

        assert_eq!(broker.close_idle_inboxes(), 0, "first sweep only marks");
        assert_eq!(broker.close_idle_inboxes(), 1, "second sweep closes");
        assert_eq!(
            broker.open_inboxes(),
            2,
            "history and followers keep theirs"
        );
        assert!(matches!(
            broker.publish(&quiet, event("x")).await,
            Err(BrokerError::NotFound)
        ));

        drop(ticket);
        broker.close_idle_inboxes();
        assert_eq!(broker.close_idle_inboxes(), 1);
        assert_eq!(broker.open_inboxes(), 1, "only the one with history");
        let _ = first;
    }

    #[tokio::test]
    async fn a_reopened_memory_inbox_never_reuses_a_position() {
        let broker = LocalBroker::in_memory();
        let key = StreamKey::user("shop", "u");
        let short = Retention {
            max_age: Some(std::time::Duration::from_millis(1)),
            ..retention()
        };
        broker.open_inbox(&key, short).await.unwrap();
        let first = broker.publish(&key, event("a")).await.unwrap();
        // Its history expires; then two sweeps close it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while broker.open_inboxes() > 0 {
            assert!(std::time::Instant::now() < deadline, "inbox never closed");
            broker.close_idle_inboxes();
            tokio::task::yield_now().await;
        }
        broker.open_inbox(&key, short).await.unwrap();
        let next = broker.publish(&key, event("b")).await.unwrap();
        assert!(next.position > first.position, "{next:?} after {first:?}");
    }

    #[tokio::test]
    async fn a_follow_between_sweeps_clears_the_mark() {
        let broker = LocalBroker::in_memory();
        let key = StreamKey::device("shop", "u", "phone");
        broker.open_inbox(&key, retention()).await.unwrap();
        broker.close_idle_inboxes();
        let outbox = Arc::new(Outbox::new(8));
        drop(broker.follow(&key, &outbox, 0).await.unwrap());
        assert_eq!(broker.close_idle_inboxes(), 0, "used since the last sweep");
        assert_eq!(broker.close_idle_inboxes(), 1);
        let topic = StreamKey::Topic(crate::model::TopicId::parse("t").unwrap());
        assert!(broker.open_inbox(&topic, retention()).await.is_err());
    }
}
