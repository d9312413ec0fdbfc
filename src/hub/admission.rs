//! Whether an identity connection may open: the rules the registry applies
//! under its lock, in the same step as registering the connection, so that
//! two connections arriving together can never both pass a check meant for
//! one of them.
//!
//! - a block left by a kick with `block_seconds` (a user, or one device of
//!   a user);
//! - the most streams one connection may follow;
//! - one live connection per (app, user, device): the older one is taken
//!   over (ended with `sser.taken_over`) or the newer one refused
//!   ([`TakeoverPolicy`]);
//! - the most connections per user and per client IP (a connection being
//!   taken over does not count: it is on its way out);
//! - the automatic reconnect of a connection just taken over is refused
//!   (409) while the device has its new owner ([`super::retake`]).
//!
//! The policy is the identity layer's to choose (configuration says which);
//! it is applied here because only the registry's lock makes it atomic.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::connection::Owner;
use crate::model::now_ms;

/// What happens when a device that already has a live connection opens
/// another.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TakeoverPolicy {
    /// The old connection gets `sser.taken_over` and ends; the new one
    /// opens (the usual wish: a reloaded tab, a phone that reconnected
    /// before the server noticed the old socket was dead).
    #[default]
    Takeover,
    /// The new connection is refused (409); the old one goes on.
    Reject,
}

/// The registry's admission rules (`identity.takeover`,
/// `identity.limits.*`; `lib.rs` converts). Zero means no limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdmissionSettings {
    pub takeover: TakeoverPolicy,
    pub max_connections_per_user: usize,
    pub max_connections_per_ip: usize,
    pub max_streams_per_connection: usize,
    /// How long a taken-over connection's own reconnect is refused
    /// (`identity.takeoverGuard`); zero: never.
    pub takeover_guard: Duration,
}

/// Why an identity connection was not let in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the server is shutting down")]
    Stopping,
    #[error("this identity was kicked and may not reconnect until {until_ms} (Unix ms)")]
    Blocked { until_ms: u64 },
    #[error("this device already has a live connection")]
    DeviceBusy,
    #[error("this connection's device was taken over by a newer connection")]
    TakenOver,
    #[error("too many connections for this user (at most {limit})")]
    UserLimit { limit: usize },
    #[error("too many connections from this address (at most {limit})")]
    IpLimit { limit: usize },
    #[error("too many streams for one connection (at most {limit})")]
    StreamLimit { limit: usize },
}

/// What a block covers: a user (every device, `device: None`), or one
/// device of a user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlockScope {
    pub app: Arc<str>,
    pub user: Arc<str>,
    pub device: Option<Arc<str>>,
}

impl BlockScope {
    /// The narrowest block that covers `owner`'s reconnects: its device if
    /// it has one, else the user.
    pub fn of(owner: &Owner) -> BlockScope {
        BlockScope {
            app: owner.app.clone(),
            user: owner.user.clone(),
            device: owner.device.clone(),
        }
    }
}

/// Blocks left by kicks, until they run out. Expired entries are dropped
/// when met and swept when the map has doubled since the last sweep, so
/// memory follows the blocks still running.
#[derive(Default)]
pub(crate) struct Blocks {
    until: HashMap<BlockScope, u64>,
    swept_at_len: usize,
}

impl Blocks {
    pub fn block(&mut self, scope: BlockScope, until_ms: u64) {
        let entry = self.until.entry(scope).or_insert(0);
        *entry = (*entry).max(until_ms);
        if self.until.len() > 2 * self.swept_at_len + 64 {
            let now = now_ms();
            self.until.retain(|_, until| *until > now);
            self.swept_at_len = self.until.len();
        }
    }

    /// When `owner`'s block ends, if it is blocked now.
    pub fn blocked_until(&mut self, owner: &Owner) -> Option<u64> {
        if self.until.is_empty() {
            return None;
        }
        let now = now_ms();
        // The user, and that device of the user (for an owner without a
        // device, the user twice).
        let mut until = None;
        for device in [None, owner.device.clone()] {
            let scope = BlockScope {
                app: owner.app.clone(),
                user: owner.user.clone(),
                device,
            };
            match self.until.get(&scope) {
                Some(&t) if t > now => until = until.max(Some(t)),
                Some(_) => {
                    self.until.remove(&scope);
                }
                None => {}
            }
        }
        until
    }
}

/// Counts identity connections per client address.
#[derive(Default)]
pub(crate) struct PerIp {
    counts: HashMap<IpAddr, usize>,
}

impl PerIp {
    pub fn get(&self, ip: IpAddr) -> usize {
        self.counts.get(&ip).copied().unwrap_or(0)
    }

    pub fn add(&mut self, ip: IpAddr) {
        *self.counts.entry(ip).or_insert(0) += 1;
    }

    pub fn remove(&mut self, ip: IpAddr) {
        if let Some(n) = self.counts.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_their_scope_and_run_out() {
        let mut blocks = Blocks::default();
        let far = now_ms() + 60_000;
        let phone = Owner::new("shop", "u1", Some("phone"));
        let laptop = Owner::new("shop", "u1", Some("laptop"));
        let other_user_phone = Owner::new("shop", "u2", Some("phone"));
        blocks.block(BlockScope::of(&phone), far);
        assert_eq!(blocks.blocked_until(&phone), Some(far));
        assert_eq!(blocks.blocked_until(&laptop), None);
        assert_eq!(blocks.blocked_until(&other_user_phone), None);

        let user = Owner::new("shop", "u1", None);
        blocks.block(BlockScope::of(&user), far + 1);
        assert_eq!(blocks.blocked_until(&laptop), Some(far + 1));
        assert_eq!(blocks.blocked_until(&phone), Some(far + 1));
        assert_eq!(blocks.blocked_until(&user), Some(far + 1));
        assert_eq!(
            blocks.blocked_until(&Owner::new("blog", "u1", Some("phone"))),
            None,
            "another application"
        );

        blocks.block(BlockScope::of(&other_user_phone), 1);
        assert_eq!(blocks.blocked_until(&other_user_phone), None, "ran out");
        assert_eq!(
            blocks.until.len(),
            2,
            "an expired block is dropped when met"
        );
    }
}
