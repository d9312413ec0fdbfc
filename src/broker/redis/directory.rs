//! The cluster's directory of identity connections in Redis: the
//! [`Directory`] a cluster member gives its hub.
//!
//! State (names in [`super::keys`]): a hash per connection (node, app,
//! user, device, remote address, since, streams); sorted sets of connection
//! ids scored 0, so they page by id with `ZRANGEBYLEX` exactly as the
//! registry pages in memory (every connection, per application, per user);
//! a set per node of the connections it recorded; each device's owner
//! (`"<node> <conn>"`); blocks left by kicks, with a TTL. Claims, releases
//! and reads are Lua scripts ([`super::directory_scripts`]): one round trip,
//! atomic. Records are written and removed by a queue
//! ([`super::directory_writer`]), never on the connection's path. Ending a
//! connection on another node is a command on that node's control channel
//! ([`super::control`]).
//!
//! Every read passes over entries whose node is not live, so a node that
//! died holds nothing: its device owners no longer count at a claim, its
//! connections drop out of listings as soon as its heartbeat expires
//! (`cluster.nodeTtl`), and the writer's sweep removes them later. After
//! every (re)connect of the listener the hub records all this node's
//! connections again (`Command::Rejoin`): Redis may have come back empty.

use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use redis::Value;
use tokio::sync::mpsc;

use super::directory_scripts as scripts;
use super::directory_writer::{Op, Writer};
use super::{Shared, UNAVAILABLE, control};
use crate::broker::BrokerError;
use crate::broker::directory::{
    AppCounts, Claimed, Command, Directory, Ending, Entry, Filter, Holder, Located, Scope,
};
use crate::model::now_ms;

pub struct RedisDirectory {
    shared: Arc<Shared>,
    writer: Writer,
    commands: Mutex<Option<mpsc::UnboundedReceiver<Command>>>,
    claim: redis::Script,
    release: redis::Script,
    block: redis::Script,
    page: redis::Script,
    locate: redis::Script,
    app_counts: redis::Script,
}

impl RedisDirectory {
    pub(super) fn new(
        shared: Arc<Shared>,
        writer: Writer,
        commands: mpsc::UnboundedReceiver<Command>,
    ) -> RedisDirectory {
        RedisDirectory {
            shared,
            writer,
            commands: Mutex::new(Some(commands)),
            claim: redis::Script::new(scripts::CLAIM),
            release: redis::Script::new(scripts::RELEASE),
            block: redis::Script::new(scripts::BLOCK),
            page: redis::Script::new(&scripts::page()),
            locate: redis::Script::new(&scripts::locate()),
            app_counts: redis::Script::new(&scripts::app_counts()),
        }
    }

    /// Runs `invocation` with the node's timeout.
    async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, BrokerError> {
        let mut conn = self.shared.conn.clone();
        match tokio::time::timeout(self.shared.timeout, invocation.invoke_async::<T>(&mut conn))
            .await
        {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.shared.failed("directory", e)),
            Err(_) => {
                self.shared.metrics.cluster.redis_error("directory");
                tracing::warn!("Redis did not answer a directory request in time");
                Err(BrokerError::Unavailable(UNAVAILABLE.to_string()))
            }
        }
    }

    fn owner_key(&self, scope: Scope<'_>) -> Option<String> {
        scope
            .device
            .map(|d| self.shared.keys.device_owner(scope.app, scope.user, d))
    }

    /// The entries a page script returned.
    fn entries(rows: Vec<Value>) -> Vec<Located> {
        rows.into_iter().filter_map(located).collect()
    }
}

/// One row of [`scripts::page`]: id, node, addr, app, user, device, remote,
/// since, streams.
fn located(row: Value) -> Option<Located> {
    let Value::Array(fields) = row else {
        return None;
    };
    let text: Vec<String> = fields
        .into_iter()
        .map(|v| redis::from_redis_value::<String>(v).ok())
        .collect::<Option<_>>()?;
    let [id, node, addr, app, user, device, remote, since, streams] =
        <[String; 9]>::try_from(text).ok()?;
    Some(Located {
        entry: Entry {
            id,
            app,
            user,
            device: Some(device).filter(|d| !d.is_empty()),
            remote: Some(remote).filter(|r| !r.is_empty()),
            since_ms: since.parse().unwrap_or(0),
            streams: serde_json::from_str(&streams).unwrap_or_default(),
        },
        node,
        node_addr: addr,
    })
}

#[async_trait]
impl Directory for RedisDirectory {
    fn node(&self) -> &str {
        &self.shared.node
    }

    async fn claim(
        &self,
        id: &str,
        scope: Scope<'_>,
        reject: bool,
    ) -> Result<Claimed, BrokerError> {
        let keys = &self.shared.keys;
        let user_block = keys.block(scope.app, scope.user, None);
        let mut invocation = self.claim.prepare_invoke();
        invocation.key(&user_block);
        match scope.device {
            Some(d) => invocation.key(keys.block(scope.app, scope.user, Some(d))),
            None => invocation.key(&user_block),
        };
        if let Some(owner) = self.owner_key(scope) {
            invocation.key(owner);
        }
        invocation
            .arg(&self.shared.node)
            .arg(id)
            .arg(if reject { "1" } else { "0" })
            .arg(keys.node(""));
        let reply: Vec<String> = self.run(&invocation).await?;
        Ok(match reply.first().map(String::as_str) {
            Some("blocked") => Claimed::Blocked {
                until_ms: reply.get(1).and_then(|t| t.parse().ok()).unwrap_or(0),
            },
            Some("busy") => Claimed::Busy,
            _ => Claimed::Granted {
                previous: match (reply.get(1), reply.get(2)) {
                    (Some(node), Some(conn)) => Some(Holder {
                        node: node.clone(),
                        conn: conn.clone(),
                    }),
                    _ => None,
                },
            },
        })
    }

    async fn release(
        &self,
        id: &str,
        scope: Scope<'_>,
        previous: Option<&Holder>,
    ) -> Result<(), BrokerError> {
        let Some(owner) = self.owner_key(scope) else {
            return Ok(());
        };
        let mut invocation = self.release.prepare_invoke();
        invocation
            .key(owner)
            .arg(format!("{} {id}", self.shared.node))
            .arg(previous.map_or(String::new(), |p| format!("{} {}", p.node, p.conn)));
        self.run::<i64>(&invocation).await.map(|_| ())
    }

    fn joined(&self, entry: Entry) {
        self.writer.push(Op::Joined(entry));
    }

    fn left(&self, id: &str, scope: Scope<'_>) {
        self.writer.push(Op::Left {
            id: id.to_string(),
            app: scope.app.to_string(),
            user: scope.user.to_string(),
            device: scope.device.map(str::to_string),
            node: self.shared.node.clone(),
        });
    }

    async fn locate(&self, id: &str) -> Result<Option<Located>, BrokerError> {
        let keys = &self.shared.keys;
        let mut invocation = self.locate.prepare_invoke();
        invocation.arg(keys.node("")).arg(keys.conn("")).arg(id);
        let rows: Vec<Value> = self.run(&invocation).await?;
        Ok(Self::entries(rows).into_iter().next())
    }

    async fn page(
        &self,
        filter: Filter<'_>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Located>, BrokerError> {
        let keys = &self.shared.keys;
        let (index, device) = match filter {
            Filter::All => (keys.conns(), None),
            Filter::App(app) => (keys.app_conns(app), None),
            Filter::User(app, user) => (keys.user_conns(app, user), None),
            // A user has few connections: its index, kept to the device.
            Filter::Device(app, user, device) => (keys.user_conns(app, user), Some(device)),
        };
        let start = after.map_or_else(|| "-".to_string(), |a| format!("({a}"));
        let want = if device.is_some() { 10_000 } else { limit };
        let mut invocation = self.page.prepare_invoke();
        invocation
            .key(index)
            .arg(keys.node(""))
            .arg(keys.conn(""))
            .arg(start)
            .arg(want);
        let rows: Vec<Value> = self.run(&invocation).await?;
        let mut entries = Self::entries(rows);
        if let Some(device) = device {
            entries.retain(|l| l.entry.device.as_deref() == Some(device));
            entries.truncate(limit);
        }
        Ok(entries)
    }

    async fn app_counts(&self, app: &str) -> Result<AppCounts, BrokerError> {
        let keys = &self.shared.keys;
        let mut invocation = self.app_counts.prepare_invoke();
        invocation
            .key(keys.app_conns(app))
            .arg(keys.node(""))
            .arg(keys.conn(""));
        let reply: Vec<Value> = self.run(&invocation).await?;
        let mut values = reply.into_iter();
        let number = |v: Option<Value>| {
            v.and_then(|v| redis::from_redis_value::<usize>(v).ok())
                .unwrap_or(0)
        };
        let users = number(values.next());
        let connections = number(values.next());
        let mut nodes = Vec::new();
        let rest: Vec<Value> = values.collect();
        for triple in rest.chunks_exact(3) {
            let node = redis::from_redis_value::<String>(triple[0].clone()).unwrap_or_default();
            let addr = redis::from_redis_value::<String>(triple[1].clone()).unwrap_or_default();
            let count = redis::from_redis_value::<usize>(triple[2].clone()).unwrap_or(0);
            nodes.push((node, addr, count));
        }
        Ok(AppCounts {
            users,
            connections,
            nodes,
        })
    }

    async fn block(&self, scope: Scope<'_>, until_ms: u64) -> Result<(), BrokerError> {
        let ttl = until_ms.saturating_sub(now_ms()).max(1);
        let mut invocation = self.block.prepare_invoke();
        invocation
            .key(self.shared.keys.block(scope.app, scope.user, scope.device))
            .arg(until_ms)
            .arg(ttl);
        self.run::<i64>(&invocation).await.map(|_| ())
    }

    async fn end_remote(
        &self,
        node: &str,
        ids: Vec<String>,
        why: Ending,
    ) -> Result<(), BrokerError> {
        let mut conn = self.shared.conn.clone();
        for chunk in ids.chunks(control::MAX_IDS) {
            let mut command = redis::cmd("PUBLISH");
            command
                .arg(self.shared.keys.control(node))
                .arg(control::encode_end(chunk, &why));
            let heard =
                tokio::time::timeout(self.shared.timeout, command.query_async::<i64>(&mut conn))
                    .await;
            match heard {
                Ok(Ok(n)) if n > 0 => {}
                // Nobody listens there now (the node is reconnecting or
                // gone): the connections were not ended.
                Ok(Ok(_)) => return Err(BrokerError::Unavailable(UNAVAILABLE.to_string())),
                Ok(Err(e)) => return Err(self.shared.failed("control", e)),
                Err(_) => {
                    self.shared.metrics.cluster.redis_error("control");
                    return Err(BrokerError::Unavailable(UNAVAILABLE.to_string()));
                }
            }
        }
        Ok(())
    }

    fn commands(&self) -> Option<mpsc::UnboundedReceiver<Command>> {
        self.commands.lock().take()
    }
}
