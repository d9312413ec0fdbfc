//! Shared test harness: a real server on a free loopback port (in-process, or
//! the built binary as a child process), a real HTTP client, and a real SSE
//! parser (`eventsource-stream`). Every wait has a deadline; nothing sleeps
//! blindly.
#![allow(dead_code)]

pub mod browser;
pub mod raw;

use std::io::{BufRead, BufReader};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures_util::{Stream, StreamExt};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sser::Server;
use sser::config::Config;
use sser::hub::Hub;
use sser::secret::Secret;
use tokio_util::sync::CancellationToken;

/// How long any single wait in a test may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub const API_TOKEN: &str = "test-api-token";
pub const METRICS_TOKEN: &str = "test-metrics-token";

/// A configuration for tests: loopback, fixed tokens, fast heartbeats.
pub fn test_config() -> Config {
    let mut config = Config::default();
    config.server.addr = "127.0.0.1:0".parse().expect("literal");
    config.pubsub.api_access_token = Some(Secret::new(API_TOKEN));
    config.pubsub.metrics_access_token = Some(Secret::new(METRICS_TOKEN));
    config.server.shutdown_timeout = sser::config::Span(Duration::from_secs(5));
    config
}

pub struct TestServer {
    /// The HTTP helpers ([`Api`], reached through `Deref`): they send to the
    /// plain listener, or to the https URL after [`TestServer::use_https`].
    pub api: Api,
    /// The plain listener (with TLS on: redirects, health, ACME http-01).
    pub plain_base: String,
    /// The bound HTTPS address when `server.ssl.enabled`.
    pub tls_addr: Option<std::net::SocketAddr>,
    pub hub: Arc<Hub>,
    /// Compatibility profiles on listeners of their own: (name, address).
    pub compat: Vec<(&'static str, std::net::SocketAddr)>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), sser::StartError>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = test_config();
        tweak(&mut config);
        Self::start_config(config).await
    }

    /// Starts the server with exactly `config`.
    pub async fn start_config(config: Config) -> TestServer {
        let server = Server::bind(config).await.expect("server binds");
        let compat = server.compat_addrs();
        let base = format!("http://{}", server.local_addr());
        let tls_addr = server.tls_addr();
        let hub = server.hub().clone();
        let shutdown = server.shutdown_token();
        let task = tokio::spawn(server.run());
        TestServer {
            plain_base: base.clone(),
            tls_addr,
            api: Api::new(&base),
            hub,
            compat,
            shutdown,
            task,
        }
    }

    /// The base URL (`http://addr`) of compatibility profile `name`'s own
    /// listener.
    pub fn compat_base(&self, name: &str) -> String {
        let (_, addr) = self
            .compat
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{name} has no listener of its own"));
        format!("http://{addr}")
    }

    /// Sends the helpers' requests to `base` (an https URL) with `http`.
    pub fn use_https(&mut self, http: reqwest::Client, base: String) {
        self.api = Api { base, http };
    }

    /// `/readyz`'s `tls` check (ok, message), read on the plain listener.
    pub async fn tls_readiness(&self) -> (bool, String) {
        let v: Value = reqwest::get(format!("{}/readyz", self.plain_base))
            .await
            .expect("readyz request")
            .json()
            .await
            .expect("readyz body");
        let check = &v["checks"]["tls"];
        (
            check["ok"].as_bool().unwrap_or(false),
            check["message"].as_str().unwrap_or_default().to_string(),
        )
    }

    /// Polls `check` until it holds or the deadline passes.
    pub async fn wait_until<F, Fut>(&self, what: &str, check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        wait_until(what, check).await
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(DEADLINE, self.task).await;
    }
}

pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<Event, String>> + Send>>;

/// An open SSE response read through an independent parser.
pub struct SseStream {
    pub status: reqwest::StatusCode,
    pub headers: HeaderMap,
    events: EventStream,
}

impl SseStream {
    pub async fn open(req: reqwest::RequestBuilder) -> SseStream {
        let resp = tokio::time::timeout(DEADLINE, req.send())
            .await
            .expect("subscribe in time")
            .expect("subscribe request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let events = resp
            .bytes_stream()
            .eventsource()
            .map(|r| r.map_err(|e| e.to_string()))
            .boxed();
        SseStream {
            status,
            headers,
            events,
        }
    }

    /// The next event, or `None` when the stream ended.
    pub async fn next(&mut self) -> Option<Event> {
        match tokio::time::timeout(DEADLINE, self.events.next()).await {
            Ok(Some(Ok(event))) => Some(event),
            Ok(Some(Err(e))) => panic!("SSE stream error: {e}"),
            Ok(None) => None,
            Err(_) => panic!("no SSE event within {DEADLINE:?}"),
        }
    }

    /// The next event, or `None` once the stream ended or its connection
    /// broke (a server killed mid-stream cuts the chunked body short).
    pub async fn next_until_cut(&mut self) -> Option<Event> {
        match tokio::time::timeout(DEADLINE, self.events.next()).await {
            Ok(Some(Ok(event))) => Some(event),
            Ok(Some(Err(_)) | None) => None,
            Err(_) => panic!("neither an SSE event nor the end within {DEADLINE:?}"),
        }
    }

    pub async fn expect_event(&mut self) -> Event {
        self.next().await.expect("stream ended early")
    }

    /// Collects `n` events.
    pub async fn take(&mut self, n: usize) -> Vec<Event> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            out.push(self.expect_event().await);
        }
        out
    }
}

/// The built `sser` binary running as a child process on a free port.
pub struct ServerProcess {
    pub child: Child,
    pub base: String,
    /// The https URL the binary printed, when started with
    /// `SSER_SSL_ENABLED=true`.
    pub https: Option<String>,
}

/// The built binary, in `dir`, with only `PATH`, the test tokens, a free
/// loopback port and `env` in its environment.
fn sser_command(dir: &std::path::Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sser"));
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", "127.0.0.1:0")
        .env("SSER_API_ACCESS_TOKEN", API_TOKEN)
        .env("SSER_METRICS_ACCESS_TOKEN", METRICS_TOKEN)
        .env("SSER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

impl ServerProcess {
    /// Starts the binary with `env` in `dir` and waits until it prints its
    /// address (it listens on 127.0.0.1:0, so the port is the OS's choice).
    pub fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> ServerProcess {
        Self::start_command(sser_command(dir, env), env)
    }

    /// Like [`ServerProcess::start`], with the open-file limit (soft and
    /// hard, so the server cannot raise it) set to `nofile`.
    pub fn start_with_file_limit(
        dir: &std::path::Path,
        env: &[(&str, &str)],
        nofile: u64,
    ) -> ServerProcess {
        use std::os::unix::process::CommandExt;
        let mut cmd = sser_command(dir, env);
        // SAFETY: runs in the forked child before exec; setrlimit is
        // async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(move || rlimit::setrlimit(rlimit::Resource::NOFILE, nofile, nofile));
        }
        Self::start_command(cmd, env)
    }

    fn start_command(mut cmd: Command, env: &[(&str, &str)]) -> ServerProcess {
        let mut child = cmd.spawn().expect("spawn sser");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && let Some(pos) = line.find("is running at ") {
                    let _ = tx.send(line[pos + 14..].trim().to_string());
                    sent = true;
                }
                if let Some(pos) = line.find("HTTPS (HTTP/2) at ") {
                    let url = line[pos + 18..].split_whitespace().next().unwrap_or("");
                    let _ = tx.send(url.to_string());
                }
                eprintln!("[sser] {line}");
            }
        });
        let base = rx
            .recv_timeout(DEADLINE)
            .expect("server printed its address");
        let tls = env
            .iter()
            .any(|(k, v)| *k == "SSER_SSL_ENABLED" && *v == "true");
        let https = tls.then(|| {
            rx.recv_timeout(DEADLINE)
                .expect("server printed its https URL")
        });
        ServerProcess { child, base, https }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The HTTP helpers for a running server: a [`TestServer`] (through
/// `Deref`) or a [`ServerProcess`].
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            base: base.to_string(),
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Creates a topic; returns (id, token).
    pub async fn create_topic(&self, body: Value) -> (String, String) {
        let resp = self
            .http
            .post(self.url("/api/v1/pubsubs"))
            .bearer_auth(API_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("create request");
        assert_eq!(resp.status(), 201, "create topic");
        let v: Value = resp.json().await.expect("create body");
        (
            v["pubsub"]["id"].as_str().expect("id").to_string(),
            v["pubsub"]["token"].as_str().expect("token").to_string(),
        )
    }

    pub async fn try_publish(
        &self,
        topic: &str,
        event: Value,
    ) -> reqwest::Result<reqwest::Response> {
        self.http
            .post(self.url(&format!("/api/v1/pubsubs/{topic}/events")))
            .bearer_auth(API_TOKEN)
            .json(&json!({ "event": event }))
            .send()
            .await
    }

    /// Publishes and returns the id the server reports.
    pub async fn publish_ok(&self, topic: &str, event: Value) -> String {
        let resp = self
            .try_publish(topic, event)
            .await
            .expect("publish request");
        assert_eq!(resp.status(), 201, "publish");
        let v: Value = resp.json().await.expect("publish body");
        v["event"]["id"].as_str().expect("event id").to_string()
    }

    pub async fn publish(&self, topic: &str, event: Value) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/api/v1/pubsubs/{topic}/events")))
            .bearer_auth(API_TOKEN)
            .json(&json!({ "event": event }))
            .send()
            .await
            .expect("publish request")
    }

    pub async fn subscribe(&self, topic: &str, token: &str) -> SseStream {
        self.subscribe_with(topic, token, &[]).await
    }

    /// Subscribes with extra request headers (e.g. `Last-Event-ID`).
    pub async fn subscribe_with(
        &self,
        topic: &str,
        token: &str,
        headers: &[(&str, &str)],
    ) -> SseStream {
        let mut req = self
            .http
            .get(self.url(&format!("/api/v1/pubsubs/{topic}/events")))
            .bearer_auth(token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        SseStream::open(req).await
    }

    pub async fn metric(&self, name: &str) -> u64 {
        let v: Value = self
            .http
            .get(self.url("/api/v1/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .expect("metrics request")
            .json()
            .await
            .expect("metrics body");
        v["metrics"]
            .as_array()
            .expect("metrics array")
            .iter()
            .find(|m| m["name"] == name)
            .and_then(|m| m["value"].as_u64())
            .unwrap_or_else(|| panic!("metric {name} missing"))
    }

    /// Deletes a topic with the API token.
    pub async fn delete_topic(&self, topic: &str) -> reqwest::Response {
        self.http
            .delete(self.url(&format!("/api/v1/pubsubs/{topic}")))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .expect("delete request")
    }

    /// GETs `path` with `token` and parses the JSON body.
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET request")
            .json()
            .await
            .expect("JSON body")
    }

    /// Subscribes with `?last_event_id=` (the EventSource-friendly form).
    pub async fn subscribe_from(&self, topic: &str, token: &str, last_event_id: &str) -> SseStream {
        let req = self
            .http
            .get(self.url(&format!("/api/v1/pubsubs/{topic}/events")))
            .query(&[("last_event_id", last_event_id)])
            .bearer_auth(token);
        SseStream::open(req).await
    }
}

impl TestServer {
    pub fn api(&self) -> Api {
        self.api.clone()
    }
}

impl std::ops::Deref for TestServer {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl ServerProcess {
    pub fn api(&self) -> Api {
        Api::new(&self.base)
    }

    /// `kill -9`: no shutdown code runs.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Runs the binary expecting it to refuse to start: returns its exit
    /// status and everything it wrote to stderr.
    pub fn start_failing(
        dir: &std::path::Path,
        env: &[(&str, &str)],
    ) -> (std::process::ExitStatus, String) {
        let mut child = sser_command(dir, env).spawn().expect("spawn sser");
        let mut stderr = child.stderr.take().expect("stderr");
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
            text
        });
        let deadline = std::time::Instant::now() + DEADLINE;
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break status;
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("sser did not exit although it was expected to refuse to start");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (status, reader.join().unwrap_or_default())
    }
}

/// A free loopback TCP port (bound, read, released: the caller binds it
/// again at once, so a collision is unlikely and would fail loudly).
/// A loopback port that is free now, for a helper process (pebble, a
/// browser's debugging port, redis-server) that must be told its port.
///
/// Taken below Linux's ephemeral range (32768–60999 by default): a port
/// from `bind(:0)` comes from that range, which every outgoing connection of
/// the suite's parallel tests also draws from, so between our probe and the
/// helper's own bind a client socket could take it (seen once: pebble
/// refused under a full, loaded run). Below it, only another test's helper
/// could, and the random start makes that unlikely.
pub fn free_port() -> u16 {
    const LOW: u16 = 20_000;
    const SPAN: u16 = 12_000;
    let start = rand::random::<u16>() % SPAN;
    (0..SPAN)
        .map(|i| LOW + (start + i) % SPAN)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free loopback port below the ephemeral range")
}

/// A throwaway certificate authority for TLS tests.
pub struct TestCa {
    pub cert: rcgen::Certificate,
    pub key: rcgen::KeyPair,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().expect("ca key");
        let cert = params.self_signed(&key).expect("ca cert");
        TestCa { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A leaf for `names` (DNS names or IP addresses): (chain PEM, key PEM, leaf DER).
    pub fn issue(&self, names: &[&str]) -> (String, String, Vec<u8>) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = rcgen::CertificateParams::new(names).expect("leaf params");
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let leaf = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("sign leaf");
        (
            format!("{}{}", leaf.pem(), self.cert.pem()),
            key.serialize_pem(),
            leaf.der().to_vec(),
        )
    }
}

/// An HTTPS client that trusts only `root_pem`, sends `domain` to `addr`,
/// records the peer certificate, and offers h2 and http/1.1 by ALPN.
pub fn https_client(root_pem: &str, domain: &str, addr: std::net::SocketAddr) -> reqwest::Client {
    https_client_builder(root_pem, domain, addr)
        .build()
        .expect("https client")
}

pub fn https_client_builder(
    root_pem: &str,
    domain: &str,
    addr: std::net::SocketAddr,
) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(root_pem.as_bytes()).expect("root pem"),
        )
        .resolve(domain, addr)
        .tls_info(true)
        .timeout(DEADLINE)
}

/// The leaf certificate (DER) the server presented for `resp`.
pub fn peer_cert(resp: &reqwest::Response) -> Vec<u8> {
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("peer certificate recorded")
        .to_vec()
}
