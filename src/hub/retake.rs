//! Keeps a taken-over connection from taking its device straight back.
//!
//! To an `EventSource` the end of a stream is an ordinary end: after
//! `sser.taken_over` it reconnects `retry` later, takes the device over in
//! turn, and two tabs of one device trade places for ever. So when a
//! take-over ends a connection, the registry remembers, for the device and
//! for `identity.takeoverGuard`, the `id:` that connection's client will
//! send back as `Last-Event-ID` (the last event it was sent, else the one
//! it resumed from). A connection of that device arriving with exactly that
//! `Last-Event-ID` while someone holds the device is the automatic
//! reconnect of the one just replaced: it is refused with 409, which makes
//! an `EventSource` stop for good (any status but 200 does).
//!
//! What is never refused: a connection without `Last-Event-ID` (a new tab,
//! a new `EventSource`: how a page deliberately takes its device back), the
//! new owner's own reconnects (their ids are not the victim's), and any
//! reconnect once the device is free or the guard has run out. A newcomer
//! that presents the very id the victim was last sent is taken for the
//! victim's own client coming back (a phone that reconnected before the
//! server saw its old socket die) and leaves no guard; so two tabs that
//! both resume from the same stored id are not told apart. A victim
//! that was sent no event and resumed from none has no id to recognise it
//! by, so nothing is remembered for it: its reconnect takes over like a new
//! tab (the page has to close it on `sser.taken_over`).
//!
//! Per node: only a take-over within one node leaves a guard, and it is
//! recognised when the victim's reconnect lands on that node again (sticky
//! sessions). A take-over across nodes (the newcomer on another node than
//! the victim) leaves none: the victim's node does not see the newcomer's
//! `Last-Event-ID`, so it cannot tell a phone's own reconnect from a rival.

use std::collections::HashMap;
use std::time::Duration;

use super::admission::BlockScope;
use super::connection::Owner;
use crate::model::now_ms;

/// The ids of recently taken-over connections, per device, until their
/// guard runs out. Expired entries are dropped when met and swept when the
/// map has doubled since the last sweep, so memory follows the guards
/// still running.
#[derive(Default)]
pub(crate) struct Retakes {
    marks: HashMap<BlockScope, Mark>,
    swept_at_len: usize,
}

struct Mark {
    last_event_id: Box<str>,
    until_ms: u64,
}

impl Retakes {
    /// `owner`'s connection was just taken over; its client will reconnect
    /// with `last_event_id`. A guard of zero remembers nothing.
    pub fn taken_over(&mut self, owner: &Owner, last_event_id: Option<String>, guard: Duration) {
        let (Some(_), Some(last_event_id)) = (&owner.device, last_event_id) else {
            return;
        };
        if guard.is_zero() {
            return;
        }
        let now = now_ms();
        let until_ms = now.saturating_add(u64::try_from(guard.as_millis()).unwrap_or(u64::MAX));
        self.marks.insert(
            BlockScope::of(owner),
            Mark {
                last_event_id: last_event_id.into_boxed_str(),
                until_ms,
            },
        );
        if self.marks.len() > 2 * self.swept_at_len + 64 {
            self.marks.retain(|_, m| m.until_ms > now);
            self.swept_at_len = self.marks.len();
        }
    }

    /// Whether a connection of `owner` arriving with `last_event_id` is the
    /// reconnect of the connection a take-over just replaced.
    pub fn is_retake(&mut self, owner: &Owner, last_event_id: Option<&str>) -> bool {
        let Some(last_event_id) = last_event_id else {
            return false;
        };
        if self.marks.is_empty() || owner.device.is_none() {
            return false;
        }
        let scope = BlockScope::of(owner);
        let Some(mark) = self.marks.get(&scope) else {
            return false;
        };
        if mark.until_ms <= now_ms() {
            self.marks.remove(&scope);
            return false;
        }
        *mark.last_event_id == *last_event_id
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.marks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUARD: Duration = Duration::from_secs(60);

    #[test]
    fn only_the_victims_own_id_is_refused_within_the_guard() {
        let mut retakes = Retakes::default();
        let phone = Owner::new("shop", "u1", Some("phone"));
        retakes.taken_over(&phone, Some("c-7".into()), GUARD);
        assert!(retakes.is_retake(&phone, Some("c-7")));
        assert!(!retakes.is_retake(&phone, None), "a new tab");
        assert!(!retakes.is_retake(&phone, Some("c-8")), "another id");
        let laptop = Owner::new("shop", "u1", Some("laptop"));
        assert!(!retakes.is_retake(&laptop, Some("c-7")), "another device");
        let other = Owner::new("shop", "u2", Some("phone"));
        assert!(!retakes.is_retake(&other, Some("c-7")), "another user");

        retakes.taken_over(&phone, Some("c-9".into()), GUARD);
        assert!(!retakes.is_retake(&phone, Some("c-7")), "the newest wins");
        assert!(retakes.is_retake(&phone, Some("c-9")));
    }

    #[test]
    fn nothing_is_kept_without_an_id_a_device_or_a_guard() {
        let mut retakes = Retakes::default();
        retakes.taken_over(&Owner::new("shop", "u1", Some("phone")), None, GUARD);
        retakes.taken_over(&Owner::new("shop", "u1", None), Some("c".into()), GUARD);
        retakes.taken_over(
            &Owner::new("shop", "u1", Some("phone")),
            Some("c".into()),
            Duration::ZERO,
        );
        assert_eq!(retakes.len(), 0);
    }

    #[test]
    fn a_guard_runs_out_and_is_dropped() {
        let mut retakes = Retakes::default();
        let phone = Owner::new("shop", "u1", Some("phone"));
        retakes.taken_over(&phone, Some("c".into()), GUARD);
        if let Some(mark) = retakes.marks.get_mut(&BlockScope::of(&phone)) {
            mark.until_ms = now_ms() - 1;
        }
        assert!(!retakes.is_retake(&phone, Some("c")));
        assert_eq!(retakes.len(), 0);
    }
}
