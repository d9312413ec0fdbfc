//! Where presence events go: the [`PresenceSink`] trait the tracker calls,
//! and the sinks that need nothing else (a channel, several sinks at once).
//! [`super::Webhooks`] is a sink too.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::event::PresenceEvent;

/// Where events go. Called under the tracker's lock, in order: it must not
/// block (hand the event to a channel or a bounded queue and return).
pub trait PresenceSink: Send + Sync + 'static {
    fn emit(&self, event: PresenceEvent);
}

/// Events into a channel, for a consumer task that may await (the presence
/// stream). Unbounded because dropping a presence event would unbalance
/// every consumer; it only grows while its consumer is stalled, by one
/// small event per connection that opened or closed meanwhile.
impl PresenceSink for mpsc::UnboundedSender<PresenceEvent> {
    fn emit(&self, event: PresenceEvent) {
        // A closed receiver means nobody listens any more (shutdown).
        let _ = self.send(event);
    }
}

/// Every event to each of several sinks, in order.
impl PresenceSink for Vec<Arc<dyn PresenceSink>> {
    fn emit(&self, event: PresenceEvent) {
        if let Some((last, rest)) = self.split_last() {
            for sink in rest {
                sink.emit(event.clone());
            }
            last.emit(event);
        }
    }
}
