//! One topic: its sequence, its live fan-out channel and its history.
//!
//! Publishing takes the topic's lock only to assign the next sequence, encode
//! the frame once, hand it to the history log and send it to the live
//! channel; nothing under the lock waits for a subscriber or the disk.
//! Because sequence assignment, log append and fan-out all happen in one
//! critical section (or, for durable logs, are released in sequence order
//! after the commit), every subscriber sees a topic's events in publish order.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::broadcast;

use crate::secret::Secret;
use crate::sse;
use crate::store::{Commit, Retention, StoreError, StoredEvent, TopicLog, now_ms};

/// An event on its way out: its place in the topic and its frame, shared by
/// every subscriber.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub seq: u64,
    pub frame: Bytes,
}

/// What a topic's live channel carries. Heartbeats and the shutdown notice
/// travel the same channel as events, so a subscriber stream waits on one
/// thing only: no per-event polling of shared timers or tokens, and the
/// shutdown notice arrives after every event queued before it.
#[derive(Debug, Clone)]
pub enum Signal {
    Event(Delivery),
    /// Time for a keep-alive comment.
    Heartbeat,
    /// The server is stopping: end the stream.
    Shutdown,
}

/// An event that has passed validation and can go on the wire as it is.
#[derive(Debug, Clone)]
pub struct NewEvent {
    id: Option<String>,
    kind: Option<String>,
    data: String,
}

/// Which field of an event is unfit for the wire, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("event.{field} {reason}")]
pub struct InvalidEvent {
    pub field: &'static str,
    pub reason: sse::FieldError,
}

impl NewEvent {
    /// `id` and `kind` (the SSE `event:` field) must be single-line; `data`
    /// may span lines.
    pub fn new(
        id: Option<String>,
        kind: Option<String>,
        data: String,
    ) -> Result<Self, InvalidEvent> {
        for (field, value) in [("id", &id), ("type", &kind)] {
            if let Some(value) = value {
                sse::check_field(value).map_err(|reason| InvalidEvent { field, reason })?;
            }
        }
        // Events with these ids could never be resumed after: `earliest`
        // means something else, and HTTP strips a header value's edge
        // whitespace on the way back.
        if let Some(id) = id.as_deref() {
            let reason = if id == super::Resume::EARLIEST {
                Some(sse::FieldError::Reserved)
            } else if id.starts_with([' ', '\t']) || id.ends_with([' ', '\t']) {
                Some(sse::FieldError::EdgeWhitespace)
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(InvalidEvent {
                    field: "id",
                    reason,
                });
            }
        }
        Ok(NewEvent { id, kind, data })
    }

    /// The id subscribers will see (the publisher's, or `seq` when it gave
    /// none) and the SSE frame that carries the event, encoded once.
    pub fn encode(&self, seq: u64) -> (Arc<str>, Bytes) {
        let id: Arc<str> = match &self.id {
            Some(id) => Arc::from(id.as_str()),
            None => Arc::from(seq.to_string()),
        };
        let frame = sse::encode_event(&id, self.kind.as_deref(), &self.data);
        (id, frame)
    }
}

/// What a publisher learns: the id subscribers see, and its sequence.
#[derive(Debug, Clone)]
pub struct Published {
    pub id: Arc<str>,
    pub seq: u64,
}

pub struct Topic {
    pub id: Arc<str>,
    token: Secret,
    pub name: Option<String>,
    pub persist: bool,
    pub is_static: bool,
    pub created_at_ms: u64,
    pub retention: Retention,
    pub(crate) log: Arc<dyn TopicLog>,
    state: Mutex<TopicState>,
    buffer: usize,
    subscribers: AtomicUsize,
    published: AtomicU64,
    last_publish_ms: AtomicU64,
}

struct TopicState {
    next_seq: u64,
    closed: bool,
    /// Set once the server is stopping: no new subscribers.
    stopping: bool,
    /// Created when the first subscriber arrives and dropped when a send
    /// finds nobody listening, so idle topics cost no buffer memory.
    live: Option<broadcast::Sender<Signal>>,
    /// Events appended to a durable log whose commit is still in flight,
    /// in sequence order; released to `live` once committed.
    pending: VecDeque<Delivery>,
}

impl TopicState {
    fn send(&mut self, signal: Signal) {
        if let Some(live) = &self.live
            && live.send(signal).is_err()
        {
            self.live = None;
        }
    }

    fn fan_out(&mut self, delivery: Delivery) {
        self.send(Signal::Event(delivery));
    }
}

/// Where a new subscriber's live stream starts, taken atomically with its
/// receiver so nothing published in between is missed.
pub(crate) struct LiveStart {
    pub rx: broadcast::Receiver<Signal>,
    /// Every event after this sequence will arrive on `rx`.
    pub after: u64,
}

/// Why a subscriber could not join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinRefused {
    Closed,
    Stopping,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("topic is closed")]
    Closed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) struct TopicInit {
    pub id: String,
    pub token: Secret,
    pub name: Option<String>,
    pub persist: bool,
    pub is_static: bool,
    pub created_at_ms: u64,
    pub retention: Retention,
    pub log: Arc<dyn TopicLog>,
    pub next_seq: u64,
    pub buffer: usize,
}

impl Topic {
    pub(crate) fn new(init: TopicInit) -> Arc<Self> {
        Arc::new(Topic {
            id: Arc::from(init.id),
            token: init.token,
            name: init.name,
            persist: init.persist,
            is_static: init.is_static,
            created_at_ms: init.created_at_ms,
            retention: init.retention,
            log: init.log,
            state: Mutex::new(TopicState {
                next_seq: init.next_seq,
                closed: false,
                stopping: false,
                live: None,
                pending: VecDeque::new(),
            }),
            buffer: init.buffer,
            subscribers: AtomicUsize::new(0),
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

    pub fn subscriber_count(&self) -> usize {
        self.subscribers.load(Ordering::Relaxed)
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
        self.log.usage()
    }

    pub(crate) fn add_subscriber(&self) {
        self.subscribers.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn remove_subscriber(&self) {
        self.subscribers.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) async fn publish(&self, event: NewEvent) -> Result<Published, PublishError> {
        let (published, commit) = {
            let mut state = self.state.lock();
            if state.closed {
                return Err(PublishError::Closed);
            }
            let seq = state.next_seq;
            state.next_seq += 1;
            let (id, frame) = event.encode(seq);
            let commit = self.log.append(StoredEvent {
                seq,
                id: id.clone(),
                frame: frame.clone(),
                published_at_ms: now_ms(),
            });
            let delivery = Delivery { seq, frame };
            let commit = match commit {
                Commit::Done => {
                    state.fan_out(delivery);
                    None
                }
                Commit::Pending(commit) => {
                    state.pending.push_back(delivery);
                    Some(commit)
                }
            };
            (Published { id, seq }, commit)
        };

        if let Some(commit) = commit {
            let result = commit.await;
            let mut state = self.state.lock();
            match result {
                // Commits complete in append order, so everything up to this
                // sequence is durable and can go out, in order.
                Ok(()) => {
                    while state
                        .pending
                        .front()
                        .is_some_and(|d| d.seq <= published.seq)
                    {
                        if let Some(delivery) = state.pending.pop_front() {
                            state.fan_out(delivery);
                        }
                    }
                }
                Err(e) => {
                    state.pending.retain(|d| d.seq != published.seq);
                    return Err(e.into());
                }
            }
        }

        self.published.fetch_add(1, Ordering::Relaxed);
        self.last_publish_ms.store(now_ms(), Ordering::Relaxed);
        Ok(published)
    }

    /// Joins the live stream, unless the topic is closed or the server is
    /// stopping.
    pub(crate) fn join(&self) -> Result<LiveStart, JoinRefused> {
        let mut state = self.state.lock();
        if state.closed {
            return Err(JoinRefused::Closed);
        }
        if state.stopping {
            return Err(JoinRefused::Stopping);
        }
        let buffer = self.buffer;
        let rx = state
            .live
            .get_or_insert_with(|| broadcast::channel(buffer).0)
            .subscribe();
        let first_unsent = state.pending.front().map_or(state.next_seq, |d| d.seq);
        Ok(LiveStart {
            rx,
            after: first_unsent.saturating_sub(1),
        })
    }

    /// Asks every subscriber to write a keep-alive comment.
    pub(crate) fn heartbeat(&self) {
        self.state.lock().send(Signal::Heartbeat);
    }

    /// The server is stopping: subscribers get what is queued, then the
    /// shutdown notice; nobody new may join.
    pub(crate) fn stop(&self) {
        let mut state = self.state.lock();
        state.stopping = true;
        state.send(Signal::Shutdown);
    }

    /// Moves the sequence forward to at least `at_least`.
    pub(crate) fn bump_sequence(&self, at_least: u64) {
        let mut state = self.state.lock();
        state.next_seq = state.next_seq.max(at_least);
    }

    /// Ends the topic: subscribers drain what they have, then see the close.
    pub(crate) fn close(&self) {
        let mut state = self.state.lock();
        state.closed = true;
        state.live = None;
        state.pending.clear();
    }
}
