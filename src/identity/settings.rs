//! What the identity layer is configured with: plain values that `lib.rs`
//! fills from the `identity.*` configuration section. Nothing here reads
//! files or the network; [`Tokens::start`](super::Tokens::start) does, and
//! reports a bad key by the label it is given here.

use std::path::PathBuf;
use std::time::Duration;

pub use jsonwebtoken::Algorithm;

use crate::secret::Secret;

/// Everything [`Tokens`](super::Tokens) needs to verify and mint tokens.
#[derive(Debug, Clone)]
pub struct IdentitySettings {
    /// A shared HMAC secret (its bytes as written): verifies HS256, HS384 and
    /// HS512 tokens, and mints HS256 ones.
    pub secret: Option<Secret>,
    /// Asymmetric keys given as PEM.
    pub keys: Vec<KeySettings>,
    /// Public keys published as a JSON Web Key Set, kept fresh.
    pub jwks: Option<JwksSettings>,
    /// Algorithms accepted in a token's header. Empty: every algorithm one of
    /// the configured keys can verify. A token whose `alg` is not in this
    /// set is refused before any key is tried.
    pub algorithms: Vec<Algorithm>,
    /// Accepted `aud` values. Empty: `aud` is not checked. Otherwise a token
    /// must carry one of them.
    pub audience: Vec<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Refuse tokens without `exp` (a token that never expires).
    pub require_exp: bool,
    /// The application of a token without the application claim.
    pub default_app: String,
    /// Which claims carry the user, the application, the device and topics.
    pub claims: ClaimNames,
    /// Lifetime of a minted token when the request names none.
    pub default_ttl: Duration,
    /// Longest lifetime a mint request may ask for.
    pub max_ttl: Duration,
    /// The algorithm minted tokens are signed with. `None`: HS256 with the
    /// secret when there is one, else the first key with a private key.
    pub mint_algorithm: Option<Algorithm>,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        IdentitySettings {
            secret: None,
            keys: Vec::new(),
            jwks: None,
            algorithms: Vec::new(),
            audience: Vec::new(),
            leeway: Duration::from_secs(30),
            require_exp: true,
            default_app: "default".to_string(),
            claims: ClaimNames::default(),
            default_ttl: Duration::from_secs(3600),
            max_ttl: Duration::from_secs(24 * 3600),
            mint_algorithm: None,
        }
    }
}

/// One asymmetric key, pinned to one algorithm.
#[derive(Debug, Clone)]
pub struct KeySettings {
    /// How errors name this key (`identity.keys[0]`).
    pub label: String,
    /// The only algorithm this key verifies (and signs) with.
    pub alg: Algorithm,
    /// When set, the key verifies only tokens whose header names this `kid`
    /// (and minted tokens carry it).
    pub kid: Option<String>,
    /// PEM text, or the path of a PEM file. Optional when `private_key` is
    /// given: the public half is derived from it.
    pub public_key: Option<String>,
    /// PEM text (PKCS#8, or PKCS#1 for RSA), or the path of a PEM file, for
    /// minting.
    pub private_key: Option<Secret>,
}

/// Where a JSON Web Key Set comes from and how often it is re-read.
#[derive(Debug, Clone)]
pub struct JwksSettings {
    pub source: JwksSource,
    /// Re-read this often, whatever happens.
    pub refresh_interval: Duration,
    /// A token naming an unknown `kid` triggers a re-read at most this often
    /// (so random `kid`s cannot make us hammer the key server); also the
    /// retry delay after a failed read.
    pub min_refresh_interval: Duration,
    /// Longest a fetch from a URL may take.
    pub fetch_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    File(PathBuf),
    /// `https://` (or `http://` on a trusted network).
    Url(String),
}

impl std::fmt::Display for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksSource::File(path) => write!(f, "JWKS file {}", path.display()),
            JwksSource::Url(url) => write!(f, "JWKS URL {url}"),
        }
    }
}

/// Claim names. A plain name is a top-level claim, taken literally (so
/// namespaced claims such as `https://example.com/tenant` work); a name
/// starting with `/` is a JSON Pointer into nested claims (`/org/id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    /// The user (required in every token). Default `sub`.
    pub user: String,
    /// The application (tenant). Default `iss`.
    pub app: String,
    /// The device (optional). Default `device`.
    pub device: String,
    /// Topic selectors the identity may follow. Default `topics`.
    pub topics: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        ClaimNames {
            user: "sub".to_string(),
            app: "iss".to_string(),
            device: "device".to_string(),
            topics: "topics".to_string(),
        }
    }
}
