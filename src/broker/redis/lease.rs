//! A lease one node of the cluster holds at a time, and the one pattern
//! subscription only its holder keeps: for Redis channels written by
//! producers outside sser (sse-notification-service's `PUBLISH
//! {app}:channel:{user}`), which every node could hear but exactly one must
//! turn into a delivery.
//!
//! The lease is `<p>lease:<name>` holding the holder's node id with a TTL of
//! `cluster.nodeTtl`, taken with `SET NX` semantics and renewed every third
//! of it, like the heartbeat. A node that cannot renew (Redis error, or
//! another node holds it) drops its subscription at once; a holder that
//! dies is replaced once its lease expires. Pub/sub is fire-and-forget, so
//! messages published between a holder's death and the next holder's
//! subscription (at most the TTL plus a renewal period) reach nobody,
//! exactly as they reached no instance of the original while it restarted.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// KEYS: the lease. ARGV: node id, TTL in ms. Takes the lease if free,
/// renews it if ours; 1 when this node holds it now.
const HOLD: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
elseif not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// KEYS: the lease. ARGV: node id. Frees it if ours.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
";

/// A message heard on a leased subscription.
#[derive(Debug, Clone)]
pub struct RawMessage {
    pub channel: String,
    pub payload: Vec<u8>,
}

/// What a leased subscription needs.
pub(super) struct Leased {
    pub(super) client: redis::Client,
    pub(super) conn: redis::aio::ConnectionManager,
    pub(super) lease: String,
    pub(super) node: String,
    pub(super) pattern: String,
    pub(super) ttl: Duration,
    pub(super) timeout: Duration,
    /// Called for each message that did not fit in the queue.
    pub(super) on_overflow: Box<dyn Fn() + Send + Sync>,
}

impl Leased {
    /// Runs until `shutdown`, sending what it hears into `out` while it
    /// holds the lease; frees the lease on the way out.
    pub(super) async fn run(self, out: mpsc::Sender<RawMessage>, shutdown: CancellationToken) {
        let period = self.ttl / 3;
        loop {
            if self.hold().await {
                self.listen(&out, &shutdown, period).await;
            }
            if shutdown.is_cancelled() {
                self.release().await;
                return;
            }
            tokio::select! {
                () = shutdown.cancelled() => {
                    self.release().await;
                    return;
                }
                () = tokio::time::sleep(period) => {}
            }
        }
    }

    /// Subscribed while the lease holds; returns when it does not (or the
    /// connection failed, or shutdown).
    async fn listen(
        &self,
        out: &mpsc::Sender<RawMessage>,
        shutdown: &CancellationToken,
        period: Duration,
    ) {
        let connect = tokio::time::timeout(self.timeout, self.client.get_async_pubsub());
        let mut pubsub = match connect.await {
            Ok(Ok(pubsub)) => pubsub,
            _ => return,
        };
        let subscribe = tokio::time::timeout(self.timeout, pubsub.psubscribe(&self.pattern));
        if !matches!(subscribe.await, Ok(Ok(()))) {
            return;
        }
        tracing::info!(pattern = %self.pattern, "holding the producer lease; listening");
        let mut messages = pubsub.into_on_message();
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = renew.tick() => {
                    if !self.hold().await {
                        tracing::info!(pattern = %self.pattern, "producer lease lost; not listening");
                        return;
                    }
                }
                message = messages.next() => {
                    let Some(message) = message else { return };
                    let raw = RawMessage {
                        channel: message.get_channel_name().to_string(),
                        payload: message.get_payload_bytes().to_vec(),
                    };
                    if out.try_send(raw).is_err() {
                        (self.on_overflow)();
                    }
                }
            }
        }
    }

    async fn hold(&self) -> bool {
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let script = redis::Script::new(HOLD);
        let mut invocation = script.prepare_invoke();
        invocation.key(&self.lease).arg(&self.node).arg(ttl_ms);
        let mut conn = self.conn.clone();
        let ran = invocation.invoke_async::<i64>(&mut conn);
        matches!(tokio::time::timeout(self.timeout, ran).await, Ok(Ok(1)))
    }

    async fn release(&self) {
        let script = redis::Script::new(RELEASE);
        let mut invocation = script.prepare_invoke();
        invocation.key(&self.lease).arg(&self.node);
        let mut conn = self.conn.clone();
        let ran = invocation.invoke_async::<i64>(&mut conn);
        let _ = tokio::time::timeout(self.timeout, ran).await;
    }
}
