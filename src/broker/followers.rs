//! The connections on this node that follow one stream, and the stream's
//! recent items they read from: what a publish fans out to.
//!
//! Every broker keeps one list per stream it serves here (a clustered broker
//! too: each node fans out to its own connections). A publish appends the
//! event to the list's ring of recent items once, and wakes only the
//! followers that had read everything and wait for more; each reader then
//! pulls what it has not read yet, from its own place in the ring
//! ([`FollowTicket::pull`]). A follower still busy with earlier events costs
//! a publish nothing: a publish to 10,000 connections that are behind
//! touches none of their memory. (A first design pushed the event into every
//! follower's queue: each publish then wrote 10,000 cache lines that the
//! readers, running on other cores, had just written, and paid for every
//! one of them twice. That was the whole cost of the redesign in the
//! fan-out benchmark.)
//!
//! The ring keeps at most the largest follower's bound
//! (`pubsub.subscriberBuffer`), and is emptied whenever every follower has
//! read everything (all of them wait), so a stream whose followers keep up
//! holds almost nothing. Readers only read the ring: nothing they do writes
//! memory another reader reads. A
//! follower that falls further behind than its bound is told it lagged
//! ([`Item::Lagged`]) and catches up from history (the hub's slow-consumer
//! policy): nothing is dropped silently.
//!
//! Entries sit in one contiguous `Vec`; a connection joins and leaves in
//! O(1) through its [`FollowTicket`], whose key stays valid while other
//! entries move (swap-remove updates the moved entry's index). The ticket
//! leaves the list when it is dropped, however the connection ends.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;

use parking_lot::Mutex;

use super::Delivery;
use super::outbox::{Item, Outbox};

#[derive(Default)]
pub struct Followers {
    inner: Mutex<Dense>,
}

#[derive(Default)]
struct Dense {
    entries: Vec<Entry>,
    /// Ticket key → index in `entries` (`FREE` when unused).
    index_of: Vec<u32>,
    free: Vec<u32>,
    /// The stream is gone: followers were told, nobody may join.
    closed: bool,
    /// Items not yet read by every follower, oldest first; `recent[0]` is
    /// number `first` in the stream's count of items.
    recent: VecDeque<Recent>,
    first: u64,
    /// The most items kept: the largest bound among the followers.
    keep: u32,
    /// Keys of the followers that read everything and wait for more.
    waiting: Vec<u32>,
    /// Kept between publishes: the readers to wake after a publish (one
    /// allocation per stream, not one per publish).
    wakers: Vec<Waker>,
}

struct Entry {
    key: u32,
    outbox: Arc<Outbox>,
    /// Which of the connection's streams this is.
    slot: u32,
    /// Its index in `waiting`, `FREE` when it is not waiting.
    waiting_at: u32,
}

/// One item of the ring.
struct Recent {
    what: Recorded,
    /// When it was published on this node, across all streams: a reader of
    /// several streams hands out what it pulled at once in this order.
    stamp: u64,
}

enum Recorded {
    Event(Arc<Delivery>),
    /// History lost events here ([`Item::Gap`]).
    Gap,
}

const FREE: u32 = u32::MAX;

/// The order of items published on this node (see [`Recent::stamp`]).
static STAMPS: AtomicU64 = AtomicU64::new(1);

/// A connection's place in one stream: its key in the stream's list and the
/// next item it reads. Leaving is dropping it.
pub struct FollowTicket {
    list: Arc<Followers>,
    key: u32,
    /// The number of the next item to read (see [`Dense::first`]).
    next: u64,
    /// How far behind it may fall before it lagged.
    bound: u32,
}

/// What one [`FollowTicket::pull`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pulled {
    /// It read everything: the next item queues [`Item::Ready`] for it.
    Waiting,
    /// There is more than it asked for: pull again.
    More,
}

impl Followers {
    pub fn new() -> Arc<Followers> {
        Arc::new(Followers::default())
    }

    /// Adds `outbox` (for its stream `slot`); `None` once the stream is
    /// closed. The follower reads every item after this call.
    pub fn add(self: &Arc<Self>, outbox: Arc<Outbox>, slot: u32) -> Option<FollowTicket> {
        let mut d = self.inner.lock();
        if d.closed {
            return None;
        }
        let key = match d.free.pop() {
            Some(key) => key,
            None => {
                d.index_of.push(FREE);
                (d.index_of.len() - 1) as u32
            }
        };
        let bound = outbox.bound();
        d.keep = d.keep.max(bound);
        let index = d.entries.len() as u32;
        d.index_of[key as usize] = index;
        d.entries.push(Entry {
            key,
            outbox,
            slot,
            waiting_at: FREE,
        });
        d.wait(key);
        Some(FollowTicket {
            list: self.clone(),
            key,
            next: d.head(),
            bound,
        })
    }

    fn remove(&self, key: u32) {
        let mut d = self.inner.lock();
        if d.closed {
            return;
        }
        let Some(&index) = d.index_of.get(key as usize) else {
            return;
        };
        if index == FREE {
            return;
        }
        d.stop_waiting(key);
        let index = index as usize;
        d.entries.swap_remove(index);
        if let Some(moved) = d.entries.get(index).map(|e| e.key) {
            d.index_of[moved as usize] = index as u32;
        }
        if d.entries.is_empty() {
            // Nobody holds a key or a place any more: start over with no
            // memory held.
            *d = Dense::default();
        } else {
            d.index_of[key as usize] = FREE;
            d.free.push(key);
            d.forget_if_all_read();
        }
    }

    /// Hands `delivery` to every follower. Called under the stream's publish
    /// lock, in position order; never waits.
    pub fn fan_out(&self, delivery: &Arc<Delivery>) {
        self.append(Recorded::Event(delivery.clone()));
    }

    /// History lost events after those handed out: every follower repairs
    /// from history with a truncation notice ([`Item::Gap`]). Called under
    /// the stream's publish lock, before the next event.
    pub fn gap(&self) {
        self.append(Recorded::Gap);
    }

    fn append(&self, what: Recorded) {
        let mut wakers = {
            let mut d = self.inner.lock();
            if d.closed || d.entries.is_empty() {
                return;
            }
            d.recent.push_back(Recent {
                what,
                stamp: STAMPS.fetch_add(1, Ordering::Relaxed),
            });
            // Whoever has not read the oldest by now lagged (they find out
            // when they pull).
            while d.recent.len() > d.keep as usize {
                d.recent.pop_front();
                d.first += 1;
            }
            let mut wakers = std::mem::take(&mut d.wakers);
            let Dense {
                entries,
                index_of,
                waiting,
                ..
            } = &mut *d;
            for key in waiting.drain(..) {
                let entry = &mut entries[index_of[key as usize] as usize];
                entry.waiting_at = FREE;
                wakers.extend(entry.outbox.push_ready(entry.slot));
            }
            wakers
        };
        // Every notice is queued before its waker was taken (see
        // `Outbox::push_ready`), so waking after the lock loses nothing.
        for waker in wakers.drain(..) {
            waker.wake();
        }
        // Kept only while it fits the list (a burst of followers that has
        // since left does not keep its memory).
        let mut d = self.inner.lock();
        if wakers.capacity() <= 4 * d.entries.len() && d.wakers.capacity() < wakers.capacity() {
            d.wakers = wakers;
        }
    }

    /// The stream is gone: tells every follower and refuses new ones. What
    /// they have not read yet stays readable.
    pub fn close(&self) {
        let mut d = self.inner.lock();
        for e in &d.entries {
            e.outbox.push_closed(e.slot);
        }
        d.closed = true;
        d.entries = Vec::new();
        d.index_of = Vec::new();
        d.free = Vec::new();
        d.waiting = Vec::new();
        d.wakers = Vec::new();
    }

    /// The queues of everyone following now (to end them, say).
    pub fn outboxes(&self) -> Vec<Arc<Outbox>> {
        self.inner
            .lock()
            .entries
            .iter()
            .map(|e| e.outbox.clone())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Dense {
    /// The number the next item appended gets.
    fn head(&self) -> u64 {
        self.first + self.recent.len() as u64
    }

    /// Follower `key` waits for the next item (once).
    fn wait(&mut self, key: u32) {
        if self.closed {
            return;
        }
        let Some(&index) = self.index_of.get(key as usize) else {
            return;
        };
        let Some(entry) = self.entries.get_mut(index as usize) else {
            return;
        };
        if entry.waiting_at == FREE {
            entry.waiting_at = self.waiting.len() as u32;
            self.waiting.push(key);
        }
    }

    fn stop_waiting(&mut self, key: u32) {
        let Some(&index) = self.index_of.get(key as usize) else {
            return;
        };
        let Some(at) = self.entries.get(index as usize).map(|e| e.waiting_at) else {
            return;
        };
        if at == FREE {
            return;
        }
        self.waiting.swap_remove(at as usize);
        if let Some(&moved) = self.waiting.get(at as usize) {
            let moved_index = self.index_of[moved as usize] as usize;
            self.entries[moved_index].waiting_at = at;
        }
        self.entries[index as usize].waiting_at = FREE;
    }

    /// Every follower waits, so every one has read everything: the ring
    /// lets go of it all.
    fn forget_if_all_read(&mut self) {
        if self.waiting.len() < self.entries.len() || self.recent.is_empty() {
            return;
        }
        self.first = self.head();
        if self.recent.capacity() > 64 {
            self.recent = VecDeque::new();
        } else {
            self.recent.clear();
        }
    }
}

impl FollowTicket {
    /// Takes up to `max` unread items into `out`, oldest first, each with
    /// its stamp (the order of publishes on this node). A follower that fell
    /// more than its bound behind gets [`Item::Lagged`] instead of what it
    /// missed, and goes on from the newest item. Consecutive history holes
    /// read at once are reported once.
    pub fn pull(&mut self, slot: u32, max: usize, out: &mut VecDeque<(u64, Item)>) -> Pulled {
        let mut d = self.list.inner.lock();
        let head = d.head();
        if self.next < d.first || head - self.next > u64::from(self.bound) {
            self.next = head;
            out.push_back((0, Item::Lagged));
            d.wait(self.key);
            d.forget_if_all_read();
            return Pulled::Waiting;
        }
        let start = (self.next - d.first) as usize;
        let take = max.min(d.recent.len() - start);
        let mut gap_taken = false;
        for recent in d.recent.range(start..start + take) {
            let item = match &recent.what {
                Recorded::Event(delivery) => Item::Event {
                    slot,
                    delivery: delivery.clone(),
                },
                Recorded::Gap if gap_taken => continue,
                Recorded::Gap => {
                    gap_taken = true;
                    Item::Gap
                }
            };
            out.push_back((recent.stamp, item));
        }
        self.next += take as u64;
        if self.next == head {
            d.wait(self.key);
            d.forget_if_all_read();
            Pulled::Waiting
        } else {
            Pulled::More
        }
    }
}

impl Drop for FollowTicket {
    fn drop(&mut self) {
        self.list.remove(self.key);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::Position;
    use std::task::{Context, Poll};

    fn slots(list: &Followers) -> Vec<u32> {
        let mut s: Vec<u32> = list.inner.lock().entries.iter().map(|e| e.slot).collect();
        s.sort();
        s
    }

    fn event(seq: u64) -> Arc<Delivery> {
        Arc::new(Delivery {
            position: Position::from_seq(seq),
            frame: bytes::Bytes::new(),
        })
    }

    /// Everything a follower can read now: its queue's notices, and the
    /// items of its streams as the hub's reader takes them (`tickets[slot]`).
    pub(crate) fn read_all(outbox: &Outbox, tickets: &mut [&mut FollowTicket]) -> Vec<String> {
        let single = tickets.len() == 1;
        let show = |item: Item| match item {
            Item::Event { delivery, .. } if single => delivery.position.to_string(),
            Item::Event { slot, delivery } => format!("{slot}:{}", delivery.position),
            other => format!("{other:?}"),
        };
        let mut cx = Context::from_waker(Waker::noop());
        let mut out = Vec::new();
        let mut pulled = VecDeque::new();
        while let Poll::Ready(item) = outbox.poll_next(&mut cx) {
            match item {
                Item::Ready { slot } => {
                    while tickets[slot as usize].pull(slot, 4, &mut pulled) == Pulled::More {}
                    out.extend(pulled.drain(..).map(|(_, item)| show(item)));
                }
                other => out.push(show(other)),
            }
        }
        out
    }

    #[test]
    fn join_and_leave_in_any_order() {
        let list = Followers::new();
        let outbox = Arc::new(Outbox::new(8));
        let mut tickets: Vec<Option<FollowTicket>> =
            (0..5).map(|slot| list.add(outbox.clone(), slot)).collect();
        tickets[1] = None;
        tickets[4] = None;
        assert_eq!(slots(&list), [0, 2, 3]);
        tickets.push(list.add(outbox.clone(), 9));
        tickets[0] = None;
        assert_eq!(slots(&list), [2, 3, 9]);
        list.fan_out(&event(1));
        assert_eq!(list.inner.lock().recent.len(), 1, "three have not read it");
        tickets.clear();
        assert!(list.is_empty());
        let d = list.inner.lock();
        assert!(
            d.index_of.is_empty() && d.recent.is_empty(),
            "memory given back"
        );
    }

    #[test]
    fn the_ring_empties_once_everyone_read_everything() {
        let list = Followers::new();
        let (a, b) = (Arc::new(Outbox::new(8)), Arc::new(Outbox::new(8)));
        let mut ta = list.add(a.clone(), 0).unwrap();
        let mut tb = list.add(b.clone(), 0).unwrap();
        list.fan_out(&event(1));
        list.fan_out(&event(2));
        assert_eq!(read_all(&a, &mut [&mut ta]), ["1", "2"]);
        assert_eq!(list.inner.lock().recent.len(), 2, "b has not read them");
        assert_eq!(read_all(&b, &mut [&mut tb]), ["1", "2"]);
        assert!(list.inner.lock().recent.is_empty());
        // The last one behind leaving lets go too.
        list.fan_out(&event(3));
        assert_eq!(read_all(&a, &mut [&mut ta]), ["3"]);
        drop(tb);
        assert!(list.inner.lock().recent.is_empty());
    }

    #[test]
    fn only_waiting_followers_are_notified_once() {
        let list = Followers::new();
        let outbox = Arc::new(Outbox::new(8));
        let mut ticket = list.add(outbox.clone(), 0).unwrap();
        list.fan_out(&event(1));
        list.fan_out(&event(2));
        // One notice for both: it was not waiting after the first.
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(
            outbox.poll_next(&mut cx),
            Poll::Ready(Item::Ready { slot: 0 })
        ));
        assert!(outbox.poll_next(&mut cx).is_pending());
        let mut pulled = VecDeque::new();
        assert_eq!(ticket.pull(0, 1, &mut pulled), Pulled::More);
        assert_eq!(ticket.pull(0, 1, &mut pulled), Pulled::Waiting);
        assert_eq!(pulled.len(), 2);
        assert!(pulled[0].0 < pulled[1].0, "stamps in publish order");
        list.fan_out(&event(3));
        assert_eq!(read_all(&outbox, &mut [&mut ticket]), ["3"]);
    }

    #[test]
    fn a_follower_too_far_behind_lagged_and_goes_on_from_the_newest() {
        let list = Followers::new();
        let slow = Arc::new(Outbox::new(2));
        let fast = Arc::new(Outbox::new(8));
        let mut ts = list.add(slow.clone(), 0).unwrap();
        let mut tf = list.add(fast.clone(), 0).unwrap();
        for seq in 1..=5 {
            list.fan_out(&event(seq));
        }
        assert_eq!(read_all(&fast, &mut [&mut tf]), ["1", "2", "3", "4", "5"]);
        assert_eq!(read_all(&slow, &mut [&mut ts]), ["Lagged"]);
        assert!(list.inner.lock().recent.is_empty(), "the lagged one let go");
        list.fan_out(&event(6));
        assert_eq!(read_all(&slow, &mut [&mut ts]), ["6"]);
        // Behind further than the ring keeps (the largest bound).
        for seq in 7..=20 {
            list.fan_out(&event(seq));
        }
        assert_eq!(read_all(&slow, &mut [&mut ts]), ["Lagged"]);
        assert_eq!(read_all(&fast, &mut [&mut tf]), ["Lagged"]);
    }

    #[test]
    fn holes_read_at_once_are_reported_once() {
        let list = Followers::new();
        let outbox = Arc::new(Outbox::new(8));
        let mut ticket = list.add(outbox.clone(), 0).unwrap();
        list.fan_out(&event(1));
        list.gap();
        list.fan_out(&event(5));
        list.gap();
        list.fan_out(&event(9));
        assert_eq!(
            read_all(&outbox, &mut [&mut ticket]),
            ["1", "Gap", "5", "9"]
        );
        list.gap();
        list.fan_out(&event(12));
        assert_eq!(read_all(&outbox, &mut [&mut ticket]), ["Gap", "12"]);
    }

    #[test]
    fn a_closed_stream_refuses_followers_and_keeps_what_is_unread() {
        let list = Followers::new();
        let outbox = Arc::new(Outbox::new(8));
        let mut ticket = list.add(outbox.clone(), 0).unwrap();
        list.fan_out(&event(1));
        list.close();
        assert!(list.add(outbox.clone(), 1).is_none());
        list.fan_out(&event(2));
        assert_eq!(
            read_all(&outbox, &mut [&mut ticket]),
            ["1", "Closed { slot: 0 }"]
        );
        drop(ticket);
        assert!(list.is_empty());
    }

    /// Publishes run on another thread while readers on two worker threads
    /// pull, go back to waiting and are woken: a reader whose notice was
    /// lost would hang here.
    #[test]
    fn no_reader_misses_a_wake() {
        const READERS: usize = 64;
        const EVENTS: u64 = 3_000;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .expect("runtime");
        let list = Followers::new();
        let mut readers = Vec::new();
        for _ in 0..READERS {
            // Room for every event: this is about wakes, not lag.
            let outbox = Arc::new(Outbox::new(EVENTS as usize));
            let mut ticket = list.add(outbox.clone(), 0).expect("open");
            readers.push(runtime.spawn(async move {
                let mut seq = 0;
                let mut pulled = VecDeque::new();
                while seq < EVENTS {
                    match outbox.next().await {
                        Item::Ready { slot: 0 } => {}
                        other => panic!("expected a notice, got {other:?}"),
                    }
                    loop {
                        let more = ticket.pull(0, 7, &mut pulled);
                        for (_, item) in pulled.drain(..) {
                            seq += 1;
                            match item {
                                Item::Event { delivery, .. } => {
                                    assert_eq!(delivery.position.seq(), seq)
                                }
                                other => panic!("expected event {seq}, got {other:?}"),
                            }
                        }
                        if more == Pulled::Waiting {
                            break;
                        }
                    }
                }
            }));
        }
        let publisher = std::thread::spawn(move || {
            for seq in 1..=EVENTS {
                list.fan_out(&event(seq));
                if seq % 16 == 0 {
                    // Let readers catch up and wait again, so that many
                    // publishes find a waiting reader.
                    std::thread::yield_now();
                }
            }
            list
        });
        runtime.block_on(async {
            let all = futures_util::future::join_all(readers);
            match tokio::time::timeout(std::time::Duration::from_secs(30), all).await {
                Ok(done) => assert!(done.iter().all(Result::is_ok), "a reader failed"),
                Err(_) => panic!("a reader was never woken"),
            }
        });
        let list = publisher.join().expect("publisher");
        assert!(list.is_empty(), "the readers' tickets left with them");
    }
}
