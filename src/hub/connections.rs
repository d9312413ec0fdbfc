//! The registry of open connections: count, list, find and end them by id in
//! O(1), and reach every one for heartbeats and shutdown. (Ending every
//! connection on one stream goes through the stream's own follower list,
//! O(its followers): see `Hub::end_connections_on`.)
//!
//! A connection is registered before it follows anything and leaves when its
//! HTTP body is dropped, however that happens ([`Registration`]).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::connection::Connection;

#[derive(Default)]
pub struct Connections {
    inner: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    by_id: HashMap<Arc<str>, Arc<Connection>>,
    /// Set at shutdown: no new connection may register.
    stopping: bool,
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
        r.by_id.insert(id.clone(), conn);
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
        self.inner.lock().by_id.values().cloned().collect()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Connection>> {
        self.inner.lock().by_id.get(id).cloned()
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
        for conn in self.inner.lock().by_id.values() {
            conn.outbox().heartbeat();
        }
    }

    /// Refuses new connections and tells every open one to end after what
    /// is queued for it.
    pub(crate) fn shut_down(&self) {
        let mut r = self.inner.lock();
        r.stopping = true;
        for conn in r.by_id.values() {
            conn.outbox().shutdown();
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.inner.lock().by_id.remove(&self.id);
    }
}
