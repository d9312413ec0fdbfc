//! Identity inboxes (an application's broadcast, a user's, a device's) and
//! the presence feed in a cluster: streams in Redis like topics, so a send
//! made on any node reaches the identity's connections on every node, and a
//! client that reconnects to another node with `Last-Event-ID` resumes its
//! inbox exactly.
//!
//! They use everything topics do (the Stream as history, a live channel
//! per stream that a node listens to only while it has followers, gap
//! repair, validation of what is read back), with three differences:
//! - No registry: an inbox exists implicitly. Opening one only makes its
//!   live side on this node ([`super::live::LiveStream`]); the sweep
//!   forgets that again once nobody here follows it (its history stays in
//!   Redis), so a node holds memory only for the inboxes it serves.
//! - Retention (`identity.inbox.*`, and `historySize` for the presence
//!   feed) is applied in Redis, by the publish script
//!   ([`publish::append_inbox`]): `MAXLEN ~` caps the length; each entry
//!   carries its publish time, expired head entries are deleted at each
//!   publish and skipped when read, and the stream and its counter expire
//!   (`PEXPIRE`) with the age bound, renewed by every publish. Redis has no
//!   per-entry expiry; a sweep over every inbox key would cost a scan of
//!   Redis per node, and the key TTL alone would keep an active inbox's
//!   old entries forever. Trimming where the entries are written, plus the
//!   TTL for inboxes nobody sends to any more, bounds both with no
//!   background work: the inboxes of users who never come back vanish from
//!   Redis when their newest event expires. (With `maxAge: 0` they are kept
//!   as long as Redis keeps them, capped in length.)
//! - Positions: an inbox whose counter expired starts again at the clock in
//!   microseconds (as a single node's in-memory inbox does), never at 1,
//!   so a cursor from an earlier life never names another event.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::live::LiveStream;
use super::{RedisBroker, publish};
use crate::broker::{BrokerError, NewEvent, Published};
use crate::model::StreamKey;

/// A duration in whole milliseconds, as Redis takes them.
pub(super) fn millis(age: Duration) -> u64 {
    u64::try_from(age.as_millis()).unwrap_or(u64::MAX)
}

impl RedisBroker {
    /// Makes `stream`'s live side on this node unless it has one.
    pub(super) fn open_system(&self, stream: &StreamKey, cap: u64, max_age: Option<Duration>) {
        if self.shared.inboxes.read().contains_key(stream) {
            return;
        }
        self.shared
            .inboxes
            .write()
            .entry(stream.clone())
            .or_insert_with(|| {
                let names = self.shared.keys.names(stream);
                LiveStream::new(stream.clone(), names, cap, max_age, None)
            });
    }

    /// Forgets the inboxes nobody here follows and this node no longer
    /// listens to (the sweep before stopped listening); how many. A follow
    /// that races with it finds the stream closed and opens it again.
    pub(super) fn forget_idle_inboxes(&self) -> usize {
        let idle: Vec<(StreamKey, Arc<LiveStream>)> = self
            .shared
            .inboxes
            .read()
            .iter()
            .filter(|(key, live)| {
                key.is_inbox() && live.followers.is_empty() && !live.wanted.load(Ordering::Relaxed)
            })
            .map(|(key, live)| (key.clone(), live.clone()))
            .collect();
        let mut forgotten = 0;
        for (key, live) in idle {
            // A first follow holds this while it subscribes.
            let Ok(_subscribing) = live.subscribing.try_lock() else {
                continue;
            };
            let mut inboxes = self.shared.inboxes.write();
            let current = inboxes
                .get(&key)
                .is_some_and(|held| Arc::ptr_eq(held, &live));
            if current && live.close_if_idle() {
                inboxes.remove(&key);
                forgotten += 1;
            }
        }
        forgotten
    }

    /// Publishes on an inbox or the presence feed. Never `NotFound`: the
    /// event is in Redis even if the sweep forgot the stream meanwhile (a
    /// retry would send it twice).
    pub(super) async fn publish_inbox(
        &self,
        live: &LiveStream,
        event: NewEvent,
    ) -> Result<Published, BrokerError> {
        let target = publish::InboxTarget {
            names: &live.names,
            cap: live.cap,
            max_age: live.max_age,
        };
        let seq = publish::append_inbox(
            &self.shared.conn,
            &self.shared.inbox_script,
            target,
            &event,
            self.shared.wait_replicas,
            self.wait_ms(),
        )
        .await?;
        Ok(live.appended(seq, &event))
    }
}
