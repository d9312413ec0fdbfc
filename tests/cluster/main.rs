//! Cluster tests: a real `redis-server` and three sser nodes as processes
//! (the built binary), talked to over real sockets with a real SSE parser.
//! Phase 1 of issue 13: topics across nodes (one order, shared history and
//! registry), Redis outages (503, `/readyz`, recovery without gap), and
//! entries injected into Redis behind sser's back. Also the documented
//! deployment: `deploy/cluster/nginx.conf` in front of the nodes, and the
//! dashboard's Cluster card in a real browser. Phase 2: identity inboxes and
//! the presence feed across nodes (`inboxes`); identity connections
//! across nodes: take-over, kick, blocks, listings (`directory`); Redis
//! stopped mid-storm, restarted empty, history trimmed while a node was cut
//! off, retention and resume by id in Redis (`outage`, `storm`, `history`).

#[path = "../common/mod.rs"]
mod common;

mod dashboard;
mod directory;
mod history;
mod inboxes;
mod load_balancer;
mod node_loss;
mod nodes;
mod outage;
mod presence;
mod redis_server;
mod storm;
mod topics;

use common::*;
use redis_server::RedisServer;
use serde_json::Value;

/// Three nodes of one cluster over `redis`.
pub struct Cluster {
    pub redis: RedisServer,
    pub nodes: Vec<ServerProcess>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub fn start() -> Cluster {
        Cluster::start_with(3, &[])
    }

    /// `count` nodes, with `extra` settings on top of the tests' own.
    pub fn start_with(count: usize, extra: &[(&str, &str)]) -> Cluster {
        let redis = RedisServer::start();
        let dir = tempfile::tempdir().expect("temp dir");
        let url = redis.url();
        let mut env = vec![
            ("SSER_CLUSTER_REDIS_URL", url.as_str()),
            ("SSER_CLUSTER_REDIS_TIMEOUT", "1s"),
            ("SSER_TICK_FREQUENCY", "1s"),
        ];
        env.extend_from_slice(extra);
        let nodes = (0..count)
            .map(|_| ServerProcess::start(dir.path(), &env))
            .collect();
        Cluster {
            redis,
            nodes,
            _dir: dir,
        }
    }

    pub fn node(&self, i: usize) -> Api {
        self.nodes[i].api()
    }
}

/// Sends `signal` (`STOP`, `CONT`, …) to a node's process.
pub fn signal(node: &ServerProcess, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(node.child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal}");
}

/// Waits until `node` knows topic `id` (created on another node).
pub async fn wait_for_topic(node: &Api, id: &str) {
    wait_until("the topic to reach the other node", || async {
        node.http
            .get(node.url(&format!("/api/v1/pubsubs/{id}")))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
}

/// `GET /readyz`: (status, body).
pub async fn readyz(node: &Api) -> (u16, Value) {
    match node.http.get(node.url("/readyz")).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (status, resp.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

/// One Prometheus sample from `/metrics`.
pub async fn prometheus(node: &Api, name: &str) -> f64 {
    let text = prometheus_text(node).await;
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

/// The sum of every series of a Prometheus metric (all its labels).
pub async fn prometheus_sum(node: &Api, name: &str) -> f64 {
    let text = prometheus_text(node).await;
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .sum()
}

/// The whole `/metrics` exposition.
pub async fn prometheus_text(node: &Api) -> String {
    node.http
        .get(node.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .expect("metrics request")
        .text()
        .await
        .expect("metrics body")
}
