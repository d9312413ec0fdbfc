//! Which users a device name belongs to.
//!
//! go-sse-broker's back-ends name devices alone (`/send?device=ax001`),
//! because there a device id was global: the MD5 of its name, so any user
//! connecting with another user's device name pushed that user off. Here a
//! device belongs to its user (the registry keys devices by user), so a
//! name alone has to be resolved to the users who have a device of that
//! name: this directory remembers them, as `/events` opens streams.
//!
//! A holder is remembered while it is connected and for `memory` after it
//! left (`identity.inbox.maxAge`: as long as its inbox keeps what it
//! missed), so a send by device name during a reconnect still reaches the
//! device's inbox and is replayed, where the original dropped it. Expired
//! entries are dropped when met and swept whenever the map has doubled
//! since the last sweep, so memory follows the devices seen recently.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::model::now_ms;

pub struct Devices {
    inner: Mutex<Directory>,
    memory_ms: u64,
}

#[derive(Default)]
struct Directory {
    by_name: HashMap<Arc<str>, Vec<Holder>>,
    holders: usize,
    swept_at: usize,
}

struct Holder {
    user: Arc<str>,
    /// Its streams open now (a take-over briefly makes two).
    open: usize,
    /// When it was last seen (connected or left), Unix ms.
    seen_ms: u64,
}

impl Holder {
    fn live(&self, now: u64, memory_ms: u64) -> bool {
        self.open > 0 || now.saturating_sub(self.seen_ms) <= memory_ms
    }
}

/// A stream's hold on its device's entry; dropped when the stream ends.
pub struct Lease {
    devices: Arc<Devices>,
    device: Arc<str>,
    user: Arc<str>,
}

impl Devices {
    pub fn new(memory: Duration) -> Arc<Devices> {
        Arc::new(Devices {
            inner: Mutex::new(Directory::default()),
            memory_ms: u64::try_from(memory.as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// `user` has a stream open on `device` until the lease is dropped.
    pub fn open(self: &Arc<Self>, device: &str, user: &str) -> Lease {
        let now = now_ms();
        let mut d = self.inner.lock();
        let device: Arc<str> = Arc::from(device);
        let user: Arc<str> = Arc::from(user);
        let holders = d.by_name.entry(device.clone()).or_default();
        let added = match holders.iter_mut().find(|h| h.user == user) {
            Some(h) => {
                h.open += 1;
                h.seen_ms = now;
                false
            }
            None => {
                holders.push(Holder {
                    user: user.clone(),
                    open: 1,
                    seen_ms: now,
                });
                true
            }
        };
        if added {
            d.holders += 1;
            if d.holders > 2 * d.swept_at + 1024 {
                self.sweep(&mut d, now);
            }
        }
        Lease {
            devices: self.clone(),
            device,
            user,
        }
    }

    /// The users with a device named `device`, most recently seen first
    /// (connected ones count as seen now).
    pub fn users(&self, device: &str) -> Vec<Arc<str>> {
        let now = now_ms();
        let mut d = self.inner.lock();
        let Some(holders) = d.by_name.get_mut(device) else {
            return Vec::new();
        };
        let before = holders.len();
        holders.retain(|h| h.live(now, self.memory_ms));
        let dropped = before - holders.len();
        let mut found: Vec<(u64, Arc<str>)> = holders
            .iter()
            .map(|h| {
                (
                    if h.open > 0 { u64::MAX } else { h.seen_ms },
                    h.user.clone(),
                )
            })
            .collect();
        if holders.is_empty() {
            d.by_name.remove(device);
        }
        d.holders -= dropped;
        found.sort_by_key(|(seen, _)| std::cmp::Reverse(*seen));
        found.into_iter().map(|(_, user)| user).collect()
    }

    fn sweep(&self, d: &mut Directory, now: u64) {
        d.by_name.retain(|_, holders| {
            holders.retain(|h| h.live(now, self.memory_ms));
            !holders.is_empty()
        });
        d.holders = d.by_name.values().map(Vec::len).sum();
        d.swept_at = d.holders;
    }

    fn close(&self, device: &str, user: &str) {
        let mut d = self.inner.lock();
        if let Some(h) = d
            .by_name
            .get_mut(device)
            .and_then(|holders| holders.iter_mut().find(|h| &*h.user == user))
        {
            h.open = h.open.saturating_sub(1);
            h.seen_ms = now_ms();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().holders
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.devices.close(&self.device, &self.user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: Vec<Arc<str>>) -> Vec<String> {
        v.iter().map(|u| u.to_string()).collect()
    }

    #[test]
    fn a_name_resolves_to_each_user_that_has_it() {
        let devices = Devices::new(Duration::from_secs(60));
        let a = devices.open("ax001", "alice");
        let _b = devices.open("ax001", "bob");
        let _c = devices.open("ax002", "alice");
        let mut both = names(devices.users("ax001"));
        both.sort();
        assert_eq!(both, ["alice", "bob"]);
        assert_eq!(names(devices.users("ax002")), ["alice"]);
        assert!(devices.users("nope").is_empty());
        drop(a);
        // Alice left ax001 but is remembered; connected Bob comes first.
        assert_eq!(names(devices.users("ax001")), ["bob", "alice"]);
    }

    #[test]
    fn holders_that_left_are_forgotten_after_the_memory() {
        let devices = Devices::new(Duration::ZERO);
        let lease = devices.open("ax001", "alice");
        let again = devices.open("ax001", "alice");
        drop(lease);
        assert_eq!(
            names(devices.users("ax001")),
            ["alice"],
            "one stream still open"
        );
        drop(again);
        std::thread::sleep(Duration::from_millis(2));
        assert!(devices.users("ax001").is_empty());
        assert_eq!(devices.len(), 0, "memory follows the devices");
    }

    #[test]
    fn a_sweep_bounds_the_directory() {
        let devices = Devices::new(Duration::ZERO);
        for i in 0..5000 {
            drop(devices.open(&format!("d{i}"), "u"));
        }
        std::thread::sleep(Duration::from_millis(2));
        drop(devices.open("last", "u"));
        for i in 5000..7100 {
            drop(devices.open(&format!("d{i}"), "u"));
        }
        assert!(devices.len() < 5000, "swept: {}", devices.len());
    }
}
