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

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

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
    /// Time for a keep-alive comment.
    Heartbeat,
    /// The stream in `slot` was deleted; nothing more comes from it.
    Closed { slot: u32 },
    /// The server is stopping: end the connection.
    Shutdown,
    /// The connection was ended (by an operator, or by the registry).
    End,
}

/// Rings larger than this are given back once drained, so a burst does not
/// leave its memory with an idle connection.
const KEEP_CAPACITY: usize = 64;

pub struct Outbox {
    state: Mutex<State>,
}

struct State {
    items: VecDeque<Item>,
    /// `Item::Event`s queued (the bound applies to these only).
    events: usize,
    capacity: usize,
    /// A `Lagged` marker is queued: events are left out until it is taken.
    lagged: bool,
    /// A heartbeat is queued and not yet taken.
    heartbeat: bool,
    /// `Shutdown` or `End` is queued: nothing after it would be read.
    finished: bool,
    waker: Option<Waker>,
}

impl Outbox {
    /// A queue holding at most `capacity` events.
    pub fn new(capacity: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State {
                items: VecDeque::new(),
                events: 0,
                capacity: capacity.max(1),
                lagged: false,
                heartbeat: false,
                finished: false,
                waker: None,
            }),
        }
    }

    /// Queues an event, or marks the connection lagged. Never waits.
    pub fn push_event(&self, slot: u32, delivery: Arc<Delivery>) {
        let waker = {
            let mut s = self.state.lock();
            if s.lagged || s.finished {
                return;
            }
            if s.events >= s.capacity {
                s.lagged = true;
                s.items.push_back(Item::Lagged);
            } else {
                s.events += 1;
                s.items.push_back(Item::Event { slot, delivery });
            }
            s.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
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

    /// The server is stopping: what is queued is sent, then the notice.
    pub fn shutdown(&self) {
        self.push_control(Item::Shutdown);
    }

    /// Ends the connection after what is queued.
    pub fn end(&self) {
        self.push_control(Item::End);
    }

    fn push_control(&self, item: Item) {
        let waker = {
            let mut s = self.state.lock();
            if s.finished {
                return;
            }
            match item {
                Item::Heartbeat if s.heartbeat => return,
                Item::Heartbeat => s.heartbeat = true,
                Item::Shutdown | Item::End => s.finished = true,
                _ => {}
            }
            s.items.push_back(item);
            s.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The next item, when there is one.
    pub fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Item> {
        let mut s = self.state.lock();
        match s.items.pop_front() {
            Some(item) => {
                match &item {
                    Item::Event { .. } => s.events -= 1,
                    Item::Lagged => s.lagged = false,
                    Item::Heartbeat => s.heartbeat = false,
                    _ => {}
                }
                if s.items.is_empty() && s.items.capacity() > KEEP_CAPACITY {
                    s.items = VecDeque::new();
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
            outbox.push_event(0, delivery(seq));
        }
        outbox.heartbeat();
        outbox.heartbeat();
        outbox.push_closed(1);
        assert_eq!(
            drain(&outbox),
            ["0:1", "0:2", "Lagged", "Heartbeat", "Closed { slot: 1 }"]
        );
        // Once the marker is taken, events are queued again.
        outbox.push_event(0, delivery(6));
        assert_eq!(drain(&outbox), ["0:6"]);
    }

    #[test]
    fn shutdown_comes_after_what_is_queued_and_ends_the_queue() {
        let outbox = Outbox::new(8);
        outbox.push_event(3, delivery(1));
        outbox.shutdown();
        outbox.push_event(3, delivery(2));
        outbox.end();
        assert_eq!(drain(&outbox), ["3:1", "Shutdown"]);
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
            outbox.push_event(0, delivery(seq));
        }
        assert_eq!(drain(&outbox).len(), 500);
        assert_eq!(outbox.state.lock().items.capacity(), 0);
    }
}
