//! Presence: who is online, as events other services can follow.
//!
//! [`PresenceTracker`] turns connections opening and closing into
//! [`PresenceEvent`]s (`user_online`, `user_offline`, `device_online`,
//! `device_offline`), absorbing reconnects within a grace period; it hands
//! them, in order, to a [`PresenceSink`]. [`Webhooks`] is one such sink: it
//! POSTs each event, signed, to the configured URLs without ever making the
//! tracker wait. The presence stream (`GET /api/v1/presence/stream`) is fed
//! by another ([`stream`]). The hub's registry drives the tracker through
//! [`hook`]: identity connections opening and closing, with their reasons.
//! On a cluster member, [`cluster`] stands between the tracker and the
//! sinks: the Redis ledger decides which transitions are cluster-wide (and
//! who emits them), and a survivor emits a dead node's offlines
//! (`node_lost`).
//!
//! | file | role |
//! |---|---|
//! | `event` | the event and its JSON shape |
//! | `tracker` | connection open/close → events, the grace period, shutdown flush |
//! | `online` | the tracker's book: open connections per user and device, armed offlines |
//! | `sink` | where the tracker's events go (a channel, several sinks) |
//! | `webhook` | bounded per-URL queues, workers, delivery, metrics |
//! | `signature` | the HMAC-SHA256 signature and its verification |
//! | `retry` | which failures are retried, exponential back-off with jitter |
//! | `hook` | the tracker as the hub registry's presence hook |
//! | `stream` | the sink that publishes onto the presence stream |
//! | `cluster` | presence across nodes: the ledger writer, dead-node clean-up |

pub mod cluster;
pub mod event;
pub mod hook;
mod online;
pub mod retry;
pub mod signature;
pub mod sink;
pub mod stream;
pub mod tracker;
#[cfg(test)]
mod tracker_tests;
pub mod webhook;

pub use event::{PresenceEvent, PresenceKind, PresenceReason};
pub use online::PresenceCounts;
pub use signature::Signer;
pub use sink::PresenceSink;
pub use tracker::{
    PresenceIdentity, PresenceLease, PresenceSettings, PresenceTracker, WeakPresenceTracker,
};
pub use webhook::{WebhookError, WebhookSettings, Webhooks};
