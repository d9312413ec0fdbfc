//! Resume cursors for a connection that follows several streams.
//!
//! A connection on one stream keeps today's SSE ids (the publisher's own id,
//! or the event's sequence): SSER clients see no change. A connection on
//! several streams sends, as every event's `id:`, a cursor holding its last
//! position in **each** of its streams:
//!
//! ```text
//! 3f2a9c01.41.0.17
//! ^^^^^^^^ ^^ ^ ^^  positions, in the connection's stream order
//! check of the stream set
//! ```
//!
//! `Last-Event-ID` then resumes every stream exactly after its own position:
//! no gap and no duplicate, whatever order the streams' events were
//! interleaved in. The check (FNV-1a of the ordered stream keys) makes a
//! cursor from a different set of streams unknown rather than misapplied;
//! an unknown cursor is answered like an unknown id on one stream (a
//! truncation notice, then everything retained), never with silence.
//!
//! Why not one order shared by all streams (a global sequence, so the id
//! could stay a single number)? Durable streams release events only after
//! their commit, and commits of different streams finish out of global
//! order: a client could see global number 8 before 7 and, resuming after
//! 8, lose 7. Keeping it exact would mean holding every stream back behind
//! the slowest commit, and in a cluster a counter every node agrees on for
//! every publish. Per-stream positions need neither; the price is an id
//! that grows with the number of streams (a few bytes each).

use std::fmt::Write;

use super::{Position, StreamKey};

/// The `Last-Event-ID` (or `?last_event_id=`) that asks for everything
/// history still holds, on one stream or several. No event may have this id.
pub const EARLIEST: &str = "earliest";

/// The fingerprint of a connection's ordered list of streams: what its
/// cursors are checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSet {
    check: u32,
    len: usize,
}

impl StreamSet {
    pub fn of(streams: &[StreamKey]) -> StreamSet {
        // FNV-1a: stable across versions, processes and nodes (std's hasher
        // is randomly keyed).
        let mut hash: u32 = 0x811c_9dc5;
        let mut eat = |bytes: &[u8]| {
            for &b in bytes {
                hash ^= u32::from(b);
                hash = hash.wrapping_mul(0x0100_0193);
            }
        };
        let mut name = String::new();
        for key in streams {
            name.clear();
            let _ = write!(name, "{key}");
            eat(name.as_bytes());
            eat(b"\n");
        }
        StreamSet {
            check: hash,
            len: streams.len(),
        }
    }

    /// Appends the cursor for `positions` (one per stream, in order) to
    /// `out` (ASCII only).
    pub fn encode_into(&self, positions: impl IntoIterator<Item = Position>, out: &mut Vec<u8>) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for shift in (0..8).rev() {
            out.push(HEX[((self.check >> (shift * 4)) & 0xf) as usize]);
        }
        for p in positions {
            out.push(b'.');
            p.append_to(out);
        }
    }

    pub fn encode(&self, positions: &[Position]) -> String {
        let mut out = Vec::with_capacity(9 + positions.len() * 8);
        self.encode_into(positions.iter().copied(), &mut out);
        // Only ASCII digits, hex, '.' and '-' were written.
        String::from_utf8(out).unwrap_or_default()
    }

    /// The positions in `cursor`, if it is a cursor of exactly this set of
    /// streams.
    pub fn decode(&self, cursor: &str) -> Option<Vec<Position>> {
        let mut parts = cursor.split('.');
        let check = parts.next()?;
        if check.len() != 8 || u32::from_str_radix(check, 16).ok()? != self.check {
            return None;
        }
        let positions = parts
            .map(|p| p.parse().ok())
            .collect::<Option<Vec<Position>>>()?;
        (positions.len() == self.len).then_some(positions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TopicId;

    fn keys(ids: &[&str]) -> Vec<StreamKey> {
        ids.iter()
            .map(|id| StreamKey::Topic(TopicId::parse(id).unwrap()))
            .collect()
    }

    #[test]
    fn round_trips_and_refuses_other_sets() {
        let abc = StreamSet::of(&keys(&["a", "b", "c"]));
        let positions = [
            Position::from_seq(41),
            Position::ZERO,
            Position::from_parts(1_700_000_000_000, 2),
        ];
        let cursor = abc.encode(&positions);
        assert_eq!(abc.decode(&cursor).as_deref(), Some(&positions[..]));
        // Another set, another order, another length: unknown.
        for other in [&["a", "b"][..], &["c", "b", "a"], &["a", "b", "d"]] {
            assert_eq!(StreamSet::of(&keys(other)).decode(&cursor), None);
        }
        for bad in ["", "7", "earliest", &cursor[1..], &format!("{cursor}.5")] {
            assert_eq!(abc.decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_check_is_stable() {
        // Cursors outlive processes and versions: this text must not change.
        assert_eq!(
            StreamSet::of(&keys(&["a", "b"])).encode(&[Position::from_seq(1), Position::ZERO]),
            "22147012.1.0"
        );
    }
}
