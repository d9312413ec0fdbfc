//! A connection's queue of notices: the one place its reader waits on.
//!
//! Events do not travel through it: a publish appends each event once to
//! its stream's ring ([`super::Followers`]) and queues [`Item::Ready`] here
//! only for a follower that had read everything, once until it reads again;
//! the reader then pulls the stream's new events itself
//! ([`super::FollowTicket::pull`]). A follower that is behind costs a
//! publish nothing.
//!
//! Heartbeats, a stream's close, the server's shutdown and the end of the
//! connection are queued here too, in order, and the reader hands out what
//! the streams held before each of them first. There is at most one
//! heartbeat, one notice or close per stream, and one end, so the queue
//! stays bounded.
//!
//! An idle connection's queue allocates nothing, and everything a publisher
//! or the reader touches sits in one cache line (the lock, the bound and
//! flags, the reader's waker, the oldest notice inline, and the last event
//! written).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use parking_lot::Mutex;

use super::Delivery;

/// What a reader takes, in order: from its queue (notices) or from its
/// streams (events and what happened to them, [`super::FollowTicket::pull`]).
#[derive(Debug)]
pub enum Item {
    /// Stream `slot` has events the reader has not pulled yet.
    Ready { slot: u32 },
    /// An event of the stream the connection follows in `slot` (one
    /// allocation per event, shared by every reader).
    Event { slot: u32, delivery: Arc<Delivery> },
    /// The reader fell more than its bound behind and events were left out
    /// from here on: catch up from history before reading on.
    Lagged,
    /// History lost events after those read before this (a cluster node
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

/// Queues larger than this are given back once drained.
const KEEP_CAPACITY: usize = 64;

/// One cache line: the lock, the bound and flags, the reader's waker, the
/// oldest notice and the last event written (a unit test holds it to 64
/// bytes).
#[repr(align(64))]
pub struct Outbox {
    state: Mutex<State>,
}

struct State {
    /// The oldest notice queued, inline; `None` when the queue is empty.
    front: Option<Item>,
    /// The notices behind `front`, oldest first; allocated when more than
    /// one waits.
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
    bound: Bound,
}

/// How far behind its streams the reader may fall, and two flags, in one
/// word (so that the state fits its cache line).
#[derive(Clone, Copy)]
struct Bound(u32);

impl Bound {
    /// A heartbeat is queued and not yet taken.
    const HEARTBEAT: u32 = 1 << 31;
    /// `Shutdown` or `End` is queued: nothing after it would be read.
    const FINISHED: u32 = 1 << 30;
    const CAPACITY: u32 = (1 << 28) - 1;

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
    /// The queue of a reader that may fall `bound` events behind a stream
    /// before it lagged (at least one; the configuration allows at most
    /// 2^20).
    pub fn new(bound: usize) -> Outbox {
        let bound = u32::try_from(bound).map_or(Bound::CAPACITY, |c| c.min(Bound::CAPACITY));
        Outbox {
            state: Mutex::new(State {
                front: None,
                rest: None,
                waker: None,
                last: None,
                bound: Bound(bound.max(1)),
            }),
        }
    }

    /// How many events the reader may fall behind a stream.
    pub fn bound(&self) -> u32 {
        self.state.lock().bound.capacity()
    }

    /// Stream `slot` has events to pull. Never waits.
    ///
    /// Returns the reader's waker when it is waiting: the caller MUST wake
    /// it (after releasing its own locks). The notice is queued before the
    /// waker is taken, under the same lock, so a reader either finds it or
    /// has left its waker here to be taken: no wakeup is lost, however late
    /// it is woken.
    #[must_use = "the reader sleeps until this waker is woken"]
    pub fn push_ready(&self, slot: u32) -> Option<Waker> {
        let mut s = self.state.lock();
        if s.bound.has(Bound::FINISHED) {
            return None;
        }
        s.push(Item::Ready { slot });
        s.waker.take()
    }

    /// Takes the oldest notice if it is an [`Item::Ready`] (the reader
    /// pulls every stream with news at once).
    pub fn take_ready(&self) -> Option<u32> {
        let mut s = self.state.lock();
        match s.front {
            Some(Item::Ready { slot }) => {
                s.pop();
                Some(slot)
            }
            _ => None,
        }
    }

    /// The stream in `slot` is gone.
    pub fn push_closed(&self, slot: u32) {
        self.push_control(Item::Closed { slot });
    }

    /// Asks for a keep-alive comment, unless one is already queued.
    pub fn heartbeat(&self) {
        self.push_control(Item::Heartbeat);
    }

    /// The server is stopping: what the streams hold is sent, then the
    /// notice.
    pub fn shutdown(&self) {
        self.push_control(Item::Shutdown);
    }

    /// Ends the connection after what the streams hold.
    pub fn end(&self) {
        self.push_control(Item::End(None));
    }

    /// Ends the connection after what the streams hold, with `farewell` (an
    /// SSE frame saying why: `sser.kicked`, `sser.token_expired`, …) as its
    /// last words. The first end wins; later ones are ignored.
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

    /// The next notice, when there is one.
    pub fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Item> {
        self.poll_next_and_more(cx).map(|(item, _)| item)
    }

    /// The next notice, when there is one, and whether another is queued
    /// behind it (so the reader looks again only then).
    pub fn poll_next_and_more(&self, cx: &mut Context<'_>) -> Poll<(Item, bool)> {
        let mut s = self.state.lock();
        match s.pop() {
            Some(item) => {
                if let Item::Heartbeat = item {
                    s.bound.set(Bound::HEARTBEAT, false);
                }
                Poll::Ready((item, s.front.is_some()))
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

    fn ready(outbox: &Outbox, slot: u32) {
        if let Some(waker) = outbox.push_ready(slot) {
            waker.wake();
        }
    }

    fn drain(outbox: &Outbox) -> Vec<String> {
        let mut cx = Context::from_waker(Waker::noop());
        let mut out = Vec::new();
        while let Poll::Ready(item) = outbox.poll_next(&mut cx) {
            out.push(format!("{item:?}"));
        }
        out
    }

    #[test]
    fn notices_come_in_order_with_one_heartbeat_at_a_time() {
        let outbox = Outbox::new(2);
        ready(&outbox, 0);
        outbox.heartbeat();
        outbox.heartbeat();
        outbox.push_closed(1);
        ready(&outbox, 2);
        assert_eq!(
            drain(&outbox),
            [
                "Ready { slot: 0 }",
                "Heartbeat",
                "Closed { slot: 1 }",
                "Ready { slot: 2 }"
            ]
        );
        outbox.heartbeat();
        assert_eq!(drain(&outbox), ["Heartbeat"], "once taken, another is due");
    }

    #[test]
    fn a_waiting_reader_is_handed_back_to_be_woken() {
        let outbox = Outbox::new(2);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(outbox.poll_next(&mut cx).is_pending());
        assert!(outbox.push_ready(0).is_some(), "the reader waits");
        assert!(outbox.push_ready(1).is_none(), "its waker was taken");
    }

    #[test]
    fn the_first_end_finishes_the_queue() {
        let outbox = Outbox::new(8);
        ready(&outbox, 3);
        outbox.shutdown();
        ready(&outbox, 3);
        outbox.end();
        outbox.heartbeat();
        assert_eq!(drain(&outbox), ["Ready { slot: 3 }", "Shutdown"]);
    }

    #[test]
    fn the_state_fits_one_cache_line() {
        assert_eq!(std::mem::size_of::<Outbox>(), 64);
        assert_eq!(std::mem::align_of::<Outbox>(), 64);
    }

    #[test]
    fn the_bound_and_flags_share_a_word() {
        assert_eq!(Outbox::new(usize::MAX).bound(), Bound::CAPACITY);
        assert_eq!(Outbox::new(0).bound(), 1);
        let outbox = Outbox::new(1 << 20);
        outbox.heartbeat();
        outbox.shutdown();
        assert_eq!(outbox.bound(), 1 << 20);
    }

    #[test]
    fn an_item_is_two_words() {
        assert!(std::mem::size_of::<Item>() <= 16);
    }

    #[test]
    fn a_drained_burst_gives_its_memory_back() {
        let outbox = Outbox::new(8);
        for slot in 0..500 {
            ready(&outbox, slot);
        }
        assert_eq!(drain(&outbox).len(), 500);
        assert!(outbox.state.lock().rest.is_none());
    }
}
