//! Connection limits over real sockets (README, "Operations"): silent and
//! half-open connections are closed at the handshake deadline, the caps
//! refuse (with a metric) while served streams stay up, a full server makes
//! room by closing a silent connection, trickled bodies are cut with 408,
//! idle SSE streams outlive every timeout, and at the open-file limit a new
//! client is refused at once instead of waiting in the backlog.
//!
//! Timeouts are configured short (hundreds of milliseconds) so the tests are
//! fast; the assertions on elapsed time only check that a close came from a
//! deadline (not before it), never how fast the machine is.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::{API_TOKEN, Api, DEADLINE, METRICS_TOKEN, ServerProcess, SseStream, TestServer};
use serde_json::json;
use sser::config::{Count, Span};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn ms(n: u64) -> Span {
    Span(Duration::from_millis(n))
}

fn socket_addr(base: &str) -> SocketAddr {
    base.trim_start_matches("http://")
        .parse()
        .expect("base URL is http://ip:port")
}

/// A raw TCP connection from `source` (a loopback address) to `base`.
async fn connect_from(source: Ipv4Addr, base: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(IpAddr::V4(source), 0))
        .expect("bind a loopback source address");
    socket.connect(socket_addr(base)).await.expect("connect")
}

async fn connect(base: &str) -> TcpStream {
    connect_from(Ipv4Addr::LOCALHOST, base).await
}

/// Reads until the server closes the connection: what it sent, and how long
/// that took. Fails if it is still open after [`DEADLINE`].
async fn until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let start = Instant::now();
    let mut sent = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((start + DEADLINE).into(), stream.read(&mut chunk)).await {
            Err(_) => panic!("the connection is still open after {DEADLINE:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (String::from_utf8_lossy(&sent).into_owned(), start.elapsed());
            }
            Ok(Ok(n)) => sent.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The HTTP helpers with a client whose connections come from `source`, so
/// they count against another address's cap.
fn api_from(base: &str, source: Ipv4Addr) -> Api {
    Api {
        base: base.to_string(),
        http: reqwest::Client::builder()
            .local_address(IpAddr::V4(source))
            .timeout(DEADLINE)
            .build()
            .expect("client"),
    }
}

/// One sample of the Prometheus exposition, e.g.
/// `sser_connections_refused_total{reason="per_ip"}`.
async fn series(api: &Api, sample: &str) -> u64 {
    let text = api
        .http
        .get(api.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .expect("metrics request")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{sample} missing from /metrics"))
        .parse::<f64>()
        .expect("a number") as u64
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_handshake_deadline() {
    let server = TestServer::start_with(|c| c.server.handshake_timeout = ms(400)).await;
    let mut silent = connect(&server.base).await;
    let (sent, after) = until_closed(&mut silent).await;
    assert_eq!(sent, "", "nothing is said to a client that said nothing");
    assert!(
        after >= Duration::from_millis(300),
        "closed after {after:?}, before the deadline"
    );
    let cut = r#"sser_connections_cut_total{reason="handshake_timeout"}"#;
    assert_eq!(series(&server, cut).await, 1);
    server.stop().await;
}

#[tokio::test]
async fn a_silent_tls_connection_is_closed_at_the_handshake_deadline() {
    // No certificate is needed: the client never gets as far as asking.
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_with(|c| {
        c.server.handshake_timeout = ms(400);
        c.server.ssl.enabled = sser::config::Flag(true);
        c.server.ssl_addr = "127.0.0.1:0".parse().expect("literal");
        c.server.ssl.cert_file = Some(dir.path().join("cert.pem"));
        c.server.ssl.key_file = Some(dir.path().join("key.pem"));
    })
    .await;
    let tls = server.tls_addr.expect("TLS listener bound");
    let mut silent = connect(&format!("http://{tls}")).await;
    let (sent, after) = until_closed(&mut silent).await;
    assert_eq!(sent, "");
    assert!(
        after >= Duration::from_millis(300),
        "closed after {after:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn half_and_whole_http2_prefaces_with_nothing_after_are_closed() {
    let server = TestServer::start_with(|c| c.server.handshake_timeout = ms(400)).await;

    let mut half = connect(&server.base).await;
    half.write_all(&H2_PREFACE[..10]).await.expect("write");
    let (_, after) = until_closed(&mut half).await;
    assert!(
        after >= Duration::from_millis(300),
        "closed after {after:?}"
    );

    let mut whole = connect(&server.base).await;
    whole.write_all(H2_PREFACE).await.expect("write");
    let (sent, after) = until_closed(&mut whole).await;
    let sent = sent.as_bytes();
    // The server spoke HTTP/2 (its SETTINGS frame: type 4), then gave up.
    assert!(
        sent.len() >= 9 && sent[3] == 4,
        "expected a SETTINGS frame: {sent:?}"
    );
    assert!(
        after >= Duration::from_millis(300),
        "closed after {after:?}"
    );

    let cut = r#"sser_connections_cut_total{reason="handshake_timeout"}"#;
    assert_eq!(series(&server, cut).await, 2);
    server.stop().await;
}

#[tokio::test]
async fn the_per_address_cap_refuses_with_429_while_its_stream_stays_up() {
    let server = TestServer::start_with(|c| {
        c.server.max_connections_per_ip = Count(2);
        c.server.handshake_timeout = Span(Duration::from_secs(60));
    })
    .await;
    // Everything but the capped client comes from 127.0.0.2.
    let other = api_from(&server.base, Ipv4Addr::new(127, 0, 0, 2));
    let (id, token) = other.create_topic(json!({})).await;

    let capped = Api::new(&server.base);
    let mut stream = capped.subscribe(&id, &token).await;
    assert_eq!(stream.status, 200);
    let _silent = connect(&server.base).await;
    let mut third = connect(&server.base).await;
    let (sent, after) = until_closed(&mut third).await;
    assert!(sent.starts_with("HTTP/1.1 429"), "{sent}");
    assert!(sent.contains("server.maxConnectionsPerIp"), "{sent}");
    assert!(after < Duration::from_secs(5), "refused after {after:?}");

    let refused = r#"sser_connections_refused_total{reason="per_ip"}"#;
    assert_eq!(series(&other, refused).await, 1);
    other
        .publish_ok(&id, json!({"message": "still here"}))
        .await;
    assert_eq!(stream.expect_event().await.data, "still here");
    server.stop().await;
}

#[tokio::test]
async fn the_total_cap_refuses_with_503_when_every_connection_is_busy() {
    let server = TestServer::start_with(|c| {
        c.server.max_connections = Count(2);
        c.server.max_connections_per_ip = Count(0);
    })
    .await;
    let admin = Api::new(&server.base);
    let (id, token) = admin.create_topic(json!({})).await;
    // Two streams fill both slots: the second one's arrival closes the
    // admin client's idle keep-alive connection.
    let mut kept = Api::new(&server.base).subscribe(&id, &token).await;
    let left = Api::new(&server.base).subscribe(&id, &token).await;
    assert!(kept.status == 200 && left.status == 200);

    let mut refused = connect(&server.base).await;
    let (sent, _) = until_closed(&mut refused).await;
    assert!(sent.starts_with("HTTP/1.1 503"), "{sent}");

    // One stream leaves; once the server has seen it go, there is room.
    drop(left);
    server
        .wait_until("a free slot", || async {
            let resp = admin.http.get(admin.url("/healthz")).send().await;
            resp.is_ok_and(|r| r.status() == 200)
        })
        .await;
    let total = r#"sser_connections_refused_total{reason="total"}"#;
    assert!(series(&admin, total).await >= 1);
    let evicted = r#"sser_connections_cut_total{reason="evicted"}"#;
    assert!(series(&admin, evicted).await >= 1);
    admin
        .publish_ok(&id, json!({"message": "still here"}))
        .await;
    assert_eq!(kept.expect_event().await.data, "still here");
    server.stop().await;
}

#[tokio::test]
async fn at_the_cap_a_new_client_displaces_the_longest_silent_connection() {
    let server = TestServer::start_with(|c| {
        c.server.max_connections = Count(4);
        c.server.max_connections_per_ip = Count(0);
        c.server.handshake_timeout = Span(Duration::from_secs(60));
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(connect(&server.base).await);
    }
    // Connections are admitted in the order they were made, after these.
    let health = reqwest::get(server.url("/healthz"))
        .await
        .expect("healthz at the cap");
    assert_eq!(health.status(), 200);
    // The oldest silent connection made room, long before its deadline.
    let (_, after) = until_closed(&mut silent[0]).await;
    assert!(after < Duration::from_secs(30), "closed after {after:?}");
    let evicted = r#"sser_connections_cut_total{reason="evicted"}"#;
    assert!(series(&server, evicted).await >= 1);
    server.stop().await;
}

#[tokio::test]
async fn a_trickled_body_is_cut_with_a_408() {
    let server = TestServer::start_with(|c| c.server.request_body_timeout = ms(800)).await;
    let (id, _) = server.create_topic(json!({})).await;
    let conn = connect(&server.base).await;
    let (mut reader, mut writer) = conn.into_split();
    let head = format!(
        "POST /api/v1/pubsubs/{id}/events HTTP/1.1\r\nHost: sser\r\n\
         Authorization: Bearer {API_TOKEN}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{{",
        100 << 20
    );
    writer.write_all(head.as_bytes()).await.expect("head");
    // One byte of JSON whitespace every 100 ms: the body would take months.
    let trickle = tokio::spawn(async move {
        while writer.write_all(b" ").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let start = Instant::now();
    let mut sent = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let read = tokio::time::timeout_at((start + DEADLINE).into(), reader.read(&mut chunk));
        match read.await.expect("the trickled request is still open") {
            Ok(0) | Err(_) => break,
            Ok(n) => sent.extend_from_slice(&chunk[..n]),
        }
    }
    trickle.abort();
    let sent = String::from_utf8_lossy(&sent);
    assert!(sent.starts_with("HTTP/1.1 408"), "{sent}");
    assert!(sent.contains("server.requestBodyTimeout"), "{sent}");
    assert!(start.elapsed() >= Duration::from_millis(600));
    let cut = r#"sser_connections_cut_total{reason="body_timeout"}"#;
    assert_eq!(series(&server, cut).await, 1);
    server.stop().await;
}

#[tokio::test]
async fn idle_streams_outlive_every_timeout() {
    let server = TestServer::start_with(|c| {
        c.server.handshake_timeout = ms(300);
        c.server.header_read_timeout = ms(300);
        c.server.request_body_timeout = ms(300);
        c.server.connection_idle_timeout = ms(300);
        c.server.http2.keep_alive_interval = ms(200);
        c.server.http2.keep_alive_timeout = ms(300);
        // No heartbeats: the streams are as quiet as a stream can be.
        c.pubsub.tick_frequency = Span(Duration::from_secs(3600));
    })
    .await;
    // Its own client, so its keep-alive connection idles (and is closed).
    let admin = Api::new(&server.base);
    let (id, token) = admin.create_topic(json!({})).await;
    let mut http1 = server.subscribe(&id, &token).await;
    let h2_client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("h2 client");
    let h2_request = h2_client
        .get(server.url(&format!("/api/v1/pubsubs/{id}/events")))
        .bearer_auth(&token);
    let mut http2 = SseStream::open(h2_request).await;
    assert!(http1.status == 200 && http2.status == 200);

    // What is checked is that nothing happens, so this waits a fixed time:
    // more than six times every configured timeout.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let publisher = Api::new(&server.base);
    publisher
        .publish_ok(&id, json!({"message": "after the quiet"}))
        .await;
    assert_eq!(http1.expect_event().await.data, "after the quiet");
    assert_eq!(http2.expect_event().await.data, "after the quiet");
    // The timers did run: the idle keep-alive connection that created the
    // topic was closed meanwhile.
    let idle = r#"sser_connections_cut_total{reason="idle"}"#;
    let head = r#"sser_connections_cut_total{reason="header_timeout"}"#;
    assert!(series(&publisher, idle).await + series(&publisher, head).await >= 1);
    server.stop().await;
}

#[tokio::test]
async fn out_of_file_descriptors_a_new_client_is_refused_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The cap is set above the open-file limit, so descriptors run out first.
    let server = ServerProcess::start_with_file_limit(
        dir.path(),
        &[
            ("SSER_MAX_CONNECTIONS", "100000"),
            ("SSER_MAX_CONNECTIONS_PER_IP", "0"),
            ("SSER_LOG", "error"),
        ],
        64,
    );
    let api = server.api();
    let (id, token) = api.create_topic(json!({})).await;
    let url = api.url(&format!("/api/v1/pubsubs/{id}/events"));
    // Streams being served are never closed to make room: fill every
    // descriptor with them until the server turns one away.
    let mut streams = Vec::new();
    loop {
        assert!(streams.len() < 200, "never ran out of descriptors");
        let client = reqwest::Client::builder()
            .timeout(DEADLINE)
            .build()
            .expect("client");
        match client.get(&url).bearer_auth(&token).send().await {
            Ok(resp) if resp.status() == 200 => streams.push(resp),
            _ => break,
        }
    }
    assert!(streams.len() > 20, "only {} streams", streams.len());

    // A new client hears "no" at once instead of waiting in the backlog.
    let mut late = connect(&server.base).await;
    let (sent, after) = until_closed(&mut late).await;
    assert!(after < Duration::from_secs(5), "answered after {after:?}");
    assert!(
        sent.is_empty() || sent.starts_with("HTTP/1.1 503"),
        "{sent}"
    );

    // A few streams leave; the server recovers and counted the refusals.
    streams.truncate(streams.len() - 3);
    let refused = r#"sser_connections_refused_total{reason="fd_limit"}"#;
    let scraper = Api::new(&server.base);
    common::wait_until("the server to answer again", || async {
        let resp = scraper.http.get(scraper.url("/healthz")).send().await;
        resp.is_ok_and(|r| r.status() == 200)
    })
    .await;
    // The stream request that was turned away, and the late client.
    assert!(series(&scraper, refused).await >= 2);
    scraper
        .publish_ok(&id, json!({"message": "still here"}))
        .await;
    let first = streams.first_mut().expect("a stream");
    let mut seen = String::new();
    while !seen.contains("still here") {
        let chunk = tokio::time::timeout(DEADLINE, first.chunk())
            .await
            .expect("an event in time")
            .expect("stream read")
            .expect("stream open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}
