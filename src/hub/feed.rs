//! A subscriber's stream: replay from history, then the live topic, with
//! heartbeats, until the topic closes, the server shuts down or the client
//! goes away.
//!
//! Slow-consumer policy (publishers never wait for a subscriber):
//! each topic's live channel holds the last `pubsub.subscriberBuffer` events.
//! A subscriber that falls further behind is not dropped silently: it catches
//! up from the topic's history. If history no longer holds the next event it
//! needs, it is sent an `sser.lagged` event naming the last id it received and
//! the stream ends, so the client reconnects with `Last-Event-ID` and is told
//! exactly what was lost (`sser.history_truncated`).
//!
//! Every frame carries the event's sequence, and the stream never sends a
//! sequence at or below the last one it sent: that is what makes the seam
//! between replay and live (and lag catch-up) free of duplicates and gaps.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::topic::{JoinRefused, LiveStart, Signal, Topic};
use crate::metrics::Metrics;
use crate::sse;
use crate::store::{StoreError, StoredEvent};

/// The comment that ends every stream when the server stops; EventSource
/// reconnects after its `retry:` delay, to this server or another.
pub const SHUTDOWN_NOTICE: &str = "server shutting down; reconnect";

/// Events read from history per batch during replay.
const REPLAY_BATCH: usize = 512;

/// Where a subscriber asked to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Only what is published from now on.
    Live,
    /// Everything after the event with this id (`Last-Event-ID`).
    After(String),
    /// Everything history still holds (`?last_event_id=earliest`).
    Earliest,
    /// The client sent an id that cannot name any event (its bytes are not
    /// UTF-8): answered like an id no longer in history, with the explicit
    /// truncation notice and everything retained, never a silent live-only
    /// stream.
    Unreadable,
}

impl Resume {
    /// The reserved `Last-Event-ID` value that asks for all retained history.
    pub const EARLIEST: &'static str = "earliest";

    pub fn from_last_event_id(value: Option<&str>) -> Resume {
        match value {
            None | Some("") => Resume::Live,
            Some(Resume::EARLIEST) => Resume::Earliest,
            Some(id) => Resume::After(id.to_string()),
        }
    }
}

/// A live subscription, before it becomes a stream. `truncated` tells the
/// HTTP layer to set its header before the body starts.
pub struct Subscription {
    pub topic: Arc<Topic>,
    /// This stream's id in logs (`conn`), unique per subscription.
    pub conn_id: Arc<str>,
    /// The requested `Last-Event-ID` was not in history: the stream starts
    /// with an `sser.history_truncated` event and everything history holds.
    pub truncated: bool,
    start: Start,
    live: LiveStart,
    ctx: FeedContext,
}

enum Start {
    Live,
    /// Replay history after this sequence (0 = from the oldest).
    ReplayAfter(u64),
}

/// What every feed shares: counters and stream settings.
#[derive(Clone)]
pub(crate) struct FeedContext {
    pub metrics: Arc<Metrics>,
    pub retry_ms: u64,
}

impl Subscription {
    pub(crate) async fn open(
        topic: Arc<Topic>,
        resume: Resume,
        ctx: FeedContext,
    ) -> Result<Subscription, SubscribeError> {
        let live = topic.join().map_err(|refused| match refused {
            JoinRefused::Closed => SubscribeError::Closed,
            JoinRefused::Stopping => SubscribeError::Stopping,
        })?;
        let (start, truncated) = match resume {
            Resume::Live => (Start::Live, false),
            Resume::Earliest => (Start::ReplayAfter(0), false),
            Resume::Unreadable => (Start::ReplayAfter(0), true),
            Resume::After(id) => {
                let log = topic.log.clone();
                match read_log(topic.persist, move || log.find(&id)).await? {
                    Some(seq) => (Start::ReplayAfter(seq), false),
                    None => (Start::ReplayAfter(0), true),
                }
            }
        };
        topic.add_subscriber();
        ctx.metrics.subscriber_opened();
        Ok(Subscription {
            topic,
            conn_id: Arc::from(crate::secret::new_id()),
            truncated,
            start,
            live,
            ctx,
        })
    }

    /// The body of the SSE response.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
        let Subscription {
            topic,
            conn_id,
            truncated,
            start,
            live,
            ctx,
        } = self;
        // Dropped with the stream, however it ends (including the client
        // vanishing mid-write), so the counters never leak.
        let guard = SubscriberGuard {
            topic: topic.clone(),
            metrics: ctx.metrics.clone(),
            conn_id: conn_id.clone(),
            opened: std::time::Instant::now(),
        };
        let LiveStart { mut rx, after } = live;
        async_stream::stream! {
            let _guard = guard;
            yield Ok(sse::opening_frame(ctx.retry_ms));
            if truncated {
                let oldest = topic.log.bounds().map(|(first, _)| first);
                yield Ok(sse::encode_notice(
                    "sser.history_truncated",
                    &serde_json::json!({
                        "status": "history_truncated",
                        "message": "the requested Last-Event-ID is no longer in history; sending all that is retained",
                        "oldest_retained_seq": oldest,
                    })
                    .to_string(),
                ));
            }
            // The sequence of the last event sent; nothing at or below it is sent again.
            let mut cursor = match start {
                Start::Live => after,
                Start::ReplayAfter(seq) => seq,
            };
            // Set when history must be replayed before (more) live events:
            // at the start of a resumed stream, and after falling behind.
            let mut catch_up = match start {
                Start::Live => None,
                Start::ReplayAfter(_) => Some(CatchUp::Resume),
            };
            loop {
                if let Some(reason) = catch_up.take() {
                    // One batch in memory at a time, however long the replay.
                    let mut first = true;
                    loop {
                        let batch = match read_batch(&topic, cursor).await {
                            Ok(batch) => batch,
                            Err(e) => {
                                yield Ok(lagged_notice(&topic, &conn_id, cursor, &e.to_string()));
                                return;
                            }
                        };
                        if first && reason.is_gap(cursor, batch.first().map(|e| e.seq)) {
                            yield Ok(lagged_notice(
                                &topic,
                                &conn_id,
                                cursor,
                                "the subscriber fell behind further than history reaches",
                            ));
                            return;
                        }
                        first = false;
                        let done = batch.len() < REPLAY_BATCH;
                        for event in batch {
                            cursor = event.seq;
                            ctx.metrics.event_sent(event.frame.len());
                            yield Ok(event.frame);
                        }
                        if done {
                            break;
                        }
                    }
                }
                match rx.recv().await {
                    Ok(Signal::Event(delivery)) => {
                        if delivery.seq > cursor {
                            cursor = delivery.seq;
                            ctx.metrics.event_sent(delivery.frame.len());
                            yield Ok(delivery.frame);
                        }
                    }
                    Ok(Signal::Heartbeat) => yield Ok(sse::heartbeat_frame()),
                    Ok(Signal::Shutdown) => {
                        yield Ok(sse::comment_frame(SHUTDOWN_NOTICE));
                        return;
                    }
                    Err(RecvError::Lagged(_)) => {
                        ctx.metrics.subscriber_lagged();
                        catch_up = Some(CatchUp::Lagged);
                    }
                    Err(RecvError::Closed) => {
                        yield Ok(sse::closed_frame());
                        return;
                    }
                }
            }
        }
    }
}

/// Why a stream is replaying history.
#[derive(Clone, Copy)]
enum CatchUp {
    /// It resumes after `Last-Event-ID` (or from the oldest event).
    Resume,
    /// It fell behind the live buffer and must get `cursor + 1` next.
    Lagged,
}

impl CatchUp {
    /// Whether the first event history holds after `cursor` leaves a hole.
    /// Sequences are dense within a topic, so a first event past
    /// `cursor + 1` (or none at all after a lag) means history was trimmed
    /// past what this subscriber still needed. A stream replaying from the
    /// oldest event (`cursor == 0`) cannot have a hole.
    fn is_gap(self, cursor: u64, first: Option<u64>) -> bool {
        match (self, first) {
            (CatchUp::Lagged, None) => true,
            (CatchUp::Resume, None) => false,
            (CatchUp::Lagged, Some(seq)) => seq != cursor + 1,
            (CatchUp::Resume, Some(seq)) => cursor > 0 && seq != cursor + 1,
        }
    }
}

/// The next batch of history after `cursor`.
async fn read_batch(topic: &Arc<Topic>, cursor: u64) -> Result<Vec<StoredEvent>, StoreError> {
    let log = topic.log.clone();
    read_log(topic.persist, move || log.read_after(cursor, REPLAY_BATCH)).await
}

fn lagged_notice(topic: &Topic, conn: &str, cursor: u64, why: &str) -> Bytes {
    tracing::warn!(topic = %topic.id, conn, cursor, why, "subscriber disconnected: fell behind");
    sse::encode_notice(
        "sser.lagged",
        &serde_json::json!({
            "status": "lagged",
            "message": format!("{why}; reconnect with Last-Event-ID to resume"),
            "last_seq": cursor,
        })
        .to_string(),
    )
}

/// Runs a history read: inline for in-memory logs (a few clones under a short
/// lock), on the blocking pool for disk-backed ones.
async fn read_log<T: Send + 'static>(
    on_disk: bool,
    read: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    if on_disk {
        tokio::task::spawn_blocking(read)
            .await
            .map_err(|e| StoreError::Io(format!("history read task failed: {e}")))?
    } else {
        read()
    }
}

struct SubscriberGuard {
    topic: Arc<Topic>,
    metrics: Arc<Metrics>,
    conn_id: Arc<str>,
    opened: std::time::Instant,
}

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        tracing::debug!(
            topic = %self.topic.id,
            conn = %self.conn_id,
            duration_ms = self.opened.elapsed().as_millis() as u64,
            "subscriber disconnected"
        );
        self.topic.remove_subscriber();
        self.metrics.subscriber_closed();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error("topic is closed")]
    Closed,
    #[error("the server is shutting down")]
    Stopping,
    #[error(transparent)]
    Store(#[from] StoreError),
}
