//! Why a token was refused, why a mint request failed, and why the identity
//! layer could not start.
//!
//! [`TokenError`] and [`MintError`] messages go to clients as they are (a 401
//! or 400 JSON body): each names what was wrong and never includes the token,
//! a signature, or the value of a claim. Only configured claim names and
//! algorithm names from a fixed list appear in them.

use super::settings::Algorithm;

/// Why a token was refused. Each variant is a distinct, stable
/// [`code`](TokenError::code) for the JSON error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(
        "the token is not a well-formed JWT (three base64url parts, header.claims.signature, whose header and claims are JSON objects of the standard types)"
    )]
    Malformed,
    #[error("the token is longer than {max} bytes")]
    TooLong { max: usize },
    #[error("unsigned tokens (alg \"none\") are not accepted")]
    Unsigned,
    /// `alg` is `None` when the header names no algorithm we know (that name
    /// is not repeated: it is the client's text).
    #[error("{}", algorithm_message(.alg))]
    AlgorithmNotAllowed { alg: Option<Algorithm> },
    #[error("no configured key matches the token's key id (kid)")]
    UnknownKey,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token has expired (exp is in the past)")]
    Expired,
    #[error("the token is not valid yet (nbf or iat is in the future)")]
    NotYetValid,
    #[error("the token has no expiry (exp), which is required")]
    MissingExpiry,
    #[error("the token lacks the {claim:?} claim, which names the user")]
    MissingUser { claim: String },
    #[error("the token's {claim:?} claim {reason}")]
    InvalidClaim { claim: String, reason: &'static str },
    #[error("the token's audience (aud) is not one this server accepts")]
    WrongAudience,
    /// Keys come from a JWKS URL that has not answered yet: the server's
    /// problem, not the client's (a 503 rather than a 401).
    #[error("the keys to check tokens are not available yet; retry shortly")]
    KeysUnavailable,
}

fn algorithm_message(alg: &Option<Algorithm>) -> String {
    match alg {
        Some(alg) => format!("tokens signed with {alg:?} are not accepted here"),
        None => "the token's algorithm (alg) is not one this server knows".to_string(),
    }
}

impl TokenError {
    /// A short stable name for the JSON error and for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Malformed => "token_malformed",
            TokenError::TooLong { .. } => "token_too_long",
            TokenError::Unsigned => "token_unsigned",
            TokenError::AlgorithmNotAllowed { .. } => "token_algorithm_not_allowed",
            TokenError::UnknownKey => "token_unknown_key",
            TokenError::BadSignature => "token_bad_signature",
            TokenError::Expired => "token_expired",
            TokenError::NotYetValid => "token_not_yet_valid",
            TokenError::MissingExpiry => "token_missing_exp",
            TokenError::MissingUser { .. } => "token_missing_user",
            TokenError::InvalidClaim { .. } => "token_invalid_claim",
            TokenError::WrongAudience => "token_wrong_audience",
            TokenError::KeysUnavailable => "keys_unavailable",
        }
    }

    /// True when the fault is the server's (answer 503, not 401).
    pub fn is_server_side(&self) -> bool {
        matches!(self, TokenError::KeysUnavailable)
    }
}

/// Why a mint request was refused (a 400, except [`MintError::NoSigningKey`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    #[error("this server cannot mint tokens: no signing key is configured")]
    NoSigningKey,
    #[error("ttl must be between 1 and {max_secs} seconds")]
    Ttl { max_secs: u64 },
    #[error("{field} {reason}")]
    InvalidField {
        field: &'static str,
        reason: &'static str,
    },
    #[error("signing the token failed")]
    Signing,
}

/// Why the identity layer could not start: a bad key, an unreadable JWKS
/// file, or a setting that contradicts another. The text names the key by
/// the label `lib.rs` gave it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error("{label}: {reason}")]
    Key { label: String, reason: String },
    #[error("{source_name}: {reason}")]
    Jwks { source_name: String, reason: String },
    #[error(
        "no key to check tokens with: configure a secret, a key or a JWKS source (or disable identity)"
    )]
    NoKeys,
    #[error(
        "minting with {alg:?} needs a key that can sign with it (the secret for HS*, a key with a private key otherwise)"
    )]
    NoMintKey { alg: Algorithm },
}
