//! The dashboard's Cluster card in a real headless Chromium
//! (`tests/browser/cluster.e2e.mjs`, see `tests/dashboard.rs` for the
//! browser set-up): two nodes on one `redis-server`, each with its own
//! `cluster.advertiseAddr`; node A's dashboard lists both, at their
//! advertised addresses, with the connections each holds.

use std::process::Stdio;
use std::time::Duration;

use crate::common::browser::{chromium, driver_dir, repo};
use crate::common::*;
use crate::redis_server::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_card_lists_both_nodes_with_their_connections() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = redis.url();
    let advertised = ["sser-a.internal:8889", "[fd00::b]:8889"];
    let nodes: Vec<ServerProcess> = advertised
        .iter()
        .map(|addr| {
            ServerProcess::start(
                dir.path(),
                &[
                    ("SSER_CLUSTER_REDIS_URL", url.as_str()),
                    ("SSER_CLUSTER_ADVERTISE_ADDR", addr),
                    // A heartbeat (with the connection count) every second.
                    ("SSER_CLUSTER_NODE_TTL", "3s"),
                ],
            )
        })
        .collect();
    let artifacts = repo().join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let mut driver = tokio::process::Command::new("node")
        .arg("cluster.e2e.mjs")
        .current_dir(driver_dir())
        .env("SSER_URL", &nodes[0].base)
        .env("SSER_URL_B", &nodes[1].base)
        .env("SSER_API_TOKEN", API_TOKEN)
        .env("SSER_METRICS_TOKEN", METRICS_TOKEN)
        .env("SSER_ADVERTISED_A", advertised[0])
        .env("SSER_ADVERTISED_B", advertised[1])
        .env("ARTIFACTS_DIR", &artifacts)
        .env("CHROMIUM", chromium())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (install Node.js to run the browser test)");
    let status = tokio::time::timeout(Duration::from_secs(120), driver.wait())
        .await
        .expect("the browser test finished within 2 minutes")
        .expect("node exit status");
    assert!(
        status.success(),
        "cluster.e2e.mjs failed ({status}); see its output above and {}",
        artifacts.join("dashboard-cluster-failure.png").display()
    );
    assert!(artifacts.join("dashboard-cluster.png").is_file());
}
