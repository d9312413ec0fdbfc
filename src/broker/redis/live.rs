//! One stream's live side on this node (a topic's, an identity inbox's or
//! the presence feed's): the connections here that follow it, and how far
//! they have been sent.
//!
//! Events reach a node by three paths: the publish it made itself, the
//! stream's pub/sub channel, and reads of the Redis Stream that repair gaps
//! (after subscribing, after a reconnect, on a position jump). All three
//! hand events to [`LiveStream::deliver`], which hands an event to the
//! followers only if it comes right after the last one sent (or, for reads
//! of the stream, anywhere after it), so followers see every event once,
//! in the order Redis assigned, whichever path was first. On a topic,
//! whose positions are dense, a read of the stream that jumps past the next
//! sequence (Redis trimmed events while this node was cut off, or lost its
//! data and the new epoch starts higher) tells the followers first
//! ([`Followers::gap`]), so they get a truncation notice, never a silent
//! jump. (An inbox's positions jump when it starts a new life after its
//! counter expired: nothing was lost, so nothing is said.)

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use parking_lot::Mutex;

use super::entry;
use super::keys::StreamNames;
use crate::broker::{Delivery, Followers, NewEvent, Published};
use crate::model::{Position, StreamKey};
use crate::store::TopicRecord;

pub(super) struct LiveStream {
    pub(super) key: StreamKey,
    /// Its stream, counter and channel in Redis.
    pub(super) names: StreamNames,
    /// The `MAXLEN ~` of its Redis Stream.
    pub(super) cap: u64,
    /// Entries older than this are dropped (inboxes; `None` for topics).
    pub(super) max_age: Option<Duration>,
    /// Whether its record is in the registry (created through the API) or
    /// each node defines it (configured, opened on demand).
    pub(super) registered: bool,
    /// Its registry record, to write back if Redis loses its data
    /// ([`super::epoch`]); `None` when not registered.
    pub(super) record: Option<TopicRecord>,
    pub(super) followers: Arc<Followers>,
    /// This node listens on the topic's channel (set before subscribing,
    /// under the listener's lock, so a reconnect resubscribes it).
    pub(super) wanted: AtomicBool,
    state: Mutex<State>,
    /// Serialises the first follow's subscribe-and-sync.
    pub(super) subscribing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    /// The newest sequence queued for followers; `None` until this node
    /// subscribed to the topic's channel and learnt where it stands.
    sent: Option<u64>,
    closed: bool,
}

/// What became of a follower's attempt to join.
pub(super) enum Join {
    Joined(crate::broker::FollowTicket, u64),
    /// The node stopped listening meanwhile: subscribe again.
    NotListening,
    Closed,
}

/// What became of an event handed to [`LiveStream::deliver`].
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Queued (or, when rejected, passed over) in order.
    Done,
    /// Not needed: sent already, not subscribed, or closed.
    Skipped,
    /// Events between the last one sent and this one are missing: read
    /// them from the stream (after `sent`) first.
    Gap { sent: u64 },
}

impl LiveStream {
    pub(super) fn new(
        key: StreamKey,
        names: StreamNames,
        cap: u64,
        max_age: Option<Duration>,
        record: Option<TopicRecord>,
    ) -> Arc<LiveStream> {
        Arc::new(LiveStream {
            key,
            names,
            cap,
            max_age,
            registered: record.is_some(),
            record,
            followers: Followers::new(),
            wanted: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            subscribing: tokio::sync::Mutex::new(()),
        })
    }

    /// The last sequence sent, once subscribed.
    pub(super) fn sent(&self) -> Option<u64> {
        self.state.lock().sent
    }

    /// Subscribed now, with `head` the newest sequence in Redis: everything
    /// after it is sent from here on. Keeps a position already reached.
    pub(super) fn synced(&self, head: u64) -> u64 {
        let mut state = self.state.lock();
        *state.sent.get_or_insert(head)
    }

    /// Adds a follower under the state lock, so no event is queued between
    /// reading the head and joining.
    pub(super) fn join(&self, outbox: Arc<crate::broker::Outbox>, slot: u32) -> Join {
        let state = self.state.lock();
        if state.closed {
            return Join::Closed;
        }
        let Some(head) = state.sent else {
            return Join::NotListening;
        };
        match self.followers.add(outbox, slot) {
            Some(ticket) => Join::Joined(ticket, head),
            None => Join::Closed,
        }
    }

    /// Stops listening if nobody follows (checked under the state lock, so
    /// no follower joins meanwhile); whether it did.
    pub(super) fn stop_listening(&self) -> bool {
        let mut state = self.state.lock();
        if !self.followers.is_empty() || state.sent.is_none() {
            return false;
        }
        state.sent = None;
        self.wanted
            .store(false, std::sync::atomic::Ordering::Relaxed);
        true
    }

    /// Queues `delivery` (sequence `seq`, `None` when it was rejected) for
    /// every follower if it is next. `from_history`: it comes from reading
    /// the stream in order, so a jump means retention dropped what was in
    /// between, and it goes out anyway.
    pub(super) fn deliver(
        &self,
        seq: u64,
        delivery: Option<&Arc<Delivery>>,
        from_history: bool,
    ) -> Outcome {
        let mut state = self.state.lock();
        let Some(sent) = state.sent.filter(|_| !state.closed) else {
            return Outcome::Skipped;
        };
        if seq <= sent {
            return Outcome::Skipped;
        }
        if seq != sent + 1 {
            if !from_history {
                return Outcome::Gap { sent };
            }
            if self.key.topic().is_some() {
                self.followers.gap();
            }
        }
        if let Some(delivery) = delivery {
            self.followers.fan_out(delivery);
        }
        state.sent = Some(seq);
        Outcome::Done
    }

    /// `event` was just appended in Redis at `seq`: this node's followers
    /// get it at once when it is next (otherwise the listener brings it in
    /// order); returns what its publisher is told.
    pub(super) fn appended(&self, seq: u64, event: &NewEvent) -> Published {
        let delivery = Arc::new(entry::delivery(seq, event));
        self.deliver(seq, Some(&delivery), false);
        let (id, _) = event.encode(&seq.to_string());
        Published {
            id,
            position: Position::from_seq(seq),
        }
    }

    /// Closes it if nobody here follows it and this node no longer listens
    /// (an idle inbox: all it holds is in Redis); whether it did. Checked
    /// under the state lock, so no follower joins meanwhile.
    pub(super) fn close_if_idle(&self) -> bool {
        let mut state = self.state.lock();
        if !self.followers.is_empty() || state.sent.is_some() {
            return false;
        }
        state.closed = true;
        true
    }

    pub(super) fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// A topic's history holds nothing after `sent` although its counter
    /// says `last` was assigned: the events in between were trimmed (or
    /// lost with Redis' data). Followers are told and the next event goes
    /// out after `last`. Inboxes are left alone (see the module doc).
    pub(super) fn trimmed_up_to(&self, last: u64) {
        if self.key.topic().is_none() {
            return;
        }
        let mut state = self.state.lock();
        if state.closed {
            return;
        }
        if let Some(sent) = state.sent.filter(|&sent| sent < last) {
            tracing::debug!(stream = %self.key, sent, last, "events trimmed before this node read them");
            self.followers.gap();
            state.sent = Some(last);
        }
    }

    /// The topic is gone: its followers are told; nothing more is sent.
    pub(super) fn close(&self) {
        self.state.lock().closed = true;
        self.followers.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Outbox;
    use crate::broker::followers::tests::read_all;
    use crate::model::Position;

    fn event(seq: u64) -> Arc<Delivery> {
        Arc::new(Delivery {
            position: Position::from_seq(seq),
            frame: bytes::Bytes::new(),
        })
    }

    #[test]
    fn in_order_once_with_gaps_reported() {
        let key = StreamKey::Topic(crate::model::TopicId::parse("t").unwrap());
        let names = super::super::keys::Keys::new("p:").names(&key);
        let live = LiveStream::new(key, names, 10, None, None);
        assert_eq!(live.deliver(1, Some(&event(1)), false), Outcome::Skipped);
        assert_eq!(live.synced(4), 4);
        let outbox = Arc::new(Outbox::new(16));
        let Join::Joined(ticket, head) = live.join(outbox.clone(), 0) else {
            panic!("not joined")
        };
        assert_eq!(head, 4);
        assert!(!live.stop_listening(), "it has a follower");
        assert_eq!(live.deliver(4, Some(&event(4)), false), Outcome::Skipped);
        assert_eq!(live.deliver(5, Some(&event(5)), false), Outcome::Done);
        assert_eq!(
            live.deliver(7, Some(&event(7)), false),
            Outcome::Gap { sent: 5 }
        );
        assert_eq!(live.deliver(6, None, true), Outcome::Done);
        assert_eq!(live.deliver(7, Some(&event(7)), false), Outcome::Done);
        assert_eq!(live.synced(2), 7, "a reached position is kept");
        drop(ticket);
        assert!(live.stop_listening());
        assert!(matches!(live.join(outbox, 0), Join::NotListening));
        assert_eq!(live.deliver(8, Some(&event(8)), false), Outcome::Skipped);
        live.synced(8);
        assert!(!live.close_if_idle(), "it listens");
        live.close();
        assert_eq!(live.deliver(9, Some(&event(9)), false), Outcome::Skipped);
    }

    #[test]
    fn only_an_idle_stream_closes_and_then_nobody_joins() {
        let key = StreamKey::user("shop", "u1");
        let names = super::super::keys::Keys::new("p:").names(&key);
        let live = LiveStream::new(key, names, 10, None, None);
        live.synced(3);
        let outbox = Arc::new(Outbox::new(16));
        let Join::Joined(ticket, _) = live.join(outbox.clone(), 0) else {
            panic!("not joined")
        };
        assert!(!live.close_if_idle(), "it has a follower");
        drop(ticket);
        assert!(!live.close_if_idle(), "it still listens");
        assert!(live.stop_listening());
        assert!(live.close_if_idle());
        assert!(live.is_closed());
        assert!(matches!(live.join(outbox, 0), Join::Closed));
    }

    #[test]
    fn a_jump_in_a_topics_history_or_a_trimmed_tail_marks_a_gap_first() {
        let key = StreamKey::Topic(crate::model::TopicId::parse("t").unwrap());
        let names = super::super::keys::Keys::new("p:").names(&key);
        let live = LiveStream::new(key, names, 10, None, None);
        live.synced(1);
        let outbox = Arc::new(Outbox::new(16));
        let Join::Joined(mut ticket, _) = live.join(outbox.clone(), 0) else {
            panic!("not joined")
        };
        assert_eq!(live.deliver(2, Some(&event(2)), true), Outcome::Done);
        assert_eq!(live.deliver(6, Some(&event(6)), true), Outcome::Done);
        live.trimmed_up_to(4);
        assert_eq!(live.sent(), Some(6), "never backwards");
        live.trimmed_up_to(9);
        assert_eq!(live.deliver(10, Some(&event(10)), false), Outcome::Done);
        assert_eq!(
            read_all(&outbox, &mut [&mut ticket]),
            ["2", "Gap", "6", "10"],
            "one mark until it is read"
        );
    }

    #[test]
    fn an_inbox_starting_a_new_life_jumps_silently() {
        let key = StreamKey::user("shop", "u1");
        let names = super::super::keys::Keys::new("p:").names(&key);
        let live = LiveStream::new(key, names, 10, None, None);
        live.synced(5);
        let outbox = Arc::new(Outbox::new(16));
        let Join::Joined(mut ticket, _) = live.join(outbox.clone(), 0) else {
            panic!("not joined")
        };
        assert_eq!(live.deliver(9000, Some(&event(9000)), true), Outcome::Done);
        live.trimmed_up_to(9500);
        assert_eq!(read_all(&outbox, &mut [&mut ticket]), ["9000"]);
    }
}
