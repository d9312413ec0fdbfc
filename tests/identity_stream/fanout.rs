//! A targeted send to one user among many connected reaches that user
//! alone, and costs O(targets): 1,000 identities against an in-process
//! server, and 10,000 (issue 11's figure) against the server binary, which
//! needs ~11,000 file descriptors in the test process (~20 s on a loaded
//! 2-core box).

use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use super::*;

/// Connects `n` identities of app `big` to `api`'s server, sends to one,
/// then to all, and checks that only the one got the first send.
async fn one_user_of(api: &Api, n: usize) {
    // Every client connection is a file descriptor of this process.
    let want = n as u64 + 1024;
    let got = rlimit::increase_nofile_limit(want).expect("raise RLIMIT_NOFILE");
    assert!(got >= want, "RLIMIT_NOFILE is {got}, {want} needed");
    let api = Arc::new(Api {
        base: api.base.clone(),
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client"),
    });
    // Open every stream, a few hundred at a time.
    let mut streams: Vec<Option<SseStream>> = (0..n).map(|_| None).collect();
    let mut opening = FuturesUnordered::new();
    let mut next = 0;
    while next < n || !opening.is_empty() {
        while next < n && opening.len() < 256 {
            let api = api.clone();
            let i = next;
            opening.push(async move {
                let tok = token("big", &format!("user-{i}"), None);
                (i, open(&api, &tok, &[]).await)
            });
            next += 1;
        }
        if let Some((i, s)) = opening.next().await {
            streams[i] = Some(s);
        }
    }
    wait_until("every identity connected", || async {
        api.metric("active_subscribers").await == n as u64
    })
    .await;

    let target = n / 2 + 7;
    let started = std::time::Instant::now();
    let sent = send(
        &api,
        json!({"app": "big", "users": [format!("user-{target}")], "message": "just you"}),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(sent["reached"], 1, "{sent}");
    eprintln!("targeted send with {n} identities connected: {took:?}");
    let everyone = send(&api, json!({"app": "big", "message": "everyone"})).await;
    assert_eq!(everyone["reached"], n as u64);

    // Each stream's first event says whether the targeted one came before
    // the broadcast: only the target's did.
    for (i, stream) in streams.iter_mut().enumerate() {
        let stream = stream.as_mut().expect("opened");
        let first = stream.expect_event().await;
        if i == target {
            assert_eq!(
                (first.event.as_str(), first.data.as_str()),
                ("@user", "just you")
            );
            assert_eq!(stream.expect_event().await.data, "everyone");
        } else {
            assert_eq!(
                (first.event.as_str(), first.data.as_str()),
                ("@app", "everyone"),
                "user-{i} got something else first"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_reaches_one_user_of_a_thousand() {
    let server = start().await;
    one_user_of(&server, 1_000).await;
    server.stop().await;
}

/// The server runs as its own process here: both ends of 10,000
/// connections in one process would need more descriptors than a typical
/// hard limit (20,000) allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_reaches_one_user_of_ten_thousand() {
    let dir = tempfile::tempdir().expect("dir");
    let process = ServerProcess::start(
        dir.path(),
        &[
            ("SSER_JWT_SECRET", SECRET),
            ("SSER_IDENTITY_DEFAULT_APP", APP),
        ],
    );
    one_user_of(&process.api(), 10_000).await;
}
