//! A connection's HTTP body: replay from history where asked, then whatever
//! its queue brings (events, heartbeats, closes, shutdown), until a stream
//! ends it, the server stops or the client goes away.
//!
//! Slow-consumer policy (publishers never wait for a connection): the queue
//! holds `pubsub.subscriberBuffer` events. A connection that falls further
//! behind is not dropped silently: the broker marks it lagged and it catches
//! up from each stream's history. If history no longer holds the next event
//! it needs, it is sent an `sser.lagged` event naming its last position and
//! the stream ends, so the client reconnects with `Last-Event-ID` and is told
//! exactly what was lost (`sser.history_truncated`).
//!
//! Each stream keeps a cursor, the position of the last event sent, and
//! nothing at or below it is sent again: that makes the seams between
//! replay and live (and lag catch-up) free of duplicates and gaps, stream by
//! stream. Cursors are also what a multi-topic connection's ids are made of
//! (see `super::framing` and `crate::model::cursor`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use futures_util::Stream;

use super::admission::Refusal;
use super::connection::{Connection, EndReason, Owner};
use super::connections::Registration;
use super::framing::{Frames, Framing};
use super::notices;
use super::{Hub, HubError};
use crate::broker::{Broker, BrokerError, Delivery, FollowTicket, Item, Outbox};
use crate::metrics::Metrics;
use crate::model::cursor::{EARLIEST, StreamSet};
use crate::model::{Position, StreamKey};
use crate::sse;

/// The comment that ends every stream when the server stops; EventSource
/// reconnects after its `retry:` delay, to this server or another.
pub const SHUTDOWN_NOTICE: &str = "server shutting down; reconnect";

/// The comment that ends a stream ended by an operator.
pub const ENDED_NOTICE: &str = "connection ended by the server";

/// Events read from history per batch during replay.
const REPLAY_BATCH: usize = 512;

const UNKNOWN_ID: &str =
    "the requested Last-Event-ID is no longer in history; sending all that is retained";
const GAP: &str = "history no longer holds every event after the requested Last-Event-ID; sending all that is retained";

/// Where a single-topic subscriber asked to start.
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
    pub const EARLIEST: &'static str = EARLIEST;

    pub fn from_last_event_id(value: Option<&str>) -> Resume {
        match value {
            None | Some("") => Resume::Live,
            Some(EARLIEST) => Resume::Earliest,
            Some(id) => Resume::After(id.to_string()),
        }
    }
}

/// What a connection asked for.
pub(crate) enum Ask {
    /// SSER's one-topic stream: shared frames, ids as published.
    One(Resume),
    /// Stream-named events and cursor ids, resuming from this
    /// `Last-Event-ID`.
    Cursor(Option<String>),
}

/// How one stream is replayed from history.
#[derive(Debug, Clone, Copy)]
enum Replay {
    /// Everything after the cursor that history holds; holes are expected
    /// (`earliest`, or after a truncation notice).
    Everything,
    /// Resuming after a known position: a hole is reported once.
    Exact,
    /// Catching up after falling behind: a hole ends the connection.
    Lagged,
}

/// A connection, opened and following its streams, before it becomes an
/// HTTP body. `truncated` tells the HTTP layer to set its header.
pub struct Subscription {
    /// Sent as `X-Connection-Id`; the registry's key.
    pub conn_id: Arc<str>,
    /// A requested `Last-Event-ID` was not (wholly) in history: the stream
    /// starts with `sser.history_truncated` and everything history holds.
    pub truncated: bool,
    feed: Feed,
}

struct Feed {
    broker: Arc<dyn Broker>,
    metrics: Arc<Metrics>,
    retry_ms: u64,
    conn: Arc<Connection>,
    framing: Framing,
    streams: Vec<Followed>,
    /// The position of the last event sent, per stream.
    cursors: Vec<Position>,
    /// When the connection must end (its token's expiry).
    deadline: Option<tokio::time::Instant>,
    /// Unregisters the connection and counts it closed when dropped.
    guard: FeedGuard,
}

struct Followed {
    key: StreamKey,
    /// Leaves the stream's fan-out when dropped; `None` once it closed.
    ticket: Option<FollowTicket>,
    /// How to replay before going live, if at all.
    start: Option<Replay>,
    /// Starts with a truncation notice.
    truncated: bool,
}

/// One replay step.
enum Step {
    Frames(Vec<Bytes>, bool),
    End(Bytes),
}

/// What a connection follows, how it starts, and who opens it.
pub(crate) struct Opening {
    /// Its streams, in cursor order (topics and, for an identity, inboxes).
    pub keys: Vec<StreamKey>,
    pub ask: Ask,
    /// The identity that opened it, if any.
    pub owner: Option<Owner>,
    /// When it must end (its token expires): it gets `sser.token_expired`.
    pub expires_at: Option<SystemTime>,
    /// The client's address, when the listener knew it.
    pub remote: Option<SocketAddr>,
}

/// Opens a connection: registers it (for an identity connection, that is
/// its admission: see `super::admission`), follows each stream (opening
/// inboxes on first use), and works out where each one starts.
pub(crate) async fn open(hub: &Hub, opening: Opening) -> Result<Subscription, HubError> {
    let Opening {
        keys,
        ask,
        owner,
        expires_at,
        remote,
    } = opening;
    let outbox = Arc::new(Outbox::new(hub.settings.subscriber_buffer));
    let keys: Box<[StreamKey]> = keys.into_boxed_slice();
    let conn_id: Arc<str> = Arc::from(crate::secret::new_id());
    let conn = Arc::new(Connection::new(
        conn_id.clone(),
        outbox.clone(),
        keys.clone(),
        owner,
        remote,
    ));
    let registration = hub
        .connections
        .register(conn.clone())
        .map_err(|refusal| match refusal {
            Refusal::Stopping => HubError::Stopping,
            refusal => HubError::Refused(refusal),
        })?;
    let guard = FeedGuard {
        registration,
        metrics: hub.metrics.clone(),
        conn_id: conn_id.clone(),
        first: keys.first().cloned(),
        count: keys.len(),
        opened: Instant::now(),
        counted: false,
    };

    let mut streams = Vec::with_capacity(keys.len());
    let mut cursors = Vec::with_capacity(keys.len());
    for (slot, key) in keys.iter().enumerate() {
        let follow = hub.follow(key, &outbox, slot as u32).await?;
        streams.push(Followed {
            key: key.clone(),
            ticket: Some(follow.ticket),
            start: None,
            truncated: false,
        });
        cursors.push(follow.head);
    }

    let framing = match &ask {
        Ask::One(_) => Framing::Shared,
        Ask::Cursor(_) => Framing::Labelled {
            set: StreamSet::of(&keys),
            keys,
        },
    };
    let mut feed = Feed {
        broker: hub.broker.clone(),
        metrics: hub.metrics.clone(),
        retry_ms: hub.settings.retry.as_millis() as u64,
        conn,
        framing,
        streams,
        cursors,
        deadline: expires_at.map(deadline_of),
        guard,
    };
    feed.plan(ask).await?;
    feed.guard.counted = true;
    hub.metrics.subscriber_opened();
    Ok(Subscription {
        conn_id,
        truncated: feed.streams.iter().any(|s| s.truncated),
        feed,
    })
}

/// The runtime's instant for a wall-clock time (now, if it has passed).
fn deadline_of(at: SystemTime) -> tokio::time::Instant {
    let left = at.duration_since(SystemTime::now()).unwrap_or_default();
    tokio::time::Instant::now() + left
}

impl Feed {
    /// Sets where each stream starts (cursor, replay, notice).
    async fn plan(&mut self, ask: Ask) -> Result<(), HubError> {
        match ask {
            Ask::One(Resume::Live) | Ask::Cursor(None) => {}
            Ask::One(Resume::Earliest) => self.replay_all_from_start(false),
            Ask::One(Resume::Unreadable) => self.replay_all_from_start(true),
            Ask::Cursor(Some(id)) if id.is_empty() => {}
            Ask::Cursor(Some(id)) if id == EARLIEST => self.replay_all_from_start(false),
            Ask::One(Resume::After(id)) => {
                let key = self.streams[0].key.clone();
                match self.broker.find(&key, &id).await? {
                    Some(position) => {
                        self.cursors[0] = position;
                        self.streams[0].start = Some(Replay::Exact);
                    }
                    None => self.replay_all_from_start(true),
                }
            }
            Ask::Cursor(Some(cursor)) => {
                let Framing::Labelled { set, .. } = &self.framing else {
                    return Ok(());
                };
                let Some(positions) = set.decode(&cursor) else {
                    // A cursor of other streams, or no cursor at all.
                    self.replay_all_from_start(true);
                    return Ok(());
                };
                for (slot, position) in positions.into_iter().enumerate() {
                    let head = self.cursors[slot];
                    let stream = &mut self.streams[slot];
                    if position > head {
                        // Ahead of the stream: not a position it gave out.
                        stream.truncated = true;
                        stream.start = Some(Replay::Everything);
                        self.cursors[slot] = Position::ZERO;
                    } else if !self.broker.holds_after(&stream.key, position).await? {
                        stream.truncated = true;
                        stream.start = Some(Replay::Everything);
                        self.cursors[slot] = position;
                    } else {
                        stream.start = Some(Replay::Exact);
                        self.cursors[slot] = position;
                    }
                }
            }
        }
        Ok(())
    }

    fn replay_all_from_start(&mut self, truncated: bool) {
        for (stream, cursor) in self.streams.iter_mut().zip(&mut self.cursors) {
            stream.start = Some(Replay::Everything);
            stream.truncated = truncated;
            *cursor = Position::ZERO;
        }
    }

    /// `delivery` from stream `slot` as this connection writes it, unless it
    /// was sent already (or its stream closed).
    fn deliver(&mut self, slot: usize, delivery: &Delivery) -> Option<Frames> {
        let stream = self.streams.get(slot)?;
        if stream.ticket.is_none() || delivery.position <= self.cursors[slot] {
            return None;
        }
        self.cursors[slot] = delivery.position;
        let frames = self.framing.event(slot, &delivery.frame, &self.cursors);
        self.conn.record_sent(frames.first());
        self.metrics.event_sent(frames.len());
        Some(frames)
    }

    /// The next batch of history for stream `slot`.
    async fn replay_batch(&mut self, slot: usize, mode: &mut Replay) -> Step {
        let key = self.streams[slot].key.clone();
        let batch = match self
            .broker
            .read_after(&key, self.cursors[slot], REPLAY_BATCH)
            .await
        {
            Ok(batch) => batch,
            // Deleted meanwhile: its close is queued behind this.
            Err(BrokerError::NotFound) => return Step::Frames(Vec::new(), true),
            Err(e) => return Step::End(self.lagged_notice(slot, &e.to_string())),
        };
        let mut frames = Vec::with_capacity(batch.events.len() + 1);
        if batch.missing {
            match mode {
                Replay::Everything => {}
                Replay::Exact => {
                    frames.push(self.truncated_notice(slot, GAP).await);
                    *mode = Replay::Everything;
                }
                Replay::Lagged => {
                    return Step::End(self.lagged_notice(
                        slot,
                        "the subscriber fell behind further than history reaches",
                    ));
                }
            }
        }
        let done = batch.events.len() < REPLAY_BATCH;
        for delivery in &batch.events {
            match self.deliver(slot, delivery) {
                Some(Frames::One(a)) => frames.push(a),
                Some(Frames::Two(a, b)) => frames.extend([a, b]),
                None => {}
            }
        }
        Step::Frames(frames, done)
    }

    /// Stream `slot` was deleted: what to send, and whether the connection
    /// ends with it.
    fn closed(&mut self, slot: usize) -> (Bytes, bool) {
        if let Some(stream) = self.streams.get_mut(slot) {
            stream.ticket = None;
        }
        match self.framing.stream(slot) {
            // SSER's last message when its one topic is deleted.
            None => (sse::closed_frame(), true),
            Some(key) => {
                let open = self.streams.iter().any(|s| s.ticket.is_some());
                (notices::closed(key), !open)
            }
        }
    }

    async fn truncated_notice(&self, slot: usize, message: &str) -> Bytes {
        let oldest = self.broker.oldest(&self.streams[slot].key).await;
        notices::truncated(message, oldest, self.framing.stream(slot))
    }

    fn lagged_notice(&self, slot: usize, why: &str) -> Bytes {
        let cursor = self.cursors[slot];
        let key = &self.streams[slot].key;
        tracing::warn!(
            stream = %key,
            conn = %self.conn.id(),
            cursor = %cursor,
            why,
            "subscriber disconnected: fell behind"
        );
        notices::lagged(why, cursor, self.framing.stream(slot))
    }
}

impl Subscription {
    /// The body of the SSE response.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
        let mut feed = self.feed;
        async_stream::stream! {
            yield Ok(sse::opening_frame(feed.retry_ms));
            for slot in 0..feed.streams.len() {
                if feed.streams[slot].truncated {
                    yield Ok(feed.truncated_notice(slot, UNKNOWN_ID).await);
                }
            }
            let mut expiry = feed.deadline.map(|at| Box::pin(tokio::time::sleep_until(at)));
            let mut replays: Vec<(usize, Replay)> = feed
                .streams
                .iter_mut()
                .enumerate()
                .filter_map(|(slot, s)| s.start.take().map(|mode| (slot, mode)))
                .collect();
            loop {
                for (slot, mut mode) in std::mem::take(&mut replays) {
                    // One batch in memory at a time, however long the replay.
                    loop {
                        match feed.replay_batch(slot, &mut mode).await {
                            Step::Frames(frames, done) => {
                                for frame in frames {
                                    yield Ok(frame);
                                }
                                if done {
                                    break;
                                }
                            }
                            Step::End(notice) => {
                                yield Ok(notice);
                                return;
                            }
                        }
                    }
                }
                let item = match expiry.as_mut() {
                    None => feed.conn.outbox().next().await,
                    // The deadline first: a busy queue must not keep an
                    // expired token's stream open.
                    Some(sleep) => tokio::select! {
                        biased;
                        () = sleep.as_mut() => {
                            // Out of the registry now, presence reason
                            // `expired`; the notice is written below.
                            feed.guard.registration.end(&EndReason::Expired);
                            Item::End(Some(notices::token_expired()))
                        }
                        item = feed.conn.outbox().next() => item,
                    },
                };
                match item {
                    Item::Event { slot, delivery } => match feed.deliver(slot as usize, &delivery) {
                        Some(Frames::One(frame)) => yield Ok(frame),
                        Some(Frames::Two(head, rest)) => {
                            yield Ok(head);
                            yield Ok(rest);
                        }
                        None => {}
                    },
                    Item::Lagged => {
                        feed.metrics.subscriber_lagged();
                        replays = feed
                            .streams
                            .iter()
                            .enumerate()
                            .filter(|(_, s)| s.ticket.is_some())
                            .map(|(slot, _)| (slot, Replay::Lagged))
                            .collect();
                    }
                    Item::Heartbeat => yield Ok(sse::heartbeat_frame()),
                    Item::Closed { slot } => {
                        let (frame, end) = feed.closed(slot as usize);
                        yield Ok(frame);
                        if end {
                            return;
                        }
                    }
                    Item::Shutdown => {
                        yield Ok(sse::comment_frame(SHUTDOWN_NOTICE));
                        return;
                    }
                    Item::End(farewell) => {
                        yield Ok(farewell.unwrap_or_else(|| sse::comment_frame(ENDED_NOTICE)));
                        return;
                    }
                }
            }
        }
    }
}

/// Dropped with the body, however it ends (including the client vanishing
/// mid-write): the connection leaves the registry (its follows leave their
/// streams with the feed) and the counters never leak.
struct FeedGuard {
    registration: Registration,
    metrics: Arc<Metrics>,
    conn_id: Arc<str>,
    first: Option<StreamKey>,
    count: usize,
    opened: Instant,
    /// Counted as opened (it got as far as a body).
    counted: bool,
}

impl Drop for FeedGuard {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        tracing::debug!(
            stream = %self.first.as_ref().map_or(String::new(), |k| k.to_string()),
            topics = self.count,
            conn = %self.conn_id,
            duration_ms = self.opened.elapsed().as_millis() as u64,
            "subscriber disconnected"
        );
        self.metrics.subscriber_closed();
    }
}
