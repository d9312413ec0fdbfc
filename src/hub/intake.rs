//! A live connection's next item: the notices of its queue in order and,
//! for each stream the queue says has news, the events pulled from that
//! stream's ring.
//!
//! Readers pull rather than have events pushed to them so that a publish
//! costs nothing per follower that is still busy (see
//! `crate::broker::followers`). What one wake pulls from several streams is
//! handed out in publish order; a stream's close, the server's shutdown and
//! the connection's end are handed out after everything the streams held
//! when they came, as a queue that held the events would have done.

use std::collections::VecDeque;
use std::task::{Context, Poll};

use super::feed::Feed;
use crate::broker::{Item, Pulled};

/// The most events pulled from a stream at once: what the HTTP layer
/// writes in one go (hyper queues at most 16 buffers before it flushes).
const PULL_BATCH: usize = 16;

/// Sorts after everything pulled.
const LAST: u64 = u64::MAX;

impl Feed {
    /// The next item to hand out, waiting on the queue when there is none.
    pub(super) fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Item> {
        loop {
            if let Some((_, item)) = self.pulled.pop_front() {
                return Poll::Ready(item);
            }
            let (item, more) = match self.outbox.poll_next_and_more(cx) {
                Poll::Ready(next) => next,
                Poll::Pending => {
                    // A burst's buffer is not kept by an idle connection.
                    if self.pulled.capacity() > 0 {
                        self.pulled = VecDeque::new();
                    }
                    return Poll::Pending;
                }
            };
            match item {
                Item::Ready { slot } => {
                    // Every stream with news, pulled at once; those with
                    // more than a batch are asked for again behind the
                    // notices queued now, so one busy stream does not hold
                    // up the others.
                    let mut again = Vec::new();
                    if self.pull(slot, false) {
                        again.push(slot);
                    }
                    let mut several = false;
                    while more && let Some(slot) = self.outbox.take_ready() {
                        if self.pull(slot, false) {
                            again.push(slot);
                        }
                        several = true;
                    }
                    if several {
                        self.pulled
                            .make_contiguous()
                            .sort_by_key(|(stamp, _)| *stamp);
                    }
                    for slot in again {
                        if let Some(waker) = self.outbox.push_ready(slot) {
                            waker.wake();
                        }
                    }
                }
                Item::Closed { slot } => {
                    self.pull(slot, true);
                    self.pulled.push_back((LAST, item));
                }
                Item::Shutdown | Item::End(_) => {
                    for slot in 0..self.streams.len() as u32 {
                        self.pull(slot, true);
                    }
                    self.pulled
                        .make_contiguous()
                        .sort_by_key(|(stamp, _)| *stamp);
                    self.pulled.push_back((LAST, item));
                }
                other => return Poll::Ready(other),
            }
        }
    }

    /// Pulls one batch from stream `slot`, or every batch it holds when
    /// `everything`; whether more is left.
    fn pull(&mut self, slot: u32, everything: bool) -> bool {
        let Some(ticket) = self
            .streams
            .get_mut(slot as usize)
            .and_then(|s| s.ticket.as_mut())
        else {
            return false;
        };
        loop {
            let more = ticket.pull(slot, PULL_BATCH, &mut self.pulled) == Pulled::More;
            if !more || !everything {
                return more;
            }
        }
    }
}
