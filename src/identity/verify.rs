//! The JWT mechanics of verification: read the header without trusting it,
//! refuse what is never acceptable (`alg: none`, an algorithm not
//! configured) before any key is touched, then check the signature and the
//! time and audience claims with `jsonwebtoken`, translating its errors into
//! [`TokenError`]s a client can be shown.

use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

use super::error::TokenError;
use super::keys::VerifyKey;
use super::settings::IdentitySettings;

/// Longest token accepted; real ones are well under 2 KiB, and a request
/// head is capped at `server.maxHeaderSize` anyway.
pub const MAX_TOKEN_LEN: usize = 16 << 10;

/// What the unverified header says.
pub(crate) struct Header {
    pub alg: Algorithm,
    pub kid: Option<String>,
}

/// Reads the header and pins the algorithm: `none` and anything not in
/// `accepted` end here.
pub(crate) fn read_header(token: &str, accepted: &[Algorithm]) -> Result<Header, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong { max: MAX_TOKEN_LEN });
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    // An object, as JOSE requires (serde would also read a struct from an
    // array, which no header is).
    let raw: serde_json::Map<String, Value> = URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(TokenError::Malformed)?;
    let alg = raw
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(TokenError::Malformed)?;
    let kid = match raw.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(TokenError::Malformed),
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(TokenError::Unsigned);
    }
    let alg =
        Algorithm::from_str(alg).map_err(|_| TokenError::AlgorithmNotAllowed { alg: None })?;
    if !accepted.contains(&alg) {
        return Err(TokenError::AlgorithmNotAllowed { alg: Some(alg) });
    }
    Ok(Header { alg, kid })
}

/// One `jsonwebtoken` validation per accepted algorithm, built once.
pub(crate) struct Validations {
    by_alg: Vec<(Algorithm, Validation)>,
    require_exp: bool,
}

impl Validations {
    pub fn new(settings: &IdentitySettings, accepted: &[Algorithm]) -> Self {
        let by_alg = accepted
            .iter()
            .map(|&alg| {
                let mut v = Validation::new(alg);
                v.leeway = settings.leeway.as_secs();
                v.validate_exp = true;
                v.validate_nbf = true;
                // `exp` presence is checked after decoding: the library
                // would call an `exp` of the wrong type "missing".
                v.required_spec_claims.clear();
                if settings.audience.is_empty() {
                    v.validate_aud = false;
                } else {
                    v.set_audience(&settings.audience);
                    v.required_spec_claims.insert("aud".to_string());
                }
                (alg, v)
            })
            .collect();
        Validations {
            by_alg,
            require_exp: settings.require_exp,
        }
    }

    fn get(&self, alg: Algorithm) -> Option<&Validation> {
        self.by_alg.iter().find(|(a, _)| *a == alg).map(|(_, v)| v)
    }
}

/// The outcome of trying one key.
pub(crate) enum Attempt {
    Verified(Value),
    /// Not this key: try the next one.
    WrongKey,
    /// The signature was right (or the token broken): no other key helps.
    Refused(TokenError),
}

/// Checks the token with one key: signature, then `exp`, `nbf`, `aud`
/// (by `jsonwebtoken`), then `iat` (not in the future beyond the leeway).
pub(crate) fn try_key(
    token: &str,
    header: &Header,
    key: &VerifyKey,
    validations: &Validations,
    leeway_secs: u64,
) -> Attempt {
    let Some(validation) = validations.get(header.alg) else {
        return Attempt::Refused(TokenError::AlgorithmNotAllowed {
            alg: Some(header.alg),
        });
    };
    let claims = match jsonwebtoken::decode::<Value>(token, &key.key, validation) {
        Ok(data) => data.claims,
        Err(e) => {
            return match e.into_kind() {
                ErrorKind::InvalidSignature => Attempt::WrongKey,
                ErrorKind::InvalidEcdsaKey
                | ErrorKind::InvalidEddsaKey
                | ErrorKind::InvalidRsaKey(_)
                | ErrorKind::InvalidKeyFormat => {
                    tracing::warn!(kid = ?key.kid, "a configured key cannot be used to verify");
                    Attempt::WrongKey
                }
                kind => Attempt::Refused(translate(kind, header.alg)),
            };
        }
    };
    if validations.require_exp && claims.get("exp").is_none_or(Value::is_null) {
        return Attempt::Refused(TokenError::MissingExpiry);
    }
    match claims.get("iat") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) => {
            let iat = n.as_f64().unwrap_or(0.0);
            if iat > (unix_now() + leeway_secs) as f64 {
                return Attempt::Refused(TokenError::NotYetValid);
            }
        }
        Some(_) => {
            return Attempt::Refused(TokenError::InvalidClaim {
                claim: "iat".to_string(),
                reason: "must be a number (Unix seconds)",
            });
        }
    }
    Attempt::Verified(claims)
}

fn translate(kind: ErrorKind, alg: Algorithm) -> TokenError {
    match kind {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => TokenError::WrongAudience,
        ErrorKind::InvalidClaimFormat(claim) => TokenError::InvalidClaim {
            claim,
            reason: "has the wrong type",
        },
        ErrorKind::InvalidAlgorithm => TokenError::AlgorithmNotAllowed { alg: Some(alg) },
        _ => TokenError::Malformed,
    }
}

/// The `exp` claim of verified claims, in Unix seconds.
pub(crate) fn expiry(claims: &Value) -> Option<u64> {
    let exp = claims.get("exp")?;
    exp.as_u64()
        .or_else(|| exp.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
