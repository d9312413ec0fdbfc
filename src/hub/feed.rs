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
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::topic::{LiveStart, Topic};
use crate::metrics::Metrics;
use crate::sse;
use crate::store::{StoreError, StoredEvent};

/// The comment that ends every stream when the server stops; EventSource
/// reconnects after its `retry:` delay, to this server or another.
const SHUTDOWN_NOTICE: &str = "server shutting down; reconnect";

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

/// What every feed shares: heartbeats, shutdown, counters, stream settings.
#[derive(Clone)]
pub(crate) struct FeedContext {
    pub ticks: watch::Receiver<u64>,
    pub shutdown: CancellationToken,
    pub metrics: Arc<Metrics>,
    pub retry_ms: u64,
}

impl Subscription {
    pub(crate) async fn open(
        topic: Arc<Topic>,
        resume: Resume,
        ctx: FeedContext,
    ) -> Result<Subscription, SubscribeError> {
        let live = topic.join().ok_or(SubscribeError::Closed)?;
        let (start, truncated) = match resume {
            Resume::Live => (Start::Live, false),
            Resume::Earliest => (Start::ReplayAfter(0), false),
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
            truncated,
            start,
            live,
            mut ctx,
        } = self;
        // Dropped with the stream, however it ends (including the client
        // vanishing mid-write), so the counters never leak.
        let guard = SubscriberGuard {
            topic: topic.clone(),
            metrics: ctx.metrics.clone(),
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
            if let Start::ReplayAfter(_) = start {
                match catch_up(&topic, cursor, false).await {
                    Ok(CatchUp { frames, last }) => {
                        for frame in frames {
                            ctx.metrics.event_sent(frame.len());
                            yield Ok(frame);
                        }
                        cursor = last.max(cursor);
                    }
                    Err(notice) => {
                        yield Ok(notice);
                        return;
                    }
                }
            }
            // Ticks seen before the stream started are not owed to anyone.
            ctx.ticks.borrow_and_update();
            loop {
                tokio::select! {
                    biased;
                    received = rx.recv() => match received {
                        Ok(delivery) => {
                            if delivery.seq > cursor {
                                cursor = delivery.seq;
                                ctx.metrics.event_sent(delivery.frame.len());
                                yield Ok(delivery.frame);
                            }
                        }
                        Err(RecvError::Lagged(_)) => {
                            ctx.metrics.subscriber_lagged();
                            match catch_up(&topic, cursor, true).await {
                                Ok(CatchUp { frames, last }) => {
                                    for frame in frames {
                                        ctx.metrics.event_sent(frame.len());
                                        yield Ok(frame);
                                    }
                                    cursor = last.max(cursor);
                                }
                                Err(notice) => {
                                    yield Ok(notice);
                                    return;
                                }
                            }
                        }
                        Err(RecvError::Closed) => {
                            yield Ok(sse::closed_frame());
                            return;
                        }
                    },
                    () = ctx.shutdown.cancelled() => {
                        yield Ok(sse::comment_frame(SHUTDOWN_NOTICE));
                        return;
                    }
                    changed = ctx.ticks.changed() => {
                        // The ticker only stops when the server does.
                        if changed.is_err() {
                            yield Ok(sse::comment_frame(SHUTDOWN_NOTICE));
                            return;
                        }
                        yield Ok(sse::heartbeat_frame());
                    }
                }
            }
        }
    }
}

struct CatchUp {
    frames: Vec<Bytes>,
    last: u64,
}

/// Reads history after `cursor` up to its current end. A subscriber that
/// lagged, or resumes after a known id, must get `cursor + 1` next; if history
/// has moved past it, the error is the `sser.lagged` notice that ends the
/// stream.
async fn catch_up(topic: &Arc<Topic>, cursor: u64, lagged: bool) -> Result<CatchUp, Bytes> {
    let mut frames = Vec::new();
    let mut last = cursor;
    loop {
        let log = topic.log.clone();
        let after = last;
        let batch: Vec<StoredEvent> =
            match read_log(topic.persist, move || log.read_after(after, REPLAY_BATCH)).await {
                Ok(batch) => batch,
                Err(e) => return Err(lagged_notice(topic, cursor, &e.to_string())),
            };
        // Sequences are dense within a topic, so a first event past
        // `cursor + 1` (or none at all after a lag) means history was
        // trimmed past what this subscriber still needed.
        let gap = match batch.first() {
            Some(e) => (lagged || cursor > 0) && e.seq != cursor + 1,
            None => lagged,
        };
        if last == cursor && gap {
            return Err(lagged_notice(
                topic,
                cursor,
                "the subscriber fell behind further than history reaches",
            ));
        }
        let done = batch.len() < REPLAY_BATCH;
        for event in batch {
            last = event.seq;
            frames.push(event.frame);
        }
        if done {
            return Ok(CatchUp { frames, last });
        }
    }
}

fn lagged_notice(topic: &Topic, cursor: u64, why: &str) -> Bytes {
    tracing::warn!(topic = %topic.id, cursor, why, "subscriber disconnected: fell behind");
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
}

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.topic.remove_subscriber();
        self.metrics.subscriber_closed();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error("topic is closed")]
    Closed,
    #[error(transparent)]
    Store(#[from] StoreError),
}
