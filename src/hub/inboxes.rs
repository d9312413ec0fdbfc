//! Identities at the hub: connections that speak for an identity
//! ([`Hub::connect`]) and targeted sends ([`Hub::send`]).
//!
//! Nothing here is new machinery. An identity's application, user and
//! device each have an inbox stream ([`StreamKey::App`], `User`, `Device`);
//! a connection with an [`Owner`] follows its inboxes beside its topics,
//! through one queue with one resume cursor, and a send is a publish on the
//! named inboxes. So addressing a user costs the same as publishing to a
//! topic: O(the targets named), never a walk over every connection, and
//! what a user misses while offline is replayed from the inbox's history
//! exactly as a topic's is.
//!
//! Inboxes open on first use, by a send or a follow (the broker closes idle
//! ones again: see `Broker::close_idle_inboxes`); an operation that races
//! with such a close opens the inbox again and retries.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::future::join_all;

use super::connection::Owner;
use super::farewell::Farewell;
use super::feed::{self, Opening};
use super::framing::{Heartbeat, Naming};
use super::resume::Ask;
use super::{Hub, HubError, NewEvent, Published, Subscription, Topic};
use crate::broker::{BrokerError, Follow, Outbox};
use crate::model::StreamKey;

/// Opening an inbox and using it can race with its close this many times
/// before giving up (each race needs a whole reaper sweep in between).
const OPEN_ATTEMPTS: usize = 3;

/// What one connection follows, and for whom.
#[derive(Clone, Default)]
pub struct ConnectSpec {
    /// The identity it speaks for: it follows its application's broadcast,
    /// its user's inbox and (when it has a device) its device's inbox.
    pub owner: Option<Owner>,
    /// Topics it follows too (already checked against what it may read).
    pub topics: Vec<Arc<Topic>>,
    /// `Last-Event-ID`: a cursor over all of its streams, or `earliest`.
    pub last_event_id: Option<String>,
    /// When it must end, with `sser.token_expired`: its token's expiry.
    pub expires_at: Option<SystemTime>,
    /// The client's address, when the listener knew it (listed by the
    /// registry, counted by `identity.limits.maxConnectionsPerIp`).
    pub remote: Option<SocketAddr>,
    /// How its events are named: by stream (the native API), or as
    /// published (a compatibility profile's clients).
    pub naming: Naming,
    /// Its own heartbeat, instead of the hub's comment (`None`: the hub's).
    pub heartbeat: Option<Heartbeat>,
    /// Its last words when the server ends it, in a compatibility
    /// profile's spelling (`None`: the native notices).
    pub farewell: Option<Arc<dyn Farewell>>,
}

/// One inbox a send published to.
#[derive(Debug, Clone)]
pub struct Sent {
    pub stream: StreamKey,
    /// The event's id in that inbox's history (the sender's own, or its
    /// sequence there).
    pub id: Arc<str>,
    /// Connections following the inbox when the event went out.
    pub reached: usize,
}

impl Hub {
    /// Opens one connection on the owner's inboxes (application, user,
    /// device, in that order) and then `topics` (in id order, duplicates
    /// dropped): the same identity and topics give the same cursor, so a
    /// reconnect resumes exactly. Events are named by their stream (`@app`,
    /// `@user`, `@device`, or the topic id; see `framing`).
    pub async fn connect(&self, spec: ConnectSpec) -> Result<Subscription, HubError> {
        let ConnectSpec {
            owner,
            mut topics,
            last_event_id,
            expires_at,
            remote,
            naming,
            heartbeat,
            farewell,
        } = spec;
        topics.sort_by(|a, b| a.id.cmp(&b.id));
        topics.dedup_by(|a, b| a.id == b.id);
        let mut keys = owner.as_ref().map(Owner::inboxes).unwrap_or_default();
        keys.extend(topics.iter().map(|t| t.stream.clone()));
        let opening = Opening {
            keys,
            ask: Ask::Cursor(last_event_id),
            owner,
            expires_at,
            remote,
            naming,
            heartbeat,
            farewell,
        };
        feed::open(self, opening).await
    }

    /// Publishes `event` on each inbox of `streams` at once (opening those
    /// that are not open), and reports each one's id and how many
    /// connections it reached. Durable inboxes commit together (one group
    /// commit), so sending to many users costs about one fsync.
    ///
    /// Every stream must be an inbox. On a storage failure the event may
    /// have gone to some of the inboxes and not others.
    pub async fn send(
        &self,
        streams: Vec<StreamKey>,
        event: NewEvent,
    ) -> Result<Vec<Sent>, HubError> {
        let sends = streams.into_iter().map(|stream| {
            let event = event.clone();
            async move {
                let published = self.publish_inbox(&stream, event).await?;
                let reached = self.broker.follower_count(&stream);
                Ok::<_, HubError>(Sent {
                    stream,
                    id: published.id,
                    reached,
                })
            }
        });
        join_all(sends).await.into_iter().collect()
    }

    async fn publish_inbox(
        &self,
        stream: &StreamKey,
        event: NewEvent,
    ) -> Result<Published, HubError> {
        let started = std::time::Instant::now();
        for _ in 0..OPEN_ATTEMPTS {
            self.broker
                .open_inbox(stream, self.settings.inbox_retention)
                .await?;
            match self.broker.publish(stream, event.clone()).await {
                Err(BrokerError::NotFound) => continue,
                Err(e) => return Err(e.into()),
                Ok(published) => {
                    self.metrics.event_published(started.elapsed());
                    self.metrics.event_received();
                    return Ok(published);
                }
            }
        }
        Err(HubError::NotFound)
    }

    /// Follows `stream` into `outbox` (slot `slot`), opening it first if it
    /// is an inbox.
    pub(crate) async fn follow(
        &self,
        stream: &StreamKey,
        outbox: &Arc<Outbox>,
        slot: u32,
    ) -> Result<Follow, HubError> {
        if !stream.is_inbox() {
            return Ok(self.broker.follow(stream, outbox, slot).await?);
        }
        for _ in 0..OPEN_ATTEMPTS {
            self.broker
                .open_inbox(stream, self.settings.inbox_retention)
                .await?;
            match self.broker.follow(stream, outbox, slot).await {
                Err(BrokerError::NotFound) => continue,
                other => return Ok(other?),
            }
        }
        Err(HubError::NotFound)
    }
}
