//! The `sser` binary as an operator runs it: start-up messages and errors,
//! the command line, and graceful shutdown on SIGTERM.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn sser() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sser"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

#[test]
fn help_and_version() {
    let out = sser().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = sser().arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--config-dir"));
}

/// Each bad setting stops start-up with exit code 2 and a message naming it.
#[test]
fn bad_settings_stop_startup_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("PORT", "eighty")], "server.addr (PORT)"),
        (&[("SSER_SSL_ENABLED", "perhaps")], "SSER_SSL_ENABLED"),
        (&[("SSER_TICK_FREQUENCY", "often")], "pubsub.tickFrequency"),
        (
            &[("SSER_MAX_REQUEST_BODY_SIZE", "1XB")],
            "server.maxRequestBodySize",
        ),
        (&[("SSER_MAX_HEADER_SIZE", "4KiB")], "server.maxHeaderSize"),
        (&[("APP_ENV", "production")], "SSER_API_ACCESS_TOKEN"),
        (
            &[("APP_ENV", "production"), ("SSER_API_ACCESS_TOKEN", "a")],
            "SSER_METRICS_ACCESS_TOKEN",
        ),
    ];
    for (env, expected) in cases {
        let mut cmd = sser();
        cmd.current_dir(dir.path());
        for (k, v) in *env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {stderr}");
        assert!(stderr.contains(expected), "{env:?}: {stderr}");
    }
    // A malformed YAML file is named too.
    std::fs::create_dir(dir.path().join("_config")).unwrap();
    std::fs::write(dir.path().join("_config/base.yaml"), "server: [unclosed\n").unwrap();
    let out = sser().current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("base.yaml"));
}

/// A port already taken is a clear start-up error, not a panic.
#[test]
fn busy_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = sser()
        .current_dir(dir.path())
        .env("PORT", &port)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
}

/// With no configuration at all the server starts in development, generates
/// tokens and prints them once with the address; `.env` is read; `APP_ENV`
/// selects the YAML file.
#[tokio::test]
async fn starts_on_embedded_defaults_and_reads_env_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "# SSER-style .env\nSSER_API_ACCESS_TOKEN=from#dotenv\nSSER_METRICS_ACCESS_TOKEN=\n",
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sser"));
    cmd.current_dir(dir.path())
        .env_clear()
        .env("PORT", "127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while !lines
        .iter()
        .any(|l: &String| l.contains("SSER_METRICS_ACCESS_TOKEN="))
    {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("start-up banner");
        lines.push(line);
    }
    let banner = lines.join("\n");
    let base = banner
        .lines()
        .find_map(|l| l.split("is running at ").nth(1))
        .expect("address printed")
        .trim()
        .to_string();
    // Only the missing token was generated; the .env one (with its '#') is literal.
    assert!(!banner.contains("SSER_API_ACCESS_TOKEN="), "{banner}");
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{base}/api/v1/pubsubs"))
        .bearer_auth("from#dotenv")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let _ = child.kill();
    let _ = child.wait();
}

/// SIGTERM: streams are told and end cleanly, the process exits 0 promptly.
#[tokio::test]
async fn graceful_shutdown_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]);
    let http = reqwest::Client::new();
    let created: serde_json::Value = http
        .post(format!("{}/api/v1/pubsubs", server.base))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["pubsub"]["id"].as_str().unwrap();
    let token = created["pubsub"]["token"].as_str().unwrap();
    let resp = http
        .get(format!("{}/api/v1/pubsubs/{id}/events", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    // The stream ended cleanly (not reset) after the shutdown comment.
    let body = tokio::time::timeout(DEADLINE, resp.text())
        .await
        .expect("stream ended")
        .expect("clean end of stream");
    assert!(body.contains("server shutting down"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let _ = json!({});
}
