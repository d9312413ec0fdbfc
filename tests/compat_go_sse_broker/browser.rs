//! go-sse-broker's browser flow in a real headless Chromium: the README's
//! `EventSource('/events?token=…&device=…')` receives a `/send` (unnamed
//! and `custom-event`), and `sys_extrude_offline` when a second page takes
//! its device over (`tests/browser/compat_go_sse_broker.e2e.mjs`, driven
//! by `playwright-core`; `scripts/test-deps.sh` installs both). Fails,
//! saying what to install, when Chromium or the driver is missing.

use std::time::Duration;

use super::*;
use common::browser::{chromium, driver_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_flow_in_headless_chromium() {
    let (dir, chromium) = (driver_dir(), chromium());
    let server = start().await;
    let run = tokio::process::Command::new("node")
        .arg("compat_go_sse_broker.e2e.mjs")
        .current_dir(&dir)
        .env("SSER_URL", &server.base)
        .env("SSER_API_TOKEN", API_TOKEN)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the browser test finished within 2 minutes")
        .expect("node runs (install Node.js to run the browser test)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    server.stop().await;
    assert!(
        out.status.success(),
        "the browser test failed: see its output above"
    );
    assert!(stdout.contains("[gsb-e2e] ok"), "{stdout}");
}
