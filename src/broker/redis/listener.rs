//! The node's one pub/sub connection: registry notices, node join/leave
//! notices (which wake the heartbeat, [`super::nodes`]), commands to this
//! node on its control channel ([`super::control`]), and the live
//! channels of the streams (topics, inboxes, the presence feed) this node
//! has followers for (subscribed at a stream's first follow, unsubscribed
//! by the periodic sweep once it has none, [`unsubscribe_if_idle`]).
//!
//! It reconnects by itself (with a growing pause, at most a second) for as
//! long as the node runs. After every (re)connect it resubscribes to every
//! channel it wants, checks that Redis still holds the data set this node
//! worked with ([`super::epoch`]), applies the registry changes it missed
//! (topics created or deleted while it was away, from the change log,
//! [`super::changes`]) and reads each followed stream after the last event
//! it sent, so followers get what was published meanwhile, with no gap and
//! no duplicate ([`LiveStream::deliver`] keeps the order); what Redis
//! trimmed from a topic meanwhile is reported to them, never skipped
//! silently.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::changes::{self, Change, LogId};
use super::entry;
use super::live::{LiveStream, Outcome};
use super::registry;
use super::{Shared, epoch};
use crate::broker::{BrokerError, TopicChange};

/// Runs until `shutdown`.
pub(super) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut pause = Duration::from_millis(50);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = session(&shared) => {}
        }
        shared.listening.store(false, Ordering::Relaxed);
        *shared.sink.lock().await = None;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// One connection's life: returns when it is lost (or cannot be made).
async fn session(shared: &Arc<Shared>) {
    let connect = tokio::time::timeout(shared.timeout, shared.client.get_async_pubsub());
    let pubsub = match connect.await {
        Ok(Ok(pubsub)) => pubsub,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "Redis pub/sub connection failed");
            return;
        }
        Err(_) => return,
    };
    let (sink, mut messages) = pubsub.split();
    // Before anything is read: a data set Redis lost must not be mistaken
    // for the one this node knew.
    if let Err(e) = epoch::check(shared).await {
        tracing::debug!(error = %e, "cannot read the cluster's epoch");
        return;
    }
    {
        let mut slot = shared.sink.lock().await;
        let mut sink = sink;
        let mut channels = vec![
            shared.keys.registry_channel(),
            shared.keys.nodes_channel(),
            shared.keys.control(&shared.node),
        ];
        channels.extend(
            shared
                .every_stream()
                .iter()
                .filter(|s| s.wanted.load(Ordering::Relaxed))
                .map(|s| s.names.channel.clone()),
        );
        if let Err(e) = sink.subscribe(channels).await {
            shared.metrics.cluster.redis_error("subscribe");
            tracing::debug!(error = %e, "Redis SUBSCRIBE failed");
            return;
        }
        *slot = Some(sink);
    }
    shared.listening.store(true, Ordering::Relaxed);
    tracing::info!("listening to Redis");
    // Whatever Redis lost of this node's connections meanwhile.
    let _ = shared
        .commands
        .send(crate::broker::directory::Command::Rejoin);
    if let Err(e) = reconcile(shared).await {
        tracing::warn!(error = %e, "cannot re-read the cluster's state after connecting to Redis");
    }
    let control = shared.keys.control(&shared.node);
    while let Some(message) = messages.next().await {
        let channel = message.get_channel_name();
        if channel == control {
            match super::control::parse(message.get_payload_bytes()) {
                Some(command) => {
                    let _ = shared.commands.send(command);
                }
                None => shared.metrics.cluster_entry_rejected(),
            }
        } else if channel == shared.keys.registry_channel() {
            on_notice(shared, message.get_payload_bytes()).await;
        } else if channel == shared.keys.nodes_channel() {
            // A node joined or left: look at the live nodes now.
            shared.heartbeat.changed.notify_one();
        } else if let Some(live) = shared.live_of_channel(channel) {
            on_live(shared, &live, message.get_payload_bytes()).await;
        }
    }
    tracing::warn!("lost the Redis pub/sub connection; reconnecting");
}

/// Registry changes and events published while this node was not
/// listening.
async fn reconcile(shared: &Arc<Shared>) -> Result<(), BrokerError> {
    resync_registry(shared)
        .await
        .map_err(|e| shared.count("registry", e))?;
    for live in shared.every_stream() {
        catch_up(shared, &live).await?;
    }
    Ok(())
}

/// Applies the registry changes made since this node last heard of one:
/// from the change log when it reaches back that far, else by reading
/// every record.
async fn resync_registry(shared: &Arc<Shared>) -> Result<(), BrokerError> {
    let seen = *shared.registry_seen.lock();
    if let Some(seen) = seen
        && let Some((missed, newest)) = changes::since(&shared.conn, &shared.keys, seen).await?
    {
        for change in &missed {
            match change {
                Change::Created(id) => open_created(shared, id).await?,
                Change::Deleted(id) => drop_topic(shared, id),
            }
        }
        advance(shared, newest);
        return Ok(());
    }
    // Topics open before the registry is read: one created here while it
    // is read must not look deleted.
    let known: Vec<Arc<LiveStream>> = shared.streams.read().values().cloned().collect();
    let (records, newest) = registry::load_all(&shared.conn, &shared.keys).await?;
    let present: std::collections::HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
    let gone: Vec<Arc<LiveStream>> = known
        .into_iter()
        .filter(|s| s.registered && s.key.topic().is_some_and(|t| !present.contains(t.as_str())))
        .collect();
    for live in gone {
        if let Some(topic) = live.key.topic() {
            drop_topic(shared, topic.as_str());
        }
    }
    for record in records {
        let _ = shared.changes.send(TopicChange::Created(record));
    }
    *shared.registry_seen.lock() = Some(newest);
    Ok(())
}

/// Notes that registry changes up to `at` are applied.
fn advance(shared: &Shared, at: LogId) {
    let mut seen = shared.registry_seen.lock();
    if let Some(seen) = seen.as_mut()
        && *seen < at
    {
        *seen = at;
    }
}

/// A topic created on another node: the hub opens it, if it still exists.
async fn open_created(shared: &Shared, id: &str) -> Result<(), BrokerError> {
    if let Some(record) = registry::load(&shared.conn, &shared.keys, id).await? {
        let _ = shared.changes.send(TopicChange::Created(record));
    }
    Ok(())
}

async fn on_notice(shared: &Arc<Shared>, payload: &[u8]) {
    let Some(notice) = std::str::from_utf8(payload)
        .ok()
        .and_then(registry::parse_notice)
    else {
        return;
    };
    if notice.node != shared.node {
        if notice.created {
            if let Err(e) = open_created(shared, notice.id).await {
                shared.count("registry", e);
                tracing::warn!(topic = notice.id, "cannot read a new topic's record");
                // Not applied: the next reconnect reads the registry whole.
                *shared.registry_seen.lock() = None;
                return;
            }
        } else {
            drop_topic(shared, notice.id);
        }
    }
    if let Some(at) = notice.at {
        advance(shared, at);
    }
}

/// A topic deleted elsewhere: its followers here are told, the hub too.
fn drop_topic(shared: &Shared, id: &str) {
    let removed = shared.streams.write().remove(id);
    if let Some(live) = removed {
        live.close();
        let _ = shared.changes.send(TopicChange::Deleted(id.to_string()));
    }
}

async fn on_live(shared: &Arc<Shared>, live: &Arc<LiveStream>, payload: &[u8]) {
    // An unreadable message is passed over: the next one shows the gap.
    let Some(entry) = entry::from_live(payload) else {
        shared.metrics.cluster_entry_rejected();
        return;
    };
    let delivery = entry.delivery().map(Arc::new);
    match live.deliver(entry.seq, delivery.as_ref(), false) {
        Outcome::Done if delivery.is_none() => shared.metrics.cluster_entry_rejected(),
        Outcome::Done | Outcome::Skipped => {}
        Outcome::Gap { .. } => {
            if let Err(e) = catch_up(shared, live).await {
                tracing::warn!(stream = %live.key, error = %e, "cannot repair a gap from Redis");
            }
        }
    }
}

/// Sends `live`'s followers every event in its stream after the last one
/// they were sent, telling them first when Redis no longer holds some.
pub(super) async fn catch_up(shared: &Shared, live: &LiveStream) -> Result<(), BrokerError> {
    const PAGE: usize = 1000;
    loop {
        let Some(sent) = live.sent() else {
            return Ok(());
        };
        let page = super::history::after(&shared.conn, &shared.source(live), sent, PAGE)
            .await
            .map_err(|e| shared.count("catch_up", e))?;
        for entry in &page.entries {
            let delivery = entry.delivery().map(Arc::new);
            let outcome = live.deliver(entry.seq, delivery.as_ref(), true);
            if outcome == Outcome::Done && delivery.is_none() {
                shared.metrics.cluster_entry_rejected();
            }
        }
        if page.entries.is_empty() || page.read < PAGE {
            if page.entries.is_empty() && page.read < PAGE {
                // Nothing held after `sent`, yet the counter went further.
                live.trimmed_up_to(page.last_assigned);
            }
            return Ok(());
        }
    }
}

/// Subscribes this node to `live`'s channel (kept across reconnects).
pub(super) async fn subscribe(shared: &Shared, live: &LiveStream) -> Result<(), BrokerError> {
    let mut slot = shared.sink.lock().await;
    live.wanted.store(true, Ordering::Relaxed);
    let Some(sink) = slot.as_mut() else {
        return Err(BrokerError::Unavailable(super::UNAVAILABLE.to_string()));
    };
    sink.subscribe(&live.names.channel)
        .await
        .map_err(|e| shared.failed("subscribe", e))
}

/// Stops listening to `live`'s channel if nobody here follows it (a first
/// follow in progress holds `subscribing`, so it is waited for).
pub(super) async fn unsubscribe_if_idle(shared: &Shared, live: &LiveStream) {
    let _subscribing = live.subscribing.lock().await;
    let mut slot = shared.sink.lock().await;
    if !live.stop_listening() {
        return;
    }
    if let Some(sink) = slot.as_mut()
        && let Err(e) = sink.unsubscribe(&live.names.channel).await
    {
        shared.metrics.cluster.redis_error("subscribe");
        tracing::debug!(stream = %live.key, error = %e, "Redis UNSUBSCRIBE failed");
    }
}
