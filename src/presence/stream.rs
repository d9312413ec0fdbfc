//! The presence stream (`GET /api/v1/presence/stream`): every presence
//! event published onto the hub's [`StreamKey::Presence`] stream, so that
//! following it, replaying it with `Last-Event-ID`, slow readers and
//! heartbeats are exactly a topic's.
//!
//! The tracker emits under its lock and must not wait, while publishing is
//! async: [`start`] returns a sink that only queues into an unbounded
//! channel (one small event per connection opened or closed, never
//! dropped: a dropped presence event would leave every follower
//! unbalanced), and one task publishes them in order. The task holds the
//! hub weakly and ends when the tracker (the channel's sender) is gone.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::event::PresenceEvent;
use super::sink::PresenceSink;
use crate::hub::{Hub, HubError, NewEvent};
use crate::model::StreamKey;

/// Opens the presence stream on `hub` and returns the sink that feeds it.
pub async fn start(hub: &Arc<Hub>) -> Result<Arc<dyn PresenceSink>, HubError> {
    hub.open_system_stream(StreamKey::Presence).await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<PresenceEvent>();
    let hub = Arc::downgrade(hub);
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            let Some(hub) = hub.upgrade() else { return };
            publish(&hub, &event).await;
        }
    });
    Ok(Arc::new(tx))
}

/// One event as `event: <kind>`, `data: <the event's JSON>`; its id is its
/// position in the stream.
async fn publish(hub: &Hub, event: &PresenceEvent) {
    let data = match serde_json::to_string(event) {
        Ok(data) => data,
        Err(e) => {
            tracing::error!(error = %e, "presence event not serializable");
            return;
        }
    };
    let kind = Some(event.kind.as_str().to_string());
    let result = match NewEvent::new(None, kind, data) {
        Ok(new) => hub.publish_system(&StreamKey::Presence, new).await,
        Err(e) => {
            tracing::error!(error = %e, "presence event not encodable");
            return;
        }
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "presence event not published to the presence stream");
    }
}
