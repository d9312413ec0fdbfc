//! A connection's HTTP body, written by hand as a [`Stream`] of frames:
//! the opening frame, any truncation notices, replay from history, then
//! whatever its queue brings, until one of them ends it.
//!
//! Why by hand and not as a generator (`async_stream`): a generator keeps
//! every local of every phase in one state spread over many cache lines,
//! resumes through a thread-local slot per frame, and needs a `poll_fn`
//! closure to wait on the queue and the connection's timers together. A
//! connection that keeps up spends its whole life in [`Stage::Live`], where
//! a frame is one poll of the queue and of the two optional timers and one
//! look at the stream's cursor: all of it in the first fields of this
//! struct and of [`Feed`] (see its layout). Opening and catching up (the
//! rare phases, with their broker reads) live in a boxed [`CatchUp`] that
//! only a connection catching up holds.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

use super::farewell::EndReason;
use super::feed::{Feed, Fetch, Fetched, Step, Subscription};
use super::framing::Frames;
use super::notice;
use super::resume::Replay;
use crate::broker::Item;
use crate::sse;

/// The body of one connection's SSE response (see the module doc).
#[repr(C)]
pub struct FeedStream {
    stage: Stage,
    feed: Feed,
    /// The second chunk of a multi-stream event ([`Frames::Two`]), written
    /// next ([`Stage::Second`]).
    second: Option<Bytes>,
    /// Notices and replays still to do ([`Stage::CatchingUp`]).
    catch_up: Option<Box<CatchUp>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The opening frame is next.
    Opening,
    /// Writing what `catch_up` holds, reading history for it.
    CatchingUp,
    /// Reading the queue.
    Live,
    /// `second` is next, then the queue again.
    Second,
    /// Ended: nothing more is written.
    Done,
}

/// What a connection still owes before (or, after falling behind, instead
/// of) reading its queue.
struct CatchUp {
    /// Frames to write, oldest first: at most one batch of history.
    ready: VecDeque<Bytes>,
    /// The stream ends once `ready` is written.
    ends: bool,
    /// What is left to do, in order.
    work: VecDeque<Work>,
    /// The broker read in progress, and the work it is for.
    fetch: Option<(Work, Fetch)>,
}

#[derive(Debug, Clone, Copy)]
enum Work {
    /// Stream `slot`'s `Last-Event-ID` was not in history: say so.
    Notice(usize),
    /// Replay stream `slot` from its cursor.
    Replay(usize, Replay),
}

/// What a live connection's wait brings.
enum Live {
    Item(Item),
    /// The connection's own heartbeat is due.
    Beat,
    /// Its token expired: this is its last frame.
    Expired(Bytes),
}

impl Subscription {
    /// The body of the SSE response.
    pub fn into_stream(self) -> FeedStream {
        FeedStream::new(self.feed)
    }
}

impl FeedStream {
    fn new(feed: Feed) -> FeedStream {
        FeedStream {
            stage: Stage::Opening,
            feed,
            second: None,
            catch_up: None,
        }
    }

    /// The next frame to write; `None` once the stream has ended.
    pub fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        loop {
            match self.stage {
                Stage::Live => {
                    let Poll::Ready(live) = self.poll_live(cx) else {
                        return Poll::Pending;
                    };
                    if let Some(frame) = self.on_live(live) {
                        return Poll::Ready(Some(frame));
                    }
                }
                Stage::Second => {
                    self.stage = Stage::Live;
                    if let Some(frame) = self.second.take() {
                        return Poll::Ready(Some(frame));
                    }
                }
                Stage::Opening => return Poll::Ready(Some(self.open())),
                Stage::CatchingUp => {
                    if let Some(frame) = std::task::ready!(self.poll_catch_up(cx)) {
                        return Poll::Ready(Some(frame));
                    }
                }
                Stage::Done => return Poll::Ready(None),
            }
        }
    }

    /// Waits on the queue and the connection's own timers. The deadline
    /// comes first: a busy queue must not keep an expired token's stream
    /// open.
    fn poll_live(&mut self, cx: &mut Context<'_>) -> Poll<Live> {
        let feed = &mut self.feed;
        if let Some(sleep) = feed.expiry.as_mut()
            && sleep.as_mut().poll(cx).is_ready()
        {
            // Out of the registry now, presence reason `expired`.
            feed.life.registration.end(&EndReason::Expired);
            return Poll::Ready(Live::Expired(feed.life.conn.farewell(&EndReason::Expired)));
        }
        if let Some(own) = feed.own_heartbeat.as_mut()
            && own.every.poll_tick(cx).is_ready()
        {
            return Poll::Ready(Live::Beat);
        }
        feed.poll_item(cx).map(Live::Item)
    }

    /// What a live wait's result writes, if anything.
    fn on_live(&mut self, live: Live) -> Option<Bytes> {
        let feed = &mut self.feed;
        let item = match live {
            Live::Item(item) => item,
            Live::Beat => return feed.own_heartbeat.as_ref().map(|own| own.frame.clone()),
            Live::Expired(farewell) => return Some(self.end_with(farewell)),
        };
        match item {
            Item::Event { slot, delivery } => match feed.deliver(slot as usize, &delivery)? {
                Frames::One(frame) => {
                    feed.outbox.record_sent(delivery);
                    Some(frame)
                }
                Frames::Two(head, rest) => {
                    self.second = Some(rest);
                    self.stage = Stage::Second;
                    Some(head)
                }
            },
            Item::Lagged => {
                feed.life.metrics.subscriber_lagged();
                let work = feed
                    .streams
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.ticket.is_some())
                    .map(|(slot, _)| Work::Replay(slot, Replay::Lagged))
                    .collect();
                self.catch_up(work);
                None
            }
            Item::Gap => {
                // Streams without a hole read nothing new here.
                let work = feed
                    .streams
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.ticket.is_some())
                    .map(|(slot, _)| Work::Replay(slot, Replay::Repair))
                    .collect();
                self.catch_up(work);
                None
            }
            // Handled by `poll_item`, never handed out.
            Item::Ready { .. } => None,
            // The hub's tick is not the beat of a connection with its own.
            Item::Heartbeat if feed.own_heartbeat.is_some() => None,
            Item::Heartbeat => Some(sse::heartbeat_frame()),
            Item::Closed { slot } => {
                let (frame, end) = feed.closed(slot as usize);
                if end {
                    self.stage = Stage::Done;
                }
                Some(frame)
            }
            Item::Shutdown => {
                let farewell = feed.life.conn.farewell(&EndReason::Shutdown);
                Some(self.end_with(farewell))
            }
            Item::End(farewell) => {
                let farewell =
                    farewell.map_or_else(|| sse::comment_frame(notice::ENDED_NOTICE), |f| *f);
                Some(self.end_with(farewell))
            }
        }
    }

    /// `last` is the stream's last frame.
    fn end_with(&mut self, last: Bytes) -> Bytes {
        self.stage = Stage::Done;
        last
    }

    /// The opening frame; what the stream owes before going live (each
    /// stream's truncation notice, then each replay) is queued behind it.
    fn open(&mut self) -> Bytes {
        let streams = &mut self.feed.streams;
        let notices = streams
            .iter()
            .enumerate()
            .filter(|(_, s)| s.truncated)
            .map(|(slot, _)| Work::Notice(slot));
        let mut work: VecDeque<Work> = notices.collect();
        work.extend(
            streams
                .iter_mut()
                .enumerate()
                .filter_map(|(slot, s)| s.start.take().map(|mode| Work::Replay(slot, mode))),
        );
        self.stage = Stage::Live;
        self.catch_up(work);
        sse::opening_frame(self.feed.retry_ms)
    }

    /// Does `work` before reading the queue again.
    fn catch_up(&mut self, work: VecDeque<Work>) {
        if work.is_empty() {
            return;
        }
        self.catch_up = Some(Box::new(CatchUp {
            ready: VecDeque::new(),
            ends: false,
            work,
            fetch: None,
        }));
        self.stage = Stage::CatchingUp;
    }

    /// The next frame of the catch-up, `None` when it is over (and the
    /// stage has moved on), or pending on a broker read.
    fn poll_catch_up(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let Self {
            stage,
            feed,
            catch_up,
            ..
        } = self;
        let Some(c) = catch_up.as_mut() else {
            *stage = Stage::Live;
            return Poll::Ready(None);
        };
        loop {
            if let Some(frame) = c.ready.pop_front() {
                return Poll::Ready(Some(frame));
            }
            if c.ends {
                *stage = Stage::Done;
                *catch_up = None;
                return Poll::Ready(None);
            }
            if let Some((work, fetch)) = c.fetch.as_mut() {
                let fetched = std::task::ready!(fetch.as_mut().poll(cx));
                let work = *work;
                c.fetch = None;
                match (work, fetched) {
                    (Work::Notice(slot), Fetched::Oldest(oldest)) => {
                        let notice = feed.truncated_notice(slot, notice::UNKNOWN_ID, oldest);
                        c.ready.push_back(notice);
                    }
                    (Work::Replay(slot, mut mode), Fetched::Batch(batch, oldest)) => {
                        match feed.replay_step(slot, &mut mode, batch, oldest) {
                            Step::Frames(frames, done) => {
                                c.ready.extend(frames);
                                // One batch in memory at a time, however
                                // long the replay.
                                if !done {
                                    c.work.push_front(Work::Replay(slot, mode));
                                }
                            }
                            Step::End(notice) => {
                                c.ready.push_back(notice);
                                c.ends = true;
                            }
                        }
                    }
                    // Each fetch is made for its own kind of work (below).
                    _ => {}
                }
                continue;
            }
            let fetch = match c.work.pop_front() {
                Some(work @ Work::Notice(slot)) => (work, feed.fetch_oldest(slot)),
                Some(work @ Work::Replay(slot, mode)) => (work, feed.fetch_batch(slot, mode)),
                None => {
                    *stage = Stage::Live;
                    *catch_up = None;
                    return Poll::Ready(None);
                }
            };
            c.fetch = Some(fetch);
        }
    }
}

impl Stream for FeedStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_frame(cx).map(|frame| frame.map(Ok))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every idle connection holds one of these (boxed in its response
    /// body), and idle memory per connection is a budget (issue 10): 208
    /// bytes when this was written, where the generator's state was 600;
    /// 248 since readers pull (the empty buffer of what one wake pulled,
    /// which allocates only while a burst is read).
    #[test]
    fn an_idle_body_stays_small() {
        let size = std::mem::size_of::<FeedStream>();
        assert!(size <= 248, "{size} bytes");
    }
}
