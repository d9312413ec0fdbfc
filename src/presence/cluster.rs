//! Presence decided cluster-wide: a user is online from its first
//! connection on any node to its last, and each transition is emitted once,
//! by one node, so webhooks fire once.
//!
//! On a cluster member the tracker ([`super::tracker`]) keeps deciding what
//! happens *on this node*, grace period included, but its events go to a
//! [`ClusterPresence`] instead of the sinks. That queues them (the tracker
//! emits under its lock and must not wait) and one task applies them, in
//! order, to the Redis ledger ([`PresenceLedger`]): a local online adds this
//! node's share of the user (or device), a local offline removes it, and
//! only when the ledger answers that the first share anywhere appeared (or
//! the last one went) is the event handed to the real sinks (presence
//! stream, webhooks, go-sse-broker channels). A user connected on A and B
//! who leaves A therefore makes no noise; leaving B too emits one
//! `user_offline`, from B.
//!
//! A node that dies leaves its shares behind. Every node looks for such
//! nodes every `cluster.nodeCheckInterval` ([`clear_lost_nodes`]); one
//! survivor claims each dead node, removes its shares and emits the
//! offlines of the users and devices left with none, with reason
//! `node_lost`. A dead node's heartbeat record expires within
//! `cluster.nodeTtl`, so this happens within `nodeTtl + nodeCheckInterval`
//! (plus a Redis round trip) of its death.
//!
//! A node whose share the ledger lost while it lived (taken for dead
//! during a partition longer than `cluster.nodeTtl`, or a Redis that came
//! back empty) notices at its next check or write and writes everything it
//! holds again ([`restore_own_share`]), so its users' offlines still come.
//!
//! Redis down: the queue waits and retries its oldest op (back-off up to a
//! second) and keeps the order; past [`QUEUE_LIMIT`] ops waiting, new ones
//! are dropped and counted (`sser_cluster_presence_dropped_total`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::event::{PresenceEvent, PresenceKind, PresenceReason};
use super::sink::PresenceSink;
use super::tracker::{PresenceTracker, WeakPresenceTracker};
use crate::broker::redis::{Level, PresenceLedger, Share};
use crate::metrics::Metrics;
use crate::store::now_ms;

/// Ops that may wait for Redis before new ones are dropped: one per
/// connection that opened or closed while Redis was away.
pub const QUEUE_LIMIT: usize = 100_000;

/// How often (and how long) dead nodes are looked for and claimed.
#[derive(Debug, Clone)]
pub struct LostNodeSettings {
    /// `cluster.nodeCheckInterval`.
    pub check_interval: Duration,
    /// How long one survivor's claim on a dead node lasts
    /// (`cluster.nodeTtl`): if it dies mid-way, another resumes after it.
    pub claim: Duration,
}

/// The tracker's sink on a cluster member.
pub struct ClusterPresence {
    ledger: PresenceLedger,
    queue: Queue,
    /// The tracker whose holdings are replayed when the ledger lost them.
    tracker: Arc<OnceLock<WeakPresenceTracker>>,
}

/// The ordered queue of ops for the ledger writer.
#[derive(Clone)]
struct Queue {
    tx: mpsc::UnboundedSender<PresenceEvent>,
    state: Arc<QueueState>,
}

/// What the queue's users and its writer share.
struct QueueState {
    pending: AtomicUsize,
    drained: Notify,
    metrics: Arc<Metrics>,
    /// This node has written a share before.
    written: AtomicBool,
    /// The ledger did not list this node at a write, although it had
    /// written before: its share was cleared behind its back.
    share_lost: AtomicBool,
}

impl ClusterPresence {
    /// Starts the ledger writer (which hands cluster-wide transitions to
    /// `sinks`) and the periodic watch (until `shutdown`).
    pub fn start(
        ledger: PresenceLedger,
        sinks: Arc<dyn PresenceSink>,
        lost: LostNodeSettings,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Arc<ClusterPresence> {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(QueueState {
            pending: AtomicUsize::new(0),
            drained: Notify::new(),
            metrics: metrics.clone(),
            written: AtomicBool::new(false),
            share_lost: AtomicBool::new(false),
        });
        let queue = Queue { tx, state };
        let tracker = Arc::new(OnceLock::new());
        // The writer outlives `shutdown`: the tracker's last offlines come
        // after it, and `drain` waits for them. It ends with the queue.
        tokio::spawn(apply(
            ledger.clone(),
            rx,
            sinks.clone(),
            queue.state.clone(),
        ));
        tokio::spawn(watch(
            Watch {
                ledger: ledger.clone(),
                sinks,
                settings: lost,
                metrics,
                queue: queue.clone(),
                tracker: tracker.clone(),
            },
            shutdown,
        ));
        Arc::new(ClusterPresence {
            ledger,
            queue,
            tracker,
        })
    }

    /// The tracker this sink serves, replayed into the ledger whenever the
    /// ledger lost this node's share (a survivor took the node for dead
    /// during a partition, or Redis came back empty).
    pub fn attach(&self, tracker: &PresenceTracker) {
        let _ = self.tracker.set(tracker.downgrade());
    }

    /// A graceful stop: waits (at most `bound`) until every queued op
    /// reached Redis, then takes this node out of the ledger's list, so no
    /// survivor takes it for a dead node. If some op could not be written
    /// (counted as dropped), the node stays listed and a survivor clears
    /// what it left, as `node_lost`. Returns whether all went out.
    pub async fn leave(&self, bound: Duration) -> bool {
        if !self.queue.drain(bound).await {
            return false;
        }
        match self.ledger.leave().await {
            Ok(left) => left,
            Err(_) => {
                self.queue.state.metrics.cluster.redis_error("presence");
                false
            }
        }
    }
}

impl Queue {
    /// Waits (at most `bound`) until every queued op reached Redis; false
    /// if some had not (they are counted as dropped).
    async fn drain(&self, bound: Duration) -> bool {
        let state = &self.state;
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let waiting = state.drained.notified();
            let left = state.pending.load(Ordering::Acquire);
            if left == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, waiting).await.is_err() {
                for _ in 0..left {
                    state.metrics.cluster.presence_dropped();
                }
                return false;
            }
        }
    }
}

impl PresenceSink for Queue {
    fn emit(&self, event: PresenceEvent) {
        let state = &self.state;
        if state.pending.load(Ordering::Acquire) >= QUEUE_LIMIT {
            state.metrics.cluster.presence_dropped();
            return;
        }
        state.pending.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(event).is_err() {
            state.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl PresenceSink for ClusterPresence {
    fn emit(&self, event: PresenceEvent) {
        self.queue.emit(event);
    }
}

/// The ledger writer: each local transition in order, retried while Redis
/// is away; a cluster-wide one goes on to `sinks`.
async fn apply(
    ledger: PresenceLedger,
    mut rx: mpsc::UnboundedReceiver<PresenceEvent>,
    sinks: Arc<dyn PresenceSink>,
    state: Arc<QueueState>,
) {
    while let Some(event) = rx.recv().await {
        let share = Share {
            app: event.app.clone(),
            user: event.user.clone(),
            device: event.device.clone(),
            connection_id: event.connection_id.clone(),
        };
        let level = match event.kind {
            PresenceKind::UserOnline | PresenceKind::UserOffline => Level::User,
            PresenceKind::DeviceOnline | PresenceKind::DeviceOffline => Level::Device,
        };
        let mut pause = Duration::from_millis(50);
        let everywhere = loop {
            let applied = match event.kind.is_online() {
                true => ledger.online(&share, level).await.map(|online| {
                    if online.was_unlisted && state.written.swap(true, Ordering::AcqRel) {
                        state.share_lost.store(true, Ordering::Release);
                    }
                    online.everywhere
                }),
                false => ledger.offline(&share, level).await,
            };
            match applied {
                Ok(everywhere) => break everywhere,
                Err(_) => {
                    state.metrics.cluster.redis_error("presence");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        };
        if everywhere {
            sinks.emit(event);
        }
        if state.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            state.drained.notify_waiters();
        }
    }
}

/// What the periodic watch needs.
struct Watch {
    ledger: PresenceLedger,
    sinks: Arc<dyn PresenceSink>,
    settings: LostNodeSettings,
    metrics: Arc<Metrics>,
    queue: Queue,
    tracker: Arc<OnceLock<WeakPresenceTracker>>,
}

/// Every `check_interval`, until `shutdown`: this node's own share is
/// whole ([`restore_own_share`]), and dead nodes' are cleared
/// ([`clear_lost_nodes`]).
async fn watch(watch: Watch, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(watch.settings.check_interval) => {}
        }
        restore_own_share(&watch).await;
        clear_lost_nodes(&watch).await;
    }
}

/// If the ledger lost this node's share (no longer listed, or a write found
/// it unlisted), every user and device this node holds is written again,
/// through the queue so it stays in order with opens and closes. Those a
/// survivor had declared offline (`node_lost`) come online again; a Redis
/// that lost everything sees each online once more.
async fn restore_own_share(watch: &Watch) {
    let Some(tracker) = watch.tracker.get().and_then(WeakPresenceTracker::upgrade) else {
        return;
    };
    let state = &watch.queue.state;
    let lost = state.share_lost.swap(false, Ordering::AcqRel)
        || (state.written.load(Ordering::Acquire)
            && tracker.counts().users > 0
            && matches!(watch.ledger.is_listed().await, Ok(false)));
    if lost {
        let replayed = tracker.replay(&watch.queue);
        tracing::warn!(
            replayed,
            "the cluster's presence ledger lost this node's share; written again"
        );
    }
}

/// The nodes that left shares behind and died: for each one this node
/// claims, their shares go and the offlines of those left with none are
/// emitted (`node_lost`), devices first.
async fn clear_lost_nodes(watch: &Watch) {
    let Watch {
        ledger,
        sinks,
        settings,
        metrics,
        ..
    } = watch;
    let lost = match ledger.lost_nodes().await {
        Ok(lost) => lost,
        Err(_) => {
            metrics.cluster.redis_error("presence");
            return;
        }
    };
    for node in lost {
        match ledger.claim(&node, settings.claim).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) => {
                metrics.cluster.redis_error("presence");
                continue;
            }
        }
        let (emitted, done) = clean_up_after(ledger, sinks.as_ref(), &node, metrics).await;
        // Counted once per dead node: by the survivor that finished its
        // clean-up, not by one that stopped at a Redis error and left the
        // rest to the next claimant.
        if done {
            metrics.cluster.node_lost();
            tracing::warn!(node = %node, offline = emitted, "a cluster node died; its presence is cleared");
        } else {
            tracing::warn!(node = %node, offline = emitted, "a cluster node died; clearing its presence stopped at a Redis error, a survivor resumes");
        }
    }
}

/// Takes dead `node`'s shares out of the ledger and emits the offlines
/// they leave; returns how many, and whether the node is forgotten. Stops
/// at a Redis error: the claim runs out and a survivor resumes where this
/// one stopped.
async fn clean_up_after(
    ledger: &PresenceLedger,
    sinks: &dyn PresenceSink,
    node: &str,
    metrics: &Metrics,
) -> (usize, bool) {
    let at = now_ms();
    let mut emitted = 0;
    for (level, kind) in [
        (Level::Device, PresenceKind::DeviceOffline),
        (Level::User, PresenceKind::UserOffline),
    ] {
        let shares = match ledger.reap(node, level).await {
            Ok((shares, rejected)) => {
                for _ in 0..rejected {
                    metrics.cluster_entry_rejected();
                }
                shares
            }
            Err(_) => {
                metrics.cluster.redis_error("presence");
                return (emitted, false);
            }
        };
        for share in shares {
            sinks.emit(PresenceEvent {
                kind,
                app: share.app,
                user: share.user,
                device: share.device,
                reason: PresenceReason::NodeLost,
                at,
                connection_id: share.connection_id,
                // The node the connection was on.
                node: Some(node.to_string()),
            });
            emitted += 1;
        }
    }
    let forgotten = ledger.forget(node).await.is_ok();
    if !forgotten {
        metrics.cluster.redis_error("presence");
    }
    (emitted, forgotten)
}
