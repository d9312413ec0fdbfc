//! The load balancer of `deploy/cluster/`: its very `nginx.conf`, run by
//! Debian's nginx (installed by `scripts/test-deps.sh`) in front of three
//! real nodes, with only the upstream addresses, the listen port and the pid
//! file rewritten for loopback. Streams opened through it receive a publish
//! made through it, whichever nodes the balancer picked for each request.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::common::*;
use crate::{Cluster, wait_for_topic};

/// nginx running `deploy/cluster/nginx.conf`, stopped when dropped.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(cluster: &Cluster) -> Nginx {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let conf = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/cluster/nginx.conf"),
        )
        .expect("deploy/cluster/nginx.conf");
        let pid = dir.path().join("nginx.pid");
        let mut rewritten = replace_once(&conf, "listen 80;", &format!("listen 127.0.0.1:{port};"));
        rewritten = replace_once(
            &rewritten,
            "pid /tmp/nginx.pid;",
            &format!("pid {};", pid.display()),
        );
        for (i, node) in cluster.nodes.iter().enumerate() {
            let addr = node.base.trim_start_matches("http://");
            rewritten = replace_once(&rewritten, &format!("sser-{}:8889", i + 1), addr);
        }
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, rewritten).expect("write nginx.conf");
        let binary = ["/usr/sbin/nginx", "nginx"]
            .into_iter()
            .find(|b| std::path::Path::new(b).exists())
            .unwrap_or("nginx");
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg("stderr")
            .arg("-c")
            .arg(&path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx is installed (scripts/test-deps.sh installs nginx-light)");
        let deadline = std::time::Instant::now() + DEADLINE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "nginx did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // TERM, not KILL: the master stops its workers on the way out (a
        // killed master would leave them running).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + DEADLINE;
        while !matches!(self.child.try_wait(), Ok(Some(_))) {
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `text` with its one occurrence of `from` replaced: the test fails when
/// the documented file no longer has what it rewrites.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "deploy/cluster/nginx.conf should contain {from:?} once"
    );
    text.replacen(from, to, 1)
}

#[tokio::test]
async fn streams_through_the_documented_nginx_get_a_publish_made_through_it() {
    let cluster = Cluster::start();
    let nginx = Nginx::start(&cluster);
    let lb = Api::new(&format!("http://127.0.0.1:{}", nginx.port));

    let (topic, token) = lb.create_topic(json!({})).await;
    for i in 0..3 {
        wait_for_topic(&cluster.node(i), &topic).await;
    }
    // Round robin spreads these over the nodes (per nginx worker).
    let mut streams = Vec::new();
    for _ in 0..6 {
        let stream = lb.subscribe(&topic, &token).await;
        assert_eq!(stream.status, 200);
        assert_eq!(
            stream.headers["content-type"], "text/event-stream",
            "the stream's head comes through unchanged"
        );
        streams.push(stream);
    }
    wait_until("every stream to be open on some node", || async {
        let mut open = 0;
        for i in 0..3 {
            open += cluster.node(i).metric("active_subscribers").await;
        }
        open == 6
    })
    .await;

    let id = lb
        .publish_ok(&topic, json!({"message": "through the balancer"}))
        .await;
    for stream in &mut streams {
        let event = stream.expect_event().await;
        assert_eq!(
            (event.id.as_str(), event.data.as_str()),
            (id.as_str(), "through the balancer")
        );
    }
}
