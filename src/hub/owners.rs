//! The registry's indexes of identity connections: by application, by
//! (application, user) and by (application, user, device). Every lookup is
//! a hash lookup or two and then O(the connections it returns); nothing
//! walks the connections of other users or applications. A device is named
//! within its user (as `POST /api/v1/send` names it): device names are the
//! client's to choose, so one user's device can never be mistaken for, or
//! push off, another user's of the same name.
//!
//! Each set is ordered by connection id, which is what makes paging stable:
//! a page starts after the last id of the previous one, in O(log k).
//!
//! A (user, device) holds at most one connection: the registry decides
//! take-over before it inserts (see `super::connections`). Each identity
//! connection's presence hold (`H`) lives here, beside its id, so topic
//! connections pay nothing for presence.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use super::connection::Owner;

pub(crate) type ConnId = Arc<str>;

pub(crate) struct OwnerIndex<H> {
    apps: HashMap<Arc<str>, AppIndex<H>>,
    /// Identity connections in all applications.
    total: usize,
}

struct AppIndex<H> {
    conns: BTreeSet<ConnId>,
    users: HashMap<Arc<str>, UserIndex<H>>,
}

struct UserIndex<H> {
    /// Each connection with what it holds (its presence).
    conns: BTreeMap<ConnId, H>,
    /// Device name → its one live connection.
    devices: HashMap<Arc<str>, ConnId>,
}

impl<H> Default for OwnerIndex<H> {
    fn default() -> Self {
        OwnerIndex {
            apps: HashMap::new(),
            total: 0,
        }
    }
}

/// Which identity connections a lookup means.
#[derive(Debug, Clone, Copy)]
pub enum Selector<'a> {
    App(&'a str),
    User(&'a str, &'a str),
    /// A device of one user: at most one connection.
    Device(&'a str, &'a str, &'a str),
}

impl<H> OwnerIndex<H> {
    /// The live connection of `owner`'s device, if it has one.
    pub fn device_holder(&self, owner: &Owner) -> Option<&ConnId> {
        let device = owner.device.as_deref()?;
        self.user(&owner.app, &owner.user)?.devices.get(device)
    }

    pub fn user_count(&self, app: &str, user: &str) -> usize {
        self.user(app, user).map_or(0, |u| u.conns.len())
    }

    pub fn total(&self) -> usize {
        self.total
    }

    /// How many users of `app` are connected, and with how many
    /// connections. O(1).
    pub fn app_counts(&self, app: &str) -> (usize, usize) {
        self.apps
            .get(app)
            .map_or((0, 0), |a| (a.users.len(), a.conns.len()))
    }

    fn user(&self, app: &str, user: &str) -> Option<&UserIndex<H>> {
        self.apps.get(app)?.users.get(user)
    }

    /// Adds `id`, holding `hold`; the caller has made sure `owner`'s device
    /// is free.
    pub fn insert(&mut self, owner: &Owner, id: &ConnId, hold: H) {
        let app = self
            .apps
            .entry(owner.app.clone())
            .or_insert_with(|| AppIndex {
                conns: BTreeSet::new(),
                users: HashMap::new(),
            });
        app.conns.insert(id.clone());
        let user = app
            .users
            .entry(owner.user.clone())
            .or_insert_with(|| UserIndex {
                conns: BTreeMap::new(),
                devices: HashMap::new(),
            });
        user.conns.insert(id.clone(), hold);
        if let Some(device) = &owner.device {
            user.devices.insert(device.clone(), id.clone());
        }
        self.total += 1;
    }

    /// Removes `id` and gives back what it held, dropping every index that
    /// becomes empty so that memory follows the connections.
    pub fn remove(&mut self, owner: &Owner, id: &str) -> Option<H> {
        let app = self.apps.get_mut(&*owner.app)?;
        if !app.conns.remove(id) {
            return None;
        }
        self.total -= 1;
        let mut hold = None;
        if let Some(user) = app.users.get_mut(&*owner.user) {
            hold = user.conns.remove(id);
            if let Some(device) = owner.device.as_deref()
                && user.devices.get(device).is_some_and(|held| &**held == id)
            {
                user.devices.remove(device);
            }
            if user.conns.is_empty() {
                app.users.remove(&*owner.user);
            }
        }
        if app.conns.is_empty() {
            self.apps.remove(&*owner.app);
        }
        hold
    }

    /// Every connection's hold (to close them all at shutdown).
    pub fn holds_mut(&mut self) -> impl Iterator<Item = &mut H> {
        self.apps
            .values_mut()
            .flat_map(|a| a.users.values_mut())
            .flat_map(|u| u.conns.values_mut())
    }

    /// Up to `limit` ids of `selector`'s connections, in id order, after
    /// `after` (exclusive) when given.
    pub fn page(&self, selector: Selector<'_>, after: Option<&str>, limit: usize) -> Vec<ConnId> {
        match selector {
            Selector::Device(app, user, device) => self
                .user(app, user)
                .and_then(|u| u.devices.get(device))
                .filter(|id| after.is_none_or(|after| &***id > after))
                .into_iter()
                .take(limit)
                .cloned()
                .collect(),
            Selector::App(app) => self
                .apps
                .get(app)
                .map(|a| page_of(&a.conns, after, limit))
                .unwrap_or_default(),
            Selector::User(app, user) => self
                .user(app, user)
                .map(|u| {
                    u.conns
                        .range::<str, _>((lower(after), Bound::Unbounded))
                        .take(limit)
                        .map(|(id, _)| id.clone())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Every id `selector` means (for ending them all).
    pub fn all(&self, selector: Selector<'_>) -> Vec<ConnId> {
        self.page(selector, None, usize::MAX)
    }

    /// The ids of one user's connections (for its presence summary).
    pub fn user_conns(&self, app: &str, user: &str) -> Vec<ConnId> {
        self.all(Selector::User(app, user))
    }
}

/// Up to `limit` members of `set` after `after`, in order.
fn page_of(set: &BTreeSet<ConnId>, after: Option<&str>, limit: usize) -> Vec<ConnId> {
    set.range::<str, _>((lower(after), Bound::Unbounded))
        .take(limit)
        .cloned()
        .collect()
}

/// Where a page starts: after `after`, or at the beginning.
pub(crate) fn lower(after: Option<&str>) -> Bound<&str> {
    after.map_or(Bound::Unbounded, Bound::Excluded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(app: &str, user: &str, device: Option<&str>) -> Owner {
        Owner::new(app, user, device)
    }

    fn ids(v: Vec<ConnId>) -> Vec<String> {
        v.iter().map(|id| id.to_string()).collect()
    }

    #[test]
    fn lookups_see_only_their_own_and_memory_follows() {
        let mut index = OwnerIndex::<u32>::default();
        let a = [
            (owner("shop", "u1", Some("phone")), "c1"),
            (owner("shop", "u1", None), "c2"),
            (owner("shop", "u2", Some("phone")), "c3"),
            (owner("blog", "u1", Some("phone")), "c4"),
        ];
        for (i, (o, id)) in a.iter().enumerate() {
            index.insert(o, &Arc::from(*id), i as u32);
        }
        assert_eq!(index.total(), 4);
        assert_eq!(index.app_counts("shop"), (2, 3));
        assert_eq!(index.app_counts("none"), (0, 0));
        assert_eq!(ids(index.all(Selector::App("shop"))), ["c1", "c2", "c3"]);
        assert_eq!(ids(index.all(Selector::User("shop", "u1"))), ["c1", "c2"]);
        assert_eq!(
            ids(index.all(Selector::Device("shop", "u1", "phone"))),
            ["c1"]
        );
        assert_eq!(ids(index.all(Selector::App("none"))), Vec::<String>::new());
        assert_eq!(
            ids(index.page(Selector::App("shop"), Some("c1"), 1)),
            ["c2"]
        );
        assert_eq!(
            ids(index.page(Selector::Device("shop", "u1", "phone"), Some("c1"), 9)),
            Vec::<String>::new()
        );
        assert_eq!(
            index.device_holder(&a[0].0).map(|id| id.to_string()),
            Some("c1".into())
        );
        assert_eq!(index.holds_mut().count(), 4);
        for (i, (o, id)) in a.iter().enumerate() {
            assert_eq!(index.remove(o, id), Some(i as u32), "its hold back");
            assert_eq!(index.remove(o, id), None);
        }
        assert_eq!(index.total(), 0);
        assert!(index.apps.is_empty(), "every index dropped");
    }
}
