//! [`Tokens`]: the one object the rest of the server holds to turn a token
//! into an [`Identity`] and a mint request into a token.

use std::sync::Arc;

use jsonwebtoken::Algorithm;
use tokio_util::sync::CancellationToken;

use super::claims::{Identity, identity_from_claims};
use super::error::{MintError, SetupError, TokenError};
use super::jwks::JwksCache;
use super::keys::{self, SigningKey, VerifyKey};
use super::mint::{MintRequest, Minted, mint};
use super::settings::IdentitySettings;
use super::verify::{Attempt, Header, Validations, expiry, read_header, try_key};

/// Verifies identity tokens and mints them. Cheap to share (`Arc`); all
/// methods take `&self`.
pub struct Tokens {
    settings: IdentitySettings,
    accepted: Vec<Algorithm>,
    validations: Validations,
    static_keys: Vec<VerifyKey>,
    jwks: Option<Arc<JwksCache>>,
    signer: Option<SigningKey>,
}

impl Tokens {
    /// Loads the keys (and the JWKS, whose refresh task ends with
    /// `shutdown`). Fails on a key that cannot be used, an unreadable JWKS
    /// file, or no key at all.
    pub async fn start(
        settings: IdentitySettings,
        shutdown: CancellationToken,
    ) -> Result<Arc<Tokens>, SetupError> {
        let accepted = keys::accepted_algorithms(&settings);
        let (static_keys, signers) = keys::load_static(&settings, &accepted)?;
        let signer = keys::pick_signer(signers, settings.mint_algorithm)?;
        if let Some(signer) = &signer
            && !accepted.contains(&signer.alg)
        {
            return Err(SetupError::Key {
                label: "mint algorithm".to_string(),
                reason: format!(
                    "{:?} is not among the accepted algorithms, so minted tokens would be refused",
                    signer.alg
                ),
            });
        }
        let jwks = match settings.jwks.clone() {
            Some(jwks) => {
                let source_name = jwks.source.to_string();
                let cache = JwksCache::start(jwks, accepted.clone(), shutdown)
                    .await
                    .map_err(|reason| SetupError::Jwks {
                        source_name,
                        reason,
                    })?;
                Some(cache)
            }
            None => None,
        };
        if static_keys.is_empty() && jwks.is_none() {
            return Err(SetupError::NoKeys);
        }
        Ok(Arc::new(Tokens {
            validations: Validations::new(&settings, &accepted),
            settings,
            accepted,
            static_keys,
            jwks,
            signer,
        }))
    }

    /// Checks a token and reads its identity. Never waits on I/O, except
    /// when the token names a `kid` no key has and a JWKS is configured:
    /// then one (rate-limited) early re-read of the set is awaited.
    pub async fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        self.verify_with_claims(token)
            .await
            .map(|(identity, _)| identity)
    }

    /// [`Tokens::verify`], also handing back the token's verified claims,
    /// for a caller that reads a claim of its own beside the identity (a
    /// compatibility profile's `username`).
    pub async fn verify_with_claims(
        &self,
        token: &str,
    ) -> Result<(Identity, serde_json::Value), TokenError> {
        let header = read_header(token, &self.accepted)?;
        let outcome = self.verify_with_current_keys(token, &header);
        let Some(jwks) = &self.jwks else {
            return outcome;
        };
        match outcome {
            // A key rotated in at the issuer, or the set not loaded yet.
            Err(TokenError::UnknownKey | TokenError::KeysUnavailable)
                if (header.kid.is_some() || !jwks.is_loaded()) && jwks.refresh_now().await =>
            {
                self.verify_with_current_keys(token, &header)
            }
            outcome => outcome,
        }
    }

    fn verify_with_current_keys(
        &self,
        token: &str,
        header: &Header,
    ) -> Result<(Identity, serde_json::Value), TokenError> {
        let dynamic = self.jwks.as_ref().map(|j| j.keys());
        let candidates = self
            .static_keys
            .iter()
            .chain(dynamic.iter().flat_map(|keys| keys.iter()))
            .filter(|k| k.accepts(header.alg, header.kid.as_deref()));
        let mut tried = false;
        let leeway = self.settings.leeway.as_secs();
        for key in candidates {
            tried = true;
            match try_key(token, header, key, &self.validations, leeway) {
                Attempt::Verified(claims) => {
                    let identity = identity_from_claims(
                        &claims,
                        &self.settings.claims,
                        &self.settings.default_app,
                        expiry(&claims),
                    )?;
                    return Ok((identity, claims));
                }
                Attempt::WrongKey => {}
                Attempt::Refused(e) => return Err(e),
            }
        }
        if tried {
            Err(TokenError::BadSignature)
        } else if !self.jwks_loaded() {
            Err(TokenError::KeysUnavailable)
        } else {
            Err(TokenError::UnknownKey)
        }
    }

    /// True unless keys come from a JWKS URL that has not answered yet
    /// (for `/readyz`).
    pub fn jwks_loaded(&self) -> bool {
        self.jwks.as_ref().is_none_or(|j| j.is_loaded())
    }

    /// Signs a token for the request's identity.
    pub fn mint(&self, request: MintRequest) -> Result<Minted, MintError> {
        let signer = self.signer.as_ref().ok_or(MintError::NoSigningKey)?;
        mint(request, signer, &self.settings)
    }

    /// Whether [`Tokens::mint`] can work (a signing key is configured).
    pub fn can_mint(&self) -> bool {
        self.signer.is_some()
    }

    /// The algorithms accepted in a token's header.
    pub fn accepted_algorithms(&self) -> &[Algorithm] {
        &self.accepted
    }

    pub fn settings(&self) -> &IdentitySettings {
        &self.settings
    }
}
