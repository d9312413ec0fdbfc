//! Keys from a JWKS file and from a real HTTP server on 127.0.0.1: loaded at
//! start, re-read on an interval and on an unknown `kid` (rate-limited),
//! with verification by known keys never waiting for a fetch.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey};
use parking_lot::Mutex;
use sser::identity::{IdentitySettings, JwksSettings, JwksSource, SetupError, TokenError};

use super::*;

fn rsa(name: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(&std::fs::read(fixture(name)).unwrap()).unwrap()
}

/// A JWKS document publishing the public halves of these keys.
fn jwks(keys: &[(&str, Algorithm, &EncodingKey, bool)]) -> String {
    let set = JwkSet {
        keys: keys
            .iter()
            .map(|(kid, alg, key, with_alg)| {
                let mut jwk = Jwk::from_encoding_key(key, *alg).unwrap();
                jwk.common.key_id = Some(kid.to_string());
                if !with_alg {
                    jwk.common.key_algorithm = None;
                }
                jwk
            })
            .collect(),
    };
    serde_json::to_string(&set).unwrap()
}

fn settings(source: JwksSource, refresh: Duration, min_refresh: Duration) -> IdentitySettings {
    IdentitySettings {
        jwks: Some(JwksSettings {
            source,
            refresh_interval: refresh,
            min_refresh_interval: min_refresh,
            fetch_timeout: Duration::from_secs(5),
        }),
        ..IdentitySettings::default()
    }
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn from_a_file_refreshed_on_an_unknown_kid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let (a, b) = (rsa("rsa-a.pem"), rsa("rsa-b.pem"));
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let ec = EncodingKey::from_ec_pem(ec.serialize_pem().as_bytes()).unwrap();
    // The EC key has no `alg`: ES256 is implied by its curve.
    std::fs::write(
        &path,
        jwks(&[
            ("a", Algorithm::RS256, &a, true),
            ("e", Algorithm::ES256, &ec, false),
        ]),
    )
    .unwrap();
    let tokens = start(settings(JwksSource::File(path.clone()), HOUR, HOUR)).await;
    assert!(tokens.jwks_loaded());
    let token_a = sign(Algorithm::RS256, Some("a"), &a, &claims());
    assert!(tokens.verify(&token_a).await.is_ok());
    let token_e = sign(Algorithm::ES256, Some("e"), &ec, &claims());
    assert!(tokens.verify(&token_e).await.is_ok());
    // A token from another key claiming kid "a".
    let forged = sign(Algorithm::RS256, Some("a"), &b, &claims());
    assert_eq!(tokens.verify(&forged).await, Err(TokenError::BadSignature));

    // Key b is rotated in; the first token naming it triggers a re-read.
    std::fs::write(
        &path,
        jwks(&[
            ("a", Algorithm::RS256, &a, true),
            ("b", Algorithm::RS256, &b, true),
        ]),
    )
    .unwrap();
    let token_b = sign(Algorithm::RS256, Some("b"), &b, &claims());
    assert_eq!(tokens.verify(&token_b).await.unwrap().user, "u1");
    // Another unknown kid right after: rate-limited, refused at once.
    let started = Instant::now();
    let token_c = sign(Algorithm::RS256, Some("c"), &b, &claims());
    assert_eq!(tokens.verify(&token_c).await, Err(TokenError::UnknownKey));
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn a_bad_jwks_file_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let err = try_start(settings(JwksSource::File(missing), HOUR, HOUR))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, SetupError::Jwks { .. }), "{err}");
    assert!(err.to_string().contains("missing.json"), "{err}");
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).unwrap();
    let err = try_start(settings(JwksSource::File(empty), HOUR, HOUR))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("no key usable"), "{err}");
}

/// A key server: serves `body` with `status` after `delay_ms`, counting
/// requests.
#[derive(Default)]
struct KeyServer {
    body: Mutex<String>,
    status: AtomicU16,
    delay_ms: AtomicU64,
    fetches: AtomicUsize,
}

impl KeyServer {
    async fn start(body: String) -> (Arc<KeyServer>, String) {
        let server = Arc::new(KeyServer {
            body: Mutex::new(body),
            status: AtomicU16::new(200),
            ..KeyServer::default()
        });
        let state = server.clone();
        let app = Router::new().route(
            "/.well-known/jwks.json",
            get(move || {
                let state = state.clone();
                async move {
                    state.fetches.fetch_add(1, Ordering::SeqCst);
                    let delay = state.delay_ms.load(Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    let status = StatusCode::from_u16(state.status.load(Ordering::SeqCst))
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    (status, state.body.lock().clone())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (server, url)
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

async fn wait_until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn from_a_url_rotated_and_rate_limited() {
    let (a, b) = (rsa("rsa-a.pem"), rsa("rsa-b.pem"));
    let (server, url) = KeyServer::start(jwks(&[("a", Algorithm::RS256, &a, true)])).await;
    let tokens = start(settings(JwksSource::Url(url), HOUR, HOUR)).await;
    assert_eq!(server.fetches(), 1);
    let token_a = sign(Algorithm::RS256, Some("a"), &a, &claims());
    for _ in 0..3 {
        assert!(tokens.verify(&token_a).await.is_ok());
    }
    assert_eq!(server.fetches(), 1, "known keys never fetch");

    // Rotation: the issuer now signs with b and publishes only b.
    *server.body.lock() = jwks(&[("b", Algorithm::RS256, &b, true)]);
    let token_b = sign(Algorithm::RS256, Some("b"), &b, &claims());
    assert_eq!(tokens.verify(&token_b).await.unwrap().user, "u1");
    assert_eq!(server.fetches(), 2);
    assert_eq!(tokens.verify(&token_a).await, Err(TokenError::UnknownKey));
    let token_z = sign(Algorithm::RS256, Some("zzz"), &b, &claims());
    assert_eq!(tokens.verify(&token_z).await, Err(TokenError::UnknownKey));
    assert_eq!(server.fetches(), 2, "unknown kids are rate-limited");
}

#[tokio::test]
async fn a_slow_key_server_never_delays_known_keys() {
    let (a, b) = (rsa("rsa-a.pem"), rsa("rsa-b.pem"));
    let (server, url) = KeyServer::start(jwks(&[("a", Algorithm::RS256, &a, true)])).await;
    let tokens = start(settings(JwksSource::Url(url), HOUR, HOUR)).await;
    server.delay_ms.store(1500, Ordering::SeqCst);
    *server.body.lock() = jwks(&[
        ("a", Algorithm::RS256, &a, true),
        ("b", Algorithm::RS256, &b, true),
    ]);
    let token_b = sign(Algorithm::RS256, Some("b"), &b, &claims());
    let waiting = {
        let tokens = tokens.clone();
        tokio::spawn(async move { tokens.verify(&token_b).await })
    };
    wait_until("the refresh to start", || server.fetches() == 2).await;
    let token_a = sign(Algorithm::RS256, Some("a"), &a, &claims());
    let started = Instant::now();
    assert!(tokens.verify(&token_a).await.is_ok());
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert!(
        !waiting.is_finished(),
        "the unknown kid waits for the fetch"
    );
    assert!(waiting.await.unwrap().is_ok());
}

#[tokio::test]
async fn a_key_server_down_at_start_is_retried() {
    let a = rsa("rsa-a.pem");
    let (server, url) = KeyServer::start(jwks(&[("a", Algorithm::RS256, &a, true)])).await;
    server.status.store(503, Ordering::SeqCst);
    let tokens = start(settings(
        JwksSource::Url(url),
        HOUR,
        Duration::from_millis(200),
    ))
    .await;
    assert!(!tokens.jwks_loaded());
    let token = sign(Algorithm::RS256, Some("a"), &a, &claims());
    assert_eq!(
        tokens.verify(&token).await,
        Err(TokenError::KeysUnavailable)
    );
    server.status.store(200, Ordering::SeqCst);
    wait_until("the retry to load the keys", || tokens.jwks_loaded()).await;
    assert!(tokens.verify(&token).await.is_ok());
}

#[tokio::test]
async fn refreshed_on_an_interval() {
    let (a, b) = (rsa("rsa-a.pem"), rsa("rsa-b.pem"));
    let (server, url) = KeyServer::start(jwks(&[("a", Algorithm::RS256, &a, true)])).await;
    let tokens = start(settings(
        JwksSource::Url(url),
        Duration::from_millis(100),
        HOUR,
    ))
    .await;
    // Use up the early re-read an unknown kid may ask for (one an hour).
    let token_x = sign(Algorithm::RS256, Some("x"), &a, &claims());
    assert_eq!(tokens.verify(&token_x).await, Err(TokenError::UnknownKey));
    *server.body.lock() = jwks(&[("b", Algorithm::RS256, &b, true)]);
    // Two more fetches: at least one began after the rotation and ended.
    let seen = server.fetches();
    wait_until("periodic re-reads", || server.fetches() >= seen + 2).await;
    let token_b = sign(Algorithm::RS256, Some("b"), &b, &claims());
    assert!(tokens.verify(&token_b).await.is_ok());
    let token_a = sign(Algorithm::RS256, Some("a"), &a, &claims());
    assert_eq!(tokens.verify(&token_a).await, Err(TokenError::UnknownKey));
}
