//! The identity token layer through its public API (`sser::identity`): every
//! bad-token shape, each key type, JWKS from a file and from a real local
//! HTTP server, minting. The HTTP endpoints that use it come with the
//! wiring; these tests hold the component to its contract first.

mod bad_tokens;
mod jwks;
mod keys;
mod mint;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sser::identity::{IdentitySettings, SetupError, Tokens};
use sser::secret::Secret;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Settings with only the shared secret.
pub fn hs_settings() -> IdentitySettings {
    IdentitySettings {
        secret: Some(Secret::new(SECRET)),
        ..IdentitySettings::default()
    }
}

pub async fn start(settings: IdentitySettings) -> Arc<Tokens> {
    try_start(settings).await.expect("identity starts")
}

pub async fn try_start(settings: IdentitySettings) -> Result<Arc<Tokens>, SetupError> {
    // The JWKS task ends with the test's runtime.
    Tokens::start(settings, CancellationToken::new()).await
}

/// Valid claims for user `u1` of app `shop`, expiring in an hour.
pub fn claims() -> Value {
    json!({"sub": "u1", "iss": "shop", "iat": now(), "exp": now() + 3600})
}

pub fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, key).expect("signs")
}

pub fn sign_hs(claims: &Value) -> String {
    let key = EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
    sign(Algorithm::HS256, None, &key, claims)
}

/// A token with any header, as an attacker would write it.
pub fn forge(header: Value, claims: &Value, signature: &[u8]) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!(
        "{}.{}.{}",
        part(&header),
        part(claims),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

pub fn fixture(name: &str) -> String {
    format!(
        "{}/tests/fixtures/identity/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

pub const DEADLINE: Duration = Duration::from_secs(20);
