//! The directory's bookkeeping writes, off the connection's path: the
//! registry queues `joined`/`left` ([`Writer::push`], never blocking, never
//! under its lock) and one task writes them in pipelined batches.
//!
//! When Redis does not answer, the batch in hand is retried (with a pause
//! growing to a second) until it does, in order, so a `left` never lands
//! before its `joined`. The queue is bounded ([`QUEUE`]): what does not fit
//! while Redis is away is dropped and counted
//! (`sser_cluster_directory_dropped_total`), never held without bound. A
//! dropped `joined` leaves a connection unlisted on the other nodes until
//! the node records all its connections again (at its next reconnect to
//! Redis, [`Command::Rejoin`](crate::broker::directory::Command)); a
//! dropped `left` leaves an entry that the sweep removes when its node
//! goes, or that `left` of a later connection with the same device ignores
//! (owners are compared, never blindly deleted).
//!
//! A batch Redis keeps refusing (it answers, with an error) is dropped
//! and counted after a while, so one bad key cannot hold up the queue.
//!
//! The same task sweeps: every `cluster.nodeTtl` it removes the entries of
//! nodes that are no longer live (their heartbeat expired), which the
//! readers were passing over meanwhile.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::directory_scripts::{LEFT, OWN};
use crate::broker::directory::Entry;

/// Writes waiting for Redis, at most.
pub(super) const QUEUE: usize = 65_536;
/// Writes per pipeline.
const BATCH: usize = 512;
/// Tries of a batch Redis answers with an error (rather than not at all)
/// before it is dropped: Redis may say `LOADING` for a while after a
/// restart, never for this long.
const MAX_REFUSALS: u32 = 30;

/// Why a batch was not written.
enum Failure {
    /// Redis did not answer (down, unreachable, too slow): retry.
    Away(String),
    /// Redis answered with an error.
    Refused(String),
}

impl From<redis::RedisError> for Failure {
    fn from(e: redis::RedisError) -> Failure {
        let away = e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout();
        match away {
            true => Failure::Away(e.to_string()),
            false => Failure::Refused(e.to_string()),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Away(e) | Failure::Refused(e) => f.write_str(e),
        }
    }
}

pub(super) enum Op {
    Joined(Entry),
    Left {
        id: String,
        app: String,
        user: String,
        device: Option<String>,
        /// The node that recorded it (this one, or a dead one being swept).
        node: String,
    },
}

/// The queue's sending side.
pub(super) struct Writer {
    tx: mpsc::Sender<Op>,
    shared: Arc<Shared>,
}

impl Writer {
    /// Starts the writing task (until `shutdown`).
    pub(super) fn start(
        shared: Arc<Shared>,
        sweep_every: Duration,
        shutdown: CancellationToken,
    ) -> Writer {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(shared.clone(), rx, sweep_every, shutdown));
        Writer { tx, shared }
    }

    pub(super) fn push(&self, op: Op) {
        if self.tx.try_send(op).is_err() {
            self.shared.metrics.cluster.directory_dropped();
        }
    }
}

async fn run(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Op>,
    sweep_every: Duration,
    shutdown: CancellationToken,
) {
    let left = redis::Script::new(LEFT);
    let own = redis::Script::new(OWN);
    let scripts = Scripts {
        left: &left,
        own: &own,
    };
    let mut sweep = tokio::time::interval(sweep_every);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return;
                }
            }
            _ = sweep.tick() => {
                if let Err(e) = sweep_dead(&shared, &scripts).await {
                    tracing::debug!(error = %e, "directory sweep failed");
                }
                continue;
            }
        }
        let mut pause = Duration::from_millis(50);
        let mut refusals = 0;
        loop {
            match write(&shared, &scripts, &batch).await {
                Ok(()) => break,
                Err(Failure::Away(e)) => {
                    shared.metrics.cluster.redis_error("directory");
                    tracing::debug!(error = %e, "directory write failed; retrying");
                }
                Err(Failure::Refused(e)) => {
                    shared.metrics.cluster.redis_error("directory");
                    refusals += 1;
                    // Redis answers but refuses the batch (a key of the
                    // wrong type, written behind sser's back): retrying
                    // for ever would hold up every write behind it.
                    if refusals >= MAX_REFUSALS {
                        tracing::warn!(error = %e, writes = batch.len(), "Redis refuses directory writes; dropped");
                        for _ in 0..batch.len() {
                            shared.metrics.cluster.directory_dropped();
                        }
                        break;
                    }
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(Duration::from_secs(1));
        }
        batch.clear();
    }
}

/// The writer's Lua scripts.
struct Scripts<'a> {
    left: &'a redis::Script,
    own: &'a redis::Script,
}

/// One pipeline for the whole batch, in order.
async fn write(shared: &Shared, scripts: &Scripts<'_>, batch: &[Op]) -> Result<(), Failure> {
    let keys = &shared.keys;
    let mut pipe = redis::pipe();
    pipe.load_script(scripts.left)
        .ignore()
        .load_script(scripts.own)
        .ignore();
    // In the queue's order: a `left` never lands before its `joined`.
    for op in batch {
        match op {
            Op::Joined(e) => {
                let streams = serde_json::to_string(&e.streams).unwrap_or_default();
                pipe.hset_multiple(
                    keys.conn(&e.id),
                    &[
                        ("node", shared.node.as_str()),
                        ("app", e.app.as_str()),
                        ("user", e.user.as_str()),
                        ("device", e.device.as_deref().unwrap_or_default()),
                        ("remote", e.remote.as_deref().unwrap_or_default()),
                        ("since", e.since_ms.to_string().as_str()),
                        ("streams", streams.as_str()),
                    ],
                )
                .ignore()
                .zadd(keys.conns(), &e.id, 0)
                .ignore()
                .zadd(keys.app_conns(&e.app), &e.id, 0)
                .ignore()
                .zadd(keys.user_conns(&e.app, &e.user), &e.id, 0)
                .ignore()
                .sadd(keys.node_conns(&shared.node), &e.id)
                .ignore()
                .sadd(keys.directory_nodes(), &shared.node)
                .ignore();
                if let Some(device) = &e.device {
                    let mut invocation = scripts.own.prepare_invoke();
                    invocation
                        .key(keys.device_owner(&e.app, &e.user, device))
                        .arg(format!("{} {}", shared.node, e.id))
                        .arg(&shared.node)
                        .arg(keys.node(""));
                    pipe.invoke_script(&invocation).ignore();
                }
            }
            Op::Left {
                id,
                app,
                user,
                device,
                node,
            } => {
                let mut invocation = scripts.left.prepare_invoke();
                invocation
                    .key(keys.conn(id))
                    .key(keys.conns())
                    .key(keys.app_conns(app))
                    .key(keys.user_conns(app, user))
                    .key(keys.node_conns(node));
                if let Some(device) = device {
                    invocation.key(keys.device_owner(app, user, device));
                }
                invocation.arg(id).arg(format!("{node} {id}"));
                pipe.invoke_script(&invocation).ignore();
            }
        }
    }
    let mut conn = shared.conn.clone();
    let run = pipe.query_async::<()>(&mut conn);
    match tokio::time::timeout(shared.timeout, run).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(Failure::Away("no answer in time".into())),
    }
}

/// Removes the entries of every node that recorded some and is no longer
/// live.
async fn sweep_dead(shared: &Shared, scripts: &Scripts<'_>) -> Result<(), String> {
    let mut conn = shared.conn.clone();
    let recorders: Vec<String> = redis::cmd("SMEMBERS")
        .arg(shared.keys.directory_nodes())
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    for node in recorders {
        if node == shared.node {
            continue;
        }
        let live: bool = redis::cmd("EXISTS")
            .arg(shared.keys.node(&node))
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        if live {
            continue;
        }
        let set = shared.keys.node_conns(&node);
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&set)
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        for chunk in ids.chunks(BATCH) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.cmd("HMGET")
                    .arg(shared.keys.conn(id))
                    .arg("app")
                    .arg("user")
                    .arg("device");
            }
            type Fields = (Option<String>, Option<String>, Option<String>);
            let records: Vec<Fields> = pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            let ops: Vec<Op> = chunk
                .iter()
                .zip(records)
                .filter_map(|(id, fields)| match fields {
                    (Some(app), Some(user), device) => Some(Op::Left {
                        id: id.clone(),
                        app,
                        user,
                        device: device.filter(|d| !d.is_empty()),
                        node: node.clone(),
                    }),
                    _ => None,
                })
                .collect();
            write(shared, scripts, &ops)
                .await
                .map_err(|e| e.to_string())?;
        }
        let mut pipe = redis::pipe();
        pipe.del(&set)
            .ignore()
            .srem(shared.keys.directory_nodes(), &node)
            .ignore();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(node, "removed a dead node's connections from the directory");
    }
    Ok(())
}
