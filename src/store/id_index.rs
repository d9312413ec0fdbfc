//! Which retained event a `Last-Event-ID` names, without scanning history.
//!
//! [`TopicLog::find`](super::TopicLog::find) must return the sequence of the
//! OLDEST retained event with a given id. Ids are of two kinds:
//!
//! - **server-made**: the event's sequence as a decimal string (`id ==
//!   seq.to_string()`); the id *is* the sequence, so it needs no index;
//! - **publisher-chosen**: any other string, which may repeat and may even
//!   look like a number (a publisher's `"5"` at sequence 9).
//!
//! [`IdIndex`] maps each publisher-chosen id to the sequences still held with
//! it, oldest first, and knows which sequences are held at all (the range
//! from the oldest to the newest, minus any gaps a failed commit left), so
//! [`IdIndex::find`] answers with a hash lookup and two binary searches:
//! the oldest indexed occurrence, or the server-made event whose sequence the
//! id names, whichever is older.
//!
//! **Memory is bounded by retention**: the index holds one entry per
//! *retained* event with a publisher-chosen id (and one per gap, each of
//! which sits just before a retained event), and its owner trims it in the
//! same step that drops events from history, so it never outgrows the
//! history it describes.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct IdIndex {
    /// Publisher-chosen id → sequences still held with it, oldest first.
    by_id: HashMap<Arc<str>, VecDeque<u64>>,
    /// The same events in sequence order: trimming pops from the front, and
    /// "does this sequence carry a publisher-chosen id" is a binary search.
    order: VecDeque<(u64, Arc<str>)>,
    /// Oldest and newest held sequence; `None` when nothing is held.
    held: Option<(u64, u64)>,
    /// Inclusive ranges inside `held` that are not held (sequences whose
    /// append failed), in order.
    gaps: VecDeque<(u64, u64)>,
}

impl IdIndex {
    pub fn new() -> IdIndex {
        IdIndex::default()
    }

    /// Whether `id` is the one the server would make for `seq` (its decimal
    /// form, without sign or leading zeros). Does not allocate.
    pub fn is_server_id(seq: u64, id: &str) -> bool {
        let b = id.as_bytes();
        !b.is_empty()
            && b.len() <= 20
            && b.iter().all(u8::is_ascii_digit)
            && (b.len() == 1 || b[0] != b'0')
            && id.parse::<u64>() == Ok(seq)
    }

    /// Records a newly held event. Sequences must increase; one that does
    /// not is ignored (it cannot happen: logs append in sequence order).
    pub fn push(&mut self, seq: u64, id: &Arc<str>) {
        self.push_with(seq, id, || id.clone());
    }

    /// [`push`](Self::push) for an id read back from disk: allocates only
    /// if the id is publisher-chosen.
    pub fn push_str(&mut self, seq: u64, id: &str) {
        self.push_with(seq, id, || Arc::from(id));
    }

    fn push_with(&mut self, seq: u64, id: &str, to_arc: impl FnOnce() -> Arc<str>) {
        match self.held {
            Some((_, last)) if seq <= last => {
                debug_assert!(false, "sequence {seq} appended after {last}");
                return;
            }
            Some((first, last)) => {
                if seq > last + 1 {
                    self.gaps.push_back((last + 1, seq - 1));
                }
                self.held = Some((first, seq));
            }
            None => self.held = Some((seq, seq)),
        }
        if !IdIndex::is_server_id(seq, id) {
            let id = to_arc();
            self.by_id.entry(id.clone()).or_default().push_back(seq);
            self.order.push_back((seq, id));
        }
    }

    /// Forgets every event older than `first`, the oldest sequence the log
    /// still holds after trimming (`None`: it holds nothing).
    pub fn trim_to(&mut self, first: Option<u64>) {
        let Some(first) = first else {
            self.clear();
            return;
        };
        match self.held {
            None => return,
            Some((_, last)) if first > last => {
                self.clear();
                return;
            }
            Some((old, last)) => self.held = Some((old.max(first), last)),
        }
        while let Some((seq, _)) = self.order.front()
            && *seq < first
        {
            if let Some((seq, id)) = self.order.pop_front()
                && let Some(seqs) = self.by_id.get_mut(&id)
            {
                // Per id, sequences are in order too: this one is the front.
                debug_assert_eq!(seqs.front(), Some(&seq));
                seqs.pop_front();
                if seqs.is_empty() {
                    self.by_id.remove(&id);
                }
            }
        }
        while let Some(gap) = self.gaps.front_mut() {
            if gap.1 < first {
                self.gaps.pop_front();
            } else {
                gap.0 = gap.0.max(first);
                break;
            }
        }
    }

    /// Forgets everything (the log was emptied or destroyed).
    pub fn clear(&mut self) {
        *self = IdIndex::default();
    }

    /// Whether an event with this sequence is held.
    pub fn holds(&self, seq: u64) -> bool {
        let Some((first, last)) = self.held else {
            return false;
        };
        if seq < first || seq > last {
            return false;
        }
        let i = self.gaps.partition_point(|&(_, end)| end < seq);
        self.gaps.get(i).is_none_or(|&(start, _)| start > seq)
    }

    /// The sequence of the oldest held event with this id, if any.
    pub fn find(&self, id: &str) -> Option<u64> {
        let chosen = self.by_id.get(id).and_then(|seqs| seqs.front().copied());
        // The held event at the sequence this id names, if its id is the
        // server-made one (i.e. not a publisher-chosen id).
        let server = id.parse::<u64>().ok().filter(|&seq| {
            IdIndex::is_server_id(seq, id)
                && self.holds(seq)
                && self.order.binary_search_by_key(&seq, |&(s, _)| s).is_err()
        });
        match (chosen, server) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Number of indexed (publisher-chosen id) events.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(events: &[(u64, &str)]) -> IdIndex {
        let mut ix = IdIndex::new();
        for &(seq, id) in events {
            ix.push(seq, &Arc::from(id));
        }
        ix
    }

    #[test]
    fn server_ids_are_exactly_the_decimal_sequence() {
        assert!(IdIndex::is_server_id(5, "5"));
        assert!(IdIndex::is_server_id(0, "0"));
        assert!(IdIndex::is_server_id(u64::MAX, &u64::MAX.to_string()));
        for (seq, id) in [
            (5, "05"),
            (5, "+5"),
            (5, "6"),
            (5, ""),
            (5, " 5"),
            (5, "x"),
            (0, "00"),
        ] {
            assert!(!IdIndex::is_server_id(seq, id), "{id:?} at {seq}");
        }
        assert!(!IdIndex::is_server_id(1, "18446744073709551617"));
    }

    #[test]
    fn server_ids_are_not_indexed() {
        let ix = index(&[(1, "1"), (2, "2"), (3, "3")]);
        assert!(ix.is_empty());
        assert_eq!(ix.find("2"), Some(2));
        assert_eq!(ix.find("4"), None);
        assert_eq!(ix.find("0"), None);
        assert_eq!(ix.find("02"), None);
    }

    #[test]
    fn a_publisher_id_that_names_a_sequence_hides_it() {
        // Seq 2 carries the publisher's "x": "2" names no held event.
        let ix = index(&[(1, "1"), (2, "x"), (3, "3")]);
        assert_eq!(ix.find("2"), None);
        assert_eq!(ix.find("x"), Some(2));
        assert_eq!(ix.len(), 1);
    }

    #[test]
    fn the_oldest_of_a_server_and_a_publisher_id_wins() {
        // Publisher "1" after server "1": the server's is older.
        let ix = index(&[(1, "1"), (2, "2"), (3, "3"), (4, "1"), (5, "5")]);
        assert_eq!(ix.find("1"), Some(1));
        // Publisher "5" before server "5": the publisher's is older.
        let ix = index(&[(1, "1"), (2, "5"), (3, "3"), (4, "4"), (5, "5")]);
        assert_eq!(ix.find("5"), Some(2));
    }

    #[test]
    fn a_reused_id_resolves_to_its_oldest_held_occurrence() {
        let mut ix = index(&[(1, "order-1"), (2, "2"), (3, "order-1"), (4, "order-1")]);
        assert_eq!(ix.find("order-1"), Some(1));
        ix.trim_to(Some(2));
        assert_eq!(ix.find("order-1"), Some(3));
        ix.trim_to(Some(4));
        assert_eq!(ix.find("order-1"), Some(4));
        assert_eq!(ix.find("2"), None, "trimmed");
        ix.trim_to(Some(5));
        assert_eq!(ix.find("order-1"), None);
        assert!(ix.is_empty());
        assert!(ix.by_id.is_empty(), "emptied ids are removed");
    }

    #[test]
    fn trimming_the_older_occurrence_leaves_the_newer() {
        let mut ix = index(&[(1, "1"), (2, "2"), (3, "3"), (4, "1"), (5, "5")]);
        ix.trim_to(Some(2));
        assert_eq!(ix.find("1"), Some(4));
        ix.trim_to(None);
        assert_eq!(ix.find("1"), None);
        assert_eq!(ix.find("5"), None);
        // Appends continue after an emptied index.
        ix.push(6, &Arc::from("1"));
        assert_eq!(ix.find("1"), Some(6));
        assert_eq!(ix.find("6"), None);
    }

    #[test]
    fn gaps_are_not_held() {
        // Seqs 3 and 4 were never stored (a failed commit).
        let mut ix = index(&[(1, "1"), (2, "2"), (5, "5"), (7, "7")]);
        assert!(ix.holds(2) && ix.holds(5) && ix.holds(7));
        assert!(!ix.holds(3) && !ix.holds(4) && !ix.holds(6) && !ix.holds(8));
        assert_eq!(ix.find("3"), None);
        assert_eq!(ix.find("5"), Some(5));
        ix.trim_to(Some(5));
        assert!(!ix.holds(4) && ix.holds(5) && !ix.holds(6));
        assert_eq!(ix.gaps.len(), 1, "gaps before the oldest are dropped");
        ix.trim_to(Some(8));
        assert!(!ix.holds(7));
        assert_eq!(ix.held, None);
    }

    #[test]
    fn clear_forgets_everything() {
        let mut ix = index(&[(1, "a"), (2, "2")]);
        ix.clear();
        assert_eq!((ix.find("a"), ix.find("2")), (None, None));
    }
}
