//! Keys: the configured secret and PEM keys become verification keys, each
//! pinned to the algorithms it may check, and signing keys for minting.
//!
//! Pinning is what makes algorithm confusion impossible: an RSA public key
//! configured for RS256 is never tried as an HMAC secret, whatever a token's
//! header claims, because only keys whose algorithms include the header's
//! `alg` are candidates.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

use super::error::SetupError;
use super::settings::{IdentitySettings, KeySettings};

/// The HMAC algorithms a shared secret verifies.
pub(crate) const HMAC: [Algorithm; 3] = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];

/// The asymmetric algorithms a JWKS may provide keys for.
pub(crate) const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// A key that checks signatures, with the algorithms it may check.
#[derive(Clone)]
pub(crate) struct VerifyKey {
    pub kid: Option<String>,
    /// Never empty.
    pub algs: Vec<Algorithm>,
    pub key: DecodingKey,
}

impl VerifyKey {
    /// Whether this key may check a token with this header. A key without a
    /// `kid` is tried whatever the token names; a key with one only for
    /// tokens that name it or name none.
    pub fn accepts(&self, alg: Algorithm, kid: Option<&str>) -> bool {
        self.algs.contains(&alg)
            && match (&self.kid, kid) {
                (Some(mine), Some(theirs)) => mine == theirs,
                _ => true,
            }
    }
}

/// A key that signs minted tokens.
pub(crate) struct SigningKey {
    pub alg: Algorithm,
    pub kid: Option<String>,
    pub key: EncodingKey,
}

/// The algorithms accepted in a token's header: the configured list, or
/// every algorithm some configured key (or any JWKS) can verify.
pub(crate) fn accepted_algorithms(settings: &IdentitySettings) -> Vec<Algorithm> {
    if !settings.algorithms.is_empty() {
        return settings.algorithms.clone();
    }
    let mut algs = Vec::new();
    if settings.secret.is_some() {
        algs.extend(HMAC);
    }
    algs.extend(settings.keys.iter().map(|k| k.alg));
    if settings.jwks.is_some() {
        algs.extend(ASYMMETRIC);
    }
    algs.sort_by_key(|a| format!("{a:?}"));
    algs.dedup();
    algs
}

/// The secret and the PEM keys, loaded; and the keys that can sign.
pub(crate) fn load_static(
    settings: &IdentitySettings,
    accepted: &[Algorithm],
) -> Result<(Vec<VerifyKey>, Vec<SigningKey>), SetupError> {
    let mut verify = Vec::new();
    let mut signers = Vec::new();
    if let Some(secret) = settings.secret.as_ref().filter(|s| !s.is_empty()) {
        let bytes = secret.expose().as_bytes();
        if bytes.len() < 32 {
            // Accepted, since existing deployments may use one, but weak.
            tracing::warn!(
                bytes = bytes.len(),
                "the identity secret is shorter than 32 bytes; HS256 wants at least 32 random bytes"
            );
        }
        let algs: Vec<Algorithm> = HMAC.into_iter().filter(|a| accepted.contains(a)).collect();
        if !algs.is_empty() {
            verify.push(VerifyKey {
                kid: None,
                algs,
                key: DecodingKey::from_secret(bytes).map_err(|e| key_error("secret", e))?,
            });
        }
        let key = EncodingKey::from_secret(bytes).map_err(|e| key_error("secret", e))?;
        for alg in HMAC {
            signers.push(SigningKey {
                alg,
                kid: None,
                key: key.clone(),
            });
        }
    }
    for settings in &settings.keys {
        let (public, signer) = load_pem_key(settings)?;
        if !accepted.contains(&settings.alg) {
            return Err(SetupError::Key {
                label: settings.label.clone(),
                reason: format!(
                    "its alg {:?} is not among the accepted algorithms",
                    settings.alg
                ),
            });
        }
        verify.push(public);
        signers.extend(signer);
    }
    Ok((verify, signers))
}

fn load_pem_key(settings: &KeySettings) -> Result<(VerifyKey, Option<SigningKey>), SetupError> {
    let label = &settings.label;
    let alg = settings.alg;
    let fail = |what: &str, reason: String| SetupError::Key {
        label: format!("{label}.{what}"),
        reason,
    };
    if HMAC.contains(&alg) {
        return Err(fail(
            "alg",
            format!("{alg:?} uses the shared secret, not a PEM key"),
        ));
    }
    let signer = match &settings.private_key {
        None => None,
        Some(private) => {
            // The value may be the key itself: never repeat it in an error.
            let pem = read_pem(private.expose()).map_err(|_| {
                fail(
                    "privateKey",
                    "is neither PEM text nor a readable PEM file".into(),
                )
            })?;
            let key = encoding_key(alg, &pem).map_err(|e| {
                fail(
                    "privateKey",
                    format!("not a {alg:?} private key in PEM form ({e})"),
                )
            })?;
            Some(SigningKey {
                alg,
                kid: settings.kid.clone(),
                key,
            })
        }
    };
    let public = match (&settings.public_key, &signer) {
        (Some(text), _) => {
            let pem = read_pem(text).map_err(|e| fail("publicKey", e))?;
            decoding_key(alg, &pem).map_err(|e| {
                fail(
                    "publicKey",
                    format!("not a {alg:?} public key in PEM form ({e})"),
                )
            })?
        }
        (None, Some(signer)) => Jwk::from_encoding_key(&signer.key, alg)
            .and_then(|jwk| DecodingKey::from_jwk(&jwk))
            .map_err(|e| {
                fail(
                    "publicKey",
                    format!("is required: it cannot be derived from this private key ({e})"),
                )
            })?,
        (None, None) => {
            return Err(fail("publicKey", "is required (or a privateKey)".into()));
        }
    };
    check_curve(alg, &public).map_err(|reason| fail("publicKey", reason))?;
    Ok((
        VerifyKey {
            kid: settings.kid.clone(),
            algs: vec![alg],
            key: public,
        },
        signer,
    ))
}

/// An EC key must be on the curve its algorithm names (ES256: P-256), or
/// every token would fail with a puzzling "bad signature".
fn check_curve(alg: Algorithm, key: &DecodingKey) -> Result<(), String> {
    let expected = match alg {
        Algorithm::ES256 => EllipticCurve::P256,
        Algorithm::ES384 => EllipticCurve::P384,
        _ => return Ok(()),
    };
    let jwk = Jwk::from_decoding_key(key, Some(alg)).map_err(|e| e.to_string())?;
    match jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) if p.curve == expected => Ok(()),
        _ => Err(format!("the key is not on the curve {alg:?} uses")),
    }
}

/// PEM text as given, or the contents of the file it names.
fn read_pem(value: &str) -> Result<Vec<u8>, String> {
    let trimmed = value.trim();
    if trimmed.starts_with("-----BEGIN") {
        return Ok(trimmed.as_bytes().to_vec());
    }
    std::fs::read(trimmed).map_err(|e| format!("cannot read {trimmed:?}: {e}"))
}

fn decoding_key(alg: Algorithm, pem: &[u8]) -> jsonwebtoken::errors::Result<DecodingKey> {
    match alg {
        Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem),
        Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
        _ => DecodingKey::from_rsa_pem(pem),
    }
}

fn encoding_key(alg: Algorithm, pem: &[u8]) -> jsonwebtoken::errors::Result<EncodingKey> {
    match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
        _ => EncodingKey::from_rsa_pem(pem),
    }
}

fn key_error(label: &str, e: jsonwebtoken::errors::Error) -> SetupError {
    SetupError::Key {
        label: label.to_string(),
        reason: e.to_string(),
    }
}

/// The key minted tokens are signed with: the one `wanted` names, or HS256
/// with the secret, or the first key with a private key.
pub(crate) fn pick_signer(
    mut signers: Vec<SigningKey>,
    wanted: Option<Algorithm>,
) -> Result<Option<SigningKey>, SetupError> {
    let position = match wanted {
        Some(alg) => match signers.iter().position(|s| s.alg == alg) {
            Some(i) => i,
            None => return Err(SetupError::NoMintKey { alg }),
        },
        None => match signers.iter().position(|s| s.alg == Algorithm::HS256) {
            Some(i) => i,
            None if signers.is_empty() => return Ok(None),
            None => 0,
        },
    };
    Ok(Some(signers.swap_remove(position)))
}
