//! HTTPS end to end: manual certificate files (with reload), HTTP/2 and
//! HTTP/1.1 over TLS, SNI refusal, 308 redirects, and a real ACME CA
//! (`pebble`, a Debian package installed by scripts/test-deps.sh) issuing a
//! certificate that is then reused from the cache after a restart.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;
use sser::config::{Flag, Span};

const DOMAIN: &str = "sser.test";

/// Publishes on an HTTPS server and reads the event back over an SSE
/// stream; returns the HTTP version the stream used.
async fn round_trip(server: &TestServer) -> reqwest::Version {
    let health = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("healthz over https");
    assert_eq!(health.status(), 200);
    let (id, token) = server.create_topic(json!({})).await;
    let mut stream = server.subscribe(&id, &token).await;
    assert_eq!(stream.status, 200);
    let published = server
        .publish_ok(&id, json!({"type": "tls", "message": "over TLS"}))
        .await;
    let event = stream.expect_event().await;
    assert_eq!(event.id, published);
    assert_eq!(event.data, "over TLS");
    health.version()
}

fn write(path: &Path, text: &str) {
    // Write then rename, as deployment tools do, so a reader never sees
    // half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// The certificate a fresh connection to `server` is given.
async fn served_cert(root_pem: &str, addr: std::net::SocketAddr) -> Option<Vec<u8>> {
    let client = https_client(root_pem, DOMAIN, addr);
    let resp = client
        .get(format!("https://{DOMAIN}:{}/healthz", addr.port()))
        .send()
        .await
        .ok()?;
    Some(peer_cert(&resp))
}

#[tokio::test]
async fn manual_certificates_http2_redirect_sni_and_reload() {
    let ca = TestCa::new("sser manual test CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    let mut server = TestServer::start_with(|c| {
        c.server.ssl.enabled = Flag(true);
        c.server.ssl_addr = "127.0.0.1:0".parse().expect("literal");
        c.server.ssl.domain_name.0 = vec![DOMAIN.to_string()];
        c.server.ssl.cert_file = Some(cert_path.clone());
        c.server.ssl.key_file = Some(key_path.clone());
        c.server.ssl.reload_interval = Span(Duration::from_millis(50));
    })
    .await;
    let addr = server.tls_addr.expect("TLS listener bound");

    // No files yet: the server runs, says why it is not ready, and refuses
    // handshakes rather than crashing.
    let (ok, message) = server.tls_readiness().await;
    assert!(!ok, "tls must not be ready without a certificate");
    assert!(message.contains("server.ssl.certFile"), "{message}");
    assert!(served_cert(&ca.pem(), addr).await.is_none());

    // Files appear: picked up without a restart.
    let (chain, key, first) = ca.issue(&[DOMAIN]);
    write(&key_path, &key);
    write(&cert_path, &chain);
    wait_until("the first certificate to be served", || async {
        served_cert(&ca.pem(), addr).await.as_deref() == Some(first.as_slice())
    })
    .await;
    assert!(server.tls_readiness().await.0);

    // HTTP/2 by ALPN, and SSE works over it.
    let base = format!("https://{DOMAIN}:{}", addr.port());
    server.use_https(https_client(&ca.pem(), DOMAIN, addr), base.clone());
    assert_eq!(round_trip(&server).await, reqwest::Version::HTTP_2);
    // HTTP/1.1 clients too.
    let http1 = https_client_builder(&ca.pem(), DOMAIN, addr)
        .http1_only()
        .build()
        .expect("client");
    server.use_https(http1, base.clone());
    assert_eq!(round_trip(&server).await, reqwest::Version::HTTP_11);

    // A name we do not serve: the handshake is refused, the server goes on.
    let other = https_client(&ca.pem(), "other.test", addr);
    let refused = other
        .get(format!("https://other.test:{}/healthz", addr.port()))
        .send()
        .await;
    assert!(refused.is_err(), "wrong SNI must fail the handshake");
    assert!(served_cert(&ca.pem(), addr).await.is_some());

    // Plain HTTP: 308 to https with path and query kept, so a POST stays a
    // POST; health checks answer directly.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let resp = plain
        .post(format!("{}/api/v1/pubsubs?x=1", server.plain_base))
        .body("{}")
        .send()
        .await
        .expect("plain request");
    assert_eq!(resp.status(), 308);
    assert_eq!(
        resp.headers()["location"],
        format!("https://{DOMAIN}:{}/api/v1/pubsubs?x=1", addr.port()).as_str()
    );
    let health = plain
        .get(format!("{}/healthz", server.plain_base))
        .send()
        .await
        .expect("plain healthz");
    assert_eq!(health.status(), 200);

    // Replace the files: new connections get the new certificate.
    let (chain, key, second) = ca.issue(&[DOMAIN]);
    assert_ne!(first, second);
    write(&key_path, &key);
    write(&cert_path, &chain);
    wait_until("the renewed certificate to be served", || async {
        served_cert(&ca.pem(), addr).await.as_deref() == Some(second.as_slice())
    })
    .await;

    // A broken update keeps the working certificate.
    write(&cert_path, "not a certificate");
    wait_until("the broken update to be noticed", || async {
        let (ok, message) = server.tls_readiness().await;
        ok && message.contains("cannot be loaded")
    })
    .await;
    assert_eq!(served_cert(&ca.pem(), addr).await, Some(second));

    server.stop().await;
}

/// pebble and its DNS helper, stopped on drop.
struct Pebble {
    children: Vec<Child>,
    directory: String,
    management: String,
    tls_port: u16,
    http_port: u16,
    /// The CA we made for pebble's own HTTPS API.
    api_ca: TestCa,
    api_ca_file: PathBuf,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn require(binary: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(binary))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{binary}` is not installed: the ACME test needs Debian's pebble package. \
             Run ./scripts/test.sh (it installs it) or `apt-get install pebble`."
        )
    })
}

impl Pebble {
    /// Starts pebble on free loopback ports. Validations go to `tls_port`
    /// (tls-alpn-01) and `http_port` (http-01) of 127.0.0.1, where
    /// pebble-challtestsrv's DNS sends every name.
    /// `validity`: lifetime of issued certificates in seconds (pebble's
    /// default is years).
    async fn start(dir: &Path, validity: Option<u64>) -> Pebble {
        let pebble = require("pebble");
        let challtestsrv = require("pebble-challtestsrv");
        let api_ca = TestCa::new("pebble API test CA");
        let (chain, key, _) = api_ca.issue(&["localhost", "127.0.0.1"]);
        std::fs::write(dir.join("pebble-cert.pem"), chain).expect("write");
        std::fs::write(dir.join("pebble-key.pem"), key).expect("write");
        let api_ca_file = dir.join("pebble-api-ca.pem");
        std::fs::write(&api_ca_file, api_ca.pem()).expect("write");

        let (listen, management, dns, tls_port, http_port, dns_mgmt) = (
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
        );
        let mut config = json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.join("pebble-cert.pem"),
            "privateKey": dir.join("pebble-key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false
        }});
        if let Some(secs) = validity {
            config["pebble"]["certificateValidityPeriod"] = json!(secs);
        }
        std::fs::write(dir.join("pebble.json"), config.to_string()).expect("write");

        let mut children = Vec::new();
        let dns_addr = format!("127.0.0.1:{dns}");
        children.push(
            Command::new(challtestsrv)
                .args(["-management", &format!("127.0.0.1:{dns_mgmt}")])
                .args(["-dns01", &dns_addr])
                .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start pebble-challtestsrv"),
        );
        children.push(
            Command::new(pebble)
                .arg("-config")
                .arg(dir.join("pebble.json"))
                .args(["-dnsserver", &dns_addr])
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_WFE_NONCEREJECT", "0")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start pebble"),
        );
        let pebble = Pebble {
            children,
            directory: format!("https://127.0.0.1:{listen}/dir"),
            management: format!("https://127.0.0.1:{management}"),
            tls_port,
            http_port,
            api_ca,
            api_ca_file,
        };
        let client = pebble.api_client();
        wait_until("pebble to answer", || async {
            client
                .get(&pebble.directory)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        pebble
    }

    fn api_client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.api_ca.pem().as_bytes()).expect("pem"),
            )
            .timeout(DEADLINE)
            .build()
            .expect("client")
    }

    /// The root that signs the certificates pebble issues (new each run).
    async fn root(&self) -> String {
        self.api_client()
            .get(format!("{}/roots/0", self.management))
            .send()
            .await
            .expect("pebble roots")
            .text()
            .await
            .expect("root pem")
    }
}

/// Waits (longer than `DEADLINE`: an order takes a few round trips) until
/// the `tls` readiness check holds.
async fn wait_tls_ready(server: &TestServer) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, message) = server.tls_readiness().await;
        if ok {
            return message;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no certificate from pebble in time: {message}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn acme_certificate_from_pebble_then_reused_from_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pebble = Pebble::start(dir.path(), None).await;
    let root = pebble.root().await;
    let cache = dir.path().join("certs");
    let tls_addr = format!("127.0.0.1:{}", pebble.tls_port);
    let directory = pebble.directory.clone();
    let api_ca_file = pebble.api_ca_file.clone();
    let configure = |c: &mut sser::config::Config| {
        c.server.ssl.enabled = Flag(true);
        c.server.ssl_addr = tls_addr.parse().expect("addr");
        c.server.ssl.domain_name.0 = vec![DOMAIN.to_string()];
        c.server.ssl.letsencrypt_email = "ops@sser.test".into();
        c.server.ssl.acme_directory = directory.clone();
        c.server.ssl.acme_ca_root = Some(api_ca_file.clone());
        c.server.ssl.cache_dir = cache.clone();
    };

    let mut server = TestServer::start_with(configure).await;
    let addr = server.tls_addr.expect("TLS listener bound");
    let message = wait_tls_ready(&server).await;
    assert!(!message.contains("cached"), "first start orders: {message}");

    // A client trusting only pebble's root verifies the chain, and SSE
    // works over HTTP/2.
    let base = format!("https://{DOMAIN}:{}", addr.port());
    server.use_https(https_client(&root, DOMAIN, addr), base.clone());
    assert_eq!(round_trip(&server).await, reqwest::Version::HTTP_2);
    let issued = served_cert(&root, addr).await.expect("certificate served");

    // http → https is a 308.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let resp = plain
        .post(format!("{}/api/v1/pubsubs", server.plain_base))
        .header("host", DOMAIN)
        .send()
        .await
        .expect("plain request");
    assert_eq!(resp.status(), 308);
    assert_eq!(
        resp.headers()["location"],
        format!("{base}/api/v1/pubsubs").as_str()
    );
    server.stop().await;

    // The http-01 challenge: pebble validates on the plain listener.
    let h01 = "h01.sser.test";
    let http_addr = format!("127.0.0.1:{}", pebble.http_port);
    let h01_cache = dir.path().join("certs-h01");
    let other = TestServer::start_with(|c| {
        configure(c);
        c.server.addr = http_addr.parse().expect("addr");
        c.server.ssl_addr = "127.0.0.1:0".parse().expect("addr");
        c.server.ssl.domain_name.0 = vec![h01.to_string()];
        c.server.ssl.acme_challenge = "http-01".into();
        c.server.ssl.cache_dir = h01_cache.clone();
    })
    .await;
    wait_tls_ready(&other).await;
    let h01_addr = other.tls_addr.expect("TLS listener bound");
    let resp = https_client(&root, h01, h01_addr)
        .get(format!("https://{h01}:{}/healthz", h01_addr.port()))
        .send()
        .await
        .expect("https with the http-01 certificate");
    assert_eq!(resp.status(), 200);
    other.stop().await;

    // Restart with the CA gone: the cached certificate is served, so no
    // new order was placed (none could be).
    drop(pebble);
    let server = TestServer::start_with(configure).await;
    let message = wait_tls_ready(&server).await;
    assert!(message.contains("cached"), "{message}");
    assert_eq!(served_cert(&root, addr).await, Some(issued));
    server.stop().await;
}

#[tokio::test]
async fn unreachable_acme_ca_leaves_server_up_and_unready() {
    let dir = tempfile::tempdir().expect("tempdir");
    let closed = free_port();
    let server = TestServer::start_with(|c| {
        c.server.ssl.enabled = Flag(true);
        c.server.ssl_addr = "127.0.0.1:0".parse().expect("addr");
        c.server.ssl.domain_name.0 = vec![DOMAIN.to_string()];
        c.server.ssl.acme_directory = format!("https://127.0.0.1:{closed}/dir");
        c.server.ssl.cache_dir = dir.path().join("certs");
    })
    .await;
    wait_until("the failed order to be reported", || async {
        let (ok, message) = server.tls_readiness().await;
        !ok && message.contains("no certificate yet") && message.contains("failed attempts")
    })
    .await;
    // Still serving plain HTTP (health, redirects); handshakes are refused.
    let health = reqwest::get(format!("{}/healthz", server.plain_base))
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let ca = TestCa::new("unused");
    let addr = server.tls_addr.expect("TLS listener bound");
    assert!(served_cert(&ca.pem(), addr).await.is_none());
    server.stop().await;
}

/// The binary prints where HTTPS is served, serves it, and stops cleanly.
#[tokio::test]
async fn binary_prints_and_serves_https() {
    let ca = TestCa::new("sser process test CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let (chain, key, leaf) = ca.issue(&[DOMAIN]);
    std::fs::write(dir.path().join("cert.pem"), chain).expect("write");
    std::fs::write(dir.path().join("key.pem"), key).expect("write");
    let mut process = ServerProcess::start(
        dir.path(),
        &[
            ("SSER_SSL_ENABLED", "true"),
            ("SSLPORT", "127.0.0.1:0"),
            ("SSER_DOMAIN_NAME", DOMAIN),
            ("SSER_SSL_CERT_FILE", "cert.pem"),
            ("SSER_SSL_KEY_FILE", "key.pem"),
        ],
    );
    let https = process.https.clone().expect("https URL printed");
    let port: u16 = https
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {https}"));
    assert_eq!(https, format!("https://{DOMAIN}:{port}"));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(served_cert(&ca.pem(), addr).await, Some(leaf));
    // Off the runtime thread, so the client's connection task can close its
    // socket while the server drains.
    let status = tokio::task::spawn_blocking(move || process.terminate())
        .await
        .expect("terminate");
    assert!(status.success());
}

/// `server.ssl.apiOverHttp`: the plain listener serves the API instead of
/// redirecting.
#[tokio::test]
async fn api_over_plain_http_when_configured() {
    let ca = TestCa::new("sser api-over-http test CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let (chain, key, _) = ca.issue(&[DOMAIN]);
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, chain).expect("write");
    std::fs::write(&key_path, key).expect("write");
    let server = TestServer::start_with(|c| {
        c.server.ssl.enabled = Flag(true);
        c.server.ssl_addr = "127.0.0.1:0".parse().expect("addr");
        c.server.ssl.cert_file = Some(cert_path.clone());
        c.server.ssl.key_file = Some(key_path.clone());
        c.server.ssl.api_over_http = Flag(true);
    })
    .await;
    // The helpers talk to the plain listener here.
    let (id, token) = server.create_topic(json!({})).await;
    let mut stream = server.subscribe(&id, &token).await;
    let published = server.publish_ok(&id, json!({"message": "plain"})).await;
    assert_eq!(stream.expect_event().await.id, published);
    // No domain configured: any SNI gets the certificate.
    let addr = server.tls_addr.expect("TLS listener bound");
    assert!(served_cert(&ca.pem(), addr).await.is_some());
    server.stop().await;
}

/// Renewal without a restart: with certificates that live 12 s, the server
/// orders a new one (at two thirds of the lifetime) and serves it.
#[tokio::test]
async fn acme_certificate_renewed_while_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pebble = Pebble::start(dir.path(), Some(12)).await;
    let root = pebble.root().await;
    let server = TestServer::start_with(|c| {
        c.server.ssl.enabled = Flag(true);
        c.server.ssl_addr = format!("127.0.0.1:{}", pebble.tls_port)
            .parse()
            .expect("addr");
        c.server.ssl.domain_name.0 = vec![DOMAIN.to_string()];
        c.server.ssl.acme_directory = pebble.directory.clone();
        c.server.ssl.acme_ca_root = Some(pebble.api_ca_file.clone());
        c.server.ssl.cache_dir = dir.path().join("certs");
    })
    .await;
    wait_tls_ready(&server).await;
    let addr = server.tls_addr.expect("TLS listener bound");
    let first = served_cert(&root, addr).await.expect("first certificate");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(cert) = served_cert(&root, addr).await
            && cert != first
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no renewed certificate in time: {:?}",
            server.tls_readiness().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(server.tls_readiness().await.0);
    server.stop().await;
}
