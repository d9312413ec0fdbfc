//! The registry of open connections: count, list, find and end them by id in
//! O(1), and reach every one for heartbeats and shutdown. (Ending every
//! connection on one stream goes through the stream's own follower list,
//! O(its followers): see `Hub::end_connections_on`.)
//!
//! A connection is registered before it follows anything and leaves when its
//! HTTP body is dropped, however that happens ([`Registration`]).

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use parking_lot::Mutex;

use super::connection::Connection;

#[derive(Default)]
pub struct Connections {
    inner: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    /// Keyed by the connection's own id, so an entry is one pointer.
    by_id: HashSet<ById>,
    /// Set at shutdown: no new connection may register.
    stopping: bool,
}

/// A connection in the registry: hashed and compared by its id.
struct ById(Arc<Connection>);

impl Hash for ById {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id().hash(state);
    }
}

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.id() == other.0.id()
    }
}

impl Eq for ById {}

impl Borrow<str> for ById {
    fn borrow(&self) -> &str {
        self.0.id()
    }
}

/// The server is stopping; no new connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stopping;

/// A connection's membership; dropping it unregisters the connection.
pub(crate) struct Registration {
    registry: Arc<Connections>,
    id: Arc<str>,
}

impl Connections {
    pub(crate) fn register(
        self: &Arc<Self>,
        conn: Arc<Connection>,
    ) -> Result<Registration, Stopping> {
        let mut r = self.inner.lock();
        if r.stopping {
            return Err(Stopping);
        }
        let id = conn.id_arc().clone();
        r.by_id.insert(ById(conn));
        Ok(Registration {
            registry: self.clone(),
            id,
        })
    }

    pub fn count(&self) -> usize {
        self.inner.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// Every open connection, in no particular order.
    pub fn list(&self) -> Vec<Arc<Connection>> {
        self.inner
            .lock()
            .by_id
            .iter()
            .map(|c| c.0.clone())
            .collect()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Connection>> {
        self.inner.lock().by_id.get(id).map(|c| c.0.clone())
    }

    /// Ends the connection with this id after what is queued; false if there
    /// is none.
    pub fn end(&self, id: &str) -> bool {
        match self.get(id) {
            Some(conn) => {
                conn.end();
                true
            }
            None => false,
        }
    }

    /// Asks every connection for a keep-alive comment.
    pub(crate) fn heartbeat(&self) {
        for conn in self.inner.lock().by_id.iter() {
            conn.0.outbox().heartbeat();
        }
    }

    /// Refuses new connections and tells every open one to end after what
    /// is queued for it.
    pub(crate) fn shut_down(&self) {
        let mut r = self.inner.lock();
        r.stopping = true;
        for conn in r.by_id.iter() {
            conn.0.outbox().shutdown();
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.inner.lock().by_id.remove(&*self.id);
    }
}
