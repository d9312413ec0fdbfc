//! The connections on this node that follow one stream: who a publish fans
//! out to.
//!
//! Every broker keeps one list per stream it serves here (a clustered broker
//! too: each node fans out to its own connections). Entries sit in one
//! contiguous `Vec`, so fan-out walks memory in order; a connection joins
//! and leaves in O(1) through a [`FollowTicket`], whose key stays valid while
//! other entries move (swap-remove updates the moved entry's index). The
//! ticket leaves the list when it is dropped, however the connection ends.
//!
//! A publish first queues the event for every follower, then wakes the
//! readers that were waiting, after letting go of the list. Waking a reader
//! as soon as its item is queued would set the other cores reading while
//! the publisher still walks the list, and every follower's step would
//! then pull the shared event's counter back and forth between cores.

use std::sync::Arc;
use std::task::Waker;

use parking_lot::Mutex;

use super::Delivery;
use super::outbox::Outbox;

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
    /// Kept between publishes: the readers to wake after a fan-out (one
    /// allocation per stream, not one per publish).
    wakers: Vec<Waker>,
}

struct Entry {
    key: u32,
    outbox: Arc<Outbox>,
    /// Which of the connection's streams this is.
    slot: u32,
}

const FREE: u32 = u32::MAX;

/// A connection's place in one stream's list; leaving is dropping it.
pub struct FollowTicket {
    list: Arc<Followers>,
    key: u32,
}

impl Followers {
    pub fn new() -> Arc<Followers> {
        Arc::new(Followers::default())
    }

    /// Adds `outbox` (for its stream `slot`); `None` once the stream is closed.
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
        let index = d.entries.len() as u32;
        d.index_of[key as usize] = index;
        d.entries.push(Entry { key, outbox, slot });
        Some(FollowTicket {
            list: self.clone(),
            key,
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
        let index = index as usize;
        d.entries.swap_remove(index);
        if let Some(moved) = d.entries.get(index).map(|e| e.key) {
            d.index_of[moved as usize] = index as u32;
        }
        if d.entries.is_empty() {
            // Nobody holds a key any more: start over with no memory held.
            *d = Dense::default();
        } else {
            d.index_of[key as usize] = FREE;
            d.free.push(key);
        }
    }

    /// Queues `delivery` for every follower. Called under the stream's
    /// publish lock, in position order; never waits.
    pub fn fan_out(&self, delivery: &Arc<Delivery>) {
        let mut wakers = {
            let mut d = self.inner.lock();
            let mut wakers = std::mem::take(&mut d.wakers);
            for e in &d.entries {
                wakers.extend(e.outbox.push_event(e.slot, delivery.clone()));
            }
            wakers
        };
        // Every item is queued before its waker was taken (see
        // `Outbox::push_event`), so waking late loses nothing.
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

    /// History lost events after those queued: every follower repairs
    /// from history with a truncation notice ([`super::Item::Gap`]).
    /// Called under the stream's publish lock, before the next event.
    pub fn gap(&self) {
        let wakers: Vec<Waker> = {
            let d = self.inner.lock();
            d.entries
                .iter()
                .filter_map(|e| e.outbox.push_gap())
                .collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }

    /// The stream is gone: tells every follower and refuses new ones.
    pub fn close(&self) {
        let mut d = self.inner.lock();
        for e in &d.entries {
            e.outbox.push_closed(e.slot);
        }
        *d = Dense {
            closed: true,
            ..Dense::default()
        };
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

impl Drop for FollowTicket {
    fn drop(&mut self) {
        self.list.remove(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Item;
    use crate::model::Position;

    fn slots(list: &Followers) -> Vec<u32> {
        let mut s: Vec<u32> = list.inner.lock().entries.iter().map(|e| e.slot).collect();
        s.sort();
        s
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
        list.fan_out(&Arc::new(Delivery {
            position: Position::from_seq(1),
            frame: bytes::Bytes::new(),
        }));
        tickets.clear();
        assert!(list.is_empty());
        assert!(list.inner.lock().index_of.is_empty(), "memory given back");
    }

    #[test]
    fn a_closed_stream_refuses_followers_and_tickets_still_drop() {
        let list = Followers::new();
        let outbox = Arc::new(Outbox::new(8));
        let ticket = list.add(outbox.clone(), 0);
        list.close();
        assert!(list.add(outbox, 1).is_none());
        drop(ticket);
        assert!(list.is_empty());
    }

    /// Wakes happen after the whole list is queued, from another thread,
    /// while readers on two worker threads drain and go back to sleep: a
    /// reader whose waker was taken but never woken would hang here.
    #[test]
    fn late_wakes_lose_no_reader() {
        const READERS: usize = 64;
        const EVENTS: u64 = 3_000;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .expect("runtime");
        let list = Followers::new();
        let mut tickets = Vec::new();
        let mut readers = Vec::new();
        for _ in 0..READERS {
            // Room for every event: this is about wakes, not lag.
            let outbox = Arc::new(Outbox::new(EVENTS as usize));
            tickets.push(list.add(outbox.clone(), 0));
            readers.push(runtime.spawn(async move {
                for seq in 1..=EVENTS {
                    match outbox.next().await {
                        Item::Event { delivery, .. } => assert_eq!(delivery.position.seq(), seq),
                        other => panic!("expected event {seq}, got {other:?}"),
                    }
                }
            }));
        }
        let publisher = std::thread::spawn(move || {
            for seq in 1..=EVENTS {
                list.fan_out(&Arc::new(Delivery {
                    position: Position::from_seq(seq),
                    frame: bytes::Bytes::new(),
                }));
                if seq % 16 == 0 {
                    // Let readers catch up and sleep again, so that many
                    // pushes find a waiting reader.
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
        drop(tickets);
        assert!(list.is_empty());
    }
}
