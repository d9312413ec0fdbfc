//! A connection's HTTP body: replay from history where asked, then whatever
//! its streams and its queue bring (events, heartbeats, closes, shutdown:
//! `super::intake`), until a stream
//! ends it, the server stops or the client goes away. This file opens the
//! connection and decides what each event, replay batch and close becomes
//! on it ([`Feed`]); `super::feed_stream` is the body that drives it.
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

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use tokio::time::{Interval, Sleep};

use super::admission::Refusal;
use super::connection::{Connection, Owner};
use super::connections::Registration;
use super::farewell::Farewell;
use super::followed::{Followed, Streams};
use super::framing::{Frames, Framing, Heartbeat, Naming};
use super::notice;
use super::resume::{self, Ask, Replay};
use super::{Hub, HubError};
use crate::broker::{Broker, BrokerError, Delivery, HistoryBatch, Item, Outbox};
use crate::metrics::Metrics;
use crate::model::cursor::StreamSet;
use crate::model::{Position, StreamKey};
use crate::sse;

/// Events read from history per batch during replay.
const REPLAY_BATCH: usize = 512;

/// A connection, opened and following its streams, before it becomes an
/// HTTP body. `truncated` tells the HTTP layer to set its header.
pub struct Subscription {
    /// Sent as `X-Connection-Id`; the registry's key.
    pub conn_id: Arc<str>,
    /// A requested `Last-Event-ID` was not (wholly) in history: the stream
    /// starts with `sser.history_truncated` and everything history holds.
    pub truncated: bool,
    /// Becomes the response body ([`Subscription::into_stream`], beside
    /// the body it builds in `feed_stream`).
    pub(super) feed: Feed,
}

/// What a connection's body reads and writes per event comes first, in
/// this order (`repr(C)`): the queue, the two rare timers' pointers, the
/// streams' cursors and the framing, then what only opening, replay and
/// closing need, so a live event touches as few lines of it as it can.
#[repr(C)]
pub(super) struct Feed {
    /// The connection's queue (also reachable through `life.conn`; held
    /// here so that reading an event touches no other per-connection
    /// object).
    pub(super) outbox: Arc<Outbox>,
    /// Ends the connection when its token expires. Boxed, like the next
    /// one: most connections have neither, and each costs them a pointer.
    pub(super) expiry: Option<Pin<Box<Sleep>>>,
    /// Its own heartbeat, replacing the hub's comment, when it has one.
    pub(super) own_heartbeat: Option<Box<OwnHeartbeat>>,
    /// Per stream, in the connection's order (`conn.streams()`).
    pub(super) streams: Streams,
    /// Items pulled from the streams and not handed out yet (see
    /// `super::intake`).
    pub(super) pulled: VecDeque<(u64, Item)>,
    pub(super) framing: Framing,
    /// Unregisters the connection and counts it closed when dropped.
    pub(super) life: Life,
    broker: Arc<dyn Broker>,
    pub(super) retry_ms: u64,
}

/// A connection's own keep-alive: `frame` at each tick of `every`.
pub(super) struct OwnHeartbeat {
    pub(super) every: Interval,
    pub(super) frame: Bytes,
}

impl OwnHeartbeat {
    fn start(heartbeat: Heartbeat) -> OwnHeartbeat {
        let first = tokio::time::Instant::now() + heartbeat.every;
        let mut every = tokio::time::interval_at(first, heartbeat.every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        OwnHeartbeat {
            every,
            frame: heartbeat.frame,
        }
    }
}

/// One replay step.
pub(super) enum Step {
    /// Frames to write, and whether the stream's replay is done.
    Frames(Vec<Bytes>, bool),
    /// The connection's last frame.
    End(Bytes),
}

/// What a connection waits for from its broker while it catches up: a
/// future that owns what it needs, so the body that polls it stays free to
/// change its own state meanwhile. Only opening and replay wait on one.
pub(super) type Fetch = Pin<Box<dyn Future<Output = Fetched> + Send>>;

/// What a [`Fetch`] brings back.
pub(super) enum Fetched {
    /// The oldest position history holds, for a truncation notice.
    Oldest(Option<Position>),
    /// A batch of history, and the oldest position when the batch starts
    /// with a hole that must be reported.
    Batch(Result<HistoryBatch, BrokerError>, Option<Position>),
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
    /// How its events are named, when its ids are cursors.
    pub naming: Naming,
    /// Its own heartbeat, instead of the hub's comment.
    pub heartbeat: Option<Heartbeat>,
    /// Its last words in its profile's spelling; `None`: natively.
    pub farewell: Option<Arc<dyn Farewell>>,
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
        naming,
        heartbeat,
        farewell,
    } = opening;
    let outbox = Arc::new(Outbox::new(hub.settings.subscriber_buffer));
    let keys: Box<[StreamKey]> = keys.into_boxed_slice();
    let conn_id: Arc<str> = Arc::from(crate::secret::new_id());
    let resumed_from = match &ask {
        Ask::Cursor(last_event_id) => last_event_id.as_deref(),
        Ask::One(_) => None,
    };
    let conn = Arc::new(Connection::new(
        conn_id.clone(),
        outbox.clone(),
        keys.clone(),
        owner,
        remote,
        farewell,
        resumed_from,
    ));
    // In a cluster: the device is claimed (and blocks checked) on every
    // node first, never under the registry's lock.
    let claim = hub.claim(&conn).await?;
    let held_elsewhere = hub.held_elsewhere(&claim);
    let registration = match hub.connections.register(conn.clone(), held_elsewhere) {
        Ok(registration) => registration,
        Err(refusal) => {
            hub.release(&conn, &claim).await;
            return Err(match refusal {
                Refusal::Stopping => HubError::Stopping,
                refusal => HubError::Refused(refusal),
            });
        }
    };
    hub.take_over_remote(&conn, claim).await;
    let life = Life {
        registration,
        conn,
        metrics: hub.metrics.clone(),
        counted: false,
    };

    let mut streams = Vec::with_capacity(keys.len());
    for (slot, key) in keys.iter().enumerate() {
        let follow = hub.follow(key, &outbox, slot as u32).await?;
        streams.push(Followed {
            cursor: follow.head,
            ticket: Some(follow.ticket),
            start: None,
            truncated: false,
        });
    }

    let framing = match (&ask, naming) {
        (Ask::One(_), _) => Framing::Shared,
        (Ask::Cursor(_), Naming::ByStream) => Framing::Labelled {
            set: StreamSet::of(&keys),
        },
        (Ask::Cursor(_), Naming::AsPublished) => Framing::Unlabelled {
            set: StreamSet::of(&keys),
        },
    };
    let mut feed = Feed {
        broker: hub.broker.clone(),
        outbox,
        retry_ms: hub.settings.retry.as_millis() as u64,
        framing,
        streams: Streams::from(streams),
        pulled: VecDeque::new(),
        expiry: expires_at.map(|at| Box::pin(tokio::time::sleep_until(deadline_of(at)))),
        own_heartbeat: heartbeat.map(|h| Box::new(OwnHeartbeat::start(h))),
        life,
    };
    let heads: Vec<Position> = feed.streams.iter().map(|s| s.cursor).collect();
    let starts = resume::plan(&*hub.broker, &keys, &heads, feed.framing.set(), ask).await?;
    for (stream, start) in feed.streams.iter_mut().zip(starts) {
        stream.cursor = start.cursor;
        stream.start = start.replay;
        stream.truncated = start.truncated;
    }
    feed.life.counted = true;
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
    /// The key of stream `slot`.
    fn key(&self, slot: usize) -> &StreamKey {
        &self.life.conn.streams()[slot]
    }

    /// The stream to name in notices about stream `slot`, on connections
    /// whose events name their stream.
    fn named(&self, slot: usize) -> Option<&StreamKey> {
        self.framing.labelled().then(|| self.key(slot))
    }

    /// `delivery` from stream `slot` as this connection writes it, unless it
    /// was sent already (or its stream closed). A labelled connection's id
    /// is recorded here; the caller records a one-topic stream's event
    /// ([`Outbox::record_sent`]), since it may hand over its reference.
    pub(super) fn deliver(&mut self, slot: usize, delivery: &Delivery) -> Option<Frames> {
        let stream = self.streams.get_mut(slot)?;
        if stream.ticket.is_none() || delivery.position <= stream.cursor {
            return None;
        }
        stream.cursor = delivery.position;
        let frames = match &self.framing {
            // The hot path of a one-topic stream: the shared frame as it is.
            Framing::Shared => Frames::One(delivery.frame.clone()),
            Framing::Labelled { .. } | Framing::Unlabelled { .. } => {
                let cursors = self.streams.iter().map(|s| s.cursor);
                let key = &self.life.conn.streams()[slot];
                let frames = self.framing.event(key, &delivery.frame, cursors);
                if let Some(id) = sse::id_of(frames.first()) {
                    self.life.conn.record_sent_id(id);
                }
                frames
            }
        };
        self.life.metrics.event_sent(frames.len());
        Some(frames)
    }

    /// Reads the next batch of history for stream `slot` (and, when the
    /// batch starts with a hole that `mode` reports, the oldest position).
    pub(super) fn fetch_batch(&self, slot: usize, mode: Replay) -> Fetch {
        let broker = self.broker.clone();
        let key = self.key(slot).clone();
        let after = self.streams[slot].cursor;
        Box::pin(async move {
            let batch = broker.read_after(&key, after, REPLAY_BATCH).await;
            let oldest = match (&batch, mode) {
                (Ok(b), Replay::Exact | Replay::Repair) if b.missing => broker.oldest(&key).await,
                _ => None,
            };
            Fetched::Batch(batch, oldest)
        })
    }

    /// Looks up the oldest position of stream `slot`, for its truncation
    /// notice.
    pub(super) fn fetch_oldest(&self, slot: usize) -> Fetch {
        let broker = self.broker.clone();
        let key = self.key(slot).clone();
        Box::pin(async move { Fetched::Oldest(broker.oldest(&key).await) })
    }

    /// What a batch fetched by [`Feed::fetch_batch`] for stream `slot`
    /// becomes.
    pub(super) fn replay_step(
        &mut self,
        slot: usize,
        mode: &mut Replay,
        batch: Result<HistoryBatch, BrokerError>,
        oldest: Option<Position>,
    ) -> Step {
        let batch = match batch {
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
                    frames.push(self.truncated_notice(slot, notice::GAP, oldest));
                    *mode = Replay::Everything;
                }
                Replay::Repair => {
                    frames.push(self.truncated_notice(slot, notice::LOST, oldest));
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
        let mut last = None;
        for delivery in &batch.events {
            match self.deliver(slot, delivery) {
                Some(Frames::One(a)) => {
                    frames.push(a);
                    last = Some(delivery);
                }
                Some(Frames::Two(a, b)) => frames.extend([a, b]),
                None => {}
            }
        }
        if let Some(last) = last {
            self.outbox.record_sent(Arc::new(last.clone()));
        }
        Step::Frames(frames, done)
    }

    /// Stream `slot` was deleted: what to send, and whether the connection
    /// ends with it.
    pub(super) fn closed(&mut self, slot: usize) -> (Bytes, bool) {
        if let Some(stream) = self.streams.get_mut(slot) {
            stream.ticket = None;
        }
        match self.named(slot) {
            // SSER's last message when its one topic is deleted.
            None => (sse::closed_frame(), true),
            Some(key) => {
                let open = self.streams.iter().any(|s| s.ticket.is_some());
                (notice::closed(key), !open)
            }
        }
    }

    pub(super) fn truncated_notice(
        &self,
        slot: usize,
        message: &str,
        oldest: Option<Position>,
    ) -> Bytes {
        notice::truncated(self.named(slot), message, oldest)
    }

    fn lagged_notice(&self, slot: usize, why: &str) -> Bytes {
        let cursor = self.streams[slot].cursor;
        let key = self.key(slot);
        tracing::warn!(
            stream = %key,
            conn = %self.life.conn.id(),
            cursor = %cursor,
            why,
            "subscriber disconnected: fell behind"
        );
        notice::lagged(self.named(slot), cursor, why)
    }
}

/// Dropped with the body, however it ends (including the client vanishing
/// mid-write): the connection leaves the registry (its follows leave their
/// streams with the feed) and the counters never leak.
pub(super) struct Life {
    pub(super) registration: Registration,
    pub(super) conn: Arc<Connection>,
    pub(super) metrics: Arc<Metrics>,
    /// Counted as opened (it got as far as a body).
    counted: bool,
}

impl Drop for Life {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        let streams = self.conn.streams();
        tracing::debug!(
            topic = %streams.first().and_then(StreamKey::topic).map_or("", |t| t.as_str()),
            topics = streams.len(),
            conn = %self.conn.id(),
            // From the connection's own clock: one instant fewer per body.
            duration_ms = crate::model::now_ms().saturating_sub(self.conn.opened_at_ms()),
            "subscriber disconnected"
        );
        self.metrics.subscriber_closed();
    }
}
