//! Smoke test of the `sser-bench` load generator: a tiny fan-out (to topics,
//! to single users, to a whole application), idle (topic and identity
//! connections), connect, flood and soak run against our server started in-process,
//! asserting zero loss and no errors. Never a timing assertion: the numbers
//! are not checked.
//!
//! The server comes from the `sser` library (a dev-dependency only): the
//! bench itself links nothing of the server's and drives it over sockets.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sser::Server;
use sser::config::Config;
use sser::hub::Hub;
use sser::secret::Secret;
use tokio_util::sync::CancellationToken;

/// How long any single wait in a test may take before it fails.
const DEADLINE: Duration = Duration::from_secs(60);
const API_TOKEN: &str = "test-api-token";

/// The server on a loopback port, with fixed tokens.
struct TestServer {
    base: String,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), sser::StartError>>,
}

impl TestServer {
    async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config::default();
        config.server.addr = "127.0.0.1:0".parse().expect("literal");
        config.pubsub.api_access_token = Some(Secret::new(API_TOKEN));
        config.server.shutdown_timeout = sser::config::Span(Duration::from_secs(5));
        tweak(&mut config);
        let server = Server::bind(config).await.expect("server binds");
        TestServer {
            base: format!("http://{}", server.local_addr()),
            hub: server.hub().clone(),
            shutdown: server.shutdown_token(),
            task: tokio::spawn(server.run()),
        }
    }

    /// Polls `check` until it holds or the deadline passes.
    async fn wait_until(&self, what: &str, check: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !check() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(DEADLINE, self.task).await;
    }
}

/// Runs the built bench binary with `args` against `server` and returns its
/// JSON report, failing the test if it exits non-zero.
async fn bench(server: &TestServer, args: &[&str]) -> Value {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sser-bench"));
    cmd.args(args)
        .args(["--url", &server.base, "--api-token", API_TOKEN, "--json"])
        .kill_on_drop(true);
    let out = tokio::time::timeout(DEADLINE, cmd.output())
        .await
        .expect("sser-bench finished in time")
        .expect("sser-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sser-bench {args:?} failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).expect("a JSON report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_everything_in_order() {
    let server = TestServer::start().await;
    let r = bench(
        &server,
        &[
            "fanout",
            "--topics",
            "2",
            "--subscribers",
            "6",
            "--publishers",
            "2",
            "--events",
            "40",
            "--size",
            "100",
            "--seed",
            "7",
        ],
    )
    .await;
    assert_eq!(r["subscribed"], 6);
    assert_eq!(r["published"], 40);
    // 40 events over 2 topics, 3 subscribers per topic.
    assert_eq!(r["expected"], 120);
    assert_eq!(r["received"], 120);
    assert_eq!(r["lost"], 0);
    assert_eq!(r["out_of_order"], 0);
    assert_eq!(r["lagged_disconnects"], 0);
    assert_eq!(r["latency"]["count"], 120);
    // The run cleans up after itself.
    server
        .wait_until("bench topics deleted", || server.hub.topics().is_empty())
        .await;
    server.stop().await;
}

/// A server with identity tokens on (the bench mints through it).
async fn identity_server() -> TestServer {
    TestServer::start_with(|c| {
        c.identity.secret = Some(Secret::new("smoke-test-jwt-secret-of-32-bytes"));
    })
    .await
}

/// `--to users`: each of 8 identities on its own stream, every send to one
/// random user reaches exactly that user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targeted_sends_reach_their_user_only() {
    let server = identity_server().await;
    let pid = std::process::id().to_string();
    let r = bench(
        &server,
        &[
            "fanout",
            "--server-pid",
            &pid,
            "--to",
            "users",
            "--random-topic",
            "--subscribers",
            "8",
            "--publishers",
            "2",
            "--events",
            "60",
        ],
    )
    .await;
    assert_eq!(r["params"]["topics"], 8, "{r}");
    assert_eq!(r["subscribed"], 8, "{r}");
    assert_eq!(r["published"], 60, "{r}");
    // One follower per send: a user that got another's event would show as
    // received above expected.
    assert_eq!(r["expected"], 60, "{r}");
    assert_eq!(r["received"], 60, "{r}");
    assert_eq!(r["out_of_order"], 0, "{r}");
    assert!(r["server_deliver_cpu_secs"].as_f64().is_some(), "{r}");
    server.stop().await;
}

/// `--to app`: every send to the application reaches every identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_broadcast_reaches_every_identity() {
    let server = identity_server().await;
    let r = bench(
        &server,
        &[
            "fanout",
            "--to",
            "app",
            "--subscribers",
            "5",
            "--events",
            "20",
        ],
    )
    .await;
    assert_eq!(r["params"]["topics"], 1, "{r}");
    assert_eq!(r["expected"], 100, "{r}");
    assert_eq!(r["received"], 100, "{r}");
    assert_eq!(r["lost"], 0, "{r}");

    // Idle identity connections: each its own user, all open.
    let pid = std::process::id().to_string();
    let r = bench(
        &server,
        &[
            "idle",
            "--identities",
            "--connections",
            "12",
            "--hold",
            "100ms",
            "--server-pid",
            &pid,
        ],
    )
    .await;
    assert_eq!(r["open"], 12, "{r}");
    assert_eq!(r["connect_errors"], 0, "{r}");
    server.stop().await;
}

/// Without an identity key the bench says why it cannot mint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_need_a_key_on_the_server() {
    let server = TestServer::start().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sser-bench"))
        .args(["fanout", "--to", "users", "--subscribers", "2"])
        .args(["--url", &server.base, "--api-token", API_TOKEN])
        .output()
        .await
        .expect("sser-bench runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SSER_JWT_SECRET"), "{stderr}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_connect_run_clean() {
    let server = TestServer::start().await;
    let pid = std::process::id().to_string();
    let r = bench(
        &server,
        &[
            "idle",
            "--connections",
            "20",
            "--topics",
            "3",
            "--hold",
            "100ms",
            "--server-pid",
            &pid,
        ],
    )
    .await;
    assert_eq!(r["open"], 20);
    assert_eq!(r["connect_errors"], 0);
    assert!(r["server_rss_kib_after"].as_u64().is_some());

    let r = bench(
        &server,
        &[
            "connect",
            "--concurrency",
            "2",
            "--duration",
            "300ms",
            "--publish-interval",
            "5ms",
        ],
    )
    .await;
    assert_eq!(r["errors"], 0);
    assert!(r["cycles"].as_u64().unwrap_or(0) > 0);
    server.stop().await;
}

/// A few seconds of soak: floods open and close, churn runs, and RSS is
/// sampled from the server's own `/metrics` (no pid given).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_samples_memory_through_floods() {
    let server = TestServer::start().await;
    let r = bench(
        &server,
        &[
            "soak",
            "--duration",
            "2s",
            "--flood-every",
            "700ms",
            "--flood-hold",
            "200ms",
            "--flood-cooldown",
            "100ms",
            "--flood-connections",
            "20",
            "--flood-publishes",
            "20",
            "--topics",
            "2",
            "--churn-concurrency",
            "2",
            "--publish-interval",
            "20ms",
            "--sample-every",
            "200ms",
            "--settle",
            "300ms",
        ],
    )
    .await;
    let floods = r["floods"].as_array().expect("floods");
    assert!(!floods.is_empty(), "{r}");
    for f in floods {
        assert_eq!(f["opened"], 20, "{f}");
        assert_eq!(f["connect_errors"], 0, "{f}");
        assert_eq!(f["published"], 20, "{f}");
        assert!(f["server_rss_kib_held"].as_u64().is_some(), "{f}");
    }
    let samples = r["samples"].as_array().expect("samples");
    assert!(samples.len() >= 5, "{r}");
    assert!(
        samples.iter().all(|s| s["rss_kib"].as_u64().is_some()),
        "{r}"
    );
    assert_eq!(r["churn_errors"], 0, "{r}");
    assert!(r["churn_cycles"].as_u64().unwrap_or(0) > 0, "{r}");
    assert!(r["server_rss_kib_end"].as_u64().is_some(), "{r}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_reports_healthz_and_server_closes() {
    let server = TestServer::start_with(|c| {
        c.server.handshake_timeout = sser::config::Span(std::time::Duration::from_millis(200));
    })
    .await;
    let r = bench(
        &server,
        &[
            "flood",
            "--connections",
            "20",
            "--duration",
            "1s",
            "--reopen",
            "--probe-interval",
            "50ms",
        ],
    )
    .await;
    assert_eq!(r["healthz_failed"], 0);
    assert!(r["healthz_probes"].as_u64().unwrap_or(0) > 5);
    assert!(r["flood_closed_by_server"].as_u64().unwrap_or(0) >= 20);
    server.stop().await;
}

/// Creates a topic over plain HTTP (as `bench/cluster-100k.sh` does with
/// curl): its (id, subscriber token).
async fn create_topic(server: &TestServer) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.base.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "POST /api/v1/pubsubs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {API_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    tcp.write_all(req.as_bytes()).await.expect("send");
    let mut resp = String::new();
    tcp.read_to_string(&mut resp).await.expect("read");
    let body = resp.split_once("\r\n\r\n").expect("a response").1;
    let v: Value = serde_json::from_str(body).expect("JSON body");
    let field = |k: &str| v["pubsub"][k].as_str().expect("pubsub field").to_string();
    (field("id"), field("token"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_counts_every_event_send_publishes_from_another_process() {
    let server = TestServer::start().await;
    let (topic, token) = create_topic(&server).await;
    let dir = std::env::temp_dir().join(format!("sser-bench-hold-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ready = dir.join("ready");
    let ready_arg = ready.display().to_string();
    let hold = {
        let base = server.base.clone();
        let args: Vec<String> = [
            "hold",
            "--topic",
            &topic,
            "--topic-token",
            &token,
            "--subscribers",
            "5",
            "--events",
            "3",
            "--ready-file",
            &ready_arg,
            "--drain-timeout",
            "5s",
            "--url",
            &base,
            "--api-token",
            API_TOKEN,
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        tokio::process::Command::new(env!("CARGO_BIN_EXE_sser-bench"))
            .args(args)
            .kill_on_drop(true)
            .output()
    };
    let hold = tokio::spawn(hold);
    server
        .wait_until("the hold process to be ready", || ready.exists())
        .await;
    let sent = bench(
        &server,
        &[
            "send",
            "--topic",
            &topic,
            "--events",
            "3",
            "--interval",
            "50ms",
        ],
    )
    .await;
    assert_eq!(sent["publish_errors"], 0);
    let out = tokio::time::timeout(DEADLINE, hold)
        .await
        .expect("hold finished in time")
        .expect("hold task")
        .expect("hold runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(
        (r["open"].as_u64(), r["received"].as_u64()),
        (Some(5), Some(15))
    );
    assert_eq!(r["lost"], 0);
    for k in 0..3 {
        let (ev, pubd) = (&r["per_event"][k], &sent["per_event"][k]);
        assert_eq!(ev["received"], 5);
        // Both processes stamp one clock: delivery comes after the publish.
        let sent_ns = pubd["sent_ns"].as_u64().expect("sent_ns");
        assert_eq!(ev["sent_ns"].as_u64(), Some(sent_ns));
        assert!(ev["last_ns"].as_u64().expect("last_ns") >= sent_ns);
    }
    let _ = std::fs::remove_dir_all(&dir);
    server.stop().await;
}
