//! The dashboard and identity streams in a real browser: the embedded files
//! are served, and a real headless Chromium (Debian's `chromium`, driven by
//! `playwright-core` from `tests/browser/`)
//!
//! - signs in to the dashboard, watches the counters move while this test's
//!   driver publishes, tails a topic, lists identity connections (filtered,
//!   by page) and kicks one, sees the server go and come back (without
//!   identity tokens: the connections view then explains why it is empty),
//!   and signs out (`dashboard.e2e.mjs`);
//! - follows `GET /api/v1/stream` with an `EventSource` and an identity
//!   token, receives a targeted send, and is taken over by a second tab
//!   without the two reconnecting into a loop (`identity.e2e.mjs`).
//!
//! Screenshots land in `tests/artifacts/` (git-ignored).
//!
//! Prerequisites are installed by `scripts/test-deps.sh` (sourced by
//! `scripts/test.sh`). If Chromium or the driver's packages are missing this
//! test FAILS, saying what to run: a browser test that skips silently would
//! let the dashboard break unnoticed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::browser::{chromium, driver_dir, repo};
use common::*;
use sser::config::{Config, Span};
use sser::secret::Secret;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The HMAC secret of the identity tokens in these tests (the drivers mint
/// theirs with `POST /api/v1/tokens`).
const IDENTITY_SECRET: &str = "browser-test-secret-of-at-least-32b";
/// The server's `retry:` in the identity test: short, so that a client that
/// wrongly reconnects after a take-over does so within the test.
const SHORT_RETRY: Duration = Duration::from_millis(500);

/// Identity tokens on, presence without grace (counts drop at once).
fn with_identity(c: &mut Config) {
    c.identity.secret = Some(Secret::new(IDENTITY_SECRET));
    c.presence.grace = Span(Duration::ZERO);
}

#[tokio::test]
async fn serves_the_embedded_dashboard() {
    let server = TestServer::start().await;
    let resp = server
        .http
        .get(server.url("/"))
        .send()
        .await
        .expect("GET /");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let etag = resp.headers()["etag"].clone();
    let html = resp.text().await.expect("body");
    assert!(html.contains("/assets/app.js"), "index links the script");

    // Revalidation costs a 304.
    let resp = server
        .http
        .get(server.url("/"))
        .header("if-none-match", etag)
        .send()
        .await
        .expect("GET / again");
    assert_eq!(resp.status(), 304);

    for (path, kind) in [
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/style.css", "text/css; charset=utf-8"),
        ("/favicon.ico", "image/svg+xml"),
    ] {
        let resp = server.http.get(server.url(path)).send().await.expect(path);
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], kind, "{path}");
    }
    let resp = server
        .http
        .get(server.url("/assets/../Cargo.toml"))
        .send()
        .await
        .expect("traversal");
    assert_eq!(resp.status(), 404);

    // Who am I: decides which view the page shows.
    for (token, role) in [(API_TOKEN, "operator"), (METRICS_TOKEN, "monitor")] {
        let v: serde_json::Value = server
            .http
            .get(server.url("/api/v1/whoami"))
            .bearer_auth(token)
            .send()
            .await
            .expect("whoami")
            .json()
            .await
            .expect("whoami body");
        assert_eq!(v["role"], role);
    }
    let resp = server
        .http
        .get(server.url("/api/v1/whoami"))
        .bearer_auth("nope")
        .send()
        .await
        .expect("whoami");
    assert_eq!(resp.status(), 401);
    server.stop().await;
}

#[tokio::test]
async fn dashboard_can_be_turned_off() {
    let server = TestServer::start_with(|c| c.server.dashboard = sser::config::Flag(false)).await;
    let resp = server
        .http
        .get(server.url("/"))
        .send()
        .await
        .expect("GET /");
    assert_eq!(resp.status(), 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium() {
    let artifacts = run_driver(
        "dashboard.e2e.mjs",
        with_identity,
        // The restart the driver asks for brings the server back without
        // identity tokens: the connections view must then say why it is
        // empty, with no error.
        |_| {},
        &[("SSER_METRICS_TOKEN", METRICS_TOKEN)],
    )
    .await;
    assert!(
        artifacts.join("dashboard.png").is_file(),
        "screenshot written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_stream_in_headless_chromium() {
    let retry_ms = SHORT_RETRY.as_millis().to_string();
    let artifacts = run_driver(
        "identity.e2e.mjs",
        |c| {
            with_identity(c);
            c.pubsub.retry = Span(SHORT_RETRY);
        },
        |_| {},
        &[("SSER_RETRY_MS", &retry_ms)],
    )
    .await;
    assert!(
        artifacts.join("identity-tab1.png").is_file(),
        "screenshot written"
    );
}

/// Starts the server (configured by `config`) and runs `script` from
/// `tests/browser/` against it, with `SSER_URL`, `SSER_API_TOKEN`,
/// `ARTIFACTS_DIR`, `CHROMIUM` and `env`. When the driver prints `@@stop` /
/// `@@start` the server is stopped / started again on the same address
/// (configured by `restart`), and the driver is answered `ok`. Fails the
/// test if the driver fails or takes over 3 minutes; returns the artifacts
/// directory.
async fn run_driver(
    script: &str,
    config: fn(&mut Config),
    restart: fn(&mut Config),
    env: &[(&str, &str)],
) -> PathBuf {
    let chromium = chromium();
    let dir = driver_dir();
    let artifacts = repo().join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");

    let mut server = Some(TestServer::start_with(config).await);
    let base = server.as_ref().map(|s| s.base.clone()).unwrap_or_default();
    let addr: std::net::SocketAddr = base["http://".len()..].parse().expect("server address");
    let mut child = tokio::process::Command::new("node")
        .arg(script)
        .current_dir(&dir)
        .env("SSER_URL", &base)
        .env("SSER_API_TOKEN", API_TOKEN)
        .env("ARTIFACTS_DIR", &artifacts)
        .env("CHROMIUM", &chromium)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (install Node.js to run the browser test)");
    let mut stdin = child.stdin.take().expect("driver stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("driver stdout")).lines();

    // Relay the driver's output, and stop or restart the server when it asks.
    let drive = async {
        while let Some(line) = lines.next_line().await.expect("driver output") {
            match line.as_str() {
                "@@stop" => {
                    if let Some(s) = server.take() {
                        s.stop().await;
                    }
                }
                "@@start" => {
                    server = Some(
                        TestServer::start_with(|c| {
                            restart(c);
                            c.server.addr = sser::config::ListenAddr(addr);
                        })
                        .await,
                    );
                }
                _ => {
                    println!("{line}");
                    continue;
                }
            }
            stdin.write_all(b"ok\n").await.expect("answer the driver");
        }
        child.wait().await.expect("node exit status")
    };
    let status = tokio::time::timeout(Duration::from_secs(180), drive)
        .await
        .expect("the browser test finished within 3 minutes");
    if let Some(s) = server.take() {
        s.stop().await;
    }
    assert!(
        status.success(),
        "{script} failed ({status}); see its output above and the failure screenshots in {}",
        Path::new("tests/artifacts").display()
    );
    artifacts
}
