//! Where a connection starts in each of its streams: live, after a
//! `Last-Event-ID` (an event id on SSER's one-topic stream, a cursor over
//! every stream on a multi-topic one, see `crate::model::cursor`), or from
//! everything history holds, with a truncation notice when history no
//! longer covers what was asked for.

use super::HubError;
use crate::broker::Broker;
use crate::model::cursor::{EARLIEST, StreamSet};
use crate::model::{Position, StreamKey};

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
    /// Stream-named events and cursor ids (several topics, or an
    /// identity's streams), resuming from this `Last-Event-ID`.
    Cursor(Option<String>),
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
    /// Repairing a hole the broker found in history while the connection
    /// was live ([`crate::broker::Item::Gap`]): reported once, then on.
    Repair,
}

/// Where one stream of a connection starts.
#[derive(Debug, Clone, Copy)]
pub(super) struct Start {
    /// The position after which it is sent events.
    pub cursor: Position,
    /// How to replay history before going live, if at all.
    pub replay: Option<Replay>,
    /// It starts with a truncation notice.
    pub truncated: bool,
}

impl Start {
    fn live(head: Position) -> Start {
        Start {
            cursor: head,
            replay: None,
            truncated: false,
        }
    }

    fn everything(truncated: bool) -> Start {
        Start {
            cursor: Position::ZERO,
            replay: Some(Replay::Everything),
            truncated,
        }
    }
}

/// Where each of `streams` starts, given where each one's live feed begins
/// (`heads`, from following it) and what the client asked for. `set` is
/// the connection's stream set when its ids are cursors.
pub(super) async fn plan(
    broker: &dyn Broker,
    streams: &[StreamKey],
    heads: &[Position],
    set: Option<&StreamSet>,
    ask: Ask,
) -> Result<Vec<Start>, HubError> {
    let all = |start: Start| vec![start; streams.len()];
    let live = || heads.iter().map(|&head| Start::live(head)).collect();
    Ok(match ask {
        Ask::One(Resume::Live) | Ask::Cursor(None) => live(),
        Ask::Cursor(Some(id)) if id.is_empty() => live(),
        Ask::One(Resume::Earliest) => all(Start::everything(false)),
        Ask::Cursor(Some(id)) if id == EARLIEST => all(Start::everything(false)),
        Ask::One(Resume::Unreadable) => all(Start::everything(true)),
        Ask::One(Resume::After(id)) => match broker.find(&streams[0], &id).await? {
            Some(position) => all(Start {
                cursor: position,
                replay: Some(Replay::Exact),
                truncated: false,
            }),
            None => all(Start::everything(true)),
        },
        Ask::Cursor(Some(cursor)) => {
            // A cursor of other streams, or no cursor at all: unknown.
            let Some(positions) = set.and_then(|set| set.decode(&cursor)) else {
                return Ok(all(Start::everything(true)));
            };
            let mut starts = Vec::with_capacity(streams.len());
            for ((key, &head), position) in streams.iter().zip(heads).zip(positions) {
                starts.push(if position > head {
                    // Ahead of the stream: not a position it gave out.
                    Start::everything(true)
                } else if !broker.holds_after(key, position).await? {
                    Start {
                        cursor: position,
                        replay: Some(Replay::Everything),
                        truncated: true,
                    }
                } else {
                    Start {
                        cursor: position,
                        replay: Some(Replay::Exact),
                        truncated: false,
                    }
                });
            }
            starts
        }
    })
}
