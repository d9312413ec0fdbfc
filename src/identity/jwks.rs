//! Keys from a JSON Web Key Set (a file or a URL), kept fresh without ever
//! making a verification wait on I/O it does not need.
//!
//! The current keys sit behind a lock that is held only to clone an `Arc`;
//! a background task re-reads the set every `refresh_interval`. A token
//! naming a `kid` we do not have (a key rotated in at the issuer) asks for
//! an early re-read and waits for it, bounded by the fetch timeout; such
//! requests are rate-limited to one per `min_refresh_interval`, so random
//! `kid`s cannot turn clients into a flood against the key server. Tokens
//! with known keys never wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::keys::VerifyKey;
use super::settings::{JwksSettings, JwksSource};

/// Largest key set accepted (real ones are a few KiB).
const MAX_JWKS_BYTES: usize = 1 << 20;

/// The current key set and the machinery to refresh it.
pub(crate) struct JwksCache {
    settings: JwksSettings,
    accepted: Vec<Algorithm>,
    keys: RwLock<Arc<Vec<VerifyKey>>>,
    /// True once a read has succeeded.
    loaded: AtomicBool,
    /// Bumped after every read attempt, so waiters learn it is over.
    generation: watch::Sender<u64>,
    /// When an early re-read was last asked for, and whether one is running.
    early: Mutex<EarlyRefresh>,
    wake: Notify,
    client: reqwest::Client,
}

#[derive(Default)]
struct EarlyRefresh {
    last: Option<Instant>,
    in_flight: bool,
}

impl JwksCache {
    /// Reads the set once. A file must read and parse (a typo should stop
    /// start-up); a URL that does not answer is retried in the background,
    /// so the key server's outage does not stop sser from starting.
    pub async fn start(
        settings: JwksSettings,
        accepted: Vec<Algorithm>,
        shutdown: CancellationToken,
    ) -> Result<Arc<JwksCache>, String> {
        let client = reqwest::Client::builder()
            .timeout(settings.fetch_timeout)
            .user_agent(concat!("sser/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let cache = Arc::new(JwksCache {
            settings,
            accepted,
            keys: RwLock::new(Arc::new(Vec::new())),
            loaded: AtomicBool::new(false),
            generation: watch::Sender::new(0),
            early: Mutex::new(EarlyRefresh::default()),
            wake: Notify::new(),
            client,
        });
        match (cache.read().await, &cache.settings.source) {
            (Ok(keys), _) => cache.replace(keys),
            (Err(e), JwksSource::File(_)) => return Err(e),
            (Err(e), JwksSource::Url(_)) => tracing::error!(
                source = %cache.settings.source,
                error = %e,
                "cannot load the JWKS; tokens are refused until it loads (retrying)"
            ),
        }
        tokio::spawn(cache.clone().refresh_loop(shutdown));
        Ok(cache)
    }

    /// The keys as of now: cheap, never waits on I/O.
    pub fn keys(&self) -> Arc<Vec<VerifyKey>> {
        self.keys.read().clone()
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Asks for an early re-read (a token named an unknown `kid`) and waits
    /// for it to finish. False when rate-limiting refused, or it timed out.
    pub async fn refresh_now(&self) -> bool {
        let mut generation = self.generation.subscribe();
        let seen = *generation.borrow_and_update();
        {
            let mut early = self.early.lock();
            if !early.in_flight {
                let recent = early
                    .last
                    .is_some_and(|t| t.elapsed() < self.settings.min_refresh_interval);
                if recent {
                    return false;
                }
                early.last = Some(Instant::now());
                early.in_flight = true;
                self.wake.notify_one();
            }
        }
        let bound = self.settings.fetch_timeout + Duration::from_secs(1);
        matches!(
            tokio::time::timeout(bound, generation.wait_for(|g| *g > seen)).await,
            Ok(Ok(_))
        )
    }

    async fn refresh_loop(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let delay = if self.is_loaded() {
                self.settings.refresh_interval
            } else {
                self.settings.min_refresh_interval
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
                () = self.wake.notified() => {}
            }
            match self.read().await {
                Ok(keys) => self.replace(keys),
                Err(e) => tracing::warn!(
                    source = %self.settings.source,
                    error = %e,
                    "cannot refresh the JWKS; keeping the keys we have"
                ),
            }
            self.early.lock().in_flight = false;
            self.generation.send_modify(|g| *g += 1);
        }
    }

    fn replace(&self, keys: Vec<VerifyKey>) {
        tracing::debug!(source = %self.settings.source, keys = keys.len(), "JWKS loaded");
        *self.keys.write() = Arc::new(keys);
        self.loaded.store(true, Ordering::Release);
    }

    async fn read(&self) -> Result<Vec<VerifyKey>, String> {
        let bytes = match &self.settings.source {
            JwksSource::File(path) => tokio::fs::read(path)
                .await
                .map_err(|e| format!("cannot read it: {e}"))?,
            JwksSource::Url(url) => self.fetch(url).await?,
        };
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
        }
        parse_jwks(&bytes, &self.accepted)
    }

    async fn fetch(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut response = self
            .client
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("fetch failed: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("answered HTTP {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading the body failed: {e}"))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// The usable keys of a JWKS document. Keys we cannot use (encryption keys,
/// symmetric keys, unknown types, algorithms not accepted) are skipped, so
/// one odd key does not cost the others; a set with no usable key is an
/// error.
pub(crate) fn parse_jwks(bytes: &[u8], accepted: &[Algorithm]) -> Result<Vec<VerifyKey>, String> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document = serde_json::from_slice(bytes)
        .map_err(|e| format!("not a JWKS document ({{\"keys\":[...]}}): {e}"))?;
    let mut keys = Vec::new();
    for (i, value) in document.keys.into_iter().enumerate() {
        match usable_key(value, accepted) {
            Ok(Some(key)) => keys.push(key),
            Ok(None) => {}
            Err(e) => tracing::warn!(index = i, error = %e, "skipping a JWKS key"),
        }
    }
    if keys.is_empty() {
        return Err("holds no key usable for the accepted algorithms".to_string());
    }
    Ok(keys)
}

fn usable_key(
    value: serde_json::Value,
    accepted: &[Algorithm],
) -> Result<Option<VerifyKey>, String> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|e| e.to_string())?;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Ok(None);
    }
    let algs = match jwk.common.key_algorithm {
        Some(alg) => match key_algorithm(alg) {
            Some(alg) => vec![alg],
            None => return Ok(None),
        },
        None => implied_algorithms(&jwk.algorithm),
    };
    let algs: Vec<Algorithm> = algs.into_iter().filter(|a| accepted.contains(a)).collect();
    // Symmetric keys have no business in a published key set.
    if algs.is_empty() || matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
        return Ok(None);
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
    Ok(Some(VerifyKey {
        kid: jwk.common.key_id,
        algs,
        key,
    }))
}

fn key_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Algorithm::try_from(alg).ok()
}

/// What a key without an `alg` may verify, from its type and curve.
fn implied_algorithms(params: &AlgorithmParameters) -> Vec<Algorithm> {
    match params {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => Vec::new(),
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            vec![Algorithm::EdDSA]
        }
        _ => Vec::new(),
    }
}
