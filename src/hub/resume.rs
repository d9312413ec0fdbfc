//! Where a connection starts in each of its streams: live, after a
//! `Last-Event-ID` (an event id on SSER's one-topic stream, a cursor over
//! every stream on a multi-topic one, see `crate::model::cursor`), or from
//! everything history holds, with a truncation notice when history no
//! longer covers what was asked for.

use super::HubError;
use super::feed::Feed;
use super::framing::Framing;
use crate::model::Position;
use crate::model::cursor::EARLIEST;

/// Where a single-topic subscriber asked to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Only what is published from now on.
    Live,
    /// Everything after the event with this id (`Last-Event-ID`).
    After(String),
    /// Everything history still holds (`?last_event_id=earliest`).
    Earliest,
    /// The client sent an id that cannot name any event (its bytes are not
    /// UTF-8): answered like an id no longer in history, with the explicit
    /// truncation notice and everything retained, never a silent live-only
    /// stream.
    Unreadable,
}

impl Resume {
    /// The reserved `Last-Event-ID` value that asks for all retained history.
    pub const EARLIEST: &'static str = EARLIEST;

    pub fn from_last_event_id(value: Option<&str>) -> Resume {
        match value {
            None | Some("") => Resume::Live,
            Some(EARLIEST) => Resume::Earliest,
            Some(id) => Resume::After(id.to_string()),
        }
    }
}

/// What a connection asked for.
pub(crate) enum Ask {
    /// SSER's one-topic stream: shared frames, ids as published.
    One(Resume),
    /// Topic-named events and cursor ids, resuming from this `Last-Event-ID`.
    Topics(Option<String>),
}

/// How one stream is replayed from history.
#[derive(Debug, Clone, Copy)]
pub(super) enum Replay {
    /// Everything after the cursor that history holds; holes are expected
    /// (`earliest`, or after a truncation notice).
    Everything,
    /// Resuming after a known position: a hole is reported once.
    Exact,
    /// Catching up after falling behind: a hole ends the connection.
    Lagged,
}

impl Feed {
    /// Sets where each stream starts (cursor, replay, notice).
    pub(super) async fn plan(&mut self, ask: Ask) -> Result<(), HubError> {
        match ask {
            Ask::One(Resume::Live) | Ask::Topics(None) => {}
            Ask::One(Resume::Earliest) => self.replay_all_from_start(false),
            Ask::One(Resume::Unreadable) => self.replay_all_from_start(true),
            Ask::Topics(Some(id)) if id.is_empty() => {}
            Ask::Topics(Some(id)) if id == EARLIEST => self.replay_all_from_start(false),
            Ask::One(Resume::After(id)) => {
                let key = self.key(0).clone();
                match self.broker.find(&key, &id).await? {
                    Some(position) => {
                        self.streams[0].cursor = position;
                        self.streams[0].start = Some(Replay::Exact);
                    }
                    None => self.replay_all_from_start(true),
                }
            }
            Ask::Topics(Some(cursor)) => {
                let Framing::Topics { set, .. } = &self.framing else {
                    return Ok(());
                };
                let Some(positions) = set.decode(&cursor) else {
                    // A cursor of other streams, or no cursor at all.
                    self.replay_all_from_start(true);
                    return Ok(());
                };
                for (slot, position) in positions.into_iter().enumerate() {
                    let head = self.streams[slot].cursor;
                    let holds = position <= head
                        && self.broker.holds_after(self.key(slot), position).await?;
                    let stream = &mut self.streams[slot];
                    if position > head {
                        // Ahead of the stream: not a position it gave out.
                        stream.truncated = true;
                        stream.start = Some(Replay::Everything);
                        stream.cursor = Position::ZERO;
                    } else if !holds {
                        stream.truncated = true;
                        stream.start = Some(Replay::Everything);
                        stream.cursor = position;
                    } else {
                        stream.start = Some(Replay::Exact);
                        stream.cursor = position;
                    }
                }
            }
        }
        Ok(())
    }

    fn replay_all_from_start(&mut self, truncated: bool) {
        for stream in self.streams.iter_mut() {
            stream.start = Some(Replay::Everything);
            stream.truncated = truncated;
            stream.cursor = Position::ZERO;
        }
    }
}
