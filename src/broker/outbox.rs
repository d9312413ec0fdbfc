//! A connection's outgoing queue: the one place events wait between a
//! publish and the connection's HTTP body.
//!
//! Brokers push events into it while they hold the stream's publish lock, so
//! a push never waits: the queue is bounded (`pubsub.subscriberBuffer`
//! events) and, when it is full, the event is not queued and a
//! [`Item::Lagged`] marker is queued instead. From then on the connection's
//! events are not queued until the reader takes the marker: everything
//! before it arrives in order, and the reader then catches up from history
//! (the hub's slow-consumer policy). Nothing is dropped silently.
//!
//! Heartbeats, a stream's close, the server's shutdown and the end of the
//! connection are queued too, behind the events before them, so the reader
//! waits on this queue alone. They do not count against the bound, and there
//! is at most one of each (one close per stream), so the queue stays bounded.
//!
//! An idle connection's queue allocates nothing: the ring is created by the
//! first push and given back when a burst has drained.
//!
//! The fan-out path touches as little memory per follower as it can, since
//! a publish to 10,000 connections walks 10,000 of these: everything a
//! publisher or the reader touches per event sits in one cache line (the
//! lock, the bound, the waker, the oldest item inline, since a connection
//! that keeps up never has more than one queued, and the last event
//! written). The waker is handed back to the caller to be woken once every
//! follower has its item (see `super::followers`).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use parking_lot::Mutex;

use super::Delivery;

/// What a reader takes from its queue, in the order it was queued.
#[derive(Debug)]
pub enum Item {
    /// An event of the stream the connection follows in `slot` (one
    /// allocation per event, shared by every queue it is in).
    Event { slot: u32, delivery: Arc<Delivery> },
    /// The queue was full and events were left out from here on: catch up
    /// from history before reading on.
    Lagged,
    /// History lost events after those queued before this (a cluster node
    /// learnt that Redis trimmed them while it was cut off): repair from
    /// history, with a truncation notice, before reading on.
    Gap,
    /// Time for a keep-alive comment.
    Heartbeat,
    /// The stream in `slot` was deleted; nothing more comes from it.
    Closed { slot: u32 },
    /// The server is stopping: end the connection.
    Shutdown,
    /// The connection was ended (by an operator, the registry, its token's
    /// expiry, …): send this last frame, when there is one, then end.
    /// Boxed, so that every item stays two words.
    End(Option<Box<Bytes>>),
}

/// Rings larger than this are given back once drained, so a burst does not
/// leave its memory with an idle connection.
const KEEP_CAPACITY: usize = 64;

/// One cache line: the lock, the bound and flags, the reader's waker, the
/// oldest item and the last event written are all a publisher or the reader
/// touches per event (a unit test holds it to 64 bytes).
#[repr(align(64))]
pub struct Outbox {
    state: Mutex<State>,
}

struct State {
    /// The oldest item queued, inline; `None` when the queue is empty.
    front: Option<Item>,
    /// The items behind `front`, oldest first; allocated when more than one
    /// item waits.
    #[expect(
        clippy::box_collection,
        reason = "one word instead of four keeps the state in its cache line"
    )]
    rest: Option<Box<VecDeque<Item>>>,
    waker: Option<Waker>,
    /// The last event the reader wrote as it was encoded (a one-topic
    /// stream's), kept for the registry's listing: the reader hands over the
    /// reference it holds anyway, so recording costs no shared counter.
    last: Option<Arc<Delivery>>,
    /// `Item::Event`s queued (the bound applies to these only).
    events: u32,
    bound: Bound,
}

/// The most events queued, and three flags, in one word (so that the state
/// fits its cache line).
#[derive(Clone, Copy)]
struct Bound(u32);

impl Bound {
    /// A `Lagged` marker is queued: events are left out until it is taken.
    const LAGGED: u32 = 1 << 31;
    /// A heartbeat is queued and not yet taken.
    const HEARTBEAT: u32 = 1 << 30;
    /// `Shutdown` or `End` is queued: nothing after it would be read.
    const FINISHED: u32 = 1 << 29;
    /// A `Gap` marker is queued and not yet taken.
    const GAP: u32 = 1 << 28;
    const CAPACITY: u32 = Self::GAP - 1;

    fn capacity(self) -> u32 {
        self.0 & Self::CAPACITY
    }

    fn has(self, flag: u32) -> bool {
        self.0 & flag != 0
    }

    fn set(&mut self, flag: u32, on: bool) {
        if on {
            self.0 |= flag;
        } else {
            self.0 &= !flag;
        }
    }
}

impl Outbox {
    /// A queue holding at most `capacity` events (at least one; the
    /// configuration allows at most 2^20).
    pub fn new(capacity: usize) -> Outbox {
        let capacity = u32::try_from(capacity).map_or(Bound::CAPACITY, |c| c.min(Bound::CAPACITY));
        Outbox {
            state: Mutex::new(State {
                front: None,
                rest: None,
                waker: None,
                last: None,
                events: 0,
                bound: Bound(capacity.max(1)),
            }),
        }
    }

    /// Queues an event, or marks the connection lagged. Never waits.
    ///
    /// Returns the reader's waker when it is waiting: the caller MUST wake
    /// it (after releasing its own locks, once it has queued the event for
    /// every follower). The item is queued before the waker is taken, under
    /// the same lock, so a reader either finds the item or has left its
    /// waker here to be taken: no wakeup is lost, however late it is woken.
    #[must_use = "the reader sleeps until this waker is woken"]
    pub fn push_event(&self, slot: u32, delivery: Arc<Delivery>) -> Option<Waker> {
        let mut s = self.state.lock();
        if s.bound.has(Bound::LAGGED | Bound::FINISHED) {
            return None;
        }
        if s.events >= s.bound.capacity() {
            s.bound.set(Bound::LAGGED, true);
            s.push(Item::Lagged);
        } else {
            s.events += 1;
            s.push(Item::Event { slot, delivery });
        }
        s.waker.take()
    }

    /// Marks a hole in history after what is queued ([`Item::Gap`]), unless
    /// one is queued already or the connection catches up anyway (lagged).
    /// Returns the reader's waker, as [`Outbox::push_event`] does.
    #[must_use = "the reader sleeps until this waker is woken"]
    pub fn push_gap(&self) -> Option<Waker> {
        let mut s = self.state.lock();
        if s.bound.has(Bound::LAGGED | Bound::FINISHED | Bound::GAP) {
            return None;
        }
        s.bound.set(Bound::GAP, true);
        s.push(Item::Gap);
        s.waker.take()
    }

    /// The stream in `slot` is gone.
    pub fn push_closed(&self, slot: u32) {
        self.push_control(Item::Closed { slot });
    }

    /// Asks for a keep-alive comment, unless one is already queued.
    pub fn heartbeat(&self) {
        self.push_control(Item::Heartbeat);
    }

    /// The server is stopping: what is queued is sent, then the notice.
    pub fn shutdown(&self) {
        self.push_control(Item::Shutdown);
    }

    /// Ends the connection after what is queued.
    pub fn end(&self) {
        self.push_control(Item::End(None));
    }

    /// Ends the connection after what is queued, with `farewell` (an SSE
    /// frame saying why: `sser.kicked`, `sser.token_expired`, …) as its last
    /// words. The first end wins; later ones are ignored.
    pub fn end_with(&self, farewell: Bytes) {
        self.push_control(Item::End(Some(Box::new(farewell))));
    }

    fn push_control(&self, item: Item) {
        let waker = {
            let mut s = self.state.lock();
            if s.bound.has(Bound::FINISHED) {
                return;
            }
            match item {
                Item::Heartbeat if s.bound.has(Bound::HEARTBEAT) => return,
                Item::Heartbeat => s.bound.set(Bound::HEARTBEAT, true),
                Item::Shutdown | Item::End(_) => s.bound.set(Bound::FINISHED, true),
                _ => {}
            }
            s.push(item);
            s.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The next item, when there is one.
    pub fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Item> {
        let mut s = self.state.lock();
        match s.pop() {
            Some(item) => {
                match &item {
                    Item::Event { .. } => s.events -= 1,
                    Item::Lagged => s.bound.set(Bound::LAGGED, false),
                    Item::Gap => s.bound.set(Bound::GAP, false),
                    Item::Heartbeat => s.bound.set(Bound::HEARTBEAT, false),
                    _ => {}
                }
                Poll::Ready(item)
            }
            None => {
                if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    s.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    pub async fn next(&self) -> Item {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Remembers `delivery` as the last event the reader wrote (on a
    /// connection that writes events as they were encoded). The one it
    /// replaces is released after the lock.
    pub fn record_sent(&self, delivery: Arc<Delivery>) {
        let previous = self.state.lock().last.replace(delivery);
        drop(previous);
    }

    /// The last event recorded by [`Outbox::record_sent`], if any.
    pub fn last_sent(&self) -> Option<Arc<Delivery>> {
        self.state.lock().last.clone()
    }
}

impl State {
    fn push(&mut self, item: Item) {
        if self.front.is_none() {
            self.front = Some(item);
        } else {
            self.rest.get_or_insert_default().push_back(item);
        }
    }

    fn pop(&mut self) -> Option<Item> {
        let item = self.front.take()?;
        if let Some(rest) = self.rest.as_mut() {
            self.front = rest.pop_front();
            if rest.is_empty() && rest.capacity() > KEEP_CAPACITY {
                self.rest = None;
            }
        }
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Position;

    fn delivery(seq: u64) -> Arc<Delivery> {
        Arc::new(Delivery {
            position: Position::from_seq(seq),
            frame: bytes::Bytes::from_static(b"data: x\n\n"),
        })
    }

    fn push(outbox: &Outbox, slot: u32, seq: u64) {
        if let Some(waker) = outbox.push_event(slot, delivery(seq)) {
            waker.wake();
        }
    }

    fn drain(outbox: &Outbox) -> Vec<String> {
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut out = Vec::new();
        while let Poll::Ready(item) = outbox.poll_next(&mut cx) {
            out.push(match item {
                Item::Event { slot, delivery } => format!("{slot}:{}", delivery.position),
                other => format!("{other:?}"),
            });
        }
        out
    }

    #[test]
    fn a_full_queue_marks_lagged_and_leaves_out_events_until_read() {
        let outbox = Outbox::new(2);
        for seq in 1..=5 {
            push(&outbox, 0, seq);
        }
        outbox.heartbeat();
        outbox.heartbeat();
        outbox.push_closed(1);
        assert_eq!(
            drain(&outbox),
            ["0:1", "0:2", "Lagged", "Heartbeat", "Closed { slot: 1 }"]
        );
        // Once the marker is taken, events are queued again.
        push(&outbox, 0, 6);
        assert_eq!(drain(&outbox), ["0:6"]);
    }

    #[test]
    fn a_gap_is_marked_once_in_order_and_not_when_lagged() {
        let outbox = Outbox::new(2);
        push(&outbox, 0, 1);
        assert!(outbox.push_gap().is_none(), "no reader waits");
        let _ = outbox.push_gap();
        push(&outbox, 0, 9);
        assert_eq!(drain(&outbox), ["0:1", "Gap", "0:9"]);
        for seq in 10..=13 {
            push(&outbox, 0, seq);
        }
        let _ = outbox.push_gap();
        assert_eq!(drain(&outbox), ["0:10", "0:11", "Lagged"]);
    }

    #[test]
    fn shutdown_comes_after_what_is_queued_and_ends_the_queue() {
        let outbox = Outbox::new(8);
        push(&outbox, 3, 1);
        outbox.shutdown();
        push(&outbox, 3, 2);
        outbox.end();
        assert_eq!(drain(&outbox), ["3:1", "Shutdown"]);
    }

    #[test]
    fn the_state_fits_one_cache_line() {
        assert_eq!(std::mem::size_of::<Outbox>(), 64);
        assert_eq!(std::mem::align_of::<Outbox>(), 64);
    }

    #[test]
    fn the_bound_and_flags_share_a_word() {
        let outbox = Outbox::new(usize::MAX);
        assert_eq!(outbox.state.lock().bound.capacity(), Bound::CAPACITY);
        let outbox = Outbox::new(0);
        push(&outbox, 0, 1);
        push(&outbox, 0, 2);
        outbox.heartbeat();
        outbox.heartbeat();
        outbox.shutdown();
        outbox.end();
        assert_eq!(drain(&outbox), ["0:1", "Lagged", "Heartbeat", "Shutdown"]);
    }

    #[test]
    fn a_queued_event_costs_sixteen_bytes() {
        // What a lagging connection holds per event, times subscriberBuffer.
        assert!(std::mem::size_of::<Item>() <= 16);
    }

    #[test]
    fn a_drained_burst_gives_its_memory_back() {
        let outbox = Outbox::new(1000);
        for seq in 1..=500 {
            push(&outbox, 0, seq);
        }
        assert_eq!(drain(&outbox).len(), 500);
        assert!(outbox.state.lock().rest.is_none());
    }
}
